/* The worker hand-off (relief.c; in_place.c has the API and the relief threads):
 * weft_block_in_place gives the calling task's worker to
 * another thread (a relief thread) while the task blocks its own thread in a call weft cannot
 * make asynchronous, and takes the worker back after, on the same thread (Go's syscall
 * hand-off, Tokio's block_in_place). A worker is driven by one thread at a time; which one
 * moves only under the runtime's relief lock, at a point where the thread giving it up no
 * longer touches it (docs/architecture.md, "Handing a worker over"). */
#ifndef WEFT_RELIEF_H
#define WEFT_RELIEF_H

#include <pthread.h>
#include <stdbool.h>

#include "arch/switch.h"
#include "eh_state.h"
#include "internal.h"
#include "util/exit_chain.h"

struct weft__relief_req;
struct weft__relief_thread;

/* A worker's part. Every field is under the runtime's relief lock, except `want` and `lend`. */
typedef struct weft__relief {
    /* Set, under the lock, when the thread driving the worker must hand it over at its next
     * tick: a thread waits to take it back, or it is a relief thread and the worker's own
     * thread waits with nothing left detached. Loaded by the driver once a tick (relaxed: the
     * lock orders everything else); stored under the lock only. */
    _Atomic int want;
    /* Who may drive the worker now, for the lazy hand-off (in_place.c): a generation, times
     * two, plus 1 while the driver's task is inside weft_block_in_place and no relief thread
     * has taken the worker yet (lent). Its driver lends it (a release store, odd); then one
     * CAS from that odd value to the next even one decides between the lender coming back
     * (the hand-off never happened: it goes on as before) and the relief thread taking it
     * (the lender then asks for it back, below). Not under the lock. */
    _Atomic uint64_t lend;
    unsigned ndetached; /* its tasks inside weft_block_in_place whose worker was taken */
    /* The relief thread signalled for its latest lend that has not picked it up yet. */
    struct weft__relief_thread *assigned;
    struct weft__relief_req *reqs;       /* threads waiting to take it back, oldest first */
    struct weft__relief_req **reqs_tail; /* NULL while reqs is empty */
    /* Its own thread (the one that built it, whose loop returns when the runtime ends)
     * handed it to a waiting thread at a tick and waits to be given it back. */
    bool native_waiting;
    bool native_granted;
    /* A lend made while it waits (in_place.c): the waiting thread is a driver as good as a
     * relief thread, and is offered the lent `lend` word first (weft__relief_native_wait). */
    bool native_lent;
    uint64_t native_lent_word;
    pthread_cond_t native_cond;
} weft__relief;

/* The runtime's part: the relief threads, each either driving a worker or idle. */
typedef struct weft__relief_pool {
    pthread_mutex_t lock; /* guards this and every worker's weft__relief; cold paths only */
    struct weft__relief_thread *idle; /* those driving no worker */
    unsigned nthreads;                /* started and not exited (pool_threads at most) */
    pthread_cond_t gone;              /* broadcast when one exits */
    weft__exit_chain exited;          /* joinable: each joins the one before (exit_chain.h) */
    /* Set by weft__in_place_fini: a thread that goes idle from now on exits at once. The
     * close's walk of `idle` tells only the threads idle then; one whose worker's loop ended
     * just before comes back to the list after the walk, and without this waited out its
     * pool_idle_ms (10 s) while weft_run waited for it. */
    bool closing;
    /* WEFT_TESTING builds: WEFT_TEST_RELIEF_PAUSE_NS, how long a relief thread sleeps between
     * its worker's loop ending and its going idle (the window `closing` covers), so that a test
     * can make the close's walk come first. Fixed after init. */
    int64_t test_pause_ns;
} weft__relief_pool;

/* A worker loop's answer (loop.c): the runtime has ended, or the loop handed its worker to
 * another thread at a tick and must not touch it again. */
enum { WEFT__LOOP_DONE = 0, WEFT__LOOP_HANDED = 1 };

void weft__relief_init(weft__runtime *rt);
void weft__relief_worker_init(weft__worker *w);
void weft__relief_worker_fini(weft__worker *w);
/* Stops and joins the relief threads (in_place.c), idle by then or about to be (every loop has
 * ended, but a thread whose loop ended last may not have gone idle yet: `closing`),
 * and destroys the lock. The thread of weft_run, after the loops. */
void weft__in_place_fini(weft__runtime *rt);

/* What a thread that lets go of a worker inside a task keeps to take it back: where its
 * loop's frames wait, and its errno and sanitizer fiber. On the task's stack. */
typedef struct weft__relief_home {
    weft__ctx loop_ctx;
    int *errno_loc;
    int loop_errno;
    weft__eh_state *eh_loc; /* the C++ exception record, kept as errno is (eh_state.h) */
    weft__eh_state loop_eh;
    const void *loop_stack_lo;
    size_t loop_stack_size;
    void *loop_fiber;
} weft__relief_home;

/* What the calling thread, about to let go of w inside a task, keeps to take it back: w's
 * loop context, errno and C++ exception record, sanitizer fiber (all this thread's). Plain
 * copies: the stall detector's signal handler calls it too (handoff.c). */
weft__relief_home weft__relief_home_of(const weft__worker *w);

/* Takes w back for t on the thread that let go of it inside t: queues a request, rings w's
 * doorbell, waits for the driver's grant, then puts back this thread's loop context (h) and
 * makes t w's running task again. */
void weft__relief_take_back(weft__worker *w, weft_task *t, const weft__relief_home *h);

/* At a tick of w's loop, with w->relief.want set: hands w over if a thread waits for it
 * (`native`: the loop runs on w's own thread). Returns true if it did: the loop then returns
 * WEFT__LOOP_HANDED without touching w again. The driving thread. */
bool weft__relief_serve(weft__worker *w, bool native);
/* For a worker lent from outside weft_block_in_place (the involuntary hand-off, handoff.c:
 * its `lend` word already stored as `lent`): finds a thread to drive it, as that call does,
 * and offers it the lend. Returns 0, -EAGAIN (every relief thread busy: w stays lent, and its
 * lender takes it back at its next weft call) or -errno. Any thread but w's driver; takes the
 * relief lock. */
int weft__relief_assign(weft__worker *w, uint64_t lent);
/* On w's own thread after its loop handed w over: waits until w is given back. */
void weft__relief_native_wait(weft__worker *w);

#endif
