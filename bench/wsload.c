/*
 * wsload.c - load generator for WebTorrent (WebSocket) trackers: N WebSocket connections, each a
 * simulated browser peer that announces with SDP offers and answers the offers relayed to it.
 *
 * Build:  gcc -O2 -Wall -Wextra -o /tmp/wsload bench/wsload.c -lpthread   (libc only)
 *
 * Each connection does an RFC 6455 client handshake (random Sec-WebSocket-Key, Sec-WebSocket-Accept
 * checked) and sends masked text frames, as a browser does; ws:// only (no TLS), and no
 * permessage-deflate offer (browsers and npm ws offer it; bittorrent-tracker turns it off). It has a peer_id and --per-conn slots,
 * each slot a torrent of the pool (--torrents, info_hashes as udpload's pool: entry i a pure
 * function of --seed and i), so swarms hold conns x per-conn / torrents peers each. An announce is
 * what webtorrent 3 sends, same keys in the same order:
 *   {"numwant":5,"uploaded":0,"downloaded":D,"left":L,"event":"started","action":"announce",
 *    "info_hash":…,"peer_id":…,"offers":[{"offer":{"type":"offer","sdp":…},"offer_id":…},…]}
 * with --offers offers of a 529-byte SDP (line for line what node-datachannel 0.33.4 gathers on
 * loopback, captured from webtorrent 3.0.21, with random session id, ufrag, pwd, fingerprint and
 * port; 64 variants), "event":"started" on a slot's first announce and no event after, left 0 for
 * --seeders percent of the slots. The peer_id is "-WW0300-" and 12 printable characters, as
 * webtorrent's (the first 6 encode the connection's number). An offer relayed to a
 * connection is answered at once, as the client does: {"action":"announce","info_hash":…,
 * "peer_id":<own>,"to_peer_id":<offerer>,"answer":{"type":"answer","sdp":…},"offer_id":…}.
 * Ids are 20 bytes written as JSON.stringify writes a binary string (bytes >= 0x80 as 2-byte UTF-8,
 * control characters as \u00XX or \n etc.); incoming ids are decoded from any valid JSON spelling.
 * The offer_id (20 random bytes in real clients) carries the offerer's connection, the slot and a
 * send timestamp in its first 10 bytes: a relayed offer or answer that reaches the wrong
 * connection or torrent, or whose ids do not decode, counts as misrouted. Incoming messages are parsed minimally (top-level
 * keys only): a message with an "offer" is an offer, with an "answer" an answer, with a
 * "failure reason" a failure; any other announce message is the reply to this connection's
 * outstanding announce of that info_hash.
 *
 * Load (after every connection is open, so the population is complete):
 *   closed loop (default): --window W announces in flight in total; each reply sends the next
 *     announce of the slot that has waited longest, so every slot re-announces in turn.
 *   open loop (--rate R): announce i is due at t0 + i/R, sent on the slot that has waited longest;
 *     its latency counts from the due time; with no slot free it is not sent (no_idle).
 *   idle (--idle S): every slot announces once; when every announce is settled (replied, failed or
 *     timed out) and no message arrived for a second, the connections stay open and silent S seconds while the tracker's RSS is read
 *     each second (--pid). rss_per_conn = (RSS at the end - RSS before connecting) / connections.
 * Measured: announce replies/s, offers received/s (offers the tracker forwarded), answers
 * received/s (answers it relayed), announce -> reply latency (p50/p90/p99/max) and announce ->
 * answer latency, over the --duration window after --warmup; errors over the whole run: failure
 * replies, misrouted, bad frames (masked, reserved bits, bad opcode, fragmented control, > 1 MiB),
 * bad messages (not an object, no action), server closes, handshake and connect failures,
 * announce timeouts. A closed connection reconnects after 1 s and announces "started" again.
 * --pid PID: the tracker's RSS before connecting, with every connection open, each second, at the
 * end, and its CPU use (cores) over the measured window (idle mode: over the hold).
 *
 * Limits: one fd per connection: the soft RLIMIT_NOFILE is raised to the hard one, and the tool
 * refuses more connections than fit. Loopback has ~28k ephemeral ports per source address, so
 * connection i binds 127.0.0.(1 + i % S) with --src S (default: one address per 25,000
 * connections). At most --pending connections handshake at a time (a burst of 10k SYNs would
 * overflow a listen backlog and stall on SYN retries). Every run ends by itself: --setup seconds
 * for opening (and the idle mode's announce round), then the warm-up and duration, or the idle
 * hold. Output: readable lines, then one `RESULT {json}` line. Exit 0, or 2 if the run could not
 * start (bad option, no connection opened).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long long u64; /* prints as %llu without casts */
#define MAXMSG (1u << 20)       /* a bigger incoming message is a bad frame */
#define SUB 64
#define HB (SUB + SUB * 26) /* latency histogram: exact below 64 us, then 64 buckets per power of two */
#define NSDP 64
#define RBUF (1 << 18)
#define PEER_PREFIX "-WW0300-" /* webtorrent 3.0.x; then 6 chars of the connection number, 6 random */

static const char *opt_url = "ws://127.0.0.1:6969/announce";
static int opt_conns = 1000, opt_threads = 1, opt_per = 1, opt_offers = 5, opt_window = 128, opt_srcs = 0;
static int opt_pending = 128, opt_seeders = 25, opt_pid = 0;
static long opt_torrents = 100;
static double opt_rate = 0, opt_dur = 10, opt_warm = 2, opt_idle = 0, opt_timeout_ms = 10000, opt_setup = 0;
static u64 opt_seed = 1;

static char host[300], path[512], hosthdr[300];
static struct sockaddr_storage dst;
static socklen_t dstlen;
static uint8_t *pool; /* opt_torrents x 20 bytes */
static char *sdp_offer[NSDP], *sdp_answer[NSDP]; /* JSON-escaped, without quotes */
static int sdp_offer_len[NSDP], sdp_answer_len[NSDP];
static volatile sig_atomic_t interrupted;
static int g_go, g_stop; /* set by main, read by workers (atomics) */
static u64 g_t0, g_t_start, g_t_end;

static u64 now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}
static u64 mix(u64 *x) { /* splitmix64 */
  u64 z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
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
  if ((double)want < p * (double)n || !want) want++;
  for (int i = 0; i < HB && n; i++) if ((acc += h[i]) >= want) return hval(i);
  return 0;
}

/* ---------------- SHA-1 and base64, for the handshake only ---------------- */
static uint32_t rol(uint32_t v, int n) { return v << n | v >> (32 - n); }
static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, w[80];
  size_t total = (len + 9 + 63) / 64 * 64;
  uint8_t blk[64];
  for (size_t off = 0; off < total; off += 64) {
    for (int i = 0; i < 64; i++) {
      size_t k = off + (size_t)i;
      blk[i] = k < len ? msg[k] : k == len ? 0x80 : 0;
      if (k >= total - 8) blk[i] = (uint8_t)((u64)len * 8 >> (8 * (total - 1 - k)));
    }
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)blk[4 * i] << 24 | blk[4 * i + 1] << 16 | blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f = i < 20 ? (b & c) | (~b & d) : i < 40 || i >= 60 ? b ^ c ^ d : (b & c) | (b & d) | (c & d);
      uint32_t k = i < 20 ? 0x5A827999 : i < 40 ? 0x6ED9EBA1 : i < 60 ? 0x8F1BBCDC : 0xCA62C1D6;
      uint32_t tmp = rol(a, 5) + f + e + k + w[i];
      e = d; d = c; c = rol(b, 30); b = a; a = tmp;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}
#define B64 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
static void base64(const uint8_t *in, int n, char *out) {
  static const char t[] = B64;
  int o = 0;
  for (int i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63]; out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

/* ---------------- JSON: binary strings out, minimal top-level parse in ---------------- */
/* n bytes as JSON.stringify writes a binary string (one char per byte): returns the end */
static char *put_bin(char *p, const uint8_t *b, int n) {
  static const char hx[] = "0123456789abcdef";
  *p++ = '"';
  for (int i = 0; i < n; i++) {
    uint8_t c = b[i];
    if (c >= 0x80) { *p++ = (char)(0xC0 | c >> 6); *p++ = (char)(0x80 | (c & 63)); }
    else if (c == '"' || c == '\\') { *p++ = '\\'; *p++ = (char)c; }
    else if (c >= 0x20) *p++ = (char)c;
    else if (c == 8 || c == 9 || c == 10 || c == 12 || c == 13) { *p++ = '\\'; *p++ = "btn?fr"[c - 8]; }
    else { memcpy(p, "\\u00", 4); p[4] = hx[c >> 4]; p[5] = hx[c & 15]; p += 6; }
  }
  *p++ = '"';
  return p;
}
static int hexv(int c) { return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1; }
/* a string after its opening quote: decodes up to cap chars into out (when out), each char's code
   point; *bin stays 1 while every char is U+0000..U+00FF. Returns the end, or NULL if malformed. */
static const char *jstr(const char *p, const char *e, uint8_t *out, int cap, int *n, int *bin) {
  int k = 0, isbin = 1;
  if (!out && !n && !bin) /* only skipping (SDPs): the first quote after an even run of backslashes */
    for (const char *s = p;;) {
      const char *q = memchr(p, '"', (size_t)(e - p)), *r;
      if (!q) return NULL;
      for (r = q; r > s && r[-1] == '\\'; r--) {}
      if (!((q - r) & 1)) return q + 1;
      p = q + 1;
    }
  while (p < e) {
    unsigned c = (uint8_t)*p++, cp;
    if (c == '"') { if (n) *n = k; if (bin) *bin = isbin; return p; }
    if (c == '\\') {
      if (p >= e) return NULL;
      c = (uint8_t)*p++;
      switch (c) {
      case '"': case '\\': case '/': cp = c; break;
      case 'b': cp = 8; break;
      case 'f': cp = 12; break;
      case 'n': cp = 10; break;
      case 'r': cp = 13; break;
      case 't': cp = 9; break;
      case 'u':
        if (e - p < 4) return NULL;
        cp = 0;
        for (int j = 0; j < 4; j++) { int v = hexv(p[j]); if (v < 0) return NULL; cp = cp << 4 | (unsigned)v; }
        p += 4;
        break;
      default: return NULL;
      }
    } else if (c < 0x20) return NULL;
    else if (c < 0x80) cp = c;
    else if ((c & 0xE0) == 0xC0 && p < e && ((uint8_t)*p & 0xC0) == 0x80) cp = (c & 31) << 6 | ((uint8_t)*p++ & 63);
    else { /* a longer UTF-8 sequence: not a binary char; skip its continuation bytes */
      cp = 0x100;
      while (p < e && ((uint8_t)*p & 0xC0) == 0x80) p++;
    }
    if (cp > 0xFF || (c >= 0x80 && cp < 0x80)) isbin = 0; /* not one byte, or an overlong encoding */
    if (out && k < cap) out[k] = (uint8_t)cp;
    k++;
  }
  return NULL;
}
static int peer_conn(const uint8_t *pid) { /* the connection number in a wsload peer_id, or -1 */
  int v = 0;
  if (memcmp(pid, PEER_PREFIX, 8)) return -1;
  for (int i = 5; i >= 0; i--) {
    const char *q = memchr(B64, pid[8 + i], 64);
    if (!q || !pid[8 + i]) return -1;
    v = v << 6 | (int)(q - B64);
  }
  return v;
}
static const char *jws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}
static const char *jskip(const char *p, const char *e) { /* any value; returns its end or NULL */
  p = jws(p, e);
  if (p >= e) return NULL;
  if (*p == '"') return jstr(p + 1, e, NULL, 0, NULL, NULL);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      char c = *p++;
      if (c == '"') { if (!(p = jstr(p, e, NULL, 0, NULL, NULL))) return NULL; }
      else if (c == '{' || c == '[') depth++;
      else if ((c == '}' || c == ']') && --depth == 0) return p;
    }
    return NULL;
  }
  const char *s = p;
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
  return p > s ? p : NULL;
}
typedef struct {
  int action; /* 0 none, 1 announce, 2 scrape, 3 other */
  int ih, pid, oid, offer, answer, failure; /* present (ids: and a valid 20-char binary string) */
  uint8_t ihb[20], pidb[20], oidb[20];
  char reason[96];
} msg_t;
static int parse_msg(const char *p, const char *e, msg_t *m) { /* 0: not a JSON object */
  memset(m, 0, sizeof *m);
  p = jws(p, e);
  if (p >= e || *p++ != '{') return 0;
  p = jws(p, e);
  if (p < e && *p == '}') return 1;
  for (;;) {
    uint8_t key[24];
    int kn, bin;
    p = jws(p, e);
    if (p >= e || *p != '"' || !(p = jstr(p + 1, e, key, sizeof key, &kn, &bin))) return 0;
    p = jws(p, e);
    if (p >= e || *p++ != ':') return 0;
    p = jws(p, e);
    if (p >= e) return 0;
    const char *v = p;
#define KEY(s) (kn == (int)sizeof(s) - 1 && !memcmp(key, s, sizeof(s) - 1))
    uint8_t *idb = KEY("info_hash") ? m->ihb : KEY("peer_id") ? m->pidb : KEY("offer_id") ? m->oidb : NULL;
    if (idb && *v == '"') {
      int n;
      if (!(p = jstr(v + 1, e, idb, 20, &n, &bin))) return 0;
      if (n == 20 && bin) *(idb == m->ihb ? &m->ih : idb == m->pidb ? &m->pid : &m->oid) = 1;
    } else if (KEY("action") && *v == '"') {
      uint8_t a[12];
      int n;
      if (!(p = jstr(v + 1, e, a, sizeof a, &n, &bin))) return 0;
      m->action = n == 8 && !memcmp(a, "announce", 8) ? 1 : n == 6 && !memcmp(a, "scrape", 6) ? 2 : 3;
    } else if (KEY("failure reason") && *v == '"') {
      int n;
      if (!(p = jstr(v + 1, e, (uint8_t *)m->reason, sizeof m->reason - 1, &n, &bin))) return 0;
      m->reason[n < (int)sizeof m->reason - 1 ? n : (int)sizeof m->reason - 1] = 0;
      m->failure = 1;
    } else {
      if (!(p = jskip(v, e))) return 0;
      if (KEY("offer") && *v == '{') m->offer = 1;
      if (KEY("answer") && *v == '{') m->answer = 1;
    }
#undef KEY
    p = jws(p, e);
    if (p >= e) return 0;
    if (*p == '}') return 1;
    if (*p++ != ',') return 0;
  }
}

/* ---------------- SDPs: realistic libdatachannel offers and answers, pre-escaped ---------------- */
static char *make_sdp(u64 *r, int answer, int *len) {
  char raw[1024], fp[100], ufrag[5], pwd[23], *out = malloc(1200), *o = out;
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int f = 0;
  for (int i = 0; i < 32; i++) f += sprintf(fp + f, "%s%02X", i ? ":" : "", (unsigned)(mix(r) & 255));
  for (int i = 0; i < 4; i++) ufrag[i] = al[mix(r) % 62];
  for (int i = 0; i < 22; i++) pwd[i] = al[mix(r) % 64];
  ufrag[4] = pwd[22] = 0;
  unsigned port = (unsigned)(32768 + mix(r) % 28000);
  int n = snprintf(raw, sizeof raw, /* line for line what node-datachannel 0.33.4 gathers on loopback */
                   "v=0\r\no=rtc %u 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
                   "a=msid-semantic:WMS *\r\na=ice-options:ice2,trickle\r\na=fingerprint:sha-256 %s\r\n"
                   "m=application %u UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\n"
                   "a=sendrecv\r\na=sctp-port:5000\r\na=max-message-size:262144\r\na=setup:%s\r\n"
                   "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=candidate:1 1 UDP 2114977791 127.0.0.1 %u typ host\r\n"
                   "a=end-of-candidates\r\n",
                   (unsigned)(100000000u + mix(r) % 4000000000u), fp, port, answer ? "active" : "actpass", ufrag,
                   pwd, port);
  for (int i = 0; i < n; i++) {
    if (raw[i] == '\r') { *o++ = '\\'; *o++ = 'r'; }
    else if (raw[i] == '\n') { *o++ = '\\'; *o++ = 'n'; }
    else *o++ = raw[i];
  }
  *len = (int)(o - out);
  return out;
}
static int sdp_raw_len; /* bytes of SDP text, before JSON escaping (for the report) */

/* ---------------- connections, slots, threads ---------------- */
enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN };
typedef struct {
  int fd, state, dirty, infrag;
  uint32_t id, evmask; /* id: global connection number */
  char accept[32];
  uint8_t peer_id[20];
  char *in, *out, *frag;
  uint32_t inlen, incap, outlen, outoff, outcap, fraglen, fragcap;
  u64 since, retry; /* state entered; reconnect due (C_IDLE) */
} conn_t;
typedef struct {
  uint32_t tor;
  uint8_t seeder, out, queued, started;
  u64 sent;
} slot_t;
typedef struct {
  u64 ann_sent, ann_ok, offers_sent, offers_in, answers_sent, answers_in, bytes_in, bytes_out;
  u64 failures, misrouted, bad_frames, bad_msgs, closes, handshake_fail, conn_fail, timeouts, lost, no_idle;
  u64 unmatched, other;
  u64 hist[HB], ahist[HB];
} stats_t;
typedef struct {
  int id, ep, nc, inflight, window, pending, next_open;
  pthread_t th;
  u64 rng, n_next, last_maint;
  uint32_t base;
  conn_t *c;
  slot_t *s;
  uint32_t *ring, *dirty;
  u64 rh, rn;
  int ndirty;
  double period_ns;
  char *scratch, *rbuf; /* scratch: messages being built; rbuf: bytes just read */
  stats_t st;
  char reason[96];
  u64 pub_open, pub_msgs, pub_done; /* progress for main (atomics) */
} thr_t;

static inline int win(u64 now) {
  return !__atomic_load_n(&g_go, __ATOMIC_ACQUIRE) ? 0 : opt_idle > 0 ? 1 : now >= g_t_start && now < g_t_end;
}
static void grow(char **b, uint32_t *cap, u64 need) {
  if (need <= *cap) return;
  u64 nc = *cap ? *cap : 4096;
  while (nc < need) nc *= 2;
  if (!(*b = realloc(*b, nc))) { perror("realloc"); exit(1); }
  *cap = (uint32_t)nc;
}
static void events(thr_t *t, conn_t *c, uint32_t want) {
  struct epoll_event ev = {.events = want, .data.u32 = (uint32_t)(c - t->c)};
  if (want != c->evmask) epoll_ctl(t->ep, c->evmask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
  c->evmask = want;
}
/* a masked client frame (FIN, opcode op) with payload p[0..n) appended to c->out */
static void frame(thr_t *t, conn_t *c, int op, const char *p, size_t n) {
  grow(&c->out, &c->outcap, (u64)c->outlen + n + 14);
  uint8_t *o = (uint8_t *)c->out + c->outlen;
  u64 r = mix(&t->rng), m8;
  uint32_t mask = (uint32_t)r;
  int h = 2;
  o[0] = (uint8_t)(0x80 | op);
  if (n < 126) o[1] = (uint8_t)(0x80 | n);
  else if (n < 65536) { o[1] = 0x80 | 126; o[2] = (uint8_t)(n >> 8); o[3] = (uint8_t)n; h = 4; }
  else { o[1] = 0x80 | 127; for (int i = 0; i < 8; i++) o[2 + i] = (uint8_t)((u64)n >> (56 - 8 * i)); h = 10; }
  memcpy(o + h, &mask, 4);
  m8 = (u64)mask << 32 | mask;
  uint8_t *d = o + h + 4;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) { u64 v; memcpy(&v, p + i, 8); v ^= m8; memcpy(d + i, &v, 8); }
  for (; i < n; i++) d[i] = (uint8_t)p[i] ^ ((uint8_t *)&mask)[i & 3];
  c->outlen += (uint32_t)(h + 4 + n);
  if (!c->dirty) { c->dirty = 1; t->dirty[t->ndirty++] = (uint32_t)(c - t->c); }
  t->st.bytes_out += h + 4 + n;
}
static void requeue(thr_t *t, uint32_t si) {
  if (t->s[si].queued) return;
  t->s[si].queued = 1;
  t->ring[(t->rh + t->rn++) % ((u64)t->nc * opt_per)] = si;
}
static void conn_close(thr_t *t, conn_t *c, u64 now) {
  if (c->fd >= 0) close(c->fd);
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) t->pending--;
  if (c->state == C_OPEN) __atomic_sub_fetch(&t->pub_open, 1, __ATOMIC_RELAXED);
  c->fd = -1; c->state = C_IDLE; c->evmask = 0; c->inlen = c->outlen = c->outoff = c->fraglen = 0; c->infrag = 0;
  c->retry = now + 1000000000ull;
  for (int j = 0; j < opt_per; j++) {
    slot_t *s = &t->s[(size_t)(c - t->c) * opt_per + j];
    if (s->out) { s->out = 0; t->inflight--; t->st.lost++; }
    s->started = 0;
  }
}
static void conn_open(thr_t *t, conn_t *c, u64 now) {
  int one = 1, src = opt_srcs > 1 ? (int)(c->id % (uint32_t)opt_srcs) : 0;
  c->fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) { perror("socket"); exit(1); }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt_srcs > 1 && dst.ss_family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)src)};
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind 127.0.0.x"); exit(1); }
  }
  c->state = C_CONNECTING; c->since = now; t->pending++;
  if (connect(c->fd, (struct sockaddr *)&dst, dstlen) < 0 && errno != EINPROGRESS) {
    t->st.conn_fail++;
    conn_close(t, c, now);
    return;
  }
  events(t, c, EPOLLIN | EPOLLOUT);
}
static void handshake_send(thr_t *t, conn_t *c, u64 now) {
  uint8_t key[16], dig[20];
  char k64[32], cat[128];
  for (int i = 0; i < 16; i += 8) { u64 r = mix(&t->rng); memcpy(key + i, &r, 8); }
  base64(key, 16, k64);
  int n = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", k64);
  sha1((uint8_t *)cat, (size_t)n, dig);
  base64(dig, 20, c->accept);
  grow(&c->out, &c->outcap, 1024);
  c->outlen = (uint32_t)snprintf(c->out, 1024,
                                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
                                 path, hosthdr, k64);
  c->outoff = 0; c->state = C_HANDSHAKE; c->since = now;
  if (!c->dirty) { c->dirty = 1; t->dirty[t->ndirty++] = (uint32_t)(c - t->c); }
}
static int handshake_check(conn_t *c, const char *b, size_t hl) { /* the 101 response's header */
  char line[256];
  int ok_status = hl > 12 && !memcmp(b, "HTTP/1.1 101", 12), ok_accept = 0;
  const char *p = memchr(b, '\n', hl), *e = b + hl;
  while (p && ++p < e) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    size_t n = (size_t)((nl ? nl : e) - p);
    if (n >= sizeof line) n = sizeof line - 1;
    memcpy(line, p, n); line[n] = 0;
    if (!strncasecmp(line, "sec-websocket-accept:", 21)) {
      char *v = line + 21;
      while (*v == ' ') v++;
      v[strcspn(v, " \r")] = 0;
      ok_accept = !strcmp(v, c->accept);
    }
    p = nl;
  }
  return ok_status && ok_accept;
}

/* ---------------- announces, answers, replies ---------------- */
static void announce(thr_t *t, uint32_t si, u64 now, u64 from) {
  slot_t *s = &t->s[si];
  conn_t *c = &t->c[si / (uint32_t)opt_per];
  char *p = t->scratch, *b = p;
  uint32_t stamp = (uint32_t)(now / 1000);
  p += sprintf(p, "{\"numwant\":%d,\"uploaded\":0,\"downloaded\":%d,\"left\":%d,", opt_offers, s->seeder ? 1048576 : 65536,
               s->seeder ? 0 : 983040);
  if (!s->started) p += sprintf(p, "\"event\":\"started\",");
  p += sprintf(p, "\"action\":\"announce\",\"info_hash\":");
  p = put_bin(p, pool + 20 * (size_t)s->tor, 20);
  p = put_bin(p + sprintf(p, ",\"peer_id\":"), c->peer_id, 20);
  if (opt_offers) p += sprintf(p, ",\"offers\":[");
  for (int k = 0; k < opt_offers; k++) {
    uint8_t oid[20];
    u64 r1 = mix(&t->rng), r2 = mix(&t->rng);
    int v = (int)(r2 >> 58);
    memcpy(oid, &c->id, 4); oid[4] = (uint8_t)(si % (uint32_t)opt_per); oid[5] = (uint8_t)k;
    memcpy(oid + 6, &stamp, 4); memcpy(oid + 10, &r1, 8); memcpy(oid + 18, &r2, 2);
    p += sprintf(p, "%s{\"offer\":{\"type\":\"offer\",\"sdp\":\"", k ? "," : "");
    memcpy(p, sdp_offer[v], (size_t)sdp_offer_len[v]); p += sdp_offer_len[v];
    p = put_bin(p + sprintf(p, "\"},\"offer_id\":"), oid, 20);
    *p++ = '}';
  }
  if (opt_offers) *p++ = ']';
  *p++ = '}';
  frame(t, c, 1, b, (size_t)(p - b));
  s->started = 1; s->out = 1; s->sent = from; t->inflight++;
  if (win(now)) { t->st.ann_sent++; t->st.offers_sent += (u64)opt_offers; }
}
static int slot_of(thr_t *t, conn_t *c, const uint8_t *ih) { /* this connection's slot for ih, or -1 */
  uint32_t first = (uint32_t)(c - t->c) * (uint32_t)opt_per;
  for (int j = 0; j < opt_per; j++)
    if (!memcmp(pool + 20 * (size_t)t->s[first + j].tor, ih, 20)) return (int)(first + (uint32_t)j);
  return -1;
}
static void slot_done(thr_t *t, int si) { /* replied, failed or timed out: free for the next announce */
  __atomic_add_fetch(&t->pub_done, 1, __ATOMIC_RELAXED);
  t->s[si].out = 0;
  t->inflight--;
  if (opt_idle <= 0) requeue(t, (uint32_t)si);
}
static void on_message(thr_t *t, conn_t *c, const char *b, size_t n, u64 now) {
  msg_t m;
  int w = win(now);
  __atomic_add_fetch(&t->pub_msgs, 1, __ATOMIC_RELAXED);
  if (!parse_msg(b, b + n, &m) || !m.action) { t->st.bad_msgs++; return; }
  int si = m.ih ? slot_of(t, c, m.ihb) : -1;
  if (m.failure) {
    t->st.failures++;
    if (!t->reason[0]) snprintf(t->reason, sizeof t->reason, "%s", m.reason);
    if (si >= 0 && t->s[si].out && !m.offer && !m.answer) slot_done(t, si);
    return;
  }
  if (m.action != 1) { t->st.other++; return; }
  if (m.offer) {
    int from = m.pid ? peer_conn(m.pidb) : -1;
    if (w) t->st.offers_in++;
    if (si < 0 || !m.oid || from < 0 || from >= opt_conns || (uint32_t)from == c->id) {
      t->st.misrouted++;
      return;
    }
    char *p = t->scratch, *s = p;
    int v = (int)(mix(&t->rng) >> 58);
    p = put_bin(p + sprintf(p, "{\"action\":\"announce\",\"info_hash\":"), m.ihb, 20);
    p = put_bin(p + sprintf(p, ",\"peer_id\":"), c->peer_id, 20);
    p = put_bin(p + sprintf(p, ",\"to_peer_id\":"), m.pidb, 20);
    p += sprintf(p, ",\"answer\":{\"type\":\"answer\",\"sdp\":\"");
    memcpy(p, sdp_answer[v], (size_t)sdp_answer_len[v]); p += sdp_answer_len[v];
    p = put_bin(p + sprintf(p, "\"},\"offer_id\":"), m.oidb, 20);
    *p++ = '}';
    frame(t, c, 1, s, (size_t)(p - s));
    if (w) t->st.answers_sent++;
    return;
  }
  if (m.answer) {
    uint32_t to, stamp;
    memcpy(&to, m.oidb, 4); memcpy(&stamp, m.oidb + 6, 4);
    if (w) t->st.answers_in++;
    if (si < 0 || !m.oid || to != c->id || m.oidb[4] != (uint8_t)((uint32_t)si % (uint32_t)opt_per) || !m.pid ||
        peer_conn(m.pidb) < 0) {
      t->st.misrouted++;
      return;
    }
    if (w) t->st.ahist[hidx((uint32_t)((uint32_t)(now / 1000) - stamp))]++;
    return;
  }
  if (si < 0 || !t->s[si].out) { t->st.unmatched++; return; } /* a reply to nothing outstanding (or late) */
  if (w) { t->st.ann_ok++; t->st.hist[hidx((now > t->s[si].sent ? now - t->s[si].sent : 0) / 1000)]++; }
  slot_done(t, si);
}

/* ---------------- reading: handshake response, frames ---------------- */
static int bad(thr_t *t, conn_t *c, u64 now) { t->st.bad_frames++; conn_close(t, c, now); return -1; }
/* consumes whole frames (or the handshake response) from b[0..n): returns bytes used, -1 if closed */
static long frames(thr_t *t, conn_t *c, const char *b, size_t n, u64 now) {
  size_t pos = 0;
  if (c->state == C_HANDSHAKE) {
    const char *e = memmem(b, n, "\r\n\r\n", 4);
    if (!e) {
      if (n > 8192) { t->st.handshake_fail++; conn_close(t, c, now); return -1; }
      return 0;
    }
    if (!handshake_check(c, b, (size_t)(e + 4 - b))) { t->st.handshake_fail++; conn_close(t, c, now); return -1; }
    pos = (size_t)(e + 4 - b);
    c->state = C_OPEN; t->pending--;
    __atomic_add_fetch(&t->pub_open, 1, __ATOMIC_RELAXED);
    for (int j = 0; j < opt_per; j++) requeue(t, (uint32_t)(c - t->c) * (uint32_t)opt_per + (uint32_t)j);
  }
  while (pos + 2 <= n) {
    const uint8_t *h = (const uint8_t *)b + pos;
    int op = h[0] & 15, fin = h[0] >> 7;
    size_t hl = 2;
    u64 len = h[1] & 127;
    if ((h[0] & 0x70) || (h[1] & 0x80)) return bad(t, c, now); /* reserved bits; a masked server frame */
    if (len == 126) { if (pos + 4 > n) break; len = (u64)h[2] << 8 | h[3]; hl = 4; }
    else if (len == 127) {
      if (pos + 10 > n) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
      hl = 10;
    }
    if (len > MAXMSG) return bad(t, c, now);
    if (pos + hl + len > n) break;
    const char *pl = b + pos + hl;
    pos += hl + (size_t)len;
    if (op >= 8 && (!fin || len > 125)) return bad(t, c, now);
    if (op == 1 || op == 0) {
      if ((op == 1) == c->infrag) return bad(t, c, now); /* a new message inside one, or a stray continuation */
      if (op == 1 && fin) { on_message(t, c, pl, (size_t)len, now); continue; }
      if (c->fraglen + len > MAXMSG) return bad(t, c, now);
      grow(&c->frag, &c->fragcap, c->fraglen + len + 1);
      memcpy(c->frag + c->fraglen, pl, (size_t)len);
      c->fraglen += (uint32_t)len;
      c->infrag = 1;
      if (fin) { c->infrag = 0; on_message(t, c, c->frag, c->fraglen, now); c->fraglen = 0; }
    } else if (op == 8) { /* the server closes: answer in kind, then reconnect later */
      t->st.closes++;
      c->outlen = c->outoff = 0;
      frame(t, c, 8, pl, len >= 2 ? 2 : 0);
      send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
      conn_close(t, c, now);
      return -1;
    } else if (op == 9) frame(t, c, 10, pl, (size_t)len);
    else if (op != 10) return bad(t, c, now);
  }
  return (long)pos;
}
static void on_readable(thr_t *t, conn_t *c, u64 now) {
  for (int rounds = 0; rounds < 8 && c->fd >= 0; rounds++) {
    ssize_t r = recv(c->fd, t->rbuf, RBUF, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { /* EOF or error */
      if (c->state == C_OPEN) t->st.closes++; else if (c->state == C_HANDSHAKE) t->st.handshake_fail++;
      conn_close(t, c, now);
      return;
    }
    t->st.bytes_in += (u64)r;
    const char *b = t->rbuf;
    size_t n = (size_t)r;
    if (c->inlen) { /* a partial frame was left: append, and parse from the connection's buffer */
      grow(&c->in, &c->incap, (u64)c->inlen + n);
      memcpy(c->in + c->inlen, b, n);
      b = c->in; n = c->inlen += (uint32_t)n;
    }
    long used = frames(t, c, b, n, now);
    if (used < 0 || c->fd < 0) return;
    size_t left = n - (size_t)used;
    if (b == c->in) { if (used && left) memmove(c->in, c->in + used, left); }
    else if (left) { grow(&c->in, &c->incap, left); memcpy(c->in, b + used, left); }
    c->inlen = (uint32_t)left;
    if (!left && c->incap > (1u << 16)) { free(c->in); c->in = NULL; c->incap = 0; } /* no big buffer kept idle */
    if (r < RBUF) return;
  }
}
static void flush(thr_t *t, conn_t *c, u64 now) {
  while (c->fd >= 0 && c->state != C_CONNECTING && c->outoff < c->outlen) {
    ssize_t r = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) c->outoff += (uint32_t)r;
    else if (r < 0 && errno == EINTR) continue;
    else if (r < 0 && errno == EAGAIN) break;
    else { t->st.closes += c->state == C_OPEN; conn_close(t, c, now); return; }
  }
  if (c->fd < 0) return;
  if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
  if (c->outcap > (1u << 16) && !c->outlen) { free(c->out); c->out = NULL; c->outcap = 0; }
  events(t, c, EPOLLIN | (c->outlen || c->state == C_CONNECTING ? EPOLLOUT : 0));
}
static void flush_dirty(thr_t *t, u64 now) {
  for (int i = 0; i < t->ndirty; i++) { conn_t *c = &t->c[t->dirty[i]]; c->dirty = 0; flush(t, c, now); }
  t->ndirty = 0;
}

/* ---------------- the worker ---------------- */
static void maint(thr_t *t, u64 now) { /* 10 times a second: timeouts, opening, reconnects, progress */
  u64 to = (u64)(opt_timeout_ms * 1e6);
  for (int k = 0; k < t->nc; k++) {
    conn_t *c = &t->c[k];
    if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE) && now - c->since > to) {
      if (c->state == C_CONNECTING) t->st.conn_fail++; else t->st.handshake_fail++;
      conn_close(t, c, now);
    }
    if (c->state == C_OPEN)
      for (int j = 0; j < opt_per; j++) {
        uint32_t si = (uint32_t)k * (uint32_t)opt_per + (uint32_t)j;
        if (t->s[si].out && now > t->s[si].sent + to) { t->st.timeouts++; slot_done(t, (int)si); }
      }
  }
}
static void open_new(thr_t *t, u64 now) { /* first opening, --pending at a time */
  while (t->pending < opt_pending / opt_threads + 1 && t->next_open < t->nc) conn_open(t, &t->c[t->next_open++], now);
}
static void reopen(thr_t *t, u64 now) { /* connections closed a second ago */
  if (__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) return;
  for (int k = 0; k < t->next_open && t->pending < opt_pending / opt_threads + 1; k++)
    if (t->c[k].state == C_IDLE && now >= t->c[k].retry) conn_open(t, &t->c[k], now);
}
static int pop_slot(thr_t *t) { /* the open slot that has waited longest, or -1 */
  u64 cap = (u64)t->nc * opt_per;
  while (t->rn) {
    uint32_t si = t->ring[t->rh];
    t->rh = (t->rh + 1) % cap; t->rn--;
    t->s[si].queued = 0;
    if (t->c[si / (uint32_t)opt_per].state == C_OPEN && !t->s[si].out) return (int)si;
  }
  return -1;
}
static void *worker(void *arg) {
  thr_t *t = arg;
  struct epoll_event evs[256];
  if ((t->ep = epoll_create1(0)) < 0) { perror("epoll"); exit(1); }
  for (;;) {
    u64 now = now_ns(), wait = 10000000;
    if (__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) break;
    if (t->next_open < t->nc) open_new(t, now);
    if (now - t->last_maint > 100000000ull) { maint(t, now); reopen(t, now); t->last_maint = now; }
    if (__atomic_load_n(&g_go, __ATOMIC_ACQUIRE) && now < g_t_end) {
      int si;
      if (opt_idle > 0) {
        while ((si = pop_slot(t)) >= 0) announce(t, (uint32_t)si, now, now);
      } else if (opt_rate > 0) {
        for (int b = 0; b < 4096; b++) {
          u64 due = g_t0 + (u64)((double)t->n_next * t->period_ns);
          if (due > now) { wait = due - now < wait ? due - now : wait; break; }
          t->n_next++;
          if ((si = pop_slot(t)) >= 0) announce(t, (uint32_t)si, now, due);
          else if (win(now)) t->st.no_idle++;
        }
      } else
        while (t->inflight < t->window && (si = pop_slot(t)) >= 0) announce(t, (uint32_t)si, now, now);
    }
    flush_dirty(t, now);
    struct timespec ts = {0, (long)wait};
    int n = epoll_pwait2(t->ep, evs, 256, &ts, NULL);
    if (n < 0 && errno == ENOSYS) n = epoll_wait(t->ep, evs, 256, (int)(wait / 1000000));
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = &t->c[evs[i].data.u32];
      if (c->fd < 0) continue;
      if (c->state == C_CONNECTING && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (evs[i].events & (EPOLLERR | EPOLLHUP))) { t->st.conn_fail++; conn_close(t, c, now); continue; }
        handshake_send(t, c, now);
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(t, c, now);
      if (c->fd >= 0 && (evs[i].events & EPOLLOUT) && !c->dirty) flush(t, c, now);
    }
    flush_dirty(t, now);
  }
  return NULL;
}

/* ---------------- main: setup, phases, report ---------------- */
static long rss_kib(int pid) {
  char fn[64], line[256];
  long v = -1;
  snprintf(fn, sizeof fn, "/proc/%d/status", pid);
  FILE *f = fopen(fn, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6);
  fclose(f);
  return v;
}
static double cpu_s(int pid) { /* utime + stime of the whole process, in seconds */
  char fn[64], buf[1024], *p;
  snprintf(fn, sizeof fn, "/proc/%d/stat", pid);
  FILE *f = fopen(fn, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  if (!(p = strrchr(buf, ')'))) return -1;
  unsigned long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static void on_signal(int s) { (void)s; interrupted = 1; }
static void sleep_until(u64 t) {
  for (u64 now = now_ns(); now < t && !interrupted; now = now_ns()) {
    u64 d = t - now > 50000000ull ? 50000000ull : t - now;
    struct timespec ts = {0, (long)d};
    nanosleep(&ts, NULL);
  }
}
static u64 sum_pub(thr_t *th, size_t off) {
  u64 s = 0;
  for (int i = 0; i < opt_threads; i++) s += __atomic_load_n((u64 *)((char *)&th[i] + off), __ATOMIC_RELAXED);
  return s;
}
static void parse_url(void) {
  const char *u = opt_url, *hp, *sl;
  if (strncmp(u, "ws://", 5)) { fprintf(stderr, "wsload: only ws:// URLs (got %s)\n", u); exit(2); }
  hp = u + 5;
  sl = strchr(hp, '/');
  snprintf(path, sizeof path, "%s", sl ? sl : "/");
  size_t hl = sl ? (size_t)(sl - hp) : strlen(hp);
  if (hl >= sizeof host) exit(2);
  memcpy(hosthdr, hp, hl); hosthdr[hl] = 0;
  char port[16] = "80", *colon = strrchr(hosthdr, ':');
  snprintf(host, sizeof host, "%s", hosthdr);
  if (colon && !strchr(colon, ']')) { snprintf(port, sizeof port, "%s", colon + 1); host[colon - hosthdr] = 0; }
  if (host[0] == '[') { memmove(host, host + 1, strlen(host)); host[strlen(host) - 1] = 0; }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(host, port, &hints, &ai)) { fprintf(stderr, "wsload: cannot resolve %s\n", hosthdr); exit(2); }
  memcpy(&dst, ai->ai_addr, ai->ai_addrlen); dstlen = ai->ai_addrlen;
  freeaddrinfo(ai);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"url", 1, 0, 'u'}, {"conns", 1, 0, 'c'}, {"threads", 1, 0, 'T'}, {"torrents", 1, 0, 't'},
      {"per-conn", 1, 0, 'k'}, {"offers", 1, 0, 'o'}, {"window", 1, 0, 'w'}, {"rate", 1, 0, 'r'},
      {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'W'}, {"idle", 1, 0, 'i'}, {"timeout-ms", 1, 0, 'O'},
      {"setup", 1, 0, 'S'}, {"pending", 1, 0, 'p'}, {"src", 1, 0, 's'}, {"seeders", 1, 0, 'e'},
      {"pid", 1, 0, 'P'}, {"seed", 1, 0, 'x'}, {0, 0, 0, 0}};
  int bad_opt = 0;
  for (int o; (o = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
    switch (o) {
    case 'u': opt_url = optarg; break;
    case 'c': opt_conns = atoi(optarg); break;
    case 'T': opt_threads = atoi(optarg); break;
    case 't': opt_torrents = atol(optarg); break;
    case 'k': opt_per = atoi(optarg); break;
    case 'o': opt_offers = atoi(optarg); break;
    case 'w': opt_window = atoi(optarg); break;
    case 'r': opt_rate = atof(optarg); break;
    case 'd': opt_dur = atof(optarg); break;
    case 'W': opt_warm = atof(optarg); break;
    case 'i': opt_idle = atof(optarg); break;
    case 'O': opt_timeout_ms = atof(optarg); break;
    case 'S': opt_setup = atof(optarg); break;
    case 'p': opt_pending = atoi(optarg); break;
    case 's': opt_srcs = atoi(optarg); break;
    case 'e': opt_seeders = atoi(optarg); break;
    case 'P': opt_pid = atoi(optarg); break;
    case 'x': opt_seed = strtoull(optarg, NULL, 0); break;
    default: bad_opt = 1;
    }
  }
  if (bad_opt || optind != argc || opt_conns < 1 || opt_conns > 1000000 || opt_threads < 1 || opt_threads > 64 ||
      opt_threads > opt_conns || opt_torrents < 1 || opt_per < 1 || opt_per > 255 || opt_offers < 0 || opt_offers > 64 ||
      opt_window < 1 || opt_rate < 0 || !(opt_dur > 0 && opt_dur <= 3600) || opt_warm < 0 || opt_idle < 0 ||
      opt_idle > 3600 || opt_timeout_ms < 1 || opt_setup < 0 || opt_pending < 1 || opt_srcs < 0 || opt_srcs > 250 ||
      opt_seeders < 0 || opt_seeders > 100 || opt_pid < 0) {
    fprintf(stderr,
            "usage: wsload [--url ws://127.0.0.1:6969/announce] [--conns N(1000)] [--torrents T(100)]\n"
            "  [--per-conn K(1): torrents per connection] [--offers O(5)] [--seeders PCT(25)]\n"
            "  [--window W(128): closed loop, announces in flight] | [--rate R: open loop, announces/s]\n"
            "  | [--idle S: announce once, then hold the connections idle S s]\n"
            "  [--duration S(10)] [--warmup S(2)] [--timeout-ms T(10000)] [--setup S(30 + conns/200)]\n"
            "  [--threads N(1)] [--pending P(128): handshakes at a time] [--src S(auto): source addresses 127.0.0.1..S]\n"
            "  [--pid PID: the tracker's RSS and CPU] [--seed X(1): info_hash pool, as udpload -x]\n");
    return 2;
  }
  parse_url();
  if (!opt_srcs) opt_srcs = (opt_conns + 24999) / 25000;
  if (!opt_setup) opt_setup = 30 + opt_conns / 200.0;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if ((u64)opt_conns + 64 > (u64)rl.rlim_cur) {
    fprintf(stderr, "wsload: %d connections need more fds than RLIMIT_NOFILE %llu allows\n", opt_conns,
            (u64)rl.rlim_cur);
    return 2;
  }
  signal(SIGINT, on_signal); signal(SIGTERM, on_signal); signal(SIGPIPE, SIG_IGN);

  /* the info_hash pool, exactly udpload's (three splitmix64 words per entry, little-endian) */
  if (!(pool = malloc(20 * (size_t)opt_torrents + 4))) return 1;
  for (long i = 0; i < opt_torrents; i++) {
    u64 x = opt_seed * 0x100000001b3ull ^ ((u64)i * 0x9e3779b97f4a7c15ull), v[3];
    for (int w = 0; w < 3; w++) v[w] = mix(&x);
    memcpy(pool + 20 * i, v, 20);
  }
  u64 r = opt_seed ^ 0x77736c6f6164ull;
  for (int i = 0; i < NSDP; i++) {
    sdp_offer[i] = make_sdp(&r, 0, &sdp_offer_len[i]);
    sdp_answer[i] = make_sdp(&r, 1, &sdp_answer_len[i]);
  }
  for (int i = 0; i < sdp_offer_len[0]; i++) sdp_raw_len += sdp_offer[0][i] != '\\';

  thr_t *th = calloc((size_t)opt_threads, sizeof *th);
  u64 seedx = (u64)time(NULL) ^ (u64)getpid() << 32;
  long rss0 = opt_pid ? rss_kib(opt_pid) : -1;
  if (opt_pid && rss0 < 0) { fprintf(stderr, "wsload: no process %d\n", opt_pid); return 2; }
  for (int i = 0, base = 0; i < opt_threads; i++) {
    thr_t *t = &th[i];
    t->id = i;
    t->nc = opt_conns / opt_threads + (i < opt_conns % opt_threads);
    t->base = (uint32_t)base;
    t->rng = mix(&seedx);
    t->window = opt_window / opt_threads + (i < opt_window % opt_threads);
    if (t->window < 1) t->window = 1;
    t->period_ns = opt_rate > 0 ? 1e9 * opt_threads / opt_rate : 0;
    size_t ns = (size_t)t->nc * (size_t)opt_per;
    t->c = calloc((size_t)t->nc, sizeof *t->c);
    t->s = calloc(ns, sizeof *t->s);
    t->ring = calloc(ns, sizeof *t->ring);
    t->dirty = calloc((size_t)t->nc, sizeof *t->dirty);
    t->scratch = malloc(4096 + (size_t)opt_offers * 1400);
    t->rbuf = malloc(RBUF);
    if (!t->c || !t->s || !t->ring || !t->dirty || !t->scratch || !t->rbuf) return 1;
    for (int k = 0; k < t->nc; k++) {
      conn_t *c = &t->c[k];
      u64 pr = mix(&t->rng);
      c->fd = -1;
      c->id = (uint32_t)(base + k);
      memcpy(c->peer_id, PEER_PREFIX, 8);
      for (int i = 0; i < 6; i++) c->peer_id[8 + i] = (uint8_t)B64[c->id >> (6 * i) & 63];
      for (int i = 0; i < 6; i++) c->peer_id[14 + i] = (uint8_t)B64[pr >> (6 * i) & 63];
      for (int j = 0; j < opt_per; j++) {
        slot_t *s = &t->s[(size_t)k * opt_per + j];
        u64 g = (u64)c->id * (u64)opt_per + (u64)j;
        s->tor = (uint32_t)(g % (u64)opt_torrents);
        s->seeder = (int)(mix(&t->rng) % 100) < opt_seeders;
      }
    }
    base += t->nc;
  }
  u64 t_begin = now_ns();
  for (int i = 0; i < opt_threads; i++) pthread_create(&th[i].th, NULL, worker, &th[i]);

  /* phase 1: open every connection (bounded by --setup) */
  u64 setup_end = t_begin + (u64)(opt_setup * 1e9);
  while (sum_pub(th, offsetof(thr_t, pub_open)) < (u64)opt_conns && now_ns() < setup_end && !interrupted)
    sleep_until(now_ns() + 20000000ull);
  u64 opened = sum_pub(th, offsetof(thr_t, pub_open)), t_open = now_ns();
  long rss_open = opt_pid ? rss_kib(opt_pid) : -1, rss_max = rss_open, rss_end = -1, rss_quiet = -1;
  double srv0 = 0, srv1 = 0, me0 = 0, me1 = 0, idle_s = 0, quiet_s = 0;
  int all_settled = 0;
  if (!opened) {
    fprintf(stderr, "wsload: no WebSocket connection to %s opened within %.0f s\n", opt_url, opt_setup);
    return 2;
  }
  if (opt_idle <= 0) { /* phase 2: load: warm-up, then the measured window */
    g_t0 = now_ns();
    g_t_start = g_t0 + (u64)(opt_warm * 1e9);
    g_t_end = g_t_start + (u64)(opt_dur * 1e9);
    __atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
    sleep_until(g_t_start);
    if (opt_pid) srv0 = cpu_s(opt_pid);
    me0 = self_cpu_s();
    for (u64 next = g_t_start + 1000000000ull; next < g_t_end && !interrupted; next += 1000000000ull) {
      sleep_until(next < g_t_end ? next : g_t_end);
      long v = opt_pid ? rss_kib(opt_pid) : -1;
      if (v > rss_max) rss_max = v;
    }
    sleep_until(g_t_end);
    if (opt_pid) { srv1 = cpu_s(opt_pid); rss_end = rss_kib(opt_pid); if (rss_end > rss_max) rss_max = rss_end; }
    me1 = self_cpu_s();
  } else { /* phase 2: one announce per slot, quiet, then the idle hold */
    g_t0 = g_t_start = now_ns();
    g_t_end = ~0ull;
    __atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
    u64 slots = opened * (u64)opt_per, deadline = now_ns() + (u64)(opt_setup * 1e9), last_msgs = 0, last_change = now_ns();
    while (now_ns() < deadline && !interrupted) {
      u64 msgs = sum_pub(th, offsetof(thr_t, pub_msgs)), now = now_ns();
      if (msgs != last_msgs) { last_msgs = msgs; last_change = now; }
      all_settled = sum_pub(th, offsetof(thr_t, pub_done)) >= slots;
      if (all_settled && now - last_change >= 1000000000ull) break;
      sleep_until(now + 50000000ull);
    }
    quiet_s = (double)(now_ns() - t_open) / 1e9;
    if (opt_pid) rss_quiet = rss_kib(opt_pid);
    rss_max = rss_quiet > rss_max ? rss_quiet : rss_max;
    u64 hold_start = now_ns();
    if (opt_pid) srv0 = cpu_s(opt_pid);
    me0 = self_cpu_s();
    for (int sec = 1; sec <= (int)(opt_idle + 0.5) && !interrupted; sec++) {
      sleep_until(hold_start + (u64)sec * 1000000000ull);
      if (!opt_pid) continue;
      rss_end = rss_kib(opt_pid);
      if (rss_end > rss_max) rss_max = rss_end;
      printf("idle %2d s: tracker VmRSS %ld KiB\n", sec, rss_end);
    }
    idle_s = (double)(now_ns() - hold_start) / 1e9;
    if (opt_pid) srv1 = cpu_s(opt_pid);
    me1 = self_cpu_s();
  }
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  stats_t tot;
  memset(&tot, 0, sizeof tot);
  char reason[96] = "";
  u64 open_now = 0;
  for (int i = 0; i < opt_threads; i++) {
    pthread_join(th[i].th, NULL);
    u64 *a = (u64 *)&tot, *b = (u64 *)&th[i].st;
    for (size_t k = 0; k < sizeof tot / sizeof(u64); k++) a[k] += b[k];
    if (!reason[0]) memcpy(reason, th[i].reason, sizeof reason);
    for (int k = 0; k < th[i].nc; k++) open_now += th[i].c[k].state == C_OPEN;
  }

  /* report */
  const char *mode = opt_idle > 0 ? "idle" : opt_rate > 0 ? "open" : "closed";
  double secs = opt_idle > 0 ? (double)(now_ns() - g_t0) / 1e9 : opt_dur;
  u64 pv[4] = {pctl(tot.hist, .5), pctl(tot.hist, .9), pctl(tot.hist, .99), pctl(tot.hist, 1)};
  u64 av[3] = {pctl(tot.ahist, .5), pctl(tot.ahist, .99), pctl(tot.ahist, 1)};
  double span = opt_idle > 0 ? idle_s : opt_dur; /* cores over the measured window, or over the idle hold */
  double srv_cores = opt_pid && span > 0 ? (srv1 - srv0) / span : -1, me_cores = span > 0 ? (me1 - me0) / span : -1;
  long rss_ref = opt_idle > 0 ? rss_end : rss_open;
  double per_conn = opt_pid && rss_ref >= 0 ? (double)(rss_ref - rss0) * 1024.0 / (double)opened : -1;
  double per_open = opt_pid && rss_open >= 0 ? (double)(rss_open - rss0) * 1024.0 / (double)opened : -1;
  u64 errors = tot.failures + tot.misrouted + tot.bad_frames + tot.bad_msgs + tot.closes + tot.handshake_fail +
               tot.conn_fail + tot.timeouts;
  printf("wsload %s %s conns=%d (open %llu, at the end %llu) threads=%d torrents=%ld per-conn=%d offers=%d sdp=%dB "
         "seeders=%d%% src=%d ", opt_url, mode, opt_conns, opened, open_now, opt_threads, opt_torrents, opt_per,
         opt_offers, sdp_raw_len, opt_seeders, opt_srcs);
  if (opt_idle > 0) printf("idle=%gs\n", opt_idle);
  else if (opt_rate > 0) printf("rate=%g/s duration=%gs warmup=%gs\n", opt_rate, opt_dur, opt_warm);
  else printf("window=%d duration=%gs warmup=%gs\n", opt_window, opt_dur, opt_warm);
  printf("setup:      %llu connections open in %.2f s\n", opened, (double)(t_open - t_begin) / 1e9);
  printf("announces:  %.1f/s replies (%llu sent, %llu replied)\n", tot.ann_ok / secs, tot.ann_sent, tot.ann_ok);
  printf("offers:     %.1f/s received (forwarded by the tracker); %llu sent in announces\n", tot.offers_in / secs,
         tot.offers_sent);
  printf("answers:    %.1f/s received (relayed by the tracker); %llu sent\n", tot.answers_in / secs, tot.answers_sent);
  printf("latency_us: announce->reply p50 %llu  p90 %llu  p99 %llu  max %llu;  announce->answer p50 %llu  p99 %llu"
         "  max %llu\n", pv[0], pv[1], pv[2], pv[3], av[0], av[1], av[2]);
  printf("errors:     %llu failure replies, %llu misrouted, %llu bad frames, %llu bad messages, %llu server closes, "
         "%llu handshake failures, %llu connect failures, %llu timeouts, %llu lost on close, %llu no idle slot, "
         "%llu unmatched replies\n", tot.failures, tot.misrouted, tot.bad_frames, tot.bad_msgs, tot.closes,
         tot.handshake_fail, tot.conn_fail, tot.timeouts, tot.lost, tot.no_idle, tot.unmatched);
  if (reason[0]) printf("first failure reason: %s\n", reason);
  printf("traffic:    %.1f MB/s in, %.1f MB/s out", tot.bytes_in / secs / 1e6, tot.bytes_out / secs / 1e6);
  if (me_cores >= 0) printf("; cores: wsload %.2f", me_cores);
  if (srv_cores >= 0) printf(", tracker %.2f", srv_cores);
  printf("\n");
  if (opt_pid)
    printf("tracker:    VmRSS before %ld KiB, all open %ld KiB, %s %ld KiB, max %ld KiB; growth per connection: "
           "%.0f B open (handshake only)%s", rss0, rss_open, opt_idle > 0 ? "end of idle hold" : "end", rss_end,
           rss_max, per_open, opt_idle > 0 ? "" : "\n");
  if (opt_pid && opt_idle > 0) printf(", %.0f B announced and idle (end of hold)\n", per_conn);
  if (opt_idle > 0)
    printf("idle:       every slot %s; quiet after %.1f s; held %.1f s\n",
           all_settled ? "announced, every announce settled (replied, failed or timed out)" : "NOT settled within --setup", quiet_s, idle_s);
  printf("RESULT {\"mode\":\"%s\",\"conns\":%d,\"opened\":%llu,\"open_at_end\":%llu,\"secs\":%.3f,\"announce_rps\":%.1f,"
         "\"offers_rps\":%.1f,\"answers_rps\":%.1f,\"announces_sent\":%llu,\"announces_ok\":%llu,\"offers_in\":%llu,"
         "\"answers_in\":%llu,\"answers_sent\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu,"
         "\"answer_p50_us\":%llu,\"answer_p99_us\":%llu,\"errors\":%llu,\"failures\":%llu,\"misrouted\":%llu,"
         "\"bad_frames\":%llu,\"bad_msgs\":%llu,\"closes\":%llu,\"handshake_fail\":%llu,\"conn_fail\":%llu,"
         "\"timeouts\":%llu,\"lost\":%llu,\"no_idle\":%llu,\"unmatched\":%llu,\"setup_s\":%.2f,\"load_cores\":%.2f,"
         "\"tracker_cores\":%.2f,\"rss_before_kib\":%ld,\"rss_open_kib\":%ld,\"rss_end_kib\":%ld,\"rss_max_kib\":%ld,"
         "\"rss_open_per_conn_b\":%.0f,\"rss_per_conn_b\":%.0f,\"all_settled\":%d}\n",
         mode, opt_conns, opened, open_now, secs, tot.ann_ok / secs, tot.offers_in / secs, tot.answers_in / secs,
         tot.ann_sent, tot.ann_ok, tot.offers_in, tot.answers_in, tot.answers_sent, pv[0], pv[1], pv[2], pv[3], av[0],
         av[1], errors, tot.failures, tot.misrouted, tot.bad_frames, tot.bad_msgs, tot.closes, tot.handshake_fail,
         tot.conn_fail, tot.timeouts, tot.lost, tot.no_idle, tot.unmatched, (double)(t_open - t_begin) / 1e9, me_cores,
         srv_cores, rss0, rss_open, rss_end, rss_max, per_open, per_conn, opt_idle > 0 ? all_settled : 1);
  return 0;
}
