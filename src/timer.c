/* Timers: an intrusive min-heap of absolute deadlines, ordered by (deadline, insertion
 * order) so that equal deadlines fire first-in first-out. Timer nodes belong to their
 * waiters (usually on a coroutine's stack); a waiter stops its timer before it returns, so a
 * finished or cancelled task leaves no timer behind. Firing a timer wakes its waker. */
#include "internal.h"

static int timer_less(const weft__heap_node *a, const weft__heap_node *b)
{
    const weft__timer *x = weft__container_of(a, weft__timer, hn);
    const weft__timer *y = weft__container_of(b, weft__timer, hn);
    if (x->deadline != y->deadline)
        return x->deadline < y->deadline;
    return x->seq < y->seq;
}

void weft__timer_start(weft__worker *w, weft__timer *t, int64_t deadline, weft_waker wk)
{
    if (t->armed)
        weft__heap_remove(&w->timers, &t->hn, timer_less);
    t->deadline = deadline;
    t->seq = w->timer_seq++;
    t->waker = wk;
    t->armed = true;
    weft__heap_insert(&w->timers, &t->hn, timer_less);
}

void weft__timer_stop(weft__worker *w, weft__timer *t)
{
    if (t->armed) {
        weft__heap_remove(&w->timers, &t->hn, timer_less);
        t->armed = false;
    }
}

size_t weft__timers_run(weft__worker *w)
{
    size_t n = 0;
    weft__heap_node *hn;
    while ((hn = weft__heap_min(&w->timers)) != NULL) {
        weft__timer *t = weft__container_of(hn, weft__timer, hn);
        if (t->deadline > w->now)
            break;
        weft__heap_remove(&w->timers, hn, timer_less);
        t->armed = false;
        weft_waker_wake(t->waker);
        n++;
    }
    return n;
}

int64_t weft__timers_next(weft__worker *w)
{
    weft__heap_node *hn = weft__heap_min(&w->timers);
    if (!hn)
        return -1;
    int64_t d = weft__container_of(hn, weft__timer, hn)->deadline - w->now;
    return d > 0 ? d : 0;
}
