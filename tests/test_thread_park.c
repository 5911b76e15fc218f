/* Plain threads on weft's channels and locks: a thread outside every runtime blocks on them
 * (a futex sleep through its stand-in record) in the same FIFO queues as tasks. Threads with
 * no runtime at all, threads talking to tasks of a running runtime, deadlines on a thread, a
 * select from a thread, the holder rules (a thread unlocks what it locked), and the -EPERM
 * that a worker's thread still gets outside a stackful task. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define NTHREADS 4
#define NITEMS   2000

/* ---- Threads only, no runtime anywhere ---- */

static weft_mutex t_mu = WEFT_MUTEX_INIT;
static long t_counter;

static void *locker_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < NITEMS; i++) {
        int r = weft_mutex_lock(&t_mu, WEFT_FOREVER);
        if (r != 0)
            return (void *)(intptr_t)r;
        long v = t_counter; /* a torn increment if the mutex let two threads in */
        if (i % 64 == 0)
            sched_yield();
        t_counter = v + 1;
        if ((r = weft_mutex_unlock(&t_mu)) != 0)
            return (void *)(intptr_t)r;
    }
    return NULL;
}

Test(thread_park, mutex_between_threads_without_a_runtime)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, locker_thread, NULL), 0);
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_null(r, "a lock or unlock failed: %d", (int)(intptr_t)r);
    }
    cr_assert_eq(t_counter, (long)NTHREADS * NITEMS);
}

static void *unlock_foreign(void *arg)
{
    return (void *)(intptr_t)weft_mutex_unlock(arg);
}

Test(thread_park, a_thread_unlocks_only_what_it_holds)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "not held");
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), -EDEADLK, "held by this thread");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY);
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, unlock_foreign, &m), 0);
    pthread_join(th, &r);
    cr_assert_eq((int)(intptr_t)r, -EPERM, "another thread does not hold it");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
}

static void *lock_with_deadline(void *arg)
{
    return (void *)(intptr_t)weft_mutex_lock(arg, weft_deadline_in(20 * WEFT_MSEC));
}

Test(thread_park, a_thread_wait_ends_at_its_deadline)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, lock_with_deadline, &m), 0);
    pthread_join(th, &r);
    cr_assert_eq((int)(intptr_t)r, -ETIMEDOUT);
    /* The timed-out waiter left the queue: the lock is free for the next one. */
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(pthread_create(&th, NULL, lock_with_deadline, &m), 0);
    pthread_join(th, &r);
    cr_assert_eq((int)(intptr_t)r, 0, "got it at once");

    weft_sem s = WEFT_SEM_INIT(0);
    int64_t before = weft_now();
    cr_assert_eq(weft_sem_acquire(&s, weft_deadline_in(5 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_geq(weft_now() - before, 5 * WEFT_MSEC, "slept until the deadline");
    cr_assert_eq(weft_sem_acquire(&s, 0), -ETIMEDOUT, "a past deadline does not sleep");
}

static weft_chan *t_chan;

static void *chan_producer(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = 0; i < NITEMS; i++) {
        int v = base + i;
        int r = weft_chan_send(t_chan, &v, WEFT_FOREVER);
        if (r != 0)
            return (void *)(intptr_t)r;
    }
    return NULL;
}

Test(thread_park, channel_between_threads_without_a_runtime)
{
    cr_assert_eq(weft_chan_create(&t_chan, sizeof(int), 0), 0, "a rendezvous channel");
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, chan_producer, (void *)(intptr_t)(i * NITEMS)),
                     0);
    /* Every value once, and each producer's values in its order. */
    static char seen[NTHREADS * NITEMS];
    int last[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        last[i] = -1;
    for (int n = 0; n < NTHREADS * NITEMS; n++) {
        int v;
        cr_assert_eq(weft_chan_recv(t_chan, &v, WEFT_FOREVER), 0);
        cr_assert(v >= 0 && v < NTHREADS * NITEMS && !seen[v], "value %d", v);
        seen[v] = 1;
        cr_assert_gt(v, last[v / NITEMS], "FIFO per producer");
        last[v / NITEMS] = v;
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_null(r);
    }
    int v = 0;
    cr_assert_eq(weft_chan_recv(t_chan, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_close(t_chan), 0);
    cr_assert_eq(weft_chan_send(t_chan, &v, WEFT_FOREVER), -EPIPE);
    weft_chan_release(t_chan);
}

/* ---- Threads and the tasks of a running runtime ---- */

typedef struct mixed {
    weft_chan *to_tasks, *to_threads;
    weft_mutex mu;
    long counter;
    weft_waitgroup wg;
    weft_cond cv;
    int turn; /* ping-pong through the condition variable: 0 thread's turn, 1 task's */
    int nrounds;
} mixed;

static void *mixed_thread(void *arg)
{
    mixed *m = arg;
    /* Forward every value to the tasks, take every answer back. */
    for (int i = 0; i < NITEMS; i++) {
        if (weft_chan_send(m->to_tasks, &i, WEFT_FOREVER) != 0)
            return (void *)1;
        int back;
        if (weft_chan_recv(m->to_threads, &back, WEFT_FOREVER) != 0 || back != i * 2)
            return (void *)2;
        if (weft_mutex_lock(&m->mu, WEFT_FOREVER) != 0)
            return (void *)3;
        m->counter++;
        weft_mutex_unlock(&m->mu);
    }
    /* The condition variable, the thread on one side. */
    weft_mutex_lock(&m->mu, WEFT_FOREVER);
    for (int i = 0; i < m->nrounds; i++) {
        while (m->turn != 0)
            if (weft_cond_wait(&m->cv, &m->mu, WEFT_FOREVER) != 0)
                return (void *)4;
        m->turn = 1;
        weft_cond_broadcast(&m->cv);
    }
    weft_mutex_unlock(&m->mu);
    weft_waitgroup_done(&m->wg);
    return NULL;
}

static void *echo_task(void *arg)
{
    mixed *m = arg;
    for (int i = 0; i < NITEMS; i++) {
        int v;
        cr_assert_eq(weft_chan_recv(m->to_tasks, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, i);
        v *= 2;
        cr_assert_eq(weft_chan_send(m->to_threads, &v, WEFT_FOREVER), 0);
        cr_assert_eq(weft_mutex_lock(&m->mu, WEFT_FOREVER), 0);
        m->counter++;
        cr_assert_eq(weft_mutex_unlock(&m->mu), 0);
    }
    weft_mutex_lock(&m->mu, WEFT_FOREVER);
    for (int i = 0; i < m->nrounds; i++) {
        while (m->turn != 1)
            cr_assert_eq(weft_cond_wait(&m->cv, &m->mu, WEFT_FOREVER), 0);
        m->turn = 0;
        weft_cond_broadcast(&m->cv);
    }
    weft_mutex_unlock(&m->mu);
    return NULL;
}

static void *mixed_main(void *arg)
{
    mixed *m = arg;
    cr_assert_eq(weft_chan_create(&m->to_tasks, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&m->to_threads, sizeof(int), 4), 0);
    weft_waitgroup_add(&m->wg, 1);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, mixed_thread, m), 0);
    /* On the last worker, so that with several the hand-offs cross threads twice over. */
    weft_task *t;
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, echo_task, m, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* The thread's last act is a wait group count-down that this task waits for. */
    cr_assert_eq(weft_waitgroup_wait(&m->wg, WEFT_FOREVER), 0);
    void *r;
    pthread_join(th, &r); /* it has returned or is about to: its last call was done() */
    cr_assert_null(r, "the thread failed at step %d", (int)(intptr_t)r);
    cr_assert_eq(m->counter, 2L * NITEMS);
    weft_chan_release(m->to_tasks);
    weft_chan_release(m->to_threads);
    return NULL;
}

Test(thread_park, a_thread_and_tasks_share_channels_locks_and_conditions)
{
    for (unsigned n = 1; n <= 2; n++) {
        mixed m = {
            .mu = WEFT_MUTEX_INIT, .wg = WEFT_WAITGROUP_INIT, .cv = WEFT_COND_INIT, .nrounds = 200};
        weft_config c;
        weft_config_init(&c);
        c.workers = n;
        run_main_cfg(&c, mixed_main, &m);
    }
}

static weft_chan *s_a, *s_b;

static void *select_thread(void *arg)
{
    (void)arg;
    int got[2] = {0, 0};
    for (int n = 0; n < 2 * NITEMS; n++) {
        int va, vb;
        weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = s_a, .elem = &va},
                           {.op = WEFT_CASE_RECV, .chan = s_b, .elem = &vb}};
        int i = weft_select(cs, 2, WEFT_FOREVER);
        if (i < 0 || i > 1 || cs[i].result != 0)
            return (void *)1;
        int v = i == 0 ? va : vb;
        if (v != got[i]++)
            return (void *)2; /* each channel's values in order, none twice */
    }
    int v;
    weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = s_a, .elem = &v},
                       {.op = WEFT_CASE_RECV, .chan = s_b, .elem = &v}};
    if (weft_select(cs, 2, weft_deadline_in(WEFT_MSEC)) != -ETIMEDOUT)
        return (void *)3;
    return NULL;
}

static void *select_feeder(void *arg)
{
    weft_chan *c = arg;
    for (int i = 0; i < NITEMS; i++)
        cr_assert_eq(weft_chan_send(c, &i, WEFT_FOREVER), 0);
    return NULL;
}

static void *select_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&s_a, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&s_b, sizeof(int), 0), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, select_thread, NULL), 0);
    weft_task *a, *b;
    cr_assert_eq(weft_spawn(&a, select_feeder, s_a, NULL), 0);
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &b, select_feeder, s_b, NULL), 0);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(b, NULL, WEFT_FOREVER), 0);
    /* The thread now times out once and returns: a short blocking join on this worker. */
    void *r;
    pthread_join(th, &r);
    cr_assert_null(r, "the selecting thread failed at step %d", (int)(intptr_t)r);
    weft_chan_release(s_a);
    weft_chan_release(s_b);
    return NULL;
}

Test(thread_park, a_thread_selects_over_channels_fed_by_tasks)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    run_main_cfg(&c, select_main, NULL);
}

/* ---- Every other primitive from threads ---- */

static weft_rwlock r_rw = WEFT_RWLOCK_INIT;
static weft_once r_once = WEFT_ONCE_INIT;
static weft_event r_ev = WEFT_EVENT_INIT;
static atomic_int r_once_runs, r_readers_in;

static void once_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&r_once_runs, 1);
}

static void *rw_thread(void *arg)
{
    (void)arg;
    if (weft_event_wait(&r_ev, WEFT_FOREVER) != 0)
        return (void *)1;
    if (weft_once_call(&r_once, once_fn, NULL, WEFT_FOREVER) != 0)
        return (void *)2;
    for (int i = 0; i < 200; i++) {
        if (weft_rwlock_rdlock(&r_rw, WEFT_FOREVER) != 0)
            return (void *)3;
        atomic_fetch_add(&r_readers_in, 1);
        atomic_fetch_sub(&r_readers_in, 1);
        if (weft_rwlock_unlock(&r_rw) != 0)
            return (void *)4;
        if (weft_rwlock_wrlock(&r_rw, WEFT_FOREVER) != 0)
            return (void *)5;
        if (atomic_load(&r_readers_in) != 0)
            return (void *)6; /* a writer never overlaps a reader */
        if (weft_rwlock_unlock(&r_rw) != 0)
            return (void *)7;
    }
    return NULL;
}

Test(thread_park, rwlock_once_and_event_from_threads)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, rw_thread, NULL), 0);
    cr_assert_eq(weft_event_set(&r_ev), 0);
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_null(r, "step %d failed", (int)(intptr_t)r);
    }
    cr_assert_eq(atomic_load(&r_once_runs), 1);
    cr_assert_eq(weft_rwlock_unlock(&r_rw), -EPERM, "this thread holds nothing");
}

/* ---- A worker's thread outside a stackful task must not block ---- */

typedef struct blocker_future {
    weft_future base;
    weft_mutex *m;
} blocker_future;

static int blocker_poll(weft_future *self, weft_context *cx)
{
    (void)cx;
    blocker_future *f = (blocker_future *)self;
    /* On the worker's thread, in no stackful task: blocking would stall every task. */
    int r = weft_mutex_lock(f->m, WEFT_FOREVER);
    int v = 0;
    int rc = weft_chan_recv(NULL, &v, WEFT_FOREVER);
    weft_future_complete(self, 0, (void *)(intptr_t)(r == -EPERM && rc == -EPERM));
    return WEFT_READY;
}

static void blocker_drop(weft_future *self)
{
    (void)self;
}

static const weft_future_ops blocker_ops = {blocker_poll, blocker_drop};

static void *stackless_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0, "held by main: a wait would block");
    blocker_future f = {.m = &m};
    weft_future_init(&f.base, &blocker_ops);
    weft_task *t;
    cr_assert_eq(weft_spawn_future(&t, &f.base, NULL), 0);
    void *ok = NULL;
    cr_assert_eq(weft_join(t, &ok, WEFT_FOREVER), 0);
    cr_assert_eq(ok, (void *)1, "the stackless task got -EPERM, not a blocked worker");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return NULL;
}

Test(thread_park, a_stackless_task_gets_eperm)
{
    run_main(stackless_main, NULL);
}
