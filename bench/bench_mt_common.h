/* Shared by weft's multi-core benchmarks (bench-workloads.md, "Multi-core workloads"): the
 * command line (`[n] [--threads N]... [--mode sharded|stealing]...`), one fresh process per
 * thread count and mode (a run's peak RSS and pooled stacks never carry over into the next),
 * and per-worker counters that tell how far the work spread. */
#ifndef WEFT_BENCH_MT_COMMON_H
#define WEFT_BENCH_MT_COMMON_H

#include <errno.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "bench_common.h"

#define MT_MAX_THREADS 256 /* more than any machine these run on has cores */
#define MT_MAX_ARGS    16

typedef struct mt_args {
    long n;                        /* the work count, or the contract's default */
    unsigned threads[MT_MAX_ARGS]; /* worker counts, default 1 and 2 */
    int nthreads;
    int modes[MT_MAX_ARGS]; /* WEFT_MODE_SHARDED / _STEALING, default both */
    int nmodes;
} mt_args;

static inline const char *mt_mode_name(int mode)
{
    return mode == WEFT_MODE_STEALING ? "stealing" : "sharded";
}

/* Parses argv; exits with status 2 on a bad argument. */
static inline mt_args mt_parse(int argc, char **argv, long dflt)
{
    mt_args a = {.n = dflt};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && a.nthreads < MT_MAX_ARGS) {
            long t = atol(argv[++i]);
            if (t < 1 || t > MT_MAX_THREADS)
                goto usage;
            a.threads[a.nthreads++] = (unsigned)t;
        } else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc && a.nmodes < MT_MAX_ARGS) {
            const char *m = argv[++i];
            if (strcmp(m, "sharded") == 0)
                a.modes[a.nmodes++] = WEFT_MODE_SHARDED;
            else if (strcmp(m, "stealing") == 0)
                a.modes[a.nmodes++] = WEFT_MODE_STEALING;
            else
                goto usage;
        } else if (argv[i][0] != '-' && atol(argv[i]) > 0) {
            a.n = atol(argv[i]);
        } else {
            goto usage;
        }
    }
    if (!a.nthreads)
        a.threads[a.nthreads++] = 1, a.threads[a.nthreads++] = 2;
    if (!a.nmodes)
        a.modes[a.nmodes++] = WEFT_MODE_SHARDED, a.modes[a.nmodes++] = WEFT_MODE_STEALING;
    return a;
usage:
    fprintf(stderr, "usage: %s [n] [--threads N]... [--mode sharded|stealing]...\n", argv[0]);
    exit(2);
}

/* What one run's main task gets as its argument. */
typedef struct mt_run_ctx {
    long n;
    unsigned threads;
    int mode;
} mt_run_ctx;

/* Runs fn(ctx) as the main task of a runtime of ctx->threads workers in ctx->mode, in a
 * child process; fn returns NULL on success. Returns 0, 1 if it failed, or -ENOTSUP if
 * weft_run refused the mode (reported on stderr: a mode not built yet is skipped, not a
 * failure). */
static inline int mt_run(mt_run_ctx *ctx, weft_fn fn)
{
    unsigned threads = ctx->threads;
    int mode = ctx->mode;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = threads;
        cfg.mode = mode;
        cfg.pin_workers = 0; /* the runner pins the process; workers float inside that */
        void *res = NULL;
        int r = weft_run(&cfg, fn, ctx, &res);
        fflush(stdout);
        if (r == -ENOTSUP)
            _exit(77);
        if (r < 0)
            fprintf(stderr, "weft_run (%u workers, %s): %s\n", threads, mt_mode_name(mode),
                    weft_strerror(r));
        _exit(r < 0 || res ? 1 : 0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return 1;
    if (WEXITSTATUS(st) == 77) {
        fprintf(stderr,
                "%s mode with %u workers: not supported yet (weft_run: -ENOTSUP), skipped\n",
                mt_mode_name(mode), threads);
        return -ENOTSUP;
    }
    return WEXITSTATUS(st) ? 1 : 0;
}

/* Runs fn once per (thread count, mode) of `a`, each in its own process; the exit status
 * for main. */
static inline int mt_main(const mt_args *a, weft_fn fn)
{
    int status = 0;
    for (int t = 0; t < a->nthreads; t++)
        for (int m = 0; m < a->nmodes; m++) {
            mt_run_ctx ctx = {.n = a->n, .threads = a->threads[t], .mode = a->modes[m]};
            if (mt_run(&ctx, fn) == 1)
                status = 1;
        }
    return status;
}

/* How many tasks ran on each worker: one cache line per worker, so that counting costs no
 * contention (relaxed adds: read once, after every counted task has been joined). */
typedef struct mt_worker_count {
    _Alignas(64) atomic_long n;
} mt_worker_count;

static mt_worker_count mt_ran_on[MT_MAX_THREADS];

static inline void mt_count_here(void)
{
    int w = weft_worker_index();
    if (w >= 0 && w < MT_MAX_THREADS)
        atomic_fetch_add_explicit(&mt_ran_on[w].n, 1, memory_order_relaxed);
}

static inline void mt_count_reset(void)
{
    for (int i = 0; i < MT_MAX_THREADS; i++)
        atomic_store_explicit(&mt_ran_on[i].n, 0, memory_order_relaxed);
}

/* The percentage of the counted tasks that ran on a worker other than `home`. */
static inline double mt_off_home_pct(int home)
{
    long all = 0, away = 0;
    for (int i = 0; i < MT_MAX_THREADS; i++) {
        long v = atomic_load_explicit(&mt_ran_on[i].n, memory_order_relaxed);
        all += v;
        if (i != home)
            away += v;
    }
    return all ? 100.0 * (double)away / (double)all : 0;
}

#endif
