/* internal.h: what every module of src/ shares: the attribute macros, the sanitizer
 * detection, and the forward declarations of the runtime's records. Each module declares its
 * own state and calls in its own small header (worker.h, task.h, sched.h, ...); this file
 * only gathers what they all need. core.h includes the core modules' headers at once. */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The library's own spawns record no site (its files are not where a user looks), and the
 * definitions of weft_spawn and weft_spawn_on must not be macro-expanded. */
#define WEFT_NO_SPAWN_SITES 1
#include "weft.h"

#define WEFT_COLD __attribute__((cold))
/* A counter that only the metrics read (weft_stats, /metrics), not the runtime itself: compiled
 * out in a WEFT_NO_METRICS build (cmake -DWEFT_METRICS=OFF), which exists only to measure
 * what the metrics cost (bench/run_metrics_cost.sh). The counters the runtime reads itself
 * (switches for the stall detector, resumes for the deadlock report) stay. */
#ifdef WEFT_NO_METRICS
#define WEFT_COUNT(stmt) ((void)0)
#else
#define WEFT_COUNT(stmt) ((void)(stmt))
#endif
#define WEFT_NOINLINE    __attribute__((noinline))
#define weft_likely(x)   __builtin_expect(!!(x), 1)
#define weft_unlikely(x) __builtin_expect(!!(x), 0)

/* A prefetch the compiler keeps: GCC 12 drops __builtin_prefetch from the scheduler's pick
 * (it counts the call as free of side effects and deletes the helper inlined around it). A
 * prefetch never faults, so any address will do, a stale one included. */
static inline __attribute__((always_inline)) void weft__prefetch(const void *p)
{
#if defined(__x86_64__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
    __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

/* The same, for a line about to be written: fetched for ownership, so that the store does
 * not wait for another CPU's copy to be invalidated. (x86's prefetchw is a no-op on CPUs
 * without it.) */
static inline __attribute__((always_inline)) void weft__prefetchw(const void *p)
{
#if defined(__x86_64__)
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
    __asm__ volatile("prfm pstl1keep, %0" : : "Q"(*(const char *)p));
#else
    __builtin_prefetch(p, 1);
#endif
}

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

/* A full fence between a seq_cst store and a seq_cst load of another variable, on the
 * cross-thread hand-shakes where each side stores its flag and then loads the other's (the
 * inbox's `sleeping`, the message rings' `pending` and `room_wanted`). C11 already orders
 * them; the fence is for what runs aarch64 code without honouring a store-release followed
 * by a load-acquire (qemu-user on an x86 host, which the cross-test uses: a message or a
 * wake was lost there about once in ten runs of tests/tsan/shared.c without it). Not under
 * TSan, which does not model fences and warns about them; the atomics tell it the same. */
static inline void weft__fence_sc(void)
{
#if !defined(WEFT_TSAN) && !defined(__x86_64__)
    /* (x86_64: a seq_cst store is an xchg and a CAS a locked cmpxchg, full barriers already.) */
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

typedef struct weft__runtime weft__runtime;
typedef struct weft__worker weft__worker;
typedef struct weft__stack weft__stack;
typedef struct weft__io weft__io;
typedef struct weft__pool weft__pool;

#endif
