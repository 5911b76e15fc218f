/* Futures: the timer future, await with deadlines, promises, the first/all/timeout
 * combinators, user-defined leaf futures, and stackless tasks. */
#include <string.h>

#include "harness.h"

static void *timer_future_main(void *arg)
{
    (void)arg;
    weft_future *f;
    int64_t deadline = weft_deadline_in(3 * WEFT_MSEC);
    cr_assert_eq(weft_timer_future(&f, deadline), 0);
    /* A deadline already passed: the await polls once and times out, whatever the real clock
     * did meanwhile (weft_now() is the tick's, so the timer cannot look due yet; a short but
     * future deadline would race the timer on a slow machine, such as under qemu). */
    cr_assert_eq(weft_await(f, NULL, weft_deadline_in(-1)), -ETIMEDOUT);
    cr_assert_eq(weft_await(f, NULL, WEFT_FOREVER), 0);
    cr_assert_geq(weft_now(), deadline);
    cr_assert_eq(weft_await(f, NULL, 0), 0, "a completed future stays completed");
    weft_future_destroy(f);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.ntimers, 0);
    return NULL;
}

Test(future, timer_future_wakes_its_task_at_the_deadline)
{
    run_main(timer_future_main, NULL);
}

static void *resolve_later(void *arg)
{
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_promise_resolve(arg, (void *)(intptr_t)42), 0);
    cr_assert_eq(weft_promise_resolve(arg, NULL), -EALREADY);
    cr_assert_eq(weft_promise_reject(arg, -EIO), -EALREADY);
    weft_promise_release(arg); /* drops the resolver's reference */
    return NULL;
}

static void *promise_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_promise_retain(p);
    weft_task *t;
    weft_spawn(&t, resolve_later, p, NULL);
    void *v = NULL;
    cr_assert_eq(weft_await(weft_promise_future(p), &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)42);
    weft_join(t, NULL, WEFT_FOREVER);
    weft_promise_release(p);

    cr_assert_eq(weft_promise_create(&p), 0);
    cr_assert_eq(weft_promise_reject(p, 5), -EINVAL);
    cr_assert_eq(weft_promise_reject(p, -EPIPE), 0);
    cr_assert_eq(weft_await(weft_promise_future(p), &v, WEFT_FOREVER), -EPIPE);
    weft_promise_release(p);
    return NULL;
}

Test(future, promise_resolved_and_rejected_by_other_tasks)
{
    run_main(promise_main, NULL);
}

static void *combinators_main(void *arg)
{
    (void)arg;
    weft_promise *p, *q;
    weft_promise_create(&p);
    weft_promise_create(&q);
    weft_future *t1;
    weft_timer_future(&t1, weft_deadline_in(2 * WEFT_MSEC));

    /* first: the timer wins over a pending promise. */
    weft_future *fs[] = {weft_promise_future(p), t1};
    weft_future *first;
    cr_assert_eq(weft_future_first(&first, fs, 2), 0);
    cr_assert_eq(weft_await(first, NULL, WEFT_FOREVER), 1);
    weft_future_destroy(first);

    /* all: completes only when both promises are settled. */
    weft_future *both_fs[] = {weft_promise_future(p), weft_promise_future(q)};
    weft_future *all;
    cr_assert_eq(weft_future_all(&all, both_fs, 2), 0);
    weft_promise_resolve(p, (void *)1);
    cr_assert_eq(weft_await(all, NULL, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_promise_reject(q, -EIO);
    cr_assert_eq(weft_await(all, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_promise_future(q)->status, -EIO);
    weft_future_destroy(all);

    /* timeout: a pending promise gives -ETIMEDOUT; a settled one its own status. */
    weft_promise *r;
    weft_promise_create(&r);
    weft_future *to;
    weft_future_timeout(&to, weft_promise_future(r), weft_deadline_in(WEFT_MSEC));
    cr_assert_eq(weft_await(to, NULL, WEFT_FOREVER), -ETIMEDOUT);
    weft_future_destroy(to);
    weft_future_timeout(&to, weft_promise_future(p), weft_deadline_in(WEFT_SEC));
    void *v;
    cr_assert_eq(weft_await(to, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)1);
    weft_future_destroy(to);

    cr_assert_eq(weft_future_first(&first, fs, 0), -EINVAL);
    weft_future *bad[] = {NULL};
    cr_assert_eq(weft_future_all(&all, bad, 1), -EINVAL);

    weft_future_destroy(t1);
    weft_promise_release(p);
    weft_promise_release(q);
    weft_promise_release(r);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.ntimers, 0);
    return NULL;
}

Test(future, first_all_and_timeout_combinators)
{
    run_main(combinators_main, NULL);
}

/* A user-written leaf future: completes after being polled `left` times, counting drops. */
struct countdown {
    weft_future base;
    int left;
    int *ndropped;
};

static int countdown_poll(weft_future *self, weft_context *cx)
{
    struct countdown *c = (struct countdown *)self;
    if (c->left-- <= 0) {
        weft_future_complete(self, 0, (void *)(intptr_t)99);
        return WEFT_READY;
    }
    weft_waker_wake(cx->waker); /* ready to be polled again straight away */
    return WEFT_PENDING;
}

static void countdown_drop(weft_future *self)
{
    struct countdown *c = (struct countdown *)self;
    (*c->ndropped)++;
}

static const weft_future_ops countdown_ops = {countdown_poll, countdown_drop};

static void *stackless_main(void *arg)
{
    (void)arg;
    int ndropped = 0;
    struct countdown c = {.left = 5, .ndropped = &ndropped};
    weft_future_init(&c.base, &countdown_ops);
    weft_task *t;
    cr_assert_eq(weft_spawn_future(&t, &c.base, NULL), 0);
    void *v;
    cr_assert_eq(weft_join(t, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)99);
    cr_assert_eq(ndropped, 1, "the task drops the future it owns");

    /* A stackless task awaiting a timer, and one cancelled while pending. */
    weft_future *tf;
    weft_timer_future(&tf, weft_deadline_in(WEFT_MSEC));
    cr_assert_eq(weft_spawn_future(&t, tf, NULL), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);

    weft_timer_future(&tf, weft_deadline_in(3600 * WEFT_SEC));
    cr_assert_eq(weft_spawn_future(&t, tf, NULL), 0);
    weft_yield();
    weft_cancel(t);
    cr_assert_eq(weft_join(t, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, WEFT_CANCELED);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.ntimers, 0, "the cancelled stackless task dropped its timer");
    cr_assert_eq(weft_spawn_future(&t, NULL, NULL), -EINVAL);
    return NULL;
}

Test(future, stackless_tasks_are_polled_joined_and_cancelled)
{
    run_main(stackless_main, NULL);
}

static void *many_stackless_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    weft_task **ts = calloc((size_t)n, sizeof *ts);
    int64_t deadline = weft_deadline_in(2 * WEFT_MSEC);
    for (int i = 0; i < n; i++) {
        weft_future *tf;
        cr_assert_eq(weft_timer_future(&tf, deadline), 0);
        cr_assert_eq(weft_spawn_future(&ts[i], tf, NULL), 0);
    }
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.nstacks_live, 1, "stackless tasks have no stacks (main has one)");
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
    free(ts);
    return NULL;
}

Test(future, a_hundred_thousand_stackless_timers)
{
    SKIP_UNDER_VALGRIND();
    run_main(many_stackless_main, (void *)(intptr_t)100000);
}

Test(future, a_few_stackless_timers)
{
    run_main(many_stackless_main, (void *)(intptr_t)100);
}

static void *await_misuse_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_await(NULL, NULL, WEFT_FOREVER), -EINVAL);
    return NULL;
}

Test(future, misuse)
{
    run_main(await_misuse_main, NULL);
    weft_future *f;
    cr_assert_eq(weft_timer_future(&f, 0), -EPERM);
    cr_assert_eq(weft_await(NULL, NULL, 0), -EPERM);
}

/* ---- A promise settled from another runtime, and from a plain thread ---- */

#include <pthread.h>

static weft_promise *x_promise, *y_promise;

static void *x_resolver_main(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_MSEC); /* most likely after the other runtime parked in its await */
    cr_assert_eq(weft_promise_resolve(x_promise, (void *)1), 0);
    cr_assert_eq(weft_promise_reject(x_promise, -EIO), -EALREADY);
    return NULL;
}

static void *x_resolver_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_run(NULL, x_resolver_main, NULL, NULL);
}

static void *y_plain_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_promise_reject(y_promise, -EIO); /* no runtime here */
}

static void *x_promise_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_promise_create(&x_promise), 0);
    cr_assert_eq(weft_promise_create(&y_promise), 0);
    pthread_t th, th2;
    cr_assert_eq(pthread_create(&th, NULL, x_resolver_thread, NULL), 0);
    cr_assert_eq(pthread_create(&th2, NULL, y_plain_thread, NULL), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(weft_promise_future(x_promise), &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, (void *)1);
    cr_assert_eq(weft_await(weft_promise_future(y_promise), &v, WEFT_FOREVER), -EIO);
    void *r;
    pthread_join(th, &r);
    cr_assert_eq(r, (void *)0);
    pthread_join(th2, &r);
    cr_assert_eq(r, (void *)0);
    weft_promise_release(x_promise);
    weft_promise_release(y_promise);
    return NULL;
}

Test(future, a_promise_is_settled_from_any_thread, .timeout = 20)
{
    run_main(x_promise_main, NULL);
}
