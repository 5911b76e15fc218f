/* A spinlock word for the short critical sections of channels and sync primitives: a few
 * dozen instructions, never a park, never a system call made while it is held by weft's own
 * code other than a wake's doorbell. Header-only. */
#ifndef WEFT_UTIL_SPINLOCK_H
#define WEFT_UTIL_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__)
    __asm__ volatile("pause");
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Takes the lock: acquire, so the holder sees everything the previous holder wrote. Spins
 * on a plain load between attempts (the line stays shared until it is free), and gives the
 * CPU away after a while, in case the holder's thread was preempted inside its section. */
static inline void weft__spin_lock(_Atomic uint32_t *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++spins > 128) {
                sched_yield();
                spins = 0;
            } else {
                weft__cpu_relax();
            }
        }
    }
}

/* release: the section's writes before the next holder's acquire. */
static inline void weft__spin_unlock(_Atomic uint32_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif
