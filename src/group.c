/* Groups: a set of tasks owned by one scope. Members are spawned detached and linked into
 * the group; each unlinks itself when it finishes (the spawn cleanup, so it runs however the
 * task ends, even if it was cancelled before it ever ran); the last one to finish releases
 * the group's waiters. Closing cancels the members and waits for them without honouring the
 * closer's own cancellation, so no member outlives it. A member waiting for its own group (wait,
 * close) would wait for itself: -EDEADLK, and so would a close completing a circle of closes
 * (close_wait.h: a member of G1 closes G2 while a member of G2 closes G1), and a wait completing
 * a circle of waits with no deadline (a member of G1 waits for G2 while one of G2 waits for G1).
 * A group belongs to the worker that created it; other threads get -EPERM. */
#include <errno.h>

#include "close_wait.h"
#include "group.h"
#include "scheduler.h"
#include "sync_internal.h"
#include "task.h"
#include "task_api.h"
#include "worker.h"

/* Members finished and kept for the group's next spawns: a group that spawns and reaps one
 * member after another (child first, libdill's bundle) then allocates nothing per member.
 * Beyond this many the rest go back to the allocator. */
#define SPARE_MAX 256

struct weft_group {
    weft__worker *w;
    weft__list members; /* member.link of unfinished members */
    size_t n;           /* unfinished members; owner: g->w, as everything here */
    int closing;
    /* Waiters park on the wait group, whose count is 1 while `armed` and 0 otherwise: it is
     * armed by a wait that finds members left and disarmed when the last one finishes, so
     * a member's spawn and finish touch it only when someone waits (its lock and counter
     * per member were a quarter of a group spawn's cost). */
    bool armed;
    weft_waitgroup wg;
    /* Tasks inside weft_group_wait (bound to g->w, as every user of g). A close frees g only
     * once they have all left: the last member's finish wakes them and the close's own wait
     * alike, and the close may run first (a depth-first ready queue, a chaos pick). */
    size_t nwaiting;
    struct member *spare; /* finished members' records, linked through `spare_next` */
    size_t nspare;
};

/* A member's record, kept (`spare`) for g's next spawns once it has finished. The task runs
 * the caller's fn(arg) itself; `gone` is its spawn cleanup (task_api.h, weft__spawn_wrapped),
 * set once when the record is made (member_gone with this record) and the task's until the
 * cleanup runs. */
typedef struct member {
    weft__list link;
    weft_group *g;              /* fixed: a record serves one group */
    void (*cleanup)(void *arg); /* the spawner's weft_spawn_opts.cleanup */
    weft_task *task;            /* valid while the member is linked (its record is reaped after) */
    struct member *spare_next;
    weft__node gone;
} member;

int weft_group_create(weft_group **out)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    weft__task_bind(w->current); /* it keeps a worker's object: it stays there (task.h) */
    if (!out)
        return -EINVAL;
    weft_group *g = weft__calloc(w, 1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->w = w;
    weft__list_init(&g->members);
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    g->wg = wg;
    *out = g;
    return 0;
}

/* A member's spawn cleanup, on g's worker (members are pinned there), however the member
 * ended, also when it never ran. */
static void member_gone(void *arg)
{
    member *m = arg;
    weft_group *g = m->g;
    /* The spawner's cleanup refuses blocking calls and weft_exit, as weft_spawn's: a park
     * here left the member half-finished, and an exit ended it before it left the group (its
     * waiters then waited for ever). The record is there until the reap, after this. */
    if (m->cleanup)
        weft__task_call_noblock(g->w->current, m->cleanup, m->task->arg);
    weft__list_remove(&m->link);
    if (g->nspare < SPARE_MAX) {
        m->spare_next = g->spare;
        g->spare = m;
        g->nspare++;
    } else {
        weft__free(g->w, m);
    }
    if (--g->n == 0 && g->armed) {
        g->armed = false;
        weft_waitgroup_done(&g->wg);
    }
}

/* Whether t is a member of g (its spawn cleanup is member_gone, with its member record). */
static bool is_member(const weft_group *g, const weft_task *t)
{
    const weft__node *n = t ? weft__task_spawn_cleanup(t) : NULL;
    return n && n->fn == member_gone && ((const member *)n->arg)->g == g;
}

/* -EPERM from a thread other than g's, else 0. */
static int check_owner(const weft_group *g)
{
    weft__worker *w = weft__worker_current();
    if (w != g->w)
        return -EPERM;
    weft__task_bind(w->current); /* its group is its worker's: it stays there (task.h) */
    return 0;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg, const weft_spawn_opts *opts)
{
    if (!g || !fn)
        return -EINVAL;
    if (check_owner(g) < 0)
        return -EPERM;
    if (g->closing)
        return -EPIPE;
    int r = weft__spawn_opts_check(opts);
    if (r < 0)
        return r;
    member *m = g->spare;
    if (m) {
        g->spare = m->spare_next;
        g->nspare--;
    } else if ((m = weft__malloc(g->w, sizeof *m)) != NULL) {
        m->g = g;
        m->gone = (weft__node){.fn = member_gone, .key = &weft__spawn_wrap_key, .arg = m};
    } else {
        return -ENOMEM;
    }
    m->cleanup = opts ? opts->cleanup : NULL;
    /* Detached from birth: the group tracks it, and its record is reaped when it finishes
     * (the handle is ours until then: member_gone runs before the reap). Pinned: members
     * touch g, which is its worker's. */
    weft_task *t;
    /* Not started until the member is set up: a child-first task runs (and may finish, which
     * unlinks it) inside the start. */
    r = weft__spawn_wrapped(g->w, &t, fn, arg, opts, WEFT_SPAWN_PINNED, &m->gone);
    if (r < 0) {
        m->spare_next = g->spare; /* unused: kept for the next spawn */
        g->spare = m;
        g->nspare++;
        return r;
    }
    m->task = t;
    weft__list_push_back(&g->members, &m->link);
    g->n++;
    weft__spawn_start(g->w, t, opts && (opts->flags & WEFT_SPAWN_CHILD_FIRST));
    return 0;
}

/* Members are left: the wait group's count goes to 1 until the last one finishes. */
static void arm(weft_group *g)
{
    if (!g->armed) {
        g->armed = true;
        weft_waitgroup_add(&g->wg, 1);
    }
}

/* The tasks a close or a wait of g waits for: its unfinished members (close_wait.h). */
static bool any_member(const void *waited, weft__task_visit *visit, void *ctx);

int weft_group_wait(weft_group *g, int64_t deadline)
{
    if (!g)
        return -EINVAL;
    if (check_owner(g) < 0)
        return -EPERM;
    weft_task *self = weft_self();
    if (is_member(g, self))
        return -EDEADLK;
    if (g->n == 0)
        return 0;
    /* A circle of waits (a member of G1 waits for G2 while a member of G2 waits for G1) is
     * refused as a circle of closes is. Waits with a deadline take no part: each ends by
     * itself, and a circle through one is not stuck. Nor does a cancelled caller's wait,
     * which returns -ECANCELED at once. */
    weft__close_wait rec = {.closer = self, .waited = g, .any_waited = any_member, .is_wait = true};
    bool linked = deadline == WEFT_FOREVER && self && !weft__task_cancelled(self);
    if (linked) {
        if (weft__close_would_circle(g->w, &rec))
            return -EDEADLK;
        weft__close_wait_push(g->w, &rec);
    }
    arm(g);
    g->nwaiting++;
    int r = weft_waitgroup_wait(&g->wg, deadline);
    /* Still g->w's: the caller is bound to it (check_owner). Before the last touch of g, which
     * a walk of the record reads (its members). */
    if (linked)
        weft__close_wait_unlink(g->w, &rec);
    g->nwaiting--; /* the last touch of g: a close may free it from now on */
    return r;
}

int weft_group_cancel(weft_group *g)
{
    if (!g)
        return -EINVAL;
    if (check_owner(g) < 0)
        return -EPERM;
    int n = 0;
    for (weft__list *l = g->members.next; l != &g->members; l = l->next, n++)
        weft_cancel(weft__container_of(l, member, link)->task);
    return n;
}

size_t weft_group_size(const weft_group *g)
{
    return g ? g->n : 0;
}

static bool any_member(const void *waited, weft__task_visit *visit, void *ctx)
{
    const weft_group *g = waited;
    for (const weft__list *l = g->members.next; l != &g->members; l = l->next)
        if (visit(weft__container_of(l, member, link)->task, ctx))
            return true;
    return false;
}

int weft_group_close(weft_group *g)
{
    if (!g)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    weft_task *self = weft__blocking_task(w);
    if (!self || w != g->w)
        return -EPERM;
    /* Its group is its worker's: the closer stays there (task.h), as every other call on g
     * keeps its caller. Unbound (a task that never used g before), its wait below could hand
     * it to another worker (stealing mode, move_started), whose thread would then free g
     * through w and walk w's closes. */
    weft__task_bind(self);
    if (is_member(g, self))
        return -EDEADLK; /* it would wait for its own end */
    if (g->closing)
        return -EALREADY; /* another task is closing it, and will free it */
    weft__close_wait rec = {.closer = self, .waited = g, .any_waited = any_member};
    if (weft__close_would_circle(w, &rec))
        return -EDEADLK; /* a member waits, through other closes, for the caller's own end */
    g->closing = 1;
    weft__close_wait_push(w, &rec);
    weft_group_cancel(g);
    if (g->n) {
        arm(g);
        weft__waitgroup_wait_all(&g->wg);
    }
    weft__close_wait_unlink(w, &rec); /* still w's: the closer is bound to it (above) */
    /* The other waiters were woken with us: each leaves g at its next turn (a cancelled
     * task's yield still yields). */
    while (g->nwaiting)
        weft_yield();
    while (g->spare) {
        member *m = g->spare;
        g->spare = m->spare_next;
        weft__free(w, m);
    }
    weft__free(w, g);
    return 0;
}

const weft_group *weft__group_of_node(const weft__node *node, weft__peek *peek, void *ctx)
{
    if (node->fn != member_gone)
        return NULL;
    const member *m = node->arg;
    const weft_group *g;
    return peek(ctx, &m->g, &g, sizeof g) ? g : NULL;
}

const void *weft__group_wait_object(const weft_group *g)
{
    return &g->wg;
}
