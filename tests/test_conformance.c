/* Behaviours other runtimes' suites check (Tokio's task, JoinHandle, time and net tests,
 * libuv's tcp, timer and loop tests, Go's net and runtime tests, Seastar's future tests),
 * re-expressed against what weft.h documents: runtime and spawn misuse, several runtimes at
 * once, join/detach/cancel edge cases, exits, locals and defers, groups and generators,
 * promises and combinators with ready, failed and cancelled inputs, and loopback TCP edge
 * cases (refused, EPIPE without SIGPIPE, EOF, passed deadlines, cancel and close while
 * parked, large duplex transfers, many connections, bad fds). Every test holds in sharded
 * mode and in stealing mode on two workers, on epoll and on io_uring (the environment picks:
 * WEFT_MODE, WEFT_WORKERS, WEFT_BACKEND); tasks whose order matters are pinned. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "task_helpers.h"
#include "tcp_helpers.h"

/* ---- Helpers ---------------------------------------------------------------------------- */

static void *ret_arg(void *arg)
{
    return arg;
}

static void *wait_event(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, WEFT_FOREVER);
}

static void *park_forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep_until(WEFT_FOREVER);
}

/* ---- The runtime ------------------------------------------------------------------------ */

static atomic_int main_ran;

static void *note_ran(void *arg)
{
    atomic_fetch_add(&main_ran, 1);
    return arg;
}

/* libuv's loop tests and Tokio's builder tests: a bad configuration is refused with -EINVAL
 * before anything runs, never an abort. */
Test(conformance, run_refuses_bad_configurations_without_running_main)
{
    atomic_store(&main_ran, 0);
    cr_assert_eq(weft_run(NULL, NULL, NULL, NULL), -EINVAL);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.size = 0;
    cr_assert_eq(weft_run(&cfg, note_ran, NULL, NULL), -EINVAL);
#define BAD(field, value)                                                                          \
    do {                                                                                           \
        weft_config c;                                                                             \
        weft_config_init(&c);                                                                      \
        c.field = (value);                                                                         \
        cr_assert_eq(weft_run(&c, note_ran, NULL, NULL), -EINVAL, #field " = " #value);            \
    } while (0)
    BAD(guard, 3);
    BAD(guard, -1);
    BAD(backend, 3);
    BAD(backend, -1);
    BAD(mode, 3);
    BAD(mode, -1);
    BAD(order, 3);
    BAD(deadlock, 4);
    BAD(budget, 0);
    BAD(workers, WEFT_WORKERS_MAX + 1);
    BAD(stack_size, 1);
    BAD(stack_size, SIZE_MAX);
    BAD(pool_threads, 0);
#undef BAD
    cr_assert_eq(atomic_load(&main_ran), 0, "main never ran for a refused configuration");
    /* A good one still works afterwards, with result NULL. */
    cr_assert_eq(weft_run(NULL, note_ran, NULL, NULL), 0);
    cr_assert_eq(atomic_load(&main_ran), 1);
}

static void *nested_run(void *arg)
{
    (void)arg;
    void *r = (void *)1;
    int rc = weft_run(NULL, note_ran, NULL, &r);
    cr_assert_eq(r, (void *)1, "no result written by a refused run");
    return (void *)(intptr_t)rc;
}

/* A fresh runtime on a blocking-pool thread (a thread outside every runtime) works. */
static void *run_on_pool(void *arg)
{
    (void)arg;
    void *r = NULL;
    int rc = weft_run(NULL, ret_arg, (void *)11, &r);
    return rc == 0 ? r : (void *)(intptr_t)rc;
}

static void *run_from_task_main(void *arg)
{
    (void)arg;
    cr_assert_eq(nested_run(NULL), (void *)(intptr_t)-EBUSY, "weft_run inside the main task");
    for (unsigned k = 0; k < weft_worker_count(); k++) {
        weft_task *t;
        cr_assert_eq(weft_spawn_on(k, &t, nested_run, NULL, NULL), 0);
        cr_assert_eq(join_result(t), (void *)(intptr_t)-EBUSY, "inside a task of worker %u", k);
    }
    void *pr = NULL;
    cr_assert_eq(weft_blocking(run_on_pool, NULL, &pr, WEFT_FOREVER), 0);
    cr_assert_eq(pr, (void *)11, "a runtime ran on a pool thread");
    return NULL;
}

Test(conformance, run_inside_a_task_is_ebusy_and_on_a_pool_thread_works, .timeout = 20)
{
    atomic_store(&main_ran, 0);
    run_main(run_from_task_main, NULL);
    cr_assert_eq(atomic_load(&main_ran), 0);
}

/* weft_exit in the main task ends it with that result, which weft_run reports. */
static void *exit_main(void *arg)
{
    (void)arg;
    weft_exit((void *)33);
    cr_assert_fail("weft_exit returned");
    return NULL;
}

Test(conformance, exit_from_the_main_task_is_the_run_result)
{
    cr_assert_eq(run_main(exit_main, NULL), (void *)33);
    cr_assert_eq(weft_exit(NULL), -EPERM, "outside a runtime");
}

/* ---- Several runtimes in one process ------------------------------------------------- */

struct rt_job {
    int id;
    weft_chan *shared;
    long sum;
    int rc;
    uint64_t main_id;
};

static void *pong(void *arg)
{
    weft_chan **cs = arg;
    long v;
    while (weft_chan_recv(cs[0], &v, WEFT_FOREVER) == 0) {
        v++;
        if (weft_chan_send(cs[1], &v, WEFT_FOREVER) != 0)
            break;
    }
    return NULL;
}

static void *square(void *arg)
{
    weft_sleep(WEFT_MSEC);
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

static void *independent_main(void *arg)
{
    struct rt_job *j = arg;
    j->main_id = weft_task_id(weft_self());
    weft_chan *cs[2];
    cr_assert_eq(weft_chan_create(&cs[0], sizeof(long), 0), 0);
    cr_assert_eq(weft_chan_create(&cs[1], sizeof(long), 0), 0);
    weft_task *p;
    cr_assert_eq(weft_spawn(&p, pong, cs, NULL), 0);
    long v = j->id * 1000;
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(weft_chan_send(cs[0], &v, WEFT_FOREVER), 0);
        cr_assert_eq(weft_chan_recv(cs[1], &v, WEFT_FOREVER), 0);
    }
    cr_assert_eq(v, j->id * 1000 + 500);
    weft_chan_close(cs[0]);
    join_result(p);
    weft_task *t[20];
    for (int i = 0; i < 20; i++)
        cr_assert_eq(weft_spawn(&t[i], square, (void *)(intptr_t)(i + j->id), NULL), 0);
    long sum = 0;
    for (int i = 0; i < 20; i++)
        sum += (long)(intptr_t)join_result(t[i]);
    long id = j->id;
    cr_assert_eq(weft_chan_send(j->shared, &id, WEFT_FOREVER), 0);
    weft_chan_release(cs[0]);
    weft_chan_release(cs[1]);
    j->sum = sum;
    return (void *)(intptr_t)j->id;
}

static void *runtime_thread(void *arg)
{
    struct rt_job *j = arg;
    void *r = NULL;
    j->rc = weft_run(NULL, independent_main, j, &r);
    return r;
}

/* libuv's "multiple loops" and Tokio's several runtimes: four runtimes, each on its own
 * thread, run tasks, channels and timers independently at the same time; each numbers its
 * own tasks from 1; a channel shared by all of them carries values between runtimes. */
Test(conformance, four_runtimes_on_four_threads_run_independently, .timeout = 30)
{
    enum { N = 4 };
    weft_chan *shared;
    cr_assert_eq(weft_chan_create(&shared, sizeof(long), N), 0);
    struct rt_job j[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        j[i] = (struct rt_job){.id = i + 1, .shared = shared, .rc = 1};
        cr_assert_eq(pthread_create(&th[i], NULL, runtime_thread, &j[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_assert_eq(j[i].rc, 0);
        cr_assert_eq(r, (void *)(intptr_t)(i + 1));
        cr_assert_eq(j[i].main_id, 1, "runtime %d's main task is task 1", i);
        long want = 0;
        for (int k = 0; k < 20; k++)
            want += (long)(k + i + 1) * (k + i + 1);
        cr_assert_eq(j[i].sum, want);
    }
    long seen = 0;
    for (int i = 0; i < N; i++) {
        long v;
        cr_assert_eq(weft_chan_try_recv(shared, &v), 0);
        seen |= 1L << v;
    }
    cr_assert_eq(seen, 0x1e, "every runtime's value arrived once");
    weft_chan_release(shared);
}

/* A group belongs to its runtime: another runtime's task gets -EPERM and changes nothing. */
static weft_group *foreign_group;
static int foreign_rc[3];

static void *foreign_group_main(void *arg)
{
    (void)arg;
    foreign_rc[0] = weft_group_spawn(foreign_group, ret_arg, NULL, NULL);
    foreign_rc[1] = weft_group_wait(foreign_group, 0);
    foreign_rc[2] = weft_group_close(foreign_group);
    return NULL;
}

static void *foreign_group_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_run(NULL, foreign_group_main, NULL, NULL);
}

static void *join_thread_job(void *arg)
{
    void *r = NULL;
    pthread_join(*(pthread_t *)arg, &r);
    return r;
}

static void *group_owner_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_group_create(&foreign_group), 0);
    weft_event e = WEFT_EVENT_INIT;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_group_spawn(foreign_group, wait_event, &e, &pin), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_group_thread, NULL), 0);
    void *r = (void *)1;
    cr_assert_eq(weft_blocking(join_thread_job, &th, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0, "the other runtime ran");
    cr_assert_eq(foreign_rc[0], -EPERM);
    cr_assert_eq(foreign_rc[1], -EPERM);
    cr_assert_eq(foreign_rc[2], -EPERM);
    cr_assert_eq(weft_group_size(foreign_group), 1, "the foreign calls changed nothing");
    weft_event_set(&e);
    cr_assert_eq(weft_group_wait(foreign_group, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_close(foreign_group), 0);
    return NULL;
}

Test(conformance, a_group_refuses_another_runtimes_tasks, .timeout = 20)
{
    run_main(group_owner_main, NULL);
}

/* ---- Spawn, join, detach, cancel misuse -------------------------------------------------- */

static void *spawn_misuse_main(void *arg)
{
    (void)arg;
    weft_task *t = (weft_task *)&t;
    cr_assert_eq(weft_spawn(&t, NULL, NULL, NULL), -EINVAL, "fn NULL");
    cr_assert_eq(weft_spawn(NULL, ret_arg, NULL, NULL), -EINVAL, "out NULL, not detached");
    weft_spawn_opts huge = {.stack_size = SIZE_MAX};
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, &huge), -EINVAL, "stack of SIZE_MAX");
    cr_assert_eq(weft_spawn_on(weft_worker_count(), &t, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_spawn_on(UINT_MAX, &t, ret_arg, NULL, NULL), -EINVAL);
    weft_spawn_opts det = {.flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn(NULL, ret_arg, NULL, &det), 0, "detached: out may be NULL");
    t = (weft_task *)&t;
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, &det), 0);
    cr_assert_null(t, "a detached spawn gives no handle");
    return NULL;
}

Test(conformance, spawn_misuse_is_einval)
{
    run_main(spawn_misuse_main, NULL);
}

struct joiner {
    weft_task *t;
    int rc;
    void *r;
};

static void *join_other(void *arg)
{
    struct joiner *j = arg;
    j->rc = weft_join(j->t, &j->r, WEFT_FOREVER);
    return NULL;
}

static void *join_me(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_join(weft_self(), NULL, WEFT_FOREVER);
}

/* Tokio's JoinHandle tests and pthread's rules: a handle is joined once; a detached task
 * cannot be joined; a second joiner is refused while the first waits; a task joining
 * itself is -EDEADLK. */
static void *join_misuse_main(void *arg)
{
    (void)arg;
    weft_task *t = spawn_pinned(ret_arg, (void *)5);
    cr_assert_eq(join_result(t), (void *)5);
    void *r = (void *)1;
    int rc = weft_join(t, &r, WEFT_FOREVER);
    cr_assert(rc == -EINVAL || rc == -ESRCH, "second join: %d", rc);
    cr_assert_eq(r, (void *)1);

    /* Detach twice, join after detach, cancel/detach a handle being joined. */
    weft_event e = WEFT_EVENT_INIT;
    t = spawn_pinned(wait_event, &e);
    wait_parked(t);
    cr_assert_eq(weft_detach(t), 0);
    cr_assert_eq(weft_detach(t), -EINVAL, "detached already");
    cr_assert_eq(weft_join(t, &r, 0), -EINVAL, "join of a detached task");
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), -EINVAL);
    weft_event_set(&e);
    cr_assert_eq(weft_yield(), 0);

    weft_event e2 = WEFT_EVENT_INIT;
    t = spawn_pinned(wait_event, &e2);
    struct joiner j = {t, 1, NULL};
    weft_task *jt = spawn_pinned(join_other, &j);
    wait_parked(jt);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), -EINVAL, "another task is joining it");
    cr_assert_eq(weft_detach(t), -EINVAL, "being joined");
    weft_event_set(&e2);
    join_result(jt);
    cr_assert_eq(j.rc, 0);
    cr_assert_eq(j.r, (void *)0, "the first joiner got the result");

    /* A child joining itself. */
    t = spawn_pinned(join_me, NULL);
    cr_assert_eq(join_result(t), (void *)(intptr_t)-EDEADLK);
    return NULL;
}

Test(conformance, join_and_detach_misuse)
{
    run_main(join_misuse_main, NULL);
}

static atomic_int ran_count, cleanup_count;

static void *note_run(void *arg)
{
    atomic_fetch_add(&ran_count, 1);
    return arg;
}

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleanup_count, 1);
}

/* Tokio's abort-before-poll: a task cancelled before it ever ran never runs, its cleanup
 * runs once, and its join reports WEFT_CANCELED. (Pinned to the caller's worker and
 * cancelled before the caller yields, so it cannot have started anywhere.) */
static void *cancel_unstarted_main(void *arg)
{
    (void)arg;
    atomic_store(&ran_count, 0);
    atomic_store(&cleanup_count, 0);
    weft_task *t[8];
    weft_spawn_opts o = {.cleanup = count_cleanup, .flags = WEFT_SPAWN_PINNED};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(weft_spawn(&t[i], note_run, (void *)1, &o), 0);
        cr_assert_eq(weft_task_status(t[i]), WEFT_TASK_READY);
        cr_assert_eq(weft_cancel(t[i]), 0);
        cr_assert_eq(weft_cancel(t[i]), 0, "cancelling twice is harmless");
    }
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(join_result(t[i]), WEFT_CANCELED, "task %d", i);
    }
    cr_assert_eq(atomic_load(&ran_count), 0, "no cancelled task ran");
    cr_assert_eq(atomic_load(&cleanup_count), 8);
    return NULL;
}

Test(conformance, a_task_cancelled_before_it_runs_never_runs)
{
    run_main(cancel_unstarted_main, NULL);
}

/* A task that cancels itself: its blocking calls return -ECANCELED at once, weft_canceled()
 * says so, its defers see it, and its join reports WEFT_CANCELED whatever it returned. */
static int self_cancel_rc[5];
static int defer_saw_canceled;

static void saw_canceled(void *arg)
{
    (void)arg;
    defer_saw_canceled = weft_canceled();
}

static void *cancel_self(void *arg)
{
    (void)arg;
    weft_defer(saw_canceled, NULL);
    cr_assert_eq(weft_canceled(), 0);
    cr_assert_eq(weft_cancel(weft_self()), 0);
    self_cancel_rc[0] = weft_canceled();
    self_cancel_rc[1] = weft_yield();
    self_cancel_rc[2] = weft_sleep(WEFT_MSEC);
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, 0, 0), 0);
    self_cancel_rc[3] = weft_chan_recv(c, NULL, WEFT_FOREVER);
    weft_chan_release(c);
    weft_event e = WEFT_EVENT_INIT;
    self_cancel_rc[4] = weft_event_wait(&e, 0);
    return (void *)5;
}

static void *cancel_self_main(void *arg)
{
    (void)arg;
    defer_saw_canceled = -1;
    weft_task *t = spawn_pinned(cancel_self, NULL);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(self_cancel_rc[0], 1);
    cr_assert_eq(self_cancel_rc[1], -ECANCELED);
    cr_assert_eq(self_cancel_rc[2], -ECANCELED);
    cr_assert_eq(self_cancel_rc[3], -ECANCELED);
    cr_assert_eq(self_cancel_rc[4], -ECANCELED);
    cr_assert_eq(defer_saw_canceled, 1);
    return NULL;
}

Test(conformance, a_task_cancelling_itself)
{
    run_main(cancel_self_main, NULL);
}

static void *exit_with(void *arg)
{
    weft_exit(arg);
    return NULL;
}

/* Tokio's "abort a completed task": cancelling a task that has finished is harmless, and its
 * join still reports what it returned (or passed to weft_exit), not WEFT_CANCELED. */
static void *cancel_finished_main(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < weft_worker_count(); k++) {
        weft_task *a, *b;
        cr_assert_eq(weft_spawn_on(k, &a, ret_arg, (void *)42, NULL), 0);
        cr_assert_eq(weft_spawn_on(k, &b, exit_with, (void *)43, NULL), 0);
        while (weft_task_status(a) != WEFT_TASK_FINISHED ||
               weft_task_status(b) != WEFT_TASK_FINISHED)
            cr_assert_eq(weft_yield(), 0);
        cr_assert_eq(weft_cancel(a), 0);
        cr_assert_eq(weft_cancel(b), 0);
        cr_assert_eq(weft_task_status(a), WEFT_TASK_FINISHED);
        cr_assert_eq(join_result(a), (void *)42, "worker %u", k);
        cr_assert_eq(join_result(b), (void *)43, "worker %u", k);
    }
    return NULL;
}

Test(conformance, cancelling_a_finished_task_keeps_its_result)
{
    run_main(cancel_finished_main, NULL);
}

/* ---- Exit, defers, locals, cleanup order ------------------------------------------------ */

static char trail[32];
static atomic_int ntrail;

static void mark(void *arg)
{
    trail[atomic_fetch_add(&ntrail, 1)] = (char)(intptr_t)arg;
}

static int local_key_a, local_key_b;

static void *exiting(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_defer(mark, (void *)'1'), 0);
    cr_assert_eq(weft_local_set(&local_key_a, (void *)'L', mark), 0);
    cr_assert_eq(weft_defer(mark, (void *)'2'), 0);
    cr_assert_eq(weft_local_get(&local_key_a), (void *)'L');
    cr_assert_null(weft_local_get(&local_key_b));
    /* Replacing a value runs the old value's destructor at once. */
    cr_assert_eq(weft_local_set(&local_key_b, (void *)'r', mark), 0);
    cr_assert_eq(weft_local_set(&local_key_b, (void *)'R', mark), 0);
    cr_assert_eq(trail[0], 'r');
    cr_assert_eq(weft_local_get(&local_key_b), (void *)'R');
    weft_exit((void *)9);
    mark((void *)'!');
    return NULL;
}

static void *exit_order_main(void *arg)
{
    (void)arg;
    atomic_store(&ntrail, 0);
    memset(trail, 0, sizeof trail);
    cr_assert_eq(weft_local_set(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_defer(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_local_set(&local_key_a, (void *)'M', NULL), 0);
    weft_spawn_opts o = {.cleanup = mark};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, exiting, (void *)'C', &o), 0);
    cr_assert_eq(join_result(t), (void *)9);
    int n = atomic_load(&ntrail);
    cr_assert_eq(n, 6, "r, 2, 1, L, R and the cleanup C, got %d: %s", n, trail);
    /* r at once; the defers LIFO (2 before 1); the locals' destructors; cleanup last. */
    cr_assert_eq(trail[0], 'r');
    cr_assert_eq(trail[n - 1], 'C', "the cleanup runs last: %s", trail);
    cr_assert_lt(strchr(trail, '2'), strchr(trail, '1'), "defers LIFO: %s", trail);
    cr_assert_not_null(strchr(trail, 'L'));
    cr_assert_not_null(strchr(trail, 'R'));
    cr_assert_null(strchr(trail, '!'), "weft_exit did not return");
    cr_assert_eq(weft_local_get(&local_key_a), (void *)'M', "the child's local was its own");
    return NULL;
}

Test(conformance, exit_runs_defers_then_local_destructors_then_cleanup)
{
    run_main(exit_order_main, NULL);
}

/* Spawning from a task that is being cancelled works, and the child is not cancelled with
 * it (no parent-child cancellation is documented): it runs to the end. */
static weft_task *orphan;
static int orphan_spawn_rc;

static void *late_child(void *arg)
{
    weft_sleep(WEFT_MSEC);
    return arg;
}

static void *spawn_when_cancelled(void *arg)
{
    (void)arg;
    int r = weft_sleep_until(WEFT_FOREVER);
    cr_assert_eq(r, -ECANCELED);
    orphan_spawn_rc = weft_spawn(&orphan, late_child, (void *)77, NULL);
    return NULL;
}

static void *spawn_cancelled_main(void *arg)
{
    (void)arg;
    orphan = NULL;
    orphan_spawn_rc = 1;
    weft_task *t = spawn_pinned(spawn_when_cancelled, NULL);
    wait_parked(t);
    weft_cancel(t);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(orphan_spawn_rc, 0);
    cr_assert_not_null(orphan);
    cr_assert_eq(join_result(orphan), (void *)77, "the child ran to its end, not cancelled");
    return NULL;
}

Test(conformance, a_task_being_cancelled_can_spawn_a_child_that_runs)
{
    run_main(spawn_cancelled_main, NULL);
}

/* Child first with a task already queued: the child runs inside the spawn, then the task
 * queued before it, and only then does the spawner resume. */
static char cf_log[8];
static int ncf;

static void *cf_note(void *arg)
{
    cf_log[ncf++] = (char)(intptr_t)arg;
    return NULL;
}

static void *child_first_main(void *arg)
{
    (void)arg;
    ncf = 0;
    weft_task *a = spawn_pinned(cf_note, (void *)'A');
    weft_task *b;
    weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST | WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn(&b, cf_note, (void *)'B', &cf), 0);
    cf_note((void *)'M');
    cf_log[ncf] = 0;
    cr_assert_str_eq(cf_log, "BAM");
    join_result(a);
    join_result(b);
    return NULL;
}

Test(conformance, child_first_runs_the_child_then_the_queue_then_the_spawner)
{
    run_main(child_first_main, NULL);
}

/* ---- Groups and generators -------------------------------------------------------------- */

static weft_group *closing_group;
static int respawn_rc;

static void *respawn_on_cancel(void *arg)
{
    (void)arg;
    int r = weft_sleep_until(WEFT_FOREVER);
    cr_assert_eq(r, -ECANCELED);
    respawn_rc = weft_group_spawn(closing_group, note_run, NULL, NULL);
    return NULL;
}

static void *recv_forever(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, WEFT_FOREVER);
}

static void *lock_forever(void *arg)
{
    int r = weft_mutex_lock(arg, WEFT_FOREVER);
    if (r == 0)
        weft_mutex_unlock(arg);
    return (void *)(intptr_t)r;
}

/* Trio's nursery and Tokio's JoinSet: waiting with a passed deadline times out while members
 * run; cancel reports how many; close reaps members parked in every kind of wait; a member
 * that tries to spawn into its group while it closes gets -EPIPE and nothing runs. */
static void *group_main(void *arg)
{
    (void)arg;
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_wait(g, 0), 0, "an empty group is done at once");
    cr_assert_eq(weft_group_spawn(g, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_group_size(g), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(g, park_forever, NULL, NULL), 0);
    cr_assert_eq(weft_group_size(g), 3);
    cr_assert_eq(weft_group_wait(g, 0), -ETIMEDOUT);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_group_cancel(g), 3);
    cr_assert_eq(weft_group_wait(g, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_size(g), 0);
    cr_assert_eq(weft_group_cancel(g), 0);
    cr_assert_eq(weft_group_close(g), 0);

    atomic_store(&ran_count, 0);
    respawn_rc = 1;
    cr_assert_eq(weft_group_create(&closing_group), 0);
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(long), 0), 0);
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_group_spawn(closing_group, respawn_on_cancel, NULL, &pin), 0);
    cr_assert_eq(weft_group_spawn(closing_group, recv_forever, c, &pin), 0);
    cr_assert_eq(weft_group_spawn(closing_group, lock_forever, &m, &pin), 0);
    cr_assert_eq(weft_group_spawn(closing_group, park_forever, NULL, NULL), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_group_close(closing_group), 0);
    cr_assert_eq(respawn_rc, -EPIPE, "spawn into a closing group: %d", respawn_rc);
    cr_assert_eq(atomic_load(&ran_count), 0, "the refused member never ran");
    cr_assert_eq(weft_mutex_unlock(&m), 0, "the cancelled locker never got the lock");
    weft_chan_release(c);
    return NULL;
}

Test(conformance, group_wait_cancel_and_close_with_parked_members)
{
    run_main(group_main, NULL);
}

static void slow_counter(weft_gen *g, void *arg)
{
    (void)arg;
    for (long i = 1; i <= 3; i++) {
        weft_sleep(5 * WEFT_MSEC);
        if (weft_gen_yield(g, &i) != 0)
            return;
    }
}

static void exiting_gen(weft_gen *g, void *arg)
{
    (void)arg;
    long v = 1;
    weft_gen_yield(g, &v);
    weft_exit(NULL);
}

/* Python's and Rust's generators: a request given up on keeps its value for the next one (no
 * value lost or skipped); a finished generator says -EPIPE every time after; one that never
 * started runs its cleanup on close without running. */
static void *gen_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    cr_assert_eq(weft_gen_create(&g, NULL, NULL, sizeof(long), NULL), -EINVAL);
    cr_assert_eq(weft_gen_create(&g, slow_counter, NULL, sizeof(long), NULL), 0);
    long v = 0;
    cr_assert_eq(weft_gen_next(g, &v, 0), -ETIMEDOUT);
    cr_assert_eq(weft_gen_next(g, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(v, 0);
    for (long want = 1; want <= 3; want++) {
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, want, "no value lost or skipped");
    }
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_next(g, &v, 0), -EPIPE);
    cr_assert_eq(weft_gen_close(g), 0);

    cr_assert_eq(weft_gen_create(&g, exiting_gen, NULL, sizeof(long), NULL), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE, "a body that exits has finished");
    cr_assert_eq(weft_gen_close(g), 0);

    atomic_store(&cleanup_count, 0);
    weft_spawn_opts o = {.cleanup = count_cleanup};
    cr_assert_eq(weft_gen_create(&g, slow_counter, NULL, sizeof(long), &o), 0);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(atomic_load(&cleanup_count), 1);
    return NULL;
}

Test(conformance, generators_keep_given_up_values_and_stay_finished)
{
    run_main(gen_main, NULL);
}

/* ---- Futures, promises, combinators ------------------------------------------------- */

static weft_future *ready(int status, void *value)
{
    weft_future *f = NULL;
    cr_assert_eq(weft_future_ready(&f, status, value), 0);
    return f;
}

static weft_future *pending(void)
{
    weft_future *f = NULL;
    cr_assert_eq(weft_future_pending(&f), 0);
    return f;
}

/* Seastar's make_ready_future and Tokio's select! with ready branches: combinators over
 * futures that are complete from the start complete at once, lowest index first; errors
 * pass through as documented; a passed deadline still lets a ready future complete. */
static void *combinators_main(void *arg)
{
    (void)arg;
    void *v = NULL;
    weft_future *r5 = ready(5, (void *)55);
    cr_assert_eq(weft_await(r5, &v, 0), 5, "a ready future completes with a passed deadline");
    cr_assert_eq(v, (void *)55);
    cr_assert_eq(weft_await(r5, &v, WEFT_FOREVER), 5, "and again");

    weft_future *fs[3] = {pending(), ready(-EIO, (void *)1), ready(3, (void *)2)};
    weft_future *first;
    cr_assert_eq(weft_future_first(&first, fs, 3), 0);
    cr_assert_eq(weft_await(first, &v, 0), 1, "the lowest ready index");
    cr_assert_eq(v, (void *)1);
    cr_assert_eq(fs[1]->status, -EIO);
    weft_future_destroy(first);

    weft_future *all;
    cr_assert_eq(weft_future_all(&all, fs + 1, 2), 0);
    v = (void *)9;
    cr_assert_eq(weft_await(all, &v, 0), 0, "all: status 0 even with a failed child");
    cr_assert_null(v);
    weft_future_destroy(all);

    int st[3] = {7, 7, 7};
    void *vals[3] = {0};
    weft_future *js[3] = {ready(-EIO, (void *)1), ready(4, (void *)2), ready(-EPIPE, NULL)};
    weft_future *join;
    cr_assert_eq(weft_future_join(&join, js, 3, st, vals), 0);
    cr_assert_eq(weft_await(join, NULL, WEFT_FOREVER), 2, "two children failed");
    cr_assert_eq(st[0], -EIO);
    cr_assert_eq(st[1], 4);
    cr_assert_eq(st[2], -EPIPE);
    cr_assert_eq(vals[1], (void *)2);
    weft_future_destroy(join);
    for (int i = 0; i < 3; i++)
        weft_future_destroy(js[i]);

    weft_future *to;
    cr_assert_eq(weft_future_timeout(&to, fs[0], 0), 0);
    cr_assert_eq(weft_await(to, &v, WEFT_FOREVER), -ETIMEDOUT, "a pending future, deadline passed");
    weft_future_destroy(to);
    cr_assert_eq(weft_future_timeout(&to, fs[0], weft_deadline_in(WEFT_MSEC)), 0);
    cr_assert_eq(weft_await(to, &v, WEFT_FOREVER), -ETIMEDOUT);
    weft_future_destroy(to);
    cr_assert_eq(weft_future_timeout(&to, fs[2], WEFT_FOREVER), 0);
    cr_assert_eq(weft_await(to, &v, WEFT_FOREVER), 3, "completes as its future does");
    cr_assert_eq(v, (void *)2);
    weft_future_destroy(to);

    /* Misuse. */
    weft_future *bad = NULL;
    cr_assert_eq(weft_future_first(&bad, fs, 0), -EINVAL);
    cr_assert_eq(weft_future_all(&bad, fs, 0), -EINVAL);
    weft_future *withnull[2] = {fs[0], NULL};
    cr_assert_eq(weft_future_first(&bad, withnull, 2), -EINVAL);
    cr_assert_eq(weft_future_all(&bad, withnull, 2), -EINVAL);
    cr_assert_eq(weft_future_join(&bad, withnull, 2, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_join(&bad, fs, ((size_t)1 << 20) + 1, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_ready(NULL, 0, NULL), -EINVAL);
    cr_assert_eq(weft_await(NULL, NULL, 0), -EINVAL);
    cr_assert_null(bad);
    for (int i = 0; i < 3; i++)
        weft_future_destroy(fs[i]);
    weft_future_destroy(r5);
    weft_future_destroy(NULL);
    return NULL;
}

Test(conformance, combinators_over_ready_failed_and_pending_futures)
{
    run_main(combinators_main, NULL);
}

static int null_next(void *value, void *arg, weft_future **next)
{
    (void)value;
    (void)arg;
    *next = NULL;
    return 0;
}

static int recover(int status, void *arg, weft_future **next, void **value)
{
    (void)next;
    *value = arg;
    return -status; /* -(-EIO) = EIO >= 0: a recovered status */
}

static void *chains_main(void *arg)
{
    (void)arg;
    weft_future *f, *c;
    void *v = NULL;
    f = ready(0, NULL);
    cr_assert_eq(weft_future_and_then(&c, f, null_next, NULL), 0);
    cr_assert_eq(weft_await(c, &v, WEFT_FOREVER), -EINVAL, "and_then: 0 with next NULL");
    weft_future_destroy(c);
    f = ready(-EIO, NULL);
    cr_assert_eq(weft_future_or_else(&c, f, recover, (void *)3), 0);
    cr_assert_eq(weft_await(c, &v, WEFT_FOREVER), EIO);
    cr_assert_eq(v, (void *)3);
    weft_future_destroy(c);
    f = ready(-EIO, (void *)1);
    cr_assert_eq(weft_future_and_then(&c, f, null_next, NULL), 0);
    cr_assert_eq(weft_await(c, &v, WEFT_FOREVER), -EIO, "fn not called on failure");
    cr_assert_null(v);
    weft_future_destroy(c);
    f = ready(0, NULL);
    cr_assert_eq(weft_future_and_then(&c, f, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_map(&c, NULL, NULL, NULL), -EINVAL);
    weft_future_destroy(f);
    return NULL;
}

Test(conformance, and_then_with_no_next_fails_and_or_else_recovers)
{
    run_main(chains_main, NULL);
}

/* A promise: settling twice is -EALREADY and keeps the first outcome; rejecting with a
 * non-negative code is -EINVAL; an await that times out or is cancelled leaves it pending,
 * and a later await gets the value. */
struct await_arg {
    weft_future *f;
    int rc;
    void *v;
};

static void *await_it(void *arg)
{
    struct await_arg *a = arg;
    a->rc = weft_await(a->f, &a->v, WEFT_FOREVER);
    return NULL;
}

static void *promise_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_create(NULL), -EINVAL);
    weft_future *f = weft_promise_future(p);
    void *v = NULL;
    cr_assert_eq(weft_await(f, &v, 0), -ETIMEDOUT);
    cr_assert_eq(weft_await(f, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    struct await_arg a = {f, 1, NULL};
    weft_task *t = spawn_pinned(await_it, &a);
    wait_parked(t);
    weft_cancel(t);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(a.rc, -ECANCELED);
    cr_assert_eq(f->ready, 0, "still pending");
    cr_assert_eq(weft_promise_reject(p, 0), -EINVAL);
    cr_assert_eq(weft_promise_reject(p, EIO), -EINVAL);
    cr_assert_eq(weft_promise_resolve(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_promise_reject(NULL, -EIO), -EINVAL);
    a = (struct await_arg){f, 1, NULL};
    t = spawn_pinned(await_it, &a);
    wait_parked(t);
    cr_assert_eq(weft_promise_resolve(p, (void *)8), 0);
    cr_assert_eq(weft_promise_resolve(p, (void *)9), -EALREADY);
    cr_assert_eq(weft_promise_reject(p, -EIO), -EALREADY);
    join_result(t);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(a.v, (void *)8);
    cr_assert_eq(weft_await(f, &v, 0), 0, "settled: completes at a passed deadline");
    cr_assert_eq(v, (void *)8, "the first outcome stays");
    weft_promise_retain(p);
    weft_promise_release(p);
    weft_future_destroy(f); /* drops the creator's reference */
    weft_promise_release(NULL);
    return NULL;
}

Test(conformance, promise_settles_once_and_survives_given_up_awaits)
{
    run_main(promise_main, NULL);
}

/* A user future whose drop is counted: a stackless task cancelled before it completes drops
 * its future exactly once, and its join reports WEFT_CANCELED; one over a ready future
 * reports the value. */
struct counted {
    weft_future base;
    int *drops;
};

static int never_poll(weft_future *self, weft_context *cx)
{
    (void)self;
    (void)cx;
    return WEFT_PENDING;
}

static void counted_drop(weft_future *self)
{
    struct counted *c = (struct counted *)self;
    (*c->drops)++;
    free(c);
}

static const weft_future_ops counted_ops = {never_poll, counted_drop};

static void *stackless_main(void *arg)
{
    (void)arg;
    int drops = 0;
    struct counted *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    weft_future_init(&c->base, &counted_ops);
    c->drops = &drops;
    weft_task *t;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_future(&t, &c->base, &pin), 0);
    cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(drops, 1, "dropped exactly once");

    cr_assert_eq(weft_spawn_future(&t, ready(0, (void *)21), NULL), 0);
    cr_assert_eq(join_result(t), (void *)21);
    cr_assert_eq(weft_spawn_future(&t, NULL, NULL), -EINVAL);
    return NULL;
}

Test(conformance, stackless_tasks_drop_their_future_once)
{
    run_main(stackless_main, NULL);
}

/* ---- TCP on 127.0.0.1 ------------------------------------------------------------------- */

/* Go's TestDialError / libuv's tcp_connect_error: a port nobody listens on refuses. */
static void *refused_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    cr_assert_eq(weft_close(lfd), 0); /* the port is now free, and nobody listens */
    cr_assert_eq(weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC)), -ECONNREFUSED);
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(
        weft_connect(fd, (struct sockaddr *)&srv.ss, srv.len, weft_deadline_in(5 * WEFT_SEC)),
        -ECONNREFUSED);
    cr_assert_eq(weft_close(fd), 0);
    return NULL;
}

Test(conformance, connect_to_a_port_nobody_listens_on_is_refused)
{
    run_main(refused_main, NULL);
}

/* libuv's tcp_write_to_half_open_connection and Go's TestWriteToClosed: writes to a peer that
 * closed fail with -EPIPE or -ECONNRESET, and the process is not killed by SIGPIPE: by
 * default (ignore_sigpipe) for weft_write, and with weft_send even when SIGPIPE keeps its
 * default action. */
static void *epipe_main(void *arg)
{
    int use_send = (int)(intptr_t)arg;
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_close(p[1]), 0);
    static char buf[64 * 1024];
    ssize_t n = 0;
    for (int i = 0; i < 100 && n >= 0; i++) {
        n = use_send ? weft_send(p[0], buf, sizeof buf, 0, weft_deadline_in(5 * WEFT_SEC))
                     : weft_write(p[0], buf, sizeof buf, weft_deadline_in(5 * WEFT_SEC));
        if (n >= 0)
            weft_sleep(WEFT_MSEC);
    }
    cr_assert(n == -EPIPE || n == -ECONNRESET, "write to a closed peer: %zd", n);
    n = use_send ? weft_send(p[0], "x", 1, 0, weft_deadline_in(WEFT_SEC))
                 : weft_write(p[0], "x", 1, weft_deadline_in(WEFT_SEC));
    cr_assert(n == -EPIPE || n == -ECONNRESET, "and again: %zd", n);
    cr_assert_eq(weft_close(p[0]), 0);
    return NULL;
}

Test(conformance, write_to_a_closed_peer_is_epipe_not_sigpipe, .timeout = 20)
{
    signal(SIGPIPE, SIG_DFL);
    run_main(epipe_main, (void *)0);
    signal(SIGPIPE, SIG_DFL);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.ignore_sigpipe = 0;
    run_main_cfg(&cfg, epipe_main, (void *)1);
}

/* Go's TestReadEOF: a peer's data, then its close, reads as the data, then 0, and 0 again
 * (end of file stays), also with a passed deadline. */
static void *eof_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    char buf[16];
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_write(p[0], "abc", 3, WEFT_FOREVER), 3);
    cr_assert_eq(weft_close(p[0]), 0);
    read_exactly(p[1], buf, 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(5 * WEFT_SEC)), 0);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 0, "EOF stays");
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, 0), 0, "EOF with a passed deadline");
    cr_assert_eq(weft_recv(p[1], buf, sizeof buf, 0, 0), 0);
    cr_assert_eq(weft_close(p[1]), 0);

    /* Shutdown of the peer's writing side: EOF, and the other direction works on. */
    tcp_pair(p);
    cr_assert_eq(weft_shutdown(p[0], SHUT_WR), 0);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, WEFT_FOREVER), 0);
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, 0), 0);
    cr_assert_eq(weft_write(p[1], "xy", 2, WEFT_FOREVER), 2);
    read_exactly(p[0], buf, 2);
    cr_assert_eq(memcmp(buf, "xy", 2), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(conformance, eof_after_the_peer_closes_stays_eof, .timeout = 20)
{
    run_main(eof_main, NULL);
}

/* weft.h's convention: "A deadline that has passed makes the call non-blocking: it completes
 * if it can at once". Data waiting, room to write and a pending connection are all taken
 * with deadline 0 (where Go's past SetDeadline fails the call: weft documents otherwise). */
static void *passed_deadline_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    cr_assert_eq(weft_accept(lfd, NULL, NULL, 0), -ETIMEDOUT, "nobody connecting");
    int c = weft_dial(&srv, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(c, 0);
    /* The connection is in the accept queue once dial returned (loopback's handshake). */
    int s = weft_accept(lfd, NULL, NULL, 0);
    cr_assert_geq(s, 0, "a pending connection with a passed deadline: %s", weft_strerror(s));
    cr_assert_eq(weft_write(c, "hello", 5, 0), 5, "room to write with a passed deadline");
    /* Wait for the bytes to be there without reading them. */
    cr_assert_gt(weft_fd_wait(s, WEFT_READABLE, weft_deadline_in(5 * WEFT_SEC)), 0);
    char buf[8];
    ssize_t n = weft_read(s, buf, sizeof buf, 0);
    cr_assert_eq(n, 5, "data waiting, passed deadline: %zd (%s)", n, weft_strerror((int)n));
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_eq(weft_read(s, buf, sizeof buf, 0), -ETIMEDOUT, "nothing left");
    cr_assert_eq(weft_write(s, "x", 1, 0), 1);
    read_exactly(c, buf, 1);
    /* sendfile too: a file's bytes into a socket with room (io_uring's splices were
     * cancelled by the deadline before they ran: -ETIMEDOUT, nothing sent). */
    char path[] = "/tmp/weft-sendfile-passed-XXXXXX";
    int f = mkstemp(path);
    cr_assert_geq(f, 0);
    unlink(path);
    cr_assert_eq(write(f, "sendfile", 8), 8);
    off_t off = 0;
    cr_assert_eq(weft_sendfile(s, f, &off, 8, 0), 8);
    cr_assert_eq(off, 8);
    char got[8];
    read_exactly(c, got, 8);
    cr_assert_eq(memcmp(got, "sendfile", 8), 0);
    close(f);
    weft_close(c);
    weft_close(s);
    weft_close(lfd);
    return NULL;
}

Test(conformance, passed_deadlines_still_complete_what_is_ready, .timeout = 20)
{
    run_main(passed_deadline_main, NULL);
}

/* The same for weft_fd_wait: an fd the kernel reports readable (poll(2) says so) is
 * readable "at once", so a wait with a passed deadline returns the mask. */
static void *fd_wait_passed_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_fd_wait(p[1], WEFT_READABLE, 0), -ETIMEDOUT, "nothing to read yet");
    cr_assert_eq(weft_write(p[0], "x", 1, WEFT_FOREVER), 1);
    struct pollfd pfd = {.fd = p[1], .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the byte is there");
    int w = weft_fd_wait(p[1], WEFT_READABLE, 0);
    cr_assert_gt(w, 0, "readable now, passed deadline: %d", w);
    int fresh = p[0]; /* never waited on: its first wait registers it */
    cr_assert_gt(weft_fd_wait(fresh, WEFT_WRITABLE, 0), 0, "room to write, passed deadline");
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

/* A passed deadline makes weft_fd_wait a look: an fd that is ready but whose edge the
 * reactor has not taken yet (epoll) is asked directly (it used to return -ETIMEDOUT). */
Test(conformance, fd_wait_with_a_passed_deadline_sees_a_ready_fd, .timeout = 20)
{
    run_main(fd_wait_passed_main, NULL);
}

/* A short read leaves a byte stream "drained" (epoll: the next read waits for an edge
 * first). Reads that no edge answers must not take that shortcut: a pread on a pipe is
 * -ESPIPE at once, and an urgent byte (MSG_OOB) raises EPOLLPRI, not a readable edge. Both
 * waited for their whole deadline (for ever with WEFT_FOREVER). */
static void drain_after_a_wait(int rfd, int wfd)
{
    char buf[16];
    cr_assert_eq(weft_read(rfd, buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_write(wfd, "abcd", 4, WEFT_FOREVER), 4);
    ssize_t n = weft_read(rfd, buf, sizeof buf, WEFT_FOREVER);
    cr_assert(n > 0 && n <= 4, "a short read: %zd", n);
}

static void *drained_other_reads_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    drain_after_a_wait(p[0], p[1]);
    char buf[16];
    cr_assert_eq(weft_file_pread(p[0], buf, sizeof buf, 0, weft_deadline_in(10 * WEFT_SEC)),
                 -ESPIPE);
    weft_close(p[0]);
    weft_close(p[1]);

    /* On io_uring the socket's armed receive reads past an urgent byte, which the kernel
     * then drops (weft.h, weft_recv): epoll only. */
    if (strcmp(weft_backend(), "epoll") != 0)
        return NULL;
    int t[2];
    tcp_pair(t);
    drain_after_a_wait(t[1], t[0]);
    cr_assert_eq(weft_send(t[0], "!", 1, MSG_OOB, WEFT_FOREVER), 1);
    /* Until the urgent byte is there: looks between sleeps, which let the worker's loop run
     * (io_uring completes the segment's receive there). */
    struct pollfd pri = {.fd = t[1], .events = POLLPRI};
    for (int i = 0; i < 5000 && poll(&pri, 1, 0) == 0; i++)
        weft_sleep(WEFT_MSEC);
    cr_assert(pri.revents & POLLPRI, "the urgent byte came");
    cr_assert_eq(weft_recv(t[1], buf, 1, MSG_OOB, weft_deadline_in(10 * WEFT_SEC)), 1);
    cr_assert_eq(buf[0], '!');
    weft_close(t[0]);
    weft_close(t[1]);
    return NULL;
}

Test(conformance, reads_no_edge_answers_do_not_wait_after_a_short_read, .timeout = 30)
{
    run_main(drained_other_reads_main, NULL);
}

/* A connect with a passed deadline is a look (weft.h): on loopback the handshake is over
 * when connect(2) returns, so it says 0 and the socket is connected (io_uring's connect
 * did; epoll's waited for an edge it checked only after the deadline: -ETIMEDOUT, with the
 * connection made). Several tries, so that one handshake the kernel put off (softirq work
 * left to ksoftirqd on a loaded machine) cannot fail the test: none succeeded before. */
static void *connect_passed_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int connected = 0;
    for (int i = 0; i < 8; i++) {
        int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_geq(fd, 0);
        int r = weft_connect(fd, (const struct sockaddr *)&srv.ss, srv.len, weft_now());
        cr_assert(r == 0 || r == -ETIMEDOUT, "connect: %s", weft_strerror(r));
        if (r == 0) {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            cr_assert_eq(getpeername(fd, (struct sockaddr *)&peer, &pl), 0, "connected");
            connected++;
            /* Connected: a second connect is -EISCONN on both backends (epoll said 0). */
            cr_assert_eq(weft_connect(fd, (const struct sockaddr *)&srv.ss, srv.len, WEFT_FOREVER),
                         -EISCONN);
        }
        int a = weft_accept(lfd, NULL, NULL, weft_deadline_in(TCP_HELPERS_SOON));
        cr_assert_geq(a, 0, "the handshake completed: %s", weft_strerror(a));
        weft_close(a);
        weft_close(fd);
    }
    cr_assert_gt(connected, 0, "no connect with a passed deadline said 0");
    weft_close(lfd);
    return NULL;
}

/* A socket weft_dial connected (its connect waited): a second connect is -EISCONN on both
 * backends (epoll said 0: Linux marks the socket connected only at the next connect(2)). */
static void *connect_twice_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int c = weft_dial(&srv, weft_deadline_in(TCP_HELPERS_SOON));
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_connect(c, (const struct sockaddr *)&srv.ss, srv.len, WEFT_FOREVER),
                 -EISCONN);
    weft_close(c);
    weft_close(lfd);
    return NULL;
}

Test(conformance, a_second_connect_is_eisconn, .timeout = 30)
{
    run_main(connect_twice_main, NULL);
}

Test(conformance, connect_with_a_passed_deadline_reports_a_done_handshake, .timeout = 30)
{
    run_main(connect_passed_main, NULL);
}

/* A Unix-domain connect to a listener whose backlog is full waits for room (as a blocking
 * connect(2) does), until its deadline: epoll said 0 with the socket unconnected, io_uring
 * spun in the kernel until the deadline. Once the listener accepts, a waiting connect gets
 * through. */
static void *connect_unix_full(void *arg)
{
    const struct sockaddr_un *sa = arg;
    int c = weft_socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(c, 0);
    int r = weft_connect(c, (const struct sockaddr *)sa, sizeof *sa, WEFT_FOREVER);
    if (r == 0) {
        struct sockaddr_un peer;
        socklen_t pl = sizeof peer;
        cr_assert_eq(getpeername(c, (struct sockaddr *)&peer, &pl), 0, "connected");
    }
    weft_close(c);
    return (void *)(intptr_t)r;
}

/* A Unix listener at /tmp/weft-<name>-<pid> with a backlog of one, which `*first` fills (a
 * connected weft socket): further connects to it wait. Returns the listener. */
static int full_unix_listener(struct sockaddr_un *sa, const char *name, int *first)
{
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(sa->sun_path, sizeof sa->sun_path, "/tmp/weft-%s-%d", name, (int)getpid());
    unlink(sa->sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(l, 0);
    cr_assert_eq(bind(l, (struct sockaddr *)sa, sizeof *sa), 0);
    cr_assert_eq(listen(l, 0), 0);
    *first = weft_socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(weft_connect(*first, (struct sockaddr *)sa, sizeof *sa, WEFT_FOREVER), 0);
    return l;
}

static void *unix_backlog_main(void *arg)
{
    (void)arg;
    struct sockaddr_un sa;
    int first;
    int l = full_unix_listener(&sa, "backlog", &first);
    /* The backlog is full now (listen(0) takes one): further connects wait. */
    int full = weft_socket(AF_UNIX, SOCK_STREAM, 0);
    int r = weft_connect(full, (struct sockaddr *)&sa, sizeof sa, weft_deadline_in(20 * WEFT_MSEC));
    cr_assert_eq(r, -ETIMEDOUT, "a full backlog: %s", weft_strerror(r));
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    cr_assert_neq(getpeername(full, (struct sockaddr *)&peer, &pl), 0, "not connected");
    weft_close(full);
    weft_task *t = spawn_pinned(connect_unix_full, &sa);
    wait_parked(t);
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC); /* room for one */
    cr_assert_geq(a, 0);
    cr_assert_eq((intptr_t)join_result(t), 0);
    close(a);
    weft_close(first);
    close(l);
    unlink(sa.sun_path);
    return NULL;
}

Test(conformance, a_unix_connect_waits_for_room_in_the_backlog, .timeout = 30)
{
    run_main(unix_backlog_main, NULL);
}

/* A Unix connect waiting for room whose fd is closed by another task, the number then taken by
 * a new socket: the connect ends with -EBADF at its next try, and never connects the new
 * socket (it tried the number again, and once the listener made room connected whatever fd
 * had it by then). */
typedef struct unix_retry_fd {
    const struct sockaddr_un *sa;
    int fd;
} unix_retry_fd;

static void *connect_unix_fd(void *arg)
{
    unix_retry_fd *u = arg;
    int r = weft_connect(u->fd, (const struct sockaddr *)u->sa, sizeof *u->sa, WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

static void *unix_backlog_close_main(void *arg)
{
    (void)arg;
    struct sockaddr_un sa;
    int first;
    int l = full_unix_listener(&sa, "backlog-close", &first);
    unix_retry_fd u = {.sa = &sa, .fd = weft_socket(AF_UNIX, SOCK_STREAM, 0)};
    cr_assert_geq(u.fd, 0);
    weft_task *t = spawn_pinned(connect_unix_fd, &u);
    wait_parked(t); /* asleep between two tries: the backlog is full */
    cr_assert_eq(weft_close(u.fd), 0);
    int other = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); /* a blocking socket */
    cr_assert_geq(other, 0);
    if (other != u.fd) {
        cr_assert_eq(dup2(other, u.fd), u.fd); /* the closed number, whatever was free */
        close(other);
    }
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC); /* room for one */
    cr_assert_geq(a, 0);
    intptr_t r = (intptr_t)join_result(t);
    cr_assert_eq(r, -EBADF, "the connect of the closed fd: %s", weft_strerror((int)r));
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    cr_assert_neq(getpeername(u.fd, (struct sockaddr *)&peer, &pl), 0,
                  "the new socket with the number was not connected");
    close(u.fd);
    close(a);
    weft_close(first);
    close(l);
    unlink(sa.sun_path);
    return NULL;
}

Test(conformance, a_unix_connect_whose_fd_is_closed_while_it_waits_is_ebadf, .timeout = 30)
{
    run_main(unix_backlog_close_main, NULL);
}

/* Reads that time out or are cancelled while parked lose no byte: everything the peer sent
 * is read afterwards, in order (on io_uring, bytes a receive armed for the given-up read
 * took are kept for the next read). */
struct trickle {
    int fd;
    size_t len;
};

static void *trickle_writer(void *arg)
{
    struct trickle *t = arg;
    unsigned char chunk[977];
    size_t sent = 0;
    while (sent < t->len) {
        size_t n = t->len - sent < sizeof chunk ? t->len - sent : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (unsigned char)((sent + i) * 7 + 3);
        cr_assert_eq(weft_write(t->fd, chunk, n, WEFT_FOREVER), (ssize_t)n);
        sent += n;
        weft_sleep(200 * WEFT_USEC);
    }
    return NULL;
}

static void *reader_one(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, WEFT_FOREVER);
}

static void *no_loss_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    /* A read cancelled while parked, then the data: all of it arrives at the next read.
     * (On this worker: io_uring's reads of a socket stay on the worker of the first; weft.h.) */
    for (int i = 0; i < 3; i++) {
        weft_task *t = spawn_pinned(reader_one, (void *)(intptr_t)p[1]);
        wait_parked(t);
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(join_result(t), WEFT_CANCELED);
    }
    char buf[8];
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_write(p[0], "hello", 5, WEFT_FOREVER), 5);
    read_exactly(p[1], buf, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);

    /* A trickle read with short deadlines: many time out, no byte is lost. */
    struct trickle tr = {p[0], 60000};
    weft_task *w;
    cr_assert_eq(weft_spawn(&w, trickle_writer, &tr, NULL), 0);
    unsigned char *got = malloc(tr.len);
    size_t have = 0;
    int timeouts = 0;
    while (have < tr.len) {
        ssize_t n = weft_read(p[1], got + have, tr.len - have, weft_deadline_in(50 * WEFT_USEC));
        if (n == -ETIMEDOUT) {
            timeouts++;
            continue;
        }
        cr_assert_gt(n, 0, "read: %s", weft_strerror((int)n));
        have += (size_t)n;
    }
    for (size_t i = 0; i < tr.len; i++)
        cr_assert_eq(got[i], (unsigned char)(i * 7 + 3), "byte %zu (after %d timeouts)", i,
                     timeouts);
    free(got);
    join_result(w);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(conformance, timed_out_and_cancelled_reads_lose_no_data, .timeout = 30)
{
    run_main(no_loss_main, NULL);
}

/* One socket read by a task of each worker in turn (Go's and Tokio's "hand a connection to
 * another task"): a read on worker k, then the peer's next bytes read from the main task.
 * weft.h: "Several tasks may use one fd in the same direction"; nothing ties an fd's reads
 * to one worker. */
static void *read_some(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, weft_deadline_in(5 * WEFT_SEC));
}

static void *handoff_main(void *arg)
{
    (void)arg;
    /* On io_uring a socket's reads belong to the worker of its first read (weft.h, "On
     * io_uring ..."): its armed receive holds the bytes there. */
    if (weft_worker_count() < 2 || strcmp(weft_backend(), "io_uring") == 0)
        return NULL;
    unsigned other = 1u - (unsigned)weft_worker_index();
    for (int round = 0; round < 4; round++) {
        int p[2];
        tcp_pair(p);
        cr_assert_eq(weft_write(p[0], "a", 1, WEFT_FOREVER), 1);
        weft_task *t;
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        cr_assert_eq(weft_spawn_on(other, &t, read_some, (void *)(intptr_t)p[1], &pin), 0);
        void *r1 = join_result(t);
        cr_assert_eq(r1, (void *)1, "round %d: the other worker's read gave %ld", round,
                     (long)(intptr_t)r1);
        cr_assert_eq(weft_write(p[0], "hello", 5, WEFT_FOREVER), 5);
        char buf[8];
        size_t got = 0;
        while (got < 5) {
            ssize_t n = weft_read(p[1], buf + got, 5 - got, weft_deadline_in(2 * WEFT_SEC));
            cr_assert_gt(n, 0, "round %d: read after %zu of 5 bytes: %s", round, got,
                         weft_strerror((int)n));
            got += (size_t)n;
        }
        cr_assert_eq(memcmp(buf, "hello", 5), 0);
        weft_close(p[0]);
        weft_close(p[1]);
    }
    return NULL;
}

/* On epoll nothing ties a socket's reads to one worker. (io_uring: see handoff_main.) */
Test(conformance, a_socket_read_on_one_worker_then_another_loses_nothing, .timeout = 30)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    run_main_cfg(&cfg, handoff_main, NULL);
}

/* An fd number closed through weft_close and reused by a new socket is a new fd on every
 * worker: a task of the other worker that waits on the new socket (the number's previous
 * socket was waited on there too) is woken by its data, and never sees the old one's EOF. */
static void *wait_then_read(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, weft_deadline_in(2 * WEFT_SEC));
}

static void *reuse_main(void *arg)
{
    (void)arg;
    if (weft_worker_count() < 2)
        return NULL;
    unsigned other = 1u - (unsigned)weft_worker_index();
    int first = -1;
    for (int round = 0; round < 4; round++) {
        int p[2];
        tcp_pair(p);
        if (round == 0)
            first = p[1];
        weft_task *t;
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        cr_assert_eq(weft_spawn_on(other, &t, wait_then_read, (void *)(intptr_t)p[1], &pin), 0);
        wait_parked_or_done(t);
        cr_assert_eq(weft_write(p[0], "z", 1, WEFT_FOREVER), 1);
        void *r = join_result(t);
        cr_assert_eq(r, (void *)1, "round %d (fd %d, first %d): the waiter got %ld", round, p[1],
                     first, (long)(intptr_t)r);
        /* The peer goes first, so the number's old socket saw an EOF on the other worker. */
        weft_close(p[0]);
        char c;
        cr_assert_eq(weft_read(p[1], &c, 1, weft_deadline_in(2 * WEFT_SEC)), 0);
        weft_close(p[1]);
    }
    return NULL;
}

/* weft_close forgets the fd on every worker that used it (io/fdshare.c) before it closes the
 * number: it used to forget it in the calling worker's table only, and another worker kept
 * its record (epoll: "watched", so the new socket was never registered and its waiter never
 * woke; io_uring: the old socket's held end of stream, a false EOF at once). */
Test(conformance, a_reused_fd_number_is_fresh_on_every_worker, .timeout = 30)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    run_main_cfg(&cfg, reuse_main, NULL);
}

/* libuv's tcp_close_while_connecting and Go's TestCloseUnblocksRead: weft_close of an fd
 * another task waits on (accept, read, a write parked on a full buffer, fd_wait) wakes it
 * with -EBADF, from every worker, with no hang. */
static void *accept_one(void *arg)
{
    return (void *)(intptr_t)weft_accept((int)(intptr_t)arg, NULL, NULL, WEFT_FOREVER);
}

static void *wait_readable(void *arg)
{
    return (void *)(intptr_t)weft_fd_wait((int)(intptr_t)arg, WEFT_READABLE, WEFT_FOREVER);
}

static void *write_lots(void *arg)
{
    static char big[4 << 20];
    return (void *)(intptr_t)weft_write((int)(intptr_t)arg, big, sizeof big, WEFT_FOREVER);
}

/* Closes, from the main task, an fd a task pinned to worker k waits on, for each kind of
 * wait; the join is bounded so that a waiter left parked fails the test instead of hanging
 * it (and is then cancelled). */
static void close_under_waiters(unsigned k)
{
    weft_fn fns[] = {accept_one, reader_one, wait_readable, write_lots};
    const char *names[] = {"accept", "read", "fd_wait", "write"};
    for (int i = 0; i < 4; i++) {
        int p[2] = {-1, -1}, fd;
        weft_addr srv;
        if (i == 0) {
            fd = listener(&srv);
        } else {
            tcp_pair(p);
            fd = p[1];
        }
        if (fns[i] == write_lots) {
            /* Small fixed buffers: with the kernel's autotuning, loopback once took all
             * 4 MiB, and the write finished (4194304) before the close it was to wait for. */
            int small = 4096;
            cr_assert_eq(setsockopt(p[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
            cr_assert_eq(setsockopt(p[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
        }
        weft_task *t;
        weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
        cr_assert_eq(weft_spawn_on(k, &t, fns[i], (void *)(intptr_t)fd, &pin), 0);
        wait_parked_or_done(t);
        cr_assert_eq(weft_close(fd), 0);
        void *r = (void *)1;
        int rc = weft_join(t, &r, weft_deadline_in(2 * WEFT_SEC));
        if (rc == -ETIMEDOUT) {
            weft_cancel(t);
            join_result(t);
        }
        cr_expect_eq(rc, 0, "%s on worker %u still parked after the close", names[i], k);
        cr_expect_eq((intptr_t)r, -EBADF, "%s on worker %u woke with %ld", names[i], k,
                     (long)(intptr_t)r);
        if (p[0] >= 0)
            weft_close(p[0]);
    }
}

/* An fd wait behind a parked reader of an empty pipe parks too, until the close: on
 * io_uring the reader's try at an armed receive (refused on a pipe) left the fd's receive
 * unarmed, which the wait took for "a read returns at once" and reported readable. */
static void *read_pipe(void *arg)
{
    char b[4];
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, b, sizeof b, WEFT_FOREVER);
}

static void *wait_pipe(void *arg)
{
    return (void *)(intptr_t)weft_fd_wait((int)(intptr_t)arg, WEFT_READABLE, WEFT_FOREVER);
}

static void *wait_behind_a_reader_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    weft_task *reader = spawn_pinned(read_pipe, (void *)(intptr_t)p[0]);
    wait_parked(reader);
    weft_task *waiter = spawn_pinned(wait_pipe, (void *)(intptr_t)p[0]);
    wait_parked(waiter);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq((intptr_t)join_result(waiter), -EBADF);
    cr_assert_eq((intptr_t)join_result(reader), -EBADF);
    weft_close(p[1]);
    return NULL;
}

Test(conformance, an_fd_wait_behind_a_parked_reader_waits, .timeout = 20)
{
    run_main(wait_behind_a_reader_main, NULL);
}

static void *close_same_worker_main(void *arg)
{
    (void)arg;
    close_under_waiters((unsigned)weft_worker_index());
    return NULL;
}

Test(conformance, close_wakes_every_kind_of_waiter_with_ebadf, .timeout = 20)
{
    run_main(close_same_worker_main, NULL);
}

static void *close_other_worker_main(void *arg)
{
    (void)arg;
    if (weft_worker_count() < 2)
        return NULL;
    close_under_waiters(1u - (unsigned)weft_worker_index());
    return NULL;
}

/* weft_close from one worker wakes the waiters another worker has on the fd (accept, read, a
 * write parked on a full buffer, fd_wait) with -EBADF: the close forgets the fd there first
 * (io/fdshare.c). It used to forget it in the calling worker's table and epoll set only. */
Test(conformance, close_from_another_worker_wakes_its_waiters_with_ebadf, .timeout = 30)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    run_main_cfg(&cfg, close_other_worker_main, NULL);
}

/* Go's TestTCPBig / libuv's tcp_writealot: 8 MiB each way at once over one connection, a
 * reader and a writer task at each end; every byte arrives in order. */
struct dir {
    int fd;
    size_t len;
    unsigned seed;
};

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131 + (i >> 13) + seed) & 0xff);
}

static void *big_writer(void *arg)
{
    struct dir *d = arg;
    unsigned char *buf = malloc(d->len);
    for (size_t i = 0; i < d->len; i++)
        buf[i] = pattern(i, d->seed);
    ssize_t n = weft_write(d->fd, buf, d->len, weft_deadline_in(10 * WEFT_SEC));
    free(buf);
    return (void *)(intptr_t)n;
}

static void *big_reader(void *arg)
{
    struct dir *d = arg;
    unsigned char *buf = malloc(64 * 1024);
    size_t have = 0;
    intptr_t bad = 0;
    while (have < d->len) {
        ssize_t n = weft_read(d->fd, buf, 64 * 1024, weft_deadline_in(10 * WEFT_SEC));
        if (n <= 0) {
            bad = n == 0 ? -1 : n;
            break;
        }
        for (ssize_t i = 0; i < n && !bad; i++)
            if (buf[i] != pattern(have + (size_t)i, d->seed))
                bad = -2;
        have += (size_t)n;
    }
    free(buf);
    return bad ? (void *)bad : (void *)(intptr_t)have;
}

static void *duplex_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    enum { LEN = 8 << 20 };
    struct dir ab = {p[0], LEN, 1}, ba = {p[1], LEN, 2};
    struct dir ra = {p[1], LEN, 1}, rb = {p[0], LEN, 2};
    weft_task *t[4];
    cr_assert_eq(weft_spawn(&t[0], big_writer, &ab, NULL), 0);
    cr_assert_eq(weft_spawn(&t[1], big_writer, &ba, NULL), 0);
    cr_assert_eq(weft_spawn(&t[2], big_reader, &ra, NULL), 0);
    cr_assert_eq(weft_spawn(&t[3], big_reader, &rb, NULL), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(join_result(t[i]), (void *)(intptr_t)LEN, "task %d", i);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(conformance, eight_mib_each_way_at_once, .timeout = 30)
{
    run_main(duplex_main, NULL);
}

/* libuv's tcp_ping_pong with many clients: 200 connections at once, each echoing 4 KiB
 * through a server task per connection. */
static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, weft_deadline_in(10 * WEFT_SEC));
        if (n <= 0 || weft_write(fd, buf, (size_t)n, weft_deadline_in(10 * WEFT_SEC)) != n)
            break;
    }
    weft_close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = weft_accept(lfd, NULL, NULL, WEFT_FOREVER);
        if (c < 0)
            break;
        weft_spawn_opts det = {.flags = WEFT_SPAWN_DETACHED};
        if (weft_spawn(NULL, echo_conn, (void *)(intptr_t)c, &det) != 0)
            weft_close(c);
    }
    return NULL;
}

static weft_addr echo_addr;

static void *echo_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = weft_dial(&echo_addr, weft_deadline_in(10 * WEFT_SEC));
    if (fd < 0)
        return (void *)(intptr_t)fd;
    char out[4096], in[4096];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(id + i);
    intptr_t r = 0;
    if (weft_write(fd, out, sizeof out, weft_deadline_in(10 * WEFT_SEC)) != (ssize_t)sizeof out)
        r = -1;
    size_t have = 0;
    while (!r && have < sizeof in) {
        ssize_t n = weft_read(fd, in + have, sizeof in - have, weft_deadline_in(10 * WEFT_SEC));
        if (n <= 0)
            r = -2;
        else
            have += (size_t)n;
    }
    if (!r && memcmp(in, out, sizeof in) != 0)
        r = -3;
    weft_close(fd);
    return (void *)r;
}

static void *many_main(void *arg)
{
    (void)arg;
    enum { N = 200 };
    int lfd = listener(&echo_addr);
    weft_task *acc;
    cr_assert_eq(weft_spawn(&acc, acceptor, (void *)(intptr_t)lfd, NULL), 0);
    weft_task *t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], echo_client, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), (void *)0, "client %d", i);
    weft_cancel(acc);
    join_result(acc);
    cr_assert_eq(weft_close(lfd), 0);
    return NULL;
}

Test(conformance, two_hundred_connections_echo_at_once, .timeout = 30)
{
    run_main(many_main, NULL);
}

/* Bad fds are -EBADF (or the documented -EINVAL), never a crash or a hang, and a number
 * closed through weft_close and reused by a new socket works as the new socket. */
static void *bad_fd_main(void *arg)
{
    (void)arg;
    char buf[4];
    int dead = dup(0);
    cr_assert_geq(dead, 0);
    close(dead); /* never seen by weft */
    int bad[] = {-1, INT_MIN, dead, INT_MAX, 1 << 24};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = bad[i];
        cr_assert_eq(weft_read(fd, buf, sizeof buf, 0), -EBADF, "read(%d)", fd);
        cr_assert_eq(weft_read(fd, buf, sizeof buf, WEFT_FOREVER), -EBADF, "read(%d)", fd);
        cr_assert_eq(weft_write(fd, "x", 1, WEFT_FOREVER), -EBADF, "write(%d)", fd);
        cr_assert_eq(weft_recv(fd, buf, sizeof buf, 0, WEFT_FOREVER), -EBADF, "recv(%d)", fd);
        cr_assert_eq(weft_send(fd, "x", 1, 0, WEFT_FOREVER), -EBADF, "send(%d)", fd);
        cr_assert_eq(weft_accept(fd, NULL, NULL, WEFT_FOREVER), -EBADF, "accept(%d)", fd);
        cr_assert_eq(weft_fd_wait(fd, WEFT_READABLE, WEFT_FOREVER), -EBADF, "fd_wait(%d)", fd);
        cr_assert_eq(weft_close(fd), -EBADF, "close(%d)", fd);
        cr_assert_eq(weft_fd_forget(fd), -EBADF, "forget(%d)", fd);
        cr_assert_eq(weft_shutdown(fd, SHUT_RDWR), -EBADF, "shutdown(%d)", fd);
        weft_addr a;
        weft_addr_ip(&a, "127.0.0.1", 9);
        cr_assert_eq(weft_connect(fd, (struct sockaddr *)&a.ss, a.len, 0), -EBADF, "connect(%d)",
                     fd);
    }
    weft_future *f = NULL;
    cr_assert_eq(weft_fd_future(&f, -1, WEFT_READABLE), -EINVAL);
    int p[2];
    tcp_pair(p);
    cr_assert_eq(weft_fd_wait(p[0], 0, 0), -EINVAL, "no events");
    cr_assert_eq(weft_fd_wait(p[0], 0x100, 0), -EINVAL, "unknown events");
    /* Use both ends, close them through weft, close again, then reuse the numbers. */
    cr_assert_eq(weft_write(p[0], "ab", 2, WEFT_FOREVER), 2);
    read_exactly(p[1], buf, 2);
    int old0 = p[0], old1 = p[1];
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    cr_assert_eq(weft_close(old0), -EBADF, "closed twice");
    cr_assert_eq(weft_read(old1, buf, 1, WEFT_FOREVER), -EBADF, "read of a closed fd");
    cr_assert_eq(weft_write(old0, "x", 1, WEFT_FOREVER), -EBADF, "write of a closed fd");
    /* A number weft used, forgotten, then closed by close(2): a second forget is -EBADF
     * (it returned 0: the table held a record for the number). */
    tcp_pair(p);
    cr_assert_eq(weft_write(p[0], "gh", 2, WEFT_FOREVER), 2);
    read_exactly(p[1], buf, 2);
    cr_assert_eq(weft_fd_forget(p[0]), 0);
    cr_assert_eq(close(p[0]), 0);
    cr_assert_eq(weft_fd_forget(p[0]), -EBADF, "forget of a closed fd");
    cr_assert_eq(weft_close(p[1]), 0);
    tcp_pair(p);
    cr_assert_eq(weft_write(p[0], "cd", 2, WEFT_FOREVER), 2);
    read_exactly(p[1], buf, 2);
    cr_assert_eq(memcmp(buf, "cd", 2), 0);
    cr_assert_eq(weft_write(p[1], "ef", 2, WEFT_FOREVER), 2);
    read_exactly(p[0], buf, 2);
    cr_assert_eq(memcmp(buf, "ef", 2), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(conformance, bad_fds_are_ebadf_and_reused_numbers_work, .timeout = 20)
{
    run_main(bad_fd_main, NULL);
}

/* ---- Time -------------------------------------------------------------------------------- */

/* Deadlines computed from any negative offset are in the past and never WEFT_FOREVER (-1),
 * even where now + ns would be exactly -1; a huge offset saturates in the future. */
static void *deadline_main(void *arg)
{
    (void)arg;
    int64_t now = weft_now();
    int64_t offs[] = {-1, -now - 1, -now, -now - 2, INT64_MIN, -WEFT_SEC};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        int64_t d = weft_deadline_in(offs[i]);
        cr_assert_neq(d, WEFT_FOREVER, "offset %ld gave WEFT_FOREVER", (long)offs[i]);
        cr_assert_eq(weft_sleep_until(d), 0, "offset %ld: a passed deadline", (long)offs[i]);
    }
    int64_t far = weft_deadline_in(INT64_MAX);
    cr_assert_neq(far, WEFT_FOREVER);
    cr_assert_gt(far, now);
    cr_assert_eq(weft_chan_recv(NULL, NULL, 0), -EINVAL);
    return NULL;
}

Test(conformance, deadlines_from_negative_offsets_are_never_forever)
{
    run_main(deadline_main, NULL);
}

/* A sleeping task on another worker, cancelled from this one: the sleep returns -ECANCELED
 * at once (its timer is stopped from the other worker), and a watch can only be deleted by
 * the worker that added it. */
static int timer_fired;

static void on_timer(weft_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)arg;
    if (events & WEFT_WATCH_TIMER)
        timer_fired++;
}

static void *del_watch(void *arg)
{
    return (void *)(intptr_t)weft_watch_del(arg);
}

static void *remote_timer_main(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < weft_worker_count(); k++) {
        weft_task *t;
        cr_assert_eq(weft_spawn_on(k, &t, park_forever, NULL, NULL), 0);
        wait_parked(t);
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(join_result(t), WEFT_CANCELED);
    }
    weft_watch *w;
    timer_fired = 0;
    cr_assert_eq(
        weft_watch_add(&w, -1, WEFT_WATCH_TIMER | WEFT_WATCH_PERSIST, WEFT_MSEC, on_timer, NULL),
        0);
    if (weft_worker_count() > 1 && weft_worker_index() == 0) {
        weft_task *t;
        cr_assert_eq(weft_spawn_on(1, &t, del_watch, w, NULL), 0);
        cr_assert_eq(join_result(t), (void *)(intptr_t)-EPERM, "another worker's watch");
    }
    while (timer_fired < 3)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
    cr_assert_eq(weft_watch_del(w), 0);
    int seen = timer_fired;
    cr_assert_eq(weft_sleep(5 * WEFT_MSEC), 0);
    cr_assert_eq(timer_fired, seen, "no callback after the delete");
    cr_assert_eq(weft_watch_add(&w, -1, WEFT_WATCH_TIMER, 0, on_timer, NULL), -EINVAL);
    cr_assert_eq(
        weft_watch_add(&w, -1, WEFT_WATCH_TIMER | WEFT_WATCH_PERSIST, WEFT_MSEC, NULL, NULL),
        -EINVAL);
    cr_assert_eq(
        weft_watch_add(NULL, -1, WEFT_WATCH_TIMER | WEFT_WATCH_PERSIST, WEFT_MSEC, on_timer, NULL),
        -EINVAL, "PERSIST without out");
    return NULL;
}

Test(conformance, timers_stopped_from_another_worker, .timeout = 20)
{
    run_main(remote_timer_main, NULL);
}
