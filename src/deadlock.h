/* The global deadlock report (deadlock.c): a runtime whose every task is parked on something
 * only another of its tasks could end (a channel, a lock, a join...), with nothing outside it
 * that could act (no fd, timer, signal, blocking-pool job, stackless task, thread outside the
 * runtime), says so with a dump of its tasks, and by default exits with status 2 (Go's
 * "all goroutines are asleep"). The loop calls it around a sleep that has no deadline. */
#ifndef WEFT_DEADLOCK_H
#define WEFT_DEADLOCK_H

#include "internal.h"

/* How long every worker must have slept with nothing able to wake it before the verdict: a
 * thread outside the runtime that is about to send on a channel gets this long to show
 * itself. 1 s: far above a thread's start-up, below a person's patience. */
#define WEFT__DEADLOCK_GRACE_NS (1000 * 1000000LL)

/* Sets rt's grace period: WEFT__DEADLOCK_GRACE_NS, or in WEFT_TESTING builds the
 * environment's WEFT_TEST_DEADLOCK_GRACE_NS when it is a positive number (tests of the report
 * wait out the grace once per deadlock; they shorten it, and their "longer than the grace"
 * waits with it). At the runtime's creation, before any worker runs. */
void weft__deadlock_init(weft__runtime *rt);

/* Before a sleep with no deadline (*timeout_ns is -1): counts w among the workers asleep with
 * nothing to do, and if it is the last one, shortens its sleep to the grace period. Returns
 * whether w was counted (then weft__deadlock_after must follow the sleep). Owner thread. */
bool weft__deadlock_before(weft__worker *w, int64_t *timeout_ns);
/* After that sleep: the verdict, if w slept through the whole grace period as the last
 * worker and nothing happened anywhere meanwhile; then uncounts w. Owner thread. */
void weft__deadlock_after(weft__worker *w);

#endif
