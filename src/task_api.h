/* What task_api.c offers the rest of weft beyond the public API. */
#ifndef WEFT_TASK_API_H
#define WEFT_TASK_API_H

#include <errno.h>

#include "internal.h"

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
    /* Options of a later version, set: this library cannot honour them. */
    if (opts->reserved_[0] || opts->reserved_[1] || opts->reserved_[2] || opts->reserved_[3])
        return -EINVAL;
    return 0;
}

/* Sends the records of other workers this worker's joins have chained (task.h, reap_out)
 * home, one message per worker. The loop calls it after the tick's resumes, while
 * w->tasks.npending is not 0, so nothing chained outlives the tick. Loop only. */
void weft__task_send_reaps(weft__worker *w);

#endif
