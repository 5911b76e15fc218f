/* The blocking pool: jobs run on other threads and wake their tasks; the thread count is
 * bounded; a queued job is withdrawn by a deadline or a cancellation and never runs, a
 * running one is waited for; idle threads retire; file operations and name resolution go
 * through it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static void *whoami(void *arg)
{
    *(pthread_t *)arg = pthread_self();
    usleep(1000); /* blocks the pool thread, not the runtime */
    return (void *)42;
}

static void *job_runner(void *arg)
{
    (void)arg;
    pthread_t th;
    void *r;
    cr_assert_eq(weft_blocking(whoami, &th, &r, WEFT_FOREVER), 0);
    return (void *)(intptr_t)(r == (void *)42 && !pthread_equal(th, pthread_self()));
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_task *t[32];
    for (int i = 0; i < 32; i++)
        weft_spawn(&t[i], job_runner, NULL, NULL);
    int ok = 0;
    for (int i = 0; i < 32; i++) {
        void *r;
        weft_join(t[i], &r, WEFT_FOREVER);
        ok += r == (void *)1;
    }
    cr_assert_eq(ok, 32);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_leq(st.npool_threads, 4);
    cr_assert_eq(st.npool_jobs, 32);
    return NULL;
}

Test(pool, jobs_run_on_a_bounded_set_of_threads)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_threads = 4;
    run_main_cfg(&cfg, many_main, NULL);
}

static atomic_int blocker_started;

/* A job that blocks until its pipe is written. */
static void *block_on_pipe(void *arg)
{
    atomic_store(&blocker_started, 1);
    char c;
    ssize_t n = read(*(int *)arg, &c, 1);
    return (void *)(intptr_t)n;
}

static atomic_int ran;

static void *mark(void *arg)
{
    (void)arg;
    atomic_store(&ran, 1);
    return NULL;
}

struct hold {
    int fd;
    int rc;
    void *result;
};

static void *hold_thread(void *arg)
{
    struct hold *h = arg;
    h->rc = weft_blocking(block_on_pipe, &h->fd, &h->result, WEFT_FOREVER);
    return NULL;
}

static void *queued_job(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_blocking(mark, NULL, NULL, WEFT_FOREVER);
}

static void *withdraw_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    /* The only thread is busy with a job that waits for the pipe. */
    struct hold h = {.fd = p[0]};
    weft_task *holder;
    atomic_store(&blocker_started, 0);
    weft_spawn(&holder, hold_thread, &h, NULL);
    /* Bounded wait until the pool thread runs it (thread start-up takes its time). */
    for (int i = 0; i < 10000 && !atomic_load(&blocker_started); i++)
        weft_sleep(WEFT_MSEC);
    cr_assert(atomic_load(&blocker_started));
    atomic_store(&ran, 0);
    cr_assert_eq(weft_blocking(mark, NULL, NULL, weft_deadline_in(2 * WEFT_MSEC)), -ETIMEDOUT);
    weft_task *q;
    weft_spawn(&q, queued_job, NULL, NULL);
    weft_yield();
    weft_cancel(q);
    void *r;
    weft_join(q, &r, WEFT_FOREVER);
    cr_assert_eq(r, WEFT_CANCELED);

    /* Cancelling the holder does not abandon its running job: it waits for the job. */
    weft_cancel(holder);
    weft_sleep(2 * WEFT_MSEC);
    cr_assert_eq(write(p[1], "x", 1), 1);
    weft_join(holder, NULL, WEFT_FOREVER);
    cr_assert_eq(h.rc, 0);
    cr_assert_eq(h.result, (void *)1);
    cr_assert_eq(atomic_load(&ran), 0, "withdrawn jobs never ran");
    close(p[0]);
    close(p[1]);
    return NULL;
}

Test(pool, queued_jobs_are_withdrawn_running_ones_waited_for, .timeout = 30)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_threads = 1;
    run_main_cfg(&cfg, withdraw_main, NULL);
}

static void *retire_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_blocking(mark, NULL, NULL, WEFT_FOREVER), 0);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.npool_threads, 1);
    /* Bounded wait for the idle thread to retire (20 ms idle limit; up to 10 s here). */
    for (int i = 0; i < 1000 && st.npool_threads > 0; i++) {
        weft_sleep(10 * WEFT_MSEC);
        weft_stats_get(&st);
    }
    cr_assert_eq(st.npool_threads, 0);
    cr_assert_eq(weft_blocking(mark, NULL, NULL, WEFT_FOREVER), 0, "a new thread starts");
    return NULL;
}

Test(pool, idle_threads_retire, .timeout = 30)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_idle_ms = 20;
    run_main_cfg(&cfg, retire_main, NULL);
}

/* ---- The runtime's end waits for its threads' own end ------------------------------------
 * A pool thread that says it has gone still has glibc's thread teardown to run (TSD
 * destructors, then the per-thread state glibc frees, such as the resolver's: CI found 28
 * bytes of it leaked). A destructor that takes a while stands for that teardown: weft_run
 * must not return before it is done, whether the thread retired while idle (then joined by
 * the close through the chain of exits) or was still there at the close. The old code
 * returned on the thread count alone, ~30 ms too early. */

typedef struct teardown {
    pthread_key_t key;
    bool retire_first; /* wait for the thread to retire before the main task returns */
    atomic_int ended;  /* destructors that finished */
} teardown;

static void slow_destructor(void *arg)
{
    teardown *td = arg;
    usleep(30 * 1000);
    atomic_fetch_add(&td->ended, 1);
}

static void *set_thread_value(void *arg)
{
    teardown *td = arg;
    cr_assert_eq(pthread_setspecific(td->key, td), 0);
    return NULL;
}

static void *teardown_main(void *arg)
{
    teardown *td = arg;
    for (int i = 0; i < 2; i++) /* the second job may find the first's thread, or a new one */
        cr_assert_eq(weft_blocking(set_thread_value, td, NULL, WEFT_FOREVER), 0);
    weft_stats st;
    weft_stats_get(&st);
    for (int i = 0; i < 10000 && td->retire_first && st.npool_threads > 0; i++) {
        weft_sleep(WEFT_MSEC);
        weft_stats_get(&st);
    }
    if (td->retire_first)
        cr_assert_eq(st.npool_threads, 0, "the idle thread did not retire in 10 s");
    return NULL;
}

static void runs_until_teardown_ends(bool retire_first)
{
    teardown td = {.retire_first = retire_first};
    cr_assert_eq(pthread_key_create(&td.key, slow_destructor), 0);
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_idle_ms = retire_first ? 5 : 60 * 1000;
    run_main_cfg(&cfg, teardown_main, &td);
    int ended = atomic_load(&td.ended);
    cr_assert_geq(ended, 1, "weft_run returned before its pool thread's teardown ended");
    pthread_key_delete(td.key);
}

Test(pool, weft_run_returns_after_its_threads_have_ended_not_only_said_so, .timeout = 30)
{
    runs_until_teardown_ends(false);
    runs_until_teardown_ends(true);
}

static void *files_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-file-%d", (int)getpid());
    int fd = weft_file_open(path, O_CREAT | O_TRUNC | O_RDWR, 0600, WEFT_FOREVER);
    cr_assert_geq(fd, 0, "open: %s", weft_strerror(fd));
    cr_assert_eq(weft_file_write(fd, "hello world", 11, WEFT_FOREVER), 11);
    cr_assert_eq(weft_file_pwrite(fd, "W", 1, 6, WEFT_FOREVER), 1);
    cr_assert_eq(weft_file_fsync(fd, WEFT_FOREVER), 0);
    char buf[16] = {0};
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, WEFT_FOREVER), 11);
    cr_assert_str_eq(buf, "hello World");
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, WEFT_FOREVER), 0, "at the end");
    struct stat st;
    cr_assert_eq(weft_file_stat(path, &st, WEFT_FOREVER), 0);
    cr_assert_eq(st.st_size, 11);
    cr_assert_eq(weft_close(fd), 0);
    unlink(path);
    cr_assert_eq(weft_file_open(path, O_RDONLY, 0, WEFT_FOREVER), -ENOENT);
    cr_assert_eq(weft_file_stat(path, &st, WEFT_FOREVER), -ENOENT);
    return NULL;
}

Test(pool, file_operations)
{
    run_main(files_main, NULL);
}

static void *resolve_main(void *arg)
{
    (void)arg;
    weft_addr a;
    weft_stats before, after;
    weft_stats_get(&before);
    cr_assert_eq(weft_resolve(&a, "127.0.0.1", 80, WEFT_FOREVER), 0);
    weft_stats_get(&after);
    cr_assert_eq(after.npool_jobs, before.npool_jobs, "numeric: no pool job");
    cr_assert_eq(weft_resolve(&a, "localhost", 8080, weft_deadline_in(10 * WEFT_SEC)), 0);
    cr_assert_eq(weft_addr_port(&a), 8080);
    char text[64];
    if (a.ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a.ss)->sin_addr, text, sizeof text);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a.ss)->sin6_addr, text, sizeof text);
    cr_assert(strcmp(text, "127.0.0.1") == 0 || strcmp(text, "::1") == 0, "localhost is %s", text);
    weft_stats_get(&after);
    cr_assert_eq(after.npool_jobs, before.npool_jobs + 1);
    struct addrinfo *res;
    cr_assert_eq(weft_getaddrinfo(NULL, NULL, NULL, &res, WEFT_FOREVER), -EINVAL);
    return NULL;
}

Test(pool, name_resolution_through_the_pool)
{
    run_main(resolve_main, NULL);
}

/* A burst of jobs queued in one tick while one thread is idle: each gets a thread of its own
 * (up to the bound), so a job that waits for another job's effect cannot wait forever. */
static int burst_pipe[2];

static void *burst_read(void *arg)
{
    (void)arg;
    char c = 0;
    return (void *)(intptr_t)(read(burst_pipe[0], &c, 1) == 1 && c == 'x');
}

static void *burst_write(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)(write(burst_pipe[1], "x", 1) == 1);
}

static void *burst_noop(void *arg)
{
    return arg;
}

static void *burst_task(void *arg)
{
    void *r = NULL;
    int e = weft_blocking((weft_fn)arg, NULL, &r, WEFT_FOREVER);
    return e == 0 ? r : NULL;
}

static void *burst_main(void *arg)
{
    (void)arg;
    cr_assert_eq(pipe(burst_pipe), 0);
    void *r;
    cr_assert_eq(weft_blocking(burst_noop, NULL, &r, WEFT_FOREVER), 0); /* one idle thread */
    weft_task *a, *b;
    weft_spawn(&a, burst_task, (void *)burst_read, NULL);
    weft_spawn(&b, burst_task, (void *)burst_write, NULL);
    void *ra, *rb;
    cr_assert_eq(weft_join(a, &ra, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(b, &rb, WEFT_FOREVER), 0);
    cr_assert_eq(ra, (void *)1, "the reader got the writer's byte");
    cr_assert_eq(rb, (void *)1);
    close(burst_pipe[0]);
    close(burst_pipe[1]);
    return NULL;
}

Test(pool, a_burst_in_one_tick_gets_a_thread_per_job, .timeout = 30)
{
    run_main(burst_main, NULL);
}
