/* Timers (timer.c): a 4-ary min-heap of absolute deadlines per worker. A timer node belongs
 * to its waiter (often on a coroutine stack); the heap holds its key and a pointer to it. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include "internal.h"

typedef struct weft__timer {
    size_t index; /* 1 + its slot in the heap, 0 when not armed; owner: worker */
    weft_waker waker;
} weft__timer;

typedef struct weft__timer_entry {
    int64_t deadline;
    uint64_t seq; /* insertion order: equal deadlines fire first-in first-out */
    weft__timer *timer;
} weft__timer_entry;

/* The worker's timer part. owner: worker (a timer is armed and stopped only by the worker
 * whose heap holds it; see docs/architecture.md, "migration rules"). */
typedef struct weft__timer_heap {
    weft__timer_entry *v;
    size_t n, cap;
    uint64_t seq;
    uint64_t polled_at; /* the worker's system-call count when weft__timers_poll last read
                         * the clock */
    /* Resumes without a system call between two reads (worker.h, weft__timers_poll): the
     * picks since the tick's or the last poll's read, and how many make the next read,
     * adapted at each read so that one comes about every WEFT__TIMER_POLL_NS of resumes. */
    uint32_t npicks, poll_every;
} weft__timer_heap;

/* The most time a due timer waits for a clock read while resumes make no system call (1,000
 * yielders; an io_uring server, whose reads and sends make none): 4 us, so that a sleeper
 * runs within sched_latency's 10 us, for a read (~20 ns) every 4 us of work (0.5%). */
#define WEFT__TIMER_POLL_NS 4000

/* Arms (or re-arms) t. Returns 0 or -ENOMEM (the heap could not grow). */
int weft__timer_start(weft__worker *w, weft__timer *t, int64_t deadline, weft_waker wk);
void weft__timer_stop(weft__worker *w, weft__timer *t);
/* Fires every timer due at `now`, and puts the tasks they wake at the head of the ready
 * queue (see timer.c); returns how many. */
size_t weft__timers_run(weft__worker *w, int64_t now);
/* The nearest timer's deadline, or INT64_MAX if none is armed. Owner thread. */
static inline int64_t weft__timers_first(const weft__timer_heap *h)
{
    return h->n ? h->v[0].deadline : INT64_MAX;
}
/* Nanoseconds from `now` until the nearest timer (0 if due), or -1 if none. */
int64_t weft__timers_next(weft__worker *w, int64_t now);
void weft__timers_fini(weft__worker *w);
/* weft__timers_poll's clock read and firing (worker.h). */
void weft__timers_poll_clock(weft__worker *w);
/* The tick's clock read: sets w->now and counts the picks without a read from it. */
void weft__timers_ticked(weft__worker *w, int64_t now);

#endif
