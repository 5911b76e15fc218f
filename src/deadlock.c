/* The global deadlock report. Each worker about to sleep with no deadline and nothing of its
 * own that could wake it (no ready task, no timer, no fd waiter) counts itself in the
 * runtime's `nstill`; the last one to do so sleeps only for the grace period. If, when that
 * sleep ends, every worker is still counted and no task of the runtime has run meanwhile (the
 * sum of the workers' published resume counts has not moved: a worker woken for nothing
 * changes nothing), the runtime has been asleep for the whole period. The verdict then walks
 * the task records: a deadlock if every live task is a stackful one parked, with no
 * deadline, on a kind of wait only another task can end, and nothing from outside the
 * runtime ever reached it (a wake from a thread outside it, a runtime handle held outside).
 * Since every worker sleeps, nothing moves under the walk, and the report can walk every
 * parked task's stack. A verdict is not repeated until some task has run again, so an idle
 * runtime sleeps without polling. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_env.h"
#include "probes.h"
#include "alien.h"
#include "deadlock.h"
#include "dump.h"
#include "io/io.h"
#include "log.h"
#include "runtime.h"
#include "scheduler.h"
#include "sync_internal.h"
#include "task.h"
#include "worker.h"

/* Resumes of the whole runtime: the caller's own count, and the others' as they published
 * them (each publishes before it sleeps, and once a tick). */
static uint64_t resumes(const weft__worker *self)
{
    const weft__runtime *rt = self->rt;
    uint64_t n = 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const weft__worker *x = &rt->workers[i];
        n += x == self
                 ? self->stats.nresumes
                 : atomic_load_explicit(&x->published[WEFT__PUB_nresumes], memory_order_relaxed);
    }
    return n;
}

void weft__deadlock_init(weft__runtime *rt)
{
    rt->deadlock_grace_ns = WEFT__DEADLOCK_GRACE_NS;
#ifdef WEFT_TESTING
    int64_t ns = weft__test_env("WEFT_TEST_DEADLOCK_GRACE_NS", 1);
    if (ns > 0)
        rt->deadlock_grace_ns = ns;
#endif
}

bool weft__deadlock_before(weft__worker *w, int64_t *timeout_ns)
{
    weft__runtime *rt = w->rt;
    if (rt->deadlock_policy == WEFT_DEADLOCK_OFF || w->tasks.shutting_down || w->sched.ready.len ||
        weft__io_nwaiters(w))
        return false;
    /* seq_cst, with the other workers' increments: the last one to count itself sees every
     * other's count. */
    unsigned n = atomic_fetch_add_explicit(&rt->nstill, 1, memory_order_seq_cst) + 1;
    w->deadlock.checker = false;
    if (n == rt->nworkers) {
        uint64_t ran = resumes(w);
        if (ran != atomic_load_explicit(&rt->checked_at, memory_order_relaxed)) {
            w->deadlock.checker = true;
            w->deadlock.resumes_seen = ran;
            w->deadlock.until = weft__clock_ns() + rt->deadlock_grace_ns;
            *timeout_ns = rt->deadlock_grace_ns;
        }
    }
    return true;
}

/* Whether the wait of a parked task is one only another task of the runtime can end. */
static bool inner_wait(int kind)
{
    switch (kind) {
    case WEFT__WAIT_CHAN_SEND:
    case WEFT__WAIT_CHAN_RECV:
    case WEFT__WAIT_SELECT:
    case WEFT__WAIT_MUTEX:
    case WEFT__WAIT_COND:
    case WEFT__WAIT_SEM:
    case WEFT__WAIT_WAITGROUP:
    case WEFT__WAIT_RWLOCK_RD:
    case WEFT__WAIT_RWLOCK_WR:
    case WEFT__WAIT_ONCE:
    case WEFT__WAIT_EVENT:
    case WEFT__WAIT_JOIN:
    case WEFT__WAIT_GEN_NEXT:
    case WEFT__WAIT_GEN_YIELD:
    /* A sleep with no end (the caller has checked the deadline): only a cancel ends it, and
     * with every task parked a cancel could only come from outside, which the verdict also
     * rules out. (Go: `select {}` in every goroutine is a deadlock.) */
    case WEFT__WAIT_SLEEP:
        return true;
    default: /* fd, I/O, future, pool job, message room, shards: outside or timed */
        return false;
    }
}

typedef struct verdict {
    const weft__runtime *rt;
    size_t nlive;
    bool outside; /* some task can be ended from outside, or is not parked */
} verdict;

static void judge(weft_task *t, void *arg)
{
    verdict *v = arg;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    if (WEFT__STATE(word) == WEFT__DONE)
        return;
    v->nlive++;
    int kind;
    const void *what;
    int64_t deadline, since;
    if ((t->flags & WEFT__T_STACKLESS) ||
        weft__task_wait_snapshot(t, &kind, &what, &deadline, &since) < 0 ||
        deadline != WEFT_FOREVER || !inner_wait(kind)) {
        v->outside = true;
        return;
    }
    /* A lock held from outside the runtime: by a plain thread (its stand-in has no worker)
     * or by a task of another runtime, either of which may let go of it at any time. (Every
     * worker of ours sleeps: the waiter, and so the lock and its holder's record, stay.) */
    if (kind == WEFT__WAIT_MUTEX || kind == WEFT__WAIT_RWLOCK_RD || kind == WEFT__WAIT_RWLOCK_WR ||
        kind == WEFT__WAIT_ONCE) {
        const weft_task *owner = weft__sync_owner(what); /* a once's: its running caller */
        const weft__worker *ow = owner ? __atomic_load_n(&owner->worker, __ATOMIC_RELAXED) : NULL;
        if (owner && (!ow || ow->rt != v->rt))
            v->outside = true;
    }
    /* Read holds have no owner: the rwlock notes whose they are. */
    if ((kind == WEFT__WAIT_RWLOCK_RD || kind == WEFT__WAIT_RWLOCK_WR) &&
        weft__sync_read_held_outside(what, v->rt))
        v->outside = true;
}

static WEFT_COLD void report(weft__worker *w, uint64_t ran)
{
    weft__runtime *rt = w->rt;
    /* Once per deadlock: a second checker that judged the same sleep says nothing. */
    uint64_t last = atomic_load_explicit(&rt->reported_at, memory_order_relaxed);
    if (last == ran ||
        !atomic_compare_exchange_strong_explicit(&rt->reported_at, &last, ran, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    weft__dumpbuf b = {0};
    weft__dumpbuf_printf(&b, "weft: all tasks are asleep: deadlock!\n"
                             "weft: every task waits on another task, and nothing outside the "
                             "runtime (fd, timer, signal, pool job, thread) can wake one.\n\n");
    size_t n = weft__dump_tasks(&b, rt, NULL, NULL, true, weft__clock_ns());
    WEFT_PROBE1(deadlock, n);
    weft__dumpbuf_printf(&b, "\nweft: %zu tasks on %u workers; %s\n", n, rt->nworkers,
                         rt->deadlock_policy == WEFT_DEADLOCK_EXIT
                             ? "exiting with status 2 (WEFT_DEADLOCK=report only reports)"
                             : "running on (WEFT_DEADLOCK=report)");
    weft__log(rt, WEFT_LOG_ERROR, b.p ? b.p : "", b.len);
    free(b.p);
    if (rt->deadlock_policy == WEFT_DEADLOCK_EXIT)
        _exit(2);
}

void weft__deadlock_after(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    if (w->deadlock.checker && weft__clock_ns() >= w->deadlock.until && !w->sched.ready.len &&
        atomic_load_explicit(&rt->nstill, memory_order_seq_cst) == rt->nworkers) {
        uint64_t ran = resumes(w);
        bool deadlock = false;
        if (ran == w->deadlock.resumes_seen &&
            !atomic_load_explicit(&rt->foreign, memory_order_relaxed) &&
            !weft__runtime_held_outside(rt)) {
            verdict v = {rt, 0, false};
            weft__task_each(rt, judge, &v);
            deadlock = v.nlive && !v.outside;
        }
        if (deadlock)
            report(w, ran);
        else if (ran == w->deadlock.resumes_seen)
            /* Not a deadlock, and nothing has run: no new verdict until something does. */
            atomic_store_explicit(&rt->checked_at, ran, memory_order_relaxed);
    }
    w->deadlock.checker = false;
    atomic_fetch_sub_explicit(&rt->nstill, 1, memory_order_seq_cst);
}
