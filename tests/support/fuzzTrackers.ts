/**
 * In-process fuzzing of otter's full request paths: a real SwarmTable, Tracker, UdpTracker and
 * HttpTracker wired as startTracker wires them, without sockets, fed seeded mutated datagrams and
 * requests as fast as they go. Every reply is checked against the oracles in fuzz.ts and against
 * the store's own counts; the clock moves on and clean() runs between inputs so expiry mixes in;
 * the store's invariant checker (counts equal a recount) runs periodically and at the end.
 *
 * HTTP announces and scrapes go half through `HttpTracker.answerWire` (the wire server's byte
 * path: the query as text, the body in `wireBody`) and half, with everything else, through
 * `handle`: mostly as plain `{ url, method, headers }` objects standing in for a Request (the
 * handler reads only those three, and a raw URL reaches it unnormalised, as a server passes
 * request lines through, where `new Request` would percent-encode it first), a quarter as real
 * Request objects. Failures throw FuzzFailure naming the profile, seed and input number.
 */
import { parseCommandLine } from "../../src/config/config.ts";
import type { Config } from "../../src/config/options.ts";
import { Clock } from "../../src/config/clock.ts";
import { ACCESS_DENIED_REASON, AccessPolicy, InfoHashSet } from "../../src/policy/accessList.ts";
import { CLEAN_BUDGET, SwarmTable } from "../../src/store/swarmTable.ts";
import { checkInvariants } from "../../src/store/invariants.ts";
import { ConnectionIds } from "../../src/protocol/connectionId.ts";
import { Tracker } from "../../src/servers/tracker.ts";
import { UdpTracker } from "../../src/servers/udp/udpTracker.ts";
import {
  HttpTracker,
  MAX_REQUEST_BYTES,
  type WireClient,
} from "../../src/servers/http/httpTracker.ts";
import { ACTION_NAMES, PROTOCOL_UDP, RESULT_NAMES } from "../../src/observe/requestCounters.ts";
import {
  classifyHttpBody,
  expectHttpStatus,
  expectUdp,
  getU32,
  hex,
  mutateBytes,
  mutateText,
  putU32,
  Rng,
  shown,
  type UdpOracleContext,
  udpReplyProblem,
} from "./fuzz.ts";

/** A tracker configuration to fuzz under. */
export interface FuzzProfile {
  name: string;
  /** otter flags (parsed by config.ts; files named are never read). */
  flags: string[];
  /** Access list mode; the list holds every other hash of the pool. */
  access: "off" | "white" | "black";
}

export const PROFILES: readonly FuzzProfile[] = [
  { name: "defaults", flags: ["--peer-timeout", "600"], access: "off" },
  {
    name: "deniability, numwant 5000, short timeout",
    flags: [
      "--deniability",
      "0.5",
      "--deniability-max",
      "10",
      "--max-numwant",
      "5000",
      "--numwant",
      "300",
      "--peer-timeout",
      "90",
      "--interval",
      "60",
    ],
    access: "off",
  },
  {
    name: "whitelist, max-numwant 0",
    flags: ["--whitelist", "list.txt", "--max-numwant", "0", "--peer-timeout", "300"],
    access: "white",
  },
  {
    name: "blacklist, trusted proxies, max-numwant 7",
    flags: [
      "--blacklist",
      "list.txt",
      "--trust-proxy",
      "127.0.0.0/8",
      "--trust-proxy",
      "::1/128",
      "--max-numwant",
      "7",
      "--numwant",
      "3",
    ],
    access: "black",
  },
];

export class FuzzFailure extends Error {
  override name = "FuzzFailure";
}

/** Hashes in the pool; the first HOT of them get most announces, to grow big swarms. */
const POOL = 64;
const HOT = 4;
/** Most clean() steps per clock advance, and their slot budgets (the server's is CLEAN_BUDGET). */
const MAX_CLEAN_STEPS = 10;
const CLEAN_BUDGETS = [1, 2, 3, 8, 64, 512];

/** The store, tracker, clock and hash pool one fuzzer works on. */
export class FuzzWorld {
  readonly rng: Rng;
  readonly config: Config;
  readonly clock = new Clock();
  readonly store: SwarmTable;
  readonly tracker: Tracker;
  /** POOL info hashes, 20 bytes each. */
  readonly hashes: Uint8Array;
  readonly deniability: boolean;
  invariantChecks = 0;
  cleanSteps = 0;

  constructor(readonly seed: number, readonly profile: FuzzProfile) {
    this.rng = new Rng(seed);
    const parsed = parseCommandLine(profile.flags);
    if (parsed.kind !== "run") throw new Error(`profile ${profile.name}: flags do not run`);
    this.config = parsed.config;
    const rng = this.rng;
    this.store = new SwarmTable({
      peerTimeout: this.config.peerTimeout,
      random: () => rng.next(),
      hashKey: new Uint32Array([rng.next(), rng.next()]),
    });
    this.tracker = new Tracker(this.store, this.clock, this.config);
    this.deniability = this.config.deniability > 0;
    this.hashes = rng.bytes(POOL * 20);
    // Hashes that differ in one byte from another, or share its first word, probe edge cases.
    this.hashes.copyWithin(20, 0, 20);
    this.hashes[39] ^= 1;
    if (profile.access !== "off") {
      const lines: string[] = [];
      for (let i = 0; i < POOL; i += 2) lines.push(hex(this.hashes.subarray(i * 20, i * 20 + 20)));
      const { set, problemCount } = InfoHashSet.parse(lines.join("\n") + "\n");
      if (problemCount !== 0 || set.size !== POOL / 2) throw new Error("access list setup");
      this.tracker.access = new AccessPolicy(profile.access, set);
    }
  }

  /**
   * Writes an info hash at out[offset]: a hot one, one of the pool, or a fresh random one.
   * Returns its pool index, -1 for a fresh one.
   */
  pickHash(out: Uint8Array, offset: number): number {
    const r = this.rng.int(10);
    if (r === 0) {
      this.rng.fill(out, offset, 20);
      return -1;
    }
    const i = r < 5 ? this.rng.int(HOT) : this.rng.int(POOL);
    out.set(this.hashes.subarray(i * 20, i * 20 + 20), offset);
    return i;
  }

  /** Moves the clock on by a few seconds (now and then by minutes) and cleans as the server would. */
  tick(): void {
    const rng = this.rng;
    const seconds = rng.chance(0.002) ? rng.range(100, 1500) : rng.pick([0, 0, 1, 1, 1, 2, 3, 5]);
    this.clock.now += seconds;
    // Small and odd budgets stop clean() mid-slot and mid-list, where resuming can go wrong.
    const steps = Math.max(1, Math.min(MAX_CLEAN_STEPS, seconds * 2));
    const budget = rng.chance(0.1) ? CLEAN_BUDGET : rng.pick(CLEAN_BUDGETS);
    for (let i = 0; i < steps; i++) this.store.clean(this.clock.now, budget);
    this.cleanSteps += steps;
    if (rng.chance(0.001)) this.store.cleanAll(this.clock.now);
  }

  /** Throws FuzzFailure if the store's counts disagree with a recount. */
  checkStore(where: string): void {
    this.invariantChecks++;
    const problems = checkInvariants(this.store);
    if (problems.length > 0) {
      throw new FuzzFailure(
        `${where}: store invariants broken (profile '${this.profile.name}', seed ${this.seed}):` +
          `\n  ${problems.join("\n  ")}`,
      );
    }
  }

  /** The store's counts for the hash at bytes[offset] must match what a reply said. */
  countsProblem(
    bytes: Uint8Array,
    offset: number,
    complete: number,
    downloaded: number | null,
    incomplete: number,
  ): string | null {
    const store = this.store;
    store.scrape(bytes, offset);
    const r = store.result;
    if (complete !== r.complete) return `complete ${complete}, store has ${r.complete}`;
    if (downloaded !== null && downloaded !== r.downloaded) {
      return `downloaded ${downloaded}, store has ${r.downloaded}`;
    }
    // Generated peers (deniability) only ever add leechers.
    if (this.deniability ? incomplete < r.incomplete : incomplete !== r.incomplete) {
      return `incomplete ${incomplete}, store has ${r.incomplete}`;
    }
    return null;
  }
}

export interface FuzzTally {
  inputs: number;
  /** Replies by kind: UDP connect/announce/scrape/error/drop, HTTP status or body kind. */
  kinds: Map<string, number>;
}

function countKind(tally: FuzzTally, kind: string): void {
  tally.kinds.set(kind, (tally.kinds.get(kind) ?? 0) + 1);
}

/** Formats a tally for a log line: "announce 41% error 30% …". */
export function describeKinds(tally: FuzzTally): string {
  const parts = [...tally.kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) =>
    `${k} ${(100 * n / Math.max(1, tally.inputs)).toFixed(1)}%`
  );
  return parts.join(", ");
}

// ------------------------------------------------------------------ UDP

interface UdpClient {
  family: 4 | 6;
  address: Uint8Array;
  port: number;
  /** Connection ids issued to this client's address (from any of its ports), newest last, with
   *  their issue times; clients sharing an address share these arrays. */
  ids: Uint8Array[];
  idTimes: number[];
}

const UDP_CLIENTS = 300;
const ID_LIFETIME = 600;
/** otter's UDP receive slot: longer datagrams are ignored. */
export const PACKET_CAPACITY = 2048;
export const REPLY_CAPACITY = 4096;

/**
 * Builds BEP 15 datagrams into `packet` for the fuzzers: connects, announces and scrapes shaped
 * like real clients' (hashes from a pool so swarms grow), with hostile field values mixed in, and
 * random junk. Each method returns the datagram's length.
 */
export class UdpPacketMaker {
  constructor(
    readonly rng: Rng,
    readonly pickHash: (out: Uint8Array, offset: number) => number,
    readonly packet: Uint8Array = new Uint8Array(PACKET_CAPACITY),
  ) {}

  /** Connection id (random bytes if null), action, random transaction id. */
  header(id: Uint8Array | null, action: number): void {
    const p = this.packet;
    const rng = this.rng;
    if (id !== null) p.set(id, 0);
    else rng.fill(p, 0, 8);
    putU32(p, 8, action);
    putU32(p, 12, rng.next());
  }

  connect(): number {
    const p = this.packet;
    putU32(p, 0, 0x417);
    putU32(p, 4, 0x27101980);
    putU32(p, 8, 0);
    putU32(p, 12, this.rng.next());
    // A connect may carry extra bytes; BEP 15 says 16, otter should not care.
    return this.rng.chance(0.05) ? 16 + this.rng.range(1, 80) : 16;
  }

  /** An announce with connection id `id` (random bytes if null). */
  announce(id: Uint8Array | null): number {
    const p = this.packet;
    const rng = this.rng;
    this.header(id, 1);
    this.pickHash(p, 16);
    rng.fill(p, 36, 20); // peer id
    rng.fill(p, 56, 8); // downloaded
    const left = rng.int(10);
    if (left < 3) p.fill(0, 64, 72); // a seeder
    else if (left === 3) p.fill(0xff, 64, 72); // -1: not a seeder, not a huge number either
    else {
      p.fill(0, 64, 68);
      putU32(p, 68, rng.next());
    }
    rng.fill(p, 72, 8); // uploaded
    const e = rng.int(40);
    putU32(p, 80, e < 20 ? 0 : e < 28 ? 2 : e < 32 ? 1 : e < 38 ? 3 : rng.pick([4, 0xffffffff]));
    putU32(p, 84, rng.chance(0.8) ? 0 : rng.next()); // ip
    putU32(p, 88, rng.next()); // key
    const w = rng.int(10);
    putU32(
      p,
      92,
      w < 3 ? 0xffffffff : w < 7 ? rng.int(60) : rng.pick([0x7fffffff, 0x80000000, 5000, 1e9]),
    );
    const port = rng.chance(0.03) ? 0 : rng.chance(0.02) ? 65535 : rng.range(1, 600);
    p[96] = port >>> 8;
    p[97] = port;
    // BEP 41 options after the 98 bytes are to be ignored.
    if (rng.chance(0.1)) {
      const extra = rng.range(1, 60);
      rng.fill(p, 98, extra);
      return 98 + extra;
    }
    return 98;
  }

  scrape(id: Uint8Array | null): number {
    const p = this.packet;
    const rng = this.rng;
    this.header(id, 2);
    const n = rng.chance(0.05) ? rng.pick([0, 74, 75, 80]) : rng.range(1, 20);
    for (let i = 0; i < n; i++) {
      if (i > 0 && rng.chance(0.1)) p.copyWithin(16 + 20 * i, 16, 36); // repeats
      else this.pickHash(p, 16 + 20 * i);
    }
    return 16 + 20 * n;
  }

  junk(): number {
    const p = this.packet;
    const rng = this.rng;
    const length = rng.chance(0.5) ? rng.int(120) : rng.int(PACKET_CAPACITY + 1);
    rng.fill(p, 0, length);
    if (length >= 12 && rng.chance(0.6)) putU32(p, 8, rng.pick([0, 1, 2, 3, 4, 5, 0x100]));
    return length;
  }

  /** An action otter does not serve (3, a client's error packet, is dropped; others refused). */
  otherAction(id: Uint8Array | null): number {
    this.header(id, this.rng.pick(OTHER_ACTIONS));
    const length = 16 + this.rng.int(120);
    this.rng.fill(this.packet, 16, length - 16);
    return length;
  }

  /** Applies 1..4 random edits; returns the new length. */
  mutate(length: number): number {
    for (let k = this.rng.small(4); k > 0; k--) length = mutateBytes(this.rng, this.packet, length);
    return length;
  }
}

const OTHER_ACTIONS = [3, 4, 5, 0x100, 0xffffffff, 0x80000001];

export class UdpFuzzer {
  readonly world: FuzzWorld;
  readonly tally: FuzzTally = { inputs: 0, kinds: new Map() };
  readonly #udp: UdpTracker;
  readonly #clients: UdpClient[] = [];
  readonly #packet: Uint8Array;
  readonly #make: UdpPacketMaker;
  readonly #reply = new Uint8Array(REPLY_CAPACITY);
  #client!: UdpClient;
  readonly #ctx: UdpOracleContext;
  /** Check the store every this many inputs. */
  readonly checkEvery: number;

  constructor(seed: number, profile: FuzzProfile, options: { checkEvery?: number } = {}) {
    this.world = new FuzzWorld(seed, profile);
    this.checkEvery = options.checkEvery ?? 5000;
    const rng = this.world.rng;
    this.#make = new UdpPacketMaker(rng, (out, offset) => this.world.pickHash(out, offset));
    this.#packet = this.#make.packet;
    const key = new Uint32Array([rng.next(), rng.next()]);
    this.#udp = new UdpTracker(this.world.tracker, new ConnectionIds(key), REPLY_CAPACITY);
    for (let i = 0; i < UDP_CLIENTS; i++) {
      const v6 = i % 4 === 3;
      const address = new Uint8Array(v6 ? 16 : 4);
      if (v6) {
        address[0] = 0xfd;
        address.set(rng.bytes(15), 1);
      } else {
        address.set([10, i >> 8, i & 0xff, 1 + rng.int(254)]);
      }
      this.#clients.push({
        family: v6 ? 6 : 4,
        address,
        port: i < 3 ? [1, 65535, 6881][i] : rng.range(1024, 65535),
        ids: [],
        idTimes: [],
      });
    }
    // Edge addresses: all zeros, all ones, loopback.
    this.#clients[0].address.set([0, 0, 0, 0]);
    this.#clients[1].address.set([255, 255, 255, 255]);
    this.#clients[3].address.fill(0);
    this.#clients[7].address.fill(0);
    this.#clients[7].address[15] = 1;
    // Client 2 is client 0's address on another port: ids are bound to the address alone.
    const [first, , second] = this.#clients;
    second.address.set(first.address);
    second.ids = first.ids;
    second.idTimes = first.idTimes;
    const world = this.world;
    const config = world.config;
    this.#ctx = {
      idValid: (packet) => this.#idValid(packet),
      allows: (packet, offset) => world.tracker.access.allows(packet, offset),
      defaultNumwant: config.defaultNumwant,
      maxNumwant: config.maxNumwant,
      replyCapacity: REPLY_CAPACITY,
      family: 4,
    };
  }

  #idValid(packet: Uint8Array): boolean {
    const c = this.#client;
    const now = this.world.clock.now;
    for (let k = 0; k < c.ids.length; k++) {
      const id = c.ids[k];
      let same = true;
      for (let i = 0; same && i < 8; i++) same = packet[i] === id[i];
      if (same && now - c.idTimes[k] <= ID_LIFETIME) return true;
    }
    return false;
  }

  #freshId(c: UdpClient): Uint8Array | null {
    const n = c.ids.length;
    if (n === 0 || this.world.clock.now - c.idTimes[n - 1] > ID_LIFETIME - 10) return null;
    return c.ids[n - 1];
  }

  /** One datagram: build, maybe mutate, handle, check. */
  step(): void {
    const world = this.world;
    const rng = world.rng;
    const c = this.#clients[rng.chance(0.5) ? rng.int(16) : rng.int(UDP_CLIENTS)];
    this.#client = c;
    const id = this.#freshId(c);
    const r = rng.int(100);
    const make = this.#make;
    let length: number;
    if (r < 8) length = make.junk();
    else if (r < 16 || (id === null && r < 90)) length = make.connect();
    else if (r < 60) length = make.announce(id);
    else if (r < 82) length = make.scrape(id);
    else if (r < 90) {
      // Someone else's id, an expired one, or none at all.
      const other = this.#clients[rng.int(UDP_CLIENTS)];
      const stale = other.ids.length > 0 ? other.ids[0] : null;
      length = rng.chance(0.5) ? make.announce(stale) : make.scrape(stale);
    } else {
      length = make.otherAction(id);
    }
    if (rng.chance(0.3)) length = make.mutate(length);
    this.#check(c, length);
  }

  #check(c: UdpClient, length: number): void {
    const world = this.world;
    const packet = this.#packet;
    const reply = this.#reply;
    const ctx = this.#ctx;
    ctx.family = c.family;
    const expect = expectUdp(packet, length, ctx);
    let replyLength: number;
    const counted = this.#udpRequestsCounted();
    try {
      replyLength = this.#udp.handle(packet, length, c.family, c.address, 0, c.port, reply);
    } catch (e) {
      this.#fail(c, length, 0, `handle threw ${(e as Error)?.stack ?? e}`);
    }
    const now = world.clock.now;
    let problem = udpReplyProblem(packet, length, reply, replyLength, expect, ctx, {
      interval: world.tracker.interval,
      address: c.address,
      port: (packet[96] << 8) | packet[97],
      now,
    });
    if (problem === null && this.#udpRequestsCounted() !== counted + 1) {
      problem = `request counters moved by ${this.#udpRequestsCounted() - counted}, not 1`;
    }
    if (problem === null && expect.kind === "announce") {
      problem = world.countsProblem(packet, 16, getU32(reply, 16), null, getU32(reply, 12));
    }
    if (problem === null && expect.kind === "scrape") {
      for (let i = 0; problem === null && i < expect.hashes; i++) {
        const o = 8 + 12 * i;
        problem = world.countsProblem(
          packet,
          16 + 20 * i,
          getU32(reply, o),
          getU32(reply, o + 4),
          getU32(reply, o + 8),
        );
        if (problem !== null) problem = `scrape entry ${i}: ${problem}`;
      }
    }
    if (problem !== null) this.#fail(c, length, replyLength, problem);
    if (expect.kind === "connect") {
      c.ids.push(reply.slice(8, 16));
      c.idTimes.push(now);
      if (c.ids.length > 3) {
        c.ids.shift();
        c.idTimes.shift();
      }
    }
    const tally = this.tally;
    tally.inputs++;
    countKind(tally, expect.kind);
    if ((tally.inputs & 63) === 0) world.tick();
    if (tally.inputs % this.checkEvery === 0) world.checkStore(`after UDP input ${tally.inputs}`);
  }

  #udpRequestsCounted(): number {
    const counters = this.world.tracker.counters;
    let sum = 0;
    for (let a = 0; a < ACTION_NAMES.length; a++) {
      for (let r = 0; r < RESULT_NAMES.length; r++) sum += counters.get(PROTOCOL_UDP, a, r);
    }
    return sum;
  }

  #fail(c: UdpClient, length: number, replyLength: number, problem: string): never {
    const w = this.world;
    throw new FuzzFailure(
      `UDP input ${this.tally.inputs + 1} (profile '${w.profile.name}', seed ${w.seed}, ` +
        `clock ${w.clock.now}): ${problem}\n  from IPv${c.family} ${hex(c.address)} port ` +
        `${c.port}\n  request (${length} bytes): ${hex(this.#packet.subarray(0, length))}\n` +
        `  reply (${replyLength} bytes): ${hex(this.#reply.subarray(0, replyLength))}`,
    );
  }

  /**
   * Runs until `maxInputs` ran or, once `minInputs` have, `ms` passed; then checks the store.
   * Returns the inputs run.
   */
  run(ms: number, maxInputs: number, minInputs = 0): number {
    const deadline = performance.now() + ms;
    const start = this.tally.inputs;
    while (this.tally.inputs - start < maxInputs) {
      const ran = this.tally.inputs - start;
      if ((ran & 255) === 0 && ran >= minInputs && performance.now() > deadline) break;
      this.step();
    }
    this.world.checkStore(`after UDP input ${this.tally.inputs}`);
    return this.tally.inputs - start;
  }
}

// ------------------------------------------------------------------ HTTP

interface HttpClient {
  info: Deno.ServeHandlerInfo<Deno.NetAddr>;
  family: 0 | 4 | 6;
  address: Uint8Array;
  /** Is this client a proxy whose forwarding headers otter believes (profile with proxies)? */
  trusted: boolean;
}

/** Forwarding header values and what otter must take from them (family 0: not an address). */
const FORWARDED: readonly [string, 0 | 4 | 6, number[]][] = [
  ["203.0.113.7", 4, [203, 0, 113, 7]],
  // Walked from the right: 10.0.0.1 is not a trusted proxy in the profile, so it is the client.
  ["203.0.113.7, 10.0.0.1", 4, [10, 0, 0, 1]],
  ["203.0.113.7, 127.0.0.1", 4, [203, 0, 113, 7]],
  ["203.0.113.7, junk", 0, []],
  [' "203.0.113.8" ', 4, [203, 0, 113, 8]],
  ["203.0.113.9:8080", 4, [203, 0, 113, 9]],
  ["[2001:db8::1]:443", 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
  ["2001:db8::2", 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]],
  ["::ffff:198.51.100.1", 4, [198, 51, 100, 1]],
  ["junk", 0, []],
  ["", 0, []],
  ["1.2.3", 0, []],
  ["999.1.1.1", 0, []],
  ["1.2.3.4.5", 0, []],
  ["01.2.3.4", 0, []],
  ["[::1", 0, []],
  ["a".repeat(3000), 0, []],
  [", 1.2.3.4", 4, [1, 2, 3, 4]],
  ["1.2.3.4, ", 0, []],
];

const REAL_IP: readonly [string, 0 | 4 | 6, number[]][] = [
  ["198.51.100.2", 4, [198, 51, 100, 2]],
  [" 2001:db8::3 ", 6, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]],
  ["nope", 0, []],
  ["198.51.100.2:80", 0, []],
];

const OTHER_PATHS = [
  "/",
  "",
  "/announce/",
  "/Announce",
  "/scrape/",
  "/announce.php",
  "//announce",
  "/announce%20",
  "/stats",
  "/metrics",
  "/%2e%2e/announce",
  "/scrape;x",
  "*",
];

const METHODS = ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "Get", "FOO", "M-SEARCH"];

const HOSTS = ["http://127.0.0.1:6969", "http://[::1]:6969", "http://tracker.example"];

/** Pieces mutations splice into URLs: parameter names, separators, escapes, hostile values. */
const URL_PIECES = [
  "info_hash=",
  "peer_id=",
  "port=",
  "left=0",
  "event=stopped",
  "event=started",
  "numwant=",
  "numwant=99999999999999999999999",
  "compact=0",
  "key=",
  "&",
  "&&",
  "=",
  "==",
  "?",
  "#",
  "/",
  "%",
  "%00",
  "%ff",
  "%FF",
  "%20",
  "+",
  "%2B",
  "%26",
  "%3D",
  "\u00e9",
  "\u0000",
  "\x7f",
  "\ud800",
  "\u{1f600}",
  " ",
  "\t",
  "\r\n",
  "9".repeat(30),
  "-1",
  "0",
  "65535",
  "65536",
  "%41".repeat(20),
  "a".repeat(20),
  "&info_hash=" + "%AA".repeat(20),
  "&peer_id=" + "b".repeat(20),
  "&port=6881",
];

const decoder = new TextDecoder();
/** Shared by every request without headers (the handler only reads them). */
const NO_HEADERS = new Headers();
const ENCODINGS = 4;
const PEER_IDS = 64;

export interface HttpInput {
  /** The request target (path and query) as a client writes it on the request line. */
  target: string;
  method: string;
  headers: Headers;
  /** The family of the address the forwarding headers name (0: none usable; null: none sent). */
  forwarded: 0 | 4 | 6 | null;
  forwardedAddress: number[];
  /** An announce with every parameter chosen valid and nothing mutated: it must succeed. */
  valid: boolean;
  /** The port announced, when known (not mutated). */
  port: number | null;
}

/**
 * Builds HTTP requests for the fuzzers: announces with parameters valid, hostile, repeated or
 * missing, scrapes of up to 70 hashes, other paths and methods, then text mutations (escapes,
 * binary, overlong values) of the whole target, and forwarding headers.
 */
export class HttpRequestMaker {
  /** The info hash of the last announce made. */
  readonly infoHash = new Uint8Array(20);
  readonly #scrapeHash = new Uint8Array(20);
  /** Percent-encodings of pool hashes, ENCODINGS per hash, made on first use. */
  readonly #encodedHashes: string[] = [];
  readonly #encodedPeerIds: string[] = [];

  constructor(
    readonly rng: Rng,
    readonly pickHash: (out: Uint8Array, offset: number) => number,
  ) {}

  /** A percent-encoding of the hash just picked (pool index `index`), cached for pool hashes. */
  #encodeHash(index: number, hash: Uint8Array): string {
    if (index < 0) return this.#encode(hash);
    const k = index * ENCODINGS + this.rng.int(ENCODINGS);
    return this.#encodedHashes[k] ??= this.#encode(hash);
  }

  #peerId(): string {
    const k = this.rng.int(PEER_IDS);
    return this.#encodedPeerIds[k] ??= this.#encode(this.rng.bytes(20));
  }

  #encode(bytes: Uint8Array): string {
    const rng = this.rng;
    let s = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      const unreserved = (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a) ||
        b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
      if (unreserved && rng.chance(0.7)) s += String.fromCharCode(b);
      else if (b === 0x20 && rng.chance(0.5)) s += "+";
      else {
        const h = (b < 16 ? "0" : "") + b.toString(16);
        s += "%" + (rng.chance(0.5) ? h.toUpperCase() : h);
      }
    }
    return s;
  }

  /** An announce query; `valid` when every parameter was chosen valid. */
  #announceQuery(): { query: string; valid: boolean; port: number } {
    const rng = this.rng;
    const params: string[] = [];
    let valid = true;
    const bad = (p: number) => {
      const yes = rng.chance(p);
      if (yes) valid = false;
      return yes;
    };
    const hash = this.infoHash;
    const encoded = this.#encodeHash(this.pickHash(hash, 0), hash);
    if (bad(0.04)) {
      params.push(
        rng.pick([
          "info_hash=" + this.#encode(hash.subarray(0, 19)),
          "info_hash=" + encoded + "%00",
          "info_hash=",
          "info_hash",
          "info_hash=" + encoded + "&info_hash=" + encoded,
          "info_hash=" + "\u00e9".repeat(20),
          "info%5Fhash=" + encoded,
        ]),
      );
    } else if (!bad(0.01)) params.push("info_hash=" + encoded);
    if (bad(0.03)) {
      params.push(rng.pick(["peer_id=short", "peer_id=", "peer_id=" + "x".repeat(21)]));
    } else if (!bad(0.01)) params.push("peer_id=" + this.#peerId());
    let port = rng.range(1, 400);
    if (bad(0.04)) {
      port = 0;
      params.push(
        "port=" + rng.pick(["0", "65536", "99999999999", "-1", "", "abc", "6881x", "%zz"]),
      );
    } else if (!bad(0.01)) {
      params.push(
        "port=" + (rng.chance(0.05) ? this.#encode(new TextEncoder().encode(`${port}`)) : port),
      );
    }
    for (const name of ["uploaded", "downloaded", "left"]) {
      if (rng.chance(0.1)) continue;
      if (bad(0.02)) params.push(`${name}=${rng.pick(["-5", "", "1.5", "9".repeat(21), "x"])}`);
      else {
        const value = name === "left" && rng.chance(0.35)
          ? "0"
          : rng.pick(["0", "1", "123456789", "9".repeat(20), "00012"]);
        params.push(`${name}=${value}`);
      }
    }
    if (rng.chance(0.6)) {
      if (bad(0.03)) params.push("event=" + rng.pick(["start", "STARTED", "stoppedx", "%"]));
      else {params.push(
          "event=" + rng.pick(["", "started", "completed", "stopped", "paused", "empty"]),
        );}
    }
    if (rng.chance(0.6)) {
      if (bad(0.03)) params.push("numwant=" + rng.pick(["-1", "", "1e3", "ten"]));
      else params.push("numwant=" + rng.pick(["0", "1", "50", "200", "5000", "9".repeat(30)]));
    }
    if (rng.chance(0.5)) {
      if (bad(0.03)) params.push("compact=" + rng.pick(["0", "2", "", "11"]));
      else params.push("compact=1");
    }
    if (rng.chance(0.4)) {
      if (bad(0.02)) params.push("key=" + "k".repeat(101));
      else params.push("key=" + this.#encode(rng.bytes(rng.int(12))));
    }
    if (rng.chance(0.3)) {
      params.push(rng.pick(["supportcrypto=1", "ip=1.2.3.4", "no_peer_id=1", "trackerid=x", "x"]));
    }
    if (rng.chance(0.05) && params.length > 0) {
      // Repeats: the last one wins, except for info_hash and peer_id, which are refused.
      const repeat = params[rng.int(params.length)];
      if (repeat.startsWith("info_hash") || repeat.startsWith("peer_id")) valid = false;
      params.push(repeat);
    }
    for (let i = params.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [params[i], params[j]] = [params[j], params[i]];
    }
    let query = params.join(rng.chance(0.03) ? "&&" : "&");
    if (rng.chance(0.02)) query = "&" + query;
    return { query, valid, port };
  }

  #scrapeQuery(): string {
    const rng = this.rng;
    const n = rng.chance(0.05) ? rng.pick([0, 64, 65, 70]) : rng.range(1, 12);
    const hash = this.#scrapeHash;
    const params: string[] = [];
    for (let i = 0; i < n; i++) {
      params.push("info_hash=" + this.#encodeHash(this.pickHash(hash, 0), hash));
    }
    if (rng.chance(0.1)) params.push(rng.pick(["peer_id=x", "info_hash=short", "x=%4"]));
    return params.join("&");
  }

  #headers(): { headers: Headers; forwarded: 0 | 4 | 6 | null; forwardedAddress: number[] } {
    const rng = this.rng;
    let forwarded: 0 | 4 | 6 | null = null;
    let address: number[] = [];
    if (!rng.chance(0.5)) return { headers: NO_HEADERS, forwarded, forwardedAddress: address };
    const headers = new Headers();
    const xff = rng.chance(0.7) ? rng.pick(FORWARDED) : null;
    const realIp = rng.chance(0.4) ? rng.pick(REAL_IP) : null;
    if (xff !== null) headers.set("x-forwarded-for", xff[0]);
    if (realIp !== null) headers.set("x-real-ip", realIp[0]);
    forwarded = 0;
    // X-Forwarded-For wins even when it holds no usable address; X-Real-IP counts without it.
    if (xff !== null) {
      if (xff[1] !== 0) [forwarded, address] = [xff[1], xff[2]];
    } else if (realIp !== null && realIp[1] !== 0) [forwarded, address] = [realIp[1], realIp[2]];
    return { headers, forwarded, forwardedAddress: address };
  }

  /** A request target (path and query), method and headers, sometimes mutated. */
  make(): HttpInput {
    const rng = this.rng;
    const r = rng.int(100);
    let path: string;
    let query: string;
    let valid = false;
    let port: number | null = null;
    if (r < 70) {
      path = "/announce";
      const a = this.#announceQuery();
      query = a.query;
      valid = a.valid;
      port = a.port;
    } else if (r < 92) {
      path = "/scrape";
      query = this.#scrapeQuery();
    } else {
      path = rng.pick(OTHER_PATHS);
      query = rng.chance(0.5) ? this.#announceQuery().query : "";
    }
    // The request target is what a client controls; Deno.serve puts "http://host" before it.
    let target = path + (query !== "" || rng.chance(0.5) ? "?" + query : "");
    let mutated = false;
    if (rng.chance(0.35)) {
      mutated = true;
      for (let k = rng.small(3); k > 0; k--) target = mutateText(rng, target, URL_PIECES);
    }
    if (rng.chance(0.015)) {
      mutated = true;
      target += "&pad=" + "a".repeat(rng.pick([8000, 8192, 9000, 20000]));
    }
    const method = rng.chance(0.93) ? "GET" : rng.chance(0.4) ? "HEAD" : rng.pick(METHODS);
    const h = this.#headers();
    return {
      target,
      method,
      headers: h.headers,
      forwarded: h.forwarded,
      forwardedAddress: h.forwardedAddress,
      valid: valid && !mutated,
      // A mutation may have changed the port's digits: then it is not known.
      port: mutated ? null : port,
    };
  }
}

/** The wire server's route for a target and method, or null when it would use `handle`. */
function wireRoute(target: string, method: string): "announce" | "scrape" | null {
  if (method !== "GET" && method !== "HEAD") return null;
  // The wire server refuses a head over 8 KiB itself (414/431) before routing.
  if (target.length > MAX_REQUEST_BYTES - 64) return null;
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  return path === "/announce" ? "announce" : path === "/scrape" ? "scrape" : null;
}

/** What httpWire.ts hands `answerWire`: the socket peer and the request's headers. */
class FuzzWireClient implements WireClient {
  family: 4 | 6 = 4;
  readonly address = new Uint8Array(16);
  headers: Headers = NO_HEADERS;
  get(name: string): string | null {
    return this.headers.get(name);
  }
}

export class HttpFuzzer {
  readonly world: FuzzWorld;
  readonly tally: FuzzTally = { inputs: 0, kinds: new Map() };
  readonly #http: HttpTracker;
  readonly #clients: HttpClient[] = [];
  readonly #proxies: boolean;
  readonly checkEvery: number;
  /** Share of requests built as real Request objects (of those going through `handle`). */
  readonly realRequests: number;
  /** Share of announces and scrapes answered through `answerWire` (the wire server's path). */
  readonly wireRequests: number;
  readonly #make: HttpRequestMaker;
  readonly #wireClient = new FuzzWireClient();

  constructor(
    seed: number,
    profile: FuzzProfile,
    options: { checkEvery?: number; realRequests?: number; wireRequests?: number } = {},
  ) {
    this.world = new FuzzWorld(seed, profile);
    this.checkEvery = options.checkEvery ?? 2000;
    this.realRequests = options.realRequests ?? 0.25;
    this.wireRequests = options.wireRequests ?? 0.5;
    this.#http = new HttpTracker(this.world.tracker);
    this.#proxies = this.world.config.trustProxy.length > 0;
    const rng = this.world.rng;
    this.#make = new HttpRequestMaker(rng, (out, offset) => this.world.pickHash(out, offset));
    const add = (hostname: string, family: 0 | 4 | 6, address: number[], trusted = false) => {
      this.#clients.push({
        info: {
          remoteAddr: { transport: "tcp", hostname, port: rng.range(1024, 65535) },
          completed: Promise.resolve(),
        } as Deno.ServeHandlerInfo<Deno.NetAddr>,
        family,
        address: Uint8Array.from(address),
        trusted: trusted && this.#proxies,
      });
    };
    add("127.0.0.1", 4, [127, 0, 0, 1], true);
    add("::1", 6, [...new Array(15).fill(0), 1], true);
    add("::ffff:10.9.8.7", 4, [10, 9, 8, 7]);
    add("not an address", 0, []);
    for (let i = 0; i < 40; i++) {
      if (i % 3 === 2) {
        const a = [0xfd, ...rng.bytes(15)];
        const text = Array.from(
          { length: 8 },
          (_, g) => ((a[2 * g] << 8) | a[2 * g + 1]).toString(16),
        )
          .join(":");
        add(text, 6, a);
      } else {
        const a = [10, 20, i, 1 + rng.int(254)];
        add(a.join("."), 4, a);
      }
    }
  }

  /** One request: build, maybe mutate, answer through either entry point, check. */
  async step(): Promise<void> {
    const rng = this.world.rng;
    const c = this.#clients[rng.int(this.#clients.length)];
    const input = this.#make.make();
    const url = rng.pick(HOSTS) + input.target;
    const { method, headers } = input;
    const wire = wireRoute(input.target, method);
    if (wire !== null && c.family !== 0 && rng.chance(this.wireRequests)) {
      this.#checkWire(c, input, url, wire);
      return;
    }
    let request = { url, method, headers } as Request;
    if (rng.chance(this.realRequests)) {
      try {
        request = new Request(url, { method, headers });
      } catch {
        // Not a URL or method fetch accepts; the plain object goes in.
      }
    }
    // A real Request normalises its URL: then it is no longer the announce that was built.
    await this.#checkHandle(c, request, input.valid && request.url === url, input.port, input);
  }

  /** The wire server's path: `answerWire` with the query as text, the body in `wireBody`. */
  #checkWire(c: HttpClient, input: HttpInput, url: string, route: "announce" | "scrape"): void {
    const client = this.#wireClient;
    client.family = c.family as 4 | 6;
    client.address.fill(0);
    client.address.set(c.address);
    client.headers = input.headers;
    const q = input.target.indexOf("?");
    const query = q < 0 ? "" : input.target.slice(q + 1);
    const what = () => `answerWire(${route}) for ${shown(input.method)} ${shown(url, 600)}`;
    let length: number;
    try {
      length = this.#http.answerWire(route === "scrape", query, client);
    } catch (e) {
      this.#fail(what(), `answerWire threw ${(e as Error)?.stack ?? e}`);
    }
    this.tally.inputs++;
    if (length < 0) this.#fail(what(), `answerWire returned ${length} (full scrape is off)`);
    const body = this.#http.wireBody.slice(0, length);
    this.#checkBody(c, route, body, input.valid, input.port, input, what, "wire ");
    this.#afterInput();
  }

  /** The Request path: `handle`, then status, headers and body. */
  async #checkHandle(
    c: HttpClient,
    request: Request,
    valid: boolean,
    port: number | null,
    h: { forwarded: 0 | 4 | 6 | null; forwardedAddress: number[] },
  ): Promise<void> {
    const expect = expectHttpStatus(request.url, request.method);
    const what = () => `${shown(request.method)} ${shown(request.url, 600)}`;
    let response: Response;
    let body: Uint8Array;
    try {
      response = await this.#http.handle(request, c.info);
      body = await response.bytes();
    } catch (e) {
      this.#fail(what(), `handle threw ${(e as Error)?.stack ?? e}`);
    }
    const tally = this.tally;
    tally.inputs++;
    if (response.status !== expect.status) {
      this.#fail(
        what(),
        `status ${response.status}, expected ${expect.status}: ${shown(decoder.decode(body))}`,
      );
    }
    if (expect.route === "other") {
      const type = response.headers.get("content-type") ?? "";
      if (!type.startsWith("text/plain") || body.length === 0) {
        this.#fail(what(), `${response.status} with content-type '${type}', ${body.length} bytes`);
      }
      if (response.status === 405 && !response.headers.has("allow")) {
        this.#fail(what(), "405 without an Allow header");
      }
      countKind(tally, String(response.status));
    } else {
      this.#checkBody(c, expect.route, body, valid, port, h, what, "");
    }
    this.#afterInput();
  }

  #afterInput(): void {
    const inputs = this.tally.inputs;
    if ((inputs & 63) === 0) this.world.tick();
    if (inputs % this.checkEvery === 0) this.world.checkStore(`after HTTP input ${inputs}`);
  }

  /** Checks a 200 body from /announce or /scrape against the request and the store. */
  #checkBody(
    c: HttpClient,
    route: "announce" | "scrape",
    body: Uint8Array,
    valid: boolean,
    port: number | null,
    h: { forwarded: 0 | 4 | 6 | null; forwardedAddress: number[] },
    what: () => string,
    kindPrefix: string,
  ): void {
    const world = this.world;
    let family = c.family;
    let address: Uint8Array | null = c.address;
    if (c.trusted && h.forwarded !== null && h.forwarded !== 0) {
      family = h.forwarded;
      address = Uint8Array.from(h.forwardedAddress);
    }
    const limits = {
      family: family === 6 ? 6 as const : 4 as const,
      address,
      port,
      maxPeers: world.config.maxNumwant,
      interval: world.tracker.interval,
      minInterval: world.tracker.minInterval,
    };
    const reply = classifyHttpBody(body, route, limits);
    countKind(this.tally, `${kindPrefix}${route} ${reply.kind}`);
    if (reply.kind === "bad") this.#fail(what(), `${reply.problem}: ${shown(latin1(body))}`);
    if (route === "announce" && family === 0 && reply.kind !== "failure") {
      this.#fail(what(), "announce from an unusable address succeeded");
    }
    if (route === "announce" && valid && family !== 0) {
      const infoHash = this.#make.infoHash;
      const allowed = world.tracker.access.allows(infoHash, 0);
      if (allowed && reply.kind !== "announce") {
        this.#fail(what(), `valid announce refused: ${shown(latin1(body))}`);
      }
      if (!allowed && (reply.kind !== "failure" || reply.reason !== ACCESS_DENIED_REASON)) {
        this.#fail(what(), `announce of a refused info hash answered: ${shown(latin1(body))}`);
      }
      if (reply.kind === "announce") {
        const d = reply.dict;
        const problem = world.countsProblem(
          infoHash,
          0,
          d.get("complete") as number,
          d.get("downloaded") as number,
          d.get("incomplete") as number,
        );
        if (problem !== null) this.#fail(what(), problem);
      }
    }
    if (reply.kind === "scrape") {
      const key = new Uint8Array(20);
      for (const [k, entry] of reply.files) {
        for (let i = 0; i < 20; i++) key[i] = k.charCodeAt(i);
        const problem = world.countsProblem(
          key,
          0,
          entry.get("complete") as number,
          entry.get("downloaded") as number,
          entry.get("incomplete") as number,
        );
        if (problem !== null) this.#fail(what(), `scrape of ${hex(key)}: ${problem}`);
      }
    }
  }

  #fail(what: string, problem: string): never {
    const w = this.world;
    throw new FuzzFailure(
      `HTTP input ${this.tally.inputs} (profile '${w.profile.name}', seed ${w.seed}, clock ` +
        `${w.clock.now}): ${problem}\n  ${what}`,
    );
  }

  /**
   * Runs until `maxInputs` ran or, once `minInputs` have, `ms` passed; then checks the store.
   * Returns the inputs run.
   */
  async run(ms: number, maxInputs: number, minInputs = 0): Promise<number> {
    const deadline = performance.now() + ms;
    const start = this.tally.inputs;
    while (this.tally.inputs - start < maxInputs) {
      const ran = this.tally.inputs - start;
      if ((ran & 63) === 0 && ran >= minInputs && performance.now() > deadline) break;
      await this.step();
    }
    this.world.checkStore(`after HTTP input ${this.tally.inputs}`);
    return this.tally.inputs - start;
  }
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length && i < 2000; i++) s += String.fromCharCode(bytes[i]);
  return s;
}
