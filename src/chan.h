/* What chan.c offers the rest of weft beyond the public API. */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include "internal.h"

/* weft_select over channel cases only (SEND, RECV, DEFAULT; any other op is -EINVAL): the
 * select every general select (select.c) comes down to. Any thread. */
int weft__chan_select(weft_case *cases, size_t n, int64_t deadline);

/* The worker c's lock is biased to (bias_lock.h), or NULL: for the tests. Any thread; a
 * figure that may be stale as soon as it is read. */
weft__worker *weft__chan_bias_owner(weft_chan *c);

/* Whether c's values have moved to its lock-free ring (chan.c, "Contended channels"): for
 * the tests. Any thread. */
bool weft__chan_lock_free(weft_chan *c);

#endif
