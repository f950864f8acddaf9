/**
 * The bounded reader of the cluster stream, against a fake Redis on loopback: it authenticates
 * and selects as the URL says, parses RESP2 however it is split, keeps only what its limits
 * allow (a 128 MB value is read past, not held), and turns error replies and broken replies into
 * rejections.
 */
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { ErrorReply } from "npm:@redis/client@6.3.1";
import {
  OversizedValue,
  SkippedElements,
  StreamReaderConnection,
} from "../src/cluster/streamReader.ts";
import { FakeRedis, RESP_OK } from "./support/fakeRedis.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

function reader(url: string, maxValueBytes = 16, keepElements = [4, 4, 4]) {
  return new StreamReaderConnection(url, { maxValueBytes, keepElements });
}

Deno.test("connect sends AUTH and SELECT as the URL says, decoded", async () => {
  await using fake = new FakeRedis(() => RESP_OK);
  const cases: [string, string[][]][] = [
    [fake.url, []],
    [`${fake.url}/0`, []],
    [`redis://:p%40ss@127.0.0.1:${fake.port}/3`, [["AUTH", "p@ss"], ["SELECT", "3"]]],
    [`redis://us%3Aer:pw@127.0.0.1:${fake.port}`, [["AUTH", "us:er", "pw"]]],
  ];
  for (const [url, expected] of cases) {
    fake.received.length = 0;
    const connection = reader(url);
    await connection.connect();
    assert.deepEqual(fake.received, expected, url);
    connection.destroy();
  }
});

Deno.test("a refused AUTH rejects connect with the server's ErrorReply", async () => {
  await using fake = new FakeRedis(() => "-WRONGPASS invalid username-password pair\r\n");
  const connection = reader(`redis://:bad@127.0.0.1:${fake.port}`);
  await assert.rejects(connection.connect(), (error) => {
    assert.ok(error instanceof ErrorReply);
    assert.equal(error.message, "WRONGPASS invalid username-password pair");
    return true;
  });
  connection.destroy();
});

const NESTED = "*3\r\n" +
  "*2\r\n$3\r\nkey\r\n*5\r\n$1\r\na\r\n$-1\r\n:42\r\n+OK\r\n-ERR inside\r\n" +
  "$20\r\n01234567890123456789\r\n" +
  "*-1\r\n";

Deno.test("replies parse the same whole or split byte by byte; limits replace what is cut", async () => {
  for (const split of [false, true]) {
    await using fake = new FakeRedis(() => {
      if (!split) return NESTED;
      const all = bytes(NESTED);
      return {
        chunks: (async function* () {
          for (let i = 0; i < all.length; i++) yield all.subarray(i, i + 1);
        })(),
      };
    });
    const connection = reader(fake.url, 16, [3, 2, 4]);
    await connection.connect();
    const reply = await connection.sendCommand(["XREAD"]) as unknown[];
    assert.equal(reply.length, 3);
    const [stream, oversized, nil] = reply;
    assert.ok(Array.isArray(stream));
    assert.deepEqual(stream[0], bytes("key"));
    const inner = stream[1] as unknown[];
    // Four of the five elements kept, the fifth read past.
    assert.deepEqual(inner.slice(0, 4), [bytes("a"), null, 42, "OK"]);
    assert.deepEqual(inner[4], new SkippedElements(1));
    assert.deepEqual(oversized, new OversizedValue(20));
    assert.equal(nil, null);
    connection.destroy();
  }
});

Deno.test("arrays past the listed depths keep nothing, however deep the skipped part is", async () => {
  const deep = "*1\r\n".repeat(10_000) + "$3\r\nabc\r\n";
  await using fake = new FakeRedis((args) => args[0] === "DEEP" ? `*2\r\n${deep}:7\r\n` : ":1\r\n");
  const connection = reader(fake.url, 16, [1]);
  await connection.connect();
  assert.deepEqual(await connection.sendCommand(["DEEP"]), [
    [new SkippedElements(1)],
    new SkippedElements(1),
  ]);
  // The connection is still in step: the next reply is its own.
  assert.equal(await connection.sendCommand(["PING"]), 1);
  connection.destroy();
});

Deno.test("an error reply rejects with ErrorReply and leaves the connection usable", async () => {
  await using fake = new FakeRedis((args) =>
    args[0] === "BAD" ? "-NOPERM this user has no permissions\r\n" : "+PONG\r\n"
  );
  const connection = reader(fake.url);
  await connection.connect();
  await assert.rejects(connection.sendCommand(["BAD"]), ErrorReply);
  assert.equal(await connection.sendCommand(["PING"]), "PONG");
  connection.destroy();
});

Deno.test("replies RESP2 does not allow, and a peer that hangs up, reject", async () => {
  const replies: Record<string, string> = {
    TYPE: "%1\r\n",
    LENGTH: "$abc\r\nxx\r\n",
    CRLF: "$2\r\nabXY",
    LINE: "+" + "x".repeat(70_000) + "\r\n",
  };
  for (const [name, reply] of Object.entries(replies)) {
    await using fake = new FakeRedis(() => reply);
    const connection = reader(fake.url);
    await connection.connect();
    await assert.rejects(connection.sendCommand([name]), Error, name);
    connection.destroy();
  }
  await using hangUp = new FakeRedis(() => ({
    chunks: (async function* () {
      yield bytes("*2\r\n$5\r\nhel");
      throw new Error("hang up");
    })(),
  }));
  const connection = reader(hangUp.url);
  await connection.connect();
  await assert.rejects(connection.sendCommand(["X"]), /closed the connection/);
  connection.destroy();
});

Deno.test("destroy rejects a command in flight", async () => {
  await using fake = new FakeRedis(() => new Promise<string>(() => {}));
  const connection = reader(fake.url);
  await connection.connect();
  const pending = connection.sendCommand(["XREAD"]);
  connection.destroy();
  await assert.rejects(pending);
  await assert.rejects(connection.sendCommand(["PING"]), /not connected/);
});

Deno.test("a 128 MB value is read past in small chunks: memory does not grow with it", async () => {
  const size = 128 * 1024 * 1024;
  const chunk = new Uint8Array(256 * 1024).fill(0x61);
  await using fake = new FakeRedis(() => ({
    chunks: (async function* () {
      yield bytes(`*2\r\n$${size}\r\n`);
      for (let sent = 0; sent < size; sent += chunk.length) yield chunk;
      yield bytes("\r\n$2\r\nok\r\n");
    })(),
  }));
  const connection = reader(fake.url, 160 * 1024, [2]);
  await connection.connect();
  const before = Deno.memoryUsage().rss;
  const reply = await connection.sendCommand(["XREAD"]);
  const grew = Deno.memoryUsage().rss - before;
  assert.deepEqual(reply, [new OversizedValue(size), bytes("ok")]);
  assert.ok(grew < 48 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(1)} MB`);
  console.log(`reading past a 128 MB value: RSS grew by ${(grew / 1048576).toFixed(1)} MB`);
  connection.destroy();
});
