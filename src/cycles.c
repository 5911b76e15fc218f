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
 * read is a record address only; it is followed only if the table has that record. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cycles.h"
#include "dump.h"
#include "log.h"
#include "scheduler.h"
#include "sync_internal.h"
#include "task.h"
#include "worker.h"

typedef struct waiter {
    weft_task *t;
    uint64_t word;
    int kind;
    const void *what;        /* the joined task, or the lock */
    const weft_task *target; /* the task it waits for */
} waiter;

typedef struct walk {
    waiter *v;
    size_t n, cap;
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

/* Reads a word through the pipe: the kernel copies it from `addr` (EFAULT if unmapped). */
static bool read_by_pipe(walk *wk, const void *addr, void *out)
{
    if (wk->pipe[0] < 0 && pipe2(wk->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return false;
    if (write(wk->pipe[1], addr, sizeof(void *)) != (ssize_t)sizeof(void *))
        return false;
    return read(wk->pipe[0], out, sizeof(void *)) == (ssize_t)sizeof(void *);
}

/* The lock's holder now, read without a fault or a write; NULL if it cannot be read. */
static const weft_task *holder_of(walk *wk, const void *lock)
{
    const void *holder = NULL;
    const void *slot = weft__sync_owner_slot(lock);
    if (!wk->no_vm) {
        struct iovec local = {&holder, sizeof holder};
        struct iovec remote = {(void *)slot, sizeof holder};
        ssize_t n = process_vm_readv(wk->pid, &local, 1, &remote, 1, 0);
        if (n == (ssize_t)sizeof holder)
            return holder;
        if (n >= 0 || (errno != EPERM && errno != ENOSYS))
            return NULL; /* unmapped (EFAULT), or short */
        wk->no_vm = true;
    }
    return read_by_pipe(wk, slot, &holder) ? holder : NULL;
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
    const weft_task *target;
    if (kind == WEFT__WAIT_JOIN)
        target = what;
    else if (lock_kind(kind)) {
        target = holder_of(wk, what);
        if (!target || atomic_load_explicit(&t->word, memory_order_acquire) != word)
            return; /* free, unreadable, or the waiter moved: the lock may be gone */
    } else
        return;
    if (wk->n == wk->cap) {
        size_t cap = wk->cap ? wk->cap * 2 : 64;
        waiter *v = realloc(wk->v, cap * sizeof *v);
        if (!v)
            return;
        wk->v = v;
        wk->cap = cap;
    }
    wk->v[wk->n++] = (waiter){t, word, kind, what, target};
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

/* The second reading (see the file comment): every member's holder, then every word. */
static bool confirmed(walk *wk, waiter *start)
{
    waiter *j = start;
    do {
        if (lock_kind(j->kind) && holder_of(wk, j->what) != j->target)
            return false;
        j = find(wk, j->target);
    } while (j != start);
    do {
        if (atomic_load_explicit(&j->t->word, memory_order_acquire) != j->word)
            return false;
        j = find(wk, j->target);
    } while (j != start);
    return true;
}

/* Reports the circle starting at `start` if it is one: each member's target found in the
 * table, back to start, confirmed, and start the lowest record of the circle (so that a
 * circle is reported once, not once per member). */
static void follow(weft__runtime *rt, weft__cycles *c, walk *wk, waiter *start)
{
    waiter *j = start;
    size_t len = 0;
    do {
        if (j->t < start->t || ++len > wk->n)
            return;
        j = find(wk, j->target);
        if (!j)
            return;
    } while (j != start);
    if (!confirmed(wk, start) || remembered(c, start))
        return;
    weft__dumpbuf b = {0};
    weft__dumpbuf_printf(&b,
                         "weft: %zu tasks wait for each other in a circle, while the rest of "
                         "the program runs on:\n",
                         len);
    j = start;
    do {
        const weft__worker *w = __atomic_load_n(&j->t->worker, __ATOMIC_RELAXED);
        weft__dumpbuf_printf(&b, "    task %llu \"", (unsigned long long)id_of(j->t));
        weft__dumpbuf_text(&b, j->t->name, sizeof j->t->name - 1);
        weft__dumpbuf_printf(&b, "\" on worker %u ", w ? w->index : 0u);
        if (j->kind == WEFT__WAIT_JOIN)
            weft__dumpbuf_printf(&b, "joins task %llu\n", (unsigned long long)id_of(j->target));
        else
            weft__dumpbuf_printf(&b, "waits for %s %p, held by task %llu\n", lock_name(j->kind),
                                 j->what, (unsigned long long)id_of(j->target));
        j = find(wk, j->target);
    } while (j != start);
    weft__log(rt, WEFT_LOG_WARN, b.p ? b.p : "", b.len);
    free(b.p);
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
    if (wk.n > 1 || (wk.n == 1 && wk.v[0].target == wk.v[0].t)) {
        for (size_t i = 0; i < wk.n; i++)
            follow(rt, c, &wk, &wk.v[i]);
    }
    free(wk.v);
    if (wk.pipe[0] >= 0) {
        close(wk.pipe[0]);
        close(wk.pipe[1]);
    }
}
