/* Coroutine-aware synchronisation: mutex, condition variable, semaphore, wait group,
 * read-write lock, once and event, all on one FIFO wait queue.
 *
 * Design (musl's pthread_cond shape): waiter nodes live on the waiting task's stack and are
 * linked into the primitive's queue. A waker never just signals "try again": it *grants*
 * what the waiter waited for (the mutex, a semaphore unit, a read or write hold) before
 * waking it, so the waiter returns without re-checking, and nobody can barge in between.
 * That hand-off is what makes the mutex FIFO-fair. A waiter whose deadline passes or who is
 * cancelled unlinks itself, unless it was granted first, in which case it keeps the grant
 * and returns 0.
 *
 * Every primitive is a weft_sync_ overlaid with `sync_state`: the queue head (zero until the
 * first wait), an owner, and two counters. Only this file reads that storage, always as a
 * sync_state, and it is built with -fno-strict-aliasing (CMakeLists.txt) so that the overlay
 * stays sound under LTO too. Making these thread-safe for the multi-core
 * issue means a lock around each function body here, nothing more. */
#include <errno.h>
#include <stddef.h>

#include "internal.h"

typedef struct sync_state {
    weft__list q; /* waiters, oldest first; zeroed until first used */
    void *owner;  /* mutex / rwlock writer / once: the holding task */
    int64_t n0;   /* sem value, waitgroup count, rwlock readers, once state, event set */
    int64_t n1;   /* event: auto-reset */
} sync_state;

_Static_assert(sizeof(sync_state) <= sizeof(weft_sync_), "weft_sync_ too small");
_Static_assert(offsetof(sync_state, n0) == offsetof(weft_sync_, n_),
               "the static initialisers set n_[0] and n_[1]");

enum { KIND_ANY, KIND_READ, KIND_WRITE };

typedef struct waiter {
    weft__list link;
    weft_task *task;
    weft_waker waker;
    int kind;
    int granted;
} waiter;

static sync_state *st(weft_sync_ *s)
{
    sync_state *ss = (sync_state *)s;
    if (!ss->q.next)
        weft__list_init(&ss->q);
    return ss;
}

static waiter *first(sync_state *s)
{
    return weft__list_empty(&s->q) ? NULL : weft__container_of(s->q.next, waiter, link);
}

static void grant(waiter *wt)
{
    weft__list_remove(&wt->link);
    wt->granted = 1;
    weft_waker_wake(wt->waker);
}

/* Queues the caller and parks until granted, or the deadline/cancellation (then unlinked).
 * With `uncancellable`, only a grant ends the wait. */
static int wait_on(sync_state *s, weft__worker *w, weft_task *t, int kind, int64_t deadline,
                   int uncancellable)
{
    waiter wt = {.task = t, .kind = kind, .granted = 0};
    weft__list_push_back(&s->q, &wt.link);
    for (;;) {
        wt.waker = weft__waker_of(t);
        int r = uncancellable ? weft__park(w) : weft__park_until(w, deadline);
        if (wt.granted)
            return 0;
        if (r < 0) {
            weft__list_remove(&wt.link);
            return r;
        }
    }
}

/* The calling task, or NULL with *err set. */
static weft_task *caller(weft__worker **w, int *err)
{
    *w = weft__worker_current();
    weft_task *t = weft__blocking_task(*w);
    *err = t ? 0 : -EPERM;
    return t;
}

/* ---- Mutex ------------------------------------------------------------------------------ */

static int mutex_lock(weft_mutex *m, int64_t deadline, int uncancellable)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    sync_state *s = st(&m->s_);
    if (!s->owner) {
        s->owner = t;
        return 0;
    }
    if (s->owner == t)
        return -EDEADLK;
    return wait_on(s, w, t, KIND_ANY, deadline, uncancellable); /* granted: we own it */
}

int weft_mutex_lock(weft_mutex *m, int64_t deadline)
{
    return m ? mutex_lock(m, deadline, 0) : -EINVAL;
}

int weft_mutex_trylock(weft_mutex *m)
{
    weft_task *t = weft_self();
    if (!t)
        return -EPERM;
    sync_state *s = st(&m->s_);
    if (s->owner)
        return -EBUSY;
    s->owner = t;
    return 0;
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    sync_state *s = st(&m->s_);
    if (!s->owner || s->owner != weft_self())
        return -EPERM;
    waiter *wt = first(s);
    s->owner = wt ? wt->task : NULL; /* hand-off: the longest waiter owns it now */
    if (wt)
        grant(wt);
    return 0;
}

/* ---- Condition variable ------------------------------------------------------------------ */

int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!c || !m || st(&m->s_)->owner != t)
        return -EPERM;
    if (t->flags & WEFT__T_CANCELLED)
        return -ECANCELED;
    sync_state *cs = st(&c->s_);
    waiter wt = {.task = t, .kind = KIND_ANY, .granted = 0};
    weft__list_push_back(&cs->q, &wt.link);
    weft_mutex_unlock(m);
    int r = 0;
    while (!wt.granted) {
        wt.waker = weft__waker_of(t);
        r = weft__park_until(w, deadline);
        if (r < 0 && !wt.granted) {
            weft__list_remove(&wt.link);
            break;
        }
    }
    /* The mutex comes back whatever happened: callers rely on holding it on return. */
    mutex_lock(m, WEFT_FOREVER, 1);
    return wt.granted ? 0 : r;
}

int weft_cond_signal(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    waiter *wt = first(st(&c->s_));
    if (!wt)
        return 0;
    grant(wt);
    return 1;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    sync_state *s = st(&c->s_);
    int n = 0;
    for (waiter *wt; (wt = first(s)) != NULL; n++)
        grant(wt);
    return n;
}

/* ---- Semaphore --------------------------------------------------------------------------- */

int weft_sem_acquire(weft_sem *sem, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    if (s->n0 > 0 && weft__list_empty(&s->q)) { /* no barging past waiters */
        s->n0--;
        return 0;
    }
    return wait_on(s, w, t, KIND_ANY, deadline, 0); /* granted: the unit is ours */
}

int weft_sem_tryacquire(weft_sem *sem)
{
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    if (s->n0 > 0 && weft__list_empty(&s->q)) {
        s->n0--;
        return 0;
    }
    return -EAGAIN;
}

int weft_sem_release(weft_sem *sem, unsigned n)
{
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    if (s->n0 > INT64_MAX - (int64_t)n)
        return -EOVERFLOW;
    for (waiter *wt; n > 0 && (wt = first(s)) != NULL; n--)
        grant(wt); /* each waiter takes one unit straight from us */
    s->n0 += n;
    return 0;
}

int64_t weft_sem_value(const weft_sem *sem)
{
    return sem ? st((weft_sync_ *)&sem->s_)->n0 : -EINVAL;
}

/* ---- Wait group -------------------------------------------------------------------------- */

int weft_waitgroup_add(weft_waitgroup *wg, int64_t n)
{
    if (!wg)
        return -EINVAL;
    sync_state *s = st(&wg->s_);
    if (s->n0 + n < 0)
        return -EINVAL;
    s->n0 += n;
    if (s->n0 == 0)
        for (waiter *wt; (wt = first(s)) != NULL;)
            grant(wt);
    return 0;
}

int weft_waitgroup_done(weft_waitgroup *wg)
{
    return weft_waitgroup_add(wg, -1);
}

int weft_waitgroup_wait(weft_waitgroup *wg, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!wg)
        return -EINVAL;
    sync_state *s = st(&wg->s_);
    if (s->n0 == 0)
        return 0;
    return wait_on(s, w, t, KIND_ANY, deadline, 0);
}

void weft__waitgroup_wait_all(weft_waitgroup *wg)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    sync_state *s = st(&wg->s_);
    if (t && s->n0 > 0)
        wait_on(s, w, t, KIND_ANY, WEFT_FOREVER, 1);
}

/* ---- Read-write lock --------------------------------------------------------------------- */

/* Grants waiting holds in arrival order: a run of readers together, or one writer. */
static void rw_dispatch(sync_state *s)
{
    for (waiter *wt; (wt = first(s)) != NULL;) {
        if (wt->kind == KIND_WRITE) {
            if (s->owner || s->n0 > 0)
                return;
            s->owner = wt->task;
            grant(wt);
            return;
        }
        if (s->owner)
            return;
        s->n0++;
        grant(wt);
    }
}

int weft_rwlock_rdlock(weft_rwlock *l, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!l)
        return -EINVAL;
    sync_state *s = st(&l->s_);
    if (!s->owner && weft__list_empty(&s->q)) { /* a queued writer holds new readers back */
        s->n0++;
        return 0;
    }
    return wait_on(s, w, t, KIND_READ, deadline, 0);
}

int weft_rwlock_wrlock(weft_rwlock *l, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!l)
        return -EINVAL;
    sync_state *s = st(&l->s_);
    if (s->owner == t)
        return -EDEADLK;
    if (!s->owner && s->n0 == 0 && weft__list_empty(&s->q)) {
        s->owner = t;
        return 0;
    }
    return wait_on(s, w, t, KIND_WRITE, deadline, 0);
}

int weft_rwlock_unlock(weft_rwlock *l)
{
    if (!l)
        return -EINVAL;
    sync_state *s = st(&l->s_);
    weft_task *t = weft_self();
    if (s->owner && s->owner == t)
        s->owner = NULL;
    else if (!s->owner && s->n0 > 0)
        s->n0--; /* read holds are counted, not tracked per task */
    else
        return -EPERM;
    rw_dispatch(s);
    return 0;
}

/* ---- Once --------------------------------------------------------------------------------- */

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };

int weft_once_call(weft_once *o, void (*fn)(void *), void *arg, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!o || !fn)
        return -EINVAL;
    sync_state *s = st(&o->s_);
    if (s->n0 == ONCE_DONE)
        return 0;
    if (s->n0 == ONCE_RUNNING)
        return wait_on(s, w, t, KIND_ANY, deadline, 0);
    s->n0 = ONCE_RUNNING;
    s->owner = t;
    fn(arg);
    s->n0 = ONCE_DONE;
    s->owner = NULL;
    for (waiter *wt; (wt = first(s)) != NULL;)
        grant(wt);
    return 0;
}

/* ---- Event -------------------------------------------------------------------------------- */

int weft_event_wait(weft_event *e, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!e)
        return -EINVAL;
    sync_state *s = st(&e->s_);
    if (s->n0) {
        if (s->n1)
            s->n0 = 0; /* auto-reset: this waiter consumes the set */
        return 0;
    }
    return wait_on(s, w, t, KIND_ANY, deadline, 0);
}

int weft_event_set(weft_event *e)
{
    if (!e)
        return -EINVAL;
    sync_state *s = st(&e->s_);
    if (s->n1) {
        waiter *wt = first(s);
        if (wt)
            grant(wt); /* one waiter consumes it */
        else
            s->n0 = 1;
        return 0;
    }
    s->n0 = 1;
    for (waiter *wt; (wt = first(s)) != NULL;)
        grant(wt);
    return 0;
}

int weft_event_reset(weft_event *e)
{
    if (!e)
        return -EINVAL;
    st(&e->s_)->n0 = 0;
    return 0;
}
