/* What sync.c offers the rest of weft beyond the public API. */
#ifndef WEFT_SYNC_INTERNAL_H
#define WEFT_SYNC_INTERNAL_H

#include "internal.h"

/* Waits for the wait group to reach zero, whatever the caller's deadline or cancel flag. */
void weft__waitgroup_wait_all(weft_waitgroup *wg);

/* The task (or plain thread's stand-in) holding the mutex `m` now, or NULL; a snapshot, for
 * the task dump. Any thread. */
const weft_task *weft__sync_owner(const void *m);

#endif
