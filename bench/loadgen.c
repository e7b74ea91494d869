/*
 * loadgen.c — an open-loop HTTP/1.1 load generator for bench/run.sh.
 *
 * It holds a fixed request rate over N keep-alive connections (one request in
 * flight per connection, no pipelining) and measures each request's latency from
 * the moment the schedule meant to send it, not from when a connection was free
 * to send it: a server that stalls is charged for every request that waited
 * behind the stall ("coordinated omission", what wrk2 corrects and wrk does not).
 * Request i of the run is due at start + i / rate; due requests go out on idle
 * connections in order, so a queue that builds up shows in the latencies.
 *
 * The key: each request may carry a secret drawn at random from a file of
 * secrets (one a line, as `latchkey seed --out` writes), put where the body or
 * one header says `{key}`. Secrets never appear on the command line.
 *
 * Responses are outside input: the status line and headers are read into a
 * fixed buffer (LG_HEAD_MAX), the body is counted by Content-Length and dropped,
 * and anything else (chunked, no length, a head too long, bytes after the body)
 * is an error that closes and reopens that connection.
 *
 * usage: loadgen -u http://127.0.0.1:PORT/path -R RATE [-c CONNS] [-d SECONDS]
 *                [-w WARMUP_SECONDS] [-m METHOD] [-H 'Name: value']... [-b BODY]
 *                [-k SECRETS_FILE]
 * Prints a human-readable summary, then one line for scripts:
 *   result <achieved_rps> <p50_us> <p90_us> <p99_us> <p999_us> <max_us> <errors> <sent>
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_CONNS 1024
#define LG_MAX_HEADERS 16
#define LG_REQ_MAX 8192              /* bytes of one request */
#define LG_HEAD_MAX 16384            /* bytes of one response head */
#define LG_BODY_MAX (64 * 1024 * 1024) /* a Content-Length above this is an error */
#define LG_KEY_MAX 512               /* bytes of one secret */
#define LG_KEYS_MAX 20000000         /* secrets read from the file */
#define LG_DRAIN_NS 2000000000LL     /* wait for answers in flight after the run */

/* Latency histogram: log-linear, 2^SUB buckets per power of two of nanoseconds
 * (under 1 % error), up to 2^MAG ns (~ 1100 s). */
#define LG_SUB 7
#define LG_MAG 40
#define LG_BUCKETS ((LG_MAG - LG_SUB + 1) << LG_SUB)

enum cstate { C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
    int fd;
    enum cstate state;
    int64_t due;     /* the request's intended send time (ns) */
    bool counted;    /* inside the measured window */
    char out[LG_REQ_MAX];
    size_t out_len, out_off;
    char in[LG_HEAD_MAX];
    size_t in_len;
    bool in_body;
    uint64_t body_left;
    bool close_after;
};

static struct {
    struct sockaddr_in addr;
    char host[256];
    char path[2048];
    const char *method;
    const char *headers[LG_MAX_HEADERS];
    int nheaders;
    const char *body;
    char **keys;
    size_t nkeys;
    double rate;
    int conns;
    double seconds, warmup;
} opt = {.method = "GET", .conns = 32, .seconds = 10, .warmup = 1};

static uint64_t hist[LG_BUCKETS];
static uint64_t hist_n, errors, answered, sent;
static int64_t lat_max;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t next_rand(void)
{
    /* xorshift64*: enough to scatter the keys. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
}

static int bucket_of(int64_t v)
{
    uint64_t u = v < 1 ? 1 : (uint64_t)v;
    int mag = 63 - __builtin_clzll(u);

    if (mag < LG_SUB)
        return (int)u;
    if (mag >= LG_MAG)
        return LG_BUCKETS - 1;
    return ((mag - LG_SUB + 1) << LG_SUB) + (int)((u >> (mag - LG_SUB)) & ((1u << LG_SUB) - 1));
}

/* The upper bound of bucket b (what a percentile reports: never under the truth). */
static int64_t bucket_top(int b)
{
    int mag = (b >> LG_SUB) + LG_SUB - 1, sub = b & ((1 << LG_SUB) - 1);

    if (b < (1 << LG_SUB))
        return b;
    return (int64_t)(((uint64_t)(1u << LG_SUB) + (uint64_t)sub + 1) << (mag - LG_SUB)) - 1;
}

static void record(int64_t lat)
{
    hist[bucket_of(lat)]++;
    hist_n++;
    if (lat > lat_max)
        lat_max = lat;
}

static double percentile_us(double p)
{
    uint64_t want, seen = 0;

    if (hist_n == 0)
        return 0;
    want = (uint64_t)(p / 100.0 * (double)hist_n + 0.5);
    if (want < 1)
        want = 1;
    for (int b = 0; b < LG_BUCKETS; b++)
        if ((seen += hist[b]) >= want) {
            int64_t top = bucket_top(b);
            return (double)(top < lat_max ? top : lat_max) / 1000.0;
        }
    return (double)lat_max / 1000.0;
}

/* --- options --------------------------------------------------------------- */

static void parse_url(const char *url)
{
    const char *p, *slash, *colon;
    size_t hl;
    long port = 80;

    if (strncmp(url, "http://", 7) != 0)
        die("only http:// URLs are supported: %s", url);
    p = url + 7;
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    hl = (size_t)((colon ? colon : slash) - p);
    if (hl == 0 || hl >= sizeof(opt.host))
        die("bad host in %s", url);
    memcpy(opt.host, p, hl);
    opt.host[hl] = '\0';
    if (colon != NULL) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end != slash || port < 1 || port > 65535)
            die("bad port in %s", url);
    }
    if (strlen(*slash ? slash : "/") >= sizeof(opt.path))
        die("path too long in %s", url);
    snprintf(opt.path, sizeof(opt.path), "%s", *slash ? slash : "/");
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, opt.host, &opt.addr.sin_addr) != 1)
        die("the host must be an IPv4 address: %s", opt.host);
}

static double parse_num(const char *s, const char *what, double min, double max)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= min && v <= max))
        die("bad %s", what);
    return v;
}

static void load_keys(const char *file)
{
    FILE *f = fopen(file, "r");
    char line[LG_KEY_MAX + 2];
    size_t cap = 0;

    if (f == NULL)
        die("cannot open %s", file);
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strcspn(line, "\r\n");
        if (n == strlen(line) && !feof(f))
            die("a line longer than the longest secret in %s", file);
        line[n] = '\0';
        if (n == 0)
            continue;
        if (opt.nkeys == LG_KEYS_MAX)
            die("too many secrets in %s", file);
        if (opt.nkeys == cap) {
            cap = cap ? cap * 2 : 1024;
            opt.keys = realloc(opt.keys, cap * sizeof(*opt.keys));
            if (opt.keys == NULL)
                die("out of memory reading %s", file);
        }
        if ((opt.keys[opt.nkeys++] = strdup(line)) == NULL)
            die("out of memory reading %s", file);
    }
    fclose(f);
    if (opt.nkeys == 0)
        die("no secrets in %s", file);
}

/* --- requests -------------------------------------------------------------- */

/* Appends s with {key} replaced by key. False when it does not fit. */
static bool put_sub(char *buf, size_t cap, size_t *len, const char *s, const char *key)
{
    const char *k;

    while ((k = strstr(s, "{key}")) != NULL && key != NULL) {
        size_t n = (size_t)(k - s), kl = strlen(key);
        if (*len + n + kl >= cap)
            return false;
        memcpy(buf + *len, s, n);
        memcpy(buf + *len + n, key, kl);
        *len += n + kl;
        s = k + 5;
    }
    size_t n = strlen(s);
    if (*len + n >= cap)
        return false;
    memcpy(buf + *len, s, n);
    *len += n;
    return true;
}

static void build_request(struct conn *c)
{
    const char *key = opt.nkeys ? opt.keys[next_rand() % opt.nkeys] : NULL;
    char body[LG_REQ_MAX];
    size_t blen = 0, len = 0;
    char head[LG_REQ_MAX];
    int n;

    if (opt.body != NULL && !put_sub(body, sizeof(body), &blen, opt.body, key))
        die("the request body is too long%s", "");
    n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s:%u\r\n", opt.method, opt.path,
                 opt.host, ntohs(opt.addr.sin_port));
    if (n < 0 || (size_t)n >= sizeof(head))
        die("the request line is too long%s", "");
    len = (size_t)n;
    for (int i = 0; i < opt.nheaders; i++)
        if (!put_sub(head, sizeof(head), &len, opt.headers[i], key) ||
            !put_sub(head, sizeof(head), &len, "\r\n", NULL))
            die("the request headers are too long%s", "");
    if (opt.body != NULL) {
        n = snprintf(head + len, sizeof(head) - len, "Content-Length: %zu\r\n", blen);
        if (n < 0 || (size_t)n >= sizeof(head) - len)
            die("the request headers are too long%s", "");
        len += (size_t)n;
    }
    if (!put_sub(head, sizeof(head), &len, "\r\n", NULL) || len + blen > sizeof(c->out))
        die("the request is too long%s", "");
    memcpy(c->out, head, len);
    memcpy(c->out + len, body, blen);
    c->out_len = len + blen;
    c->out_off = 0;
}

/* --- connections ----------------------------------------------------------- */

static int ep;

static void conn_open(struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    int on = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) != 0 &&
        errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    c->state = C_CONNECTING;
    c->in_len = 0;
    c->in_body = false;
    c->close_after = false;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Drops the connection (and the request on it, as an error) and opens a new one. */
static void conn_fail(struct conn *c, bool is_error)
{
    if (c->state == C_BUSY && c->counted && is_error)
        errors++;
    close(c->fd);
    conn_open(c);
}

static void conn_write(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_fail(c, true);
            return;
        }
        c->out_off += (size_t)n;
    }
}

static void conn_done(struct conn *c, int64_t now)
{
    if (c->counted) {
        answered++;
        record(now - c->due);
    }
    c->state = C_IDLE;
    c->in_body = false;
    c->in_len = 0;
    if (c->close_after)
        conn_fail(c, false);
}

/* Parses the response head in c->in[0..end). False: not a response we take. */
static bool parse_head(struct conn *c, size_t end)
{
    const char *p = c->in, *stop = c->in + end, *eol;
    bool have_len = false;
    int status;

    if (end < 12 || (memcmp(p, "HTTP/1.1 ", 9) != 0 && memcmp(p, "HTTP/1.0 ", 9) != 0))
        return false;
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return false;
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if ((status < 200 || status > 399) && c->counted)
        errors++;
    c->close_after = p[7] == '0';
    c->body_left = 0;
    for (p = memchr(p, '\n', (size_t)(stop - p)); p != NULL && p + 1 < stop; p = eol) {
        const char *line = p + 1, *colon, *v;
        eol = memchr(line, '\n', (size_t)(stop - line));
        if (eol == NULL)
            break;
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL)
            continue;
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        size_t nl = (size_t)(colon - line), vl = (size_t)(eol - v);
        if (vl > 0 && v[vl - 1] == '\r')
            vl--;
        if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
            uint64_t n = 0;
            if (vl == 0 || have_len)
                return false;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9' || n > LG_BODY_MAX)
                    return false;
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (n > LG_BODY_MAX)
                return false;
            c->body_left = n;
            have_len = true;
        } else if (nl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            return false; /* chunked bodies: not needed against these servers */
        } else if (nl == 10 && strncasecmp(line, "connection", 10) == 0) {
            c->close_after = vl == 5 && strncasecmp(v, "close", 5) == 0;
        }
    }
    return have_len;
}

static void conn_read(struct conn *c, int64_t now)
{
    for (;;) {
        ssize_t n;
        if (c->in_body) {
            char sink[65536];
            size_t want = c->body_left < sizeof(sink) ? (size_t)c->body_left : sizeof(sink);
            n = read(c->fd, sink, want ? want : 1);
            if (n > 0 && (uint64_t)n > c->body_left) {
                conn_fail(c, true); /* bytes beyond the answer: no pipelining here */
                return;
            }
        } else {
            if (c->in_len == sizeof(c->in)) {
                conn_fail(c, true); /* a head longer than we take */
                return;
            }
            n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
        }
        if (n == 0) {
            conn_fail(c, c->state == C_BUSY);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_fail(c, c->state == C_BUSY);
            return;
        }
        if (c->state != C_BUSY) {
            conn_fail(c, false); /* an answer nobody asked for */
            return;
        }
        if (c->in_body) {
            c->body_left -= (uint64_t)n;
        } else {
            size_t old = c->in_len, from = old >= 3 ? old - 3 : 0;
            char *e = NULL;
            c->in_len += (size_t)n;
            for (char *q = c->in + from; q + 3 < c->in + c->in_len && e == NULL; q++)
                if (q[0] == '\r' && q[1] == '\n' && q[2] == '\r' && q[3] == '\n')
                    e = q + 4;
            if (e == NULL)
                continue;
            size_t head = (size_t)(e - c->in), extra = c->in_len - head;
            if (!parse_head(c, head) || extra > c->body_left) {
                conn_fail(c, true);
                return;
            }
            c->body_left -= extra;
            c->in_body = true;
        }
        if (c->body_left == 0) {
            conn_done(c, now);
            if (c->state != C_IDLE)
                return; /* reopened */
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen -u http://IPV4:PORT/PATH -R RATE [-c CONNS] [-d SECONDS] "
                    "[-w WARMUP] [-m METHOD] [-H 'Name: value']... [-b BODY] [-k SECRETS_FILE]\n"
                    "  {key} in BODY or a header is replaced by a secret drawn from the file\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct conn conns[LG_MAX_CONNS];
    struct epoll_event evs[256];
    const char *url = NULL;
    int ch, open_ok = 0;
    int64_t start, warm_end, end, interval_ps;
    uint64_t next = 0; /* index of the next request to send */

    while ((ch = getopt(argc, argv, "u:R:c:d:w:m:H:b:k:")) != -1) {
        switch (ch) {
        case 'u': url = optarg; break;
        case 'R': opt.rate = parse_num(optarg, "rate (-R)", 1, 1e7); break;
        case 'c': opt.conns = (int)parse_num(optarg, "connections (-c)", 1, LG_MAX_CONNS); break;
        case 'd': opt.seconds = parse_num(optarg, "duration (-d)", 0.1, 86400); break;
        case 'w': opt.warmup = parse_num(optarg, "warm-up (-w)", 0, 86400); break;
        case 'm': opt.method = optarg; break;
        case 'H':
            if (opt.nheaders == LG_MAX_HEADERS)
                die("at most %s headers", "16");
            opt.headers[opt.nheaders++] = optarg;
            break;
        case 'b': opt.body = optarg; break;
        case 'k': load_keys(optarg); break;
        default: usage();
        }
    }
    if (url == NULL || opt.rate <= 0 || optind != argc)
        usage();
    parse_url(url);
    signal(SIGPIPE, SIG_IGN);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < opt.conns; i++)
        conn_open(&conns[i]);

    /* All connections up before the clock starts. */
    for (int64_t deadline = now_ns() + 5000000000LL; open_ok < opt.conns;) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            int err = 0;
            socklen_t el = sizeof(err);
            if (c->state != C_CONNECTING)
                continue;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err != 0)
                die("cannot connect: %s", strerror(err));
            if (evs[i].events & EPOLLOUT) {
                c->state = C_IDLE;
                open_ok++;
            }
        }
        if (now_ns() > deadline)
            die("connections did not open within %s", "5 s");
    }

    interval_ps = (int64_t)(1e12 / opt.rate); /* picoseconds between requests */
    start = now_ns();
    warm_end = start + (int64_t)(opt.warmup * 1e9);
    end = warm_end + (int64_t)(opt.seconds * 1e9);
    for (;;) {
        int64_t now = now_ns(), due;
        struct timespec to;
        int n, busy = 0, idle = 0;

        /* Send every due request an idle connection can take, oldest first. */
        for (int i = 0; i < opt.conns; i++) {
            struct conn *c = &conns[i];
            due = start + (int64_t)((next * (uint64_t)interval_ps) / 1000);
            if (due > now || due >= end)
                break;
            if (c->state != C_IDLE)
                continue;
            c->due = due;
            c->counted = due >= warm_end;
            c->state = C_BUSY;
            sent += c->counted;
            next++;
            build_request(c);
            conn_write(c);
        }
        for (int i = 0; i < opt.conns; i++) {
            busy += conns[i].state == C_BUSY;
            idle += conns[i].state == C_IDLE;
        }
        due = start + (int64_t)((next * (uint64_t)interval_ps) / 1000);
        if (now >= end + LG_DRAIN_NS || (now >= end && busy == 0))
            break;
        /* Until the next request is due, or, with no connection free, until one
         * answers: the late request then goes out at once, its lateness counted. */
        int64_t wait = due < end && idle > 0 ? due - now : 100000000LL;
        if (wait < 0)
            wait = 0;
        to.tv_sec = wait / 1000000000LL;
        to.tv_nsec = wait % 1000000000LL;
        n = epoll_pwait2(ep, evs, 256, &to, NULL);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0)
                    die("cannot reconnect: %s", strerror(err));
                if (evs[i].events & EPOLLOUT)
                    c->state = C_IDLE;
                continue;
            }
            if (evs[i].events & EPOLLOUT && c->state == C_BUSY)
                conn_write(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(c, now);
        }
    }
    for (int i = 0; i < opt.conns; i++)
        if (conns[i].state == C_BUSY && conns[i].counted)
            errors++; /* no answer within the drain time */

    double secs = opt.seconds;
    double rps = (double)answered / secs;
    printf("open loop: %.0f req/s asked, %d connections, %.1f s after %.1f s warm-up\n",
           opt.rate, opt.conns, opt.seconds, opt.warmup);
    printf("  achieved %.0f req/s (%llu sent, %llu answered, %llu errors)\n", rps,
           (unsigned long long)sent, (unsigned long long)answered, (unsigned long long)errors);
    printf("  latency from the intended send time: p50 %.0f us, p90 %.0f us, p99 %.0f us, "
           "p99.9 %.0f us, max %.0f us\n",
           percentile_us(50), percentile_us(90), percentile_us(99), percentile_us(99.9),
           (double)lat_max / 1000.0);
    printf("result %.0f %.0f %.0f %.0f %.0f %.0f %llu %llu\n", rps, percentile_us(50),
           percentile_us(90), percentile_us(99), percentile_us(99.9), (double)lat_max / 1000.0,
           (unsigned long long)errors, (unsigned long long)sent);
    return 0;
}
