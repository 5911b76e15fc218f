/* Plain execution of a request: the one switch from a weft__ioreq to the system call that
 * does it, shared by the epoll backend (which calls it and waits on EAGAIN), the io_uring
 * backend (accept first, sendfile without splice) and the blocking pool (files). Inline,
 * because it is on every epoll operation's path. */
#ifndef WEFT_IO_EXEC_H
#define WEFT_IO_EXEC_H

#include <fcntl.h>
#include <sys/socket.h>

#include "backend.h"

/* Runs `req` with one plain system call through the sys layer (s may be NULL: uncounted).
 * Returns its result or -errno, -EAGAIN included. POLL and SPLICE are not plain calls
 * (-EINVAL). Any thread. */
static inline ssize_t weft__io_exec(weft__sys *s, const weft__ioreq *q)
{
    switch (q->op) {
    case WEFT__IO_READ:
        return q->off < 0 ? weft__sys_read(s, q->fd, q->buf, q->len)
                          : weft__sys_pread(s, q->fd, q->buf, q->len, (off_t)q->off);
    case WEFT__IO_WRITE:
        return q->off < 0 ? weft__sys_write(s, q->fd, q->buf, q->len)
                          : weft__sys_pwrite(s, q->fd, q->buf, q->len, (off_t)q->off);
    case WEFT__IO_READV:
        return weft__sys_readv(s, q->fd, q->iov, q->iovcnt);
    case WEFT__IO_WRITEV:
        return weft__sys_writev(s, q->fd, q->iov, q->iovcnt);
    case WEFT__IO_RECV:
        return weft__sys_recv(s, q->fd, q->buf, q->len, q->flags);
    case WEFT__IO_SEND:
        return weft__sys_send(s, q->fd, q->buf, q->len, q->flags | MSG_NOSIGNAL);
    case WEFT__IO_RECVMSG:
        return weft__sys_recvmsg(s, q->fd, q->msg, q->flags);
    case WEFT__IO_SENDMSG:
        return weft__sys_sendmsg(s, q->fd, q->msg, q->flags | MSG_NOSIGNAL);
    case WEFT__IO_ACCEPT:
        return weft__sys_accept(s, q->fd, q->addr, q->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    case WEFT__IO_CONNECT:
        return weft__sys_connect(s, q->fd, q->addr, q->alen);
    case WEFT__IO_OPEN:
        return weft__sys_open(s, q->path, q->flags | O_CLOEXEC, q->mode);
    case WEFT__IO_FSYNC:
        return weft__sys_fsync(s, q->fd);
    case WEFT__IO_STAT:
        return weft__sys_stat(s, q->path, q->st);
    case WEFT__IO_SENDFILE:
        return weft__sys_sendfile(s, q->fd, q->fd2, q->offp, q->len);
    case WEFT__IO_MKDIR:
        return weft__sys_mkdir(s, q->path, q->mode);
    case WEFT__IO_UNLINK:
        return weft__sys_unlinkat(s, q->path, q->flags);
    case WEFT__IO_RENAME:
        return weft__sys_rename(s, q->path, q->path2, (unsigned)q->flags);
    case WEFT__IO_LINK:
        return weft__sys_link(s, q->path, q->path2);
    case WEFT__IO_SYMLINK:
        return weft__sys_symlink(s, q->path, q->path2);
    case WEFT__IO_READLINK:
        return weft__sys_readlink(s, q->path, q->out, q->len);
    case WEFT__IO_TRUNCATE:
        return weft__sys_truncate(s, q->path, (off_t)q->off);
    case WEFT__IO_FTRUNCATE:
        return weft__sys_ftruncate(s, q->fd, (off_t)q->off);
    case WEFT__IO_GETDENTS:
        return weft__sys_getdents64(s, q->fd, q->buf, q->len);
    default:
        return -EINVAL; /* POLL and SPLICE are backend operations, not one plain call */
    }
}

#endif
