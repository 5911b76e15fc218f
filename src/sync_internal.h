/* What sync.c offers the rest of weft beyond the public API. */
#ifndef WEFT_SYNC_INTERNAL_H
#define WEFT_SYNC_INTERNAL_H

#include "internal.h"

/* Waits for the wait group to reach zero, whatever the caller's deadline or cancel flag. */
void weft__waitgroup_wait_all(weft_waitgroup *wg);

/* The task (or plain thread's stand-in) holding the mutex `m` now, or NULL; a snapshot, for
 * the task dump. Any thread. */
const weft_task *weft__sync_owner(const void *m);
/* Whether the rwlock `m` has read holds not all taken by tasks of the runtime `rt` (a plain
 * thread's or another runtime's among them, which may let go at any time). */
bool weft__sync_read_held_outside(const void *m, const void *rt);

/* Where the lock object `m` (a mutex, rwlock or once) keeps its holder: the address, not the
 * value, for a reader that must not write to `m` or fault on it (cycles.c reads it with
 * process_vm_readv). Any thread; computes an address only. */
const void *const *weft__sync_owner_slot(const void *m);

#endif
