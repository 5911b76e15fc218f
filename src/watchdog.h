/* The stall detector (watchdog.c): a thread per runtime that notices a task running longer
 * than the threshold without switching away, and reports it on stderr with its name and the
 * backtrace it had at that moment (taken on its own thread by a signal), rate-limited. Its
 * only cost on the workers' path is one relaxed store at each switch (weft__watch_switch). */
#ifndef WEFT_WATCHDOG_H
#define WEFT_WATCHDOG_H

#include <pthread.h>
#include <signal.h>

#include "internal.h"

struct weft__handoff_slots; /* handoff.h */

/* The signal that asks a stalled worker's thread for its backtrace: SIGURG, as Go's
 * preemption, since programs rarely use it (out-of-band TCP data). Used only while its
 * disposition is the default one (or weft's). */
#define WEFT__WATCH_SIGNAL SIGURG
#define WEFT__WATCH_FRAMES 32

/* A worker's part. `pub` is the worker's switch count, stored by the worker at every switch
 * (relaxed: the watchdog only compares values over time; whether the worker is asleep rather
 * than stuck, it reads from the inbox's `sleeping`); the rest is the backtrace the signal handler
 * leaves on the worker's thread, published by `npcs` (release) for the watchdog (acquire). */
typedef struct weft__watch {
    _Atomic uint64_t pub;
    /* 1 while the stall detector hands the worker over from a thread asleep in a system call
     * (handoff.c, weft__handoff_seize to weft__handoff_seize_end): the end of a task's body
     * then takes the take-back path (scheduler.c). Stored by the watchdog (release at the
     * end, after the task's HANDED flag), loaded with acquire by the driver. Beside `pub`,
     * whose line the driver writes at every switch. */
    _Atomic int seizing;
    /* The worker's sleeps in its reactor that have ended, stored by the worker as it wakes
     * (relaxed, as `pub`): a wake starts a new run. The watchdog's look may have found the
     * worker asleep a while before it woke, and without this it counted that part of the
     * sleep as running: a worker that slept 20 ms in stealing mode, where a waking worker
     * pokes the napping watchdog at once, was reported stalled, its task "blocked in system
     * call 441" (epoll_pwait2). */
    _Atomic uint64_t woke;
    /* 1 while the worker runs its loop (loop.c): before and after, a worker that does not
     * switch is starting or stopping, not stuck. Stored with release at the loop's start,
     * loaded with acquire by the watchdog: what the worker's init wrote (thread, tid) is
     * visible to it from then on. */
    _Atomic int active;
    /* The thread driving the worker and its kernel id (for /proc): stored by that thread
     * when it takes the worker (weft__watch_thread), loaded by the watchdog; relaxed: a
     * signal sent to a thread that just handed the worker over finds it no worker's, and
     * the handler answers nothing. */
    _Atomic pthread_t thread;
    _Atomic pid_t tid;
    /* That thread's take-back slots (handoff.h), stored with them: for the hand-off of a
     * thread asleep in a system call, made from the watchdog's thread. */
    _Atomic(struct weft__handoff_slots *) slots;
    uintptr_t pcs[WEFT__WATCH_FRAMES];
    uint64_t task_id;   /* the running task, as the handler saw it */
    int64_t ran_ns;     /* the stall's length so far: the watchdog's, before it asks */
    uint64_t asked_pub; /* `pub` of the run the watchdog asks about: written with ran_ns */
    bool ended;         /* the handler's answer: that run had ended (a switch since) */
    uint64_t counted;   /* 1 + `pub` at the handler's last count of a stall (0: none): the same
                         * value again is the same run, reported again; handler only */
    char name[16];
    _Atomic int npcs; /* -1: asked, not answered yet */
    /* 1 while the watchdog sees this worker stalled (no switch for the stall threshold, not
     * asleep): set and cleared by the watchdog at its samples (relaxed: a hint). Read by
     * whoever places work: alien spawns go round it, thieves do not wait for its answer
     * (weft__watch_stuck). */
    _Atomic int stuck;
    /* The involuntary hand-off's request (handoff.h): WATCH_ASKED by the watchdog (release),
     * claimed by the handler, then its answer, WATCH_HANDED with the lent `lend` word in
     * `handoff_lent` (written before, published by the answer's release), or WATCH_REFUSED;
     * WATCH_IDLE again once the watchdog has read it. */
    _Atomic int handoff;
    uint64_t handoff_lent;
} weft__watch;

/* Records the calling thread as the one driving the worker (loop.c, relief.c), with its
 * take-back slots (weft__handoff_slots_self). */
void weft__watch_thread(weft__watch *wt, struct weft__handoff_slots *slots);

/* At every switch (scheduler.c), with the worker's switch count just bumped: one store.
 * Owner thread. */
static inline void weft__watch_switch(weft__watch *wt, uint64_t nswitches)
{
    atomic_store_explicit(&wt->pub, nswitches, memory_order_relaxed);
}

/* After a sleep in the reactor (loop.c), on the worker's thread: one store. */
static inline void weft__watch_woke(weft__watch *wt)
{
    atomic_store_explicit(&wt->woke, atomic_load_explicit(&wt->woke, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Whether the watchdog sees w stalled now (the stuck-worker hint). Any thread. */
static inline bool weft__watch_stuck(const weft__watch *wt)
{
    return atomic_load_explicit(&wt->stuck, memory_order_relaxed) != 0;
}

/* Starts the runtime's watchdog if its threshold is not 0 (and installs the signal handler
 * if the signal is free). Returns 0 or -errno. Called once the workers run; stopped and
 * joined before they are freed. */
int weft__watchdog_start(weft__runtime *rt);
/* Stops and joins its thread; weft__watchdog_free frees the rest once no worker or relief
 * thread runs (a worker leaving its reactor may still poke it until then). */
void weft__watchdog_stop(weft__runtime *rt);
void weft__watchdog_free(weft__runtime *rt);
/* A worker that woke from a sleep in its reactor: wakes the watchdog if it naps (while no
 * worker runs a task its samples back off to 100 ms; with the involuntary hand-off on, a task
 * that starts spinning then must not wait that long to be seen). One relaxed load while the
 * watchdog does not nap; a condition signal for the first worker to wake while it does. Any
 * worker thread. */
void weft__watchdog_poke(weft__runtime *rt);

/* Whether this runtime asks for backtraces by signal: its worker threads unblock it. */
bool weft__watchdog_signals(const weft__runtime *rt);

#endif
