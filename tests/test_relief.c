/* weft_block_in_place: the task's worker goes on (its tasks, timers and I/O) while the task
 * blocks its own thread, and the task comes back to the same thread after; several at once on
 * one worker; cancellation before; shutdown while one blocks; the io_uring fallback to the
 * pool; misuse. Each wait in a blocked fn is bounded (10 s), so a worker that did not go on
 * fails the test rather than hanging it; no assertion is about time. Both backends
 * (WEFT_BACKEND from CTest). */
#include <pthread.h>
#include <dirent.h>
#include <semaphore.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static bool on_uring(void)
{
    return strcmp(weft_backend(), "io_uring") == 0;
}

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Waits up to 10 s for s: 0, or -ETIMEDOUT. */
static int sem_wait_10s(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (sem_timedwait(s, &ts) != 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static weft_config one_worker(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    return c;
}

/* ---- The worker goes on --------------------------------------------------------------- */

typedef struct progress {
    sem_t done;    /* posted by the helper task once it has slept and done I/O */
    pid_t fn_tid;  /* the thread fn ran on */
    int helper_ok; /* the helper's sleep and pipe round trip succeeded */
} progress;

/* A task of the same worker: a timer, then a pipe round trip through the reactor, then the
 * semaphore the blocked fn waits for. It can run only if the worker goes on. */
static void *helper(void *arg)
{
    progress *p = arg;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    int ok = weft_sleep(1000000) == 0;
    ok &= weft_write(fds[1], "x", 1, WEFT_FOREVER) == 1;
    char c = 0;
    ok &= weft_read(fds[0], &c, 1, WEFT_FOREVER) == 1 && c == 'x';
    close(fds[0]);
    close(fds[1]);
    p->helper_ok = ok;
    sem_post(&p->done);
    return NULL;
}

static void *wait_for_helper(void *arg)
{
    progress *p = arg;
    p->fn_tid = tid();
    return (void *)(intptr_t)sem_wait_10s(&p->done);
}

static void *goes_on_main(void *arg)
{
    (void)arg;
    progress p = {.fn_tid = 0};
    sem_init(&p.done, 0, 0);
    weft_task *h;
    cr_assert_eq(weft_spawn(&h, helper, &p, NULL), 0);
    pid_t before = tid();
    void *res = (void *)1;
    cr_assert_eq(weft_block_in_place(wait_for_helper, &p, &res), 0);
    cr_assert_eq((intptr_t)res, 0, "the helper task did not run while fn blocked: %s",
                 weft_strerror((int)(intptr_t)res));
    cr_assert(p.helper_ok);
    weft_stats st;
    weft_stats_get(&st);
    if (!on_uring()) /* the helper ran: a relief thread took the worker */
        cr_assert_geq(st.nhandoffs, 1);
    else
        cr_assert_eq(st.nhandoffs, 0);
    if (on_uring()) /* the pool's thread: the ring cannot move */
        cr_assert_neq(p.fn_tid, before);
    else
        cr_assert_eq(p.fn_tid, before, "fn ran on another thread");
    cr_assert_eq(tid(), before, "the task came back on another thread");
    /* Back on its worker: blocking calls work again. */
    cr_assert_eq(weft_sleep(1000), 0);
    cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
    sem_destroy(&p.done);
    return NULL;
}

Test(relief, the_worker_runs_its_tasks_timers_and_io_while_one_blocks_in_place)
{
    weft_config c = one_worker();
    run_main_cfg(&c, goes_on_main, NULL);
}

/* ---- fn runs outside the runtime -------------------------------------------------------- */

static void *try_task_calls(void *arg)
{
    weft_chan *ch = arg;
    int v = 7;
    /* A task-only call is refused; a plain thread's call works (and would block it). */
    intptr_t r = weft_sleep(1000) == -EPERM;
    r &= weft_chan_try_send(ch, &v) == 0;
    r &= weft_self() == NULL;
    return (void *)r;
}

static void *outside_main(void *arg)
{
    (void)arg;
    weft_chan *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 1), 0);
    weft_task *self = weft_self();
    void *res = NULL;
    cr_assert_eq(weft_block_in_place(try_task_calls, ch, &res), 0);
    cr_assert_eq((intptr_t)res, 1, "fn saw the runtime's task calls");
    cr_assert_eq(weft_self(), self);
    int v = 0;
    cr_assert_eq(weft_chan_recv(ch, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 7);
    weft_chan_release(ch);
    return NULL;
}

Test(relief, fn_runs_as_on_a_plain_thread)
{
    weft_config c = one_worker();
    run_main_cfg(&c, outside_main, NULL);
}

/* ---- Several at once on one worker ------------------------------------------------------ */

#define NBLOCKERS 8

typedef struct crowd {
    pthread_barrier_t all_in; /* NBLOCKERS fns: each is in only if the worker went on */
    atomic_int back;          /* tasks that came back and ran on */
} crowd;

typedef struct meeting {
    crowd *c;
    pid_t tid; /* the thread fn ran on */
} meeting;

static void *meet(void *arg)
{
    meeting *m = arg;
    m->tid = tid();
    int r = pthread_barrier_wait(&m->c->all_in);
    return (void *)(intptr_t)(r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD);
}

/* A task's thread is its worker's driver: between two calls it may change (another task of
 * the worker handed it over), but within one the task goes on where fn ran. */
static void *blocker(void *arg)
{
    crowd *c = arg;
    for (int round = 0; round < 3; round++) {
        meeting m = {c, 0};
        void *ok = NULL;
        cr_assert_eq(weft_block_in_place(meet, &m, &ok), 0);
        cr_assert_eq((intptr_t)ok, 1);
        if (!on_uring())
            cr_assert_eq(tid(), m.tid, "the task came back on another thread");
        cr_assert_eq(weft_yield(), 0);
    }
    atomic_fetch_add(&c->back, 1);
    return NULL;
}

static void *crowd_main(void *arg)
{
    (void)arg;
    crowd c;
    /* On io_uring the fns run on the pool: enough threads for all of them at once. */
    int nb = NBLOCKERS;
    pthread_barrier_init(&c.all_in, NULL, (unsigned)nb);
    atomic_init(&c.back, 0);
    weft_task *t[NBLOCKERS];
    for (int i = 0; i < nb; i++)
        cr_assert_eq(weft_spawn(&t[i], blocker, &c, NULL), 0);
    for (int i = 0; i < nb; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    cr_assert_eq(atomic_load(&c.back), nb);
    pthread_barrier_destroy(&c.all_in);
    return NULL;
}

/* The deadlock report off: its bounded sleep would hide a lost doorbell (a take-back that
 * waits for a driver that sleeps for ever then hangs the test, and fails it). */
Test(relief, many_tasks_of_one_worker_block_in_place_at_once)
{
    weft_config c = one_worker();
    c.deadlock = WEFT_DEADLOCK_OFF;
    run_main_cfg(&c, crowd_main, NULL);
}

/* The same on every worker of a runtime, each one's tasks meeting the others'. */
Test(relief, tasks_of_several_workers_block_in_place_at_once)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 3;
    c.deadlock = WEFT_DEADLOCK_OFF;
    run_main_cfg(&c, crowd_main, NULL);
}

/* ---- Cancellation, shutdown, misuse ----------------------------------------------------- */

static atomic_int ran;

static void *count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return NULL;
}

static void *cancelled_main(void *arg)
{
    (void)arg;
    atomic_store(&ran, 0);
    weft_cancel(weft_self());
    cr_assert_eq(weft_block_in_place(count_run, NULL, NULL), -ECANCELED);
    cr_assert_eq(atomic_load(&ran), 0, "fn ran for a cancelled task");
    return NULL;
}

Test(relief, a_cancelled_task_does_not_run_fn)
{
    weft_config c = one_worker();
    run_main_cfg(&c, cancelled_main, NULL);
}

typedef struct late {
    sem_t go;
    atomic_int in_fn; /* fn has started */
    atomic_int after; /* the task ran on after fn, in a runtime shutting down */
} late;

static void *wait_go(void *arg)
{
    atomic_store(&((late *)arg)->in_fn, 1);
    return (void *)(intptr_t)sem_wait_10s(&((late *)arg)->go);
}

static void *late_blocker(void *arg)
{
    late *l = arg;
    void *r = (void *)1;
    cr_assert_eq(weft_block_in_place(wait_go, l, &r), 0);
    cr_assert_eq((intptr_t)r, 0);
    /* The main task has returned meanwhile: the runtime is ending, the task cancelled. */
    atomic_store(&l->after, weft_sleep(1000000) == -ECANCELED ? 1 : -1);
    return NULL;
}

static late the_late;

static void *shutdown_main(void *arg)
{
    (void)arg;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, late_blocker, &the_late, NULL), 0);
    cr_assert_eq(weft_detach(t), 0);
    /* The worker goes on while the blocker is in fn. Waiting for fn to start, not for a
     * fixed time: a timer already due when this task parks (a loaded machine) woke it
     * before the blocker had run at all, which then never ran. */
    for (int i = 0; i < 10000 && !atomic_load(&the_late.in_fn); i++)
        cr_assert_eq(weft_sleep(1000000), 0);
    cr_assert(atomic_load(&the_late.in_fn), "fn started");
    sem_post(&the_late.go);
    return NULL; /* with the blocker still in fn, or on its way back */
}

Test(relief, the_runtime_ends_after_a_task_blocked_in_place_comes_back)
{
    sem_init(&the_late.go, 0, 0);
    atomic_init(&the_late.in_fn, 0);
    atomic_init(&the_late.after, 0);
    weft_config c = one_worker();
    run_main_cfg(&c, shutdown_main, NULL);
    cr_assert_eq(atomic_load(&the_late.after), 1, "the blocked task did not finish its run (%d)",
                 atomic_load(&the_late.after));
    sem_destroy(&the_late.go);
}

/* shutdown_main, and a relief thread drove the worker meanwhile (epoll: io_uring runs fn on
 * the blocking pool instead, and has no relief thread to wait for). */
static void *handed_shutdown_main(void *arg)
{
    shutdown_main(arg);
    weft_stats st;
    weft_stats_get(&st);
    if (!on_uring())
        cr_assert_geq(st.nhandoffs, 1, "no relief thread took the worker");
    return NULL;
}

/* The relief thread that drove the worker while the blocker was in fn goes idle only after
 * the runtime's close has told the idle ones to quit (the test seam makes it linger between
 * its worker's loop and the idle list): it must exit all the same, not wait out pool_idle_ms
 * (ten minutes here, past the test's timeout) while weft_run waits for it. */
Test(relief, the_runtime_ends_when_a_relief_thread_goes_idle_after_the_close, .timeout = 30)
{
    setenv("WEFT_TEST_RELIEF_PAUSE_NS", "50000000", 1);
    sem_init(&the_late.go, 0, 0);
    atomic_init(&the_late.in_fn, 0);
    atomic_init(&the_late.after, 0);
    weft_config c = one_worker();
    c.pool_idle_ms = 600000;
    run_main_cfg(&c, handed_shutdown_main, NULL);
    unsetenv("WEFT_TEST_RELIEF_PAUSE_NS");
    cr_assert_eq(atomic_load(&the_late.after), 1, "the blocked task did not finish its run (%d)",
                 atomic_load(&the_late.after));
    sem_destroy(&the_late.go);
}

Test(relief, outside_a_runtime_fn_just_runs)
{
    atomic_store(&ran, 0);
    void *r = (void *)1;
    cr_assert_eq(weft_block_in_place(count_run, NULL, &r), 0);
    cr_assert_eq(atomic_load(&ran), 1);
    cr_assert_null(r);
    cr_assert_eq(weft_block_in_place(NULL, NULL, NULL), -EINVAL);
}

static void *null_fn_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_block_in_place(NULL, NULL, NULL), -EINVAL);
    return NULL;
}

Test(relief, a_null_fn_is_refused)
{
    run_main(null_fn_main, NULL);
}

/* A stackless task cannot block: -EPERM, and fn does not run. */
static int in_place_poll(weft_future *f, weft_context *cx)
{
    (void)cx;
    weft_future_complete(f, 0, (void *)(intptr_t)weft_block_in_place(count_run, NULL, NULL));
    return WEFT_READY;
}

static const weft_future_ops in_place_ops = {in_place_poll, NULL};

static void *stackless_main(void *arg)
{
    (void)arg;
    atomic_store(&ran, 0);
    weft_future f;
    weft_future_init(&f, &in_place_ops);
    weft_task *t;
    cr_assert_eq(weft_spawn_future(&t, &f, NULL), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, -EPERM);
    cr_assert_eq(atomic_load(&ran), 0);
    return NULL;
}

Test(relief, a_stackless_task_gets_eperm)
{
    run_main(stackless_main, NULL);
}

/* ---- The task dump names a task that blocks in place ------------------------------------- */

static void *in_place_named(void *arg)
{
    return (void *)(intptr_t)weft_block_in_place(wait_go, arg, NULL);
}

static void *dump_main(void *arg)
{
    (void)arg;
    late l;
    sem_init(&l.go, 0, 0);
    weft_task *t;
    weft_spawn_opts o = {.name = "inplace"};
    cr_assert_eq(weft_spawn(&t, in_place_named, &l, &o), 0);
    cr_assert_eq(weft_sleep(1000000), 0); /* the worker went on: the task is in fn */
    int fd = memfd_create("dump", 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_dump_tasks(fd), 0);
    char text[1 << 14];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    sem_post(&l.go);
    cr_assert_gt(n, 0);
    text[n] = '\0';
    /* On io_uring fn runs on the pool, and the task is parked there. */
    const char *want = on_uring() ? "\"inplace\" on worker 0: parked on"
                                  : "\"inplace\" on worker 0: running (inside weft_block_in_place";
    cr_assert_not_null(strstr(text, want), "%s", text);
    void *r = (void *)1;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    sem_destroy(&l.go);
    return NULL;
}

Test(relief, the_task_dump_names_a_task_inside_block_in_place)
{
    weft_config c = one_worker();
    run_main_cfg(&c, dump_main, NULL);
}

/* ---- The relief threads: a limit, and idle ones retire ------------------------------------ */

static int nthreads_now(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Past pool_threads relief threads, fn runs on the blocking pool: six tasks of one worker
 * block in place for 200 ms each, so that each lends the worker on to a new relief thread
 * while the others are in fn; with a limit of 2 the process never has more than 2 relief
 * threads and 2 pool threads besides its own. */
static atomic_int limit_most, limit_base;

static void *long_fn(void *arg)
{
    (void)arg;
    int n = nthreads_now();
    int m = atomic_load(&limit_most);
    while (n > m && !atomic_compare_exchange_weak(&limit_most, &m, n))
        ;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return (void *)7;
}

static void *limited_blocker(void *arg)
{
    (void)arg;
    void *r = NULL;
    cr_assert_eq(weft_block_in_place(long_fn, NULL, &r), 0);
    cr_assert_eq((intptr_t)r, 7);
    return NULL;
}

static void *limit_main(void *arg)
{
    (void)arg;
    atomic_store(&limit_base, nthreads_now());
    atomic_store(&limit_most, 0);
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_spawn(&t[i], limited_blocker, NULL, NULL), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(relief, past_the_relief_thread_limit_fn_runs_on_the_pool)
{
    weft_config c = one_worker();
    c.pool_threads = 2;
    c.stall_ms = -1; /* no watchdog thread to count */
    run_main_cfg(&c, limit_main, NULL);
    int most = atomic_load(&limit_most), base = atomic_load(&limit_base);
    cr_assert_leq(most, base + 4, "%d threads at most, %d before: more than 2 relief and 2 pool",
                  most, base);
}

static void *retire_main(void *arg)
{
    (void)arg;
    if (on_uring()) /* fn runs on the pool there: no relief thread to see */
        return NULL;
    int before = nthreads_now();
    progress p = {.fn_tid = 0};
    sem_init(&p.done, 0, 0);
    weft_task *h;
    cr_assert_eq(weft_spawn(&h, helper, &p, NULL), 0);
    void *res = (void *)1;
    cr_assert_eq(weft_block_in_place(wait_for_helper, &p, &res), 0); /* a relief thread ran */
    cr_assert_eq((intptr_t)res, 0);
    cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
    /* A relief thread took the worker (the counter: the thread may already have retired,
     * 20 ms idle being no promise on a loaded machine). */
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_geq(st.nhandoffs, 1, "no relief thread took the worker");
    /* Idle for pool_idle_ms (20 ms), it exits: looked at for up to 10 s. */
    int n = 0;
    for (int i = 0; i < 1000 && (n = nthreads_now()) > before; i++)
        weft_sleep(10 * WEFT_MSEC);
    cr_assert_eq(n, before, "%d threads, %d before: the idle relief thread stayed", n, before);
    sem_destroy(&p.done);
    return NULL;
}

Test(relief, an_idle_relief_thread_exits_after_pool_idle_ms)
{
    weft_config c = one_worker();
    c.pool_idle_ms = 20;
    c.stall_ms = -1; /* no watchdog thread to count */
    run_main_cfg(&c, retire_main, NULL);
}

/* ---- The runtime's end waits for the relief threads' own end ----------------------------
 * As for the pool's threads (test_pool.c): a relief thread that said it had gone still runs
 * its thread's teardown (TSD destructors, glibc's per-thread state). A task that runs on the
 * relief thread while its worker's own thread blocks in fn leaves a value whose destructor
 * takes 30 ms; weft_run must return only after it ran, whether the thread retired while idle
 * or was told to quit by the close. On io_uring fn runs on the pool's thread instead, and the
 * value is set there (the pool's chain of exits). */

typedef struct relief_teardown {
    pthread_key_t key;
    sem_t set; /* posted once the value is set on a thread other than fn's */
    atomic_int ended;
    bool retire_first;
    bool uring; /* weft_backend() is NULL in fn, which runs outside the runtime */
} relief_teardown;

static void slow_relief_destructor(void *arg)
{
    relief_teardown *td = arg;
    usleep(30 * 1000);
    atomic_fetch_add(&td->ended, 1);
}

static void *set_on_relief_thread(void *arg)
{
    relief_teardown *td = arg;
    cr_assert_eq(pthread_setspecific(td->key, td), 0);
    sem_post(&td->set);
    return NULL;
}

static void *wait_for_value(void *arg)
{
    relief_teardown *td = arg;
    if (td->uring) /* fn is on the pool's thread: that is the one to end */
        return set_on_relief_thread(td), (void *)0;
    return (void *)(intptr_t)sem_wait_10s(&td->set);
}

static void *relief_teardown_main(void *arg)
{
    relief_teardown *td = arg;
    td->uring = on_uring();
    weft_task *h = NULL;
    if (!td->uring)
        cr_assert_eq(weft_spawn(&h, set_on_relief_thread, td, NULL), 0);
    void *res = (void *)1;
    cr_assert_eq(weft_block_in_place(wait_for_value, td, &res), 0);
    cr_assert_eq((intptr_t)res, 0, "the task did not run while fn blocked");
    if (h)
        cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
    weft_stats st;
    weft_stats_get(&st);
    if (!on_uring())
        cr_assert_geq(st.nhandoffs, 1, "no relief thread took the worker");
    if (td->retire_first) /* the idle limit is 5 ms: let the thread retire before the close */
        weft_sleep(100 * WEFT_MSEC);
    return NULL;
}

static void relief_runs_until_teardown_ends(bool retire_first)
{
    relief_teardown td = {.retire_first = retire_first};
    cr_assert_eq(pthread_key_create(&td.key, slow_relief_destructor), 0);
    sem_init(&td.set, 0, 0);
    weft_config c = one_worker();
    c.pool_idle_ms = retire_first ? 5 : 600000;
    run_main_cfg(&c, relief_teardown_main, &td);
    cr_assert_geq(atomic_load(&td.ended), 1,
                  "weft_run returned before the relief thread's teardown ended");
    sem_destroy(&td.set);
    pthread_key_delete(td.key);
}

Test(relief, weft_run_returns_after_the_relief_threads_have_ended_not_only_said_so, .timeout = 30)
{
    relief_runs_until_teardown_ends(false);
    relief_runs_until_teardown_ends(true);
}
