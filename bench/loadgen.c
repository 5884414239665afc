/*
 * loadgen: the Signaller benchmark's load generator.
 *
 * One single-threaded epoll loop speaking the smallest WebSocket client that
 * servers accept: an HTTP/1.1 upgrade, masked client frames (the mask key is
 * zero, so masking costs nothing — servers must unmask whatever the key is),
 * unmasked server frames parsed straight from the TCP byte stream (frames split
 * across reads, 16/64-bit lengths, fragmented messages, ping/pong, close).
 * A generator written on a high-level WebSocket client would spend more CPU per
 * frame than the server it measures; this one spends well under a microsecond.
 *
 * Every payload carries a marker "~T<16 hex ns>~": receivers count markers, so
 * a delivery is counted the same way whatever JSON the server wraps it in, and
 * batched NDJSON frames (several events per frame) count once per event. The
 * hex number is the send time (CLOCK_MONOTONIC), which gives the latency.
 *
 * Phases (one per process run, selected with --phase):
 *   fanout   N receivers + 1 sender in one channel, closed loop: the sender keeps
 *            at most --window messages un-acked (ack = its own reply, or its
 *            own echo for protocols without replies).
 *   latency  same channel, open loop at --rate messages/s.
 *   senders  N receivers + --senders senders in one channel, each sender an open
 *            loop at --rate messages/s of its own (staggered evenly), so that
 *            events from many senders meet in the server's turns.
 *   relay    --pairs sender/receiver pairs, each pair closed loop on deliveries.
 *   idle     --conns connections opened as fast as possible (the setup storm),
 *            held, RSS of the server read, then a ping sweep checks they live.
 *            With --group G each connection also joins a channel after /descp:
 *            connection i joins channel i / G, so G = 20 gives channels of 20
 *            members and G >= --conns one channel everyone joins (the join storm).
 *
 * Two or three nodes of one cluster (--port2, --port3): the sender(s) connect
 * to --port; in fanout and latency the receivers take the nodes in turn
 * (receiver i on node i mod nodes), in relay every receiver is on a node other
 * than the first (receiver i on node 2 + i mod (nodes - 1)), so every relayed
 * message crosses from one node to another. --pid2 and --pid3 add those nodes'
 * CPU to server_cpu_s; --aux-pid, once per process, reports other processes'
 * CPU apart (aux_cpu_s: the Redis, or every process of a Redis Cluster).
 *
 * Output: one JSON object on stdout. Build: gcc -O2 -o loadgen loadgen.c (bench/phases.ts
 * builds it into bench/.build/ and runs it once per phase).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum proto { P_SIGNALLER, P_YWEBRTC, P_PEERJS, P_FLOOR };
enum phase { PH_FANOUT, PH_LATENCY, PH_RELAY, PH_IDLE, PH_SENDERS };
enum role { R_RECV, R_SEND, R_IDLE };
enum state { S_NEW, S_CONNECTING, S_HANDSHAKE, S_SETUP, S_READY, S_CLOSED };

typedef struct conn {
  int fd;
  int idx;
  int role;
  int state;
  int awaiting;   /* setup replies still expected */
  int partner;    /* relay: index of the other side */
  int out_watch;  /* EPOLLOUT registered */
  char *in;       /* unparsed bytes carried between reads */
  size_t in_len, in_cap;
  char *msg;      /* fragmented message being reassembled */
  size_t msg_len, msg_cap;
  int msg_op;
  char *out;      /* bytes not yet accepted by the kernel */
  size_t out_len, out_off, out_cap;
  uint64_t delivered, acks, errors, sent, pongs;
  char id[32];
} conn;

/* ---- options ---- */
static int o_proto = P_SIGNALLER, o_phase = PH_FANOUT;
static char o_host[64] = "127.0.0.1";
static int o_port = 0, o_port2 = 0, o_port3 = 0;
static char o_path[256] = "/";
static int o_n = 200, o_pairs = 50, o_conns = 1000, o_window = 32, o_rate = 1000;
static int o_size = 60, o_concurrency = 256, o_srcs = 4, o_senders = 50, o_group = 0;
static double o_warmup = 1.0, o_duration = 5.0, o_settle = 2.0, o_drain = 10.0;
static double o_setup_timeout = 120.0;
static int o_pid = 0, o_pid2 = 0, o_pid3 = 0;
#define MAX_AUX 8
static int o_aux_pids[MAX_AUX], o_naux = 0;
static char o_tag[5] = "0000";

/* ---- state ---- */
static int ep;
static conn *conns;
static int nconns;
static int next_start;       /* next connection index to start */
static int inflight_setup;   /* connections between connect() and ready */
static int ready_count, failed_count, closed_count;
static int close_codes[16], close_code_n[16], nclose_codes;
static uint64_t t0_ns;
static int sending;          /* senders may send */
static int counting_lat;     /* latency samples are recorded */
static uint64_t lat_from_ns; /* only samples sent after this */
static char chan_hex[32];
static char scratch[1 << 18];
static size_t total_delivered, total_sent, total_acks, total_errors;
static size_t total_frames; /* messages received by receivers that held markers */
static uint64_t last_rx_ns;  /* when any connection last received bytes */

/* Latency histogram: 1 us buckets up to 100 ms, then 1 ms buckets up to 100 s. */
#define HIST_FINE 100000
#define HIST_N (HIST_FINE + 100000)
static uint32_t *hist;
static uint64_t hist_over, hist_count, hist_max;

static int hist_bucket(uint64_t us) {
  if (us < HIST_FINE) return (int)us;
  uint64_t ms = us / 1000;
  return ms < 100000 ? HIST_FINE + (int)ms : -1;
}

static uint64_t bucket_us(int b) { return b < HIST_FINE ? (uint64_t)b : (uint64_t)(b - HIST_FINE) * 1000; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void die(const char *m) {
  fprintf(stderr, "loadgen: %s: %s\n", m, strerror(errno));
  exit(2);
}

/* utime+stime of a process, in seconds (clock ticks, 10 ms resolution). */
static double proc_cpu(int pid) {
  if (pid <= 0) return -1;
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU of every process listed (pids <= 0 skipped); -1 when one is unreadable or none is listed. */
static double sum_cpu(const int *pids, int n) {
  double sum = 0;
  int any = 0;
  for (int i = 0; i < n; i++) {
    if (pids[i] <= 0) continue;
    double c = proc_cpu(pids[i]);
    if (c < 0) return -1;
    sum += c;
    any = 1;
  }
  return any ? sum : -1;
}

/* The servers' CPU: the node at --port, plus those at --port2 and --port3 when given. */
static double server_cpu(void) {
  int pids[3] = {o_pid, o_pid2, o_pid3};
  return o_pid > 0 ? sum_cpu(pids, 3) : -1;
}

/* The CPU of the --aux-pid processes together. */
static double aux_cpu(void) { return sum_cpu(o_aux_pids, o_naux); }

static long proc_rss_kb(int pid) {
  if (pid <= 0) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- buffers ---- */
static void grow(char **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  *buf = realloc(*buf, c);
  if (!*buf) die("realloc");
  *cap = c;
}

static void watch(conn *c, int out) {
  if (c->out_watch == out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->out_watch = out;
}

static void conn_close(conn *c, int failed);

/* Writes what the kernel takes now; keeps the rest for EPOLLOUT. */
static void flush_out(conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      conn_close(c, c->state != S_READY);
      return;
    }
    c->out_off += (size_t)w;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  watch(c, c->out_len > 0);
}

/* Appends one masked client frame (mask key 0: the payload goes as is). */
static void queue_frame(conn *c, int opcode, const char *p, size_t n) {
  size_t hdr = n < 126 ? 6 : n < 65536 ? 8 : 14;
  grow(&c->out, &c->out_cap, c->out_len + hdr + n);
  unsigned char *h = (unsigned char *)c->out + c->out_len;
  h[0] = 0x80 | (unsigned char)opcode;
  if (n < 126) {
    h[1] = 0x80 | (unsigned char)n;
  } else if (n < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  }
  memset(h + hdr - 4, 0, 4);
  memcpy(h + hdr, p, n);
  c->out_len += hdr + n;
}

static void queue_text(conn *c, const char *s) { queue_frame(c, 1, s, strlen(s)); }

/* ---- protocol adapters ---- */
static void make_id(conn *c) {
  if (o_proto == P_PEERJS)
    snprintf(c->id, sizeof c->id, "%c%d", c->role == R_SEND ? 's' : 'c', c->idx);
  else
    snprintf(c->id, sizeof c->id, "%s%020x", o_tag, (unsigned)c->idx); /* 24 hex */
}

/* The danmaku text: marker with the send time, padded to --size bytes. */
static size_t make_text(char *dst, uint64_t ts) {
  int n = sprintf(dst, "~T%016llx~", (unsigned long long)ts);
  while (n < o_size) dst[n++] = 'x';
  dst[n] = 0;
  return (size_t)n;
}

static void send_message(conn *c, uint64_t ts) {
  char text[4096], frame[8192];
  size_t tl = make_text(text, ts);
  int n = 0;
  (void)tl;
  if (o_phase == PH_RELAY) {
    conn *dst = &conns[c->partner];
    if (o_proto == P_SIGNALLER)
      n = snprintf(frame, sizeof frame, "/privmsg %s %s", dst->id, text);
    else if (o_proto == P_PEERJS)
      n = snprintf(frame, sizeof frame, "{\"type\":\"OFFER\",\"dst\":\"%s\",\"payload\":\"%s\"}", dst->id,
                   text);
    else
      n = snprintf(frame, sizeof frame, "%s", text);
  } else {
    if (o_proto == P_SIGNALLER)
      n = snprintf(frame, sizeof frame, "/pubmsg #%s %s", chan_hex, text);
    else if (o_proto == P_YWEBRTC)
      n = snprintf(frame, sizeof frame, "{\"type\":\"publish\",\"topic\":\"bench\",\"data\":\"%s\"}", text);
    else
      n = snprintf(frame, sizeof frame, "%s", text);
  }
  queue_frame(c, 1, frame, (size_t)n);
  c->sent++;
  total_sent++;
}

/* Sent right after the upgrade; each exchange ends in one reply we wait for. */
static void start_setup(conn *c) {
  char buf[512];
  int in_channel = c->role != R_IDLE && o_phase != PH_RELAY;
  int in_group = c->role == R_IDLE && o_group > 0;
  c->state = S_SETUP;
  switch (o_proto) {
  case P_SIGNALLER:
    snprintf(buf, sizeof buf, "/descp {\"id\":\"%s\",\"name\":\"b%d\"}", c->id, c->idx);
    queue_text(c, buf);
    c->awaiting = 1;
    if (in_channel) {
      snprintf(buf, sizeof buf, "/join #%s", chan_hex);
      queue_text(c, buf); /* pipelined: replies come back in order */
      c->awaiting = 2;
    } else if (in_group) {
      snprintf(buf, sizeof buf, "/join #%sa%019x", o_tag, (unsigned)(c->idx / o_group));
      queue_text(c, buf);
      c->awaiting = 2;
    }
    break;
  case P_YWEBRTC:
    /* subscribe has no reply; the pong to the ping after it says it is done */
    queue_text(c, in_channel ? "{\"type\":\"subscribe\",\"topics\":[\"bench\"]}"
                             : "{\"type\":\"subscribe\",\"topics\":[\"idle\"]}");
    queue_text(c, "{\"type\":\"ping\"}");
    c->awaiting = 1;
    break;
  case P_PEERJS:
    c->awaiting = 1; /* the server sends OPEN by itself */
    break;
  case P_FLOOR:
    queue_text(c, "hello"); /* the floors answer "ok" to anything without a marker */
    c->awaiting = 1;
    break;
  }
  flush_out(c);
}

/* Counts replies in one line (Signaller) or one message (others): ok, error. */
static void reply_kind(const char *p, size_t n, int *ok, int *err) {
  *ok = *err = 0;
  switch (o_proto) {
  case P_SIGNALLER:
    if (memmem(p, n, "\"type\":\"ok\"", 11)) *ok = 1;
    else if (memmem(p, n, "\"type\":\"error\"", 14)) *err = 1;
    break;
  case P_YWEBRTC:
    if (memmem(p, n, "\"type\":\"pong\"", 13)) *ok = 1;
    break;
  case P_PEERJS:
    if (memmem(p, n, "\"type\":\"OPEN\"", 13)) *ok = 1;
    else if (memmem(p, n, "\"type\":\"ERROR\"", 14) || memmem(p, n, "ID-TAKEN", 8)) *err = 1;
    break;
  case P_FLOOR:
    if (n == 2 && p[0] == 'o' && p[1] == 'k') *ok = 1;
    break;
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

/* Counts markers; records the latency of each one. */
static uint64_t scan_markers(const char *p, size_t n, uint64_t now, int record) {
  uint64_t count = 0;
  const char *end = p + n;
  while (p + 19 <= end) {
    const char *q = memchr(p, '~', (size_t)(end - p));
    if (!q || q + 19 > end) break;
    if (q[1] != 'T' || q[18] != '~') {
      p = q + 1;
      continue;
    }
    uint64_t ts = 0;
    int ok = 1;
    for (int i = 2; i < 18; i++) {
      int v = hexval(q[i]);
      if (v < 0) {
        ok = 0;
        break;
      }
      ts = ts << 4 | (uint64_t)v;
    }
    if (!ok) {
      p = q + 1;
      continue;
    }
    count++;
    if (record && counting_lat && ts >= lat_from_ns && now >= ts) {
      uint64_t us = (now - ts) / 1000;
      int b = hist_bucket(us);
      if (b >= 0) hist[b]++;
      else hist_over++;
      if (us > hist_max) hist_max = us;
      hist_count++;
    }
    p = q + 19;
  }
  return count;
}

static void became_ready(conn *c) {
  c->state = S_READY;
  inflight_setup--;
  ready_count++;
}

static void on_reply(conn *c, int ok, int err) {
  if (!ok && !err) return;
  if (err) {
    c->errors++;
    total_errors++;
  }
  if (c->awaiting > 0) {
    if (--c->awaiting == 0 && c->state == S_SETUP) became_ready(c);
  } else if (c->role == R_SEND && o_phase != PH_RELAY) {
    c->acks++; /* Signaller: the /pubmsg reply is the sender's ack */
    total_acks++;
  }
}

/* One complete text message from the server. */
static void on_message(conn *c, const char *p, size_t n) {
  uint64_t now = now_ns();
  /* Replies: Signaller may batch several NDJSON objects in one frame. */
  if (c->awaiting > 0 || (o_proto == P_SIGNALLER && c->role == R_SEND)) {
    if (o_proto == P_SIGNALLER) {
      const char *s = p, *e = p + n;
      while (s < e) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(e - s);
        int ok, err;
        reply_kind(s, len, &ok, &err);
        on_reply(c, ok, err);
        s += len + 1;
      }
    } else {
      int ok, err;
      reply_kind(p, n, &ok, &err);
      on_reply(c, ok, err);
    }
  }
  if (c->state != S_READY && c->state != S_SETUP) return;
  uint64_t m = scan_markers(p, n, now, c->role == R_RECV);
  if (!m) return;
  if (c->role == R_SEND) {
    /* protocols without replies echo the sender its own message: its ack */
    if (o_proto != P_SIGNALLER) {
      c->acks += m;
      total_acks += m;
    }
  } else {
    c->delivered += m;
    total_delivered += m;
    total_frames++; /* deliveries / frames shows how much the server batches */
  }
}

static void record_close(int code) {
  for (int i = 0; i < nclose_codes; i++)
    if (close_codes[i] == code) {
      close_code_n[i]++;
      return;
    }
  if (nclose_codes < 16) {
    close_codes[nclose_codes] = code;
    close_code_n[nclose_codes++] = 1;
  }
}

/* Parses frames from buf; returns bytes consumed (the rest is a partial frame). */
static size_t parse_frames(conn *c, char *buf, size_t len) {
  size_t off = 0;
  while (len - off >= 2) {
    unsigned char *h = (unsigned char *)buf + off;
    int fin = h[0] & 0x80, op = h[0] & 0x0f, masked = h[1] & 0x80;
    uint64_t pl = h[1] & 0x7f;
    size_t hl = 2;
    if (pl == 126) {
      if (len - off < 4) break;
      pl = (uint64_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (pl == 127) {
      if (len - off < 10) break;
      pl = 0;
      for (int i = 0; i < 8; i++) pl = pl << 8 | h[2 + i];
      hl = 10;
    }
    if (masked) hl += 4;
    if (len - off < hl + pl) break;
    char *p = buf + off + hl;
    if (masked) { /* servers must not mask, but be lenient */
      unsigned char *k = h + hl - 4;
      for (uint64_t i = 0; i < pl; i++) p[i] ^= (char)k[i & 3];
    }
    off += hl + (size_t)pl;
    if (op == 9) { /* ping: answer with a pong carrying the same payload */
      queue_frame(c, 10, p, (size_t)pl);
    } else if (op == 10) {
      c->pongs++;
    } else if (op == 8) {
      int code = pl >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 1005;
      record_close(code);
      conn_close(c, c->state != S_READY);
      return len;
    } else if (op == 0 || op == 1 || op == 2) {
      if (op != 0 && fin && c->msg_len == 0) {
        on_message(c, p, (size_t)pl);
      } else { /* fragmented message: reassemble */
        if (op != 0) c->msg_op = op;
        grow(&c->msg, &c->msg_cap, c->msg_len + pl);
        memcpy(c->msg + c->msg_len, p, (size_t)pl);
        c->msg_len += (size_t)pl;
        if (fin) {
          on_message(c, c->msg, c->msg_len);
          c->msg_len = 0;
        }
      }
    }
    if (c->state == S_CLOSED) return len;
  }
  return off;
}

static void handle_bytes(conn *c, char *buf, size_t len) {
  if (c->state == S_HANDSHAKE) {
    grow(&c->in, &c->in_cap, c->in_len + len + 1);
    memcpy(c->in + c->in_len, buf, len);
    c->in_len += len;
    c->in[c->in_len] = 0;
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return;
    if (strncmp(c->in, "HTTP/1.1 101", 12) != 0) {
      fprintf(stderr, "loadgen: upgrade refused: %.60s\n", c->in);
      conn_close(c, 1);
      return;
    }
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    start_setup(c);
    if (c->state == S_CLOSED) return;
    if (c->in_len) {
      size_t k = parse_frames(c, c->in, c->in_len);
      if (c->state == S_CLOSED) return;
      memmove(c->in, c->in + k, c->in_len - k);
      c->in_len -= k;
    }
    if (c->out_len) flush_out(c);
    return;
  }
  if (c->in_len) {
    grow(&c->in, &c->in_cap, c->in_len + len);
    memcpy(c->in + c->in_len, buf, len);
    c->in_len += len;
    size_t k = parse_frames(c, c->in, c->in_len);
    if (c->state == S_CLOSED) return;
    memmove(c->in, c->in + k, c->in_len - k);
    c->in_len -= k;
  } else {
    size_t k = parse_frames(c, buf, len);
    if (c->state == S_CLOSED) return;
    if (k < len) {
      grow(&c->in, &c->in_cap, len - k);
      memcpy(c->in, buf + k, len - k);
      c->in_len = len - k;
    }
  }
}

static void conn_close(conn *c, int failed) {
  if (c->state == S_CLOSED) return;
  if (c->state != S_READY && c->state != S_NEW) inflight_setup--;
  if (c->state == S_READY) ready_count--;
  if (failed) failed_count++;
  closed_count++;
  c->state = S_CLOSED;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
}

/* The node a connection talks to: see "Two or three nodes" at the top. */
static int conn_port(const conn *c) {
  int ports[3] = {o_port, o_port2, o_port3};
  int nodes = o_port3 > 0 ? 3 : o_port2 > 0 ? 2 : 1;
  if (nodes == 1 || c->role != R_RECV) return o_port;
  if (o_phase == PH_RELAY) return ports[1 + c->idx % (nodes - 1)];
  return ports[c->idx % nodes];
}

static void send_handshake(conn *c) {
  char req[768];
  char path[512];
  if (o_proto == P_PEERJS)
    snprintf(path, sizeof path, "%speerjs?key=peerjs&id=%s&token=t%d", o_path, c->id, c->idx);
  else
    snprintf(path, sizeof path, "%s", o_path);
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, o_host, conn_port(c));
  grow(&c->out, &c->out_cap, c->out_len + (size_t)n);
  memcpy(c->out + c->out_len, req, (size_t)n);
  c->out_len += (size_t)n;
  c->state = S_HANDSHAKE;
  flush_out(c);
}

static void start_conn(conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* Spread over 127.0.0.2.. so 20 000 connections never run out of ports. */
  if (o_srcs > 0) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->idx % o_srcs));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)conn_port(c))};
  inet_pton(AF_INET, o_host, &dst.sin_addr);
  c->fd = fd;
  c->state = S_CONNECTING;
  inflight_setup++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->out_watch = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
    conn_close(c, 1);
  }
}

/* Closed loop: fills a sender's window up to --window messages in flight. */
static void top_up(conn *s, uint64_t now) {
  if (!sending || o_phase == PH_LATENCY || o_phase == PH_SENDERS || s->state != S_READY) return;
  uint64_t done = o_phase == PH_RELAY ? conns[s->partner].delivered : s->acks;
  int added = 0;
  while (s->sent - done < (uint64_t)o_window) {
    send_message(s, now);
    added = 1;
  }
  if (added) flush_out(s);
}

static void on_event(conn *c, uint32_t events) {
  if (c->state == S_CLOSED) return;
  if (c->state == S_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      conn_close(c, 1);
      return;
    }
    send_handshake(c);
    return;
  }
  if (events & EPOLLOUT) flush_out(c);
  if (c->state == S_CLOSED) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t r = recv(c->fd, scratch, sizeof scratch, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      conn_close(c, c->state != S_READY);
      return;
    }
    if (r > 0) {
      last_rx_ns = now_ns();
      handle_bytes(c, scratch, (size_t)r);
    }
    if (c->state != S_CLOSED && c->out_len) flush_out(c);
    /* Refill the window as soon as acks arrive, not after the whole epoll batch:
     * the loop's round trip, not the generator's pass over 200 sockets, sets the pace. */
    if (r > 0 && sending && c->state == S_READY) {
      if (c->role == R_SEND) top_up(c, now_ns());
      else if (o_phase == PH_RELAY) top_up(&conns[c->partner], now_ns());
    }
  }
}

/* Runs the event loop once, waiting at most timeout_us (epoll_pwait2: the open
 * loop sends every millisecond, and a millisecond timeout would spin). */
static int poll_us(uint64_t timeout_us) {
  static struct epoll_event evs[1024];
  struct timespec ts = {.tv_sec = (time_t)(timeout_us / 1000000), .tv_nsec = (long)(timeout_us % 1000000) * 1000};
  int n = epoll_pwait2(ep, evs, 1024, &ts, NULL);
  if (n < 0 && errno != EINTR) die("epoll_wait");
  for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
  return n;
}

static void poll_once(int timeout_ms) { poll_us((uint64_t)timeout_ms * 1000); }

/* Opens connections [from, to) with at most --concurrency in setup at once. */
static double open_range(int from, int to) {
  uint64_t start = now_ns(), deadline = start + (uint64_t)(o_setup_timeout * 1e9);
  next_start = from;
  while (now_ns() < deadline) {
    while (next_start < to && inflight_setup < o_concurrency) start_conn(&conns[next_start++]);
    if (next_start >= to && inflight_setup == 0) break;
    poll_once(50);
  }
  return secs(now_ns() - start);
}

static long long quantile_us(double q) {
  if (!hist_count) return -1;
  uint64_t want = (uint64_t)(q * (double)hist_count), acc = 0;
  if (want >= hist_count) want = hist_count - 1;
  for (int i = 0; i < HIST_N; i++) {
    acc += hist[i];
    if (acc > want) return (long long)bucket_us(i);
  }
  return (long long)hist_max;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --proto signaller|ywebrtc|peerjs|floor --port N\n"
          "  --phase fanout|latency|relay|idle|senders [--senders 50]\n"
          "  [--host 127.0.0.1] [--path /] [--n 200] [--pairs 50] [--conns 1000] [--window 32]\n"
          "  [--rate 1000] [--size 60] [--warmup 1] [--duration 5] [--settle 2] [--drain 10]\n"
          "  [--concurrency 256] [--srcs 4] [--pid SERVER_PID] [--tag 4HEX] [--group G]\n"
          "  [--port2 N --pid2 SECOND_NODE_PID [--port3 N --pid3 THIRD_NODE_PID]] [--aux-pid PID]...\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(k, "--proto")) {
      o_proto = !strcmp(v, "signaller") ? P_SIGNALLER
                : !strcmp(v, "ywebrtc") ? P_YWEBRTC
                : !strcmp(v, "peerjs")  ? P_PEERJS
                : !strcmp(v, "floor")   ? P_FLOOR
                                        : -1;
      if (o_proto < 0) usage();
    } else if (!strcmp(k, "--phase")) {
      o_phase = !strcmp(v, "fanout")    ? PH_FANOUT
                : !strcmp(v, "latency") ? PH_LATENCY
                : !strcmp(v, "relay")   ? PH_RELAY
                : !strcmp(v, "idle")    ? PH_IDLE
                : !strcmp(v, "senders") ? PH_SENDERS
                                        : -1;
      if (o_phase < 0) usage();
    } else if (!strcmp(k, "--host")) snprintf(o_host, sizeof o_host, "%s", v);
    else if (!strcmp(k, "--path")) snprintf(o_path, sizeof o_path, "%s", v);
    else if (!strcmp(k, "--tag")) snprintf(o_tag, sizeof o_tag, "%.4s", v);
    else if (!strcmp(k, "--port")) o_port = atoi(v);
    else if (!strcmp(k, "--port2")) o_port2 = atoi(v);
    else if (!strcmp(k, "--port3")) o_port3 = atoi(v);
    else if (!strcmp(k, "--n")) o_n = atoi(v);
    else if (!strcmp(k, "--pairs")) o_pairs = atoi(v);
    else if (!strcmp(k, "--senders")) o_senders = atoi(v);
    else if (!strcmp(k, "--conns")) o_conns = atoi(v);
    else if (!strcmp(k, "--window")) o_window = atoi(v);
    else if (!strcmp(k, "--rate")) o_rate = atoi(v);
    else if (!strcmp(k, "--size")) o_size = atoi(v);
    else if (!strcmp(k, "--concurrency")) o_concurrency = atoi(v);
    else if (!strcmp(k, "--srcs")) o_srcs = atoi(v);
    else if (!strcmp(k, "--group")) o_group = atoi(v);
    else if (!strcmp(k, "--pid")) o_pid = atoi(v);
    else if (!strcmp(k, "--pid2")) o_pid2 = atoi(v);
    else if (!strcmp(k, "--pid3")) o_pid3 = atoi(v);
    else if (!strcmp(k, "--aux-pid")) {
      if (o_naux == MAX_AUX) usage();
      o_aux_pids[o_naux++] = atoi(v);
    }
    else if (!strcmp(k, "--warmup")) o_warmup = atof(v);
    else if (!strcmp(k, "--duration")) o_duration = atof(v);
    else if (!strcmp(k, "--settle")) o_settle = atof(v);
    else if (!strcmp(k, "--drain")) o_drain = atof(v);
    else usage();
  }
  if (o_port <= 0 || o_size < 20 || o_size > 4000 || o_window < 1 || o_rate < 1 || o_senders < 1) usage();
  if (o_port3 > 0 && o_port2 <= 0) usage();
  if (o_port2 > 0 && o_phase == PH_IDLE) usage(); /* the storm measures one server */
}

static void print_common(void) {
  printf("\"closes\":{");
  for (int i = 0; i < nclose_codes; i++) printf("%s\"%d\":%d", i ? "," : "", close_codes[i], close_code_n[i]);
  printf("},\"failed\":%d", failed_count);
}

/* fanout, latency, relay: set up, warm up, measure, drain, check counts. */
static void run_traffic(void) {
  int receivers = o_phase == PH_RELAY ? o_pairs : o_n;
  int nsenders = o_phase == PH_RELAY ? o_pairs : o_phase == PH_SENDERS ? o_senders : 1;
  nconns = o_phase == PH_RELAY ? 2 * o_pairs : o_n + nsenders;
  conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) {
    conn *c = &conns[i];
    c->idx = i;
    c->fd = -1;
    if (o_phase == PH_RELAY) {
      c->role = i < o_pairs ? R_SEND : R_RECV;
      c->partner = i < o_pairs ? i + o_pairs : i - o_pairs;
    } else {
      c->role = i >= o_n ? R_SEND : R_RECV;
    }
    make_id(c);
  }
  double setup_s;
  if (o_phase == PH_RELAY) {
    setup_s = open_range(0, nconns);
  } else {
    /* receivers first, so the senders' first messages find them all joined */
    setup_s = open_range(0, o_n);
    setup_s += open_range(o_n, nconns);
  }
  int setup_ok = ready_count == nconns;
  if (!setup_ok) {
    printf("{\"ok\":false,\"error\":\"setup: %d of %d ready\",\"setup_s\":%.3f,", ready_count, nconns, setup_s);
    print_common();
    printf("}\n");
    return;
  }
  /* settle: let join events and replies finish (200 ms without a byte, at most 20 s) */
  last_rx_ns = now_ns();
  for (uint64_t cap = now_ns() + 20000000000ull; now_ns() < cap && now_ns() - last_rx_ns < 200000000ull;)
    poll_once(20);

  conn **senders = malloc(sizeof(conn *) * (size_t)nsenders);
  for (int i = 0, k = 0; i < nconns; i++)
    if (conns[i].role == R_SEND) senders[k++] = &conns[i];

  uint64_t start = now_ns();
  uint64_t warm_end = start + (uint64_t)(o_warmup * 1e9);
  uint64_t send_end = warm_end + (uint64_t)(o_duration * 1e9);
  uint64_t period = 1000000000ull / (uint64_t)o_rate;
  uint64_t next_send = start;
  /* senders: each its own open loop, the starts spread evenly over one period */
  uint64_t *next_at = calloc((size_t)nsenders, sizeof *next_at);
  for (int i = 0; i < nsenders; i++) next_at[i] = start + period * (uint64_t)i / (uint64_t)nsenders;
  int measured = 0;
  double cpu0 = 0, gcpu0 = 0, acpu0 = 0;
  uint64_t t_meas0 = 0, deliv0 = 0, sent_meas0 = 0;
  sending = 1;
  counting_lat = 1;
  lat_from_ns = warm_end;
  uint64_t last_delivery_t = start, last_total = 0;
  uint64_t hard_end = send_end + (uint64_t)(o_drain * 1e9);
  int drain_timeout = 0; /* stopped waiting while deliveries were still owed */
  for (;;) {
    uint64_t now = now_ns();
    if (!measured && now >= warm_end) {
      measured = 1;
      t_meas0 = now;
      deliv0 = total_delivered;
      sent_meas0 = total_sent;
      cpu0 = server_cpu();
      gcpu0 = self_cpu();
      acpu0 = aux_cpu();
    }
    if (sending && now >= send_end) sending = 0;
    if (sending) {
      if (o_phase == PH_LATENCY) {
        /* open loop: the marker carries the scheduled time, so a late send counts */
        conn *s = senders[0];
        int burst = 0;
        while (next_send <= now && burst++ < 1000) {
          send_message(s, next_send);
          next_send += period;
        }
        if (s->out_len) flush_out(s);
      } else if (o_phase == PH_SENDERS) {
        for (int i = 0; i < nsenders; i++) {
          conn *s = senders[i];
          int sent = 0;
          while (next_at[i] <= now && sent++ < 1000) {
            send_message(s, next_at[i]);
            next_at[i] += period;
          }
          if (s->out_len) flush_out(s);
        }
      } else {
        for (int i = 0; i < nsenders; i++) top_up(senders[i], now);
      }
    }
    uint64_t expected = total_sent * (uint64_t)(o_phase == PH_RELAY ? 1 : receivers);
    if (total_delivered != last_total) {
      last_total = total_delivered;
      last_delivery_t = now;
    }
    if (!sending && total_delivered >= expected && total_acks >= (o_phase == PH_RELAY ? 0 : total_sent)) break;
    if (now >= hard_end) {
      drain_timeout = 1;
      break;
    }
    uint64_t timeout_us = 5000;
    if (o_phase == PH_LATENCY && sending) timeout_us = next_send > now ? (next_send - now) / 1000 : 0;
    if (o_phase == PH_SENDERS && sending) {
      for (int i = 0; i < nsenders; i++) {
        uint64_t wait = next_at[i] > now ? (next_at[i] - now) / 1000 : 0;
        if (wait < timeout_us) timeout_us = wait;
      }
    }
    poll_us(timeout_us);
  }
  uint64_t t_end = last_delivery_t;
  double cpu1 = server_cpu(), gcpu1 = self_cpu(), acpu1 = aux_cpu();
  uint64_t expected = total_sent * (uint64_t)(o_phase == PH_RELAY ? 1 : receivers);
  double window_s = t_end > t_meas0 ? secs(t_end - t_meas0) : 1e-9;
  uint64_t meas_deliv = total_delivered - deliv0;
  printf("{\"ok\":%s,\"setup_s\":%.3f,\"receivers\":%d,\"sent\":%zu,\"expected\":%llu,"
         "\"delivered\":%zu,\"errors\":%zu,\"window_s\":%.3f,\"measured_sent\":%llu,"
         "\"measured_deliveries\":%llu,\"deliveries_per_s\":%.1f,\"server_cpu_s\":%.3f,"
         "\"gen_cpu_s\":%.3f,\"lat_samples\":%llu,\"lat_p50_us\":%lld,\"lat_p99_us\":%lld,"
         "\"lat_p999_us\":%lld,\"lat_max_us\":%llu,\"frames\":%zu,\"drain_timeout\":%s,"
         "\"aux_cpu_s\":%.3f,",
         total_delivered == expected && total_errors == 0 ? "true" : "false", setup_s, receivers, total_sent,
         (unsigned long long)expected, total_delivered, total_errors, window_s,
         (unsigned long long)(total_sent - sent_meas0), (unsigned long long)meas_deliv,
         (double)meas_deliv / window_s, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1.0, gcpu1 - gcpu0,
         (unsigned long long)hist_count, quantile_us(0.5), quantile_us(0.99), quantile_us(0.999),
         (unsigned long long)hist_max, total_frames, drain_timeout ? "true" : "false",
         acpu0 >= 0 && acpu1 >= 0 ? acpu1 - acpu0 : -1.0);
  print_common();
  printf("}\n");
}

/* idle: the setup storm, then hold, measure RSS, and ping every connection. */
static void run_idle(void) {
  nconns = o_conns;
  conns = calloc((size_t)nconns, sizeof *conns);
  for (int i = 0; i < nconns; i++) {
    conns[i].idx = i;
    conns[i].fd = -1;
    conns[i].role = R_IDLE;
    make_id(&conns[i]);
  }
  long rss0 = proc_rss_kb(o_pid);
  double cpu0 = proc_cpu(o_pid);
  double setup_s = open_range(0, nconns);
  double cpu1 = proc_cpu(o_pid);
  long rss_done = proc_rss_kb(o_pid); /* at the end of the storm, before it settles */
  int ready = ready_count;
  for (uint64_t until = now_ns() + (uint64_t)(o_settle * 1e9); now_ns() < until;) poll_once(50);
  long rss1 = proc_rss_kb(o_pid);
  /* every connection still open gets a ping; a pong proves the server holds it */
  for (int i = 0; i < nconns; i++) {
    conn *c = &conns[i];
    if (c->state != S_READY) continue;
    queue_frame(c, 9, "", 0);
    flush_out(c);
  }
  int held = 0;
  for (uint64_t until = now_ns() + 20000000000ull; now_ns() < until;) {
    held = 0;
    for (int i = 0; i < nconns; i++) held += conns[i].state == S_READY && conns[i].pongs > 0;
    if (held == ready_count) break;
    poll_once(50);
  }
  printf("{\"ok\":%s,\"conns\":%d,\"ready\":%d,\"held\":%d,\"setup_s\":%.3f,\"setups_per_s\":%.1f,"
         "\"setup_server_cpu_s\":%.3f,\"rss_before_kb\":%ld,\"rss_done_kb\":%ld,\"rss_after_kb\":%ld,"
         "\"rss_per_conn_b\":%.1f,"
         "\"errors\":%zu,",
         held == nconns ? "true" : "false", nconns, ready, held, setup_s, ready / (setup_s > 0 ? setup_s : 1e-9),
         o_pid > 0 ? cpu1 - cpu0 : -1.0, rss0, rss_done, rss1,
         ready > 0 && rss0 >= 0 ? (double)(rss1 - rss0) * 1024.0 / ready : -1.0, total_errors);
  print_common();
  printf("}\n");
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  /* a hard stop whatever happens: nothing of the bench outlives its budget */
  alarm((unsigned)(o_setup_timeout * 2 + o_warmup + o_duration + o_drain + o_settle + 60));
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  hist = calloc(HIST_N, sizeof *hist);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  t0_ns = now_ns();
  /* channel id: the tag keeps runs from colliding on a reused server */
  snprintf(chan_hex, sizeof chan_hex, "%sc0ffee00000000000000", o_tag);
  if (o_phase == PH_IDLE) run_idle();
  else run_traffic();
  fflush(stdout);
  return 0;
}
