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
 * Every primitive is a weft_sync_ overlaid with `sync_state`: the waiter queue (head and
 * tail, NULL when empty, so the all-zero static initialisers are a valid state and nothing is
 * initialised lazily), an owner, two counters and a lock word. Only this file reads that
 * storage, always as a sync_state, and it is built with -fno-strict-aliasing
 * (CMakeLists.txt) so that the overlay stays sound under LTO too.
 *
 * Threads. Every function body runs between sync_lock() and sync_unlock() on the
 * primitive's lock word. Until the multi-core issue a primitive is used by one worker's
 * tasks, and the lock calls are no-ops: the word is there so that making these thread-safe
 * changes those two functions and hands the park an unlock callback (wait_on), not the
 * layout. */
#include <errno.h>
#include <stddef.h>

#include "scheduler.h"
#include "wake.h"
#include "sync_internal.h"
#include "worker.h"

typedef struct waiter waiter;

/* owner: whoever holds `lock` (today: the primitive's worker). */
typedef struct sync_state {
    waiter *head, *tail; /* waiters, oldest first; NULL when none */
    void *owner;         /* mutex / rwlock writer / once: the holding task */
    void *reserved;
    int64_t n0; /* sem value, waitgroup count, rwlock readers, once state, event set */
    int64_t n1; /* event: auto-reset */
    _Atomic uint32_t lock; /* see the file comment */
} sync_state;

_Static_assert(sizeof(sync_state) <= sizeof(weft_sync_), "weft_sync_ too small");
_Static_assert(offsetof(sync_state, n0) == offsetof(weft_sync_, n_),
               "the static initialisers set n_[0] and n_[1]");
_Static_assert(offsetof(sync_state, lock) == offsetof(weft_sync_, r_), "the lock word");

enum { KIND_ANY, KIND_READ, KIND_WRITE };

/* A waiter, on the waiting task's stack. */
struct waiter {
    waiter *prev, *next;
    weft_task *task;
    weft_waker waker;
    int kind;
    bool queued;
    bool granted;
};

static sync_state *st(weft_sync_ *s)
{
    return (sync_state *)s;
}

static void sync_lock(sync_state *s)
{
    (void)s; /* a no-op while a primitive has one worker: see the file comment */
}

static void sync_unlock(sync_state *s)
{
    (void)s;
}

static waiter *first(sync_state *s)
{
    return s->head;
}

static bool queue_empty(const sync_state *s)
{
    return s->head == NULL;
}

/* GCC 12 cannot see that every waiter is dequeued (granted or withdrawn) before its frame
 * ends, once the park is inlined into wait_on; it then warns about the queue holding a
 * local's address, which is the design (waiters live on the waiting task's stack). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
static void enqueue(sync_state *s, waiter *wt)
{
    wt->next = NULL;
    wt->prev = s->tail;
    if (s->tail)
        s->tail->next = wt;
    else
        s->head = wt;
    s->tail = wt;
    wt->queued = true;
}

static void dequeue(sync_state *s, waiter *wt)
{
    if (!wt->queued)
        return;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        s->head = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    else
        s->tail = wt->prev;
    wt->prev = wt->next = NULL;
    wt->queued = false;
}

static void grant(sync_state *s, waiter *wt)
{
    dequeue(s, wt);
    wt->granted = true;
    weft_waker_wake(wt->waker);
}

static bool is_granted(const void *wt)
{
    return ((const waiter *)wt)->granted;
}

/* Queues the caller and parks until granted, or the deadline/cancellation (then unlinked).
 * With `uncancellable`, only a grant ends the wait. */
static int wait_on(sync_state *s, weft__worker *w, weft_task *t, int kind, int wait_kind,
                   int64_t deadline, bool uncancellable)
{
    waiter wt = {.task = t, .kind = kind};
    enqueue(s, &wt);
    weft__wait wr = {.kind = wait_kind,
                     .what = s,
                     .deadline = deadline,
                     .uncancellable = uncancellable,
                     .done = is_granted,
                     .done_arg = &wt,
                     .waker = &wt.waker};
    int r = weft__park_until(w, &wr);
    if (r < 0)
        dequeue(s, &wt);
    return r;
}

/* The calling task, or NULL with *err set. */
static weft_task *caller(weft__worker **w, int *err)
{
    weft_task *t = NULL;
    *w = weft__blocking_begin(&t, false, err);
    return t;
}

/* ---- Mutex ------------------------------------------------------------------------------ */

static int mutex_lock(weft_mutex *m, int64_t deadline, bool uncancellable)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    sync_state *s = st(&m->s_);
    sync_lock(s);
    int r = 0;
    if (!s->owner)
        s->owner = t;
    else if (s->owner == t)
        r = -EDEADLK;
    else /* granted: we own it */
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_MUTEX, deadline, uncancellable);
    sync_unlock(s);
    return r;
}

int weft_mutex_lock(weft_mutex *m, int64_t deadline)
{
    return m ? mutex_lock(m, deadline, false) : -EINVAL;
}

int weft_mutex_trylock(weft_mutex *m)
{
    weft_task *t = weft_self();
    if (!t)
        return -EPERM;
    sync_state *s = st(&m->s_);
    sync_lock(s);
    int r = s->owner ? -EBUSY : 0;
    if (!r)
        s->owner = t;
    sync_unlock(s);
    return r;
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    sync_state *s = st(&m->s_);
    sync_lock(s);
    if (!s->owner || s->owner != weft_self()) {
        sync_unlock(s);
        return -EPERM;
    }
    waiter *wt = first(s);
    s->owner = wt ? wt->task : NULL; /* hand-off: the longest waiter owns it now */
    if (wt)
        grant(s, wt);
    sync_unlock(s);
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
    sync_lock(cs);
    waiter wt = {.task = t, .kind = KIND_ANY};
    enqueue(cs, &wt);
    weft_mutex_unlock(m);
    weft__wait wr = {.kind = WEFT__WAIT_COND,
                     .what = c,
                     .deadline = deadline,
                     .done = is_granted,
                     .done_arg = &wt,
                     .waker = &wt.waker};
    int r = weft__park_until(w, &wr);
    if (r < 0)
        dequeue(cs, &wt);
    sync_unlock(cs);
    /* The mutex comes back whatever happened: callers rely on holding it on return. */
    mutex_lock(m, WEFT_FOREVER, true);
    return r;
}

int weft_cond_signal(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    sync_state *s = st(&c->s_);
    sync_lock(s);
    waiter *wt = first(s);
    if (wt)
        grant(s, wt);
    sync_unlock(s);
    return wt ? 1 : 0;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    sync_state *s = st(&c->s_);
    sync_lock(s);
    int n = 0;
    for (waiter *wt; (wt = first(s)) != NULL; n++)
        grant(s, wt);
    sync_unlock(s);
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
    sync_lock(s);
    int r = 0;
    if (s->n0 > 0 && queue_empty(s)) /* no barging past waiters */
        s->n0--;
    else /* granted: the unit is ours */
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_SEM, deadline, false);
    sync_unlock(s);
    return r;
}

int weft_sem_tryacquire(weft_sem *sem)
{
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    sync_lock(s);
    int r = -EAGAIN;
    if (s->n0 > 0 && queue_empty(s)) {
        s->n0--;
        r = 0;
    }
    sync_unlock(s);
    return r;
}

int weft_sem_release(weft_sem *sem, unsigned n)
{
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    sync_lock(s);
    if (s->n0 > INT64_MAX - (int64_t)n) {
        sync_unlock(s);
        return -EOVERFLOW;
    }
    for (waiter *wt; n > 0 && (wt = first(s)) != NULL; n--)
        grant(s, wt); /* each waiter takes one unit straight from us */
    s->n0 += n;
    sync_unlock(s);
    return 0;
}

int64_t weft_sem_value(const weft_sem *sem)
{
    /* A read of one word: no lock, and nothing written through the const pointer. */
    return sem ? ((const sync_state *)&sem->s_)->n0 : -EINVAL;
}

/* ---- Wait group -------------------------------------------------------------------------- */

int weft_waitgroup_add(weft_waitgroup *wg, int64_t n)
{
    if (!wg)
        return -EINVAL;
    sync_state *s = st(&wg->s_);
    sync_lock(s);
    if (s->n0 + n < 0) {
        sync_unlock(s);
        return -EINVAL;
    }
    s->n0 += n;
    if (s->n0 == 0)
        for (waiter *wt; (wt = first(s)) != NULL;)
            grant(s, wt);
    sync_unlock(s);
    return 0;
}

int weft_waitgroup_done(weft_waitgroup *wg)
{
    return weft_waitgroup_add(wg, -1);
}

static int waitgroup_wait(weft_waitgroup *wg, int64_t deadline, bool uncancellable)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    if (!wg)
        return -EINVAL;
    sync_state *s = st(&wg->s_);
    sync_lock(s);
    int r = 0;
    if (s->n0 != 0)
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_WAITGROUP, deadline, uncancellable);
    sync_unlock(s);
    return r;
}

int weft_waitgroup_wait(weft_waitgroup *wg, int64_t deadline)
{
    return waitgroup_wait(wg, deadline, false);
}

void weft__waitgroup_wait_all(weft_waitgroup *wg)
{
    waitgroup_wait(wg, WEFT_FOREVER, true);
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
            grant(s, wt);
            return;
        }
        if (s->owner)
            return;
        s->n0++;
        grant(s, wt);
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
    sync_lock(s);
    int r = 0;
    if (!s->owner && queue_empty(s)) /* a queued writer holds new readers back */
        s->n0++;
    else
        r = wait_on(s, w, t, KIND_READ, WEFT__WAIT_RWLOCK_RD, deadline, false);
    sync_unlock(s);
    return r;
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
    sync_lock(s);
    int r = 0;
    if (s->owner == t)
        r = -EDEADLK;
    else if (!s->owner && s->n0 == 0 && queue_empty(s))
        s->owner = t;
    else
        r = wait_on(s, w, t, KIND_WRITE, WEFT__WAIT_RWLOCK_WR, deadline, false);
    sync_unlock(s);
    return r;
}

int weft_rwlock_unlock(weft_rwlock *l)
{
    if (!l)
        return -EINVAL;
    sync_state *s = st(&l->s_);
    weft_task *t = weft_self();
    sync_lock(s);
    int r = 0;
    if (s->owner && s->owner == t)
        s->owner = NULL;
    else if (!s->owner && s->n0 > 0)
        s->n0--; /* read holds are counted, not tracked per task */
    else
        r = -EPERM;
    if (r == 0)
        rw_dispatch(s);
    sync_unlock(s);
    return r;
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
    sync_lock(s);
    if (s->n0 == ONCE_DONE) {
        sync_unlock(s);
        return 0;
    }
    if (s->n0 == ONCE_RUNNING) {
        int r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_ONCE, deadline, false);
        sync_unlock(s);
        return r;
    }
    s->n0 = ONCE_RUNNING;
    s->owner = t;
    sync_unlock(s); /* fn runs without the lock: it may block */
    fn(arg);
    sync_lock(s);
    s->n0 = ONCE_DONE;
    s->owner = NULL;
    for (waiter *wt; (wt = first(s)) != NULL;)
        grant(s, wt);
    sync_unlock(s);
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
    sync_lock(s);
    int r = 0;
    if (s->n0) {
        if (s->n1)
            s->n0 = 0; /* auto-reset: this waiter consumes the set */
    } else {
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_EVENT, deadline, false);
    }
    sync_unlock(s);
    return r;
}

int weft_event_set(weft_event *e)
{
    if (!e)
        return -EINVAL;
    sync_state *s = st(&e->s_);
    sync_lock(s);
    if (s->n1) {
        waiter *wt = first(s);
        if (wt)
            grant(s, wt); /* one waiter consumes it */
        else
            s->n0 = 1;
    } else {
        s->n0 = 1;
        for (waiter *wt; (wt = first(s)) != NULL;)
            grant(s, wt);
    }
    sync_unlock(s);
    return 0;
}

int weft_event_reset(weft_event *e)
{
    if (!e)
        return -EINVAL;
    sync_state *s = st(&e->s_);
    sync_lock(s);
    s->n0 = 0;
    sync_unlock(s);
    return 0;
}
