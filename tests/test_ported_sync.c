/* Tokio's sync test suite (tokio/tests/sync_mutex.rs, sync_semaphore.rs, sync_notify.rs,
 * sync_oneshot.rs, sync_mpsc.rs, sync_rwlock.rs, sync_broadcast.rs, sync_once_cell.rs) and
 * Go's sync tests (sync/mutex_test.go, rwmutex_test.go, waitgroup_test.go, once_test.go,
 * cond_test.go), re-expressed against the primitives weft.h documents: weft_mutex for
 * tokio::sync::Mutex and sync.Mutex, weft_sem for Semaphore, the auto-reset weft_event for
 * Notify's notify_one, weft_promise for oneshot, weft_chan for mpsc, weft_bcast for broadcast,
 * weft_once for OnceCell and sync.Once. Tokio's Barrier and watch have no weft counterpart.
 *
 * Each test names its source. Where the peer panics or aborts on misuse (Go's "unlock of
 * unlocked mutex", "negative WaitGroup counter"; Tokio's MAX_PERMITS overflow) weft returns
 * the error weft.h lists and changes nothing; the tests check both. The emphasis is on waits
 * given up (deadline, cancellation): a waiter that left never takes what a grant meant for
 * the next one, and a grant that raced the give-up is kept by the waiter, so nothing is lost
 * or doubled. The race tests check that as an exact count, never as a timing.
 *
 * Every test holds on one worker and on two, sharded and stealing (the environment picks:
 * WEFT_WORKERS, WEFT_MODE; tests/CMakeLists.txt runs the file each way). Deadlines are
 * bounds a hang would reach, or short on purpose where a wait is meant to be given up; no
 * pass or fail depends on timing. Plain threads are the program's own pthreads, outside
 * every runtime, where weft.h lets them call the primitives. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "task_helpers.h"

#define SOON    (10 * WEFT_SEC) /* a deadline only a hang reaches */
#define RES(r)  ((void *)(intptr_t)(r))
#define NOT_YET INT_MIN /* an op's result before the op returned */

/* ---- Helpers ---------------------------------------------------------------------------- */

static int64_t soon(void)
{
    return weft_deadline_in(SOON);
}

/* The worker other than the caller's when there are two or more, else the caller's. */
static unsigned other_worker(void)
{
    unsigned n = weft_worker_count();
    return n > 1 ? (unsigned)(weft_worker_index() + 1) % n : 0;
}

static weft_task *spawn_on(unsigned worker, weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    cr_assert_eq(weft_spawn_on(worker % weft_worker_count(), &t, fn, arg, NULL), 0);
    return t;
}

static weft_task *spawn_on_other(weft_fn fn, void *arg)
{
    return spawn_on(other_worker(), fn, arg);
}

static int join_int(weft_task *t)
{
    return (int)(intptr_t)join_result(t);
}

/* A small pseudo-random sequence per task (xorshift), for the race tests' short deadlines. */
static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* One blocking call made by a task or a thread: what it waits on, its deadline, and what it
 * returned (NOT_YET until then; a cancelled task's join says only WEFT_CANCELED). `entered`
 * is set under the cond's mutex just before a cond wait, so that a caller who then takes the
 * mutex knows the waiter is queued (Go's `running` channel). */
struct op {
    void *obj;
    void *mutex;
    int64_t deadline;
    atomic_int result;
    atomic_int entered;
};

static void op_init(struct op *o, void *obj, void *mutex, int64_t deadline)
{
    o->obj = obj;
    o->mutex = mutex;
    o->deadline = deadline;
    atomic_init(&o->result, NOT_YET);
    atomic_init(&o->entered, 0);
}

static void *op_done(struct op *o, int r)
{
    atomic_store(&o->result, r);
    return RES(r);
}

/* Locks, and unlocks again if it got the mutex. */
static void *op_lock(void *arg)
{
    struct op *o = arg;
    int r = weft_mutex_lock(o->obj, o->deadline);
    if (r == 0 || r == -EOWNERDEAD)
        weft_mutex_unlock(o->obj);
    return op_done(o, r);
}

static void *op_try_lock(void *arg)
{
    struct op *o = arg;
    int r = weft_mutex_try_lock(o->obj);
    if (r == 0)
        weft_mutex_unlock(o->obj);
    return op_done(o, r);
}

static void *op_unlock(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_mutex_unlock(o->obj));
}

/* Takes a unit and keeps it. */
static void *op_acquire(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_sem_acquire(o->obj, o->deadline));
}

static void *op_event_wait(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_event_wait(o->obj, o->deadline));
}

static void *op_wg_wait(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_waitgroup_wait(o->obj, o->deadline));
}

/* Waits on the cond once, holding its mutex around the wait (and unlocking it after). */
static void *op_cond_wait(void *arg)
{
    struct op *o = arg;
    int r = weft_mutex_lock(o->mutex, soon());
    if (r != 0)
        return op_done(o, r);
    atomic_store(&o->entered, 1);
    r = weft_cond_wait(o->obj, o->mutex, o->deadline);
    atomic_store(&o->result, r);
    weft_mutex_unlock(o->mutex);
    return RES(r);
}

/* Read-locks (or write-locks) and keeps the hold until `release` is set, then unlocks. */
struct rw_op {
    struct op op;
    bool write;
    weft_event *release;
};

static void *op_rw_hold(void *arg)
{
    struct rw_op *w = arg;
    int r = w->write ? weft_rwlock_wrlock(w->op.obj, w->op.deadline)
                     : weft_rwlock_rdlock(w->op.obj, w->op.deadline);
    atomic_store(&w->op.result, r);
    if (r != 0)
        return RES(r);
    if (w->release)
        weft_event_wait(w->release, soon());
    return RES(weft_rwlock_unlock(w->op.obj));
}

/* Yields until the cond waiter `o` is queued on its cond (see struct op). */
static void wait_in_cond(struct op *o)
{
    for (;;) {
        cr_assert_eq(weft_mutex_lock(o->mutex, soon()), 0);
        int in = atomic_load(&o->entered);
        cr_assert_eq(weft_mutex_unlock(o->mutex), 0);
        if (in)
            return;
        cr_assert_eq(weft_yield(), 0);
    }
}

/* A plain thread of the program's own (outside every runtime) running fn(arg). A task waits
 * for it through an event, which a thread may set, so the task's worker is never blocked
 * while the thread needs it. */
struct thread_job {
    pthread_t th;
    weft_fn fn;
    void *arg;
    void *result;
    weft_event done;
};

static void *thread_body(void *p)
{
    struct thread_job *j = p;
    j->result = j->fn(j->arg);
    weft_event_set(&j->done);
    return NULL;
}

static void thread_start(struct thread_job *j, weft_fn fn, void *arg)
{
    weft_event fresh = WEFT_EVENT_INIT;
    j->fn = fn;
    j->arg = arg;
    j->result = NULL;
    j->done = fresh;
    cr_assert_eq(pthread_create(&j->th, NULL, thread_body, j), 0);
}

static int thread_join(struct thread_job *j)
{
    cr_assert_eq(weft_event_wait(&j->done, soon()), 0, "the thread finished");
    cr_assert_eq(pthread_join(j->th, NULL), 0);
    return (int)(intptr_t)j->result;
}

/* ---- Mutex (tokio sync_mutex.rs, Go mutex_test.go) ------------------------------------- */

/* Tokio straight_execution, readiness, try_lock: a lock held is pending for everyone else
 * (try_lock -EBUSY, a passed deadline -ETIMEDOUT), the owner's relock is -EDEADLK; an unlock
 * with a waiter hands the mutex straight to it, so a try_lock right after the unlock fails
 * even before the waiter (on another worker) has run; once it has unlocked, try_lock works. */
static void *mutex_readiness_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    for (int i = 0; i < 3; i++) { /* straight_execution */
        cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
        cr_assert_eq(weft_mutex_unlock(&m), 0);
    }
    cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
    cr_assert_eq(weft_mutex_lock(&m, 0), -EDEADLK, "the owner's relock");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY, "try_lock does not recurse");
    struct op t1, t2;
    op_init(&t1, &m, NULL, 0);
    op_init(&t2, &m, NULL, 0);
    cr_assert_eq(join_result(spawn_on_other(op_try_lock, &t1)), RES(-EBUSY));
    cr_assert_eq(join_result(spawn_on_other(op_lock, &t2)), RES(-ETIMEDOUT), "passed deadline");

    struct op w;
    op_init(&w, &m, NULL, soon());
    weft_task *t = spawn_on_other(op_lock, &w);
    wait_parked(t);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY, "handed to the waiter, not free");
    cr_assert_eq(join_int(t), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), 0, "free once the waiter unlocked");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return NULL;
}

Test(ported_sync, mutex_readiness_try_lock_and_hand_off, .timeout = 30)
{
    run_main(mutex_readiness_main, NULL);
}

static void *thread_unlock(void *arg)
{
    return RES(weft_mutex_unlock(arg));
}

static void *thread_lock(void *arg)
{
    return RES(weft_mutex_lock(arg, soon()));
}

static void *thread_lock_twice(void *arg)
{
    int r = weft_mutex_lock(arg, soon());
    if (r != 0)
        return RES(r);
    return RES(weft_mutex_lock(arg, soon()));
}

/* Go TestMutexMisuse ("Mutex.Unlock", "Mutex.Unlock2": a fatal error in Go) and unlock by a
 * non-owner (allowed in Go; weft.h: -EPERM): each is refused with nothing changed. Between a
 * task and a plain thread either way. */
static void *mutex_misuse_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "unlock of an unlocked mutex");
    cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "unlocked twice");

    cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
    struct op u, tl;
    op_init(&u, &m, NULL, 0);
    op_init(&tl, &m, NULL, 0);
    cr_assert_eq(join_result(spawn_on_other(op_unlock, &u)), RES(-EPERM), "a non-owner task");
    cr_assert_eq(join_result(spawn_on_other(op_try_lock, &tl)), RES(-EBUSY), "still held");
    struct thread_job j;
    thread_start(&j, thread_unlock, &m);
    cr_assert_eq(thread_join(&j), -EPERM, "a plain thread that does not hold it");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY, "still held by this task");
    cr_assert_eq(weft_mutex_unlock(&m), 0);

    /* Held by a thread (which has finished: it leaves the mutex held, weft.h). */
    thread_start(&j, thread_lock, &m);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "a task cannot unlock a thread's mutex");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY);
    cr_assert_eq(weft_mutex_lock(&m, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);

    weft_mutex m2 = WEFT_MUTEX_INIT;
    thread_start(&j, thread_lock_twice, &m2);
    cr_assert_eq(thread_join(&j), -EDEADLK, "a thread's relock");

    cr_assert_eq(weft_mutex_lock(NULL, 0), -EINVAL);
    cr_assert_eq(weft_mutex_try_lock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    return NULL;
}

Test(ported_sync, mutex_misuse_is_refused_and_changes_nothing, .timeout = 30)
{
    run_main(mutex_misuse_main, NULL);
}

/* Go HammerMutex / TestMutex, with deadlines: tasks on every worker and a plain thread lock
 * and unlock one mutex in a loop, every tenth time with try_lock and every third with a
 * deadline of at most 20 us that may pass; inside, a non-atomic counter is bumped across a
 * yield. Exclusion holds, the counter equals the number of critical sections, and the mutex
 * ends free. */
struct hammer {
    weft_mutex m;
    long counter; /* under m */
    atomic_int inside;
    atomic_int bad;
    atomic_long sections;
    atomic_long timeouts;
};

static int hammer_round(struct hammer *h, uint32_t *rnd, int i, bool task)
{
    int r;
    if (i % 10 == 0)
        r = weft_mutex_try_lock(&h->m);
    else if (i % 3 == 0)
        r = weft_mutex_lock(&h->m, weft_deadline_in((int64_t)(next_rand(rnd) % 20000)));
    else
        r = weft_mutex_lock(&h->m, soon());
    if (r == -EBUSY || r == -ETIMEDOUT) {
        atomic_fetch_add(&h->timeouts, 1);
        return 0;
    }
    if (r != 0)
        return r;
    if (atomic_fetch_add(&h->inside, 1) != 0)
        atomic_fetch_add(&h->bad, 1);
    long c = h->counter;
    if (task && i % 4 == 0)
        weft_yield();
    h->counter = c + 1;
    atomic_fetch_sub(&h->inside, 1);
    atomic_fetch_add(&h->sections, 1);
    return weft_mutex_unlock(&h->m);
}

static struct hammer hammer;

static void *hammer_task(void *arg)
{
    uint32_t rnd = 2463534242u + (uint32_t)(intptr_t)arg;
    for (int i = 0; i < 1000; i++) {
        int r = hammer_round(&hammer, &rnd, i, true);
        if (r != 0)
            return RES(r);
    }
    return NULL;
}

static void *hammer_thread(void *arg)
{
    uint32_t rnd = 88172645u;
    (void)arg;
    for (int i = 0; i < 500; i++) {
        int r = hammer_round(&hammer, &rnd, i, false);
        if (r != 0)
            return RES(r);
    }
    return NULL;
}

static void *mutex_hammer_main(void *arg)
{
    (void)arg;
    enum { N = 8 };
    memset(&hammer, 0, sizeof hammer);
    weft_task *t[N];
    for (int i = 0; i < N; i++)
        t[i] = spawn_on((unsigned)i, hammer_task, RES(i));
    struct thread_job j;
    thread_start(&j, hammer_thread, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), NULL, "task %d", i);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(atomic_load(&hammer.bad), 0, "two holders at once");
    cr_assert_eq(hammer.counter, atomic_load(&hammer.sections));
    cr_assert_eq(hammer.counter + atomic_load(&hammer.timeouts), N * 1000 + 500);
    cr_assert_eq(weft_mutex_try_lock(&hammer.m), 0, "the mutex ends free");
    cr_assert_eq(weft_mutex_unlock(&hammer.m), 0);
    return NULL;
}

Test(ported_sync, mutex_hammer_with_try_lock_and_deadlines, .timeout = 60)
{
    run_main(mutex_hammer_main, NULL);
}

/* Go TestMutexFairness: one task locks and unlocks in a loop, holding the mutex across a
 * yield each time; another, on another worker, must still get it 10 times (a waiter starved
 * by the relocking owner would run into its deadline). */
struct fairness {
    weft_mutex m;
    atomic_int stop;
};

static void *fair_hog(void *arg)
{
    struct fairness *f = arg;
    while (!atomic_load(&f->stop)) {
        int r = weft_mutex_lock(&f->m, soon());
        if (r != 0)
            return RES(r);
        weft_yield();
        weft_mutex_unlock(&f->m);
    }
    return NULL;
}

static void *fair_waiter(void *arg)
{
    struct fairness *f = arg;
    int r = 0;
    for (int i = 0; i < 10 && r == 0; i++) {
        r = weft_mutex_lock(&f->m, soon());
        if (r == 0) {
            weft_yield();
            weft_mutex_unlock(&f->m);
        }
    }
    atomic_store(&f->stop, 1);
    return RES(r);
}

static void *mutex_fairness_main(void *arg)
{
    (void)arg;
    struct fairness f = {.m = WEFT_MUTEX_INIT};
    weft_task *hog = spawn_pinned(fair_hog, &f);
    weft_task *w = spawn_on_other(fair_waiter, &f);
    cr_assert_eq(join_int(w), 0, "the waiter got the mutex 10 times");
    cr_assert_eq(join_int(hog), 0);
    return NULL;
}

Test(ported_sync, mutex_fairness_across_workers, .timeout = 30)
{
    run_main(mutex_fairness_main, NULL);
}

/* Tokio aborted_future_1 / aborted_future_2: lock calls given up while the mutex is held (a
 * deadline, a cancellation) leave no trace: the unlock goes to the waiter still queued, and
 * with nobody queued the mutex is free. Then the race: a cancel and an unlock aimed at one
 * parked locker, in both orders; either it got the mutex (0, and unlocks it) or it left
 * (-ECANCELED), and the mutex is free afterwards in both cases, never -EOWNERDEAD. */
static void *mutex_given_up_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
    struct op timed, cancelled, last;
    op_init(&timed, &m, NULL, weft_deadline_in(2 * WEFT_MSEC));
    op_init(&cancelled, &m, NULL, WEFT_FOREVER);
    op_init(&last, &m, NULL, soon());
    weft_task *a = spawn_on_other(op_lock, &timed);
    weft_task *b = spawn_on_other(op_lock, &cancelled);
    wait_parked(b);
    weft_task *c = spawn_pinned(op_lock, &last);
    wait_parked(c);
    cr_assert_eq(join_int(a), -ETIMEDOUT);
    cr_assert_eq(weft_cancel(b), 0);
    cr_assert_eq(join_result(b), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&cancelled.result), -ECANCELED);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(join_int(c), 0, "the unlock went to the waiter still queued");
    cr_assert_eq(weft_mutex_lock(&m, 0), 0, "free");

    for (int round = 0; round < 200; round++) {
        struct op w;
        op_init(&w, &m, NULL, WEFT_FOREVER);
        weft_task *t = spawn_on_other(op_lock, &w);
        wait_parked(t);
        if (round % 2) {
            cr_assert_eq(weft_cancel(t), 0);
            cr_assert_eq(weft_mutex_unlock(&m), 0);
        } else {
            cr_assert_eq(weft_mutex_unlock(&m), 0);
            cr_assert_eq(weft_cancel(t), 0);
        }
        join_result(t);
        int r = atomic_load(&w.result);
        cr_assert(r == 0 || r == -ECANCELED, "round %d: %d", round, r);
        cr_assert_eq(weft_mutex_lock(&m, soon()), 0, "round %d: free again", round);
    }
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return NULL;
}

Test(ported_sync, mutex_lock_given_up_while_waiting_leaves_no_trace, .timeout = 30)
{
    run_main(mutex_given_up_main, NULL);
}

/* ---- Semaphore (tokio sync_semaphore.rs) ----------------------------------------------- */

/* Tokio no_permits, try_acquire, add_permits_open, add_max_amount_permits,
 * add_more_than_max_amount_permits1/2, no_panic_at_maxpermits: weft counts up to INT64_MAX
 * (its MAX_PERMITS); a release past it is -EOVERFLOW (Tokio panics) and adds nothing, not
 * even the part that would fit. A release of 0 changes nothing and wakes nobody. */
static void *sem_counts_main(void *arg)
{
    (void)arg;
    for (int64_t size = 0; size < 4; size++) {
        for (unsigned add = 0; add < 4; add++) {
            weft_sem s = WEFT_SEM_INIT(size);
            cr_assert_eq(weft_sem_release(&s, add), 0);
            cr_assert_eq(weft_sem_value(&s), size + add);
        }
    }
    weft_sem none = WEFT_SEM_INIT(0);
    cr_assert_eq(weft_sem_try_acquire(&none), -EAGAIN);
    cr_assert_eq(weft_sem_acquire(&none, 0), -ETIMEDOUT);

    weft_sem one = WEFT_SEM_INIT(1);
    cr_assert_eq(weft_sem_try_acquire(&one), 0);
    cr_assert_eq(weft_sem_try_acquire(&one), -EAGAIN);
    cr_assert_eq(weft_sem_release(&one, 1), 0);
    cr_assert_eq(weft_sem_try_acquire(&one), 0);

    weft_sem big = WEFT_SEM_INIT(0);
    cr_assert_eq(weft_sem_release(&big, UINT_MAX), 0);
    cr_assert_eq(weft_sem_value(&big), (int64_t)UINT_MAX);

    weft_sem max = WEFT_SEM_INIT(INT64_MAX);
    cr_assert_eq(weft_sem_value(&max), INT64_MAX);
    cr_assert_eq(weft_sem_release(&max, 1), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(&max), INT64_MAX);
    cr_assert_eq(weft_sem_try_acquire(&max), 0);
    cr_assert_eq(weft_sem_value(&max), INT64_MAX - 1);

    weft_sem near = WEFT_SEM_INIT(INT64_MAX - 1);
    cr_assert_eq(weft_sem_release(&near, 1), 0);
    cr_assert_eq(weft_sem_release(&near, 1), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(&near), INT64_MAX);
    weft_sem part = WEFT_SEM_INIT(INT64_MAX - 5);
    cr_assert_eq(weft_sem_release(&part, 10), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(&part), INT64_MAX - 5, "nothing of a refused release added");

    /* A release of 0 with a waiter. */
    struct op w;
    op_init(&w, &none, NULL, soon());
    weft_task *t = spawn_on_other(op_acquire, &w);
    wait_parked(t);
    cr_assert_eq(weft_sem_release(&none, 0), 0);
    cr_assert_eq(weft_task_status(t), WEFT_TASK_PARKED, "a release of 0 wakes nobody");
    cr_assert_eq(weft_sem_release(&none, 1), 0);
    cr_assert_eq(join_int(t), 0);
    cr_assert_eq(weft_sem_value(&none), 0);

    cr_assert_eq(weft_sem_acquire(NULL, 0), -EINVAL);
    cr_assert_eq(weft_sem_try_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release(NULL, 1), -EINVAL);
    cr_assert_eq(weft_sem_value(NULL), -EINVAL);
    return NULL;
}

Test(ported_sync, semaphore_counts_up_to_the_maximum_and_refuses_overflow, .timeout = 30)
{
    run_main(sem_counts_main, NULL);
}

/* Tokio panic_when_exceeds_maxpermits: a count past the maximum is refused. In C it arrives
 * as a negative count (WEFT_SEM_INIT of (int64_t)UINT64_MAX, say); weft.h: every call on such
 * a semaphore is -EINVAL, and none waits or hands out a unit (a release used to hand a unit
 * to a waiter while the count stayed negative). */
static void *sem_negative_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT((int64_t)UINT64_MAX);
    cr_assert_eq(weft_sem_value(&s), -1);
    cr_assert_eq(weft_sem_try_acquire(&s), -EINVAL);
    cr_assert_eq(weft_sem_acquire(&s, soon()), -EINVAL, "refused, not a wait");
    cr_assert_eq(weft_sem_release(&s, 1), -EINVAL);
    cr_assert_eq(weft_sem_release(&s, 2), -EINVAL);
    cr_assert_eq(weft_sem_value(&s), -1, "unchanged");
    weft_sem big = WEFT_SEM_INIT(INT64_MIN);
    cr_assert_eq(weft_sem_release(&big, UINT_MAX), -EINVAL);
    cr_assert_eq(weft_sem_acquire(&big, 0), -EINVAL);
    return NULL;
}

Test(ported_sync, semaphore_with_a_count_past_the_maximum_is_refused, .timeout = 30)
{
    run_main(sem_negative_main, NULL);
}

/* Tokio stress_test: 1000 tasks on every worker take one of 5 units, hold it across a yield,
 * and give it back; never more than 5 holders at once, and exactly 5 units at the end. */
struct sem_stress {
    weft_sem s;
    atomic_int holders;
    atomic_int bad;
};

static void *sem_stress_task(void *arg)
{
    struct sem_stress *st = arg;
    int r = weft_sem_acquire(&st->s, soon());
    if (r != 0)
        return RES(r);
    if (atomic_fetch_add(&st->holders, 1) >= 5)
        atomic_fetch_add(&st->bad, 1);
    weft_yield();
    atomic_fetch_sub(&st->holders, 1);
    return RES(weft_sem_release(&st->s, 1));
}

static void *sem_stress_main(void *arg)
{
    (void)arg;
    enum { N = 1000 };
    static weft_task *t[N];
    struct sem_stress st = {.s = WEFT_SEM_INIT(5)};
    for (int i = 0; i < N; i++)
        t[i] = spawn_on((unsigned)i, sem_stress_task, &st);
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_int(t[i]), 0, "task %d", i);
    cr_assert_eq(atomic_load(&st.bad), 0, "more than 5 holders at once");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_sem_try_acquire(&st.s), 0, "unit %d", i);
    cr_assert_eq(weft_sem_try_acquire(&st.s), -EAGAIN);
    return NULL;
}

Test(ported_sync, semaphore_stress_thousand_tasks, .timeout = 60)
{
    run_main(sem_stress_main, NULL);
}

/* Tokio's "cancelled acquire gives its permits back" (batch_semaphore's
 * cancel_acquire_releases_permits), for single units: waiters that timed out or were
 * cancelled take nothing, and the next release goes to the waiter still queued. Then the
 * race: a release and a cancel aimed at one parked waiter, in both orders; the unit is
 * either the waiter's (0) or still in the semaphore, never lost, never both. */
static void *sem_given_up_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT(0);
    struct op a, b, c;
    op_init(&a, &s, NULL, WEFT_FOREVER);
    op_init(&b, &s, NULL, weft_deadline_in(2 * WEFT_MSEC));
    op_init(&c, &s, NULL, soon());
    weft_task *ta = spawn_on_other(op_acquire, &a);
    wait_parked(ta);
    weft_task *tb = spawn_pinned(op_acquire, &b);
    weft_task *tc = spawn_pinned(op_acquire, &c);
    wait_parked(tc);
    cr_assert_eq(join_int(tb), -ETIMEDOUT);
    cr_assert_eq(weft_cancel(ta), 0);
    cr_assert_eq(join_result(ta), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&a.result), -ECANCELED);
    cr_assert_eq(weft_sem_release(&s, 1), 0);
    cr_assert_eq(join_int(tc), 0, "the unit went to the waiter still queued");
    cr_assert_eq(weft_sem_value(&s), 0);
    cr_assert_eq(weft_sem_release(&s, 2), 0);
    cr_assert_eq(weft_sem_value(&s), 2, "nobody left to take them");
    cr_assert_eq(weft_sem_acquire(&s, 0), 0);
    cr_assert_eq(weft_sem_acquire(&s, 0), 0);

    for (int round = 0; round < 200; round++) {
        struct op w;
        op_init(&w, &s, NULL, WEFT_FOREVER);
        weft_task *t = spawn_on_other(op_acquire, &w);
        wait_parked(t);
        if (round % 2) {
            cr_assert_eq(weft_cancel(t), 0);
            cr_assert_eq(weft_sem_release(&s, 1), 0);
        } else {
            cr_assert_eq(weft_sem_release(&s, 1), 0);
            cr_assert_eq(weft_cancel(t), 0);
        }
        join_result(t);
        int r = atomic_load(&w.result);
        cr_assert(r == 0 || r == -ECANCELED, "round %d: %d", round, r);
        cr_assert_eq((r == 0) + weft_sem_value(&s), 1, "round %d: the unit is somewhere once",
                     round);
        if (r != 0)
            cr_assert_eq(weft_sem_try_acquire(&s), 0);
    }
    return NULL;
}

Test(ported_sync, semaphore_waiters_that_give_up_take_no_unit, .timeout = 30)
{
    run_main(sem_given_up_main, NULL);
}

/* The race at scale: tasks on every worker acquire with deadlines of at most 50 us (many
 * pass, some while a release is granting them), while this task releases units one at a
 * time. Every unit released is taken exactly once or still counted: taken + value ==
 * released. */
struct sem_race {
    weft_sem s;
    atomic_long taken;
    atomic_int bad;
};

static void *sem_race_task(void *arg)
{
    struct sem_race *sr = (struct sem_race *)((void **)arg)[0];
    uint32_t rnd = 12345u + (uint32_t)(intptr_t)((void **)arg)[1] * 7919u;
    for (int i = 0; i < 300; i++) {
        int r = weft_sem_acquire(&sr->s, weft_deadline_in((int64_t)(next_rand(&rnd) % 50000)));
        if (r == 0)
            atomic_fetch_add(&sr->taken, 1);
        else if (r != -ETIMEDOUT)
            atomic_fetch_add(&sr->bad, 1);
    }
    return NULL;
}

static void *sem_race_main(void *arg)
{
    (void)arg;
    enum { N = 4, RELEASES = 600 };
    struct sem_race sr = {.s = WEFT_SEM_INIT(0)};
    void *args[N][2];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        args[i][0] = &sr;
        args[i][1] = RES(i);
        t[i] = spawn_on((unsigned)i, sem_race_task, args[i]);
    }
    for (int i = 0; i < RELEASES; i++) {
        cr_assert_eq(weft_sem_release(&sr.s, 1), 0);
        if (i % 3 == 0)
            cr_assert_eq(weft_yield(), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), NULL);
    cr_assert_eq(atomic_load(&sr.bad), 0);
    cr_assert_eq(atomic_load(&sr.taken) + weft_sem_value(&sr.s), RELEASES, "taken %ld, left %lld",
                 atomic_load(&sr.taken), (long long)weft_sem_value(&sr.s));
    return NULL;
}

Test(ported_sync, semaphore_releases_racing_deadlines_lose_no_unit, .timeout = 60)
{
    run_main(sem_race_main, NULL);
}

static void *thread_acquire(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_sem_acquire(o->obj, o->deadline));
}

static void *thread_release(void *arg)
{
    return RES(weft_sem_release(arg, 1));
}

/* Tokio blocking_acquire, blocking_acquire_waits_for_permit: a plain thread takes a unit
 * (blocking until a task releases one), times out on an empty semaphore, and releases a
 * unit a parked task is waiting for. */
static void *sem_thread_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT(1);
    struct op o;
    struct thread_job j;
    op_init(&o, &s, NULL, soon());
    thread_start(&j, thread_acquire, &o);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(weft_sem_value(&s), 0);

    op_init(&o, &s, NULL, weft_deadline_in(2 * WEFT_MSEC));
    thread_start(&j, thread_acquire, &o);
    cr_assert_eq(thread_join(&j), -ETIMEDOUT);

    op_init(&o, &s, NULL, soon());
    thread_start(&j, thread_acquire, &o);
    cr_assert_eq(weft_sem_release(&s, 1), 0, "wakes the thread, whether it waits yet or not");
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(weft_sem_value(&s), 0);

    struct op w;
    op_init(&w, &s, NULL, soon());
    weft_task *t = spawn_on_other(op_acquire, &w);
    wait_parked(t);
    thread_start(&j, thread_release, &s);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(join_int(t), 0, "a thread's release reaches a parked task");
    cr_assert_eq(weft_sem_value(&s), 0);
    return NULL;
}

Test(ported_sync, semaphore_from_a_plain_thread, .timeout = 30)
{
    run_main(sem_thread_main, NULL);
}

/* ---- Notify as an auto-reset event (tokio sync_notify.rs) ------------------------------ */

/* Tokio notify_notified_one, notify_multi_notified_one, notify_notified_multi,
 * notified_drop_notified_notify, notified_multi_notify_drop_one, test_notify_one_not_enabled:
 * notify_one with nobody waiting stores one permit (two store one), consumed by the next
 * wait; with waiters it wakes the oldest only; a waiter that gave up (deadline, cancel)
 * takes nothing, so the next set goes to the one behind it, or is stored. */
static void *notify_main(void *arg)
{
    (void)arg;
    weft_event e = WEFT_EVENT_AUTO_INIT;
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, 0), 0, "the stored permit");
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT, "consumed");
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, 0), 0);
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT, "at most one permit is stored");

    struct op a, b;
    op_init(&a, &e, NULL, soon());
    op_init(&b, &e, NULL, soon());
    weft_task *ta = spawn_on_other(op_event_wait, &a);
    wait_parked(ta);
    weft_task *tb = spawn_pinned(op_event_wait, &b);
    wait_parked(tb);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(join_int(ta), 0, "the oldest waiter");
    cr_assert_eq(weft_task_status(tb), WEFT_TASK_PARKED, "one set, one waiter");
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(join_int(tb), 0);
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT, "nothing stored");

    /* Waiters that gave up, ahead of one that did not. */
    struct op timed, cancelled, last;
    op_init(&timed, &e, NULL, weft_deadline_in(2 * WEFT_MSEC));
    op_init(&cancelled, &e, NULL, WEFT_FOREVER);
    op_init(&last, &e, NULL, soon());
    weft_task *t1 = spawn_on_other(op_event_wait, &timed);
    weft_task *t2 = spawn_on_other(op_event_wait, &cancelled);
    wait_parked(t2);
    weft_task *t3 = spawn_pinned(op_event_wait, &last);
    wait_parked(t3);
    cr_assert_eq(join_int(t1), -ETIMEDOUT);
    cr_assert_eq(weft_cancel(t2), 0);
    cr_assert_eq(join_result(t2), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&cancelled.result), -ECANCELED);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(join_int(t3), 0, "the set went past the waiters that left");
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT);

    /* With nobody left, the set is stored for the next comer. */
    struct op gone;
    op_init(&gone, &e, NULL, WEFT_FOREVER);
    weft_task *t4 = spawn_on_other(op_event_wait, &gone);
    wait_parked(t4);
    cr_assert_eq(weft_cancel(t4), 0);
    join_result(t4);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, 0), 0, "stored, not eaten by the cancelled waiter");
    return NULL;
}

Test(ported_sync, auto_event_notify_one_permits_and_given_up_waiters, .timeout = 30)
{
    run_main(notify_main, NULL);
}

/* Tokio's Notify: a notified future dropped after being notified passes the notification on.
 * weft's grant is the notification: a set and a cancel aimed at one parked waiter, in both
 * orders, leave exactly one of: the waiter returned 0, or the permit is stored. */
static void *notify_race_main(void *arg)
{
    (void)arg;
    weft_event e = WEFT_EVENT_AUTO_INIT;
    for (int round = 0; round < 200; round++) {
        struct op w;
        op_init(&w, &e, NULL, WEFT_FOREVER);
        weft_task *t = spawn_on_other(op_event_wait, &w);
        wait_parked(t);
        if (round % 2) {
            cr_assert_eq(weft_cancel(t), 0);
            cr_assert_eq(weft_event_set(&e), 0);
        } else {
            cr_assert_eq(weft_event_set(&e), 0);
            cr_assert_eq(weft_cancel(t), 0);
        }
        join_result(t);
        int r = atomic_load(&w.result);
        cr_assert(r == 0 || r == -ECANCELED, "round %d: %d", round, r);
        int stored = weft_event_wait(&e, 0) == 0;
        cr_assert_eq((r == 0) + stored, 1, "round %d: the set was received once", round);
    }
    return NULL;
}

Test(ported_sync, auto_event_set_racing_a_cancel_is_received_once, .timeout = 30)
{
    run_main(notify_race_main, NULL);
}

/* ---- Condition variable (Go cond_test.go) ---------------------------------------------- */

/* Go TestCondSignal and TestCondSignalGenerations, with the waiters spread over the workers:
 * waiter i enters the wait only after waiter i-1 did; each signal wakes exactly one, the
 * oldest, and none wakes before its signal. */
static void *cond_generations_main(void *arg)
{
    (void)arg;
    enum { N = 16 };
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    struct op o[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        op_init(&o[i], &c, &m, soon());
        t[i] = spawn_on((unsigned)i, op_cond_wait, &o[i]);
        wait_in_cond(&o[i]);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
        for (int k = i; k < N; k++)
            cr_assert_eq(atomic_load(&o[k].result), NOT_YET, "waiter %d woke early", k);
        cr_assert_eq(weft_cond_signal(&c), 1);
        cr_assert_eq(weft_mutex_unlock(&m), 0);
        cr_assert_eq(join_int(t[i]), 0, "signal %d woke waiter %d", i, i);
        for (int k = i + 1; k < N; k++)
            cr_assert_eq(atomic_load(&o[k].result), NOT_YET, "waiter %d woke too", k);
    }
    cr_assert_eq(weft_cond_signal(&c), 0, "nobody left");
    return NULL;
}

Test(ported_sync, cond_signal_generations_in_order, .timeout = 30)
{
    run_main(cond_generations_main, NULL);
}

/* Go TestCondSignalStealing: with a waiter in the wait, a broadcast races a second task that
 * starts waiting; the first waiter must be woken whatever the second did. 200 rounds. */
struct stealing {
    weft_mutex m;
    weft_cond c;
    bool done; /* under m */
};

static void *steal_first(void *arg)
{
    struct op *o = arg;
    struct stealing *s = o->obj;
    if (weft_mutex_lock(&s->m, soon()) != 0)
        return op_done(o, -EPROTO);
    atomic_store(&o->entered, 1);
    int r = weft_cond_wait(&s->c, &s->m, soon());
    weft_mutex_unlock(&s->m);
    return op_done(o, r);
}

static void *steal_broadcast(void *arg)
{
    struct stealing *s = arg;
    return RES(weft_cond_broadcast(&s->c));
}

static void *steal_second(void *arg)
{
    struct stealing *s = arg;
    int r = weft_mutex_lock(&s->m, soon());
    while (r == 0 && !s->done)
        r = weft_cond_wait(&s->c, &s->m, soon());
    weft_mutex_unlock(&s->m);
    return RES(r);
}

static void *cond_stealing_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        struct stealing s = {.m = WEFT_MUTEX_INIT, .c = WEFT_COND_INIT};
        struct op first;
        op_init(&first, &s, &s.m, soon());
        weft_task *t1 = spawn_on((unsigned)round, steal_first, &first);
        wait_in_cond(&first);
        weft_task *tb = spawn_on((unsigned)round + 1, steal_broadcast, &s);
        weft_task *t2 = spawn_on((unsigned)round, steal_second, &s);
        cr_assert_eq(join_int(t1), 0, "round %d: the first waiter got the broadcast", round);
        int nwoken = join_int(tb);
        cr_assert(nwoken == 1 || nwoken == 2, "round %d: woke %d", round, nwoken);
        cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
        s.done = true;
        cr_assert_eq(weft_mutex_unlock(&s.m), 0);
        weft_cond_broadcast(&s.c);
        cr_assert_eq(join_int(t2), 0);
    }
    return NULL;
}

Test(ported_sync, cond_signal_is_not_stolen_by_a_later_waiter, .timeout = 30)
{
    run_main(cond_stealing_main, NULL);
}

/* A signal after waiters timed out or were cancelled goes to the next waiter still queued
 * (the gone ones count for nothing: signal returns 1 for the one it woke); the timed-out and
 * cancelled waiters hold the mutex on their return, as weft.h says. */
static void *cond_given_up_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    struct op timed, cancelled, last;
    op_init(&timed, &c, &m, weft_deadline_in(2 * WEFT_MSEC));
    op_init(&cancelled, &c, &m, WEFT_FOREVER);
    op_init(&last, &c, &m, soon());
    weft_task *a = spawn_on_other(op_cond_wait, &timed);
    wait_in_cond(&timed);
    weft_task *b = spawn_on_other(op_cond_wait, &cancelled);
    wait_in_cond(&cancelled);
    weft_task *d = spawn_pinned(op_cond_wait, &last);
    wait_in_cond(&last);
    cr_assert_eq(join_int(a), -ETIMEDOUT);
    cr_assert_eq(weft_cancel(b), 0);
    cr_assert_eq(join_result(b), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&cancelled.result), -ECANCELED);
    /* Their unlocks succeeded, so they held the mutex: it is free now. */
    cr_assert_eq(weft_mutex_try_lock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_task_status(d), WEFT_TASK_PARKED);
    cr_assert_eq(weft_cond_signal(&c), 1, "one waiter left to wake");
    cr_assert_eq(join_int(d), 0);
    cr_assert_eq(weft_cond_signal(&c), 0);
    cr_assert_eq(weft_cond_broadcast(&c), 0);
    return NULL;
}

Test(ported_sync, cond_signal_skips_waiters_that_gave_up, .timeout = 30)
{
    run_main(cond_given_up_main, NULL);
}

/* Go TestRace and the signal/timeout race at scale: waiters on every worker wait with
 * deadlines of at most 50 us, while this task signals (and now and then broadcasts) under
 * the mutex. Each wake-up a signal reports reaches one waiter that returns 0, and no waiter
 * returns 0 unwoken: the waits that returned 0 add up to the signals' results. */
struct cond_race {
    weft_mutex m;
    weft_cond c;
    atomic_long woken;
    atomic_int bad;
};

static void *cond_race_task(void *arg)
{
    struct cond_race *cv = (struct cond_race *)((void **)arg)[0];
    uint32_t rnd = 777u + (uint32_t)(intptr_t)((void **)arg)[1] * 104729u;
    for (int i = 0; i < 300; i++) {
        if (weft_mutex_lock(&cv->m, soon()) != 0) {
            atomic_fetch_add(&cv->bad, 1);
            return NULL;
        }
        int r =
            weft_cond_wait(&cv->c, &cv->m, weft_deadline_in((int64_t)(next_rand(&rnd) % 50000)));
        if (r == 0)
            atomic_fetch_add(&cv->woken, 1);
        else if (r != -ETIMEDOUT)
            atomic_fetch_add(&cv->bad, 1);
        if (weft_mutex_unlock(&cv->m) != 0)
            atomic_fetch_add(&cv->bad, 1);
    }
    return NULL;
}

static bool all_finished(weft_task *const *t, int n)
{
    for (int i = 0; i < n; i++)
        if (weft_task_status(t[i]) != WEFT_TASK_FINISHED)
            return false;
    return true;
}

static void *cond_race_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    struct cond_race cv = {.m = WEFT_MUTEX_INIT, .c = WEFT_COND_INIT};
    void *args[N][2];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        args[i][0] = &cv;
        args[i][1] = RES(i);
        t[i] = spawn_on((unsigned)i, cond_race_task, args[i]);
    }
    long signalled = 0;
    for (int i = 0; !all_finished(t, N); i++) {
        cr_assert_eq(weft_mutex_lock(&cv.m, soon()), 0);
        int n = i % 17 == 0 ? weft_cond_broadcast(&cv.c) : weft_cond_signal(&cv.c);
        cr_assert(n >= 0);
        signalled += n;
        cr_assert_eq(weft_mutex_unlock(&cv.m), 0);
        cr_assert_eq(weft_yield(), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), NULL);
    cr_assert_eq(atomic_load(&cv.bad), 0);
    cr_assert_eq(atomic_load(&cv.woken), signalled, "waiters woken %ld, signals %ld",
                 atomic_load(&cv.woken), signalled);
    return NULL;
}

Test(ported_sync, cond_signals_racing_deadlines_each_wake_one_waiter, .timeout = 60)
{
    run_main(cond_race_main, NULL);
}

static void *cond_wait_not_held(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_cond_wait(o->obj, o->mutex, soon()));
}

/* A thread waits on a flag under the mutex; returns the wait's last result. */
struct flag_wait {
    weft_mutex m;
    weft_cond c;
    bool flag;          /* under m */
    atomic_int waiting; /* the thread is in the wait (set under m) */
};

static void *thread_flag_wait(void *arg)
{
    struct flag_wait *f = arg;
    int r = weft_mutex_lock(&f->m, soon());
    if (r != 0)
        return RES(r);
    while (!f->flag && r == 0) {
        atomic_store(&f->waiting, 1);
        r = weft_cond_wait(&f->c, &f->m, soon());
    }
    int u = weft_mutex_unlock(&f->m);
    return RES(r ? r : u);
}

static void *thread_timed_cond_wait(void *arg)
{
    struct flag_wait *f = arg;
    int r = weft_mutex_lock(&f->m, soon());
    if (r != 0)
        return RES(r);
    r = weft_cond_wait(&f->c, &f->m, weft_deadline_in(2 * WEFT_MSEC));
    if (r != -ETIMEDOUT)
        return RES(r == 0 ? -EPROTO : r);
    return RES(weft_mutex_unlock(&f->m)); /* held on the timed-out return */
}

/* Go's Cond misuse (Wait without holding L) as weft.h defines it: -EPERM without waiting,
 * whether the mutex is free or another task's; NULL arguments; a plain thread waiting on a
 * cond that a task signals, and a thread's timed-out wait returning with the mutex. */
static void *cond_misuse_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    cr_assert_eq(weft_cond_wait(&c, &m, soon()), -EPERM, "the mutex is free");
    cr_assert_eq(weft_mutex_lock(&m, soon()), 0);
    struct op o;
    op_init(&o, &c, &m, 0);
    cr_assert_eq(join_result(spawn_on_other(cond_wait_not_held, &o)), RES(-EPERM),
                 "another task's mutex");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY, "still held by this task");
    cr_assert_eq(weft_cond_wait(NULL, &m, 0), -EINVAL);
    cr_assert_eq(weft_cond_wait(&c, NULL, 0), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_cond_signal(NULL), -EINVAL);
    cr_assert_eq(weft_cond_broadcast(NULL), -EINVAL);

    struct flag_wait f = {.m = WEFT_MUTEX_INIT, .c = WEFT_COND_INIT};
    struct thread_job j;
    thread_start(&j, thread_flag_wait, &f);
    for (;;) {
        cr_assert_eq(weft_mutex_lock(&f.m, soon()), 0);
        bool in = atomic_load(&f.waiting);
        if (in) {
            f.flag = true;
            cr_assert_eq(weft_cond_signal(&f.c), 1, "the thread is the waiter");
        }
        cr_assert_eq(weft_mutex_unlock(&f.m), 0);
        if (in)
            break;
        cr_assert_eq(weft_sleep(WEFT_MSEC / 10), 0);
    }
    cr_assert_eq(thread_join(&j), 0);

    thread_start(&j, thread_timed_cond_wait, &f);
    cr_assert_eq(thread_join(&j), 0, "timed out, holding the mutex");
    return NULL;
}

Test(ported_sync, cond_misuse_and_plain_thread_waiters, .timeout = 30)
{
    run_main(cond_misuse_main, NULL);
}

/* ---- Wait group (Go waitgroup_test.go) ------------------------------------------------- */

struct two_groups {
    weft_waitgroup wg1, wg2;
    weft_chan *exited;
};

static void *two_groups_task(void *arg)
{
    struct two_groups *g = arg;
    int r = weft_waitgroup_done(&g->wg1);
    if (r == 0)
        r = weft_waitgroup_wait(&g->wg2, soon());
    if (r == 0)
        r = weft_chan_send(g->exited, NULL, soon());
    return RES(r);
}

/* Go TestWaitGroup (testWaitGroup): n tasks on every worker and a plain thread each count
 * wg1 down and wait on wg2; once wg1 has reached zero none has passed wg2 ("spurious
 * wakeup"), and after n dones on wg2 every one of them does. Two rounds on the same groups. */
static void *waitgroup_main(void *arg)
{
    (void)arg;
    enum { N = 16 };
    struct two_groups g = {.wg1 = WEFT_WAITGROUP_INIT, .wg2 = WEFT_WAITGROUP_INIT};
    cr_assert_eq(weft_chan_create(&g.exited, 0, N + 1), 0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(weft_waitgroup_add(&g.wg1, N + 1), 0);
        cr_assert_eq(weft_waitgroup_add(&g.wg2, N + 1), 0);
        weft_task *t[N];
        for (int i = 0; i < N; i++)
            t[i] = spawn_on((unsigned)i, two_groups_task, &g);
        struct thread_job j;
        thread_start(&j, two_groups_task, &g);
        cr_assert_eq(weft_waitgroup_wait(&g.wg1, soon()), 0);
        for (int i = 0; i < N + 1; i++) {
            cr_assert_eq(weft_chan_try_recv(g.exited, NULL), -EAGAIN, "spurious wake-up");
            cr_assert_eq(weft_waitgroup_done(&g.wg2), 0);
        }
        for (int i = 0; i < N + 1; i++)
            cr_assert_eq(weft_chan_recv(g.exited, NULL, soon()), 0);
        for (int i = 0; i < N; i++)
            cr_assert_eq(join_int(t[i]), 0);
        cr_assert_eq(thread_join(&j), 0);
    }
    weft_chan_release(g.exited);
    return NULL;
}

Test(ported_sync, waitgroup_two_groups_across_workers_and_a_thread, .timeout = 30)
{
    run_main(waitgroup_main, NULL);
}

/* Go TestWaitGroupMisuse ("sync: negative WaitGroup counter", a panic in Go): a done or add
 * that would take the count below zero is -EINVAL and leaves the count as it was, and does
 * not release a waiter; an add past INT64_MAX is -EOVERFLOW. */
static void *waitgroup_misuse_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "done on zero");
    cr_assert_eq(weft_waitgroup_add(&wg, 0), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0, "zero: no wait");
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "Go: Add(1); Done(); Done()");
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0, "still zero");

    cr_assert_eq(weft_waitgroup_add(&wg, 3), 0);
    struct op w;
    op_init(&w, &wg, NULL, soon());
    weft_task *t = spawn_on_other(op_wg_wait, &w);
    wait_parked(t);
    cr_assert_eq(weft_waitgroup_add(&wg, -4), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MIN), -EINVAL);
    cr_assert_eq(weft_task_status(t), WEFT_TASK_PARKED, "a refused add releases nobody");
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), -ETIMEDOUT, "the count is still 3");
    cr_assert_eq(weft_waitgroup_add(&wg, -3), 0);
    cr_assert_eq(join_int(t), 0);

    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, INT64_MAX), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, -INT64_MAX), 0, "the count was INT64_MAX");
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0);

    cr_assert_eq(weft_waitgroup_add(NULL, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(NULL, 0), -EINVAL);
    return NULL;
}

Test(ported_sync, waitgroup_misuse_never_goes_negative, .timeout = 30)
{
    run_main(waitgroup_misuse_main, NULL);
}

struct wg_race {
    weft_waitgroup wg;
    atomic_int n;
};

static void *wg_race_task(void *arg)
{
    struct wg_race *w = arg;
    weft_yield();
    atomic_fetch_add(&w->n, 1);
    return RES(weft_waitgroup_done(&w->wg));
}

/* Go TestWaitGroupRace: two tasks on two workers each count and call done; the wait returns
 * only after both counted. 200 rounds. Then waits given up: a timed-out and a cancelled wait
 * leave the count as it was and the waiter behind them is released by the last done. */
static void *wg_race_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        struct wg_race w = {.wg = WEFT_WAITGROUP_INIT};
        cr_assert_eq(weft_waitgroup_add(&w.wg, 2), 0);
        weft_task *a = spawn_on((unsigned)round, wg_race_task, &w);
        weft_task *b = spawn_on((unsigned)round + 1, wg_race_task, &w);
        cr_assert_eq(weft_waitgroup_wait(&w.wg, soon()), 0);
        cr_assert_eq(atomic_load(&w.n), 2, "round %d", round);
        cr_assert_eq(join_int(a), 0);
        cr_assert_eq(join_int(b), 0);
    }

    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    struct op timed, cancelled, last;
    op_init(&timed, &wg, NULL, weft_deadline_in(2 * WEFT_MSEC));
    op_init(&cancelled, &wg, NULL, WEFT_FOREVER);
    op_init(&last, &wg, NULL, soon());
    weft_task *t1 = spawn_on_other(op_wg_wait, &timed);
    weft_task *t2 = spawn_on_other(op_wg_wait, &cancelled);
    weft_task *t3 = spawn_pinned(op_wg_wait, &last);
    wait_parked(t2);
    wait_parked(t3);
    cr_assert_eq(join_int(t1), -ETIMEDOUT);
    cr_assert_eq(weft_cancel(t2), 0);
    join_result(t2);
    cr_assert_eq(atomic_load(&cancelled.result), -ECANCELED);
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), -ETIMEDOUT, "the count is still 1");
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(join_int(t3), 0);
    return NULL;
}

Test(ported_sync, waitgroup_race_and_given_up_waits, .timeout = 30)
{
    run_main(wg_race_main, NULL);
}

/* ---- Read-write lock (tokio sync_rwlock.rs, Go rwmutex_test.go) ------------------------ */

/* Tokio read_shared, write_shared_pending, read_exclusive_pending, write_exclusive_pending,
 * write_shared_drop, write_read_shared_pending / read_uncontested: readers share; a writer
 * waits for every reader, and a reader or writer for a writer; a waiting writer holds back
 * readers that come after it (Tokio's lock is fair, as weft.h says weft's is), who get the
 * lock after the writer. Waiters on the other worker. */
static void *rwlock_states_main(void *arg)
{
    (void)arg;
    weft_rwlock l = WEFT_RWLOCK_INIT;
    weft_event release = WEFT_EVENT_INIT;
    struct rw_op r1 = {.write = false, .release = &release};
    op_init(&r1.op, &l, NULL, soon());
    weft_task *tr1 = spawn_on_other(op_rw_hold, &r1);
    cr_assert_eq(weft_rwlock_rdlock(&l, soon()), 0, "read_shared");
    while (atomic_load(&r1.op.result) == NOT_YET)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(atomic_load(&r1.op.result), 0, "two readers at once");

    struct rw_op w = {.write = true};
    op_init(&w.op, &l, NULL, soon());
    weft_task *tw = spawn_on_other(op_rw_hold, &w);
    wait_parked(tw);
    cr_assert_eq(atomic_load(&w.op.result), NOT_YET, "write_shared_pending");

    struct rw_op r2 = {.write = false};
    op_init(&r2.op, &l, NULL, soon());
    weft_task *tr2 = spawn_on_other(op_rw_hold, &r2);
    wait_parked(tr2);
    cr_assert_eq(atomic_load(&r2.op.result), NOT_YET, "a reader behind a waiting writer waits");

    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_task_status(tw), WEFT_TASK_PARKED, "write_shared_drop: one reader left");
    cr_assert_eq(weft_event_set(&release), 0);
    cr_assert_eq(join_int(tr1), 0);
    cr_assert_eq(join_int(tw), 0, "the writer, once every reader left");
    cr_assert_eq(join_int(tr2), 0, "then the reader behind it");

    /* read_exclusive_pending and write_exclusive_pending. */
    cr_assert_eq(weft_rwlock_wrlock(&l, soon()), 0);
    struct rw_op r3 = {.write = false}, w2 = {.write = true};
    op_init(&r3.op, &l, NULL, soon());
    op_init(&w2.op, &l, NULL, soon());
    weft_task *tr3 = spawn_on_other(op_rw_hold, &r3);
    wait_parked(tr3);
    weft_task *tw2 = spawn_on_other(op_rw_hold, &w2);
    wait_parked(tw2);
    struct rw_op late = {.write = false};
    op_init(&late.op, &l, NULL, 0);
    cr_assert_eq(join_int(spawn_on_other(op_rw_hold, &late)), -ETIMEDOUT,
                 "a passed deadline while write-held");
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(join_int(tr3), 0);
    cr_assert_eq(join_int(tw2), 0);
    cr_assert_eq(weft_rwlock_wrlock(&l, 0), 0, "free: a passed deadline takes it");
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    return NULL;
}

Test(ported_sync, rwlock_shared_exclusive_and_pending_states, .timeout = 30)
{
    run_main(rwlock_states_main, NULL);
}

static void *rw_unlock_task(void *arg)
{
    struct op *o = arg;
    return op_done(o, weft_rwlock_unlock(o->obj));
}

static void *thread_rw_unlock(void *arg)
{
    return RES(weft_rwlock_unlock(arg));
}

/* Go TestRWMutex misuse ("RWMutex.Unlock", "RWMutex.RUnlock", "RWMutex.RUnlock2": fatal in
 * Go): an unlock by a task or thread that holds nothing is -EPERM and releases nobody's
 * hold; a task's two read holds take two unlocks, the third is -EPERM; rdlock under the
 * caller's own write hold and wrlock under its read hold are -EDEADLK at once. */
static void *rwlock_misuse_main(void *arg)
{
    (void)arg;
    weft_rwlock l = WEFT_RWLOCK_INIT;
    cr_assert_eq(weft_rwlock_unlock(&l), -EPERM, "unlock of an unlocked rwlock");
    cr_assert_eq(weft_rwlock_rdlock(&l, soon()), 0);
    cr_assert_eq(weft_rwlock_rdlock(&l, soon()), 0, "a second read hold");
    cr_assert_eq(weft_rwlock_wrlock(&l, soon()), -EDEADLK);
    struct op u;
    op_init(&u, &l, NULL, 0);
    cr_assert_eq(join_result(spawn_on_other(rw_unlock_task, &u)), RES(-EPERM));
    struct thread_job j;
    thread_start(&j, thread_rw_unlock, &l);
    cr_assert_eq(thread_join(&j), -EPERM);
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), -EPERM, "RUnlock2");
    cr_assert_eq(weft_rwlock_wrlock(&l, 0), 0, "no read hold left behind");
    cr_assert_eq(weft_rwlock_rdlock(&l, soon()), -EDEADLK);
    cr_assert_eq(weft_rwlock_wrlock(&l, soon()), -EDEADLK);
    cr_assert_eq(join_result(spawn_on_other(rw_unlock_task, &u)), RES(-EPERM));
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), -EPERM);
    cr_assert_eq(weft_rwlock_rdlock(NULL, 0), -EINVAL);
    cr_assert_eq(weft_rwlock_wrlock(NULL, 0), -EINVAL);
    cr_assert_eq(weft_rwlock_unlock(NULL), -EINVAL);
    return NULL;
}

Test(ported_sync, rwlock_misuse_is_refused, .timeout = 30)
{
    run_main(rwlock_misuse_main, NULL);
}

/* Go HammerRWMutex with deadlines: readers count 1 and writers 10000 into one word while
 * they hold the lock, on every worker; writers (and some readers) wait at most 30 us and
 * often give up, which must release the readers queued behind them. Exclusion holds and the
 * lock ends free. */
struct rw_race {
    weft_rwlock l;
    atomic_long activity;
    atomic_int bad;
    atomic_long writes;
};

static void *rw_race_task(void *arg)
{
    struct rw_race *rr = (struct rw_race *)((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    uint32_t rnd = 99991u + (uint32_t)id * 31337u;
    bool writer = id % 3 == 0;
    for (int i = 0; i < 300; i++) {
        int64_t dl =
            (writer || i % 2) ? weft_deadline_in((int64_t)(next_rand(&rnd) % 30000)) : soon();
        int r = writer ? weft_rwlock_wrlock(&rr->l, dl) : weft_rwlock_rdlock(&rr->l, dl);
        if (r == -ETIMEDOUT)
            continue;
        if (r != 0) {
            atomic_fetch_add(&rr->bad, 1);
            return NULL;
        }
        long add = writer ? 10000 : 1;
        long now = atomic_fetch_add(&rr->activity, add) + add;
        if (writer ? now != 10000 : (now % 10000) != now)
            atomic_fetch_add(&rr->bad, 1);
        if (i % 4 == 0)
            weft_yield();
        atomic_fetch_sub(&rr->activity, add);
        if (writer)
            atomic_fetch_add(&rr->writes, 1);
        if (weft_rwlock_unlock(&rr->l) != 0)
            atomic_fetch_add(&rr->bad, 1);
    }
    return NULL;
}

static void *rw_race_main(void *arg)
{
    (void)arg;
    enum { N = 9 };
    struct rw_race rr = {.l = WEFT_RWLOCK_INIT};
    void *args[N][2];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        args[i][0] = &rr;
        args[i][1] = RES(i);
        t[i] = spawn_on((unsigned)i, rw_race_task, args[i]);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), NULL);
    cr_assert_eq(atomic_load(&rr.bad), 0, "exclusion broken");
    cr_assert_eq(atomic_load(&rr.activity), 0);
    cr_assert_eq(weft_rwlock_wrlock(&rr.l, 0), 0, "the lock ends free");
    cr_assert_eq(weft_rwlock_unlock(&rr.l), 0);
    return NULL;
}

Test(ported_sync, rwlock_hammer_with_writers_giving_up, .timeout = 60)
{
    run_main(rw_race_main, NULL);
}

/* Tokio exhaust_reading (many readers at once) and Go TestParallelReaders at scale: 500
 * tasks on every worker hold the read lock at the same time; a writer waits for all of them
 * and gets it once the last one leaves. */
static void *many_readers_main(void *arg)
{
    (void)arg;
    enum { N = 500 };
    static struct rw_op r[N];
    static weft_task *t[N];
    weft_rwlock l = WEFT_RWLOCK_INIT;
    weft_event release = WEFT_EVENT_INIT;
    for (int i = 0; i < N; i++) {
        r[i] = (struct rw_op){.write = false, .release = &release};
        op_init(&r[i].op, &l, NULL, soon());
        t[i] = spawn_on((unsigned)i, op_rw_hold, &r[i]);
    }
    for (int i = 0; i < N; i++)
        while (atomic_load(&r[i].op.result) == NOT_YET)
            cr_assert_eq(weft_yield(), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(atomic_load(&r[i].op.result), 0, "reader %d", i);
    struct rw_op w = {.write = true};
    op_init(&w.op, &l, NULL, soon());
    weft_task *tw = spawn_on_other(op_rw_hold, &w);
    wait_parked(tw);
    cr_assert_eq(weft_event_set(&release), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_int(t[i]), 0);
    cr_assert_eq(join_int(tw), 0);
    return NULL;
}

Test(ported_sync, rwlock_five_hundred_readers_at_once, .timeout = 60)
{
    run_main(many_readers_main, NULL);
}

/* ---- Once (Go once_test.go, tokio sync_once_cell.rs) ----------------------------------- */

struct once_cell {
    weft_once once;
    weft_event go; /* lets the initialiser finish */
    atomic_int runs;
    atomic_int value; /* set by the initialiser */
    atomic_int bad;   /* a caller saw 0 returned before the value was set */
};

static void once_init_fn(void *arg)
{
    struct once_cell *c = arg;
    atomic_fetch_add(&c->runs, 1);
    weft_event_wait(&c->go, soon());
    atomic_store(&c->value, 42);
}

static void *once_caller(void *arg)
{
    struct op *o = arg;
    struct once_cell *c = o->obj;
    int r = weft_once_call(&c->once, once_init_fn, c, o->deadline);
    if (r == 0 && atomic_load(&c->value) != 42)
        atomic_fetch_add(&c->bad, 1);
    return op_done(o, r);
}

/* Go TestOnce and Tokio get_or_init / get_or_init_with_timeout: callers on every worker and
 * a plain thread arrive while the initialiser runs (and waits); one gives up at its
 * deadline, one is cancelled; the rest return 0 only after the initialiser finished, which
 * ran once. Later calls return 0 at once without running anything, from a thread too. */
static void *once_main(void *arg)
{
    (void)arg;
    enum { N = 8 };
    struct once_cell c = {.once = WEFT_ONCE_INIT, .go = WEFT_EVENT_INIT};
    struct op first;
    op_init(&first, &c, NULL, soon());
    weft_task *runner = spawn_on_other(once_caller, &first);
    while (atomic_load(&c.runs) == 0)
        cr_assert_eq(weft_yield(), 0);
    struct op o[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        op_init(&o[i], &c, NULL, i == 0 ? weft_deadline_in(2 * WEFT_MSEC) : soon());
        t[i] = spawn_on((unsigned)i, once_caller, &o[i]);
    }
    for (int i = 1; i < N; i++)
        wait_parked(t[i]);
    struct op th;
    op_init(&th, &c, NULL, soon());
    struct thread_job j;
    thread_start(&j, once_caller, &th);
    cr_assert_eq(join_int(t[0]), -ETIMEDOUT, "gave up while the initialiser ran");
    cr_assert_eq(weft_cancel(t[1]), 0);
    join_result(t[1]);
    cr_assert_eq(atomic_load(&o[1].result), -ECANCELED);
    cr_assert_eq(weft_event_set(&c.go), 0);
    cr_assert_eq(join_int(runner), 0);
    for (int i = 2; i < N; i++)
        cr_assert_eq(join_int(t[i]), 0, "caller %d", i);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(atomic_load(&c.runs), 1, "the initialiser ran once");
    cr_assert_eq(atomic_load(&c.bad), 0, "a caller returned before the value was set");

    op_init(&th, &c, NULL, 0);
    thread_start(&j, once_caller, &th);
    cr_assert_eq(thread_join(&j), 0);
    cr_assert_eq(weft_once_call(&c.once, once_init_fn, &c, 0), 0);
    cr_assert_eq(atomic_load(&c.runs), 1);
    cr_assert_eq(weft_once_call(NULL, once_init_fn, &c, 0), -EINVAL);
    cr_assert_eq(weft_once_call(&c.once, NULL, &c, 0), -EINVAL);
    return NULL;
}

Test(ported_sync, once_runs_once_while_callers_wait_time_out_and_cancel, .timeout = 30)
{
    run_main(once_main, NULL);
}

/* ---- oneshot as a promise (tokio sync_oneshot.rs) -------------------------------------- */

static void *await_promise(void *arg)
{
    void *v = NULL;
    int r = weft_await(weft_promise_future(arg), &v, soon());
    return r < 0 ? RES(r) : v;
}

struct resolve_job {
    weft_promise *p;
    void *value;
};

static void *thread_resolve(void *arg)
{
    struct resolve_job *r = arg;
    return RES(weft_promise_resolve(r->p, r->value));
}

/* Tokio send_recv, async_send_recv, close_tx (here a rejection: weft's promise has one
 * object for both ends, so "sender dropped" is a reject), send-after-send (-EALREADY), and a
 * receive given up at its deadline leaving the value for the next (try_recv's Empty then
 * Ok). The sender may be another worker's task or a plain thread. */
static void *oneshot_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    void *v = NULL;
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_resolve(p, RES(1)), 0);
    cr_assert_eq(weft_promise_resolve(p, RES(2)), -EALREADY);
    cr_assert_eq(weft_promise_reject(p, -EPIPE), -EALREADY);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, soon()), 0);
    cr_assert_eq(v, RES(1), "the first value stays");
    weft_promise_release(p);

    /* async_send_recv: the receiver parked on another worker. */
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_task *t = spawn_on_other(await_promise, p);
    wait_parked(t);
    cr_assert_eq(weft_promise_resolve(p, RES(7)), 0);
    cr_assert_eq(join_result(t), RES(7));
    weft_promise_release(p);

    /* The sender is a plain thread; the receive first gives up at a passed deadline. */
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, 0), -ETIMEDOUT, "empty");
    struct resolve_job rj = {p, RES(99)};
    struct thread_job j;
    thread_start(&j, thread_resolve, &rj);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, soon()), 0);
    cr_assert_eq(v, RES(99));
    cr_assert_eq(thread_join(&j), 0);
    weft_promise_release(p);

    /* close_tx as a rejection; a rejection needs an error. */
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_reject(p, 0), -EINVAL);
    cr_assert_eq(weft_promise_reject(p, 5), -EINVAL);
    t = spawn_on_other(await_promise, p);
    wait_parked(t);
    cr_assert_eq(weft_promise_reject(p, -EPIPE), 0);
    cr_assert_eq(join_result(t), RES(-EPIPE));
    cr_assert_eq(weft_promise_resolve(p, NULL), -EALREADY);
    weft_promise_release(p);

    /* A receiver cancelled while waiting; the sender's send still succeeds (Tokio: the send
     * fails once the receiver is dropped; weft's promise lives while referenced). */
    cr_assert_eq(weft_promise_create(&p), 0);
    t = spawn_on_other(await_promise, p);
    wait_parked(t);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(weft_promise_resolve(p, RES(5)), 0);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, 0), 0);
    cr_assert_eq(v, RES(5));
    weft_promise_release(p);
    cr_assert_eq(weft_promise_resolve(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_promise_create(NULL), -EINVAL);
    return NULL;
}

Test(ported_sync, oneshot_as_a_promise, .timeout = 30)
{
    run_main(oneshot_main, NULL);
}

/* ---- mpsc as a channel (tokio sync_mpsc.rs) -------------------------------------------- */

static void *thread_recv_all(void *arg)
{
    weft_chan *c = arg;
    long v, want = 0;
    int r;
    while ((r = weft_chan_recv(c, &v, soon())) == 0)
        if (v != want++)
            return RES(-EPROTO);
    return RES(r == -EPIPE ? (int)want : r);
}

static void *thread_send_n(void *arg)
{
    weft_chan *c = arg;
    for (long v = 0; v < 100; v++) {
        int r = weft_chan_send(c, &v, soon());
        if (r != 0)
            return RES(r);
    }
    return RES(weft_chan_close(c));
}

/* Tokio send_recv_with_buffer, try_send_fail, try_recv_close_while_empty_bounded,
 * send_recv_unbounded, tx_close_gets_none, recv_timeout, blocking_recv and blocking_send
 * (a plain thread on either end): values come in order, the buffer bounds try_send, a
 * closed channel drains then says -EPIPE (try_recv too, never -EAGAIN), an unbounded send
 * never waits, and a plain thread's blocking send and receive meet a task's. */
static void *mpsc_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    long v;
    cr_assert_eq(weft_chan_create(&c, sizeof(long), 16), 0);
    for (v = 1; v <= 2; v++)
        cr_assert_eq(weft_chan_send(c, &v, soon()), 0);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(weft_chan_close(c), -EPIPE);
    cr_assert_eq(weft_chan_send(c, &v, soon()), -EPIPE);
    for (long want = 1; want <= 2; want++) {
        cr_assert_eq(weft_chan_recv(c, &v, soon()), 0);
        cr_assert_eq(v, want);
    }
    cr_assert_eq(weft_chan_recv(c, &v, soon()), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EPIPE, "closed and empty: not -EAGAIN");
    weft_chan_release(c);

    cr_assert_eq(weft_chan_create(&c, sizeof(long), 1), 0);
    v = 1;
    cr_assert_eq(weft_chan_try_send(c, &v), 0);
    v = 2;
    cr_assert_eq(weft_chan_try_send(c, &v), -EAGAIN, "full");
    cr_assert_eq(weft_chan_send(c, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_recv(c, &v, soon()), 0);
    cr_assert_eq(v, 1, "the refused value was not taken");
    cr_assert_eq(weft_chan_try_send(c, &v), 0);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN, "open and empty");
    cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_chan_release(c);

    cr_assert_eq(weft_chan_create_unbounded(&c, sizeof(long), 0), 0);
    for (v = 0; v < 1000; v++)
        cr_assert_eq(weft_chan_send(c, &v, 0), 0, "an unbounded send never waits");
    cr_assert_eq(weft_chan_len(c), 1000);
    cr_assert_eq(weft_chan_close(c), 0);
    for (long want = 0; want < 1000; want++) {
        cr_assert_eq(weft_chan_recv(c, &v, soon()), 0);
        cr_assert_eq(v, want);
    }
    cr_assert_eq(weft_chan_recv(c, &v, 0), -EPIPE);
    weft_chan_release(c);

    cr_assert_eq(weft_chan_create_unbounded(&c, sizeof(long), 2), 0);
    for (v = 0; v < 2; v++)
        cr_assert_eq(weft_chan_send(c, &v, 0), 0);
    cr_assert_eq(weft_chan_send(c, &v, soon()), -ENOMEM, "at max_len: refused at once");
    cr_assert_eq(weft_chan_len(c), 2);
    weft_chan_release(c);

    /* blocking_recv: a thread drains what tasks of every worker send through a rendezvous. */
    cr_assert_eq(weft_chan_create(&c, sizeof(long), 0), 0);
    struct thread_job j;
    thread_start(&j, thread_recv_all, c);
    for (v = 0; v < 100; v++)
        cr_assert_eq(weft_chan_send(c, &v, soon()), 0);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(thread_join(&j), 100);
    weft_chan_release(c);

    /* blocking_send: a thread fills a buffer of 4 and waits on it; this task drains it. */
    cr_assert_eq(weft_chan_create(&c, sizeof(long), 4), 0);
    thread_start(&j, thread_send_n, c);
    long want = 0;
    int r;
    while ((r = weft_chan_recv(c, &v, soon())) == 0)
        cr_assert_eq(v, want++);
    cr_assert_eq(r, -EPIPE);
    cr_assert_eq(want, 100);
    cr_assert_eq(thread_join(&j), 0);
    weft_chan_release(c);
    return NULL;
}

Test(ported_sync, mpsc_buffering_close_unbounded_and_plain_threads, .timeout = 30)
{
    run_main(mpsc_main, NULL);
}

/* A receive of one long, plain or through a select (with a second, never-ready case), that
 * records what it returned and the value. */
struct recv_op {
    struct op op;
    bool select;
    long value;
};

static void *op_recv(void *arg)
{
    struct recv_op *r = arg;
    long v = -1;
    int rc;
    if (r->select) {
        weft_case cases[2] = {{.op = WEFT_CASE_RECV, .chan = r->op.obj, .elem = &v},
                              {.op = WEFT_CASE_RECV, .chan = NULL}};
        rc = weft_select(cases, 2, r->op.deadline);
        if (rc == 0)
            rc = cases[0].result;
        else if (rc > 0)
            rc = -EPROTO;
    } else {
        rc = weft_chan_recv(r->op.obj, &v, r->op.deadline);
    }
    r->value = v;
    return op_done(&r->op, rc);
}

/* Tokio's mpsc receive dropped while a send completes (and Go's select on a channel whose
 * receiver gives up): a value offered to a parked receiver at the moment it is cancelled is
 * delivered exactly once. On a rendezvous channel a try_send succeeds only by handing the
 * value to the receiver, which then returns it; on a buffered one the value is either the
 * receiver's or still in the buffer. Plain receives and selects, in both orders. */
static void *chan_cancel_race_main(void *arg)
{
    (void)arg;
    for (size_t cap = 0; cap < 2; cap++) {
        weft_chan *c;
        cr_assert_eq(weft_chan_create(&c, sizeof(long), cap), 0);
        for (int round = 0; round < 200; round++) {
            struct recv_op r = {.select = round % 4 >= 2};
            op_init(&r.op, c, NULL, WEFT_FOREVER);
            weft_task *t = spawn_on_other(op_recv, &r);
            wait_parked(t);
            long v = round;
            int sent;
            if (round % 2) {
                cr_assert_eq(weft_cancel(t), 0);
                sent = weft_chan_try_send(c, &v);
            } else {
                sent = weft_chan_try_send(c, &v);
                cr_assert_eq(weft_cancel(t), 0);
            }
            join_result(t);
            int got = atomic_load(&r.op.result);
            cr_assert(got == 0 || got == -ECANCELED, "cap %zu round %d: %d", cap, round, got);
            if (got == 0)
                cr_assert_eq(r.value, round);
            long left = -1;
            int kept = weft_chan_try_recv(c, &left) == 0;
            if (cap == 0)
                cr_assert_eq(sent == 0, got == 0, "cap 0 round %d: sent %d, got %d", round, sent,
                             got);
            else
                cr_assert(sent == 0 && (got == 0) + kept == 1, "cap 1 round %d: %d %d %d", round,
                          sent, got, kept);
        }
        weft_chan_release(c);
    }
    return NULL;
}

Test(ported_sync, mpsc_value_offered_to_a_receiver_being_cancelled_arrives_once, .timeout = 30)
{
    run_main(chan_cancel_race_main, NULL);
}

/* The same at scale with deadlines: receivers on every worker (half through selects) wait
 * at most 50 us each time, while this task offers values with try_send and short sends. No
 * value is lost or doubled: every value sent is received once or left in the buffer. */
struct chan_race {
    weft_chan *c;
    atomic_long received;
    atomic_long sum;
    atomic_int bad;
};

static void *chan_race_task(void *arg)
{
    struct chan_race *ch = (struct chan_race *)((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    uint32_t rnd = 4242u + (uint32_t)id * 65537u;
    for (int i = 0; i < 300; i++) {
        struct recv_op r = {.select = (i + id) % 2 == 0};
        op_init(&r.op, ch->c, NULL, weft_deadline_in((int64_t)(next_rand(&rnd) % 50000)));
        op_recv(&r);
        int rc = atomic_load(&r.op.result);
        if (rc == 0) {
            atomic_fetch_add(&ch->received, 1);
            atomic_fetch_add(&ch->sum, r.value);
        } else if (rc != -ETIMEDOUT) {
            atomic_fetch_add(&ch->bad, 1);
        }
    }
    return NULL;
}

static void *chan_race_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    for (size_t cap = 0; cap < 3; cap += 2) {
        struct chan_race ch = {0};
        cr_assert_eq(weft_chan_create(&ch.c, sizeof(long), cap), 0);
        void *args[N][2];
        weft_task *t[N];
        for (int i = 0; i < N; i++) {
            args[i][0] = &ch;
            args[i][1] = RES(i);
            t[i] = spawn_on((unsigned)i, chan_race_task, args[i]);
        }
        long sent = 0, sent_sum = 0;
        for (long v = 1; !all_finished(t, N); v++) {
            int r = v % 5 == 0 ? weft_chan_send(ch.c, &v, weft_deadline_in(20 * WEFT_USEC))
                               : weft_chan_try_send(ch.c, &v);
            cr_assert(r == 0 || r == -EAGAIN || r == -ETIMEDOUT, "send: %d", r);
            if (r == 0) {
                sent++;
                sent_sum += v;
            }
            cr_assert_eq(weft_yield(), 0);
        }
        for (int i = 0; i < N; i++)
            cr_assert_eq(join_result(t[i]), NULL);
        long v, left = 0, left_sum = 0;
        while (weft_chan_try_recv(ch.c, &v) == 0) {
            left++;
            left_sum += v;
        }
        cr_assert_eq(atomic_load(&ch.bad), 0);
        cr_assert_eq(atomic_load(&ch.received) + left, sent, "cap %zu", cap);
        cr_assert_eq(atomic_load(&ch.sum) + left_sum, sent_sum, "cap %zu: the same values", cap);
        weft_chan_release(ch.c);
    }
    return NULL;
}

Test(ported_sync, mpsc_receives_racing_deadlines_lose_and_double_nothing, .timeout = 60)
{
    run_main(chan_race_main, NULL);
}

/* ---- broadcast (tokio sync_broadcast.rs) ----------------------------------------------- */

static void *bcast_recv_two(void *arg)
{
    weft_bcast_rx *rx = arg;
    long a = -1, b = -1;
    int r = weft_bcast_recv(rx, &a, NULL, soon());
    if (r == 0)
        r = weft_bcast_recv(rx, &b, NULL, soon());
    if (r != 0)
        return RES(r);
    if (a != 1 || b != 2)
        return RES(-EPROTO);
    return RES(weft_bcast_recv(rx, &a, NULL, soon())); /* -EPIPE once the sender is gone */
}

/* Tokio zero_capacity / capacity_too_big (panics: here -EINVAL), send_two_recv,
 * send_recv_bounded, dropping_tx_notifies_rx: two values reach receivers parked on every
 * worker and one on a plain thread, each in order; the last handle's release then wakes them
 * all with -EPIPE. */
static void *bcast_main(void *arg)
{
    (void)arg;
    weft_bcast *b;
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 0), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), ((size_t)1 << 20) + 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, 65537, 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(NULL, sizeof(long), 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 16), 0);
    enum { N = 4 };
    weft_bcast_rx *rx[N + 1];
    weft_task *t[N];
    for (int i = 0; i < N + 1; i++)
        cr_assert_eq(weft_bcast_subscribe(b, &rx[i]), 0);
    for (int i = 0; i < N; i++) {
        t[i] = spawn_on((unsigned)i, bcast_recv_two, rx[i]);
        wait_parked(t[i]);
    }
    struct thread_job j;
    thread_start(&j, bcast_recv_two, rx[N]);
    for (long v = 1; v <= 2; v++)
        cr_assert_eq(weft_bcast_send(b, &v), N + 1);
    weft_bcast_release(b); /* dropping the only sender */
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_int(t[i]), -EPIPE, "receiver %d", i);
    cr_assert_eq(thread_join(&j), -EPIPE);
    for (int i = 0; i < N + 1; i++)
        weft_bcast_unsubscribe(rx[i]);
    return NULL;
}

Test(ported_sync, broadcast_to_every_worker_and_a_thread_then_close, .timeout = 30)
{
    run_main(bcast_main, NULL);
}

/* ---- Plain threads that exit holding a lock ---------------------------------------------- */

static void *thread_rdlock(void *arg)
{
    return RES(weft_rwlock_rdlock(arg, soon()));
}

static void *thread_wrlock(void *arg)
{
    return RES(weft_rwlock_wrlock(arg, soon()));
}

/* Tries to take `obj` (a mutex, or a rwlock for reading or writing) within 2 ms, then to
 * unlock it; returns the two results as try * 1000 + unlock (both negative errnos). */
struct late_thread {
    void *obj;
    int kind; /* 0 mutex, 1 read, 2 write */
};

static void *thread_lock_then_unlock(void *arg)
{
    struct late_thread *l = arg;
    int64_t dl = weft_deadline_in(2 * WEFT_MSEC);
    int r = l->kind == 0   ? weft_mutex_lock(l->obj, dl)
            : l->kind == 1 ? weft_rwlock_rdlock(l->obj, dl)
                           : weft_rwlock_wrlock(l->obj, dl);
    int u = l->kind == 0 ? weft_mutex_unlock(l->obj) : weft_rwlock_unlock(l->obj);
    return RES(r * 1000 + u);
}

/* POSIX's non-robust, error-checking mutex (what weft.h likens a thread's mutex to): after
 * its owner thread exited, the mutex stays held, and no other thread is its owner, not even
 * one that got the dead thread's storage (glibc hands a joined thread's stack, and so its
 * thread-local storage, to the next thread it creates): its lock waits (here until its
 * deadline) rather than failing with -EDEADLK, and its unlock is -EPERM (it used to be taken
 * for the owner: the lock said -EDEADLK and the unlock crashed). The same for a rwlock's
 * write hold and read hold (whose node used to leak). */
static void *thread_exit_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_rwlock rd = WEFT_RWLOCK_INIT, wr = WEFT_RWLOCK_INIT;
    struct thread_job j;
    thread_start(&j, thread_lock, &m);
    cr_assert_eq(thread_join(&j), 0);
    thread_start(&j, thread_rdlock, &rd);
    cr_assert_eq(thread_join(&j), 0);
    thread_start(&j, thread_wrlock, &wr);
    cr_assert_eq(thread_join(&j), 0);
    for (int round = 0; round < 3; round++) {
        struct late_thread l[3] = {{&m, 0}, {&rd, 2}, {&wr, 1}};
        for (int k = 0; k < 3; k++) {
            thread_start(&j, thread_lock_then_unlock, &l[k]);
            cr_assert_eq(thread_join(&j), -ETIMEDOUT * 1000 - EPERM, "round %d, lock %d", round, k);
        }
    }
    cr_assert_eq(weft_mutex_lock(&m, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    cr_assert_eq(weft_rwlock_wrlock(&rd, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT, "read-held");
    cr_assert_eq(weft_rwlock_rdlock(&wr, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT, "write-held");
    cr_assert_eq(weft_rwlock_unlock(&wr), -EPERM);
    return NULL;
}

Test(ported_sync, a_thread_that_exits_holding_locks_leaves_them_held_by_no_thread, .timeout = 30)
{
    run_main(thread_exit_main, NULL);
}
