/**
 * The client mix: which BitTorrent clients announce, from the peer_id prefix conventions of BEP 20,
 * counted per announce on the hot path in a small fixed table.
 *
 * A peer_id's client is reduced to a 16-bit key, read from the bytes without allocating:
 * - Azureus style `-XX1234-` (qBittorrent `-qB4630-`, Transmission `-TR4060-`, libtorrent
 *   `-LT2080-`, WebTorrent `-WW0208-`): the two letters, `X << 8 | X`.
 * - Shadow style `S58B-----` (one letter of A O Q R S T U, up to four version characters, a dash
 *   at index 5) and Mainline style `M4-3-6--` / `M7-10-3-`: the letter alone.
 * - aria2 (`A2-1-36-0-`, older `-aria2-`), Tixati (`TIX0...`), XBT (`XBT...`), and BitComet's old
 *   `exbc` (counted as BitComet): fixed keys.
 * - Anything else: key 0, counted as "other".
 *
 * Counts go into at most CLIENT_SLOTS slots (slot 0 is "other", which also takes new clients once
 * the table is full), found through a 64 KiB key → slot map, so a flood of made-up prefixes costs
 * no memory and no time. Two alternating buckets each cover `windowSeconds`: the mix shown is the
 * current bucket plus the previous one (the last 5 to 10 minutes by default), and a client gone
 * for a whole bucket gives its slot back at the next switch.
 */

/** Slots in the table, "other" included. */
export const CLIENT_SLOTS = 64;
/** Seconds each of the two buckets covers. */
export const CLIENT_WINDOW_SECONDS = 300;

/** Key of peer_ids in no known convention (and of clients past a full table). */
export const KEY_OTHER = 0;
const KEY_ARIA2 = 1;
const KEY_TIXATI = 2;
const KEY_XBT = 3;

const DASH = 0x2d;

/** 1 for 0-9 A-Z a-z, 2 for '.', else 0: version characters and Azureus client letters. */
const CHAR_CLASS = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) CHAR_CLASS[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) CHAR_CLASS[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) CHAR_CLASS[c] = 1;
CHAR_CLASS[0x2e] = 2;

/** Shadow-style client letters (BEP 20). */
const SHADOW_NAMES: Readonly<Record<string, string>> = {
  A: "ABC",
  O: "Osprey Permaseed",
  Q: "BTQueue",
  R: "Tribler",
  S: "Shad0w",
  T: "BitTornado",
  U: "UPnP NAT",
};
const SHADOW_LETTER = new Uint8Array(128);
for (const letter of Object.keys(SHADOW_NAMES)) SHADOW_LETTER[letter.charCodeAt(0)] = 1;

/** Azureus-style codes of clients seen in the wild (BEP 20 and the clients' own sources). */
const AZUREUS_NAMES: Readonly<Record<string, string>> = {
  "A~": "Ares",
  AG: "Ares",
  AZ: "Vuze (Azureus)",
  BC: "BitComet",
  BG: "BTG",
  BI: "BiglyBT",
  BT: "BitTorrent",
  DE: "Deluge",
  FG: "FlashGet",
  HL: "Halite",
  KT: "KTorrent",
  LT: "libtorrent (Rasterbar)",
  lt: "rTorrent (libTorrent)",
  LW: "LimeWire",
  MO: "MonoTorrent",
  qB: "qBittorrent",
  rQ: "rqbit",
  SD: "Thunder (Xunlei)",
  SZ: "Shareaza",
  TR: "Transmission",
  TT: "TuoTu",
  UM: "µTorrent Mac",
  UT: "µTorrent",
  UW: "µTorrent Web",
  WD: "WebTorrent Desktop",
  WW: "WebTorrent",
  XL: "Thunder (Xunlei)",
};

/** The client key of the 20-byte peer_id at `bytes[offset]` (see the module comment). */
export function clientKey(bytes: Uint8Array, offset: number): number {
  const b0 = bytes[offset];
  const b1 = bytes[offset + 1];
  const b2 = bytes[offset + 2];
  if (b0 === DASH) {
    // -XX1234-: two client letters (or A~), four version characters, a dash.
    if (
      bytes[offset + 7] === DASH && CHAR_CLASS[b1] === 1 &&
      (CHAR_CLASS[b2] === 1 || b2 === 0x7e) && CHAR_CLASS[bytes[offset + 3]] !== 0 &&
      CHAR_CLASS[bytes[offset + 4]] !== 0 && CHAR_CLASS[bytes[offset + 5]] !== 0 &&
      CHAR_CLASS[bytes[offset + 6]] !== 0
    ) {
      return b1 << 8 | b2;
    }
    // -aria2-
    if (
      b1 === 0x61 && b2 === 0x72 && bytes[offset + 3] === 0x69 && bytes[offset + 4] === 0x61 &&
      bytes[offset + 5] === 0x32 && bytes[offset + 6] === DASH
    ) return KEY_ARIA2;
    return KEY_OTHER;
  }
  // A2-major-minor-patch-
  if (b0 === 0x41 && b1 === 0x32 && b2 === DASH) return KEY_ARIA2;
  // Mainline: M, a digit, a dash, then "x-y--" or "xx-y-": a dash at 4 or 5 and at 7.
  if (
    b0 === 0x4d && b1 >= 0x30 && b1 <= 0x39 && b2 === DASH && bytes[offset + 7] === DASH &&
    (bytes[offset + 4] === DASH || bytes[offset + 5] === DASH)
  ) return b0;
  // Shadow: a letter, a digit or dash, version characters up to a run of dashes through index 5.
  if (b0 < 128 && SHADOW_LETTER[b0] === 1 && bytes[offset + 5] === DASH) {
    if (b1 !== DASH && (b1 < 0x30 || b1 > 0x39)) return otherKey(bytes, offset);
    let end = 4;
    while (end > 0 && bytes[offset + end] === DASH) end--;
    for (let i = 1; i <= end; i++) {
      if (CHAR_CLASS[bytes[offset + i]] === 0) return otherKey(bytes, offset);
    }
    return b0;
  }
  return otherKey(bytes, offset);
}

/** The custom prefixes: TIX (Tixati), XBT, exbc (old BitComet). */
function otherKey(bytes: Uint8Array, offset: number): number {
  const b0 = bytes[offset];
  const b1 = bytes[offset + 1];
  const b2 = bytes[offset + 2];
  if (b0 === 0x54 && b1 === 0x49 && b2 === 0x58) return KEY_TIXATI;
  if (b0 === 0x58 && b1 === 0x42 && b2 === 0x54) return KEY_XBT;
  if (b0 === 0x65 && b1 === 0x78 && b2 === 0x62 && bytes[offset + 3] === 0x63) {
    return 0x42 << 8 | 0x43; // BC
  }
  return KEY_OTHER;
}

/** How a key is shown: its code as it appears in a peer_id, and the client's name. */
export function describeClientKey(key: number): { code: string; name: string } {
  if (key === KEY_OTHER) return { code: "", name: "other" };
  if (key === KEY_ARIA2) return { code: "A2", name: "aria2" };
  if (key === KEY_TIXATI) return { code: "TIX", name: "Tixati" };
  if (key === KEY_XBT) return { code: "XBT", name: "XBT" };
  if (key < 0x100) {
    const letter = String.fromCharCode(key);
    return { code: letter, name: letter === "M" ? "Mainline" : SHADOW_NAMES[letter] ?? letter };
  }
  const code = String.fromCharCode(key >> 8, key & 0xff);
  return { code: `-${code}`, name: AZUREUS_NAMES[code] ?? `unknown -${code}-` };
}

export interface ClientShare {
  code: string;
  name: string;
  announces: number;
}

export class ClientMix {
  readonly windowSeconds: number;
  /** Key → slot; 0 means none (slot 0, "other", is never looked up). */
  readonly #slotOf = new Uint8Array(65536);
  readonly #keys = new Uint16Array(CLIENT_SLOTS);
  /** Two buckets of CLIENT_SLOTS counts. */
  readonly #counts = new Float64Array(2 * CLIENT_SLOTS);
  #current = 0;
  #used = 1;
  #bucketStart = -1;

  constructor(windowSeconds = CLIENT_WINDOW_SECONDS) {
    this.windowSeconds = windowSeconds;
  }

  /**
   * Counts one announce by the peer_id at `bytes[offset]` (20 bytes). Allocates nothing.
   *
   * Per announce, so the common case is short: an Azureus-style peer_id (`-XX…`, most clients)
   * whose two letters already hold a slot is counted from its first three bytes; clientKey's full
   * check of the version characters ran when they were given the slot. (Measured in callgrind: the
   * full check is some 200 instructions, this path about 50.)
   */
  count(bytes: Uint8Array, offset: number): void {
    const b1 = bytes[offset + 1];
    // b1 of a key with a slot is a letter or digit, so a zero b1 cannot reach a one-byte key.
    if (bytes[offset] === DASH && b1 !== 0) {
      const known = this.#slotOf[b1 << 8 | bytes[offset + 2]];
      if (known !== 0) {
        this.#counts[this.#current + known]++;
        return;
      }
    }
    this.#countByKey(bytes, offset);
  }

  /** `count` for a peer_id that needs clientKey's full check (kept apart so `count` stays small). */
  #countByKey(bytes: Uint8Array, offset: number): void {
    const key = clientKey(bytes, offset);
    let slot = 0;
    if (key !== KEY_OTHER) {
      slot = this.#slotOf[key];
      if (slot === 0 && this.#used < CLIENT_SLOTS) {
        slot = this.#used++;
        this.#keys[slot] = key;
        this.#slotOf[key] = slot;
      }
    }
    this.#counts[this.#current + slot]++;
  }

  /**
   * Switches buckets when `nowSeconds` (any monotonic seconds, e.g. the tracker clock) is a
   * window past the current bucket's start; call it about once a second.
   */
  advance(nowSeconds: number): void {
    if (this.#bucketStart < 0) this.#bucketStart = nowSeconds;
    const elapsed = nowSeconds - this.#bucketStart;
    if (elapsed < this.windowSeconds) return;
    this.#current = this.#current === 0 ? CLIENT_SLOTS : 0;
    if (elapsed >= 2 * this.windowSeconds) this.#counts.fill(0); // both buckets are stale
    else this.#counts.fill(0, this.#current, this.#current + CLIENT_SLOTS);
    this.#bucketStart = nowSeconds;
    this.#reclaim();
  }

  /** Frees the slots of clients with no announce in either bucket, keeping the rest in order. */
  #reclaim(): void {
    const counts = this.#counts;
    let kept = 1;
    for (let s = 1; s < this.#used; s++) {
      const key = this.#keys[s];
      this.#slotOf[key] = 0;
      if (counts[s] + counts[CLIENT_SLOTS + s] === 0) continue;
      this.#keys[kept] = key;
      counts[kept] = counts[s];
      counts[CLIENT_SLOTS + kept] = counts[CLIENT_SLOTS + s];
      this.#slotOf[key] = kept;
      kept++;
    }
    for (let s = kept; s < this.#used; s++) counts[s] = counts[CLIENT_SLOTS + s] = 0;
    this.#used = kept;
  }

  /** Clients in use (slots taken, "other" included). */
  get slotsUsed(): number {
    return this.#used;
  }

  /** Announces per client over both buckets, most first; "other" only when non-zero. */
  shares(): ClientShare[] {
    const out: ClientShare[] = [];
    for (let s = 0; s < this.#used; s++) {
      const announces = this.#counts[s] + this.#counts[CLIENT_SLOTS + s];
      if (announces === 0) continue;
      const key = s === 0 ? KEY_OTHER : this.#keys[s];
      out.push({ ...describeClientKey(key), announces });
    }
    return out.sort((a, b) => b.announces - a.announces || (a.name < b.name ? -1 : 1));
  }

  /** Bytes of the typed arrays; fixed. */
  get byteSize(): number {
    return this.#slotOf.byteLength + this.#keys.byteLength + this.#counts.byteLength;
  }
}
