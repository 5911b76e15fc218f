/* The involuntary hand-off (weft_config.handoff_us): a task that spins without a switch no
 * longer holds up its worker's other tasks, timers and I/O. Each test's spinner waits, in a
 * loop that calls no weft function, for something only another task of the same worker can
 * do: without the hand-off it would wait forever. Every spin is bounded (10 s of the clock),
 * so a worker that did not go on fails the test instead of hanging it; no assertion is about
 * time. One worker, stealing mode (where the hand-off is on by default), the backend of
 * WEFT_BACKEND (epoll unless it says io_uring: the ring is then made movable). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"
#include "restartable.h"
#include "harness.h"

#define SPIN_LIMIT_NS (10LL * 1000000000) /* only a worker that never went on reaches it */

static int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Zeroes the stack below the caller's frame. A task's stack is reused from a pool: its dead
 * part holds return addresses into weft's code left by earlier tasks' weft calls, and a frame
 * that leaves a slot unwritten over one (as -O0 builds' frames do) makes the hand-off refuse,
 * by design (src/handoff.c: it can only be wrong in refusing). The spinners below clear it
 * first, so that what the tests check is the mechanism, not the luck of a reused stack. */
static __attribute__((noinline, no_sanitize("address"))) void clear_stack_below(void)
{
    volatile char buf[8192]; /* not instrumented: no redzones around it left unwritten */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = 0;
}

/* Spins, calling no weft function, until *flag is set: 1, or 0 at the limit. */
static __attribute__((noinline)) int spin_until(atomic_int *flag)
{
    int64_t end = clock_ns() + SPIN_LIMIT_NS;
    while (!atomic_load_explicit(flag, memory_order_acquire))
        if (clock_ns() > end)
            return 0;
    return 1;
}

/* Where weft's code lies (src/handoff.c): nowhere certain in an LTO build, where weft cannot
 * tell its code from the program's, and the hand-off is off by design. */
static bool code_known(void)
{
    weft__code_range c;
    weft__handoff_find_code(&c);
    return c.lo != c.hi;
}

/* The hand-off threshold of the scenes (1 ms): a test may raise it (each runs in its own
 * process). */
static int scene_handoff_us = 1000;

static weft_config handoff_cfg(void)
{
    if (!code_known())
        cr_skip_test("weft's code cannot be told from the program's (an LTO build): no hand-off");
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.mode = WEFT_MODE_STEALING;
    /* Both backends (WEFT_BACKEND from CTest): on io_uring the ring is made movable. */
    const char *b = getenv("WEFT_BACKEND");
    c.backend = b && strcmp(b, "io_uring") == 0 ? WEFT_BACKEND_IO_URING : WEFT_BACKEND_EPOLL;
    c.handoff_us = scene_handoff_us;
    return c;
}

typedef struct scene {
    atomic_int flag;   /* set by the other task once it has done its part */
    int spun;          /* the spinner saw the flag (1) or gave up (0) */
    int other_ok;      /* what the other task checked */
    pid_t spinner_tid; /* the thread the spinner ran on, before and after */
    pid_t spinner_tid_after;
    int after_yield; /* weft_yield's result after the spin (the take-back at a call) */
} scene;

/* ---- A spinner and a task of the same worker ------------------------------------------ */

static __attribute__((noinline)) void spin_scene(scene *s)
{
    s->spinner_tid = tid();
    s->spun = spin_until(&s->flag);
    s->spinner_tid_after = tid();
}

/* The body returns with the worker still handed: taken back at its end. Each body clears the
 * stack below its own small frame first, then spins in frames of its callees. */
static void *spinner(void *arg)
{
    clear_stack_below();
    spin_scene(arg);
    return NULL;
}

static __attribute__((noinline)) void spin_then_yield_scene(scene *s)
{
    s->spinner_tid = tid();
    s->spun = spin_until(&s->flag);
    s->after_yield = weft_yield(); /* a weft call takes the worker back first */
    s->spinner_tid_after = tid();
}

static void *spinner_then_yield(void *arg)
{
    clear_stack_below();
    spin_then_yield_scene(arg);
    return NULL;
}

static void *setter(void *arg)
{
    scene *s = arg;
    s->other_ok = 1;
    atomic_store_explicit(&s->flag, 1, memory_order_release);
    return NULL;
}

/* A timer of the same worker: its task sleeps, then sets the flag. */
static void *sleeper(void *arg)
{
    scene *s = arg;
    s->other_ok = weft_sleep(2 * WEFT_MSEC) == 0;
    atomic_store_explicit(&s->flag, 1, memory_order_release);
    return NULL;
}

typedef struct io_scene {
    scene s;
    int fds[2];
} io_scene;

/* I/O of the same worker: reads what a plain thread writes, then sets the flag. */
static void *reader(void *arg)
{
    io_scene *x = arg;
    char c = 0;
    x->s.other_ok = weft_read(x->fds[0], &c, 1, weft_deadline_in(10 * WEFT_SEC)) == 1 && c == 'x';
    atomic_store_explicit(&x->s.flag, 1, memory_order_release);
    return NULL;
}

static void *writer_thread(void *arg)
{
    io_scene *x = arg;
    struct timespec ts = {0, 5000000}; /* after the spin has begun, most likely */
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)write(x->fds[1], "x", 1);
}

typedef struct pair {
    weft_fn spin, other;
    void *arg;
} pair;

static void *run_pair(void *arg)
{
    pair *p = arg;
    weft_task *a, *b;
    cr_assert_eq(weft_spawn(&a, p->spin, p->arg, NULL), 0);
    cr_assert_eq(weft_spawn(&b, p->other, p->arg, NULL), 0);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(b, NULL, WEFT_FOREVER), 0);
    return NULL;
}

static void run_scene(weft_fn spin, weft_fn other, void *arg)
{
    weft_config c = handoff_cfg();
    pair p = {spin, other, arg};
    cr_assert_eq(weft_run(&c, run_pair, &p, NULL), 0);
}

Test(handoff, a_spinning_task_lets_its_worker_run_another_task)
{
    scene s = {0};
    run_scene(spinner, setter, &s);
    cr_assert_eq(s.spun, 1, "the other task never ran while the spinner spun");
    cr_assert_eq(s.other_ok, 1);
    cr_assert_eq(s.spinner_tid_after, s.spinner_tid, "the spinner stays on its thread");
}

/* The spinner spawned child first by a task alone on its worker: the relief thread that
 * takes the worker while the child spins must find the spawner queued (tokio#4941: a task
 * kept in a slot was stranded while its worker was blocked), and run it: it is the one that
 * sets the flag. */
static void *child_first_spawner(void *arg)
{
    scene *s = arg;
    weft_task *a;
    cr_assert_eq(weft_spawn(&a, spinner, s, &(weft_spawn_opts){.flags = WEFT_SPAWN_CHILD_FIRST}),
                 0);
    s->other_ok = 1;
    atomic_store_explicit(&s->flag, 1, memory_order_release);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(handoff, a_child_first_spinner_lets_its_spawner_run)
{
    scene s = {0};
    weft_config c = handoff_cfg();
    cr_assert_eq(weft_run(&c, child_first_spawner, &s, NULL), 0);
    cr_assert_eq(s.spun, 1, "the spawner never ran while its child spun");
    cr_assert_eq(s.other_ok, 1);
    cr_assert_eq(s.spinner_tid_after, s.spinner_tid, "the spinner stays on its thread");
}

Test(handoff, the_worker_is_taken_back_at_the_next_weft_call)
{
    scene s = {0};
    run_scene(spinner_then_yield, setter, &s);
    cr_assert_eq(s.spun, 1);
    cr_assert_eq(s.after_yield, 0);
    cr_assert_eq(s.spinner_tid_after, s.spinner_tid);
}

Test(handoff, a_timer_fires_while_a_task_spins)
{
    scene s = {0};
    run_scene(spinner, sleeper, &s);
    cr_assert_eq(s.spun, 1, "the sleeper's timer never fired while the spinner spun");
    cr_assert_eq(s.other_ok, 1);
}

Test(handoff, io_readiness_is_served_while_a_task_spins)
{
    io_scene x = {0};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, x.fds), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_thread, &x), 0);
    run_scene(spinner, reader, &x);
    void *wr;
    pthread_join(th, &wr);
    cr_assert_eq((intptr_t)wr, 1);
    cr_assert_eq(x.s.spun, 1, "the reader never woke while the spinner spun");
    cr_assert_eq(x.s.other_ok, 1);
    close(x.fds[0]);
    close(x.fds[1]);
}

/* ---- A read a relief thread submitted outlives that thread's idle time ----------------
 * io_uring cancels the requests a thread submitted when the thread exits, so a relief thread
 * that drove a ring stays until the runtime ends (in_place.c, `keep`). Here the spinner's
 * worker goes on on a relief thread, where a reader submits a pipe read (its fd already known
 * to take the plain ring path: one SQE, sent by that thread's next poll) and a follower's
 * 1 ms timer, which fires only from such a poll, ends the spin. The read is answered after
 * 25 times pool_idle_ms. Without `keep` it ended with -ECANCELED. On epoll the same steps
 * hold trivially. */
typedef struct keep_scene {
    scene s; /* first, for spinner(): its flag is set by the follower once the read is in */
    int fds[2];
    pid_t reader_tid;
    ssize_t got;
    char byte;
} keep_scene;

static void *keep_reader(void *arg)
{
    keep_scene *k = arg;
    k->reader_tid = tid();
    k->got = weft_read(k->fds[0], &k->byte, 1, weft_deadline_in(10 * WEFT_SEC));
    return NULL;
}

static void *keep_follower(void *arg)
{
    keep_scene *k = arg;
    weft_sleep(WEFT_MSEC);
    atomic_store_explicit(&k->s.flag, 1, memory_order_release);
    return NULL;
}

static void *keep_main(void *arg)
{
    keep_scene *k = arg;
    char c = 0;
    /* The fd's first read learns its kind (a pipe: no multishot receive) on this thread. */
    cr_assert_eq(write(k->fds[1], "a", 1), 1);
    cr_assert_eq(weft_read(k->fds[0], &c, 1, WEFT_FOREVER), 1);
    weft_task *s, *r, *f;
    cr_assert_eq(weft_spawn(&s, spinner, &k->s, NULL), 0);
    cr_assert_eq(weft_spawn(&r, keep_reader, k, NULL), 0);
    cr_assert_eq(weft_spawn(&f, keep_follower, k, NULL), 0);
    cr_assert_eq(weft_join(s, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(f, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_sleep(500 * WEFT_MSEC), 0); /* a relief thread that could retire has */
    cr_assert_eq(write(k->fds[1], "y", 1), 1);
    cr_assert_eq(weft_join(r, NULL, WEFT_FOREVER), 0);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_geq(st.nhandoffs, 1, "no relief thread took the worker");
    return NULL;
}

Test(handoff, a_read_submitted_by_a_relief_thread_outlives_its_idle_time)
{
    weft_config c = handoff_cfg();
    c.pool_idle_ms = 20;
    keep_scene k = {.got = -1};
    cr_assert_eq(pipe(k.fds), 0);
    cr_assert_eq(weft_run(&c, keep_main, &k, NULL), 0);
    cr_assert_eq(k.s.spun, 1, "the follower never ran while the spinner spun");
    cr_assert_neq(k.reader_tid, k.s.spinner_tid, "the reader ran on the spinner's thread");
    cr_assert_eq(k.got, 1, "the read: %s", weft_strerror((int)k.got));
    cr_assert_eq(k.byte, 'y');
    close(k.fds[0]);
    close(k.fds[1]);
}

/* ---- Many rounds: hand-offs and take-backs in a row ------------------------------------ */

#define ROUNDS 20

static void *rounds_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        scene s = {0};
        weft_task *a, *b;
        cr_assert_eq(weft_spawn(&a, i % 2 ? spinner : spinner_then_yield, &s, NULL), 0);
        cr_assert_eq(weft_spawn(&b, setter, &s, NULL), 0);
        cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(weft_join(b, NULL, WEFT_FOREVER), 0);
        cr_assert_eq(s.spun, 1, "round %d: spun %d other_ok %d tids %d %d", i, s.spun, s.other_ok,
                     s.spinner_tid, s.spinner_tid_after);
        if (i % 2 == 0)
            cr_assert_eq(s.after_yield, 0, "round %d", i);
    }
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    cr_assert_geq(st.nhandoffs, 1, "the worker was handed over at least once");
    return NULL;
}

Test(handoff, twenty_hand_offs_in_a_row)
{
    weft_config c = handoff_cfg();
    cr_assert_eq(weft_run(&c, rounds_main, NULL, NULL), 0);
}

/* ---- Where it must not happen ------------------------------------------------------------ */

/* A spin inside a callback weft makes (weft_once's fn: weft's frames are below it, the once
 * held) is never handed over: the other task does not run until the callback returns. */
typedef struct once_scene {
    weft_once once;
    atomic_int other_ran;
    int ran_during; /* the other task ran while the callback spun */
} once_scene;

static void once_spin(void *arg)
{
    once_scene *o = arg;
    int64_t end = clock_ns() + 50 * 1000000LL; /* 50 handoff_us thresholds */
    while (clock_ns() < end)
        if (atomic_load(&o->other_ran))
            break;
    o->ran_during = atomic_load(&o->other_ran);
}

static void *once_spinner(void *arg)
{
    once_scene *o = arg;
    cr_assert_eq(weft_once_call(&o->once, once_spin, o, WEFT_FOREVER), 0);
    return NULL;
}

static void *mark_ran(void *arg)
{
    once_scene *o = arg;
    atomic_store(&o->other_ran, 1);
    return NULL;
}

Test(handoff, a_spin_inside_a_weft_callback_is_not_handed_over)
{
    static once_scene o;
    memset(&o, 0, sizeof o);
    o.once = (weft_once)WEFT_ONCE_INIT;
    run_scene(once_spinner, mark_ran, &o);
    cr_assert_eq(o.ran_during, 0, "the worker was handed over inside weft_once's callback");
    cr_assert_eq(atomic_load(&o.other_ran), 1);
}

/* Off: the spinner gives up at a short limit, the other task never having run. */
static void *short_spinner(void *arg)
{
    scene *s = arg;
    int64_t end = clock_ns() + 30 * 1000000LL;
    while (!atomic_load(&s->flag) && clock_ns() < end)
        ;
    s->spun = atomic_load(&s->flag);
    return NULL;
}

Test(handoff, handoff_us_negative_is_off)
{
    weft_config c = handoff_cfg();
    c.handoff_us = -1;
    scene s = {0};
    pair p = {short_spinner, setter, &s};
    cr_assert_eq(weft_run(&c, run_pair, &p, NULL), 0);
    cr_assert_eq(s.spun, 0, "a hand-off happened with handoff_us < 0");
    cr_assert_eq(s.other_ok, 1);
}

/* ---- A task blocked in a system call ------------------------------------------------------ */

/* The blocked task reads a pipe with plain read(2), which only the other task of its worker
 * writes: without the hand-off the read would block the worker, and so itself, for ever. A
 * plain thread stands by to write after SPIN_LIMIT_NS, so that a worker that never went on
 * fails the test instead of hanging it; the byte says who wrote. */
typedef struct sys_scene {
    int fds[2];
    atomic_int written; /* 1 once a task or the stand-by thread wrote */
    char got;           /* what the blocked read returned: 't' from the task */
    ssize_t n;          /* the read's result */
    int err;            /* its errno if it failed */
    pid_t tid_before, tid_after;
    int after_yield;
} sys_scene;

static __attribute__((noinline)) void blocked_read_scene(sys_scene *x)
{
    x->tid_before = tid();
    errno = 0;
    x->n = read(x->fds[0], &x->got, 1);
    x->err = errno;
    x->tid_after = tid();
    x->after_yield = weft_yield(); /* the take-back, at a weft call */
}

static void *blocked_reader(void *arg)
{
    clear_stack_below();
    blocked_read_scene(arg);
    return NULL;
}

static void *task_writer(void *arg)
{
    sys_scene *x = arg;
    if (!atomic_exchange(&x->written, 1))
        cr_assert_eq(write(x->fds[1], "t", 1), 1);
    return NULL;
}

static void *standby_writer(void *arg)
{
    sys_scene *x = arg;
    int64_t end = clock_ns() + SPIN_LIMIT_NS;
    while (!atomic_load(&x->written) && clock_ns() < end) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_exchange(&x->written, 1))
        (void)!write(x->fds[1], "f", 1);
    return NULL;
}

/* The hand-off of a thread in a system call reads the call from /proc, in this CPU's
 * numbering: not there under qemu's user-mode emulation (the cross-test), which shows the
 * host's calls. */
static void need_syscall_numbers(void)
{
    if (!weft__restartable_numbering_ok())
        cr_skip_test("/proc does not report system calls in this CPU's numbering (emulated)");
}

/* The hand-off of a thread asleep in a call the signal would cut short is made on x86_64
 * only (handoff.h: aarch64's lr is not in /proc). */
static void need_seize(void)
{
    need_syscall_numbers();
#if !defined(__x86_64__)
    cr_skip_test("a sleeping thread's worker is let go of on x86_64 only");
#endif
}

/* Runs blocked_reader and `other` on one worker, with the stand-by thread. */
static void run_sys_scene(sys_scene *x, weft_fn other)
{
    need_syscall_numbers();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, standby_writer, x), 0);
    run_scene(blocked_reader, other, x);
    atomic_store(&x->written, 1);
    pthread_join(th, NULL);
}

Test(handoff, a_task_blocked_in_a_pipe_read_lets_its_worker_run_another_task)
{
    sys_scene x = {0};
    cr_assert_eq(pipe(x.fds), 0);
    run_sys_scene(&x, task_writer);
    cr_assert_eq(x.n, 1, "read: %zd (errno %d): the signal must not cut it short", x.n, x.err);
    cr_assert_eq(x.got, 't', "the other task never ran while the reader was blocked");
    cr_assert_eq(x.tid_after, x.tid_before, "the blocked task stays on its thread");
    cr_assert_eq(x.after_yield, 0);
    close(x.fds[0]);
    close(x.fds[1]);
}

/* A socket with a receive timeout would see EINTR from the signal (signal(7)): its reader is
 * not signalled. Asleep in the read, it is let go of from the watchdog's thread instead
 * (handoff.h): the other task runs and writes, and the read returns that byte, not EINTR. */
Test(handoff, a_read_of_a_socket_with_a_timeout_lets_its_worker_run_another_task)
{
    /* What is checked: a thread asleep in such a read is not signalled. A thread caught on
     * its way into it (runnable, the call not yet asleep, as a loaded machine can leave it
     * for a millisecond) may still be, since the hand-off signals threads that run (weft.h,
     * handoff_us); a 50 ms threshold keeps the reader from being caught so, whatever the
     * load (a 1 ms one failed about one run in eight with two CPU hogs beside it). */
    scene_handoff_us = 50000;
    need_seize();
    sys_scene x = {0};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, x.fds), 0);
    struct timeval tv = {30, 0};
    cr_assert_eq(setsockopt(x.fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    run_sys_scene(&x, task_writer);
    cr_assert_eq(x.n, 1, "read: %zd (errno %d): cut short by the hand-off", x.n, x.err);
    cr_assert_eq(x.got, 't', "the other task never ran while the reader was asleep");
    cr_assert_eq(x.tid_after, x.tid_before, "the blocked task stays on its thread");
    cr_assert_eq(x.after_yield, 0);
    close(x.fds[0]);
    close(x.fds[1]);
}

/* ---- A task asleep in a call a signal would cut short --------------------------------------
 * poll, epoll_wait and nanosleep return EINTR for a signal whatever SA_RESTART says: such a
 * sleeper is let go of from the watchdog's thread (handoff.h), and its call goes on. */

/* poll (or epoll_wait, `ep` >= 0) of the pipe for up to 30 s, then a read of what came. */
typedef struct poll_scene {
    sys_scene x;
    int ep;       /* an epoll instance holding the pipe's read end, or -1: poll(2) */
    bool no_call; /* the body returns after the read, with no weft call: the take-back at its end */
    int rc;       /* the wait's result */
} poll_scene;

static __attribute__((noinline)) void blocked_poll_scene(poll_scene *p)
{
    sys_scene *x = &p->x;
    x->tid_before = tid();
    errno = 0;
    if (p->ep >= 0) {
        struct epoll_event ev;
        p->rc = epoll_wait(p->ep, &ev, 1, 30000);
    } else {
        struct pollfd pfd = {.fd = x->fds[0], .events = POLLIN};
        p->rc = poll(&pfd, 1, 30000);
    }
    x->err = errno;
    x->n = p->rc == 1 ? read(x->fds[0], &x->got, 1) : -1;
    x->tid_after = tid();
    if (!p->no_call)
        x->after_yield = weft_yield();
}

static void *blocked_poller(void *arg)
{
    clear_stack_below();
    blocked_poll_scene(arg);
    return NULL;
}

static void run_poll_scene(poll_scene *p)
{
    need_seize();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, standby_writer, &p->x), 0);
    run_scene(blocked_poller, task_writer, p);
    atomic_store(&p->x.written, 1);
    pthread_join(th, NULL);
    cr_assert_eq(p->rc, 1, "the wait: %d (errno %d): it must not be cut short", p->rc, p->x.err);
    cr_assert_eq(p->x.n, 1);
    cr_assert_eq(p->x.got, 't', "the other task never ran while the first was asleep");
    cr_assert_eq(p->x.tid_after, p->x.tid_before, "the sleeping task stays on its thread");
    cr_assert_eq(p->x.after_yield, 0);
    close(p->x.fds[0]);
    close(p->x.fds[1]);
}

Test(handoff, a_task_asleep_in_poll_lets_its_worker_run_another_task)
{
    scene_handoff_us = 50000; /* see the socket test above */
    poll_scene p = {.ep = -1};
    cr_assert_eq(pipe(p.x.fds), 0);
    run_poll_scene(&p);
}

/* The same, and the body returns with no weft call after the sleep: its thread takes the
 * worker back at the body's end (the join below sees it finish). */
Test(handoff, a_task_asleep_in_poll_takes_its_worker_back_when_its_body_returns)
{
    scene_handoff_us = 50000; /* see the socket test above */
    poll_scene p = {.ep = -1, .no_call = true};
    cr_assert_eq(pipe(p.x.fds), 0);
    run_poll_scene(&p);
}

Test(handoff, a_task_asleep_in_epoll_wait_lets_its_worker_run_another_task)
{
    scene_handoff_us = 50000; /* see the socket test above */
    poll_scene p = {0};
    cr_assert_eq(pipe(p.x.fds), 0);
    p.ep = epoll_create1(EPOLL_CLOEXEC);
    cr_assert_geq(p.ep, 0);
    struct epoll_event ev = {.events = EPOLLIN};
    cr_assert_eq(epoll_ctl(p.ep, EPOLL_CTL_ADD, p.x.fds[0], &ev), 0);
    run_poll_scene(&p);
    close(p.ep);
}

/* nanosleep cannot be ended by the other task: the sleeper sleeps 100 ms at a time, calling
 * no weft function, until the other task has run (or SPIN_LIMIT_NS has passed). Each sleep
 * must return 0, never EINTR. */
typedef struct nap_scene {
    atomic_int flag;
    int naps, failed, err;
    int64_t elapsed;
    int after_yield;
} nap_scene;

static __attribute__((noinline)) void nap_until_scene(nap_scene *n)
{
    int64_t start = clock_ns();
    while (!atomic_load_explicit(&n->flag, memory_order_acquire) &&
           clock_ns() - start < SPIN_LIMIT_NS) {
        struct timespec ts = {0, 100000000};
        errno = 0;
        if (nanosleep(&ts, NULL) != 0) {
            n->failed++;
            n->err = errno;
        }
        n->naps++;
    }
    n->elapsed = clock_ns() - start;
    n->after_yield = weft_yield();
}

static void *napper(void *arg)
{
    clear_stack_below();
    nap_until_scene(arg);
    return NULL;
}

static void *nap_setter(void *arg)
{
    nap_scene *n = arg;
    atomic_store_explicit(&n->flag, 1, memory_order_release);
    return NULL;
}

Test(handoff, a_task_in_nanosleep_lets_its_worker_run_another_task)
{
    scene_handoff_us = 50000; /* see the socket test above */
    need_seize();
    nap_scene n = {0};
    run_scene(napper, nap_setter, &n);
    cr_assert_eq(atomic_load(&n.flag), 1);
    cr_assert_lt(n.elapsed, SPIN_LIMIT_NS, "the other task never ran while the first slept");
    cr_assert_eq(n.failed, 0, "%d of %d sleeps failed (errno %d): cut short", n.failed, n.naps,
                 n.err);
    cr_assert_eq(n.after_yield, 0);
}

/* Short sleeps around the threshold, so that the watchdog's two looks often straddle a
 * wake: the hand-offs it cancels and those it makes, one after another, with a weft call
 * (the take-back) now and then; the other task counts its turns. A sleep may still see EINTR
 * here, and only that: this thread runs often, and one the stall detector finds running in
 * its own code is asked by the signal, which a sleep begun in the microseconds between the
 * look and the signal receives (the limit weft.h states under handoff_us). */
typedef struct churn_scene {
    int self_every; /* weft_self() after every this many sleeps (a take-back), besides yields */
    weft_task *self;
    int self_wrong;
    atomic_int done;
    int failed, err;
    int yields_failed;
    long turns;
} churn_scene;

static __attribute__((noinline)) void churn_scene_run(churn_scene *c)
{
    unsigned seed = 12345;
    for (int i = 0; i < 1500; i++) {
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)((seed >> 8) % 2500000)}; /* 0-2.5 ms */
        errno = 0;
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR) {
            c->failed++;
            c->err = errno;
        }
        if (i % c->self_every == 0 && weft_self() != c->self)
            c->self_wrong++;
        if (i % 64 == 63 && weft_yield() != 0)
            c->yields_failed++;
    }
    atomic_store_explicit(&c->done, 1, memory_order_release);
}

static void *churner(void *arg)
{
    ((churn_scene *)arg)->self = weft_self();
    clear_stack_below();
    churn_scene_run(arg);
    return NULL;
}

static void *turn_counter(void *arg)
{
    churn_scene *c = arg;
    while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
        c->turns++;
        cr_assert_eq(weft_sleep(WEFT_MSEC / 2), 0);
    }
    return NULL;
}

static void run_churn(int self_every)
{
    need_syscall_numbers();
    churn_scene c = {.self_every = self_every};
    weft_config cfg = handoff_cfg();
    pair p = {churner, turn_counter, &c};
    cr_assert_eq(weft_run(&cfg, run_pair, &p, NULL), 0);
    cr_assert_eq(c.failed, 0, "%d sleeps failed otherwise than by EINTR (errno %d)", c.failed,
                 c.err);
    cr_assert_eq(c.yields_failed, 0);
    cr_assert_eq(c.self_wrong, 0, "weft_self() after a sleep named another task");
    cr_assert_eq(atomic_load(&c.done), 1);
}

Test(handoff, short_sleeps_around_the_threshold_are_handed_over_or_not_but_never_cut_short)
{
    run_churn(64);
}

/* The same with the watchdog pausing 1 ms between its two looks (a WEFT_TESTING seam): most
 * sleepers wake inside the window, and the hand-off is cancelled, by the watchdog's second
 * look or by the sleeper's own take-back (a weft call after every sleep), whichever comes
 * first. */
Test(handoff, sleepers_that_wake_between_the_watchdogs_two_looks_keep_their_worker)
{
    setenv("WEFT_TEST_SEIZE_PAUSE_US", "1000", 1);
    run_churn(1); /* a weft call after every sleep: a take-back inside the window too */
}

/* A sleeper that wakes between the watchdog's first look and its seize (a WEFT_TESTING seam
 * widens that window to 1 ms) and hands its worker over itself, in weft_block_in_place: the
 * seize must neither take the worker from the thread that drives it now nor give it back to
 * the sleeper's thread inside fn, where that thread is no worker's (weft_worker_index()
 * answers -EPERM), every time. (Found by a review: the first version put the worker back.) */
typedef struct bip_scene {
    atomic_int done;
    int calls, wrong, failed;
} bip_scene;

static void *bip_fn(void *arg)
{
    bip_scene *b = arg;
    struct timespec ts = {0, 300000};
    nanosleep(&ts, NULL);
    b->calls++;
    if (weft_worker_index() >= 0)
        b->wrong++;
    return NULL;
}

static __attribute__((noinline)) void bip_run(bip_scene *b)
{
    unsigned seed = 777;
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)((seed >> 8) % 2500000)}; /* 0-2.5 ms */
        nanosleep(&ts, NULL);
        if (weft_block_in_place(bip_fn, b, NULL) != 0)
            b->failed++;
    }
    atomic_store_explicit(&b->done, 1, memory_order_release);
}

static void *bip_task(void *arg)
{
    clear_stack_below();
    bip_run(arg);
    return NULL;
}

static void *bip_counter(void *arg)
{
    bip_scene *b = arg;
    while (!atomic_load_explicit(&b->done, memory_order_acquire))
        cr_assert_eq(weft_sleep(WEFT_MSEC / 2), 0);
    return NULL;
}

Test(handoff, a_sleeper_that_hands_its_worker_over_itself_meanwhile_is_not_seized)
{
    need_syscall_numbers();
    setenv("WEFT_TEST_SEIZE_DELAY_US", "1000", 1);
    bip_scene b = {0};
    weft_config cfg = handoff_cfg();
    pair p = {bip_task, bip_counter, &b};
    cr_assert_eq(weft_run(&cfg, run_pair, &p, NULL), 0);
    cr_assert_eq(b.failed, 0);
    cr_assert_eq(b.calls, 1000);
    cr_assert_eq(b.wrong, 0, "inside weft_block_in_place's fn the thread had a worker %d times",
                 b.wrong);
}

/* The churn with both windows widened: seizes that a wake before the seize turns away, and
 * cancels on both sides after it. */
Test(handoff, sleepers_waking_on_either_side_of_a_seize_keep_their_worker)
{
    setenv("WEFT_TEST_SEIZE_DELAY_US", "700", 1);
    setenv("WEFT_TEST_SEIZE_PAUSE_US", "700", 1);
    run_churn(1);
}

/* A task blocked in pthread_mutex_lock (an untimed futex wait), on a mutex that a plain
 * thread holds until another task of the same worker asks it to let go (or until
 * SPIN_LIMIT_NS has passed, so that a worker that never went on fails instead of hanging). */
typedef struct lock_scene {
    pthread_mutex_t m;
    atomic_int held;    /* the holder has the mutex */
    atomic_int release; /* 1: asked by the task; 2: given up waiting */
    int locked;         /* the blocked task got the mutex */
} lock_scene;

static void *holder_thread(void *arg)
{
    lock_scene *l = arg;
    pthread_mutex_lock(&l->m);
    atomic_store(&l->held, 1);
    int64_t end = clock_ns() + SPIN_LIMIT_NS;
    while (!atomic_load(&l->release) && clock_ns() < end) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    int expected = 0;
    atomic_compare_exchange_strong(&l->release, &expected, 2);
    pthread_mutex_unlock(&l->m);
    return NULL;
}

static __attribute__((noinline)) void blocked_lock_scene(lock_scene *l)
{
    pthread_mutex_lock(&l->m);
    l->locked = 1;
    pthread_mutex_unlock(&l->m);
}

static void *blocked_locker(void *arg)
{
    clear_stack_below();
    blocked_lock_scene(arg);
    return NULL;
}

static void *asks_release(void *arg)
{
    lock_scene *l = arg;
    int expected = 0;
    atomic_compare_exchange_strong(&l->release, &expected, 1);
    return NULL;
}

Test(handoff, a_task_blocked_on_a_pthread_mutex_lets_its_worker_run_another_task)
{
    need_syscall_numbers();
    static lock_scene l;
    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.m, NULL);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, holder_thread, &l), 0);
    while (!atomic_load(&l.held)) /* held before the task tries: it blocks at once */
        sched_yield();
    run_scene(blocked_locker, asks_release, &l);
    pthread_join(th, NULL);
    cr_assert_eq(l.locked, 1);
    cr_assert_eq(atomic_load(&l.release), 1,
                 "the other task never ran while the first was blocked on the mutex");
    pthread_mutex_destroy(&l.m);
}
