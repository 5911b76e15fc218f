/* What task_api.c offers the rest of weft beyond the public API, and the spawn's two halves
 * inline for the modules that wrap a caller's task (groups, alien spawns). */
#ifndef WEFT_TASK_API_H
#define WEFT_TASK_API_H

#include <errno.h>

#include "internal.h"
#include "scheduler.h"
#include "task_new.h"

/* Waits for t to finish whatever the caller's deadline or cancel flag, then reaps it. For
 * owners that must not return before what they own is gone (weft_gen_close). */
void weft__join_uncancellable(weft__worker *w, weft_task *t);

/* weft_spawn's check of its options: 0, or -EINVAL for flags or reserved fields it does not
 * know. Any thread. */
static inline int weft__spawn_opts_check(const weft_spawn_opts *opts)
{
    if (!opts)
        return 0;
    if (opts->flags &
        ~(WEFT_SPAWN_DETACHED | WEFT_SPAWN_NOGUARD | WEFT_SPAWN_CHILD_FIRST | WEFT_SPAWN_PINNED))
        return -EINVAL;
    /* Options of a later version, set: this library cannot honour them. One test of the four
     * words ORed, not four branches. */
    if (((uintptr_t)opts->reserved_[0] | (uintptr_t)opts->reserved_[1] |
         (uintptr_t)opts->reserved_[2] | (uintptr_t)opts->reserved_[3]) != 0)
        return -EINVAL;
    return 0;
}

/* Sends the records of other workers this worker's joins have chained (task.h, reap_out)
 * home, one message per worker. The loop calls it after the tick's resumes, while
 * w->tasks.npending is not 0, so nothing chained outlives the tick. Loop only. */
void weft__task_send_reaps(weft__worker *w);

/* A new task's start (weft_spawn and the modules that wrap it: groups, alien spawns): queued
 * at the tail (READY, never run), or with child_first run at once (weft__run_first), but
 * only from a task that can switch away: from a stackless one the child just queues. Inline:
 * a child-first spawn's own calls are its largest cost after the switches. */
static inline __attribute__((always_inline)) void weft__spawn_start(weft__worker *w, weft_task *t,
                                                                    bool child_first)
{
    if (weft_unlikely(child_first) && weft__blocking_task(w))
        weft__run_first(w, t);
    else
        weft__ready_push_lifo(&w->sched, t, true);
}

/* weft_spawn in two halves, for modules that wrap the caller's task in their own and must
 * finish their bookkeeping before it can run (weft_group_spawn, alien spawns): a new READY
 * record for fn(arg) in *out, not queued, spawned with `opts` (NULL: the defaults) as
 * weft_spawn would, but detached, with `wrap_flags` (WEFT_SPAWN_*) added and `cleanup` as its
 * spawn cleanup instead of opts->cleanup, which the caller keeps for its own: a node in the
 * caller's record with key weft__spawn_wrap_key, fn and arg set (task.h); it is the task's
 * until the cleanup has been called, which happens however the task ends, even unrun. The
 * caller has checked opts (weft__spawn_opts_check) and w (the caller's worker). Then its
 * start, weft__spawn_start (above). Returns 0 or -EINVAL (a stack size out of range)
 * or -ENOMEM. Runtime thread only. Inline, as the start: a group's child-first spawn is
 * then one call down to the switch. */
static inline __attribute__((always_inline)) int
weft__spawn_wrapped(weft__worker *w, weft_task **out, weft_fn fn, void *arg,
                    const weft_spawn_opts *opts, unsigned wrap_flags, weft__node *cleanup)
{
    int r = weft__task_new_inline(w, w, opts, false, NULL, 0, wrap_flags | WEFT_SPAWN_DETACHED,
                                  cleanup, out);
    if (r < 0)
        return r;
    (*out)->fn = fn;
    (*out)->arg = arg;
    return 0;
}

#endif
