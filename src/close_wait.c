/* Circles of uncancellable closes (close_wait.h): a walk from the tasks a new close would
 * wait for, through the closes those tasks are in, looking for the new closer. */
#include "close_wait.h"

typedef struct walk {
    weft__worker *w;
    const weft_task *self;
} walk;

static bool waits_for_self(const weft__close_wait *rec, walk *k);

/* Whether t is the new closer, or waits for it through the close t is in. A task waits in one
 * close at most, so it has one record at most; each record is walked once (`seen`), so a
 * circle that does not pass through the new closer (stuck already, and not this call's to
 * report) ends the walk instead of looping in it. */
static bool task_reaches(const weft_task *t, void *ctx)
{
    walk *k = ctx;
    if (t == k->self)
        return true;
    for (weft__close_wait *c = k->w->closes; c; c = c->next) {
        if (c->closer != t)
            continue;
        if (c->seen)
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
    walk k = {w, rec->closer};
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
