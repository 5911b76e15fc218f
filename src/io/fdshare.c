/* Which workers of a runtime know an fd, and forgetting it on every one of them.
 *
 * Each worker keeps its own record of an fd (its epoll registration, io_uring's armed receive
 * and held bytes, what it learnt of the fd's kind), touched by its own thread only. An fd
 * passed between tasks of different workers is known to each worker that used it, so a
 * weft_close on one worker must reach the others before the number is closed: else their
 * waiters stay parked (the close silently drops the fd from their epoll sets), and a new fd
 * that reuses the number inherits their stale record (a registration epoll no longer has, a
 * held end of stream).
 *
 * The runtime keeps, per fd, two masks of workers (bit `index % 64`), in pages of 4,096 fds
 * made at first use and freed with the runtime: those that used it (the I/O entry point sets
 * its worker's bit: a load and a test once the bit is set; only in runtimes of several
 * workers), and those that keep a record of it without I/O (weft_socket and weft_accept record
 * the kind of the fd they made on their worker; weft_server's hand-over on the taker's). The
 * first mask alone says whether another worker may write to the fd (io_uring's sends behind,
 * weft__fdshare_only), so a connection accepted on one worker and served on another still
 * sends behind. A close exchanges both masks for 0 and sends each other worker marked in
 * either a message that forgets the fd there; a task waits for all of them (a wait group on
 * its stack, uncancellable, as the close must not return before the number may be reused)
 * and then closes the fd itself; any other caller leaves the close to the last of them. Fds
 * past the pages (2^20) are not tracked: a close forgets them on its own worker only. */
#include <errno.h>
#include <stdlib.h>

#include "../runtime.h"
#include "../scheduler.h"
#include "../smp.h"
#include "../sync_internal.h"
#include "../worker.h"
#include "backend.h"
#include "io.h"

#define PAGE_FDS WEFT__FDSHARE_PAGE

/* The page of masks that holds fd (made at its first use), or NULL without memory. */
static _Atomic uint64_t *page_of(weft__worker *w, int fd)
{
    _Atomic(_Atomic uint64_t *) *slot = &w->rt->fdshare[(unsigned)fd / PAGE_FDS];
    _Atomic uint64_t *page = atomic_load_explicit(slot, memory_order_acquire);
    if (page)
        return page;
    _Atomic uint64_t *fresh = weft__calloc(w, 2 * PAGE_FDS, sizeof *fresh); /* used, known */
    if (!fresh)
        return NULL;
    /* acq_rel: the zeroed page before the pointer; a loser takes the winner's. */
    if (!atomic_compare_exchange_strong_explicit(slot, &page, fresh, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        weft__free(w, fresh);
        return page;
    }
    return fresh;
}

void weft__fdshare_add(weft__worker *w, int fd)
{
    _Atomic uint64_t *page = page_of(w, fd);
    if (page) /* without memory the fd is not tracked: a close forgets it here only */
        atomic_fetch_or_explicit(&page[WEFT__FDSHARE_USED(fd)], 1ull << (w->index % 64),
                                 memory_order_relaxed);
}

void weft__fdshare_know(weft__worker *w, int fd, bool known)
{
    if (!w->io->fdshare || fd < 0 || (unsigned)fd / PAGE_FDS >= WEFT__FDSHARE_PAGES)
        return;
    uint64_t bit = 1ull << (w->index % 64);
    if (!known) {
        /* Most fds were never marked (weft_open's, a signalfd): a load, no write. */
        _Atomic uint64_t *page =
            atomic_load_explicit(&w->rt->fdshare[(unsigned)fd / PAGE_FDS], memory_order_acquire);
        if (page &&
            (atomic_load_explicit(&page[WEFT__FDSHARE_KNOWN(fd)], memory_order_relaxed) & bit))
            atomic_fetch_and_explicit(&page[WEFT__FDSHARE_KNOWN(fd)], ~bit, memory_order_relaxed);
        return;
    }
    _Atomic uint64_t *page = page_of(w, fd);
    /* Without memory the fd is not tracked: a close forgets it here only. */
    if (page && !(atomic_load_explicit(&page[WEFT__FDSHARE_KNOWN(fd)], memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(&page[WEFT__FDSHARE_KNOWN(fd)], bit, memory_order_relaxed);
}

/* What the workers that forget an fd share: a task's wait group, or (no task to wait) a
 * count of references (one per message, one the sender's) whose last drop frees the job and,
 * for a close, closes the fd. */
typedef struct forget_job {
    weft_waitgroup *wg;
    _Atomic unsigned left;
    bool close_after;
} forget_job;

/* Drops one reference; true if it was the last (the job is freed, and the caller closes the
 * fd if the job says so). */
static bool job_drop(weft__worker *w, forget_job *j)
{
    if (j->wg) {
        weft_waitgroup_done(j->wg); /* touches nothing of j's after its unlock */
        return false;
    }
    if (atomic_fetch_sub_explicit(&j->left, 1, memory_order_acq_rel) != 1)
        return false;
    weft__free(w, j);
    return true;
}

/* On a worker that used the fd: forgets it there, as weft_fd_forget does on its own. */
static void msg_forget(weft__worker *to, void *a, void *b, uint64_t c)
{
    (void)b;
    forget_job *j = a;
    int fd = (int)c;
    weft__io *io = to->io;
    bool close_after = j->close_after;
    if ((size_t)fd < io->nfds) {
        /* The number names the same file until every forget is done when a task waits for
         * them (wg) or the last of them closes it: a weft_fd_forget from outside a task
         * leaves its caller free to close and reuse it meanwhile. */
        io->ops->forget(io, fd, j->wg || close_after);
        weft__fdtable_reset(io, fd);
    }
    if (job_drop(to, j) && close_after)
        weft__io_close_after_jobs(&to->sys, fd);
}

int weft__fdshare_forget_others(weft__worker *w, int fd, bool close_after)
{
    if (!w->io->fdshare || (unsigned)fd / PAGE_FDS >= WEFT__FDSHARE_PAGES)
        return 0;
    _Atomic uint64_t *page =
        atomic_load_explicit(&w->rt->fdshare[(unsigned)fd / PAGE_FDS], memory_order_acquire);
    if (!page)
        return 0;
    /* RMWs: they read the last bit any worker set before them. */
    uint64_t mask =
        atomic_exchange_explicit(&page[WEFT__FDSHARE_USED(fd)], 0, memory_order_relaxed) |
        atomic_exchange_explicit(&page[WEFT__FDSHARE_KNOWN(fd)], 0, memory_order_relaxed);
    weft__runtime *rt = w->rt;
    unsigned n = 0;
    for (unsigned k = 0; k < rt->nworkers; k++)
        n += k != w->index && (mask >> (k % 64) & 1);
    if (n == 0)
        return 0;
    weft_waitgroup wg = WEFT_WAITGROUP_INIT;
    forget_job local = {.wg = &wg, .close_after = close_after}, *j = &local;
    bool waits = weft__blocking_task(w) != NULL;
    if (waits) {
        weft_waitgroup_add(&wg, n);
    } else {
        if (!(j = weft__malloc(w, sizeof *j)))
            return 0; /* no memory: forgotten here only, as an untracked fd */
        *j = (forget_job){.wg = NULL, .left = n + 1, .close_after = close_after};
    }
    for (unsigned k = 0; k < rt->nworkers; k++) {
        if (k == w->index || !(mask >> (k % 64) & 1))
            continue;
        weft__msg m = {msg_forget, j, NULL, (uint64_t)fd};
        if (weft__smp_post(w, &rt->workers[k], &m) < 0)
            job_drop(w, j); /* no memory for the message: that worker keeps its record */
    }
    if (waits) {
        weft__waitgroup_wait_all(&wg);
        return 0;
    }
    /* The sender's reference: if it is the last, every forget is done and the caller
     * closes; else the last forget does. */
    return job_drop(w, j) ? 0 : 1;
}

/* What the workers asked to defer a shutdown share: the asking task's wait group, and how
 * many of them deferred it. */
typedef struct shut_job {
    weft_waitgroup wg;
    _Atomic unsigned deferred;
} shut_job;

/* On a worker that used the fd: the shutdown waits behind its send in flight, if any. */
static void msg_shutdown(weft__worker *to, void *a, void *b, uint64_t c)
{
    (void)b;
    shut_job *j = a;
    int fd = (int)c;
    weft__io *io = to->io;
    if (io->ops->defer_shutdown && io->ops->defer_shutdown(io, fd))
        atomic_fetch_add_explicit(&j->deferred, 1, memory_order_relaxed);
    weft_waitgroup_done(&j->wg); /* touches nothing of j's after its unlock */
}

unsigned weft__fdshare_shutdown_others(weft__worker *w, int fd)
{
    if (!w->io->fdshare || !w->io->ops->defer_shutdown || !weft__blocking_task(w) ||
        (unsigned)fd / PAGE_FDS >= WEFT__FDSHARE_PAGES)
        return 0;
    /* This worker counts as a user of fd from now on: another worker's later writes see it
     * (weft__fdshare_only) and are not sent behind past the shutdown. */
    weft__fdshare_add(w, fd);
    _Atomic uint64_t *page =
        atomic_load_explicit(&w->rt->fdshare[(unsigned)fd / PAGE_FDS], memory_order_acquire);
    if (!page)
        return 0;
    uint64_t mask = atomic_load_explicit(&page[WEFT__FDSHARE_USED(fd)], memory_order_relaxed);
    weft__runtime *rt = w->rt;
    shut_job j = {.wg = WEFT_WAITGROUP_INIT};
    atomic_init(&j.deferred, 0);
    unsigned n = 0;
    for (unsigned k = 0; k < rt->nworkers; k++)
        n += k != w->index && (mask >> (k % 64) & 1);
    if (n == 0)
        return 0;
    weft_waitgroup_add(&j.wg, n);
    for (unsigned k = 0; k < rt->nworkers; k++) {
        if (k == w->index || !(mask >> (k % 64) & 1))
            continue;
        weft__msg m = {msg_shutdown, &j, NULL, (uint64_t)fd};
        if (weft__smp_post(w, &rt->workers[k], &m) < 0)
            weft_waitgroup_done(&j.wg); /* no memory for the message: not deferred there */
    }
    weft__waitgroup_wait_all(&j.wg);
    return atomic_load_explicit(&j.deferred, memory_order_relaxed);
}
