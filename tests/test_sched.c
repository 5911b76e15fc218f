/* The scheduler: FIFO order, round-robin yields, fairness between yielders, sleepers and
 * I/O, notification before park, and wake-ups from other threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char log_buf[64];
static int nlog;

static void *logger(void *arg)
{
    const char *s = arg;
    for (; *s; s++) {
        log_buf[nlog++] = *s;
        weft_yield();
    }
    return NULL;
}

static void *fifo_main(void *arg)
{
    (void)arg;
    nlog = 0;
    weft_task *a, *b, *c;
    weft_spawn(&a, logger, "aaa", NULL);
    weft_spawn(&b, logger, "bbb", NULL);
    weft_spawn(&c, logger, "ccc", NULL);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    weft_join(c, NULL, WEFT_FOREVER);
    log_buf[nlog] = 0;
    cr_assert_str_eq(log_buf, "abcabcabc");
    return NULL;
}

Test(sched, spawn_order_is_fifo_and_yield_round_robins)
{
    run_main(fifo_main, NULL);
}

static void *spinner(void *arg)
{
    atomic_int *stop = arg;
    long n = 0;
    while (!atomic_load(stop)) {
        weft_yield();
        n++;
    }
    return (void *)n;
}

static void *stopper(void *arg)
{
    weft_sleep(5 * WEFT_MSEC);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void *starve_main(void *arg)
{
    (void)arg;
    atomic_int stop = 0;
    weft_task *s1, *s2, *w;
    weft_spawn(&s1, spinner, &stop, NULL);
    weft_spawn(&s2, spinner, &stop, NULL);
    weft_spawn(&w, stopper, &stop, NULL);
    /* If yields starved the timer, this join would never return (the test times out). */
    weft_join(w, NULL, WEFT_FOREVER);
    void *n1, *n2;
    weft_join(s1, &n1, WEFT_FOREVER);
    weft_join(s2, &n2, WEFT_FOREVER);
    cr_assert_gt((long)n1, 0);
    cr_assert_gt((long)n2, 0);
    return NULL;
}

Test(sched, yielding_loop_does_not_starve_a_sleeper, .timeout = 30)
{
    run_main(starve_main, NULL);
}

struct pipe_ctx {
    int fds[2];
    atomic_int got;
};

static void *pipe_reader(void *arg)
{
    struct pipe_ctx *p = arg;
    int r = weft_fd_wait(p->fds[0], WEFT_READABLE, WEFT_FOREVER);
    char c;
    if (r == WEFT_READABLE && read(p->fds[0], &c, 1) == 1)
        atomic_store(&p->got, c);
    return NULL;
}

static void *io_starve_main(void *arg)
{
    (void)arg;
    struct pipe_ctx p = {.got = 0};
    cr_assert_eq(pipe(p.fds), 0);
    atomic_int stop = 0;
    weft_task *r, *s;
    weft_spawn(&r, pipe_reader, &p, NULL);
    weft_yield(); /* reader parks on the pipe */
    weft_spawn(&s, spinner, &stop, NULL);
    cr_assert_eq(write(p.fds[1], "x", 1), 1);
    /* The ready queue never empties (main and the spinner yield), so the reader only wakes
     * if I/O is polled while tasks are ready. */
    while (!atomic_load(&p.got))
        weft_yield();
    atomic_store(&stop, 1);
    weft_join(r, NULL, WEFT_FOREVER);
    weft_join(s, NULL, WEFT_FOREVER);
    cr_assert_eq(atomic_load(&p.got), 'x');
    weft_close(p.fds[0]);
    close(p.fds[1]);
    return NULL;
}

Test(sched, busy_ready_queue_does_not_starve_io, .timeout = 30)
{
    run_main(io_starve_main, NULL);
}

/* A wake that arrives before the park makes the park return at once (it is not lost). */
static void *notify_main(void *arg)
{
    (void)arg;
    weft_waker self = weft_waker_current();
    weft_waker_wake(self); /* running: becomes "notified" */
    weft_waker_wake(self); /* twice is the same as once */
    weft_promise *p;
    weft_promise_create(&p);
    /* The park inside this await is cut short by the notification, then the promise is
     * still pending, so the await parks again and times out. */
    int r = weft_await(weft_promise_future(p), NULL, weft_deadline_in(2 * WEFT_MSEC));
    weft_promise_release(p);
    cr_assert_eq(r, -ETIMEDOUT);
    return NULL;
}

Test(sched, wake_before_park_is_not_lost)
{
    run_main(notify_main, NULL);
}

/* A leaf future completed by another thread: the waker crosses threads through the inbox
 * and the eventfd, and the worker blocked in epoll wakes up. */
struct remote_future {
    weft_future base;
    atomic_int done;
    _Atomic(weft_waker *) waker; /* published for the thread */
    weft_waker wk;
};

static int remote_poll(weft_future *self, weft_context *cx)
{
    struct remote_future *f = (struct remote_future *)self;
    if (atomic_load(&f->done)) {
        weft_future_complete(self, 0, (void *)(intptr_t)123);
        return WEFT_READY;
    }
    f->wk = cx->waker;
    atomic_store(&f->waker, &f->wk);
    return WEFT_PENDING;
}

static const weft_future_ops remote_ops = {remote_poll, NULL};

static void *completer(void *arg)
{
    struct remote_future *f = arg;
    weft_waker *wk;
    while ((wk = atomic_load(&f->waker)) == NULL)
        usleep(100);
    usleep(2000); /* let the worker block in epoll */
    atomic_store(&f->done, 1);
    weft_waker_wake(*wk);
    return NULL;
}

static void *remote_main(void *arg)
{
    (void)arg;
    struct remote_future f;
    memset(&f, 0, sizeof f);
    weft_future_init(&f.base, &remote_ops);
    pthread_t th;
    pthread_create(&th, NULL, completer, &f);
    void *v;
    int r = weft_await(&f.base, &v, WEFT_FOREVER);
    pthread_join(th, NULL);
    cr_assert_eq(r, 0);
    cr_assert_eq(v, (void *)123);
    return NULL;
}

Test(sched, wake_from_another_thread, .timeout = 30)
{
    run_main(remote_main, NULL);
}

static void *budget_main(void *arg)
{
    (void)arg;
    weft_stats a, b;
    weft_stats_get(&a);
    for (int i = 0; i < 1000; i++)
        weft_yield();
    weft_stats_get(&b);
    /* Budget 8: a loop tick at least every 8 resumes. */
    cr_assert_geq(b.nticks - a.nticks, 1000 / 8 - 1);
    return NULL;
}

Test(sched, budget_bounds_resumes_per_tick)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.budget = 8;
    run_main_cfg(&cfg, budget_main, NULL);
}

/* ---- Stealing mode's LIFO slot (weft_config.lifo_slot) ---- */

static weft_config lifo_cfg(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_STEALING;
    c.lifo_slot = 1;
    return c;
}

static const weft_spawn_opts pinned = {.flags = WEFT_SPAWN_PINNED}; /* no thief reorders */

static void *lifo_order_main(void *arg)
{
    (void)arg;
    nlog = 0;
    weft_task *a, *b, *c;
    /* Each spawn takes the slot and sends the previous one to the tail: c, then a, b. */
    weft_spawn(&a, logger, "a", &pinned);
    weft_spawn(&b, logger, "b", &pinned);
    weft_spawn(&c, logger, "c", &pinned);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    weft_join(c, NULL, WEFT_FOREVER);
    log_buf[nlog] = 0;
    cr_assert_str_eq(log_buf, "cab");
    return NULL;
}

static weft_chan *lifo_chan;

/* Wakes the parked receiver, which takes the slot and runs before the yielders queued. */
static void *lifo_receiver(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(lifo_chan, &v, WEFT_FOREVER);
    log_buf[nlog++] = 'r';
    return NULL;
}

static void *lifo_wake_main(void *arg)
{
    (void)arg;
    nlog = 0;
    cr_assert_eq(weft_chan_create(&lifo_chan, sizeof(int), 1), 0);
    weft_task *r, *y;
    weft_spawn(&r, lifo_receiver, NULL, &pinned);
    weft_yield(); /* it parks on the empty channel */
    weft_spawn(&y, logger, "yy", &pinned);
    int v = 1;
    cr_assert_eq(weft_chan_send(lifo_chan, &v, WEFT_FOREVER), 0); /* wakes r: the slot */
    weft_join(r, NULL, WEFT_FOREVER);
    weft_join(y, NULL, WEFT_FOREVER);
    log_buf[nlog] = 0;
    cr_assert_str_eq(log_buf, "ryy", "the woken receiver ran first");
    weft_chan_release(lifo_chan);
    return NULL;
}

Test(sched, the_lifo_slot_runs_the_last_spawned_or_woken_task_next)
{
    weft_config c = lifo_cfg();
    run_main_cfg(&c, lifo_order_main, NULL);
    run_main_cfg(&c, lifo_wake_main, NULL);
    /* Off (the default), the same program keeps the queue's order. */
    c.lifo_slot = -1;
    c.mode = WEFT_MODE_STEALING;
    run_main_cfg(&c, fifo_main, NULL);
    c.lifo_slot = 2;
    cr_assert_eq(weft_run(&c, lifo_order_main, NULL, NULL), -EINVAL);
}

/* Two tasks that wake each other for ever would hold the slot: a third, queued, still runs
 * once every WEFT__LIFO_MAX + 1 picks at least. */
static weft_chan *ping_c, *pong_c;
static atomic_int lifo_yields;

static void *pinger(void *arg)
{
    (void)arg;
    int v = 0;
    for (int i = 0; i < 4000; i++) {
        weft_chan_send(ping_c, &v, WEFT_FOREVER);
        weft_chan_recv(pong_c, &v, WEFT_FOREVER);
    }
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    int v;
    for (int i = 0; i < 4000; i++) {
        weft_chan_recv(ping_c, &v, WEFT_FOREVER);
        weft_chan_send(pong_c, &v, WEFT_FOREVER);
    }
    return NULL;
}

static void *counting_yielder(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop)) {
        atomic_fetch_add(&lifo_yields, 1);
        weft_yield();
    }
    return NULL;
}

static void *lifo_starve_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&ping_c, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&pong_c, sizeof(int), 0), 0);
    atomic_int stop = 0;
    atomic_store(&lifo_yields, 0);
    weft_task *y, *a, *b;
    weft_spawn(&y, counting_yielder, &stop, &pinned);
    weft_spawn(&a, pinger, NULL, &pinned);
    weft_spawn(&b, ponger, NULL, &pinned);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    int during = atomic_load(&lifo_yields);
    atomic_store(&stop, 1);
    weft_join(y, NULL, WEFT_FOREVER);
    /* 8,000 hand-overs, each a wake into the slot: the yielder gets a turn at least once in
     * four picks (about 2,000 times); with no cap it would get none until the end. */
    cr_assert_geq(during, 1000, "the yielder ran %d times during 8,000 hand-overs", during);
    weft_chan_release(ping_c);
    weft_chan_release(pong_c);
    return NULL;
}

Test(sched, the_lifo_slot_cannot_starve_the_queue)
{
    weft_config c = lifo_cfg();
    run_main_cfg(&c, lifo_starve_main, NULL);
}

/* ---- Depth-first order (weft_config.order = WEFT_ORDER_DEPTH_FIRST) ---- */

static weft_config depth_first_cfg(unsigned workers, int mode)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = workers;
    c.mode = mode;
    c.order = WEFT_ORDER_DEPTH_FIRST;
    return c;
}

static void *df_order_main(void *arg)
{
    (void)arg;
    nlog = 0;
    weft_task *a, *b, *c;
    /* The newest spawn runs first; a yield goes behind everything (round robin among the
     * three after their first runs, newest first). */
    weft_spawn(&a, logger, "aa", NULL);
    weft_spawn(&b, logger, "bb", NULL);
    weft_spawn(&c, logger, "cc", NULL);
    weft_join(a, NULL, WEFT_FOREVER);
    weft_join(b, NULL, WEFT_FOREVER);
    weft_join(c, NULL, WEFT_FOREVER);
    log_buf[nlog] = 0;
    cr_assert_str_eq(log_buf, "cbacba");
    return NULL;
}

/* A fork-join tree: each node spawns two children and joins them. How many nodes have
 * started and not finished at once is the stacks it holds. */
static atomic_int df_live, df_live_max, df_nodes;

static void *df_node(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    int live = atomic_fetch_add(&df_live, 1) + 1;
    int m = atomic_load(&df_live_max);
    while (live > m && !atomic_compare_exchange_weak(&df_live_max, &m, live))
        ;
    atomic_fetch_add(&df_nodes, 1);
    if (depth > 0) {
        weft_task *a, *b;
        cr_assert_eq(weft_spawn(&a, df_node, (void *)(depth - 1), NULL), 0);
        cr_assert_eq(weft_spawn(&b, df_node, (void *)(depth - 1), NULL), 0);
        cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(weft_join(b, NULL, WEFT_FOREVER), 0);
    }
    atomic_fetch_sub(&df_live, 1);
    return NULL;
}

static void *df_tree_main(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    atomic_store(&df_live, 0);
    atomic_store(&df_live_max, 0);
    atomic_store(&df_nodes, 0);
    df_node((void *)depth);
    cr_assert_eq(atomic_load(&df_nodes), (2 << depth) - 1);
    return (void *)(intptr_t)atomic_load(&df_live_max);
}

Test(sched, depth_first_order_runs_a_fork_join_tree_on_its_depth_of_stacks)
{
    enum { DEPTH = 12 }; /* 8,191 nodes */
    weft_config c = depth_first_cfg(1, WEFT_MODE_SHARDED);
    run_main_cfg(&c, df_order_main, NULL);
    intptr_t most = (intptr_t)run_main_cfg(&c, df_tree_main, (void *)(intptr_t)DEPTH);
    /* The path from the root, and each node's second child queued beside it. */
    cr_assert_leq(most, 2 * (DEPTH + 1), "%ld nodes alive at once", (long)most);
    /* First in, first out holds a level of the tree at once: the order is what changed. */
    c.order = WEFT_ORDER_FIFO;
    intptr_t fifo = (intptr_t)run_main_cfg(&c, df_tree_main, (void *)(intptr_t)DEPTH);
    cr_assert_gt(fifo, 1 << (DEPTH - 1), "%ld nodes alive at once in FIFO order", (long)fifo);
    c.order = 3;
    cr_assert_eq(weft_run(&c, df_tree_main, NULL, NULL), -EINVAL);
    c.order = -1;
    cr_assert_eq(weft_run(&c, df_tree_main, NULL, NULL), -EINVAL);
}

/* Stealing: thieves take the oldest never-run tasks, and the tree completes on both. */
Test(sched, depth_first_order_with_stealing_completes_a_tree)
{
    enum { DEPTH = 14 };
    weft_config c = depth_first_cfg(2, WEFT_MODE_STEALING);
    intptr_t most = (intptr_t)run_main_cfg(&c, df_tree_main, (void *)(intptr_t)DEPTH);
    cr_assert_lt(most, 1 << 10, "%ld nodes alive at once", (long)most);
}
