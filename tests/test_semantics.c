/* Semantics other runtimes' suites check, re-expressed against weft.h: Go's channel, select
 * and sync tests, Tokio's sync tests and libuv's timer tests. Each test asserts what weft.h
 * documents, for edge inputs too: deadlines already passed, closes with parked waiters of
 * every kind, misuse (NULL, double close, unlock by a non-owner), the largest values, selects
 * of many or duplicate cases, and the cross-worker paths. Every test holds in sharded mode
 * and in stealing mode on two workers (tasks whose order matters are pinned, and a test waits
 * for a task to park through weft_task_status rather than counting yields). */
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "task_helpers.h"

/* ---- Helpers ---------------------------------------------------------------------------- */

static weft_chan *mkchan(size_t elem, size_t cap)
{
    weft_chan *c = NULL;
    cr_assert_eq(weft_chan_create(&c, elem, cap), 0);
    return c;
}

/* A config of two workers in the given mode (the cross-thread tests). */
static weft_config two_workers(int mode)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.mode = mode;
    return cfg;
}

/* ---- Channels: close with parked waiters --------------------------------------------------- */

struct op {
    weft_chan *c;
    long v;
    int64_t deadline;
    int rc;
};

static void *op_send(void *arg)
{
    struct op *o = arg;
    o->rc = weft_chan_send(o->c, &o->v, o->deadline);
    return NULL;
}

static void *op_recv(void *arg)
{
    struct op *o = arg;
    o->rc = weft_chan_recv(o->c, &o->v, o->deadline);
    return NULL;
}

/* Go's TestChan close cases: a full buffered channel with parked senders is closed. The
 * senders all get -EPIPE (their values are not taken), and the receiver then drains exactly
 * what was buffered, in order, before -EPIPE. */
static void *close_full_buffer_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 2);
    long v = 10;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    v = 11;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    struct op s[3];
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (struct op){c, 100 + i, WEFT_FOREVER, 1};
        t[i] = spawn_pinned(op_send, &s[i]);
    }
    for (int i = 0; i < 3; i++)
        wait_parked(t[i]);
    cr_assert_eq(weft_chan_len(c), 2);
    cr_assert_eq(weft_chan_close(c), 0);
    for (int i = 0; i < 3; i++) {
        join_result(t[i]);
        cr_assert_eq(s[i].rc, -EPIPE, "parked sender %d got %d", i, s[i].rc);
    }
    cr_assert_eq(weft_chan_len(c), 2, "the parked senders' values were not taken");
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 11);
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EPIPE);
    cr_assert_eq(weft_chan_len(c), 0);
    cr_assert_eq(weft_chan_cap(c), 2, "the capacity survives the close");
    cr_assert_eq(weft_chan_close(c), -EPIPE, "closing twice is an error, not an abort");
    weft_chan_release(c);
    return NULL;
}

Test(semantics, close_of_a_full_channel_fails_parked_senders_and_keeps_the_buffer)
{
    run_main(close_full_buffer_main, NULL);
}

struct sel {
    weft_chan *a, *b;
    long va, vb;
    int64_t deadline;
    int rc;
    int result[2];
};

static void *sel_recv_recv(void *arg)
{
    struct sel *s = arg;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = s->a, .elem = &s->va},
                      {.op = WEFT_CASE_RECV, .chan = s->b, .elem = &s->vb}};
    s->rc = weft_select(cs, 2, s->deadline);
    s->result[0] = cs[0].result;
    s->result[1] = cs[1].result;
    return NULL;
}

static void *sel_send_send(void *arg)
{
    struct sel *s = arg;
    weft_case cs[] = {{.op = WEFT_CASE_SEND, .chan = s->a, .elem = &s->va},
                      {.op = WEFT_CASE_SEND, .chan = s->b, .elem = &s->vb}};
    s->rc = weft_select(cs, 2, s->deadline);
    s->result[0] = cs[0].result;
    s->result[1] = cs[1].result;
    return NULL;
}

/* Closing wakes parked selects too: the closed channel's case completes with -EPIPE, and the
 * other channel is left as it was (no waiter left behind on it). */
static void *close_wakes_selects_main(void *arg)
{
    (void)arg;
    weft_chan *a = mkchan(sizeof(long), 0), *b = mkchan(sizeof(long), 0);
    struct sel r = {a, b, 0, 0, WEFT_FOREVER, 99, {1, 1}};
    struct sel s = {a, b, 5, 6, WEFT_FOREVER, 99, {1, 1}};
    weft_task *tr = spawn_pinned(sel_recv_recv, &r);
    wait_parked(tr);
    cr_assert_eq(weft_chan_close(b), 0);
    join_result(tr);
    cr_assert_eq(r.rc, 1, "the receive case of the closed channel completed");
    cr_assert_eq(r.result[1], -EPIPE);
    long v = 1;
    cr_assert_eq(weft_chan_try_send(a, &v), -EAGAIN, "the select's other waiter is gone");

    weft_chan *c = mkchan(sizeof(long), 0);
    s.b = c;
    weft_task *ts = spawn_pinned(sel_send_send, &s);
    wait_parked(ts);
    cr_assert_eq(weft_chan_close(c), 0);
    join_result(ts);
    cr_assert_eq(s.rc, 1, "the send case of the closed channel completed");
    cr_assert_eq(s.result[1], -EPIPE);
    cr_assert_eq(weft_chan_try_recv(a, &v), -EAGAIN, "the select's other waiter is gone");
    weft_chan_release(a);
    weft_chan_release(b);
    weft_chan_release(c);
    return NULL;
}

Test(semantics, close_wakes_parked_selects_with_epipe_on_that_case)
{
    run_main(close_wakes_selects_main, NULL);
}

/* Parked receivers and senders on the same closing channel: each one's call returns -EPIPE
 * (checked on the call itself, not on a join). */
static void *close_mixed_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    enum { N = 6 };
    struct op ops[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        ops[i] = (struct op){c, i, i % 2 ? weft_deadline_in(60 * WEFT_SEC) : WEFT_FOREVER, 1};
        t[i] = spawn_pinned(op_recv, &ops[i]);
    }
    for (int i = 0; i < N; i++)
        wait_parked(t[i]);
    cr_assert_eq(weft_chan_close(c), 0);
    for (int i = 0; i < N; i++) {
        join_result(t[i]);
        cr_assert_eq(ops[i].rc, -EPIPE, "receiver %d got %d", i, ops[i].rc);
    }
    weft_chan_release(c);
    return NULL;
}

Test(semantics, close_wakes_every_parked_receiver_with_or_without_a_deadline)
{
    run_main(close_mixed_main, NULL);
}

/* ---- Channels: misuse ---------------------------------------------------------------------- */

static void *chan_misuse_main(void *arg)
{
    (void)arg;
    long v = 0;
    cr_assert_eq(weft_chan_send(NULL, &v, 0), -EINVAL);
    cr_assert_eq(weft_chan_recv(NULL, &v, 0), -EINVAL);
    cr_assert_eq(weft_chan_try_send(NULL, &v), -EINVAL);
    cr_assert_eq(weft_chan_try_recv(NULL, &v), -EINVAL);
    cr_assert_eq(weft_chan_close(NULL), -EINVAL);
    cr_assert_eq(weft_chan_len(NULL), 0);
    cr_assert_eq(weft_chan_cap(NULL), 0);
    weft_chan_retain(NULL);
    weft_chan_release(NULL);
    weft_chan *c = NULL;
    cr_assert_eq(weft_chan_create(NULL, 8, 1), -EINVAL);
    cr_assert_eq(weft_chan_create(&c, 65537, 1), -EINVAL, "elem_size above 65536");
    cr_assert_eq(weft_chan_create_unbounded(&c, 65537, 0), -EINVAL);
    /* A NULL value pointer for values that carry data is refused, not dereferenced. */
    c = mkchan(sizeof(long), 1);
    cr_assert_eq(weft_chan_send(c, NULL, 0), -EINVAL);
    cr_assert_eq(weft_chan_try_send(c, NULL), -EINVAL);
    cr_assert_eq(weft_chan_try_send(c, &v), 0);
    cr_assert_eq(weft_chan_recv(c, NULL, 0), -EINVAL);
    cr_assert_eq(weft_chan_try_recv(c, NULL), -EINVAL);
    cr_assert_eq(weft_chan_len(c), 1, "the refused receives took nothing");
    weft_case bad[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = NULL}};
    cr_assert_eq(weft_select(bad, 1, 0), -EINVAL);
    cr_assert_eq(weft_chan_len(c), 1);
    weft_chan_release(c);
    return NULL;
}

Test(semantics, channel_misuse_is_reported_never_fatal)
{
    run_main(chan_misuse_main, NULL);
}

/* ---- Channels: deadlines already passed --------------------------------------------------- */

static void *passed_deadlines_main(void *arg)
{
    (void)arg;
    /* Every deadline in the past, including 0 and negative ones other than WEFT_FOREVER. */
    int64_t passed[] = {0, 1, -2, INT64_MIN, weft_deadline_in(-1), weft_now() - WEFT_SEC};
    weft_chan *u = mkchan(sizeof(long), 0);
    weft_chan *b = mkchan(sizeof(long), 1);
    long v = 7;
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) {
        int64_t d = passed[i];
        cr_assert_eq(weft_chan_send(u, &v, d), -ETIMEDOUT, "deadline #%zu", i);
        cr_assert_eq(weft_chan_recv(u, &v, d), -ETIMEDOUT, "deadline #%zu", i);
        /* ...but an operation that can complete at once does. */
        v = (long)i;
        cr_assert_eq(weft_chan_send(b, &v, d), 0, "deadline #%zu", i);
        cr_assert_eq(weft_chan_send(b, &v, d), -ETIMEDOUT, "full: deadline #%zu", i);
        v = -1;
        cr_assert_eq(weft_chan_recv(b, &v, d), 0, "deadline #%zu", i);
        cr_assert_eq(v, (long)i);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = u, .elem = &v},
                          {.op = WEFT_CASE_SEND, .chan = u, .elem = &v}};
        cr_assert_eq(weft_select(cs, 2, d), -ETIMEDOUT, "select, deadline #%zu", i);
        weft_case ready[] = {{.op = WEFT_CASE_RECV, .chan = u, .elem = &v},
                             {.op = WEFT_CASE_SEND, .chan = b, .elem = &v}};
        cr_assert_eq(weft_select(ready, 2, d), 1, "a ready case completes: deadline #%zu", i);
        cr_assert_eq(ready[1].result, 0);
        cr_assert_eq(weft_chan_try_recv(b, &v), 0);
    }
    /* With a receiver parked, a send with a passed deadline completes: it can at once. */
    struct op r = {u, 0, WEFT_FOREVER, 1};
    weft_task *t = spawn_pinned(op_recv, &r);
    wait_parked(t);
    v = 4242;
    cr_assert_eq(weft_chan_send(u, &v, 0), 0);
    join_result(t);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.v, 4242);
    weft_chan_release(u);
    weft_chan_release(b);
    return NULL;
}

Test(semantics, passed_deadlines_make_channel_calls_non_blocking)
{
    run_main(passed_deadlines_main, NULL);
}

/* ---- Channels: cancellation ---------------------------------------------------------------- */

/* A receiver cancelled while parked (with a deadline, and without) returns -ECANCELED from
 * the call itself and takes nothing: a value sent afterwards is still there. */
static void *cancel_parked_main(void *arg)
{
    (void)arg;
    int64_t deadlines[] = {WEFT_FOREVER, 0};
    for (int k = 0; k < 2; k++) {
        weft_chan *c = mkchan(sizeof(long), 1);
        struct op r = {c, 0, k ? weft_deadline_in(60 * WEFT_SEC) : deadlines[0], 1};
        weft_task *t = spawn_pinned(op_recv, &r);
        wait_parked(t);
        cr_assert_eq(weft_cancel(t), 0);
        cr_assert_eq(join_result(t), WEFT_CANCELED, "a cancelled task joins as cancelled");
        cr_assert_eq(r.rc, -ECANCELED, "recv returned %d", r.rc);
        long v = 77;
        cr_assert_eq(weft_chan_try_send(c, &v), 0);
        v = 0;
        cr_assert_eq(weft_chan_try_recv(c, &v), 0, "the cancelled receiver took nothing");
        cr_assert_eq(v, 77);

        /* A parked sender on a full channel: cancelled, its value is not delivered. */
        cr_assert_eq(weft_chan_try_send(c, &v), 0);
        struct op s = {c, 88, k ? weft_deadline_in(60 * WEFT_SEC) : WEFT_FOREVER, 1};
        t = spawn_pinned(op_send, &s);
        wait_parked(t);
        weft_cancel(t);
        cr_assert_eq(join_result(t), WEFT_CANCELED);
        cr_assert_eq(s.rc, -ECANCELED);
        cr_assert_eq(weft_chan_try_recv(c, &v), 0);
        cr_assert_eq(v, 77);
        cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN, "the cancelled send left no value");
        weft_chan_release(c);
    }
    return NULL;
}

Test(semantics, a_cancelled_parked_send_or_recv_takes_and_leaves_nothing)
{
    run_main(cancel_parked_main, NULL);
}

/* A task cancelled before it blocks: its blocking calls return -ECANCELED at once. */
static void *blocks_after_cancel(void *arg)
{
    weft_chan *c = arg;
    while (!weft_canceled())
        weft_yield();
    long v;
    int r1 = weft_chan_recv(c, &v, WEFT_FOREVER);
    int r2 = weft_sleep_until(WEFT_FOREVER);
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v}};
    int r3 = weft_select(cs, 1, WEFT_FOREVER);
    return (void *)(intptr_t)(r1 == -ECANCELED && r2 == -ECANCELED && r3 == -ECANCELED);
}

static int later_blocks_ok;

static void *blocks_after_cancel_record(void *arg)
{
    later_blocks_ok = (int)(intptr_t)blocks_after_cancel(arg);
    return NULL;
}

static void *cancel_then_block_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    later_blocks_ok = 0;
    weft_task *t = spawn_pinned(blocks_after_cancel_record, c);
    weft_yield(); /* it runs and spins on weft_canceled */
    weft_cancel(t);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert(later_blocks_ok, "every later blocking call returned -ECANCELED at once");
    weft_chan_release(c);
    return NULL;
}

Test(semantics, a_cancelled_task_blocks_nowhere, .timeout = 20)
{
    run_main(cancel_then_block_main, NULL);
}

/* ---- Channels: the largest values ---------------------------------------------------------- */

enum { BIG = 65536, NBIG = 12 };

static void fill(unsigned char *p, int seed)
{
    for (int i = 0; i < BIG; i++)
        p[i] = (unsigned char)(i * 31 + seed * 7 + (i >> 8));
}

static void *big_sender(void *arg)
{
    weft_chan *c = arg;
    unsigned char *buf = malloc(BIG); /* the stack is 64 KiB: values go on the heap */
    if (!buf)
        return (void *)1;
    intptr_t bad = 0;
    for (int k = 0; k < NBIG; k++) {
        fill(buf, k);
        if (weft_chan_send(c, buf, WEFT_FOREVER) != 0)
            bad = 1;
    }
    free(buf);
    return (void *)bad;
}

static void *big_values_main(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, 3};
    unsigned char *want = malloc(BIG), *got = malloc(BIG);
    cr_assert(want && got);
    for (size_t ci = 0; ci < 3; ci++) {
        weft_chan *c = mkchan(BIG, caps[ci]);
        weft_task *t;
        cr_assert_eq(weft_spawn(&t, big_sender, c, NULL), 0);
        for (int k = 0; k < NBIG; k++) {
            memset(got, 0xEE, BIG);
            cr_assert_eq(weft_chan_recv(c, got, WEFT_FOREVER), 0);
            fill(want, k);
            cr_assert_eq(memcmp(got, want, BIG), 0, "value %d (cap %zu) arrived whole", k,
                         caps[ci]);
        }
        cr_assert_null(join_result(t));
        weft_chan_release(c);
    }
    free(want);
    free(got);
    return NULL;
}

Test(semantics, values_of_the_largest_size_arrive_whole_and_in_order)
{
    run_main(big_values_main, NULL);
}

/* ---- Channels: FIFO per sender, nothing lost or duplicated, across workers ---------------- */

enum { NSEND = 6, NRECV = 4, PER_SENDER = 20000 };

struct fifo_run {
    weft_chan *c;
    atomic_long total, sum;
    atomic_int order_violations;
    atomic_int seen_per_sender[NSEND];
};

struct fifo_sender {
    struct fifo_run *run;
    int id;
};

static void *fifo_send(void *arg)
{
    struct fifo_sender *s = arg;
    for (long i = 0; i < PER_SENDER; i++) {
        long v = (long)s->id * PER_SENDER + i;
        if (weft_chan_send(s->run->c, &v, WEFT_FOREVER) != 0)
            return (void *)1;
    }
    return NULL;
}

static void *fifo_recv(void *arg)
{
    struct fifo_run *run = arg;
    long last[NSEND];
    for (int i = 0; i < NSEND; i++)
        last[i] = -1;
    long v;
    while (weft_chan_recv(run->c, &v, WEFT_FOREVER) == 0) {
        int id = (int)(v / PER_SENDER);
        long seq = v % PER_SENDER;
        if (id < 0 || id >= NSEND || seq <= last[id])
            atomic_fetch_add(&run->order_violations, 1);
        else
            last[id] = seq;
        atomic_fetch_add(&run->seen_per_sender[id < 0 || id >= NSEND ? 0 : id], 1);
        atomic_fetch_add(&run->total, 1);
        atomic_fetch_add(&run->sum, v);
    }
    return NULL;
}

static void *fifo_main(void *arg)
{
    size_t cap = (size_t)(intptr_t)arg;
    struct fifo_run run = {.c = mkchan(sizeof(long), cap)};
    unsigned nw = weft_worker_count();
    weft_task *r[NRECV], *s[NSEND];
    struct fifo_sender ss[NSEND];
    for (int i = 0; i < NRECV; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % nw, &r[i], fifo_recv, &run, NULL), 0);
    for (int i = 0; i < NSEND; i++) {
        ss[i] = (struct fifo_sender){&run, i};
        cr_assert_eq(weft_spawn_on((unsigned)(i + 1) % nw, &s[i], fifo_send, &ss[i], NULL), 0);
    }
    for (int i = 0; i < NSEND; i++)
        cr_assert_null(join_result(s[i]));
    cr_assert_eq(weft_chan_close(run.c), 0);
    for (int i = 0; i < NRECV; i++)
        join_result(r[i]);
    long n = (long)NSEND * PER_SENDER;
    cr_assert_eq(atomic_load(&run.order_violations), 0,
                 "each receiver saw each sender's values in the order they were sent");
    cr_assert_eq(atomic_load(&run.total), n, "nothing lost or duplicated (count)");
    cr_assert_eq(atomic_load(&run.sum), n * (n - 1) / 2, "nothing lost or duplicated (sum)");
    for (int i = 0; i < NSEND; i++)
        cr_assert_eq(atomic_load(&run.seen_per_sender[i]), PER_SENDER);
    weft_chan_release(run.c);
    return NULL;
}

Test(semantics, many_senders_and_receivers_on_two_workers_fifo_per_sender, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    size_t caps[] = {0, 1, 16};
    for (int i = 0; i < 3; i++) {
        run_main_cfg(&sharded, fifo_main, (void *)(intptr_t)caps[i]);
        run_main_cfg(&stealing, fifo_main, (void *)(intptr_t)caps[i]);
    }
}

/* len and cap as the buffer fills and drains; an unbounded channel's cap is SIZE_MAX. */
static void *len_cap_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(int), 5);
    cr_assert_eq(weft_chan_cap(c), 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(weft_chan_len(c), (size_t)i);
        cr_assert_eq(weft_chan_try_send(c, &i), 0);
    }
    cr_assert_eq(weft_chan_try_send(c, &(int){9}), -EAGAIN);
    cr_assert_eq(weft_chan_len(c), 5);
    /* Wrap the ring a few times: FIFO order survives it. */
    for (int i = 5; i < 40; i++) {
        int x = -1;
        cr_assert_eq(weft_chan_try_recv(c, &x), 0);
        cr_assert_eq(x, i - 5);
        cr_assert_eq(weft_chan_try_send(c, &i), 0);
        cr_assert_eq(weft_chan_len(c), 5);
    }
    weft_chan_release(c);
    weft_chan *r = mkchan(sizeof(int), 0);
    cr_assert_eq(weft_chan_cap(r), 0);
    cr_assert_eq(weft_chan_len(r), 0);
    weft_chan_release(r);
    weft_chan *u = NULL;
    cr_assert_eq(weft_chan_create_unbounded(&u, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_cap(u), SIZE_MAX);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(weft_chan_send(u, &i, 0), 0, "an unbounded send never waits");
    cr_assert_eq(weft_chan_len(u), 1000);
    for (int i = 0; i < 1000; i++) {
        int x = -1;
        cr_assert_eq(weft_chan_recv(u, &x, 0), 0);
        cr_assert_eq(x, i);
    }
    weft_chan_release(u);
    return NULL;
}

Test(semantics, len_and_cap_track_the_buffer)
{
    run_main(len_cap_main, NULL);
}

/* ---- Select ----------------------------------------------------------------------------- */

/* Go's TestSelectFairness, with send and receive cases mixed and one channel named twice:
 * every ready case gets a fair share. Bounds far outside any plausible random deviation. */
static void *select_fair_mixed_main(void *arg)
{
    (void)arg;
    weft_chan *in = mkchan(sizeof(int), 4);  /* receive side: kept non-empty */
    weft_chan *out = mkchan(sizeof(int), 4); /* send side: kept non-full */
    enum { ROUNDS = 12000 };
    int counts[4] = {0, 0, 0, 0};
    int one = 1, x = 0, y = 0, z = 0;
    for (int i = 0; i < ROUNDS; i++) {
        while (weft_chan_len(in) < 2)
            cr_assert_eq(weft_chan_try_send(in, &one), 0);
        while (weft_chan_len(out) > 0)
            cr_assert_eq(weft_chan_try_recv(out, &z), 0);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = in, .elem = &x},
                          {.op = WEFT_CASE_SEND, .chan = out, .elem = &one},
                          {.op = WEFT_CASE_RECV, .chan = in, .elem = &y},
                          {.op = WEFT_CASE_RECV, .chan = NULL, .elem = &z}};
        int r = weft_select(cs, 4, WEFT_FOREVER);
        cr_assert(r >= 0 && r <= 2, "a ready case was chosen (%d)", r);
        cr_assert_eq(cs[r].result, 0);
        counts[r]++;
    }
    /* Each of three ready cases about 4,000 times; 3,000 is over 20 standard deviations off. */
    for (int k = 0; k < 3; k++)
        cr_assert_gt(counts[k], 3000, "case %d chosen %d times of %d", k, counts[k], ROUNDS);
    cr_assert_eq(counts[3], 0, "a NULL channel is never ready");
    weft_chan_release(in);
    weft_chan_release(out);
    return NULL;
}

Test(semantics, select_is_fair_among_mixed_and_duplicate_ready_cases)
{
    run_main(select_fair_mixed_main, NULL);
}

/* A closed channel's receive case is always ready, like any other: it is chosen about as
 * often as an open channel's ready case, never starved, never always preferred. */
static void *select_fair_closed_main(void *arg)
{
    (void)arg;
    weft_chan *open = mkchan(sizeof(int), 1), *closed = mkchan(sizeof(int), 1);
    weft_chan_close(closed);
    int counts[2] = {0, 0}, one = 1, x, y;
    enum { ROUNDS = 10000 };
    for (int i = 0; i < ROUNDS; i++) {
        if (weft_chan_len(open) == 0)
            weft_chan_try_send(open, &one);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = open, .elem = &x},
                          {.op = WEFT_CASE_RECV, .chan = closed, .elem = &y}};
        int r = weft_select(cs, 2, 0);
        cr_assert(r == 0 || r == 1);
        cr_assert_eq(cs[r].result, r == 1 ? -EPIPE : 0);
        counts[r]++;
    }
    cr_assert_gt(counts[0], ROUNDS * 3 / 10, "open case chosen %d times", counts[0]);
    cr_assert_gt(counts[1], ROUNDS * 3 / 10, "closed case chosen %d times", counts[1]);
    weft_chan_release(open);
    weft_chan_release(closed);
    return NULL;
}

Test(semantics, select_is_fair_between_an_open_and_a_closed_channel)
{
    run_main(select_fair_closed_main, NULL);
}

/* The default case is taken only when nothing else is ready, and its result is 0. */
static void *select_default_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(int), 1);
    int one = 1, x;
    for (int i = 0; i < 2000; i++) {
        weft_chan_try_send(c, &one);
        weft_case cs[] = {{.op = WEFT_CASE_DEFAULT, .result = 77},
                          {.op = WEFT_CASE_RECV, .chan = c, .elem = &x, .result = 77}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        cr_assert_eq(r, 1, "a ready case beats the default (round %d)", i);
        cr_assert_eq(cs[1].result, 0);
    }
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &x, .result = 77},
                      {.op = WEFT_CASE_SEND, .chan = NULL, .elem = &x, .result = 77},
                      {.op = WEFT_CASE_DEFAULT, .result = 77}};
    cr_assert_eq(weft_select(cs, 3, WEFT_FOREVER), 2, "nothing ready: the default");
    cr_assert_eq(cs[2].result, 0);
    weft_case only[] = {{.op = WEFT_CASE_DEFAULT, .result = 77}};
    cr_assert_eq(weft_select(only, 1, WEFT_FOREVER), 0, "a lone default is taken at once");
    cr_assert_eq(only[0].result, 0);
    weft_case nulls[] = {{.op = WEFT_CASE_RECV, .chan = NULL, .elem = NULL},
                         {.op = WEFT_CASE_SEND, .chan = NULL, .elem = NULL}};
    cr_assert_eq(weft_select(nulls, 2, 0), -ETIMEDOUT, "NULL channels are never ready");
    cr_assert_eq(weft_select(nulls, 2, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_chan_release(c);
    return NULL;
}

Test(semantics, select_default_only_when_nothing_is_ready)
{
    run_main(select_default_main, NULL);
}

/* A select with a send and a receive case on the same rendezvous channel cannot match itself
 * (Go's rule): with nobody else there it times out, and leaves nothing behind. */
static void *select_self_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    long in = 0, out = 5;
    weft_case cs[] = {{.op = WEFT_CASE_SEND, .chan = c, .elem = &out},
                      {.op = WEFT_CASE_RECV, .chan = c, .elem = &in}};
    cr_assert_eq(weft_select(cs, 2, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(in, 0, "nothing received from itself");
    cr_assert_eq(weft_chan_try_recv(c, &in), -EAGAIN, "no sender left behind");
    cr_assert_eq(weft_chan_try_send(c, &out), -EAGAIN, "no receiver left behind");

    /* Two such selects on two tasks do meet: one sends, the other receives. */
    struct sel a = {c, c, 1, 1, WEFT_FOREVER, 99, {1, 1}};
    weft_task *t = spawn_pinned(sel_send_send, &a); /* two sends of 1 on c */
    wait_parked(t);
    long got = 0;
    weft_case mine[] = {{.op = WEFT_CASE_SEND, .chan = c, .elem = &out},
                        {.op = WEFT_CASE_RECV, .chan = c, .elem = &got}};
    cr_assert_eq(weft_select(mine, 2, WEFT_FOREVER), 1, "only the receive can match");
    cr_assert_eq(got, 1);
    join_result(t);
    cr_assert(a.rc == 0 || a.rc == 1);
    cr_assert_eq(a.result[a.rc], 0);
    cr_assert_eq(weft_chan_try_recv(c, &in), -EAGAIN, "the other send case was withdrawn");
    weft_chan_release(c);
    return NULL;
}

Test(semantics, select_never_matches_its_own_cases)
{
    run_main(select_self_main, NULL);
}

/* Case counts: 0 and 1025 are refused, 1024 works (the waiter nodes come from the heap
 * then); bad ops are refused; a parked select of many cases completes exactly one, and
 * leaves no waiter on the others. */
struct many {
    weft_chan **chans;
    long *vals;
    size_t n;
    int rc;
};

static void *select_many(void *arg)
{
    struct many *m = arg;
    weft_case *cs = calloc(m->n, sizeof *cs);
    if (!cs)
        return (void *)1;
    for (size_t i = 0; i < m->n; i++)
        cs[i] = (weft_case){.op = WEFT_CASE_RECV, .chan = m->chans[i], .elem = &m->vals[i]};
    m->rc = weft_select(cs, m->n, WEFT_FOREVER);
    int res = m->rc >= 0 ? cs[m->rc].result : 1;
    free(cs);
    return (void *)(intptr_t)res;
}

static void *select_counts_main(void *arg)
{
    (void)arg;
    enum { N = 1024 };
    weft_chan **chans = calloc(N + 1, sizeof *chans);
    long *vals = calloc(N + 1, sizeof *vals);
    weft_case *cs = calloc(N + 1, sizeof *cs);
    cr_assert(chans && vals && cs);
    for (size_t i = 0; i <= N; i++) {
        chans[i] = mkchan(sizeof(long), 0);
        cs[i] = (weft_case){.op = WEFT_CASE_RECV, .chan = chans[i], .elem = &vals[i]};
    }
    cr_assert_eq(weft_select(cs, N + 1, 0), -EINVAL, "more than 1024 cases");
    cr_assert_eq(weft_select(cs, 0, 0), -EINVAL, "no case");
    cr_assert_eq(weft_select(NULL, 1, 0), -EINVAL);
    cr_assert_eq(weft_select(cs, N, 0), -ETIMEDOUT, "1024 cases, none ready");
    weft_case badop[] = {{.op = 0}};
    cr_assert_eq(weft_select(badop, 1, 0), -EINVAL);
    badop[0].op = 99;
    cr_assert_eq(weft_select(badop, 1, 0), -EINVAL);

    struct many m = {chans, vals, N, 99};
    weft_task *t = spawn_pinned(select_many, &m);
    wait_parked(t);
    long v = 31337;
    cr_assert_eq(weft_chan_send(chans[777], &v, WEFT_FOREVER), 0);
    cr_assert_eq(join_result(t), NULL);
    cr_assert_eq(m.rc, 777);
    cr_assert_eq(vals[777], 31337);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(weft_chan_try_send(chans[i], &v), -EAGAIN, "no waiter left on %zu", i);
    for (size_t i = 0; i <= N; i++)
        weft_chan_release(chans[i]);
    free(chans);
    free(vals);
    free(cs);
    return NULL;
}

Test(semantics, select_of_1024_cases_and_bad_case_counts)
{
    run_main(select_counts_main, NULL);
}

/* Many selects receiving from two channels while many senders send, across workers: every
 * value is received exactly once (nothing taken twice by two cases of one select). */
struct selrun {
    weft_chan *a, *b;
    atomic_long count, sum;
};

static void *sel_consumer(void *arg)
{
    struct selrun *s = arg;
    int open = 3; /* bit 0: a open, bit 1: b open */
    while (open) {
        long va = 0, vb = 0;
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = open & 1 ? s->a : NULL, .elem = &va},
                          {.op = WEFT_CASE_RECV, .chan = open & 2 ? s->b : NULL, .elem = &vb}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r < 0)
            return (void *)1;
        if (cs[r].result == -EPIPE) {
            open &= ~(1 << r);
            continue;
        }
        atomic_fetch_add(&s->count, 1);
        atomic_fetch_add(&s->sum, r == 0 ? va : vb);
    }
    return NULL;
}

struct selprod {
    struct selrun *s;
    long base;
};

static void *sel_producer(void *arg)
{
    struct selprod *p = arg;
    for (long i = 0; i < 10000; i++) {
        long v = p->base + i;
        if (weft_chan_send(i % 2 ? p->s->a : p->s->b, &v, WEFT_FOREVER) != 0)
            return (void *)1;
    }
    return NULL;
}

static void *select_mpmc_main(void *arg)
{
    (void)arg;
    struct selrun s = {.a = mkchan(sizeof(long), 0), .b = mkchan(sizeof(long), 8)};
    unsigned nw = weft_worker_count();
    weft_task *c[4], *p[4];
    struct selprod pp[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % nw, &c[i], sel_consumer, &s, NULL), 0);
    for (int i = 0; i < 4; i++) {
        pp[i] = (struct selprod){&s, (long)i * 10000};
        cr_assert_eq(weft_spawn_on((unsigned)(i + 1) % nw, &p[i], sel_producer, &pp[i], NULL), 0);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_null(join_result(p[i]));
    weft_chan_close(s.a);
    weft_chan_close(s.b);
    for (int i = 0; i < 4; i++)
        cr_assert_null(join_result(c[i]));
    long n = 40000;
    cr_assert_eq(atomic_load(&s.count), n);
    cr_assert_eq(atomic_load(&s.sum), n * (n - 1) / 2);
    weft_chan_release(s.a);
    weft_chan_release(s.b);
    return NULL;
}

Test(semantics, selects_across_workers_take_every_value_once, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, select_mpmc_main, NULL);
    run_main_cfg(&stealing, select_mpmc_main, NULL);
}

/* ---- Mutex ------------------------------------------------------------------------------- */

static void *unlock_other(void *arg)
{
    return (void *)(intptr_t)weft_mutex_unlock(arg);
}

static void *trylock_other(void *arg)
{
    return (void *)(intptr_t)weft_mutex_try_lock(arg);
}

static void *lock_passed_deadline(void *arg)
{
    return (void *)(intptr_t)weft_mutex_lock(arg, 0);
}

/* Unlock by a task that does not hold the mutex is -EPERM and changes nothing. */
static void *mutex_misuse_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "never locked");
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    weft_task *t = spawn_pinned(unlock_other, &m);
    cr_assert_eq(join_result(t), (void *)(intptr_t)-EPERM, "unlock by a non-owner");
    t = spawn_pinned(trylock_other, &m);
    cr_assert_eq(join_result(t), (void *)(intptr_t)-EBUSY, "still held by main");
    t = spawn_pinned(lock_passed_deadline, &m);
    cr_assert_eq(join_result(t), (void *)(intptr_t)-ETIMEDOUT, "held: a passed deadline fails");
    cr_assert_eq(weft_mutex_try_lock(&m), -EBUSY, "try_lock by the owner does not recurse");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "unlocked twice");
    cr_assert_eq(weft_mutex_lock(&m, 0), 0, "free: a passed deadline still takes it");
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return NULL;
}

Test(semantics, mutex_unlock_by_a_non_owner_is_eperm)
{
    run_main(mutex_misuse_main, NULL);
}

/* Go's TestMutexFairness: a holder that relocks in a tight loop cannot starve a waiter. */
struct fair {
    weft_mutex m;
    int waiter_done;
    long holder_rounds;
};

static void *fair_waiter(void *arg)
{
    struct fair *f = arg;
    for (int i = 0; i < 10; i++) {
        if (weft_mutex_lock(&f->m, WEFT_FOREVER) != 0)
            return (void *)1;
        weft_mutex_unlock(&f->m);
    }
    f->waiter_done = 1;
    return NULL;
}

static void *mutex_fair_main(void *arg)
{
    (void)arg;
    struct fair f = {WEFT_MUTEX_INIT, 0, 0};
    cr_assert_eq(weft_mutex_lock(&f.m, WEFT_FOREVER), 0);
    weft_task *t = spawn_pinned(fair_waiter, &f);
    wait_parked(t);
    /* Unlock and relock at once, forever unless the waiter gets its turns. */
    for (f.holder_rounds = 0; f.holder_rounds < 1000000 && !f.waiter_done; f.holder_rounds++) {
        cr_assert_eq(weft_mutex_unlock(&f.m), 0);
        cr_assert_eq(weft_mutex_lock(&f.m, WEFT_FOREVER), 0);
    }
    cr_assert(f.waiter_done, "the waiter got the mutex 10 times while the holder relocked");
    cr_assert_eq(weft_mutex_unlock(&f.m), 0);
    cr_assert_null(join_result(t));
    return NULL;
}

Test(semantics, mutex_hand_off_starves_no_waiter)
{
    run_main(mutex_fair_main, NULL);
}

/* Mutual exclusion across workers: a plain (non-atomic) counter loses no increment. */
struct excl {
    weft_mutex m;
    long counter;
    int inside;
    atomic_int overlaps;
};

static void *excl_worker(void *arg)
{
    struct excl *e = arg;
    for (int i = 0; i < 20000; i++) {
        if (weft_mutex_lock(&e->m, WEFT_FOREVER) != 0)
            return (void *)1;
        if (e->inside++)
            atomic_fetch_add(&e->overlaps, 1);
        e->counter++;
        if (i % 64 == 0)
            weft_yield(); /* others queue meanwhile */
        e->inside--;
        weft_mutex_unlock(&e->m);
    }
    return NULL;
}

static void *mutex_excl_main(void *arg)
{
    (void)arg;
    struct excl e = {.m = WEFT_MUTEX_INIT};
    unsigned nw = weft_worker_count();
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % nw, &t[i], excl_worker, &e, NULL), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_null(join_result(t[i]));
    cr_assert_eq(atomic_load(&e.overlaps), 0);
    cr_assert_eq(e.counter, 6 * 20000L);
    return NULL;
}

Test(semantics, mutex_excludes_across_workers, .timeout = 60)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, mutex_excl_main, NULL);
    run_main_cfg(&stealing, mutex_excl_main, NULL);
}

/* ---- Condition variable ------------------------------------------------------------------ */

/* A signal with no waiter is not remembered: the next wait still waits. */
static void *cond_nowaiter_main(void *arg)
{
    (void)arg;
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    cr_assert_eq(weft_cond_signal(&c), 0, "nobody woken");
    cr_assert_eq(weft_cond_broadcast(&c), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_FOREVER), 0);
    cr_assert_eq(weft_cond_wait(&c, &m, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_cond_wait(&c, &m, 0), -ETIMEDOUT, "a passed deadline: at once");
    cr_assert_eq(weft_mutex_unlock(&m), 0, "held again after each timed-out wait");
    cr_assert_eq(weft_cond_wait(&c, &m, 0), -EPERM, "the mutex is not held");
    return NULL;
}

Test(semantics, cond_signal_without_waiters_is_not_remembered)
{
    run_main(cond_nowaiter_main, NULL);
}

/* Go's TestCondSignal / Tokio's notify tests, as a ping-pong across workers: each side waits
 * for its turn under the mutex; a lost wake-up would hang the test. */
struct pingpong {
    weft_mutex m;
    weft_cond c;
    long turn; /* even: ping's turn, odd: pong's */
};

enum { PINGPONG_ROUNDS = 20000 };

static void *pp_side(void *arg)
{
    struct pingpong *p = (struct pingpong *)((intptr_t)arg & ~(intptr_t)1);
    long side = (intptr_t)arg & 1;
    for (long i = 0; i < PINGPONG_ROUNDS; i++) {
        if (weft_mutex_lock(&p->m, WEFT_FOREVER) != 0)
            return (void *)1;
        while (p->turn % 2 != side)
            if (weft_cond_wait(&p->c, &p->m, WEFT_FOREVER) != 0)
                return (void *)2;
        p->turn++;
        weft_cond_signal(&p->c);
        weft_mutex_unlock(&p->m);
    }
    return NULL;
}

static void *cond_pingpong_main(void *arg)
{
    (void)arg;
    static struct pingpong p __attribute__((aligned(2)));
    p = (struct pingpong){WEFT_MUTEX_INIT, WEFT_COND_INIT, 0};
    unsigned nw = weft_worker_count();
    weft_task *a, *b;
    cr_assert_eq(weft_spawn_on(0, &a, pp_side, (void *)&p, NULL), 0);
    cr_assert_eq(weft_spawn_on(1 % nw, &b, pp_side, (void *)((intptr_t)&p | 1), NULL), 0);
    cr_assert_null(join_result(a));
    cr_assert_null(join_result(b));
    cr_assert_eq(p.turn, 2L * PINGPONG_ROUNDS);
    return NULL;
}

Test(semantics, cond_ping_pong_across_workers_loses_no_wake_up, .timeout = 60)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, cond_pingpong_main, NULL);
    run_main_cfg(&stealing, cond_pingpong_main, NULL);
}

/* signal wakes the longest waiter (FIFO), broadcast every waiter, and each returns holding
 * the mutex (checked by a non-atomic count under it). */
struct cq {
    weft_mutex m;
    weft_cond c;
    int order[8], norder;
    int go;
};

struct cq_arg {
    struct cq *q;
    int id;
};

static void *cq_waiter(void *arg)
{
    struct cq_arg *a = arg;
    struct cq *q = a->q;
    weft_mutex_lock(&q->m, WEFT_FOREVER);
    while (!q->go)
        if (weft_cond_wait(&q->c, &q->m, WEFT_FOREVER) != 0)
            break;
    q->order[q->norder++] = a->id;
    q->go--;
    return (void *)(intptr_t)weft_mutex_unlock(&q->m);
}

static void *cond_fifo_main(void *arg)
{
    (void)arg;
    struct cq q = {WEFT_MUTEX_INIT, WEFT_COND_INIT, {0}, 0, 0};
    struct cq_arg args[8];
    weft_task *t[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct cq_arg){&q, i};
        t[i] = spawn_pinned(cq_waiter, &args[i]);
        wait_parked(t[i]); /* queued in spawn order */
    }
    for (int i = 0; i < 3; i++) {
        weft_mutex_lock(&q.m, WEFT_FOREVER);
        q.go++;
        cr_assert_eq(weft_cond_signal(&q.c), 1);
        weft_mutex_unlock(&q.m);
        while (q.norder < i + 1)
            weft_yield();
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(q.order[i], i, "signal woke the longest waiter");
    weft_mutex_lock(&q.m, WEFT_FOREVER);
    q.go += 5;
    cr_assert_eq(weft_cond_broadcast(&q.c), 5, "broadcast woke every waiter left");
    weft_mutex_unlock(&q.m);
    for (int i = 0; i < 8; i++)
        cr_assert_null(join_result(t[i]), "waiter %d returned holding the mutex", i);
    cr_assert_eq(q.norder, 8);
    cr_assert_eq(weft_cond_signal(&q.c), 0, "nobody left");
    return NULL;
}

Test(semantics, cond_signal_is_fifo_and_broadcast_wakes_all)
{
    run_main(cond_fifo_main, NULL);
}

/* ---- Semaphore --------------------------------------------------------------------------- */

static void *sem_take(void *arg)
{
    return (void *)(intptr_t)weft_sem_acquire(arg, WEFT_FOREVER);
}

static void *sem_counts_main(void *arg)
{
    (void)arg;
    weft_sem s = WEFT_SEM_INIT(0);
    cr_assert_eq(weft_sem_value(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_acquire(&s, 0), -ETIMEDOUT, "a passed deadline: at once");
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = spawn_pinned(sem_take, &s);
        wait_parked(t[i]);
    }
    /* Five units for three waiters: each waiter takes one, two are left over. */
    cr_assert_eq(weft_sem_release(&s, 5), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(join_result(t[i]), (void *)0);
    cr_assert_eq(weft_sem_value(&s), 2);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_acquire(&s, 0), 0, "a unit there: a passed deadline takes it");
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_release(&s, 0), 0);
    cr_assert_eq(weft_sem_value(&s), 0);

    weft_sem big = WEFT_SEM_INIT(INT64_MAX - 1);
    cr_assert_eq(weft_sem_release(&big, 1), 0);
    cr_assert_eq(weft_sem_release(&big, 1), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(&big), INT64_MAX, "a refused release changes nothing");
    weft_sem u = WEFT_SEM_INIT(0);
    cr_assert_eq(weft_sem_release(&u, UINT_MAX), 0);
    cr_assert_eq(weft_sem_value(&u), (int64_t)UINT_MAX);
    return NULL;
}

Test(semantics, semaphore_counts_units_exactly)
{
    run_main(sem_counts_main, NULL);
}

/* A semaphore of N bounds the tasks inside to N, across workers. */
struct bound {
    weft_sem s;
    atomic_int inside, max_inside;
};

static void *bound_worker(void *arg)
{
    struct bound *b = arg;
    for (int i = 0; i < 2000; i++) {
        if (weft_sem_acquire(&b->s, WEFT_FOREVER) != 0)
            return (void *)1;
        int now = atomic_fetch_add(&b->inside, 1) + 1;
        int m = atomic_load(&b->max_inside);
        while (now > m && !atomic_compare_exchange_weak(&b->max_inside, &m, now))
            ;
        if (i % 8 == 0)
            weft_yield();
        atomic_fetch_sub(&b->inside, 1);
        weft_sem_release(&b->s, 1);
    }
    return NULL;
}

static void *sem_bound_main(void *arg)
{
    (void)arg;
    struct bound b = {.s = WEFT_SEM_INIT(3)};
    unsigned nw = weft_worker_count();
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % nw, &t[i], bound_worker, &b, NULL), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_null(join_result(t[i]));
    cr_assert_leq(atomic_load(&b.max_inside), 3);
    cr_assert_eq(weft_sem_value(&b.s), 3, "every unit came back");
    return NULL;
}

Test(semantics, semaphore_bounds_concurrency_across_workers, .timeout = 60)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, sem_bound_main, NULL);
    run_main_cfg(&stealing, sem_bound_main, NULL);
}

/* ---- Wait group -------------------------------------------------------------------------- */

static void *wg_wait(void *arg)
{
    return (void *)(intptr_t)weft_waitgroup_wait(arg, WEFT_FOREVER);
}

static void *wg_done_later(void *arg)
{
    weft_yield();
    return (void *)(intptr_t)weft_waitgroup_done(arg);
}

/* Go's TestWaitGroup: reused over several rounds, with several waiters each round; a
 * misuse that would take the counter below zero is refused and changes nothing. */
static void *wg_reuse_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "below zero");
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0, "still zero");
    for (int round = 0; round < 5; round++) {
        cr_assert_eq(weft_waitgroup_add(&wg, 4), 0);
        weft_task *w[3], *d[4];
        for (int i = 0; i < 3; i++) {
            w[i] = spawn_pinned(wg_wait, &wg);
            wait_parked(w[i]);
        }
        cr_assert_eq(weft_waitgroup_wait(&wg, 0), -ETIMEDOUT);
        cr_assert_eq(weft_waitgroup_add(&wg, -5), -EINVAL);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_spawn(&d[i], wg_done_later, &wg, NULL), 0);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(join_result(d[i]), (void *)0);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(join_result(w[i]), (void *)0, "round %d waiter %d", round, i);
        cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL, "round %d: below zero", round);
        cr_assert_eq(weft_waitgroup_wait(&wg, 0), 0);
    }
    cr_assert_eq(weft_waitgroup_add(&wg, 0), 0);
    return NULL;
}

Test(semantics, waitgroup_reuse_and_many_waiters)
{
    run_main(wg_reuse_main, NULL);
}

/* ---- Once -------------------------------------------------------------------------------- */

struct oncerun {
    weft_once o;
    atomic_int runs;
    atomic_int finished; /* set by fn as its last act */
};

static void once_body(void *arg)
{
    struct oncerun *r = arg;
    atomic_fetch_add(&r->runs, 1);
    weft_sleep(2 * WEFT_MSEC); /* callers arrive on every worker meanwhile */
    atomic_store(&r->finished, 1);
}

static void *once_caller_task(void *arg)
{
    struct oncerun *r = arg;
    int rc = weft_once_call(&r->o, once_body, r, WEFT_FOREVER);
    /* Every caller returns only after fn has completed. */
    return (void *)(intptr_t)(rc == 0 && atomic_load(&r->finished) == 1);
}

static void *once_concurrent_main(void *arg)
{
    (void)arg;
    struct oncerun r = {.o = WEFT_ONCE_INIT};
    unsigned nw = weft_worker_count();
    weft_task *t[16];
    for (int i = 0; i < 16; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % nw, &t[i], once_caller_task, &r, NULL), 0);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(join_result(t[i]), (void *)1, "caller %d returned before fn completed", i);
    cr_assert_eq(atomic_load(&r.runs), 1, "fn ran exactly once");
    cr_assert_eq(weft_once_call(&r.o, once_body, &r, 0), 0, "done: a passed deadline is fine");
    cr_assert_eq(atomic_load(&r.runs), 1);
    return NULL;
}

Test(semantics, once_runs_exactly_once_under_concurrent_callers, .timeout = 30)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, once_concurrent_main, NULL);
    run_main_cfg(&stealing, once_concurrent_main, NULL);
}

/* A waiter whose deadline passes while fn runs gets -ETIMEDOUT; fn is still run once. */
struct slowonce {
    weft_once o;
    weft_event release;
    int runs;
};

static void slow_body(void *arg)
{
    struct slowonce *s = arg;
    s->runs++;
    weft_event_wait(&s->release, WEFT_FOREVER);
}

static void *slow_runner(void *arg)
{
    struct slowonce *s = arg;
    return (void *)(intptr_t)weft_once_call(&s->o, slow_body, s, WEFT_FOREVER);
}

static void *once_deadline_main(void *arg)
{
    (void)arg;
    struct slowonce s = {WEFT_ONCE_INIT, WEFT_EVENT_INIT, 0};
    weft_task *t = spawn_pinned(slow_runner, &s);
    wait_parked(t); /* inside fn, waiting on the event */
    cr_assert_eq(weft_once_call(&s.o, slow_body, &s, 0), -ETIMEDOUT, "running: passed deadline");
    cr_assert_eq(weft_once_call(&s.o, slow_body, &s, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_event_set(&s.release);
    cr_assert_eq(join_result(t), (void *)0);
    cr_assert_eq(weft_once_call(&s.o, slow_body, &s, 0), 0);
    cr_assert_eq(s.runs, 1);
    cr_assert_eq(weft_once_call(&s.o, NULL, NULL, 0), -EINVAL, "fn NULL");
    return NULL;
}

Test(semantics, once_waiters_time_out_while_fn_runs)
{
    run_main(once_deadline_main, NULL);
}

/* ---- Read-write lock -------------------------------------------------------------------- */

struct rwop {
    weft_rwlock *l;
    int64_t deadline;
    int rc;
    int done;
};

static void *rw_rd(void *arg)
{
    struct rwop *o = arg;
    o->rc = weft_rwlock_rdlock(o->l, o->deadline);
    o->done = 1;
    if (o->rc == 0)
        weft_rwlock_unlock(o->l);
    return NULL;
}

static void *rw_wr(void *arg)
{
    struct rwop *o = arg;
    o->rc = weft_rwlock_wrlock(o->l, o->deadline);
    o->done = 1;
    if (o->rc == 0)
        weft_rwlock_unlock(o->l);
    return NULL;
}

/* Readers queued behind a writer are held back only while that writer waits. When the
 * writer gives up (its deadline passes, or it is cancelled), the lock is read-held with
 * nobody else waiting for it exclusively, so they must get it (Tokio's RwLock: a dropped
 * write acquire hands its place on). */
/* Yields until t is parked (true) or has finished (false). */
static bool seen_parked(weft_task *t)
{
    int st;
    while ((st = weft_task_status(t)) != WEFT_TASK_PARKED) {
        if (st == WEFT_TASK_FINISHED || st == WEFT_TASK_CANCELLED)
            return false;
        cr_assert_eq(weft_yield(), 0);
    }
    return true;
}

static void *rw_writer_gives_up_main(void *arg)
{
    int cancel = (int)(intptr_t)arg;
    /* The writer's deadline must still be ahead when the reader queues behind it. On a loaded
     * machine (a sanitizer build beside other suites) 20 ms can pass before that: the scene
     * is then played again with a deadline four times as long, up to 20 s. */
    for (int64_t ms = 20;; ms *= 4) {
        cr_assert_leq(ms, 20 * 1024, "the writer's deadline kept passing before the scene");
        weft_rwlock l = WEFT_RWLOCK_INIT;
        cr_assert_eq(weft_rwlock_rdlock(&l, WEFT_FOREVER), 0); /* main reads throughout */
        struct rwop w = {&l, cancel ? WEFT_FOREVER : weft_deadline_in(ms * WEFT_MSEC), 1, 0};
        weft_task *tw = spawn_pinned(rw_wr, &w);
        struct rwop r = {&l, WEFT_FOREVER, 1, 0};
        weft_task *tr = NULL;
        bool scene = seen_parked(tw);
        if (scene) {
            tr = spawn_pinned(rw_rd, &r);
            /* held back behind the waiting writer, which still waits */
            scene = seen_parked(tr) && weft_task_status(tw) == WEFT_TASK_PARKED;
        }
        if (!scene) {
            cr_assert(!cancel, "a writer with no deadline stopped waiting on its own");
            join_result(tw); /* its deadline passed: it gave up */
            if (tr)
                join_result(tr); /* behind nobody now, it shares main's hold */
            cr_assert_eq(weft_rwlock_unlock(&l), 0);
            continue;
        }
        cr_assert_eq(r.done, 0);
        if (cancel)
            weft_cancel(tw);
        join_result(tw);
        cr_assert_eq(w.rc, cancel ? -ECANCELED : -ETIMEDOUT);
        /* Nobody waits to write any more: the reader shares main's read hold. Give it ample
         * time (a deadline, so that a failure reports instead of hanging). */
        int64_t limit = weft_deadline_in(5 * WEFT_SEC);
        while (!r.done && weft_now() < limit)
            weft_sleep(WEFT_MSEC);
        cr_assert_eq(r.done, 1, "the reader behind the writer that gave up got the lock");
        cr_assert_eq(r.rc, 0);
        cr_assert_eq(weft_rwlock_unlock(&l), 0);
        join_result(tr);
        return NULL;
    }
}

/* A writer's wait that ends by its deadline (or a cancel) re-runs the grant (sync.c
 * wait_queued): it used to only dequeue itself, and the readers behind it stayed parked
 * until every reader had left. */
Test(semantics, readers_behind_a_timed_out_writer_get_the_lock, .timeout = 20)
{
    run_main(rw_writer_gives_up_main, (void *)0);
}

/* As above, for a writer cancelled while it waits. */
Test(semantics, readers_behind_a_cancelled_writer_get_the_lock, .timeout = 20)
{
    run_main(rw_writer_gives_up_main, (void *)1);
}

static void *rw_unlock_other(void *arg)
{
    return (void *)(intptr_t)weft_rwlock_unlock(arg);
}

/* Unlock by a task that holds nothing is -EPERM while another task holds the lock, for a
 * write hold and for a read hold, and the holder's hold is intact. */
static void *rw_misuse_main(void *arg)
{
    (void)arg;
    weft_rwlock l = WEFT_RWLOCK_INIT;
    cr_assert_eq(weft_rwlock_wrlock(&l, WEFT_FOREVER), 0);
    cr_assert_eq(join_result(spawn_pinned(rw_unlock_other, &l)), (void *)(intptr_t)-EPERM);
    cr_assert_eq(weft_rwlock_rdlock(&l, 0), -EDEADLK);
    struct rwop r = {&l, 0, 1, 0};
    cr_assert_null(join_result(spawn_pinned(rw_rd, &r)));
    cr_assert_eq(r.rc, -ETIMEDOUT, "still write-held: a passed deadline fails at once");
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_rdlock(&l, 0), 0, "free: a passed deadline takes it");
    cr_assert_eq(join_result(spawn_pinned(rw_unlock_other, &l)), (void *)(intptr_t)-EPERM);
    struct rwop w = {&l, 0, 1, 0};
    cr_assert_null(join_result(spawn_pinned(rw_wr, &w)));
    cr_assert_eq(w.rc, -ETIMEDOUT, "still read-held");
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), -EPERM);
    cr_assert_eq(weft_rwlock_wrlock(&l, 0), 0);
    cr_assert_eq(weft_rwlock_unlock(&l), 0);
    return NULL;
}

Test(semantics, rwlock_unlock_by_a_non_holder_is_eperm)
{
    run_main(rw_misuse_main, NULL);
}

/* Arrival order: with a reader holding, W1 R1 R2 W2 R3 queue; the holder's unlock lets W1
 * in alone, then R1 and R2 together, then W2, then R3. */
struct rwseq {
    weft_rwlock l;
    int log[8], nlog;
    int readers_in;
};

struct rwseq_arg {
    struct rwseq *s;
    int id;
    int write;
};

static void *rwseq_task(void *arg)
{
    struct rwseq_arg *a = arg;
    struct rwseq *s = a->s;
    int rc = a->write ? weft_rwlock_wrlock(&s->l, WEFT_FOREVER)
                      : weft_rwlock_rdlock(&s->l, WEFT_FOREVER);
    if (rc != 0)
        return (void *)1;
    s->log[s->nlog++] = a->id;
    if (!a->write)
        s->readers_in++;
    weft_yield();
    weft_yield();
    if (!a->write)
        s->readers_in--;
    return (void *)(intptr_t)weft_rwlock_unlock(&s->l);
}

static void *rw_order_main(void *arg)
{
    (void)arg;
    struct rwseq s = {.l = WEFT_RWLOCK_INIT};
    cr_assert_eq(weft_rwlock_rdlock(&s.l, WEFT_FOREVER), 0);
    struct rwseq_arg a[5] = {{&s, 1, 1}, {&s, 2, 0}, {&s, 3, 0}, {&s, 4, 1}, {&s, 5, 0}};
    weft_task *t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = spawn_pinned(rwseq_task, &a[i]);
        wait_parked(t[i]);
    }
    cr_assert_eq(s.nlog, 0, "everyone waits behind the first writer");
    cr_assert_eq(weft_rwlock_unlock(&s.l), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_null(join_result(t[i]));
    int want[] = {1, 2, 3, 4, 5};
    cr_assert_eq(s.nlog, 5);
    cr_assert_eq(s.log[0], want[0], "the first writer first");
    cr_assert(s.log[1] + s.log[2] == 5, "then both readers (%d %d)", s.log[1], s.log[2]);
    cr_assert_eq(s.log[3], 4, "then the second writer");
    cr_assert_eq(s.log[4], 5, "then the last reader");
    return NULL;
}

Test(semantics, rwlock_grants_in_arrival_order)
{
    run_main(rw_order_main, NULL);
}

/* ---- Event ------------------------------------------------------------------------------- */

static void *ev_wait(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, WEFT_FOREVER);
}

static void *event_main(void *arg)
{
    (void)arg;
    weft_event e = WEFT_EVENT_INIT;
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_set(&e), 0, "setting twice is harmless");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_event_wait(&e, 0), 0, "stays set");
    cr_assert_eq(weft_event_reset(&e), 0);
    cr_assert_eq(weft_event_reset(&e), 0);
    cr_assert_eq(weft_event_wait(&e, 0), -ETIMEDOUT);

    /* Auto-reset: two sets with nobody waiting leave one set, not two. */
    weft_event a = WEFT_EVENT_AUTO_INIT;
    weft_event_set(&a);
    weft_event_set(&a);
    cr_assert_eq(weft_event_wait(&a, 0), 0);
    cr_assert_eq(weft_event_wait(&a, 0), -ETIMEDOUT, "sets do not count up");
    /* With three waiters, each set releases exactly one, oldest first. */
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = spawn_pinned(ev_wait, &a);
        wait_parked(t[i]);
    }
    for (int i = 0; i < 3; i++) {
        weft_event_set(&a);
        cr_assert_eq(join_result(t[i]), (void *)0, "waiter %d released in order", i);
        for (int j = i + 1; j < 3; j++)
            cr_assert_eq(weft_task_status(t[j]), WEFT_TASK_PARKED, "one released per set");
    }
    cr_assert_eq(weft_event_wait(&a, 0), -ETIMEDOUT, "each set was consumed by its waiter");
    return NULL;
}

Test(semantics, events_one_shot_and_auto_reset)
{
    run_main(event_main, NULL);
}

/* ---- Timers ------------------------------------------------------------------------------ */

static int wake_log[64], nwake;

struct sleeper_arg {
    int id;
    int64_t deadline;
};

static void *sleep_logged(void *arg)
{
    struct sleeper_arg *s = arg;
    int r = weft_sleep_until(s->deadline);
    wake_log[nwake++] = s->id;
    return (void *)(intptr_t)r;
}

/* libuv's timer ordering: timers started in any order fire in deadline order, and those
 * with one deadline fire in the order they were started. */
static void *timer_order_main(void *arg)
{
    (void)arg;
    struct sleeper_arg a[48];
    weft_task *t[48];
    /* Every timer must be armed before the first deadline, or the order says nothing: a
     * machine too slow for the margin (a sanitizer on a loaded CI machine) retries with ten
     * times more. */
    for (int64_t margin = 20 * WEFT_MSEC;; margin *= 10) {
        nwake = 0;
        int64_t base = weft_deadline_in(margin);
        /* Deadlines base + k ms for k = (i * 7) % 6: scrambled, with 8 of each. */
        for (int i = 0; i < 48; i++) {
            a[i] = (struct sleeper_arg){i, base + ((i * 7) % 6) * WEFT_MSEC};
            t[i] = spawn_pinned(sleep_logged, &a[i]);
        }
        /* Or done: on a machine slower than the margin a sleeper may finish before it is
         * seen parked (then this round is not in time, and the next has ten times more). */
        for (int i = 0; i < 48; i++)
            wait_parked_or_done(t[i]);
        bool in_time = weft_now() < base && nwake == 0;
        for (int i = 0; i < 48; i++)
            cr_assert_eq(join_result(t[i]), (void *)0);
        if (in_time)
            break;
        cr_assert_lt(margin, 100 * WEFT_SEC, "never armed 48 timers within %lld ms",
                     (long long)(margin / WEFT_MSEC));
    }
    cr_assert_eq(nwake, 48);
    for (int i = 1; i < 48; i++) {
        struct sleeper_arg *p = &a[wake_log[i - 1]], *q = &a[wake_log[i]];
        cr_assert_leq(p->deadline, q->deadline, "deadline order at %d", i);
        if (p->deadline == q->deadline)
            cr_assert_lt(p->id, q->id, "start order among equal deadlines at %d", i);
    }
    return NULL;
}

Test(semantics, timers_fire_in_deadline_order_then_start_order)
{
    run_main(timer_order_main, NULL);
}

static void *sleep_forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep_until(WEFT_FOREVER);
}

static void *sleep_far(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_sleep_until(INT64_MAX);
}

static int forever_rc, far_rc;

static void *record_forever(void *arg)
{
    forever_rc = (int)(intptr_t)sleep_forever(arg);
    return NULL;
}

static void *record_far(void *arg)
{
    far_rc = (int)(intptr_t)sleep_far(arg);
    return NULL;
}

/* sleep(0) and sleeps with passed deadlines return 0 at once; WEFT_FOREVER and INT64_MAX
 * sleep until cancelled, and then return -ECANCELED, leaving no timer armed. */
static void *sleep_edges_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep(0), 0);
    cr_assert_eq(weft_sleep(-WEFT_SEC), 0);
    cr_assert_eq(weft_sleep(INT64_MIN), 0);
    cr_assert_eq(weft_sleep_until(0), 0);
    cr_assert_eq(weft_sleep_until(-2), 0);
    cr_assert_eq(weft_sleep_until(INT64_MIN), 0);
    cr_assert_eq(weft_sleep_until(weft_now()), 0);
    forever_rc = far_rc = 1;
    weft_task *a = spawn_pinned(record_forever, NULL);
    weft_task *b = spawn_pinned(record_far, NULL);
    wait_parked(a);
    wait_parked(b);
    weft_cancel(a);
    weft_cancel(b);
    cr_assert_eq(join_result(a), WEFT_CANCELED);
    cr_assert_eq(join_result(b), WEFT_CANCELED);
    cr_assert_eq(forever_rc, -ECANCELED);
    cr_assert_eq(far_rc, -ECANCELED);
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    cr_assert_eq(st.ntimers, 0, "no timer left armed");
    return NULL;
}

Test(semantics, sleep_edge_deadlines)
{
    run_main(sleep_edges_main, NULL);
}

/* Many timers with one deadline all fire, each exactly once, in start order. */
static atomic_int fired_count;
static int fire_order[2000], nfire, next_id;

static void *sleep_same(void *arg)
{
    int64_t *deadline = arg;
    int id = next_id++;
    int r = weft_sleep_until(*deadline);
    fire_order[nfire++] = id;
    atomic_fetch_add(&fired_count, 1);
    return (void *)(intptr_t)r;
}

static void *same_deadline_main(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    nfire = next_id = 0;
    atomic_store(&fired_count, 0);
    int64_t deadline = weft_deadline_in(10 * WEFT_MSEC);
    weft_task **t = calloc(N, sizeof *t);
    cr_assert_not_null(t);
    for (int i = 0; i < N; i++)
        t[i] = spawn_pinned(sleep_same, &deadline);
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_result(t[i]), (void *)0);
    cr_assert_eq(atomic_load(&fired_count), N);
    for (int i = 1; i < N; i++)
        cr_assert_lt(fire_order[i - 1], fire_order[i], "start order at %d", i);
    free(t);
    return NULL;
}

Test(semantics, many_timers_with_one_deadline)
{
    run_main(same_deadline_main, NULL);
}

/* ---- The general select's timer case ----------------------------------------------------- */

/* A timer case's `at` is "absolute, as a deadline": one in the past (0, negative ones other
 * than WEFT_FOREVER) is ready at once. */
static void *select_timer_past_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    long v = 0;
    int64_t past[] = {0, -2, INT64_MIN, weft_deadline_in(-1)};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                          {.op = WEFT_CASE_TIMER, .at = past[i], .result = 77}};
        cr_assert_eq(weft_select(cs, 2, WEFT_FOREVER), 1, "a passed time #%zu is ready", i);
        cr_assert_eq(cs[1].result, 0);
    }
    weft_chan_release(c);
    return NULL;
}

Test(semantics, select_timer_case_in_the_past_is_ready_at_once)
{
    run_main(select_timer_past_main, NULL);
}

/* ...and a timer case at WEFT_FOREVER, like every deadline of that value, never passes. */
static void *select_timer_forever_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    long v = 0;
    weft_case never[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &v},
                         {.op = WEFT_CASE_TIMER, .at = WEFT_FOREVER, .result = 77}};
    int r = weft_select(never, 2, weft_deadline_in(5 * WEFT_MSEC));
    cr_assert_eq(r, -ETIMEDOUT, "a timer case at WEFT_FOREVER never fires (got %d)", r);
    weft_case never_dflt[] = {{.op = WEFT_CASE_TIMER, .at = WEFT_FOREVER, .result = 77},
                              {.op = WEFT_CASE_DEFAULT}};
    r = weft_select(never_dflt, 2, WEFT_FOREVER);
    cr_assert_eq(r, 1, "nothing ready: the default (got %d)", r);
    weft_chan_release(c);
    return NULL;
}

/* A timer case at WEFT_FOREVER is a deadline that never passes (it used to be taken at once
 * by the select's first look, WEFT_FOREVER being -1). */
Test(semantics, select_timer_case_at_forever_never_fires)
{
    run_main(select_timer_forever_main, NULL);
}

/* ---- Go's TestSelfSelect and TestNonblockRecvRace ----------------------------------------- */

enum { SELF_ROUNDS = 2000 };

struct selfsel {
    weft_chan *c;
    size_t cap;
    atomic_int self_matches, errors;
};

struct selfsel_arg {
    struct selfsel *s;
    long id;
};

static void *selfsel_task(void *arg)
{
    struct selfsel_arg *a = arg;
    struct selfsel *s = a->s;
    for (int i = 0; i < SELF_ROUNDS; i++) {
        long out = a->id, in = -1;
        weft_case cs[] = {{.op = WEFT_CASE_SEND, .chan = s->c, .elem = &out},
                          {.op = WEFT_CASE_RECV, .chan = s->c, .elem = &in}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r < 0 || cs[r].result != 0)
            atomic_fetch_add(&s->errors, 1);
        else if (r == 1 && s->cap == 0 && in == a->id)
            atomic_fetch_add(&s->self_matches, 1);
    }
    return NULL;
}

static void *selfsel_main(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, 10};
    unsigned nw = weft_worker_count();
    for (int k = 0; k < 3; k++) {
        struct selfsel s = {.c = mkchan(sizeof(long), caps[k]), .cap = caps[k]};
        struct selfsel_arg a[2] = {{&s, 1}, {&s, 2}};
        weft_task *t[2];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(weft_spawn_on((unsigned)i % nw, &t[i], selfsel_task, &a[i], NULL), 0);
        for (int i = 0; i < 2; i++)
            join_result(t[i]);
        cr_assert_eq(atomic_load(&s.errors), 0, "cap %zu", caps[k]);
        cr_assert_eq(atomic_load(&s.self_matches), 0, "a select received its own value");
        weft_chan_release(s.c);
    }
    return NULL;
}

Test(semantics, two_selects_sending_and_receiving_on_one_channel, .timeout = 60)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main(selfsel_main, NULL);
    run_main_cfg(&sharded, selfsel_main, NULL);
    run_main_cfg(&stealing, selfsel_main, NULL);
}

static void *closer(void *arg)
{
    return (void *)(intptr_t)weft_chan_close(arg);
}

/* A buffered value, then a close racing from another worker: a non-blocking receive finds
 * the value (never the default: the channel is ready either way), then -EPIPE. */
static void *nonblock_close_race_main(void *arg)
{
    (void)arg;
    unsigned nw = weft_worker_count();
    for (int i = 0; i < 300; i++) {
        weft_chan *c = mkchan(sizeof(int), 1);
        int one = 1, x = 0;
        cr_assert_eq(weft_chan_try_send(c, &one), 0);
        weft_task *t;
        cr_assert_eq(weft_spawn_on(1 % nw, &t, closer, c, NULL), 0);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = &x}, {.op = WEFT_CASE_DEFAULT}};
        int r = weft_select(cs, 2, 0);
        cr_assert_eq(r, 0, "round %d: the buffered value, not the default", i);
        cr_assert_eq(cs[0].result, 0);
        cr_assert_eq(x, 1);
        cr_assert_eq(join_result(t), (void *)0);
        cr_assert_eq(weft_select(cs, 2, 0), 0, "closed and drained: ready with -EPIPE");
        cr_assert_eq(cs[0].result, -EPIPE);
        weft_chan_release(c);
    }
    return NULL;
}

Test(semantics, nonblocking_receive_races_a_close, .timeout = 60)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    weft_config stealing = two_workers(WEFT_MODE_STEALING);
    run_main_cfg(&sharded, nonblock_close_race_main, NULL);
    run_main_cfg(&stealing, nonblock_close_race_main, NULL);
}

/* ---- Join with deadlines ----------------------------------------------------------------- */

static void *wait_event_then_return(void *arg)
{
    weft_event_wait(arg, WEFT_FOREVER);
    return (void *)(intptr_t)7;
}

/* A join that times out leaves the handle valid: a later join reaps the task. */
static void *join_deadline_main(void *arg)
{
    (void)arg;
    unsigned nw = weft_worker_count();
    for (unsigned k = 0; k < nw && k < 2; k++) {
        weft_event e = WEFT_EVENT_INIT;
        weft_task *t;
        cr_assert_eq(weft_spawn_on(k, &t, wait_event_then_return, &e, NULL), 0);
        void *r = (void *)1;
        cr_assert_eq(weft_join(t, &r, 0), -ETIMEDOUT, "worker %u: passed deadline", k);
        cr_assert_eq(weft_join(t, &r, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(r, (void *)1, "no result written on a timeout");
        weft_event_set(&e);
        cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
        cr_assert_eq(r, (void *)(intptr_t)7);
    }
    cr_assert_eq(weft_join(weft_self(), NULL, 0), -EDEADLK);
    cr_assert_eq(weft_join(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_detach(NULL), -EINVAL);
    return NULL;
}

Test(semantics, a_timed_out_join_can_be_retried)
{
    weft_config sharded = two_workers(WEFT_MODE_SHARDED);
    run_main(join_deadline_main, NULL);
    run_main_cfg(&sharded, join_deadline_main, NULL);
}

/* Waiting receivers are served first-in first-out whether they wait in a plain receive or
 * in a select: a select queued first gets the first value. */
static void *fifo_mixed_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0), *other = mkchan(sizeof(long), 0);
    struct sel s = {c, other, 0, 0, WEFT_FOREVER, 99, {1, 1}};
    weft_task *ts = spawn_pinned(sel_recv_recv, &s);
    wait_parked(ts);
    struct op r = {c, 0, WEFT_FOREVER, 1};
    weft_task *tr = spawn_pinned(op_recv, &r);
    wait_parked(tr);
    long v = 1;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    v = 2;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    join_result(ts);
    join_result(tr);
    cr_assert_eq(s.rc, 0);
    cr_assert_eq(s.va, 1, "the select waited first: it got the first value");
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.v, 2);
    cr_assert_eq(weft_chan_try_send(other, &v), -EAGAIN, "the select's other case withdrew");
    weft_chan_release(c);
    weft_chan_release(other);
    return NULL;
}

Test(semantics, waiting_receivers_are_fifo_across_selects_and_plain_receives)
{
    run_main(fifo_mixed_main, NULL);
}

/* ---- Groups: a member's spawn cleanup ---------------------------------------------------- */

/* weft_group_spawn takes its options as weft_spawn does, and weft_spawn_opts.cleanup must not
 * block: its blocking calls and weft_exit return -EPERM, whichever context runs it. A group
 * member's cleanup ran without that refusal: a sleep or a yield parked the member half-way
 * out of the group, and a weft_exit ended it before it left, so the group's wait never
 * returned. */
struct member_cleanup {
    int ncleanups, r_sleep, r_yield, r_exit;
};

static void member_cleanup_blocks(void *arg)
{
    struct member_cleanup *mc = arg;
    mc->ncleanups++;
    mc->r_sleep = weft_sleep(WEFT_MSEC);
    mc->r_yield = weft_yield();
    /* Only once the refusal is seen: a weft_exit that went through would hang the group. */
    if (mc->r_sleep == -EPERM && mc->r_yield == -EPERM)
        mc->r_exit = weft_exit(NULL);
}

static void *member_noop(void *arg)
{
    (void)arg;
    return NULL;
}

static void *member_cleanup_main(void *arg)
{
    (void)arg;
    struct member_cleanup mc = {0, 1, 1, 1};
    weft_spawn_opts o = {.cleanup = member_cleanup_blocks};
    weft_group *g = NULL;
    cr_assert_eq(weft_group_create(&g), 0);
    cr_assert_eq(weft_group_spawn(g, member_noop, &mc, &o), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_size(g), 0);
    cr_assert_eq(mc.ncleanups, 1);
    cr_assert_eq(mc.r_sleep, -EPERM, "a sleep in a member's cleanup: %d", mc.r_sleep);
    cr_assert_eq(mc.r_yield, -EPERM, "a yield in a member's cleanup: %d", mc.r_yield);
    cr_assert_eq(mc.r_exit, -EPERM, "weft_exit in a member's cleanup: %d", mc.r_exit);
    /* The same for a member closed before it ever ran (finished by whoever picks it). */
    mc = (struct member_cleanup){0, 1, 1, 1};
    cr_assert_eq(weft_group_spawn(g, member_noop, &mc, &o), 0);
    cr_assert_eq(weft_group_close(g), 0);
    cr_assert_eq(mc.ncleanups, 1);
    cr_assert_eq(mc.r_sleep, -EPERM);
    cr_assert_eq(mc.r_yield, -EPERM);
    return NULL;
}

Test(semantics, a_group_members_cleanup_may_not_block_or_exit, .timeout = 30)
{
    run_main(member_cleanup_main, NULL);
}

/* ---- The general select in a task that moves ------------------------------------------- */

/* A general select (a timer case beside a channel case) made by tasks that are not bound to
 * their worker yet, in stealing mode with move_started, under the debug mode: the first look's
 * channel select may yield (one blocking call in eight does) and the task be handed to the
 * other worker there. The select then stopped its watchers through the worker it started on,
 * whose current task is another's or none: a NULL dereference in the join of the first
 * watcher. Every seed tried failed before the fix. */
static weft_chan *moving_select_chan;

static void *moving_selector(void *arg)
{
    (void)arg;
    long v;
    for (int i = 0; i < 20; i++) {
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = moving_select_chan, .elem = &v},
                          {.op = WEFT_CASE_TIMER, .at = weft_deadline_in(20 * WEFT_USEC)}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        cr_assert_eq(r, 1, "only the timer can fire: %d", r);
        cr_assert_eq(weft_yield(), 0); /* a yield: the task may move between selects */
    }
    return NULL;
}

static void *moving_select_main(void *arg)
{
    (void)arg;
    moving_select_chan = mkchan(sizeof(long), 0);
    for (int round = 0; round < 20; round++) {
        weft_task *t[16];
        for (int i = 0; i < 16; i++)
            cr_assert_eq(weft_spawn(&t[i], moving_selector, NULL, NULL), 0);
        for (int i = 0; i < 16; i++)
            cr_assert_null(join_result(t[i]));
    }
    weft_chan_release(moving_select_chan);
    return NULL;
}

Test(semantics, a_general_select_of_a_task_handed_to_another_worker_stops_its_watchers,
     .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg = two_workers(WEFT_MODE_STEALING);
    cfg.move_started = 1;
    static const char *seeds[] = {"1", "2", "3", "4"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        cr_assert_eq(setenv("WEFT_CHAOS", seeds[i], 1), 0);
        run_main_cfg(&cfg, moving_select_main, NULL);
    }
    unsetenv("WEFT_CHAOS");
}

/* ---- A generator closed by a task that never used it ------------------------------------ */

/* weft_gen_close from a task of the generator's worker that had not used the generator (so
 * was not bound to that worker), in stealing mode with move_started: its join of the body
 * could hand it to the other worker, and the join's reap then went through the worker it had
 * left (whose current task is another's or none: a NULL dereference). The close now keeps its
 * caller on the generator's worker, as every other call on a generator does. Under the debug
 * mode's seeds most runs failed before the fix. */
static void closed_gen_body(weft_gen *g, void *arg)
{
    (void)arg;
    long k = 0;
    while (weft_gen_yield(g, &k) == 0)
        k++;
    for (int i = 0; i < 3; i++)
        weft_sleep(0); /* on its way out: the closer parks in its join meanwhile */
}

static void *gen_closer(void *arg)
{
    return (void *)(intptr_t)weft_gen_close(arg);
}

static void *yield_a_while(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        weft_yield();
    return NULL;
}

static void *gen_creator(void *arg)
{
    (void)arg;
    weft_gen *g = NULL;
    cr_assert_eq(weft_gen_create(&g, closed_gen_body, NULL, sizeof(long), NULL), 0);
    long v;
    cr_assert_eq(weft_gen_next(g, &v, WEFT_FOREVER), 0);
    weft_task *busy[4], *c = NULL;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn(&busy[i], yield_a_while, NULL, NULL), 0);
    /* Child first: it starts here, on g's worker, unbound. */
    weft_spawn_opts o = {.flags = WEFT_SPAWN_CHILD_FIRST};
    cr_assert_eq(weft_spawn(&c, gen_closer, g, &o), 0);
    int r = (int)(intptr_t)join_result(c);
    cr_assert(r == 0 || r == -EPERM, "weft_gen_close: %d", r);
    if (r != 0) /* the closer was handed to the other worker before it ran */
        cr_assert_eq(weft_gen_close(g), 0);
    for (int i = 0; i < 4; i++)
        join_result(busy[i]);
    return NULL;
}

static void *gen_close_moving_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        join_result(spawn_pinned(gen_creator, NULL));
    return NULL;
}

Test(semantics, a_generator_closed_by_a_task_that_never_used_it, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg = two_workers(WEFT_MODE_STEALING);
    cfg.move_started = 1;
    static const char *seeds[] = {"1", "2", "3", "4", "5", "6"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        cr_assert_eq(setenv("WEFT_CHAOS", seeds[i], 1), 0);
        run_main_cfg(&cfg, gen_close_moving_main, NULL);
    }
    unsetenv("WEFT_CHAOS");
}
