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
/* Runs w's loop until the runtime's main task is done and every task has finished. On w's
 * own thread; while another thread drives w (relief.c) it waits for w to come back. */
int weft__loop(weft__worker *w);
/* Makes the calling thread w's driver as far as the switch needs (its errno, its stack and
 * fiber for the sanitizers, the stall detector's thread). On that thread, before it runs
 * w's loop. */
void weft__loop_adopt(weft__worker *w);
/* Runs w's loop on a relief thread (relief.c) until it hands w over. */
void weft__loop_relief(weft__worker *w);

#endif
