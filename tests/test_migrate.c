/* Started tasks handed between workers (stealing mode, weft_config.move_started): a task that
 * has run and is queued again after a yield or a wait on a channel, lock or join may move to
 * an idle worker, with its stack, its errno and its place in what it was doing; pinned tasks,
 * tasks bound to their worker (a group, a generator, a future, the io_uring ring), the main
 * task, sharded mode and move_started < 0 keep every started task where it started. */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"

enum { NTASKS = 8, MAX_YIELDS = 20000, STAY_YIELDS = 3000 };

static atomic_int moved_tasks;
static atomic_int errno_lost;

typedef struct job {
    int index;
    int yields;      /* yields to make before giving up on a move (or, to stay, in all) */
    bool stop_moved; /* stop at the first move */
    bool bind;       /* bind itself to its worker first (a group) */
    bool pin_self;   /* pin itself first (weft_pin_self) */
} job;

/* errno through functions the compiler cannot see into: a task that may move must not keep
 * errno's address across a weft call (weft.h, WEFT_MODE_STEALING), and GCC would, since
 * __errno_location is declared const. */
static __attribute__((noinline)) void errno_set(int v)
{
    errno = v;
}

static __attribute__((noinline)) int errno_get(void)
{
    return errno;
}

static void spin_us(long us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

/* Yields with a little work between, noting whether it ever resumed on another worker; its
 * errno must survive every yield, wherever it resumes. */
static void *yielder(void *arg)
{
    const job *j = arg;
    weft_group *g = NULL;
    if (j->bind && weft_group_create(&g) != 0)
        return (void *)-1;
    if (j->pin_self && weft_pin_self() != 0)
        return (void *)-1;
    int first = weft_worker_index();
    bool moved = false;
    for (int i = 0; i < j->yields; i++) {
        spin_us(5);
        errno_set(1000 + j->index);
        if (weft_yield() != 0)
            break;
        if (errno_get() != 1000 + j->index)
            atomic_fetch_add(&errno_lost, 1);
        if (weft_worker_index() != first) {
            moved = true;
            if (j->stop_moved)
                break;
        }
    }
    if (g)
        weft_group_close(g);
    atomic_fetch_add(&moved_tasks, moved);
    return NULL;
}

typedef struct run_spec {
    int yields;
    bool stop_moved;
    bool bind;
    bool pin_self;
    unsigned flags; /* spawn flags besides CHILD_FIRST */
} run_spec;

/* The main task (worker 0) starts every task at once, child first, so that all have started
 * on worker 0 before any is queued; then joins them. */
static void *spawn_main(void *arg)
{
    const run_spec *rs = arg;
    static job jobs[NTASKS];
    weft_task *t[NTASKS];
    cr_assert_eq(weft_worker_index(), 0);
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST | rs->flags};
    for (int i = 0; i < NTASKS; i++) {
        jobs[i] = (job){.index = i,
                        .yields = rs->yields,
                        .stop_moved = rs->stop_moved,
                        .bind = rs->bind,
                        .pin_self = rs->pin_self};
        cr_assert_eq(weft_spawn(&t[i], yielder, &jobs[i], &o), 0);
    }
    for (int i = 0; i < NTASKS; i++) {
        void *r = (void *)-2;
        cr_assert_eq(weft_join(t[i], &r, WEFT_FOREVER), 0);
        cr_assert_null(r);
    }
    cr_assert_eq(weft_worker_index(), 0, "the main task never moves");
    return NULL;
}

static int run_moves(weft_config *c, const run_spec *rs)
{
    atomic_store(&moved_tasks, 0);
    atomic_store(&errno_lost, 0);
    run_main_cfg(c, spawn_main, (void *)rs);
    cr_assert_eq(atomic_load(&errno_lost), 0, "errno changed across a yield");
    return atomic_load(&moved_tasks);
}

static weft_config stealing_cfg(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_STEALING;
    c.move_started = 1;
    c.order = WEFT_ORDER_FIFO;
    c.backend = WEFT_BACKEND_EPOLL;
    c.stall_ms = -1;
    return c;
}

/* Eight started tasks yield on worker 0 while worker 1 has nothing: it asks, and worker 0
 * hands it some of them, started as they are. Each stops at its first move; at least one
 * must move (the bound is there only so that a failure ends). */
Test(migrate, started_tasks_move_to_an_idle_worker, .timeout = 120)
{
    weft_config c = stealing_cfg();
    run_spec rs = {.yields = MAX_YIELDS, .stop_moved = true};
    cr_assert_gt(run_moves(&c, &rs), 0, "no started task moved");
    /* And with the LIFO slot on, which then holds a started task after each yield. */
    c.lifo_slot = 1;
    cr_assert_gt(run_moves(&c, &rs), 0, "no started task moved with the LIFO slot");
}

/* The same load, where nothing started may move. */
Test(migrate, pinned_bound_sharded_and_off_stay, .timeout = 120)
{
    weft_config c = stealing_cfg();
    run_spec pinned = {.yields = STAY_YIELDS, .flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(run_moves(&c, &pinned), 0, "a pinned task moved");
    run_spec bound = {.yields = STAY_YIELDS, .bind = true};
    cr_assert_eq(run_moves(&c, &bound), 0, "a task holding a group moved");
    run_spec self_pinned = {.yields = STAY_YIELDS, .pin_self = true};
    cr_assert_eq(run_moves(&c, &self_pinned), 0, "a task that pinned itself moved");
    run_spec plain = {.yields = STAY_YIELDS};
    c.move_started = -1;
    cr_assert_eq(run_moves(&c, &plain), 0, "a started task moved with move_started off");
    c = stealing_cfg();
    c.mode = WEFT_MODE_SHARDED;
    cr_assert_eq(run_moves(&c, &plain), 0, "a task moved in sharded mode");
}

/* ---- Waits that may move --------------------------------------------------------------- */

enum { NPAIRS = 4, ROUNDS = 3000 };

typedef struct pair {
    weft_chan *ping, *pong;
    weft_mutex *mu;
    long *shared; /* under mu */
} pair;

static atomic_int pair_moves;

/* Sends ROUNDS values and expects each back plus one; counts under the mutex; notes a move. */
static void *pinger(void *arg)
{
    pair *p = arg;
    int first = weft_worker_index(), moved = 0;
    for (int i = 0; i < ROUNDS; i++) {
        if (weft_chan_send(p->ping, &i, WEFT_FOREVER) != 0)
            return (void *)1;
        int back = -1;
        if (weft_chan_recv(p->pong, &back, WEFT_FOREVER) != 0 || back != i + 1)
            return (void *)2;
        if (weft_mutex_lock(p->mu, WEFT_FOREVER) != 0)
            return (void *)3;
        (*p->shared)++;
        weft_mutex_unlock(p->mu);
        spin_us(2);
        moved |= weft_worker_index() != first;
    }
    atomic_fetch_add(&pair_moves, moved);
    return NULL;
}

static void *ponger(void *arg)
{
    pair *p = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int v = -1;
        if (weft_chan_recv(p->ping, &v, WEFT_FOREVER) != 0 || v != i)
            return (void *)4;
        v++;
        if (weft_chan_send(p->pong, &v, WEFT_FOREVER) != 0)
            return (void *)5;
    }
    return NULL;
}

static void *pairs_main(void *arg)
{
    (void)arg;
    static pair ps[NPAIRS];
    static long shared;
    static weft_mutex mutex = WEFT_MUTEX_INIT;
    weft_mutex *mu = &mutex;
    shared = 0;
    weft_task *t[2 * NPAIRS];
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    for (int i = 0; i < NPAIRS; i++) {
        cr_assert_eq(weft_chan_create(&ps[i].ping, sizeof(int), 0), 0);
        cr_assert_eq(weft_chan_create(&ps[i].pong, sizeof(int), 0), 0);
        ps[i].mu = mu;
        ps[i].shared = &shared;
        cr_assert_eq(weft_spawn(&t[2 * i], ponger, &ps[i], &o), 0);
        cr_assert_eq(weft_spawn(&t[2 * i + 1], pinger, &ps[i], &o), 0);
    }
    for (int i = 0; i < 2 * NPAIRS; i++) {
        void *r = (void *)-1;
        cr_assert_eq(weft_join(t[i], &r, WEFT_FOREVER), 0);
        cr_assert_null(r, "task %d failed at step %ld", i, (long)(intptr_t)r);
    }
    cr_assert_eq(shared, (long)NPAIRS * ROUNDS, "a count under the mutex was lost");
    for (int i = 0; i < NPAIRS; i++) {
        weft_chan_release(ps[i].ping);
        weft_chan_release(ps[i].pong);
    }
    return NULL;
}

/* Pairs exchanging values over channels and sharing a mutex, all started on worker 0: each
 * wait on a channel or the lock may end on the other worker; every value arrives once, in
 * order, and every count under the lock is kept. (Whether a pair moved is not asserted: it
 * depends on when worker 1 asks; the yielding test above asserts that moves happen.) */
Test(migrate, channel_and_lock_waits_move_and_lose_nothing, .timeout = 120)
{
    weft_config c = stealing_cfg();
    atomic_store(&pair_moves, 0);
    run_main_cfg(&c, pairs_main, NULL);
    c.lifo_slot = 1;
    run_main_cfg(&c, pairs_main, NULL);
    cr_log_info("pingers that moved: %d of %d", atomic_load(&pair_moves), 2 * NPAIRS);
}

Test(migrate, bad_move_started_is_refused)
{
    cr_assert_eq(weft_pin_self(), -EPERM, "outside a runtime");
    weft_config c = stealing_cfg();
    c.move_started = 2;
    cr_assert_eq(weft_run(&c, spawn_main, NULL, NULL), -EINVAL);
    c = stealing_cfg();
    c.reserved_[0] = 1;
    cr_assert_eq(weft_run(&c, spawn_main, NULL, NULL), -EINVAL);
}

static void *submitted(void *arg)
{
    return arg;
}

/* weft_submit_to's future is completed only on the caller's worker (its poll elsewhere stays
 * pending), so its caller must not move before its await: a task that yields between the two
 * stays on worker 0 and its await completes. Before the caller was bound, the tasks moved to
 * the idle worker 1 during the yields, and each await timed out. */
static void *submit_then_yield(void *arg)
{
    (void)arg;
    int first = weft_worker_index();
    weft_future *f = NULL;
    cr_assert_eq(weft_submit_to(1, submitted, (void *)42, &f), 0);
    for (int i = 0; i < STAY_YIELDS && weft_worker_index() == first; i++) {
        spin_us(5);
        weft_yield();
    }
    void *v = NULL;
    int r = weft_await(f, &v, weft_deadline_in(2 * WEFT_SEC));
    weft_future_destroy(f);
    cr_assert_eq(r, 0, "the await on worker %d of a future made on worker %d: %d",
                 weft_worker_index(), first, r);
    cr_assert_eq(v, (void *)42);
    cr_assert_eq(weft_worker_index(), first, "the caller of weft_submit_to moved");
    return NULL;
}

static void *submit_main(void *arg)
{
    (void)arg;
    weft_task *t[NTASKS];
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    for (int i = 0; i < NTASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], submit_then_yield, NULL, &o), 0);
    for (int i = 0; i < NTASKS; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(migrate, submit_to_caller_stays_for_its_await, .timeout = 60)
{
    weft_config c = stealing_cfg();
    run_main_cfg(&c, submit_main, NULL);
}

/* ---- Stacks after one-way moves ---------------------------------------------------------- */

/* Yields until it runs on another worker than it started on (or gives up), then ends there. */
static void *move_away(void *arg)
{
    (void)arg;
    int first = weft_worker_index();
    for (int i = 0; i < MAX_YIELDS && weft_worker_index() == first; i++)
        weft_yield();
    return NULL;
}

static void *one_way_main(void *arg)
{
    uint64_t *mmaps = arg;
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    weft_stats s0, s1;
    for (int round = 0; round < 150; round++) {
        if (round == 50)
            weft_stats_get(&s0);
        weft_task *t[NTASKS];
        for (int i = 0; i < NTASKS; i++)
            cr_assert_eq(weft_spawn(&t[i], move_away, NULL, &o), 0);
        for (int i = 0; i < NTASKS; i++)
            cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    }
    weft_stats_get(&s1);
    cr_assert_gt(s1.nsteals, s0.nsteals, "tasks moved");
    *mmaps = s1.nmmaps - s0.nmmaps;
    return NULL;
}

/* Each round, tasks start on worker 0 and end on worker 1. Their stacks end in worker 1's
 * pool, and worker 1 sends as many back with each hand-over it takes: after a warm-up
 * worker 0 maps no stack per moved task (it used to map one for each: 7 a round here). */
Test(migrate, one_way_moves_send_stacks_back, .timeout = 120)
{
    weft_config c = stealing_cfg();
    uint64_t mmaps = 0;
    run_main_cfg(&c, one_way_main, &mmaps);
    cr_assert_lt(mmaps, 100, "%llu stack mmaps in 100 rounds of moves", (unsigned long long)mmaps);
}
