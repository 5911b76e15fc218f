/* conn.c: one HTTP/1.1 connection, served by one task for its whole life. The task owns two
 * fixed buffers (one allocation per connection): `in` holds the request heads (a head must fit in
 * it: 431) and `out` collects the responses of a pipelined batch (status lines, headers, small
 * bodies), which leave in one write when the batch is done; a large body goes out with sendfile
 * right after its headers. Every read and write has a deadline, so a slow or silent client costs
 * its fd and the pages of its stack it touched, never an unbounded wait or buffer. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "files.h"
#include "httpd.h"
#include "listing.h"
#include "parser.h"

#ifdef WEFT_HAVE_TLS
#include <weft_tls.h>
#endif

/* 16 KiB: twice a request line's limit, enough for any browser's head (nginx: 4 x 8 KiB). */
#define IN_BUF 16384
/* 32 KiB: a batch of a dozen typical responses with small bodies, or one 16 KiB body. */
#define OUT_BUF 32768
/* Bodies up to this size are copied into the batch; larger ones go out with sendfile. */
#define SMALL_BODY 16384
/* sendfile in steps of 512 KiB, each with its own send_timeout: a reader must take 512 KiB
 * every send_timeout (nginx's send_timeout is per write operation too). */
#define SENDFILE_STEP (512 * 1024)
/* Headers of one response: at most this, plus a Location that repeats the request path. */
#define HEADER_ROOM 1024
/* A closing connection reads what the client still sends for this long, this much, so that
 * our last response is not destroyed by a reset (nginx's lingering_close). */
#define LINGER_TIME  (2 * WEFT_SEC)
#define LINGER_BYTES (256 * 1024)
/* The request loop yields to the worker's other tasks after this many requests answered in
 * a row (serve). */
#define YIELD_EVERY 8
/* A body being read and dropped yields after this many reads (64 x 4 KiB: 256 KiB). */
#define DISCARD_YIELD_EVERY 64
/* The longest decoded path we look up (PATH_MAX; docs/httpd.md "Limits"): longer is 414. */
#define PATH_CAP 4096

typedef struct conn {
    int fd;
#ifdef WEFT_HAVE_TLS
    weft_tls *tls; /* NULL on the plain port */
#endif
    int close_after; /* the batch ends with this response: Connection: close */
    int peer_closed; /* no lingering: the peer hung up or the socket failed */
    size_t have;     /* bytes in `in` */
    size_t start;    /* where the request being parsed starts in `in` */
    size_t olen;     /* bytes in `out` */
    /* Where the response being written starts in `out` (status_line), or 0 once a flush
     * sent its first bytes: a file found shorter than its promised length rolls the batch
     * back to here, so the responses before it still go out whole (file_shrank). */
    size_t resp_mark;
    int file_short;         /* the file being served was shorter than its stat said (file_shrank) */
    int64_t first_deadline; /* the first head's and the handshake's: accept + header timeout */
    httpd_shard *sh;
    char peer[64]; /* the client's address for the log ("" until needed) */
    /* A request line the parser refused (in `in`), logged with its error response, and
     * whether its method was HEAD (the error then goes without its body). */
    http_view refused_line;
    int refused_head;
    char in[IN_BUF];
    char out[OUT_BUF];
} conn;

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Not Allowed";
    case 408:
        return "Request Time-out";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request-URI Too Large";
    case 416:
        return "Requested Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Temporarily Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* The Date header's value, formatted once a second per worker thread. */
static const char *date_now(void)
{
    static _Thread_local time_t cached;
    static _Thread_local char text[32];
    time_t t = time(NULL);
    if (t != cached) {
        cached = t;
        httpd_http_date(t, text, sizeof text);
    }
    return text;
}

/* Appends to the batch; callers made room first (ensure_room), so a cut is a bug we would
 * rather truncate than overflow. */
__attribute__((format(printf, 2, 3))) static void put(conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out + c->olen, OUT_BUF - c->olen, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->olen += (size_t)n < OUT_BUF - c->olen ? (size_t)n : OUT_BUF - c->olen - 1;
}

static void put_bytes(conn *c, const char *p, size_t n)
{
    if (n > OUT_BUF - c->olen)
        n = OUT_BUF - c->olen;
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
}

/* The connection's byte stream: the socket, or TLS over it. */
static int is_tls(const conn *c)
{
#ifdef WEFT_HAVE_TLS
    return c->tls != NULL;
#else
    (void)c;
    return 0;
#endif
}

static ssize_t conn_read(conn *c, void *buf, size_t len, int64_t deadline)
{
#ifdef WEFT_HAVE_TLS
    if (c->tls)
        return weft_tls_read(c->tls, buf, len, deadline);
#endif
    return weft_read(c->fd, buf, len, deadline);
}

static ssize_t conn_send(conn *c, const void *buf, size_t len, int more, int64_t deadline)
{
#ifdef WEFT_HAVE_TLS
    if (c->tls)
        return weft_tls_write(c->tls, buf, len, deadline);
#endif
    return weft_send(c->fd, buf, len, more ? MSG_MORE : 0, deadline);
}

/* Sends the batch. `more`: a body follows at once (MSG_MORE: one segment with it). */
static int flush(conn *c, int more)
{
    if (c->olen == 0)
        return 0;
    ssize_t n = conn_send(c, c->out, c->olen, more, weft_deadline_in(httpd_cfg.send_timeout));
    c->olen = 0;
    c->resp_mark = 0;
    if (n < 0) {
        c->peer_closed = 1;
        return (int)n;
    }
    return 0;
}

static int ensure_room(conn *c, size_t need)
{
    return OUT_BUF - c->olen >= need ? 0 : flush(c, 0);
}

/* Whether the connection stays open after this response: the client's wish, no error that
 * closes (nginx closes after 400, 408, 413, 414, 431-like, 500, 501 and 505), no shutdown. */
static int keep_alive(conn *c, const http_request *r, int status)
{
    switch (status) {
    case 400:
    case 408:
    case 413:
    case 414:
    case 431:
    case 500:
    case 501:
    case 505:
        c->close_after = 1;
        break;
    default:
        break;
    }
    if (!r || !r->keep_alive || c->sh->draining)
        c->close_after = 1;
    return !c->close_after;
}

static void status_line(conn *c, const http_request *r, int status)
{
    c->resp_mark = c->olen;
    int keep = keep_alive(c, r, status);
    put(c, "HTTP/1.1 %d %s\r\nServer: weft-httpd\r\nDate: %s\r\n", status, reason(status),
        date_now());
    if (!keep)
        put(c, "Connection: close\r\n");
    else if (r->version_minor == 0)
        put(c, "Connection: keep-alive\r\n");
}

/* Looks up the client's address for the log, once per connection. Called before a large
 * body goes out too: after a reset the socket has no peer any more (getpeername fails). */
static void note_peer(conn *c)
{
    if (httpd_cfg.access_log_fd >= 0 && !c->peer[0])
        httpd_peer_name(c->fd, c->peer, sizeof c->peer);
}

static void log_request(conn *c, const http_request *r, int status, int64_t bytes)
{
    if (httpd_cfg.access_log_fd < 0)
        return;
    note_peer(c);
    httpd_log_request(&c->sh->log, c->peer, r ? r->request_line : c->refused_line, status, bytes);
}

/* An error or a redirect: nginx's small HTML body (none for HEAD), and `extra` header lines
 * (each ending in CRLF) when given. */
static int simple_response(conn *c, const http_request *r, int status, const char *extra)
{
    if (ensure_room(c, HEADER_ROOM + (extra ? strlen(extra) : 0)) < 0)
        return -1;
    char body[256];
    int blen = snprintf(body, sizeof body,
                        "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                        "<center><h1>%d %s</h1></center>\r\n<hr><center>weft-httpd</center>\r\n"
                        "</body>\r\n</html>\r\n",
                        status, reason(status), status, reason(status));
    status_line(c, r, status);
    put(c, "Content-Type: text/html\r\nContent-Length: %d\r\n%s\r\n", blen, extra ? extra : "");
    int head = r ? r->method == HTTP_M_HEAD : c->refused_head;
    if (!head)
        put_bytes(c, body, (size_t)blen);
    log_request(c, r, status, head ? 0 : blen);
    return 0;
}

/* 301 to the directory's URL with its slash, query kept (nginx sends an absolute URL built
 * from Host; a relative Location is valid since RFC 7231 and cannot be pointed elsewhere by
 * a forged Host). The Location starts with one slash, never two nor a slash and a
 * backslash: a browser reads "//evil.example/dir/" as another host's URL (and a backslash as
 * a slash), so the target's leading slashes and backslashes collapse into one. */
static int redirect_dir(conn *c, const http_request *r)
{
    size_t need = r->path.len + r->query.len + 32;
    if (need > OUT_BUF - 2 * HEADER_ROOM)
        return simple_response(c, r, 414, NULL);
    const char *p = r->path.len ? r->path.p : "";
    size_t len = r->path.len;
    while (len && (*p == '/' || *p == '\\'))
        p++, len--;
    char loc[HTTP_MAX_LINE + 64]; /* the target fits in a request line */
    snprintf(loc, sizeof loc, "Location: /%.*s%s%s%.*s\r\n", (int)len, p, len ? "/" : "",
             r->query.p ? "?" : "", (int)r->query.len, r->query.p ? r->query.p : "");
    return simple_response(c, r, 301, loc);
}

/* Reads and drops a body of `left` bytes, those already buffered first, all of it before
 * the body timeout (one deadline for the whole body: a client trickling a byte at a time
 * must not hold the connection for one read timeout per byte). Returns 0, -1 when the
 * connection must close at once (the client went away), or 408 past the body timeout. */
static int discard_body(conn *c, int64_t left)
{
    int64_t deadline = weft_deadline_in(httpd_cfg.body_timeout);
    size_t inbuf = c->have - c->start;
    if ((int64_t)inbuf > left)
        inbuf = (size_t)left;
    c->start += inbuf;
    left -= (int64_t)inbuf;
    /* The responses batched before this request are finished: they leave before the wait
     * for the rest of its body, which may be long or never end (they were held, then lost
     * with the connection). */
    if (left > 0 && flush(c, 0) < 0)
        return -1;
    char scratch[4096];
    for (unsigned reads = 0; left > 0;) {
        size_t want = left < (int64_t)sizeof scratch ? (size_t)left : sizeof scratch;
        ssize_t n = conn_read(c, scratch, want, deadline);
        if (n == -ETIMEDOUT)
            return 408; /* the client is still there: it is told why, as for a head */
        if (n <= 0) {
            c->peer_closed = 1;
            return -1;
        }
        left -= n;
        /* A body that keeps coming finds bytes at every read, which does not switch: the
         * worker's other tasks get a turn every DISCARD_YIELD_EVERY reads (as serve's). */
        if (++reads % DISCARD_YIELD_EVERY == 0 && weft_yield() < 0)
            return -1;
    }
    return 0;
}

/* The file being served came up short of the length its headers promised (shrunk in place,
 * or a cached stat older than the change): this response cannot be kept. The batch is
 * rolled back to where it starts (or to what is left of it once part of it went out), the
 * responses batched before it go out whole, and the connection ends (-1): the client sees
 * the earlier responses, then the close, as when a large body is cut short. */
static int file_shrank(conn *c)
{
    c->olen = c->resp_mark;
    c->file_short = 1;
    flush(c, 0);
    return -1;
}

/* A body over TLS: no sendfile (the bytes must be encrypted here), so the file is read into
 * the batch buffer behind the headers already there and sent from it, a buffer at a time.
 * *sent counts the body bytes of the buffers that went out whole. */
static int send_file_tls(conn *c, int fd, int64_t off, int64_t len, int64_t *sent)
{
    while (len > 0) {
        /* A full batch (a multipart body's part head may fill it) goes first: a read of
         * nothing would look like a file that shrank. */
        if (c->olen == OUT_BUF && flush(c, 0) < 0)
            return -1;
        size_t room = OUT_BUF - c->olen;
        size_t step = len < (int64_t)room ? (size_t)len : room;
        ssize_t n = weft_file_pread(fd, c->out + c->olen, step, off,
                                    weft_deadline_in(httpd_cfg.send_timeout));
        if (n <= 0 || (size_t)n != step)
            return file_shrank(c); /* the promised length cannot be kept */
        c->olen += step;
        off += (int64_t)step;
        len -= (int64_t)step;
        if (flush(c, 0) < 0)
            return -1;
        *sent += (int64_t)step;
    }
    return 0;
}

/* A large body with sendfile, after the headers in the batch. *sent counts the body bytes
 * the socket took, also when the transfer stops early (the client went away): sendfile
 * moves the offset past every byte it sent, even on a call that ends in an error. */
static int send_file_plain(conn *c, int fd, int64_t first, int64_t len, int64_t *sent)
{
    if (flush(c, 1) < 0)
        return -1;
    off_t off = first;
    int rc = 0;
    while (len > 0) {
        size_t step = len < SENDFILE_STEP ? (size_t)len : SENDFILE_STEP;
        ssize_t n = weft_sendfile(c->fd, fd, &off, step, weft_deadline_in(httpd_cfg.send_timeout));
        if (n <= 0 || (size_t)n != step) {
            /* Fewer bytes without an error: the file ended first, shrunk in place since its
             * (cached) stat. The headers are gone, so the connection ends here, and the
             * cache entry is forgotten (handle): the next request sees the new size. */
            if (n >= 0)
                c->file_short = 1;
            c->peer_closed = 1;
            rc = -1;
            break;
        }
        len -= n;
    }
    *sent = (int64_t)off - first;
    return rc;
}

/* A small body: copied into the batch, to leave with the headers in one write; from the
 * cache's copy when it holds one. */
static int copy_small_body(conn *c, int fd, int64_t first, int64_t len, const httpd_fc_entry *fe)
{
    ssize_t n = len;
    if (fe && fe->data)
        memcpy(c->out + c->olen, fe->data + first, (size_t)len);
    else
        n = weft_file_pread(fd, c->out + c->olen, (size_t)len, first,
                            weft_deadline_in(httpd_cfg.send_timeout));
    if (n != len)
        return file_shrank(c); /* the promised length cannot be kept */
    c->olen += (size_t)len;
    return 0;
}

/* Whether any `name` field (a list may come on several lines, RFC 9110 5.3) holds a tag
 * matching `etag`: 1, 0, or -1 when there is no such field. */
static int etag_fields_match(const http_request *r, const char *name, const char *etag, size_t elen,
                             int strong)
{
    int seen = -1;
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (!http_view_eq(r->headers[i].name, name))
            continue;
        if (httpd_etag_match(r->headers[i].value, etag, elen, strong))
            return 1;
        seen = 0;
    }
    return seen;
}

/* An HTTP-date field's value, if present, valid and not later than our clock (a date in
 * the future is invalid and ignored, 13.1.3/13.1.4): 1 and *t, else 0. */
static int date_field(const http_request *r, const char *name, time_t *t)
{
    const http_header *h = http_find_header(r, name);
    time_t now = time(NULL);
    return h && httpd_parse_http_date(h->value, now, t) == 0 && *t <= now;
}

/* The preconditions of RFC 9110 13.2.2 for a file that exists, in its order: 412 when
 * If-Match does not match (strong comparison), or, without If-Match, when the file changed
 * after If-Unmodified-Since; then 304 when If-None-Match matches (weak comparison), or,
 * without If-None-Match, when the file did not change after If-Modified-Since (GET and HEAD
 * only, 13.1.2/13.1.3); else 0. */
static int preconditions(const http_request *r, const struct stat *st, const char *etag,
                         size_t elen)
{
    time_t t;
    int m = etag_fields_match(r, "if-match", etag, elen, 1);
    if (m == 0)
        return 412;
    if (m < 0 && date_field(r, "if-unmodified-since", &t) && st->st_mtime > t)
        return 412;
    int get = r->method == HTTP_M_GET || r->method == HTTP_M_HEAD;
    m = etag_fields_match(r, "if-none-match", etag, elen, 0);
    if (m == 1)
        return get ? 304 : 412;
    if (m < 0 && get && date_field(r, "if-modified-since", &t) && st->st_mtime <= t)
        return 304;
    return 0;
}

/* The bytes [first, first + len) of the file after what the batch holds: copied into the
 * batch when small, else sent (sendfile, or read and encrypted over TLS). *sent gets the body
 * bytes that went out: the log records those, not those promised (nginx's $body_bytes_sent),
 * so a download the client broke off logs what it got. A small body counts as sent once it
 * is in the batch (a batch that then fails to leave is not told apart). */
static int send_body(conn *c, int fd, int64_t first, int64_t len, const httpd_fc_entry *fe,
                     int64_t *sent)
{
    int rc;
    *sent = 0;
    if (len <= SMALL_BODY && (size_t)len <= OUT_BUF - c->olen) {
        rc = copy_small_body(c, fd, first, len, fe);
        *sent = rc == 0 ? len : 0;
    } else if (is_tls(c)) {
        note_peer(c);
        rc = send_file_tls(c, fd, first, len, sent);
    } else {
        note_peer(c);
        rc = send_file_plain(c, fd, first, len, sent);
    }
    return rc;
}

/* A part's head in a multipart/byteranges body (RFC 9110 14.6), or its end with `type` NULL.
 * Every part starts with a CRLF, as nginx's do (the first one's is preamble). Written into
 * out (NULL: only counted); returns its length. */
static int part_head(char *out, size_t cap, const char *boundary, const char *type,
                     const httpd_range *rg, int64_t size)
{
    if (!type)
        return snprintf(out, cap, "\r\n--%s--\r\n", boundary);
    return snprintf(out, cap,
                    "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %lld-%lld/%lld\r\n\r\n",
                    boundary, type, (long long)rg->first, (long long)rg->last, (long long)size);
}

/* Several ranges: 206 with a multipart/byteranges body, its parts in the order asked (the
 * parser refused lists that add up to more than the file). The length is counted before the
 * headers go, from the same part_head that writes the parts. */
static int serve_multipart(conn *c, const http_request *r, int fd, int64_t size, const char *type,
                           const char *lm, const char *etag, const httpd_range *rg, int n,
                           const httpd_fc_entry *fe)
{
    /* A boundary that no part's bytes are likely to hold: per worker thread, a counter
     * mixed with the clock (nginx uses a counter too). */
    static _Thread_local uint64_t nboundaries;
    char boundary[24];
    snprintf(boundary, sizeof boundary, "weft%016llx",
             (unsigned long long)(++nboundaries * 0x9e3779b97f4a7c15u ^ (uint64_t)time(NULL)));
    int64_t total = part_head(NULL, 0, boundary, NULL, NULL, size);
    for (int i = 0; i < n; i++)
        total += part_head(NULL, 0, boundary, type, &rg[i], size) + rg[i].last - rg[i].first + 1;
    status_line(c, r, 206);
    put(c,
        "Content-Type: multipart/byteranges; boundary=%s\r\nContent-Length: %lld\r\n"
        "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n\r\n",
        boundary, (long long)total, lm, etag);
    int64_t sent = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char head[256];
        int hl = part_head(head, sizeof head, boundary, type, &rg[i], size);
        if ((size_t)hl >= sizeof head || ensure_room(c, (size_t)hl) < 0) {
            rc = -1;
            break;
        }
        put_bytes(c, head, (size_t)hl);
        int64_t part = 0;
        rc = send_body(c, fd, rg[i].first, rg[i].last - rg[i].first + 1, fe, &part);
        sent += part;
    }
    if (rc == 0) {
        char end[64];
        int el = part_head(end, sizeof end, boundary, NULL, NULL, size);
        if (ensure_room(c, (size_t)el) < 0)
            rc = -1;
        else
            put_bytes(c, end, (size_t)el);
    }
    log_request(c, r, 206, sent);
    return rc;
}

/* 304, 200, 206 or 416 for an open regular file; `fe`: its cache entry (the validators
 * already formatted, a small file's bytes), or NULL. */
static int serve_file(conn *c, const http_request *r, int fd, const struct stat *st,
                      const char *name, size_t nlen, const httpd_fc_entry *fe)
{
    char etag_buf[48], lm_buf[32];
    const char *etag = etag_buf, *lm = lm_buf;
    int elen;
    if (fe) {
        etag = fe->etag;
        elen = fe->elen;
        lm = fe->last_modified;
    } else {
        elen = httpd_etag(st, etag_buf, sizeof etag_buf);
        httpd_http_date(st->st_mtime, lm_buf, sizeof lm_buf);
    }
    if (ensure_room(c, HEADER_ROOM) < 0)
        return -1;

    int pre = preconditions(r, st, etag, (size_t)elen);
    if (pre == 412)
        return simple_response(c, r, 412, NULL);
    if (pre == 304) {
        status_line(c, r, 304);
        put(c, "Last-Modified: %s\r\nETag: %s\r\n\r\n", lm, etag);
        log_request(c, r, 304, 0);
        return 0;
    }

    int64_t size = st->st_size;
    httpd_range ranges[HTTPD_MAX_RANGES];
    int nranges = 0; /* 0: the whole file (200) */
    const http_header *range = r->method == HTTP_M_GET ? http_find_header(r, "range") : NULL;
    if (range) {
        const http_header *ifr = http_find_header(r, "if-range");
        int fresh =
            !ifr ||
            (ifr->value.len == (size_t)elen && memcmp(ifr->value.p, etag, (size_t)elen) == 0) ||
            (ifr->value.len == 29 && memcmp(ifr->value.p, lm, 29) == 0);
        nranges = fresh ? httpd_parse_ranges(range->value, size, ranges, HTTPD_MAX_RANGES) : 0;
        if (nranges < 0) {
            char cr[64];
            snprintf(cr, sizeof cr, "Content-Range: bytes */%lld\r\n", (long long)size);
            return simple_response(c, r, 416, cr);
        }
    }
    /* A multipart body is the ranges plus a head under 256 bytes each (part_head's buffer) and
     * the closing line: for a file within that of INT64_MAX bytes (sparse, on tmpfs or XFS)
     * its length would overflow Content-Length's int64, so the whole file goes instead (RFC
     * 9110 14.2 lets a server ignore a Range). */
    if (nranges > 1 && size > INT64_MAX - (HTTPD_MAX_RANGES + 1) * 256)
        nranges = 0;
    const char *type = httpd_mime_type(name, nlen);
    if (nranges > 1)
        return serve_multipart(c, r, fd, size, type, lm, etag, ranges, nranges, fe);
    int status = nranges ? 206 : 200;
    /* The whole file, or the one range (a list ignored may have filled ranges[0]). */
    int64_t first = nranges ? ranges[0].first : 0, last = nranges ? ranges[0].last : size - 1;
    int64_t len = last - first + 1;
    status_line(c, r, status);
    put(c,
        "Content-Type: %s\r\nContent-Length: %lld\r\nLast-Modified: %s\r\nETag: %s\r\n"
        "Accept-Ranges: bytes\r\n",
        type, (long long)len, lm, etag);
    if (status == 206)
        put(c, "Content-Range: bytes %lld-%lld/%lld\r\n", (long long)first, (long long)last,
            (long long)size);
    put(c, "\r\n");
    if (r->method == HTTP_M_HEAD || len == 0) {
        log_request(c, r, status, 0);
        return 0;
    }
    int64_t sent = 0;
    int rc = send_body(c, fd, first, len, fe, &sent);
    log_request(c, r, status, sent);
    return rc;
}

/* A body whose length is not known when the headers go: chunked for HTTP/1.1, up to the
 * close for HTTP/1.0. The bytes are framed in the batch buffer: an open chunk's size line
 * is reserved (CHUNK_HEAD bytes) when it opens and written when it closes, once the buffer
 * is full or the body ends, so a chunk is as large as the buffer allows. */
#define CHUNK_HEAD 6 /* "xxxx\r\n": a chunk is smaller than OUT_BUF, under 0x10000 */
#define CHUNK_TAIL 7 /* the chunk's CRLF, and room for the last chunk's "0\r\n\r\n" */

typedef struct body_out {
    conn *c;
    int chunked;
    size_t mark;   /* where the open chunk's size line goes */
    int64_t bytes; /* body bytes, unframed (for the log) */
} body_out;

static void chunk_open(body_out *b)
{
    if (b->chunked) {
        b->mark = b->c->olen;
        b->c->olen += CHUNK_HEAD;
    }
}

static void chunk_close(body_out *b)
{
    conn *c = b->c;
    if (!b->chunked)
        return;
    size_t n = c->olen - b->mark - CHUNK_HEAD;
    if (n == 0) { /* an empty chunk would be the last one: leave it out */
        c->olen = b->mark;
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char *p = c->out + b->mark;
    for (int i = 0; i < 4; i++)
        p[i] = hex[(n >> (12 - 4 * i)) & 15];
    p[4] = '\r';
    p[5] = '\n';
    put_bytes(c, "\r\n", 2);
}

/* httpd_emit_fn: appends body bytes, sending the batch each time it fills. */
static int body_emit(void *arg, const char *p, size_t n)
{
    body_out *b = arg;
    conn *c = b->c;
    b->bytes += (int64_t)n;
    size_t reserve = b->chunked ? CHUNK_TAIL : 0;
    while (n > 0) {
        if (OUT_BUF - c->olen <= reserve) {
            chunk_close(b);
            if (flush(c, 0) < 0)
                return -1;
            chunk_open(b);
            continue;
        }
        size_t take = OUT_BUF - c->olen - reserve;
        if (take > n)
            take = n;
        memcpy(c->out + c->olen, p, take);
        c->olen += take;
        p += take;
        n -= take;
    }
    return 0;
}

/* A directory without index.html, listed (--autoindex): the names are read and sorted, then
 * the page is made straight into the batch buffer and sent chunked (its length is not known
 * before it is made), so a listing costs its names in memory, never the page. */
static int serve_listing(conn *c, const http_request *r, int dirfd, const char *norm)
{
    /* Its preconditions (RFC 9110 13.1.1, 13.1.2): a listing has no entity tag, so If-Match
     * holds only for "*" (412 else), and If-None-Match: * holds (304), since the listing is
     * a current representation. It has no date either: the date fields are ignored. */
    if (etag_fields_match(r, "if-match", "", 0, 1) == 0)
        return simple_response(c, r, 412, NULL);
    if (etag_fields_match(r, "if-none-match", "", 0, 0) == 1) {
        if (r->method != HTTP_M_GET && r->method != HTTP_M_HEAD)
            return simple_response(c, r, 412, NULL);
        if (ensure_room(c, HEADER_ROOM) < 0)
            return -1;
        status_line(c, r, 304);
        put(c, "\r\n");
        log_request(c, r, 304, 0);
        return 0;
    }
    /* A HEAD gets the headers alone, and its names are not read (nginx's autoindex stops
     * there too): read and sorted for a body never sent, a 30-byte HEAD of a directory of
     * 20,000 names cost 11 ms of the worker's CPU, a cheap lever for a pipelining client. */
    httpd_listing *l = NULL;
    if (r->method != HTTP_M_HEAD && httpd_listing_read(dirfd, &l) < 0)
        return simple_response(c, r, 500, NULL);
    if (ensure_room(c, HEADER_ROOM) < 0) {
        httpd_listing_free(l);
        return -1;
    }
    body_out b = {c, r->version_minor >= 1, 0, 0};
    if (!b.chunked)
        c->close_after = 1; /* HTTP/1.0: the body ends at the close */
    status_line(c, r, 200);
    /* The names are bytes as the file system holds them, UTF-8 on any modern system; without
     * a charset a browser reads them as windows-1252 ("ü" shown as "Ã¼"). */
    put(c, "Content-Type: text/html; charset=utf-8\r\n%s\r\n",
        b.chunked ? "Transfer-Encoding: chunked\r\n" : "");
    int rc = 0;
    if (r->method != HTTP_M_HEAD) {
        chunk_open(&b);
        rc = httpd_listing_write(l, norm, body_emit, &b);
        if (rc == 0) {
            chunk_close(&b);
            if (b.chunked)
                put_bytes(c, "0\r\n\r\n", 5);
        }
    }
    httpd_listing_free(l);
    log_request(c, r, 200, b.bytes);
    return rc < 0 ? -1 : 0;
}

/* Reads and drops a chunked request body, decoded (as nginx does) so that the connection
 * can go on to the next request. The body's bytes are read into the input buffer behind
 * the head, whose views stay where they are; the space is reused once a read is decoded, and
 * what follows the body (a pipelined request) stays in the buffer. Returns 0, -1 when the
 * connection must close at once (the client went away or stalled past the send timeout),
 * or a status to answer before closing (400 malformed, 408 past the body timeout, 413 over
 * --max-body, 431 for a head that leaves less than CHUNK_ROOM behind it). */
/* The least room a chunked body is read through: less behind a head not at the buffer's
 * front, and the head moves there first (serve); a head that leaves less even there is too
 * large for a chunked body (431). Reading through whatever was left, a head of 16,383 bytes
 * drained its body a byte per read: 0.37 s of a worker's CPU for a 1 MiB body (against
 * under 1 ms behind a small head), so a client could burn a worker at a few Mbit/s. */
#define CHUNK_ROOM 4096

static int discard_chunked(conn *c)
{
    http_chunked d;
    http_chunked_init(&d);
    size_t base = c->start; /* the body starts here: the head before it stays intact */
    /* Decided on the head alone, before any of the body is looked at, so that the answer
     * does not depend on how much of the body came with the head. */
    if (IN_BUF - base < CHUNK_ROOM)
        return 431;
    int64_t deadline = weft_deadline_in(httpd_cfg.body_timeout); /* as discard_body */
    for (unsigned reads = 0;;) {
        if (c->have > c->start) {
            int done = 0;
            int64_t n = http_chunked_feed(&d, c->in + c->start, c->have - c->start,
                                          httpd_cfg.max_body, &done);
            if (n < 0)
                return (int)-n;
            c->start += (size_t)n;
            if (done)
                return 0;
        }
        c->have = c->start = base;
        if (flush(c, 0) < 0) /* the batch leaves before a wait, as in discard_body */
            return -1;
        ssize_t n = conn_read(c, c->in + base, IN_BUF - base, deadline);
        if (n == -ETIMEDOUT)
            return 408; /* as discard_body */
        if (n <= 0) {
            c->peer_closed = 1;
            return -1;
        }
        c->have += (size_t)n;
        if (++reads % DISCARD_YIELD_EVERY == 0 && weft_yield() < 0) /* as discard_body */
            return -1;
    }
}

/* A file of the root, through the worker's open-file cache (filecache.h): *slot says how it
 * is given back (close_file). */
static int open_file(conn *c, const char *norm, struct stat *st, int *slot)
{
    return httpd_fc_open(&c->sh->fc, httpd_cfg.rootfd, norm, httpd_cfg.file_cache_ttl, st, slot);
}

static void close_file(conn *c, int fd, int slot)
{
    if (slot >= 0)
        httpd_fc_release(&c->sh->fc, slot);
    else
        weft_close(fd);
}

/* Whether the client holds its body back until told to send it: `Expect: 100-continue` on
 * HTTP/1.1 with a body announced and none of it here yet (curl waits a second, then sends
 * it anyway; other clients wait for ever). */
static int holds_body_back(const conn *c, const http_request *r)
{
    if (r->version_minor < 1 || c->have > c->start || (!r->chunked && r->content_length <= 0))
        return 0;
    const http_header *h = http_find_header(r, "expect");
    return h && http_view_eq(h->value, "100-continue");
}

/* Answers one parsed request (the body, if any, is read and dropped first). Returns 0, or
 * -1 when the connection must close at once (a write failed). */
static int handle(conn *c, const http_request *r)
{
    if (!r->chunked && r->content_length > httpd_cfg.max_body)
        return simple_response(c, r, 413, NULL);
    int body_status = 0; /* discard_chunked's or discard_body's */
    if (holds_body_back(c, r)) {
        /* No response of a static server needs the body (it is only read to be dropped):
         * the final status goes at once, without a 100 Continue, so that the client never
         * sends it (RFC 9110 10.1.1), as nginx answers a status it decides without the body.
         * Sending 100 Continue and then waiting for the body held a client that never sent
         * it (or had given up) for the whole body timeout, and then closed without a word.
         * The body is not read, so the connection cannot go on: Connection: close, and a
         * body sent anyway is drained by linger_close. */
        c->close_after = 1;
    } else if (r->chunked) {
        body_status = discard_chunked(c);
    } else if (r->content_length > 0) {
        body_status = discard_body(c, r->content_length);
    }
    if (body_status < 0)
        return -1;
    if (body_status > 0) /* 400, 408, 413 and 431 close it */
        return simple_response(c, r, body_status, NULL);
    if (r->method != HTTP_M_GET && r->method != HTTP_M_HEAD && r->method != HTTP_M_POST)
        return simple_response(c, r, 405, "Allow: GET, HEAD\r\n");

    char norm[PATH_CAP + 16]; /* room to append "index.html" */
    int nl = httpd_normalize_path(r->path, norm, PATH_CAP + 2);
    if (nl < 0)
        return simple_response(c, r, -nl, NULL);
    struct stat st;
    int slot;
    int fd = open_file(c, norm, &st, &slot);
    if (fd < 0)
        return simple_response(c, r, -fd, NULL);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        /* Decided on the decoded path: "/dir%2F" and "/dir/." name the directory as
         * "/dir/" does (an empty absolute-form path is the root, RFC 9110 4.2.3). */
        if (norm[nl - 1] != '/') {
            close_file(c, fd, slot);
            return redirect_dir(c, r);
        }
        memcpy(norm + nl, "index.html", sizeof "index.html");
        struct stat ist;
        int islot;
        int ifd = open_file(c, norm, &ist, &islot);
        if (ifd >= 0 && S_ISREG(ist.st_mode)) {
            close_file(c, fd, slot);
            fd = ifd;
            slot = islot;
            st = ist;
            nl += (int)strlen("index.html");
        } else {
            if (ifd >= 0)
                close_file(c, ifd, islot);
            norm[nl] = '\0';
            if (r->method == HTTP_M_POST)
                rc = simple_response(c, r, 405, "Allow: GET, HEAD\r\n");
            else if (httpd_cfg.autoindex)
                rc = serve_listing(c, r, fd, norm);
            else
                rc = simple_response(c, r, 403, NULL);
            close_file(c, fd, slot);
            return rc;
        }
    }
    if (r->method == HTTP_M_POST) /* nginx: POST to a static file that exists is 405 */
        rc = simple_response(c, r, 405, "Allow: GET, HEAD\r\n");
    else
        rc = serve_file(c, r, fd, &st, norm, (size_t)nl, httpd_fc_entry_of(&c->sh->fc, slot));
    if (c->file_short && slot >= 0)
        httpd_fc_forget(&c->sh->fc, slot); /* its stat is stale: the next request opens anew */
    close_file(c, fd, slot);
    return rc;
}

/* Reads what the client still sends for a short while after our last response, so that
 * the close does not reset the connection under the response (see LINGER_TIME). */
static void linger_close(conn *c)
{
#ifdef WEFT_HAVE_TLS
    if (c->tls && !c->peer_closed) /* close_notify, then the TCP half-close */
        weft_tls_shutdown(c->tls, weft_deadline_in(LINGER_TIME));
#endif
    if (!c->peer_closed && weft_shutdown(c->fd, SHUT_WR) == 0) {
        int64_t deadline = weft_deadline_in(LINGER_TIME);
        size_t total = 0;
        while (total < LINGER_BYTES) {
            ssize_t n = weft_read(c->fd, c->in, IN_BUF, deadline);
            if (n <= 0)
                break;
            total += (size_t)n;
        }
    }
    weft_close(c->fd);
}

/* The request loop: parse every complete head in `in`, answer each into the batch, send the
 * batch when the buffer holds no complete request any more, then read. */
static void serve(conn *c, httpd_conn_rec *rec)
{
    http_parser p;
    http_parser_init(&p);
    int first = 1;
    unsigned served = 0; /* requests answered, for the yield below */
    /* The first head is timed from the accept (the TLS handshake included), later ones from
     * their first byte. */
    int64_t head_deadline = c->first_deadline;
    for (;;) {
        int r = c->have > c->start ? http_parse(&p, c->in + c->start, c->have - c->start) : 0;
        if (r > 0) {
            /* A chunked body is read through the room behind its head (discard_chunked).
             * Behind pipelined requests that room may be a few bytes or none (a 431 for a
             * small head, or a read per body byte): the head moves to the front first, and
             * is parsed again there, as a partial head is below. */
            if (p.req.chunked && c->start > 0 && IN_BUF - (c->start + (size_t)r) < CHUNK_ROOM) {
                memmove(c->in, c->in + c->start, c->have - c->start);
                c->have -= c->start;
                c->start = 0;
                http_parser_init(&p);
                continue;
            }
            c->start += (size_t)r;
            int rc = handle(c, &p.req);
            http_parser_init(&p);
            first = 0;
            if (rc < 0)
                return;
            if (c->close_after)
                break;
            /* weft does not preempt, and a read that finds bytes or a send that finds room
             * does not switch: a client that keeps its pipeline full and reads as fast kept
             * this task on its worker for seconds, holding back the worker's other
             * connections, its accepts and its log flusher (weft_yield's contract asks such
             * loops to yield; nginx posts the next pipelined request as an event). A
             * cancel (the drain's deadline) ends the connection. */
            if (++served % YIELD_EVERY == 0 && weft_yield() < 0)
                return;
            head_deadline = weft_deadline_in(httpd_cfg.header_timeout);
            continue;
        }
        if (r < 0) {
            c->refused_line = p.req.request_line; /* {NULL, 0} if the line was not whole */
            c->refused_head = p.req.method == HTTP_M_HEAD;
            simple_response(c, NULL, -r, NULL);
            break;
        }
        /* Nothing complete is left: the batch goes out in one write. */
        if (flush(c, 0) < 0)
            return;
        if (c->sh->draining && c->have == c->start)
            break;
        if (c->start > 0) {
            /* Move the partial head to the front. The parser's views would point at the
             * old place, so it starts again on the moved bytes (they are few: this only
             * happens to the tail of a pipelined batch). */
            memmove(c->in, c->in + c->start, c->have - c->start);
            c->have -= c->start;
            c->start = 0;
            http_parser_init(&p);
            continue;
        }
        if (c->have == IN_BUF) {
            simple_response(c, NULL, 431, NULL);
            break;
        }
        int idle = c->have == 0;
        int64_t deadline =
            idle && !first ? weft_deadline_in(httpd_cfg.keepalive_timeout) : head_deadline;
        rec->idle = idle;
        ssize_t n = conn_read(c, c->in + c->have, IN_BUF - c->have, deadline);
        rec->idle = 0;
        if (n == -ETIMEDOUT) {
            /* A HEAD whose request line came gets its 408 without a body too. */
            c->refused_head = p.req.method == HTTP_M_HEAD;
            /* Part of a head came: nginx closes silently; we say why (docs/httpd.md). Nothing
             * came (a keep-alive connection between requests, or a browser's preconnect that
             * was never used): it just closes, as nginx and Apache do; a 408 there would be
             * read as the answer to a request the client sends meanwhile. */
            if (!idle)
                simple_response(c, NULL, 408, NULL);
            else
                c->peer_closed = 1;
            break;
        }
        if (n <= 0) {
            c->peer_closed = 1;
            return;
        }
        if (idle && !first)
            head_deadline = weft_deadline_in(httpd_cfg.header_timeout);
        c->have += (size_t)n;
    }
    if (flush(c, 0) < 0)
        return;
    linger_close(c);
    c->fd = -1;
}

/* A connection's life, on the plain port or (tls) the TLS one. */
static void run_conn(int fd, int tls)
{
    httpd_shard *sh = weft_sharded_local(httpd_shards);
    if (atomic_fetch_add_explicit(&httpd_nconns, 1, memory_order_relaxed) >= httpd_cfg.max_conns ||
        sh->draining) {
        /* Over the cap: closed at once, like nginx once worker_connections are taken. */
        atomic_fetch_sub_explicit(&httpd_nconns, 1, memory_order_relaxed);
        weft_close(fd);
        return;
    }
    httpd_conn_rec rec = {&sh->live, sh->live.next, weft_self(), fd, 0};
    sh->live.next->prev = &rec;
    sh->live.next = &rec;
    sh->nlive++;

    conn *c = malloc(sizeof *c);
    if (c) {
        c->fd = fd;
        c->close_after = c->peer_closed = 0;
        c->have = c->start = c->olen = c->resp_mark = 0;
        c->file_short = 0;
        c->sh = sh;
        c->peer[0] = '\0';
        c->refused_line = (http_view){NULL, 0};
        c->refused_head = 0;
        c->first_deadline = weft_deadline_in(httpd_cfg.header_timeout);
        weft_tcp_nodelay(fd, 1);
        int ready = 1;
#ifdef WEFT_HAVE_TLS
        c->tls = NULL;
        if (tls) {
            /* The handshake is part of the first head's time (the header timeout, from the
             * accept); a shutdown cancels it like an idle connection. A failed handshake
             * closes silently: there is no channel to answer on. */
            rec.idle = 1;
            ready = weft_tls_create(&c->tls, httpd_cfg.tls, fd, NULL) == 0 &&
                    weft_tls_handshake(c->tls, c->first_deadline) == 0;
            rec.idle = 0;
        }
#else
        (void)tls;
#endif
        if (ready)
            serve(c, &rec);
#ifdef WEFT_HAVE_TLS
        weft_tls_destroy(c->tls);
#endif
        if (c->fd >= 0)
            weft_close(c->fd);
        free(c);
    } else {
        weft_close(fd);
    }

    rec.prev->next = rec.next;
    rec.next->prev = rec.prev;
    atomic_fetch_sub_explicit(&httpd_nconns, 1, memory_order_relaxed);
    if (--sh->nlive == 0 && sh->drained)
        weft_promise_resolve(sh->drained, NULL);
}

void httpd_serve_conn(int fd, void *arg)
{
    (void)arg;
    run_conn(fd, 0);
}

void httpd_serve_tls_conn(int fd, void *arg)
{
    (void)arg;
    run_conn(fd, 1);
}
