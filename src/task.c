/* Task records: creating, finishing, reaping and cancelling them; defer handlers; the
 * shutdown of a worker's tasks. Records are carved from the runtime's chunks of 64 and
 * cached per worker, so spawn and exit in steady state never call malloc. A record's epoch
 * keeps counting across lives, which is what makes a waker from a previous life harmless. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "probes.h"
#include "runtime.h"
#include "stack.h"
#include "scheduler.h"
#include "task.h"
#include "task_finish.h"
#include "task_new.h"
#include "tracer.h"
#include "wake.h"
#include "worker.h"

#define CHUNK_TASKS 64 /* records per malloc: amortises the allocator, keeps them close */

/* Records are 64-byte aligned (task.h): a chunk is carved at the first aligned address of
 * its allocation, which `raw` keeps for the free. */
typedef struct task_chunk {
    struct task_chunk *next;
    void *raw;
    weft_task tasks[CHUNK_TASKS];
} task_chunk;

/* Records for w's empty `free`: its own `back` if it has some, else a bundle of the runtime's
 * spare ones, else a new chunk. The spare bundles and the chunk list are the runtime's,
 * under its lock. */
static int grow_records(weft__worker *w)
{
    if (w->tasks.back) {
        w->tasks.free = w->tasks.back;
        w->tasks.free_tail = w->tasks.back_tail;
        w->tasks.nfree = w->tasks.nback;
        w->tasks.back = w->tasks.back_tail = NULL;
        w->tasks.nback = 0;
        return 0;
    }
    weft__runtime *rt = w->rt;
    if (rt->nworkers > 1) {
        pthread_mutex_lock(&rt->lock);
        weft_task *head = rt->spare;
        if (head)
            rt->spare = head->arg;
        pthread_mutex_unlock(&rt->lock);
        if (head) {
            w->tasks.free = head;
            w->tasks.free_tail = head->joiner.task;
            w->tasks.nfree = WEFT__TASK_BUNDLE;
            return 0;
        }
    }
    void *raw = weft__malloc(w, sizeof(task_chunk) + _Alignof(task_chunk));
    if (!raw)
        return -ENOMEM;
    uintptr_t a =
        ((uintptr_t)raw + _Alignof(task_chunk) - 1) & ~(uintptr_t)(_Alignof(task_chunk) - 1);
    task_chunk *c = (task_chunk *)a;
    memset(c, 0, sizeof *c);
    c->raw = raw;
    /* Called only when the free list is empty: the chunk becomes the list, in order. Set
     * before the chunk is linked: other workers' shutdown walks read the list. */
    for (int i = 0; i < CHUNK_TASKS; i++) {
        c->tasks[i].flags = WEFT__T_REAPED;
        c->tasks[i].next = i + 1 < CHUNK_TASKS ? &c->tasks[i + 1] : NULL;
    }
    pthread_mutex_lock(&rt->lock);
    c->next = rt->chunks;
    rt->chunks = c;
    pthread_mutex_unlock(&rt->lock);
    w->tasks.free = &c->tasks[0];
    w->tasks.free_tail = &c->tasks[CHUNK_TASKS - 1];
    w->tasks.nfree = CHUNK_TASKS;
    return 0;
}

WEFT_COLD void weft__tasks_init(weft__worker *w, size_t default_stack)
{
    /* Checked by the configuration (runtime.c); rounded once here, not at every spawn. */
    w->tasks.stack_size = (uint32_t)weft__page_round(default_stack);
}

/* The keys of the node that carries a spawn's cleanup in a task's locals (see task.h). */
const char weft__spawn_cleanup_key;
const char weft__spawn_wrap_key;

/* Whether n carries a spawn's cleanup (either key). */
static inline bool is_spawn_node(const weft__node *n)
{
    return n->key == &weft__spawn_cleanup_key || n->key == &weft__spawn_wrap_key;
}

int weft__task_refill(weft__worker *w)
{
    if (!w->tasks.free && grow_records(w) < 0)
        return -ENOMEM;
    if (w->tasks.next_id == w->tasks.id_end) {
        w->tasks.next_id = weft__runtime_take_ids(w->rt, WEFT__ID_BLOCK);
        w->tasks.id_end = w->tasks.next_id + WEFT__ID_BLOCK;
    }
    return 0;
}

int weft__task_new_for(weft__worker *w, weft__worker *home, const weft_spawn_opts *opts,
                       bool stackless, const char *file, uint32_t line, weft_task **out)
{
    return weft__task_new_inline(w, home, opts, stackless, file, line, 0, NULL, out);
}

void weft__task_unnew(weft__worker *w, weft_task *t)
{
    for (weft__node *n = t->locals; n;) { /* the spawn's cleanup node, if any */
        weft__node *next = n->next;
        if (n->key != &weft__spawn_wrap_key) /* a wrapping module's node stays its own */
            weft__node_put(w, n);
        n = next;
    }
    t->locals = NULL;
    w->tasks.nrecords++; /* taken back by the reap */
    weft__task_reap(w, t);
}

/* Passes over the handlers a task's own handlers keep adding (a local's destructor that
 * registers a defer or sets a task-local again; a defer that sets a local): POSIX's
 * PTHREAD_DESTRUCTOR_ITERATIONS is 4. After the
 * last pass what is still registered is dropped without running, as pthread keys' values
 * are; locks still held are given up all the same. */
#define FINISH_PASSES 4

/* Whether handlers are left besides the spawn's cleanup: the oldest local, so the list's
 * last node, which stays on it until the end (a handler that calls weft_exit re-enters
 * weft__task_finish_handlers, which must still find it). */
static bool handlers_left(const weft_task *t)
{
    return t->defers || t->holds || (t->locals && (t->locals->next || !is_spawn_node(t->locals)));
}

/* The handlers on a list, the spawn's cleanup not counted. */
static size_t count_nodes(const weft__node *n)
{
    size_t k = 0;
    for (; n; n = n->next)
        k += !is_spawn_node(n);
    return k;
}

/* One pass of the handlers a task left: defers, then locals but the spawn's cleanup, then
 * holds. A pass runs every defer, those the defers register included, and as many locals
 * and holds as were registered when it began (what they register goes first, newest first,
 * and what is left of the older ones to the next pass), so that a destructor that sets its
 * local again for ever is bounded by the passes. `run`: false on the pass past the last,
 * which only gives the nodes back. */
static void finish_pass(weft__worker *w, weft_task *t, bool run)
{
    /* Cleanup handlers first (they may still read task-locals), newest first. Each node goes
     * back to the pool before its handler runs: a handler that calls weft_exit re-enters
     * weft__task_finish_handlers and never comes back here. */
    /* All of them, with those they register (a chain of cleanups, each deferring the next,
     * is finite code: cutting it would leak what the later ones free); a defer that
     * registers itself for ever loops, as a loop in the task's own code would. */
    while (t->defers) {
        weft__node *n = t->defers;
        t->defers = n->next;
        void (*fn)(void *) = n->fn;
        void *arg = n->arg;
        weft__node_put(w, n);
        if (run)
            fn(arg);
    }
    /* Then the locals' destructors, newest first, up to the spawn's cleanup. */
    for (size_t k = run ? count_nodes(t->locals) : SIZE_MAX;
         k > 0 && t->locals && (t->locals->next || !is_spawn_node(t->locals)); k--) {
        weft__node *n = t->locals;
        t->locals = n->next;
        void (*fn)(void *) = n->fn;
        void *arg = n->arg;
        weft__node_put(w, n);
        if (fn && run)
            fn(arg);
    }
    /* Locks still held are released by their module (a mutex reports its owner's death to
     * the next locker), so no waiter is left parked on a task that is gone. */
    while (t->holds) {
        weft__hold *h = t->holds;
        t->holds = h->next;
        h->abandon(h, false);
    }
}

/* The handlers a task left: defers, locals, holds, the spawn cleanup (task_finish.h). Out of
 * line: most tasks have none, and the finish then saves no registers for these loops. What a
 * handler adds (a local's destructor that registers a defer) runs in a further pass. */
WEFT_NOINLINE void weft__task_call_noblock(weft_task *ctx, void (*fn)(void *), void *arg)
{
    bool refuse = ctx && !(ctx->flags & WEFT__T_NOBLOCK);
    if (refuse)
        weft__task_flags_set(ctx, WEFT__T_NOBLOCK);
    fn(arg);
    if (refuse)
        weft__task_flags_clear(ctx, WEFT__T_NOBLOCK);
}

WEFT_NOINLINE void weft__task_finish_handlers(weft__worker *w, weft_task *t)
{
    for (int pass = 0; pass <= FINISH_PASSES && handlers_left(t); pass++)
        finish_pass(w, t, pass < FINISH_PASSES);
    /* Last of all the spawn's cleanup, given the task's argument (the task's own handlers may
     * still use what it was handed), once the locks are given up: it is often what tells
     * someone that the task is over (a handle's join, a group's wait), who may then free a
     * lock the task held, or the memory around it. What it leaves goes the same way. */
    weft__node *n = t->locals;
    if (!n)
        return;
    t->locals = NULL;
    void (*fn)(void *) = n->fn;
    void *arg = n->arg;
    if (n->key == &weft__spawn_cleanup_key) { /* the pool's node, for weft_spawn_opts.cleanup */
        arg = t->arg;
        weft__node_put(w, n);
        /* The user's cleanup must not block (weft.h): its blocking calls are refused (-EPERM)
         * whichever context runs it, as they already were on the loop (a task that never ran
         * is finished by whoever picks it), instead of parking that context: the finishing
         * task, or another task that finished it. */
        weft__task_call_noblock(w->current, fn, arg);
    } else { /* a wrapping module's node (a group member's, an alien handle's): its own */
        fn(arg);
    }
    if (t->defers || t->locals || t->holds)
        weft__task_finish_handlers(w, t);
}

void weft__task_main_ended(weft__worker *w, void *outcome)
{
    w->rt->main_result = outcome;
    w->main_ended = true;
}

void weft__task_finish(weft__worker *w, weft_task *t, void *result)
{
    /* Before: a detached task without a stack is reaped inside. The outcome as the finish
     * decides it. */
    if (weft_unlikely(t->flags & WEFT__T_MAIN))
        weft__task_main_ended(w, weft__task_cancelled(t) ? WEFT_CANCELED : result);
    weft__task_finish_inline(w, t, result, false);
}

void weft__task_release(weft__worker *w, weft_task *t)
{
    /* ONSTACK says what `stack` would (bound and dropped together), from the first line. */
    if (!(t->flags & WEFT__T_ONSTACK))
        weft__task_reap(w, t);
    else
        weft__task_flags_set(t, WEFT__T_DETACHED); /* the stack's release reaps it */
}

/* w's `back` is a full bundle: it joins `free` if that is short of one (or w is the only
 * worker), else it goes whole to the runtime's spare bundles. */
WEFT_NOINLINE void weft__task_retire_back(weft__worker *w)
{
    weft_task *head = w->tasks.back, *tail = w->tasks.back_tail;
    w->tasks.back = w->tasks.back_tail = NULL;
    w->tasks.nback = 0;
    weft__runtime *rt = w->rt;
    if (w->tasks.nfree < WEFT__TASK_BUNDLE || rt->nworkers == 1) {
        if (w->tasks.free_tail)
            w->tasks.free_tail->next = head;
        else
            w->tasks.free = head;
        w->tasks.free_tail = tail;
        w->tasks.nfree += WEFT__TASK_BUNDLE;
        return;
    }
    head->joiner.task = tail;
    pthread_mutex_lock(&rt->lock);
    head->arg = rt->spare;
    rt->spare = head;
    pthread_mutex_unlock(&rt->lock);
}

void weft__task_reap(weft__worker *w, weft_task *t)
{
    weft__task_reap_inline(w, t);
}

/* A cancel is the flag, then (fence.h) a wake of the epoch the word holds after it: the park
 * it is in now, or, if it is running, its next park, which returns at once. The flag comes
 * first: a cancel that read the epoch first and was preempted before its store could wake
 * a park that had ended meanwhile (a sleep's timer fired), while the task parked again
 * without seeing the flag, for ever (tests/test_workers.c, cancel_races_a_timer). */
static bool cancel_flag(weft_task *t)
{
    if (WEFT__STATE(atomic_load_explicit(&t->word, memory_order_relaxed)) == WEFT__DONE)
        return false;
    /* relaxed: the fence orders it before the load of the word, and the wake's CAS (acq_rel)
     * publishes it to the task it makes READY. An or: a detach's bit, set from another
     * thread, stays. */
    atomic_fetch_or_explicit(&t->cancelled, WEFT__ASKED_CANCEL, memory_order_relaxed);
    return true;
}

static void cancel_wake(weft_task *t)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    weft__wake(t, WEFT__EPOCH(word));
}

/* Whether a task of `owner` may run on another thread while the calling thread cancels it:
 * unless the caller is its owner in sharded mode (in stealing mode a task not yet started
 * may just have been handed to another worker, which runs it). */
static bool cancel_may_race(const weft__worker *owner)
{
    if (owner != weft__worker_tls()) /* under the runtime's lock: no take-back */
        return true;
    return owner->rt->cfg.mode == WEFT_MODE_STEALING && owner->rt->nworkers > 1;
}

void weft__task_cancel(weft_task *t)
{
    if (!cancel_flag(t))
        return;
    weft__worker *owner = __atomic_load_n(&t->worker, __ATOMIC_RELAXED);
    if (cancel_may_race(owner))
        weft__fence_cancel(&owner->rt->fence);
    cancel_wake(t);
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

WEFT_COLD void weft__tasks_shutdown(weft__worker *w)
{
    w->tasks.shutting_down = true;
    /* Every record lives in one of the runtime's chunks: walk them (shutdown is rare, and a
     * live list would cost every record two pointers). The list is only ever prepended to,
     * never rewritten, so the overflow handler may walk it too (weft__task_by_guard). */
    weft__runtime *rt = w->rt;
    pthread_mutex_lock(&rt->lock);
    /* Two walks: every flag, one fence for them all (fence.h), then every wake. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && cancel_may_race(w))
            weft__fence_cancel(&rt->fence);
        for (task_chunk *c = rt->chunks; c; c = c->next) {
            for (int i = 0; i < CHUNK_TASKS; i++) {
                weft_task *t = &c->tasks[i];
                /* Relaxed loads: other workers write their records' fields meanwhile. Ours
                 * are reaped only on this thread, so one that says it is ours and alive stays
                 * so during the walk (or is a record being handed over to us, which the
                 * adoption cancels anyway). A finished task is left as it is. */
                if (__atomic_load_n(&t->worker, __ATOMIC_RELAXED) != w || weft__task_reaped(t))
                    continue;
                if (pass == 0)
                    cancel_flag(t);
                else if (weft__task_cancelled(t))
                    cancel_wake(t);
            }
        }
    }
    pthread_mutex_unlock(&rt->lock);
}

WEFT_COLD void weft__task_each(weft__runtime *rt, void (*fn)(weft_task *t, void *arg), void *arg)
{
    /* The head under the lock; the rest without it: the list only grows at the head, and a
     * record never moves. fn must not spawn (a new chunk would take the lock): it reads. */
    pthread_mutex_lock(&rt->lock);
    task_chunk *head = rt->chunks;
    pthread_mutex_unlock(&rt->lock);
    for (task_chunk *c = head; c; c = c->next)
        for (int i = 0; i < CHUNK_TASKS; i++)
            /* acquire: pairs with the spawn's release store that cleared REAPED, after the
             * fields fn reads (task_new.h). */
            if (!(__atomic_load_n(&c->tasks[i].flags, __ATOMIC_ACQUIRE) & WEFT__T_REAPED))
                fn(&c->tasks[i], arg);
}

WEFT_COLD void weft__tasks_fini(weft__worker *w)
{
    weft__free(w, w->tasks.reap_out); /* empty: the loop sent every chain before it ended */
    w->tasks.reap_out = NULL;
    w->tasks.free = w->tasks.free_tail = NULL;
    w->tasks.back = w->tasks.back_tail = NULL;
    w->tasks.nfree = w->tasks.nback = 0;
}

int weft__task_wait_snapshot(const weft_task *t, int *kind, const void **what, int64_t *deadline,
                             int64_t *since)
{
    /* A seqlock on the state word: acquire pairs with the PARKED CAS (release) that
     * published the record; an unchanged word afterwards means the same park. */
    uint64_t w0 = atomic_load_explicit(&t->word, memory_order_acquire);
    if (WEFT__STATE(w0) != WEFT__PARKED)
        return -EAGAIN;
    /* acquire: pairs with record_wait's release stores, so a field from a later park comes
     * with that park's word, which the re-check below then sees. */
    int k = atomic_load_explicit(&t->wait_kind, memory_order_acquire);
    const void *o = atomic_load_explicit(&t->wait_what, memory_order_acquire);
    int64_t d = atomic_load_explicit(&t->wait_deadline, memory_order_acquire);
    int64_t s = atomic_load_explicit(&t->wait_since, memory_order_acquire);
    if (atomic_load_explicit(&t->word, memory_order_relaxed) != w0 || k == WEFT__WAIT_NONE)
        return -EAGAIN;
    *kind = k;
    *what = o;
    *deadline = d;
    *since = s;
    return 0;
}

WEFT_COLD void weft__task_chunks_free(weft__runtime *rt, weft__worker *w)
{
    while (rt->chunks) {
        task_chunk *c = rt->chunks;
        rt->chunks = c->next;
        weft__free(w, c->raw);
    }
}

weft_task *weft__task_by_guard(weft__worker *w, const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    for (task_chunk *c = w->rt->chunks; c; c = c->next) {
        for (int i = 0; i < CHUNK_TASKS; i++) {
            weft_task *t = &c->tasks[i];
            if (__atomic_load_n(&t->worker, __ATOMIC_RELAXED) != w)
                continue;
            const weft__stack *s = t->stack;
            if (!s || !s->guarded || weft__task_reaped(t))
                continue;
            if (a >= (uintptr_t)s->map && a < (uintptr_t)s->lo)
                return t;
        }
    }
    return NULL;
}

const weft__node *weft__task_spawn_cleanup(const weft_task *t)
{
    for (const weft__node *n = t->locals; n; n = n->next)
        if (is_spawn_node(n))
            return n;
    return NULL;
}
