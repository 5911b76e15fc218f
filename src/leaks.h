/* The leak report at shutdown (weft_config.leak_report, leaks.c): what the program left when
 * its main task ended. Tasks still alive and fds still known to a worker's reactor are listed
 * by each worker on its own thread as it begins its shutdown (its tasks are all switched out
 * then, and its fd table is its own); channels never released are tracked from their
 * creation in a table of the runtime's, snapshotted when the main task's end is seen. The
 * last worker to add its part logs the report. Nothing is tracked, and nothing costs, while
 * the report is off. */
#ifndef WEFT_LEAKS_H
#define WEFT_LEAKS_H

#include "internal.h"

typedef struct weft__leaks weft__leaks;

/* At weft_run, with the report on: rt->leaks; 0 or -ENOMEM. */
int weft__leaks_start(weft__runtime *rt);
/* At weft_run's end: the runtime's reference dropped (channels still tracked keep the table
 * alive until they are freed). */
void weft__leaks_stop(weft__runtime *rt);

/* A channel created (by the current task of w, if any): tracked. Returns the table to keep
 * in the channel (a reference), or NULL if untracked (no memory). Any runtime thread. */
weft__leaks *weft__leaks_chan_add(weft__leaks *l, void *chan, size_t *index, uint64_t creator,
                                  size_t elem_size, size_t cap);
/* The channel is freed: untracked, the reference dropped. Any thread. */
void weft__leaks_chan_remove(weft__leaks *l, size_t index);

/* When the main task's end is seen (loop.c), before any worker shuts down: the channels
 * alive now are the ones the report lists. */
void weft__leaks_main_ended(weft__runtime *rt);
/* On each worker, just before its shutdown: its part (tasks, fds); the last part logs the
 * report. */
void weft__leaks_worker_stop(weft__worker *w);

#endif
