/**
 * Request heads from bytes: where a head ends, and its request line and the headers the tracker
 * needs (Connection, Content-Length, Transfer-Encoding, Expect, X-Forwarded-For, X-Real-IP,
 * Upgrade; any other by name through `requestHeader`, for the rare request that needs one)
 * parsed into a reused `RequestHead`, without decoding text. A bad head is a status (400, 414,
 * 431, 505), never an exception. Requests that are not announces or scrapes become a `Request`
 * (`requestFromHead`) for `HttpTracker.handle`.
 *
 * Rules: a head ends at a blank line (a bare LF ends a line like CRLF); the method and header
 * names are RFC 9110 tokens; the target has no control characters or blanks; only HTTP/1.x is
 * spoken; a folded header line, a CR inside a value, or two different Content-Lengths are 400.
 */
import { MAX_REQUEST_BYTES, type WireClient } from "./httpTracker.ts";
import { ascii } from "../../protocol/asciiBytes.ts";

export const CR = 13;
export const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const QUESTION = 63;
const SLASH = 47;

export const M_OTHER = 0;
export const M_GET = 1;
export const M_HEAD = 2;

export const ROUTE_OTHER = 0;
export const ROUTE_ANNOUNCE = 1;
export const ROUTE_SCRAPE = 2;

/** RFC 9110 token characters (methods, header names). */
const TCHAR = new Uint8Array(256);
for (let code = 48; code <= 57; code++) TCHAR[code] = 1;
for (let code = 65; code <= 90; code++) TCHAR[code] = TCHAR[code + 32] = 1;
for (const char of "!#$%&'*+-.^_`|~") TCHAR[char.charCodeAt(0)] = 1;

const PATH_ANNOUNCE = ascii("/announce");
const PATH_SCRAPE = ascii("/scrape");

const utf8 = new TextDecoder();
const HOST = /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** True if bytes[start, end) equals `name` ASCII-case-insensitively (`name` in lower case). */
function nameIsCaseless(bytes: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  // |0x20 lower-cases letters; no other token character maps onto a letter or '-'.
  for (let i = 0; i < name.length; i++) {
    if ((bytes[start + i] | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

function bytesAre(bytes: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[start + i] !== expected[i]) return false;
  return true;
}

/**
 * One parsed request head, reused for every request of a server. It is also the `WireClient`
 * handed to `answerWire`, so the forwarding headers are decoded only if asked for.
 */
export class RequestHead implements WireClient {
  input: Uint8Array = new Uint8Array(0);
  start = 0;
  end = 0;
  method = M_OTHER;
  methodEnd = 0;
  targetStart = 0;
  targetEnd = 0;
  pathStart = 0;
  pathEnd = 0;
  /** Just past '?', or -1. */
  queryStart = -1;
  http10 = false;
  keepAlive = true;
  /** -1 when absent. */
  contentLength = -1;
  transferEncoding = false;
  /** An Expect header: the client may hold its body back until told to go on, which we never do. */
  expect = false;
  /** An Upgrade header naming websocket (webSocketUpgrade.ts checks the rest). */
  upgradeWebSocket = false;
  /** The first X-Forwarded-For line's value, and how many lines came. */
  xffStart = -1;
  xffEnd = -1;
  xffLines = 0;
  realIpStart = -1;
  realIpEnd = -1;
  realIpLines = 0;
  family: 4 | 6 = 4;
  address: Uint8Array = new Uint8Array(16);

  get(name: string): string | null {
    if (name === "x-forwarded-for") {
      if (this.xffLines === 1) return utf8.decode(this.input.subarray(this.xffStart, this.xffEnd));
      return this.xffLines === 0 ? null : joinedValues(this.input, this.start, this.end, name);
    }
    if (name === "x-real-ip") {
      if (this.realIpLines === 1) {
        return utf8.decode(this.input.subarray(this.realIpStart, this.realIpEnd));
      }
      return this.realIpLines === 0 ? null : joinedValues(this.input, this.start, this.end, name);
    }
    return null;
  }

  route(): number {
    if (this.method === M_OTHER) return ROUTE_OTHER;
    const bytes = this.input;
    if (bytesAre(bytes, this.pathStart, this.pathEnd, PATH_ANNOUNCE)) return ROUTE_ANNOUNCE;
    if (bytesAre(bytes, this.pathStart, this.pathEnd, PATH_SCRAPE)) return ROUTE_SCRAPE;
    return ROUTE_OTHER;
  }

  query(): string {
    return this.queryStart < 0
      ? ""
      : utf8.decode(this.input.subarray(this.queryStart, this.targetEnd));
  }
}

/** A header value with blanks and a CR trimmed off its ends: its [start, end) in bytes. */
function trimmedValue(bytes: Uint8Array, start: number, end: number): [number, number] {
  while (start < end && (bytes[start] === SP || bytes[start] === HT)) start++;
  while (end > start && (bytes[end - 1] === CR || bytes[end - 1] === SP || bytes[end - 1] === HT)) {
    end--;
  }
  return [start, end];
}

/**
 * Every value of the header `name` (lower case) in the parsed head bytes[start, end), joined with
 * ", " in order: one list, as `Headers.get` gives a repeated field.
 */
function joinedValues(bytes: Uint8Array, start: number, end: number, name: string): string {
  const values: string[] = [];
  let at = start;
  while (bytes[at] !== LF) at++; // the request line
  at++;
  while (at < end && bytes[at] !== CR && bytes[at] !== LF) {
    let colon = at;
    while (bytes[colon] !== COLON) colon++;
    let lineEnd = colon;
    while (bytes[lineEnd] !== LF) lineEnd++;
    if (nameIsCaseless(bytes, at, colon, name)) {
      const [valueStart, valueEnd] = trimmedValue(bytes, colon + 1, lineEnd);
      values.push(utf8.decode(bytes.subarray(valueStart, valueEnd)));
    }
    at = lineEnd + 1;
  }
  return values.join(", ");
}

/**
 * Index just past the blank line that ends a head in bytes[from, end), or -1. `from` may point into
 * the head (scanning resumes where the last attempt stopped); a bare LF ends a line like CRLF.
 */
export function findHeadEnd(bytes: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (bytes[i] !== LF) continue;
    if (i + 1 < end && bytes[i + 1] === LF) return i + 2;
    if (i + 2 < end && bytes[i + 1] === CR && bytes[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Status for a buffered start of a head that reached the cap without ending: 414 or 431. */
export function oversizeStatus(bytes: Uint8Array, start: number): number {
  const limit = start + MAX_REQUEST_BYTES;
  for (let i = start; i < limit; i++) if (bytes[i] === LF) return 431;
  return 414;
}

/** Parses the head bytes[start, end) (ending with its blank line) into `head`: 0 or a status. */
export function parseHead(
  bytes: Uint8Array,
  start: number,
  end: number,
  head: RequestHead,
): number {
  head.input = bytes;
  head.start = start;
  head.end = end;
  let at = start;
  while (at < end && TCHAR[bytes[at]] === 1) at++;
  if (at === start || bytes[at] !== SP) return 400;
  head.methodEnd = at;
  const length = at - start;
  head.method =
    length === 3 && bytes[start] === 71 && bytes[start + 1] === 69 && bytes[start + 2] === 84
      ? M_GET
      : length === 4 && bytes[start] === 72 && bytes[start + 1] === 69 && bytes[start + 2] === 65 &&
          bytes[start + 3] === 68
      ? M_HEAD
      : M_OTHER;
  const target = ++at;
  let question = -1;
  while (at < end) {
    const code = bytes[at];
    if (code === SP) break;
    if (code < 0x21 || code === 0x7f) return 400;
    if (code === QUESTION && question < 0) question = at;
    at++;
  }
  if (at === target || bytes[at] !== SP) return 400;
  head.targetStart = target;
  head.targetEnd = at;
  head.queryStart = question < 0 ? -1 : question + 1;
  head.pathEnd = question < 0 ? at : question;
  head.pathStart = bytes[target] === SLASH
    ? target
    : absolutePathStart(bytes, target, head.pathEnd);
  at++;
  // "HTTP/1.x"
  if (
    at + 8 > end || bytes[at] !== 72 || bytes[at + 1] !== 84 || bytes[at + 2] !== 84 ||
    bytes[at + 3] !== 80 ||
    bytes[at + 4] !== SLASH || bytes[at + 6] !== 46
  ) {
    return 400;
  }
  const major = bytes[at + 5] - 48;
  const minor = bytes[at + 7] - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return 400;
  if (major !== 1) return 505;
  head.http10 = minor === 0;
  at += 8;
  if (bytes[at] === CR) at++;
  if (bytes[at] !== LF) return 400;
  at++;

  let close = false;
  let keepAlive = false;
  head.contentLength = -1;
  head.transferEncoding = false;
  head.expect = false;
  head.upgradeWebSocket = false;
  head.xffStart =
    head.xffEnd =
    head.realIpStart =
    head.realIpEnd =
      -1;
  head.xffLines = head.realIpLines = 0;
  for (;;) {
    if (bytes[at] === LF) {
      at++;
      break;
    }
    if (bytes[at] === CR && bytes[at + 1] === LF) {
      at += 2;
      break;
    }
    const nameStart = at;
    while (TCHAR[bytes[at]] === 1) at++;
    // A line folded onto the previous one starts with a blank and fails here too.
    if (at === nameStart || bytes[at] !== COLON) return 400;
    const nameEnd = at++;
    while (bytes[at] === SP || bytes[at] === HT) at++;
    const valueStart = at;
    while (bytes[at] !== LF) {
      const code = bytes[at];
      if ((code < 0x20 && code !== HT && code !== CR) || code === 0x7f) return 400;
      at++;
    }
    let valueEnd = at++;
    if (valueEnd > valueStart && bytes[valueEnd - 1] === CR) valueEnd--;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HT)) {
      valueEnd--;
    }
    for (let i = valueStart; i < valueEnd; i++) if (bytes[i] === CR) return 400;
    switch (nameEnd - nameStart) {
      case 6:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "expect")) head.expect = true;
        break;
      case 7:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "upgrade")) {
          head.upgradeWebSocket ||= hasWebSocketToken(bytes, valueStart, valueEnd);
        }
        break;
      case 9:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "x-real-ip") && head.realIpLines++ === 0) {
          head.realIpStart = valueStart;
          head.realIpEnd = valueEnd;
        }
        break;
      case 10:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "connection")) {
          const tokens = connectionTokens(bytes, valueStart, valueEnd);
          close ||= (tokens & 1) !== 0;
          keepAlive ||= (tokens & 2) !== 0;
        }
        break;
      case 14:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "content-length")) {
          const n = parseDecimal(bytes, valueStart, valueEnd);
          if (n < 0 || (head.contentLength >= 0 && head.contentLength !== n)) return 400;
          head.contentLength = n;
        }
        break;
      case 15:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "x-forwarded-for") && head.xffLines++ === 0) {
          head.xffStart = valueStart;
          head.xffEnd = valueEnd;
        }
        break;
      case 17:
        if (nameIsCaseless(bytes, nameStart, nameEnd, "transfer-encoding")) {
          head.transferEncoding = true;
        }
        break;
    }
  }
  if (at !== end) return 400;
  head.keepAlive = head.http10 ? keepAlive && !close : !close;
  return 0;
}

/** In absolute form ("http://host/path"), where the path starts; `pathEnd` if it has none. */
function absolutePathStart(bytes: Uint8Array, target: number, pathEnd: number): number {
  for (let i = target; i + 2 < pathEnd; i++) {
    if (bytes[i] === COLON && bytes[i + 1] === SLASH && bytes[i + 2] === SLASH) {
      for (let j = i + 3; j < pathEnd; j++) if (bytes[j] === SLASH) return j;
      return pathEnd;
    }
  }
  return pathEnd;
}

/** Bit 1: a `close` token, bit 2: a `keep-alive` token, in a comma-separated list. */
function connectionTokens(bytes: Uint8Array, start: number, end: number): number {
  let found = 0;
  let at = start;
  while (at < end) {
    while (at < end && (bytes[at] === SP || bytes[at] === HT || bytes[at] === 44)) at++;
    const tokenStart = at;
    while (at < end && bytes[at] !== 44) at++;
    let tokenEnd = at;
    while (tokenEnd > tokenStart && (bytes[tokenEnd - 1] === SP || bytes[tokenEnd - 1] === HT)) {
      tokenEnd--;
    }
    if (nameIsCaseless(bytes, tokenStart, tokenEnd, "close")) found |= 1;
    else if (nameIsCaseless(bytes, tokenStart, tokenEnd, "keep-alive")) found |= 2;
  }
  return found;
}

/** Whether a comma-separated list holds the token "websocket" (any case). */
function hasWebSocketToken(bytes: Uint8Array, start: number, end: number): boolean {
  let at = start;
  while (at < end) {
    while (at < end && (bytes[at] === SP || bytes[at] === HT || bytes[at] === 44)) at++;
    const tokenStart = at;
    while (at < end && bytes[at] !== 44) at++;
    let tokenEnd = at;
    while (tokenEnd > tokenStart && (bytes[tokenEnd - 1] === SP || bytes[tokenEnd - 1] === HT)) {
      tokenEnd--;
    }
    if (nameIsCaseless(bytes, tokenStart, tokenEnd, "websocket")) return true;
  }
  return false;
}

/**
 * The value of header `name` (lower case) in a parsed head, repeated fields joined with ", ", or
 * null when absent; as `Headers.get`. Decodes text: not for the hot path.
 */
export function requestHeader(head: RequestHead, name: string): string | null {
  const bytes = head.input;
  let at = head.start;
  while (bytes[at] !== LF) at++; // the request line
  at++;
  let found = false;
  while (at < head.end && bytes[at] !== CR && bytes[at] !== LF) {
    let colon = at;
    while (bytes[colon] !== COLON) colon++;
    if (nameIsCaseless(bytes, at, colon, name)) found = true;
    while (bytes[at] !== LF) at++;
    at++;
  }
  return found ? joinedValues(bytes, head.start, head.end, name) : null;
}

/** A Content-Length value, or -1 when it is not 1 to 15 digits. */
export function parseDecimal(bytes: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = bytes[i] - 48;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/**
 * A `Request` for `HttpTracker.handle` from a parsed head, or null / a status when the head cannot
 * be one. A target in origin form gets the Host header's host when it is a plain host[:port], else
 * `serverHost` (the listener's); "*" becomes "/*".
 */
export function requestFromHead(head: RequestHead, serverHost: string): Request | number | null {
  const bytes = head.input;
  const method = utf8.decode(bytes.subarray(head.start, head.methodEnd));
  const headers = new Headers();
  // Skip the request line, then take every header line as it came.
  let at = head.start;
  while (bytes[at] !== LF) at++;
  at++;
  while (at < head.end && bytes[at] !== CR && bytes[at] !== LF) {
    let colon = at;
    while (bytes[colon] !== COLON) colon++;
    let lineEnd = colon;
    while (bytes[lineEnd] !== LF) lineEnd++;
    try {
      headers.append(
        utf8.decode(bytes.subarray(at, colon)),
        utf8.decode(bytes.subarray(colon + 1, lineEnd)).trim(),
      );
    } catch {
      return null;
    }
    at = lineEnd + 1;
  }
  const target = utf8.decode(bytes.subarray(head.targetStart, head.targetEnd));
  let url: string;
  if (target.charCodeAt(0) === SLASH) {
    // Only a plain host[:port] may shape the URL: "a/bytes?" would move the path routes see.
    const given = headers.get("host");
    const host = given !== null && HOST.test(given) ? given : serverHost;
    url = `http://${host}${target}`;
  } else if (/^https?:\/\//i.test(target)) {
    url = target;
  } else if (target === "*") {
    url = `http://${serverHost}/*`;
  } else {
    return head.method === M_OTHER ? 405 : null;
  }
  try {
    return new Request(url, { method, headers });
  } catch {
    // A forbidden method (CONNECT, TRACE) or an unparsable URL.
    return head.method === M_OTHER ? 405 : null;
  }
}
