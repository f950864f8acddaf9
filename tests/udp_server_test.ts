/**
 * otter's UDP tracker over real loopback sockets, IPv4 and IPv6, on both socket paths (FFI fast
 * path and portable Deno.listenDatagram): connect, announce, scrape, errors and drops.
 */
import assert from "node:assert/strict";
import { ipv6Missing, needsIpv6 } from "./support/ipv6.ts";
import { startOtter } from "./support/otterProcess.ts";
import {
  announcePacket,
  announcePeers,
  connectPacket,
  readU32,
  scrapePacket,
  UdpTestClient,
} from "./support/udpClient.ts";

function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 31 + i * 7) & 0xff);
}

for (const io of ["fast", "portable"] as const) {
  Deno.test(`UDP tracker (${io} path): IPv4 and IPv6 announce, scrape and errors`, async (t) => {
    await using otter = await startOtter([
      "--udp",
      "127.0.0.1:0",
      ...(ipv6Missing === null ? ["--udp", "[::1]:0"] : []),
      "--http",
      "127.0.0.1:0",
      "--udp-io",
      io,
      "--interval",
      "100",
    ]);
    assert.equal(otter.udp[0].io, io);

    for (const [index, family] of [[0, 4], [1, 6]] as const) {
      if (family === 6 && ipv6Missing !== null) {
        await t.step({ ...needsIpv6("IPv6: every step"), fn: () => {} });
        continue;
      }
      const listener = otter.udp[index];
      const client = new UdpTestClient(listener.hostname, listener.port);
      const self = family === 4 ? "127.0.0.1" : "[0:0:0:0:0:0:0:1]";
      try {
        await t.step(
          `IPv${family}: connect gives a 16-byte reply echoing the transaction id`,
          async () => {
            const reply = await client.request(connectPacket(0xabcdef01));
            assert.ok(reply);
            assert.equal(reply.length, 16);
            assert.equal(readU32(reply, 0), 0);
            assert.equal(readU32(reply, 4), 0xabcdef01);
          },
        );
        const id = await client.connect();
        const infoHash = hash(family);
        const announce = async (port: number, event = 0, left = 1000, numwant = -1) => {
          const reply = await client.request(
            announcePacket({
              connectionId: id,
              infoHash,
              port,
              event,
              left,
              numwant,
              transactionId: port,
            }),
          );
          assert.ok(reply, "announce reply");
          assert.equal(readU32(reply, 0), 1, "action announce");
          assert.equal(readU32(reply, 4), port, "transaction id");
          return reply;
        };

        await t.step(`IPv${family}: peers see each other, never themselves`, async () => {
          const first = await announce(1001, 2);
          assert.deepEqual(announcePeers(first, family), []);
          const interval = readU32(first, 8);
          assert.ok(interval >= 90 && interval <= 110, `jittered interval ${interval}`);
          assert.equal(readU32(first, 12), 1, "leechers");
          assert.equal(readU32(first, 16), 0, "seeders");
          const second = await announce(1002, 2);
          assert.deepEqual(announcePeers(second, family), [`${self}:1001`]);
          assert.equal(readU32(second, 12), 2);
        });

        await t.step(`IPv${family}: a seeder gets no seeders; completed counts once`, async () => {
          const seeder = await announce(1003, 1, 0);
          assert.deepEqual(announcePeers(seeder, family).sort(), [`${self}:1001`, `${self}:1002`]);
          assert.equal(readU32(seeder, 16), 1, "seeders");
          await announce(1003, 1, 0); // a repeated completed does not count again
          const seeder2 = await announce(1004, 2, 0);
          assert.deepEqual(announcePeers(seeder2, family).sort(), [`${self}:1001`, `${self}:1002`]);
          const leecher = await announce(1001, 0, 5, 10);
          assert.equal(announcePeers(leecher, family).length, 3);
          const none = await announce(1001, 0, 5, 0);
          assert.equal(none.length, 20, "numwant 0 gives no peers");
        });

        await t.step(`IPv${family}: scrape and stop`, async () => {
          let reply = await client.request(scrapePacket(id, [infoHash, hash(99)]));
          assert.ok(reply);
          assert.equal(reply.length, 8 + 24);
          assert.equal(readU32(reply, 0), 2);
          assert.deepEqual([readU32(reply, 8), readU32(reply, 12), readU32(reply, 16)], [2, 1, 2]);
          assert.deepEqual([readU32(reply, 20), readU32(reply, 24), readU32(reply, 28)], [0, 0, 0]);
          const stopped = await announce(1002, 3);
          assert.equal(stopped.length, 20, "a stopped announce gets no peers");
          reply = await client.request(scrapePacket(id, [infoHash]));
          assert.ok(reply);
          assert.deepEqual([readU32(reply, 8), readU32(reply, 12), readU32(reply, 16)], [2, 1, 1]);
        });

        await t.step(`IPv${family}: scrape of 74 hashes answers, 75 is an error`, async () => {
          const hashes = Array.from({ length: 74 }, (_, i) => hash(i + 1000));
          const ok = await client.request(scrapePacket(id, hashes));
          assert.ok(ok);
          assert.equal(ok.length, 8 + 74 * 12);
          const tooMany = await client.request(scrapePacket(id, [...hashes, hash(5)]));
          assert.ok(tooMany);
          assert.equal(readU32(tooMany, 0), 3);
        });

        await t.step(
          `IPv${family}: bad connection id → error no longer than the request`,
          async () => {
            const bad = announcePacket({
              connectionId: new Uint8Array(8),
              infoHash,
              port: 1,
              transactionId: 77,
            });
            const reply = await client.request(bad);
            assert.ok(reply);
            assert.equal(readU32(reply, 0), 3);
            assert.equal(readU32(reply, 4), 77);
            assert.match(new TextDecoder().decode(reply.subarray(8)), /connection id/);
            const shortScrape = scrapePacket(new Uint8Array(8), [], 78).subarray(0, 16);
            const r2 = await client.request(shortScrape);
            assert.ok(r2);
            assert.ok(r2.length <= 16, "no amplification to an unproven address");
          },
        );

        await t.step(
          `IPv${family}: an id is good from any port of its address, not from another address`,
          async () => {
            // libtorrent announces from a second session's port with the id the first got.
            const otherPort = new UdpTestClient(listener.hostname, listener.port);
            const otherAddress = family === 4
              ? new UdpTestClient(listener.hostname, listener.port, "127.0.0.2")
              : null;
            try {
              assert.notEqual(otherPort.port, client.port);
              const packet = announcePacket({ connectionId: id, infoHash, port: 1005 });
              const reply = await otherPort.request(packet);
              assert.ok(reply, "announce reply");
              assert.equal(readU32(reply, 0), 1, "an announce reply, not an error");
              await announce(1005, 3); // and gone again
              if (otherAddress !== null) {
                const refused = await otherAddress.request(packet);
                assert.ok(refused, "error reply");
                assert.equal(readU32(refused, 0), 3);
                assert.match(new TextDecoder().decode(refused.subarray(8)), /connection id/);
              }
            } finally {
              otherPort.close();
              otherAddress?.close();
            }
          },
        );

        await t.step(
          `IPv${family}: malformed packets are dropped or answered as documented`,
          async () => {
            assert.equal(
              await client.request(new Uint8Array(15), 300),
              null,
              "short packet dropped",
            );
            const noMagic = connectPacket(1);
            noMagic[0] = 9;
            assert.equal(await client.request(noMagic, 300), null, "connect without magic dropped");
            const errorPacket = connectPacket(1);
            errorPacket[11] = 3;
            assert.equal(await client.request(errorPacket, 300), null, "error packets dropped");
            const unknown = connectPacket(5);
            unknown[11] = 9;
            const reply = await client.request(unknown);
            assert.ok(reply);
            assert.equal(readU32(reply, 0), 3);
            assert.equal(readU32(reply, 4), 5);
            const short = announcePacket({ connectionId: id, infoHash, port: 5 }).subarray(0, 60);
            const r2 = await client.request(short);
            assert.ok(r2);
            assert.equal(readU32(r2, 0), 3);
            const zeroPort = announcePacket({ connectionId: id, infoHash, port: 0 });
            const r3 = await client.request(zeroPort);
            assert.ok(r3);
            assert.equal(readU32(r3, 0), 3);
            const badEvent = announcePacket({ connectionId: id, infoHash, port: 5, event: 7 });
            const r4 = await client.request(badEvent);
            assert.ok(r4);
            assert.equal(readU32(r4, 0), 3);
            // Still serving after all that.
            assert.equal((await announce(1001)).length > 20, true);
          },
        );
      } finally {
        client.close();
      }
    }
  });
}
