/* A stress test of the blocking pool under ThreadSanitizer: many tasks hand jobs to four
 * threads, some withdrawn by deadlines, some cancelled while queued or running; every job
 * that ran must have reported to its task, and nothing may race. Then jobs that may be left
 * behind (weft__pool_run_abandonable, getaddrinfo's): each argument is freed exactly once,
 * by its caller or by the thread that finishes it. Prints "N passed, N failed". */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <weft.h>

#include "pool.h"

enum { NTASKS = 32, ROUNDS = 50 };

static atomic_long nran;

static void *job(void *arg)
{
    long *slot = arg;
    *slot += 1; /* written on the pool thread, read by the task after the wake */
    atomic_fetch_add(&nran, 1);
    if (*slot % 3 == 0)
        usleep(50);
    return slot;
}

static void *worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    long slot = 0, done = 0;
    for (int r = 0; r < ROUNDS; r++) {
        void *res = NULL;
        int64_t deadline = (id + r) % 5 == 0 ? weft_deadline_in(20 * WEFT_USEC) : WEFT_FOREVER;
        long before = slot;
        int rc = weft_blocking(job, &slot, &res, deadline);
        if (rc == 0 && (res != &slot || slot != before + 1))
            return (void *)-1; /* a result that was not this job's */
        if (rc == 0)
            done++;
        else if (rc != -ETIMEDOUT && rc != -ECANCELED)
            return (void *)-2;
        else if (slot != before)
            return (void *)-3; /* withdrawn, yet it ran */
    }
    return (void *)done;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *t[NTASKS];
    for (long i = 0; i < NTASKS; i++)
        weft_spawn(&t[i], worker, (void *)(intptr_t)i, NULL);
    weft_yield();
    weft_cancel(t[3]); /* cancelled mid-way: its running job still completes */
    long total = 0, bad = 0;
    for (int i = 0; i < NTASKS; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        if (r == WEFT_CANCELED)
            continue;
        if ((long)(intptr_t)r < 0)
            bad++;
        else
            total += (long)(intptr_t)r;
    }
    weft_stats st;
    weft_stats_get(&st);
    return (void *)(intptr_t)(bad == 0 && (long)st.npool_jobs == atomic_load(&nran) &&
                              total <= atomic_load(&nran) && st.npool_threads <= 4);
}

/* An argument of a job that may be left behind: written by the job, read by its caller
 * after a return of 0, freed by whoever has it last. */
typedef struct left_arg {
    long value;
} left_arg;

static atomic_long nallocs, nfrees;

static void *left_job(void *arg)
{
    left_arg *a = arg;
    a->value = 42;
    if (atomic_fetch_add(&nran, 1) % 2 == 0)
        usleep(100);
    return NULL;
}

static void left_free(void *arg)
{
    free(arg);
    atomic_fetch_add(&nfrees, 1);
}

static void *left_worker(void *arg)
{
    long id = (long)(intptr_t)arg, bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
        left_arg *a = malloc(sizeof *a);
        a->value = 0;
        atomic_fetch_add(&nallocs, 1);
        int64_t deadline = (id + r) % 3 == 0 ? weft_deadline_in(30 * WEFT_USEC) : WEFT_FOREVER;
        int rc = weft__pool_run_abandonable(left_job, a, left_free, deadline);
        if (rc == 0) {
            bad += a->value != 42;
            left_free(a);
        } else if (rc != -ETIMEDOUT && rc != -ECANCELED) {
            bad++;
        }
    }
    return (void *)bad;
}

static void *left_main(void *arg)
{
    (void)arg;
    weft_task *t[NTASKS];
    for (long i = 0; i < NTASKS; i++)
        weft_spawn(&t[i], left_worker, (void *)(intptr_t)i, NULL);
    weft_yield();
    weft_cancel(t[5]);
    long bad = 0;
    for (int i = 0; i < NTASKS; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        if (r != WEFT_CANCELED)
            bad += (long)(intptr_t)r;
    }
    return (void *)(intptr_t)(bad == 0);
}

int main(void)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_threads = 4;
    void *ok = NULL;
    int rc = weft_run(&cfg, main_task, NULL, &ok);
    int passed = rc == 0 && ok == (void *)1;
    ok = NULL;
    rc = weft_run(&cfg, left_main, NULL, &ok);
    /* The runtime's end waited for the pool's threads: every argument is freed by now. */
    passed = passed && rc == 0 && ok == (void *)1 && atomic_load(&nallocs) == atomic_load(&nfrees);
    printf("%d passed, %d failed\n", passed, !passed);
    return passed ? 0 : 1;
}
