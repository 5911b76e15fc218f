/* Work from outside under ThreadSanitizer (a plain program: Criterion cannot start under
 * TSan). Threads the program started spawn tasks onto a runtime of two workers, join them
 * (blocking), and cancel some; then the runtime's main task returns while they keep
 * spawning, so spawns race the shutdown: each either fails with -ESHUTDOWN or yields a
 * handle that settles (the task ran, or was cancelled by the shutdown), none is lost and
 * none hangs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
enum { NSPAWN = 1000 };
#else
enum { NSPAWN = 10000 };
#endif
enum { T = 4, LATE = 64 };

#include "check.h"

static weft_runtime *rt;
static weft_waitgroup phase1 = WEFT_WAITGROUP_INIT;
static pthread_barrier_t phase2;
static atomic_long ran, cancelled, refused;

static void *body(void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (i % 3 == 0)
        weft_yield();
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return (void *)(i + 1);
}

static void *late_body(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_SEC); /* cancelled by the shutdown, mostly */
    return NULL;
}

static void *thread_main(void *arg)
{
    intptr_t id = (intptr_t)arg;
    weft_handle **hs = calloc(NSPAWN, sizeof *hs);
    for (intptr_t i = 0; i < NSPAWN; i++) {
        int r = weft_runtime_spawn(rt, &hs[i], body, (void *)i, NULL);
        CHECK(r == 0, "spawn: %s", weft_strerror(r));
        if (r == 0 && i % 7 == (intptr_t)id)
            weft_handle_cancel(hs[i]);
    }
    for (intptr_t i = 0; i < NSPAWN; i++) {
        if (!hs[i])
            continue;
        void *res = NULL;
        int r = weft_handle_join(hs[i], &res, WEFT_FOREVER);
        CHECK(r == 0, "join: %s", weft_strerror(r));
        if (res == WEFT_CANCELED)
            atomic_fetch_add_explicit(&cancelled, 1, memory_order_relaxed);
        else
            CHECK(res == (void *)(i + 1), "result %p for %ld", res, (long)i);
        weft_handle_release(hs[i]);
    }
    weft_waitgroup_done(&phase1);
    /* Phase 2 starts on every thread together: a thread whose phase 1 is slow would otherwise
     * see its joins wait behind the others' late spawns, which kept coming (under TSan, for
     * tens of seconds: its allocator ran out), and the main task waits for that phase 1. */
    pthread_barrier_wait(&phase2);
    /* Phase 2: spawn until the runtime says it has stopped. */
    weft_handle *late[LATE];
    int n = 0;
    for (long k = 0;; k++) {
        weft_handle *h = NULL;
        /* Sleepers only for the first few hundred: a starved worker 0 may take long to stop
         * the runtime, and tasks of a second's sleep spawned all that time stayed alive at
         * once (under TSan, on a busy machine, tens of thousands: its allocator ran out). */
        weft_fn fn = k < 4 * LATE ? late_body : body;
        int r = weft_runtime_spawn(rt, &h, fn, (void *)(intptr_t)k, NULL);
        if (r == -ESHUTDOWN) {
            atomic_fetch_add_explicit(&refused, 1, memory_order_relaxed);
            break;
        }
        CHECK(r == 0, "late spawn: %s", weft_strerror(r));
        if (n < LATE) {
            late[n++] = h;
        } else {
            weft_handle_release(h);
        }
        sched_yield();
    }
    for (int i = 0; i < n; i++) {
        int r = weft_handle_join(late[i], NULL, WEFT_FOREVER);
        CHECK(r == 0, "late join: %s", weft_strerror(r));
        weft_handle_release(late[i]);
    }
    free(hs);
    return NULL;
}

static void *main_task(void *arg)
{
    pthread_t *th = arg;
    rt = weft_runtime_current();
    weft_waitgroup_add(&phase1, T);
    for (intptr_t i = 0; i < T; i++)
        CHECK(pthread_create(&th[i], NULL, thread_main, (void *)i) == 0, "pthread_create");
    weft_waitgroup_wait(&phase1, WEFT_FOREVER);
    weft_sleep(2 * WEFT_MSEC); /* some late spawns land, then the runtime stops */
    return NULL;
}

int main(void)
{
    pthread_t th[T];
    pthread_barrier_init(&phase2, NULL, T);
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    int r = weft_run(&c, main_task, th, NULL);
    CHECK(r == 0, "run: %s", weft_strerror(r));
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    weft_runtime_release(rt);
    long total = atomic_load(&ran) + atomic_load(&cancelled);
    CHECK(atomic_load(&refused) == T, "every thread saw -ESHUTDOWN once");
    CHECK(total >= (long)T * NSPAWN, "ran %ld + cancelled %ld < %d", atomic_load(&ran),
          atomic_load(&cancelled), T * NSPAWN);
    printf("alien: %d spawns from %d threads, %ld ran, %ld cancelled: %s\n", T * NSPAWN, T,
           atomic_load(&ran), atomic_load(&cancelled), failures ? "FAILED" : "ok");
    return failures != 0;
}
