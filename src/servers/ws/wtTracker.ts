/**
 * The WebTorrent tracker: what one text message from a WebSocket client does (an announce, an
 * answer to an offer, a scrape), and what a closed connection takes with it. Rules (README →
 * WebTorrent, docs/protocols.md):
 * - announce: the access list, the rate limit and the store's caps apply as for HTTP and UDP; the
 *   peer is the store's FAMILY_WS entry of (info hash, peer_id) in the peer table, bound to the
 *   connection that announced it first; `left` 0 is a seeder, anything else (null too) a leecher;
 *   each offer (at most 10) goes to one random other WebSocket peer of the swarm connected to this
 *   node (a seeder's to leechers only), and is remembered in the pending-offer table;
 * - answer: relayed to the offerer only if that offer was sent to this connection's peer within
 *   120 s and not answered yet; the answerer gets no reply;
 * - scrape: one hash or up to 64; no full scrape;
 * - a peer_id owned by another connection, for an announce, a stop or an answer: refused;
 * - every reply and error carries `action` and `info_hash` (when the message had one).
 * Replies and offers are written straight into the connections' output queues (wsConnection.ts);
 * the server writes them out. With --cluster, WebSocket peers are published like the others
 * (publishRule.ts), under the key that names them on other nodes (cluster/wsPeerKeys.ts), so their
 * counts reach every node; and with a signal relay (cluster/wtRelay.ts) an offer sampled for
 * another node's peer goes to that node, which forwards it to its peer and sends the answer back,
 * under the same rules (wtAcrossNodes.ts).
 */
import { EVENT_STOPPED } from "../../protocol/events.ts";
import {
  ID_BYTES,
  parseWtMessage,
  WT_ANNOUNCE,
  WT_ANSWER,
  WT_SCRAPE,
  WtRequest,
} from "../../protocol/wtMessage.ts";
import {
  writeWtAnnounceReply,
  writeWtAnswer,
  writeWtError,
  writeWtOffer,
  writeWtScrapeReply,
  WT_ANNOUNCE_REPLY_MAX,
  wtErrorMaxLength,
  wtScrapeReplyMaxLength,
  wtSignalMaxLength,
} from "../../protocol/wtReply.ts";
import { readWord, writeWord, WsPeerKeys } from "../../cluster/wsPeerKeys.ts";
import { SIGNAL_OFFER, type SignalRelay, type WtSignal } from "../../cluster/wtSignal.ts";
import { ACCESS_DENIED_REASON } from "../../policy/accessList.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_SCRAPE,
  PROTOCOL_WS,
  RESULT_ERROR,
  RESULT_OK,
} from "../../observe/requestCounters.ts";
import {
  IN_ANNOUNCE,
  IN_ANSWER,
  IN_INVALID,
  IN_SCRAPE,
  OUT_ANNOUNCE,
  OUT_ANSWER,
  OUT_ERROR,
  OUT_OFFER,
  OUT_SCRAPE,
  REFUSED_ACCESS,
  REFUSED_FULL,
  REFUSED_MALFORMED,
  REFUSED_NO_OFFER,
  REFUSED_OWNED,
  REFUSED_RATE,
  REFUSED_TOO_MANY,
  type WsCounters,
} from "../../observe/wsCounters.ts";
import { FAMILY_WS, refusedReason, WS_REMOTE_BIT } from "../../store/swarmTable.ts";
import type { Tracker } from "../tracker.ts";
import type { WsBuffers } from "./wsBuffers.ts";
import type { WsConnection, WsConnectionSlots } from "./wsConnection.ts";
import { WsOfferTable } from "./wsOfferTable.ts";
import { WsPeerTable } from "./wsPeerTable.ts";
import { WtAcrossNodes } from "./wtAcrossNodes.ts";

/** Most (torrent, peer_id) entries one connection may hold. */
export const MAX_PEERS_PER_CONNECTION = 4096;
const NO_MESSAGE = new Uint8Array(0);
/** Most offers forwarded for one announce. */
const MAX_OFFERS_FORWARDED = 10;

export const OWNED_REASON = "peer_id is in use on another connection";
export const NO_OFFER_REASON = "no matching offer (unknown, answered, or over 120 s old)";
export const RATE_LIMITED_REASON = "rate limited: slow down";
export const TOO_MANY_REASON = `too many torrents on one connection (${MAX_PEERS_PER_CONNECTION})`;

export interface WtSettings {
  /** Seconds between announces asked of clients (`--ws-interval`). */
  interval: number;
  /** Most bytes queued for one client before it is closed as a slow reader. */
  maxQueuedBytes: number;
}

export class WtTracker {
  readonly peers: WsPeerTable;
  readonly offers: WsOfferTable;
  settings: WtSettings;
  readonly #tracker: Tracker;
  readonly #slots: WsConnectionSlots;
  readonly #buffers: WsBuffers;
  readonly #counters: WsCounters;
  /** Tells the server a connection has frames to write this turn. */
  readonly #queued: (connection: WsConnection) => void;
  readonly #request = new WtRequest();
  /** The peer's key in the store: entry number (big-endian) and, as the port, its generation. */
  readonly #key = new Uint8Array(4);
  readonly #remote = new Uint8Array(4);
  /** The keys this node publishes its peers under (shared with the cluster's snapshots). */
  readonly keys: WsPeerKeys;
  /** Offers and answers to and from other cluster nodes (`relayThrough`), or null. */
  #across: WtAcrossNodes | null = null;
  readonly #sample = new Uint8Array(MAX_OFFERS_FORWARDED * 6);
  readonly #scrapeCounts = new Float64Array(64 * 3);

  constructor(
    tracker: Tracker,
    slots: WsConnectionSlots,
    buffers: WsBuffers,
    counters: WsCounters,
    settings: WtSettings,
    queued: (connection: WsConnection) => void,
    keys: WsPeerKeys = new WsPeerKeys(),
  ) {
    this.#tracker = tracker;
    this.#slots = slots;
    this.#buffers = buffers;
    this.#counters = counters;
    this.settings = settings;
    this.#queued = queued;
    this.peers = new WsPeerTable();
    this.offers = new WsOfferTable();
    this.keys = keys;
    keys.owns = (entry, hash, hashAt) => this.peers.holds(entry, hash, hashAt);
  }

  /**
   * Relays offers for other nodes' peers, and their answers, through `relay` (startTracker, with
   * --cluster); the relay hands this node's signals to `remoteSignal`.
   */
  relayThrough(relay: SignalRelay): void {
    this.#across = new WtAcrossNodes(relay, this.peers, this.keys);
    relay.deliver = (signal) => this.remoteSignal(signal);
  }

  /** Offers waiting for their answer (or their 120 s): local ones and those across nodes. */
  get pendingOffers(): number {
    return this.offers.held + (this.#across?.pending ?? 0);
  }

  #offersEvicted(): number {
    return this.offers.evicted + (this.#across?.evicted ?? 0);
  }

  /** Handles one complete text message from `connection`: its UTF-8 bytes, valid while called. */
  message(connection: WsConnection, message: Uint8Array): void {
    const request = this.#request;
    const failure = parseWtMessage(message, request);
    if (failure !== null) {
      this.#counters.received[IN_INVALID]++;
      this.#refuse(connection, REFUSED_MALFORMED, failure);
    } else {
      switch (request.kind) {
        case WT_ANNOUNCE:
          this.#counters.received[IN_ANNOUNCE]++;
          this.#announce(connection, request);
          break;
        case WT_ANSWER:
          this.#counters.received[IN_ANSWER]++;
          this.#answer(connection, request);
          break;
        case WT_SCRAPE:
          this.#counters.received[IN_SCRAPE]++;
          this.#scrape(connection, request);
          break;
      }
    }
    // The message is a view of a read buffer that goes back to its pool now.
    request.message = NO_MESSAGE;
  }

  /** Takes the peers of a closing connection out of the store (and the cluster) at once. */
  connectionClosed(connection: WsConnection): void {
    const peers = this.peers;
    const store = this.#tracker.store;
    const now = this.#tracker.clock.now;
    for (let e = peers.firstOf(connection.slot); e >= 0; e = peers.firstOf(connection.slot)) {
      this.#writeKey(e);
      store.announce(
        peers.hashes,
        e * ID_BYTES,
        FAMILY_WS,
        this.#key,
        0,
        peers.generationOf(e),
        EVENT_STOPPED,
        false,
        0,
        now,
        this.#sample,
        0,
      );
      this.#record(EVENT_STOPPED, e, false, now);
      peers.remove(e);
    }
  }

  #announce(connection: WsConnection, request: WtRequest): void {
    const tracker = this.#tracker;
    const counters = this.#counters;
    const hash = request.infoHash;
    if (!tracker.access.allows(hash, 0)) {
      this.#refuse(connection, REFUSED_ACCESS, ACCESS_DENIED_REASON);
      return;
    }
    if (
      tracker.rateLimit.enabled &&
      !tracker.rateLimit.allow(connection.family, this.#slots.addresses, 16 * connection.slot)
    ) {
      this.#refuse(connection, REFUSED_RATE, RATE_LIMITED_REASON);
      return;
    }
    const peers = this.peers;
    let entry = peers.find(hash, 0, request.peerId, 0);
    if (entry >= 0 && peers.connectionOf(entry) !== connection.slot) {
      this.#refuse(connection, REFUSED_OWNED, OWNED_REASON);
      return;
    }
    const store = tracker.store;
    const now = tracker.clock.now;
    const stopping = request.event === EVENT_STOPPED;
    let added = false;
    if (entry < 0 && !stopping) {
      if (peers.countOf(connection.slot) >= MAX_PEERS_PER_CONNECTION) {
        this.#refuse(connection, REFUSED_TOO_MANY, TOO_MANY_REASON);
        return;
      }
      entry = peers.add(hash, 0, request.peerId, 0, connection.slot);
      added = true;
    }
    const seeder = request.left === 0;
    let sampled = 0;
    if (entry < 0) {
      // A stop from a peer this node does not hold: nothing to apply, the counts to answer.
      store.scrape(hash, 0);
    } else {
      this.#writeKey(entry);
      const generation = peers.generationOf(entry);
      const offers = stopping ? 0 : Math.min(request.offerCount, MAX_OFFERS_FORWARDED);
      sampled = store.announce(
        hash,
        0,
        FAMILY_WS,
        this.#key,
        0,
        generation,
        request.event,
        seeder,
        offers,
        now,
        this.#sample,
        0,
      );
      if (sampled < 0) {
        if (added) peers.remove(entry);
        this.#refuse(connection, REFUSED_FULL, refusedReason(store.result.refused));
        return;
      }
      this.#record(request.event, entry, seeder, now);
      if (stopping) peers.remove(entry);
    }
    const result = store.result;
    const at = connection.beginFrame(
      WT_ANNOUNCE_REPLY_MAX,
      this.#buffers,
      this.settings.maxQueuedBytes,
    );
    if (at >= 0) {
      connection.endFrame(
        at,
        writeWtAnnounceReply(
          connection.out!,
          at,
          hash,
          result.complete,
          result.incomplete,
          this.#interval(),
        ),
      );
      counters.sent[OUT_ANNOUNCE]++;
    }
    this.#queued(connection);
    tracker.counters.add(PROTOCOL_WS, ACTION_ANNOUNCE, RESULT_OK);
    tracker.clients?.count(request.peerId, 0);
    if (sampled > 0) this.#forwardOffers(request, entry, sampled, now);
  }

  /** Sends offer i to the i-th sampled peer, and remembers it for the answer. */
  #forwardOffers(request: WtRequest, entry: number, sampled: number, now: number): void {
    const peers = this.peers;
    const sample = this.#sample;
    const generation = peers.generationOf(entry);
    const cap = this.settings.maxQueuedBytes;
    for (let i = 0; i < sampled; i++) {
      const at = i * 6;
      const target = readWord(sample, at);
      const targetGeneration = (sample[at + 4] << 8) | sample[at + 5];
      if ((target & WS_REMOTE_BIT) !== 0) {
        // Another node's peer: its key and its node's tag; that node forwards it.
        this.#across?.offer(request, i, target, targetGeneration, entry, generation, now);
        continue;
      }
      // The store may hold a peer whose entry is gone (expired in the store after a stop
      // raced it, or a slot reused): the generation tells.
      if (!peers.isLive(target, targetGeneration)) continue;
      const receiver = this.#slots.get(peers.connectionOf(target));
      if (receiver === undefined) continue;
      const sdpStart = request.offerSdpStarts[i];
      const sdpEnd = request.offerSdpEnds[i];
      const payload = receiver.beginFrame(wtSignalMaxLength(sdpEnd - sdpStart), this.#buffers, cap);
      if (payload < 0) {
        this.#queued(receiver); // over its cap: the server closes it this turn
        continue;
      }
      receiver.endFrame(
        payload,
        writeWtOffer(
          receiver.out!,
          payload,
          request.infoHash,
          request.peerId,
          request.offerIds,
          i * ID_BYTES,
          request.message,
          sdpStart,
          sdpEnd,
        ),
      );
      this.offers.add(
        request.offerIds,
        i * ID_BYTES,
        target,
        targetGeneration,
        entry,
        generation,
        now,
      );
      this.#counters.sent[OUT_OFFER]++;
      this.#counters.offersForwarded++;
      this.#queued(receiver);
    }
    this.#counters.offersEvicted = this.#offersEvicted();
  }

  #answer(connection: WsConnection, request: WtRequest): void {
    const peers = this.peers;
    const entry = peers.find(request.infoHash, 0, request.peerId, 0);
    if (entry >= 0 && peers.connectionOf(entry) !== connection.slot) {
      this.#refuse(connection, REFUSED_OWNED, OWNED_REASON);
      return;
    }
    const now = this.#tracker.clock.now;
    const offers = this.offers;
    const pending = entry < 0
      ? -1
      : offers.find(request.offerId, 0, entry, peers.generationOf(entry), now);
    if (pending < 0 && entry >= 0 && this.#across?.answer(request, entry, now)) return;
    const offerer = offers.offerer;
    if (
      pending < 0 || !peers.isLive(offerer, offers.offererGeneration) ||
      !sameId(peers.peerIds, offerer * ID_BYTES, request.toPeerId)
    ) {
      this.#refuse(connection, REFUSED_NO_OFFER, NO_OFFER_REASON);
      return;
    }
    offers.remove(pending);
    const receiver = this.#slots.get(peers.connectionOf(offerer));
    if (receiver === undefined) return;
    const at = receiver.beginFrame(
      wtSignalMaxLength(request.answerSdpEnd - request.answerSdpStart),
      this.#buffers,
      this.settings.maxQueuedBytes,
    );
    if (at >= 0) {
      receiver.endFrame(
        at,
        writeWtAnswer(
          receiver.out!,
          at,
          request.infoHash,
          request.peerId,
          request.offerId,
          request.message,
          request.answerSdpStart,
          request.answerSdpEnd,
        ),
      );
      this.#counters.sent[OUT_ANSWER]++;
      this.#counters.answersRelayed++;
    }
    this.#queued(receiver);
  }

  /**
   * A signal another node sent this node (wtRelay.ts checked its MAC, age and tag): an offer for
   * one of our peers, forwarded to its socket; or an answer to an offer we sent, relayed to the
   * offering client. Anything that matches no live peer or pending offer is refused and counted
   * (wtAcrossNodes.ts), never forwarded.
   */
  remoteSignal(signal: WtSignal): void {
    const across = this.#across;
    if (across === null) return;
    const entry = across.receive(signal, this.#tracker.clock.now);
    if (entry < 0) return;
    const receiver = this.#slots.get(this.peers.connectionOf(entry));
    if (receiver === undefined) return;
    const { infoHash, peerId, offerId, sdp, sdpStart, sdpEnd } = signal;
    const at = receiver.beginFrame(
      wtSignalMaxLength(sdpEnd - sdpStart),
      this.#buffers,
      this.settings.maxQueuedBytes,
    );
    const counters = this.#counters;
    if (at >= 0) {
      const out = receiver.out!;
      if (signal.kind === SIGNAL_OFFER) {
        receiver.endFrame(
          at,
          writeWtOffer(out, at, infoHash, peerId, offerId, 0, sdp, sdpStart, sdpEnd),
        );
        counters.sent[OUT_OFFER]++;
        counters.offersForwarded++;
        counters.offersEvicted = this.#offersEvicted();
      } else {
        receiver.endFrame(
          at,
          writeWtAnswer(out, at, infoHash, peerId, offerId, sdp, sdpStart, sdpEnd),
        );
        counters.sent[OUT_ANSWER]++;
        counters.answersRelayed++;
      }
    }
    this.#queued(receiver);
  }

  #scrape(connection: WsConnection, request: WtRequest): void {
    const tracker = this.#tracker;
    const store = tracker.store;
    const result = store.result;
    const counts = this.#scrapeCounts;
    const hashes = request.scrapeHashes;
    const n = request.scrapeCount;
    for (let i = 0; i < n; i++) {
      // A forbidden torrent answers like an unknown one: listed with zeros, as over HTTP.
      if (!tracker.access.allows(hashes, i * ID_BYTES)) {
        counts.fill(0, i * 3, i * 3 + 3);
        continue;
      }
      store.scrape(hashes, i * ID_BYTES);
      counts[i * 3] = result.complete;
      counts[i * 3 + 1] = result.downloaded;
      counts[i * 3 + 2] = result.incomplete;
    }
    const at = connection.beginFrame(
      wtScrapeReplyMaxLength(n),
      this.#buffers,
      this.settings.maxQueuedBytes,
    );
    if (at >= 0) {
      connection.endFrame(
        at,
        writeWtScrapeReply(
          connection.out!,
          at,
          hashes,
          n,
          counts,
          Math.max(1, Math.floor(this.settings.interval / 2)),
        ),
      );
      this.#counters.sent[OUT_SCRAPE]++;
    }
    this.#queued(connection);
    tracker.counters.add(PROTOCOL_WS, ACTION_SCRAPE, RESULT_OK);
  }

  /** Answers with a failure reason (and the message's action and info_hash), counted. */
  #refuse(connection: WsConnection, why: number, reason: string): void {
    const request = this.#request;
    this.#counters.refused[why]++;
    this.#tracker.counters.add(
      PROTOCOL_WS,
      request.action === "scrape" ? ACTION_SCRAPE : ACTION_ANNOUNCE,
      RESULT_ERROR,
    );
    const at = connection.beginFrame(
      wtErrorMaxLength(reason.length),
      this.#buffers,
      this.settings.maxQueuedBytes,
    );
    if (at < 0) return;
    connection.endFrame(
      at,
      writeWtError(
        connection.out!,
        at,
        request.action,
        request.hasInfoHash ? request.infoHash : null,
        reason,
      ),
    );
    this.#counters.sent[OUT_ERROR]++;
    this.#queued(connection);
  }

  /** The interval for one reply: ±10% jitter, as over HTTP. */
  #interval(): number {
    return Math.round(this.settings.interval * (0.9 + 0.2 * Math.random()));
  }

  #writeKey(entry: number): void {
    const key = this.#key;
    key[0] = entry >>> 24;
    key[1] = entry >>> 16;
    key[2] = entry >>> 8;
    key[3] = entry;
  }

  /**
   * Hands an announce of entry `e` that the store accepted to the cluster, which publishes it if
   * it changes something (publishRule.ts), under the key other nodes hold the peer by.
   */
  #record(event: number, e: number, seeder: boolean, now: number): void {
    const changes = this.#tracker.changes;
    if (changes === null) return;
    const keys = this.keys;
    writeWord(this.#remote, 0, keys.published(e));
    changes.announced(
      event,
      this.peers.hashes,
      e * ID_BYTES,
      FAMILY_WS,
      this.#remote,
      0,
      keys.tag,
      seeder,
      this.#tracker.store.result.previous,
      now,
    );
  }
}

function sameId(bytes: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let i = 0; i < ID_BYTES; i++) if (bytes[at + i] !== id[i]) return false;
  return true;
}
