/* A stress test of the worker hand-off (weft_block_in_place), run in every build and under
 * ThreadSanitizer: pairs of tasks on different workers pass numbered messages through a
 * channel of capacity 1, and each side blocks in place between messages, so that a worker
 * changes thread while wakes from the other worker arrive, timers fire and other tasks of
 * the same worker block in place too. Every message must arrive exactly once, in order, and
 * every task must come back on the thread it left (on epoll; on io_uring fn runs on the pool).
 * First, a task is made to resume on another thread than it parked on, deterministically,
 * and keeps its errno (the -flto build runs this program too).
 * Workers and mode come from the environment (WEFT_WORKERS, WEFT_MODE), 2 workers if unset. */
#include <pthread.h>
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

enum { NPAIRS = 6, NMSGS = 600 };

static atomic_long in_place_runs;

typedef struct job {
    unsigned k;
    pid_t tid; /* the thread fn ran on */
} job;

static void *short_block(void *arg)
{
    job *j = arg;
    j->tid = (pid_t)syscall(SYS_gettid);
    /* Now a sleep (the thread blocks), now a few yields of the CPU. */
    if (j->k % 3 == 0) {
        struct timespec ts = {0, 20000 + (long)(j->k % 7) * 10000};
        nanosleep(&ts, NULL);
    } else {
        for (unsigned i = 0; i < j->k % 5; i++)
            sched_yield();
    }
    atomic_fetch_add_explicit(&in_place_runs, 1, memory_order_relaxed);
    return (void *)(uintptr_t)(j->k + 1);
}

static bool thread_bound;

/* The task goes on, after fn, on the thread fn ran on (its worker's other tasks may have
 * moved meanwhile: a task's thread is its worker's driver, which a hand-off changes). */
static int in_place(unsigned k)
{
    job j = {k, 0};
    void *r = NULL;
    int e = weft_block_in_place(short_block, &j, &r);
    CHECK(e == 0, "weft_block_in_place: %s", weft_strerror(e));
    CHECK(r == (void *)(uintptr_t)(k + 1), "fn's result lost");
    if (!thread_bound)
        CHECK((pid_t)syscall(SYS_gettid) == j.tid, "the task came back on another thread");
    return e;
}

typedef struct pair {
    weft_chan *ch;
    long received; /* the sum of what the consumer got */
    int out_of_order;
} pair;

static void *producer(void *arg)
{
    pair *p = arg;
    for (unsigned i = 1; i <= NMSGS; i++) {
        int r = weft_chan_send(p->ch, &i, WEFT_FOREVER);
        CHECK(r == 0, "send: %s", weft_strerror(r));
        if (i % 4 == 0)
            in_place(i);
        else if (i % 4 == 1)
            weft_sleep(10000);
    }
    weft_chan_close(p->ch);
    return NULL;
}

static void *consumer(void *arg)
{
    pair *p = arg;
    unsigned want = 1, v;
    int r;
    while ((r = weft_chan_recv(p->ch, &v, WEFT_FOREVER)) == 0) {
        if (v != want)
            p->out_of_order++;
        want = v + 1;
        p->received += v;
        if (v % 3 == 0)
            in_place(v);
        else
            weft_yield();
    }
    CHECK(r == -EPIPE, "recv ended with %s", weft_strerror(r));
    return NULL;
}

/* ---- A task that resumes on another thread (the migration check, also in the -flto build):
 * on one worker, `parker` parks on an event on the worker's own thread; `blocker` then blocks
 * in place, and its fn (on that thread, the worker lent) sets the event and waits until the
 * parker has run again. The parker can only run on the thread that drives the worker
 * meanwhile, a relief thread; no timer and no order decides it. Its errno comes with it. */

typedef struct migration {
    weft_event wake;     /* set by the blocker's fn */
    sem_t back;          /* posted by the parker once it resumed */
    atomic_int sleeping; /* the parker is inside its wait (it gave the CPU up there) */
    pid_t parked_on, resumed_on;
    int errno_after;
} migration;

/* errno through a call the compiler cannot fold into the caller's (a cached &errno from
 * before the park would be the old thread's: docs/architecture.md, "Migration rules"). */
static __attribute__((noinline)) int errno_now(void)
{
    int e = errno;
    __asm__ volatile("" : "+r"(e));
    return e;
}

static void *parker(void *arg)
{
    migration *m = arg;
    m->parked_on = (pid_t)syscall(SYS_gettid);
    errno = EDOM;
    atomic_store(&m->sleeping, 1); /* seen by main only once this task is inside the wait */
    weft_event_wait(&m->wake, WEFT_FOREVER);
    m->errno_after = errno_now();
    m->resumed_on = (pid_t)syscall(SYS_gettid);
    sem_post(&m->back);
    return NULL;
}

static void *wake_and_wait(void *arg)
{
    migration *m = arg;
    weft_event_set(&m->wake); /* from a thread outside the runtime: the worker is lent */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    return (void *)(intptr_t)sem_timedwait(&m->back, &ts);
}

static void *blocker(void *arg)
{
    void *r = (void *)1;
    int e = weft_block_in_place(wake_and_wait, arg, &r);
    CHECK(e == 0 && r == NULL, "the worker did not go on while a task blocked in place");
    return NULL;
}

static void migrate_once(void)
{
    migration m = {.wake = WEFT_EVENT_INIT, .parked_on = 0};
    atomic_init(&m.sleeping, 0);
    sem_init(&m.back, 0, 0);
    weft_task *t[2];
    weft_spawn_opts here = {.flags = WEFT_SPAWN_PINNED};
    CHECK(weft_spawn(&t[0], parker, &m, &here) == 0, "spawn");
    while (!atomic_load(&m.sleeping)) /* one worker: it waits on this thread first */
        weft_yield();
    CHECK(weft_spawn(&t[1], blocker, &m, &here) == 0, "spawn");
    for (int i = 0; i < 2; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    CHECK(m.resumed_on != m.parked_on, "the parker resumed on the thread it parked on");
    CHECK(m.errno_after == EDOM, "errno %d after the move, want EDOM", m.errno_after);
    sem_destroy(&m.back);
}

static void *main_task(void *arg)
{
    (void)arg;
    thread_bound = strcmp(weft_backend(), "io_uring") == 0;
    if (!thread_bound)
        migrate_once();
    unsigned nw = weft_worker_count();
    pair pairs[NPAIRS];
    weft_task *t[2 * NPAIRS];
    for (int i = 0; i < NPAIRS; i++) {
        pairs[i] = (pair){0};
        CHECK(weft_chan_create(&pairs[i].ch, sizeof(unsigned), 1) == 0, "chan_create");
        /* The two sides of a pair on different workers where there are several. */
        CHECK(weft_spawn_on((unsigned)i % nw, &t[2 * i], producer, &pairs[i], NULL) == 0, "spawn");
        CHECK(weft_spawn_on((unsigned)(i + 1) % nw, &t[2 * i + 1], consumer, &pairs[i], NULL) == 0,
              "spawn");
    }
    for (int i = 0; i < 2 * NPAIRS; i++)
        CHECK(weft_join(t[i], NULL, WEFT_FOREVER) == 0, "join");
    long want = (long)NMSGS * (NMSGS + 1) / 2;
    for (int i = 0; i < NPAIRS; i++) {
        CHECK(pairs[i].received == want, "pair %d received a sum of %ld, want %ld", i,
              pairs[i].received, want);
        CHECK(pairs[i].out_of_order == 0, "pair %d: %d messages out of order", i,
              pairs[i].out_of_order);
        weft_chan_release(pairs[i].ch);
    }
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    if (!getenv("WEFT_WORKERS"))
        c.workers = 2;
    int r = weft_run(&c, main_task, NULL, NULL);
    CHECK(r == 0, "weft_run: %s", weft_strerror(r));
    long runs = atomic_load(&in_place_runs);
    long want = (long)NPAIRS * (NMSGS / 4 + NMSGS / 3);
    CHECK(runs == want, "%ld runs in place, want %ld", runs, want);
    printf("relief: %ld runs in place, %d failed\n", runs, failures);
    return failures != 0;
}
