/* A spawn's new task record (task.c's weft__task_new), inline for the spawn paths
 * (task_api.c), which then make one call fewer and fold what they know (a stackful task, of
 * the spawning worker) into it; the rare cases (no free record, no id left) stay out of line
 * in task.c. Included by task.c, task_api.c and steal.c only: it needs the worker's layout. */
#ifndef WEFT_TASK_NEW_H
#define WEFT_TASK_NEW_H

#include <errno.h>
#include <string.h>

#include "probes.h"
#include "task.h"
#include "tracer.h"
#include "worker.h"

static inline size_t weft__page_round(size_t n)
{
    return (n + 4095) & ~(size_t)4095;
}

/* w's `back` is a full bundle of reaped records: it goes on (task.c). */
void weft__task_retire_back(weft__worker *w);

/* weft__task_reap (task.h), inline for the end of every stackful task (scheduler.c's
 * release_dead); task.c's weft__task_reap is this for every other caller. */
static inline void weft__task_reap_inline(weft__worker *w, weft_task *t)
{
    w->tasks.nrecords--;
    weft__task_flags_set(t, WEFT__T_REAPED);
    /* At the tail: the record is reused after every other free one, so a stale handle keeps
     * answering -ESRCH for as long as possible. */
    t->next = NULL;
    if (w->tasks.back_tail)
        w->tasks.back_tail->next = t;
    else
        w->tasks.back = t;
    w->tasks.back_tail = t;
    if (weft_unlikely(++w->tasks.nback == WEFT__TASK_BUNDLE))
        weft__task_retire_back(w);
}

/* Fills w's free records and its block of task ids, whichever is out. 0 or -ENOMEM. */
int weft__task_refill(weft__worker *w);

/* Takes t (from weft__task_new_for) as one of w's unfinished tasks: counted, cancelled from
 * birth if w is shutting down. The caller queues it. Owner thread. */
static inline void weft__task_adopt(weft__worker *w, weft_task *t)
{
    /* Spawned during shutdown: cancelled from birth, so it finishes without running. */
    if (weft_unlikely(w->tasks.shutting_down))
        atomic_store_explicit(&t->cancelled, 1, memory_order_relaxed);
    w->tasks.nlive++;
    w->tasks.nrecords++;
}

/* `wrap_flags` (WEFT_SPAWN_*) are added to the options' flags, and `wrap_node`, if not NULL,
 * is the spawn cleanup in place of opts->cleanup: a node the caller keeps in its own record
 * (a group's member, an alien handle) with key weft__spawn_wrap_key and its fn and arg set
 * (task.h), so that such a spawn takes no node from the pool and copies none of the caller's
 * options (whose copy through the stack the loads of its fields could not forward from).
 * Constants at every call site but that one. */
static inline __attribute__((always_inline)) int
weft__task_new_inline(weft__worker *w, weft__worker *home, const weft_spawn_opts *opts,
                      bool stackless, const char *file, uint32_t line, unsigned wrap_flags,
                      weft__node *wrap_node, weft_task **out)
{
    /* The default size was checked and rounded once, at init; only a size the spawn asks
     * for is checked here (a stackless task has no stack: its size is ignored). */
    uint32_t stack_size = w->tasks.stack_size;
    if (opts && opts->stack_size && !stackless) {
        size_t size = opts->stack_size;
        if (size < WEFT_STACK_MIN || size > ((size_t)1 << 30))
            return -EINVAL;
        stack_size = (uint32_t)weft__page_round(size);
    }
    /* Out of records, or of this worker's block of ids: both rare, in one test. */
    if (weft_unlikely(!w->tasks.free || w->tasks.next_id == w->tasks.id_end) &&
        weft__task_refill(w) < 0)
        return -ENOMEM;
    weft__node *cleanup = wrap_node;
    if (wrap_node) {
        wrap_node->next = NULL;
    } else if (opts && opts->cleanup) {
        if (!(cleanup = weft__node_get(w)))
            return -ENOMEM;
        cleanup->next = NULL;
        cleanup->key = &weft__spawn_cleanup_key;
        cleanup->fn = opts->cleanup;
        cleanup->arg = NULL; /* it gets the task's arg, set by the spawn after this */
    }
    weft_task *t = w->tasks.free;
    w->tasks.free = t->next;
    if (!t->next)
        w->tasks.free_tail = NULL;
    else /* the next spawn's record, whose `next` it reads first: often cold (reaped long
          * ago, or on another worker's CPU), and the list is a chain of dependent loads */
        weft__prefetch_record(t->next);
    w->tasks.nfree--;

    /* The epoch continues from the record's previous life (see the file comment). */
    uint64_t e = WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed)) + 1;
    atomic_store_explicit(&t->word, WEFT__WORD(e, WEFT__READY), memory_order_relaxed);
    /* Not set here, because a reaped record (or a fresh, zeroed one) already has them so:
     * `stack` (released before the reap, or never bound), `future` (cleared by
     * weft__task_finish before it drops it), `wait_kind` (NONE after every park),
     * `next` (the ready push writes it), `saved_errno` (a first run starts with errno 0
     * without reading it: scheduler.c's task_begin). `result` is written at finish, before DONE,
     * and read only after it; `fn`/`future` and `arg` are the spawn's to set. The lists are emptied
     * at finish too, but a spawn cleanup or a local's destructor may still add to them after their
     * loop: they are reset, as before. */
    /* Atomic (relaxed) because a stopping worker's walk of the chunks reads it for records
     * of every worker (weft__tasks_shutdown); it is set once per life. */
    __atomic_store_n(&t->worker, home, __ATOMIC_RELAXED);
    atomic_store_explicit(&t->cancelled, 0, memory_order_relaxed);
    t->defers = NULL;
    t->locals = cleanup;
    t->holds = NULL;
    t->joiner = (weft_waker){NULL, 0}; /* a join of the previous life left its waker */
    t->id = w->tasks.next_id++;
    t->parent_id = w->current ? w->current->id : 0;
    t->spawn_file = file; /* the spawn macro's __FILE__ and __LINE__, or NULL and 0 */
    t->spawn_line = line;
    t->stack_size = stack_size;
    atomic_store_explicit(&t->spawned_stamp, (uint32_t)((uint64_t)w->now >> WEFT__STAMP_SHIFT),
                          memory_order_relaxed);
    atomic_store_explicit(&t->nstalls, 0, memory_order_relaxed);
    atomic_store_explicit(&t->stall_max_ms, 0, memory_order_relaxed);
    unsigned flags = stackless ? WEFT__T_STACKLESS : 0;
    if (stack_size != w->tasks.stack_size)
        flags |= WEFT__T_SIZED;
    t->name[0] = 0;
    unsigned spawn_flags = (opts ? opts->flags : 0) | wrap_flags;
    if (spawn_flags & WEFT_SPAWN_DETACHED)
        flags |= WEFT__T_DETACHED;
    if ((spawn_flags & WEFT_SPAWN_NOGUARD) && !stackless)
        flags |= WEFT__T_NOGUARD;
    if (spawn_flags & WEFT_SPAWN_PINNED)
        flags |= WEFT__T_PINNED;
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = 0;
    }
    /* Clears REAPED, last of the fields a dump reads (id, name, parent, spawn site): release,
     * paired with weft__task_each's acquire, since a dump on another worker's thread may
     * find the record now (a spawn_on builds it on the spawner's thread for its home). */
    __atomic_store_n(&t->flags, (uint16_t)flags, __ATOMIC_RELEASE);
    WEFT_COUNT(w->stats.nspawned++);
    WEFT_PROBE3(spawn, t, t->id, home->index);
    if (weft_unlikely(w->tracer != NULL))
        weft__trace_spawn(home, t);
    if (home == w)
        weft__task_adopt(w, t);
    *out = t;
    return 0;
}

#endif
