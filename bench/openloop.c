/*
 * openloop.c - open-loop (fixed arrival rate) load generator for otter's UDP (BEP 15) and HTTP
 * announce paths: latency at a given request rate, without coordinated omission.
 *
 * Closed loop vs open loop. udpload -c N and wrk -cN are closed-loop: a new request leaves only
 * when an earlier one is answered. When the server stalls (a GC pause, a table resize), the tool
 * stalls with it, so a 50 ms pause shows up as N slow requests instead of the rate x 50 ms that
 * clients arriving at their own pace would have seen ("coordinated omission"). Their percentiles
 * are optimistic, and they describe a chosen number in flight rather than an offered load.
 * Here request i is due at t0 + i/R whatever became of earlier ones, and its latency is measured
 * from that due time, not from when it actually left: any delay (server, kernel, or this tool
 * falling behind) is charged. The tool reports how well it kept its own schedule (achieved send
 * rate, send lateness) and exits 3 if it did not keep it, so a bad figure is never silent.
 * It sleeps between due times (epoll_pwait2, 1 us timer slack), so each send and each reply pays
 * the machine's wake-up delay (~35 us of p50 on this 2-vCPU VM). --spin-us U polls instead when
 * a due time is less than U us away (10000: always): p50 then shows the server alone, but a core
 * kept busy raised otter's p99 from ~0.5 to ~2 ms here (shared host), so sleeping is the default.
 *
 * Build:  gcc -O2 -Wall -Wextra -o /tmp/openloop bench/openloop.c   (libc only)
 * Use with otter (otter pinned to core 0, the tool to core 1), after a fill of 100000 x 10 peers
 * (udpload -t 100000 -F 1000000 -n 0 -c 128 -d 60), at half of the closed-loop top rate (udpload
 * -t 100000 -P 10 -c 128; wrk -c64 with http-announce.lua), e.g. on a 2-vCPU VM:
 *   taskset -c 1 /tmp/openloop --udp 127.0.0.1:UDP_PORT --rate 125000 --duration 10 --ports 10
 *   taskset -c 1 /tmp/openloop --http 127.0.0.1:HTTP_PORT --rate 42000 --conns 64 --ports 10
 * The info_hash pool is udpload's (entry i a pure function of --seed and i, as udpload -x), so
 * --torrents T --ports P re-announce exactly the peers `udpload -t T -F T*P` added; or --pool FILE
 * reads 40-hex-char lines (`udpload -D -t N`). Announces: event none, numwant 50, a random peer
 * id, port 1..P, a quarter of them seeders (a random quarter; with --fill-seeders exactly the
 * peers the fill made seeders, so that re-announces change no peer: a steady swarm).
 *
 * UDP: --sockets S connected sockets, each with its own connection id (refreshed after 60 s or an
 * error reply, the old one used meanwhile). Request i leaves on socket i % S with transaction id
 * i; a table indexed by i mod 2^k (sized for rate x timeout) holds what is in flight, expired
 * oldest first once --timeout-ms past its due time. Sends are batched with sendmmsg.
 * HTTP: --conns C keep-alive connections. A due request goes to the next idle connection, or when
 * none is idle waits in line for one, as real clients (one announce per connection at a time) do.
 * --pipeline instead sends it behind the fewest outstanding ones (HTTP/1.1 answers in order, so a
 * connection keeps a FIFO of due indices); a server without TCP_NODELAY may then hold the second
 * of two back-to-back replies until the client's next packet (Nagle vs delayed ACK), and this
 * mode measures that too. Replies are framed by Content-Length; 200 with a body that starts with
 * "d" and holds no failure reason is a success. A connection whose oldest request passes the
 * timeout is closed and reopened, and what it owed counts as timed out; one the server closes
 * after its last reply (no keep-alive, e.g. opentracker) is reopened at once and only counted.
 * --stalls MS lists each episode of replies later than MS ms (requests due within 100 ms of each
 * other) with its wall-clock time, to match against the server's logs (e.g. --v8-flags=--trace-gc),
 * and how late this tool itself sent the requests due then (a delay of the tool or the machine).
 * Output: sent, replies, errors, timeouts, rates, latency percentiles in us (log-linear
 * histogram: exact below 128 us, then 64 buckets per power of two; a percentile is its bucket's
 * lower bound, at most 1.6 % low), and a RESULT json line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long long u64; /* prints as %llu without casts */
#define PROTOCOL_ID 0x41727101980ull
#define BATCH 64
#define QCAP 1024 /* per HTTP connection: requests it owes replies for */
#define OUTCAP 65536
#define INCAP 65536
#define SUB 64
#define HB (SUB + SUB * 26) /* exact below 64 us, then SUB buckets per power of two up to 2^32 us */

static int mode_http = -1, opt_ports = 10, opt_conns = 64, opt_socks = 4, opt_numwant = 50, opt_pipeline;
static double opt_spin_us = 0, opt_rate, opt_dur = 10, opt_warm = 1, opt_timeout_ms = 1000;
static long opt_torrents; /* 0: the whole --pool, or 100000 */
static u64 opt_seed = 1;
/* --fill-seeders: a peer is a seeder exactly when udpload's fill made it one (left = 0 for fill
   index g = torrent + torrents x (port - 1) with g % 4 == 0), so re-announces change no peer's
   state: a steady swarm, as between real clients' events (cluster refresh suppression) */
static int opt_fill_seeders;
static const char *target;
static uint8_t *pool;
static struct sockaddr_storage dst;
static socklen_t dstlen;
static volatile sig_atomic_t stop;
static struct {
  u64 sent, ok, errors, invalid, lost, timeouts, late, dropped, conn_fail, closes, peers;
  u64 hist[HB], lateh[HB];
} st;
static u64 t0, n_warm, n_total, n_next, inflight, to_ns, first_send, last_send, rng_state;
/* --stalls MS: episodes of replies later than MS (requests due within 100 ms of each other) */
#define MAX_STALLS 256
static double opt_stalls_ms;
static u64 stall_ns, t0_real_ns;
static int n_stalls, stalls_dropped;
static struct { u64 first_due, last_due, worst, count; } stalls[MAX_STALLS];
/* the most this tool was late sending any request due in each 10 ms (us): an episode whose
   requests also left late is the tool's or the machine's delay, not only the server's */
static uint32_t *send_late_10ms;
static u64 n_late_10ms;
static double period_ns;
static int ep;

static u64 now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}
static inline u64 due(u64 i) { return t0 + (u64)((double)i * period_ns); }
static inline int measured(u64 i) { return i >= n_warm; }
static inline int hidx(u64 us) {
  if (us < SUB) return (int)us;
  int m = 63 - __builtin_clzll(us), i = SUB + (m - 6) * SUB + (int)((us >> (m - 6)) & (SUB - 1));
  return i < HB ? i : HB - 1;
}
static u64 hval(int i) { /* lower bound of bucket i, in us */
  int m = (i - SUB) / SUB + 6;
  return i < SUB ? (u64)i : (1ull << m) + ((u64)((i - SUB) % SUB) << (m - 6));
}
static u64 pctl(const u64 *h, double p) {
  u64 n = 0, acc = 0, want;
  for (int i = 0; i < HB; i++) n += h[i];
  want = (u64)(p * (double)n);
  if ((double)want < p * (double)n || !want) want++; /* ceil, at least 1 */
  for (int i = 0; i < HB && n; i++) if ((acc += h[i]) >= want) return hval(i);
  return 0;
}
static u64 ring_size(void) { /* a power of two above rate x timeout: what can be in flight */
  u64 need = (u64)(opt_rate * (opt_timeout_ms / 1000.0 + 0.1)) + 4096, sz = 1;
  while (sz < need) sz <<= 1;
  return sz;
}

static u64 mix(u64 *x) { /* splitmix64 */
  u64 z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline u64 rnd(void) { return mix(&rng_state); }
/* info_hash of pool entry i: the same bytes as udpload's pool (three splitmix64 words, LE) */
static const uint8_t *hash_of(u64 i) {
  static uint8_t h[24];
  if (pool) return pool + 20 * i;
  u64 x = opt_seed * 0x100000001b3ull ^ (i * 0x9e3779b97f4a7c15ull);
  for (int w = 0; w < 3; w++) {
    u64 v = mix(&x);
    for (int b = 0; b < 8; b++) h[w * 8 + b] = (uint8_t)(v >> (8 * b));
  }
  return h;
}
/* left for --fill-seeders: 0 (seeder) where udpload's fill made the peer a seeder, else > 0 */
static u64 fill_left(u64 torrent, int port, u64 r3) {
  u64 g = torrent + (u64)opt_torrents * (u64)(port - 1);
  return (g & 3) ? 1 + (r3 >> 34) % 1000000000ull : 0;
}
static void load_pool(const char *file) {
  FILE *f = fopen(file, "r");
  char line[256];
  long n = 0, cap = 0;
  if (!f) { perror(file); exit(2); }
  while (fgets(line, sizeof line, f)) {
    if (n == cap && !(pool = realloc(pool, 20 * (size_t)(cap = cap ? 2 * cap : 65536)))) exit(1);
    unsigned v;
    int j = 0;
    while (j < 20 && sscanf(line + 2 * j, "%2x", &v) == 1) pool[20 * n + j++] = (uint8_t)v;
    if (j == 20) n++;
    else if (line[strspn(line, " \r\n")]) { fprintf(stderr, "%s: bad line %s", file, line); exit(2); }
  }
  fclose(f);
  if (!n) { fprintf(stderr, "%s: no info hashes\n", file); exit(2); }
  if (!opt_torrents || opt_torrents > n) opt_torrents = n;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void put64(uint8_t *p, u64 v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

/* the reply to request i came at now (ok: 1 success, 0 invalid, 2 error reply): latency from due */
static void record(u64 i, u64 now, int ok) {
  u64 lat = now > due(i) ? now - due(i) : 0;
  if (!measured(i)) return;
  if (ok != 1) { if (ok) st.errors++; else st.invalid++; }
  else if (lat > to_ns) st.timeouts++; /* answered, but after the timeout */
  else { st.ok++; st.hist[hidx(lat / 1000)]++; }
  if (stall_ns && ok == 1 && lat > stall_ns) {
    /* replies come back out of order during a stall: join any recent episode within 100 ms */
    u64 d = due(i);
    int k = n_stalls - 1;
    for (; k >= 0 && k >= n_stalls - 16; k--)
      if (d + 100000000ull > stalls[k].first_due && d < stalls[k].last_due + 100000000ull) break;
    if (k >= 0 && k >= n_stalls - 16) {
      if (d > stalls[k].last_due) stalls[k].last_due = d;
      if (d < stalls[k].first_due) stalls[k].first_due = d;
      if (lat > stalls[k].worst) stalls[k].worst = lat;
      stalls[k].count++;
    } else if (n_stalls < MAX_STALLS) {
      stalls[n_stalls].first_due = stalls[n_stalls].last_due = d;
      stalls[n_stalls].worst = lat;
      stalls[n_stalls++].count = 1;
    } else stalls_dropped++;
  }
}

/* ---------------- UDP ---------------- */
typedef struct {
  int fd, have, connecting, ntx;
  u64 cid, cid_t, conn_sent;
  uint32_t conn_tid;
  struct mmsghdr tx[BATCH];
  struct iovec iov[BATCH];
  uint8_t buf[BATCH][100];
  u64 txi[BATCH];
} usock_t;
static struct { uint32_t tid; uint8_t live, sock; } *tab; /* in flight, at index i & tmask */
static usock_t *us;
static u64 tmask, oldest;
static uint32_t conn_ctr;

static void udp_maint(u64 now) { /* connection ids: get one, refresh after 60 s, retry on timeout */
  for (int k = 0; k < opt_socks; k++) {
    usock_t *s = &us[k];
    uint8_t p[16];
    if (s->connecting ? now - s->conn_sent <= to_ns : now - s->cid_t <= 60000000000ull) continue;
    s->conn_tid = 0x80000000u | (++conn_ctr & 0x7fffffffu); /* top bit: a connect */
    put64(p, PROTOCOL_ID); put32(p + 8, 0); put32(p + 12, s->conn_tid);
    if (send(s->fd, p, 16, 0) < 0) st.conn_fail++;
    s->connecting = 1; s->conn_sent = now;
  }
}
static void udp_flush(usock_t *s) {
  int off = 0;
  while (off < s->ntx) {
    int n = sendmmsg(s->fd, s->tx + off, (unsigned)(s->ntx - off), MSG_DONTWAIT);
    if (n > 0) { off += n; continue; }
    if (n < 0 && errno == EINTR) continue;
    for (; off < s->ntx; off++) { /* not sent: forget it, count it once as not sent */
      tab[s->txi[off] & tmask].live = 0; inflight--;
      if (measured(s->txi[off])) st.dropped++;
    }
  }
  s->ntx = 0;
}
static void udp_issue(u64 i) {
  int k = (int)(i % (u64)opt_socks);
  usock_t *s = &us[k];
  if (tab[i & tmask].live) { inflight--; if (measured(tab[i & tmask].tid)) st.timeouts++; } /* not expected */
  if (s->ntx == BATCH) udp_flush(s);
  uint8_t *p = s->buf[s->ntx];
  u64 r1 = rnd(), r2 = rnd(), r3 = rnd(), left = (r3 & 3) ? 1 + (r3 >> 34) % 1000000000ull : 0;
  int port = 1 + (int)((r1 >> 20) % (u64)opt_ports);
  if (opt_fill_seeders) left = fill_left(r1 % (u64)opt_torrents, port, r3);
  put64(p, s->cid); put32(p + 8, 1); put32(p + 12, (uint32_t)i);
  memcpy(p + 16, hash_of(r1 % (u64)opt_torrents), 20);
  memcpy(p + 36, "-OL0001-", 8); memcpy(p + 44, &r2, 8); memcpy(p + 52, &r3, 4);
  put64(p + 56, left ? 1000 : 1000000000ull); put64(p + 64, left); put64(p + 72, 0); /* up, left, down */
  put32(p + 80, 0); put32(p + 84, 0); put32(p + 88, (uint32_t)(r1 >> 32)); put32(p + 92, (uint32_t)opt_numwant);
  p[96] = (uint8_t)(port >> 8); p[97] = (uint8_t)port;
  s->iov[s->ntx].iov_len = 98;
  s->txi[s->ntx++] = i;
  tab[i & tmask].tid = (uint32_t)i; tab[i & tmask].live = 1; tab[i & tmask].sock = (uint8_t)k;
  inflight++;
}
static void udp_expire(u64 now) { /* oldest first: due times only grow */
  for (; oldest < n_next; oldest++) {
    if (!tab[oldest & tmask].live || tab[oldest & tmask].tid != (uint32_t)oldest) continue;
    if (now < due(oldest) + to_ns) break;
    tab[oldest & tmask].live = 0; inflight--;
    if (measured(oldest)) st.timeouts++;
  }
}
static void udp_read(int k) {
  static uint8_t rb[BATCH][2048];
  static struct mmsghdr rx[BATCH];
  static struct iovec iov[BATCH];
  usock_t *s = &us[k];
  for (int n = BATCH; n == BATCH;) {
    for (int j = 0; j < BATCH; j++) {
      iov[j] = (struct iovec){rb[j], sizeof rb[j]};
      rx[j].msg_hdr = (struct msghdr){.msg_iov = &iov[j], .msg_iovlen = 1};
    }
    if ((n = recvmmsg(s->fd, rx, BATCH, MSG_DONTWAIT, NULL)) <= 0) return;
    u64 now = now_ns();
    for (int j = 0; j < n; j++) {
      const uint8_t *b = rb[j];
      size_t len = rx[j].msg_len;
      uint32_t action = len >= 8 ? get32(b) : 99, tid = len >= 8 ? get32(b + 4) : 0, i = tid;
      if (len < 8) { st.invalid++; continue; }
      if (tid & 0x80000000u) { /* a connect reply; a stale one is ignored */
        if (s->connecting && tid == s->conn_tid && action == 0 && len >= 16) {
          s->cid = (u64)get32(b + 8) << 32 | get32(b + 12);
          s->have = 1; s->cid_t = now; s->connecting = 0;
        }
        continue;
      }
      if (!tab[i & tmask].live || tab[i & tmask].tid != tid || tab[i & tmask].sock != k) {
        st.late += measured(i); /* its entry expired (or it was never ours) */
        continue;
      }
      tab[i & tmask].live = 0; inflight--;
      if (action == 3) { record(i, now, 2); if (!s->connecting) s->cid_t = 0; /* refresh the id */ continue; }
      int ok = action == 1 && len >= 20 && (len - 20) % 6 == 0;
      if (ok && measured(i)) st.peers += (len - 20) / 6;
      record(i, now, ok);
    }
  }
}
static void udp_setup(void) {
  u64 sz = ring_size();
  tab = calloc(sz, sizeof *tab); tmask = sz - 1;
  if (!(us = calloc((size_t)opt_socks, sizeof *us)) || !tab) exit(1);
  for (int k = 0; k < opt_socks; k++) {
    usock_t *s = &us[k];
    int bufsz = 4 << 20;
    s->fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&dst, dstlen) < 0) { perror("udp socket"); exit(2); }
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    for (int j = 0; j < BATCH; j++) {
      s->iov[j].iov_base = s->buf[j];
      s->tx[j].msg_hdr.msg_iov = &s->iov[j]; s->tx[j].msg_hdr.msg_iovlen = 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  }
}

/* ---------------- HTTP ---------------- */
typedef struct {
  int fd, up, qh, qn, outn, outoff, inn;
  uint32_t evmask;
  u64 retry;
  uint32_t q[QCAP]; /* due indices of the requests it owes replies for, oldest first */
  char out[OUTCAP], in[INCAP];
} hconn_t;
static hconn_t *hc;
static int rr;
static uint32_t *pend; /* due requests waiting for an idle connection, oldest first */
static u64 pmask, ph, pn;
static char hosthdr[256];

static void h_events(hconn_t *c, int k) {
  uint32_t want = EPOLLIN | ((!c->up || c->outn > c->outoff) ? EPOLLOUT : 0);
  struct epoll_event ev = {.events = want, .data.u32 = (uint32_t)k};
  if (want != c->evmask) epoll_ctl(ep, c->evmask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
  c->evmask = want;
}
static void h_open(hconn_t *c, int k, u64 now) {
  int one = 1;
  c->up = c->qh = c->qn = c->outn = c->outoff = c->inn = 0; c->evmask = 0;
  if ((c->fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) { perror("socket"); exit(1); }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&dst, dstlen) == 0) c->up = 1;
  else if (errno != EINPROGRESS) { close(c->fd); c->fd = -1; c->retry = now + 20000000; st.conn_fail++; return; }
  h_events(c, k);
}
/* the connection broke (or timed out): what it still owed is lost (or timed out) */
static void h_fail(hconn_t *c, u64 now, int timed_out) {
  for (int j = 0; j < c->qn; j++)
    if (measured(c->q[(c->qh + j) & (QCAP - 1)])) { if (timed_out) st.timeouts++; else st.lost++; }
  inflight -= (u64)c->qn;
  close(c->fd);
  c->fd = -1; c->qn = 0; c->retry = now + (timed_out ? 0 : 20000000); st.conn_fail++;
}
static void h_write(hconn_t *c, int k, u64 now) {
  while (c->up && c->outoff < c->outn) {
    ssize_t n = send(c->fd, c->out + c->outoff, (size_t)(c->outn - c->outoff), MSG_NOSIGNAL);
    if (n > 0) c->outoff += (int)n;
    else if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    else { h_fail(c, now, 0); return; }
  }
  if (c->outoff == c->outn) c->outoff = c->outn = 0;
  h_events(c, k);
}
static char *hex_escape(char *p, const uint8_t *b, int n) {
  static const char hx[] = "0123456789ABCDEF";
  for (int j = 0; j < n; j++) { *p++ = '%'; *p++ = hx[b[j] >> 4]; *p++ = hx[b[j] & 15]; }
  return p;
}
static void h_send(int k, u64 i, u64 now) { /* request i on connection k, behind what it owes */
  hconn_t *c = &hc[k];
  if (c->outn + 1024 > OUTCAP) { /* make room: move unsent bytes down */
    memmove(c->out, c->out + c->outoff, (size_t)(c->outn - c->outoff));
    c->outn -= c->outoff; c->outoff = 0;
  }
  if (c->outn + 1024 > OUTCAP || c->qn == QCAP) { st.dropped += measured(i); return; }
  char *p = c->out + c->outn;
  u64 r1 = rnd(), r2 = rnd(), r3 = rnd(), left = (r3 & 3) ? 1 + (r3 >> 34) % 1000000000ull : 0;
  if (opt_fill_seeders) left = fill_left(r1 % (u64)opt_torrents, 1 + (int)((r1 >> 20) % (u64)opt_ports), r3);
  uint8_t pid[12];
  memcpy(pid, &r2, 8); memcpy(pid + 8, &r3, 4);
  p = hex_escape(p + sprintf(p, "GET /announce?info_hash="), hash_of(r1 % (u64)opt_torrents), 20);
  p = hex_escape(p + sprintf(p, "&peer_id=-OL0001-"), pid, 12);
  p += sprintf(p, "&port=%d&uploaded=0&downloaded=%d&left=%llu&compact=1&numwant=%d HTTP/1.1\r\nHost: %s\r\n\r\n",
               1 + (int)((r1 >> 20) % (u64)opt_ports), left ? 1000 : 1000000000, left, opt_numwant, hosthdr);
  c->outn = (int)(p - c->out);
  c->q[(c->qh + c->qn++) & (QCAP - 1)] = (uint32_t)i;
  inflight++;
  h_write(c, k, now);
}
static void h_issue(u64 i, u64 now) { /* the next idle connection, else wait in line (or pipeline) */
  int best = -1, bq = QCAP;
  for (int j = 0; j < opt_conns && bq; j++) {
    int k = (rr + j) % opt_conns;
    if (hc[k].fd >= 0 && hc[k].qn < bq) { best = k; bq = hc[k].qn; }
  }
  if (best >= 0 && (!bq || opt_pipeline)) { rr = (best + 1) % opt_conns; h_send(best, i, now); return; }
  if (pn > pmask) { st.dropped += measured(i); return; }
  pend[(ph + pn++) & pmask] = (uint32_t)i;
  inflight++;
}
static void h_dispatch(int k, u64 now) { /* an idle connection takes the oldest waiting request */
  if (hc[k].fd < 0 || hc[k].qn || !pn) return;
  u64 i = pend[ph];
  ph = (ph + 1) & pmask; pn--; inflight--;
  h_send(k, i, now);
}
static int h_parse(hconn_t *c, u64 now) { /* whole replies in c->in, in order; 0: drop the connection */
  int pos = 0, ok = 1;
  while (ok) {
    char *b = c->in + pos, *hend = memmem(b, (size_t)(c->inn - pos), "\r\n\r\n", 4);
    if (!hend) { ok = c->inn - pos <= 8192; break; }
    int hl = (int)(hend + 4 - b), status = hl > 12 && !memcmp(b, "HTTP/1.", 7) ? atoi(b + 9) : 0;
    long cl = -1;
    for (char *l = memchr(b, '\n', (size_t)hl); l && l < hend; l = memchr(l + 1, '\n', (size_t)(hend - l)))
      if (!strncasecmp(l + 1, "content-length:", 15)) cl = strtol(l + 16, NULL, 10);
    if (cl < 0 || hl + cl > INCAP || c->qn == 0) { st.invalid++; ok = 0; break; }
    if (pos + hl + cl > c->inn) break;
    u64 i = c->q[c->qh];
    c->qh = (c->qh + 1) & (QCAP - 1); c->qn--; inflight--;
    int good = cl > 0 && b[hl] == 'd';
    if (good && cl > 20 && memmem(b + hl, 20, "failure reason", 14)) good = 2;
    record(i, now, status != 200 ? 2 : good);
    pos += hl + (int)cl;
  }
  memmove(c->in, c->in + pos, (size_t)(c->inn - pos));
  c->inn -= pos;
  return ok;
}
static void h_event(int k, uint32_t evs, u64 now) {
  hconn_t *c = &hc[k];
  if (c->fd >= 0 && !c->up && (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) { h_fail(c, now, 0); return; }
    c->up = 1;
  }
  if (c->fd >= 0 && (evs & EPOLLOUT)) h_write(c, k, now);
  if (!(evs & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  while (c->fd >= 0) {
    ssize_t n = recv(c->fd, c->in + c->inn, (size_t)(INCAP - c->inn), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    c->inn += n > 0 ? (int)n : 0;
    if (n == 0 && !c->qn && c->inn == 0) { /* closed after its last reply (no keep-alive): reopen */
      close(c->fd);
      st.closes++;
      h_open(c, k, now);
      h_dispatch(k, now);
      return;
    }
    if (n <= 0 || !h_parse(c, now_ns())) { h_fail(c, now, 0); return; }
    h_dispatch(k, now);
  }
}
static void h_maint(u64 now) { /* time out stuck connections, reopen closed ones, expire the line */
  for (int k = 0; k < opt_conns; k++) {
    hconn_t *c = &hc[k];
    if (c->fd >= 0 && c->qn && now > due(c->q[c->qh]) + to_ns) h_fail(c, now, 1);
    if (c->fd < 0 && now >= c->retry && !stop) h_open(c, k, now);
    h_dispatch(k, now);
  }
  for (; pn && now > due(pend[ph]) + to_ns; ph = (ph + 1) & pmask, pn--, inflight--)
    st.timeouts += measured(pend[ph]);
}

/* ---------------- main ---------------- */
static void resolve(const char *hp) {
  char host[256];
  const char *colon = strrchr(hp, ':');
  struct addrinfo hints = {.ai_socktype = mode_http ? SOCK_STREAM : SOCK_DGRAM}, *ai;
  if (!colon || colon == hp || colon - hp >= (long)sizeof host) {
    fprintf(stderr, "want HOST:PORT: %s\n", hp);
    exit(2);
  }
  memcpy(host, hp, (size_t)(colon - hp)); host[colon - hp] = 0;
  if (host[0] == '[') host[strlen(host) - 1] = 0; /* [::1]:6969 */
  if (getaddrinfo(host + (host[0] == '['), colon + 1, &hints, &ai)) {
    fprintf(stderr, "cannot resolve %s\n", hp);
    exit(2);
  }
  memcpy(&dst, ai->ai_addr, ai->ai_addrlen); dstlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  snprintf(hosthdr, sizeof hosthdr, "%s", hp);
}
static void on_signal(int s) { (void)s; stop = 1; }
static void wait_events(u64 wait) { /* up to wait ns; handles what arrives */
  struct epoll_event evs[64];
  struct timespec ts = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
  int n = epoll_pwait2(ep, evs, 64, &ts, NULL);
  if (n < 0 && errno == ENOSYS) n = epoll_wait(ep, evs, 64, (int)(wait / 1000000)); /* spins the last ms */
  for (int j = 0; j < n; j++) {
    if (mode_http) h_event((int)evs[j].data.u32, evs[j].events, now_ns());
    else udp_read((int)evs[j].data.u32);
  }
}
static int ready(void) { /* every UDP socket holds a connection id; every TCP connection is up */
  for (int k = 0; k < (mode_http ? opt_conns : opt_socks); k++) if (mode_http ? !hc[k].up : !us[k].have) return 0;
  return 1;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"udp", 1, 0, 'u'}, {"http", 1, 0, 'h'}, {"rate", 1, 0, 'r'}, {"duration", 1, 0, 'd'},
      {"warmup", 1, 0, 'w'}, {"torrents", 1, 0, 't'}, {"ports", 1, 0, 'P'}, {"pool", 1, 0, 'f'},
      {"seed", 1, 0, 'x'}, {"numwant", 1, 0, 'n'}, {"sockets", 1, 0, 's'}, {"conns", 1, 0, 'c'},
      {"timeout-ms", 1, 0, 'o'}, {"pipeline", 0, 0, 'p'},
      {"spin-us", 1, 0, 'S'}, {"fill-seeders", 0, 0, 'F'}, {"stalls", 1, 0, 'T'},
      {0, 0, 0, 0}};
  const char *pool_file = NULL;
  for (int o; (o = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
    switch (o) {
    case 'u': case 'h': mode_http = o == 'h'; target = optarg; break;
    case 'r': opt_rate = atof(optarg); break;
    case 'd': opt_dur = atof(optarg); break;
    case 'w': opt_warm = atof(optarg); break;
    case 't': opt_torrents = atol(optarg); break;
    case 'P': opt_ports = atoi(optarg); break;
    case 'f': pool_file = optarg; break;
    case 'x': opt_seed = strtoull(optarg, NULL, 0); break;
    case 'n': opt_numwant = atoi(optarg); break;
    case 's': opt_socks = atoi(optarg); break;
    case 'c': opt_conns = atoi(optarg); break;
    case 'o': opt_timeout_ms = atof(optarg); break;
    case 'p': opt_pipeline = 1; break;
    case 'S': opt_spin_us = atof(optarg); break;
    case 'F': opt_fill_seeders = 1; break;
    case 'T': opt_stalls_ms = atof(optarg); break;
    default: mode_http = -1; optind = argc + 1; break;
    }
  }
  if (mode_http < 0 || optind != argc || !(opt_rate > 0 && opt_rate <= 2e6) || !(opt_dur > 0 && opt_dur <= 600) ||
      !(opt_warm >= 0 && opt_warm <= 60) || opt_ports < 1 || opt_ports > 65535 || opt_socks < 1 || opt_socks > 256 ||
      opt_conns < 1 || opt_conns > 10000 || !(opt_timeout_ms >= 1 && opt_timeout_ms <= 60000) || opt_torrents < 0 ||
      !(opt_spin_us >= 0 && opt_spin_us <= 10000) || !(opt_stalls_ms >= 0 && opt_stalls_ms <= 60000)) {
    fprintf(stderr, "usage: openloop (--udp|--http) HOST:PORT --rate R [--duration S(10, max 600)] [--warmup S(1)]\n"
                    "  [--torrents N(100000)] [--pool FILE] [--ports P(10)] [--seed X(1)] [--numwant N(50)]\n"
                    "  [--sockets S(4, udp)] [--conns C(64, http)] [--pipeline (http)] [--timeout-ms T(1000)]\n"
                    "  [--spin-us U(0): poll, not sleep, when a due time is this close]\n"
                    "  [--fill-seeders: seeders exactly as udpload's fill made them, not a random quarter]\n"
                    "  [--stalls MS: list the episodes of replies later than MS ms, with their wall-clock time]\n");
    return 2;
  }
  if (pool_file) load_pool(pool_file);
  else if (!opt_torrents) opt_torrents = 100000;
  resolve(target);
  signal(SIGINT, on_signal); signal(SIGTERM, on_signal); signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1000UL); /* wake within ~1 us of a due time, not the default 50 us */
  rng_state = opt_seed ^ 0x6f70656e6c6f6f70ull;
  to_ns = (u64)(opt_timeout_ms * 1e6);
  stall_ns = (u64)(opt_stalls_ms * 1e6);
  if (stall_ns) {
    n_late_10ms = (u64)((opt_dur + opt_warm) * 100) + 100;
    send_late_10ms = calloc(n_late_10ms, sizeof *send_late_10ms);
  }
  period_ns = 1e9 / opt_rate;
  n_warm = (u64)(opt_warm * opt_rate + 0.5);
  n_total = n_warm + (u64)(opt_dur * opt_rate + 0.5);
  if ((ep = epoll_create1(0)) < 0) { perror("epoll"); return 1; }
  u64 now = now_ns(), ready_by = now + 5000000000ull, last_maint = 0, max_late = 0;
  if (!mode_http) udp_setup();
  else {
    u64 sz = ring_size();
    pend = calloc(sz, sizeof *pend); pmask = sz - 1;
    if (!(hc = calloc((size_t)opt_conns, sizeof *hc)) || !pend) return 1;
    for (int k = 0; k < opt_conns; k++) h_open(&hc[k], k, now);
  }
  for (; !ready() && now < ready_by && !stop; now = now_ns()) { /* before the clock starts */
    if (!mode_http) udp_maint(now);
    wait_events(10000000);
  }
  if (!ready()) { fprintf(stderr, "openloop: %s does not answer (connect)\n", target); return 2; }
  memset(&st, 0, sizeof st);
  t0 = now_ns();
  {
    struct timespec r;
    clock_gettime(CLOCK_REALTIME, &r);
    t0_real_ns = (u64)r.tv_sec * 1000000000ull + (u64)r.tv_nsec - (now_ns() - t0);
  }
  for (;;) {
    now = now_ns();
    for (int b = 0; b < 256 && n_next < n_total && due(n_next) <= now && !stop; b++, n_next++) {
      u64 i = n_next, late = now - due(i);
      if (measured(i)) {
        if (!st.sent++) first_send = now;
        last_send = now;
        st.lateh[hidx(late / 1000)]++;
        if (late > max_late) max_late = late;
        u64 b = (due(i) - t0) / 10000000ull;
        if (send_late_10ms && b < n_late_10ms && late / 1000 > send_late_10ms[b])
          send_late_10ms[b] = (uint32_t)(late / 1000);
      }
      if (mode_http) h_issue(i, now); else udp_issue(i);
    }
    for (int k = 0; !mode_http && k < opt_socks; k++) if (us[k].ntx) udp_flush(&us[k]);
    if (now - last_maint > 1000000) {
      if (mode_http) h_maint(now); else { udp_expire(now); udp_maint(now); }
      last_maint = now;
    }
    if ((n_next >= n_total || stop) && (!inflight || stop || now > due(n_total - 1) + to_ns + 2000000)) break;
    /* sleep until the next due time (at most 2 ms), or with --spin-us until that much before it,
       then poll: see the header for what either costs the measurement */
    u64 wait = 2000000, spin = (u64)(opt_spin_us * 1000);
    if (n_next < n_total && !stop) wait = due(n_next) <= now ? 0 : due(n_next) - now < wait ? due(n_next) - now : wait;
    wait = wait <= spin ? 0 : wait - spin;
    wait_events(wait);
  }
  if (!mode_http) udp_expire(~0ull / 2); /* what is still in flight timed out */
  for (int k = 0; mode_http && k < opt_conns; k++)
    for (int j = 0; j < hc[k].qn; j++) st.timeouts += measured(hc[k].q[(hc[k].qh + j) & (QCAP - 1)]);
  for (; mode_http && pn; ph = (ph + 1) & pmask, pn--) st.timeouts += measured(pend[ph]);

  double achieved = st.sent > 1 && last_send > first_send ? (st.sent - 1) * 1e9 / (double)(last_send - first_send) : 0;
  u64 pv[5] = {pctl(st.hist, .5), pctl(st.hist, .9), pctl(st.hist, .99), pctl(st.hist, .999), pctl(st.hist, 1)};
  u64 lp50 = pctl(st.lateh, .5), lp99 = pctl(st.lateh, .99), want = n_total - n_warm;
  int behind = stop || st.sent < want || achieved < 0.99 * opt_rate || lp99 > 1000;
  const char *m = mode_http ? "http" : "udp";
  printf("openloop %s %s rate %g/s duration %g s warmup %g s torrents %ld ports %d %s %d timeout %g ms\n", m, target,
         opt_rate, opt_dur, opt_warm, opt_torrents, opt_ports,
         mode_http ? (opt_pipeline ? "pipelined conns" : "conns") : "sockets", mode_http ? opt_conns : opt_socks,
         opt_timeout_ms);
  printf("sent:       %llu of %llu scheduled\n", st.sent, want);
  printf("replies:    %llu ok (%.1f/s)", st.ok, st.ok / opt_dur);
  if (!mode_http) printf(", %.2f peers a reply", st.ok ? (double)st.peers / st.ok : 0.0);
  printf("\nerrors:     %llu error replies, %llu invalid, %llu lost on broken connections, %llu not sent;"
         " %llu connection failures, %llu closes after a reply\n", st.errors, st.invalid, st.lost, st.dropped,
         st.conn_fail, st.closes);
  printf("timeouts:   %llu (+%llu unmatched replies after their timeout)\n", st.timeouts, st.late);
  printf("rate:       target %g/s, achieved send rate %.1f/s; send lateness p50 %llu p99 %llu max %llu us\n",
         opt_rate, achieved, lp50, lp99, max_late / 1000);
  printf("latency_us: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu\n", pv[0], pv[1], pv[2], pv[3], pv[4]);
  printf("RESULT {\"mode\":\"%s\",\"target_rps\":%g,\"send_rps\":%.1f,\"sent\":%llu,\"ok\":%llu,\"errors\":%llu,"
         "\"invalid\":%llu,\"lost\":%llu,\"not_sent\":%llu,\"timeouts\":%llu,\"late_replies\":%llu,\"p50_us\":%llu,"
         "\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"send_late_p99_us\":%llu,"
         "\"send_late_max_us\":%llu,\"kept_schedule\":%s}\n", m, opt_rate, achieved, st.sent, st.ok, st.errors,
         st.invalid, st.lost, st.dropped, st.timeouts, st.late, pv[0], pv[1], pv[2], pv[3], pv[4], lp99,
         max_late / 1000, behind ? "false" : "true");
  if (stall_ns) {
    /* wall-clock times (Unix ms) line up with the server's own logs, e.g. a GC trace */
    printf("stalls:     %d episodes of replies later than %g ms%s\n", n_stalls, opt_stalls_ms,
           stalls_dropped ? " (more not listed)" : "");
    for (int k = 0; k < n_stalls; k++) {
      u64 sent_late = 0;
      for (u64 b = (stalls[k].first_due - t0) / 10000000ull; b <= (stalls[k].last_due - t0) / 10000000ull; b++)
        if (send_late_10ms && b < n_late_10ms && send_late_10ms[b] > sent_late) sent_late = send_late_10ms[b];
      printf("stall:      at +%.3f s (unix %.3f): %llu replies late, requests due over %.1f ms, worst %.1f ms,"
             " sent up to %.1f ms late\n",
             (stalls[k].first_due - t0) / 1e9, (t0_real_ns + (stalls[k].first_due - t0)) / 1e9, stalls[k].count,
             (stalls[k].last_due - stalls[k].first_due) / 1e6, stalls[k].worst / 1e6, sent_late / 1e3);
    }
  }
  if (behind) fprintf(stderr, "openloop: WARNING: the tool did not keep its schedule (interrupted, or sends late or"
                              " missing); the latencies above include its own delay\n");
  return behind ? 3 : 0;
}
