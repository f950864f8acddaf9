/**
 * An `--https` listener whose certificate can be replaced while it serves (SIGHUP, after a
 * renewal), for httpWire.ts, which takes it like a plain `Deno.listen` listener: TLS connections
 * then go through exactly the same code as plain ones (caps, deadlines, request heads, routes).
 *
 * `Deno.listenTls` fixes the certificate when it binds, and Deno 2.9.6 has no public way to change
 * it afterwards (its SNI resolver is an unstable internal symbol, and caches every name a client
 * sends, forever). So a new certificate is a new listener: bound to the same address with
 * SO_REUSEPORT while the old one still listens, which is also the check that Deno takes the
 * certificate and key, and only then is the old one closed. Connections already accepted are
 * their own resources and keep their TLS session; the port never stops listening. The one loss:
 * connections the kernel queued on the old socket and not yet accepted when it closes are reset
 * (unless `net.ipv4.tcp_migrate_req` is 1); the accept loop keeps that queue near empty.
 *
 * SO_REUSEPORT would also let a second otter started by mistake share the port silently, so
 * before the first bind the port is probed with a plain listener without it: taken is an error
 * here, as for `--http`. Deno sets SO_REUSEPORT on Linux only; elsewhere a reload fails (the old
 * certificate keeps serving) and a restart is needed.
 *
 * The handshake runs when the connection is first read, so the server's header timeout bounds
 * it, and the caps count a connection from its accept, handshake or not. Handshakes that fail on
 * a TLS error, and those otter cut short, are counted here, without waiting for them.
 *
 * A limit of Deno 2.9.6 that otter cannot work around: a TLS connection closed before its
 * handshake ended (at the header timeout, or refused at a cap) leaves otter's counts at once, but
 * Deno's TLS layer keeps its socket open until the client sends something or leaves, for the
 * handshake to finish first (rustls-tokio-stream's drop waits for it). A client that opens
 * connections and stays silent holds a socket (a file descriptor and ~20 KB) for each, whatever
 * the caps; docs/security.md says what bounds it.
 */
import type { TlsCounters } from "../../observe/tlsCounters.ts";
import type { Certificate } from "./tlsCertificates.ts";

/** HTTP/1.1 only: the server speaks nothing else, and a WebSocket over TLS is HTTP/1.1 too. */
const ALPN = ["http/1.1"];

export class ReloadableTlsListener {
  readonly addr: Deno.NetAddr;
  #current: Deno.TlsListener;
  /** The accept waiting on `#current`, if one is. */
  #pending: Promise<Deno.TlsConn> | null = null;
  #closed = false;
  readonly #counters: TlsCounters;

  /** Binds hostname:port with `certificate` (throws like `Deno.listenTls`, AddrInUse for a port
   * another socket holds). */
  static open(
    hostname: string,
    port: number,
    certificate: Certificate,
    counters: TlsCounters,
  ): ReloadableTlsListener {
    const probe = Deno.listen({ hostname, port, transport: "tcp" });
    const bound = (probe.addr as Deno.NetAddr).port;
    probe.close();
    return new ReloadableTlsListener(listenTls(hostname, bound, certificate), counters);
  }

  private constructor(listener: Deno.TlsListener, counters: TlsCounters) {
    this.#current = listener;
    this.addr = listener.addr;
    this.#counters = counters;
  }

  /**
   * Puts `certificate` in service for new connections. Throws, with the old one still serving,
   * when Deno refuses it (a key that is not the certificate's) or the new socket cannot bind.
   * Otherwise the swap is done when this returns, and the promise resolves once the old socket
   * is closed (Deno closes it when the accept waiting on it has settled, a turn later): from then
   * on every new connection reaches the new one.
   */
  replace(certificate: Certificate): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const next = listenTls(this.addr.hostname, this.addr.port, certificate);
    const old = this.#current;
    const pending = this.#pending;
    this.#current = next;
    // Its pending accept fails, and `accept` goes on with the new listener.
    old.close();
    return pending === null ? Promise.resolve() : pending.then(() => {}, () => {});
  }

  /** The next connection, from whichever listener is current; throws once closed. */
  async accept(): Promise<Deno.TlsConn> {
    for (;;) {
      const listener = this.#current;
      const pending = listener.accept();
      this.#pending = pending;
      let conn: Deno.TlsConn;
      try {
        conn = await pending;
      } catch (e) {
        if (this.#closed || listener === this.#current) throw e;
        continue; // replaced while waiting
      } finally {
        if (this.#pending === pending) this.#pending = null;
      }
      conn.handshake().catch((e) => {
        // Not TLS, a fatal alert, no common ground; or closed by otter first (Interrupted: the
        // header timeout, a cap, a shutdown). A client leaving (UnexpectedEof) is neither.
        if (e instanceof Deno.errors.InvalidData) this.#counters.handshakeFailures++;
        else if (e instanceof Deno.errors.Interrupted) this.#counters.handshakesAbandoned++;
      });
      return conn;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current.close();
  }
}

/** Deno refused the certificate or key; the message names the file(s) at fault, in one line. */
export class CertificateRefused extends Error {}

/** Errors of binding the socket, as opposed to Deno refusing the certificate. */
function isBindError(e: unknown): boolean {
  return e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.AddrNotAvailable ||
    e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable;
}

function listenTls(hostname: string, port: number, certificate: Certificate): Deno.TlsListener {
  try {
    return Deno.listenTls({
      hostname,
      port,
      transport: "tcp",
      cert: certificate.cert,
      key: certificate.key,
      alpnProtocols: ALPN,
      reusePort: true,
    });
  } catch (e) {
    if (isBindError(e)) throw e;
    throw new CertificateRefused(refusal(e, certificate));
  }
}

/** What Deno's refusal means, naming the file at fault. */
function refusal(e: unknown, { certPath, keyPath }: Certificate): string {
  const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
  if (message.includes("KeyMismatch")) {
    return `--tls-key ${keyPath} is not the key of the certificate in --tls-cert ${certPath}`;
  }
  if (message.includes("private key")) {
    return `--tls-key ${keyPath}: not a key Deno's TLS takes (RSA, ECDSA or Ed25519): ${message}`;
  }
  return `--tls-cert ${certPath}: not a certificate Deno's TLS takes: ${message}`;
}
