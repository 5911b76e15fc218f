/* Waiting for signals from a coroutine, through signalfd. The signals waited for are blocked
 * on the worker's thread from the first wait on (and stay blocked), so one that arrives
 * between two waits is kept pending for the next instead of taking its default action. Block
 * them before creating other threads, or in those threads too, so that the kernel does not
 * deliver them there. SIGSEGV, SIGBUS, SIGILL and SIGFPE are never blocked nor waited for,
 * whatever the set: they report faults of the thread itself (a stack overflow among them),
 * and a thread that faults with them blocked is killed with no report. The set is also kept
 * in the worker: a thread that takes the worker over (weft_block_in_place's relief threads
 * block every signal anyway) or gives it back blocks it too. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>

#include "core.h"
#include "io/io.h"
#include "net.h"

int weft_signal_wait(const sigset_t *set, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    if (!weft__blocking_task(w))
        return -EPERM;
    if (!set)
        return -EINVAL;
    /* The signals of `set` that can be waited for: not the faults, not SIGKILL and SIGSTOP
     * (signalfd ignores them), not the C library's own (sigaddset refuses them), and no
     * bit past the last signal. A set with none of them would wait for nothing forever. */
    sigset_t want;
    sigemptyset(&want);
    int nwant = 0;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGKILL ||
            sig == SIGSTOP || sigismember(set, sig) != 1)
            continue;
        /* glibc's sigismember reports its own 32 and 33 (a set filled by hand may hold
         * them); sigaddset refuses them: those are left out here. */
        if (sigaddset(&want, sig) != 0)
            continue;
        nwant++;
    }
    if (nwant == 0)
        return -EINVAL;
    int r = weft__worker_wait_signals(w, &want);
    if (r < 0)
        return r;
    int fd = weft__sys_signalfd(&w->sys, &want, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return fd;
    weft__io_fd_fresh(w, fd);
    struct signalfd_siginfo si;
    ssize_t n = weft_read(fd, &si, sizeof si, deadline);
    weft_close(fd);
    if (n < 0)
        return (int)n;
    return n == (ssize_t)sizeof si ? (int)si.ssi_signo : -EIO;
}
