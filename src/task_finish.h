/* A task's finish (weft__task_finish, task.h), inline for the trampoline's end of a stackful
 * task (scheduler.c's task_end), where the call was one of a child-first spawn's largest
 * costs after the switches; task.c's weft__task_finish is this for every other caller. */
#ifndef WEFT_TASK_FINISH_H
#define WEFT_TASK_FINISH_H

#include "probes.h"
#include "task.h"
#include "tracer.h"
#include "wake.h"
#include "worker.h"

/* Runs the handlers t left (defers, locals, holds, the spawn cleanup), in their order. */
void weft__task_finish_handlers(weft__worker *w, weft_task *t);

/* `on_stack`, a constant at each call: t is a stackful task finishing on its own stack (the
 * trampoline's end, weft_exit: scheduler.c), which folds away the tests for a stackless
 * task's future and for a reap here (a task on its stack is reaped once off it). */
static inline __attribute__((always_inline)) void
weft__task_finish_inline(weft__worker *w, weft_task *t, void *result, bool on_stack)
{
    bool stackless = !on_stack && (t->flags & WEFT__T_STACKLESS);
    /* The outcome is decided here, once: a cancel that comes while the handlers run changes
     * nothing. A stackful task's record holds it before its handlers run, so that the spawn
     * cleanup may read it (alien.c); a stackless task's word holds its future until the drop. */
    void *outcome = weft__task_cancelled(t) ? WEFT_CANCELED : result;
    if (!stackless)
        t->result = outcome;
    if (t->defers || t->locals || t->holds) {
        weft__node *n = t->locals;
        /* The commonest case with handlers, inline: a wrapping module's spawn cleanup alone
         * (every group member and alien task has one). What it may add goes the general
         * way, as does a weft_spawn_opts.cleanup's pooled node: handling both kinds here
         * took a register more in every finish (5 instructions a task without handlers). */
        if (n && !n->next && n->key == &weft__spawn_wrap_key && !t->defers && !t->holds) {
            t->locals = NULL; /* the node stays the wrapping module's */
            n->fn(n->arg);
            if (weft_unlikely(t->defers || t->locals || t->holds))
                weft__task_finish_handlers(w, t); /* what the cleanup added */
        } else {
            weft__task_finish_handlers(w, t);
        }
    }
    if (stackless) {
        if (t->future) {
            weft_future *f = t->future;
            t->future = NULL;
            if (f->ops->drop)
                f->ops->drop(f); /* the future's own callback: no call up into future.c */
        }
        t->result = outcome;
    }
    WEFT_PROBE2(exit, t, w->index);
    if (weft_unlikely(w->tracer != NULL))
        weft__trace_exit(w, t);
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    /* release: the result is visible to whoever sees DONE. */
    atomic_store_explicit(&t->word, WEFT__WORD(WEFT__EPOCH(word) + 1, WEFT__DONE),
                          memory_order_release);
    w->tasks.nlive--;
    WEFT_COUNT(w->stats.nfinished++);
    if (t->joiner.task)
        weft__wake_from(w, t->joiner.task, t->joiner.epoch);
    /* A detached task that still runs on its stack is reaped once it is off it. */
    if (!on_stack && (t->flags & WEFT__T_DETACHED) && !t->stack)
        weft__task_reap(w, t);
}

#endif
