/* Circles of waits. One walk of the task records takes every task parked with no deadline
 * in a wait that names one task able to end it: a join (the joined task), or a mutex, a
 * rwlock or a once (the task holding it); then each circle is followed through a sorted
 * table, and confirmed by reading every member's holder and then every member's state word
 * again. A word that has not changed since its task was taken means the task stayed in that
 * very park (a park's word changes with any wake, cancellation included). So during the
 * whole second reading of the holders every member was parked, and a lock's holder changes
 * only by its holder's own unlock (or finish), which a parked holder cannot do: each member
 * waited, at one moment, for the next, and none of them can ever move.
 *
 * A lock lives in the program's memory, which its waiter's wake may let the program free
 * at any moment; this thread must neither fault on it nor write to it (its spin lock). Its
 * holder is therefore read with process_vm_readv on our own process, which fails with EFAULT
 * on an unmapped page instead of faulting, and is trusted only if the waiter's state word
 * was the same before and after (it was parked on the lock, so the lock was alive). A holder
 * read is a record address only; it is followed only if the table has that record.
 *
 * A group wait (weft_group_wait or weft_group_close, parked on the group's wait group with no
 * deadline) waits for every unfinished member: one wait with many edges. The members that
 * matter are those taken in the table (a member not parked in a followed wait ends no circle),
 * so the walk does not read the group's member list (its worker's, changing as we read); it
 * reads, for each task taken, the group it belongs to (its spawn cleanup node, group.h), through
 * the same faultless reader, trusted only if the task's word did not change meanwhile: a
 * parked member has not finished, so it is still in its group, and the group is not freed.
 * The waits then make a graph instead of a set of chains, which one depth-first search walks:
 * each back edge closes a circle. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cycles.h"
#include "dump.h"
#include "group.h"
#include "log.h"
#include "scheduler.h"
#include "sync_internal.h"
#include "task.h"
#include "worker.h"

/* Up to this many of a task's locals are read looking for its spawn cleanup (the oldest
 * node), which names its group: a task keeps a handful of task-local values. One with more is
 * taken for no group's member, and a circle through it goes unseen. */
#define LOCALS_MAX 32

/* The edges the search may follow in one walk. Every waiter of a group scans the group's
 * members in the table (after the first scan finishes, they are skipped: see `scanned`), so
 * that the walk is linear in the records but for scans nested in each other; this bounds the
 * worst case, on this thread, to some tens of ms a walk. A walk that reaches it stops, and the
 * circles it has not reached go unseen. */
#define EDGES_MAX (1u << 22)

typedef struct waiter {
    weft_task *t;
    uint64_t word;
    int kind;
    const void *what;        /* the joined task, the lock, or the wait group */
    const weft_task *target; /* the task it waits for; NULL in a wait group */
    /* The group t is a member of (read only when some task waits on a wait group), or NULL,
     * and the object that group's waiters park on (weft__group_wait_object). */
    const weft_group *group;
    const void *group_wait;
} waiter;

/* A member of a group in the table, for the search of a group's waiter: sorted by group. */
typedef struct member_ref {
    const void *group_wait;
    size_t i; /* its waiter in walk.v */
} member_ref;

typedef struct walk {
    waiter *v;
    size_t n, cap;
    size_t ngroup_waits; /* waiters in a wait group: without any, no group is read */
    member_ref *members;
    size_t nmembers;
    pid_t pid;
    /* process_vm_readv refused (a seccomp profile that blocks it, as some containers'): the
     * fallback reads through a pipe instead (a write from a bad address fails with EFAULT,
     * faults nothing), made at its first use; -1 until then. */
    bool no_vm;
    int pipe[2];
} walk;

static bool lock_kind(int kind)
{
    return kind == WEFT__WAIT_MUTEX || kind == WEFT__WAIT_RWLOCK_RD ||
           kind == WEFT__WAIT_RWLOCK_WR || kind == WEFT__WAIT_ONCE;
}

/* Reads len bytes through the pipe: the kernel copies them from `addr` (EFAULT if unmapped).
 * A part written before a fault is drained, so that the next read starts clean. */
static bool read_by_pipe(walk *wk, const void *addr, void *out, size_t len)
{
    if (wk->pipe[0] < 0 && pipe2(wk->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return false;
    ssize_t n = write(wk->pipe[1], addr, len);
    if (n > 0 && read(wk->pipe[0], out, (size_t)n) != n)
        return false;
    return n == (ssize_t)len;
}

/* Copies len bytes at addr to out without a fault or a write (weft__peek): false if they
 * cannot be read. */
static bool peek(void *ctx, const void *addr, void *out, size_t len)
{
    walk *wk = ctx;
    if (!wk->no_vm) {
        struct iovec local = {out, len};
        struct iovec remote = {(void *)addr, len};
        ssize_t n = process_vm_readv(wk->pid, &local, 1, &remote, 1, 0);
        if (n == (ssize_t)len)
            return true;
        if (n >= 0 || (errno != EPERM && errno != ENOSYS))
            return false; /* unmapped (EFAULT), or short */
        wk->no_vm = true;
    }
    return read_by_pipe(wk, addr, out, len);
}

/* The lock's holder now, read without a fault or a write; NULL if it cannot be read. */
static const weft_task *holder_of(walk *wk, const void *lock)
{
    const void *holder = NULL;
    return peek(wk, weft__sync_owner_slot(lock), &holder, sizeof holder) ? holder : NULL;
}

static void take(weft_task *t, void *arg)
{
    walk *wk = arg;
    int kind;
    const void *what;
    int64_t deadline, since;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    if (weft__task_wait_snapshot(t, &kind, &what, &deadline, &since) < 0 ||
        deadline != WEFT_FOREVER || !what)
        return;
    const weft_task *target = NULL;
    if (kind == WEFT__WAIT_JOIN)
        target = what;
    else if (lock_kind(kind)) {
        target = holder_of(wk, what);
        if (!target || atomic_load_explicit(&t->word, memory_order_acquire) != word)
            return; /* free, unreadable, or the waiter moved: the lock may be gone */
    } else if (kind == WEFT__WAIT_WAITGROUP)
        wk->ngroup_waits++; /* a group's (or a plain wait group's: no member will match) */
    else
        return;
    if (wk->n == wk->cap) {
        size_t cap = wk->cap ? wk->cap * 2 : 64;
        waiter *v = realloc(wk->v, cap * sizeof *v);
        if (!v)
            return;
        wk->v = v;
        wk->cap = cap;
    }
    wk->v[wk->n++] = (waiter){t, word, kind, what, target, NULL, NULL};
}

/* Sets j's group if its task is a member of one: its spawn cleanup node, the oldest of its
 * locals, read through peek; trusted if the task stayed in the park it was taken in. */
static void read_group(walk *wk, waiter *j)
{
    const weft__node *p;
    if (!peek(wk, &j->t->locals, &p, sizeof p))
        return;
    for (int k = 0; p && k < LOCALS_MAX; k++) {
        weft__node node;
        if (!peek(wk, p, &node, sizeof node))
            return;
        if (node.key == &weft__spawn_cleanup_key)
            return; /* a plain spawn's cleanup: no group's */
        if (node.key == &weft__spawn_wrap_key) {
            const weft_group *g = weft__group_of_node(&node, peek, wk);
            if (g && atomic_load_explicit(&j->t->word, memory_order_acquire) == j->word) {
                j->group = g;
                j->group_wait = weft__group_wait_object(g);
            }
            return;
        }
        p = node.next;
    }
}

static int by_group(const void *a, const void *b)
{
    const member_ref *x = a, *y = b;
    if (x->group_wait != y->group_wait)
        return (uintptr_t)x->group_wait < (uintptr_t)y->group_wait ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The table of group members, for the group waits' edges (none without a group wait). */
static void index_members(walk *wk)
{
    if (!wk->ngroup_waits || !(wk->members = malloc(wk->n * sizeof *wk->members)))
        return;
    for (size_t i = 0; i < wk->n; i++) {
        read_group(wk, &wk->v[i]);
        if (wk->v[i].group_wait)
            wk->members[wk->nmembers++] = (member_ref){wk->v[i].group_wait, i};
    }
    qsort(wk->members, wk->nmembers, sizeof *wk->members, by_group);
}

/* The first member of the group whose waiters park on `group_wait`, or nmembers. */
static size_t first_member(const walk *wk, const void *group_wait)
{
    size_t lo = 0, hi = wk->nmembers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)wk->members[mid].group_wait < (uintptr_t)group_wait)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int by_task(const void *a, const void *b)
{
    const weft_task *x = ((const waiter *)a)->t, *y = ((const waiter *)b)->t;
    return x < y ? -1 : x > y;
}

static waiter *find(const walk *wk, const weft_task *t)
{
    waiter key = {.t = (weft_task *)t};
    return bsearch(&key, wk->v, wk->n, sizeof key, by_task);
}

static bool remembered(weft__cycles *c, const waiter *j)
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

static const char *lock_name(int kind)
{
    switch (kind) {
    case WEFT__WAIT_MUTEX:
        return "mutex";
    case WEFT__WAIT_ONCE:
        return "once";
    default:
        return "rwlock";
    }
}

/* The second reading (see the file comment): every member's holder, then every word. ring[k]
 * waits for ring[k + 1], the last for ring[0]. A group edge needs no second reading: the
 * member's unchanged word says it is still in the group, and the waiter's that it still
 * waits. */
static bool confirmed(walk *wk, waiter **ring, size_t len)
{
    for (size_t k = 0; k < len; k++)
        if (lock_kind(ring[k]->kind) && holder_of(wk, ring[k]->what) != ring[k]->target)
            return false;
    for (size_t k = 0; k < len; k++)
        if (atomic_load_explicit(&ring[k]->t->word, memory_order_acquire) != ring[k]->word)
            return false;
    return true;
}

static void describe(weft__dumpbuf *b, const waiter *j, const waiter *next)
{
    const weft__worker *w = __atomic_load_n(&j->t->worker, __ATOMIC_RELAXED);
    weft__dumpbuf_printf(b, "    task %llu \"", (unsigned long long)id_of(j->t));
    weft__dumpbuf_text(b, j->t->name, sizeof j->t->name - 1);
    weft__dumpbuf_printf(b, "\" on worker %u ", w ? w->index : 0u);
    if (j->kind == WEFT__WAIT_JOIN)
        weft__dumpbuf_printf(b, "joins task %llu\n", (unsigned long long)id_of(j->target));
    else if (j->kind == WEFT__WAIT_WAITGROUP)
        weft__dumpbuf_printf(b, "waits for group %p, which task %llu belongs to\n",
                             (const void *)next->group, (unsigned long long)id_of(next->t));
    else
        weft__dumpbuf_printf(b, "waits for %s %p, held by task %llu\n", lock_name(j->kind), j->what,
                             (unsigned long long)id_of(j->target));
}

/* Reports the circle ring[0..len) (each waits for the next, the last for the first) unless it
 * was reported already: turned to start at its lowest record (its key: see remembered). */
static void report(weft__runtime *rt, weft__cycles *c, walk *wk, waiter **ring, size_t len)
{
    size_t low = 0;
    for (size_t k = 1; k < len; k++)
        if (ring[k]->t < ring[low]->t)
            low = k;
    if (!confirmed(wk, ring, len) || remembered(c, ring[low]))
        return;
    weft__dumpbuf b = {0};
    weft__dumpbuf_printf(&b,
                         "weft: %zu tasks wait for each other in a circle, while the rest of "
                         "the program runs on:\n",
                         len);
    for (size_t k = 0; k < len; k++)
        describe(&b, ring[(low + k) % len], ring[(low + k + 1) % len]);
    weft__log(rt, WEFT_LOG_WARN, b.p ? b.p : "", b.len);
    free(b.p);
}

/* ---- The search ----
 * Depth first, from each record not yet reached, in the table's order. A record is white
 * (not reached), grey (on the path: `frame` holds its place) or black (all it leads to
 * searched). An edge to a grey record closes a circle: the path from it to the top. */
enum { WHITE, GREY, BLACK };

typedef struct frame {
    size_t i;         /* its waiter */
    size_t at, end;   /* a group wait: the members left to try, in walk.members */
    bool single_done; /* a join or a lock: its one edge tried */
} frame;

typedef struct search {
    frame *path;
    size_t depth;
    uint8_t *color;
    size_t *place; /* a grey record's frame */
    /* A group's members all searched: set on the first member_ref of each group whose scan
     * ended. Later waiters of that group skip them: each is black, or on the path, and then
     * the first scan found the circle through it (a later waiter's would be another circle
     * through the same records, not reported). */
    bool *scanned;
    waiter **ring;
    size_t nedges;
} search;

/* The next record the top frame's waiter waits for, or SIZE_MAX when none is left. */
static size_t next_edge(const walk *wk, search *s, frame *f)
{
    const waiter *j = &wk->v[f->i];
    if (j->kind != WEFT__WAIT_WAITGROUP) {
        if (f->single_done)
            return SIZE_MAX;
        f->single_done = true;
        const waiter *to = find(wk, j->target);
        return to ? (size_t)(to - wk->v) : SIZE_MAX;
    }
    if (f->at < f->end && s->scanned[f->at])
        f->at = f->end;
    if (f->at == f->end)
        return SIZE_MAX;
    return wk->members[f->at++].i;
}

static void push(const walk *wk, search *s, size_t i)
{
    frame f = {.i = i};
    if (wk->v[i].kind == WEFT__WAIT_WAITGROUP) {
        f.at = f.end = first_member(wk, wk->v[i].what);
        while (f.end < wk->nmembers && wk->members[f.end].group_wait == wk->v[i].what)
            f.end++;
    }
    s->color[i] = GREY;
    s->place[i] = s->depth;
    s->path[s->depth++] = f;
}

static void pop(const walk *wk, search *s)
{
    frame *f = &s->path[--s->depth];
    s->color[f->i] = BLACK;
    if (wk->v[f->i].kind == WEFT__WAIT_WAITGROUP && f->at == f->end && f->end > 0) {
        /* Its group's first member_ref marks the whole group searched. */
        size_t first = first_member(wk, wk->v[f->i].what);
        if (first < f->end)
            s->scanned[first] = true;
    }
}

static void search_from(weft__runtime *rt, weft__cycles *c, walk *wk, search *s, size_t root)
{
    push(wk, s, root);
    while (s->depth) {
        size_t to = SIZE_MAX;
        if (s->nedges < EDGES_MAX) {
            to = next_edge(wk, s, &s->path[s->depth - 1]);
            s->nedges += to != SIZE_MAX;
        }
        if (to == SIZE_MAX) {
            pop(wk, s);
        } else if (s->color[to] == WHITE) {
            push(wk, s, to);
        } else if (s->color[to] == GREY) {
            size_t len = 0;
            for (size_t k = s->place[to]; k < s->depth; k++)
                s->ring[len++] = &wk->v[s->path[k].i];
            report(rt, c, wk, s->ring, len);
        }
    }
}

static void find_circles(weft__runtime *rt, weft__cycles *c, walk *wk)
{
    search s = {
        .path = malloc(wk->n * sizeof *s.path),
        .color = calloc(wk->n, sizeof *s.color),
        .place = malloc(wk->n * sizeof *s.place),
        .scanned = calloc(wk->nmembers + 1, sizeof *s.scanned),
        .ring = malloc(wk->n * sizeof *s.ring),
    };
    if (s.path && s.color && s.place && s.scanned && s.ring) {
        for (size_t i = 0; i < wk->n; i++)
            if (s.color[i] == WHITE)
                search_from(rt, c, wk, &s, i);
    }
    free(s.path);
    free(s.color);
    free(s.place);
    free(s.scanned);
    free(s.ring);
}

/* Forgets the circles that are gone: one whose lowest record is no longer taken in that very
 * park (its word moved) has broken up, and its slot is free. The table held every circle
 * ever reported: once 64 had come and gone, every later circle was reported at every walk.
 * wk->v is sorted. */
static void forget_gone(weft__cycles *c, const walk *wk)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < c->nreported; i++) {
        const waiter *j = wk->n ? find(wk, c->reported[i].t) : NULL;
        if (j && j->word == c->reported[i].word)
            c->reported[kept++] = c->reported[i];
    }
    c->nreported = kept;
}

void weft__cycles_check(weft__runtime *rt, weft__cycles *c)
{
    walk wk = {.pid = getpid(), .pipe = {-1, -1}};
    weft__task_each(rt, take, &wk);
    if (wk.n > 1)
        qsort(wk.v, wk.n, sizeof wk.v[0], by_task);
    forget_gone(c, &wk);
    if (wk.n) {
        index_members(&wk);
        find_circles(rt, c, &wk);
    }
    free(wk.v);
    free(wk.members);
    if (wk.pipe[0] >= 0) {
        close(wk.pipe[0]);
        close(wk.pipe[1]);
    }
}
