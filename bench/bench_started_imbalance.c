/* started_imbalance (weft's own, not in bench-workloads.md): load that grows inside tasks
 * that have already started. Eight tasks start on worker 0 (spawned child first by the main
 * task) and each runs n rounds of 50 us of work then a yield. In stealing mode only
 * weft_config.move_started lets the other workers take any of them: without it the wall
 * time is one worker's whatever the worker count. Prints wall ms for move_started off and
 * on, at the worker count given (default 2; at least 2 for the figures to differ).
 * Usage: bench_started_imbalance [n [workers]]   (n default 2000) */
#include <weft.h>

#include "bench_common.h"

enum { NTASKS = 8, WORK_NS = 50000 };

static long rounds;

static void *work(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        int64_t t0 = bench_ns();
        while (bench_ns() - t0 < WORK_NS)
            ;
        weft_yield();
    }
    return NULL;
}

static void *run(void *arg)
{
    double *ms = arg;
    weft_task *t[NTASKS];
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    int64_t t0 = bench_ns();
    for (int i = 0; i < NTASKS; i++)
        if (weft_spawn(&t[i], work, NULL, &o) < 0)
            return (void *)1;
    for (int i = 0; i < NTASKS; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    *ms = (double)(bench_ns() - t0) / 1e6;
    return NULL;
}

int main(int argc, char **argv)
{
    rounds = bench_n(argc, argv, 2000);
    unsigned workers = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    for (int move = 0; move < 2; move++) {
        weft_config c;
        weft_config_init(&c);
        c.workers = workers;
        c.mode = WEFT_MODE_STEALING;
        c.move_started = move ? 1 : -1;
        double ms = 0;
        void *r = NULL;
        if (weft_run(&c, run, &ms, &r) != 0 || r != NULL) {
            fprintf(stderr, "started_imbalance: the run failed\n");
            return 1;
        }
        char extra[64];
        snprintf(extra, sizeof extra, ",\"threads\":%u,\"move_started\":%d", workers, move);
        bench_emit(move ? "weft_move_started" : "weft_stealing", "started_imbalance", rounds,
                   ms, "ms_wall", extra);
    }
    return 0;
}
