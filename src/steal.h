/* Stealing mode (steal.c): a worker with nothing to run asks the busiest worker for work,
 * and that worker hands it half of its tasks that have never run, on its own thread at its
 * next tick. Started tasks never move (weft.h, WEFT_MODE_STEALING). */
#ifndef WEFT_STEAL_H
#define WEFT_STEAL_H

#include "internal.h"

/* The worker's part. */
typedef struct weft__steal {
    /* any thread: the owner's nunstarted as of its last tick (relaxed: a hint for choosing
     * a victim). */
    _Atomic size_t advertised;
    /* any thread: 1 while the owner is blocked with nothing to run and no request out, 2
     * with one out (stored seq_cst before it blocks, 0 after); a busy worker CASes a 1 to 0
     * and rings it, so each idle spell is woken once. */
    _Atomic int idle;
    bool asked; /* a request of ours is out, not yet answered; owner: the worker */
    /* The worker it went to: if the stall detector sees that one stuck in a task, the thief
     * asks another meanwhile (both answers are taken). owner: the worker. */
    struct weft__worker *asked_of;
} weft__steal;

/* The idle worker's side, before it blocks: asks the busiest worker, if one has tasks to
 * spare. Owner thread. */
void weft__steal_ask(weft__worker *w);
/* Around the block. */
void weft__steal_idle(weft__worker *w, bool idle);
/* The busy worker's side, once a tick: advertises how many unstarted tasks it has, and
 * wakes one idle worker that has not asked yet if it has some to spare. Owner thread. */
void weft__steal_tick(weft__worker *w);

#endif
