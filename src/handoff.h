/* The involuntary hand-off (handoff.c): a task that runs on without a switch (a loop that
 * calls no weft function, a long computation) keeps its worker's other tasks, timers and
 * I/O waiting, since no C runtime can preempt it. When the stall detector (watchdog.c) sees
 * a worker run the same task for the hand-off threshold, it asks the worker's thread, by its
 * signal, to let go of the worker, as weft_block_in_place does of its own accord; if the task
 * is then in its own code (no weft call in progress: checked on the task's stack), the thread
 * lets go, a relief thread drives the worker from its next tick, and the task runs on where
 * it was. At its next weft call, or when its body returns, the thread takes the worker back
 * (relief.c), and the task is the worker's running task again. Go's sysmon does the same for
 * a goroutine in a system call; docs/architecture.md, "Handing a worker over", has the rest. */
#ifndef WEFT_HANDOFF_H
#define WEFT_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Where weft's own machine code lies, for the check above: [lo, hi), or lo == hi == 0 when
 * it cannot be told (an LTO build, where weft's code is mixed with the program's): the
 * hand-off is then never made. Fixed once found. */
typedef struct weft__code_range {
    uintptr_t lo, hi;
} weft__code_range;

/* Finds weft's code: the static library's lies between two markers (the build renames it so
 * that the linker sorts it there: CMakeLists.txt), the shared library's is its executable
 * segment. */
void weft__handoff_find_code(weft__code_range *code);
/* The markers (handoff.c). */
void weft__code_begin(void);
void weft__code_end(void);

/* In the stall detector's signal handler, on w's thread, asked to let go of w: does it if
 * w's running task is inside its own code (`uctx`: the interrupted context, whose signal mask
 * gains the signals w's tasks wait for), and then stores the lent `lend` word in *lent.
 * Returns whether it let go. Async-signal-safe: atomics and this thread's own state only. */
bool weft__handoff_detach(weft__worker *w, void *uctx, uint64_t *lent);

/* On a thread that let go of its worker this way: takes it back (at once if no relief thread
 * has taken it yet, else at the driver's next tick) and returns it. NULL on any other thread.
 * Called where every weft call starts (weft__worker_current) and where a body returns. */
weft__worker *weft__handoff_reclaim(void);

#endif
