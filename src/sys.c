/* The system-call layer (see sys.h): each wrapper accounts for the call in its worker's
 * record (or takes the planned fault), makes the call, and turns -1/errno into -errno on the
 * spot. Nothing here retries: EINTR and EAGAIN are the callers' decisions. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h> /* renameat2 */
#include <time.h>
#include <unistd.h>

#include "sys.h"
#include "worker.h"

/* Enters the call of `kind`, or returns its planned fault from the calling function. */
#define ENTER(s, kind)                                                                             \
    do {                                                                                           \
        int fault_ = weft__sys_enter((s), WEFT__SYS_##kind);                                       \
        if (weft_unlikely(fault_ < 0))                                                             \
            return fault_;                                                                         \
    } while (0)

/* The result of a call that returns -1 and sets errno on failure. */
#define RESULT(r) ((r) < 0 ? -errno : (r))

static const char *const kind_names[] = {
#define WEFT__SYS_NAME(name) #name,
    WEFT__SYS_KINDS(WEFT__SYS_NAME)
#undef WEFT__SYS_NAME
};

uint64_t weft__sys_total(const weft__sys *s)
{
    return s->ntotal;
}

const char *weft__sys_name(int kind)
{
    return kind >= 0 && kind < WEFT__SYS_NKINDS ? kind_names[kind] : "?";
}

#ifdef WEFT_TESTING
int weft__sys_fail(weft__sys *s, int kind, unsigned nth, int err)
{
    if (!s || kind < 0 || kind >= WEFT__SYS_NKINDS || (nth && err <= 0))
        return -EINVAL;
    s->fail_nth[kind] = nth;
    s->fail_err[kind] = err;
    return 0;
}

weft__sys *weft__sys_current(void)
{
    weft__worker *w = weft__worker_current();
    return w ? &w->sys : NULL;
}
#endif

ssize_t weft__sys_pread(weft__sys *s, int fd, void *buf, size_t len, off_t off)
{
    ENTER(s, pread);
    ssize_t r = pread(fd, buf, len, off);
    return RESULT(r);
}

ssize_t weft__sys_pread_nowait(weft__sys *s, int fd, void *buf, size_t len, off_t off)
{
    ENTER(s, preadv2);
    struct iovec iov = {buf, len};
    ssize_t r = preadv2(fd, &iov, 1, off, RWF_NOWAIT);
    return RESULT(r);
}

int weft__sys_io_setup(weft__sys *s, unsigned nr, unsigned long *ctx)
{
    ENTER(s, io_setup);
    *ctx = 0; /* the kernel wants it zeroed */
    long r = syscall(SYS_io_setup, nr, ctx);
    return (int)RESULT(r);
}

int weft__sys_io_submit(weft__sys *s, unsigned long ctx, long n, struct iocb **cbs)
{
    ENTER(s, io_submit);
    long r = syscall(SYS_io_submit, ctx, n, cbs);
    return (int)RESULT(r);
}

int weft__sys_io_getevents(weft__sys *s, unsigned long ctx, long max, struct io_event *evs)
{
    ENTER(s, io_getevents);
    struct timespec zero = {0, 0};
    long r = syscall(SYS_io_getevents, ctx, 0L, max, evs, &zero);
    return (int)RESULT(r);
}

void weft__sys_io_destroy(unsigned long ctx)
{
    syscall(SYS_io_destroy, ctx);
}

ssize_t weft__sys_pwrite(weft__sys *s, int fd, const void *buf, size_t len, off_t off)
{
    ENTER(s, pwrite);
    ssize_t r = pwrite(fd, buf, len, off);
    return RESULT(r);
}

ssize_t weft__sys_recvmsg(weft__sys *s, int fd, struct msghdr *msg, int flags)
{
    ENTER(s, recvmsg);
    ssize_t r = recvmsg(fd, msg, flags);
    return RESULT(r);
}

ssize_t weft__sys_sendmsg(weft__sys *s, int fd, const struct msghdr *msg, int flags)
{
    ENTER(s, sendmsg);
    ssize_t r = sendmsg(fd, msg, flags);
    return RESULT(r);
}

int weft__sys_accept(weft__sys *s, int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    ENTER(s, accept);
    int r = accept4(fd, addr, addrlen, flags);
    return RESULT(r);
}

int weft__sys_connect(weft__sys *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    ENTER(s, connect);
    int r = connect(fd, addr, len);
    return RESULT(r);
}

int weft__sys_socket(weft__sys *s, int domain, int type, int protocol)
{
    ENTER(s, socket);
    int r = socket(domain, type, protocol);
    return RESULT(r);
}

int weft__sys_bind(weft__sys *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    ENTER(s, bind);
    int r = bind(fd, addr, len);
    return RESULT(r);
}

int weft__sys_listen(weft__sys *s, int fd, int backlog)
{
    ENTER(s, listen);
    int r = listen(fd, backlog);
    return RESULT(r);
}

int weft__sys_shutdown(weft__sys *s, int fd, int how)
{
    ENTER(s, shutdown);
    int r = shutdown(fd, how);
    return RESULT(r);
}

int weft__sys_close(weft__sys *s, int fd)
{
    ENTER(s, close);
    int r = close(fd);
    return RESULT(r);
}

int weft__sys_getsockopt(weft__sys *s, int fd, int level, int opt, void *val, socklen_t *len)
{
    ENTER(s, getsockopt);
    int r = getsockopt(fd, level, opt, val, len);
    return RESULT(r);
}

int weft__sys_setsockopt(weft__sys *s, int fd, int level, int opt, const void *val, socklen_t len)
{
    ENTER(s, setsockopt);
    int r = setsockopt(fd, level, opt, val, len);
    return RESULT(r);
}

int weft__sys_getsockname(weft__sys *s, int fd, struct sockaddr *addr, socklen_t *len)
{
    ENTER(s, getsockname);
    int r = getsockname(fd, addr, len);
    return RESULT(r);
}

int weft__sys_prctl(weft__sys *s, int op, unsigned long arg)
{
    ENTER(s, prctl);
    int r = prctl(op, arg, 0UL, 0UL, 0UL);
    return RESULT(r);
}

int weft__sys_membarrier(weft__sys *s, int cmd)
{
    ENTER(s, membarrier);
    long r = syscall(SYS_membarrier, cmd, 0U, 0);
    return (int)RESULT(r);
}

int weft__sys_fcntl(weft__sys *s, int fd, int cmd, long arg)
{
    ENTER(s, fcntl);
    int r = fcntl(fd, cmd, arg);
    return RESULT(r);
}

off_t weft__sys_lseek(weft__sys *s, int fd, off_t off, int whence)
{
    ENTER(s, lseek);
    off_t r = lseek(fd, off, whence);
    return RESULT(r);
}

int weft__sys_open(weft__sys *s, const char *path, int flags, mode_t mode)
{
    ENTER(s, open);
    int r = open(path, flags, mode);
    return RESULT(r);
}

int weft__sys_fsync(weft__sys *s, int fd)
{
    ENTER(s, fsync);
    int r = fsync(fd);
    return RESULT(r);
}

int weft__sys_stat(weft__sys *s, const char *path, struct stat *st)
{
    ENTER(s, stat);
    int r = stat(path, st);
    return RESULT(r);
}

int weft__sys_fstat(weft__sys *s, int fd, struct stat *st)
{
    ENTER(s, fstat);
    int r = fstat(fd, st);
    return RESULT(r);
}

ssize_t weft__sys_sendfile(weft__sys *s, int out_fd, int in_fd, off_t *off, size_t count)
{
    ENTER(s, sendfile);
    ssize_t r = sendfile(out_fd, in_fd, off, count);
    return RESULT(r);
}

ssize_t weft__sys_splice(weft__sys *s, int in_fd, int out_fd, size_t len, unsigned flags)
{
    ENTER(s, splice);
    ssize_t r = splice(in_fd, NULL, out_fd, NULL, len, flags);
    return RESULT(r);
}

int weft__sys_mkdir(weft__sys *s, const char *path, mode_t mode)
{
    ENTER(s, mkdir);
    int r = mkdir(path, mode);
    return RESULT(r);
}

int weft__sys_unlinkat(weft__sys *s, const char *path, int flags)
{
    if (flags & AT_REMOVEDIR)
        ENTER(s, rmdir);
    else
        ENTER(s, unlink);
    int r = unlinkat(AT_FDCWD, path, flags);
    return RESULT(r);
}

int weft__sys_rename(weft__sys *s, const char *from, const char *to, unsigned flags)
{
    ENTER(s, rename);
    int r = renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
    return RESULT(r);
}

int weft__sys_link(weft__sys *s, const char *from, const char *to)
{
    ENTER(s, link);
    int r = link(from, to);
    return RESULT(r);
}

int weft__sys_symlink(weft__sys *s, const char *target, const char *linkpath)
{
    ENTER(s, symlink);
    int r = symlink(target, linkpath);
    return RESULT(r);
}

ssize_t weft__sys_readlink(weft__sys *s, const char *path, char *buf, size_t len)
{
    ENTER(s, readlink);
    ssize_t r = readlink(path, buf, len);
    return RESULT(r);
}

int weft__sys_truncate(weft__sys *s, const char *path, off_t len)
{
    ENTER(s, truncate);
    int r = truncate(path, len);
    return RESULT(r);
}

int weft__sys_ftruncate(weft__sys *s, int fd, off_t len)
{
    ENTER(s, ftruncate);
    int r = ftruncate(fd, len);
    return RESULT(r);
}

ssize_t weft__sys_getdents64(weft__sys *s, int fd, void *buf, size_t len)
{
    ENTER(s, getdents64);
    ssize_t r = getdents64(fd, buf, len);
    return RESULT(r);
}

int weft__sys_inotify_init(weft__sys *s, int flags)
{
    ENTER(s, inotify_init);
    int r = inotify_init1(flags);
    return RESULT(r);
}

int weft__sys_inotify_add_watch(weft__sys *s, int fd, const char *path, uint32_t mask)
{
    ENTER(s, inotify_add_watch);
    int r = inotify_add_watch(fd, path, mask);
    return RESULT(r);
}

int weft__sys_inotify_rm_watch(weft__sys *s, int fd, int wd)
{
    ENTER(s, inotify_rm_watch);
    int r = inotify_rm_watch(fd, wd);
    return RESULT(r);
}

int weft__sys_pipe(weft__sys *s, int fds[2], int flags)
{
    ENTER(s, pipe);
    int r = pipe2(fds, flags);
    return RESULT(r);
}

int weft__sys_eventfd(weft__sys *s, unsigned initval, int flags)
{
    ENTER(s, eventfd);
    int r = eventfd(initval, flags);
    return RESULT(r);
}

int weft__sys_poll1(weft__sys *s, int fd, short events, int timeout_ms)
{
    ENTER(s, poll);
    struct pollfd pfd = {.fd = fd, .events = events};
    int r;
    /* A signal handler that ran meanwhile is no answer (poll(2) is never restarted, even
     * with SA_RESTART): the callers' looks take no time (0), so asking again costs nothing. */
    while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR && timeout_ms == 0)
        ;
    return r < 0 ? -errno : r == 0 ? 0 : pfd.revents;
}

int weft__sys_signalfd(weft__sys *s, const sigset_t *set, int flags)
{
    ENTER(s, signalfd);
    int r = signalfd(-1, set, flags);
    return RESULT(r);
}

int weft__sys_epoll_create(weft__sys *s, int flags)
{
    ENTER(s, epoll_create);
    int r = epoll_create1(flags);
    return RESULT(r);
}

int weft__sys_epoll_ctl(weft__sys *s, int epfd, int op, int fd, struct epoll_event *ev)
{
    ENTER(s, epoll_ctl);
    int r = epoll_ctl(epfd, op, fd, ev);
    return RESULT(r);
}

int weft__sys_epoll_wait(weft__sys *s, int epfd, struct epoll_event *evs, int max,
                         int64_t timeout_ns, int *have_pwait2)
{
    ENTER(s, epoll_wait);
#ifdef SYS_epoll_pwait2
    if (*have_pwait2) {
        struct timespec ts, *tp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / WEFT_SEC;
            ts.tv_nsec = timeout_ns % WEFT_SEC;
            tp = &ts;
        }
        long n = syscall(SYS_epoll_pwait2, epfd, evs, max, tp, NULL, 0);
        if (n >= 0 || errno != ENOSYS)
            return n >= 0 ? (int)n : -errno;
        *have_pwait2 = 0;
    }
#else
    *have_pwait2 = 0;
#endif
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t m = (timeout_ns + WEFT_MSEC - 1) / WEFT_MSEC;
        ms = m > INT32_MAX ? INT32_MAX : (int)m;
    }
    int n = epoll_wait(epfd, evs, max, ms);
    return RESULT(n);
}

int weft__sys_mmap(weft__sys *s, void **out, size_t len, int prot, int flags, int fd, off_t off)
{
    ENTER(s, mmap);
    void *p = mmap(NULL, len, prot, flags, fd, off);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

int weft__sys_munmap(weft__sys *s, void *addr, size_t len)
{
    ENTER(s, munmap);
    int r = munmap(addr, len);
    return RESULT(r);
}

int weft__sys_mprotect(weft__sys *s, void *addr, size_t len, int prot)
{
    ENTER(s, mprotect);
    int r = mprotect(addr, len, prot);
    return RESULT(r);
}

int weft__sys_madvise(weft__sys *s, void *addr, size_t len, int advice)
{
    ENTER(s, madvise);
    int r = madvise(addr, len, advice);
    return RESULT(r);
}

int weft__sys_posix_spawn(weft__sys *s, pid_t *pid, const char *path, const void *file_actions,
                          const void *attr, char *const argv[], char *const envp[])
{
    ENTER(s, posix_spawn);
    int r = posix_spawn(pid, path, file_actions, attr, argv, envp);
    return r == 0 ? 0 : -r; /* posix_spawn returns the error rather than setting errno */
}

int weft__sys_pidfd_open(weft__sys *s, pid_t pid)
{
    ENTER(s, pidfd_open);
#ifdef SYS_pidfd_open
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r >= 0 ? (int)r : -errno;
#else
    (void)pid;
    return -ENOSYS;
#endif
}

int weft__sys_waitid(weft__sys *s, int idtype, id_t id, void *info, int options)
{
    ENTER(s, waitid);
    int r = waitid((idtype_t)idtype, id, info, options);
    return RESULT(r);
}

int weft__sys_kill(weft__sys *s, int pidfd, pid_t pid, int sig)
{
    ENTER(s, kill);
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) {
        long r = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
        return r == 0 ? 0 : -errno;
    }
#else
    (void)pidfd;
#endif
    int r = kill(pid, sig);
    return RESULT(r);
}
