/**
 * The WebSocket tracker over TLS (wss://) on a real otter process, with a throwaway CA and leaf
 * made by `openssl` (support/testCertificates.ts): the `--https` listener serves WebSocket
 * upgrades (offers, answers, scrapes over TLS; a client that does not trust the certificate gets
 * nowhere), and a ws:// and a wss:// client are peers of one swarm, offers and answers crossing.
 */
import assert from "node:assert/strict";
import { startOtter } from "./support/otterProcess.ts";
import { makeCa, makeLeaf, type TestCa, type TestLeaf } from "./support/testCertificates.ts";
import { announce, id, offers, WsClient } from "./support/wsHarness.ts";

const H = id("h");

async function withCertificate(
  fn: (ca: TestCa, leaf: TestLeaf, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "otter-wss-" });
  try {
    const ca = await makeCa(dir, "a");
    await fn(ca, await makeLeaf(dir, ca, "a1"), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function portOf(base: string): number {
  return Number(new URL(base).port);
}

/** `offerer` sends one offer; `receiver` gets it and answers; the offerer gets the answer. */
async function offerAndAnswer(offerer: WsClient, receiver: WsClient): Promise<void> {
  await offerer.json(announce(H, id("o"), { offers: offers(1, "q", "v=0\r\nTLS OFFER") }));
  assert.equal((await offerer.message()).action, "announce");
  const offer = await receiver.message();
  assert.equal(offer.peer_id, id("o"));
  assert.deepEqual(offer.offer, { type: "offer", sdp: "v=0\r\nTLS OFFER" });
  await receiver.json({
    action: "announce",
    info_hash: H,
    peer_id: id("r"),
    to_peer_id: id("o"),
    offer_id: offer.offer_id,
    answer: { type: "answer", sdp: "v=0\r\nTLS ANSWER" },
  });
  assert.deepEqual(await offerer.message(), {
    action: "announce",
    info_hash: H,
    peer_id: id("r"),
    offer_id: id("q", 0),
    answer: { type: "answer", sdp: "v=0\r\nTLS ANSWER" },
  });
}

function tlsOtterFlags(leaf: TestLeaf): string[] {
  return [
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--https",
    "127.0.0.1:0",
    "--tls-cert",
    leaf.certPath,
    "--tls-key",
    leaf.keyPath,
  ];
}

Deno.test("wss: the --https listener serves the WebSocket tracker over TLS", async () => {
  await withCertificate(async (ca, leaf, dir) => {
    await using otter = await startOtter(tlsOtterFlags(leaf));
    const port = portOf(otter.https[0]);
    await using offerer = await WsClient.openTls(port, [ca.pem]);
    await using receiver = await WsClient.openTls(port, [ca.pem], "/");
    await receiver.json(announce(H, id("r"), { event: "started", left: 0 }));
    assert.deepEqual(
      { ...(await receiver.message()), interval: 0 },
      { action: "announce", info_hash: H, complete: 1, incomplete: 0, interval: 0 },
    );
    await offerer.json(announce(H, id("o"), { event: "started" }));
    assert.equal((await offerer.message()).incomplete, 1);
    await offerAndAnswer(offerer, receiver);
    await offerer.json({ action: "scrape", info_hash: [H] });
    const scrape = await offerer.message();
    assert.deepEqual((scrape.files as Record<string, unknown>)[H], {
      complete: 1,
      incomplete: 1,
      downloaded: 0,
    });
    // A client that does not trust the CA never gets to upgrade: the TLS is real.
    const other = await makeCa(dir, "b");
    await assert.rejects(() => WsClient.openTls(port, [other.pem]));
  });
});

Deno.test("wss: ws:// and wss:// clients are peers of one swarm, offers and answers crossing", async () => {
  await withCertificate(async (ca, leaf) => {
    await using otter = await startOtter(tlsOtterFlags(leaf));
    await using overTls = await WsClient.openTls(portOf(otter.https[0]), [ca.pem]);
    await using plain = await WsClient.open(portOf(otter.http[0]));
    await plain.json(announce(H, id("r"), { event: "started" }));
    await plain.message();
    await overTls.json(announce(H, id("o"), { event: "started" }));
    await overTls.message();
    await offerAndAnswer(overTls, plain);
    // Both sockets count: the stats over plain HTTP show two open WebSocket connections.
    const metrics = await (await fetch(`${otter.http[0]}/metrics`)).text();
    assert.match(metrics, /^otter_ws_connections 2$/m);
  });
});
