/* Tasks: spawn/join/detach/cancel semantics, cleanup handlers, task-local values, exit,
 * errors for misuse, a million tiny tasks, and shutdown reaping what is left. */
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

static void *ret_arg(void *arg)
{
    return arg;
}

static void *join_main(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, ret_arg, (void *)(intptr_t)77, NULL), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)77);
    return (void *)(intptr_t)5;
}

Test(task, join_returns_result_and_main_result_is_runtime_result)
{
    cr_assert_eq(run_main(join_main, NULL), (void *)5);
}

/* The main task's result reaches weft_run even when the main task was joined (by a detached
 * task that then spawns more) or detached itself: its record is reaped then, and a task
 * spawned during the shutdown reuses it. weft_run read the result from the record, and
 * returned WEFT_CANCELED (the reusing task's outcome) instead of 43. */
static weft_task *joined_main_task;

static void *reuse_records(void)
{
    for (int i = 0; i < 300; i++) {
        weft_task *t;
        if (weft_spawn(&t, ret_arg, NULL, NULL) == 0)
            weft_join(t, NULL, WEFT_FOREVER);
    }
    return NULL;
}

static void *join_the_main_task(void *arg)
{
    (void)arg;
    void *r = NULL;
    cr_assert_eq(weft_join(joined_main_task, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)(intptr_t)43);
    return reuse_records();
}

static void *main_joined_by_a_child(void *arg)
{
    (void)arg;
    joined_main_task = weft_self();
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn(NULL, join_the_main_task, NULL, &o), 0);
    weft_yield(); /* the child parks in its join of this task */
    return (void *)(intptr_t)43;
}

static void *sleep_then_reuse_records(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_SEC); /* cut by the shutdown: then it spawns and joins */
    return reuse_records();
}

static void *main_detached_itself(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn(NULL, sleep_then_reuse_records, NULL, &o), 0);
    weft_yield();
    cr_assert_eq(weft_detach(weft_self()), 0);
    return (void *)(intptr_t)43;
}

Test(task, the_main_tasks_result_survives_a_join_or_detach_of_it)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    cr_assert_eq(run_main_cfg(&c, main_joined_by_a_child, NULL), (void *)(intptr_t)43);
    cr_assert_eq(run_main_cfg(&c, main_detached_itself, NULL), (void *)(intptr_t)43);
}

static void *sleep_forever(void *arg)
{
    int *state = arg;
    *state = 1;
    int r = weft_sleep_until(WEFT_FOREVER);
    *state = r == -ECANCELED ? 2 : 3;
    /* Later blocking calls fail at once; a yield still yields. */
    if (weft_sleep(WEFT_SEC) == -ECANCELED && weft_yield() == -ECANCELED && weft_canceled() == 1)
        *state = 4;
    return (void *)(intptr_t)99;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    int state = 0;
    weft_task *t;
    weft_spawn(&t, sleep_forever, &state, NULL);
    weft_yield();
    cr_assert_eq(state, 1);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_cancel(t), 0, "cancelling twice is harmless");
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(state, 4);
    cr_assert_eq(r, WEFT_CANCELED);
    return NULL;
}

Test(task, cancel_wakes_parked_task_and_join_reports_it)
{
    run_main(cancel_main, NULL);
}

static void *must_not_run(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

static void *cancel_before_start_main(void *arg)
{
    (void)arg;
    int ran = 0;
    weft_task *t;
    weft_spawn(&t, must_not_run, &ran, NULL);
    weft_cancel(t);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(ran, 0);
    cr_assert_eq(r, WEFT_CANCELED);
    return NULL;
}

Test(task, task_cancelled_before_it_ran_never_runs)
{
    run_main(cancel_before_start_main, NULL);
}

static char order[16];
static int norder;

static void note(void *arg)
{
    order[norder++] = (char)(intptr_t)arg;
}

static void *deferring(void *arg)
{
    weft_defer(note, (void *)'a');
    weft_defer(note, (void *)'b');
    weft_defer(note, (void *)'c');
    cr_assert_eq(weft_defer_pop(1), 0); /* runs 'c' now */
    weft_defer(note, (void *)'d');
    weft_defer(note, (void *)'x');
    cr_assert_eq(weft_defer_pop(0), 0); /* drops 'x' */
    if (arg) {
        cr_assert_eq(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
        return NULL;
    }
    weft_exit((void *)(intptr_t)3);
    order[norder++] = 'z'; /* weft_exit does not return */
    return NULL;
}

static void *defer_main(void *arg)
{
    (void)arg;
    weft_task *t;
    norder = 0;
    weft_spawn(&t, deferring, NULL, NULL);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)3);
    order[norder] = 0;
    cr_assert_str_eq(order, "cdba");

    norder = 0;
    weft_spawn(&t, deferring, (void *)1, NULL);
    weft_yield();
    weft_cancel(t);
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);
    order[norder] = 0;
    cr_assert_str_eq(order, "cdba");
    cr_assert_eq(weft_defer_pop(0), -ENOENT);
    return NULL;
}

Test(task, defers_run_lifo_on_exit_and_on_cancel)
{
    run_main(defer_main, NULL);
}

static int key_a, key_b;
static int ndtor;

static void count_dtor(void *v)
{
    (void)v;
    ndtor++;
}

static void *locals(void *arg)
{
    cr_assert_null(weft_local_get(&key_a));
    weft_local_set(&key_a, arg, count_dtor);
    weft_local_set(&key_b, (void *)2, NULL);
    weft_yield();
    cr_assert_eq(weft_local_get(&key_a), arg);
    cr_assert_eq(weft_local_get(&key_b), (void *)2);
    weft_local_set(&key_a, (void *)5, count_dtor); /* the old value's dtor runs */
    cr_assert_eq(weft_local_get(&key_a), (void *)5);
    return NULL;
}

static void *locals_main(void *arg)
{
    (void)arg;
    ndtor = 0;
    weft_task *a, *b;
    weft_spawn(&a, locals, (void *)10, NULL);
    weft_spawn(&b, locals, (void *)20, NULL);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    cr_assert_eq(ndtor, 4);
    cr_assert_eq(weft_local_set(NULL, NULL, NULL), -EINVAL);
    return NULL;
}

Test(task, task_locals_are_per_task_with_destructors)
{
    run_main(locals_main, NULL);
}

/* Replacing a local runs the old value's destructor once, with the new value already in
 * place: a destructor that frees its value and clears its key (the pthread-key idiom) found
 * the old value still there and destroyed it a second time (a double free; with a
 * destructor that always clears, a recursion to the end of the stack). */
static int key_clearing;
static int clearing_calls[3];
static int clearing_values[3]; /* their addresses are the values */

static void dtor_clears_its_key(void *arg)
{
    clearing_calls[(int *)arg - clearing_values]++;
    cr_assert_eq(weft_local_set(&key_clearing, NULL, NULL), 0);
}

static void *replace_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_local_set(&key_clearing, &clearing_values[0], dtor_clears_its_key), 0);
    cr_assert_eq(weft_local_set(&key_clearing, &clearing_values[1], dtor_clears_its_key), 0);
    cr_assert_eq(clearing_calls[0], 1, "the replaced value's destructor ran %d times",
                 clearing_calls[0]);
    /* Its own set came last: it replaced the new value (whose destructor ran, once). */
    cr_assert_eq(clearing_calls[1], 1);
    cr_assert_null(weft_local_get(&key_clearing));
    cr_assert_eq(weft_local_set(&key_clearing, &clearing_values[2], dtor_clears_its_key), 0);
    return NULL; /* the task's end runs the last one's destructor, once */
}

Test(task, a_destructor_that_clears_its_key_runs_once_per_value)
{
    run_main(replace_main, NULL);
    cr_assert_eq(clearing_calls[0], 1);
    cr_assert_eq(clearing_calls[1], 1);
    cr_assert_eq(clearing_calls[2], 1);
}

/* What a task's handlers add while it finishes runs too: a local's destructor that registers
 * a defer (Boost.Fiber's fss cleanup may schedule more), and a defer that sets a local. A
 * destructor that sets its local again for ever runs a bounded number of times (pthread
 * keys' PTHREAD_DESTRUCTOR_ITERATIONS, 4), the task still finishes, and its spawn cleanup
 * (given last, after every pass) still runs once. */
static int late_runs, late_resets, late_cleanups;
static int key_late;

static void late_defer(void *arg)
{
    (void)arg;
    late_runs++;
}

static void dtor_defers(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_defer(late_defer, NULL), 0);
}

static void defer_sets_local(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_local_set(&key_late, NULL, dtor_defers), 0);
}

static void dtor_resets(void *arg)
{
    (void)arg;
    late_resets++;
    weft_local_set(&key_late, NULL, dtor_resets); /* for ever, if nothing bounded it */
}

static void late_cleanup(void *arg)
{
    cr_assert_eq(arg, (void *)&key_late, "the cleanup gets the task's argument");
    cr_assert_eq(late_resets + late_runs > 0, 1, "the cleanup came before the handlers");
    late_cleanups++;
}

static void *defers_from_dtor(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_local_set(&key_a, NULL, dtor_defers), 0);
    cr_assert_eq(weft_local_set(&key_b, NULL, dtor_defers), 0);
    cr_assert_eq(weft_defer(defer_sets_local, NULL), 0);
    return NULL;
}

static void *resets_for_ever(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_local_set(&key_late, NULL, dtor_resets), 0);
    return NULL;
}

static void *late_handlers_main(void *arg)
{
    (void)arg;
    late_runs = late_resets = late_cleanups = 0;
    const weft_spawn_opts opts = {.cleanup = late_cleanup};
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, defers_from_dtor, &key_late, &opts), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* two destructors and the one the defer set: three defers, each run once */
    cr_assert_eq(late_runs, 3, "defers registered while finishing: %d run", late_runs);
    cr_assert_eq(late_cleanups, 1);
    cr_assert_eq(weft_spawn(&t, resets_for_ever, &key_late, &opts), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(late_resets, 4, "a local set again by its destructor: %d runs", late_resets);
    cr_assert_eq(late_cleanups, 2);
    /* A group member's cleanup (a wrapping module's node) after the same passes. */
    weft_group *g;
    cr_assert_eq(weft_group_create(&g), 0);
    late_runs = 0;
    cr_assert_eq(weft_group_spawn(g, defers_from_dtor, NULL, NULL), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_FOREVER), 0);
    cr_assert_eq(late_runs, 3);
    cr_assert_eq(weft_group_close(g), 0);
    return NULL;
}

/* A chain of defers, each registering the next while the task finishes (a cleanup that calls
 * a library which defers its own): every one runs, however long the chain, as a chain of
 * calls would. (The passes that bound a destructor that re-sets its local cut it at 4.) */
static atomic_int chain_runs;

static void chain_link(void *arg)
{
    intptr_t left = (intptr_t)arg;
    atomic_fetch_add(&chain_runs, 1);
    if (left > 1)
        weft_defer(chain_link, (void *)(left - 1));
}

static void *defers_a_chain(void *arg)
{
    cr_assert_eq(weft_defer(chain_link, arg), 0);
    return NULL;
}

static void *defer_chain_main(void *arg)
{
    (void)arg;
    weft_task *t;
    atomic_store(&chain_runs, 0);
    cr_assert_eq(weft_spawn(&t, defers_a_chain, (void *)(intptr_t)50, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(atomic_load(&chain_runs), 50, "a chain of 50 defers: %d ran",
                 atomic_load(&chain_runs));
    return NULL;
}

Test(task, a_chain_of_defers_registered_while_finishing_runs_whole)
{
    run_main(defer_chain_main, NULL);
}

Test(task, handlers_added_while_finishing_run_in_bounded_passes)
{
    run_main(late_handlers_main, NULL);
}

static void *identity(void *arg)
{
    (void)arg;
    weft_task *self = weft_self();
    return (void *)(intptr_t)(strcmp(weft_task_name(self), "a-rather-long-n") == 0 &&
                              weft_task_id(self) == 2);
}

static void *identity_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_task_id(weft_self()), 1);
    cr_assert_str_eq(weft_task_name(weft_self()), "main");
    weft_task *t;
    weft_spawn(&t, identity, NULL, &(weft_spawn_opts){.name = "a-rather-long-name"});
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    return r;
}

Test(task, id_and_name)
{
    cr_assert_eq(run_main(identity_main, NULL), (void *)1);
}

static void *misuse_main(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_join(weft_self(), NULL, WEFT_FOREVER), -EDEADLK);
    cr_assert_eq(weft_spawn(NULL, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_spawn(&t, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, &(weft_spawn_opts){.stack_size = 100}), -EINVAL);
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, &(weft_spawn_opts){.flags = 0x80}), -EINVAL);
    cr_assert_eq(weft_join(NULL, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_run(NULL, ret_arg, NULL, NULL), -EBUSY);

    /* A join that times out leaves the handle valid. */
    weft_spawn(&t, sleep_forever, &(int){0}, NULL);
    cr_assert_eq(weft_join(t, NULL, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_join(t, NULL, 0), -ETIMEDOUT, "a passed deadline does not block");
    weft_cancel(t);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);

    /* Detached: no join; spawn with DETACHED returns no handle. */
    weft_spawn(&t, ret_arg, NULL, NULL);
    cr_assert_eq(weft_detach(t), 0);
    weft_task *none = (weft_task *)1;
    cr_assert_eq(weft_spawn(&none, ret_arg, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}),
                 0);
    cr_assert_null(none);
    weft_yield();
    return NULL;
}

Test(task, misuse_is_reported_not_fatal)
{
    run_main(misuse_main, NULL);
}

Test(task, calls_outside_a_runtime_return_eperm)
{
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, NULL), -EPERM);
    cr_assert_eq(weft_yield(), -EPERM);
    cr_assert_eq(weft_sleep(1), -EPERM);
    cr_assert_eq(weft_exit(NULL), -EPERM);
    cr_assert_eq(weft_defer(count_dtor, NULL), -EPERM);
    cr_assert_eq(weft_canceled(), -EPERM);
    cr_assert_null(weft_self());
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), -EPERM);
    cr_assert_eq(weft_run(NULL, NULL, NULL, NULL), -EINVAL);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stack_size = 10;
    cr_assert_eq(weft_run(&cfg, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_str_eq(weft_errname(-ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(weft_strerror(-ECANCELED), "cancelled");
}

/* Atomic: in stealing mode (WEFT_MODE=stealing) the tasks may run on several workers. */
static void *add_one(void *arg)
{
    __atomic_fetch_add((long *)arg, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *million_main(void *arg)
{
    long n = (long)(intptr_t)arg;
    long counter = 0;
    enum { BATCH = 10000 };
    static weft_task *ts[BATCH];
    for (long done = 0; done < n; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            cr_assert_eq(weft_spawn(&ts[i], add_one, &counter, NULL), 0);
        for (int i = 0; i < BATCH; i++)
            cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
    }
    cr_assert_eq(counter, n);
    return NULL;
}

Test(task, a_million_tiny_tasks_spawned_and_joined, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    run_main(million_main, (void *)(intptr_t)1000000);
}

static void *steady_main(void *arg)
{
    (void)arg;
    long counter = 0;
    weft_task *ts[100];
    weft_stats before, after;
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            weft_stats_get(&before);
        /* Pinned: the reuse measured is one worker's (stealing mode would move them). */
        for (int i = 0; i < 100; i++)
            weft_spawn(&ts[i], add_one, &counter, &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED});
        for (int i = 0; i < 100; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    weft_stats_get(&after);
    cr_assert_eq(after.nmallocs, before.nmallocs, "spawn/exit in steady state must not malloc");
    cr_assert_eq(after.nmmaps, before.nmmaps, "nor mmap");
    cr_assert_eq(after.nspawned - before.nspawned, 100);
    cr_assert_eq(counter, 300);
    return NULL;
}

Test(task, steady_state_spawn_exit_allocates_nothing)
{
    run_main(steady_main, NULL);
}

/* Atomic: in stealing mode the tasks run on both workers. */
static atomic_int nreaped, nstarted;

static void reaped(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nreaped, 1);
}

static void *leftover(void *arg)
{
    atomic_fetch_add(&nstarted, 1);
    weft_defer(reaped, NULL);
    if (arg)
        weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *shutdown_main(void *arg)
{
    (void)arg;
    atomic_store(&nreaped, 0);
    atomic_store(&nstarted, 0);
    weft_task *t;
    for (int i = 0; i < 100; i++)
        weft_spawn(&t, leftover, (void *)1, NULL); /* parked forever, never joined */
    for (int i = 0; i < 10; i++)
        weft_spawn(&t, leftover, NULL, NULL); /* finished, never joined */
    /* All started: after one yield on one worker; in stealing mode some run on the other
     * worker, whenever it gets to them. */
    weft_yield();
    for (int i = 0; i < 10000 && atomic_load(&nstarted) < 110; i++)
        weft_sleep(WEFT_MSEC);
    cr_assert_eq(atomic_load(&nstarted), 110);
    for (int i = 0; i < 5; i++)
        weft_spawn(NULL, leftover, (void *)1,
                   &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}); /* maybe never started */
    return (void *)(intptr_t)7;
}

Test(task, shutdown_cancels_and_reaps_what_is_left)
{
    cr_assert_eq(run_main(shutdown_main, NULL), (void *)7);
    /* The 5 spawned last may have started on another worker before the shutdown (stealing
     * mode): then they too were cancelled in their sleep and ran their cleanup. */
    int started = atomic_load(&nstarted);
    cr_assert(started >= 110 && started <= 115, "%d started", started);
    cr_assert_eq(atomic_load(&nreaped), started, "every started task ran its cleanup (%d of %d)",
                 atomic_load(&nreaped), started);
}

/* A waker kept after its task finished is harmless, even once the record is reused. */
static weft_waker kept;

static void *keep_waker(void *arg)
{
    (void)arg;
    kept = weft_waker_current();
    return NULL;
}

static void *wait_flag(void *arg)
{
    int *flag = arg;
    weft_sleep(20 * WEFT_MSEC);
    *flag = 1;
    return NULL;
}

static void *stale_waker_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, keep_waker, NULL, NULL);
    weft_join(t, NULL, WEFT_FOREVER);
    weft_waker_wake(kept); /* its task is done: nothing */
    int flag = 0;
    weft_spawn(&t, wait_flag, &flag, NULL); /* reuses the record */
    weft_yield();                           /* now parked in its sleep */
    weft_waker_wake(kept);
    for (int i = 0; i < 10; i++)
        weft_yield();
    cr_assert_eq(flag, 0, "a stale waker woke a later task");
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(flag, 1);
    return NULL;
}

Test(task, waking_a_finished_task_is_harmless)
{
    run_main(stale_waker_main, NULL);
}

/* ---- Reliability: stale handles, defers that exit, the spawn cleanup ---- */

/* Joining twice used to reap the record twice: the next two spawns then shared it. */
static void *stale_main(void *arg)
{
    (void)arg;
    weft_task *t;
    void *r;
    cr_assert_eq(weft_spawn(&t, ret_arg, (void *)7, NULL), 0);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)7);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), -ESRCH, "joined twice");
    cr_assert_eq(weft_detach(t), -ESRCH);
    cr_assert_eq(weft_cancel(t), -ESRCH);
    cr_assert_eq(weft_task_id(t), 0);
    cr_assert_str_eq(weft_task_name(t), "");

    weft_task *a, *b;
    cr_assert_eq(weft_spawn(&a, ret_arg, (void *)1, NULL), 0);
    cr_assert_eq(weft_spawn(&b, ret_arg, (void *)2, NULL), 0);
    cr_assert_neq(a, b, "two live tasks never share a record");
    cr_assert_neq(a, t, "a reaped record is reused last (FIFO)");
    cr_assert_eq(weft_join(a, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)1);
    cr_assert_eq(weft_join(b, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)2);

    /* Detached, finished and recycled: stale too. */
    cr_assert_eq(weft_spawn(&t, ret_arg, NULL, NULL), 0);
    cr_assert_eq(weft_detach(t), 0);
    weft_yield(); /* it runs, finishes, and is reaped */
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), -ESRCH);
    cr_assert_eq(weft_detach(t), -ESRCH);
    return NULL;
}

Test(task, stale_handles_are_esrch_and_never_share_a_record, .timeout = 10)
{
    run_main(stale_main, NULL);
}

static void exit_from_defer(void *arg)
{
    weft_exit(arg);
}

static void *exits_in_defer(void *arg)
{
    (void)arg;
    weft_defer(exit_from_defer, (void *)5);
    return NULL;
}

/* weft_exit inside a defer handler used to lose the handler's node: each such task then
 * cost one more allocation. */
static void *defer_exit_main(void *arg)
{
    (void)arg;
    weft_task *t;
    void *r;
    cr_assert_eq(weft_spawn(&t, exits_in_defer, NULL, NULL), 0);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)5, "the handler's weft_exit sets the result");
    weft_stats before, after;
    cr_assert_eq(weft_stats_get(&before), 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(weft_spawn(&t, exits_in_defer, NULL, NULL), 0);
        cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
        cr_assert_eq(r, (void *)5);
    }
    cr_assert_eq(weft_stats_get(&after), 0);
    cr_assert_eq(after.nmallocs, before.nmallocs, "the handler's node went back to the pool");
    return NULL;
}

Test(task, exit_in_a_defer_handler_returns_its_node)
{
    run_main(defer_exit_main, NULL);
}

static char cleanup_log[32];
static int ncleanup_log;

static void log_char(void *arg)
{
    cleanup_log[ncleanup_log++] = (char)(intptr_t)arg;
}

static void cleanup_logs(void *arg)
{
    cleanup_log[ncleanup_log++] = *(char *)arg;
}

static void *defers_then_parks(void *arg)
{
    (void)arg;
    weft_defer(log_char, (void *)'d');
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *spawn_cleanup_main(void *arg)
{
    (void)arg;
    static char tag_a = 'A', tag_b = 'B', tag_c = 'C';
    ncleanup_log = 0;
    weft_spawn_opts o = {.cleanup = cleanup_logs};
    weft_task *t;
    void *r;

    /* Cancelled before it ever ran: its own weft_defer never registered. */
    cr_assert_eq(weft_spawn(&t, defers_then_parks, &tag_a, &o), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(ncleanup_log, 1, "ran once, before the join returned");
    cr_assert_eq(cleanup_log[0], 'A');

    /* Cancelled while parked: its defer first, then the cleanup. */
    cr_assert_eq(weft_spawn(&t, defers_then_parks, &tag_b, &o), 0);
    weft_yield();
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(ncleanup_log, 3);
    cr_assert_eq(cleanup_log[1], 'd');
    cr_assert_eq(cleanup_log[2], 'B');

    /* Returned normally, detached. */
    o.flags = WEFT_SPAWN_DETACHED;
    cr_assert_eq(weft_spawn(NULL, ret_arg, &tag_c, &o), 0);
    weft_yield();
    cr_assert_eq(ncleanup_log, 4);
    cr_assert_eq(cleanup_log[3], 'C');
    return NULL;
}

Test(task, spawn_cleanup_runs_once_however_the_task_ends)
{
    run_main(spawn_cleanup_main, NULL);
}

/* A spawn cleanup must not block (weft.h): its blocking calls are refused with -EPERM
 * whichever context runs it. They were refused only for a task that never ran; for one that
 * ran they parked its finish (a receive with no sender kept the join waiting for ever). */
static int cleanup_sleep_rc, cleanup_recv_rc;

static void cleanup_blocks(void *arg)
{
    (void)arg;
    cleanup_sleep_rc = weft_sleep(WEFT_MSEC);
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 0), 0);
    int v;
    cleanup_recv_rc = weft_chan_recv(c, &v, WEFT_FOREVER);
    weft_chan_release(c);
}

static void *cleanup_blocks_main(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.cleanup = cleanup_blocks};
    weft_task *t;
    for (int ran = 0; ran < 2; ran++) {
        cleanup_sleep_rc = cleanup_recv_rc = 1;
        cr_assert_eq(weft_spawn(&t, ret_arg, NULL, &o), 0);
        if (!ran)
            cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(cleanup_sleep_rc, -EPERM, "ran %d", ran);
        cr_assert_eq(cleanup_recv_rc, -EPERM, "ran %d", ran);
    }
    cr_assert_eq(weft_sleep(WEFT_USEC), 0, "the refusal ends with the cleanup");
    return NULL;
}

Test(task, a_spawn_cleanup_that_blocks_is_refused, .timeout = 20)
{
    run_main(cleanup_blocks_main, NULL);
}

/* ---- WEFT_SPAWN_CHILD_FIRST ---------------------------------------------------------- */

static char order_log[16];
static int norder_log;

static void *log_then_yield(void *arg)
{
    order_log[norder_log++] = (char)(intptr_t)arg;
    weft_yield();
    order_log[norder_log++] = (char)((intptr_t)arg - 'a' + 'A');
    return arg;
}

static void *child_first_order_main(void *arg)
{
    (void)arg;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST};
    weft_task *q, *c, *d;
    /* Default (queue order): the child waits at the tail until the spawner parks. */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&d, log_then_yield, (void *)(intptr_t)'d', NULL), 0);
    cr_assert_eq(norder_log, 0);
    cr_assert_eq(weft_join(d, NULL, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "dD");

    /* Child first: it runs before the spawn returns; the spawner then queues behind the task
     * already ready (q), and the child's yield puts it behind the spawner. */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&q, log_then_yield, (void *)(intptr_t)'q', NULL), 0);
    cr_assert_eq(weft_spawn(&c, log_then_yield, (void *)(intptr_t)'c', &cf), 0);
    order_log[norder_log++] = 'm';
    cr_assert_str_eq(order_log, "cqm", "the child, then the queue in order, then the spawner");
    void *rq = NULL, *rc = NULL;
    cr_assert_eq(weft_join(q, &rq, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(c, &rc, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "cqmCQ");
    cr_assert_eq(rq, (void *)(intptr_t)'q');
    cr_assert_eq(rc, (void *)(intptr_t)'c');
    return NULL;
}

Test(task, child_first_runs_the_child_before_spawn_returns)
{
    run_main(child_first_order_main, NULL);
}

static void *ret_arg_after_check(void *arg)
{
    /* The spawner is not running: the child is, inside the spawn. */
    cr_assert_neq(weft_self(), NULL);
    return arg;
}

static void *child_first_finish_main(void *arg)
{
    (void)arg;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST};
    /* Children that finish inside their spawn: joined afterwards, each with its result; the
     * finished child's stack goes to the next one (one stack bound at a time). */
    weft_task *ts[100];
    weft_stats st0, st;
    cr_assert_eq(weft_stats_get(&st0), 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(weft_spawn(&ts[i], ret_arg_after_check, (void *)(intptr_t)(i + 1), &cf), 0);
        cr_assert_eq(weft_stats_get(&st), 0);
        cr_assert_eq(st.nstacks_live, st0.nstacks_live, "the child is finished and off its stack");
    }
    cr_assert_eq(weft_stats_get(&st), 0);
    cr_assert_leq(st.nmmaps, st0.nmmaps + 1, "one stack served all 100 children");
    for (int i = 0; i < 100; i++) {
        void *r = NULL;
        cr_assert_eq(weft_join(ts[i], &r, WEFT_FOREVER), 0);
        cr_assert_eq(r, (void *)(intptr_t)(i + 1));
    }

    /* Detached and finishing at once: *out is NULL, the child ran, its cleanup too. */
    ncleanup_log = 0;
    static char tag = 'X';
    weft_spawn_opts od = {.flags = WEFT_SPAWN_CHILD_FIRST | WEFT_SPAWN_DETACHED,
                          .cleanup = cleanup_logs};
    weft_task *none = (weft_task *)&tag;
    cr_assert_eq(weft_spawn(&none, ret_arg, &tag, &od), 0);
    cr_assert_null(none);
    cr_assert_eq(ncleanup_log, 1);
    cr_assert_eq(cleanup_log[0], 'X');
    return NULL;
}

Test(task, child_first_children_that_finish_at_once_are_joined_and_reuse_a_stack)
{
    run_main(child_first_finish_main, NULL);
}

static long spawned_count;

static void *count_one(void *arg)
{
    (void)arg;
    spawned_count++;
    return NULL;
}

static void *log_sleep_char(void *arg)
{
    order_log[norder_log++] = (char)(intptr_t)arg;
    cr_assert_eq(weft_sleep(50 * WEFT_MSEC), 0);
    order_log[norder_log++] = (char)((intptr_t)arg - 'a' + 'A');
    return NULL;
}

/* A child-first spawn by a task alone on its worker: its spawner's place is the head of the
 * ready queue while the child runs, and every order around it is the queue's. */
static void *log_spawn_then_end(void *arg)
{
    (void)arg;
    order_log[norder_log++] = 'c';
    weft_task *x; /* queue order: behind the spawner, whose place is the head */
    cr_assert_eq(weft_spawn(&x, log_then_yield, (void *)(intptr_t)'x', NULL), 0);
    return x;
}

static void *log_order_char(void *arg)
{
    order_log[norder_log++] = (char)(intptr_t)arg;
    return NULL;
}

static void *log_nest(void *arg)
{
    (void)arg;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST};
    order_log[norder_log++] = 'c';
    weft_task *g;
    /* Its own spawner is at the head, and this task goes behind it: the grandchild's end
     * resumes the spawner first. */
    cr_assert_eq(weft_spawn(&g, log_order_char, (void *)(intptr_t)'g', &cf), 0);
    order_log[norder_log++] = 'C';
    cr_assert_eq(weft_join(g, NULL, WEFT_FOREVER), 0);
    return NULL;
}

static void *child_first_alone_order_main(void *arg)
{
    (void)arg;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST};
    weft_task *c, *x = NULL;
    /* The child sleeps: the spawner runs meanwhile (long before the timer, even when the
     * park finds the tick's budget spent and goes through the loop first). */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&c, log_sleep_char, (void *)(intptr_t)'s', &cf), 0);
    order_log[norder_log++] = 'm';
    cr_assert_eq(weft_join(c, NULL, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "smS");

    /* The child yields: its spawner (at the head) runs before it. */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&c, log_then_yield, (void *)(intptr_t)'c', &cf), 0);
    order_log[norder_log++] = 'm';
    cr_assert_eq(weft_join(c, NULL, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "cmC");

    /* The child queues a task and ends: the spawner runs before that task. */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&c, log_spawn_then_end, NULL, &cf), 0);
    order_log[norder_log++] = 'm';
    cr_assert_eq(weft_join(c, (void **)&x, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(x, NULL, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "cmxX");

    /* Nested child-first spawns. */
    memset(order_log, 0, sizeof order_log);
    norder_log = 0;
    cr_assert_eq(weft_spawn(&c, log_nest, NULL, &cf), 0);
    order_log[norder_log++] = 'm';
    cr_assert_eq(weft_join(c, NULL, WEFT_FOREVER), 0);
    cr_assert_str_eq(order_log, "cgmC");

    /* Many in a row, past a tick's budget (the child's end then goes to the loop, which
     * must find the spawner queued). */
    long before = spawned_count;
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(
            weft_spawn(NULL, count_one, NULL,
                       &(weft_spawn_opts){.flags = WEFT_SPAWN_CHILD_FIRST | WEFT_SPAWN_DETACHED}),
            0);
    cr_assert_eq(spawned_count, before + 5000);
    return NULL;
}

Test(task, child_first_with_the_spawner_alone_keeps_the_queue_order)
{
    run_main(child_first_alone_order_main, NULL);
}

static void *park_until_cancelled(void *arg)
{
    int *state = arg;
    *state = 1;
    int r = weft_sleep_until(WEFT_FOREVER);
    *state = r == -ECANCELED ? 2 : 3;
    return NULL;
}

static void *child_first_cancel_main(void *arg)
{
    (void)arg;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST};
    /* A child that parks inside its spawn: the spawn returns with it parked; cancelling it
     * wakes it with -ECANCELED, and the join reports the cancellation. */
    int state = 0;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, park_until_cancelled, &state, &cf), 0);
    cr_assert_eq(state, 1, "the child ran up to its park");
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(state, 1, "the cancelled child waits for its turn");
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(state, 2);
    cr_assert_eq(r, WEFT_CANCELED);

    /* A cancelled spawner still runs its child first, and gets its own -ECANCELED from its
     * next blocking call (the spawn itself succeeds). */
    state = 0;
    cr_assert_eq(weft_cancel(weft_self()), 0);
    cr_assert_eq(weft_spawn(&t, park_until_cancelled, &state, &cf), 0);
    cr_assert_eq(state, 1);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_yield(), -ECANCELED, "the yield still lets the child finish");
    cr_assert_eq(state, 2);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0, "a finished task is joined at once");
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(weft_sleep(WEFT_MSEC), -ECANCELED);
    return NULL;
}

Test(task, child_first_children_are_cancelled_and_joined_like_any)
{
    run_main(child_first_cancel_main, NULL);
}

/* A future whose first poll spawns a child-first task: a stackless task cannot yield, so the
 * child is queued (it has not run when the spawn returns). */
typedef struct spawning_future {
    weft_future base;
    int child_state;
    int state_at_return;
    weft_task *child;
} spawning_future;

static void *mark_ran(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

static int spawning_poll(weft_future *self, weft_context *cx)
{
    (void)cx;
    spawning_future *f = (spawning_future *)self;
    const weft_spawn_opts cf = {.flags = WEFT_SPAWN_CHILD_FIRST | WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn(NULL, mark_ran, &f->child_state, &cf), 0);
    f->state_at_return = f->child_state;
    weft_future_complete(self, 0, NULL);
    return WEFT_READY;
}

static const weft_future_ops spawning_ops = {spawning_poll, NULL};

static void *child_first_from_stackless_main(void *arg)
{
    (void)arg;
    spawning_future f = {0};
    weft_future_init(&f.base, &spawning_ops);
    weft_task *t;
    /* The flag is accepted for a stackless task too (and ignored: it is queued). */
    cr_assert_eq(
        weft_spawn_future(&t, &f.base, &(weft_spawn_opts){.flags = WEFT_SPAWN_CHILD_FIRST}), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(f.state_at_return, 0, "queued, not run, from a stackless spawner");
    weft_yield();
    cr_assert_eq(f.child_state, 1, "it ran once the main task parked or yielded");
    return NULL;
}

Test(task, child_first_from_a_stackless_task_queues_the_child)
{
    run_main(child_first_from_stackless_main, NULL);
}

/* ---- A task's status by its handle ---- */

static weft_event status_go = WEFT_EVENT_INIT;

static void *status_waiter(void *arg)
{
    (void)arg;
    weft_event_wait(&status_go, WEFT_FOREVER);
    return (void *)3;
}

static void *status_self(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_task_status(weft_self());
}

/* Pinned: in stealing mode a thief would run them elsewhere, at its own pace. */
static const weft_spawn_opts here = {.flags = WEFT_SPAWN_PINNED};

static void *status_main(void *arg)
{
    (void)arg;
    weft_task *w, *s, *c;
    cr_assert_eq(weft_spawn(&w, status_waiter, NULL, &here), 0);
    cr_assert_eq(weft_spawn(&s, status_self, NULL, &here), 0);
    cr_assert_eq(weft_task_status(w), WEFT_TASK_READY, "never run yet");
    cr_assert_eq(weft_task_status(weft_self()), WEFT_TASK_RUNNING);
    weft_yield();
    cr_assert_eq(weft_task_status(w), WEFT_TASK_PARKED);
    cr_assert_eq(weft_task_status(s), WEFT_TASK_FINISHED);
    void *r;
    cr_assert_eq(weft_join(s, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, WEFT_TASK_RUNNING, "its own status, from inside");
    cr_assert_eq(weft_task_status(s), -ESRCH, "joined: the handle is stale");
    weft_event_set(&status_go);
    weft_yield();
    cr_assert_eq(weft_task_status(w), WEFT_TASK_FINISHED);
    cr_assert_eq(weft_join(w, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)3);
    cr_assert_eq(weft_spawn(&c, status_waiter, NULL, &here), 0);
    weft_event_reset(&status_go);
    weft_yield();
    cr_assert_eq(weft_cancel(c), 0);
    weft_yield();
    cr_assert_eq(weft_task_status(c), WEFT_TASK_CANCELLED);
    cr_assert_eq(weft_join(c, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    cr_assert_eq(weft_task_status(NULL), -EINVAL);
    return NULL;
}

Test(task, status_by_handle_without_joining)
{
    run_main(status_main, NULL);
}
