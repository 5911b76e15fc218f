/* tls.c: libweft_tls, see weft_tls.h. One SSL object per stream, joined to its socket by a BIO
 * whose read and write are weft_read and weft_send with the deadline of the call in progress: the
 * task parks inside OpenSSL, on its own stack, and OpenSSL sees either bytes or a failure, never a
 * "retry". The socket error that ended an operation is kept in the stream (io_err), so it is
 * returned as is (-ETIMEDOUT, -ECANCELED) instead of OpenSSL's vaguer verdict. */
#include <weft_tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <weft.h>

struct weft_tls_ctx {
    SSL_CTX *ssl;
};

struct weft_tls {
    SSL *ssl;
    int fd;
    int64_t deadline; /* of the call in progress, for the BIO's socket calls */
    int io_err;       /* the socket call that failed in the current call, or 0 */
    int eof;          /* the socket read returned 0 */
    int failed;       /* an error ended the stream: only destroy is left */
    int closed;       /* the peer closed: reads return 0 */
    char err[200];
};

/* The BIO method, made once per process; read-only afterwards, so any thread may use it. */
static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* A socket call may park the task, and the worker then runs its other tasks on this thread:
 * OpenSSL's error queue is the thread's, and errors they leave there would read as this
 * stream's (SSL_get_error looks at the queue first: a clean close or a timeout taken for a
 * failure). So what is queued when the call parks is kept and what came during it dropped:
 * a mark on the newest entry, popped to afterwards (no entry: nothing to keep, all cleared). */
static int park_begin(void)
{
    return ERR_set_mark();
}

static void park_end(int marked)
{
    if (marked)
        ERR_pop_to_mark();
    else
        ERR_clear_error();
}

static int bio_write(BIO *b, const char *buf, size_t len, size_t *written)
{
    weft_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int marked = park_begin();
    ssize_t n = weft_send(t->fd, buf, len, 0, t->deadline);
    park_end(marked);
    if (n < 0) {
        t->io_err = (int)n;
        return 0;
    }
    *written = (size_t)n;
    return 1;
}

static int bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
    weft_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int marked = park_begin();
    ssize_t n = weft_read(t->fd, buf, len, t->deadline);
    park_end(marked);
    if (n < 0) {
        t->io_err = (int)n;
        /* The wait ended, not the socket: OpenSSL is told to retry (SSL_ERROR_WANT_READ), so
         * its state stays whole and the stream usable (weft_tls_read's timeout). */
        if (n == -ETIMEDOUT || n == -ECANCELED)
            BIO_set_retry_read(b);
        return 0;
    }
    if (n == 0) {
        t->eof = 1;
        return 0;
    }
    *got = (size_t)n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    weft_tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* every write went out at once */
        return 1;
    case BIO_CTRL_EOF:
        return t ? t->eof : 0;
    default: /* no pending counts, no kTLS, no close flag: the fd is the caller's */
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft socket");
    if (m && BIO_meth_set_write_ex(m, bio_write) && BIO_meth_set_read_ex(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create) &&
        BIO_meth_set_destroy(m, bio_destroy))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* OpenSSL's first queued error in words, after `what`. */
static void ssl_reason(char *err, size_t errlen, const char *what)
{
    if (!err || errlen == 0)
        return;
    char reason[160];
    unsigned long code = ERR_peek_error();
    if (code)
        ERR_error_string_n(code, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "no details");
    snprintf(err, errlen, "%s: %s", what, reason);
}

/* A file OpenSSL is about to load: its absence said as -errno rather than a parse error. */
static int readable(const char *file, char *err, size_t errlen)
{
    if (access(file, R_OK) == 0)
        return 0;
    int e = errno; /* the conversion point: right after the call */
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", file, strerror(e));
    return -e;
}

static int ctx_new(weft_tls_ctx **out, int server, SSL_CTX **ssl)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    weft_tls_ctx *c = malloc(sizeof *c);
    *ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c || !*ssl) {
        free(c);
        SSL_CTX_free(*ssl);
        return -ENOMEM;
    }
    c->ssl = *ssl;
    SSL_CTX_set_min_proto_version(*ssl, TLS1_2_VERSION);
    /* A TCP close without close_notify reads as the end (weft_tls_read returns 0): most
     * HTTP clients close so, and HTTP's own framing protects its bodies. */
    SSL_CTX_set_options(*ssl, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* An idle connection gives its record buffers back (about 34 KiB each). */
    SSL_CTX_set_mode(*ssl, SSL_MODE_RELEASE_BUFFERS);
    /* Read what the socket has (up to a record buffer) rather than a record header and then
     * its body: one socket read per record instead of two. */
    SSL_CTX_set_read_ahead(*ssl, 1);
    *out = c;
    return 0;
}

int weft_tls_ctx_server(weft_tls_ctx **out, const char *cert_file, const char *key_file, char *err,
                        size_t errlen)
{
    if (!cert_file || !key_file)
        return -EINVAL;
    int r = readable(cert_file, err, errlen);
    if (r == 0)
        r = readable(key_file, err, errlen);
    if (r < 0)
        return r;
    SSL_CTX *ssl;
    if ((r = ctx_new(out, 1, &ssl)) < 0)
        return r;
    /* The chain sent is the file's, as given: without this OpenSSL rebuilds it from the
     * store at every handshake (a third of a handshake's CPU, measured with bench/run_http.sh;
     * nginx sets it too). */
    SSL_CTX_set_mode(ssl, SSL_MODE_NO_AUTO_CHAIN);
    ERR_clear_error();
    const char *what = NULL;
    if (SSL_CTX_use_certificate_chain_file(ssl, cert_file) != 1)
        what = cert_file;
    else if (SSL_CTX_use_PrivateKey_file(ssl, key_file, SSL_FILETYPE_PEM) != 1)
        what = key_file;
    else if (SSL_CTX_check_private_key(ssl) != 1)
        what = "the key does not match the certificate";
    if (what) {
        ssl_reason(err, errlen, what);
        ERR_clear_error();
        weft_tls_ctx_release(*out);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

int weft_tls_ctx_client(weft_tls_ctx **out, const char *ca_file, int verify, char *err,
                        size_t errlen)
{
    int r = ca_file ? readable(ca_file, err, errlen) : 0;
    if (r < 0)
        return r;
    SSL_CTX *ssl;
    if ((r = ctx_new(out, 0, &ssl)) < 0)
        return r;
    ERR_clear_error();
    int ok = ca_file ? SSL_CTX_load_verify_locations(ssl, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ssl);
    if (ok != 1) {
        ssl_reason(err, errlen, ca_file ? ca_file : "the system's certificate store");
        ERR_clear_error();
        weft_tls_ctx_release(*out);
        *out = NULL;
        return -EINVAL;
    }
    SSL_CTX_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return 0;
}

void weft_tls_ctx_release(weft_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl); /* each SSL holds its own reference to the SSL_CTX */
    free(ctx);
}

int weft_tls_create(weft_tls **out, weft_tls_ctx *ctx, int fd, const char *server_name)
{
    if (!out || !ctx || fd < 0)
        return -EINVAL;
    *out = NULL;
    /* A name to verify is a client's: with a server context the stream would wait for a
     * ClientHello from a peer that waits for one too (an https client given the server's
     * context), until the deadline or for ever. */
    if (server_name && SSL_CTX_get_ssl_method(ctx->ssl) == TLS_server_method())
        return -EINVAL;
    pthread_once(&bio_once, make_bio_method);
    if (!bio_method)
        return -ENOMEM;
    weft_tls *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->fd = fd;
    t->ssl = SSL_new(ctx->ssl);
    BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        SSL_free(t->ssl);
        free(t);
        return -ENOMEM;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b); /* the SSL takes the one reference */
    if (SSL_is_server(t->ssl)) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (server_name) {
            unsigned char ip[16];
            int is_ip = inet_pton(AF_INET, server_name, ip) == 1 ||
                        inet_pton(AF_INET6, server_name, ip) == 1;
            /* SNI carries host names only (RFC 6066 3); an address is checked against the
             * certificate's IP SAN entries. */
            int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name)
                           : SSL_set_tlsext_host_name(t->ssl, server_name) &&
                                 SSL_set1_host(t->ssl, server_name);
            if (!ok) {
                weft_tls_destroy(t);
                ERR_clear_error();
                return -EINVAL;
            }
        }
    }
    *out = t;
    return 0;
}

/* The verdict on an OpenSSL call that returned `rc` <= 0: 0 for a clean close, else -errno
 * (the stream is then failed). The socket's own error wins: it is the precise one. */
static int failure(weft_tls *t, int rc)
{
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_ZERO_RETURN && !t->io_err)
        return 0;
    int r;
    long vr = SSL_get_verify_result(t->ssl);
    if (t->io_err) {
        r = t->io_err;
        snprintf(t->err, sizeof t->err, "socket: %s", weft_strerror(r));
    } else if (vr != X509_V_OK && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER)) {
        /* Checked on the stream, not the thread's error queue: another task of this thread
         * may have cleared the queue while this one was parked in a socket call. */
        r = -EKEYREJECTED;
        snprintf(t->err, sizeof t->err, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e == SSL_ERROR_SSL) {
        r = -EPROTO;
        ssl_reason(t->err, sizeof t->err, "TLS");
    } else if (t->eof) {
        r = -ECONNRESET;
        snprintf(t->err, sizeof t->err, "the peer closed the connection mid-handshake");
    } else {
        r = -EPROTO;
        snprintf(t->err, sizeof t->err, "TLS: failure %d", e);
    }
    t->failed = 1;
    ERR_clear_error();
    return r;
}

/* Common entry of every call: the stream is usable, the deadline is set, no stale error. */
static int begin(weft_tls *t, int64_t deadline)
{
    if (!t)
        return -EINVAL;
    if (t->failed)
        return -EPIPE;
    t->deadline = deadline;
    t->io_err = 0;
    t->err[0] = '\0';
    ERR_clear_error();
    return 0;
}

int weft_tls_handshake(weft_tls *t, int64_t deadline)
{
    int r = begin(t, deadline);
    if (r < 0)
        return r;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1)
        return 0;
    r = failure(t, rc);
    if (r == 0) { /* the peer's close (or close_notify) in the middle of a handshake */
        t->failed = 1;
        r = -ECONNRESET;
        snprintf(t->err, sizeof t->err, "the peer closed the connection mid-handshake");
    }
    return r;
}

ssize_t weft_tls_read(weft_tls *t, void *buf, size_t len, int64_t deadline)
{
    if (t && t->closed)
        return 0; /* after a clean close, reads keep saying so */
    int r = begin(t, deadline);
    if (r < 0)
        return r;
    if (len == 0)
        return 0;
    size_t got = 0;
    if (SSL_read_ex(t->ssl, buf, len > INT_MAX ? INT_MAX : len, &got) == 1)
        return (ssize_t)got;
    /* Out of time (or cancelled) while waiting for bytes: nothing is lost, the stream stays
     * usable (a server answers 408 over it, then shuts it down). */
    if ((t->io_err == -ETIMEDOUT || t->io_err == -ECANCELED) &&
        SSL_get_error(t->ssl, 0) == SSL_ERROR_WANT_READ && SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        return t->io_err;
    }
    r = failure(t, 0);
    if (r == 0)
        t->closed = 1;
    return r;
}

ssize_t weft_tls_write(weft_tls *t, const void *buf, size_t len, int64_t deadline)
{
    int r = begin(t, deadline);
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < len) {
        size_t step = len - done > INT_MAX ? INT_MAX : len - done;
        size_t n = 0;
        if (SSL_write_ex(t->ssl, (const char *)buf + done, step, &n) != 1) {
            r = failure(t, 0);
            return r < 0 ? r : -EPIPE;
        }
        done += n;
    }
    return (ssize_t)len;
}

ssize_t weft_tls_writev(weft_tls *t, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        ssize_t n = weft_tls_write(t, iov[i].iov_base, iov[i].iov_len, deadline);
        if (n < 0)
            return n;
        total += (size_t)n;
    }
    return (ssize_t)total;
}

int weft_tls_shutdown(weft_tls *t, int64_t deadline)
{
    int r = begin(t, deadline);
    if (r < 0)
        return r == -EPIPE ? -ENOTCONN : r;
    if (!SSL_is_init_finished(t->ssl) || t->closed)
        return -ENOTCONN;
    int rc = SSL_shutdown(t->ssl); /* 0: ours sent, theirs not yet read; 1: both */
    if (rc >= 0)
        return 0;
    r = failure(t, rc);
    return r < 0 ? r : 0;
}

void weft_tls_destroy(weft_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees the BIO too; the fd stays open */
    free(t);
}

/* weft_tls_session is OpenSSL's SSL_SESSION under an opaque name (never defined: only cast). */
weft_tls_session *weft_tls_session_get(const weft_tls *t)
{
    if (!t || t->failed)
        return NULL;
    SSL_SESSION *s = SSL_get0_session(t->ssl);
    /* A copy: OpenSSL marks a connection's own session not resumable when the connection is
     * freed without close_notify (as HTTP clients close), which would spoil the one kept. */
    return s && SSL_SESSION_is_resumable(s) ? (weft_tls_session *)SSL_SESSION_dup(s) : NULL;
}

int weft_tls_session_set(weft_tls *t, weft_tls_session *s)
{
    if (!t || !s || SSL_is_server(t->ssl) || SSL_in_before(t->ssl) != 1)
        return -EINVAL;
    int ok = SSL_set_session(t->ssl, (SSL_SESSION *)s); /* takes its own reference */
    ERR_clear_error();
    return ok == 1 ? 0 : -EINVAL;
}

void weft_tls_session_release(weft_tls_session *s)
{
    SSL_SESSION_free((SSL_SESSION *)s);
}

int weft_tls_pending(const weft_tls *t)
{
    /* SSL_has_pending: decrypted bytes not yet read, and records read ahead (read_ahead is
     * on: OpenSSL takes all that the socket has). */
    return t && SSL_has_pending(t->ssl) == 1;
}

int weft_tls_resumed(const weft_tls *t)
{
    return t && SSL_session_reused(t->ssl) == 1;
}

const char *weft_tls_errmsg(const weft_tls *t)
{
    return t ? t->err : "";
}

const char *weft_tls_version(const weft_tls *t)
{
    return t && SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "";
}

const char *weft_tls_cipher(const weft_tls *t)
{
    const char *c = t && SSL_is_init_finished(t->ssl) ? SSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}
