/**
 * Replies as HTTP/1.1 bytes. Hot replies (announce, scrape) are one 200 with Content-Length,
 * written into the connection's pooled buffer (`writeHotReply`). Refusals of bad heads are fixed
 * byte strings, each ending the connection (`REFUSALS`). Other replies come from
 * `HttpTracker.handle` as a `Response` and are framed here (`writeResponse`): with Content-Length
 * when declared or when the body is one chunk, else chunked, or for HTTP/1.0 until close; HEAD,
 * 204 and 304 get no body. The bytes go to a `ReplySink`, which the server times (slowReply.ts: sendDeadline).
 */
import { writeDecimal } from "../../protocol/httpReply.ts";
import { parseDecimal } from "./requestHead.ts";
import { ascii } from "../../protocol/asciiBytes.ts";

const OK_START = ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
export const END_PLAIN = ascii("\r\n\r\n");
export const END_CLOSE = ascii("\r\nConnection: close\r\n\r\n");
export const END_KEEP_ALIVE = ascii("\r\nConnection: keep-alive\r\n\r\n");

function refusal(status: number, reason: string, text: string, extra = ""): Uint8Array {
  return ascii(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}` +
      `Content-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`,
  );
}

export const REFUSALS = new Map<number, Uint8Array>([
  [400, refusal(400, "Bad Request", "bad request")],
  [405, refusal(405, "Method Not Allowed", "method not allowed", "Allow: GET, HEAD\r\n")],
  [414, refusal(414, "URI Too Long", "request too long")],
  [431, refusal(431, "Request Header Fields Too Large", "request header fields too large")],
  [500, refusal(500, "Internal Server Error", "internal error")],
  [505, refusal(505, "HTTP Version Not Supported", "HTTP version not supported")],
]);

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();
const CHUNKED_END = ascii("0\r\n\r\n");
const CRLF = ascii("\r\n");

/** Where a framed reply's bytes go, in order; resolves once they are handed on. */
export type ReplySink = (bytes: Uint8Array) => Promise<void>;

/** Writes a 200 reply with `length` body bytes from `body` at out[at]; returns the end offset. */
export function writeHotReply(
  out: Uint8Array,
  at: number,
  body: Uint8Array,
  length: number,
  isHead: boolean,
  ending: Uint8Array,
): number {
  for (let i = 0; i < OK_START.length; i++) out[at++] = OK_START[i];
  at = writeDecimal(out, at, length);
  for (let i = 0; i < ending.length; i++) out[at++] = ending[i];
  if (isHead) return at;
  if (length > 64) {
    out.set(body.subarray(0, length), at);
    return at + length;
  }
  for (let i = 0; i < length; i++) out[at + i] = body[i];
  return at + length;
}

/**
 * Frames `response` for a request (`isHead`, `http10`, whether the connection stays open) and
 * sends it; returns whether the connection may stay open after it.
 */
export async function writeResponse(
  send: ReplySink,
  response: Response,
  isHead: boolean,
  http10: boolean,
  keepAlive: boolean,
): Promise<boolean> {
  const status = response.status;
  let text = `HTTP/1.1 ${status} ${response.statusText || REASONS[status] || ""}\r\n`;
  let declared = -1;
  for (const [name, value] of response.headers) {
    if (name === "content-length") {
      declared = parseDecimal(encoder.encode(value), 0, value.length);
      continue;
    }
    if (name === "connection" || name === "transfer-encoding" || name === "keep-alive") continue;
    text += `${name}: ${value}\r\n`;
  }
  const body = response.body;
  const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
  if (body === null || isHead || noBody) {
    await body?.cancel();
    if (body === null && !noBody) declared = 0;
    if (declared >= 0 && !noBody) text += `Content-Length: ${declared}\r\n`;
    await writeHead(send, text, keepAlive, http10, null);
    return keepAlive;
  }
  const reader = body.getReader();
  try {
    if (declared >= 0) {
      text += `Content-Length: ${declared}\r\n`;
      await writeHead(send, text, keepAlive, http10, null);
      let sent = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        sent += value.length;
        if (sent > declared) return false;
        await send(value);
      }
      return keepAlive && sent === declared;
    }
    // No declared length: a body that ends after its first chunk gets one; else chunks.
    const first = await reader.read();
    const firstBytes = first.done ? new Uint8Array(0) : first.value;
    const second = first.done ? first : await reader.read();
    if (second.done) {
      text += `Content-Length: ${firstBytes.length}\r\n`;
      await writeHead(send, text, keepAlive, http10, firstBytes);
      return keepAlive;
    }
    if (http10) {
      // No chunked coding in HTTP/1.0: the body ends where the connection does.
      await writeHead(send, text, false, true, firstBytes);
      await send(second.value);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return false;
        await send(value);
      }
    }
    text += "Transfer-Encoding: chunked\r\n";
    await writeHead(send, text, keepAlive, false, null);
    await writeChunked(send, firstBytes);
    await writeChunked(send, second.value);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await writeChunked(send, value);
    }
    await send(CHUNKED_END);
    return keepAlive;
  } finally {
    reader.releaseLock();
  }
}

/** Sends the head `text` with its Connection line and blank line, and `body` with it if any. */
async function writeHead(
  send: ReplySink,
  text: string,
  keepAlive: boolean,
  http10: boolean,
  body: Uint8Array | null,
): Promise<void> {
  text += keepAlive
    ? (http10 ? "Connection: keep-alive\r\n\r\n" : "\r\n")
    : "Connection: close\r\n\r\n";
  const headBytes = encoder.encode(text);
  if (body === null || body.length === 0) return await send(headBytes);
  const all = new Uint8Array(headBytes.length + body.length);
  all.set(headBytes);
  all.set(body, headBytes.length);
  await send(all);
}

/** Sends `bytes` as one chunk of a chunked body. */
async function writeChunked(send: ReplySink, bytes: Uint8Array): Promise<void> {
  if (bytes.length === 0) return; // a zero-length chunk would end the body
  await send(encoder.encode(bytes.length.toString(16) + "\r\n"));
  await send(bytes);
  await send(CRLF);
}
