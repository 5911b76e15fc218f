/* Coroutine-blocking I/O on fds and sockets. Each call describes its operation as one request
 * and hands it to the reactor's single entry point (weft__io_submit), once per attempt; the
 * backend decides how it runs (epoll: the system call first, a readiness wait on EAGAIN;
 * io_uring: a ring operation). What stays here is each call's own semantics: write-all,
 * writev's advance, sendfile until count, accept's EMFILE backoff. Every fd weft creates has
 * its reactor record reset, so a reused fd number never inherits the readiness or
 * registration of a closed one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "core.h"
#include "net.h"
#include "io/backend.h"

/* The worker, if the caller is a task that may block and is not cancelled; else NULL with
 * *err = -EPERM or -ECANCELED. One lookup per call, passed down to what follows. */
static inline weft__worker *io_begin(int *err)
{
    weft_task *t;
    return weft__blocking_begin(&t, true, err); /* the prologue every blocking call shares */
}

/* The sys record of the current worker, or NULL outside a runtime (uncounted). */
static weft__sys *sys_here(void)
{
    weft__worker *w = weft__worker_current();
    return w ? &w->sys : NULL;
}

int weft_fd_nonblock(int fd)
{
    weft__sys *sys = sys_here();
    int fl = weft__sys_fcntl(sys, fd, F_GETFL, 0);
    if (fl < 0)
        return fl;
    int r = weft__sys_fcntl(sys, fd, F_SETFL, fl | O_NONBLOCK);
    return r < 0 ? r : 0;
}

/* A buffer in the first page (NULL) with a length: -EFAULT before the system call, on both
 * backends (weft.h). The kernel answers it too, but only after it has taken a datagram off
 * the queue, which it then drops: a receive with a NULL buffer (or a recvfrom with a NULL-page
 * address) lost the datagram on epoll, and a recvfrom's on io_uring (found by test_ported_net);
 * a stream keeps its bytes either way. The pointer is tested first: one compare and branch
 * on the way in (the length first cost weft_read 4 instructions, 28 -> 32, by callgrind). */
static inline bool first_page(const void *p, size_t len)
{
    return weft_unlikely((uintptr_t)p < 4096 && len);
}

/* For a receive whose buffer is in the first page (NULL): whether it goes on all the same,
 * as recv(2) takes it: MSG_TRUNC on a stream socket discards the bytes without copying them
 * (tcp_recvmsg; with MSG_PEEK it counts them), a common way to skip input, and io_uring's
 * buffered receive discards what it holds the same way (weft__ubufs_skip). Anything else
 * keeps first_page's -EFAULT: a datagram socket's MSG_TRUNC still copies, and the kernel
 * would drop the datagram before failing. Cold: first_page's branch only. */
static WEFT_NOINLINE bool trunc_discards(weft__worker *w, int fd, int flags)
{
    return (flags & MSG_TRUNC) && weft__io_fd_classify(w, fd) == WEFT__FD_STREAM &&
           w->io->fds[fd].sock;
}

/* A pointer to a structure the call reads or fills (a weft_addr, a sendfile offset): 0, or
 * -EINVAL for NULL (where the call requires one) and -EFAULT for another address in the first
 * page, which is what &p->field gives for a NULL p: as the system calls answer a bad pointer,
 * where reading it here would have crashed the caller. */
static inline int struct_ptr_check(const void *p)
{
    if (weft_likely((uintptr_t)p >= 4096))
        return 0;
    return p ? -EFAULT : -EINVAL;
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (first_page(buf, len))
        return -EFAULT;
    weft__ioreq q = {.op = WEFT__IO_READ, .fd = fd, .buf = buf, .len = len, .off = -1};
    return weft__io_submit(w, &q, deadline);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (!iov && iovcnt > 0)
        return -EFAULT; /* as readv(2), on both backends (io_uring's buffered receive reads
                         * the array before any system call) */
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        /* As readv(2): a sum past SSIZE_MAX is -EINVAL. io_uring's buffered receive copies
         * into the array itself, and would have taken such a length at its word. */
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        if (first_page(iov[i].iov_base, iov[i].iov_len))
            return -EFAULT;
        total += iov[i].iov_len;
    }
    weft__ioreq q = {.op = WEFT__IO_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt, .off = -1};
    return weft__io_submit(w, &q, deadline);
}

/* MSG_WAITALL on a byte stream: a blocking recv(2) waits until len bytes came (fewer only at
 * the end of the stream, an error or a signal), and so did io_uring's ring receive; but
 * epoll's non-blocking recv(2), and a receive of the bytes io_uring holds, returned what was
 * there. So weft goes on receiving the rest itself, after a first receive that gave n; what
 * came is returned when the rest does not (the end of stream, an error, the deadline, a
 * cancel), as recv(2) and the ring's receive return it. Not for a datagram or seqpacket
 * socket, where the flag means nothing, nor with MSG_PEEK, MSG_DONTWAIT or MSG_OOB. */
static WEFT_NOINLINE ssize_t recv_rest(int fd, char *buf, size_t len, ssize_t n, int flags,
                                       int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    /* Classified where the task is now (the receive may have parked and the task moved). */
    if (n <= 0 || (size_t)n >= len || weft__io_fd_classify(w, fd) != WEFT__FD_STREAM)
        return n;
    size_t got = (size_t)n;
    while (got < len) {
        int err = 0;
        if (!(w = io_begin(&err))) /* a cancel that came meanwhile: what came is returned */
            break;
        /* buf NULL: a MSG_TRUNC receive that discards (trunc_discards), and no pointer. */
        weft__ioreq q = {.op = WEFT__IO_RECV,
                         .fd = fd,
                         .buf = buf ? buf + got : NULL,
                         .len = len - got,
                         .flags = flags};
        ssize_t r = weft__io_submit(w, &q, deadline);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static ssize_t recv_peek_all(weft__worker *w, const weft__ioreq *proto, size_t len,
                             int64_t deadline);

/* The flags a receive hands the backend, made to mean what they mean to recv(2):
 * - MSG_ERRQUEUE: recv(2) never waits for the error queue (EAGAIN when it is empty), but weft
 *   waited for the socket to be readable until the deadline (forever with WEFT_FOREVER; on
 *   io_uring spinning while stream bytes were queued; found by test_ported_net): it makes
 *   one attempt, as with MSG_DONTWAIT.
 * - MSG_OOB: recv(2) never waits for an urgent byte either (tcp_recv_urg: the byte, -EINVAL
 *   when there is none, -EAGAIN when its mark came before it), but both backends waited for
 *   readability on -EAGAIN: one attempt too (found by test_ported_net).
 * - MSG_WAITALL means nothing on a datagram or seqpacket socket: recv(2) returns one record
 *   whatever the flag. io_uring's receive, though, retries a short MSG_WAITALL receive of a
 *   SOCK_SEQPACKET socket into the rest of the buffer (it takes it for a stream), so two
 *   records came back as one ("one" and "three" as "onethree", and the next receive waited
 *   for a third; found by test_ported_net). So the flag goes to the backend for a stream only. */
static int recv_flags_as_kernel(weft__worker *w, int fd, int flags)
{
    if (flags & (MSG_ERRQUEUE | MSG_OOB))
        flags |= MSG_DONTWAIT;
    if (!(flags & MSG_WAITALL))
        return flags;
    int kind = weft__io_fd_classify(w, fd); /* -EBADF and the like: the receive says it */
    return kind < 0 || kind == WEFT__FD_STREAM ? flags : flags & ~MSG_WAITALL;
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    flags = recv_flags_as_kernel(w, fd, flags);
    if (first_page(buf, len) && !trunc_discards(w, fd, flags))
        return -EFAULT;
    weft__ioreq q = {.op = WEFT__IO_RECV, .fd = fd, .buf = buf, .len = len, .flags = flags};
    if ((flags & (MSG_PEEK | MSG_WAITALL)) == (MSG_PEEK | MSG_WAITALL))
        return recv_peek_all(w, &q, len, deadline);
    ssize_t n = weft__io_submit(w, &q, deadline);
    if ((flags & (MSG_WAITALL | MSG_PEEK | MSG_DONTWAIT | MSG_OOB)) == MSG_WAITALL)
        return recv_rest(fd, buf, len, n, flags, deadline);
    return n;
}

ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                      socklen_t *fromlen, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    flags = recv_flags_as_kernel(w, fd, flags);
    if ((first_page(buf, len) && !trunc_discards(w, fd, flags)) ||
        (fromlen && (uintptr_t)fromlen < 4096) || (fromlen && first_page(from, *fromlen)))
        return -EFAULT;
    /* recvmsg on both backends: the ring has no recvfrom. */
    struct iovec iov = {buf, len};
    struct msghdr msg = {
        .msg_name = from, .msg_namelen = fromlen ? *fromlen : 0, .msg_iov = &iov, .msg_iovlen = 1};
    weft__ioreq q = {.op = WEFT__IO_RECVMSG, .fd = fd, .msg = &msg, .flags = flags};
    ssize_t n = (flags & (MSG_PEEK | MSG_WAITALL)) == (MSG_PEEK | MSG_WAITALL)
                    ? recv_peek_all(w, &q, len, deadline)
                    : weft__io_submit(w, &q, deadline);
    if (n >= 0 && fromlen)
        *fromlen = msg.msg_namelen;
    if ((flags & (MSG_WAITALL | MSG_PEEK | MSG_DONTWAIT | MSG_OOB)) == MSG_WAITALL)
        return recv_rest(fd, buf, len, n, flags, deadline); /* as weft_recv */
    return n;
}

/* The retries of a Unix-domain call whose other side is full (a listener's backlog, a
 * receiver's queue), which no readiness of our socket shows: sleeps of 1 ms doubling up to
 * 64 ms, cut at the deadline. The task stays on its worker meanwhile (pinned for the call
 * unless it already was), so that the fd's generation there tells whether a weft_close (from
 * any worker: it forgets the fd on each that used it, this one included) ended it during a
 * sleep: the retry then answers -EBADF, where it tried the number again, which by then could
 * be another fd. */
typedef struct unix_retry {
    weft__worker *w;
    weft_task *t;
    int fd;
    bool pinned_here; /* pinned by this call: unpinned at its end */
    uint32_t gen;     /* fd's generation on w as the call found it */
    int64_t nap;
} unix_retry;

/* 0, or -errno (not an fd) with nothing to end. */
static int unix_retry_begin(unix_retry *u, weft__worker *w, int fd)
{
    int kind = weft__io_fd_classify(w, fd); /* non-blocking from here, as on every backend */
    if (kind < 0)
        return kind;
    *u = (unix_retry){.w = w, .t = w->current, .fd = fd, .nap = WEFT_MSEC};
    u->pinned_here = !(u->t->flags & WEFT__T_PINNED);
    if (u->pinned_here)
        weft__task_flags_set(u->t, WEFT__T_PINNED); /* owner thread: it is running here */
    u->gen = weft__fdtable_gen(w->io, fd);
    return 0;
}

static void unix_retry_end(unix_retry *u)
{
    if (u->pinned_here)
        weft__task_flags_clear(u->t, WEFT__T_PINNED);
}

/* Sleeps before the next try. 0 to try again, -ETIMEDOUT (the deadline has passed),
 * -ECANCELED or -EBADF (the fd was closed meanwhile). */
static int unix_nap(unix_retry *u, int64_t deadline)
{
    int64_t now = weft__clock_ns();
    if (deadline != WEFT_FOREVER && now >= deadline)
        return -ETIMEDOUT;
    int64_t until = deadline != WEFT_FOREVER && deadline - now < u->nap ? deadline : now + u->nap;
    int r = weft_sleep_until(until);
    if (r < 0)
        return r; /* -ECANCELED */
    if (weft__fdtable_gen(u->w->io, u->fd) != u->gen)
        return -EBADF;
    u->nap = u->nap < 64 * WEFT_MSEC ? 2 * u->nap : u->nap;
    return 0;
}

/* MSG_PEEK | MSG_WAITALL. On TCP a blocking recv(2) waits until len bytes are queued and copies
 * them, leaving them queued (tcp_recvmsg peeks from its own sequence number up to its target,
 * len); on an AF_UNIX stream it copies what is queued without waiting for the rest. Neither
 * backend could be asked for the TCP one: epoll's non-blocking peek and a peek of the bytes
 * io_uring holds returned what was there, and io_uring's own receive retries a short
 * MSG_WAITALL receive into the rest of the buffer, which with MSG_PEEK copied the first bytes
 * again ("abcabc" for "abc" then "def", found by test_ported_net's port of the leftover). Nor is
 * there a readiness to wait for: the socket stays readable while any byte is queued. So the
 * receive goes without MSG_WAITALL, and on TCP, while fewer than len came and the peer has not
 * ended the stream (nor an error come), it is tried again after sleeps of 1 ms doubling to 64 ms,
 * as the Unix-domain retries below. What the last try saw is returned at the end of stream, an
 * error, the deadline or a cancel; the task stays on its worker meanwhile (io_uring holds the
 * bytes it received on the worker of the first read). */
static bool peek_waits_for_all(weft__worker *w, int fd)
{
    int domain = 0;
    socklen_t dlen = sizeof domain;
    if (weft__io_fd_kind(w, fd) != WEFT__FD_STREAM ||
        weft__sys_getsockopt(&w->sys, fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) < 0)
        return false;
    return domain == AF_INET || domain == AF_INET6;
}

/* Whether the peer ended the stream (POLLRDHUP) or the socket failed: the bytes queued are
 * then all there will be. A look that does not wait and takes nothing. */
static bool peer_done(weft__worker *w, int fd)
{
    return weft__sys_poll1(&w->sys, fd, POLLRDHUP, 0) != 0; /* RDHUP, HUP, ERR, NVAL, -errno */
}

static ssize_t recv_peek_all(weft__worker *w, const weft__ioreq *proto, size_t len,
                             int64_t deadline)
{
    unix_retry u;
    int e = unix_retry_begin(&u, w, proto->fd);
    if (e < 0)
        return e;
    ssize_t n;
    for (;;) {
        weft__ioreq q = *proto; /* afresh: a submission may change its request */
        q.flags &= ~MSG_WAITALL;
        n = weft__io_submit(u.w, &q, deadline);
        if (n <= 0 || (size_t)n >= len || (q.flags & (MSG_DONTWAIT | MSG_OOB)) ||
            !peek_waits_for_all(u.w, q.fd) || peer_done(u.w, q.fd) || unix_nap(&u, deadline) < 0)
            break;
    }
    unix_retry_end(&u);
    return n;
}

/* A datagram sent to a Unix-domain address (not the socket's connected peer): when the
 * receiver's queue is full sendmsg says EAGAIN, but the sender's readiness says nothing of
 * that queue (Linux's poll of a Unix datagram socket looks at its connected peer's queue only,
 * and at its own buffer), so it is writable at once: epoll's wait came back at once and the
 * send said EAGAIN again (a busy loop until the deadline: 0.19 s of CPU in 0.3 s), and
 * io_uring's sendmsg spun in the kernel (0.3 s in 0.3 s). As for a Unix connect (below): the
 * send is tried again after sleeps of 1 ms doubling to 64 ms, until the deadline. */
static ssize_t sendto_unix(weft__worker *w, int fd, const struct msghdr *msg, int flags,
                           int64_t deadline)
{
    unix_retry u;
    int e = unix_retry_begin(&u, w, fd);
    if (e < 0)
        return e;
    ssize_t r;
    for (;;) {
        r = weft__sys_sendmsg(&w->sys, fd, msg, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r == -EINTR)
            continue;
        /* MSG_DONTWAIT: one attempt, whose -EAGAIN is the answer (weft.h). */
        if (r != -EAGAIN || (flags & MSG_DONTWAIT) || (r = unix_nap(&u, deadline)) < 0)
            break;
        w = weft__worker_current(); /* the migration rule (pinned: the same worker) */
    }
    unix_retry_end(&u);
    return r;
}

ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                    socklen_t tolen, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    /* As sendto(2): an address longer than any is -EINVAL (sendmsg, which both backends
     * use, would cut it to the largest silently). */
    if (to && tolen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    /* A NULL buffer with a length: as write_all, before the kernel's -EPIPE or -EAGAIN. */
    if (first_page(buf, len))
        return -EFAULT;
    if (to && first_page(to, tolen)) /* a NULL `to` is no address: the connected peer */
        return -EFAULT; /* as sendto(2), where reading its family below would have faulted */
    struct iovec iov = {(void *)buf, len};
    struct msghdr msg = {
        .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
    if (to && tolen >= sizeof(sa_family_t) && to->sa_family == AF_UNIX)
        return sendto_unix(w, fd, &msg, flags, deadline);
    weft__ioreq q = {.op = WEFT__IO_SENDMSG, .fd = fd, .msg = &msg, .flags = flags};
    return weft__io_submit(w, &q, deadline);
}

ssize_t weft__write_some(int fd, const void *buf, size_t len, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (first_page(buf, len))
        return -EFAULT; /* as write_all */
    weft__ioreq q = {.op = WEFT__IO_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = -1};
    return weft__io_submit(w, &q, deadline);
}

/* Writes everything: each round writes what the kernel takes, then waits for room. A buffer
 * in the first page (NULL) with a length is -EFAULT before any I/O, as for the receives: the
 * kernel looked at the fd first (-EPIPE for a pipe whose reader is gone, on epoll) where
 * io_uring's checks said -EFAULT. A send with MSG_DONTWAIT makes one attempt, as send(2) does:
 * what the kernel took, or its -EAGAIN (weft__io_nowait: no backend waits for room). */
static inline __attribute__((always_inline)) ssize_t
write_all(int fd, const char *p, size_t len, int flags, int use_send, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (first_page(p, len))
        return -EFAULT;
    weft__ioreq q = {
        .op = use_send ? WEFT__IO_SEND : WEFT__IO_WRITE, .fd = fd, .flags = flags, .off = -1};
    if (weft_unlikely(flags & MSG_DONTWAIT)) {
        q.buf = (void *)p;
        q.len = len;
        return weft__io_submit(w, &q, deadline);
    }
    /* One call at least: a write of 0 bytes is still the system call's, which checks the fd
     * (-EBADF, -ENOTSOCK...) and, on a datagram or seqpacket socket, sends an empty message
     * (write(2) and send(2) do; the loop skipped both, and answered 0). */
    size_t done = 0;
    do {
        q.buf = (void *)(p + done);
        q.len = len - done;
        ssize_t n = weft__io_submit(w, &q, deadline);
        if (n < 0)
            return n;
        if (n == 0 && len > 0)
            return -EIO; /* the fd took nothing of a non-empty write: never spin on it */
        done += (size_t)n;
        if (done < len)
            w = weft__worker_current(); /* the submit may have parked: the migration rule */
    } while (done < len);
    return (ssize_t)len;
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline)
{
    return write_all(fd, buf, len, 0, 0, deadline);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    return write_all(fd, buf, len, flags, 1, deadline);
}

#define SMALL_IOV 16 /* writev copies the array it advances: on the stack up to this many */

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (!iov && iovcnt > 0)
        return -EFAULT; /* what writev(2) says of an array it cannot read */
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        /* As writev(2): a sum past SSIZE_MAX is -EINVAL (and it could not be returned). */
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        if (first_page(iov[i].iov_base, iov[i].iov_len))
            return -EFAULT;
        total += iov[i].iov_len;
    }
    if (total == 0) /* as writev(2): the fd is checked (-EBADF...), and nothing is sent, not
                     * even an empty datagram (the ring's writev sends one: not the ring) */
        return weft__sys_writev(&w->sys, fd, iov, iovcnt);
    struct iovec small[SMALL_IOV], *v = small;
    if (iovcnt > SMALL_IOV) {
        v = weft__malloc(w, (size_t)iovcnt * sizeof *v);
        if (!v)
            return -ENOMEM;
    }
    if (iovcnt > 0) /* iov may be NULL for none */
        memcpy(v, iov, (size_t)iovcnt * sizeof *v);
    struct iovec *cur = v;
    int left = iovcnt;
    ssize_t r = (ssize_t)total;
    while (left > 0) {
        weft__ioreq q = {.op = WEFT__IO_WRITEV, .fd = fd, .iov = cur, .iovcnt = left, .off = -1};
        ssize_t n = weft__io_submit(w, &q, deadline);
        if (n < 0) {
            r = n;
            break;
        }
        if (n == 0) {
            size_t rest = 0;
            for (int i = 0; i < left; i++)
                rest += cur[i].iov_len;
            if (rest > 0) {
                r = -EIO; /* as write_all: a non-empty write that took nothing */
                break;
            }
        }
        /* Skip what was written: whole buffers, then a prefix of the next. */
        while (left > 0 && (size_t)n >= cur->iov_len) {
            n -= (ssize_t)cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + n;
            cur->iov_len -= (size_t)n;
            w = weft__worker_current(); /* the submit may have parked: the migration rule */
        }
    }
    if (v != small)
        weft__free(weft__worker_current(), v);
    return r;
}

/* weft_sendfile from a socket whose bytes the backend's receive takes (io_uring, once weft
 * has read it): they are in weft's buffers, not the socket, so the splice of the socket
 * (io_uring's sendfile, sendfile_spliced.c) found it empty, sent nothing of them (0, or the
 * later bytes first), and raced the armed receive for the rest (found by test_ported_net).
 * Such a source is read with weft_read and written with weft_write instead, through a buffer
 * of the call's own; what was read and not sent when the call stops early is lost, as
 * weft.h says for a socket source. */
#define SENDFILE_COPY_CHUNK ((size_t)64 << 10) /* 64 KiB: four of the receive's buffers */

static ssize_t sendfile_copied(weft__worker *w, int out_fd, int in_fd, const off_t *offset,
                               size_t count, int64_t deadline)
{
    if (offset)
        return -ESPIPE; /* a socket has no offset (weft.h) */
    char *buf = weft__malloc(w, SENDFILE_COPY_CHUNK);
    if (!buf)
        return -ENOMEM;
    size_t done = 0;
    ssize_t err = 0;
    while (done < count) {
        size_t want = count - done < SENDFILE_COPY_CHUNK ? count - done : SENDFILE_COPY_CHUNK;
        ssize_t n = weft_read(in_fd, buf, want, deadline);
        if (n <= 0) {
            err = n;
            break;
        }
        ssize_t m = weft_write(out_fd, buf, (size_t)n, deadline);
        if (m < 0) {
            err = m;
            break;
        }
        done += (size_t)n;
    }
    weft__free(weft__worker_current(), buf);
    return err < 0 ? err : (ssize_t)done;
}

ssize_t weft_sendfile(int out_fd, int in_fd, off_t *offset, size_t count, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    /* As sendfile(2) on both backends: a count that is negative as a signed size, an offset
     * below 0, or a count that runs the offset past the largest one, is -EINVAL (io_uring's
     * splices took each at its word: -1 there means the file position). */
    if (offset && struct_ptr_check(offset) < 0)
        return -EFAULT;
    if (count > (size_t)SSIZE_MAX ||
        (offset && (*offset < 0 || (uint64_t)*offset + count > (uint64_t)INT64_MAX)))
        return -EINVAL;
    if (count == 0) {
        /* Nothing to send, but the fds are checked as sendfile(2) checks them: open, in_fd
         * readable, out_fd writable (-EBADF). */
        int in = weft__sys_fcntl(&w->sys, in_fd, F_GETFL, 0);
        int out = weft__sys_fcntl(&w->sys, out_fd, F_GETFL, 0);
        if (in < 0 || out < 0 || (in & O_ACCMODE) == O_WRONLY || (out & O_ACCMODE) == O_RDONLY)
            return -EBADF;
        return 0;
    }
    if (weft__io_takes_reads(w, in_fd))
        return sendfile_copied(w, out_fd, in_fd, offset, count, deadline);
    size_t done = 0;
    while (done < count) {
        weft__ioreq q = {.op = WEFT__IO_SENDFILE,
                         .fd = out_fd,
                         .fd2 = in_fd,
                         .offp = offset,
                         .len = count - done};
        ssize_t n = weft__io_submit(w, &q, deadline);
        /* A pipe or socket source, which sendfile(2) cannot map (io_uring's splices take
         * them): refused at the first call, before anything was sent. */
        if (n == -EINVAL && done == 0)
            return weft__sendfile_spliced(out_fd, in_fd, offset, count, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            break; /* in_fd ended early */
        done += (size_t)n;
        w = weft__worker_current(); /* the submit may have parked: the migration rule */
    }
    return (ssize_t)done;
}

/* An fd the kernel just created cannot be registered yet: clear any record left by an fd
 * that had the same number and was closed without weft_close(), and record its kind
 * (WEFT__FD_*, 0 if unknown) so that its first operation need not find it out. */
static int fresh_fd(weft__worker *w, int fd, int kind)
{
    if (w && fd >= 0)
        weft__io_fd_known(w, fd, kind);
    return fd;
}

/* accept(2) looks at the address buffer only once it has taken the connection off the queue:
 * an addr with a NULL addrlen, a negative *addrlen, or an address in the first page failed
 * with -EFAULT or -EINVAL and the new connection was closed, lost to both sides (the dialler
 * saw a reset; found by test_ported_net). Checked first, the connection stays queued for the
 * next accept. With a NULL addr the kernel reads neither, and neither does this. */
static int accept_args_check(const struct sockaddr *addr, const socklen_t *addrlen)
{
    if (!addr)
        return 0;
    if ((uintptr_t)addrlen < 4096)
        return -EFAULT;
    if ((int)*addrlen < 0)
        return -EINVAL;
    return *addrlen > 0 && (uintptr_t)addr < 4096 ? -EFAULT : 0;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if ((err = accept_args_check(addr, addrlen)) < 0)
        return err;
    int64_t backoff = WEFT_MSEC;
    for (;;) {
        weft__ioreq q = {.op = WEFT__IO_ACCEPT, .fd = fd, .addr = addr, .addrlen = addrlen};
        int c = (int)weft__io_submit(w, &q, deadline);
        w = weft__worker_current(); /* the submit may have parked: the migration rule */
        if (c >= 0) /* the listener's kind: an accepted socket has the listener's type */
            return fresh_fd(w, c, weft__io_fd_kind(w, fd));
        if (c != -EMFILE && c != -ENFILE)
            return c;
        /* Out of fds: the pending connection stays in the backlog and, edge-triggered, no
         * new edge will come for it, so retry on a timer rather than on readiness. */
        int64_t until = weft_deadline_in(backoff);
        if (deadline != WEFT_FOREVER && until > deadline)
            until = deadline;
        int r = weft_sleep_until(until);
        if (r < 0)
            return r;
        if (deadline != WEFT_FOREVER && weft_now() >= deadline)
            return c;
        backoff = backoff * 2 > 100 * WEFT_MSEC ? 100 * WEFT_MSEC : backoff * 2;
    }
}

/* A Unix-domain connect is never in progress: it completes at once, or the listener's backlog
 * is full (EAGAIN on a non-blocking socket), where a blocking connect(2) sleeps until the
 * listener accepts, on the listener's queue, which no poll of the connecting socket sees.
 * epoll then waited for writability, which an unconnected socket has at once, and said 0 with
 * the socket unconnected; io_uring's connect spun in the kernel until the deadline (0.58 s of
 * system time in 0.6 s). Both now try again after a sleep that doubles from 1 ms to 64 ms,
 * until the deadline: no spin, and at most 64 ms late once the listener makes room. */
static int connect_unix(weft__worker *w, int fd, const struct sockaddr *addr, socklen_t len,
                        int64_t deadline)
{
    unix_retry u;
    int r = unix_retry_begin(&u, w, fd);
    if (r < 0)
        return r;
    for (;;) {
        r = weft__sys_connect(&w->sys, fd, addr, len);
        if (r != -EAGAIN || (r = unix_nap(&u, deadline)) < 0)
            break;
        w = weft__worker_current(); /* the migration rule (pinned: the same worker) */
    }
    unix_retry_end(&u);
    return r;
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline)
{
    int err = 0;
    weft__worker *w = io_begin(&err);
    if (!w)
        return err;
    if (first_page(addr, len))
        return -EFAULT; /* as connect(2), where reading its family below would have faulted */
    if (addr && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNIX)
        return connect_unix(w, fd, addr, len, deadline);
    weft__ioreq q = {
        .op = WEFT__IO_CONNECT, .fd = fd, .addr = (struct sockaddr *)addr, .alen = len};
    return (int)weft__io_submit(w, &q, deadline);
}

int weft_shutdown(int fd, int how)
{
    weft__worker *w = weft__worker_current();
    /* A send written behind (io_uring) and still in flight keeps its place before the end of
     * stream: the write half closes when it is over, on the worker that sent it (this one,
     * or another that used the fd: asked and waited for from a task). */
    if (w && fd >= 0 && (how == SHUT_WR || how == SHUT_RDWR)) {
        bool deferred = weft__io_defer_shutdown(w, fd);
        deferred |= weft__fdshare_shutdown_others(w, fd) > 0;
        w = weft__worker_current(); /* the wait may have ended on another worker */
        if (deferred)
            return how == SHUT_RDWR ? weft__sys_shutdown(&w->sys, fd, SHUT_RD) : 0;
    }
    return weft__sys_shutdown(sys_here(), fd, how);
}

/* ---- Addresses and sockets ------------------------------------------------------------- */

int weft_addr_ip(weft_addr *out, const char *host, int port)
{
    int bad = struct_ptr_check(out);
    if (bad < 0)
        return bad;
    if (port < 0 || port > 65535)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    char buf[INET6_ADDRSTRLEN + 2];
    if (host && host[0] == '[') { /* "[::1]" */
        size_t n = strlen(host);
        if (n < 3 || n - 2 >= sizeof buf || host[n - 1] != ']')
            return -EINVAL;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    if (!host || !*host || strcmp(host, "*") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *v6;
        return 0;
    }
    return -EINVAL;
}

int weft_addr_unix(weft_addr *out, const char *path)
{
    int bad = struct_ptr_check(out);
    if (bad == 0)
        bad = struct_ptr_check(path);
    if (bad < 0)
        return bad;
    if (!*path)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
    size_t n = strlen(path);
    /* A path needs its NUL inside sun_path; an abstract name ("@" for its leading NUL) may
     * fill it, as bind(2) takes it. */
    if (n > sizeof un->sun_path || (path[0] != '@' && n == sizeof un->sun_path))
        return -ENAMETOOLONG;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') { /* abstract: a leading NUL, and the length says where it ends */
        un->sun_path[0] = 0;
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int weft_addr_port(const weft_addr *a)
{
    int bad = struct_ptr_check(a);
    if (bad < 0)
        return bad;
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return -EINVAL;
}

int weft_addr_local(int fd, weft_addr *out)
{
    int bad = struct_ptr_check(out);
    if (bad < 0)
        return bad;
    out->len = sizeof out->ss;
    return weft__sys_getsockname(sys_here(), fd, (struct sockaddr *)&out->ss, &out->len);
}

int weft_socket(int domain, int type, int protocol)
{
    weft__worker *w = weft__worker_current();
    int fd =
        weft__sys_socket(w ? &w->sys : NULL, domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fresh_fd(w, fd, base == SOCK_STREAM ? WEFT__FD_STREAM : WEFT__FD_POLLED);
}

static int set_int(int fd, int level, int opt, int v)
{
    return weft__sys_setsockopt(sys_here(), fd, level, opt, &v, sizeof v);
}

int weft_listen(const weft_addr *addr, int backlog, unsigned flags)
{
    int bad = struct_ptr_check(addr);
    if (bad < 0)
        return bad;
    if (flags & ~(WEFT_LISTEN_REUSEPORT | WEFT_LISTEN_V6ONLY))
        return -EINVAL;
    int family = addr->ss.ss_family;
    int fd = weft_socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int r = 0;
    if (family != AF_UNIX)
        r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (r == 0 && (flags & WEFT_LISTEN_REUSEPORT))
        r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (r == 0 && family == AF_INET6)
        r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & WEFT_LISTEN_V6ONLY) ? 1 : 0);
    weft__sys *sys = sys_here();
    if (r == 0)
        r = weft__sys_bind(sys, fd, (const struct sockaddr *)&addr->ss, addr->len);
    if (r == 0)
        r = weft__sys_listen(sys, fd, backlog > 0 ? backlog : SOMAXCONN);
    if (r < 0) {
        weft__sys_close(sys, fd);
        return r;
    }
    return fd;
}

int weft_dial(const weft_addr *addr, int64_t deadline)
{
    int bad = struct_ptr_check(addr);
    if (bad < 0)
        return bad;
    int fd = weft_socket(addr->ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int r = weft_connect(fd, (const struct sockaddr *)&addr->ss, addr->len, deadline);
    if (r < 0) {
        weft_close(fd);
        return r;
    }
    return fd;
}

int weft_datagram(const weft_addr *addr, int family)
{
    if (addr && struct_ptr_check(addr) < 0)
        return -EFAULT;
    if (addr)
        family = addr->ss.ss_family;
    int fd = weft_socket(family, SOCK_DGRAM, 0);
    if (fd < 0)
        return fd;
    if (addr) {
        weft__sys *sys = sys_here();
        int r = weft__sys_bind(sys, fd, (const struct sockaddr *)&addr->ss, addr->len);
        if (r < 0) {
            weft__sys_close(sys, fd);
            return r;
        }
    }
    return fd;
}

int weft_tcp_nodelay(int fd, int on)
{
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int weft_tcp_keepalive(int fd, int on, int idle_s)
{
    int r = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (r == 0 && on && idle_s > 0)
        r = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    return r;
}
