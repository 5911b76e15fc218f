/* Timers and time: sleeps never return early, fire in deadline order (FIFO among equal
 * deadlines), leave no timer behind when cancelled, and a sleeper that comes due runs ahead
 * of the tasks already queued (at the next pick after a system call or after a long
 * resume, else within the tick's budget); the intrusive heap keeps its order under random
 * inserts and removals. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "timer.h"
#include "worker.h"

static int64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

static void *sleeper(void *arg)
{
    int64_t ns = (int64_t)(intptr_t)arg;
    int64_t deadline = weft_deadline_in(ns);
    int r = weft_sleep_until(deadline);
    return (void *)(intptr_t)(r == 0 && real_now() >= deadline && weft_now() >= deadline);
}

static void *never_early_main(void *arg)
{
    (void)arg;
    weft_task *t[50];
    for (int i = 0; i < 50; i++)
        weft_spawn(&t[i], sleeper, (void *)(intptr_t)((i % 7) * 300 * WEFT_USEC), NULL);
    int ok = 1;
    for (int i = 0; i < 50; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        ok &= (int)(intptr_t)r;
    }
    return (void *)(intptr_t)ok;
}

Test(timer, sleeps_never_return_before_their_deadline)
{
    cr_assert_eq(run_main(never_early_main, NULL), (void *)1);
}

static void *count_up(void *arg)
{
    ++*(int *)arg;
    return NULL;
}

/* weft_sleep(ns) after the task spent longer than ns in a call of its own (a plain usleep)
 * since its tick began: its deadline came from the tick's cached clock, already passed, so
 * it returned at once and the ready task beside it never ran. It sleeps ns from the call. */
static void *sleep_after_block_main(void *arg)
{
    (void)arg;
    int ran = 0;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, count_up, &ran, NULL), 0);
    cr_assert_eq(weft_yield(), 0);          /* count_up runs (not left to the sleep below:
                                             * under qemu its 1 ms could pass before the pick,
                                             * and the sleeper, due, went first) */
    cr_assert_eq(weft_sleep(WEFT_MSEC), 0); /* a fresh tick */
    cr_assert_eq(ran, 1);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_spawn(&t, count_up, &ran, NULL), 0); /* ready, behind us */
    usleep(30000);
    int64_t before = real_now();
    cr_assert_eq(weft_sleep(10 * WEFT_MSEC), 0);
    cr_assert_geq(real_now() - before, 10 * WEFT_MSEC, "weft_sleep returned early");
    cr_assert_eq(ran, 2, "the ready task did not run while we slept");
    cr_assert_eq(weft_sleep(0), 0);
    cr_assert_eq(weft_sleep(-5), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* The same for a deadline: weft_deadline_in counts from the call (it counted from the
     * tick, 30 ms behind: a 10 ms deadline had passed, and a read with it timed out at once). */
    cr_assert_eq(weft_sleep(WEFT_MSEC), 0); /* a fresh tick */
    usleep(30000);
    before = real_now();
    int64_t dl = weft_deadline_in(10 * WEFT_MSEC);
    cr_assert_geq(dl, before + 10 * WEFT_MSEC, "a deadline from the tick, %lld ns early",
                  (long long)(before + 10 * WEFT_MSEC - dl));
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char c;
    usleep(30000);
    before = real_now();
    cr_assert_eq(weft_read(p[0], &c, 1, weft_deadline_in(10 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_geq(real_now() - before, 10 * WEFT_MSEC, "the read waited its 10 ms");
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(timer, a_sleep_or_deadline_after_a_long_call_counts_from_the_call_not_from_the_tick)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.stall_ms = -1; /* the 30 ms usleep is meant */
    run_main_cfg(&cfg, sleep_after_block_main, NULL);
}

static int wake_order[32];
static int nwoken;
static int64_t last_park; /* the latest weft_now() a sleeper read before it parked */

struct sleep_arg {
    int id;
    int64_t deadline;
};

static void *ordered_sleeper(void *arg)
{
    struct sleep_arg *a = arg;
    int64_t now = weft_now();
    if (now > last_park)
        last_park = now;
    weft_sleep_until(a->deadline);
    wake_order[nwoken++] = a->id;
    return NULL;
}

/* One try: 7 sleepers spawned out of order, their deadlines `margin` from now and 100 us
 * apart (ids 3, 4, 5 share one). Returns false when a sleeper parked after the first
 * deadline had passed (a slow machine, qemu): then the order says nothing of the timers. */
static bool order_once(int64_t margin)
{
    nwoken = 0;
    last_park = 0;
    int64_t base = weft_now() + margin;
    static const int64_t offs[7][2] = {{6, 9}, {1, 2}, {3, 5}, {0, 1}, {4, 5}, {2, 3}, {5, 5}};
    struct sleep_arg args[7];
    weft_task *t[7];
    for (int i = 0; i < 7; i++) {
        args[i] = (struct sleep_arg){(int)offs[i][0], base + offs[i][1] * 100 * WEFT_USEC};
        cr_assert_eq(weft_spawn(&t[i], ordered_sleeper, &args[i], NULL), 0);
    }
    for (int i = 0; i < 7; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    if (last_park >= base + 100 * WEFT_USEC)
        return false;
    for (int i = 0; i < 7; i++)
        cr_assert_eq(wake_order[i], i, "position %d woke %d", i, wake_order[i]);
    return true;
}

static void *order_main(void *arg)
{
    (void)arg;
    /* The margin doubles until every sleeper parks before the first deadline: 2 ms is
     * plenty natively, qemu on a loaded machine has needed over 20. */
    int64_t margin = 2 * WEFT_MSEC;
    bool checked = false;
    for (int tries = 0; tries < 10 && !checked; tries++, margin *= 2)
        checked = order_once(margin);
    cr_assert(checked, "no try had every sleeper parked before the first deadline");
    return NULL;
}

Test(timer, timers_fire_in_deadline_order_fifo_among_equals)
{
    run_main(order_main, NULL);
}

static void *sleep_long(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep(3600 * WEFT_SEC);
}

static void *no_leftover_main(void *arg)
{
    (void)arg;
    weft_task *t[100];
    for (int i = 0; i < 100; i++)
        weft_spawn(&t[i], sleep_long, NULL, NULL);
    /* Every sleeper armed its timer: here after one yield, but in stealing mode some run on
     * the other worker, whenever it gets to them (its count is published at its ticks). */
    weft_stats st;
    weft_yield();
    weft_stats_get(&st);
    for (int i = 0; i < 10000 && st.ntimers < 100; i++) {
        weft_sleep(WEFT_MSEC);
        weft_stats_get(&st);
    }
    cr_assert_eq(st.ntimers, 100);
    for (int i = 0; i < 100; i++)
        weft_cancel(t[i]);
    for (int i = 0; i < 100; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        cr_assert_eq(r, WEFT_CANCELED);
    }
    weft_stats_get(&st);
    cr_assert_eq(st.ntimers, 0, "a cancelled task left a timer behind");
    return NULL;
}

Test(timer, cancelled_sleepers_leave_no_timer)
{
    run_main(no_leftover_main, NULL);
}

/* Lateness in resumes, not in time: how many other tasks began a run after the sleeper's
 * deadline had passed at a pick, before the sleeper itself ran. */
static int64_t due_at;
static bool due_woke, due_seen;
static int late_resumes;
static int64_t compute_ns; /* each busy run's computation before its yield (no system call) */

static void *due_sleeper(void *arg)
{
    (void)arg;
    weft_sleep_until(due_at);
    due_woke = true;
    return NULL;
}

/* Yields in a loop, with a system call before each yield when fd >= 0. */
static void *busy(void *arg)
{
    int fd = (int)(intptr_t)arg;
    while (!due_woke) {
        if (due_seen)
            late_resumes++;
        if (fd >= 0)
            cr_assert_eq(weft_tcp_nodelay(fd, 1), 0);
        for (int64_t until = real_now() + compute_ns; compute_ns && real_now() < until;)
            ; /* the vDSO's clock: no system call weft sees */
        /* Read after the call: the pick in the yield below reads the clock later still. */
        if (real_now() >= due_at)
            due_seen = true;
        weft_yield();
    }
    return NULL;
}

static void *due_main(void *arg)
{
    int nbusy = (int)(intptr_t)arg;
    bool syscalls = nbusy > 0;
    nbusy = abs(nbusy);
    int fd = syscalls ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    due_woke = due_seen = false;
    late_resumes = 0;
    compute_ns = nbusy > 1000 ? 200 * WEFT_USEC : 0;
    nbusy %= 1000;
    due_at = real_now() + 2 * WEFT_MSEC;
    weft_task *s, *b[100];
    /* Pinned: the order measured is one worker's queue (stealing mode would spread them). */
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    weft_spawn(&s, due_sleeper, NULL, &pin);
    for (int i = 0; i < nbusy; i++)
        weft_spawn(&b[i], busy, (void *)(intptr_t)fd, &pin);
    weft_join(s, NULL, WEFT_FOREVER);
    for (int i = 0; i < nbusy; i++)
        weft_join(b[i], NULL, WEFT_FOREVER);
    if (fd >= 0)
        close(fd);
    return NULL;
}

Test(timer, a_due_sleeper_runs_at_the_next_pick_after_a_system_call)
{
    /* Each busy task makes a system call, sees the deadline passed, and yields: the pick in
     * that yield must fire the timer and run the sleeper before any busy task. */
    run_main(due_main, (void *)(intptr_t)3);
    cr_assert_eq(late_resumes, 0, "%d resumes ran after the deadline, before the sleeper",
                 late_resumes);
}

Test(timer, a_sleeper_woken_by_the_tick_runs_before_the_queue)
{
    /* Yields only (no system call, so no clock read between resumes): the tick fires the
     * timer within its budget, and the sleeper goes ahead of the 100 tasks queued. */
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.budget = 8;
    run_main_cfg(&cfg, due_main, (void *)(intptr_t)-100);
    cr_assert_leq(late_resumes, 8, "%d resumes ran after the deadline, before the sleeper",
                  late_resumes);
}

Test(timer, a_due_sleeper_runs_at_the_next_pick_between_long_resumes_without_system_calls)
{
    /* Each busy run computes 200 us, making no system call, then yields. The pick reads
     * the clock every few resumes, as many as fit in about 4 us (WEFT__TIMER_POLL_NS): here
     * every one, so the pick after the run that saw the deadline pass fires the timer and
     * runs the sleeper before any busy task. Before, nothing read the clock before the
     * tick's end: 64 runs of 200 us, the deadline missed by up to 12.8 ms. */
    run_main(due_main, (void *)(intptr_t)-1006);
    cr_assert_eq(late_resumes, 0, "%d resumes ran after the deadline, before the sleeper",
                 late_resumes);
}

static void *slack_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
}

Test(timer, the_loop_waits_with_the_least_timer_slack_and_restores_the_threads)
{
    cr_assert_eq(prctl(PR_SET_TIMERSLACK, 50000UL, 0UL, 0UL, 0UL), 0);
    cr_assert_eq(run_main(slack_main, NULL), (void *)(intptr_t)1);
    cr_assert_eq(prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL), 50000);
}

Test(timer, deadline_arithmetic)
{
    int64_t now = weft_now();
    cr_assert_geq(now, 0);
    cr_assert_eq(weft_deadline_in(INT64_MAX), INT64_MAX, "saturates");
    int64_t passed = weft_deadline_in(-5);
    int64_t later = weft_now();
    cr_assert_lt(passed, later, "a negative delay gives a deadline already passed");
    cr_assert_neq(passed, WEFT_FOREVER);
}

static void *past_deadline_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep_until(0), 0, "a passed deadline returns at once");
    cr_assert_eq(weft_sleep(-1), 0);
    return NULL;
}

Test(timer, passed_deadline_does_not_block)
{
    run_main(past_deadline_main, NULL);
}

/* weft.h: a deadline that has passed makes a call non-blocking, and only -1 is WEFT_FOREVER.
 * Every other negative deadline (-2, INT64_MIN, a delay subtracted from 0) has passed: each
 * wait of the channel and sync sections returns -ETIMEDOUT at once when it would wait, and
 * completes when it can, in a task and on a plain thread alike (none is taken for "forever"). */
static const int64_t negative_deadlines[] = {-2, -WEFT_SEC, INT64_MIN};

typedef struct neg_shared {
    weft_chan *empty, *full;
    weft_mutex held;
    weft_rwlock read_held;
    weft_bcast_rx *rx;
} neg_shared;

/* The waits a plain thread may make too; `held` and `read_held` are another's. */
static void negative_deadline_waits(neg_shared *sh, int64_t d)
{
    long v = 1;
    cr_assert_eq(weft_chan_recv(sh->empty, &v, d), -ETIMEDOUT, "deadline %lld", (long long)d);
    cr_assert_eq(weft_chan_send(sh->full, &v, d), -ETIMEDOUT);
    weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = sh->empty, .elem = &v},
                       {.op = WEFT_CASE_SEND, .chan = sh->full, .elem = &v}};
    cr_assert_eq(weft_select(cs, 2, d), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_lock(&sh->held, d), -ETIMEDOUT);
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&m, d), 0, "a free mutex is taken");
    weft_cond c = WEFT_COND_INIT;
    cr_assert_eq(weft_cond_wait(&c, &m, d), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(&m), 0, "still held after the timeout");
    weft_sem s = WEFT_SEM_INIT(0);
    cr_assert_eq(weft_sem_acquire(&s, d), -ETIMEDOUT);
    cr_assert_eq(weft_sem_release(&s, 1), 0);
    cr_assert_eq(weft_sem_acquire(&s, d), 0, "a unit there is taken");
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_wait(&wg, d), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, d), -ETIMEDOUT);
    cr_assert_eq(weft_rwlock_wrlock(&sh->read_held, d), -ETIMEDOUT);
    weft_event e = WEFT_EVENT_INIT;
    cr_assert_eq(weft_event_wait(&e, d), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, d), 0);
    cr_assert_eq(weft_bcast_recv(sh->rx, &v, NULL, d), -ETIMEDOUT);
}

static void *negative_deadlines_thread(void *arg)
{
    for (size_t i = 0; i < sizeof negative_deadlines / sizeof negative_deadlines[0]; i++)
        negative_deadline_waits(arg, negative_deadlines[i]);
    return NULL;
}

static void *hold_lock_and_read(void *arg)
{
    neg_shared *sh = arg;
    cr_assert_eq(weft_mutex_lock(&sh->held, WEFT_FOREVER), 0);
    cr_assert_eq(weft_rwlock_rdlock(&sh->read_held, WEFT_FOREVER), 0);
    cr_assert_eq(weft_sleep(WEFT_SEC * 3600), -ECANCELED);
    cr_assert_eq(weft_rwlock_unlock(&sh->read_held), 0);
    cr_assert_eq(weft_mutex_unlock(&sh->held), 0);
    return NULL;
}

static void once_sleeps(void *arg)
{
    (void)arg;
    weft_sleep(WEFT_SEC * 3600); /* until its task is cancelled */
}

static void *run_once(void *arg)
{
    return (void *)(intptr_t)weft_once_call(arg, once_sleeps, NULL, WEFT_FOREVER);
}

static void *negative_deadlines_main(void *arg)
{
    (void)arg;
    neg_shared sh = {.held = WEFT_MUTEX_INIT, .read_held = WEFT_RWLOCK_INIT};
    cr_assert_eq(weft_chan_create(&sh.empty, sizeof(long), 0), 0);
    cr_assert_eq(weft_chan_create(&sh.full, sizeof(long), 1), 0);
    long v = 0;
    cr_assert_eq(weft_chan_try_send(sh.full, &v), 0);
    weft_bcast *b;
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 4), 0);
    cr_assert_eq(weft_bcast_subscribe(b, &sh.rx), 0);
    weft_once o = WEFT_ONCE_INIT;
    weft_task *holder, *runner;
    cr_assert_eq(weft_spawn(&holder, hold_lock_and_read, &sh, NULL), 0);
    cr_assert_eq(weft_spawn(&runner, run_once, &o, NULL), 0);
    while (weft_task_status(holder) != WEFT_TASK_PARKED ||
           weft_task_status(runner) != WEFT_TASK_PARKED)
        cr_assert_eq(weft_yield(), 0);
    for (size_t i = 0; i < sizeof negative_deadlines / sizeof negative_deadlines[0]; i++) {
        int64_t d = negative_deadlines[i];
        negative_deadline_waits(&sh, d);
        cr_assert_eq(weft_sleep_until(d), 0);
        cr_assert_eq(weft_once_call(&o, once_sleeps, NULL, d), -ETIMEDOUT);
        weft_case tc[2] = {{.op = WEFT_CASE_RECV, .chan = sh.empty, .elem = &v},
                           {.op = WEFT_CASE_TIMER, .at = INT64_MAX}};
        cr_assert_eq(weft_select(tc, 2, d), -ETIMEDOUT);
        tc[1].at = d; /* a timer case at a negative time is due */
        cr_assert_eq(weft_select(tc, 2, WEFT_FOREVER), 1);
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, negative_deadlines_thread, &sh), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(weft_cancel(holder), 0);
    cr_assert_eq(weft_cancel(runner), 0);
    cr_assert_eq(weft_join(holder, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(runner, NULL, WEFT_FOREVER), 0);
    weft_bcast_unsubscribe(sh.rx);
    weft_bcast_release(b);
    weft_chan_release(sh.empty);
    weft_chan_release(sh.full);
    return NULL;
}

Test(timer, negative_deadlines_other_than_forever_have_passed_in_every_wait)
{
    run_main(negative_deadlines_main, NULL);
}

/* weft_blocking with a passed deadline cannot complete at once (its function runs on a pool
 * thread), so it is -ETIMEDOUT and the function never runs: a pool thread idle at the time
 * must not take the job in the moment before the withdrawal (it ran, and the call returned 0,
 * now and then: which of the two happened was a race). */
static void *count_run(void *arg)
{
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
    return arg;
}

static void *blocking_passed_deadline_main(void *arg)
{
    (void)arg;
    int nran = 0;
    void *r = NULL;
    cr_assert_eq(weft_blocking(count_run, &nran, &r, WEFT_FOREVER), 0, "a pool thread, idle now");
    cr_assert_eq(r, &nran);
    const int64_t passed[] = {0, -2, INT64_MIN, weft_now()};
    for (int round = 0; round < 200; round++) {
        int64_t d = passed[round % 4];
        cr_assert_eq(weft_blocking(count_run, &nran, NULL, d), -ETIMEDOUT, "deadline %lld",
                     (long long)d);
    }
    cr_assert_eq(__atomic_load_n(&nran, __ATOMIC_RELAXED), 1, "no job of a passed deadline ran");
    return NULL;
}

Test(timer, blocking_with_a_passed_deadline_times_out_without_running)
{
    run_main(blocking_passed_deadline_main, NULL);
}

/* ---- The timer heap itself, driven through the internal calls on a bare worker ---- */

Test(timer, heap_fires_in_order_under_random_inserts_and_removes)
{
    enum { N = 20000 };
    static weft__timer timers[N];
    static weft__worker w; /* only its timer fields are used */
    srand(12345);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft__timer_start(&w, &timers[i], rand() % 5000, (weft_waker){0}), 0);
    /* Re-arm a tenth with new deadlines, stop a third. */
    for (int i = 0; i < N; i += 10)
        weft__timer_start(&w, &timers[i], rand() % 5000, (weft_waker){0});
    size_t left = N;
    for (int i = 0; i < N; i += 3) {
        weft__timer_stop(&w, &timers[i]);
        cr_assert_eq(timers[i].index, 0);
        left--;
    }
    cr_assert_eq(w.timers.n, left);
    /* Advance time to each next deadline: the minima never go backwards, and every armed
     * timer fires exactly once. */
    int64_t last = -1;
    while (w.timers.n) {
        int64_t next = weft__timers_next(&w, 0);
        cr_assert_geq(next, last);
        last = next;
        size_t fired = weft__timers_run(&w, next);
        cr_assert_gt(fired, 0);
        left -= fired;
    }
    cr_assert_eq(left, 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(timers[i].index, 0);
    weft__timers_fini(&w);
}

/* Two batches of timer wakes before the next pick (a slow machine: one fired at the tick's
 * start, one at the first pick): the second goes behind the first, which has the earlier
 * deadlines, and both ahead of the tasks queued before them. The queue operation alone. */
struct node {
    struct node *next;
    int id;
};

static void check_queue(weft__fifo *q, const int *want, size_t n)
{
    struct node *p = q->head;
    for (size_t i = 0; i < n; i++, p = p->next) {
        cr_assert_not_null(p, "short at %zu", i);
        cr_assert_eq(p->id, want[i], "position %zu holds %d, not %d", i, p->id, want[i]);
    }
    cr_assert_null(p);
    cr_assert_eq(((struct node *)q->tail)->id, want[n - 1]);
}

Test(timer, a_later_batch_of_timer_wakes_goes_behind_an_earlier_one)
{
    struct node v[8];
    weft__fifo q = {0};
    size_t off = offsetof(struct node, next);
    for (int i = 0; i < 8; i++)
        v[i].id = i;
    weft__fifo_push(&q, &v[0], off); /* queued before any timer fired */
    weft__fifo_push(&q, &v[1], off);
    void *mark = q.tail; /* batch one: 2 and 3 */
    weft__fifo_push(&q, &v[2], off);
    weft__fifo_push(&q, &v[3], off);
    weft__fifo_to_nth(&q, mark, 0, off);
    check_queue(&q, (int[]){2, 3, 0, 1}, 4);
    mark = q.tail; /* batch two: 4, behind the two of batch one */
    weft__fifo_push(&q, &v[4], off);
    weft__fifo_to_nth(&q, mark, 2, off);
    check_queue(&q, (int[]){2, 3, 4, 0, 1}, 5);
    /* The five run; then one queued task and a batch behind k = 1: nothing moves. */
    (void)weft__fifo_pop(&q, off);
    (void)weft__fifo_pop(&q, off);
    (void)weft__fifo_pop(&q, off);
    (void)weft__fifo_pop(&q, off);
    (void)weft__fifo_pop(&q, off);
    weft__fifo_push(&q, &v[5], off);
    mark = q.tail;
    weft__fifo_push(&q, &v[6], off);
    weft__fifo_to_nth(&q, mark, 1, off);
    check_queue(&q, (int[]){5, 6}, 2);
}
