/**
 * Open HTTP connections per client address, for `--max-connections-per-ip`: without it one
 * address could hold every one of `--max-connections` slots (idle keep-alive connections, or
 * replies read slowly). The unit is an IPv4 address or an IPv6 /64, as for `--rate-limit`: one
 * host normally owns a whole /64 and could otherwise spread over it.
 *
 * An address has an entry only while it has a connection open, so the map never holds more
 * entries than connections are open (at most `--max-connections`). Counted per accept and close,
 * not per request, so a Map and a small key are fine here.
 */

/** An address's key: an IPv4 address as its 32-bit number, an IPv6 address by its /64 (text). */
export type AddressKey = number | string;

/** The key of `family`'s address at address[0..]: IPv4 whole, IPv6 its first 8 bytes. */
export function addressKey(family: 4 | 6, address: Uint8Array): AddressKey {
  const high = ((address[0] << 24) | (address[1] << 16) | (address[2] << 8) | address[3]) >>> 0;
  if (family === 4) return high;
  const low = ((address[4] << 24) | (address[5] << 16) | (address[6] << 8) | address[7]) >>> 0;
  return `${high.toString(16)}:${low.toString(16)}`;
}

export class ConnectionsPerAddress {
  readonly #open = new Map<AddressKey, number>();

  /** Takes a slot for `key`; false (and nothing taken) when it already holds `limit`. */
  tryOpen(key: AddressKey, limit: number): boolean {
    const open = this.#open.get(key) ?? 0;
    if (open >= limit) return false;
    this.#open.set(key, open + 1);
    return true;
  }

  /** Gives back a slot `tryOpen` took. */
  close(key: AddressKey): void {
    const open = this.#open.get(key) ?? 0;
    if (open <= 1) this.#open.delete(key);
    else this.#open.set(key, open - 1);
  }

  /** Connections open from `key`. */
  openFrom(key: AddressKey): number {
    return this.#open.get(key) ?? 0;
  }

  /** Addresses with a connection open (entries held). */
  get addresses(): number {
    return this.#open.size;
  }
}
