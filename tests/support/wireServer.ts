/**
 * otter's own HTTP server (src/servers/http/httpWire.ts) in the test process, on 127.0.0.1 and a free
 * port, over a fresh tracker built from command-line flags; disposing of it shuts it down.
 */
import { parseCommandLine } from "../../src/config/config.ts";
import { Clock } from "../../src/config/clock.ts";
import { SwarmTable } from "../../src/store/swarmTable.ts";
import { Tracker } from "../../src/servers/tracker.ts";
import { HttpTracker } from "../../src/servers/http/httpTracker.ts";
import { type HttpLimits, HttpWireServer } from "../../src/servers/http/httpWire.ts";
import { RawClient } from "./rawHttp.ts";

export interface Wire extends AsyncDisposable {
  server: HttpWireServer;
  http: HttpTracker;
  port: number;
  connect(): Promise<RawClient>;
}

/** An HttpWireServer on 127.0.0.1, a free port, over a fresh tracker built from `flags`. */
export function startWire(flags: string[] = [], limits: Partial<HttpLimits> = {}): Wire {
  const parsed = parseCommandLine(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", ...flags]);
  if (parsed.kind !== "run") throw new Error("flags do not run");
  const config = parsed.config;
  const clock = new Clock();
  clock.update();
  const tracker = new Tracker(new SwarmTable({ peerTimeout: config.peerTimeout }), clock, config);
  const http = new HttpTracker(tracker);
  const server = HttpWireServer.listen("127.0.0.1", 0, http, {
    maxConnections: limits.maxConnections ?? 100,
    maxConnectionsPerIp: limits.maxConnectionsPerIp ?? 0,
    headerTimeoutMs: limits.headerTimeoutMs ?? 10_000,
    idleTimeoutMs: limits.idleTimeoutMs ?? 30_000,
    minSendRate: limits.minSendRate ?? 65536,
  }, config.tcpIo);
  const port = server.addr.port;
  return {
    server,
    http,
    port,
    connect: () => RawClient.connect(port),
    [Symbol.asyncDispose]: async () => {
      await server.shutdown();
      await server.drained;
    },
  };
}
