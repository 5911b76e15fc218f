/* block_in_place: what a call that blocks its thread costs around it, with an fn that returns
 * at once, so that only the machinery is measured. Two ways, one worker, ns per call, medians
 * of BENCH_REPEATS:
 * - "in_place": weft_block_in_place, the worker handed to a relief thread and taken back
 *   (on io_uring it is the pool's path: docs/architecture.md, "Handing a worker over");
 * - "pool": weft_blocking, fn run on a pool thread while the task parks.
 * Not a workload of bench-workloads.md: the figure the docs give for the hand-off's cost.
 *   bench_block_in_place [n]   (default 20,000 calls each) */
#include <stdbool.h>
#include <string.h>
#include <weft.h>

#include "bench_common.h"

static void *noop(void *arg)
{
    return arg;
}

static double per_call(long n, bool in_place)
{
    int64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        int r = in_place ? weft_block_in_place(noop, NULL, NULL)
                         : weft_blocking(noop, NULL, NULL, WEFT_FOREVER);
        if (r < 0) {
            fprintf(stderr, "block_in_place: %s\n", weft_strerror(r));
            return -1;
        }
    }
    return (double)(bench_ns() - t0) / (double)n;
}

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    double a[BENCH_REPEATS], b[BENCH_REPEATS];
    per_call(n / 10 + 1, true); /* warm: the relief and pool threads exist */
    per_call(n / 10 + 1, false);
    for (int r = 0; r < BENCH_REPEATS; r++) {
        a[r] = per_call(n, true);
        b[r] = per_call(n, false);
        if (a[r] < 0 || b[r] < 0)
            return (void *)1;
    }
    char extra[64];
    snprintf(extra, sizeof extra, ",\"backend\":\"%s\"", weft_backend());
    bench_emit("weft_in_place", "block_in_place", n, bench_median(a, BENCH_REPEATS), "ns/call",
               extra);
    bench_emit("weft_pool", "block_in_place", n, bench_median(b, BENCH_REPEATS), "ns/call",
               extra);
    return NULL;
}

int main(int argc, char **argv)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    return weft_run(&c, bench, (void *)(intptr_t)bench_n(argc, argv, 20000), NULL) ? 1 : 0;
}
