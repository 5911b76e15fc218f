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

#ifdef WEFT_TESTING
/* When set, called by a lock-free send or receive (chan.c, "Contended channels") at its
 * windows, on the caller's thread: WEFT__LF_AFTER_LOOK, after its first read of `state` and
 * before its claim; WEFT__LF_BEFORE_STAMP, a push's, after its claim and before its stamp;
 * WEFT__LF_BEFORE_RECHECK, after its push or pop and before its second read of `state`. And
 * by a select, its channels locked: WEFT__LF_SELECT_EMPTY, each time a look found no case
 * ready, before it arms the rings; WEFT__LF_SELECT_PICKED, before it completes the case it
 * chose. The tests stall a thread there to force the interleavings the handshake must
 * survive. NULL by default. */
enum {
    WEFT__LF_AFTER_LOOK = 1,
    WEFT__LF_BEFORE_STAMP = 2,
    WEFT__LF_BEFORE_RECHECK = 4,
    WEFT__LF_SELECT_EMPTY = 8,
    WEFT__LF_SELECT_PICKED = 16
};
extern void (*weft__chan_lf_hook)(int where);
#endif

#endif
