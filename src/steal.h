/* Stealing mode (steal.c): a worker with nothing to run asks the busiest worker for work,
 * and that worker hands it half of its tasks that have never run, and (move_started) of its
 * queued started tasks that left nothing on it, on its own thread at its next tick
 * (weft.h, WEFT_MODE_STEALING). */
#ifndef WEFT_STEAL_H
#define WEFT_STEAL_H

#include "internal.h"

/* The worker's part. */
typedef struct weft__steal {
    /* any thread: what the owner may give as of its last tick (relaxed: a hint for choosing
     * a victim): its never-run tasks, plus (move_started) its queued started ones unless its
     * last walk found none of those movable (weft__spare). */
    _Atomic size_t advertised;
    /* any thread: 1 while the owner is blocked with nothing to run and no request out, 2
     * with one out (stored seq_cst before it blocks, 0 after); a busy worker CASes a 1 to 0
     * and rings it, so each idle spell is woken once. */
    _Atomic int idle;
    bool asked; /* a request of ours is out, not yet answered; owner: the worker */
    /* The worker it went to: if the stall detector sees that one stuck in a task, the thief
     * asks another meanwhile (both answers are taken). owner: the worker. */
    struct weft__worker *asked_of;
    /* move_started: after a walk that found no started task it could give, its queued
     * started tasks are not advertised for `barren_ticks` ticks; each such walk in a row
     * doubles the pause (`barren_pause`, 64 to 4096 ticks), one that gives resets it. So a
     * queue of tasks that cannot move (fd waiters, bound tasks) draws a futile request at
     * most once a pause, and the pushes and the pick keep no count. owner: the worker. */
    unsigned barren_ticks, barren_pause;
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
