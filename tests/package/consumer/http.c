/* Uses the installed libweft_http (and libweft_tls when HAVE_WEFT_TLS): a task serves one
 * fixed response on a port of 127.0.0.1 while another fetches it through a pool; then, with
 * TLS, a client context (made before weft_run: loading the system's store takes tens of ms)
 * is given to a second pool. */
#include <stdio.h>
#include <string.h>
#include <weft.h>
#include <weft_http.h>
#ifdef HAVE_WEFT_TLS
#include <weft_tls.h>
#endif

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void *serve_one(void *arg)
{
    int lfd = *(int *)arg;
    char buf[1024];
    int fd = weft_accept(lfd, NULL, NULL, weft_deadline_in(5 * WEFT_SEC));
    if (fd < 0)
        return (void *)1;
    size_t len = 0;
    while (len < sizeof buf - 1) { /* up to the end of the head */
        ssize_t n = weft_read(fd, buf + len, sizeof buf - 1 - len, weft_deadline_in(5 * WEFT_SEC));
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    weft_write(fd, reply, sizeof reply - 1, weft_deadline_in(5 * WEFT_SEC));
    weft_close(fd);
    return NULL;
}

static int collect(void *arg, const char *data, size_t len)
{
    char *body = arg;
    if (strlen(body) + len >= 16)
        return -1;
    strncat(body, data, len);
    return 0;
}

static void *main_task(void *arg)
{
    weft_addr a;
    int lfd;
    if (weft_addr_ip(&a, "127.0.0.1", 0) < 0 || (lfd = weft_listen(&a, 4, 0)) < 0 ||
        weft_addr_local(lfd, &a) < 0)
        return (void *)1;
    weft_task *server;
    if (weft_spawn(&server, serve_one, &lfd, NULL) < 0)
        return (void *)1;
    weft_http_pool *p;
    if (weft_http_pool_create(&p, "127.0.0.1", weft_addr_port(&a), 2) < 0)
        return (void *)1;
    char body[16] = "";
    weft_http_response resp;
    int r = weft_http_get(p, "/", collect, body, &resp, weft_deadline_in(5 * WEFT_SEC));
    weft_http_pool_destroy(p);
    void *served = NULL;
    weft_join(server, &served, WEFT_FOREVER);
    weft_close(lfd);
    if (r < 0 || resp.status != 200 || strcmp(body, "ok") != 0 || served) {
        fprintf(stderr, "http consumer: %s, status %d, body '%s'\n", weft_strerror(r), resp.status,
                body);
        return (void *)1;
    }
#ifdef HAVE_WEFT_TLS
    weft_http_pool *s;
    r = weft_http_pool_create(&s, "localhost", 443, 1);
    if (r == 0)
        r = weft_http_pool_set_tls(s, arg);
    weft_http_pool_destroy(s);
    if (r < 0)
        return (void *)1;
#else
    (void)arg;
#endif
    return NULL;
}

int main(void)
{
    void *ctx = NULL;
#ifdef HAVE_WEFT_TLS
    char err[256];
    if (weft_tls_ctx_client((weft_tls_ctx **)&ctx, NULL, 1, err, sizeof err) < 0) {
        fprintf(stderr, "http consumer: TLS: %s\n", err);
        return 1;
    }
#endif
    void *r = (void *)1;
    int rc = weft_run(NULL, main_task, ctx, &r);
#ifdef HAVE_WEFT_TLS
    weft_tls_ctx_release(ctx);
#endif
    if (rc != 0 || r != NULL)
        return 1;
#ifdef HAVE_WEFT_TLS
    printf("http consumer ok (with TLS)\n");
#else
    printf("http consumer ok (without TLS)\n");
#endif
    return 0;
}
