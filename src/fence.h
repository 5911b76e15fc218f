/* fence.h: the asymmetric fence between a cancel and the task it cancels (fence.c).
 *
 * A cancel stores the task's flag and then reads its state word, to wake the park the word
 * says it is in. The task's worker stores the word (each resume: a new epoch, task.h) and
 * then reads the flag (its next park). Each side stores one variable and then loads the
 * other: without a full fence on both sides each may miss the other's store, and then the
 * cancel wakes an epoch that is over while the task parks without seeing the flag, for ever.
 * The resume is the hot path and a cancel from another thread a rare one, so the cancel pays
 * for both: membarrier(2)'s private expedited command makes every thread of the process that
 * is on a CPU run a full barrier (one that is not passes one when it is switched back in),
 * and the resume side needs only a compiler barrier (weft__task_begin_run). Where the kernel
 * refuses the command (before 4.14, a seccomp filter), each resume of the runtime takes a
 * full fence instead (scheduler.c's begin_timed_run, through `run_mask` 0). */
#ifndef WEFT_FENCE_H
#define WEFT_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* The runtime's part; set at start-up, fixed after. */
typedef struct weft__fence {
    bool membarrier; /* registered: weft__fence_cancel costs a membarrier, resumes nothing */
#ifdef WEFT_TESTING
    int64_t pause_ns; /* WEFT_TEST_CANCEL_PAUSE_NS: a cancel sleeps this long after its fence */
#endif
} weft__fence;

/* Registers the process for the expedited command (idempotent, and cheap). Returns true if
 * every resume must take the full fence instead. Thread of weft_run, before the workers run. */
bool weft__fence_setup(weft__fence *f);
/* The cancel's side, between its store of the flag and its load of the word. Any thread. */
void weft__fence_cancel(const weft__fence *f);

#endif
