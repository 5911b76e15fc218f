/* Work from outside the runtime (Seastar's "alien"): threads the runtime did not start spawn
 * tasks onto it and join or cancel them.
 *
 * The runtime handle (weft_runtime) is a small counted record apart from the runtime: the
 * runtime holds one reference and each weft_runtime_current caller one more, so a thread may
 * keep it after the runtime is gone. Its `rt` says whether the runtime still takes work,
 * under its mutex: a spawn posts its message with the mutex held, and the shutdown clears
 * `rt` under the same mutex once the main task has finished, before the runtime can reach
 * quiescence; so every spawn either fails with -ESHUTDOWN or is drained by a live worker.
 *
 * A spawn is a message (smp.c's foreign list) to one worker, chosen round-robin or named,
 * which spawns the task there, detached, as the message runs; in stealing mode an unnamed
 * one goes to the runtime's injection queue instead, for whichever worker looks first (an
 * idle one at once, a busy one within WEFT__INJECT_TICKS ticks). The task's handle (weft_handle)
 * is counted as well: one reference for the caller, one for the task, dropped by the task's
 * cleanup once it has stored the result and set the handle's event. A join waits on that
 * event, which any task or plain thread may (sync.c), so the handle outlives the task
 * record, the worker and the runtime alike. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alien.h"
#include "overflow.h"
#include "runtime.h"
#include "scheduler.h"
#include "smp.h"
#include "task.h"
#include "task_api.h"
#include "util/spinlock.h"
#include "watchdog.h"
#include "worker.h"

struct weft_runtime {
    _Atomic unsigned refs; /* any thread: the runtime's own and each caller's */
    /* Of those, weft's own (weft__runtime_weak: a child process's record, to hand its fds'
     * close to the runtime): no thread outside holds them, so the deadlock report does not
     * count them as an outside source. any thread (relaxed: a count read under rt->lock). */
    _Atomic unsigned weak;
    pthread_mutex_t lock;  /* guards rt */
    weft__runtime *rt;     /* NULL once the runtime stopped taking work */
    _Atomic unsigned next; /* round-robin choice of worker (relaxed: any spread will do) */
    /* weft__fork_generation() at its making: in the child of a fork() it differs, and the
     * runtime's copy there, which no thread runs, takes no work (anchor_rt). Fixed. */
    unsigned fork_generation;
};

struct weft_handle {
    _Atomic unsigned refs; /* the caller's and, until its cleanup, the task's */
    weft_event done;       /* set once result and status are stored */
    void *result;          /* the task's result (WEFT_CANCELED, WEFT_NOMEM as for a join) */
    int status;            /* 0, or why the task never existed (-ENOMEM) */
    _Atomic int settled;   /* 1 once result and status are stored (release; weft_handle_done) */
    /* `task` is the running task (for a cancel), set by the spawning worker and cleared by
     * the task's cleanup; `cancel` a cancel that came before the task existed. Both under
     * `lock`, a spinlock held for a few instructions by any thread. */
    _Atomic uint32_t lock;
    weft_task *task;
    bool cancel;
    /* The spawn, copied: the caller's structure may be gone when the message runs. */
    weft_fn fn;
    void *arg;
    void (*cleanup)(void *arg);
    size_t stack_size;
    unsigned flags;
    char name[16];
    weft__node ended; /* the task's spawn cleanup (task_ended), the task's until it runs */
    /* The runtime the task was posted to; fixed. Only compared, never followed: a joiner
     * reads it while the handle is unsettled, when that runtime still runs the task. */
    const weft__runtime *home;
    /* weft__fork_generation() at the spawn: in the child of a fork() it differs, and the
     * task, which runs in the parent, is never seen to finish there. Fixed. */
    unsigned fork_generation;
};

/* ---- The runtime handle --------------------------------------------------------------- */

static weft_runtime *anchor_get(weft__worker *w, bool weak)
{
    weft__runtime *rt = w->rt;
    pthread_mutex_lock(&rt->lock);
    weft_runtime *a = rt->anchor;
    if (!a && (a = calloc(1, sizeof *a)) != NULL) {
        atomic_init(&a->refs, 1); /* the runtime's */
        pthread_mutex_init(&a->lock, NULL);
        a->rt = rt;
        a->fork_generation = weft__fork_generation();
        /* A runtime whose main task has finished takes no more work. */
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
            a->rt = NULL;
        rt->anchor = a;
    }
    if (a) {
        atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
        if (weak)
            atomic_fetch_add_explicit(&a->weak, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&rt->lock);
    return a;
}

weft_runtime *weft_runtime_current(void)
{
    weft__worker *w = weft__worker_current();
    return w ? anchor_get(w, false) : NULL;
}

weft_runtime *weft__runtime_weak(weft__worker *w)
{
    return anchor_get(w, true);
}

void weft__runtime_release_weak(weft_runtime *a)
{
    if (!a)
        return;
    atomic_fetch_sub_explicit(&a->weak, 1, memory_order_relaxed);
    weft_runtime_release(a);
}

bool weft__runtime_is(const weft_runtime *a, const weft__worker *w)
{
    return a && w && w->rt->anchor == a;
}

void weft_runtime_retain(weft_runtime *a)
{
    if (a)
        atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void weft_runtime_release(weft_runtime *a)
{
    /* acq_rel: every holder's last use happens before the free. */
    if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* The runtime that takes work through a, or NULL: it has stopped taking work, or this is the
 * child of a fork() made after a was, where the runtime's copy has no thread to run it (a
 * spawn would wait there for ever, and ring the parent's doorbell). Under a->lock. */
static weft__runtime *anchor_rt(const weft_runtime *a)
{
    return a->fork_generation == weft__fork_generation() ? a->rt : NULL;
}

int weft_runtime_workers(weft_runtime *a)
{
    if (!a)
        return -EINVAL;
    pthread_mutex_lock(&a->lock);
    weft__runtime *rt = anchor_rt(a);
    int n = rt ? (int)rt->nworkers : -ESHUTDOWN;
    pthread_mutex_unlock(&a->lock);
    return n;
}

weft__runtime *weft__anchor_lock(weft_runtime *a)
{
    pthread_mutex_lock(&a->lock);
    return anchor_rt(a);
}

void weft__anchor_unlock(weft_runtime *a)
{
    pthread_mutex_unlock(&a->lock);
}

bool weft__runtime_held_outside(weft__runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    weft_runtime *a = rt->anchor;
    bool held = a && atomic_load_explicit(&a->refs, memory_order_relaxed) >
                         1 + atomic_load_explicit(&a->weak, memory_order_relaxed);
    pthread_mutex_unlock(&rt->lock);
    return held;
}

void weft__alien_close(weft__runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    weft_runtime *a = rt->anchor;
    pthread_mutex_unlock(&rt->lock);
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->rt = NULL;
    pthread_mutex_unlock(&a->lock);
}

void weft__alien_fini(weft__runtime *rt)
{
    weft__alien_close(rt);
    weft_runtime_release(rt->anchor);
    rt->anchor = NULL;
}

/* ---- Task handles ----------------------------------------------------------------------- */

static void handle_unref(weft_handle *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
        free(h);
}

/* The outcome is in: wake every joiner, then drop the task's reference. */
static void handle_settle(weft_handle *h, void *result, int status)
{
    weft__spin_lock(&h->lock);
    h->task = NULL;
    weft__spin_unlock(&h->lock);
    h->result = result;
    h->status = status;
    atomic_store_explicit(&h->settled, 1, memory_order_release);
    weft_event_set(&h->done); /* its lock orders the stores above before a joiner's reads */
    handle_unref(h);
}

/* The task's cleanup: runs once it has finished however it ended, the result stored in its
 * record already (task.c), on the worker it finished on. */
static void task_ended(void *arg)
{
    weft_handle *h = arg;
    if (h->cleanup) { /* its blocking calls refused, as weft_spawn's (they parked here) */
        weft__worker *w = weft__worker_current();
        weft__task_call_noblock(w ? w->current : NULL, h->cleanup, h->arg);
    }
    /* Read under the lock: the record is alive while `task` names it (this is its last
     * cleanup, before the record can be recycled). */
    weft__spin_lock(&h->lock);
    void *result = h->task ? h->task->result : WEFT_CANCELED;
    weft__spin_unlock(&h->lock);
    handle_settle(h, result, 0);
}

/* On the chosen worker, on its loop: the spawn itself. */
static void msg_spawn(weft__worker *w, void *a, void *b, uint64_t c)
{
    (void)b, (void)c;
    weft_handle *h = a;
    weft_spawn_opts o = {
        .stack_size = h->stack_size, .name = h->name[0] ? h->name : NULL, .flags = h->flags};
    weft_task *t;
    h->ended = (weft__node){.fn = task_ended, .key = &weft__spawn_wrap_key, .arg = h};
    int r = weft__spawn_wrapped(w, &t, h->fn, h->arg, &o, 0, &h->ended);
    if (r < 0) {
        /* Never made (no memory: the options were checked at the call): its cleanup runs
         * all the same, since it is where the caller frees what the task was handed. */
        if (h->cleanup)
            h->cleanup(h->arg);
        handle_settle(h, NULL, r);
        return;
    }
    weft__spin_lock(&h->lock);
    h->task = t;
    if (h->cancel)
        weft__task_cancel(t);
    weft__spin_unlock(&h->lock);
    weft__spawn_start(w, t, false);
}

/* The next worker round-robin, going round those the stall detector sees stuck in a task (the
 * stuck-worker hint, watchdog.h): a spawn placed there would wait for the task to yield. If
 * all are stuck, the next in turn. */
static unsigned pick_worker(weft_runtime *a, const weft__runtime *rt)
{
    unsigned n = rt->nworkers;
    unsigned k = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed) % n;
    for (unsigned i = 0; i < n; i++) {
        unsigned c = (k + i) % n;
        if (!weft__watch_stuck(&rt->workers[c].watch))
            return c;
    }
    return k;
}

int weft_runtime_spawn_on(weft_runtime *a, int worker, weft_handle **out, weft_fn fn, void *arg,
                          const weft_spawn_opts *opts)
{
    if (!a || !fn || worker < -1)
        return -EINVAL;
    /* Every option is checked here, as weft_spawn checks them: what the worker would refuse
     * later could only be reported at the join. */
    if (opts &&
        ((opts->flags & ~(WEFT_SPAWN_DETACHED | WEFT_SPAWN_NOGUARD | WEFT_SPAWN_PINNED)) ||
         opts->reserved_[0] || opts->reserved_[1] || opts->reserved_[2] || opts->reserved_[3] ||
         (opts->stack_size &&
          (opts->stack_size < WEFT_STACK_MIN || opts->stack_size > ((size_t)1 << 30)))))
        return -EINVAL;
    bool detached = !out || (opts && (opts->flags & WEFT_SPAWN_DETACHED));
    weft_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    atomic_init(&h->refs, detached ? 1 : 2);
    h->done = (weft_event)WEFT_EVENT_INIT;
    h->fn = fn;
    h->arg = arg;
    if (opts) {
        h->cleanup = opts->cleanup;
        h->stack_size = opts->stack_size;
        h->flags = opts->flags & (WEFT_SPAWN_NOGUARD | WEFT_SPAWN_PINNED);
        if (opts->name)
            strncpy(h->name, opts->name, sizeof h->name - 1);
    }
    h->fork_generation = weft__fork_generation();
    pthread_mutex_lock(&a->lock);
    weft__runtime *rt = anchor_rt(a);
    int r = -ESHUTDOWN;
    if (rt && worker >= (int)rt->nworkers) {
        r = -EINVAL;
    } else if (rt) {
        h->home = rt;
        weft__msg m = {msg_spawn, h, NULL, 0};
        if (worker < 0 && rt->cfg.mode == WEFT_MODE_STEALING && rt->nworkers > 1)
            r = weft__smp_inject(rt, &m); /* whichever worker looks first */
        else
            r = weft__smp_post_foreign(
                &rt->workers[worker >= 0 ? (unsigned)worker : pick_worker(a, rt)], &m);
    }
    pthread_mutex_unlock(&a->lock);
    if (r < 0) {
        free(h);
        return r;
    }
    if (out)
        *out = detached ? NULL : h;
    return 0;
}

int weft_runtime_spawn(weft_runtime *a, weft_handle **out, weft_fn fn, void *arg,
                       const weft_spawn_opts *opts)
{
    return weft_runtime_spawn_on(a, -1, out, fn, arg, opts);
}

int weft_handle_join(weft_handle *h, void **result, int64_t deadline)
{
    if (!h)
        return -EINVAL;
    /* The handle's own task joining it would wait for ever: -EDEADLK, as weft_join says of a
     * task joining itself. `task` is read under its lock; it is ours only while we run. */
    weft_task *self = weft_self();
    /* Inside weft_block_in_place's fn the thread is no worker's, but fn is still its task's
     * code (on its stack): that task cannot end before fn returns. (A fn run on the blocking
     * pool instead, on io_uring, is not recognised.) */
    if (!self)
        self = (weft_task *)__atomic_load_n(weft__overflow_in_place_slot(), __ATOMIC_RELAXED);
    if (self) {
        weft__spin_lock(&h->lock);
        bool own = h->task == self;
        weft__spin_unlock(&h->lock);
        if (own)
            return -EDEADLK;
    }
    /* A task of another runtime than the handle's is woken from outside its runtime (by the
     * handle's task, at its end): its runtime's deadlock report must count it as a source
     * from outside, as after a wake from outside (wake.c), or it judged the joiner, parked on
     * an event, asleep for good and ended the process while the other runtime worked. */
    weft__worker *w = weft__worker_current();
    if (w && w->rt != h->home && !atomic_load_explicit(&h->settled, memory_order_acquire))
        atomic_store_explicit(&w->rt->foreign, 1, memory_order_relaxed);
    /* In the child of a fork() the task runs on in the parent: nothing here settles it. */
    if (h->fork_generation != weft__fork_generation() &&
        !atomic_load_explicit(&h->settled, memory_order_acquire))
        return -ESHUTDOWN;
    int r = weft_event_wait(&h->done, deadline);
    if (r < 0)
        return r;
    if (h->status < 0)
        return h->status;
    if (result)
        *result = h->result;
    return 0;
}

int weft_handle_done(const weft_handle *h)
{
    if (!h)
        return -EINVAL;
    /* acquire: pairs with handle_settle's release, so a join after a 1 finds the result. */
    return atomic_load_explicit(&h->settled, memory_order_acquire);
}

int weft_handle_cancel(weft_handle *h)
{
    if (!h)
        return -EINVAL;
    if (h->fork_generation != weft__fork_generation())
        return 0; /* the child of a fork(): the task is the parent's, its copy here runs not */
    weft__spin_lock(&h->lock);
    h->cancel = true;
    if (h->task)
        weft__task_cancel(h->task); /* any thread: an atomic flag and a wake */
    weft__spin_unlock(&h->lock);
    return 0;
}

void weft_handle_release(weft_handle *h)
{
    if (h)
        handle_unref(h);
}
