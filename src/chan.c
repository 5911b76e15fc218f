/* Channels and select. A channel is a ring buffer plus two FIFO queues of waiters (senders,
 * receivers). Waiter nodes live on the waiting task's stack. Each points at a `done` record
 * it shares with the other cases of the same select (a plain send or receive is a select of
 * one), so whoever completes a waiter first claims the whole select: the other cases become
 * stale and are skipped, then unlinked by their owner. The counterpart copies the value
 * straight to or from the waiter's buffer, so a value is never lost or taken twice.
 *
 * Threads. Every state change happens between chan_lock() and chan_unlock(), a spinlock on
 * the channel's lock word held for a few dozen instructions and never across a park (biased
 * to one worker while only that worker's tasks use it: bias_lock.h), and
 * select takes the locks of all its channels in address order before it looks at any, so
 * that it can complete exactly one case atomically; a waiter of a select of several cases is
 * claimed with a CAS on its shared `fired` word, since two channels' lock holders may race
 * for it. A waiter is linked, and its waker stored, under the lock(s); it parks with them as
 * the park's unlock callback (released once it is marked PARKED), and takes them again when
 * it wakes, before it reads its outcome. So a completer, which holds a lock of the waiter's,
 * always finds it parked with the waker it read, and the waiter's frame (its node, its done
 * record) outlives every completer's use of it. Any task of any worker of any runtime may use
 * a channel; a completion wakes a task of another worker through that worker's inbox. So
 * may a plain thread outside every runtime: it blocks through its stand-in task record
 * (thread_park.h), and its sends, receives and selects are never cancelled.
 *
 * Lifetime. Handles are counted in `refs`; waiting tasks are counted apart, in `nwaiters`
 * (under the lock, so a park costs no atomic). When the last handle goes while tasks wait,
 * the channel is closed (they wake with -EPIPE) and `orphaned`; the last waiter to leave
 * frees it. So no waiter ever touches freed memory, and nothing leaks.
 *
 * Values of size 0 (Go's chan struct{}) carry no data: elem pointers may be NULL, and every
 * copy is of 0 bytes from or to `zero_elem`, never from or to NULL.
 *
 * Unbounded channels (weft_chan_create_unbounded) are the same ring, which a send that finds
 * it full doubles instead of waiting: senders never park, so their queue stays empty. The
 * doubling allocates under the lock, the one exception to "a few dozen instructions": it
 * happens log2(n) times for n values, and doing it outside would need a second pass for a
 * select holding several locks. At `max_len` values, or when the allocation fails, the send
 * returns -ENOMEM and the value is not taken (never lost silently). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bias_lock.h"
#include "chan.h"
#include "leaks.h"
#include "park_local.h"
#include "scheduler.h"
#include "util/spinlock.h"
#include "wake.h"
#include "wake_local.h"
#include "worker.h"

#define MAX_ELEM    ((size_t)65536)
#define MAX_CASES   1025 /* weft_select's 1024 (select.c), and the general select's added DEFAULT */
#define STACK_CASES 8    /* waiter nodes on the stack up to this many cases, else one malloc */

/* A channel. Every field but `refs`, `lock`, `bias` and the fixed ones is guarded by `lock`.
 * The bias last, a line away from the rest (bias_lock.h). */
struct weft_chan {
    weft__worker *w; /* the worker that created it (its allocation counter); fixed */
    size_t elem_size, cap;
    size_t head, len; /* buffered values: slots head .. head+len-1 (mod cap) */
    /* any thread: retain is relaxed (the caller already holds a reference); the release that
     * drops it to zero is acq_rel, so every other holder's last use happens before the free. */
    _Atomic unsigned refs;
    _Atomic uint32_t lock; /* 0 free, 1 held; see the file comment and bias_lock.h */
    int closed;
    bool unbounded;   /* fixed: a full ring grows (see the file comment) */
    size_t max_len;   /* unbounded: the most values buffered (SIZE_MAX: memory is the limit) */
    int orphaned;     /* the last handle went while tasks waited: the last waiter frees it */
    size_t nwaiters;  /* waiter nodes of blocked sends, receives and selects, counted from
                       * their link until their owner has looked at the outcome under the
                       * lock (a send or receive unlinked by its completer is still counted):
                       * each keeps the channel alive until it has left */
    weft__list sendq; /* chan_waiter.link, oldest first */
    weft__list recvq;
    char *buf;
    /* The leak report's table (leaks.c) while it tracks this channel, and its index there
     * (written under the table's mutex); NULL while the report is off. */
    struct weft__leaks *leaks;
    size_t leak_index;
    char gap_[64 - sizeof(void *) - sizeof(size_t)]; /* the bias a line past `buf` */
    weft__bias bias;
};
_Static_assert(weft__bias_layout(offsetof(struct weft_chan, bias), offsetof(struct weft_chan, w),
                                 offsetof(struct weft_chan, buf) + sizeof(char *)),
               "a channel's bias shares a line with its lock or what it guards");

/* Shared by the cases of one select (a plain send or receive is a select of one). Lives on
 * the waiting task's stack. */
typedef struct wait_done {
    /* any thread holding one of the select's channel locks: 0, then 1 once a case is
     * claimed; a plain send's or receive's then 2 or 4 once completed (see complete()). With one
     * case, that channel's lock alone guards it (a plain store); with several, claimers race and
     * CAS it (acq_rel: the winner's writes to index/result and the copied value happen after its
     * claim and before the waiter's wake). */
    _Atomic int fired;
    int ncases;
    bool plain;       /* a send's or receive's, not a select's: see complete() */
    int index;        /* which case completed; under the completing channel's lock */
    int result;       /* 0 or -EPIPE; the same */
    weft_waker waker; /* the waiting task, refreshed under the lock(s) before each park */
} wait_done;

typedef struct chan_waiter {
    weft__list link;
    void *elem; /* send: the value; receive: where it goes */
    wait_done *done;
    int index;
} chan_waiter;

/* Where the values of a channel of 0-byte elements are copied from and to (a NULL pointer
 * is not a valid memcpy argument, even for 0 bytes). Never written: every copy is empty. */
static char zero_elem[1];

/* Takes c's lock for the calling thread, whose worker is `self` (NULL on a plain thread).
 * Returns the word that releases it: chan_unlock's argument, or a park's unlock word (with
 * weft__park_spin_unlock). */
static inline __attribute__((always_inline)) _Atomic uint32_t *chan_lock(weft_chan *c,
                                                                         weft__worker *self)
{
    return weft__bias_acquire(&c->bias, &c->lock, self);
}

/* The same, for the calls that do not know their worker. */
static _Atomic uint32_t *chan_lock_here(weft_chan *c)
{
    return weft__bias_acquire(&c->bias, &c->lock, weft__worker_current());
}

static inline void chan_unlock(_Atomic uint32_t *held)
{
    weft__bias_release(held);
}

/* Copies one value. A word (an int, a pointer, a long: most channels) is one load and one
 * store instead of a call to memcpy, twice per hand-off. */
static inline __attribute__((always_inline)) void copy_elem(const weft_chan *c, void *dst,
                                                            const void *src)
{
    switch (c->elem_size) {
    case 8:
        memcpy(dst, src, 8);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    default:
        memcpy(dst, src, c->elem_size);
    }
}

/* The buffered count, under the lock; stored atomically for weft_chan_len's unlocked read. */
static inline void set_len(weft_chan *c, size_t n)
{
    __atomic_store_n(&c->len, n, __ATOMIC_RELAXED);
}

static char *slot(weft_chan *c, size_t i)
{
    return c->buf + (i % c->cap) * c->elem_size;
}

/* Doubles a full unbounded channel's ring (locked), keeping its values in order from slot 0.
 * Returns 0, or -ENOMEM at max_len or when memory runs out (then nothing changed). */
static WEFT_NOINLINE int grow(weft_chan *c)
{
    if (c->len >= c->max_len)
        return -ENOMEM;
    size_t ncap = c->cap * 2;
    if (ncap > c->max_len)
        ncap = c->max_len;
    if (ncap > SIZE_MAX / c->elem_size)
        return -ENOMEM;
    char *nb = weft__malloc(NULL, ncap * c->elem_size); /* any thread: counted nowhere */
    if (!nb)
        return -ENOMEM;
    for (size_t i = 0; i < c->len; i++)
        memcpy(nb + i * c->elem_size, slot(c, c->head + i), c->elem_size);
    weft__free(NULL, c->buf);
    c->buf = nb;
    c->head = 0;
    c->cap = ncap;
    return 0;
}

/* The oldest waiter whose select has not fired; stale ones are unlinked on the way. */
static chan_waiter *first_live(weft__list *q)
{
    while (!weft__list_empty(q)) {
        chan_waiter *wt = weft__container_of(q->next, chan_waiter, link);
        if (!atomic_load_explicit(&wt->done->fired, memory_order_relaxed))
            return wt;
        weft__list_remove(&wt->link);
    }
    return NULL;
}

/* Claims wt's select for this completion. False if another channel's holder claimed it first
 * (then wt is stale, and unlinked). */
static inline __attribute__((always_inline)) bool claim(chan_waiter *wt)
{
    wait_done *d = wt->done;
    if (d->ncases == 1) {
        atomic_store_explicit(&d->fired, 1, memory_order_relaxed);
        return true;
    }
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&d->fired, &expected, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
        return true;
    weft__list_remove(&wt->link);
    return false;
}

/* The oldest live waiter of q, claimed; NULL if none. */
static inline __attribute__((always_inline)) chan_waiter *take_live(weft__list *q)
{
    chan_waiter *wt;
    while ((wt = first_live(q)) != NULL)
        if (claim(wt))
            return wt;
    return NULL;
}

/* Finishes a claimed waiter: unlinks it, records the outcome, wakes its task. `self` is the
 * calling thread's worker when the caller knows it, else NULL. Under the channel's lock: the
 * waiter is parked (its park released the lock after marking it so), or already woken by
 * something else (its deadline, a cancel, another waker) and on its way to take the lock.
 *
 * A plain send's or receive's waiter (`plain`) is told how it ends by `fired`, stored after
 * the wake (the wake must come first: a waiter that sees the outcome may return, finish, and
 * its runtime end and free its task record, which the wake would then touch):
 * - 2 (release): this wake is the one that woke it (weft__wake_local), so it was asleep
 *   until now: it is counted out of the channel's waiters here, and the store is the last
 *   touch of its done record, its node and its task. The waiter returns without the lock,
 *   and must not touch the channel, which may be freed as soon as we unlock (its last handle
 *   gone: `orphaned`).
 * - 4: it was awake already. It stays counted, so the channel outlives its next step, which
 *   is to take the lock, read the outcome and count itself out (block_on).
 * Between the claim (1) and either store, a waiter that runs looks at neither the channel nor
 * the outcome: it waits for the store (block_on). */
static inline __attribute__((always_inline)) void complete(weft__worker *self, weft_chan *c,
                                                           chan_waiter *wt, int result)
{
    weft__list_remove(&wt->link);
    wait_done *d = wt->done;
    d->index = wt->index;
    d->result = result;
    weft_waker wk = d->waker;
    if (!d->plain) {
        if (wk.task) {
            if (self)
                weft__wake_from(self, wk.task, wk.epoch);
            else
                weft__wake(wk.task, wk.epoch);
        }
        return;
    }
    if (wk.task && weft__wake_local(self, wk.task, wk.epoch)) {
        c->nwaiters--;
        atomic_store_explicit(&d->fired, 2, memory_order_release);
    } else {
        atomic_store_explicit(&d->fired, 4, memory_order_release);
    }
}

/* Side-effect-free readiness, for select's uniform choice. */
static int send_ready(weft_chan *c)
{
    /* An unbounded send never waits: it sends, or fails with -ENOMEM. */
    return c->closed || c->unbounded || first_live(&c->recvq) || c->len < c->cap;
}

static int recv_ready(weft_chan *c)
{
    return c->len > 0 || first_live(&c->sendq) || c->closed;
}

/* Returns 0 (sent), -EPIPE (closed) or -EAGAIN (would wait). `self`: the caller's worker,
 * or NULL (then looked up only if a waiter is woken). Inline: a send's own copy costs it no
 * call and no second saving of registers. */
static inline __attribute__((always_inline)) int do_send(weft__worker *self, weft_chan *c,
                                                         const void *elem)
{
    if (c->closed)
        return -EPIPE;
    chan_waiter *r = take_live(&c->recvq);
    if (r) {
        copy_elem(c, r->elem, elem);
        complete(self, c, r, 0);
        return 0;
    }
    if (weft_unlikely(c->unbounded) && c->len == c->cap) {
        int err = grow(c);
        if (err < 0)
            return err;
    }
    if (c->len < c->cap) {
        copy_elem(c, slot(c, c->head + c->len), elem);
        set_len(c, c->len + 1);
        return 0;
    }
    return -EAGAIN;
}

/* Returns 0 (received), -EPIPE (closed and drained) or -EAGAIN (would wait). Inline, as
 * do_send. */
static inline __attribute__((always_inline)) int do_recv(weft__worker *self, weft_chan *c,
                                                         void *elem)
{
    chan_waiter *s = take_live(&c->sendq);
    if (c->len > 0) {
        copy_elem(c, elem, slot(c, c->head));
        c->head = (c->head + 1) % c->cap;
        set_len(c, c->len - 1);
        if (s) { /* a parked sender's value takes the freed slot, keeping FIFO order */
            copy_elem(c, slot(c, c->head + c->len), s->elem);
            set_len(c, c->len + 1);
            complete(self, c, s, 0);
        }
        return 0;
    }
    if (s) {
        copy_elem(c, elem, s->elem);
        complete(self, c, s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

int weft_chan_create(weft_chan **out, size_t elem_size, size_t cap)
{
    weft__worker *w = weft__worker_current(); /* NULL on a plain thread: nothing counted */
    if (!out || elem_size > MAX_ELEM || cap > ((size_t)1 << 30) / (elem_size ? elem_size : 1))
        return -EINVAL;
    weft_chan *c = weft__calloc(w, 1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (elem_size == 0) {
        c->buf = zero_elem; /* every slot is this empty one */
    } else if (cap) {
        c->buf = weft__malloc(w, cap * elem_size);
        if (!c->buf) {
            weft__free(w, c);
            return -ENOMEM;
        }
    }
    c->w = w;
    c->elem_size = elem_size;
    c->cap = cap;
    atomic_init(&c->refs, 1);
    weft__list_init(&c->sendq);
    weft__list_init(&c->recvq);
    if (weft_unlikely(w && w->leaks))
        c->leaks = weft__leaks_chan_add(w->leaks, c, &c->leak_index,
                                        w->current ? w->current->id : 0, elem_size, cap);
    *out = c;
    return 0;
}

void weft_chan_retain(weft_chan *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* By whichever thread drops the last reference: its creator's worker may be gone (a
 * channel may outlive the runtime that made it), and the free needs none. */
static void chan_free(weft_chan *c)
{
    if (weft_unlikely(c->leaks != NULL))
        weft__leaks_chan_remove(c->leaks, c->leak_index);
    if (c->buf != zero_elem)
        weft__free(NULL, c->buf);
    weft__free(NULL, c);
}

static int close_locked(weft_chan *c);

void weft_chan_release(weft_chan *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* The last handle: tasks still waiting would wait forever, so they are woken (with
     * -EPIPE), and the last of them frees the channel (see the file comment). */
    _Atomic uint32_t *held = chan_lock_here(c);
    close_locked(c);
    bool now = c->nwaiters == 0;
    if (!now)
        c->orphaned = 1;
    chan_unlock(held);
    if (now)
        chan_free(c);
}

/* A waiter of c has unlinked itself (under the lock). Returns true if the caller must free
 * c once it has unlocked it: it was the last waiter of an orphaned channel. */
static inline bool waiter_left(weft_chan *c)
{
    return --c->nwaiters == 0 && weft_unlikely(c->orphaned);
}

size_t weft_chan_len(const weft_chan *c)
{
    /* One word, read without the lock (a figure that may be stale as soon as it is read);
     * written under the lock with relaxed atomic stores (set_len). */
    return c ? __atomic_load_n(&c->len, __ATOMIC_RELAXED) : 0;
}

weft__worker *weft__chan_bias_owner(weft_chan *c)
{
    return atomic_load_explicit(&c->bias.owner, memory_order_relaxed);
}

size_t weft_chan_cap(const weft_chan *c)
{
    if (c && c->unbounded)
        return SIZE_MAX; /* c->cap is the ring's size now, changed under the lock */
    return c ? c->cap : 0;
}

/* 16 values: the first ring of an unbounded channel, doubled as it fills. */
#define UNBOUNDED_CAP0 16

int weft_chan_create_unbounded(weft_chan **out, size_t elem_size, size_t max_len)
{
    if (!out)
        return -EINVAL;
    if (max_len == 0)
        max_len = SIZE_MAX;
    /* A channel of 0-byte values counts them: its one empty slot is every slot. */
    size_t cap0 = elem_size == 0 ? max_len : (max_len < UNBOUNDED_CAP0 ? max_len : UNBOUNDED_CAP0);
    weft_chan *c;
    int r = weft_chan_create(&c, elem_size, elem_size == 0 ? 0 : cap0);
    if (r < 0)
        return r;
    if (elem_size == 0)
        c->cap = cap0;
    c->unbounded = true;
    c->max_len = max_len;
    *out = c;
    return 0;
}

int weft_chan_close(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    _Atomic uint32_t *held = chan_lock_here(c);
    int r = close_locked(c);
    chan_unlock(held);
    return r;
}

/* Closes c (locked) and wakes its waiters. Returns 0, or -EPIPE if it was closed already. */
static int close_locked(weft_chan *c)
{
    if (c->closed)
        return -EPIPE;
    c->closed = 1;
    /* Receivers get -EPIPE only when nothing is buffered, which is the case whenever some
     * are waiting; senders always do. */
    chan_waiter *wt;
    while ((wt = take_live(&c->recvq)) != NULL)
        complete(NULL, c, wt, -EPIPE); /* weft_chan_release may run on any thread */
    while ((wt = take_live(&c->sendq)) != NULL)
        complete(NULL, c, wt, -EPIPE);
    return 0;
}

/* The value pointer to copy through: NULL is allowed for 0-byte values only. */
static inline bool elem_ok(const weft_chan *c, void **elem)
{
    if (weft_likely(*elem != NULL))
        return true;
    if (c->elem_size != 0)
        return false;
    *elem = zero_elem;
    return true;
}

WEFT_NOINLINE int weft_chan_try_send(weft_chan *c, const void *elem)
{
    if (!c || !elem_ok(c, (void **)&elem))
        return -EINVAL;
    /* The worker for the lock's bias only: the wake keeps the general path's order, as
     * before the bias (a try call's wake is not a hand-off to run next). */
    _Atomic uint32_t *held = chan_lock_here(c);
    int r = do_send(NULL, c, elem);
    chan_unlock(held);
    return r;
}

WEFT_NOINLINE int weft_chan_try_recv(weft_chan *c, void *elem)
{
    if (!c || !elem_ok(c, &elem))
        return -EINVAL;
    /* The worker for the lock's bias only: the wake keeps the general path's order, as
     * before the bias (a try call's wake is not a hand-off to run next). */
    _Atomic uint32_t *held = chan_lock_here(c);
    int r = do_recv(NULL, c, elem);
    chan_unlock(held);
    return r;
}

static bool fired(const wait_done *d)
{
    return atomic_load_explicit(&d->fired, memory_order_relaxed);
}

/* Parks until `d` fires or the deadline/cancellation; entered and left with the waiter's
 * lock(s) held (`unlock(lock)` releases them, `relock(lock)` takes them again). Returns d's
 * index, or the park's error when d did not fire: a completion that raced the deadline or
 * the cancellation wins. The caller unlinks its waiters afterwards. */
static int wait_cases(weft__worker *w, weft_task *t, wait_done *d, int kind, const void *what,
                      int64_t deadline, void (*unlock)(void *), void (*relock)(void *), void *lock)
{
    weft__wait wr = {
        .kind = kind, .what = what, .deadline = deadline, .unlock = unlock, .lock = lock};
    int r = 0;
    while (!fired(d)) {
        /* Under the lock(s), this run's epoch: see the file comment. */
        d->waker = weft__waker_of(t);
        /* The commonest wait (no deadline) takes the short park. */
        r = deadline == WEFT_FOREVER ? weft__park_forever_unlock(w, kind, what, unlock, lock)
                                     : weft__park(w, &wr);
        w = t->worker; /* see weft__park: re-read after the switch */
        relock(lock);
        if (r < 0)
            break;
    }
    return fired(d) ? d->index : r;
}

/* The waiting half of a send or receive, entered with c locked (`held`, chan_lock's word);
 * returns with it unlocked. Out of line: half the operations of a hand-off never wait, and
 * they then save none of its registers. */
static WEFT_NOINLINE int block_on(weft__worker *w, weft_task *t, weft_chan *c,
                                  _Atomic uint32_t *held, void *elem, int is_send, int64_t deadline)
{
    wait_done d = {.ncases = 1, .plain = true};
    chan_waiter wt = {.elem = elem, .done = &d, .index = 0};
    weft__list_push_back(is_send ? &c->sendq : &c->recvq, &wt.link);
    c->nwaiters++;
    int kind = is_send ? WEFT__WAIT_CHAN_SEND : WEFT__WAIT_CHAN_RECV;
    for (;;) {
        d.waker = weft__waker_of(t); /* under the lock: see the file comment */
        /* The commonest wait (no deadline) takes the short park, and builds no wait record. */
        int r;
        if (deadline == WEFT_FOREVER) {
            r = weft__park_forever_local(w, kind, c, weft__park_spin_unlock, (void *)held);
        } else {
            weft__wait wr = {.kind = kind,
                             .what = c,
                             .deadline = deadline,
                             .unlock = weft__park_spin_unlock,
                             .lock = (void *)held};
            r = weft__park(w, &wr);
        }
        w = t->worker; /* see weft__park: re-read after the switch */
        /* Claimed and not yet told how (see complete): the completer holds c's lock and is a
         * few instructions from its store. c may be gone after it: wait on d alone. */
        int f;
        for (unsigned spins = 0; (f = atomic_load_explicit(&d.fired, memory_order_acquire)) == 1;)
            if (++spins % 128 == 0)
                sched_yield(); /* the completer's thread may have been preempted */
            else
                weft__cpu_relax();
        /* Woken by the completer, which counted us out: its store was its last touch of d,
         * wt and this task, and c is not ours to touch any more. */
        if (f == 2)
            return d.result;
        /* Otherwise still counted in c's waiters, so c is there even if its last handle went.
         * Under the lock fired is 0 (not completed) or 4 (completed while we were awake). */
        held = chan_lock(c, w);
        bool done = atomic_load_explicit(&d.fired, memory_order_relaxed) == 4;
        if (done || r < 0) {
            if (!done)
                weft__list_remove(&wt.link);
            bool last = waiter_left(c);
            chan_unlock(held);
            if (last)
                chan_free(c);
            return done ? d.result : r;
        }
        /* Woken at this run's epoch by another waker: park again, the lock held. */
    }
}

/* Inline: a send and a receive each get their own copy, with is_send folded. */
static inline __attribute__((always_inline)) int blocking_op(weft_chan *c, void *elem, int is_send,
                                                             int64_t deadline)
{
    weft_task *t = NULL;
    int r;
    weft__worker *w = weft__blocking_begin_any(&t, &r);
    if (!t)
        return r;
    if (!c || !elem_ok(c, &elem))
        return -EINVAL;
    if (weft__task_cancelled(t))
        return -ECANCELED;
    _Atomic uint32_t *held = chan_lock(c, w);
    r = is_send ? do_send(w, c, elem) : do_recv(w, c, elem);
    if (r != -EAGAIN) {
        chan_unlock(held);
        return r;
    }
    return block_on(w, t, c, held, elem, is_send, deadline);
}

/* The value-copying entry points are never inlined into a caller: under LTO (a program
 * linked with the static library and -flto) GCC would otherwise see copy_elem's 8-byte path
 * write into, say, the caller's 4-byte int and warn (-Wstringop-overflow), though that path
 * runs only for 8-byte channels. */
WEFT_NOINLINE int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline)
{
    return blocking_op(c, (void *)elem, 1, deadline);
}

WEFT_NOINLINE int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline)
{
    return blocking_op(c, elem, 0, deadline);
}

/* ---- Select ----------------------------------------------------------------------------- */

/* The distinct channels of a select, in address order: the order every select locks them
 * in, so two selects over the same channels cannot deadlock once the locks are real; and
 * the words that release the locks taken (chan_lock). */
typedef struct chan_set {
    weft_chan **v;
    _Atomic uint32_t **held;
    size_t n;
} chan_set;

static void set_build(chan_set *set, const weft_case *cases, size_t n)
{
    set->n = 0;
    for (size_t i = 0; i < n; i++) {
        weft_chan *c = cases[i].op == WEFT_CASE_DEFAULT ? NULL : cases[i].chan;
        if (!c)
            continue;
        /* Insertion into the sorted prefix (selects are small; duplicates kept once). */
        size_t j = set->n;
        while (j > 0 && (uintptr_t)set->v[j - 1] > (uintptr_t)c)
            j--;
        if (j > 0 && set->v[j - 1] == c)
            continue;
        memmove(&set->v[j + 1], &set->v[j], (set->n - j) * sizeof set->v[0]);
        set->v[j] = c;
        set->n++;
    }
}

/* By the thread whose worker is `self`: the select's task's, which a park may have moved. */
static void set_lock(const chan_set *set, weft__worker *self)
{
    for (size_t i = 0; i < set->n; i++)
        set->held[i] = chan_lock(set->v[i], self);
}

static void set_unlock(const chan_set *set)
{
    for (size_t i = set->n; i-- > 0;)
        chan_unlock(set->held[i]);
}

static void set_lock_cb(void *set)
{
    set_lock(set, weft__worker_current());
}

static void set_unlock_cb(void *set)
{
    set_unlock(set);
}

/* A random number for select's choice: the worker's generator, or on a plain thread one of
 * the thread's own (a xorshift in its storage: no state shared between threads). */
static uint64_t pick_random(weft__worker *w)
{
    if (w)
        return weft__worker_random(w);
    static __thread uint64_t x;
    if (!x)
        x = (uint64_t)weft__clock_ns() | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
}

int weft__chan_select(weft_case *cases, size_t n, int64_t deadline)
{
    weft_task *t = NULL;
    int r;
    weft__worker *w = weft__blocking_begin_any(&t, &r);
    if (!t)
        return r;
    if (!cases || n == 0 || n > MAX_CASES)
        return -EINVAL;
    int dflt = -1;
    for (size_t i = 0; i < n; i++) {
        int op = cases[i].op;
        if (op == WEFT_CASE_DEFAULT) {
            if (dflt >= 0)
                return -EINVAL;
            dflt = (int)i;
        } else if ((op != WEFT_CASE_SEND && op != WEFT_CASE_RECV) ||
                   (cases[i].chan && !cases[i].elem && cases[i].chan->elem_size != 0)) {
            return -EINVAL;
        }
    }
    if (weft__task_cancelled(t))
        return -ECANCELED;

    /* One allocation for the waiter nodes and the lock order, on the stack when small. */
    chan_waiter small_ws[STACK_CASES], *ws = small_ws;
    weft_chan *small_set[STACK_CASES];
    _Atomic uint32_t *small_held[STACK_CASES];
    chan_set set = {small_set, small_held, 0};
    void *heap = NULL;
    if (n > STACK_CASES) {
        heap = weft__malloc(w, n * (sizeof *ws + sizeof *set.v + sizeof *set.held));
        if (!heap)
            return -ENOMEM;
        ws = heap;
        set.v = (weft_chan **)(ws + n);
        set.held = (_Atomic uint32_t **)(set.v + n);
    }
    set_build(&set, cases, n);
    set_lock(&set, w);

    /* Pick uniformly among the ready cases (reservoir sampling), then complete that one.
     * With every lock of the set held, a buffer's state and a close stay as seen, but a
     * waiter of another select counted as ready (first_live) can still be claimed through
     * that select's other channels, whose locks we do not hold: then the completion finds
     * no one (-EAGAIN; it was reported as the case's result, the value neither sent nor
     * received), and we look again. Each such miss unlinks the stale waiter, so this ends. */
    for (;;) {
        size_t nready = 0, pick = 0;
        for (size_t i = 0; i < n; i++) {
            weft_chan *c = cases[i].chan;
            if (!c || cases[i].op == WEFT_CASE_DEFAULT)
                continue;
            int ready = cases[i].op == WEFT_CASE_SEND ? send_ready(c) : recv_ready(c);
            if (ready && pick_random(w) % ++nready == 0)
                pick = i;
        }
        if (!nready && dflt < 0)
            break; /* to the wait */
#ifdef WEFT_TESTING
        if (nready && n > 8 && w && w->select_pause_ns > 0) {
            struct timespec ts = {0, (long)(w->select_pause_ns % 1000000000)};
            nanosleep(&ts, NULL);
        }
#endif
        int idx = dflt;
        if (nready) {
            weft_chan *c = cases[pick].chan;
            void *elem = cases[pick].elem ? cases[pick].elem : zero_elem;
            r = cases[pick].op == WEFT_CASE_SEND ? do_send(w, c, elem) : do_recv(w, c, elem);
            if (r == -EAGAIN)
                continue;           /* its waiter was claimed elsewhere meanwhile */
            cases[pick].result = r; /* 0, -EPIPE, or an unbounded send's -ENOMEM */
            idx = (int)pick;
        } else {
            cases[dflt].result = 0;
        }
        set_unlock(&set);
        weft__free(w, heap);
        return idx;
    }

    /* Nothing ready: a waiter on every channel, all sharing one done record. */
    wait_done d = {.ncases = (int)n};
    for (size_t i = 0; i < n; i++) {
        void *elem = cases[i].elem ? cases[i].elem : zero_elem;
        ws[i] = (chan_waiter){.elem = elem, .done = &d, .index = (int)i};
        weft__list_init(&ws[i].link);
        weft_chan *c = cases[i].chan;
        if (c) {
            weft__list_push_back(cases[i].op == WEFT_CASE_SEND ? &c->sendq : &c->recvq,
                                 &ws[i].link);
            c->nwaiters++;
        }
    }
    r = wait_cases(w, t, &d, WEFT__WAIT_SELECT, cases, deadline, set_unlock_cb, set_lock_cb, &set);
    w = t->worker;
    bool orphans = false;
    for (size_t i = 0; i < n; i++) {
        weft__list_remove(&ws[i].link); /* harmless for nodes already unlinked */
        if (cases[i].op != WEFT_CASE_DEFAULT && cases[i].chan && waiter_left(cases[i].chan)) {
            ws[i].index = -1; /* the node is done with: marks the case's channel to free */
            orphans = true;
        }
    }
    set_unlock(&set);
    /* Orphaned channels whose last waiter this select was, decided under their locks (each
     * once: only the decrement to 0 says so). Once unlocked, another channel of the set may
     * be freed by its own last waiter at any moment: none is read again. */
    for (size_t i = 0; orphans && i < n; i++)
        if (ws[i].index == -1)
            chan_free(cases[i].chan);
    weft__free(w, heap);
    if (r >= 0)
        cases[r].result = d.result;
    return r;
}
