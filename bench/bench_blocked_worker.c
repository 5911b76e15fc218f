/* blocked_worker (bench-workloads.md, N = 2): an echo server on 127.0.0.1:PORT on every
 * worker (weft_serve, SO_REUSEPORT), beside a task that spins without yielding for 100 ms of
 * every 200 ms and a ticker that sleeps 1 ms in a loop and records how late it wakes. Both sit
 * on worker 0, as the main task's children: the ticker shares its worker with the spinner,
 * the case a stuck-worker mechanism exists for. Runs until SIGTERM or SIGINT, then prints the
 * ticker's lateness as one JSON line; bench/run_mt.sh drives the echo load and adds its
 * figures. With --in-place the spinner says what it does: each spin runs inside
 * weft_block_in_place, and worker 0 goes on on a relief thread meanwhile (the workload as
 * defined spins without saying so: that is the run without it). With --block-read the
 * blocker sleeps in the kernel instead of spinning: a plain read(2) of a pipe that a helper
 * thread answers 100 ms later (a C library's own blocking I/O), which the involuntary
 * hand-off also covers in stealing mode. With --block-sleep it sleeps in nanosleep(2) for
 * 100 ms, a call a signal would cut short: the stall detector lets go of the worker for it
 * from its own thread (handoff.h), in stealing mode on x86_64.
 *
 *   bench_blocked_worker [blocked_worker] --port PORT [--threads N] [--mode sharded|stealing]
 *                        [--in-place | --block-read | --block-sleep] */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "bench_common.h"

typedef struct opts {
    int port;
    unsigned threads;
    int mode;
    int in_place;
    int block_read;
    int block_sleep;
} opts;

static volatile int stopping; /* set by the main task before it cancels the others */
static long nspins;
static int64_t *late;
static size_t nlate, caplate;

static void echo(int fd, void *arg)
{
    (void)arg;
    weft_tcp_nodelay(fd, 1);
    char buf[16384];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, WEFT_FOREVER);
        if (n <= 0 || weft_write(fd, buf, (size_t)n, WEFT_FOREVER) < 0)
            break;
    }
    weft_close(fd);
}

static int64_t clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/* 100 ms without a yield. */
static void *spin(void *arg)
{
    int64_t start = *(int64_t *)arg;
    while (clock_now() - start < 100 * WEFT_MSEC)
        ;
    return NULL;
}

/* --block-read: the blocker asks through req, the helper answers through rsp 100 ms later. */
static int req[2], rsp[2];

static void *answer_late(void *arg)
{
    (void)arg;
    char c;
    while (read(req[0], &c, 1) == 1) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        if (write(rsp[1], &c, 1) != 1)
            break;
    }
    return NULL;
}

/* 100 ms in read(2), with the worker's thread. */
static void block_read(void)
{
    char c = 0;
    if (write(req[1], &c, 1) == 1)
        (void)!read(rsp[0], &c, 1);
}

/* 100 ms in nanosleep(2), with the worker's thread. */
static void block_sleep(void)
{
    struct timespec ts = {0, 100 * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void *spinner(void *arg)
{
    const opts *o = arg;
    while (!stopping) {
        int64_t start = clock_now();
        if (o->block_read)
            block_read();
        else if (o->block_sleep)
            block_sleep();
        else if (o->in_place)
            weft_block_in_place(spin, &start, NULL); /* the worker goes on elsewhere */
        else
            spin(&start); /* the worker is stuck */
        nspins++;
        if (weft_sleep_until(start + 200 * WEFT_MSEC) < 0)
            break;
    }
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    while (!stopping) {
        int64_t deadline = clock_now() + WEFT_MSEC;
        if (weft_sleep_until(deadline) < 0)
            break;
        if (nlate == caplate) {
            caplate = caplate ? caplate * 2 : 1 << 16;
            late = realloc(late, caplate * sizeof *late);
        }
        late[nlate++] = clock_now() - deadline;
    }
    return NULL;
}

static void *main_task(void *arg)
{
    opts *o = arg;
    weft_addr addr;
    weft_addr_ip(&addr, "127.0.0.1", o->port);
    weft_server *srv;
    int r = weft_serve(&srv, &addr, 0, echo, NULL);
    if (r < 0) {
        fprintf(stderr, "bench_blocked_worker: listen: %s\n", weft_strerror(r));
        return (void *)1;
    }
    weft_task *spin, *tick;
    weft_spawn_opts so = {.name = "spinner", .flags = WEFT_SPAWN_PINNED};
    weft_spawn(&spin, spinner, o, &so);
    so.name = "ticker";
    weft_spawn(&tick, ticker, NULL, &so);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    weft_signal_wait(&set, WEFT_FOREVER);
    stopping = 1;
    weft_cancel(spin);
    weft_cancel(tick);
    weft_join(spin, NULL, WEFT_FOREVER);
    weft_join(tick, NULL, WEFT_FOREVER);
    weft_server_close(srv);
    qsort(late, nlate, sizeof *late, bench_cmp_i64);
    double p50 = nlate ? (double)late[nlate / 2] / 1e3 : 0;
    double p99 = nlate ? (double)late[nlate * 99 / 100] / 1e3 : 0;
    double max = nlate ? (double)late[nlate - 1] / 1e3 : 0;
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"threads\":%u,\"mode\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
             "\"spins\":%ld,\"in_place\":%d,\"block_read\":%d,\"block_sleep\":%d",
             o->threads, o->mode == WEFT_MODE_STEALING ? "stealing" : "sharded", p50, p99, max,
             nspins, o->in_place, o->block_read, o->block_sleep);
    /* weft_stealing: stealing mode, where the involuntary hand-off is on by default. */
    const char *impl =
        o->in_place      ? "weft_in_place"
        : o->block_read  ? (o->mode == WEFT_MODE_STEALING ? "weft_stealing_read" : "weft_read")
        : o->block_sleep ? (o->mode == WEFT_MODE_STEALING ? "weft_stealing_sleep" : "weft_sleep")
        : o->mode == WEFT_MODE_STEALING ? "weft_stealing"
                                        : "weft";
    bench_emit(impl, "blocked_worker", (long)nlate, p99, "us_p99", extra);
    free(late);
    return NULL;
}

int main(int argc, char **argv)
{
    opts o = {0, 2, WEFT_MODE_SHARDED, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "blocked_worker") == 0) /* the workload name the peers take */
            continue;
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--in-place") == 0)
            o.in_place = 1;
        else if (strcmp(argv[i], "--block-read") == 0)
            o.block_read = 1;
        else if (strcmp(argv[i], "--block-sleep") == 0)
            o.block_sleep = 1;
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            o.mode = strcmp(argv[++i], "stealing") == 0 ? WEFT_MODE_STEALING : WEFT_MODE_SHARDED;
        else
            return fprintf(
                       stderr,
                       "usage: bench_blocked_worker --port PORT [--threads N] "
                       "[--mode sharded|stealing] [--in-place | --block-read | --block-sleep]\n"),
                   2;
    }
    /* The signals are taken by weft_signal_wait: blocked before the workers start. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t helper;
    if (o.block_read && (pipe(req) != 0 || pipe(rsp) != 0 ||
                         pthread_create(&helper, NULL, answer_late, NULL) != 0)) {
        perror("bench_blocked_worker: --block-read");
        return 1;
    }
    weft_config c;
    weft_config_init(&c);
    c.workers = o.threads;
    c.mode = o.mode;
    c.stall_ms = -1; /* the spinner stalls on purpose: no report every 200 ms */
    void *res = NULL;
    int r = weft_run(&c, main_task, &o, &res);
    return r < 0 || res ? 1 : 0;
}
