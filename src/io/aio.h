/* Linux native AIO for the epoll backend's O_DIRECT reads and writes (aio.c): one AIO context
 * per worker, made at the worker's first direct call, whose completions ring an eventfd in
 * the worker's epoll set. Owner: the worker (whichever thread drives it: an AIO context is
 * the process's, not a thread's, so a relief thread may submit and reap as the worker's own
 * did). */
#ifndef WEFT_IO_AIO_H
#define WEFT_IO_AIO_H

#include <stdint.h>
#include <sys/types.h>

#include "backend.h"

/* Operations in flight per worker: the context's size. A read past it goes to the pool. */
#define WEFT__AIO_DEPTH 256

struct iocb;

typedef struct weft__aio {
    unsigned long ctx; /* aio_context_t; valid while state == 1 */
    int evfd;          /* the completions' eventfd, in the worker's epoll set; -1 before */
    int8_t state;      /* 0: not tried yet, 1: ready, -1: unavailable (the pool reads) */
    unsigned inflight; /* taken (queued or submitted), not yet reaped: <= WEFT__AIO_DEPTH */
    unsigned npend;    /* reads queued in pend, submitted together before the next poll */
    struct iocb *pend[WEFT__AIO_DEPTH]; /* on their parked tasks' stacks */
} weft__aio;

/* What weft__aio_rw returns when the blocking pool must do the call instead. */
#define WEFT__AIO_POOL ((ssize_t)INT64_MIN)

static inline void weft__aio_init(weft__aio *a)
{
    *a = (weft__aio){.evfd = -1};
}

/* q (a WEFT__IO_READ or WEFT__IO_WRITE at an offset, of an O_DIRECT regular file) as an AIO
 * read or write: queued for the tick's one io_submit (weft__aio_flush), then the task parks
 * until its completion, uncancellably, since the kernel uses the caller's buffer until then.
 * A write is submitted with RWF_NOWAIT: one that would wait inside io_submit is refused, and
 * the pool does it. A deadline that has passed (-ETIMEDOUT) or a cancel (-ECANCELED) seen
 * before it is queued does nothing; an fd closed while its call is queued gives -EBADF (the
 * fd record's generation moved). Returns the call's result (as pread's or pwrite's: >= 0 or
 * -errno), or WEFT__AIO_POOL where AIO does not take it (no context, the context full, a
 * refusal the pool's call will do or explain). epfd: the worker's epoll set, where the
 * eventfd is registered (at the first call) with `tag` as its event data. Stackful task, on
 * the worker's thread. */
ssize_t weft__aio_rw(weft__io *io, weft__aio *a, int epfd, uint64_t tag, const weft__ioreq *q,
                     int64_t deadline);
/* Submits the reads queued this tick, all in one io_submit where the kernel takes them: the
 * block layer then rings the device once for the batch (on a virtual disk each ring is an
 * exit to the hypervisor, several microseconds). A read the kernel refuses completes at once
 * with the pool as its answer. Returns whether it woke a task so (the poll that follows must
 * not sleep then). Before every poll; loop, owner. */
bool weft__aio_flush(weft__io *io, weft__aio *a);
/* The eventfd fired (an event with the read's `tag`): reaps every completion and wakes its
 * task. Loop, owner. */
void weft__aio_reap(weft__io *io, weft__aio *a);
/* Destroys the context and closes the eventfd. Nothing is in flight by then: each read's task
 * waits for it, and a worker ends after its tasks. */
void weft__aio_fini(weft__io *io, weft__aio *a);

#endif
