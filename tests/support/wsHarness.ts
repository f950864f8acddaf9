/**
 * otter's WebSocket tracker in the test process, wired as startTracker.ts wires it (the HTTP
 * server on 127.0.0.1 and a free port handing upgrades to a WsServer over one tracker), with the
 * limits a test wants; and a raw WebSocket client over one TCP connection that sends exact bytes
 * (masked frames from wsFrames.ts, or deliberately broken ones) and reads server frames with a
 * deadline on every read (deadlineReader.ts), so tests see precisely what went over the wire.
 */
import { parseCommandLine } from "../../src/config/config.ts";
import { Clock } from "../../src/config/clock.ts";
import { SwarmTable } from "../../src/store/swarmTable.ts";
import { Tracker } from "../../src/servers/tracker.ts";
import { HttpTracker } from "../../src/servers/http/httpTracker.ts";
import { type HttpLimits, HttpWireServer } from "../../src/servers/http/httpWire.ts";
import { type WsLimits, WsServer } from "../../src/servers/ws/wsServer.ts";
import { DEFAULT_MAX_QUEUED_BYTES } from "../../src/servers/ws/lazyWsServer.ts";
import { acceptFor } from "../../src/protocol/wsHandshake.ts";
import { OP_CLOSE, OP_PING, OP_TEXT } from "../../src/protocol/wsFrame.ts";
import { clientFrame } from "./wsFrames.ts";
import { DeadlineReader, writeAll } from "./deadlineReader.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface WsHarness extends AsyncDisposable {
  port: number;
  ws: WsServer;
  tracker: Tracker;
  http: HttpTracker;
  server: HttpWireServer;
  store: SwarmTable;
  clock: Clock;
  /** A client whose upgrade on `path` was accepted. */
  connect(path?: string): Promise<WsClient>;
}

/** The tracker over `flags` (as on the command line), the HTTP and WebSocket limits given. */
export function startWs(
  flags: string[] = [],
  limits: Partial<WsLimits> = {},
  httpLimits: Partial<HttpLimits> = {},
): WsHarness {
  const parsed = parseCommandLine(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", ...flags]);
  if (parsed.kind !== "run") throw new Error("flags do not run");
  const config = parsed.config;
  const clock = new Clock();
  clock.update();
  clock.start();
  const store = new SwarmTable({
    peerTimeout: config.peerTimeout,
    wsPeerTimeout: config.wsPeerTimeout,
    maxTorrents: config.maxTorrents,
    maxPeers: config.maxPeers,
    whenFull: config.whenFull,
  });
  const tracker = new Tracker(store, clock, config);
  const http = new HttpTracker(tracker);
  const ws = new WsServer(tracker, {
    maxConnections: limits.maxConnections ?? config.maxWsConnections,
    interval: limits.interval ?? config.wsInterval,
    messageTimeoutMs: limits.messageTimeoutMs ?? config.headerTimeout * 1000,
    maxQueuedBytes: limits.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
  }, http.connectionsPerAddress);
  http.upgrades = ws;
  const server = HttpWireServer.listen("127.0.0.1", 0, http, {
    maxConnections: httpLimits.maxConnections ?? 1000,
    maxConnectionsPerIp: httpLimits.maxConnectionsPerIp ?? 0,
    headerTimeoutMs: httpLimits.headerTimeoutMs ?? 10_000,
    idleTimeoutMs: httpLimits.idleTimeoutMs ?? 30_000,
    minSendRate: httpLimits.minSendRate ?? 65536,
  }, config.tcpIo);
  const port = server.addr.port;
  return {
    port,
    ws,
    tracker,
    http,
    server,
    store,
    clock,
    connect: (path = "/announce") => WsClient.open(port, path),
    [Symbol.asyncDispose]: async () => {
      await Promise.all([server.shutdown(), ws.shutdown()]);
      await server.drained;
      clock.stop();
    },
  };
}

/** One frame from the server. */
export type ServerFrame =
  | { kind: "text"; text: string; json: Record<string, unknown> }
  | { kind: "close"; code: number; reason: string }
  | { kind: "pong" | "ping" | "binary" | "other"; payload: Uint8Array }
  | { kind: "eof" };

/** A 20-character binary string made of `c` (or `c` then digits of `n`). */
export function id(c: string, n = -1): string {
  if (n < 0) return c.repeat(20);
  const tail = String(n);
  return c.repeat(20 - tail.length) + tail;
}

export class WsClient implements AsyncDisposable {
  readonly #reader: DeadlineReader;
  /** The 101 reply's head. */
  head = "";

  private constructor(readonly conn: Deno.TcpConn | Deno.TlsConn) {
    this.#reader = new DeadlineReader(conn);
  }

  /**
   * Connects and upgrades on `path` (with `headers`, each ending in CRLF, added to the request);
   * throws unless the answer is 101 with the right accept.
   */
  static async open(port: number, path = "/announce", headers = ""): Promise<WsClient> {
    return await (await WsClient.raw(port)).#upgrade(port, path, headers);
  }

  /** As `open`, over TLS (wss://), trusting `caCerts` (PEM) and offering ALPN http/1.1. */
  static async openTls(port: number, caCerts: string[], path = "/announce"): Promise<WsClient> {
    const hostname = "127.0.0.1";
    const tcp = await Deno.connect({ hostname, port });
    const tls = await Deno.startTls(tcp, { hostname, caCerts, alpnProtocols: ["http/1.1"] });
    return await new WsClient(tls).#upgrade(port, path, "");
  }

  async #upgrade(port: number, path: string, headers: string): Promise<WsClient> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await this.send(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        `${headers}\r\n`,
    );
    const head = await this.readHead();
    if (!head.startsWith("HTTP/1.1 101 ")) throw new Error(`upgrade refused: ${head}`);
    if (!head.includes(`Sec-WebSocket-Accept: ${acceptFor(key)}\r\n`)) {
      throw new Error(`wrong accept: ${head}`);
    }
    this.head = head;
    return this;
  }

  /** A TCP connection with nothing sent yet. */
  static async raw(port: number): Promise<WsClient> {
    return new WsClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  send(data: string | Uint8Array): Promise<void> {
    return writeAll(this.conn, data);
  }

  /** Sends one masked text frame. */
  text(message: string): Promise<void> {
    return this.send(clientFrame(OP_TEXT, message));
  }

  /** Sends `value` as JSON in one masked text frame. */
  json(value: unknown): Promise<void> {
    return this.text(JSON.stringify(value));
  }

  ping(payload = "hi"): Promise<void> {
    return this.send(clientFrame(OP_PING, payload));
  }

  /** Sends a close frame with `code`. */
  close(code = 1000): Promise<void> {
    return this.send(clientFrame(OP_CLOSE, Uint8Array.of(code >>> 8, code & 0xff)));
  }

  /** Reads an HTTP head (up to the blank line) as text. */
  async readHead(ms = 5000): Promise<string> {
    const deadline = performance.now() + ms;
    for (;;) {
      const text = decoder.decode(this.#reader.buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#reader.take(encoder.encode(text.slice(0, end + 4)).length);
        return text.slice(0, end + 4);
      }
      if (!(await this.#reader.fill(deadline))) return text;
    }
  }

  /** The next server frame (or eof); throws after `ms`. */
  async frame(ms = 5000): Promise<ServerFrame> {
    const deadline = performance.now() + ms;
    for (;;) {
      const frame = this.#parse();
      if (frame !== null) return frame;
      if (!(await this.#reader.fill(deadline))) return { kind: "eof" };
    }
  }

  /** The next text frame's JSON, skipping nothing; throws on anything else. */
  async message(ms = 5000): Promise<Record<string, unknown>> {
    const frame = await this.frame(ms);
    if (frame.kind !== "text") {
      throw new Error(`expected a text frame, got ${JSON.stringify(frame)}`);
    }
    return frame.json;
  }

  /** Text messages until none arrives for `quietMs`. */
  async drain(quietMs = 300): Promise<Record<string, unknown>[]> {
    const messages: Record<string, unknown>[] = [];
    for (;;) {
      let frame: ServerFrame;
      try {
        frame = await this.frame(quietMs);
      } catch {
        return messages;
      }
      if (frame.kind === "text") messages.push(frame.json);
      else return messages;
    }
  }

  /** Reads until the server's close frame and the end of the connection; returns the close. */
  async closed(ms = 5000): Promise<{ code: number; reason: string }> {
    const deadline = performance.now() + ms;
    let close: { code: number; reason: string } | null = null;
    for (;;) {
      const frame = await this.frame(Math.max(1, deadline - performance.now()));
      if (frame.kind === "close") close = { code: frame.code, reason: frame.reason };
      if (frame.kind === "eof") {
        if (close === null) throw new Error("connection ended without a close frame");
        return close;
      }
    }
  }

  #parse(): ServerFrame | null {
    const b = this.#reader.buffer;
    if (b.length < 2) return null;
    if ((b[1] & 0x80) !== 0) throw new Error("the server masked a frame");
    let length = b[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = (b[2] << 8) | b[3];
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = 0;
      for (let i = 2; i < 10; i++) length = length * 256 + b[i];
      at = 10;
    }
    if (b.length < at + length) return null;
    if ((b[0] & 0x80) === 0) throw new Error("the server fragmented a message");
    const payload = b.slice(at, at + length);
    this.#reader.buffer = b.slice(at + length);
    switch (b[0] & 0x0f) {
      case OP_TEXT: {
        const text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
        return { kind: "text", text, json: JSON.parse(text) };
      }
      case OP_CLOSE:
        return {
          kind: "close",
          code: payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005,
          reason: decoder.decode(payload.subarray(2)),
        };
      case 0xa:
        return { kind: "pong", payload };
      case 0x9:
        return { kind: "ping", payload };
      case 0x2:
        return { kind: "binary", payload };
      default:
        return { kind: "other", payload };
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Closed by the server first.
    }
    // Let a pending read settle so the test's op sanitizer sees no leak.
    await this.#reader.settled();
  }
}

/** An announce as webtorrent sends it; `offers` SDPs as given (offer ids from `offerTag`). */
export function announce(
  hash: string,
  peer: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    action: "announce",
    info_hash: hash,
    peer_id: peer,
    uploaded: 0,
    downloaded: 0,
    left: 100,
    numwant: 5,
    ...extra,
  };
}

/** `n` offers with ids made of the character `tag` and their number, from `first`. */
export function offers(n: number, tag = "o", sdp = "v=0\r\nOFFER", first = 0): unknown[] {
  return Array.from({ length: n }, (_, i) => ({
    offer_id: id(tag, first + i),
    offer: { type: "offer", sdp },
  }));
}

/** Waits until `condition` holds (polling every 10 ms); throws after `ms`. */
export async function until(what: string, condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
