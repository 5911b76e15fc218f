/* httpc.h: a small HTTP/1.1 client on weft's public API: requests with a deadline on the
 * whole exchange, a keep-alive connection pool per host:port with a size limit, response
 * bodies (Content-Length, chunked, or up to the close) streamed to the caller, names
 * resolved through weft_resolve. A pool belongs to the worker that created it: its tasks may
 * share it (it parks them when every connection is busy); other workers make their own. */
#ifndef WEFT_HTTPC_H
#define WEFT_HTTPC_H

#include <stddef.h>
#include <stdint.h>

typedef struct httpc_pool httpc_pool;
struct weft_tls_ctx; /* weft_tls.h */

/* Creates a pool for http://host:port with at most `max_conns` connections (busy and idle
 * together). Resolution happens at the first request. Returns 0, -EINVAL, -ENOMEM. `*out` is
 * freed with httpc_pool_destroy. From a task of the worker that will use it. */
int httpc_pool_create(httpc_pool **out, const char *host, int port, unsigned max_conns);

/* Makes the pool's connections https: each new connection runs a TLS handshake with the
 * pool's host as SNI and as the name its certificate must carry (verified against what the
 * client context trusts). `ctx` (weft_tls_ctx_client) is borrowed and must outlive the
 * pool. Call it before the first request. Returns 0, -EINVAL, -ENOTSUP (built without
 * OpenSSL). A failed handshake fails the request with weft_tls's code (-EKEYREJECTED for a
 * certificate that does not verify); httpc_pool_tls_error says why in words. The pool keeps
 * the latest session its connections received and offers it on new ones (resumption: no
 * certificate exchange, no signature), falling back to a full handshake when refused. */
int httpc_pool_set_tls(httpc_pool *p, struct weft_tls_ctx *ctx);
const char *httpc_pool_tls_error(const httpc_pool *p);

/* Closes the idle connections and frees the pool; no request may be in flight. */
void httpc_pool_destroy(httpc_pool *p);

/* Receives the body as it arrives; returns 0 to go on, < 0 to abort the request (the
 * connection is then closed, and httpc_request returns that value). */
typedef int (*httpc_body_fn)(void *arg, const char *data, size_t len);

typedef struct httpc_response {
    int status;             /* 100..599 */
    int64_t content_length; /* the header's value, -1 when absent */
    int chunked;            /* the body came chunked */
    int64_t body_bytes;     /* body bytes handed to on_body */
    int reused;             /* the request went over a pooled (kept-alive) connection */
    int tls_resumed;        /* a new https connection resumed the pool's last TLS session */
} httpc_response;

/* Sends `method path` (with `extra_headers`: NULL or lines each ending in CRLF, and `body` of
 * `body_len` bytes when not NULL) and reads the response, streaming its body to on_body (may
 * be NULL: the body is read and dropped). Everything must finish by `deadline` (absolute,
 * weft_now's clock; WEFT_FOREVER). A kept-alive connection the server closed meanwhile is
 * retried once on a fresh one for GET and HEAD.
 * Returns 0 with *resp filled, or -errno: -ETIMEDOUT, -ECANCELED, -ECONNREFUSED, ...,
 * -EPROTO (a malformed response), -EMSGSIZE (a response head over 16 KiB), or on_body's
 * negative value. From a task of the pool's worker. */
int httpc_request(httpc_pool *p, const char *method, const char *path, const char *extra_headers,
                  const void *body, size_t body_len, httpc_body_fn on_body, void *arg,
                  httpc_response *resp, int64_t deadline);

#endif
