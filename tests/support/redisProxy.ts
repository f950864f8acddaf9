/**
 * A TCP proxy on 127.0.0.1 in front of a test's redis-server, for cluster tests that must decide
 * when things happen: it can cut every connection and close new ones at once (an outage), be
 * pointed at another redis-server (one restarted on a port of its own: the proxy keeps its port
 * through the outage, so no other test's server can take it meanwhile), and hold back what Redis
 * sends to a node's stream reader, so that the test chooses when the node reads entries (its own
 * batches, say) back. The reader is told from the writer by its XREADs: the writer's only one is
 * a probe from "$" (redisCommands.ts). A hold may be limited to the readers whose XREADs name a
 * given text (a shard's hash tag, `{test:1}`): a node has one reader per shard.
 */

interface Pair {
  client: Deno.TcpConn;
  server: Deno.TcpConn;
  reader: boolean;
  /** What its first XREAD said, for holds limited to some readers. */
  readerText: string;
  /** Chunks from Redis held back from a reader. */
  held: Uint8Array[];
  /** Writes to the client, chained so that they keep their order. */
  out: Promise<void>;
}

const latin1 = new TextDecoder("latin1");

export class RedisProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<Pair>();
  readonly #accepting: Promise<void>;
  #down = false;
  #holding = false;
  #holdOnly = "";

  constructor(public redisPort: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get url(): string {
    return `redis://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** Bytes held back from readers. */
  get held(): number {
    let bytes = 0;
    for (const pair of this.#pairs) for (const chunk of pair.held) bytes += chunk.length;
    return bytes;
  }

  /** Stream readers connected now (connections that sent an XREAD other than the probe). */
  get readers(): number {
    let readers = 0;
    for (const pair of this.#pairs) if (pair.reader) readers++;
    return readers;
  }

  /** Cuts every connection; connections made until `up()` are closed at once. */
  down(): void {
    this.#down = true;
    for (const pair of this.#pairs) this.#close(pair);
  }

  /** Ends `down()`; new connections go to the redis-server on `redisPort` (by default the last). */
  up(redisPort = this.redisPort): void {
    this.redisPort = redisPort;
    this.#down = false;
  }

  /**
   * From now on, what Redis sends a reader (one whose XREADs name `only`, if given) waits for
   * `passHeld()` or `release()`.
   */
  hold(only = ""): void {
    this.#holding = true;
    this.#holdOnly = only;
  }

  /** Passes on what readers were held back, and keeps holding what comes after. */
  passHeld(): void {
    for (const pair of this.#pairs) {
      for (const chunk of pair.held.splice(0)) this.#send(pair, chunk);
    }
  }

  /** Stops holding, and passes on what was held. */
  release(): void {
    this.#holding = false;
    this.passHeld();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const pair of this.#pairs) this.#close(pair);
    await this.#accepting;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed
      }
      if (this.#down) {
        client.close();
        continue;
      }
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.redisPort });
      } catch {
        client.close();
        continue;
      }
      const pair: Pair = {
        client,
        server,
        reader: false,
        readerText: "",
        held: [],
        out: Promise.resolve(),
      };
      this.#pairs.add(pair);
      this.#toRedis(pair);
      this.#fromRedis(pair);
    }
  }

  async #toRedis(pair: Pair): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await pair.client.read(buffer);
        if (n === null) break;
        const text = latin1.decode(buffer.subarray(0, n));
        if (!pair.reader && text.includes("XREAD") && !text.includes("$1\r\n$\r\n")) {
          pair.reader = true;
          pair.readerText = text;
        }
        let written = 0;
        while (written < n) written += await pair.server.write(buffer.subarray(written, n));
      }
    } catch {
      // closed
    }
    this.#close(pair);
  }

  async #fromRedis(pair: Pair): Promise<void> {
    try {
      for (;;) {
        const buffer = new Uint8Array(65536);
        const n = await pair.server.read(buffer);
        if (n === null) break;
        const chunk = buffer.subarray(0, n);
        const holding = this.#holding && pair.readerText.includes(this.#holdOnly);
        if (pair.reader && holding) pair.held.push(chunk);
        else this.#send(pair, chunk);
      }
    } catch {
      // closed
    }
    this.#close(pair);
  }

  #send(pair: Pair, chunk: Uint8Array): void {
    pair.out = pair.out.then(async () => {
      let written = 0;
      while (written < chunk.length) written += await pair.client.write(chunk.subarray(written));
    }).catch(() => this.#close(pair));
  }

  #close(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of [pair.client, pair.server]) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }
}
