/* weft_tls.h: TLS 1.2/1.3 streams over OpenSSL for weft tasks (libweft_tls, beside libweft and
 * built on its public API only; link weft::weft_tls or pkg-config weft-tls). A stream
 * wraps a connected socket; its handshake, reads, writes and shutdown park the calling task
 * (never the worker thread) and each takes a deadline, honours cancellation and returns
 * >= 0 or a negative errno, like every weft call.
 *
 * How: the SSL object talks to the socket through a BIO of our own whose read and write call
 * weft_read and weft_send, so OpenSSL never sees EAGAIN, never reads errno, and works the
 * same over both backends (on io_uring weft holds a socket's received bytes, which a plain
 * read(2), OpenSSL's socket BIO, would miss). The task parks inside those calls, on its own
 * stack, as it would in any blocking call.
 *
 * Errors: -EKEYREJECTED (the peer's certificate failed verification: untrusted, expired, or
 * not for the name asked), -EPROTO (any other TLS failure: an alert from the peer, no
 * common version or cipher, a malformed record), -ECONNRESET (the peer closed during the
 * handshake), -ENOMEM, and whatever the socket calls return (-ETIMEDOUT, -ECANCELED, -EPIPE,
 * -ECONNRESET, ...). After an error the stream may only be destroyed. weft_tls_errmsg() says
 * in words what failed (OpenSSL's reason, the verification result).
 *
 * A context (certificates, verification settings) is shared by any number of streams, on any
 * worker; a stream belongs to one task at a time (tasks do not move between workers once
 * started, so OpenSSL's per-thread state stays coherent). */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_tls_ctx weft_tls_ctx;
typedef struct weft_tls weft_tls;

/* A server context: the certificate chain (PEM, leaf first) and its private key (PEM).
 * TLS 1.2 and 1.3. Returns 0, -ENOENT/-EACCES (a file cannot be read), -EINVAL (not a
 * certificate or key, or they do not match), -ENOMEM; on failure a reason goes to
 * err[errlen] when err is not NULL. `*out` is freed with weft_tls_ctx_release. Any thread;
 * it reads and parses the files on that thread (milliseconds; the system store of a client
 * context, tens of them), so make contexts before weft_run or accept the pause. */
WEFT_API int weft_tls_ctx_server(weft_tls_ctx **out, const char *cert_file, const char *key_file,
                                 char *err, size_t errlen);

/* A client context: peers are verified against the CA certificates in `ca_file` (PEM), or
 * against the system's store (OpenSSL's default paths) when `ca_file` is NULL. `verify` 0
 * turns verification off (for tests and debugging only: anyone can then impersonate the
 * server). Returns as weft_tls_ctx_server. Any thread. */
WEFT_API int weft_tls_ctx_client(weft_tls_ctx **out, const char *ca_file, int verify, char *err,
                                 size_t errlen);

/* Releases the caller's context; the OpenSSL context under it lives on while streams made
 * from it exist (each holds a reference). NULL is ignored. Any thread. */
WEFT_API void weft_tls_ctx_release(weft_tls_ctx *ctx);

/* A stream over the connected socket `fd` (which stays the caller's: weft_tls_destroy does
 * not close it). On a client context, `server_name` is sent as SNI (unless it is an IP
 * address) and the certificate must be for it (a DNS name, or an IP address in the
 * certificate's SAN); NULL skips the name check. A server context takes NULL (a name there
 * is -EINVAL: a client given the server's context would wait for the peer's hello for ever).
 * Nothing is sent until the handshake. Returns 0, -EINVAL, -ENOMEM. `*out` is freed with
 * weft_tls_destroy. From a task. */
WEFT_API int weft_tls_create(weft_tls **out, weft_tls_ctx *ctx, int fd, const char *server_name);

/* Runs the handshake to its end. Returns 0 or a negative errno (see above). From the task
 * that owns the stream. */
WEFT_API int weft_tls_handshake(weft_tls *t, int64_t deadline);

/* Reads up to len bytes of application data (the handshake first if not done): returns the
 * count (> 0), 0 when the peer closed (close_notify, or the TCP close without it: many
 * clients skip it, and HTTP's framing, not the close, says where a body ends), or -errno.
 * After the handshake, a read that runs out of time (-ETIMEDOUT) or is cancelled
 * (-ECANCELED) while waiting for bytes leaves the stream usable: it may be read again,
 * written to (a server's 408) and shut down. Any other error ends it (later calls: -EPIPE).
 * Note that a body delimited by the close alone (no length, no chunking) cannot be told
 * from one cut short by an attacker who dropped the connection: check its length another
 * way. `buf` is borrowed for the call. From the owning task. */
WEFT_API ssize_t weft_tls_read(weft_tls *t, void *buf, size_t len, int64_t deadline);

/* Writes all len bytes (the handshake first if not done), in records of up to 16 KiB:
 * returns len or -errno (then an unknown prefix was sent). weft_tls_writev writes each
 * buffer in turn. Buffers are borrowed for the call. From the owning task. */
WEFT_API ssize_t weft_tls_write(weft_tls *t, const void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_tls_writev(weft_tls *t, const struct iovec *iov, int iovcnt,
                                 int64_t deadline);

/* Sends close_notify (it does not wait for the peer's). Returns 0 or -errno; -ENOTCONN
 * before a completed handshake, after the peer closed, or after an error. From the owning
 * task. */
WEFT_API int weft_tls_shutdown(weft_tls *t, int64_t deadline);

/* Frees the stream (not its fd). NULL is ignored. Call it from the owning task. */
WEFT_API void weft_tls_destroy(weft_tls *t);

/* Session resumption, for clients: a new connection to the same server that offers a session
 * of an earlier one skips the certificate exchange and the signature (and the server's
 * private-key work). A session is the server's ticket with its keys, opaque and counted. */
typedef struct weft_tls_session weft_tls_session;

/* A copy of the stream's session, to resume later on another connection to the same server;
 * NULL when there is none that can be resumed yet (TLS 1.3 servers send their tickets after
 * the handshake: they have arrived once a response has been read). The caller releases it
 * with weft_tls_session_release; it may be used by streams of any task or worker. From the
 * owning task of `t`. */
WEFT_API weft_tls_session *weft_tls_session_get(const weft_tls *t);

/* Offers `s` in the handshake of a client stream that has not started it (the server may
 * refuse it: then the handshake is a full one). The stream takes its own reference; the
 * caller keeps its own. Returns 0, -EINVAL (a server stream, a started one, or a session of
 * another context's protocol). From the owning task. */
WEFT_API int weft_tls_session_set(weft_tls *t, weft_tls_session *s);

/* Drops the caller's reference. NULL is ignored. Any thread. */
WEFT_API void weft_tls_session_release(weft_tls_session *s);

/* 1 when the stream holds bytes from the peer that no read has returned yet: decrypted data,
 * or records read ahead from the socket (OpenSSL takes all the socket has), so the socket
 * itself may look empty while a read would return at once. A client that keeps connections
 * alive checks it as well as the socket before reusing one: bytes left over from the last
 * response would be read as the next. 0 otherwise, and for NULL. From the owning task. */
WEFT_API int weft_tls_pending(const weft_tls *t);

/* 1 when the handshake resumed an offered session, 0 otherwise. From the owning task. */
WEFT_API int weft_tls_resumed(const weft_tls *t);

/* The last failure in words ("" when none); valid until the next call on the stream (owned
 * by it). From the owning task. */
WEFT_API const char *weft_tls_errmsg(const weft_tls *t);

/* The negotiated protocol ("TLSv1.3") and cipher, once the handshake is done; "" before.
 * Static strings. From the owning task. */
WEFT_API const char *weft_tls_version(const weft_tls *t);
WEFT_API const char *weft_tls_cipher(const weft_tls *t);

#ifdef __cplusplus
}
#endif

#endif
