/* Behaviours from Boost.Fiber's test suite (libs/fiber/test: test_fiber, test_mutex,
 * test_condition_variable, test_buffered_channel, test_unbuffered_channel, test_future,
 * test_promise, test_shared_future, test_packaged_task, test_async, test_fss) and Seastar's
 * unit tests (tests/unit/futures_test.cc, semaphore_test.cc, smp_test.cc), where the earlier
 * ports (test_ported.c, test_ported2.c, test_ported_coro.c, test_ported_sched.c,
 * test_ported_sync.c) leave them out, re-expressed against what weft.h documents:
 * boost::fibers::fiber and this_fiber for weft_spawn/join/detach/yield/sleep; timed_mutex
 * for weft_mutex_lock with a deadline; condition_variable's wait_for/wait_until with a
 * predicate for a weft_cond_wait loop; buffered_channel and unbuffered_channel for weft_chan
 * of capacity > 0 and 0 (push/pop/try_/_wait_for/_wait_until/close); promise and future
 * for weft_promise and weft_await; shared_future for weft_shared; packaged_task and async
 * for weft_submit_to; fiber_specific_ptr for weft_local_set/get; Seastar's then /
 * handle_exception / when_all / when_any / with_timeout for weft_future_map, and_then,
 * or_else, join, first and timeout, its background continuations for stackless tasks
 * (weft_spawn_future), repeat for a chain of and_then, and semaphore_test's bulk signal,
 * with_semaphore and timeouts for weft_sem.
 *
 * No counterpart in weft (not ported): Boost's barrier (test_barrier), recursive_mutex and
 * recursive_timed_mutex (weft's mutex refuses a second lock with -EDEADLK, checked below),
 * launch::dispatch versus launch::post and the exact interleavings of test_wm_1/wm_2 (weft's
 * order across workers is not Boost's single-thread round robin), fiber properties and
 * custom schedulers, channel range-for and value_pop's exceptions (the loops below are the C
 * form), promise and packaged_task move/swap/reset (C has no move), broken_promise
 * (a weft_promise released by its resolver without a value is just never settled: the
 * awaiter's deadline ends the wait, checked below); Seastar's do_with and repeat's
 * stop_iteration (C scopes and loops), broken semaphores and semaphore_units (weft_sem
 * acquires one unit at a time and cannot be broken), futurize and exception types, gates
 * and abort sources (ported in test_ported_coro.c), and the reactor's own tests.
 *
 * Each test names its source. Where weft.h is silent the test asserts what the peer does.
 * No pass or fail depends on timing: deadlines are bounds a hang would reach, or short on
 * purpose where a wait is meant to be given up. Every test holds on one and two workers,
 * sharded and stealing, on epoll and io_uring (the environment picks: WEFT_WORKERS,
 * WEFT_MODE, WEFT_BACKEND). Tasks on other workers record what they saw; the main task
 * asserts. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "task_helpers.h"

#define SOON     (10 * WEFT_SEC) /* a deadline only a hang reaches */
#define SHORT    (5 * WEFT_MSEC) /* a wait meant to be given up */
#define LONG_AGO ((int64_t)0)    /* an absolute deadline that has always passed */
#define RES(r)   ((void *)(intptr_t)(r))

/* ---- Helpers ---------------------------------------------------------------------------- */

static int64_t soon(void)
{
    return weft_deadline_in(SOON);
}

/* The worker other than the main task's (worker 0) when there are two or more, else 0. */
static unsigned other_worker(void)
{
    return weft_worker_count() > 1 ? 1u : 0u;
}

/* Spawns fn(arg) pinned to `worker`, so that where it runs is known in both modes. */
static weft_task *spawn_at(unsigned worker, weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    cr_assert_eq(weft_spawn_on(worker, &t, fn, arg, &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                 0);
    return t;
}

/* Spawns fn(arg) unpinned (it may move in stealing mode with WEFT_MOVE_STARTED). */
static weft_task *spawn_free(weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    cr_assert_eq(weft_spawn(&t, fn, arg, NULL), 0);
    return t;
}

static int join_int(weft_task *t)
{
    return (int)(intptr_t)join_result(t);
}

static weft_chan *chan_new(size_t elem, size_t cap)
{
    weft_chan *c = NULL;
    cr_assert_eq(weft_chan_create(&c, elem, cap), 0);
    return c;
}

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/* The stall detector off: a loaded machine would only add reports to the log. */
static void *run_quiet(weft_fn fn, void *arg)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stall_ms = -1;
    return run_main_cfg(&cfg, fn, arg);
}

/* A leaf future the tests drive by hand: it completes at the first poll after `go` is set,
 * and records its polls (how many, how many with an empty waker, whether the latest had
 * one) and its drop (a counter, and whether its last poll before the drop was empty). */
struct probe {
    weft_future base;
    atomic_int go;
    int status;
    void *value;
    int npolls, nempty, last_empty;
    weft_waker waker;
    atomic_int *drops;       /* incremented by the drop (may be NULL) */
    int *last_empty_at_drop; /* set by the drop (may be NULL) */
};

static int probe_poll(weft_future *self, weft_context *cx)
{
    struct probe *p = (struct probe *)self;
    p->npolls++;
    p->last_empty = cx->waker.task == NULL;
    if (p->last_empty)
        p->nempty++;
    else
        p->waker = cx->waker;
    if (atomic_load(&p->go)) {
        weft_future_complete(self, p->status, p->value);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void probe_drop(weft_future *self)
{
    struct probe *p = (struct probe *)self;
    if (p->drops)
        atomic_fetch_add(p->drops, 1);
    if (p->last_empty_at_drop)
        *p->last_empty_at_drop = p->npolls ? p->last_empty : -1;
    free(p);
}

static const weft_future_ops probe_ops = {probe_poll, probe_drop};

static struct probe *probe_new(int status, void *value, atomic_int *drops)
{
    struct probe *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    weft_future_init(&p->base, &probe_ops);
    p->status = status;
    p->value = value;
    p->drops = drops;
    return p;
}

/* Polls f once by hand with no waker. */
static int poll_empty(weft_future *f)
{
    weft_context cx = {{NULL, 0}};
    return weft_future_poll(f, &cx);
}

/* ==== Boost.Fiber test_fiber ============================================================== */

struct fib {
    weft_task *inner;
    int join_rc;
    void *inner_result;
    uint64_t id, inner_id;
};

static void *return_arg(void *arg)
{
    return arg;
}

static void *joins_its_own_child(void *arg)
{
    struct fib *f = arg;
    f->id = weft_task_id(weft_self());
    weft_task *c;
    if (weft_spawn(&c, return_arg, (void *)77, NULL) != 0)
        return RES(-1);
    f->inner_id = weft_task_id(c);
    f->join_rc = weft_join(c, &f->inner_result, soon());
    return RES(weft_join(weft_self(), NULL, soon())); /* joining itself */
}

static void *wait_event(void *arg)
{
    return RES(weft_event_wait(arg, soon()));
}

static void *detached_body(void *arg)
{
    weft_event *done = arg;
    weft_yield();
    weft_event_set(done);
    return NULL;
}

struct sleep_rec {
    int64_t deadline, woke;
    int rc;
};

static void *sleeps_until(void *arg)
{
    struct sleep_rec *s = arg;
    s->rc = weft_sleep_until(s->deadline);
    s->woke = mono_now();
    return NULL;
}

/* test_id, test_join_fn, test_join_in_fiber, test_detach, test_yield, test_sleep_for,
 * test_sleep_until: ids are unique and non-zero (the main task is 1, NULL and stale handles
 * 0); a fiber joins its own child (on any worker) and gets its result; joining itself is
 * -EDEADLK; a finished fiber is joined at once, even with a passed deadline; a detached fiber
 * runs to its end and its handle no longer joins; a sleep never returns 0 before its
 * deadline (checked against the real clock, which weft_now never runs ahead of). */
static void *fiber_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_task_id(weft_self()), 1u, "the main task is 1");
    cr_assert_eq(weft_task_id(NULL), 0u);

    struct fib f[2] = {{0}};
    weft_task *t[2] = {spawn_at(0, joins_its_own_child, &f[0]),
                       spawn_at(other_worker(), joins_its_own_child, &f[1])};
    uint64_t tid0 = weft_task_id(t[0]), tid1 = weft_task_id(t[1]);
    cr_assert(tid0 > 1 && tid1 > 1 && tid0 != tid1);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(join_int(t[i]), -EDEADLK, "joining itself");
        cr_assert_eq(f[i].join_rc, 0);
        cr_assert_eq(f[i].inner_result, (void *)77);
        cr_assert(f[i].inner_id > 1 && f[i].inner_id != f[i].id);
    }
    cr_assert(f[0].id == tid0 && f[1].id == tid1, "weft_self's id is the handle's");
    cr_assert_neq(f[0].inner_id, f[1].inner_id, "ids are unique across workers");

    /* A finished fiber is joined with a passed deadline. */
    weft_task *done = spawn_at(other_worker(), return_arg, (void *)5);
    while (weft_task_status(done) != WEFT_TASK_FINISHED)
        cr_assert_eq(weft_yield(), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(done, &r, LONG_AGO), 0);
    cr_assert_eq(r, (void *)5);

    /* Detach: the fiber runs on to its end (see the next test for a join of its handle). */
    static weft_event gate = WEFT_EVENT_INIT, finished = WEFT_EVENT_INIT;
    weft_task *d = spawn_at(other_worker(), wait_event, &gate);
    wait_parked(d);
    cr_assert_eq(weft_detach(d), 0);
    cr_assert_eq(weft_event_set(&gate), 0);
    cr_assert_eq(weft_spawn(NULL, detached_body, &finished,
                            &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}),
                 0);
    cr_assert_eq(weft_event_wait(&finished, soon()), 0, "the detached fiber ran to its end");

    /* sleep_for / sleep_until: never back before the deadline. */
    struct sleep_rec s[2] = {{.deadline = weft_deadline_in(2 * WEFT_MSEC)},
                             {.deadline = weft_deadline_in(3 * WEFT_MSEC)}};
    weft_task *sl[2] = {spawn_at(0, sleeps_until, &s[0]),
                        spawn_at(other_worker(), sleeps_until, &s[1])};
    int64_t dl = weft_deadline_in(WEFT_MSEC);
    cr_assert_eq(weft_sleep_until(dl), 0);
    cr_assert_geq(mono_now(), dl, "weft_sleep_until returned early");
    for (int i = 0; i < 2; i++) {
        cr_assert_null(join_result(sl[i]));
        cr_assert_eq(s[i].rc, 0);
        cr_assert_geq(s[i].woke, s[i].deadline, "sleep %d returned before its deadline", i);
    }
    return NULL;
}

Test(ported_fiber, boost_fiber_ids_joins_detach_and_sleeps, .timeout = 30)
{
    run_quiet(fiber_main, NULL);
}

/* test_detach, then a join and a second detach of the detached handle: weft.h lists -EINVAL
 * for joining a detached task and for detaching one again. The fiber is kept parked (on an
 * event) while the join is tried, so its record is alive and not recycled; the join has a
 * passed deadline, so that it cannot wait.
 * For a task of another worker this once went unrefused: the join returned -ETIMEDOUT (and
 * with a deadline to wait, took the result of a record the detach reaps), and a second
 * detach returned 0 (a message nobody answered). Now the record's WEFT__ASKED_DETACH bit,
 * set by the first detach from any thread, refuses both at once, and the other worker refuses a
 * join whose message comes after the detach's (src/task_api.c: detach_remote, msg_join). */
static weft_event detached_gates[2] = {WEFT_EVENT_INIT, WEFT_EVENT_INIT};

static void *detached_join_main(void *arg)
{
    (void)arg;
    int rc[2], rd[2];
    for (int k = 0; k < 2; k++) {
        weft_event *gate = &detached_gates[k];
        weft_task *d = spawn_at(k ? other_worker() : 0, wait_event, gate);
        wait_parked(d);
        cr_assert_eq(weft_detach(d), 0);
        /* Let a detach sent by message arrive first (weft.h: the detach is delivered to the
         * other worker by message); the fiber is still parked. */
        for (int i = 0; i < 10; i++)
            cr_assert_eq(weft_yield(), 0);
        rc[k] = weft_join(d, NULL, LONG_AGO);
        rd[k] = weft_detach(d);
        cr_assert_eq(weft_event_set(gate), 0);
    }
    /* Every task has finished and gone before any assertion below can end the test. */
    cr_assert_eq(weft_sleep(2 * WEFT_MSEC), 0);
    cr_assert_eq(rc[0], -EINVAL, "same worker: got %s", weft_errname(rc[0]));
    cr_assert_eq(rd[0], -EINVAL, "same worker, detached twice: got %s", weft_errname(rd[0]));
    cr_assert_eq(rc[1], -EINVAL, "a detached task of another worker: join got %s",
                 weft_errname(rc[1]));
    cr_assert_eq(rd[1], -EINVAL, "a detached task of another worker: detach again got %s",
                 weft_errname(rd[1]));
    return NULL;
}

Test(ported_fiber, boost_fiber_join_of_a_detached_handle_is_refused, .timeout = 30)
{
    run_quiet(detached_join_main, NULL);
}

/* ==== Boost.Fiber test_fss: fiber_specific_ptr as weft_local_set/get ===================== */

static atomic_int fss_instances, fss_total, fss_bad;
static const char fss_key = 0;

static void fss_value_free(void *v)
{
    atomic_fetch_sub(&fss_instances, 1);
    free(v);
}

/* fss_fiber: each fiber's own counter, counted 0..999 across yields (and, for the unpinned
 * ones in stealing mode with started tasks moving, across workers). */
static void *fss_fiber(void *arg)
{
    (void)arg;
    int *v = calloc(1, sizeof *v);
    atomic_fetch_add(&fss_instances, 1);
    atomic_fetch_add(&fss_total, 1);
    if (weft_local_set(&fss_key, v, fss_value_free) != 0)
        return RES(-1);
    for (int i = 0; i < 1000; i++) {
        int *n = weft_local_get(&fss_key);
        if (!n || *n != i)
            atomic_fetch_add(&fss_bad, 1);
        else
            ++*n;
        if (i % 16 == 0 && weft_yield() != 0)
            return RES(-2);
    }
    return NULL;
}

static void *fss_main(void *arg)
{
    (void)arg;
    atomic_store(&fss_instances, 0);
    atomic_store(&fss_total, 0);
    atomic_store(&fss_bad, 0);
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = i % 3 == 0 ? spawn_at(other_worker(), fss_fiber, NULL) : spawn_free(fss_fiber, NULL);
    for (int i = 0; i < 6; i++)
        cr_assert_null(join_result(t[i]));
    cr_assert_eq(atomic_load(&fss_bad), 0, "a fiber saw another's value");
    cr_assert_eq(atomic_load(&fss_instances), 0, "every value destroyed with its fiber");
    cr_assert_eq(atomic_load(&fss_total), 6);
    cr_assert_null(weft_local_get(&fss_key), "the main task has none");
    return NULL;
}

Test(ported_fiber, boost_fss_values_follow_their_fiber_across_yields, .timeout = 30)
{
    run_quiet(fss_main, NULL);
}

/* test_fss_with_custom_cleanup, test_fss_does_no_cleanup_after_release,
 * test_fss_does_no_cleanup_with_null_cleanup_function,
 * test_fss_does_not_call_cleanup_after_ptr_destroyed, test_fss_at_the_same_adress: the
 * custom cleanup runs when the fiber ends; "release" (the same value set again with no
 * destructor, then cleared) runs none; a value with no destructor is left alone; setting the
 * same value again runs nothing; a key at a reused stack address is the same key. And the
 * order weft.h gives: defers and local destructors, then the spawn's cleanup, then the join
 * returns. A local's destructor that sets another local or registers a defer at the end of
 * the fiber: those run too, once (what a thread_specific_ptr cleanup that touches another
 * one expects). */
struct dummy {
    atomic_int *freed;
};

static void dummy_free(void *p)
{
    if (!p)
        return; /* weft.h does not say whether a NULL value's destructor runs: harmless */
    struct dummy *d = p;
    atomic_fetch_add(d->freed, 1);
    free(d);
}

static struct dummy *dummy_new(atomic_int *freed)
{
    struct dummy *d = malloc(sizeof *d);
    d->freed = freed;
    return d;
}

struct fss_rec {
    atomic_int freed_custom, freed_released, freed_nodtor, freed_same, freed_loop;
    atomic_int late_local_freed, late_defer_ran;
    atomic_int defer_ran, local_freed, cleanup_saw_both, cleanup_ran;
    struct dummy *released, *nodtor;
};

static const char k_custom = 0, k_released = 0, k_nodtor = 0, k_same = 0, k_hook = 0, k_late = 0;

static void late_defer(void *arg)
{
    atomic_fetch_add(&((struct fss_rec *)arg)->late_defer_ran, 1);
}

/* A destructor run at the fiber's end that sets another local and registers a defer. */
static void hook_dtor(void *arg)
{
    struct fss_rec *r = arg;
    atomic_fetch_add(&r->local_freed, 1);
    weft_local_set(&k_late, dummy_new(&r->late_local_freed), dummy_free);
    weft_defer(late_defer, r);
}

static void order_defer(void *arg)
{
    struct fss_rec *r = arg;
    /* Defers run before the locals' destructors (they may still read them). */
    if (weft_local_get(&k_hook) == r)
        atomic_fetch_add(&r->defer_ran, 1);
}

static void order_cleanup(void *arg)
{
    struct fss_rec *r = arg;
    if (atomic_load(&r->defer_ran) == 1 && atomic_load(&r->local_freed) == 1)
        atomic_store(&r->cleanup_saw_both, 1);
    atomic_fetch_add(&r->cleanup_ran, 1);
}

static void *fss_cleanup_fiber(void *arg)
{
    struct fss_rec *r = arg;
    weft_local_set(&k_custom, dummy_new(&r->freed_custom), dummy_free);
    /* release(): the same value again without a destructor, then cleared. */
    r->released = dummy_new(&r->freed_released);
    weft_local_set(&k_released, r->released, dummy_free);
    weft_local_set(&k_released, r->released, NULL);
    weft_local_set(&k_released, NULL, NULL);
    /* A null cleanup function: the value is the caller's to free. */
    r->nodtor = dummy_new(&r->freed_nodtor);
    weft_local_set(&k_nodtor, r->nodtor, NULL);
    /* The same value set twice runs nothing; replaced by another, the first goes. */
    struct dummy *same = dummy_new(&r->freed_same);
    weft_local_set(&k_same, same, dummy_free);
    weft_local_set(&k_same, same, dummy_free);
    if (atomic_load(&r->freed_same) != 0)
        return RES(-1);
    weft_local_set(&k_same, dummy_new(&r->freed_same), dummy_free);
    if (atomic_load(&r->freed_same) != 1)
        return RES(-2);
    /* A key at a reused stack address: the second iteration replaces the first's value. */
    char key_slot; /* one stack address, used as the key twice */
    for (int i = 0; i < 2; i++) {
        weft_local_set(&key_slot, dummy_new(&r->freed_loop), dummy_free);
        weft_yield();
    }
    if (atomic_load(&r->freed_loop) != 1)
        return RES(-3);
    weft_local_set(&k_hook, r, hook_dtor);
    weft_defer(order_defer, r);
    if (atomic_load(&r->freed_custom) != 0 || atomic_load(&r->freed_released) != 0)
        return RES(-4);
    return NULL;
}

static void *fss_cleanup_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2; k++) {
        struct fss_rec *r = calloc(1, sizeof *r);
        weft_task *t;
        weft_spawn_opts o = {.flags = WEFT_SPAWN_PINNED, .cleanup = order_cleanup};
        cr_assert_eq(weft_spawn_on(k ? other_worker() : 0, &t, fss_cleanup_fiber, r, &o), 0);
        cr_assert_null(join_result(t), "pass %d", k);
        cr_assert_eq(atomic_load(&r->freed_custom), 1, "the custom cleanup ran once");
        cr_assert_eq(atomic_load(&r->freed_released), 0, "no cleanup after release");
        cr_assert_eq(atomic_load(&r->freed_nodtor), 0, "no cleanup without a function");
        cr_assert_eq(atomic_load(&r->freed_same), 2);
        cr_assert_eq(atomic_load(&r->freed_loop), 2);
        cr_assert_eq(atomic_load(&r->cleanup_ran), 1);
        cr_assert_eq(atomic_load(&r->cleanup_saw_both), 1,
                     "the spawn cleanup runs after the defers and the local destructors");
        cr_assert_eq(atomic_load(&r->late_local_freed), 1,
                     "a local set by a destructor at the end is destroyed too");
        cr_assert_eq(atomic_load(&r->late_defer_ran), 1,
                     "a defer registered by a local's destructor at the end runs once");
        free(r->released);
        free(r->nodtor);
        free(r);
    }
    return NULL;
}

Test(ported_fiber, boost_fss_cleanup_release_null_and_order, .timeout = 30)
{
    run_quiet(fss_cleanup_main, NULL);
}

/* The same destructor hook, with no spawn cleanup: the fiber's end then has nothing after the
 * locals' destructors that would look at the list again. */
static atomic_int bare_late_local, bare_late_defer, bare_hook_ran;

static void bare_late_defer_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&bare_late_defer, 1);
}

static void bare_hook(void *arg)
{
    (void)arg;
    atomic_fetch_add(&bare_hook_ran, 1);
    weft_local_set(&k_late, dummy_new(&bare_late_local), dummy_free);
    weft_defer(bare_late_defer_fn, NULL);
}

static void *bare_hook_fiber(void *arg)
{
    (void)arg;
    weft_local_set(&k_hook, (void *)1, bare_hook);
    return NULL;
}

static void *fss_bare_main(void *arg)
{
    (void)arg;
    atomic_store(&bare_late_local, 0);
    atomic_store(&bare_late_defer, 0);
    atomic_store(&bare_hook_ran, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_null(join_result(spawn_at(i % 2 ? other_worker() : 0, bare_hook_fiber, NULL)));
    cr_assert_eq(atomic_load(&bare_hook_ran), 4);
    cr_assert_eq(atomic_load(&bare_late_local), 4, "locals set by a destructor are destroyed");
    /* A defer registered from a task-local destructor during the task's finish once never
     * ran when the task had no spawn cleanup: the finish now makes further passes
     * (src/task.c, weft__task_finish_handlers). */
    cr_assert_eq(atomic_load(&bare_late_defer), 4,
                 "a defer registered by a local's destructor at the end runs once (ran %d of 4)",
                 atomic_load(&bare_late_defer));
    return NULL;
}

Test(ported_fiber, boost_fss_destructor_registers_a_defer_without_a_spawn_cleanup, .timeout = 30)
{
    run_quiet(fss_bare_main, NULL);
}

/* ==== Boost.Fiber test_mutex: timed_mutex; recursive_mutex has no counterpart ============= */

struct holder {
    weft_mutex *m;
    weft_event release;
    atomic_int locked;
};

static void *hold_mutex(void *arg)
{
    struct holder *h = arg;
    int r = weft_mutex_lock(h->m, soon());
    if (r != 0)
        return RES(r);
    atomic_store(&h->locked, 1);
    r = weft_event_wait(&h->release, soon());
    int u = weft_mutex_unlock(h->m);
    return RES(r ? r : u);
}

/* do_test_timed_mutex: try_lock, try_lock_for and try_lock_until on a mutex another fiber
 * holds fail (-EBUSY, -ETIMEDOUT) and leave it held by that fiber; once it is unlocked, a
 * lock with a passed deadline takes it at once (a passed deadline only makes the call
 * non-blocking). do_test_recursive_mutex: weft's mutex is not recursive, a second lock is
 * -EDEADLK and the first hold stays. */
static void *timed_mutex_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    for (int k = 0; k < 2; k++) {
        struct holder h = {.m = &m, .release = WEFT_EVENT_INIT};
        weft_task *t = spawn_at(k ? other_worker() : 0, hold_mutex, &h);
        while (!atomic_load(&h.locked))
            cr_assert_eq(weft_yield(), 0);
        cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY);
        cr_assert_eq(weft_mutex_lock(&m, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(weft_mutex_lock(&m, LONG_AGO), -ETIMEDOUT);
        cr_assert_eq(weft_mutex_lock(&m, weft_deadline_in(-WEFT_SEC)), -ETIMEDOUT);
        cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "not the holder");
        cr_assert_eq(weft_event_set(&h.release), 0);
        cr_assert_eq(join_int(t), 0);
        cr_assert_eq(weft_mutex_lock(&m, LONG_AGO), 0, "free: a passed deadline takes it");
        cr_assert_eq(weft_mutex_lock(&m, soon()), -EDEADLK, "not recursive");
        cr_assert_eq(weft_mutex_lock(&m, LONG_AGO), -EDEADLK);
        cr_assert_eq(weft_mutex_unlock(&m), 0, "the first hold stayed");
        cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    }
    return NULL;
}

Test(ported_fiber, boost_timed_mutex_and_no_recursion, .timeout = 30)
{
    run_quiet(timed_mutex_main, NULL);
}

/* ==== Boost.Fiber test_condition_variable ================================================ */

struct cv {
    weft_mutex m;
    weft_cond c;
    int flag;
    atomic_int woken;
};

/* condition_variable::wait_until(lock, deadline, pred), in C: true when pred held, false at
 * the deadline; the mutex is held on return either way. */
static int wait_until_pred(struct cv *s, int64_t deadline, int *rc)
{
    while (!s->flag) {
        int r = weft_cond_wait(&s->c, &s->m, deadline);
        if (r == -ETIMEDOUT)
            return s->flag;
        if (r != 0) {
            *rc = r;
            return s->flag;
        }
    }
    return 1;
}

static void *pred_waiter(void *arg)
{
    struct cv *s = arg;
    int rc = 0;
    if (weft_mutex_lock(&s->m, soon()) != 0)
        return RES(-100);
    int got = wait_until_pred(s, soon(), &rc);
    int u = weft_mutex_unlock(&s->m);
    atomic_fetch_add(&s->woken, 1);
    return RES(rc ? rc : u ? -101 : got ? 1 : 0);
}

static void *plain_waiter(void *arg)
{
    struct cv *s = arg;
    if (weft_mutex_lock(&s->m, soon()) != 0)
        return RES(-100);
    int r = weft_cond_wait(&s->c, &s->m, soon());
    int u = weft_mutex_unlock(&s->m);
    atomic_fetch_add(&s->woken, 1);
    return RES(r ? r : u);
}

/* test_condition_wait_for_pred, test_condition_wait_until_pred, test_condition_wait_for,
 * test_one_waiter_notify_one, test_two_waiter_notify_one, test_two_waiter_notify_all:
 * a predicate wait with no notifier ends at its deadline with the predicate false and the
 * mutex held; with a notifier on either worker it ends true; notify_one wakes the longest
 * waiter only (the other stays parked) and says 1, with nobody waiting 0; notify_all wakes
 * and counts every waiter. */
static void *cond_main(void *arg)
{
    (void)arg;
    struct cv s = {.m = WEFT_MUTEX_INIT, .c = WEFT_COND_INIT};
    int rc = 0;
    cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
    int64_t dl = weft_deadline_in(SHORT);
    cr_assert_eq(wait_until_pred(&s, dl, &rc), 0, "nobody set it");
    cr_assert_eq(rc, 0);
    cr_assert_geq(mono_now(), dl, "the deadline passed");
    cr_assert_eq(weft_mutex_unlock(&s.m), 0, "held on return");
    cr_assert_eq(weft_cond_signal(&s.c), 0, "nobody waits");
    cr_assert_eq(weft_cond_broadcast(&s.c), 0);

    for (int k = 0; k < 2; k++) {
        s.flag = 0;
        weft_task *w = spawn_at(k ? other_worker() : 0, pred_waiter, &s);
        wait_parked(w);
        /* A signal without the predicate: the waiter waits on. */
        cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
        cr_assert_eq(weft_cond_signal(&s.c), 1);
        cr_assert_eq(weft_mutex_unlock(&s.m), 0);
        wait_parked(w);
        cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
        s.flag = 1;
        /* 1 when it is back in the wait, 0 when it is still on its way there (it then sees
         * the flag without waiting): either is right. */
        cr_assert_geq(weft_cond_signal(&s.c), 0);
        cr_assert_eq(weft_mutex_unlock(&s.m), 0);
        cr_assert_eq(join_int(w), 1, "the predicate held (pass %d)", k);
    }

    /* notify_one with two waiters: the first parked wakes, the second stays. */
    atomic_store(&s.woken, 0);
    weft_task *a = spawn_at(other_worker(), plain_waiter, &s);
    wait_parked(a);
    weft_task *b = spawn_at(0, plain_waiter, &s);
    wait_parked(b);
    cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
    cr_assert_eq(weft_cond_signal(&s.c), 1);
    cr_assert_eq(weft_mutex_unlock(&s.m), 0);
    cr_assert_eq(join_int(a), 0);
    cr_assert_eq(atomic_load(&s.woken), 1);
    cr_assert_eq(weft_task_status(b), WEFT_TASK_PARKED, "the second waiter still waits");
    cr_assert_eq(weft_cond_broadcast(&s.c), 1);
    cr_assert_eq(join_int(b), 0);

    /* notify_all with four waiters on both workers. */
    weft_task *w4[4];
    for (int i = 0; i < 4; i++) {
        w4[i] = spawn_at(i % 2 ? other_worker() : 0, plain_waiter, &s);
        wait_parked(w4[i]);
    }
    cr_assert_eq(weft_mutex_lock(&s.m, soon()), 0);
    cr_assert_eq(weft_cond_broadcast(&s.c), 4);
    cr_assert_eq(weft_cond_signal(&s.c), 0, "all woken already");
    cr_assert_eq(weft_mutex_unlock(&s.m), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(join_int(w4[i]), 0);
    cr_assert_eq(atomic_load(&s.woken), 6);
    return NULL;
}

Test(ported_fiber, boost_condition_predicate_waits_and_notify_counts, .timeout = 30)
{
    run_quiet(cond_main, NULL);
}

/* ==== Boost.Fiber test_unbuffered_channel / test_buffered_channel ======================= */

static void *send_one(void *arg)
{
    long v = 1;
    return RES(weft_chan_send(arg, &v, soon()));
}

static void *recv_one(void *arg)
{
    long v;
    return RES(weft_chan_recv(arg, &v, soon()));
}

struct range {
    weft_chan *c;
    long got[16];
    int n, rc;
};

static const long fib_values[] = {1, 1, 2, 3, 5, 8, 12};

static void *range_producer(void *arg)
{
    weft_chan *c = arg;
    for (size_t i = 0; i < sizeof fib_values / sizeof fib_values[0]; i++) {
        int r = weft_chan_send(c, &fib_values[i], soon());
        if (r != 0)
            return RES(r);
    }
    return RES(weft_chan_close(c));
}

/* "for (int v : chan)": receive until the channel is closed and drained. Optionally yields
 * between receives (issue 268's consumer). */
static void *range_consumer(void *arg)
{
    struct range *r = arg;
    long v;
    while ((r->rc = weft_chan_recv(r->c, &v, soon())) == 0) {
        if (r->n < 16)
            r->got[r->n] = v;
        r->n++;
        weft_yield();
    }
    return NULL;
}

static void *send_value(void *arg)
{
    weft_chan *c = ((void **)arg)[0];
    long v = (long)(intptr_t)((void **)arg)[1];
    return RES(weft_chan_send(c, &v, soon()));
}

/* Unbuffered: test_push_closed, test_push_wait_for_closed, test_push_wait_for_timeout,
 * test_pop_closed, test_pop_wait_for_timeout, test_pop_wait_until_closed, test_issue_181
 * (a parked push ends with closed when the channel closes), test_rangefor, test_issue_268
 * (a consumer that yields between pops while two producers push). A push that timed out is
 * withdrawn: no later pop takes its value. A closed channel answers closed whatever the
 * deadline, even one that has passed, and to the try_ calls too. */
static void *unbuffered_main(void *arg)
{
    (void)arg;
    weft_chan *c = chan_new(sizeof(long), 0);
    long v = 5;
    cr_assert_eq(weft_chan_send(c, &v, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_send(c, &v, LONG_AGO), -ETIMEDOUT);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN, "the timed-out push was withdrawn");
    cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_len(c), 0u);

    /* issue 181: parked pushes and pops on either worker end with closed. */
    weft_task *s0 = spawn_at(0, send_one, c), *s1 = spawn_at(other_worker(), send_one, c);
    wait_parked(s0);
    wait_parked(s1);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(join_int(s0), -EPIPE);
    cr_assert_eq(join_int(s1), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EPIPE, "nothing of theirs is left behind");
    cr_assert_eq(weft_chan_send(c, &v, LONG_AGO), -EPIPE, "closed wins over the deadline");
    cr_assert_eq(weft_chan_send(c, &v, soon()), -EPIPE);
    cr_assert_eq(weft_chan_try_send(c, &v), -EPIPE);
    cr_assert_eq(weft_chan_recv(c, &v, LONG_AGO), -EPIPE);
    cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(-WEFT_SEC)), -EPIPE);
    weft_chan_release(c);

    c = chan_new(sizeof(long), 0);
    weft_task *r0 = spawn_at(other_worker(), recv_one, c), *r1 = spawn_at(0, recv_one, c);
    wait_parked(r0);
    wait_parked(r1);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(join_int(r0), -EPIPE);
    cr_assert_eq(join_int(r1), -EPIPE);
    weft_chan_release(c);

    /* rangefor: every value pushed before the close comes out, in order. */
    for (int k = 0; k < 2; k++) {
        struct range r = {.c = chan_new(sizeof(long), 0)};
        weft_task *p = spawn_at(k ? other_worker() : 0, range_producer, r.c);
        weft_task *q = spawn_at(k ? 0 : other_worker(), range_consumer, &r);
        cr_assert_eq(join_int(p), 0);
        cr_assert_null(join_result(q));
        cr_assert_eq(r.rc, -EPIPE);
        cr_assert_eq(r.n, 7);
        for (int i = 0; i < 7; i++)
            cr_assert_eq(r.got[i], fib_values[i]);
        weft_chan_release(r.c);
    }

    /* issue 268: a yielding consumer, a producer on the other worker and the main task. */
    struct range r = {.c = chan_new(sizeof(long), 0)};
    weft_task *q = spawn_at(other_worker(), range_consumer, &r);
    void *pa[2] = {r.c, (void *)12};
    weft_task *p = spawn_at(other_worker(), send_value, pa);
    v = 22;
    cr_assert_eq(weft_chan_send(r.c, &v, soon()), 0);
    cr_assert_eq(join_int(p), 0);
    cr_assert_eq(weft_chan_close(r.c), 0);
    cr_assert_null(join_result(q));
    cr_assert_eq(r.n, 2, "both pushes were popped before the close ended the loop");
    cr_assert((r.got[0] == 22 && r.got[1] == 12) || (r.got[0] == 12 && r.got[1] == 22));
    weft_chan_release(r.c);
    return NULL;
}

Test(ported_fiber, boost_unbuffered_channel_close_timeouts_and_ranges, .timeout = 30)
{
    run_quiet(unbuffered_main, NULL);
}

/* Buffered: test_try_push_full, test_try_push_closed, test_push_wait_for_timeout,
 * test_push_wait_until_timeout, test_pop_closed, test_try_pop_closed,
 * test_pop_wait_for_closed, test_pop_wait_until_closed, test_pop_wait_for_timeout,
 * test_value_pop_success, and the watermark tests' parked pusher: a full channel refuses
 * try_push (-EAGAIN) and a timed push (-ETIMEDOUT); closed, it refuses every push with
 * closed even while full; pops drain what is buffered, also with a deadline that has passed,
 * then answer closed; a pusher parked on the full channel when it closes gets closed, and its
 * value is not added. */
static void *buffered_main(void *arg)
{
    (void)arg;
    weft_chan *c = chan_new(sizeof(long), 2);
    long v;
    cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_recv(c, &v, LONG_AGO), -ETIMEDOUT);
    for (v = 1; v <= 2; v++)
        cr_assert_eq(weft_chan_try_send(c, &v), 0);
    cr_assert_eq(weft_chan_try_send(c, &v), -EAGAIN, "full");
    cr_assert_eq(weft_chan_send(c, &v, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_send(c, &v, LONG_AGO), -ETIMEDOUT);
    cr_assert_eq(weft_chan_len(c), 2u);

    weft_task *s = spawn_at(other_worker(), send_one, c);
    wait_parked(s);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(join_int(s), -EPIPE, "the parked pusher is told the channel closed");
    cr_assert_eq(weft_chan_try_send(c, &v), -EPIPE, "full and closed: closed");
    cr_assert_eq(weft_chan_send(c, &v, LONG_AGO), -EPIPE);
    cr_assert_eq(weft_chan_len(c), 2u, "the parked pusher's value was not added");
    cr_assert_eq(weft_chan_recv(c, &v, LONG_AGO), 0, "drained with a passed deadline");
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 2);
    cr_assert_eq(weft_chan_recv(c, &v, LONG_AGO), -EPIPE);
    cr_assert_eq(weft_chan_recv(c, &v, soon()), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EPIPE);
    weft_chan_release(c);

    /* value_pop_success / pop_wait_until_success: a pop parked first, on either worker, gets
     * the value pushed later. */
    for (int k = 0; k < 2; k++) {
        c = chan_new(sizeof(long), 3);
        weft_task *r = spawn_at(k ? other_worker() : 0, recv_one, c);
        wait_parked(r);
        v = 9;
        cr_assert_eq(weft_chan_send(c, &v, LONG_AGO), 0, "room: a passed deadline sends");
        cr_assert_eq(join_int(r), 0);
        cr_assert_eq(weft_chan_len(c), 0u);
        weft_chan_release(c);
    }
    return NULL;
}

Test(ported_fiber, boost_buffered_channel_full_closed_and_drained, .timeout = 30)
{
    run_quiet(buffered_main, NULL);
}

/* ==== Boost.Fiber test_promise / test_future; Seastar futures_test promises ============== */

struct resolver {
    weft_promise *p;
    void *value;
    int err;       /* reject with it when non-zero */
    int drop_only; /* release without settling */
    int rc;
};

static void *resolve_later(void *arg)
{
    struct resolver *r = arg;
    weft_yield();
    if (r->drop_only)
        r->rc = 0;
    else if (r->err)
        r->rc = weft_promise_reject(r->p, r->err);
    else
        r->rc = weft_promise_resolve(r->p, r->value);
    weft_promise_release(r->p); /* the resolver's reference */
    return NULL;
}

static void *thread_resolve(void *arg)
{
    struct resolver *r = arg;
    r->rc = weft_promise_resolve(r->p, r->value);
    weft_promise_release(r->p);
    return NULL;
}

/* test_promise_set_value / set_exception (a second set is promise_already_satisfied),
 * test_future_wait_for and wait_until (timeout, then ready), test_future_get after the
 * promise is gone, future_mt (set from another thread), and Seastar's "future of a destroyed
 * promise": weft has no broken_promise, a promise its resolver dropped unsettled stays
 * pending, and the awaiter's deadline ends the wait. */
static void *promise_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    void *v = NULL;
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_reject(p, 0), -EINVAL);
    cr_assert_eq(weft_promise_reject(p, EIO), -EINVAL, "a positive error is refused");
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, LONG_AGO), -ETIMEDOUT, "still unsettled");
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, weft_deadline_in(2 * WEFT_MSEC)),
                 -ETIMEDOUT);
    /* Settled by a task on the other worker while awaited again. */
    weft_promise_retain(p);
    struct resolver rs = {.p = p, .value = (void *)31};
    weft_task *t = spawn_at(other_worker(), resolve_later, &rs);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, soon()), 0);
    cr_assert_eq(v, (void *)31);
    cr_assert_null(join_result(t));
    cr_assert_eq(rs.rc, 0);
    cr_assert_eq(weft_promise_resolve(p, (void *)32), -EALREADY);
    cr_assert_eq(weft_promise_reject(p, -EIO), -EALREADY);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, LONG_AGO), 0, "wait_for when ready");
    cr_assert_eq(v, (void *)31, "the first value stays");
    weft_promise_release(p);

    /* set_exception then set_value. */
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_reject(p, -EIO), 0);
    cr_assert_eq(weft_promise_resolve(p, (void *)1), -EALREADY);
    cr_assert_eq(weft_promise_reject(p, -EPERM), -EALREADY);
    v = (void *)1;
    cr_assert_eq(weft_await(weft_promise_future(p), &v, soon()), -EIO);
    weft_future_destroy(weft_promise_future(p)); /* the last reference, through its future */

    /* Settled and released by the resolver before the await: the value outlives it. */
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_promise_retain(p);
    rs = (struct resolver){.p = p, .err = -ECONNRESET};
    t = spawn_at(other_worker(), resolve_later, &rs);
    cr_assert_null(join_result(t));
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, LONG_AGO), -ECONNRESET);
    weft_promise_release(p);

    /* A promise dropped unsettled by its resolver: Boost's broken_promise, -EPIPE here, long
     * before the await's deadline; nobody can settle it afterwards. */
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_promise_retain(p);
    rs = (struct resolver){.p = p, .drop_only = 1};
    t = spawn_at(other_worker(), resolve_later, &rs);
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, soon()), -EPIPE);
    cr_assert_null(join_result(t));
    cr_assert_eq(weft_promise_resolve(p, (void *)3), -EALREADY, "settled as broken");
    cr_assert_eq(weft_await(weft_promise_future(p), &v, LONG_AGO), -EPIPE);
    weft_promise_release(p);

    /* future_mt: resolved from a plain thread while a task awaits. */
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(weft_promise_create(&p), 0);
        weft_promise_retain(p);
        rs = (struct resolver){.p = p, .value = (void *)(intptr_t)(100 + i)};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, thread_resolve, &rs), 0);
        cr_assert_eq(weft_await(weft_promise_future(p), &v, soon()), 0);
        cr_assert_eq(v, (void *)(intptr_t)(100 + i));
        pthread_join(th, NULL);
        cr_assert_eq(rs.rc, 0);
        weft_promise_release(p);
    }
    return NULL;
}

Test(ported_fiber, boost_promise_set_twice_wait_for_and_dropped_resolver, .timeout = 30)
{
    run_quiet(promise_main, NULL);
}

/* ==== Boost.Fiber test_shared_future; Seastar futures_test shared_future ================ */

struct shared_awaiter {
    weft_shared *s;
    int64_t deadline;
    int rc;
    void *value;
};

static void *await_shared(void *arg)
{
    struct shared_awaiter *a = arg;
    a->rc = weft_shared_await(a->s, &a->value, a->deadline);
    return NULL;
}

static void *thread_await_shared(void *arg)
{
    return await_shared(arg);
}

/* test_shared_future_get (many gets of one value), test_shared_future_wait_for / until,
 * test_shared_future_wait_with_fiber; Seastar test_shared_future_propagates_value_to_all,
 * test_shared_future_propagates_errors_to_all, test_shared_future_with_timeout (one
 * awaiter's timeout leaves the others waiting), test_obtaining_future_from_shared_future
 * after it is resolved: every awaiter, on every worker, on a plain thread and through a
 * view future in a select, gets the one outcome, as many times as it asks. */
static void *shared_main(void *arg)
{
    (void)arg;
    for (int pass = 0; pass < 2; pass++) {
        weft_promise *p;
        cr_assert_eq(weft_promise_create(&p), 0);
        weft_promise_retain(p); /* one reference goes to the shared future */
        weft_shared *s;
        cr_assert_eq(weft_shared_create(&s, weft_promise_future(p)), 0);
        cr_assert_eq(weft_shared_try(s, NULL), -EAGAIN);
        cr_assert_eq(weft_shared_await(s, NULL, LONG_AGO), -ETIMEDOUT);

        struct shared_awaiter a[4], th = {.s = s, .deadline = soon()},
                                    quick = {.s = s, .deadline = weft_deadline_in(2 * WEFT_MSEC)};
        weft_task *t[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (struct shared_awaiter){.s = s, .deadline = soon()};
            t[i] = spawn_at(i % 2 ? other_worker() : 0, await_shared, &a[i]);
        }
        weft_task *tq = spawn_at(other_worker(), await_shared, &quick);
        pthread_t pt;
        weft_shared_retain(s); /* the thread's */
        cr_assert_eq(pthread_create(&pt, NULL, thread_await_shared, &th), 0);
        /* A view in a select beside a pending future. */
        weft_future *view, *never, *first;
        cr_assert_eq(weft_shared_future(s, &view), 0);
        cr_assert_eq(weft_future_pending(&never), 0);
        weft_future *fs[2] = {never, view};
        cr_assert_eq(weft_future_first(&first, fs, 2), 0);
        cr_assert_eq(poll_empty(first), WEFT_PENDING);

        cr_assert_null(join_result(tq));
        cr_assert_eq(quick.rc, -ETIMEDOUT, "the quick awaiter gave up");
        for (int i = 0; i < 4; i++)
            wait_parked(t[i]);
        cr_assert_eq(weft_shared_try(s, NULL), -EAGAIN, "the timeout settled nothing");

        if (pass == 0)
            cr_assert_eq(weft_promise_resolve(p, (void *)0x51), 0);
        else
            cr_assert_eq(weft_promise_reject(p, -EPROTO), 0);
        weft_promise_release(p);
        int want = pass == 0 ? 0 : -EPROTO;
        void *wantv = pass == 0 ? (void *)0x51 : NULL;
        for (int i = 0; i < 4; i++) {
            cr_assert_null(join_result(t[i]));
            cr_assert_eq(a[i].rc, want, "awaiter %d, pass %d", i, pass);
            if (pass == 0)
                cr_assert_eq(a[i].value, wantv);
        }
        pthread_join(pt, NULL);
        weft_shared_release(s);
        cr_assert_eq(th.rc, want);
        void *v = NULL;
        cr_assert_eq(weft_await(first, &v, soon()), 1, "the view won");
        cr_assert_eq(view->status, want);
        cr_assert_eq(weft_shared_try(s, &v), want);
        cr_assert_eq(weft_shared_await(s, &v, LONG_AGO), want, "get again");
        cr_assert_eq(weft_shared_await(s, &v, soon()), want, "and again");
        if (pass == 0)
            cr_assert_eq(v, wantv);
        /* A view made after the settle is ready at its first poll. */
        weft_future *late;
        cr_assert_eq(weft_shared_future(s, &late), 0);
        cr_assert_eq(poll_empty(late), WEFT_READY);
        cr_assert_eq(late->status, want);
        weft_future_destroy(late);
        weft_future_destroy(first);
        weft_future_destroy(view);
        weft_future_destroy(never);
        weft_shared_release(s);
    }

    /* A shared timer: every awaiter wakes at its deadline with 0. */
    weft_future *tf;
    cr_assert_eq(weft_timer_future(&tf, weft_deadline_in(2 * WEFT_MSEC)), 0);
    weft_shared *s;
    cr_assert_eq(weft_shared_create(&s, tf), 0);
    struct shared_awaiter a = {.s = s, .deadline = soon()};
    weft_task *t = spawn_at(other_worker(), await_shared, &a);
    cr_assert_eq(weft_shared_await(s, NULL, soon()), 0);
    cr_assert_null(join_result(t));
    cr_assert_eq(a.rc, 0);
    weft_shared_release(s);
    return NULL;
}

Test(ported_fiber, boost_seastar_shared_future_outcome_for_every_awaiter, .timeout = 30)
{
    run_quiet(shared_main, NULL);
}

/* ==== Boost.Fiber test_packaged_task / test_async; Seastar smp submit_to ================ */

struct job {
    int a, b;
    weft_event *gate;
    atomic_int *ran;
};

static void *add_job(void *arg)
{
    struct job *j = arg;
    if (j->gate && weft_event_wait(j->gate, soon()) != 0)
        return RES(-1);
    if (j->ran)
        atomic_fetch_add(j->ran, 1);
    return RES(j->a + j->b);
}

static void *void_job(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return NULL;
}

static void *exiting_job(void *arg)
{
    (void)arg;
    weft_exit((void *)99);
    return NULL;
}

/* test_packaged_task_exec, _exec_param, _exec_void, _exception, test_async_1..6: a task run
 * for its future (on this worker or another) gives fn's value, or nothing for a void fn; a
 * fn that leaves through weft_exit gives -EINTR (the packaged task's exception); a future
 * dropped before its task ran (a packaged task destroyed with its future unused) leaves the
 * task to run, and its late result goes nowhere. */
static void *packaged_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    atomic_int ran = 0;
    for (unsigned w = 0; w < n && w < 4; w++) {
        struct job j = {.a = 40, .b = (int)w};
        weft_future *f;
        void *v = NULL;
        cr_assert_eq(weft_submit_to(w, add_job, &j, &f), 0);
        cr_assert_eq(weft_await(f, &v, soon()), 0);
        cr_assert_eq(v, RES(40 + (int)w));
        weft_future_destroy(f);

        cr_assert_eq(weft_submit_to(w, void_job, &ran, &f), 0);
        v = (void *)1;
        cr_assert_eq(weft_await(f, &v, soon()), 0);
        cr_assert_null(v);
        weft_future_destroy(f);

        cr_assert_eq(weft_submit_to(w, exiting_job, NULL, &f), 0);
        v = (void *)1;
        cr_assert_eq(weft_await(f, &v, soon()), -EINTR);
        cr_assert_null(v, "weft_exit's value does not reach the future");
        weft_future_destroy(f);
    }
    cr_assert_eq(atomic_load(&ran), (int)(n < 4 ? n : 4));

    /* Dropped before completion: the task still runs; the result is dropped. */
    static weft_event gate = WEFT_EVENT_INIT;
    static struct job late = {.a = 1, .b = 2, .gate = &gate};
    static atomic_int late_ran;
    atomic_store(&late_ran, 0);
    late.ran = &late_ran;
    for (int k = 0; k < 2; k++) {
        weft_event_reset(&gate);
        weft_future *f;
        cr_assert_eq(weft_submit_to(k ? other_worker() : 0, add_job, &late, &f), 0);
        cr_assert_eq(weft_await(f, NULL, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
        weft_future_destroy(f);
        cr_assert_eq(weft_event_set(&gate), 0);
        while (atomic_load(&late_ran) != k + 1)
            cr_assert_eq(weft_yield(), 0);
    }
    return NULL;
}

Test(ported_fiber, boost_packaged_task_and_async_as_submit_to, .timeout = 30)
{
    run_quiet(packaged_main, NULL);
}

/* ==== Seastar futures_test: then, handle_exception, chains own their futures ============ */

static atomic_int map_calls;

static void *add_one(void *value, void *arg)
{
    (void)arg;
    atomic_fetch_add(&map_calls, 1);
    return (void *)((intptr_t)value + 1);
}

struct then_arg {
    int ret;            /* what fn returns */
    struct probe *next; /* what it sets *next to (NULL: nothing) */
    int recover_status; /* or_else: status for a value recovery */
    void *recover_value;
    atomic_int calls;
};

static int then_fn(void *value, void *arg, weft_future **next)
{
    (void)value;
    struct then_arg *a = arg;
    atomic_fetch_add(&a->calls, 1);
    if (a->next)
        *next = &a->next->base;
    return a->ret;
}

static int else_fn(int status, void *arg, weft_future **next, void **value)
{
    (void)status;
    struct then_arg *a = arg;
    atomic_fetch_add(&a->calls, 1);
    if (a->next)
        *next = &a->next->base;
    else
        *value = a->recover_value;
    return a->next ? a->ret : (a->ret < 0 ? a->ret : a->recover_status);
}

static weft_future *ready(int status, void *value)
{
    weft_future *f;
    cr_assert_eq(weft_future_ready(&f, status, value), 0);
    return f;
}

/* test_then_function, test_then_on_failed_future (the continuation is skipped),
 * test_handle_exception (recovery with a value, with a future, or a new error),
 * test_future_forwarding and "continuation destroyed with its future": each chain runs its
 * fn once however often it is polled, owns the futures it was given and the one fn made,
 * and drops every one exactly once: at destruction, or at once when fn fails with *next
 * set. A refused creation leaves f the caller's. */
static void *chains_main(void *arg)
{
    (void)arg;
    atomic_int drops = 0;
    weft_future *c;
    atomic_store(&map_calls, 0);

    /* map over a pending leaf, destroyed unfinished: fn never runs, the leaf goes once. */
    struct probe *p = probe_new(0, (void *)1, &drops);
    cr_assert_eq(weft_future_map(&c, &p->base, add_one, NULL), 0);
    cr_assert_eq(poll_empty(c), WEFT_PENDING);
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 1);
    cr_assert_eq(atomic_load(&map_calls), 0);

    /* map polled to completion, then polled again: fn once. */
    p = probe_new(0, (void *)1, &drops);
    cr_assert_eq(weft_future_map(&c, &p->base, add_one, NULL), 0);
    cr_assert_eq(poll_empty(c), WEFT_PENDING);
    atomic_store(&p->go, 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(poll_empty(c), WEFT_READY);
    cr_assert_eq(c->status, 0);
    cr_assert_eq(c->value, (void *)2);
    cr_assert_eq(atomic_load(&map_calls), 1);
    cr_assert_eq(p->npolls, 2, "a ready leaf is not polled again");
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 2);

    /* and_then: fn fails after setting *next: next is dropped at once, the chain fails. */
    struct then_arg ta = {.ret = -EIO, .next = probe_new(0, NULL, &drops)};
    cr_assert_eq(weft_future_and_then(&c, ready(0, NULL), then_fn, &ta), 0);
    cr_assert_eq(weft_await(c, NULL, LONG_AGO), -EIO);
    cr_assert_eq(atomic_load(&drops), 3, "the next future fn set was dropped");
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 3, "and only once");
    cr_assert_eq(atomic_load(&ta.calls), 1);

    /* and_then: 0 with *next NULL is -EINVAL. */
    ta = (struct then_arg){.ret = 0};
    cr_assert_eq(weft_future_and_then(&c, ready(0, NULL), then_fn, &ta), 0);
    cr_assert_eq(weft_await(c, NULL, LONG_AGO), -EINVAL);
    weft_future_destroy(c);

    /* and_then on a failed future: fn skipped, status kept, value NULL. */
    ta = (struct then_arg){.ret = 0};
    cr_assert_eq(weft_future_and_then(&c, ready(-EAGAIN, (void *)5), then_fn, &ta), 0);
    void *v = (void *)1;
    cr_assert_eq(weft_await(c, &v, LONG_AGO), -EAGAIN);
    cr_assert_null(v);
    cr_assert_eq(atomic_load(&ta.calls), 0);
    weft_future_destroy(c);

    /* and_then whose next is pending: the chain follows it; destroyed pending, both go. */
    ta = (struct then_arg){.ret = 0, .next = probe_new(7, (void *)8, &drops)};
    struct probe *first = probe_new(0, NULL, &drops);
    cr_assert_eq(weft_future_and_then(&c, &first->base, then_fn, &ta), 0);
    cr_assert_eq(poll_empty(c), WEFT_PENDING);
    atomic_store(&first->go, 1);
    cr_assert_eq(poll_empty(c), WEFT_PENDING, "next is pending");
    cr_assert_eq(atomic_load(&ta.calls), 1);
    cr_assert_eq(poll_empty(c), WEFT_PENDING);
    cr_assert_eq(atomic_load(&ta.calls), 1, "fn runs once");
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 5, "the first stage and next dropped once each");

    /* The same, completed: the chain takes next's status and value. */
    ta = (struct then_arg){.ret = 0, .next = probe_new(7, (void *)8, &drops)};
    atomic_store(&ta.next->go, 1);
    cr_assert_eq(weft_future_and_then(&c, ready(0, NULL), then_fn, &ta), 0);
    cr_assert_eq(weft_await(c, &v, LONG_AGO), 7);
    cr_assert_eq(v, (void *)8);
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 6);

    /* or_else: skipped on success; a value recovery; a future recovery; a new error with
     * *next set (dropped at once). */
    struct then_arg ea = {.recover_status = 3, .recover_value = (void *)33};
    cr_assert_eq(weft_future_or_else(&c, ready(4, (void *)44), else_fn, &ea), 0);
    cr_assert_eq(weft_await(c, &v, LONG_AGO), 4);
    cr_assert_eq(v, (void *)44);
    cr_assert_eq(atomic_load(&ea.calls), 0);
    weft_future_destroy(c);
    cr_assert_eq(weft_future_or_else(&c, ready(-EIO, NULL), else_fn, &ea), 0);
    cr_assert_eq(weft_await(c, &v, LONG_AGO), 3);
    cr_assert_eq(v, (void *)33);
    weft_future_destroy(c);
    ea = (struct then_arg){.ret = 0, .next = probe_new(0, (void *)55, &drops)};
    atomic_store(&ea.next->go, 1);
    cr_assert_eq(weft_future_or_else(&c, ready(-EIO, NULL), else_fn, &ea), 0);
    cr_assert_eq(weft_await(c, &v, LONG_AGO), 0);
    cr_assert_eq(v, (void *)55);
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 7);
    ea = (struct then_arg){.ret = -EPERM, .next = probe_new(0, NULL, &drops)};
    cr_assert_eq(weft_future_or_else(&c, ready(-EIO, NULL), else_fn, &ea), 0);
    cr_assert_eq(weft_await(c, &v, LONG_AGO), -EPERM);
    cr_assert_eq(atomic_load(&drops), 8);
    weft_future_destroy(c);
    cr_assert_eq(atomic_load(&drops), 8);

    /* Refused creations leave f the caller's. */
    p = probe_new(0, NULL, &drops);
    cr_assert_eq(weft_future_map(&c, &p->base, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_and_then(&c, &p->base, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_or_else(NULL, &p->base, else_fn, NULL), -EINVAL);
    cr_assert_eq(atomic_load(&drops), 8);
    weft_future_destroy(&p->base);
    cr_assert_eq(atomic_load(&drops), 9);
    return NULL;
}

Test(ported_fiber, seastar_then_and_handle_exception_chains_own_their_futures, .timeout = 30)
{
    run_quiet(chains_main, NULL);
}

/* ---- Seastar test_repeat / chained continuations: a loop of and_then ------------------- */

struct repeat {
    int left;
    atomic_int steps;
};

static int repeat_step(void *value, void *arg, weft_future **next)
{
    struct repeat *r = arg;
    atomic_fetch_add(&r->steps, 1);
    if (--r->left == 0)
        return weft_future_ready(next, 0, (void *)((intptr_t)value + 1));
    weft_future *f;
    int e = weft_future_ready(&f, 0, (void *)((intptr_t)value + 1));
    if (e)
        return e;
    e = weft_future_and_then(next, f, repeat_step, arg);
    if (e)
        weft_future_destroy(f);
    return e;
}

enum { REPEATS = 500 };

static void *repeat_task(void *arg)
{
    (void)arg;
    struct repeat r = {.left = REPEATS};
    weft_future *c;
    if (weft_future_and_then(&c, ready(0, (void *)0), repeat_step, &r) != 0)
        return RES(-1);
    void *v = NULL;
    int rc = weft_await(c, &v, soon());
    weft_future_destroy(c);
    if (rc != 0)
        return RES(rc);
    if ((intptr_t)v != REPEATS || atomic_load(&r.steps) != REPEATS)
        return RES(-2);
    /* A tower of maps. */
    weft_future *m = ready(0, (void *)0);
    for (int i = 0; i < REPEATS; i++) {
        weft_future *n;
        if (weft_future_map(&n, m, add_one, NULL) != 0)
            return RES(-3);
        m = n;
    }
    rc = weft_await(m, &v, soon());
    weft_future_destroy(m);
    if (rc != 0 || (intptr_t)v != REPEATS)
        return RES(-4);
    return RES(0);
}

/* test_repeat, test_chained_futures: 500 iterations of a loop whose each step returns the
 * next step's future complete with the right count, and a chain of 500 maps the same; the
 * chains nest, so they run on a task with a 1 MiB stack. */
static void *repeat_main(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_spawn_on(other_worker(), &t, repeat_task, NULL,
                               &(weft_spawn_opts){.stack_size = 1 << 20}),
                 0);
    cr_assert_eq(join_int(t), 0);
    return NULL;
}

Test(ported_fiber, seastar_repeat_as_a_loop_of_and_then, .timeout = 30)
{
    run_quiet(repeat_main, NULL);
}

/* ---- weft_future_ops' contract: drivers that give up poll once with an empty waker ------ */

static void *await_probe(void *arg)
{
    return RES(weft_await(arg, NULL, soon()));
}

/* Seastar test_with_timeout and when_any, Boost future wait_for: a driver that gives up on a
 * future (weft_await at its deadline or cancellation, weft_future_first for its losers,
 * weft_future_timeout past its deadline, a cancelled stackless task) polls it once more
 * with an empty waker, as weft.h says, so that a late completion wakes no task; a future
 * that completed is never polled again. */
static void *give_up_main(void *arg)
{
    (void)arg;
    atomic_int drops = 0;
    int last_empty = -2;

    /* weft_await at its deadline. */
    struct probe *p = probe_new(0, NULL, &drops);
    cr_assert_eq(weft_await(&p->base, NULL, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert(p->npolls >= 2);
    cr_assert_eq(p->last_empty, 1, "the last poll had no waker");
    cr_assert_eq(p->nempty, 1);
    cr_assert_eq(atomic_load(&drops), 0, "still the caller's");

    /* weft_await cancelled, in a task pinned here (it polls p on this worker). */
    p->last_empty = 0;
    weft_task *t = spawn_at(0, await_probe, p);
    wait_parked(t);
    cr_assert_eq(p->last_empty, 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(p->last_empty, 1, "a cancelled await's last poll had no waker");

    /* A ready future is not polled again, by a poll or an await. */
    atomic_store(&p->go, 1);
    cr_assert_eq(poll_empty(&p->base), WEFT_READY);
    int np = p->npolls;
    cr_assert_eq(poll_empty(&p->base), WEFT_READY);
    cr_assert_eq(weft_await(&p->base, NULL, LONG_AGO), 0);
    cr_assert_eq(p->npolls, np);

    /* first: the loser's last poll is empty; it stays the caller's. */
    struct probe *loser = probe_new(0, NULL, &drops);
    weft_future *fs[2] = {&loser->base, &p->base}, *fst;
    cr_assert_eq(weft_future_first(&fst, fs, 2), 0);
    cr_assert_eq(weft_await(fst, NULL, soon()), 1);
    cr_assert_eq(loser->last_empty, 1, "the loser was let go of");
    weft_future_destroy(fst);
    cr_assert_eq(atomic_load(&drops), 0);

    /* timeout past its deadline: the child's last poll is empty. */
    weft_future *to;
    cr_assert_eq(weft_future_timeout(&to, &loser->base, weft_deadline_in(2 * WEFT_MSEC)), 0);
    cr_assert_eq(weft_await(to, NULL, soon()), -ETIMEDOUT);
    cr_assert_eq(loser->last_empty, 1);
    weft_future_destroy(to);
    /* and a child that completes first wins over the timeout. */
    atomic_store(&loser->go, 1);
    cr_assert_eq(weft_future_timeout(&to, &loser->base, LONG_AGO), 0);
    cr_assert_eq(weft_await(to, NULL, soon()), 0);
    weft_future_destroy(to);
    weft_future_destroy(&loser->base);
    weft_future_destroy(&p->base);
    cr_assert_eq(atomic_load(&drops), 2);

    /* A stackless task cancelled while pending: one last empty poll, then the drop. */
    p = probe_new(0, NULL, &drops);
    p->last_empty_at_drop = &last_empty;
    weft_task *sl;
    cr_assert_eq(weft_spawn_future(&sl, &p->base, &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                 0);
    while (p->npolls == 0)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_cancel(sl), 0);
    cr_assert_eq(join_result(sl), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&drops), 3, "the task dropped its future");
    cr_assert_eq(last_empty, 1, "its last poll had no waker");
    return NULL;
}

Test(ported_fiber, seastar_drivers_that_give_up_poll_once_with_an_empty_waker, .timeout = 30)
{
    run_quiet(give_up_main, NULL);
}

/* ---- Seastar background continuations: stackless tasks --------------------------------- */

static atomic_int sl_cleanups, sl_cleanup_saw_ready;

static void sl_cleanup(void *arg)
{
    weft_future *f = arg; /* weft_spawn_future's cleanup gets the future */
    atomic_fetch_add(&sl_cleanups, 1);
    if (f && f->ready)
        atomic_fetch_add(&sl_cleanup_saw_ready, 1);
}

/* Seastar's then() run in the background (a future kept alive by its continuation),
 * Boost's async with launch::post: a stackless task drives a chain to its end; its join
 * gives the chain's value; one cancelled before it ran finishes WEFT_CANCELED and drops its
 * future; the spawn's cleanup gets the future, before it is dropped. */
static void *stackless_main(void *arg)
{
    (void)arg;
    atomic_store(&sl_cleanups, 0);
    atomic_store(&sl_cleanup_saw_ready, 0);
    atomic_store(&map_calls, 0);
    atomic_int drops = 0;
    for (int k = 0; k < 2; k++) {
        weft_promise *p;
        cr_assert_eq(weft_promise_create(&p), 0);
        weft_promise_retain(p);
        weft_future *c;
        cr_assert_eq(weft_future_map(&c, weft_promise_future(p), add_one, NULL), 0);
        weft_task *t;
        cr_assert_eq(weft_spawn_future(&t, c, &(weft_spawn_opts){.cleanup = sl_cleanup}), 0);
        struct resolver rs = {.p = p, .value = (void *)(intptr_t)(10 * k)};
        weft_task *r = spawn_at(k ? other_worker() : 0, resolve_later, &rs);
        cr_assert_eq(join_result(t), (void *)(intptr_t)(10 * k + 1), "the chain's value");
        cr_assert_null(join_result(r));
        cr_assert_eq(rs.rc, 0);
    }
    cr_assert_eq(atomic_load(&sl_cleanups), 2);
    cr_assert_eq(atomic_load(&sl_cleanup_saw_ready), 2, "the cleanup saw the live future");

    /* Cancelled before it ever ran. */
    struct probe *p = probe_new(0, NULL, &drops);
    weft_task *t;
    cr_assert_eq(weft_spawn_future(&t, &p->base, &(weft_spawn_opts){.cleanup = sl_cleanup}), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&drops), 1);
    cr_assert_eq(atomic_load(&sl_cleanups), 3);

    /* A failed future: the join gives its value (NULL), not its status. */
    cr_assert_eq(weft_spawn_future(&t, ready(-EIO, (void *)7), NULL), 0);
    cr_assert_eq(join_result(t), (void *)7);

    /* Detached, with the cleanup. */
    p = probe_new(0, NULL, &drops);
    atomic_store(&p->go, 1);
    cr_assert_eq(
        weft_spawn_future(NULL, &p->base,
                          &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED, .cleanup = sl_cleanup}),
        0);
    while (atomic_load(&drops) != 2)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(atomic_load(&sl_cleanups), 4);
    return NULL;
}

Test(ported_fiber, seastar_background_chains_in_stackless_tasks, .timeout = 30)
{
    run_quiet(stackless_main, NULL);
}

/* ---- Seastar when_all / when_any over promises settled on other workers ---------------- */

static void *settle_task(void *arg)
{
    struct resolver *r = arg;
    if (r->err)
        r->rc = weft_promise_reject(r->p, r->err);
    else
        r->rc = weft_promise_resolve(r->p, r->value);
    weft_promise_release(r->p);
    return NULL;
}

/* test_when_all_iterator_range, test_when_all_but_one_succeed, test_when_any_*: a join
 * reports each child's status and value and counts the failures; first reports the lowest
 * index among the children complete at its poll; all completes with 0 whatever failed. The
 * promises are settled by tasks of both workers. */
static void *when_main(void *arg)
{
    (void)arg;
    enum { N = 6 };
    weft_promise *p[N];
    weft_future *fs[N];
    struct resolver rs[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_promise_create(&p[i]), 0);
        fs[i] = weft_promise_future(p[i]);
    }
    int st[N];
    void *vals[N];
    weft_future *join, *all, *any;
    cr_assert_eq(weft_future_join(&join, fs, N, st, vals), 0);
    cr_assert_eq(weft_future_all(&all, fs, N), 0);
    /* Settle 4 and 2 first: first must say 2. */
    weft_task *t[N];
    int order[N] = {4, 2, 0, 1, 3, 5};
    for (int k = 0; k < N; k++) {
        int i = order[k];
        weft_promise_retain(p[i]);
        rs[i] = (struct resolver){
            .p = p[i], .value = (void *)(intptr_t)(i + 1), .err = i % 3 == 1 ? -EIO : 0};
        t[k] = spawn_at(k % 2 ? other_worker() : 0, settle_task, &rs[i]);
        if (k == 1) {
            cr_assert_null(join_result(t[0]));
            cr_assert_null(join_result(t[1]));
            cr_assert_eq(weft_future_first(&any, fs, N), 0);
            void *v = NULL;
            cr_assert_eq(weft_await(any, &v, soon()), 2, "the lowest index ready");
            cr_assert_eq(v, (void *)3);
        }
    }
    for (int k = 2; k < N; k++)
        cr_assert_null(join_result(t[k]));
    cr_assert_eq(weft_await(join, NULL, soon()), 2, "two children failed");
    cr_assert_eq(weft_await(all, NULL, soon()), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rs[i].rc, 0);
        cr_assert_eq(st[i], i % 3 == 1 ? -EIO : 0, "child %d", i);
        if (st[i] == 0)
            cr_assert_eq(vals[i], (void *)(intptr_t)(i + 1));
    }
    weft_future_destroy(join);
    weft_future_destroy(all);
    weft_future_destroy(any);
    for (int i = 0; i < N; i++)
        weft_promise_release(p[i]);
    return NULL;
}

Test(ported_fiber, seastar_when_all_and_when_any_across_workers, .timeout = 30)
{
    run_quiet(when_main, NULL);
}

/* ==== Seastar semaphore_test ============================================================= */

struct sem_waiter {
    weft_sem *s;
    int64_t deadline;
    int idx;
    atomic_int *order; /* where it records its turn */
    atomic_int *next;
};

static void *sem_wait_task(void *arg)
{
    struct sem_waiter *w = arg;
    int r = weft_sem_acquire(w->s, w->deadline);
    if (r == 0)
        atomic_store(&w->order[atomic_fetch_add(w->next, 1)], w->idx);
    return RES(r);
}

struct with_sem {
    weft_sem *s;
    weft_event *gate;
    atomic_int inside;
};

static void sem_give_back(void *arg)
{
    weft_sem_release(arg, 1);
}

/* with_semaphore(s, 1, fn): the unit goes back however fn ends, a cancel included. */
static void *with_semaphore_task(void *arg)
{
    struct with_sem *w = arg;
    int r = weft_sem_acquire(w->s, soon());
    if (r != 0)
        return RES(r);
    weft_defer(sem_give_back, w->s);
    atomic_fetch_add(&w->inside, 1);
    return RES(weft_event_wait(w->gate, soon()));
}

/* test_semaphore_1/2 (signal(n) wakes n waiters, oldest first), test_semaphore_timeout (a
 * waiter that times out takes no unit and leaves the count alone; the next signal goes to
 * the next waiter), test_with_semaphore (the unit comes back when fn ends, cancelled or
 * not), test_semaphore_mix: waiters queued in a known order on both workers. */
static void *sem_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT(0);
    enum { W = 6 };
    atomic_int order[W], next = 0;
    struct sem_waiter sw[W];
    weft_task *t[W];
    for (int i = 0; i < W; i++) {
        atomic_store(&order[i], -1);
        sw[i] = (struct sem_waiter){
            .s = &s, .deadline = soon(), .idx = i, .order = order, .next = &next};
        if (i == 3)
            sw[i].deadline = weft_deadline_in(200 * WEFT_MSEC); /* this one gives up */
        t[i] = spawn_at(i % 2 ? other_worker() : 0, sem_wait_task, &sw[i]);
        if (i == 3)
            wait_parked_or_done(t[i]); /* on a slow machine it may be gone already */
        else
            wait_parked(t[i]);
    }
    cr_assert_eq(join_int(t[3]), -ETIMEDOUT);
    cr_assert_eq(weft_sem_value(&s), 0, "the timeout took nothing");
    cr_assert_eq(weft_sem_release(&s, 3), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(join_int(t[i]), 0);
    for (int i = 4; i < W; i++)
        cr_assert_eq(weft_task_status(t[i]), WEFT_TASK_PARKED, "waiter %d still waits", i);
    cr_assert_eq(weft_sem_value(&s), 0, "the three units went to the three oldest");
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_release(&s, 3), 0);
    for (int i = 4; i < W; i++)
        cr_assert_eq(join_int(t[i]), 0);
    cr_assert_eq(weft_sem_value(&s), 1, "one unit left over");
    cr_assert_eq(atomic_load(&next), 5);
    for (int i = 0; i < 3; i++)
        cr_assert(atomic_load(&order[i]) >= 0 && atomic_load(&order[i]) <= 2,
                  "turn %d went to waiter %d", i, atomic_load(&order[i]));

    /* with_semaphore: two holders of a one-unit semaphore, the second waiting; the first is
     * cancelled inside fn; its unit goes to the second; when that one returns, the unit is
     * back. */
    weft_sem one = WEFT_SEM_INIT(1);
    weft_event gate = WEFT_EVENT_INIT;
    struct with_sem ws = {.s = &one, .gate = &gate};
    weft_task *a = spawn_at(other_worker(), with_semaphore_task, &ws);
    while (atomic_load(&ws.inside) != 1)
        cr_assert_eq(weft_yield(), 0);
    wait_parked(a);
    weft_task *b = spawn_at(0, with_semaphore_task, &ws);
    wait_parked(b);
    cr_assert_eq(weft_sem_value(&one), 0);
    cr_assert_eq(weft_cancel(a), 0);
    cr_assert_eq(join_result(a), WEFT_CANCELED);
    while (atomic_load(&ws.inside) != 2)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_sem_value(&one), 0, "the second holder has it");
    cr_assert_eq(weft_event_set(&gate), 0);
    cr_assert_eq(join_int(b), 0);
    cr_assert_eq(weft_sem_value(&one), 1, "back after fn");
    return NULL;
}

Test(ported_fiber, seastar_semaphore_bulk_signal_timeouts_and_with_semaphore, .timeout = 30)
{
    run_quiet(sem_main, NULL);
}
