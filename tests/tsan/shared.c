/* A stress test of what tasks on different workers share, run under ThreadSanitizer (a plain
 * program: Criterion cannot start under TSan). Prints one line per check, exits non-zero on
 * any failure.
 *
 * - channels: P producers and P consumers spread over the workers share one channel
 *   (buffered, then a rendezvous); every value is received exactly once;
 * - select: consumers select over two channels fed from other workers, with a deadline case
 *   racing the hand-offs; no value is lost or taken twice;
 * - mutex and cond: a counter guarded by a mutex, incremented from every worker, with a
 *   condition variable signalled when it reaches its target;
 * - semaphore and wait group: units passed between workers, a wait group counted down on
 *   every worker;
 * - promises: resolved on one worker, awaited on another. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
enum { NVALUES = 20000, NINCR = 2000 };
#else
enum { NVALUES = 200000, NINCR = 20000 };
#endif
enum { P = 4 };

#include "check.h"

static unsigned char *seen;

typedef struct lane {
    weft_chan *c, *c2;
    long from, to; /* values [from, to) */
} lane;

static void *producer(void *arg)
{
    lane *l = arg;
    for (long v = l->from; v < l->to; v++) {
        weft_chan *c = (l->c2 && (v & 1)) ? l->c2 : l->c;
        int r = weft_chan_send(c, &v, WEFT_FOREVER);
        CHECK(r == 0, "send: %s", weft_strerror(r));
    }
    return NULL;
}

static void *consumer(void *arg)
{
    lane *l = arg;
    long n = 0;
    for (;;) {
        long v = -1;
        int r = weft_chan_recv(l->c, &v, WEFT_FOREVER);
        if (r == -EPIPE)
            break;
        CHECK(r == 0 && v >= 0 && v < NVALUES, "recv %d %ld", r, v);
        if (v >= 0 && v < NVALUES)
            __atomic_fetch_add(&seen[v], 1, __ATOMIC_RELAXED);
        n++;
    }
    return (void *)n;
}

static void *select_consumer(void *arg)
{
    lane *l = arg;
    long n = 0;
    int open = 2;
    bool closed[2] = {false, false};
    while (open) {
        long a = -1, b = -1;
        weft_case cs[2] = {
            {.op = WEFT_CASE_RECV, .chan = closed[0] ? NULL : l->c, .elem = &a},
            {.op = WEFT_CASE_RECV, .chan = closed[1] ? NULL : l->c2, .elem = &b},
        };
        /* A short deadline races the hand-offs: a timeout must take nothing. */
        int r = weft_select(cs, 2, weft_deadline_in(20 * 1000));
        if (r == -ETIMEDOUT) {
            CHECK(a == -1 && b == -1, "a timed-out select took a value");
            continue;
        }
        CHECK(r == 0 || r == 1, "select %d", r);
        if (r < 0 || r > 1)
            break;
        if (cs[r].result == -EPIPE) {
            closed[r] = true;
            open--;
            continue;
        }
        long v = r == 0 ? a : b;
        CHECK((r == 0 ? b : a) == -1, "both cases took a value");
        if (v >= 0 && v < NVALUES)
            __atomic_fetch_add(&seen[v], 1, __ATOMIC_RELAXED);
        n++;
    }
    return (void *)n;
}

static void run_lanes(size_t cap, bool use_select)
{
    unsigned nw = weft_worker_count();
    memset(seen, 0, NVALUES);
    weft_chan *c, *c2 = NULL;
    CHECK(weft_chan_create(&c, sizeof(long), cap) == 0, "create");
    if (use_select)
        CHECK(weft_chan_create(&c2, sizeof(long), cap) == 0, "create");
    lane lp[P], lc;
    weft_task *prod[P], *cons[P];
    lc = (lane){.c = c, .c2 = c2};
    for (int i = 0; i < P; i++) {
        lp[i] = (lane){
            .c = c, .c2 = c2, .from = (long)i * NVALUES / P, .to = (long)(i + 1) * NVALUES / P};
        CHECK(weft_spawn_on((unsigned)i % nw, &prod[i], producer, &lp[i], NULL) == 0, "spawn");
        CHECK(weft_spawn_on((unsigned)(i + 1) % nw, &cons[i],
                            use_select ? select_consumer : consumer, &lc, NULL) == 0,
              "spawn");
    }
    for (int i = 0; i < P; i++)
        CHECK(weft_join(prod[i], NULL, WEFT_FOREVER) == 0, "join producer");
    weft_chan_close(c);
    if (c2)
        weft_chan_close(c2);
    long total = 0;
    for (int i = 0; i < P; i++) {
        void *n = NULL;
        CHECK(weft_join(cons[i], &n, WEFT_FOREVER) == 0, "join consumer");
        total += (long)n;
    }
    int bad = 0;
    for (long v = 0; v < NVALUES; v++)
        bad += seen[v] != 1;
    CHECK(total == NVALUES && bad == 0, "%ld received, %d values not received exactly once", total,
          bad);
    weft_chan_release(c);
    if (c2)
        weft_chan_release(c2);
    printf("channel cap %zu%s: %d values, %d producers, %d consumers, %u workers\n", cap,
           use_select ? " (select over two)" : "", NVALUES, P, P, nw);
}

static weft_mutex mu = WEFT_MUTEX_INIT;
static weft_cond cv = WEFT_COND_INIT;
static long counter;
static weft_waitgroup wg = WEFT_WAITGROUP_INIT;
static weft_sem sem = WEFT_SEM_INIT(0);

static void *incrementer(void *arg)
{
    (void)arg;
    for (int i = 0; i < NINCR; i++) {
        CHECK(weft_mutex_lock(&mu, WEFT_FOREVER) == 0, "lock");
        long c = counter; /* a torn update shows if the mutex leaked */
        if (i % 64 == 0)
            weft_yield(); /* hold it across a yield: others park on it */
        counter = c + 1;
        if (counter == (long)NINCR * P)
            weft_cond_broadcast(&cv);
        weft_mutex_unlock(&mu);
    }
    weft_sem_release(&sem, 1);
    weft_waitgroup_done(&wg);
    return NULL;
}

static void *cond_waiter(void *arg)
{
    (void)arg;
    weft_mutex_lock(&mu, WEFT_FOREVER);
    while (counter < (long)NINCR * P)
        weft_cond_wait(&cv, &mu, WEFT_FOREVER);
    weft_mutex_unlock(&mu);
    return NULL;
}

static void check_sync(void)
{
    unsigned nw = weft_worker_count();
    counter = 0;
    weft_waitgroup_add(&wg, P);
    weft_task *w, *t[P];
    CHECK(weft_spawn_on(nw - 1, &w, cond_waiter, NULL, NULL) == 0, "spawn");
    for (int i = 0; i < P; i++)
        CHECK(weft_spawn_on((unsigned)i % nw, &t[i], incrementer, NULL, NULL) == 0, "spawn");
    for (int i = 0; i < P; i++)
        CHECK(weft_sem_acquire(&sem, WEFT_FOREVER) == 0, "sem");
    CHECK(weft_waitgroup_wait(&wg, WEFT_FOREVER) == 0, "waitgroup");
    CHECK(weft_join(w, NULL, WEFT_FOREVER) == 0, "cond waiter");
    for (int i = 0; i < P; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    CHECK(counter == (long)NINCR * P, "counter %ld, expected %ld", counter, (long)NINCR * P);
    printf("mutex, cond, semaphore, wait group: %d increments over %u workers\n", NINCR * P, nw);
}

static void *resolver(void *arg)
{
    weft_promise *p = arg;
    weft_yield();
    CHECK(weft_promise_resolve(p, (void *)(intptr_t)weft_worker_index()) == 0, "resolve");
    weft_promise_release(p);
    return NULL;
}

static void check_promises(void)
{
    unsigned nw = weft_worker_count();
    enum { NP = 2000 };
    for (int i = 0; i < NP; i++) {
        weft_promise *p;
        CHECK(weft_promise_create(&p) == 0, "promise");
        weft_promise_retain(p);
        unsigned k = 1 + (unsigned)i % (nw - 1);
        weft_spawn_opts o = {.flags = WEFT_SPAWN_DETACHED};
        CHECK(weft_spawn_on(k, NULL, resolver, p, &o) == 0, "spawn");
        void *v = NULL;
        CHECK(weft_await(weft_promise_future(p), &v, WEFT_FOREVER) == 0 && v == (void *)(intptr_t)k,
              "await");
        weft_promise_release(p);
    }
    printf("promises: %d resolved on another worker\n", NP);
}

static void *main_task(void *arg)
{
    (void)arg;
    run_lanes(16, false);
    run_lanes(0, false);
    run_lanes(8, true);
    check_sync();
    check_promises();
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show where a hang is */
    seen = calloc(NVALUES, 1);
    unsigned counts[] = {2, 4};
    for (int i = 0; i < 2; i++) {
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = counts[i];
        cfg.mode = WEFT_MODE_SHARDED;
        int r = weft_run(&cfg, main_task, NULL, NULL);
        CHECK(r == 0, "weft_run: %s", weft_strerror(r));
    }
    free(seen);
    printf("%s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
