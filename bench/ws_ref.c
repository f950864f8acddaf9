/*
 * ws_ref.c - the machine's ceiling for WebTorrent tracker load: a minimal WebSocket relay in C that
 * does the least a tracker must do with wsload's traffic, and nothing else.
 *
 * Build:  gcc -O2 -Wall -Wextra -o /tmp/ws_ref bench/ws_ref.c   (libc only)
 * Run:    taskset -c 0 /tmp/ws_ref PORT      (127.0.0.1:PORT, any path; runs until killed, or 1 hour)
 *
 * It completes the RFC 6455 handshake, reads masked text frames (whole messages only: no
 * fragments, no checks of UTF-8), finds the top-level keys of each JSON message, and for an announce
 * joins the connection to the swarm of its info_hash (one peer_id per connection and swarm), replies
 * {"action":"announce","interval":120,"info_hash":…,"complete":0,"incomplete":N}, and sends offer i
 * to the i-th of up to min(offers, 10) other members after a random start, as
 * {"action":"announce","offer":…,"offer_id":…,"peer_id":…,"info_hash":…}. An answer goes to the
 * member whose peer_id is to_peer_id, with no check that an offer was sent. Ids and offers are
 * copied as the client spelled them, never decoded or re-encoded; there are no limits, no expiry,
 * no stats. A closed connection leaves its swarms. One thread, epoll, blocking nothing.
 *
 * It is no tracker: it is what wsload measures against when the question is "how much of this
 * machine's capacity does a tracker reach" (otter / ws_ref), or "can wsload load a fast tracker"
 * (wsload's cores when ws_ref is the server), as ../shared/load/udp-ref.c is for UDP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536
#define MAXSW 8 /* swarms a connection may join */
typedef struct { const char *p; int n; } str_t; /* a slice of the message, quotes included */
typedef struct {
  int open, dirty, pollout, nsw, sw[MAXSW];
  uint8_t pid[MAXSW][20];
  char *in, *out;
  size_t inlen, incap, outlen, outoff, outcap;
} conn_t;
typedef struct { uint8_t ih[20]; int used, n, cap, *fd; uint8_t (*pid)[20]; } swarm_t;

static conn_t *cs;
static swarm_t *sws;
static size_t swcap = 1 << 16, swn;
static int ep, *dirty, ndirty;
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static void grow(char **b, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t nc = *cap ? *cap : 4096;
  while (nc < need) nc *= 2;
  if (!(*b = realloc(*b, nc))) exit(1);
  *cap = nc;
}

/* ---- SHA-1 and base64 for the handshake ---- */
static uint32_t rol(uint32_t v, int n) { return v << n | v >> (32 - n); }
static void sha1(const uint8_t *m, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, w[80];
  size_t total = (len + 9 + 63) / 64 * 64;
  for (size_t off = 0; off < total; off += 64) {
    uint8_t b[64];
    for (int i = 0; i < 64; i++) {
      size_t k = off + (size_t)i;
      b[i] = k < len ? m[k] : k == len ? 0x80 : 0;
      if (k >= total - 8) b[i] = (uint8_t)((uint64_t)len * 8 >> (8 * (total - 1 - k)));
    }
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4 * i] << 24 | b[4 * i + 1] << 16 | b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f = i < 20 ? (bb & c) | (~bb & d) : i < 40 || i >= 60 ? bb ^ c ^ d : (bb & c) | (bb & d) | (c & d);
      uint32_t t = rol(a, 5) + f + e + (i < 20 ? 0x5A827999 : i < 40 ? 0x6ED9EBA1 : i < 60 ? 0x8F1BBCDC : 0xCA62C1D6) + w[i];
      e = d; d = c; c = rol(bb, 30); bb = a; a = t;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
  }
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}
static void base64(const uint8_t *in, int n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int o = 0;
  for (int i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63]; out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

/* ---- JSON: slices of top-level values; ids decoded to 20 bytes where needed ---- */
static const char *jws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}
static const char *jstr_end(const char *p, const char *e) { /* after the opening quote */
  for (const char *s = p;;) { /* the first quote after an even run of backslashes */
    const char *q = memchr(p, '"', (size_t)(e - p)), *r;
    if (!q) return NULL;
    for (r = q; r > s && r[-1] == '\\'; r--) {}
    if (!((q - r) & 1)) return q + 1;
    p = q + 1;
  }
}
static const char *jskip(const char *p, const char *e) {
  if (p >= e) return NULL;
  if (*p == '"') return jstr_end(p + 1, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      char c = *p++;
      if (c == '"') { if (!(p = jstr_end(p, e))) return NULL; }
      else if (c == '{' || c == '[') depth++;
      else if ((c == '}' || c == ']') && --depth == 0) return p;
    }
    return NULL;
  }
  const char *s = p;
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ') p++;
  return p > s ? p : NULL;
}
static int hexv(int c) { return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1; }
static int decode_id(str_t s, uint8_t out[20]) { /* a JSON binary string of 20 chars; 0 if not */
  const char *p = s.p + 1, *e = s.p + s.n - 1;
  int k = 0;
  if (s.n < 2 || s.p[0] != '"') return 0;
  while (p < e && k < 20) {
    unsigned c = (uint8_t)*p++;
    if (c == '\\') {
      c = (uint8_t)*p++;
      if (c == 'u') {
        if (e - p < 4) return 0;
        c = 0;
        for (int j = 0; j < 4; j++) { int v = hexv(p[j]); if (v < 0) return 0; c = c << 4 | (unsigned)v; }
        p += 4;
      } else c = c == 'b' ? 8 : c == 'f' ? 12 : c == 'n' ? 10 : c == 'r' ? 13 : c == 't' ? 9 : c;
    } else if (c >= 0x80) {
      if ((c & 0xE0) != 0xC0 || p >= e) return 0;
      c = (c & 31) << 6 | ((uint8_t)*p++ & 63);
    }
    if (c > 0xFF) return 0;
    out[k++] = (uint8_t)c;
  }
  return k == 20 && p == e;
}
#define L(s) ((int)strlen(s))
#define KEYIS(k, s) ((k).n == (int)sizeof(s) + 1 && !memcmp((k).p + 1, s, sizeof(s) - 1))
/* the values of the top-level keys wanted[i] into val[i] (n = 0 when absent); 0: not an object */
static int fields(const char *p, const char *e, const char *const *wanted, int nw, str_t *val) {
  for (int i = 0; i < nw; i++) val[i].n = 0;
  p = jws(p, e);
  if (p >= e || *p++ != '{') return 0;
  for (;;) {
    p = jws(p, e);
    if (p < e && *p == '}') return 1;
    if (p >= e || *p != '"') return 0;
    str_t k = {p, 0};
    if (!(p = jstr_end(p + 1, e))) return 0;
    k.n = (int)(p - k.p);
    p = jws(p, e);
    if (p >= e || *p++ != ':') return 0;
    p = jws(p, e);
    const char *v = p;
    if (!(p = jskip(p, e))) return 0;
    for (int i = 0; i < nw; i++)
      if (k.n == (int)strlen(wanted[i]) + 2 && !memcmp(k.p + 1, wanted[i], (size_t)k.n - 2)) val[i] = (str_t){v, (int)(p - v)};
    p = jws(p, e);
    if (p < e && *p == ',') p++;
  }
}

/* ---- output ---- */
static void send_text(int fd, const char *const *parts, const int *lens, int np) {
  conn_t *c = &cs[fd];
  size_t n = 0;
  for (int i = 0; i < np; i++) n += (size_t)lens[i];
  grow(&c->out, &c->outcap, c->outlen + n + 10);
  uint8_t *o = (uint8_t *)c->out + c->outlen;
  int h = 2;
  o[0] = 0x81;
  if (n < 126) o[1] = (uint8_t)n;
  else if (n < 65536) { o[1] = 126; o[2] = (uint8_t)(n >> 8); o[3] = (uint8_t)n; h = 4; }
  else { o[1] = 127; for (int i = 0; i < 8; i++) o[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i)); h = 10; }
  o += h;
  for (int i = 0; i < np; i++) { memcpy(o, parts[i], (size_t)lens[i]); o += lens[i]; }
  c->outlen += (size_t)h + n;
  if (!c->dirty) { c->dirty = 1; dirty[ndirty++] = fd; }
}
static void flush(int fd) { /* what is left waits for EPOLLOUT; an error shows up as EOF on read */
  conn_t *c = &cs[fd];
  while (c->outoff < c->outlen) {
    ssize_t r = send(fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) c->outoff += (size_t)r;
    else if (r < 0 && errno == EINTR) continue;
    else break;
  }
  int want = c->outoff < c->outlen;
  if (!want) c->outoff = c->outlen = 0;
  if (want != c->pollout) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    c->pollout = want;
  }
}

/* ---- swarms ---- */
static int swarm_of(const uint8_t ih[20], int create) {
  size_t i;
  uint64_t hsh;
  memcpy(&hsh, ih, 8);
  if (create && swn * 2 >= swcap) { fprintf(stderr, "ws_ref: swarm table full\n"); exit(1); }
  for (i = hsh & (swcap - 1); sws[i].used; i = (i + 1) & (swcap - 1))
    if (!memcmp(sws[i].ih, ih, 20)) return (int)i;
  if (!create) return -1;
  sws[i].used = 1; memcpy(sws[i].ih, ih, 20); swn++;
  return (int)i;
}
static void leave(int fd) {
  conn_t *c = &cs[fd];
  for (int j = 0; j < c->nsw; j++) {
    swarm_t *s = &sws[c->sw[j]];
    for (int k = 0; k < s->n; k++)
      if (s->fd[k] == fd) { s->n--; s->fd[k] = s->fd[s->n]; memcpy(s->pid[k], s->pid[s->n], 20); break; }
  }
  c->nsw = 0;
}
static void conn_close(int fd) { /* a later dirty-list visit finds outlen 0 */
  leave(fd);
  close(fd);
  conn_t *c = &cs[fd];
  int d = c->dirty;
  free(c->in); free(c->out);
  memset(c, 0, sizeof *c);
  c->dirty = d;
}

/* ---- messages ---- */
static void on_message(int fd, const char *b, size_t n) {
  static const char *const want[] = {"action", "info_hash", "peer_id", "offers", "answer", "to_peer_id", "offer_id"};
  str_t v[7];
  uint8_t ih[20], pid[20], to[20];
  conn_t *c = &cs[fd];
  if (!fields(b, b + n, want, 7, v) || !KEYIS(v[0], "announce") || !decode_id(v[1], ih) || !decode_id(v[2], pid)) return;
  int si = swarm_of(ih, 1), j;
  swarm_t *s = &sws[si];
  for (j = 0; j < c->nsw && c->sw[j] != si; j++) {}
  if (j == c->nsw && c->nsw < MAXSW) { /* join */
    c->sw[c->nsw] = si; memcpy(c->pid[c->nsw++], pid, 20);
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 8;
      if (!(s->fd = realloc(s->fd, sizeof(int) * (size_t)s->cap)) || !(s->pid = realloc(s->pid, 20 * (size_t)s->cap))) exit(1);
    }
    s->fd[s->n] = fd; memcpy(s->pid[s->n++], pid, 20);
  }
  if (v[4].n) { /* an answer: to the member with that peer_id */
    if (!decode_id(v[5], to) || !v[6].n) return;
    for (int k = 0; k < s->n; k++)
      if (!memcmp(s->pid[k], to, 20)) {
        const char *parts[] = {"{\"action\":\"announce\",\"answer\":", v[4].p, ",\"offer_id\":", v[6].p, ",\"peer_id\":", v[2].p,
                               ",\"info_hash\":", v[1].p, "}"};
        int lens[] = {L(parts[0]), v[4].n, L(parts[2]), v[6].n, L(parts[4]), v[2].n, L(parts[6]), v[1].n, 1};
        send_text(s->fd[k], parts, lens, 9);
        break;
      }
    return;
  }
  char head[96];
  int hn = snprintf(head, sizeof head, "{\"action\":\"announce\",\"interval\":120,\"complete\":0,\"incomplete\":%d,\"info_hash\":", s->n);
  const char *rp[] = {head, v[1].p, "}"};
  int rl[] = {hn, v[1].n, 1};
  send_text(fd, rp, rl, 3);
  if (!v[3].n || v[3].p[0] != '[' || s->n < 2) return;
  const char *p = v[3].p + 1, *e = v[3].p + v[3].n - 1;
  int start = (int)(rnd() % (uint64_t)s->n), sent = 0;
  static const char *const ow[] = {"offer", "offer_id"};
  for (int k = 0; k < s->n && sent < 10; k++) { /* offer i to the i-th other member after a random start */
    int m = s->fd[(start + k) % s->n];
    if (m == fd) continue;
    str_t o[2];
    p = jws(p, e);
    if (p >= e) break;
    const char *oe = jskip(p, e);
    if (!oe || !fields(p, oe, ow, 2, o) || !o[0].n || !o[1].n) break;
    p = jws(oe, e);
    if (p < e && *p == ',') p++;
    const char *parts[] = {"{\"action\":\"announce\",\"offer\":", o[0].p, ",\"offer_id\":", o[1].p, ",\"peer_id\":", v[2].p,
                           ",\"info_hash\":", v[1].p, "}"};
    int lens[] = {L(parts[0]), o[0].n, L(parts[2]), o[1].n, L(parts[4]), v[2].n, L(parts[6]), v[1].n, 1};
    send_text(m, parts, lens, 9);
    sent++;
  }
}

/* ---- reading ---- */
static int handshake(int fd, const char *b, size_t hl) {
  const char *k = memmem(b, hl, "\nSec-WebSocket-Key:", 19);
  if (!k) k = strcasestr(b, "\nsec-websocket-key:");
  if (!k) return 0;
  k += 19;
  while (*k == ' ') k++;
  size_t kn = strcspn(k, "\r\n ");
  char cat[128], acc[40], resp[256];
  uint8_t dig[20];
  if (kn > 60) return 0;
  memcpy(cat, k, kn); memcpy(cat + kn, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  sha1((uint8_t *)cat, kn + 36, dig);
  base64(dig, 20, acc);
  int n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
  conn_t *c = &cs[fd];
  grow(&c->out, &c->outcap, c->outlen + (size_t)n);
  memcpy(c->out + c->outlen, resp, (size_t)n);
  c->outlen += (size_t)n;
  if (!c->dirty) { c->dirty = 1; dirty[ndirty++] = fd; }
  c->open = 1;
  return 1;
}
static long consume(int fd, char *b, size_t n) { /* whole frames; bytes used, -1: close */
  size_t pos = 0;
  conn_t *c = &cs[fd];
  if (!c->open) {
    char *e = memmem(b, n, "\r\n\r\n", 4);
    if (!e) return n > 8192 ? -1 : 0;
    *e = 0;
    if (!handshake(fd, b, (size_t)(e - b))) return -1;
    pos = (size_t)(e + 4 - b);
  }
  while (pos + 6 <= n) {
    uint8_t *h = (uint8_t *)b + pos;
    uint64_t len = h[1] & 127;
    size_t hl = 6;
    if (!(h[1] & 0x80)) return -1;
    if (len == 126) { if (pos + 8 > n) break; len = (uint64_t)h[2] << 8 | h[3]; hl = 8; }
    else if (len == 127) {
      if (pos + 14 > n) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
      hl = 14;
    }
    if (len > (1u << 20)) return -1;
    if (pos + hl + len > n) break;
    uint8_t *m = h + hl - 4, *d = h + hl;
    uint32_t m4;
    memcpy(&m4, m, 4);
    uint64_t m8 = (uint64_t)m4 << 32 | m4, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) { memcpy(&w, d + i, 8); w ^= m8; memcpy(d + i, &w, 8); }
    for (; i < len; i++) d[i] ^= m[i & 3];
    int op = h[0] & 15;
    pos += hl + (size_t)len;
    if (op == 8) return -1;
    if (op == 1) on_message(fd, (char *)d, (size_t)len); /* pings, pongs and fragments: ignored */
  }
  return (long)pos;
}
static void on_read(int fd) {
  static char buf[1 << 18];
  conn_t *c = &cs[fd];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { conn_close(fd); return; }
    grow(&c->in, &c->incap, c->inlen + (size_t)r);
    memcpy(c->in + c->inlen, buf, (size_t)r);
    c->inlen += (size_t)r;
    long used = consume(fd, c->in, c->inlen);
    if (used < 0) { conn_close(fd); return; }
    memmove(c->in, c->in + used, c->inlen - (size_t)used);
    c->inlen -= (size_t)used;
    if ((size_t)r < sizeof buf) return;
  }
}

int main(int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : -1, one = 1;
  if (port < 0 || port > 65535) { fprintf(stderr, "usage: ws_ref PORT   (listens on 127.0.0.1; 0: a free port)\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  alarm(3600);
  cs = calloc(MAXFD, sizeof *cs);
  dirty = calloc(MAXFD, sizeof *dirty);
  sws = calloc(swcap, sizeof *sws);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t al = sizeof a;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("ws_ref: listen"); return 1; }
  getsockname(ls, (struct sockaddr *)&a, &al);
  printf("{\"event\":\"listening\",\"port\":%d}\n", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (c >= MAXFD) { close(c); continue; }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_read(fd);
      if (cs[fd].outlen && (evs[i].events & EPOLLOUT)) flush(fd);
    }
    /* what these events queued, on any connection: one send per connection */
    for (int i = 0; i < ndirty; i++) { cs[dirty[i]].dirty = 0; if (cs[dirty[i]].outlen) flush(dirty[i]); }
    ndirty = 0;
  }
}
