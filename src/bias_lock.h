/* bias_lock.h: a spinlock that one worker may take without an atomic read-modify-write,
 * for the channels' locks (chan.c).
 *
 * Why. A channel hand-off between two tasks of one worker took four locked instructions per
 * round trip for the channel's lock alone (one xchg per send or receive), about 6 ns each on
 * the CPUs measured (docs/chan.md): a third of chan_pingpong's time. Most channels are used
 * by the tasks of one worker for their whole life.
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
 *
 * Who touches what: `spin` any thread (xchg acquire, store release); `busy` written by the
 * owner's thread only (the thread driving the owner worker: one at a time, relief.c), read by
 * a revoker; `owner` set by the owner under `spin`, cleared by a revoker under `spin`;
 * `last`, `streak` and `never` under `spin`. Never held across a park (the park's unlock
 * releases the word weft__bias_lock returned) or a system call, except a revoker's
 * membarrier. Only where the runtime registered membarrier and not under ThreadSanitizer,
 * which does not model it (worker.h's `bias_after` is then 0: never biased). */
#ifndef WEFT_BIAS_LOCK_H
#define WEFT_BIAS_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

typedef struct weft__bias_lock {
    _Atomic uint32_t spin;         /* the shared mode's lock word: 0 free, 1 held */
    _Atomic uint32_t busy;         /* 1 while the owner holds the lock without `spin` */
    _Atomic(weft__worker *) owner; /* the worker it is biased to, or NULL */
    weft__worker *last;            /* under spin: the worker of the last shared holders */
    uint32_t streak;               /* under spin: how many times in a row */
    bool never;                    /* under spin: revoked once, shared for ever */
} weft__bias_lock;

/* The shared mode's acquisition (bias_lock.c): takes `spin`, revokes another worker's bias,
 * counts the streak of `w` (NULL: a plain thread). Returns &l->spin. */
_Atomic uint32_t *weft__bias_acquire_shared(weft__bias_lock *l, weft__worker *w);

/* Takes l for the calling thread, whose worker is `w` (NULL on a plain thread). Returns the
 * word to release with weft__bias_release (or with a park's weft__park_spin_unlock). */
static inline __attribute__((always_inline)) _Atomic uint32_t *
weft__bias_acquire(weft__bias_lock *l, weft__worker *w)
{
    if (w && atomic_load_explicit(&l->owner, memory_order_relaxed) == w) {
        atomic_store_explicit(&l->busy, 1, memory_order_relaxed);
        /* A compiler barrier only: the revoker's membarrier is the fence (see above). */
        atomic_signal_fence(memory_order_seq_cst);
        if (weft_likely(atomic_load_explicit(&l->owner, memory_order_relaxed) == w))
            return &l->busy;
        atomic_store_explicit(&l->busy, 0, memory_order_release);
    }
    return weft__bias_acquire_shared(l, w);
}

/* Releases what weft__bias_lock returned: release, so the next holder (in either mode)
 * sees this section's writes. */
static inline void weft__bias_release(_Atomic uint32_t *held)
{
    atomic_store_explicit(held, 0, memory_order_release);
}

#endif
