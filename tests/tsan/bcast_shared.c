/* Shared futures and broadcast channels across threads, under ThreadSanitizer (a plain
 * program: Criterion cannot start under TSan). Two workers and plain threads:
 *
 * - shared futures: each round, tasks on both workers (two through weft_shared_future) and
 *   plain threads await one shared future over a promise that a plain thread or a task of the other worker resolves; every
 *   awaiter gets the round's value, and nothing leaks;
 * - broadcast channels: one sender (a task of worker 1, then a plain thread) and receivers on
 *   both workers and on plain threads; each receiver sees strictly increasing values, and the
 *   values it read plus those it was told it missed are exactly the values sent;
 * - an unbounded channel that plain threads and tasks of both workers fill (its ring growing
 *   under their sends) while tasks drain it: every value received exactly once. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
enum { ROUNDS = 100, NBCAST = 4000 };
#else
enum { ROUNDS = 1000, NBCAST = 40000 };
#endif
enum { TASK_AWAITERS = 4, THREAD_AWAITERS = 2, TASK_READERS = 2, THREAD_READERS = 2 };

#include "check.h"

/* ---- Shared futures ---- */

typedef struct round {
    weft_shared *s;
    weft_promise *p;
    intptr_t want;
} round;

static void *await_shared(round *rd)
{
    void *v = NULL;
    int r = weft_shared_await(rd->s, &v, WEFT_FOREVER);
    CHECK(r == 0, "shared await: %s", weft_strerror(r));
    CHECK((intptr_t)v == rd->want, "shared value %ld, want %ld", (long)(intptr_t)v,
          (long)rd->want);
    weft_shared_release(rd->s);
    return NULL;
}

static void *await_task(void *arg)
{
    return await_shared(arg);
}

/* The same through the shared future's future form (weft_shared_future + weft_await). */
static void *await_view(void *arg)
{
    round *rd = arg;
    weft_future *f;
    int r = weft_shared_future(rd->s, &f);
    CHECK(r == 0, "shared future: %s", weft_strerror(r));
    weft_shared_release(rd->s); /* the view holds its own reference */
    if (r < 0)
        return NULL;
    void *v = NULL;
    r = weft_await(f, &v, WEFT_FOREVER);
    CHECK(r == 0 && (intptr_t)v == rd->want, "view: %s, %ld", weft_strerror(r),
          (long)(intptr_t)v);
    weft_future_destroy(f);
    return NULL;
}

static void *await_thread(void *arg)
{
    return await_shared(arg);
}

static void *resolve(void *arg)
{
    round *rd = arg;
    int r = weft_promise_resolve(rd->p, (void *)rd->want);
    CHECK(r == 0, "resolve: %s", weft_strerror(r));
    weft_promise_release(rd->p);
    return NULL;
}

static void shared_rounds(void)
{
    unsigned other = weft_worker_count() > 1 ? 1 : 0;
    for (int i = 0; i < ROUNDS; i++) {
        round rd = {.want = 1000 + i};
        int r = weft_promise_create(&rd.p);
        CHECK(r == 0, "promise: %s", weft_strerror(r));
        if (r < 0)
            return;
        weft_promise_retain(rd.p); /* the resolver's */
        r = weft_shared_create(&rd.s, weft_promise_future(rd.p));
        CHECK(r == 0, "shared: %s", weft_strerror(r));
        weft_task *ts[TASK_AWAITERS + 1];
        pthread_t th[THREAD_AWAITERS + 1];
        for (int k = 0; k < TASK_AWAITERS; k++) {
            weft_shared_retain(rd.s);
            r = weft_spawn_on((unsigned)k % weft_worker_count(), &ts[k],
                              k < 2 ? await_view : await_task, &rd, NULL);
            CHECK(r == 0, "spawn: %s", weft_strerror(r));
        }
        for (int k = 0; k < THREAD_AWAITERS; k++) {
            weft_shared_retain(rd.s);
            CHECK(pthread_create(&th[k], NULL, await_thread, &rd) == 0, "pthread");
        }
        /* The resolver: a plain thread on even rounds, a task of the other worker on odd. */
        bool by_thread = (i & 1) == 0;
        if (by_thread)
            CHECK(pthread_create(&th[THREAD_AWAITERS], NULL, resolve, &rd) == 0, "pthread");
        else
            CHECK(weft_spawn_on(other, &ts[TASK_AWAITERS], resolve, &rd, NULL) == 0, "spawn");
        /* Await here too: this parks, so the driver (on this worker) runs; once it has
         * settled, no thread waits for this worker any more, and joining them may block. */
        weft_shared_retain(rd.s);
        await_shared(&rd);
        for (int k = 0; k < TASK_AWAITERS + !by_thread; k++)
            weft_join(ts[k], NULL, WEFT_FOREVER);
        for (int k = 0; k < THREAD_AWAITERS + by_thread; k++)
            pthread_join(th[k], NULL);
        weft_shared_release(rd.s);
    }
}

/* ---- Broadcast ---- */

typedef struct reader {
    weft_bcast_rx *rx;
    long nvalues, nmissed;
} reader;

static void *read_all(void *arg)
{
    reader *rd = arg;
    long last = -1;
    for (;;) {
        long v = -1;
        uint64_t missed = 0;
        int r = weft_bcast_recv(rd->rx, &v, &missed, WEFT_FOREVER);
        if (r == -EPIPE)
            break;
        if (r == -EOVERFLOW) {
            CHECK(missed > 0, "a lag of 0 values");
            rd->nmissed += (long)missed;
            last += (long)missed;
            continue;
        }
        CHECK(r == 0, "bcast recv: %s", weft_strerror(r));
        if (r < 0)
            break;
        CHECK(v == last + 1, "value %ld after %ld", v, last);
        last = v;
        rd->nvalues++;
    }
    CHECK(rd->nvalues + rd->nmissed == NBCAST, "read %ld + missed %ld != %d", rd->nvalues,
          rd->nmissed, NBCAST);
    return NULL;
}

static void *send_all(void *arg)
{
    weft_bcast *b = arg;
    for (long v = 0; v < NBCAST; v++) {
        int r = weft_bcast_send(b, &v);
        CHECK(r == TASK_READERS + THREAD_READERS, "bcast send: %d", r);
        if (v % 64 == 0) {
            if (weft_self())
                weft_yield();
            else
                sched_yield();
        }
    }
    weft_bcast_release(b); /* the last handle: closes it */
    return NULL;
}

static void broadcast_phase(bool thread_sender)
{
    weft_bcast *b;
    int r = weft_bcast_create(&b, sizeof(long), 32);
    CHECK(r == 0, "bcast: %s", weft_strerror(r));
    if (r < 0)
        return;
    reader rs[TASK_READERS + THREAD_READERS] = {{0}};
    for (int k = 0; k < TASK_READERS + THREAD_READERS; k++) {
        r = weft_bcast_subscribe(b, &rs[k].rx);
        CHECK(r == 0, "subscribe: %s", weft_strerror(r));
    }
    weft_task *ts[TASK_READERS + 1];
    pthread_t th[THREAD_READERS + 1];
    for (int k = 0; k < TASK_READERS; k++)
        CHECK(weft_spawn_on((unsigned)k % weft_worker_count(), &ts[k], read_all, &rs[k], NULL) ==
                  0,
              "spawn");
    for (int k = 0; k < THREAD_READERS; k++)
        CHECK(pthread_create(&th[k], NULL, read_all, &rs[TASK_READERS + k]) == 0, "pthread");
    if (thread_sender)
        CHECK(pthread_create(&th[THREAD_READERS], NULL, send_all, b) == 0, "pthread");
    else
        CHECK(weft_spawn_on(weft_worker_count() - 1, &ts[TASK_READERS], send_all, b, NULL) == 0,
              "spawn");
    /* Tasks first (this parks); the threads need nothing of this worker. */
    for (int k = 0; k < TASK_READERS + !thread_sender; k++)
        weft_join(ts[k], NULL, WEFT_FOREVER);
    for (int k = 0; k < THREAD_READERS + thread_sender; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < TASK_READERS + THREAD_READERS; k++)
        weft_bcast_unsubscribe(rs[k].rx); /* the last one frees the channel */
}

/* ---- Unbounded channel ---- */

enum { NPRODUCERS = 4 };

static weft_chan *unbounded;
static unsigned char seen[NBCAST];

static void *produce(void *arg)
{
    long from = (long)(intptr_t)arg * (NBCAST / NPRODUCERS);
    for (long v = from; v < from + NBCAST / NPRODUCERS; v++) {
        int r = weft_chan_send(unbounded, &v, WEFT_FOREVER);
        CHECK(r == 0, "unbounded send: %s", weft_strerror(r));
    }
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    for (;;) {
        long v = -1;
        int r = weft_chan_recv(unbounded, &v, WEFT_FOREVER);
        if (r == -EPIPE)
            return NULL;
        CHECK(r == 0 && v >= 0 && v < NBCAST, "unbounded recv: %s, %ld", weft_strerror(r), v);
        if (r < 0)
            return NULL;
        unsigned char was = __atomic_exchange_n(&seen[v], 1, __ATOMIC_RELAXED);
        CHECK(!was, "value %ld received twice", v);
    }
}

static void unbounded_phase(void)
{
    int r = weft_chan_create_unbounded(&unbounded, sizeof(long), 0);
    CHECK(r == 0, "unbounded: %s", weft_strerror(r));
    if (r < 0)
        return;
    weft_task *consumers[2], *producers[NPRODUCERS / 2];
    pthread_t th[NPRODUCERS / 2];
    for (unsigned k = 0; k < 2; k++)
        CHECK(weft_spawn_on(k % weft_worker_count(), &consumers[k], consume, NULL, NULL) == 0,
              "spawn");
    for (int k = 0; k < NPRODUCERS / 2; k++) {
        CHECK(pthread_create(&th[k], NULL, produce, (void *)(intptr_t)k) == 0, "pthread");
        CHECK(weft_spawn_on((unsigned)k % weft_worker_count(), &producers[k], produce,
                            (void *)(intptr_t)(NPRODUCERS / 2 + k), NULL) == 0,
              "spawn");
    }
    for (int k = 0; k < NPRODUCERS / 2; k++)
        weft_join(producers[k], NULL, WEFT_FOREVER);
    for (int k = 0; k < NPRODUCERS / 2; k++)
        pthread_join(th[k], NULL); /* sends never wait: they need nothing of this worker */
    weft_chan_close(unbounded); /* the consumers drain, then get -EPIPE */
    for (int k = 0; k < 2; k++)
        weft_join(consumers[k], NULL, WEFT_FOREVER);
    for (long v = 0; v < NBCAST; v++)
        CHECK(seen[v], "value %ld lost", v);
    weft_chan_release(unbounded);
}

static void *main_task(void *arg)
{
    (void)arg;
    shared_rounds();
    broadcast_phase(false);
    broadcast_phase(true);
    unbounded_phase();
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    int r = weft_run(&c, main_task, NULL, NULL);
    CHECK(r == 0, "run: %s", weft_strerror(r));
    printf("bcast_shared: %d shared rounds, %d broadcast values twice, %d through an unbounded "
           "channel: %s\n",
           ROUNDS, NBCAST, NBCAST, failures ? "FAILED" : "ok");
    return failures != 0;
}
