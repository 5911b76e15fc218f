/* bias_lock.h: a spinlock that one worker may take without an atomic read-modify-write,
 * for the channels' locks (chan.c).
 *
 * Why. A channel hand-off between two tasks of one worker took four locked instructions per
 * round trip for the channel's lock alone (one xchg per send or receive), about 6 ns each on
 * the CPU measured (docs/performance.md, session 29): a fifth of chan_pingpong's time. Most
 * channels are used by the tasks of one worker for their whole life.
 *
 * How. The lock starts shared: every holder takes `spin` (an xchg). A worker that takes it
 * `bias_after` times in a row (1,024 by default: enough hand-offs to pay for one revocation)
 * becomes its owner. From then on the owner's thread enters by storing `busy` = 1 and
 * checking that it still owns the lock, with only a compiler barrier between the two; it
 * leaves by storing `busy` = 0 (release). Any other thread (another worker, a plain thread)
 * takes `spin`, and finding an owner, revokes the bias for good: it clears `owner`, calls
 * membarrier(2)'s private expedited command, which makes every thread of the process that
 * is on a CPU run a full barrier, and waits until `busy` is 0 (acquire). This is the
 * asymmetric Dekker of fence.h: the owner stores `busy` then loads `owner`, the revoker stores
 * `owner` then loads `busy`, and the membarrier between the revoker's two steps orders the
 * owner's as a fence would. So either the owner sees no ownership and takes `spin`, or the
 * revoker sees it inside and waits for it to leave; after that the lock is shared for ever.
 * So is a lock whose streaks other threads broke WEFT__BIAS_MAX_BREAKS times (a contended
 * one): it never pays a revocation, and its acquisitions one load more than a spinlock's.
 *
 * Who touches what: `spin` any thread (xchg acquire, store release); `busy` written by the
 * owner's thread only (the thread driving the owner worker: one at a time, relief.c), read by
 * a revoker; `owner` set by the owner under `spin`, cleared by a revoker under `spin`;
 * `last`, `streak`, `breaks` and `never` under `spin`. Never held across a park (the park's
 * unlock releases the word weft__bias_acquire returned) or a system call, except a revoker's
 * membarrier. Only where the runtime registered membarrier and not under ThreadSanitizer,
 * which does not model it (worker.h's `bias_after` is then 0: never biased). */
#ifndef WEFT_BIAS_LOCK_H
#define WEFT_BIAS_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "util/spinlock.h"
#include "worker.h"

/* The bias, beside the lock word it biases (`spin`, in the embedding structure). `owner` is
 * read by every acquisition and written only when the bias is set or revoked; `busy` only by
 * the owner's sections; the rest under `spin` while the lock may still be biased, then only
 * read (`never`). Kept at least a cache line away from `spin` and from what the lock guards
 * (the embedding structure's job: weft__bias_layout below), so that a contended shared lock
 * pays no more line transfers than a plain spinlock would. */
typedef struct weft__bias {
    _Atomic(weft__worker *) owner; /* the worker it is biased to, or NULL */
    _Atomic uint32_t busy;         /* 1 while the owner holds the lock without `spin` */
    uint32_t streak;               /* under spin: how many acquisitions in a row by `last` */
    weft__worker *last;            /* under spin: the worker of the last shared acquisitions */
    uint16_t breaks;               /* under spin: how many times another thread broke a streak */
    bool never;                    /* under spin: shared for ever (revoked, or too many breaks) */
} weft__bias;

/* A lock whose streaks were broken this many times stays shared: a contended lock then takes
 * the shared path as a plain spinlock does, with one more load. */
#define WEFT__BIAS_MAX_BREAKS 16

/* Whether an embedding structure keeps its bias (offset `bias_off`) a line away from its
 * lock word and the fields it guards (offsets `from` to `to`), for a _Static_assert. */
#define weft__bias_layout(bias_off, from, to)                                                      \
    ((bias_off) >= (to) + 64 || (bias_off) + (int)sizeof(weft__bias) + 64 <= (from))

/* Under `spin`, an acquisition by a thread other than the streak's (bias_lock.c): revokes
 * another worker's bias, or starts a new streak, or gives up for good. */
void weft__bias_other(weft__bias *b, weft__worker *w);

/* The owner's way in: true if the calling thread, whose worker is `w` (NULL on a plain
 * thread), now holds the lock biased (release it with &b->busy); false if the lock is not
 * biased to w (then nothing was taken: weft__bias_acquire_shared). */
static inline __attribute__((always_inline)) bool weft__bias_enter_owned(weft__bias *b,
                                                                         weft__worker *w)
{
    if (w && atomic_load_explicit(&b->owner, memory_order_relaxed) == w) {
        atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
        /* A compiler barrier only: the revoker's membarrier is the fence (see above). */
        atomic_signal_fence(memory_order_seq_cst);
        if (weft_likely(atomic_load_explicit(&b->owner, memory_order_relaxed) == w))
            return true;
        atomic_store_explicit(&b->busy, 0, memory_order_release);
    }
    return false;
}

/* Everyone else's way in: takes `spin` (and counts the streak toward a bias, or revokes one).
 * Returns `spin`. */
static inline __attribute__((always_inline)) _Atomic uint32_t *
weft__bias_acquire_shared(weft__bias *b, _Atomic uint32_t *spin, weft__worker *w)
{
    weft__spin_lock(spin);
    if (weft_unlikely(!b->never)) {
        /* The streak's worker: no revocation to make (the bias, if any, is its own). Biased
         * from the next acquisition on: this one releases `spin`. `owner` is set by the owner's
         * own thread, so its fast path reads what it wrote; `spin`'s release publishes it to
         * the others, whose next acquisition then revokes it. */
        if (w && b->last == w) {
            if (++b->streak >= w->bias_after)
                atomic_store_explicit(&b->owner, w, memory_order_relaxed);
        } else {
            weft__bias_other(b, w);
        }
    }
    return spin;
}

/* Takes the lock (the word `spin`, biased by b) for the calling thread, whose worker is `w`
 * (NULL on a plain thread).
 * Returns the word to release with weft__bias_release (or with a park's
 * weft__park_spin_unlock). */
static inline __attribute__((always_inline)) _Atomic uint32_t *
weft__bias_acquire(weft__bias *b, _Atomic uint32_t *spin, weft__worker *w)
{
    if (weft__bias_enter_owned(b, w))
        return &b->busy;
    return weft__bias_acquire_shared(b, spin, w);
}

/* Releases what weft__bias_acquire returned: release, so the next holder (in either mode)
 * sees this section's writes. */
static inline void weft__bias_release(_Atomic uint32_t *held)
{
    atomic_store_explicit(held, 0, memory_order_release);
}

#endif
