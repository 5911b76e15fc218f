/* Messages between the workers of one runtime (smp.c): one bounded single-producer,
 * single-consumer ring per ordered pair of workers, drained in batches by the receiver's
 * loop, and the detection of the moment a stopping runtime has nothing left in flight.
 * A message is a function and three words run on the receiving worker's loop stack; it must
 * not block. Sending costs no system call while the receiver is busy: its doorbell rings only
 * if it sleeps. */
#ifndef WEFT_SMP_H
#define WEFT_SMP_H

#include "internal.h"

/* Runs on the receiving worker `to`, on its loop's stack, in the order the sender posted. */
typedef void (*weft__msg_fn)(weft__worker *to, void *a, void *b, uint64_t c);

typedef struct weft__msg {
    weft__msg_fn fn;
    void *a;
    void *b;
    uint64_t c;
} weft__msg;

/* Slots per ordered pair (32 bytes each: 32 KiB a pair). A ring is allocated by its sender at
 * its first message, so a runtime of N workers whose tasks never cross pays nothing for the
 * N * (N - 1) pairs. 1024: a sender that fills it parks until the receiver has drained
 * some (weft__smp_post_wait), about a wake-up's latency (tens of microseconds on an idle
 * receiver); a thousand messages per wake keeps that under 50 ns a message. */
#define WEFT__SMP_RING 1024u

/* A message that found its ring full waits in the pair's spill list (malloc'd, FIFO once
 * reversed). While the pair has spilled messages the sender keeps spilling, so the pair's
 * order holds: the receiver drains the ring before the spill list. */
typedef struct weft__smp_spill {
    struct weft__smp_spill *next;
    weft__msg m;
} weft__smp_spill;

/* A sender task waiting for room in a full ring (smp.c), on its stack. */
typedef struct weft__smp_room_waiter {
    struct weft__smp_room_waiter *next;
    weft_waker waker;
    bool linked;
} weft__smp_room_waiter;

typedef struct weft__smp_ring {
    /* The receiver's index: read by the sender to find room (acquire), advanced by the
     * receiver after it copied a slot out (release: the slot may be rewritten). */
    _Alignas(64) _Atomic uint32_t head;
    /* The sender's index: advanced after a slot is written (seq_cst: with the receiver's
     * `pending` and `sleeping`, see weft__smp_post). */
    _Alignas(64) _Atomic uint32_t tail;
    uint32_t head_seen; /* the sender's last look at head; owner: the sender */
    bool spilling;      /* the sender has messages in `spill`; owner: the sender */
    /* Sender tasks parked for room (weft__smp_wait_room): each links a node on its stack into
     * `room_waiters` (with its waker, under `room_lock`) and then stores `room_wanted`
     * (seq_cst); the receiver, after freeing slots (its head store, seq_cst), loads
     * `room_wanted` and, under the lock, unlinks every node and wakes its task. A woken
     * sender finds its node unlinked and never touches the list again, so its frame may go.
     * The lock is held for a few stores and the wakes, never across a park. */
    _Atomic int room_wanted;
    atomic_flag room_lock;
    struct weft__smp_room_waiter *room_waiters;
    /* Pushed by the sender (CAS, release), taken whole by the receiver (exchange, acquire). */
    _Alignas(64) _Atomic(weft__smp_spill *) spill;
    weft__msg slots[WEFT__SMP_RING];
} weft__smp_ring;

/* The worker's part. */
typedef struct weft__smp {
    /* any thread: set by a sender after it posted to this worker (seq_cst: a Dekker pair with
     * the worker's sleep, see weft__smp_post); cleared by the worker before it drains. */
    _Atomic int pending;
    /* Messages this worker took while stopping (see weft__smp_quiescent). owner: the worker
     * stores it (seq_cst, before it frees the slot); any worker reads it. */
    _Atomic uint64_t activity;
    bool done; /* counted in the runtime's ndone; owner: the worker */
    /* Messages from threads outside the runtime (weft__smp_post_foreign), newest first: any
     * thread pushes (CAS, seq_cst: as a ring's tail store, see notify), the worker takes the
     * whole list (exchange, acquire) after its rings. */
    _Atomic(weft__smp_spill *) foreign;
    /* Ticks until this worker looks at the runtime's injection queue while it has tasks of
     * its own to run (weft__smp_inject_take); owner: the worker. */
    unsigned inject_countdown;
} weft__smp;

/* How often (in ticks) a busy worker looks at the injection queue: Go's 61, a prime, so that
 * the look does not fall into step with a program's own periods. */
#define WEFT__INJECT_TICKS 61

/* Posts `m` from worker `from` (the calling thread's) to worker `to` (not `from`). Returns 0
 * or -ENOMEM (the pair's ring or a spill node could not be allocated: nothing was sent). */
int weft__smp_post(weft__worker *from, weft__worker *to, const weft__msg *m);
/* Posts `m` to worker `to` from any thread, one outside the runtime included (alien.c): a
 * malloc'd node on the worker's foreign list, run after its rings' messages at its next
 * drain, in the order of the posts. The caller guarantees the runtime outlives the call
 * (alien.c posts under its anchor's lock, which the shutdown takes before it can finish).
 * Returns 0 or -ENOMEM. */
int weft__smp_post_foreign(weft__worker *to, const weft__msg *m);
/* The injection queue (stealing mode; Go's global run queue, Tokio's inject queue): `m` from
 * any thread, one outside the runtime included, for whichever worker looks first; one worker
 * asleep in its reactor is rung. Same contract as weft__smp_post_foreign. Returns 0 or
 * -ENOMEM. */
int weft__smp_inject(weft__runtime *rt, const weft__msg *m);
/* At a tick: runs what the injection queue holds if this worker has nothing else to run, or
 * every WEFT__INJECT_TICKS ticks while it has (so injected work is not starved by a busy
 * worker, nor taken from the others by it). Owner thread, on the loop. */
void weft__smp_inject_take(weft__worker *w);
/* Whether the injection queue holds something (seq_cst: after the worker announced its sleep,
 * as a message's `pending`). Any thread. */
bool weft__smp_inject_pending(const weft__runtime *rt);
/* Parks the stackful task `self` (running on `from`), uncancellably, until the pair's ring
 * has room, so that a weft__smp_post right after it (no park between) does not spill. For a
 * message that carries the sender's waker: its epoch must be taken after any park. Returns
 * 0 or -ENOMEM. */
int weft__smp_wait_room(weft__worker *from, weft_task *self, weft__worker *to);
/* weft__smp_wait_room then weft__smp_post: from a stackful task (`self`, running on `from`), which
 * parks, uncancellably, while the pair's ring is full: backpressure rather than memory. Returns 0
 * or -ENOMEM. */
int weft__smp_post_wait(weft__worker *from, weft_task *self, weft__worker *to, const weft__msg *m);
/* Runs every message posted to w, oldest first per sender. Owner thread, on the loop. */
bool weft__smp_drain(weft__worker *w); /* whether any was pending */
/* Whether a message waits for w (seq_cst: the worker's last look before it sleeps). */
bool weft__smp_pending(weft__worker *w);
/* For a stopping worker with no unfinished task: counts it as done, and returns true once
 * the whole runtime is: every worker done and no message in flight (then every worker is
 * told, and leaves its loop). A worker that adopts a task again calls weft__smp_busy. */
bool weft__smp_quiescent(weft__worker *w);
void weft__smp_busy(weft__worker *w);
/* Allocates the runtime's table of pair rings (empty); frees it and every ring. */
int weft__smp_init(weft__runtime *rt);
void weft__smp_fini(weft__runtime *rt);

#endif
