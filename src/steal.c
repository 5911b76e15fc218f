/* Stealing mode. The thief never touches the victim's queue: it posts a request (smp.c),
 * and the victim, on its own thread at its next tick, unlinks half of its never-run tasks
 * from its ready queue, re-homes them (t->worker, its counts) and posts them to the thief,
 * which adopts them. Every field of a task record is thus written by one thread at a time,
 * and the hand-over's message orders the two. A started task never moves: its stack, its
 * timers, its fd registrations and ring operations stay where they are, and no migration
 * rule is needed for them. Handles follow the task: a join, detach or reap sent to its old
 * worker is forwarded (task_api.c). */
#include "probes.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "steal.h"
#include "task.h"
#include "watchdog.h"
#include "worker.h"

/* Tasks handed over at most per request: half of what the victim has, up to this. 256: a
 * tick's worth for the thief without a long walk of the victim's queue. */
#define STEAL_MAX 256

static bool stealing(const weft__worker *w)
{
    return w->rt->cfg.mode == WEFT_MODE_STEALING && w->rt->nworkers > 1;
}

/* On the thief: tasks handed over (a list through `next`), or none (an empty answer). */
static void msg_take(weft__worker *w, void *a, void *b, uint64_t n)
{
    (void)b;
    w->steal.asked = false;
    WEFT_PROBE2(steal, w->index, n);
    if (n)
        weft__smp_busy(w); /* a stopping worker that was done has tasks again */
    for (weft_task *t = a; t;) {
        weft_task *next = t->next;
        weft__task_adopt(w, t);
        weft__ready_push_new(&w->sched, t);
        w->stats.nsteals++;
        t = next;
    }
}

static bool handable(const weft_task *t)
{
    return !(t->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS | WEFT__T_PINNED));
}

/* On the victim: the thief `b` asks. Walks the ready queue once, unlinking up to half of its
 * never-run tasks, oldest first. Those lie behind the timer-woken tasks at the head (which
 * have run), so `nfront` is unchanged. In depth-first order the oldest are the last ones
 * (the biggest subtrees of a fork-join tree): the walk passes over the newer ones first. */
static void msg_ask(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)a, (void)c;
    weft__worker *thief = b;
    size_t want = w->sched.nunstarted / 2;
    if (want > STEAL_MAX)
        want = STEAL_MAX;
    weft_task *given = NULL, **gtail = &given;
    size_t n = 0;
    if (want && !w->tasks.shutting_down) {
        weft__fifo *q = &w->sched.ready;
        weft_task *prev = NULL;
        size_t newer = w->sched.depth_first ? w->sched.nunstarted - want : 0;
        for (weft_task *t = q->head; t && n < want;) {
            weft_task *next = t->next;
            if (newer && !(t->flags & WEFT__T_STARTED)) {
                newer--;
                prev = t;
            } else if (handable(t)) {
                if (prev)
                    prev->next = next;
                else
                    q->head = next;
                if (q->tail == t)
                    q->tail = prev;
                q->len--;
                t->next = NULL;
                *gtail = t;
                gtail = &t->next;
                /* Re-homed here, on the owner's thread. Release: the thief may act on the
                 * record before the answer arrives (a join's message from a third worker,
                 * drained first, finds t->worker naming it: task_api.c's forwarded, with an
                 * acquire), and must see everything this worker did to it, its reads too. */
                __atomic_store_n(&t->worker, thief, __ATOMIC_RELEASE);
                n++;
            } else {
                prev = t;
            }
            t = next;
        }
        w->sched.nunstarted -= n;
        w->sched.lifo = NULL; /* it may have been handed over: the head is unknown now */
        w->tasks.nlive -= n;
        w->tasks.nrecords -= n;
    }
    weft__msg m = {msg_take, given, NULL, n};
    if (weft__smp_post(w, thief, &m) < 0) {
        /* No memory for the answer: keep them (they are still READY and unstarted). */
        for (weft_task *t = given; t;) {
            weft_task *next = t->next;
            __atomic_store_n(&t->worker, w, __ATOMIC_RELAXED);
            weft__task_adopt(w, t); /* counts it here again */
            weft__ready_push_new(&w->sched, t);
            t = next;
        }
    }
}

void weft__steal_ask(weft__worker *w)
{
    if (!stealing(w) || w->tasks.shutting_down)
        return;
    /* One request out at a time, unless its victim is stuck in a task (the stall detector's
     * hint): it answers only when that task yields, which may be long. */
    if (w->steal.asked && !weft__watch_stuck(&w->steal.asked_of->watch))
        return;
    weft__runtime *rt = w->rt;
    weft__worker *victim = NULL;
    size_t most = 1; /* a worker with one unstarted task runs it next: nothing to spare */
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *x = &rt->workers[i];
        size_t n = atomic_load_explicit(&x->steal.advertised, memory_order_relaxed);
        /* The busiest; in the debug mode, any with tasks to spare, at random. */
        if (x != w && n > 1 && !weft__watch_stuck(&x->watch) &&
            (w->sched.chaos ? !victim || weft__chaos_coin(w) : n > most)) {
            most = n;
            victim = x;
        }
    }
    if (!victim)
        return;
    weft__msg m = {msg_ask, NULL, w, 0};
    if (weft__smp_post(w, victim, &m) == 0) {
        w->steal.asked = true;
        w->steal.asked_of = victim;
    }
}

void weft__steal_idle(weft__worker *w, bool idle)
{
    if (stealing(w))
        atomic_store_explicit(&w->steal.idle, idle ? (w->steal.asked ? 2 : 1) : 0,
                              memory_order_seq_cst);
}

void weft__steal_tick(weft__worker *w)
{
    if (!stealing(w))
        return;
    size_t n = w->sched.nunstarted;
    atomic_store_explicit(&w->steal.advertised, n, memory_order_relaxed);
    if (n < 2)
        return;
    /* Someone idle that did not find us when it looked: wake one, it will ask. */
    weft__runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        weft__worker *x = &rt->workers[i];
        int expect = 1; /* idle, not asking: a 2 will hear from the worker it asked */
        if (x != w && atomic_compare_exchange_strong_explicit(
                          &x->steal.idle, &expect, 0, memory_order_seq_cst, memory_order_relaxed)) {
            weft__worker_ring(x);
            return;
        }
    }
}
