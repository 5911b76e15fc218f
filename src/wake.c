/* Wakes: the transition a wake makes on a task's state word, the hand-over of a woken task
 * to its worker (its ready queue on the owning thread, its inbox from any other), and the
 * public waker. A wake never blocks and never allocates; from another thread it costs one
 * CAS on the word, one on the inbox, and a doorbell ring only if the worker sleeps. */
#include "probes.h"
#include "tracer.h"
#include "wake.h"
#include "wake_local.h"
#include "runtime.h"
#include "scheduler.h"
#include "thread_park.h"
#include "worker.h"

/* The runtime a thread that is no worker's belongs to (a pool thread's), or NULL. Thread
 * storage: each thread has its own, set once by the thread itself. */
static __thread weft__runtime *tls_home;

void weft__wake_thread_home(weft__runtime *rt)
{
    tls_home = rt;
}

/* A wake of one of w's tasks from a thread outside w's runtime: the deadlock report can no
 * longer rule out that such a thread wakes its tasks again. */
static WEFT_NOINLINE void mark_foreign(weft__worker *self, weft__worker *w)
{
    if (self ? self->rt != w->rt : tls_home != w->rt)
        atomic_store_explicit(&w->rt->foreign, 1, memory_order_relaxed);
}

static void push_remote(weft__worker *w, weft_task *t)
{
    /* seq_cst CAS: pairs with weft__inbox_sleep's store then load (see weft__inbox). */
    weft_task *head = atomic_load_explicit(&w->inbox.head, memory_order_relaxed);
    do {
        t->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&w->inbox.head, &head, t, memory_order_seq_cst,
                                                    memory_order_relaxed));
    weft__fence_sc();
    if (atomic_load_explicit(&w->inbox.sleeping, memory_order_seq_cst))
        weft__worker_ring(w);
}

/* The LIFO slot's and the depth-first order's push (declared in scheduler.h with the inline
 * push; defined here, in the module of the wakes that make most pushes, so that the modules
 * that push call down to it: scripts/layers.sh). Owner thread. */
void weft__ready_push_lifo_on(weft__sched *s, weft_task *t)
{
    if (s->depth_first) {
        weft__ready_push_depth_first(s, t);
        return;
    }
    if (s->nfront || s->lifo_streak >= WEFT__LIFO_MAX) {
        weft__fifo_push(&s->ready, t, offsetof(weft_task, next));
        return;
    }
    if (s->lifo && s->ready.head == s->lifo) { /* the previous one goes to the tail */
        weft__fifo_pop(&s->ready, offsetof(weft_task, next));
        weft__fifo_push(&s->ready, s->lifo, offsetof(weft_task, next));
    }
    weft__fifo_push_front(&s->ready, t, offsetof(weft_task, next));
    s->lifo = t;
}

/* The hand-over of a task this wake moved from PARKED to READY, in every case: a plain
 * thread's stand-in, a tracer, another worker's task (its inbox), a caller that did not say
 * which worker it is. */
WEFT_NOINLINE void weft__wake_enqueue_general(weft__worker *self, weft_task *t)
{
    weft__worker *w = t->worker;
    if (!self)
        self = weft__worker_tls(); /* maybe under a lock: no take-back */
    if (weft_unlikely(!w)) {       /* a plain thread's stand-in (thread_park.c) */
        if (self)                  /* a task talks to a thread outside its runtime */
            atomic_store_explicit(&self->rt->foreign, 1, memory_order_relaxed);
        weft__thread_unpark(t);
        return;
    }
    WEFT_PROBE2(wake, t, self != w);
    if (weft_unlikely(w->tracer != NULL))
        weft__trace_wake(w, t);
    if (weft_likely(self == w)) {
        weft__ready_push_lifo(&w->sched, t, false);
    } else {
        if (!self || self->rt != w->rt)
            mark_foreign(self, w);
        else
            WEFT_COUNT(self->stats.nwakes_remote++);
        push_remote(w, t);
    }
}

/* The wake, for every entry point: `self` is the calling thread's worker, or NULL to look it
 * up (only when the wake enqueues). Returns whether this wake moved t from PARKED to READY. */
WEFT_NOINLINE bool weft__wake_general(weft__worker *self, weft_task *t, uint64_t epoch)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    for (;;) {
        if (WEFT__EPOCH(word) != epoch)
            return false; /* a stale waker: that park is over */
        unsigned st = WEFT__STATE(word);
        uint64_t nw;
        if (st == WEFT__PARKED) {
            nw = WEFT__WORD(epoch, WEFT__READY);
            /* Sampled for the schedule-latency histogram: the time, before the CAS that
             * publishes the wake (the resume reads it; scheduler.c). */
            if (weft_unlikely(weft__sampled(epoch)))
                atomic_store_explicit(&t->woke_ns, weft__clock_ns(), memory_order_relaxed);
        } else if (st == WEFT__RUNNING)
            nw = WEFT__WORD(epoch, WEFT__NOTIFIED);
        else
            return false; /* already woken, queued, or finished */
        /* release: what the waker wrote before waking is visible to the woken task. */
        if (atomic_compare_exchange_weak_explicit(&t->word, &word, nw, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (st == WEFT__PARKED)
                weft__wake_enqueue_general(self, t);
            return st == WEFT__PARKED;
        }
    }
}

void weft__wake(weft_task *t, uint64_t epoch)
{
    (void)weft__wake_general(NULL, t, epoch);
}

void weft__wake_from(weft__worker *self, weft_task *t, uint64_t epoch)
{
    (void)weft__wake_local(self, t, epoch);
}

bool weft__inbox_drain(weft__worker *w)
{
    /* acquire: pairs with the pushers' CAS, so each task's READY state and whatever its
     * waker published are visible here. */
    if (!atomic_load_explicit(&w->inbox.head, memory_order_relaxed))
        return false;
    weft_task *t = atomic_exchange_explicit(&w->inbox.head, NULL, memory_order_acquire);
    /* The inbox is a stack (newest first): reverse it so wakes keep their order. */
    weft_task *fifo = NULL;
    while (t) {
        weft_task *n = t->next;
        t->next = fifo;
        fifo = t;
        t = n;
    }
    while (fifo) {
        weft_task *n = fifo->next; /* read first: the push rewrites the same link */
        weft__ready_push(&w->sched, fifo);
        fifo = n;
    }
    return true;
}

bool weft__inbox_sleep(weft__worker *w)
{
    /* seq_cst: pairs with push_remote (see weft__inbox). */
    atomic_store_explicit(&w->inbox.sleeping, 1, memory_order_seq_cst);
    weft__fence_sc();
    return atomic_load_explicit(&w->inbox.head, memory_order_seq_cst) != NULL;
}

void weft__inbox_awake(weft__worker *w)
{
    atomic_store_explicit(&w->inbox.sleeping, 0, memory_order_relaxed);
}

weft_waker weft_waker_current(void)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (!t)
        return (weft_waker){NULL, 0};
    return weft__waker_of(t);
}

void weft_waker_wake(weft_waker wk)
{
    if (wk.task)
        weft__wake(wk.task, wk.epoch);
}
