/**
 * The WebSocket server as the HTTP listeners see it from the start, loaded at the first upgrade:
 * wsServer.ts and what it imports (the frame reader, the WebTorrent tracker and its tables, the
 * JSON scanner) and its sweep timer are idle RSS that a tracker no WebTorrent client uses never
 * needs (docs/performance.md → Idle RSS). Until then this counts refusals into the counters the
 * server takes over (/stats, /metrics and the dashboard read them from the start), and holds the
 * sockets upgraded while the module loads: their bytes wait in the kernel, and the 101 goes out
 * once the server has them, in the order they came.
 */
import type { StreamConn } from "../tcp/streamConn.ts";
import { UPGRADE_BAD, UPGRADE_FULL, WsCounters } from "../../observe/wsCounters.ts";
import type { AddressKey, ConnectionsPerAddress } from "../../policy/connectionsPerAddress.ts";
import type { WsPeerKeys } from "../../cluster/wsPeerKeys.ts";
import type { Tracker } from "../tracker.ts";
import type { WsClient, WsLimits, WsServer } from "./wsServer.ts";

/** Default `maxQueuedBytes`: a few dozen offers, and a kernel send buffer's worth besides. */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024;

/** An upgraded socket that came while the server was loading. */
interface Waiting {
  conn: StreamConn;
  leftover: Uint8Array;
  accept: string;
  client: WsClient;
  addressKey: AddressKey | null;
}

export class LazyWsServer {
  readonly counters = new WsCounters();
  #limits: WsLimits;
  #server: WsServer | null = null;
  #loading: Promise<WsServer> | null = null;
  #waiting: Waiting[] = [];
  #stopping = false;

  constructor(
    private readonly tracker: Tracker,
    limits: WsLimits,
    private readonly perAddress: ConnectionsPerAddress | null,
    private readonly log: (line: string) => void,
    private readonly keys: WsPeerKeys,
  ) {
    this.#limits = limits;
  }

  /** The server, once loaded (tests, and the cluster's relay through `load()`). */
  get loaded(): WsServer | null {
    return this.#server;
  }

  /** As WsServer's: no room for another connection (those waiting for the load count). */
  get full(): boolean {
    if (this.#server !== null) return this.#server.full;
    return this.#stopping || this.#waiting.length >= this.#limits.maxConnections;
  }

  refused(full: boolean): void {
    this.counters.upgradesRefused[full ? UPGRADE_FULL : UPGRADE_BAD]++;
  }

  adopt(
    conn: StreamConn,
    leftover: Uint8Array,
    accept: string,
    client: WsClient,
    addressKey: AddressKey | null,
  ): void {
    if (this.#server !== null) {
      this.#server.adopt(conn, leftover, accept, client, addressKey);
      return;
    }
    this.#waiting.push({ conn, leftover, accept, client, addressKey });
    this.load().catch(() => {}); // said in the log by load()
  }

  setLimits(limits: WsLimits): void {
    this.#limits = limits;
    this.#server?.setLimits(limits);
  }

  /** Loads the server now if it is not yet (resolves at once when it is). */
  load(): Promise<WsServer> {
    this.#loading ??= import("./wsServer.ts").then(
      ({ WsServer }) => {
        const server = new WsServer(
          this.tracker,
          this.#limits,
          this.perAddress,
          this.log,
          this.keys,
          this.counters,
        );
        this.#server = server;
        this.#adoptWaiting(server);
        return server;
      },
      (error) => {
        // Not expected (the module is part of the program); the next upgrade tries again.
        this.#loading = null;
        this.log(`websocket: the server could not be loaded: ${error}`);
        this.#adoptWaiting(null);
        throw error;
      },
    );
    return this.#loading;
  }

  /** Hands the waiting sockets to `server`, or closes them (stopping, or no server). */
  #adoptWaiting(server: WsServer | null): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) {
      if (server !== null && !this.#stopping) {
        server.adopt(w.conn, w.leftover, w.accept, w.client, w.addressKey);
        continue;
      }
      try {
        w.conn.close();
      } catch { /* already closed */ }
      if (w.addressKey !== null) this.perAddress?.close(w.addressKey);
    }
  }

  /** As WsServer's; sockets still waiting for the load are closed. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    const server = this.#loading === null ? null : await this.#loading.catch(() => null);
    await server?.shutdown();
  }
}
