/**
 * otter processes in a cluster for tests: one UDP client per instance, the flags of a loopback
 * cluster node, a secret file, polling until a condition holds, reading /metrics.
 */
import assert from "node:assert/strict";
import type { OtterProcess } from "./otterProcess.ts";
import { announcePacket, readU32, scrapePacket, UdpTestClient } from "./udpClient.ts";

export function hash(seed: number): Uint8Array {
  return new Uint8Array(20).map((_, i) => (seed * 29 + i * 5 + 3) & 0xff);
}

/** One UDP client per instance, connected. */
export class Node {
  readonly client: UdpTestClient;
  id: Uint8Array = new Uint8Array(8);
  constructor(readonly otter: OtterProcess) {
    this.client = new UdpTestClient("127.0.0.1", otter.udp[0].port);
  }
  async connect(): Promise<void> {
    this.id = await this.client.connect();
  }
  async announce(infoHash: Uint8Array, port: number, event = 0, left = 100): Promise<Uint8Array> {
    const reply = await this.client.request(
      announcePacket({ connectionId: this.id, infoHash, port, event, left, transactionId: port }),
    );
    assert.ok(reply, "announce reply");
    assert.equal(readU32(reply, 0), 1, "an announce reply, not an error");
    return reply;
  }
  async scrape(infoHash: Uint8Array): Promise<number[]> {
    const reply = await this.client.request(scrapePacket(this.id, [infoHash]));
    assert.ok(reply);
    assert.equal(readU32(reply, 0), 2);
    return [readU32(reply, 8), readU32(reply, 12), readU32(reply, 16)];
  }
}

export async function eventually<T>(
  what: string,
  ms: number,
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
) {
  const deadline = performance.now() + ms;
  let last: T;
  do {
    last = await probe();
    if (ok(last)) return performance.now();
    await new Promise((r) => setTimeout(r, 50));
  } while (performance.now() < deadline);
  throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
}

/** A cluster secret file, mode 0600, removed when the test process ends. */
export async function secretFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "otter-secret-" });
  await Deno.writeTextFile(path, text + "\n");
  await Deno.chmod(path, 0o600);
  addEventListener("unload", () => Deno.removeSync(path));
  return path;
}

/** An otter's flags for a loopback cluster node; `extra` appended. */
export function clusterArgs(
  url: string,
  cluster: string,
  name: string,
  secret: string,
  extra: string[] = [],
): string[] {
  return [
    "--http",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--cluster",
    url,
    "--cluster-name",
    cluster,
    "--node-id",
    name,
    "--cluster-secret-file",
    secret,
    ...extra,
  ];
}

/** One line of /metrics as a number (the first sample of `name`), NaN if absent. */
export async function metric(node: Node, name: string): Promise<number> {
  const text = await (await fetch(`${node.otter.http[0]}/metrics`)).text();
  const match = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m"));
  return match === null ? NaN : Number(match[1]);
}
