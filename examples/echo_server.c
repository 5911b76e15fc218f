/* The classic echo server: one coroutine per connection. On SIGINT or SIGTERM it stops
 * accepting, gives open connections up to 5 s to finish, cancels what is left, and exits 0.
 *
 *   echo_server [PORT] [HOST]     (defaults: 7000, 127.0.0.1)
 *
 * 5,000 concurrent connections need more than the usual 1024 fds: raise the soft limit with
 * `ulimit -n 20000` (this program also raises it to the hard limit itself).
 *
 * WEFT_ECHO_PROBE=timer|fd|all (1 = timer) adds schedule-latency probes (latency_probe.h)
 * that print one JSON line each on stdout at the shutdown; WEFT_ECHO_PROBE_IMPL names the
 * "impl" in them (default weft_<backend>), WEFT_ECHO_PROBE_CONNS the connection count the
 * load opens (samples count while at least that many are open; default: at the peak).
 * Unset, the server runs exactly as without them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <weft.h>

#include "latency_probe.h"

#define DRAIN_DEADLINE (5 * WEFT_SEC)

/* Live connections, for the shutdown. Only the runtime's one thread touches them. */
typedef struct conn {
    struct conn *prev, *next;
    weft_task *task;
    int fd;
} conn;

static conn live = {&live, &live, NULL, -1};
static size_t nlive;
static weft_promise *drained; /* resolved by the last connection to go, once draining */

static void conn_done(void *arg)
{
    conn *c = arg;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    weft_close(c->fd);
    free(c);
    if (--nlive == 0 && drained)
        weft_promise_resolve(drained, NULL);
}

static void *serve(void *arg)
{
    conn *c = arg;
    weft_defer(conn_done, c); /* runs on return and on cancellation alike */
    char buf[16384];
    /* In a local: c escapes to the runtime (weft_defer), so c->fd would be reloaded after
     * every call, a cache miss per message once thousands of connections are open. */
    int fd = c->fd;
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0 || weft_write(fd, buf, (size_t)n, WEFT_FOREVER) < 0)
            return NULL;
    }
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (fd == -ECANCELED)
            return NULL;
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", weft_strerror(fd));
            continue; /* weft_accept already backs off on EMFILE */
        }
        conn *c = malloc(sizeof *c);
        if (!c) {
            weft_close(fd);
            continue;
        }
        c->fd = fd;
        weft_tcp_nodelay(fd, 1);
        if (weft_spawn(&c->task, serve, c, NULL) < 0) {
            weft_close(fd);
            free(c);
            continue;
        }
        weft_detach(c->task); /* it unlinks itself; the handle is only used to cancel */
        c->next = &live;
        c->prev = live.prev;
        live.prev->next = c;
        live.prev = c;
        nlive++;
    }
}

/* Parks until no connection is left or the deadline passes. */
static int wait_drained(int64_t deadline)
{
    if (nlive == 0)
        return 0;
    return weft_await(weft_promise_future(drained), NULL, deadline);
}

static void *main_task(void *arg)
{
    char **argv = arg;
    int port = argv[1] ? atoi(argv[1]) : 7000;
    const char *host = argv[1] && argv[2] ? argv[2] : "127.0.0.1";
    weft_addr addr;
    if (weft_addr_ip(&addr, host, port) < 0) {
        fprintf(stderr, "echo_server: bad address %s port %d\n", host, port);
        return (void *)1;
    }
    int lfd = weft_listen(&addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen: %s\n", weft_strerror(lfd));
        return (void *)1;
    }
    printf("echo_server: listening on %s:%d\n", host, port);
    fflush(stdout);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    latency_probe *probe = NULL;
    int kinds = latency_probe_kinds(getenv("WEFT_ECHO_PROBE"));
    const char *want = getenv("WEFT_ECHO_PROBE_CONNS");
    if (kinds && latency_probe_start(&probe, kinds, &nlive, want ? strtoul(want, NULL, 10) : 0) < 0)
        fprintf(stderr, "echo_server: the latency probe did not start\n");
    weft_task *acc;
    weft_spawn(&acc, acceptor, (void *)(intptr_t)lfd, NULL);
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
    fprintf(stderr, "echo_server: signal %d: draining %zu connections\n", sig, nlive);
    weft_cancel(acc);
    weft_join(acc, NULL, WEFT_FOREVER);
    weft_close(lfd);
    weft_promise_create(&drained);
    if (wait_drained(weft_deadline_in(DRAIN_DEADLINE)) < 0) {
        fprintf(stderr, "echo_server: cancelling %zu connections\n", nlive);
        for (conn *c = live.next; c != &live; c = c->next)
            weft_cancel(c->task);
        wait_drained(WEFT_FOREVER);
    }
    weft_promise_release(drained);
    fprintf(stderr, "echo_server: bye\n");
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    void *result = NULL;
    int r = weft_run(NULL, main_task, argv, &result);
    if (r < 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
