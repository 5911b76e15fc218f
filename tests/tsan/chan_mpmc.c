/* A black-box stress test of buffered channels shared by the tasks of two workers and by plain
 * threads, through the public API only: whatever the channel does inside (a lock, a lock-free
 * ring), no value may be lost, taken twice or overtaken by a later one of the same producer,
 * and a close must take effect as weft.h says. Each round has 4 producers and 4 consumers
 * (3 tasks spread over both workers and 1 plain thread each) on a channel of capacity 1, 2,
 * 3, 64 or 1024 and values of 8, 24 or 0 bytes. A value is (producer, sequence number); the
 * checks, at each receive and at the round's end:
 * - every value whose send returned 0 is received exactly once (a bitmap of atomic
 *   exchanges; for 0-byte values, which carry nothing, the counts), and no other: a send or
 *   receive that failed (-EPIPE, -ETIMEDOUT, -EAGAIN, -ECANCELED) moved nothing;
 * - one consumer sees each producer's sequence numbers of one channel strictly increasing
 *   (the FIFO order, as one observer can see it); a 24-byte value arrives whole, and a
 *   receive writes nothing past the value, nor anything at all when it fails.
 * The scenarios:
 * - once: blocking sends and receives;
 * - close: a close at a random point while producers send until -EPIPE. A close returns 0
 *   once, then -EPIPE; a send begun after it returned fails with -EPIPE; once a receive has
 *   returned -EPIPE the channel stays empty: no later receive gets a value;
 * - select: consumers select over two channels (waiting, with a short deadline, or with a
 *   default case), producers send plainly or select between the two channels;
 * - deadline: try_send/try_recv and calls with short deadlines, retried;
 * - cancel: tasks parked in sends and receives cancelled at random moments and replaced;
 *   a cancelled call moved nothing, and the replacement of a producer resends its value;
 * - fullempty: capacities 1 and 2 with the producers, then the consumers, slowed by yields,
 *   so that both sides park and wake all the time; a send never completes while more than
 *   `cap` values are in flight (sends done <= receives begun + cap).
 * Each runs with 2 workers, sharded then stealing. Nothing here depends on timing: the
 * deadlines only vary the paths. A round that never ends fails the run with the state of
 * the round and a task dump. Prints one line per scenario and mode, exits non-zero on any
 * failure. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

/* Values per producer and round: TSan's channel operations are about ten times slower. */
#if defined(__SANITIZE_THREAD__)
enum { PER = 300 };
#else
enum { PER = 1000 };
#endif
/* Lanes 0 .. NTASKS - 1 of each side are tasks, the last one a plain thread. */
enum { NPROD = 4, NCONS = 4, NTASKS = 3, HANG_S = 120 };
#define MAGIC    0x9e3779b97f4a7c15ull
#define SENTINEL 0xa5a5a5a5a5a5a5a5ull

enum { S_ONCE, S_CLOSE, S_SELECT, S_DEADLINE, S_CANCEL, S_FULLEMPTY, NSCEN };
static const char *const scen_names[NSCEN] = {"once",     "close",  "select",
                                              "deadline", "cancel", "fullempty"};
static const size_t caps[] = {1, 2, 3, 64, 1024};
static const size_t elems[] = {8, 24, 0};

struct run;

typedef struct lane {
    struct run *r;
    int id;
    bool thread; /* a plain thread, not a task */
    weft_fn fn;
    uint64_t rng;        /* owner: the lane's task or thread (then the main task, after a join) */
    long next;           /* producer: the next sequence number to send; owner as rng */
    long last[2][NPROD]; /* consumer: the last sequence number per channel and producer */
    weft_task *task;
    pthread_t th;
    _Atomic bool done; /* a thread lane's function has returned (the main task polls it) */
} lane;

typedef struct run {
    int scen, index;
    const char *mode;
    size_t elem, cap;
    weft_chan *c[2]; /* c[1]: the select scenario's second channel */
    long per;
    int skew; /* fullempty: 1 slows the producers, 2 the consumers */
    lane prod[NPROD], cons[NCONS];
    _Atomic unsigned char *seen; /* NPROD * per, by value */
    _Atomic long ok[NPROD];      /* sends that returned 0, per producer */
    _Atomic long nrecv;          /* receives that returned 0 */
    _Atomic long sent_done;      /* fullempty: sends that returned 0 */
    _Atomic long recv_begun;     /* fullempty: receives begun */
    _Atomic int nprod_done;      /* producers that sent all their values */
    _Atomic bool closing;        /* the close is about to be called */
    _Atomic bool closed;         /* the close (of every channel) has returned */
    _Atomic bool eof;            /* a receive on c[0] has returned -EPIPE */
} run;

static _Atomic long progress; /* rounds finished, for the watchdog */
static run *_Atomic current;

static uint64_t rnd(lane *l)
{
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

static void pause_lane(lane *l)
{
    if (l->thread)
        sched_yield();
    else
        weft_yield(); /* -ECANCELED once cancelled: the next channel call says so too */
}

static void put(uint64_t *buf, int p, long seq)
{
    uint64_t v = (uint64_t)p << 32 | (uint64_t)seq;
    buf[0] = v;
    buf[1] = v ^ MAGIC;
    buf[2] = ~v;
}

static void fill(uint64_t *buf)
{
    buf[0] = buf[1] = buf[2] = SENTINEL;
}

/* The bytes from `from` on are still the sentinel's. */
static bool untouched(const uint64_t *buf, size_t from)
{
    const unsigned char *b = (const unsigned char *)buf;
    for (size_t i = from; i < 3 * sizeof(uint64_t); i++)
        if (b[i] != 0xa5)
            return false;
    return true;
}

/* The element pointer for a channel of 0-byte values may be NULL: half the calls pass it. */
static void *elem_ptr(lane *l, uint64_t *buf)
{
    return l->r->elem == 0 && (rnd(l) & 1) ? NULL : buf;
}

/* A value received on channel `ch`. */
static void take(lane *l, int ch, const uint64_t *buf)
{
    run *r = l->r;
    atomic_fetch_add(&r->nrecv, 1);
    size_t n = weft_chan_len(r->c[ch]), cap = weft_chan_cap(r->c[ch]);
    CHECK(n <= cap, "%s round %d: %zu values buffered in a channel of %zu", scen_names[r->scen],
          r->index, n, cap);
    CHECK(untouched(buf, r->elem), "%s round %d: a receive wrote past its %zu-byte value",
          scen_names[r->scen], r->index, r->elem);
    if (r->elem == 0)
        return;
    uint64_t v = buf[0];
    CHECK(r->elem != 24 || (buf[1] == (v ^ MAGIC) && buf[2] == ~v),
          "%s round %d: a torn value %016llx %016llx %016llx", scen_names[r->scen], r->index,
          (unsigned long long)v, (unsigned long long)buf[1], (unsigned long long)buf[2]);
    uint64_t p = v >> 32, seq = v & 0xffffffffu;
    if (p >= NPROD || seq >= (uint64_t)r->per) {
        CHECK(false, "%s round %d: received %016llx, never sent", scen_names[r->scen], r->index,
              (unsigned long long)v);
        return;
    }
    CHECK(!atomic_exchange(&r->seen[p * (uint64_t)r->per + seq], 1),
          "%s round %d: value %llu of producer %llu received twice", scen_names[r->scen], r->index,
          (unsigned long long)seq, (unsigned long long)p);
    CHECK((long)seq > l->last[ch][p],
          "%s round %d: consumer %d got value %llu of producer %llu after value %ld (channel %d)",
          scen_names[r->scen], r->index, l->id, (unsigned long long)seq, (unsigned long long)p,
          l->last[ch][p], ch);
    l->last[ch][p] = (long)seq;
}

/* ---- producers ---- */

/* One send by the scenario's means; retries what may be retried (a timeout, a full channel,
 * a default case) and returns 0, -EPIPE or -ECANCELED. A failed attempt sent nothing: a
 * value it delivered shows as a duplicate, once the retry delivers it again. */
static int send_one(lane *l, uint64_t *buf, long seq)
{
    run *r = l->r;
    for (;;) {
        void *e = elem_ptr(l, buf);
        int how = (int)(rnd(l) % 4), res;
        switch (r->scen) {
        case S_SELECT:
            if (how == 0)
                return weft_chan_send(r->c[seq & 1], e, WEFT_FOREVER);
            else {
                weft_case cs[3] = {{.op = WEFT_CASE_SEND, .chan = r->c[0], .elem = e},
                                   {.op = WEFT_CASE_SEND, .chan = r->c[1], .elem = e},
                                   {.op = WEFT_CASE_DEFAULT}};
                if (how == 3) /* one channel, with a deadline */
                    cs[seq & 1].chan = NULL;
                int64_t dl =
                    how == 3 ? weft_deadline_in((int64_t)(rnd(l) % 30) * WEFT_USEC) : WEFT_FOREVER;
                res = weft_select(cs, how == 2 ? 3 : 2, dl);
                if (res == -ETIMEDOUT || res == 2)
                    break;
                CHECK(res == 0 || res == 1, "select round %d: select-send %d", r->index, res);
                if (res < 0)
                    return res;
                return cs[res].result;
            }
        case S_DEADLINE:
            if (how == 0)
                res = weft_chan_try_send(r->c[0], e);
            else if (how == 3)
                res = weft_chan_send(r->c[0], e, WEFT_FOREVER);
            else
                res =
                    weft_chan_send(r->c[0], e,
                                   how == 1 ? weft_deadline_in(0)
                                            : weft_deadline_in((int64_t)(rnd(l) % 40) * WEFT_USEC));
            if (res != -EAGAIN && res != -ETIMEDOUT)
                return res;
            CHECK(how == 0 ? res == -EAGAIN : res == -ETIMEDOUT,
                  "deadline round %d: a %s returned %d", r->index, how ? "send" : "try_send", res);
            break;
        case S_CLOSE:
            if (how == 0) {
                res = weft_chan_try_send(r->c[0], e);
                if (res != -EAGAIN)
                    return res;
                break;
            }
            return weft_chan_send(r->c[0], e, WEFT_FOREVER);
        default:
            return weft_chan_send(r->c[0], e, WEFT_FOREVER);
        }
        pause_lane(l);
    }
}

static void *producer(void *arg)
{
    lane *l = arg;
    run *r = l->r;
    for (; l->next < r->per; l->next++) {
        uint64_t buf[3];
        put(buf, l->id, l->next);
        bool was_closed = atomic_load(&r->closed);
        int e = send_one(l, buf, l->next);
        CHECK(!was_closed || e == -EPIPE, "%s round %d: a send after the close returned %d",
              scen_names[r->scen], r->index, e);
        if (e == -EPIPE && r->scen == S_CLOSE)
            return NULL;
        if (e == -ECANCELED && r->scen == S_CANCEL)
            return NULL; /* l->next: the value its replacement sends again */
        CHECK(e == 0, "%s round %d: producer %d: send %ld: %s", scen_names[r->scen], r->index,
              l->id, l->next, weft_strerror(e));
        if (e != 0)
            return NULL;
        atomic_fetch_add(&r->ok[l->id], 1);
        if (r->scen == S_FULLEMPTY) {
            long s = atomic_fetch_add(&r->sent_done, 1) + 1;
            long b = atomic_load(&r->recv_begun);
            CHECK(s <= b + (long)r->cap,
                  "fullempty round %d: %ld sends done, %ld receives begun, capacity %zu", r->index,
                  s, b, r->cap);
        }
        if (r->skew == 1 || rnd(l) % 16 == 0)
            pause_lane(l);
    }
    atomic_fetch_add(&r->nprod_done, 1);
    return NULL;
}

/* ---- consumers ---- */

/* After a receive on c[ch] returned -EPIPE: the channel is closed and empty for good. */
static void check_eof(lane *l, int ch)
{
    run *r = l->r;
    uint64_t buf[3];
    fill(buf);
    CHECK(atomic_load(&r->closing), "%s round %d: -EPIPE before the close", scen_names[r->scen],
          r->index);
    if (ch == 0)
        atomic_store(&r->eof, true);
    size_t n = weft_chan_len(r->c[ch]);
    CHECK(n == 0, "%s round %d: %zu values left after a receive's -EPIPE", scen_names[r->scen],
          r->index, n);
    int e = weft_chan_try_recv(r->c[ch], buf);
    CHECK(e == -EPIPE, "%s round %d: try_recv after -EPIPE: %d", scen_names[r->scen], r->index, e);
    if (r->scen != S_SELECT) { /* blocks for ever if the channel broke: the watchdog says so */
        int e2 = weft_chan_recv(r->c[ch], buf, WEFT_FOREVER);
        CHECK(e2 == -EPIPE, "%s round %d: recv after -EPIPE: %d", scen_names[r->scen], r->index,
              e2);
    }
    CHECK(untouched(buf, 0), "%s round %d: a receive after -EPIPE wrote a value",
          scen_names[r->scen], r->index);
}

/* One receive by the scenario's means into buf: returns 0 or -EPIPE with *ch the channel,
 * -EAGAIN for a receive that found nothing (try, deadline, default), -ECANCELED. */
static int recv_one(lane *l, uint64_t *buf, unsigned open, int *ch)
{
    run *r = l->r;
    int how = (int)(rnd(l) % 4), res;
    *ch = 0;
    switch (r->scen) {
    case S_SELECT: {
        uint64_t other[3];
        fill(other);
        int pick = (int)(rnd(l) & 1); /* which case gets `buf`: both get their own */
        weft_case cs[3] = {
            {.op = WEFT_CASE_RECV, .chan = open & 1 ? r->c[0] : NULL},
            {.op = WEFT_CASE_RECV, .chan = open & 2 ? r->c[1] : NULL},
            {.op = WEFT_CASE_DEFAULT},
        };
        cs[pick].elem = elem_ptr(l, buf);
        cs[!pick].elem = elem_ptr(l, other);
        int64_t dl = how == 1 ? weft_deadline_in((int64_t)(rnd(l) % 30) * WEFT_USEC) : WEFT_FOREVER;
        res = weft_select(cs, how == 2 ? 3 : 2, dl);
        if (res == -ETIMEDOUT || res == 2) {
            CHECK(res == 2 || how == 1, "select round %d: -ETIMEDOUT without a deadline", r->index);
            CHECK(untouched(buf, 0) && untouched(other, 0),
                  "select round %d: a select that took nothing wrote a value", r->index);
            return -EAGAIN;
        }
        if (res == -ECANCELED)
            return res;
        CHECK(res == 0 || res == 1, "select round %d: select %d", r->index, res);
        if (res < 0)
            return res;
        *ch = res;
        CHECK(untouched(res == pick ? other : buf, 0),
              "select round %d: the case not taken wrote a value", r->index);
        if (res != pick)
            memcpy(buf, other, sizeof other);
        return cs[res].result;
    }
    case S_DEADLINE:
        if (how == 0) {
            res = weft_chan_try_recv(r->c[0], elem_ptr(l, buf));
            CHECK(res != -ETIMEDOUT, "deadline round %d: try_recv -ETIMEDOUT", r->index);
        } else if (how == 3) {
            res = weft_chan_recv(r->c[0], elem_ptr(l, buf), WEFT_FOREVER);
        } else {
            int64_t dl = how == 1 ? weft_deadline_in(0)
                                  : weft_deadline_in((int64_t)(rnd(l) % 40) * WEFT_USEC);
            res = weft_chan_recv(r->c[0], elem_ptr(l, buf), dl);
            CHECK(res != -EAGAIN, "deadline round %d: recv -EAGAIN", r->index);
        }
        if (res == -ETIMEDOUT || res == -EAGAIN) {
            CHECK(untouched(buf, 0), "deadline round %d: a failed receive wrote a value", r->index);
            return -EAGAIN;
        }
        return res;
    case S_FULLEMPTY:
        atomic_fetch_add(&r->recv_begun, 1);
        return weft_chan_recv(r->c[0], elem_ptr(l, buf), WEFT_FOREVER);
    default:
        return weft_chan_recv(r->c[0], elem_ptr(l, buf), WEFT_FOREVER);
    }
}

static void *consumer(void *arg)
{
    lane *l = arg;
    run *r = l->r;
    unsigned open = r->scen == S_SELECT ? 3 : 1;
    while (open) {
        uint64_t buf[3];
        fill(buf);
        bool after_eof = atomic_load(&r->eof);
        int ch;
        int e = recv_one(l, buf, open, &ch);
        if (e == 0) {
            CHECK(!after_eof || ch != 0,
                  "%s round %d: a value received after a receive had returned -EPIPE",
                  scen_names[r->scen], r->index);
            take(l, ch, buf);
            if (r->skew == 2 || rnd(l) % 16 == 0)
                pause_lane(l);
            continue;
        }
        CHECK(untouched(buf, 0), "%s round %d: a failed receive (%d) wrote a value",
              scen_names[r->scen], r->index, e);
        if (e == -EAGAIN) {
            pause_lane(l);
        } else if (e == -EPIPE) {
            check_eof(l, ch);
            open &= ~(1u << ch);
        } else {
            CHECK(e == -ECANCELED && r->scen == S_CANCEL, "%s round %d: consumer %d: %s",
                  scen_names[r->scen], r->index, l->id, weft_strerror(e));
            return NULL;
        }
    }
    return NULL;
}

/* ---- a round ---- */

static void *thread_main(void *arg)
{
    lane *l = arg;
    l->fn(l);
    atomic_store(&l->done, true);
    return NULL;
}

static void start(lane *l)
{
    if (l->thread) {
        CHECK(pthread_create(&l->th, NULL, thread_main, l) == 0, "pthread_create");
    } else {
        int e = weft_spawn_on((unsigned)(l->id + l->r->index) % weft_worker_count(), &l->task,
                              l->fn, l, NULL);
        CHECK(e == 0, "spawn: %s", weft_strerror(e));
    }
}

static void finish(lane *l)
{
    if (l->thread) {
        /* Not pthread_join at once: it would block this worker, and the tasks on it. */
        while (!atomic_load(&l->done))
            weft_sleep(100 * WEFT_USEC);
        CHECK(pthread_join(l->th, NULL) == 0, "pthread_join");
    } else {
        int e = weft_join(l->task, NULL, WEFT_FOREVER);
        CHECK(e == 0, "join: %s", weft_strerror(e));
    }
}

static void close_all(run *r)
{
    atomic_store(&r->closing, true);
    for (int i = 0; i < 2 && r->c[i]; i++) {
        CHECK(weft_chan_close(r->c[i]) == 0, "%s round %d: close", scen_names[r->scen], r->index);
        CHECK(weft_chan_close(r->c[i]) == -EPIPE, "%s round %d: a second close",
              scen_names[r->scen], r->index);
    }
    atomic_store(&r->closed, true);
}

/* Cancels tasks of both sides at random moments until every producer has sent all, each
 * cancelled task replaced by a new one on the same lane (a producer's resends the value
 * whose send was cancelled). */
static long cancel_storm(run *r, lane *me)
{
    long ncancel = 0;
    bool live[NTASKS] = {true, true, true}; /* producer tasks not yet joined */
    while (atomic_load(&r->nprod_done) < NPROD) {
        weft_sleep((int64_t)(rnd(me) % 50) * WEFT_USEC);
        int k = (int)(rnd(me) % (2 * NTASKS));
        lane *l = k < NTASKS ? &r->cons[k] : &r->prod[k - NTASKS];
        if (k >= NTASKS && !live[k - NTASKS])
            continue;
        CHECK(weft_cancel(l->task) == 0, "cancel");
        finish(l);
        ncancel++;
        if (k >= NTASKS && l->next >= r->per)
            live[k - NTASKS] = false;
        else
            start(l);
    }
    for (int i = 0; i < NTASKS; i++)
        if (live[i])
            finish(&r->prod[i]);
    finish(&r->prod[NPROD - 1]);
    return ncancel;
}

static long one_round(run *r)
{
    lane me = {.rng = 0x2545f4914f6cdd1dull * (uint64_t)(r->index + 1 + 97 * r->scen)};
    r->seen = calloc((size_t)NPROD * (size_t)r->per, 1);
    int e = weft_chan_create(&r->c[0], r->elem, r->cap);
    CHECK(e == 0, "create: %s", weft_strerror(e));
    CHECK(weft_chan_cap(r->c[0]) == r->cap, "cap %zu, not %zu", weft_chan_cap(r->c[0]), r->cap);
    if (r->scen == S_SELECT) {
        size_t cap1 = caps[(r->index + 2) % 5];
        e = weft_chan_create(&r->c[1], r->elem, cap1);
        CHECK(e == 0, "create: %s", weft_strerror(e));
        CHECK(weft_chan_cap(r->c[1]) == cap1, "cap %zu, not %zu", weft_chan_cap(r->c[1]), cap1);
    }
    for (int i = 0; i < NPROD; i++)
        r->prod[i] = (lane){.r = r, .id = i, .thread = i == NPROD - 1, .fn = producer};
    for (int i = 0; i < NCONS; i++) {
        r->cons[i] = (lane){.r = r, .id = i, .thread = i == NCONS - 1, .fn = consumer};
        for (int c = 0; c < 2; c++)
            for (int p = 0; p < NPROD; p++)
                r->cons[i].last[c][p] = -1;
    }
    for (int i = 0; i < NPROD; i++)
        r->prod[i].rng = rnd(&me) | 1;
    for (int i = 0; i < NCONS; i++)
        r->cons[i].rng = rnd(&me) | 1;
    atomic_store(&current, r);
    for (int i = 0; i < NCONS; i++)
        start(&r->cons[i]);
    for (int i = 0; i < NPROD; i++)
        start(&r->prod[i]);

    long ncancel = 0;
    if (r->scen == S_CLOSE) {
        /* Close once a random share of the values (up to half of them) has been received:
         * sends and receives are still under way, some parked. */
        long at = (long)(rnd(&me) % (uint64_t)(NPROD * r->per / 2 + 1));
        while (atomic_load(&r->nrecv) < at)
            weft_yield();
        close_all(r);
        for (int i = 0; i < NPROD; i++)
            finish(&r->prod[i]);
    } else if (r->scen == S_CANCEL) {
        ncancel = cancel_storm(r, &me);
        close_all(r);
    } else {
        for (int i = 0; i < NPROD; i++)
            finish(&r->prod[i]);
        close_all(r);
    }
    for (int i = 0; i < NCONS; i++)
        finish(&r->cons[i]);

    long sent = 0;
    for (int p = 0; p < NPROD; p++) {
        long ok = atomic_load(&r->ok[p]);
        sent += ok;
        CHECK(r->scen == S_CLOSE || ok == r->per, "%s round %d: producer %d sent %ld of %ld",
              scen_names[r->scen], r->index, p, ok, r->per);
        if (r->elem == 0)
            continue;
        int missing = 0, extra = 0;
        for (long s = 0; s < r->per; s++) {
            bool got = atomic_load(&r->seen[p * r->per + s]);
            missing += s < ok && !got;
            extra += s >= ok && got;
        }
        CHECK(missing == 0 && extra == 0,
              "%s round %d (cap %zu, %zu bytes): producer %d: %ld sent, %d of them never "
              "received, %d unsent ones received",
              scen_names[r->scen], r->index, r->cap, r->elem, p, ok, missing, extra);
    }
    long got = atomic_load(&r->nrecv);
    CHECK(got == sent, "%s round %d (cap %zu, %zu bytes): %ld sent, %ld received",
          scen_names[r->scen], r->index, r->cap, r->elem, sent, got);
    for (int i = 0; i < 2 && r->c[i]; i++) {
        CHECK(weft_chan_len(r->c[i]) == 0, "%s round %d: values left", scen_names[r->scen],
              r->index);
        weft_chan_release(r->c[i]);
    }
    atomic_store(&current, NULL);
    free(r->seen);
    atomic_fetch_add(&progress, 1);
    return ncancel;
}

static const char *mode_name;

/* For the report only: nothing passes or fails on time. */
static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void scenario(int scen)
{
    int before = atomic_load(&failures);
    /* The close lands at a random point: three times the rounds (each ends at the close). */
    int nrounds = scen == S_FULLEMPTY ? 12 : scen == S_CLOSE ? 45 : 15;
    long nvalues = 0, ncancel = 0;
    double t0 = seconds();
    run *r = malloc(sizeof *r);
    for (int i = 0; i < nrounds; i++) {
        memset(r, 0, sizeof *r);
        r->scen = scen;
        r->index = i;
        r->mode = mode_name;
        r->per = PER;
        if (scen == S_FULLEMPTY) {
            r->cap = caps[i % 2];
            r->elem = elems[(i / 2) % 3];
            r->skew = 1 + i / 6;
        } else {
            r->cap = caps[i % 5];
            r->elem = elems[(i / 5) % 3];
        }
        ncancel += one_round(r);
        nvalues += r->nrecv;
    }
    free(r);
    printf("chan_mpmc %s, %s: %d rounds, %ld values received", scen_names[scen], mode_name, nrounds,
           nvalues);
    if (scen == S_CANCEL)
        printf(", %ld tasks cancelled", ncancel);
    printf(", %.2f s: %s\n", seconds() - t0, atomic_load(&failures) == before ? "ok" : "FAILED");
}

static void *main_task(void *arg)
{
    (void)arg;
    for (int s = 0; s < NSCEN; s++)
        scenario(s);
    return NULL;
}

/* A lost wake shows as a round that never ends: fail here rather than at CTest's timeout,
 * with the round's state and a task dump. */
static void *watchdog(void *arg)
{
    (void)arg;
    long last = -1;
    int still = 0;
    for (;;) {
        sleep(1);
        long p = atomic_load(&progress);
        if (p != last) {
            last = p;
            still = 0;
            continue;
        }
        if (++still < HANG_S)
            continue;
        printf("FAIL chan_mpmc: no round finished in %d s (a hang)\n", HANG_S);
        run *r = atomic_load(&current);
        if (r) {
            printf("  %s, %s, round %d: cap %zu, %zu-byte values, %ld received, "
                   "%d producers done, closing %d, len %zu/%zu\n",
                   scen_names[r->scen], r->mode, r->index, r->cap, r->elem, atomic_load(&r->nrecv),
                   atomic_load(&r->nprod_done), atomic_load(&r->closing), weft_chan_len(r->c[0]),
                   weft_chan_len(r->c[1]));
            for (int i = 0; i < NPROD; i++)
                printf("  producer %d: %ld sent\n", i, atomic_load(&r->ok[i]));
        }
        fflush(stdout);
        raise(SIGUSR1); /* the task dump (weft_config.dump_signal) */
        sleep(2);
        _exit(1);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show where a hang is */
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);
    int modes[] = {WEFT_MODE_SHARDED, WEFT_MODE_STEALING};
    for (int m = 0; m < 2; m++) {
        mode_name = m ? "stealing" : "sharded";
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = 2;
        cfg.mode = modes[m];
        cfg.dump_signal = SIGUSR1;
        /* Errors only: plain threads preempted on 2 CPUs make stall warnings. */
        cfg.log_level = WEFT_LOG_ERROR;
        int e = weft_run(&cfg, main_task, NULL, NULL);
        CHECK(e == 0, "weft_run: %s", weft_strerror(e));
    }
    printf("chan_mpmc: %s\n", failures ? "FAILED" : "passed");
    return failures != 0;
}
