/* The blocking pool: runs functions that block the thread (getaddrinfo, file I/O, C
 * libraries) on a bounded set of threads, and wakes the task that waits for each result.
 *
 * A job lives on its waiting task's stack. The task always waits for a job that has started
 * (a thread blocked in a system call cannot be interrupted safely); a deadline or a
 * cancellation only withdraws a job still queued. So a job never outlives its frame, and
 * nothing here allocates per job. The one exception is a job that may be left behind
 * (weft__pool_run_abandonable, for getaddrinfo, which may wait for a name server for many
 * seconds): it is allocated, and a deadline or a cancel while it runs marks it abandoned and
 * returns at once; the thread that runs it then hands its argument to its `abandon` function
 * and frees it.
 *
 * Locking: one mutex per pool guards the queue, the counters and each queued or running
 * job's state and waker. The waiting task takes it only for short sections and never holds
 * it across a park; a pool thread copies the waker under it, marks the job done, unlocks,
 * and only then wakes the task (a cross-thread wake through the worker's inbox). Threads
 * start with every signal blocked, so signals stay with the runtime's thread, and retire
 * after idle_ms without work. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "runtime.h"
#include "scheduler.h"
#include "util/exit_chain.h"
#include "wake.h"
#include "worker.h"

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct weft__job {
    struct weft__job *next, *prev; /* queue links; owner: pool mutex */
    weft_fn fn;
    void *arg;
    void *result;
    int state;        /* JOB_*; pool mutex */
    weft_waker waker; /* the waiting task's latest waker; pool mutex */
    /* Non-NULL: the job is allocated and may be left behind (weft__pool_run_abandonable); set
     * before it is queued. */
    void (*abandon)(void *arg);
    bool abandoned; /* the waiter has gone: the thread finishes the job; pool mutex */
} weft__job;

struct weft__pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* signalled when a job is queued or on shutdown */
    pthread_cond_t gone; /* signalled when the last thread exits */
    weft__job *head, *tail;
    /* nthreads and njobs change under the mutex, through relaxed atomic stores, so that the
     * metrics read them without it (weft__pool_stats). */
    unsigned nthreads, nidle, max_threads;
    unsigned nqueued; /* jobs in the queue: an idle thread is not free until it takes one */
    unsigned idle_ms;
    int stopping;
    uint64_t njobs;          /* jobs run, for weft_stats; see nthreads */
    weft__exit_chain exited; /* joinable threads: each joins the one before (util/exit_chain.h) */
    weft__runtime *rt;       /* whose pool it is; fixed */
};

/* The runtime's pool, created at first use (under the runtime's lock: any worker may be
 * first). */
static int pool_get(weft__worker *w, weft__pool **out)
{
    weft__runtime *rt = w->rt;
    int r = 0;
    pthread_mutex_lock(&rt->lock);
    if (!rt->pool) {
        weft__pool *p = weft__calloc(w, 1, sizeof *p);
        if (p) {
            pthread_mutex_init(&p->mu, NULL);
            pthread_cond_init(&p->work, NULL);
            pthread_cond_init(&p->gone, NULL);
            p->rt = rt;
            p->max_threads = rt->cfg.pool_threads;
            p->idle_ms = rt->cfg.pool_idle_ms;
            /* release: a metrics reader that sees the pointer sees the pool's fields set
             * (weft__pool_stats, which takes no lock). */
            __atomic_store_n(&rt->pool, p, __ATOMIC_RELEASE);
        } else {
            r = -ENOMEM;
        }
    }
    *out = rt->pool;
    pthread_mutex_unlock(&rt->lock);
    return r;
}

static void unlink_job(weft__pool *p, weft__job *j)
{
    p->nqueued--;
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->next = j->prev = NULL;
}

static void *pool_thread(void *arg)
{
    weft__pool *p = arg;
    weft__wake_thread_home(p->rt); /* its wakes come from inside the runtime */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) {
            struct timespec until;
            weft__realtime_after_ms(&until, p->idle_ms);
            p->nidle++;
            int r = pthread_cond_timedwait(&p->work, &p->mu, &until);
            p->nidle--;
            if (r == ETIMEDOUT && !p->head)
                goto retire;
        }
        if (!p->head)
            goto retire; /* stopping, and nothing left */
        weft__job *j = p->head;
        unlink_job(p, j);
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->mu);

        void *result = j->fn(j->arg);

        pthread_mutex_lock(&p->mu);
        __atomic_store_n(&p->njobs, p->njobs + 1, __ATOMIC_RELAXED); /* see nthreads */
        if (j->abandoned) {
            /* Nobody waits for it any more: its argument and record are this thread's. */
            pthread_mutex_unlock(&p->mu);
            j->abandon(j->arg);
            weft__free(NULL, j);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        j->result = result;
        j->state = JOB_DONE;
        weft_waker wk = j->waker;
        /* From here the job may vanish with its task's frame: only the copy is used. */
        pthread_mutex_unlock(&p->mu);
        weft_waker_wake(wk);
        pthread_mutex_lock(&p->mu);
    }
retire:;
    pthread_t prev;
    bool join_prev = weft__exit_chain_enter(&p->exited, &prev);
    __atomic_store_n(&p->nthreads, p->nthreads - 1, __ATOMIC_RELAXED); /* see nthreads */
    if (p->nthreads == 0)
        pthread_cond_signal(&p->gone);
    pthread_mutex_unlock(&p->mu);
    /* p may be freed from here on (weft__pool_fini joins this thread, not p's counter). */
    if (join_prev)
        pthread_join(prev, NULL);
    return NULL;
}

/* Starts a thread unless an idle one is left for the job about to be queued (idle threads
 * already signalled for queued jobs do not count), and the bound allows. Called with the
 * mutex. */
static int grow(weft__pool *p)
{
    if (p->nidle > p->nqueued || p->nthreads >= p->max_threads)
        return 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024); /* getaddrinfo and stdio fit in this */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the new thread */
    pthread_t th;
    int r = pthread_create(&th, &attr, pool_thread, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0)
        return p->nthreads > 0 ? 0 : -r; /* with threads alive, the job just waits */
    __atomic_store_n(&p->nthreads, p->nthreads + 1, __ATOMIC_RELAXED); /* see nthreads */
    return 0;
}

static void unlock_mutex(void *mu)
{
    pthread_mutex_unlock(mu);
}

/* weft_blocking's body, for the task t of w and the job j (queued here); with `withdrawable`
 * false the wait ignores the deadline and cancellation from the start (weft__pool_run). A job
 * with `abandon` is left to its thread by a deadline or a cancel that comes while it runs:
 * `*abandoned` is then set, and j is no longer the caller's. */
static int pool_run(weft__worker *w, weft_task *t, weft__job *jp, void **result, int64_t deadline,
                    bool withdrawable, bool *abandoned)
{
    int r;
    weft__pool *p;
    r = pool_get(w, &p);
    if (r < 0)
        return r;

    pthread_mutex_lock(&p->mu);
    r = grow(p);
    if (r < 0) {
        pthread_mutex_unlock(&p->mu);
        return r;
    }
    jp->prev = p->tail;
    if (p->tail)
        p->tail->next = jp;
    else
        p->head = jp;
    p->tail = jp;
    p->nqueued++;
    pthread_cond_signal(&p->work);

    /* The mutex is held at the top of each round; the park releases it once the task is
     * marked parked, so the pool thread's wake (which copies the waker under the mutex)
     * cannot fall between our check and our park. Once the job runs, the wait ignores the
     * deadline and cancellation: the job's frame is ours until it is done (one that may be
     * abandoned is left to its thread instead). */
    bool started = !withdrawable;
    for (;;) {
        if (jp->state == JOB_DONE) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        jp->waker = weft__waker_of(t); /* each park is a new epoch's */
        weft__wait wr = {.kind = WEFT__WAIT_POOL_JOB,
                         .what = jp,
                         .deadline = deadline,
                         .uncancellable = started,
                         .unlock = unlock_mutex,
                         .lock = &p->mu};
        r = weft__park(w, &wr);
        w = t->worker;
        pthread_mutex_lock(&p->mu);
        if (r < 0 && jp->state == JOB_QUEUED) {
            unlink_job(p, jp); /* withdrawn: it never runs */
            pthread_mutex_unlock(&p->mu);
            return r;
        }
        if (r < 0 && jp->abandon && jp->state == JOB_RUNNING) {
            jp->abandoned = true; /* its thread finishes it: the caller goes now */
            *abandoned = true;
            pthread_mutex_unlock(&p->mu);
            return r;
        }
        if (r < 0)
            started = true;
    }
    if (result)
        *result = jp->result;
    return 0;
}

int weft_blocking(weft_fn fn, void *arg, void **result, int64_t deadline)
{
    weft_task *t;
    int r;
    weft__worker *w = weft__blocking_begin(&t, true, &r);
    if (!w)
        return r;
    if (!fn)
        return -EINVAL;
    /* fn cannot run at once (a pool thread runs it): a passed deadline is -ETIMEDOUT before
     * the job is queued. Queued, an idle thread could take it before the park withdrew it,
     * and whether fn ran would be a race. On the clock itself, as weft__io_exec_blocking:
     * one past it, though not yet past the tick's cached weft_now(), would be queued too. */
    if (deadline != WEFT_FOREVER && deadline <= weft__clock_ns())
        return -ETIMEDOUT;
    weft__job j = {.fn = fn, .arg = arg, .state = JOB_QUEUED};
    bool abandoned = false;
    return pool_run(w, t, &j, result, deadline, true, &abandoned);
}

int weft__pool_run(weft__worker *w, weft_task *t, weft_fn fn, void *arg, void **result)
{
    weft__job j = {.fn = fn, .arg = arg, .state = JOB_QUEUED};
    bool abandoned = false;
    return pool_run(w, t, &j, result, WEFT_FOREVER, false, &abandoned);
}

int weft__pool_run_abandonable(weft_fn fn, void *arg, void (*abandon)(void *arg), int64_t deadline)
{
    weft_task *t;
    int r;
    weft__worker *w = weft__blocking_begin(&t, true, &r);
    if (!w) {
        abandon(arg);
        return r;
    }
    /* Nothing done yet, and nothing could be without a wait: as for weft_fs_*. */
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        abandon(arg);
        return -ETIMEDOUT;
    }
    weft__job *j = weft__malloc(w, sizeof *j);
    if (!j) {
        abandon(arg);
        return -ENOMEM;
    }
    *j = (weft__job){.fn = fn, .arg = arg, .state = JOB_QUEUED, .abandon = abandon};
    bool abandoned = false;
    r = pool_run(w, t, j, NULL, deadline, true, &abandoned);
    if (abandoned)
        return r; /* the job's thread calls abandon(arg) and frees j */
    weft__free(weft__worker_current(), j);
    if (r < 0)
        abandon(arg); /* withdrawn, or never queued: it never ran */
    return r;
}

WEFT_COLD void weft__pool_fini(weft__runtime *rt)
{
    weft__pool *p = rt->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    while (p->nthreads > 0)
        pthread_cond_wait(&p->gone, &p->mu);
    pthread_t last;
    bool join_last = weft__exit_chain_take(&p->exited, &last);
    pthread_mutex_unlock(&p->mu);
    if (join_last)
        pthread_join(last, NULL); /* and through it every thread that ever exited */
    pthread_cond_destroy(&p->gone);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p); /* weft__calloc'd: the seam's free is plain free */
    __atomic_store_n(&rt->pool, NULL, __ATOMIC_RELAXED);
}

/* Takes no lock: the metrics readers may be called from a tracer's hook, which can run
 * while this very thread holds the pool's mutex (a weft_blocking task parks with it held, and
 * on_park runs before the park lets go of it) or the runtime's lock (the shutdown's cancels
 * wake tasks under it, and on_wake runs there). Taking either hung the worker for good. The
 * pool outlives every reader: it is freed after the last worker's loop, once the runtime
 * handle answers -ESHUTDOWN. */
void weft__pool_stats(weft__runtime *rt, weft_stats *out)
{
    weft__pool *p = __atomic_load_n(&rt->pool, __ATOMIC_ACQUIRE); /* pairs with pool_get */
    if (!p)
        return;
    out->npool_threads = __atomic_load_n(&p->nthreads, __ATOMIC_RELAXED);
    out->npool_jobs = __atomic_load_n(&p->njobs, __ATOMIC_RELAXED);
}
