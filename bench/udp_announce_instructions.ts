/**
 * The UDP announce path in process, for counting instructions (a busy machine makes wall-clock
 * figures noisy; an instruction count is not): UdpTracker.handle on a real Tracker and SwarmTable,
 * as startTracker wires them, fed prebuilt BEP 15 announces with valid connection ids. No sockets.
 *
 *   deno run --allow-all bench/udp_announce_instructions.ts [ANNOUNCES] [OTTER FLAGS]
 *   bash bench/udp_announce_instructions.sh     # callgrind: instructions per announce
 *
 * OTTER FLAGS are otter's own, read as otter reads them; of them only those the announce path
 * depends on matter here: with the dashboard on (the default) every answered announce is counted
 * in the client mix, as startTracker wires it; `--no-dashboard` leaves that out.
 *
 * With CALLGRIND_TOGGLE_LIB naming bench/callgrind_toggle.c built as a shared library, callgrind
 * (started with --collect-atstart=no) counts the measured announces only.
 *
 * The store holds TORRENTS torrents of PEERS_PER_TORRENT peers (every fifth peer IPv6); each round
 * re-announces every peer once (event none, numwant 50: the steady state of a busy tracker), so
 * each reply carries peers. Peer ids start with the prefixes of a few common clients (and one in
 * eight with none, "other"). With OTTER_BENCH_CLUSTER=1 the tracker is a cluster node's: each
 * announce goes on to the cluster's LocalChanges (publishRule.ts), which records the due ones. A
 * warm-up of WARMUP_ROUNDS rounds runs first, so the measured
 * announces run optimised code. Everything is seeded: two runs do the same work.
 */
import { parseCommandLine } from "../src/config/config.ts";
import { Clock } from "../src/config/clock.ts";
import { SwarmTable } from "../src/store/swarmTable.ts";
import { ConnectionIds } from "../src/protocol/connectionId.ts";
import { Tracker } from "../src/servers/tracker.ts";
import { UdpTracker } from "../src/servers/udp/udpTracker.ts";
import { ChangeRecorder } from "../src/cluster/changeRecorder.ts";
import { LocalChanges } from "../src/cluster/publishRule.ts";
import { ClientMix } from "../src/observe/clientMix.ts";

const TORRENTS = 2000;
const PEERS_PER_TORRENT = 20;
const PEERS = TORRENTS * PEERS_PER_TORRENT;
const WARMUP_ROUNDS = 3;
const PACKET_BYTES = 98;

const announces = Number(Deno.args[0] ?? "200000");

let seed = 0x2545f491;
function next(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

const parsed = parseCommandLine(Deno.args.slice(1));
if (parsed.kind !== "run") throw new Error(`${Deno.args.slice(1).join(" ")} does not run`);
const clock = new Clock();
const store = new SwarmTable({
  peerTimeout: parsed.config.peerTimeout,
  random: next,
  hashKey: new Uint32Array([next(), next()]),
});
const tracker = new Tracker(store, clock, parsed.config);
if (Deno.env.get("OTTER_BENCH_CLUSTER") === "1") {
  tracker.changes = new LocalChanges(new ChangeRecorder("bench"), 360, { suppressedRefreshes: 0 });
}
// As registerOperatorRoutes does unless --no-dashboard.
if (!parsed.config.noDashboard) tracker.clients = new ClientMix();
const PREFIXES = [
  "-qB4630-",
  "-TR4060-",
  "-LT2080-",
  "-UT355W-",
  "-DE211s-",
  "A2-1-36-0",
  "M7-10-3-",
];
const ids = new ConnectionIds(new Uint32Array([next(), next()]));
const udp = new UdpTracker(tracker, ids);

const hashes = new Uint8Array(TORRENTS * 20);
for (let i = 0; i < hashes.length; i++) hashes[i] = next() & 0xff;
/** Peer i: family, 16 address bytes (IPv4 in the first 4), one announce packet. */
const families = new Uint8Array(PEERS);
const addresses = new Uint8Array(PEERS * 16);
const packets = new Uint8Array(PEERS * PACKET_BYTES);
for (let p = 0; p < PEERS; p++) {
  const family = p % 5 === 4 ? 6 : 4;
  families[p] = family;
  const address = addresses.subarray(p * 16, p * 16 + 16);
  if (family === 4) {
    address.set([10, (p >>> 16) & 0xff, (p >>> 8) & 0xff, p & 0xff]);
  } else {
    address.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, p >>> 16, p >>> 8, p]);
  }
  const packet = packets.subarray(p * PACKET_BYTES, (p + 1) * PACKET_BYTES);
  const view = new DataView(packet.buffer, packet.byteOffset, PACKET_BYTES);
  ids.issue(clock.now, family, address, 0, packet, 0);
  view.setUint32(8, 1); // action: announce
  view.setUint32(12, next()); // transaction id
  const torrent = p % TORRENTS;
  packet.set(hashes.subarray(torrent * 20, torrent * 20 + 20), 16);
  for (let i = 36; i < 56; i++) packet[i] = next() & 0xff; // peer id
  if (p % 8 !== 7) {
    const prefix = PREFIXES[p % PREFIXES.length];
    for (let i = 0; i < prefix.length; i++) packet[36 + i] = prefix.charCodeAt(i);
  }
  view.setUint32(64, 0); // left: seeders every third peer, else 1 MiB
  view.setUint32(68, p % 3 === 0 ? 0 : 1 << 20);
  view.setUint32(80, 0); // event: none
  view.setInt32(92, 50); // numwant
  view.setUint16(96, 1 + (p % 60000)); // port
}

const out = new Uint8Array(4096);
let replyBytes = 0;
function run(count: number): void {
  for (let i = 0; i < count; i++) {
    const p = i % PEERS;
    replyBytes += udp.handle(
      packets.subarray(p * PACKET_BYTES, (p + 1) * PACKET_BYTES),
      PACKET_BYTES,
      families[p] as 4 | 6,
      addresses,
      p * 16,
      6881,
      out,
    );
  }
}

/** Under callgrind (udp_announce_instructions.sh), counts only what runs between two calls. */
const toggleLibrary = Deno.env.get("CALLGRIND_TOGGLE_LIB");
const toggle = toggleLibrary === undefined
  ? () => {}
  : Deno.dlopen(toggleLibrary, { callgrind_toggle: { parameters: [], result: "void" } }).symbols
    .callgrind_toggle;

run(WARMUP_ROUNDS * PEERS);
const started = performance.now();
toggle();
run(announces);
toggle();
const ms = performance.now() - started;
const peers = store.peers4 + store.peers6;
if (peers !== PEERS) throw new Error(`store holds ${peers} peers, not ${PEERS}`);
console.log(
  `${announces} announces in ${ms.toFixed(0)} ms (${
    (ms * 1e6 / Math.max(1, announces)).toFixed(0)
  } ` +
    `ns each), ${replyBytes} reply bytes, ${peers} peers, ${
      tracker.clients === null ? "no client mix" : `${tracker.clients.slotsUsed} clients counted`
    }`,
);
