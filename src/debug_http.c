/* The debug endpoint: a small HTTP/1.0 responder, on weft's own sockets, serving the metrics
 * as Prometheus text at /metrics and as JSON at /debug/stats, the task dump at /debug/tasks
 * (JSON) and /debug/tasks.txt, and the console at /debug/: one page (src/debug_console.html,
 * built into the library) whose script polls the two JSON documents. One task accepts and
 * answers one request per connection in turn (a monitoring scraper, a person with curl, the
 * console), each read and write under a 5 s deadline, so a slow client costs the endpoint its
 * turn and nothing else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "debug_http.h"
#include "dump.h"
#include "metrics.h"
#include "task.h"
#include "worker.h"

#define DEBUG_DEADLINE_NS (5 * WEFT_SEC)
/* How long a dump waits for the workers' parts, all of them together: a worker stuck in a
 * task is then listed without backtraces, and the answer still goes out within the request's
 * deadline. Without it, the request waited for good, and 16 of them held every connection
 * task and the accepting task, so that nothing was answered, /metrics included. */
#define DEBUG_DUMP_WAIT_NS (2 * WEFT_SEC)
#define DEBUG_REQUEST_MAX  4096

/* The console's page, generated from src/debug_console.html (cmake/embed.cmake). */
extern const unsigned char weft__console_html[];
extern const size_t weft__console_html_len;

static void respond_bytes(int fd, int status, const char *reason, const char *type,
                          const void *body, size_t len, bool head, int64_t deadline)
{
    char hdr[256];
    /* no-store: the console polls the same URLs every second and wants each answer fresh.
     * A 405 names the methods there are (RFC 9110 15.5.6). */
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, reason, type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    /* weft_send, which adds MSG_NOSIGNAL: a client that went away must not end a program
     * that turned weft_config.ignore_sigpipe off (a write would raise SIGPIPE). */
    if (weft_send(fd, hdr, (size_t)n, 0, deadline) < 0 || head || !len)
        return;
    weft_send(fd, body, len, 0, deadline);
}

static void respond(int fd, int status, const char *reason, const char *type,
                    const weft__dumpbuf *body, bool head, int64_t deadline)
{
    respond_bytes(fd, status, reason, type, body->p, body->len, head, deadline);
}

/* After the answer, what the client still sends (a body, a second request, the rest of a
 * head over DEBUG_REQUEST_MAX) is read and dropped until it closes: a close with unread bytes
 * would make the kernel reset the connection, and a reset can destroy the answer still in
 * flight. The send side is shut first, so the client sees the end of the answer and closes.
 * Bounded as weft-httpd's lingering close is (2 s, 256 KiB), within the request's deadline. */
#define DEBUG_LINGER_NS    (2 * WEFT_SEC)
#define DEBUG_LINGER_BYTES (256 * 1024)

static void linger(int fd, int64_t deadline)
{
    int64_t soon = weft_deadline_in(DEBUG_LINGER_NS);
    if (soon < deadline)
        deadline = soon;
    if (weft_shutdown(fd, SHUT_WR) < 0)
        return;
    char scrap[4096];
    size_t total = 0;
    while (total < DEBUG_LINGER_BYTES) {
        ssize_t r = weft_read(fd, scrap, sizeof scrap, deadline);
        if (r <= 0)
            return;
        total += (size_t)r;
    }
}

/* The path of a request-target: origin-form as it is; absolute-form ("http://host:port/p",
 * RFC 9112 3.2.2, which a proxy or a client configured with one sends) cut to its path, "/"
 * when it has none. The authority ends at the first '/', '?' or '#' (RFC 3986 3.2): a '/' in
 * the query of "http://host?next=/metrics" is no path (it was taken for one, and served
 * /metrics). */
static char *target_path(char *t)
{
    char *p = NULL;
    if (strncasecmp(t, "http://", 7) == 0)
        p = t + 7;
    else if (strncasecmp(t, "https://", 8) == 0)
        p = t + 8;
    if (!p)
        return t;
    p += strcspn(p, "/?#");
    if (*p != '/') { /* "http://host[?q]": the root, written over the target (ours to change) */
        p = t;
        p[0] = '/';
        p[1] = '\0';
    }
    return p;
}

/* Reads one request head and answers it. */
static void serve_one(int fd)
{
    int64_t deadline = weft_deadline_in(DEBUG_DEADLINE_NS);
    char req[DEBUG_REQUEST_MAX];
    size_t n = 0;
    for (;;) {
        ssize_t r = weft_read(fd, req + n, sizeof req - 1 - n, deadline);
        if (r < 0 || (r == 0 && n == 0))
            return;
        if (r == 0)
            break; /* the client ended its side: answer what came */
        n += (size_t)r;
        /* memmem, not strstr: a NUL sent in the head must not hide its end. */
        if (memmem(req, n, "\r\n\r\n", 4) || memmem(req, n, "\n\n", 2))
            break;
        if (n == sizeof req - 1)
            break; /* a head this long is answered from its first line */
    }
    req[n] = '\0';
    char method[16], target[256];
    weft__dumpbuf body = {0};
    int64_t dump_by = weft_deadline_in(DEBUG_DUMP_WAIT_NS);
    if (dump_by > deadline - WEFT_SEC) /* a head that came slowly: still time to answer */
        dump_by = deadline - WEFT_SEC;
    size_t line = strcspn(req, "\n"); /* stops at a NUL too: then the line was cut short */
    bool cut = line < n && req[line] == '\0';
    req[line] = '\0'; /* the request line alone: "GET\r\n/metrics" is no request of /metrics */
    if (cut) {
        weft__dumpbuf_printf(&body, "bad request\n");
        respond(fd, 400, "Bad Request", "text/plain", &body, false, deadline);
    } else if (sscanf(req, "%15s %255s", method, target) != 2) {
        weft__dumpbuf_printf(&body, "bad request\n");
        respond(fd, 400, "Bad Request", "text/plain", &body, false, deadline);
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        weft__dumpbuf_printf(&body, "only GET and HEAD\n");
        respond(fd, 405, "Method Not Allowed", "text/plain", &body, false, deadline);
    } else {
        bool head = strcmp(method, "HEAD") == 0;
        char *path = target_path(target);
        char *q = strchr(path, '?');
        if (q)
            *q = '\0';
        weft__worker *w = weft__worker_current();
        if (strcmp(path, "/metrics") == 0) {
            weft__metrics_render(w->rt, &body);
            respond(fd, 200, "OK", "text/plain; version=0.0.4", &body, head, deadline);
        } else if (strcmp(path, "/debug/tasks") == 0) {
            weft__dump_render(&body, true, dump_by);
            respond(fd, 200, "OK", "application/json", &body, head, deadline);
        } else if (strcmp(path, "/debug/tasks.txt") == 0) {
            weft__dump_render(&body, false, dump_by);
            respond(fd, 200, "OK", "text/plain; charset=utf-8", &body, head, deadline);
        } else if (strcmp(path, "/debug/stats") == 0) {
            weft__metrics_render_json(w->rt, &body, w->now);
            respond(fd, 200, "OK", "application/json", &body, head, deadline);
        } else if (strcmp(path, "/debug/") == 0 || strcmp(path, "/debug") == 0) {
            respond_bytes(fd, 200, "OK", "text/html; charset=utf-8", weft__console_html,
                          weft__console_html_len, head, deadline);
        } else if (strcmp(path, "/") == 0) {
            weft__dumpbuf_printf(&body, "weft debug endpoint\n/debug/            the console (a "
                                        "page for a browser)\n/metrics           Prometheus text\n"
                                        "/debug/stats       the same figures as JSON\n"
                                        "/debug/tasks       every task, its wait and backtrace "
                                        "(JSON)\n/debug/tasks.txt   the same as text\n");
            respond(fd, 200, "OK", "text/plain", &body, head, deadline);
        } else {
            weft__dumpbuf_printf(&body, "not found: try /debug/, /metrics or /debug/tasks\n");
            respond(fd, 404, "Not Found", "text/plain", &body, head, deadline);
        }
    }
    free(body.p);
    linger(fd, deadline);
}

/* Connections served at once, each by a task of its own; past it, the accepting task serves
 * the next one itself (as all of them were before: one client that sent nothing held the
 * endpoint for its 5 s, a scrape waiting behind each). */
#define DEBUG_CONNS_MAX 16

/* The references to this record: the accepting task's, while it accepts, and one per
 * connection task (so refs - 1 counts those while it accepts). The last one to let go frees
 * it, so neither waits for the other at the shutdown. Every task using it is pinned to one
 * worker: a plain integer, no other thread touches it. */
typedef struct serve_state {
    int lfd;
    int refs;
} serve_state;

static void serve_state_release(serve_state *st)
{
    if (--st->refs == 0)
        free(st);
}

typedef struct conn_arg {
    serve_state *st;
    int fd;
} conn_arg;

static void *serve_conn(void *arg)
{
    conn_arg *a = arg;
    serve_one(a->fd);
    weft_close(a->fd); /* here, where it may wait for a send behind: a cleanup must not */
    a->fd = -1;
    return NULL;
}

/* A connection task's cleanup, however it ended: also when it was cancelled before it ever
 * ran (the runtime stopping), which left the accepted fd open (nothing sent on it: the close
 * does not wait) and its record and reference behind. */
static void conn_gone(void *arg)
{
    conn_arg *a = arg;
    if (a->fd >= 0)
        weft_close(a->fd);
    serve_state_release(a->st);
    free(a);
}

static void *serve_loop(void *arg)
{
    serve_state *st = arg;
    for (;;) {
        int c = weft_accept(st->lfd, NULL, NULL, WEFT_FOREVER);
        if (c == -ECANCELED || c == -EBADF)
            break;
        if (c < 0) {
            /* Out of fds or memory: let the program recover some before trying again. */
            if (weft_sleep(10 * WEFT_MSEC) == -ECANCELED)
                break;
            continue;
        }
        conn_arg *a = st->refs - 1 < DEBUG_CONNS_MAX ? malloc(sizeof *a) : NULL;
        if (a) {
            *a = (conn_arg){st, c};
            weft_spawn_opts o = {.name = "weft-debug-conn",
                                 .flags = WEFT_SPAWN_DETACHED | WEFT_SPAWN_PINNED,
                                 .cleanup = conn_gone};
            if (weft_spawn(NULL, serve_conn, a, &o) == 0) {
                st->refs++;
                continue;
            }
            free(a);
        }
        serve_one(c);
        weft_close(c);
    }
    weft_close(st->lfd);
    st->lfd = -1;
    return NULL;
}

/* The accepting task's cleanup, however it ended (never run included). */
static void serve_loop_gone(void *arg)
{
    serve_state *st = arg;
    if (st->lfd >= 0)
        weft_close(st->lfd);
    serve_state_release(st);
}

bool weft__debug_task(const weft_task *t, int *fd)
{
    /* A live stackful task's fn is its body (task.h: the result replaces it at the finish),
     * and its arg the record each body keeps its socket in. */
    if (t->flags & WEFT__T_STACKLESS)
        return false;
    if (t->fn == serve_loop)
        *fd = ((const serve_state *)t->arg)->lfd;
    else if (t->fn == serve_conn)
        *fd = ((const conn_arg *)t->arg)->fd;
    else
        return false;
    return true;
}

int weft_debug_serve(const weft_addr *addr, weft_addr *bound)
{
    if (!weft__blocking_task(weft__worker_current()))
        return -EPERM;
    weft_addr local;
    if (!addr) {
        weft_addr_ip(&local, "127.0.0.1", 0);
        addr = &local;
    }
    int lfd = weft_listen(addr, 64, 0);
    if (lfd < 0)
        return lfd;
    if (bound) {
        int r = weft_addr_local(lfd, bound);
        if (r < 0) {
            weft_close(lfd);
            return r;
        }
    }
    serve_state *st = malloc(sizeof *st);
    if (!st) {
        weft_close(lfd);
        return -ENOMEM;
    }
    *st = (serve_state){lfd, 1};
    weft_spawn_opts o = {.name = "weft-debug",
                         .flags = WEFT_SPAWN_DETACHED | WEFT_SPAWN_PINNED,
                         .cleanup = serve_loop_gone};
    int r = weft_spawn(NULL, serve_loop, st, &o);
    if (r < 0) {
        weft_close(lfd);
        free(st);
    }
    return r;
}
