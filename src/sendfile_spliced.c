/* weft_sendfile from a source sendfile(2) refuses: a pipe or a socket (sendfile(2) wants a
 * file it can map, and answers -EINVAL for the others). io_uring's sendfile splices through
 * a pipe of its own and takes them; this is the same for the calls that use sendfile(2):
 * every one on epoll, and io_uring's with a deadline already passed or without splice.
 *
 * A pipe is spliced straight to out_fd, so what out_fd does not take stays in the source
 * pipe. A socket goes through a pipe made for the call: what reached that pipe and not
 * out_fd when the call stops early (its deadline, a cancel, an error of out_fd) is lost
 * with it, as on io_uring. Both fds are made non-blocking (weft's first use of an fd does
 * so), and each splice is SPLICE_F_NONBLOCK: an EAGAIN parks on the side that caused it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include "core.h"
#include "io/io.h"
#include "net.h"
#include "sys.h"
#include "worker.h"

/* The most one splice asks for: far below what a size_t holds, as splice(2) caps it. */
#define SPLICE_MAX ((size_t)1 << 30)

/* After an EAGAIN from a splice of `from` into `to`: parks until the side that caused it is
 * ready. `from` is a pipe or socket with nothing to read, or else `to` is full. */
static int wait_side(weft__worker *w, int from, int to, int64_t deadline)
{
    int in = weft__sys_poll1(&w->sys, from, POLLIN, 0);
    if (in < 0)
        return in;
    if (in & POLLNVAL)
        return -EBADF;
    int r = (in & (POLLIN | POLLHUP | POLLERR)) ? weft_fd_wait(to, WEFT_WRITABLE, deadline)
                                                : weft_fd_wait(from, WEFT_READABLE, deadline);
    return r < 0 ? r : 0;
}

/* Moves up to len bytes from `from` (a pipe, or a socket when `to` is a pipe) to `to`,
 * parking while neither side can move. Returns the bytes moved (> 0), 0 at the end of
 * `from`, or -errno. */
static ssize_t splice_some(int from, int to, size_t len, int64_t deadline)
{
    for (;;) {
        weft__worker *w = weft__worker_current(); /* each round: a park may move the task */
        ssize_t n = weft__sys_splice(&w->sys, from, to, len < SPLICE_MAX ? len : SPLICE_MAX,
                                     SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n != -EAGAIN && n != -EINTR)
            return n;
        if (n == -EAGAIN) {
            int r = wait_side(w, from, to, deadline);
            if (r < 0)
                return r;
        }
    }
}

/* A socket's bytes through a pipe of the call's own: in, then out until it is empty. */
static ssize_t send_socket(weft__worker *w, int out_fd, int in_fd, size_t count, int64_t deadline)
{
    int p[2];
    int r = weft__sys_pipe(&w->sys, p, O_CLOEXEC | O_NONBLOCK);
    if (r < 0)
        return r;
    size_t done = 0;
    ssize_t err = 0;
    while (done < count) {
        ssize_t n = splice_some(in_fd, p[1], count - done, deadline);
        if (n <= 0) {
            err = n;
            break;
        }
        for (size_t left = (size_t)n; left > 0 && err == 0;) {
            ssize_t m = splice_some(p[0], out_fd, left, deadline);
            if (m <= 0)
                err = m < 0 ? m : -EPIPE; /* a pipe with bytes in it never ends */
            else
                left -= (size_t)m;
        }
        if (err < 0)
            break;
        done += (size_t)n;
    }
    w = weft__worker_current();
    weft__sys_close(&w->sys, p[0]);
    weft__sys_close(&w->sys, p[1]);
    return err < 0 ? err : (ssize_t)done;
}

ssize_t weft__sendfile_spliced(int out_fd, int in_fd, off_t *offset, size_t count, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    struct stat st;
    int r = weft__sys_fstat(&w->sys, in_fd, &st);
    if (r < 0)
        return r;
    if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
        return -EINVAL; /* what sendfile(2) said, for a source that is neither */
    if (offset)
        return -ESPIPE; /* no position to read from, as pread(2) says */
    /* Non-blocking from here, as weft's first use of any fd: the splices must not sleep. */
    if ((r = weft__io_fd_classify(w, in_fd)) < 0 || (r = weft__io_fd_classify(w, out_fd)) < 0)
        return r;
    if (S_ISSOCK(st.st_mode))
        return send_socket(w, out_fd, in_fd, count, deadline);
    size_t done = 0;
    while (done < count) {
        ssize_t n = splice_some(in_fd, out_fd, count - done, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            break; /* every writer of the pipe is gone */
        done += (size_t)n;
    }
    return (ssize_t)done;
}
