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
 * Holds. A task's mutexes and rwlock read holds are linked into the task's list of holds
 * (weft__hold, task.h): the mutex's node lives in the mutex (its counters' room, which a
 * mutex does not use), a read hold's in a pooled node, since a rwlock has many readers. So
 * unlock by a task that holds nothing is -EPERM, a self-deadlock is -EDEADLK at once, and a
 * task that finishes holding a lock gives it up through the node's `abandon`: a read hold is
 * released; a mutex goes to its next waiter (or next locker) with -EOWNERDEAD, like a robust
 * pthread mutex, so no waiter stays parked on a task that is gone (shutdown always ends).
 * A mutex must therefore not be freed or go out of scope while it is held.
 *
 * Threads. Every function body runs between sync_lock() and sync_unlock(): a spinlock on the
 * primitive's lock word, held for the few instructions of the body and never across a park.
 * A waiter is queued under the lock with its waker, and parks with the lock as the park's
 * unlock callback: the park marks it PARKED, then unlocks, so a granter (which takes the
 * lock) always finds it parked, and the waker it reads under the lock is the park's own. So
 * any task of any worker, of any runtime, may use a primitive: a grant to a task of another
 * worker goes through that worker's inbox (wake.c).
 *
 * Lifetime. A waiter woken by its grant may have to return without touching the primitive
 * again: the granter may free it as soon as it unlocks (an event or a wait group in the
 * setter's frame, a condition variable destroyed right after a broadcast, as POSIX allows).
 * And a waiter may free a primitive in its own frame as soon as its wait returns (a wait
 * group it waited on): the granter must be done with it by then. So a grant that needs
 * nothing more of the primitive (`leave`: a condition variable's signal, a semaphore's unit,
 * a wait group's or an event's end, a once done) goes in two steps through the waiter's own
 * node (`granted`): CLAIMED and the wake under the lock, then GO (release) after the
 * granter's unlock, its last touch of the primitive, and the last touch of the node. The
 * waiter leaves on GO without taking the lock; seeing CLAIMED it waits for GO (the granter is
 * a few instructions from it). A mutex's or a rwlock's new holder (and a once's waiter told
 * to look again) is granted GO under the lock and takes the lock again, after the granter's
 * unlock, as before: a lock must not be freed while held.
 *
 * Plain threads. A thread outside every runtime may use every primitive too: it blocks as a
 * task parks, through its stand-in task record (thread_park.h), which owns what the thread
 * holds. Its waits are never cancelled; a thread that exits holding a mutex leaves it held
 * (as a pthread mutex that is not robust): its exit orphans its holds (weft__hold), which
 * hands a mutex or a write hold to `exited_thread`, a holder nobody can be, and keeps a read
 * hold counted with no node. The stand-in itself cannot stay the holder: the next thread
 * created may get its storage, and would then pass for it. */
#include <errno.h>
#include <sched.h>
#include <stddef.h>

#include "scheduler.h"
#include "thread_park.h"
#include "wake.h"
#include "wake_local.h"
#include "sync_internal.h"
#include "util/spinlock.h"
#include "worker.h"

typedef struct waiter waiter;

/* owner: whoever holds `lock`. */
typedef struct sync_state {
    waiter *head, *tail; /* waiters, oldest first; NULL when none */
    void *owner;         /* mutex / rwlock writer / once: the holding task */
    /* rwlock: whose its read holds are, for the deadlock check (deadlock.c): the runtime of
     * every task that took one since the first (n0 went from 0 to 1), or RD_OUTSIDE once a
     * plain thread or a task of another runtime took one; meaningless while n0 is 0. */
    void *rd_rt;
    union {
        struct {
            int64_t n0; /* sem value, waitgroup count, rwlock readers, once state, event set */
            int64_t n1; /* event: auto-reset */
        };
        weft__hold hold; /* mutex: its node in the owner's list of holds */
    };
    _Atomic uint32_t lock; /* see the file comment */
    uint32_t flags;        /* mutex: MUTEX_OWNER_DEAD */
    uint64_t reserved;
} sync_state;

/* The previous owner finished holding the mutex: the next one to get it is told so. */
#define MUTEX_OWNER_DEAD 0x1u

/* The holder of the mutexes and write holds that plain threads left held when they exited:
 * a stand-in record of no thread (worker NULL, so a task dump says "held by a thread"),
 * which no caller is, so no one can unlock them. Never written. */
static weft_task exited_thread;

_Static_assert(sizeof(sync_state) <= sizeof(weft_sync_), "weft_sync_ too small");
_Static_assert(offsetof(sync_state, n0) == offsetof(weft_sync_, n_),
               "the static initialisers set n_[0] and n_[1]");
_Static_assert(offsetof(sync_state, lock) == offsetof(weft_sync_, r_), "the lock word");

enum { KIND_ANY, KIND_READ, KIND_WRITE };

/* A waiter's grant, in waiter.granted (see the file comment, "Lifetime"). */
enum { GRANT_NONE = 0, GRANT_CLAIMED = 1, GRANT_GO = 2 };

/* wait_queued's answer for a waiter granted and gone without the lock (0 to its caller). */
#define WAIT_LEFT 1

/* A waiter, on the waiting task's stack; every field under the primitive's lock, but
 * `granted`, which the woken waiter reads without it (acquire; the granter's last store,
 * release), and `next` once granted, the granter's list of waiters to release. */
struct waiter {
    waiter *prev, *next;
    weft_task *task;
    weft_waker waker;
    int kind;
    bool queued;
    bool leave;          /* the grant needs nothing more of the primitive */
    _Atomic int granted; /* GRANT_* */
};

static sync_state *st(weft_sync_ *s)
{
    return (sync_state *)s;
}

static void sync_lock(sync_state *s)
{
    weft__spin_lock(&s->lock);
}

static void sync_unlock(sync_state *s)
{
    weft__spin_unlock(&s->lock);
}

/* The park's unlock callback (see the file comment). */
static void sync_unlock_cb(void *s)
{
    sync_unlock(s);
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

/* Grants wt (dequeued) and wakes it, under s's lock: a grant that needs nothing more of s
 * (`leave`: the waiter returns without looking at s again). The waiter may not return before its
 * release (release_granted), which the caller makes once it has unlocked s, its last touch of it:
 * so a primitive in the waiter's frame (a wait group it waits on) outlives the granter's use of it,
 * and a waiter woken by the grant needs s no more, however soon the granter frees it. */
static void grant_to(sync_state *s, waiter *wt, waiter **released)
{
    dequeue(s, wt);
    wt->leave = true;
    atomic_store_explicit(&wt->granted, GRANT_CLAIMED, memory_order_relaxed);
    weft_waker_wake(wt->waker); /* before the release: the task may end from then on */
    wt->next = *released;
    *released = wt;
}

/* After the unlock: tells each waiter of the list it may go. Each store is the last touch
 * of that waiter's node (release: what the granter wrote is the waiter's). */
static void release_granted(waiter *list)
{
    while (list) {
        waiter *next = list->next;
        atomic_store_explicit(&list->granted, GRANT_GO, memory_order_release);
        list = next;
    }
}

/* A grant of a hold (a mutex, a rwlock's read or write hold): its new holder takes the lock
 * again to finish taking it (the primitive lives while held), and finds the grant under it,
 * after the granter's unlock: so no release to wait for. */
static inline __attribute__((always_inline)) void grant_hold(sync_state *s, waiter *wt)
{
    dequeue(s, wt);
    wt->leave = false;
    /* release: a waiter already awake reads `leave` after it without the lock */
    atomic_store_explicit(&wt->granted, GRANT_GO, memory_order_release);
    weft_waker_wake(wt->waker);
}

/* Waits for a claimed grant's release (the granter is between its unlock and its store);
 * returns the grant as it is then: GRANT_NONE or GRANT_GO. */
static int wait_release(const waiter *wt)
{
    int g;
    for (unsigned spins = 0;
         (g = atomic_load_explicit(&wt->granted, memory_order_acquire)) == GRANT_CLAIMED;)
        if (++spins % 128 == 0)
            sched_yield(); /* the granter's thread may have been preempted */
        else
            weft__cpu_relax();
    return g;
}

static bool granted(const waiter *wt)
{
    return atomic_load_explicit(&wt->granted, memory_order_relaxed) != GRANT_NONE;
}

/* Parks the caller, queued as wt, until granted, or the deadline/cancellation (then
 * unlinked). With `uncancellable`, only a grant ends the wait. Entered and left with s
 * locked; the lock is dropped by the park once the task is marked PARKED, and taken again
 * after it. A grant that raced the deadline or the cancellation wins: it returns 0. */
static void rw_dispatch(sync_state *s);

static int wait_queued(sync_state *s, weft__worker *w, weft_task *t, waiter *wt, int wait_kind,
                       const void *what, int64_t deadline, bool uncancellable)
{
    int r = 0;
    while (!granted(wt)) {
        /* Under the lock, and this run's epoch: the park that follows is the one a grant
         * wakes (a park that returns early, notified by another waker of this run, ends the
         * run: the next turn takes the new epoch). */
        wt->waker = weft__waker_of(t);
        /* The commonest wait (no deadline, cancellable) takes the short park, and builds no
         * wait record. */
        if (deadline == WEFT_FOREVER && !uncancellable) {
            r = weft__park_forever_spin(w, wait_kind, what, &s->lock);
        } else {
            weft__wait wr = {.kind = wait_kind,
                             .what = what,
                             .deadline = deadline,
                             .uncancellable = uncancellable,
                             .unlock = sync_unlock_cb,
                             .lock = s};
            r = weft__park(w, &wr);
        }
        w = t->worker;
        if (wait_release(wt) == GRANT_GO && wt->leave)
            return WAIT_LEFT; /* s may be gone already: not touched again */
        sync_lock(s);
        if (r < 0)
            break;
    }
    if (granted(wt)) {
        if (!wt->leave)
            return 0; /* a hold's grant: released under the lock */
        /* Granted while it was awake (a deadline, a cancel) and seen under the lock: the
         * granter has unlocked, and its release of our node may still be on its way. */
        sync_unlock(s);
        wait_release(wt);
        return WAIT_LEFT;
    }
    dequeue(s, wt);
    /* A writer that gave up (deadline, cancel) no longer holds back the readers queued
     * behind it: they may be granted now, with the lock only read-held. */
    if (wt->kind == KIND_WRITE)
        rw_dispatch(s);
    return r;
}

/* Returns with s locked, unless it returns WAIT_LEFT: granted, and left without the lock (a
 * grant that needs nothing more of s, which may be gone). */
static int wait_on(sync_state *s, weft__worker *w, weft_task *t, int kind, int wait_kind,
                   int64_t deadline, bool uncancellable)
{
    waiter wt = {.task = t, .kind = kind};
    enqueue(s, &wt);
    return wait_queued(s, w, t, &wt, wait_kind, s, deadline, uncancellable);
}

/* The calling task (a plain thread's stand-in, with *w NULL, outside every runtime), or NULL
 * with *err set. */
static weft_task *caller(weft__worker **w, int *err)
{
    weft_task *t = NULL;
    *w = weft__blocking_begin_any(&t, err);
    return t;
}

/* The holder a non-blocking call acts for: the current task, a plain thread's stand-in, or
 * NULL (a worker's thread outside a task, which may hold nothing). */
static weft_task *holder(void)
{
    weft__worker *w = weft__worker_current();
    return w ? w->current : weft__thread_task();
}

/* ---- Holds ------------------------------------------------------------------------------ */

static void hold_push(weft_task *t, weft__hold *h)
{
    h->next = t->holds;
    t->holds = h;
}

/* Unlinks h, which is in t's list (usually first: locks are mostly released newest first). */
static void hold_unlink(weft_task *t, weft__hold *h)
{
    weft__hold **p = &t->holds;
    while (*p != h)
        p = &(*p)->next;
    *p = h->next;
}

/* ---- Mutex ------------------------------------------------------------------------------ */

static void mutex_abandon(weft__hold *h, bool orphan);

/* t owns the mutex now, and its list of holds says so. */
static inline void mutex_take(sync_state *s, weft_task *t)
{
    s->owner = t;
    s->hold.abandon = mutex_abandon;
    hold_push(t, &s->hold);
}

/* The new owner's result: 0, or -EOWNERDEAD once after an owner finished holding it. */
static inline int mutex_taken(sync_state *s)
{
    if (weft_likely(!(s->flags & MUTEX_OWNER_DEAD)))
        return 0;
    s->flags &= ~MUTEX_OWNER_DEAD;
    return -EOWNERDEAD;
}

/* Gives the mutex to its longest waiter (granted: it owns it on waking), or frees it. */
static inline void mutex_pass(sync_state *s)
{
    waiter *wt = first(s);
    if (wt) {
        mutex_take(s, wt->task);
        grant_hold(s, wt);
    } else {
        s->owner = NULL;
    }
}

/* The owner finished holding it (task.c, through the hold's callback; the hold is already
 * off the owner's list), or was a plain thread that exited (`orphan`): the mutex then stays
 * held, by a holder no one is. */
static void mutex_abandon(weft__hold *h, bool orphan)
{
    sync_state *s = weft__container_of(h, sync_state, hold);
    sync_lock(s);
    if (orphan) {
        s->owner = &exited_thread;
    } else {
        s->flags |= MUTEX_OWNER_DEAD;
        mutex_pass(s);
    }
    sync_unlock(s);
}

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
    if (!s->owner) {
        mutex_take(s, t);
        r = mutex_taken(s);
    } else if (s->owner == t) {
        r = -EDEADLK;
    } else {
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_MUTEX, deadline, uncancellable);
        if (r == 0) /* granted: we own it (a hold's grant: taken with the lock) */
            r = mutex_taken(s);
    }
    sync_unlock(s);
    return r;
}

int weft_mutex_lock(weft_mutex *m, int64_t deadline)
{
    return m ? mutex_lock(m, deadline, false) : -EINVAL;
}

int weft_mutex_try_lock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    weft_task *t = holder();
    if (!t)
        return -EPERM;
    sync_state *s = st(&m->s_);
    sync_lock(s);
    int r;
    if (s->owner) {
        r = -EBUSY;
    } else {
        mutex_take(s, t);
        r = mutex_taken(s);
    }
    sync_unlock(s);
    return r;
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    sync_state *s = st(&m->s_);
    weft_task *t = holder();
    sync_lock(s);
    /* The owner is this task or thread itself, so no worker check is needed. */
    if (!s->owner || s->owner != t) {
        sync_unlock(s);
        return -EPERM;
    }
    hold_unlink(t, &s->hold);
    mutex_pass(s); /* hand-off: the longest waiter owns it now */
    sync_unlock(s);
    return 0;
}

const weft_task *weft__sync_owner(const void *m)
{
    sync_state *s = (sync_state *)m; /* the lock word is written, nothing else */
    sync_lock(s);
    const weft_task *owner = s->owner;
    sync_unlock(s);
    return owner;
}

const void *const *weft__sync_owner_slot(const void *m)
{
    return (const void *const *)&((const sync_state *)m)->owner;
}

/* ---- Condition variable ------------------------------------------------------------------ */

int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    weft__worker *w;
    int err;
    weft_task *t = caller(&w, &err);
    if (!t)
        return err;
    /* c as m (one object through a cast) would take its own lock twice below: a spin for
     * ever. */
    if (!c || !m || (void *)c == (void *)m)
        return -EINVAL;
    if (st(&m->s_)->owner != t)
        return -EPERM;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    sync_state *cs = st(&c->s_);
    sync_lock(cs);
    waiter wt = {.task = t, .kind = KIND_ANY};
    enqueue(cs, &wt);
    weft_mutex_unlock(m); /* takes m's lock inside cs's: the only nesting, always this order */
    int r = wait_queued(cs, w, t, &wt, WEFT__WAIT_COND, c, deadline, false);
    if (r == WAIT_LEFT)
        r = 0; /* signalled, and c may be destroyed already */
    else
        sync_unlock(cs);
    /* The mutex comes back whatever happened: callers rely on holding it on return. Its
     * owner may have finished holding it meanwhile: that news matters most. */
    if (mutex_lock(m, WEFT_FOREVER, true) == -EOWNERDEAD)
        r = -EOWNERDEAD;
    return r;
}

int weft_cond_signal(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    sync_state *s = st(&c->s_);
    sync_lock(s);
    waiter *wt = first(s), *released = NULL;
    if (wt)
        grant_to(s, wt, &released);
    sync_unlock(s);
    release_granted(released);
    return wt ? 1 : 0;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    sync_state *s = st(&c->s_);
    sync_lock(s);
    int n = 0;
    waiter *released = NULL;
    for (waiter *wt; (wt = first(s)) != NULL; n++)
        grant_to(s, wt, &released);
    sync_unlock(s);
    release_granted(released);
    return n;
}

/* ---- Semaphore --------------------------------------------------------------------------- */

/* A semaphore's value, under its lock; stored atomically for weft_sem_value's unlocked read. */
static inline void sem_set(sync_state *s, int64_t v)
{
    __atomic_store_n(&s->n0, v, __ATOMIC_RELAXED);
}

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
    if (s->n0 < 0) /* initialised past the maximum (weft.h) */
        r = -EINVAL;
    else if (s->n0 > 0 && queue_empty(s)) /* no barging past waiters */
        sem_set(s, s->n0 - 1);
    else { /* granted: the unit is ours */
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_SEM, deadline, false);
        if (r == WAIT_LEFT)
            return 0; /* s may be gone already */
    }
    sync_unlock(s);
    return r;
}

int weft_sem_try_acquire(weft_sem *sem)
{
    if (!sem)
        return -EINVAL;
    sync_state *s = st(&sem->s_);
    sync_lock(s);
    int r = s->n0 < 0 ? -EINVAL : -EAGAIN;
    if (s->n0 > 0 && queue_empty(s)) {
        sem_set(s, s->n0 - 1);
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
    if (s->n0 < 0 || s->n0 > INT64_MAX - (int64_t)n) {
        sync_unlock(s);
        return s->n0 < 0 ? -EINVAL : -EOVERFLOW;
    }
    waiter *released = NULL;
    for (waiter *wt; n > 0 && (wt = first(s)) != NULL; n--)
        grant_to(s, wt, &released); /* each waiter takes one unit straight from us */
    sem_set(s, s->n0 + n);
    sync_unlock(s);
    release_granted(released);
    return 0;
}

int64_t weft_sem_value(const weft_sem *sem)
{
    /* A read of one word: no lock, and nothing written through the const pointer (the
     * writers store it atomically, sem_set). */
    return sem ? __atomic_load_n(&((const sync_state *)&sem->s_)->n0, __ATOMIC_RELAXED) : -EINVAL;
}

/* ---- Wait group -------------------------------------------------------------------------- */

int weft_waitgroup_add(weft_waitgroup *wg, int64_t n)
{
    if (!wg)
        return -EINVAL;
    sync_state *s = st(&wg->s_);
    sync_lock(s);
    int r = 0;
    if (n > 0 && s->n0 > INT64_MAX - n) /* n0 >= 0, so only adding can overflow */
        r = -EOVERFLOW;
    else if (n < 0 && s->n0 + n < 0)
        r = -EINVAL;
    if (r < 0) {
        sync_unlock(s);
        return r;
    }
    s->n0 += n;
    waiter *released = NULL;
    if (s->n0 == 0)
        for (waiter *wt; (wt = first(s)) != NULL;)
            grant_to(s, wt, &released);
    sync_unlock(s);
    release_granted(released);
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
    if (s->n0 != 0) {
        r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_WAITGROUP, deadline, uncancellable);
        if (r == WAIT_LEFT)
            return 0; /* s may be gone already */
    }
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

/* A read hold, a write hold or a running once: the holder's node, in a pooled node (a rwlock
 * has room for no node in its own storage: its counters are in use). The pool's nodes are
 * weft__node sized; this file is built with -fno-strict-aliasing (see the file comment). */
typedef struct read_hold {
    weft__hold hold;
    sync_state *lock;
} read_hold;

/* Gives a hold's node back to the pool of the worker its holder runs on now: not the one it
 * was taken on, which a task that moved (stealing mode, move_started) has left, and whose
 * pool only that worker's thread may touch. A plain thread's stand-in has no pool (freed). */
static void hold_node_put(read_hold *h)
{
    weft__node_put(weft__worker_current(), (weft__node *)(void *)h);
}

_Static_assert(sizeof(read_hold) <= sizeof(weft__node), "a read hold fits in a pooled node");

#define RD_OUTSIDE ((void *)1)

/* Under s's lock, a read hold just counted (n0 includes it): notes whose it is. */
static void rd_note(sync_state *s, const weft_task *t)
{
    const weft__worker *tw = __atomic_load_n(&t->worker, __ATOMIC_RELAXED);
    void *rt = tw ? (void *)tw->rt : RD_OUTSIDE;
    if (s->n0 == 1)
        s->rd_rt = rt;
    else if (s->rd_rt != rt)
        s->rd_rt = RD_OUTSIDE;
}

bool weft__sync_read_held_outside(const void *m, const void *rt)
{
    sync_state *s = (sync_state *)m; /* the lock word is written, nothing else */
    sync_lock(s);
    bool outside = s->n0 > 0 && s->rd_rt != rt;
    sync_unlock(s);
    return outside;
}

/* Grants waiting holds in arrival order: a run of readers together, or one writer. */
static void rw_dispatch(sync_state *s)
{
    for (waiter *wt; (wt = first(s)) != NULL;) {
        if (wt->kind == KIND_WRITE) {
            if (s->owner || s->n0 > 0)
                return;
            s->owner = wt->task;
            grant_hold(s, wt);
            return;
        }
        if (s->owner)
            return;
        s->n0++;
        rd_note(s, wt->task);
        grant_hold(s, wt);
    }
}

static void read_release(sync_state *s, read_hold *rh)
{
    s->n0--;
    rw_dispatch(s);
    hold_node_put(rh);
}

/* A reader finished holding the lock (task.c, through the hold's callback): readers change
 * nothing, so its hold is simply released. A plain thread's read hold stays counted when the
 * thread exits (`orphan`), without its node. */
static void read_abandon(weft__hold *h, bool orphan)
{
    read_hold *rh = weft__container_of(h, read_hold, hold);
    sync_state *s = rh->lock;
    if (orphan) {
        hold_node_put(rh);
        return;
    }
    sync_lock(s);
    read_release(s, rh);
    sync_unlock(s);
}

/* A writer finished holding the lock: the lock is free again for the next in line; or it
 * stays write-held, by a holder no one is, when the writer was a plain thread that exited. */
static void write_abandon(weft__hold *h, bool orphan)
{
    read_hold *wh = weft__container_of(h, read_hold, hold);
    sync_state *s = wh->lock;
    sync_lock(s);
    if (orphan) {
        s->owner = &exited_thread;
    } else {
        s->owner = NULL;
        rw_dispatch(s);
    }
    sync_unlock(s);
    hold_node_put(wh);
}

/* t's hold of s of the kind `abandon` says, or NULL; with `unlink`, taken off t's list. */
static read_hold *pooled_hold_of(weft_task *t, sync_state *s, void (*abandon)(weft__hold *, bool),
                                 bool unlink)
{
    for (weft__hold **p = &t->holds; *p; p = &(*p)->next) {
        if ((*p)->abandon != abandon)
            continue;
        read_hold *rh = weft__container_of(*p, read_hold, hold);
        if (rh->lock == s) {
            if (unlink)
                *p = rh->hold.next;
            return rh;
        }
    }
    return NULL;
}

static read_hold *read_hold_of(weft_task *t, sync_state *s, bool unlink)
{
    return pooled_hold_of(t, s, read_abandon, unlink);
}

/* Records on t's list that it holds s (as `abandon` says), in a node taken beforehand. */
static void pooled_hold_push(weft_task *t, sync_state *s, read_hold *h,
                             void (*abandon)(weft__hold *, bool))
{
    h->lock = s;
    h->hold.abandon = abandon;
    hold_push(t, &h->hold);
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
    read_hold *rh = NULL;
    if (s->owner == t) {
        r = -EDEADLK; /* it would wait for its own write hold */
    } else if (!(rh = (read_hold *)(void *)weft__node_get(w))) {
        r = -ENOMEM;
    } else if ((!s->owner && queue_empty(s)) || read_hold_of(t, s, false)) {
        /* A queued writer holds new readers back, but not one that already reads: it would
         * wait for a writer that waits for it. */
        s->n0++;
        rd_note(s, t);
    } else {
        /* A hold's grant: always taken with the lock. */
        r = wait_on(s, w, t, KIND_READ, WEFT__WAIT_RWLOCK_RD, deadline, false);
        w = t->worker;
    }
    if (r == 0) {
        pooled_hold_push(t, s, rh, read_abandon);
    } else if (rh) {
        weft__node_put(w, (weft__node *)(void *)rh);
    }
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
    read_hold *wh = NULL;
    if (s->owner == t || read_hold_of(t, s, false))
        r = -EDEADLK; /* it would wait for its own hold */
    else if (!(wh = (read_hold *)(void *)weft__node_get(w)))
        r = -ENOMEM;
    else if (!s->owner && s->n0 == 0 && queue_empty(s))
        s->owner = t;
    else /* a hold's grant: always taken with the lock */
        r = wait_on(s, w, t, KIND_WRITE, WEFT__WAIT_RWLOCK_WR, deadline, false);
    /* The write hold on t's list: a writer that finishes holding it frees the lock. */
    if (r == 0)
        pooled_hold_push(t, s, wh, write_abandon);
    else if (wh)
        weft__node_put(t->worker, (weft__node *)(void *)wh);
    sync_unlock(s);
    return r;
}

int weft_rwlock_unlock(weft_rwlock *l)
{
    if (!l)
        return -EINVAL;
    sync_state *s = st(&l->s_);
    weft_task *t = holder();
    if (!t)
        return -EPERM;
    sync_lock(s);
    int r = 0;
    read_hold *rh;
    if (s->owner && s->owner == t) {
        read_hold *wh = pooled_hold_of(t, s, write_abandon, true);
        if (wh)
            hold_node_put(wh);
        s->owner = NULL;
        rw_dispatch(s);
    } else if ((rh = read_hold_of(t, s, true)) != NULL) {
        read_release(s, rh);
    } else {
        r = -EPERM; /* the caller holds neither a write hold nor a read hold */
    }
    sync_unlock(s);
    return r;
}

/* ---- Once --------------------------------------------------------------------------------- */

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };

/* The task running a once's function finished without returning from it (weft_exit, or a
 * cancellation it exited on), or a plain thread that exited in it (`orphan`: the same): the
 * once is not done. It goes back to NEW, and its waiters wake to try again, one of them
 * running the function. */
static void once_abandon(weft__hold *h, bool orphan)
{
    (void)orphan;
    read_hold *oh = weft__container_of(h, read_hold, hold);
    sync_state *s = oh->lock;
    sync_lock(s);
    s->n0 = ONCE_NEW;
    s->owner = NULL;
    for (waiter *wt; (wt = first(s)) != NULL;)
        grant_hold(s, wt); /* to look again, under the lock: one of them runs fn */
    sync_unlock(s);
    hold_node_put(oh);
}

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
    for (;;) {
        if (s->n0 == ONCE_DONE) {
            sync_unlock(s);
            return 0;
        }
        if (s->n0 != ONCE_RUNNING)
            break;
        if (s->owner == t) { /* fn calling its own once would wait for itself */
            sync_unlock(s);
            return -EDEADLK;
        }
        /* Granted when the function returned, or when its runner finished without
         * returning: look again either way. */
        int r = wait_on(s, w, t, KIND_ANY, WEFT__WAIT_ONCE, deadline, false);
        if (r == WAIT_LEFT)
            return 0; /* granted at fn's return: done, and o may be gone already */
        if (r < 0) {
            sync_unlock(s);
            return r;
        }
        w = t->worker;
    }
    read_hold *oh = (read_hold *)(void *)weft__node_get(w);
    if (!oh) {
        sync_unlock(s);
        return -ENOMEM;
    }
    s->n0 = ONCE_RUNNING;
    s->owner = t;
    pooled_hold_push(t, s, oh, once_abandon);
    sync_unlock(s); /* fn runs without the lock: it may block */
    fn(arg);
    w = t->worker;
    sync_lock(s);
    hold_unlink(t, &oh->hold);
    weft__node_put(w, (weft__node *)(void *)oh);
    s->n0 = ONCE_DONE;
    s->owner = NULL;
    waiter *released = NULL;
    for (waiter *wt; (wt = first(s)) != NULL;)
        grant_to(s, wt, &released);
    sync_unlock(s);
    release_granted(released);
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
        if (r == WAIT_LEFT)
            return 0; /* s may be gone already */
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
    waiter *released = NULL;
    if (s->n1) {
        waiter *wt = first(s);
        if (wt)
            grant_to(s, wt, &released); /* one waiter consumes it */
        else
            s->n0 = 1;
    } else {
        s->n0 = 1;
        for (waiter *wt; (wt = first(s)) != NULL;)
            grant_to(s, wt, &released);
    }
    sync_unlock(s);
    release_granted(released);
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
