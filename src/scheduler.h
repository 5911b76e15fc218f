/* The scheduler (scheduler.c): the ready queue, switching, picking the next task, and the one
 * park through which every wait in weft goes. A task that parks or yields hands the CPU
 * straight to the next ready task while the tick's budget lasts; otherwise control returns
 * to the loop (loop.c) on the thread's own stack. */
#ifndef WEFT_SCHEDULER_H
#define WEFT_SCHEDULER_H

#include "internal.h"
#include "arch/switch.h"
#include "eh_state.h"
#include "task.h"
#include "util/list.h"

/* From worker.h (included at the end of this file), for the inlines below. */
weft__worker *weft__worker_current(void);
static inline weft_task *weft__worker_task(const weft__worker *w);
static inline bool weft__worker_chaos(const weft__worker *w);

/* The worker's scheduler part. owner: worker. */
typedef struct weft__sched {
    weft__ctx loop_ctx;  /* the thread's own stack, where the loop runs */
    weft__fifo ready;    /* FIFO of READY tasks, linked through task->next */
    unsigned budget;     /* resumes left in this tick */
    unsigned budget_max; /* resumes per tick (the configuration's) */
    /* How many tasks at the head of `ready` timers woke (timer.c puts them there, in deadline
     * order): a later batch goes behind them, not ahead. Each pick from the head takes one. */
    size_t nfront;
    /* Stackful tasks in `ready` that have never run (weft__ready_push_new; counted out when
     * the pick starts one): what stealing mode may hand to an idle worker (steal.c). */
    size_t nunstarted;
    weft_task *dead;    /* finished task whose stack is freed after the switch */
    weft_task *handoff; /* stackless task picked by a parking task, for the loop */
    int loop_errno;     /* errno of the loop's context while a task runs */
    int *errno_loc;     /* the worker thread's errno, set as its loop starts (scheduler.c) */
    /* The same for the C++ exception-handling record (eh_state.h): the driving thread's,
     * set with errno_loc, NULL in a program without the C++ runtime; and the loop context's
     * copy while a task runs. */
    weft__eh_state *eh_loc;
    weft__eh_state loop_eh;
    unsigned long slack_restore; /* the thread's timer slack to give back (loop.c), or 0 */
    /* Debug mode (WEFT_CHAOS=seed): a xorshift state, 0 when off. When on, picks sometimes
     * take the second ready task before the first, blocking calls sometimes yield first,
     * and steal victims are chosen at random (scheduler.c, steal.c). */
    uint64_t chaos;
    /* Sanitizer bookkeeping for the loop's (thread) stack. */
    const void *loop_stack_lo;
    size_t loop_stack_size;
    void *loop_fiber;
    bool tooling; /* a sanitizer's fiber hooks are live (hooks.h); fixed at init */
    /* Switches take the general path (scheduler.c's switch_general): `tooling`, or a C++
     * runtime in the process, whose exception record each switch keeps (eh_loc). Fixed at
     * init, the same for every worker of the process. */
    bool general;
    /* The LIFO slot (stealing mode, when weft_config.lifo_slot chooses it; Go's runnext,
     * Tokio's lifo slot): the task spawned or
     * woken last on this worker runs next, ahead of the queue, so a task that wakes or
     * spawns another hands it a warm cache, and a tree of spawns and joins runs depth first
     * (few tasks parked at once, stacks reused warm). The slot is the head of `ready`: `lifo`
     * is the task there, NULL once it is picked or something else went ahead of it. A new one
     * sends the old one to the tail. After WEFT__LIFO_MAX slot picks in a row the slot is
     * skipped (pushes go to the tail) until a task from the queue runs, so two tasks waking
     * each other cannot starve the rest. Its task is in the queue like any other, so a thief
     * may take it if it never ran. owner: worker. */
    /* Depth-first order (WEFT_ORDER_DEPTH_FIRST): spawns and local wakes go to the head,
     * behind the timer-woken tasks there (weft__ready_push_lifo); lifo_on is set with it,
     * so that the FIFO order's pushes test one flag. fixed at init. */
    bool depth_first;
    bool lifo_on; /* the slot chosen (stealing mode, several workers), or depth_first; fixed */
    unsigned lifo_streak;
    weft_task *lifo;
    /* Stealing mode with started tasks handed over too (weft_config.move_started; not in
     * depth-first order, whose thieves take never-run subtrees): fixed at init. Which queued
     * started tasks may go is decided by the victim's walk (steal.c); the pushes and the
     * pick pay nothing for it. */
    bool move_started;
    /* Why a pick must take the general path (scheduler.c pick_general), as bits, so that the
     * common pick tests one byte: the debug mode (fixed), the LIFO slot or depth-first order
     * (fixed), timer-woken tasks at the head (nfront > 0: set by timer.c, cleared by the pick
     * that takes the last of them). owner: worker. */
    uint8_t pick_slow;
} weft__sched;

enum { WEFT__PICK_CHAOS = 1, WEFT__PICK_LIFO = 2, WEFT__PICK_FRONT = 4 };

#define WEFT__LIFO_MAX 3

/* Makes a READY task runnable on its worker's queue; called by whoever moved it to READY on
 * the owning thread (the winner of the wake CAS, a yield, a spawn). */
static inline void weft__ready_push(weft__sched *s, weft_task *t)
{
    weft__fifo_push(&s->ready, t, offsetof(weft_task, next));
}

/* The same for a stackful task that has never run (a spawn, a hand-over): counted in
 * nunstarted until the pick starts it. */
static inline void weft__ready_push_new(weft__sched *s, weft_task *t)
{
    s->nunstarted++;
    weft__fifo_push(&s->ready, t, offsetof(weft_task, next));
}

/* Depth-first order: to the head, behind the timer-woken tasks that hold it (nfront, few:
 * one tick's due timers). */
static inline void weft__ready_push_depth_first(weft__sched *s, weft_task *t)
{
    if (!s->nfront) {
        weft__fifo_push_front(&s->ready, t, offsetof(weft_task, next));
        return;
    }
    weft_task *p = s->ready.head; /* the last timer-woken task: t goes after it */
    for (size_t i = 1; i < s->nfront; i++)
        p = p->next;
    if (p == s->ready.tail) {
        weft__fifo_push(&s->ready, t, offsetof(weft_task, next));
        return;
    }
    t->next = p->next;
    p->next = t;
    s->ready.len++;
}

/* weft__ready_push_lifo while the slot or the depth-first order is on (lifo_on): out of line
 * (wake.c), so that the FIFO order's push, inline in every wake, is the queue's push
 * alone. Owner thread. */
void weft__ready_push_lifo_on(weft__sched *s, weft_task *t);

/* Into the LIFO slot (see weft__sched.lifo), or the tail when the slot is off, skipped, or
 * timer-woken tasks hold the head. `unstarted`: a spawn (weft__ready_push_new's count).
 * Inline whole: a hand-off's wake (wake_local.h) makes no call for it. */
static inline __attribute__((always_inline)) void weft__ready_push_lifo(weft__sched *s,
                                                                        weft_task *t,
                                                                        bool unstarted)
{
    s->nunstarted += unstarted;
    /* One test on the FIFO order's path: lifo_on covers the depth-first order too. */
    if (weft_likely(!s->lifo_on))
        weft__fifo_push(&s->ready, t, offsetof(weft_task, next));
    else
        weft__ready_push_lifo_on(s, t);
}

/* After each pick (stealing mode): the slot's streak. */
static inline void weft__lifo_picked(weft__sched *s, const weft_task *t)
{
    if (t == s->lifo) {
        s->lifo = NULL;
        s->lifo_streak++;
    } else {
        s->lifo_streak = 0;
    }
}

/* ---- The wait record and the park ----------------------------------------------------
 * Every wait describes what it waits on (Go's gopark(unlockf, lock, reason)): the task dump
 * and the deadlock report read the kind and the object; the park reads the rest. */
enum {
    WEFT__WAIT_NONE = 0,
    WEFT__WAIT_SLEEP,     /* what: NULL */
    WEFT__WAIT_YIELD,     /* what: NULL (ready, not parked; never in a record) */
    WEFT__WAIT_FD,        /* what: the fd (intptr); readiness */
    WEFT__WAIT_IO,        /* what: the fd (intptr); an operation in flight on the ring */
    WEFT__WAIT_CHAN_SEND, /* what: the channel */
    WEFT__WAIT_CHAN_RECV, /* what: the channel */
    WEFT__WAIT_SELECT,    /* what: the case array */
    WEFT__WAIT_MUTEX,     /* what: the mutex */
    WEFT__WAIT_COND,      /* what: the condition variable */
    WEFT__WAIT_SEM,       /* what: the semaphore */
    WEFT__WAIT_WAITGROUP, /* what: the wait group */
    WEFT__WAIT_RWLOCK_RD, /* what: the rwlock */
    WEFT__WAIT_RWLOCK_WR, /* what: the rwlock */
    WEFT__WAIT_ONCE,      /* what: the once */
    WEFT__WAIT_EVENT,     /* what: the event */
    WEFT__WAIT_JOIN,      /* what: the joined task */
    WEFT__WAIT_FUTURE,    /* what: the future */
    WEFT__WAIT_POOL_JOB,  /* what: the job */
    WEFT__WAIT_GEN_NEXT,  /* what: the generator (consumer side) */
    WEFT__WAIT_GEN_YIELD, /* what: the generator (producer side) */
    WEFT__WAIT_SMP_ROOM,  /* what: the worker whose message ring from ours is full */
    WEFT__WAIT_SHARDS,    /* what: a shard.c operation (a sharded value's broadcast, a server
                           * whose acceptors are stopping) */
    WEFT__WAIT_NKINDS
};

/* The waits after which nothing of a task stays on its worker, so that, woken and queued,
 * it may be handed to another (steal.c): it waited, with no deadline, on an object any
 * thread may touch (a channel, a lock, a join), or yielded (WEFT__WAIT_NONE: its last park
 * ended). Not these: a sleep or any deadline (a timer in its worker's heap, which the task
 * stops when it resumes), an fd (its waiter node is in the worker's fd table until the task
 * leaves it), a ring operation, a future, a generator, a pool job, the worker's rings. */
#define WEFT__WAITS_MOVABLE                                                                        \
    ((1u << WEFT__WAIT_CHAN_SEND) | (1u << WEFT__WAIT_CHAN_RECV) | (1u << WEFT__WAIT_SELECT) |     \
     (1u << WEFT__WAIT_MUTEX) | (1u << WEFT__WAIT_COND) | (1u << WEFT__WAIT_SEM) |                 \
     (1u << WEFT__WAIT_WAITGROUP) | (1u << WEFT__WAIT_RWLOCK_RD) | (1u << WEFT__WAIT_RWLOCK_WR) |  \
     (1u << WEFT__WAIT_ONCE) | (1u << WEFT__WAIT_EVENT) | (1u << WEFT__WAIT_JOIN))

/* Whether a started, queued (READY) task may be handed to another worker: stackful, on a
 * guarded stack (an unguarded one is carved from its worker's slab, freed with that worker),
 * not pinned, bound (WEFT__T_BOUND) or the main task, and its last wait left nothing behind
 * (WEFT__WAITS_MOVABLE). Every field read is in the record's first line. Owner thread. */
static inline bool weft__task_movable(const weft_task *t)
{
    unsigned f = t->flags;
    if ((f & (WEFT__T_STARTED | WEFT__T_GUARDED | WEFT__T_STACKLESS | WEFT__T_PINNED |
              WEFT__T_BOUND | WEFT__T_MAIN | WEFT__T_NOBLOCK)) !=
        (WEFT__T_STARTED | WEFT__T_GUARDED))
        return false;
    /* A yield leaves the last park's deadline in the record: it counts only with a kind. */
    unsigned kind = atomic_load_explicit(&t->wait_kind, memory_order_relaxed);
    return kind == WEFT__WAIT_NONE ||
           (kind < 32 && (WEFT__WAITS_MOVABLE >> kind & 1) &&
            atomic_load_explicit(&t->wait_deadline, memory_order_relaxed) == WEFT_FOREVER);
}

/* What a person calls a wait kind ("mutex", "fd readiness" ...): the dump's words, the
 * tracer's too; "unknown" for a kind out of range. */
const char *weft__wait_kind_name(int kind);

typedef struct weft__wait {
    int kind;           /* WEFT__WAIT_* */
    bool uncancellable; /* neither the deadline nor cancellation ends the wait */
    const void *what;   /* the object waited on (see the kinds) */
    int64_t deadline;   /* absolute ns, or WEFT_FOREVER */
    /* Optional (weft__park_until): the wait is over when done(done_arg) is true. Checked
     * before each park, and once more after a deadline or a cancellation, so a completion
     * that raced them wins. */
    bool (*done)(const void *done_arg);
    const void *done_arg;
    /* Optional (weft__park_until): set to the task's waker before each park, for whoever
     * will complete the wait. */
    weft_waker *waker;
    /* Optional (weft__park): releases the caller's lock once the task is marked PARKED,
     * before it switches away, so a waker that takes the lock after the caller registered
     * always finds the task parked or about to be. Never a lock held across the park. */
    void (*unlock)(void *lock);
    void *lock;
} weft__wait;

/* Parks the current task once: until it is woken, the deadline passes or it is cancelled
 * (the last two not when uncancellable). With w NULL, the caller is a plain thread, and its
 * stand-in parks (thread_park.h: never cancelled). Returns 0 (woken), -ETIMEDOUT or -ECANCELED;
 * -ENOMEM if the deadline's timer could not be armed. The caller re-reads its worker after
 * it returns (weft__worker_current()): no worker, fd record or timer pointer is kept across
 * it. Calls wr->unlock (if any) exactly once, on every path. */
int weft__park(weft__worker *w, const weft__wait *wr);
/* weft__park for the commonest wait, built by the park itself: no deadline, nothing to
 * unlock, cancellable (kind and what as in the wait record). weft__park_until takes it for
 * such waits: the hot hand-offs (a channel operation, a mutex) then pass two arguments
 * instead of a record the park reads back. Same returns as weft__park. */
int weft__park_forever(weft__worker *w, int kind, const void *what);
/* The same with the caller's lock, released once the task is marked PARKED (as
 * weft__wait.unlock): the hot hand-offs of channels between workers. */
int weft__park_forever_unlock(weft__worker *w, int kind, const void *what, void (*unlock)(void *),
                              void *lock);
/* The same for a caller whose lock is a spinlock word (util/spinlock.h), released inline:
 * no callback to call (a channel's, a sync primitive's). */
int weft__park_forever_spin(weft__worker *w, int kind, const void *what, _Atomic uint32_t *lock);
/* Parks until wr->done holds (returns 0), or the deadline / cancellation (their error).
 * Refreshes *wr->waker before each park. Inline, so that each wait's `done` is inlined into
 * its loop on the hot paths (a channel hand-off parks once per message). */
static inline int weft__park_until(weft__worker *w, const weft__wait *wr)
{
    /* Copied out: the compiler may then inline `done`, which a load through wr after the
     * park's call would prevent. */
    bool (*done)(const void *) = wr->done;
    const void *arg = wr->done_arg;
    weft_waker *slot = wr->waker;
    weft_task *t = weft__worker_task(w);
    while (!done(arg)) {
        if (slot) {
            slot->task = t;
            slot->epoch = WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed));
        }
        /* The commonest wait (no deadline, nothing to unlock, cancellable) takes the park
         * that builds its own record from two arguments. */
        int r = (wr->deadline == WEFT_FOREVER && !wr->unlock && !wr->uncancellable)
                    ? weft__park_forever(w, wr->kind, wr->what)
                    : weft__park(w, wr);
        w = t->worker; /* see weft__park: re-read after the switch */
        if (r < 0)
            return done(arg) ? 0 : r;
    }
    return 0;
}

/* Yields: the current task goes to the tail of the ready queue. Returns that task, once it
 * runs again (a caller that reads it from here keeps nothing across the switch). */
weft_task *weft__yield(weft__worker *w);
/* Child first (WEFT_SPAWN_CHILD_FIRST): the current stackful task goes to the tail of the
 * ready queue, as in a yield, and `t` (just spawned: READY, never run, not queued) runs at
 * once. Returns when the caller is resumed. A t cancelled from birth, or that cannot get a
 * stack, is queued instead (and finished unrun by the pick), and the caller carries on. */
void weft__run_first(weft__worker *w, weft_task *t);
/* Finishes the current stackful task; never returns. */
_Noreturn void weft__task_exit(weft__worker *w, void *result);
/* The current task if it is stackful and may block, else NULL. Inline: every yield and
 * child-first spawn asks. */
static inline weft_task *weft__blocking_task(weft__worker *w)
{
    if (!w)
        return NULL;
    weft_task *t = weft__worker_task(w);
    /* A stackless task, or one finishing unrun, has no stack (no ONSTACK); a watch callback
     * must not block (NOBLOCK): one load and one test for both. */
    return t && (t->flags & (WEFT__T_ONSTACK | WEFT__T_NOBLOCK)) == WEFT__T_ONSTACK ? t : NULL;
}

/* The prologue of every blocking call: the calling worker and task, or NULL with *err set
 * to -EPERM (not inside a stackful task). With `live`, a task already cancelled gets
 * -ECANCELED at once. Inline: it is on every blocking call's path. */
/* Returns the task's worker after it (the migration rule: re-read after a switch). */
__attribute__((returns_nonnull)) weft__worker *weft__chaos_yield(weft__worker *w);
/* Debug mode: a fair coin from w's generator (steal.c's victims). */
bool weft__chaos_coin(weft__worker *w);

static inline weft__worker *weft__blocking_begin_on(weft__worker *w, weft_task **task, bool live,
                                                    int *err)
{
    weft_task *t = w ? weft__worker_task(w) : NULL;
    /* stackless, finishing unrun, or in a watch callback: one test of the flags */
    if (!t || (t->flags & (WEFT__T_ONSTACK | WEFT__T_NOBLOCK)) != WEFT__T_ONSTACK) {
        *err = -EPERM;
        return NULL;
    }
    if (weft_unlikely(weft__worker_chaos(w))) {
        /* before the call registers anything: no waker goes stale */
        w = weft__chaos_yield(w);
    }
    if (live && weft__task_cancelled(t)) {
        *err = -ECANCELED;
        return NULL;
    }
    *task = t;
    return w;
}

static inline weft__worker *weft__blocking_begin(weft_task **task, bool live, int *err)
{
    return weft__blocking_begin_on(weft__worker_current(), task, live, err);
}

/* weft__blocking_begin for the calls a plain thread may make too (sync.c, chan.c): on a
 * thread outside every runtime, *task is the thread's stand-in (thread_park.h), *err 0, and
 * the worker returned NULL; the parks then sleep the thread (weft__park with w NULL). A
 * worker's thread outside a stackful task still gets -EPERM: it must not block. */
weft_task *weft__thread_task(void);
static inline weft__worker *weft__blocking_begin_any(weft_task **task, int *err)
{
    weft__worker *w = weft__worker_current();
    if (weft_unlikely(!w)) {
        *task = weft__thread_task();
        *err = 0;
        return NULL;
    }
    return weft__blocking_begin_on(w, task, false, err);
}

/* For the loop (loop.c): */
void weft__sched_init(weft__worker *w, unsigned budget, bool lifo, bool depth_first,
                      bool move_started);
/* Pops the next task that can run, binding a stack to one that never ran (a task that
 * cannot get one finishes at once). NULL if none. */
weft_task *weft__sched_pick(weft__worker *w);
/* Gives the CPU to t (picked, READY) from the loop's context; returns when the loop is
 * switched back to. */
void weft__sched_resume(weft__worker *w, weft_task *t);

#include "worker.h" /* last: it embeds this file's part, and defines weft__worker_task */

#endif
