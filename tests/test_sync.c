/* Synchronisation: mutual exclusion and FIFO hand-off of the mutex, condition variables
 * (the mutex held on every return), semaphores without barging, wait groups, read-write
 * locks (concurrent readers, exclusive writers, no writer starvation), once, and events;
 * deadlines and cancellation while parked in each. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "harness.h"

/* ---- Mutex ---- */

static weft_mutex mu = WEFT_MUTEX_INIT;
static int inside, overlaps, order[16], norder;

static void *locker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 100; i++) {
        if (weft_mutex_lock(&mu, WEFT_FOREVER) != 0)
            return (void *)1;
        if (inside++)
            overlaps++;
        if (i == 0)
            order[norder++] = id;
        weft_yield(); /* others run, and must queue */
        inside--;
        weft_mutex_unlock(&mu);
    }
    return NULL;
}

static void *mutex_main(void *arg)
{
    (void)arg;
    weft_mutex fresh = WEFT_MUTEX_INIT;
    mu = fresh;
    inside = overlaps = norder = 0;
    cr_assert_eq(weft_mutex_lock(&mu, WEFT_FOREVER), 0);
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        weft_spawn(&t[i], locker, (void *)(intptr_t)i, NULL);
    weft_yield(); /* all eight queue behind main, in spawn order */
    cr_assert_eq(weft_mutex_lock(&mu, WEFT_FOREVER), -EDEADLK);
    cr_assert_eq(weft_mutex_unlock(&mu), 0);
    for (int i = 0; i < 8; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    cr_assert_eq(overlaps, 0, "mutual exclusion");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(order[i], i, "hand-off in arrival order");
    cr_assert_eq(weft_mutex_unlock(&mu), -EPERM, "not held");
    cr_assert_eq(weft_mutex_try_lock(&mu), 0);
    cr_assert_eq(weft_mutex_try_lock(&mu), -EBUSY);
    weft_mutex_unlock(&mu);
    return NULL;
}

Test(sync, mutex_excludes_and_hands_off_fifo)
{
    run_main(mutex_main, NULL);
}

static void *lock_forever(void *arg)
{
    return (void *)(intptr_t)weft_mutex_lock(arg, WEFT_FOREVER);
}

static void *mutex_wait_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_mutex_lock(&m, WEFT_FOREVER);
    weft_task *t;
    weft_spawn(&t, lock_forever, &m, NULL);
    weft_yield();
    weft_cancel(t);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);
    weft_spawn(&t, lock_forever, &m, NULL);
    weft_yield();
    weft_mutex_unlock(&m); /* the cancelled waiter left the queue: this one gets it */
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)0);
    return NULL;
}

static void *timed_lock(void *arg)
{
    return (void *)(intptr_t)weft_mutex_lock(arg, weft_deadline_in(WEFT_MSEC));
}

static void *mutex_timeout_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_mutex_lock(&m, WEFT_FOREVER);
    weft_task *t;
    weft_spawn(&t, timed_lock, &m, NULL);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq((intptr_t)r, -ETIMEDOUT);
    weft_mutex_unlock(&m);
    cr_assert_eq(weft_mutex_try_lock(&m), 0, "free again: the timed-out waiter is gone");
    weft_mutex_unlock(&m);
    return NULL;
}

Test(sync, mutex_deadline_and_cancel)
{
    run_main(mutex_wait_main, NULL);
    run_main(mutex_timeout_main, NULL);
}

/* ---- Condition variable ---- */

struct box {
    weft_mutex m;
    weft_cond c;
    int items;
    int consumed;
};

static void *consume(void *arg)
{
    struct box *b = arg;
    weft_mutex_lock(&b->m, WEFT_FOREVER);
    while (b->items == 0)
        if (weft_cond_wait(&b->c, &b->m, WEFT_FOREVER) < 0)
            break;
    b->items--;
    b->consumed++;
    weft_mutex_unlock(&b->m);
    return NULL;
}

static int cancelled_wait_ok; /* a cancelled task's join reports WEFT_CANCELED, not ours */

static void *cond_wait_cancelled(void *arg)
{
    struct box *b = arg;
    weft_mutex_lock(&b->m, WEFT_FOREVER);
    int r = weft_cond_wait(&b->c, &b->m, WEFT_FOREVER);
    int held = weft_mutex_unlock(&b->m) == 0; /* proves it held the mutex on return */
    cancelled_wait_ok = r == -ECANCELED && held;
    return NULL;
}

static void *cond_main(void *arg)
{
    (void)arg;
    struct box b = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0, 0};
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        weft_spawn(&t[i], consume, &b, NULL);
    weft_yield();
    weft_mutex_lock(&b.m, WEFT_FOREVER);
    b.items = 1;
    cr_assert_eq(weft_cond_signal(&b.c), 1);
    weft_mutex_unlock(&b.m);
    weft_yield();
    weft_yield();
    cr_assert_eq(b.consumed, 1, "signal woke one");
    weft_mutex_lock(&b.m, WEFT_FOREVER);
    b.items = 3;
    cr_assert_eq(weft_cond_broadcast(&b.c), 3);
    weft_mutex_unlock(&b.m);
    for (int i = 0; i < 4; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    cr_assert_eq(b.consumed, 4);

    /* A timed-out wait returns holding the mutex. */
    weft_mutex_lock(&b.m, WEFT_FOREVER);
    cr_assert_eq(weft_cond_wait(&b.c, &b.m, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(&b.m), 0);
    cr_assert_eq(weft_cond_wait(&b.c, &b.m, 0), -EPERM, "without the mutex");

    /* Cancelled in a wait: returns -ECANCELED holding the mutex. */
    weft_task *c;
    cancelled_wait_ok = 0;
    weft_spawn(&c, cond_wait_cancelled, &b, NULL);
    weft_yield();
    weft_cancel(c);
    void *r;
    weft_join(c, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED, "joined as cancelled");
    cr_assert(cancelled_wait_ok, "the wait returned -ECANCELED holding the mutex");
    cr_assert_eq(weft_mutex_try_lock(&b.m), 0, "and it released the mutex afterwards");
    weft_mutex_unlock(&b.m);
    return NULL;
}

Test(sync, condition_signal_broadcast_timeout_cancel)
{
    run_main(cond_main, NULL);
}

/* ---- Semaphore ---- */

static void *acquirer(void *arg)
{
    return (void *)(intptr_t)weft_sem_acquire(arg, WEFT_FOREVER);
}

static void *sem_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT(2);
    cr_assert_eq(weft_sem_acquire(&s, WEFT_FOREVER), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    weft_task *t;
    weft_spawn(&t, acquirer, &s, NULL);
    weft_yield(); /* parked */
    cr_assert_eq(weft_sem_release(&s, 1), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN, "the unit went to the waiter, not to us");
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)0);
    cr_assert_eq(weft_sem_acquire(&s, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_sem_release(&s, 3);
    cr_assert_eq(weft_sem_value(&s), 3);
    return NULL;
}

Test(sync, semaphore_counts_and_hands_units_to_waiters)
{
    run_main(sem_main, NULL);
}

/* ---- Wait group ---- */

static void *worker_done(void *arg)
{
    weft_sleep(WEFT_MSEC);
    weft_waitgroup_done(arg);
    return NULL;
}

static void *wg_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0, "zero: no wait");
    weft_waitgroup_add(&wg, 5);
    for (int i = 0; i < 5; i++)
        weft_spawn(NULL, worker_done, &wg, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    cr_assert_eq(weft_waitgroup_wait(&wg, weft_deadline_in(0)), -ETIMEDOUT);
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_FOREVER), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, -1), -EINVAL, "below zero");
    return NULL;
}

Test(sync, waitgroup)
{
    run_main(wg_main, NULL);
}

/* ---- Read-write lock ---- */

static weft_rwlock rw;
static int readers_now, max_readers, writer_in, rw_violations;

static void *reader_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        weft_rwlock_rdlock(&rw, WEFT_FOREVER);
        readers_now++;
        if (readers_now > max_readers)
            max_readers = readers_now;
        if (writer_in)
            rw_violations++;
        weft_yield();
        readers_now--;
        weft_rwlock_unlock(&rw);
        weft_yield();
    }
    return NULL;
}

static void *writer_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        weft_rwlock_wrlock(&rw, WEFT_FOREVER);
        if (writer_in++ || readers_now)
            rw_violations++;
        weft_yield();
        writer_in--;
        weft_rwlock_unlock(&rw);
        weft_yield();
    }
    return NULL;
}

static void *rw_main(void *arg)
{
    (void)arg;
    weft_rwlock fresh = WEFT_RWLOCK_INIT;
    rw = fresh;
    readers_now = max_readers = writer_in = rw_violations = 0;
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        weft_spawn(&t[i], i % 3 == 2 ? writer_task : reader_task, NULL, NULL);
    /* With readers always around, the writers must still finish (no starvation). */
    for (int i = 0; i < 6; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    cr_assert_eq(rw_violations, 0);
    cr_assert_geq(max_readers, 2, "readers share the lock");
    cr_assert_eq(weft_rwlock_unlock(&rw), -EPERM);
    return NULL;
}

Test(sync, rwlock_shares_reads_excludes_writes_starves_nobody, .timeout = 30)
{
    run_main(rw_main, NULL);
}

/* ---- Once and events ---- */

static int once_runs;

static void once_fn(void *arg)
{
    (void)arg;
    weft_yield(); /* others arrive while it runs */
    once_runs++;
}

static void *once_caller(void *arg)
{
    int r = weft_once_call(arg, once_fn, NULL, WEFT_FOREVER);
    return (void *)(intptr_t)(r == 0 && once_runs == 1);
}

static void *event_waiter(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, weft_deadline_in(5 * WEFT_SEC));
}

static void *once_event_main(void *arg)
{
    (void)arg;
    weft_once o = WEFT_ONCE_INIT;
    once_runs = 0;
    weft_task *t[5];
    for (int i = 0; i < 5; i++)
        weft_spawn(&t[i], once_caller, &o, NULL);
    for (int i = 0; i < 5; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        cr_assert_eq(r, (void *)1, "everyone returns after the one run");
    }
    cr_assert_eq(once_runs, 1);

    /* One-shot: set releases every waiter and stays set until reset. */
    weft_event e = WEFT_EVENT_INIT;
    for (int i = 0; i < 3; i++)
        weft_spawn(&t[i], event_waiter, &e, NULL);
    weft_yield();
    weft_event_set(&e);
    for (int i = 0; i < 3; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        cr_assert_eq(r, (void *)0);
    }
    cr_assert_eq(weft_event_wait(&e, 0), 0, "still set");
    weft_event_reset(&e);
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT);

    /* Auto-reset: each set releases exactly one waiter. */
    weft_event a = WEFT_EVENT_AUTO_INIT;
    for (int i = 0; i < 2; i++)
        weft_spawn(&t[i], event_waiter, &a, NULL);
    weft_yield();
    weft_event_set(&a);
    void *r0;
    weft_join(t[0], &r0, WEFT_FOREVER);
    cr_assert_eq(r0, (void *)0);
    weft_yield();
    cr_assert_eq(weft_event_wait(&a, 0), -ETIMEDOUT, "consumed by the first waiter");
    weft_event_set(&a);
    weft_join(t[1], &r0, WEFT_FOREVER);
    cr_assert_eq(r0, (void *)0);
    weft_event_set(&a); /* nobody waits: it stays set for the next one */
    cr_assert_eq(weft_event_wait(&a, 0), 0);
    cr_assert_eq(weft_event_wait(&a, 0), -ETIMEDOUT);
    return NULL;
}

Test(sync, once_and_events)
{
    run_main(once_event_main, NULL);
}

/* Outside a runtime the thread itself waits (test_thread_park.c has the rest). */
Test(sync, waits_outside_a_task_block_the_thread)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_sem s = WEFT_SEM_INIT(1);
    cr_assert_eq(weft_mutex_lock(&m, 0), 0);
    cr_assert_eq(weft_sem_acquire(&s, 0), 0);
    cr_assert_eq(weft_sem_acquire(&s, 0), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
}

/* ---- Cancellation while parked in every kind of wait ---- */

static weft_sem c_sem = WEFT_SEM_INIT(0);
static weft_waitgroup c_wg = WEFT_WAITGROUP_INIT;
static weft_rwlock c_rw = WEFT_RWLOCK_INIT;
static weft_event c_ev = WEFT_EVENT_INIT;
static weft_once c_once = WEFT_ONCE_INIT;

static void slow_once(void *arg)
{
    (void)arg;
    weft_sleep(20 * WEFT_MSEC); /* the others wait meanwhile */
}

static void *w_sem(void *a)
{
    (void)a;
    return (void *)(intptr_t)weft_sem_acquire(&c_sem, WEFT_FOREVER);
}
static void *w_wg(void *a)
{
    (void)a;
    return (void *)(intptr_t)weft_waitgroup_wait(&c_wg, WEFT_FOREVER);
}
static void *w_rd(void *a)
{
    (void)a;
    return (void *)(intptr_t)weft_rwlock_rdlock(&c_rw, WEFT_FOREVER);
}
static void *w_ev(void *a)
{
    (void)a;
    return (void *)(intptr_t)weft_event_wait(&c_ev, WEFT_FOREVER);
}
static void *w_once(void *a)
{
    (void)a;
    return (void *)(intptr_t)weft_once_call(&c_once, slow_once, NULL, WEFT_FOREVER);
}

static void *cancel_waits_main(void *arg)
{
    (void)arg;
    weft_waitgroup_add(&c_wg, 1);
    weft_rwlock_wrlock(&c_rw, WEFT_FOREVER); /* readers must wait */
    weft_task *runner;
    weft_spawn(&runner, w_once, NULL, NULL); /* runs slow_once */
    weft_yield();
    weft_fn fns[] = {w_sem, w_wg, w_rd, w_ev, w_once};
    for (int i = 0; i < 5; i++) {
        weft_task *t;
        weft_spawn(&t, fns[i], NULL, NULL);
        weft_yield(); /* parked */
        weft_cancel(t);
        void *r;
        weft_join(t, &r, WEFT_FOREVER);
        cr_assert_eq(r, WEFT_CANCELED, "wait %d was not cancelled", i);
    }
    /* The cancelled waiters left no trace behind. */
    weft_sem_release(&c_sem, 1);
    cr_assert_eq(weft_sem_value(&c_sem), 1);
    weft_rwlock_unlock(&c_rw);
    cr_assert_eq(weft_rwlock_wrlock(&c_rw, 0), 0);
    weft_rwlock_unlock(&c_rw);
    weft_join(runner, NULL, WEFT_FOREVER);
    weft_waitgroup_done(&c_wg);
    return NULL;
}

Test(sync, cancellation_while_parked_in_every_wait)
{
    run_main(cancel_waits_main, NULL);
}

/* ---- Reliability ---- */

/* A task that finishes holding a mutex: the next locker gets it with -EOWNERDEAD, once. */
static void *lock_and_finish(void *arg)
{
    weft_mutex_lock(arg, WEFT_FOREVER);
    return NULL;
}

static void *owner_dead_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, lock_and_finish, &m, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), -EOWNERDEAD, "held by a finished task");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), 0, "reported once");
    cr_assert_eq(weft_mutex_unlock(&m), 0);

    /* A waiter parked before the owner finished is handed the mutex. */
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    weft_task *w;
    cr_assert_eq(weft_spawn(&w, lock_forever, &m, NULL), 0);
    weft_yield(); /* w queues behind main */
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    void *r;
    cr_assert_eq(weft_join(w, &r, WEFT_FOREVER), 0, "w finished holding m");
    cr_assert_eq(r, (void *)0);
    cr_assert_eq(weft_mutex_try_lock(&m), -EOWNERDEAD);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return NULL;
}

Test(sync, a_mutex_held_by_a_finished_task_reports_eownerdead, .timeout = 10)
{
    run_main(owner_dead_main, NULL);
}

/* A spawn's cleanup (what tells a handle's joiner or a group's waiter that the task is over)
 * runs once the task has given up its locks: the joiner may then free them. It ran first,
 * and a handle's joiner freed the memory of a mutex the finishing task was still to
 * abandon (tests/tsan/race_storm.c, under TSan). The cleanup may not block (its blocking
 * calls are -EPERM), so it looks at the mutex (a try); the rwlock's write hold goes through
 * the same list of holds, and is checked free once the join returns. */
static weft_mutex cleanup_mu;
static weft_rwlock cleanup_rw;
static int cleanup_saw_mu, cleanup_saw_rw;

static void *lock_both_and_finish(void *arg)
{
    (void)arg;
    weft_mutex_lock(&cleanup_mu, WEFT_FOREVER);
    weft_rwlock_wrlock(&cleanup_rw, WEFT_FOREVER);
    return NULL;
}

static void check_locks_given_up(void *arg)
{
    (void)arg;
    cleanup_saw_mu = weft_mutex_try_lock(&cleanup_mu);
    if (cleanup_saw_mu == -EOWNERDEAD) /* taken: the news goes on to the next holder */
        weft_mutex_unlock(&cleanup_mu);
    cleanup_saw_rw = weft_rwlock_wrlock(&cleanup_rw, weft_now() - 1);
}

static void *cleanup_after_holds_main(void *arg)
{
    (void)arg;
    cleanup_mu = (weft_mutex)WEFT_MUTEX_INIT;
    cleanup_rw = (weft_rwlock)WEFT_RWLOCK_INIT;
    weft_spawn_opts o = {.cleanup = check_locks_given_up};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, lock_both_and_finish, NULL, &o), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(cleanup_saw_mu, -EOWNERDEAD, "the cleanup found the mutex free (%d)",
                 cleanup_saw_mu);
    cr_assert_eq(cleanup_saw_rw, -EPERM, "a blocking call in a cleanup: %d", cleanup_saw_rw);
    cr_assert_eq(weft_rwlock_wrlock(&cleanup_rw, weft_now() - 1), 0, "the write hold was given up");
    cr_assert_eq(weft_rwlock_unlock(&cleanup_rw), 0);
    cr_assert_eq(weft_mutex_try_lock(&cleanup_mu), 0, "free, the news told to the cleanup");
    cr_assert_eq(weft_mutex_unlock(&cleanup_mu), 0);
    return NULL;
}

Test(sync, a_spawn_cleanup_runs_once_the_task_gave_up_its_locks, .timeout = 10)
{
    run_main(cleanup_after_holds_main, NULL);
}

static weft_mutex cw_mu;
static weft_cond cw_cond;
static int cw_result = 1;

static void *cond_waiter(void *arg)
{
    (void)arg;
    weft_mutex_lock(&cw_mu, WEFT_FOREVER);
    cw_result = weft_cond_wait(&cw_cond, &cw_mu, WEFT_FOREVER);
    weft_mutex_unlock(&cw_mu);
    return NULL;
}

static void *cond_shutdown_main(void *arg)
{
    (void)arg;
    weft_spawn(NULL, cond_waiter, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    weft_yield(); /* it waits on the cond, having released the mutex */
    weft_spawn(NULL, lock_and_finish, &cw_mu, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    weft_yield(); /* that one took the mutex and finished holding it */
    return NULL;  /* shutdown cancels the waiter, whose cond_wait must take the mutex back */
}

/* Used to hang: the cancelled cond_wait waited forever for a mutex nobody would unlock. */
Test(sync, shutdown_completes_when_a_cond_waiter_needs_a_dead_owners_mutex, .timeout = 10)
{
    run_main(cond_shutdown_main, NULL);
    cr_assert_eq(cw_result, -EOWNERDEAD);
}

static weft_rwlock rl;
static int reading;

static void *reader_holds(void *arg)
{
    (void)arg;
    if (weft_rwlock_rdlock(&rl, WEFT_FOREVER) != 0)
        return (void *)1;
    reading = 1;
    weft_yield();
    weft_yield();
    reading = 0;
    return (void *)(intptr_t)weft_rwlock_unlock(&rl);
}

static void *writer_checks(void *arg)
{
    (void)arg;
    if (weft_rwlock_wrlock(&rl, WEFT_FOREVER) != 0)
        return (void *)1;
    int r = reading; /* must be 0: no writer while a reader reads */
    weft_rwlock_unlock(&rl);
    return (void *)(intptr_t)(r ? 2 : 0);
}

static void *rdlock_forever(void *arg)
{
    return (void *)(intptr_t)weft_rwlock_rdlock(arg, WEFT_FOREVER);
}

static void *wrlock_forever(void *arg)
{
    return (void *)(intptr_t)weft_rwlock_wrlock(arg, WEFT_FOREVER);
}

static void *rw_nonholder_main(void *arg)
{
    (void)arg;
    weft_rwlock fresh = WEFT_RWLOCK_INIT;
    rl = fresh;
    cr_assert_eq(weft_rwlock_unlock(&rl), -EPERM, "nothing held");
    weft_task *r, *w;
    weft_spawn(&r, reader_holds, NULL, NULL);
    weft_yield(); /* the reader holds a read lock */
    weft_spawn(&w, writer_checks, NULL, NULL);
    cr_assert_eq(weft_rwlock_unlock(&rl), -EPERM, "main holds no read lock");
    void *res;
    weft_join(r, &res, WEFT_FOREVER);
    cr_assert_eq(res, (void *)0);
    weft_join(w, &res, WEFT_FOREVER);
    cr_assert_eq(res, (void *)0, "the writer never ran while the reader read");

    /* A reader that finishes holding its lock gives it up. */
    weft_spawn(&r, rdlock_forever, &rl, NULL);
    weft_join(r, NULL, WEFT_FOREVER);
    cr_assert_eq(weft_rwlock_wrlock(&rl, weft_deadline_in(0)), 0);
    cr_assert_eq(weft_rwlock_unlock(&rl), 0);
    return NULL;
}

Test(sync, rwlock_unlock_by_a_task_holding_nothing_is_eperm, .timeout = 10)
{
    run_main(rw_nonholder_main, NULL);
}

static void log_nothing(void *arg)
{
    (void)arg;
}

static void *null_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_mutex_lock(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_mutex_try_lock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    cr_assert_eq(weft_cond_wait(NULL, &m, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_cond_wait(&c, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_cond_signal(NULL), -EINVAL);
    cr_assert_eq(weft_cond_broadcast(NULL), -EINVAL);
    cr_assert_eq(weft_sem_acquire(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_sem_try_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release(NULL, 1), -EINVAL);
    cr_assert_eq(weft_sem_value(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(NULL, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_rwlock_rdlock(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_rwlock_wrlock(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_rwlock_unlock(NULL), -EINVAL);
    cr_assert_eq(weft_once_call(NULL, log_nothing, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_event_wait(NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_event_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_reset(NULL), -EINVAL);
    return NULL;
}

Test(sync, every_entry_point_refuses_null)
{
    run_main(null_main, NULL);
}

static void *overflow_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MAX), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, -INT64_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MIN), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_FOREVER), 0);
    return NULL;
}

/* Run under UBSan in the ASan build: each used to be a signed overflow. */
Test(sync, counters_and_error_names_do_not_overflow)
{
    run_main(overflow_main, NULL);
    cr_assert_str_eq(weft_errname(INT_MIN), "EUNKNOWN");
    cr_assert_str_eq(weft_strerror(INT_MIN), "unknown error");
    cr_assert_str_eq(weft_errname(-EOWNERDEAD), "EOWNERDEAD");
}

static weft_once self_once = WEFT_ONCE_INIT;
static int self_once_result = 1;

static void once_calls_itself(void *arg)
{
    (void)arg;
    self_once_result = weft_once_call(&self_once, once_calls_itself, NULL, WEFT_FOREVER);
}

static void *self_deadlock_main(void *arg)
{
    (void)arg;
    weft_rwlock l = WEFT_RWLOCK_INIT;
    cr_assert_eq(weft_rwlock_wrlock(&l, WEFT_FOREVER), 0);
    cr_assert_eq(weft_rwlock_rdlock(&l, WEFT_FOREVER), -EDEADLK, "read under own write");
    cr_assert_eq(weft_rwlock_wrlock(&l, WEFT_FOREVER), -EDEADLK);
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_rdlock(&l, WEFT_FOREVER), 0);
    cr_assert_eq(weft_rwlock_wrlock(&l, WEFT_FOREVER), -EDEADLK, "write under own read");
    /* A writer queues; a second read by the same reader is not held back behind it. */
    weft_task *w;
    weft_spawn(&w, wrlock_forever, &l, NULL);
    weft_yield();
    cr_assert_eq(weft_rwlock_rdlock(&l, WEFT_FOREVER), 0, "recursive read past a writer");
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), -EPERM);
    cr_assert_eq(weft_join(w, NULL, WEFT_FOREVER), 0); /* it got the lock, then finished */

    cr_assert_eq(weft_once_call(&self_once, once_calls_itself, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(self_once_result, -EDEADLK);
    return NULL;
}

/* Each used to wait out its deadline (forever here) instead of failing at once. */
Test(sync, self_deadlocks_fail_at_once, .timeout = 10)
{
    run_main(self_deadlock_main, NULL);
}

/* A condition variable that is the mutex itself (one object passed as both, through a cast):
 * -EINVAL, the mutex still held. The wait took the condition's lock and then, to release
 * the mutex, the same lock again: the worker spun for ever. */
static void cond_is_its_own_mutex(void)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    weft_cond *as_cond = (weft_cond *)(void *)&m;
    cr_assert_eq(weft_cond_wait(as_cond, &m, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_cond_wait(as_cond, &m, 0), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "still held, by the caller");
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
}

static void *cond_alias_thread(void *arg)
{
    (void)arg;
    cond_is_its_own_mutex();
    return NULL;
}

static void *cond_alias_main(void *arg)
{
    (void)arg;
    cond_is_its_own_mutex();
    pthread_t th; /* a plain thread, whose wait blocks the thread */
    cr_assert_eq(pthread_create(&th, NULL, cond_alias_thread, NULL), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    return NULL;
}

Test(sync, a_condition_variable_that_is_its_own_mutex_is_refused, .timeout = 10)
{
    run_main(cond_alias_main, NULL);
}

/* ---- Two runtimes share primitives: each side's waits and grants reach the other ---- */

#include <pthread.h>
#include <semaphore.h>

static weft_mutex x_mu;
static weft_sem x_sem;
static weft_rwlock x_rw;
static weft_waitgroup x_wg;
static weft_event x_ev;
static sem_t x_busy, x_checked;

static void *x_sem_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sem_acquire(&x_sem, WEFT_FOREVER);
}

static void *x_owner_main(void *arg)
{
    (void)arg;
    weft_mutex_lock(&x_mu, WEFT_FOREVER);
    weft_rwlock_rdlock(&x_rw, WEFT_FOREVER);
    weft_waitgroup_add(&x_wg, 1);
    weft_task *t;
    weft_spawn(&t, x_sem_waiter, NULL, NULL);
    weft_yield(); /* parked on the semaphore */
    sem_post(&x_busy);
    while (sem_wait(&x_checked) != 0) /* blocks this runtime's thread meanwhile */
        ;
    /* The other runtime released the semaphore: our waiter got the unit from there. */
    void *r = (void *)-1;
    weft_join(t, &r, WEFT_FOREVER);
    weft_waitgroup_done(&x_wg);
    weft_rwlock_unlock(&x_rw);
    weft_mutex_unlock(&x_mu);
    return r;
}

static void *x_owner_thread(void *arg)
{
    (void)arg;
    void *r = (void *)-1;
    int e = weft_run(NULL, x_owner_main, NULL, &r);
    return (void *)(intptr_t)(e == 0 && r == NULL);
}

static void *x_other_main(void *arg)
{
    (void)arg;
    int64_t soon = weft_deadline_in(2 * WEFT_MSEC);
    cr_assert_eq(weft_mutex_try_lock(&x_mu), -EBUSY, "held by the other runtime's task");
    cr_assert_eq(weft_mutex_lock(&x_mu, soon), -ETIMEDOUT);
    cr_assert_eq(weft_sem_release(&x_sem, 1), 0, "granted to the other runtime's waiter");
    cr_assert_eq(weft_sem_try_acquire(&x_sem), -EAGAIN, "the unit went to the waiter");
    cr_assert_eq(weft_rwlock_rdlock(&x_rw, WEFT_FOREVER), 0, "reads are shared");
    cr_assert_eq(weft_rwlock_unlock(&x_rw), 0);
    cr_assert_eq(weft_rwlock_wrlock(&x_rw, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_waitgroup_wait(&x_wg, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(&x_ev), 0);
    cr_assert_eq(weft_event_wait(&x_ev, WEFT_FOREVER), 0);
    sem_post(&x_checked);
    /* Released there: it comes here, and so does the wait group's zero. */
    cr_assert_eq(weft_mutex_lock(&x_mu, WEFT_FOREVER), 0);
    cr_assert_eq(weft_waitgroup_wait(&x_wg, WEFT_FOREVER), 0);
    cr_assert_eq(weft_mutex_unlock(&x_mu), 0);
    return NULL;
}

Test(sync, primitives_are_shared_between_runtimes, .timeout = 20)
{
    sem_init(&x_busy, 0, 0);
    sem_init(&x_checked, 0, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, x_owner_thread, NULL), 0);
    while (sem_wait(&x_busy) != 0)
        ;
    run_main(x_other_main, NULL);
    void *r;
    pthread_join(th, &r);
    cr_assert_eq(r, (void *)1);
}

/* A writer that finishes holding a rwlock frees it: a waiting reader gets it, and a task that
 * later reuses the writer's record holds nothing (its unlock is -EPERM). */
static weft_rwlock abandoned_rw = WEFT_RWLOCK_INIT;

static void *write_and_finish(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_rwlock_wrlock(&abandoned_rw, WEFT_FOREVER);
}

static void *read_after_writer(void *arg)
{
    (void)arg;
    int r = weft_rwlock_rdlock(&abandoned_rw, WEFT_FOREVER);
    if (r == 0)
        weft_rwlock_unlock(&abandoned_rw);
    return (void *)(intptr_t)r;
}

static void *unlock_holding_nothing(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_rwlock_unlock(&abandoned_rw);
}

static void *rw_abandon_main(void *arg)
{
    (void)arg;
    weft_task *wr, *rd;
    weft_spawn(&wr, write_and_finish, NULL, NULL);
    weft_spawn(&rd, read_after_writer, NULL, NULL);
    void *r;
    cr_assert_eq(weft_join(wr, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0, "the writer got the lock, then finished holding it");
    cr_assert_eq(weft_join(rd, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0, "the reader got it once the writer was gone");
    for (int i = 0; i < 200; i++) { /* enough spawns to reuse the writer's record */
        weft_task *u;
        weft_spawn(&u, unlock_holding_nothing, NULL, NULL);
        cr_assert_eq(weft_join(u, &r, WEFT_FOREVER), 0);
        cr_assert_eq(r, (void *)(intptr_t)-EPERM);
    }
    cr_assert_eq(weft_rwlock_wrlock(&abandoned_rw, WEFT_FOREVER), 0, "free again");
    cr_assert_eq(weft_rwlock_unlock(&abandoned_rw), 0);
    return NULL;
}

Test(sync, a_writer_that_finishes_holding_the_lock_frees_it, .timeout = 30)
{
    run_main(rw_abandon_main, NULL);
}

/* A once function that never returns (its task calls weft_exit) leaves the once not done:
 * a waiter runs the function instead, and nobody waits forever. */
static weft_once exit_once = WEFT_ONCE_INIT;
static int once_runs;

static void exits_midway(void *arg)
{
    once_runs++;
    if (arg)
        weft_exit(NULL);
}

static void *once_exiter(void *arg)
{
    (void)arg;
    weft_once_call(&exit_once, exits_midway, (void *)1, WEFT_FOREVER);
    return (void *)2; /* not reached */
}

static void *once_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_once_call(&exit_once, exits_midway, NULL, WEFT_FOREVER);
}

static void *once_exit_main(void *arg)
{
    (void)arg;
    once_runs = 0;
    weft_task *a, *b;
    weft_spawn(&a, once_exiter, NULL, NULL);
    weft_spawn(&b, once_waiter, NULL, NULL);
    void *r;
    cr_assert_eq(weft_join(a, &r, WEFT_FOREVER), 0);
    cr_assert_null(r, "the first runner exited from inside the function");
    cr_assert_eq(weft_join(b, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0);
    cr_assert_eq(once_runs, 2, "the waiter ran the function itself");
    cr_assert_eq(weft_once_call(&exit_once, exits_midway, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(once_runs, 2, "done now: never again");
    return NULL;
}

Test(sync, a_once_whose_runner_exits_midway_is_run_by_a_waiter, .timeout = 30)
{
    run_main(once_exit_main, NULL);
}

/* ---- A primitive freed by its granter right after the grant -------------------------------
 * A "done" event or wait group in the setter's frame or object, a condition variable
 * destroyed right after a broadcast (POSIX allows it): the woken waiters must not touch the
 * primitive again. Every waiter took its lock once more after waking (ASan: use-after-free
 * in wait_queued; with the memory reused, a spin for ever on a foreign lock word). The
 * granter now tells a waiter it woke that it may leave without the lock. Heap objects
 * poisoned on free, two waiters each, both ready orders. */
typedef struct freed_prim {
    int kind; /* 0 cond, 1 event, 2 auto-reset event, 3 wait group, 4 semaphore */
    weft_mutex mu;
    weft_cond cond;
    weft_event ev;
    weft_waitgroup wg;
    weft_sem sem;
    bool done;
} freed_prim;

static weft_mutex freed_prim_mu = WEFT_MUTEX_INIT; /* the cond's mutex: outlives the object */

static void *wait_freed_prim(void *arg)
{
    freed_prim *p = arg;
    switch (p->kind) {
    case 0: {
        weft_mutex_lock(&freed_prim_mu, WEFT_FOREVER);
        int r = weft_cond_wait(&p->cond, &freed_prim_mu, WEFT_FOREVER);
        weft_mutex_unlock(&freed_prim_mu);
        return (void *)(intptr_t)r;
    }
    case 1:
    case 2:
        return (void *)(intptr_t)weft_event_wait(&p->ev, WEFT_FOREVER);
    case 3:
        return (void *)(intptr_t)weft_waitgroup_wait(&p->wg, WEFT_FOREVER);
    default:
        return (void *)(intptr_t)weft_sem_acquire(&p->sem, WEFT_FOREVER);
    }
}

static void *freed_prim_main(void *arg)
{
    (void)arg;
    for (int kind = 0; kind <= 4; kind++) {
        freed_prim *p = calloc(1, sizeof *p);
        cr_assert_not_null(p);
        p->kind = kind;
        if (kind == 2)
            p->ev = (weft_event)WEFT_EVENT_AUTO_INIT;
        if (kind == 3)
            weft_waitgroup_add(&p->wg, 1);
        int nwaiters = kind == 2 ? 1 : 2; /* an auto-reset set wakes one */
        weft_task *t[2];
        for (int i = 0; i < nwaiters; i++)
            cr_assert_eq(weft_spawn(&t[i], wait_freed_prim, p, NULL), 0);
        for (int i = 0; i < nwaiters; i++)
            for (int k = 0; k < 1000 && weft_task_status(t[i]) != WEFT_TASK_PARKED; k++)
                weft_yield();
        switch (kind) {
        case 0:
            weft_mutex_lock(&freed_prim_mu, WEFT_FOREVER);
            cr_assert_eq(weft_cond_broadcast(&p->cond), 2);
            weft_mutex_unlock(&freed_prim_mu);
            break;
        case 1:
        case 2:
            cr_assert_eq(weft_event_set(&p->ev), 0);
            break;
        case 3:
            cr_assert_eq(weft_waitgroup_done(&p->wg), 0);
            break;
        default:
            cr_assert_eq(weft_sem_release(&p->sem, 2), 0);
        }
        free(p); /* at once: the waiters have not run yet */
        for (int i = 0; i < nwaiters; i++) {
            void *r = (void *)1;
            cr_assert_eq(weft_join(t[i], &r, WEFT_FOREVER), 0);
            cr_assert_eq((intptr_t)r, 0, "kind %d waiter %d: %s", kind, i,
                         weft_strerror((int)(intptr_t)r));
        }
    }
    return NULL;
}

Test(sync, a_primitive_freed_by_its_granter_right_after_the_grant, .timeout = 60)
{
    run_main_each_order(freed_prim_main, NULL);
}
