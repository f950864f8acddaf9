/**
 * The Redis keys of a cluster and how changes are spread over them (docs/cluster-design.md →
 * Keys). A cluster's changes are split into `shards` by info hash (changeBatch.ts `shardOf`);
 * every key of shard s carries the hash tag `{NAME:s}`, so in a Redis Cluster a shard's streams,
 * registry, snapshot and lease share one slot (one master), one XREAD may name them all, and a
 * script may touch them together. A standalone Redis has one shard.
 *
 *   otter:{NAME}:config            hash: `shards`, `format`; set by the first node (HSETNX)
 *   otter:{NAME:s}:n:<instance>    stream: one node instance's batches for shard s
 *   otter:{NAME:s}:nodes           sorted set: instances publishing to s, by ms of their last XADD
 *   otter:{NAME:s}:hello           stream: one tiny entry per new instance, to wake readers
 *   otter:{NAME:s}:snap            string: the manifest of shard s's current snapshot
 *   otter:{NAME:s}:snap:<v>:<i>    string: chunk i of snapshot version v
 *   otter:{NAME:s}:lease           string: the snapshot writer's lease (its instance)
 *   otter:{NAME:s}:version         string: INCRed for each snapshot version
 *   otter:{NAME:wt:<tag>}          pub/sub channel: WebTorrent signals for the node of that tag
 *                                  (wtRelay.ts; a sharded channel on a Redis Cluster)
 */

/** Shards of a cluster over a Redis Cluster, unless the cluster's config key says otherwise. */
export const DEFAULT_CLUSTER_SHARDS = 16;
/** Most shards a cluster may have (each costs every node a reading connection). */
export const MAX_CLUSTER_SHARDS = 256;
/** The key layout's version, in the config key: nodes of another layout refuse to join. */
export const KEY_FORMAT = "3";

export class ClusterKeys {
  constructor(readonly name: string) {}

  get config(): string {
    return `otter:{${this.name}}:config`;
  }

  /** The hash tag of shard s's keys, without braces. */
  tag(shard: number): string {
    return `${this.name}:${shard}`;
  }

  nodeStream(shard: number, instance: string): string {
    return `otter:{${this.tag(shard)}}:n:${instance}`;
  }

  /** The instance a node stream key names, or null for another key. */
  instanceOf(shard: number, key: string): string | null {
    const prefix = `otter:{${this.tag(shard)}}:n:`;
    return key.startsWith(prefix) ? key.slice(prefix.length) : null;
  }

  nodes(shard: number): string {
    return `otter:{${this.tag(shard)}}:nodes`;
  }

  hello(shard: number): string {
    return `otter:{${this.tag(shard)}}:hello`;
  }

  manifest(shard: number): string {
    return `otter:{${this.tag(shard)}}:snap`;
  }

  chunk(shard: number, version: number, index: number): string {
    return `otter:{${this.tag(shard)}}:snap:${version}:${index}`;
  }

  lease(shard: number): string {
    return `otter:{${this.tag(shard)}}:lease`;
  }

  version(shard: number): string {
    return `otter:{${this.tag(shard)}}:version`;
  }

  /** The channel of the WebTorrent signals for the node whose keys have tag `tag`. */
  signals(tag: number): string {
    return `otter:{${this.name}:wt:${tag}}`;
  }
}
