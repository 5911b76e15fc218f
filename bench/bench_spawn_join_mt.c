/* spawn_join_mt (bench-workloads.md): one task spawns 1,000,000 tiny tasks that each add 1
 * to a shared counter, onto N workers, then joins them all. Sharded: the spawner places them
 * round robin with weft_spawn_on (worker k gets tasks k, k + N, ...); stealing: it spawns
 * them with weft_spawn and the idle workers take them. ns per task, the median of
 * BENCH_REPEATS repetitions; "off_spawner_pct" is the share of the tasks that ran on another
 * worker than the spawner's (how far the work spread).
 * Usage: bench_spawn_join_mt [n] [--threads N]... [--mode sharded|stealing]...
 *   (default: 1 and 2 threads, both modes, each in its own process) */
#include <stdbool.h>
#include <weft.h>

#include "bench_mt_common.h"

static atomic_long counter;

static void *add_one(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    mt_count_here();
    return NULL;
}

/* One repetition; ns per task, or a negative errno if a spawn failed. */
static double once(weft_task **ts, long n, unsigned nworkers, int mode)
{
    atomic_store(&counter, 0);
    mt_count_reset();
    int64_t t0 = bench_ns();
    for (long i = 0; i < n; i++) {
        int r = mode == WEFT_MODE_SHARDED
                    ? weft_spawn_on((unsigned)(i % nworkers), &ts[i], add_one, NULL, NULL)
                    : weft_spawn(&ts[i], add_one, NULL, NULL);
        if (r < 0) {
            fprintf(stderr, "spawn_join_mt: spawn %ld: %s\n", i, weft_strerror(r));
            for (long k = 0; k < i; k++)
                weft_join(ts[k], NULL, WEFT_FOREVER);
            return r;
        }
    }
    for (long i = 0; i < n; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    double v = (double)(bench_ns() - t0) / (double)n;
    long got = atomic_load(&counter);
    if (got != n) {
        fprintf(stderr, "spawn_join_mt: counter %ld != %ld\n", got, n);
        return -1;
    }
    return v;
}

static void *bench(void *arg)
{
    const mt_run_ctx *ctx = arg;
    long n = ctx->n;
    unsigned nworkers = weft_worker_count();
    if (nworkers != ctx->threads) {
        fprintf(stderr, "spawn_join_mt: %u workers running, %u asked for\n", nworkers,
                ctx->threads);
        return (void *)1;
    }
    weft_task **ts = malloc((size_t)n * sizeof *ts);
    if (!ts)
        return (void *)1;
    double v[BENCH_REPEATS], spread = 0;
    for (int r = 0; r < BENCH_REPEATS; r++) {
        int home = weft_worker_index(); /* the spawner's worker as the repetition starts */
        v[r] = once(ts, n, nworkers, ctx->mode);
        if (v[r] < 0) {
            free(ts);
            return (void *)1;
        }
        spread += mt_off_home_pct(home) / BENCH_REPEATS;
    }
    free(ts);
    char impl[32], extra[160];
    snprintf(impl, sizeof impl, "weft_%s", mt_mode_name(ctx->mode));
    snprintf(extra, sizeof extra,
             ",\"threads\":%u,\"mode\":\"%s\",\"off_spawner_pct\":%.1f,\"rss_bytes\":%lld",
             ctx->threads, mt_mode_name(ctx->mode), spread, bench_status_bytes("VmHWM"));
    bench_emit(impl, "spawn_join_mt", n, bench_median(v, BENCH_REPEATS), "ns/task", extra);
    return NULL;
}

int main(int argc, char **argv)
{
    mt_args a = mt_parse(argc, argv, 1000000);
    return mt_main(&a, bench);
}
