/* The worker hand-off's state machine: which thread drives a worker, and how it changes.
 * weft_block_in_place and the relief threads (in_place.c) are built on it.
 *
 * A worker (its queues, timers, reactor, records) is driven by one thread at a time: the one
 * whose loop runs it. weft_block_in_place, on the thread X driving worker w, inside task T:
 *  1. keeps what X needs to take w back (weft__relief_home: X's loop context, where X's loop
 *     frames wait, and its sanitizer fiber), and lets go of w: w has no current task, X's
 *     thread-local worker is NULL;
 *  2. lends w (in_place.c: the `lend` word, relief.h) and signals a relief thread R, which,
 *     if X's task is still in fn when R wakes, takes w (a CAS on `lend`) and runs w's loop
 *     from its top on its own stack;
 *  3. runs fn on X, on T's stack: T stays RUNNING, its worker w, but no thread runs it as w's
 *     task (its wakers find it running and do nothing; a cancel is seen after);
 *  4. queues a request for w (weft__relief_take_back), rings w's doorbell and waits. The
 *     driver, at its next tick (never inside a resume), grants it (weft__relief_serve): it
 *     stops touching w, returns from its loop, and X carries on as w's driver with T as the
 *     running task, its own loop context back in place.
 * A relief thread's loop that handed w over goes idle. A loop on w's own thread (the one
 * that built w and returns from its loop at the end) that hands w over waits until w is given
 * back: a relief thread driving w gives it back at its first tick with no task of w left
 * detached. So every loop ends on its own thread: a loop ends only when no task is live, and a
 * detached task is live.
 *
 * Who touches what: w's fields are touched by its driver only, as everywhere in weft. A
 * change of driver from a lender to a relief thread is ordered by the CAS on `lend`; every
 * other change (a grant, a give-back) is made under the relief lock. Either orders everything
 * the old driver wrote before everything the new one reads. The relief lock is never held across a
 * park or a loop's run. */
#include <pthread.h>
#include <stdlib.h>

#include "test_env.h"
#include "relief.h"
#include "runtime.h"
#include "scheduler.h"
#include "worker.h"

/* A thread waiting to take a worker back: on the stack of the task it ran fn for. */
typedef struct weft__relief_req {
    struct weft__relief_req *next;
    pthread_cond_t cond;
    bool granted; /* under the lock */
} weft__relief_req;

void weft__relief_init(weft__runtime *rt)
{
    pthread_mutex_init(&rt->relief.lock, NULL);
    pthread_cond_init(&rt->relief.gone, NULL);
    rt->relief.closing = false;
    rt->relief.exited = (weft__exit_chain){0};
    rt->relief.test_pause_ns = 0;
#ifdef WEFT_TESTING
    rt->relief.test_pause_ns = weft__test_env("WEFT_TEST_RELIEF_PAUSE_NS", 1);
#endif
}

void weft__relief_worker_init(weft__worker *w)
{
    pthread_cond_init(&w->relief.native_cond, NULL);
}

void weft__relief_worker_fini(weft__worker *w)
{
    pthread_cond_destroy(&w->relief.native_cond);
}

/* Under the lock: whether w's driver must look at the hand-off state at its next tick. */
static void update_want(weft__worker *w)
{
    int want = w->relief.reqs || (w->relief.native_waiting && w->relief.ndetached == 0);
    /* seq_cst: a driver about to sleep loads it after announcing its sleep (loop.c); the
     * doorbell rung after this store wakes one that already slept. */
    atomic_store_explicit(&w->relief.want, want, memory_order_seq_cst);
}

/* ---- Handing over and taking back -------------------------------------------------------- */

bool weft__relief_serve(weft__worker *w, bool native)
{
    weft__runtime *rt = w->rt;
    bool handed = false;
    pthread_mutex_lock(&rt->relief.lock);
    weft__relief_req *q = w->relief.reqs;
    /* This thread stops being w's before the grant (restored below if nothing is handed):
     * the stall detector's signal handler finds w through the thread's worker (watchdog.c),
     * and must not read what the next driver writes. */
    weft__worker_set_current(NULL);
    if (q) {
        if (!(w->relief.reqs = q->next))
            w->relief.reqs_tail = NULL;
        w->relief.ndetached--;
        if (native)
            w->relief.native_waiting = true;
        q->granted = true;
        pthread_cond_signal(&q->cond);
        handed = true;
    } else if (!native && w->relief.native_waiting && w->relief.ndetached == 0) {
        w->relief.native_waiting = false;
        w->relief.native_granted = true;
        pthread_cond_signal(&w->relief.native_cond);
        handed = true;
    }
    /* Between two drivers the worker runs no loop: not a stall (watchdog.h). Stored before
     * the grant is seen, so that the new driver's store of 1 comes after it. */
    if (handed)
        atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed);
    else
        weft__worker_set_current(w);
    update_want(w);
    pthread_mutex_unlock(&rt->relief.lock);
    return handed;
}

void weft__relief_native_wait(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    pthread_mutex_lock(&rt->relief.lock);
    for (;;) {
        if (w->relief.native_granted) {
            w->relief.native_granted = false;
            break;
        }
        if (w->relief.native_lent) {
            /* Lent while this thread waits: it takes the worker as a relief thread would,
             * if the lender is still in fn (the same CAS, in_place.c). */
            uint64_t lent = w->relief.native_lent_word;
            w->relief.native_lent = false;
            pthread_mutex_unlock(&rt->relief.lock);
            bool took = atomic_compare_exchange_strong_explicit(
                &w->relief.lend, &lent, lent + 1, memory_order_acq_rel, memory_order_relaxed);
            pthread_mutex_lock(&rt->relief.lock);
            if (took) {
                w->relief.native_waiting = false;
                w->relief.ndetached++; /* the lender's task, as a relief thread counts it */
                w->stats.nhandoffs++;
                update_want(w);
                break;
            }
            continue;
        }
        pthread_cond_wait(&w->relief.native_cond, &rt->relief.lock);
    }
    pthread_mutex_unlock(&rt->relief.lock);
}

weft__relief_home weft__relief_home_of(const weft__worker *w)
{
    return (weft__relief_home){.loop_ctx = w->sched.loop_ctx,
                               .errno_loc = w->sched.errno_loc,
                               .loop_errno = w->sched.loop_errno,
                               .eh_loc = w->sched.eh_loc,
                               .loop_eh = w->sched.loop_eh,
                               .loop_stack_lo = w->sched.loop_stack_lo,
                               .loop_stack_size = w->sched.loop_stack_size,
                               .loop_fiber = w->sched.loop_fiber};
}

void weft__relief_take_back(weft__worker *w, weft_task *t, const weft__relief_home *h)
{
    weft__runtime *rt = w->rt;
    weft__relief_req q = {.granted = false};
    pthread_cond_init(&q.cond, NULL);
    pthread_mutex_lock(&rt->relief.lock);
    if (w->relief.reqs_tail)
        *w->relief.reqs_tail = &q;
    else
        w->relief.reqs = &q;
    w->relief.reqs_tail = &q.next;
    update_want(w);
    pthread_mutex_unlock(&rt->relief.lock);
    weft__worker_ring(w); /* its driver may sleep in its reactor: the want is seen on waking */
    pthread_mutex_lock(&rt->relief.lock);
    while (!q.granted)
        pthread_cond_wait(&q.cond, &rt->relief.lock);
    pthread_mutex_unlock(&rt->relief.lock);
    pthread_cond_destroy(&q.cond);

    weft__worker_set_current(w);
    w->sched.loop_ctx = h->loop_ctx;
    w->sched.errno_loc = h->errno_loc;
    w->sched.loop_errno = h->loop_errno;
    w->sched.eh_loc = h->eh_loc;
    w->sched.loop_eh = h->loop_eh;
    w->sched.loop_stack_lo = h->loop_stack_lo;
    w->sched.loop_stack_size = h->loop_stack_size;
    w->sched.loop_fiber = h->loop_fiber;
    weft__watch_thread(&w->watch, w->rt->handoff_slots());
    weft__worker_block_waited_signals(w); /* a task waited for more while it was away */
    w->current = t;
    atomic_store_explicit(&w->watch.active, 1, memory_order_release);
}
