/**
 * The cluster's config in Redis (clusterKeys.ts `config`): a hash of its key format, its shard
 * count and an epoch, each set by the first node that connects (HSETNX) and read by every node at
 * each connect. A node of another key format refuses the cluster (all nodes upgrade together); a
 * changed epoch means Redis lost the cluster's data since the node last looked (redisCluster.ts).
 */
import { instanceHex } from "./changeBatch.ts";
import { KEY_FORMAT, MAX_CLUSTER_SHARDS } from "./clusterKeys.ts";
import { RedisUnsupportedError } from "./redisCommands.ts";
import { type RedisLink, textOf } from "./redisLink.ts";

export interface ClusterConfig {
  /** The cluster's shard count: what the first node asked for. */
  shards: number;
  /** Random, set when the config was made: another one means Redis lost the cluster's data. */
  epoch: string;
}

/**
 * Reads the cluster's config at `key`, creating it with `shards` if this node is the first;
 * rejects with a RedisUnsupportedError for another key format or a shard count out of range.
 */
export async function readClusterConfig(
  link: RedisLink,
  key: string,
  shards: number,
): Promise<ClusterConfig> {
  const epoch = instanceHex(crypto.getRandomValues(new Uint8Array(8)));
  await link.send(key, ["HSETNX", key, "format", KEY_FORMAT]);
  await link.send(key, ["HSETNX", key, "shards", String(shards)]);
  await link.send(key, ["HSETNX", key, "epoch", epoch]);
  const reply = await link.send(key, ["HGETALL", key]);
  if (!Array.isArray(reply)) throw new Error("unexpected HGETALL reply");
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) {
    fields.set(textOf(reply[i]), textOf(reply[i + 1]));
  }
  const format = fields.get("format");
  if (format !== KEY_FORMAT) {
    throw new RedisUnsupportedError(
      `its key ${key} says key format ${JSON.stringify(format)}, not ${KEY_FORMAT}: nodes of ` +
        "another otter version use this cluster name (all nodes of a cluster upgrade together)",
    );
  }
  const adopted = Number(fields.get("shards"));
  if (!Number.isInteger(adopted) || adopted < 1 || adopted > MAX_CLUSTER_SHARDS) {
    throw new RedisUnsupportedError(`its key ${key} names ${fields.get("shards")} shards`);
  }
  return { shards: adopted, epoch: fields.get("epoch") ?? "" };
}
