/* Partial deadlocks (cycles.c): tasks that wait for each other in a circle while the rest of
 * the program runs on, which the global report (deadlock.c) cannot see. Found by the stall
 * detector's thread, about once a second. The waits followed are those that name the tasks
 * that can end them: a join (the joined task), a mutex, rwlock or once (its holder), and a
 * group wait or close with no deadline (each member left: a circle through any of them). A
 * rwlock held by readers, a channel, a condition variable, a semaphore, a plain wait group
 * have no such task: circles through them are not seen. */
#ifndef WEFT_CYCLES_H
#define WEFT_CYCLES_H

#include "internal.h"

#define WEFT__CYCLES_REMEMBERED 64

/* What the checker remembers between walks: the circles reported and not yet gone (each by
 * its lowest record and that record's state word), so each is reported once. owner: the
 * watchdog. */
typedef struct weft__cycle_key {
    const weft_task *t;
    uint64_t word;
} weft__cycle_key;

typedef struct weft__cycles {
    weft__cycle_key reported[WEFT__CYCLES_REMEMBERED];
    unsigned nreported;
} weft__cycles;

/* Walks rt's task records and reports (weft__log, warning) each new circle: tasks parked,
 * with no deadline, each in a join of the next, waiting for a lock the next holds, or waiting
 * for a group the next is a member of. Any thread while rt runs. */
void weft__cycles_check(weft__runtime *rt, weft__cycles *c);

#endif
