/* Stacks: guard policies, the pool (no mmap in steady state), per-spawn sizes, and 100,000
 * coroutines parked at once, past the point where guard pages would exhaust the map count. */
#include <string.h>

#include "harness.h"

static void *use_stack(void *arg)
{
    size_t bytes = (size_t)(uintptr_t)arg;
    volatile char *buf = __builtin_alloca(bytes);
    memset((char *)buf, 0x5a, bytes);
    weft_yield();
    return (void *)(intptr_t)(buf[bytes - 1] == 0x5a && buf[0] == 0x5a);
}

static void *sizes_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, use_stack, (void *)(uintptr_t)(400 * 1024),
               &(weft_spawn_opts){.stack_size = 512 * 1024});
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    return r;
}

Test(stack, per_spawn_stack_size_is_honoured)
{
    cr_assert_eq(run_main(sizes_main, NULL), (void *)1);
}

static void *count_guards(void *arg)
{
    (void)arg;
    weft_task *ts[20];
    for (int i = 0; i < 20; i++)
        weft_spawn(&ts[i], use_stack, (void *)(uintptr_t)1024, NULL);
    weft_yield(); /* all started, all hold a stack */
    weft_stats st;
    weft_stats_get(&st);
    for (int i = 0; i < 20; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    return (void *)(uintptr_t)st.nguarded_live;
}

Test(stack, guard_policies)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_NEVER;
    cr_assert_eq(run_main_cfg(&cfg, count_guards, NULL), (void *)0);
    cfg.guard = WEFT_GUARD_ALWAYS;
    cr_assert_geq((uintptr_t)run_main_cfg(&cfg, count_guards, NULL), 21);
    cfg.guard = 7;
    cr_assert_eq(weft_run(&cfg, count_guards, NULL, NULL), -EINVAL);
}

static void *pool_main(void *arg)
{
    (void)arg;
    weft_task *ts[50];
    weft_stats a, b;
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            weft_stats_get(&a);
        for (int i = 0; i < 50; i++)
            weft_spawn(&ts[i], use_stack, (void *)(uintptr_t)256, NULL);
        for (int i = 0; i < 50; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    weft_stats_get(&b);
    cr_assert_eq(b.nmmaps, a.nmmaps, "pooled stacks are reused");
    cr_assert_geq(b.nstacks_pooled, 50);
    return NULL;
}

Test(stack, pool_reuses_stacks)
{
    run_main(pool_main, NULL);
}

static void *park_forever(void *arg)
{
    (void)arg;
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *parked_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++)
        cr_assert_eq(
            weft_spawn(NULL, park_forever, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}),
            0);
    weft_yield(); /* every one of them runs and parks */
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.nstacks_live, (uint64_t)n + 1);
    cr_assert_eq(st.ntasks, (uint64_t)n + 1);
    return (void *)(uintptr_t)st.nguarded_live;
}

/* Shutdown cancels all of them; ASan's leak check verifies it freed everything. */
Test(stack, a_hundred_thousand_coroutines_parked_at_once, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.budget = 1u << 20; /* start them all in one tick */
    uintptr_t nguarded = (uintptr_t)run_main_cfg(&cfg, parked_main, (void *)(intptr_t)100000);
    cr_assert_lt(nguarded, 100000, "past the map-count budget, stacks go unguarded");
}
