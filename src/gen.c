/* Generators: a task that produces one value per request. The consumer and the generator
 * take turns through `state`: next() posts a request and parks; the body runs until it
 * yields (copying its value straight into the consumer's buffer) or returns; stopping early
 * cancels the body, whose pending yield returns -ECANCELED, so its cleanup runs. The body
 * starts only at the first request.
 *
 * A request the consumer abandons (its deadline passed, it was cancelled) stays open: the
 * body's next value goes into `pending`, and the next request takes it from there, so no
 * value is lost. The generator is DONE from the task's spawn cleanup, which runs however the
 * body ends (return, weft_exit, cancellation, or never started). */
#include <errno.h>
#include <string.h>

#include "close_wait.h"
#include "scheduler.h"
#include "task_api.h"
#include "wake.h"
#include "worker.h"

/* IDLE: no request open. REQUESTED: one is open (out is the consumer's buffer, or NULL once
 * abandoned). PRODUCED: answered; when the consumer is not waiting for it any more, the
 * value is in `pending`. DONE: the body has finished. */
enum { GEN_IDLE, GEN_REQUESTED, GEN_PRODUCED, GEN_DONE };

/* owner: its worker (other threads get -EPERM). */
struct weft_gen {
    weft__worker *w;
    weft_task *task;
    weft_gen_fn fn;
    void *arg;
    void (*cleanup)(void *arg); /* the creator's weft_spawn_opts.cleanup */
    size_t elem_size;
    int state;
    void *out; /* the consumer's buffer while a request is open */
    /* The consumer inside weft_gen_next (0 or 1: a second is refused, -EBUSY). A close frees
     * g only once it has left: the body's end wakes it, and the close may run first. */
    int nnext;
    int closing;         /* a task is in weft_gen_close: a second one is refused */
    weft_waker consumer; /* parked in next() */
    weft_waker producer; /* parked waiting for a request */
    char pending[];      /* elem_size bytes: a value produced for an abandoned request */
};

/* The task a close of a generator waits for: its body (close_wait.h). */
static bool body_only(const void *waited, weft__task_visit *visit, void *ctx)
{
    return visit(waited, ctx);
}

typedef struct state_wait {
    const int *state;
    int a, b;
} state_wait;

static bool state_reached(const void *arg)
{
    const state_wait *sw = arg;
    return *sw->state == sw->a || *sw->state == sw->b;
}

/* Parks the calling task until `*state` is one of the two values. */
static int wait_state(weft__worker *w, weft_gen *g, weft_waker *slot, int kind, int a, int b,
                      int64_t deadline)
{
    state_wait sw = {&g->state, a, b};
    weft__wait wr = {.kind = kind,
                     .what = g,
                     .deadline = deadline,
                     .done = state_reached,
                     .done_arg = &sw,
                     .waker = slot};
    return weft__park_until(w, &wr);
}

static void *gen_main(void *arg)
{
    weft_gen *g = arg;
    /* Lazy: the body starts at the first request. */
    if (wait_state(g->w, g, &g->producer, WEFT__WAIT_GEN_YIELD, GEN_REQUESTED, GEN_REQUESTED,
                   WEFT_FOREVER) == 0)
        g->fn(g, g->arg);
    return NULL;
}

/* The task's spawn cleanup: however the body ended, the consumer learns it (-EPIPE). */
static void gen_finished(void *arg)
{
    weft_gen *g = arg;
    g->state = GEN_DONE;
    weft_waker_wake(g->consumer);
    if (g->cleanup)
        g->cleanup(g->arg);
}

int weft_gen_create(weft_gen **out, weft_gen_fn fn, void *arg, size_t elem_size,
                    const weft_spawn_opts *opts)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!out || !fn || elem_size == 0)
        return -EINVAL;
    if (elem_size > ((size_t)1 << 30))
        return -EINVAL;
    weft_gen *g = weft__calloc(w, 1, sizeof *g + elem_size);
    if (!g)
        return -ENOMEM;
    g->w = w;
    g->fn = fn;
    g->arg = arg;
    g->elem_size = elem_size;
    g->state = GEN_IDLE;
    weft_spawn_opts o = opts ? *opts : (weft_spawn_opts){0};
    o.flags &= ~(WEFT_SPAWN_DETACHED | WEFT_SPAWN_CHILD_FIRST); /* the producer waits for next */
    g->cleanup = o.cleanup;
    o.cleanup = gen_finished;
    o.flags |= WEFT_SPAWN_PINNED; /* it shares the generator's state with its consumer */
    int r = weft_spawn(&g->task, gen_main, g, &o);
    if (r < 0) {
        weft__free(w, g);
        return r;
    }
    *out = g;
    return 0;
}

int weft_gen_next(weft_gen *g, void *out, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *self = weft__blocking_task(w);
    if (!self)
        return -EPERM;
    if (!g || !out)
        return -EINVAL;
    if (g->w != w)
        return -EPERM;
    weft__task_bind(self); /* its generator is its worker's: it stays there (task.h) */
    if (self == g->task)
        return -EDEADLK; /* the body asking itself: it would wait for its own yield */
    if (g->state == GEN_DONE)
        return -EPIPE;
    if (g->nnext)
        return -EBUSY; /* another consumer waits: one at a time (its waker would be lost) */
    if (weft__task_cancelled(self))
        return -ECANCELED;
    if (g->state == GEN_PRODUCED) {
        /* The answer to an abandoned request, kept for this one. */
        memcpy(out, g->pending, g->elem_size);
        g->state = GEN_IDLE;
        return 0;
    }
    g->out = out;
    if (g->state == GEN_IDLE) {
        g->state = GEN_REQUESTED;
        weft_waker_wake(g->producer);
    } /* else an abandoned request is still open: this one takes it over */
    g->nnext++;
    int r = wait_state(w, g, &g->consumer, WEFT__WAIT_GEN_NEXT, GEN_PRODUCED, GEN_DONE, deadline);
    g->nnext--; /* a close may free g once this task yields; its own reads below come first */
    if (r < 0) {
        /* Abandoned: the body may still be computing; its value goes to `pending`. */
        if (g->state == GEN_REQUESTED)
            g->out = NULL;
        return r;
    }
    if (g->state == GEN_DONE)
        return -EPIPE;
    g->state = GEN_IDLE;
    return 0;
}

int weft_gen_yield(weft_gen *g, const void *value)
{
    weft__worker *w = weft__worker_current();
    if (!g || !value)
        return -EINVAL;
    if (!w || w->current != g->task)
        return -EPERM;
    /* Straight to the waiting consumer, or kept for the next request if it gave up. */
    memcpy(g->out ? g->out : g->pending, value, g->elem_size);
    g->out = NULL;
    g->state = GEN_PRODUCED;
    weft_waker_wake(g->consumer);
    return wait_state(w, g, &g->producer, WEFT__WAIT_GEN_YIELD, GEN_REQUESTED, GEN_REQUESTED,
                      WEFT_FOREVER);
}

int weft_gen_close(weft_gen *g)
{
    if (!g)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    weft_task *self = weft__blocking_task(w);
    if (!self || g->w != w)
        return -EPERM;
    /* Its generator is its worker's: the closer stays there (task.h), as every other call
     * on g keeps its caller. Unbound (a task that never used g before), its join of the body
     * below could hand it to another worker (stealing mode, move_started), and the join's
     * reap would then act through w, a worker it has left. */
    weft__task_bind(self);
    if (self == g->task)
        return -EDEADLK; /* the body closing itself would wait for its own end */
    if (g->closing)
        return -EALREADY; /* another task is closing it (one joiner only), and will free it */
    weft__close_wait rec = {.closer = self, .waited = g->task, .any_waited = body_only};
    if (weft__close_would_circle(w, &rec))
        return -EDEADLK; /* its body waits, through other closes, for the caller's own end */
    g->closing = 1;
    weft__close_wait_push(w, &rec);
    weft_cancel(g->task);
    weft__join_uncancellable(w, g->task); /* even if the closer itself is cancelled */
    weft__close_wait_unlink(w, &rec);     /* still w's: the closer is bound to it (above) */
    while (g->nnext)                      /* the consumer the body's end woke has not run yet */
        weft_yield();
    weft__free(w, g);
    return 0;
}
