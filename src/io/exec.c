/* Plain execution of a request, the parts that are not inline (exec.h): the kind a request
 * counts under, and the blocking-pool path for regular files. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"

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
    case WEFT__IO_MKDIR:
        return WEFT__SYS_mkdir;
    case WEFT__IO_UNLINK:
        return (q->flags & AT_REMOVEDIR) ? WEFT__SYS_rmdir : WEFT__SYS_unlink;
    case WEFT__IO_RENAME:
        return WEFT__SYS_rename;
    case WEFT__IO_LINK:
        return WEFT__SYS_link;
    case WEFT__IO_SYMLINK:
        return WEFT__SYS_symlink;
    case WEFT__IO_READLINK:
        return WEFT__SYS_readlink;
    case WEFT__IO_TRUNCATE:
        return WEFT__SYS_truncate;
    case WEFT__IO_FTRUNCATE:
        return WEFT__SYS_ftruncate;
    case WEFT__IO_GETDENTS:
        return WEFT__SYS_getdents64;
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

/* The requests on an fd that the pool may run: through a duplicate of it. */
static bool on_fd(const weft__ioreq *q)
{
    switch (q->op) {
    case WEFT__IO_READ:
    case WEFT__IO_WRITE:
    case WEFT__IO_READV:
    case WEFT__IO_WRITEV:
    case WEFT__IO_FSYNC:
    case WEFT__IO_FTRUNCATE:
    case WEFT__IO_GETDENTS:
        return q->fd >= 0;
    default:
        return false;
    }
}

ssize_t weft__io_exec_blocking(weft__worker *w, const weft__ioreq *req, int64_t deadline)
{
    int fault = weft__sys_enter(&w->sys, weft__io_kind(req));
    if (fault < 0)
        return fault;
    /* A deadline already passed: the call would block this thread, so it does not run (weft.h:
     * completes what it can at once, else -ETIMEDOUT). Queued anyway, it ran or not as a pool
     * thread happened to take it before the wait gave up: a write landed on some runs only. */
    if (deadline != WEFT_FOREVER && deadline <= weft__clock_ns())
        return -ETIMEDOUT;
    /* A job waits for a pool thread, and the fd may be closed meanwhile (weft_close wakes
     * the fd's waiters, but a queued job is none) and its number reused: the job would then
     * read, write or truncate the new file. It runs on a duplicate made now (the same open
     * file description: position, flags), closed once it is over (weft_blocking returns only
     * after a started job ended), so a late job still acts on the file it was given. Without
     * an fd for the duplicate (EMFILE), on the number itself, as before. */
    weft__ioreq dup_req;
    int dup = -1;
    if (on_fd(req) && (dup = fcntl(req->fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
        dup_req = *req;
        dup_req.fd = dup;
        req = &dup_req;
    } else if (on_fd(req) && errno == EBADF) {
        return -EBADF;
    }
    blocking_call c = {.req = req};
    int r = weft_blocking(run_blocking, &c, NULL, deadline);
    if (dup >= 0)
        close(dup);
    return r < 0 ? r : c.result;
}
