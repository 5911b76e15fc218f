/* Plain threads (thread_park.c): a thread outside every runtime (one the program started, a
 * blocking-pool thread) that blocks on a mutex, a channel or another primitive of sync.c
 * waits as a task does, through a stand-in task record of its own, and sleeps on a futex
 * where a task would switch away. The primitives need nothing else: their waiter nodes name
 * the stand-in, their wakers carry its epoch, and a wake of it (wake.c) is a futex wake. */
#ifndef WEFT_THREAD_PARK_H
#define WEFT_THREAD_PARK_H

#include "task.h"

struct weft__wait;

/* This thread's stand-in, made on first use: a record no worker owns (worker NULL), never
 * queued, never cancelled, in the thread's own storage, so it lives as long as the thread.
 * It owns the mutexes and holds the read locks the thread takes; the thread's exit orphans
 * the holds still on its list (weft__hold), because the storage is the next thread's after
 * it. Calling thread only. */
weft_task *weft__thread_task(void);
/* Whether t is a thread's stand-in (no worker ever owns one). Any thread. */
static inline bool weft__task_is_thread(const weft_task *t)
{
    return __atomic_load_n(&t->worker, __ATOMIC_RELAXED) == NULL;
}
/* The park of a stand-in (the caller is its thread): weft__park's contract without
 * cancellation. Marks it PARKED, calls wr->unlock, sleeps until a wake of this epoch or the
 * deadline. Returns 0 (woken) or -ETIMEDOUT. */
int weft__thread_park(weft_task *t, const struct weft__wait *wr);
/* The second half of a wake that moved the stand-in t from PARKED to READY: wakes its
 * thread (any thread). */
void weft__thread_unpark(weft_task *t);

#endif
