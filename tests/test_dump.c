/* Task dumps and the deadlock report: weft_dump_tasks lists every task of every worker with
 * its state, wait, stack and backtrace; a runtime whose tasks are all asleep says so and
 * exits with status 2 (or only reports, or does nothing, as configured), and one whose tasks
 * wait on something outside it (a timer, a thread that shows itself, a runtime handle held
 * outside) is left alone. The deadlocking runtimes run in forked children whose stderr the
 * test reads. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* What a child wrote on the pipe: until it closed it (it exited), `ms` passed, or `needle`
 * appeared and `linger_ms` more passed (to see whether more comes). */
static char *read_until(int fd, int ms, const char *needle, int linger_ms)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    buf[0] = '\0';
    int64_t until = weft_now() + (int64_t)ms * WEFT_MSEC;
    bool seen = false;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (weft_now() < until && len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n == 0)
            break;
        if (n < 0) {
            usleep(2000);
            continue;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (!seen && needle && strstr(buf, needle)) {
            seen = true;
            until = weft_now() + (int64_t)linger_ms * WEFT_MSEC;
        }
    }
    buf[len] = '\0';
    return buf;
}

static char *read_all(int fd, int ms)
{
    return read_until(fd, ms, NULL, 0);
}

/* ---- weft_dump_tasks ---- */

static weft_mutex d_mu = WEFT_MUTEX_INIT;
static weft_chan *d_chan;

static void *hold_mutex(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_mutex_lock(&d_mu, WEFT_FOREVER), 0);
    weft_sleep(3600 * WEFT_SEC); /* until cancelled */
    weft_mutex_unlock(&d_mu);
    return NULL;
}

static void *want_mutex(void *arg)
{
    (void)arg;
    weft_mutex_lock(&d_mu, WEFT_FOREVER);
    weft_mutex_unlock(&d_mu);
    return NULL;
}

static void *receive(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(d_chan, &v, WEFT_FOREVER);
    return NULL;
}

static void *dump_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&d_chan, sizeof(int), 0), 0);
    weft_task *holder, *waiter, *recv;
    weft_spawn_opts o = {.name = "holder"};
    int holder_line = __LINE__ + 1;
    cr_assert_eq(weft_spawn(&holder, hold_mutex, NULL, &o), 0);
    weft_yield(); /* it takes the mutex and sleeps */
    o.name = "waiter";
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &waiter, want_mutex, NULL, &o), 0);
    o.name = "receiver";
    /* The plain function: no site, the parent only. */
    cr_assert_eq((weft_spawn_on)(weft_worker_count() - 1, &recv, receive, NULL, &o), 0);
    weft_sleep(20 * WEFT_MSEC); /* every one parked */

    int fd = memfd_create("dump", 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_dump_tasks(fd), 0);
    char text[1 << 15];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    cr_assert_gt(n, 0);
    text[n] = '\0';
    close(fd);
    char want[128];
    snprintf(want, sizeof want, "4 tasks on %u workers", weft_worker_count());
    cr_assert_not_null(strstr(text, want), "%s", text);
    /* The dumping task waits for the task that writes its own worker's part. */
    cr_assert_not_null(strstr(text, "\"main\" on worker 0: parked on join of task"), "%s", text);
    cr_assert_not_null(strstr(text, "\"holder\" on worker 0: parked on sleep"), "%s", text);
    cr_assert_not_null(strstr(text, "deadline in"), "%s", text);
    snprintf(want, sizeof want, "\"waiter\" on worker %u: parked on mutex %p, held by task %llu",
             weft_worker_count() - 1, (void *)&d_mu, (unsigned long long)weft_task_id(holder));
    cr_assert_not_null(strstr(text, want), "want '%s' in:\n%s", want, text);
    cr_assert_not_null(strstr(text, "\"receiver\""), "%s", text);
    cr_assert_not_null(strstr(text, "parked on channel receive"), "%s", text);
    cr_assert_not_null(strstr(text, "KiB touched"), "%s", text);
    /* Spawn sites: the macro's file:line, and the parent (the main task, id 1). */
    snprintf(want, sizeof want, "    created by task %llu at %s:%d\n",
             (unsigned long long)weft_task_id(weft_self()), __FILE__, holder_line);
    cr_assert_not_null(strstr(text, want), "want '%s' in:\n%s", want, text);
    const char *r = strstr(text, "\"receiver\"");
    cr_assert_not_null(r);
    snprintf(want, sizeof want, "\n    created by task %llu\n",
             (unsigned long long)weft_task_id(weft_self()));
    cr_assert_not_null(strstr(r, want), "want '%s' in:\n%s", want, r);
    cr_assert_not_null(strstr(text, "\"main\" on worker 0: parked on join of task"), "%s", text);
    cr_assert_not_null(strstr(strstr(text, "\"main\" on worker 0"), "created outside any task"),
                       "%s", text);
    /* Backtraces: frames down to the task's entry (this program links weft statically,
     * whose symbols are then not in its dynamic table: module+offset only). */
    cr_assert_not_null(strstr(text, "    #4 0x"), "%s", text);

    cr_assert_eq(weft_dump_tasks(-1), -EBADF);
    weft_cancel(holder);
    weft_chan_close(d_chan);
    cr_assert_eq(weft_join(holder, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(waiter, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(recv, NULL, WEFT_FOREVER), 0);
    weft_chan_release(d_chan);
    return NULL;
}

Test(dump, every_task_with_its_wait_stack_and_backtrace)
{
    for (unsigned n = 1; n <= 2; n++) {
        weft_config c;
        weft_config_init(&c);
        c.workers = n;
        c.deadlock = WEFT_DEADLOCK_OFF;
        run_main_cfg(&c, dump_main, NULL);
    }
    cr_assert_eq(weft_dump_tasks(1), -EPERM, "outside a runtime");
}

/* ---- The deadlock report ---- */

/* The report's grace period in the tests that set it (.init = short_grace): each report
 * waits it out once, so it is 200 ms here, not the runtime's 1 s (WEFT_TEST_DEADLOCK_GRACE_NS,
 * a knob of WEFT_TESTING builds, read by each runtime at its creation). A wait that must
 * outlast the grace ("past the grace period") lasts PAST_GRACE_MS, three of them: a wrong
 * verdict would come one grace into it, with two more to spare on a loaded machine. Without
 * the knob the grace stays 1 s, and the waits with it. */
#ifdef WEFT_TESTING
#define GRACE_MS 200
#else
#define GRACE_MS 1000
#endif
#define PAST_GRACE_MS (3 * GRACE_MS)

static void short_grace(void)
{
    char ns[32];
    snprintf(ns, sizeof ns, "%lld", (long long)GRACE_MS * 1000000);
    setenv("WEFT_TEST_DEADLOCK_GRACE_NS", ns, 1);
}

static weft_mutex l_a = WEFT_MUTEX_INIT, l_b = WEFT_MUTEX_INIT;
static weft_waitgroup l_wg = WEFT_WAITGROUP_INIT;

static void *lock_ab(void *arg)
{
    weft_mutex *first = arg, *second = first == &l_a ? &l_b : &l_a;
    weft_mutex_lock(first, WEFT_FOREVER);
    weft_waitgroup_done(&l_wg);
    weft_waitgroup_wait(&l_wg, WEFT_FOREVER); /* both hold their first lock */
    weft_mutex_lock(second, WEFT_FOREVER);
    return NULL;
}

static void *deadlock_main(void *arg)
{
    (void)arg;
    weft_waitgroup_add(&l_wg, 2);
    weft_task *a, *b;
    weft_spawn_opts o = {.name = "takes-a-then-b"};
    weft_spawn(&a, lock_ab, &l_a, &o);
    o.name = "takes-b-then-a";
    weft_spawn_on(weft_worker_count() - 1, &b, lock_ab, &l_b, &o);
    weft_join(a, NULL, WEFT_FOREVER);
    return NULL;
}

/* Runs `fn` in a runtime configured as `c` in a child whose stderr comes back on *err_fd;
 * returns the child's pid. */
static pid_t run_child_cfg(weft_fn fn, const weft_config *c, int *err_fd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        int r = weft_run(c, fn, NULL, NULL);
        coverage_dump();
        _exit(r == 0 ? 0 : 1);
    }
    close(p[1]);
    *err_fd = p[0];
    return pid;
}

/* The same with `workers` workers and the deadlock `policy`. */
static pid_t run_child(weft_fn fn, unsigned workers, int policy, int *err_fd)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = workers;
    c.deadlock = policy;
    return run_child_cfg(fn, &c, err_fd);
}

/* Runs `fn` as run_child does, to the child's end: returns its stderr (malloc'd) and stores
 * its exit status (the child's own, or -1 if a signal ended it) in *code. */
static char *run_to_end(weft_fn fn, unsigned workers, int policy, int *code)
{
    int fd;
    pid_t pid = run_child(fn, workers, policy, &fd);
    char *text = read_all(fd, 30000);
    close(fd);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return text;
}

Test(dump, a_deadlock_is_reported_and_exits_with_status_2, .init = short_grace)
{
    for (unsigned n = 1; n <= 2; n++) {
        int code;
        char *text = run_to_end(deadlock_main, n, WEFT_DEADLOCK_DEFAULT, &code);
        cr_assert_eq(code, 2, "exit %d:\n%s", code, text);
        cr_assert_not_null(strstr(text, "weft: all tasks are asleep: deadlock!"), "%s", text);
        cr_assert_not_null(strstr(text, "\"takes-a-then-b\""), "%s", text);
        cr_assert_not_null(strstr(text, "\"takes-b-then-a\""), "%s", text);
        cr_assert_not_null(strstr(text, "parked on mutex"), "%s", text);
        cr_assert_not_null(strstr(text, "\"main\" on worker 0: parked on join of task"), "%s",
                           text);
        cr_assert_not_null(strstr(text, "exiting with status 2"), "%s", text);
        free(text);
    }
}

/* A wait on the blocking pool lasting past the grace period is not a deadlock; the deadlock
 * that follows it is reported all the same (a verdict of "none" is not kept once tasks ran). */
static void *long_job(void *arg)
{
    (void)arg;
    usleep(PAST_GRACE_MS * 1000);
    return NULL;
}

static void *after_pool_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    weft_chan_create(&c, sizeof(int), 0);
    weft_blocking(long_job, NULL, NULL, WEFT_FOREVER);
    int v;
    weft_chan_recv(c, &v, WEFT_FOREVER);
    return NULL;
}

Test(dump, a_pool_job_is_not_a_deadlock_but_what_follows_is, .init = short_grace)
{
    for (unsigned n = 1; n <= 2; n++) {
        int code;
        int64_t start = weft_now();
        char *text = run_to_end(after_pool_main, n, WEFT_DEADLOCK_EXIT, &code);
        cr_assert_eq(code, 2, "exit %d:\n%s", code, text);
        cr_assert_not_null(strstr(text, "parked on channel receive"), "%s", text);
        cr_assert_null(strstr(text, "blocking-pool job"), "reported during the job:\n%s", text);
        cr_assert_geq(weft_now() - start, PAST_GRACE_MS * WEFT_MSEC,
                      "reported before the job ended");
        free(text);
    }
}

Test(dump, report_only_reports_once_and_off_says_nothing, .init = short_grace)
{
    int fd;
    pid_t pid = run_child(deadlock_main, 2, WEFT_DEADLOCK_REPORT, &fd);
    /* One report, then not another over two more grace periods (and some). */
    char *text = read_until(fd, 20000, "all tasks are asleep", PAST_GRACE_MS);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fd);
    const char *first = strstr(text, "all tasks are asleep");
    cr_assert_not_null(first, "%s", text);
    cr_assert_null(strstr(first + 1, "all tasks are asleep"), "reported twice:\n%s", text);
    cr_assert_not_null(strstr(text, "running on"), "%s", text);
    free(text);

    /* Nothing at all: the stall detector off too (a loaded machine's slow tick was reported
     * as a stall, on stderr with the rest: a CI failure of this test, session 27). */
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.deadlock = WEFT_DEADLOCK_OFF;
    c.stall_ms = -1;
    pid = run_child_cfg(deadlock_main, &c, &fd);
    text = read_all(fd, PAST_GRACE_MS); /* a report would come one grace in */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fd);
    cr_assert_eq(text[0], '\0', "off, yet: %s", text);
    free(text);
}

/* A sleep with no end is ended only by a cancel: with every task parked, none can come. A
 * task joining one that sleeps for ever on another worker is the shape of a lost cancel,
 * which ran to the test's timeout before this verdict. */
static void *sleeps_for_ever(void *arg)
{
    (void)arg;
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *join_sleeper_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn_opts o = {.name = "sleeps-for-ever"};
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, sleeps_for_ever, NULL, &o), 0);
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

Test(dump, a_sleep_with_no_end_everywhere_is_a_deadlock, .init = short_grace)
{
    for (unsigned n = 1; n <= 2; n++) {
        int code;
        char *text = run_to_end(join_sleeper_main, n, WEFT_DEADLOCK_DEFAULT, &code);
        cr_assert_eq(code, 2, "exit %d:\n%s", code, text);
        cr_assert_not_null(strstr(text, "weft: all tasks are asleep: deadlock!"), "%s", text);
        cr_assert_not_null(strstr(text, "\"sleeps-for-ever\" on worker"), "%s", text);
        cr_assert_not_null(strstr(text, "parked on sleep"), "%s", text);
        free(text);
    }
}

/* ---- Not a deadlock: something outside the runtime can still act ---- */

static weft_chan *o_chan;

static void *late_sender(void *arg)
{
    (void)arg;
    usleep(50 * 1000); /* well inside the grace period */
    int v = 42;
    weft_chan_send(o_chan, &v, WEFT_FOREVER);
    return NULL;
}

static void *outside_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&o_chan, sizeof(int), 0), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, late_sender, NULL), 0);
    int v = 0;
    /* Parked on a channel only a thread outside the runtime will send on. */
    cr_assert_eq(weft_chan_recv(o_chan, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 42);
    pthread_join(th, NULL);
    weft_chan_release(o_chan);
    /* A runtime handle held outside: the thread may spawn at any time. Parked past the
     * grace period on a channel nobody sends on, woken by a task the thread spawns. */
    weft_runtime *rt = weft_runtime_current();
    cr_assert_eq(weft_chan_create(&o_chan, sizeof(int), 0), 0);
    return rt;
}

static void *send_one(void *arg)
{
    int v = 7;
    weft_chan_send(arg, &v, WEFT_FOREVER);
    return NULL;
}

static void *handle_thread(void *arg)
{
    usleep(PAST_GRACE_MS * 1000); /* past the grace period */
    weft_runtime_spawn(arg, NULL, send_one, o_chan, NULL);
    return NULL;
}

static void *held_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = outside_main(NULL);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, handle_thread, rt), 0);
    int v = 0;
    cr_assert_eq(weft_chan_recv(o_chan, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 7);
    pthread_join(th, NULL);
    weft_runtime_release(rt);
    weft_chan_release(o_chan);
    return NULL;
}

/* A mutex held by a thread outside the runtime for longer than the grace period. */
static weft_mutex held_mu = WEFT_MUTEX_INIT;
static atomic_int held_taken;

static void *holding_thread(void *arg)
{
    (void)arg;
    weft_mutex_lock(&held_mu, WEFT_FOREVER);
    atomic_store(&held_taken, 1); /* no weft call: the runtime must not hear of this thread */
    usleep(PAST_GRACE_MS * 1000);
    weft_mutex_unlock(&held_mu);
    return NULL;
}

static void *thread_lock_main(void *arg)
{
    (void)arg;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, holding_thread, NULL), 0);
    while (!atomic_load(&held_taken))
        weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_mutex_lock(&held_mu, WEFT_FOREVER), 0, "parked on the thread's lock");
    cr_assert_eq(weft_mutex_unlock(&held_mu), 0);
    pthread_join(th, NULL);
    return NULL;
}

Test(dump, a_lock_held_by_a_thread_outside_is_not_a_deadlock, .init = short_grace)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_EXIT; /* a wrong verdict would end this test's process */
    run_main_cfg(&c, thread_lock_main, NULL);
}

/* The same lock held by a task of another runtime (found by a cross-runtime probe: the
 * holder's record has a worker, so it counted as one of ours, and the check ended the
 * process while the other runtime was about to let go). */
static weft_mutex rt_held_mu = WEFT_MUTEX_INIT;
static atomic_int rt_held_taken;

static void *other_runtime_holder(void *arg)
{
    (void)arg;
    weft_mutex_lock(&rt_held_mu, WEFT_FOREVER);
    atomic_store(&rt_held_taken, 1);
    weft_sleep(PAST_GRACE_MS * WEFT_MSEC); /* past the grace period */
    weft_mutex_unlock(&rt_held_mu);
    return NULL;
}

static void *other_runtime_thread(void *arg)
{
    (void)arg;
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_OFF;
    return (void *)(intptr_t)weft_run(&c, other_runtime_holder, NULL, NULL);
}

static void *other_runtime_lock_main(void *arg)
{
    (void)arg;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_runtime_thread, NULL), 0);
    while (!atomic_load(&rt_held_taken))
        weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_mutex_lock(&rt_held_mu, WEFT_FOREVER), 0, "parked on the other's lock");
    cr_assert_eq(weft_mutex_unlock(&rt_held_mu), 0);
    void *r;
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, 0);
    return NULL;
}

Test(dump, a_lock_held_by_a_task_of_another_runtime_is_not_a_deadlock, .init = short_grace)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_EXIT; /* a wrong verdict would end this test's process */
    run_main_cfg(&c, other_runtime_lock_main, NULL);
}

/* A read hold taken by a plain thread, a once whose function a plain thread runs, and a read
 * hold of a task of another runtime: a task waiting on each is not deadlocked (found by a
 * hostile review: read holds have no owner, a once's runner was not looked at, and the check
 * ended the correct program with status 2 a second before the holder let go). */
static weft_rwlock outside_rw = WEFT_RWLOCK_INIT;
static weft_once outside_once = WEFT_ONCE_INIT;
static atomic_int outside_taken;

static void outside_once_fn(void *arg)
{
    (void)arg;
    atomic_store(&outside_taken, 1);
    usleep(PAST_GRACE_MS * 1000); /* past the grace period */
}

static void *outside_reader_thread(void *arg)
{
    if (arg) {
        weft_once_call(&outside_once, outside_once_fn, NULL, WEFT_FOREVER);
        return NULL;
    }
    weft_rwlock_rdlock(&outside_rw, WEFT_FOREVER);
    atomic_store(&outside_taken, 1);
    usleep(PAST_GRACE_MS * 1000);
    weft_rwlock_unlock(&outside_rw);
    return NULL;
}

static void *other_runtime_reader(void *arg)
{
    (void)arg;
    weft_rwlock_rdlock(&outside_rw, WEFT_FOREVER);
    atomic_store(&outside_taken, 1);
    weft_sleep(PAST_GRACE_MS * WEFT_MSEC);
    weft_rwlock_unlock(&outside_rw);
    return NULL;
}

static void *other_runtime_reader_thread(void *arg)
{
    (void)arg;
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_OFF;
    return (void *)(intptr_t)weft_run(&c, other_runtime_reader, NULL, NULL);
}

static void *outside_holds_main(void *arg)
{
    (void)arg;
    for (int phase = 0; phase < 3; phase++) {
        atomic_store(&outside_taken, 0);
        pthread_t th;
        cr_assert_eq(
            pthread_create(&th, NULL,
                           phase == 2 ? other_runtime_reader_thread : outside_reader_thread,
                           phase == 1 ? (void *)1 : NULL),
            0);
        while (!atomic_load(&outside_taken))
            weft_sleep(WEFT_MSEC);
        if (phase == 1) {
            cr_assert_eq(weft_once_call(&outside_once, outside_once_fn, NULL, WEFT_FOREVER), 0);
        } else {
            cr_assert_eq(weft_rwlock_wrlock(&outside_rw, WEFT_FOREVER), 0, "phase %d", phase);
            cr_assert_eq(weft_rwlock_unlock(&outside_rw), 0);
        }
        void *r;
        pthread_join(th, &r);
        cr_assert_eq((intptr_t)r, 0);
    }
    return NULL;
}

Test(dump, read_holds_and_a_once_run_from_outside_are_not_a_deadlock, .timeout = 30,
     .init = short_grace)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.deadlock = WEFT_DEADLOCK_EXIT; /* a wrong verdict would end this test's process */
    run_main_cfg(&c, outside_holds_main, NULL);
}

Test(dump, waits_on_the_outside_are_not_a_deadlock)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.deadlock = WEFT_DEADLOCK_EXIT; /* a wrong verdict would end this test's process */
    run_main_cfg(&c, held_main, NULL);
}

/* A runtime handle held outside is the only sign of the outside: no thread outside has woken
 * a task before (held_main's late sender had, which alone rules the verdict out, and with the
 * 1 s grace its spawn came inside the grace: it passed with the handle's check taken out). */
static void *handle_only_main(void *arg)
{
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert_not_null(rt);
    cr_assert_eq(weft_chan_create(&o_chan, sizeof(int), 0), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, handle_thread, rt), 0);
    int v = 0;
    cr_assert_eq(weft_chan_recv(o_chan, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 7);
    pthread_join(th, NULL);
    weft_runtime_release(rt);
    weft_chan_release(o_chan);
    return NULL;
}

Test(dump, a_runtime_handle_held_outside_is_not_a_deadlock, .init = short_grace)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.deadlock = WEFT_DEADLOCK_EXIT; /* a wrong verdict would end this test's process */
    run_main_cfg(&c, handle_only_main, NULL);
}

/* ---- The stall detector ---- */

static __attribute__((noinline)) void spin_for(int64_t ns)
{
    int64_t end = weft_now() + ns;
    struct timespec ts;
    do
        clock_gettime(CLOCK_MONOTONIC, &ts); /* weft_now() is the tick's clock: it stands still */
    while ((int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec < end);
}

static void *spinner(void *arg)
{
    spin_for(arg ? (int64_t)(intptr_t)arg * WEFT_MSEC : 100 * WEFT_MSEC);
    return NULL;
}

static void *in_usleep(void *arg)
{
    (void)arg;
    /* A blocking call weft does not see: the detector must not interrupt it. */
    return (void *)(intptr_t)usleep(100 * 1000);
}

static void *stall_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn_opts o = {.name = "spinner"};
    /* 300 ms: reported at 10 ms, then again as the stall reaches 20, 40, 80, 160 ms. */
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, spinner, (void *)300, &o), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    o.name = "sleeper";
    cr_assert_eq(weft_spawn(&t, in_usleep, NULL, &o), 0);
    void *r = (void *)1;
    cr_assert_eq(weft_join(t, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, NULL, "usleep was interrupted");
    return NULL;
}

Test(dump, a_stall_is_reported_with_its_backtrace_and_again_as_it_doubles)
{
    int code;
    setenv("WEFT_HANDOFF_US", "0", 1); /* the spinner keeps its worker (this process only) */
    char *text = run_to_end(stall_main, 2, WEFT_DEADLOCK_OFF, &code);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, text);
    const char *spin = strstr(text, "\"spinner\" on worker 1 has run for");
    cr_assert_not_null(spin, "%s", text);
    cr_assert_null(strstr(spin + 1, "\"spinner\" on worker 1 has run for"),
                   "the first report twice:\n%s", text);
    cr_assert_not_null(strstr(spin, "its backtrace now:\n    #0 0x"), "%s", text);
    /* The same stall again once it has doubled, with a backtrace of its own. */
    const char *again = strstr(spin, "\"spinner\" on worker 1 is still running after ");
    cr_assert_not_null(again, "%s", text);
    double ms = atof(again + strlen("\"spinner\" on worker 1 is still running after "));
    cr_assert_geq(ms, 20.0, "%s", text);
    cr_assert_not_null(strstr(again, "its backtrace now:\n    #0 0x"), "%s", text);
    cr_assert_not_null(strstr(text, "on worker 0 has run for"), "%s", text);
    cr_assert_not_null(strstr(text, "blocked in system call"), "%s", text);
    free(text);

    setenv("WEFT_STALL_MS", "-1", 1); /* off */
    text = run_to_end(stall_main, 2, WEFT_DEADLOCK_OFF, &code);
    unsetenv("WEFT_STALL_MS");
    cr_assert_eq(code, 0, "exit %d", code);
    cr_assert_null(strstr(text, "stall"), "off, yet: %s", text);
    free(text);
}

/* ---- The log hook ---- */

typedef struct log_capture {
    pthread_mutex_t mu; /* the callback runs on the watchdog's thread */
    int nstall, other_level;
    char first[1024];
} log_capture;

static void capture(void *arg, int level, const char *text)
{
    log_capture *lc = arg;
    pthread_mutex_lock(&lc->mu);
    if (level == WEFT_LOG_WARN && strstr(text, "is still running after")) {
        /* the same stall, reported again as it doubled */
    } else if (level == WEFT_LOG_WARN && strstr(text, "weft: stall:")) {
        if (lc->nstall++ == 0)
            snprintf(lc->first, sizeof lc->first, "%s", text);
    } else {
        lc->other_level = level;
    }
    pthread_mutex_unlock(&lc->mu);
}

static void *spin_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn_opts o = {.name = "spinner"};
    cr_assert_eq(weft_spawn(&t, spinner, NULL, &o), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(dump, the_log_hook_gets_the_reports)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.log = capture;
    c.log_arg = &lc;
    c.handoff_us = -1; /* the spinner keeps its worker: the stall is the subject */
    run_main_cfg(&c, spin_main, NULL);
    cr_assert_eq(lc.nstall, 1, "one stall, reported once");
    cr_assert_not_null(strstr(lc.first, "\"spinner\" on worker 0 has run for"), "%s", lc.first);
    cr_assert_neq(lc.first[strlen(lc.first) - 1], '\n', "without the last newline");
    cr_assert_eq(lc.other_level, 0);

    /* Below the level: nothing. */
    log_capture quiet = {.mu = PTHREAD_MUTEX_INITIALIZER};
    c.log_arg = &quiet;
    c.log_level = WEFT_LOG_ERROR;
    run_main_cfg(&c, spin_main, NULL);
    cr_assert_eq(quiet.nstall, 0);
    c.log_level = WEFT_LOG_INFO + 1;
    cr_assert_eq(weft_run(&c, spin_main, NULL, NULL), -EINVAL);
}

/* The warnings about the environment (a value weft does not know) are lines weft writes of
 * its own accord too: they go to the configured log function at the configured level (they
 * went to stderr whatever the configuration said, even with the log off). */
static void capture_all(void *arg, int level, const char *text)
{
    log_capture *lc = arg;
    pthread_mutex_lock(&lc->mu);
    lc->nstall++; /* here: every message */
    lc->other_level = level;
    size_t n = strlen(lc->first);
    snprintf(lc->first + n, sizeof lc->first - n, "%s|", text);
    pthread_mutex_unlock(&lc->mu);
}

static void *returns_at_once(void *arg)
{
    return arg;
}

/* Runs a runtime of `c` with fd 2 on a memfd; returns what was written there (malloc'd). */
static char *stderr_of_run(const weft_config *c)
{
    int mfd = memfd_create("stderr", 0);
    cr_assert_geq(mfd, 0);
    int saved = dup(2);
    dup2(mfd, 2);
    int r = weft_run(c, returns_at_once, NULL, NULL);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(r, 0);
    char *text = calloc(1, 1 << 16);
    cr_assert_geq(pread(mfd, text, (1 << 16) - 1, 0), 0);
    close(mfd);
    return text;
}

Test(dump, warnings_about_the_environment_go_to_the_log_at_its_level)
{
    setenv("WEFT_MODE", "staeling", 1); /* this process only */
    setenv("WEFT_DUMP_SIGNAL", "KILL", 1);
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    c.log = capture_all;
    c.log_arg = &lc;
    char *err = stderr_of_run(&c);
    cr_assert_str_empty(err, "the log function was set: %s", err);
    free(err);
    cr_assert_eq(lc.nstall, 2, "%s", lc.first);
    cr_assert_eq(lc.other_level, WEFT_LOG_WARN);
    cr_assert_not_null(strstr(lc.first, "WEFT_MODE=staeling is not one of"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "WEFT_DUMP_SIGNAL=KILL is not"), "%s", lc.first);

    /* The log off: nothing, through the function or on stderr. */
    log_capture off = {.mu = PTHREAD_MUTEX_INITIALIZER};
    c.log_arg = &off;
    c.log_level = -1;
    err = stderr_of_run(&c);
    cr_assert_str_empty(err, "%s", err);
    free(err);
    cr_assert_eq(off.nstall, 0, "%s", off.first);
    c.log = NULL;
    err = stderr_of_run(&c);
    cr_assert_str_empty(err, "the log is off: %s", err);
    free(err);
    /* Without a function, at the default level: on stderr. */
    c.log_level = 0;
    err = stderr_of_run(&c);
    cr_assert_not_null(strstr(err, "weft: WEFT_MODE=staeling is not one of"), "%s", err);
    free(err);
    unsetenv("WEFT_MODE");
    unsetenv("WEFT_DUMP_SIGNAL");
}

/* A message longer than the formatting buffer (a long value in the environment) is cut with
 * "..." and still ends its line: it lost its newline, and the next message went on the same
 * line. */
Test(dump, a_message_cut_to_the_log_buffer_says_so_and_ends_its_line)
{
    char value[3000];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    setenv("WEFT_MODE", value, 1); /* this process only */
    setenv("WEFT_ORDER", value, 1);
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    char *err = stderr_of_run(&c);
    unsetenv("WEFT_MODE");
    unsetenv("WEFT_ORDER");
    const char *second = strstr(err, "...\nweft: WEFT_ORDER=xxx");
    cr_assert(strncmp(err, "weft: WEFT_MODE=xxx", 19) == 0, "%s", err);
    cr_assert_not_null(second, "each cut with ... and on its own line: %s", err);
    size_t n = strlen(err);
    cr_assert(n > 4 && strcmp(err + n - 4, "...\n") == 0, "%s", err);
    cr_assert_lt(n, 2 * 1024, "each cut to the buffer");
    free(err);
}

/* ---- A circle of joins while the rest runs on ---- */

/* The watchdog walks the task records for circles once a second; the tests below that wait
 * for a walk, or for several walks to see that none reports (WALKS_MS: three and a half),
 * make it every WALK_MS (WEFT_TEST_CYCLES_NS, a knob of WEFT_TESTING builds). */
#ifdef WEFT_TESTING
#define WALK_MS 200
#else
#define WALK_MS 1000
#endif
#define WALKS_MS (7 * WALK_MS / 2)

static void short_walks(void)
{
    char ns[32];
    snprintf(ns, sizeof ns, "%lld", (long long)WALK_MS * 1000000);
    setenv("WEFT_TEST_CYCLES_NS", ns, 1);
}

static weft_task *circle[3];
static weft_event circle_ready = WEFT_EVENT_INIT;

static void *join_next(void *arg)
{
    intptr_t i = (intptr_t)arg;
    weft_event_wait(&circle_ready, WEFT_FOREVER);
    return (void *)(intptr_t)weft_join(circle[(i + 1) % 3], NULL, WEFT_FOREVER);
}

static void *circle_main(void *arg)
{
    log_capture *lc = arg;
    const char *names[3] = {"first", "second", "third"};
    for (intptr_t i = 0; i < 3; i++) {
        weft_spawn_opts o = {.name = names[i]};
        cr_assert_eq(
            weft_spawn_on((unsigned)i % weft_worker_count(), &circle[i], join_next, (void *)i, &o),
            0);
    }
    weft_event_set(&circle_ready);
    /* This task runs on (a sleep loop): no global deadlock, yet three tasks are stuck. */
    bool seen = false;
    for (int n = 0; n < 1000 && !seen; n++) {
        weft_sleep(10 * WEFT_MSEC);
        pthread_mutex_lock(&lc->mu);
        seen = lc->other_level == WEFT_LOG_WARN;
        pthread_mutex_unlock(&lc->mu);
    }
    cr_assert(seen, "no report of the circle in 10 s");
    /* Each is joined by another already (one joiner a task): cancelled, and left to the
     * runtime's end to reap. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_cancel(circle[i]), 0);
    return NULL;
}

static void capture_circle(void *arg, int level, const char *text)
{
    log_capture *lc = arg;
    pthread_mutex_lock(&lc->mu);
    if (strstr(text, "wait for each other")) {
        lc->other_level = level;
        snprintf(lc->first, sizeof lc->first, "%s", text);
        lc->nstall++; /* here: reports of the circle */
    }
    pthread_mutex_unlock(&lc->mu);
}

/* Runs fn(arg) on `workers` workers with the runtime's log going to capture_circle. */
static void run_circle_logged(unsigned workers, log_capture *lc, weft_fn fn)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = workers;
    c.log = capture_circle;
    c.log_arg = lc;
    run_main_cfg(&c, fn, lc);
}

Test(dump, a_circle_of_joins_is_reported_while_others_run, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(2, &lc, circle_main);
    cr_assert_eq(lc.nstall, 1, "reported once");
    cr_assert_not_null(strstr(lc.first, "3 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"first\" on worker 0 joins task"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"second\" on worker 1 joins task"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"third\" on worker 0 joins task"), "%s", lc.first);
}

/* Each circle is reported once, however many came and went before it: the record of the
 * circles reported forgot none, and once it held 64 (gone long since), every later circle was
 * reported again at every walk, once a second for as long as it lasted. */
#define PAIRS 64

static weft_task *pair_a[PAIRS], *pair_b[PAIRS], *late[2];
static weft_event pairs_ready = WEFT_EVENT_INIT, late_ready = WEFT_EVENT_INIT;

static void *join_pair_a(void *arg)
{
    weft_event_wait(&pairs_ready, WEFT_FOREVER);
    return (void *)(intptr_t)weft_join(pair_b[(intptr_t)arg], NULL, WEFT_FOREVER);
}

static void *join_pair_b(void *arg)
{
    weft_event_wait(&pairs_ready, WEFT_FOREVER);
    return (void *)(intptr_t)weft_join(pair_a[(intptr_t)arg], NULL, WEFT_FOREVER);
}

static void *join_late(void *arg)
{
    weft_event_wait(&late_ready, WEFT_FOREVER);
    return (void *)(intptr_t)weft_join(late[(intptr_t)arg ^ 1], NULL, WEFT_FOREVER);
}

typedef struct circles_seen {
    pthread_mutex_t mu;
    int npairs, nlate;
} circles_seen;

static void count_circles(void *arg, int level, const char *text)
{
    (void)level;
    circles_seen *cs = arg;
    pthread_mutex_lock(&cs->mu);
    if (strstr(text, "wait for each other") && strstr(text, "\"pair\""))
        cs->npairs++;
    if (strstr(text, "wait for each other") && strstr(text, "\"late\""))
        cs->nlate++;
    pthread_mutex_unlock(&cs->mu);
}

static int circles_counted(circles_seen *cs, bool late_ones)
{
    pthread_mutex_lock(&cs->mu);
    int n = late_ones ? cs->nlate : cs->npairs;
    pthread_mutex_unlock(&cs->mu);
    return n;
}

static void *many_circles_main(void *arg)
{
    circles_seen *cs = arg;
    weft_spawn_opts o = {.name = "pair"};
    for (intptr_t i = 0; i < PAIRS; i++) {
        cr_assert_eq(weft_spawn(&pair_a[i], join_pair_a, (void *)i, &o), 0);
        cr_assert_eq(weft_spawn(&pair_b[i], join_pair_b, (void *)i, &o), 0);
    }
    weft_event_set(&pairs_ready);
    for (int n = 0; n < 1000 && circles_counted(cs, false) < PAIRS; n++)
        weft_sleep(10 * WEFT_MSEC);
    cr_assert_eq(circles_counted(cs, false), PAIRS, "each pair reported");
    /* Every circle broken: a cancelled join returns, and its task finishes. */
    for (int i = 0; i < PAIRS; i++)
        cr_assert_eq(weft_cancel(pair_a[i]), 0);
    weft_sleep(10 * WEFT_MSEC);
    o.name = "late";
    for (intptr_t i = 0; i < 2; i++)
        cr_assert_eq(weft_spawn(&late[i], join_late, (void *)i, &o), 0);
    weft_event_set(&late_ready);
    for (int n = 0; n < 1000 && circles_counted(cs, true) < 1; n++)
        weft_sleep(10 * WEFT_MSEC);
    cr_assert_eq(circles_counted(cs, true), 1, "the new circle reported");
    weft_sleep(WALKS_MS * WEFT_MSEC); /* three walks or more */
    cr_assert_eq(circles_counted(cs, true), 1, "reported again");
    cr_assert_eq(circles_counted(cs, false), PAIRS, "a broken circle reported again");
    cr_assert_eq(weft_cancel(late[0]), 0);
    return NULL;
}

Test(dump, each_circle_is_reported_once_after_many_came_and_went, .timeout = 60,
     .init = short_walks)
{
    circles_seen cs = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.log = count_circles;
    c.log_arg = &cs;
    run_main_cfg(&c, many_circles_main, &cs);
}

/* ---- A circle through mutexes and a join, while the rest runs on ---- */

static weft_mutex m_first = WEFT_MUTEX_INIT, m_second = WEFT_MUTEX_INIT;
static weft_event m_ready = WEFT_EVENT_INIT;
static weft_task *m_joined;

/* Holds its own mutex, then (once every member holds one) wants the other's. */
static void *lock_crossed(void *arg)
{
    weft_mutex *mine = arg, *other = mine == &m_first ? &m_second : &m_first;
    cr_assert_eq(weft_mutex_lock(mine, WEFT_FOREVER), 0);
    weft_event_wait(&m_ready, WEFT_FOREVER);
    if (mine == &m_first) /* the first joins a task that wants the second's... */
        weft_join(m_joined, NULL, WEFT_FOREVER);
    else
        weft_mutex_lock(other, WEFT_FOREVER);
    weft_mutex_unlock(mine);
    return NULL;
}

/* ...which wants the second's mutex: holds-first -> wants-second -> holds-second (which
 * wants the first's) -> holds-first. */
static void *want_second(void *arg)
{
    (void)arg;
    weft_event_wait(&m_ready, WEFT_FOREVER);
    if (weft_mutex_lock(&m_second, WEFT_FOREVER) == 0)
        weft_mutex_unlock(&m_second);
    return NULL;
}

static void *mutex_circle_main(void *arg)
{
    log_capture *lc = arg;
    weft_task *a, *b;
    weft_spawn_opts oa = {.name = "holds-first"}, ob = {.name = "holds-second"},
                    oj = {.name = "wants-second"};
    cr_assert_eq(weft_spawn_on(0, &m_joined, want_second, NULL, &oj), 0);
    cr_assert_eq(weft_spawn_on(1 % weft_worker_count(), &a, lock_crossed, &m_first, &oa), 0);
    cr_assert_eq(weft_spawn_on(0, &b, lock_crossed, &m_second, &ob), 0);
    weft_sleep(20 * WEFT_MSEC); /* each holds its own */
    weft_event_set(&m_ready);
    bool seen = false;
    for (int n = 0; n < 1000 && !seen; n++) {
        weft_sleep(10 * WEFT_MSEC);
        pthread_mutex_lock(&lc->mu);
        seen = lc->nstall > 0;
        pthread_mutex_unlock(&lc->mu);
    }
    cr_assert(seen, "no report of the circle in 10 s");
    cr_assert_eq(weft_cancel(a), 0);
    cr_assert_eq(weft_cancel(b), 0);
    cr_assert_eq(weft_cancel(m_joined), 0);
    cr_assert_eq(weft_join(b, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(a, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(dump, a_circle_through_mutexes_and_a_join_is_reported_while_others_run, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(2, &lc, mutex_circle_main);
    cr_assert_eq(lc.nstall, 1, "reported once: %s", lc.first);
    cr_assert_not_null(strstr(lc.first, "3 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"holds-first\" on worker 1 joins task"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"wants-second\" on worker 0 waits for mutex 0x"), "%s",
                       lc.first);
    cr_assert_not_null(strstr(lc.first, "\"holds-second\" on worker 0 waits for mutex 0x"), "%s",
                       lc.first);
}

/* A mutex held by a task that waits on a channel (not a task): no circle, no report. */
static weft_mutex m_lone = WEFT_MUTEX_INIT;
static weft_chan *m_chan;

static void *hold_and_receive(void *arg)
{
    (void)arg;
    weft_mutex_lock(&m_lone, WEFT_FOREVER);
    int v;
    weft_chan_recv(m_chan, &v, WEFT_FOREVER);
    weft_mutex_unlock(&m_lone);
    return NULL;
}

static void *lock_lone(void *arg)
{
    (void)arg;
    if (weft_mutex_lock(&m_lone, WEFT_FOREVER) == 0)
        weft_mutex_unlock(&m_lone);
    return NULL;
}

static void *no_circle_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&m_chan, sizeof(int), 0), 0);
    weft_task *h, *l;
    cr_assert_eq(weft_spawn(&h, hold_and_receive, NULL, NULL), 0);
    cr_assert_eq(weft_spawn(&l, lock_lone, NULL, NULL), 0);
    weft_sleep(WALKS_MS * WEFT_MSEC); /* three walks at least */
    int v = 1;
    cr_assert_eq(weft_chan_send(m_chan, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(h, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(l, NULL, WEFT_FOREVER), 0);
    weft_chan_release(m_chan);
    return NULL;
}

Test(dump, a_lock_chain_that_ends_in_a_channel_is_no_circle, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, no_circle_main);
    cr_assert_eq(lc.nstall, 0, "%s", lc.first);
}

/* ---- Circles through group waits, while the rest runs on ---- */

/* A task waiting with no deadline for a group waits for every member left: the report follows
 * the wait to them. The runtime has one worker, where the groups live, so that the main task
 * may cancel a group's members (weft_group_cancel: the group's worker only) to end a circle. */
static weft_group *g_group;
static weft_mutex g_mutex = WEFT_MUTEX_INIT;
static weft_event g_ready = WEFT_EVENT_INIT, g_done = WEFT_EVENT_INIT;
static weft_chan *g_chan;

/* Polls the captured log for the circle's report, for up to 10 s. */
static bool circle_seen(log_capture *lc)
{
    bool seen = false;
    for (int n = 0; n < 1000 && !seen; n++) {
        weft_sleep(10 * WEFT_MSEC);
        pthread_mutex_lock(&lc->mu);
        seen = lc->nstall > 0;
        pthread_mutex_unlock(&lc->mu);
    }
    return seen;
}

/* A member that wants the mutex its group's waiter holds. */
static void *lock_group_mutex(void *arg)
{
    (void)arg;
    if (weft_mutex_lock(&g_mutex, WEFT_FOREVER) == 0)
        weft_mutex_unlock(&g_mutex);
    return NULL;
}

/* Holds the mutex, then waits for its group, whose member wants the mutex. */
static void *hold_and_wait_group(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_mutex_lock(&g_mutex, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_create(&g_group), 0);
    weft_spawn_opts o = {.name = "wants-mutex"};
    cr_assert_eq(weft_group_spawn(g_group, lock_group_mutex, NULL, &o), 0);
    weft_event_set(&g_ready);
    int r = weft_group_wait(g_group, WEFT_FOREVER);
    weft_mutex_unlock(&g_mutex);
    cr_assert_eq(weft_group_close(g_group), 0);
    return (void *)(intptr_t)r;
}

static void *mutex_group_main(void *arg)
{
    log_capture *lc = arg;
    weft_task *a;
    weft_spawn_opts o = {.name = "holds-mutex"};
    cr_assert_eq(weft_spawn(&a, hold_and_wait_group, NULL, &o), 0);
    weft_event_wait(&g_ready, WEFT_FOREVER);
    cr_assert(circle_seen(lc), "no report of the circle in 10 s");
    /* The member's lock is cancelled; the group empties, and its waiter returns 0. */
    cr_assert_eq(weft_group_cancel(g_group), 1);
    void *r;
    cr_assert_eq(weft_join(a, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    return NULL;
}

Test(dump, a_circle_through_a_mutex_and_a_group_wait_is_reported, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, mutex_group_main);
    cr_assert_eq(lc.nstall, 1, "reported once: %s", lc.first);
    cr_assert_not_null(strstr(lc.first, "2 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"holds-mutex\" on worker 0 waits for group 0x"), "%s",
                       lc.first);
    cr_assert_not_null(strstr(lc.first, "\"wants-mutex\" on worker 0 waits for mutex 0x"), "%s",
                       lc.first);
}

static weft_task *g_waiter;

/* A member that joins the task waiting for its group. */
static void *join_group_waiter(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_join(g_waiter, NULL, WEFT_FOREVER);
}

static void *wait_own_members(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_group_create(&g_group), 0);
    weft_spawn_opts o = {.name = "joins-waiter"};
    cr_assert_eq(weft_group_spawn(g_group, join_group_waiter, NULL, &o), 0);
    weft_event_set(&g_ready);
    int r = weft_group_wait(g_group, WEFT_FOREVER);
    cr_assert_eq(weft_group_close(g_group), 0);
    weft_event_set(&g_done); /* the member's join has given up: ours may take the result */
    return (void *)(intptr_t)r;
}

static void *join_group_main(void *arg)
{
    log_capture *lc = arg;
    weft_spawn_opts o = {.name = "waits-group"};
    cr_assert_eq(weft_spawn(&g_waiter, wait_own_members, NULL, &o), 0);
    weft_event_wait(&g_ready, WEFT_FOREVER);
    cr_assert(circle_seen(lc), "no report of the circle in 10 s");
    cr_assert_eq(weft_group_cancel(g_group), 1); /* the member's join returns -ECANCELED */
    weft_event_wait(&g_done, WEFT_FOREVER);
    void *r;
    cr_assert_eq(weft_join(g_waiter, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    return NULL;
}

Test(dump, a_circle_through_a_join_and_a_group_wait_is_reported, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, join_group_main);
    cr_assert_eq(lc.nstall, 1, "reported once: %s", lc.first);
    cr_assert_not_null(strstr(lc.first, "2 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"waits-group\" on worker 0 waits for group 0x"), "%s",
                       lc.first);
    cr_assert_not_null(strstr(lc.first, "\"joins-waiter\" on worker 0 joins task"), "%s", lc.first);
}

/* A chain of all three: the mutex's holder waits for its group, a member of which joins a
 * task that wants the mutex; the group's other member waits on a channel, in no circle. */
static weft_task *g_locker;

static void *join_locker(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_join(g_locker, NULL, WEFT_FOREVER);
}

static void *receive_group_chan(void *arg);

static void *hold_and_wait_mixed(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_mutex_lock(&g_mutex, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_create(&g_group), 0);
    weft_spawn_opts ol = {.name = "wants-mutex"}, oj = {.name = "joins-locker"};
    cr_assert_eq(weft_spawn(&g_locker, lock_group_mutex, NULL, &ol), 0);
    cr_assert_eq(weft_group_spawn(g_group, receive_group_chan, NULL, NULL), 0);
    cr_assert_eq(weft_group_spawn(g_group, join_locker, NULL, &oj), 0);
    weft_event_set(&g_ready);
    int r = weft_group_wait(g_group, WEFT_FOREVER);
    weft_mutex_unlock(&g_mutex);
    cr_assert_eq(weft_group_close(g_group), 0);
    return (void *)(intptr_t)r;
}

static void *mixed_main(void *arg)
{
    log_capture *lc = arg;
    cr_assert_eq(weft_chan_create(&g_chan, sizeof(int), 0), 0);
    weft_task *a;
    weft_spawn_opts o = {.name = "holds-mutex"};
    cr_assert_eq(weft_spawn(&a, hold_and_wait_mixed, NULL, &o), 0);
    weft_event_wait(&g_ready, WEFT_FOREVER);
    cr_assert(circle_seen(lc), "no report of the circle in 10 s");
    /* The members cancelled (the joiner's join given up), the group empties; the locker then
     * takes the mutex. */
    cr_assert_eq(weft_group_cancel(g_group), 2);
    void *r;
    cr_assert_eq(weft_join(a, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    cr_assert_eq(weft_join(g_locker, NULL, WEFT_FOREVER), 0);
    weft_chan_release(g_chan);
    return NULL;
}

Test(dump, a_circle_through_a_group_a_join_and_a_mutex_is_reported, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, mixed_main);
    cr_assert_eq(lc.nstall, 1, "reported once: %s", lc.first);
    cr_assert_not_null(strstr(lc.first, "3 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"holds-mutex\" on worker 0 waits for group 0x"), "%s",
                       lc.first);
    cr_assert_not_null(strstr(lc.first, "\"joins-locker\" on worker 0 joins task"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"wants-mutex\" on worker 0 waits for mutex 0x"), "%s",
                       lc.first);
}

/* The same where a seccomp filter refuses process_vm_readv (as some containers' do): the
 * checker reads the members' nodes and groups through its pipe instead. */
static void short_walks_no_vm_readv(void)
{
    short_walks();
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

Test(dump, a_circle_through_a_group_is_reported_without_process_vm_readv,
     .init = short_walks_no_vm_readv)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, mixed_main);
    cr_assert_eq(lc.nstall, 1, "reported once: %s", lc.first);
    cr_assert_not_null(strstr(lc.first, "3 tasks wait for each other"), "%s", lc.first);
    cr_assert_not_null(strstr(lc.first, "\"holds-mutex\" on worker 0 waits for group 0x"), "%s",
                       lc.first);
}

/* A member that waits on a channel (no task can be named), and one that joins a task that
 * does: the group's waiter, holding a mutex another task wants, is in a chain, no circle. */
static void *receive_group_chan(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(g_chan, &v, WEFT_FOREVER);
    return NULL;
}

static void *join_receiver(void *arg)
{
    return (void *)(intptr_t)weft_join(arg, NULL, WEFT_FOREVER);
}

static void *hold_and_wait_chain(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_mutex_lock(&g_mutex, WEFT_FOREVER), 0);
    cr_assert_eq(weft_group_create(&g_group), 0);
    weft_task *recv;
    cr_assert_eq(weft_spawn(&recv, receive_group_chan, NULL, NULL), 0);
    cr_assert_eq(weft_group_spawn(g_group, receive_group_chan, NULL, NULL), 0);
    cr_assert_eq(weft_group_spawn(g_group, join_receiver, recv, NULL), 0);
    weft_event_set(&g_ready);
    int r = weft_group_wait(g_group, WEFT_FOREVER);
    weft_mutex_unlock(&g_mutex);
    cr_assert_eq(weft_group_close(g_group), 0);
    return (void *)(intptr_t)r;
}

static void *group_chain_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&g_chan, sizeof(int), 0), 0);
    weft_task *a, *l;
    cr_assert_eq(weft_spawn(&a, hold_and_wait_chain, NULL, NULL), 0);
    weft_event_wait(&g_ready, WEFT_FOREVER);
    cr_assert_eq(weft_spawn(&l, lock_group_mutex, NULL, NULL), 0);
    weft_sleep(WALKS_MS * WEFT_MSEC); /* three walks at least */
    int v = 1;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_chan_send(g_chan, &v, WEFT_FOREVER), 0);
    void *r;
    cr_assert_eq(weft_join(a, &r, WEFT_FOREVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    cr_assert_eq(weft_join(l, NULL, WEFT_FOREVER), 0);
    weft_chan_release(g_chan);
    return NULL;
}

Test(dump, a_group_wait_on_members_that_wait_elsewhere_is_no_circle, .init = short_walks)
{
    log_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_circle_logged(1, &lc, group_chain_main);
    cr_assert_eq(lc.nstall, 0, "%s", lc.first);
}

/* ---- A dump on a signal ---- */

static void *receive_on(void *arg)
{
    int v;
    weft_chan_recv(arg, &v, WEFT_FOREVER);
    return NULL;
}

static void *nothing_main(void *arg)
{
    return arg;
}

static void *parked_until_killed(void *arg)
{
    (void)arg;
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 0), 0);
    weft_task *t;
    weft_spawn_opts o = {.name = "sig-waiter"};
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, receive_on, c, &o), 0);
    fprintf(stderr, "ready\n");
    weft_sleep(3600 * WEFT_SEC); /* until the parent kills the process */
    return NULL;
}

/* A child whose runtime has `sig` as its dump signal (0: from WEFT_DUMP_SIGNAL); sends it
 * once its tasks are parked, and returns what the child wrote on stderr. */
static char *dump_on_signal(int cfg_sig, int send)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.dump_signal = cfg_sig;
    int fd;
    pid_t pid = run_child_cfg(parked_until_killed, &c, &fd);
    char *text = read_until(fd, 10000, "ready\n", 100);
    free(text);
    kill(pid, send);
    text = read_until(fd, 10000, "dumped by task", 200);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fd);
    return text;
}

Test(dump, a_dump_on_the_configured_signal_and_the_process_runs_on)
{
    char *text = dump_on_signal(SIGUSR1, SIGUSR1);
    cr_assert_not_null(strstr(text, "weft: task dump on signal"), "%s", text);
    cr_assert_not_null(strstr(text, "(USR1)"), "%s", text);
    cr_assert_not_null(strstr(text, "\"sig-waiter\" on worker 1: parked on channel receive"), "%s",
                       text);
    cr_assert_not_null(strstr(text, "\"main\" on worker 0: parked on sleep"), "%s", text);
    free(text);

    setenv("WEFT_DUMP_SIGNAL", "SIGUSR2", 1);
    text = dump_on_signal(0, SIGUSR2);
    unsetenv("WEFT_DUMP_SIGNAL");
    cr_assert_not_null(strstr(text, "(USR2)"), "%s", text);
    cr_assert_not_null(strstr(text, "\"sig-waiter\""), "%s", text);
    free(text);
}

Test(dump, a_dump_signal_weft_cannot_take_is_refused)
{
    weft_config c;
    weft_config_init(&c);
    /* SIGRTMIN - 1: the C library's own (glibc's setxid signal). */
    int bad[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGURG, 4096, SIGRTMIN - 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.dump_signal = bad[i];
        cr_assert_eq(weft_run(&c, nothing_main, NULL, NULL), -EINVAL, "signal %d", bad[i]);
    }
    c.dump_signal = 0;
    c.leak_report = 2;
    cr_assert_eq(weft_run(&c, nothing_main, NULL, NULL), -EINVAL);
}

/* ---- The leak report at shutdown ---- */

typedef struct leak_capture {
    pthread_mutex_t mu;
    char text[8192];
    int n;
} leak_capture;

static void capture_leaks(void *arg, int level, const char *text)
{
    leak_capture *lc = arg;
    pthread_mutex_lock(&lc->mu);
    if (level == WEFT_LOG_WARN && strstr(text, "weft: leak report")) {
        snprintf(lc->text, sizeof lc->text, "%s", text);
        lc->n++;
    }
    pthread_mutex_unlock(&lc->mu);
}

static weft_chan *leaked_chan, *released_chan;
static int leaked_fds[2];

static void *leaky_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_chan_create(&leaked_chan, sizeof(int), 4), 0);
    cr_assert_eq(weft_chan_create(&released_chan, sizeof(int), 0), 0);
    weft_task *t;
    weft_spawn_opts o = {.name = "forgotten", .flags = WEFT_SPAWN_DETACHED};
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, receive_on, leaked_chan, &o), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, leaked_fds), 0);
    cr_assert_eq(weft_write(leaked_fds[0], "x", 1, WEFT_FOREVER), 1);
    char c;
    cr_assert_eq(weft_read(leaked_fds[1], &c, 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_close(leaked_fds[1]), 0); /* given back: not listed */
    weft_chan_release(released_chan);
    weft_sleep(10 * WEFT_MSEC); /* the receiver parks */
    return NULL;
}

static void *tidy_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 1), 0);
    weft_chan_release(c);
    return NULL;
}

Test(dump, the_leak_report_lists_tasks_channels_and_fds_left_behind)
{
    leak_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.leak_report = 1;
    c.log = capture_leaks;
    c.log_arg = &lc;
    run_main_cfg(&c, leaky_main, NULL);
    cr_assert_eq(lc.n, 1, "one report");
    cr_assert_not_null(strstr(lc.text, "1 tasks were alive, 1 channels not released, 1 fds"), "%s",
                       lc.text);
    cr_assert_not_null(strstr(lc.text, "\"forgotten\" on worker 1: parked on channel receive"),
                       "%s", lc.text);
    char want[128];
    snprintf(want, sizeof want, "channel %p (elements of 4 bytes, capacity 4), created by task",
             (void *)leaked_chan);
    cr_assert_not_null(strstr(lc.text, want), "want '%s' in\n%s", want, lc.text);
    snprintf(want, sizeof want, "fd %d on worker 0 (stream", leaked_fds[0]);
    cr_assert_not_null(strstr(lc.text, want), "want '%s' in\n%s", want, lc.text);
    /* A channel outlives its runtime: released now, after the table's runtime is gone. */
    weft_chan_release(leaked_chan);
    close(leaked_fds[0]);

    /* A tidy program: nothing listed. */
    leak_capture tidy = {.mu = PTHREAD_MUTEX_INITIALIZER};
    c.log_arg = &tidy;
    run_main_cfg(&c, tidy_main, NULL);
    cr_assert_eq(tidy.n, 1);
    cr_assert_not_null(strstr(tidy.text, "nothing left behind"), "%s", tidy.text);

    /* Off: no report. */
    leak_capture off = {.mu = PTHREAD_MUTEX_INITIALIZER};
    c.log_arg = &off;
    c.leak_report = 0;
    run_main_cfg(&c, tidy_main, NULL);
    cr_assert_eq(off.n, 0);
}

/* The debug endpoint is weft's, not the program's: it cannot stop it, and it stops with the
 * runtime. A tidy program that turned it on was told it left its task and its listening
 * socket behind; a leak of its own is still listed beside it. */
static void *serving_main(void *arg)
{
    weft_addr at;
    cr_assert_eq(weft_debug_serve(NULL, &at), 0);
    /* A request in flight at the end: its connection's task and fd are the endpoint's too. */
    int fd = weft_dial(&at, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(fd, 0);
    weft_sleep(10 * WEFT_MSEC); /* accepted, and its task waits for the request */
    if (arg) {
        weft_task *t;
        weft_spawn_opts o = {.name = "forgotten", .flags = WEFT_SPAWN_DETACHED};
        cr_assert_eq(weft_spawn(&t, receive_on, arg, &o), 0);
        weft_sleep(10 * WEFT_MSEC); /* it parks */
    }
    cr_assert_eq(weft_close(fd), 0);
    return NULL;
}

Test(dump, the_leak_report_leaves_the_debug_endpoint_out)
{
    leak_capture lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.leak_report = 1;
    c.log = capture_leaks;
    c.log_arg = &lc;
    run_main_cfg(&c, serving_main, NULL);
    cr_assert_eq(lc.n, 1, "one report");
    cr_assert_not_null(strstr(lc.text, "nothing left behind"), "%s", lc.text);

    leak_capture leaky = {.mu = PTHREAD_MUTEX_INITIALIZER};
    c.log_arg = &leaky;
    weft_chan *ch;
    cr_assert_eq(weft_chan_create(&ch, sizeof(int), 0), 0);
    run_main_cfg(&c, serving_main, ch);
    cr_assert_eq(leaky.n, 1, "one report");
    cr_assert_not_null(strstr(leaky.text, "1 tasks were alive, 0 channels not released, 0 fds"),
                       "%s", leaky.text);
    cr_assert_not_null(strstr(leaky.text, "\"forgotten\" on worker 0"), "%s", leaky.text);
    cr_assert_null(strstr(leaky.text, "weft-debug"), "%s", leaky.text);
    weft_chan_release(ch);
}

/* A dumping task cancelled while it waits for another worker's part (that worker busy in a
 * task that does not yield): the dump goes on without that part's backtraces, and the part's
 * writer, which runs later, writes into memory of its own. It wrote into the dumper's array,
 * freed by then (ASan: heap-use-after-free in dump_here). */
static sem_t busy_go;

static void *busy_until_posted(void *arg)
{
    (void)arg;
    while (sem_wait(&busy_go) != 0) /* the worker's thread, held: no switch */
        ;
    return NULL;
}

static void *dump_to_null(void *arg)
{
    (void)arg;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    int r = weft_dump_tasks(fd);
    close(fd);
    return (void *)(intptr_t)r;
}

static void *cancelled_dumper_main(void *arg)
{
    (void)arg;
    weft_task *busy, *dumper;
    cr_assert_eq(weft_spawn_on(1, &busy, busy_until_posted, NULL, NULL), 0);
    cr_assert_eq(weft_spawn(&dumper, dump_to_null, NULL, NULL), 0);
    /* Until the dumper waits for worker 1's part (worker 0's is written first). */
    for (int i = 0; i < 10000 && weft_task_status(dumper) != WEFT_TASK_PARKED; i++)
        weft_sleep(WEFT_MSEC);
    cr_assert_eq(weft_task_status(dumper), WEFT_TASK_PARKED);
    cr_assert_eq(weft_cancel(dumper), 0);
    void *r = NULL;
    cr_assert_eq(weft_join(dumper, &r, WEFT_FOREVER), 0);
    cr_assert_eq(r, WEFT_CANCELED);
    sem_post(&busy_go); /* worker 1 goes on, and runs the part's writer now */
    cr_assert_eq(weft_join(busy, NULL, WEFT_FOREVER), 0);
    /* The writer has run and let go of its part (nothing else left on worker 1). */
    weft_stats s;
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(weft_stats_get(&s), 0);
        if (s.nunfinished <= 1)
            break;
        weft_sleep(WEFT_MSEC);
    }
    cr_assert_leq(s.nunfinished, 1);
    return NULL;
}

Test(dump, a_dumper_cancelled_while_it_waits_for_a_busy_worker_leaves_nothing_behind, .timeout = 60)
{
    sem_init(&busy_go, 0, 0);
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_SHARDED;
    c.stall_ms = -1; /* worker 1 stays held: no hand-off to a relief thread */
    run_main_cfg(&c, cancelled_dumper_main, NULL);
    sem_destroy(&busy_go);
}

/* Bug: the dump went out with a plain blocking write(2) on the worker's thread: into a pipe
 * that a task of the same runtime drains, a dump longer than the pipe's 64 KiB blocked the
 * worker for good (the reader could never run); into a full non-blocking socket it stopped
 * with -EAGAIN, the rest lost. The task sleeps now while the fd is full. */
typedef struct drain {
    int fd;
    size_t got;
} drain;

static void *drain_pipe(void *arg)
{
    drain *d = arg;
    char buf[8192];
    ssize_t n;
    while ((n = weft_read(d->fd, buf, sizeof buf, weft_deadline_in(30 * WEFT_SEC))) > 0)
        d->got += (size_t)n;
    return NULL;
}

static void *parked_forever(void *arg)
{
    weft_sleep_until(WEFT_FOREVER);
    (void)arg;
    return NULL;
}

static void *dump_into_drained_pipe_main(void *arg)
{
    (void)arg;
    enum { NPARKED = 1000 };
    weft_task **ts = calloc(NPARKED, sizeof *ts);
    for (int i = 0; i < NPARKED; i++)
        cr_assert_eq(weft_spawn(&ts[i], parked_forever, NULL, NULL), 0);
    weft_yield();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0); /* blocking, as a user's pipe is */
    drain d = {.fd = p[0]};
    weft_task *reader;
    cr_assert_eq(weft_spawn(&reader, drain_pipe, &d, NULL), 0);
    int r = weft_dump_tasks(p[1]);
    close(p[1]);
    cr_assert_eq(weft_join(reader, NULL, WEFT_FOREVER), 0);
    weft_close(p[0]);
    cr_assert_eq(r, 0, "dump: %s", weft_strerror(r));
    cr_assert_gt(d.got, 64 * 1024, "a dump of %zu bytes is no test of a full pipe", d.got);
    for (int i = 0; i < NPARKED; i++) {
        weft_cancel(ts[i]);
        weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    free(ts);
    return NULL;
}

Test(dump, a_dump_into_a_pipe_its_own_runtime_drains, .timeout = 60)
{
    run_main(dump_into_drained_pipe_main, NULL);
}

/* ---- Writing to a reader that has gone ---- */

static void *dump_to_readers_gone(void *arg)
{
    int *r = arg;
    int p[2], s[2];
    if (pipe(p) == 0) {
        close(p[0]);
        r[0] = weft_dump_tasks(p[1]);
        close(p[1]);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0) {
        close(s[0]);
        r[1] = weft_dump_tasks(s[1]);
        close(s[1]);
    }
    return NULL;
}

/* With weft_config.ignore_sigpipe off and SIGPIPE at its default action, weft's own writes (a
 * dump into a pipe or a socket whose reader has gone, the log into a stderr whose reader has
 * gone) raised SIGPIPE and ended the process; a dump now returns -EPIPE, and the log line is
 * lost, nothing else. */
Test(dump, a_write_to_a_reader_that_has_gone_is_epipe_not_sigpipe)
{
    signal(SIGPIPE, SIG_DFL);
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.ignore_sigpipe = 0;
    int r[2] = {1, 1};
    run_main_cfg(&c, dump_to_readers_gone, r);
    cr_assert_eq(r[0], -EPIPE, "into a pipe: %d", r[0]);
    cr_assert_eq(r[1], -EPIPE, "into a socket: %d", r[1]);

    /* The log: a warning about the environment, written to stderr at weft_run's start. */
    setenv("WEFT_MODE", "staeling", 1); /* this process only */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    int run = weft_run(&c, nothing_main, NULL, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    unsetenv("WEFT_MODE");
    cr_assert_eq(run, 0);
    sigset_t pending;
    cr_assert_eq(sigpending(&pending), 0);
    cr_assert_not(sigismember(&pending, SIGPIPE), "the write's SIGPIPE was left pending");
}
