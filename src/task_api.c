/* The public task calls: spawn, join, detach, cancel, yield, sleep, exit, self, task-local
 * values and cleanup handlers. They sit above the scheduler: a join or a sleep is a park
 * with a wait record like any other. */
#include <errno.h>
#include <string.h>

#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "task_api.h"
#include "task.h"
#include "task_new.h"
#include "wake.h"
#include "worker.h"

static inline int check_spawn(weft__worker *w, bool has_out, const weft_spawn_opts *opts)
{
    if (!w)
        return -EPERM;
    if (!has_out && !(opts && (opts->flags & WEFT_SPAWN_DETACHED)))
        return -EINVAL;
    return weft__spawn_opts_check(opts);
}

static inline __attribute__((always_inline)) int
spawn_unqueued(weft__worker *w, bool has_out, weft_task **out, weft_fn fn, void *arg,
               const weft_spawn_opts *opts, const char *file, int line)
{
    int r = check_spawn(w, has_out, opts);
    if (r < 0)
        return r;
    if (!fn)
        return -EINVAL;
    r = weft__task_new_inline(w, w, opts, false, file, line > 0 ? (uint32_t)line : 0, 0, NULL, out);
    if (r < 0)
        return r;
    (*out)->fn = fn;
    (*out)->arg = arg;
    return 0;
}

static inline __attribute__((always_inline)) int spawn_here(const char *file, int line,
                                                            weft_task **out, weft_fn fn, void *arg,
                                                            const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    weft_task *t;
    int r = spawn_unqueued(w, out != NULL, &t, fn, arg, opts, file, line);
    if (r < 0)
        return r;
    /* Set before the start: a detached child-first task may finish, and its record be reused,
     * before the start returns. */
    if (out)
        *out = (t->flags & WEFT__T_DETACHED) ? NULL : t;
    weft__spawn_start(w, t, opts && (opts->flags & WEFT_SPAWN_CHILD_FIRST));
    return 0;
}

int weft_spawn(weft_task **out, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    return spawn_here(NULL, 0, out, fn, arg, opts);
}

int weft_spawn_at(const char *file, int line, weft_task **out, weft_fn fn, void *arg,
                  const weft_spawn_opts *opts)
{
    return spawn_here(file, line, out, fn, arg, opts);
}

int weft_spawn_future(weft_task **out, weft_future *f, const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    int r = check_spawn(w, out != NULL, opts);
    if (r < 0)
        return r;
    if (!f || !f->ops || !f->ops->poll)
        return -EINVAL;
    weft_task *t;
    r = weft__task_new_inline(w, w, opts, true, NULL, 0, 0, NULL, &t);
    if (r < 0)
        return r;
    t->future = f;
    t->arg = f; /* what the spawn cleanup is given */
    weft__ready_push(&w->sched, t);
    if (out)
        *out = (t->flags & WEFT__T_DETACHED) ? NULL : t;
    return 0;
}

static bool task_is_done(const void *t)
{
    return weft__task_done(t);
}

static void msg_reap(weft__worker *w, void *a, void *b, uint64_t c);
static int post(weft__worker *from, weft__worker *to, weft__msg_fn fn, void *a, void *b,
                uint64_t c);

static void msg_reap_chain(weft__worker *w, void *a, void *b, uint64_t c);

/* Sends home's chain (it is not empty). From the loop, a full ring spills rather than waits;
 * from a task, post waits for room. Should the message not go (no memory for the ring), the
 * records stay unreaped until the runtime ends: the joins have still succeeded. */
static void send_chain(weft__worker *w, unsigned home)
{
    weft__reap_out *o = &w->tasks.reap_out[home];
    weft_task *head = o->head;
    w->tasks.npending -= o->n;
    o->head = NULL;
    o->n = 0;
    post(w, &w->rt->workers[home], msg_reap_chain, head, NULL, 0);
}

/* Reaps a finished t whose result was taken (see weft__task_release), on the worker it
 * finished on: ours, unless it ran on another (spawned there, or handed there by stealing
 * mode before it started). Another worker's records go home in chains (task.h, reap_out):
 * one message, and at most one doorbell, reaps up to WEFT__REAP_BATCH of them, instead of
 * one each; the loop sends what is chained at the end of the tick. */
static WEFT_NOINLINE void reap_elsewhere(weft__worker *w, weft__worker *home, weft_task *t)
{
    if (weft_unlikely(!w->tasks.reap_out)) {
        w->tasks.reap_out = weft__calloc(w, w->rt->nworkers, sizeof(weft__reap_out));
        if (!w->tasks.reap_out) {
            post(w, home, msg_reap, t, NULL, 0); /* one message for it alone */
            return;
        }
    }
    weft__reap_out *o = &w->tasks.reap_out[home->index];
    t->next = o->head; /* ours to write: see reap_out */
    o->head = t;
    w->tasks.npending++;
    if (++o->n == WEFT__REAP_BATCH)
        send_chain(w, home->index);
}

static inline void reap_joined(weft__worker *w, weft_task *t)
{
    weft__worker *home = __atomic_load_n(&t->worker, __ATOMIC_RELAXED);
    if (weft_likely(home == w))
        weft__task_release(w, t);
    else
        reap_elsewhere(w, home, t);
}

void weft__task_send_reaps(weft__worker *w)
{
    for (unsigned k = 0; k < w->rt->nworkers && w->tasks.npending; k++)
        if (w->tasks.reap_out[k].head)
            send_chain(w, k);
}

/* ---- Handles of tasks on other workers ----------------------------------------------------
 * Only a task's own worker touches its joiner, its flags and its place on a free list, so a
 * join or a detach of another worker's task is a message to that worker (smp.c), run there
 * on its loop. A cancel needs none: its flag and its wake are atomic. */

/* Stealing mode hands never-run tasks to idle workers (steal.c): a message that reaches a
 * worker the task has left goes on to the task's new worker. Returns true if it did. */
static bool forwarded(weft__worker *w, weft__msg_fn fn, weft_task *t, void *b, uint64_t c)
{
    /* Acquire: pairs with the re-homing store of a hand-over (steal.c), which this message may
     * overtake (it comes through another worker's ring than the hand-over's answer). */
    weft__worker *home = __atomic_load_n(&t->worker, __ATOMIC_ACQUIRE);
    if (weft_likely(home == w))
        return false;
    weft__msg m = {fn, t, b, c};
    weft__smp_post(w, home, &m); /* from the loop: spills rather than waits */
    return true;
}

/* Whether a task other than `self` is joining t (a task of t's worker, or a remote joiner,
 * registered by msg_join). A remote join that gave up (deadline, cancel) leaves its waker
 * behind (join_remote); it is stale once that task has run on (its epoch moved), and then
 * holds the handle no more: another task may join or detach t. */
static bool joined_by_other(const weft_task *t, const weft_task *self)
{
    if (!(t->flags & WEFT__T_JOINWAIT) || !t->joiner.task || t->joiner.task == self)
        return false;
    const weft_task *j = t->joiner.task;
    /* Relaxed: only whether that park is still the joiner's current one, which the joiner's
     * worker may change at any moment anyway (as for any waker: wake.c). */
    return WEFT__EPOCH(atomic_load_explicit(&j->word, memory_order_relaxed)) == t->joiner.epoch;
}

/* On a refused joiner's worker (msg_join): if it still waits in the join that was refused
 * (its epoch), it is told so and woken. */
static void msg_join_refused(weft__worker *w, void *a, void *b, uint64_t epoch)
{
    weft_task *joiner = a;
    if (forwarded(w, msg_join_refused, joiner, b, epoch))
        return;
    if (WEFT__EPOCH(atomic_load_explicit(&joiner->word, memory_order_relaxed)) != epoch)
        return; /* gave up meanwhile (deadline, cancel): nothing waits for the answer */
    weft__task_flags_set(joiner, WEFT__T_REFUSED);
    weft__wake_from(w, joiner, epoch);
}

/* On t's worker: a remote joiner (waker epoch c) waits for t. */
static void msg_join(weft__worker *w, void *a, void *b, uint64_t epoch)
{
    weft_task *t = a;
    if (forwarded(w, msg_join, t, b, epoch))
        return;
    weft_task *joiner = b;
    /* Detached (by a message that came first, or here): not the joiner's to take, and its
     * record is reaped at its end. */
    if (t->flags & WEFT__T_DETACHED) {
        post(w, __atomic_load_n(&joiner->worker, __ATOMIC_ACQUIRE), msg_join_refused, joiner, t,
             epoch);
        return;
    }
    if (weft__task_done(t)) {
        weft__wake_from(w, joiner, epoch); /* finished before the message came */
        return;
    }
    /* A joiner that gave up (deadline, cancel) before its message came has run on: its epoch
     * moved (a record's epochs only grow, across lives too). Its registration must not take
     * the place of a joiner that came since, whose wake it would swallow: one from this
     * worker, parked on t now, was waited for for ever. (Relaxed: a joiner still parked at
     * `epoch` is the only case that registers, and its wake, if it comes, decides.) */
    if (WEFT__EPOCH(atomic_load_explicit(&joiner->word, memory_order_relaxed)) != epoch)
        return;
    /* Another task registered since the joiner looked (one of this worker's, while the
     * message was on its way): it keeps t, and the joiner gets -EINVAL, as weft.h promises
     * the second of two joiners. Replacing it would leave it parked for ever. */
    if (joined_by_other(t, joiner)) {
        post(w, __atomic_load_n(&joiner->worker, __ATOMIC_ACQUIRE), msg_join_refused, joiner, t,
             epoch);
        return;
    }
    t->joiner = (weft_waker){joiner, epoch};
    weft__task_flags_set(t, WEFT__T_JOINWAIT);
}

/* On t's worker: its joiner on another worker took the result. */
static void msg_reap(weft__worker *w, void *a, void *b, uint64_t c)
{
    /* Not twice, should its handle have been joined twice (misuse): see msg_reap_chain. */
    if (!forwarded(w, msg_reap, a, b, c) && !weft__task_reaped(a))
        weft__task_release(w, a);
}

/* On the records' worker: a chain of finished records whose results other workers' joins
 * took (reap_joined). Each record finished here and stays here: a finished task never moves. */
static void msg_reap_chain(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)b, (void)c;
    for (weft_task *t = a, *next; t; t = next) {
        /* Already reaped: its handle was joined twice (misuse), here too. Its `next` now
         * links a free list, not the chain: the walk stops, so nothing is reaped twice; the
         * rest of the chain stays unreaped until the runtime ends. */
        if (weft_unlikely(weft__task_reaped(t)))
            return;
        next = t->next; /* the reap rewrites it */
        weft__task_release(w, t);
    }
}

/* On t's worker: detached by a holder on another worker (detach_remote). Not if it is
 * being joined meanwhile (a misuse the holder could not see): the joiner reaps it. */
static void msg_detach(weft__worker *w, void *a, void *b, uint64_t c)
{
    weft_task *t = a;
    if (forwarded(w, msg_detach, t, b, c))
        return;
    /* c: the id of the life the detach was asked for. A join on this worker that got in
     * first (it is refused once the bit is seen, but may have run before the bit was set)
     * may have reaped that life, and the record may be another task's now. */
    if (weft__task_reaped(t) || t->id != c || (t->flags & WEFT__T_DETACHED) ||
        joined_by_other(t, NULL))
        return;
    weft__task_flags_set(t, WEFT__T_DETACHED);
    if (weft__task_done(t) && !t->stack)
        weft__task_reap(w, t);
}

/* On t's worker: a task spawned there by weft_spawn_on. */
static void msg_adopt(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)b, (void)c;
    weft_task *t = a;
    weft__smp_busy(w); /* a stopping worker that was done has a task again */
    weft__task_adopt(w, t);
    weft__ready_push_new(&w->sched, t);
}

/* Posts to another worker; a stackful task waits for room in a full ring rather than
 * spilling (backpressure), anything else spills. */
static int post(weft__worker *from, weft__worker *to, weft__msg_fn fn, void *a, void *b, uint64_t c)
{
    /* The task came back (stealing mode hands tasks on, and back): run it here. Every
     * handler may run on a task's stack of its worker as well as on the loop's. */
    if (to == from) {
        fn(from, a, b, c);
        return 0;
    }
    weft__msg m = {fn, a, b, c};
    weft_task *self = weft__blocking_task(from);
    return self ? weft__smp_post_wait(from, self, to, &m) : weft__smp_post(from, to, &m);
}

/* Ends the calling task's run `e` where no park did (the park gave up before it parked: a
 * deadline already passed, a cancel already seen), as a park would have: wakers and
 * registrations made from that run (msg_join's) are stale from then on. A wake that came
 * for it (NOTIFIED) is consumed with it, as park_current does. Owner thread. */
static void end_run(weft_task *self, uint64_t e)
{
    uint64_t word = atomic_load_explicit(&self->word, memory_order_relaxed);
    while (WEFT__EPOCH(word) == e && !atomic_compare_exchange_weak_explicit(
                                         &self->word, &word, WEFT__WORD(e + 1, WEFT__RUNNING),
                                         memory_order_acq_rel, memory_order_relaxed))
        ;
}

/* A join holds the handle from its start to its end: the first of the joins and detaches
 * of one life to set its bit in `cancelled` (task.h) owns it, on whichever threads they run,
 * and every other is refused. A join that gives up (deadline, cancel) lets the handle go
 * again. Returns 0 (ours now) or -EINVAL. relaxed: the bits order nothing but themselves
 * (the result is read after DONE, loaded with acquire). */
static inline int claim_join(weft_task *t)
{
    return (atomic_fetch_or_explicit(&t->cancelled, WEFT__ASKED_JOINED, memory_order_relaxed) &
            (WEFT__ASKED_DETACH | WEFT__ASKED_JOINED))
               ? -EINVAL
               : 0;
}

static inline void unclaim_join(weft_task *t)
{
    atomic_fetch_and_explicit(&t->cancelled, (uint8_t)~WEFT__ASKED_JOINED, memory_order_relaxed);
}

/* weft_join of a task on another worker: registers the joiner there, parks until t is done
 * (its worker's finish wakes us through our inbox), then has it reaped there. */
static int join_remote(weft__worker *w, weft_task *self, weft_task *t, void **result,
                       int64_t deadline)
{
    /* Detached already, as its worker sees it (a detach still on its way is refused there:
     * msg_join). Relaxed: the flag is set once in a life. */
    if ((__atomic_load_n(&t->flags, __ATOMIC_RELAXED) & WEFT__T_DETACHED) ||
        (atomic_load_explicit(&t->cancelled, memory_order_relaxed) &
         (WEFT__ASKED_DETACH | WEFT__ASKED_JOINED)))
        return -EINVAL;
    if (claim_join(t) < 0)
        return -EINVAL;
    weft__worker *home = __atomic_load_n(&t->worker, __ATOMIC_RELAXED); /* it may move */
    while (!weft__task_done(t)) {
        /* Room first: a wait for it would end the run whose epoch the message carries. t may
         * have come to this worker since the caller looked, or this task to t's (stealing
         * mode hands tasks on: steal.c): no ring leads from a worker to itself, and the
         * registration is made here, as post() does. */
        int r = home == w ? 0 : weft__smp_wait_room(w, self, home);
        w = self->worker;
        uint64_t e = WEFT__EPOCH(atomic_load_explicit(&self->word, memory_order_relaxed));
        weft__msg m = {msg_join, t, self, e};
        if (r < 0) {
            unclaim_join(t);
            return r;
        }
        if (home == w)
            msg_join(w, t, self, e);
        else if ((r = weft__smp_post(w, home, &m)) < 0) {
            unclaim_join(t);
            return r;
        }
        weft__wait wr = {.kind = WEFT__WAIT_JOIN, .what = t, .deadline = deadline};
        r = weft__park(w, &wr);
        w = self->worker;
        /* Refused (msg_join_refused): another task joins t. The run ends here if the park
         * gave up without parking, as below. */
        if (weft_unlikely(self->flags & WEFT__T_REFUSED)) {
            weft__task_flags_clear(self, WEFT__T_REFUSED);
            end_run(self, e);
            unclaim_join(t); /* ours, though the join that holds t did not claim it */
            return -EINVAL;
        }
        /* A waker left registered is stale from now on: harmless. Unless the park gave up
         * without parking: then this run, which the message names, goes on, and t's worker
         * would take the registration for a live joiner's (joined_by_other: another task's
         * join of t got -EINVAL) and wake our next park. The run ends here instead. */
        if (r < 0 && !weft__task_done(t)) {
            end_run(self, e);
            unclaim_join(t);
            return r;
        }
    }
    /* The result is taken once: the claim above refused every other join and detach of the
     * handle (a second join after this one, the record not yet reaped since the reap is a
     * message, among them), so nothing reaps the record twice. */
    if (result)
        *result = t->result;      /* written before DONE, which we loaded with acquire */
    reap_joined(self->worker, t); /* by the worker it finished on */
    return 0;
}

/* Parks until t finishes; with `uncancellable`, neither a deadline nor the caller's own
 * cancellation ends the wait (for owners that must reap what they started). */
static int wait_done(weft__worker *w, weft_task *t, int64_t deadline, bool uncancellable)
{
    weft__wait wr = {.kind = WEFT__WAIT_JOIN,
                     .what = t,
                     .deadline = deadline,
                     .uncancellable = uncancellable,
                     .done = task_is_done,
                     .done_arg = t,
                     .waker = &t->joiner};
    weft__task_flags_set(t, WEFT__T_JOINWAIT);
    int r = weft__park_until(w, &wr);
    /* Given up: take the waker back, if t is still our worker's (its owner's field). Either
     * of us may have been handed to another worker meanwhile (steal.c); a waker left behind
     * is stale from now on, and harmless. */
    if (r < 0 && __atomic_load_n(&t->worker, __ATOMIC_ACQUIRE) == weft__worker_current())
        t->joiner = (weft_waker){NULL, 0};
    return r;
}

static int spawn_on(const char *file, int line, unsigned worker, weft_task **out, weft_fn fn,
                    void *arg, const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (worker >= w->rt->nworkers)
        return -EINVAL;
    weft__worker *home = &w->rt->workers[worker];
    if (home == w)
        return spawn_here(file, line, out, fn, arg, opts);
    int r = check_spawn(w, out != NULL, opts);
    if (r < 0)
        return r;
    if (!fn)
        return -EINVAL;
    weft_task *t;
    if ((r = weft__task_new_for(w, home, opts, false, file, line > 0 ? (uint32_t)line : 0, &t)) < 0)
        return r;
    t->fn = fn;
    t->arg = arg;
    /* Read before the hand-over: from then on only home touches the flags. */
    bool detached = (t->flags & WEFT__T_DETACHED) != 0;
    if ((r = post(w, home, msg_adopt, t, NULL, 0)) < 0) {
        weft__task_unnew(w, t);
        return r;
    }
    if (out)
        *out = detached ? NULL : t;
    return 0;
}

int weft_spawn_on(unsigned worker, weft_task **out, weft_fn fn, void *arg,
                  const weft_spawn_opts *opts)
{
    return spawn_on(NULL, 0, worker, out, fn, arg, opts);
}

int weft_spawn_on_at(const char *file, int line, unsigned worker, weft_task **out, weft_fn fn,
                     void *arg, const weft_spawn_opts *opts)
{
    return spawn_on(file, line, worker, out, fn, arg, opts);
}

/* Whether t is a handle w may act on: 0 (a task of w), 1 (a task of another worker of w's
 * runtime), -EINVAL (NULL, or another runtime's task) or -ESRCH (a stale handle: its record
 * was reaped, and sits unused. Another worker's record may be reused there at any moment,
 * and then names its new task: the limit weft.h states). */
static inline __attribute__((always_inline)) int check_handle(const weft__worker *w,
                                                              const weft_task *t)
{
    if (!t)
        return -EINVAL;
    /* Acquire: a task just handed to w by stealing is w's before its answer is drained
     * (see forwarded). */
    weft__worker *owner = __atomic_load_n(&t->worker, __ATOMIC_ACQUIRE);
    if (weft_unlikely(owner != w)) {
        if (!owner || owner->rt != w->rt)
            return -EINVAL;
        /* Relaxed, as weft_task_status reads it: set once the record is reaped, before it
         * goes back to the free list. */
        return weft__task_reaped(t) ? -ESRCH : 1;
    }
    return weft__task_reaped(t) ? -ESRCH : 0;
}

int weft_join(weft_task *t, void **result, int64_t deadline)
{
    weft_task *self;
    int err;
    weft__worker *w = weft__blocking_begin(&self, false, &err);
    if (!w)
        return err;
    if ((err = check_handle(w, t)) < 0)
        return err;
    if (err == 1)
        return join_remote(w, self, t, result, deadline);
    if (t == self) /* before the bits: another task's join of this one holds them */
        return -EDEADLK;
    /* Detached, or a detach from another worker on its way here (the bit it set first). */
    if ((t->flags & WEFT__T_DETACHED) ||
        (atomic_load_explicit(&t->cancelled, memory_order_relaxed) &
         (WEFT__ASKED_DETACH | WEFT__ASKED_JOINED)))
        return -EINVAL;
    if (joined_by_other(t, self) || claim_join(t) < 0)
        return -EINVAL;
    /* Finished already (a child-first task, or one that ran while the caller worked): the
     * wait would return 0 at once (its `done` is checked first), so none is built. */
    if (!weft__task_done(t)) {
        int r = wait_done(w, t, deadline, false);
        if (r < 0) {
            unclaim_join(t);
            return r;
        }
    }
    if (result)
        *result = t->result;
    reap_joined(self->worker, t);
    return 0;
}

void weft__join_uncancellable(weft__worker *w, weft_task *t)
{
    /* The joiner, taken before the wait: if it moved meanwhile, w is another thread's worker
     * now, and w->current not the joiner (gen.c and select.c met that). */
    weft_task *self = w->current;
    wait_done(w, t, WEFT_FOREVER, true);
    reap_joined(self->worker, t);
}

/* The calling thread's worker if t is a handle it may act on; else NULL with *err = -EPERM
 * (outside a runtime) or check_handle's error. *err is 1 for another worker's task. */
static weft__worker *handle_begin(weft_task *t, int *err)
{
    weft__worker *w = weft__worker_current();
    *err = w ? check_handle(w, t) : -EPERM;
    return *err < 0 ? NULL : w;
}

/* weft_detach of a task on another worker: the detach goes there by message, and the record's
 * WEFT__ASKED_DETACH bit (set here, from any thread) refuses a second detach and a later join at
 * once, as on the task's own worker; so the call never waits. */
static int detach_remote(weft__worker *w, weft_task *t)
{
    if (atomic_fetch_or_explicit(&t->cancelled, WEFT__ASKED_DETACH, memory_order_relaxed) &
        (WEFT__ASKED_DETACH | WEFT__ASKED_JOINED))
        return -EINVAL;
    return post(w, __atomic_load_n(&t->worker, __ATOMIC_ACQUIRE), msg_detach, t, NULL, t->id);
}

int weft_detach(weft_task *t)
{
    int r;
    weft__worker *w = handle_begin(t, &r);
    if (!w)
        return r;
    if (r == 1) /* an atomic load: a thief may be re-homing t right now (steal.c) */
        return detach_remote(w, t);
    if ((t->flags & WEFT__T_DETACHED) || joined_by_other(t, NULL) ||
        (atomic_fetch_or_explicit(&t->cancelled, WEFT__ASKED_DETACH, memory_order_relaxed) &
         (WEFT__ASKED_DETACH | WEFT__ASKED_JOINED)))
        return -EINVAL;
    weft__task_flags_set(t, WEFT__T_DETACHED);
    if (weft__task_done(t) && !t->stack)
        weft__task_reap(w, t);
    return 0;
}

int weft_cancel(weft_task *t)
{
    int r;
    if (!handle_begin(t, &r))
        return r;
    weft__task_cancel(t);
    return 0;
}

int weft_pin_self(void)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (!t)
        return -EPERM;
    weft__task_flags_set(t, WEFT__T_PINNED); /* owner thread: it is running here */
    return 0;
}

int weft_yield(void)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = weft__blocking_task(w);
    if (!t)
        return -EPERM;
    /* A cancelled task still yields: one that ignores -ECANCELED in a loop must not starve
     * the others (or the shutdown that waits for it). */
    t = weft__yield(w);
    return weft__task_cancelled(t) ? -ECANCELED : 0;
}

int weft_sleep_until(int64_t deadline)
{
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, false, &err);
    if (!w)
        return err;
    weft__wait wr = {.kind = WEFT__WAIT_SLEEP, .deadline = deadline};
    for (;;) {
        if (deadline != WEFT_FOREVER && w->now >= deadline)
            return 0;
        int r = weft__park(w, &wr);
        if (r == -ETIMEDOUT)
            return 0;
        if (r < 0)
            return r;
        w = t->worker;
    }
}

int weft_sleep(int64_t ns)
{
    if (ns <= 0)
        return weft_sleep_until(weft_deadline_in(ns)); /* passed: returns at once, as before */
    /* From the clock itself, not the tick's cached weft_now(): a task that spent longer than
     * ns in a call of its own since the tick began (a plain usleep, a long computation)
     * would get a deadline already passed, and return at once without letting the others
     * run. One vDSO read per sleep. */
    int64_t now = weft__clock_ns();
    return weft_sleep_until(ns > INT64_MAX - now ? INT64_MAX : now + ns);
}

int weft_exit(void *result)
{
    weft__worker *w = weft__worker_current();
    if (!weft__blocking_task(w))
        return -EPERM;
    weft__task_exit(w, result);
}

weft_task *weft_self(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->current : NULL;
}

uint64_t weft_task_id(const weft_task *t)
{
    return t && !weft__task_reaped(t) ? t->id : 0;
}

const char *weft_task_name(const weft_task *t)
{
    return t && !weft__task_reaped(t) ? t->name : "";
}

int weft_task_status(const weft_task *t)
{
    if (!t)
        return -EINVAL;
    if (weft__task_reaped(t))
        return -ESRCH;
    /* acquire: the result, written before DONE, is read after it. */
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    switch (WEFT__STATE(word)) {
    case WEFT__READY:
        return WEFT_TASK_READY;
    case WEFT__RUNNING:
    case WEFT__NOTIFIED: /* woken while still running, before its park */
        return WEFT_TASK_RUNNING;
    case WEFT__PARKED:
        return WEFT_TASK_PARKED;
    default:
        return t->result == WEFT_CANCELED ? WEFT_TASK_CANCELLED
               : t->result == WEFT_NOMEM  ? WEFT_TASK_FAILED
                                          : WEFT_TASK_FINISHED;
    }
}

int weft_canceled(void)
{
    weft_task *t = weft_self();
    if (!t)
        return -EPERM;
    return weft__task_cancelled(t) ? 1 : 0;
}

int weft_local_set(const void *key, void *value, void (*dtor)(void *))
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (!t)
        return -EPERM;
    if (!key)
        return -EINVAL;
    for (weft__node *n = t->locals; n; n = n->next) {
        if (n->key == key) {
            /* The new value first, then the old one's destructor: a destructor that sets
             * its own key again (free, then clear the key) then finds the new value, not
             * the one it is destroying, which it would destroy a second time. */
            void *old = n->arg;
            void (*old_dtor)(void *) = n->fn;
            n->arg = value;
            n->fn = dtor;
            if (old_dtor && old != value)
                old_dtor(old);
            return 0;
        }
    }
    weft__node *n = weft__node_get(w);
    if (!n)
        return -ENOMEM;
    n->key = key;
    n->arg = value;
    n->fn = dtor;
    n->next = t->locals;
    t->locals = n;
    return 0;
}

void *weft_local_get(const void *key)
{
    weft_task *t = weft_self();
    if (!t)
        return NULL;
    for (weft__node *n = t->locals; n; n = n->next)
        if (n->key == key)
            return n->arg;
    return NULL;
}

int weft_defer(void (*fn)(void *), void *arg)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (!t)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    return weft__task_defer(t, fn, arg);
}

int weft_defer_pop(int run)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (!t)
        return -EPERM;
    weft__node *n = t->defers;
    if (!n)
        return -ENOENT;
    t->defers = n->next;
    if (run)
        n->fn(n->arg);
    weft__node_put(w, n);
    return 0;
}
