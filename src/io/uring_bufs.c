/* Provided buffers for multishot receives: the buffer ring, and per fd a chain of buffers
 * holding delivered bytes in arrival order. Invariant: every buffer id is in exactly one
 * place, the kernel's ring or one fd's chain; a completion for a stale generation gives its
 * buffer straight back, so forgetting an fd never leaks one. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "uring_bufs.h"

/* 8192 buffers of 2 KiB (16 MiB of address space, committed as the kernel first fills each):
 * enough for every one of 5,000 busy connections to have a message waiting in one tick
 * without the kernel running out (-ENOBUFS stops a connection's receive and costs it a
 * single-shot read), while a bulk transfer still moves 2 KiB per completion. The ring's
 * size must be a power of two, at most 32768. */
#define NBUFS 8192u
#define BUFSZ 2048u

static inline char *buf_addr(const weft__ubufs *b, unsigned bid)
{
    return b->mem + (size_t)NBUFS * sizeof(struct io_uring_buf) + (size_t)bid * BUFSZ;
}

/* Hands buffer bid back to the kernel. The tail store inside advance is a release: the
 * kernel sees the entry's contents before the new tail (liburing's barrier). */
static void recycle(weft__ubufs *b, unsigned bid)
{
    io_uring_buf_ring_add(b->br, buf_addr(b, bid), BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(b->br, 1);
}

WEFT_COLD int weft__ubufs_init(weft__ubufs *b, struct io_uring *ring, weft__worker *w)
{
    memset(b, 0, sizeof *b);
    b->w = w;
    b->memlen = (size_t)NBUFS * (sizeof(struct io_uring_buf) + BUFSZ);
    void *mem;
    int r = weft__sys_mmap(&w->sys, &mem, b->memlen, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r < 0)
        return r;
    b->mem = mem;
    b->br = mem; /* page-aligned, as the kernel requires of the ring */
    b->len = weft__calloc(w, NBUFS, sizeof *b->len);
    b->off = weft__calloc(w, NBUFS, sizeof *b->off);
    b->next = weft__calloc(w, NBUFS, sizeof *b->next);
    if (!b->len || !b->off || !b->next) {
        weft__ubufs_fini(b, NULL);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)b->br, .ring_entries = NBUFS, .bgid = WEFT__UBUF_GROUP};
    r = io_uring_register_buf_ring(ring, &reg, 0);
    if (r < 0) {
        weft__ubufs_fini(b, NULL);
        return r;
    }
    io_uring_buf_ring_init(b->br);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(b->br, buf_addr(b, i), BUFSZ, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(b->br, NBUFS);
    return 0;
}

WEFT_COLD void weft__ubufs_fini(weft__ubufs *b, struct io_uring *ring)
{
    if (ring && b->br)
        io_uring_unregister_buf_ring(ring, WEFT__UBUF_GROUP);
    if (b->mem)
        weft__sys_munmap(&b->w->sys, b->mem, b->memlen);
    weft__free(b->w, b->len);
    weft__free(b->w, b->off);
    weft__free(b->w, b->next);
    weft__free(b->w, b->fds);
    memset(b, 0, sizeof *b);
}

weft__ubuf_fd *weft__ubufs_fd(weft__ubufs *b, int fd)
{
    if ((size_t)fd < b->nfds)
        return &b->fds[fd];
    size_t n = b->nfds ? b->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    weft__ubuf_fd *fds = weft__realloc(b->w, b->fds, n * sizeof *fds);
    if (!fds)
        return NULL;
    for (size_t i = b->nfds; i < n; i++)
        fds[i] = (weft__ubuf_fd){.head = -1, .tail = -1};
    b->fds = fds;
    b->nfds = n;
    return &fds[fd];
}

bool weft__ubufs_complete(weft__ubufs *b, int fd, uint32_t gen, int res, unsigned flags)
{
    weft__ubuf_fd *f = weft__ubufs_find(b, fd);
    bool has_buf = flags & IORING_CQE_F_BUFFER;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (!f || f->gen != gen) {
        if (has_buf)
            recycle(b, bid); /* the file it was for is gone */
        return false;
    }
    if (!(flags & IORING_CQE_F_MORE))
        f->armed = 0; /* the receive's last completion */
    if (res > 0 && has_buf) {
        b->len[bid] = (uint32_t)res;
        b->off[bid] = 0;
        b->next[bid] = -1;
        if (f->head < 0)
            f->head = (int32_t)bid;
        else
            b->next[f->tail] = (int32_t)bid;
        f->tail = (int32_t)bid;
        f->nbufs++;
        return true;
    }
    if (has_buf)
        recycle(b, bid); /* res <= 0 with a buffer: nothing in it */
    if (res == 0)
        f->eof = 1;
    else if (res == -ENOBUFS)
        f->nobufs = 1;
    else if (res == -ENOTSOCK || res == -EINVAL || res == -EOPNOTSUPP)
        f->off = 1; /* refused for this kind of fd: its reads take the plain ring path */
    else if (res != -ECANCELED) {
        f->err = res;
        f->broken = 1;
    }
    return true;
}

/* The walk of the held buffers that both take and skip make: up to the iovecs' room, copied
 * there when `copy` (a constant at each caller, so each gets its own loop), or only counted
 * (a skip's one iovec, whose base may be NULL). Unless `peek`, what was walked is consumed:
 * whole buffers recycled, the first one left trimmed. Returns the bytes walked. */
static inline __attribute__((always_inline)) size_t
walk(weft__ubufs *b, weft__ubuf_fd *f, const struct iovec *iov, int iovcnt, bool peek, bool copy)
{
    size_t total = 0;
    int32_t bid = f->head;
    uint32_t off = bid >= 0 ? b->off[bid] : 0;
    for (int i = 0; i < iovcnt && bid >= 0; i++) {
        char *dst = iov[i].iov_base;
        size_t room = iov[i].iov_len;
        while (room > 0 && bid >= 0) {
            size_t n = b->len[bid] - off;
            if (n > room)
                n = room;
            if (copy) {
                memcpy(dst, buf_addr(b, (unsigned)bid) + off, n);
                dst += n;
            }
            room -= n;
            total += n;
            off += (uint32_t)n;
            if (off < b->len[bid])
                break; /* this iovec is full; the buffer has more */
            int32_t next = b->next[bid];
            if (!peek) {
                recycle(b, (unsigned)bid);
                f->head = next;
                f->nbufs--;
            }
            bid = next;
            off = bid >= 0 ? b->off[bid] : 0;
        }
    }
    if (!peek && f->head >= 0)
        b->off[f->head] = off; /* the rest stays for the next read */
    return total;
}

size_t weft__ubufs_copy(weft__ubufs *b, weft__ubuf_fd *f, const struct iovec *iov, int iovcnt,
                        bool peek)
{
    return walk(b, f, iov, iovcnt, peek, true);
}

size_t weft__ubufs_skip(weft__ubufs *b, weft__ubuf_fd *f, size_t len, bool peek)
{
    struct iovec all = {NULL, len};
    return walk(b, f, &all, 1, peek, false);
}

void weft__ubufs_drop(weft__ubufs *b, weft__ubuf_fd *f)
{
    for (int32_t bid = f->head, next; bid >= 0; bid = next) {
        next = b->next[bid];
        recycle(b, (unsigned)bid);
    }
    uint32_t gen = (f->gen + 1) & WEFT__UBUF_GEN_MASK;
    *f = (weft__ubuf_fd){.gen = gen, .head = -1, .tail = -1};
}
