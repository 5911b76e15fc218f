/* The general select: fd readiness, futures and timers among channel cases (src/select.c),
 * on both backends. Each kind chosen when it alone is ready; the uniform choice between a
 * ready channel case and a ready general one; nothing taken by a case that loses (a
 * channel's value stays, an fd's readiness stays for its next wait, a future stays the
 * caller's); deadlines, cancellation and bad cases. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static weft_chan *mkchan(void)
{
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 4), 0);
    return c;
}

/* ---- Each kind alone ---- */

static void *timer_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan();
    int v = -1;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                      {.op = WEFT_CASE_TIMER, .at = weft_deadline_in(2 * WEFT_MSEC)}};
    cr_assert_eq(weft_select(cs, 2, WEFT_FOREVER), 1);
    cr_assert_eq(cs[1].result, 0);
    cr_assert_geq(weft_now(), cs[1].at, "chosen before its time");
    cr_assert_eq(v, -1);
    /* A time in the past is ready at once; the channel's value is left where it is. */
    int x = 7;
    cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), 0);
    weft_case past[] = {{.op = WEFT_CASE_TIMER, .at = 0}};
    cr_assert_eq(weft_select(past, 1, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 7);
    weft_chan_release(c);
    return NULL;
}

Test(select, a_timer_case_is_chosen_at_its_time)
{
    run_main(timer_main, NULL);
}

static void *write_later(void *arg)
{
    int fd = (int)(intptr_t)arg;
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_write(fd, "hi", 2, WEFT_FOREVER), 2);
    return NULL;
}

static void *fd_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    weft_chan *c = mkchan();
    int v = -1;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, write_later, (void *)(intptr_t)sv[1], NULL), 0);
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                      {.op = WEFT_CASE_FD, .io = {.fd = sv[0], .events = WEFT_READABLE}}};
    cr_assert_eq(weft_select(cs, 2, weft_deadline_in(10 * WEFT_SEC)), 1);
    cr_assert_eq(cs[1].result & WEFT_READABLE, WEFT_READABLE);
    char buf[4];
    cr_assert_eq(weft_read(sv[0], buf, sizeof buf, WEFT_FOREVER), 2);
    cr_assert_eq(memcmp(buf, "hi", 2), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    /* Writable at once; an fd number that is not open completes with -EBADF. */
    weft_case w[] = {{.op = WEFT_CASE_FD, .io = {.fd = sv[1], .events = WEFT_WRITABLE}}};
    cr_assert_eq(weft_select(w, 1, WEFT_FOREVER), 0);
    cr_assert_eq(w[0].result, WEFT_WRITABLE);
    int dead = dup(sv[1]);
    close(dead);
    weft_case bad[] = {{.op = WEFT_CASE_FD, .io = {.fd = dead, .events = WEFT_READABLE}}};
    cr_assert_eq(weft_select(bad, 1, WEFT_FOREVER), 0);
    cr_assert_eq(bad[0].result, -EBADF);
    weft_close(sv[0]);
    weft_close(sv[1]);
    weft_chan_release(c);
    return NULL;
}

Test(select, an_fd_case_is_chosen_when_the_fd_is_ready)
{
    run_main(fd_main, NULL);
}

static void *resolve_later(void *arg)
{
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_promise_resolve(arg, (void *)0x5eed), 0);
    return NULL;
}

static void *future_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    cr_assert_eq(weft_promise_create(&p), 0);
    weft_chan *c = mkchan();
    int v = -1;
    void *value = NULL;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, resolve_later, p, NULL), 0);
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                      {.op = WEFT_CASE_FUTURE, .future = weft_promise_future(p), .elem = &value}};
    cr_assert_eq(weft_select(cs, 2, weft_deadline_in(10 * WEFT_SEC)), 1);
    cr_assert_eq(cs[1].result, 0);
    cr_assert_eq(value, (void *)0x5eed);
    /* Completed already: ready at once, and still the caller's to await. */
    value = NULL;
    cr_assert_eq(weft_select(&cs[1], 1, WEFT_FOREVER), 0);
    cr_assert_eq(value, (void *)0x5eed);
    cr_assert_eq(weft_await(weft_promise_future(p), &value, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    weft_promise_release(p);
    /* A failed future: its status. */
    weft_future *f;
    cr_assert_eq(weft_future_ready(&f, -EIO, NULL), 0);
    weft_case fe[] = {{.op = WEFT_CASE_FUTURE, .future = f}};
    cr_assert_eq(weft_select(fe, 1, WEFT_FOREVER), 0);
    cr_assert_eq(fe[0].result, -EIO);
    weft_future_destroy(f);
    weft_chan_release(c);
    return NULL;
}

Test(select, a_future_case_is_chosen_when_the_future_completes)
{
    run_main(future_main, NULL);
}

/* ---- The choice, and nothing taken by the cases that lose ---- */

static void *fair_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan();
    int chosen[2] = {0, 0};
    for (int i = 0; i < 200; i++) {
        int x = i, v = -1;
        cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), 0);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                          {.op = WEFT_CASE_TIMER, .at = 0}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        cr_assert(r == 0 || r == 1);
        chosen[r]++;
        if (r == 1) /* the value stayed in the channel */
            cr_assert_eq(weft_chan_try_recv(c, &v), 0);
        cr_assert_eq(v, i);
        cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
    }
    /* Uniform: each side at least once in 200 (a miss has odds of 2^-199). */
    cr_assert_gt(chosen[0], 0);
    cr_assert_gt(chosen[1], 0);
    weft_chan_release(c);
    return NULL;
}

Test(select, ready_cases_of_both_kinds_are_chosen_uniformly)
{
    run_main(fair_main, NULL);
}

typedef struct both {
    weft_chan *c;
    int fd;
} both;

/* From a plain thread, while the select's worker sleeps: the fd made ready, then the channel
 * case. The channel case is claimed at once, by the send; the worker, woken by both, most
 * often hands the fd's edge to its watcher before it resumes the select, so the watcher
 * takes the edge for a case that has lost (and must give it back). */
static void *write_then_send(void *arg)
{
    both *b = arg;
    usleep(2000);
    cr_assert_eq(write(b->fd, "x", 1), 1);
    int x = 1;
    cr_assert_eq(weft_chan_send(b->c, &x, WEFT_FOREVER), 0);
    return NULL;
}

static void *losing_fd_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    weft_chan *c = mkchan();
    both b = {c, sv[1]};
    int wins[2] = {0, 0};
    for (int i = 0; i < 50; i++) {
        int v = -1;
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, write_then_send, &b), 0);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                          {.op = WEFT_CASE_FD, .io = {.fd = sv[0], .events = WEFT_READABLE}}};
        int r = weft_select(cs, 2, weft_deadline_in(10 * WEFT_SEC));
        cr_assert(r == 0 || r == 1, "select: %d", r);
        wins[r]++;
        cr_assert_eq(pthread_join(th, NULL), 0);
        if (r == 0) {
            /* The fd lost: its readiness is still there for the next wait. */
            cr_assert_eq(v, 1);
            int m = weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(10 * WEFT_SEC));
            cr_assert_eq(m & WEFT_READABLE, WEFT_READABLE, "the losing fd case took the edge");
        } else {
            /* The channel lost: its value is still there. */
            cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(10 * WEFT_SEC)), 0);
            cr_assert_eq(v, 1);
        }
        char ch;
        cr_assert_eq(weft_read(sv[0], &ch, 1, WEFT_FOREVER), 1);
    }
    cr_assert_gt(wins[0] + wins[1], 0);
    weft_close(sv[0]);
    weft_close(sv[1]);
    weft_chan_release(c);
    return NULL;
}

Test(select, a_losing_fd_case_leaves_the_readiness_for_the_next_wait)
{
    run_main(losing_fd_main, NULL);
}

/* ---- Deadlines, cancellation, defaults, errors ---- */

static void *deadline_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    weft_future *never;
    cr_assert_eq(weft_future_pending(&never), 0);
    weft_case cs[] = {{.op = WEFT_CASE_FD, .io = {.fd = sv[0], .events = WEFT_READABLE}},
                      {.op = WEFT_CASE_FUTURE, .future = never},
                      {.op = WEFT_CASE_TIMER, .at = weft_deadline_in(60 * WEFT_SEC)}};
    cr_assert_eq(weft_select(cs, 3, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    /* With a default: taken at once, nothing waited for. */
    weft_case d[] = {cs[0], cs[1], cs[2], {.op = WEFT_CASE_DEFAULT}};
    cr_assert_eq(weft_select(d, 4, WEFT_FOREVER), 3);
    /* The fd still works after watchers came and went. */
    cr_assert_eq(weft_write(sv[1], "z", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_select(cs, 3, WEFT_FOREVER), 0);
    weft_future_destroy(never);
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

Test(select, a_general_select_times_out_and_takes_a_default)
{
    run_main(deadline_main, NULL);
}

static void *selects_for_ever(void *arg)
{
    (void)arg;
    weft_case cs[] = {{.op = WEFT_CASE_TIMER, .at = weft_deadline_in(60 * WEFT_SEC)}};
    return (void *)(intptr_t)weft_select(cs, 1, WEFT_FOREVER);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, selects_for_ever, NULL, NULL), 0);
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_cancel(t), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    return NULL;
}

Test(select, a_general_select_is_cancelled)
{
    run_main(cancel_main, NULL);
}

static void *plain_thread(void *arg)
{
    (void)arg;
    weft_case cs[] = {{.op = WEFT_CASE_TIMER, .at = 0}};
    return (void *)(intptr_t)weft_select(cs, 1, WEFT_FOREVER);
}

static void *errors_main(void *arg)
{
    (void)arg;
    weft_case fd_neg[] = {{.op = WEFT_CASE_FD, .io = {.fd = -1, .events = WEFT_READABLE}}};
    cr_assert_eq(weft_select(fd_neg, 1, WEFT_FOREVER), -EINVAL);
    weft_case no_events[] = {{.op = WEFT_CASE_FD, .io = {.fd = 0, .events = 0}}};
    cr_assert_eq(weft_select(no_events, 1, WEFT_FOREVER), -EINVAL);
    weft_case odd_events[] = {{.op = WEFT_CASE_FD, .io = {.fd = 0, .events = 0x40}}};
    cr_assert_eq(weft_select(odd_events, 1, WEFT_FOREVER), -EINVAL);
    weft_case no_future[] = {{.op = WEFT_CASE_FUTURE}};
    cr_assert_eq(weft_select(no_future, 1, WEFT_FOREVER), -EINVAL);
    weft_case bad_op[] = {{.op = 99}};
    cr_assert_eq(weft_select(bad_op, 1, WEFT_FOREVER), -EINVAL);
    /* A general case on a plain thread: it has no task to watch with. */
    pthread_t th;
    void *r;
    cr_assert_eq(pthread_create(&th, NULL, plain_thread, NULL), 0);
    cr_assert_eq(pthread_join(th, &r), 0);
    cr_assert_eq((intptr_t)r, -EPERM);
    return NULL;
}

Test(select, bad_general_cases_are_refused)
{
    run_main(errors_main, NULL);
}

/* ---- weft_fd_future: weft_fd_wait as a future ---- */

static void *write_one(void *arg)
{
    weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_write((int)(intptr_t)arg, "y", 1, WEFT_FOREVER), 1);
    return NULL;
}

static void *fd_future_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    /* A stackless task awaits it. */
    weft_future *f;
    cr_assert_eq(weft_fd_future(&f, sv[0], WEFT_READABLE), 0);
    weft_task *st, *wr;
    cr_assert_eq(weft_spawn_future(&st, f, NULL), 0);
    cr_assert_eq(weft_spawn(&wr, write_one, (void *)(intptr_t)sv[1], NULL), 0);
    cr_assert_eq(weft_join(wr, NULL, WEFT_FOREVER), 0);
    void *res = NULL;
    cr_assert_eq(weft_join(st, &res, weft_deadline_in(10 * WEFT_SEC)), 0);
    char c;
    cr_assert_eq(weft_read(sv[0], &c, 1, WEFT_FOREVER), 1);
    /* With a timer, the first of them: a readiness wait with a deadline. */
    weft_future *g, *tm, *first;
    cr_assert_eq(weft_fd_future(&g, sv[0], WEFT_READABLE), 0);
    cr_assert_eq(weft_timer_future(&tm, weft_deadline_in(2 * WEFT_MSEC)), 0);
    weft_future *pair_[2] = {g, tm};
    cr_assert_eq(weft_future_first(&first, pair_, 2), 0);
    cr_assert_eq(weft_await(first, NULL, weft_deadline_in(10 * WEFT_SEC)), 1, "the timer");
    weft_future_destroy(first);
    weft_future_destroy(tm);
    weft_future_destroy(g);
    /* Writable at once: no watcher needed. */
    cr_assert_eq(weft_fd_future(&g, sv[1], WEFT_WRITABLE), 0);
    cr_assert_eq(weft_await(g, NULL, WEFT_FOREVER), WEFT_WRITABLE);
    weft_future_destroy(g);
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

Test(select, an_fd_future_completes_with_the_ready_mask)
{
    run_main(fd_future_main, NULL);
}

/* A future whose watcher took the fd's readiness and was destroyed before it said so gives
 * the readiness back: the next weft_fd_wait finds it. */
static void *fd_future_gives_back_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    for (int i = 0; i < 20; i++) {
        weft_future *f;
        cr_assert_eq(weft_fd_future(&f, sv[0], WEFT_READABLE), 0);
        /* One poll: not ready, so its watcher starts and waits. */
        cr_assert_eq(weft_await(f, NULL, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(weft_write(sv[1], "z", 1, WEFT_FOREVER), 1);
        weft_sleep(WEFT_MSEC); /* the watcher takes the edge (or not yet) */
        weft_future_destroy(f);
        int m = weft_fd_wait(sv[0], WEFT_READABLE, weft_deadline_in(10 * WEFT_SEC));
        cr_assert_eq(m & WEFT_READABLE, WEFT_READABLE, "the destroyed future kept the edge");
        char c;
        cr_assert_eq(weft_read(sv[0], &c, 1, WEFT_FOREVER), 1);
    }
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

Test(select, a_destroyed_fd_future_takes_nothing)
{
    run_main(fd_future_gives_back_main, NULL);
}

static void *await_elsewhere(void *arg)
{
    return (void *)(intptr_t)weft_await(arg, NULL, weft_deadline_in(10 * WEFT_SEC));
}

static void *fd_future_errors_main(void *arg)
{
    (void)arg;
    weft_future *f;
    cr_assert_eq(weft_fd_future(NULL, 0, WEFT_READABLE), -EINVAL);
    cr_assert_eq(weft_fd_future(&f, -1, WEFT_READABLE), -EINVAL);
    cr_assert_eq(weft_fd_future(&f, 0, 0), -EINVAL);
    cr_assert_eq(weft_fd_future(&f, 0, 0x10), -EINVAL);
    int dead = dup(0);
    close(dead);
    cr_assert_eq(weft_fd_future(&f, dead, WEFT_READABLE), 0);
    cr_assert_eq(weft_await(f, NULL, WEFT_FOREVER), -EBADF);
    weft_future_destroy(f);
    /* Polled by a task of another worker. */
    int sv[2];
    pair(sv);
    cr_assert_eq(weft_fd_future(&f, sv[0], WEFT_READABLE), 0);
    weft_task *t;
    cr_assert_eq(weft_spawn_on(1, &t, await_elsewhere, f, NULL), 0);
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, -EPERM);
    weft_future_destroy(f);
    weft_close(sv[0]);
    weft_close(sv[1]);
    return NULL;
}

Test(select, bad_fd_futures_are_refused)
{
    weft_future *f;
    cr_assert_eq(weft_fd_future(&f, 0, WEFT_READABLE), -EPERM); /* outside a runtime */
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_SHARDED;
    run_main_cfg(&c, fd_future_errors_main, NULL);
}
