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

/* ---- A thread asleep in a system call (the stall detector's thread does it) -------------
 *
 * A task asleep in a call that a signal would cut short (a sleep, poll, epoll_wait, a
 * timed wait: restartable.h says which are not) cannot be asked by the signal. Its thread
 * runs no code then, so the stall detector lets go of the worker for it, from its own
 * thread, in two steps around a second look at the sleeper (watchdog.c):
 *  1. weft__handoff_seize: if the task is in its own code (the same check as the signal's,
 *     on the stack pointer and pc the kernel reports for the call), marks the thread's
 *     take-back PENDING and stores NULL in its thread-local worker (after the take-back
 *     function), then a full fence. From then on the thread, whenever it runs, reaches the
 *     take-back at its next weft call, and the end of its body sees `seizing`.
 *  2. The watchdog looks again: the thread still asleep in the same call, with as many
 *     context switches as before the first step, has not run since the first look, so it
 *     read none of what step 1 changed before it changed. weft__handoff_seize_end then
 *     decides, by one CAS on the thread's take-back word (PENDING to COMMITTED, against the
 *     thread's own PENDING to CANCELLED), whether the worker is lent, as the signal's
 *     hand-off lends it; a thread that woke meanwhile cancels at its take-back and carries on
 *     with its worker, which nobody else touched.
 * The thread's take-back word and record are its own thread-locals, written by the watchdog
 * only while the thread sleeps or through that CAS. */
typedef struct weft__handoff_slots weft__handoff_slots;

/* The calling thread's slots (its thread-local worker, take-back function, take-back record
 * and the overflow report's task), published with the thread that drives a worker
 * (weft__watch_thread). */
weft__handoff_slots *weft__handoff_slots_self(void);

/* Step 1, on the watchdog's thread, for w's driver asleep in a system call at (pc, sp).
 * Returns whether it seized: weft__handoff_seize_end must follow. Under the watchdog's own
 * rules (one hand-off at a time). */
bool weft__handoff_seize(weft__worker *w, uintptr_t pc, uintptr_t sp);
/* Step 2: `asleep` is the second look's answer. Returns whether w was lent (then *lent is
 * the lent `lend` word, for weft__relief_assign). */
bool weft__handoff_seize_end(weft__worker *w, bool asleep, uint64_t *lent);

#endif
