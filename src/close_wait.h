/* Uncancellable closes (weft_gen_close, weft_group_close) and group waits with no deadline
 * (weft_group_wait) waiting on a worker, kept so that one that would complete a circle of
 * them is refused with -EDEADLK instead of hanging: A closes (or waits for) what B belongs to
 * while B closes (waits for) what A belongs to, each waiting for the other's end for ever.
 * Every task and object of such a circle is one worker's (a generator, a group, their bodies
 * and members are pinned there, and their closers and waiters bound to it), so the list is
 * that worker's and only its thread touches it.
 *
 * A circle is of closes only or of waits only. One with both is no deadlock: somewhere in
 * it a close waits for a task that waits, and the close has cancelled that task (it cancels
 * every task it waits for), whose wait then returns -ECANCELED. So a close's walk passes
 * over waits, and a wait's over closes. */
#ifndef WEFT_CLOSE_WAIT_H
#define WEFT_CLOSE_WAIT_H

#include <stdbool.h>

#include "worker.h"

/* Calls visit(t, ctx) for each task t a close waits for, until one returns true; returns
 * whether one did. */
typedef bool weft__task_visit(const weft_task *t, void *ctx);
typedef bool weft__close_any_waited(const void *waited, weft__task_visit *visit, void *ctx);

/* One close or group wait in progress, on the caller's stack, linked in its worker's `closes`
 * while it waits. It waits for the tasks any_waited(waited, ...) names: a generator's body, a
 * group's members (the module that closes provides it, so this one calls no module above it).
 * The tasks it names stay unreaped while it is linked (the caller waits for them). */
typedef struct weft__close_wait {
    struct weft__close_wait *next;
    const weft_task *closer;
    const void *waited;
    weft__close_any_waited *any_waited;
    /* A weft_group_wait's, not a close's: cancellable, and only one with no deadline is
     * walked or linked (one with a deadline ends by itself: no circle through it is stuck). */
    bool is_wait;
    bool seen; /* scratch of weft__close_would_circle */
} weft__close_wait;

/* Whether rec->closer waiting as `rec` says (not linked yet) would close a circle: the
 * tasks it would wait for wait, through other records of its kind on w (closes for a close,
 * waits for a wait), for the closer itself. A wait whose task was woken or cancelled is passed
 * over: it returns when that task next runs. */
bool weft__close_would_circle(weft__worker *w, const weft__close_wait *rec);
/* Links rec (its fields set) into w's closes while its closer waits; unlink it after. */
void weft__close_wait_push(weft__worker *w, weft__close_wait *rec);
void weft__close_wait_unlink(weft__worker *w, const weft__close_wait *rec);

#endif
