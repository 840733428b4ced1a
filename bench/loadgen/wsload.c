/* wsload: SockJS-over-websocket load generator (epoll, one thread).
 *
 * The websocket scenarios of bench/compare.py (echo, ping-pong, broadcast fan-out,
 * idle sessions) through SockJS's /<prefix>/<server>/<session>/websocket URL, with
 * as little client work per message as a client can do, so that the server is the
 * bottleneck.  Same method and JSON output as loadgen.js (which serves the HTTP
 * transports):
 *   - every message has the same payload "xxx...", so a frame 'a["..",".."]' is
 *     counted by its quotes; the first frame of each session is checked byte by byte;
 *   - echo latency from a per-session FIFO of send times (echoes come back in order);
 *     broadcast latency from publish_times[i] (one publisher, every session receives
 *     its messages in publishing order);
 *   - client frames are masked with the all-zero key (no XOR pass).
 * Bounded: every phase has a deadline, and a hard deadline ends the process.
 *
 * Build: cc -O2 -o wsload wsload.c
 * Usage: wsload kind=echo|broadcast|idle port=P [host=127.0.0.1] [sessions=N] [window=W]
 *        [size=B] [warmup=S] [duration=S] [server_pid=PID] [prefix=/echo] ...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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

/* ------------------------------------------------------------------ options */
static const char *opt_kind = "echo", *opt_host = "127.0.0.1", *opt_prefix = NULL;
static int opt_port = 8081, opt_sessions = 0, opt_window = 1, opt_size = 16, opt_server_pid = 0;
static int opt_open_conc = 0, opt_warm_sessions = 100, opt_bisect = 3;
static double opt_warmup = 1, opt_duration = 5, opt_start_rate = 20, opt_factor = 1.6;
static double opt_step_s = 1.5, opt_max_search_s = 60, opt_p99_limit = 100, opt_drain_ms = 1500;
static double opt_settle_s = 2, opt_open_timeout_s = 60, opt_hard_deadline_s = 180;

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
#define S(name, var) if (!strcmp(k, name)) { var = v; continue; }
#define I(name, var) if (!strcmp(k, name)) { var = atoi(v); continue; }
#define D(name, var) if (!strcmp(k, name)) { var = atof(v); continue; }
        S("kind", opt_kind) S("host", opt_host) S("prefix", opt_prefix)
        I("port", opt_port) I("sessions", opt_sessions) I("window", opt_window) I("size", opt_size)
        I("server_pid", opt_server_pid) I("open_concurrency", opt_open_conc)
        I("warm_sessions", opt_warm_sessions) I("bisect", opt_bisect)
        D("warmup", opt_warmup) D("duration", opt_duration) D("start_rate", opt_start_rate)
        D("factor", opt_factor) D("step_seconds", opt_step_s) D("max_search_s", opt_max_search_s)
        D("p99_limit_ms", opt_p99_limit) D("drain_ms", opt_drain_ms) D("settle_s", opt_settle_s)
        D("open_timeout_s", opt_open_timeout_s) D("hard_deadline_s", opt_hard_deadline_s)
#undef S
#undef I
#undef D
    }
}

/* ------------------------------------------------------------------ clock, CPU, RSS */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static double proc_cpu_s(int pid) {
    char path[64], buf[1024];
    if (!pid) return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    int field = 3; /* q starts at the state, field 3 */
    for (char *q = p + 2; *q && field < 15; q++) {
        if (*q == ' ') {
            field++;
            if (field == 14) ut = strtoul(q + 1, NULL, 10);
            if (field == 15) st = strtoul(q + 1, NULL, 10);
        }
    }
    return (ut + st) / (double)sysconf(_SC_CLK_TCK);
}
static long proc_rss_kib(int pid) {
    char path[64], line[256];
    if (!pid) return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) { kib = atol(line + 6); break; }
    fclose(f);
    return kib;
}
typedef struct { double t0, me0, srv0; } cpuwin;
static void cpu_start(cpuwin *w) { w->t0 = now_ms(); w->me0 = self_cpu_s(); w->srv0 = proc_cpu_s(opt_server_pid); }
static void cpu_stop(cpuwin *w, double *wall_s, double *me, double *srv) {
    *wall_s = (now_ms() - w->t0) / 1e3;
    *me = (self_cpu_s() - w->me0) / *wall_s;
    double s1 = proc_cpu_s(opt_server_pid);
    *srv = (w->srv0 >= 0 && s1 >= 0) ? (s1 - w->srv0) / *wall_s : -1;
}

/* ------------------------------------------------------------------ latency samples */
typedef struct { double *buf; long n, cap, stride, skip, count; } samples;
static void samples_init(samples *s) { s->cap = 1L << 21; s->buf = malloc(s->cap * sizeof(double)); s->n = 0; s->stride = 1; s->skip = 0; s->count = 0; }
static void samples_reset(samples *s) { s->n = 0; s->stride = 1; s->skip = 0; s->count = 0; }
static inline void samples_add(samples *s, double v) {
    s->count++;
    if (++s->skip < s->stride) return;
    s->skip = 0;
    if (s->n == s->cap) {
        for (long i = 0, j = 0; j < s->n; i++, j += 2) s->buf[i] = s->buf[j];
        s->n >>= 1;
        s->stride <<= 1;
    }
    s->buf[s->n++] = v;
}
static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double samples_pct(samples *s, double p) {
    if (!s->n) return -1;
    qsort(s->buf, s->n, sizeof(double), cmp_d);
    long i = (long)(p * s->n);
    if (i >= s->n) i = s->n - 1;
    return s->buf[i];
}

/* ------------------------------------------------------------------ problems */
static char problems[20][128];
static int nproblems;
static void problem(const char *fmt, const char *arg) {
    if (nproblems < 20) snprintf(problems[nproblems++], 128, fmt, arg);
}
#define MAX_REASONS 8
static char reason_txt[MAX_REASONS][96];
static int reason_cnt[MAX_REASONS], nreasons;
static void note_close(const char *why) {
    for (int i = 0; i < nreasons; i++)
        if (!strcmp(reason_txt[i], why)) { reason_cnt[i]++; return; }
    if (nreasons < MAX_REASONS) { snprintf(reason_txt[nreasons], 96, "%s", why); reason_cnt[nreasons++] = 1; }
}

/* ------------------------------------------------------------------ connections */
enum { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };
typedef struct conn {
    int fd, state, index;
    int opened, checked;
    int sockjs_open, stomp_phase; /* stomp: 1 CONNECT sent, 2 SUBSCRIBE sent, 3 ready */
    long recv;
    char *rbuf; size_t rlen, rcap;
    char *wbuf; size_t wlen, woff, wcap;
    char *frag; size_t fraglen;
    double *fifo; int fhead, fcount, fcap; /* echo: send times */
    char path[96];
} conn;

static int ep;
static conn **conns;
static int nconns, conns_cap;
static int n_open, n_failed, n_closed_running, running = 1;
static char *payload;
static char *frame1; static size_t frame1_len;  /* one client frame '["xxx"]' */
static char *frames64; static size_t frames64_len; /* 64 of them */
static samples lat;
static int measuring;
static long received;
static char expected_msg[2048]; static size_t expected_len; /* "xxx" with quotes */

static void on_open(conn *c);
static void on_messages(conn *c, long k);
static void stomp_frame(conn *c, const char *s, const char *e);
static void stomp_open(conn *c);
static int kind_echo, kind_broadcast, kind_stomp;
static int first_receiver; /* broadcast: 0 (the publisher receives too); stomp: 1 */

static void conn_close(conn *c, const char *why) {
    if (c->state == C_CLOSED) return;
    int was_opened = c->opened;
    c->state = C_CLOSED;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (!was_opened) n_failed++;
    if (running) { n_closed_running += was_opened; note_close(why); }
}

static void want_out(conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_write(conn *c, const char *data, size_t len) {
    if (c->state == C_CLOSED) return;
    if (c->wlen == c->woff) {
        ssize_t n = write(c->fd, data, len);
        if (n == (ssize_t)len) return;
        if (n < 0) {
            if (errno != EAGAIN) { conn_close(c, "write error"); return; }
            n = 0;
        }
        data += n; len -= n;
        c->wlen = c->woff = 0;
        want_out(c, 1);
    }
    if (c->wlen + len > c->wcap) {
        if (c->woff) { memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff); c->wlen -= c->woff; c->woff = 0; }
        while (c->wlen + len > c->wcap) c->wcap = c->wcap ? c->wcap * 2 : 65536;
        c->wbuf = realloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

static void flush_out(conn *c) {
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0) {
            if (errno == EAGAIN) return;
            conn_close(c, "write error");
            return;
        }
        c->woff += n;
    }
    c->woff = c->wlen = 0;
    want_out(c, 0);
}

static void send_msgs(conn *c, long k) {
    while (k > 0) {
        long m = k < 64 ? k : 64;
        conn_write(c, frames64, frame1_len * m);
        k -= m;
    }
}

/* A client text frame (zero masking key) for `text`. */
static char *ws_frame(const char *text, size_t *out_len) {
    size_t n = strlen(text), hl = n < 126 ? 6 : 8;
    char *f = malloc(hl + n);
    f[0] = (char)0x81;
    if (n < 126) f[1] = (char)(0x80 | n);
    else { f[1] = (char)0xfe; f[2] = n >> 8; f[3] = n & 255; }
    memset(f + hl - 4, 0, 4);
    memcpy(f + hl, text, n);
    *out_len = hl + n;
    return f;
}
static void send_text(conn *c, const char *json) {
    size_t n;
    char *f = ws_frame(json, &n);
    conn_write(c, f, n);
    free(f);
}

/* ------------------------------------------------------------------ STOMP over SockJS */
static const char *STOMP_CONNECT = "[\"CONNECT\\naccept-version:1.0,1.1,1.2\\nhost:localhost\\nheart-beat:0,0\\n\\n\\u0000\"]";
static const char *STOMP_SUBSCRIBE = "[\"SUBSCRIBE\\nid:0\\ndestination:/topic/bench\\nack:auto\\nreceipt:sub\\n\\n\\u0000\"]";
static void stomp_open(conn *c) {
    c->checked = 1;
    c->stomp_phase = 1;
    send_text(c, STOMP_CONNECT);
}
static void stomp_ready(conn *c) {
    c->stomp_phase = 3;
    c->opened = 1;
    n_open++;
}
static void stomp_frame(conn *c, const char *s, const char *e) {
    if (c->stomp_phase == 3) {
        long k = 0;
        const char *p = s;
        while ((p = memmem(p, e - p, "MESSAGE\\n", 9))) { k++; p += 9; }
        if (memmem(s, e - s, "ERROR\\n", 7)) problem("%s", "STOMP ERROR frame");
        c->recv += k;
        on_messages(c, k);
    } else if (memmem(s, e - s, "ERROR\\n", 7)) {
        char tmp[100];
        size_t n = e - s < 90 ? (size_t)(e - s) : 90;
        memcpy(tmp, s, n); tmp[n] = 0;
        problem("STOMP error %s", tmp);
        conn_close(c, "STOMP ERROR");
    } else if (c->stomp_phase == 1 && memmem(s, e - s, "CONNECTED", 9)) {
        if (c->index == 0) stomp_ready(c); /* the publisher */
        else { c->stomp_phase = 2; send_text(c, STOMP_SUBSCRIBE); }
    } else if (c->stomp_phase == 2 && memmem(s, e - s, "RECEIPT", 7)) {
        stomp_ready(c);
    }
}

static unsigned long sid_counter;
static conn *conn_start(const char *prefix) {
    conn *c = calloc(1, sizeof *c);
    c->index = nconns;
    sid_counter++;
    snprintf(c->path, sizeof c->path, "%s/%03lu/%08lx%lx/websocket", prefix, sid_counter % 1000,
             (unsigned long)random(), sid_counter);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(opt_port)};
    inet_pton(AF_INET, opt_host, &sa.sin_addr);
    c->state = C_CONNECTING;
    if (nconns == conns_cap) { conns_cap = conns_cap ? conns_cap * 2 : 1024; conns = realloc(conns, conns_cap * sizeof *conns); }
    conns[nconns++] = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) conn_close(c, "connect error");
    return c;
}

static void send_handshake(conn *c) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     c->path, opt_host, opt_port);
    c->state = C_HANDSHAKE;
    want_out(c, 0);
    conn_write(c, req, n);
}

/* Count the messages of an 'a' frame by its quotes (payload has none). */
static long count_quoted(const char *s, const char *e) {
    long q = 0;
    while ((s = memchr(s, '"', e - s))) { q++; s++; }
    return q >> 1;
}
/* Check a whole 'a' frame: a["xxx"(,\s*"xxx")*] */
static void check_frame(const char *s, const char *e) {
    const char *p = s + 1;
    if (p >= e || *p++ != '[') goto bad;
    for (;;) {
        if ((size_t)(e - p) < expected_len || memcmp(p, expected_msg, expected_len)) goto bad;
        p += expected_len;
        if (p < e && *p == ']') { if (p + 1 == e) return; goto bad; }
        if (p >= e || *p++ != ',') goto bad;
        while (p < e && *p == ' ') p++;
    }
bad: {
        char tmp[64];
        size_t n = e - s < 60 ? (size_t)(e - s) : 60;
        memcpy(tmp, s, n); tmp[n] = 0;
        problem("unexpected frame %s", tmp);
    }
}

static void sockjs_frame(conn *c, const char *s, const char *e) {
    if (s >= e) return;
    switch (*s) {
    case 'a': {
        if (kind_stomp) { stomp_frame(c, s, e); break; }
        long k = count_quoted(s, e);
        if (!c->checked) { c->checked = 1; check_frame(s, e); }
        c->recv += k;
        on_messages(c, k);
        break;
    }
    case 'o':
        if (c->sockjs_open) break;
        c->sockjs_open = 1;
        if (kind_stomp) stomp_open(c);
        else { c->opened = 1; n_open++; on_open(c); }
        break;
    case 'h': break;
    case 'c': {
        char why[96];
        size_t n = e - s < 80 ? (size_t)(e - s) : 80;
        memcpy(why, "close frame ", 12); memcpy(why + 12, s, n); why[12 + n] = 0;
        conn_close(c, why);
        break;
    }
    case 'm': c->recv++; on_messages(c, 1); break;
    default: problem("unknown frame type %s", "?");
    }
}

static void parse(conn *c) {
    char *buf = c->rbuf, *p = buf, *end = buf + c->rlen;
    if (c->state == C_HANDSHAKE) {
        char *h = memmem(p, end - p, "\r\n\r\n", 4);
        if (!h) return;
        if (end - p < 12 || memcmp(p + 9, "101", 3)) { conn_close(c, "handshake refused"); return; }
        c->state = C_OPEN;
        p = h + 4;
    }
    while (end - p >= 2 && c->state == C_OPEN) {
        unsigned char b0 = p[0], b1 = p[1];
        uint64_t plen = b1 & 0x7f;
        int h = 2;
        if (plen == 126) {
            if (end - p < 4) break;
            plen = ((unsigned char)p[2] << 8) | (unsigned char)p[3];
            h = 4;
        } else if (plen == 127) {
            if (end - p < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | (unsigned char)p[2 + i];
            h = 10;
        }
        if (b1 & 0x80) { conn_close(c, "masked server frame"); return; }
        if ((uint64_t)(end - p) < h + plen) {
            size_t need = h + plen;
            if (need > c->rcap) { /* grow for a big frame */
                size_t off = p - buf;
                while (c->rcap < need + off) c->rcap *= 2;
                c->rbuf = realloc(c->rbuf, c->rcap);
                buf = c->rbuf; p = buf + off; end = buf + c->rlen;
            }
            break;
        }
        int op = b0 & 0x0f;
        char *s = p + h, *e = s + plen;
        p = e;
        if (op == 1 || op == 2) {
            if (b0 & 0x80) sockjs_frame(c, s, e);
            else { c->frag = realloc(c->frag, plen); memcpy(c->frag, s, plen); c->fraglen = plen; }
        } else if (op == 0) {
            c->frag = realloc(c->frag, c->fraglen + plen);
            memcpy(c->frag + c->fraglen, s, plen);
            c->fraglen += plen;
            if (b0 & 0x80) { sockjs_frame(c, c->frag, c->frag + c->fraglen); c->fraglen = 0; }
        } else if (op == 9) {
            char pong[256] = {(char)0x8a, (char)(0x80 | (plen & 0x7f)), 0, 0, 0, 0};
            if (plen <= 125) { memcpy(pong + 6, s, plen); conn_write(c, pong, 6 + plen); }
        } else if (op == 8) {
            conn_close(c, "websocket close");
            return;
        }
    }
    if (c->state == C_CLOSED) return;
    size_t rest = end - p;
    if (rest && p != buf) memmove(buf, p, rest);
    c->rlen = rest;
}

static void on_readable(conn *c) {
    for (;;) {
        if (c->rcap - c->rlen < 65536) {
            c->rcap = c->rcap ? c->rcap * 2 : 131072;
            c->rbuf = realloc(c->rbuf, c->rcap);
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0) {
            if (errno == EAGAIN) return;
            conn_close(c, "read error");
            return;
        }
        if (n == 0) { conn_close(c, "tcp closed"); return; }
        c->rlen += n;
        parse(c);
        if (c->state == C_CLOSED || (size_t)n < 65536) return;
    }
}

/* ------------------------------------------------------------------ event loop */
typedef int (*pred_fn)(void);
typedef void (*tick_fn)(void);

static void loop_until(double deadline, pred_fn done, tick_fn tick, double tick_ms) {
    struct epoll_event evs[512];
    for (;;) {
        if (done && done()) return;
        double t = now_ms();
        if (t >= deadline) return;
        double wait = deadline - t;
        if (tick && wait > tick_ms) wait = tick_ms;
        int n = epoll_wait(ep, evs, 512, (int)ceil(wait));
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state == C_CLOSED) continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                conn_close(c, c->state == C_CONNECTING ? "connect refused" : "tcp error");
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (c->state == C_CONNECTING) {
                    int err = 0; socklen_t l = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                    if (err) { conn_close(c, "connect refused"); continue; }
                    send_handshake(c);
                } else flush_out(c);
            }
            if (c->state != C_CLOSED && evs[i].events & EPOLLIN) on_readable(c);
        }
        if (tick) tick();
    }
}

/* open `n` more sessions with at most `conc` handshakes in flight */
static int open_target;
static int open_done(void) { return n_open + n_failed >= open_target; }
static void open_sessions(int n, const char *prefix, int conc, double timeout_ms) {
    int started = 0;
    int base = n_open + n_failed;
    open_target = base + n;
    double deadline = now_ms() + timeout_ms;
    while (!open_done() && now_ms() < deadline) {
        while (started < n && (started - (n_open + n_failed - base)) < conc) { conn_start(prefix); started++; }
        loop_until(now_ms() + 5, open_done, NULL, 0);
    }
}

/* ------------------------------------------------------------------ echo */
static void echo_on_open(conn *c) {
    c->fcap = opt_window * 2 + 2;
    c->fifo = calloc(c->fcap, sizeof(double));
    double t = now_ms();
    for (int i = 0; i < opt_window; i++) c->fifo[(c->fhead + c->fcount++) % c->fcap] = t;
    send_msgs(c, opt_window);
}
static void echo_on_messages(conn *c, long k) {
    double t = now_ms();
    for (long i = 0; i < k; i++) {
        if (!c->fcount) { problem("%s", "more echoes than messages sent"); break; }
        double t0 = c->fifo[c->fhead];
        c->fhead = (c->fhead + 1) % c->fcap;
        c->fcount--;
        if (measuring) samples_add(&lat, t - t0);
    }
    if (measuring) received += k;
    if (!running) return;
    for (long i = 0; i < k; i++) c->fifo[(c->fhead + c->fcount++) % c->fcap] = t;
    send_msgs(c, k);
}

/* ------------------------------------------------------------------ broadcast */
static double *publish_times;
static long published, publish_cap = 1L << 23, step_from;
static void bc_on_messages(conn *c, long k) {
    double t = now_ms();
    for (long i = c->recv - k; i < c->recv; i++)
        if (i >= step_from && i < published) samples_add(&lat, t - publish_times[i]);
}

static void on_open(conn *c) { if (kind_echo) echo_on_open(c); }
static void on_messages(conn *c, long k) {
    if (kind_echo) echo_on_messages(c, k);
    else if (kind_broadcast) bc_on_messages(c, k);
}

static double step_rate, step_t0;
static long step_total, step_first;
static void publish_tick(void) {
    long due_total = (long)(step_rate * (now_ms() - step_t0) / 1000.0) + 1;
    if (due_total > step_total) due_total = step_total;
    long due = due_total - (published - step_first);
    if (due <= 0) return;
    if (published + due > publish_cap) due = publish_cap - published;
    double t = now_ms();
    for (long i = 0; i < due; i++) publish_times[published++] = t;
    send_msgs(conns[0], due);
}
static int step_published(void) { return published - step_first >= step_total; }
static int all_delivered(void) {
    for (int i = first_receiver; i < nconns; i++)
        if (conns[i]->state != C_CLOSED && conns[i]->recv < published) return 0;
    return 1;
}

typedef struct { double rate, p50, p99, lcpu, scpu; int ok, lagging; } stepres;
static stepres do_step(double rate) {
    stepres r = {.rate = rate};
    samples_reset(&lat);
    step_from = step_first = published;
    step_total = (long)llround(rate * opt_step_s);
    if (step_total < 1) step_total = 1;
    step_rate = rate;
    step_t0 = now_ms();
    cpuwin w;
    cpu_start(&w);
    publish_tick();
    loop_until(step_t0 + opt_step_s * 1000 + 5000, step_published, publish_tick, 1);
    loop_until(now_ms() + opt_drain_ms, all_delivered, NULL, 0);
    double wall;
    cpu_stop(&w, &wall, &r.lcpu, &r.scpu);
    for (int i = first_receiver; i < nconns; i++)
        if (conns[i]->state != C_CLOSED && conns[i]->recv < published) r.lagging++;
    r.p50 = samples_pct(&lat, 0.5);
    r.p99 = samples_pct(&lat, 0.99);
    long expected = step_total * (long)(nconns - first_receiver);
    r.ok = r.lagging == 0 && n_closed_running == 0 && r.p99 >= 0 && r.p99 < opt_p99_limit && lat.count >= expected;
    if (!r.ok) loop_until(now_ms() + 8000, all_delivered, NULL, 0); /* let a backlog drain first */
    return r;
}

/* ------------------------------------------------------------------ output */
static void print_common(void) {
    printf("\"closed_sessions\":%d,\"close_reasons\":{", n_closed_running);
    for (int i = 0; i < nreasons; i++) {
        printf("%s\"", i ? "," : "");
        for (char *p = reason_txt[i]; *p; p++) if (*p != '"' && *p != '\\' && (unsigned char)*p >= 32) putchar(*p);
        printf("\":%d", reason_cnt[i]);
    }
    printf("},\"problems\":[");
    for (int i = 0; i < nproblems; i++) {
        printf("%s\"", i ? "," : "");
        for (char *p = problems[i]; *p; p++) if (*p != '"' && *p != '\\' && (unsigned char)*p >= 32) putchar(*p);
        printf("\"");
    }
    printf("],\"loadgen\":\"wsload\"}\n");
}
static void num(const char *k, double v) {
    if (v < 0 || isnan(v)) printf("\"%s\":null,", k);
    else printf("\"%s\":%.6g,", k, v);
}

static void on_alarm(int sig) {
    (void)sig;
    const char msg[] = "{\"error\":\"hard deadline reached\"}\n";
    if (write(1, msg, sizeof msg - 1)) {}
    _exit(2);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)opt_hard_deadline_s);
    srandom(getpid() ^ (unsigned)now_ms());
    ep = epoll_create1(0);
    kind_echo = !strcmp(opt_kind, "echo");
    kind_stomp = !strcmp(opt_kind, "stomp");
    kind_broadcast = !strcmp(opt_kind, "broadcast") || kind_stomp;
    first_receiver = kind_stomp ? 1 : 0;
    if (!opt_prefix) opt_prefix = kind_stomp ? "/stomp" : kind_broadcast ? "/broadcast" : "/echo";
    if (opt_size < 1 || opt_size > 1500) opt_size = 16;
    payload = malloc(opt_size + 1);
    memset(payload, 'x', opt_size);
    payload[opt_size] = 0;
    expected_len = opt_size + 2;
    expected_msg[0] = '"'; memcpy(expected_msg + 1, payload, opt_size); expected_msg[opt_size + 1] = '"';
    /* one client frame: ["xxx"] masked with the zero key */
    size_t plen = opt_size + 4, hl = plen < 126 ? 6 : 8;
    frame1_len = hl + plen;
    frame1 = malloc(frame1_len);
    frame1[0] = (char)0x81;
    if (plen < 126) frame1[1] = (char)(0x80 | plen);
    else { frame1[1] = (char)0xfe; frame1[2] = plen >> 8; frame1[3] = plen & 255; }
    memset(frame1 + hl - 4, 0, 4);
    frame1[hl] = '['; frame1[hl + 1] = '"'; memcpy(frame1 + hl + 2, payload, opt_size);
    frame1[hl + 2 + opt_size] = '"'; frame1[hl + 3 + opt_size] = ']';
    if (kind_stomp) {
        char send[2200];
        snprintf(send, sizeof send, "[\"SEND\\ndestination:/topic/bench\\ncontent-type:text/plain\\n\\n%s\\u0000\"]", payload);
        free(frame1);
        frame1 = ws_frame(send, &frame1_len);
    }
    frames64_len = frame1_len * 64;
    frames64 = malloc(frames64_len);
    for (int i = 0; i < 64; i++) memcpy(frames64 + i * frame1_len, frame1, frame1_len);
    samples_init(&lat);

    printf("{");
    if (kind_echo) {
        int n = opt_sessions ? opt_sessions : 50;
        open_sessions(n, opt_prefix, opt_open_conc ? opt_open_conc : 50, 15000);
        loop_until(now_ms() + opt_warmup * 1000, NULL, NULL, 0);
        cpuwin w;
        measuring = 1;
        cpu_start(&w);
        loop_until(now_ms() + opt_duration * 1000, NULL, NULL, 0);
        measuring = 0;
        double wall, me, srv;
        cpu_stop(&w, &wall, &me, &srv);
        running = 0;
        num("msgs_per_s", received / wall);
        num("p50_ms", samples_pct(&lat, 0.5));
        num("p99_ms", samples_pct(&lat, 0.99));
        printf("\"sessions_open\":%d,", n_open);
        num("wall_s", wall); num("loadgen_cpu", me); num("server_cpu", srv);
    } else if (kind_broadcast) {
        int n = opt_sessions ? opt_sessions : 1000;
        publish_times = malloc(publish_cap * sizeof(double));
        if (kind_stomp) open_sessions(1, opt_prefix, 1, 10000); /* the publisher: conns[0] */
        open_sessions(n, opt_prefix, opt_open_conc ? opt_open_conc : 100, 20000);
        n += first_receiver;
        if (n_open < n) {
            printf("\"error\":\"only %d of %d sessions opened\",", n_open, n);
        } else {
            stepres steps[40], best = {0};
            int nsteps = 0, have_best = 0;
            double fail = 0, hard_end = now_ms() + opt_max_search_s * 1000, rate = opt_start_rate;
            /* a failing step is run again once: a single hiccup of the machine does not end the search */
#define TRY(rt) do { stepres r_ = do_step(rt); steps[nsteps++] = r_; \
                     if (!r_.ok && !n_closed_running && nsteps < 38) { r_ = do_step(rt); steps[nsteps++] = r_; } \
                     if (r_.ok && (!have_best || r_.rate > best.rate)) { best = r_; have_best = 1; } \
                     if (!r_.ok && (fail == 0 || r_.rate < fail)) fail = r_.rate; } while (0)
            TRY(rate);
            int up = have_best;
            for (int i = 0; i < 14 && nsteps < 36 && now_ms() < hard_end && !n_closed_running; i++) {
                rate = up ? rate * opt_factor : rate / opt_factor;
                TRY(rate);
                if (up != steps[nsteps - 1].ok) break;
                if (!up && rate < 1) break;
            }
            for (int i = 0; i < opt_bisect && have_best && fail > 0 && nsteps < 38 && now_ms() < hard_end && !n_closed_running; i++) {
                if (fail / best.rate < 1.04) break;
                TRY(sqrt(best.rate * fail));
            }
            num("deliveries_per_s", have_best ? best.rate * (nconns - first_receiver) : 0);
            num("rate", have_best ? best.rate : 0);
            num("p50_ms", have_best ? best.p50 : -1);
            num("p99_ms", have_best ? best.p99 : -1);
            num("loadgen_cpu", have_best ? best.lcpu : -1);
            num("server_cpu", have_best ? best.scpu : -1);
            printf("\"sessions_open\":%d,", n_open);
            num("first_failing_rate", fail > 0 ? fail : -1);
            printf("\"steps\":[");
            for (int i = 0; i < nsteps; i++)
                printf("%s{\"rate\":%.1f,\"ok\":%s,\"p99_ms\":%.3f,\"lagging\":%d,\"loadgen_cpu\":%.3f,\"server_cpu\":%.3f}",
                       i ? "," : "", steps[i].rate, steps[i].ok ? "true" : "false", steps[i].p99, steps[i].lagging,
                       steps[i].lcpu, steps[i].scpu);
            printf("],");
        }
        running = 0;
    } else { /* idle */
        int n = opt_sessions ? opt_sessions : 5000, conc = opt_open_conc ? opt_open_conc : 100;
        open_sessions(opt_warm_sessions, opt_prefix, conc, 20000);
        loop_until(now_ms() + 1000, NULL, NULL, 0);
        long rss0 = proc_rss_kib(opt_server_pid);
        int warm = n_open;
        double t0 = now_ms();
        open_sessions(n, opt_prefix, conc, opt_open_timeout_s * 1000);
        double open_s = (now_ms() - t0) / 1000;
        int opened = n_open - warm;
        loop_until(now_ms() + opt_settle_s * 1000, NULL, NULL, 0);
        long rss1 = proc_rss_kib(opt_server_pid);
        int still = 0;
        for (int i = 0; i < nconns; i++) still += conns[i]->opened && conns[i]->state != C_CLOSED;
        num("kib_per_session", rss0 >= 0 && rss1 >= 0 && opened > 0 ? (double)(rss1 - rss0) / opened : -1);
        printf("\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"sessions_open\":%d,\"still_open\":%d,",
               rss0, rss1, opened, still - warm);
        num("opens_per_s", opened / open_s);
        running = 0;
    }
    print_common();
    fflush(stdout);
    return 0;
}
