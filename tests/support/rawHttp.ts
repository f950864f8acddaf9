/**
 * A raw HTTP/1.x client over one TCP (or TLS) connection for server tests: sends exact bytes (pipelined,
 * half a head, HTTP/1.0, …) and reads responses framed by Content-Length, chunked coding or the
 * close, so tests see precisely what went over the wire. Every read has a deadline
 * (deadlineReader.ts).
 */
import { DeadlineReader, ReadTimeout, writeAll } from "./deadlineReader.ts";

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Map<string, string>;
  body: Uint8Array;
  /** The body was chunked. */
  chunked: boolean;
}

const latin1 = new TextDecoder("latin1");

export class RawClient implements AsyncDisposable {
  #closed = false;
  readonly #reader: DeadlineReader;

  private constructor(readonly conn: Deno.TcpConn | Deno.TlsConn) {
    this.#reader = new DeadlineReader(conn);
  }

  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname, port }));
  }

  /** Over TLS, trusting `caCerts` (PEM), offering ALPN http/1.1. The handshake runs with the
   * first read or write, so a server that never answers it times out like any read. */
  static async connectTls(
    port: number,
    caCerts: string[],
    hostname = "127.0.0.1",
  ): Promise<RawClient> {
    const tcp = await Deno.connect({ hostname, port });
    return new RawClient(
      await Deno.startTls(tcp, { hostname, caCerts, alpnProtocols: ["http/1.1"] }),
    );
  }

  send(data: string | Uint8Array): Promise<void> {
    return writeAll(this.conn, data);
  }

  async #need(n: number, deadline: number): Promise<void> {
    while (this.#reader.buffer.length < n) {
      if (!(await this.#reader.fill(deadline))) throw new Error("connection closed mid-response");
    }
  }

  /** Reads one response; `head` says it answers a HEAD request (no body). */
  async response(options: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const deadline = performance.now() + (options.timeoutMs ?? 5000);
    let end: number;
    while ((end = this.#reader.indexOf("\r\n\r\n")) < 0) {
      if (!(await this.#reader.fill(deadline))) {
        throw new Error("connection closed before a response");
      }
    }
    const lines = latin1.decode(this.#reader.take(end + 4)).split("\r\n");
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (match === null) throw new Error(`bad status line: ${lines[0]}`);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      if (line === "") continue;
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const status = Number(match[1]);
    // 1xx (a 101 Switching Protocols, say), 204 and 304 have no body.
    if (options.head || status < 200 || status === 204 || status === 304) {
      return { status, headers, body: new Uint8Array(0), chunked: false };
    }
    const length = headers.get("content-length");
    if (length !== undefined) {
      await this.#need(Number(length), deadline);
      return { status, headers, body: this.#reader.take(Number(length)), chunked: false };
    }
    if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
      const parts: Uint8Array[] = [];
      for (;;) {
        let lineEnd: number;
        while ((lineEnd = this.#reader.indexOf("\r\n")) < 0) {
          if (!(await this.#reader.fill(deadline))) throw new Error("closed in a chunk header");
        }
        const size = parseInt(latin1.decode(this.#reader.take(lineEnd + 2)), 16);
        if (Number.isNaN(size)) throw new Error("bad chunk size");
        await this.#need(size + 2, deadline);
        const data = this.#reader.take(size + 2);
        if (data[size] !== 13 || data[size + 1] !== 10) throw new Error("chunk without CRLF");
        if (size === 0) break;
        parts.push(data.subarray(0, size));
      }
      const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) body.set(p, (o += p.length) - p.length);
      return { status, headers, body, chunked: true };
    }
    while (await this.#reader.fill(deadline));
    return { status, headers, body: this.#reader.take(this.#reader.buffer.length), chunked: false };
  }

  /** True if the server closes (EOF or reset) within `ms`, sending nothing more; false if still open. */
  async closesWithin(ms: number): Promise<boolean> {
    try {
      const more = await this.#reader.fill(performance.now() + ms);
      if (more) throw new Error(`unexpected bytes: ${latin1.decode(this.#reader.buffer)}`);
      return true;
    } catch (error) {
      if (error instanceof ReadTimeout) return false;
      throw error;
    }
  }

  /** Bytes received and not yet read as a response. */
  get pending(): number {
    return this.#reader.buffer.length;
  }

  /** Closes the socket; a read left pending by a timeout settles as closed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#reader.settled(); // a pending read settles (as closed) once the socket is gone
  }
}
