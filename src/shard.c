/* Shards (sharded mode's helpers): weft_submit_to, values per shard with a map-reduce over
 * them, weft_shard_of, and listeners served by every shard (weft_serve). All of it rides on
 * the task calls and the message rings between workers (smp.c). The invariant: what a worker
 * owns is touched on that worker only; what crosses workers is either carried by a message
 * (whose ring orders it), an atomic, or a field under a latch's lock, and each says which.
 *
 * A submission's ownership (weft_submit_to). One record holds the caller's future and what
 * the task on the target worker needs. Its fields have three owners in turn:
 *   fn, arg          written by the caller before the hand-over, read by the task;
 *   value, status,   written by the task before it posts the reply, read by the caller's
 *   started, replied worker in the reply's handler (the ring publishes them);
 *   settled          stored by the caller's worker (the reply's handler), read by a poll
 *                    on any worker, or from outside any runtime (after weft_run);
 *   waiter           the latest poll's waker, under `lock`: a poll on any worker of the
 *                    runtime sets it, the reply's handler takes it (an awaiter need not be on
 *                    the caller's worker: the future may be handed to another task).
 * The record is freed by the last of three references: the future's (dropped by
 * weft_future_destroy, from any thread), the task's (dropped by the task's spawn cleanup,
 * which runs however the task ends, even unrun), and the reply's (taken by the task just
 * before it posts the reply, dropped by the reply's handler). So a future destroyed early
 * leaves the record to the task and the reply, and a reply that arrives for it writes only
 * to live memory; no field but the count, `settled` and the waiter (under its lock) is
 * shared.
 *
 * A broadcast (weft_sharded_*). One callback per worker, each worker's slot claimed with a
 * CAS, either by its worker (PENDING -> RUNNING -> DONE) or by a caller that gives up
 * (PENDING -> SKIPPED). A latch counts the slots not yet DONE or SKIPPED; the caller parks on
 * it. A caller that gives up skips every slot not started and waits for those running (which
 * do not block), so no callback runs after the call has returned; the messages still in the
 * rings hold references to the record, and the last one frees it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io/io.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "util/spinlock.h"
#include "wake.h"
#include "worker.h"

/* ---- A latch: a count that one task waits to see reach zero -------------------------------
 * Counted down from any worker of the runtime. The lock is a spin flag held for a few loads
 * and stores (as smp.c's room_lock), never across a park. */
typedef struct latch {
    atomic_flag lock;
    unsigned n;        /* events still to come; under lock */
    weft_waker waiter; /* the waiting task's waker for its current run; under lock */
} latch;

static void latch_init(latch *l, unsigned n)
{
    atomic_flag_clear(&l->lock);
    l->n = n;
    l->waiter = (weft_waker){NULL, 0};
}

static void latch_lock(latch *l)
{
    /* acquire/release: whatever the previous holder wrote under the lock (a slot's result,
     * the waker) is visible to the next. */
    while (atomic_flag_test_and_set_explicit(&l->lock, memory_order_acquire))
        ;
}

static void latch_unlock(latch *l)
{
    atomic_flag_clear_explicit(&l->lock, memory_order_release);
}

/* One event happened; `w` is the calling thread's worker. The waker is copied under the lock
 * and used after it: once the lock is free the waiter may see zero, return, and free the
 * latch, while the task record a waker names outlives the runtime's every wake. */
static void latch_count_down(latch *l, weft__worker *w)
{
    weft_waker wk = {NULL, 0};
    latch_lock(l);
    if (--l->n == 0)
        wk = l->waiter;
    latch_unlock(l);
    if (wk.task)
        weft__wake_from(w, wk.task, wk.epoch);
}

/* Parks `self` until the count is zero, or the deadline passes or self is cancelled (neither
 * when `uncancellable`). Returns 0, -ETIMEDOUT, -ECANCELED, or -ENOMEM (no timer for the
 * deadline). */
static int latch_wait(weft__worker *w, weft_task *self, latch *l, const void *what,
                      int64_t deadline, bool uncancellable)
{
    weft__wait wr = {.kind = WEFT__WAIT_SHARDS,
                     .what = what,
                     .deadline = deadline,
                     .uncancellable = uncancellable};
    for (;;) {
        latch_lock(l);
        bool zero = l->n == 0;
        /* This run's waker: a count-down between the unlock and the park finds the task
         * RUNNING and marks it NOTIFIED, and the park then returns at once: none is lost. */
        if (!zero)
            l->waiter = weft__waker_of(self);
        latch_unlock(l);
        if (zero)
            return 0;
        int r = weft__park(w, &wr);
        w = self->worker; /* the migration rule: re-read after a park */
        if (r < 0) {
            latch_lock(l);
            zero = l->n == 0; /* a count-down that raced the deadline wins */
            latch_unlock(l);
            return zero ? 0 : r;
        }
    }
}

/* Posts m from the current stackful task to worker `to` for a message that must arrive (a
 * reply, an init, a fini), which nothing else could deliver: under memory exhaustion (the
 * pair's first ring, or a spill node, could not be allocated) it tries again at each of the
 * task's turns. It does not park for room: a reply is sent from a finishing task, which
 * should not wait on the receiver, and what these messages add to a full ring is bounded by
 * what their senders have in flight (a reply per submission, one message per worker per
 * broadcast), so the spill list takes them. */
static void post_must(weft_task *self, weft__worker *to, const weft__msg *m)
{
    while (weft__smp_post(self->worker, to, m) == -ENOMEM)
        weft_yield();
}

/* ---- weft_submit_to ------------------------------------------------------------------------ */

typedef struct submission {
    weft_future base;     /* the caller's future (owner: the origin worker) */
    weft__worker *origin; /* the caller's worker; fixed */
    /* origin's runtime, fixed: compared, never followed, by a poll from any thread (the
     * runtime may have ended; its every submission was settled by then). */
    const weft__runtime *rt;
    weft_fn fn; /* fixed before the hand-over */
    void *arg;
    void *value;  /* the task's, until the reply (see the file comment) */
    int status;   /* the task's, until the reply */
    bool started; /* the task's: fn was called */
    bool replied; /* the task's: the reply is on its way (or done, on the origin) */
    /* The reply has arrived: stored by the origin (release, after the result it publishes),
     * loaded by the origin, or by a thread outside any runtime (acquire: weft_run has
     * returned and the future is polled from there). */
    _Atomic bool settled;
    /* Guards `waiter` (a poll's check of `settled` and its store of the waker against the
     * reply's take of it, so that a poll either sees the result or is woken). Held for a few
     * loads and stores. */
    _Atomic uint32_t lock;
    weft_waker waiter; /* the latest poll's waker, any worker's; under `lock` */
    /* any thread: retained relaxed (by a holder of a reference); the release that drops it
     * to zero is acq_rel, so every other holder's last access happens before the free. */
    _Atomic unsigned refs;
} submission;

static void submission_release(submission *sub)
{
    if (atomic_fetch_sub_explicit(&sub->refs, 1, memory_order_acq_rel) == 1)
        weft__free(weft__worker_current(), sub); /* any thread (NULL outside a runtime) */
}

/* On the origin: the result is in. Wakes the latest poller (a stale waker, from a poller
 * that gave up, does nothing). */
static void settle(weft__worker *w, submission *sub)
{
    atomic_store_explicit(&sub->settled, true, memory_order_release);
    weft__spin_lock(&sub->lock);
    weft_waker wk = sub->waiter;
    sub->waiter = (weft_waker){NULL, 0};
    weft__spin_unlock(&sub->lock);
    if (wk.task)
        weft__wake_from(w, wk.task, wk.epoch);
}

/* The reply's handler, on the origin's loop. */
static void msg_reply(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)b, (void)c;
    settle(w, a);
    submission_release(a);
}

/* Sends the result home, once. `self` is the running task when it may park (the task's own
 * body), NULL from the spawn cleanup, which may not. */
static void reply(submission *sub, weft_task *self, int status, void *value)
{
    weft__worker *w = weft__worker_current();
    sub->status = status;
    sub->value = value;
    sub->replied = true;
    if (w == sub->origin) {
        settle(w, sub); /* the caller's own worker: no message */
        return;
    }
    /* The reply's reference: the task's own may be dropped (its cleanup) before the origin
     * handles the reply. relaxed: the task holds a reference already. */
    atomic_fetch_add_explicit(&sub->refs, 1, memory_order_relaxed);
    weft__msg m = {msg_reply, sub, NULL, 0};
    if (self) {
        post_must(self, sub->origin, &m);
    } else if (weft__smp_post(w, sub->origin, &m) < 0) {
        /* Out of memory with the pair's ring full (or never allocated), and no stack to wait
         * on: the reply is lost and the future stays pending. Only an unrun or weft_exit()ed
         * task's reply comes this way. */
        submission_release(sub);
    }
}

/* The task's body, on the target worker. */
static void *submission_run(void *arg)
{
    submission *sub = arg;
    sub->started = true;
    void *value = sub->fn(sub->arg);
    /* Cancelled meanwhile (only the runtime's stop cancels it: nobody holds its handle):
     * reported as a join would, with the value kept for whoever must free it. */
    reply(sub, weft_self(), weft_canceled() > 0 ? -ECANCELED : 0, value);
    return NULL;
}

/* The task's spawn cleanup: runs once however the task ended, on the target worker, as the
 * current task (its weft_canceled is its own). */
static void submission_cleanup(void *arg)
{
    submission *sub = arg;
    if (!sub->replied) {
        /* Never ran (cancelled from birth, or no stack), or fn left through weft_exit. */
        int status = weft_canceled() > 0 ? -ECANCELED : sub->started ? -EINTR : -ENOMEM;
        reply(sub, NULL, status, NULL);
    }
    submission_release(sub); /* the task's reference */
}

static int submission_poll(weft_future *f, weft_context *cx)
{
    submission *sub = (submission *)f;
    weft__worker *w = weft__worker_current();
    if (!w || w->rt != sub->rt) {
        /* Outside any runtime (weft_run has returned: every reply came during the stop), the
         * result reads through the acquire. A poll from another runtime's worker likewise
         * only looks: its task could not be woken from this runtime's loop. */
        if (atomic_load_explicit(&sub->settled, memory_order_acquire)) {
            weft_future_complete(f, sub->status, sub->value);
            return WEFT_READY;
        }
        return WEFT_PENDING;
    }
    /* Any worker of the runtime: the lock orders this check against the reply's take of the
     * waiter, and its acquire (with the release of `settled`) publishes the result. */
    weft__spin_lock(&sub->lock);
    bool settled = atomic_load_explicit(&sub->settled, memory_order_acquire);
    if (!settled)
        sub->waiter = cx->waker;
    weft__spin_unlock(&sub->lock);
    if (settled) {
        weft_future_complete(f, sub->status, sub->value);
        return WEFT_READY;
    }
    return WEFT_PENDING;
}

static void submission_drop(weft_future *f)
{
    submission_release((submission *)f); /* the future's reference: any thread */
}

static const weft_future_ops submission_ops = {submission_poll, submission_drop};

int weft_submit_to(unsigned worker, weft_fn fn, void *arg, weft_future **out)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!fn || !out || worker >= w->rt->nworkers)
        return -EINVAL;
    /* The future is this worker's (sub->origin: only its poll there completes, and the reply
     * comes here): the caller stays here, or its await would poll from another worker and
     * wait for ever (task.h). Now, not at the await: a yield between the two (the await's own
     * debug-mode yield included) may hand it over. */
    weft__task_bind(w->current);
    submission *sub = weft__malloc(w, sizeof *sub);
    if (!sub)
        return -ENOMEM;
    memset(sub, 0, sizeof *sub);
    weft_future_init(&sub->base, &submission_ops);
    sub->origin = w;
    sub->rt = w->rt;
    sub->fn = fn;
    sub->arg = arg;
    atomic_init(&sub->refs, 2); /* the future's and the task's */
    /* The hand-over is weft_spawn_on's: the record goes to `worker` through the pair's ring
     * (its release publishes the fields above), or is queued here for our own worker. Pinned:
     * fn runs on the worker named, which a thief (stealing mode) must not change, since
     * callers rely on it (weft_dump_tasks walks the stacks of the worker it runs on). */
    weft_spawn_opts o = {.name = "submit_to",
                         .flags = WEFT_SPAWN_DETACHED | WEFT_SPAWN_PINNED,
                         .cleanup = submission_cleanup};
    int r = weft_spawn_on(worker, NULL, submission_run, sub, &o);
    if (r < 0) {
        weft__free(w, sub); /* never handed over: the cleanup will not run */
        return r;
    }
    *out = &sub->base;
    return 0;
}

/* ---- Sharded values ------------------------------------------------------------------------ */

/* 64: a cache line, so that two workers' instances never share one. */
#define SHARD_ALIGN    64
#define SHARD_SIZE_MAX ((size_t)1 << 30)

struct weft_sharded {
    weft__runtime *rt; /* fixed */
    size_t size;       /* bytes of an instance, as asked */
    size_t stride;     /* from one instance to the next: size rounded up to SHARD_ALIGN */
    weft_sharded_fn init, fini;
    void *arg;
    unsigned char *values; /* rt->nworkers instances: instance k is worker k's alone */
    void *raw;             /* the allocation values was carved from */
    /* weft_sharded_reduce calls in progress, on any worker, and SHARDED_CLOSED once a destroy
     * has begun: a destroy while a reduce runs is refused (-EBUSY) rather than freeing what
     * its maps and its return still use, and a reduce that starts during a destroy backs out
     * (-EBUSY). The reduce's decrement is a release and the destroy's claim an acquire, so
     * that a reduce's last reads of the record happen before the free. */
    _Atomic unsigned reducing;
};

#define SHARDED_CLOSED 0x80000000u

enum { SLOT_PENDING, SLOT_RUNNING, SLOT_DONE, SLOT_SKIPPED };
enum { OP_INIT, OP_FINI, OP_MAP };

typedef struct slot {
    /* PENDING -> RUNNING -> DONE by the slot's worker, PENDING -> SKIPPED by the caller;
     * CAS (acq_rel) from PENDING, so exactly one of the two takes the slot. */
    _Atomic int state;
    /* map's result: written by the slot's worker before its count-down, read by the caller
     * after the latch reached zero (the latch's lock orders the two). */
    void *result;
} slot;

typedef struct bcast {
    latch left; /* slots neither DONE nor SKIPPED */
    /* any thread: the caller's reference, and one per message not yet handled (retain
     * relaxed, by a holder; the release to zero acq_rel, as for submissions). */
    _Atomic unsigned refs;
    weft_sharded *s; /* fixed before the messages go */
    int op;
    weft_sharded_map_fn map;
    void *arg;
    slot slots[]; /* one per worker */
} bcast;

static bcast *bcast_new(weft__worker *w, weft_sharded *s, int op, weft_sharded_map_fn map,
                        void *arg)
{
    unsigned n = w->rt->nworkers;
    bcast *b = weft__malloc(w, sizeof *b + n * sizeof b->slots[0]);
    if (!b)
        return NULL;
    latch_init(&b->left, n);
    atomic_init(&b->refs, 1);
    b->s = s;
    b->op = op;
    b->map = map;
    b->arg = arg;
    for (unsigned k = 0; k < n; k++) {
        atomic_init(&b->slots[k].state, SLOT_PENDING);
        b->slots[k].result = NULL;
    }
    return b;
}

static void bcast_release(bcast *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        weft__free(weft__worker_current(), b); /* the last may be a late message, on its worker */
}

/* Runs slot k's callback on worker k (the calling thread's, `w`), unless the caller skipped
 * it. The callback reads b->s only after the slot is taken: a skipped message never does. */
static void run_slot(bcast *b, unsigned k, weft__worker *w)
{
    int expected = SLOT_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&b->slots[k].state, &expected, SLOT_RUNNING,
                                                 memory_order_acq_rel, memory_order_acquire))
        return;
    weft_sharded *s = b->s;
    void *value = s->values + (size_t)k * s->stride;
    /* On the caller's own worker the callback runs in the calling task: its blocking calls
     * are refused there too (-EPERM), as on the other workers' loops, so that it never parks,
     * nor moves the task, and so this instance, to another worker meanwhile. */
    weft_task *caller = w->current;
    bool refuse = caller && !(caller->flags & WEFT__T_NOBLOCK);
    if (refuse)
        weft__task_flags_set(caller, WEFT__T_NOBLOCK);
    switch (b->op) {
    case OP_INIT:
        memset(value, 0, s->size); /* first touched by its own worker (its NUMA node) */
        if (s->init)
            s->init(value, k, s->arg);
        break;
    case OP_FINI:
        if (s->fini)
            s->fini(value, k, s->arg);
        break;
    default:
        b->slots[k].result = b->map(value, k, b->arg);
        break;
    }
    if (refuse)
        weft__task_flags_clear(caller, WEFT__T_NOBLOCK);
    /* release: for a reader of the state alone; the caller reads it under the latch. */
    atomic_store_explicit(&b->slots[k].state, SLOT_DONE, memory_order_release);
    latch_count_down(&b->left, w);
}

/* Takes slot k from PENDING to SKIPPED (the caller, giving up or unable to send). */
static void skip_slot(bcast *b, unsigned k, weft__worker *w)
{
    int expected = SLOT_PENDING;
    if (atomic_compare_exchange_strong_explicit(&b->slots[k].state, &expected, SLOT_SKIPPED,
                                                memory_order_acq_rel, memory_order_acquire))
        latch_count_down(&b->left, w);
}

/* A slot's message, on its worker's loop (c: the slot). */
static void msg_slot(weft__worker *w, void *a, void *unused, uint64_t k)
{
    (void)unused;
    run_slot(a, (unsigned)k, w);
    bcast_release(a);
}

/* Runs b on every worker: a message to each other worker, then the caller's own slot here,
 * then the wait. With `must`, every message is delivered whatever it takes (an init or a
 * fini, which may not be left out) and the wait is uncancellable; otherwise a message that
 * cannot be sent (-ENOMEM) skips its slot, and the deadline or a cancellation ends the wait
 * as the file comment says. Returns 0, -ETIMEDOUT, -ECANCELED or -ENOMEM. */
static int bcast_run(weft_task *self, bcast *b, int64_t deadline, bool must)
{
    weft__worker *w = self->worker;
    weft__runtime *rt = w->rt;
    unsigned me = w->index;
    int err = 0;
    for (unsigned k = 0; k < rt->nworkers; k++) {
        if (k == me)
            continue;
        /* The message's reference. relaxed: the caller holds one. */
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        weft__msg m = {msg_slot, b, NULL, k};
        if (must) {
            post_must(self, &rt->workers[k], &m);
            continue;
        }
        int r = weft__smp_post(self->worker, &rt->workers[k], &m); /* see post_must */
        if (r < 0) {
            skip_slot(b, k, self->worker);
            bcast_release(b); /* never sent */
            err = r;
        }
    }
    /* Ours last, so that the others run meanwhile. */
    run_slot(b, me, self->worker);
    int r = latch_wait(self->worker, self, &b->left, b, must ? WEFT_FOREVER : deadline, must);
    if (r < 0) {
        for (unsigned k = 0; k < rt->nworkers; k++)
            skip_slot(b, k, self->worker);
        /* Only slots already running are left, and their callbacks do not block. */
        latch_wait(self->worker, self, &b->left, b, WEFT_FOREVER, true);
    }
    return err ? err : r;
}

int weft_sharded_create(weft_sharded **out, size_t size, weft_sharded_fn init, weft_sharded_fn fini,
                        void *arg)
{
    weft_task *self;
    int err;
    weft__worker *w = weft__blocking_begin(&self, false, &err);
    if (!w)
        return err;
    if (!out || size == 0 || size > SHARD_SIZE_MAX)
        return -EINVAL;
    unsigned n = w->rt->nworkers;
    size_t stride = (size + SHARD_ALIGN - 1) & ~(size_t)(SHARD_ALIGN - 1);
    weft_sharded *s = weft__malloc(w, sizeof *s);
    void *raw = weft__malloc(w, (size_t)n * stride + SHARD_ALIGN - 1);
    bcast *b = s && raw ? bcast_new(w, NULL, OP_INIT, NULL, NULL) : NULL;
    if (!b) {
        weft__free(w, raw);
        weft__free(w, s);
        return -ENOMEM;
    }
    *s = (weft_sharded){.rt = w->rt,
                        .size = size,
                        .stride = stride,
                        .init = init,
                        .fini = fini,
                        .arg = arg,
                        .values = (unsigned char *)(((uintptr_t)raw + SHARD_ALIGN - 1) &
                                                    ~(uintptr_t)(SHARD_ALIGN - 1)),
                        .raw = raw};
    b->s = s;
    bcast_run(self, b, WEFT_FOREVER, true); /* cannot fail: every init is delivered */
    bcast_release(b);
    *out = s;
    return 0;
}

void *weft_sharded_local(weft_sharded *s)
{
    weft__worker *w = weft__worker_current();
    if (!s || !w || w->rt != s->rt)
        return NULL;
    /* The pointer is this worker's: a task holding it stays here (task.h). */
    weft__task_bind(w->current);
    return s->values + (size_t)w->index * s->stride;
}

/* The caller of a call on `s`: its worker and task, or NULL with *err. */
static weft__worker *sharded_begin(weft_sharded *s, bool live, weft_task **self, int *err)
{
    weft__worker *w = weft__blocking_begin(self, live, err);
    if (w && (!s || s->rt != w->rt)) {
        *err = -EINVAL;
        return NULL;
    }
    return w;
}

int weft_sharded_reduce(weft_sharded *s, weft_sharded_map_fn map, weft_sharded_reduce_fn reduce,
                        void *arg, void **result, int64_t deadline)
{
    weft_task *self;
    int err;
    weft__worker *w = sharded_begin(s, true, &self, &err);
    if (!w)
        return err;
    if (!map)
        return -EINVAL;
    if (atomic_fetch_add_explicit(&s->reducing, 1, memory_order_acquire) & SHARDED_CLOSED) {
        atomic_fetch_sub_explicit(&s->reducing, 1, memory_order_release);
        return -EBUSY; /* being destroyed */
    }
    bcast *b = bcast_new(w, s, OP_MAP, map, arg);
    if (!b) {
        atomic_fetch_sub_explicit(&s->reducing, 1, memory_order_release);
        return -ENOMEM;
    }
    unsigned n = w->rt->nworkers;
    int r = bcast_run(self, b, deadline, false);
    atomic_fetch_sub_explicit(&s->reducing, 1, memory_order_release); /* s is not read again */
    if (r == 0) {
        void *acc = b->slots[0].result;
        for (unsigned k = 1; reduce && k < n; k++)
            acc = reduce(acc, b->slots[k].result, arg);
        if (result)
            *result = reduce ? acc : NULL;
    }
    bcast_release(b);
    return r;
}

int weft_sharded_destroy(weft_sharded *s)
{
    weft_task *self;
    int err;
    weft__worker *w = sharded_begin(s, false, &self, &err);
    if (!w)
        return err;
    unsigned idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&s->reducing, &idle, SHARDED_CLOSED,
                                                 memory_order_acquire, memory_order_relaxed))
        return -EBUSY; /* a reduce on another task, or another destroy: nothing is destroyed */
    if (s->fini) {
        bcast *b;
        /* The fini must run on every worker: without memory for the record, wait for some
         * rather than leave instances behind. */
        while (!(b = bcast_new(self->worker, s, OP_FINI, NULL, NULL)))
            weft_yield();
        bcast_run(self, b, WEFT_FOREVER, true);
        bcast_release(b);
    }
    /* A reduce that began on another worker as the destroy claimed the record saw CLOSED and
     * is backing out: its decrement is still to come, a write into the record. Freed once
     * the count holds no such reduce (each backs out at once, without a park). */
    while (atomic_load_explicit(&s->reducing, memory_order_acquire) != SHARDED_CLOSED)
        weft_yield();
    w = self->worker;
    weft__free(w, s->raw);
    weft__free(w, s);
    return 0;
}

/* ---- Shard by hash ------------------------------------------------------------------------- */

int weft_shard_of(uint64_t hash)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    /* 2^64 / phi, odd: a bijection of the 64-bit hashes that moves the entropy of the low
     * bits up (Knuth's multiplicative hashing). Then the top 32 bits times n, shifted down:
     * 0 .. n-1 with no division, each in proportion (n <= 256 keeps it within 64 bits). */
    uint64_t mixed = hash * 0x9E3779B97F4A7C15ull;
    return (int)(((mixed >> 32) * w->rt->nworkers) >> 32);
}

/* ---- Listeners served by every shard -------------------------------------------------------- */

/* One acceptor: a listener and the task accepting on it. */
typedef struct acceptor {
    weft_server *srv;
    weft_task *task; /* its handle, joinable so that close may cancel it; owner: the server's
                      * creator, then its closer */
    int lfd;
    int kind;        /* lfd's kind (WEFT__FD_*) as its creator's reactor knew it */
    unsigned worker; /* where it runs */
    unsigned next;   /* round-robin cursor (one-acceptor model); owner: the acceptor */
    bool moved;      /* created on another worker than its own */
    bool started;    /* owner: the acceptor's worker */
} acceptor;

struct weft_server {
    weft__runtime *rt; /* fixed, as everything up to `stopped` */
    weft_conn_fn handler;
    void *arg;
    weft_addr addr; /* the bound address, port resolved */
    unsigned nworkers;
    bool one_acceptor;
    latch stopped; /* acceptors not yet finished: counted down by each one's spawn cleanup */
    unsigned nacceptors;
    acceptor acceptors[];
};

/* What a connection's task needs. Written by the acceptor before the hand-over (the ring
 * publishes it), then its task's: freed by its cleanup, on its worker. Not the server's
 * fields: a connection outlives its server. */
typedef struct conn_start {
    weft_conn_fn handler;
    void *arg;
    int fd;
    int kind;     /* the fd's kind on the acceptor's worker */
    bool moved;   /* accepted on another worker */
    bool started; /* the handler was called: the fd is its */
} conn_start;

/* A fd handed over from another worker: this worker's record for its number may be stale
 * (an earlier fd of that number, closed elsewhere), so it starts afresh, with the kind the
 * acceptor's reactor knew. No system call. */
static void adopt_fd(weft__worker *w, int fd, int kind)
{
    weft__io_fd_known(w, fd, kind);
}

static void *conn_run(void *arg)
{
    conn_start *c = arg;
    if (c->moved)
        adopt_fd(weft__worker_current(), c->fd, c->kind);
    c->started = true;
    c->handler(c->fd, c->arg);
    return NULL;
}

/* The connection task's spawn cleanup, on its worker, however it ended. */
static void conn_cleanup(void *arg)
{
    conn_start *c = arg;
    weft__worker *w = weft__worker_current();
    if (!c->started) { /* finished unrun (the runtime stops, or no stack): the fd is ours */
        if (c->moved)
            adopt_fd(w, c->fd, c->kind);
        weft_close(c->fd);
    }
    weft__free(w, c);
}

/* Gives an accepted connection its task: here (SO_REUSEPORT), or on the next worker in turn. */
static void dispatch(acceptor *a, int fd)
{
    weft__worker *w = weft__worker_current();
    weft_server *srv = a->srv;
    unsigned k = a->worker;
    if (srv->one_acceptor) {
        k = a->next;
        a->next = (a->next + 1) % srv->nworkers;
    }
    conn_start *c = weft__malloc(w, sizeof *c);
    if (!c) {
        weft_close(fd);
        return;
    }
    *c = (conn_start){.handler = srv->handler,
                      .arg = srv->arg,
                      .fd = fd,
                      .kind = weft__io_fd_kind(w, fd),
                      .moved = k != w->index};
    /* Forgotten here before it goes: once on worker k it may be closed there at any moment,
     * and its number come back here for a new fd, which must not find this record. */
    if (c->moved)
        weft__io_fd_fresh(w, fd);
    weft_spawn_opts o = {.name = "conn", .flags = WEFT_SPAWN_DETACHED, .cleanup = conn_cleanup};
    if (weft_spawn_on(k, NULL, conn_run, c, &o) < 0) { /* never handed over: still ours */
        weft__free(w, c);
        weft_close(fd);
    }
}

/* Errors of accept(2) that end an acceptor: its listener is gone or is no listener. The
 * others concern one connection (ECONNABORTED, EPROTO, the network errors accept(2) says to
 * treat as EAGAIN) or resources (ENOBUFS, ENOMEM; EMFILE is backed off inside weft_accept). */
static bool accept_fatal(int err)
{
    return err == -EBADF || err == -EINVAL || err == -ENOTSOCK;
}

static void *acceptor_run(void *arg)
{
    acceptor *a = arg;
    if (a->moved)
        adopt_fd(weft__worker_current(), a->lfd, a->kind);
    a->started = true;
    for (;;) {
        int fd = weft_accept(a->lfd, NULL, NULL, WEFT_FOREVER);
        if (fd >= 0) {
            dispatch(a, fd);
            continue;
        }
        if (fd == -ECANCELED || accept_fatal(fd))
            break;
        /* 1 ms: out of buffers or memory, the next accept would fail at once again. */
        if ((fd == -ENOBUFS || fd == -ENOMEM) && weft_sleep(WEFT_MSEC) == -ECANCELED)
            break;
    }
    return NULL;
}

/* The acceptor's spawn cleanup, on its worker, however it ended (also unrun). */
static void acceptor_cleanup(void *arg)
{
    acceptor *a = arg;
    weft__worker *w = weft__worker_current();
    if (a->moved && !a->started)
        adopt_fd(w, a->lfd, a->kind);
    weft_close(a->lfd);
    latch_count_down(&a->srv->stopped, w); /* the last touch of the server: it may go now */
}

/* Cancels the acceptors started (the first `nstarted`), waits until every one has finished,
 * reaps them, and frees srv. */
static void server_stop(weft_task *self, weft_server *srv, unsigned nstarted)
{
    for (unsigned i = 0; i < nstarted; i++)
        weft_cancel(srv->acceptors[i].task);
    latch_wait(self->worker, self, &srv->stopped, srv, WEFT_FOREVER, true);
    /* Finished (or finishing: the count-down is their last act): reaped on their workers. */
    for (unsigned i = 0; i < nstarted; i++)
        weft_detach(srv->acceptors[i].task);
    weft__free(self->worker, srv);
}

int weft_serve(weft_server **out, const weft_addr *addr, unsigned flags, weft_conn_fn handler,
               void *arg)
{
    weft_task *self;
    int err;
    weft__worker *w = weft__blocking_begin(&self, false, &err);
    if (!w)
        return err;
    if (!out || !addr || !handler || (flags & ~(WEFT_SERVE_ACCEPTOR | WEFT_LISTEN_V6ONLY)))
        return -EINVAL;
    unsigned n = w->rt->nworkers;
    bool one = (flags & WEFT_SERVE_ACCEPTOR) || n == 1 || addr->ss.ss_family == AF_UNIX;
    unsigned na = one ? 1 : n;
    weft_server *srv = weft__calloc(w, 1, sizeof *srv + na * sizeof srv->acceptors[0]);
    if (!srv)
        return -ENOMEM;
    srv->rt = w->rt;
    srv->handler = handler;
    srv->arg = arg;
    srv->nworkers = n;
    srv->one_acceptor = one;
    srv->nacceptors = na;
    latch_init(&srv->stopped, na);

    /* Every listener first: a bind error then leaves nothing open and nothing started. */
    unsigned lflags = (flags & WEFT_LISTEN_V6ONLY) | (one ? 0 : WEFT_LISTEN_REUSEPORT);
    weft_addr at = *addr;
    for (unsigned i = 0; i < na; i++) {
        int lfd = weft_listen(&at, 0, lflags);
        if (lfd >= 0 && i == 0 && (err = weft_addr_local(lfd, &srv->addr)) < 0) {
            weft_close(lfd);
            lfd = err;
        }
        if (lfd < 0) {
            while (i-- > 0)
                weft_close(srv->acceptors[i].lfd);
            weft__free(w, srv);
            return lfd;
        }
        if (i == 0 && at.ss.ss_family != AF_UNIX)
            at = srv->addr; /* port 0: the others join the port the first one got */
        acceptor *a = &srv->acceptors[i];
        a->srv = srv;
        a->lfd = lfd;
        a->kind = weft__io_fd_kind(w, lfd);
        a->worker = one ? w->index : i;
        a->next = (w->index + 1) % n;
        a->moved = a->worker != w->index;
    }
    for (unsigned i = 0; i < na; i++) {
        acceptor *a = &srv->acceptors[i];
        if (a->moved)
            weft__io_fd_fresh(self->worker, a->lfd); /* as for a connection (dispatch) */
        weft_spawn_opts o = {.name = "acceptor", .cleanup = acceptor_cleanup};
        int r = weft_spawn_on(a->worker, &a->task, acceptor_run, a, &o);
        if (r < 0) {
            for (unsigned j = i; j < na; j++) { /* never handed over: closed here */
                weft_close(srv->acceptors[j].lfd);
                latch_count_down(&srv->stopped, self->worker);
            }
            server_stop(self, srv, i);
            return r;
        }
    }
    *out = srv;
    return 0;
}

int weft_server_addr(const weft_server *srv, weft_addr *out)
{
    if (!srv || !out)
        return -EINVAL;
    *out = srv->addr;
    return 0;
}

int weft_server_close(weft_server *srv)
{
    weft_task *self;
    int err;
    weft__worker *w = weft__blocking_begin(&self, false, &err);
    if (!w)
        return err;
    if (!srv || srv->rt != w->rt)
        return -EINVAL;
    server_stop(self, srv, srv->nacceptors);
    return 0;
}
