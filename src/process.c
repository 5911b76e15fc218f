/* Child processes: the supported way to run a program from a runtime. posix_spawn (glibc's
 * is clone(CLONE_VM|CLONE_VFORK)+exec, so no copy of the runtime ever runs in the child and
 * no fork handler runs), standard streams optionally through pipes whose parent ends are
 * non-blocking for weft_read/weft_write, and the exit awaited through a pidfd: readable once
 * the child has exited, waited on like any fd, then reaped with waitid(P_PIDFD). On kernels
 * without pidfds (before 5.3) the wait polls waitid(WNOHANG) on a doubling timer instead. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alien.h"
#include "io/io.h"
#include "worker.h"

#ifndef P_PIDFD
#define P_PIDFD 3 /* linux/wait.h; glibc's <sys/wait.h> names it only from 2.36 */
#endif

extern char **environ;

/* Tasks of any worker may wait for and kill one child at once: `lock` makes its reap and
 * each kill one step against the other (a waiter that finds the child reaped by another takes
 * its status; a kill never signals a reaped child). It is held only around waitid(WNOHANG)
 * and a kill, never across a park. The pidfd stays open until weft_process_free, so a waiter
 * parked on it never finds its number closed and reused under it by another's reap. */
struct weft_process {
    pid_t pid;
    int pidfd;    /* -1 without pidfd support; fixed after the spawn */
    int stdio[3]; /* parent ends of the pipes asked for, else -1 */
    pthread_mutex_t lock;
    int status;  /* waitpid(2)-style status, once reaped; lock */
    bool reaped; /* lock */
    /* The runtime it was spawned in (a weak handle, alien.h): its workers may know the fds,
     * so a free from outside it hands their close to it. NULL if no memory. Fixed. */
    weft_runtime *anchor;
};

static void close_fd(int fd)
{
    if (fd < 0)
        return;
    if (weft__worker_current())
        weft_close(fd); /* forgets any registration too */
    else
        weft__sys_close(NULL, fd);
}

/* The current worker's system-call record, or NULL outside a runtime (not counted). */
static weft__sys *sys_here(void)
{
    weft__worker *w = weft__worker_current();
    return w ? &w->sys : NULL;
}

/* A pointer in the first page (NULL excepted by the callers): -EFAULT before the spawn. The
 * kernel's exec would answer it too, but the C library (and a sanitizer's interceptor) reads
 * argv and envp in the parent first and would crash the caller there. */
static bool first_page(const void *p)
{
    return (uintptr_t)p < 4096;
}

/* Whether a NULL-terminated vector holds a string in the first page. */
static bool any_string_in_first_page(char *const v[])
{
    for (size_t i = 0; v[i]; i++)
        if (first_page(v[i]))
            return true;
    return false;
}

int weft_process_spawn(weft_process **out, const char *path, char *const argv[], char *const envp[],
                       const weft_process_opts *opts)
{
    weft__worker *w = weft__worker_current();
    if (!w)
        return -EPERM;
    if (!out || !path || !argv)
        return -EINVAL;
    if (first_page(path) || first_page(argv))
        return -EFAULT;
    if (!argv[0])
        return -EINVAL;
    if (any_string_in_first_page(argv) ||
        (envp && (first_page(envp) || any_string_in_first_page(envp))))
        return -EFAULT;
    unsigned flags = opts ? opts->flags : 0;
    if (flags & ~(unsigned)(WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR))
        return -EINVAL;
    /* Reserved fields set: an option of a later version, which this one would ignore (as
     * weft_spawn and weft_run refuse theirs). */
    if (opts && (opts->reserved_[0] || opts->reserved_[1] || opts->reserved_[2]))
        return -EINVAL;
    weft_process *p = weft__malloc(w, sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->pidfd = -1;
    pthread_mutex_init(&p->lock, NULL);
    int child_end[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++)
        p->stdio[i] = -1;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int r = posix_spawn_file_actions_init(&fa);
    if (r != 0) {
        weft__free(w, p);
        return -r;
    }
    r = posix_spawnattr_init(&attr);
    if (r != 0) {
        posix_spawn_file_actions_destroy(&fa);
        weft__free(w, p);
        return -r;
    }
    for (int i = 0; i < 3 && r == 0; i++) {
        if (!(flags & (WEFT_PROCESS_STDIN << i)))
            continue;
        int fds[2];
        r = -weft__sys_pipe(&w->sys, fds, O_CLOEXEC);
        if (r != 0)
            break;
        /* stdin: the child reads fds[0]; stdout/stderr: the child writes fds[1]. */
        int mine = i == 0 ? fds[1] : fds[0];
        child_end[i] = i == 0 ? fds[0] : fds[1];
        p->stdio[i] = mine;
        /* Only the parent's end is non-blocking: the child's program expects blocking I/O. */
        int fl = weft__sys_fcntl(&w->sys, mine, F_GETFL, 0);
        if (fl < 0 || (fl = weft__sys_fcntl(&w->sys, mine, F_SETFL, fl | O_NONBLOCK)) < 0)
            r = -fl;
        else
            r = posix_spawn_file_actions_adddup2(&fa, child_end[i], i);
    }
    /* The child starts with no signal blocked (weft_signal_wait blocks some on this thread)
     * and with SIGPIPE at its default (weft sets it to SIG_IGN, which exec would keep). */
    sigset_t none, pipe_only;
    sigemptyset(&none);
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(&attr, &pipe_only);
    if (r == 0)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (r == 0)
        r = -weft__sys_posix_spawn(&w->sys, &p->pid, path, &fa, &attr, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    for (int i = 0; i < 3; i++)
        if (child_end[i] >= 0)
            weft__sys_close(&w->sys, child_end[i]);
    if (r != 0) {
        for (int i = 0; i < 3; i++)
            if (p->stdio[i] >= 0)
                weft__sys_close(&w->sys, p->stdio[i]);
        weft__free(w, p);
        return -r;
    }
    /* The child is ours until reaped, so its pid cannot be reused before pidfd_open. */
    int fd = weft__sys_pidfd_open(&w->sys, p->pid);
    if (fd >= 0) {
        weft__sys_fcntl(&w->sys, fd, F_SETFD, FD_CLOEXEC);
        p->pidfd = fd;
        weft__io_fd_fresh(w, fd);
    }
    for (int i = 0; i < 3; i++)
        if (p->stdio[i] >= 0)
            weft__io_fd_fresh(w, p->stdio[i]);
    p->anchor = weft__runtime_weak(w);
    *out = p;
    return 0;
}

/* Reaps the child if it has exited (or finds it reaped); under p->lock. Returns 1 (reaped), 0
 * (still running) or -errno. */
static int try_reap_locked(weft_process *p)
{
    if (p->reaped)
        return 1;
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        int r = p->pidfd >= 0
                    ? weft__sys_waitid(sys_here(), P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG)
                    : weft__sys_waitid(sys_here(), P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG);
        if (r == 0)
            break;
        if (r != -EINTR)
            return r;
    }
    if (si.si_pid == 0)
        return 0;
    switch (si.si_code) {
    case CLD_EXITED:
        p->status = (si.si_status & 0xff) << 8;
        break;
    case CLD_DUMPED:
        p->status = (si.si_status & 0x7f) | 0x80;
        break;
    default: /* CLD_KILLED */
        p->status = si.si_status & 0x7f;
        break;
    }
    p->reaped = true;
    return 1;
}

/* try_reap_locked, taking the lock; the status copied out when reaped. */
static int try_reap(weft_process *p, int *status)
{
    pthread_mutex_lock(&p->lock);
    int r = try_reap_locked(p);
    if (r > 0 && status)
        *status = p->status;
    pthread_mutex_unlock(&p->lock);
    return r;
}

int weft_process_wait(weft_process *p, int *status, int64_t deadline)
{
    if (!p)
        return -EINVAL;
    /* Outside a task: -EPERM whether or not the child has ended (as weft.h says, and as
     * every blocking call answers), not 0 or -EPERM by the child's timing. */
    if (!weft_self())
        return -EPERM;
    int64_t backoff = WEFT_MSEC;
    int st;
    for (;;) {
        int r = try_reap(p, &st);
        if (r < 0)
            return r;
        if (r > 0)
            break;
        if (weft_canceled() == 1)
            return -ECANCELED;
        if (p->pidfd >= 0) {
            r = weft_fd_wait(p->pidfd, WEFT_READABLE, deadline);
        } else {
            /* No pidfd: poll, 1 ms doubling to 100 ms, never past the deadline. */
            int64_t next = weft_deadline_in(backoff);
            if (deadline != WEFT_FOREVER && deadline <= weft_now())
                return -ETIMEDOUT;
            r = weft_sleep_until(deadline != WEFT_FOREVER && deadline < next ? deadline : next);
            backoff = backoff * 2 > 100 * WEFT_MSEC ? 100 * WEFT_MSEC : backoff * 2;
        }
        if (r < 0)
            return r;
    }
    if (status)
        *status = st;
    return 0;
}

int weft_process_kill(weft_process *p, int sig)
{
    if (!p)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    /* Not reaped: the pid is still this child's (a zombie at worst), and stays so while the
     * lock keeps any reap out; the pidfd, when there is one, names it whatever happens. */
    int r = p->reaped ? -ESRCH : weft__sys_kill(sys_here(), p->pidfd, p->pid, sig);
    pthread_mutex_unlock(&p->lock);
    return r;
}

pid_t weft_process_pid(const weft_process *p)
{
    return p ? p->pid : -1;
}

int weft_process_stdio(const weft_process *p, int which)
{
    if (!p || which < 0 || which > 2)
        return -EINVAL;
    return p->stdio[which] >= 0 ? p->stdio[which] : -EBADF;
}

int weft_process_close_stdio(weft_process *p, int which)
{
    if (!p || which < 0 || which > 2)
        return -EINVAL;
    if (p->stdio[which] < 0)
        return -EBADF;
    close_fd(p->stdio[which]);
    p->stdio[which] = -1;
    return 0;
}

/* The fds of a freed process, closed by a task of its runtime (weft_close: forgotten on
 * every worker that used them, before their numbers can be reused). */
typedef struct late_close {
    int fds[4];
} late_close;

static void *late_close_main(void *arg)
{
    late_close *c = arg;
    for (int i = 0; i < 4; i++)
        if (c->fds[i] >= 0) {
            weft_close(c->fds[i]);
            c->fds[i] = -1;
        }
    return NULL;
}

/* However the task ended: one cancelled before it ran (the runtime stopping) closes them
 * plainly, the runtime's tables going with it. */
static void late_close_end(void *arg)
{
    late_close *c = arg;
    for (int i = 0; i < 4; i++)
        if (c->fds[i] >= 0)
            weft__sys_close(NULL, c->fds[i]);
    free(c);
}

void weft_process_free(weft_process *p)
{
    if (!p)
        return;
    int fds[4] = {p->stdio[0], p->stdio[1], p->stdio[2], p->pidfd};
    weft__worker *w = weft__worker_current();
    bool done = false;
    /* Its runtime's thread (or, with no handle for want of memory, any worker's): at once. */
    if (w && (!p->anchor || weft__runtime_is(p->anchor, w))) {
        for (int i = 0; i < 4; i++)
            close_fd(fds[i]);
        done = true;
    } else if (p->anchor) {
        /* From another thread (a plain one, another runtime's) while its runtime may still
         * run: a plain close would leave its workers' records of the numbers (an epoll
         * registration, O_NONBLOCK) to the next files given them. Handed to the runtime;
         * -ESHUTDOWN once it stopped taking work, when a plain close is right. */
        late_close *c = malloc(sizeof *c);
        if (c) {
            memcpy(c->fds, fds, sizeof fds);
            weft_spawn_opts o = {
                .name = "weft-close", .flags = WEFT_SPAWN_DETACHED, .cleanup = late_close_end};
            done = weft_runtime_spawn(p->anchor, NULL, late_close_main, c, &o) == 0;
            if (!done)
                free(c);
        }
    }
    if (!done)
        for (int i = 0; i < 4; i++)
            if (fds[i] >= 0)
                weft__sys_close(NULL, fds[i]);
    weft__runtime_release_weak(p->anchor);
    pthread_mutex_destroy(&p->lock);
    weft__free(weft__worker_current(), p); /* needs no worker: any thread */
}
