/* httpc_response_fuzz.c: libFuzzer target for libweft_http's response reader (lib/http/http.c:
 * the status line, the head, Content-Length, close-delimited and chunked bodies, trailers) and
 * its redirect resolution. http.c is included whole, and the few weft calls it makes are
 * stubbed here: weft_read serves the input, so no runtime or socket is needed. Beyond "no
 * crash" it checks on every input:
 * - incremental == one-shot: the response read in pieces of 1 to 13 bytes gives the same
 *   result, status, framing, body bytes (compared byte for byte) and reuse verdict as read
 *   in one piece;
 * - the body handed to on_body is never more than the input, is what the response counts
 *   (none for a redirect to follow), and is exactly Content-Length when that framed a
 *   response whose connection may be reused;
 * - a Location that resolves gives a path starting with '/' with no byte <= ' ', a host and
 *   a port 1 .. 65535.
 * Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_httpc_fuzz.sh does). */
#include "../lib/http/http.c"

#include <stdint.h>

#include "fuzz_check.h"

/* What weft_read serves: in[pos .. n), at most `step` bytes a read (0: all that is left). */
static const char *in;
static size_t in_len, in_pos;
static unsigned in_step, in_k;

ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline)
{
    (void)fd, (void)deadline;
    size_t take = in_len - in_pos;
    if (in_step) {
        size_t step = 1 + (in_step + in_k++ * 7) % 13;
        take = take < step ? take : step;
    }
    take = take < len ? take : len;
    memcpy(buf, in + in_pos, take);
    in_pos += take;
    return (ssize_t)take;
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    (void)fd, (void)deadline;
    ssize_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += (ssize_t)iov[i].iov_len;
    return n;
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    (void)fd, (void)buf, (void)len, (void)flags, (void)deadline;
    return -EAGAIN;
}

int64_t weft_now(void)
{
    return 0;
}

int weft_yield(void)
{
    return 0;
}

/* Not reached from exchange() and resolve_location(): present for the link only. */
int weft_worker_index(void)
{
    return 0;
}

int weft_fd_wait(int fd, int events, int64_t deadline)
{
    (void)fd, (void)events, (void)deadline;
    return -ENOSYS;
}

int weft_close(int fd)
{
    (void)fd;
    return 0;
}

int weft_dial(const weft_addr *addr, int64_t deadline)
{
    (void)addr, (void)deadline;
    return -ENOSYS;
}

int weft_tcp_nodelay(int fd, int on)
{
    (void)fd, (void)on;
    return 0;
}

int weft_resolve(weft_addr *out, const char *host, int port, int64_t deadline)
{
    (void)out, (void)host, (void)port, (void)deadline;
    return -ENOSYS;
}

int weft_sem_acquire(weft_sem *s, int64_t deadline)
{
    (void)s, (void)deadline;
    return 0;
}

int weft_sem_release(weft_sem *s, unsigned n)
{
    (void)s, (void)n;
    return 0;
}

/* The body as on_body saw it. */
typedef struct body {
    char *p;
    size_t len, cap;
} body;

static int on_body(void *arg, const char *p, size_t n)
{
    body *b = arg;
    CHECK(n > 0 && b->len + n <= b->cap);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

typedef struct outcome {
    int rc, keep;
    weft_http_response resp;
    body b;
} outcome;

static void run(const char *method, int follow, unsigned step, outcome *o, size_t cap)
{
    in_pos = 0;
    in_step = step;
    in_k = 0;
    hconn c = {.fd = 3, .tls = NULL};
    memset(&o->resp, 0, sizeof o->resp);
    o->b.len = 0;
    o->b.cap = cap;
    int got_any = 0, stale = 0;
    o->keep = 0;
    /* A fresh connection: a pooled one only adds the 408 check (a status, already parsed). */
    o->rc = exchange(&c, 0, method, "example.org", 80, "/a/b?q", NULL, NULL, 0, on_body, &o->b,
                     follow, &o->resp, &o->keep, &got_any, &stale, WEFT_FOREVER);
    CHECK(!stale);
    CHECK(o->rc == 0 || o->rc == -EPROTO || o->rc == -EMSGSIZE || o->rc == -ENAMETOOLONG);
    /* A redirect to follow has its body counted but not handed over. */
    int dropped = follow && is_redirect(o->resp.status) && o->resp.location[0];
    CHECK(o->b.len == (dropped ? 0 : (size_t)o->resp.body_bytes));
}

static void check_location(const char *loc, int https)
{
    weft_http_pool from = {.port = 8080};
    snprintf(from.host, sizeof from.host, "example.org");
    from.tls = https ? (struct weft_tls_ctx *)&from : NULL; /* only tested against NULL */
    static target t;
    const char *bases[] = {"/", "/a/b?q", "/a/", "/a/b/c/d/e/f"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        int r = resolve_location(&from, bases[i], loc, &t);
        CHECK(r == 0 || r == -EPROTO || r == -ENAMETOOLONG);
        if (r < 0)
            continue;
        CHECK(t.path[0] == '/');
        for (const char *s = t.path; *s; s++)
            CHECK((unsigned char)*s > ' ' && *s != 0x7f);
        CHECK(t.host[0] != '\0' && strlen(t.host) < sizeof t.host);
        CHECK(t.port > 0 && t.port <= 65535);
        /* The result resolved again against itself is itself: it is absolute. */
        static target again;
        if (t.path[0] == '/' && !(t.path[1] == '/')) {
            CHECK(resolve_location(&from, t.path, t.path, &again) == 0);
            CHECK(strcmp(again.path, t.path) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 17)
        return 0;
    unsigned step = data[0] | 1u;
    const char *method = data[1] & 1 ? "HEAD" : "GET";
    int follow = (data[1] >> 1) & 1;
    /* An exact-size copy, so that ASan sees any read past the end. */
    size_t n = size - 2;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, data + 2, n);
    in = copy;
    in_len = n;

    static outcome whole, pieces;
    whole.b.p = malloc(n + 1);
    pieces.b.p = malloc(n + 1);
    run(method, follow, 0, &whole, n);
    size_t used_whole = in_pos;
    run(method, follow, step, &pieces, n);
    CHECK(whole.rc == pieces.rc);
    /* Bytes after the response make the one-piece read refuse reuse; read in pieces, they
     * may not have arrived yet. */
    CHECK(!whole.keep || pieces.keep);
    CHECK(whole.resp.status == pieces.resp.status);
    CHECK(whole.resp.content_length == pieces.resp.content_length);
    CHECK(whole.resp.chunked == pieces.resp.chunked);
    CHECK(whole.resp.body_bytes == pieces.resp.body_bytes);
    CHECK(whole.b.len == pieces.b.len && memcmp(whole.b.p, pieces.b.p, whole.b.len) == 0);
    CHECK(strcmp(whole.resp.location, pieces.resp.location) == 0);
    if (whole.rc == 0) {
        CHECK(whole.resp.status >= 100 && whole.resp.status <= 599);
        if (whole.resp.content_length >= 0 && !whole.resp.chunked && strcmp(method, "HEAD") != 0 &&
            whole.resp.status != 204 && whole.resp.status != 304 && whole.keep)
            CHECK(whole.resp.body_bytes == whole.resp.content_length);
        /* A connection kept for reuse has nothing unread after the response (the one-piece
         * read took all of an input that fits the buffer). */
        if (whole.keep && n < READ_BUF)
            CHECK(used_whole == n);
        if (whole.resp.location[0]) {
            check_location(whole.resp.location, 0);
            check_location(whole.resp.location, 1);
        }
    }
    free(whole.b.p);
    free(pieces.b.p);
    free(copy);
    return 0;
}
