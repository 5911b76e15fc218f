/* Generators: values are never lost when a request is given up on, the consumer learns that
 * the body ended however it ended, and a body cannot wait for itself. (The basic sequence,
 * laziness and early stop are in test_group.c.) */
#include <string.h>

#include "harness.h"

static void one_to_five(weft_gen *g, void *arg)
{
    (void)arg;
    for (int i = 1; i <= 5; i++) {
        weft_yield(); /* "computing": the consumer may give up meanwhile */
        if (weft_gen_yield(g, &i) < 0)
            return;
    }
}

static void *abandoned_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    cr_assert_eq(weft_gen_create(&g, one_to_five, NULL, sizeof(int), NULL), 0);
    for (int want = 1; want <= 5; want++) {
        int v = 0;
        /* A deadline that has passed: the request is made, then given up on at once, while
         * the body has not produced its value yet. */
        cr_assert_eq(weft_gen_next(g, &v, weft_deadline_in(0)), -ETIMEDOUT);
        weft_yield();
        weft_yield(); /* the body produces the value for the abandoned request */
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, want, "no value vanishes: the abandoned request's value comes next");
    }
    int v;
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_close(g), 0);
    return NULL;
}

Test(gen, a_value_produced_for_an_abandoned_request_is_kept, .timeout = 10)
{
    run_main(abandoned_main, NULL);
}

static void yields_then_exits(weft_gen *g, void *arg)
{
    (void)arg;
    int v = 42;
    weft_gen_yield(g, &v);
    weft_exit(NULL);
}

static void *exit_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    cr_assert_eq(weft_gen_create(&g, yields_then_exits, NULL, sizeof(int), NULL), 0);
    int v;
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE, "the body called weft_exit");
    cr_assert_eq(weft_gen_close(g), 0);
    return NULL;
}

Test(gen, a_body_that_calls_weft_exit_ends_the_sequence, .timeout = 10)
{
    run_main(exit_main, NULL);
}

static int close_self_result, next_self_result;

static void closes_itself(weft_gen *g, void *arg)
{
    (void)arg;
    int v;
    close_self_result = weft_gen_close(g);
    next_self_result = weft_gen_next(g, &v, WEFT_FOREVER);
    v = 7;
    weft_gen_yield(g, &v);
}

static int ncleanups;

static void count_cleanup(void *arg)
{
    ncleanups += (int)(intptr_t)arg;
}

static void *self_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    weft_spawn_opts o = {.cleanup = count_cleanup};
    ncleanups = 0;
    cr_assert_eq(weft_gen_create(&g, closes_itself, (void *)3, sizeof(int), &o), 0);
    int v;
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 7);
    cr_assert_eq(close_self_result, -EDEADLK);
    cr_assert_eq(next_self_result, -EDEADLK);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(ncleanups, 3, "the creator's cleanup ran with the generator's arg");
    return NULL;
}

/* Used to hang the runtime: the body waited for its own end. */
Test(gen, closing_or_asking_from_the_body_is_edeadlk, .timeout = 10)
{
    run_main(self_main, NULL);
}

/* A close while a consumer waits in weft_gen_next (the body has not yielded yet): the
 * consumer gets -EPIPE, and the generator is freed only after its call has returned. The
 * body's end woke the consumer, but in depth-first order the close ran first and freed the
 * generator under it (ASan: heap-use-after-free in weft_gen_next). A second consumer while
 * one waits is refused (-EBUSY): the generator keeps one consumer's waker. */
static weft_gen *closed_while_asked;

static void slow_body(weft_gen *g, void *arg)
{
    (void)arg;
    int v = 1;
    if (weft_sleep_until(WEFT_FOREVER) == 0) /* until the close cancels it */
        weft_gen_yield(g, &v);
}

static void *ask(void *arg)
{
    (void)arg;
    int v;
    return (void *)(intptr_t)weft_gen_next(closed_while_asked, &v, WEFT_FOREVER);
}

static void *close_while_asked_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_gen_create(&closed_while_asked, slow_body, NULL, sizeof(int), NULL), 0);
    weft_task *consumer;
    cr_assert_eq(weft_spawn(&consumer, ask, NULL, NULL), 0);
    for (int k = 0; k < 1000 && weft_task_status(consumer) != WEFT_TASK_PARKED; k++)
        weft_yield();
    cr_assert_eq(weft_task_status(consumer), WEFT_TASK_PARKED);
    int v;
    cr_assert_eq(weft_gen_next(closed_while_asked, &v, WEFT_FOREVER), -EBUSY);
    cr_assert_eq(weft_gen_close(closed_while_asked), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(consumer, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, -EPIPE, "%s", weft_strerror((int)(intptr_t)r));
    return NULL;
}

Test(gen, a_close_while_a_consumer_waits_ends_its_call_first, .timeout = 30)
{
    run_main_each_order(close_while_asked_main, NULL);
}

/* Nested generators (a body that consumes another generator), closed early and run to the
 * end: a close cancels the outer body's pending yield, the outer body then closes the inner
 * one though it is cancelled itself, and both cleanups run, the inner's first; run to the
 * end, every later request is -EPIPE, as often as it is made. And a recursive generator (each
 * level consumes the one below), closed half-way, ends every level. */
typedef struct nest_log {
    char order[8];
    int n;
    long inner_limit; /* 0: no end */
} nest_log;

static void nest_cleanup_inner(void *arg)
{
    nest_log *l = arg;
    l->order[l->n++] = 'i';
}

static void nest_cleanup_outer(void *arg)
{
    nest_log *l = arg;
    l->order[l->n++] = 'o';
}

static void nest_inner(weft_gen *g, void *arg)
{
    nest_log *l = arg;
    for (long i = 0; l->inner_limit == 0 || i < l->inner_limit; i++)
        if (weft_gen_yield(g, &i) < 0)
            return;
}

static void nest_outer(weft_gen *g, void *arg)
{
    weft_gen *inner;
    weft_spawn_opts o = {.cleanup = nest_cleanup_inner};
    cr_assert_eq(weft_gen_create(&inner, nest_inner, arg, sizeof(long), &o), 0);
    long v;
    while (weft_gen_next(inner, &v, WEFT_FOREVER) == 0) {
        v *= 10;
        if (weft_gen_yield(g, &v) < 0)
            break;
    }
    cr_assert_eq(weft_gen_close(inner), 0, "closed from a cancelled body too");
}

static void rec_gen(weft_gen *g, void *arg)
{
    long depth = (long)(intptr_t)arg;
    if (depth == 0)
        return;
    weft_gen *below;
    cr_assert_eq(
        weft_gen_create(&below, rec_gen, (void *)(intptr_t)(depth - 1), sizeof(long), NULL), 0);
    long v;
    int r;
    while ((r = weft_gen_next(below, &v, WEFT_FOREVER)) == 0)
        if (weft_gen_yield(g, &v) < 0)
            break;
    cr_assert_eq(weft_gen_close(below), 0);
    v = depth - 1;
    if (r == -EPIPE)
        weft_gen_yield(g, &v);
}

static void *nested_main(void *arg)
{
    (void)arg;
    weft_spawn_opts o = {.cleanup = nest_cleanup_outer};
    nest_log early = {.inner_limit = 0};
    weft_gen *g;
    cr_assert_eq(weft_gen_create(&g, nest_outer, &early, sizeof(long), &o), 0);
    for (long want = 0; want < 3; want++) {
        long v = -1;
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, want * 10);
    }
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(early.n, 2);
    cr_assert_eq(memcmp(early.order, "io", 2), 0, "cleanups ran in the order %.2s", early.order);

    nest_log full = {.inner_limit = 4};
    cr_assert_eq(weft_gen_create(&g, nest_outer, &full, sizeof(long), &o), 0);
    long v, sum = 0;
    int r;
    while ((r = weft_gen_next(g, &v, WEFT_FOREVER)) == 0)
        sum += v;
    cr_assert_eq(r, -EPIPE);
    cr_assert_eq(sum, 60);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE, "resumed after the end");
        cr_assert_eq(weft_gen_next(g, &v, 0), -EPIPE);
    }
    cr_assert_eq(full.n, 2);
    cr_assert_eq(weft_gen_close(g), 0);

    cr_assert_eq(weft_gen_create(&g, rec_gen, (void *)(intptr_t)10, sizeof(long), NULL), 0);
    for (long want = 0; want < 10; want++) {
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, want, "depth-first: the deepest level's values first");
    }
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_gen_close(g), 0);
    cr_assert_eq(weft_gen_create(&g, rec_gen, (void *)(intptr_t)10, sizeof(long), NULL), 0);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_gen_close(g), 0, "every level closes the one below on its way out");
    return NULL;
}

Test(gen, nested_generators_closed_early_and_asked_after_the_end, .timeout = 30)
{
    run_main_each_order(nested_main, NULL);
}

/* A circle of closes: generator i's body, stopped by the close of the one before it, closes
 * the next one, and the last one's body closes the first, whose body is the one closing it.
 * Each would wait for the next one's end for ever (the closes are uncancellable); the close
 * that would complete the circle is refused with -EDEADLK instead, and the rest unwind. */
enum { CIRCLE_MAX = 3 };
static weft_gen *circle[CIRCLE_MAX];
static int circle_n;
static int circle_close_result[CIRCLE_MAX];
static int circle_first_values[2];

static void circle_body(weft_gen *g, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (weft_gen_yield(g, &i) < 0 && i == 0)
        return;
    /* The first body closes the next at its second request; the others, once stopped. */
    circle_close_result[i] = weft_gen_close(circle[(i + 1) % circle_n]);
    weft_gen_yield(g, &i);
}

static void *circle_main(void *arg)
{
    circle_n = (int)(intptr_t)arg;
    for (int i = 0; i < circle_n; i++) {
        circle_close_result[i] = 1;
        if (weft_gen_create(&circle[i], circle_body, (void *)(intptr_t)i, sizeof(int), NULL) < 0)
            return (void *)1;
    }
    /* Every body started, and parked in its first yield, the first one last. */
    int v;
    for (int i = circle_n - 1; i >= 1; i--)
        if (weft_gen_next(circle[i], &v, WEFT_FOREVER) != 0)
            return (void *)2;
    circle_first_values[0] = weft_gen_next(circle[0], &v, WEFT_FOREVER);
    circle_first_values[1] = weft_gen_next(circle[0], &v, WEFT_FOREVER); /* the closes run */
    return (void *)(intptr_t)weft_gen_close(circle[0]);
}

static void check_circle(int n)
{
    for (int ord = WEFT_ORDER_FIFO; ord <= WEFT_ORDER_DEPTH_FIRST; ord++) {
        weft_config c;
        weft_config_init(&c);
        c.workers = 1;
        c.order = ord;
        cr_assert_eq(run_main_cfg(&c, circle_main, (void *)(intptr_t)n), NULL,
                     "the first generator closes");
        cr_assert_eq(circle_first_values[0], 0);
        cr_assert_eq(circle_first_values[1], 0, "the first body yields after its close");
        for (int i = 0; i < n - 1; i++)
            cr_assert_eq(circle_close_result[i], 0, "body %d closes the next one", i);
        cr_assert_eq(circle_close_result[n - 1], -EDEADLK,
                     "the close that would complete the circle is refused");
    }
}

Test(gen, two_generators_closing_each_other_is_edeadlk, .timeout = 30)
{
    check_circle(2);
}

Test(gen, a_circle_of_three_closes_is_edeadlk, .timeout = 30)
{
    check_circle(3);
}
