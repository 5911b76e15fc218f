/* Which blocked system calls SA_RESTART restarts transparently (restartable.h). The list is
 * signal(7)'s "restarted if SA_RESTART is used", cut down to the calls a C library doing its
 * own blocking I/O or locking sits in: reads and writes of pipes, terminals and sockets,
 * socket accepts, waits for a child, flock, and untimed futex waits (pthread mutexes,
 * condition variables, semaphores). Left out on purpose: connect (a restarted connect may fail with
 * EALREADY), open of a FIFO and ioctl (rare, and device-dependent), and every sleep, poll and
 * event wait (always EINTR). */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "restartable.h"

/* Whether socket fd has the timeout `opt` (SO_RCVTIMEO or SO_SNDTIMEO) set: signal(7) says
 * its calls then fail with EINTR even with SA_RESTART. Not a socket (a pipe, a terminal),
 * or no timeout: false. Unknown (the fd went away meanwhile): true, so the caller refuses. */
static bool socket_timeout(int fd, int opt)
{
    struct timeval tv = {0, 0};
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0)
        return errno != ENOTSOCK;
    return tv.tv_sec != 0 || tv.tv_usec != 0;
}

bool weft__restartable(long nr, const unsigned long args[6])
{
    int fd = (int)args[0];
    switch (nr) {
    case SYS_read:
    case SYS_readv:
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_accept:
    case SYS_accept4:
        return !socket_timeout(fd, SO_RCVTIMEO);
    case SYS_write:
    case SYS_writev:
    case SYS_sendto:
    case SYS_sendmsg:
        return !socket_timeout(fd, SO_SNDTIMEO);
    case SYS_wait4:
    case SYS_waitid:
    case SYS_flock:
        return true;
    case SYS_futex: {
        /* Without a timeout only: a timed wait is restarted through the restart block, which
         * a handler turns into EINTR (sem_timedwait would return it). */
        unsigned long op = args[1] & ~(unsigned long)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        return (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) && args[3] == 0;
    }
    default:
        return false;
    }
}

bool weft__restartable_numbering_ok(void)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", (long)syscall(SYS_gettid));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1); /* a plain read(2): SYS_read */
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *end;
    long nr = strtol(buf, &end, 10);
    return end != buf && nr == SYS_read;
}
