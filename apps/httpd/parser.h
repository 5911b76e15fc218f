/* parser.h: weft-httpd's HTTP/1.x request-head parser. Hand-written, incremental and
 * zero-copy: the caller keeps the request's bytes in one buffer and calls http_parse() again
 * with the same buffer (more bytes appended) until it returns the head's length; every view
 * in the result points into that buffer. The result does not depend on how the bytes were
 * split between calls: the parser decides on whole lines only (a partial line is looked at
 * only once it is longer than its limit), so a request cut at any byte parses the same.
 *
 * Strictness follows nginx point by point, except where docs/httpd.md says otherwise: methods
 * are [A-Z_-]+, the target is origin-form or absolute-form (http/https) with no control byte
 * or space, the version is HTTP/1.x (2 and up: 505; 0: 400), header names are tokens with no
 * space before the colon, values hold no control byte but HTAB, obs-fold is refused, bare LF
 * ends a line like CRLF (bare CR is refused), Content-Length is one run of digits (a
 * duplicate is refused), Transfer-Encoding may only be "chunked" (else 501) and not with
 * Content-Length, and HTTP/1.1 needs exactly one Host, whose value
 * must be uri-host [":" port] (RFC 9112 3.2; 400 otherwise). The parser only reads the buffer and
 * allocates nothing; one http_parser per connection, used by one thread. */
#ifndef WEFT_HTTPD_PARSER_H
#define WEFT_HTTPD_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* Limits (nginx: large_client_header_buffers 4 8k). A request line longer than this is 414,
 * a header line longer than HTTP_MAX_LINE 431, and so are more than HTTP_MAX_HEADERS
 * fields. The whole head is bounded by the caller's buffer (its length). */
#define HTTP_MAX_LINE    8192
#define HTTP_MAX_HEADERS 100

/* A view into the caller's buffer: `len` bytes at `p` (not NUL-terminated). */
typedef struct http_view {
    const char *p;
    size_t len;
} http_view;

typedef struct http_header {
    http_view name;  /* a token, as sent (compare case-insensitively) */
    http_view value; /* without leading and trailing spaces and tabs */
} http_header;

enum {
    HTTP_M_OTHER = 0, /* any other token of [A-Z_-] */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
    HTTP_M_CONNECT,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

/* The parsed head. Views stay valid while the caller's buffer holds the bytes unmoved. */
typedef struct http_request {
    int method;             /* HTTP_M_* (set once the method's token ends: also for a
                             * request refused later in its line or its headers) */
    http_view method_name;  /* as sent */
    http_view target;       /* as sent: origin-form or absolute-form */
    http_view path;         /* the target's path, absolute-form's scheme and authority cut */
    http_view query;        /* after '?' (len 0 and p NULL when there is none) */
    int version_minor;      /* 0 or 1 (HTTP/1.2 and later minors read as 1) */
    http_view request_line; /* the whole first line, without its line end (for the log) */
    unsigned nheaders;
    http_header headers[HTTP_MAX_HEADERS];
    /* Derived from the headers, for the server. */
    int64_t content_length; /* -1: none */
    int chunked;            /* Transfer-Encoding: chunked */
    int keep_alive;         /* after the response: 1.1 unless "close", 1.0 only with
                             * "keep-alive" */
    int conn_close;         /* a "close" token was seen: no "keep-alive" undoes it */
    http_view host;         /* Host field (len 0 when absent) */
} http_request;

/* Parser state: all offsets are from the start of the caller's buffer. */
typedef struct http_parser {
    size_t line; /* where the line being parsed begins */
    size_t scan; /* bytes before this offset (from `line`) hold no LF */
    int state;   /* private: which line comes next */
    int host_seen;
    int cl_seen;
    int te_seen;
    http_request req;
} http_parser;

/* Resets `p` for a new request whose bytes start at the beginning of the buffer. */
void http_parser_init(http_parser *p);

/* Parses as far as buf[0 .. len) allows. `buf` must be the same buffer each call of one
 * request, holding the bytes of the earlier calls unchanged at the same place.
 * Returns the length of the head (request line, headers and the empty line: what precedes
 * the body or the next pipelined request) once complete, with p->req filled; 0 when more
 * bytes are needed; or -status for a request that must be refused: -400, -414 (request line
 * over HTTP_MAX_LINE), -431 (header line over HTTP_MAX_LINE, or too many headers), -501
 * (Transfer-Encoding other than chunked), -505 (HTTP major version 2 or more). When 0 is
 * returned for a head that fills the caller's whole buffer, the caller answers 431.
 * After a return other than 0 the parser must be reset with http_parser_init. */
int http_parse(http_parser *p, const char *buf, size_t len);

/* A chunked request body (RFC 9112 7.1), decoded byte by byte: like the head parser, the
 * outcome depends on the bytes only, never on how they were split. The data is counted, not
 * kept (weft-httpd drops request bodies). Limits: a chunk-size line (size and extensions)
 * of HTTP_MAX_CHUNK_LINE bytes, a trailer section of HTTP_MAX_LINE bytes (both 400 past
 * it), and the caller's limit on the data (413 as soon as a chunk size says it would pass). */
#define HTTP_MAX_CHUNK_LINE 4096

typedef struct http_chunked {
    int state;     /* private: where in the chunk grammar the next byte falls */
    uint64_t size; /* the chunk size being read, then the data bytes left in the chunk */
    size_t line;   /* bytes of the current size line, or of the trailer section */
    int64_t total; /* data bytes so far */
} http_chunked;

void http_chunked_init(http_chunked *d);

/* Decodes buf[0 .. len), the next bytes of the body. Returns how many it consumed: all of
 * them, or fewer when the body ended inside (the rest belongs to the next request), with
 * *done set to 1 at the end of the body (after the last chunk and the trailers); or -400 for
 * a malformed body, -413 when the data would pass `limit` bytes. After a negative return
 * the decoder is spent (reset it with http_chunked_init). */
int64_t http_chunked_feed(http_chunked *d, const char *buf, size_t len, int64_t limit, int *done);

/* Case-insensitive comparison of a view with a NUL-terminated lower-case ASCII string. */
int http_view_eq(http_view v, const char *lower);

/* The first header named `lower_name` (a lower-case string), or NULL. */
const http_header *http_find_header(const http_request *r, const char *lower_name);

#endif
