/* Circles of joins. One walk of the task records takes every task parked in a join with no
 * deadline, with its state word and the task it joins; then each circle is followed through
 * a sorted table, and confirmed by reading every member's state word again: a word that has
 * not changed since its task was taken means the task stayed in that very park (a park's
 * word changes with any wake, cancellation included), so at the end of the walk every member
 * was parked, each waiting for the next to finish, which none of them can. */
#include <stdlib.h>

#include "cycles.h"
#include "dump.h"
#include "log.h"
#include "scheduler.h"
#include "task.h"
#include "worker.h"

typedef struct joiner {
    weft_task *t;
    uint64_t word;
    const weft_task *target;
} joiner;

typedef struct walk {
    joiner *v;
    size_t n, cap;
} walk;

static void take(weft_task *t, void *arg)
{
    walk *wk = arg;
    int kind;
    const void *what;
    int64_t deadline, since;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    if (weft__task_wait_snapshot(t, &kind, &what, &deadline, &since) < 0 ||
        kind != WEFT__WAIT_JOIN || deadline != WEFT_FOREVER)
        return;
    if (wk->n == wk->cap) {
        size_t cap = wk->cap ? wk->cap * 2 : 64;
        joiner *v = realloc(wk->v, cap * sizeof *v);
        if (!v)
            return;
        wk->v = v;
        wk->cap = cap;
    }
    wk->v[wk->n++] = (joiner){t, word, what};
}

static int by_task(const void *a, const void *b)
{
    const weft_task *x = ((const joiner *)a)->t, *y = ((const joiner *)b)->t;
    return x < y ? -1 : x > y;
}

static joiner *find(const walk *wk, const weft_task *t)
{
    joiner key = {(weft_task *)t, 0, NULL};
    return bsearch(&key, wk->v, wk->n, sizeof key, by_task);
}

static bool remembered(weft__cycles *c, const joiner *j)
{
    for (unsigned i = 0; i < c->nreported; i++)
        if (c->reported[i].t == j->t && c->reported[i].word == j->word)
            return true;
    if (c->nreported < WEFT__CYCLES_REMEMBERED)
        c->reported[c->nreported++] = (weft__cycle_key){j->t, j->word};
    return false;
}

static uint64_t id_of(const weft_task *t)
{
    return __atomic_load_n(&t->id, __ATOMIC_RELAXED);
}

/* Reports the circle starting at `start` if it is one: each member's target found in the
 * table, back to start, every word unchanged, and start the lowest record of the circle (so
 * that a circle is reported once, not once per member). */
static void follow(weft__runtime *rt, weft__cycles *c, const walk *wk, joiner *start)
{
    joiner *j = start;
    size_t len = 0;
    do {
        if (j->t < start->t || ++len > wk->n)
            return;
        j = find(wk, j->target);
        if (!j)
            return;
    } while (j != start);
    j = start;
    do { /* confirmed only if nobody moved meanwhile */
        if (atomic_load_explicit(&j->t->word, memory_order_acquire) != j->word)
            return;
        j = find(wk, j->target);
    } while (j != start);
    if (remembered(c, start))
        return;
    weft__dumpbuf b = {0};
    weft__dumpbuf_printf(&b,
                         "weft: %zu tasks wait for each other (joins in a circle), while the "
                         "rest of the program runs on:\n",
                         len);
    j = start;
    do {
        const weft__worker *w = __atomic_load_n(&j->t->worker, __ATOMIC_RELAXED);
        weft__dumpbuf_printf(&b, "    task %llu \"%.15s\" on worker %u joins task %llu\n",
                             (unsigned long long)id_of(j->t), j->t->name, w ? w->index : 0u,
                             (unsigned long long)id_of(j->target));
        j = find(wk, j->target);
    } while (j != start);
    weft__log(rt, WEFT_LOG_WARN, b.p ? b.p : "", b.len);
    free(b.p);
}

void weft__cycles_check(weft__runtime *rt, weft__cycles *c)
{
    walk wk = {0};
    weft__task_each(rt, take, &wk);
    if (wk.n > 1) {
        qsort(wk.v, wk.n, sizeof wk.v[0], by_task);
        for (size_t i = 0; i < wk.n; i++)
            follow(rt, c, &wk, &wk.v[i]);
    }
    free(wk.v);
}
