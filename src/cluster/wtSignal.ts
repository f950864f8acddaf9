/**
 * A WebTorrent signal between cluster nodes, as the WebSocket tracker and the relay hand it to
 * each other: a WebRTC offer for a WebSocket peer whose socket is on another node, or the answer
 * coming back to the offerer's node (docs/cluster.md → WebTorrent across nodes). Its wire form,
 * MAC and checks are wtSignalFormat.ts's; the Redis side is wtRelay.ts's. This file is what the
 * tracker imports, so it imports nothing (no Redis client, no node:crypto without --cluster).
 */

export const SIGNAL_OFFER = 1;
export const SIGNAL_ANSWER = 2;

const ID = 20;
const NO_SDP = new Uint8Array(0);

/** One signal, as sent or as read (the arrays are reused). */
export class WtSignal {
  kind = 0;
  /** The node it is for, and the node that sent it (wsPeerKeys.ts: the port of its keys). */
  toTag = 0;
  fromTag = 0;
  /** Milliseconds since the epoch on Redis's clock when it was sent. */
  sentAtMs = 0;
  readonly infoHash = new Uint8Array(ID);
  /** An offer's target peer, an answer's offerer, as their node publishes them. */
  toKey = 0;
  /** An offer's offerer, an answer's answerer, as the sending node publishes them. */
  fromKey = 0;
  readonly offerId = new Uint8Array(ID);
  /** The offerer's peer_id (offer), the answerer's (answer). */
  readonly peerId = new Uint8Array(ID);
  /** An answer's `to_peer_id` (the offerer's peer_id, as the answerer named it). */
  readonly toPeerId = new Uint8Array(ID);
  /**
   * The SDP as its sender's client wrote it: a JSON string token (quotes and escapes included) at
   * sdp[sdpStart, sdpEnd), a view of the message it came in, valid while the signal is handled.
   */
  sdp: Uint8Array = NO_SDP;
  sdpStart = 0;
  sdpEnd = 0;
}

/**
 * What the WebSocket tracker hands signals for other nodes to (wtRelay.ts, with --cluster), and
 * what hands it the signals for this node.
 */
export interface SignalRelay {
  /** This node's tag (the port of its keys). */
  readonly tag: number;
  /**
   * Sends a signal (its to tag, keys, ids and SDP filled in; the relay sets the rest) to its node.
   * Returns false when it was dropped: not connected, over the rate, too many in flight.
   */
  send(signal: WtSignal): boolean;
  /** Told of each sound signal for this node, in time; the tracker checks it against its peers. */
  deliver: (signal: WtSignal) => void;
  /** Counts a delivered signal the tracker refused (clusterCounters.ts SignalRejects). */
  refused(reason: "not_ours" | "no_offer" | "replayed"): void;
}
