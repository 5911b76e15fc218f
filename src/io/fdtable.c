/* The fd table: per-fd kind, readiness and waiters, below both the backends and the reactor.
 * Readiness is kept as edges not yet consumed (a wait returns at once if one arrived since the
 * last wait), which is what makes edge-triggered registration lose no wake-up. Each record
 * has a generation, bumped when the fd is forgotten, so a task parked on a number that was
 * closed under it wakes with -EBADF instead of waiting on whatever gets the number next.
 * The only park of the readiness path is in weft__fdtable_wait's two halves (backend.h).
 *
 * Several waiters per direction. Tasks waiting for the same direction of one fd queue in
 * arrival order (Go serialises them the same way, on the fd's lock). An edge wakes only the
 * first. When a waiter leaves having consumed an edge, the one behind it may still have
 * something to do (ten datagrams came under one edge; the first waiter took one), so the
 * edge is handed on: marked again and the new first woken, which retries its call and waits
 * again if that says EAGAIN. A lone waiter, the common case, pays for none of this. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "backend.h"
#include "../wake.h"
#include "../wake_local.h"
#include "../park_local.h"

int weft__fdtable_grow(weft__io *io, int fd)
{
    if (fd < 0)
        return -EBADF;
    /* Only for an open fd: a number the kernel has handed out is bounded by its own table,
     * while a garbage one (weft_close(30000000)) would cost memory in proportion. */
    int r = weft__sys_fcntl(&io->w->sys, fd, F_GETFD, 0);
    if (r < 0)
        return r;
    size_t n = io->nfds ? io->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    weft__fdrec *fds = weft__realloc(io->w, io->fds, n * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    memset(fds + io->nfds, 0, (n - io->nfds) * sizeof *fds);
    io->fds = fds;
    io->nfds = n;
    return 0;
}

WEFT_NOINLINE int weft__fdtable_classify(weft__io *io, int fd)
{
    weft__fdrec *rec;
    int r = weft__fdtable_get(io, fd, &rec);
    if (r < 0)
        return r;
    if (rec->kind)
        return rec->kind;
    weft__sys *sys = &io->w->sys;
    struct stat st;
    r = weft__sys_fstat(sys, fd, &st);
    if (r < 0)
        return r;
    int kind = WEFT__FD_POLLED;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) {
        kind = WEFT__FD_FILE;
    } else if (S_ISFIFO(st.st_mode)) {
        kind = WEFT__FD_STREAM;
    } else if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        r = weft__sys_getsockopt(sys, fd, SOL_SOCKET, SO_TYPE, &type, &len);
        if (r < 0)
            return r;
        if (type == SOCK_STREAM)
            kind = WEFT__FD_STREAM;
    }
    io->fds[fd].sock = S_ISSOCK(st.st_mode);
    if (kind == WEFT__FD_FILE && S_ISREG(st.st_mode)) {
        /* A cached read can be served on the worker's thread (RWF_NOWAIT), but an O_DIRECT
         * read would wait for the device there: those keep to the blocking pool. */
        int fl = weft__sys_fcntl(sys, fd, F_GETFL, 0);
        if (fl < 0)
            return fl;
        io->fds[fd].nowait = !(fl & O_DIRECT);
        io->fds[fd].direct = !!(fl & O_DIRECT);
    }
    if (kind != WEFT__FD_FILE) {
        /* Go's rule: an fd weft waits on must not block the worker's thread, whoever opened
         * it. The flag belongs to the open file description, shared with every process and
         * fd that holds it (documented in weft.h). */
        int fl = weft__sys_fcntl(sys, fd, F_GETFL, 0);
        if (fl < 0)
            return fl;
        if (!(fl & O_NONBLOCK)) {
            r = weft__sys_fcntl(sys, fd, F_SETFL, fl | O_NONBLOCK);
            if (r < 0)
                return r;
        }
    }
    io->fds[fd].kind = (uint8_t)kind;
    return kind;
}

uint32_t weft__fdtable_gen(weft__io *io, int fd)
{
    return fd >= 0 && (size_t)fd < io->nfds ? io->fds[fd].gen : 0;
}

/* Wakes q's first waiter. Called on the thread that drives io's worker (its poll, or one of
 * its tasks): the wake names that worker, so that the commonest one (a parked task of this
 * worker: fd waiters are never moved) is pushed without looking the worker up. */
static void wake_first(const weft__io *io, const weft__fdq *q)
{
    if (q->head && q->head->waker.task)
        (void)weft__wake_local(io->w, q->head->waker.task, q->head->waker.epoch);
}

void weft__fdtable_ready(weft__io *io, int fd, unsigned mask)
{
    if (fd < 0 || (size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    rec->ready |= (uint8_t)(mask & (WEFT_READABLE | WEFT_WRITABLE));
    if (mask & WEFT_READABLE)
        rec->drained = 0;
    if (mask & WEFT__HUP)
        rec->hup = 1; /* end of stream: reads return at once from now on */
    if (mask & WEFT_READABLE)
        wake_first(io, &rec->rd);
    if (mask & WEFT_WRITABLE)
        wake_first(io, &rec->wr);
}

bool weft__fdtable_waited(const weft__io *io, int fd, unsigned dirs)
{
    if (fd < 0 || (size_t)fd >= io->nfds)
        return false;
    const weft__fdrec *rec = &io->fds[fd];
    return ((dirs & WEFT_READABLE) && rec->rd.head) || ((dirs & WEFT_WRITABLE) && rec->wr.head);
}

void weft__fdtable_drop_edges(weft__io *io, int fd, unsigned dirs)
{
    if (fd >= 0 && (size_t)fd < io->nfds)
        io->fds[fd].ready &= (uint8_t) ~(dirs & (WEFT_READABLE | WEFT_WRITABLE));
}

void weft__fdtable_undrain(weft__io *io, int fd)
{
    if (fd >= 0 && (size_t)fd < io->nfds)
        io->fds[fd].drained = 0;
}

static void enqueue(weft__fdq *q, weft__fdwaiter *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

/* Takes n out of q (a short walk: waiters on one fd and direction are few). */
static void dequeue(weft__fdq *q, weft__fdwaiter *n)
{
    weft__fdwaiter *prev = NULL;
    for (weft__fdwaiter *p = q->head; p; prev = p, p = p->next) {
        if (p != n)
            continue;
        if (prev)
            prev->next = n->next;
        else
            q->head = n->next;
        if (q->tail == n)
            q->tail = prev;
        return;
    }
}

/* The directions of `events` in which the waiter (nodes rd, wr) is first and an edge waits. */
static unsigned mine(const weft__fdrec *rec, int events, const weft__fdwaiter *rd,
                     const weft__fdwaiter *wr)
{
    unsigned m = 0;
    if ((events & WEFT_READABLE) && rec->rd.head == rd && (rec->ready & WEFT_READABLE))
        m |= WEFT_READABLE;
    if ((events & WEFT_WRITABLE) && rec->wr.head == wr && (rec->ready & WEFT_WRITABLE))
        m |= WEFT_WRITABLE;
    return m;
}

/* Leaves queue q (direction dir). If a waiter is left behind and this one used an edge of
 * dir (`used`) or one waits unconsumed, the next is woken with the edge. */
static void leave_slow(weft__fdrec *rec, weft__fdq *q, weft__fdwaiter *n, unsigned dir,
                       unsigned used)
{
    dequeue(q, n);
    if (q->head && ((used & dir) || (rec->ready & dir))) {
        rec->ready |= (uint8_t)dir;
        weft_waker_wake(q->head->waker);
    }
}

static inline void leave(weft__fdrec *rec, weft__fdq *q, weft__fdwaiter *n, unsigned dir,
                         unsigned used)
{
    if (weft_likely(q->head == n && !n->next)) { /* alone: the common case */
        q->head = q->tail = NULL;
        return;
    }
    leave_slow(rec, q, n, dir, used);
}

/* The commonest wait, apart (backend.h): one direction, nobody else queued on it, no
 * deadline (a connection's reader waiting for its next request). One node, no wait record
 * (the short park builds its own), a small frame. Same returns as weft__fdtable_wait. */
int weft__fdtable_wait_alone(weft__io **iop, weft__fdrec *rec, int fd, unsigned dir)
{
    weft__io *io = *iop;
    weft__worker *w = io->w;
    weft_task *t = w->current;
    uint32_t gen = rec->gen;
    weft__fdwaiter n;
    n.next = NULL;
    weft__fdq *q = dir == WEFT_READABLE ? &rec->rd : &rec->wr;
    q->head = q->tail = &n;
    for (;;) {
        n.waker = weft__waker_of(t);
        io->nwaiters++;
        int r = weft__park_forever_local(w, WEFT__WAIT_FD, (const void *)(intptr_t)fd, NULL, NULL);
        w = t->worker; /* re-read after the park (the migration rule) */
        io = w->io;
        *iop = io;
        io->nwaiters--;
        rec = &io->fds[fd];
        if (rec->gen != gen)
            return -EBADF; /* forgotten: the reset emptied the queues */
        q = dir == WEFT_READABLE ? &rec->rd : &rec->wr;
        /* Others may have queued behind us meanwhile; we are still first. */
        unsigned m = (rec->ready & dir) ? dir : 0;
        if (m || r < 0) { /* an edge that raced a cancellation wins */
            rec->ready &= (uint8_t)~m;
            leave(rec, q, &n, dir, m);
            return m ? (int)m : r;
        }
    }
}

int weft__fdtable_wait_queued(weft__io **iop, int fd, int events, int64_t deadline)
{
    weft__io *io = *iop;
    weft__worker *w = io->w;
    weft_task *t = w->current;
    weft__fdrec *rec;
    int r = weft__fdtable_get(io, fd, &rec);
    if (r < 0)
        return r;
    uint32_t gen = rec->gen;
    weft__fdwaiter nrd, nwr;
    if (events & WEFT_READABLE)
        enqueue(&rec->rd, &nrd);
    if (events & WEFT_WRITABLE)
        enqueue(&rec->wr, &nwr);
    unsigned m;
    for (;;) {
        m = mine(rec, events, &nrd, &nwr);
        if (m)
            break;
        nrd.waker = nwr.waker = weft__waker_of(t);
        io->nwaiters++;
        weft__wait wr = {
            .kind = WEFT__WAIT_FD, .what = (const void *)(intptr_t)fd, .deadline = deadline};
        r = weft__park(w, &wr);
        w = t->worker; /* re-read after the park (the migration rule) */
        io = w->io;
        *iop = io; /* the caller's I/O state is the resuming worker's from here on */
        io->nwaiters--;
        rec = &io->fds[fd];
        if (rec->gen != gen)
            return -EBADF; /* forgotten: the reset emptied the queues */
        if (r < 0) {
            m = mine(rec, events, &nrd, &nwr); /* an edge that raced the deadline wins */
            break;
        }
    }
    rec->ready &= (uint8_t)~m;
    if (events & WEFT_READABLE)
        leave(rec, &rec->rd, &nrd, WEFT_READABLE, m);
    if (events & WEFT_WRITABLE)
        leave(rec, &rec->wr, &nwr, WEFT_WRITABLE, m);
    return m ? (int)m : r;
}

/* Wakes every waiter of q and empties it; they see the new generation. */
static void wake_all(weft__fdq *q)
{
    for (weft__fdwaiter *n = q->head, *next; n; n = next) {
        next = n->next;
        weft_waker_wake(n->waker);
    }
    q->head = q->tail = NULL;
}

static void reset_rec(weft__fdrec *rec)
{
    rec->watched = 0;
    rec->ready = 0;
    rec->drained = 0;
    rec->hup = 0;
    rec->kind = 0;
    rec->nowait = 0;
    rec->direct = 0;
    rec->sock = 0;
    rec->wshut = 0;
    rec->gen++;
    wake_all(&rec->rd);
    wake_all(&rec->wr);
}

void weft__fdtable_reset(weft__io *io, int fd)
{
    if (fd >= 0 && (size_t)fd < io->nfds)
        reset_rec(&io->fds[fd]);
}

void weft__fdtable_fresh(weft__io *io, int fd, int kind)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= io->nfds) {
        /* Nothing to forget; a known kind is worth a record (it saves the classification's
         * system calls at the first operation). Without memory it is found out later. */
        weft__fdrec *rec;
        if (kind && weft__fdtable_get(io, fd, &rec) == 0) {
            rec->kind = (uint8_t)kind;
            rec->sock = kind == WEFT__FD_STREAM; /* weft__io_fd_known's callers (io.h) */
        }
        return;
    }
    weft__fdrec *rec = &io->fds[fd];
    if (rec->watched || rec->ready || rec->drained || rec->hup || rec->kind || rec->rd.head ||
        rec->wr.head)
        reset_rec(rec);
    rec->kind = (uint8_t)kind;
    rec->sock = kind == WEFT__FD_STREAM;
    rec->wshut = 0;
}

WEFT_COLD void weft__fdtable_fini(weft__io *io)
{
    weft__free(io->w, io->fds);
    io->fds = NULL;
    io->nfds = 0;
}
