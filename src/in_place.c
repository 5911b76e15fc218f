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

#include "io/io.h"
#include "loop.h"
#include "overflow.h"
#include "pool.h"
#include "relief.h"
#include "runtime.h"
#include "scheduler.h"
#include "wake.h"
#include "worker.h"

typedef struct weft__relief_thread {
    weft__runtime *rt;
    pthread_t thread;
    struct weft__relief_thread *next;      /* the pool's list of all; under the lock */
    struct weft__relief_thread *next_idle; /* the pool's idle list; under the lock */
    weft__worker *drive;     /* the worker lent to it, NULL while idle; under the lock */
    uint64_t lent;           /* the worker's `lend` word as lent (relief.h); under the lock */
    bool quit;               /* under the lock */
    pthread_cond_t cond;     /* signalled when drive or quit is set */
    weft__altstack altstack; /* the thread's own */
} weft__relief_thread;

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
        while (!r->drive && !r->quit)
            pthread_cond_wait(&r->cond, &rt->relief.lock);
        weft__worker *w = r->drive;
        if (!w)
            break;
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
            weft__worker_set_current(w);
            weft__loop_adopt(w);
            weft__loop_relief(w); /* until it hands w over */
            weft__worker_set_current(NULL);
        }
        pthread_mutex_lock(&rt->relief.lock);
        r->drive = NULL;
        r->next_idle = rt->relief.idle;
        rt->relief.idle = r;
    }
    pthread_mutex_unlock(&rt->relief.lock);
    weft__altstack_remove(NULL, &r->altstack);
    return NULL;
}

/* Under the lock: an idle relief thread, or a new one. Returns 0 or -errno. */
static int take_thread(weft__runtime *rt, weft__relief_thread **out)
{
    weft__relief_thread *r = rt->relief.idle;
    if (r) {
        rt->relief.idle = r->next_idle;
        *out = r;
        return 0;
    }
    if (!(r = calloc(1, sizeof *r)))
        return -ENOMEM;
    r->rt = rt;
    pthread_cond_init(&r->cond, NULL);
    sigset_t old;
    pthread_sigmask(SIG_SETMASK, &rt->thread_mask, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof rt->affinity, &rt->affinity);
    int e = pthread_create(&r->thread, &attr, relief_main, r);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        pthread_cond_destroy(&r->cond);
        free(r);
        return -e;
    }
    r->next = rt->relief.all;
    rt->relief.all = r;
    rt->relief.nthreads++;
    *out = r;
    return 0;
}

void weft__in_place_fini(weft__runtime *rt)
{
    pthread_mutex_lock(&rt->relief.lock);
    for (weft__relief_thread *r = rt->relief.all; r; r = r->next) {
        r->quit = true;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&rt->relief.lock);
    weft__relief_thread *r = rt->relief.all;
    while (r) {
        weft__relief_thread *next = r->next;
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->cond);
        free(r);
        r = next;
    }
    rt->relief.all = rt->relief.idle = NULL;
    pthread_mutex_destroy(&rt->relief.lock);
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
    /* io_uring runs a request's completion work on the thread that submitted it, so a ring's
     * worker cannot move to another thread: fn goes to the blocking pool instead. */
    if (weft__io_thread_bound(w))
        return weft__pool_run(w, t, fn, arg, result);
    weft__runtime *rt = w->rt;
    weft__relief_home h = {w->sched.loop_ctx,      w->sched.errno_loc,       w->sched.loop_errno,
                           w->sched.loop_stack_lo, w->sched.loop_stack_size, w->sched.loop_fiber};
    if (w->poll_task == t) /* a sampled resume: its length would count fn's */
        w->poll_task = NULL;
    w->current = NULL;

    pthread_mutex_lock(&rt->relief.lock);
    /* A relief thread signalled for an earlier lend that has not woken yet takes this one
     * (calls shorter than its wake-up would otherwise start a thread each). */
    weft__relief_thread *relief = w->relief.assigned;
    if (!relief && (r = take_thread(rt, &relief)) < 0) {
        pthread_mutex_unlock(&rt->relief.lock);
        w->current = t;
        return r;
    }
    /* Lent, not handed over yet (relief.h, `lend`): the relief thread takes it when it wakes
     * if fn is still running then; a call shorter than its wake-up costs no hand-off. */
    uint64_t owned = atomic_load_explicit(&w->relief.lend, memory_order_relaxed);
    atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed); /* as in serve */
    atomic_store_explicit(&w->relief.lend, owned + 1, memory_order_release);
    relief->lent = owned + 1;
    if (relief != w->relief.assigned) {
        relief->drive = w;
        w->relief.assigned = relief;
        pthread_cond_signal(&relief->cond);
    }
    pthread_mutex_unlock(&rt->relief.lock);
    /* From here until it takes w back this thread touches w only under the relief lock. It
     * is no worker's: weft calls in fn act as on a plain thread of this runtime's. */
    weft__worker_set_current(NULL);
    weft__wake_thread_home(rt);

    void *res = fn(arg);

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
