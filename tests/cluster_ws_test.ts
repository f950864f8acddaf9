/**
 * WebSocket peers in a cluster, two otter processes and one redis-server: a WebSocket peer's
 * counts reach the other node's scrape (and a completion counts once there), its socket's close
 * takes it out everywhere; an offer for a peer connected to the other node goes there through
 * Redis and its answer comes back the same way, once; and a signal on a node's channel that is
 * forged, another cluster's, damaged, oversized, stale, replayed, misaddressed or unsolicited is
 * refused and counted, never forwarded to a socket.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:@redis/client@6.3.1";
import { type OtterProcess, startOtter } from "./support/otterProcess.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { clusterArgs, secretFile } from "./support/clusterOtters.ts";
import { announce, id, offers, WsClient } from "./support/wsHarness.ts";
import {
  decodeSignal,
  encodeSignal,
  MAX_SIGNAL_BYTES,
  SignalMac,
} from "../src/cluster/wtSignalFormat.ts";
import { SIGNAL_ANSWER, SIGNAL_OFFER, WtSignal } from "../src/cluster/wtSignal.ts";
import { crc32 } from "../src/hash/crc32.ts";

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_ws_test: skipped, no redis-server binary on PATH");

const H = id("h");
const SECRET = "the WebSocket cluster test's secret";

async function scrape(base: string): Promise<number[]> {
  const body = new TextDecoder("latin1").decode(
    new Uint8Array(
      await (await fetch(`${base}/scrape?info_hash=${encodeURIComponent(H)}`))
        .arrayBuffer(),
    ),
  );
  const figure = (key: string) => Number(new RegExp(`${key}i(\\d+)e`).exec(body)?.[1] ?? NaN);
  return [figure("complete"), figure("incomplete"), figure("downloaded")];
}

async function eventually(what: string, probe: () => Promise<number[]>, want: number[]) {
  const deadline = performance.now() + 30_000;
  let last: number[] = [];
  while (performance.now() < deadline) {
    last = await probe();
    if (JSON.stringify(last) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
}

/** The samples of one metric family, by their labels. */
async function samples(otter: OtterProcess, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${otter.http[0]}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const match of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, "gm"))) {
    out[match[1] ?? ""] = Number(match[2]);
  }
  return out;
}

const portOf = (otter: OtterProcess) => Number(new URL(otter.http[0]).port);

async function startPair(redis: RedisServer): Promise<[OtterProcess, OtterProcess]> {
  const secret = await secretFile(SECRET);
  const a = await startOtter(clusterArgs(redis.url, "ws", "a", secret));
  const b = await startOtter(clusterArgs(redis.url, "ws", "b", secret));
  return [a, b];
}

Deno.test({
  name: "cluster: WebSocket peers' counts reach every node; offers and answers cross nodes",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const [a, b] = await startPair(redis);
    try {
      await using seeder = await WsClient.open(portOf(a));
      await seeder.json(announce(H, id("s"), { event: "completed", left: 0 }));
      await seeder.message();
      await using leecher = await WsClient.open(portOf(a));
      await leecher.json(announce(H, id("l"), { event: "started" }));
      await leecher.message();
      await eventually("B counts A's WebSocket peers", () => scrape(b.http[0]), [1, 1, 1]);

      // On B, a WebSocket announce with three offers: B's swarm holds A's two peers, reachable
      // through A: each gets one offer, through Redis, with B's client's peer_id.
      await using onB = await WsClient.open(portOf(b));
      await onB.json(announce(H, id("b"), { event: "started", offers: offers(3) }));
      const reply = await onB.message();
      assert.deepEqual([reply.complete, reply.incomplete], [1, 2]);
      const offer = await seeder.message(30_000);
      assert.equal(offer.peer_id, id("b"));
      assert.equal(offer.info_hash, H);
      assert.deepEqual(offer.offer, { type: "offer", sdp: "v=0\r\nOFFER" });
      const other = await leecher.message(30_000);
      assert.equal(other.peer_id, id("b"));
      assert.notEqual(other.offer_id, offer.offer_id);

      // The seeder answers on A: B's client gets it, the seeder nothing back.
      const answer = {
        action: "announce",
        info_hash: H,
        peer_id: id("s"),
        to_peer_id: id("b"),
        offer_id: offer.offer_id,
        answer: { type: "answer", sdp: "v=0\r\nANSWER" },
      };
      await seeder.json(answer);
      assert.deepEqual(await onB.message(30_000), {
        action: "announce",
        info_hash: H,
        peer_id: id("s"),
        offer_id: offer.offer_id,
        answer: { type: "answer", sdp: "v=0\r\nANSWER" },
      });
      // A second answer to the same offer: A forwarded it once, so no offer is pending.
      await seeder.json(answer);
      assert.match(String((await seeder.message())["failure reason"]), /no matching offer/);
      assert.deepEqual(await onB.drain(500), []);
      // Another connection cannot answer in the seeder's name (its peer_id is bound on A).
      await using thief = await WsClient.open(portOf(a));
      await thief.json({ ...answer, offer_id: other.offer_id });
      assert.match(String((await thief.message())["failure reason"]), /in use/);

      assert.deepEqual(await samples(b, "otter_cluster_ws_signals_sent_total"), {
        '{kind="offer"}': 2,
        '{kind="answer"}': 0,
      });
      assert.deepEqual(await samples(a, "otter_cluster_ws_signals_received_total"), {
        '{kind="offer"}': 2,
        '{kind="answer"}': 0,
      });
      assert.deepEqual(await samples(b, "otter_cluster_ws_signals_received_total"), {
        '{kind="offer"}': 0,
        '{kind="answer"}': 1,
      });
      assert.equal((await samples(a, "otter_ws_offers_forwarded_total"))[""], 2);
      assert.equal((await samples(b, "otter_ws_answers_relayed_total"))[""], 1);
      await eventually("A counts B's WebSocket peer", () => scrape(a.http[0]), [1, 2, 1]);

      // Closing the seeder's socket on A takes it out on both nodes.
      seeder.conn.close();
      await eventually("A forgets the closed seeder", () => scrape(a.http[0]), [0, 2, 1]);
      await eventually("B forgets it too", () => scrape(b.http[0]), [0, 2, 1]);
      const metrics = await (await fetch(`${b.http[0]}/metrics`)).text();
      assert.match(metrics, /\notter_peers\{family="ws"\} 2\n/);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  },
});

interface Raw {
  sendCommand(args: (string | Buffer)[]): Promise<unknown>;
  destroy(): void;
}

Deno.test({
  name: "cluster: a forged, foreign, damaged, stale, replayed or misaddressed signal is refused " +
    "and counted, never forwarded",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const [a, b] = await startPair(redis);
    // A listener on every signal channel of cluster "ws", to catch a genuine offer.
    const caught: Uint8Array[] = [];
    const listener = createClient({ url: redis.url, RESP: 2 });
    listener.on("error", () => {});
    await listener.connect();
    await listener.pSubscribe(
      "otter:{ws:wt:*}",
      (message: Buffer) => caught.push(new Uint8Array(message)),
      true,
    );
    const raw = createClient({ url: redis.url, RESP: 2 }) as unknown as Raw & {
      connect(): Promise<unknown>;
    };
    await raw.connect();
    try {
      await using target = await WsClient.open(portOf(a));
      await target.json(announce(H, id("t"), { event: "started" }));
      await target.message();
      await eventually("B counts A's peer", () => scrape(b.http[0]), [0, 1, 0]);
      await using onB = await WsClient.open(portOf(b));
      await onB.json(announce(H, id("b"), { event: "started", offers: offers(1) }));
      await onB.message();
      const genuine = await target.message(30_000);
      assert.equal(genuine.peer_id, id("b"));
      const bytes = caught.find((m) => m[9] === SIGNAL_OFFER)!;
      assert.ok(bytes !== undefined, "the offer was seen on its channel");
      const right = new SignalMac(new TextEncoder().encode(SECRET), "ws");
      const signal = new WtSignal();
      assert.equal(decodeSignal(bytes, right, signal), null);
      const channel = `otter:{ws:wt:${signal.toTag}}`;
      const publish = (value: Uint8Array) =>
        raw.sendCommand(["PUBLISH", channel, Buffer.from(value)]);
      const resealed = (
        change: (s: WtSignal) => void,
        mac: SignalMac = right,
      ): Uint8Array => {
        const copy = new WtSignal();
        decodeSignal(bytes, right, copy);
        copy.sentAtMs = Date.now();
        change(copy);
        return encodeSignal(copy, mac)!;
      };

      // Replayed as it was: the offer is pending on A already.
      await publish(bytes);
      // Damaged (checksum made right again, so the MAC is what catches it), truncated, oversized.
      const damaged = bytes.slice();
      damaged[damaged.length - 1] ^= 1;
      new DataView(damaged.buffer).setUint32(4, crc32(damaged, 8));
      await publish(damaged);
      await publish(bytes.subarray(0, 100));
      await publish(new Uint8Array(MAX_SIGNAL_BYTES + 1).fill(7));
      // Sealed under another secret, and by a cluster of another name with the right secret.
      const otherSecret = new SignalMac(new TextEncoder().encode("not the cluster's secret"), "ws");
      await publish(resealed((s) => s.offerId.fill(0x41), otherSecret));
      const otherCluster = new SignalMac(new TextEncoder().encode(SECRET), "other");
      await publish(resealed((s) => s.offerId.fill(0x42), otherCluster));
      // Authentic but stale (sent 200 s ago), for another tag, for no peer of A's.
      await publish(resealed((s) => {
        s.offerId.fill(0x43);
        s.sentAtMs = Date.now() - 200_000;
      }));
      await publish(resealed((s) => {
        s.offerId.fill(0x44);
        s.toTag = s.toTag === 1 ? 2 : s.toTag - 1;
      }));
      await publish(resealed((s) => {
        s.offerId.fill(0x45);
        s.toKey = (s.toKey ^ 0x00ff00ff) >>> 0;
      }));
      // An authentic answer to an offer A never sent.
      await publish(resealed((s) => {
        s.kind = SIGNAL_ANSWER;
        s.offerId.fill(0x46);
        s.toPeerId.set(new TextEncoder().encode(id("t")));
      }));
      // And a control: authentic, fresh, a new offer id: forwarded.
      await publish(resealed((s) => s.offerId.fill(0x47)));
      const control = await target.message(30_000);
      assert.equal(control.offer_id, "G".repeat(20));
      assert.deepEqual(await target.drain(500), [], "nothing else reached the socket");
      assert.deepEqual(await samples(a, "otter_cluster_ws_signals_refused_total"), {
        '{reason="malformed"}': 1,
        '{reason="oversized"}': 1,
        '{reason="bad_mac"}': 3,
        '{reason="expired"}': 1,
        '{reason="not_ours"}': 2,
        '{reason="rate"}': 0,
        '{reason="no_offer"}': 1,
        '{reason="replayed"}': 1,
      });
      // Taken in by the relay (then checked by the tracker): the genuine offer, its replay, the
      // one for no peer of A's, the control; and the unsolicited answer.
      assert.deepEqual(await samples(a, "otter_cluster_ws_signals_received_total"), {
        '{kind="offer"}': 4,
        '{kind="answer"}': 1,
      });
    } finally {
      raw.destroy();
      await listener.disconnect().catch(() => {});
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  },
});
