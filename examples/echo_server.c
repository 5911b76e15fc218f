/* The classic echo server: one coroutine per connection, on every core. Each worker (shard)
 * has its own listener on the port (SO_REUSEPORT) and serves the connections the kernel
 * gives it; with --acceptor, one task accepts and hands the connections to the workers in
 * turn. A connection lives on one worker, and each worker keeps the list of its own
 * connections (a weft_sharded value), so nothing is shared between threads but a counter for
 * the logs. On SIGINT or SIGTERM it stops accepting, gives open connections up to 5 s to
 * finish (each worker drains its own), cancels what is left, and exits 0.
 *
 *   echo_server [--workers N] [--mode sharded|stealing] [--acceptor] [--debug-port P]
 *               [PORT] [HOST]             (defaults: every CPU, sharded, 7000, 127.0.0.1)
 *
 * PORT 0 takes a free port; the line "echo_server: listening on HOST:PORT" says which.
 *
 * --mode stealing lets an idle worker take connections another has accepted and not started
 * yet (weft.h, WEFT_MODE_STEALING); a connection still lives on one worker once it runs.
 *
 * --debug-port P turns on weft's debug endpoint on 127.0.0.1:P (0: a port the kernel picks,
 * printed): the console at http://127.0.0.1:P/debug/ in a browser, `curl 127.0.0.1:P/metrics`
 * for the counters, `/debug/tasks.txt` (or JSON at `/debug/tasks`) for every task.
 *
 * --workers 1 is the single-worker server the single-core benchmarks measure (bench/run_net.sh
 * passes it); without the flag, WEFT_WORKERS in the environment also sets the count.
 * 5,000 concurrent connections need more than the usual 1024 fds: raise the soft limit with
 * `ulimit -n 20000` (this program also raises it to the hard limit itself).
 *
 * WEFT_ECHO_PROBE=timer|fd|all (1 = timer) adds schedule-latency probes (latency_probe.h),
 * run on worker 0, that print one JSON line each on stdout at the shutdown;
 * WEFT_ECHO_PROBE_IMPL names the "impl" in them (default weft_<backend>),
 * WEFT_ECHO_PROBE_CONNS the connection count the load opens (samples count while at least
 * that many are open; default: at the peak). Unset, the server runs exactly as without them. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <weft.h>

#include "args.h"
#include "debug_flag.h"

#include "latency_probe.h"

#define DRAIN_DEADLINE (5 * WEFT_SEC)

/* A live connection, on its task's stack, linked in its worker's list for the shutdown. */
typedef struct conn {
    struct conn *prev, *next;
    weft_task *task;
} conn;

/* One worker's connections: touched by that worker only. */
typedef struct shard {
    conn live;
    size_t nlive;
    weft_promise *drained; /* resolved by the last connection to go, once draining */
} shard;

static weft_sharded *shards;
/* Every worker's connections together, for the logs and the latency probe. */
static atomic_size_t nlive_total;

static void shard_init(void *value, unsigned worker, void *arg)
{
    (void)worker, (void)arg;
    shard *sh = value;
    sh->live.prev = sh->live.next = &sh->live;
}

static void serve(int fd, void *arg)
{
    (void)arg;
    shard *sh = weft_sharded_local(shards);
    conn c = {&sh->live, sh->live.next, weft_self()};
    sh->live.next->prev = &c;
    sh->live.next = &c;
    sh->nlive++;
    atomic_fetch_add_explicit(&nlive_total, 1, memory_order_relaxed);
    weft_tcp_nodelay(fd, 1);
    char buf[16384];
    for (;;) { /* until end of stream, an error, or cancellation (-ECANCELED) */
        ssize_t n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0 || weft_write(fd, buf, (size_t)n, WEFT_FOREVER) < 0)
            break;
    }
    c.prev->next = c.next;
    c.next->prev = c.prev;
    weft_close(fd);
    atomic_fetch_sub_explicit(&nlive_total, 1, memory_order_relaxed);
    if (--sh->nlive == 0 && sh->drained)
        weft_promise_resolve(sh->drained, NULL);
}

/* On each worker at the shutdown: waits until its connections have ended or the deadline
 * has passed, then cancels what is left and waits for it. */
static void *drain_shard(void *arg)
{
    int64_t deadline = *(const int64_t *)arg;
    shard *sh = weft_sharded_local(shards);
    if (sh->nlive == 0 || weft_promise_create(&sh->drained) < 0)
        return NULL;
    weft_future *f = weft_promise_future(sh->drained);
    if (weft_await(f, NULL, deadline) < 0) {
        fprintf(stderr, "echo_server: worker %d: cancelling %zu connections\n", weft_worker_index(),
                sh->nlive);
        for (conn *c = sh->live.next; c != &sh->live; c = c->next)
            weft_cancel(c->task);
        weft_await(f, NULL, WEFT_FOREVER);
    }
    weft_promise_release(sh->drained);
    sh->drained = NULL;
    return NULL;
}

typedef struct options {
    unsigned workers; /* 0: the runtime's default (WEFT_WORKERS, else every CPU) */
    int acceptor;     /* one acceptor handing connections out, rather than SO_REUSEPORT */
    int port;
    const char *host;
    int debug_port; /* -1: no debug endpoint */
} options;

static void *main_task(void *arg)
{
    const options *o = arg;
    weft_addr addr;
    if (weft_addr_ip(&addr, o->host, o->port) < 0) {
        fprintf(stderr, "echo_server: bad address %s port %d\n", o->host, o->port);
        return (void *)1;
    }
    int r = weft_sharded_create(&shards, sizeof(shard), shard_init, NULL, NULL);
    weft_server *srv = NULL;
    if (r == 0 &&
        (r = weft_serve(&srv, &addr, o->acceptor ? WEFT_SERVE_ACCEPTOR : 0, serve, NULL)) < 0)
        weft_sharded_destroy(shards);
    if (r < 0) {
        fprintf(stderr, "echo_server: listen: %s\n", weft_strerror(r));
        return (void *)1;
    }
    example_debug_serve("echo_server", o->debug_port);
    weft_server_addr(srv, &addr); /* the port the kernel picked, for PORT 0 */
    unsigned n = weft_worker_count();
    printf("echo_server: listening on %s:%d (%u worker%s%s)\n", o->host, weft_addr_port(&addr), n,
           n == 1 ? "" : "s",
           n == 1        ? ""
           : o->acceptor ? ", one acceptor"
                         : ", SO_REUSEPORT");
    fflush(stdout);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    latency_probe *probe = NULL;
    int kinds = latency_probe_kinds(getenv("WEFT_ECHO_PROBE"));
    const char *want = getenv("WEFT_ECHO_PROBE_CONNS");
    if (kinds &&
        latency_probe_start(&probe, kinds, &nlive_total, want ? strtoul(want, NULL, 10) : 0) < 0)
        fprintf(stderr, "echo_server: the latency probe did not start\n");
    int sig = weft_signal_wait(&set, WEFT_FOREVER);
    if (probe) {
        char impl[64];
        const char *name = getenv("WEFT_ECHO_PROBE_IMPL");
        snprintf(impl, sizeof impl, "%s%s", name ? name : "weft_", name ? "" : weft_backend());
        latency_probe_stop(probe, impl);
    }

    weft_stats st;
    if (weft_stats_get(&st) == 0) /* the load's totals, for per-message figures */
        fprintf(stderr, "echo_server: stats: syscalls %llu switches %llu ticks %llu polls %llu\n",
                (unsigned long long)st.nsyscalls, (unsigned long long)st.nswitches,
                (unsigned long long)st.nticks, (unsigned long long)st.npolls);
    fprintf(stderr, "echo_server: signal %d: draining %zu connections\n", sig,
            atomic_load(&nlive_total));
    weft_server_close(srv);
    int64_t deadline = weft_deadline_in(DRAIN_DEADLINE);
    weft_task *drainers[WEFT_WORKERS_MAX];
    for (unsigned k = 0; k < n; k++)
        if (weft_spawn_on(k, &drainers[k], drain_shard, &deadline, NULL) < 0)
            drainers[k] = NULL;
    for (unsigned k = 0; k < n; k++)
        if (drainers[k])
            weft_join(drainers[k], NULL, WEFT_FOREVER);
    weft_sharded_destroy(shards);
    fprintf(stderr, "echo_server: bye\n");
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: echo_server [--workers N] [--mode sharded|stealing] [--acceptor] "
                    "[--debug-port P] [PORT] [HOST]\n");
    return 2;
}

int main(int argc, char **argv)
{
    options o = {0, 0, 7000, "127.0.0.1", example_take_debug_port(&argc, argv)};
    if (o.debug_port == -2)
        return usage();
    int npos = 0;
    int mode = WEFT_MODE_SHARDED;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n == 0 || n > WEFT_WORKERS_MAX)
                return usage();
            o.workers = (unsigned)n;
        } else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "sharded") == 0)
                mode = WEFT_MODE_SHARDED;
            else if (strcmp(argv[i], "stealing") == 0)
                mode = WEFT_MODE_STEALING;
            else
                return usage();
        } else if (strcmp(argv[i], "--acceptor") == 0) {
            o.acceptor = 1;
        } else if (argv[i][0] == '-' || npos == 2) {
            return usage();
        } else if (npos++ == 0) {
            long port;
            /* 0: a free port, the same for every worker's listener (printed) */
            if (example_parse_long(argv[i], 0, 65535, &port) < 0)
                return usage();
            o.port = (int)port;
        } else {
            o.host = argv[i];
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = o.workers;
    cfg.mode = mode;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, &o, &result);
    if (r < 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
