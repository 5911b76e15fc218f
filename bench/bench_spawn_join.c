/* spawn_join: spawn 1,000,000 tiny tasks that each add 1 to a counter, then join them all.
 * Reports stackful tasks in queue order ("weft": each waits at the tail until the spawner
 * joins), stackful tasks spawned WEFT_SPAWN_CHILD_FIRST ("weft_child_first": each runs and
 * finishes inside its spawn, libdill's order), stackless ones ("weft_stackless"), and the
 * same work as members of a weft_group waited for once ("weft_group", and
 * "weft_group_child_first", which is libdill's bundle: a finished member is reaped at once,
 * so one record and one stack serve every task) apart.
 * Usage: bench_spawn_join [n [queue|child_first|stackless|group|group_child_first]]
 *   (default: all five) */
#include <stdbool.h>
#include <weft.h>

#include "bench_common.h"

static long counter;

static void *add_one(void *arg)
{
    (void)arg;
    counter++;
    return NULL;
}

/* A stackless task: a future whose first poll adds 1 and completes. */
typedef struct add_future {
    weft_future base;
} add_future;

static int add_poll(weft_future *self, weft_context *cx)
{
    (void)cx;
    counter++;
    weft_future_complete(self, 0, NULL);
    return WEFT_READY;
}

static const weft_future_ops add_ops = {add_poll, NULL};

static long n;
static const char *only; /* one mode, or NULL for all */

static void check_counter(void)
{
    if (counter != n)
        fprintf(stderr, "spawn_join: counter %ld != %ld\n", counter, n), exit(1);
}

/* One repetition of the stackful workload with the given spawn options; ns per task. */
static double stackful(weft_task **ts, const weft_spawn_opts *opts)
{
    counter = 0;
    int64_t t0 = bench_ns();
    for (long i = 0; i < n; i++)
        weft_spawn(&ts[i], add_one, NULL, opts);
    for (long i = 0; i < n; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    double v = (double)(bench_ns() - t0) / (double)n;
    check_counter();
    return v;
}

/* One repetition as a group: members spawned into a weft_group, then one wait for all of
 * them (libdill's bundle: a finished member's record is reaped at once, so with
 * WEFT_SPAWN_CHILD_FIRST one record and one stack serve every task); ns per task. */
static double grouped(const weft_spawn_opts *opts)
{
    counter = 0;
    int64_t t0 = bench_ns();
    weft_group *g;
    if (weft_group_create(&g) < 0)
        fprintf(stderr, "spawn_join: group\n"), exit(1);
    for (long i = 0; i < n; i++)
        if (weft_group_spawn(g, add_one, NULL, opts) < 0)
            fprintf(stderr, "spawn_join: group spawn\n"), exit(1);
    if (weft_group_wait(g, WEFT_FOREVER) < 0 || weft_group_close(g) < 0)
        fprintf(stderr, "spawn_join: group wait\n"), exit(1);
    double v = (double)(bench_ns() - t0) / (double)n;
    check_counter();
    return v;
}

static double stackless(weft_task **ts, add_future *fs)
{
    counter = 0;
    int64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        weft_future_init(&fs[i].base, &add_ops);
        weft_spawn_future(&ts[i], &fs[i].base, NULL);
    }
    for (long i = 0; i < n; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    double v = (double)(bench_ns() - t0) / (double)n;
    check_counter();
    return v;
}

static bool want(const char *mode)
{
    return !only || strcmp(only, mode) == 0;
}

static void *bench(void *arg)
{
    (void)arg;
    weft_task **ts = malloc((size_t)n * sizeof *ts);
    add_future *fs = malloc((size_t)n * sizeof *fs);
    const weft_spawn_opts child_first = {.flags = WEFT_SPAWN_CHILD_FIRST};
    double v[BENCH_REPEATS], vc[BENCH_REPEATS], vs[BENCH_REPEATS], vg[BENCH_REPEATS],
        vgc[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        if (want("queue"))
            v[r] = stackful(ts, NULL);
        if (want("child_first"))
            vc[r] = stackful(ts, &child_first);
        if (want("stackless"))
            vs[r] = stackless(ts, fs);
        if (want("group"))
            vg[r] = grouped(NULL);
        if (want("group_child_first"))
            vgc[r] = grouped(&child_first);
    }
    if (want("queue"))
        bench_emit("weft", "spawn_join", n, bench_median(v, BENCH_REPEATS), "ns/task",
                   ",\"mode\":\"queue\"");
    if (want("child_first"))
        bench_emit("weft_child_first", "spawn_join", n, bench_median(vc, BENCH_REPEATS), "ns/task",
                   ",\"mode\":\"child_first\"");
    if (want("stackless"))
        bench_emit("weft_stackless", "spawn_join", n, bench_median(vs, BENCH_REPEATS), "ns/task",
                   NULL);
    if (want("group"))
        bench_emit("weft_group", "spawn_join", n, bench_median(vg, BENCH_REPEATS), "ns/task",
                   ",\"mode\":\"group\"");
    if (want("group_child_first"))
        bench_emit("weft_group_child_first", "spawn_join", n, bench_median(vgc, BENCH_REPEATS),
                   "ns/task", ",\"mode\":\"group_child_first\"");
    free(ts);
    free(fs);
    return NULL;
}

int main(int argc, char **argv)
{
    n = bench_n(argc, argv, 1000000);
    only = argc > 2 ? argv[2] : NULL;
    return weft_run(NULL, bench, NULL, NULL) ? 1 : 0;
}
