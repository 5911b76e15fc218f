/* The runtime (runtime.c): the process-level record behind weft_run. It owns its workers
 * (worker 0 on the thread that called weft_run, the others on threads it starts), the
 * configuration, the one blocking pool, the task-record chunks and the spare records
 * workers hand back, the task-id counter, the message rings between workers (smp.c) and the
 * shutdown's flags, and sums the workers' counters. */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include "fence.h"
#include "handoff.h"
#include "internal.h"
#include "relief.h"

#define WEFT__ID_BLOCK 1024 /* task ids a worker takes at once: one atomic per 1024 spawns */

struct weft__runtime {
    weft_config cfg;       /* fixed once started */
    weft__worker *workers; /* nworkers of them; fixed */
    unsigned nworkers;
    weft_task *main_task; /* owner: the main task's worker; set once, read by weft_run only */
    uint64_t chaos_seed;  /* WEFT_CHAOS: the debug mode's seed, 0 when off; fixed */
    /* The cancel's fence (fence.h), and whether every resume takes one instead; fixed. */
    weft__fence fence;
    bool fence_resumes;

    /* any thread: the next unassigned task id; workers take blocks (relaxed: ids need only
     * be unique, not ordered). */
    _Atomic uint64_t next_id;
    /* The one stderr line about a task that got no stack was written (scheduler.c): any
     * worker exchanges it (relaxed: only its own value matters). */
    _Atomic bool nostack_told;
    /* The one line about io_uring's fallback to epoll was written (io/reactor.c): each
     * worker that falls back exchanges it (relaxed, as nostack_told). */
    _Atomic bool uring_fallback_told;
    /* Dumps under way (dump.c): while it is not 0, a victim hands no task to a thief
     * (steal.c), so that no task moves between two workers' parts of a dump, which listed it
     * twice or not at all. Incremented and decremented by the dumping tasks of any worker;
     * relaxed: the answers in flight when it rises are the window left. */
    _Atomic unsigned dumping;
    /* Which workers used and which know each fd (io/fdshare.c): pages of mask pairs made at
     * first use by any worker (CAS), freed with the runtime. Only in a runtime of several
     * workers. */
    _Atomic(_Atomic uint64_t *) fdshare[256]; /* WEFT__FDSHARE_PAGES */

    pthread_mutex_t lock;      /* guards chunks and pool creation (cold paths only) */
    struct task_chunk *chunks; /* every task record is carved from these; under lock */
    weft__pool *pool;          /* the blocking pool, created at first use; under lock */
    /* Free records a worker had too many of (a worker that reaps what others spawned onto
     * it), for a worker that has none: a stack of bundles (task.h, WEFT__TASK_BUNDLE), under
     * lock. */
    weft_task *spare;
    /* The handle threads outside the runtime hold (alien.c), made at the first
     * weft_runtime_current; under lock. */
    struct weft_runtime *anchor;

    /* The deadlock report (deadlock.c). any worker: `nstill` counts the workers asleep with
     * nothing of their own to wake them (seq_cst: the last to count itself sees every
     * other's count); `checked_at` and `reported_at` are the runtime's resume counts at the
     * last verdict that found no deadlock and at the last report (CAS: two checkers may
     * finish together). any thread: `foreign` is set (relaxed, never cleared) once a thread
     * outside the runtime woke one of its tasks. */
    int deadlock_policy;       /* WEFT_DEADLOCK_*, resolved; fixed */
    int64_t deadlock_grace_ns; /* weft__deadlock_init; fixed */
    _Atomic unsigned nstill;
    _Atomic uint64_t checked_at;
    _Atomic uint64_t reported_at;
    _Atomic int foreign;
    /* Its slot + 1 in dumpsig.c's table while it has a dump signal, else 0; owner: the
     * thread of weft_run. */
    int dumpsig_slot;
    /* The leak report's table and parts (leaks.c), or NULL when the report is off; fixed. */
    struct weft__leaks *leaks;

    int64_t stall_ns; /* the stall detector's threshold, 0: off; fixed */
    /* The involuntary hand-off (handoff.h): a worker running one task this long is asked to
     * let go of it, 0: off; and where weft's code lies, for its check. Fixed. */
    int64_t handoff_ns;
    weft__code_range code;
    /* Its steps, handed to the stall detector (a layer below them) by runtime.c:
     * weft__handoff_detach in the detector's signal handler, weft__relief_assign after. */
    bool (*handoff_detach)(weft__worker *w, void *uctx, uint64_t *lent);
    int (*handoff_assign)(weft__worker *w, uint64_t lent);
    /* And for a thread asleep in a system call, from the detector's own thread. */
    bool (*handoff_seize)(weft__worker *w, bool uninterruptible, uintptr_t pc, uintptr_t sp,
                          struct weft__handoff_slots **slots);
    bool (*handoff_seize_end)(weft__worker *w, struct weft__handoff_slots *slots, bool asleep,
                              uint64_t *lent);
    /* The calling thread's take-back slots (weft__handoff_slots_self), for relief.c, a layer
     * below handoff.c. */
    struct weft__handoff_slots *(*handoff_slots)(void);
    struct weft__watchdog *watchdog; /* watchdog.c's thread, or NULL */

    /* The message rings, rings[from * nworkers + to] (smp.c); each pointer is stored once by
     * its sender (release) and loaded by its receiver (acquire). */
    struct weft__smp_ring *_Atomic *rings;
    /* The injection queue (smp.c, weft__smp_inject), newest first: any thread pushes (CAS,
     * seq_cst), a worker takes the whole list (exchange, acquire). `inject_next` rotates the
     * choice of the sleeping worker an injection rings (relaxed: any spread will do). */
    struct weft__smp_spill *_Atomic inject;
    _Atomic unsigned inject_next;
    /* Shutdown. any thread: `stopping` is set once by the main task's worker when the main
     * task has finished (release; loaded each tick by the others, acquire); `ndone` counts
     * the workers with nothing left to run; `exiting` is set once by the worker that finds
     * the runtime quiescent (smp.c), and then every loop returns. */
    _Atomic int stopping;
    /* The main task's outcome, stored by the thread that finished it (task_finish.h) before
     * its worker sets `stopping` (release), read by weft_run once every loop has ended. Not
     * read from the main task's record, which a join or a detach of the main task may have
     * reaped and a task spawned during the shutdown reused by then. */
    void *main_result;
    _Atomic unsigned ndone;
    /* any worker: how many spin for work before sleeping now (loop.c, at most half) */
    _Atomic unsigned nspinning;
    _Atomic int exiting;

    /* Start-up and tear-down of the worker threads, under start_lock: each thread reports its
     * init (nstarted, failed) and waits for `phase` to move on (1: run the loop, 2: free its
     * worker, -1: start-up failed, free and leave). */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned nstarted;
    /* Those whose loop has returned: worker 0 waits for all of them before phase 2, since the
     * last worker to see the runtime quiescent rings the others' doorbells after the others
     * may have left their loops, and a worker that frees its reactor must not be rung then. */
    unsigned nleft;
    int failed;
    int phase;
    pthread_t *threads; /* nworkers - 1 of them (worker 0 is the caller's thread) */
    /* The relief threads of weft_block_in_place (in_place.c), the CPUs they may run on (the
     * affinity mask weft_run found) and their signal mask (the workers'); fixed. */
    weft__relief_pool relief;
    cpu_set_t affinity;
    sigset_t thread_mask;
};

/* Takes a block of n task ids; returns the first. Any thread. */
static inline uint64_t weft__runtime_take_ids(weft__runtime *rt, uint64_t n)
{
    return atomic_fetch_add_explicit(&rt->next_id, n, memory_order_relaxed);
}

#endif
