/* Stack-overflow reports (overflow.c): an alternate signal stack per worker thread and one
 * SIGSEGV handler per process that names the task whose guard page was hit. */
#ifndef WEFT_OVERFLOW_H
#define WEFT_OVERFLOW_H

#include "internal.h"

/* The worker's part. owner: worker. */
typedef struct weft__altstack {
    void *mem;
    size_t size;
    bool installed;
} weft__altstack;

int weft__overflow_init(weft__worker *w);
/* The same for any thread of weft's (w NULL: a relief thread, relief.c): its own alternate
 * stack; the handler is the process's, installed by the workers. That thread only. */
int weft__altstack_install(weft__worker *w, weft__altstack *as);
void weft__altstack_remove(weft__worker *w, weft__altstack *as);
void weft__overflow_fini(weft__worker *w);
/* Names t as the task running on this thread outside any worker (inside
 * weft_block_in_place's fn), or NULL after: its stack's faults are reported as t's. */
void weft__overflow_in_place(const weft_task *t);
/* The calling thread's slot behind it, for the hand-off made from the watchdog's thread
 * (handoff.c), which stores into it while this thread sleeps. */
const weft_task **weft__overflow_in_place_slot(void);
/* Writes an overflow report for `t` to stderr and aborts. Async-signal-safe. */
_Noreturn void weft__overflow_report(const weft_task *t, const void *fault, const char *how);

#endif
