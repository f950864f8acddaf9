/**
 * The certificate `--https` serves, read from its two PEM files (`--tls-cert`, `--tls-key`) at
 * start and on every SIGHUP. What can be told from the files alone is checked here, so that a
 * mistake is one line naming the file at fault: unreadable, no certificate in it, no private key
 * in it, a key encrypted with a passphrase. Whether the key belongs to the certificate is for
 * `Deno.listenTls` to say (tlsListener.ts).
 *
 * The leaf certificate's serial number and notAfter are read from its DER for the log lines and
 * the expiry metric: a small walk over the first fields of the TBSCertificate (RFC 5280 4.1),
 * every length checked, that gives up (NaN, "") on anything it does not expect rather than fail a
 * certificate rustls would take.
 */
import { fileErrorText } from "../../fileErrors.ts";

export interface Certificate {
  /** The PEM certificate chain, leaf first, as `Deno.listenTls` takes it. */
  cert: string;
  /** The PEM private key. */
  key: string;
  certPath: string;
  keyPath: string;
  /** The leaf's serial number in upper-case hex, or "" when it could not be read. */
  serial: string;
  /** The leaf's notAfter in ms since the Unix epoch, or NaN when it could not be read. */
  notAfterMs: number;
}

export type ReadText = (path: string) => string;

const readTextSync: ReadText = (path) => Deno.readTextFileSync(path);

const CERT_BEGIN = "-----BEGIN CERTIFICATE-----";
const CERT_END = "-----END CERTIFICATE-----";
/** PKCS#8, PKCS#1 (RSA) and SEC1 (EC): the key formats Deno's TLS takes. */
const KEY_BEGIN = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/;

/**
 * Reads and checks the pair; an error is one line starting with the flag and file at fault
 * (`--tls-key /etc/otter/key.pem: permission denied`).
 */
export function readCertificate(
  certPath: string,
  keyPath: string,
  readText: ReadText = readTextSync,
): Certificate | { error: string } {
  let cert: string;
  try {
    cert = readText(certPath);
  } catch (e) {
    return { error: `--tls-cert ${certPath}: ${fileErrorText(e)}` };
  }
  const begin = cert.indexOf(CERT_BEGIN);
  if (begin < 0) {
    return {
      error: `--tls-cert ${certPath}: no PEM certificate in it (a "${CERT_BEGIN}" block)` +
        (KEY_BEGIN.test(cert) ? "; it holds a private key: is it the --tls-key file?" : ""),
    };
  }
  let key: string;
  try {
    key = readText(keyPath);
  } catch (e) {
    return { error: `--tls-key ${keyPath}: ${fileErrorText(e)}` };
  }
  if (key.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    return {
      error: `--tls-key ${keyPath}: the key is encrypted; otter needs it without a passphrase`,
    };
  }
  if (!KEY_BEGIN.test(key)) {
    return {
      error:
        `--tls-key ${keyPath}: no PEM private key in it (a "-----BEGIN PRIVATE KEY-----" block)` +
        (key.includes(CERT_BEGIN) ? "; it holds a certificate: is it the --tls-cert file?" : ""),
    };
  }
  const der = pemBlock(cert, begin);
  const facts = der === null ? null : leafFacts(der);
  return {
    cert,
    key,
    certPath,
    keyPath,
    serial: facts?.serial ?? "",
    notAfterMs: facts?.notAfterMs ?? NaN,
  };
}

/** "serial 1A2B…, valid until 2027-03-01T12:00:00Z" (or what of it could be read). */
export function describeCertificate(certificate: Certificate, nowMs: number): string {
  const parts: string[] = [];
  if (certificate.serial !== "") parts.push(`serial ${certificate.serial}`);
  if (!Number.isNaN(certificate.notAfterMs)) {
    const until = new Date(certificate.notAfterMs).toISOString().replace(/\.000Z$/, "Z");
    parts.push(certificate.notAfterMs < nowMs ? `EXPIRED on ${until}` : `valid until ${until}`);
  }
  return parts.join(", ");
}

/** The bytes of the PEM block whose BEGIN line is at `begin`, or null. */
function pemBlock(text: string, begin: number): Uint8Array | null {
  const end = text.indexOf(CERT_END, begin);
  if (end < 0) return null;
  const base64 = text.slice(begin + CERT_BEGIN.length, end).replace(/\s+/g, "");
  try {
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}

/** A DER element: its tag and where its contents are. */
interface Element {
  tag: number;
  start: number;
  end: number;
}

/** The element at `at`, within `limit`; null when its header or length does not fit. */
function element(der: Uint8Array, at: number, limit: number): Element | null {
  if (at + 2 > limit) return null;
  const tag = der[at];
  let length = der[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    // Four length bytes are 4 GiB: more is no certificate.
    if (bytes === 0 || bytes > 4 || start + bytes > limit) return null;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i];
    start += bytes;
  }
  if (start + length > limit) return null;
  return { tag, start, end: start + length };
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const VERSION = 0xa0;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

/** The serial and notAfter of a DER certificate, or null where it is not shaped as expected. */
export function leafFacts(der: Uint8Array): { serial: string; notAfterMs: number } | null {
  const certificate = element(der, 0, der.length);
  if (certificate === null || certificate.tag !== SEQUENCE) return null;
  const tbs = element(der, certificate.start, certificate.end);
  if (tbs === null || tbs.tag !== SEQUENCE) return null;
  let field = element(der, tbs.start, tbs.end);
  if (field !== null && field.tag === VERSION) field = element(der, field.end, tbs.end);
  if (field === null || field.tag !== INTEGER) return null;
  let serial = "";
  for (let i = field.start; i < field.end; i++) {
    // A leading zero only keeps a high bit from reading as a sign.
    if (serial === "" && der[i] === 0 && i + 1 < field.end) continue;
    serial += der[i].toString(16).padStart(2, "0").toUpperCase();
  }
  const signature = element(der, field.end, tbs.end);
  const issuer = signature && element(der, signature.end, tbs.end);
  const validity = issuer && element(der, issuer.end, tbs.end);
  if (validity === null || validity.tag !== SEQUENCE) return null;
  const notBefore = element(der, validity.start, validity.end);
  const notAfter = notBefore && element(der, notBefore.end, validity.end);
  if (notAfter === null) return null;
  return { serial, notAfterMs: timeMs(der, notAfter) };
}

/** A UTCTime or GeneralizedTime in UTC ("…Z", whole seconds) as ms since the epoch, else NaN. */
function timeMs(der: Uint8Array, time: Element): number {
  let text = "";
  for (let i = time.start; i < time.end; i++) text += String.fromCharCode(der[i]);
  let match: RegExpExecArray | null;
  let year: number;
  if (time.tag === UTC_TIME && (match = /^(\d\d)(\d{10})Z$/.exec(text)) !== null) {
    // RFC 5280: YY of 50 and over is 19YY, under 50 is 20YY.
    year = Number(match[1]) + (Number(match[1]) >= 50 ? 1900 : 2000);
  } else if (time.tag === GENERALIZED_TIME && (match = /^(\d{4})(\d{10})Z$/.exec(text)) !== null) {
    year = Number(match[1]);
  } else {
    return NaN;
  }
  const rest = match[2];
  const two = (at: number) => Number(rest.slice(at, at + 2));
  return Date.UTC(year, two(0) - 1, two(2), two(4), two(6), two(8));
}
