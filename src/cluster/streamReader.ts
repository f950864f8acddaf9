/**
 * The connection that reads the cluster stream: a minimal RESP2 client whose replies never hold
 * more than a set number of bytes, whatever is on the stream.
 *
 * Anyone who can XADD may add an entry of up to Redis's proto-max-bulk-len (512 MB by default),
 * and a general client (node-redis) reads each reply whole into memory before the sync could look
 * at its size: 32 such entries in one XREAD reply would take gigabytes on every node. This reader
 * parses the reply as it arrives instead. A string longer than `maxValueBytes` is read past in
 * fixed chunks and stands in the reply as an `OversizedValue` carrying only its length; an array
 * keeps at most `keepElements[depth]` elements (the reply itself is depth 0) and stands the rest,
 * read past, as one `SkippedElements`. So a reply holds at most the product of those counts times
 * `maxValueBytes`, however it was filled.
 *
 * It speaks only what the read loop needs: connect (TCP, or TLS for `rediss://`), AUTH and SELECT
 * from the URL, then one command at a time, or, once subscribed, the messages as they come
 * (`receive`). An error reply rejects with node-redis's `ErrorReply`,
 * so the sync tells refusals from broken connections the same way for both of its connections.
 */
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";

/** A bulk string longer than the limit: read past, not kept. */
export class OversizedValue {
  constructor(readonly length: number) {}
}

/** The elements of an array past its keep count: read past, not kept. */
export class SkippedElements {
  constructor(readonly count: number) {}
}

export interface StreamReaderOptions {
  /** Longest string kept; longer ones become OversizedValue. */
  maxValueBytes: number;
  /** Elements kept per array, by nesting depth (0: the reply); arrays deeper than listed keep none. */
  keepElements: readonly number[];
}

/** Longest status, error or length line accepted; Redis's are far shorter. */
const MAX_LINE = 64 * 1024;
const CHUNK = 64 * 1024;
const CR = 13;
const LF = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The connection lost its footing: a reply RESP2 does not allow, or the peer went away. */
export class ProtocolError extends Error {}

export class StreamReaderConnection {
  readonly #url: URL;
  #maxValueBytes: number;
  #keep: readonly number[];
  #conn: Deno.Conn | null = null;
  #destroyed = false;
  #busy = false;
  readonly #buffer = new Uint8Array(CHUNK);
  #start = 0;
  #end = 0;
  /** Bytes received on this connection, replies' framing included (for /metrics). */
  bytesRead = 0;

  /** `url` as parseClusterUrl accepted it. */
  constructor(url: string, options: StreamReaderOptions) {
    this.#url = new URL(url);
    this.#maxValueBytes = options.maxValueBytes;
    this.#keep = options.keepElements;
  }

  /** Connects, then authenticates and selects the database the URL names. */
  async connect(): Promise<void> {
    const url = this.#url;
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port);
    const conn = url.protocol === "rediss:"
      ? await Deno.connectTls({ hostname, port })
      : await Deno.connect({ hostname, port });
    if (this.#destroyed) {
      conn.close();
      throw new Error("connection closed");
    }
    this.#conn = conn;
    const username = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    if (username !== "" || password !== "") {
      await this.sendCommand(username !== "" ? ["AUTH", username, password] : ["AUTH", password]);
    }
    const database = Number(url.pathname.slice(1));
    if (database > 0) await this.sendCommand(["SELECT", String(database)]);
  }

  /**
   * Sends one command and reads its reply; an error reply rejects with ErrorReply. `limits`
   * replace the connection's for this reply (an XREAD of more streams keeps more of them).
   */
  async sendCommand(
    args: ReadonlyArray<string>,
    limits: StreamReaderOptions | null = null,
  ): Promise<unknown> {
    const conn = this.#conn;
    if (conn === null || this.#destroyed) throw new Error("not connected");
    if (this.#busy) throw new Error("one command at a time");
    this.#busy = true;
    const maxValueBytes = this.#maxValueBytes;
    const keep = this.#keep;
    if (limits !== null) {
      this.#maxValueBytes = limits.maxValueBytes;
      this.#keep = limits.keepElements;
    }
    try {
      await writeAll(conn, encodeCommand(args));
      const reply = await this.#value(0);
      if (reply instanceof ErrorReply) throw reply;
      return reply;
    } finally {
      this.#busy = false;
      this.#maxValueBytes = maxValueBytes;
      this.#keep = keep;
    }
  }

  /**
   * Reads the next value Redis sends without a command (a subscribed connection's messages);
   * an error reply rejects with ErrorReply.
   */
  async receive(): Promise<unknown> {
    if (this.#conn === null || this.#destroyed) throw new Error("not connected");
    if (this.#busy) throw new Error("one command at a time");
    this.#busy = true;
    try {
      const reply = await this.#value(0);
      if (reply instanceof ErrorReply) throw reply;
      return reply;
    } finally {
      this.#busy = false;
    }
  }

  /** Closes the connection; a command in flight rejects. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    try {
      this.#conn?.close();
    } catch {
      // Already closed.
    }
  }

  /** Errors surface as rejected commands; this only matches node-redis's shape. */
  on(_event: "error", _listener: (error: Error) => void): this {
    return this;
  }

  async #value(depth: number): Promise<unknown> {
    const line = await this.#line();
    const type = line.charCodeAt(0);
    const rest = line.slice(1);
    switch (type) {
      case 0x2b: // + status
        return rest;
      case 0x2d: // - error
        return new ErrorReply(rest);
      case 0x3a: // : integer
        return integer(rest);
      case 0x24: { // $ bulk string
        const length = integer(rest);
        if (length < 0) return null;
        if (length > this.#maxValueBytes) {
          await this.#skip(length + 2);
          return new OversizedValue(length);
        }
        const value = await this.#bytes(length);
        await this.#crlf();
        return value;
      }
      case 0x2a: { // * array
        const count = integer(rest);
        if (count < 0) return null;
        const keep = Math.min(count, this.#keep[depth] ?? 0);
        const out: unknown[] = [];
        for (let i = 0; i < keep; i++) out.push(await this.#value(depth + 1));
        if (count > keep) {
          await this.#skipValues(count - keep);
          out.push(new SkippedElements(count - keep));
        }
        return out;
      }
      default:
        throw new ProtocolError(`unexpected reply type ${JSON.stringify(line.slice(0, 1))}`);
    }
  }

  /** Reads past `count` values, nested ones included, keeping nothing (no recursion). */
  async #skipValues(count: number): Promise<void> {
    let pending = count;
    while (pending > 0) {
      pending--;
      const line = await this.#line();
      const type = line.charCodeAt(0);
      if (type === 0x24) {
        const length = integer(line.slice(1));
        if (length >= 0) await this.#skip(length + 2);
      } else if (type === 0x2a) {
        const elements = integer(line.slice(1));
        if (elements > 0) pending += elements;
      } else if (type !== 0x2b && type !== 0x2d && type !== 0x3a) {
        throw new ProtocolError(`unexpected reply type ${JSON.stringify(line.slice(0, 1))}`);
      }
    }
  }

  /** One line without its CRLF. */
  async #line(): Promise<string> {
    let searched = this.#start;
    for (;;) {
      const buffer = this.#buffer;
      for (let i = searched; i + 1 < this.#end; i++) {
        if (buffer[i] === CR && buffer[i + 1] === LF) {
          const line = decoder.decode(buffer.subarray(this.#start, i));
          this.#start = i + 2;
          return line;
        }
      }
      if (this.#end - this.#start >= MAX_LINE) throw new ProtocolError("reply line too long");
      searched = Math.max(this.#start, this.#end - 1);
      const moved = this.#start;
      await this.#fill();
      searched -= moved - this.#start;
    }
  }

  /** Exactly `length` bytes, in a new array. */
  async #bytes(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const buffered = Math.min(length, this.#end - this.#start);
    out.set(this.#buffer.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let filled = buffered;
    while (filled < length) {
      const n = await this.#read(out.subarray(filled));
      filled += n;
    }
    return out;
  }

  async #crlf(): Promise<void> {
    while (this.#end - this.#start < 2) await this.#fill();
    if (this.#buffer[this.#start] !== CR || this.#buffer[this.#start + 1] !== LF) {
      throw new ProtocolError("bulk string not followed by CRLF");
    }
    this.#start += 2;
  }

  /** Discards `length` bytes of the stream, CHUNK at a time. */
  async #skip(length: number): Promise<void> {
    let left = length;
    for (;;) {
      const buffered = Math.min(left, this.#end - this.#start);
      this.#start += buffered;
      left -= buffered;
      if (left === 0) return;
      this.#start = 0;
      this.#end = 0;
      this.#end = await this.#read(this.#buffer);
    }
  }

  /** Moves what is buffered to the front and reads more after it. */
  async #fill(): Promise<void> {
    const buffer = this.#buffer;
    if (this.#start > 0) {
      buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === buffer.length) throw new ProtocolError("reply line too long");
    this.#end += await this.#read(buffer.subarray(this.#end));
  }

  async #read(into: Uint8Array): Promise<number> {
    const conn = this.#conn;
    if (conn === null || this.#destroyed) throw new Error("connection closed");
    const n = await conn.read(into);
    if (n === null) throw new ProtocolError("Redis closed the connection");
    this.bytesRead += n;
    return n;
  }
}

function integer(text: string): number {
  if (!/^-?[0-9]{1,15}$/.test(text)) throw new ProtocolError("bad length or integer in reply");
  return Number(text);
}

function encodeCommand(args: ReadonlyArray<string>): Uint8Array {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${encoder.encode(arg).length}\r\n${arg}\r\n`;
  return encoder.encode(text);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}
