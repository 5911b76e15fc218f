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
} weft__timer_heap;

/* Arms (or re-arms) t. Returns 0 or -ENOMEM (the heap could not grow). */
int weft__timer_start(weft__worker *w, weft__timer *t, int64_t deadline, weft_waker wk);
void weft__timer_stop(weft__worker *w, weft__timer *t);
/* Fires every timer due at `now`, and puts the tasks they wake at the head of the ready
 * queue (see timer.c); returns how many. */
size_t weft__timers_run(weft__worker *w, int64_t now);
/* Nanoseconds from `now` until the nearest timer (0 if due), or -1 if none. */
int64_t weft__timers_next(weft__worker *w, int64_t now);
void weft__timers_fini(weft__worker *w);
/* weft__timers_poll's clock read and firing (worker.h). */
void weft__timers_poll_clock(weft__worker *w);

#endif
