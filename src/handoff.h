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
 *  1. weft__handoff_seize: if the task is in its own code (the check of the signal's
 *     hand-off, on the stack pointer and pc the kernel reports for the call, the stack read
 *     with process_vm_readv since the task may end and free it meanwhile), fills the
 *     thread's seize record (PENDING) and CASes its thread-local worker from w to
 *     WEFT__WORKER_SEIZED. From then on the thread, whenever it runs, reaches its seize
 *     take-back at its next weft call, and the end of its body sees `seizing`. A thread
 *     that woke and changed the slot itself (weft_block_in_place) fails the CAS, and never
 *     sees the record.
 *  2. The watchdog looks again: the thread still asleep in the same call, at the same sp and
 *     pc, with as many context switches as at the first look (read after the call, so that
 *     a thread on its way back to sleep is counted), has not run since the first look, so
 *     it read nothing the seize changed before it changed. weft__handoff_seize_end then
 *     decides by one CAS on the record's `claim` (PENDING to COMMITTED, or to CANCELLED when
 *     the second look failed, against the thread's own PENDING to CANCELLED) whether the
 *     worker is lent, as the signal's hand-off lends it. The winner of a cancel puts the
 *     slot back (the watchdog only from SEIZED: a thread that ran may have stored its own);
 *     a thread that finds the watchdog's cancel or commit in progress waits for its end. */
typedef struct weft__handoff_slots weft__handoff_slots;

/* The calling thread's slots (its thread-local worker, its seize record, the overflow
 * report's task), published with the thread that drives a worker (weft__watch_thread). */
weft__handoff_slots *weft__handoff_slots_self(void);

/* Step 1, on the watchdog's thread, for w's driver asleep in a system call at (pc, sp)
 * (`uninterruptible`: in state D, which is refused on a ring tied to its thread: the requests
 * the thread submitted would wait for it, as weft_block_in_place's fn would make them).
 * Returns whether it seized, with the slots it seized in *slots: weft__handoff_seize_end must
 * follow with them. One seize at a time (the watchdog's thread). */
bool weft__handoff_seize(weft__worker *w, bool uninterruptible, uintptr_t pc, uintptr_t sp,
                         weft__handoff_slots **slots);
/* Step 2: `asleep` is the second look's answer. Returns whether w was lent (then *lent is
 * the lent `lend` word, for weft__relief_assign). */
bool weft__handoff_seize_end(weft__worker *w, weft__handoff_slots *slots, bool asleep,
                             uint64_t *lent);

#endif
