/* Messages between workers: one single-producer, single-consumer ring per ordered pair, a
 * spill list behind it when it is full, and the shutdown's detection of quiescence. The
 * receiver learns of new messages from one `pending` word rather than by scanning its N - 1
 * rings every tick; it scans them only when the word is set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "wake.h"
#include "worker.h"

static _Atomic(weft__smp_ring *) *pair_slot(weft__runtime *rt, unsigned from, unsigned to)
{
    return &rt->rings[(size_t)from * rt->nworkers + to];
}

WEFT_COLD int weft__smp_init(weft__runtime *rt)
{
    size_t n = (size_t)rt->nworkers * rt->nworkers;
    rt->rings = calloc(n, sizeof *rt->rings);
    return rt->rings ? 0 : -ENOMEM;
}

WEFT_COLD void weft__smp_fini(weft__runtime *rt)
{
    if (!rt->rings)
        return;
    size_t n = (size_t)rt->nworkers * rt->nworkers;
    for (size_t i = 0; i < n; i++) {
        weft__smp_ring *r = atomic_load_explicit(&rt->rings[i], memory_order_acquire);
        if (!r)
            continue;
        /* Quiescence left nothing in flight; a runtime that failed to start may have. */
        weft__smp_spill *s = atomic_load_explicit(&r->spill, memory_order_acquire);
        while (s) {
            weft__smp_spill *next = s->next;
            free(s);
            s = next;
        }
        free(r);
    }
    for (weft__smp_spill *s = atomic_load_explicit(&rt->inject, memory_order_acquire); s;) {
        weft__smp_spill *next = s->next;
        free(s);
        s = next;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__smp_spill *s =
            atomic_load_explicit(&rt->workers[i].smp.foreign, memory_order_acquire);
        while (s) {
            weft__smp_spill *next = s->next;
            free(s);
            s = next;
        }
    }
    free(rt->rings);
    rt->rings = NULL;
}

/* Tells `to` that a message waits, and rings it if it sleeps. The tail store (or the spill
 * CAS) before this, the loads here, and the receiver's clear-then-scan and
 * sleep-then-check are all seq_cst: either the receiver's scan sees the message, or its
 * check before sleeping sees `pending` set, or this load sees it sleeping and rings. */
static void notify(weft__worker *to)
{
    weft__fence_sc(); /* the tail store (or spill CAS) before the loads */
    if (!atomic_load_explicit(&to->smp.pending, memory_order_seq_cst)) {
        atomic_store_explicit(&to->smp.pending, 1, memory_order_seq_cst);
        weft__fence_sc();
    }
    if (atomic_load_explicit(&to->inbox.sleeping, memory_order_seq_cst))
        weft__worker_ring(to);
}

/* Pushes a copy of m onto a list of messages (newest first), allocated through `from`'s seam
 * (NULL: a thread outside the runtime). seq_cst CAS: the push is the store of a Dekker pair
 * whose other side loads the list after storing its own word (a ring's tail, see notify; a
 * worker's `sleeping`, for the injection queue). Returns 0 or -ENOMEM. */
static int push_msg(weft__worker *from, _Atomic(weft__smp_spill *) *list, const weft__msg *m)
{
    weft__smp_spill *n = weft__malloc(from, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->m = *m;
    weft__smp_spill *head = atomic_load_explicit(list, memory_order_relaxed);
    do {
        n->next = head;
    } while (!atomic_compare_exchange_weak_explicit(list, &head, n, memory_order_seq_cst,
                                                    memory_order_relaxed));
    return 0;
}

static int spill(weft__worker *from, weft__smp_ring *r, const weft__msg *m)
{
    int e = push_msg(from, &r->spill, m);
    if (e == 0)
        r->spilling = true;
    return e;
}

int weft__smp_post_foreign(weft__worker *to, const weft__msg *m)
{
    int e = push_msg(NULL, &to->smp.foreign, m);
    if (e == 0)
        notify(to);
    return e;
}

int weft__smp_inject(weft__runtime *rt, const weft__msg *m)
{
    /* A Dekker pair with a worker's sleep (its `sleeping` store, then its look at the queue
     * in weft__smp_inject_pending): it sees the node, or this sees it asleep and rings. */
    int e = push_msg(NULL, &rt->inject, m);
    if (e < 0)
        return e;
    weft__fence_sc();
    unsigned k = atomic_fetch_add_explicit(&rt->inject_next, 1, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *x = &rt->workers[(k + i) % rt->nworkers];
        if (atomic_load_explicit(&x->inbox.sleeping, memory_order_seq_cst)) {
            weft__worker_ring(x); /* one is enough: it takes the whole queue */
            break;
        }
    }
    return 0;
}

bool weft__smp_inject_pending(const weft__runtime *rt)
{
    return atomic_load_explicit(&rt->inject, memory_order_seq_cst) != NULL;
}

/* The pair's ring, allocated at its first message. */
static weft__smp_ring *pair_ring(weft__worker *from, weft__worker *to)
{
    _Atomic(weft__smp_ring *) *slot = pair_slot(from->rt, from->index, to->index);
    /* Only this sender stores the pair's pointer: a relaxed load of its own store. */
    weft__smp_ring *r = atomic_load_explicit(slot, memory_order_relaxed);
    if (weft_likely(r != NULL))
        return r;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof *r) != 0)
        return NULL;
    from->stats.nmallocs++;
    r = memset(mem, 0, sizeof *r);
    atomic_flag_clear(&r->room_lock);
    /* seq_cst: the zeroed ring before the pointer, and the pointer before the tail store and
     * `pending` (see notify). */
    atomic_store_explicit(slot, r, memory_order_seq_cst);
    return r;
}

/* Whether the ring has a free slot for the sender (not counting the spill list). */
static bool has_room(weft__smp_ring *r)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->head_seen < WEFT__SMP_RING)
        return true;
    /* seq_cst: after a parked sender's room_wanted store (see the field). */
    r->head_seen = atomic_load_explicit(&r->head, memory_order_seq_cst);
    return tail - r->head_seen < WEFT__SMP_RING;
}

/* Posts into the ring (there is room) or the spill list. */
static int put(weft__worker *from, weft__worker *to, weft__smp_ring *r, const weft__msg *m)
{
    WEFT_COUNT(from->stats.nmsgs++);
    /* The spill list emptied (the receiver took it): back to the ring, still in order,
     * because the receiver drains the ring before the list it took. */
    if (r->spilling && !atomic_load_explicit(&r->spill, memory_order_acquire))
        r->spilling = false;
    if (r->spilling || !has_room(r)) {
        int e = spill(from, r, m);
        if (e < 0)
            return e;
    } else {
        uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        r->slots[tail % WEFT__SMP_RING] = *m;
        atomic_store_explicit(&r->tail, tail + 1, memory_order_seq_cst);
    }
    notify(to);
    return 0;
}

int weft__smp_post(weft__worker *from, weft__worker *to, const weft__msg *m)
{
    if (weft_unlikely(from == to))
        return -EINVAL; /* no ring from a worker to itself: nothing would drain it */
    weft__smp_ring *r = pair_ring(from, to);
    return r ? put(from, to, r, m) : -ENOMEM;
}

static void room_lock(weft__smp_ring *r)
{
    while (atomic_flag_test_and_set_explicit(&r->room_lock, memory_order_acquire))
        ;
}

static void room_unlock(weft__smp_ring *r)
{
    atomic_flag_clear_explicit(&r->room_lock, memory_order_release);
}

int weft__smp_wait_room(weft__worker *from, weft_task *self, weft__worker *to)
{
    weft__smp_ring *r = pair_ring(from, to);
    if (!r)
        return -ENOMEM;
    weft__smp_room_waiter me = {.linked = false};
    bool queued = false; /* ever linked: `linked` itself is read under the lock only */
    while (!r->spilling && !has_room(r)) {
        queued = true;
        room_lock(r);
        if (!me.linked) {
            me.next = r->room_waiters;
            r->room_waiters = &me;
            me.linked = true;
        }
        me.waker = weft__waker_of(self); /* this run's: the park below is the one woken */
        atomic_store_explicit(&r->room_wanted, 1, memory_order_seq_cst);
        room_unlock(r);
        weft__fence_sc(); /* the store before has_room's load of head */
        /* The receiver may have drained between the check and the store: look again
         * before parking (its head store and our room_wanted store are a Dekker pair). */
        if (has_room(r))
            break;
        notify(to);
        weft__wait wr = {.kind = WEFT__WAIT_SMP_ROOM,
                         .what = to,
                         .deadline = WEFT_FOREVER,
                         .uncancellable = true};
        weft__park(from, &wr);
        from = self->worker; /* the migration rule: re-read after a park */
    }
    if (queued) { /* room may have come without the receiver waking us: leave the list */
        room_lock(r);
        if (me.linked) {
            weft__smp_room_waiter **p = &r->room_waiters;
            while (*p != &me)
                p = &(*p)->next;
            *p = me.next;
            me.linked = false;
        }
        room_unlock(r);
    }
    return 0;
}

int weft__smp_post_wait(weft__worker *from, weft_task *self, weft__worker *to, const weft__msg *m)
{
    int r = weft__smp_wait_room(from, self, to);
    return r < 0 ? r : weft__smp_post(self->worker, to, m);
}

bool weft__smp_pending(weft__worker *w)
{
    return atomic_load_explicit(&w->smp.pending, memory_order_seq_cst) != 0;
}

/* A stopping worker takes each message as busy (not done) and counts it, both before the
 * slot is freed: the quiescence check, which then sees the slot free, also sees the count
 * move or the worker not done (seq_cst all). Taking it as busy first matters because the
 * message may make it adopt a task. Before the stop nothing reads either: no cost to the
 * messages of a running program. The next turn of the loop marks it done again. */
static inline void count_taken(weft__worker *w)
{
    if (weft_unlikely(w->tasks.shutting_down)) {
        weft__smp_busy(w);
        atomic_store_explicit(&w->smp.activity,
                              atomic_load_explicit(&w->smp.activity, memory_order_relaxed) + 1,
                              memory_order_seq_cst);
    }
}

static void run_list(weft__worker *w, _Atomic(weft__smp_spill *) *list);

static void drain_ring(weft__worker *w, weft__smp_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* seq_cst (an acquire would do for the slots): it must not pass our clearing of
     * `pending`, which a sender that found `pending` still set relies on (see notify). On
     * aarch64 an acquire load may be an RCpc one that does pass a store-release. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    bool took = head != tail;
    while (head != tail) {
        count_taken(w);
        weft__msg m = r->slots[head % WEFT__SMP_RING];
        /* release: the slot was copied out before the sender may rewrite it. */
        atomic_store_explicit(&r->head, ++head, memory_order_release);
        m.fn(w, m.a, m.b, m.c);
    }
    if (took) {
        /* seq_cst, once a batch: the room_wanted load below may not pass it (see the
         * field), so a sender that announced itself before this store is woken here. */
        atomic_store_explicit(&r->head, head, memory_order_seq_cst);
        weft__fence_sc();
        if (atomic_load_explicit(&r->room_wanted, memory_order_seq_cst)) {
            /* Every waiting sender: the freed slots may be enough for all of them, and one
             * that finds none parks again. Woken under the lock, since a node is gone as
             * soon as its task runs. */
            room_lock(r);
            atomic_store_explicit(&r->room_wanted, 0, memory_order_relaxed);
            for (weft__smp_room_waiter *n = r->room_waiters; n;) {
                weft__smp_room_waiter *next = n->next;
                weft_waker wk = n->waker;
                n->linked = false;
                weft__wake_from(w, wk.task, wk.epoch);
                n = next;
            }
            r->room_waiters = NULL;
            room_unlock(r);
        }
    }
    run_list(w, &r->spill);
}

/* Takes a list of spilled (or foreign) messages whole and runs them, oldest first. */
static void run_list(weft__worker *w, _Atomic(weft__smp_spill *) *list)
{
    if (!atomic_load_explicit(list, memory_order_seq_cst)) /* as the tail's load */
        return;
    count_taken(w);
    /* acquire: pairs with the sender's CAS, so each node is written. */
    weft__smp_spill *s = atomic_exchange_explicit(list, NULL, memory_order_acquire);
    weft__smp_spill *fifo = NULL; /* the list is newest first: reverse it */
    while (s) {
        weft__smp_spill *next = s->next;
        s->next = fifo;
        fifo = s;
        s = next;
    }
    while (fifo) {
        weft__smp_spill *next = fifo->next;
        weft__msg m = fifo->m;
        weft__free(w, fifo);
        m.fn(w, m.a, m.b, m.c);
        fifo = next;
    }
}

void weft__smp_inject_take(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    if (!atomic_load_explicit(&rt->inject, memory_order_relaxed))
        return;               /* the common case: one load a tick */
    if (w->sched.ready.len) { /* busy: a look every WEFT__INJECT_TICKS ticks */
        if (!w->smp.inject_countdown)
            w->smp.inject_countdown = WEFT__INJECT_TICKS;
        if (--w->smp.inject_countdown)
            return;
    }
    w->smp.inject_countdown = 0;
    run_list(w, &rt->inject);
}

bool weft__smp_drain(weft__worker *w)
{
    if (!atomic_load_explicit(&w->smp.pending, memory_order_relaxed))
        return false;
    /* seq_cst: cleared before the scan, so a message posted after the scan looked at its
     * ring sets it again (see notify). */
    atomic_store_explicit(&w->smp.pending, 0, memory_order_seq_cst);
    weft__fence_sc();
    weft__runtime *rt = w->rt;
    for (unsigned from = 0; from < rt->nworkers; from++) {
        if (from == w->index)
            continue;
        /* seq_cst: as the tail's load (and it pairs with the publication of the ring). */
        weft__smp_ring *r =
            atomic_load_explicit(pair_slot(rt, from, w->index), memory_order_seq_cst);
        if (r)
            drain_ring(w, r);
    }
    run_list(w, &w->smp.foreign);
    return true;
}

static uint64_t activity_sum(weft__runtime *rt)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        sum += atomic_load_explicit(&rt->workers[i].smp.activity, memory_order_seq_cst);
    return sum;
}

static bool rings_empty(weft__runtime *rt)
{
    size_t n = (size_t)rt->nworkers * rt->nworkers;
    for (size_t i = 0; i < n; i++) {
        weft__smp_ring *r = atomic_load_explicit(&rt->rings[i], memory_order_seq_cst);
        if (!r)
            continue;
        if (atomic_load_explicit(&r->head, memory_order_seq_cst) !=
                atomic_load_explicit(&r->tail, memory_order_seq_cst) ||
            atomic_load_explicit(&r->spill, memory_order_seq_cst))
            return false;
    }
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (atomic_load_explicit(&rt->workers[i].smp.foreign, memory_order_seq_cst))
            return false;
    return !atomic_load_explicit(&rt->inject, memory_order_seq_cst);
}

/* Quiescence. A message is sent only by a task (or by a worker's loop for one of its tasks),
 * so a worker that is done (stopping, no unfinished task) sends none until a message makes
 * it adopt a task. The check reads the activity sum, every worker's done mark, every ring,
 * and the sum again: a message taken during the check moved the sum; one taken before it
 * either left its receiver done (nothing follows from it) or un-did its done mark before the
 * check read it; one still in a ring is seen there. Every done worker re-checks at each of
 * its loop's turns, so the last one to become done, or to take the last message, sees it. */
bool weft__smp_quiescent(weft__worker *w)
{
    weft__runtime *rt = w->rt;
    if (!w->smp.done) {
        w->smp.done = true;
        atomic_fetch_add_explicit(&rt->ndone, 1, memory_order_seq_cst);
    }
    if (atomic_load_explicit(&rt->exiting, memory_order_acquire))
        return true;
    uint64_t before = activity_sum(rt);
    if (atomic_load_explicit(&rt->ndone, memory_order_seq_cst) != rt->nworkers)
        return false;
    if (!rings_empty(rt) || activity_sum(rt) != before)
        return false;
    atomic_store_explicit(&rt->exiting, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (i != w->index)
            weft__worker_ring(&rt->workers[i]);
    return true;
}

void weft__smp_busy(weft__worker *w)
{
    if (!w->smp.done)
        return;
    w->smp.done = false;
    atomic_fetch_sub_explicit(&w->rt->ndone, 1, memory_order_seq_cst);
}
