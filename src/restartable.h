/* Which blocked system calls a signal handler installed with SA_RESTART leaves unnoticed
 * (restartable.c): the involuntary hand-off's test for a task's thread blocked in the kernel
 * (watchdog.c). */
#ifndef WEFT_RESTARTABLE_H
#define WEFT_RESTARTABLE_H

#include <stdbool.h>

/* Whether a thread blocked in system call `nr` (this CPU's numbering) with arguments `args`
 * goes on as if nothing happened when a handler installed with SA_RESTART runs on it: the
 * kernel restarts the call, or the call returns what it would have returned anyway (a read
 * that already got bytes returns them). False for every call signal(7) says fails with EINTR
 * whatever the flags (sleeps, poll, select, epoll_wait, a socket with SO_RCVTIMEO or
 * SO_SNDTIMEO set), and for any call this list does not know: a wrong "false" only leaves a
 * worker blocked, a wrong "true" would cut a call short. Reads the socket options of args[0]
 * (the process shares its fd table), so it runs on any thread of the process. */
bool weft__restartable(long nr, const unsigned long args[6]);

/* Whether /proc reports system calls in this CPU's numbering, which weft__restartable reads:
 * the calling thread reads its own /proc syscall file, whose first number is then the read
 * itself. Not so under qemu's user-mode emulation, which shows the host's calls. */
bool weft__restartable_numbering_ok(void);

#endif
