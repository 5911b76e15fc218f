/* Futures' internal contract (future.c): how a future that polls others takes its waker back
 * from them when it is dropped while pending. */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include "internal.h"

/* Polls `f` once more with an empty waker, on behalf of the driver whose latest waker `last`
 * was passed to it (the give-up poll of weft.h, weft_future_ops), so that `f` and the futures
 * it polls keep nothing of that driver. For a combinator's drop, which may be made by a task
 * other than the one that polled it: a promise then takes back the slot holding exactly
 * `last`, not the dropping task's. Nothing is polled when `last` is empty (never polled, or
 * last polled with an empty waker, which took everything back already) or `f` is complete.
 * The caller's thread, as any poll. */
void weft__future_forget(weft_future *f, weft_waker last);

#endif
