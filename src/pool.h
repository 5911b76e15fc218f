/* The blocking pool (pool.c): one per runtime, created at first use. */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include "internal.h"

void weft__pool_fini(weft__runtime *rt);
/* Runs fn(arg) on a pool thread for the stackful task t of w (the caller has checked it may
 * block) and waits for it whatever comes: no deadline, and a cancel does not withdraw it
 * (weft_block_in_place's path on io_uring). Returns 0, or -EAGAIN if no thread could start. */
int weft__pool_run(weft__worker *w, weft_task *t, weft_fn fn, void *arg, void **result);
void weft__pool_stats(weft__runtime *rt, weft_stats *out);

#endif
