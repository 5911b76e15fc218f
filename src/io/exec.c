/* Plain execution of a request, the parts that are not inline (exec.h): the kind a request
 * counts under, and the blocking-pool path for regular files. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Uses of an fd by number that may outlast a weft_close from another task: pool jobs, queued
 * or running, and io_uring's sendfile (its splices look the number up when they start). A job
 * once ran on a duplicate of its fd instead (F_DUPFD), closed when it ended; but closing any fd
 * of a file releases every POSIX record lock (fcntl F_SETLK, lockf) the process holds on it,
 * so each write, fsync, truncate or uncached read dropped the caller's locks (found by a probe
 * that checked a lock from another process after each call). Now a use takes the number itself
 * and a close that finds it in use is deferred to the use's end. Records live on the user's
 * stack, in one list for the process (fd numbers are the process's); `nbusy` lets a close skip
 * the lock when no use is out, the common case. */
static pthread_mutex_t uses_lock = PTHREAD_MUTEX_INITIALIZER;
static weft__io_fduse *uses; /* uses_lock */
static _Atomic size_t nbusy; /* records in `uses`; written under uses_lock, read without */

void weft__io_fduse_begin(weft__io_fduse *u, int fd)
{
    *u = (weft__io_fduse){.fd = fd};
    pthread_mutex_lock(&uses_lock);
    u->next = uses;
    uses = u;
    atomic_fetch_add_explicit(&nbusy, 1, memory_order_release);
    pthread_mutex_unlock(&uses_lock);
}

void weft__io_fduse_end(weft__worker *w, weft__io_fduse *u)
{
    bool close_now = false;
    pthread_mutex_lock(&uses_lock);
    weft__io_fduse **pp = &uses;
    while (*pp != u)
        pp = &(*pp)->next;
    *pp = u->next;
    atomic_fetch_sub_explicit(&nbusy, 1, memory_order_relaxed);
    if (u->close_pending) {
        /* The last use of the number closes it: another still out inherits the close. */
        close_now = true;
        for (weft__io_fduse *o = uses; o; o = o->next)
            if (o->fd == u->fd) {
                o->close_pending = true;
                close_now = false;
            }
    }
    pthread_mutex_unlock(&uses_lock);
    if (close_now)
        weft__sys_close(w ? &w->sys : NULL, u->fd);
}

int weft__io_close_after_jobs(weft__sys *s, int fd)
{
    /* Acquire, paired with weft__io_fduse_begin's release: a use begun before the close was
     * decided (on this thread, or on a worker whose forget this close waited for) is seen;
     * one racing the close is the caller's own race (a call on an fd being closed). */
    if (atomic_load_explicit(&nbusy, memory_order_acquire) == 0)
        return weft__sys_close(s, fd);
    bool deferred = false;
    pthread_mutex_lock(&uses_lock);
    for (weft__io_fduse *o = uses; o; o = o->next)
        if (o->fd == fd) {
            o->close_pending = true;
            deferred = true;
        }
    pthread_mutex_unlock(&uses_lock);
    return deferred ? 0 : weft__sys_close(s, fd);
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
     * read, write or truncate the new file. So the job is recorded until it is over
     * (weft_blocking returns only after a started job ended), and a weft_close meanwhile
     * leaves the number open for the job to close (weft__io_close_after_jobs): a late job
     * still acts on the file it was given, on its number, so no fd of the file is ever
     * closed behind the caller's back (that would drop its POSIX record locks). */
    weft__io_fduse use;
    bool tracked = on_fd(req);
    if (tracked)
        weft__io_fduse_begin(&use, req->fd);
    blocking_call c = {.req = req};
    int r = weft_blocking(run_blocking, &c, NULL, deadline);
    if (tracked)
        weft__io_fduse_end(weft__worker_current(), &use);
    return r < 0 ? r : c.result;
}
