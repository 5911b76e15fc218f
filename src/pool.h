/* The blocking pool (pool.c): one per runtime, created at first use. */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include "internal.h"

void weft__pool_fini(weft__runtime *rt);
/* Runs fn(arg) on a pool thread for the stackful task t of w (the caller has checked it may
 * block) and waits for it whatever comes: no deadline, and a cancel does not withdraw it
 * (weft_block_in_place's path on io_uring). Returns 0, or -EAGAIN if no thread could start. */
int weft__pool_run(weft__worker *w, weft_task *t, weft_fn fn, void *arg, void **result);
/* weft_blocking for a job that may be left behind, from a stackful task: fn(arg) runs on a
 * pool thread, and a deadline or a cancel ends the wait at once also while it runs (a
 * passed deadline before anything is queued). Returns 0 once fn has returned (arg is the
 * caller's again, holding fn's results), or -ETIMEDOUT, -ECANCELED, -EPERM, -ENOMEM,
 * -EAGAIN: arg then goes to abandon(arg), once, at once if fn never ran, or on the pool
 * thread when fn returns. So arg must be the caller's to give away (allocated, pointing
 * into no frame), and abandon frees it. */
int weft__pool_run_abandonable(weft_fn fn, void *arg, void (*abandon)(void *arg), int64_t deadline);
/* The pool's thread and job counts into out. Takes no lock (a tracer's hook may read the
 * metrics under the pool's mutex or the runtime's lock). Any thread, while rt stands. */
void weft__pool_stats(weft__runtime *rt, weft_stats *out);

#endif
