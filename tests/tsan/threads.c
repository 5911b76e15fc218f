/* Plain threads and tasks on the same channels and locks, under ThreadSanitizer (a plain
 * program: Criterion cannot start under TSan). Threads the program started, with no runtime
 * of their own, block on the primitives through their stand-in records (src/thread_park.c)
 * while tasks of two workers park on the same ones:
 *
 * - a channel with T producer threads and P producer tasks, T consumer threads and P consumer
 *   tasks: every value received exactly once;
 * - a counter behind one mutex, incremented by the threads and the tasks: no increment lost;
 * - a semaphore whose units go round between threads and tasks with short deadlines racing
 *   the grants: every unit comes back (none lost, none doubled);
 * - threads that exit holding a mutex and a read hold while a task of another worker keeps
 *   trying both: the exit orphans the holds (thread_park.c) under the locks' own lock word,
 *   and the next thread, which may get the exited one's storage, is not their holder. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <weft.h>

#if defined(__SANITIZE_THREAD__)
enum { NVALUES = 8000, NINCR = 1000, NSEM = 1000 };
#else
enum { NVALUES = 80000, NINCR = 10000, NSEM = 10000 };
#endif
enum { T = 3, P = 3, UNITS = 1 };

#include "check.h"

static weft_chan *chan;
static unsigned char *seen;
static weft_mutex mu = WEFT_MUTEX_INIT;
static long counter;
static weft_sem sem = WEFT_SEM_INIT(UNITS);
static atomic_long sem_timeouts;

typedef struct lane {
    long from, to; /* values [from, to) to send */
    long nrecv;    /* values to receive */
} lane;

static void produce(const lane *l)
{
    for (long v = l->from; v < l->to; v++) {
        int r = weft_chan_send(chan, &v, WEFT_FOREVER);
        CHECK(r == 0, "send: %s", weft_strerror(r));
    }
}

static void consume(const lane *l)
{
    for (long n = 0; n < l->nrecv; n++) {
        long v = -1;
        int r = weft_chan_recv(chan, &v, WEFT_FOREVER);
        CHECK(r == 0, "recv: %s", weft_strerror(r));
        if (r == 0 && v >= 0 && v < NVALUES) {
            unsigned char was = __atomic_exchange_n(&seen[v], 1, __ATOMIC_RELAXED);
            CHECK(!was, "value %ld received twice", v);
        }
    }
}

static void count_and_cycle(void)
{
    for (int i = 0; i < NINCR; i++) {
        int r = weft_mutex_lock(&mu, WEFT_FOREVER);
        CHECK(r == 0, "lock: %s", weft_strerror(r));
        counter++;
        weft_mutex_unlock(&mu);
    }
    for (int i = 0; i < NSEM; i++) {
        /* A deadline of a few microseconds races the grants: a unit is either taken and
         * given back, or the wait times out and takes nothing. */
        int r = weft_sem_acquire(&sem, weft_deadline_in(2000));
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sem_timeouts, 1);
            continue;
        }
        CHECK(r == 0, "sem: %s", weft_strerror(r));
        /* Hold the unit a moment, so that others wait and some time out. */
        if (weft_self())
            weft_yield();
        else
            sched_yield();
        r = weft_sem_release(&sem, 1);
        CHECK(r == 0, "release: %s", weft_strerror(r));
    }
}

static lane lanes[2 * (T + P)];

static void *thread_body(void *arg)
{
    lane *l = arg;
    if (l->to > l->from)
        produce(l);
    else
        consume(l);
    count_and_cycle();
    return NULL;
}

static void *task_body(void *arg)
{
    thread_body(arg);
    return NULL;
}

static weft_mutex left_mu = WEFT_MUTEX_INIT;
static weft_rwlock left_rw = WEFT_RWLOCK_INIT;
static atomic_int left_done;

static void *exit_holding(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(&left_mu, WEFT_FOREVER) == 0, "a thread's lock");
    CHECK(weft_rwlock_rdlock(&left_rw, WEFT_FOREVER) == 0, "a thread's read lock");
    return NULL; /* holding both */
}

static void *after_exit(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_unlock(&left_mu) == -EPERM, "a later thread is not the holder");
    CHECK(weft_mutex_lock(&left_mu, weft_deadline_in(WEFT_MSEC)) == -ETIMEDOUT, "still held");
    CHECK(weft_rwlock_unlock(&left_rw) == -EPERM, "nor the reader");
    CHECK(weft_rwlock_wrlock(&left_rw, weft_deadline_in(WEFT_MSEC)) == -ETIMEDOUT, "read-held");
    return NULL;
}

static void *try_left(void *arg)
{
    (void)arg;
    while (!atomic_load(&left_done)) {
        int r = weft_mutex_lock(&left_mu, weft_deadline_in(10 * WEFT_USEC));
        CHECK(r == 0 || r == -ETIMEDOUT, "task lock: %d", r);
        if (r == 0)
            weft_mutex_unlock(&left_mu);
        r = weft_rwlock_wrlock(&left_rw, weft_deadline_in(10 * WEFT_USEC));
        CHECK(r == 0 || r == -ETIMEDOUT, "task wrlock: %d", r);
        if (r == 0)
            weft_rwlock_unlock(&left_rw);
    }
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    int r = weft_chan_create(&chan, sizeof(long), 16);
    CHECK(r == 0, "create: %s", weft_strerror(r));
    /* Lanes: T + P producers splitting the values, T + P consumers splitting the count. */
    int nprod = T + P;
    for (int i = 0; i < nprod; i++) {
        lanes[i].from = (long)NVALUES * i / nprod;
        lanes[i].to = (long)NVALUES * (i + 1) / nprod;
        lanes[nprod + i].nrecv = lanes[i].to - lanes[i].from;
    }
    pthread_t th[2 * T];
    weft_task *tasks[2 * P];
    int nt = 0, nk = 0;
    for (int i = 0; i < 2 * (T + P); i++) {
        bool as_thread = (i % (T + P)) < T;
        if (as_thread) {
            CHECK(pthread_create(&th[nt++], NULL, thread_body, &lanes[i]) == 0, "pthread");
        } else {
            r = weft_spawn_on((unsigned)(nk % weft_worker_count()), &tasks[nk], task_body,
                              &lanes[i], NULL);
            CHECK(r == 0, "spawn: %s", weft_strerror(r));
            nk++;
        }
    }
    for (int i = 0; i < nk; i++)
        weft_join(tasks[i], NULL, WEFT_FOREVER);
    /* The threads may still be finishing their share: joining them blocks this worker, but
     * every task they could wait for has finished. */
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    weft_chan_release(chan);

    weft_task *trier;
    r = weft_spawn_on(weft_worker_count() - 1, &trier, try_left, NULL, NULL);
    CHECK(r == 0, "spawn: %s", weft_strerror(r));
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, i == 0 ? exit_holding : after_exit, NULL) == 0, "pthread");
        pthread_join(t, NULL); /* blocks this worker; the trier runs on the other */
    }
    atomic_store(&left_done, 1);
    weft_join(trier, NULL, WEFT_FOREVER);
    return NULL;
}

int main(void)
{
    seen = calloc(NVALUES, 1);
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    int r = weft_run(&c, main_task, NULL, NULL);
    CHECK(r == 0, "run: %s", weft_strerror(r));
    for (long v = 0; v < NVALUES; v++)
        CHECK(seen[v], "value %ld lost", v);
    CHECK(counter == (long)(T + P) * 2 * NINCR, "counter %ld", counter);
    CHECK(weft_sem_value(&sem) == UNITS, "semaphore units %lld, want %d",
          (long long)weft_sem_value(&sem), UNITS);
    printf("threads: %d values, %ld increments, %ld semaphore timeouts: %s\n", NVALUES, counter,
           atomic_load(&sem_timeouts), failures ? "FAILED" : "ok");
    free(seen);
    return failures != 0;
}
