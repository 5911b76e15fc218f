/* sched_latency (bench-workloads.md, multi-core form): N workers kept busy by 1,000 tasks
 * that each yield in a loop, spread over the workers with weft_spawn_on; a probe task on
 * worker 0 sleeps 1 ms, 10,000 times, and records how late it resumes (the real clock on
 * resume minus its deadline). p50, p99 and max in µs, per worker count and mode.
 * Usage: bench_sched_latency_mt [n] [--threads N]... [--mode sharded|stealing]... */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bench_mt_common.h"

#define NBUSY 1000

static atomic_bool done;

/* Yields counted per worker, each on its own line (no contention in the measured loop). */
static mt_worker_count yields[MT_MAX_THREADS];

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&done, memory_order_relaxed)) {
        int w = weft_worker_index();
        atomic_fetch_add_explicit(&yields[w].n, 1, memory_order_relaxed);
        weft_yield();
    }
    return NULL;
}

static void *bench(void *arg)
{
    mt_run_ctx *ctx = arg;
    long n = ctx->n;
    unsigned nw = weft_worker_count();
    int64_t *late = malloc((size_t)n * sizeof *late);
    weft_task **t = malloc(NBUSY * sizeof *t);
    if (!late || !t)
        return (void *)1;
    atomic_store(&done, false);
    for (int i = 0; i < NBUSY; i++)
        if (weft_spawn_on((unsigned)i % nw, &t[i], busy, NULL, NULL) != 0)
            return (void *)1;
    weft_sleep(10 * WEFT_MSEC); /* every busy task has run once: stacks bound, queues full */
    for (long i = 0; i < n; i++) {
        int64_t deadline = bench_ns() + WEFT_MSEC;
        weft_sleep_until(deadline);
        late[i] = bench_ns() - deadline;
    }
    atomic_store(&done, true);
    for (int i = 0; i < NBUSY; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    long total = 0, on0 = atomic_load(&yields[0].n);
    for (unsigned k = 0; k < nw; k++)
        total += atomic_load(&yields[k].n);
    qsort(late, (size_t)n, sizeof *late, bench_cmp_i64);
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"threads\":%u,\"mode\":\"%s\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
             "\"busy_tasks\":%d,\"yields_off_worker0_pct\":%.1f",
             ctx->threads, mt_mode_name(ctx->mode), (double)late[n / 2] / 1e3,
             (double)late[(n * 99 + 99) / 100 - 1] / 1e3, (double)late[n - 1] / 1e3, NBUSY,
             total ? 100.0 * (double)(total - on0) / (double)total : 0.0);
    char impl[32];
    snprintf(impl, sizeof impl, "weft_%s", mt_mode_name(ctx->mode));
    bench_emit(impl, "sched_latency", n, (double)late[(n * 99 + 99) / 100 - 1] / 1e3, "us_p99",
               extra);
    free(late);
    free(t);
    return NULL;
}

int main(int argc, char **argv)
{
    mt_args a = mt_parse(argc, argv, 10000);
    return mt_main(&a, bench);
}
