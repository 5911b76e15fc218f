/* Circles of uncancellable closes, and of group waits (close_wait.h): a walk from the tasks a
 * new close (wait) would wait for, through the closes (waits) those tasks are in, looking for
 * the new caller. */
#include "close_wait.h"
#include "task.h"

typedef struct walk {
    weft__worker *w;
    const weft_task *self;
    bool is_wait; /* the kind of record followed (close_wait.h: circles are of one kind) */
} walk;

static bool waits_for_self(const weft__close_wait *rec, walk *k);

/* Whether the group wait t is in is over though still linked: t was woken (the group
 * emptied; it has not run since to unlink) or cancelled. A group may gain members after
 * that wake, and one of them waiting for t's group is then in no circle. t is this worker's
 * (as every task of a circle), and not running: it is parked, or queued by its wake. A cancel
 * from another thread may have set the flag and not woken it yet. */
static bool wait_over(const weft_task *t)
{
    uint64_t word = atomic_load_explicit(&t->word, memory_order_relaxed);
    return WEFT__STATE(word) != WEFT__PARKED || weft__task_cancelled(t);
}

/* Whether t is the new caller, or waits for it through the close (wait) t is in. A task waits
 * in one call at most, so it has one record at most; each record is walked once (`seen`), so a
 * circle that does not pass through the new caller (stuck already, and not this call's to
 * report) ends the walk instead of looping in it. A wait that is over (wait_over) leads
 * nowhere. */
static bool task_reaches(const weft_task *t, void *ctx)
{
    walk *k = ctx;
    if (t == k->self)
        return true;
    for (weft__close_wait *c = k->w->closes; c; c = c->next) {
        if (c->closer != t)
            continue;
        if (c->seen || c->is_wait != k->is_wait || (c->is_wait && wait_over(t)))
            return false;
        c->seen = true;
        return waits_for_self(c, k);
    }
    return false;
}

static bool waits_for_self(const weft__close_wait *rec, walk *k)
{
    return rec->any_waited(rec->waited, task_reaches, k);
}

bool weft__close_would_circle(weft__worker *w, const weft__close_wait *rec)
{
    for (weft__close_wait *c = w->closes; c; c = c->next)
        c->seen = false;
    walk k = {w, rec->closer, rec->is_wait};
    return waits_for_self(rec, &k);
}

void weft__close_wait_push(weft__worker *w, weft__close_wait *rec)
{
    rec->next = w->closes;
    w->closes = rec;
}

void weft__close_wait_unlink(weft__worker *w, const weft__close_wait *rec)
{
    for (weft__close_wait **p = &w->closes; *p; p = &(*p)->next) {
        if (*p == rec) {
            *p = rec->next;
            return;
        }
    }
}
