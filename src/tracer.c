/* The calls into the program's tracer. Out of line, so that the scheduler's paths carry a
 * branch each and no call set-up while no tracer is set. The tracer structure is the
 * program's, fixed for the runtime's life (weft_config.tracer); `w->tracer` points to it
 * from the worker's start, and is read by any thread (a waker) without synchronisation since
 * it never changes while the workers run. */
#include "task.h"
#include "tracer.h"
#include "worker.h"

void weft__trace_spawn(const weft__worker *w, const weft_task *t)
{
    if (w->tracer->on_spawn)
        w->tracer->on_spawn(w->tracer->arg, t->id, t->parent_id, w->index);
}

void weft__trace_resume(const weft__worker *w, const weft_task *t)
{
    if (w->tracer->on_resume)
        w->tracer->on_resume(w->tracer->arg, t->id, w->index);
}

void weft__trace_park(const weft__worker *w, const weft_task *t, const char *wait)
{
    if (w->tracer->on_park)
        w->tracer->on_park(w->tracer->arg, t->id, w->index, wait);
}

void weft__trace_wake(const weft__worker *w, const weft_task *t)
{
    /* The id is read on the waker's thread: the record cannot be reused while the task is
     * parked (it has not finished), and the id is set before the task is published. */
    if (w->tracer->on_wake)
        w->tracer->on_wake(w->tracer->arg, __atomic_load_n(&t->id, __ATOMIC_RELAXED), w->index);
}

void weft__trace_exit(const weft__worker *w, const weft_task *t)
{
    if (w->tracer->on_exit)
        w->tracer->on_exit(w->tracer->arg, t->id, w->index);
}

void weft__trace_sleep(const weft__worker *w, bool asleep)
{
    void (*fn)(void *, unsigned) = asleep ? w->tracer->on_worker_sleep : w->tracer->on_worker_wake;
    if (fn)
        fn(w->tracer->arg, w->index);
}
