/* A completer on another thread wakes a waiter whose runtime may be ending: the completer's
 * last touch of the waiter's task record must come before the waiter can see the outcome,
 * since a waiter that sees it may finish at once, and its runtime free its records (a waiter
 * already woken by its deadline or by the shutdown's cancel, which then looks without
 * waiting). Under ThreadSanitizer, a touch after is a race with weft_run's free.
 *
 * - channel: tasks receive with short deadlines while plain threads send; each round's
 *   runtime ends with receivers still parked (the shutdown cancels them);
 * - promise: a task awaits with a short deadline a promise a plain thread resolves.
 * Found by a hostile-misuse probe (both raced on every run before the fix). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <weft.h>

#include "check.h"

enum { CHAN_ROUNDS = 60, PROMISE_ROUNDS = 2000, NSENDERS = 2, NRECEIVERS = 4 };

static weft_chan *ch;
static atomic_int stop;
static atomic_long received;

static void *receiver(void *arg)
{
    (void)arg;
    for (;;) {
        long v;
        int r = weft_chan_recv(ch, &v, weft_deadline_in(20 * WEFT_USEC));
        if (r == 0)
            atomic_fetch_add(&received, 1);
        else if (r != -ETIMEDOUT) {
            CHECK(r == -ECANCELED, "recv: %d", r);
            return NULL;
        }
    }
}

static void *chan_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < NRECEIVERS; i++)
        CHECK(weft_spawn(NULL, receiver, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}) ==
                  0,
              "spawn");
    weft_sleep(WEFT_MSEC);
    return NULL; /* the shutdown cancels the receivers, then frees their records */
}

static void *sender(void *arg)
{
    (void)arg;
    long v = 0;
    while (!atomic_load(&stop))
        weft_chan_send(ch, &v, weft_deadline_in(WEFT_MSEC));
    return NULL;
}

static _Atomic(weft_promise *) handed;

static void *promise_main(void *arg)
{
    (void)arg;
    weft_promise *p;
    CHECK(weft_promise_create(&p) == 0, "promise");
    weft_promise_retain(p); /* the resolver's reference */
    atomic_store(&handed, p);
    int r;
    void *v = NULL;
    do
        r = weft_await(weft_promise_future(p), &v, weft_deadline_in(5 * WEFT_USEC));
    while (r == -ETIMEDOUT);
    CHECK(r == 0 && v == p, "await: %d", r);
    weft_promise_release(p);
    return NULL; /* the runtime ends: its task records are freed */
}

static void *resolver(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        weft_promise *p = atomic_exchange(&handed, NULL);
        if (!p)
            continue;
        CHECK(weft_promise_resolve(p, p) == 0, "resolve");
        weft_promise_release(p);
    }
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_OFF;

    CHECK(weft_chan_create(&ch, sizeof(long), 0) == 0, "chan");
    pthread_t th[NSENDERS];
    for (int i = 0; i < NSENDERS; i++)
        pthread_create(&th[i], NULL, sender, NULL);
    for (int round = 0; round < CHAN_ROUNDS; round++)
        CHECK(weft_run(&c, chan_main, NULL, NULL) == 0, "run");
    atomic_store(&stop, 1);
    for (int i = 0; i < NSENDERS; i++)
        pthread_join(th[i], NULL);
    weft_chan_release(ch);

    atomic_store(&stop, 0);
    pthread_t rt;
    pthread_create(&rt, NULL, resolver, NULL);
    for (int round = 0; round < PROMISE_ROUNDS; round++)
        CHECK(weft_run(&c, promise_main, NULL, NULL) == 0, "run");
    atomic_store(&stop, 1);
    pthread_join(rt, NULL);

    printf("wake_lifetime: %ld received; %s\n", atomic_load(&received),
           failures ? "FAILED" : "passed");
    return failures != 0;
}
