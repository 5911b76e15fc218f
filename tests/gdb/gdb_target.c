/* The program tools/gdb/weft-gdb.py is tested on (tests/gdb/check.sh): a runtime of two
 * workers whose tasks are parked in known ways, stopped by gdb at gdb_target_ready() once
 * every one of them is parked. The stop is deterministic: the main task calls
 * gdb_target_ready() only after each task's wait record reads "parked" (the snapshot the
 * task dump uses), and the program never ends on its own before that.
 *
 *   worker 0: sleeper (sleep, 1 h deadline), joiner (join sleeper), holder (holds `lock`,
 *             then receives on `hold_chan`), main (running: calls gdb_target_ready)
 *   worker 1: receiver (receives on `chan`), locker (waits for `lock`), and a second
 *             sleeper whose name holds a tab, a newline, a quote and a backslash (ODD_NAME;
 *             weft tasks lists it escaped)
 *
 * Built without optimisation, so that each body keeps its own frame (no tail call hides it
 * from a backtrace). Run outside gdb it exits 0 after the stop point, or, with
 * GDB_TARGET_ABORT set, aborts there (a core dumped by the kernel or by qemu-user: how the
 * helper was checked on aarch64, docs/gdb.md). */
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "scheduler.h"
#include "task.h"

static weft_chan *chan, *hold_chan;
static weft_mutex lock = WEFT_MUTEX_INIT;
static weft_task *sleeper, *joiner, *holder, *receiver, *locker, *oddly;

/* 13 bytes; check.sh expects it as tab\x09here\x0aq\"b\\ */
#define ODD_NAME "tab\there\nq\"b\\"

/* gdb's breakpoint: everything below is parked. noinline and an empty asm, so that the call
 * stays a call to this symbol. */
__attribute__((noinline)) void gdb_target_ready(void);
__attribute__((noinline)) void gdb_target_ready(void)
{
    __asm__ volatile("");
}

static void *sleeper_body(void *arg)
{
    (void)arg;
    int r = weft_sleep(3600 * WEFT_SEC);
    return (void *)(intptr_t)r;
}

static void *joiner_body(void *arg)
{
    (void)arg;
    void *result = NULL;
    int r = weft_join(sleeper, &result, WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

static void *holder_body(void *arg)
{
    (void)arg;
    long v = 0;
    int r = weft_mutex_lock(&lock, WEFT_FOREVER);
    if (r == 0)
        r = weft_chan_recv(hold_chan, &v, WEFT_FOREVER);
    weft_mutex_unlock(&lock);
    return (void *)(intptr_t)r;
}

static void *receiver_body(void *arg)
{
    (void)arg;
    long v = 0;
    int r = weft_chan_recv(chan, &v, WEFT_FOREVER);
    return (void *)(intptr_t)r;
}

static void *locker_body(void *arg)
{
    (void)arg;
    int r = weft_mutex_lock(&lock, WEFT_FOREVER);
    if (r == 0)
        weft_mutex_unlock(&lock);
    return (void *)(intptr_t)r;
}

static int spawn_named(unsigned worker, weft_task **out, weft_fn fn, const char *name)
{
    weft_spawn_opts o = {.name = name};
    return weft_spawn_on(worker, out, fn, NULL, &o);
}

/* Whether t's wait record says it is parked on `kind`. */
static int parked_on(weft_task *t, int kind)
{
    int k;
    const void *what;
    int64_t deadline, since;
    return weft__task_wait_snapshot(t, &k, &what, &deadline, &since) == 0 && k == kind;
}

static int all_parked(void)
{
    return parked_on(sleeper, WEFT__WAIT_SLEEP) && parked_on(joiner, WEFT__WAIT_JOIN) &&
           parked_on(holder, WEFT__WAIT_CHAN_RECV) && parked_on(receiver, WEFT__WAIT_CHAN_RECV) &&
           parked_on(locker, WEFT__WAIT_MUTEX) && parked_on(oddly, WEFT__WAIT_SLEEP);
}

static void *main_body(void *arg)
{
    (void)arg;
    if (weft_chan_create(&chan, sizeof(long), 0) < 0 ||
        weft_chan_create(&hold_chan, sizeof(long), 0) < 0)
        return (void *)1;
    /* The holder first, so that it has the mutex before the locker asks for it. */
    if (spawn_named(0, &holder, holder_body, "holder") < 0 ||
        spawn_named(0, &sleeper, sleeper_body, "sleeper") < 0)
        return (void *)1;
    for (int i = 0; i < 1000 && !parked_on(holder, WEFT__WAIT_CHAN_RECV); i++)
        weft_sleep(WEFT_MSEC);
    if (spawn_named(0, &joiner, joiner_body, "joiner") < 0 ||
        spawn_named(1, &receiver, receiver_body, "receiver") < 0 ||
        spawn_named(1, &locker, locker_body, "locker") < 0 ||
        spawn_named(1, &oddly, sleeper_body, ODD_NAME) < 0)
        return (void *)1;
    /* Up to 10 s: on a loaded machine the other worker may be slow to start them. */
    for (int i = 0; i < 10000 && !all_parked(); i++)
        weft_sleep(WEFT_MSEC);
    if (!all_parked()) {
        fprintf(stderr, "gdb_target: the tasks did not all park\n");
        return (void *)1;
    }
    gdb_target_ready();
    if (getenv("GDB_TARGET_ABORT"))
        abort();
    /* Outside gdb: unblock everyone and finish cleanly. */
    weft_cancel(sleeper);
    weft_cancel(receiver);
    weft_cancel(holder);
    weft_cancel(oddly);
    weft_task *all[] = {joiner, receiver, holder, locker, oddly}; /* joiner joins sleeper */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        weft_join(all[i], NULL, WEFT_FOREVER);
    weft_chan_release(chan);
    weft_chan_release(hold_chan);
    return NULL;
}

int main(void)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.mode = WEFT_MODE_SHARDED;
    /* epoll whatever WEFT_BACKEND says: io_uring's kernel workers would be more threads. */
    cfg.backend = WEFT_BACKEND_EPOLL;
    void *result = (void *)1;
    int rc = weft_run(&cfg, main_body, NULL, &result);
    if (rc != 0 || result != NULL) {
        fprintf(stderr, "gdb_target: run %s, result %p\n", weft_strerror(rc), result);
        return 1;
    }
    printf("gdb_target: done\n");
    return 0;
}
