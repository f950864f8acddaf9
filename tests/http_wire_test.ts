/**
 * otter's own HTTP/1.1 server (src/servers/http/httpWire.ts) in process over real loopback sockets,
 * driven byte by byte with a raw client: announce and scrape from bytes, HEAD, pipelining in
 * order, keep-alive and its ends (Connection: close, HTTP/1.0), request bodies skipped, routes
 * answered through Request/Response (Content-Length, chunked, HTTP/1.0 until close), refusals
 * (400, 405, 505, 500), trusted-proxy headers, absolute-form targets and shutdown.
 */
import assert from "node:assert/strict";
import { bdecode, dict, latin1 } from "./support/bencode.ts";
import { RawClient } from "./support/rawHttp.ts";
import { startWire } from "./support/wireServer.ts";

const HASH = "%12%34%56%78%9a%bc%de%f0%12%34%56%78%9a%bc%de%f0%12%34%56%78";

function announcePath(port: number, extra = ""): string {
  return `/announce?info_hash=${HASH}&peer_id=-OT0001-${
    String(port).padStart(12, "0")
  }&port=${port}&left=10${extra}`;
}

function get(path: string, headers = "", version = "1.1"): string {
  return `GET ${path} HTTP/${version}\r\nHost: t\r\n${headers}\r\n`;
}

Deno.test("wire: announce and scrape from bytes, keep-alive by default", async () => {
  await using wire = startWire();
  await using client = await wire.connect();
  await client.send(get(announcePath(1001, "&event=started")));
  const first = await client.response();
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("content-type"), "text/plain");
  assert.equal(first.headers.get("connection"), undefined);
  const reply = dict(bdecode(first.body));
  assert.equal(reply.incomplete, 1);
  assert.deepEqual([...(reply["external ip"] as Uint8Array)], [127, 0, 0, 1]);
  // Same connection: a second peer sees the first.
  await client.send(get(announcePath(1002)));
  const second = dict(bdecode((await client.response()).body));
  assert.equal(second.incomplete, 2);
  assert.equal((second.peers as Uint8Array).length, 6);
  await client.send(get(`/scrape?info_hash=${HASH}`));
  const scrape = dict(bdecode((await client.response()).body));
  const files = dict(scrape.files);
  assert.equal(Object.keys(files).length, 1);
  assert.equal(dict(Object.values(files)[0]).incomplete, 2);
  // A bad announce is a 200 with a failure reason, and the connection stays.
  await client.send(get("/announce?info_hash=short"));
  const failure = await client.response();
  assert.equal(failure.status, 200);
  assert.match(latin1(dict(bdecode(failure.body))["failure reason"] as Uint8Array), /info_hash/);
  assert.equal(await client.closesWithin(100), false);
});

Deno.test("wire: HEAD has the headers of GET and no body", async () => {
  await using wire = startWire();
  await using client = await wire.connect();
  await client.send(
    `HEAD /scrape?info_hash=${HASH} HTTP/1.1\r\n\r\n` + get(`/scrape?info_hash=${HASH}`) +
      "HEAD /nothing HTTP/1.1\r\n\r\n" + get("/nothing"),
  );
  const head = await client.response({ head: true });
  const full = await client.response();
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(full.body.length));
  assert.ok(full.body.length > 0);
  const head404 = await client.response({ head: true });
  const full404 = await client.response();
  assert.equal(head404.status, 404);
  assert.equal(full404.status, 404);
  assert.equal(latin1(full404.body), "not found\n");
  assert.equal(client.pending, 0);
});

Deno.test("wire: pipelined requests are answered in order", async () => {
  await using wire = startWire();
  await using client = await wire.connect();
  const requests: string[] = [];
  for (let i = 0; i < 20; i++) {
    requests.push(
      i % 5 === 3 ? get(`/unknown-${i}`) : get(announcePath(2000 + i, "&numwant=0")),
    );
  }
  // All in one write, and again split at awkward places.
  await client.send(requests.join(""));
  let peers = 0;
  for (let i = 0; i < 20; i++) {
    const r = await client.response();
    assert.equal(r.status, i % 5 === 3 ? 404 : 200, `response ${i}`);
    // Each announce adds a peer: the counts show the replies come in request order.
    if (i % 5 !== 3) assert.equal(dict(bdecode(r.body)).incomplete, ++peers, `response ${i}`);
  }
  const joined = new TextEncoder().encode(requests.slice(0, 6).join(""));
  for (let o = 0; o < joined.length; o += 37) {
    await client.send(joined.subarray(o, Math.min(o + 37, joined.length)));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  for (let i = 0; i < 6; i++) assert.equal((await client.response()).status, i === 3 ? 404 : 200);
  assert.equal(client.pending, 0);
});

Deno.test("wire: Connection: close and HTTP/1.0 end the connection; keep-alive 1.0 does not", async () => {
  await using wire = startWire();
  {
    await using client = await wire.connect();
    await client.send(get(announcePath(3001), "Connection: Close\r\n"));
    const r = await client.response();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("connection"), "close");
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    await using client = await wire.connect();
    // A pipelined request after a close is not answered.
    await client.send(get("/nothing", "connection: keep-alive, close\r\n") + get("/nothing"));
    assert.equal((await client.response()).status, 404);
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    await using client = await wire.connect();
    await client.send(get(announcePath(3002), "", "1.0"));
    const r = await client.response();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("connection"), "close");
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    await using client = await wire.connect();
    await client.send(get(announcePath(3003), "Connection: Keep-Alive\r\n", "1.0"));
    const r = await client.response();
    assert.equal(r.headers.get("connection"), "keep-alive");
    await client.send(get("/nothing", "Connection: keep-alive\r\n", "1.0"));
    const r404 = await client.response();
    assert.equal(r404.status, 404);
    assert.equal(r404.headers.get("connection"), "keep-alive");
    assert.equal(await client.closesWithin(100), false);
  }
});

Deno.test("wire: routes get a Request and their Response is framed for the client", async () => {
  await using wire = startWire();
  const seen: { url: string; method: string; accept: string | null; remote: string }[] = [];
  wire.http.routes.set("/single", (request, info) => {
    seen.push({
      url: request.url,
      method: request.method,
      accept: request.headers.get("accept-encoding"),
      remote: info.remoteAddr.hostname,
    });
    return new Response("hello\n", { headers: { "x-route": "single" } });
  });
  const parts = ["alpha-", "beta-", "gamma"];
  const stream = () =>
    new ReadableStream<Uint8Array>({
      async start(controller) {
        for (const part of parts) {
          controller.enqueue(new TextEncoder().encode(part));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        controller.close();
      },
    });
  wire.http.routes.set("/stream", () => new Response(stream()));
  wire.http.routes.set(
    "/sized",
    () => new Response(stream(), { headers: { "content-length": "16" } }),
  );
  wire.http.routes.set("/empty", () => new Response(null, { status: 204 }));
  wire.http.routes.set("/fails", () => {
    throw new Error("route bug");
  });

  await using client = await wire.connect();
  await client.send(get("/single?x=1", "Accept-Encoding: gzip, br\r\n"));
  const single = await client.response();
  assert.equal(single.status, 200);
  assert.equal(single.headers.get("content-length"), "6");
  assert.equal(single.headers.get("x-route"), "single");
  assert.equal(latin1(single.body), "hello\n");
  assert.deepEqual(seen[0], {
    url: "http://t/single?x=1",
    method: "GET",
    accept: "gzip, br",
    remote: "127.0.0.1",
  });

  // A Host that is not a plain host[:port] cannot move the path a route sees.
  await client.send("GET /single HTTP/1.1\r\nHost: evil/stats?\r\n\r\n");
  assert.equal((await client.response()).status, 200);
  assert.equal(new URL(seen[1].url).pathname, "/single");

  await client.send(get("/stream") + get("/sized") + get("/empty") + get("/single"));
  const chunked = await client.response();
  assert.equal(chunked.chunked, true);
  assert.equal(latin1(chunked.body), "alpha-beta-gamma");
  const sized = await client.response();
  assert.equal(sized.chunked, false);
  assert.equal(sized.headers.get("content-length"), "16");
  assert.equal(latin1(sized.body), "alpha-beta-gamma");
  const empty = await client.response();
  assert.equal(empty.status, 204);
  assert.equal((await client.response()).status, 200);

  // HTTP/1.0 has no chunked coding: the body runs until the close.
  await using old = await wire.connect();
  await old.send(get("/stream", "", "1.0"));
  const raw = await old.response();
  assert.equal(raw.headers.get("transfer-encoding"), undefined);
  assert.equal(raw.headers.get("content-length"), undefined);
  assert.equal(latin1(raw.body), "alpha-beta-gamma");

  // A route that throws: 500 and close, like Deno.serve's onError.
  await using failing = await wire.connect();
  await failing.send(get("/fails"));
  assert.equal((await failing.response()).status, 500);
  assert.equal(await failing.closesWithin(2000), true);
});

Deno.test("wire: a full scrape (no info_hash) goes through the Request path", async () => {
  await using wire = startWire();
  await using client = await wire.connect();
  await client.send(get("/scrape"));
  const refused = dict(bdecode((await client.response()).body));
  assert.match(latin1(refused["failure reason"] as Uint8Array), /full scrape/);
  wire.http.fullScrape = (request) =>
    new Response(`full ${new URL(request.url).pathname}`, {
      headers: { "content-type": "application/octet-stream" },
    });
  await client.send(get("/scrape"));
  const full = await client.response();
  assert.equal(full.headers.get("content-type"), "application/octet-stream");
  assert.equal(latin1(full.body), "full /scrape");
});

Deno.test("wire: bodies are skipped, methods refused, bad heads answered 400 and closed", async () => {
  await using wire = startWire();
  {
    await using client = await wire.connect();
    // POST with a small body: 405 and the connection goes on past the body.
    await client.send(
      "POST /announce HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world" + get("/nothing"),
    );
    const post = await client.response();
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assert.equal((await client.response()).status, 404);
  }
  {
    // Expect: 100-continue: we answer at once and never say continue, so the body may never
    // come; the connection ends instead of reading the next request as that body.
    await using client = await wire.connect();
    await client.send(
      "POST /announce HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    const r = await client.response();
    assert.equal(r.status, 405);
    assert.equal(r.headers.get("connection"), "close");
    assert.equal(await client.closesWithin(2000), true);
  }
  {
    await using client = await wire.connect();
    await client.send("CONNECT example.com:443 HTTP/1.1\r\n\r\n");
    assert.equal((await client.response()).status, 405);
    assert.equal(await client.closesWithin(2000), true);
  }
  const bad = [
    "GARBAGE\r\n\r\n",
    "GET /announce\r\n\r\n",
    "GET /announce HTTP/1.1\r\nNo-Colon\r\n\r\n",
    "GET /announce HTTP/1.1\r\nBad Name: x\r\n\r\n",
    "GET /announce HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    "GET /announce HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    "GET /announce HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "GET /a\x01b HTTP/1.1\r\n\r\n",
    "GET /announce HTTX/1.1\r\n\r\n",
  ];
  for (const request of bad) {
    await using client = await wire.connect();
    await client.send(request);
    const r = await client.response();
    assert.equal(r.status, 400, JSON.stringify(request));
    assert.equal(r.headers.get("connection"), "close");
    assert.equal(await client.closesWithin(2000), true, JSON.stringify(request));
  }
  {
    await using client = await wire.connect();
    await client.send("GET /announce HTTP/2.0\r\n\r\n");
    assert.equal((await client.response()).status, 505);
  }
  {
    // Bare LF line ends and leading blank lines are tolerated.
    await using client = await wire.connect();
    await client.send(`\r\nGET ${announcePath(4001)} HTTP/1.1\nHost: t\n\n`);
    assert.equal((await client.response()).status, 200);
  }
});

Deno.test("wire: absolute-form targets and X-Forwarded-For from a trusted proxy", async () => {
  await using wire = startWire(["--trust-proxy", "127.0.0.0/8"]);
  await using client = await wire.connect();
  await client.send(get(`http://tracker.example${announcePath(5001)}`));
  const direct = dict(bdecode((await client.response()).body));
  assert.deepEqual([...(direct["external ip"] as Uint8Array)], [127, 0, 0, 1]);
  await client.send(get(announcePath(5002), "X-Forwarded-For: 10.9.8.7, 127.0.0.1\r\n"));
  const forwarded = dict(bdecode((await client.response()).body));
  assert.deepEqual([...(forwarded["external ip"] as Uint8Array)], [10, 9, 8, 7]);
  await client.send(get(announcePath(5003), "X-Real-IP: 2001:db8::5\r\n"));
  const realIp = dict(bdecode((await client.response()).body));
  assert.equal((realIp["external ip"] as Uint8Array).length, 16);
});

Deno.test("wire: shutdown closes idle connections and lets a request in progress finish", async () => {
  const wire = startWire();
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  wire.http.routes.set("/slow", async () => {
    await released;
    return new Response("done");
  });
  await using idle = await wire.connect();
  await idle.send(get("/nothing"));
  assert.equal((await idle.response()).status, 404);
  await using busy = await wire.connect();
  await busy.send(get("/slow"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const stopped = wire.server.shutdown();
  assert.equal(await idle.closesWithin(2000), true);
  release();
  const r = await busy.response();
  assert.equal(latin1(r.body), "done");
  assert.equal(r.headers.get("connection"), "close");
  await stopped;
  assert.equal(wire.server.connections, 0);
  await assert.rejects(RawClient.connect(wire.port));
});
