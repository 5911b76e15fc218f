/* Helpers of the suites that drive tasks across workers (test_semantics.c,
 * test_conformance.c): pinned spawns, waiting for a task to park, joining for a result. */
#ifndef WEFT_TEST_TASK_HELPERS_H
#define WEFT_TEST_TASK_HELPERS_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <weft.h>

/* Spawns fn(arg) pinned to the caller's worker, so its order against the caller is the
 * single worker's order in both modes. */
static inline weft_task *spawn_pinned(weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    weft_spawn_opts o = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn(&t, fn, arg, &o), 0);
    return t;
}

/* Yields until t is parked in a blocking call (it may run on another worker). A t that
 * finishes first fails the test at once: it would never be seen parked, and the wait would
 * hang until the suite's timeout. */
static inline void wait_parked(weft_task *t)
{
    int st;
    while ((st = weft_task_status(t)) != WEFT_TASK_PARKED) {
        cr_assert(st != WEFT_TASK_FINISHED && st != WEFT_TASK_CANCELLED,
                  "the task finished before it was seen parked");
        cr_assert_eq(weft_yield(), 0);
    }
}

/* The same, but returns as well once t has finished (a wait that should park and did not). */
static inline void wait_parked_or_done(weft_task *t)
{
    int st;
    while ((st = weft_task_status(t)) != WEFT_TASK_PARKED && st != WEFT_TASK_FINISHED &&
           st != WEFT_TASK_CANCELLED)
        cr_assert_eq(weft_yield(), 0);
}

/* Joins t (which must succeed) and returns its result. */
static inline void *join_result(weft_task *t)
{
    void *r = (void *)(intptr_t)-12345;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    return r;
}

#endif
