/* Task records (task.c): the record of a stackful or stackless task, its state word, and the
 * per-worker cache of free records. A record lives from spawn until it is reaped (joined,
 * or finished while detached), then returns to its worker's free list; the epoch in its
 * state word keeps counting across lives, which makes a waker from an earlier life
 * harmless. The record's memory belongs to the runtime (chunks freed at shutdown). */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "internal.h"
#include "arch/switch.h"
#include "util/list.h"

/* ---- The state word ------------------------------------------------------------------
 * One atomic word per task decides every race between a park, a wake (from any thread), a
 * cancellation and a deadline: (epoch << 3 | state). The epoch counts the task's runs; it
 * goes up by one each time the task is given the CPU, and a waker carries the epoch of the
 * run that made it. A wake therefore applies only to the park that follows its creation, and
 * only once: stale wakers (older epoch) do nothing, so no wake-up is applied twice, and a
 * wake that arrives before the park turns RUNNING into NOTIFIED, so none is lost.
 *
 *   READY@e    --(resumed by its worker: scheduler.c)-->              RUNNING@e+1
 *   RUNNING@e  --(park: scheduler.c)-->                              PARKED@e
 *   RUNNING@e  --(wake e, any thread: wake.c)-->                    NOTIFIED@e
 *   NOTIFIED@e --(park: returns at once)-->                         RUNNING@e+1
 *   PARKED@e   --(wake e, any thread; the waker enqueues: wake.c)-> READY@e
 *   RUNNING@e  --(yield: scheduler.c)-->                             READY@e
 *   RUNNING@e  --(finish: task.c)-->                                DONE@e+1
 *
 * Only the owning worker moves a task out of READY, RUNNING or NOTIFIED, and only a
 * successful CAS from PARKED enqueues it, so a task is in at most one queue at a time. */
enum {
    WEFT__READY = 0,
    WEFT__RUNNING = 1,
    WEFT__PARKED = 2,
    WEFT__NOTIFIED = 3,
    WEFT__DONE = 4,
};
#define WEFT__STATE_BITS         3
#define WEFT__STATE(word)        ((unsigned)((word)&7u))
#define WEFT__EPOCH(word)        ((word) >> WEFT__STATE_BITS)
#define WEFT__WORD(epoch, state) (((epoch) << WEFT__STATE_BITS) | (uint64_t)(state))

/* A small pooled node for defer handlers and task-local values. owner: worker. */
typedef struct weft__node {
    struct weft__node *next;
    void (*fn)(void *);
    const void *key; /* task-local key; NULL for a defer handler */
    void *arg;
} weft__node;

/* Task flags. owner: worker. */
enum {
    WEFT__T_STACKLESS = 0x01, /* drives `future` instead of running `fn` on a stack */
    WEFT__T_DETACHED = 0x02,  /* nobody will join: reap at finish */
    /* 0x04: was the cancel flag, now the record's `cancelled` byte (any thread sets it) */
    WEFT__T_STARTED = 0x08,  /* has run at least once */
    WEFT__T_NOGUARD = 0x10,  /* spawn asked for an unguarded stack */
    WEFT__T_MAIN = 0x20,     /* the runtime's main task */
    WEFT__T_REAPED = 0x40,   /* back on the free list: a handle to it is stale (-ESRCH) */
    WEFT__T_GUARDED = 0x80,  /* its stack has a guard region: no canary zone to check */
    WEFT__T_ONSTACK = 0x100, /* has its stack now (bound at first run, dropped at the end):
                              * what the blocking calls test, in the record's first line */
    WEFT__T_PINNED = 0x200,  /* never handed to another worker (WEFT_SPAWN_PINNED) */
    WEFT__T_NOBLOCK = 0x400, /* running a callback that must not block: a watch's (watch.c),
                              * a spawn cleanup (task.c), a sharded value's init, fini or
                              * map on the caller's worker (shard.c): its blocking calls
                              * return -EPERM, as on a worker's loop */
    /* A join registered its waker in `joiner` this life: only then is `joiner` (the second
     * line) worth reading, so the join of a finished task nobody waited for reads the first
     * line only. Set by the owner with the waker, never cleared before the next life. */
    WEFT__T_JOINWAIT = 0x800,
    /* Its spawn asked for a stack size: only then does the first run read `stack_size` (the
     * third line); every other task gets the runtime's default, which the worker keeps. */
    WEFT__T_SIZED = 0x1000,
    /* Holds state on its worker that another thread must not touch: it used a worker's
     * object (a group, a generator, a stream, a watch, a future it awaits or made, the
     * io_uring ring). Set by the task itself while it runs, never cleared: a started task
     * with it is never handed to another worker (steal.c's weft__task_movable). */
    WEFT__T_BOUND = 0x2000,
    /* Its worker was handed to another thread by the stall detector while its body ran
     * (handoff.c): its thread takes the worker back at its next weft call or when the body
     * returns. Set by the signal handler on the task's own thread (the task is then in its
     * own code, so no weft code on that thread is in the middle of the flags), cleared at the
     * take-back. */
    WEFT__T_HANDED = 0x4000,
    /* Its remote join was refused: another task joined the target while its registration
     * was on its way (msg_join). Set by its own worker (msg_join_refused) while it waits in
     * that join, which clears it and returns -EINVAL. */
    WEFT__T_REFUSED = 0x8000,
};

/* A lock a task holds that must not stay held after the task finishes (a sync.c mutex, a
 * read hold of a rwlock). The node lives in the lock, or in a pooled node for holds that
 * cannot (read holds); `abandon` is the lock module's callback, handed down in the node, so
 * finishing a task releases what it still holds without task.c calling up into sync.c.
 * A plain thread's stand-in (thread_park.h) keeps the same list, and its thread's exit calls
 * `abandon` with `orphan` set: the lock then stays held (weft.h), but by no holder at all,
 * since the stand-in's storage goes with the thread and may be a later thread's stand-in.
 * owner: the holder's worker (a plain thread: that thread). */
typedef struct weft__hold {
    struct weft__hold *next; /* the holder's next hold, newest first */
    void (*abandon)(struct weft__hold *h, bool orphan);
} weft__hold;

/* A task record is 160 bytes (a test checks it stays within 160): with a
 * million queued tasks, every byte is a cache miss shared by all of them. */
/* The unit of weft_task.spawned_stamp: 2^20 ns. */
#define WEFT__STAMP_SHIFT 20

/* The bits of weft_task.cancelled. */
#define WEFT__ASKED_CANCEL 1u
#define WEFT__ASKED_DETACH 2u
#define WEFT__ASKED_JOINED 4u

struct weft_task {
    /* The first cache line holds what a message on a busy connection touches: the wake (word,
     * worker), the queue (next), the switch (ctx, saved_errno), the park's wait record and
     * the flags. Under a backlog every record is cold when its task's turn comes, and each
     * line is a miss (records are 64-byte aligned: see task.c's chunks). */

    /* any thread: wakers CAS it (acq_rel; the winner of PARKED->READY owns the enqueue). */
    _Atomic uint64_t word;
    /* The ready-queue link (owner: worker), and the remote-wake inbox link while the task
     * is in an inbox: written by the pusher before its publishing CAS, read by the worker
     * after its acquire. A task is in at most one of the two at a time (only the winner of
     * the PARKED->READY CAS queues it, in one place). */
    weft_task *next;
    weft__worker *worker; /* the owning worker: whoever resumes the task sets it first */
    weft__ctx ctx;        /* saved stack pointer while not running; owner: worker */
    /* What it waits on while parked (scheduler.h's wait record, copied here at each park so
     * that it outlives the caller's frame). Written by the owner before the park's PARKED
     * CAS (release); a reader on another thread loads the state word (acquire), the fields,
     * then the word again, and trusts the fields if the word did not change (a seqlock on
     * the state word: weft__task_wait_snapshot). Relaxed atomics, so such reads are not data
     * races. */
    _Atomic(const void *) wait_what; /* the channel, mutex, task, fd (as intptr) ... */
    _Atomic int64_t wait_deadline;   /* absolute ns, or WEFT_FOREVER */
    _Atomic int64_t wait_since;      /* the worker's clock when the wait began */
    /* WEFT__T_*. owner: the task's worker writes it, with relaxed atomic stores
     * (weft__task_flags_set), so that a handle's holder on another worker may read it with
     * relaxed loads (weft__task_flags_peek); the owner reads it plainly. */
    uint16_t flags;
    _Atomic uint8_t wait_kind; /* WEFT__WAIT_*, or WEFT__WAIT_NONE while not parked */
    /* Requests from a handle's holders, any thread, cleared by the spawn (task_new.h):
     * - WEFT__ASKED_CANCEL: cancellation requested; set (relaxed) before the wake whose CAS
     *   publishes it (acq_rel); the task reads it after it resumes (relaxed).
     * - WEFT__ASKED_DETACH: a detach was asked for this life; the first weft_detach sets it
     *   (its holder may be on another worker than the task), and a join or a second detach
     *   that finds it set is refused (task_api.c).
     * - WEFT__ASKED_JOINED: a join holds the handle (task_api.c, claim_join): set at the
     *   join's start, from the joiner's thread, cleared if it gives up. The first of the
     *   joins and detaches of a life to set its bit wins; every other is refused, so two
     *   joiners on two workers never both take the result, nor a join and a detach both
     *   succeed, and no record is reaped twice (a remote join's reap is a message). */
    _Atomic uint8_t cancelled;
    int saved_errno; /* errno while switched out (coroutines keep their own) */

    weft__stack *stack; /* bound at first run; NULL for stackless tasks; owner: worker */
    /* One word for three lives that never overlap: the body until the task first runs (or
     * the future, owned, until the finish drops it), then the result, written at finish and
     * read by the joiner after it sees DONE. */
    union {
        weft_fn fn;          /* stackful: the body */
        weft_future *future; /* stackless: the driven future (owned) */
        void *result;        /* once finished */
    };
    void *arg;
    weft__node *defers; /* LIFO cleanup handlers; owner: worker */
    /* Task-local values, and the spawn's cleanup as the oldest node, so that it runs after
     * every local's destructor. Its key says whose node it is: task.c's spawn_cleanup_key, a
     * pooled node whose fn gets the task's arg (weft_spawn_opts.cleanup); spawn_wrap_key, a
     * node a wrapping module keeps in its own record (a group's member, an alien handle),
     * whose fn gets the node's arg and which never goes back to the pool. owner: worker. */
    weft__node *locals;
    weft__hold *holds; /* locks held now (see weft__hold); owner: worker */
    weft_waker joiner; /* the task parked in weft_join on us, if any; owner: worker */
    uint64_t id;
    uint32_t stack_size; /* requested size, rounded */
    char name[16];
    /* When this life began, in units of 2^WEFT__STAMP_SHIFT ns (about 1.05 ms) of the
     * spawning worker's clock (cached per tick), modulo 2^32: an age is the difference, right
     * up to 52 days. A shift, not a division by 10^6: one instruction of every spawn, not
     * five. For the dump's age (dump.c converts it to ms); stored at spawn, before the task
     * is published. In the padding after `name`. */
    _Atomic uint32_t spawned_stamp;
    /* A sampled wake's time (weft__clock_ns), for the schedule-latency histogram: stored by
     * a waker of a park whose epoch is sampled (weft__sampled), before its READY CAS; taken
     * and zeroed by the resume (relaxed both: the CAS and the queue order them). In the
     * record's padding: no byte added, and no line touched but on sampled runs. */
    _Atomic int64_t woke_ns;
    /* Where and by whom it was spawned, for the dump: the spawn macro's __FILE__ (a string
     * that lives as long as the program) and __LINE__, or NULL and 0 for a spawn through the
     * plain function; the spawning task's id, or 0 (a thread outside, the runtime itself).
     * Written by the spawner before the task is published; read by dumps. In the padding, on
     * the line the spawn writes already (id, name). */
    const char *spawn_file;
    uint64_t parent_id;
    uint32_t spawn_line;
    /* This life's stalls the stall detector caught (watchdog.c), and the longest run it saw
     * at detection in ms, both saturating at 65535: written by its signal handler on the
     * task's own thread while the task runs; reset at spawn. Relaxed: the dump reads them as
     * figures. In the last of the padding. */
    _Atomic uint16_t nstalls;
    _Atomic uint16_t stall_max_ms;
} __attribute__((aligned(64)));

/* The lines of a record a spawn is about to write (all three), for ownership. */
static inline void weft__prefetch_record(const weft_task *t)
{
    const char *p = (const char *)t;
    weft__prefetchw(p);
    weft__prefetchw(p + 64);
    weft__prefetchw(p + 128);
}

/* Whether the park or run of epoch e is sampled for the histograms: one in 256 (two clock
 * reads a sample, about 0.15 ns a resume spread over all of them). */
static inline bool weft__sampled(uint64_t epoch)
{
#ifdef WEFT_NO_METRICS
    (void)epoch;
    return false;
#else
    return (epoch & 255) == 0;
#endif
}

/* The hot fields fill the first line exactly (x86_64, aarch64: 8-byte pointers). */
_Static_assert(sizeof(void *) != 8 || offsetof(struct weft_task, stack) == 64,
               "the hot fields of a task record fill its first cache line");

/* The per-worker part of task records: free records, the unfinished ones, and a block of
 * task ids taken from the runtime. owner: worker. */
typedef struct weft__task_cache {
    size_t nlive;    /* unfinished tasks */
    size_t nrecords; /* records not yet reaped */
    /* Recycled records, linked through next and reused oldest reaped first (FIFO, so that
     * a stale handle names a new task as late as possible): `free` is where spawns take
     * them, `back` where reaps put them. A full `back` (WEFT__TASK_BUNDLE records) joins
     * the end of `free` while `free` is short of a bundle, else it goes whole to the
     * runtime's spare bundles (only with several workers): both O(1), so a worker keeps
     * fewer than 2 bundles' worth beyond its own need and never walks a list. */
    weft_task *free;
    weft_task *free_tail;
    weft_task *back;
    weft_task *back_tail;
    uint64_t next_id; /* ids next_id .. id_end-1 are this worker's to hand out */
    uint64_t id_end;
    uint32_t stack_size; /* default stack size (the configuration's), page-rounded */
    bool shutting_down;  /* spawned from now on: cancelled from birth */
    size_t nfree;        /* records on `free` */
    size_t nback;        /* records on `back` */
    /* Finished records of other workers whose results this worker's tasks took, waiting to
     * go home as one message per worker (task_api.c): `reap_out[k]` chains those of worker
     * k through `next` (a finished record's worker does not touch its `next` until it
     * reaps it). Allocated at the first such reap, freed by weft__tasks_fini; `npending`
     * counts the chained records. */
    struct weft__reap_out *reap_out;
    size_t npending;
} weft__task_cache;

/* Free records move between workers in bundles of this many: a worker that reaps what
 * others spawn onto it (weft_spawn_on, stolen tasks) hands its surplus to the runtime's spare
 * list a bundle at a time, and a worker that runs out takes a bundle before it allocates a
 * chunk. Without it, the reaper hoards records while the spawner keeps allocating. A bundle
 * is NULL-terminated through next; on the spare list its first record's `arg` links the next
 * bundle and its `joiner.task` names its last record (fields a reaped record does not use
 * and weft__task_new_inline sets). */
#define WEFT__TASK_BUNDLE 512

/* One worker's chain of records to reap (see reap_out). */
typedef struct weft__reap_out {
    weft_task *head;
    uint32_t n;
} weft__reap_out;

/* A chain goes as soon as it holds this many: one message reaps them all. */
#define WEFT__REAP_BATCH 64

void weft__tasks_init(weft__worker *w, size_t default_stack);
/* A new READY record for a task of `w`, not yet queued: weft__task_new_inline (task_new.h),
 * for the spawn paths. The same, taken from w's records for a task of another worker, `home`
 * (weft_spawn_on): not counted on either until home adopts it (weft__task_adopt, on home's
 * thread). */
int weft__task_new_for(weft__worker *w, weft__worker *home, const weft_spawn_opts *opts,
                       bool stackless, const char *file, uint32_t line, weft_task **out);
/* weft__task_adopt(w, t): task_new.h. */
/* Gives back a record from weft__task_new_for that was never handed over. */
void weft__task_unnew(weft__worker *w, weft_task *t);
/* The join is over and its result taken: reaps t now, or, if it finished but is still on
 * its stack (its worker is between its last switch and the release), marks it so that the
 * release reaps it. t's own worker's thread. */
void weft__task_release(weft__worker *w, weft_task *t);
/* Finishing work shared by stackful and stackless tasks: defers, locals, abandoned holds, the
 * spawn cleanup, result, DONE, joiner wake-up. Runs on the task's stack (stackful) or the loop's
 * (stackless). */
void weft__task_finish(weft__worker *w, weft_task *t, void *result);
/* The main task has finished on w with `outcome`: kept for weft_run (rt->main_result), and
 * w's loop starts the shutdown (w->main_ended). Its record is not read again: a join or a
 * detach of the main task may reap it, and a task spawned during the shutdown reuse it. */
void weft__task_main_ended(weft__worker *w, void *outcome);
/* Returns a finished record to the free list (after join, or at once when detached). */
void weft__task_reap(weft__worker *w, weft_task *t);
/* Runs fn(arg), a user's spawn cleanup, in `ctx` (the task running it, or NULL on a loop)
 * with its blocking calls and weft_exit refused (-EPERM: weft.h, weft_spawn_opts.cleanup),
 * whichever context that is. Out of line: the finishes that call it only when a cleanup is
 * set save no register for it (task.c). */
void weft__task_call_noblock(weft_task *ctx, void (*fn)(void *), void *arg);
/* Marks t cancelled and wakes whatever park it is in. Any thread, on a record not reaped. */
void weft__task_cancel(weft_task *t);
/* Registers a cleanup handler on `t` (which need not be running, nor ever run: finishing
 * runs its handlers either way). Returns 0 or -ENOMEM. */
int weft__task_defer(weft_task *t, void (*fn)(void *), void *arg);
/* Cancels every unfinished task of w, and makes those spawned from now on cancelled from
 * birth, so that nothing new starts running. */
void weft__tasks_shutdown(weft__worker *w);
void weft__tasks_fini(weft__worker *w);
/* Frees every record of the runtime (after all its workers' tasks are reaped). */
void weft__task_chunks_free(weft__runtime *rt, weft__worker *w);

/* The unfinished task of w whose stack's guard region holds `addr`, or NULL. Reads the
 * runtime's chunk list without its lock (the list only grows, at the head, and a record
 * never moves): async-signal-safe, for the overflow report. */
weft_task *weft__task_by_guard(weft__worker *w, const void *addr);
/* Calls fn on every record of the runtime that is not on a free list (a live or finished
 * task), in no particular order; fn reads records (relaxed atomics for another worker's).
 * Any thread of the runtime. */
void weft__task_each(weft__runtime *rt, void (*fn)(weft_task *t, void *arg), void *arg);

/* Copies t's wait record if t is parked, consistently (see weft__task_wait); returns 0, or
 * -EAGAIN if t is not parked. Any thread, while the record is not reaped. */
int weft__task_wait_snapshot(const weft_task *t, int *kind, const void **what, int64_t *deadline,
                             int64_t *since);

/* The keys of the node that carries a spawn's cleanup in a task's locals (see `locals`). */
extern const char weft__spawn_cleanup_key;
extern const char weft__spawn_wrap_key;

/* The node of t's spawn cleanup (weft_spawn_opts.cleanup, or a wrapping module's node), or
 * NULL; until t finishes. */
const weft__node *weft__task_spawn_cleanup(const weft_task *t);

/* The owner's writes of t->flags (see the field). */
static inline void weft__task_flags_set(weft_task *t, unsigned bits)
{
    __atomic_store_n(&t->flags, (uint16_t)(t->flags | bits), __ATOMIC_RELAXED);
}
static inline void weft__task_flags_clear(weft_task *t, unsigned bits)
{
    __atomic_store_n(&t->flags, (uint16_t)(t->flags & ~bits), __ATOMIC_RELAXED);
}
/* t->flags from a thread that is not t's worker's. */
static inline unsigned weft__task_flags_peek(const weft_task *t)
{
    return __atomic_load_n(&t->flags, __ATOMIC_RELAXED);
}

/* The running task `t` (NULL: none, a plain thread) keeps state on its worker from now on
 * (WEFT__T_BOUND). Owner thread. */
static inline void weft__task_bind(weft_task *t)
{
    if (t && !(t->flags & WEFT__T_BOUND))
        weft__task_flags_set(t, WEFT__T_BOUND);
}

/* Whether cancellation of t was requested. */
static inline bool weft__task_cancelled(const weft_task *t)
{
    return atomic_load_explicit(&t->cancelled, memory_order_relaxed) & WEFT__ASKED_CANCEL;
}

/* Whether t still names a task record in use: not reaped (a stale handle is -ESRCH). Any
 * thread. */
static inline bool weft__task_reaped(const weft_task *t)
{
    return (weft__task_flags_peek(t) & WEFT__T_REAPED) != 0;
}

/* Gives t its next run: a new epoch (every waker made before is now stale), RUNNING.
 * Owner thread only, on a READY task. Inline: every resume and every stackless poll. */
/* Returns the epoch t was READY at (the one its waker sampled, weft__sampled). */
static inline uint64_t weft__task_begin_run(weft_task *t)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    uint64_t epoch = WEFT__EPOCH(word);
    atomic_store_explicit(&t->word, WEFT__WORD(epoch + 1, WEFT__RUNNING), memory_order_relaxed);
    /* The new epoch before any later look at the cancel flag, as far as the compiler goes;
     * the CPU's side is the cancel's membarrier (fence.h). No instruction. */
    atomic_signal_fence(memory_order_seq_cst);
    return epoch;
}

static inline bool weft__task_done(const weft_task *t)
{
    return WEFT__STATE(atomic_load_explicit(&t->word, memory_order_acquire)) == WEFT__DONE;
}

#endif
