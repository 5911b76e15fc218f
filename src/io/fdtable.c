/* The fd table: per-fd readiness and waiters, below both the backends and the reactor.
 * Readiness is kept as edges not yet consumed (a wait returns at once if one arrived since the
 * last wait), which is what makes edge-triggered registration lose no wake-up. Each record
 * has a generation, bumped when the fd is forgotten, so a task parked on a number that was
 * closed under it wakes with -EBADF instead of waiting on whatever gets the number next.
 * The only park of the readiness path is in weft__fdtable_wait. */
#include <errno.h>
#include <string.h>

#include "backend.h"

int weft__fdtable_grow(weft__io *io, int fd)
{
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

uint32_t weft__fdtable_gen(weft__io *io, int fd)
{
    return fd >= 0 && (size_t)fd < io->nfds ? io->fds[fd].gen : 0;
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
    if ((mask & WEFT_READABLE) && rec->rd.task)
        weft_waker_wake(rec->rd);
    if ((mask & WEFT_WRITABLE) && rec->wr.task)
        weft_waker_wake(rec->wr);
}

/* Whether another task than `t` waits on rec in one of `events`' directions. */
static int busy(const weft__fdrec *rec, int events, const weft_task *t)
{
    return ((events & WEFT_READABLE) && rec->rd.task && rec->rd.task != t) ||
           ((events & WEFT_WRITABLE) && rec->wr.task && rec->wr.task != t);
}

/* Empties the slots `t` holds in fd's record (looked up again: the table may have moved
 * while t was parked). */
static void unclaim(weft__io *io, int fd, const weft_task *t)
{
    weft__fdrec *rec = &io->fds[fd];
    if (rec->rd.task == t)
        rec->rd = (weft_waker){NULL, 0};
    if (rec->wr.task == t)
        rec->wr = (weft_waker){NULL, 0};
}

int weft__fdtable_wait(weft__io *io, int fd, int events, int64_t deadline)
{
    weft__worker *w = io->w;
    weft_task *t = w->current;
    weft__fdrec *rec;
    int r = weft__fdtable_get(io, fd, &rec);
    if (r < 0)
        return r;
    if (busy(rec, events, t))
        return -EBUSY;
    uint32_t gen = rec->gen;
    for (;;) {
        unsigned m = rec->ready & (unsigned)events;
        if (m) {
            rec->ready &= (uint8_t)~m;
            return (int)m;
        }
        weft_waker wk = weft__waker_of(t);
        if (events & WEFT_READABLE)
            rec->rd = wk;
        if (events & WEFT_WRITABLE)
            rec->wr = wk;
        io->nwaiters++;
        weft__wait wr = {.kind = WEFT__WAIT_FD, .what = (const void *)(intptr_t)fd,
                         .deadline = deadline};
        r = weft__park(w, &wr);
        w = t->worker; /* re-read after the park (the migration rule) */
        io = w->io;
        io->nwaiters--;
        unclaim(io, fd, t);
        rec = &io->fds[fd];
        if (rec->gen != gen)
            return -EBADF;
        if (r < 0) {
            m = rec->ready & (unsigned)events;
            if (!m)
                return r;
            rec->ready &= (uint8_t)~m;
            return (int)m;
        }
    }
}

int weft__fdtable_claim(weft__io *io, int fd, int events)
{
    weft_task *t = io->w->current;
    weft__fdrec *rec;
    int r = weft__fdtable_get(io, fd, &rec);
    if (r < 0)
        return r;
    if (busy(rec, events, t))
        return -EBUSY;
    /* The slots only record who waits, for the -EBUSY rule: the epoch is never used. */
    weft_waker me = {t, 0};
    if (events & WEFT_READABLE)
        rec->rd = me;
    if (events & WEFT_WRITABLE)
        rec->wr = me;
    return 0;
}

void weft__fdtable_release(weft__io *io, int fd)
{
    unclaim(io, fd, io->w->current);
}

static void reset_rec(weft__fdrec *rec)
{
    rec->watched = 0;
    rec->ready = 0;
    rec->drained = 0;
    rec->hup = 0;
    rec->gen++;
    weft_waker_wake(rec->rd);
    weft_waker_wake(rec->wr);
}

void weft__fdtable_reset(weft__io *io, int fd)
{
    if (fd >= 0 && (size_t)fd < io->nfds)
        reset_rec(&io->fds[fd]);
}

void weft__fdtable_fresh(weft__io *io, int fd)
{
    if (fd < 0 || (size_t)fd >= io->nfds)
        return;
    weft__fdrec *rec = &io->fds[fd];
    if (rec->watched || rec->ready || rec->drained || rec->hup || rec->rd.task || rec->wr.task)
        reset_rec(rec);
}

WEFT_COLD void weft__fdtable_fini(weft__io *io)
{
    weft__free(io->w, io->fds);
    io->fds = NULL;
    io->nfds = 0;
}
