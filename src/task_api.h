/* What task_api.c offers the rest of weft beyond the public API. */
#ifndef WEFT_TASK_API_H
#define WEFT_TASK_API_H

#include "internal.h"

/* Waits for t to finish whatever the caller's deadline or cancel flag, then reaps it. For
 * owners that must not return before what they own is gone (weft_gen_close). */
void weft__join_uncancellable(weft__worker *w, weft_task *t);

/* weft_spawn in two halves, for callers that must finish their own bookkeeping before the
 * task can run (weft_group_spawn): a new READY record for fn(arg) in *out, checked as
 * weft_spawn checks (has_out: whether the caller's own out pointer was given), not queued;
 * then its start, queued at the tail or, with child_first, run at once (weft__run_first).
 * Returns weft_spawn's codes. Runtime thread only. */
int weft__spawn_unqueued(weft__worker *w, bool has_out, weft_task **out, weft_fn fn, void *arg,
                         const weft_spawn_opts *opts);
void weft__spawn_start(weft__worker *w, weft_task *t, bool child_first);

/* Sends the records of other workers this worker's joins have chained (task.h, reap_out)
 * home, one message per worker. The loop calls it after the tick's resumes, while
 * w->tasks.npending is not 0, so nothing chained outlives the tick. Loop only. */
void weft__task_send_reaps(weft__worker *w);

#endif
