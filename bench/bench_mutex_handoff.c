/* mutex_handoff: two tasks pass one weft_mutex back and forth, 1,000,000 hand-offs: each
 * unlock gives the lock straight to the other task, parked in lock. ns per hand-off. */
#include <weft.h>

#include "bench_common.h"

static weft_mutex mu = WEFT_MUTEX_INIT;

static void *other(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        weft_mutex_lock(&mu, WEFT_FOREVER);
        weft_mutex_unlock(&mu);
    }
    return NULL;
}

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    double v[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        weft_mutex_lock(&mu, WEFT_FOREVER);
        weft_task *t;
        weft_spawn(&t, other, (void *)(intptr_t)(n / 2), NULL);
        weft_yield(); /* the other task parks in lock */
        int64_t t0 = bench_ns();
        for (long i = 0; i < n / 2; i++) {
            weft_mutex_unlock(&mu);             /* hand-off to the other task */
            weft_mutex_lock(&mu, WEFT_FOREVER); /* parks until it hands it back */
        }
        v[r] = (double)(bench_ns() - t0) / (double)n;
        weft_mutex_unlock(&mu);
        weft_join(t, NULL, WEFT_FOREVER);
    }
    bench_emit("weft", "mutex_handoff", n, bench_median(v, BENCH_REPEATS), "ns/handoff", NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    return weft_run(NULL, bench, (void *)(intptr_t)bench_n(argc, argv, 1000000), NULL) ? 1 : 0;
}
