/* Hostile misuse of the async surfaces: futures and combinators, promises, shared futures,
 * generators, broadcast channels, sharded values and submit_to, called with the arguments and
 * in the orders that weft.h says are refused or tolerated. Each must answer with its
 * documented code, and the runtime must come back without a leak (ASan's check). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

static weft_config two_workers(void)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    return cfg;
}

/* ---- Futures and combinators ----------------------------------------------------------- */

static void *combinator_args_main(void *arg)
{
    (void)arg;
    weft_future *out = NULL, *p = NULL;
    cr_assert_eq(weft_future_pending(&p), 0);
    weft_future *fs[2] = {p, NULL};
    cr_assert_eq(weft_future_first(&out, NULL, 1), -EINVAL);
    cr_assert_eq(weft_future_first(&out, fs, 0), -EINVAL);
    cr_assert_eq(weft_future_first(&out, fs, 2), -EINVAL, "a NULL child");
    cr_assert_eq(weft_future_first(NULL, fs, 1), -EINVAL);
    cr_assert_eq(weft_future_all(&out, fs, ((size_t)1 << 20) + 1), -EINVAL, "above 2^20");
    cr_assert_eq(weft_future_all(&out, fs, SIZE_MAX), -EINVAL, "n * sizeof overflows");
    cr_assert_eq(weft_future_join(&out, fs, SIZE_MAX, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_join(&out, NULL, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_timeout(&out, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_future_ready(NULL, 0, NULL), -EINVAL);
    cr_assert_eq(weft_future_pending(NULL), -EINVAL);
    cr_assert_eq(weft_await(NULL, NULL, WEFT_FOREVER), -EINVAL);
    weft_future_destroy(NULL);
    /* A chain refused keeps f the caller's: destroyed below, once. */
    cr_assert_eq(weft_future_map(&out, p, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_and_then(NULL, p, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_or_else(&out, NULL, NULL, NULL), -EINVAL);
    weft_future_destroy(p);
    return NULL;
}

Test(hostile_async, combinators_refuse_null_empty_and_huge_arrays, .timeout = 10)
{
    run_main(combinator_args_main, NULL);
}

static void *same_child_twice_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_future *pf = weft_promise_future(p);
    weft_future *fs[3] = {pf, pf, pf};
    weft_future *first, *all, *join;
    int statuses[3] = {1, 1, 1};
    void *values[3] = {0};
    cr_assert_eq(weft_future_first(&first, fs, 3), 0);
    cr_assert_eq(weft_future_all(&all, fs, 3), 0);
    cr_assert_eq(weft_future_join(&join, fs, 3, statuses, values), 0);
    cr_assert_eq(weft_await(first, NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    cr_assert_eq(weft_promise_resolve(p, (void *)7), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(first, &v, WEFT_FOREVER), 0, "the lowest index wins");
    cr_assert_eq(v, (void *)7);
    cr_assert_eq(weft_await(all, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_await(join, NULL, WEFT_FOREVER), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(statuses[i], 0);
        cr_assert_eq(values[i], (void *)7);
    }
    weft_future_destroy(join);
    weft_future_destroy(all);
    weft_future_destroy(first);
    weft_promise_release(p);
    return NULL;
}

Test(hostile_async, one_future_given_twice_to_a_combinator, .timeout = 10)
{
    run_main(same_child_twice_main, NULL);
}

static int then_sets_and_fails(void *value, void *arg, weft_future **next)
{
    (void)value, (void)arg;
    cr_assert_eq(weft_future_pending(next), 0); /* destroyed by the chain */
    return -EIO;
}

static int then_gives_nothing(void *value, void *arg, weft_future **next)
{
    (void)value, (void)arg, (void)next;
    return 0;
}

static int else_recovers_with_a_status(int status, void *arg, weft_future **next, void **value)
{
    (void)arg, (void)next;
    cr_assert_eq(status, -EPIPE);
    *value = (void *)9;
    return 3;
}

static void *chain_misuse_main(void *arg)
{
    (void)arg;
    weft_future *f, *c;
    cr_assert_eq(weft_future_ready(&f, 0, NULL), 0);
    cr_assert_eq(weft_future_and_then(&c, f, then_sets_and_fails, NULL), 0);
    cr_assert_eq(weft_await(c, NULL, WEFT_FOREVER), -EIO);
    weft_future_destroy(c);
    cr_assert_eq(weft_future_ready(&f, 0, NULL), 0);
    cr_assert_eq(weft_future_and_then(&c, f, then_gives_nothing, NULL), 0);
    cr_assert_eq(weft_await(c, NULL, WEFT_FOREVER), -EINVAL);
    weft_future_destroy(c);
    cr_assert_eq(weft_future_ready(&f, -EPIPE, NULL), 0);
    cr_assert_eq(weft_future_or_else(&c, f, else_recovers_with_a_status, NULL), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(c, &v, WEFT_FOREVER), 3);
    cr_assert_eq(v, (void *)9);
    weft_future_destroy(c);
    /* A chain destroyed before it was ever polled destroys f. */
    cr_assert_eq(weft_future_pending(&f), 0);
    cr_assert_eq(weft_future_and_then(&c, f, then_gives_nothing, NULL), 0);
    weft_future_destroy(c);
    return NULL;
}

Test(hostile_async, chains_whose_callbacks_break_the_contract, .timeout = 10)
{
    run_main(chain_misuse_main, NULL);
}

/* ---- Promises -------------------------------------------------------------------------- */

static void *settle_from_thread(void *arg)
{
    weft_promise *p = arg;
    intptr_t r = weft_promise_resolve(p, (void *)5);
    weft_promise_release(p);
    return (void *)r;
}

static void *promise_misuse_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_promise_create(NULL), -EINVAL);
    cr_assert_eq(weft_promise_resolve(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_promise_reject(NULL, -EIO), -EINVAL);
    cr_assert_null(weft_promise_future(NULL));
    weft_promise_release(NULL);
    weft_promise_retain(NULL);
    weft_promise *p;
    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_reject(p, 0), -EINVAL, "0 is no error");
    cr_assert_eq(weft_promise_reject(p, INT32_MAX), -EINVAL);
    cr_assert_eq(weft_promise_reject(p, INT32_MIN), 0, "any negative value is an error");
    cr_assert_eq(weft_promise_resolve(p, NULL), -EALREADY);
    cr_assert_eq(weft_promise_reject(p, -EIO), -EALREADY);
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, WEFT_FOREVER), INT32_MIN);
    weft_promise_release(p);
    /* The awaiter's side gone (its future destroyed: a reference dropped) before a plain
     * thread settles through the reference it was given. */
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_promise_retain(p);
    cr_assert_eq(weft_await(weft_promise_future(p), NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    weft_future_destroy(weft_promise_future(p));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, settle_from_thread, p), 0);
    void *r;
    pthread_join(th, &r);
    cr_assert_eq(r, NULL);
    return NULL;
}

Test(hostile_async, promises_settled_twice_or_with_non_errors, .timeout = 10)
{
    run_main(promise_misuse_main, NULL);
}

/* ---- Shared futures -------------------------------------------------------------------- */

static void *shared_misuse_main(void *arg)
{
    (void)arg;
    weft_shared *s;
    weft_future *f, *view;
    cr_assert_eq(weft_shared_create(&s, NULL), -EINVAL);
    cr_assert_eq(weft_shared_create(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_shared_future(NULL, &view), -EINVAL);
    cr_assert_eq(weft_shared_await(NULL, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_shared_try(NULL, NULL), -EINVAL);
    weft_shared_retain(NULL);
    weft_shared_release(NULL);
    /* A shared future that never settles, with views destroyed while pending (their nodes
     * linked) and the caller's reference dropped: the shutdown's cancellation of the driver
     * settles it with -ECANCELED and frees it, once the last view is gone. */
    cr_assert_eq(weft_future_pending(&f), 0);
    cr_assert_eq(weft_shared_create(&s, f), 0);
    weft_future *views[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_shared_future(s, &views[i]), 0);
        cr_assert_eq(weft_await(views[i], NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    }
    weft_future_destroy(views[1]);
    weft_future *both[2] = {views[0], views[0]};
    weft_future *first;
    cr_assert_eq(weft_future_first(&first, both, 2), 0);
    cr_assert_eq(weft_await(first, NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    weft_future_destroy(first);
    weft_future_destroy(views[0]);
    cr_assert_eq(weft_shared_try(s, NULL), -EAGAIN);
    cr_assert_eq(weft_shared_await(s, NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    weft_shared_release(s);
    weft_future_destroy(views[2]);
    return NULL;
}

Test(hostile_async, shared_views_dropped_while_pending, .timeout = 10)
{
    run_main(shared_misuse_main, NULL);
}

/* ---- Generators ------------------------------------------------------------------------ */

static atomic_int ncleanups;

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ncleanups, 1);
}

static void returns_at_once(weft_gen *g, void *arg)
{
    (void)g, (void)arg;
}

static void *yield_foreign(void *arg)
{
    int v = 1;
    return (void *)(intptr_t)weft_gen_yield(arg, &v);
}

static void yields_then_lends(weft_gen *g, void *arg)
{
    (void)arg;
    int v = 1;
    /* A task the body spawns is not the body: its yield is refused. */
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, yield_foreign, g, NULL), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, -EPERM);
    cr_assert_eq(weft_gen_yield(g, NULL), -EINVAL);
    cr_assert_eq(weft_gen_yield(g, &v), 0);
}

static void *plain_thread_yield(void *arg)
{
    int v = 0;
    return (void *)(intptr_t)weft_gen_yield(arg, &v);
}

static void *gen_misuse_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    int v = 0;
    weft_spawn_opts o = {.cleanup = count_cleanup};
    atomic_store(&ncleanups, 0);
    cr_assert_eq(weft_gen_create(&g, returns_at_once, NULL, 0, NULL), -EINVAL);
    cr_assert_eq(weft_gen_create(&g, NULL, NULL, sizeof v, NULL), -EINVAL);
    cr_assert_eq(weft_gen_create(&g, returns_at_once, NULL, SIZE_MAX, NULL), -EINVAL);
    cr_assert_eq(weft_gen_next(NULL, &v, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_gen_close(NULL), -EINVAL);
    /* A body that returns at once: every next is -EPIPE, the cleanup runs once. */
    cr_assert_eq(weft_gen_create(&g, returns_at_once, NULL, sizeof v, &o), 0);
    cr_assert_eq(weft_gen_next(g, NULL, WEFT_FOREVER), -EINVAL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_yield(g, &v), -EPERM, "the consumer is not the body");
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, plain_thread_yield, g), 0);
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, -EPERM);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(atomic_load(&ncleanups), 1);
    /* Never asked: the body never runs, the cleanup still does. */
    cr_assert_eq(weft_gen_create(&g, returns_at_once, NULL, sizeof v, &o), 0);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(atomic_load(&ncleanups), 2);
    /* Foreign yields refused, then one value, then the end. */
    cr_assert_eq(weft_gen_create(&g, yields_then_lends, NULL, sizeof v, &o), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(atomic_load(&ncleanups), 3);
    return NULL;
}

Test(hostile_async, generators_asked_after_the_end_or_yielded_from_outside, .timeout = 10)
{
    run_main(gen_misuse_main, NULL);
}

/* ---- Broadcast channels ---------------------------------------------------------------- */

static void *bcast_thread_recv(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_bcast_recv(arg, &v, NULL, WEFT_FOREVER);
}

static void *bcast_task_recv(void *arg)
{
    long v;
    int r;
    while ((r = weft_bcast_recv(arg, &v, NULL, WEFT_FOREVER)) == 0)
        ;
    return (void *)(intptr_t)r;
}

static void *bcast_misuse_main(void *arg)
{
    (void)arg;
    weft_bcast *b;
    weft_bcast_rx *rx;
    long v = 0;
    uint64_t missed = 0;
    cr_assert_eq(weft_bcast_create(&b, sizeof v, 0), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, sizeof v, ((size_t)1 << 20) + 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, sizeof v, SIZE_MAX), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, 65537, 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(NULL, sizeof v, 1), -EINVAL);
    cr_assert_eq(weft_bcast_send(NULL, &v), -EINVAL);
    cr_assert_eq(weft_bcast_close(NULL), -EINVAL);
    cr_assert_eq(weft_bcast_subscribe(NULL, &rx), -EINVAL);
    cr_assert_eq(weft_bcast_recv(NULL, &v, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_bcast_try_recv(NULL, &v, NULL), -EINVAL);
    cr_assert_eq(weft_bcast_receivers(NULL), 0);
    weft_bcast_unsubscribe(NULL);
    weft_bcast_release(NULL);
    weft_bcast_retain(NULL);

    /* Capacity 1 and a lagging receiver: told what it missed, then the newest value. */
    cr_assert_eq(weft_bcast_create(&b, sizeof v, 1), 0);
    cr_assert_eq(weft_bcast_subscribe(b, &rx), 0);
    cr_assert_eq(weft_bcast_send(b, NULL), -EINVAL);
    for (v = 1; v <= 5; v++)
        cr_assert_eq(weft_bcast_send(b, &v), 1);
    cr_assert_eq(weft_bcast_recv(rx, NULL, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_bcast_recv(rx, &v, &missed, WEFT_FOREVER), -EOVERFLOW);
    cr_assert_eq(missed, 4);
    cr_assert_eq(weft_bcast_recv(rx, &v, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(v, 5);
    /* Receivers waiting on the other worker and on a plain thread, then a close. */
    weft_bcast_rx *rx2, *rx3;
    cr_assert_eq(weft_bcast_subscribe(b, &rx2), 0);
    cr_assert_eq(weft_bcast_subscribe(b, &rx3), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn_on(1, &t, bcast_task_recv, rx2, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bcast_thread_recv, rx3), 0);
    cr_assert_eq(weft_bcast_close(b), 0);
    cr_assert_eq(weft_bcast_close(b), -EPIPE);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, -EPIPE);
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, -EPIPE);
    cr_assert_eq(weft_bcast_recv(rx, &v, NULL, WEFT_FOREVER), -EPIPE);
    weft_bcast_release(b);
    weft_bcast_unsubscribe(rx3);
    weft_bcast_unsubscribe(rx2);
    weft_bcast_unsubscribe(rx);
    return NULL;
}

Test(hostile_async, bcast_bad_capacities_lag_and_close_under_waiters, .timeout = 10)
{
    weft_config cfg = two_workers();
    run_main_cfg(&cfg, bcast_misuse_main, NULL);
}

/* ---- Sharded values and submit_to ------------------------------------------------------ */

static atomic_int nspawned;

static void *count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nspawned, 1);
    return NULL;
}

/* On another worker's loop: a spawn is allowed, a blocking call is -EPERM. */
static void *map_spawns_and_blocks(void *value, unsigned worker, void *arg)
{
    cr_assert_eq(*(long *)value, 0, "zeroed with a NULL init");
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn(NULL, count_task, NULL, &o), 0);
    if (worker != *(unsigned *)arg) /* on its loop, not inside the calling task */
        return (void *)(intptr_t)weft_sleep(WEFT_MSEC);
    return (void *)(intptr_t)0;
}

static void *sum(void *acc, void *x, void *arg)
{
    (void)arg;
    return (void *)((intptr_t)acc + (intptr_t)x);
}

static void *submit_probe(void *arg)
{
    return arg;
}

static void *submit_from_thread(void *arg)
{
    (void)arg;
    weft_future *f = NULL;
    return (void *)(intptr_t)weft_submit_to(0, submit_probe, NULL, &f);
}

static void *shard_misuse_main(void *arg)
{
    (void)arg;
    weft_sharded *s;
    atomic_store(&nspawned, 0);
    cr_assert_eq(weft_sharded_create(&s, 0, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_sharded_create(&s, SIZE_MAX, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_sharded_create(NULL, 8, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_sharded_reduce(NULL, map_spawns_and_blocks, NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_sharded_destroy(NULL), -EINVAL);
    cr_assert_null(weft_sharded_local(NULL));
    cr_assert_eq(weft_sharded_create(&s, sizeof(long), NULL, NULL, NULL), 0);
    cr_assert_eq(weft_sharded_reduce(s, NULL, sum, NULL, NULL, WEFT_FOREVER), -EINVAL);
    void *acc = (void *)1;
    unsigned me = (unsigned)weft_worker_index();
    cr_assert_eq(weft_sharded_reduce(s, map_spawns_and_blocks, sum, &me, &acc, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)acc, -EPERM, "worker 1's map blocked on its loop");
    cr_assert_eq(weft_sharded_destroy(s), 0);

    weft_future *f = NULL;
    cr_assert_eq(weft_submit_to(2, submit_probe, NULL, &f), -EINVAL);
    cr_assert_eq(weft_submit_to(UINT32_MAX, submit_probe, NULL, &f), -EINVAL);
    cr_assert_eq(weft_submit_to(0, NULL, NULL, &f), -EINVAL);
    cr_assert_eq(weft_submit_to(1, submit_probe, NULL, NULL), -EINVAL);
    cr_assert_null(f);
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, submit_from_thread, NULL), 0);
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, -EPERM);
    /* Destroyed before its result came back: dropped, no write to freed memory. */
    cr_assert_eq(weft_submit_to(1, submit_probe, (void *)3, &f), 0);
    weft_future_destroy(f);
    cr_assert_eq(weft_submit_to(1, submit_probe, (void *)4, &f), 0);
    cr_assert_eq(weft_await(f, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)4);
    weft_future_destroy(f);
    while (atomic_load(&nspawned) < 2)
        weft_yield();
    return NULL;
}

Test(hostile_async, sharded_maps_that_spawn_or_block_and_submit_out_of_range, .timeout = 10)
{
    weft_config cfg = two_workers();
    run_main_cfg(&cfg, shard_misuse_main, NULL);
}

/* ---- Work from plain threads once the runtime has ended --------------------------------- */

static void *hand_out_runtime(void *arg)
{
    *(weft_runtime **)arg = weft_runtime_current();
    return NULL;
}

static void *after_end_thread(void *arg)
{
    weft_runtime *rt = arg;
    weft_handle *h = NULL;
    intptr_t r = weft_runtime_spawn_on(rt, 0, &h, submit_probe, NULL, NULL);
    if (r == -ESHUTDOWN && h)
        r = -1000; /* *out must not be set on a failure */
    return (void *)r;
}

Test(hostile_async, spawns_from_a_plain_thread_after_the_runtime_ended, .timeout = 10)
{
    weft_runtime *rt = NULL;
    run_main(hand_out_runtime, &rt);
    cr_assert_not_null(rt);
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, after_end_thread, rt), 0);
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, -ESHUTDOWN);
    weft_runtime_release(rt);
}

/* ---- Calls made by a task that the shutdown has cancelled ------------------------------ */

static atomic_int late_started;
static int late_results[6];

static void gen_two(weft_gen *g, void *arg)
{
    (void)arg;
    int v = 2;
    while (weft_gen_yield(g, &v) == 0)
        ;
}

static void *late_task(void *arg)
{
    (void)arg;
    atomic_store(&late_started, 1);
    late_results[0] = weft_sleep(WEFT_SEC * 3600); /* until the shutdown cancels it */
    weft_future *f = NULL;
    late_results[1] = weft_submit_to(0, submit_probe, (void *)1, &f);
    if (late_results[1] == 0) {
        late_results[2] = weft_await(f, NULL, WEFT_FOREVER);
        weft_future_destroy(f);
    }
    weft_shared *s;
    weft_future *p;
    cr_assert_eq(weft_future_pending(&p), 0);
    late_results[3] = weft_shared_create(&s, p);
    if (late_results[3] == 0) {
        late_results[4] = weft_shared_await(s, NULL, WEFT_FOREVER);
        weft_shared_release(s);
    } else {
        weft_future_destroy(p);
    }
    weft_gen *g;
    int v;
    if (weft_gen_create(&g, gen_two, NULL, sizeof v, NULL) == 0) {
        late_results[5] = weft_gen_next(g, &v, WEFT_FOREVER);
        cr_assert_eq(weft_gen_close(g), 0);
    }
    return NULL;
}

static void *shutdown_main(void *arg)
{
    (void)arg;
    atomic_store(&late_started, 0);
    weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn_on(1, NULL, late_task, NULL, &o), 0);
    while (!atomic_load(&late_started))
        weft_yield();
    return NULL; /* the runtime stops: late_task is cancelled in its sleep */
}

Test(hostile_async, submit_shared_and_gen_from_a_task_cancelled_by_the_shutdown, .timeout = 10)
{
    weft_config cfg = two_workers();
    run_main_cfg(&cfg, shutdown_main, NULL);
    cr_assert_eq(late_results[0], -ECANCELED);
    cr_assert_eq(late_results[1], 0);
    cr_assert_eq(late_results[2], -ECANCELED);
    cr_assert_eq(late_results[3], 0);
    cr_assert_eq(late_results[4], -ECANCELED);
    cr_assert_eq(late_results[5], -ECANCELED);
}

/* A user's own poll loop (weft_future_poll is the building block of user futures, as Rust's
 * Future::poll) handed NULL or a header never initialised: -EINVAL, not a crash. */
Test(hostile_async, polling_a_null_or_uninitialised_future_is_einval)
{
    cr_assert_eq(weft_future_poll(NULL, NULL), -EINVAL);
    weft_future blank;
    memset(&blank, 0, sizeof blank);
    cr_assert_eq(weft_future_poll(&blank, NULL), -EINVAL);
}
