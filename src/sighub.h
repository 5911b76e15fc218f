/* Signal watches' fan-out (watch.c): every watch of a signal in the process, in every runtime,
 * gets each arrival, as libuv's, Tokio's and Go's handlers do, although the kernel hands each
 * arrival to one reader. One watch of each signal is its reader (it waits with
 * weft_signal_wait); on each arrival it releases one unit of every other watch's semaphore,
 * and those wait on it. When the reader leaves, the role goes to the next watch of the signal,
 * told by a unit of its semaphore marked as a role token.
 * owner: the process's hub (its lock guards the lists, the readers and every subscriber's
 * `role_tokens`); a subscriber's semaphore is any thread's to release. */
#ifndef WEFT_SIGHUB_H
#define WEFT_SIGHUB_H

#include <pthread.h>
#include <signal.h>
#include <weft.h>

#include "util/list.h"

/* A signal watch's subscription; lives in the watch. */
typedef struct weft__sigsub {
    weft__list link;      /* in its signal's list; under the hub lock */
    weft_sem units;       /* arrivals to deliver, plus role tokens */
    unsigned role_tokens; /* units of `units` that hand it the reader role; under the lock */
    int sig;
} weft__sigsub;

/* The process's one hub (sighub.c says why not one per runtime). */
typedef struct weft__sighub {
    pthread_mutex_t lock; /* never held across a park */
    weft__list subs[NSIG];
    weft__sigsub *reader[NSIG];
} weft__sighub;

/* The hub, set up at its first use. Any thread. */
weft__sighub *weft__sighub_process(void);
/* Subscribes s to signal `sig`. Any thread of a runtime. */
void weft__sighub_join(weft__sighub *h, weft__sigsub *s, int sig);
/* Unsubscribes s (handing the reader role on, if it had it); s may be freed after. */
void weft__sighub_leave(weft__sighub *h, weft__sigsub *s);
/* Waits for the next arrival of s's signal, from a stackful task: 1, or the wait's negative
 * errno (-ECANCELED). */
int weft__sighub_next(weft__sighub *h, weft__sigsub *s);

#endif
