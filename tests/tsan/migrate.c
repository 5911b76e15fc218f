/* A stress test of started tasks moving between workers (stealing mode with
 * weft_config.move_started), run in every build and under ThreadSanitizer. Every task starts
 * on worker 0 (spawned child first by the main task), so the idle workers take started ones:
 * - pairs of tasks pass numbered messages through rendezvous channels, count under a shared
 *   mutex and a semaphore, and yield now and then: every message arrives once and in order,
 *   every count is kept;
 * - parents spawn children (child first) and join them, the joins parking and moving;
 * - waiters park on an event and a wait group with no deadline, and some are cancelled there;
 * - readers and writers of a rwlock hold it across yields, so that a hold taken on one worker
 *   is given back on another (its pooled node must go to the pool of the worker it is given
 *   back on, not the one it was taken on: another thread's);
 * - each task's errno survives every blocking call, wherever it resumes (read and set
 *   through functions the compiler cannot see into, as weft.h asks of code that may move).
 * At least one task must have resumed on another worker than it started on. Runs with 2 and
 * 4 workers, and with the LIFO slot in a second pass. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "check.h"

#if defined(__SANITIZE_THREAD__)
enum { NPAIRS = 8, NMSGS = 400, NPARENTS = 8, NWAITERS = 16, NHOLDERS = 8 };
#else
enum { NPAIRS = 16, NMSGS = 4000, NPARENTS = 16, NWAITERS = 64, NHOLDERS = 16 };
#endif

static atomic_int moved, errno_lost;
static weft_mutex mu = WEFT_MUTEX_INIT;
static weft_sem sem = WEFT_SEM_INIT(1);
static long counted; /* under mu */

static __attribute__((noinline)) void errno_set(int v)
{
    errno = v;
}

static __attribute__((noinline)) int errno_get(void)
{
    return errno;
}

/* Checks that the task's errno is still `v`, notes a move, and sets it again. */
static void after_wait(int v, int first, bool *was_moved)
{
    if (errno_get() != v)
        atomic_fetch_add(&errno_lost, 1);
    if (weft_worker_index() != first)
        *was_moved = true;
    errno_set(v);
}

typedef struct pair {
    weft_chan *ping, *pong;
    int id;
} pair;

static void *pinger(void *arg)
{
    pair *p = arg;
    int first = weft_worker_index(), tag = 100 + p->id;
    bool m = false;
    errno_set(tag);
    for (int i = 0; i < NMSGS; i++) {
        if (weft_chan_send(p->ping, &i, WEFT_FOREVER) != 0)
            return (void *)1;
        after_wait(tag, first, &m);
        int back = -1;
        if (weft_chan_recv(p->pong, &back, WEFT_FOREVER) != 0 || back != i)
            return (void *)2;
        after_wait(tag, first, &m);
        if (weft_mutex_lock(&mu, WEFT_FOREVER) != 0)
            return (void *)3;
        counted++;
        weft_mutex_unlock(&mu);
        after_wait(tag, first, &m);
        if (i % 16 == 0) {
            weft_yield();
            after_wait(tag, first, &m);
        }
    }
    atomic_fetch_add(&moved, m);
    return NULL;
}

static void *ponger(void *arg)
{
    pair *p = arg;
    int first = weft_worker_index(), tag = 200 + p->id;
    bool m = false;
    errno_set(tag);
    for (int i = 0; i < NMSGS; i++) {
        int v = -1;
        if (weft_chan_recv(p->ping, &v, WEFT_FOREVER) != 0 || v != i)
            return (void *)4;
        after_wait(tag, first, &m);
        if (weft_sem_acquire(&sem, WEFT_FOREVER) != 0)
            return (void *)5;
        after_wait(tag, first, &m);
        weft_sem_release(&sem, 1);
        if (weft_chan_send(p->pong, &v, WEFT_FOREVER) != 0)
            return (void *)6;
        after_wait(tag, first, &m);
    }
    atomic_fetch_add(&moved, m);
    return NULL;
}

static void *child(void *arg)
{
    for (int i = 0; i < 8; i++)
        weft_yield();
    return arg;
}

/* Spawns children child first and joins them: its joins park with no deadline. */
static void *parent(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int first = weft_worker_index(), tag = 300 + (int)id;
    bool m = false;
    errno_set(tag);
    for (int round = 0; round < 20; round++) {
        weft_task *c[4];
        weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
        for (intptr_t k = 0; k < 4; k++)
            if (weft_spawn(&c[k], child, (void *)(k + 1), &o) != 0)
                return (void *)7;
        after_wait(tag, first, &m);
        for (intptr_t k = 0; k < 4; k++) {
            void *r = NULL;
            if (weft_join(c[k], &r, WEFT_FOREVER) != 0 || r != (void *)(k + 1))
                return (void *)8;
            after_wait(tag, first, &m);
        }
    }
    atomic_fetch_add(&moved, m);
    return NULL;
}

/* Several locks: one would order every pool access under its own spinlock (no race seen). */
static weft_rwlock rws[4] = {WEFT_RWLOCK_INIT, WEFT_RWLOCK_INIT, WEFT_RWLOCK_INIT,
                             WEFT_RWLOCK_INIT};
static _Atomic long rw_written;

/* Takes a rwlock (a write hold one time in eight, else a read hold) and yields while holding
 * it: the unlock often runs on another worker than the lock. */
static void *holder(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int first = weft_worker_index(), tag = 400 + (int)id;
    bool m = false;
    errno_set(tag);
    for (int i = 0; i < NMSGS / 2; i++) {
        bool wr = (i + id) % 8 == 0;
        weft_rwlock *rw = &rws[(i + id) % 4];
        if ((wr ? weft_rwlock_wrlock(rw, WEFT_FOREVER) : weft_rwlock_rdlock(rw, WEFT_FOREVER)) != 0)
            return (void *)10;
        after_wait(tag, first, &m);
        if (wr)
            atomic_fetch_add(&rw_written, 1);
        weft_yield();
        after_wait(tag, first, &m);
        if (weft_rwlock_unlock(rw) != 0)
            return (void *)11;
        weft_yield();
        after_wait(tag, first, &m);
    }
    atomic_fetch_add(&moved, m);
    return NULL;
}

static weft_event go = WEFT_EVENT_INIT;
static weft_waitgroup wg = WEFT_WAITGROUP_INIT;

/* Parks on the event, then on the wait group; the odd ones are cancelled while parked. */
static void *waiter(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        weft_yield();
    int r = weft_event_wait(&go, WEFT_FOREVER);
    if (r == -ECANCELED)
        return WEFT_CANCELED;
    if (r != 0)
        return (void *)9;
    weft_waitgroup_done(&wg);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    static pair ps[NPAIRS];
    weft_task *pt[2 * NPAIRS], *par[NPARENTS], *wt[NWAITERS], *ho[NHOLDERS];
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    weft_waitgroup_add(&wg, NWAITERS / 2);
    for (int i = 0; i < NWAITERS; i++)
        CHECK(weft_spawn(&wt[i], waiter, NULL, &o) == 0, "spawn waiter");
    for (int i = 0; i < NPAIRS; i++) {
        ps[i].id = i;
        CHECK(weft_chan_create(&ps[i].ping, sizeof(int), 0) == 0, "chan");
        CHECK(weft_chan_create(&ps[i].pong, sizeof(int), 0) == 0, "chan");
        CHECK(weft_spawn(&pt[2 * i], ponger, &ps[i], &o) == 0, "spawn ponger");
        CHECK(weft_spawn(&pt[2 * i + 1], pinger, &ps[i], &o) == 0, "spawn pinger");
    }
    for (intptr_t i = 0; i < NPARENTS; i++)
        CHECK(weft_spawn(&par[i], parent, (void *)i, &o) == 0, "spawn parent");
    for (intptr_t i = 0; i < NHOLDERS; i++)
        CHECK(weft_spawn(&ho[i], holder, (void *)i, &o) == 0, "spawn holder");
    for (int i = 0; i < 2 * NPAIRS; i++) {
        void *r = (void *)-1;
        CHECK(weft_join(pt[i], &r, WEFT_FOREVER) == 0 && r == NULL, "pair task %d: %ld", i,
              (long)(intptr_t)r);
    }
    for (int i = 0; i < NPARENTS; i++) {
        void *r = (void *)-1;
        CHECK(weft_join(par[i], &r, WEFT_FOREVER) == 0 && r == NULL, "parent %d: %ld", i,
              (long)(intptr_t)r);
    }
    for (int i = 0; i < NHOLDERS; i++) {
        void *r = (void *)-1;
        CHECK(weft_join(ho[i], &r, WEFT_FOREVER) == 0 && r == NULL, "holder %d: %ld", i,
              (long)(intptr_t)r);
    }
    CHECK(atomic_load(&rw_written) == (long)NHOLDERS * (NMSGS / 2) / 8, "write holds lost: %ld",
          atomic_load(&rw_written));
    for (int i = 1; i < NWAITERS; i += 2)
        weft_cancel(wt[i]);
    weft_event_set(&go);
    CHECK(weft_waitgroup_wait(&wg, WEFT_FOREVER) == 0, "wait group");
    for (int i = 0; i < NWAITERS; i++) {
        void *r = (void *)-1;
        CHECK(weft_join(wt[i], &r, WEFT_FOREVER) == 0, "join waiter");
        /* A cancel that came after the event's set may find it returned already. */
        CHECK(r == NULL || (i % 2 && r == WEFT_CANCELED), "waiter %d: %p", i, r);
    }
    CHECK(counted == (long)NPAIRS * NMSGS, "counts lost under the mutex: %ld", counted);
    for (int i = 0; i < NPAIRS; i++) {
        weft_chan_release(ps[i].ping);
        weft_chan_release(ps[i].pong);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned counts[] = {2, 4};
    for (int lifo = 0; lifo < 2; lifo++) {
        for (int c = 0; c < 2; c++) {
            atomic_store(&moved, 0);
            atomic_store(&errno_lost, 0);
            counted = 0;
            atomic_store(&rw_written, 0);
            weft_event_reset(&go);
            weft_config cfg;
            weft_config_init(&cfg);
            cfg.workers = counts[c];
            cfg.mode = WEFT_MODE_STEALING;
            cfg.move_started = 1;
            cfg.lifo_slot = lifo ? 1 : -1;
            cfg.order = WEFT_ORDER_FIFO;
            int r = weft_run(&cfg, main_task, NULL, NULL);
            CHECK(r == 0, "weft_run: %s", weft_strerror(r));
            CHECK(atomic_load(&errno_lost) == 0, "errno lost %d times", atomic_load(&errno_lost));
            CHECK(atomic_load(&moved) > 0, "no started task moved (N=%u)", counts[c]);
            printf("moves: N=%u lifo=%d, %d of %d tasks resumed elsewhere\n", counts[c], lifo,
                   atomic_load(&moved), 2 * NPAIRS + NPARENTS + NHOLDERS);
        }
    }
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
