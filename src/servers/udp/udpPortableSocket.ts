/**
 * The portable UDP path: Deno.listenDatagram with one reused receive buffer (without it every
 * receive allocates 64 KiB) and one reused reply buffer. Used where the FFI fast path is not
 * available (not Linux/glibc, no --allow-ffi) or when `--udp-io portable` asks for it.
 */
import { firstHandlerErrorLine, udpListenerUrl } from "./udpFastSocket.ts";
import { type DatagramHandler } from "./udpBatchArena.ts";
import { parseIpAddress } from "../../protocol/ipAddress.ts";
import {
  errorText,
  type UdpListenerFailures,
  type UdpSocketFailures,
} from "../../observe/udpSocketFailures.ts";

const RECEIVE_CAPACITY = 2048;
const REPLY_CAPACITY = 4096;

export class PortableUdpSocket implements UdpListenerFailures {
  readonly counters = {
    received: 0,
    sent: 0,
    sendDropped: 0,
    truncated: 0,
    handlerErrors: 0,
    receiveErrors: 0,
  };
  /** "udp://host:port", for logs and metrics. */
  readonly listener: string;
  readonly io = "portable";
  /** The last error a handler threw, for diagnosis. */
  lastHandlerError: unknown = undefined;
  readonly #conn: Deno.DatagramConn;
  readonly #log: (line: string) => void;
  #closed = false;

  private constructor(conn: Deno.DatagramConn, log: (line: string) => void) {
    this.#conn = conn;
    this.#log = log;
    this.listener = udpListenerUrl(this.hostname, this.port);
  }

  /** `log` gets the first handler error, one line (default console.error). */
  static open(
    hostname: string,
    port: number,
    log = (line: string) => console.error(line),
  ): PortableUdpSocket {
    return new PortableUdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port }), log);
  }

  failures(): UdpSocketFailures {
    return this.counters;
  }

  lastHandlerErrorText(): string | null {
    return errorText(this.lastHandlerError);
  }

  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  get hostname(): string {
    return (this.#conn.addr as Deno.NetAddr).hostname;
  }

  async serve(handler: DatagramHandler): Promise<void> {
    // One byte more than we accept, so an oversized datagram shows up as a full buffer.
    const receiveBuffer = new Uint8Array(RECEIVE_CAPACITY + 1);
    const reply = new Uint8Array(REPLY_CAPACITY);
    const address = new Uint8Array(16);
    while (!this.#closed) {
      let packet: Uint8Array;
      let from: Deno.Addr;
      try {
        [packet, from] = await this.#conn.receive(receiveBuffer);
      } catch (e) {
        if (this.#closed) break;
        // Transient receive errors (ICMP port unreachable reported on the socket) must not stop serving.
        if (e instanceof Deno.errors.BadResource) break;
        this.counters.receiveErrors++;
        continue;
      }
      this.counters.received++;
      if (packet.length > RECEIVE_CAPACITY) {
        this.counters.truncated++;
        continue;
      }
      const netAddr = from as Deno.NetAddr;
      const family = parseIpAddress(netAddr.hostname, address);
      if (family === 0) continue;
      let length = 0;
      try {
        length = handler.handle(
          receiveBuffer,
          packet.length,
          family,
          address,
          0,
          netAddr.port,
          reply,
        );
      } catch (e) {
        this.lastHandlerError = e;
        if (++this.counters.handlerErrors === 1) this.#log(firstHandlerErrorLine(this.listener, e));
        continue;
      }
      if (length <= 0) continue;
      try {
        await this.#conn.send(reply.subarray(0, length), from);
        this.counters.sent++;
      } catch {
        this.counters.sendDropped++;
      }
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }
    return Promise.resolve();
  }
}
