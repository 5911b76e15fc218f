/* Wakes (wake.c): the public waker, the state-word transition a wake makes, and the inbox
 * through which other threads hand woken tasks to their worker, ringing its doorbell only
 * when it sleeps. */
#ifndef WEFT_WAKE_H
#define WEFT_WAKE_H

#include "internal.h"
#include "task.h"

/* The inbox of a worker: a Treiber stack of tasks woken from other threads. */
typedef struct weft__inbox {
    /* any thread: pushers CAS with seq_cst (publishing the task's READY state); the worker
     * takes the whole stack with an acquire exchange. */
    _Atomic(weft_task *) head;
    /* any thread: 1 while the worker is (about to be) blocked in the reactor. seq_cst on
     * both sides (the worker stores it then loads head; a pusher CASes head then loads it)
     * so that either the worker sees the pushed task or the pusher sees it and rings. */
    _Atomic int sleeping;
} weft__inbox;

/* The calling thread, which is no worker's, belongs to rt (a blocking-pool thread): its wakes
 * of rt's tasks do not count as coming from outside the runtime (deadlock.c). */
void weft__wake_thread_home(weft__runtime *rt);

/* Wakes park `epoch` of `t` (any thread). */
void weft__wake(weft_task *t, uint64_t epoch);
/* The same, from a caller that knows its own thread's worker `self` (no TLS lookup). */
void weft__wake_from(weft__worker *self, weft_task *t, uint64_t epoch);
/* Moves every task of w's inbox to its ready queue, oldest wake first; returns whether there
 * was any. Owner thread. */
bool weft__inbox_drain(weft__worker *w);
/* Marks w asleep; returns true if a wake already arrived, and the worker must not block.
 * Owner thread. */
bool weft__inbox_sleep(weft__worker *w);
void weft__inbox_awake(weft__worker *w);

static inline weft_waker weft__waker_of(weft_task *t)
{
    weft_waker wk = {t, WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed))};
    return wk;
}

#endif
