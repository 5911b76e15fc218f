/* The runtime (runtime.c): the process-level record behind weft_run. It owns its workers,
 * the configuration, the one blocking pool, the task-record chunks, the task-id counter,
 * and sums the workers' counters. Today a runtime has one worker, on the thread that called
 * weft_run; the multi-core issue adds more, and the injection queue for work arriving from
 * threads outside it (docs/architecture.md, "what lands where"). */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <pthread.h>

#include "internal.h"

#define WEFT__ID_BLOCK 1024 /* task ids a worker takes at once: one atomic per 1024 spawns */

struct weft__runtime {
    weft_config cfg;       /* fixed once started */
    weft__worker *workers; /* nworkers of them; fixed */
    unsigned nworkers;
    weft_task *main_task; /* owner: the main task's worker */

    /* any thread: the next unassigned task id; workers take blocks (relaxed: ids need only
     * be unique, not ordered). */
    _Atomic uint64_t next_id;

    pthread_mutex_t lock;      /* guards chunks and pool creation (cold paths only) */
    struct task_chunk *chunks; /* every task record is carved from these; under lock */
    weft__pool *pool;          /* the blocking pool, created at first use; under lock */
};

/* Takes a block of n task ids; returns the first. Any thread. */
static inline uint64_t weft__runtime_take_ids(weft__runtime *rt, uint64_t n)
{
    return atomic_fetch_add_explicit(&rt->next_id, n, memory_order_relaxed);
}

#endif
