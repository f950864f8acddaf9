/**
 * What otter's HTTP and WebSocket servers use of a connection: the part of `Deno.TcpConn` (and
 * `Deno.TlsConn`) that both the Deno sockets and the TCP fast path (tcpFastConn.ts) implement.
 * `read` resolves to the bytes read or null at the end; `write` may take fewer bytes than it was
 * given; errors are Deno's (`Deno.errors.ConnectionReset`, `BrokenPipe`, …).
 */
export interface StreamConn {
  readonly remoteAddr: Deno.NetAddr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  /** The fast path's (tcpFastConn.ts): calls back once the socket may be read, holding no
   *  buffer and no promise meanwhile; with an error if it is closed first. */
  onReadable?(callback: (error?: unknown) => void): void;
  /** The fast path's: reads what is there now: bytes, null at the end, 0 when none are. */
  readNow?(p: Uint8Array): number | null;
}

/** A connection on which Nagle's algorithm can be turned off (plain TCP; not TLS). */
export interface NoDelayConn extends StreamConn {
  setNoDelay(noDelay?: boolean): void;
}
