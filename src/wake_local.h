/* The commonest wake, inline for the paths that make one per message (a channel's hand-off,
 * a readiness edge): a parked task of the caller's own worker, not sampled, no tracer. One
 * CAS on the task's word and a push on the ready queue's LIFO end, with no call. Everything
 * else (another worker's task, a plain thread's stand-in, a tracer, a sampled park, a CAS that
 * lost a race) takes wake.c's general paths, which decide it all again from the word. */
#ifndef WEFT_WAKE_LOCAL_H
#define WEFT_WAKE_LOCAL_H

#include "probes.h"
#include "scheduler.h"
#include "wake.h"
#include "worker.h"

/* The hand-over of a task a wake moved from PARKED to READY, in every case (wake.c). */
void weft__wake_enqueue_general(weft__worker *self, weft_task *t);
/* The wake, for every entry point: returns whether this wake moved t from PARKED to READY
 * (wake.c). */
bool weft__wake_general(weft__worker *self, weft_task *t, uint64_t epoch);

/* Wakes park `epoch` of t, as weft__wake_from (wake.h): `self` is the calling thread's
 * worker, or NULL (looked up if the wake enqueues). Returns whether this wake is the one that
 * moved t from PARKED to READY: false if the park was over or t already woken (a stale waker,
 * a deadline, another waker got there first). A channel's completer learns from it whether
 * its waiter is still asleep (chan.c). */
static inline __attribute__((always_inline)) bool weft__wake_local(weft__worker *self, weft_task *t,
                                                                   uint64_t epoch)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    if (weft_likely(
            word == WEFT__WORD(epoch, WEFT__PARKED) && !weft__sampled(epoch) &&
            atomic_compare_exchange_strong_explicit(&t->word, &word, WEFT__WORD(epoch, WEFT__READY),
                                                    memory_order_acq_rel, memory_order_relaxed))) {
        /* release (the CAS): what the waker wrote before waking is visible to the woken
         * task. From here the wake is done; only the hand-over is left. */
        weft__worker *w = t->worker;
        if (weft_likely(self && self == w && w->tracer == NULL)) {
            WEFT_PROBE2(wake, t, 0);
            weft__ready_push_lifo(&w->sched, t, false);
        } else {
            weft__wake_enqueue_general(self, t);
        }
        return true;
    }
    return weft__wake_general(self, t, epoch);
}

#endif
