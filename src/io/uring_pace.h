/* Submissions paced to the nearest timer (uring.c).
 *
 * The kernel runs a socket's send inside the io_uring_enter that submits it (on loopback the
 * receiver's side too: about 5 us a 64-byte send), and a timer that comes due meanwhile fires
 * only after that call returns: the pick fires due timers after a system call (timer.h). One
 * enter for a tick of 60 sends held a sleeper for 300 us; slices of a fixed 16 SQEs still for
 * 80 (docs/performance.md, "Schedule latency"). So while a timer is armed, the prepared SQEs go
 * to the kernel in slices cut by time: as soon as those prepared would take the kernel up to
 * the nearest deadline, they go, and a tick's last enter hands over only as many as fit before
 * it (at least one). A timer far away leaves the tick one enter, as with none armed.
 *
 * What an SQE takes is learnt from the enters themselves: each enter made while a timer is
 * armed is timed (two clock reads, against its microseconds), and the time per SQE it
 * submitted enters a moving average. owner: the ring's driver (the worker's thread). */
#ifndef WEFT_IO_URING_PACE_H
#define WEFT_IO_URING_PACE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct weft__upace {
    int64_t sqe_ns;     /* the kernel's time per submitted SQE, a moving average (weight 1/8) */
    int64_t entered_ns; /* the clock at the end of the last timed enter */
    bool fixed;         /* sqe_ns set by a test (WEFT_TEST_URING_SQE_NS), not learnt */
} weft__upace;

#define WEFT__UPACE_START_NS 2000   /* the guess before the first timed enter */
#define WEFT__UPACE_MIN_NS   50     /* the average's bounds: an enter cut short by an error */
#define WEFT__UPACE_MAX_NS   200000 /* ... or one the thread was preempted in */

/* fixed_ns: a test's time per SQE, kept whatever the enters take (0: learnt). */
static inline void weft__upace_init(weft__upace *p, int64_t fixed_ns)
{
    p->sqe_ns = fixed_ns > 0 ? fixed_ns : WEFT__UPACE_START_NS;
    p->entered_ns = 0;
    p->fixed = fixed_ns > 0;
}

/* The time to reckon from: the worker's cached clock (read at the tick, and at picks after a
 * system call or every few microseconds of resumes) or the end of the last timed enter,
 * whichever is later. */
static inline int64_t weft__upace_now(const weft__upace *p, int64_t worker_now)
{
    return worker_now > p->entered_ns ? worker_now : p->entered_ns;
}

/* Whether `ready` SQEs would take the kernel over half the time left until `deadline`, from
 * `now`. Half: an enter's time per SQE varies (3-7 us for the same sends), and a slice that
 * aims at the deadline itself ends past it as often as not; halving the time left at each
 * slice costs a few more enters per deadline (about log2 of the time left over an SQE's). */
static inline bool weft__upace_due(const weft__upace *p, unsigned ready, int64_t deadline,
                                   int64_t now)
{
    return 2 * (int64_t)ready * p->sqe_ns >= deadline - now;
}

/* How many of `ready` SQEs fit in half the time left until `deadline`, from `now`: at least
 * one. */
static inline unsigned weft__upace_fit(const weft__upace *p, unsigned ready, int64_t deadline,
                                       int64_t now)
{
    int64_t room = deadline - now;
    if (room < 4 * p->sqe_ns)
        return 1;
    int64_t k = room / (2 * p->sqe_ns);
    return k < (int64_t)ready ? (unsigned)k : ready;
}

/* Records an enter that submitted n SQEs between t0 and t1. */
static inline void weft__upace_record(weft__upace *p, unsigned n, int64_t t0, int64_t t1)
{
    p->entered_ns = t1;
    if (!n || p->fixed)
        return;
    int64_t per = (t1 - t0) / (int64_t)n;
    if (per < WEFT__UPACE_MIN_NS)
        per = WEFT__UPACE_MIN_NS;
    if (per > WEFT__UPACE_MAX_NS)
        per = WEFT__UPACE_MAX_NS;
    p->sqe_ns += (per - p->sqe_ns) / 8;
}

#endif
