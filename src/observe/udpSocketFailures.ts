/**
 * What the UDP socket loops (src/servers: the fast path, its I/O workers, the portable path) count
 * below the tracker: datagrams they could not hand to it or answer. The tracker's request counters
 * never see these, so /metrics and /stats read them here, one entry per UDP listener.
 */

/** Running totals of one listener's socket loop. */
export interface UdpSocketFailures {
  /** Datagrams longer than the 2048-byte receive slot, ignored. */
  truncated: number;
  /** Handler calls that threw or returned a bad reply length (bugs); nothing was sent for them. */
  handlerErrors: number;
  /** Receive calls that failed (not "nothing queued", not EINTR). */
  receiveErrors: number;
  /** Replies not sent: send buffer full or a send error. */
  sendDropped: number;
}

/** One UDP listener's socket (every UDP path implements it); startTracker registers each one for
 *  /metrics and /stats. */
export interface UdpListenerFailures {
  /** "udp://127.0.0.1:6969", as in the "UDP listening on" line. */
  readonly listener: string;
  /** The UDP I/O path: "fast" or "portable". */
  readonly io: string;
  /** The totals now (read per scrape, not per packet). */
  failures(): UdpSocketFailures;
  /** The last handler error's text, or null if there was none. */
  lastHandlerErrorText(): string | null;
}

/** An error as one short text for /stats: its message, not its stack. */
export function errorText(error: unknown): string | null {
  if (error === undefined) return null;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
