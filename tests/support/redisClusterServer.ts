/**
 * A throw-away Redis Cluster for tests and benches: `masters` redis-server processes in cluster
 * mode (plus `replicasPerMaster` replicas each) on free loopback ports, no persistence, joined
 * with `redis-cli --cluster create`, stopped by PID. `haveRedisServer()` (redisServer.ts) tells
 * whether the binaries are installed.
 *
 * Each node gets two free ports: its client port and its cluster bus port (`--cluster-port`,
 * Redis 7.0+; by default the bus is the client port + 10000, which may be taken or past 65535
 * when the client port is an ephemeral one). `--cluster-node-timeout` is short (default 1000 ms)
 * so a failover after `kill()` happens within seconds. The node files live in a temporary
 * directory removed by `stop()`.
 */

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** `cluster-node-timeout`: how long a master may be unreachable before a failover (ms). */
  nodeTimeoutMs?: number;
}

export interface ClusterNodeInfo {
  port: number;
  role: "master" | "replica";
  /** Slot ranges [first, last] it serves (masters), from CLUSTER SHARDS. */
  slots: [number, number][];
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs redis-cli with `args`; its stdout (trimmed), or throws with its output. */
export async function redisCli(args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("redis-cli", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  if (!success) {
    throw new Error(`redis-cli ${args.join(" ")}: ${text} ${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

export class RedisClusterServer {
  readonly masters: number;
  readonly replicasPerMaster: number;
  readonly nodeTimeoutMs: number;
  readonly #children = new Map<number, Deno.ChildProcess>();
  #dir = "";

  constructor(options: RedisClusterOptions = {}) {
    this.masters = options.masters ?? 3;
    this.replicasPerMaster = options.replicasPerMaster ?? 0;
    this.nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  }

  /** Client ports of every node started (masters first, as `--cluster create` was given them). */
  get ports(): number[] {
    return [...this.#children.keys()];
  }

  /** `host:port` of every node, e.g. for a `--cluster` seed list. */
  get seeds(): string[] {
    return this.ports.map((port) => `127.0.0.1:${port}`);
  }

  /** Starts the nodes, creates the cluster and waits until every node reports it healthy. */
  async start(): Promise<void> {
    this.#dir = await Deno.makeTempDir({ prefix: "redis-cluster-" });
    const count = this.masters * (1 + this.replicasPerMaster);
    // A port just closed may be handed out again: never give two roles the same number.
    const taken = new Set<number>();
    const pick = () => {
      let port = freePort();
      while (taken.has(port)) port = freePort();
      taken.add(port);
      return port;
    };
    for (let i = 0; i < count; i++) {
      const port = pick();
      const bus = pick();
      const dir = `${this.#dir}/${port}`;
      await Deno.mkdir(dir);
      const child = new Deno.Command("redis-server", {
        args: [
          "--port",
          String(port),
          "--cluster-port",
          String(bus),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          "nodes.conf",
          "--cluster-node-timeout",
          String(this.nodeTimeoutMs),
          "--save",
          "",
          "--appendonly",
          "no",
          // A replica's first sync would otherwise wait 5 s for more replicas to join it.
          "--repl-diskless-sync-delay",
          "0",
          // CLUSTER SHARDS calls a replica "loading" until its offset moves: ping it each second.
          "--repl-ping-replica-period",
          "1",
          "--dir",
          dir,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      this.#children.set(port, child);
    }
    for (const port of this.ports) await this.#waitFor(port, "PING", (reply) => reply === "PONG");
    await redisCli([
      "--cluster",
      "create",
      ...this.seeds,
      "--cluster-replicas",
      String(this.replicasPerMaster),
      "--cluster-yes",
    ]);
    for (const port of this.ports) {
      await this.#waitFor(port, "CLUSTER INFO", (reply) => /cluster_state:ok/.test(reply));
    }
    await this.waitHealthy();
  }

  /**
   * Waits until every live node sees all 16384 slots served by the expected number of masters,
   * and every live node is online (replicas synced) in CLUSTER SHARDS.
   */
  async waitHealthy(ms = 20_000): Promise<void> {
    const deadline = performance.now() + ms;
    for (;;) {
      let healthy = (await this.topology()).length === this.#children.size;
      for (const port of this.ports) {
        try {
          const info = await redisCli(["-p", String(port), "CLUSTER", "INFO"]);
          if (
            !/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info) ||
            !new RegExp(`cluster_size:${this.masters}\\b`).test(info)
          ) {
            healthy = false;
          }
        } catch {
          healthy = false;
        }
      }
      if (healthy) return;
      if (performance.now() > deadline) throw new Error("redis cluster did not become healthy");
      await sleep(100);
    }
  }

  /** The nodes' roles and slot ranges, from CLUSTER SHARDS (Redis 7.0+), asked of `port`. */
  async topology(port = this.ports[0]): Promise<ClusterNodeInfo[]> {
    const text = await redisCli(["-p", String(port), "--json", "CLUSTER", "SHARDS"]).catch(
      () => "",
    );
    const out: ClusterNodeInfo[] = [];
    if (text !== "") {
      // redis-cli --json (7.0+) renders the RESP3 maps as objects.
      for (
        const shard of JSON.parse(text) as { slots: number[]; nodes: Record<string, unknown>[] }[]
      ) {
        const slots: [number, number][] = [];
        for (let i = 0; i + 1 < shard.slots.length; i += 2) {
          slots.push([shard.slots[i], shard.slots[i + 1]]);
        }
        for (const node of shard.nodes) {
          if (node.health !== "online") continue;
          out.push({
            port: Number(node.port),
            role: node.role === "master" ? "master" : "replica",
            slots: node.role === "master" ? slots : [],
          });
        }
      }
    }
    return out;
  }

  /** The port of the master serving `key` now (CLUSTER KEYSLOT, then the topology). */
  async masterFor(key: string): Promise<number> {
    const slot = Number(await redisCli(["-p", String(this.ports[0]), "CLUSTER", "KEYSLOT", key]));
    for (const node of await this.topology()) {
      if (node.role === "master" && node.slots.some(([a, b]) => slot >= a && slot <= b)) {
        return node.port;
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** SIGKILLs one node (to test failover); `stop()` still cleans up the others. */
  async kill(port: number): Promise<void> {
    const child = this.#children.get(port);
    if (child === undefined) return;
    this.#children.delete(port);
    child.kill("SIGKILL");
    await child.status;
  }

  async stop(): Promise<void> {
    for (const port of this.ports) await this.kill(port);
    if (this.#dir !== "") await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
    this.#dir = "";
  }

  async #waitFor(port: number, command: string, ok: (reply: string) => boolean): Promise<void> {
    const deadline = performance.now() + 10_000;
    for (;;) {
      try {
        if (ok(await redisCli(["-p", String(port), ...command.split(" ")]))) return;
      } catch {
        // Not up yet.
      }
      if (performance.now() > deadline) throw new Error(`redis node ${port}: ${command} never ok`);
      await sleep(50);
    }
  }
}
