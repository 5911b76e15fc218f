/* The reactor's backend contract. A backend watches fds for readiness (edge-triggered: an
 * fd is registered once and reported on each new edge), waits with a nanosecond timeout,
 * and can be woken from any thread. It reports events through weft__io_ready(). epoll is the
 * first; io_uring and kqueue implement the same table without touching the layers above. */
#ifndef WEFT_IO_BACKEND_H
#define WEFT_IO_BACKEND_H

#include <stdint.h>

#include "../internal.h"

typedef struct weft__io_ops {
    const char *name;
    /* Sets up io->backend. Returns 0 or -errno. */
    int (*init)(weft__io *io);
    void (*fini)(weft__io *io);
    /* Starts watching fd for both directions, edge-triggered. Returns 0 or -errno
     * (-EPERM for files that cannot be polled). */
    int (*watch)(weft__io *io, int fd);
    /* Stops watching fd (which may already be closed). */
    void (*unwatch)(weft__io *io, int fd);
    /* Waits up to timeout_ns (-1 forever, 0 not at all) and reports every ready fd through
     * weft__io_ready(). Returns the number of events or -errno. Owner thread only. */
    int (*poll)(weft__io *io, int64_t timeout_ns);
    /* Makes a poll in progress return soon. Any thread; async-signal-safe. */
    void (*notify)(weft__io *io);
} weft__io_ops;

/* Per-fd readiness state. owner: worker. */
typedef struct weft__fdrec {
    weft_waker rd, wr; /* the tasks waiting for each direction */
    uint32_t gen;      /* bumped when the fd is forgotten, so parked waiters notice */
    uint8_t watched;
    uint8_t ready; /* WEFT_READABLE|WEFT_WRITABLE edges not yet consumed */
} weft__fdrec;

struct weft__io {
    const weft__io_ops *ops;
    void *backend; /* the backend's private state */
    weft__worker *w;
    weft__fdrec *fds; /* indexed by fd, grown on demand */
    size_t nfds;
    size_t nwaiters; /* tasks parked in weft_fd_wait */
};

/* Called by a backend's poll for each fd that became ready. */
void weft__io_ready(weft__io *io, int fd, unsigned mask);

extern const weft__io_ops weft__io_epoll;

#endif
