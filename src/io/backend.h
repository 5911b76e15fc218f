/* The reactor's backend contract. A readiness backend (epoll; kqueue would be another)
 * watches fds edge-triggered and reports events through io->ready(); the layers above
 * then try each system call and wait for readiness on EAGAIN. A completion backend
 * (io_uring) also implements `submit`, which runs one operation to completion for the
 * current task; weft_fd_wait becomes a poll operation there. Both wait with a nanosecond
 * timeout and can be woken from any thread. */
#ifndef WEFT_IO_BACKEND_H
#define WEFT_IO_BACKEND_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../core.h"
#include "io.h"

/* One operation for a completion backend. Fields unused by an op are ignored. */
enum {
    WEFT__IO_READ,    /* fd, buf, len, off (-1: the file position) */
    WEFT__IO_WRITE,   /* fd, buf, len, off */
    WEFT__IO_READV,   /* fd, iov, iovcnt */
    WEFT__IO_WRITEV,  /* fd, iov, iovcnt */
    WEFT__IO_RECV,    /* fd, buf, len, flags */
    WEFT__IO_SEND,    /* fd, buf, len, flags (MSG_NOSIGNAL added) */
    WEFT__IO_RECVMSG, /* fd, msg, flags */
    WEFT__IO_SENDMSG, /* fd, msg, flags */
    WEFT__IO_ACCEPT,  /* fd, addr, addrlen: result is the new fd */
    WEFT__IO_CONNECT, /* fd, addr, alen */
    WEFT__IO_POLL,    /* fd, flags = WEFT_READABLE|WEFT_WRITABLE: result is the ready mask */
    WEFT__IO_OPEN,    /* path, flags, mode: result is the fd */
    WEFT__IO_FSYNC,   /* fd */
};

typedef struct weft__ioreq {
    int op;
    int fd;
    int flags;
    void *buf;
    size_t len;
    int64_t off;
    const struct iovec *iov;
    int iovcnt;
    struct msghdr *msg;
    struct sockaddr *addr;
    socklen_t *addrlen;
    socklen_t alen;
    const char *path;
    mode_t mode;
} weft__ioreq;

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
     * io->ready(). Returns the number of events or -errno. Owner thread only. */
    int (*poll)(weft__io *io, int64_t timeout_ns);
    /* Makes a poll in progress return soon. Any thread; async-signal-safe. */
    void (*notify)(weft__io *io);
    /* Completion backends only (NULL otherwise): runs `req` for the current task, parking
     * until it completes. Returns the operation's result (>= 0 or -errno), -ETIMEDOUT,
     * -ECANCELED, or -EBADF if the fd was forgotten meanwhile. The caller's buffers stay
     * in use until it returns, which it does only once the kernel is done with them. */
    ssize_t (*submit)(weft__io *io, const weft__ioreq *req, int64_t deadline);
    /* Completion backends only: cancels every operation in flight on fd. */
    void (*cancel_fd)(weft__io *io, int fd);
} weft__io_ops;

/* Per-fd readiness state. owner: worker. */
typedef struct weft__fdrec {
    weft_waker rd, wr; /* the tasks waiting for each direction */
    uint32_t gen;      /* bumped when the fd is forgotten, so parked waiters notice */
    uint8_t watched;
    uint8_t ready;   /* WEFT_READABLE|WEFT_WRITABLE edges not yet consumed */
    uint8_t drained; /* a short read emptied the socket; no readable edge since */
    uint8_t hup;     /* the peer hung up or the fd errored: sticky, no edge follows it */
} weft__fdrec;

struct weft__io {
    const weft__io_ops *ops;
    void *backend; /* the backend's private state */
    weft__worker *w;
    weft__fdrec *fds; /* indexed by fd, grown on demand */
    size_t nfds;
    size_t nwaiters; /* tasks parked in weft_fd_wait */
    /* Set by the reactor at init: a backend's poll reports each fd that became ready
     * through it (a callback handed down, so the backend never calls the reactor). */
    void (*ready)(weft__io *io, int fd, unsigned mask);
};

/* Internal event bit beside WEFT_READABLE/WEFT_WRITABLE: hang-up or error seen. */
#define WEFT__HUP 0x4

/* Current generation of fd's record (bumped when it is forgotten). */
static inline uint32_t weft__io_fd_gen(const weft__io *io, int fd)
{
    return fd >= 0 && (size_t)fd < io->nfds ? io->fds[fd].gen : 0;
}

extern const weft__io_ops weft__io_epoll;
#ifdef WEFT_HAVE_URING
extern const weft__io_ops weft__io_uring;
#endif

#endif
