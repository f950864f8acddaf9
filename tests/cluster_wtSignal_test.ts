/**
 * WebTorrent signals between nodes: the wire form round-trips every field, and every damage has
 * its reason (src/cluster/wtSignalFormat.ts); then the relay over a real redis-server
 * (src/cluster/wtRelay.ts): two nodes exchange signals on their channels, and a node takes in and
 * sends out no more than its rate (a burst of twice it), counting the rest; over a Redis Cluster
 * each node listens on its channel's master with sharded pub/sub.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:@redis/client@6.3.1";
import {
  decodeSignal,
  encodeSignal,
  MAX_SDP_BYTES,
  MAX_SIGNAL_BYTES,
  SIGNAL_HEADER,
  SignalMac,
} from "../src/cluster/wtSignalFormat.ts";
import { SIGNAL_ANSWER, SIGNAL_OFFER, WtSignal } from "../src/cluster/wtSignal.ts";
import { crc32 } from "../src/hash/crc32.ts";
import { haveRedisServer, RedisServer } from "./support/redisServer.ts";
import { makeNode, SECRET, stopAll, waitFor } from "./support/clusterNodes.ts";
import { redisCli, RedisClusterServer } from "./support/redisClusterServer.ts";

const KEY = new TextEncoder().encode("the signal tests' cluster secret");
const MAC = new SignalMac(KEY, "prod");

function sample(kind = SIGNAL_OFFER, sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"): WtSignal {
  const signal = new WtSignal();
  signal.kind = kind;
  signal.toTag = 0xbeef;
  signal.fromTag = 7;
  signal.sentAtMs = 1_800_000_000_123;
  signal.infoHash.fill(1);
  signal.toKey = 0x80000005;
  signal.fromKey = 0xfedcba98;
  signal.offerId.fill(2);
  signal.peerId.fill(3);
  if (kind === SIGNAL_ANSWER) signal.toPeerId.fill(4);
  // As a client's message holds it: a JSON string token, here inside some other bytes.
  signal.sdp = new TextEncoder().encode(`xx${JSON.stringify(sdp)}yy`);
  signal.sdpStart = 2;
  signal.sdpEnd = signal.sdp.length - 2;
  return signal;
}

/** A signal's SDP as text. */
function sdpOf(signal: WtSignal): string {
  return JSON.parse(new TextDecoder().decode(signal.sdp.subarray(signal.sdpStart, signal.sdpEnd)));
}

/** A signal's fields, its SDP as text. */
function fields(signal: WtSignal): Record<string, unknown> {
  const { sdp: _, sdpStart: _s, sdpEnd: _e, ...rest } = signal;
  return { ...rest, sdp: sdpOf(signal) };
}

Deno.test("a signal round-trips every field, an SDP of up to 16384 UTF-16 units as its JSON", () => {
  const sdps = ["", 'v=0\r\n"\\', "é€😀".repeat(100), "😀".repeat(8192), "€".repeat(16384)];
  for (const kind of [SIGNAL_OFFER, SIGNAL_ANSWER]) {
    for (const sdp of [...sdps, "\u0001".repeat(9000)]) {
      const sent = sample(kind, sdp);
      const bytes = encodeSignal(sent, MAC)!;
      assert.ok(bytes.length <= MAX_SIGNAL_BYTES);
      const read = new WtSignal();
      assert.equal(decodeSignal(bytes, MAC, read), null);
      assert.deepEqual(fields(read), fields(sent));
      // The token itself, byte for byte, as the client wrote it.
      assert.deepEqual(
        read.sdp.subarray(read.sdpStart, read.sdpEnd),
        sent.sdp.subarray(sent.sdpStart, sent.sdpEnd),
      );
    }
  }
  // 11,000 escaped units (66,002 bytes): more than a signal carries.
  assert.equal(encodeSignal(sample(SIGNAL_OFFER, "\u0001".repeat(11000)), MAC), null);
  assert.equal(MAX_SIGNAL_BYTES, SIGNAL_HEADER + MAX_SDP_BYTES);
});

/** Recomputes the checksum, so a test reaches the checks behind it. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32(bytes, 8));
  return bytes;
}

Deno.test("a truncated, damaged, forged, foreign or oversized signal is refused by reason", () => {
  const bytes = encodeSignal(sample(), MAC)!;
  const out = new WtSignal();
  for (let length = 0; length < bytes.length; length++) {
    assert.equal(decodeSignal(bytes.subarray(0, length), MAC, out), "malformed", `${length}`);
  }
  for (let at = 0; at < bytes.length; at++) {
    const flipped = bytes.slice();
    flipped[at] ^= 0x01;
    assert.notEqual(decodeSignal(flipped, MAC, out), null, `flip at ${at}`);
    // With the checksum right again, the MAC catches what the structure does not.
    if (at >= 4 && at < 8) continue; // the checksum itself: made right again, it is the original
    const why = decodeSignal(reseal(flipped), MAC, out);
    if (at >= 10 && at !== 126 && at !== 127) assert.equal(why, "bad_mac", `forged at ${at}`);
    else assert.ok(why === "malformed" || why === "bad_mac", `${why} at ${at}`);
  }
  assert.equal(decodeSignal(bytes, new SignalMac(KEY, "staging"), out), "bad_mac");
  assert.equal(
    decodeSignal(bytes, new SignalMac(new TextEncoder().encode("another"), "prod"), out),
    "bad_mac",
  );
  const huge = new Uint8Array(MAX_SIGNAL_BYTES + 1);
  huge.set(bytes);
  assert.equal(decodeSignal(huge, MAC, out), "oversized");
  // An SDP that is not exactly one JSON string of valid UTF-8 and at most 16384 units, with
  // everything else right (sealed): it would be copied into a client's frame as it is.
  const notJson = [
    "ab", // no quotes
    '"ab', // unterminated
    '"a"b"', // more after the string
    '"a"' + " ", // trailing whitespace
    '"a\\x"', // a bad escape
    '"a\\u00"', // a short \u escape
    '"a\tb"', // a raw control character (a tab)
    "1", // another JSON value
    JSON.stringify("x".repeat(16385)), // too many units
  ];
  for (const token of notJson) {
    const signal = sample();
    signal.sdp = new TextEncoder().encode(token);
    signal.sdpStart = 0;
    signal.sdpEnd = signal.sdp.length;
    assert.equal(decodeSignal(encodeSignal(signal, MAC)!, MAC, out), "malformed", token);
  }
  const notUtf8 = encodeSignal(sample(SIGNAL_OFFER, "ab"), MAC)!;
  notUtf8[SIGNAL_HEADER + 1] = 0xff;
  MAC.seal(notUtf8);
  assert.equal(decodeSignal(notUtf8, MAC, out), "malformed");
  // Another kind or version, sealed.
  for (const [at, value] of [[8, 2], [9, 0], [9, 3]]) {
    const copy = bytes.slice();
    copy[at] = value;
    MAC.seal(copy);
    assert.equal(decodeSignal(copy, MAC, out), "malformed", `byte ${at} = ${value}`);
  }
  // Without a secret (--cluster-insecure) the tag is zero and not checked.
  const open = new SignalMac(null, "prod");
  assert.equal(decodeSignal(encodeSignal(sample(), open)!, open, out), null);
});

const haveRedis = await haveRedisServer();
if (!haveRedis) console.log("cluster_wtSignal_test: skipped, no redis-server binary on PATH");

Deno.test({
  name: "the relay: a signal reaches its node's channel; a node takes in and sends out at its rate",
  ignore: !haveRedis,
  async fn() {
    const redis = new RedisServer();
    await redis.start();
    const a = makeNode("a", redis.url, { relaySignals: true, signalsPerSecond: 10 });
    const b = makeNode("b", redis.url, { relaySignals: true, signalsPerSecond: 10 });
    const raw = createClient({ url: redis.url, RESP: 2 });
    raw.on("error", () => {});
    await raw.connect();
    try {
      await a.sync.start();
      await b.sync.start();
      const relayA = a.sync.relay!;
      const relayB = b.sync.relay!;
      const got: WtSignal[] = [];
      relayB.deliver = (signal) => {
        const copy = new WtSignal();
        Object.assign(copy, { ...signal, sdp: signal.sdp.slice() });
        copy.offerId.set(signal.offerId);
        got.push(copy);
      };
      // A to B: delivered with A's tag as the sender.
      const offer = sample();
      offer.toTag = relayB.tag;
      assert.equal(relayA.send(offer), true);
      await waitFor("b gets a's offer", () => got.length === 1);
      assert.equal(got[0].fromTag, relayA.tag);
      assert.equal(sdpOf(got[0]), sdpOf(offer));
      assert.equal(b.sync.counters.signals.receivedOffers, 1);

      // 60 more sent at once by A: a burst of 20 leaves, the rest is dropped and counted.
      let sent = 0;
      for (let i = 0; i < 60; i++) if (relayA.send(offer)) sent++;
      assert.ok(sent >= 19 && sent <= 22, `${sent} sent`);
      assert.equal(a.sync.counters.signals.dropped.rate, 60 - sent);

      // 100 authentic signals for B published at once from outside: B takes in 20 or so.
      const mac = new SignalMac(SECRET, "test");
      const channel = `otter:{test:wt:${relayB.tag}}`;
      await waitFor("b has the first burst", () => got.length === 1 + sent);
      const before = got.length;
      const batch: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        const signal = sample();
        signal.toTag = relayB.tag;
        signal.sentAtMs = Date.now();
        batch.push(raw.sendCommand(["PUBLISH", channel, Buffer.from(encodeSignal(signal, mac)!)]));
      }
      await Promise.all(batch);
      const refused = b.sync.counters.signals.refused;
      await waitFor("b has read the 100", () => got.length - before + refused.rate === 100);
      assert.ok(got.length - before <= 40, `${got.length - before} taken in`);
      assert.ok(refused.rate >= 60, `${refused.rate} refused`);
    } finally {
      await raw.disconnect().catch(() => {});
      await stopAll([a, b], redis);
    }
  },
});

Deno.test({
  name: "the relay over a 3-master Redis Cluster: sharded pub/sub on each channel's master, " +
    "both ways",
  ignore: !haveRedis,
  async fn() {
    const cluster = new RedisClusterServer({ masters: 3 });
    await cluster.start();
    const url = cluster.seeds.map((seed) => `redis://${seed}`).join(",");
    const a = makeNode("a", url, { relaySignals: true });
    const b = makeNode("b", url, { relaySignals: true });
    try {
      await a.sync.start();
      await b.sync.start();
      const relayA = a.sync.relay!;
      const relayB = b.sync.relay!;
      const got: string[] = [];
      relayA.deliver = (signal) => got.push(`a<-${signal.fromTag}:${sdpOf(signal)}`);
      relayB.deliver = (signal) => got.push(`b<-${signal.fromTag}:${sdpOf(signal)}`);
      const offer = sample(SIGNAL_OFFER, "to b");
      offer.toTag = relayB.tag;
      assert.equal(relayA.send(offer), true);
      const answer = sample(SIGNAL_ANSWER, "to a");
      answer.toTag = relayA.tag;
      assert.equal(relayB.send(answer), true);
      await waitFor("both delivered", () => got.length === 2);
      assert.deepEqual(got.sort(), [`a<-${relayB.tag}:to a`, `b<-${relayA.tag}:to b`]);
      // Each node listens on the master of its channel's slot, with SSUBSCRIBE.
      for (const relay of [relayA, relayB]) {
        const channel = `otter:{test:wt:${relay.tag}}`;
        const port = await cluster.masterFor(channel);
        const listed = await redisCli(["-p", String(port), "PUBSUB", "SHARDCHANNELS", channel]);
        assert.equal(listed.trim(), channel);
      }
    } finally {
      await a.sync.stop();
      await b.sync.stop();
      await cluster.stop();
    }
  },
});
