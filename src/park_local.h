/* The park's common path (scheduler.c's), inline for the waits that happen once per message:
 * a channel's blocked send or receive (chan.c), a connection's read waiting for its next
 * request (fdtable.c). Their callers' frames then hold the park as well, with no call between
 * them and the switch but the tail call to the scheduler. Owner thread (the running task's
 * worker), as every park. */
#ifndef WEFT_PARK_LOCAL_H
#define WEFT_PARK_LOCAL_H

#include <errno.h>

#include "probes.h"
#include "scheduler.h"
#include "tracer.h"
#include "util/spinlock.h"
#include "worker.h"

/* Leaves the current task `from` (already parked, ready or done) for the next ready task, or
 * for the loop; returns when `from` is resumed, with `from` (scheduler.c). */
weft_task *weft__schedule_away(weft__worker *w, weft_task *from);
/* The short park's other cases (a cancelled task, a tracer), through weft__park; and a plain
 * thread's (scheduler.c). */
int weft__park_forever_general(weft__worker *w, int kind, const void *what, void (*unlock)(void *),
                               void *lock);
int weft__thread_park_forever(int kind, const void *what, void (*unlock)(void *), void *lock);
/* The unlock callback that stands for a spinlock word: the park releases the word inline
 * instead of calling it (scheduler.c). */
void weft__park_spin_unlock(void *lock);

static inline __attribute__((always_inline)) void weft__record_wait(weft__worker *w, weft_task *t,
                                                                    const weft__wait *wr)
{
    /* The seqlock's writer side. The word already says RUNNING@e+1 (begin_run); each field
     * is stored with release, so a reader whose acquire load sees a new field also sees the
     * word move on, and retries (weft__task_wait_snapshot). Plain stores on x86; no fence,
     * which ThreadSanitizer could not follow. The PARKED CAS that follows publishes them. */
    atomic_store_explicit(&t->wait_kind, wr->kind, memory_order_release);
    atomic_store_explicit(&t->wait_what, wr->what, memory_order_release);
    atomic_store_explicit(&t->wait_deadline, wr->deadline, memory_order_release);
    atomic_store_explicit(&t->wait_since, w->now, memory_order_release);
}

/* Releases the caller's lock, if any: inline for a spinlock word. */
static inline __attribute__((always_inline)) void weft__park_unlock(const weft__wait *wr)
{
    if (wr->unlock == weft__park_spin_unlock)
        weft__spin_unlock(wr->lock);
    else if (wr->unlock)
        wr->unlock(wr->lock);
}

/* Marks t PARKED, releases the caller's lock, and switches away; or, if a wake for this run
 * came first (NOTIFIED), consumes it and returns at once. Returns t (see switch_to). */
static inline __attribute__((always_inline)) weft_task *
weft__park_current(weft__worker *w, weft_task *t, const weft__wait *wr, bool untraced)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    uint64_t e = WEFT__EPOCH(word);
    WEFT_COUNT(w->stats.nparks++);
    WEFT_PROBE2(park, t, wr->kind);
    /* `untraced`: the caller checked that no tracer is set, so that this path makes no call
     * before the switch's (nothing to keep in a register across one). */
    if (!untraced && weft_unlikely(w->tracer != NULL))
        weft__trace_park(w, t, weft__wait_kind_name(wr->kind));
    if (WEFT__STATE(word) == WEFT__RUNNING &&
        atomic_compare_exchange_strong_explicit(&t->word, &word, WEFT__WORD(e, WEFT__PARKED),
                                                memory_order_acq_rel, memory_order_acquire)) {
        weft__park_unlock(wr); /* only now: a waker under the lock finds us PARKED */
        return weft__schedule_away(w, t);
    }
    weft__park_unlock(wr);
    atomic_store_explicit(&t->word, WEFT__WORD(e + 1, WEFT__RUNNING), memory_order_relaxed);
    return t;
}

/* The short park itself, for a caller that has checked what weft__park_forever_local checks
 * first: `w` is a worker, `t` its current task, not cancelled, and no tracer is set. Returns
 * t once resumed, as the switch gave it back; the caller reads the cancellation itself
 * (weft__task_cancelled), where and if it needs it (chan.c's block_on: not when a completer
 * woke it). */
static inline __attribute__((always_inline)) weft_task *
weft__park_forever_short(weft__worker *w, weft_task *t, int kind, const void *what,
                         void (*unlock)(void *), void *lock)
{
    /* A constant record: the inlined weft__record_wait and weft__park_current fold its
     * fields. */
    const weft__wait wr = {
        .kind = kind, .what = what, .deadline = WEFT_FOREVER, .unlock = unlock, .lock = lock};
    weft__record_wait(w, t, &wr);
    t = weft__park_current(w, t, &wr, true);
    /* Resumed: t as the switch gave it back, and nothing derived from it before (the empty
     * asm makes it opaque), so that no register of this frame lives across the switch. */
    __asm__ volatile("" : "+r"(t));
    atomic_store_explicit(&t->wait_kind, WEFT__WAIT_NONE, memory_order_relaxed);
    return t;
}

/* weft__park_forever and its _unlock and _spin forms (scheduler.h), inline: `unlock` is NULL,
 * the caller's callback, or weft__park_spin_unlock with a spinlock word as `lock`. */
static inline __attribute__((always_inline)) int weft__park_forever_local(weft__worker *w, int kind,
                                                                          const void *what,
                                                                          void (*unlock)(void *),
                                                                          void *lock)
{
    if (weft_unlikely(!w))
        return weft__thread_park_forever(kind, what, unlock, lock);
    weft_task *t = w->current;
    /* A cancelled task, and a tracer's calls, take the general park (the same outcome). */
    if (weft_unlikely(weft__task_cancelled(t) || w->tracer != NULL))
        return weft__park_forever_general(w, kind, what, unlock, lock);
    t = weft__park_forever_short(w, t, kind, what, unlock, lock);
    return weft__task_cancelled(t) ? -ECANCELED : 0;
}

#endif
