/**
 * Wires a configuration into running listeners: one SwarmTable and Tracker shared by every HTTP
 * and UDP listener, the WebSocket (WebTorrent) server the HTTP listeners hand upgrades to, the
 * UDP I/O path chosen per `--udp-io`, and a timer that expires peers in small steps. Returns a
 * handle that stops everything.
 */
import type { Config, ListenAddress } from "../config/options.ts";
import type { Clock } from "../config/clock.ts";
import { formatHostPort } from "../protocol/ipAddress.ts";
import { randomKey } from "../hash/halfSipHash.ts";
import { ConnectionIds } from "../protocol/connectionId.ts";
import { CLEAN_INTERVAL_MS, SwarmTable } from "../store/swarmTable.ts";
import type { UdpListenerFailures } from "../observe/udpSocketFailures.ts";
import { ForbiddenSwarmPurge } from "../policy/accessPurge.ts";
import { randomNodeId } from "../cluster/clusterOptions.ts";
import { readClusterSecret } from "../cluster/clusterSecret.ts";
import { newClusterCounters } from "../cluster/clusterCounters.ts";
import { Tracker } from "./tracker.ts";
import { UdpTracker } from "./udp/udpTracker.ts";
import { HttpTracker } from "./http/httpTracker.ts";
import { type HttpLimits, HttpWireServer } from "./http/httpWire.ts";
import { type Certificate, describeCertificate, readCertificate } from "./http/tlsCertificates.ts";
import { CertificateRefused, ReloadableTlsListener } from "./http/tlsListener.ts";
import { registerOperatorRoutes } from "./http/operatorRoutes.ts";
import { FastUdpSocket, fastUdpSupport } from "./udp/udpFastSocket.ts";
import { fastTcpSupport } from "./tcp/tcpFastListener.ts";
import { REPLY_CAPACITY } from "./udp/udpBatchArena.ts";
import { releaseFreedMalloc } from "../os/libc.ts";
import type { UdpWorkerPool } from "./udp/udpWorkerPool.ts";
import type { WsLimits } from "./ws/wsServer.ts";
import { DEFAULT_MAX_QUEUED_BYTES, LazyWsServer } from "./ws/lazyWsServer.ts";
import { WsPeerKeys } from "../cluster/wsPeerKeys.ts";

/** The clean timer's period while the store is empty. */
const IDLE_CLEAN_INTERVAL_MS = 1000;
/** How often malloc's free pages are given back (with glibc open for the fast path): a call
 *  costs 10-60 µs. */
const MALLOC_TRIM_INTERVAL_MS = 2000;

export interface RunningTracker {
  tracker: Tracker;
  /** SIGHUP: puts the certificate now in `settings`' files in service on every `--https`
   * listener, or keeps the old one; resolves to the log line once the old sockets are closed, or
   * to null without `--https`. */
  reloadCertificate(settings: Config): Promise<string | null>;
  stop(): Promise<void>;
}

interface UdpListener extends UdpListenerFailures {
  serve(handler: UdpTracker): Promise<void>;
  close(): Promise<void>;
  readonly port: number;
}

function describeError(e: unknown): string {
  if (e instanceof Deno.errors.AddrInUse) return "address already in use";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available";
  return e instanceof Error ? e.message : String(e);
}

/** `::` needs IPv6; on a host without it, fall back to IPv4 only, once, and say so. */
function isNoIpv6(e: unknown): boolean {
  const text = e instanceof Error ? e.message : String(e);
  return /family not supported|EAFNOSUPPORT|os error 97/i.test(text);
}

export async function startTracker(
  config: Config,
  clock: Clock,
  log: (line: string) => void,
): Promise<RunningTracker> {
  // Checked before anything starts: a cluster without its secret fails at once, with one line.
  const clusterSecret = config.cluster === "" ? null : await loadClusterSecret(config, log);
  let certificate = config.https.length === 0 ? null : loadCertificate(config);
  clock.update();
  clock.start();
  const store = new SwarmTable({
    peerTimeout: config.peerTimeout,
    wsPeerTimeout: config.wsPeerTimeout,
    maxTorrents: config.maxTorrents,
    maxPeers: config.maxPeers,
    whenFull: config.whenFull,
  });
  const tracker = new Tracker(store, clock, config);
  // Before the first sample: the history then counts every change the cluster join applies.
  if (config.cluster !== "") tracker.cluster = newClusterCounters();
  const udpTracker = new UdpTracker(tracker, new ConnectionIds(randomKey()), REPLY_CAPACITY);
  const httpTracker = new HttpTracker(tracker);
  const operator = registerOperatorRoutes(httpTracker, tracker, config);
  operator.loopLag.start();
  const wsLimits = (settings: Config): WsLimits => ({
    maxConnections: settings.maxWsConnections,
    interval: settings.wsInterval,
    messageTimeoutMs: settings.headerTimeout * 1000,
    maxQueuedBytes: DEFAULT_MAX_QUEUED_BYTES,
  });
  // The keys WebSocket peers are published under, shared by the tracker and the cluster's snapshots.
  const wsKeys = new WsPeerKeys();
  // WebSocket upgrades on the HTTP listeners (ws://host:port/announce), plain or TLS alike; the
  // server's code loads at the first upgrade (lazyWsServer.ts).
  const webSocket = config.noWebSocket || config.http.length === 0
    ? null
    : new LazyWsServer(tracker, wsLimits(config), httpTracker.connectionsPerAddress, log, wsKeys);
  if (webSocket !== null) {
    httpTracker.upgrades = webSocket;
    operator.ws = webSocket.counters;
    tracker.websocket = webSocket.counters;
    tracker.onSettings((settings) => webSocket.setLimits(wsLimits(settings)));
  }
  // Sampled once a second from the start, so the page has history from the first minute.
  operator.dashboard?.history.start();

  // What most trackers never use is imported only when configured (the access-list file, the
  // state file, the portable path, the I/O Workers, the cluster): an idle otter does not pay
  // for their code (docs/performance.md → Idle RSS).
  const accessListPath = config.whitelist !== "" ? config.whitelist : config.blacklist;
  const accessWatch = accessListPath === "" ? null : await (
    await import("../policy/accessListFile.ts")
  ).watchAccessList(accessListPath, tracker.access, log);
  // A reload that forbids torrents drops their swarms, in slices (the servers already refuse and
  // hide them from the moment the new list is in force).
  const purge = new ForbiddenSwarmPurge(store, tracker.access, (done) => {
    if (done.torrents === 0) return;
    log(
      `access list ${accessListPath}: dropped ${done.torrents} torrents (${done.peers} peers) ` +
        `it now forbids, in ${Math.round(done.ms)} ms (${done.slices} slices, longest ` +
        `${done.maxSliceMs.toFixed(1)} ms)`,
    );
  });
  tracker.access.onSwap(() => purge.purge());
  // Restored before any listener opens, so the first reply already sees the old swarms.
  const state = config.state === "" ? null : await (
    await import("../persist/stateFile.ts")
  ).StateFile.open(config.state, store, clock, {
    every: config.stateEvery,
    peerTimeout: config.peerTimeout,
    log,
    access: tracker.access,
  });
  if (state !== null) tracker.onSettings((settings) => state.setEvery(settings.stateEvery));
  if (store.restoreSkipped > 0) {
    log(
      `state ${config.state}: ${store.restoreSkipped} peers and peerless torrents not restored: ` +
        `over --max-torrents ${config.maxTorrents} / --max-peers ${config.maxPeers}`,
    );
  }
  const servers: HttpWireServer[] = [];
  const tlsListeners: ReloadableTlsListener[] = [];
  const udpSockets: UdpListener[] = [];
  const loops: Promise<void>[] = [];
  let cluster: { stop(): Promise<void> } | null = null;
  // Expiry paced by time (a pass a minute); an empty store is looked at once a second.
  let cleanedAt = performance.now();
  let cleaner: ReturnType<typeof setTimeout> | undefined;
  const clean = () => {
    const started = performance.now();
    store.cleanFor(clock.now, started - cleanedAt);
    cleanedAt = started;
    operator.cleaning.add(performance.now() - started);
    cleaner = setTimeout(clean, store.idle ? IDLE_CLEAN_INTERVAL_MS : CLEAN_INTERVAL_MS);
  };
  cleaner = setTimeout(clean, CLEAN_INTERVAL_MS);
  // glibc keeps what V8's compiler threads freed (megabytes after the hot path is compiled).
  const trimmer = setInterval(releaseFreedMalloc, MALLOC_TRIM_INTERVAL_MS);
  Deno.unrefTimer(trimmer);

  const stop = async () => {
    clearTimeout(cleaner);
    clearInterval(trimmer);
    clock.stop();
    operator.loopLag.stop();
    operator.dashboard?.history.stop();
    accessWatch?.close();
    purge.stop();
    await Promise.all([
      ...servers.map((s) => s.shutdown().catch(() => {})),
      webSocket?.shutdown(),
    ]);
    // The TCP fast path's poll loops end with their last connection (upgraded ones included).
    await Promise.all(servers.map((s) => s.drained));
    await Promise.all(udpSockets.map((s) => s.close()));
    await Promise.allSettled(loops);
    await cluster?.stop();
    await state?.close();
  };

  // From here a failed start (Redis unusable, no fast path with --udp-io fast, a port in use)
  // leaves the state file as it was and stops everything started so far.
  try {
    // Joined before any listener opens, so a (re)started node serves the cluster's swarms at
    // once. Redis is never on the announce path: the servers only record changes into a ring
    // buffer. The Redis client (and the Node compatibility layer under it) is loaded only with
    // --cluster: importing it costs about 25 MB of RSS, more than half of an idle otter.
    if (config.cluster !== "") {
      const { ClusterSync } = await import("../cluster/redisCluster.ts");
      const { epochLeavesSlack, refreshEpochSeconds } = await import(
        "../cluster/publishRule.ts"
      );
      const epochOf = (settings: Config) =>
        settings.clusterRefresh > 0
          ? settings.clusterRefresh
          : refreshEpochSeconds(settings.peerTimeout, settings.interval);
      const sync = new ClusterSync({
        refreshEpochSeconds: epochOf(config),
        url: config.cluster,
        name: config.clusterName,
        nodeId: config.nodeId !== "" ? config.nodeId : randomNodeId(),
        peerTimeout: config.peerTimeout,
        secret: clusterSecret,
        store,
        clock,
        log,
        access: tracker.access,
        counters: tracker.cluster ?? undefined,
        snapshots: { minIntervalMs: config.clusterSnapshotInterval * 1000 },
        wsKeys,
        wsPeerTimeout: config.wsPeerTimeout,
        relaySignals: webSocket !== null,
      });
      // WebTorrent across nodes: offers for other nodes' WebSocket peers go through Redis.
      const relay = sync.relay;
      if (relay !== null && webSocket !== null) {
        // Loaded now: signals from other nodes may come before any local upgrade.
        (await webSocket.load()).tracker.relayThrough(relay);
        store.wsOffersAcrossNodes = true;
      }
      await sync.start();
      tracker.changes = sync.changes;
      // A changed epoch only moves epoch boundaries: nothing to redo.
      let slackNoted = false;
      const noteEpoch = (settings: Config) => {
        const epoch = epochOf(settings);
        sync.changes.epochSeconds = epoch;
        // WebSocket peers announce and expire on their own clock; --cluster-refresh caps theirs too.
        const wsEpoch = refreshEpochSeconds(settings.wsPeerTimeout, settings.wsInterval);
        sync.changes.wsEpochSeconds = Math.min(epoch, wsEpoch);
        if (slackNoted || epochLeavesSlack(settings.peerTimeout, settings.interval, epoch)) return;
        slackNoted = true;
        log(
          `cluster: --peer-timeout ${settings.peerTimeout} is under --interval ${settings.interval}` +
            ` + 10% + the refresh epoch (${epoch} s): a peer that announces only every interval ` +
            "may lapse on the nodes it did not announce to",
        );
      };
      noteEpoch(config);
      tracker.onSettings(noteEpoch);
      cluster = sync;
    }

    const support = fastUdpSupport();
    if (config.udpIo === "fast" && !support.ok) {
      throw new Error(`--udp-io fast is not available here: ${support.reason}`);
    }
    const useFast = config.udpIo !== "portable" && support.ok;
    if (config.udpIo === "auto" && !support.ok && config.udp.length > 0) {
      log(`UDP fast path unavailable (${support.reason}); using the portable path`);
    }
    // Only the fast path has I/O Workers (udpWorkerPool.ts); the store stays on this isolate.
    const workers = config.workers === 0 ? navigator.hardwareConcurrency : config.workers;
    if (!useFast && workers > 1 && config.udp.length > 0) {
      log(`--workers ${config.workers}: only the UDP fast path has workers; using one thread`);
    }

    const tcpSupport = fastTcpSupport();
    if (config.tcpIo === "fast" && !tcpSupport.ok) {
      throw new Error(`--tcp-io fast is not available here: ${tcpSupport.reason}`);
    }
    if (config.tcpIo === "auto" && !tcpSupport.ok && config.http.length > 0) {
      log(`TCP fast path unavailable (${tcpSupport.reason}); --http uses the portable path`);
    }
    for (const address of config.http) {
      const server = listenHttp(address, httpTracker, config, log);
      servers.push(server);
      operator.dashboard?.listeners.push(
        `http://${formatHostPort(server.addr.hostname, server.addr.port)}/announce`,
      );
    }
    for (const address of config.https) {
      const { server, listener } = listenHttps(address, httpTracker, config, certificate!, log);
      servers.push(server);
      tlsListeners.push(listener);
      operator.dashboard?.listeners.push(
        `https://${formatHostPort(server.addr.hostname, server.addr.port)}/announce`,
      );
    }
    const tls = httpTracker.serverCounters.tls;
    tls.listeners = tlsListeners.length;
    tls.certificateNotAfter = notAfterSeconds(certificate);
    const io: UdpIo = config.udp.length === 0 || (useFast && workers <= 1)
      ? { kind: "fast", lingerUs: config.udpLingerUs }
      : !useFast
      ? { kind: "portable", module: await import("./udp/udpPortableSocket.ts") }
      : { kind: "workers", workers, module: await import("./udp/udpWorkerPool.ts") };
    const pools: UdpWorkerPool[] = [];
    for (const address of config.udp) {
      const socket = openUdp(address, io, log);
      if (io.kind === "workers") pools.push(socket as UdpWorkerPool);
      udpSockets.push(socket);
      operator.udpListeners.push(socket);
      operator.dashboard?.listeners.push(`${socket.listener}/announce (io: ${socket.io})`);
      loops.push(socket.serve(udpTracker));
    }
    if (io.kind === "workers") addWorkerMetrics(httpTracker, pools, io.module.renderWorkerMetrics);
    // Datagrams wait in the sockets meanwhile; a worker that cannot start fails the start.
    await Promise.all(pools.map((pool) => pool.ready));
  } catch (e) {
    state?.abandon();
    await stop();
    throw e;
  }
  const reloadCertificate = async (settings: Config): Promise<string | null> => {
    if (tlsListeners.length === 0 || certificate === null) return null;
    const tls = httpTracker.serverCounters.tls;
    const next = readCertificate(settings.tlsCert, settings.tlsKey);
    if ("error" in next) {
      tls.reloadFailures++;
      return `TLS: certificate reload failed, keeping the old one: ${next.error}`;
    }
    const facts = describeCertificate(next, Date.now());
    if (next.cert === certificate.cert && next.key === certificate.key) {
      tls.reloads++;
      return `TLS: certificate unchanged (${facts})`;
    }
    // The same certificate for every listener: a refusal comes at the first, before any changed.
    const closed: Promise<void>[] = [];
    for (const listener of tlsListeners) {
      try {
        closed.push(listener.replace(next));
      } catch (e) {
        const replaced = closed.length;
        tls.reloadFailures++;
        const at = formatHostPort(listener.addr.hostname, listener.addr.port);
        const why = e instanceof CertificateRefused ? e.message : `${at}: ${describeError(e)}`;
        return replaced === 0
          ? `TLS: certificate reload failed, keeping the old one: ${why}`
          : `TLS: certificate reloaded on ${replaced} of ${tlsListeners.length} listeners; ` +
            `the others keep the old one: ${why}`;
      }
    }
    certificate = next;
    tls.reloads++;
    tls.certificateNotAfter = notAfterSeconds(next);
    // Said once the old sockets are closed: any connection made after this line gets the new one.
    await Promise.all(closed);
    return `TLS: certificate reloaded from ${next.certPath} (${facts})`;
  };
  return { tracker, reloadCertificate, stop };
}

/** The `--https` certificate, checked before anything starts; throws a one-line Error. */
function loadCertificate(config: Config): Certificate {
  const certificate = readCertificate(config.tlsCert, config.tlsKey);
  if ("error" in certificate) throw new Error(certificate.error);
  return certificate;
}

function notAfterSeconds(certificate: Certificate | null): number {
  const ms = certificate?.notAfterMs ?? NaN;
  return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
}

/**
 * The cluster secret's bytes, or null with `--cluster-insecure` (said in one log line); throws
 * a one-line Error when there is neither, or the file is unusable.
 */
async function loadClusterSecret(
  config: Config,
  log: (line: string) => void,
): Promise<Uint8Array | null> {
  if (config.clusterInsecure) {
    log(
      "cluster: --cluster-insecure: batches are not authenticated; anyone who can write to the " +
        "Redis stream can add peers to every node",
    );
    return null;
  }
  if (config.clusterSecretFile === "") {
    throw new Error(
      "--cluster needs --cluster-secret-file FILE (the same secret of 16 bytes or more on " +
        "every node), or --cluster-insecure to run without authentication",
    );
  }
  const secret = await readClusterSecret(config.clusterSecretFile);
  if ("error" in secret) throw new Error(secret.error);
  if (secret.warning !== null) log(secret.warning);
  return secret.key;
}

function withIpv4Fallback<T>(
  address: ListenAddress,
  open: (hostname: string) => T,
  what: string,
  log: (line: string) => void,
): T {
  try {
    return open(address.hostname);
  } catch (e) {
    if (e instanceof CertificateRefused) throw e;
    if (address.hostname === "::" && isNoIpv6(e)) {
      log(`${what}: IPv6 is not available here; listening on 0.0.0.0 instead of [::]`);
      try {
        return open("0.0.0.0");
      } catch (e2) {
        throw new Error(
          `cannot listen on ${what} 0.0.0.0:${address.port}: ${describeError(e2)}`,
        );
      }
    }
    throw new Error(
      `cannot listen on ${what} ${formatHostPort(address.hostname, address.port)}: ${
        describeError(e)
      }`,
    );
  }
}

function listenHttp(
  address: ListenAddress,
  handler: HttpTracker,
  config: Config,
  log: (line: string) => void,
): HttpWireServer {
  return withIpv4Fallback(
    address,
    (hostname) => {
      // otter's own HTTP/1.1 server, not Deno.serve: only it can bound connections and time out
      // slow or idle clients (httpWire.ts; measured in docs/design-notes.md).
      const server = HttpWireServer.listen(
        hostname,
        address.port,
        handler,
        httpLimits(config),
        config.tcpIo,
      );
      log(
        `HTTP listening on http://${
          formatHostPort(server.addr.hostname, server.addr.port)
        }/announce`,
      );
      return server;
    },
    "HTTP",
    log,
  );
}

function listenHttps(
  address: ListenAddress,
  handler: HttpTracker,
  config: Config,
  certificate: Certificate,
  log: (line: string) => void,
): { server: HttpWireServer; listener: ReloadableTlsListener } {
  return withIpv4Fallback(
    address,
    (hostname) => {
      const tls = handler.serverCounters.tls;
      const listener = ReloadableTlsListener.open(hostname, address.port, certificate, tls);
      // The same server as --http's over it: same limits, same request handling.
      const server = HttpWireServer.serve(listener, handler, httpLimits(config));
      const facts = describeCertificate(certificate, Date.now());
      log(
        `HTTPS listening on https://${
          formatHostPort(server.addr.hostname, server.addr.port)
        }/announce (certificate ${facts === "" ? config.tlsCert : facts})`,
      );
      return { server, listener };
    },
    "HTTPS",
    log,
  );
}

function httpLimits(config: Config): HttpLimits {
  return {
    maxConnections: config.maxConnections,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    headerTimeoutMs: config.headerTimeout * 1000,
    idleTimeoutMs: config.idleTimeout * 1000,
    minSendRate: config.minSendRate,
  };
}

/** How UDP is served: the fast path on this thread, or a path whose module was loaded for it. */
type UdpIo =
  | { kind: "fast"; lingerUs: number }
  | { kind: "portable"; module: typeof import("./udp/udpPortableSocket.ts") }
  | { kind: "workers"; workers: number; module: typeof import("./udp/udpWorkerPool.ts") };

function openUdp(address: ListenAddress, io: UdpIo, log: (line: string) => void): UdpListener {
  return withIpv4Fallback(
    address,
    (hostname) => {
      const socket = io.kind === "portable"
        ? io.module.PortableUdpSocket.open(hostname, address.port, log)
        : io.kind === "workers"
        ? io.module.UdpWorkerPool.open(hostname, address.port, io.workers, { log })
        : FastUdpSocket.open(hostname, address.port, { log, lingerUs: io.lingerUs });
      log(
        `UDP listening on udp://${formatHostPort(hostname, socket.port)}/announce (io: ${
          io.kind === "portable" ? "portable" : "fast"
        }${io.kind === "workers" ? `, workers: ${io.workers}` : ""})`,
      );
      return socket;
    },
    "UDP",
    log,
  );
}

/** Appends the pools' Worker metrics to the `/metrics` route `http` already has. */
function addWorkerMetrics(
  http: HttpTracker,
  pools: readonly UdpWorkerPool[],
  renderWorkerMetrics: (pools: readonly UdpWorkerPool[]) => string,
): void {
  const metrics = http.routes.get("/metrics");
  if (metrics === undefined || pools.length === 0) return;
  http.routes.set("/metrics", async (request, info, query) => {
    const response = await metrics(request, info, query);
    if (response.status !== 200) return response;
    const body = (await response.text()) + renderWorkerMetrics(pools);
    return new Response(body, { status: 200, headers: response.headers });
  });
}
