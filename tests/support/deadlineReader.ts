/**
 * A raw test client's two halves of a TCP (or TLS) connection: exact bytes out (`writeAll`), and
 * bytes in, gathered into a buffer with a deadline on every read (`DeadlineReader`), as the HTTP
 * and WebSocket clients (rawHttp.ts, wsHarness.ts) both read. A read that misses its deadline
 * stays pending and the next call picks it up, so no byte is lost to a timeout; an EOF and a reset
 * both end the stream.
 */

const encoder = new TextEncoder();

/** What a read that missed its deadline throws. */
export class ReadTimeout extends Error {
  constructor() {
    super("read timed out");
  }
}

/** Writes all of `data` (a string as UTF-8). */
export async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

export class DeadlineReader {
  /** Bytes received and not taken yet. */
  buffer = new Uint8Array(0);
  #eof = false;
  #read: Promise<Uint8Array | null> | null = null;
  readonly #chunk = new Uint8Array(65536);

  constructor(readonly conn: Deno.Conn) {}

  /**
   * Reads more bytes onto `buffer`; false at EOF (or a reset). Throws a ReadTimeout after
   * `deadline` (performance.now() ms); the read then stays pending and the next call picks it up.
   */
  async fill(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#read === null) {
      const chunk = this.#chunk;
      this.#read = this.conn.read(chunk).then(
        (n) => n === null ? null : chunk.slice(0, n),
        () => null, // reset by the server counts as closed
      );
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - performance.now()));
    });
    const got = await Promise.race([this.#read, timeout]);
    clearTimeout(timer);
    if (got === "timeout") throw new ReadTimeout();
    this.#read = null;
    if (got === null) {
      this.#eof = true;
      return false;
    }
    const joined = new Uint8Array(this.buffer.length + got.length);
    joined.set(this.buffer);
    joined.set(got, this.buffer.length);
    this.buffer = joined;
    return true;
  }

  /** Where `bytes` (ASCII) first stands in the buffer at or after `from`, or -1. */
  indexOf(bytes: string, from = 0): number {
    const b = this.buffer;
    outer: for (let i = from; i + bytes.length <= b.length; i++) {
      for (let j = 0; j < bytes.length; j++) {
        if (b[i + j] !== bytes.charCodeAt(j)) continue outer;
      }
      return i;
    }
    return -1;
  }

  /** Takes the first `n` bytes off the buffer. */
  take(n: number): Uint8Array {
    const taken = this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
    return taken;
  }

  /** Settles once a read left pending by a timeout has (as closed, once the socket is closed). */
  async settled(): Promise<void> {
    await this.#read;
  }
}
