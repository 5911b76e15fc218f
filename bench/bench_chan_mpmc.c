/* chan_mpmc (bench-workloads.md): N producers and N consumers share one channel of capacity
 * 1,024; the producers send 10,000,000 longs in all, the consumers count what they receive
 * until the channel is closed and drained. Producer k and consumer k run on worker k
 * (weft_spawn_on; sharded mode), so with N workers every worker sends and receives. ns per
 * message, the median of BENCH_REPEATS repetitions.
 * Usage: bench_chan_mpmc [n] [--threads N]... [--mode sharded|stealing]...
 *   (default: 1 and 2 threads, both modes, each in its own process) */
#include <weft.h>

#include "bench_mt_common.h"

static weft_chan *ch;
static atomic_long received;

static void *producer(void *arg)
{
    long share = (long)(intptr_t)arg;
    for (long k = 0; k < share; k++)
        if (weft_chan_send(ch, &k, WEFT_FOREVER) < 0)
            return (void *)1;
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    long v, mine = 0;
    while (weft_chan_recv(ch, &v, WEFT_FOREVER) == 0)
        mine++;
    atomic_fetch_add_explicit(&received, mine, memory_order_relaxed);
    return NULL;
}

/* One repetition; ns per message, or -1 on a failure. */
static double once(long n, unsigned nworkers, int mode)
{
    weft_task *prod[MT_MAX_THREADS], *cons[MT_MAX_THREADS];
    if (weft_chan_create(&ch, sizeof(long), 1024) < 0)
        return -1;
    atomic_store(&received, 0);
    int bad = 0;
    int64_t t0 = bench_ns();
    for (unsigned i = 0; i < nworkers; i++) {
        long share = n / nworkers + ((long)i < n % nworkers ? 1 : 0);
        /* Stealing: all from here, and the idle workers take them. */
        unsigned w = mode == WEFT_MODE_SHARDED ? i : (unsigned)weft_worker_index();
        if (weft_spawn_on(w, &prod[i], producer, (void *)(intptr_t)share, NULL) < 0 ||
            weft_spawn_on(w, &cons[i], consumer, NULL, NULL) < 0) {
            fprintf(stderr, "chan_mpmc: spawn failed\n");
            exit(1); /* a half-started repetition cannot be unwound cleanly */
        }
    }
    for (unsigned i = 0; i < nworkers; i++) {
        void *r;
        weft_join(prod[i], &r, WEFT_FOREVER);
        bad |= r != NULL;
    }
    weft_chan_close(ch); /* the consumers drain what is left, then see it closed */
    for (unsigned i = 0; i < nworkers; i++)
        weft_join(cons[i], NULL, WEFT_FOREVER);
    double v = (double)(bench_ns() - t0) / (double)n;
    weft_chan_release(ch);
    long got = atomic_load(&received);
    if (bad || got != n) {
        fprintf(stderr, "chan_mpmc: %ld messages of %ld received\n", got, n);
        return -1;
    }
    return v;
}

static void *bench(void *arg)
{
    const mt_run_ctx *ctx = arg;
    unsigned nworkers = weft_worker_count();
    if (nworkers != ctx->threads) {
        fprintf(stderr, "chan_mpmc: %u workers running, %u asked for\n", nworkers, ctx->threads);
        return (void *)1;
    }
    double v[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++)
        if ((v[r] = once(ctx->n, nworkers, ctx->mode)) < 0)
            return (void *)1;
    char impl[32], extra[96];
    snprintf(impl, sizeof impl, "weft_%s", mt_mode_name(ctx->mode));
    snprintf(extra, sizeof extra, ",\"threads\":%u,\"mode\":\"%s\"", ctx->threads,
             mt_mode_name(ctx->mode));
    bench_emit(impl, "chan_mpmc", ctx->n, bench_median(v, BENCH_REPEATS), "ns/msg", extra);
    return NULL;
}

int main(int argc, char **argv)
{
    mt_args a = mt_parse(argc, argv, 10000000);
    return mt_main(&a, bench);
}
