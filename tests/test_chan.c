/* Channels and select: rendezvous and buffered semantics, close and drain, FIFO among
 * waiters, select's random fairness, deadlines and default, cancellation while parked, and
 * a million messages between many producers and consumers with none lost or duplicated. */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "harness.h"
#include "task_helpers.h"

static weft_chan *mkchan(size_t elem, size_t cap)
{
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, elem, cap), 0);
    return c;
}

struct sent {
    weft_chan *c;
    long v;
    int done;
    int rc;
};

static void *sender(void *arg)
{
    struct sent *s = arg;
    s->rc = weft_chan_send(s->c, &s->v, WEFT_FOREVER);
    s->done = 1;
    return NULL;
}

static void *rendezvous_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    long v = 7;
    cr_assert_eq(weft_chan_try_send(c, &v), -EAGAIN, "nobody receives");
    struct sent s = {c, 42, 0, 1};
    weft_task *t;
    weft_spawn(&t, sender, &s, NULL);
    for (int i = 0; i < 5; i++)
        weft_yield();
    cr_assert_eq(s.done, 0, "a rendezvous send waits for a receiver");
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 42);
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(s.rc, 0);
    cr_assert_eq(weft_chan_recv(c, &v, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_chan_release(c);
    return NULL;
}

Test(chan, rendezvous_send_completes_only_when_received)
{
    run_main(rendezvous_main, NULL);
}

static void *buffered_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(int), 4);
    for (int i = 1; i <= 4; i++)
        cr_assert_eq(weft_chan_try_send(c, &i), 0);
    int x = 5;
    cr_assert_eq(weft_chan_try_send(c, &x), -EAGAIN);
    cr_assert_eq(weft_chan_len(c), 4);
    /* A parked sender's value joins the buffer in order as room frees up. */
    struct sent s = {c, 0, 0, 1};
    weft_task *t;
    weft_spawn(&t, sender, &s, NULL);
    weft_yield(); /* parked: the buffer is full */
    for (int i = 1; i <= 4; i++) {
        cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), 0);
        cr_assert_eq(x, i, "FIFO order");
    }
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(weft_chan_try_recv(c, &x), 0);
    cr_assert_eq(x, 0, "the parked sender's value came last");
    cr_assert_eq(weft_chan_try_recv(c, &x), -EAGAIN);
    weft_chan_release(c);
    return NULL;
}

Test(chan, buffered_fifo)
{
    run_main(buffered_main, NULL);
}

static void *receiver(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, WEFT_FOREVER);
}

static void *close_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(int), 8);
    for (int i = 0; i < 3; i++)
        weft_chan_try_send(c, &i);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(weft_chan_close(c), -EPIPE);
    int x;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), 0, "drains after close");
        cr_assert_eq(x, i);
    }
    cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), -EPIPE, "send on closed: an error");
    cr_assert_eq(weft_chan_try_send(c, &x), -EPIPE);
    weft_chan_release(c);

    /* Waiters parked on a channel that closes are woken. */
    weft_chan *u = mkchan(sizeof(long), 0);
    weft_task *r1, *r2, *s1;
    weft_spawn(&r1, receiver, u, NULL);
    weft_spawn(&r2, receiver, u, NULL);
    weft_yield();
    weft_chan_close(u);
    void *a, *b;
    weft_join(r1, &a, WEFT_FOREVER);
    weft_join(r2, &b, WEFT_FOREVER);
    cr_assert_eq((intptr_t)a, -EPIPE);
    cr_assert_eq((intptr_t)b, -EPIPE);
    weft_chan_release(u);

    u = mkchan(sizeof(long), 0);
    struct sent s = {u, 1, 0, 1};
    weft_spawn(&s1, sender, &s, NULL);
    weft_yield();
    weft_chan_close(u);
    weft_join(s1, NULL, WEFT_FOREVER);
    cr_assert_eq(s.rc, -EPIPE);
    weft_chan_release(u);
    return NULL;
}

Test(chan, close_then_drain_and_waiters_woken)
{
    run_main(close_main, NULL);
}

static void *fifo_waiters_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    struct sent s[5];
    weft_task *t[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (struct sent){c, 100 + i, 0, 1};
        weft_spawn(&t[i], sender, &s[i], NULL);
    }
    weft_yield(); /* all five park, in spawn order */
    for (int i = 0; i < 5; i++) {
        long v;
        weft_chan_recv(c, &v, WEFT_FOREVER);
        cr_assert_eq(v, 100 + i, "waiting senders are served first-in first-out");
    }
    for (int i = 0; i < 5; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    weft_chan_release(c);
    return NULL;
}

Test(chan, waiting_senders_are_fifo)
{
    run_main(fifo_waiters_main, NULL);
}

static void *fair_main(void *arg)
{
    (void)arg;
    weft_chan *a = mkchan(sizeof(int), 1), *b = mkchan(sizeof(int), 1);
    int one = 1, x, y;
    int counts[2] = {0, 0};
    enum { ROUNDS = 10000 };
    for (int i = 0; i < ROUNDS; i++) {
        weft_chan_try_send(a, &one); /* both always ready */
        weft_chan_try_send(b, &one);
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = a, .elem = &x, .result = 0},
                          {.op = WEFT_CASE_RECV, .chan = b, .elem = &y, .result = 0}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        cr_assert(r == 0 || r == 1);
        counts[r]++;
    }
    /* Uniform choice: each side about 5,000; 4,000 is over 20 standard deviations away. */
    cr_assert_gt(counts[0], 4000, "case 0 chosen %d times", counts[0]);
    cr_assert_gt(counts[1], 4000, "case 1 chosen %d times", counts[1]);
    weft_chan_release(a);
    weft_chan_release(b);
    return NULL;
}

Test(chan, select_picks_uniformly_among_ready_cases)
{
    run_main(fair_main, NULL);
}

static void *select_misc_main(void *arg)
{
    (void)arg;
    weft_chan *a = mkchan(sizeof(int), 0), *b = mkchan(sizeof(int), 0);
    int x = 3, y;
    weft_case cs[] = {{.op = WEFT_CASE_SEND, .chan = a, .elem = &x, .result = 0},
                      {.op = WEFT_CASE_RECV, .chan = b, .elem = &y, .result = 0}};
    cr_assert_eq(weft_select(cs, 2, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_case cd[] = {{.op = WEFT_CASE_SEND, .chan = a, .elem = &x, .result = 0},
                      {.op = WEFT_CASE_DEFAULT, .chan = NULL, .elem = NULL, .result = 0}};
    cr_assert_eq(weft_select(cd, 2, WEFT_FOREVER), 1, "default when nothing is ready");
    /* A nil channel never becomes ready. */
    weft_case cn[] = {{.op = WEFT_CASE_RECV, .chan = NULL, .elem = NULL, .result = 0}};
    cr_assert_eq(weft_select(cn, 1, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    weft_case bad[] = {{.op = WEFT_CASE_DEFAULT, .chan = NULL, .elem = NULL, .result = 0},
                       {.op = WEFT_CASE_DEFAULT, .chan = NULL, .elem = NULL, .result = 0}};
    cr_assert_eq(weft_select(bad, 2, 0), -EINVAL);
    cr_assert_eq(weft_select(cs, 0, 0), -EINVAL);
    /* A select parked on a receive completes when a value arrives, with the value. */
    struct sent s = {b, 99, 0, 1};
    weft_task *t;
    weft_spawn(&t, sender, &s, NULL);
    long big;
    weft_case cr2[] = {{.op = WEFT_CASE_SEND, .chan = a, .elem = &x, .result = 0},
                       {.op = WEFT_CASE_RECV, .chan = b, .elem = &big, .result = 0}};
    weft_chan_release(b);
    b = mkchan(sizeof(long), 0);
    s.c = b;
    cr2[1].chan = b;
    int r = weft_select(cr2, 2, WEFT_FOREVER);
    cr_assert_eq(r, 1);
    cr_assert_eq(big, 99);
    cr_assert_eq(cr2[1].result, 0);
    weft_join(t, NULL, WEFT_FOREVER);
    /* Closed channels make receive cases ready with -EPIPE. */
    weft_chan_close(b);
    r = weft_select(cr2, 2, WEFT_FOREVER);
    cr_assert_eq(r, 1);
    cr_assert_eq(cr2[1].result, -EPIPE);
    weft_chan_release(a);
    weft_chan_release(b);
    return NULL;
}

Test(chan, select_deadline_default_and_close)
{
    run_main(select_misc_main, NULL);
}

static void *park_recv(void *arg)
{
    weft_chan *c = arg;
    long v = 0;
    return (void *)(intptr_t)weft_chan_recv(c, &v, WEFT_FOREVER);
}

static void *park_send(void *arg)
{
    long v = 1;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_FOREVER);
}

static void *park_select(void *arg)
{
    long v;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = arg, .elem = &v, .result = 0},
                      {.op = WEFT_CASE_SEND, .chan = arg, .elem = &v, .result = 0}};
    return (void *)(intptr_t)weft_select(cs, 2, WEFT_FOREVER);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_fn fns[] = {park_recv, park_send, park_select};
    for (int i = 0; i < 3; i++) {
        weft_chan *c = mkchan(sizeof(long), 0);
        weft_task *t;
        weft_spawn(&t, fns[i], c, NULL);
        weft_yield();
        weft_cancel(t);
        void *r;
        weft_join(t, &r, WEFT_FOREVER);
        cr_assert_eq(r, WEFT_CANCELED);
        /* The cancelled waiter left no trace: the channel still works both ways. */
        long v = 5;
        cr_assert_eq(weft_chan_try_send(c, &v), -EAGAIN);
        cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
        weft_chan_release(c);
    }
    return NULL;
}

Test(chan, cancellation_of_parked_send_recv_and_select)
{
    run_main(cancel_main, NULL);
}

/* ---- A million messages, many producers and consumers, some through select ---- */

enum { NPROD = 8, NCONS = 8, PER_PROD = 125000 };

struct mpmc {
    weft_chan *a, *b; /* producers alternate; consumers select over both */
    weft_chan *done;  /* consumers report their sums */
};

static void *producer(void *arg)
{
    struct mpmc *m = arg;
    /* ids 1..N, all distinct: atomic, since producers may run on two workers at once
     * (the suite's stealing run). */
    static _Atomic long next_id;
    for (int i = 0; i < PER_PROD; i++) {
        long v = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) + 1;
        if (weft_chan_send(i % 2 ? m->a : m->b, &v, WEFT_FOREVER) < 0)
            return (void *)1;
    }
    return NULL;
}

struct tally {
    long count, sum;
};

static void *consumer(void *arg)
{
    struct mpmc *m = arg;
    struct tally t = {0, 0};
    for (;;) {
        long va, vb;
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = m->a, .elem = &va, .result = 0},
                          {.op = WEFT_CASE_RECV, .chan = m->b, .elem = &vb, .result = 0}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r < 0 || cs[r].result == -EPIPE) {
            /* One channel closed: drain the other plainly. */
            weft_chan *other = r >= 0 && cs[r].chan == m->a ? m->b : m->a;
            long v;
            while (weft_chan_recv(other, &v, WEFT_FOREVER) == 0)
                t.count++, t.sum += v;
            break;
        }
        long v = r == 0 ? va : vb;
        t.count++;
        t.sum += v;
    }
    weft_chan_send(m->done, &t, WEFT_FOREVER);
    return NULL;
}

static void *mpmc_main(void *arg)
{
    (void)arg;
    struct mpmc m;
    m.a = mkchan(sizeof(long), 0);  /* rendezvous */
    m.b = mkchan(sizeof(long), 64); /* buffered */
    m.done = mkchan(sizeof(struct tally), NCONS);
    weft_task *p[NPROD];
    for (int i = 0; i < NPROD; i++)
        weft_spawn(&p[i], producer, &m, NULL);
    for (int i = 0; i < NCONS; i++)
        weft_spawn(NULL, consumer, &m, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED});
    for (int i = 0; i < NPROD; i++) {
        void *r;
        weft_join(p[i], &r, WEFT_FOREVER);
        cr_assert_null(r);
    }
    weft_chan_close(m.a);
    weft_chan_close(m.b);
    long count = 0, sum = 0;
    for (int i = 0; i < NCONS; i++) {
        struct tally t;
        cr_assert_eq(weft_chan_recv(m.done, &t, WEFT_FOREVER), 0);
        count += t.count;
        sum += t.sum;
    }
    long n = (long)NPROD * PER_PROD;
    cr_assert_eq(count, n, "every message received exactly once (count)");
    cr_assert_eq(sum, n * (n + 1) / 2, "and no value lost or duplicated (sum)");
    weft_chan_release(m.a);
    weft_chan_release(m.b);
    weft_chan_release(m.done);
    return NULL;
}

Test(chan, a_million_messages_none_lost_or_duplicated, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    run_main(mpmc_main, NULL);
}

/* ---- Select over one channel twice; a channel from another runtime's thread ------------- */

static void *dup_peer(void *arg)
{
    long v = 9;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_FOREVER);
}

static void *select_dup_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 0);
    long a = -1, b = -1, out = 4;
    /* The same channel as a receive case twice and a send case: its lock is taken once. */
    weft_case cases[3] = {
        {.op = WEFT_CASE_RECV, .chan = c, .elem = &a},
        {.op = WEFT_CASE_RECV, .chan = c, .elem = &b},
        {.op = WEFT_CASE_SEND, .chan = c, .elem = &out},
    };
    weft_task *t;
    weft_spawn(&t, dup_peer, c, NULL);
    int r = weft_select(cases, 3, WEFT_FOREVER);
    cr_assert(r == 0 || r == 1, "a receive case completed (%d)", r);
    cr_assert_eq(cases[r].result, 0);
    cr_assert_eq(r == 0 ? a : b, 9);
    cr_assert_eq(r == 0 ? b : a, -1, "the other receive case took nothing");
    void *res;
    cr_assert_eq(weft_join(t, &res, WEFT_FOREVER), 0);
    cr_assert_null(res);
    weft_chan_release(c);
    return NULL;
}

Test(chan, select_with_one_channel_in_several_cases)
{
    run_main(select_dup_main, NULL);
}

typedef struct foreign {
    weft_chan *c;
    int rc_send, rc_try, rc_close;
} foreign;

static void *foreign_main(void *arg)
{
    foreign *f = arg;
    long v = 1;
    f->rc_send = weft_chan_send(f->c, &v, weft_deadline_in(0));
    f->rc_try = weft_chan_try_send(f->c, &v);
    f->rc_close = weft_chan_close(f->c);
    return NULL;
}

static void *foreign_thread(void *arg)
{
    weft_run(NULL, foreign_main, arg, NULL);
    return NULL;
}

static void *other_runtime_main(void *arg)
{
    (void)arg;
    foreign f = {.c = mkchan(sizeof(long), 4)};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_thread, &f), 0);
    pthread_join(th, NULL);
    cr_assert_eq(f.rc_send, 0);
    cr_assert_eq(f.rc_try, 0);
    cr_assert_eq(f.rc_close, 0);
    cr_assert_eq(weft_chan_len(f.c), 2, "both values sent from the other runtime");
    long v = 0;
    cr_assert_eq(weft_chan_recv(f.c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_chan_try_send(f.c, &v), -EPIPE, "closed there");
    weft_chan_release(f.c);
    return NULL;
}

Test(chan, a_channel_is_shared_between_runtimes)
{
    run_main(other_runtime_main, NULL);
}

/* ---- Reliability: the last release with waiters; 0-byte values ---- */

static void *recv_one(void *arg)
{
    int v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, WEFT_FOREVER);
}

static void *send_one(void *arg)
{
    int v = 1;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_FOREVER);
}

static void *select_recv(void *arg)
{
    weft_chan **cs = arg;
    int a, b;
    weft_case cases[2] = {{.op = WEFT_CASE_RECV, .chan = cs[0], .elem = &a, .result = 1},
                          {.op = WEFT_CASE_RECV, .chan = cs[1], .elem = &b, .result = 1}};
    int i = weft_select(cases, 2, WEFT_FOREVER);
    return (void *)(intptr_t)(i < 0 ? i : cases[i].result);
}

static void *release_waiters_main(void *arg)
{
    (void)arg;
    weft_chan *c, *full, *other;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&full, sizeof(int), 0), 0);
    cr_assert_eq(weft_chan_create(&other, sizeof(int), 0), 0);
    weft_chan *pair[2] = {c, other};
    weft_task *r1, *r2, *s1, *sel;
    weft_spawn(&r1, recv_one, c, NULL);
    weft_spawn(&r2, recv_one, c, NULL);
    weft_spawn(&sel, select_recv, pair, NULL);
    weft_spawn(&s1, send_one, full, NULL);
    weft_yield();            /* all four park */
    weft_chan_release(c);    /* the only handle: the parked receivers must not touch freed memory */
    weft_chan_release(full); /* a parked sender, too */
    void *r;
    weft_join(r1, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)(intptr_t)-EPIPE);
    weft_join(r2, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)(intptr_t)-EPIPE);
    weft_join(sel, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)(intptr_t)-EPIPE, "the select's case on the released channel");
    weft_join(s1, &r, WEFT_FOREVER);
    cr_assert_eq(r, (void *)(intptr_t)-EPIPE);
    weft_chan_release(other);
    return NULL; /* the leak check proves both channels were freed */
}

Test(chan, releasing_the_last_handle_wakes_waiters_with_epipe, .timeout = 10)
{
    run_main(release_waiters_main, NULL);
}

static void *zero_sender(void *arg)
{
    for (int i = 0; i < 3; i++)
        if (weft_chan_send(arg, NULL, WEFT_FOREVER) != 0)
            return (void *)1;
    return NULL;
}

static void *zero_size_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, 0, 2), 0, "chan struct{}");
    cr_assert_eq(weft_chan_cap(c), 2);
    cr_assert_eq(weft_chan_try_send(c, NULL), 0);
    char any;
    cr_assert_eq(weft_chan_try_send(c, &any), 0);
    cr_assert_eq(weft_chan_try_send(c, NULL), -EAGAIN, "full at its capacity");
    cr_assert_eq(weft_chan_len(c), 2);
    cr_assert_eq(weft_chan_try_recv(c, NULL), 0);
    cr_assert_eq(weft_chan_recv(c, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_try_recv(c, NULL), -EAGAIN);
    weft_chan_release(c);

    /* Rendezvous: only the count and the order matter. */
    cr_assert_eq(weft_chan_create(&c, 0, 0), 0);
    cr_assert_eq(weft_chan_cap(c), 0);
    weft_task *t;
    weft_spawn(&t, zero_sender, c, NULL);
    cr_assert_eq(weft_chan_recv(c, NULL, WEFT_FOREVER), 0);
    weft_case cases[1] = {{.op = WEFT_CASE_RECV, .chan = c, .elem = NULL, .result = 1}};
    cr_assert_eq(weft_select(cases, 1, WEFT_FOREVER), 0);
    cr_assert_eq(cases[0].result, 0);
    cr_assert_eq(weft_select(cases, 1, WEFT_FOREVER), 0);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    cr_assert_eq(r, NULL);
    weft_chan_close(c);
    cr_assert_eq(weft_chan_recv(c, NULL, WEFT_FOREVER), -EPIPE);
    weft_chan_release(c);

    /* NULL is still refused where values have a size. */
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 1), 0);
    cr_assert_eq(weft_chan_cap(c), 1);
    cr_assert_eq(weft_chan_try_send(c, NULL), -EINVAL);
    weft_chan_release(c);
    cr_assert_eq(weft_chan_cap(NULL), 0);
    return NULL;
}

Test(chan, zero_size_values_and_cap)
{
    run_main(zero_size_main, NULL);
}

/* Receivers parked on a rendezvous channel get the values sent to them directly (into their
 * own buffers, before they run again), oldest receiver first, for the element sizes the
 * hand-off copies with one load and store (4, 8) and for others (3, 16). */
typedef struct parked_recv {
    weft_chan *c;
    unsigned char buf[17]; /* the largest element, and one byte that must stay untouched */
    int rc;
    int order; /* when it ran again, among the receivers */
} parked_recv;

static int nresumed;

static void *recv_into(void *arg)
{
    parked_recv *p = arg;
    p->rc = weft_chan_recv(p->c, p->buf, WEFT_FOREVER);
    p->order = nresumed++;
    return NULL;
}

static void *parked_receivers_main(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {4, 8, 3, 16};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        size_t elem = sizes[z];
        weft_chan *c = mkchan(elem, 0);
        parked_recv ps[3];
        weft_task *ts[3];
        nresumed = 0;
        for (int i = 0; i < 3; i++) {
            ps[i] = (parked_recv){.c = c, .rc = 1, .order = -1};
            memset(ps[i].buf, 0xee, sizeof ps[i].buf);
            cr_assert_eq(weft_spawn(&ts[i], recv_into, &ps[i], NULL), 0);
            weft_yield(); /* it parks, in spawn order */
        }
        for (int i = 0; i < 3; i++) {
            unsigned char v[16];
            memset(v, 0x10 * (i + 1) + (int)z, sizeof v);
            cr_assert_eq(weft_chan_send(c, v, WEFT_FOREVER), 0, "a receiver waits: no park");
            /* Delivered into the oldest receiver's buffer before it runs again. */
            cr_assert_eq(ps[i].rc, 1, "not resumed yet");
            cr_assert_eq(memcmp(ps[i].buf, v, elem), 0, "size %zu: value %d in place", elem, i);
            cr_assert_eq(ps[i].buf[elem], 0xee, "size %zu: nothing past the element", elem);
        }
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
            cr_assert_eq(ps[i].rc, 0);
            cr_assert_eq(ps[i].order, i, "woken receivers run in the order they were served");
        }
        weft_chan_release(c);
    }
    return NULL;
}

Test(chan, parked_receivers_are_handed_values_directly_in_fifo_order)
{
    run_main(parked_receivers_main, NULL);
}

/* ---- Issue 14 §2: unbounded and broadcast channels, on one worker and on two ---- */

#include <stdint.h>

static void run_workers(unsigned workers, weft_fn fn)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    cfg.mode = WEFT_MODE_SHARDED;
    run_main_cfg(&cfg, fn, NULL);
}

/* The worker other than the caller's when there are two, else the caller's. */
static unsigned other_worker(void)
{
    return weft_worker_count() > 1 ? (unsigned)(1 - weft_worker_index()) : 0;
}

enum { NUNBOUNDED = 10000 };

static void *unbounded_receiver(void *arg)
{
    long sum = 0;
    for (long i = 0; i < NUNBOUNDED; i++) {
        long v = -1;
        int r = weft_chan_recv(arg, &v, WEFT_FOREVER);
        if (r < 0)
            return (void *)(intptr_t)r;
        if (v != i)
            return (void *)(intptr_t)-EPROTO; /* out of order */
        sum += v;
    }
    return (void *)(intptr_t)(sum == (long)NUNBOUNDED * (NUNBOUNDED - 1) / 2 ? 0 : -EBADMSG);
}

static void *unbounded_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    cr_assert_eq(weft_chan_create_unbounded(&c, sizeof(long), 0), 0);
    cr_assert_eq(weft_chan_cap(c), SIZE_MAX);
    /* With nobody receiving, sends never wait: the ring grows, order is kept. */
    for (long i = 0; i < NUNBOUNDED; i++)
        cr_assert_eq(weft_chan_send(c, &i, weft_deadline_in(-1)), 0);
    cr_assert_eq(weft_chan_len(c), NUNBOUNDED);
    cr_assert_eq(unbounded_receiver(c), NULL, "all received, in order");
    cr_assert_eq(weft_chan_len(c), 0);

    /* A receiver parked on another worker is handed the values as they come. */
    weft_task *t;
    cr_assert_eq(weft_spawn_on(other_worker(), &t, unbounded_receiver, c, NULL), 0);
    for (long i = 0; i < NUNBOUNDED; i++) {
        cr_assert_eq(weft_chan_send(c, &i, WEFT_FOREVER), 0);
        if (i % 1000 == 0)
            weft_yield();
    }
    void *r;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, NULL);

    /* A select's send case on an unbounded channel is always ready. */
    long x = 5;
    weft_case cs[1] = {{.op = WEFT_CASE_SEND, .chan = c, .elem = &x, .result = 1}};
    cr_assert_eq(weft_select(cs, 1, weft_deadline_in(-1)), 0);
    cr_assert_eq(cs[0].result, 0);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), 0, "drained after the close");
    cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), -EPIPE);
    weft_chan_release(c);

    /* At the limit: -ENOMEM, nothing lost, and room again once a value is taken. */
    cr_assert_eq(weft_chan_create_unbounded(&c, sizeof(long), 20), 0);
    for (long i = 0; i < 20; i++)
        cr_assert_eq(weft_chan_try_send(c, &i), 0);
    x = 99;
    cr_assert_eq(weft_chan_try_send(c, &x), -ENOMEM);
    cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), -ENOMEM, "never waits");
    cs[0] = (weft_case){.op = WEFT_CASE_SEND, .chan = c, .elem = &x, .result = 1};
    cr_assert_eq(weft_select(cs, 1, WEFT_FOREVER), 0);
    cr_assert_eq(cs[0].result, -ENOMEM);
    cr_assert_eq(weft_chan_recv(c, &x, WEFT_FOREVER), 0);
    cr_assert_eq(x, 0);
    x = 20;
    cr_assert_eq(weft_chan_send(c, &x, WEFT_FOREVER), 0);
    for (long i = 1; i <= 20; i++) {
        cr_assert_eq(weft_chan_try_recv(c, &x), 0);
        cr_assert_eq(x, i, "every value kept, in order");
    }
    cr_assert_eq(weft_chan_try_recv(c, &x), -EAGAIN);
    weft_chan_release(c);

    /* 0-byte values count, up to the limit. */
    cr_assert_eq(weft_chan_create_unbounded(&c, 0, 3), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_chan_send(c, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_send(c, NULL, WEFT_FOREVER), -ENOMEM);
    cr_assert_eq(weft_chan_len(c), 3);
    weft_chan_release(c);
    cr_assert_eq(weft_chan_create_unbounded(NULL, 8, 0), -EINVAL);
    cr_assert_eq(weft_chan_create_unbounded(&c, 65537, 0), -EINVAL);
    return NULL;
}

Test(chan, unbounded_on_one_worker)
{
    run_workers(1, unbounded_main);
}

Test(chan, unbounded_across_two_workers)
{
    run_workers(2, unbounded_main);
}

/* ---- Broadcast ---- */

enum { NBCAST = 2000, NRX = 4 };

struct bcast_rx_job {
    weft_bcast_rx *rx;
    long nvalues, nmissed, last;
    int end; /* the receive's error that ended the loop */
};

/* Receives until the channel closes: values strictly increasing, each one after the last
 * plus what was reported missed. */
static void *bcast_reader(void *arg)
{
    struct bcast_rx_job *j = arg;
    j->last = -1;
    for (;;) {
        long v;
        uint64_t missed = 0;
        int r = weft_bcast_recv(j->rx, &v, &missed, WEFT_FOREVER);
        if (r == -EOVERFLOW) {
            j->nmissed += (long)missed;
            j->last += (long)missed;
            continue;
        }
        if (r < 0) {
            j->end = r;
            return NULL;
        }
        if (v != j->last + 1) {
            j->end = -EPROTO;
            return NULL;
        }
        j->last = v;
        j->nvalues++;
    }
}

static void *bcast_main(void *arg)
{
    (void)arg;
    weft_bcast *b;
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 64), 0);
    cr_assert_eq(weft_bcast_send(b, &(long){-5}), 0, "nobody subscribed yet");
    struct bcast_rx_job js[NRX];
    weft_task *ts[NRX];
    for (int i = 0; i < NRX; i++) {
        js[i] = (struct bcast_rx_job){0};
        cr_assert_eq(weft_bcast_subscribe(b, &js[i].rx), 0);
        unsigned on = (i & 1) ? other_worker() : (unsigned)weft_worker_index();
        cr_assert_eq(weft_spawn_on(on, &ts[i], bcast_reader, &js[i], NULL), 0);
    }
    cr_assert_eq(weft_bcast_receivers(b), NRX);
    for (long v = 0; v < NBCAST; v++) {
        cr_assert_eq(weft_bcast_send(b, &v), NRX);
        if (v % 16 == 0)
            weft_yield(); /* readers mostly keep up, but lagging is allowed */
    }
    cr_assert_eq(weft_bcast_close(b), 0);
    cr_assert_eq(weft_bcast_close(b), -EPIPE);
    cr_assert_eq(weft_bcast_send(b, &(long){0}), -EPIPE);
    for (int i = 0; i < NRX; i++) {
        cr_assert_eq(weft_join(ts[i], NULL, WEFT_FOREVER), 0);
        cr_assert_eq(js[i].end, -EPIPE, "reader %d ended with %d", i, js[i].end);
        cr_assert_eq(js[i].nvalues + js[i].nmissed, NBCAST, "every value seen or reported missed");
        cr_assert_eq(js[i].last, NBCAST - 1);
        weft_bcast_unsubscribe(js[i].rx);
    }
    weft_bcast_release(b);
    return NULL;
}

Test(chan, broadcast_every_receiver_sees_every_value_on_one_worker)
{
    run_workers(1, bcast_main);
}

Test(chan, broadcast_every_receiver_sees_every_value_across_two_workers)
{
    run_workers(2, bcast_main);
}

static void *bcast_wait_one(void *arg)
{
    long v;
    return (void *)(intptr_t)weft_bcast_recv(arg, &v, NULL, WEFT_FOREVER);
}

static void *bcast_lag_main(void *arg)
{
    (void)arg;
    weft_bcast *b;
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 4), 0);
    weft_bcast_rx *slow, *fast;
    cr_assert_eq(weft_bcast_subscribe(b, &slow), 0);
    long v;
    uint64_t missed = 0;
    cr_assert_eq(weft_bcast_try_recv(slow, &v, &missed), -EAGAIN);
    cr_assert_eq(weft_bcast_recv(slow, &v, &missed, weft_deadline_in(-1)), -ETIMEDOUT);
    for (v = 0; v < 10; v++)
        cr_assert_eq(weft_bcast_send(b, &v), 1);
    cr_assert_eq(weft_bcast_subscribe(b, &fast), 0);
    cr_assert_eq(weft_bcast_try_recv(fast, &v, &missed), -EAGAIN, "only values sent later");

    /* The slow receiver lost 0..5 (the ring keeps 6..9): it is told, then reads 6..9. */
    cr_assert_eq(weft_bcast_recv(slow, &v, &missed, WEFT_FOREVER), -EOVERFLOW);
    cr_assert_eq(missed, 6);
    for (long want = 6; want < 10; want++) {
        cr_assert_eq(weft_bcast_recv(slow, &v, &missed, WEFT_FOREVER), 0);
        cr_assert_eq(v, want);
    }
    cr_assert_eq(weft_bcast_try_recv(slow, &v, NULL), -EAGAIN);

    /* A parked receiver on the other worker is woken by a send here; one cancelled while
     * parked leaves with -ECANCELED. */
    weft_task *t, *c;
    cr_assert_eq(weft_spawn_on(other_worker(), &t, bcast_wait_one, fast, NULL), 0);
    cr_assert_eq(weft_spawn(&c, bcast_wait_one, slow, NULL), 0);
    weft_sleep(WEFT_MSEC);
    weft_cancel(c);
    void *r;
    cr_assert_eq(weft_join(c, &r, WEFT_FOREVER), 0);
    cr_assert(r == (void *)(intptr_t)-ECANCELED || r == WEFT_CANCELED, "%p", r);
    v = 11;
    cr_assert_eq(weft_bcast_send(b, &v), 2);
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, NULL);

    /* The last handle's release closes it: receivers drain, then get -EPIPE. */
    cr_assert_eq(weft_spawn_on(other_worker(), &t, bcast_wait_one, fast, NULL), 0);
    weft_sleep(WEFT_MSEC);
    weft_bcast_release(b); /* the receivers keep the memory */
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, (void *)(intptr_t)-EPIPE);
    cr_assert_eq(weft_bcast_recv(slow, &v, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(v, 11);
    cr_assert_eq(weft_bcast_recv(slow, &v, NULL, WEFT_FOREVER), -EPIPE);
    weft_bcast_unsubscribe(slow);
    weft_bcast_unsubscribe(fast); /* the last reference: frees it */

    /* 0-byte values, and misuse. */
    cr_assert_eq(weft_bcast_create(&b, 0, 2), 0);
    cr_assert_eq(weft_bcast_subscribe(b, &slow), 0);
    cr_assert_eq(weft_bcast_send(b, NULL), 1);
    cr_assert_eq(weft_bcast_recv(slow, NULL, NULL, WEFT_FOREVER), 0);
    weft_bcast_unsubscribe(slow);
    weft_bcast_release(b);
    cr_assert_eq(weft_bcast_create(&b, 8, 0), -EINVAL);
    cr_assert_eq(weft_bcast_create(&b, 65537, 1), -EINVAL);
    cr_assert_eq(weft_bcast_create(NULL, 8, 1), -EINVAL);
    cr_assert_eq(weft_bcast_send(NULL, &v), -EINVAL);
    cr_assert_eq(weft_bcast_recv(NULL, &v, NULL, WEFT_FOREVER), -EINVAL);
    return NULL;
}

Test(chan, broadcast_lag_deadline_cancel_and_close_on_one_worker)
{
    run_workers(1, bcast_lag_main);
}

Test(chan, broadcast_lag_deadline_cancel_and_close_across_two_workers)
{
    run_workers(2, bcast_lag_main);
}

/* A plain thread receives from a broadcast channel that a task sends on. */
static void *bcast_thread(void *arg)
{
    long sum = 0;
    for (;;) {
        long v;
        int r = weft_bcast_recv(arg, &v, NULL, WEFT_FOREVER);
        if (r == -EPIPE)
            break;
        if (r < 0)
            return (void *)(intptr_t)r;
        sum += v;
    }
    return (void *)(intptr_t)sum;
}

static void *bcast_thread_main(void *arg)
{
    (void)arg;
    weft_bcast *b;
    cr_assert_eq(weft_bcast_create(&b, sizeof(long), 128), 0); /* room for all: no lag */
    weft_bcast_rx *rx;
    cr_assert_eq(weft_bcast_subscribe(b, &rx), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bcast_thread, rx), 0);
    for (long v = 1; v <= 100; v++)
        cr_assert_eq(weft_bcast_send(b, &v), 1);
    weft_bcast_close(b);
    void *r;
    pthread_join(th, &r); /* the thread needs nothing of this worker to finish */
    cr_assert_eq(r, (void *)(intptr_t)5050);
    weft_bcast_unsubscribe(rx);
    weft_bcast_release(b);
    return NULL;
}

Test(chan, broadcast_to_a_plain_thread, .timeout = 20)
{
    run_workers(2, bcast_thread_main);
}

/* ---- A select's ready case whose waiter another select's channel claims first ---- */

/* A waits in select {recv c1, recv c2}. B's select {send c1, recv on 16 empty channels}
 * counts A's waiter on c1 as ready; before B completes that case, C (a plain thread) sends on
 * c2 and claims A through c2, whose lock B does not hold. B's select returned the send case
 * with result -EAGAIN and the value never sent (Go-style code that reads only the index lost
 * it). Found by a port of Go's TestSelectStress; the select now looks again. In test builds
 * WEFT_TEST_SELECT_PAUSE_NS holds B between its look and its completion, and C sends during
 * that pause; if C came late the old code passed too, the fixed one always does. The mirror
 * image (`recv`): B receives on c1, A and C send. */
enum { SR_EMPTY = 16 };

typedef struct select_race {
    weft_chan *c1, *c2, *empty[SR_EMPTY];
    atomic_int b_selecting;
    int recv;
    long a_from_c1, a_from_c2;
} select_race;

static void *sr_a(void *arg)
{
    select_race *s = arg;
    long v = 7;
    int op = s->recv ? WEFT_CASE_SEND : WEFT_CASE_RECV;
    for (;;) {
        weft_case cs[2] = {{.op = op, .chan = s->c1, .elem = &v},
                           {.op = op, .chan = s->c2, .elem = &v}};
        int r = weft_select(cs, 2, WEFT_FOREVER);
        if (r < 0 || cs[r].result != 0)
            return NULL; /* closed at the end */
        if (r == 0)
            s->a_from_c1++;
        else
            s->a_from_c2++;
    }
}

static void *sr_c(void *arg)
{
    select_race *s = arg;
    while (!atomic_load(&s->b_selecting))
        sched_yield();
    struct timespec ts = {0, 20 * 1000 * 1000}; /* into B's pause of 200 ms */
    nanosleep(&ts, NULL);
    long v = 2;
    int r = s->recv ? weft_chan_recv(s->c2, &v, weft_deadline_in(10 * WEFT_SEC))
                    : weft_chan_send(s->c2, &v, weft_deadline_in(10 * WEFT_SEC));
    return (void *)(intptr_t)r;
}

static void *select_race_main(void *arg)
{
    select_race *s = arg;
    s->c1 = mkchan(sizeof(long), 0);
    s->c2 = mkchan(sizeof(long), 0);
    for (int k = 0; k < SR_EMPTY; k++)
        s->empty[k] = mkchan(sizeof(long), 0);
    weft_task *a;
    cr_assert_eq(weft_spawn(&a, sr_a, s, NULL), 0);
    while (weft_task_status(a) != WEFT_TASK_PARKED)
        weft_yield();
    pthread_t c;
    cr_assert_eq(pthread_create(&c, NULL, sr_c, s), 0);
    long v = s->recv ? -1 : 1, dummy;
    weft_case cs[SR_EMPTY + 1];
    cs[0] = (weft_case){.op = s->recv ? WEFT_CASE_RECV : WEFT_CASE_SEND, .chan = s->c1, .elem = &v};
    for (int k = 0; k < SR_EMPTY; k++)
        cs[k + 1] = (weft_case){.op = WEFT_CASE_RECV, .chan = s->empty[k], .elem = &dummy};
    atomic_store(&s->b_selecting, 1);
    int r = weft_select(cs, SR_EMPTY + 1, weft_deadline_in(10 * WEFT_SEC));
    cr_assert_eq(r, 0);
    cr_assert_eq(cs[0].result, 0, "the case it returned completed (not %d)", cs[0].result);
    void *cr;
    while (pthread_tryjoin_np(c, &cr) != 0)
        weft_sleep(WEFT_MSEC);
    cr_assert_eq((intptr_t)cr, 0, "C's operation on c2 completed");
    weft_chan_close(s->c1);
    weft_chan_close(s->c2);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(s->a_from_c1, 1, "A took B's value");
    cr_assert_eq(s->a_from_c2, 1, "and C's");
    if (s->recv)
        cr_assert_eq(v, 7, "B received A's value");
    weft_chan_release(s->c1);
    weft_chan_release(s->c2);
    for (int k = 0; k < SR_EMPTY; k++)
        weft_chan_release(s->empty[k]);
    return NULL;
}

Test(chan, a_select_never_reports_a_case_another_select_took_first, .timeout = 60)
{
    setenv("WEFT_TEST_SELECT_PAUSE_NS", "200000000", 1);
    for (int recv = 0; recv < 2; recv++) {
        select_race s = {.recv = recv};
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = 1;
        cfg.stall_ms = -1; /* the pause is no stall */
        run_main_cfg(&cfg, select_race_main, &s);
    }
    unsetenv("WEFT_TEST_SELECT_PAUSE_NS");
}

/* The biased lock (src/bias_lock.h, weft.h's channel section): a channel becomes its worker's
 * at the 1,024th acquisition in a row, the first acquisition from a plain thread takes it
 * back, and it is never biased again. Where the kernel lacks membarrier's command nothing is
 * ever biased. */
static bool bias_possible(void)
{
    if (getenv("WEFT_TEST_NO_MEMBARRIER")) /* the runtime's fallback (src/fence.c) */
        return false;
    /* As the runtime decides: the command offered, and the registration accepted. */
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0U, 0);
    return cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0U, 0) == 0;
}

static void *intruder(void *arg)
{
    long v = 99;
    *(int *)((void **)arg)[1] = weft_chan_try_send(((void **)arg)[0], &v);
    return NULL;
}

static void *bias_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 1);
    long v = 5;
    /* 1,024, or the test seam's threshold (src/runtime.c) where a run sets it. */
    const char *seam = getenv("WEFT_TEST_BIAS_AFTER");
    int after = seam ? atoi(seam) : 1024;
    /* after - 1 acquisitions: sends and receives in pairs, and a receive from the empty
     * channel (-EAGAIN: an acquisition all the same) if one is left over. */
    int n = 0;
    for (; n + 2 <= after - 1; n += 2) {
        cr_assert_eq(weft_chan_try_send(c, &v), 0);
        cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    }
    if (n < after - 1)
        cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
    cr_assert_null(weft__chan_bias_owner(c), "biased before its acquisition number %d", after);
    cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN); /* number `after` */
    if (!bias_possible() || after == 0) {
        cr_assert_null(weft__chan_bias_owner(c));
        weft_chan_release(c);
        return NULL;
    }
    cr_assert_not_null(weft__chan_bias_owner(c), "not biased after %d acquisitions", after);
    /* Biased: the owner's operations keep working. */
    cr_assert_eq(weft_chan_try_send(c, &v), 0);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 5);
    /* A plain thread's send revokes it, and its value is there. */
    int rc = 1;
    void *args[2] = {c, &rc};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, intruder, args), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(rc, 0);
    cr_assert_null(weft__chan_bias_owner(c), "still biased after a plain thread's send");
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 99);
    /* Shared for good. */
    for (int i = 0; i < 4096; i++)
        cr_assert_eq(i % 2 ? weft_chan_try_recv(c, &v) : weft_chan_try_send(c, &v), 0);
    cr_assert_null(weft__chan_bias_owner(c), "biased again after a revocation");
    weft_chan_release(c);
    return NULL;
}

Test(chan, a_channel_used_by_one_worker_is_biased_until_another_thread_uses_it)
{
    run_main(bias_main, NULL);
}

/* A contended bounded channel moves its values to a lock-free ring (src/chan.c, "Contended
 * channels") when its bias is given up: here with the ring full and a sender parked behind it,
 * when a plain thread's receive revokes the bias. Nothing is lost or reordered by the move,
 * the parked sender's value follows the buffered ones, and a close afterwards still hands the
 * buffered values out before -EPIPE. */
static void *sender_of_4(void *arg)
{
    long v = 4;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_FOREVER);
}

static void *plain_receiver(void *arg)
{
    void **a = arg;
    *(int *)a[1] = weft_chan_try_recv(a[0], (long *)a[2]);
    return NULL;
}

static void *move_main(void *arg)
{
    (void)arg;
    weft_chan *c = mkchan(sizeof(long), 4);
    long v = 0;
    for (int i = 0; i < 2048; i++) /* biased to this worker, where the kernel allows it */
        cr_assert_eq(i % 2 ? weft_chan_try_recv(c, &v) : weft_chan_try_send(c, &v), 0);
    for (v = 0; v < 4; v++)
        cr_assert_eq(weft_chan_try_send(c, &v), 0);
    weft_task *s;
    cr_assert_eq(weft_spawn(&s, sender_of_4, c, NULL), 0);
    wait_parked(s);
    /* The seam's threshold 0 means never biased: moved at once (TSan's case too). */
    bool biased = bias_possible() && !getenv("WEFT_TEST_BIAS_AFTER");
    if (biased)
        cr_assert_not(weft__chan_lock_free(c), "moved before any other thread used it");
    int rc = 1;
    long got = -1;
    void *args[3] = {c, &rc, &got};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, plain_receiver, args), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(rc, 0);
    cr_assert_eq(got, 0);
    if (biased) /* else the bias was never there to give up (see bias_possible) */
        cr_assert(weft__chan_lock_free(c), "not moved once its bias was given up");
    void *r;
    cr_assert_eq(weft_join(s, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0, "the parked send: %d", (int)(intptr_t)r);
    cr_assert_eq(weft_chan_len(c), 4);
    for (long want = 1; want <= 4; want++) {
        cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
        cr_assert_eq(v, want);
    }
    cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
    for (v = 10; v < 12; v++)
        cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_close(c), 0);
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_chan_try_send(c, &v), -EPIPE);
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 11);
    cr_assert_eq(weft_chan_recv(c, &v, WEFT_FOREVER), -EPIPE);
    cr_assert_eq(weft_chan_len(c), 0);
    weft_chan_release(c);
    return NULL;
}

Test(chan, a_contended_channel_moves_to_its_lock_free_ring_without_losing_order)
{
    run_main(move_main, NULL);
}

#ifdef WEFT_TESTING /* the hook is a seam of WEFT_TESTING builds */
/* The ring's windows forced (src/chan.h, weft__chan_lf_hook: a test stalls a plain thread's
 * lock-free call after its look at `state`, or between its claim and its stamp). */
struct stall {
    unsigned where; /* the windows (WEFT__LF_*) still to stall at, once each */
    sem_t reached, go;
};
static __thread struct stall *stall_mine;

static void stall_hook(int where)
{
    struct stall *s = stall_mine;
    if (!s || !(s->where & (unsigned)where))
        return;
    s->where &= ~(unsigned)where;
    sem_post(&s->reached);
    sem_wait(&s->go);
}

/* From a task: waits until the stalled thread has reached its window, without blocking the
 * worker (sleeps of 1 ms between looks: a bound, not a timing). */
static void stall_wait(struct stall *s)
{
    while (sem_trywait(&s->reached) != 0)
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
}

static void stall_init(struct stall *s, unsigned where)
{
    s->where = where;
    sem_init(&s->reached, 0, 0);
    sem_init(&s->go, 0, 0);
}

/* A channel of longs already on its ring (the runs below set the bias's threshold to 0: its
 * first acquisition by a task gives the bias up, and moves it). */
static weft_chan *ring_chan(size_t cap)
{
    weft_chan *c = mkchan(sizeof(long), cap);
    long v;
    cr_assert_eq(weft_chan_try_recv(c, &v), -EAGAIN);
    cr_assert(weft__chan_lock_free(c));
    return c;
}

/* Runs fn as the main task of `workers` workers, every bounded channel on its ring from its
 * first use and the hook set. stall_ms -1 when the hook stalls a worker on purpose. */
static void run_stalled(weft_fn fn, unsigned workers, int stall_ms)
{
    setenv("WEFT_TEST_BIAS_AFTER", "0", 1);
    weft__chan_lf_hook = stall_hook;
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = workers;
    if (stall_ms)
        cfg.stall_ms = stall_ms;
    run_main_cfg(&cfg, fn, NULL);
    weft__chan_lf_hook = NULL;
}

struct stalled_send {
    weft_chan *c;
    struct stall st;
    long v[2];
    int n;
};

static void *stalled_sender(void *arg)
{
    struct stalled_send *ss = arg;
    stall_mine = &ss->st;
    for (int i = 0; i < ss->n; i++)
        if (weft_chan_send(ss->c, &ss->v[i], WEFT_FOREVER) != 0)
            return (void *)1;
    return NULL;
}

static void *recv_long(void *arg)
{
    long v = -1;
    int r = weft_chan_recv(arg, &v, WEFT_FOREVER);
    return (void *)(intptr_t)(r == 0 ? v : -1000 + r);
}

/* One producer's values stay in its order: P's first value goes into the ring behind a
 * position still in flight (another producer's, claimed before a receiver parked); its
 * second, sent once `state` says a receiver waits, must not be handed to that receiver ahead
 * of the first. */
static void *reorder_main(void *arg)
{
    (void)arg;
    weft_chan *c = ring_chan(4);
    long v;
    struct stalled_send p1 = {.c = c, .v = {100}, .n = 1};
    struct stalled_send p = {.c = c, .v = {1, 2}, .n = 2};
    stall_init(&p1.st, WEFT__LF_AFTER_LOOK | WEFT__LF_BEFORE_STAMP);
    stall_init(&p.st, WEFT__LF_AFTER_LOOK);
    pthread_t t1, t;
    cr_assert_eq(pthread_create(&t1, NULL, stalled_sender, &p1), 0);
    stall_wait(&p1.st); /* P1 saw nobody waiting */
    cr_assert_eq(pthread_create(&t, NULL, stalled_sender, &p), 0);
    stall_wait(&p.st); /* so did P */
    weft_task *r = spawn_pinned(recv_long, c);
    wait_parked(r); /* the receiver parks on the empty ring */
    sem_post(&p1.st.go);
    stall_wait(&p1.st); /* P1 claimed position 0 and has not stamped it */
    sem_post(&p.st.go); /* P: 1 into position 1, then 2 with a receiver waiting */
    void *pr;
    cr_assert_eq(pthread_join(t, &pr), 0);
    cr_assert_null(pr);
    sem_post(&p1.st.go); /* P1 stamps 100 and settles */
    cr_assert_eq(pthread_join(t1, &pr), 0);
    cr_assert_null(pr);
    cr_assert_eq((intptr_t)join_result(r), 100, "the parked receiver got the ring's oldest");
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_chan_try_recv(c, &v), 0);
    cr_assert_eq(v, 2, "P's values out of its order");
    weft_chan_release(c);
    return NULL;
}

Test(chan, a_producers_values_keep_their_order_past_a_position_in_flight, .timeout = 60)
{
    run_stalled(reorder_main, 1, 0);
}

/* Waiting receivers are served first-in first-out on the ring too: R1 parks; a value is
 * claimed (in flight); R2 comes while it is, and must queue behind R1 (park), not take the
 * value when its producer stamps it. R2 runs on the other worker, so that a receive that
 * spins for the value instead of parking never lets wait_parked see it parked. */
static void *fifo_ring_main(void *arg)
{
    (void)arg;
    weft_chan *c = ring_chan(4);
    long v;
    struct stalled_send p1 = {.c = c, .v = {100}, .n = 1};
    stall_init(&p1.st, WEFT__LF_AFTER_LOOK | WEFT__LF_BEFORE_STAMP);
    pthread_t t1;
    cr_assert_eq(pthread_create(&t1, NULL, stalled_sender, &p1), 0);
    stall_wait(&p1.st); /* P1 saw nobody waiting */
    weft_task *r1 = spawn_pinned(recv_long, c);
    wait_parked(r1);
    sem_post(&p1.st.go);
    stall_wait(&p1.st); /* P1's value in flight */
    weft_task *r2;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_on(1, &r2, recv_long, c, &pin), 0);
    wait_parked(r2); /* behind R1 */
    sem_post(&p1.st.go);
    void *pr;
    cr_assert_eq(pthread_join(t1, &pr), 0);
    cr_assert_null(pr);
    cr_assert_eq((intptr_t)join_result(r1), 100, "the first receiver was passed over");
    v = 200;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)join_result(r2), 200);
    weft_chan_release(c);
    return NULL;
}

Test(chan, waiting_receivers_stay_fifo_on_the_ring_past_a_value_in_flight, .timeout = 60)
{
    run_stalled(fifo_ring_main, 2, 0);
}

/* A select that misses a ring's value (a lock-free receive took it between the select's look
 * and its pop) still tells the ring it waits before it parks: that miss's own settle put the
 * ring's `state` back to its queues, which the select had not joined yet, and the receive
 * that took the value may read `state` after that, see no one, and settle nothing. A value
 * sent lock-free afterwards must reach the select. S runs on worker 1, whose thread the hook
 * stalls with S's channel locked; P and C are plain threads. */
struct rearm {
    weft_chan *c;
    struct stall st;
};

static void *rearm_select(void *arg)
{
    struct rearm *ra = arg;
    stall_mine = &ra->st; /* this worker's thread: S is its only task */
    long v = -1;
    weft_case cs[1] = {{.op = WEFT_CASE_RECV, .chan = ra->c, .elem = &v}};
    int r = weft_select(cs, 1, weft_deadline_in(10 * WEFT_SEC));
    stall_mine = NULL;
    return (void *)(intptr_t)(r == 0 && cs[0].result == 0 ? v : -1000 + r);
}

static void *try_recv_stalled(void *arg)
{
    struct stalled_send *ss = arg; /* its c and st only */
    stall_mine = &ss->st;
    long v;
    int r = weft_chan_try_recv(ss->c, &v);
    return (void *)(intptr_t)(r == 0 ? v : -1000 + r);
}

static void *rearm_main(void *arg)
{
    (void)arg;
    weft_chan *c = ring_chan(1);
    long v;
    struct stalled_send p = {.c = c, .v = {1}, .n = 1}, cc = {.c = c};
    struct rearm ra = {.c = c};
    stall_init(&p.st, 0); /* P runs through */
    stall_init(&cc.st, WEFT__LF_AFTER_LOOK | WEFT__LF_BEFORE_RECHECK);
    stall_init(&ra.st, WEFT__LF_SELECT_EMPTY | WEFT__LF_SELECT_PICKED);
    pthread_t tp, tc;
    cr_assert_eq(pthread_create(&tc, NULL, try_recv_stalled, &cc), 0);
    stall_wait(&cc.st); /* C saw nobody waiting */
    weft_task *s;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_on(1, &s, rearm_select, &ra, &pin), 0);
    stall_wait(&ra.st); /* S's first look found nothing; it has not armed the ring */
    cr_assert_eq(pthread_create(&tp, NULL, stalled_sender, &p), 0);
    void *pr;
    cr_assert_eq(pthread_join(tp, &pr), 0); /* P pushed 1 and saw no one to settle for */
    cr_assert_null(pr);
    sem_post(&ra.st.go);
    stall_wait(&ra.st); /* S armed, looked again and chose the ring's value */
    sem_post(&cc.st.go);
    stall_wait(&cc.st);  /* C took it, and has not read `state` again */
    sem_post(&ra.st.go); /* S misses, looks again, and parks */
    wait_parked(s);
    sem_post(&cc.st.go); /* C reads `state` now */
    void *cr;
    cr_assert_eq(pthread_join(tc, &cr), 0);
    cr_assert_eq((intptr_t)cr, 1);
    v = 2;
    cr_assert_eq(weft_chan_send(c, &v, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)join_result(s), 2, "the select missed the value sent after it parked");
    weft_chan_release(c);
    return NULL;
}

Test(chan, a_select_that_misses_a_rings_value_still_waits_announced, .timeout = 60)
{
    run_stalled(rearm_main, 2, -1); /* the hook stalls worker 1 on purpose */
}
#endif

/* Selects and receives of plain threads and of tasks, each with a deadline of a few
 * microseconds, race each other on two channels: a thread's deadline (its futex timeout)
 * and a completion by a task, or a task's deadline and a completion by a thread, may land
 * together. Whoever wins, a value is received exactly once when its send or select reported
 * it sent, and never when it reported -ETIMEDOUT. */
struct deadline_race {
    weft_chan *a, *b;
    atomic_long sent, received;
    atomic_int done;
    weft_event thread_sent; /* the plain thread's sender is done */
};

static void *deadline_race_sender(void *arg)
{
    struct deadline_race *dr = arg;
    for (long i = 1; i <= 5000; i++) {
        long va = i, vb = -i;
        weft_case cs[2] = {{.op = WEFT_CASE_SEND, .chan = dr->a, .elem = &va},
                           {.op = WEFT_CASE_SEND, .chan = dr->b, .elem = &vb}};
        int r = i % 2 ? weft_select(cs, 2, weft_deadline_in((i % 7) * WEFT_USEC))
                      : weft_chan_send(dr->a, &va, weft_deadline_in((i % 5) * WEFT_USEC));
        if (r == -ETIMEDOUT)
            continue;
        cr_assert_geq(r, 0, "send: %d", r);
        cr_assert(i % 2 == 0 || cs[r].result == 0);
        atomic_fetch_add(&dr->sent, i % 2 && r == 1 ? vb : va);
    }
    return NULL;
}

static void *deadline_race_thread_sender(void *arg)
{
    struct deadline_race *dr = arg;
    deadline_race_sender(dr);
    weft_event_set(&dr->thread_sent);
    return NULL;
}

/* Until the senders are done; what it leaves in a buffer is drained after. */
static void *deadline_race_receiver(void *arg)
{
    struct deadline_race *dr = arg;
    long v;
    for (unsigned k = 1; !atomic_load(&dr->done); k++) {
        weft_case cs[2] = {{.op = WEFT_CASE_RECV, .chan = dr->a, .elem = &v},
                           {.op = WEFT_CASE_RECV, .chan = dr->b, .elem = &v}};
        int r = k % 2 ? weft_select(cs, 2, weft_deadline_in((k % 4) * 2 * WEFT_USEC))
                      : weft_chan_recv(dr->a, &v, weft_deadline_in((k % 3) * 2 * WEFT_USEC));
        if (r == -ETIMEDOUT)
            continue;
        cr_assert_geq(r, 0, "receive: %d", r);
        cr_assert(k % 2 == 0 || cs[r].result == 0);
        atomic_fetch_add(&dr->received, v);
    }
    return NULL;
}

static void *deadline_race_main(void *arg)
{
    (void)arg;
    for (size_t cap = 0; cap < 2; cap++) {
        struct deadline_race dr = {.thread_sent = WEFT_EVENT_INIT};
        dr.a = mkchan(sizeof(long), cap);
        dr.b = mkchan(sizeof(long), cap);
        pthread_t th[2];
        weft_task *t[4];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, deadline_race_receiver, &dr), 0);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(
                weft_spawn(&t[i], i < 2 ? deadline_race_sender : deadline_race_receiver, &dr, NULL),
                0);
        /* Two senders, and on a plain thread a sender too: threads complete tasks' waits. */
        pthread_t sth;
        cr_assert_eq(pthread_create(&sth, NULL, deadline_race_thread_sender, &dr), 0);
        cr_assert_eq(weft_event_wait(&dr.thread_sent, WEFT_FOREVER), 0);
        cr_assert_eq(pthread_join(sth, NULL), 0);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
        atomic_store(&dr.done, 1);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_join(th[i], NULL), 0);
        for (int i = 2; i < 4; i++)
            cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
        long v;
        while (weft_chan_try_recv(dr.a, &v) == 0 || weft_chan_try_recv(dr.b, &v) == 0)
            atomic_fetch_add(&dr.received, v);
        cr_assert_eq(atomic_load(&dr.received), atomic_load(&dr.sent),
                     "cap %zu: %ld sent, %ld received", cap, atomic_load(&dr.sent),
                     atomic_load(&dr.received));
        weft_chan_release(dr.a);
        weft_chan_release(dr.b);
    }
    return NULL;
}

Test(chan, selects_of_threads_and_tasks_racing_deadlines_lose_and_double_nothing, .timeout = 60)
{
    SKIP_UNDER_VALGRIND();
    run_main(deadline_race_main, NULL);
}

/* ---- Go's runtime/chan_test.go and test/chan programs the other suites do not port --------- */

/* TestNonblockSelectRace (and Race2, with a close): c1 holds a value, c2 gets one (or is
 * closed) while a task selects on both with a default, and the main task takes c1's value
 * with a select of its own. At every moment one of the two is ready, so the default must
 * never be taken: a select that looked at c1 and c2 at different times would see neither. */
typedef struct nonblock_race {
    weft_chan *c1, *c2, *done;
} nonblock_race;

static void *nonblock_race_selector(void *arg)
{
    nonblock_race *x = arg;
    long v;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = x->c1, .elem = &v},
                      {.op = WEFT_CASE_RECV, .chan = x->c2, .elem = &v},
                      {.op = WEFT_CASE_DEFAULT}};
    int chose_default = weft_select(cs, 3, WEFT_FOREVER) == 2;
    cr_assert_eq(weft_chan_send(x->done, &chose_default, WEFT_FOREVER), 0);
    return NULL;
}

static void *nonblock_select_race_main(void *arg)
{
    bool with_close = arg != NULL;
    weft_chan *done = mkchan(sizeof(int), 1);
    for (int i = 0; i < 2000; i++) {
        nonblock_race x = {mkchan(sizeof(long), 1), mkchan(sizeof(long), 1), done};
        long one = 1;
        cr_assert_eq(weft_chan_send(x.c1, &one, WEFT_FOREVER), 0);
        weft_task *t;
        cr_assert_eq(weft_spawn(&t, nonblock_race_selector, &x, NULL), 0);
        if (with_close)
            cr_assert_eq(weft_chan_close(x.c2), 0);
        else
            cr_assert_eq(weft_chan_send(x.c2, &one, WEFT_FOREVER), 0);
        long v;
        weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = x.c1, .elem = &v},
                          {.op = WEFT_CASE_DEFAULT}};
        cr_assert_geq(weft_select(cs, 2, WEFT_FOREVER), 0);
        int chose_default;
        cr_assert_eq(weft_chan_recv(done, &chose_default, WEFT_FOREVER), 0);
        cr_assert_eq(chose_default, 0, "iteration %d: the select saw no channel ready", i);
        cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
        weft_chan_release(x.c1);
        weft_chan_release(x.c2);
    }
    weft_chan_release(done);
    return NULL;
}

Test(chan, go_nonblock_select_race_never_takes_the_default, .timeout = 60)
{
    run_main(nonblock_select_race_main, NULL);
    run_main(nonblock_select_race_main, (void *)1);
}

/* TestSelectDuplicateChannel: A selects on c twice and on d; B waits on c behind it. A value
 * on d ends A's select, which must withdraw both its nodes from c's queue, so that a send on
 * c then reaches B (it once woke A's stale node, or corrupted the queue). */
typedef struct dup_chan {
    weft_chan *c, *d, *e;
} dup_chan;

static void *dup_chan_a(void *arg)
{
    dup_chan *x = arg;
    long v = 0;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = x->c, .elem = &v},
                      {.op = WEFT_CASE_RECV, .chan = x->c, .elem = &v},
                      {.op = WEFT_CASE_RECV, .chan = x->d, .elem = &v}};
    cr_assert_eq(weft_select(cs, 3, WEFT_FOREVER), 2);
    cr_assert_eq(v, 7);
    v = 9;
    cr_assert_eq(weft_chan_send(x->e, &v, WEFT_FOREVER), 0);
    return NULL;
}

static void *dup_chan_b(void *arg)
{
    dup_chan *x = arg;
    long v = 0;
    cr_assert_eq(weft_chan_recv(x->c, &v, WEFT_FOREVER), 0);
    return (void *)(intptr_t)v;
}

static void *select_duplicate_channel_main(void *arg)
{
    (void)arg;
    dup_chan x = {mkchan(sizeof(long), 0), mkchan(sizeof(long), 0), mkchan(sizeof(long), 0)};
    weft_task *a = spawn_pinned(dup_chan_a, &x);
    wait_parked(a); /* queued first on c */
    weft_task *b = spawn_pinned(dup_chan_b, &x);
    wait_parked(b);
    long v = 7;
    cr_assert_eq(weft_chan_send(x.d, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_recv(x.e, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 9);
    v = 8;
    cr_assert_eq(weft_chan_send(x.c, &v, weft_deadline_in(10 * WEFT_SEC)), 0, "B gets c's value");
    cr_assert_eq(join_result(b), (void *)8);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    weft_chan_release(x.c);
    weft_chan_release(x.d);
    weft_chan_release(x.e);
    return NULL;
}

Test(chan, go_select_duplicate_channel)
{
    run_main(select_duplicate_channel_main, NULL);
}

/* test/chan/select6.go (Go issue 2075): a select that fails on c1 while another receiver
 * waits there must leave c1's queue whole: two sends on c1 then reach both receivers. */
typedef struct issue2075 {
    weft_chan *c1, *c2, *c3;
} issue2075;

static void *issue2075_plain(void *arg)
{
    issue2075 *x = arg;
    long v;
    cr_assert_eq(weft_chan_recv(x->c1, &v, WEFT_FOREVER), 0);
    return NULL;
}

static void *issue2075_select(void *arg)
{
    issue2075 *x = arg;
    long v;
    weft_case cs[] = {{.op = WEFT_CASE_RECV, .chan = x->c1, .elem = &v},
                      {.op = WEFT_CASE_RECV, .chan = x->c2, .elem = &v}};
    cr_assert_eq(weft_select(cs, 2, WEFT_FOREVER), 1, "c2's value ends the select");
    cr_assert_eq(weft_chan_send(x->c3, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_recv(x->c1, &v, WEFT_FOREVER), 0);
    return NULL;
}

static void *issue2075_main(void *arg)
{
    (void)arg;
    issue2075 x = {mkchan(sizeof(long), 0), mkchan(sizeof(long), 0), mkchan(sizeof(long), 0)};
    weft_task *p = spawn_pinned(issue2075_plain, &x);
    wait_parked(p);
    weft_task *s = spawn_pinned(issue2075_select, &x);
    wait_parked(s);
    long v = 1;
    cr_assert_eq(weft_chan_send(x.c2, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_recv(x.c3, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_send(x.c1, &v, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_chan_send(x.c1, &v, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_join(p, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(s, NULL, WEFT_FOREVER), 0);
    weft_chan_release(x.c1);
    weft_chan_release(x.c2);
    weft_chan_release(x.c3);
    return NULL;
}

Test(chan, go_select6_a_failed_select_leaves_the_queue_whole)
{
    run_main(issue2075_main, NULL);
}

/* test/chan/doubleselect.go: a sender selects over four unbuffered channels, each forwarded
 * by its own task into one channel; the receiver must see every value exactly once (two
 * cases of one select completing would send a value twice). */
enum { DS_VALUES = 20000 };

typedef struct doubleselect {
    weft_chan *c[4], *mux, *done;
} doubleselect;

static void *ds_sender(void *arg)
{
    doubleselect *x = arg;
    for (long i = 0; i < DS_VALUES; i++) {
        weft_case cs[4];
        for (int k = 0; k < 4; k++)
            cs[k] = (weft_case){.op = WEFT_CASE_SEND, .chan = x->c[k], .elem = &i};
        int r = weft_select(cs, 4, WEFT_FOREVER);
        cr_assert(r >= 0 && r < 4 && cs[r].result == 0);
    }
    for (int k = 0; k < 4; k++)
        weft_chan_close(x->c[k]);
    return NULL;
}

static void *ds_forward(void *arg)
{
    doubleselect *x = ((void **)arg)[0];
    weft_chan *in = ((void **)arg)[1];
    long v;
    while (weft_chan_recv(in, &v, WEFT_FOREVER) == 0)
        cr_assert_eq(weft_chan_send(x->mux, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_send(x->done, NULL, WEFT_FOREVER), 0);
    return NULL;
}

static void *ds_closer(void *arg)
{
    doubleselect *x = arg;
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_chan_recv(x->done, NULL, WEFT_FOREVER), 0);
    weft_chan_close(x->mux);
    return NULL;
}

static void *doubleselect_main(void *arg)
{
    (void)arg;
    doubleselect x = {.mux = mkchan(sizeof(long), 0), .done = mkchan(0, 0)};
    void *fargs[4][2];
    weft_task *t[6];
    for (int k = 0; k < 4; k++) {
        x.c[k] = mkchan(sizeof(long), 0);
        fargs[k][0] = &x;
        fargs[k][1] = x.c[k];
    }
    cr_assert_eq(weft_spawn(&t[0], ds_sender, &x, NULL), 0);
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_spawn(&t[1 + k], ds_forward, fargs[k], NULL), 0);
    cr_assert_eq(weft_spawn(&t[5], ds_closer, &x, NULL), 0);
    char *seen = calloc(DS_VALUES, 1);
    cr_assert_not_null(seen);
    long v, n = 0;
    while (weft_chan_recv(x.mux, &v, WEFT_FOREVER) == 0) {
        cr_assert(v >= 0 && v < DS_VALUES && !seen[v], "value %ld received twice", v);
        seen[v] = 1;
        n++;
    }
    cr_assert_eq(n, DS_VALUES);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    free(seen);
    for (int k = 0; k < 4; k++)
        weft_chan_release(x.c[k]);
    weft_chan_release(x.mux);
    weft_chan_release(x.done);
    return NULL;
}

Test(chan, go_doubleselect_no_value_twice, .timeout = 60)
{
    run_main(doubleselect_main, NULL);
}

/* TestMultiConsumer: 23 workers take values from one buffered channel (yielding now and then
 * to stir the order) and pass them on to another; the consumer sees every value once. */
enum { MC_WORKERS = 23, MC_VALUES = 50000 };
static const long mc_primes[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};

typedef struct multi_consumer {
    weft_chan *q, *r;
    weft_waitgroup wg;
    long expect;
} multi_consumer;

typedef struct mc_worker_arg {
    multi_consumer *x;
    int index;
} mc_worker_arg;

static void *mc_worker(void *arg)
{
    mc_worker_arg *a = arg;
    long v;
    while (weft_chan_recv(a->x->q, &v, WEFT_FOREVER) == 0) {
        if (mc_primes[a->index % 10] == v)
            weft_yield();
        cr_assert_eq(weft_chan_send(a->x->r, &v, WEFT_FOREVER), 0);
    }
    weft_waitgroup_done(&a->x->wg);
    return NULL;
}

static void *mc_feeder(void *arg)
{
    multi_consumer *x = arg;
    for (int i = 0; i < MC_VALUES; i++) {
        long v = mc_primes[i % 10];
        x->expect += v;
        cr_assert_eq(weft_chan_send(x->q, &v, WEFT_FOREVER), 0);
    }
    weft_chan_close(x->q);
    cr_assert_eq(weft_waitgroup_wait(&x->wg, WEFT_FOREVER), 0);
    weft_chan_close(x->r);
    return NULL;
}

static void *multi_consumer_main(void *arg)
{
    (void)arg;
    multi_consumer x = {mkchan(sizeof(long), MC_WORKERS * 3), mkchan(sizeof(long), MC_WORKERS * 3),
                        WEFT_WAITGROUP_INIT, 0};
    mc_worker_arg args[MC_WORKERS];
    weft_task *t[MC_WORKERS + 1];
    cr_assert_eq(weft_waitgroup_add(&x.wg, MC_WORKERS), 0);
    for (int i = 0; i < MC_WORKERS; i++) {
        args[i] = (mc_worker_arg){&x, i};
        cr_assert_eq(weft_spawn(&t[i], mc_worker, &args[i], NULL), 0);
    }
    cr_assert_eq(weft_spawn(&t[MC_WORKERS], mc_feeder, &x, NULL), 0);
    long v, n = 0, sum = 0;
    while (weft_chan_recv(x.r, &v, WEFT_FOREVER) == 0) {
        n++;
        sum += v;
    }
    for (int i = 0; i <= MC_WORKERS; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    cr_assert_eq(n, MC_VALUES);
    cr_assert_eq(sum, x.expect);
    weft_chan_release(x.q);
    weft_chan_release(x.r);
    return NULL;
}

Test(chan, go_multi_consumer, .timeout = 60)
{
    run_main(multi_consumer_main, NULL);
}

/* test/chan/select5.go, generated there, enumerated here: a send or a receive, as a plain
 * call, a select of one case, a select beside a nil channel's case, a select with a default,
 * or a try_ call; on a nil channel, one made ready by a parked partner or by its buffer, one
 * whose partner comes only once the caller waits, a closed one, and one nobody ever serves
 * (a short deadline); at capacities 0, 1 and 2. Each outcome is the one Go's rules give,
 * with -EPIPE for Go's panic on a closed channel and -EINVAL for a plain call on a nil one.
 * Partners are pinned to the caller's worker, so that "comes once the caller waits" holds
 * in every mode. */
enum { S5_NIL, S5_PARTNER_PARKED, S5_BUFFER_READY, S5_PARTNER_LATER, S5_CLOSED, S5_NEVER };
enum { S5_PLAIN, S5_SELECT1, S5_SELECT_NIL, S5_SELECT_DEFAULT, S5_TRY };

typedef struct s5_partner {
    weft_chan *c;
    bool is_send;
    long v;
} s5_partner;

static void *s5_partner_fn(void *arg)
{
    s5_partner *p = arg;
    int r = p->is_send ? weft_chan_send(p->c, &p->v, WEFT_FOREVER)
                       : weft_chan_recv(p->c, &p->v, WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

/* One combination; returns what the operation gave (a select's case result, -EAGAIN for
 * its default, -ETIMEDOUT) and the value received (*got). */
static int s5_run(size_t cap, bool is_send, int state, int form, long *got)
{
    weft_chan *c = state == S5_NIL ? NULL : mkchan(sizeof(long), cap);
    s5_partner p = {c, !is_send, 77};
    weft_task *t = NULL;
    long fill = 1;
    if (state == S5_BUFFER_READY && !is_send)
        cr_assert_eq(weft_chan_send(c, &(long){77}, 0), 0);
    /* A receive is served by a parked sender only once the buffer is full; a send waits (for
     * a partner that comes later, or for ever) only once it is full too. */
    if ((state == S5_PARTNER_PARKED && !is_send) ||
        ((state == S5_PARTNER_LATER || state == S5_NEVER) && is_send))
        for (size_t i = 0; i < cap; i++)
            cr_assert_eq(weft_chan_send(c, state == S5_PARTNER_PARKED ? &(long){77} : &fill, 0), 0);
    if (state == S5_PARTNER_PARKED || state == S5_PARTNER_LATER)
        t = spawn_pinned(s5_partner_fn, &p);
    if (state == S5_PARTNER_PARKED)
        wait_parked(t);
    if (state == S5_CLOSED)
        cr_assert_eq(weft_chan_close(c), 0);

    long v = is_send ? 55 : -1;
    int64_t deadline =
        state == S5_NEVER || state == S5_NIL ? weft_deadline_in(WEFT_MSEC) : WEFT_FOREVER;
    int op = is_send ? WEFT_CASE_SEND : WEFT_CASE_RECV;
    weft_case cs[2];
    int r;
    switch (form) {
    case S5_PLAIN:
        r = is_send ? weft_chan_send(c, &v, deadline) : weft_chan_recv(c, &v, deadline);
        break;
    case S5_SELECT1:
        cs[0] = (weft_case){.op = op, .chan = c, .elem = &v};
        r = weft_select(cs, 1, deadline);
        if (r == 0)
            r = cs[0].result;
        break;
    case S5_SELECT_NIL:
        cs[0] = (weft_case){.op = WEFT_CASE_RECV, .chan = NULL, .elem = &v};
        cs[1] = (weft_case){.op = op, .chan = c, .elem = &v};
        r = weft_select(cs, 2, deadline);
        cr_assert(r != 0, "a nil channel's case was chosen");
        if (r == 1)
            r = cs[1].result;
        break;
    case S5_SELECT_DEFAULT:
        cs[0] = (weft_case){.op = op, .chan = c, .elem = &v};
        cs[1] = (weft_case){.op = WEFT_CASE_DEFAULT};
        r = weft_select(cs, 2, deadline);
        r = r == 0 ? cs[0].result : r == 1 ? -EAGAIN : r;
        break;
    default:
        r = is_send ? weft_chan_try_send(c, &v) : weft_chan_try_recv(c, &v);
        break;
    }
    *got = v;
    if (c)
        weft_chan_close(c); /* ends a partner that was never served */
    if (t) {
        intptr_t pr = (intptr_t)join_result(t);
        if (r == 0 && is_send && state != S5_BUFFER_READY) {
            /* A partner that came later to a full buffer took its oldest value. */
            cr_assert_eq(pr, 0, "the partner received");
            cr_assert_eq(p.v, state == S5_PARTNER_LATER && cap > 0 ? fill : 55);
        }
    }
    if (c)
        weft_chan_release(c);
    return r;
}

static void *select5_main(void *arg)
{
    (void)arg;
    for (size_t cap = 0; cap <= 2; cap++)
        for (int is_send = 0; is_send < 2; is_send++)
            for (int state = S5_NIL; state <= S5_NEVER; state++)
                for (int form = S5_PLAIN; form <= S5_TRY; form++) {
                    if (state == S5_BUFFER_READY && cap == 0)
                        continue; /* a rendezvous has no buffer */
                    bool nonblocking = form == S5_SELECT_DEFAULT || form == S5_TRY;
                    int expect;
                    if (state == S5_NIL && (form == S5_PLAIN || form == S5_TRY))
                        expect = -EINVAL;
                    else if (state == S5_CLOSED)
                        expect = -EPIPE;
                    else if (state == S5_PARTNER_PARKED || state == S5_BUFFER_READY)
                        expect = 0;
                    else if (nonblocking)
                        expect = -EAGAIN;
                    else if (state == S5_PARTNER_LATER)
                        expect = 0;
                    else
                        expect = -ETIMEDOUT;
                    long got;
                    int r = s5_run(cap, is_send, state, form, &got);
                    cr_assert_eq(r, expect, "cap %zu, %s, state %d, form %d: %d, not %d", cap,
                                 is_send ? "send" : "receive", state, form, r, expect);
                    if (r == 0 && !is_send)
                        cr_assert_eq(got, 77, "cap %zu, state %d, form %d: received %ld", cap,
                                     state, form, got);
                }
    return NULL;
}

Test(chan, go_select5_every_case_kind_and_channel_state, .timeout = 60)
{
    run_main(select5_main, NULL);
}
