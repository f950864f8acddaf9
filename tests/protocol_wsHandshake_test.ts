/**
 * src/protocol/wsHandshake.ts: RFC 6455's example key and accept value, the 101 reply byte for
 * byte, each way an upgrade request can be wrong (with its status), and the refusal replies.
 */
import assert from "node:assert/strict";
import {
  acceptFor,
  checkUpgrade,
  hasToken,
  SWITCHING_PROTOCOLS_LENGTH,
  upgradeRefusal,
  wantsWebSocket,
  writeSwitchingProtocols,
} from "../src/protocol/wsHandshake.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ=="; // RFC 6455 §1.3
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

function browserHeaders(extra: Record<string, string | null> = {}): Headers {
  const headers = new Headers({
    host: "127.0.0.1:6969",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": KEY,
    origin: "https://example.org",
  });
  for (const [name, value] of Object.entries(extra)) {
    if (value === null) headers.delete(name);
    else headers.set(name, value);
  }
  return headers;
}

Deno.test("RFC 6455 §1.3: the example key gives the example accept value", () => {
  assert.equal(acceptFor(KEY), ACCEPT);
  assert.deepEqual(checkUpgrade("GET", true, browserHeaders()), {
    ok: true,
    key: KEY,
    accept: ACCEPT,
  });
});

Deno.test("the 101 reply, byte for byte", () => {
  const out = new Uint8Array(200);
  const end = writeSwitchingProtocols(out, 3, ACCEPT);
  assert.equal(end - 3, SWITCHING_PROTOCOLS_LENGTH);
  assert.equal(
    new TextDecoder().decode(out.subarray(3, end)),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
  );
  assert.throws(() => writeSwitchingProtocols(new Uint8Array(50), 0, ACCEPT), RangeError);
  assert.throws(() => writeSwitchingProtocols(out, 0, "short"), RangeError);
});

Deno.test("token lists: any case, any spacing, among other tokens", () => {
  const ok = (extra: Record<string, string>) =>
    assert.equal(checkUpgrade("GET", true, browserHeaders(extra)).ok, true, JSON.stringify(extra));
  ok({ upgrade: "WebSocket" });
  ok({ upgrade: "h2c, websocket" });
  ok({ connection: "keep-alive, Upgrade" }); // Firefox sends this
  ok({ connection: "upgrade" });
  ok({ "sec-websocket-version": " 13 " });
  ok({ "sec-websocket-key": ` ${KEY}\t` });
  ok({ "sec-websocket-key": "AAAAAAAAAAAAAAAAAAAAAA==" });
  assert.equal(hasToken("a,,b ,\tC", "c"), true);
  assert.equal(hasToken("websocketx", "websocket"), false);
  assert.equal(hasToken(null, "websocket"), false);
  assert.equal(wantsWebSocket(browserHeaders()), true);
  assert.equal(wantsWebSocket(browserHeaders({ upgrade: null })), false);
});

Deno.test("each bad upgrade is refused with its status", () => {
  const cases: [string, boolean, Record<string, string | null>, number][] = [
    ["POST", true, {}, 400],
    ["get", true, {}, 400],
    ["GET", false, {}, 400], // HTTP/1.0
    ["GET", true, { host: null }, 400],
    ["GET", true, { upgrade: null }, 400],
    ["GET", true, { upgrade: "websocket/13" }, 400],
    ["GET", true, { connection: null }, 400],
    ["GET", true, { connection: "keep-alive" }, 400],
    ["GET", true, { "sec-websocket-version": null }, 426],
    ["GET", true, { "sec-websocket-version": "8" }, 426],
    ["GET", true, { "sec-websocket-version": "13, 8" }, 426],
    ["GET", true, { "sec-websocket-key": null }, 400],
    ["GET", true, { "sec-websocket-key": "" }, 400],
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ" }, 400], // no padding
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=" }, 400],
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==x" }, 400],
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ-_" }, 400], // base64url
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZXM=" }, 400], // 17 bytes
    ["GET", true, { "sec-websocket-key": "dGhlIHNhbXBsZSBub25j" }, 400],
    ["GET", true, { "sec-websocket-key": `${KEY}, ${KEY}` }, 400], // repeated field
  ];
  for (const [method, http11, extra, status] of cases) {
    const result = checkUpgrade(method, http11, browserHeaders(extra));
    assert.equal(result.ok, false, `${method} ${JSON.stringify(extra)}`);
    if (!result.ok) assert.equal(result.status, status, `${method} ${JSON.stringify(extra)}`);
  }
});

Deno.test("refusal replies: 426 names version 13, both close the connection", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const refused426 = checkUpgrade("GET", true, browserHeaders({ "sec-websocket-version": "8" }));
  assert.equal(refused426.ok, false);
  if (refused426.ok) return;
  const reply = text(upgradeRefusal(refused426));
  assert.match(reply, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
  assert.match(reply, /\r\nSec-WebSocket-Version: 13\r\n/);
  assert.match(reply, /\r\nUpgrade: websocket\r\n/);
  assert.match(reply, /\r\nConnection: Upgrade, close\r\n/);
  const body = reply.slice(reply.indexOf("\r\n\r\n") + 4);
  assert.match(reply, new RegExp(`\\r\\nContent-Length: ${body.length}\\r\\n`));

  const refused400 = checkUpgrade("GET", true, browserHeaders({ "sec-websocket-key": "x" }));
  assert.equal(refused400.ok, false);
  if (refused400.ok) return;
  assert.equal(
    text(upgradeRefusal(refused400)),
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      "Content-Length: 22\r\n\r\nbad Sec-WebSocket-Key\n",
  );
});
