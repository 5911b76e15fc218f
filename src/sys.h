/* sys.h: the one layer every system call of weft goes through. Each wrapper makes one call
 * and returns >= 0 or -errno, with errno read right at the call, so no caller ever looks at
 * errno. The record a wrapper takes counts calls per kind for its worker (weft_stats'
 * nsyscalls); in WEFT_TESTING builds it also holds a fault plan that makes the Nth next call
 * of a kind fail with a chosen errno without running it, so tests reach every error path.
 *
 * The record belongs to one worker and is touched by that worker's thread only. Code running
 * elsewhere (blocking-pool threads, another thread's notify) passes NULL: the call is then
 * neither counted nor subject to the fault plan. */
#ifndef WEFT_SYS_H
#define WEFT_SYS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/rawsys.h"

struct epoll_event;
struct msghdr;
struct sockaddr;
struct stat;
struct timespec;

/* Every kind of system call weft makes. io_uring_enter counts each of weft's own calls that
 * may enter the kernel through liburing (io_uring_submit*, io_uring_get_events). */
#define WEFT__SYS_KINDS(X)                                                                         \
    X(read)                                                                                        \
    X(write)                                                                                       \
    X(readv)                                                                                       \
    X(writev)                                                                                      \
    X(pread)                                                                                       \
    X(pwrite)                                                                                      \
    X(preadv2)                                                                                     \
    X(recv)                                                                                        \
    X(send)                                                                                        \
    X(recvmsg)                                                                                     \
    X(sendmsg)                                                                                     \
    X(accept)                                                                                      \
    X(connect)                                                                                     \
    X(socket)                                                                                      \
    X(bind)                                                                                        \
    X(listen)                                                                                      \
    X(shutdown)                                                                                    \
    X(close)                                                                                       \
    X(getsockopt)                                                                                  \
    X(setsockopt)                                                                                  \
    X(getsockname)                                                                                 \
    X(fcntl)                                                                                       \
    X(lseek)                                                                                       \
    X(open)                                                                                        \
    X(fsync)                                                                                       \
    X(stat)                                                                                        \
    X(mkdir)                                                                                       \
    X(rmdir)                                                                                       \
    X(unlink)                                                                                      \
    X(rename)                                                                                      \
    X(link)                                                                                        \
    X(symlink)                                                                                     \
    X(readlink)                                                                                    \
    X(truncate)                                                                                    \
    X(ftruncate)                                                                                   \
    X(getdents64)                                                                                  \
    X(inotify_init)                                                                                \
    X(inotify_add_watch)                                                                           \
    X(inotify_rm_watch)                                                                            \
    X(fstat)                                                                                       \
    X(sendfile)                                                                                    \
    X(splice)                                                                                      \
    X(pipe)                                                                                        \
    X(eventfd)                                                                                     \
    X(signalfd)                                                                                    \
    X(epoll_create)                                                                                \
    X(epoll_ctl)                                                                                   \
    X(epoll_wait)                                                                                  \
    X(io_uring_setup)                                                                              \
    X(io_uring_enter)                                                                              \
    X(mmap)                                                                                        \
    X(munmap)                                                                                      \
    X(mprotect)                                                                                    \
    X(madvise)                                                                                     \
    X(posix_spawn)                                                                                 \
    X(pidfd_open)                                                                                  \
    X(waitid)                                                                                      \
    X(kill)                                                                                        \
    X(prctl)                                                                                       \
    X(membarrier)                                                                                  \
    X(poll)                                                                                        \
    X(io_setup)                                                                                    \
    X(io_submit)                                                                                   \
    X(io_getevents)

enum {
#define WEFT__SYS_ENUM(name) WEFT__SYS_##name,
    WEFT__SYS_KINDS(WEFT__SYS_ENUM)
#undef WEFT__SYS_ENUM
        WEFT__SYS_NKINDS
};

/* A worker's system-call record. owner: worker (the thread that runs it). */
typedef struct weft__sys {
    uint64_t ncalls[WEFT__SYS_NKINDS]; /* calls made, per kind */
    uint64_t ntotal;                   /* calls made, all kinds: the timers' cue that time
                                        * passed (weft__timers_poll) */
#ifdef WEFT_TESTING
    /* Fault plan: when nth[k] is non-zero, each call of kind k counts it down, and the call
     * that brings it to zero fails with -err[k] without being made. */
    unsigned fail_nth[WEFT__SYS_NKINDS];
    int fail_err[WEFT__SYS_NKINDS];
#endif
} weft__sys;

/* The planned fault for one operation of `kind` (< 0: none), without counting it: 0, or
 * the -errno it must fail with instead of running. For operations that are not system calls
 * but stand in for one (an io_uring read stands in for read(2)), so that tests reach the same
 * error paths on every backend. s may be NULL. Always 0 outside WEFT_TESTING builds. */
static inline int weft__sys_fault(weft__sys *s, int kind)
{
#ifdef WEFT_TESTING
    if (s && kind >= 0 && s->fail_nth[kind] && --s->fail_nth[kind] == 0)
        return -s->fail_err[kind];
#else
    (void)s;
    (void)kind;
#endif
    return 0;
}

/* Accounts for one call of `kind` about to be made on behalf of s's worker: counts it, or
 * returns the planned -errno (then the call must not be made). s may be NULL. For calls that
 * do not go through a wrapper below (liburing's submit, a call run on the blocking pool for
 * this worker). */
static inline int weft__sys_enter(weft__sys *s, int kind)
{
    if (!s)
        return 0;
    int fault = weft__sys_fault(s, kind);
    if (__builtin_expect(fault < 0, 0))
        return fault;
    s->ncalls[kind]++;
    s->ntotal++;
    return 0;
}

/* Every call made so far, all kinds together. Worker thread. */
uint64_t weft__sys_total(const weft__sys *s);
/* The name of a kind ("read", "epoll_ctl", ...), for reports and tests. */
const char *weft__sys_name(int kind);

#ifdef WEFT_TESTING
/* Makes the nth next call of `kind` (1: the very next one) fail with -err without running
 * it; nth == 0 clears the plan for that kind. Returns 0 or -EINVAL. Worker thread; tests. */
int weft__sys_fail(weft__sys *s, int kind, unsigned nth, int err);
/* The record of the worker running on this thread, or NULL. Tests only. */
weft__sys *weft__sys_current(void);
#endif

/* ---- The wrappers: one system call each, >= 0 or -errno. ---------------------------- */

/* The per-message ones are inline (tcp_echo makes two of them per message); the rest are in
 * sys.c. WEFT__SYS_CALL makes the call of `kind`, or returns its planned fault. */
#define WEFT__SYS_CALL(s, kind, type, call)                                                        \
    do {                                                                                           \
        int fault_ = weft__sys_enter((s), WEFT__SYS_##kind);                                       \
        if (__builtin_expect(fault_ < 0, 0))                                                       \
            return fault_;                                                                         \
        type r_ = (call);                                                                          \
        return r_ < 0 ? -errno : r_;                                                               \
    } while (0)

/* WEFT__SYS_CALL for the calls a message makes: the call `nr` with the CPU's own instruction
 * (util/rawsys.h: no cancellation-point bracket, no errno), or libc's `call` under a
 * sanitizer, whose interceptors must see it. The arguments are cast to long. */
#if WEFT__RAWSYS
#define WEFT__SYS_CALL_RAW(s, kind, type, call, nr, a, b, c, d)                                    \
    do {                                                                                           \
        int fault_ = weft__sys_enter((s), WEFT__SYS_##kind);                                       \
        if (__builtin_expect(fault_ < 0, 0))                                                       \
            return fault_;                                                                         \
        return (type)weft__rawsys6((nr), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0);        \
    } while (0)
#else
#define WEFT__SYS_CALL_RAW(s, kind, type, call, nr, a, b, c, d) WEFT__SYS_CALL(s, kind, type, call)
#endif

static inline ssize_t weft__sys_read(weft__sys *s, int fd, void *buf, size_t len)
{
    WEFT__SYS_CALL_RAW(s, read, ssize_t, read(fd, buf, len), SYS_read, fd, buf, len, 0);
}

static inline ssize_t weft__sys_write(weft__sys *s, int fd, const void *buf, size_t len)
{
    WEFT__SYS_CALL_RAW(s, write, ssize_t, write(fd, buf, len), SYS_write, fd, buf, len, 0);
}

static inline ssize_t weft__sys_readv(weft__sys *s, int fd, const struct iovec *iov, int iovcnt)
{
    WEFT__SYS_CALL_RAW(s, readv, ssize_t, readv(fd, iov, iovcnt), SYS_readv, fd, iov, iovcnt, 0);
}

static inline ssize_t weft__sys_writev(weft__sys *s, int fd, const struct iovec *iov, int iovcnt)
{
    WEFT__SYS_CALL_RAW(s, writev, ssize_t, writev(fd, iov, iovcnt), SYS_writev, fd, iov, iovcnt, 0);
}

/* recv and send are recvfrom and sendto with no address (aarch64 has only those). */
static inline ssize_t weft__sys_recv(weft__sys *s, int fd, void *buf, size_t len, int flags)
{
    WEFT__SYS_CALL_RAW(s, recv, ssize_t, recv(fd, buf, len, flags), SYS_recvfrom, fd, buf, len,
                       flags);
}

static inline ssize_t weft__sys_send(weft__sys *s, int fd, const void *buf, size_t len, int flags)
{
    WEFT__SYS_CALL_RAW(s, send, ssize_t, send(fd, buf, len, flags), SYS_sendto, fd, buf, len,
                       flags);
}

ssize_t weft__sys_pread(weft__sys *s, int fd, void *buf, size_t len, off_t off);
ssize_t weft__sys_pwrite(weft__sys *s, int fd, const void *buf, size_t len, off_t off);
/* preadv2(RWF_NOWAIT) of one buffer at off (-1: the file position): what the page cache holds
 * now, or -EAGAIN where the read would wait for the device. */
ssize_t weft__sys_pread_nowait(weft__sys *s, int fd, void *buf, size_t len, off_t off);
/* Linux native AIO (io/aio.c), the kernel's own calls (no libaio): io_setup(nr, ctx),
 * io_submit of n control blocks (how many were taken, or -errno if none), io_getevents
 * without waiting (min 0, a zero timeout), and io_destroy (uncounted; it waits for what is
 * in flight). aio_context_t is an unsigned long (linux/aio_abi.h). */
struct iocb;
struct io_event;
int weft__sys_io_setup(weft__sys *s, unsigned nr, unsigned long *ctx);
int weft__sys_io_submit(weft__sys *s, unsigned long ctx, long n, struct iocb **cbs);
int weft__sys_io_getevents(weft__sys *s, unsigned long ctx, long max, struct io_event *evs);
void weft__sys_io_destroy(unsigned long ctx);
ssize_t weft__sys_recvmsg(weft__sys *s, int fd, struct msghdr *msg, int flags);
ssize_t weft__sys_sendmsg(weft__sys *s, int fd, const struct msghdr *msg, int flags);
int weft__sys_accept(weft__sys *s, int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
int weft__sys_connect(weft__sys *s, int fd, const struct sockaddr *addr, socklen_t len);
int weft__sys_socket(weft__sys *s, int domain, int type, int protocol);
int weft__sys_bind(weft__sys *s, int fd, const struct sockaddr *addr, socklen_t len);
int weft__sys_listen(weft__sys *s, int fd, int backlog);
int weft__sys_shutdown(weft__sys *s, int fd, int how);
int weft__sys_close(weft__sys *s, int fd);
int weft__sys_getsockopt(weft__sys *s, int fd, int level, int opt, void *val, socklen_t *len);
int weft__sys_setsockopt(weft__sys *s, int fd, int level, int opt, const void *val, socklen_t len);
int weft__sys_getsockname(weft__sys *s, int fd, struct sockaddr *addr, socklen_t *len);
int weft__sys_fcntl(weft__sys *s, int fd, int cmd, long arg);
off_t weft__sys_lseek(weft__sys *s, int fd, off_t off, int whence);
int weft__sys_open(weft__sys *s, const char *path, int flags, mode_t mode);
int weft__sys_fsync(weft__sys *s, int fd);
int weft__sys_stat(weft__sys *s, const char *path, struct stat *st);
int weft__sys_fstat(weft__sys *s, int fd, struct stat *st);
ssize_t weft__sys_sendfile(weft__sys *s, int out_fd, int in_fd, off_t *off, size_t count);
/* splice(2) between the fds' own positions (one of them a pipe). */
ssize_t weft__sys_splice(weft__sys *s, int in_fd, int out_fd, size_t len, unsigned flags);
/* The file-system tree (fs.c, through exec.h), each relative to the current directory like
 * the plain calls. unlinkat counts as rmdir with AT_REMOVEDIR, else as unlink; rename is
 * renameat2 (flags 0, RENAME_NOREPLACE, RENAME_EXCHANGE). */
int weft__sys_mkdir(weft__sys *s, const char *path, mode_t mode);
int weft__sys_unlinkat(weft__sys *s, const char *path, int flags);
int weft__sys_rename(weft__sys *s, const char *from, const char *to, unsigned flags);
int weft__sys_link(weft__sys *s, const char *from, const char *to);
int weft__sys_symlink(weft__sys *s, const char *target, const char *linkpath);
ssize_t weft__sys_readlink(weft__sys *s, const char *path, char *buf, size_t len);
int weft__sys_truncate(weft__sys *s, const char *path, off_t len);
int weft__sys_ftruncate(weft__sys *s, int fd, off_t len);
/* getdents64(2): fills buf with struct linux_dirent64 records; 0 at the end. */
ssize_t weft__sys_getdents64(weft__sys *s, int fd, void *buf, size_t len);
int weft__sys_inotify_init(weft__sys *s, int flags);
int weft__sys_inotify_add_watch(weft__sys *s, int fd, const char *path, uint32_t mask);
int weft__sys_inotify_rm_watch(weft__sys *s, int fd, int wd);
int weft__sys_pipe(weft__sys *s, int fds[2], int flags);
/* Processes (process.c). posix_spawn returns its error as a positive number: turned into
 * -errno here like every other call. kill is pidfd_send_signal when pidfd >= 0. */
int weft__sys_posix_spawn(weft__sys *s, pid_t *pid, const char *path, const void *file_actions,
                          const void *attr, char *const argv[], char *const envp[]);
int weft__sys_pidfd_open(weft__sys *s, pid_t pid);
int weft__sys_waitid(weft__sys *s, int idtype, id_t id, void *info, int options);
int weft__sys_kill(weft__sys *s, int pidfd, pid_t pid, int sig);
int weft__sys_eventfd(weft__sys *s, unsigned initval, int flags);
/* prctl(op, arg, 0, 0, 0): its result (a value for the PR_GET_ ops), or -errno. */
int weft__sys_prctl(weft__sys *s, int op, unsigned long arg);
/* membarrier(cmd, 0, 0): 0 (the mask of supported commands for MEMBARRIER_CMD_QUERY) or
 * -errno. */
int weft__sys_membarrier(weft__sys *s, int cmd);
int weft__sys_signalfd(weft__sys *s, const sigset_t *set, int flags);
/* poll(2) of one fd for `events` (POLLIN/POLLOUT), waiting at most timeout_ms: the revents
 * (0: not ready), or -errno. */
int weft__sys_poll1(weft__sys *s, int fd, short events, int timeout_ms);
int weft__sys_epoll_create(weft__sys *s, int flags);
int weft__sys_epoll_ctl(weft__sys *s, int epfd, int op, int fd, struct epoll_event *ev);
/* epoll_pwait2 when `*have_pwait2` (cleared once the kernel says ENOSYS), else epoll_wait
 * with the timeout rounded up to whole milliseconds. timeout_ns < 0: forever. */
int weft__sys_epoll_wait(weft__sys *s, int epfd, struct epoll_event *evs, int max,
                         int64_t timeout_ns, int *have_pwait2);
/* mmap: *out gets the mapping. Returns 0 or -errno. */
int weft__sys_mmap(weft__sys *s, void **out, size_t len, int prot, int flags, int fd, off_t off);
int weft__sys_munmap(weft__sys *s, void *addr, size_t len);
int weft__sys_mprotect(weft__sys *s, void *addr, size_t len, int prot);
int weft__sys_madvise(weft__sys *s, void *addr, size_t len, int advice);

#endif
