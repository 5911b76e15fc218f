/* spawn_join: spawn 1,000,000 tiny tasks that each add 1 to a counter, then join them all.
 * Reports stackful tasks ("weft") and stackless ones ("weft_stackless") apart. */
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

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    weft_task **ts = malloc((size_t)n * sizeof *ts);
    add_future *fs = malloc((size_t)n * sizeof *fs);
    double v[BENCH_REPEATS], vs[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        counter = 0;
        int64_t t0 = bench_ns();
        for (long i = 0; i < n; i++)
            weft_spawn(&ts[i], add_one, NULL, NULL);
        for (long i = 0; i < n; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
        v[r] = (double)(bench_ns() - t0) / (double)n;
        if (counter != n)
            fprintf(stderr, "spawn_join: counter %ld != %ld\n", counter, n), exit(1);

        counter = 0;
        t0 = bench_ns();
        for (long i = 0; i < n; i++) {
            weft_future_init(&fs[i].base, &add_ops);
            weft_spawn_future(&ts[i], &fs[i].base, NULL);
        }
        for (long i = 0; i < n; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
        vs[r] = (double)(bench_ns() - t0) / (double)n;
        if (counter != n)
            fprintf(stderr, "spawn_join: counter %ld != %ld\n", counter, n), exit(1);
    }
    bench_emit("weft", "spawn_join", n, bench_median(v, BENCH_REPEATS), "ns/task", NULL);
    bench_emit("weft_stackless", "spawn_join", n, bench_median(vs, BENCH_REPEATS), "ns/task", NULL);
    free(ts);
    free(fs);
    return NULL;
}

int main(int argc, char **argv)
{
    return weft_run(NULL, bench, (void *)(intptr_t)bench_n(argc, argv, 1000000), NULL) ? 1 : 0;
}
