/* Tasks: spawn, join, detach, cancel, exit, task-local values and cleanup handlers. A task
 * record is alive from spawn until it is reaped (joined, or finished while detached), then
 * goes back to the worker's free list; records are carved from chunks of 64, so spawn and
 * exit in steady state never call malloc. A record's epoch keeps counting across lives,
 * which is what makes a waker from a previous life harmless. */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define CHUNK_TASKS 64 /* records per malloc: amortises the allocator, keeps them close */

typedef struct task_chunk {
    struct task_chunk *next;
    weft_task tasks[CHUNK_TASKS];
} task_chunk;

static int grow_records(weft__worker *w)
{
    task_chunk *c = weft__malloc(w, sizeof *c);
    if (!c)
        return -ENOMEM;
    memset(c, 0, sizeof *c);
    c->next = w->chunks;
    w->chunks = c;
    for (int i = CHUNK_TASKS - 1; i >= 0; i--) {
        c->tasks[i].next = w->free_tasks;
        w->free_tasks = &c->tasks[i];
    }
    w->nfree_tasks += CHUNK_TASKS;
    return 0;
}

static size_t page_round(size_t n)
{
    return (n + 4095) & ~(size_t)4095;
}

int weft__task_new(weft__worker *w, const weft_spawn_opts *opts, weft_task **out)
{
    size_t size = opts && opts->stack_size ? opts->stack_size : w->cfg.stack_size;
    if (size < WEFT_STACK_MIN || size > ((size_t)1 << 30))
        return -EINVAL;
    if (!w->free_tasks && grow_records(w) < 0)
        return -ENOMEM;
    weft_task *t = w->free_tasks;
    w->free_tasks = t->next;
    w->nfree_tasks--;

    /* The epoch continues from the record's previous life (see the file comment). */
    uint64_t e = WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed)) + 1;
    atomic_store_explicit(&t->word, WEFT__WORD(e, WEFT__READY), memory_order_relaxed);
    t->next = NULL;
    t->inbox_next = NULL;
    t->worker = w;
    t->stack = NULL;
    t->arg = NULL;
    t->result = NULL;
    t->defers = NULL;
    t->locals = NULL;
    t->joiner = (weft_waker){NULL, 0};
    t->id = w->next_id++;
    t->stack_size = (uint32_t)page_round(size);
    t->flags = 0;
    t->saved_errno = 0;
    t->name[0] = 0;
    if (opts) {
        if (opts->flags & WEFT_SPAWN_DETACHED)
            t->flags |= WEFT__T_DETACHED;
        if (opts->flags & WEFT_SPAWN_NOGUARD)
            t->flags |= WEFT__T_NOGUARD;
        if (opts->name) {
            strncpy(t->name, opts->name, sizeof t->name - 1);
            t->name[sizeof t->name - 1] = 0;
        }
    }
    /* Spawned during shutdown: cancelled from birth, so it finishes without running. */
    if (w->shutting_down)
        t->flags |= WEFT__T_CANCELLED;
    weft__list_push_back(&w->tasks, &t->all);
    w->nlive++;
    w->ntasks++;
    w->stats.nspawned++;
    *out = t;
    return 0;
}

static int check_spawn(weft__worker *w, weft_task **out, const weft_spawn_opts *opts)
{
    if (!w)
        return -EPERM;
    if (!out && !(opts && (opts->flags & WEFT_SPAWN_DETACHED)))
        return -EINVAL;
    if (opts && (opts->flags & ~(WEFT_SPAWN_DETACHED | WEFT_SPAWN_NOGUARD)))
        return -EINVAL;
    return 0;
}

int weft_spawn(weft_task **out, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    int r = check_spawn(w, out, opts);
    if (r < 0)
        return r;
    if (!fn)
        return -EINVAL;
    weft_task *t;
    r = weft__task_new(w, opts, &t);
    if (r < 0)
        return r;
    t->fn = fn;
    t->arg = arg;
    weft__enqueue(w, t);
    if (out)
        *out = (t->flags & WEFT__T_DETACHED) ? NULL : t;
    return 0;
}

int weft_spawn_future(weft_task **out, weft_future *f, const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    int r = check_spawn(w, out, opts);
    if (r < 0)
        return r;
    if (!f || !f->ops || !f->ops->poll)
        return -EINVAL;
    weft_task *t;
    r = weft__task_new(w, NULL, &t);
    if (r < 0)
        return r;
    if (opts && (opts->flags & WEFT_SPAWN_DETACHED))
        t->flags |= WEFT__T_DETACHED;
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = 0;
    }
    t->flags |= WEFT__T_STACKLESS;
    t->future = f;
    weft__enqueue(w, t);
    if (out)
        *out = (t->flags & WEFT__T_DETACHED) ? NULL : t;
    return 0;
}

static bool is_done(const weft_task *t)
{
    return WEFT__STATE(atomic_load_explicit(&t->word, memory_order_acquire)) == WEFT__DONE;
}

void weft__task_finish(weft__worker *w, weft_task *t, void *result)
{
    /* Cleanup handlers first (they may still read task-locals), newest first. */
    while (t->defers) {
        weft__node *n = t->defers;
        t->defers = n->next;
        n->fn(n->arg);
        weft__node_put(w, n);
    }
    while (t->locals) {
        weft__node *n = t->locals;
        t->locals = n->next;
        if (n->fn)
            n->fn(n->arg);
        weft__node_put(w, n);
    }
    if ((t->flags & WEFT__T_STACKLESS) && t->future) {
        weft_future_destroy(t->future);
        t->future = NULL;
    }
    t->result = (t->flags & WEFT__T_CANCELLED) ? WEFT_CANCELED : result;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    /* release: the result is visible to whoever sees DONE. */
    atomic_store_explicit(&t->word, WEFT__WORD(WEFT__EPOCH(word) + 1, WEFT__DONE),
                          memory_order_release);
    w->nlive--;
    if (t->flags & WEFT__T_MAIN)
        weft__shutdown_begin(w);
    if (t->joiner.task)
        weft_waker_wake(t->joiner);
    /* A detached task that still runs on its stack is reaped once it is off it. */
    if ((t->flags & WEFT__T_DETACHED) && !t->stack)
        weft__task_reap(w, t);
}

void weft__task_reap(weft__worker *w, weft_task *t)
{
    weft__list_remove(&t->all);
    w->ntasks--;
    t->next = w->free_tasks;
    w->free_tasks = t;
    w->nfree_tasks++;
}

WEFT_COLD void weft__tasks_fini(weft__worker *w)
{
    while (w->chunks) {
        task_chunk *c = w->chunks;
        w->chunks = c->next;
        weft__free(w, c);
    }
    w->free_tasks = NULL;
    w->nfree_tasks = 0;
}

/* Parks `self` until t finishes. With `uncancellable`, neither a deadline nor self's own
 * cancellation ends the wait (for owners that must reap what they started). */
static int wait_done(weft__worker *w, weft_task *self, weft_task *t, int64_t deadline,
                     int uncancellable)
{
    while (!is_done(t)) {
        t->joiner = weft__waker_of(self);
        int r = uncancellable ? weft__park(w) : weft__park_until(w, deadline);
        if (r < 0 && !is_done(t)) {
            t->joiner = (weft_waker){NULL, 0};
            return r;
        }
    }
    return 0;
}

/* Reaps a finished t whose result was taken. */
static void reap_joined(weft__worker *w, weft_task *t)
{
    if (!t->stack) {
        weft__task_reap(w, t);
    } else {
        /* It finished but is not yet off its stack (we were woken during its last switch):
         * let the stack release reap it. */
        t->flags |= WEFT__T_DETACHED;
    }
}

int weft_join(weft_task *t, void **result, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *self = weft__blocking_task(w);
    if (!self)
        return -EPERM;
    if (!t || t->worker != w || (t->flags & WEFT__T_DETACHED))
        return -EINVAL;
    if (t == self)
        return -EDEADLK;
    if (t->joiner.task && t->joiner.task != self)
        return -EINVAL;
    int r = wait_done(w, self, t, deadline, 0);
    if (r < 0)
        return r;
    if (result)
        *result = t->result;
    reap_joined(w, t);
    return 0;
}

void weft__join_uncancellable(weft__worker *w, weft_task *t)
{
    wait_done(w, w->current, t, WEFT_FOREVER, 1);
    reap_joined(w, t);
}

int weft_detach(weft_task *t)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!t || t->worker != w || (t->flags & WEFT__T_DETACHED) || t->joiner.task)
        return -EINVAL;
    t->flags |= WEFT__T_DETACHED;
    if (is_done(t) && !t->stack)
        weft__task_reap(w, t);
    return 0;
}

int weft_cancel(weft_task *t)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!t || t->worker != w)
        return -EINVAL;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    if (WEFT__STATE(word) == WEFT__DONE)
        return 0;
    t->flags |= WEFT__T_CANCELLED;
    /* Wake whatever park it is in now, or make its next park return at once. */
    weft__wake(t, WEFT__EPOCH(word));
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
    weft__yield(w);
    return (t->flags & WEFT__T_CANCELLED) ? -ECANCELED : 0;
}

int weft_sleep_until(int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    if (!weft__blocking_task(w))
        return -EPERM;
    for (;;) {
        if (deadline != WEFT_FOREVER && w->now >= deadline)
            return 0;
        int r = weft__park_until(w, deadline);
        if (r == -ETIMEDOUT)
            return 0;
        if (r < 0)
            return r;
    }
}

int weft_sleep(int64_t ns)
{
    return weft_sleep_until(weft_deadline_in(ns));
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
    return t ? t->id : 0;
}

const char *weft_task_name(const weft_task *t)
{
    return t ? t->name : "";
}

int weft_cancelled(void)
{
    weft_task *t = weft_self();
    if (!t)
        return -EPERM;
    return (t->flags & WEFT__T_CANCELLED) ? 1 : 0;
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
            if (n->fn && n->arg != value)
                n->fn(n->arg);
            n->arg = value;
            n->fn = dtor;
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

int weft__task_defer(weft_task *t, void (*fn)(void *), void *arg)
{
    weft__node *n = weft__node_get(t->worker);
    if (!n)
        return -ENOMEM;
    n->key = NULL;
    n->fn = fn;
    n->arg = arg;
    n->next = t->defers;
    t->defers = n;
    return 0;
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

weft_waker weft_waker_current(void)
{
    weft_task *t = weft_self();
    if (!t)
        return (weft_waker){NULL, 0};
    return weft__waker_of(t);
}

void weft_waker_wake(weft_waker wk)
{
    if (wk.task)
        weft__wake(wk.task, wk.epoch);
}
