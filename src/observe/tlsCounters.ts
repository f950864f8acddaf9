/**
 * What the `--https` listeners count: handshakes that failed, certificate reloads (SIGHUP) and
 * whether they took, and when the certificate served now expires, the figure to alert on when
 * renewals stop. One object per process, inside HttpServerCounters, read by /metrics and /stats.
 */
export class TlsCounters {
  /** `--https` listeners open; with none, /metrics and /stats leave TLS out. */
  listeners = 0;
  /** TLS connections whose handshake failed on a TLS error: not TLS at all (plain HTTP on the
   * port), a client refusing the certificate, nothing in common to speak. */
  handshakeFailures = 0;
  /** TLS connections otter closed before their handshake ended (--header-timeout, a cap, a
   * shutdown). Deno 2.9.6 keeps such a socket open until its client sends or leaves: a count that
   * climbs is clients holding sockets open without a handshake (docs/security.md). */
  handshakesAbandoned = 0;
  /** SIGHUPs that put a new certificate in service on every `--https` listener. */
  reloads = 0;
  /** SIGHUPs whose certificate was refused (unreadable, bad PEM, key not matching): the old one
   * stays in service. */
  reloadFailures = 0;
  /** The served certificate's notAfter, in seconds since the Unix epoch; 0 when unknown. */
  certificateNotAfter = 0;
}
