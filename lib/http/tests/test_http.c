/* test_http.c: the weft_http client against small HTTP/1.1 servers in the same runtime (one
 * worker; the backend from WEFT_BACKEND: CTest runs the file on both). Checked: Content-Length,
 * chunked and HEAD responses; keep-alive reuse and the pool's connection limit; POST and PUT
 * with their bodies and Content-Type; redirects: off by default, followed on the same host
 * (absolute and relative Locations), to another host (without the extra headers), up to the
 * limit (-ELOOP), not for POST, not to https from a plain pool, and a Location too long to
 * keep; the deadline of a request that gets no answer; argument errors and a refused
 * connection. No time is asserted. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>
#include <weft_http.h>

/* Plenty for a request that should answer at once; the tests never wait it out. */
#define LONG_DEADLINE (10 * WEFT_SEC)

typedef struct server {
    int fd;
    int port;
    int other_port; /* the other server's, for the cross-host redirects */
    weft_task *accepter;
    int nconns; /* connections accepted (one worker: plain fields) */
} server;

typedef struct request {
    char method[16];
    char path[2048];
    long content_length;
    char content_type[64];
    int has_secret; /* an X-Secret header came */
} request;

static int send_all(int fd, const char *s, size_t n)
{
    return weft_write(fd, s, n, weft_deadline_in(LONG_DEADLINE)) == (ssize_t)n ? 0 : -1;
}

static int head_only; /* the request being answered is a HEAD: no body (one worker) */

static int respond(int fd, int status, const char *extra, const char *body)
{
    char head[4096];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status,
                     strlen(body), extra ? extra : "");
    if (send_all(fd, head, (size_t)n) < 0)
        return -1;
    return head_only ? 0 : send_all(fd, body, strlen(body));
}

/* Answers one request by its path; -1 ends the connection. */
static int answer(server *s, int fd, const request *rq, const char *body)
{
    char hdr[2048], text[256];
    const char *p = rq->path;
    head_only = strcmp(rq->method, "HEAD") == 0;
    if (strcmp(p, "/small") == 0 || strcmp(p, "/small?x") == 0)
        return respond(fd, 200, "Content-Type: text/plain\r\n", "hello");
    if (strcmp(p, "/chunked") == 0) {
        const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3;ext\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n";
        return send_all(fd, r, strlen(r));
    }
    if (strcmp(p, "/echo") == 0) {
        snprintf(text, sizeof text, "%s %ld %s %.*s", rq->method, rq->content_length,
                 rq->content_type[0] ? rq->content_type : "-", (int)rq->content_length, body);
        return respond(fd, 200, NULL, text);
    }
    if (strncmp(p, "/r/", 3) == 0) {
        int left = atoi(p + 3);
        if (left == 0)
            return respond(fd, 200, NULL, "done");
        snprintf(hdr, sizeof hdr, "Location: /r/%d\r\n", left - 1);
        return respond(fd, left % 2 ? 302 : 301, hdr, "a redirect's body");
    }
    if (strcmp(p, "/rel/a") == 0)
        return respond(fd, 303, "Location: b#frag\r\n", "");
    if (strcmp(p, "/rel/b") == 0)
        return respond(fd, 200, NULL, "rel-b");
    if (strcmp(p, "/to-other") == 0) {
        snprintf(hdr, sizeof hdr, "Location: http://127.0.0.1:%d/secret\r\n", s->other_port);
        return respond(fd, 307, hdr, "");
    }
    if (strcmp(p, "/to-secret") == 0)
        return respond(fd, 308, "Location: /secret\r\n", "");
    if (strcmp(p, "/secret") == 0)
        return respond(fd, 200, NULL, rq->has_secret ? "yes" : "no");
    if (strcmp(p, "/loop") == 0)
        return respond(fd, 302, "Location: /loop\r\n", "");
    if (strcmp(p, "/https") == 0)
        return respond(fd, 302, "Location: https://127.0.0.1:1/\r\n", "");
    if (strcmp(p, "/nolocation") == 0)
        return respond(fd, 302, NULL, "stay");
    if (strcmp(p, "/long") == 0) {
        int n = snprintf(hdr, sizeof hdr, "Location: /");
        memset(hdr + n, 'x', 1100);
        memcpy(hdr + n + 1100, "\r\n", 3);
        return respond(fd, 302, hdr, "");
    }
    if (strcmp(p, "/slow") == 0) {
        char c; /* no answer: wait for the client to give up and close */
        weft_read(fd, &c, 1, WEFT_FOREVER);
        return -1;
    }
    return respond(fd, 404, NULL, "not found");
}

/* Reads one request head (and its body into body[]); 0, or -1 at the end of the connection. */
static int read_request(int fd, char *buf, size_t cap, request *rq, char *body, size_t bodycap)
{
    size_t len = 0;
    char *end;
    for (;;) {
        buf[len] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL)
            break;
        ssize_t n = weft_read(fd, buf + len, cap - 1 - len, weft_deadline_in(LONG_DEADLINE));
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    memset(rq, 0, sizeof *rq);
    if (sscanf(buf, "%15s %2047s", rq->method, rq->path) != 2)
        return -1;
    for (char *l = strstr(buf, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            rq->content_length = atol(l + 15);
        else if (strncasecmp(l, "Content-Type: ", 14) == 0)
            sscanf(l + 14, "%63[^\r]", rq->content_type);
        else if (strncasecmp(l, "X-Secret:", 9) == 0)
            rq->has_secret = 1;
    }
    size_t have = len - (size_t)(end + 4 - buf);
    cr_assert_leq(rq->content_length, (long)bodycap - 1);
    memcpy(body, end + 4, have);
    while ((long)have < rq->content_length) {
        ssize_t n = weft_read(fd, body + have, (size_t)rq->content_length - have,
                              weft_deadline_in(LONG_DEADLINE));
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    body[rq->content_length] = '\0';
    return 0;
}

typedef struct conn_arg {
    server *s;
    int fd;
} conn_arg;

static void *serve_conn(void *arg)
{
    conn_arg ca = *(conn_arg *)arg;
    free(arg);
    char *buf = malloc(8192), *body = malloc(4096);
    request rq;
    while (buf && body && read_request(ca.fd, buf, 8192, &rq, body, 4096) == 0 &&
           answer(ca.s, ca.fd, &rq, body) == 0)
        ;
    free(buf);
    free(body);
    weft_close(ca.fd);
    return NULL;
}

static void *accept_loop(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = weft_accept(s->fd, NULL, NULL, WEFT_FOREVER);
        if (fd < 0)
            break; /* cancelled at shutdown */
        s->nconns++;
        conn_arg *ca = malloc(sizeof *ca);
        cr_assert_not_null(ca);
        *ca = (conn_arg){s, fd};
        weft_task *t;
        cr_assert_eq(weft_spawn(&t, serve_conn, ca, NULL), 0);
        weft_detach(t);
    }
    weft_close(s->fd);
    return NULL;
}

static void server_start(server *s)
{
    memset(s, 0, sizeof *s);
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    s->fd = weft_listen(&a, 64, 0);
    cr_assert_geq(s->fd, 0, "listen: %s", weft_strerror(s->fd));
    cr_assert_eq(weft_addr_local(s->fd, &a), 0);
    s->port = weft_addr_port(&a);
    cr_assert_eq(weft_spawn(&s->accepter, accept_loop, s, NULL), 0);
    weft_detach(s->accepter);
}

/* A body collected into a buffer. */
typedef struct sink {
    char data[256];
    size_t len;
} sink;

static int collect(void *arg, const char *data, size_t len)
{
    sink *k = arg;
    if (k->len + len >= sizeof k->data)
        return -EFBIG;
    memcpy(k->data + k->len, data, len);
    k->len += len;
    k->data[k->len] = '\0';
    return 0;
}

/* Runs fn in a runtime of one worker (a pool belongs to its worker) with a server up. */
static void run(void *(*fn)(void *))
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    void *result = (void *)1;
    int r = weft_run(&cfg, fn, NULL, &result);
    cr_assert_eq(r, 0, "weft_run: %s", weft_strerror(r));
    cr_assert_null(result);
}

static weft_http_pool *pool_for(const server *s, unsigned max)
{
    weft_http_pool *p;
    cr_assert_eq(weft_http_pool_create(&p, "127.0.0.1", s->port, max), 0);
    return p;
}

TestSuite(weft_http, .timeout = 60);

static void *t_get(void *arg)
{
    (void)arg;
    server s;
    server_start(&s);
    weft_http_pool *p = pool_for(&s, 4);
    weft_http_response resp;
    for (int i = 0; i < 3; i++) {
        sink k = {0};
        int r = weft_http_get(p, "/small", collect, &k, &resp, weft_deadline_in(LONG_DEADLINE));
        cr_assert_eq(r, 0, "get: %s", weft_strerror(r));
        cr_assert_eq(resp.status, 200);
        cr_assert_eq(resp.content_length, 5);
        cr_assert_eq(resp.body_bytes, 5);
        cr_assert_str_eq(k.data, "hello");
        cr_assert_eq(resp.reused, i > 0);
        cr_assert_eq(resp.nredirects, 0);
    }
    sink k = {0};
    cr_assert_eq(weft_http_get(p, "/chunked", collect, &k, &resp, weft_deadline_in(LONG_DEADLINE)),
                 0);
    cr_assert(resp.chunked);
    cr_assert_str_eq(k.data, "hello");
    cr_assert_eq(weft_http_head(p, "/small", &resp, weft_deadline_in(LONG_DEADLINE)), 0);
    cr_assert_eq(resp.status, 200);
    cr_assert_eq(resp.content_length, 5);
    cr_assert_eq(resp.body_bytes, 0);
    cr_assert_eq(weft_http_get(p, "/nope", NULL, NULL, &resp, weft_deadline_in(LONG_DEADLINE)), 0);
    cr_assert_eq(resp.status, 404);
    cr_assert_eq(s.nconns, 1, "every request over one kept-alive connection");
    weft_http_pool_destroy(p);
    return NULL;
}

Test(weft_http, get_head_chunked_keepalive)
{
    run(t_get);
}

typedef struct many {
    weft_http_pool *p;
    int nok;
} many;

static void *client(void *arg)
{
    many *m = arg;
    for (int i = 0; i < 5; i++) {
        weft_http_response resp;
        if (weft_http_get(m->p, "/small", NULL, NULL, &resp, weft_deadline_in(LONG_DEADLINE)) ==
                0 &&
            resp.status == 200)
            m->nok++;
    }
    return NULL;
}

static void *t_limit(void *arg)
{
    (void)arg;
    server s;
    server_start(&s);
    many m = {pool_for(&s, 2), 0};
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&t[i], client, &m, NULL), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    cr_assert_eq(m.nok, 40);
    cr_assert_leq(s.nconns, 2, "the pool's limit: %d connections", s.nconns);
    weft_http_pool_destroy(m.p);
    return NULL;
}

Test(weft_http, pool_limit)
{
    run(t_limit);
}

static void *t_post(void *arg)
{
    (void)arg;
    server s;
    server_start(&s);
    weft_http_pool *p = pool_for(&s, 1);
    weft_http_response resp;
    sink k = {0};
    int r = weft_http_post(p, "/echo", "text/plain", "hello world", 11, collect, &k, &resp,
                           weft_deadline_in(LONG_DEADLINE));
    cr_assert_eq(r, 0, "post: %s", weft_strerror(r));
    cr_assert_str_eq(k.data, "POST 11 text/plain hello world");
    k.len = 0;
    cr_assert_eq(weft_http_put(p, "/echo", NULL, "abc", 3, collect, &k, &resp,
                               weft_deadline_in(LONG_DEADLINE)),
                 0);
    cr_assert_str_eq(k.data, "PUT 3 - abc");
    k.len = 0;
    cr_assert_eq(weft_http_post(p, "/echo", NULL, NULL, 0, collect, &k, &resp,
                                weft_deadline_in(LONG_DEADLINE)),
                 0);
    cr_assert_str_eq(k.data, "POST 0 - ");
    cr_assert_eq(weft_http_post(p, "/echo", NULL, NULL, 3, NULL, NULL, &resp, WEFT_FOREVER),
                 -EINVAL);
    cr_assert_eq(
        weft_http_post(p, "/echo", "a\r\nX-Evil: 1", "", 0, NULL, NULL, &resp, WEFT_FOREVER),
        -EINVAL);
    weft_http_pool_destroy(p);
    return NULL;
}

Test(weft_http, post_put)
{
    run(t_post);
}

static void *t_redirects(void *arg)
{
    (void)arg;
    server s, other;
    server_start(&s);
    server_start(&other);
    s.other_port = other.port;
    weft_http_pool *p = pool_for(&s, 2);
    weft_http_response resp;
    int64_t dl = weft_deadline_in(LONG_DEADLINE);
    sink k = {0};

    /* Off by default: the 3xx is the answer, with its Location and body. */
    cr_assert_eq(weft_http_get(p, "/r/2", collect, &k, &resp, dl), 0);
    cr_assert_eq(resp.status, 301);
    cr_assert_str_eq(resp.location, "/r/1");
    cr_assert_str_eq(k.data, "a redirect's body");
    cr_assert_eq(resp.nredirects, 0);

    /* Same host, absolute paths: only the last body reaches on_body. */
    cr_assert_eq(weft_http_pool_set_redirects(p, 5), 0);
    k.len = 0;
    cr_assert_eq(weft_http_get(p, "/r/3", collect, &k, &resp, dl), 0);
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(k.data, "done");
    cr_assert_eq(resp.nredirects, 3);
    cr_assert_eq(resp.body_bytes, 4);
    cr_assert_str_eq(resp.location, "");

    /* A relative Location (with a fragment), resolved against the request's path. */
    k.len = 0;
    cr_assert_eq(weft_http_get(p, "/rel/a", collect, &k, &resp, dl), 0);
    cr_assert_str_eq(k.data, "rel-b");
    cr_assert_eq(resp.nredirects, 1);

    /* HEAD follows too. */
    cr_assert_eq(weft_http_head(p, "/r/1", &resp, dl), 0);
    cr_assert_eq(resp.status, 200);
    cr_assert_eq(resp.nredirects, 1);

    /* The extra headers go to the same host, not to another one. */
    k.len = 0;
    cr_assert_eq(weft_http_request(p, "GET", "/to-secret", "X-Secret: 1\r\n", NULL, 0, collect, &k,
                                   &resp, dl),
                 0);
    cr_assert_str_eq(k.data, "yes");
    k.len = 0;
    cr_assert_eq(weft_http_request(p, "GET", "/to-other", "X-Secret: 1\r\n", NULL, 0, collect, &k,
                                   &resp, dl),
                 0);
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(k.data, "no");
    cr_assert_eq(resp.nredirects, 1);
    cr_assert_eq(other.nconns, 1);

    /* The limit. */
    cr_assert_eq(weft_http_pool_set_redirects(p, 3), 0);
    cr_assert_eq(weft_http_get(p, "/loop", NULL, NULL, &resp, dl), -ELOOP);
    cr_assert_eq(resp.status, 302);
    cr_assert_eq(resp.nredirects, 3);
    cr_assert_str_eq(resp.location, "/loop");

    /* POST gets the 3xx as it is; a 3xx without a Location is the answer. */
    cr_assert_eq(weft_http_post(p, "/r/1", NULL, "x", 1, NULL, NULL, &resp, dl), 0);
    cr_assert_eq(resp.status, 302);
    k.len = 0;
    cr_assert_eq(weft_http_get(p, "/nolocation", collect, &k, &resp, dl), 0);
    cr_assert_eq(resp.status, 302);
    cr_assert_str_eq(k.data, "stay");

    /* https from a plain pool; a Location too long to keep (it is not kept when not followed
     * either). */
    cr_assert_eq(weft_http_get(p, "/https", NULL, NULL, &resp, dl), -ENOTSUP);
    cr_assert_eq(weft_http_get(p, "/long", NULL, NULL, &resp, dl), -ENAMETOOLONG);
    cr_assert_eq(weft_http_pool_set_redirects(p, 0), 0);
    cr_assert_eq(weft_http_get(p, "/long", NULL, NULL, &resp, dl), 0);
    cr_assert_eq(resp.status, 302);
    cr_assert_str_eq(resp.location, "");

    /* The pool still works after all that. */
    cr_assert_eq(weft_http_get(p, "/small", NULL, NULL, &resp, dl), 0);
    cr_assert_eq(resp.status, 200);
    weft_http_pool_destroy(p);
    return NULL;
}

Test(weft_http, redirects)
{
    run(t_redirects);
}

static void *t_errors(void *arg)
{
    (void)arg;
    server s;
    server_start(&s);
    weft_http_pool *p = pool_for(&s, 1);
    weft_http_response resp;
    /* No answer: the deadline. */
    cr_assert_eq(weft_http_get(p, "/slow", NULL, NULL, &resp, weft_deadline_in(50 * WEFT_MSEC)),
                 -ETIMEDOUT);
    weft_http_pool_destroy(p);

    weft_http_pool *q;
    cr_assert_eq(weft_http_pool_create(&q, "127.0.0.1", 0, 1), -EINVAL);
    cr_assert_eq(weft_http_pool_create(&q, "127.0.0.1", 80, 0), -EINVAL);
    cr_assert_eq(weft_http_pool_create(NULL, "127.0.0.1", 80, 1), -EINVAL);
    cr_assert_eq(weft_http_pool_set_redirects(NULL, 1), -EINVAL);
    cr_assert_eq(
        weft_http_request(NULL, "GET", "/", NULL, NULL, 0, NULL, NULL, &resp, WEFT_FOREVER),
        -EINVAL);

    /* A port nobody listens on (a listener bound, then closed). */
    weft_addr a;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int fd = weft_listen(&a, 1, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_addr_local(fd, &a), 0);
    weft_close(fd);
    cr_assert_eq(weft_http_pool_create(&q, "127.0.0.1", weft_addr_port(&a), 1), 0);
    cr_assert_eq(weft_http_get(q, "/", NULL, NULL, &resp, weft_deadline_in(LONG_DEADLINE)),
                 -ECONNREFUSED);
    weft_http_pool_destroy(q);
    return NULL;
}

Test(weft_http, errors_and_deadline)
{
    run(t_errors);
}
