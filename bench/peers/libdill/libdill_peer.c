/* libdill peer for weft's single-thread workloads (bench-workloads.md): yield, spawn_join and
 * chan_pingpong, one JSON line per workload with impl "libdill", each the median of 5
 * repetitions inside the run (as weft's own benchmarks do). libdill runs a new coroutine at
 * once (child first) and reuses the stack of the one that just finished.
 * Usage: libdill-peer WORKLOAD [n]   (built by bench/run.sh from LIBDILL_SRC; see README) */
#define DILL_DISABLE_RAW_NAMES
#include <libdill.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEATS 5

static int64_t ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void emit(const char *workload, long n, double value, const char *unit)
{
    printf("{\"impl\":\"libdill\",\"workload\":\"%s\",\"n\":%ld,\"value\":%.3f,\"unit\":\"%s\"}\n",
           workload, n, value, unit);
    fflush(stdout);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* yield: two coroutines yield to each other, n yields in total; main waits in the bundle. */
static dill_coroutine void yielder(long count)
{
    for (long i = 0; i < count; i++)
        if (dill_yield() < 0)
            return;
}

static void bench_yield(long n)
{
    double v[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        int b = dill_bundle();
        if (b < 0)
            die("bundle");
        int64_t t0 = ns_now();
        if (dill_bundle_go(b, yielder(n / 2)) < 0 || dill_bundle_go(b, yielder(n / 2)) < 0)
            die("bundle_go");
        if (dill_bundle_wait(b, -1) < 0)
            die("bundle_wait");
        v[r] = (double)(ns_now() - t0) / (double)n;
        dill_hclose(b);
    }
    emit("yield", n, median(v, REPEATS), "ns/yield");
}

/* spawn_join: n tiny coroutines each add 1 to a counter, then the bundle waits for all. */
static long counter;

static dill_coroutine void add_one(void)
{
    counter++;
}

static void bench_spawn_join(long n)
{
    double v[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        counter = 0;
        int b = dill_bundle();
        if (b < 0)
            die("bundle");
        int64_t t0 = ns_now();
        for (long i = 0; i < n; i++)
            if (dill_bundle_go(b, add_one()) < 0)
                die("bundle_go");
        if (dill_bundle_wait(b, -1) < 0)
            die("bundle_wait");
        v[r] = (double)(ns_now() - t0) / (double)n;
        dill_hclose(b);
        if (counter != n)
            fprintf(stderr, "spawn_join: counter %ld != %ld\n", counter, n), exit(1);
    }
    emit("spawn_join", n, median(v, REPEATS), "ns/task");
}

/* chan_pingpong: an integer back and forth over two unbuffered channels (libdill's only
 * kind), n round trips. chmake gives the two ends of one channel. */
static dill_coroutine void ponger(int ping, int pong, long count)
{
    long v;
    for (long i = 0; i < count; i++) {
        if (dill_chrecv(ping, &v, sizeof v, -1) < 0)
            return;
        v++;
        if (dill_chsend(pong, &v, sizeof v, -1) < 0)
            return;
    }
}

static void bench_chan_pingpong(long n)
{
    double v[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        int ping[2], pong[2];
        if (dill_chmake(ping) < 0 || dill_chmake(pong) < 0)
            die("chmake");
        int h = dill_go(ponger(ping[1], pong[0], n));
        if (h < 0)
            die("go");
        long x = 0;
        int64_t t0 = ns_now();
        for (long i = 0; i < n; i++) {
            if (dill_chsend(ping[0], &x, sizeof x, -1) < 0 ||
                dill_chrecv(pong[1], &x, sizeof x, -1) < 0)
                die("chsend/chrecv");
        }
        v[r] = (double)(ns_now() - t0) / (double)n;
        if (x != n)
            fprintf(stderr, "chan_pingpong: %ld != %ld\n", x, n), exit(1);
        dill_hclose(h);
        dill_hclose(ping[0]);
        dill_hclose(ping[1]);
        dill_hclose(pong[0]);
        dill_hclose(pong[1]);
    }
    emit("chan_pingpong", n, median(v, REPEATS), "ns/roundtrip");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s yield|spawn_join|chan_pingpong [n]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (strcmp(argv[1], "yield") == 0)
        bench_yield(n ? n : 10000000);
    else if (strcmp(argv[1], "spawn_join") == 0)
        bench_spawn_join(n ? n : 1000000);
    else if (strcmp(argv[1], "chan_pingpong") == 0)
        bench_chan_pingpong(n ? n : 1000000);
    else {
        fprintf(stderr, "unknown workload %s\n", argv[1]);
        return 2;
    }
    return 0;
}
