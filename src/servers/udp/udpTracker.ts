/**
 * BEP 15 request handling: one datagram in, at most one reply out, written into a reused buffer.
 * Both UDP socket loops (the FFI fast path and the portable Deno.listenDatagram loop) call
 * `handle`; it does no I/O and nothing a packet holds can make it throw.
 *
 * With `--rate-limit`, a datagram over its source's limit is dropped silently before anything
 * else (src/policy/rateLimit.ts).
 *
 * Policy for bad datagrams (docs/protocols.md, "UDP (BEP 15)"):
 * - shorter than 16 bytes, a connect without the protocol magic, or an error packet (action 3)
 *   from a client: dropped silently;
 * - announce or scrape with a connection id we did not issue to this address (from any of its
 *   ports: src/protocol/connectionId.ts), or one that has expired: BEP 15 error
 *   "invalid connection id";
 * - a short announce, a bad scrape length, an unknown action, an out-of-range event, port 0:
 *   a BEP 15 error saying what is wrong; so is a new torrent or peer past the store's caps
 *   ("tracker is full: …").
 * No reply is ever longer than the request unless the sender proved its address with a valid
 * connection id, so otter cannot amplify spoofed traffic.
 */
import { EVENT_STOPPED } from "../../protocol/events.ts";
import { ConnectionIds } from "../../protocol/connectionId.ts";
import {
  ACTION_ERROR,
  ANNOUNCE_INFO_HASH_OFFSET,
  ANNOUNCE_PEER_ID_OFFSET,
  ANNOUNCE_REPLY_HEADER_LENGTH,
  AnnounceFields,
  classifyPacket,
  ERROR_CONNECTION_ID,
  ERROR_UNKNOWN_ACTION,
  PACKET_DROP,
  readAnnounceFields,
  readTransactionId,
  SCRAPE_HASHES_OFFSET,
  scrapeHashCount,
  writeAnnounceReplyHeader,
  writeConnectReply,
  writeError,
  writeScrapeEntry,
  writeScrapeReplyHeader,
} from "../../protocol/udpPacket.ts";
import {
  ACTION_ANNOUNCE,
  ACTION_CONNECT,
  ACTION_OTHER,
  ACTION_SCRAPE,
  PROTOCOL_UDP,
  REFUSAL_ACCESS_DENIED,
  REFUSAL_BAD_REQUEST,
  REFUSAL_CONNECTION_ID,
  RESULT_DROPPED,
  RESULT_ERROR,
  RESULT_OK,
} from "../../observe/requestCounters.ts";
import { ACCESS_DENIED_REASON } from "../../policy/accessList.ts";
import { refusedReason } from "../../store/swarmTable.ts";
import type { Tracker } from "../tracker.ts";

const ANNOUNCE_REPLY_HEADER = ANNOUNCE_REPLY_HEADER_LENGTH;

export class UdpTracker {
  readonly #tracker: Tracker;
  readonly #ids: ConnectionIds;
  readonly #announce = new AnnounceFields();
  readonly #replyCapacity: number;

  constructor(tracker: Tracker, connectionIds: ConnectionIds, replyCapacity = 4096) {
    this.#tracker = tracker;
    this.#ids = connectionIds;
    this.#replyCapacity = replyCapacity;
  }

  /** Handles one datagram; returns the reply length in `out`, or 0 to send nothing. The sender's
   *  port is not used: connection ids are bound to the address alone. */
  handle(
    packet: Uint8Array,
    length: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    _port: number,
    out: Uint8Array,
  ): number {
    const limiter = this.#tracker.rateLimit;
    // Before any work, and silently: a reply would let a spoofed flood still cost the victim.
    if (limiter.enabled && !limiter.allow(family, address, addressOffset)) return 0;
    const counters = this.#tracker.counters;
    const action = classifyPacket(packet, length);
    // As an int32: only its bytes matter, and an int32 argument is never boxed.
    const transactionId = readTransactionId(packet) | 0;
    const now = this.#tracker.clock.now;
    if (action === ACTION_CONNECT) {
      this.#ids.issue(now, family, address, addressOffset, out, 8);
      counters.add(PROTOCOL_UDP, ACTION_CONNECT, RESULT_OK);
      return writeConnectReply(out, transactionId, out, 8);
    }
    if (action === PACKET_DROP) {
      counters.add(PROTOCOL_UDP, ACTION_OTHER, RESULT_DROPPED);
      return 0;
    }
    if (action === ACTION_ERROR) {
      counters.refused(PROTOCOL_UDP, ACTION_OTHER, REFUSAL_BAD_REQUEST);
      return writeError(out, transactionId, ERROR_UNKNOWN_ACTION, length);
    }
    const counterAction = action === 1 ? ACTION_ANNOUNCE : ACTION_SCRAPE;
    if (!this.#ids.check(now, family, address, addressOffset, packet, 0)) {
      counters.refused(PROTOCOL_UDP, counterAction, REFUSAL_CONNECTION_ID);
      return writeError(out, transactionId, ERROR_CONNECTION_ID, length);
    }
    // From here the sender has proved it receives at its address: replies may be larger.
    if (action === 1) {
      return this.#handleAnnounce(packet, length, family, address, addressOffset, out);
    }
    return this.#handleScrape(packet, length, transactionId, family, out);
  }

  #handleAnnounce(
    packet: Uint8Array,
    length: number,
    family: 4 | 6,
    address: Uint8Array,
    addressOffset: number,
    out: Uint8Array,
  ): number {
    const tracker = this.#tracker;
    const request = this.#announce;
    const problem = readAnnounceFields(packet, length, request);
    if (problem !== null) {
      tracker.counters.refused(PROTOCOL_UDP, ACTION_ANNOUNCE, REFUSAL_BAD_REQUEST);
      return writeError(out, request.transactionId, problem, this.#replyCapacity);
    }
    if (!tracker.access.allows(packet, ANNOUNCE_INFO_HASH_OFFSET)) {
      tracker.counters.refused(PROTOCOL_UDP, ACTION_ANNOUNCE, REFUSAL_ACCESS_DENIED);
      return writeError(out, request.transactionId, ACCESS_DENIED_REASON, this.#replyCapacity);
    }
    const entry = family === 4 ? 6 : 18;
    const capacity = Math.floor((this.#replyCapacity - ANNOUNCE_REPLY_HEADER) / entry);
    const numwant = request.event === EVENT_STOPPED
      ? 0
      : tracker.numwant(request.numwant, capacity);
    const store = tracker.store;
    const peers = store.announce(
      packet,
      ANNOUNCE_INFO_HASH_OFFSET,
      family,
      address,
      addressOffset,
      request.port,
      request.event,
      request.leftIsZero,
      numwant,
      tracker.clock.now,
      out,
      ANNOUNCE_REPLY_HEADER,
    );
    const result = store.result;
    if (peers < 0) {
      // At --max-torrents/--max-peers with --when-full refuse: nothing was stored.
      tracker.counters.add(PROTOCOL_UDP, ACTION_ANNOUNCE, RESULT_ERROR);
      return writeError(
        out,
        request.transactionId,
        refusedReason(result.refused),
        this.#replyCapacity,
      );
    }
    tracker.changes?.announced(
      request.event,
      packet,
      ANNOUNCE_INFO_HASH_OFFSET,
      family,
      address,
      addressOffset,
      request.port,
      request.leftIsZero,
      result.previous,
      tracker.clock.now,
    );
    let shown = peers;
    const generated = tracker.generatedPeersFor(
      packet,
      ANNOUNCE_INFO_HASH_OFFSET,
      result.complete + result.incomplete,
    );
    if (generated > 0) {
      shown = tracker.deniability!.mixIn(
        family,
        out,
        ANNOUNCE_REPLY_HEADER,
        peers,
        numwant,
        generated,
      );
    }
    writeAnnounceReplyHeader(
      out,
      request.transactionId,
      tracker.jitteredInterval(),
      result.incomplete + generated,
      result.complete,
    );
    tracker.counters.answered(PROTOCOL_UDP, ACTION_ANNOUNCE, family);
    tracker.clients?.count(packet, ANNOUNCE_PEER_ID_OFFSET);
    return ANNOUNCE_REPLY_HEADER + shown * entry;
  }

  #handleScrape(
    packet: Uint8Array,
    length: number,
    transactionId: number,
    family: 4 | 6,
    out: Uint8Array,
  ): number {
    const tracker = this.#tracker;
    const hashes = scrapeHashCount(length);
    if (typeof hashes === "string") {
      tracker.counters.refused(PROTOCOL_UDP, ACTION_SCRAPE, REFUSAL_BAD_REQUEST);
      return writeError(out, transactionId, hashes, this.#replyCapacity);
    }
    const store = tracker.store;
    const result = store.result;
    const access = tracker.access;
    let offset = writeScrapeReplyHeader(out, transactionId);
    for (let i = 0; i < hashes; i++) {
      const hashOffset = SCRAPE_HASHES_OFFSET + i * 20;
      // BEP 15 answers by position: a forbidden torrent gets zeros, like an unknown one.
      if (!access.allows(packet, hashOffset)) {
        offset = writeScrapeEntry(out, offset, 0, 0, 0);
        continue;
      }
      store.scrape(packet, hashOffset);
      const generated = tracker.generatedPeersFor(
        packet,
        hashOffset,
        result.complete + result.incomplete,
      );
      offset = writeScrapeEntry(
        out,
        offset,
        result.complete,
        result.downloaded,
        result.incomplete + generated,
      );
    }
    tracker.counters.answered(PROTOCOL_UDP, ACTION_SCRAPE, family);
    return offset;
  }
}
