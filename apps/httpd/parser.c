/* parser.c: the request-head parser (see parser.h for the contract). It works line by line:
 * a line is parsed only once its LF is in the buffer, or once it is longer than its limit
 * (then its first HTTP_MAX_LINE bytes decide between 400 and 414/431), so the outcome is a
 * function of the bytes alone, never of how they arrived. `scan` remembers how far the
 * current line has been searched for its LF, so bytes trickling in are looked at once. */
#include "parser.h"

#include <string.h>

enum { ST_REQUEST_LINE = 0, ST_HEADERS = 1 };

/* A line check's verdict: 0 valid, MORE (the slice ended inside a valid prefix), or -status. */
#define MORE 1

/* RFC 9110 tchar: the bytes a method or a field name may hold. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline int is_method_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}

/* A byte of the request target: anything visible, obs-text included (nginx passes UTF-8). */
static inline int is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

/* A byte of a field value: VCHAR, obs-text, SP, HTAB. */
static inline int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

int http_view_eq(http_view v, const char *lc)
{
    size_t n = strlen(lc);
    if (v.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)v.p[i]) != (unsigned char)lc[i])
            return 0;
    return 1;
}

const http_header *http_find_header(const http_request *r, const char *lower_name)
{
    for (unsigned i = 0; i < r->nheaders; i++)
        if (http_view_eq(r->headers[i].name, lower_name))
            return &r->headers[i];
    return NULL;
}

void http_parser_init(http_parser *p)
{
    memset(p, 0, offsetof(http_parser, req));
    http_request *r = &p->req;
    r->method = HTTP_M_OTHER;
    r->method_name = r->target = r->path = r->query = r->request_line = r->host =
        (http_view){NULL, 0};
    r->version_minor = 1;
    r->nheaders = 0;
    r->content_length = -1;
    r->chunked = 0;
    r->keep_alive = 1;
    r->conn_close = 0;
}

static int method_code(const char *m, size_t n)
{
    static const struct {
        const char *name;
        int code;
    } known[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS},
        {"CONNECT", HTTP_M_CONNECT}, {"TRACE", HTTP_M_TRACE},   {"PATCH", HTTP_M_PATCH},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, m, n) == 0)
            return known[i].code;
    return HTTP_M_OTHER;
}

/* Splits an accepted target into path and query. Absolute-form loses its scheme and
 * authority; with no path left the path is empty (the server reads it as "/"). */
static void split_target(http_request *r)
{
    const char *t = r->target.p, *end = t + r->target.len;
    const char *path = t;
    if (*t != '/') {
        const char *auth = memchr(t, ':', r->target.len) + 3; /* checked: "scheme://" */
        path = auth;
        while (path < end && *path != '/' && *path != '?')
            path++;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    if (q) {
        r->path = (http_view){path, (size_t)(q - path)};
        r->query = (http_view){q + 1, (size_t)(end - q - 1)};
    } else {
        r->path = (http_view){path, (size_t)(end - path)};
    }
}

/* Checks the target's form once the whole of it is known: origin-form ("/...") or
 * absolute-form with an http or https scheme. Like nginx, no asterisk-form (OPTIONS *) and
 * no authority-form (CONNECT host:port): 400. */
static int host_ok(http_view v);

static int target_form_ok(const http_request *r)
{
    const char *t = r->target.p;
    size_t n = r->target.len;
    /* A fragment is the client's own, never sent (RFC 9110 4.2.5): the grammar has no '#',
     * and a target with one is invalid (RFC 9112 3.2: 400), not a file named with it. */
    if (memchr(t, '#', n))
        return 0;
    if (t[0] == '/')
        return 1;
    size_t s = 0;
    if (n >= 7 && lower((unsigned char)t[0]) == 'h' && lower((unsigned char)t[1]) == 't' &&
        lower((unsigned char)t[2]) == 't' && lower((unsigned char)t[3]) == 'p')
        s = 4 + (lower((unsigned char)t[4]) == 's');
    if (s == 0 || n < s + 4 || memcmp(t + s, "://", 3) != 0)
        return 0;
    /* An authority must follow ("http:///x" has none), and it is held to the Host rules
     * (host_ok): no userinfo, a numeric port (RFC 9110 4.2.4, 7.2). */
    size_t a = s + 3, e = a;
    while (e < n && t[e] != '/' && t[e] != '?')
        e++;
    return e > a && host_ok((http_view){t + a, e - a});
}

/* Parses a request line of n bytes (without its line end). With complete == 0 the slice is
 * the prefix of a longer line: reaching its end means MORE rather than an error. */
static int request_line(http_request *r, const char *s, size_t n, int complete)
{
    if (complete) /* for the log, a line refused below included */
        r->request_line = (http_view){s, n};
    size_t i = 0;
    while (i < n && is_method_char((unsigned char)s[i]))
        i++;
    if (i == n)
        return complete ? -400 : MORE;
    if (s[i] != ' ' || i == 0)
        return -400;
    size_t mlen = i;
    /* Recorded before the rest of the line is checked: a HEAD refused for its target, its
     * version, a header or a line over the limit is still answered without a body. */
    r->method_name = (http_view){s, mlen};
    r->method = method_code(s, mlen);
    while (i < n && s[i] == ' ')
        i++;
    size_t t0 = i;
    while (i < n && is_target_char((unsigned char)s[i]))
        i++;
    if (i == n)
        /* No version: an HTTP/0.9 request, which we do not serve (docs/httpd.md). */
        return complete ? -400 : MORE;
    if (s[i] != ' ' || i == t0)
        return -400;
    size_t tlen = i - t0;
    while (i < n && s[i] == ' ')
        i++;
    static const char proto[] = "HTTP/";
    for (size_t k = 0; k < 5; k++, i++) {
        if (i == n)
            return complete ? -400 : MORE;
        if (s[i] != proto[k])
            return -400;
    }
    /* Versions as nginx reads them: up to three digits each side of the dot, the major's
     * first one 1-9 ("HTTP/01.1" is malformed; "HTTP/0.9" is refused below). */
    unsigned major = 0, minor = 0, nd = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++)
        major = major * 10 + (unsigned)(s[i] - '0');
    if (i == n)
        return complete ? -400 : MORE;
    if (nd == 0 || nd > 3 || s[i] != '.' || (nd > 1 && s[i - nd] == '0'))
        return -400;
    i++;
    nd = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++)
        minor = minor * 10 + (unsigned)(s[i] - '0');
    if (i == n && !complete)
        return MORE;
    if (nd == 0 || nd > 3)
        return -400;
    while (i < n && s[i] == ' ')
        i++;
    if (i != n)
        return -400;
    if (!complete)
        return MORE;
    if (major == 0)
        return -400; /* nginx: HTTP/0.x spelled out is malformed */
    if (major != 1)
        return -505;
    r->target = (http_view){s + t0, tlen};
    r->version_minor = minor == 0 ? 0 : 1;
    r->keep_alive = minor != 0;
    r->request_line = (http_view){s, n};
    if (!target_form_ok(r))
        return -400;
    split_target(r);
    return 0;
}

/* Content-Length: one run of digits (1*DIGIT), at most 18 of them after its leading zeros
 * (no overflow; "007" is 7, as nginx reads it). */
static int parse_length(http_view v, int64_t *out)
{
    if (v.len == 0)
        return -400;
    size_t i = 0;
    while (i + 1 < v.len && v.p[i] == '0')
        i++;
    if (v.len - i > 18)
        return -400;
    int64_t n = 0;
    for (; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -400;
        n = n * 10 + (v.p[i] - '0');
    }
    *out = n;
    return 0;
}

/* Connection: a comma-separated list of tokens; "close" and "keep-alive" matter. */
static void parse_connection(http_request *r, http_view v)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t b = i;
        while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        http_view tok = {v.p + b, i - b};
        if (http_view_eq(tok, "close"))
            r->keep_alive = 0, r->conn_close = 1;
        else if (http_view_eq(tok, "keep-alive") && r->version_minor == 0 && !r->conn_close)
            r->keep_alive = 1; /* "close" anywhere, before or after, wins (RFC 9112 9.6) */
    }
}

/* RFC 3986's unreserved and sub-delims: the bytes a reg-name holds besides pct-encoded. */
static int is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~!$&'()*+,;=", c) != NULL);
}

static int is_hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f');
}

/* The host part of a Host value: an IP-literal ("[" IPv6 or IPvFuture "]", its inside
 * checked for its alphabet only) or a reg-name (which covers IPv4 addresses). Returns where
 * it ends (the start of ":port" or the value's end), or -1. */
static long host_part_end(http_view v)
{
    size_t i = 0;
    if (v.len > 0 && v.p[0] == '[') {
        for (i = 1; i < v.len && v.p[i] != ']'; i++)
            if (!is_host_char((unsigned char)v.p[i]) && v.p[i] != ':')
                return -1;
        return i < v.len && i > 1 ? (long)i + 1 : -1;
    }
    for (; i < v.len && v.p[i] != ':'; i++) {
        if (v.p[i] == '%') { /* pct-encoded: two hex digits follow */
            if (i + 2 >= v.len || !is_hex_digit((unsigned char)v.p[i + 1]) ||
                !is_hex_digit((unsigned char)v.p[i + 2]))
                return -1;
            i += 2;
        } else if (!is_host_char((unsigned char)v.p[i])) {
            return -1;
        }
    }
    return (long)i;
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2); a request with any other value is 400 (RFC
 * 9112 3.2), so a space, a slash, a userinfo '@' or a control byte is refused. An empty
 * value is valid (a target without an authority). On top of the grammar, nginx's ".." rule:
 * a host with ".." in it could climb out of a per-host directory. */
static int host_ok(http_view v)
{
    long end = host_part_end(v);
    if (end < 0)
        return 0;
    size_t i = (size_t)end;
    if (i < v.len) {
        if (v.p[i] != ':')
            return 0;
        for (i++; i < v.len; i++) /* port = *DIGIT: may be empty */
            if (v.p[i] < '0' || v.p[i] > '9')
                return 0;
    }
    for (size_t k = 0; k + 1 < v.len; k++)
        if (v.p[k] == '.' && v.p[k + 1] == '.')
            return 0;
    return 1;
}

/* Records what the server needs from one header field. */
static int interpret(http_parser *p, const http_header *h)
{
    http_request *r = &p->req;
    switch (lower((unsigned char)h->name.p[0])) {
    case 'c':
        if (http_view_eq(h->name, "content-length")) {
            if (p->cl_seen++)
                return -400;
            return parse_length(h->value, &r->content_length);
        }
        if (http_view_eq(h->name, "connection"))
            parse_connection(r, h->value);
        return 0;
    case 'h':
        if (http_view_eq(h->name, "host")) {
            if (p->host_seen++ || !host_ok(h->value))
                return -400;
            r->host = h->value;
        }
        return 0;
    case 't':
        if (http_view_eq(h->name, "transfer-encoding")) {
            if (p->te_seen++)
                return -400;
            r->chunked = http_view_eq(h->value, "chunked");
        }
        return 0;
    default:
        return 0;
    }
}

/* Parses a header line of n bytes (without its line end), as request_line does. */
static int header_line(http_parser *p, const char *s, size_t n, int complete)
{
    size_t i = 0;
    while (i < n && tchar[(unsigned char)s[i]])
        i++;
    if (i == n)
        return complete ? -400 : MORE;
    /* A space before the colon, a control byte or any non-token byte in the name: 400
     * (RFC 9112 5.1; nginx refuses the first two and ignores the line for the third). */
    if (s[i] != ':' || i == 0)
        return -400;
    size_t nlen = i++;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t v0 = i;
    for (; i < n; i++)
        if (!is_value_char((unsigned char)s[i]))
            return -400;
    if (!complete)
        return MORE;
    size_t v1 = n;
    while (v1 > v0 && (s[v1 - 1] == ' ' || s[v1 - 1] == '\t'))
        v1--;
    http_request *r = &p->req;
    if (r->nheaders == HTTP_MAX_HEADERS)
        return -431;
    http_header *h = &r->headers[r->nheaders++];
    h->name = (http_view){s, nlen};
    h->value = (http_view){s + v0, v1 - v0};
    return interpret(p, h);
}

/* The checks that need the whole head (RFC 9112 6.1 and 6.3, nginx 1.21.1's rules). */
static int finish(http_parser *p)
{
    http_request *r = &p->req;
    if (p->te_seen) {
        if (r->version_minor == 0 || p->cl_seen)
            return -400;
        if (!r->chunked)
            return -501;
    }
    if (r->version_minor == 1 && !p->host_seen)
        return -400;
    return 0;
}

/* A line longer than its limit: its first HTTP_MAX_LINE bytes either already hold an error
 * (that error) or do not (414 for the request line, 431 for a header line). */
static int too_long(http_parser *p, const char *s)
{
    int r = p->state == ST_REQUEST_LINE ? request_line(&p->req, s, HTTP_MAX_LINE, 0)
                                        : header_line(p, s, HTTP_MAX_LINE, 0);
    if (r < 0)
        return r;
    return p->state == ST_REQUEST_LINE ? -414 : -431;
}

int http_parse(http_parser *p, const char *buf, size_t len)
{
    for (;;) {
        const char *s = buf + p->line;
        size_t avail = len - p->line;
        const char *lf = memchr(s + p->scan, '\n', avail - p->scan);
        if (!lf) {
            p->scan = avail;
            return avail > HTTP_MAX_LINE ? too_long(p, s) : 0;
        }
        size_t n = (size_t)(lf - s); /* the line's bytes before its LF, a CR included */
        if (n > HTTP_MAX_LINE)
            return too_long(p, s);
        p->line += n + 1;
        p->scan = 0;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        int r;
        if (p->state == ST_REQUEST_LINE) {
            if (n == 0)
                continue; /* empty lines before a request are skipped (RFC 9112 2.2) */
            r = request_line(&p->req, s, n, 1);
            p->state = ST_HEADERS;
        } else if (n == 0) {
            r = finish(p);
            return r < 0 ? r : (int)p->line;
        } else if (s[0] == ' ' || s[0] == '\t') {
            r = -400; /* obs-fold */
        } else {
            r = header_line(p, s, n, 1);
        }
        if (r < 0)
            return r;
    }
}

/* The chunked-body decoder: one state per place in the grammar
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ BWS chunk-ext ] CRLF chunk-data CRLF
 * where bare LF may end a line as in the head, and extensions and trailers are checked for
 * control bytes (as header values are) and otherwise skipped. A trailer line is a field:
 * a token, then ':' (a line without one is a 400, not a field skipped: it may be a request
 * that a proxy in front took for the next message, and swallowing it would let the two
 * disagree on where messages end). */
enum {
    CK_SIZE0,        /* the first hex digit of a chunk size */
    CK_SIZE,         /* more hex digits, or what ends them */
    CK_SIZE_WS,      /* spaces after the size: ';' or the line end must follow */
    CK_EXT,          /* an extension, up to the line end */
    CK_SIZE_LF,      /* after the size line's CR */
    CK_DATA,         /* `size` data bytes left */
    CK_DATA_CR,      /* the CRLF after the data */
    CK_DATA_LF,      /* the LF of it */
    CK_TRAILER0,     /* the start of a trailer line, or the final empty line */
    CK_TRAILER_NAME, /* inside a trailer's field name, up to its ':' */
    CK_TRAILER,      /* inside a trailer line's value */
    CK_TRAILER_LF,   /* after a trailer line's CR */
    CK_END_LF,       /* after the final CR */
    CK_DONE,
};

void http_chunked_init(http_chunked *d)
{
    d->state = CK_SIZE0;
    d->size = 0;
    d->line = 0;
    d->total = 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int64_t http_chunked_feed(http_chunked *d, const char *buf, size_t len, int64_t limit, int *done)
{
    *done = 0;
    size_t i = 0;
    while (i < len && d->state != CK_DONE) {
        if (d->state == CK_DATA) { /* the bulk of the body: no per-byte work */
            size_t take = len - i;
            if ((uint64_t)take > d->size)
                take = (size_t)d->size;
            d->size -= take;
            d->total += (int64_t)take;
            i += take;
            if (d->size == 0)
                d->state = CK_DATA_CR;
            continue;
        }
        unsigned char c = (unsigned char)buf[i++];
        int h;
        switch (d->state) {
        case CK_SIZE0:
        case CK_SIZE:
            if ((h = hex_value(c)) >= 0) {
                d->size = d->size * 16 + (uint64_t)h;
                /* Checked at each digit, so the size never overflows: limit < 2^63. */
                if (d->size > (uint64_t)(limit - d->total))
                    return -413;
                d->state = CK_SIZE;
            } else if (d->state == CK_SIZE0) {
                return -400;
            } else if (c == ' ' || c == '\t') {
                d->state = CK_SIZE_WS;
            } else if (c == ';') {
                d->state = CK_EXT;
            } else if (c == '\r') {
                d->state = CK_SIZE_LF;
            } else if (c == '\n') {
                goto size_line_done;
            } else {
                return -400;
            }
            break;
        case CK_SIZE_WS:
            if (c == ';')
                d->state = CK_EXT;
            else if (c == '\r')
                d->state = CK_SIZE_LF;
            else if (c == '\n')
                goto size_line_done;
            else if (c != ' ' && c != '\t')
                return -400;
            break;
        case CK_EXT:
            if (c == '\r')
                d->state = CK_SIZE_LF;
            else if (c == '\n')
                goto size_line_done;
            else if (!is_value_char(c))
                return -400;
            break;
        case CK_SIZE_LF:
            if (c != '\n')
                return -400; /* bare CR */
            goto size_line_done;
        case CK_DATA_CR:
            if (c == '\r')
                d->state = CK_DATA_LF;
            else if (c == '\n')
                d->state = CK_SIZE0;
            else
                return -400;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                return -400;
            d->state = CK_SIZE0;
            break;
        case CK_TRAILER0:
            if (c == '\r') {
                d->state = CK_END_LF;
            } else if (c == '\n') {
                d->state = CK_DONE;
            } else if (!tchar[c]) {
                return -400; /* obs-fold, a control byte, or no field name */
            } else {
                d->state = CK_TRAILER_NAME;
            }
            break;
        case CK_TRAILER_NAME:
            if (c == ':')
                d->state = CK_TRAILER;
            else if (!tchar[c])
                return -400; /* a line that is no field (no ':' after a token) */
            break;
        case CK_TRAILER:
            if (c == '\r')
                d->state = CK_TRAILER_LF;
            else if (c == '\n')
                d->state = CK_TRAILER0;
            else if (!is_value_char(c))
                return -400;
            break;
        case CK_TRAILER_LF:
            if (c != '\n')
                return -400;
            d->state = CK_TRAILER0;
            break;
        case CK_END_LF:
            if (c != '\n')
                return -400;
            d->state = CK_DONE;
            break;
        default:
            return -400;
        }
        /* Lines are bounded: a size line by HTTP_MAX_CHUNK_LINE (its line end aside), all
         * trailers together by HTTP_MAX_LINE. */
        if (d->state >= CK_TRAILER0 && d->state <= CK_END_LF) {
            if (++d->line > HTTP_MAX_LINE)
                return -400;
        } else if (d->state >= CK_SIZE && d->state <= CK_EXT && ++d->line > HTTP_MAX_CHUNK_LINE) {
            return -400;
        }
        continue;
    size_line_done:
        d->line = 0;
        if (d->size == 0) {
            d->state = CK_TRAILER0;
        } else {
            d->state = CK_DATA;
        }
    }
    if (d->state == CK_DONE)
        *done = 1;
    return (int64_t)i;
}
