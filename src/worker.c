/* The worker's ground floor: which worker runs on this thread, its clock, its allocation
 * seam and node pool, its random numbers and its doorbell. Nothing here calls another
 * module of weft: every other module may call this one. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "worker.h"

/* The only thread-local: which worker runs on this thread. Reached through the non-inlined
 * accessors below so that no TLS address outlives a switch in a register. Written by its own
 * thread, and by the stall detector's thread while this one sleeps in a system call of its
 * task's (handoff.c, weft__handoff_seize): a CAS from the worker to WEFT__WORKER_SEIZED, and
 * back if the hand-off is cancelled before this thread saw it. Atomic accesses, relaxed on
 * the path every weft call takes. */
static __thread weft__worker *tls_worker;
/* Set on a thread that let go of its worker while its task ran (the involuntary hand-off,
 * handoff.c): the function that takes it back. Handed in by that module, so that this one
 * calls nothing above it. */
static __thread weft__worker *(*tls_reclaim)(void);
/* The take-back of a worker seized while this thread slept (tls_worker SEIZED), set by the
 * thread itself when it publishes its slots (weft__worker_tls_slots), never changed after. */
static __thread weft__worker *(*tls_seized)(void);

WEFT_NOINLINE void weft__worker_set_reclaim(weft__worker *(*reclaim)(void))
{
    __atomic_store_n(&tls_reclaim, reclaim, __ATOMIC_RELAXED);
}

/* The take-back, apart: only a thread without a worker, or whose worker was seized, gets
 * here. acquire: what the seizing thread wrote before its CAS (the take-back record). */
static WEFT_NOINLINE WEFT_COLD weft__worker *worker_reclaim(void)
{
    weft__worker *w = __atomic_load_n(&tls_worker, __ATOMIC_ACQUIRE);
    if (w == WEFT__WORKER_SEIZED)
        return tls_seized();
    if (w)
        return w;
    weft__worker *(*reclaim)(void) = __atomic_load_n(&tls_reclaim, __ATOMIC_RELAXED);
    return reclaim ? reclaim() : NULL;
}

WEFT_NOINLINE weft__worker *weft__worker_current(void)
{
    weft__worker *w = __atomic_load_n(&tls_worker, __ATOMIC_RELAXED);
    /* An empty asm that "changes" w keeps the compiler from folding calls across a switch. */
    __asm__ volatile("" : "+r"(w));
    /* Every weft call starts here, so a thread whose worker the stall detector handed to
     * another thread while its task ran (handoff.c) takes the worker back here, before the
     * call touches anything of it. Plain threads pay a TLS load; worker threads nothing.
     * One compare for NULL and SEIZED (1) both. */
    if (weft_unlikely((uintptr_t)w <= (uintptr_t)WEFT__WORKER_SEIZED))
        w = worker_reclaim();
    return w;
}

WEFT_NOINLINE weft__worker *weft__worker_tls(void)
{
    weft__worker *w = __atomic_load_n(&tls_worker, __ATOMIC_RELAXED);
    __asm__ volatile("" : "+r"(w));
    return (uintptr_t)w <= (uintptr_t)WEFT__WORKER_SEIZED ? NULL : w;
}

WEFT_NOINLINE void weft__worker_set_current(weft__worker *w)
{
    __atomic_store_n(&tls_worker, w, __ATOMIC_RELAXED);
}

WEFT_NOINLINE void weft__worker_tls_slots(weft__worker *(*seized)(void), weft__worker ***worker)
{
    tls_seized = seized;
    *worker = &tls_worker;
}

/* fork(): the child's only thread is the one that forked, and its runtime (epoll instance,
 * ring, eventfd) is shared with the parent. Forgetting the worker there makes every weft call
 * in the child behave as outside a runtime (-EPERM), so the child can never wait on or reap
 * the parent's events: the parent stays immune whatever the child does. No cost on any path:
 * the hook runs only in a child. */
static _Atomic unsigned fork_generation; /* worker.h; written only in a child, before it runs on */

static void forget_in_child(void)
{
    tls_worker = NULL;
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

unsigned weft__fork_generation(void)
{
    /* Relaxed: a child's only thread wrote it, before any of the child's code ran. */
    return atomic_load_explicit(&fork_generation, memory_order_relaxed);
}

static void register_fork_hook(void)
{
    pthread_atfork(NULL, NULL, forget_in_child);
}

WEFT_COLD void weft__worker_fork_hook(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_hook);
}

void weft__worker_ring(weft__worker *w)
{
    if (w->doorbell.ring)
        w->doorbell.ring(w->doorbell.arg);
}

void weft__realtime_after_ms(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

int64_t weft__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

int64_t weft_now(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->now : weft__clock_ns();
}

int64_t weft_deadline_in(int64_t ns)
{
    if (ns <= 0) {
        /* Passed already, for every look (a look compares with the tick's clock): 0 is "do
         * not wait", as it always was, and must not become "wait for the next tick". */
        int64_t now = weft_now();
        return ns == 0 ? now : now > 0 ? now - 1 : 0;
    }
    /* From the clock itself, not the tick's cached weft_now(), as weft_sleep: a task that
     * spent longer than ns in work of its own since the tick began (a computation, a plain
     * blocking call) got a deadline already passed, and its next call timed out at once.
     * One vDSO read per deadline. */
    int64_t now = weft__clock_ns();
    if (ns > INT64_MAX - now)
        return INT64_MAX;
    return now + ns;
}

uint64_t weft__worker_random(weft__worker *w)
{
    /* xorshift64*, per worker: fair choices need no global state. */
    uint64_t x = w->rng ? w->rng : (uint64_t)w->now | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* w may be NULL (a plain thread using a channel or a lock): nothing is counted then. */
void *weft__malloc(weft__worker *w, size_t size)
{
    if (w)
        w->stats.nmallocs++;
    return malloc(size);
}

void *weft__calloc(weft__worker *w, size_t n, size_t size)
{
    if (w)
        w->stats.nmallocs++;
    return calloc(n, size);
}

void *weft__realloc(weft__worker *w, void *p, size_t size)
{
    w->stats.nmallocs++;
    return realloc(p, size);
}

void weft__free(weft__worker *w, void *p)
{
    (void)w;
    free(p);
}

weft__node *weft__node_get(weft__worker *w)
{
    if (!w)
        return weft__malloc(NULL, sizeof(weft__node)); /* a plain thread: no pool */
    weft__node *n = w->free_nodes;
    if (n) {
        w->free_nodes = n->next;
        return n;
    }
    return weft__malloc(w, sizeof *n);
}

void weft__node_put(weft__worker *w, weft__node *n)
{
    if (!w) {
        weft__free(NULL, n);
        return;
    }
    n->next = w->free_nodes;
    w->free_nodes = n;
}

WEFT_COLD void weft__nodes_fini(weft__worker *w)
{
    while (w->free_nodes) {
        weft__node *n = w->free_nodes;
        w->free_nodes = n->next;
        weft__free(w, n);
    }
}
