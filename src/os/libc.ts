/**
 * The whole FFI surface of otter: the few glibc functions the UDP fast path (servers/udp) and the
 * TCP fast path (servers/tcp: epoll) need, and the Linux constants that go with them; and
 * `malloc_trim`, since glibc is open anyway.
 *
 * Everything here is for Linux on x86_64 or aarch64 (LP64, little-endian), where the socket
 * constants and errno values below are the asm-generic ones. `libcSupport()` checks that before
 * anything is opened; nothing is loaded at import time, so importing this module without
 * `--allow-ffi` is harmless.
 *
 * Scoped ffi: glibc is opened by absolute path, the first of `LIBC_PATHS` the ffi permission
 * covers that opens, so deno.json's tasks grant ffi for libc alone
 * (`--allow-ffi=<LIBC_PATHS joined by commas>`; Deno accepts paths that do not exist). Under such
 * a grant Deno refuses its pointer helpers (`Deno.UnsafePointer.of/offset/value`,
 * `Deno.UnsafePointerView`), so nothing here or in the callers uses them: memory libc reads or
 * writes is passed as a `"buffer"` (a typed array view), and addresses are `"usize"` numbers.
 * `addressOf` gives a view's address (libc's `memset(p, 0, 0)` returns `p`) for pointers stored
 * inside structures; take it only of memory that never moves (an ArrayBuffer or
 * SharedArrayBuffer, not a small typed array made with a length, which V8 may keep on its heap)
 * and that stays referenced while the kernel may use the address.
 *
 * `poll` and `epoll_wait` are the only `nonblocking` symbols: they run on a pool thread, so their
 * errno is lost, and the caller must treat their failure as harmless. `pollBlocking` is the same libc function called
 * synchronously, for Workers whose thread does nothing else. Every other call is synchronous, and
 * its errno is read with `lastErrno()` right after it fails, before any other call can overwrite
 * it.
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
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
export const MSG_NOSIGNAL = 0x4000;
export const POLLIN = 1;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const EPOLL_CLOEXEC = 0x80000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 0x80000000;
export const EFD_NONBLOCK = 0x800;
export const EFD_CLOEXEC = 0x80000;
/** `struct epoll_event`: packed (12 bytes) on x86_64, 16 bytes with `data` at 8 on aarch64. */
export const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
export const EACCES = 13;
export const ENFILE = 23;
export const EMFILE = 24;
export const EPIPE = 32;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ECONNABORTED = 103;
export const ECONNRESET = 104;
export const ENOTCONN = 107;
export const ETIMEDOUT = 110;

/** Where glibc's libc.so.6 lives: Debian and Ubuntu (x86_64, aarch64), then Fedora, RHEL and
 *  openSUSE, then Arch. Keep in step with `--allow-ffi=` in deno.json's start and compile tasks. */
export const LIBC_PATHS = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib/libc.so.6",
] as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // ssize_t results read as i32: the low half of a count below 2^31, or -1 (LP64, little-endian).
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // The events array by address: a pool thread writes it while the promise is pending.
  epoll_wait: { parameters: ["i32", "usize", "i32", "i32"], result: "i32", nonblocking: true },
  // The timeout pointer is always NULL: 0.
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "usize"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  // The pollfd by address: a pool thread reads it while the promise is pending.
  poll: { parameters: ["usize", "u64", "i32"], result: "i32", nonblocking: true },
  // The same call, blocking the calling thread: only for dedicated I/O Workers (udpIoWorker.ts).
  pollBlocking: { name: "poll", parameters: ["usize", "u64", "i32"], result: "i32" },
  // ppoll on the calling thread with a timespec (nanoseconds, unlike poll's milliseconds): the
  // fast path's short linger after a batch (udpFastSocket.ts). The signal mask is always NULL: 0.
  ppollBlocking: { name: "ppoll", parameters: ["usize", "u64", "buffer", "usize"], result: "i32" },
  __errno_location: { parameters: [], result: "usize" },
  strerror: { parameters: ["i32"], result: "usize" },
  strlen: { parameters: ["usize"], result: "usize" },
  // memset(p, 0, 0) writes nothing and returns p: `addressOf`.
  memset: { parameters: ["buffer", "i32", "usize"], result: "usize" },
  // Reads memory libc owns (errno, strerror's text) into a view; "void" spares a BigInt.
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "void" },
  // Only glibc has it: opening fails on a libc.so.6 that is something else.
  gnu_get_libc_version: { parameters: [], result: "usize" },
  // Gives malloc's free pages back to the system (`releaseFreedMalloc`).
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
/** This thread's `&errno` (each Worker opens the library itself, so it has its own). */
let errnoAddress = 0n;
/** Where `lastErrno` copies errno to; an ArrayBuffer's store is off the V8 heap. */
const errnoValue = new Int32Array(new ArrayBuffer(8), 0, 1);

/** Why libc cannot be used here, or undefined when it can (the library is then open). Never throws. */
export function libcSupport(): string | undefined {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `unsupported architecture ${Deno.build.arch}`;
  }
  if (library !== undefined) return undefined;
  let candidates: string[];
  try {
    candidates = LIBC_PATHS.filter((path) =>
      Deno.permissions.querySync({ name: "ffi", path }).state === "granted"
    );
    // Unscoped --allow-ffi: the soname too, for a glibc outside the usual places.
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
      candidates.push("libc.so.6");
    }
  } catch (error) {
    return `cannot query the ffi permission: ${error instanceof Error ? error.message : error}`;
  }
  if (candidates.length === 0) {
    return `ffi permission not granted for glibc (--allow-ffi=${LIBC_PATHS.join(",")})`;
  }
  let why = "";
  for (const path of candidates) {
    try {
      const opened = Deno.dlopen(path, SYMBOLS);
      const address = opened.symbols.__errno_location();
      if (address === 0n) {
        opened.close();
        return "__errno_location() returned NULL";
      }
      errnoAddress = address;
      library = opened;
      return undefined;
    } catch (error) {
      // Missing here, another architecture's, or not glibc: try the next one.
      why ||= error instanceof Error ? error.message.split("\n")[0] : String(error);
    }
  }
  return `cannot open glibc at ${candidates.join(", ")}: ${why}`;
}

/** The libc functions; throws when `libcSupport()` gives a reason. */
export function libc(): Libc {
  const reason = libcSupport();
  if (reason !== undefined) throw new Error(`libc unavailable: ${reason}`);
  return library!.symbols;
}

/** The calling thread's errno. Call it right after a synchronous call returned -1. */
export function lastErrno(): number {
  if (library === undefined) return 0;
  library.symbols.memcpy(errnoValue, errnoAddress, 4n);
  return errnoValue[0];
}

/** The address of `bytes[0]`, for pointers written into structures the kernel reads and for
 *  `poll`. See the module notes on which memory qualifies. */
export function addressOf(bytes: Uint8Array<ArrayBufferLike>): bigint {
  return libc().memset(bytes, 0, 0n);
}

/**
 * Gives the pages malloc holds free back to the system (glibc's `malloc_trim(0)`), when libc is
 * open; returns whether it released any. V8's compiler threads malloc and free megabytes while
 * the hot path is compiled, in a thread arena that glibc never trims by itself: a fast fill of 1M
 * peers left 3 MB of it resident (docs/performance.md).
 */
export function releaseFreedMalloc(): boolean {
  return library !== undefined && library.symbols.malloc_trim(0n) === 1;
}

/** The C library's text for an errno value, e.g. "Address already in use". */
export function errnoText(code: number): string {
  const lib = libc();
  const address = lib.strerror(code);
  if (address === 0n) return `errno ${code}`;
  const text = new Uint8Array(new ArrayBuffer(Number(lib.strlen(address))));
  lib.memcpy(text, address, BigInt(text.length));
  return new TextDecoder().decode(text);
}
