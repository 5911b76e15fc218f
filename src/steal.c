/* Stealing mode. The thief never touches the victim's queue: it posts a request (smp.c),
 * and the victim, on its own thread at its next tick, unlinks half of the tasks it may give
 * from its ready queue, re-homes them (t->worker, its counts) and posts them to the thief,
 * which adopts them. Every field of a task record is thus written by one thread at a time,
 * and the hand-over's message orders the two. The tasks it may give: those that never ran,
 * and with move_started those started ones that left nothing on this worker
 * (weft__task_movable: no timer in its heap, no waiter in its fd table, no ring operation,
 * nothing bound to it). Such a task's stack goes along (its counts move: weft__stack_give
 * and _take); it resumes on the thief, where the switch and every park re-read t->worker
 * (the migration rule). Handles follow the task: a join, detach or reap sent to its old
 * worker is forwarded (task_api.c). */
#include "probes.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "stack.h"
#include "steal.h"
#include "task.h"
#include "task_new.h"
#include "watchdog.h"
#include "worker.h"

/* Tasks handed over at most per request: half of what the victim has, up to this. 256: a
 * tick's worth for the thief without a long walk of the victim's queue. */
#define STEAL_MAX 256

static bool stealing(const weft__worker *w)
{
    return w->rt->cfg.mode == WEFT_MODE_STEALING && w->rt->nworkers > 1;
}

/* Queues a task handed to w (by a thief's answer, or back after a failed one): a started one
 * with its stack counted here, a new one as unstarted. */
static void queue_handed(weft__worker *w, weft_task *t)
{
    if (t->flags & WEFT__T_STARTED) {
        weft__stack_take(w, t->stack);
        weft__ready_push(&w->sched, t);
    } else {
        weft__ready_push_new(&w->sched, t);
    }
}

/* On the victim: warm stacks a thief sent back for the started tasks it took. */
static void msg_stacks_back(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)b, (void)c;
    for (weft__stack *s = a, *next; s; s = next) {
        next = s->next;
        weft__stack_pool_add(w, s);
    }
}

/* On the thief: tasks handed over by `b` (a list through `next`), or none (an empty answer).
 * For each started one (its stack came along) a warm stack of the same class goes back to
 * `b` if this worker's pool has one: see weft__stack_lend. */
static void msg_take(weft__worker *w, void *a, void *b, uint64_t n)
{
    weft__worker *victim = b;
    w->steal.asked = false;
    WEFT_PROBE2(steal, w->index, n);
    if (n)
        weft__smp_busy(w); /* a stopping worker that was done has tasks again */
    weft__stack *back = NULL;
    for (weft_task *t = a; t;) {
        weft_task *next = t->next;
        weft__task_adopt(w, t);
        if (t->flags & WEFT__T_STARTED) {
            weft__stack *s = weft__stack_lend(w, t->stack->cls);
            if (s) {
                s->next = back;
                back = s;
            }
        }
        queue_handed(w, t);
        w->stats.nsteals++;
        t = next;
    }
    weft__msg m = {msg_stacks_back, back, NULL, 0};
    if (back && weft__smp_post(w, victim, &m) < 0)
        msg_stacks_back(w, back, NULL, 0); /* no memory for the message: they stay here */
}

/* A task that has never run and may go: stackful (a stackless one is polled where it was
 * made) and not pinned. */
static bool handable_new(const weft_task *t)
{
    return !(t->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS | WEFT__T_PINNED));
}

/* Tasks w may give as far as it knows without a walk: its never-run ones, and with
 * move_started its queued started ones (which the walk sorts), unless a walk found none
 * movable a moment ago (barren_ticks). Owner thread. */
static size_t spare(const weft__worker *w)
{
    const weft__sched *s = &w->sched;
    size_t n = s->nunstarted;
    if (s->move_started && !w->steal.barren_ticks)
        n = s->ready.len > s->nfront ? s->ready.len - s->nfront : 0;
    return n;
}

/* After a walk that examined started tasks: some given ends the pauses; none given in a walk
 * of the whole queue makes the next pause twice as long (a queue of tasks that cannot move
 * stops drawing requests). A walk that stopped early, its share found among never-run tasks,
 * says nothing of the rest. */
static void note_walk(weft__worker *w, size_t started_seen, size_t started_given, bool walked_all)
{
    if (!started_seen)
        return;
    if (started_given) {
        w->steal.barren_pause = 0;
        return;
    }
    if (!walked_all)
        return;
    unsigned p = w->steal.barren_pause;
    p = p < 64 ? 64 : p >= 4096 ? 4096 : p * 2;
    w->steal.barren_pause = p;
    w->steal.barren_ticks = p;
}

/* On the victim: the thief `b` asks. Walks the ready queue once, unlinking up to half of
 * the tasks it may give, oldest first: never-run ones, and (move_started) started ones that
 * left nothing on this worker (weft__task_movable), whose stacks go with them. The
 * timer-woken tasks at the head (nfront) stay. In depth-first order the oldest never-run
 * tasks are the last ones (the biggest subtrees of a fork-join tree): the walk passes over
 * the newer ones first. */
static void msg_ask(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)a, (void)c;
    weft__worker *thief = b;
    weft__sched *s = &w->sched;
    size_t want = spare(w) / 2;
    if (want > STEAL_MAX)
        want = STEAL_MAX;
    if (atomic_load_explicit(&w->rt->dumping, memory_order_relaxed))
        want = 0; /* a dump is listing the workers' tasks: none moves meanwhile */
    weft_task *given = NULL, **gtail = &given;
    size_t n = 0, nnew = 0, started_seen = 0;
    if (want && !w->tasks.shutting_down) {
        weft__fifo *q = &s->ready;
        weft_task *prev = NULL, *t = q->head;
        size_t newer = s->depth_first ? s->nunstarted - want : 0;
        for (size_t i = 0; t && n < want; i++) {
            weft_task *next = t->next;
            bool fresh = handable_new(t);
            bool movable = !fresh && s->move_started && weft__task_movable(t);
            started_seen += s->move_started && (t->flags & WEFT__T_STARTED);
            if (newer && !(t->flags & WEFT__T_STARTED)) {
                newer--;
                prev = t;
            } else if ((fresh || movable) && i >= s->nfront) {
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
                if (movable)
                    weft__stack_give(w, t->stack);
                else
                    nnew++;
                /* Re-homed here, on the owner's thread. Release: the thief may act on the
                 * record before the answer arrives (a join's message from a third worker,
                 * drained first, finds t->worker naming it: task_api.c's forwarded, with an
                 * acquire), and must see everything this worker did to it, its reads too
                 * (and, for a started task, to its stack). */
                __atomic_store_n(&t->worker, thief, __ATOMIC_RELEASE);
                n++;
            } else {
                prev = t;
            }
            t = next;
        }
        note_walk(w, started_seen, n - nnew, t == NULL);
        s->nunstarted -= nnew;
        s->lifo = NULL; /* it may have been handed over: the head is unknown now */
        w->tasks.nlive -= n;
        w->tasks.nrecords -= n;
    }
    weft__msg m = {msg_take, given, w, n};
    if (weft__smp_post(w, thief, &m) < 0) {
        /* No memory for the answer: keep them (still READY, where they were). */
        for (weft_task *t = given; t;) {
            weft_task *next = t->next;
            __atomic_store_n(&t->worker, w, __ATOMIC_RELAXED);
            weft__task_adopt(w, t); /* counts it here again */
            queue_handed(w, t);
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
    if (w->steal.barren_ticks)
        w->steal.barren_ticks--;
    size_t n = spare(w);
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
