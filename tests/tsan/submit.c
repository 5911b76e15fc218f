/* A stress test of weft_submit_to and the sharded values, run under ThreadSanitizer (a plain
 * program: Criterion cannot start under TSan). It prints one line per check and exits
 * non-zero on any failure.
 *
 * - round trips: a driver task on every worker submits batches to every worker (itself
 *   included) and awaits them; every result must be the one its function computed on the
 *   worker named, every function must run exactly once, and every future complete once;
 * - dropped futures: one submission in 7 has its future destroyed at once, racing with the
 *   function and its reply; those functions still run exactly once;
 * - map-reduce: every driver runs a reduce over a sharded counter each round, while the
 *   others bump their own worker's instance;
 * - the stop: submissions left running (sleeping) and in flight when the main task returns
 *   all complete with -ECANCELED, and the runtime ends.
 * Run with N = 2 and N = 4 workers (more workers than this machine's CPUs is still N). One
 * driver per worker: a ring from one worker holds one sender parked for room (smp.c). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
enum { ROUNDS = 40, BATCH = 32 }; /* TSan is ~10x slower: the same paths, fewer laps */
#else
enum { ROUNDS = 150, BATCH = 100 };
#endif
enum { MAXW = 4, NWATCH = 16 };

#include "check.h"

static unsigned nworkers;
static size_t nids;        /* submissions of the round trips */
static unsigned char *ran; /* ran[id]: how many times submission id's function ran */
static atomic_size_t nran; /* all of them, for the dropped ones' count */
static weft_sharded *counters;

/* An id with room for the worker that must run it in the low bits. */
static void *compute(void *arg)
{
    uintptr_t a = (uintptr_t)arg;
    size_t id = a >> 8;
    unsigned want = (unsigned)(a & 0xff);
    CHECK(weft_worker_index() == (int)want, "submission %zu ran on %d, not %u", id,
          weft_worker_index(), want);
    __atomic_fetch_add(&ran[id], 1, __ATOMIC_RELAXED);
    atomic_fetch_add(&nran, 1);
    uint64_t *c = weft_sharded_local(counters);
    (*c)++;
    if (id % 5 == 0)
        weft_yield(); /* some replies leave after other tasks ran */
    return (void *)(a * 3 + want);
}

static void *count_map(void *value, unsigned worker, void *arg)
{
    (void)worker, (void)arg;
    return (void *)(uintptr_t) * (uint64_t *)value;
}

static void *add(void *acc, void *x, void *arg)
{
    (void)arg;
    return (void *)((uintptr_t)acc + (uintptr_t)x);
}

static void *driver(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    weft_future *f[BATCH];
    uintptr_t last_total = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        for (unsigned j = 0; j < nworkers; j++) {
            size_t base = (((size_t)me * ROUNDS + round) * nworkers + j) * BATCH;
            for (unsigned i = 0; i < BATCH; i++) {
                uintptr_t a = ((base + i) << 8) | j;
                int r = weft_submit_to(j, compute, (void *)a, &f[i]);
                CHECK(r == 0, "submit_to: %s", weft_strerror(r));
                if (i % 7 == 3) {
                    weft_future_destroy(f[i]); /* races with the function and its reply */
                    f[i] = NULL;
                }
            }
            for (unsigned i = 0; i < BATCH; i++) {
                if (!f[i])
                    continue;
                uintptr_t a = ((base + i) << 8) | j;
                void *v = NULL;
                int r = weft_await(f[i], &v, WEFT_FOREVER);
                CHECK(r == 0 && v == (void *)(a * 3 + j), "submission %zu: %d, %p", base + i, r, v);
                weft_future_destroy(f[i]);
            }
        }
        void *total = NULL;
        int r = weft_sharded_reduce(counters, count_map, add, NULL, &total, WEFT_FOREVER);
        CHECK(r == 0, "reduce: %s", weft_strerror(r));
        /* The counters only grow: a later reduce never sees less. */
        CHECK((uintptr_t)total >= last_total, "reduce went back: %lu < %lu",
              (unsigned long)(uintptr_t)total, (unsigned long)last_total);
        last_total = (uintptr_t)total;
    }
    return NULL;
}

static atomic_int watched_ok, watched;

static void *sleeps(void *arg)
{
    weft_sleep_until(WEFT_FOREVER);
    return arg;
}

static void *watcher(void *arg)
{
    weft_future *f;
    int r = weft_submit_to((unsigned)(uintptr_t)arg, sleeps, NULL, &f);
    CHECK(r == 0, "submit_to: %s", weft_strerror(r));
    atomic_fetch_add(&watched, 1);
    weft_await(f, NULL, WEFT_FOREVER); /* ends with the stop: ours or the future's */
    weft_context cx = {weft_waker_current()};
    while (weft_future_poll(f, &cx) == WEFT_PENDING)
        weft_yield(); /* cancelled: no park, but yields */
    if (f->status == -ECANCELED)
        atomic_fetch_add(&watched_ok, 1);
    weft_future_destroy(f);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    int r = weft_sharded_create(&counters, sizeof(uint64_t), NULL, NULL, NULL);
    CHECK(r == 0, "sharded_create: %s", weft_strerror(r));
    weft_task *d[MAXW];
    for (unsigned k = 0; k < nworkers; k++)
        CHECK(weft_spawn_on(k, &d[k], driver, (void *)(uintptr_t)k, NULL) == 0, "spawn driver");
    for (unsigned k = 0; k < nworkers; k++)
        CHECK(weft_join(d[k], NULL, WEFT_FOREVER) == 0, "join driver");
    /* The dropped futures' functions too: each runs once, however late. */
    while (atomic_load(&nran) < nids)
        weft_sleep(100 * WEFT_USEC);
    int bad = 0;
    for (size_t i = 0; i < nids; i++)
        bad += ran[i] != 1;
    CHECK(bad == 0, "%d of %zu functions did not run exactly once", bad, nids);
    void *total = NULL;
    r = weft_sharded_reduce(counters, count_map, add, NULL, &total, WEFT_FOREVER);
    CHECK(r == 0 && (uintptr_t)total == nids, "counted %lu of %zu", (unsigned long)(uintptr_t)total,
          nids);
    printf("round trips: %zu over %u workers (1 in 7 futures dropped), %u reduces\n", nids,
           nworkers, nworkers * ROUNDS);
    CHECK(weft_sharded_destroy(counters) == 0, "sharded_destroy");

    /* The stop with submissions running and in flight everywhere. */
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    for (unsigned i = 0; i < NWATCH; i++)
        CHECK(weft_spawn_on(i % nworkers, NULL, watcher, (void *)(uintptr_t)((i + 1) % nworkers),
                            &o) == 0,
              "spawn watcher");
    while (atomic_load(&watched) < NWATCH)
        weft_sleep(100 * WEFT_USEC);
    return NULL;
}

int main(void)
{
    unsigned counts[] = {2, 4};
    for (int c = 0; c < 2; c++) {
        nworkers = counts[c];
        nids = (size_t)nworkers * ROUNDS * nworkers * BATCH;
        ran = calloc(nids, 1);
        atomic_store(&nran, 0);
        atomic_store(&watched, 0);
        atomic_store(&watched_ok, 0);
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = nworkers;
        cfg.mode = WEFT_MODE_SHARDED;
        int r = weft_run(&cfg, main_task, NULL, NULL);
        CHECK(r == 0, "weft_run: %s", weft_strerror(r));
        CHECK(atomic_load(&watched_ok) == NWATCH,
              "%d of %d stopped submissions completed with -ECANCELED", atomic_load(&watched_ok),
              NWATCH);
        printf("stop with submissions in flight: N=%u\n", nworkers);
        free(ran);
    }
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
