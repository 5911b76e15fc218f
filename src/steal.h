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
    /* A thief that asked this worker (the last to ask, stored relaxed after its request's
     * message): a spawn on this worker that sees it answers at once (weft__steal_spawned),
     * without waiting for the tick that reads the message, which a task spawning in a loop
     * puts off until it parks. The message is still answered at the tick: a request gets at
     * least one answer, maybe two. any thread stores; the owner exchanges it to NULL. */
    _Atomic(struct weft__worker *) hint;
    /* Stealing mode with more than one worker: the spawn path's one test. Set at start. */
    bool on;
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
/* The spawn path's share of the busy side (stealing mode, a never-run task just queued):
 * every 32 unstarted tasks it advertises and wakes an idle worker as a tick would, and it
 * answers a thief's request at once. So a task that spawns many children before it parks
 * has them spread while it spawns. Owner thread, from a task. */
void weft__steal_share(struct weft__worker *w);
static inline void weft__steal_spawned(weft__steal *s, size_t nunstarted, struct weft__worker *w)
{
    if (weft_unlikely(s->on) &&
        ((nunstarted & 31) == 0 || atomic_load_explicit(&s->hint, memory_order_relaxed)))
        weft__steal_share(w);
}

/* The busy worker's side, once a tick: advertises how many unstarted tasks it has, and
 * wakes one idle worker that has not asked yet if it has some to spare. Owner thread. */
void weft__steal_tick(weft__worker *w);

#endif
