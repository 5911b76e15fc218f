/* internal.h: the weft__ contracts shared between modules: the worker (one runtime on one
 * thread), the task record and its state machine, and the calls modules make into each
 * other. Everything a worker owns is touched by its own thread only, except the fields
 * marked "any thread", which are atomics with their ordering stated. */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weft.h"
#include "arch/switch.h"
#include "util/list.h"
#include "sys.h"

#define WEFT_COLD        __attribute__((cold))
#define WEFT_NOINLINE    __attribute__((noinline))
#define weft_likely(x)   __builtin_expect(!!(x), 1)
#define weft_unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

typedef struct weft__worker weft__worker;
typedef struct weft__stack weft__stack;
typedef struct weft__io weft__io;
typedef struct weft__pool weft__pool;

/* ---- Task state machine -------------------------------------------------------------
 * A task's state word packs (epoch << 3 | state). The epoch counts the task's runs: it goes
 * up by one each time the task is given the CPU, and a waker carries the epoch of the run
 * that made it. A wake therefore applies only to the park that follows its creation, and
 * only once: stale wakers (older epoch) do nothing, so no wake-up is applied twice, and a
 * wake that arrives before the park turns RUNNING into NOTIFIED, so none is lost.
 *
 *   READY@e    --(resumed by its worker)-->                  RUNNING@e+1
 *   RUNNING@e  --(park)-->                                   PARKED@e
 *   RUNNING@e  --(wake e, any thread)-->                     NOTIFIED@e
 *   NOTIFIED@e --(park: returns at once)-->                  RUNNING@e+1
 *   PARKED@e   --(wake e, any thread; the waker enqueues)--> READY@e
 *   RUNNING@e  --(yield)-->                                  READY@e
 *   RUNNING@e  --(finish)-->                                 DONE@e+1
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

/* A small pooled node for defer handlers and task-local values. */
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
    WEFT__T_CANCELLED = 0x04, /* cancellation requested */
    WEFT__T_STARTED = 0x08,   /* has run at least once */
    WEFT__T_NOGUARD = 0x10,   /* spawn asked for an unguarded stack */
    WEFT__T_MAIN = 0x20,      /* the runtime's main task */
};

struct weft_task {
    /* any thread: wakers CAS it (acq_rel; the winner of PARKED->READY owns the enqueue). */
    _Atomic uint64_t word;
    weft_task *next;       /* ready-queue link; owner: worker */
    weft_task *inbox_next; /* remote-wake inbox link; written by the pusher before its
                            * publishing CAS, read by the worker after its acquire */
    weft__worker *worker;  /* the owning worker; fixed for the record's life */
    weft__ctx ctx;         /* saved stack pointer while not running */
    weft__stack *stack;    /* bound at first run; NULL for stackless tasks */
    union {
        weft_fn fn;          /* stackful: the body */
        weft_future *future; /* stackless: the driven future (owned) */
    };
    void *arg;
    void *result;       /* set at finish */
    weft__node *defers; /* LIFO cleanup handlers */
    weft__node *locals; /* task-local values */
    weft_waker joiner;  /* the task parked in weft_join on us, if any */
    weft__list all;     /* in worker->tasks while not yet finished */
    uint64_t id;
    uint32_t stack_size; /* requested size, rounded */
    uint16_t flags;      /* WEFT__T_*; owner: worker */
    int saved_errno;     /* errno while switched out (coroutines keep their own) */
    char name[16];
};

/* ---- Stacks (stack.c) --------------------------------------------------------------- */

/* A stack's descriptor lives at the top of its own mapping, so pooling needs no malloc.
 * The usable stack is [lo, hi); hi is where the descriptor starts. */
struct weft__stack {
    weft__stack *next; /* pool link */
    char *lo, *hi;     /* usable range */
    char *map;         /* mapping start (guard page included), or slab it was carved from */
    size_t map_size;
    uint32_t size;   /* usable size class */
    uint8_t guarded; /* a PROT_NONE page sits right below lo */
    uint8_t slab;    /* carved from a slab: freed with it */
    unsigned vg_id;  /* valgrind stack id */
#ifdef WEFT_TSAN
    void *tsan_fiber; /* the TSan fiber of the task running on it */
#endif
};

int weft__stack_alloc(weft__worker *w, size_t size, bool want_guard, weft__stack **out);
void weft__stack_free(weft__worker *w, weft__stack *s);
/* Returns pooled stacks beyond stack_pool_max to the kernel, at most max_ops of them; returns
 * how many are still in excess. Called by the loop when it is about to block. */
size_t weft__stack_trim(weft__worker *w, size_t max_ops);
void weft__stack_fini(weft__worker *w);
/* Debug builds write a canary at the bottom of each unguarded stack and check it at every
 * park and exit. Release builds do not: it would commit a second page per stack. */
#ifndef NDEBUG
#define WEFT__STACK_CANARY 1
#else
#define WEFT__STACK_CANARY 0
#endif
/* Writes the canary at the bottom of an unguarded stack / checks it (0 = intact). */
void weft__stack_canary_set(weft__stack *s);
int weft__stack_canary_check(const weft__stack *s);

#define WEFT__STACK_CLASSES 8

typedef struct weft__stack_pool {
    struct {
        size_t size;
        weft__stack *free; /* warm: pages still committed */
        size_t nfree;
        weft__stack *cold; /* trimmed: pages given back, reused after the warm ones */
    } cls[WEFT__STACK_CLASSES];
    struct weft__slab *slabs; /* every slab, freed at shutdown */
    size_t nguarded;          /* guarded stacks in existence (each costs 2 VMAs) */
    size_t guard_limit;       /* from vm.max_map_count / 4 */
    size_t nlive;             /* stacks bound to tasks */
    size_t npooled;           /* warm pooled stacks */
    size_t ncold;
    size_t page;
} weft__stack_pool;

/* ---- Timers (timer.c) --------------------------------------------------------------- */

/* A timer belongs to its waiter (often on a coroutine stack); the heap holds its keys. */
typedef struct weft__timer {
    size_t index; /* 1 + its slot in the heap, 0 when not armed */
    weft_waker waker;
} weft__timer;

typedef struct weft__timer_entry {
    int64_t deadline;
    uint64_t seq; /* insertion order: equal deadlines fire first-in first-out */
    weft__timer *timer;
} weft__timer_entry;

typedef struct weft__timer_heap {
    weft__timer_entry *v;
    size_t n, cap;
} weft__timer_heap;

/* Arms (or re-arms) t. Returns 0 or -ENOMEM (the heap could not grow). */
int weft__timer_start(weft__worker *w, weft__timer *t, int64_t deadline, weft_waker wk);
void weft__timer_stop(weft__worker *w, weft__timer *t);
/* Fires every timer due at w->now; returns how many. */
size_t weft__timers_run(weft__worker *w);
/* Nanoseconds until the nearest timer (0 if due), or -1 if none. */
int64_t weft__timers_next(weft__worker *w);
void weft__timers_fini(weft__worker *w);

/* ---- The I/O reactor (io/reactor.c, io/backend.h) ----------------------------------- */

int weft__io_init(weft__worker *w);
void weft__io_fini(weft__worker *w);
/* Polls the backend, waiting at most timeout_ns (-1: forever, 0: not at all). */
int weft__io_poll(weft__worker *w, int64_t timeout_ns);
/* Wakes the worker out of a blocking poll; any thread. */
void weft__io_notify(weft__worker *w);
/* Forgets any record of fd without a syscall: for an fd number the kernel just handed out,
 * which cannot be registered yet whatever the table says. */
void weft__io_fd_fresh(weft__worker *w, int fd);
/* Drained-read bookkeeping for readiness backends (see reactor.c). */
int weft__io_read_drained(weft__worker *w, int fd);
void weft__io_mark_drained(weft__worker *w, int fd);
/* Tasks parked on fds: when non-zero, ticks must poll I/O even while tasks are ready. */
size_t weft__io_nwaiters(weft__worker *w);

/* ---- The worker ---------------------------------------------------------------------- */

struct weft__worker {
    weft_task *current;  /* running task, NULL on the scheduler context */
    weft__ctx sched_ctx; /* the thread's own stack, where the loop runs */
    weft__fifo ready;    /* FIFO of READY tasks, linked through task->next */
    unsigned budget;     /* resumes left in this tick */
    int64_t now;         /* clock cached at the start of the tick */
    weft_task *dead;     /* finished task whose stack is freed after the switch */
    weft_task *handoff;  /* stackless task picked by a parking task, for the loop */
    int sched_errno;     /* errno of the loop's context while a task runs */

    /* any thread: the remote-wake inbox, a Treiber stack of tasks woken from other threads.
     * Pushers CAS with release (publishing the task's READY state); the worker takes the
     * whole stack with an acquire exchange. */
    _Atomic(weft_task *) inbox;
    /* any thread: 1 while the worker is (about to be) blocked in the reactor. seq_cst on
     * both sides (store here then load inbox; push there then load this) so that either the
     * worker sees the pushed task or the pusher sees the flag and notifies. */
    _Atomic int sleeping;

    weft__timer_heap timers;
    uint64_t timer_seq;
    weft__io *io;
    weft__pool *pool; /* blocking pool, created at first use */

    weft__list tasks;          /* unfinished tasks, for shutdown */
    size_t nlive;              /* unfinished tasks */
    size_t ntasks;             /* records not yet reaped */
    struct task_chunk *chunks; /* task records are carved from these; freed at the end */
    weft_task *free_tasks;     /* recycled task records, linked through next */
    size_t nfree_tasks;
    weft__node *free_nodes;
    weft__stack_pool stacks;
    weft_task *main_task;
    bool shutting_down;
    uint64_t next_id;
    uint64_t rng; /* xorshift state for select's fair choice (chan.c) */
    weft_config cfg;
    weft_stats stats;
    weft__sys sys; /* system calls made for this worker (sys.h); owner: worker */

    /* Sanitizer bookkeeping for the scheduler's own (thread) stack. */
    const void *sched_stack_lo;
    size_t sched_stack_size;
    void *sched_tsan_fiber;

    /* Alternate signal stack for overflow reports. */
    void *altstack;
    size_t altstack_size;
    bool altstack_installed;
};

/* The worker running on this thread, or NULL. Not inlined on purpose: a coroutine may one
 * day resume on another thread, and a TLS address kept in a register would then be stale. */
weft__worker *weft__worker_current(void);
void weft__worker_set_current(weft__worker *w);

/* Allocation seam: counts every allocation, and is where fault injection hooks in. */
void *weft__malloc(weft__worker *w, size_t size);
void *weft__calloc(weft__worker *w, size_t n, size_t size);
void *weft__realloc(weft__worker *w, void *p, size_t size);
void weft__free(weft__worker *w, void *p);
weft__node *weft__node_get(weft__worker *w);
void weft__node_put(weft__worker *w, weft__node *n);

/* ---- Scheduler (sched.c) ------------------------------------------------------------- */

/* Makes a woken (READY) task runnable on its worker; called by the winner of the CAS. */
void weft__enqueue(weft__worker *w, weft_task *t);
/* Wakes park `epoch` of `t` (any thread). */
void weft__wake(weft_task *t, uint64_t epoch);
/* Parks the current task until woken, the deadline passes, or it is cancelled.
 * Returns 0 (woken), -ETIMEDOUT or -ECANCELED. Callers re-check their own condition. */
int weft__park_until(weft__worker *w, int64_t deadline);
/* Parks the current task until woken, whatever its cancel flag (for waits that must not be
 * abandoned, such as a blocking-pool job already running). Returns 0. */
int weft__park(weft__worker *w);
/* Yields: the current task goes to the tail of the ready queue. */
void weft__yield(weft__worker *w);
/* Finishes the current stackful task; never returns. */
_Noreturn void weft__task_exit(weft__worker *w, void *result);
/* Called when the main task finishes: cancels every unfinished task, and those spawned
 * from now on, so that nothing new starts running. */
void weft__shutdown_begin(weft__worker *w);
/* Runs the loop until the main task is done and every task has finished. */
int weft__loop(weft__worker *w);
/* The current task if it is stackful and may block, else NULL. */
weft_task *weft__blocking_task(weft__worker *w);

static inline weft_waker weft__waker_of(weft_task *t)
{
    weft_waker wk = {t, WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed))};
    return wk;
}

/* ---- Tasks (task.c) ------------------------------------------------------------------ */

/* Finishing work shared by stackful and stackless tasks: defers, locals, result, DONE,
 * joiner wake-up. Runs on the task's stack (stackful) or the scheduler's (stackless). */
void weft__task_finish(weft__worker *w, weft_task *t, void *result);
/* Returns a finished record to the pool (after join, or at once when detached). */
void weft__task_reap(weft__worker *w, weft_task *t);
int weft__task_new(weft__worker *w, const weft_spawn_opts *opts, weft_task **out);
/* Waits for t to finish whatever the caller's deadline or cancel flag, then reaps it. For
 * owners that must not return before what they own is gone (weft_gen_close). */
void weft__join_uncancellable(weft__worker *w, weft_task *t);
/* Registers a cleanup handler on `t` (which need not be running, nor ever run: finishing
 * runs its handlers either way). Returns 0 or -ENOMEM. */
int weft__task_defer(weft_task *t, void (*fn)(void *), void *arg);
void weft__tasks_fini(weft__worker *w);

/* ---- Net (net.c) ---------------------------------------------------------------------- */

/* One write of what the fd takes now (> 0 bytes), parking while it is full. */
ssize_t weft__write_some(int fd, const void *buf, size_t len, int64_t deadline);

/* ---- Sync (sync.c) ---------------------------------------------------------------------- */

/* Waits for the wait group to reach zero, whatever the caller's cancel flag. */
void weft__waitgroup_wait_all(weft_waitgroup *wg);

/* ---- The blocking pool (pool.c) ----------------------------------------------------- */

void weft__pool_fini(weft__worker *w);
void weft__pool_stats(weft__worker *w, weft_stats *out);

/* ---- Overflow reports (overflow.c) ---------------------------------------------------- */

int weft__overflow_init(weft__worker *w);
void weft__overflow_fini(weft__worker *w);
/* Writes an overflow report for `t` to stderr and aborts. Async-signal-safe. */
_Noreturn void weft__overflow_report(const weft_task *t, const void *fault, const char *how);

/* ---- Clock --------------------------------------------------------------------------- */

int64_t weft__clock_ns(void);

#endif
