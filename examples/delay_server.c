/* A server that answers each request after the delay it asks for, and a client that fires
 * many requests at once to show they complete in the time of the longest, not the sum.
 *
 *   delay_server serve [PORT]                  answer "<ms>\n" with "done <ms>\n" after <ms>
 *   delay_server client [PORT] [N] [MAX_MS]    N concurrent requests of 1..MAX_MS ms each
 *   delay_server demo                          both in one process, on a free port
 *
 * Each connection is a coroutine that reads lines through a buffered stream, so one client
 * connection may also send several requests in a row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

static void *serve_conn(void *arg)
{
    weft_stream *s;
    if (weft_stream_open(&s, (int)(intptr_t)arg, NULL) < 0) {
        weft_close((int)(intptr_t)arg);
        return NULL;
    }
    char line[64];
    for (;;) {
        ssize_t n =
            weft_stream_read_line(s, line, sizeof line - 1, weft_deadline_in(30 * WEFT_SEC));
        if (n <= 0)
            break; /* closed, timed out, too long, or cancelled */
        line[n] = 0;
        long ms = strtol(line, NULL, 10);
        if (ms < 0 || ms > 60000)
            ms = 0;
        if (weft_sleep(ms * WEFT_MSEC) < 0)
            break;
        char reply[64];
        int len = snprintf(reply, sizeof reply, "done %ld\n", ms);
        if (weft_stream_write(s, reply, (size_t)len, WEFT_FOREVER) < 0 ||
            weft_stream_flush(s, weft_deadline_in(5 * WEFT_SEC)) < 0)
            break;
    }
    weft_stream_close(s, weft_deadline_in(WEFT_SEC));
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd >= 0)
            weft_spawn(NULL, serve_conn, (void *)(intptr_t)fd,
                       &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    }
    weft_close(lfd);
    return NULL;
}

typedef struct request {
    const weft_addr *srv;
    long ms;
    int ok;
} request;

static void *ask(void *arg)
{
    request *rq = arg;
    int fd = weft_dial(rq->srv, weft_deadline_in(5 * WEFT_SEC));
    if (fd < 0)
        return NULL;
    char msg[32], reply[64];
    int len = snprintf(msg, sizeof msg, "%ld\n", rq->ms);
    weft_stream *s;
    if (weft_stream_open(&s, fd, NULL) == 0) {
        if (weft_write(fd, msg, (size_t)len, WEFT_FOREVER) == len) {
            ssize_t n = weft_stream_read_line(s, reply, sizeof reply,
                                              weft_deadline_in(rq->ms * WEFT_MSEC + 10 * WEFT_SEC));
            rq->ok = n > 5 && strncmp(reply, "done ", 5) == 0;
        }
        weft_stream_close(s, 0);
    } else {
        weft_close(fd);
    }
    return NULL;
}

static int run_client(const weft_addr *srv, int n, long max_ms)
{
    request *rq = calloc((size_t)n, sizeof *rq);
    weft_task **ts = calloc((size_t)n, sizeof *ts);
    long sum = 0, longest = 0;
    uint64_t seed = 7;
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        rq[i] = (request){srv, 1 + (long)((seed >> 33) % (uint64_t)max_ms), 0};
        sum += rq[i].ms;
        longest = rq[i].ms > longest ? rq[i].ms : longest;
    }
    int64_t t0 = weft_now();
    for (int i = 0; i < n; i++)
        weft_spawn(&ts[i], ask, &rq[i], NULL);
    int nok = 0;
    for (int i = 0; i < n; i++) {
        weft_join(ts[i], NULL, WEFT_FOREVER);
        nok += rq[i].ok;
    }
    double took = (double)(weft_now() - t0) / WEFT_MSEC;
    printf("%d of %d requests answered in %.0f ms: the longest asked for %ld ms, "
           "all of them together %ld ms\n",
           nok, n, took, longest, sum);
    free(rq);
    free(ts);
    return nok == n ? 0 : 1;
}

typedef struct args {
    int argc;
    char **argv;
} args;

static void *main_task(void *arg)
{
    args *a = arg;
    const char *mode = a->argc > 1 ? a->argv[1] : "demo";
    int port = a->argc > 2 ? atoi(a->argv[2]) : (strcmp(mode, "demo") == 0 ? 0 : 7001);
    weft_addr addr, srv;
    weft_addr_ip(&addr, "127.0.0.1", port);
    if (strcmp(mode, "client") == 0) {
        int n = a->argc > 3 ? atoi(a->argv[3]) : 1000;
        long max_ms = a->argc > 4 ? atol(a->argv[4]) : 1000;
        return (void *)(intptr_t)run_client(&addr, n > 0 ? n : 1, max_ms > 0 ? max_ms : 1);
    }
    int lfd = weft_listen(&addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "delay_server: listen: %s\n", weft_strerror(lfd));
        return (void *)1;
    }
    weft_addr_local(lfd, &srv);
    weft_task *st;
    weft_spawn(&st, server, (void *)(intptr_t)lfd, NULL);
    if (strcmp(mode, "serve") == 0) {
        printf("delay_server: listening on 127.0.0.1:%d\n", weft_addr_port(&srv));
        fflush(stdout);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        weft_signal_wait(&set, WEFT_FOREVER);
        weft_cancel(st);
        weft_join(st, NULL, WEFT_FOREVER);
        return NULL;
    }
    int r = run_client(&srv, 500, 500); /* demo */
    weft_cancel(st);
    weft_join(st, NULL, WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

int main(int argc, char **argv)
{
    args a = {argc, argv};
    void *result = NULL;
    int r = weft_run(NULL, main_task, &a, &result);
    if (r < 0) {
        fprintf(stderr, "delay_server: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
