/* yield: two tasks on one worker yield to each other, 10,000,000 yields in total. */
#include <weft.h>

#include "bench_common.h"

static void *yielder(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        weft_yield();
    return NULL;
}

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    double v[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        weft_task *a, *b;
        weft_spawn(&a, yielder, (void *)(intptr_t)(n / 2), NULL);
        weft_spawn(&b, yielder, (void *)(intptr_t)(n / 2), NULL);
        int64_t t0 = bench_ns();
        weft_join(a, NULL, WEFT_FOREVER);
        weft_join(b, NULL, WEFT_FOREVER);
        v[r] = (double)(bench_ns() - t0) / (double)n;
    }
    bench_emit("weft", "yield", n, bench_median(v, BENCH_REPEATS), "ns/yield", NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    return weft_run(NULL, bench, (void *)(intptr_t)bench_n(argc, argv, 10000000), NULL) ? 1 : 0;
}
