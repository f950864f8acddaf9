/**
 * The cluster sync's writing link to Redis: one node-redis client for a standalone Redis, or
 * node-redis's cluster client (createCluster) for a Redis Cluster, which learns the slots with
 * CLUSTER SLOTS, sends each command to its key's master and follows MOVED and ASK by itself. The
 * sync sends every command through `send(key, args)` with a reply deadline; the readers
 * (shardReader.ts) open their own bounded connections to `masterFor(key)`.
 *
 * Which one a `--cluster` list names is asked of its first reachable server (INFO cluster): a
 * list of more than one URL must name a Redis Cluster. Credentials, TLS and options come from
 * the first URL (a Redis Cluster has database 0 only).
 */
import { Buffer } from "node:buffer";
// Pinned inline, as the team rules ask for npm packages.
// deno-lint-ignore no-import-prefix
import { createClient, createCluster, ErrorReply, RESP_TYPES } from "npm:@redis/client@6.3.1";
import { keySlot } from "../hash/crc16.ts";
import { parseInfo } from "./redisInfo.ts";
import { type RedisConnection, RedisUnsupportedError, send, withTimeout } from "./redisCommands.ts";

export interface RedisAddress {
  host: string;
  port: number;
}

/** A command sender routed to one key's master, in the shape redisCommands.ts takes. */
export type KeyConnection = RedisConnection;

interface ClusterClient {
  connect(): Promise<unknown>;
  sendCommand(
    firstKey: string | undefined,
    readonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
  ): Promise<unknown>;
  destroy(): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  getSlotMaster(slot: number): { host: string; port: number };
  readonly masters: { host: string; port: number }[];
  nodeClient(node: { host: string; port: number }): Promise<RedisConnection>;
}

/** "host:port", as logs and /metrics labels say a server. */
export function serverName(address: RedisAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

export function addressOf(url: string): RedisAddress {
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: Number(parsed.port || "6379"),
  };
}

export interface RedisLinkOptions {
  /** The `--cluster` URLs (at least one); the first gives credentials and TLS. */
  urls: readonly string[];
  commandTimeoutMs: number;
  /** Told of a socket error on the link: the session using it is over. */
  onError: () => void;
}

export class RedisLink {
  readonly #options: RedisLinkOptions;
  #single: RedisConnection | null = null;
  #cluster: ClusterClient | null = null;
  #destroyed = false;

  constructor(options: RedisLinkOptions) {
    this.#options = options;
  }

  /** Whether the link is to a Redis Cluster (known once connected). */
  get isCluster(): boolean {
    return this.#cluster !== null;
  }

  /**
   * Connects: asks the first server that answers whether it is a Redis Cluster (or trusts
   * `clusterMode` once known), then opens the client for it. Rejects on failure; the caller
   * destroys the link.
   */
  async connect(clusterMode: boolean | null): Promise<void> {
    const urls = this.#options.urls;
    let cluster = clusterMode;
    if (cluster === null) cluster = await this.#askClusterMode(urls);
    if (this.#destroyed) throw new Error("connection closed");
    if (!cluster) {
      if (urls.length > 1) {
        throw new RangeError(
          "--cluster names several servers, but they are not a Redis Cluster " +
            "(cluster_enabled:0): give one URL for a standalone Redis",
        );
      }
      const client = this.#client(urls[0]);
      this.#single = client;
      await withTimeout(client.connect(), this.#options.commandTimeoutMs, client);
      return;
    }
    const first = new URL(urls[0]);
    const client = createCluster({
      rootNodes: urls.map((url) => ({ url })),
      defaults: {
        username: decodeURIComponent(first.username) || undefined,
        password: decodeURIComponent(first.password) || undefined,
        socket: {
          tls: first.protocol === "rediss:",
          connectTimeout: this.#options.commandTimeoutMs,
          reconnectStrategy: false,
        },
        disableOfflineQueue: true,
      },
      RESP: 2,
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
    }) as unknown as ClusterClient;
    client.on("error", () => {
      if (this.#cluster === client) this.#options.onError();
    });
    this.#cluster = client;
    await withTimeout(client.connect(), this.#options.commandTimeoutMs, client);
  }

  async #askClusterMode(urls: readonly string[]): Promise<boolean> {
    let lastError: unknown = new Error("no URL");
    const ms = this.#options.commandTimeoutMs;
    for (const url of urls) {
      const probe = this.#client(url, false);
      try {
        await withTimeout(probe.connect(), ms, probe);
        let reply: unknown;
        try {
          reply = await send(probe, ms, ["INFO", "cluster"]);
        } catch (error) {
          // A server that will not say (INFO renamed away, or forbidden) is taken as standalone.
          if (error instanceof ErrorReply || error instanceof RedisUnsupportedError) return false;
          throw error;
        }
        return parseInfo(textOf(reply)).get("cluster_enabled") === "1";
      } catch (error) {
        lastError = error;
      } finally {
        probe.destroy();
      }
    }
    throw lastError;
  }

  #client(url: string, watch = true): RedisConnection {
    const client = createClient({
      url,
      RESP: 2,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false, connectTimeout: this.#options.commandTimeoutMs },
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
    }) as unknown as RedisConnection;
    // Without a listener an "error" event would end the process.
    client.on("error", () => {
      if (watch && this.#single === client) this.#options.onError();
    });
    return client;
  }

  /** Sends one command to `key`'s master (any server for a key-less command), with a deadline. */
  send(key: string | undefined, args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    return send(this.forKey(key), this.#options.commandTimeoutMs, args);
  }

  /** Sends one command on `connection` (one of `masters()`), with a deadline. */
  sendOn(connection: RedisConnection, args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    return send(connection, this.#options.commandTimeoutMs, args);
  }

  /** A connection-shaped sender routed by `key`, for redisCommands.ts's checks. */
  forKey(key: string | undefined): KeyConnection {
    const cluster = this.#cluster;
    if (cluster === null) {
      if (this.#single === null) throw new Error("not connected");
      return this.#single;
    }
    return {
      connect: () => Promise.resolve(),
      sendCommand: (args) => cluster.sendCommand(key, false, args),
      destroy: () => this.destroy(),
      on: () => undefined,
    };
  }

  /** The address of the master serving `key` (the URL's server when standalone). */
  masterFor(key: string): RedisAddress {
    const cluster = this.#cluster;
    if (cluster === null) return addressOf(this.#options.urls[0]);
    const master = cluster.getSlotMaster(keySlot(key));
    return { host: master.host, port: master.port };
  }

  /** Every master, each with a sender (for INFO). */
  async masters(): Promise<{ server: string; connection: RedisConnection }[]> {
    const cluster = this.#cluster;
    if (cluster === null) {
      if (this.#single === null) return [];
      return [{ server: serverName(addressOf(this.#options.urls[0])), connection: this.#single }];
    }
    const out: { server: string; connection: RedisConnection }[] = [];
    for (const master of cluster.masters) {
      out.push({ server: serverName(master), connection: await cluster.nodeClient(master) });
    }
    return out;
  }

  /** A URL for a reading connection to `address`, with the first URL's credentials and TLS. */
  urlFor(address: RedisAddress): string {
    const url = new URL(this.#options.urls[0]);
    url.hostname = address.host.includes(":") ? `[${address.host}]` : address.host;
    url.port = String(address.port);
    if (this.#cluster !== null) url.pathname = "";
    return url.href;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#single?.destroy();
    this.#cluster?.destroy();
  }
}

/** A reply's text (node-redis gives bulk strings as Buffers here). */
export function textOf(reply: unknown): string {
  return reply instanceof Uint8Array ? new TextDecoder().decode(reply) : String(reply);
}
