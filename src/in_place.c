/* weft_block_in_place, and the relief threads that drive a worker while one of its tasks
 * blocks the worker's thread (the hand-off itself: relief.c). A relief thread is idle, or
 * drives one worker until its loop hands it over; it has the workers' signal mask, the
 * runtime's CPUs (not the caller's, which may be pinned to the CPU its blocking call will
 * keep busy) and its own alternate signal stack, and is joined when weft_run ends. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include "io/io.h"
#include "loop.h"
#include "overflow.h"
#include "pool.h"
#include "relief.h"
#include "runtime.h"
#include "scheduler.h"
#include "util/exit_chain.h"
#include "wake.h"
#include "worker.h"

typedef struct weft__relief_thread {
    weft__runtime *rt;
    struct weft__relief_thread *next_idle; /* the pool's idle list; under the lock */
    weft__worker *drive; /* the worker lent to it, NULL while idle; under the lock */
    uint64_t lent;       /* the worker's `lend` word as lent (relief.h); under the lock */
    bool quit;           /* under the lock */
    /* Set once it drove a worker whose requests die with the thread that submitted them
     * (io_uring): it then stays, idle, until the runtime ends, since its exit would cancel
     * them. Its own thread only. */
    bool keep;
    pthread_cond_t cond;     /* signalled when drive or quit is set */
    weft__altstack altstack; /* the thread's own */
} weft__relief_thread;

/* Under the lock: takes r off the idle list, where it is. */
static void unlink_idle(weft__runtime *rt, weft__relief_thread *r)
{
    for (weft__relief_thread **p = &rt->relief.idle; *p; p = &(*p)->next_idle)
        if (*p == r) {
            *p = r->next_idle;
            return;
        }
}

/* A relief thread: waits to be lent a worker, drives it if its lender is still in fn when
 * it wakes, goes idle again; after pool_idle_ms idle it exits (joined by the next to exit,
 * the last by the runtime's end, as the blocking pool's threads: util/exit_chain.h), unless
 * it drove an io_uring worker (`keep`). */
static void *relief_main(void *arg)
{
    weft__relief_thread *r = arg;
    weft__runtime *rt = r->rt;
    /* An overflow in a task it runs is reported like one on the worker's own thread. */
    if (rt->cfg.report_overflow)
        weft__altstack_install(NULL, &r->altstack); /* best effort: the default action else */
    prctl(PR_SET_TIMERSLACK, 1UL); /* exact deadlines, as on a worker's thread (loop.c) */
    pthread_mutex_lock(&rt->relief.lock);
    for (;;) {
        while (!r->drive && !r->quit && !rt->relief.closing) {
            if (r->keep) {
                pthread_cond_wait(&r->cond, &rt->relief.lock);
                continue;
            }
            struct timespec until;
            weft__realtime_after_ms(&until, rt->cfg.pool_idle_ms);
            if (pthread_cond_timedwait(&r->cond, &rt->relief.lock, &until) == ETIMEDOUT &&
                !r->drive && !r->quit) {
                unlink_idle(rt, r); /* idle too long: nobody can take it from now on */
                r->quit = true;
            }
        }
        weft__worker *w = r->drive;
        if (!w) {
            unlink_idle(rt, r); /* closing: it may be back on the list since the close's walk */
            break;
        }
        uint64_t lent = r->lent;
        if (w->relief.assigned == r) /* picked up: the next lend signals a thread again */
            w->relief.assigned = NULL;
        pthread_mutex_unlock(&rt->relief.lock);
        /* The worker is this thread's only if its task is still in fn: else it came back,
         * and the worker was never handed over. acq_rel: what the lender wrote to w before
         * lending is seen here; the next generation makes a late relief thread's CAS fail. */
        if (atomic_compare_exchange_strong_explicit(&w->relief.lend, &lent, lent + 1,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            pthread_mutex_lock(&rt->relief.lock);
            w->relief.ndetached++; /* before its loop can serve the lender's request */
            pthread_mutex_unlock(&rt->relief.lock);
            if (weft__io_requests_tied_to_thread(w))
                r->keep = true;
            weft__worker_set_current(w);
            weft__loop_adopt(w);
            w->stats.nhandoffs++; /* this thread drives w now: its counters are this thread's */
            weft__loop_relief(w); /* until it hands w over */
            weft__worker_set_current(NULL);
            if (rt->relief.test_pause_ns > 0) { /* a test seam (relief.h) */
                int64_t ns = rt->relief.test_pause_ns;
                struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
                nanosleep(&ts, NULL);
            }
        }
        pthread_mutex_lock(&rt->relief.lock);
        r->drive = NULL;
        r->next_idle = rt->relief.idle;
        rt->relief.idle = r;
    }
    pthread_t prev;
    bool join_prev = weft__exit_chain_enter(&rt->relief.exited, &prev);
    rt->relief.nthreads--;
    pthread_cond_broadcast(&rt->relief.gone);
    pthread_mutex_unlock(&rt->relief.lock);
    /* The runtime's close may have begun: only this thread's own record is touched (the
     * close then waits in its join of this thread, or of one that exits after it). */
    weft__altstack_remove(NULL, &r->altstack);
    pthread_cond_destroy(&r->cond);
    free(r);
    if (join_prev)
        pthread_join(prev, NULL);
    return NULL;
}

/* Starts a relief thread, idle (not on the idle list: the caller lends it a worker at once).
 * Not under the lock: a thread's creation takes long, and every lend and take-back of every
 * worker takes the lock. Its slot in nthreads is the caller's, taken before. Returns 0 or
 * -errno. */
static int start_thread(weft__runtime *rt, weft__relief_thread **out)
{
    weft__relief_thread *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->rt = rt;
    pthread_cond_init(&r->cond, NULL);
    sigset_t old;
    pthread_sigmask(SIG_SETMASK, &rt->thread_mask, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof rt->affinity, &rt->affinity);
    pthread_t th;
    int e = pthread_create(&th, &attr, relief_main, r);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        pthread_cond_destroy(&r->cond);
        free(r);
        return -e;
    }
    *out = r;
    return 0;
}

void weft__in_place_fini(weft__runtime *rt)
{
    pthread_mutex_lock(&rt->relief.lock);
    rt->relief.closing = true;
    for (weft__relief_thread *r = rt->relief.idle; r; r = r->next_idle) {
        r->quit = true;
        pthread_cond_signal(&r->cond);
    }
    rt->relief.idle = NULL;
    while (rt->relief.nthreads > 0)
        pthread_cond_wait(&rt->relief.gone, &rt->relief.lock);
    pthread_t last;
    bool join_last = weft__exit_chain_take(&rt->relief.exited, &last);
    pthread_mutex_unlock(&rt->relief.lock);
    if (join_last)
        pthread_join(last, NULL); /* and through it every relief thread that ever exited */
    pthread_cond_destroy(&rt->relief.gone);
    pthread_mutex_destroy(&rt->relief.lock);
}

/* Under the relief lock: finds the thread to drive w once it is lent. A relief thread
 * signalled for an earlier lend that has not woken yet takes this one (calls shorter than its
 * wake-up would otherwise wake a thread each); else w's own thread, if it waits for w
 * (relief.c: it drives w as well as a relief thread would, and no thread is woken or
 * started: *to_native); else an idle relief thread; else a new one, up to pool_threads of
 * them (the lock is let go while it starts). Returns 0, -EAGAIN (all pool_threads busy) or
 * -errno of the thread's creation. */
static int take_driver(weft__runtime *rt, weft__worker *w, weft__relief_thread **out,
                       bool *to_native)
{
    weft__relief_thread *relief = w->relief.assigned;
    *to_native = !relief && w->relief.native_waiting;
    if (!relief && !*to_native && (relief = rt->relief.idle) != NULL)
        rt->relief.idle = relief->next_idle;
    if (!relief && !*to_native) {
        if (rt->relief.nthreads >= rt->cfg.pool_threads)
            return -EAGAIN;
        rt->relief.nthreads++; /* this call's slot, while the thread starts unlocked */
        pthread_mutex_unlock(&rt->relief.lock);
        int r = start_thread(rt, &relief);
        pthread_mutex_lock(&rt->relief.lock);
        if (r < 0) {
            rt->relief.nthreads--;
            pthread_cond_broadcast(&rt->relief.gone);
            return r;
        }
    }
    *out = relief;
    return 0;
}

/* Under the relief lock, with w lent as `lent` (its `lend` word): tells the driver found by
 * take_driver, which takes w if the lend still stands when it looks. */
static void offer(weft__worker *w, weft__relief_thread *relief, bool to_native, uint64_t lent)
{
    if (to_native) {
        w->relief.native_lent = true;
        w->relief.native_lent_word = lent;
        pthread_cond_signal(&w->relief.native_cond);
    } else {
        relief->lent = lent;
        if (relief != w->relief.assigned) {
            relief->drive = w;
            w->relief.assigned = relief;
            pthread_cond_signal(&relief->cond);
        }
    }
}

int weft__relief_assign(weft__worker *w, uint64_t lent)
{
    weft__runtime *rt = w->rt;
    weft__relief_thread *relief;
    bool to_native;
    pthread_mutex_lock(&rt->relief.lock);
    int r = take_driver(rt, w, &relief, &to_native);
    if (r == 0)
        offer(w, relief, to_native, lent);
    pthread_mutex_unlock(&rt->relief.lock);
    return r;
}

int weft_block_in_place(weft_fn fn, void *arg, void **result)
{
    weft__worker *w = weft__worker_current();
    if (!w) { /* a thread outside every runtime: it has no worker to hand over */
        if (!fn)
            return -EINVAL;
        void *r = fn(arg);
        if (result)
            *result = r;
        return 0;
    }
    weft_task *t;
    int r;
    if (!(w = weft__blocking_begin_on(w, &t, true, &r)))
        return r;
    if (!fn)
        return -EINVAL;
    /* io_uring runs a request's completion work on the thread that submitted it. A bound
     * ring's worker (made while the hand-off was off: uring.c) cannot move at all. A movable
     * one could, but fn may sleep in the kernel uninterruptibly (a disk read, vfork), and the
     * requests this thread submitted (every receive it armed) would wait for it meanwhile:
     * fn goes to the blocking pool instead. The involuntary hand-off does move a movable
     * ring (handoff.c): the thread it leaves is in user code or in an interruptible sleep,
     * which the kernel wakes for that work. */
    if (weft__io_requests_tied_to_thread(w))
        return weft__pool_run(w, t, fn, arg, result);
    weft__runtime *rt = w->rt;
    weft__relief_home h = weft__relief_home_of(w);
    if (w->poll_task == t) /* a sampled resume: its length would count fn's */
        w->poll_task = NULL;
    /* The signals w's tasks wait for stay blocked on this thread while fn runs (signal.c),
     * read while w is still this thread's. */
    weft__worker_block_waited_signals(w);
    w->current = NULL;
    /* This thread stops being w's before w can be taken (the `lend` store below): the stall
     * detector's signal handler (watchdog.c) finds w through this thread's worker and reads
     * what w's next driver writes (its current task). */
    weft__worker_set_current(NULL);

    pthread_mutex_lock(&rt->relief.lock);
    weft__relief_thread *relief;
    bool to_native;
    r = take_driver(rt, w, &relief, &to_native);
    if (r < 0) { /* -EAGAIN: every relief thread is busy; fn goes to the blocking pool */
        pthread_mutex_unlock(&rt->relief.lock);
        weft__worker_set_current(w);
        w->current = t;
        return r == -EAGAIN ? weft__pool_run(w, t, fn, arg, result) : r;
    }
    /* Lent, not handed over yet (relief.h, `lend`): the relief thread takes it when it wakes
     * if fn is still running then; a call shorter than its wake-up costs no hand-off. */
    uint64_t owned = atomic_load_explicit(&w->relief.lend, memory_order_relaxed);
    atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed); /* as in serve */
    atomic_store_explicit(&w->relief.lend, owned + 1, memory_order_release);
    offer(w, relief, to_native, owned + 1);
    pthread_mutex_unlock(&rt->relief.lock);
    /* From here until it takes w back this thread touches w only under the relief lock. It
     * is no worker's: weft calls in fn act as on a plain thread of this runtime's. */
    weft__wake_thread_home(rt);
    /* A stack overflow in fn is still t's (overflow.c), and fn is t's code (a join of t's
     * own handle in it is -EDEADLK: alien.c). Put back after, not cleared: fn may itself run
     * a runtime (weft_run) whose tasks block in place on this thread, each a level deeper. */
    const weft_task *outer = *weft__overflow_in_place_slot();
    weft__overflow_in_place(t);

    void *res = fn(arg);

    weft__overflow_in_place(outer);
    weft__wake_thread_home(NULL);
    uint64_t lent = owned + 1;
    if (atomic_compare_exchange_strong_explicit(&w->relief.lend, &lent, owned + 2,
                                                memory_order_acq_rel, memory_order_relaxed)) {
        /* Back before the relief thread took it: nothing of w moved. */
        weft__worker_set_current(w);
        w->current = t;
        atomic_store_explicit(&w->watch.active, 1, memory_order_release);
    } else {
        weft__relief_take_back(w, t, &h);
    }
    if (result)
        *result = res;
    return 0;
}
