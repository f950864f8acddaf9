/**
 * WebTorrent offers and answers between cluster nodes, the tracker's side (the Redis side is
 * cluster/wtRelay.ts): which signals go out, and which that come in may reach a socket. The rules
 * of one node hold across nodes:
 * - an offer the tracker sampled for another node's peer (its published key and its node's tag)
 *   is sent there and remembered (`#out`, 120 s, bounded as the local table);
 * - an offer from another node reaches only a live peer of this node in that torrent (the key's
 *   entry, decoded), once (a copy while it is pending is a replay), and is remembered (`#in`);
 * - an answer from one of our peers to such an offer (from the connection that owns its peer_id:
 *   the tracker checked) goes back to the offering node, once;
 * - an answer from another node reaches our offering client only if we sent that offer to the peer
 *   that answers, within 120 s, and it names the client's peer_id.
 * Signals that fail these are refused and counted by the relay (`not_ours`, `replayed`,
 * `no_offer`), never forwarded.
 */
import type { WsPeerKeys } from "../../cluster/wsPeerKeys.ts";
import { SIGNAL_ANSWER, SIGNAL_OFFER, type SignalRelay, WtSignal } from "../../cluster/wtSignal.ts";
import { ID_BYTES, type WtRequest } from "../../protocol/wtMessage.ts";
import { WS_REMOTE_BIT } from "../../store/swarmTable.ts";
import { WsOfferTable } from "./wsOfferTable.ts";
import type { WsPeerTable } from "./wsPeerTable.ts";

export class WtAcrossNodes {
  readonly #relay: SignalRelay;
  readonly #peers: WsPeerTable;
  readonly #keys: WsPeerKeys;
  /**
   * Offers sent to other nodes' peers: target = the peer's published key (as an int32), its
   * "generation" = its node's tag; offerer = our entry and its generation.
   */
  readonly #out = new WsOfferTable();
  /**
   * Offers from other nodes forwarded to our peers: target = our entry and its generation;
   * offerer = the offering peer's published key (int32), its "generation" = its node's tag.
   */
  readonly #in = new WsOfferTable();
  readonly #signal = new WtSignal();

  constructor(relay: SignalRelay, peers: WsPeerTable, keys: WsPeerKeys) {
    this.#relay = relay;
    this.#peers = peers;
    this.#keys = keys;
  }

  /** Offers pending either way. */
  get pending(): number {
    return this.#out.held + this.#in.held;
  }

  /** Pending offers dropped early at the tables' caps. */
  get evicted(): number {
    return this.#out.evicted + this.#in.evicted;
  }

  /**
   * Sends offer i of `request`, made by our entry `entry`, to another node's peer whose key is
   * `target` and whose node's tag is `tag`; remembers it if it was sent.
   */
  offer(
    request: WtRequest,
    i: number,
    target: number,
    tag: number,
    entry: number,
    generation: number,
    now: number,
  ): void {
    const signal = this.#signal;
    signal.kind = SIGNAL_OFFER;
    signal.toTag = tag;
    signal.toKey = target;
    signal.fromKey = this.#keys.published(entry);
    signal.infoHash.set(request.infoHash);
    signal.offerId.set(request.offerIds.subarray(i * ID_BYTES, i * ID_BYTES + ID_BYTES));
    signal.peerId.set(request.peerId);
    signal.sdp = request.message;
    signal.sdpStart = request.offerSdpStarts[i];
    signal.sdpEnd = request.offerSdpEnds[i];
    if (!this.#relay.send(signal)) return;
    this.#out.add(request.offerIds, i * ID_BYTES, target | 0, tag, entry, generation, now);
  }

  /**
   * An answer from our entry `entry` (its connection's own) to an offer another node sent it
   * through us: sent back to that node if such an offer is pending. Returns false when none is.
   */
  answer(request: WtRequest, entry: number, now: number): boolean {
    const pending = this.#in.find(request.offerId, 0, entry, this.#peers.generationOf(entry), now);
    if (pending < 0) return false;
    const signal = this.#signal;
    signal.kind = SIGNAL_ANSWER;
    signal.toKey = this.#in.offerer >>> 0;
    signal.toTag = this.#in.offererGeneration;
    signal.fromKey = this.#keys.published(entry);
    signal.infoHash.set(request.infoHash);
    signal.offerId.set(request.offerId);
    signal.peerId.set(request.peerId);
    signal.toPeerId.set(request.toPeerId);
    signal.sdp = request.message;
    signal.sdpStart = request.answerSdpStart;
    signal.sdpEnd = request.answerSdpEnd;
    this.#in.remove(pending);
    this.#relay.send(signal);
    return true;
  }

  /**
   * Checks a signal for this node (sound, in time, for our tag: the relay checked that): returns
   * the entry whose connection it goes to, or -1 when it is refused (counted).
   */
  receive(signal: WtSignal, now: number): number {
    const peers = this.#peers;
    const entry = this.#keys.entryOf(signal.toKey);
    if ((signal.toKey & WS_REMOTE_BIT) === 0 || !peers.holds(entry, signal.infoHash, 0)) {
      this.#relay.refused("not_ours");
      return -1;
    }
    const generation = peers.generationOf(entry);
    if (signal.kind === SIGNAL_OFFER) {
      if (this.#in.find(signal.offerId, 0, entry, generation, now) >= 0) {
        this.#relay.refused("replayed"); // forwarded already, and still pending
        return -1;
      }
      this.#in.add(signal.offerId, 0, entry, generation, signal.fromKey | 0, signal.fromTag, now);
      return entry;
    }
    const out = this.#out;
    const pending = out.find(signal.offerId, 0, signal.fromKey | 0, signal.fromTag, now);
    if (
      pending < 0 || out.offerer !== entry || out.offererGeneration !== generation ||
      !sameId(peers.peerIds, entry * ID_BYTES, signal.toPeerId)
    ) {
      this.#relay.refused("no_offer");
      return -1;
    }
    out.remove(pending);
    return entry;
  }
}

function sameId(bytes: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let i = 0; i < ID_BYTES; i++) if (bytes[at + i] !== id[i]) return false;
  return true;
}
