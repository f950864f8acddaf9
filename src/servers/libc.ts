/**
 * The whole FFI surface of otter: the few glibc functions the UDP fast path needs, and the Linux
 * constants that go with them.
 *
 * Everything here is for Linux on x86_64 or aarch64 (LP64, little-endian), where the socket
 * constants and errno values below are the asm-generic ones. `libcSupport()` checks that before
 * anything is opened; nothing is loaded at import time, so importing this module without
 * `--allow-ffi` is harmless.
 *
 * `poll` is the only `nonblocking` symbol: it runs on a pool thread, so its errno is lost, and the
 * caller must treat its failure as harmless. `pollBlocking` is the same libc function called
 * synchronously, for Workers whose thread does nothing else. Every other call is synchronous, and its errno is read
 * with `lastErrno()` right after it fails, before any other call can overwrite it.
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_RCVBUFFORCE = 33;
export const SO_ATTACH_REUSEPORT_CBPF = 51;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 1;

export const EINTR = 4;
export const EAGAIN = 11;
export const EACCES = 13;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "pointer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "pointer", "pointer"], result: "i32" },
  bind: { parameters: ["i32", "pointer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "pointer", "pointer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "pointer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "pointer", "u32", "i32"], result: "i32" },
  poll: { parameters: ["pointer", "u64", "i32"], result: "i32", nonblocking: true },
  // The same call, blocking the calling thread: only for dedicated I/O Workers (udpIoWorker.ts).
  pollBlocking: { name: "poll", parameters: ["pointer", "u64", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  // Only glibc has it: opening fails on a libc.so.6 that is something else.
  gnu_get_libc_version: { parameters: [], result: "pointer" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

/** Why libc cannot be used here, or undefined when it can (the library is then open). Never throws. */
export function libcSupport(): string | undefined {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `unsupported architecture ${Deno.build.arch}`;
  }
  let state: string;
  try {
    state = Deno.permissions.querySync({ name: "ffi" }).state;
  } catch (error) {
    return `cannot query the ffi permission: ${error instanceof Error ? error.message : error}`;
  }
  if (state !== "granted") return `ffi permission not granted (--allow-ffi; state ${state})`;
  if (library !== undefined) return undefined;
  try {
    const opened = Deno.dlopen("libc.so.6", SYMBOLS);
    const errnoPointer = opened.symbols.__errno_location();
    if (errnoPointer === null) {
      opened.close();
      return "__errno_location() returned NULL";
    }
    errnoView = new Deno.UnsafePointerView(errnoPointer);
    library = opened;
  } catch (error) {
    return `cannot open glibc libc.so.6: ${error instanceof Error ? error.message : error}`;
  }
  return undefined;
}

/** The libc functions; throws when `libcSupport()` gives a reason. */
export function libc(): Libc {
  const reason = libcSupport();
  if (reason !== undefined) throw new Error(`libc unavailable: ${reason}`);
  return library!.symbols;
}

/** The calling thread's errno. Call it right after a synchronous call returned -1. */
export function lastErrno(): number {
  return errnoView === undefined ? 0 : errnoView.getInt32(0);
}

/** The C library's text for an errno value, e.g. "Address already in use". */
export function errnoText(code: number): string {
  const pointer = libc().strerror(code);
  return pointer === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(pointer);
}
