/* Channels and select. A channel is a ring buffer plus two FIFO queues of waiters (senders,
 * receivers). Waiter nodes live on the waiting task's stack. Each points at a `done` record
 * it shares with the other cases of the same select (a plain send or receive is a select of
 * one), so whoever completes a waiter first claims the whole select: the other cases become
 * stale and are skipped, then unlinked by their owner. The counterpart copies the value
 * straight to or from the waiter's buffer, so a value is never lost or taken twice.
 *
 * Threads. Every state change happens between chan_lock() and chan_unlock(), a spinlock on
 * the channel's lock word held for a few dozen instructions and never across a park (biased
 * to one worker while only that worker's tasks use it: bias_lock.h), except the buffered
 * values of a contended bounded channel, which sends and receives take and put without the
 * lock while nobody waits ("Contended channels" below), and
 * select takes the locks of all its channels in address order before it looks at any, so
 * that it can complete exactly one case atomically; a waiter of a select of several cases is
 * claimed with a CAS on its shared `fired` word, since two channels' lock holders may race
 * for it. A waiter is linked, and its waker stored, under the lock(s); it parks with them as
 * the park's unlock callback (released once it is marked PARKED), and takes them again when
 * it wakes, before it reads its outcome. So a completer, which holds a lock of the waiter's,
 * always finds it parked with the waker it read, and the waiter's frame (its node, its done
 * record) outlives every completer's use of it. Any task of any worker of any runtime may use
 * a channel; a completion wakes a task of another worker through that worker's inbox. So
 * may a plain thread outside every runtime: it blocks through its stand-in task record
 * (thread_park.h), and its sends, receives and selects are never cancelled.
 *
 * Lifetime. Handles are counted in `refs`; waiting tasks are counted apart, in `nwaiters`
 * (under the lock, so a park costs no atomic). When the last handle goes while tasks wait,
 * the channel is closed (they wake with -EPIPE) and `orphaned`; the last waiter to leave
 * frees it. So no waiter ever touches freed memory, and nothing leaks.
 *
 * Values of size 0 (Go's chan struct{}) carry no data: elem pointers may be NULL, and every
 * copy is of 0 bytes from or to `zero_elem`, never from or to NULL.
 *
 * Unbounded channels (weft_chan_create_unbounded) are the same ring, which a send that finds
 * it full doubles instead of waiting: senders never park, so their queue stays empty. The
 * doubling allocates under the lock, the one exception to "a few dozen instructions": it
 * happens log2(n) times for n values, and doing it outside would need a second pass for a
 * select holding several locks. At `max_len` values, or when the allocation fails, the send
 * returns -ENOMEM and the value is not taken (never lost silently). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bias_lock.h"
#include "chan.h"
#include "leaks.h"
#include "park_local.h"
#include "scheduler.h"
#include "util/spinlock.h"
#include "wake.h"
#include "wake_local.h"
#include "worker.h"

#define MAX_ELEM    ((size_t)65536)
#define MAX_CASES   1025 /* weft_select's 1024 (select.c), and the general select's added DEFAULT */
#define STACK_CASES 8    /* waiter nodes on the stack up to this many cases, else one malloc */

/* A channel. Every field but `refs`, `lock`, `bias` and the fixed ones is guarded by `lock`.
 * The bias last, a line away from the rest (bias_lock.h). */
struct weft_chan {
    weft__worker *w; /* the worker that created it (its allocation counter); fixed */
    size_t elem_size, cap;
    size_t head, len; /* buffered values: slots head .. head+len-1 (mod cap) */
    /* any thread: retain is relaxed (the caller already holds a reference); the release that
     * drops it to zero is acq_rel, so every other holder's last use happens before the free. */
    _Atomic unsigned refs;
    _Atomic uint32_t lock; /* 0 free, 1 held; see the file comment and bias_lock.h */
    int closed;
    bool unbounded;   /* fixed: a full ring grows (see the file comment) */
    bool lf_on;       /* the values are in `lf` (see "Contended channels"); set once */
    bool lf_tried;    /* no (further) move to `lf`: made, failed, or not for this channel */
    size_t max_len;   /* unbounded: the most values buffered (SIZE_MAX: memory is the limit) */
    int orphaned;     /* the last handle went while tasks waited: the last waiter frees it */
    size_t nwaiters;  /* waiter nodes of blocked sends, receives and selects, counted from
                       * their link until their owner has looked at the outcome under the
                       * lock (a send or receive unlinked by its completer is still counted):
                       * each keeps the channel alive until it has left */
    weft__list sendq; /* chan_waiter.link, oldest first */
    weft__list recvq;
    char *buf;
    /* The leak report's table (leaks.c) while it tracks this channel, and its index there
     * (written under the table's mutex); NULL while the report is off. */
    struct weft__leaks *leaks;
    size_t leak_index;
    char gap_[64 - sizeof(void *) - sizeof(size_t)]; /* the bias a line past `buf` */
    weft__bias bias;
    /* The ring of a contended channel, or NULL: set once, under the lock (release), read by
     * the calls' lock-free paths (acquire). On the bias's line: read-mostly once it is set,
     * since the bias is then given up for good. */
    struct lf_ring *_Atomic lf;
};
_Static_assert(weft__bias_layout(offsetof(struct weft_chan, bias), offsetof(struct weft_chan, w),
                                 offsetof(struct weft_chan, buf) + sizeof(char *)),
               "a channel's bias shares a line with its lock or what it guards");

/* Shared by the cases of one select (a plain send or receive is a select of one). Lives on
 * the waiting task's stack. */
typedef struct wait_done {
    /* any thread holding one of the select's channel locks: 0, then 1 once a case is
     * claimed; a plain send's or receive's then 2 or 4 once completed (see complete()). With one
     * case, that channel's lock alone guards it (a plain store); with several, claimers race and
     * CAS it (acq_rel: the winner's writes to index/result and the copied value happen after its
     * claim and before the waiter's wake). */
    _Atomic int fired;
    int ncases;
    bool plain;       /* a send's or receive's, not a select's: see complete() */
    int index;        /* which case completed; under the completing channel's lock */
    int result;       /* 0 or -EPIPE; the same */
    weft_waker waker; /* the waiting task, refreshed under the lock(s) before each park */
} wait_done;

typedef struct chan_waiter {
    weft__list link;
    void *elem; /* send: the value; receive: where it goes */
    wait_done *done;
    int index;
} chan_waiter;

/* Where the values of a channel of 0-byte elements are copied from and to (a NULL pointer
 * is not a valid memcpy argument, even for 0 bytes). Never written: every copy is empty. */
static char zero_elem[1];

/* Takes c's lock for the calling thread, whose worker is `self` (NULL on a plain thread).
 * Returns the word that releases it: chan_unlock's argument, or a park's unlock word (with
 * weft__park_spin_unlock). */
static inline __attribute__((always_inline)) _Atomic uint32_t *chan_lock(weft_chan *c,
                                                                         weft__worker *self)
{
    return weft__bias_acquire(&c->bias, &c->lock, self);
}

/* The same, for the calls that do not know their worker. */
static _Atomic uint32_t *chan_lock_here(weft_chan *c)
{
    return weft__bias_acquire(&c->bias, &c->lock, weft__worker_current());
}

static inline void chan_unlock(_Atomic uint32_t *held)
{
    weft__bias_release(held);
}

/* Copies one value of n bytes. A word (an int, a pointer, a long: most channels) is one load
 * and one store instead of a call to memcpy, twice per hand-off. */
static inline __attribute__((always_inline)) void copy_value(size_t n, void *dst, const void *src)
{
    switch (n) {
    case 8:
        memcpy(dst, src, 8);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    default:
        memcpy(dst, src, n);
    }
}

static inline __attribute__((always_inline)) void copy_elem(const weft_chan *c, void *dst,
                                                            const void *src)
{
    copy_value(c->elem_size, dst, src);
}

/* The buffered count, under the lock; stored atomically for weft_chan_len's unlocked read. */
static inline void set_len(weft_chan *c, size_t n)
{
    __atomic_store_n(&c->len, n, __ATOMIC_RELAXED);
}

static char *slot(weft_chan *c, size_t i)
{
    return c->buf + (i % c->cap) * c->elem_size;
}

/* Doubles a full unbounded channel's ring (locked), keeping its values in order from slot 0.
 * Returns 0, or -ENOMEM at max_len or when memory runs out (then nothing changed). */
static WEFT_NOINLINE int grow(weft_chan *c)
{
    if (c->len >= c->max_len)
        return -ENOMEM;
    size_t ncap = c->cap * 2;
    if (ncap > c->max_len)
        ncap = c->max_len;
    if (ncap > SIZE_MAX / c->elem_size)
        return -ENOMEM;
    char *nb = weft__malloc(NULL, ncap * c->elem_size); /* any thread: counted nowhere */
    if (!nb)
        return -ENOMEM;
    for (size_t i = 0; i < c->len; i++)
        memcpy(nb + i * c->elem_size, slot(c, c->head + i), c->elem_size);
    weft__free(NULL, c->buf);
    c->buf = nb;
    c->head = 0;
    c->cap = ncap;
    return 0;
}

/* The oldest waiter whose select has not fired; stale ones are unlinked on the way. */
static chan_waiter *first_live(weft__list *q)
{
    while (!weft__list_empty(q)) {
        chan_waiter *wt = weft__container_of(q->next, chan_waiter, link);
        if (!atomic_load_explicit(&wt->done->fired, memory_order_relaxed))
            return wt;
        weft__list_remove(&wt->link);
    }
    return NULL;
}

/* Claims wt's select for this completion. False if another channel's holder claimed it first
 * (then wt is stale, and unlinked). */
static inline __attribute__((always_inline)) bool claim(chan_waiter *wt)
{
    wait_done *d = wt->done;
    if (d->ncases == 1) {
        atomic_store_explicit(&d->fired, 1, memory_order_relaxed);
        return true;
    }
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&d->fired, &expected, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
        return true;
    weft__list_remove(&wt->link);
    return false;
}

/* The oldest live waiter of q, claimed; NULL if none. */
static inline __attribute__((always_inline)) chan_waiter *take_live(weft__list *q)
{
    chan_waiter *wt;
    while ((wt = first_live(q)) != NULL)
        if (claim(wt))
            return wt;
    return NULL;
}

/* Finishes a claimed waiter: unlinks it, records the outcome, wakes its task. `self` is the
 * calling thread's worker when the caller knows it, else NULL. Under the channel's lock: the
 * waiter is parked (its park released the lock after marking it so), or already woken by
 * something else (its deadline, a cancel, another waker) and on its way to take the lock.
 *
 * A plain send's or receive's waiter (`plain`) is told how it ends by `fired`, stored after
 * the wake (the wake must come first: a waiter that sees the outcome may return, finish, and
 * its runtime end and free its task record, which the wake would then touch):
 * - 2 (release): this wake is the one that woke it (weft__wake_local), so it was asleep
 *   until now: it is counted out of the channel's waiters here, and the store is the last
 *   touch of its done record, its node and its task. The waiter returns without the lock,
 *   and must not touch the channel, which may be freed as soon as we unlock (its last handle
 *   gone: `orphaned`).
 * - 4: it was awake already. It stays counted, so the channel outlives its next step, which
 *   is to take the lock, read the outcome and count itself out (block_on).
 * Between the claim (1) and either store, a waiter that runs looks at neither the channel nor
 * the outcome: it waits for the store (block_on). */
static inline __attribute__((always_inline)) void complete(weft__worker *self, weft_chan *c,
                                                           chan_waiter *wt, int result)
{
    wait_done *d = wt->done;
    d->result = result;
    weft_waker wk = d->waker;
    if (!d->plain) {
        /* A select's node: its owner unlinks all its cases afterwards, this one again. */
        weft__list_remove(&wt->link);
        d->index = wt->index;
        if (wk.task) {
            if (self)
                weft__wake_from(self, wk.task, wk.epoch);
            else
                weft__wake(wk.task, wk.epoch);
        }
        return;
    }
    /* A plain waiter's node is unlinked here for good: its owner unlinks it only when no
     * completer did (block_on), and reads no `index` (one case). Its waker is always set:
     * block_on stores it before it first releases the lock, and every completer holds it. */
    weft__list_unlink(&wt->link);
    if (weft__wake_local(self, wk.task, wk.epoch)) {
        c->nwaiters--;
        atomic_store_explicit(&d->fired, 2, memory_order_release);
    } else {
        atomic_store_explicit(&d->fired, 4, memory_order_release);
    }
}

/* ---- Contended channels: the lock-free ring -------------------------------------------------
 *
 * A bounded buffered channel that several threads use takes its lock for every value, and
 * the lock's line then crosses the cores twice a message, with the holder's misses inside the
 * section (docs/performance.md, session 34: 80% of a send's time in the lock). Once the lock's
 * bias is given up for good (bias_lock.h: another thread revoked it, or its streaks broke too
 * often), such a channel moves its values to a ring that sends and receives use without the
 * lock while nobody waits (Vyukov's bounded queue: a stamp per slot, producers' and
 * consumers' positions on lines of their own). The lock stays for the rest: the wait queues,
 * select, close, and every call that finds the ring full or empty.
 *
 * Stamps. Position p lives in slot p % cap; its stamp is 2p while the slot is free for it,
 * 2p + 1 once p's value is in. A producer claims p by a CAS of `tail` (2 * p, plus
 * TAIL_CLOSED once closed: a push then fails), writes the value, and stores 2p + 1
 * (release); a consumer claims p by a CAS of `head`, copies the value out, and stores
 * 2(p + cap) (release). Between a claim and its stamp the position is "in flight": a
 * consumer sees no value there yet, a producer no room.
 *
 * The handshake with waiters. `state` says, under the lock, whether senders or receivers
 * wait and whether the channel is closed (lf_bits). A lock-free call runs only while it reads
 * 0, and reads it again after its push or pop (seq_cst): if anything waits by then, it takes
 * the lock and settles (lf_settle: buffered values to waiting receivers, room to waiting
 * senders, closes' -EPIPE). A task about to park links its waiter, stores `state` (seq_cst),
 * and reads the positions again (seq_cst): a receiver parks only if no position is claimed
 * past `head`, a sender only if the ring is full. Of two seq_cst pairs, the caller's claim then
 * its read of `state`, and the waiter's store of `state` then its read of the positions, one
 * sees the other's first half: the waiter sees the value (or the room), or the caller sees the
 * waiter and hands it over under the lock. A position still in flight when a waiter looks is
 * waited for (a few instructions of its claimer, or settled by that claimer's own read).
 *
 * Who settles. Every section that changes the ring or the queues of a channel in this mode
 * ends with `state` matching the queues (lf_refresh), so a stale 0 cannot outlive it. A select
 * claimed by a settle whose pop or push then lost to a lock-free call is woken with -EAGAIN
 * and looks again (weft__chan_select).
 *
 * The move is made under the lock, once (lf_start), only for rings of at most LF_MAX_BYTES;
 * unbounded and rendezvous channels keep the lock for everything. */

#ifdef WEFT_TESTING
void (*weft__chan_lf_hook)(int where);
#define LF_HOOK(where)                                                                             \
    do {                                                                                           \
        if (weft_unlikely(weft__chan_lf_hook != NULL))                                             \
            weft__chan_lf_hook(where);                                                             \
    } while (0)
#else
#define LF_HOOK(where) ((void)0)
#endif

#define TAIL_CLOSED  ((uint64_t)1)
#define LF_MAX_BYTES ((size_t)8 << 20)

enum { LF_RECVQ = 1, LF_SENDQ = 2, LF_CLOSED = 4 };

typedef struct lf_ring {
    /* Fixed once made, and `state`: read by every call, written only when waiters come or go. */
    size_t cap, mask, elem_size, stride; /* mask: cap - 1 when cap is a power of two, else 0 */
    _Atomic uint32_t state;              /* LF_*, under the channel's lock (see above) */
    char pad0_[64 - 4 * sizeof(size_t) - sizeof(uint32_t)];
    _Atomic uint64_t tail; /* producers: 2 * the next position, | TAIL_CLOSED */
    char pad1_[64 - sizeof(uint64_t)];
    _Atomic uint64_t head; /* consumers: the next position */
    char pad2_[64 - sizeof(uint64_t)];
    char slots[]; /* cap slots of `stride` bytes: the stamp, then the value */
} lf_ring;
_Static_assert(offsetof(lf_ring, tail) == 64 && offsetof(lf_ring, head) == 128 &&
                   offsetof(lf_ring, slots) == 192,
               "the ring's positions on lines of their own");

static inline lf_ring *lf_of(const weft_chan *c)
{
    return atomic_load_explicit(&((weft_chan *)c)->lf, memory_order_relaxed);
}

static inline __attribute__((always_inline)) _Atomic uint64_t *lf_slot(const lf_ring *q,
                                                                       uint64_t pos)
{
    size_t i = q->mask ? (size_t)(pos & q->mask) : (size_t)(pos % q->cap);
    return (_Atomic uint64_t *)(void *)(q->slots + i * q->stride);
}

/* copy_elem from the ring's own copy of the size (its read-mostly line, not the channel's). */
static inline __attribute__((always_inline)) void lf_copy(const lf_ring *q, void *dst,
                                                          const void *src)
{
    copy_value(q->elem_size, dst, src);
}

/* Claims the next position and fills it. 0, -EAGAIN (full, or its slot's last value still
 * being copied out) or -EPIPE (closed). Any thread. */
static inline __attribute__((always_inline)) int lf_push(lf_ring *q, const void *elem)
{
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        if (t & TAIL_CLOSED)
            return -EPIPE;
        uint64_t pos = t >> 1;
        _Atomic uint64_t *stamp = lf_slot(q, pos);
        /* acquire: the consumer that freed the slot has copied its value out. */
        uint64_t s = atomic_load_explicit(stamp, memory_order_acquire);
        if (s == 2 * pos) {
            /* seq_cst: the caller's read of `state` after this comes after it (see above). */
            if (atomic_compare_exchange_weak_explicit(&q->tail, &t, t + 2, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                LF_HOOK(WEFT__LF_BEFORE_STAMP);
                lf_copy(q, (char *)stamp + 8, elem);
                atomic_store_explicit(stamp, 2 * pos + 1, memory_order_release);
                return 0;
            }
            weft__cpu_relax(); /* lost to another producer: let its line settle */
        } else if ((int64_t)(s - 2 * pos) < 0) {
            return -EAGAIN;
        } else {
            t = atomic_load_explicit(&q->tail, memory_order_relaxed); /* taken: look again */
        }
    }
}

/* Claims the oldest value and copies it out. 0, or -EAGAIN (empty, or its value still being
 * written: lf_count tells which). Any thread. */
static inline __attribute__((always_inline)) int lf_pop(lf_ring *q, void *elem)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        _Atomic uint64_t *stamp = lf_slot(q, h);
        /* acquire: the producer's value is in. */
        uint64_t s = atomic_load_explicit(stamp, memory_order_acquire);
        if (s == 2 * h + 1) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                lf_copy(q, elem, (char *)stamp + 8);
                atomic_store_explicit(stamp, 2 * (h + q->cap), memory_order_release);
                return 0;
            }
            weft__cpu_relax(); /* lost to another consumer */
        } else if ((int64_t)(s - (2 * h + 1)) < 0) {
            return -EAGAIN;
        } else {
            h = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
}

/* Positions claimed by producers and not yet by consumers, values in flight included
 * (seq_cst: the waiters' half of the handshake). `head` is read first, so the figure is
 * never below 0; it may exceed cap for a moment. */
static uint64_t lf_count(lf_ring *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_seq_cst);
    return (atomic_load_explicit(&q->tail, memory_order_seq_cst) >> 1) - h;
}

/* A spin while another thread finishes a claim it has made: a few instructions, unless its
 * thread lost its CPU. */
static void lf_backoff(unsigned *spins)
{
    if (++*spins % 128 == 0)
        sched_yield();
    else
        weft__cpu_relax();
}

/* A pop that waits out a value in flight: 0, or -EAGAIN when nothing is claimed past head. */
static int lf_pop_wait(lf_ring *q, void *elem)
{
    for (unsigned spins = 0;; lf_backoff(&spins)) {
        if (lf_pop(q, elem) == 0)
            return 0;
        if (lf_count(q) == 0)
            return -EAGAIN;
    }
}

/* A push that waits out a slot being emptied: 0, -EPIPE, or -EAGAIN when the ring is full. */
static int lf_push_wait(lf_ring *q, const void *elem)
{
    for (unsigned spins = 0;; lf_backoff(&spins)) {
        int r = lf_push(q, elem);
        if (r != -EAGAIN)
            return r;
        if (lf_count(q) >= q->cap)
            return -EAGAIN;
    }
}

static uint32_t lf_bits(const weft_chan *c)
{
    return (weft__list_empty(&c->recvq) ? 0u : LF_RECVQ) |
           (weft__list_empty(&c->sendq) ? 0u : LF_SENDQ) | (c->closed ? LF_CLOSED : 0u);
}

/* Under the lock: `state` made to match the queues (seq_cst: see the handshake above). */
static void lf_refresh(weft_chan *c, lf_ring *q)
{
    uint32_t want = lf_bits(c);
    if (atomic_load_explicit(&q->state, memory_order_relaxed) != want)
        atomic_store_explicit(&q->state, want, memory_order_seq_cst);
}

/* Under the lock: buffered values to waiting receivers and room to waiting senders, oldest
 * first, then a close's -EPIPE to those left (receivers only once nothing is claimed past
 * head: a value in flight is settled by its producer's own look at `state`). A waiter of one
 * case gets the value straight into its buffer; a select is claimed first, and if its pop or
 * push then loses to a lock-free call, woken with -EAGAIN to look again. */
static WEFT_NOINLINE void lf_settle(weft__worker *self, weft_chan *c, lf_ring *q)
{
    for (bool moved = true; moved;) {
        moved = false;
        chan_waiter *wt;
        while ((wt = first_live(&c->recvq)) != NULL) {
            if (wt->done->ncases == 1) {
                if (lf_pop(q, wt->elem) < 0)
                    break;
                claim(wt);
            } else {
                uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
                if (atomic_load_explicit(lf_slot(q, h), memory_order_relaxed) != 2 * h + 1)
                    break; /* nothing to give it yet */
                if (!claim(wt))
                    continue;
                if (lf_pop(q, wt->elem) < 0) {
                    complete(self, c, wt, -EAGAIN);
                    break;
                }
            }
            complete(self, c, wt, 0);
            moved = true;
        }
        while (!c->closed && (wt = first_live(&c->sendq)) != NULL) {
            if (wt->done->ncases == 1) {
                if (lf_push(q, wt->elem) < 0)
                    break;
                claim(wt);
            } else {
                if (lf_count(q) >= q->cap)
                    break;
                if (!claim(wt))
                    continue;
                if (lf_push(q, wt->elem) < 0) {
                    complete(self, c, wt, -EAGAIN);
                    break;
                }
            }
            complete(self, c, wt, 0);
            moved = true;
        }
    }
    if (c->closed) {
        chan_waiter *wt;
        while ((wt = take_live(&c->sendq)) != NULL)
            complete(self, c, wt, -EPIPE);
        if (lf_count(q) == 0)
            while ((wt = take_live(&c->recvq)) != NULL)
                complete(self, c, wt, -EPIPE);
    }
    lf_refresh(c, q);
}

/* Under the lock: settles if anything waits or the channel is closed, else only refreshes. */
static inline void lf_done(weft__worker *self, weft_chan *c, lf_ring *q)
{
    if (!weft__list_empty(&c->recvq) || !weft__list_empty(&c->sendq) || c->closed)
        lf_settle(self, c, q);
    else
        lf_refresh(c, q);
}

/* do_send in this mode (locked). */
static WEFT_NOINLINE int lf_do_send(weft__worker *self, weft_chan *c, const void *elem)
{
    lf_ring *q = lf_of(c);
    if (c->closed)
        return -EPIPE;
    int r;
    /* Straight to a waiting receiver only with nothing claimed in the ring: a value of this
     * caller's may be there behind a position still in flight, and must go first. */
    chan_waiter *rw = lf_count(q) == 0 ? take_live(&c->recvq) : NULL;
    if (rw) {
        copy_elem(c, rw->elem, elem);
        complete(self, c, rw, 0);
        r = 0;
    } else {
        if (!weft__list_empty(&c->sendq))
            lf_settle(self, c, q); /* waiting senders go first */
        r = first_live(&c->sendq) ? -EAGAIN : lf_push_wait(q, elem);
    }
    lf_done(self, c, q);
    return r;
}

/* do_recv in this mode (locked). */
static WEFT_NOINLINE int lf_do_recv(weft__worker *self, weft_chan *c, void *elem)
{
    lf_ring *q = lf_of(c);
    if (!weft__list_empty(&c->recvq))
        lf_settle(self, c, q); /* waiting receivers go first */
    int r = first_live(&c->recvq) ? -EAGAIN : lf_pop_wait(q, elem);
    if (r < 0 && weft__list_empty(&c->recvq)) {
        chan_waiter *s = take_live(&c->sendq);
        if (s) {
            copy_elem(c, elem, s->elem);
            complete(self, c, s, 0);
            r = 0;
        } else if (c->closed) {
            r = -EPIPE;
        }
    }
    lf_done(self, c, q);
    return r;
}

/* The waiter just linked (locked): publishes it, then looks once more (see the handshake).
 * 0 if the value went or came after all, else -EAGAIN (park). */
static int lf_before_park(weft_chan *c, void *elem, int is_send)
{
    lf_ring *q = lf_of(c);
    lf_refresh(c, q);
    atomic_thread_fence(memory_order_seq_cst);
    int r = is_send ? lf_push_wait(q, elem) : lf_pop_wait(q, elem);
    return r == -EPIPE ? -EAGAIN : r; /* closed only under the lock, which is ours */
}

/* Moves a channel whose bias was given up to the ring (locked). Once: a failed allocation
 * leaves it on the lock for good. */
static WEFT_NOINLINE WEFT_COLD void lf_start(weft_chan *c)
{
    c->lf_tried = true;
    size_t stride = 8 + ((c->elem_size + 7) & ~(size_t)7);
    if (c->cap > (LF_MAX_BYTES - sizeof(lf_ring)) / stride)
        return;
    size_t size = (sizeof(lf_ring) + c->cap * stride + 63) & ~(size_t)63;
    lf_ring *q = aligned_alloc(64, size);
    if (!q)
        return;
    memset(q, 0, sizeof *q);
    q->cap = c->cap;
    q->mask = (c->cap & (c->cap - 1)) == 0 ? c->cap - 1 : 0;
    q->elem_size = c->elem_size;
    q->stride = stride;
    for (size_t i = 0; i < c->cap; i++) {
        _Atomic uint64_t *stamp = lf_slot(q, i);
        if (i < c->len) {
            memcpy((char *)stamp + 8, slot(c, c->head + i), c->elem_size);
            atomic_init(stamp, 2 * (uint64_t)i + 1);
        } else {
            atomic_init(stamp, 2 * (uint64_t)i);
        }
    }
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 2 * (uint64_t)c->len | (c->closed ? TAIL_CLOSED : 0));
    atomic_init(&q->state, lf_bits(c));
    if (c->buf != zero_elem)
        weft__free(NULL, c->buf);
    c->buf = NULL; /* head and len stay: weft_chan_len may be reading len still */
    c->lf_on = true;
    atomic_store_explicit(&c->lf, q, memory_order_release);
}

/* chan_lock for a send or a receive: moves the channel to the ring once its lock's bias is
 * given up for good (read under `spin` only: a biased holder holds `busy`, and `never` is
 * false while anyone does). */
static inline __attribute__((always_inline)) _Atomic uint32_t *chan_lock_op(weft_chan *c,
                                                                            weft__worker *self)
{
    _Atomic uint32_t *held = chan_lock(c, self);
    if (weft_unlikely(!c->lf_tried) && held == &c->lock && weft_unlikely(c->bias.never))
        lf_start(c);
    return held;
}

/* A send or receive without the lock, while nobody waits: 0 (done), -EPIPE (a send on a
 * closed channel), or 1 (take the lock). Out of line, so that channels of one worker pay only
 * the test of `lf` for it. */
static WEFT_NOINLINE int lf_fast(weft__worker *self, weft_chan *c, lf_ring *q, void *elem,
                                 int is_send)
{
    if (atomic_load_explicit(&q->state, memory_order_relaxed) != 0)
        return 1;
    LF_HOOK(WEFT__LF_AFTER_LOOK);
    int r = is_send ? lf_push(q, elem) : lf_pop(q, elem);
    if (r == -EPIPE)
        return r;
    if (r < 0)
        return 1;
    LF_HOOK(WEFT__LF_BEFORE_RECHECK);
    /* seq_cst: after the claim (see the handshake). Someone waits: settle for it. */
    if (weft_unlikely(atomic_load_explicit(&q->state, memory_order_seq_cst) != 0)) {
        _Atomic uint32_t *held = chan_lock(c, self);
        lf_settle(self, c, q);
        chan_unlock(held);
    }
    return 0;
}

/* Side-effect-free readiness, for select's uniform choice. */
static int send_ready(weft_chan *c)
{
    /* An unbounded send never waits: it sends, or fails with -ENOMEM. */
    if (c->closed || c->unbounded || first_live(&c->recvq))
        return 1;
    return c->lf_on ? lf_count(lf_of(c)) < c->cap : c->len < c->cap;
}

static int recv_ready(weft_chan *c)
{
    if (c->lf_on ? lf_count(lf_of(c)) > 0 : c->len > 0)
        return 1;
    return first_live(&c->sendq) || c->closed;
}

/* Returns 0 (sent), -EPIPE (closed) or -EAGAIN (would wait). `self`: the caller's worker,
 * or NULL (then looked up only if a waiter is woken). Inline: a send's own copy costs it no
 * call and no second saving of registers. `may_lf`: false where the caller knows the channel
 * is not in the lock-free mode (it holds the lock biased: a move needs the bias given up). */
static inline __attribute__((always_inline)) int do_send(weft__worker *self, weft_chan *c,
                                                         const void *elem, bool may_lf)
{
    if (may_lf && weft_unlikely(c->lf_on))
        return lf_do_send(self, c, elem);
    if (c->closed)
        return -EPIPE;
    chan_waiter *r = take_live(&c->recvq);
    if (r) {
        copy_elem(c, r->elem, elem);
        complete(self, c, r, 0);
        return 0;
    }
    if (weft_unlikely(c->unbounded) && c->len == c->cap) {
        int err = grow(c);
        if (err < 0)
            return err;
    }
    if (c->len < c->cap) {
        copy_elem(c, slot(c, c->head + c->len), elem);
        set_len(c, c->len + 1);
        return 0;
    }
    return -EAGAIN;
}

/* Returns 0 (received), -EPIPE (closed and drained) or -EAGAIN (would wait). Inline, as
 * do_send. */
static inline __attribute__((always_inline)) int do_recv(weft__worker *self, weft_chan *c,
                                                         void *elem, bool may_lf)
{
    if (may_lf && weft_unlikely(c->lf_on))
        return lf_do_recv(self, c, elem);
    chan_waiter *s = take_live(&c->sendq);
    if (c->len > 0) {
        copy_elem(c, elem, slot(c, c->head));
        c->head = (c->head + 1) % c->cap;
        set_len(c, c->len - 1);
        if (s) { /* a parked sender's value takes the freed slot, keeping FIFO order */
            copy_elem(c, slot(c, c->head + c->len), s->elem);
            set_len(c, c->len + 1);
            complete(self, c, s, 0);
        }
        return 0;
    }
    if (s) {
        copy_elem(c, elem, s->elem);
        complete(self, c, s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t cap)
{
    weft__worker *w = weft__worker_current(); /* NULL on a plain thread: nothing counted */
    if (!out || elem_size > MAX_ELEM || cap > ((size_t)1 << 30) / (elem_size ? elem_size : 1))
        return -EINVAL;
    weft_chan *c = weft__calloc(w, 1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (elem_size == 0) {
        c->buf = zero_elem; /* every slot is this empty one */
    } else if (cap) {
        c->buf = weft__malloc(w, cap * elem_size);
        if (!c->buf) {
            weft__free(w, c);
            return -ENOMEM;
        }
    }
    c->w = w;
    c->elem_size = elem_size;
    c->cap = cap;
    c->lf_tried = cap == 0; /* a rendezvous has no ring */
    atomic_init(&c->refs, 1);
    weft__list_init(&c->sendq);
    weft__list_init(&c->recvq);
    if (weft_unlikely(w && w->leaks))
        c->leaks = weft__leaks_chan_add(w->leaks, c, &c->leak_index,
                                        w->current ? w->current->id : 0, elem_size, cap);
    *out = c;
    return 0;
}

void weft_chan_retain(weft_chan *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* By whichever thread drops the last reference: its creator's worker may be gone (a
 * channel may outlive the runtime that made it), and the free needs none. */
static void chan_free(weft_chan *c)
{
    if (weft_unlikely(c->leaks != NULL))
        weft__leaks_chan_remove(c->leaks, c->leak_index);
    if (c->buf != zero_elem)
        weft__free(NULL, c->buf);
    free(lf_of(c)); /* aligned_alloc's */
    weft__free(NULL, c);
}

static int close_locked(weft_chan *c);

void weft_chan_release(weft_chan *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* The last handle: tasks still waiting would wait forever, so they are woken (with
     * -EPIPE), and the last of them frees the channel (see the file comment). */
    _Atomic uint32_t *held = chan_lock_here(c);
    close_locked(c);
    bool now = c->nwaiters == 0;
    if (!now)
        c->orphaned = 1;
    chan_unlock(held);
    if (now)
        chan_free(c);
}

/* A waiter of c has unlinked itself (under the lock). Returns true if the caller must free
 * c once it has unlocked it: it was the last waiter of an orphaned channel. */
static inline bool waiter_left(weft_chan *c)
{
    return --c->nwaiters == 0 && weft_unlikely(c->orphaned);
}

size_t weft_chan_len(const weft_chan *c)
{
    /* One word, read without the lock (a figure that may be stale as soon as it is read);
     * written under the lock with relaxed atomic stores (set_len). In the lock-free mode, the
     * positions claimed, at most cap. */
    if (!c)
        return 0;
    const lf_ring *q = atomic_load_explicit(&((weft_chan *)c)->lf, memory_order_acquire);
    if (q) {
        /* acquire: the tail read after it is not older than it (else an empty ring could
         * read as full, its difference wrapped). */
        uint64_t h = atomic_load_explicit(&((lf_ring *)q)->head, memory_order_acquire);
        uint64_t n = (atomic_load_explicit(&((lf_ring *)q)->tail, memory_order_relaxed) >> 1) - h;
        return n > q->cap ? q->cap : (size_t)n;
    }
    return __atomic_load_n(&c->len, __ATOMIC_RELAXED);
}

weft__worker *weft__chan_bias_owner(weft_chan *c)
{
    return atomic_load_explicit(&c->bias.owner, memory_order_relaxed);
}

bool weft__chan_lock_free(weft_chan *c)
{
    return atomic_load_explicit(&c->lf, memory_order_acquire) != NULL;
}

size_t weft_chan_cap(const weft_chan *c)
{
    if (c && c->unbounded)
        return SIZE_MAX; /* c->cap is the ring's size now, changed under the lock */
    return c ? c->cap : 0;
}

/* 16 values: the first ring of an unbounded channel, doubled as it fills. */
#define UNBOUNDED_CAP0 16

int weft_chan_create_unbounded(weft_chan **out, size_t elem_size, size_t max_len)
{
    if (!out)
        return -EINVAL;
    if (max_len == 0)
        max_len = SIZE_MAX;
    /* A channel of 0-byte values counts them: its one empty slot is every slot. */
    size_t cap0 = elem_size == 0 ? max_len : (max_len < UNBOUNDED_CAP0 ? max_len : UNBOUNDED_CAP0);
    weft_chan *c;
    int r = weft_chan_create(&c, elem_size, elem_size == 0 ? 0 : cap0);
    if (r < 0)
        return r;
    if (elem_size == 0)
        c->cap = cap0;
    c->unbounded = true;
    c->lf_tried = true; /* its ring grows under the lock */
    c->max_len = max_len;
    *out = c;
    return 0;
}

int weft_chan_close(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    _Atomic uint32_t *held = chan_lock_here(c);
    int r = close_locked(c);
    chan_unlock(held);
    return r;
}

/* Closes c (locked) and wakes its waiters. Returns 0, or -EPIPE if it was closed already. */
static int close_locked(weft_chan *c)
{
    if (c->closed)
        return -EPIPE;
    c->closed = 1;
    if (c->lf_on) {
        /* A push not yet claimed fails from now on; one claimed is waited for (lf_settle). */
        lf_ring *q = lf_of(c);
        atomic_fetch_or_explicit(&q->tail, TAIL_CLOSED, memory_order_seq_cst);
        lf_settle(NULL, c, q);
        return 0;
    }
    /* Receivers get -EPIPE only when nothing is buffered, which is the case whenever some
     * are waiting; senders always do. */
    chan_waiter *wt;
    while ((wt = take_live(&c->recvq)) != NULL)
        complete(NULL, c, wt, -EPIPE); /* weft_chan_release may run on any thread */
    while ((wt = take_live(&c->sendq)) != NULL)
        complete(NULL, c, wt, -EPIPE);
    return 0;
}

/* The value pointer to copy through: NULL is allowed for 0-byte values only. */
static inline bool elem_ok(const weft_chan *c, void **elem)
{
    if (weft_likely(*elem != NULL))
        return true;
    if (c->elem_size != 0)
        return false;
    *elem = zero_elem;
    return true;
}

WEFT_NOINLINE int weft_chan_try_send(weft_chan *c, const void *elem)
{
    if (!c || !elem_ok(c, (void **)&elem))
        return -EINVAL;
    /* The worker for the lock's bias only: the wake keeps the general path's order, as
     * before the bias (a try call's wake is not a hand-off to run next). */
    lf_ring *q = atomic_load_explicit(&c->lf, memory_order_acquire);
    int r;
    if (q && (r = lf_fast(NULL, c, q, (void *)elem, 1)) <= 0)
        return r; /* the ring's way, nobody waiting */
    _Atomic uint32_t *held = chan_lock_op(c, weft__worker_current());
    r = do_send(NULL, c, elem, true);
    chan_unlock(held);
    return r;
}

WEFT_NOINLINE int weft_chan_try_recv(weft_chan *c, void *elem)
{
    if (!c || !elem_ok(c, &elem))
        return -EINVAL;
    /* The worker for the lock's bias only: the wake keeps the general path's order, as
     * before the bias (a try call's wake is not a hand-off to run next). */
    lf_ring *q = atomic_load_explicit(&c->lf, memory_order_acquire);
    int r;
    if (q && (r = lf_fast(NULL, c, q, elem, 0)) <= 0)
        return r; /* the ring's way, nobody waiting */
    _Atomic uint32_t *held = chan_lock_op(c, weft__worker_current());
    r = do_recv(NULL, c, elem, true);
    chan_unlock(held);
    return r;
}

static bool fired(const wait_done *d)
{
    return atomic_load_explicit(&d->fired, memory_order_relaxed);
}

/* Parks until `d` fires or the deadline/cancellation; entered and left with the waiter's
 * lock(s) held (`unlock(lock)` releases them, `relock(lock)` takes them again). Returns d's
 * index, or the park's error when d did not fire: a completion that raced the deadline or
 * the cancellation wins. The caller unlinks its waiters afterwards. */
static int wait_cases(weft__worker *w, weft_task *t, wait_done *d, int kind, const void *what,
                      int64_t deadline, void (*unlock)(void *), void (*relock)(void *), void *lock)
{
    weft__wait wr = {
        .kind = kind, .what = what, .deadline = deadline, .unlock = unlock, .lock = lock};
    int r = 0;
    while (!fired(d)) {
        /* Under the lock(s), this run's epoch: see the file comment. */
        d->waker = weft__waker_of(t);
        /* The commonest wait (no deadline) takes the short park. */
        r = deadline == WEFT_FOREVER ? weft__park_forever_unlock(w, kind, what, unlock, lock)
                                     : weft__park(w, &wr);
        w = t->worker; /* see weft__park: re-read after the switch */
        relock(lock);
        if (r < 0)
            break;
    }
    return fired(d) ? d->index : r;
}

/* block_on's first step in this mode (locked, its waiter just linked): the waiter published,
 * one more look (see the handshake). True if the value went or came after all: the waiter is
 * then gone, the lock released and the channel freed if it was the orphan's last waiter. */
static WEFT_NOINLINE bool lf_block_done(weft__worker *self, weft_chan *c, _Atomic uint32_t *held,
                                        chan_waiter *wt, void *elem, int is_send)
{
    /* Behind earlier waiters it parks at once: `state` said so before it came, so every value
     * or room that comes from now on is settled, for them first (the FIFO of waiters). */
    if (first_live(is_send ? &c->sendq : &c->recvq) != wt)
        return false;
    if (lf_before_park(c, elem, is_send) < 0)
        return false;
    weft__list_remove(&wt->link);
    bool last = waiter_left(c);
    lf_done(self, c, lf_of(c));
    chan_unlock(held);
    if (last)
        chan_free(c);
    return true;
}

/* block_on's settle as its waiter leaves (locked). */
static WEFT_NOINLINE void lf_leave(weft__worker *self, weft_chan *c)
{
    lf_done(self, c, lf_of(c));
}

/* Claimed and not yet told how (fired 1, see complete): the completer holds c's lock and is
 * a few instructions from its store. c may be gone after it: waits on d alone. Returns the
 * store's value (2 or 4). Out of line: block_on's common path never spins. */
static WEFT_NOINLINE int wait_told(wait_done *d)
{
    int f;
    for (unsigned spins = 0; (f = atomic_load_explicit(&d->fired, memory_order_acquire)) == 1;)
        if (++spins % 128 == 0)
            sched_yield(); /* the completer's thread may have been preempted */
        else
            weft__cpu_relax();
    return f;
}

/* The waiting half of a send or receive, entered with c locked (`held`, chan_lock's word)
 * by the task t (w's current one, or on a plain thread, w NULL, the thread's stand-in);
 * returns with it unlocked. Inline in block_send and block_recv, which fold is_send. */
static inline __attribute__((always_inline)) int block_on(weft__worker *w, weft_task *t,
                                                          weft_chan *c, _Atomic uint32_t *held,
                                                          void *elem, int is_send,
                                                          int64_t deadline)
{
    /* Only the fields read before a completer writes them: `result` is stored by complete()
     * before `fired` says so, and read only after that; `index` is a select's (complete()
     * neither reads the node's nor writes the record's for a plain waiter); `waker` is stored
     * before each park, under the lock that every completer holds, so none reads it unset. */
    wait_done d;
    atomic_init(&d.fired, 0);
    d.ncases = 1;
    d.plain = true;
    chan_waiter wt;
    wt.elem = elem;
    wt.done = &d;
    weft__list_push_back(is_send ? &c->sendq : &c->recvq, &wt.link);
    c->nwaiters++;
    if (weft_unlikely(c->lf_on) && lf_block_done(w, c, held, &wt, elem, is_send))
        return 0;
    int kind = is_send ? WEFT__WAIT_CHAN_SEND : WEFT__WAIT_CHAN_RECV;
    for (;;) {
        d.waker = weft__waker_of(t); /* under the lock: see the file comment */
        /* The commonest wait (no deadline) takes the short park, and builds no wait record.
         * r is then 1 until the outcome needs it: a completer's wake (fired 2) returns
         * without reading the cancellation. */
        int r;
        if (deadline == WEFT_FOREVER && weft_likely(w && !weft__task_cancelled(t) && !w->tracer)) {
            t = weft__park_forever_short(w, t, kind, c, weft__park_spin_unlock, (void *)held);
            r = 1;
        } else if (deadline == WEFT_FOREVER) {
            r = weft__park_forever_spin(w, kind, c, held);
        } else {
            weft__wait wr = {.kind = kind,
                             .what = c,
                             .deadline = deadline,
                             .unlock = weft__park_spin_unlock,
                             .lock = (void *)held};
            r = weft__park(w, &wr);
        }
        /* Woken by the completer, which counted us out: its store was its last touch of d,
         * wt and this task, and c is not ours to touch any more. The commonest outcome,
         * tested first. */
        int f = atomic_load_explicit(&d.fired, memory_order_acquire);
        if (weft_likely(f == 2))
            return d.result;
        if (f == 1 && (f = wait_told(&d)) == 2)
            return d.result;
        w = t->worker; /* see weft__park: re-read after the switch */
        if (r > 0)
            r = weft__task_cancelled(t) ? -ECANCELED : 0;
        /* Otherwise still counted in c's waiters, so c is there even if its last handle went.
         * Under the lock fired is 0 (not completed) or 4 (completed while we were awake). */
        held = chan_lock(c, w);
        bool done = atomic_load_explicit(&d.fired, memory_order_relaxed) == 4;
        if (done || r < 0) {
            if (!done)
                weft__list_remove(&wt.link);
            bool last = waiter_left(c);
            if (weft_unlikely(c->lf_on))
                lf_leave(w, c);
            chan_unlock(held);
            if (last)
                chan_free(c);
            return done ? d.result : r;
        }
        /* Woken at this run's epoch by another waker: park again, the lock held. */
    }
}

/* block_on for a send and for a receive. Out of line: half the operations of a hand-off never
 * wait, and they then save none of its registers. Six arguments, all in registers, so that
 * their callers reach them by a tail call. */
static WEFT_NOINLINE int block_send(weft__worker *w, weft_task *t, weft_chan *c,
                                    _Atomic uint32_t *held, void *elem, int64_t deadline)
{
    return block_on(w, t, c, held, elem, 1, deadline);
}

static WEFT_NOINLINE int block_recv(weft__worker *w, weft_task *t, weft_chan *c,
                                    _Atomic uint32_t *held, void *elem, int64_t deadline)
{
    return block_on(w, t, c, held, elem, 0, deadline);
}

/* blocking_op on a channel not biased to the caller's worker: the lock-free path first when
 * the channel has its ring, else the shared lock (which moves a channel whose bias was given
 * up to its ring: chan_lock_op). Out of line: the biased path stays as it was. */
static WEFT_NOINLINE int blocking_shared(weft__worker *w, weft_task *t, weft_chan *c, void *elem,
                                         int is_send, int64_t deadline)
{
    int r;
    lf_ring *q = atomic_load_explicit(&c->lf, memory_order_acquire);
    if (q && (r = lf_fast(w, c, q, elem, is_send)) <= 0)
        return r;
    _Atomic uint32_t *held = chan_lock_op(c, w);
    r = is_send ? do_send(w, c, elem, true) : do_recv(w, c, elem, true);
    if (r != -EAGAIN) {
        chan_unlock(held);
        return r;
    }
    return is_send ? block_send(w, t, c, held, elem, deadline)
                   : block_recv(w, t, c, held, elem, deadline);
}

/* blocking_op on a plain thread outside every runtime (blocking_begin_any's case): never
 * biased, so the shared path. Out of line, so that the worker's path knows its worker is
 * there. */
static WEFT_NOINLINE int blocking_thread(weft_chan *c, void *elem, int is_send, int64_t deadline)
{
    if (!c || !elem_ok(c, &elem))
        return -EINVAL;
    weft_task *t = weft__thread_task();
    if (weft__task_cancelled(t))
        return -ECANCELED;
    return blocking_shared(NULL, t, c, elem, is_send, deadline);
}

/* Inline: a send and a receive each get their own copy, with is_send folded. */
static inline __attribute__((always_inline)) int blocking_op(weft_chan *c, void *elem, int is_send,
                                                             int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    if (weft_unlikely(!w))
        return blocking_thread(c, elem, is_send, deadline);
    weft_task *t = NULL;
    int r;
    /* From here w is a worker (blocking_begin_on keeps it, or the chaos yield's). */
    w = weft__blocking_begin_on(w, &t, false, &r);
    if (!t)
        return r;
    if (!c || !elem_ok(c, &elem))
        return -EINVAL;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    if (weft__bias_enter_owned(&c->bias, w)) {
        /* Biased: only this worker has used the channel lately, so it is not in the lock-free
         * mode (a move needs the bias given up first), and no test of it is needed here. */
        _Atomic uint32_t *held = &c->bias.busy;
        r = is_send ? do_send(w, c, elem, false) : do_recv(w, c, elem, false);
        if (r != -EAGAIN) {
            chan_unlock(held);
            return r;
        }
        return is_send ? block_send(w, t, c, held, elem, deadline)
                       : block_recv(w, t, c, held, elem, deadline);
    }
    return blocking_shared(w, t, c, elem, is_send, deadline);
}

/* The value-copying entry points are never inlined into a caller: under LTO (a program
 * linked with the static library and -flto) GCC would otherwise see copy_elem's 8-byte path
 * write into, say, the caller's 4-byte int and warn (-Wstringop-overflow), though that path
 * runs only for 8-byte channels. */
WEFT_NOINLINE int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline)
{
    return blocking_op(c, (void *)elem, 1, deadline);
}

WEFT_NOINLINE int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline)
{
    return blocking_op(c, elem, 0, deadline);
}

/* ---- Select ----------------------------------------------------------------------------- */

/* The distinct channels of a select, in address order: the order every select locks them
 * in, so two selects over the same channels cannot deadlock once the locks are real; and
 * the words that release the locks taken (chan_lock). */
typedef struct chan_set {
    weft_chan **v;
    _Atomic uint32_t **held;
    size_t n;
} chan_set;

static void set_build(chan_set *set, const weft_case *cases, size_t n)
{
    set->n = 0;
    for (size_t i = 0; i < n; i++) {
        weft_chan *c = cases[i].op == WEFT_CASE_DEFAULT ? NULL : cases[i].chan;
        if (!c)
            continue;
        /* Insertion into the sorted prefix (selects are small; duplicates kept once). */
        size_t j = set->n;
        while (j > 0 && (uintptr_t)set->v[j - 1] > (uintptr_t)c)
            j--;
        if (j > 0 && set->v[j - 1] == c)
            continue;
        memmove(&set->v[j + 1], &set->v[j], (set->n - j) * sizeof set->v[0]);
        set->v[j] = c;
        set->n++;
    }
}

/* By the thread whose worker is `self`: the select's task's, which a park may have moved. */
static void set_lock(const chan_set *set, weft__worker *self)
{
    for (size_t i = 0; i < set->n; i++)
        set->held[i] = chan_lock(set->v[i], self);
}

static void set_unlock(const chan_set *set)
{
    for (size_t i = set->n; i-- > 0;)
        chan_unlock(set->held[i]);
}

static void set_lock_cb(void *set)
{
    set_lock(set, weft__worker_current());
}

static void set_unlock_cb(void *set)
{
    set_unlock(set);
}

/* Before a select waits (locked): the channels in the lock-free mode told that it will, so
 * that a lock-free call from now on settles under the lock; the caller then looks at the cases
 * once more (the handshake of "Contended channels"). Returns whether there was any. */
static bool set_arm(const weft_case *cases, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        weft_chan *c = cases[i].chan;
        if (!c || cases[i].op == WEFT_CASE_DEFAULT || !c->lf_on)
            continue;
        uint32_t bit = cases[i].op == WEFT_CASE_SEND ? LF_SENDQ : LF_RECVQ;
        atomic_fetch_or_explicit(&lf_of(c)->state, bit, memory_order_seq_cst);
        any = true;
    }
    return any;
}

/* Before a select unlocks: each lock-free channel's `state` back to its queues. */
static void set_refresh(const chan_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i]->lf_on)
            lf_refresh(set->v[i], lf_of(set->v[i]));
}

/* A random number for select's choice: the worker's generator, or on a plain thread one of
 * the thread's own (a xorshift in its storage: no state shared between threads). */
static uint64_t pick_random(weft__worker *w)
{
    if (w)
        return weft__worker_random(w);
    static __thread uint64_t x;
    if (!x)
        x = (uint64_t)weft__clock_ns() | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
}

int weft__chan_select(weft_case *cases, size_t n, int64_t deadline)
{
    weft_task *t = NULL;
    int r;
    weft__worker *w = weft__blocking_begin_any(&t, &r);
    if (!t)
        return r;
    if (!cases || n == 0 || n > MAX_CASES)
        return -EINVAL;
    int dflt = -1;
    for (size_t i = 0; i < n; i++) {
        int op = cases[i].op;
        if (op == WEFT_CASE_DEFAULT) {
            if (dflt >= 0)
                return -EINVAL;
            dflt = (int)i;
        } else if ((op != WEFT_CASE_SEND && op != WEFT_CASE_RECV) ||
                   (cases[i].chan && !cases[i].elem && cases[i].chan->elem_size != 0)) {
            return -EINVAL;
        }
    }
    if (weft__task_cancelled(t))
        return -ECANCELED;

    /* One allocation for the waiter nodes and the lock order, on the stack when small. */
    chan_waiter small_ws[STACK_CASES], *ws = small_ws;
    weft_chan *small_set[STACK_CASES];
    _Atomic uint32_t *small_held[STACK_CASES];
    chan_set set = {small_set, small_held, 0};
    void *heap = NULL;
    if (n > STACK_CASES) {
        heap = weft__malloc(w, n * (sizeof *ws + sizeof *set.v + sizeof *set.held));
        if (!heap)
            return -ENOMEM;
        ws = heap;
        set.v = (weft_chan **)(ws + n);
        set.held = (_Atomic uint32_t **)(set.v + n);
    }
    set_build(&set, cases, n);
    set_lock(&set, w);
    /* Our waiter nodes are counted in their channels' `nwaiters` from their first link to the
     * end, a look again after a settle's -EAGAIN included: no channel of the set can be freed
     * under us meanwhile (its last release finds us counted, and leaves it to us), and the
     * locks are held throughout. */
    bool counted = false;
    wait_done d;
    int idx;
    for (;;) {
        bool armed = false;
        idx = -1;
        /* Pick uniformly among the ready cases (reservoir sampling), then complete that one.
         * With every lock of the set held, a buffer's state and a close stay as seen, but a
         * waiter of another select counted as ready (first_live) can still be claimed through
         * that select's other channels, whose locks we do not hold, and a lock-free call can
         * take a ring's value or room: then the completion finds nothing (-EAGAIN; the value
         * neither sent nor received), and we look again. Each such miss unlinks the stale
         * waiter or follows another call's progress, so this ends. */
        for (;;) {
            size_t nready = 0, pick = 0;
            for (size_t i = 0; i < n; i++) {
                weft_chan *c = cases[i].chan;
                if (!c || cases[i].op == WEFT_CASE_DEFAULT)
                    continue;
                int ready = cases[i].op == WEFT_CASE_SEND ? send_ready(c) : recv_ready(c);
                if (ready && pick_random(w) % ++nready == 0)
                    pick = i;
            }
            if (!nready && dflt < 0) {
                LF_HOOK(WEFT__LF_SELECT_EMPTY);
                if (!armed && set_arm(cases, n)) {
                    armed = true;
                    continue; /* one more look, now that lock-free calls will settle */
                }
                break; /* to the wait */
            }
#ifdef WEFT_TESTING
            if (nready && n > 8 && w && w->select_pause_ns > 0) {
                struct timespec ts = {0, (long)(w->select_pause_ns % 1000000000)};
                nanosleep(&ts, NULL);
            }
#endif
            if (nready) {
                weft_chan *c = cases[pick].chan;
                void *elem = cases[pick].elem ? cases[pick].elem : zero_elem;
                LF_HOOK(WEFT__LF_SELECT_PICKED);
                r = cases[pick].op == WEFT_CASE_SEND ? do_send(w, c, elem, true)
                                                     : do_recv(w, c, elem, true);
                if (r == -EAGAIN) {
                    /* The miss's own settle put `state` back to the queues, without the
                     * arm: arm again before the wait. */
                    armed = false;
                    continue;
                }
                cases[pick].result = r; /* 0, -EPIPE, or an unbounded send's -ENOMEM */
                idx = (int)pick;
            } else {
                cases[dflt].result = 0;
                idx = dflt;
            }
            break;
        }
        if (idx >= 0)
            break;

        /* Nothing ready: a waiter on every channel, all sharing one done record. */
        d = (wait_done){.ncases = (int)n};
        for (size_t i = 0; i < n; i++) {
            void *elem = cases[i].elem ? cases[i].elem : zero_elem;
            ws[i] = (chan_waiter){.elem = elem, .done = &d, .index = (int)i};
            weft__list_init(&ws[i].link);
            weft_chan *c = cases[i].chan;
            if (c) {
                weft__list_push_back(cases[i].op == WEFT_CASE_SEND ? &c->sendq : &c->recvq,
                                     &ws[i].link);
                if (!counted)
                    c->nwaiters++;
            }
        }
        counted = true;
        r = wait_cases(w, t, &d, WEFT__WAIT_SELECT, cases, deadline, set_unlock_cb, set_lock_cb,
                       &set);
        w = t->worker;
        for (size_t i = 0; i < n; i++)
            weft__list_remove(&ws[i].link); /* harmless for nodes already unlinked */
        /* Claimed by a settle whose pop or push then lost to a lock-free call: look again. */
        if (r >= 0 && d.result == -EAGAIN)
            continue;
        idx = r;
        if (r >= 0)
            cases[r].result = d.result;
        break;
    }
    bool orphans = false;
    for (size_t i = 0; counted && i < n; i++)
        if (cases[i].op != WEFT_CASE_DEFAULT && cases[i].chan && waiter_left(cases[i].chan)) {
            ws[i].index = -1; /* the node is done with: marks the case's channel to free */
            orphans = true;
        }
    set_refresh(&set);
    set_unlock(&set);
    /* Orphaned channels whose last waiter this select was, decided under their locks (each
     * once: only the decrement to 0 says so). Once unlocked, another channel of the set may
     * be freed by its own last waiter at any moment: none is read again. */
    for (size_t i = 0; orphans && i < n; i++)
        if (ws[i].index == -1)
            chan_free(cases[i].chan);
    weft__free(w, heap);
    return idx;
}
