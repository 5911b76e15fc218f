/* Shards: weft_submit_to (results from every worker, the caller's own worker, futures dropped
 * or given up on before completion, the runtime stopping with submissions in flight, a fn
 * that leaves through weft_exit, backpressure past a ring's worth), values per shard (init
 * and fini on each worker, the local instance, map-reduce with its deadline and cancellation
 * against a worker that does not come back to its loop), weft_shard_of, and listeners served
 * by every shard through both models over real TCP (and a Unix socket), with every misuse. */
#include <dirent.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static weft_config shard_cfg(unsigned n)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = n;
    c.mode = WEFT_MODE_SHARDED;
    return c;
}

/* Sleeps in small steps until *flag is set: a wait, not a synchronisation that decides a
 * test's outcome (every outcome is checked afterwards, whatever the timing). */
static void wait_flag(atomic_int *flag, int value)
{
    while (atomic_load(flag) < value)
        weft_sleep(50 * WEFT_USEC);
}

/* ---- weft_submit_to ------------------------------------------------------------------------ */

static void *where(void *arg)
{
    cr_assert_neq(weft_self(), NULL);       /* a task of its own */
    cr_assert_eq(weft_sleep(WEFT_USEC), 0); /* which may block */
    return (void *)(intptr_t)(weft_worker_index() * 1000 + (intptr_t)arg);
}

static void *submit_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    weft_future *f[8];
    for (unsigned k = 0; k < n; k++)
        cr_assert_eq(weft_submit_to(k, where, (void *)(intptr_t)k, &f[k]), 0);
    for (unsigned k = 0; k < n; k++) {
        void *v = NULL;
        cr_assert_eq(weft_await(f[k], &v, WEFT_FOREVER), 0);
        cr_assert_eq((intptr_t)v, (intptr_t)k * 1001, "worker %u", k);
        /* A completed future answers again, the same. */
        cr_assert_eq(weft_await(f[k], &v, 0), 0);
        weft_future_destroy(f[k]);
    }
    weft_future *x = NULL;
    cr_assert_eq(weft_submit_to(n, where, NULL, &x), -EINVAL);
    cr_assert_eq(weft_submit_to(0, NULL, NULL, &x), -EINVAL);
    cr_assert_eq(weft_submit_to(0, where, NULL, NULL), -EINVAL);
    cr_assert_eq(x, NULL);
    return NULL;
}

Test(shard, submit_to_runs_on_the_worker_named)
{
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, submit_main, NULL);
    weft_future *f;
    cr_assert_eq(weft_submit_to(0, where, NULL, &f), -EPERM);
}

static void *own_main(void *arg)
{
    (void)arg;
    weft_future *f;
    cr_assert_eq(weft_submit_to(0, where, (void *)7, &f), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(f, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)7);
    weft_future_destroy(f);
    return NULL;
}

Test(shard, submit_to_the_own_worker_with_one_worker)
{
    weft_config c = shard_cfg(1);
    run_main_cfg(&c, own_main, NULL);
}

static atomic_int gate, gated_ran, gated_done;

static void *gated(void *arg)
{
    atomic_fetch_add(&gated_ran, 1);
    wait_flag(&gate, 1);
    atomic_fetch_add(&gated_done, 1);
    return arg;
}

static void *awaiter(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    weft_future *f;
    cr_assert_eq(weft_submit_to(k, gated, (void *)1, &f), 0);
    int r = weft_await(f, NULL, WEFT_FOREVER);
    weft_future_destroy(f); /* pending: the result that comes later is dropped */
    return (void *)(intptr_t)r;
}

/* The future dropped before completion: straight away, after a deadline, and by a cancelled
 * awaiter. The remote functions keep running and their results land in live memory (ASan
 * would report a write to the freed record; the leak check, a record never freed). */
static void *drop_main(void *arg)
{
    (void)arg;
    atomic_store(&gate, 0);
    atomic_store(&gated_ran, 0);
    atomic_store(&gated_done, 0);
    weft_future *f;
    cr_assert_eq(weft_submit_to(1, gated, NULL, &f), 0);
    weft_future_destroy(f);

    cr_assert_eq(weft_submit_to(2, gated, NULL, &f), 0);
    cr_assert_eq(weft_await(f, NULL, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_future_destroy(f);

    weft_task *t;
    cr_assert_eq(weft_spawn(&t, awaiter, (void *)3, NULL), 0);
    wait_flag(&gated_ran, 3);
    cr_assert_eq(weft_cancel(t), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED); /* its await returned -ECANCELED */

    /* Own worker too: the same protocol without a message. */
    cr_assert_eq(weft_submit_to(0, gated, NULL, &f), 0);
    weft_future_destroy(f);

    atomic_store(&gate, 1);
    wait_flag(&gated_done, 4); /* every remote fn ran to its end */
    return NULL;
}

Test(shard, a_future_dropped_before_completion)
{
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, drop_main, NULL);
    cr_assert_eq(atomic_load(&gated_done), 4);
}

static void *exits(void *arg)
{
    weft_exit(arg);
    return NULL;
}

static void *cancels_itself(void *arg)
{
    weft_cancel(weft_self());
    return arg;
}

static void *endings_main(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < 2; k++) {
        weft_future *f;
        void *v = (void *)1;
        cr_assert_eq(weft_submit_to(k, exits, (void *)5, &f), 0);
        cr_assert_eq(weft_await(f, &v, WEFT_FOREVER), -EINTR);
        cr_assert_eq(v, NULL);
        weft_future_destroy(f);
        cr_assert_eq(weft_submit_to(k, cancels_itself, (void *)6, &f), 0);
        cr_assert_eq(weft_await(f, &v, WEFT_FOREVER), -ECANCELED);
        cr_assert_eq(v, (void *)6); /* the value is kept, for whoever must free it */
        weft_future_destroy(f);
    }
    return NULL;
}

Test(shard, a_fn_that_exits_or_is_cancelled)
{
    weft_config c = shard_cfg(2);
    run_main_cfg(&c, endings_main, NULL);
}

static void *plus_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

static void *await_elsewhere(void *arg)
{
    weft_future *f = arg;
    /* Another worker's future: its result reaches this worker's awaiter as well. */
    void *v = NULL;
    cr_assert_eq(weft_await(f, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)42);
    return NULL;
}

static void *destroy_elsewhere(void *arg)
{
    weft_future_destroy(arg);
    return NULL;
}

static void *elsewhere_main(void *arg)
{
    (void)arg;
    weft_future *f;
    cr_assert_eq(weft_submit_to(1, plus_one, (void *)41, &f), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn_on(1, &t, await_elsewhere, f, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    void *v;
    cr_assert_eq(weft_await(f, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)42);
    cr_assert_eq(weft_spawn_on(1, &t, destroy_elsewhere, f, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(shard, a_future_polled_or_destroyed_on_another_worker)
{
    weft_config c = shard_cfg(2);
    run_main_cfg(&c, elsewhere_main, NULL);
}

/* 3,000 submissions to one worker before the first await: three rings' worth, so the caller
 * parks for room; every result comes back, in a combinator and a stackless task too. */
static void *many_main(void *arg)
{
    (void)arg;
    enum { N = 3000 };
    weft_future **f = malloc(N * sizeof *f);
    for (uintptr_t i = 0; i < N; i++)
        cr_assert_eq(weft_submit_to(1, plus_one, (void *)i, &f[i]), 0);
    weft_future *all;
    cr_assert_eq(weft_future_all(&all, f, N), 0);
    cr_assert_eq(weft_await(all, NULL, WEFT_FOREVER), 0);
    weft_future_destroy(all);
    for (uintptr_t i = 0; i < N; i++) {
        void *v = NULL;
        cr_assert_eq(weft_await(f[i], &v, 0), 0);
        cr_assert_eq(v, (void *)(i + 1));
        weft_future_destroy(f[i]);
    }
    free(f);
    /* Driven by a stackless task: polled on the loop, woken by the reply. */
    weft_future *g;
    cr_assert_eq(weft_submit_to(1, plus_one, (void *)99, &g), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn_future(&t, g, NULL), 0);
    void *v = NULL;
    cr_assert_eq(weft_join(t, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)100);
    return NULL;
}

Test(shard, submissions_past_a_ring_and_in_combinators)
{
    weft_config c = shard_cfg(2);
    run_main_cfg(&c, many_main, NULL);
}

/* The runtime stops with submissions in flight everywhere: running (sleeping forever),
 * queued, arriving after the stop, and already dropped. Each watched one completes with
 * -ECANCELED (its fn ran and was cancelled, or never ran), none is lost (the watchers only
 * finish once theirs completes), and nothing leaks. */
static atomic_int watching, watched, watched_cancelled;

static void *sleeps_forever(void *arg)
{
    cr_assert_eq(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
    return arg;
}

static void *watcher(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    weft_future *f;
    cr_assert_eq(weft_submit_to(k, sleeps_forever, (void *)0x77, &f), 0);
    atomic_fetch_add(&watching, 1);
    int r = weft_await(f, NULL, WEFT_FOREVER);
    cr_assert_eq(r, -ECANCELED); /* the watcher's own cancellation, or the future's */
    /* Cancelled, it may not park, but it may yield: wait for the future's own end. */
    weft_context cx = {weft_waker_current()};
    while (weft_future_poll(f, &cx) == WEFT_PENDING)
        weft_yield();
    atomic_fetch_add(&watched, 1);
    if (f->status == -ECANCELED && (f->value == (void *)0x77 || f->value == NULL))
        atomic_fetch_add(&watched_cancelled, 1);
    weft_future_destroy(f);
    return NULL;
}

static void *stop_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    for (unsigned i = 0; i < 40; i++)
        cr_assert_eq(weft_spawn_on(i % n, NULL, watcher, (void *)(uintptr_t)((i + 1) % n), &o), 0);
    for (unsigned i = 0; i < 200; i++) {
        weft_future *f;
        cr_assert_eq(weft_submit_to(i % n, sleeps_forever, NULL, &f), 0);
        weft_future_destroy(f);
    }
    wait_flag(&watching, 40); /* every watcher has its future */
    return NULL;              /* the watchers' submissions are running, queued or on their way */
}

Test(shard, the_runtime_stops_with_submissions_in_flight)
{
    atomic_store(&watching, 0);
    atomic_store(&watched, 0);
    atomic_store(&watched_cancelled, 0);
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, stop_main, NULL);
    cr_assert_eq(atomic_load(&watched), 40);
    cr_assert_eq(atomic_load(&watched_cancelled), 40);
}

/* A submission still in flight when the main task returns: the runtime's stop cancels its
 * task, whose reply arrives during the shutdown. The future, kept past weft_run and polled
 * there, completes: -ECANCELED with what fn returned (it stayed pending for ever, and the
 * value that may need freeing was out of reach). */
static weft_future *kept_future;
static atomic_int kept_started;

static void *sleeps_long(void *arg)
{
    (void)arg;
    atomic_store(&kept_started, 1);
    cr_assert_eq(weft_sleep(3600 * WEFT_SEC), -ECANCELED);
    return (void *)0xabc;
}

static void *leave_a_submission(void *arg)
{
    (void)arg;
    atomic_store(&kept_started, 0);
    cr_assert_eq(weft_submit_to(1, sleeps_long, NULL, &kept_future), 0);
    wait_flag(&kept_started, 1); /* it runs, and is cancelled in its sleep by the stop */
    return NULL;
}

Test(shard, a_future_kept_past_the_run_reads_as_completed)
{
    weft_config c = shard_cfg(2);
    run_main_cfg(&c, leave_a_submission, NULL);
    weft_context cx = {{NULL, 0}};
    cr_assert_eq(weft_future_poll(kept_future, &cx), WEFT_READY);
    cr_assert_eq(kept_future->ready, 1);
    cr_assert_eq(kept_future->status, -ECANCELED);
    cr_assert_eq(kept_future->value, (void *)0xabc);
    weft_future_destroy(kept_future);
}

/* ---- Sharded values -------------------------------------------------------------------- */

typedef struct counter {
    unsigned worker;
    int inited;
    uint64_t count;
} counter;

static atomic_uint fini_mask;

static void counter_init(void *value, unsigned worker, void *arg)
{
    counter *c = value;
    cr_assert_eq(arg, (void *)&fini_mask);
    cr_assert_eq(weft_worker_index(), (int)worker, "init runs on its instance's worker");
    cr_assert_eq(c->inited, 0, "zeroed before init");
    cr_assert_eq(c->count, 0);
    c->worker = worker;
    c->inited = 1;
}

static void counter_fini(void *value, unsigned worker, void *arg)
{
    counter *c = value;
    (void)arg;
    cr_assert_eq(weft_worker_index(), (int)worker);
    cr_assert_eq(c->worker, worker);
    atomic_fetch_or(&fini_mask, 1u << worker);
}

static void *bump_local(void *arg)
{
    counter *c = weft_sharded_local(arg);
    cr_assert_neq(c, NULL);
    cr_assert_eq(c->worker, (unsigned)weft_worker_index());
    cr_assert_eq((uintptr_t)c % 64, 0, "64-byte aligned");
    c->count += 10 * (c->worker + 1);
    return c;
}

static void *count_of(void *value, unsigned worker, void *arg)
{
    counter *c = value;
    cr_assert_eq(weft_worker_index(), (int)worker);
    atomic_fetch_add((atomic_int *)arg, 1);
    return (void *)(uintptr_t)c->count;
}

static void *sum(void *acc, void *x, void *arg)
{
    (void)arg;
    return (void *)((uintptr_t)acc + (uintptr_t)x);
}

static void *sharded_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    weft_sharded *s;
    cr_assert_eq(weft_sharded_create(&s, sizeof(counter), counter_init, counter_fini, &fini_mask),
                 0);
    void *seen[8];
    for (unsigned k = 0; k < n; k++) {
        weft_future *f;
        cr_assert_eq(weft_submit_to(k, bump_local, s, &f), 0);
        cr_assert_eq(weft_await(f, &seen[k], WEFT_FOREVER), 0);
        weft_future_destroy(f);
        for (unsigned j = 0; j < k; j++)
            cr_assert_neq(seen[j], seen[k], "each worker its own instance");
    }
    cr_assert_eq(weft_sharded_local(s), seen[0]);
    atomic_int calls = 0;
    void *total = NULL;
    cr_assert_eq(weft_sharded_reduce(s, count_of, sum, &calls, &total, WEFT_FOREVER), 0);
    cr_assert_eq((uintptr_t)total, 10 * n * (n + 1) / 2);
    cr_assert_eq(atomic_load(&calls), (int)n);
    total = (void *)1;
    cr_assert_eq(weft_sharded_reduce(s, count_of, NULL, &calls, &total, WEFT_FOREVER), 0);
    cr_assert_eq(total, NULL, "no reduce: map for its effect only");
    cr_assert_eq(atomic_load(&calls), 2 * (int)n);
    /* A deadline already passed still lets the maps that can run at once run... or gives up:
     * either way, nothing of it runs afterwards (checked in the next test). */

    /* Misuse. */
    cr_assert_eq(weft_sharded_create(NULL, 8, NULL, NULL, NULL), -EINVAL);
    weft_sharded *x;
    cr_assert_eq(weft_sharded_create(&x, 0, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_sharded_create(&x, ((size_t)1 << 30) + 1, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_sharded_reduce(NULL, count_of, sum, NULL, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_sharded_reduce(s, NULL, sum, NULL, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_sharded_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_sharded_local(NULL), NULL);

    atomic_store(&fini_mask, 0);
    cr_assert_eq(weft_sharded_destroy(s), 0);
    cr_assert_eq(atomic_load(&fini_mask), (1u << n) - 1, "fini ran on every worker");

    /* No init, no fini: zeroed instances, nothing to run at the end. */
    cr_assert_eq(weft_sharded_create(&x, 1, NULL, NULL, NULL), 0);
    cr_assert_eq(*(unsigned char *)weft_sharded_local(x), 0);
    cr_assert_eq(weft_sharded_destroy(x), 0);
    return NULL;
}

Test(shard, values_per_shard_and_a_map_reduce)
{
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, sharded_main, NULL);
    cr_assert_eq(weft_sharded_create(NULL, 8, NULL, NULL, NULL), -EPERM);
    cr_assert_eq(weft_sharded_reduce(NULL, count_of, sum, NULL, NULL, WEFT_FOREVER), -EPERM);
    cr_assert_eq(weft_sharded_destroy(NULL), -EPERM);
    cr_assert_eq(weft_sharded_local(NULL), NULL);
}

Test(shard, values_per_shard_with_one_worker)
{
    weft_config c = shard_cfg(1);
    run_main_cfg(&c, sharded_main, NULL);
}

/* A worker that does not come back to its loop: a map-reduce gives up at its deadline or
 * when cancelled, and the map withdrawn from that worker never runs, not even once the
 * worker drains its messages. */
static atomic_int hog_spinning, hog_release;
static atomic_int map_calls[4];

static void *hog(void *arg)
{
    (void)arg;
    atomic_store(&hog_spinning, 1);
    while (!atomic_load(&hog_release)) /* no yield: its worker's loop does not run */
        ;
    return NULL;
}

static void *count_calls(void *value, unsigned worker, void *arg)
{
    (void)value, (void)arg;
    atomic_fetch_add(&map_calls[worker], 1);
    return NULL;
}

static atomic_int reducer_got;

static void *reducer(void *arg)
{
    atomic_store(&reducer_got,
                 weft_sharded_reduce(arg, count_calls, sum, NULL, NULL, WEFT_FOREVER));
    return NULL;
}

/* A sharded value with no init and no fini, the map counts zeroed, and worker 1 held by a
 * hog that spins until hog_release (*hog: its task, to join). */
static weft_sharded *value_and_a_hog(weft_task **hog_task)
{
    weft_sharded *s;
    cr_assert_eq(weft_sharded_create(&s, 8, NULL, NULL, NULL), 0);
    for (int k = 0; k < 4; k++)
        atomic_store(&map_calls[k], 0);
    atomic_store(&hog_spinning, 0);
    atomic_store(&hog_release, 0);
    cr_assert_eq(weft_spawn_on(1, hog_task, hog, NULL, NULL), 0);
    wait_flag(&hog_spinning, 1);
    return s;
}

static void *stuck_main(void *arg)
{
    (void)arg;
    weft_task *h;
    weft_sharded *s = value_and_a_hog(&h);

    void *r = (void *)1;
    cr_assert_eq(
        weft_sharded_reduce(s, count_calls, sum, NULL, &r, weft_deadline_in(2 * WEFT_MSEC)),
        -ETIMEDOUT);
    cr_assert_eq(r, (void *)1, "untouched");
    cr_assert_eq(atomic_load(&map_calls[0]), 1, "the caller's own map ran first");

    weft_task *t;
    cr_assert_eq(weft_spawn(&t, reducer, s, NULL), 0);
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(atomic_load(&reducer_got), -ECANCELED);

    atomic_store(&hog_release, 1);
    /* The join's message follows the withdrawn maps' in the ring to worker 1: once it is
     * answered, worker 1 has seen them. */
    cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(atomic_load(&map_calls[1]), 0, "a withdrawn map never runs");
    /* A task already cancelled: -ECANCELED at once, and no map runs. */
    int ran_here = atomic_load(&map_calls[0]); /* ours, and the reducer's before its cancel */
    weft_cancel(weft_self());
    cr_assert_eq(weft_sharded_reduce(s, count_calls, sum, NULL, NULL, WEFT_FOREVER), -ECANCELED);
    cr_assert_eq(atomic_load(&map_calls[0]), ran_here);
    /* Destroying is uncancellable: it still runs (here with no fini) and frees. */
    cr_assert_eq(weft_sharded_destroy(s), 0);
    return NULL;
}

Test(shard, a_map_reduce_gives_up_on_a_stuck_worker)
{
    weft_config c = shard_cfg(4);
    /* The hog must keep its worker: no involuntary hand-off, whatever WEFT_MODE or
     * WEFT_HANDOFF_US say (with it, worker 1 went on elsewhere within the 2 ms deadline). */
    c.handoff_us = -1;
    run_main_cfg(&c, stuck_main, NULL);
}

/* A destroy while another task's map-reduce waits for a worker: refused with -EBUSY, and
 * the sharded value stays whole (it was freed under the reduce, which then read it). And
 * a map's blocking calls are refused on the caller's worker as on the others, so the
 * calling task never parks (nor, in stealing mode, moves) inside its own worker's map. */
static atomic_int slept[4];

static void *sleep_in_map(void *value, unsigned worker, void *arg)
{
    (void)value, (void)arg;
    atomic_store(&slept[worker], weft_sleep(WEFT_USEC));
    return NULL;
}

static void *busy_destroy_main(void *arg)
{
    (void)arg;
    weft_task *h, *t;
    weft_sharded *s = value_and_a_hog(&h);
    cr_assert_eq(weft_spawn(&t, reducer, s, NULL), 0);
    while (atomic_load(&map_calls[0]) == 0) /* its own worker's map has run: it waits now */
        weft_yield();
    cr_assert_eq(weft_sharded_destroy(s), -EBUSY);
    atomic_store(&hog_release, 1);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(atomic_load(&reducer_got), 0);
    cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);

    for (int k = 0; k < 4; k++)
        atomic_store(&slept[k], 1);
    cr_assert_eq(weft_sharded_reduce(s, sleep_in_map, NULL, NULL, NULL, WEFT_FOREVER), 0);
    for (unsigned k = 0; k < weft_worker_count(); k++)
        cr_assert_eq(atomic_load(&slept[k]), -EPERM, "worker %u's map slept: %d", k,
                     atomic_load(&slept[k]));
    cr_assert_eq(weft_sharded_destroy(s), 0);
    return NULL;
}

Test(shard, a_destroy_under_a_map_reduce_is_refused)
{
    weft_config c = shard_cfg(2);
    c.handoff_us = -1; /* the hog keeps its worker (see above) */
    run_main_cfg(&c, busy_destroy_main, NULL);
}

/* ---- weft_shard_of --------------------------------------------------------------------- */

static void *shard_of_main(void *arg)
{
    (void)arg;
    unsigned n = weft_worker_count();
    unsigned hits[8] = {0};
    for (uint64_t h = 0; h < 10000; h++) {
        int k = weft_shard_of(h);
        cr_assert(k >= 0 && (unsigned)k < n);
        cr_assert_eq(k, weft_shard_of(h), "stable");
        uint64_t want = (((h * 0x9E3779B97F4A7C15ull) >> 32) * n) >> 32;
        cr_assert_eq((uint64_t)k, want, "the documented mapping");
        hits[k]++;
        /* Aligned pointers (16 bytes apart) spread too. */
        hits[weft_shard_of(0x7f0000000000ull + h * 16)]++;
    }
    for (unsigned k = 0; k < n; k++)
        cr_assert(hits[k] > 2 * 10000 / n * 9 / 10, "worker %u got %u of %u", k, hits[k],
                  2 * 10000);
    return NULL;
}

Test(shard, shard_of_spreads_and_is_stable)
{
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, shard_of_main, NULL);
    c = shard_cfg(3);
    run_main_cfg(&c, shard_of_main, NULL);
    c = shard_cfg(1);
    run_main_cfg(&c, shard_of_main, NULL);
    cr_assert_eq(weft_shard_of(42), -EPERM);
}

/* ---- Listeners served by every shard ----------------------------------------------------- */

/* Answers each byte with the byte and its worker's index, until end of stream. */
static atomic_int conns_ended;

static void tell_worker(int fd, void *arg)
{
    cr_assert_eq(arg, (void *)&conns_ended);
    char c;
    for (;;) {
        ssize_t r = weft_read(fd, &c, 1, WEFT_FOREVER);
        if (r <= 0)
            break;
        char out[2] = {c, (char)weft_worker_index()};
        if (weft_write(fd, out, 2, WEFT_FOREVER) != 2)
            break;
    }
    weft_close(fd);
    atomic_fetch_add(&conns_ended, 1);
}

/* One round trip on a connection: returns the worker that served it. */
static int ask(int fd)
{
    char out[2];
    cr_assert_eq(weft_write(fd, "x", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_read(fd, out, 2, weft_deadline_in(5 * WEFT_SEC)), 2);
    cr_assert_eq(out[0], 'x');
    return out[1];
}

typedef struct serve_case {
    unsigned flags;
    const char *unix_path; /* NULL: TCP on 127.0.0.1 */
    int nconns;
} serve_case;

static void *serve_main(void *arg)
{
    serve_case *sc = arg;
    unsigned n = weft_worker_count();
    atomic_store(&conns_ended, 0);
    weft_addr addr;
    if (sc->unix_path) {
        unlink(sc->unix_path);
        cr_assert_eq(weft_addr_unix(&addr, sc->unix_path), 0);
    } else {
        cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
    }
    weft_server *srv;
    cr_assert_eq(weft_serve(&srv, &addr, sc->flags, tell_worker, &conns_ended), 0);
    weft_addr bound;
    cr_assert_eq(weft_server_addr(srv, &bound), 0);
    if (!sc->unix_path)
        cr_assert_gt(weft_addr_port(&bound), 0);
    unsigned hits[8] = {0};
    int *fds = malloc(sizeof(int) * (size_t)sc->nconns);
    for (int i = 0; i < sc->nconns; i++) {
        fds[i] = weft_dial(&bound, weft_deadline_in(5 * WEFT_SEC));
        cr_assert_geq(fds[i], 0, "dial: %s", weft_strerror(fds[i]));
        int k = ask(fds[i]); /* one at a time: accepted in the order dialled */
        cr_assert(k >= 0 && (unsigned)k < n);
        hits[k]++;
        if ((sc->flags & WEFT_SERVE_ACCEPTOR) || sc->unix_path) {
            /* Round-robin from the worker after the acceptor's (the caller's: 0). */
            cr_assert_eq(k, (int)((1 + (unsigned)i) % n), "connection %d", i);
        }
    }
    unsigned used = 0;
    for (unsigned k = 0; k < n; k++)
        used += hits[k] > 0;
    if (n > 1)
        cr_assert_geq(used, 2, "connections landed on %u worker(s)", used);
    /* Closing the server stops the accepting only: the connections go on. */
    cr_assert_eq(weft_server_close(srv), 0);
    int late = weft_dial(&bound, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_eq(late, -ECONNREFUSED, "a closed server refuses: %s", weft_strerror(late));
    for (int i = 0; i < sc->nconns; i++) {
        ask(fds[i]);
        weft_close(fds[i]);
    }
    free(fds);
    wait_flag(&conns_ended, sc->nconns);
    if (sc->unix_path)
        unlink(sc->unix_path);
    return NULL;
}

Test(shard, serve_with_a_listener_per_worker)
{
    weft_config c = shard_cfg(4);
    serve_case sc = {0, NULL, 64};
    run_main_cfg(&c, serve_main, &sc);
}

Test(shard, serve_with_one_acceptor_round_robin)
{
    weft_config c = shard_cfg(4);
    serve_case sc = {WEFT_SERVE_ACCEPTOR, NULL, 9};
    run_main_cfg(&c, serve_main, &sc);
}

Test(shard, serve_a_unix_socket_takes_one_acceptor)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-shard-%d.sock", (int)getpid());
    weft_config c = shard_cfg(3);
    serve_case sc = {0, path, 6};
    run_main_cfg(&c, serve_main, &sc);
}

Test(shard, serve_with_one_worker)
{
    weft_config c = shard_cfg(1);
    serve_case sc = {0, NULL, 4};
    run_main_cfg(&c, serve_main, &sc);
    sc.flags = WEFT_SERVE_ACCEPTOR;
    run_main_cfg(&c, serve_main, &sc);
}

static void never(int fd, void *arg)
{
    (void)fd, (void)arg;
    cr_assert_fail("no connection expected");
}

static void *serve_misuse_main(void *arg)
{
    (void)arg;
    weft_addr addr;
    cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
    weft_server *srv;
    cr_assert_eq(weft_serve(NULL, &addr, 0, never, NULL), -EINVAL);
    cr_assert_eq(weft_serve(&srv, NULL, 0, never, NULL), -EINVAL);
    cr_assert_eq(weft_serve(&srv, &addr, 0, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_serve(&srv, &addr, 0x8000, never, NULL), -EINVAL);
    cr_assert_eq(weft_server_close(NULL), -EINVAL);
    cr_assert_eq(weft_server_addr(NULL, &addr), -EINVAL);
    /* A port taken by a listener without SO_REUSEPORT: the bind fails here, nothing stays. */
    int lfd = weft_listen(&addr, 0, 0);
    cr_assert_geq(lfd, 0);
    weft_addr taken;
    cr_assert_eq(weft_addr_local(lfd, &taken), 0);
    cr_assert_eq(weft_serve(&srv, &taken, 0, never, NULL), -EADDRINUSE);
    cr_assert_eq(weft_serve(&srv, &taken, WEFT_SERVE_ACCEPTOR, never, NULL), -EADDRINUSE);
    weft_close(lfd);
    return NULL;
}

Test(shard, serve_misuse)
{
    weft_config c = shard_cfg(2);
    run_main_cfg(&c, serve_misuse_main, NULL);
    weft_addr addr;
    weft_addr_ip(&addr, "127.0.0.1", 0);
    weft_server *srv;
    cr_assert_eq(weft_serve(&srv, &addr, 0, never, NULL), -EPERM);
    cr_assert_eq(weft_server_close(NULL), -EPERM);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void close_fd(void *arg)
{
    weft_close((int)(intptr_t)arg);
}

static void parked_reader(int fd, void *arg)
{
    (void)arg;
    char c;
    weft_read(fd, &c, 1, WEFT_FOREVER); /* the stop's cancellation ends it */
    weft_close(fd);
}

/* The runtime stops with connections everywhere: parked in their handlers, handed over and
 * not started, in the listeners' queues. Every fd is closed by the end (handlers close
 * theirs; weft those of tasks that never ran; the kernel drops the queued ones with the
 * listeners). */
static void *stop_serving_main(void *arg)
{
    unsigned flags = (unsigned)(uintptr_t)arg;
    weft_addr addr;
    cr_assert_eq(weft_addr_ip(&addr, "127.0.0.1", 0), 0);
    weft_server *srv;
    cr_assert_eq(weft_serve(&srv, &addr, flags, parked_reader, NULL), 0);
    weft_addr bound;
    weft_server_addr(srv, &bound);
    for (int i = 0; i < 32; i++) {
        int fd = weft_dial(&bound, weft_deadline_in(5 * WEFT_SEC));
        cr_assert_geq(fd, 0);
        weft_defer(close_fd, (void *)(intptr_t)fd);
    }
    weft_yield();
    cr_assert_eq(weft_server_close(srv), 0);
    return NULL;
}

Test(shard, the_runtime_stops_with_connections_everywhere)
{
    int before = count_fds();
    weft_config c = shard_cfg(4);
    run_main_cfg(&c, stop_serving_main, (void *)0);
    cr_assert_eq(count_fds(), before, "every fd closed");
    run_main_cfg(&c, stop_serving_main, (void *)(uintptr_t)WEFT_SERVE_ACCEPTOR);
    cr_assert_eq(count_fds(), before, "every fd closed");
}

/* Bug: a weft_submit_to future awaited by a task of another worker (handed to it, as a Tokio
 * JoinHandle may be) stayed pending for ever, however long ago the result had come in: only
 * a poll on the submitting worker read the reply (found by awaiting it from a task spawned
 * on a third worker). Any worker of the runtime may await it now, one task at a time. */
static void *slow_seven(void *arg)
{
    (void)arg;
    weft_sleep(20 * WEFT_MSEC); /* the awaiter is parked by then, or not: either works */
    return (void *)7;
}

static weft_future *handed_future;
static int handed_status;
static void *handed_value;

static void *await_handed_future(void *arg)
{
    (void)arg;
    /* The bound only turns the old hang into a failure: the result is in after 20 ms. */
    handed_status = weft_await(handed_future, &handed_value, weft_now() + 10 * WEFT_SEC);
    return NULL;
}

static void *await_elsewhere_main(void *arg)
{
    handed_status = 1;
    handed_value = NULL;
    unsigned target = (unsigned)(intptr_t)arg;
    if (weft_submit_to(1, slow_seven, NULL, &handed_future) != 0)
        return (void *)1;
    weft_task *t;
    if (weft_spawn_on(target, &t, await_handed_future, NULL, NULL) != 0)
        return (void *)2;
    if (weft_join(t, NULL, WEFT_FOREVER) != 0)
        return (void *)3;
    weft_future_destroy(handed_future);
    return NULL;
}

Test(shard, a_submit_to_future_may_be_awaited_from_another_worker, .timeout = 120)
{
    weft_config c = shard_cfg(3);
    for (intptr_t target = 1; target <= 2; target++) { /* the submission's worker, a third */
        cr_assert_eq(run_main_cfg(&c, await_elsewhere_main, (void *)target), NULL);
        cr_assert_eq(handed_status, 0, "awaited on worker %d: %d", (int)target, handed_status);
        cr_assert_eq((intptr_t)handed_value, 7);
    }
}
