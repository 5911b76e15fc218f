/* Futures: the poll interface, await from a coroutine, and the futures weft ships (timer,
 * promise, first/all/timeout combinators). A future is polled with a context holding the
 * waker of the task that drives it; a pending future keeps the latest waker and wakes it
 * when it can make progress, and the driver polls it again. Combinators pass their own
 * context down, so one wake re-polls the whole tree (children already complete are
 * skipped). */
#include <errno.h>
#include <string.h>

#include "future.h"
#include "log.h"
#include "scheduler.h"
#include "timer.h"
#include "util/spinlock.h"
#include "wake.h"
#include "worker.h"

void weft_future_init(weft_future *f, const weft_future_ops *ops)
{
    if (!f)
        return; /* nothing to fill (weft.h): as the other void calls take NULL */
    f->ops = ops;
    f->ready = 0;
    f->status = 0;
    f->value = NULL;
}

void weft_future_complete(weft_future *f, int status, void *value)
{
    if (!f)
        return;
    f->status = status;
    f->value = value;
    f->ready = 1;
}

int weft_future_poll(weft_future *f, weft_context *cx)
{
    if (weft_unlikely(!f || !f->ops || !f->ops->poll || !cx))
        return -EINVAL; /* a user's own poll loop handed a NULL or uninitialised future */
    if (f->ready)
        return WEFT_READY;
    int r = f->ops->poll(f, cx);
    if (r == WEFT_READY) {
        f->ready = 1; /* in case poll returned READY without completing */
        return WEFT_READY;
    }
    if (weft_unlikely(r != WEFT_PENDING)) {
        /* Neither answer (a poll that returned its error, C-style): taken for PENDING, it
         * left the driver waiting for a wake that nobody had arranged, for ever. It fails
         * the future instead, with that errno (-EINVAL for a stray positive value). */
        weft_future_complete(f, r < 0 ? r : -EINVAL, NULL);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

void weft_future_destroy(weft_future *f)
{
    if (f && f->ops && f->ops->drop)
        f->ops->drop(f);
}

static const weft_future_ops promise_ops;
static bool promise_claim(weft_future *self, weft_task *t);

int weft_await(weft_future *f, void **value, int64_t deadline)
{
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, false, &err);
    if (!w)
        return err;
    if (!f || !f->ops || !f->ops->poll)
        return -EINVAL;
    /* A future may arm timers, fd waits and tasks on the worker that polls it: its awaiter
     * stays there from now on (task.h). */
    weft__task_bind(t);
    if (f->ops == &promise_ops && !promise_claim(f, t))
        return -EBUSY;
    weft__wait wr = {.kind = WEFT__WAIT_FUTURE, .what = f, .deadline = deadline};
    for (;;) {
        weft_context cx = {weft__waker_of(t)};
        if (weft_future_poll(f, &cx) == WEFT_READY) {
            if (value)
                *value = f->value;
            return f->status;
        }
        int r;
        if (WEFT__STATE(atomic_load_explicit(&t->word, memory_order_relaxed)) == WEFT__NOTIFIED) {
            /* Woken during its own poll (a future that asks to be polled again at once, as
             * Rust's yield_now does, or one completed from another thread meanwhile): the park
             * would consume the wake and return at once, and a future that always does this
             * would keep the worker here for ever, its deadline unseen (the park compares it
             * with the tick's clock). Yield instead, ending this run and its wake: the other
             * tasks, timers and I/O go first; then the deadline, as the park would see it:
             * against the tick's clock, never the fresh one, or the caller's weft_now() could
             * still read before the deadline that timed it out. */
            r = weft_yield();
            if (r == 0 && deadline != WEFT_FOREVER && t->worker->now >= deadline)
                r = -ETIMEDOUT;
        } else {
            r = weft__park(w, &wr);
        }
        w = t->worker;
        if (r < 0) {
            /* One last look: it may have completed as the deadline passed. */
            cx.waker = (weft_waker){NULL, 0};
            if (weft_future_poll(f, &cx) == WEFT_READY) {
                if (value)
                    *value = f->value;
                return f->status;
            }
            return r;
        }
    }
}

/* ---- Timer future ------------------------------------------------------------------- */

typedef struct timer_future {
    weft_future base;
    weft__worker *w;
    weft__timer timer;
    int64_t deadline;
} timer_future;

/* Whether the calling thread may touch w's timer heap: only w's own thread may (another
 * worker's poll or drop would corrupt it, unlocked). */
static bool on_own_worker(const weft__worker *w)
{
    return weft__worker_current() == w;
}

/* A timer future or a timeout dropped away from its worker: leaked, with a warning, rather
 * than its timer unlinked from another thread's heap. The warning goes to the log of the
 * caller's runtime, or to stderr outside every runtime: the future's own worker may be gone
 * (destroyed after weft_run returned), and is not read. */
static void leak_foreign(const char *what)
{
    weft__worker *here = weft__worker_current();
    weft__logf(here ? here->rt : NULL, WEFT_LOG_WARN,
               "weft: a %s destroyed outside its worker's thread: leaked rather than touched "
               "there\n",
               what);
}

static int timer_poll(weft_future *self, weft_context *cx)
{
    timer_future *tf = (timer_future *)self;
    if (!on_own_worker(tf->w)) {
        weft_future_complete(self, -EPERM, NULL);
        return WEFT_READY;
    }
    if (tf->w->now >= tf->deadline) {
        weft__timer_stop(tf->w, &tf->timer);
        weft_future_complete(self, 0, NULL);
        return WEFT_READY;
    }
    if ((!tf->timer.index || tf->timer.waker.task != cx->waker.task ||
         tf->timer.waker.epoch != cx->waker.epoch) &&
        weft__timer_start(tf->w, &tf->timer, tf->deadline, cx->waker) < 0) {
        weft_future_complete(self, -ENOMEM, NULL);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void timer_drop(weft_future *self)
{
    timer_future *tf = (timer_future *)self;
    if (tf->timer.index && !on_own_worker(tf->w)) {
        leak_foreign("weft_timer_future");
        return;
    }
    weft__timer_stop(tf->w, &tf->timer);
    weft__free(tf->w, tf);
}

static const weft_future_ops timer_ops = {timer_poll, timer_drop};

int weft_timer_future(weft_future **out, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!out)
        return -EINVAL;
    timer_future *tf = weft__malloc(w, sizeof *tf);
    if (!tf)
        return -ENOMEM;
    weft_future_init(&tf->base, &timer_ops);
    tf->w = w;
    tf->timer.index = 0;
    tf->deadline = deadline == WEFT_FOREVER ? INT64_MAX : deadline;
    *out = &tf->base;
    return 0;
}

/* ---- Promise -------------------------------------------------------------------------- */

/* A promise. Any thread may settle it and any task poll it: `settled`, `status`, `value`,
 * `dropped` and the wakers are under `lock` (a spinlock held for a few stores), so a settle
 * either finds the poller's waker or the poller finds it settled.
 *
 * Broken promises: a reference dropped while the promise is unsettled, leaving one, sets
 * `dropped`; when the one reference left is its awaiter's (an awaiter is parked on it at the
 * drop, or polls it later holding the only reference) nobody can settle it any more, and it
 * settles with -EPIPE rather than leave the awaiter to its deadline (futures-rs's Canceled,
 * C++'s broken_promise). */
struct weft_promise {
    weft_future base; /* its header: the poller's (weft_future_complete runs in poll) */
    _Atomic uint32_t lock;
    int settled;
    int dropped; /* a reference was dropped unsettled, leaving one */
    int status;
    void *value;
    /* The one awaiting task's latest waker: set by weft_await's claim, and by that task's
     * polls only. */
    weft_waker waiter;
    /* Other tasks' latest wakers, one per task, from polls (through combinators, which
     * weft_await's claim does not see): kept beside the awaiter's and each other's rather
     * than in their place, so that the settle wakes them all. The first
     * slot is `other`, so that an awaiter and one such poller allocate nothing; the next ones
     * are the `nmore` of `more`, allocated by the poll that found every slot taken (and
     * freed with the promise). A slot is free when empty, or when its waker is stale (its
     * task was woken since, so does not wait for it). */
    weft_waker other;
    weft_waker *more;
    size_t nmore;
    /* any thread: retain is relaxed (the caller already holds a reference); the release
     * that drops the count to zero is acq_rel, so every other holder's last use happens
     * before the free. */
    _Atomic unsigned refs;
};

/* Under the lock, unsettled: settles with `status` and wakes the awaiter. Woken under the
 * lock: an awaiter that gave up (its deadline, a cancel) makes one last poll, which takes
 * the lock; once it sees `settled` it may finish, and its runtime end and free the task
 * record the waker names. The lock makes the wake happen before that (a promise may be
 * settled from any thread or runtime). */
static void settle_locked(weft_promise *p, int status, void *value)
{
    p->settled = 1;
    p->status = status;
    p->value = value;
    weft_waker wk = p->waiter, wk_other = p->other;
    p->waiter = (weft_waker){NULL, 0};
    p->other = (weft_waker){NULL, 0};
    weft_waker_wake(wk);
    weft_waker_wake(wk_other);
    for (size_t i = 0; i < p->nmore; i++) {
        wk = p->more[i];
        p->more[i] = (weft_waker){NULL, 0};
        weft_waker_wake(wk);
    }
}

/* Whether waker `wk` is still current: its task not woken since it was made (its epoch is
 * the task's). The record a waker names stays allocated while its runtime runs (weft.h,
 * Wakers). */
static bool waker_current(weft_waker wk)
{
    weft_task *t = wk.task;
    return t && WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_acquire)) == wk.epoch;
}

/* Under the lock: whether `waiter` names a task other than `self` (the caller's task) that
 * is still parked for it (its epoch the task's): the awaiter of the moment, which a second
 * weft_await (promise_claim) may not displace. */
static bool waiter_of_another(const weft_promise *p, const weft_task *self)
{
    return self && p->waiter.task != self && waker_current(p->waiter);
}

/* The task whose poll runs on this thread, or NULL. */
static const weft_task *poller_task(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->current : NULL;
}

/* Slot i of the other pollers' wakers: `other`, then `more`. */
static weft_waker *other_slot(weft_promise *p, size_t i)
{
    return i == 0 ? &p->other : &p->more[i - 1];
}

/* Under the lock: the slot of the other pollers that holds task t's waker, or NULL. */
static weft_waker *others_own(weft_promise *p, const weft_task *t)
{
    for (size_t i = 0; t && i <= p->nmore; i++)
        if (other_slot(p, i)->task == t)
            return other_slot(p, i);
    return NULL;
}

/* The driver on whose behalf this thread's give-up poll is made (weft__future_forget): the
 * latest waker a dropped combinator passed down, or empty outside such a poll. owner: this
 * thread (a poll runs on one thread and never switches). */
static __thread weft_waker tls_forgetting;

void weft__future_forget(weft_future *f, weft_waker last)
{
    if (!f || !last.task || f->ready)
        return;
    weft_waker outer = tls_forgetting; /* a drop made inside another forget's poll */
    tls_forgetting = last;
    weft_context none = {{NULL, 0}};
    weft_future_poll(f, &none);
    tls_forgetting = outer;
}

/* Under the lock: a give-up poll made for a dropped combinator (tls_forgetting): frees the
 * slot among the others' that holds exactly the waker the combinator passed down, whichever
 * task drops it. A slot of that task holding a later waker is left: it is a later poll's,
 * through something still pending. `waiter` is never touched: it names a task only while
 * that task's own weft_await runs (its claim sets it; its last look or the settle clears
 * it), and that await, not a combinator's drop, owns it (a waker equal to one a combinator
 * passed down, polled just before the await at the same epoch, is the await's now). */
static void forget_locked(weft_promise *p, weft_waker gone)
{
    weft_waker *own = others_own(p, gone.task);
    if (own && own->epoch == gone.epoch)
        *own = (weft_waker){NULL, 0};
}

/* Under the lock, unsettled: keeps the waker of the poll's task (the task it wakes; for an
 * empty waker, the poller, which gives up and takes its own back). `waiter` is the awaiter's:
 * set by its claim (promise_claim), and kept up to date by its own polls. Any other task's
 * poll, made through a combinator, goes to a slot of its own among the others', and displaces
 * no one (in another's place it left that task parked for ever, the settle waking only the
 * later poller); nor does it take `waiter`, which a later weft_await would then have found
 * taken (-EBUSY with no other await). A driver giving up touches its own waker only: erasing
 * another's (such as weft_await's last look once its task was woken, after a second awaiter
 * on another worker had claimed the promise) left that one parked for ever. Returns false
 * when there was no free slot: the caller makes room (promise_poll). */
static bool keep_waker(weft_promise *p, weft_waker wk, const weft_task *self)
{
    if (!wk.task && tls_forgetting.task) {
        forget_locked(p, tls_forgetting);
        return true;
    }
    const weft_task *key = wk.task ? wk.task : self;
    if (!key) /* an empty waker outside every task: nothing of its own to take back */
        return true;
    if (p->waiter.task == key) {
        p->waiter = wk;
        return true;
    }
    weft_waker *own = others_own(p, key);
    if (own || !wk.task) {
        if (own)
            *own = wk;
        return true;
    }
    for (size_t i = 0; i <= p->nmore; i++) {
        weft_waker *s = other_slot(p, i);
        if (!waker_current(*s)) {
            *s = wk;
            return true;
        }
    }
    return false;
}

/* Under the lock: installs `room` (nroom slots, more than nmore) in place of `more`, its
 * wakers copied and the rest free. Returns the array replaced, for the caller to free once
 * unlocked. */
static weft_waker *grow_locked(weft_promise *p, weft_waker *room, size_t nroom)
{
    weft_waker *old = p->more;
    for (size_t i = 0; i < nroom; i++)
        room[i] = i < p->nmore ? p->more[i] : (weft_waker){NULL, 0};
    p->more = room;
    p->nmore = nroom;
    return old;
}

static int promise_poll(weft_future *self, weft_context *cx)
{
    weft_promise *p = (weft_promise *)self;
    const weft_task *me = NULL; /* the poller's task, looked up only for a waker to keep */
    weft_waker *room = NULL, *old = NULL;
    size_t nroom = 0;
    int settled;
    for (;;) {
        weft__spin_lock(&p->lock);
        /* The poller holds the only reference left after a drop: broken (above). relaxed: a
         * count of 1 cannot change under the one holder, who is polling. */
        if (!p->settled && p->dropped && atomic_load_explicit(&p->refs, memory_order_relaxed) == 1)
            settle_locked(p, -EPIPE, NULL);
        settled = p->settled;
        if (settled)
            break;
        if (!me)
            me = poller_task();
        if (keep_waker(p, cx->waker, me))
            break;
        if (room && nroom > p->nmore) {
            old = grow_locked(p, room, nroom);
            room = NULL;
            keep_waker(p, cx->waker, me); /* into a free slot of the new ones */
            break;
        }
        /* Every slot holds another task's current waker: twice the room, allocated unlocked
         * (the lock is held for a few stores), and the poll made again (things may have
         * moved meanwhile). Only a second task polling through a combinator at once gets
         * here. */
        size_t n = p->nmore ? 2 * p->nmore : 2;
        weft__spin_unlock(&p->lock);
        weft__free(NULL, room);
        room = weft__malloc(weft__worker_current(), n * sizeof *room);
        nroom = n;
        if (!room) {
            /* No memory for its slot: nothing would wake the poller at the settle, so it is
             * woken now, to poll again soon (and try again), as a future that asks to be
             * polled again at once (weft_await yields then). */
            weft_waker_wake(cx->waker);
            return WEFT_PENDING;
        }
    }
    weft__spin_unlock(&p->lock);
    /* Rare (a third poller at once): tested, so that the common poll makes no call to free. */
    if (weft_unlikely(room || old)) {
        weft__free(NULL, room); /* unused: the poll found a slot after all */
        weft__free(NULL, old);
    }
    if (!settled)
        return WEFT_PENDING;
    /* Settled: the fields no longer change (settle happens once). */
    weft_future_complete(self, p->status, p->value);
    return WEFT_READY;
}

/* weft_await's claim on an unsettled promise, under its lock: refused while the waker of
 * another task's await sits there still current (its task not woken since: the waker's epoch
 * is the task's), since one await would take the other's place and leave it parked for ever
 * (one awaiter at a time, weft.h); else our waker goes in, so that a second claim racing
 * this one sees it (and leaves the slot it may have had among the others'). An awaiter's
 * waker left behind by an await that ended is stale (its task was woken since), and is
 * replaced. The record a waker names stays allocated while its runtime runs (weft.h,
 * Wakers). */
static bool promise_claim(weft_future *self, weft_task *t)
{
    weft_promise *p = (weft_promise *)self;
    bool ok = true;
    weft__spin_lock(&p->lock);
    if (!p->settled) {
        weft_waker *own = others_own(p, t);
        if (waiter_of_another(p, t)) {
            ok = false;
        } else {
            p->waiter = weft__waker_of(t);
            if (own) /* now in `waiter`: not twice */
                *own = (weft_waker){NULL, 0};
        }
    }
    weft__spin_unlock(&p->lock);
    return ok;
}

/* Under the lock: whether a slot of `more` holds a waker. */
static bool any_more(const weft_promise *p)
{
    for (size_t i = 0; i < p->nmore; i++)
        if (p->more[i].task)
            return true;
    return false;
}

static void promise_drop(weft_future *self)
{
    weft_promise *p = (weft_promise *)self;
    unsigned n = atomic_load_explicit(&p->refs, memory_order_relaxed);
    /* Above two, a plain decrement (a CAS, so that of two drops racing from three, one sees
     * two). acq_rel: every holder's use happens before the free (the count reaching zero). */
    while (n > 2)
        if (atomic_compare_exchange_weak_explicit(&p->refs, &n, n - 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    /* Two or one: the decrement is made under the lock, as the poll reads the count under it.
     * Made after the unlock, a first poll in between saw two references and no settle,
     * left its waker and parked; the decrement then left it the only holder of a promise
     * nobody would settle or wake (a wait to its deadline, for ever without one). Under the
     * lock, the drop that leaves one sees the waker, or the poll sees one reference. And the
     * last drop frees only once it has had the lock: another drop's, which decremented to
     * one under it, has left. */
    weft__spin_lock(&p->lock);
    n = atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
    if (n == 2 && !p->settled) {
        /* This drop leaves one. A parked awaiter holds the one left (its waker is cleared
         * by its last poll, under the lock, before it can drop it). */
        p->dropped = 1;
        if (p->waiter.task || p->other.task || any_more(p))
            settle_locked(p, -EPIPE, NULL);
    }
    weft__spin_unlock(&p->lock);
    if (n == 1) { /* by whichever thread drops the last reference */
        if (p->more)
            weft__free(NULL, p->more);
        weft__free(NULL, p);
    }
}

static const weft_future_ops promise_ops = {promise_poll, promise_drop};

int weft_promise_create(weft_promise **out)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!out)
        return -EINVAL;
    weft_promise *p = weft__malloc(w, sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    weft_future_init(&p->base, &promise_ops);
    atomic_init(&p->refs, 1);
    *out = p;
    return 0;
}

weft_future *weft_promise_future(weft_promise *p)
{
    return p ? &p->base : NULL;
}

void weft_promise_retain(weft_promise *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void weft_promise_release(weft_promise *p)
{
    if (p)
        promise_drop(&p->base);
}

static int settle(weft_promise *p, int status, void *value)
{
    weft__spin_lock(&p->lock);
    if (p->settled) {
        weft__spin_unlock(&p->lock);
        return -EALREADY;
    }
    settle_locked(p, status, value);
    weft__spin_unlock(&p->lock);
    return 0;
}

int weft_promise_resolve(weft_promise *p, void *value)
{
    if (!p)
        return -EINVAL;
    return settle(p, 0, value);
}

int weft_promise_reject(weft_promise *p, int err)
{
    if (!p || err >= 0)
        return -EINVAL;
    return settle(p, err, NULL);
}

/* ---- Combinators ---------------------------------------------------------------------- */

typedef struct combo_future {
    weft_future base;
    weft__worker *w;
    weft__timer timer; /* timeout only */
    int64_t deadline;  /* timeout only */
    /* The waker of its latest poll, which the pending children it polled may keep: its drop
     * takes it back from them (weft__future_forget). owner: its poller. */
    weft_waker polled;
    size_t n;
    weft_future *fs[]; /* borrowed children */
} combo_future;

/* A child left pending by a combinator that completes keeps the poller's waker, and may be
 * settled later by a thread outside the runtime (a promise, a shared future), after the
 * runtime has freed the task record the waker names: one more poll with no waker takes it
 * back, as weft_await's last look does for the future it gave up on. */
static void forget_waker(weft_future *f)
{
    weft_context none = {{NULL, 0}};
    weft_future_poll(f, &none);
}

static int first_poll(weft_future *self, weft_context *cx)
{
    combo_future *c = (combo_future *)self;
    c->polled = cx->waker;
    for (size_t i = 0; i < c->n; i++) {
        if (weft_future_poll(c->fs[i], cx) == WEFT_READY) {
            weft_future_complete(self, (int)i, c->fs[i]->value);
            for (size_t k = 0; k < c->n; k++) /* the losers, which stay the caller's */
                if (k != i)
                    forget_waker(c->fs[k]);
            return WEFT_READY;
        }
    }
    return WEFT_PENDING;
}

static int all_poll(weft_future *self, weft_context *cx)
{
    combo_future *c = (combo_future *)self;
    c->polled = cx->waker;
    size_t nready = 0;
    for (size_t i = 0; i < c->n; i++)
        nready += weft_future_poll(c->fs[i], cx) == WEFT_READY;
    if (nready < c->n)
        return WEFT_PENDING;
    weft_future_complete(self, 0, NULL);
    return WEFT_READY;
}

static int timeout_poll(weft_future *self, weft_context *cx)
{
    combo_future *c = (combo_future *)self;
    if (!on_own_worker(c->w)) {
        weft_future_complete(self, -EPERM, NULL);
        return WEFT_READY;
    }
    c->polled = cx->waker;
    /* Past the deadline, the child's last look is made with no waker (forget_waker): it may
     * still win, and if it does not it keeps no waker of ours. */
    bool late = c->w->now >= c->deadline;
    weft_context none = {{NULL, 0}};
    if (weft_future_poll(c->fs[0], late ? &none : cx) == WEFT_READY) {
        weft__timer_stop(c->w, &c->timer);
        weft_future_complete(self, c->fs[0]->status, c->fs[0]->value);
        return WEFT_READY;
    }
    if (late) {
        weft__timer_stop(c->w, &c->timer);
        weft_future_complete(self, -ETIMEDOUT, NULL);
        return WEFT_READY;
    }
    if ((!c->timer.index || c->timer.waker.task != cx->waker.task ||
         c->timer.waker.epoch != cx->waker.epoch) &&
        weft__timer_start(c->w, &c->timer, c->deadline, cx->waker) < 0) {
        weft_future_complete(self, -ENOMEM, NULL);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void combo_drop(weft_future *self)
{
    combo_future *c = (combo_future *)self;
    /* Dropped pending: its children, borrowed and still alive (weft.h), may keep the waker of
     * its latest poll; kept by a promise that outlives the runtime, that waker was read
     * there after the task record it names was freed. A completed combinator left nothing
     * (first forgot its losers; all's and timeout's children completed or were given up). */
    if (!c->base.ready)
        for (size_t i = 0; i < c->n; i++)
            weft__future_forget(c->fs[i], c->polled);
    if (c->timer.index && !on_own_worker(c->w)) { /* only a timeout arms one */
        leak_foreign("weft_future_timeout");
        return;
    }
    weft__timer_stop(c->w, &c->timer);
    weft__free(c->w, c);
}

static const weft_future_ops first_ops = {first_poll, combo_drop};
static const weft_future_ops all_ops = {all_poll, combo_drop};
static const weft_future_ops timeout_ops = {timeout_poll, combo_drop};

static int combo_new(weft_future **out, weft_future *const *fs, size_t n,
                     const weft_future_ops *ops, combo_future **cp)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!out || !fs || n == 0 || n > ((size_t)1 << 20))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || !fs[i]->ops || !fs[i]->ops->poll)
            return -EINVAL;
    combo_future *c = weft__malloc(w, sizeof *c + n * sizeof c->fs[0]);
    if (!c)
        return -ENOMEM;
    weft_future_init(&c->base, ops);
    c->w = w;
    c->timer.index = 0;
    c->deadline = INT64_MAX;
    c->polled = (weft_waker){NULL, 0};
    c->n = n;
    memcpy(c->fs, fs, n * sizeof fs[0]);
    *out = &c->base;
    if (cp)
        *cp = c;
    return 0;
}

int weft_future_first(weft_future **out, weft_future *const *fs, size_t n)
{
    return combo_new(out, fs, n, &first_ops, NULL);
}

int weft_future_all(weft_future **out, weft_future *const *fs, size_t n)
{
    return combo_new(out, fs, n, &all_ops, NULL);
}

int weft_future_timeout(weft_future **out, weft_future *f, int64_t deadline)
{
    combo_future *c;
    int r = combo_new(out, &f, 1, &timeout_ops, &c);
    if (r == 0)
        c->deadline = deadline == WEFT_FOREVER ? INT64_MAX : deadline;
    return r;
}
