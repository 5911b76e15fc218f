/* The scheduler of one worker: switching, picking the next task, and the park every wait
 * goes through. Tasks wait in a FIFO ready queue. A task that parks or yields hands the CPU
 * straight to the next ready task (one switch, no detour through the loop) while the tick's
 * budget lasts; when the budget is spent or nothing is ready, control returns to the loop
 * (loop.c) on the thread's own stack. See docs/architecture.md, "the life of a park". */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>

#include "probes.h"
#include "hooks.h"
#include "log.h"
#include "overflow.h"
#include "runtime.h"
#include "scheduler.h"
#include "stack.h"
#include "task.h"
#include "task_finish.h"
#include "task_new.h"
#include "park_local.h"
#include "tracer.h"
#include "thread_park.h"
#include "timer.h"
#include "util/spinlock.h"
#include "util/text.h"
#include "wake.h"
#include "worker.h"

/* errno is reached through the worker's errno_loc (this thread's errno, taken when the loop
 * starts), loaded from the worker at each switch: never through `errno` itself, whose
 * __errno_location is declared const, so the compiler may keep its result in a register
 * across a switch, and a coroutine that one day resumes on another thread would then write
 * the wrong thread's errno. A load instead of two calls at every switch. */

/* ---- Switching ----------------------------------------------------------------------- */

/* A finished task t lets go of its stack (back to w's pool, with its TSan fiber, for its
 * next task), and is reaped if nobody will join it. No system call: errno is untouched. */
static inline __attribute__((always_inline)) void release_stack(weft__worker *w, weft_task *t)
{
    weft__stack_free(&w->stacks, t->stack);
    t->stack = NULL;
    weft__task_flags_clear(t, WEFT__T_ONSTACK);
    if (t->flags & WEFT__T_DETACHED)
        weft__task_reap_inline(w, t);
}

/* release_stack for the task that ended by weft_exit or under a sanitizer (sched.dead: a
 * plain end releases its own stack, in task_end). Called last on a landing, after the
 * resumed context's errno is in place, which release_stack leaves alone. Returns the
 * worker's current task (the one resumed, for switch_to's tail call). */
static WEFT_NOINLINE weft_task *release_dead(weft__worker *w)
{
    weft_task *t = w->sched.dead;
    w->sched.dead = NULL;
    release_stack(w, t);
    return w->current;
}

/* Runs first on whichever context a switch lands on. The C++ exception-handling record
 * (eh_state.h) of the context landed on goes into the driving thread's, as errno does: only
 * on the general path, which every switch takes where there is one to keep. */
static void landed(weft__worker *w, void *fake_stack)
{
    weft_task *t = w->current;
    if (weft_unlikely(w->sched.general)) {
        if (w->sched.tooling)
            weft__hook_switch_end(fake_stack);
        if (w->sched.eh_loc)
            *w->sched.eh_loc = t ? t->stack->eh : w->sched.loop_eh;
    }
    *w->sched.errno_loc = t ? t->saved_errno : w->sched.loop_errno;
    if (w->sched.dead)
        release_dead(w);
}

/* switch_to's path when a sanitizer watches (hooks.h), or when the C++ exception-handling
 * record is kept per context (eh_state.h): the fiber annotations, and that record saved here
 * and restored by landed(), around the same switch. Apart, so that the plain path keeps no
 * fake-stack slot in its frame and tests no more than it did for either. */
static WEFT_NOINLINE weft_task *switch_general(weft__worker *w, weft_task *from, weft_task *to,
                                               weft__ctx *fc, weft__ctx *tc)
{
    /* A finished task's frames are never returned to: no fake stack to keep for it, and its
     * exception record, if it ended inside a handler (weft_exit, a cancel), is dropped: the
     * stack's next task starts with none (as a fresh stack does: stack.c's describe). */
    void *fake = NULL;
    bool exiting = from && from == w->sched.dead;
    if (w->sched.eh_loc)
        *(from ? &from->stack->eh : &w->sched.loop_eh) =
            exiting ? (weft__eh_state){NULL, 0} : *w->sched.eh_loc;
    if (to)
        weft__hook_switch_begin(exiting ? NULL : &fake, to->stack->lo,
                                (size_t)(weft__stack_hi(to->stack) - to->stack->lo));
    else
        weft__hook_switch_begin(exiting ? NULL : &fake, w->sched.loop_stack_lo,
                                w->sched.loop_stack_size);
    weft__hook_fiber_switch(to ? to->stack->fiber : w->sched.loop_fiber);
    weft__ctx_switch(fc, tc);
    landed(from ? from->worker : w, fake); /* see switch_to */
    return from;
}

/* The end of a timed resume (the histograms): its length into the poll-time histogram. */
static WEFT_NOINLINE void end_timed_run(weft__worker *w)
{
    weft__hist_add(&w->poll_hist, weft__clock_ns() - w->poll_start);
    w->poll_task = NULL;
}

/* The switch's bookkeeping before it: errno saved, the worker's current task and switch
 * count. */
static inline __attribute__((always_inline)) void switch_out(weft__worker *w, weft_task *to,
                                                             int *saved_errno)
{
    *saved_errno = *w->sched.errno_loc;
    w->current = to;
    w->stats.nswitches++;
    weft__watch_switch(&w->watch, w->stats.nswitches);
}

/* Switches from the running task `from` to `to` (NULL: the loop). Never inlined: every
 * switch between tasks leaves from this one site, so that the return after it is the same
 * code whichever task resumes (docs/switch.md). Returns `from`, once resumed: its callers
 * take it from the return register instead of keeping it in one of theirs across the switch
 * (which would cost each of them a save and a restore). */
static WEFT_NOINLINE weft_task *switch_to(weft__worker *w, weft_task *from, weft_task *to);

#ifndef WEFT_NO_METRICS
/* switch_to for the end of a sampled resume (1 in 256): its length first. Apart, so that
 * switch_to makes no call before the switch, and keeps nothing in a register across one. */
static WEFT_NOINLINE weft_task *switch_timed(weft__worker *w, weft_task *from, weft_task *to)
{
    end_timed_run(w); /* clears poll_task */
    return switch_to(w, from, to);
}
#endif

static WEFT_NOINLINE weft_task *switch_to(weft__worker *w, weft_task *from, weft_task *to)
{
#ifndef WEFT_NO_METRICS
    if (weft_unlikely(from == w->poll_task))
        return switch_timed(w, from, to);
#endif
    weft__ctx *tc = to ? &to->ctx : &w->sched.loop_ctx;
    switch_out(w, to, &from->saved_errno);
    if (weft_unlikely(w->sched.general))
        return switch_general(w, from, to, &from->ctx, tc);
    /* Resumed: `from` is this frame's task again (as the switch back named it, so that
     * nothing is kept in a register across the switch), perhaps on another worker than the
     * one it left (a hand-over, steal.c), whose thread runs us now: the migration rule, as in
     * the park. Whoever switched to it made it that worker's current task, so its errno is
     * from's own: landed(), inline and knowing that. */
    from = weft__container_of(weft__ctx_switch_back(&from->ctx, tc), weft_task, ctx);
    w = from->worker;
    *w->sched.errno_loc = from->saved_errno;
    if (w->sched.dead)
        return release_dead(w); /* from, as a tail call: nothing live across it */
    return from;
}

/* The loop's switch to `to` (the loop's frame never moves); back when the loop is switched
 * to again. */
static WEFT_NOINLINE void switch_from_loop(weft__worker *w, weft_task *to)
{
    switch_out(w, to, &w->sched.loop_errno);
    if (weft_unlikely(w->sched.general)) {
        switch_general(w, NULL, to, &w->sched.loop_ctx, &to->ctx);
        return;
    }
    w = weft__container_of(weft__ctx_switch_back(&w->sched.loop_ctx, &to->ctx), weft__worker,
                           sched.loop_ctx);
    *w->sched.errno_loc = w->sched.loop_errno;
    if (w->sched.dead)
        release_dead(w);
}

/* A task's first call on its stack (the trampoline's, weft__ctx_make_task; below it only the
 * trampoline, which ends the frame chain): lands, and returns the body for the trampoline to
 * call. */
/* task_begin's general case: landed() whole, out of line, so that the plain case saves no
 * register for its call. A new task's errno is 0 (the spawn does not store it: see
 * task_begin). */
static WEFT_NOINLINE weft__ctx_body task_begin_general(weft_task *t)
{
    t->saved_errno = 0;
    landed(t->worker, NULL);
    return (weft__ctx_body){t->fn, t->arg};
}

static weft__ctx_body task_begin(void *arg)
{
    weft_task *t = arg;
    weft__worker *w = t->worker;
    if (weft_unlikely(w->sched.general || w->sched.dead))
        return task_begin_general(t);
    /* landed()'s plain case, knowing that t is w's current task (the switch to it made it
     * so) and that it starts with errno 0: its record's saved_errno is still the last life's
     * (the spawn leaves it, and nothing reads it before the task's first switch away, which
     * stores it). */
    *w->sched.errno_loc = 0;
    return (weft__ctx_body){t->fn, t->arg};
}

static weft__ctx *exit_target(weft__worker *w, weft_task *from);

/* The end of the current task t's run: it finishes, and its stack is released by whichever
 * context runs next, once off it. */
static inline __attribute__((always_inline)) void finish_body(weft__worker *w, weft_task *t,
                                                              void *result)
{
    weft__task_finish_inline(w, t, result, true);
    /* The main task's end goes straight back to the loop, whose shutdown trigger then
     * cancels every other task before any of them runs again. Its record is still whole
     * here (a task on its stack is reaped only once off it). */
    if (weft_unlikely(t->flags & WEFT__T_MAIN)) {
        weft__task_main_ended(w, t->result);
        w->sched.budget = 0;
    }
}

static inline __attribute__((always_inline)) void finish_run(weft__worker *w, weft_task *t,
                                                             void *result)
{
    finish_body(w, t, result);
    w->sched.dead = t; /* its stack is freed by whoever we switch to, once we are off it */
}

/* A task's last call, once its body returned (the trampoline's): finishes it and returns
 * the context to resume, which the trampoline switches to from its first frame, with no
 * call of the task pending (switch.h): a child-first spawn's caller, resumed, then returns
 * through predicted returns instead of the four or five that the finished task's pending
 * calls used to cost it (docs/switch.md). Under a sanitizer the annotated switch is made
 * here instead, and this never returns. */
static weft__ctx *task_end(void *arg, void *result)
{
    weft_task *t = arg;
    /* Whoever resumed t last set t->worker to itself first (the migration rule): a load, not
     * a TLS lookup. Unless the stall detector handed t's worker to another thread while the
     * body ran (handoff.c): this thread takes it back first. `seizing` first (acquire): a
     * hand-off made for this thread while it slept stores it before anything else and clears
     * it after the HANDED flag (handoff.h), so one of the two is seen. */
    weft__worker *w = t->worker;
    if (weft_unlikely(atomic_load_explicit(&w->watch.seizing, memory_order_acquire) ||
                      (t->flags & WEFT__T_HANDED))) {
        weft__worker_current(); /* takes it back: see its comment */
        w = t->worker;
    }
    finish_body(w, t, result);
    if (weft_unlikely(w->sched.general)) {
        if (w->sched.tooling) {
            w->sched.dead = t;         /* released by the context switch_general lands on */
            weft__schedule_away(w, t); /* switch_general: a finished task is never back */
            __builtin_unreachable();
        }
        /* The C++ exception record alone: the trampoline's switch below is fine, since every
         * context lands through landed() on the general path and loads its own record; the
         * finished task's is dropped, for its stack's next task. */
        if (w->sched.eh_loc)
            t->stack->eh = (weft__eh_state){NULL, 0};
    }
    weft__ctx *to = exit_target(w, t);
    /* The stack goes back to the pool here rather than from the context resumed (release_dead
     * after the switch, which weft_exit's end and the sanitizers' still take): only the
     * trampoline's last instructions run on it from now on, which store nothing there (a
     * return from this frame, then the jump into the switch's second half), and nothing on
     * this thread takes a stack from the pool before that jump. exit_target was the last to
     * read or write t (its canary, its errno); a reaped t is not touched again, so another
     * worker may take its record at once (weft__task_retire_back). */
    release_stack(w, t);
    return to;
}

static inline __attribute__((always_inline)) int bind_stack(weft__worker *w, weft_task *t)
{
    /* The record's third line is cold by now: read only for a size the spawn asked for. */
    uint32_t size = t->flags & WEFT__T_SIZED ? t->stack_size : w->tasks.stack_size;
    if (!(t->stack = weft__stack_pop_warm(&w->stacks, size))) {
        int r = weft__stack_alloc(w, size, t->flags & WEFT__T_NOGUARD, &t->stack);
        if (r < 0)
            return r;
    }
    /* STARTED too: a task is bound to a stack only to run at once (the pick, run_first), and
     * the flag is set here, once, rather than at every resume. */
    weft__task_flags_set(t, t->stack->guarded ? WEFT__T_ONSTACK | WEFT__T_GUARDED | WEFT__T_STARTED
                                              : WEFT__T_ONSTACK | WEFT__T_STARTED);
    /* TSan's fiber stays with the stack while it is pooled: creating and destroying one per
     * task cost TSan an mmap and munmap each (most of a TSan stress run's time). Reusing it
     * orders nothing the worker's own sequence did not: every switch synchronises. */
    weft__hook_fiber_ensure(&t->stack->fiber);
    weft__ctx_make_task(&t->ctx, weft__stack_hi(t->stack), task_begin, task_end, t);
    return 0;
}

/* Gives `t` the CPU's next run: a new epoch, so wakers made before now are stale. */
/* A sampled resume: the wake-to-run time if its wake was sampled too (the same epoch), and
 * the start of its timing. Out of line: one resume in 256. */
static WEFT_NOINLINE void begin_timed_run(weft__worker *w, weft_task *t, uint64_t epoch)
{
    /* With a tracer or without membarrier, every resume comes here (w->run_mask 0). */
    if (w->fence_resumes) /* fence.h: the new epoch stored before the task reads its flag */
        atomic_thread_fence(memory_order_seq_cst);
    if (w->tracer)
        weft__trace_resume(w, t);
    if (!weft__sampled(epoch))
        return;
    if (w->poll_task)
        end_timed_run(w); /* a yield that came straight back to the same task */
    int64_t now = weft__clock_ns();
    int64_t woke = atomic_load_explicit(&t->woke_ns, memory_order_relaxed);
    if (woke) {
        atomic_store_explicit(&t->woke_ns, 0, memory_order_relaxed);
        weft__hist_add(&w->sched_hist, now - woke);
    }
    w->poll_task = t;
    w->poll_start = now;
}

/* begin_run's part that every resume takes: the new epoch, the count, the probe. Returns
 * the epoch t was READY at. */
static inline __attribute__((always_inline)) uint64_t begin_run_plain(weft__worker *w, weft_task *t)
{
    uint64_t epoch = weft__task_begin_run(t);
    w->stats.nresumes++;
    WEFT_PROBE2(resume, t, w->index);
    return epoch;
}

static inline __attribute__((always_inline)) void begin_run(weft__worker *w, weft_task *t)
{
    uint64_t epoch = begin_run_plain(w, t);
#ifdef WEFT_NO_METRICS
    if (weft_unlikely(w->run_mask == 0)) /* a tracer, or fence.h's fallback */
#else
    if (weft_unlikely((epoch & w->run_mask) == 0)) /* weft__sampled, or a tracer */
#endif
        begin_timed_run(w, t, epoch);
}

/* Bytes of a parked task's stack that its resume touches on its way back to the caller of
 * the blocking call, besides the saved frame: from WEFT__CTX_CALLER_OFFSET above the saved
 * sp, the frames of the switch, the park and the wait (a read parked on an fd: switch_to 48,
 * schedule_away 48, park 48, fdtable_wait 224, the backend's submit 96, weft_read 112 on
 * x86_64 with GCC 12: about 576). */
#define WEFT__PREFETCH_STACK 576

/* Warms what the next resume will touch while the task being picked runs. Under a backlog
 * (thousands of connections, each woken by the reactor long before its turn) a resumed
 * task's record and the top of its stack are cold: the switch's first load from the saved
 * context (ldmxcsr, which the CPU does not run ahead of) waited for a cache and TLB miss,
 * about 250 ns per switch at 5,000 connections, and the frames above it missed one after
 * another. The queue is a pipeline: the record two ahead (so that the next pick reads a warm
 * record) and the stack of the next task, whose record the previous pick warmed. */
static inline void prefetch_ahead(const weft__fifo *ready)
{
    /* A short queue is warm already (its tasks ran a moment ago): the prefetches would only
     * cost the micro-ops (a yield, a channel hand-off) their instructions. 16: a backlog
     * deeper than a quarter of a tick's budget. */
    if (ready->len < 16)
        return;
    const weft_task *n = ready->head;
    const weft_task *n2 = n->next;
    if (n2) {
        weft__prefetch(n2); /* the record's first line: all a resume reads of it (task.h) */
    }
    if ((n->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS)) == WEFT__T_STARTED) {
        const char *sp = n->ctx.sp;
        /* Unrolled: one prefetch instruction per line, at a constant offset (a loop cost
         * three instructions a line: 31 a pick). */
#pragma GCC unroll 16
        for (size_t off = 0; off < WEFT__CTX_FRAME_BYTES; off += 64)
            weft__prefetch(sp + off);
#pragma GCC unroll 16
        for (size_t off = 0; off < WEFT__PREFETCH_STACK; off += 64)
            weft__prefetch(sp + WEFT__CTX_CALLER_OFFSET + off);
    }
}

/* The pick's slow half: t (popped) never ran and is stackful. It gets its stack now, so a
 * queued task costs no stack, or finishes at once if it was cancelled before running. One that
 * gets no stack finishes without running, and its join reports WEFT_NOMEM: distinct from a
 * cancellation, and said on stderr once per runtime, not once per task (a program out of
 * memory would otherwise flood it). Returns t ready to resume, or NULL if it finished. */
static WEFT_NOINLINE weft_task *start_unrun(weft__worker *w, weft_task *t)
{
    w->sched.nunstarted--; /* queued by weft__ready_push_new */
    void *result = WEFT_CANCELED;
    if (!weft__task_cancelled(t)) {
        int r = bind_stack(w, t);
        if (r == 0)
            return t;
        if (!atomic_exchange_explicit(&w->rt->nostack_told, true, memory_order_relaxed)) {
            char name[WEFT__TEXT_ESC_MAX * (sizeof t->name - 1) + 1];
            weft__text_escape(name, sizeof name, t->name, sizeof t->name - 1);
            weft__logf(w->rt, WEFT_LOG_WARN,
                       "weft: task %llu \"%s\" got no stack (%s); it and any later task "
                       "without one finish unrun, and their joins report WEFT_NOMEM\n",
                       (unsigned long long)t->id, name, weft_strerror(r));
        }
        result = WEFT_NOMEM;
    }
    /* Finished as the current task, so that its cleanup handlers' weft_self and weft_defer
     * are its own; with no stack it cannot block (-EPERM). */
    weft_task *running = w->current;
    w->current = t;
    weft__task_flags_set(t, WEFT__T_STARTED); /* as every task that got its turn */
    begin_run(w, t);
    weft__task_finish(w, t, result);
    w->current = running;
    return NULL;
}

/* The pick, inline in the park and yield paths: a task that ran before (or a stackless one)
 * is returned as popped; only a first run takes the call. */
/* One step of the debug mode's generator; a value in [0, 2^32). */
static uint32_t chaos_next(weft__worker *w)
{
    uint64_t x = w->sched.chaos;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->sched.chaos = x;
    return (uint32_t)(x >> 32);
}

/* Debug mode: one pick in four takes the second ready task before the first. */
static WEFT_NOINLINE void chaos_reorder(weft__worker *w)
{
    weft__fifo *q = &w->sched.ready;
    if (q->len < 2 || chaos_next(w) % 4)
        return;
    w->sched.lifo = NULL; /* no longer surely at the head */
    void *a = weft__fifo_pop(q, offsetof(weft_task, next));
    void *b = weft__fifo_pop(q, offsetof(weft_task, next));
    weft__fifo_push_front(q, a, offsetof(weft_task, next));
    weft__fifo_push_front(q, b, offsetof(weft_task, next));
}

/* Debug mode: one blocking call in eight yields before it starts. */
weft__worker *weft__chaos_yield(weft__worker *w)
{
    weft_task *t = w->current;
    if (chaos_next(w) % 8 == 0)
        weft__yield(w);
    return t->worker;
}

bool weft__chaos_coin(weft__worker *w)
{
    return chaos_next(w) & 1;
}

/* The pick with everything pick_slow stands for: the debug mode's reordering, the count of
 * timer-woken tasks at the head, the LIFO slot's streak. */
static WEFT_NOINLINE weft_task *pick_general(weft__worker *w)
{
    weft__sched *s = &w->sched;
    if (weft_unlikely(s->chaos))
        chaos_reorder(w);
    weft_task *t;
    while ((t = weft__fifo_pop(&s->ready, offsetof(weft_task, next))) != NULL) {
        if (s->nfront && --s->nfront == 0)
            s->pick_slow &= (uint8_t)~WEFT__PICK_FRONT;
        if (s->lifo_on)
            weft__lifo_picked(s, t);
        prefetch_ahead(&s->ready);
        if (weft_likely(t->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS)))
            return t;
        if ((t = start_unrun(w, t)) != NULL)
            return t;
    }
    return NULL;
}

static inline __attribute__((always_inline)) weft_task *pick(weft__worker *w)
{
    weft__timers_poll(w); /* timer.c: a sleeper that came due goes first (may set FRONT) */
    if (weft_unlikely(w->sched.pick_slow))
        return pick_general(w);
    weft_task *t;
    while ((t = weft__fifo_pop(&w->sched.ready, offsetof(weft_task, next))) != NULL) {
        prefetch_ahead(&w->sched.ready);
        if (weft_likely(t->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS)))
            return t;
        if ((t = start_unrun(w, t)) != NULL)
            return t;
    }
    return NULL;
}

weft_task *weft__sched_pick(weft__worker *w)
{
    return pick(w);
}

void weft__sched_resume(weft__worker *w, weft_task *t)
{
    begin_run(w, t);
    switch_from_loop(w, t);
}

/* An unguarded stack that overflowed has written over the canary zone below it (see
 * stack.h). Checked at every switch-out, in every build, so the overflowing task is named
 * before the neighbour it ran into gets the CPU. A guarded stack costs one branch here. */
static inline void check_canary(weft_task *t)
{
    /* The flag is in the record the switch touches anyway; the stack's descriptor is not. */
    if (weft_likely(t->flags & WEFT__T_GUARDED))
        return;
    if (weft_unlikely(weft__stack_canary_check(t->stack) != 0))
        weft__overflow_report(t, NULL, "it wrote over the canary zone below its stack");
}

/* schedule_away's general path: every case, with the calls they take. */
static WEFT_NOINLINE weft_task *schedule_away_general(weft__worker *w, weft_task *from)
{
    check_canary(from);
    weft_task *next = NULL;
    if (w->sched.budget > 0 && (next = pick(w)) != NULL)
        w->sched.budget--;
    if (next == from) {
        begin_run(w, from); /* a yield with nothing else ready */
        return from;
    }
    if (next && (next->flags & WEFT__T_STACKLESS)) {
        w->sched.handoff = next; /* polled on the loop's stack */
        next = NULL;
    }
    if (next)
        begin_run(w, next);
    return switch_to(w, from, next);
}

/* Leaves the current task `from` (already parked, ready or done) for the next ready task,
 * or for the loop. Returns when `from` is resumed.
 *
 * The commonest case first, with no call but the tail call to the switch, so that it keeps
 * nothing in a register across a call and saves none: the budget lasts, the pick has nothing
 * special to do (pick_slow), `from` is on a guarded stack (no canary to check), the head of
 * the queue is another task that ran before and is stackful, its resume is not sampled, and
 * no clock read is due. Anything else takes the general path, which decides it all again. */
weft_task *weft__schedule_away(weft__worker *w, weft_task *from)
{
    weft__sched *s = &w->sched;
    weft_task *next = s->ready.head;
    if (weft_likely(next &&
                    (next->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS)) == WEFT__T_STARTED &&
                    s->budget && !s->pick_slow && next != from && (from->flags & WEFT__T_GUARDED) &&
#ifdef WEFT_NO_METRICS
                    w->run_mask != 0 &&
#else
                    (WEFT__EPOCH(atomic_load_explicit(&next->word, memory_order_relaxed)) &
                     w->run_mask) != 0 &&
#endif
                    weft__timers_poll_skips(w))) {
        /* The pop of `next`, known to be the head. */
        s->ready.head = next->next;
        if (!next->next)
            s->ready.tail = NULL;
        s->ready.len--;
        prefetch_ahead(&s->ready);
        s->budget--;
        begin_run_plain(w, next); /* not sampled: checked above */
        return switch_to(w, from, next);
    }
    return schedule_away_general(w, from);
}

/* What schedule_away would switch to after `from`, which has finished, with everything
 * switch_to does before its switch done: the caller (task_end, for the trampoline) makes the
 * switch. Never under a sanitizer (switch_general annotates the switch itself). */
static weft__ctx *exit_target(weft__worker *w, weft_task *from)
{
    check_canary(from);
    weft_task *next = NULL;
    if (w->sched.budget > 0 && (next = pick(w)) != NULL)
        w->sched.budget--;
    if (next && (next->flags & WEFT__T_STACKLESS)) {
        w->sched.handoff = next; /* polled on the loop's stack */
        next = NULL;
    }
    if (next)
        begin_run(w, next);
#ifndef WEFT_NO_METRICS
    if (weft_unlikely(from == w->poll_task))
        end_timed_run(w);
#endif
    /* switch_out but for errno: a finished task never resumes, and its saved_errno is not
     * read again (a next life's first run starts with 0: task_begin). */
    w->current = next;
    w->stats.nswitches++;
    weft__watch_switch(&w->watch, w->stats.nswitches);
    return next ? &next->ctx : &w->sched.loop_ctx;
}

/* ---- The park ---------------------------------------------------------------------------- */

/* The general park: deadlines, an unlock callback, a cancelled task. */
static WEFT_NOINLINE int park_slow(weft__worker *w, weft_task *t, const weft__wait *wr)
{
    int64_t deadline = wr->uncancellable ? WEFT_FOREVER : wr->deadline;
    int early = 0;
    if (!wr->uncancellable && weft__task_cancelled(t))
        early = -ECANCELED;
    else if (deadline != WEFT_FOREVER && deadline <= w->now)
        early = -ETIMEDOUT;
    weft__timer tm;
    tm.index = 0;
    if (!early && deadline != WEFT_FOREVER &&
        weft__timer_start(w, &tm, deadline, weft__waker_of(t)) < 0)
        early = -ENOMEM;
    if (early) {
        if (wr->unlock)
            wr->unlock(wr->lock);
        return early;
    }
    weft__record_wait(w, t, wr);
    weft__park_current(w, t, wr, false);
    /* Resumed: re-read the worker. Whoever resumes a task has set t->worker to itself first
     * (the migration rule), so this is a load, not a TLS lookup. */
    w = t->worker;
    atomic_store_explicit(&t->wait_kind, WEFT__WAIT_NONE, memory_order_relaxed);
    /* Armed on this worker's heap, and (migration rule) only ever stopped by its owner. */
    if (tm.index)
        weft__timer_stop(w, &tm);
    if (!wr->uncancellable && weft__task_cancelled(t))
        return -ECANCELED;
    if (deadline != WEFT_FOREVER && w->now >= deadline)
        return -ETIMEDOUT;
    return 0;
}

int weft__park(weft__worker *w, const weft__wait *wr)
{
    if (weft_unlikely(!w)) /* a plain thread (thread_park.c) */
        return weft__thread_park(weft__thread_task(), wr);
    weft_task *t = w->current;
    /* The common case (a channel hand-off, a mutex, I/O without a deadline) takes the
     * short path: no timer, nothing to unlock, not cancelled. */
    if (weft_unlikely(wr->deadline != WEFT_FOREVER || wr->unlock || weft__task_cancelled(t)))
        return park_slow(w, t, wr);
    weft__record_wait(w, t, wr);
    t = weft__park_current(w, t, wr, false);
    atomic_store_explicit(&t->wait_kind, WEFT__WAIT_NONE, memory_order_relaxed);
    return (!wr->uncancellable && weft__task_cancelled(t)) ? -ECANCELED : 0;
}

/* park_forever's other cases, through the general park with a record of its own (out of
 * line: its frame holds the record, not park_forever's). */
WEFT_NOINLINE int weft__park_forever_general(weft__worker *w, int kind, const void *what,
                                             void (*unlock)(void *), void *lock)
{
    const weft__wait wr = {
        .kind = kind, .what = what, .deadline = WEFT_FOREVER, .unlock = unlock, .lock = lock};
    return weft__park(w, &wr);
}

/* A plain thread's wait of the short form. */
WEFT_NOINLINE int weft__thread_park_forever(int kind, const void *what, void (*unlock)(void *),
                                            void *lock)
{
    const weft__wait wr = {
        .kind = kind, .what = what, .deadline = WEFT_FOREVER, .unlock = unlock, .lock = lock};
    return weft__thread_park(weft__thread_task(), &wr);
}

/* The unlock callback that stands for a spinlock word (park_local.h): the park releases the
 * word inline instead of calling it. Never called through the pointer but by a plain thread's
 * park (thread_park.c), which calls every unlock callback. */
void weft__park_spin_unlock(void *lock)
{
    weft__spin_unlock(lock);
}

int weft__park_forever(weft__worker *w, int kind, const void *what)
{
    return weft__park_forever_local(w, kind, what, NULL, NULL);
}

int weft__park_forever_unlock(weft__worker *w, int kind, const void *what, void (*unlock)(void *),
                              void *lock)
{
    return weft__park_forever_local(w, kind, what, unlock, lock);
}

int weft__park_forever_spin(weft__worker *w, int kind, const void *what, _Atomic uint32_t *lock)
{
    return weft__park_forever_local(w, kind, what, weft__park_spin_unlock, (void *)lock);
}

weft_task *weft__yield(weft__worker *w)
{
    weft_task *t = w->current;
    /* A plain store suffices (no locked instruction): a remote waker's CAS on RUNNING@e
     * either lands first, and its NOTIFIED is overwritten (the notification belonged to this
     * run, which the yield ends), or lands after and fails on READY. */
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    atomic_store_explicit(&t->word, WEFT__WORD(WEFT__EPOCH(word), WEFT__READY),
                          memory_order_relaxed);
    weft__ready_push(&w->sched, t);
    if (weft_unlikely(w->tracer != NULL))
        weft__trace_park(w, t, "yield");
    return weft__schedule_away(w, t);
}

void weft__run_first(weft__worker *w, weft_task *t)
{
    weft_task *self = w->current;
    /* A child cancelled from birth (shutdown) or that gets no stack takes the queue: the
     * pick finishes it unrun there, with the report and the result it gives every such task. */
    if (weft_unlikely(weft__task_cancelled(t) || bind_stack(w, t) < 0)) {
        weft__ready_push_new(&w->sched, t);
        return;
    }
    /* The spawner yields (as weft__yield: a plain store, and the tail of the queue), but to
     * t, without queueing t first: no push and pop between the spawn and the first run. */
    uint64_t word = atomic_load_explicit(&self->word, memory_order_relaxed);
    atomic_store_explicit(&self->word, WEFT__WORD(WEFT__EPOCH(word), WEFT__READY),
                          memory_order_relaxed);
    weft__ready_push(&w->sched, self);
    check_canary(self);
    /* The child's run counts against the tick like any other resume; with the budget spent
     * it still runs (the spawn promised it), and its first switch away goes to the loop. */
    if (w->sched.budget > 0)
        w->sched.budget--;
    begin_run(w, t);
    switch_to(w, self, t);
}

_Noreturn void weft__task_exit(weft__worker *w, void *result)
{
    weft_task *t = w->current;
    if (weft_unlikely(w->sched.eh_loc != NULL)) {
        /* A weft_exit inside a catch block: its handlers end. An exception's destructor may
         * park there, and the task resume on another worker or thread: the worker is looked
         * up again after (the migration rule; the hand-off's take-back too). */
        weft__eh_end_handlers();
        w = weft__worker_current();
    }
    finish_run(w, t, result);
    weft__schedule_away(w, t);
    __builtin_unreachable();
}

WEFT_COLD void weft__sched_init(weft__worker *w, unsigned budget, bool lifo, bool depth_first,
                                bool move_started)
{
    w->sched.depth_first = depth_first;
    w->sched.move_started = move_started && !depth_first;
    w->sched.lifo_on = lifo || depth_first;
    w->sched.pick_slow = (uint8_t)((w->sched.lifo_on ? WEFT__PICK_LIFO : 0) |
                                   (w->sched.chaos ? WEFT__PICK_CHAOS : 0));
    w->sched.budget_max = budget;
    w->sched.tooling = weft__hook_tooling_present();
    w->sched.general = w->sched.tooling || weft__eh_thread_record() != NULL;
}

/* ---- Names of the wait kinds (the dump, the tracer hooks) ---- */

static const char *const wait_names[WEFT__WAIT_NKINDS] = {
    [WEFT__WAIT_NONE] = "nothing",
    [WEFT__WAIT_SLEEP] = "sleep",
    [WEFT__WAIT_YIELD] = "yield",
    [WEFT__WAIT_FD] = "fd readiness",
    [WEFT__WAIT_IO] = "I/O in flight",
    [WEFT__WAIT_CHAN_SEND] = "channel send",
    [WEFT__WAIT_CHAN_RECV] = "channel receive",
    [WEFT__WAIT_SELECT] = "select",
    [WEFT__WAIT_MUTEX] = "mutex",
    [WEFT__WAIT_COND] = "condition variable",
    [WEFT__WAIT_SEM] = "semaphore",
    [WEFT__WAIT_WAITGROUP] = "wait group",
    [WEFT__WAIT_RWLOCK_RD] = "rwlock (read)",
    [WEFT__WAIT_RWLOCK_WR] = "rwlock (write)",
    [WEFT__WAIT_ONCE] = "once",
    [WEFT__WAIT_EVENT] = "event",
    [WEFT__WAIT_JOIN] = "join",
    [WEFT__WAIT_FUTURE] = "future",
    [WEFT__WAIT_POOL_JOB] = "blocking-pool job",
    [WEFT__WAIT_GEN_NEXT] = "generator next",
    [WEFT__WAIT_GEN_YIELD] = "generator yield",
    [WEFT__WAIT_SMP_ROOM] = "room in a worker's message ring",
    [WEFT__WAIT_SHARDS] = "shards",
};

const char *weft__wait_kind_name(int kind)
{
    return kind >= 0 && kind < WEFT__WAIT_NKINDS && wait_names[kind] ? wait_names[kind] : "unknown";
}
