/**
 * `--https`: otter's HTTP server over TLS, on a real otter process, with a throwaway CA and leaf
 * certificates made by `openssl` for each test (support/testCertificates.ts). Announce, scrape,
 * full scrape, /stats and /metrics answer over TLS as over plain HTTP, from the same store; a
 * client that does not trust the CA is refused (the TLS is real); SIGHUP puts a renewed
 * certificate in service for new connections while open ones go on, and keeps the old one when
 * the new files are bad; the header timeout bounds the handshake and the connection caps count
 * TLS connections; a WebSocket upgrade request over TLS reaches the same request handling as over
 * plain HTTP; and the start refuses missing or bad files, and a port another otter serves, in one
 * line.
 */
import assert from "node:assert/strict";
import { runOtter, startOtter } from "./support/otterProcess.ts";
import { compactPeers4, httpAnnounce, randomHash } from "./support/otterCommand.ts";
import { RawClient } from "./support/rawHttp.ts";
import { makeCa, makeLeaf, type TestCa, type TestLeaf } from "./support/testCertificates.ts";
import { needsIpv6 } from "./support/ipv6.ts";

const LISTEN = ["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"];

function tlsFlags(leaf: { certPath: string; keyPath: string }, at = "127.0.0.1:0"): string[] {
  return ["--https", at, "--tls-cert", leaf.certPath, "--tls-key", leaf.keyPath];
}

/** A temporary directory with two CAs and a leaf from each, removed after `fn`. */
async function withCertificates(
  fn: (c: { dir: string; a: TestCa; b: TestCa; leafA: TestLeaf; leafB: TestLeaf }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "otter-https-" });
  try {
    const a = await makeCa(dir, "a");
    const b = await makeCa(dir, "b");
    await fn({
      dir,
      a,
      b,
      leafA: await makeLeaf(dir, a, "a1"),
      leafB: await makeLeaf(dir, b, "b1"),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function hostPort(base: string): { hostname: string; port: number } {
  const url = new URL(base);
  return { hostname: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) };
}

/**
 * Whether a new TLS connection to `base` trusting only `ca` completes its handshake: true when
 * the server presents a certificate `ca` signed, false when the client refuses the one it gets.
 */
async function trusts(base: string, ca: TestCa): Promise<boolean> {
  const { hostname, port } = hostPort(base);
  const conn = await Deno.startTls(await Deno.connect({ hostname, port }), {
    hostname,
    caCerts: [ca.pem],
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no TLS handshake within 10 s")), 10_000);
    });
    await Promise.race([conn.handshake(), timeout]);
    return true;
  } catch (e) {
    if (/UnknownIssuer|invalid peer certificate/.test(String(e))) return false;
    throw e;
  } finally {
    clearTimeout(timer);
    conn.close();
  }
}

async function get(
  url: string,
  client?: Deno.HttpClient,
): Promise<{ status: number; bytes: Uint8Array; type: string | null }> {
  const response = await fetch(url, { client, signal: AbortSignal.timeout(10_000) });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, bytes, type: response.headers.get("content-type") };
}

/** A sample's value in Prometheus text (`name` with its labels, as written). */
function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** Polls /metrics (through `client`) until `name` reaches `want`, for at most 10 s. */
async function metricReaches(
  base: string,
  name: string,
  want: number,
  client?: Deno.HttpClient,
): Promise<number> {
  const deadline = performance.now() + 10_000;
  let seen = NaN;
  while (performance.now() < deadline) {
    try {
      seen = metric(new TextDecoder().decode((await get(`${base}/metrics`, client)).bytes), name);
      if (seen >= want) return seen;
    } catch {
      // Refused at a cap a moment longer: try again.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return seen;
}

function percent(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

/** Everything the server sends until it closes (EOF or reset), at most `ms` waiting. */
async function readUntilClosed(conn: Deno.Conn, ms: number): Promise<Uint8Array | "open"> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(4096);
  const deadline = performance.now() + ms;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - performance.now()));
    });
    const n = await Promise.race([conn.read(buffer).catch(() => null), timeout]);
    clearTimeout(timer);
    if (n === "timeout") return "open";
    if (n === null) return new Uint8Array(chunks);
    chunks.push(...buffer.subarray(0, n));
  }
}

Deno.test("https: announce, scrape, full scrape, /stats and /metrics over TLS, one store with plain HTTP", async () => {
  await withCertificates(async ({ a, leafA }) => {
    await using otter = await startOtter([...LISTEN, ...tlsFlags(leafA)]);
    const [plain] = otter.http;
    const [tls] = otter.https;
    assert.match(tls, /^https:\/\/127\.0\.0\.1:\d+$/);
    // The start line names the certificate in service.
    assert.ok(
      otter.stdout.some((l) =>
        l.startsWith("HTTPS listening") && l.includes(`serial ${leafA.serial}`)
      ),
      otter.stdout.join("\n"),
    );
    using client = Deno.createHttpClient({ caCerts: [a.pem] });

    const hash = randomHash();
    const first = await httpAnnounce(tls, hash, 40001, client);
    assert.equal(first["failure reason"], undefined);
    const second = await httpAnnounce(plain, hash, 40002);
    assert.deepEqual(compactPeers4(second.peers), ["127.0.0.1:40001"], "the TLS peer, over plain");
    const third = await httpAnnounce(tls, hash, 40003, client);
    assert.deepEqual(compactPeers4(third.peers).sort(), ["127.0.0.1:40001", "127.0.0.1:40002"]);

    const scrape = `/scrape?info_hash=${percent(hash)}`;
    const overTls = await get(`${tls}${scrape}`, client);
    assert.equal(overTls.status, 200);
    assert.deepEqual(overTls.bytes, (await get(`${plain}${scrape}`)).bytes);
    assert.match(
      new TextDecoder("latin1").decode(overTls.bytes),
      /8:completei0e.*10:incompletei3e/,
    );

    const full = await get(`${tls}/scrape`, client);
    assert.equal(full.status, 200);
    assert.deepEqual(full.bytes, (await get(`${plain}/scrape`)).bytes, "the same full scrape");

    const stats = JSON.parse(
      new TextDecoder().decode((await get(`${tls}/stats?mode=tcp4&format=json`, client)).bytes),
    ).tcp4;
    assert.deepEqual(stats.tls, {
      handshakeFailures: 0,
      handshakesAbandoned: 0,
      certificateReloads: 0,
      certificateReloadFailures: 0,
      certificateNotAfter: leafA.notAfterSeconds,
    });
    const metrics = new TextDecoder().decode((await get(`${tls}/metrics`, client)).bytes);
    assert.equal(
      metric(metrics, "otter_tls_certificate_expiry_timestamp_seconds"),
      leafA.notAfterSeconds,
    );
    assert.equal(
      metric(metrics, `otter_requests_total{protocol="http",action="announce",result="ok"}`),
      3,
    );

    // The dashboard over TLS: its listeners and settings name the --https one as written.
    const page = await get(`${tls}/dashboard`, client);
    assert.equal(page.status, 200);
    const data = JSON.parse(
      new TextDecoder().decode((await get(`${tls}/dashboard/data`, client)).bytes),
    );
    assert.ok(data.info.listeners.includes(`${tls}/announce`), data.info.listeners.join(", "));
    assert.deepEqual(data.info.config.https, ["127.0.0.1:0"], "as on the command line");

    // ALPN: HTTP/1.1 only, also for a client that would rather speak HTTP/2.
    const { hostname, port } = hostPort(tls);
    const conn = await Deno.startTls(await Deno.connect({ hostname, port }), {
      hostname,
      caCerts: [a.pem],
      alpnProtocols: ["h2", "http/1.1"],
    });
    try {
      assert.equal((await conn.handshake()).alpnProtocol, "http/1.1");
    } finally {
      conn.close();
    }
  });
});

Deno.test(needsIpv6("https: over [::1] too"), async () => {
  await withCertificates(async ({ a, leafA }) => {
    await using otter = await startOtter([...LISTEN, ...tlsFlags(leafA, "[::1]:0")]);
    assert.match(otter.https[0], /^https:\/\/\[::1\]:\d+$/);
    using client = Deno.createHttpClient({ caCerts: [a.pem] });
    const reply = await httpAnnounce(otter.https[0], randomHash(), 40001, client);
    assert.equal(reply["failure reason"], undefined);
  });
});

Deno.test("https: refused by a client without the CA, no HTTP answer to plain HTTP on the port; failed handshakes counted", async () => {
  await withCertificates(async ({ a, b, leafA }) => {
    await using otter = await startOtter([...LISTEN, ...tlsFlags(leafA)]);
    const [tls] = otter.https;
    await assert.rejects(get(`${tls}/stats`), (e: Error) => {
      assert.match(String(e.cause ?? e), /certificate|UnknownIssuer/i);
      return true;
    });
    assert.equal(await trusts(tls, b), false, "a client trusting another CA refuses it");
    assert.equal(await trusts(tls, a), true);

    const { port } = hostPort(tls);
    const raw = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await raw.write(new TextEncoder().encode("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"));
      const got = await readUntilClosed(raw, 10_000);
      assert.notEqual(got, "open", "closed after the bad handshake");
      assert.ok(!new TextDecoder("latin1").decode(got as Uint8Array).includes("HTTP/"));
    } finally {
      raw.close();
    }
    // The fetch and the client trusting CA b refused the certificate (an alert), plain HTTP is
    // no TLS: three failed handshakes; the good one is not counted.
    using client = Deno.createHttpClient({ caCerts: [a.pem] });
    assert.equal(await metricReaches(tls, "otter_tls_handshake_failures_total", 3, client), 3);
  });
});

Deno.test("https: SIGHUP serves a renewed certificate to new connections, open ones go on; bad files keep the old", async () => {
  await withCertificates(async ({ dir, a, b, leafA, leafB }) => {
    const served = { certPath: `${dir}/served.pem`, keyPath: `${dir}/served.key` };
    const install = async (from: { certPath: string; keyPath: string }) => {
      await Deno.copyFile(from.certPath, served.certPath);
      await Deno.copyFile(from.keyPath, served.keyPath);
    };
    await install(leafA);
    await using otter = await startOtter([...LISTEN, ...tlsFlags(served)]);
    const [tls] = otter.https;
    const { port } = hostPort(tls);
    assert.equal(await trusts(tls, a), true);
    assert.equal(await trusts(tls, b), false);

    // A keep-alive connection made under the old certificate.
    await using kept = await RawClient.connectTls(port, [a.pem]);
    const announce = (p: number) =>
      `GET /announce?info_hash=${percent(randomHash())}&peer_id=-OT0001-${p}abcdefg&port=${p}` +
      `&left=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    await within("a TLS request", kept.send(announce(41001)));
    assert.equal((await kept.response()).status, 200);

    // Renewed: same paths, new files (another CA, another serial), then SIGHUP.
    await install(leafB);
    Deno.kill(otter.pid, "SIGHUP");
    await otter.waitForLine(
      new RegExp(
        `^TLS: certificate reloaded from .*served\\.pem \\(serial ${leafB.serial}, valid until `,
      ),
      10_000,
    );
    assert.equal(await trusts(tls, b), true, "a new connection gets the new certificate");
    assert.equal(await trusts(tls, a), false, "and not the old one");
    await within("a TLS request", kept.send(announce(41002)));
    const reply = await kept.response();
    assert.equal(reply.status, 200, "the connection opened before the reload goes on");
    assert.match(new TextDecoder().decode(reply.body), /8:intervali/);

    // A key that is not the certificate's (a renewal copied half-way): the old one stays.
    await Deno.copyFile(leafA.keyPath, served.keyPath);
    Deno.kill(otter.pid, "SIGHUP");
    await otter.waitForLine(
      /^TLS: certificate reload failed, keeping the old one: --tls-key .*served\.key is not the key of the certificate in --tls-cert .*served\.pem$/,
      10_000,
    );
    assert.equal(await trusts(tls, b), true);
    // No certificate in the file at all.
    await Deno.writeTextFile(served.certPath, "not a certificate\n");
    Deno.kill(otter.pid, "SIGHUP");
    await otter.waitForLine(
      /^TLS: certificate reload failed, keeping the old one: --tls-cert .*served\.pem: no PEM certificate in it/,
      10_000,
    );
    assert.equal(await trusts(tls, b), true);
    // The files back as they were: nothing to change.
    await install(leafB);
    Deno.kill(otter.pid, "SIGHUP");
    await otter.waitForLine(
      new RegExp(`^TLS: certificate unchanged \\(serial ${leafB.serial}, `),
      10_000,
    );

    using client = Deno.createHttpClient({ caCerts: [b.pem] });
    const metrics = new TextDecoder().decode((await get(`${tls}/metrics`, client)).bytes);
    assert.equal(metric(metrics, `otter_tls_certificate_reloads_total{result="ok"}`), 2);
    assert.equal(metric(metrics, `otter_tls_certificate_reloads_total{result="failed"}`), 2);
    assert.equal(
      metric(metrics, "otter_tls_certificate_expiry_timestamp_seconds"),
      leafB.notAfterSeconds,
    );
  });
});

Deno.test("https: --tls-cert and --tls-key changed in the config file take effect on SIGHUP", async () => {
  await withCertificates(async ({ dir, a, b, leafA, leafB }) => {
    const config = `${dir}/otter.toml`;
    const toml = (leaf: TestLeaf) =>
      `https = ["127.0.0.1:0"]\ntls-cert = ${JSON.stringify(leaf.certPath)}\n` +
      `tls-key = ${JSON.stringify(leaf.keyPath)}\n`;
    await Deno.writeTextFile(config, toml(leafA));
    await using otter = await startOtter([...LISTEN, "--config", config], {
      expect: { http: 1, udp: 1, https: 1 },
    });
    const [tls] = otter.https;
    assert.equal(await trusts(tls, a), true);
    await Deno.writeTextFile(config, toml(leafB));
    Deno.kill(otter.pid, "SIGHUP");
    await otter.waitForLine(/^config .*otter\.toml: reloaded: tls-cert .* -> .*, tls-key /, 10_000);
    await otter.waitForLine(
      new RegExp(`^TLS: certificate reloaded from .*b1\\.pem \\(serial ${leafB.serial}`),
      10_000,
    );
    assert.equal(await trusts(tls, b), true);
  });
});

const STATS_REQUEST = "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/** `work`, or a rejection naming `what` after 10 s (a TLS write waits for the handshake). */
async function within<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within 10 s`)), 10_000);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TLS connection whose request is answered: the server took it (within its caps). */
async function served(port: number, ca: TestCa): Promise<RawClient> {
  const client = await RawClient.connectTls(port, [ca.pem]);
  try {
    await within("a TLS request", client.send(STATS_REQUEST));
    const reply = await client.response({ timeoutMs: 10_000 });
    assert.equal(reply.status, 200);
    return client;
  } catch (e) {
    client.close();
    throw e;
  }
}

/** A TLS connection that gets no answer: refused at a cap. Deno finishes the handshake in the
 * background before closing, so the refusal shows as a close without a reply. */
async function refused(port: number, ca: TestCa): Promise<void> {
  await using client = await RawClient.connectTls(port, [ca.pem]);
  await within("a refused TLS request", client.send(STATS_REQUEST).catch(() => {}));
  await assert.rejects(client.response({ timeoutMs: 10_000 }), /closed before a response/);
}

Deno.test("https: --header-timeout bounds the TLS handshake; a stalled handshake holds up no one else", async () => {
  await withCertificates(async ({ a, leafA }) => {
    // Four slots for 127.0.0.1, shared by every listener: the stalled two, and one for the
    // connection fetch keeps open after reading /metrics, leave one; once the stalled are cut,
    // three more fit.
    await using otter = await startOtter([
      ...LISTEN,
      ...tlsFlags(leafA),
      "--header-timeout",
      "1",
      "--max-connections-per-ip",
      "4",
    ]);
    const [tls] = otter.https;
    const { port } = hostPort(tls);

    // One opens TCP and never sends a ClientHello; another sends a TLS record header and no more.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await partial.write(new Uint8Array([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]));
      // Meanwhile a real client is answered at once: pending handshakes do not block the accepts.
      (await served(port, a)).close();
      // Both are cut at the header timeout, and their slots come back: three clients at once.
      const timedOut = `otter_http_connections_timed_out_total{reason="header"}`;
      assert.equal(await metricReaches(otter.http[0], timedOut, 2), 2);
      const three = [await served(port, a), await served(port, a), await served(port, a)];
      for (const client of three) client.close();
      const abandoned = "otter_tls_handshakes_abandoned_total";
      assert.equal(await metricReaches(otter.http[0], abandoned, 2), 2);
    } finally {
      silent.close();
      partial.close();
    }
  });
});

Deno.test("https: --max-connections-per-ip counts plain and TLS connections together, --max-connections counts TLS ones", async () => {
  await withCertificates(async ({ a, leafA }) => {
    {
      await using otter = await startOtter([
        ...LISTEN,
        ...tlsFlags(leafA),
        "--max-connections-per-ip",
        "2",
      ]);
      const { port } = hostPort(otter.https[0]);
      // 127.0.0.1's two slots: one plain connection, one TLS connection before its handshake.
      const plainHold = await Deno.connect(hostPort(otter.http[0]));
      const tlsHold = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await new Promise((resolve) => setTimeout(resolve, 200));
        await refused(port, a);
      } finally {
        plainHold.close();
        tlsHold.close();
      }
      const perIp = `otter_http_connections_refused_total{reason="per_ip"}`;
      assert.equal(await metricReaches(otter.http[0], perIp, 1), 1);
      (await served(port, a)).close();
    }
    {
      await using otter = await startOtter([
        ...LISTEN,
        ...tlsFlags(leafA),
        "--max-connections",
        "1",
      ]);
      const { port } = hostPort(otter.https[0]);
      const hold = await served(port, a);
      try {
        await refused(port, a);
      } finally {
        hold.close();
      }
      // Each listener has its own --max-connections: read the count over plain HTTP.
      const full = `otter_http_connections_refused_total{reason="max_connections"}`;
      assert.equal(await metricReaches(otter.http[0], full, 1), 1);
    }
  });
});

Deno.test("https: a WebSocket upgrade request over TLS gets the same answer as over plain HTTP", async () => {
  await withCertificates(async ({ a, leafA }) => {
    await using otter = await startOtter([...LISTEN, ...tlsFlags(leafA)]);
    for (const path of ["/announce", "/"]) {
      const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\nOrigin: https://example.org\r\n\r\n";
      await using plain = await RawClient.connect(hostPort(otter.http[0]).port);
      await using tls = await RawClient.connectTls(hostPort(otter.https[0]).port, [a.pem]);
      await plain.send(request);
      await within("a TLS request", tls.send(request));
      const overPlain = await plain.response();
      const overTls = await tls.response();
      assert.equal(overTls.status, overPlain.status, path);
      assert.deepEqual(overTls.body, overPlain.body, path);
      assert.equal(overTls.headers.get("content-type"), overPlain.headers.get("content-type"));
      // The same, also once WebSocket upgrades are answered (101 and its headers).
      for (const name of ["connection", "upgrade", "sec-websocket-accept"]) {
        assert.equal(overTls.headers.get(name), overPlain.headers.get(name), `${path}: ${name}`);
      }
    }
  });
});

Deno.test("https: the start refuses missing flags (exit 2), unusable files and a port in use (exit 1), in one line", async () => {
  await withCertificates(async ({ dir, leafA, leafB }) => {
    const run = (args: string[]) => runOtter([...LISTEN, ...args]);
    const oneLine = (stderr: string) => {
      assert.equal(stderr.split("\n").filter((l) => l !== "").length, 1, stderr);
      return stderr.trim();
    };

    let r = await run(["--https", "127.0.0.1:0"]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      oneLine(r.stderr),
      "otter: --https needs --tls-cert FILE and --tls-key FILE (PEM) (see --help)",
    );
    r = await run(["--tls-cert", leafA.certPath, "--tls-key", leafA.keyPath]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /--tls-cert and --tls-key are used only with --https/);

    r = await run(tlsFlags({ certPath: `${dir}/missing.pem`, keyPath: leafA.keyPath }));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(oneLine(r.stderr), `otter: --tls-cert ${dir}/missing.pem: file not found`);
    r = await run(tlsFlags({ certPath: leafA.keyPath, keyPath: leafA.keyPath }));
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      oneLine(r.stderr),
      /--tls-cert .*a1\.key: no PEM certificate in it .* is it the --tls-key file\?$/,
    );
    r = await run(tlsFlags({ certPath: leafA.certPath, keyPath: leafA.certPath }));
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(r.stderr), /--tls-key .*a1\.pem: no PEM private key in it/);
    r = await run(tlsFlags({ certPath: leafA.certPath, keyPath: leafB.keyPath }));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      oneLine(r.stderr),
      `otter: --tls-key ${leafB.keyPath} is not the key of the certificate in --tls-cert ${leafA.certPath}`,
    );

    // Another otter serving --https on the port: SO_REUSEPORT (for reloads) must not let a second
    // one share it.
    await using first = await startOtter([...LISTEN, ...tlsFlags(leafA)]);
    const taken = `127.0.0.1:${hostPort(first.https[0]).port}`;
    r = await run(tlsFlags(leafA, taken));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      oneLine(r.stderr),
      `otter: cannot listen on HTTPS ${taken}: address already in use`,
    );
  });
});
