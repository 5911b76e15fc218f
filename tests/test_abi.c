/* The ABI rules of weft.h: the version, weft_config and weft_stats sized by the program and
 * ending in reserved room, and the synchronisation values valid when all zero. */
#include <string.h>

#include "harness.h"

Test(abi, version_matches_the_header)
{
    cr_assert_eq(weft_version(), (unsigned)WEFT_VERSION_NUMBER);
    cr_assert_eq(WEFT_VERSION_NUMBER,
                 WEFT_VERSION_MAJOR * 10000 + WEFT_VERSION_MINOR * 100 + WEFT_VERSION_PATCH);
}

static void *nothing(void *arg)
{
    return arg;
}

Test(abi, config_init_records_its_size)
{
    weft_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    weft_config_init(&cfg);
    cr_assert_eq(cfg.size, sizeof cfg);
    for (size_t i = 0; i < sizeof cfg.reserved_ / sizeof cfg.reserved_[0]; i++)
        cr_assert_eq(cfg.reserved_[i], 0);
    cr_assert_eq(weft_run(&cfg, nothing, (void *)3, NULL), 0);
}

Test(abi, a_config_never_initialised_is_refused)
{
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.stack_size = WEFT_STACK_DEFAULT;
    cfg.budget = 64;
    cfg.pool_threads = 4;
    cr_assert_eq(weft_run(&cfg, nothing, NULL, NULL), -EINVAL);
}

/* A program built against a later weft.h: a larger structure. Zero in the fields this
 * library does not know is accepted; anything else there is refused. */
typedef struct newer_config {
    weft_config base;
    uint64_t later_field;
} newer_config;

Test(abi, a_newer_config_is_accepted_only_if_its_new_fields_are_zero)
{
    newer_config n;
    weft_config_init_sized(&n.base, sizeof n);
    cr_assert_eq(n.base.size, sizeof n);
    cr_assert_eq(n.later_field, 0, "init cleared the whole structure");
    cr_assert_eq(weft_run(&n.base, nothing, NULL, NULL), 0);
    n.later_field = 1;
    cr_assert_eq(weft_run(&n.base, nothing, NULL, NULL), -EINVAL);
}

static void *stats_main(void *arg)
{
    (void)arg;
    weft_stats st;
    memset(&st, 0xAB, sizeof st);
    cr_assert_eq(weft_stats_get(&st), 0);
    cr_assert_eq(st.size, sizeof st);
    cr_assert_geq(st.nspawned, 1);
    for (size_t i = 0; i < sizeof st.reserved_ / sizeof st.reserved_[0]; i++)
        cr_assert_eq(st.reserved_[i], 0);
    /* An older program's smaller structure: refused rather than overrun. */
    cr_assert_eq(weft_stats_read(&st, 8), -EINVAL);
    cr_assert_eq(weft_stats_read(NULL, sizeof st), -EINVAL);
    /* A newer program's larger structure: what this library knows, nothing beyond. */
    struct {
        weft_stats s;
        uint64_t later;
    } big;
    big.later = 77;
    cr_assert_eq(weft_stats_read(&big.s, sizeof big), 0);
    cr_assert_eq(big.s.size, sizeof big.s);
    cr_assert_eq(big.later, 77);
    return NULL;
}

Test(abi, stats_are_filled_up_to_the_size_both_sides_know)
{
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), -EPERM, "outside a runtime");
    run_main(stats_main, NULL);
}

/* Zeroed memory is a valid unlocked mutex, empty semaphore, ... (no lazy initialisation). */
static void *zero_main(void *arg)
{
    (void)arg;
    weft_mutex m;
    weft_sem s;
    weft_event e;
    memset(&m, 0, sizeof m);
    memset(&s, 0, sizeof s);
    memset(&e, 0, sizeof e);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_release(&s, 2), 0);
    const weft_sem *cs = &s;
    cr_assert_eq(weft_sem_value(cs), 2);
    cr_assert_eq(weft_event_wait(&e, weft_deadline_in(0)), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, WEFT_FOREVER), 0);
    return NULL;
}

Test(abi, zeroed_sync_values_are_valid)
{
    run_main(zero_main, NULL);
}

/* A sync value read through a const pointer is never written (it may live in read-only
 * memory). */
static const weft_sem ro_sem = WEFT_SEM_INIT(3);

static void *const_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sem_value(&ro_sem), 3);
    return NULL;
}

Test(abi, reading_a_const_semaphore_writes_nothing)
{
    run_main(const_main, NULL);
}

static void *spawned(void *arg)
{
    return arg;
}

static void *spawn_opts_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn_opts o = {.name = "later"};
    o.reserved_[2] = (void *)1; /* an option of a later version */
    cr_assert_eq(weft_spawn(&t, spawned, NULL, &o), -EINVAL);
    o.reserved_[2] = NULL;
    cr_assert_eq(weft_spawn(&t, spawned, (void *)5, &o), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)5);
    return NULL;
}

Test(abi, spawn_options_of_a_later_version_are_refused)
{
    run_main(spawn_opts_main, NULL);
}

/* The general select's cases share their room with the channel cases' fields (unions), so a
 * program built against a weft.h whose cases had only channels passes cases of the same
 * layout (x86_64 and aarch64: 8-byte pointers). */
Test(abi, select_cases_keep_their_layout)
{
    if (sizeof(void *) != 8)
        return;
    cr_assert_eq(sizeof(weft_case), 32);
    cr_assert_eq(offsetof(weft_case, op), 0);
    cr_assert_eq(offsetof(weft_case, chan), 8);
    cr_assert_eq(offsetof(weft_case, elem), 16);
    cr_assert_eq(offsetof(weft_case, result), 24);
    cr_assert_eq(offsetof(weft_case, future), offsetof(weft_case, chan));
    cr_assert_eq(offsetof(weft_case, io.fd), offsetof(weft_case, chan));
    cr_assert_eq(offsetof(weft_case, at), offsetof(weft_case, elem));
}
