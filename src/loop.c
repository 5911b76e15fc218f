/* The loop of one worker, on the thread's own stack. Each tick, in this order: read the
 * clock; fire due timers; take tasks woken from other threads; give I/O waiters their events
 * (at least once a tick, even while tasks keep the ready queue busy); run ready tasks and
 * poll ready stackless tasks within the budget; start the shutdown once the main task is
 * done; and, when nothing is ready, block in the reactor until the nearest timer. */
#include <errno.h>
#include <pthread.h>
#include <sys/prctl.h>

#include "alien.h"
#include "deadlock.h"
#include "hooks.h"
#include "io/io.h"
#include "loop.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "dumpsig.h"
#include "leaks.h"
#include "relief.h"
#include "steal.h"
#include "tracer.h"
#include "util/spinlock.h"
#include "stack.h"
#include "task.h"
#include "task_api.h"
#include "timer.h"
#include "wake.h"
#include "worker.h"

/* Polls a stackless task once, on the loop's stack. */
static void poll_stackless(weft__worker *w, weft_task *t)
{
    weft__task_begin_run(t);
    bool polled = t->flags & WEFT__T_STARTED;
    if (!polled)
        weft__task_flags_set(t, WEFT__T_STARTED);
    if (weft_unlikely(w->fence_resumes)) /* fence.h */
        atomic_thread_fence(memory_order_seq_cst);
    w->stats.nresumes++;
    w->current = t;
    /* The tracer sees a poll as the resume it is (weft.h: Tokio's before-poll), and a poll
     * that leaves the task pending as its park on the future: a stackless task's events came
     * as spawn, wakes and exit alone, no resume, which a tracer's spans and poll timelines
     * missed. A task cancelled before any poll finishes unrun, with no resume either. */
    bool traced = weft_unlikely(w->tracer != NULL) && (polled || !weft__task_cancelled(t));
    if (traced)
        weft__trace_resume(w, t);
    if (weft__task_cancelled(t)) {
        /* A future polled before keeps this task's waker, maybe where a thread outside the
         * runtime settles it later (a promise, a shared future), after the runtime has freed
         * the record. One last poll with no waker takes it back, as weft_await's last look
         * does; the outcome is the cancellation's all the same. One never polled is not
         * started now (its task finishes unrun). */
        if (polled) {
            weft_context cx = {{NULL, 0}};
            weft_future_poll(t->future, &cx);
        }
        weft__task_finish(w, t, WEFT_CANCELED);
    } else {
        weft_context cx = {weft__waker_of(t)};
        if (weft_future_poll(t->future, &cx) == WEFT_READY) {
            weft__task_finish(w, t, t->future->value);
        } else {
            if (traced) /* before the park is published: its wake comes after it */
                weft__trace_park(w, t, weft__wait_kind_name(WEFT__WAIT_FUTURE));
            uint64_t e = WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed));
            uint64_t word = WEFT__WORD(e, WEFT__RUNNING);
            if (!atomic_compare_exchange_strong_explicit(
                    &t->word, &word, WEFT__WORD(e, WEFT__PARKED), memory_order_acq_rel,
                    memory_order_acquire)) {
                /* Woken during its own poll: poll again, after the others (fairness). */
                atomic_store_explicit(&t->word, WEFT__WORD(e, WEFT__READY), memory_order_relaxed);
                weft__ready_push(&w->sched, t);
            }
        }
    }
    w->current = NULL;
}

/* Events a poll takes: no more than a tick runs. Taking more only queues tasks that wait
 * behind the others, woken long before their turn: under a backlog (thousands of busy
 * connections) the ready queue then held every connection, and each task's record and stack,
 * touched by its wake, had gone cold again by its resume. Left in the kernel, they cost
 * nothing until the next poll takes them, in the kernel's own order. */
static inline int poll_cap(const weft__worker *w)
{
    return w->sched.budget_max > 4096 ? 4096 : (int)w->sched.budget_max;
}

static void run_ready(weft__worker *w)
{
    w->sched.budget = w->sched.budget_max;
    for (;;) {
        weft_task *t = w->sched.handoff;
        if (t) {
            w->sched.handoff = NULL;
        } else {
            if (w->sched.budget == 0 || (t = weft__sched_pick(w)) == NULL)
                return;
            w->sched.budget--;
        }
        if (t->flags & WEFT__T_STACKLESS)
            poll_stackless(w, t);
        else
            weft__sched_resume(w, t);
    }
}

WEFT_COLD static void loop_init(weft__worker *w)
{
    if (!w->sched.tooling)
        return;
    /* The thread's own stack, for ASan's fiber switches back to the loop. */
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    w->sched.loop_stack_lo = lo;
    w->sched.loop_stack_size = size;
    w->sched.loop_fiber = weft__hook_fiber_current();
}

/* The kernel lets a blocking wait's timeout run late by the thread's timer slack (50 us by
 * default, to batch wake-ups), and epoll_pwait2's timeout takes it: an idle echo_server's
 * 1 ms sleeper resumed 70 us late at the median, 22 us with a slack of 1 ns
 * (examples/latency_probe.c; io_uring's waits do not take it). weft's deadlines are exact,
 * so the worker's thread waits with the least slack while its loop runs, and gets its own
 * back when the loop ends. Returns the slack to restore, or 0 to leave it as it is. */
WEFT_COLD static unsigned long precise_timers(weft__worker *w, unsigned long restore)
{
    if (restore) {
        weft__sys_prctl(&w->sys, PR_SET_TIMERSLACK, restore);
        return 0;
    }
    int slack = weft__sys_prctl(&w->sys, PR_GET_TIMERSLACK, 0);
    if (slack <= 1 || weft__sys_prctl(&w->sys, PR_SET_TIMERSLACK, 1) < 0)
        return 0;
    return (unsigned long)slack;
}

/* The other workers' view of this one's counters (weft_stats_read), refreshed each tick:
 * 13 plain stores, and none at all with one worker. */
static inline void publish_stats(weft__worker *w)
{
    /* Also with one worker: a thread outside the runtime may read them (weft_runtime_stats). */
    uint64_t v[WEFT__NPUB];
    weft__worker_counters(w, v);
    for (int k = 0; k < WEFT__NPUB; k++)
        atomic_store_explicit(&w->published[k], v[k], memory_order_relaxed);
}

/* A worker that was just handed work by another (a wake, a message) watches its inbox and
 * its rings for a few microseconds before it sleeps: the next hand-over then costs its
 * sender no doorbell (an eventfd write, 1 to 2 us, and the wake-up of this thread, which
 * was most of spawn_join_mt's 600 ns per task across two workers). Bounded, and only after
 * such work, so an idle worker never spins; and at most half the workers (at least one)
 * spin at once (Go's rule for its spinning threads), so that spinners never take most of
 * the CPUs from the workers that have work. Returns true if work came. */
#define SPIN_NS 20000 /* 20 us: about ten doorbells' worth of a sender's time */

static bool spin_slot_take(weft__runtime *rt)
{
    unsigned max = rt->nworkers / 2;
    /* relaxed: a count, not a hand-over; nothing else is published through it. */
    unsigned n = atomic_load_explicit(&rt->nspinning, memory_order_relaxed);
    do {
        if (n >= (max ? max : 1))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&rt->nspinning, &n, n + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static WEFT_NOINLINE bool spin_for_work(weft__worker *w)
{
    if (w->rt->nworkers == 1 || !spin_slot_take(w->rt))
        return false;
    int64_t until = weft__clock_ns() + SPIN_NS;
    bool came = false;
    while (!came) {
        for (int i = 0; i < 64 && !came; i++) {
            came = atomic_load_explicit(&w->inbox.head, memory_order_relaxed) ||
                   atomic_load_explicit(&w->smp.pending, memory_order_relaxed) ||
                   atomic_load_explicit(&w->relief.want, memory_order_relaxed);
            weft__cpu_relax();
        }
        if (weft__clock_ns() >= until)
            break;
    }
    atomic_fetch_sub_explicit(&w->rt->nspinning, 1, memory_order_relaxed);
    return came;
}

/* The shutdown trigger: the main task has finished. The worker it finished on sees it (its
 * own flag, set by the finish: the main task's record may be reaped and reused by then, by a
 * join or a detach of it) and tells the others (the flag, and each one's doorbell in case it
 * sleeps); they see the flag. */
static bool stop_seen(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    if (!w->main_ended)
        return atomic_load_explicit(&rt->stopping, memory_order_acquire) != 0;
    if (rt->leaks) /* before any worker's shutdown releases what the tasks held */
        weft__leaks_main_ended(rt);
    atomic_store_explicit(&rt->stopping, 1, memory_order_release);
    weft__alien_close(rt); /* no more work from outside: what came is drained (alien.c) */
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (&rt->workers[i] != w)
            weft__worker_ring(&rt->workers[i]);
    return true;
}

void weft__loop_adopt(weft__worker *w)
{
    /* On the thread about to drive w: every switch of this worker saves and restores errno
     * through it (scheduler.c). */
    w->sched.errno_loc = &errno;
    w->sched.eh_loc = weft__eh_thread_record();
    loop_init(w);
    weft__watch_thread(&w->watch, weft__handoff_slots_self());
}

void weft__loop_prepare(weft__worker *w)
{
    weft__loop_adopt(w);
    w->sched.slack_restore = precise_timers(w, 0);
    /* The others' view of this worker starts with what its set-up cost: a reader's deltas
     * then see only what happens after the runtime started. */
    publish_stats(w);
}

/* A worker's loop on the thread driving it: `native` on the worker's own thread, else on a
 * relief thread (relief.c). Returns WEFT__LOOP_DONE when the runtime has ended (on the
 * worker's own thread only), or WEFT__LOOP_HANDED when it gave the worker to another thread
 * at a tick: it must not touch it again. */
static int loop_run(weft__worker *w, bool native)
{
    atomic_store_explicit(&w->watch.active, 1, memory_order_release); /* watchdog.h */
    if (!w->started_ns)
        w->started_ns = weft__clock_ns();
    for (;;) {
        /* A thread waits for this worker (relief.h): handed over at a tick, never inside a
         * resume. One relaxed load a tick. */
        if (weft_unlikely(atomic_load_explicit(&w->relief.want, memory_order_relaxed)) &&
            weft__relief_serve(w, native))
            return WEFT__LOOP_HANDED;
        weft__timers_ticked(w, weft__clock_ns()); /* sets w->now */
        WEFT_COUNT(w->stats.nticks++);
        weft__timers_run(w, w->now);
        /* Work from other workers this tick: then a short spin before sleeping (below). */
        bool crossed = weft__inbox_drain(w);
        crossed |= weft__smp_drain(w);
        weft__smp_inject_take(w); /* stealing mode's work from outside (smp.h) */
        if (weft_unlikely(atomic_load_explicit(&w->dump_asked, memory_order_relaxed)))
            weft__dumpsig_serve(w);
        publish_stats(w);
        weft__steal_tick(w);
        /* I/O waiters get their events at least once a tick, even while tasks keep the
         * ready queue busy; without waiters the syscall is skipped, unless the backend
         * holds operations not handed over yet (io_uring's SQEs: write-behind sends, or
         * those its pacing held back): only a poll hands them over, and with nobody waiting
         * and a task that keeps yielding none would come. */
        if (w->sched.ready.len && (weft__io_nwaiters(w) || weft__io_held(w)))
            weft__io_poll(w, 0, poll_cap(w));
        run_ready(w);
        if (weft_unlikely(w->tasks.npending))
            weft__task_send_reaps(w); /* the joins' reaps of other workers' records */

        if (!w->tasks.shutting_down && stop_seen(w)) {
            if (w->rt->leaks)
                weft__leaks_worker_stop(w);
            weft__tasks_shutdown(w);
        }
        /* Out when nothing is left to run here, and nothing can come: every worker is done
         * and no message is in flight (smp.c). Only on the worker's own thread: a relief
         * thread gives it back first (no task is detached once none is live). */
        if (w->tasks.shutting_down && w->tasks.nlive == 0) {
            if (!native && weft__relief_serve(w, false))
                return WEFT__LOOP_HANDED;
            if (native && weft__smp_quiescent(w)) {
                atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed);
                publish_stats(w);
                return WEFT__LOOP_DONE;
            }
        }
        if (w->sched.ready.len)
            continue;

        w->now = weft__clock_ns();
        int64_t timeout = weft__timers_next(w, w->now);
        /* Idle: give surplus pooled stacks back, a batch at a time, without blocking
         * while some remain (256: a few hundred microseconds of madvise/munmap). */
        if (timeout != 0 && w->stacks.npooled > w->stacks.pool_max && weft__stack_trim(w, 256) > 0)
            timeout = 0;
        if (crossed && timeout != 0 && spin_for_work(w))
            continue;
        publish_stats(w);   /* what this tick did, before a sleep that may be long */
        weft__steal_ask(w); /* stealing mode: ask a busy worker for tasks it has not started */
        weft__steal_idle(w, true);
        /* A hand-off request's doorbell may have been taken by a poll earlier in this tick,
         * after the check at its top: looked at again now that the sleep is announced. */
        if (weft__inbox_sleep(w) || weft__smp_pending(w) ||
            atomic_load_explicit(&w->relief.want, memory_order_seq_cst) ||
            weft__smp_inject_pending(w->rt))
            timeout = 0;
        /* A sleep with no end: counted for the deadlock report (deadlock.c), which may
         * shorten it to the grace period, and judges after it. */
        bool still = timeout < 0 && weft__deadlock_before(w, &timeout);
        int64_t slept_from = w->now;
        if (timeout != 0 && w->tracer)
            weft__trace_sleep(w, true);
        weft__io_poll(w, timeout, poll_cap(w));
        if (timeout != 0) { /* a poll that could block: its time counts as asleep */
            weft__watch_woke(&w->watch);
            w->now = weft__clock_ns();
            w->asleep_ns += w->now - slept_from;
            if (w->tracer)
                weft__trace_sleep(w, false);
        }
        if (still)
            weft__deadlock_after(w);
        weft__inbox_awake(w);
        if (timeout != 0)
            weft__watchdog_poke(w->rt); /* a load, unless the watchdog naps (watchdog.h) */
        weft__steal_idle(w, false);
    }
}

int weft__loop(weft__worker *w)
{
    unsigned long slack = w->sched.slack_restore;
    while (loop_run(w, true) == WEFT__LOOP_HANDED) {
        /* Another thread drives w until it gives it back (relief.c). */
        weft__worker_set_current(NULL);
        weft__relief_native_wait(w);
        weft__worker_set_current(w);
        weft__loop_adopt(w);
        weft__worker_block_waited_signals(w);
    }
    if (slack)
        precise_timers(w, slack);
    return 0;
}

void weft__loop_relief(weft__worker *w)
{
    loop_run(w, false);
}
