/* Plain execution of a request: the one switch from a weft__ioreq to the system call that
 * does it, shared by the epoll backend (which calls it inline and waits on EAGAIN), the
 * io_uring backend (accept first, sendfile without splice) and the blocking pool (files). */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "backend.h"

ssize_t weft__io_exec(weft__sys *s, const weft__ioreq *q)
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
    default:
        return -EINVAL; /* POLL and SPLICE are backend operations, not one plain call */
    }
}

int weft__io_kind(const weft__ioreq *q)
{
    switch (q->op) {
    case WEFT__IO_READ:
        return q->off < 0 ? WEFT__SYS_read : WEFT__SYS_pread;
    case WEFT__IO_WRITE:
        return q->off < 0 ? WEFT__SYS_write : WEFT__SYS_pwrite;
    case WEFT__IO_READV:
        return WEFT__SYS_readv;
    case WEFT__IO_WRITEV:
        return WEFT__SYS_writev;
    case WEFT__IO_RECV:
        return WEFT__SYS_recv;
    case WEFT__IO_SEND:
        return WEFT__SYS_send;
    case WEFT__IO_RECVMSG:
        return WEFT__SYS_recvmsg;
    case WEFT__IO_SENDMSG:
        return WEFT__SYS_sendmsg;
    case WEFT__IO_ACCEPT:
        return WEFT__SYS_accept;
    case WEFT__IO_CONNECT:
        return WEFT__SYS_connect;
    case WEFT__IO_OPEN:
        return WEFT__SYS_open;
    case WEFT__IO_FSYNC:
        return WEFT__SYS_fsync;
    case WEFT__IO_STAT:
        return WEFT__SYS_stat;
    case WEFT__IO_SENDFILE:
        return WEFT__SYS_sendfile;
    case WEFT__IO_SPLICE:
        return WEFT__SYS_splice;
    default:
        return -1; /* POLL: a wait, not a call */
    }
}

typedef struct blocking_call {
    const weft__ioreq *req;
    ssize_t result; /* >= 0 or -errno, set on the pool thread */
} blocking_call;

static void *run_blocking(void *arg)
{
    blocking_call *c = arg;
    ssize_t r;
    /* NULL record: this is a pool thread, and the worker counted the call already. */
    do
        r = weft__io_exec(NULL, c->req);
    while (r == -EINTR);
    c->result = r;
    return NULL;
}

ssize_t weft__io_exec_blocking(weft__worker *w, const weft__ioreq *req, int64_t deadline)
{
    int fault = weft__sys_enter(&w->sys, weft__io_kind(req));
    if (fault < 0)
        return fault;
    blocking_call c = {.req = req};
    int r = weft_blocking(run_blocking, &c, NULL, deadline);
    return r < 0 ? r : c.result;
}
