/* weft_http.h: an HTTP/1.1 client for weft tasks (libweft_http, beside libweft and built on its
 * public API only; link weft::weft_http or pkg-config weft-http). Requests carry a deadline on
 * the whole exchange; a keep-alive connection pool per host:port has a size limit; response
 * bodies (Content-Length, chunked, or up to the close) are streamed to the caller; names are
 * resolved through weft_resolve; https goes through libweft_tls (weft_tls.h) when the library
 * was built with it; 3xx redirects are followed on request (weft_http_pool_set_redirects).
 *
 * A pool belongs to the worker that created it (or, created outside a runtime, to the worker
 * of its first request): its tasks may share it (it parks them when every connection is
 * busy); other workers make their own, and their requests on it are -EPERM (in stealing
 * mode, pin the tasks that share a pool: WEFT_SPAWN_PINNED). Every call returns >= 0 or a
 * negative errno, like every weft call. */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_http_pool weft_http_pool;
struct weft_tls_ctx; /* weft_tls.h */

/* Creates a pool for http://host:port with at most `max_conns` connections (busy and idle
 * together). `host` is a name or an address (IPv6 without brackets), under 256 bytes, with no
 * space, control byte, '/', '?', '#', '@', '[', ']' or a backslash (it goes into the Host line).
 * Resolution happens at the first request. Returns 0, -EINVAL, -ENOMEM. `*out` is
 * freed with weft_http_pool_destroy. From a task of the worker that will use it. */
WEFT_API int weft_http_pool_create(weft_http_pool **out, const char *host, int port,
                                   unsigned max_conns);

/* Makes the pool's connections https: each new connection runs a TLS handshake with the
 * pool's host as SNI and as the name its certificate must carry (verified against what the
 * client context trusts). `ctx` (weft_tls_ctx_client) is borrowed and must outlive the
 * pool. Call it before the first request. Returns 0, -EINVAL (p or ctx NULL, or a request has
 * already started on the pool: its connections are plain), -ENOTSUP (libweft_http built
 * without OpenSSL). A failed handshake fails the request with weft_tls's code
 * (-EKEYREJECTED for a certificate that does not verify); weft_http_pool_tls_error says why
 * in words ("" when the latest request had no failed handshake; a string owned by the pool,
 * valid until its next request). The pool keeps the
 * latest session its connections received and offers it on new ones (resumption: no
 * certificate exchange, no signature), falling back to a full handshake when refused. From
 * the pool's worker. */
WEFT_API int weft_http_pool_set_tls(weft_http_pool *p, struct weft_tls_ctx *ctx);
WEFT_API const char *weft_http_pool_tls_error(const weft_http_pool *p);

/* Follows up to `max` redirects (0, the default: none) for GET and HEAD: a 301, 302, 303, 307
 * or 308 response with a Location header is read to its end and dropped (its body does not
 * reach on_body), and the same method is sent to the Location, within the same deadline.
 * Another path on the same scheme, host and port goes through this pool; another host, port or
 * scheme gets a pool of one connection for that request only (closed after it), over TLS with
 * this pool's context for an https Location (-ENOTSUP from a pool without one), and is sent
 * without the request's extra headers (they may carry credentials for this host only).
 * Other methods get the 3xx response as it is. Returns 0 or -EINVAL. From the pool's worker. */
WEFT_API int weft_http_pool_set_redirects(weft_http_pool *p, unsigned max);

/* Closes the idle connections and frees the pool. Requests of other tasks still running on
 * it go on to their end (their connections are then closed, not kept), and the last of
 * them frees the pool; no new request may start on it. NULL is ignored. From the pool's
 * worker. */
WEFT_API void weft_http_pool_destroy(weft_http_pool *p);

/* Receives the body as it arrives (`data` is borrowed for the call); returns 0 to go on, < 0 to
 * abort the request (the connection is then closed, and the request returns that value). */
typedef int (*weft_http_body_fn)(void *arg, const char *data, size_t len);

/* The longest Location kept in weft_http_response.location, NUL included. */
#define WEFT_HTTP_LOCATION_MAX 1024

typedef struct weft_http_response {
    int status;             /* 100..599 */
    int64_t content_length; /* the header's value, -1 when absent */
    int chunked;            /* the body came chunked */
    int64_t body_bytes;     /* body bytes handed to on_body */
    int reused;             /* the request went over a pooled (kept-alive) connection */
    int tls_resumed;        /* a new https connection resumed the pool's last TLS session */
    unsigned nredirects;    /* redirects followed before this response */
    /* The response's Location header ("" when absent, or longer than the buffer): where a 3xx
     * points when it was not followed. */
    char location[WEFT_HTTP_LOCATION_MAX];
} weft_http_response;

/* Sends `method path` (with `extra_headers`: NULL or lines each ending in CRLF, and `body` of
 * `body_len` bytes when not NULL, with its Content-Length) and reads the response, streaming
 * its body to on_body (may be NULL: the body is read and dropped). Everything, redirects
 * included, must finish by `deadline` (absolute, weft_now's clock; WEFT_FOREVER). A
 * kept-alive connection the server closed meanwhile (it fails before any response byte, or it
 * answers with a 408 that closes it or that comes before the request was all written: the
 * server's idle timeout crossing the request) is retried once on a fresh one for the
 * idempotent methods, GET, HEAD, OPTIONS, PUT, DELETE and TRACE (the body is sent again); a
 * request of another method is not sent twice: it fails with -ECONNRESET (or the send's
 * error), and that 408's body reaches no on_body. A 408 on a fresh connection, or one that
 * keeps the connection, is returned as the response. Over plain HTTP a response that arrives
 * before the whole body was sent (a 413, say, from a server that then closes or stops
 * reading) is returned as the response, and the connection is closed after it (an interim
 * 1xx, such as 100 Continue or 103 Early Hints, does not stop the body: it is skipped as always);
 * over https the body is written whole first (a server that stops reading then ends in -ETIMEDOUT
 * or -EPIPE). All pointers are borrowed for the call. `method` must be a token (RFC 9110: letters,
 * digits, !#$%&'*+-.^_`|~), `path` not empty and free of spaces and control characters, and
 * `extra_headers` whole "Name: value" lines each ending in CRLF with no other CR or LF nor any
 * control byte but a tab, with no Content-Length or Transfer-Encoding (the framing is the
 * library's) and at most one Host: anything else is -EINVAL and nothing is sent (a CR LF there
 * would start a second request). A Host there replaces the pool's host:port in the request (a
 * virtual host), and "Connection: close" there closes the connection after the response, whatever
 * the response says. A followed Location's dot segments are removed (RFC 3986 5.2.4); `path` itself
 * goes out as given. Returns 0 with *resp filled, or -errno: -EINVAL, -EPERM (not from a task of
 * the pool's worker: nothing in a pool is locked; nothing is sent), -ETIMEDOUT, -ECANCELED,
 * -ECONNREFUSED, ...,
 * -EPROTO (a malformed response), -EMSGSIZE (a response head over 16 KiB: the status line,
 * the header lines and the empty line that ends them, line ends included, with every interim
 * 1xx head before it counted in the same 16 KiB; or a chunked body's trailers over 16 KiB of
 * their own, or a chunk-size line longer than 16 KiB), -ENAMETOOLONG (a
 * request head over 2 KiB, or a Location to follow longer than WEFT_HTTP_LOCATION_MAX),
 * -ELOOP (more redirects than the pool allows: *resp holds the last 3xx), -ENOTSUP (an
 * https Location from a plain pool), or on_body's negative value. A header field folded
 * over lines (obs-fold, RFC 9112 5.2) is unfolded, except in the fields the client reads
 * (Content-Length, Transfer-Encoding, Connection, Location): -EPROTO there. A Content-Length
 * that is a list of identical values ("2, 2"), or repeated on several lines with the same
 * value, is taken as that value (RFC 9110 8.6); differing values are -EPROTO. A 2xx to a
 * CONNECT ends at its head, as a 101 does (a tunnel follows, which this client does not
 * carry: the connection is closed). A limit: a body
 * delimited only by the close (no Content-Length, not chunked) that
 * ends early cannot be told from a complete one (over https too: many servers skip
 * close_notify, so its absence is not an error; weft_tls.h), so check such a body's length
 * another way. From a task of the pool's worker. */
WEFT_API int weft_http_request(weft_http_pool *p, const char *method, const char *path,
                               const char *extra_headers, const void *body, size_t body_len,
                               weft_http_body_fn on_body, void *arg, weft_http_response *resp,
                               int64_t deadline);

/* weft_http_request with the method named: GET and HEAD send no body (HEAD's response has
 * none either); POST and PUT send `body_len` bytes of `body` (which may be NULL only when
 * body_len is 0) with `content_type` as its Content-Type (NULL: none). Return as
 * weft_http_request. From a task of the pool's worker. */
WEFT_API int weft_http_get(weft_http_pool *p, const char *path, weft_http_body_fn on_body,
                           void *arg, weft_http_response *resp, int64_t deadline);
WEFT_API int weft_http_head(weft_http_pool *p, const char *path, weft_http_response *resp,
                            int64_t deadline);
WEFT_API int weft_http_post(weft_http_pool *p, const char *path, const char *content_type,
                            const void *body, size_t body_len, weft_http_body_fn on_body, void *arg,
                            weft_http_response *resp, int64_t deadline);
WEFT_API int weft_http_put(weft_http_pool *p, const char *path, const char *content_type,
                           const void *body, size_t body_len, weft_http_body_fn on_body, void *arg,
                           weft_http_response *resp, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
