/* Timers: a 4-ary min-heap of absolute deadlines, ordered by (deadline, insertion order) so
 * that equal deadlines fire first-in first-out. The heap is an array of entries that carry
 * their keys inline, so sifting compares contiguous memory and touches a timer node only to
 * record its new position: timer nodes usually live on coroutine stacks, one per page, and
 * a pointer-linked heap measured 19% of the 1M-sleepers run in cache and TLB misses.
 * Insert and remove are O(log4 n). The array grows by doubling (the one allocation here:
 * amortised, and never again once it has reached the high-water mark).
 * A waiter stops its timer before it returns, so a finished or cancelled task leaves no
 * timer behind. Firing a timer wakes its waker. */
#include <errno.h>

#include "timer.h"
#include "wake.h"
#include "worker.h"

static inline bool entry_less(const weft__timer_entry *a, const weft__timer_entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void place(weft__timer_heap *h, size_t i, weft__timer_entry e)
{
    h->v[i] = e;
    e.timer->index = i + 1;
}

static void sift_up(weft__timer_heap *h, size_t i)
{
    weft__timer_entry e = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (!entry_less(&e, &h->v[p]))
            break;
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, e);
}

static void sift_down(weft__timer_heap *h, size_t i)
{
    weft__timer_entry e = h->v[i];
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= h->n)
            break;
        size_t best = c;
        size_t end = c + 4 < h->n ? c + 4 : h->n;
        for (size_t k = c + 1; k < end; k++)
            if (entry_less(&h->v[k], &h->v[best]))
                best = k;
        if (!entry_less(&h->v[best], &e))
            break;
        place(h, i, h->v[best]);
        i = best;
    }
    place(h, i, e);
}

static void heap_remove(weft__timer_heap *h, weft__timer *t)
{
    size_t i = t->index - 1;
    t->index = 0;
    weft__timer_entry last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    last.timer->index = i + 1;
    if (i > 0 && entry_less(&h->v[i], &h->v[(i - 1) / 4]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

int weft__timer_start(weft__worker *w, weft__timer *t, int64_t deadline, weft_waker wk)
{
    weft__timer_heap *h = &w->timers;
    if (t->index)
        heap_remove(h, t);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        weft__timer_entry *v = weft__realloc(w, h->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->waker = wk;
    h->v[h->n] = (weft__timer_entry){deadline, h->seq++, t};
    h->n++;
    sift_up(h, h->n - 1);
    return 0;
}

void weft__timer_stop(weft__worker *w, weft__timer *t)
{
    if (t->index)
        heap_remove(&w->timers, t);
}

size_t weft__timers_run(weft__worker *w, int64_t now)
{
    weft__timer_heap *h = &w->timers;
    if (!h->n || h->v[0].deadline > now)
        return 0;
    /* The tasks these timers wake go to the head of the ready queue (behind any that earlier
     * timers put there), not its tail (Go's runnext for a timer's goroutine): a deadline is a
     * moment, and at the tail a sleeper would wait for every task queued before it, 40 ms behind
     * 5,000 busy connections. Fair still: a timer fires once per arming, so a task jumps the queue
     * once per sleep. */
    weft__fifo *ready = &w->sched.ready;
    void *mark = ready->tail;
    size_t len = ready->len, n = 0;
    /* Their wakes go to the tail first (not the LIFO slot), to be moved as a batch below; the
     * slot's task, if any, is then behind them. */
    bool lifo_on = w->sched.lifo_on;
    w->sched.lifo_on = false;
    while (h->n && h->v[0].deadline <= now) {
        weft__timer *t = h->v[0].timer;
        heap_remove(h, t);
        weft_waker_wake(t->waker);
        n++;
    }
    w->sched.lifo_on = lifo_on;
    w->sched.lifo = NULL;
    /* Behind the tasks earlier timers put at the head and that have not run yet: those have
     * earlier deadlines (a slow machine can fire two batches between two picks). */
    weft__fifo_to_nth(ready, mark, w->sched.nfront, offsetof(weft_task, next));
    w->sched.nfront += ready->len - len;
    if (w->sched.nfront)
        w->sched.pick_slow |= WEFT__PICK_FRONT;
    return n;
}

/* The picks to the next clock read without a system call: WEFT__TIMER_POLL_NS over the
 * time per pick since the last read (w->now), which came `picks` picks ago. A long resume
 * makes the next read come at the next pick; short ones space the reads out again, at most
 * twice as far each time (one short span, a resume that only woke another, must not set
 * a spacing that many long resumes then run under), up to 64 (a tick's budget: the tick's
 * own read then comes first). */
static void poll_adapt(weft__timer_heap *h, int64_t span, uint32_t picks)
{
    uint32_t every = 64;
    if (span > 0 && (uint64_t)span * 64 > (uint64_t)WEFT__TIMER_POLL_NS * picks) {
        uint64_t per = (uint64_t)span / picks;
        every = per >= WEFT__TIMER_POLL_NS ? 1 : (uint32_t)(WEFT__TIMER_POLL_NS / per);
    }
    uint32_t most = h->poll_every ? 2 * h->poll_every : 1;
    h->poll_every = every < most ? every : most;
    h->npicks = 0;
}

void weft__timers_poll_clock(weft__worker *w)
{
    weft__timer_heap *h = &w->timers;
    int64_t now = weft__clock_ns();
    /* A read a system call brought (npicks was not counted up to poll_every) says little of
     * the time per pick: only the count restarts. */
    if (h->npicks >= h->poll_every)
        poll_adapt(h, now - w->now, h->npicks);
    else
        h->npicks = 0;
    h->polled_at = w->sys.ntotal;
    w->now = now; /* never ahead of the clock, as weft_now() promises */
    weft__timers_run(w, now);
}

void weft__timers_ticked(weft__worker *w, int64_t now)
{
    /* The tick's read adapts too: else a spacing of 64 (set while resumes were short) would
     * never meet a read within a tick of longer ones, whose picks stop at 64. */
    poll_adapt(&w->timers, now - w->now, w->timers.npicks + 1);
    w->now = now;
}

int64_t weft__timers_next(weft__worker *w, int64_t now)
{
    weft__timer_heap *h = &w->timers;
    if (!h->n)
        return -1;
    int64_t d = h->v[0].deadline - now;
    return d > 0 ? d : 0;
}

void weft__timers_fini(weft__worker *w)
{
    weft__free(w, w->timers.v);
    w->timers.v = NULL;
    w->timers.n = w->timers.cap = 0;
}
