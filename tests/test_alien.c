/* Work from outside: threads the runtime did not start spawn tasks onto it through a
 * weft_runtime handle, and join or cancel them through weft_handle, blocking the thread. The
 * results, worker placement, cancels before and after start, detached spawns and their
 * cleanups, deadlines, the handle outliving the runtime (-ESHUTDOWN), shutdown with work from
 * outside still running, and bad arguments. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static weft_config cfg_of(unsigned workers)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = workers;
    return c;
}

static void *square(void *arg)
{
    intptr_t v = (intptr_t)arg;
    weft_yield(); /* a park between, so the result crosses a switch */
    return (void *)(v * v);
}

static void *where(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_worker_index();
}

static void *sleeper(void *arg)
{
    atomic_int *started = arg;
    if (started)
        atomic_store(started, 1);
    int r = weft_sleep(3600 * WEFT_SEC);
    return (void *)(intptr_t)(r == -ECANCELED ? 7 : 8);
}

/* ---- A thread spawns, joins and cancels while the main task waits for it ---- */

typedef struct outside {
    weft_runtime *rt;
    weft_event finished; /* the thread's last act: the main task may return */
    int step;            /* the first failing step, 0 if none */
} outside;

#define FAIL_AT(o, n)                                                                              \
    do {                                                                                           \
        (o)->step = (n);                                                                           \
        goto out;                                                                                  \
    } while (0)

static void *outside_thread(void *arg)
{
    outside *o = arg;
    int nw = weft_runtime_workers(o->rt);
    if (nw < 1)
        FAIL_AT(o, 1);
    /* Results, round-robin over the workers. */
    enum { N = 200 };
    weft_handle *hs[N];
    for (intptr_t i = 0; i < N; i++)
        if (weft_runtime_spawn(o->rt, &hs[i], square, (void *)i, NULL) != 0)
            FAIL_AT(o, 2);
    for (intptr_t i = 0; i < N; i++) {
        void *r = NULL;
        if (weft_handle_join(hs[i], &r, WEFT_FOREVER) != 0 || r != (void *)(i * i))
            FAIL_AT(o, 3);
        if (weft_handle_done(hs[i]) != 1)
            FAIL_AT(o, 4);
        /* A second join gets the same. */
        if (weft_handle_join(hs[i], &r, 0) != 0 || r != (void *)(i * i))
            FAIL_AT(o, 5);
        weft_handle_release(hs[i]);
    }
    /* On a named worker. */
    for (int k = 0; k < nw; k++) {
        weft_handle *h;
        void *r = NULL;
        if (weft_runtime_spawn_on(o->rt, k, &h, where, NULL, NULL) != 0)
            FAIL_AT(o, 6);
        if (weft_handle_join(h, &r, WEFT_FOREVER) != 0 || r != (void *)(intptr_t)k)
            FAIL_AT(o, 7);
        weft_handle_release(h);
    }
    /* A cancel of a running task: its sleep returns -ECANCELED, its result is WEFT_CANCELED;
     * a join with a deadline times out before. */
    atomic_int started = 0;
    weft_handle *h;
    if (weft_runtime_spawn(o->rt, &h, sleeper, &started, NULL) != 0)
        FAIL_AT(o, 8);
    if (weft_handle_join(h, NULL, weft_deadline_in(5 * WEFT_MSEC)) != -ETIMEDOUT)
        FAIL_AT(o, 9);
    if (weft_handle_done(h) != 0)
        FAIL_AT(o, 10);
    while (!atomic_load(&started))
        sched_yield();
    if (weft_handle_cancel(h) != 0)
        FAIL_AT(o, 11);
    void *r = NULL;
    if (weft_handle_join(h, &r, WEFT_FOREVER) != 0 || r != WEFT_CANCELED)
        FAIL_AT(o, 12);
    if (weft_handle_cancel(h) != 0) /* finished: a no-op */
        FAIL_AT(o, 13);
    weft_handle_release(h);
out:
    weft_event_set(&o->finished);
    return NULL;
}

static void *outside_main(void *arg)
{
    outside *o = arg;
    o->rt = weft_runtime_current();
    cr_assert_not_null(o->rt);
    cr_assert_eq(weft_runtime_workers(o->rt), (int)weft_worker_count());
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, outside_thread, o), 0);
    cr_assert_eq(weft_event_wait(&o->finished, WEFT_FOREVER), 0);
    pthread_join(th, NULL); /* it has set the event: only its return is left */
    cr_assert_eq(o->step, 0, "the outside thread failed at step %d", o->step);
    return NULL;
}

Test(alien, a_thread_spawns_joins_and_cancels)
{
    for (unsigned n = 1; n <= 2; n++) {
        outside o = {.finished = WEFT_EVENT_INIT};
        weft_config c = cfg_of(n);
        run_main_cfg(&c, outside_main, &o);
        /* The handle outlives the runtime: no more work is taken. */
        weft_handle *h = (weft_handle *)&o; /* overwritten with NULL, or left on failure */
        cr_assert_eq(weft_runtime_spawn(o.rt, &h, square, NULL, NULL), -ESHUTDOWN);
        cr_assert_eq(weft_runtime_workers(o.rt), -ESHUTDOWN);
        weft_runtime_release(o.rt);
    }
}

/* ---- Cancel before the task exists, detached spawns and their cleanups ---- */

static atomic_int cleanups;

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cleanups, 1);
}

static void *never_runs(void *arg)
{
    (void)arg;
    cr_assert_fail("a task cancelled before it started ran");
    return NULL;
}

static void *early_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    /* From a task of the runtime itself: the message is taken at this worker's next turn,
     * so the cancel comes before the task exists. */
    weft_handle *h;
    weft_spawn_opts o = {.cleanup = count_cleanup, .name = "early"};
    cr_assert_eq(weft_runtime_spawn_on(rt, 0, &h, never_runs, NULL, &o), 0);
    cr_assert_eq(weft_handle_cancel(h), 0);
    void *r = NULL;
    cr_assert_eq(weft_handle_join(h, &r, WEFT_FOREVER), 0, "a task parks in the join");
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(atomic_load(&cleanups), 1, "its cleanup ran");
    weft_handle_release(h);
    /* Detached: no handle; the cleanup says when it ended. */
    weft_handle *none = (weft_handle *)rt;
    o.flags = WEFT_SPAWN_DETACHED;
    cr_assert_eq(weft_runtime_spawn(rt, &none, where, NULL, &o), 0);
    cr_assert_null(none);
    cr_assert_eq(weft_runtime_spawn(rt, NULL, where, NULL, &o), 0);
    while (atomic_load(&cleanups) < 3)
        weft_sleep(WEFT_MSEC);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, cancel_before_start_and_detached_spawns)
{
    atomic_store(&cleanups, 0);
    weft_config c = cfg_of(2);
    run_main_cfg(&c, early_main, NULL);
    cr_assert_eq(atomic_load(&cleanups), 3);
}

/* Options the worker would refuse are refused by the spawn itself, with nothing made and
 * nothing to clean up (hostile-misuse probe: a stack size weft_spawn refuses used to be
 * accepted here, then the task never existed, its join said -EINVAL and its cleanup never
 * ran). */
static void *bad_options_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    weft_handle *h = (weft_handle *)rt;
    const size_t sizes[] = {SIZE_MAX, ((size_t)1 << 30) + 1, WEFT_STACK_MIN - 1, 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        weft_spawn_opts o = {.stack_size = sizes[i], .cleanup = count_cleanup};
        cr_assert_eq(weft_runtime_spawn(rt, &h, where, NULL, &o), -EINVAL, "size %zu", sizes[i]);
        cr_assert_eq(weft_runtime_spawn_on(rt, 0, NULL, where, NULL, &o), -EINVAL);
        cr_assert_eq(h, (weft_handle *)rt, "*out untouched on failure");
    }
    /* The limits themselves are good sizes, and the task runs with its cleanup. */
    weft_spawn_opts o = {.stack_size = WEFT_STACK_MIN, .cleanup = count_cleanup};
    cr_assert_eq(weft_runtime_spawn(rt, &h, where, NULL, &o), 0);
    cr_assert_eq(weft_handle_join(h, NULL, WEFT_FOREVER), 0);
    weft_handle_release(h);
    cr_assert_eq(atomic_load(&cleanups), 1);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, bad_options_are_refused_by_the_spawn)
{
    atomic_store(&cleanups, 0);
    weft_config c = cfg_of(2);
    run_main_cfg(&c, bad_options_main, NULL);
    cr_assert_eq(atomic_load(&cleanups), 1, "no cleanup for a spawn that was refused");
}

/* ---- Shutdown with work from outside still running ---- */

typedef struct leftover {
    weft_runtime *rt;
    weft_handle *hs[8];
    atomic_int spawned;
} leftover;

static void *leftover_main(void *arg)
{
    leftover *l = arg;
    l->rt = weft_runtime_current();
    /* Spawned from here for brevity; they sleep until the shutdown cancels them. */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_runtime_spawn(l->rt, &l->hs[i], sleeper, NULL, NULL), 0);
    weft_sleep(2 * WEFT_MSEC); /* some have started, maybe not all */
    return NULL;
}

Test(alien, shutdown_cancels_work_from_outside)
{
    leftover l = {0};
    weft_config c = cfg_of(2);
    run_main_cfg(&c, leftover_main, &l);
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        cr_assert_eq(weft_handle_done(l.hs[i]), 1, "settled before weft_run returned");
        cr_assert_eq(weft_handle_join(l.hs[i], &r, WEFT_FOREVER), 0);
        cr_assert_eq(r, WEFT_CANCELED);
        weft_handle_release(l.hs[i]);
    }
    weft_runtime_release(l.rt);
}

/* ---- Bad arguments ---- */

/* A task given its own handle, which it joins: -EDEADLK at once (it waited for ever, and
 * the deadlock detector ended the program). */
static void *join_own_handle(void *arg)
{
    weft_handle *_Atomic *slot = arg;
    weft_handle *h;
    while ((h = atomic_load(slot)) == NULL)
        weft_yield();
    return (void *)(intptr_t)weft_handle_join(h, NULL, WEFT_FOREVER);
}

static void *bad_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    weft_handle *h;
    cr_assert_eq(weft_runtime_spawn(NULL, &h, where, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_spawn(rt, &h, NULL, NULL, NULL), -EINVAL);
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    cr_assert_eq(weft_runtime_spawn(rt, &h, where, NULL, &o), -EINVAL);
    o.flags = 0x100;
    cr_assert_eq(weft_runtime_spawn(rt, &h, where, NULL, &o), -EINVAL);
    cr_assert_eq(weft_runtime_spawn_on(rt, (int)weft_worker_count(), &h, where, NULL, NULL),
                 -EINVAL);
    cr_assert_eq(weft_runtime_spawn_on(rt, -2, &h, where, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_handle_join(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_handle_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_handle_done(NULL), -EINVAL);
    cr_assert_eq(weft_runtime_workers(NULL), -EINVAL);
    weft_handle *_Atomic slot = NULL;
    cr_assert_eq(weft_runtime_spawn(rt, &h, join_own_handle, (void *)&slot, NULL), 0);
    atomic_store(&slot, h);
    void *r = NULL;
    cr_assert_eq(weft_handle_join(h, &r, weft_deadline_in(30 * WEFT_SEC)), 0);
    cr_assert_eq((intptr_t)r, -EDEADLK);
    weft_handle_release(h);
    weft_handle_release(NULL);
    weft_runtime_release(NULL);
    weft_runtime_retain(rt);
    weft_runtime_release(rt);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, bad_arguments)
{
    run_main(bad_main, NULL);
    cr_assert_null(weft_runtime_current(), "outside a runtime");
}

/* ---- Work from outside goes round a worker stuck in a task ---- */

typedef struct stuck_ctx {
    weft_runtime *rt;
    atomic_int placed;   /* spawns from outside that have run */
    atomic_int on_stuck; /* ... of which on the stuck worker */
    atomic_int go;       /* the spinner is stuck: the thread may spawn */
    atomic_int seen_stuck;
} stuck_ctx;

static void *count_where(void *arg)
{
    stuck_ctx *c = arg;
    if (weft_worker_index() == 1)
        atomic_fetch_add(&c->on_stuck, 1);
    atomic_fetch_add(&c->placed, 1);
    return NULL;
}

/* Spins on worker 1, without a switch, until the spawns from outside have run (or 10 s). */
static void *stuck_spinner(void *arg)
{
    stuck_ctx *c = arg;
    int64_t until = weft_now() + 10 * WEFT_SEC;
    struct timespec ts;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
        /* All but at most one ran elsewhere (see the test); the rest runs after this. */
        if (atomic_load(&c->placed) - atomic_load(&c->on_stuck) >= 7 || now > until)
            return NULL;
    }
}

/* Whether the stall detector sees worker k stuck now (its gauge, read live). */
static bool stuck_now(weft_runtime *rt, int k)
{
    weft_stats s;
    return weft_runtime_stats(rt, k, &s, sizeof s) == 0 && s.nstuck == 1;
}

static void *stuck_thread(void *arg)
{
    stuck_ctx *c = arg;
    for (int i = 0; i < 8; i++) { /* round-robin would put every other one on worker 1 */
        /* Each spawn once worker 1 is seen stuck and worker 0 not (on a loaded machine a
         * worker the kernel does not run for the threshold looks stuck too). */
        for (int n = 0; n < 10000 && !(stuck_now(c->rt, 1) && !stuck_now(c->rt, 0)); n++)
            usleep(1000);
        atomic_store(&c->seen_stuck, 1);
        if (weft_runtime_spawn(c->rt, NULL, count_where, c,
                               &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}) != 0)
            atomic_fetch_add(&c->placed, 100);
    }
    return NULL;
}

static void *join_thread(void *arg)
{
    return (void *)(intptr_t)pthread_join(*(pthread_t *)arg, NULL);
}

static void *stuck_main(void *arg)
{
    stuck_ctx *c = arg;
    c->rt = weft_runtime_current();
    weft_task *t;
    cr_assert_eq(weft_spawn_on(1, &t, stuck_spinner, c, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stuck_thread, c), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* The thread is joined from a pool job: this task must not block its worker. */
    void *r;
    cr_assert_eq(weft_blocking(join_thread, &th, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, NULL);
    weft_runtime_release(c->rt);
    return NULL;
}

Test(alien, spawns_from_outside_go_round_a_worker_stuck_in_a_task)
{
    stuck_ctx c = {0};
    weft_config cfg = cfg_of(2);
    cfg.handoff_us = -1; /* worker 0 stays stuck: its being stuck is the subject */
    run_main_cfg(&cfg, stuck_main, &c);
    cr_assert(atomic_load(&c.seen_stuck));
    cr_assert_eq(atomic_load(&c.placed), 8);
    /* At most one: worker 0 may look stuck between the thread's look and the spawn's (the
     * kernel did not run it for 10 ms). Without the rule, four of eight go there. */
    cr_assert_leq(atomic_load(&c.on_stuck), 1, "%d of 8 went to the stuck worker",
                  atomic_load(&c.on_stuck));
}

/* ---- Stealing mode: the injection queue ---- */

typedef struct inject_ctx {
    weft_runtime *rt;
    atomic_int spinning; /* the spinner holds worker 1 */
    atomic_int ran, on_spinner;
} inject_ctx;

static void *count_ran(void *arg)
{
    inject_ctx *c = arg;
    if (weft_worker_index() == 1)
        atomic_fetch_add(&c->on_spinner, 1);
    atomic_fetch_add(&c->ran, 1);
    return NULL;
}

/* Holds worker 1 without a switch until the 8 spawns have run, or 10 s. */
static void *inject_spinner(void *arg)
{
    inject_ctx *c = arg;
    atomic_store(&c->spinning, 1);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    time_t until = ts.tv_sec + 10;
    while (atomic_load(&c->ran) < 8 && ts.tv_sec < until)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return NULL;
}

static void *inject_thread(void *arg)
{
    inject_ctx *c = arg;
    while (!atomic_load(&c->spinning))
        usleep(100);
    for (int i = 0; i < 8; i++)
        if (weft_runtime_spawn(c->rt, NULL, count_ran, c,
                               &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}) != 0)
            atomic_fetch_add(&c->ran, 100);
    return NULL;
}

static void *inject_main(void *arg)
{
    inject_ctx *c = arg;
    c->rt = weft_runtime_current();
    weft_task *t;
    cr_assert_eq(weft_spawn_on(1, &t, inject_spinner, c, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, inject_thread, c), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    void *r;
    cr_assert_eq(weft_blocking(join_thread, &th, &r, WEFT_FOREVER), 0);
    weft_runtime_release(c->rt);
    return NULL;
}

/* With the stall detector off (so no stuck mark steers the spawns), spawns from outside in
 * stealing mode go to the injection queue, and the worker that is free takes them: none
 * waits for the one held by a task that does not yield. Round-robin placement put every
 * other one there. */
Test(alien, stealing_mode_spawns_from_outside_go_to_the_worker_that_is_free)
{
    inject_ctx c = {0};
    weft_config cfg = cfg_of(2);
    cfg.mode = WEFT_MODE_STEALING;
    cfg.stall_ms = -1;
    cfg.handoff_us = -1; /* worker 1 stays held: a relief thread would take injected work */
    run_main_cfg(&cfg, inject_main, &c);
    cr_assert_eq(atomic_load(&c.ran), 8);
    cr_assert_eq(atomic_load(&c.on_spinner), 0, "%d of 8 waited for the held worker",
                 atomic_load(&c.on_spinner));
}

/* weft_runtime_spawn's cleanup must not block (weft.h, weft_spawn_opts.cleanup): its blocking
 * calls return -EPERM, as in weft_spawn's and a group member's. They returned 0 and parked
 * the context running it (the finishing task). */
static _Atomic int cleanup_sleep = 1, cleanup_yield = 1;

static void blocking_cleanup(void *arg)
{
    (void)arg;
    atomic_store(&cleanup_sleep, weft_sleep(WEFT_MSEC));
    atomic_store(&cleanup_yield, weft_yield());
}

static void *nothing(void *arg)
{
    return arg;
}

static void *cleanup_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert_not_null(rt);
    weft_handle *h;
    weft_spawn_opts o = {.cleanup = blocking_cleanup};
    cr_assert_eq(weft_runtime_spawn(rt, &h, nothing, NULL, &o), 0);
    cr_assert_eq(weft_handle_join(h, NULL, weft_deadline_in(10 * WEFT_SEC)), 0);
    weft_handle_release(h);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, a_runtime_spawns_cleanup_may_not_block)
{
    weft_config cfg = cfg_of(2);
    run_main_cfg(&cfg, cleanup_main, NULL);
    cr_assert_eq(atomic_load(&cleanup_sleep), -EPERM);
    cr_assert_eq(atomic_load(&cleanup_yield), -EPERM);
}

/* The handle's own task joining it is refused (-EDEADLK), also from inside its
 * weft_block_in_place's fn, which is the task's own code on its stack: the task cannot end
 * before fn returns. The join there waited for ever (here: until its deadline). */
typedef struct self_join {
    weft_handle *h;
    weft_event known; /* h is stored */
    int in_task, in_place;
} self_join;

static void *join_own_handle_in_place(void *arg)
{
    self_join *s = arg;
    s->in_place = weft_handle_join(s->h, NULL, weft_deadline_in(10 * WEFT_SEC));
    return NULL;
}

static void *self_joiner(void *arg)
{
    self_join *s = arg;
    cr_assert_eq(weft_event_wait(&s->known, WEFT_FOREVER), 0);
    s->in_task = weft_handle_join(s->h, NULL, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_eq(weft_block_in_place(join_own_handle_in_place, s, NULL), 0);
    return (void *)1;
}

static void *self_join_main(void *arg)
{
    self_join *s = arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert_not_null(rt);
    cr_assert_eq(weft_runtime_spawn(rt, &s->h, self_joiner, s, NULL), 0);
    weft_event_set(&s->known);
    void *r = NULL;
    cr_assert_eq(weft_handle_join(s->h, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)1);
    weft_handle_release(s->h);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, a_join_of_the_own_handle_from_block_in_place_is_edeadlk)
{
    for (unsigned n = 1; n <= 2; n++) {
        self_join s = {.known = WEFT_EVENT_INIT};
        weft_config cfg = cfg_of(n);
        cfg.backend = WEFT_BACKEND_EPOLL; /* io_uring runs fn on the blocking pool */
        run_main_cfg(&cfg, self_join_main, &s);
        cr_assert_eq(s.in_task, -EDEADLK);
        cr_assert_eq(s.in_place, -EDEADLK, "workers %u: %d", n, s.in_place);
    }
}

/* A task that joins the handle of a task it spawned onto another runtime waits on that
 * runtime: its own runtime's deadlock report must count the join as a wait that something
 * outside can end. It judged every task asleep once the other runtime's task took longer
 * than the grace period (1 s), and exited the process with status 2. */
static weft_runtime *_Atomic other_rt;
static weft_event other_may_end = WEFT_EVENT_INIT;

/* The grace period here: 200 ms through WEFT_TEST_DEADLOCK_GRACE_NS (a knob of WEFT_TESTING
 * builds; test_dump.c uses it the same way), and the other runtime's task takes three of
 * them: a wrong verdict comes one grace into its sleep. */
#ifdef WEFT_TESTING
#define GRACE_MS 200
#else
#define GRACE_MS 1000
#endif

static void short_grace(void)
{
    char ns[32];
    snprintf(ns, sizeof ns, "%lld", (long long)GRACE_MS * 1000000);
    setenv("WEFT_TEST_DEADLOCK_GRACE_NS", ns, 1);
}

static void *other_main(void *arg)
{
    (void)arg;
    atomic_store(&other_rt, weft_runtime_current());
    cr_assert_eq(weft_event_wait(&other_may_end, WEFT_FOREVER), 0);
    return NULL;
}

static void *other_thread(void *arg)
{
    (void)arg;
    weft_config c = cfg_of(1);
    c.deadlock = WEFT_DEADLOCK_OFF; /* its main waits on this test's thread */
    return (void *)(intptr_t)weft_run(&c, other_main, NULL, NULL);
}

static void *past_the_grace_period(void *arg)
{
    cr_assert_eq(weft_sleep(3 * GRACE_MS * WEFT_MSEC), 0);
    return arg;
}

static void *join_across_main(void *arg)
{
    (void)arg;
    weft_handle *h;
    cr_assert_eq(
        weft_runtime_spawn(atomic_load(&other_rt), &h, past_the_grace_period, (void *)0x5a, NULL),
        0);
    void *r = NULL;
    cr_assert_eq(weft_handle_join(h, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0x5a);
    weft_handle_release(h);
    return NULL;
}

Test(alien, a_join_of_another_runtimes_task_is_no_deadlock, .timeout = 30, .init = short_grace)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    while (!atomic_load(&other_rt))
        usleep(1000);
    weft_config c = cfg_of(1);
    c.deadlock = WEFT_DEADLOCK_EXIT;
    run_main_cfg(&c, join_across_main, NULL);
    weft_event_set(&other_may_end);
    void *r = (void *)1;
    cr_assert_eq(pthread_join(th, &r), 0);
    cr_assert_eq(r, NULL);
    weft_runtime_release(atomic_load(&other_rt));
}

/* The same when fn has run a runtime of its own (a plain thread may) whose task blocked in
 * place on this thread too: the inner call's end forgot that the thread still ran the outer
 * task's fn, and the join waited for ever (here: until its deadline). */
static void *inner_blocks_in_place(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_block_in_place(nothing, NULL, NULL), 0);
    return NULL;
}

static void *run_a_runtime_then_join_own_handle(void *arg)
{
    self_join *s = arg;
    weft_config c = cfg_of(1);
    c.backend = WEFT_BACKEND_EPOLL;
    cr_assert_eq(weft_run(&c, inner_blocks_in_place, NULL, NULL), 0);
    s->in_place = weft_handle_join(s->h, NULL, weft_deadline_in(10 * WEFT_SEC));
    return NULL;
}

static void *nested_self_joiner(void *arg)
{
    self_join *s = arg;
    cr_assert_eq(weft_event_wait(&s->known, WEFT_FOREVER), 0);
    cr_assert_eq(weft_block_in_place(run_a_runtime_then_join_own_handle, s, NULL), 0);
    return (void *)1;
}

static void *nested_self_join_main(void *arg)
{
    self_join *s = arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert_eq(weft_runtime_spawn(rt, &s->h, nested_self_joiner, s, NULL), 0);
    weft_event_set(&s->known);
    cr_assert_eq(weft_handle_join(s->h, NULL, WEFT_FOREVER), 0);
    weft_handle_release(s->h);
    weft_runtime_release(rt);
    return NULL;
}

Test(alien, a_join_of_the_own_handle_after_a_nested_block_in_place_is_edeadlk)
{
    self_join s = {.known = WEFT_EVENT_INIT};
    weft_config cfg = cfg_of(1);
    cfg.backend = WEFT_BACKEND_EPOLL;
    run_main_cfg(&cfg, nested_self_join_main, &s);
    cr_assert_eq(s.in_place, -EDEADLK, "%d", s.in_place);
}

/* ---- fork(): the child's copy of the runtime runs nowhere ---- */

static void *wait_for_event(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, WEFT_FOREVER);
}

/* What the child of a fork made from a plain thread sees of the parent's runtime, through
 * the handles the thread held: the runtime takes no work (-ESHUTDOWN), and a task of it that
 * had not finished at the fork is never seen to finish (-ESHUTDOWN at once). */
typedef struct forked {
    weft_runtime *rt;
    weft_handle *h;  /* a task that waits on `go`: unfinished at the fork */
    int workers;     /* the child's weft_runtime_workers */
    int spawn;       /* the child's weft_runtime_spawn */
    int join;        /* the child's weft_handle_join of h */
    int cancel;      /* the child's weft_handle_cancel of h */
    int child_error; /* the parent's: -errno of pipe, fork, read or waitpid, 0 if none */
} forked;

static void *fork_from_a_plain_thread(void *arg)
{
    forked *f = arg;
    int p[2];
    if (pipe(p) != 0) {
        f->child_error = -errno;
        return NULL;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int seen[4];
        weft_handle *h2 = NULL;
        seen[0] = weft_runtime_workers(f->rt);
        seen[1] = weft_runtime_spawn(f->rt, &h2, square, (void *)3, NULL);
        /* A deadline far enough that a join waiting for the parent's task is plain to see. */
        seen[2] = weft_handle_join(f->h, NULL, weft_deadline_in(2 * WEFT_SEC));
        seen[3] = weft_handle_cancel(f->h);
        ssize_t k = write(p[1], seen, sizeof seen);
        _exit(k == (ssize_t)sizeof seen ? 0 : 1);
    }
    close(p[1]);
    int seen[4] = {0};
    if (pid < 0 || read(p[0], seen, sizeof seen) != (ssize_t)sizeof seen)
        f->child_error = -EIO;
    close(p[0]);
    int status;
    if (pid > 0 && (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)))
        f->child_error = -ECHILD;
    f->workers = seen[0];
    f->spawn = seen[1];
    f->join = seen[2];
    f->cancel = seen[3];
    return NULL;
}

static void *fork_main(void *arg)
{
    forked *f = arg;
    weft_event go = WEFT_EVENT_INIT;
    f->rt = weft_runtime_current();
    cr_assert_eq(weft_runtime_spawn(f->rt, &f->h, wait_for_event, &go, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fork_from_a_plain_thread, f), 0);
    cr_assert_eq(weft_block_in_place(join_thread, &th, NULL), 0);
    /* The parent's task is untouched by the child's cancel. */
    weft_event_set(&go);
    void *r = WEFT_CANCELED;
    cr_assert_eq(weft_handle_join(f->h, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)0, "the parent's task ran to its end");
    weft_handle_release(f->h);
    weft_runtime_release(f->rt);
    return NULL;
}

Test(alien, the_child_of_a_fork_sees_the_parents_runtime_shut_down, .timeout = 60)
{
    forked f = {0};
    weft_config cfg = cfg_of(2);
    run_main_cfg(&cfg, fork_main, &f);
    cr_assert_eq(f.child_error, 0, "%d", f.child_error);
    cr_assert_eq(f.workers, -ESHUTDOWN, "%d", f.workers);
    cr_assert_eq(f.spawn, -ESHUTDOWN, "%d", f.spawn);
    cr_assert_eq(f.join, -ESHUTDOWN, "%d", f.join);
    cr_assert_eq(f.cancel, 0, "%d", f.cancel);
}
