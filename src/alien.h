/* Work from outside (alien.c): the counted handle (weft_runtime) through which threads the
 * runtime did not start spawn tasks onto it, and the handles (weft_handle) through which they
 * join or cancel those tasks. */
#ifndef WEFT_ALIEN_H
#define WEFT_ALIEN_H

#include "internal.h"

/* The runtime stops taking work from outside: later weft_runtime_spawn calls return
 * -ESHUTDOWN. Called once the main task has finished (loop.c), before the shutdown can end,
 * so that everything posted before it is drained by the runtime's quiescence. Any thread. */
void weft__alien_close(weft__runtime *rt);
/* The runtime behind a handle, locked in: while the lock is held (from this call to
 * weft__anchor_unlock) a non-NULL runtime is not freed. NULL once it stopped taking work.
 * Any thread. */
weft__runtime *weft__anchor_lock(weft_runtime *a);
void weft__anchor_unlock(weft_runtime *a);
/* Whether a runtime handle is held besides the runtime's own: a thread outside the runtime
 * may spawn onto it at any time (the deadlock report counts it as an outside source). */
bool weft__runtime_held_outside(weft__runtime *rt);
/* A handle on w's runtime for weft's own use (weft_process: the close of its fds handed to
 * the runtime from another thread), not counted as one held outside; NULL if no memory.
 * Dropped with weft__runtime_release_weak. Owner thread of w. */
weft_runtime *weft__runtime_weak(weft__worker *w);
void weft__runtime_release_weak(weft_runtime *a);
/* Whether `a` is the handle of w's runtime (w may be NULL). */
bool weft__runtime_is(const weft_runtime *a, const weft__worker *w);
/* Drops the runtime's own reference to its handle (the runtime is being freed). */
void weft__alien_fini(weft__runtime *rt);

#endif
