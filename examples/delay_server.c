/* A server that answers each request after the delay it asks for, and a client that fires
 * many requests at once to show they complete in the time of the longest, not the sum.
 *
 *   delay_server [OPTIONS] serve [PORT]   answer "<ms>\n" with "done <ms>\n" after <ms>
 *   delay_server [OPTIONS] client [PORT] [N] [MAX_MS]
 *                                         N concurrent requests of 1..MAX_MS ms each
 *   delay_server [OPTIONS] demo           both in one process, on a free port
 *   OPTIONS: --workers N (default: WEFT_WORKERS, else every CPU), --acceptor,
 *            --mode sharded|stealing (default sharded: weft.h, WEFT_MODE_*),
 *            --debug-port P (weft's debug endpoint on 127.0.0.1:P, 0: a port the kernel
 *            picks; the console at http://127.0.0.1:P/debug/, docs/observability.md)
 *
 * The server runs on every worker (shard): a listener per worker with SO_REUSEPORT, or with
 * --acceptor one acceptor that hands the connections to the workers in turn. Each connection
 * is a coroutine on one worker that reads lines through a buffered stream, so one client
 * connection may also send several requests in a row. The client's requests all start from
 * the main task's worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"
#include "debug_flag.h"

static void serve_conn(int fd, void *arg)
{
    (void)arg;
    weft_stream *s;
    if (weft_stream_open(&s, fd, NULL) < 0) {
        weft_close(fd);
        return;
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

typedef struct options {
    const char *mode; /* serve, client or demo */
    int port;         /* -1: the mode's default */
    int n;
    long max_ms;
    int acceptor;
    int debug_port; /* -1: no debug endpoint */
} options;

static void *main_task(void *arg)
{
    const options *o = arg;
    example_debug_serve("delay_server", o->debug_port);
    int port = o->port >= 0 ? o->port : (strcmp(o->mode, "demo") == 0 ? 0 : 7001);
    weft_addr addr, srv_addr;
    weft_addr_ip(&addr, "127.0.0.1", port);
    if (strcmp(o->mode, "client") == 0)
        return (void *)(intptr_t)run_client(&addr, o->n, o->max_ms);
    weft_server *srv;
    int r = weft_serve(&srv, &addr, o->acceptor ? WEFT_SERVE_ACCEPTOR : 0, serve_conn, NULL);
    if (r < 0) {
        fprintf(stderr, "delay_server: listen: %s\n", weft_strerror(r));
        return (void *)1;
    }
    weft_server_addr(srv, &srv_addr);
    if (strcmp(o->mode, "serve") == 0) {
        printf("delay_server: listening on 127.0.0.1:%d (%u workers)\n", weft_addr_port(&srv_addr),
               weft_worker_count());
        fflush(stdout);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        weft_signal_wait(&set, WEFT_FOREVER);
        weft_server_close(srv);
        return NULL; /* the connections left are cancelled by the runtime's stop */
    }
    r = run_client(&srv_addr, 500, 500); /* demo */
    weft_server_close(srv);
    return (void *)(intptr_t)r;
}

static int usage(void)
{
    fprintf(stderr, "usage: delay_server [--workers N] [--mode sharded|stealing] [--acceptor] "
                    "[--debug-port P] serve [PORT] | client [PORT] [N] [MAX_MS] | demo\n");
    return 2;
}

int main(int argc, char **argv)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.mode = WEFT_MODE_SHARDED;
    options o = {"demo", -1, 1000, 1000, 0, example_take_debug_port(&argc, argv)};
    if (o.debug_port == -2)
        return usage();
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n == 0 || n > WEFT_WORKERS_MAX)
                return usage();
            cfg.workers = (unsigned)n;
        } else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "sharded") == 0)
                cfg.mode = WEFT_MODE_SHARDED;
            else if (strcmp(argv[i], "stealing") == 0)
                cfg.mode = WEFT_MODE_STEALING;
            else
                return usage();
        } else if (strcmp(argv[i], "--acceptor") == 0) {
            o.acceptor = 1;
        } else {
            return usage();
        }
    }
    if (i < argc)
        o.mode = argv[i++];
    if (strcmp(o.mode, "serve") && strcmp(o.mode, "client") && strcmp(o.mode, "demo"))
        return usage();
    /* PORT 0: a free port (weft_serve reports the one it got); N and MAX_MS at least 1.
     * Arguments a mode does not take are refused ("demo 7001" ran on a free port). */
    int nargs = strcmp(o.mode, "client") == 0 ? 3 : strcmp(o.mode, "serve") == 0 ? 1 : 0;
    if (argc - i > nargs)
        return usage();
    long port = o.port, n = o.n;
    if (i < argc && example_parse_long(argv[i++], 0, 65535, &port) < 0)
        return usage();
    if (i < argc && example_parse_long(argv[i++], 1, 1000000, &n) < 0)
        return usage();
    if (i < argc && example_parse_long(argv[i++], 1, 3600 * 1000, &o.max_ms) < 0)
        return usage();
    if (i < argc)
        return usage();
    o.port = (int)port;
    o.n = (int)n;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, &o, &result);
    if (r < 0) {
        fprintf(stderr, "delay_server: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
