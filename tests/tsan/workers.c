/* A stress test of a runtime of several workers (sharded mode), run under ThreadSanitizer
 * (a plain program: Criterion cannot start under TSan). It prints one line per check and
 * exits non-zero on any failure.
 *
 * - spawns: 1,000,000 tasks spawned onto every worker in turn (from the main task, and from
 *   tasks on the other workers), joined from where they were spawned: each runs exactly once;
 * - cancels: tasks parked on one worker cancelled and joined from another, racing with their
 *   own wake-ups (a sleep that may expire at the same moment);
 * - detaches: tasks detached from another worker while they run, and detached at birth;
 * - shutdown while busy: the main task returns while tasks yield or sleep on every worker.
 * Run with N = 2 and N = 4 workers (more workers than this machine's CPUs is still N). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
/* TSan runs ~10x slower, and each coroutine alive costs it a 1.2 MiB trace: the same paths,
 * fewer laps and smaller batches. */
enum { NSPAWN = 30000, BATCH = 100, NC = 200, ND = 2000 };
#else
enum { NSPAWN = 1000000, BATCH = 2000, NC = 2000, ND = 20000 };
#endif

#include "check.h"

static unsigned char *ran; /* ran[i]: how many times task i ran (atomically incremented) */

static void *mark(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    __atomic_fetch_add(&ran[i], 1, __ATOMIC_RELAXED);
    return (void *)(i + 1);
}

/* Spawns tasks [from, to) onto the workers in turn, BATCH at a time, and joins them. */
static void spawn_range(uintptr_t from, uintptr_t to)
{
    unsigned n = weft_worker_count();
    weft_task **t = malloc(BATCH * sizeof *t);
    for (uintptr_t base = from; base < to; base += BATCH) {
        uintptr_t end = base + BATCH < to ? base + BATCH : to;
        for (uintptr_t i = base; i < end; i++) {
            int r = weft_spawn_on((unsigned)(i % n), &t[i - base], mark, (void *)i, NULL);
            CHECK(r == 0, "spawn_on: %s", weft_strerror(r));
        }
        for (uintptr_t i = base; i < end; i++) {
            void *res = NULL;
            int r = weft_join(t[i - base], &res, WEFT_FOREVER);
            CHECK(r == 0 && res == (void *)(i + 1), "join %lu: %d", (unsigned long)i, r);
        }
    }
    free(t);
}

static void *spawner(void *arg)
{
    uintptr_t *range = arg;
    spawn_range(range[0], range[1]);
    return NULL;
}

static void check_spawns(void)
{
    unsigned n = weft_worker_count();
    /* Half from the main task, the rest from one spawner task per other worker. */
    uintptr_t half = NSPAWN / 2, per = (NSPAWN - half) / (n > 1 ? n - 1 : 1);
    uintptr_t ranges[16][2];
    weft_task *sp[16];
    unsigned ns = 0;
    for (unsigned k = 1; k < n && k < 16; k++) {
        ranges[ns][0] = half + (k - 1) * per;
        ranges[ns][1] = k == n - 1 ? NSPAWN : half + k * per;
        CHECK(weft_spawn_on(k, &sp[ns], spawner, ranges[ns], NULL) == 0, "spawner");
        ns++;
    }
    spawn_range(0, n > 1 ? half : NSPAWN);
    for (unsigned i = 0; i < ns; i++)
        CHECK(weft_join(sp[i], NULL, WEFT_FOREVER) == 0, "join spawner");
    int bad = 0;
    for (size_t i = 0; i < NSPAWN; i++)
        bad += ran[i] != 1;
    CHECK(bad == 0, "%d of %d tasks did not run exactly once", bad, NSPAWN);
    printf("spawns: %d tasks over %u workers\n", NSPAWN, n);
}

static void *nap(void *arg)
{
    (void)arg;
    int r = weft_sleep(1000 * (weft_now() % 50)); /* may expire as the cancel comes */
    if (r == 0)
        r = weft_sleep_until(WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

static void check_cancels(void)
{
    unsigned n = weft_worker_count();
    weft_task **t = malloc(NC * sizeof *t);
    for (int i = 0; i < NC; i++)
        CHECK(weft_spawn_on(1 + (unsigned)i % (n - 1), &t[i], nap, NULL, NULL) == 0, "spawn");
    for (int i = 0; i < NC; i++) {
        if (i % 7 == 0)
            weft_yield();
        CHECK(weft_cancel(t[i]) == 0, "cancel");
    }
    int cancelled = 0;
    for (int i = 0; i < NC; i++) {
        void *r = NULL;
        CHECK(weft_join(t[i], &r, WEFT_FOREVER) == 0, "join");
        cancelled += r == WEFT_CANCELED;
    }
    CHECK(cancelled == NC, "%d of %d joined as cancelled", cancelled, NC);
    free(t);
    printf("cancels: %d across workers\n", NC);
}

static atomic_int detached_ran;

static void *bump(void *arg)
{
    (void)arg;
    if (weft_now() & 1)
        weft_yield();
    atomic_fetch_add(&detached_ran, 1);
    return NULL;
}

static void check_detaches(void)
{
    unsigned n = weft_worker_count();
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    for (int i = 0; i < ND; i++) {
        unsigned k = 1 + (unsigned)i % (n - 1);
        if (i % 2) {
            CHECK(weft_spawn_on(k, NULL, bump, NULL, &o) == 0, "spawn detached");
        } else {
            weft_task *t;
            CHECK(weft_spawn_on(k, &t, bump, NULL, NULL) == 0, "spawn");
            CHECK(weft_detach(t) == 0, "detach");
        }
    }
    while (atomic_load(&detached_ran) < ND)
        weft_sleep(100 * 1000);
    printf("detaches: %d\n", ND);
}

/* Several tasks of one worker filling the same ring at once: each parks for room, and every
 * one of them must be woken (a ring once kept a single waiting sender's waker). */
static atomic_int sent_ran;

static void *sent(void *arg)
{
    (void)arg;
    atomic_fetch_add(&sent_ran, 1);
    return NULL;
}

static void *sender(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    for (int i = 0; i < ND / 4; i++)
        CHECK(weft_spawn_on(1, NULL, sent, NULL, &o) == 0, "spawn_on");
    return NULL;
}

static void check_many_senders(void)
{
    atomic_store(&sent_ran, 0);
    weft_task *t[4];
    for (int k = 0; k < 4; k++)
        CHECK(weft_spawn(&t[k], sender, NULL, NULL) == 0, "spawn");
    for (int k = 0; k < 4; k++)
        CHECK(weft_join(t[k], NULL, WEFT_FOREVER) == 0, "join");
    while (atomic_load(&sent_ran) < 4 * (ND / 4))
        weft_sleep(100 * 1000);
    printf("senders: 4 tasks filling one ring, %d spawns\n", 4 * (ND / 4));
}

static atomic_int cleanups;

static void cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleanups, 1);
}

static void *busy(void *arg)
{
    (void)arg;
    while (weft_yield() == 0)
        ;
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    check_spawns();
    if (weft_worker_count() > 1) {
        check_cancels();
        check_detaches();
        check_many_senders();
    }
    /* Shutdown while busy: tasks yielding or sleeping everywhere when main returns. */
    unsigned n = weft_worker_count();
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED, .cleanup = cleanup};
    for (unsigned i = 0; i < 200; i++)
        CHECK(weft_spawn_on(i % n, NULL, i % 2 ? busy : nap, NULL, &o) == 0, "spawn busy");
    weft_sleep(WEFT_MSEC);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show where a hang is */
    ran = calloc(NSPAWN, 1);
    unsigned counts[] = {2, 4};
    for (int c = 0; c < 2; c++) {
        memset(ran, 0, NSPAWN);
        atomic_store(&detached_ran, 0);
        atomic_store(&cleanups, 0);
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = counts[c];
        /* Sharded, unless the environment asks (the chaos runs: stealing, with the LIFO slot). */
        cfg.mode = getenv("WEFT_MODE") ? WEFT_MODE_DEFAULT : WEFT_MODE_SHARDED;
        int r = weft_run(&cfg, main_task, NULL, NULL);
        CHECK(r == 0, "weft_run: %s", weft_strerror(r));
        CHECK(atomic_load(&cleanups) == 200, "%d of 200 cleanups at shutdown",
              atomic_load(&cleanups));
        printf("shutdown while busy: N=%u\n", counts[c]);
    }
    free(ran);
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
