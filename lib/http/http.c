/* http.c: libweft_http, the HTTP/1.1 client of weft_http.h, on weft's public API (and
 * weft_tls.h's when built with it). Each request reads through one fixed 16 KiB buffer
 * (allocated per exchange, not on the task's stack), which also bounds a response head;
 * bodies pass through it to the caller in pieces, so memory does not grow with the response.
 * The pool is a stack of idle fds and a semaphore of `max_conns` slots: a request holds one
 * slot from before it dials or takes an idle connection until it has put the connection back
 * or closed it. Redirects are a loop above the single exchange (weft_http_request). */
#include <weft_http.h>

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <weft.h>

#ifdef WEFT_HAVE_TLS
#include <weft_tls.h>
#endif

/* The read buffer: a line of a head must fit in it. */
#define READ_BUF 16384
/* The most a response head may take, line ends included: the status line, the header lines
 * and the empty line, with every interim (1xx) head before it counted in the same total. The
 * trailers of a chunked body have a budget of the same size of their own. weft_http.h
 * promises -EMSGSIZE past it. */
#define HEAD_MAX 16384
/* peer_answer looks at a whole head budget through the read buffer. */
_Static_assert(HEAD_MAX <= READ_BUF, "a response head must fit in the read buffer");

/* A connection: the socket, and TLS over it for an https pool. */
typedef struct hconn {
    int fd;
    struct weft_tls *tls;
} hconn;

struct weft_http_pool {
    char host[256];
    int port;
    unsigned max;
    int resolved;
    weft_addr addr;
    weft_sem slots; /* free connection slots: max minus busy minus idle */
    unsigned nidle;
    hconn *idle;              /* idle connections, most recently used last */
    struct weft_tls_ctx *tls; /* borrowed from weft_http_pool_set_tls; NULL: plain HTTP */
    /* The latest resumable session a connection received, offered by new connections (one
     * reference, owned by the pool). */
    struct weft_tls_session *session;
    char tls_err[200];      /* the last handshake failure in words */
    unsigned max_redirects; /* weft_http_pool_set_redirects; 0: none followed */
    int used;               /* a request has started: the scheme may no longer change */
    /* Requests running on the pool (inside weft_http_request, parked or not), and whether
     * weft_http_pool_destroy came while there were some: the last of them frees the pool
     * (they still touch it: its slots, its idle stack). Owner: the pool's worker. */
    unsigned nrunning;
    int destroyed;
    /* The worker whose tasks may use it (weft_worker_index at the create, or at the first
     * request when created outside a runtime: -1 until then). Nothing here is locked: a
     * request from another worker would race with this one's on the idle stack. */
    int owner;
};

static void hconn_close(hconn *c)
{
#ifdef WEFT_HAVE_TLS
    weft_tls_destroy(c->tls);
#endif
    weft_close(c->fd);
}

/* A host as the pool takes it: a name or an address (IPv6 without brackets: the Host line
 * adds them), not empty, shorter than the pool's buffer, and nothing that would end the Host
 * line or change what it names (a space, a control byte: a CR LF would add header lines; a
 * '/', '?', '#' or '@'; a bracket). */
static int is_host(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof((weft_http_pool *)0)->host)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f || strchr("/?#@[]\\", host[i]))
            return 0;
    return 1;
}

int weft_http_pool_create(weft_http_pool **out, const char *host, int port, unsigned max_conns)
{
    if (!out || !host || !is_host(host) || port <= 0 || port > 65535 || max_conns == 0)
        return -EINVAL;
    weft_http_pool *p = calloc(1, sizeof *p);
    hconn *idle = calloc(max_conns, sizeof *idle);
    if (!p || !idle) {
        free(p);
        free(idle);
        return -ENOMEM;
    }
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    p->owner = weft_worker_index(); /* -EPERM outside a runtime: bound at the first request */
    if (p->owner < 0)
        p->owner = -1;
    p->max = max_conns;
    p->idle = idle;
    weft_sem slots = WEFT_SEM_INIT(max_conns);
    p->slots = slots;
    *out = p;
    return 0;
}

static void pool_free(weft_http_pool *p)
{
#ifdef WEFT_HAVE_TLS
    weft_tls_session_release(p->session);
#endif
    free(p->idle);
    free(p);
}

void weft_http_pool_destroy(weft_http_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nidle; i++)
        hconn_close(&p->idle[i]);
    p->nidle = 0;
    /* Requests of other tasks still running: the last one frees it (request_leave), and
     * their connections are closed, not kept (release). */
    if (p->nrunning > 0)
        p->destroyed = 1;
    else
        pool_free(p);
}

/* The end of a request on p: frees a pool destroyed while it ran, once none is left. */
static void request_leave(weft_http_pool *p)
{
    if (--p->nrunning == 0 && p->destroyed)
        pool_free(p);
}

int weft_http_pool_set_tls(weft_http_pool *p, struct weft_tls_ctx *ctx)
{
#ifdef WEFT_HAVE_TLS
    /* Not once a request has started: a connection it made (in use or idle) is plain. */
    if (!p || !ctx || p->used)
        return -EINVAL;
    p->tls = ctx;
    return 0;
#else
    (void)p, (void)ctx;
    return -ENOTSUP;
#endif
}

const char *weft_http_pool_tls_error(const weft_http_pool *p)
{
    return p ? p->tls_err : "";
}

int weft_http_pool_set_redirects(weft_http_pool *p, unsigned max)
{
    if (!p)
        return -EINVAL;
    p->max_redirects = max;
    return 0;
}

/* A new connection's TLS handshake, the pool's host as SNI and as the name to verify. */
static int start_tls(weft_http_pool *p, hconn *c, int64_t deadline)
{
#ifdef WEFT_HAVE_TLS
    int r = weft_tls_create(&c->tls, p->tls, c->fd, p->host);
    if (r == -EINVAL)
        snprintf(p->tls_err, sizeof p->tls_err,
                 "no TLS stream: the pool's context is not a client's, or the host is no TLS name");
    if (r == 0 && p->session)
        weft_tls_session_set(c->tls, p->session); /* refused: a full handshake */
    if (r == 0 && (r = weft_tls_handshake(c->tls, deadline)) < 0)
        snprintf(p->tls_err, sizeof p->tls_err, "%s", weft_tls_errmsg(c->tls));
    return r;
#else
    (void)p, (void)c, (void)deadline;
    return -ENOTSUP;
#endif
}

/* Whether the peer has sent something (or closed): a byte to read, the end of the stream or
 * an error, all of which the next read reports. On the socket itself, so over TLS any record
 * counts (a late session ticket too: the connection is then dropped, which is only safe). */
static int peer_spoke(int fd)
{
    char byte;
    return weft_recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT, WEFT_FOREVER) != -EAGAIN;
}

/* Whether the TLS layer holds bytes of the peer's that no read has returned: it reads ahead,
 * so the socket may be empty while records wait there. */
static int conn_buffered(const hconn *c)
{
#ifdef WEFT_HAVE_TLS
    return c->tls && weft_tls_pending(c->tls);
#else
    (void)c;
    return 0;
#endif
}

/* A slot and a connection: an idle one (most recent first) or a new one. */
static int acquire(weft_http_pool *p, int fresh, int *reused, hconn *c, int64_t deadline)
{
    p->used = 1;
    int r = weft_sem_acquire(&p->slots, deadline);
    if (r < 0)
        return r;
    while (!fresh && p->nidle > 0) {
        *c = p->idle[--p->nidle];
        /* An idle connection has nothing to say: bytes waiting on it (a body after a 204 or a
         * HEAD's response, or anything else the server sent unasked) would be read as the next
         * response, and an end of stream means the server closed it. Either way: close it.
         * Over TLS, on the socket and in the TLS layer's read-ahead. */
        if (peer_spoke(c->fd) || conn_buffered(c)) {
            hconn_close(c);
            continue;
        }
        *reused = 1;
        return 0;
    }
    *reused = 0;
    if (!p->resolved) {
        r = weft_resolve(&p->addr, p->host, p->port, deadline);
        if (r == 0)
            p->resolved = 1;
    }
    int fd = r < 0 ? r : weft_dial(&p->addr, deadline);
    if (fd < 0) {
        weft_sem_release(&p->slots, 1);
        return fd;
    }
    weft_tcp_nodelay(fd, 1);
    *c = (hconn){fd, NULL};
    if (p->tls && (r = start_tls(p, c, deadline)) < 0) {
        hconn_close(c);
        weft_sem_release(&p->slots, 1);
        return r;
    }
    return 0;
}

static void release(weft_http_pool *p, hconn *c, int keep)
{
#ifdef WEFT_HAVE_TLS
    /* After a response, a TLS 1.3 server's tickets have arrived: the newest session is kept
     * for the next new connection. */
    weft_tls_session *s = c->tls ? weft_tls_session_get(c->tls) : NULL;
    if (s) {
        weft_tls_session_release(p->session);
        p->session = s;
    }
#endif
    if (keep && !p->destroyed && p->nidle < p->max)
        p->idle[p->nidle++] = *c;
    else
        hconn_close(c);
    weft_sem_release(&p->slots, 1);
}

static ssize_t conn_read(hconn *c, void *buf, size_t len, int64_t deadline)
{
#ifdef WEFT_HAVE_TLS
    if (c->tls)
        return weft_tls_read(c->tls, buf, len, deadline);
#endif
    return weft_read(c->fd, buf, len, deadline);
}

static ssize_t conn_writev(hconn *c, const struct iovec *iov, int iovcnt, int64_t deadline)
{
#ifdef WEFT_HAVE_TLS
    if (c->tls)
        return weft_tls_writev(c->tls, iov, iovcnt, deadline);
#endif
    return weft_writev(c->fd, iov, iovcnt, deadline);
}

/* A response read that has held the worker this long without parking yields it: a peer that
 * always has data ready never parks the task, and the worker's other tasks would wait for the
 * whole body. 1 ms: far above one read and its on_body call, far below the 10 ms after
 * which weft reports a stall. */
#define HOG_NS (1000 * 1000)

/* CLOCK_MONOTONIC from the clock itself: weft_now() is cached per loop tick of the worker,
 * and a task that never parks never ends the tick. */
static int64_t clock_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * WEFT_SEC + t.tv_nsec;
}

/* Whether s[0 .. n), the start of what the peer sent, is interim responses only (1xx heads
 * other than 101, RFC 9110 15.2), the last of them possibly still arriving: 100 Continue, 103
 * Early Hints. They do not answer the request: the server still wants the body. */
static int interim_only(const char *s, size_t n)
{
    static const char line[] = "HTTP/1.x 1";
    for (size_t i = 0; i < n;) {
        for (size_t k = 0; k < sizeof line - 1; k++)
            if (i + k < n && line[k] != 'x' && s[i + k] != line[k])
                return 0;
        if (n - i < 12)
            return 1; /* the start of a 1xx status line */
        if (memcmp(s + i + 9, "101", 3) == 0)
            return 0;   /* a protocol switch ends HTTP/1.1 on the connection */
        size_t end = 0; /* past the empty line that ends this head */
        for (size_t j = i; j < n && !end; j++) {
            if (s[j] != '\n')
                continue;
            if (j + 1 < n && s[j + 1] == '\n')
                end = j + 2;
            else if (j + 2 < n && s[j + 1] == '\r' && s[j + 2] == '\n')
                end = j + 3;
        }
        if (!end)
            return 1; /* a 1xx head still arriving */
        i = end;
    }
    return 1;
}

/* What the peer has sent while the request body goes out, looked at without taking it (into
 * `scratch`, READ_BUF bytes): 0 nothing, 1 interim responses only (see interim_only), 2
 * anything else (a response, the end of the stream, an error: the next read reports it).
 * The look spans the whole head budget (HEAD_MAX <= READ_BUF): a shorter one (it was 1 KiB)
 * saw long interim heads (103 Early Hints with many Link lines) and not the final response
 * behind them. A full look of interim heads only is past the budget: 2, and the response
 * reader says -EMSGSIZE. */
static int peer_answer(int fd, char *scratch)
{
    ssize_t n = weft_recv(fd, scratch, READ_BUF, MSG_PEEK | MSG_DONTWAIT, WEFT_FOREVER);
    if (n == -EAGAIN)
        return 0;
    return n > 0 && n < READ_BUF && interim_only(scratch, (size_t)n) ? 1 : 2;
}

/* While only interim responses wait unread, readiness to read says nothing new (it is level,
 * or bytes io_uring holds): the wait is for room alone, cut at this to look again. */
#define INTERIM_LOOK_NS (10 * 1000 * 1000)

/* Sends the request head and body on a plain connection while watching for the response: a
 * server may answer before it has read the whole body (413, 401, ...) and then close, or stop
 * reading. So the bytes go out in non-blocking sends; whenever the socket is full the task
 * waits for room or for the peer to speak, and it stops writing once the peer has spoken or
 * the write fails with EPIPE or ECONNRESET (*early = 1: the caller reads what came and does
 * not reuse the connection); interim 1xx responses alone do not stop it. `scratch`
 * (READ_BUF bytes) is where peer_answer looks. Returns 0, or -errno (-ETIMEDOUT,
 * -ECANCELED, ...). */
static int send_watching(hconn *c, struct iovec *iov, int iovcnt, char *scratch, int *early,
                         int64_t deadline)
{
    *early = 0;
    for (;;) {
        while (iovcnt > 0 && iov->iov_len == 0)
            iov++, iovcnt--;
        if (iovcnt == 0)
            return 0;
        if (deadline != WEFT_FOREVER && clock_now() >= deadline)
            return -ETIMEDOUT;
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        int err = n < 0 ? errno : 0;
        if (n >= 0) {
            for (size_t left = (size_t)n; left > 0;) {
                size_t step = left < iov->iov_len ? left : iov->iov_len;
                iov->iov_base = (char *)iov->iov_base + step;
                iov->iov_len -= step;
                left -= step;
                if (iov->iov_len == 0)
                    iov++, iovcnt--;
            }
        } else if (err == EPIPE || err == ECONNRESET) {
            *early = 1;
            return 0;
        } else if (err == EAGAIN || err == EWOULDBLOCK) {
            /* An interim response (100 Continue, 103) is not an answer: the body goes on,
             * and the response reader skips it later. */
            int spoke = peer_answer(c->fd, scratch);
            if (spoke == 2) {
                *early = 1;
                return 0;
            }
            /* After EAGAIN, as weft_fd_wait asks: an edge that came since is reported at once. */
            int64_t until = deadline;
            if (spoke == 1 &&
                (deadline == WEFT_FOREVER || clock_now() + INTERIM_LOOK_NS < deadline))
                until = clock_now() + INTERIM_LOOK_NS;
            int w =
                weft_fd_wait(c->fd, spoke ? WEFT_WRITABLE : WEFT_READABLE | WEFT_WRITABLE, until);
            if (w == -ETIMEDOUT && until != deadline)
                continue; /* a look at what came after the interim response */
            if (w < 0)
                return w;
        } else if (err != EINTR) {
            return -err;
        }
    }
}

typedef struct reader {
    hconn *conn;
    int64_t deadline;
    size_t pos, len;    /* unread bytes: buf[pos .. len) */
    int got_any;        /* a byte of the response has arrived */
    int64_t last_yield; /* clock_now() at this reader's latest yield (0: none yet) */
    /* What the next lines may take in all, line ends included (line() charges each line to
     * it): HEAD_MAX for a head or the trailers, READ_BUF for each chunk-size line. Without it
     * only one line would be bounded, as fill() keeps just the line being read. */
    size_t line_budget;
    char buf[READ_BUF];
} reader;

/* Called before each read and each piece handed to on_body: -ETIMEDOUT once the deadline
 * passed (a read that finds data ready never looks at it), and a yield when the task has held
 * the worker for HOG_NS: since the worker's loop tick began (weft_now(), refreshed when the
 * task parks) or since our last yield, whichever is later. 0 to go on, or -ECANCELED. */
static int on_time_and_fair(reader *r)
{
    int64_t now = clock_now();
    if (r->deadline != WEFT_FOREVER && now >= r->deadline)
        return -ETIMEDOUT;
    int64_t tick = weft_now();
    int64_t since = tick > r->last_yield ? tick : r->last_yield;
    if (now - since < HOG_NS)
        return 0;
    r->last_yield = now;
    return weft_yield();
}

/* Reads more after what is buffered (moving it to the front first). 0 at end of stream. */
static ssize_t fill(reader *r)
{
    int rc = on_time_and_fair(r);
    if (rc < 0)
        return rc;
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->len == READ_BUF)
        return -EMSGSIZE;
    ssize_t n = conn_read(r->conn, r->buf + r->len, READ_BUF - r->len, r->deadline);
    if (n > 0) {
        r->len += (size_t)n;
        r->got_any = 1;
    }
    return n;
}

/* The next line (without its CRLF or LF) as buf[*b .. *e), charged to r->line_budget; 0,
 * -EMSGSIZE past the budget, or -errno. */
static int line(reader *r, size_t *b, size_t *e)
{
    for (;;) {
        char *lf = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        size_t taken = lf ? (size_t)(lf - r->buf) + 1 - r->pos : r->len - r->pos;
        if (taken > r->line_budget)
            return -EMSGSIZE;
        if (lf) {
            r->line_budget -= taken;
            *b = r->pos;
            *e = (size_t)(lf - r->buf);
            r->pos = *e + 1;
            if (*e > *b && r->buf[*e - 1] == '\r')
                (*e)--;
            return 0;
        }
        ssize_t n = fill(r);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
    }
}

static int ieq(const char *s, size_t n, const char *lower)
{
    size_t k = strlen(lower);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

/* Whether the comma-separated list s[0 .. n) holds `tok` (case-insensitive). */
static int has_token(const char *s, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        size_t b = i;
        while (i < n && s[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        if (ieq(s + b, e - b, tok))
            return 1;
    }
    return 0;
}

/* How many of extra_headers' lines (whole "Name: value" lines ending in CRLF, as
 * are_header_lines checked) are a `name` field (lower case); *close_opt is set when one of
 * them is a Connection holding "close". */
static int count_field(const char *s, const char *name, int *close_opt)
{
    int count = 0;
    while (s && *s) {
        size_t len = strcspn(s, "\r"), nl = strcspn(s, ":");
        if (ieq(s, nl, name)) {
            count++;
            if (close_opt && has_token(s + nl + 1, len - nl - 1, "close"))
                *close_opt = 1;
        }
        s += len + 2;
    }
    return count;
}

typedef struct head {
    int status;
    int minor;
    int64_t content_length;
    int chunked; /* Transfer-Encoding's final coding is chunked */
    int te;      /* a Transfer-Encoding with a coding came (the body is not CL-framed) */
    int close;
    int said_close; /* a Connection field held "close": no "keep-alive" beside it undoes it */
    char *location; /* WEFT_HTTP_LOCATION_MAX bytes: the Location header, or "" */
    int location_too_long; /* there was one, longer than the buffer */
} head;

/* One Transfer-Encoding line: its codings continue those of earlier lines (RFC 9110 5.3: one
 * list), so the last coding seen is the final one; only a chunked final coding frames the
 * body by chunks (RFC 9112 6.3 rule 4: otherwise it runs to the close). */
static void note_codings(head *h, const char *v, size_t vl)
{
    size_t i = vl;
    while (i > 0 && (v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t'))
        i--;
    size_t end = i;
    while (i > 0 && v[i - 1] != ',')
        i--;
    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i == end)
        return; /* an empty list adds no coding */
    h->te = 1;
    h->chunked = ieq(v + i, end - i, "chunked");
}

/* One Content-Length line: a decimal number, or a list of them (RFC 9110 8.6: a recipient
 * may take a list of identical values, "2, 2", as that value, which curl does, and some
 * proxies send one after merging repeated fields). Every value, on this line and on earlier
 * ones, must be the same: differing ones leave the body's end in doubt (a smuggling attempt,
 * or a broken proxy), and are -EPROTO. Empty list elements are skipped (RFC 9110 5.6.1), but
 * a line must hold at least one value. */
static int note_length(head *h, const char *v, size_t vl)
{
    int nvalues = 0;
    for (size_t i = 0; i < vl;) {
        size_t b = i;
        while (i < vl && v[i] != ',')
            i++;
        size_t e = i++; /* past the comma, if any */
        while (b < e && (v[b] == ' ' || v[b] == '\t'))
            b++;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (b == e)
            continue;
        if (e - b > 18) /* 10^18 - 1 at most: no overflow of int64_t */
            return -EPROTO;
        int64_t cl = 0;
        for (size_t k = b; k < e; k++) {
            if (v[k] < '0' || v[k] > '9')
                return -EPROTO;
            cl = cl * 10 + (v[k] - '0');
        }
        if (h->content_length >= 0 && h->content_length != cl)
            return -EPROTO;
        h->content_length = cl;
        nvalues++;
    }
    return nvalues > 0 ? 0 : -EPROTO;
}

/* "HTTP/1.x NNN" with exactly three digits (1xx to 5xx), then a space and the reason, or
 * the end of the line (the reason may be empty, its space too: RFC 9112 4 asks a client to
 * accept that). */
static int is_status_line(const char *s, size_t n)
{
    return n >= 12 && memcmp(s, "HTTP/1.", 7) == 0 && (s[7] == '0' || s[7] == '1') && s[8] == ' ' &&
           s[9] >= '1' && s[9] <= '5' && s[10] >= '0' && s[10] <= '9' && s[11] >= '0' &&
           s[11] <= '9' && (n == 12 || s[12] == ' ');
}

/* Reads a response head (skipping interim 1xx ones, which count towards its HEAD_MAX). */
static int read_head(reader *r, head *h)
{
    r->line_budget = HEAD_MAX;
    for (;;) {
        size_t b, e;
        int rc = line(r, &b, &e);
        if (rc < 0)
            return rc;
        const char *s = r->buf + b;
        size_t n = e - b;
        if (!is_status_line(s, n))
            return -EPROTO;
        h->minor = s[7] - '0';
        h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        h->content_length = -1;
        h->chunked = 0;
        h->te = 0;
        h->close = h->minor == 0;
        h->said_close = 0;
        h->location[0] = '\0';
        h->location_too_long = 0;
        int prev_read = 0; /* the line before was a field this loop reads (see obs-fold) */
        for (;;) {
            if ((rc = line(r, &b, &e)) < 0)
                return rc;
            if (e == b)
                break;
            s = r->buf + b;
            n = e - b;
            /* obs-fold: a line that starts with a space or a tab continues the field before
             * it, which a client is to unfold (RFC 9112 5.2). The fields read here are single
             * tokens or numbers, never folded by a sane server: a fold in one of them is
             * refused; in any other field it changes nothing we read, and is skipped. */
            if (s[0] == ' ' || s[0] == '\t') {
                if (prev_read)
                    return -EPROTO;
                continue;
            }
            prev_read = 0;
            const char *colon = memchr(s, ':', n);
            if (!colon)
                return -EPROTO;
            size_t nl = (size_t)(colon - s);
            const char *v = colon + 1;
            size_t vl = n - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            prev_read = ieq(s, nl, "content-length") || ieq(s, nl, "transfer-encoding") ||
                        ieq(s, nl, "location") || ieq(s, nl, "connection");
            if (ieq(s, nl, "content-length")) {
                if ((rc = note_length(h, v, vl)) < 0)
                    return rc;
            } else if (ieq(s, nl, "transfer-encoding")) {
                note_codings(h, v, vl);
            } else if (ieq(s, nl, "location")) {
                h->location_too_long = vl >= WEFT_HTTP_LOCATION_MAX;
                vl = h->location_too_long ? 0 : vl;
                memcpy(h->location, v, vl);
                h->location[vl] = '\0';
            } else if (ieq(s, nl, "connection")) {
                /* "close" wins wherever it is (RFC 9112 9.6), a later line's "keep-alive"
                 * too: the server will close. */
                if (has_token(v, vl, "close"))
                    h->close = h->said_close = 1;
                else if (has_token(v, vl, "keep-alive") && !h->said_close)
                    h->close = 0;
            }
        }
        /* RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and both together may be
         * a smuggling attempt: the connection is not reused after such a response. */
        if (h->te && h->content_length >= 0)
            h->close = 1;
        if (h->status >= 200 || h->status == 101)
            return 0;
    }
}

/* Hands `n` body bytes to the caller: those buffered, then reads. n < 0: up to the end. */
static int body_bytes(reader *r, int64_t n, weft_http_body_fn fn, void *arg,
                      weft_http_response *resp)
{
    while (n != 0) {
        if (r->pos == r->len) {
            r->pos = r->len = 0;
            ssize_t got = fill(r);
            if (got == 0 && n < 0)
                return 0;
            if (got <= 0)
                return got == 0 ? -EPROTO : (int)got;
        }
        size_t take = r->len - r->pos;
        if (n >= 0 && (int64_t)take > n)
            take = (size_t)n;
        /* Bytes already buffered (many small chunks, a slow on_body) would go on past the
         * deadline, and hold the worker, unless each piece is checked too. */
        int rc = on_time_and_fair(r);
        if (rc < 0)
            return rc;
        if (fn && (rc = fn(arg, r->buf + r->pos, take)) < 0)
            return rc;
        r->pos += take;
        resp->body_bytes += (int64_t)take;
        if (n > 0)
            n -= (int64_t)take;
    }
    return 0;
}

/* A chunked body: size lines (hex, extensions ignored), data, CRLF; then trailers. */
static int chunked_body(reader *r, weft_http_body_fn fn, void *arg, weft_http_response *resp)
{
    for (;;) {
        size_t b, e;
        r->line_budget = READ_BUF; /* each size line on its own: only the buffer bounds it */
        int rc = line(r, &b, &e);
        if (rc < 0)
            return rc;
        int64_t size = 0;
        size_t i = b, digits = 0;
        for (; i < e; i++, digits++) {
            char c = r->buf[i];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0)
                break;
            if (digits == 15)
                return -EPROTO;
            size = size * 16 + d;
        }
        if (digits == 0 || (i < e && r->buf[i] != ';' && r->buf[i] != ' ' && r->buf[i] != '\t'))
            return -EPROTO;
        if (size == 0) {
            r->line_budget = HEAD_MAX;
            do { /* trailers, up to the empty line */
                if ((rc = line(r, &b, &e)) < 0)
                    return rc;
            } while (e != b);
            return 0;
        }
        if ((rc = body_bytes(r, size, fn, arg, resp)) < 0)
            return rc;
        r->line_budget = READ_BUF; /* the data's CRLF, not charged to the size line's */
        if ((rc = line(r, &b, &e)) < 0)
            return rc;
        if (e != b)
            return -EPROTO;
    }
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* One request and its response on connection c. `follow`: a redirect's body is dropped, not
 * handed to fn (the caller will follow it). `reused`: c came from the pool; then *stale is set
 * when the response says the server had closed the connection as idle (see exchange's 408). */
static int exchange(hconn *c, int reused, const char *method, const char *host, int port,
                    const char *path, const char *extra, const void *body, size_t body_len,
                    weft_http_body_fn fn, void *arg, int follow, weft_http_response *resp,
                    int *keep, int *got_any, int *stale, int64_t deadline)
{
    char req[2048];
    /* An IPv6 literal (the only host with a ':') goes in brackets: RFC 9110 7.2. */
    int v6 = strchr(host, ':') != NULL;
    /* A Host among the caller's lines replaces ours: a request has exactly one (RFC 9112 3.2;
     * two are a 400 at nginx and weft-httpd). 300: "Host: [" + 255 + "]:65535" + CRLF. */
    char host_line[300] = "";
    if (!count_field(extra, "host", NULL))
        snprintf(host_line, sizeof host_line, "Host: %s%s%s:%d\r\n", v6 ? "[" : "", host,
                 v6 ? "]" : "", port);
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n%s%s", method, path, host_line,
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof req - 40)
        return -ENAMETOOLONG;
    /* A request that asked for the close ends its connection, whatever the response says: a
     * server that then closes without saying so (RFC 9112 9.6 has it SHOULD say it) would
     * take the next request on it with it. */
    int closing = 0;
    count_field(extra, "connection", &closing);
    if (body)
        n += snprintf(req + n, sizeof req - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    struct iovec iov[2] = {{req, (size_t)n}, {(void *)body, body ? body_len : 0}};
    /* The reader's buffer, unused until the response, is send_watching's scratch. */
    reader *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    int early = 0;
    ssize_t w;
    if (c->tls || !body || body_len == 0)
        w = conn_writev(c, iov, body && body_len ? 2 : 1, deadline);
    else
        w = send_watching(c, iov, 2, r->buf, &early, deadline);
    if (w < 0) {
        free(r);
        return (int)w;
    }
    r->conn = c;
    r->deadline = deadline;
    r->pos = r->len = 0;
    r->got_any = 0;
    r->last_yield = 0;
    head h = {.location = resp->location};
    int rc = read_head(r, &h);
    /* A 408 on a pooled connection, closing it, or come before the request was all written:
     * the server timed the idle connection out as the request went out (the 408 was on its
     * way, or in the socket already, when acquire looked), so it answers no request of ours.
     * The connection is dropped, its body unread (none of it reaches fn), and the caller
     * retries or fails as for a connection closed under it (request_once), as browsers do. A
     * 408 on a fresh connection, or one that keeps it open after reading the request, is the
     * answer to this request and is returned as such. */
    if (rc == 0 && reused && h.status == 408 && (h.close || early)) {
        *stale = 1;
        rc = -ECONNRESET;
    } else if (rc == 0) {
        resp->status = h.status;
        resp->content_length = h.content_length;
        resp->chunked = h.chunked;
        if (follow && is_redirect(h.status) && (h.location[0] || h.location_too_long))
            fn = NULL;
        /* RFC 9112 6.3: no body after a HEAD's response, a 1xx (101 is the only one that
         * gets here), a 204 or a 304, whatever their header fields say, nor after a 2xx to a
         * CONNECT (rule 2: the connection is a tunnel from the empty line on). After a 101 or
         * that 2xx the connection speaks another protocol: never reused. */
        int tunnel = h.status == 101 || (strcmp(method, "CONNECT") == 0 && h.status / 100 == 2);
        int no_body = strcmp(method, "HEAD") == 0 || tunnel || h.status == 204 || h.status == 304;
        if (tunnel)
            h.close = 1;
        if (no_body)
            rc = 0;
        else if (h.chunked)
            rc = chunked_body(r, fn, arg, resp);
        else if (h.content_length >= 0 && !h.te)
            rc = body_bytes(r, h.content_length, fn, arg, resp);
        else {
            rc = body_bytes(r, -1, fn, arg, resp);
            h.close = 1;
        }
        /* Bytes past the response on a connection we did not pipeline (in our buffer or in
         * the TLS layer's), or a body we did not finish sending: do not reuse. */
        *keep = rc == 0 && !h.close && !closing && r->pos == r->len && !conn_buffered(c) && !early;
        if (rc == 0 && follow && is_redirect(h.status) && h.location_too_long)
            rc = -ENAMETOOLONG; /* a redirect we cannot follow: too long to keep */
    }
    /* The peer closed while we sent, without a response: that is the send's failure. */
    if (rc < 0 && early && !r->got_any)
        rc = -EPIPE;
    *got_any = r->got_any;
    free(r);
    return rc;
}

/* One request on the pool, without redirects (but with the retry of a stale connection). */
static int request_once(weft_http_pool *p, const char *method, const char *path,
                        const char *extra_headers, const void *body, size_t body_len,
                        weft_http_body_fn on_body, void *arg, int follow, weft_http_response *resp,
                        int64_t deadline)
{
    /* RFC 9110 9.2.2: a request that may be sent twice with the effect of once. Its body, if
     * any, is the caller's buffer, borrowed for the whole call: it can always go out again. */
    static const char *const idempotent_methods[] = {"GET", "HEAD",   "OPTIONS",
                                                     "PUT", "DELETE", "TRACE"};
    int idempotent = 0;
    for (size_t i = 0; i < sizeof idempotent_methods / sizeof idempotent_methods[0]; i++)
        idempotent |= strcmp(method, idempotent_methods[i]) == 0;
    for (int attempt = 0;; attempt++) {
        int reused = 0;
        hconn c;
        int ar = acquire(p, attempt > 0, &reused, &c, deadline);
        if (ar < 0)
            return ar;
        memset(resp, 0, sizeof *resp);
        resp->reused = reused;
#ifdef WEFT_HAVE_TLS
        resp->tls_resumed = c.tls && !reused && weft_tls_resumed(c.tls);
#endif
        int keep = 0, got_any = 0, stale = 0;
        int rc = exchange(&c, reused, method, p->host, p->port, path, extra_headers, body, body_len,
                          on_body, arg, follow, resp, &keep, &got_any, &stale, deadline);
        release(p, &c, rc == 0 && keep);
        /* A pooled connection the server had closed fails before any response byte, or gets
         * the 408 of its idle timeout (stale): once more on a new connection, where that is
         * safe. (A fresh connection is never stale, so there is no second retry.) */
        if (rc < 0 && reused && (stale || !got_any) && idempotent && attempt == 0 &&
            (rc == -EPROTO || rc == -ECONNRESET || rc == -EPIPE))
            continue;
        if (stale)
            memset(resp, 0, sizeof *resp); /* not the request's response: none came */
        return rc;
    }
}

/* Where a redirect points: scheme, authority and path, resolved against the request's. */
typedef struct target {
    int https;
    char host[256];
    int port;
    char path[WEFT_HTTP_LOCATION_MAX];
} target;

/* RFC 3986 5.2.4 on the path part of `path` (up to a '?'), in place: "." segments go, and
 * each ".." takes the segment before it (none above the root). The result is never longer
 * than what was read, so it is written behind the reading. `path` starts with '/'. */
static void remove_dot_segments(char *path)
{
    size_t plen = strcspn(path, "?"), o = 0;
    const char *end = path + plen;
    for (const char *in = path; in < end;) {
        const char *seg = in + 1;
        const char *next = memchr(seg, '/', (size_t)(end - seg));
        if (!next)
            next = end;
        size_t sl = (size_t)(next - seg);
        if (sl == 1 && seg[0] == '.') {
            if (next == end)
                path[o++] = '/';
        } else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && path[--o] != '/')
                ;
            if (next == end)
                path[o++] = '/';
        } else {
            path[o++] = '/';
            memmove(path + o, seg, sl);
            o += sl;
        }
        in = next;
    }
    if (o == 0)
        path[o++] = '/';
    memmove(path + o, end, strlen(end) + 1);
}

/* Resolves `loc` (an absolute URL, a scheme-relative "//host/path", an absolute path or a
 * path relative to `base`'s directory; any fragment dropped) against the request that was
 * made on `from` for `base`. Returns 0, -ENAMETOOLONG, or -EPROTO (not a URL we can send:
 * another scheme, a bad port, a control character or space in it). */
static int resolve_location(const weft_http_pool *from, const char *base, const char *loc,
                            target *t)
{
    size_t n = strcspn(loc, "#");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)loc[i] <= ' ' || loc[i] == 0x7f)
            return -EPROTO;
    t->https = from->tls != NULL;
    snprintf(t->host, sizeof t->host, "%s", from->host);
    t->port = from->port;
    const char *rest = NULL; /* after the authority, when loc has one */
    if (n >= 7 && strncasecmp(loc, "http://", 7) == 0)
        t->https = 0, rest = loc + 7;
    else if (n >= 8 && strncasecmp(loc, "https://", 8) == 0)
        t->https = 1, rest = loc + 8;
    else if (n >= 2 && loc[0] == '/' && loc[1] == '/')
        rest = loc + 2;
    else if (strchr(loc, ':') && strcspn(loc, ":") < strcspn(loc, "/?"))
        return -EPROTO; /* another scheme (mailto:, ftp:) */
    const char *p = loc;
    if (rest) {
        size_t alen = strcspn(rest, "/?#");
        const char *a = rest, *colon = NULL;
        size_t hlen = alen;
        if (alen > 0 && a[0] == '[') { /* [IPv6]: the address without its brackets */
            const char *close = memchr(a, ']', alen);
            if (!close)
                return -EPROTO;
            hlen = (size_t)(close - a) - 1;
            a++;
            colon = close + 1 < rest + alen && close[1] == ':' ? close + 1 : NULL;
            if (!colon && close + 1 != rest + alen)
                return -EPROTO;
        } else if ((colon = memchr(a, ':', alen)) != NULL) {
            hlen = (size_t)(colon - a);
        }
        if (hlen == 0 || hlen >= sizeof t->host)
            return hlen == 0 ? -EPROTO : -ENAMETOOLONG;
        memcpy(t->host, a, hlen);
        t->host[hlen] = '\0';
        if (!is_host(t->host))
            return -EPROTO; /* userinfo ("user@host"), a stray bracket: not followed */
        t->port = t->https ? 443 : 80;
        if (colon) {
            const char *d = colon + 1, *end = rest + alen;
            int port = 0;
            if (d == end)
                return -EPROTO;
            for (; d < end; d++) {
                if (*d < '0' || *d > '9' || (port = port * 10 + (*d - '0')) > 65535)
                    return -EPROTO;
            }
            if (port == 0)
                return -EPROTO;
            t->port = port;
        }
        p = rest + alen;
        n -= (size_t)(p - loc);
    }
    /* The path (RFC 3986 5.2.2): as given when absolute; "/" for none after an authority;
     * base for a bare fragment; base's path for a bare query; else after base's last '/'.
     * (base may be t->path itself: memmove.) */
    size_t dir = 0;
    if (!rest && n == 0) {
        dir = strlen(base);
    } else if (rest && (n == 0 || p[0] == '?')) {
        dir = 1; /* "/" then the query, if any */
        base = "/";
    } else if (p[0] == '?') {
        dir = strcspn(base, "?"); /* base's path, the new query */
    } else if (p[0] != '/') {
        size_t blen = strcspn(base, "?");
        while (blen > 0 && base[blen - 1] != '/')
            blen--;
        dir = blen > 0 ? blen : 1;
        base = blen > 0 ? base : "/";
    }
    if (dir + n >= sizeof t->path)
        return -ENAMETOOLONG;
    memmove(t->path, base, dir);
    memcpy(t->path + dir, p, n);
    t->path[dir + n] = '\0';
    if (t->path[0] == '/')
        remove_dot_segments(t->path);
    return 0;
}

/* A method, or a header's name, is a token (RFC 9110 5.6.2): not empty, no space, no CR or
 * LF, no separator. */
static int is_token_n(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
            return 0;
    return 1;
}

static int is_token(const char *s)
{
    return is_token_n(s, strlen(s));
}

/* A request target goes out as given: not empty, and no byte that would end it or the line
 * (a space, a control character: a CR LF would start a request of its own). */
static int is_target(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* A field value (RFC 9110 5.5): visible bytes, spaces and tabs, and bytes past ASCII; no
 * other control byte (a server answers it with 400: nginx for a NUL, weft-httpd for any). */
static int is_field_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < ' ' && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* extra_headers: whole header lines, "name: value" each ending in CRLF, with no CR or LF
 * elsewhere and no empty line (which would end the head, and what follows would be sent as a
 * body or as another request), and values of field bytes only. */
static int are_header_lines(const char *s)
{
    const char *all = s;
    while (*s) {
        size_t len = strcspn(s, "\r\n"), name = strcspn(s, ":");
        if (name >= len || !is_token_n(s, name) || s[len] != '\r' || s[len + 1] != '\n' ||
            !is_field_value(s + name + 1, len - name - 1))
            return 0;
        s += len + 2;
    }
    /* The framing is ours (Content-Length from body_len, no chunked upload): the caller's
     * would go out beside it, two lengths a server and a proxy may each read differently,
     * or a chunked body that is not. And at most one Host (it replaces ours). */
    return !count_field(all, "content-length", NULL) &&
           !count_field(all, "transfer-encoding", NULL) && count_field(all, "host", NULL) <= 1;
}

static int same_origin(const weft_http_pool *p, const target *t)
{
    return (p->tls != NULL) == t->https && p->port == t->port && strcasecmp(p->host, t->host) == 0;
}

/* weft_http_request once its arguments are checked: the request, then its redirects. */
static int request_following(weft_http_pool *p, const char *method, const char *path,
                             const char *extra_headers, const void *body, size_t body_len,
                             weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                             int64_t deadline)
{
    p->tls_err[0] = '\0'; /* the reason of this request's failed handshake, if any */
    int follow =
        p->max_redirects > 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    int rc = request_once(p, method, path, extra_headers, body, body_len, on_body, arg, follow,
                          resp, deadline);
    if (!follow)
        return rc;
    /* The hops: `cur` is the pool the last request went through (p, or `other`, a pool of
     * one connection for another origin); `t` holds the next target, and its path is the
     * base of the one after. */
    target *t = malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    weft_http_pool *cur = p, *other = NULL;
    const char *base = path;
    unsigned hop = 0;
    while (rc == 0 && is_redirect(resp->status) && resp->location[0]) {
        if (hop == p->max_redirects) {
            rc = -ELOOP;
            break;
        }
        if ((rc = resolve_location(cur, base, resp->location, t)) < 0)
            break;
        if (!same_origin(cur, t)) {
            weft_http_pool_destroy(other);
            other = NULL;
            if (same_origin(p, t)) {
                cur = p;
            } else if (t->https && !p->tls) {
                rc = -ENOTSUP;
                break;
            } else {
                if ((rc = weft_http_pool_create(&other, t->host, t->port, 1)) < 0 ||
                    (t->https && (rc = weft_http_pool_set_tls(other, p->tls)) < 0))
                    break;
                cur = other;
                extra_headers = NULL; /* once the origin changed, never again */
            }
        }
        hop++;
        base = t->path;
        rc = request_once(cur, method, t->path, extra_headers, NULL, 0, on_body, arg, 1, resp,
                          deadline);
        resp->nredirects = hop;
        if (rc < 0 && cur == other)
            snprintf(p->tls_err, sizeof p->tls_err, "%s", other->tls_err);
    }
    weft_http_pool_destroy(other);
    free(t);
    return rc;
}

int weft_http_request(weft_http_pool *p, const char *method, const char *path,
                      const char *extra_headers, const void *body, size_t body_len,
                      weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                      int64_t deadline)
{
    if (!p || !method || !path || !resp || !is_token(method) || !is_target(path) ||
        (extra_headers && !are_header_lines(extra_headers)))
        return -EINVAL;
    int worker = weft_worker_index();
    if (worker < 0 || (p->owner >= 0 && p->owner != worker))
        return -EPERM; /* outside a task, or another worker's: see owner */
    p->owner = worker;
    p->nrunning++;
    int rc = request_following(p, method, path, extra_headers, body, body_len, on_body, arg, resp,
                               deadline);
    request_leave(p); /* p may be freed now */
    return rc;
}

int weft_http_get(weft_http_pool *p, const char *path, weft_http_body_fn on_body, void *arg,
                  weft_http_response *resp, int64_t deadline)
{
    return weft_http_request(p, "GET", path, NULL, NULL, 0, on_body, arg, resp, deadline);
}

int weft_http_head(weft_http_pool *p, const char *path, weft_http_response *resp, int64_t deadline)
{
    return weft_http_request(p, "HEAD", path, NULL, NULL, 0, NULL, NULL, resp, deadline);
}

/* POST and PUT: a body always (Content-Length: 0 for an empty one), and its type. */
static int send_body(weft_http_pool *p, const char *method, const char *path,
                     const char *content_type, const void *body, size_t body_len,
                     weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                     int64_t deadline)
{
    if (!body && body_len > 0)
        return -EINVAL;
    char extra[288]; /* "Content-Type: " + 256 + CRLF: a longer type is a mistake */
    if (content_type) {
        int n = snprintf(extra, sizeof extra, "Content-Type: %s\r\n", content_type);
        if (n < 0 || (size_t)n >= sizeof extra)
            return -ENAMETOOLONG;
        if (strpbrk(content_type, "\r\n"))
            return -EINVAL;
    }
    return weft_http_request(p, method, path, content_type ? extra : NULL, body ? body : "",
                             body_len, on_body, arg, resp, deadline);
}

int weft_http_post(weft_http_pool *p, const char *path, const char *content_type, const void *body,
                   size_t body_len, weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                   int64_t deadline)
{
    return send_body(p, "POST", path, content_type, body, body_len, on_body, arg, resp, deadline);
}

int weft_http_put(weft_http_pool *p, const char *path, const char *content_type, const void *body,
                  size_t body_len, weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                  int64_t deadline)
{
    return send_body(p, "PUT", path, content_type, body, body_len, on_body, arg, resp, deadline);
}
