/* USDT probes (systemtap's <sys/sdt.h>, Debian's systemtap-sdt-dev): static tracepoints that
 * cost one nop each where nobody traces, and that perf, bpftrace and SystemTap attach to by
 * name (`bpftrace -l 'usdt:/path/libweft.so:weft:*'`). Every probe's provider is `weft`. A
 * task is named by its record's address on the hot probes (the id would cost a load of a
 * cache line they do not touch otherwise); spawn gives both, to map one to the other:
 *   spawn(task, task id, worker)  a task record was made
 *   resume(task, worker)        a task is given the CPU
 *   park(task, wait kind)       a task waits (the kinds of scheduler.h's WEFT__WAIT_*)
 *   wake(task, remote)          a wake made a parked task ready (remote: through an inbox)
 *   exit(task, worker)          a task finished
 *   steal(worker, count)        a worker took tasks from another
 *   io_submit(fd, op)           an I/O operation entered the reactor
 *   stall(worker, ms)           the stall detector reported a worker
 *   deadlock(ntasks)            the deadlock report
 * Without the header (or with WEFT_NO_PROBES) they compile to nothing. */
#ifndef WEFT_PROBES_H
#define WEFT_PROBES_H

#if !defined(WEFT_NO_PROBES) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define WEFT_HAVE_PROBES 1
#endif
#endif

#ifdef WEFT_HAVE_PROBES
#define WEFT_PROBE3(name, a, b, c) DTRACE_PROBE3(weft, name, a, b, c)
#define WEFT_PROBE2(name, a, b)    DTRACE_PROBE2(weft, name, a, b)
#define WEFT_PROBE1(name, a)       DTRACE_PROBE1(weft, name, a)
#else
#define WEFT_PROBE3(name, a, b, c) ((void)0)
#define WEFT_PROBE2(name, a, b)    ((void)0)
#define WEFT_PROBE1(name, a)       ((void)0)
#endif

#endif
