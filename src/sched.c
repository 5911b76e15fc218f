/* The scheduler and the loop of one worker. Tasks wait in a FIFO ready queue. A task that
 * parks or yields hands the CPU straight to the next ready task (one switch, no detour
 * through the scheduler) while the tick's budget lasts; when the budget is spent or nothing
 * is ready, control returns to the loop on the thread's own stack, which fires timers,
 * takes tasks woken from other threads, polls I/O, and blocks in the reactor until the
 * nearest timer when nothing is ready. See docs/architecture.md, "the life of a resume". */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "internal.h"

#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* errno is reached through these on purpose: __errno_location is declared const, so the
 * compiler may keep its result in a register across a switch, and a coroutine that one day
 * resumes on another thread would then write the wrong thread's errno. */
static WEFT_NOINLINE int errno_get(void)
{
    return errno;
}

static WEFT_NOINLINE void errno_set(int v)
{
    errno = v;
}

/* ---- Switching ----------------------------------------------------------------------- */

static void release_dead(weft__worker *w)
{
    weft_task *t = w->dead;
    w->dead = NULL;
#ifdef WEFT_TSAN
    __tsan_destroy_fiber(t->stack->tsan_fiber);
#endif
    weft__stack_free(w, t->stack);
    t->stack = NULL;
    if (t->flags & WEFT__T_DETACHED)
        weft__task_reap(w, t);
}

/* Runs first on whichever context a switch lands on. */
static void landed(weft__worker *w, void *fake_stack)
{
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, NULL, NULL);
#else
    (void)fake_stack;
#endif
    if (w->dead)
        release_dead(w);
    weft_task *t = w->current;
    errno_set(t ? t->saved_errno : w->sched_errno);
}

/* Switches from the running context (`from`, NULL for the loop) to `to` (NULL: the loop).
 * Never inlined: every switch leaves from this one call site, so the switch's `ret` lands
 * where the CPU's return predictor expects (see src/arch/x86_64/switch.S). */
static WEFT_NOINLINE void switch_to(weft__worker *w, weft_task *from, weft_task *to)
{
    weft__ctx *fc = from ? &from->ctx : &w->sched_ctx;
    weft__ctx *tc = to ? &to->ctx : &w->sched_ctx;
    int e = errno_get();
    if (from)
        from->saved_errno = e;
    else
        w->sched_errno = e;
    w->current = to;
    w->stats.nswitches++;
#ifdef WEFT_ASAN
    /* A finished task's frames are never returned to: NULL lets ASan drop its fake stack. */
    void *fake = NULL;
    bool exiting = from && from == w->dead;
    if (to)
        __sanitizer_start_switch_fiber(exiting ? NULL : &fake, to->stack->lo,
                                       (size_t)(to->stack->hi - to->stack->lo));
    else
        __sanitizer_start_switch_fiber(exiting ? NULL : &fake, w->sched_stack_lo,
                                       w->sched_stack_size);
#else
    void *fake = NULL;
#endif
#ifdef WEFT_TSAN
    __tsan_switch_to_fiber(to ? to->stack->tsan_fiber : w->sched_tsan_fiber, 0);
#endif
    weft__ctx_switch(fc, tc);
    landed(w, fake);
}

/* A coroutine's first frame (below it only the trampoline, which ends the frame chain). */
static void task_entry(void *arg)
{
    weft_task *t = arg;
    weft__worker *w = t->worker;
    landed(w, NULL);
    void *r = t->fn(t->arg);
    weft__task_exit(w, r);
}

static int bind_stack(weft__worker *w, weft_task *t)
{
    bool guard = !(t->flags & WEFT__T_NOGUARD) && w->cfg.guard != WEFT_GUARD_NEVER;
    int r = weft__stack_alloc(w, t->stack_size, guard, &t->stack);
    if (r < 0)
        return r;
#ifdef WEFT_TSAN
    t->stack->tsan_fiber = __tsan_create_fiber(0);
#endif
    weft__ctx_make(&t->ctx, t->stack->hi, task_entry, t);
    return 0;
}

/* Gives `t` the CPU's next run: a new epoch, so wakers made before now are stale. */
static void begin_run(weft__worker *w, weft_task *t)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    atomic_store_explicit(&t->word, WEFT__WORD(WEFT__EPOCH(word) + 1, WEFT__RUNNING),
                          memory_order_relaxed);
    t->flags |= WEFT__T_STARTED;
    w->stats.nresumes++;
}

/* Pops the next task that can run. Tasks that never started get their stack here (so a
 * queued task costs no stack), or finish at once if they were cancelled before running. */
static weft_task *pick_next(weft__worker *w)
{
    weft_task *t;
    while ((t = weft__fifo_pop(&w->ready, offsetof(weft_task, next))) != NULL) {
        if (t->flags & (WEFT__T_STARTED | WEFT__T_STACKLESS))
            return t;
        if (!(t->flags & WEFT__T_CANCELLED)) {
            int r = bind_stack(w, t);
            if (r == 0)
                return t;
            fprintf(stderr, "weft: task %llu \"%s\" got no stack (%s); finished as cancelled\n",
                    (unsigned long long)t->id, t->name, weft_strerror(r));
            t->flags |= WEFT__T_CANCELLED;
        }
        begin_run(w, t);
        weft__task_finish(w, t, WEFT_CANCELED);
    }
    return NULL;
}

static void check_canary(weft_task *t)
{
#if WEFT__STACK_CANARY
    if (!t->stack->guarded && weft__stack_canary_check(t->stack) != 0)
        weft__overflow_report(t, NULL, "its canary word was overwritten");
#else
    (void)t;
#endif
}

/* Leaves the current task `from` (already parked, ready or done) for the next ready task,
 * or for the loop. Returns when `from` is resumed. */
static void schedule_away(weft__worker *w, weft_task *from)
{
    weft_task *next = NULL;
    if (w->budget > 0 && (next = pick_next(w)) != NULL)
        w->budget--;
    if (next == from) {
        begin_run(w, from); /* a yield with nothing else ready */
        return;
    }
    if (next && (next->flags & WEFT__T_STACKLESS)) {
        w->handoff = next; /* polled on the loop's stack */
        next = NULL;
    }
    if (next)
        begin_run(w, next);
    switch_to(w, from, next);
}

/* ---- Park and wake ------------------------------------------------------------------- */

static void enqueue_remote(weft__worker *w, weft_task *t)
{
    /* seq_cst CAS: pairs with the loop's store to `sleeping` then load of `inbox`. */
    weft_task *head = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    do {
        t->inbox_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&w->inbox, &head, t, memory_order_seq_cst,
                                                    memory_order_relaxed));
    if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst))
        weft__io_notify(w);
}

void weft__enqueue(weft__worker *w, weft_task *t)
{
    weft__fifo_push(&w->ready, t, offsetof(weft_task, next));
}

void weft__wake(weft_task *t, uint64_t epoch)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    for (;;) {
        if (WEFT__EPOCH(word) != epoch)
            return; /* a stale waker: that park is over */
        unsigned st = WEFT__STATE(word);
        uint64_t nw;
        if (st == WEFT__PARKED)
            nw = WEFT__WORD(epoch, WEFT__READY);
        else if (st == WEFT__RUNNING)
            nw = WEFT__WORD(epoch, WEFT__NOTIFIED);
        else
            return; /* already woken, queued, or finished */
        /* release: what the waker wrote before waking is visible to the woken task. */
        if (atomic_compare_exchange_weak_explicit(&t->word, &word, nw, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (st == WEFT__PARKED) {
                weft__worker *w = t->worker;
                if (weft_likely(weft__worker_current() == w))
                    weft__enqueue(w, t);
                else
                    enqueue_remote(w, t);
            }
            return;
        }
    }
}

static void park_current(weft__worker *w, weft_task *t)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    uint64_t e = WEFT__EPOCH(word);
    if (WEFT__STATE(word) == WEFT__RUNNING &&
        atomic_compare_exchange_strong_explicit(&t->word, &word, WEFT__WORD(e, WEFT__PARKED),
                                                memory_order_acq_rel, memory_order_acquire)) {
        check_canary(t);
        schedule_away(w, t);
        return;
    }
    /* NOTIFIED: a wake for this park came first; consume it and carry on. */
    atomic_store_explicit(&t->word, WEFT__WORD(e + 1, WEFT__RUNNING), memory_order_relaxed);
}

int weft__park_until(weft__worker *w, int64_t deadline)
{
    weft_task *t = w->current;
    if (t->flags & WEFT__T_CANCELLED)
        return -ECANCELED;
    if (deadline != WEFT_FOREVER && deadline <= w->now)
        return -ETIMEDOUT;
    weft__timer tm;
    tm.index = 0;
    if (deadline != WEFT_FOREVER && weft__timer_start(w, &tm, deadline, weft__waker_of(t)) < 0)
        return -ENOMEM;
    park_current(w, t);
    weft__timer_stop(w, &tm);
    if (t->flags & WEFT__T_CANCELLED)
        return -ECANCELED;
    if (deadline != WEFT_FOREVER && w->now >= deadline)
        return -ETIMEDOUT;
    return 0;
}

int weft__park(weft__worker *w)
{
    park_current(w, w->current);
    return 0;
}

void weft__yield(weft__worker *w)
{
    weft_task *t = w->current;
    /* A plain store suffices (no locked instruction): a remote waker's CAS on RUNNING@e
     * either lands first, and its NOTIFIED is overwritten (the notification belonged to this
     * run, which the yield ends), or lands after and fails on READY. */
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    atomic_store_explicit(&t->word, WEFT__WORD(WEFT__EPOCH(word), WEFT__READY),
                          memory_order_relaxed);
    weft__enqueue(w, t);
    schedule_away(w, t);
}

_Noreturn void weft__task_exit(weft__worker *w, void *result)
{
    weft_task *t = w->current;
    weft__task_finish(w, t, result);
    check_canary(t);
    w->dead = t; /* its stack is freed by whoever we switch to, once we are off it */
    schedule_away(w, t);
    __builtin_unreachable();
}

weft_task *weft__blocking_task(weft__worker *w)
{
    if (!w)
        return NULL;
    weft_task *t = w->current;
    return t && !(t->flags & WEFT__T_STACKLESS) ? t : NULL;
}

/* ---- Stackless tasks ------------------------------------------------------------------ */

static void poll_stackless(weft__worker *w, weft_task *t)
{
    begin_run(w, t);
    w->current = t;
    if (t->flags & WEFT__T_CANCELLED) {
        weft__task_finish(w, t, WEFT_CANCELED);
    } else {
        weft_context cx = {weft__waker_of(t)};
        if (weft_future_poll(t->future, &cx) == WEFT_READY) {
            weft__task_finish(w, t, t->future->value);
        } else {
            uint64_t e = WEFT__EPOCH(atomic_load_explicit(&t->word, memory_order_relaxed));
            uint64_t word = WEFT__WORD(e, WEFT__RUNNING);
            if (!atomic_compare_exchange_strong_explicit(
                    &t->word, &word, WEFT__WORD(e, WEFT__PARKED), memory_order_acq_rel,
                    memory_order_acquire)) {
                /* Woken during its own poll: poll again, after the others (fairness). */
                atomic_store_explicit(&t->word, WEFT__WORD(e, WEFT__READY), memory_order_relaxed);
                weft__enqueue(w, t);
            }
        }
    }
    w->current = NULL;
}

/* ---- The loop ------------------------------------------------------------------------- */

static void drain_inbox(weft__worker *w)
{
    /* acquire: pairs with the pushers' CAS, so each task's READY state and whatever its
     * waker published are visible here. */
    weft_task *t = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
    /* The inbox is a stack (newest first): reverse it so wakes keep their order. */
    weft_task *fifo = NULL;
    while (t) {
        weft_task *n = t->inbox_next;
        t->inbox_next = fifo;
        fifo = t;
        t = n;
    }
    for (; fifo; fifo = fifo->inbox_next)
        weft__enqueue(w, fifo);
}

static void run_ready(weft__worker *w)
{
    w->budget = w->cfg.budget;
    for (;;) {
        weft_task *t = w->handoff;
        if (t) {
            w->handoff = NULL;
        } else {
            if (w->budget == 0 || (t = pick_next(w)) == NULL)
                return;
            w->budget--;
        }
        if (t->flags & WEFT__T_STACKLESS) {
            poll_stackless(w, t);
        } else {
            begin_run(w, t);
            switch_to(w, NULL, t);
        }
    }
}

WEFT_COLD void weft__shutdown_begin(weft__worker *w)
{
    w->shutting_down = true;
    for (weft__list *l = w->tasks.next; l != &w->tasks; l = l->next) {
        weft_task *t = weft__container_of(l, weft_task, all);
        if (WEFT__STATE(atomic_load_explicit(&t->word, memory_order_relaxed)) != WEFT__DONE)
            weft_cancel(t);
    }
}

WEFT_COLD static void loop_init(weft__worker *w)
{
    (void)w;
#ifdef WEFT_ASAN
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    w->sched_stack_lo = lo;
    w->sched_stack_size = size;
#endif
#ifdef WEFT_TSAN
    w->sched_tsan_fiber = __tsan_get_current_fiber();
#endif
}

int weft__loop(weft__worker *w)
{
    loop_init(w);
    for (;;) {
        w->now = weft__clock_ns();
        w->stats.nticks++;
        weft__timers_run(w);
        drain_inbox(w);
        /* I/O waiters get their events at least once a tick, even while tasks keep the
         * ready queue busy; without waiters the syscall is skipped. */
        if (w->ready.len && weft__io_nwaiters(w))
            weft__io_poll(w, 0);
        run_ready(w);

        if (w->shutting_down && w->nlive == 0)
            return 0;
        if (w->ready.len)
            continue;

        w->now = weft__clock_ns();
        int64_t timeout = weft__timers_next(w);
        /* Idle: give surplus pooled stacks back, a batch at a time, without blocking
         * while some remain (256: a few hundred microseconds of madvise/munmap). */
        if (timeout != 0 && w->stacks.npooled > w->cfg.stack_pool_max &&
            weft__stack_trim(w, 256) > 0)
            timeout = 0;
        /* seq_cst: pairs with enqueue_remote (see the field's comment). */
        atomic_store_explicit(&w->sleeping, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&w->inbox, memory_order_seq_cst))
            timeout = 0;
        weft__io_poll(w, timeout);
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    }
}
