/* The worker (worker.c): one thread's share of a runtime, composed of the parts each module
 * declares in its own header (scheduler, inbox, timers, stacks, task records, I/O), plus
 * what every module needs from the thread it runs on: the TLS accessor, the clock, the
 * allocation seam, the doorbell that wakes the thread, the counters. Everything here is
 * touched by the worker's own thread only, except what is marked "any thread". */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include <pthread.h>
#include <signal.h>

#include "internal.h"
#include "overflow.h"
#include "scheduler.h"
#include "stack.h"
#include "task.h"
#include "timer.h"
#include "wake.h"
#include "sys.h"
#include "smp.h"
#include "steal.h"
#include "watchdog.h"
#include "relief.h"

/* Wakes the worker out of a blocking poll. Installed by the I/O layer at init (the only call
 * from the bottom of the core up into the reactor goes through it). any thread may ring;
 * ring must be async-signal-safe. */
typedef struct weft__doorbell {
    void (*ring)(void *arg);
    void *arg;
} weft__doorbell;

/* The counters a worker publishes for weft_stats_read, once: the weft_stats field each sums
 * into, and where the worker keeps it. worker.h reads them, runtime.c sums them by name. */
#define WEFT__COUNTERS(X)                                                                          \
    X(nspawned, w->stats.nspawned)                                                                 \
    X(nswitches, w->stats.nswitches)                                                               \
    X(nresumes, w->stats.nresumes)                                                                 \
    X(nticks, w->stats.nticks)                                                                     \
    X(npolls, w->stats.npolls)                                                                     \
    X(nmallocs, w->stats.nmallocs)                                                                 \
    X(nmmaps, w->stats.nmmaps)                                                                     \
    X(ntasks, w->tasks.nrecords)                                                                   \
    X(nstacks_pooled, w->stacks.npooled)                                                           \
    X(nstacks_live, weft__stack_nlive(&w->stacks))                                                 \
    X(nguarded_live, w->stacks.nguarded)                                                           \
    X(ntimers, w->timers.n)                                                                        \
    X(nsyscalls, weft__sys_total(&w->sys))                                                         \
    X(nparks, w->stats.nparks)                                                                     \
    X(nwakes_remote, w->stats.nwakes_remote)                                                       \
    X(nmsgs, w->stats.nmsgs)                                                                       \
    X(nsteals, w->stats.nsteals)                                                                   \
    X(nevents, w->stats.nevents)                                                                   \
    X(nready, w->sched.ready.len)                                                                  \
    X(busy_ns, weft__worker_busy_ns(w))                                                            \
    X(nfinished, w->stats.nfinished)                                                               \
    X(nunfinished, w->tasks.nlive)                                                                 \
    X(stack_bytes_live, weft__stack_bytes_live(&w->stacks))                                        \
    X(stack_bytes_pooled, w->stacks.bytes_pooled)                                                  \
    X(nhandoffs, w->stats.nhandoffs)

#define WEFT__COUNT_ONE(field, expr) +1
#define WEFT__NPUB                   (0 WEFT__COUNTERS(WEFT__COUNT_ONE))
/* Each counter's index in `published`: WEFT__PUB_nresumes, ... */
#define WEFT__PUB_INDEX(field, expr) WEFT__PUB_##field,
enum { WEFT__COUNTERS(WEFT__PUB_INDEX) };

/* A histogram of durations: bucket k counts samples in [2^k, 2^(k+1)) ns (0 in bucket 0), the
 * last one everything above. Written by its worker, read by any thread (relaxed). */
typedef struct weft__hist {
    _Atomic uint64_t buckets[WEFT_HIST_BUCKETS];
    _Atomic uint64_t sum_ns;
} weft__hist;

struct weft__worker {
    weft__runtime *rt;  /* the runtime this worker belongs to; fixed */
    unsigned index;     /* its place in rt->workers; fixed */
    weft_task *current; /* running task, NULL on the loop's context; owner: worker */
    int64_t now;        /* clock cached at the start of the tick; owner: worker */
    /* The program's tracer (weft_config.tracer) or NULL, and the mask of a resume's epoch
     * whose zero sends the resume down the slow path (scheduler.c's begin_run): 255 (one in
     * 256, the histograms' samples), or 0 with a tracer or `fence_resumes` (every resume:
     * fence.h's fallback, a full fence each). Fixed before the worker runs; any thread reads
     * `tracer` (a waker). */
    const weft_tracer *tracer;
    uint64_t run_mask;
    bool fence_resumes;
    /* How many acquisitions in a row make this worker a channel lock's owner (bias_lock.h):
     * 1,024, or 0 (never) without membarrier or under ThreadSanitizer. Fixed before the
     * worker runs; read by its own thread. */
    uint32_t bias_after;
    /* The main task finished on this worker (task_finish.h): its loop then starts the
     * runtime's shutdown (loop.c's stop_seen). owner: the worker. */
    bool main_ended;
    /* Watches whose task has finished, held by their handles alone (watch.c): freed by
     * weft_watch_del, or at the worker's end (weft__watches_fini). owner: the worker. */
    struct weft_watch *watches_held;
    /* The generator and group closes, and the group waits with no deadline, waiting on this
     * worker (close_wait.h), newest first: records on the callers' stacks, walked to refuse a
     * close or wait that would complete a circle. owner: the worker. */
    struct weft__close_wait *closes;
    /* Worker 0's: a dump was asked for by the dump signal's handler (dumpsig.c), which sets
     * it and rings the doorbell; the worker takes it at its next tick. */
    _Atomic int dump_asked;
    /* The runtime's leak-report table (leaks.c), or NULL while the report is off; fixed. */
    struct weft__leaks *leaks;

    weft__sched sched;       /* sched.h */
    weft__inbox inbox;       /* wake.h; any thread pushes */
    weft__timer_heap timers; /* timer.h */
    weft__stack_pool stacks; /* stack.h */
    weft__task_cache tasks;  /* task.h */
    weft__io *io;            /* io/reactor.c */
    weft__altstack altstack; /* overflow.h */
    weft__doorbell doorbell; /* any thread rings */
    weft__sys sys;           /* sys.h: system-call counters (and the test fault plan) */
#ifdef WEFT_TESTING
    /* WEFT_TEST_SELECT_PAUSE_NS: a channel select of more than 8 cases sleeps this long
     * between its look at the cases and its completion of the one it chose, its locks held
     * (chan.c), so that a test can make another select's claim land in between; smaller
     * selects (the one being claimed) do not pause. Fixed at start. */
    int64_t select_pause_ns;
#endif
    weft__smp smp;       /* smp.h: messages from other workers; any worker posts */
    weft__steal steal;   /* steal.h: stealing mode's requests and advertisements */
    weft__relief relief; /* relief.h: the hand-off to another thread; under a lock */
    /* The signals weft_signal_wait has blocked for this worker's tasks (signal.c), so that a
     * thread taking the worker over, or lending it to run fn, blocks them too
     * (weft__worker_block_waited_signals). owner: worker. */
    sigset_t sigwaited;
    bool has_sigwaited;

    /* The deadlock report's part (deadlock.c): whether this worker is checking (its sleep
     * ends at `until`; `resumes_seen` is the runtime's resume count when it began). owner:
     * worker. */
    struct {
        bool checker;
        int64_t until;
        uint64_t resumes_seen;
    } deadlock;

    weft__watch watch; /* watchdog.h: what the stall detector samples */

    weft__node *free_nodes; /* pooled defer/local nodes; owner: worker */
    uint64_t rng;           /* xorshift state for fair choices (select) */
    /* Busy time: when the loop started, and the time it has slept in its reactor since (the
     * wait of each poll that may block). owner: worker. */
    int64_t started_ns;
    int64_t asleep_ns;
    /* Histograms (metrics.c): schedule latency (wake to run) and poll time (one resume),
     * each sampled one in 256. The resume being timed and when it began. owner: worker. */
    weft__hist sched_hist, poll_hist;
    const weft_task *poll_task;
    int64_t poll_start;
    weft_stats stats; /* this worker's counters; owner: worker (runtime sums them) */
    /* The counters as of this worker's last tick, for weft_stats_read on another worker:
     * stored by the worker each tick, loaded by readers (relaxed both: each is a figure on
     * its own). In WEFT__COUNTERS' order. */
    _Atomic uint64_t published[WEFT__NPUB];
};

/* Between two resumes (the pick): fires the timers that came due while the last task ran,
 * so that a woken sleeper waits for one resume rather than for the tick to end (up to
 * `budget` resumes: 300 us at 100 busy tcp_echo connections, measured by
 * examples/latency_probe.c). The clock is read only while a timer is armed, and then:
 * - when a system call was made since the last read (that resume took a while);
 * - else every `poll_every` picks, which the read adapts (timer.c) so that reads come about
 *   every WEFT__TIMER_POLL_NS of resumes: never for short resumes (a yield, a channel
 *   hand-off: 64 of them fit, and the tick's own read comes first), every few picks where
 *   resumes make no system call but take microseconds (tasks that compute). An io_uring
 *   server's enters run its sends, and a timer due inside one waits for its end: the
 *   backend paces its submissions to the nearest deadline for that (io/uring_pace.h). */
/* The pick's test (the scheduler's fast path takes it alone): true, and the pick counted,
 * if no clock read is due; false, nothing counted, if one is. */
static inline bool weft__timers_poll_skips(weft__worker *w)
{
    weft__timer_heap *h = &w->timers;
    if (!h->n)
        return true;
    if (h->polled_at != w->sys.ntotal || h->npicks + 1 >= h->poll_every)
        return false;
    h->npicks++;
    return true;
}

static inline void weft__timers_poll(weft__worker *w)
{
    if (weft__timers_poll_skips(w))
        return;
    /* A read the count brought (no system call since the last) counts this pick too: the
     * adaptation divides by the picks since the last read (timer.c). */
    if (w->timers.polled_at == w->sys.ntotal)
        w->timers.npicks++;
    weft__timers_poll_clock(w);
}

/* Adds a sample of `ns` to h. Owner thread (relaxed stores: one writer). */
static inline void weft__hist_add(weft__hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    unsigned k = ns ? 63u - (unsigned)__builtin_clzll((uint64_t)ns) : 0;
    if (k >= WEFT_HIST_BUCKETS)
        k = WEFT_HIST_BUCKETS - 1;
    atomic_store_explicit(&h->buckets[k],
                          atomic_load_explicit(&h->buckets[k], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns,
                          atomic_load_explicit(&h->sum_ns, memory_order_relaxed) + (uint64_t)ns,
                          memory_order_relaxed);
}

/* Time w has spent out of its reactor's sleep since its loop started. Owner thread. */
static inline uint64_t weft__worker_busy_ns(const weft__worker *w)
{
    int64_t busy = w->started_ns ? w->now - w->started_ns - w->asleep_ns : 0;
    return busy > 0 ? (uint64_t)busy : 0;
}

/* w's counters in WEFT__COUNTERS' order, for weft_stats_read and the copy each tick
 * publishes. Owner thread. */
static inline void weft__worker_counters(const weft__worker *w, uint64_t out[WEFT__NPUB])
{
    int k = 0;
#define WEFT__READ_ONE(field, expr) out[k++] = (expr);
    WEFT__COUNTERS(WEFT__READ_ONE)
#undef WEFT__READ_ONE
}

/* Blocks on the calling thread the signals w's tasks wait for (weft_signal_wait): a thread
 * that takes w over, or runs fn for one of its tasks (in_place.c), must not let them take
 * their default action. Nothing to do, and no system call, while none is waited for. */
static inline void weft__worker_block_waited_signals(const weft__worker *w)
{
    if (w->has_sigwaited)
        pthread_sigmask(SIG_BLOCK, &w->sigwaited, NULL);
}

/* Blocks `set` on the calling thread (w's) from now on, and remembers it for w, so that a
 * signal of it that arrives before (or between) waits stays pending for the next wait instead
 * of taking its default action. Returns 0 or -errno. */
static inline int weft__worker_wait_signals(weft__worker *w, const sigset_t *set)
{
    int r = pthread_sigmask(SIG_BLOCK, set, NULL);
    if (r != 0)
        return -r;
    /* Remembered for the worker: a thread that drives it later blocks them too (relief.c). */
    sigorset(&w->sigwaited, &w->sigwaited, set);
    w->has_sigwaited = true;
    return 0;
}

/* Whether w runs the scheduling debug mode (WEFT_CHAOS). */
static inline bool weft__worker_chaos(const weft__worker *w)
{
    return w->sched.chaos != 0;
}

/* The task running on w, NULL on the loop's context. */
static inline weft_task *weft__worker_task(const weft__worker *w)
{
    return w->current;
}

/* The worker running on this thread, or NULL. Not inlined on purpose: a coroutine may one
 * day resume on another thread, and a TLS address kept in a register would then be stale. */
weft__worker *weft__worker_current(void);
/* The same without the take-back of a worker handed over (handoff.c): for signal handlers,
 * and for lookups that may run under a lock (a wake's), where waiting for the worker could
 * deadlock; a thread that let go of its worker is no worker's there. */
weft__worker *weft__worker_tls(void);
/* Sets (or clears, NULL) the calling thread's way to take back a worker it let go of while
 * its task ran (handoff.c), which weft__worker_current calls on a thread that has no worker. */
void weft__worker_set_reclaim(weft__worker *(*reclaim)(void));
void weft__worker_set_current(weft__worker *w);
/* The calling thread's worker slot, for the stall detector's hand-off of a thread asleep in
 * a system call (handoff.c), which CASes it from its own thread to WEFT__WORKER_SEIZED; and
 * the function that takes a seized worker back, which weft__worker_current then calls. */
#define WEFT__WORKER_SEIZED ((weft__worker *)1)
void weft__worker_tls_slots(weft__worker *(*seized)(void), weft__worker ***worker);
/* Makes the child of a fork() see no worker on its thread (once per process; weft_run). */
void weft__worker_fork_hook(void);
/* How many fork()s the process is removed from the one where the hook was set: 0 there, one
 * more in each child. A record that keeps the value of its making (alien.c's handles) tells
 * by it that the runtime it names runs in another process. Any thread. */
unsigned weft__fork_generation(void);
/* Rings w's doorbell. Any thread. */
void weft__worker_ring(weft__worker *w);

/* The monotonic clock, uncached. */
int64_t weft__clock_ns(void);
/* *ts = CLOCK_REALTIME now + ms, for pthread_cond_timedwait (the idle timeouts of the pool's
 * and the relief threads). */
void weft__realtime_after_ms(struct timespec *ts, unsigned ms);
/* A pseudo-random 64-bit value from w's generator. */
uint64_t weft__worker_random(weft__worker *w);

/* Allocation seam: counts every allocation, and is where fault injection hooks in. */
void *weft__malloc(weft__worker *w, size_t size);
void *weft__calloc(weft__worker *w, size_t n, size_t size);
void *weft__realloc(weft__worker *w, void *p, size_t size);
void weft__free(weft__worker *w, void *p);
weft__node *weft__node_get(weft__worker *w);
void weft__node_put(weft__worker *w, weft__node *n);
void weft__nodes_fini(weft__worker *w);

#endif
