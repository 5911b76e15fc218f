/* Broadcast channels: every receiver sees every value sent after it subscribed, from a ring
 * of the last `cap` values. A send never waits: it overwrites the oldest value, and a
 * receiver that had not read it yet is told how many it missed (tokio::sync::broadcast's
 * Lagged) and goes on from the oldest value still held. Invariant: the ring holds the values
 * numbered max(0, tail - cap) .. tail - 1, value k in slot k % cap, and a receiver's `next`
 * is the number of the next value it reads.
 *
 * Threads. All state is under `lock`, a spinlock held for a copy and a walk of the waiters,
 * never across a park. A waiting receiver links a node on its own stack and stores its waker
 * under the lock, then parks with the lock as the park's unlock callback (chan.c's and
 * sync.c's shape); a send or close unlinks every node, marks it woken and wakes its task
 * (through another worker's inbox, or a plain thread's futex, as weft_waker_wake does) under
 * the lock; the receiver takes the lock again before it reads `woken`, so no node is
 * touched after its frame could end.
 *
 * Lifetime. `refs` counts what keeps the memory: handles and receivers. `nhandles` counts
 * the handles only: the last handle's release closes the channel (receivers drain, then get
 * -EPIPE), as the last release of a weft_chan does. */
#include <errno.h>
#include <string.h>

#include "scheduler.h"
#include "util/list.h"
#include "util/spinlock.h"
#include "wake.h"
#include "worker.h"

/* The largest ring and value: a ring of 2^20 values of up to 64 KiB, as channels take. */
#define MAX_CAP  ((size_t)1 << 20)
#define MAX_ELEM ((size_t)65536)

struct weft_bcast {
    _Atomic uint32_t lock;
    size_t elem_size, cap; /* fixed */
    uint64_t tail;         /* under lock: the number of values ever sent */
    int closed;            /* under lock */
    size_t nreceivers;     /* under lock: subscribed receivers */
    weft__list waiters;    /* under lock: bcast_waiter.link, oldest first */
    char *buf;             /* cap slots of elem_size bytes (slot contents under lock) */
    /* any thread: retains are relaxed (the caller holds a reference); the decrement to zero
     * is acq_rel, so every holder's last use happens before the close or the free. */
    _Atomic unsigned refs;
    _Atomic unsigned nhandles;
};

/* owner: the one task (or thread) that uses the receiver at a time; `next` under b's lock. */
struct weft_bcast_rx {
    weft_bcast *b;
    uint64_t next;
};

/* A waiting receiver, on its stack; every field under the channel's lock. */
typedef struct bcast_waiter {
    weft__list link;
    weft_waker waker;
    bool woken; /* unlinked by a send or close: the node is no longer referenced */
} bcast_waiter;

/* Where a channel of 0-byte values copies from and to (never written: every copy is empty). */
static char zero_elem[1];

static void bc_lock(weft_bcast *b)
{
    weft__spin_lock(&b->lock);
}

static void bc_unlock(weft_bcast *b)
{
    weft__spin_unlock(&b->lock);
}

static void bc_unlock_cb(void *b)
{
    bc_unlock(b);
}

static char *slot(weft_bcast *b, uint64_t k)
{
    return b->buf + (size_t)(k % b->cap) * b->elem_size;
}

/* Wakes every waiting receiver (locked): a value arrived, or the channel closed. */
static void wake_all(weft_bcast *b)
{
    while (!weft__list_empty(&b->waiters)) {
        bcast_waiter *wt = weft__container_of(b->waiters.next, bcast_waiter, link);
        weft__list_remove(&wt->link);
        wt->woken = true;
        weft_waker_wake(wt->waker);
    }
}

int weft_bcast_create(weft_bcast **out, size_t elem_size, size_t cap)
{
    if (!out || cap == 0 || cap > MAX_CAP || elem_size > MAX_ELEM)
        return -EINVAL;
    weft__worker *w = weft__worker_current(); /* NULL on a plain thread: nothing counted */
    weft_bcast *b = weft__calloc(w, 1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->buf = elem_size ? weft__malloc(w, cap * elem_size) : zero_elem;
    if (!b->buf) {
        weft__free(w, b);
        return -ENOMEM;
    }
    b->elem_size = elem_size;
    b->cap = cap;
    weft__list_init(&b->waiters);
    atomic_init(&b->refs, 1);
    atomic_init(&b->nhandles, 1);
    *out = b;
    return 0;
}

static void unref(weft_bcast *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->buf != zero_elem)
        weft__free(NULL, b->buf);
    weft__free(NULL, b);
}

void weft_bcast_retain(weft_bcast *b)
{
    if (!b)
        return;
    atomic_fetch_add_explicit(&b->nhandles, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void weft_bcast_release(weft_bcast *b)
{
    if (!b)
        return;
    if (atomic_fetch_sub_explicit(&b->nhandles, 1, memory_order_acq_rel) == 1)
        weft_bcast_close(b); /* no sender is left: receivers must not wait forever */
    unref(b);
}

int weft_bcast_close(weft_bcast *b)
{
    if (!b)
        return -EINVAL;
    bc_lock(b);
    int r = b->closed ? -EPIPE : 0;
    b->closed = 1;
    wake_all(b);
    bc_unlock(b);
    return r;
}

int weft_bcast_send(weft_bcast *b, const void *elem)
{
    if (!b || (!elem && b->elem_size))
        return -EINVAL;
    bc_lock(b);
    if (b->closed) {
        bc_unlock(b);
        return -EPIPE;
    }
    memcpy(slot(b, b->tail), elem ? elem : zero_elem, b->elem_size);
    b->tail++;
    int n = b->nreceivers > INT32_MAX ? INT32_MAX : (int)b->nreceivers;
    wake_all(b);
    bc_unlock(b);
    return n;
}

int weft_bcast_subscribe(weft_bcast *b, weft_bcast_rx **out)
{
    if (!b || !out)
        return -EINVAL;
    weft_bcast_rx *rx = weft__malloc(weft__worker_current(), sizeof *rx);
    if (!rx)
        return -ENOMEM;
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); /* the caller holds one */
    rx->b = b;
    bc_lock(b);
    rx->next = b->tail; /* values sent from now on */
    /* Relaxed atomic stores, under the lock, for weft_bcast_receivers' unlocked read. */
    __atomic_store_n(&b->nreceivers, b->nreceivers + 1, __ATOMIC_RELAXED);
    bc_unlock(b);
    *out = rx;
    return 0;
}

void weft_bcast_unsubscribe(weft_bcast_rx *rx)
{
    if (!rx)
        return;
    weft_bcast *b = rx->b;
    bc_lock(b);
    __atomic_store_n(&b->nreceivers, b->nreceivers - 1, __ATOMIC_RELAXED);
    bc_unlock(b);
    weft__free(NULL, rx);
    unref(b);
}

/* One attempt (locked): 0 with a value, -EOVERFLOW with *nmissed, -EPIPE, or -EAGAIN. */
static int try_locked(weft_bcast_rx *rx, void *elem, uint64_t *nmissed)
{
    weft_bcast *b = rx->b;
    uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
    if (rx->next < oldest) {
        if (nmissed)
            *nmissed = oldest - rx->next;
        rx->next = oldest; /* the next receive gets the oldest value still held */
        return -EOVERFLOW;
    }
    if (rx->next < b->tail) {
        memcpy(elem ? elem : zero_elem, slot(b, rx->next), b->elem_size);
        rx->next++;
        return 0;
    }
    return b->closed ? -EPIPE : -EAGAIN;
}

int weft_bcast_try_recv(weft_bcast_rx *rx, void *elem, uint64_t *nmissed)
{
    if (!rx || (!elem && rx->b->elem_size))
        return -EINVAL;
    bc_lock(rx->b);
    int r = try_locked(rx, elem, nmissed);
    bc_unlock(rx->b);
    return r;
}

int weft_bcast_recv(weft_bcast_rx *rx, void *elem, uint64_t *nmissed, int64_t deadline)
{
    weft_task *t = NULL;
    int r;
    weft__worker *w = weft__blocking_begin_any(&t, &r);
    if (!t)
        return r;
    if (!rx || (!elem && rx->b->elem_size))
        return -EINVAL;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    weft_bcast *b = rx->b;
    bc_lock(b);
    /* A channel receive for the task dump and the deadlock check: only a sender can end it. */
    weft__wait wr = {.kind = WEFT__WAIT_CHAN_RECV,
                     .what = b,
                     .deadline = deadline,
                     .unlock = bc_unlock_cb,
                     .lock = b};
    while ((r = try_locked(rx, elem, nmissed)) == -EAGAIN) {
        bcast_waiter wt = {.woken = false};
        weft__list_push_back(&b->waiters, &wt.link);
        wt.waker = weft__waker_of(t); /* under the lock: a send reads it there */
        int pr = weft__park(w, &wr);
        w = t->worker; /* see weft__park: re-read after the switch */
        bc_lock(b);
        if (!wt.woken)
            weft__list_remove(&wt.link);
        /* A value or close that raced the deadline or the cancellation wins: look again
         * once, and give the park's error only if there is still nothing. */
        if (pr < 0 && !wt.woken) {
            r = try_locked(rx, elem, nmissed);
            if (r == -EAGAIN)
                r = pr;
            break;
        }
    }
    bc_unlock(b);
    return r;
}

size_t weft_bcast_receivers(const weft_bcast *b)
{
    /* One word, read without the lock (a figure that may be stale at once). */
    return b ? __atomic_load_n(&b->nreceivers, __ATOMIC_RELAXED) : 0;
}
