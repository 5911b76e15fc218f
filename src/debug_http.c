/* The debug endpoint: a small HTTP/1.0 responder, on weft's own sockets, serving the metrics
 * as Prometheus text at /metrics and as JSON at /debug/stats, the task dump at /debug/tasks
 * (JSON) and /debug/tasks.txt, and the console at /debug/: one page (src/debug_console.html,
 * built into the library) whose script polls the two JSON documents. One task accepts and
 * answers one request per connection (a monitoring scraper, a person with curl, the console),
 * each connection in a task of its own, each read and write under a 5 s deadline. Past
 * DEBUG_CONNS_MAX connections, a new one closes the oldest that waits on its client (for the
 * request, or for the close after the answer), so that clients that connect and send nothing
 * do not keep the others out. */
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
#include "util/list.h"
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

/* Where a connection's task is (conn_arg.phase): waiting on its client (for the request, or
 * for its close after the answer), which a newer connection may cut short when all the slots
 * are taken; or making and sending the answer, which it may not. */
enum { CONN_READING, CONN_ANSWERING, CONN_LINGERING };

/* Reads one request head and answers it; *phase follows it (see CONN_READING). */
static void serve_one(int fd, int *phase)
{
    *phase = CONN_READING;
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
    *phase = CONN_ANSWERING;
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
    *phase = CONN_LINGERING;
    linger(fd, deadline);
}

/* Connections served at once, each by a task of its own (a bound on the endpoint's memory).
 * A connection past it first closes the oldest one that waits on its client (CONN_READING or
 * CONN_LINGERING): before, the accepting task served it itself, and a 17th client that sent
 * nothing held the endpoint for its 5 s, a scrape waiting behind it, while 16 more such
 * clients held every connection task. With none to close (all are answering, each within its
 * deadline), the new connection waits for a slot. */
#define DEBUG_CONNS_MAX 16

/* The references to this record: the accepting task's, while it accepts, and one per
 * connection task. The last one to let go frees it, so neither waits for the other at the
 * shutdown. Every task using it is pinned to one worker: plain fields, no other thread
 * touches them. */
typedef struct serve_state {
    int lfd;
    int refs;
    weft_sem slots;   /* DEBUG_CONNS_MAX less the connection tasks alive */
    weft__list conns; /* the connection tasks' records, oldest first */
} serve_state;

static void serve_state_release(serve_state *st)
{
    if (--st->refs == 0)
        free(st);
}

typedef struct conn_arg {
    serve_state *st;
    int fd;          /* -1 once closed */
    int phase;       /* CONN_*: whether a newer connection may close this one */
    bool cut;        /* a newer connection has shut it down: its task is ending */
    weft__list link; /* in st->conns from its spawn to its cleanup */
} conn_arg;

static void *serve_conn(void *arg)
{
    conn_arg *a = arg;
    serve_one(a->fd, &a->phase);
    weft_close(a->fd); /* here, where it may wait for a send behind: a cleanup must not */
    a->fd = -1;
    return NULL;
}

/* Makes room for a new connection: shuts down the oldest one that waits on its client, which
 * wakes its task's read with the end of the stream (the task then closes it and ends, and its
 * cleanup frees its slot). A connection answering is left alone: it ends within its deadline.
 * On the accepting task, which shares the worker with the connection tasks: none of them runs
 * meanwhile. */
static void cut_oldest_waiting(serve_state *st)
{
    for (weft__list *l = st->conns.next; l != &st->conns; l = l->next) {
        conn_arg *a = weft__container_of(l, conn_arg, link);
        if (a->cut || a->fd < 0 || a->phase == CONN_ANSWERING)
            continue;
        a->cut = true;
        weft_shutdown(a->fd, SHUT_RDWR);
        return;
    }
}

/* A connection task's cleanup, however it ended: also when it was cancelled before it ever
 * ran (the runtime stopping), which left the accepted fd open (nothing sent on it: the close
 * does not wait) and its record and reference behind. */
static void conn_gone(void *arg)
{
    conn_arg *a = arg;
    if (a->fd >= 0)
        weft_close(a->fd);
    weft__list_remove(&a->link);
    weft_sem_release(&a->st->slots, 1);
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
        if (weft_sem_try_acquire(&st->slots) < 0) {
            cut_oldest_waiting(st);
            if (weft_sem_acquire(&st->slots, WEFT_FOREVER) < 0) { /* cancelled: the stop */
                weft_close(c);
                break;
            }
        }
        conn_arg *a = malloc(sizeof *a);
        if (a) {
            *a = (conn_arg){st, c, CONN_READING, false, {NULL, NULL}};
            weft__list_push_back(&st->conns, &a->link);
            weft_spawn_opts o = {.name = "weft-debug-conn",
                                 .flags = WEFT_SPAWN_DETACHED | WEFT_SPAWN_PINNED,
                                 .cleanup = conn_gone};
            if (weft_spawn(NULL, serve_conn, a, &o) == 0) {
                st->refs++;
                continue;
            }
            weft__list_remove(&a->link);
            free(a);
        }
        /* Out of memory for a task: served here, in turn, as all connections once were. */
        int phase;
        serve_one(c, &phase);
        weft_close(c);
        weft_sem_release(&st->slots, 1);
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
    *st = (serve_state){.lfd = lfd, .refs = 1, .slots = WEFT_SEM_INIT(DEBUG_CONNS_MAX)};
    weft__list_init(&st->conns);
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
