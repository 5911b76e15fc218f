/* Watches (watch.c): the one thing the runtime's end asks of them. */
#ifndef WEFT_WATCH_H
#define WEFT_WATCH_H

#include "internal.h"

/* Frees the records of w's watches that finished while a handle still held them, not yet
 * deleted (a weft_watch_del after the main task returned may not touch them). At the
 * worker's end, when no task is left. Owner thread. */
void weft__watches_fini(weft__worker *w);

#endif
