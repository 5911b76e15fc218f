/* Watches: libevent's and redis ae's callback form on a weft worker. Each watch is a small
 * pinned task on the worker that added it, which waits with the reactor's own calls
 * (weft_fd_wait, weft_sleep_until, weft_signal_wait: no second epoll, and the same on both
 * backends) and runs the callback on its stack with WEFT__T_NOBLOCK set, so a callback that
 * makes a blocking weft call gets -EPERM instead of stalling the watch.
 * Ownership: the record is the task's and the handle's together, and the second of the two
 * to let go (the task finishing, weft_watch_del) frees it. Both live on the one worker, so
 * no field is shared between threads. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>

#include "core.h"
#include "io/io.h"
#include "runtime.h"
#include "sighub.h"
#include "smp.h"
#include "watch.h"

#define WATCH_KINDS (WEFT_WATCH_TIMER | WEFT_WATCH_SIGNAL)
#define WATCH_DIRS  (WEFT_READABLE | WEFT_WRITABLE)

/* owner: the worker that added it (`worker`); no other thread touches it. */
struct weft_watch {
    weft_watch_fn cb;
    void *arg;
    weft__worker *worker;
    weft_task *task; /* alive while !finished: cancelled by a del from outside the callback */
    int fd;          /* the fd, the signal number, or -1 */
    unsigned mask;
    int64_t period_ns; /* the timer's period, or the fd's timeout (0: none) */
    bool owned;        /* a handle was given out: weft_watch_del frees, or marks */
    bool dropped;      /* weft_watch_del was called: stop after the callback */
    bool finished;     /* the task has returned: only the handle holds the record */
    bool subscribed;   /* a signal watch in the process's hub (sighub.h), until its end */
    weft__sigsub sub;
    /* While finished and held by its handle alone: on the worker's list of such records
     * (worker.h, watches_held), which the worker's end frees, a weft_watch_del after the
     * main task returned being one that may not touch the record. */
    struct weft_watch *held_next, **held_prev;
};

/* The main task has finished: the shutdown cancels every task, watches' included, and each
 * watch then frees its own record, whoever holds a handle (which must not be used again). */
static bool stopping(weft__worker *w)
{
    /* Acquire: pairs with the main task's worker's release store (runtime.h). */
    return atomic_load_explicit(&w->rt->stopping, memory_order_acquire);
}

static void watch_free(weft_watch *wt)
{
    if (wt->held_prev) { /* off the worker's list of records held by their handles */
        *wt->held_prev = wt->held_next;
        if (wt->held_next)
            wt->held_next->held_prev = wt->held_prev;
    }
    weft__free(wt->worker, wt);
}

void weft__watches_fini(weft__worker *w)
{
    while (w->watches_held)
        watch_free(w->watches_held);
}

/* Runs the callback with blocking calls refused. */
static void fire(weft_watch *wt, unsigned events)
{
    weft_task *self = weft_self();
    weft__task_flags_set(self, WEFT__T_NOBLOCK);
    wt->cb(wt, wt->fd, events, wt->arg);
    weft__task_flags_clear(self, WEFT__T_NOBLOCK);
}

/* The fd's readiness among `dirs` now (one poll(2) that does not wait): the level check that
 * lets the callback run again while the fd stays ready, as libevent's and ae's level
 * triggering do, when weft_fd_wait reports only new edges. */
static unsigned ready_now(weft_watch *wt, unsigned dirs)
{
    int m = weft__io_fd_ready_now(weft__worker_current(), wt->fd, (int)dirs);
    return m > 0 ? (unsigned)m : 0;
}

/* The next events of the watch, or 0 when it must stop (cancelled, or its wait failed: then
 * WEFT_POLL_ERROR is returned once, for the callback to learn of it). */
static unsigned next_events(weft_watch *wt, int64_t *next_ns, bool *failed)
{
    if (wt->mask & WEFT_WATCH_SIGNAL) /* every watch of the signal gets each arrival */
        return weft__sighub_next(weft__sighub_process(), &wt->sub) > 0 ? WEFT_WATCH_SIGNAL : 0;
    if (!(wt->mask & WATCH_DIRS)) {
        if (weft_sleep_until(*next_ns) < 0)
            return 0;
        int64_t now = weft_now();
        do /* a period missed (a long callback elsewhere) is skipped, not fired in a burst */
            *next_ns += wt->period_ns;
        while (*next_ns <= now);
        return WEFT_WATCH_TIMER;
    }
    unsigned dirs = wt->mask & WATCH_DIRS;
    unsigned m = ready_now(wt, dirs);
    if (m)
        return m;
    int64_t deadline = wt->mask & WEFT_WATCH_TIMER ? weft_deadline_in(wt->period_ns) : WEFT_FOREVER;
    int r = weft_fd_wait(wt->fd, (int)dirs, deadline);
    if (r > 0)
        return (unsigned)r & dirs;
    if (r == -ETIMEDOUT)
        return WEFT_WATCH_TIMER;
    if (r != -ECANCELED)
        *failed = true; /* -EBADF: closed or forgotten under it */
    return 0;
}

static void *watch_main(void *arg)
{
    weft_watch *wt = arg;
    int64_t next_ns = weft_deadline_in(wt->period_ns);
    while (!wt->dropped) {
        bool failed = false;
        unsigned events = next_events(wt, &next_ns, &failed);
        if (failed && !wt->dropped)
            fire(wt, WEFT_POLL_ERROR);
        if (!events || wt->dropped)
            break;
        fire(wt, events);
        if (!(wt->mask & WEFT_WATCH_PERSIST))
            break;
        /* Between two callbacks, the other tasks of the worker run: a busy fd cannot starve
         * them. A cancel (weft_watch_del from another task) shows here. */
        if (weft_yield() < 0)
            break;
    }
    return NULL;
}

/* The task's cleanup: runs when it has finished, also when the shutdown cancelled it before
 * it ever ran. */
static void watch_done(void *arg)
{
    weft_watch *wt = arg;
    wt->finished = true;
    if (wt->subscribed)
        weft__sighub_leave(weft__sighub_process(), &wt->sub);
    if (!wt->owned || wt->dropped || stopping(wt->worker)) {
        watch_free(wt);
        return;
    }
    /* Its handle alone holds it now: freed by weft_watch_del, or by the worker's end. */
    weft__worker *w = wt->worker;
    wt->held_next = w->watches_held;
    wt->held_prev = &w->watches_held;
    if (w->watches_held)
        w->watches_held->held_prev = &wt->held_next;
    w->watches_held = wt;
}

/* On worker 0: blocks signal `sig` on its thread (and the threads that drive it later). */
static void msg_block_signal(weft__worker *w, void *a, void *b, uint64_t sig)
{
    (void)a, (void)b;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, (int)sig);
    weft__worker_wait_signals(w, &set);
}

/* A watch on another worker than 0: the other workers' threads block every signal (runtime.c),
 * but worker 0 runs on the thread that called weft_run, which does not; the kernel would
 * deliver the signal there, to its default action (the process killed), instead of leaving
 * it pending for the watch's signalfd. So worker 0 blocks it too, at its next tick (a
 * message: its mask is its own thread's to change). Returns 0 or -ENOMEM. */
static int block_on_first(weft__worker *w, int sig)
{
    weft__msg m = {msg_block_signal, NULL, NULL, (uint64_t)sig};
    return weft__smp_post(w, &w->rt->workers[0], &m);
}

int weft_watch_add(weft_watch **out, int fd, unsigned mask, int64_t timeout_ns, weft_watch_fn cb,
                   void *arg)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!cb || (mask & ~(unsigned)(WATCH_DIRS | WATCH_KINDS | WEFT_WATCH_PERSIST)))
        return -EINVAL;
    if (!out && (mask & WEFT_WATCH_PERSIST))
        return -EINVAL; /* nothing could ever stop it */
    if (mask & WEFT_WATCH_SIGNAL) {
        if (mask & (WATCH_DIRS | WEFT_WATCH_TIMER))
            return -EINVAL;
        if (fd <= 0 || fd >= NSIG || fd == SIGKILL || fd == SIGSTOP || fd == SIGSEGV ||
            fd == SIGBUS || fd == SIGILL || fd == SIGFPE)
            return -EINVAL;
        /* Blocked now, not when the watch's task first waits: a signal that comes before
         * then stays pending for the watch instead of taking its default action. */
        sigset_t set;
        sigemptyset(&set);
        if (sigaddset(&set, fd) != 0)
            return -EINVAL; /* one the C library keeps for itself (glibc's 32 and 33) */
        int r = weft__worker_wait_signals(w, &set);
        if (r == 0 && w != &w->rt->workers[0])
            r = block_on_first(w, fd);
        if (r < 0)
            return r;
    } else if (mask & WATCH_DIRS) {
        if (fd < 0)
            return -EBADF;
        if ((mask & WEFT_WATCH_TIMER) && timeout_ns <= 0)
            return -EINVAL;
        /* An fd that is not open fails here, not later in the task. */
        int r = weft__sys_poll1(&w->sys, fd, 0, 0);
        if (r < 0 || (r & POLLNVAL))
            return r < 0 ? r : -EBADF;
    } else if (!(mask & WEFT_WATCH_TIMER) || fd != -1 || timeout_ns <= 0) {
        return -EINVAL;
    }
    weft_watch *wt = weft__calloc(w, 1, sizeof *wt);
    if (!wt)
        return -ENOMEM;
    *wt = (weft_watch){.cb = cb,
                       .arg = arg,
                       .worker = w,
                       .fd = fd,
                       .mask = mask,
                       .period_ns = mask & WEFT_WATCH_TIMER ? timeout_ns : 0,
                       .owned = out != NULL};
    weft_spawn_opts opts = {.name = "watch", .flags = WEFT_SPAWN_PINNED, .cleanup = watch_done};
    int r = weft_spawn(&wt->task, watch_main, wt, &opts);
    if (r < 0) {
        watch_free(wt);
        return r;
    }
    /* Subscribed now, not when its task first runs: an arrival from here on is its too, as
     * for the other watches of the signal (the task's cleanup unsubscribes it). */
    if (mask & WEFT_WATCH_SIGNAL) {
        weft__sighub_join(weft__sighub_process(), &wt->sub, fd);
        wt->subscribed = true;
    }
    /* The watch's own record keeps the task alive to its end (finished), so the handle
     * stays good for a cancel until then although nobody joins it. */
    weft_detach(wt->task);
    if (out)
        *out = wt;
    return 0;
}

int weft_watch_del(weft_watch *wt)
{
    if (!wt)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (stopping(w))
        return 0; /* the watch's task frees it as the shutdown cancels it: wt may be gone */
    if (wt->worker != w)
        return -EPERM;
    if (wt->dropped)
        return -EINVAL;
    wt->dropped = true;
    if (wt->finished) {
        watch_free(wt);
        return 0;
    }
    /* From its own callback the loop sees `dropped` when the callback returns; from
     * anywhere else the task is parked (one worker: it is not running), and the cancel ends
     * its wait. */
    if (weft_self() != wt->task)
        weft__task_cancel(wt->task);
    return 0;
}
