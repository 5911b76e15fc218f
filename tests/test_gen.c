/* Generators: values are never lost when a request is given up on, the consumer learns that
 * the body ended however it ended, and a body cannot wait for itself. (The basic sequence,
 * laziness and early stop are in test_group.c.) */
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
