/* The loop of one worker (loop.c): each tick fires timers, takes tasks woken from other
 * threads, runs ready tasks and stackless polls within the budget, polls I/O, starts the
 * shutdown once the main task is done, and blocks in the reactor until the nearest timer
 * when nothing is ready. */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include "internal.h"

/* Prepares w's thread for its loop (errno, sanitizer stack bounds, timer slack) and
 * publishes its counters. On w's thread, before the runtime starts. */
void weft__loop_prepare(weft__worker *w);
/* Runs w's loop until the runtime's main task is done and every task has finished. */
int weft__loop(weft__worker *w);

#endif
