/* Futures built from other futures (issue 14 §2): ready and pending constructors, map,
 * and-then and or-else chains, a join of N with every child's result, and the shared future
 * that any number of tasks await at once. A chain owns its futures and polls at most one at a
 * time with its own context, so one wake re-polls the stage that is running; a shared future
 * is driven by one stackless task on its creator's worker, and every awaiter parks on a list
 * of waiter nodes on its own stack (the channel's and sync.c's shape: linked, and its waker
 * stored, under a spinlock that the park releases once the task is marked parked). */
#include <errno.h>
#include <string.h>

#include "future.h"
#include "scheduler.h"
#include "util/list.h"
#include "util/spinlock.h"
#include "wake.h"
#include "worker.h"

/* ---- ready and pending ---------------------------------------------------------------- */

/* Both are a bare header: ready is completed at creation, pending never completes. */
static int pending_poll(weft_future *self, weft_context *cx)
{
    (void)self;
    (void)cx; /* nothing will ever make progress: no waker is kept */
    return WEFT_PENDING;
}

static void bare_drop(weft_future *self)
{
    weft__free(NULL, self); /* by whichever thread destroys it */
}

static const weft_future_ops ready_ops = {pending_poll, bare_drop}; /* never polled: ready */
static const weft_future_ops pending_ops = {pending_poll, bare_drop};

int weft_future_ready(weft_future **out, int status, void *value)
{
    if (!out)
        return -EINVAL;
    weft_future *f = weft__malloc(weft__worker_current(), sizeof *f);
    if (!f)
        return -ENOMEM;
    weft_future_init(f, &ready_ops);
    weft_future_complete(f, status, value);
    *out = f;
    return 0;
}

int weft_future_pending(weft_future **out)
{
    if (!out)
        return -EINVAL;
    weft_future *f = weft__malloc(weft__worker_current(), sizeof *f);
    if (!f)
        return -ENOMEM;
    weft_future_init(f, &pending_ops);
    *out = f;
    return 0;
}

/* ---- map, and-then, or-else ------------------------------------------------------------ */

enum { CHAIN_MAP, CHAIN_AND_THEN, CHAIN_OR_ELSE };

/* owner: whichever task polls it (one at a time, as every future). */
typedef struct chain_future {
    weft_future base;
    int kind;          /* CHAIN_* */
    weft_future *f;    /* owned: the first stage */
    weft_future *next; /* owned: the second stage once fn gave it, else NULL */
    union {
        weft_map_fn map;
        weft_and_then_fn and_then;
        weft_or_else_fn or_else;
    } fn;
    void *arg;
    /* The waker of its latest poll, which the pending stage may keep: the drop takes it back
     * (weft__future_forget) before destroying the stage, which may outlive the chain (a
     * promise with another reference). */
    weft_waker polled;
} chain_future;

/* Whether `next`, set by fn, is a future the chain can own and drive: initialised (it has a
 * poll function), and neither the chain itself (its poll would recurse for ever) nor its
 * first stage, which the chain owns already (taken again, it would be destroyed twice). */
static bool next_is_new(const chain_future *c, const weft_future *next)
{
    return next && next != c->f && next != &c->base && next->ops && next->ops->poll;
}

/* Destroys a `next` the chain refuses (fn failed, or next_is_new said no), as the chain owns
 * it; but not one the chain holds already, which chain_drop destroys once. */
static void drop_refused(const chain_future *c, weft_future *next)
{
    if (next != c->f && next != &c->base)
        weft_future_destroy(next);
}

/* The first stage has completed: runs fn. Returns READY if that completed the chain, or
 * PENDING with c->next set to the stage to drive. */
static int chain_step(chain_future *c)
{
    int status = c->f->status;
    void *value = c->f->value;
    weft_future *next = NULL;
    switch (c->kind) {
    case CHAIN_MAP:
        if (status >= 0)
            value = c->fn.map(value, c->arg);
        weft_future_complete(&c->base, status, value);
        return WEFT_READY;
    case CHAIN_AND_THEN:
        if (status < 0) { /* an error skips fn, as Rust's and_then does */
            weft_future_complete(&c->base, status, NULL);
            return WEFT_READY;
        }
        status = c->fn.and_then(value, c->arg, &next);
        if (status >= 0 && !next_is_new(c, next))
            status = -EINVAL; /* the contract: 0 with a new future, or a negative errno */
        if (status < 0) {
            drop_refused(c, next);
            weft_future_complete(&c->base, status, NULL);
            return WEFT_READY;
        }
        break;
    default: /* CHAIN_OR_ELSE */
        if (status >= 0) {
            weft_future_complete(&c->base, status, value);
            return WEFT_READY;
        }
        value = NULL;
        status = c->fn.or_else(status, c->arg, &next, &value);
        if (status >= 0 && next && !next_is_new(c, next))
            status = -EINVAL; /* a replacement it cannot drive, as and-then's */
        if (status < 0 || !next) {
            drop_refused(c, next);
            weft_future_complete(&c->base, status, status < 0 ? NULL : value);
            return WEFT_READY;
        }
        break;
    }
    c->next = next;
    return WEFT_PENDING;
}

static int chain_poll(weft_future *self, weft_context *cx)
{
    chain_future *c = (chain_future *)self;
    c->polled = cx->waker;
    if (!c->next) {
        if (weft_future_poll(c->f, cx) != WEFT_READY)
            return WEFT_PENDING;
        if (chain_step(c) == WEFT_READY)
            return WEFT_READY;
    }
    /* Polled at once with this context, so that its waker is the driver's. */
    if (weft_future_poll(c->next, cx) != WEFT_READY)
        return WEFT_PENDING;
    weft_future_complete(self, c->next->status, c->next->value);
    return WEFT_READY;
}

static void chain_drop(weft_future *self)
{
    chain_future *c = (chain_future *)self;
    if (!c->base.ready) /* the stage it was driving: next once fn gave it, else f */
        weft__future_forget(c->next ? c->next : c->f, c->polled);
    weft_future_destroy(c->f);
    weft_future_destroy(c->next);
    weft__free(NULL, c);
}

static const weft_future_ops chain_ops = {chain_poll, chain_drop};

static int chain_new(weft_future **out, weft_future *f, int kind, bool has_fn, void *arg)
{
    if (!out || !f || !f->ops || !f->ops->poll || !has_fn)
        return -EINVAL;
    chain_future *c = weft__malloc(weft__worker_current(), sizeof *c);
    if (!c)
        return -ENOMEM;
    weft_future_init(&c->base, &chain_ops);
    c->kind = kind;
    c->f = f;
    c->next = NULL;
    c->arg = arg;
    c->polled = (weft_waker){NULL, 0};
    *out = &c->base;
    return 0;
}

int weft_future_map(weft_future **out, weft_future *f, weft_map_fn fn, void *arg)
{
    int r = chain_new(out, f, CHAIN_MAP, fn != NULL, arg);
    if (r == 0)
        ((chain_future *)*out)->fn.map = fn;
    return r;
}

int weft_future_and_then(weft_future **out, weft_future *f, weft_and_then_fn fn, void *arg)
{
    int r = chain_new(out, f, CHAIN_AND_THEN, fn != NULL, arg);
    if (r == 0)
        ((chain_future *)*out)->fn.and_then = fn;
    return r;
}

int weft_future_or_else(weft_future **out, weft_future *f, weft_or_else_fn fn, void *arg)
{
    int r = chain_new(out, f, CHAIN_OR_ELSE, fn != NULL, arg);
    if (r == 0)
        ((chain_future *)*out)->fn.or_else = fn;
    return r;
}

/* ---- join of N ---------------------------------------------------------------------------- */

typedef struct join_future {
    weft_future base;
    int *statuses; /* the caller's arrays, filled once every child has completed */
    void **values;
    weft_waker polled; /* its latest poll's, taken back at a pending drop (as chain's) */
    size_t n;
    weft_future *fs[]; /* borrowed children */
} join_future;

static int join_poll(weft_future *self, weft_context *cx)
{
    join_future *j = (join_future *)self;
    j->polled = cx->waker;
    size_t nready = 0;
    for (size_t i = 0; i < j->n; i++)
        nready += weft_future_poll(j->fs[i], cx) == WEFT_READY;
    if (nready < j->n)
        return WEFT_PENDING;
    int nfailed = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (j->statuses)
            j->statuses[i] = j->fs[i]->status;
        if (j->values)
            j->values[i] = j->fs[i]->value;
        nfailed += j->fs[i]->status < 0;
    }
    weft_future_complete(self, nfailed, NULL);
    return WEFT_READY;
}

static void join_drop(weft_future *self)
{
    join_future *j = (join_future *)self;
    if (!j->base.ready) /* the children are borrowed and still alive (weft.h) */
        for (size_t i = 0; i < j->n; i++)
            weft__future_forget(j->fs[i], j->polled);
    weft__free(NULL, self);
}

static const weft_future_ops join_ops = {join_poll, join_drop};

int weft_future_join(weft_future **out, weft_future *const *fs, size_t n, int *statuses,
                     void **values)
{
    /* 2^20 children: the bound weft_future_all and first take. */
    if (!out || !fs || n == 0 || n > ((size_t)1 << 20))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || !fs[i]->ops || !fs[i]->ops->poll)
            return -EINVAL;
    join_future *j = weft__malloc(weft__worker_current(), sizeof *j + n * sizeof j->fs[0]);
    if (!j)
        return -ENOMEM;
    weft_future_init(&j->base, &join_ops);
    j->statuses = statuses;
    j->values = values;
    j->polled = (weft_waker){NULL, 0};
    j->n = n;
    memcpy(j->fs, fs, n * sizeof fs[0]);
    *out = &j->base;
    return 0;
}

/* ---- Shared future -------------------------------------------------------------------------- */

/* A shared future. `settled`, `status`, `value` and `waiters` are under `lock` (a spinlock
 * held for a few stores, or for the walk that wakes every waiter); settled fields never
 * change again, so an awaiter that saw `settled` under the lock reads them after it. */
struct weft_shared {
    _Atomic uint32_t lock;
    int settled;
    int status;
    void *value;
    weft__list waiters; /* shared_waiter.link, oldest first */
    /* any thread: retain is relaxed (the caller holds a reference); the release that drops
     * the count to zero is acq_rel, so every holder's last use happens before the free. */
    _Atomic unsigned refs;
};

/* An awaiter, on its task's stack; every field under the shared future's lock. */
typedef struct shared_waiter {
    weft__list link;
    weft_waker waker;
    bool woken; /* unlinked by the settle: the waiter's frame is no longer referenced */
} shared_waiter;

/* The driver: a stackless task's future that polls the user's future and settles the shared
 * state. owner: the driving task. */
typedef struct shared_driver {
    weft_future base;
    weft_shared *s;
    weft_future *f; /* owned */
} shared_driver;

static void shared_lock(weft_shared *s)
{
    weft__spin_lock(&s->lock);
}

static void shared_unlock(weft_shared *s)
{
    weft__spin_unlock(&s->lock);
}

static void shared_unlock_cb(void *s)
{
    shared_unlock(s);
}

/* Settles s once and wakes every awaiter. A waiter is parked, or about to take the lock to
 * look: either way it reads `woken` under the lock after this, so its node is not touched
 * once the lock is released. The wake goes to another worker's inbox, or a thread's futex,
 * as needed (weft_waker_wake). */
static void shared_settle(weft_shared *s, int status, void *value)
{
    shared_lock(s);
    if (!s->settled) {
        s->settled = 1;
        s->status = status;
        s->value = value;
        while (!weft__list_empty(&s->waiters)) {
            shared_waiter *wt = weft__container_of(s->waiters.next, shared_waiter, link);
            weft__list_remove(&wt->link);
            wt->woken = true;
            weft_waker_wake(wt->waker);
        }
    }
    shared_unlock(s);
}

static int driver_poll(weft_future *self, weft_context *cx)
{
    shared_driver *d = (shared_driver *)self;
    if (weft_future_poll(d->f, cx) != WEFT_READY)
        return WEFT_PENDING;
    shared_settle(d->s, d->f->status, d->f->value);
    weft_future_complete(self, d->f->status, NULL);
    return WEFT_READY;
}

static void driver_drop(weft_future *self)
{
    shared_driver *d = (shared_driver *)self;
    /* Dropped unfinished: its task was cancelled (runtime shutdown). Awaiters must not wait
     * forever: they get -ECANCELED (a no-op if it settled). */
    shared_settle(d->s, -ECANCELED, NULL);
    weft_future_destroy(d->f);
    weft_shared_release(d->s);
    weft__free(NULL, d);
}

static const weft_future_ops driver_ops = {driver_poll, driver_drop};

int weft_shared_create(weft_shared **out, weft_future *f)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!out || !f || !f->ops || !f->ops->poll)
        return -EINVAL;
    weft_shared *s = weft__malloc(w, sizeof *s);
    shared_driver *d = weft__malloc(w, sizeof *d);
    if (!s || !d) {
        weft__free(w, s);
        weft__free(w, d);
        return -ENOMEM;
    }
    memset(s, 0, sizeof *s);
    weft__list_init(&s->waiters);
    atomic_init(&s->refs, 2); /* the caller's and the driver's */
    weft_future_init(&d->base, &driver_ops);
    d->s = s;
    d->f = f;
    /* Pinned: f may be bound to this worker (a timer future is). Detached: nobody joins it;
     * the shared state carries its outcome. */
    weft_spawn_opts opts = {.name = "weft_shared",
                            .flags = WEFT_SPAWN_DETACHED | WEFT_SPAWN_PINNED};
    int r = weft_spawn_future(NULL, &d->base, &opts);
    if (r < 0) { /* f stays the caller's */
        weft__free(w, s);
        weft__free(w, d);
        return r;
    }
    *out = s;
    return 0;
}

void weft_shared_retain(weft_shared *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void weft_shared_release(weft_shared *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        weft__free(NULL, s);
}

int weft_shared_await(weft_shared *s, void **value, int64_t deadline)
{
    weft_task *t = NULL;
    int r;
    weft__worker *w = weft__blocking_begin_any(&t, &r);
    if (!t)
        return r;
    if (!s)
        return -EINVAL;
    shared_lock(s);
    if (!s->settled) {
        if (weft__task_cancelled(t)) {
            shared_unlock(s);
            return -ECANCELED;
        }
        shared_waiter wt = {.woken = false};
        weft__list_push_back(&s->waiters, &wt.link);
        weft__wait wr = {.kind = WEFT__WAIT_FUTURE,
                         .what = s,
                         .deadline = deadline,
                         .unlock = shared_unlock_cb,
                         .lock = s};
        for (;;) {
            wt.waker = weft__waker_of(t); /* under the lock: the settle reads it there */
            r = weft__park(w, &wr);
            w = t->worker; /* see weft__park: re-read after the switch */
            shared_lock(s);
            if (wt.woken) /* a settle that raced the deadline or the cancellation wins */
                break;
            if (r < 0) {
                weft__list_remove(&wt.link);
                shared_unlock(s);
                return r;
            }
            /* Woken at this epoch by another waker: park again. */
        }
    }
    int status = s->status;
    if (value)
        *value = s->value;
    shared_unlock(s);
    return status;
}

int weft_shared_try(weft_shared *s, void **value)
{
    if (!s)
        return -EINVAL;
    shared_lock(s);
    int r = s->settled ? s->status : -EAGAIN;
    if (s->settled && value)
        *value = s->value;
    shared_unlock(s);
    return r;
}

/* ---- A shared future's per-holder future ---------------------------------------------------- */

/* A future over a shared one, for combinators and stackless tasks: it holds a reference and,
 * while pending, a waiter node of its own (in this allocation, not on a stack), linked with
 * the poller's latest waker. A settle unlinks it and wakes that waker; a drop unlinks it
 * under the lock, so the settle never touches a freed node. owner: its poller (the node's
 * fields: the shared future's lock). */
typedef struct shared_view {
    weft_future base;
    weft_shared *s;
    shared_waiter node;
    bool linked; /* under s's lock: node is in s->waiters (false once a settle unlinked it) */
} shared_view;

static int view_poll(weft_future *self, weft_context *cx)
{
    shared_view *sv = (shared_view *)self;
    weft_shared *s = sv->s;
    shared_lock(s);
    if (s->settled) {
        int status = s->status;
        void *value = s->value;
        shared_unlock(s);
        weft_future_complete(self, status, value);
        return WEFT_READY;
    }
    sv->node.waker = cx->waker; /* the latest poller's: see weft_future_ops */
    if (sv->node.woken || !sv->linked) {
        sv->node.woken = false;
        weft__list_push_back(&s->waiters, &sv->node.link);
        sv->linked = true;
    }
    shared_unlock(s);
    return WEFT_PENDING;
}

static void view_drop(weft_future *self)
{
    shared_view *sv = (shared_view *)self;
    shared_lock(sv->s);
    if (sv->linked && !sv->node.woken)
        weft__list_remove(&sv->node.link);
    shared_unlock(sv->s);
    weft_shared_release(sv->s);
    weft__free(NULL, sv);
}

static const weft_future_ops view_ops = {view_poll, view_drop};

int weft_shared_future(weft_shared *s, weft_future **out)
{
    if (!s || !out)
        return -EINVAL;
    shared_view *sv = weft__malloc(weft__worker_current(), sizeof *sv);
    if (!sv)
        return -ENOMEM;
    weft_future_init(&sv->base, &view_ops);
    weft_shared_retain(s);
    sv->s = s;
    sv->node = (shared_waiter){.woken = false};
    weft__list_init(&sv->node.link);
    sv->linked = false;
    *out = &sv->base;
    return 0;
}
