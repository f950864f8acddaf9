/**
 * `--deniability PROBABILITY` / `--deniability-max N`: with that probability, an announce reply
 * gets 1..N generated peers mixed into its compact peer list at random positions, and the caller
 * adds them to the reply's incomplete (leecher) count so the counts agree with the list shown.
 * Off unless configured. The idea is chihaya's `deniability` middleware; opentracker has no such
 * feature despite what some encyclopedias say.
 *
 * What it does:
 * - Generated peers are in the requester's address family and look like ordinary public unicast
 *   hosts: IPv4 is drawn uniformly from public /24s (never 0/8, 10/8, 100.64/10, 127/8,
 *   169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24, 192.168/16, 198.18/15,
 *   198.51.100/24, 203.0.113/24 or 224/4 and above) with a last octet of 1..254; IPv6 from the
 *   five regional-registry /12 blocks (2400::, 2600::, 2800::, 2a00::, 2c00::, all inside
 *   2000::/3 and clear of 2001:db8::/32 and the other special ranges) with a non-zero interface
 *   id. Ports are 1024..65535. A generated address never repeats one already in the list.
 * - Empty lists are never touched (a fake peer in an empty swarm would be an obvious tell), the
 *   list never grows past numwant (fakes then replace real peers), and the last real peer is never
 *   replaced, so every mixed reply still lets the client join the swarm.
 * - Randomness comes from `crypto.getRandomValues` unless a generator is injected. The tracker
 *   injects one reseeded per torrent and announce interval from a keyed hash (secret per-process
 *   key) of the info hash and the interval number (src/servers/tracker.ts): within one interval
 *   every reply for a torrent mixes the same generated addresses, and scrapes add the same number
 *   to the leecher count, so repeated announces and scrapes agree with each other. Outsiders still
 *   cannot predict which torrents are mixed or which addresses are generated.
 *
 * What it hides: only that an address in a peer list was really announced. A list captured on the
 * wire or handed to a third party no longer proves that each listed address took part, because
 * any one of them may be generated.
 *
 * What it does not hide:
 * - Anything from the tracker operator: real peers are stored, counted and (with a state file or
 *   logs) persisted exactly as without this option. The requester's own presence is not hidden.
 * - Anything from an observer who connects to the listed peers: real peers complete a BitTorrent
 *   handshake for the info hash, generated ones do not answer.
 * - Anything from an observer who announces across several intervals: real peers recur, the
 *   generated ones change each interval, so intersecting replies from different intervals
 *   separates them.
 * - The real swarm size from the operator's own stats and metrics pages, which count real peers.
 * - Routing data: many generated addresses sit in unrouted space, which a BGP table reveals.
 * - Peer exchange (BEP 11), DHT and non-compact HTTP replies are outside its reach; it works on
 *   compact peer lists only (6 bytes per IPv4 peer, 18 per IPv6 peer).
 */

/** IPv4 ranges never generated, as [first address, prefix bits]. */
const RESERVED_V4: readonly (readonly [number, number])[] = [
  [0x00000000, 8], // 0/8 "this network"
  [0x0a000000, 8], // 10/8 private
  [0x64400000, 10], // 100.64/10 carrier-grade NAT
  [0x7f000000, 8], // 127/8 loopback
  [0xa9fe0000, 16], // 169.254/16 link-local
  [0xac100000, 12], // 172.16/12 private
  [0xc0000000, 24], // 192.0.0/24 IETF protocol assignments
  [0xc0000200, 24], // 192.0.2/24 TEST-NET-1
  [0xc0586300, 24], // 192.88.99/24 former 6to4 relay anycast
  [0xc0a80000, 16], // 192.168/16 private
  [0xc6120000, 15], // 198.18/15 benchmarking
  [0xc6336400, 24], // 198.51.100/24 TEST-NET-2
  [0xcb007100, 24], // 203.0.113/24 TEST-NET-3
  [0xe0000000, 3], // 224/4 multicast, 240/4 reserved, broadcast
];

/** The public /24s as half-open runs [start, end) of /24 numbers, and their running totals. */
const PUBLIC_RUN_START: Uint32Array = new Uint32Array(RESERVED_V4.length + 1);
const PUBLIC_RUN_END: Uint32Array = new Uint32Array(RESERVED_V4.length + 1);
const PUBLIC_RUN_TOTAL: Float64Array = new Float64Array(RESERVED_V4.length + 1);
let publicRuns = 0;
let publicSlash24s = 0;
{
  const reserved = RESERVED_V4.map((
    [first, bits],
  ) => [first >>> 8, (first >>> 8) + 2 ** (32 - bits) / 256])
    .sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [start, end] of reserved) {
    if (start > next) {
      PUBLIC_RUN_START[publicRuns] = next;
      PUBLIC_RUN_END[publicRuns] = start;
      publicSlash24s += start - next;
      PUBLIC_RUN_TOTAL[publicRuns++] = publicSlash24s;
    }
    if (end > next) next = end;
  }
  if (next < 2 ** 24) {
    PUBLIC_RUN_START[publicRuns] = next;
    PUBLIC_RUN_END[publicRuns] = 2 ** 24;
    publicSlash24s += 2 ** 24 - next;
    PUBLIC_RUN_TOTAL[publicRuns++] = publicSlash24s;
  }
}

/** First 12 bits of the IPv6 blocks IANA gave the regional registries. */
const V6_BLOCKS = [0x240, 0x260, 0x280, 0x2a0, 0x2c0];

const POOL_SIZE = 256;
/** Tries to find an address not already in the list before settling for a repeat. */
const DISTINCT_TRIES = 8;

export class DeniabilityMixer {
  /** How many generated peers the last `mix` call put into the list (0 if it left it alone). */
  lastAdded = 0;
  readonly #threshold: number;
  readonly #maxFake: number;
  readonly #random: (() => number) | null;
  readonly #pool = new Uint32Array(POOL_SIZE);
  #poolIndex = POOL_SIZE;

  /**
   * `probability` in [0, 1] per announce reply; `maxFake` ≥ 1 generated peers at most per reply;
   * `random` returns uniform uint32 values (defaults to crypto.getRandomValues).
   * Throws RangeError on values the config layer should have refused.
   */
  constructor(probability: number, maxFake: number, random?: () => number) {
    if (!(probability >= 0 && probability <= 1)) {
      throw new RangeError(`deniability probability must be in [0, 1], got ${probability}`);
    }
    if (!Number.isInteger(maxFake) || maxFake < 1) {
      throw new RangeError(`deniability maximum must be a whole number ≥ 1, got ${maxFake}`);
    }
    // A uint32 below this threshold means "mix"; probability 1 gives 2^32, above every uint32.
    this.#threshold = Math.round(probability * 4294967296);
    this.#maxFake = maxFake;
    this.#random = random ?? null;
  }

  #next(): number {
    if (this.#random !== null) return this.#random() >>> 0;
    if (this.#poolIndex === POOL_SIZE) {
      crypto.getRandomValues(this.#pool);
      this.#poolIndex = 0;
    }
    return this.#pool[this.#poolIndex++];
  }

  /** A uniform integer in [0, n) for n ≤ 2^32 (bias at most n / 2^32). */
  #below(n: number): number {
    return Math.floor((this.#next() * n) / 4294967296);
  }

  /**
   * Maybe mixes generated peers into the compact peer list in
   * buf[offset .. offset + count * entrySize] (entrySize 6 for family 4, 18 for family 6).
   * Inserts 1..maxFake of them at random positions while the list is shorter than `numwant` (and
   * than what `buf` can hold), then replaces random real peers, keeping at least one; never touches
   * an empty list. Returns the new entry count and sets `lastAdded`, which the caller adds to the
   * reply's incomplete count. Allocates nothing.
   */
  mix(family: 4 | 6, buf: Uint8Array, offset: number, count: number, numwant: number): number {
    this.lastAdded = 0;
    if (count <= 0) return count;
    const wanted = this.decide();
    return wanted === 0 ? count : this.mixIn(family, buf, offset, count, numwant, wanted);
  }

  /**
   * Draws whether to mix and how many: 0 (leave the reply alone) or 1..maxFake. `mix` makes the
   * same draws first, so a caller that reseeds a deterministic generator before each call gets
   * the same decision from `decide` (for scrape counts) as from `mix` (for the peer list).
   */
  decide(): number {
    if (this.#threshold === 0) return 0;
    if (this.#next() >= this.#threshold) return 0;
    return 1 + this.#below(this.#maxFake);
  }

  /** Mixes `wanted` generated peers into a non-empty list, as `mix` describes. */
  mixIn(
    family: 4 | 6,
    buf: Uint8Array,
    offset: number,
    count: number,
    numwant: number,
    wanted: number,
  ): number {
    this.lastAdded = 0;
    if (count <= 0 || wanted <= 0) return count;
    const entry = family === 4 ? 6 : 18;
    const room = Math.floor((buf.length - offset) / entry);
    let limit = numwant < room ? numwant : room;
    if (limit < count) limit = count;
    const inserts = wanted < limit - count ? wanted : limit - count;
    const replaces = wanted - inserts < count - 1 ? wanted - inserts : count - 1;

    // Replace first, while every entry is still real: selection sampling picks `replaces` distinct
    // positions uniformly without any scratch array.
    let needed = replaces;
    for (let i = 0; i < count && needed > 0; i++) {
      if (this.#below(count - i) < needed) {
        this.#writeFake(family, buf, offset, count, i);
        needed--;
      }
    }
    let n = count;
    for (let k = 0; k < inserts; k++) {
      const position = this.#below(n + 1);
      const at = offset + position * entry;
      buf.copyWithin(at + entry, at, offset + n * entry);
      n++;
      this.#writeFake(family, buf, offset, n, position);
    }
    this.lastAdded = replaces + inserts;
    return n;
  }

  /** Writes a generated peer into slot `slot` of the n-entry list, avoiding addresses in it. */
  #writeFake(family: 4 | 6, buf: Uint8Array, offset: number, n: number, slot: number): void {
    const entry = family === 4 ? 6 : 18;
    const at = offset + slot * entry;
    for (let attempt = 0; attempt < DISTINCT_TRIES; attempt++) {
      if (family === 4) this.#writeV4(buf, at);
      else this.#writeV6(buf, at);
      if (!repeatsAddress(buf, offset, n, slot, entry, entry - 2)) break;
    }
    const port = 1024 + this.#below(65536 - 1024);
    buf[at + entry - 2] = port >>> 8;
    buf[at + entry - 1] = port & 255;
  }

  #writeV4(buf: Uint8Array, at: number): void {
    let index = this.#below(publicSlash24s);
    let run = 0;
    while (index >= PUBLIC_RUN_TOTAL[run]) run++;
    index -= PUBLIC_RUN_TOTAL[run] - (PUBLIC_RUN_END[run] - PUBLIC_RUN_START[run]);
    const slash24 = PUBLIC_RUN_START[run] + index;
    buf[at] = slash24 >>> 16;
    buf[at + 1] = (slash24 >>> 8) & 255;
    buf[at + 2] = slash24 & 255;
    buf[at + 3] = 1 + this.#below(254);
  }

  #writeV6(buf: Uint8Array, at: number): void {
    const top = V6_BLOCKS[this.#below(V6_BLOCKS.length)];
    const w0 = ((top << 20) | (this.#next() & 0xfffff)) >>> 0;
    writeWord(buf, at, w0);
    writeWord(buf, at + 4, this.#next());
    const iidHigh = this.#next();
    let iidLow = this.#next();
    if (iidHigh === 0 && iidLow === 0) iidLow = 1; // all-zero is the subnet-router anycast id
    writeWord(buf, at + 8, iidHigh);
    writeWord(buf, at + 12, iidLow);
  }
}

function writeWord(buf: Uint8Array, at: number, w: number): void {
  buf[at] = w >>> 24;
  buf[at + 1] = (w >>> 16) & 255;
  buf[at + 2] = (w >>> 8) & 255;
  buf[at + 3] = w & 255;
}

/** Does the address in slot `slot` equal the address of any other of the n entries? */
function repeatsAddress(
  buf: Uint8Array,
  offset: number,
  n: number,
  slot: number,
  entry: number,
  addressLength: number,
): boolean {
  const a = offset + slot * entry;
  outer: for (let j = 0; j < n; j++) {
    if (j === slot) continue;
    const b = offset + j * entry;
    for (let k = 0; k < addressLength; k++) {
      if (buf[a + k] !== buf[b + k]) continue outer;
    }
    return true;
  }
  return false;
}
