/* A chain of joins for helper threads that exit on their own (the blocking pool's threads
 * after idle_ms, the relief threads), so that a runtime's close waits until every one of
 * them has really ended rather than only said so.
 *
 * Why: a thread that says it has gone (a counter and a condition variable, under its pool's
 * lock) still runs glibc's thread teardown afterwards: the TSD destructors, then
 * __libc_thread_freeres, which frees what glibc keeps per thread (the resolver's name server
 * addresses, for one). A close that returned on the counter alone let LeakSanitizer, or the
 * program's own exit, find those blocks unowned (CI, session 23: 28 bytes from res_send.c
 * after getaddrinfo on a pool thread). Threads are therefore joinable, and each one that
 * exits joins the one that exited before it: at most one thread is left unjoined, and the
 * close joins it once the counter is zero.
 *
 * Owner: the pool's lock guards the chain. Header-only. */
#ifndef WEFT_UTIL_EXIT_CHAIN_H
#define WEFT_UTIL_EXIT_CHAIN_H

#include <pthread.h>
#include <stdbool.h>

typedef struct weft__exit_chain {
    pthread_t last; /* the latest thread to exit, not yet joined; valid when `pending` */
    bool pending;
} weft__exit_chain;

/* Under the owner's lock, by the thread about to exit: puts itself last, and returns in
 * *prev the thread it must join (true) after it lets go of the lock. That thread no longer
 * takes the lock, so the join cannot wait on the caller. */
static inline bool weft__exit_chain_enter(weft__exit_chain *c, pthread_t *prev)
{
    bool had = c->pending;
    if (had)
        *prev = c->last;
    c->last = pthread_self();
    c->pending = true;
    return had;
}

/* Under the owner's lock, by the closer once no thread of the chain can still start or
 * exit: takes the last thread, to join (true) after letting go of the lock. Joining it joins
 * every thread before it, since each joined its predecessor before it ended. */
static inline bool weft__exit_chain_take(weft__exit_chain *c, pthread_t *last)
{
    bool had = c->pending;
    if (had)
        *last = c->last;
    c->pending = false;
    return had;
}

#endif
