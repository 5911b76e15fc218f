/* The shared body of sleepers_1m and timers_1m: n tasks alive at once, each sleeps its
 * delay then exits; reported for stackful and stackless tasks, each measured in its own
 * child process so that each peak RSS is its own. */
#ifndef WEFT_BENCH_SLEEPERS_H
#define WEFT_BENCH_SLEEPERS_H

#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "bench_common.h"

typedef struct sleepers_cfg {
    const char *workload;
    long n;
    int random; /* 0: every task sleeps 1 s; 1: uniformly 0..1000 ms */
    int stackless;
} sleepers_cfg;

static void *sleep_for(void *arg)
{
    weft_sleep((int64_t)(intptr_t)arg);
    return NULL;
}

static void *sleepers_main(void *arg)
{
    sleepers_cfg *c = arg;
    long long rss0 = bench_status_bytes("VmRSS");
    weft_task **ts = malloc((size_t)c->n * sizeof *ts);
    uint64_t seed = 42;
    int64_t t0 = bench_ns();
    for (long i = 0; i < c->n; i++) {
        int64_t d = c->random ? (int64_t)(bench_splitmix64(&seed) % 1001) * WEFT_MSEC : WEFT_SEC;
        int r;
        if (c->stackless) {
            weft_future *f;
            r = weft_timer_future(&f, weft_deadline_in(d));
            if (r == 0)
                r = weft_spawn_future(&ts[i], f, NULL);
        } else {
            r = weft_spawn(&ts[i], sleep_for, (void *)(intptr_t)d, NULL);
        }
        if (r < 0) {
            fprintf(stderr, "%s: spawn %ld: %s\n", c->workload, i, weft_strerror(r));
            exit(1);
        }
    }
    double spawn_s = (double)(bench_ns() - t0) / 1e9;
    for (long i = 0; i < c->n; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    double wall = (double)(bench_ns() - t0) / 1e9;
    long long peak = bench_status_bytes("VmHWM");
    char extra[160];
    snprintf(extra, sizeof extra, ",\"rss_bytes\":%lld,\"bytes_per_task\":%.1f,\"spawn_s\":%.3f",
             peak, (double)(peak - rss0) / (double)c->n, spawn_s);
    bench_emit(c->stackless ? "weft_stackless" : "weft", c->workload, c->n, wall, "s", extra);
    free(ts);
    return NULL;
}

static int sleepers_run(const char *workload, int random, int argc, char **argv)
{
    long n = bench_n(argc, argv, 1000000);
    for (int stackless = 0; stackless < 2; stackless++) {
        pid_t pid = fork();
        if (pid == 0) {
            sleepers_cfg c = {workload, n, random, stackless};
            weft_config cfg;
            weft_config_init(&cfg);
            _exit(weft_run(&cfg, sleepers_main, &c, NULL) ? 1 : 0);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            return 1;
    }
    return 0;
}

#endif
