/* Provided buffers for the io_uring backend's multishot receives (uring_bufs.c): one buffer
 * ring per worker, registered with the kernel, and per fd the data the kernel delivered into
 * it that no read has taken yet. A buffer belongs to the kernel while it is in the ring, and
 * to one fd's chain from its completion until a read has copied all of it out (or the fd is
 * forgotten); then it goes back into the ring. Worker thread only. */
#ifndef WEFT_IO_URING_BUFS_H
#define WEFT_IO_URING_BUFS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <liburing.h>

#include "backend.h"

/* What the ring knows about one fd's multishot receive. owner: worker. */
/* A receive's generation travels in 31 bits of its user_data (uring.c): the record's own
 * generation wraps within them, so that a completion's tag always compares equal to it. */
#define WEFT__UBUF_GEN_MASK 0x7fffffffu

typedef struct weft__ubuf_fd {
    uint32_t gen;      /* bumped when the fd is forgotten: completions tagged with an older
                        * one belong to a closed file and only give their buffer back */
    uint32_t fdgen;    /* the fd table's generation when the receive was armed: a different
                        * one means the number was closed behind weft's back and reused */
    int32_t head;      /* buffered data: the first buffer id of the chain, -1 when empty */
    int32_t tail;      /* the last one (valid while head >= 0) */
    int32_t err;       /* an error the kernel reported, not yet returned to a read; 0 none */
    uint8_t armed;     /* a multishot receive is in flight (its last CQE not yet seen) */
    uint8_t eof;       /* the peer's end of stream came after the buffered data: sticky */
    uint8_t off;       /* not a socket (or the kernel refuses multishot on it): plain ring
                        * operations for this fd until it is forgotten */
    uint8_t nobufs;    /* the receive stopped for want of buffers: the next read runs a
                        * single-shot one into the caller's buffer before arming again */
    uint8_t capped;    /* the armed receive was cancelled for holding WEFT__UBUF_FD_CAP
                        * buffers: it stops, and the read that empties the chain arms again */
    uint8_t broken;    /* the receive met an error (err, reported once): sticky, so that
                        * writes stop being sent behind (uring.c's send_behind) */
    uint8_t wshut;     /* weft_shutdown closed the write half: writes are not sent behind
                        * (each gets the kernel's EPIPE) */
    uint8_t probed;    /* the first read looked at the socket's domain (uring.c) */
    uint32_t nbufs;    /* buffers in the chain */
    uint64_t inflight; /* the user_data of the armed receive, for a targeted cancel */
} weft__ubuf_fd;

/* The most buffers one fd's chain holds before its receive is stopped (128 KiB): past it the
 * bytes wait in the socket, whose own buffer then pushes back on the peer, and a connection
 * nobody reads cannot take the buffers every other connection of the worker needs. */
#define WEFT__UBUF_FD_CAP 64

typedef struct weft__ubufs {
    struct io_uring_buf_ring *br; /* shared with the kernel: we add, it takes */
    char *mem;                    /* the mapping: the ring, then the buffers */
    size_t memlen;
    uint32_t *len;      /* per buffer id: bytes the kernel put in it */
    uint32_t *off;      /* per buffer id: bytes already read out of it */
    int32_t *next;      /* per buffer id: the next buffer of its fd's chain, -1 at the end */
    weft__ubuf_fd *fds; /* indexed by fd, grown on demand */
    size_t nfds;
    weft__worker *w;
} weft__ubufs;

/* The buffer group id weft registers (one ring, one group). */
#define WEFT__UBUF_GROUP 0

/* Maps and registers the buffer ring. Returns 0 or -errno (the kernel lacks provided-buffer
 * rings: the caller goes without multishot receives). WEFT_COLD. */
int weft__ubufs_init(weft__ubufs *b, struct io_uring *ring, weft__worker *w);
/* Unregisters (when `ring` is not NULL) and frees everything. */
void weft__ubufs_fini(weft__ubufs *b, struct io_uring *ring);
/* fd's record, growing the table as needed; NULL without memory. The pointer is good until
 * the next park. */
weft__ubuf_fd *weft__ubufs_fd(weft__ubufs *b, int fd);
/* The record of fd if it has one, else NULL. */
static inline weft__ubuf_fd *weft__ubufs_find(weft__ubufs *b, int fd)
{
    return fd >= 0 && (size_t)fd < b->nfds ? &b->fds[fd] : NULL;
}
/* Takes one CQE of fd's receive armed under generation gen. Returns true if fd's readers
 * should be woken (data, end of stream or an error arrived, or the receive stopped). */
bool weft__ubufs_complete(weft__ubufs *b, int fd, uint32_t gen, int res, unsigned flags);
/* Copies buffered data of f into iov (at most the total length), giving back every buffer
 * read to its end, unless `peek`. Returns the bytes copied (0 if nothing is buffered). */
size_t weft__ubufs_copy(weft__ubufs *b, weft__ubuf_fd *f, const struct iovec *iov, int iovcnt,
                        bool peek);
/* Takes up to len bytes of f's buffered data without copying them (MSG_TRUNC on a stream: the
 * kernel's TCP receive discards them), giving back every buffer passed, unless `peek` (which
 * only counts them). Returns the bytes taken or counted. */
size_t weft__ubufs_skip(weft__ubufs *b, weft__ubuf_fd *f, size_t len, bool peek);
/* Gives back f's buffered data and starts a new generation: nothing of the old file is
 * delivered any more. The caller cancels the receive in flight (f->inflight) itself. */
void weft__ubufs_drop(weft__ubufs *b, weft__ubuf_fd *f);

#endif
