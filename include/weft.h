/* weft.h: the whole public API of weft, an async runtime for C with stackful coroutines,
 * stackless futures, timers and an I/O reactor. Every call documents its return codes, who
 * owns what it returns, and which thread may call it.
 *
 * Conventions, uniform across the API:
 * - Fallible calls return an int >= 0 on success or a negative errno (-EINVAL, -ETIMEDOUT,
 *   -ECANCELED, ...). weft never reports through errno, and never aborts on a mistake it can
 *   report; weft_strerror() names every code.
 * - Every blocking call takes a last `int64_t deadline`: absolute CLOCK_MONOTONIC nanoseconds,
 *   or WEFT_FOREVER. A deadline that has passed makes the call non-blocking: it completes if
 *   it can at once, else returns -ETIMEDOUT.
 * - Blocking calls may only be made from inside a task (a coroutine run by weft_run());
 *   elsewhere they return -EPERM.
 * - A runtime (one "worker") lives on the thread that called weft_run() and everything it owns
 *   is touched by that thread only, except where a function says "any thread". Several
 *   threads may each run their own runtime in one process; weft keeps no global mutable
 *   state besides the process-wide SIGSEGV handler used to report stack overflows.
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h> /* the -E... codes every call returns */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <netdb.h>
#include <sys/select.h> /* sigset_t even under -std=c11 without feature macros (POSIX puts
                         * it there too; <signal.h> then hides it) */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_API __attribute__((visibility("default")))

/* Declared here so that a parameter of this type has file scope even where <netdb.h> does
 * not define it (-std=c11 without _GNU_SOURCE or _POSIX_C_SOURCE). */
struct addrinfo;

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 2
#define WEFT_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, for comparisons in #if. */
#define WEFT_VERSION_NUMBER                                                                        \
    (WEFT_VERSION_MAJOR * 10000 + WEFT_VERSION_MINOR * 100 + WEFT_VERSION_PATCH)

/* The version of the library the program runs against, as WEFT_VERSION_NUMBER computes it
 * (the header's macros give the version it was built against). Any thread. */
WEFT_API unsigned weft_version(void);

/* ABI: libweft.so.0 keeps its structures' layouts. The two structures a program fills or
 * reads (weft_config, weft_stats) carry their size as the program was compiled, and end
 * in reserved space, so fields added later neither move old ones nor are read past the end
 * of an older program's copy. */

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------- */

/* Returns a static, human-readable description of `err`, which may be negative (as weft
 * returns it) or positive. Never NULL. Any thread. */
WEFT_API const char *weft_strerror(int err);

/* Returns the symbolic name of `err` ("ETIMEDOUT"), "OK" for 0, or "EUNKNOWN". Any thread. */
WEFT_API const char *weft_errname(int err);

/* ---------------------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------------------- */

/* A deadline that never passes. */
#define WEFT_FOREVER ((int64_t)-1)

#define WEFT_NSEC ((int64_t)1)
#define WEFT_USEC ((int64_t)1000)
#define WEFT_MSEC ((int64_t)1000000)
#define WEFT_SEC  ((int64_t)1000000000)

/* Returns CLOCK_MONOTONIC in nanoseconds. Inside a runtime this is the value cached at the
 * start of the current loop tick (refreshed at least every `budget` resumes, and between two
 * resumes while a timer is armed and tasks make system calls), which is never ahead of the
 * real clock; outside a runtime it reads the clock. Any thread. */
WEFT_API int64_t weft_now(void);

/* Returns the deadline `ns` nanoseconds from now, saturating instead of overflowing; 0 or a
 * negative `ns` returns a deadline that has already passed (weft_now(); never WEFT_FOREVER):
 * a call given it does not wait. For ns > 0 "now" is the clock itself, read at the call (not
 * weft_now()'s value cached at the tick's start, which a task that computed or blocked its
 * thread for a while has left behind: the deadline would have passed already). */
WEFT_API int64_t weft_deadline_in(int64_t ns);

/* ---------------------------------------------------------------------------------------
 * The runtime
 * ------------------------------------------------------------------------------------- */

/* Guard-page policy for coroutine stacks. */
enum {
    /* Guarded stacks (one mmap each, 256 KiB of PROT_NONE below: address space, not memory)
     * while fewer than a quarter of vm.max_map_count are in use, then unguarded stacks
     * carved from large regions so that a million coroutines stay possible. The default. */
    WEFT_GUARD_AUTO = 0,
    /* Always guarded: spawn fails with -ENOMEM once the kernel's map count runs out. */
    WEFT_GUARD_ALWAYS = 1,
    /* Never guarded: stacks carved from large regions (cheapest). An overflow is caught by
     * the 128-byte canary zone below each such stack, checked every time its task switches
     * out (parks, yields, exits), in every build: the process aborts with a report naming
     * the task. An overflow that skips the whole zone (a frame > 128 bytes that writes none
     * of it) or crashes before its task switches out is not caught: use guarded stacks
     * wherever the map count allows. */
    WEFT_GUARD_NEVER = 2,
};

/* I/O backends. io_uring falls back to epoll, with one line on stderr, where the kernel or a
 * seccomp policy refuses it. */
enum { WEFT_BACKEND_DEFAULT = 0, WEFT_BACKEND_EPOLL = 1, WEFT_BACKEND_IO_URING = 2 };

/* How a runtime of several workers places tasks (docs/architecture.md, "Workers").
 * - SHARDED (thread-per-core, Seastar's model): a task runs on the worker it was spawned on,
 *   for its whole life. weft_spawn spawns on the caller's worker, weft_spawn_on on the one
 *   named; weft_submit_to runs a function on a given worker. Each worker has its own ready
 *   queue, timers and reactor, so a connection's state is touched by one thread only.
 * - STEALING (Go's and Tokio's model): a worker with nothing to run asks the busiest worker
 *   for work, and that worker hands it half of the tasks it may give (at its next tick, on
 *   its own thread: no task record is touched by two threads at once). A worker held by a
 *   task that runs without a switch reaches no tick: its queue is handed on only through the
 *   involuntary hand-off (weft_config.handoff_us, on by default in this mode; with it off,
 *   such a task keeps its worker's other tasks waiting until it yields). By default those are
 *   the tasks that have not run yet: a started task stays on the worker that started it, so
 *   load that arrives as new tasks (a task per connection, a fan-out of children) spreads,
 *   and nothing a task does ever sees another thread's TLS. With weft_config.move_started
 *   (or WEFT_MOVE_STARTED=1), started tasks are handed over too, with their stacks, when
 *   they are queued to run after a yield, or after a wait with no deadline on a channel, a
 *   select of channels, a lock, a condition, a semaphore, a wait group, a once, an event or
 *   a join: such a wait leaves nothing on its worker. A task stays where it is while it
 *   sleeps or waits with a deadline, on an fd or for I/O (its timer and fd waiter live on
 *   its worker), and for good once it has used something that belongs to its worker: a
 *   group, a generator, weft_await (of any future), a timer, fd, first/all/timeout or
 *   shared future it made, weft_submit_to, a stream, a watch, a select with fd, future or
 *   timer cases, a sharded value's local instance, or any I/O on the io_uring backend (its
 *   ring). The main task, a task spawned with WEFT_SPAWN_PINNED or pinned by weft_pin_self,
 *   and a task on an unguarded stack never move. A task that may move resumes
 *   on another thread after such a call, so it must not keep a thread-local's address, or a
 *   value read from one, across a weft call that may switch. The compiler keeps errno's
 *   address across calls on its own (__errno_location is declared const), so such a task
 *   must read and set errno after a weft call only through a function the compiler cannot
 *   see into, or be pinned; weft keeps each task's errno value for it.
 *   C++ exception state is the task's: a task that parks or yields inside a catch block, or
 *   in a destructor run by unwinding, finds its own exception in `throw;` and
 *   std::current_exception(), and its own std::uncaught_exceptions(), when it resumes, on
 *   whichever worker. weft keeps the C++ runtime's per-thread record (libstdc++'s or
 *   libc++abi's) per task at each switch, as it keeps errno, in a program that links the C++
 *   runtime (a C program pays nothing for it; in a C++ program each switch takes the
 *   scheduler's general path). A task that ends inside a catch block (weft_exit) ends its
 *   handlers: the exception is destroyed (its destructor may park). An exception in flight
 *   when weft_exit is called (from a destructor that unwinding runs, a `throw;` included) is
 *   not: the stack is dropped without unwinding, and that exception leaks. Futures and
 *   stackless tasks, polled on the loop's context, see no exception of weft_run's caller. A C
 *   program that loads the C++ runtime later (dlopen) gets none of this.
 * A worker runs on its own thread, except while one of its tasks is inside
 * weft_block_in_place: another thread then drives it, and its other tasks run there. Code
 * that keeps thread-local state (or a cached &errno) across a weft call must run on a worker
 * where no task blocks in place; weft's own state follows the worker, and errno is kept per
 * task.
 * DEFAULT is the WEFT_MODE environment variable ("sharded" or "stealing"), else SHARDED. */
enum { WEFT_MODE_DEFAULT = 0, WEFT_MODE_SHARDED = 1, WEFT_MODE_STEALING = 2 };

/* The order a worker runs its ready tasks in (weft_config.order; docs/architecture.md,
 * "Depth-first order").
 * - FIFO (the default): first in, first out, with timer wakes ahead (and the LIFO slot's
 *   capped exception in stealing mode). Fair: every queued task runs within one pass of the
 *   queue. For servers.
 * - DEPTH_FIRST (Cilk's and Rayon's order, for fork-join computation): every spawn and every
 *   wake made on the task's own worker goes to the head of its queue, so a tree of spawns
 *   and joins runs depth first, with about its depth of stacks alive instead of its width
 *   (fanout_tree, depth 20: 1.8 MB against 4.7 GB). Thieves (stealing mode) take the oldest
 *   never-run tasks, the biggest subtrees. Not fair: a queued task waits as long as newer
 *   ones keep coming. A yield still goes behind everything; timers and I/O are still served
 *   at every tick; wakes from other threads still queue at the tail. */
enum { WEFT_ORDER_DEFAULT = 0, WEFT_ORDER_FIFO = 1, WEFT_ORDER_DEPTH_FIRST = 2 };

/* Scheduling debug mode: with the environment variable WEFT_CHAOS set to a seed (a decimal
 * number), every runtime started afterwards perturbs its scheduling from that seed: one pick
 * in four takes the second ready task before the first, one blocking call in eight yields
 * before it starts, and stealing asks a random busy worker. Interleavings the machine rarely
 * produces then happen often, and a seed that breaks a program breaks it again (timing
 * aside). Programs must not rely on the FIFO orders documented elsewhere in this header
 * while it is on; weft's own stress programs run under several seeds in `make test`. */

/* What a runtime does when all its tasks are asleep for good: every task is parked, with no
 * deadline, on something only another of its tasks could end (a channel, a lock, a join, a
 * condition, a generator...), and nothing outside the runtime can act: no task waits on an
 * fd, a signal, a timer or a blocking-pool job, no stackless task is pending, no thread
 * outside the runtime (a plain thread, or a task of another runtime) has ever woken one of
 * its tasks or spawned onto it or holds a lock a task waits for (a mutex, a read or write
 * hold of a rwlock, a once whose function it runs), and no runtime handle
 * (weft_runtime_current) is held. So a program whose tasks wait on a channel or primitive
 * that another runtime will be first to touch only later (more than 1 s after they all
 * parked) is judged deadlocked: give it a handle held from outside, or REPORT or OFF.
 * Once that has lasted 1 s
 * (time for a thread outside the runtime, which weft cannot see, to show itself), the runtime
 * writes "weft: all tasks are asleep: deadlock!" and a dump of every task, with backtraces, on
 * stderr (weft_dump_tasks' format), then:
 * - EXIT: exits the process with status 2 (Go's behaviour). The default.
 * - REPORT: runs on (a task may still be cancelled, from a signal handler say); the report is
 *   not repeated until something has run again.
 * - OFF: no check, and no report of circles of waits among some tasks either.
 * DEFAULT is the WEFT_DEADLOCK environment variable ("exit", "report" or "off"), else EXIT.
 * An idle runtime costs nothing for the check: it sleeps without polling. */
enum {
    WEFT_DEADLOCK_DEFAULT = 0,
    WEFT_DEADLOCK_EXIT = 1,
    WEFT_DEADLOCK_REPORT = 2,
    WEFT_DEADLOCK_OFF = 3
};

/* Log levels (weft_config.log_level): a report of a failure the program should act on
 * (a deadlock), a warning (a stall, a fallback to epoll, a task with no stack), information. */
enum { WEFT_LOG_ERROR = 1, WEFT_LOG_WARN = 2, WEFT_LOG_INFO = 3 };

/* The most workers a runtime may have. */
#define WEFT_WORKERS_MAX 256u

/* Runtime configuration. Initialise with weft_config_init(), then change what you need.
 * A field left to the environment whose variable holds what weft cannot read (a word not
 * listed, a number that is not a whole decimal one within int's range such as "10ms", a
 * switch other than "0" or "1") is said in the log (at WARN), and the default taken. */
typedef struct weft_config {
    size_t size;             /* sizeof(weft_config) as the program was built: set by
                              * weft_config_init(); weft_run() refuses 0, or past 4 KiB
                              * (never set: garbage), with -EINVAL */
    size_t stack_size;       /* default stack size of a spawned coroutine (WEFT_STACK_DEFAULT) */
    int guard;               /* WEFT_GUARD_AUTO, _ALWAYS or _NEVER */
    unsigned stack_pool_max; /* free stacks kept for reuse before returning memory (1024) */
    unsigned budget;         /* task resumes per loop tick before timers and I/O are polled
                              * (64; 0: -EINVAL) */
    int report_overflow;     /* 1: install the SIGSEGV handler that names an overflowing task
                              * (checked at every weft_run: a handler the program installed
                              * since is replaced, and chained to for any other fault); 0:
                              * not. Other values: -EINVAL, as for every on/off field */
    int ignore_sigpipe;      /* 1: set SIGPIPE to SIG_IGN if it has its default action, so a
                              * write to a closed connection returns -EPIPE instead of killing
                              * the process (what Rust's runtime, redis and nginx do) */
    int backend;             /* WEFT_BACKEND_DEFAULT (the WEFT_BACKEND environment variable,
                              * "epoll" or "io_uring", else epoll), _EPOLL or _IO_URING */
    unsigned pool_threads;   /* most threads of the blocking pool (16; 1 to 4096, else
                              * -EINVAL) */
    unsigned pool_idle_ms;   /* a pool thread idle this long exits (10000) */
    /* Worker threads, each with its own scheduler, timers and reactor. 0: the WEFT_WORKERS
     * environment variable if set, else the CPUs in the process's affinity mask (at most
     * WEFT_WORKERS_MAX). Worker 0 is the thread that called weft_run and runs the main
     * task; the others are threads weft starts and joins before weft_run returns. */
    unsigned workers;
    int mode;        /* WEFT_MODE_DEFAULT, _SHARDED or _STEALING */
    int pin_workers; /* 1: worker i is pinned to the i-th CPU of the affinity mask (the
                      * calling thread's mask is restored when weft_run returns) */
    int deadlock;    /* WEFT_DEADLOCK_*: what a runtime whose tasks are all asleep does */
    /* The stall detector: a task that runs this long without a switch (no park, yield or
     * finish) is reported on stderr, with its worker and the backtrace it has at that moment
     * (taken on its thread with SIGURG while that signal keeps its default action; without
     * it, the report has no backtrace), and again each time the stall doubles (2, 4, 8 ...
     * thresholds); at most 10 reports a minute. Its thread also reports, about once a
     * second, tasks that wait for each other in a circle (joins, locks held) while the rest
     * runs on. 0: the WEFT_STALL_MS environment variable if set, else 10 ms (Seastar
     * uses 25); negative: off. The watchdog thread samples the workers every quarter of the
     * threshold while tasks run, backing off to 100 ms while none does. */
    int stall_ms;
    /* The lines weft writes of its own accord: an io_uring fallback, a task that got no
     * stack, a stall, a deadlock report. At most this level (WEFT_LOG_*; 0: the
     * WEFT_LOG_LEVEL environment variable, "error", "warn", "info" or "off", else
     * WARN); negative: none. */
    int log_level;
    /* NULL: the lines go to stderr, each in one write. Otherwise log(log_arg, level, text)
     * gets each message (one or more lines, without the last newline), on whichever thread
     * wrote it (a worker's, the stall detector's): it must not block for long or call back
     * into weft. The stack overflow report, written from a signal handler, always goes to
     * stderr. */
    void (*log)(void *log_arg, int level, const char *text);
    void *log_arg;
    /* NULL, or the program's own tracer's callbacks (weft_tracer, below); the structure must
     * outlive the runtime. */
    const struct weft_tracer *tracer;
    /* A signal on which every task is dumped to stderr (weft_dump_tasks' format), as Go does
     * on SIGQUIT but without exiting: e.g. SIGQUIT or SIGUSR1. 0: the WEFT_DUMP_SIGNAL
     * environment variable (a number, or a name such as "QUIT" or "SIGUSR1"), else none;
     * negative: none. weft installs its handler only over the signal's default action (a
     * handler the program installed first is left alone, with a warning in the log); it
     * stays installed after weft_run returns, when the signal then does nothing. weft_run
     * refuses (-EINVAL) one no handler may take or weft uses: SIGKILL, SIGSTOP, the faults
     * (SIGSEGV, SIGBUS, SIGILL, SIGFPE), SIGURG (the stall detector's), the C library's own
     * between 31 and SIGRTMIN, and numbers from NSIG on. */
    int dump_signal;
    /* 1: when the main task has returned, before the shutdown cancels what is left, report
     * what the program left behind (weft__log, warning level): tasks still alive (each with
     * its wait and spawn site), channels never released, fds still registered with a
     * worker's reactor. 0: the WEFT_LEAK_REPORT environment variable ("1"), else off. */
    int leak_report;
    /* Stealing mode's LIFO slot (Go's runnext, Tokio's lifo slot): the task spawned or woken
     * last on a worker runs next, ahead of its queue (a warm cache for a task that wakes or
     * spawns another; a tree of spawns and joins runs more depth first, with fewer stacks
     * held at once). At most 3 slot runs in a row, then a task from the queue: two tasks
     * waking each other cannot starve the rest. A slot task that never ran may be stolen, and
     * with move_started a started one too, as any queued task (its slot is not stranded
     * behind a worker that stays busy: Tokio's tokio#4941).
     * It changes the order tasks run in (no longer first in, first out), so it is chosen:
     * 1 on; 0: the WEFT_LIFO environment variable ("1" on), else off; negative: off.
     * Ignored in sharded mode. */
    int lifo_slot;
    /* The order a worker runs its ready tasks in (WEFT_ORDER_*). DEFAULT: the WEFT_ORDER
     * environment variable ("fifo" or "depth_first"), else FIFO. */
    int order;
    /* Stealing mode: whether a task that has started may be handed to an idle worker too
     * (Go's and Tokio's stealing), not only one that never ran, so that load which grows
     * inside running tasks spreads as well. A started task moves only while it is queued to
     * run and has left nothing on its worker: see WEFT_MODE_STEALING for what that excludes,
     * and for what code that may move must not keep in thread-locals (errno's address
     * included, which the compiler keeps on its own). 1 on; 0: the WEFT_MOVE_STARTED
     * environment variable ("1" on), else off; negative: off. Ignored in sharded mode and
     * in depth-first order (thieves take never-run subtrees there). */
    int move_started;
    /* The involuntary hand-off: a task that runs this many microseconds without a switch (a
     * loop that calls no weft function, a long computation) has its worker's other tasks,
     * timers and I/O carried on by another thread (a relief thread, as weft_block_in_place
     * uses) while it runs on; at its next weft call, or when it returns, its thread takes the
     * worker back. The stall detector's thread watches for it (taking the task's thread by
     * SIGURG, as for its backtraces: not while the program has its own SIGURG handler), and
     * lets go only while the task is in its own code, never inside a weft call or a callback
     * weft made. A task blocked in a system call of its own is helped the same way when the
     * signal leaves the call unnoticed (the handler is installed with SA_RESTART): a read or
     * write of a pipe, terminal or socket (a socket with SO_RCVTIMEO/SO_SNDTIMEO set
     * excepted), accept, waitpid, flock, an untimed futex wait (a pthread mutex or condition
     * variable of a C library), where /proc numbers system calls as this CPU does (not under
     * qemu's user-mode emulation). One asleep in any other call (a sleep, poll, select,
     * epoll_wait, connect, a timed wait, a socket call with a timeout set), which the signal
     * would cut short with EINTR, gets no signal: on x86_64 the stall detector lets go of the
     * worker for it from its own thread, after checking through /proc that the call was
     * made from the task's own code and that the thread has not run since it looked, and
     * the call goes on (a thread that wakes meanwhile keeps its worker; on io_uring the
     * completions of requests the thread had submitted still interrupt such a call, as
     * below). Not for one in uninterruptible sleep on io_uring. On aarch64 such a task keeps
     * its worker: wrap those calls in weft_block_in_place. One
     * limit: a task caught by the signal on its way into such a call (its thread still
     * runnable, the call not yet asleep) can see EINTR from it; the stall detector rules
     * out a thread it finds preempted inside a call, but a few microseconds between its
     * look and its signal remain. Not in an LTO build of weft (its
     * code is mixed with the program's, and cannot be told apart), or under TSan. On io_uring
     * it makes each worker's ring movable (entered by whichever thread drives the worker):
     * made without SINGLE_ISSUER and DEFER_TASKRUN, so the kernel runs a completion's work
     * on the thread that submitted the request, at that thread's next kernel entry
     * (COOP_TASKRUN). That cost 8-16% more server CPU per message than a ring of its own
     * thread at 1,000 connections, none measurable at 100 and 5,000 (docs/performance.md):
     * set a negative value for the thread's own ring. After a hand-off, the requests the
     * held thread had submitted complete when it next enters the kernel (the timer tick at
     * the latest, 1/HZ), or at once if it sleeps in an interruptible call, which is woken for
     * them and restarted as for a signal (a call that returns EINTR for a signal, such as
     * epoll_wait(2), returns it). A relief thread that drove such a worker stays until the
     * runtime ends (the kernel cancels a thread's requests when it exits), and the
     * completions of the requests it made wake it. What runs on the relief thread sees that
     * thread's thread-locals, as with weft_block_in_place. 0: the WEFT_HANDOFF_US
     * environment variable if set ("0": off), else 1000 in stealing mode and off in sharded
     * mode; negative: off. */
    int handoff_us;
    uint64_t reserved_[3]; /* zero: room for fields of later versions */
} weft_config;

/* Callbacks for the program's own tracer (a span per task, a timeline of polls, a latency
 * monitor of its own): weft_config.tracer. Any callback may be NULL. Each runs on the thread
 * where the event happens, inside weft's scheduler: it must be short, must not block, and
 * must call no weft function but weft_now and the weft_stats/metrics readers. Tasks are
 * named by their id (weft_task_id), workers by index. With a tracer set, every resume takes
 * the path that one resume in 256 takes for the histograms (about 2 ns more, besides the
 * callbacks themselves); without one, each park and spawn costs a predicted branch. */
typedef struct weft_tracer {
    void *arg; /* passed to every callback */
    /* A task was made (spawned, or a generator or future task): its id, its parent's (0 if
     * it was made outside any task: weft_run's main task, weft_runtime_spawn), the worker
     * it will run on. On the spawner's thread, before the task can run. */
    void (*on_spawn)(void *arg, uint64_t task, uint64_t parent, unsigned worker);
    /* The task is given the CPU (Tokio's on_before_task_poll): a future task (stackless) at
     * each poll. On its worker's thread. */
    void (*on_resume)(void *arg, uint64_t task, unsigned worker);
    /* The running task gives the CPU up: it parks, waiting on `wait` ("mutex", "channel
     * receive", "fd readiness", "sleep" ... as in the dump), or yields ("yield"). A park that
     * a wake beat to it returns at once without a switch, after this. A future task's poll
     * that leaves it pending parks it on "future". */
    void (*on_park)(void *arg, uint64_t task, unsigned worker, const char *wait);
    /* A parked task was made ready; on the waker's thread (its own worker, another worker, a
     * pool thread or a thread outside the runtime); `worker` is the woken task's. */
    void (*on_wake)(void *arg, uint64_t task, unsigned worker);
    /* The task finished: returned, exited or was cancelled. On its worker's thread. */
    void (*on_exit)(void *arg, uint64_t task, unsigned worker);
    /* The worker goes to sleep in its reactor with nothing to run, and wakes up again. */
    void (*on_worker_sleep)(void *arg, unsigned worker);
    void (*on_worker_wake)(void *arg, unsigned worker);
    void *reserved_[4]; /* NULL: callbacks of later versions */
} weft_tracer;

/* 64 KiB of stack by default: enough for printf-heavy and parser code, and only the pages a
 * coroutine touches are ever committed. Rounded up to the page size; at least 16 KiB. */
#define WEFT_STACK_DEFAULT ((size_t)64 * 1024)
/* Stacks come in size classes, 2^k * {1, 1.25, 1.5, 1.75} from 16 KiB to 1 GiB: a size
 * asked for is rounded up to its class (more address space, never more memory), and each
 * class's stacks are pooled and reused. A stack overflow, in any kind of stack, aborts the
 * process with a line on stderr naming the task (report_overflow): a frame of up to 64 MiB
 * that lands below its stack is reported by its stack pointer. One limit: a single frame
 * larger than the guard region (256 KiB: a big alloca or VLA) may skip it and land in
 * another task's stack, whose memory it then overwrites silently, unless the code is built
 * with -fstack-clash-protection (which probes each page of a large frame, so the guard is
 * touched first). weft itself is; GCC on Debian 12 does not enable it by default: add it to
 * the code that runs in tasks, or keep large buffers off the stack. */
#define WEFT_STACK_MIN ((size_t)16 * 1024)

/* Fills `*cfg` (of `size` bytes) with the defaults above and records its size. Use the
 * macro weft_config_init(cfg), which passes sizeof *cfg. Any thread. */
WEFT_API void weft_config_init_sized(weft_config *cfg, size_t size);
#define weft_config_init(cfg) weft_config_init_sized((cfg), sizeof *(cfg))

/* The body of a stackful task: takes the spawn argument, returns the task's result. */
typedef void *(*weft_fn)(void *arg);

/* Runs `main_fn(arg)` as the main task of a new runtime on the calling thread, and returns
 * when it has returned and the runtime has shut down. Shutdown cancels every task still
 * alive, runs the loop until they have all finished (their blocking calls return
 * -ECANCELED), and frees everything the runtime allocated.
 * `cfg` may be NULL for the defaults. `*result` (if result is not NULL) receives the main
 * task's return value (WEFT_CANCELED if it was cancelled), also when a task joined it or it
 * detached itself.
 * Returns 0, -EINVAL (bad configuration), -EBUSY (this thread already runs a runtime),
 * -ENOMEM/-EMFILE when the runtime's resources cannot be set up, or -EAGAIN when a worker's
 * thread cannot be started (pthread_create's answer: a thread limit, or no memory for its
 * stack); everything set up before is undone. */
WEFT_API int weft_run(const weft_config *cfg, weft_fn main_fn, void *arg, void **result);

/* Counters of the current runtime. Every field is cumulative except where marked "now". */
typedef struct weft_stats {
    size_t size;             /* sizeof(weft_stats) as the program was built (filled in) */
    uint64_t nspawned;       /* tasks spawned (stackful and stackless) */
    uint64_t nswitches;      /* context switches */
    uint64_t nresumes;       /* task resumes (a stackless poll counts as one) */
    uint64_t nticks;         /* loop ticks */
    uint64_t npolls;         /* reactor polls (epoll_wait calls) */
    uint64_t nmallocs;       /* heap allocations made by the runtime */
    uint64_t nmmaps;         /* mmap calls made for stacks */
    uint64_t ntasks;         /* now: tasks alive (not yet reaped) */
    uint64_t nstacks_pooled; /* now: free stacks held in the pool */
    uint64_t nstacks_live;   /* now: stacks bound to tasks */
    uint64_t nguarded_live;  /* now: guarded stacks in existence (live or pooled) */
    uint64_t ntimers;        /* now: armed timers */
    uint64_t npool_threads;  /* now: blocking-pool threads */
    uint64_t npool_jobs;     /* jobs the blocking pool has run */
    uint64_t nsyscalls;      /* system calls weft made for this runtime, all kinds: reads,
                              * writes, epoll_wait, each io_uring_enter, mmap, ..., file
                              * operations run on the blocking pool included (a wake-up
                              * written from another thread is not counted) */
    uint64_t nparks;         /* parks: a task waited (a wake that came first included) */
    uint64_t nwakes_remote;  /* wakes of another worker's tasks, sent through its inbox */
    uint64_t nmsgs;          /* messages sent to other workers (spawns, joins, replies...) */
    uint64_t nsteals;        /* tasks taken from another worker (stealing mode) */
    uint64_t nevents;        /* reactor events (epoll events, io_uring completions) */
    uint64_t nready;         /* now: tasks in the ready queues */
    uint64_t busy_ns;        /* time the workers spent out of their reactor's sleep */
    /* now: workers the stall detector sees stuck in one task (no switch for the stall
     * threshold while awake); 0 with the detector off. Read live, not at the last tick. */
    uint64_t nstuck;
    uint64_t nfinished;          /* tasks finished (returned, exited or cancelled) */
    uint64_t nunfinished;        /* now: tasks not finished: ready, running or waiting (ntasks
                                  * counts the finished ones not yet reaped too) */
    uint64_t stack_bytes_live;   /* now: the sizes of the stacks bound to tasks (address
                                  * space; a task commits only the pages it touches) */
    uint64_t stack_bytes_pooled; /* now: the sizes of the warm stacks kept for reuse */
    uint64_t nhandoffs;          /* times a relief thread took a worker: lent by
                                  * weft_block_in_place, or by the involuntary hand-off
                                  * (weft_config.handoff_us); a lend taken back before the
                                  * relief thread woke is not counted */
    uint64_t reserved_[2];       /* zero: room for counters of later versions */
} weft_stats;

/* Writes a dump of every task of the current runtime to `fd`, as text a person reads at a
 * glance (Go's goroutine dump). One paragraph a task:
 *   task 7 "worker" on worker 1: parked on channel receive 0x5581..., for 2.0 s
 *       stack 64 KiB, 8 KiB touched, guarded
 *       #0 0x7f... in weft_chan_recv+0x61 (libweft.so.0+0x1b2c1)
 *       #1 0x55... in consume+0x2a (myprog+0x14aa)
 * The state (ready, running, parked, not started), what a parked task waits on (the kind and
 * the object: fd number, channel, mutex and the task holding it, joined task, ...), for how
 * long and its deadline, its worker, its stack's size and how much of it has ever been
 * touched (resident pages), and the backtrace of a switched-out coroutine, walked along its
 * saved frame pointers (weft is built with them; code without them ends the walk early).
 * Frames are "symbol+offset (module+offset)": `addr2line -f -e module offset` gives the line.
 * Each worker lists its own tasks, as a short task of its own pinned there ("weft-dump", not
 * listed), so that every stack walked holds still; the calling task appears parked on the
 * join of that task. Cancelled while it waits (a worker busy in a task that does not yield),
 * the call lists the workers it has not heard from without backtraces, and returns; their
 * dump tasks run later into memory of their own.
 * The text goes out as the fd takes it, its flags left alone (a blocking stderr stays
 * blocking): while the fd is full (a pipe one of this runtime's tasks drains, a socket) the
 * calling task sleeps and the worker runs the others; cancelled then, it stops writing. A
 * reader that has gone (a pipe or socket closed at the other end) gives -EPIPE, never a
 * SIGPIPE, even with weft_config.ignore_sigpipe off.
 * Returns 0, -EPERM (not in a stackful task), -EBADF (fd < 0, or not open), -ENOMEM,
 * -ECANCELED, or a write's -errno. Runtime thread only. */
WEFT_API int weft_dump_tasks(int fd);

/* The I/O backend the current runtime uses ("epoll" or "io_uring"), or NULL outside one. */
WEFT_API const char *weft_backend(void);

/* Copies the current runtime's counters into `*out` (of `size` bytes: fields beyond it are
 * not written). Use the macro weft_stats_get(out), which passes sizeof *out. Returns 0,
 * -EINVAL (NULL, or a size smaller than version 0.2's structure), or -EPERM outside a
 * runtime. Runtime thread only. */
WEFT_API int weft_stats_read(weft_stats *out, size_t size);
#define weft_stats_get(out) weft_stats_read((out), sizeof *(out))

/* ---------------------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------------------- */

/* A task handle. Valid from spawn until weft_join() returns 0 or weft_detach() is called;
 * afterwards the record is recycled and the handle must not be used (like a pthread_t).
 * A stale handle is detected while its record sits unused: every call taking a handle then
 * returns -ESRCH (weft_task_id returns 0, weft_task_name ""). Records are recycled oldest
 * first from a per-worker free list (at least 64 of them), so a stale handle names a new task
 * only after every other free record has been reused; from then on it is indistinguishable
 * from that task's handle, which is the remaining limit. */
typedef struct weft_task weft_task;

/* The result a join reports for a task that was cancelled before it finished (whatever its
 * function returned). Compare with ==, like PTHREAD_CANCELED. */
#define WEFT_CANCELED ((void *)(intptr_t)-1)

/* The result a join reports for a task that never ran because no stack could be allocated
 * for it when it was first scheduled (the kernel refused the mmap, or WEFT_GUARD_ALWAYS ran
 * out of map count): (intptr_t)result == -ENOMEM. Spawn succeeded earlier (a stack is bound
 * only when a task first runs), so this is where a program learns of it. Its cleanup
 * handlers run; weft writes one line on stderr the first time it happens in a runtime, never
 * more. Compare with ==, like WEFT_CANCELED. */
#define WEFT_NOMEM ((void *)(intptr_t)-ENOMEM)

/* Spawn options; a NULL pointer means all defaults. Zero-initialise the structure (`= {0}` or
 * a designated initialiser) so that fields you do not set are 0. */
typedef struct weft_spawn_opts {
    size_t stack_size; /* 0: the runtime's default; else WEFT_STACK_MIN .. 1 GiB, rounded up
                        * to a page (a size outside that range: -EINVAL) */
    const char *name;  /* NULL or a name; the first 15 bytes are copied */
    unsigned flags;    /* WEFT_SPAWN_* */
    /* NULL, or called once with the spawn argument when the task has finished, however it
     * ended: returned, weft_exit, cancelled, or cancelled before it ever ran (then its own
     * weft_defer never registered: this is where resources handed to a task are freed).
     * It runs after the task's defer handlers and task-local destructors, once the locks it
     * still held are given up, and before a join of the task returns. It may run on the
     * task's stack or on another task's (a task that never ran is finished by whichever
     * context picks it), so it must not block or call weft_exit: either returns -EPERM there,
     * whichever context runs it. weft_spawn_future passes the future; weft_group_spawn and
     * weft_gen_create pass their own `arg`. */
    void (*cleanup)(void *arg);
    /* Zero (a designated initialiser leaves it so): room for options of later versions,
     * which therefore never read past the end of a structure built against this header.
     * (0.2 is the first release with this layout: rebuild programs built against 0.1.) */
    void *reserved_[4];
} weft_spawn_opts;

/* The task is detached from the start: no handle is returned, its record is recycled when
 * it finishes. `*out` may then be NULL. */
#define WEFT_SPAWN_DETACHED 0x1u
/* This task's stack gets no guard page whatever the runtime's policy. */
#define WEFT_SPAWN_NOGUARD 0x2u
/* Child first (libdill's order): the new task runs at once, before weft_spawn returns, and
 * the spawning task goes to the tail of the ready queue as if it had yielded; weft_spawn
 * returns when the spawner's turn comes again (the child has parked, yielded or finished,
 * and the tasks ready before the spawn have had their turn). A child that finishes at once
 * hands its stack straight to the next spawn. Without the flag the child waits at the tail
 * until the spawner parks or yields (Go's and Tokio's order). Ignored (the child is queued)
 * when the spawner is a stackless task, which cannot yield, and when the child is cancelled
 * from birth (runtime shutdown) or cannot get a stack (it finishes unrun, as without the flag).
 * weft_group_spawn honours it (the member is registered before the child runs); a stackless
 * task (weft_spawn_future) is queued as without it;
 * weft_gen_create ignores it (a generator's body runs on the first weft_gen_next). With
 * WEFT_SPAWN_DETACHED, `*out` is NULL as usual (the child may be gone by the return). */
#define WEFT_SPAWN_CHILD_FIRST 0x4u
/* In stealing mode: the task is never handed to another worker, even before it starts (for
 * code that keeps thread-local state, or must run where it was spawned). Sharded mode
 * pins every task; the flag is accepted there and changes nothing. */
#define WEFT_SPAWN_PINNED 0x8u

/* Pins the calling task to the worker it runs on now, for the rest of its life, as
 * WEFT_SPAWN_PINNED would have from its spawn: for code that keeps thread-local state once
 * it has started (see WEFT_MODE_STEALING and weft_config.move_started). Returns 0, or
 * -EPERM outside a task. */
WEFT_API int weft_pin_self(void);

/* Spawns a stackful task running `fn(arg)`, queued at the tail of the ready queue (it first
 * runs when the caller parks or yields; at once with WEFT_SPAWN_CHILD_FIRST). The stack is
 * bound when the task first runs, so a spawned-but-not-started task costs only its record
 * (~200 bytes).
 * `*out` receives the handle, owned by the caller until joined or detached.
 * Returns 0, -EINVAL (fn NULL, out NULL without WEFT_SPAWN_DETACHED, bad stack size),
 * -ENOMEM, or -EPERM outside a runtime. Runtime thread only. */
WEFT_API int weft_spawn(weft_task **out, weft_fn fn, void *arg, const weft_spawn_opts *opts);

/* As weft_spawn, but the task runs on worker `worker` (0 .. weft_worker_count() - 1) of the
 * caller's runtime, where it stays (sharded mode). From the caller's own worker this is
 * weft_spawn. On another worker the record is handed over through the pair's message queue
 * (no system call while that worker is busy; its doorbell rings if it sleeps), and the task
 * is queued there in the order of the hand-overs; WEFT_SPAWN_CHILD_FIRST is then ignored.
 * A task spawned onto a worker that is shutting down is cancelled from birth. The handle
 * may be joined, detached or cancelled from any worker of the runtime.
 * Returns 0, -EINVAL (as weft_spawn, or `worker` out of range), -ENOMEM, or -EPERM outside
 * a runtime. Runtime thread only. */
WEFT_API int weft_spawn_on(unsigned worker, weft_task **out, weft_fn fn, void *arg,
                           const weft_spawn_opts *opts);

/* weft_spawn and weft_spawn_on that also record where they were called from, for the task
 * dump ("spawned at file:line by task N"). `file` must live as long as the task (a string
 * literal such as __FILE__). The macros below make every weft_spawn and weft_spawn_on of a
 * program call these with __FILE__ and __LINE__; define WEFT_NO_SPAWN_SITES before including
 * this header to call the plain functions (the dump then gives the parent only). The plain
 * functions stay exported, and `(weft_spawn)(...)` or `&weft_spawn` reach them. */
WEFT_API int weft_spawn_at(const char *file, int line, weft_task **out, weft_fn fn, void *arg,
                           const weft_spawn_opts *opts);
WEFT_API int weft_spawn_on_at(const char *file, int line, unsigned worker, weft_task **out,
                              weft_fn fn, void *arg, const weft_spawn_opts *opts);
#ifndef WEFT_NO_SPAWN_SITES
/* Variadic, so that an argument holding commas (a compound literal of options) passes. */
#define weft_spawn(...)    weft_spawn_at(__FILE__, __LINE__, __VA_ARGS__)
#define weft_spawn_on(...) weft_spawn_on_at(__FILE__, __LINE__, __VA_ARGS__)
#endif

/* The number of workers of the current runtime, or 0 outside one. Any runtime thread. */
WEFT_API unsigned weft_worker_count(void);
/* The index of the worker running the caller (0 .. count - 1; the main task starts on 0), or
 * -EPERM outside a runtime. In sharded mode a task's worker never changes. */
WEFT_API int weft_worker_index(void);

/* ---- Work from outside: threads the runtime did not start (Seastar's "alien") ----------
 * A thread of the program's own (a C library's callback thread, a legacy thread pool) hands
 * work to a running runtime through a counted handle on it, and gets back a handle to the
 * task that it can join or cancel from that thread: a join blocks the thread (a futex sleep),
 * or parks the task when called from a task of any runtime. The handles outlive the runtime:
 * once its main task has finished, spawns return -ESHUTDOWN, and tasks spawned before that
 * finish as every task does at shutdown (cancelled if still running: their result is
 * WEFT_CANCELED). */
typedef struct weft_runtime weft_runtime;
typedef struct weft_handle weft_handle;

/* A counted handle on the caller's runtime, for other threads; NULL outside a runtime (or if
 * no memory). The caller owns one reference: weft_runtime_release. Runtime thread only (a
 * task, or a callback on a worker). */
WEFT_API weft_runtime *weft_runtime_current(void);
/* Adds / drops a reference. The last release frees the handle (never the runtime, whose
 * lifetime weft_run decides). Any thread. */
WEFT_API void weft_runtime_retain(weft_runtime *rt);
WEFT_API void weft_runtime_release(weft_runtime *rt);
/* The runtime's worker count, -ESHUTDOWN once it has stopped taking work, -EINVAL for NULL.
 * Any thread. */
WEFT_API int weft_runtime_workers(weft_runtime *rt);

/* Spawns fn(arg) onto the runtime from any thread: a message to one of its workers, which
 * spawns the task there at its next turn: no system call while that worker is busy, its
 * doorbell rings if it sleeps. Sharded mode chooses the worker round-robin, going round
 * those the stall detector sees stuck. Stealing mode puts the message on the runtime's
 * injection queue (Go's global run queue), where the first worker to look takes it: one
 * asleep is rung, a busy one looks every 61 ticks (and the task may then move before it
 * starts, as any new task). `opts` as for weft_spawn, less WEFT_SPAWN_CHILD_FIRST
 * (-EINVAL); the cleanup runs on the worker when the task ends. `*out` receives the task's
 * handle, owned by the caller (weft_handle_release); with out NULL or WEFT_SPAWN_DETACHED no
 * handle is made and `*out`, if given, is set to NULL. In sharded mode, spawns from one
 * thread onto one worker start there, in the order they were made; in stealing mode a task
 * not yet started may be taken by an idle worker (as any new task: pin it with
 * weft_pin_self once it runs, or use weft_submit_to), so neither place nor order holds.
 * Returns 0, -EINVAL (rt or fn NULL, bad options), -ENOMEM, or -ESHUTDOWN (the runtime's main
 * task has finished). Any thread, a task of this or another runtime included. */
WEFT_API int weft_runtime_spawn(weft_runtime *rt, weft_handle **out, weft_fn fn, void *arg,
                                const weft_spawn_opts *opts);
/* The same on worker `worker` (0 .. weft_runtime_workers() - 1; -1: as weft_runtime_spawn,
 * round-robin or the injection queue by mode). -EINVAL
 * for a worker out of range. Any thread. */
WEFT_API int weft_runtime_spawn_on(weft_runtime *rt, int worker, weft_handle **out, weft_fn fn,
                                   void *arg, const weft_spawn_opts *opts);
/* Waits until the task has finished; `*result` (if result is not NULL) receives what a
 * weft_join would (its return value, WEFT_CANCELED, WEFT_NOMEM). May be called again, by any
 * number of threads and tasks: each gets the same result. On a plain thread it blocks the
 * thread; in a stackful task it parks the task.
 * Returns 0, -ETIMEDOUT, -ECANCELED (the calling task was cancelled), -ENOMEM (the worker
 * could not make the task: it never ran, and its cleanup has run), -EINVAL (NULL), -EPERM
 * (a worker's thread outside a stackful task), -EDEADLK (the handle's own task joining it),
 * -ESHUTDOWN (in the child of a fork() made after the spawn, a task that had not finished by
 * the fork: it runs in the parent, and is never seen to finish here; a cancel there is a
 * no-op). Any thread. */
WEFT_API int weft_handle_join(weft_handle *h, void **result, int64_t deadline);
/* 1 once the task has finished (a join would not wait), 0 before, -EINVAL for NULL. Any
 * thread. */
WEFT_API int weft_handle_done(const weft_handle *h);
/* Cancels the task, as weft_cancel (its blocking calls return -ECANCELED); before it has
 * started, it finishes without running. A no-op once it has finished. Returns 0 or -EINVAL.
 * Any thread. */
WEFT_API int weft_handle_cancel(weft_handle *h);
/* Drops the caller's handle (the task runs on, detached). The handle must not be used
 * afterwards. Any thread. */
WEFT_API void weft_handle_release(weft_handle *h);

/* Waits until `t` finishes, then reaps it: `*result` (if not NULL) receives its return
 * value, WEFT_CANCELED if it was cancelled, or WEFT_NOMEM if it never ran for want of a
 * stack. The handle is invalid after a 0 return. `t` may run on another worker of the
 * runtime: the join then registers with that worker by message, and the record is reaped
 * there (so a second join or a detach of it says -EINVAL until that worker has reaped it,
 * and every call taking it -ESRCH after, while the record sits unused).
 * Returns 0; -ETIMEDOUT or -ECANCELED (the caller was cancelled): the handle stays valid and
 * the join may be retried; -EINVAL (NULL, detached, joined already but not yet recycled,
 * another task is already joining it, or a task of another runtime); -ESRCH (a stale handle:
 * already joined or detached and recycled); -EDEADLK (joining itself); -EPERM outside a
 * task. Runtime thread only. */
WEFT_API int weft_join(weft_task *t, void **result, int64_t deadline);

/* Detaches `t`: its record is recycled when it finishes. The handle is invalid afterwards.
 * For a task of another worker the detach is delivered to that worker by message (the call
 * does not wait); a second detach, and a join after it, are refused at once all the same.
 * Returns 0, -EINVAL (NULL, already detached, being joined, or of another runtime), -ESRCH
 * (a stale handle), -EPERM outside a runtime. Runtime thread only. For another worker's task
 * that another task is joining, the detach returns 0 and is dropped there: the join reaps. */
WEFT_API int weft_detach(weft_task *t);

/* Requests cancellation of `t`. If it is parked in a weft blocking call, that call returns
 * -ECANCELED now; its later blocking calls return -ECANCELED at once, so it should clean up
 * and return. A task cancelled before it ever ran finishes without running. Its cleanup
 * handlers run when it finishes; a join reports WEFT_CANCELED. Cancelling twice, or a task
 * that has finished, is harmless. `t` may run on any worker of the runtime (the flag and the
 * wake are atomic: no message).
 * Two refinements. A completion that reaches the parked call before the task runs again wins
 * over the cancel, even one made after it (a value sent to it, a mutex, rwlock hold or
 * semaphore unit handed over, a condition signal or auto-reset event set taken): the call
 * returns its success and the task owns what it got, so nothing is lost or given twice;
 * only its later calls fail. And a cancelled task's calls that need not wait complete as
 * usual, so that its cleanup may take what is free: weft_mutex_lock of a free mutex, the
 * rwlock locks, weft_sem_acquire with a unit there, weft_event_wait of a set event,
 * weft_waitgroup_wait at zero, weft_once_call, weft_join of a finished task, weft_await of a
 * completed future, weft_group_wait of an empty group, and weft_sleep_until with a passed
 * deadline (0). Channel sends and receives, selects (a DEFAULT case included), I/O and fd
 * waits, weft_cond_wait, weft_gen_next, weft_blocking and weft_yield return -ECANCELED at
 * once even when they could complete; the try_ calls never fail for a cancel.
 * Returns 0, -EINVAL (NULL, or of another runtime), -ESRCH (a stale handle), -EPERM outside
 * a runtime. Runtime thread only. */
WEFT_API int weft_cancel(weft_task *t);

/* Puts the current task at the tail of the ready queue and runs the others. Returns 0,
 * -ECANCELED (the task was cancelled), or -EPERM outside a task.
 * weft has no cooperative budget (Tokio forces a yield after 128 ready operations): a call
 * that completes without waiting (a channel send or receive that finds room or a value, a
 * free lock, a read that finds data) does not switch, so a task that loops on such calls
 * keeps its worker, and its worker's other tasks wait, until it parks or yields. The
 * involuntary hand-off (weft_config.handoff_us) does not help it either: its thread takes the
 * worker back at its next weft call. Yield now and then in such a loop. */
WEFT_API int weft_yield(void);

/* Parks the current task until `deadline` has passed. Returns 0 (the deadline passed; the
 * call never returns 0 before it), -ECANCELED, or -EPERM outside a task. */
WEFT_API int weft_sleep_until(int64_t deadline);

/* Sleeps for at least `ns` nanoseconds from the call, measured on the clock itself rather
 * than the tick's cached weft_now() (so a task that ran long since the tick began still
 * sleeps, and lets the others run); `ns` <= 0 returns at once. Otherwise as
 * weft_sleep_until. */
WEFT_API int weft_sleep(int64_t ns);

/* Ends the current task now with `result`, as if its function had returned it: cleanup
 * handlers run, the stack is dropped without unwinding. Only from inside a stackful task;
 * elsewhere it returns -EPERM (the only way it returns). */
WEFT_API int weft_exit(void *result);

/* Returns the current task, or NULL outside a task. Runtime thread only. */
WEFT_API weft_task *weft_self(void);

/* Returns `t`'s id (unique within its runtime, starting at 1; the main task is 1), or 0 for
 * NULL or a stale handle. */
WEFT_API uint64_t weft_task_id(const weft_task *t);

/* Returns `t`'s name ("" when it has none, for NULL, or for a stale handle); the string
 * lives as long as the handle. */
WEFT_API const char *weft_task_name(const weft_task *t);

/* What a task is doing now, read through its handle without joining it (a snapshot: it may
 * change as soon as it is read). */
enum {
    WEFT_TASK_READY = 1,     /* queued to run (never run yet, or woken, or yielded) */
    WEFT_TASK_RUNNING = 2,   /* on its worker's CPU now (from another thread's view) */
    WEFT_TASK_PARKED = 3,    /* waiting in a blocking call */
    WEFT_TASK_FINISHED = 4,  /* returned or called weft_exit; not joined yet */
    WEFT_TASK_CANCELLED = 5, /* finished by a cancellation (its join gives WEFT_CANCELED) */
    WEFT_TASK_FAILED = 6     /* finished without running: it got no stack (WEFT_NOMEM) */
};
/* Returns WEFT_TASK_*, or -EINVAL (NULL), -ESRCH (a stale handle: joined or detached and
 * reaped). Any thread. */
WEFT_API int weft_task_status(const weft_task *t);

/* Returns 1 if the current task has been cancelled, 0 if not, -EPERM outside a task. */
WEFT_API int weft_canceled(void);

/* Task-local storage, keyed by the address of any object of the caller's (usually a static
 * variable), so that no key registry is needed.
 * weft_local_set() stores `value` under `key` for the current task, replacing (and running
 * the destructor of, once, after the new value is in place: a destructor that clears its key
 * clears the new value) an earlier value; `dtor` (may be NULL) runs on the value when the task
 * finishes. Returns 0, -EINVAL (key NULL), -ENOMEM, -EPERM outside a task.
 * weft_local_get() returns the current task's value for `key`, or NULL. */
WEFT_API int weft_local_set(const void *key, void *value, void (*dtor)(void *));
WEFT_API void *weft_local_get(const void *key);

/* Registers `fn(arg)` to run when the current task finishes, however it finishes (return,
 * weft_exit, cancellation), in last-registered-first order: the "defer" of the runtime.
 * Handlers run on the task's own stack, may call non-blocking weft functions, and see
 * weft_canceled() as it was. A handler may register more: every defer runs, those included
 * (a handler that registers itself for ever loops, as any loop would). Task-locals set while
 * the task finishes get their destructors run in up to 4 passes, as pthread keys' do; what
 * is still set after them is dropped without its destructor.
 * Returns 0, -EINVAL (fn NULL), -ENOMEM, -EPERM outside a task.
 * weft_defer_pop() removes the most recent handler and runs it if `run` is non-zero; returns
 * 0, -ENOENT (none registered) or -EPERM. */
WEFT_API int weft_defer(void (*fn)(void *), void *arg);
WEFT_API int weft_defer_pop(int run);

/* ---------------------------------------------------------------------------------------
 * Wakers
 * ------------------------------------------------------------------------------------- */

/* A waker re-schedules one parked task: a small value, copied freely. It names the task and
 * the park it was made for, so a waker used late (the task was already woken, is running,
 * has moved on to another wait, or has finished and its record was reused) does nothing.
 * Waking a task that has not parked yet makes its next park return at once. */
typedef struct weft_waker {
    void *task;     /* private: the task record, or NULL for a waker that does nothing */
    uint64_t epoch; /* private: which park of that task it wakes */
} weft_waker;

/* Returns a waker for the current task's next park ({NULL, 0} outside a task). */
WEFT_API weft_waker weft_waker_current(void);

/* Wakes the park `w` names, if it is still current. Any thread: from another thread the task
 * is handed to its runtime through a lock-free queue and the runtime is woken; the task
 * record must not have been freed, which holds while the runtime that owns it is running. */
WEFT_API void weft_waker_wake(weft_waker w);

/* ---------------------------------------------------------------------------------------
 * Futures
 * ------------------------------------------------------------------------------------- */

typedef struct weft_future weft_future;

/* What a poll is given: the waker to wake when the future can make progress. */
typedef struct weft_context {
    weft_waker waker;
} weft_context;

enum { WEFT_PENDING = 0, WEFT_READY = 1 };

/* The operations of a future. Write your own to make a leaf future (for instance one that a
 * callback from another C library completes).
 * poll: makes progress. When done it calls weft_future_complete(self, status, value) and
 *   returns WEFT_READY; otherwise it arranges for cx->waker to be woken when progress is
 *   possible, and returns WEFT_PENDING. It is never called again once it returned READY.
 *   A poll that returns anything else (its negative errno, C-style) completes the future
 *   with that status (-EINVAL for a positive value) rather than leave it pending with
 *   nothing arranged to wake its driver.
 *   Each poll may give a different waker; the latest one is the one to wake. A driver that
 *   gives up polls once more with an empty waker (task NULL: weft_await at its deadline or
 *   cancel, a cancelled stackless task, weft_future_first for its losers,
 *   weft_future_timeout for its child once the deadline passed, and every combinator and
 *   chain destroyed while pending, for each pending future it polled), after which nothing
 *   is to be woken: a future kept by a thread outside the runtime must not wake a task of a
 *   runtime that has ended. A future that polls others and is destroyed pending should do
 *   the same for them.
 * drop: optional; releases what the future holds (deregisters wakers, frees itself if it was
 *   allocated). weft_future_destroy() calls it. */
typedef struct weft_future_ops {
    int (*poll)(weft_future *self, weft_context *cx);
    void (*drop)(weft_future *self);
} weft_future_ops;

/* The header every future starts with. Embed it as the first member of your own future and
 * initialise it with weft_future_init(). Fields are read-only for users. */
struct weft_future {
    const weft_future_ops *ops;
    int ready;   /* 1 once completed */
    int status;  /* once ready: >= 0, or a negative errno */
    void *value; /* once ready: the value */
};

/* Initialises the header of a user-defined future (NULL: does nothing). */
WEFT_API void weft_future_init(weft_future *f, const weft_future_ops *ops);

/* Marks `f` completed with `status` (>= 0 or -errno) and `value`; for use inside poll (NULL:
 * does nothing). */
WEFT_API void weft_future_complete(weft_future *f, int status, void *value);

/* Polls `f` once with `cx`; returns WEFT_READY or WEFT_PENDING. A completed future returns
 * READY without being polled again. -EINVAL for a NULL future or context, or a header with
 * no poll function. */
WEFT_API int weft_future_poll(weft_future *f, weft_context *cx);

/* Drops `f` through its ops (NULL is ignored). The caller owns every future it created. */
WEFT_API void weft_future_destroy(weft_future *f);

/* Awaits `f` from the current task until it completes or the deadline passes. Returns the
 * future's status (>= 0, or its negative errno) and stores its value in `*value` (if not
 * NULL); or -ETIMEDOUT / -ECANCELED, the future left pending and still owned by the caller;
 * -EINVAL (f NULL); -EPERM outside a task. */
WEFT_API int weft_await(weft_future *f, void **value, int64_t deadline);

/* A timer future: completes with status 0 once `deadline` has passed. The first leaf future.
 * `*out` is owned by the caller (weft_future_destroy). It belongs to the worker that created
 * it (its timer is on that worker's heap): polled by a task of another worker it completes
 * with -EPERM, and once polled it must be destroyed on its own worker (elsewhere it is
 * leaked, with a warning, rather than touched). Returns 0, -ENOMEM, -EPERM outside a
 * runtime. Runtime thread only. */
WEFT_API int weft_timer_future(weft_future **out, int64_t deadline);

/* A promise: a one-shot future that any task resolves with a value or rejects with an error.
 * One task at a time may await it: a weft_await while another task's await waits on it
 * returns -EBUSY at once (it would take the other's place, which would then never wake).
 * A poll by another task, through a combinator (which cannot report -EBUSY), is no await:
 * made before or during the await, it takes neither the awaiter's place nor that of a third
 * task polling so, and refuses no weft_await: the settle wakes the awaiter and every task
 * polling it (an awaiter and one other poller take no memory; more pollers at once take a
 * small array from the allocator, kept until the promise is freed; a poller that finds no
 * memory for its place is woken at once to poll again, rather than left unwoken).
 * Reference counted: create gives one reference, weft_promise_retain() adds one,
 * weft_promise_release() drops one (as does weft_future_destroy() on its future, for code
 * that holds only the future); the last drop frees it. Resolving or rejecting after the
 * first resolution returns -EALREADY.
 * A broken promise: when a reference is dropped while the promise is unsettled and one is
 * left, and that one is its awaiter's (a task is parked awaiting it then, or a later poll is
 * made holding the only reference), nobody is left to settle it: it settles with -EPIPE and
 * the awaiter is woken, as futures-rs's oneshot reports a dropped sender. So a producer
 * that holds a reference of its own (retain before handing it over) and drops it without
 * settling ends the wait at once; one that merely borrows the awaiter's reference must
 * settle before the awaiter's deadline, as before. */
typedef struct weft_promise weft_promise;

/* Returns 0, -EINVAL, -ENOMEM, -EPERM outside a runtime. Runtime thread only (the create);
 * the promise may then be resolved or rejected from any thread (another worker, another
 * runtime, a thread weft did not start) and awaited by a task of any worker or runtime. */
WEFT_API int weft_promise_create(weft_promise **out);
/* The promise's future (the same object; destroying it drops a reference). */
WEFT_API weft_future *weft_promise_future(weft_promise *p);
WEFT_API void weft_promise_retain(weft_promise *p);
/* Drops a reference; the last one frees the promise. NULL is ignored. Any thread. */
WEFT_API void weft_promise_release(weft_promise *p);
/* Return 0, -EALREADY (already settled), -EINVAL (NULL, or reject with err >= 0). Any
 * thread. */
WEFT_API int weft_promise_resolve(weft_promise *p, void *value);
WEFT_API int weft_promise_reject(weft_promise *p, int err);

/* Combinators. Each returns a new future owned by the caller, borrowing the `n` futures in
 * `fs` (the array is copied; the futures must outlive the combinator, and stay owned by the
 * caller). All return 0, -EINVAL (out or fs NULL, n == 0 or above 2^20, NULL entries; the same
 * future may appear more than once), -ENOMEM, -EPERM outside a runtime
 * (the combinator is made on the calling worker).
 * first: completes when any child completes, with status = the child's index and value = the
 *   child's value (read the child's own status from the child).
 * all: completes when every child has completed, with status 0 and value NULL.
 * timeout: completes as `f` does, or with -ETIMEDOUT once `deadline` passes; like a timer
 * future it belongs to the worker that made it (another worker's poll completes it with
 * -EPERM; destroyed elsewhere once polled, it is leaked with a warning).
 * Destroyed while pending, a combinator (these, join, and a chain for the stage it drives)
 * polls each child still pending once more with an empty waker, on the destroying thread, so
 * that none keeps the waker of the combinator's latest poll (a child completing in that poll
 * completes, and stays the caller's: a timer or timeout child of another worker, polled so
 * from this thread, completes with -EPERM by the rule above). That waker is taken back
 * whichever task destroys it: a promise then frees the place holding exactly that waker, and
 * leaves a later poll's of the same task, and the place of a task awaiting it with
 * weft_await. So a promise that outlives the runtime may be settled from anywhere afterwards. */
WEFT_API int weft_future_first(weft_future **out, weft_future *const *fs, size_t n);
WEFT_API int weft_future_all(weft_future **out, weft_future *const *fs, size_t n);
WEFT_API int weft_future_timeout(weft_future **out, weft_future *f, int64_t deadline);

/* Select of N: weft_future_first is it. It completes with the index of a completed child as
 * its status and that child's value, the child itself left to the caller (its own status is
 * in fs[i]->status); when several have completed by one poll, the lowest index wins (first
 * is not randomised, unlike weft_select over channels). Cancel the losers by destroying them
 * or keep awaiting them: they are the caller's. */

/* A future that is complete from the start, with `status` (>= 0 or -errno) and `value`; and
 * one that never completes (an await of it returns only at its deadline or cancellation).
 * `*out` is the caller's (weft_future_destroy). Return 0, -EINVAL (out NULL), -ENOMEM. Any
 * thread. */
WEFT_API int weft_future_ready(weft_future **out, int status, void *value);
WEFT_API int weft_future_pending(weft_future **out);

/* Chains. Unlike first/all/join, each takes ownership of `f` on success (destroying the
 * chain destroys f, and any future fn returned); on an error return, f stays the caller's.
 * fn runs once, inside a poll of the chain, on the polling task's thread; it must not block.
 * All return 0, -EINVAL (out, f or fn NULL), -ENOMEM. Any thread (the creation); poll as any
 * future.
 *
 * map: completes with f's status and fn(value, arg) as its value when f succeeds (status
 *   >= 0); with f's status and value, fn not called, when f fails. */
typedef void *(*weft_map_fn)(void *value, void *arg);
WEFT_API int weft_future_map(weft_future **out, weft_future *f, weft_map_fn fn, void *arg);
/* and_then: when f succeeds, fn(value, arg, &next) returns 0 and sets *next to the next
 *   future, which the chain then owns and drives; the chain completes as next does. fn may
 *   instead return a negative errno (the chain completes with it, and destroys *next if it
 *   was set); 0 with *next NULL, uninitialised (no poll function), f itself or the chain
 *   itself completes it with -EINVAL (the chain owns f already, and destroys it once). When
 *   f fails, the chain completes with f's status and a NULL value, fn not called. */
typedef int (*weft_and_then_fn)(void *value, void *arg, weft_future **next);
WEFT_API int weft_future_and_then(weft_future **out, weft_future *f, weft_and_then_fn fn,
                                  void *arg);
/* or_else: when f fails, fn(status, arg, &next, &value) recovers: it returns 0 and sets
 *   *next to a replacement future (owned and driven by the chain, which completes as it
 *   does; one it cannot drive, as for and_then, fails it with -EINVAL); or returns a status
 *   >= 0 with *next left NULL, the chain completing with that status and *value; or returns
 *   a negative errno, the chain failing with it. When f succeeds, the chain completes with
 *   f's status and value, fn not called. */
typedef int (*weft_or_else_fn)(int status, void *arg, weft_future **next, void **value);
WEFT_API int weft_future_or_else(weft_future **out, weft_future *f, weft_or_else_fn fn, void *arg);

/* join: completes when all `n` children have, borrowed as for weft_future_all, and fills
 * `statuses[i]` and `values[i]` (either array may be NULL; each of n entries, owned by the
 * caller, must outlive the join) with child i's status and value. Its own status is the
 * number of children that failed (0: all succeeded); its value NULL. Returns 0, -EINVAL
 * (out or fs NULL, n == 0 or above 2^20, a NULL child), -ENOMEM. Any thread. */
WEFT_API int weft_future_join(weft_future **out, weft_future *const *fs, size_t n, int *statuses,
                              void **values);

/* A shared future: any number of tasks, of any worker or runtime, and plain threads, await
 * one future at once, and every awaiter gets the same status and value (a promise has one
 * awaiter at a time). Reference counted: create gives the caller one reference;
 * weft_shared_retain() adds one per extra holder, weft_shared_release() drops one, the last
 * frees it. The value is handed out as is: what it points to is not the shared future's. */
typedef struct weft_shared weft_shared;

/* Takes ownership of `f` (on success; on an error it stays the caller's) and drives it to
 * completion in a stackless task on the caller's worker (pinned there, so a future bound to
 * its worker, such as a timer future, is fine), which then settles the shared future and
 * wakes every awaiter; f is destroyed then. If that task is cancelled first (the runtime
 * shuts down), the shared future settles with -ECANCELED. Returns 0, -EINVAL (out or f NULL),
 * -ENOMEM, -EPERM outside a runtime. Runtime thread only. */
WEFT_API int weft_shared_create(weft_shared **out, weft_future *f);
/* Any thread. NULL is ignored. */
WEFT_API void weft_shared_retain(weft_shared *s);
WEFT_API void weft_shared_release(weft_shared *s);
/* Waits until the shared future has settled; returns its status (>= 0 or its negative errno)
 * and stores its value in `*value` (if not NULL). Or -ETIMEDOUT / -ECANCELED (the shared
 * future is unchanged; others still get its outcome), -EINVAL (s NULL), -EPERM on a worker's
 * thread outside a stackful task. A task parks; a plain thread outside every runtime blocks
 * (never cancelled). The caller holds a reference for the duration. */
WEFT_API int weft_shared_await(weft_shared *s, void **value, int64_t deadline);
/* Never waits: the status (and *value) if settled, else -EAGAIN (ambiguous with a future
 * whose status is -EAGAIN: await with an expired deadline tells them apart). Any thread. */
WEFT_API int weft_shared_try(weft_shared *s, void **value);
/* A future that completes with the shared future's status and value: for combinators (a
 * select with weft_future_first, a join) and stackless tasks, which cannot call
 * weft_shared_await. Any number may exist; each holds a reference on `s` until destroyed.
 * `*out` is the caller's (weft_future_destroy). Returns 0, -EINVAL, -ENOMEM. Any thread. */
WEFT_API int weft_shared_future(weft_shared *s, weft_future **out);

/* Spawns a stackless task that drives `f` by polling it whenever its waker fires: no stack,
 * only the task record. The task takes ownership of `f` and destroys it when finished; a
 * join reports the future's value (or WEFT_CANCELED). Options as weft_spawn (stack_size is
 * ignored). Returns 0, -EINVAL, -ENOMEM, -EPERM. Runtime thread only. */
WEFT_API int weft_spawn_future(weft_task **out, weft_future *f, const weft_spawn_opts *opts);

/* ---------------------------------------------------------------------------------------
 * File descriptors (a first reactor; the I/O layer builds on it)
 * ------------------------------------------------------------------------------------- */

#define WEFT_READABLE 0x1
#define WEFT_WRITABLE 0x2

/* Parks the current task until `fd` is readable and/or writable (`events`, a mask of
 * WEFT_READABLE/WEFT_WRITABLE) or the deadline passes. The fd is registered once,
 * edge-triggered, and stays registered until weft_close()/weft_fd_forget(). It returns at
 * once when the fd is ready now, as poll(2) would say, on both backends (so a second wait
 * with no EAGAIN in between, an fd still writable or bytes left unread, returns at once, as
 * libdill's fdin/fdout do), and may also return for an edge that came since the last wait
 * though the fd is no longer ready: retry the syscall after it returns, and wait again on
 * EAGAIN. On epoll the look costs one poll(2) before the park, and is skipped when other
 * tasks already wait on the fd in that direction: the wait then queues behind them and
 * returns with the next edge handed on to it. A passed deadline makes it a look at the fd.
 * Several tasks may wait for the same direction of one fd (as in Go): they all wait, none
 * gets -EBUSY. On epoll they are served in the order they began to wait: an edge wakes the
 * first, and when it leaves the next is woken too (possibly with nothing left for it: retry
 * the syscall, and wait again on EAGAIN); on io_uring each waits on its own poll and the
 * kernel picks the order. A regular file or a directory is always ready, as poll(2) says
 * (epoll itself refuses such an fd). Like every I/O call below, the first wait on an fd sets
 * O_NONBLOCK on it (see "I/O on file descriptors").
 * Returns the ready mask (> 0; it may include WEFT_READABLE|WEFT_WRITABLE also on errors or
 * hang-up, so that the retried syscall reports them), -ETIMEDOUT, -ECANCELED, -EBADF (fd
 * closed through weft_close while waiting, or not an open fd), -EINVAL, -EPERM outside a
 * task. */
WEFT_API int weft_fd_wait(int fd, int events, int64_t deadline);

/* A future of weft_fd_wait: completes once `fd` is ready for `events` (WEFT_READABLE,
 * WEFT_WRITABLE or both) with the ready mask as its status (> 0, as weft_fd_wait's), or with
 * -EBADF (not an open fd, or forgotten meanwhile). For stackless tasks (weft_spawn_future)
 * and combinators: weft_future_first of it and a timer future is a readiness wait with a
 * deadline. Like weft_fd_wait it takes the readiness it reports (on epoll: the edge), and
 * one destroyed before completing takes nothing. It belongs to the worker that created it:
 * polled by a task of another worker it completes with -EPERM, and it must be destroyed on
 * its own worker (elsewhere it is leaked, with a warning, rather than touched). Until it
 * completes it costs a small pinned task of that worker, which waits with weft_fd_wait
 * (created at the first poll, unless the fd is ready then). Returns 0, -EINVAL (out NULL,
 * fd < 0, events not within WEFT_READABLE|WEFT_WRITABLE), -ENOMEM, -EPERM outside a worker's
 * thread. */
WEFT_API int weft_fd_future(weft_future **out, int fd, int events);

/* Forgets `fd`'s registration (wakes its waiters with -EBADF) and what weft knows of it (its
 * kind) without closing it; call it before closing an fd some other way. On every worker that
 * used it, as weft_close() does: from a task it waits for them. Outside a task (a future's
 * poll, a callback) it cannot wait, and the other workers forget the fd after it returns, by
 * its number: do not close(2) such an fd right after it (a new file that takes the number
 * before they did could lose its registration or get a send queued for the old one); close it
 * with weft_close(), which closes it once every worker has forgotten it. Returns 0, -EBADF
 * (not an open fd: weft's fd table never grows for one), -ENOMEM, -EPERM outside a runtime. */
WEFT_API int weft_fd_forget(int fd);

/* ---------------------------------------------------------------------------------------
 * The poller: readiness without coroutines (mio's shape)
 *
 * For a program that wants an event loop and nothing else, or a library's loop to fit into:
 * register fds under a 64-bit token with an interest, then wait for an array of events.
 * It needs no runtime: any thread may create one, in a program that never calls weft_run.
 * Over epoll, or over io_uring's poll operations (WEFT_BACKEND_*, as weft_config.backend).
 *
 * Threads (mio's Registry is Sync; so is this): register, reregister, deregister and wake
 * may be called from any thread at any time, also while another thread waits: a
 * registration made during a wait is watched by that wait. One thread at a time waits (a
 * second concurrent wait returns -EBUSY). Destroy when no other call is in progress.
 *
 * Spurious events are possible (an fd reported with nothing to do: on io_uring an edge
 * registration may be reported twice in one wait, or like a level one on kernels before
 * 5.13 which lack multishot polls): the program tries its call and handles EAGAIN. Deregister
 * an fd before closing it: on epoll a close removes the registration (once every duplicate
 * of the fd is closed), on io_uring the registration and its poll live on until deregister.
 * ------------------------------------------------------------------------------------- */

typedef struct weft_poller weft_poller;

/* Interest bits, beside WEFT_READABLE and WEFT_WRITABLE (at least one of which is needed). */
#define WEFT_POLL_LEVEL 0x0u /* the default: reported at every wait while the fd is ready */
/* Reported once per new readiness (data arrived, room freed): read or write until EAGAIN
 * before waiting again, or no new report comes (EPOLLET). */
#define WEFT_POLL_EDGE 0x10u
/* Reported once, then disabled (still registered) until weft_poller_reregister arms it
 * again (EPOLLONESHOT): one event per hand-off, for a pool of threads sharing one poller. */
#define WEFT_POLL_ONESHOT 0x20u

/* Event bits, beside WEFT_READABLE and WEFT_WRITABLE (the directions the fd is ready for,
 * among those registered). The closed and error bits come whatever the interest.
 * - ERROR: the fd has a pending error (a refused connect, a reset): the next call returns it
 *   (or read getsockopt SO_ERROR). On io_uring also when the kernel failed the poll itself.
 * - HUP: both directions are closed (EPOLLHUP): a refused connect, a pipe whose writer
 *   closed, a socket shut down both ways. Implies READ_CLOSED and WRITE_CLOSED.
 * - READ_CLOSED: no more data will come (the peer shut down its writing side, EPOLLRDHUP):
 *   reads return what is buffered, then 0.
 * - WRITE_CLOSED: writes will fail (the peer is gone: HUP, or an error without readability).
 * - WAKE: the event weft_poller_wake sent; its token is WEFT_POLL_WAKE_TOKEN.
 * A mask rather than one bool a field: one test covers several conditions, it mirrors
 * epoll's word, and bits can be added later without changing the structure. */
#define WEFT_POLL_ERROR        0x100u
#define WEFT_POLL_HUP          0x200u
#define WEFT_POLL_READ_CLOSED  0x400u
#define WEFT_POLL_WRITE_CLOSED 0x800u
#define WEFT_POLL_WAKE         0x1000u

/* The token of the waker's event, which no registration may use. */
#define WEFT_POLL_WAKE_TOKEN UINT64_MAX

/* One readiness event, as weft_poller_wait reports it (16 bytes). */
typedef struct weft_poll_event {
    uint64_t token;     /* as registered */
    uint32_t events;    /* WEFT_READABLE, WEFT_WRITABLE, WEFT_POLL_ERROR ... WEFT_POLL_WAKE */
    uint32_t reserved_; /* zero */
} weft_poll_event;

/* Creates a poller over the backend `flags` names: WEFT_BACKEND_DEFAULT (the WEFT_BACKEND
 * environment variable, "epoll" or "io_uring", else epoll), _EPOLL or _IO_URING; io_uring
 * falls back to epoll where the kernel refuses it or lacks what the poller needs (5.11's
 * waits with a timeout): weft_poller_backend tells which one it got. Returns 0, -EINVAL
 * (out NULL, unknown flags), -ENOMEM, -EMFILE or another -errno of epoll_create/eventfd.
 * `*out` is freed with weft_poller_destroy. Any thread; no runtime needed. */
WEFT_API int weft_poller_create(weft_poller **out, unsigned flags);

/* Closes the poller's kernel objects and frees it (NULL is ignored). Registered fds are not
 * closed. No other call on `p` may be in progress or come later. Any thread. */
WEFT_API void weft_poller_destroy(weft_poller *p);

/* "epoll" or "io_uring" (NULL for NULL). Any thread. */
WEFT_API const char *weft_poller_backend(const weft_poller *p);

/* Watches `fd` for `interest` (WEFT_READABLE and/or WEFT_WRITABLE, with WEFT_POLL_EDGE or
 * WEFT_POLL_ONESHOT if wanted; level-triggered otherwise), reporting its events under
 * `token` (any value but WEFT_POLL_WAKE_TOKEN). The fd is not changed (set O_NONBLOCK
 * yourself for edge-triggered use). Returns 0; -EEXIST (already registered), -EBADF (not an
 * open fd), -EPERM (a regular file or directory: always ready, never polled), -EINVAL (p
 * NULL, no direction, unknown bits, the reserved token, the poller's own fd), -ENOMEM, or
 * another -errno of epoll_ctl. Any thread, also while another waits. */
WEFT_API int weft_poller_register(weft_poller *p, int fd, uint64_t token, unsigned interest);

/* Replaces fd's token and interest, and re-arms a WEFT_POLL_ONESHOT registration that has
 * fired. Returns 0, -ENOENT (not registered), and the errors of weft_poller_register. Any
 * thread. */
WEFT_API int weft_poller_reregister(weft_poller *p, int fd, uint64_t token, unsigned interest);

/* Stops watching `fd`; no event of it is reported by a wait that starts afterwards (one
 * already under way may still report one taken before). Returns 0, -ENOENT (not
 * registered), -EBADF (fd < 0; on epoll also an fd already closed, which the close
 * deregistered), -EINVAL (p NULL). Any thread. */
WEFT_API int weft_poller_deregister(weft_poller *p, int fd);

/* Waits until at least one event is ready, `deadline` (absolute CLOCK_MONOTONIC ns, or
 * WEFT_FOREVER) passes, or weft_poller_wake is called, and fills events[0 .. max) with what
 * is ready: each registered fd at most once per wait on epoll; the waker's event at most
 * once however many wakes came. A deadline that has passed polls without blocking. Events
 * beyond `max` stay for the next wait.
 * Returns the number of events (0 when the deadline passed first), -EINTR (a signal
 * handler ran), -EBUSY (another thread is waiting on `p`), -EINVAL (p or events NULL,
 * max <= 0). Blocks the calling thread: call it from a plain thread, not from a task (which
 * would stall its worker). One thread at a time. */
WEFT_API int weft_poller_wait(weft_poller *p, weft_poll_event *events, int max, int64_t deadline);

/* Makes the wait in progress on `p` return (or the next one, at once), with one event whose
 * token is WEFT_POLL_WAKE_TOKEN and events WEFT_POLL_WAKE; several wakes before that wait
 * returns make one event. Returns 0, -EINVAL (p NULL). Any thread, and async-signal-safe
 * (one write to an eventfd). */
WEFT_API int weft_poller_wake(weft_poller *p);

/* ---------------------------------------------------------------------------------------
 * I/O on file descriptors
 *
 * Every call below tries the system call first and parks the task only when the fd is not
 * ready (EAGAIN), so the fd must be non-blocking. weft's socket calls create them so; any
 * other fd is made so by weft itself at its first use (the first I/O call or weft_fd_wait on
 * it): weft looks at what it is once (fstat, and SO_TYPE for a socket), remembers it until
 * the fd is closed or forgotten, and sets O_NONBLOCK unless it is a regular file, block
 * device or directory (Go does the same). O_NONBLOCK belongs to the open file description:
 * every fd dup()ed from it and every process that shares it (a terminal's stdin shared with
 * the shell, say) sees it too. weft_fd_nonblock() sets it ahead of time.
 *
 * Each call takes a deadline, returns -ECANCELED at once in a cancelled task, and returns
 * the other failures as the system call's negative errno (-EBADF for a number that is not an
 * open fd). A read returns what one system call gives: a datagram, a seqpacket record or a
 * terminal line each; a burst of them is read one per call without waiting, on both
 * backends. A length above what Linux moves in one call (0x7ffff000 bytes) is cut to it per
 * call: a read returns at most that, a write loops on. Several tasks may use one fd in the
 * same direction: they wait their turn (see weft_fd_wait), none gets -EBUSY. A turn is one
 * system call, not one weft call: two weft_write (or weft_send, weft_writev) calls on one
 * stream that both have to wait for room may interleave their bytes (on epoll four writers of
 * 4 MiB each on loopback do), as Tokio's split halves would; libuv's and Go's write queues
 * keep each write whole, weft does not. Serialise the writers of a stream whose messages
 * must stay whole (a weft_mutex held across the write, or one writer task fed by a channel).
 * Close fds that weft may have used with weft_close(), or call
 * weft_fd_forget() first: a number closed some other way and reused keeps what weft knew of
 * the old fd. All of them: from inside a task only (-EPERM elsewhere), but weft_close().
 *
 * On io_uring (where the kernel has provided-buffer rings, 6.0+), the first weft_read,
 * weft_readv or weft_recv of a stream socket (not an AF_UNIX one: the kernel's multishot
 * receive can miss its end of stream, liburing issue #1549, so those are read with plain
 * ring operations) arms a receive that takes the socket's bytes as they arrive and holds
 * them for the next reads; a read that finds bytes held returns them
 * without a system call. So once weft has read from a socket, read it through weft only (a
 * plain read(2) would miss the bytes weft holds; weft_fd_wait reports them as readable), and
 * from tasks of one worker: the receive and the bytes it holds belong to the worker of the
 * first read, and a read on another worker does not see them (a connection handed to a task
 * of another worker before anyone read it is fine; after, read it where it was first read),
 * and close it with weft_close(): weft_close() and weft_fd_forget() drop what is held, and a
 * socket closed with plain close() stays open in the kernel until its peer sends or hangs
 * up. A weft_recv with flags on such a socket reads the held bytes: MSG_PEEK leaves them,
 * MSG_TRUNC discards them as TCP does (see weft_recv), MSG_DONTWAIT returns -EAGAIN when none
 * are held, MSG_ERRQUEUE and MSG_OOB ask the socket itself instead, other flags are ignored
 * (MSG_WAITALL still waits for the rest: weft_recv).
 * The held bytes are copied into the caller's buffer in user space, as the sends behind
 * (below) copy from it: a NULL buffer (one in the first page) with a length is -EFAULT on
 * both backends, for every read, write, receive and send call (weft_read, weft_readv, weft_recv,
 * weft_recvfrom, weft_write, weft_writev, weft_send, weft_sendto, weft_file_read,
 * weft_file_write, weft_file_pread, weft_file_pwrite; so is a weft_recvfrom, weft_sendto or
 * weft_connect address there), before any I/O, whatever the fd's state (the end of a file, a
 * pipe without a reader), so a datagram is not lost to it; one exception: a weft_recv or
 * weft_recvfrom with MSG_TRUNC on a stream socket, which copies nothing (see weft_recv), may
 * pass NULL. But a pointer to other memory the caller
 * may not write (or read, for a send) faults in the caller, as memcpy would, where read(2) would
 * return -EFAULT.
 *
 * On io_uring a weft_write or weft_send (no flags but MSG_MORE) of at most 16 KiB to such a
 * socket (read through weft; used by no other worker; no error, end of stream or
 * weft_shutdown seen on it; its deadline not already passed) is sent behind: its bytes are
 * copied, the send goes to the kernel with the worker's next batch, and the call returns len
 * without waiting for it (an echo then costs one park instead of two). One send per socket
 * is in flight at a time, so bytes keep their order: the next write waits for it (until its
 * own deadline). What the kernel answers for the send is what that next weft_write,
 * weft_send, weft_writev or weft_sendfile returns: an error (-EPIPE, -ECONNRESET...) comes
 * one write late, as TCP's own errors do, and from then on the socket's writes are not sent
 * behind. weft_close() and weft_fd_forget() from a task wait for the send (until the
 * deadline it was written with; then the rest is dropped), and
 * weft_shutdown(SHUT_WR) takes effect after it, so the peer sees every byte before the end of
 * stream (called from a task of another worker that used the socket too, it asks the
 * writer's worker and waits for its answer). A weft_close() or weft_fd_forget() that cannot wait
 * for it (called from a cancelled task, from a task of another worker than the writer's, or from
 * outside a task) lets the send go on after it, through a duplicate of the fd that weft closes once
 * the send is over: the peer sees every byte, then the end of stream, as after close(2) of a socket
 * the kernel still holds bytes for (after such a weft_fd_forget the caller's own writes may
 * overtake what is still in flight). What is still unsent at the write's deadline, 60 s after
 * such a close (as the kernel gives up an orphaned socket whose peer stopped reading), or at the
 * runtime's end is dropped, as a write parked on epoll would be cut there; so is the rest
 * when no fd is left for the duplicate, and after a weft_fd_forget from outside a task of
 * another worker (which does not wait for the writer's worker, so
 * the number may name another file by the time that worker forgets it; a send that worker
 * has not yet handed to the kernel, in the same tick as the write, even goes to that file:
 * forget such a socket from a task, or on the writer's worker). Shut such a socket down
 * with
 * weft_shutdown(): a plain close() or shutdown(2) before the send leaves would fail or
 * misdirect it. A socket used by
 * tasks of two workers is not sent behind once both have used it, but the first write from
 * the second worker may overtake a send of the first still in flight: keep a connection's
 * writes to the tasks of one worker (as its reads already are, above). Larger writes,
 * writes to other fds, and every write on epoll return only once the kernel has taken the
 * bytes.
 * ------------------------------------------------------------------------------------- */

/* Sets O_NONBLOCK on fd. Returns 0 or -errno. Any thread. */
WEFT_API int weft_fd_nonblock(int fd);

/* Reads up to len bytes: returns the count (> 0), 0 at end of file, or -errno. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, int64_t deadline);
/* As readv(2): -EINVAL for iovcnt < 0 or > IOV_MAX or lengths summing past SSIZE_MAX,
 * -EFAULT for a NULL array with iovcnt > 0, on both backends. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);

/* Writes all len bytes, parking while the fd is full: returns len, or -errno (-ETIMEDOUT,
 * -EPIPE, ...) if it stopped early, in which case an unknown prefix was written and the
 * stream should be closed; -EIO if the fd took nothing of a non-empty write (write(2)
 * returned 0), rather than trying forever. weft_writev() writes every buffer likewise
 * (iovcnt <= 1024). */
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);

/* recv(2)/send(2) with flags. weft_send writes everything, like weft_write, and never raises
 * SIGPIPE (MSG_NOSIGNAL is added); with MSG_DONTWAIT it makes one attempt instead and never
 * parks, on both backends: it returns what the socket took (possibly fewer than len bytes),
 * or -EAGAIN when it took nothing (on io_uring also while a send written behind, below, is
 * still in flight), whatever the deadline; so does weft_sendto with MSG_DONTWAIT (to a
 * Unix-domain address whose receiver is full too). A receive with MSG_DONTWAIT (weft_recv,
 * weft_recvfrom) makes one attempt and returns -EAGAIN when nothing is there, whatever the
 * deadline, on both backends, and never parks (on io_uring, bytes the armed receive holds are
 * returned first; else it is one plain system call, so no other task of the worker runs
 * meanwhile); so does one with MSG_ERRQUEUE, as recv(2) never waits for the
 * error queue (it reads the socket's error queue, never bytes io_uring holds for the stream),
 * and one with MSG_OOB, as recv(2) never waits for an urgent byte (it returns the byte, or the
 * kernel's -EINVAL when there is none, -EAGAIN when its mark came before it). MSG_TRUNC on a
 * TCP socket discards up to len bytes without copying them, as recv(2) does there (with
 * MSG_PEEK it counts them and takes none), leaving the buffer as it was, on both backends; so
 * the buffer may be NULL there, as recv(fd, NULL, n, MSG_TRUNC) is a common way to skip n bytes
 * (on any stream socket: the kernel gives its own answer, and io_uring's held bytes are
 * skipped); on a datagram socket it returns the datagram's full length, as recv(2), and a NULL
 * buffer is -EFAULT (above), as is one without MSG_TRUNC. MSG_WAITALL
 * (without MSG_PEEK or MSG_DONTWAIT) on a stream socket waits for len bytes, as a blocking recv(2)
 * does, on both backends: fewer only at the end of stream, an error, the deadline or a cancel, once
 * some came (they are returned); on a datagram or seqpacket socket it changes nothing (one datagram
 * or record per call, on both backends, as recv(2) there). MSG_PEEK | MSG_WAITALL peeks as recv(2)
 * does: on TCP it waits until len bytes are queued (trying again after sleeps of 1 ms doubling to
 * 64 ms: a socket holding any byte is readable, so there is no readiness to wait for), returning
 * fewer only at the end of stream, an error, the deadline or a cancel; on an AF_UNIX stream it
 * returns what is queued; the bytes stay for the next read, on both backends (on io_uring the
 * bytes weft holds and the socket's own are peeked together, in order). TCP urgent data
 * (MSG_OOB): once weft has read a socket on io_uring it keeps a receive armed there, which reads
 * past an urgent byte as it comes, and the kernel drops an urgent byte a read has passed; set
 * SO_OOBINLINE to receive it in the stream instead. */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags, int64_t deadline);

/* Datagrams: one datagram per call. `from`/`fromlen` may be NULL. A datagram sent to a
 * Unix-domain address whose receiver's queue is full waits for room, trying again after sleeps
 * of 1 ms doubling to 64 ms (the sender's readiness says nothing of that queue), until the
 * deadline: -ETIMEDOUT. The task stays on its worker meanwhile; a weft_close of the fd from
 * another task ends the wait with -EBADF at its next try (it never sends on an fd given the
 * number since). */
WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                               socklen_t *fromlen, int64_t deadline);
WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags,
                             const struct sockaddr *to, socklen_t tolen, int64_t deadline);

/* Accepts a connection: returns the new fd (non-blocking, close-on-exec) or -errno. When the
 * process is out of fds (EMFILE/ENFILE) it keeps the listener and backs off (1 ms doubling to
 * 100 ms) until an fd frees up or the deadline passes, then returns -EMFILE/-ENFILE; existing
 * connections are unaffected. An addr with a NULL addrlen or one in the first page is
 * -EFAULT, a negative *addrlen -EINVAL, checked before a connection is taken (accept(2) takes
 * it first and then closes it), so none is lost to a bad argument. */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline);

/* Connects a non-blocking socket: returns 0, -ETIMEDOUT, -ECONNREFUSED, ... (SO_ERROR). A
 * Unix-domain connect to a listener whose backlog is full waits for room, as a blocking
 * connect(2) does, trying again after sleeps of 1 ms doubling to 64 ms (the kernel offers no
 * readiness to wait for), until the deadline: -ETIMEDOUT. The task stays on its worker
 * meanwhile; a weft_close of the fd from another task ends the wait with -EBADF at its next
 * try (it never connects an fd given the number since). */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t len, int64_t deadline);

/* shutdown(2). Returns 0 or -errno. Never waits for the peer; on io_uring, from a stackful
 * task of a runtime of several workers, SHUT_WR and SHUT_RDWR wait for the other workers that
 * used the fd to answer (a message each), so that a send one of them has in flight goes
 * first. Elsewhere (a stackless task, a plain thread) only the calling worker's own send in
 * flight is waited for: shut a socket shared between workers down from a stackful task.
 * SHUT_RD differs between the backends for bytes that come after it: on epoll a read returns
 * them, as recv(2) does (Linux keeps taking them); on io_uring, once weft has read the socket,
 * reads return 0 for good (its armed receive took the shutdown for the end of the stream). */
WEFT_API int weft_shutdown(int fd, int how);

/* Forgets `fd` as weft_fd_forget() does (its waiters wake with -EBADF; in-flight ring
 * operations are cancelled), then closes it. Returns 0, -EBADF (not an open fd), -ENOMEM, or
 * the negative errno of close(). Outside a runtime there is nothing to forget: it just
 * closes. Any thread; but on a thread outside every runtime (a plain thread, the fn of
 * weft_block_in_place) it cannot reach the workers and just closes too: close an fd a
 * running runtime used from one of its tasks (weft_runtime_spawn a short task that calls
 * weft_close, as weft_process_free does). The one way to close an fd weft may have used.
 * In a runtime of several workers the fd is forgotten on every worker whose tasks used it
 * (their waiters wake with -EBADF too) before the number is closed, so that a new fd given
 * the same number is new to every worker (a weft_fd_wait counts as a use, and so does making
 * the fd with weft_socket or weft_accept). From a task the
 * call waits for those workers (a message each; it is not interrupted by a cancel) and
 * returns close()'s result; from a watch's callback, which cannot wait, it returns 0 and the
 * last of them closes the fd. An
 * operation that another worker's task starts on the fd while it is being closed races with
 * the close as a read(2) and a close(2) on two threads do: end such uses first (a waiter
 * already parked is woken). Fds numbered 2^20 and up are forgotten on the calling worker
 * only. A file call of another task that waits for or runs on the blocking pool with this fd
 * (weft_file_*, weft_dir_next) keeps the number open: the close returns 0 and the call, when
 * it ends, closes the fd, so it never acts on a file that reuses the number (as Go's Close
 * leaves the close to the last call in progress; until then the number is not free: do not
 * dup2 onto it). No other fd of a regular file is ever opened or closed behind the caller,
 * so its POSIX record locks (fcntl F_SETLK, lockf), which any close of the file releases,
 * stay as they are. */
WEFT_API int weft_close(int fd);

/* Sends `count` bytes of in_fd from *offset (updated; NULL: the file position) to out_fd,
 * parking while out_fd is full. Returns count, or -errno if it stopped early (fewer bytes
 * if in_fd ends first: the return value is then what was sent); -EINVAL, nothing sent, for a
 * count past SSIZE_MAX, a negative *offset, or a count that runs *offset past the largest
 * offset. out_fd closed through
 * weft_close meanwhile ends it with -EBADF on both backends, and nothing more is sent to the
 * number (*offset then says how far the file went). in_fd may also be a pipe or a socket
 * (which sendfile(2) refuses), on both backends: offset must then be NULL (else -ESPIPE),
 * the call returns what came if every writer of in_fd left first, and when it stops early
 * (a deadline, a cancel, an error of out_fd) what it read from a socket and had not sent yet
 * is lost; a pipe keeps what was not sent on epoll. A socket weft has read before on io_uring
 * (its bytes held by weft's receive, above) is read with weft_read and written with
 * weft_write through a 64 KiB buffer of the call's own, so that those bytes go first. */
WEFT_API ssize_t weft_sendfile(int out_fd, int in_fd, off_t *offset, size_t count,
                               int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * Sockets
 * ------------------------------------------------------------------------------------- */

/* A socket address of any family, with its length. The calls below that take one answer NULL
 * with -EINVAL where they require it, and another pointer into the first page (what &s->addr
 * gives for a NULL s) with -EFAULT, as do weft_connect and weft_sendfile's offset. */
typedef struct weft_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} weft_addr;

/* Fills `out` from a numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]"); NULL, "" or
 * "*" is the IPv4 wildcard, "::" the IPv6 one. Names need resolution (weft_getaddrinfo).
 * Returns 0 or -EINVAL. Any thread. */
WEFT_API int weft_addr_ip(weft_addr *out, const char *host, int port);
/* Fills `out` for a Unix socket path (a leading '@' makes it abstract). 0, -EINVAL (NULL or
 * empty), or -ENAMETOOLONG: a path of 108 bytes or more (its NUL must fit in sun_path), an
 * abstract name of more than 107 after the '@'. */
WEFT_API int weft_addr_unix(weft_addr *out, const char *path);
/* The port of an IP address (-EINVAL for other families). */
WEFT_API int weft_addr_port(const weft_addr *a);
/* The local address a socket is bound to (after binding to port 0, say). 0 or -errno. */
WEFT_API int weft_addr_local(int fd, weft_addr *out);

/* socket(2), non-blocking and close-on-exec. Returns the fd or -errno. */
WEFT_API int weft_socket(int domain, int type, int protocol);

/* Listen flags. */
#define WEFT_LISTEN_REUSEPORT 0x1u /* SO_REUSEPORT: several listeners share the port */
#define WEFT_LISTEN_V6ONLY    0x2u /* IPv6 only (by default an IPv6 wildcard takes IPv4 too) */

/* A listening stream socket bound to `addr` (TCP, or Unix for AF_UNIX addresses; SO_REUSEADDR
 * on TCP). backlog <= 0 means SOMAXCONN. Returns the fd or -errno. */
WEFT_API int weft_listen(const weft_addr *addr, int backlog, unsigned flags);
/* A connected stream socket (TCP or Unix), connected within the deadline. Returns the fd or
 * -errno (-ECONNREFUSED, -ETIMEDOUT, ...). */
WEFT_API int weft_dial(const weft_addr *addr, int64_t deadline);
/* A datagram socket (UDP, or Unix datagram) bound to `addr` (NULL: unbound, family given by
 * `family`). Returns the fd or -errno. */
WEFT_API int weft_datagram(const weft_addr *addr, int family);

/* Socket options a server needs. Return 0 or -errno. */
WEFT_API int weft_tcp_nodelay(int fd, int on);
/* Keep-alive probes after idle_s seconds idle (0: the system default). */
WEFT_API int weft_tcp_keepalive(int fd, int on, int idle_s);

/* ---------------------------------------------------------------------------------------
 * Metrics and the debug endpoint (docs/observability.md)
 * ------------------------------------------------------------------------------------- */

/* Counters of the runtime behind `rt`, from any thread: worker `worker`'s (0 ..
 * weft_runtime_workers() - 1), or with -1 the sum over the workers plus the blocking pool's.
 * Each worker publishes its figures once a loop tick and before it sleeps, so they are those
 * of its last tick. Fills `*out` as weft_stats_read (use sizeof *out as `size`). Returns 0,
 * -EINVAL, or -ESHUTDOWN (the runtime has stopped). Any thread. */
WEFT_API int weft_runtime_stats(weft_runtime *rt, int worker, weft_stats *out, size_t size);

/* Histograms of durations, over every worker of a runtime: bucket k counts the samples in
 * [2^k, 2^(k+1)) nanoseconds (0 ns in bucket 0; the last bucket everything above), sum_ns
 * their total. One resume in 256 is sampled (two clock reads), so the counts are a 1/256
 * sample.
 * - WEFT_HIST_SCHEDULE_LATENCY: from a wake (a park's end: a channel hand-off, an fd ready,
 *   a timer) to the woken task's resume on its worker.
 * - WEFT_HIST_POLL_TIME: the length of one resume, from the switch to the task to the switch
 *   away (a park, a yield, its end). */
#define WEFT_HIST_BUCKETS 40
enum { WEFT_HIST_SCHEDULE_LATENCY = 1, WEFT_HIST_POLL_TIME = 2 };
typedef struct weft_histogram {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t buckets[WEFT_HIST_BUCKETS];
} weft_histogram;

/* Fills `*out` with histogram `which` of the runtime behind `rt` (summed over its workers, as
 * of now: each worker writes its own). Returns 0, -EINVAL or -ESHUTDOWN. Any thread. */
WEFT_API int weft_runtime_histogram(weft_runtime *rt, int which, weft_histogram *out);

/* The counters of the runtime behind `rt` in Prometheus' text exposition format (version
 * 0.0.4): weft_tasks_spawned_total, weft_tasks_alive, weft_tasks_ready, weft_resumes_total,
 * weft_switches_total, weft_parks_total, weft_ticks_total, weft_reactor_polls_total,
 * weft_reactor_events_total, weft_syscalls_total, weft_timers_armed,
 * weft_remote_wakes_total, weft_messages_total, weft_steals_total, weft_busy_seconds_total,
 * weft_stacks_live/pooled/guarded, weft_mallocs_total, weft_mmaps_total (each with a
 * worker="N" label), weft_workers, weft_pool_threads and weft_pool_jobs_total. Writes at most
 * len - 1 bytes and a NUL into buf (as snprintf) and returns the full length, or -EINVAL,
 * -ENOMEM, -ESHUTDOWN. The figures are read at once, under the handle's lock, and the text is
 * written from them after it is let go: a spawn from outside (weft_runtime_spawn) waits for
 * the reading only, not for the text. Any thread. */
WEFT_API int weft_metrics_text(weft_runtime *rt, char *buf, size_t len);

/* Turns on the debug endpoint: an HTTP/1.0 server, served by a task of the caller's worker on
 * weft's own sockets, answering GET (and HEAD) /metrics with weft_metrics_text's text,
 * /debug/tasks with every task as JSON ({"ntasks", "workers", "mode", "dumped_by", "tasks":
 * [{"id", "name", "worker", "state", "started", "stackless", "cancelled", "age_ms" (since its
 * spawn), "stalls" and "stall_max_ms" (the stall detector's catches of it), "wait": {"kind",
 * "for_ns", "deadline_in_ns", "fd" | "task" | "object", "held_by"}, "stack": {"size",
 * "touched", "guarded"}, "frames": [{"pc", "module", "module_offset", "symbol", "offset"}]}]},
 * the fields present where they apply) and /debug/tasks.txt with weft_dump_tasks' text;
 * /debug/stats with the counters per worker and in total and the histograms as JSON, and
 * /debug/ with the console, a page for a browser that polls those two (docs/observability.md,
 * "The console"). `addr` NULL
 * means 127.0.0.1 on a port the kernel picks; `*bound` (if not NULL) receives the address bound.
 * One request per connection (what the client sends past its head is read and dropped before
 * the close, so no reset cuts the answer), an absolute-form target routed as its path, each
 * read and write under a 5 s deadline; connections are served
 * by tasks of their own on that worker, up to 16 at once; a 17th connection closes the oldest
 * one that waits on its client (that has not sent its whole request head yet, or has had its
 * answer), so that clients that connect and send nothing delay no one, and with none such it
 * waits for one of the 16 to end (each within its deadline); a worker stuck in a task, whose
 * part of a dump has not come within 2 s, is listed without backtraces. The endpoint stops when the
 * runtime does; while it listens, the deadlock report counts it as a source of work from outside
 * (it is one). Returns 0, -EPERM (not in a stackful task), -ENOMEM, or the -errno of socket, bind
 * or listen. Runtime thread only. */
WEFT_API int weft_debug_serve(const weft_addr *addr, weft_addr *bound);

/* ---------------------------------------------------------------------------------------
 * Shards (sharded mode: thread-per-core)
 *
 * In a runtime of several workers in sharded mode each worker is a shard: its tasks, their
 * timers and their fds stay on it, and what it owns is touched by its thread only. The calls
 * below are what a server built that way needs (Seastar's smp::submit_to, sharded<T>,
 * map_reduce, and a listener served by every shard). Workers talk through one bounded
 * message ring per ordered pair of workers, drained in batches by the receiver's loop; a
 * task that fills a ring parks until there is room (backpressure, not memory). With one
 * worker every call still works, with no message at all.
 * ------------------------------------------------------------------------------------- */

/* Runs fn(arg) as a task on worker `worker` (0 .. weft_worker_count() - 1) of the caller's
 * runtime (pinned there in stealing mode too: no thief takes it) and gives the caller a
 * future of its result, to await with weft_await(f, &value, deadline) (or poll, or combine)
 * on any worker of the runtime. The task is handed over through the pair's message ring; when fn
 * returns, the task posts the result back to the caller's worker, whose loop settles the future
 * and wakes whoever awaits it, on whichever worker (a Tokio JoinHandle, not a Seastar future:
 * the future may be handed to a task of another worker). On the caller's own worker the task is
 * spawned there, and completes the future without a message. The future completes with:
 * - status 0 and value = what fn returned;
 * - -ECANCELED when the task was cancelled (the runtime is shutting down: its blocking calls
 *   returned -ECANCELED), with value = what fn returned, or NULL when it never ran;
 * - -ENOMEM (value NULL) when fn never ran because no stack could be had for it;
 * - -EINTR (value NULL) when fn left through weft_exit(), whose value does not reach the
 *   future: return the result instead.
 * The future is the caller's: destroy it with weft_future_destroy(), also when it never
 * completes. It may be destroyed at any time, before completion included (after a deadline or
 * a cancellation of the awaiting task): fn keeps running on its worker (a function that has
 * been handed over cannot be recalled), and the result that arrives later is dropped, with no
 * write to freed memory (the record is shared by reference count between the future, the
 * task and the reply, and freed by the last of them). A dropped result that owns resources
 * leaks them: hand such results over some other way. `arg` must stay valid until fn has
 * returned, which only an awaited completion tells.
 * Await it from one task at a time, on any worker of the runtime (the latest poll's waker is
 * the one woken); polled from a task of another runtime it completes once the result is in,
 * but its wake does not reach that task (await it with a deadline there). Destroying it is
 * allowed from any thread (it drops a reference).
 * Every future completes before weft_run returns, even when the runtime stops meanwhile (the
 * loops keep exchanging messages until none is in flight): one kept past weft_run and polled
 * from outside any runtime there (weft_future_poll) is READY with its status and value. A
 * poll from a thread outside the runtime while it runs completes it too once the result is
 * in (the one-poller rule holds: never while a task awaits it).
 * Returns 0, -EINVAL (fn or out NULL, worker out of range), -ENOMEM, or -EPERM outside a
 * runtime. Runtime thread only (a task, a stackless task or a callback); from a stackful task
 * it parks, uncancellably, while the pair's ring is full. */
WEFT_API int weft_submit_to(unsigned worker, weft_fn fn, void *arg, weft_future **out);

/* A value per shard (Seastar's sharded<T>): one instance of `size` bytes per worker of the
 * runtime, each used by its own worker only (weft_sharded_local: no lock, no atomic), and a
 * map-reduce over all of them. Instances are 64-byte aligned and never share a cache line. */
typedef struct weft_sharded weft_sharded;

/* Runs on one worker for that worker's instance: `worker` is its index, `arg` the one given
 * to weft_sharded_create. */
typedef void (*weft_sharded_fn)(void *value, unsigned worker, void *arg);
/* A map over shards: computes one worker's part from its instance. */
typedef void *(*weft_sharded_map_fn)(void *value, unsigned worker, void *arg);
/* Folds one more part `x` into the accumulator; returns the new accumulator. */
typedef void *(*weft_sharded_reduce_fn)(void *acc, void *x, void *arg);

/* Creates a sharded value: every worker's instance is zeroed and then given to init (may be
 * NULL) on its own worker, and the call parks until every worker has done so, so that on
 * return each instance is ready. init, fini and map (below) run on the instance's worker:
 * on the caller's own worker inside the calling task, on the others on their loop between two
 * tasks (like a message): they must not block (their blocking calls return -EPERM, on the
 * caller's worker too, so the calling task never parks or moves in them) and should be short, since
 * a worker runs nothing else meanwhile; they may use what belongs to their worker (spawn there,
 * create a channel there, read its clock). The wait is uncancellable and has no deadline: it lasts
 * as long as each worker takes to come back to its loop. `*out` is freed by weft_sharded_destroy.
 * Returns 0, -EINVAL (out NULL, size 0 or above 1 GiB), -ENOMEM, -EPERM (not inside a
 * stackful task). Runtime thread only. */
WEFT_API int weft_sharded_create(weft_sharded **out, size_t size, weft_sharded_fn init,
                                 weft_sharded_fn fini, void *arg);

/* The calling worker's instance of `s`: a plain pointer, valid until `s` is destroyed, for
 * this worker only (never hand it to another worker: that worker has its own). The calling
 * task then never moves to another worker (weft_config.move_started). Returns NULL
 * for NULL, outside a runtime, or for a value of another runtime. Any worker of s's runtime. */
WEFT_API void *weft_sharded_local(weft_sharded *s);

/* Runs map(instance, k, arg) on every worker k (where, and under which rules: see
 * weft_sharded_create), and folds the results on the caller, in worker order:
 * acc = map's result of worker 0, then acc = reduce(acc, result of k, arg) for k = 1, 2, ...;
 * `*result` (if not NULL) receives acc. With reduce NULL, map runs everywhere for its effect
 * (Seastar's invoke_on_all) and `*result` is NULL. The caller's own worker runs its map
 * first, the others as their loops reach the message.
 * When the deadline passes or the caller is cancelled first, the maps that have not started
 * are withdrawn, those running are waited for (they do not block), and the call returns
 * -ETIMEDOUT or -ECANCELED with `*result` untouched and the results of the maps that ran
 * dropped: once the call has returned, no map of it runs or will run, so `arg` and the
 * instances are free to go.
 * Returns 0, -ETIMEDOUT, -ECANCELED, -EINVAL (s or map NULL, or s of another runtime),
 * -ENOMEM (a worker could not be reached: its map did not run, the others' results are
 * dropped), -EPERM (not inside a stackful task). Runtime thread only, any worker. */
WEFT_API int weft_sharded_reduce(weft_sharded *s, weft_sharded_map_fn map,
                                 weft_sharded_reduce_fn reduce, void *arg, void **result,
                                 int64_t deadline);

/* Runs fini (if given at creation) on every worker for its instance, as init ran, waits for
 * all of them (uncancellably), then frees `s`. No task may use s or an instance of it from
 * the call on (a weft_sharded_reduce that starts while the destroy runs returns -EBUSY).
 * Returns 0, -EINVAL (NULL, or of another runtime), -EBUSY (a weft_sharded_reduce of s is in
 * progress on another task, or another destroy of s: nothing is destroyed), -EPERM (not
 * inside a stackful task). Runtime thread only, any worker. */
WEFT_API int weft_sharded_destroy(weft_sharded *s);

/* The worker that owns the key whose hash is `hash`, in the current runtime: a pure function
 * of the hash and the worker count n,
 *     (((hash * 0x9E3779B97F4A7C15 mod 2^64) >> 32) * n) >> 32,
 * so the same key goes to the same worker for the runtime's life (and in any runtime of n
 * workers). The multiply by 2^64/phi spreads hashes whose entropy sits in a few bits (small
 * integers, aligned pointers) over the high bits, which the multiply-shift then maps onto
 * 0 .. n-1 without a division; with well-mixed hashes each worker gets 1/n of the keys. It is
 * not keyed: against adversarial keys, hash them with a keyed hash first.
 * Returns the index (0 with one worker), or -EPERM outside a runtime. Any runtime thread. */
WEFT_API int weft_shard_of(uint64_t hash);

/* A listening socket served by every shard, with a task per connection on the shard that
 * owns it. Two models:
 * - SO_REUSEPORT (the default for IP addresses): one listener per worker, bound to the same
 *   address; the kernel spreads incoming connections over them (by a hash of the addresses),
 *   and each worker accepts on its own listener and serves the connection itself: nothing
 *   crosses workers. (Other sockets of the same user on the same port join the group.)
 * - WEFT_SERVE_ACCEPTOR (and always for Unix addresses, and with one worker): one listener
 *   and one acceptor task on the caller's worker, which hands each connection to the workers
 *   in turn (round-robin, starting with the next worker): the fd goes to worker k in a
 *   message, and the handler task is spawned there.
 * Either way a connection's fd and its handler belong to one worker for the connection's life. */
typedef struct weft_server weft_server;

/* One connection, run as a detached task on the connection's worker. It owns `fd` (a
 * connected, non-blocking stream socket): close it with weft_close (or hand it to a stream)
 * before returning. `arg` is weft_serve's. */
typedef void (*weft_conn_fn)(int fd, void *arg);

/* weft_serve flag: one listener and one acceptor that hands connections out round-robin. */
#define WEFT_SERVE_ACCEPTOR 0x100u

/* Listens on `addr` (TCP over IPv4/IPv6 with SO_REUSEADDR, or Unix; backlog SOMAXCONN per
 * listener) in the model `flags` chooses (0, or WEFT_SERVE_ACCEPTOR; WEFT_LISTEN_V6ONLY is
 * passed on to the listeners), and starts the acceptor tasks: for every connection, handler
 * (fd, arg) runs as a task on the connection's worker. Port 0 takes a free port, the same for
 * every listener (weft_server_addr tells which). The listeners are bound before the call
 * returns, so a bind error (-EADDRINUSE, ...) is returned here and leaves nothing open.
 * A connection whose task never runs (the runtime stops first) has its fd closed by weft.
 * Connections outlive the server: weft_server_close stops the accepting only.
 * `*out` is freed by weft_server_close, which must be called before the runtime ends.
 * Returns 0, -EINVAL (out, addr or handler NULL, unknown flags), -ENOMEM, -EPERM (not inside a
 * stackful task), or the -errno of socket, bind or listen. Runtime thread only. */
WEFT_API int weft_serve(weft_server **out, const weft_addr *addr, unsigned flags,
                        weft_conn_fn handler, void *arg);

/* The address the server is bound to (its port, when weft_serve was given port 0). Returns 0
 * or -EINVAL. Any thread while the server is open. */
WEFT_API int weft_server_addr(const weft_server *srv, weft_addr *out);

/* Stops accepting: cancels every acceptor, waits until each has closed its listener (even if
 * the caller is cancelled meanwhile: nothing of the server outlives the call), then frees
 * `srv`. Connections already accepted go on, including those handed to a worker and not yet
 * started; ending them is the application's business (e.g. tracked per shard in a
 * weft_sharded value). Returns 0, -EINVAL (NULL, or of another runtime), -EPERM (not inside a
 * stackful task). Runtime thread only, any worker. */
WEFT_API int weft_server_close(weft_server *srv);

/* ---------------------------------------------------------------------------------------
 * Buffered streams with backpressure
 *
 * A stream buffers reads and writes over a connected fd, which it owns (weft_stream_close
 * closes it). Writes are buffered until weft_stream_flush(); once the buffered output
 * reaches high_water, the writer sends and parks until it is down to low_water, so a peer
 * that stops reading bounds the writer's memory at high_water. One task uses a stream at a
 * time. Deadlines and cancellation as everywhere; runtime thread only.
 * ------------------------------------------------------------------------------------- */

typedef struct weft_stream weft_stream;

typedef struct weft_stream_opts {
    size_t read_buf;   /* read buffer (16 KiB); a line without its delimiter that fills it
                        * doubles it, up to the read_until limit */
    size_t high_water; /* buffered output that makes a writer flush and park (64 KiB) */
    size_t low_water;  /* where a parked writer resumes (16 KiB); <= high_water */
} weft_stream_opts;

/* Fills `o` with the defaults above (NULL: does nothing). */
WEFT_API void weft_stream_opts_init(weft_stream_opts *o);

/* Wraps fd (non-blocking, connected). `*out` is owned by the caller: weft_stream_close().
 * Returns 0, -EINVAL, -ENOMEM, -EPERM outside a runtime. */
WEFT_API int weft_stream_open(weft_stream **out, int fd, const weft_stream_opts *opts);
/* The stream's fd. */
WEFT_API int weft_stream_fd(const weft_stream *s);
/* Bytes of output buffered and not yet sent. */
WEFT_API size_t weft_stream_buffered_out(const weft_stream *s);

/* Reads up to len bytes (> 0), 0 at end of stream, or -errno. */
WEFT_API ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len, int64_t deadline);
/* Reads exactly n bytes: returns n, fewer at end of stream, or -errno if nothing was read
 * (if something was, that count is returned and the error comes with the next read call, even
 * one the fd would answer with the end of stream, as a socket does after a reset; a deadline
 * or a cancel is not kept: the next call has its own). */
WEFT_API ssize_t weft_stream_read_exact(weft_stream *s, void *buf, size_t n, int64_t deadline);
/* Reads up to and including the first `delim` within `max` bytes. Returns the length
 * (delimiter included; at end of stream, the rest without one, or 0), -ENOBUFS when `max`
 * bytes came without the delimiter (nothing is consumed: the bytes stay readable), or -errno. */
WEFT_API ssize_t weft_stream_read_until(weft_stream *s, int delim, void *buf, size_t max,
                                        int64_t deadline);
/* weft_stream_read_until(s, '\n', ...). */
WEFT_API ssize_t weft_stream_read_line(weft_stream *s, void *buf, size_t max, int64_t deadline);

/* Buffers len bytes (parking for backpressure as described above). Returns len or -errno;
 * after an error (a deadline, a cancel, the peer gone) a prefix of buf of unknown length may
 * have been taken already, buffered for the next flush or written, as with weft_write: do not
 * write the same bytes again on that stream, close it. */
WEFT_API ssize_t weft_stream_write(weft_stream *s, const void *buf, size_t len, int64_t deadline);
/* Sends everything buffered. Returns 0 or -errno. */
WEFT_API int weft_stream_flush(weft_stream *s, int64_t deadline);
/* Flushes (within the deadline), closes the fd and frees the stream, whatever the flush gave.
 * Returns 0 or the first error. */
WEFT_API int weft_stream_close(weft_stream *s, int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * The blocking pool
 *
 * Work that blocks its thread (a C library's call, getaddrinfo, file I/O) runs on a bounded
 * pool of threads while the calling task parks, like Tokio's spawn_blocking. Threads start
 * on demand up to weft_config.pool_threads, exit after pool_idle_ms without work, and run
 * with every signal blocked. weft_run returns only after every pool and relief thread has
 * ended, its thread-exit teardown included (TSD destructors, glibc's per-thread state), so
 * a job may leave thread-local state with a destructor and rely on it having run.
 * ------------------------------------------------------------------------------------- */

/* Runs fn(arg) on a pool thread and parks until it returns; `*result` (if not NULL) gets its
 * return value. A job that has started always runs to completion and the call waits for it
 * (a thread blocked in a system call cannot be interrupted safely), so `arg` may point into
 * the caller's frame; the deadline and cancellation withdraw a job still waiting for a
 * thread (a deadline already passed returns -ETIMEDOUT before fn is queued: it never runs).
 * Returns 0, -ETIMEDOUT or -ECANCELED (withdrawn, never ran), -EINVAL, -EAGAIN (no
 * thread could be started), -EPERM outside a task. Runtime thread only. */
WEFT_API int weft_blocking(weft_fn fn, void *arg, void **result, int64_t deadline);

/* Runs fn(arg) on the calling task's own thread, after handing the task's worker (its ready
 * tasks, timers and I/O) to another thread, and takes the worker back after (Go's system-call
 * hand-off, Tokio's block_in_place). For a call weft cannot make asynchronous that must stay
 * on this thread (a C library's blocking I/O with thread-local state), or a long computation:
 * the worker's other tasks keep running meanwhile, which they do not when a task just blocks.
 * `*result` (if not NULL) gets fn's return value.
 * - fn runs as on a thread outside the runtime: it must not call weft's task-only calls
 *   (weft_sleep, weft_read, ...: -EPERM); the calls a plain thread may make work, and a
 *   channel or lock call blocks the thread. fn must return (no longjmp or exception out of
 *   it). It runs on the task's stack: an overflow there is reported as the task's. The task
 *   is not parked: a cancel is seen by its next blocking call, after fn; fn itself cannot
 *   be interrupted.
 * - The worker is lent at first: a call that returns before a relief thread has woken
 *   (about a thread's wake-up) costs no hand-off, and the worker waits for it (Go's
 *   system-call hand-off likewise waits 20 us). Otherwise a relief thread drives the worker,
 *   and taking it back waits for its next tick (the resume that is running then).
 * - Relief threads start on demand, up to weft_config.pool_threads of them (besides the
 *   pool's), and exit after pool_idle_ms idle; past the limit fn runs on the blocking pool
 *   (as below), and waits for one of its threads: fns that wait for each other need no more
 *   of them at once than these limits allow. After a hand-off the worker's other tasks run on the
 * relief thread: see WEFT_MODE_* for what that means for thread-local state.
 * - On the io_uring backend the kernel completes a request on the thread that submitted it,
 *   and fn may sleep there uninterruptibly (a disk read, vfork), holding up every request
 *   that thread submitted: fn runs on the blocking pool instead (as weft_blocking, but
 *   always to the end: a cancel does not withdraw it), and so on another thread. (The
 *   involuntary hand-off, weft_config.handoff_us, does move an io_uring worker.)
 * - Signals waited for with weft_signal_wait stay blocked on the thread while fn runs. A
 *   program whose tasks wait for signals and block in place should block those signals in
 *   every thread before weft_run (as signalfd wants anyway): a wait that begins while the
 *   worker is on a relief thread cannot block them on the thread running fn.
 * - Outside every runtime it just runs fn.
 * Returns 0, -ECANCELED (the task was cancelled before: fn did not run), -EINVAL (fn NULL),
 * -EAGAIN or -ENOMEM (no relief thread could be started: fn did not run), -EPERM on a
 * worker's thread outside a stackful task (a stackless task, a watch callback). Any
 * thread. */
WEFT_API int weft_block_in_place(weft_fn fn, void *arg, void **result);

/* Files. Regular files (and block devices) go through the blocking pool on epoll (they are always
 * "ready" to it) and through the ring on io_uring; the deadline withdraws a pool call that has not
 * started. A deadline already passed does only what the kernel does without blocking: a read of
 * cached pages, on both backends (and on io_uring what the ring completes as it submits it, such
 * as an open of a cached path); anything else returns -ETIMEDOUT with nothing done. On epoll, a
 * read of a regular file first takes what the page cache holds on the worker's own thread (preadv2
 * with RWF_NOWAIT), and only the rest goes to the pool. An fd opened with O_DIRECT (as seen at its
 * first weft call: set O_DIRECT before it) never reads or writes on the worker's thread: on epoll
 * its calls at an offset (weft_file_pread, weft_file_pwrite) go to Linux AIO, those of a tick
 * submitted together, and the rest (at the file position, fsync) to the pool. A write the kernel
 * would do inside the submission (one that extends the file or fills a hole, on ext4) is refused
 * there (RWF_NOWAIT) and the pool writes it; without AIO (io_setup refused) the pool does every
 * call. A cancel or a passed deadline seen before an AIO call is queued returns -ECANCELED or
 * -ETIMEDOUT with nothing done; once queued the call is not withdrawn: a cancel or deadline that
 * comes later waits for it, and the call returns its result. A read from the cache does not yield,
 * like a socket read that finds data. A part not cached is read by the pool, so such a read is
 * short only where pread(2) would be (at the end of the file). An fd that is not a regular file (a
 * FIFO, a character device, a socket opened by path) is decided at its first use (as for weft_read)
 * and takes the readiness path instead, where deadlines and cancellation end a call that waits.
 * Same results as the system calls, as >= 0 or -errno, but for a NULL buffer (one in the first
 * page) with a length: -EFAULT before any I/O, on both backends, even at the end of a file where
 * read(2) would answer 0 without looking at it. Close with weft_close() (or weft_fd_forget()
 * and close()). */
WEFT_API int weft_file_open(const char *path, int flags, mode_t mode, int64_t deadline);
WEFT_API ssize_t weft_file_read(int fd, void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_file_write(int fd, const void *buf, size_t len, int64_t deadline);
WEFT_API ssize_t weft_file_pread(int fd, void *buf, size_t len, off_t off, int64_t deadline);
WEFT_API ssize_t weft_file_pwrite(int fd, const void *buf, size_t len, off_t off, int64_t deadline);
WEFT_API int weft_file_fsync(int fd, int64_t deadline);
WEFT_API int weft_file_stat(const char *path, struct stat *st, int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * Files and directories: the tree, listings, atomic replacement, mappings, watches
 *
 * Naming: weft_fs_<call> changes or reads the file-system tree by path (an entry's name, not
 * a file's contents), named after its system call; weft_file_<verb> works on a file's
 * contents, through an fd (truncate, map) or, like weft_file_open, by path where a file's
 * contents are the point (write_atomic). weft_dir_* lists a directory, weft_fswatch_* reports
 * changes to files and directories.
 *
 * The tree's calls and the truncates run as ring operations on io_uring where the kernel has
 * them (mkdir, unlink, rmdir, rename, link, symlink: probed when the ring is set up), and on
 * the blocking pool otherwise (epoll; readlink and the truncates on both backends). Each
 * takes a deadline and honours cancellation, with one guarantee: a call that returns
 * -ETIMEDOUT or -ECANCELED did nothing, and no longer uses the caller's buffers (a pool job
 * is withdrawn only while it waits for a thread, else waited for; a ring operation is
 * cancelled and its completion waited for, and one that completed anyway returns its own
 * result). A deadline that has passed returns -ETIMEDOUT before anything is done: none of
 * these calls completes without a wait. Paths are relative to the current directory, as for
 * the system calls; they are borrowed for the call only. Other failures are the system
 * call's -errno (-ENOENT, -EEXIST, -ENOTEMPTY, -EACCES, ...); a NULL path or buffer is
 * -EINVAL. From inside a task only (-EPERM elsewhere), on a runtime's thread.
 * ------------------------------------------------------------------------------------- */

/* mkdir(2): creates directory `path` with `mode` (less the umask). Returns 0 or -errno. */
WEFT_API int weft_fs_mkdir(const char *path, mode_t mode, int64_t deadline);
/* rmdir(2): removes the empty directory `path`. Returns 0 or -errno (-ENOTEMPTY). */
WEFT_API int weft_fs_rmdir(const char *path, int64_t deadline);
/* unlink(2): removes the name `path` (not a directory: -EISDIR). Returns 0 or -errno. */
WEFT_API int weft_fs_unlink(const char *path, int64_t deadline);
/* renameat2(2): renames `from` to `to`, replacing `to` atomically if it exists (flags 0), or
 * failing with -EEXIST if it does (RENAME_NOREPLACE), or swapping the two (RENAME_EXCHANGE;
 * both from <stdio.h> with _GNU_SOURCE). Other flags: -EINVAL. Returns 0 or -errno. */
WEFT_API int weft_fs_rename(const char *from, const char *to, unsigned flags, int64_t deadline);
/* link(2): makes `to` a new name of the file `from`. Returns 0 or -errno. */
WEFT_API int weft_fs_link(const char *from, const char *to, int64_t deadline);
/* symlink(2): makes `linkpath` a symbolic link holding `target` (not checked to exist).
 * Returns 0 or -errno. */
WEFT_API int weft_fs_symlink(const char *target, const char *linkpath, int64_t deadline);
/* readlink(2), NUL-terminated: copies the target of the symbolic link `path` into buf (len
 * bytes, the NUL included). Returns its length, -ENAMETOOLONG when it does not fit with the
 * NUL (buf then holds a cut copy, unterminated), -EINVAL (`path` is not a symbolic link, or
 * len is 0), -ENOENT, ... Blocking pool on both backends. */
WEFT_API ssize_t weft_fs_readlink(const char *path, char *buf, size_t len, int64_t deadline);
/* truncate(2): sets the length of the file `path` to `len` (>= 0; zeros when it grows).
 * Returns 0 or -errno. Blocking pool on both backends. */
WEFT_API int weft_fs_truncate(const char *path, off_t len, int64_t deadline);
/* ftruncate(2) of an open fd, as weft_fs_truncate. Returns 0, -EBADF, -EINVAL (len < 0, or
 * not a regular file open for writing), or -errno. Blocking pool on both backends. */
WEFT_API int weft_file_truncate(int fd, off_t len, int64_t deadline);

/* Replaces the contents of `path` with `len` bytes of buf, atomically: a reader (and the file
 * after a crash) sees the old contents or the new ones, never a mix. It writes a temporary
 * file in the same directory (".<name>.<random>.tmp", created with `mode` less the umask,
 * O_EXCL), fsyncs it, renames it over `path` and fsyncs the directory, each step a call
 * above with the one deadline. The new file has `mode`, not the old one's; a symbolic link
 * at `path` is replaced, not followed. Returns 0, or -errno with:
 * - a failure before the rename (the temporary file's open, write, fsync or close, the
 *   rename itself, the deadline, cancellation): `path` untouched, and the temporary file
 *   removed (by a plain unlink(2) on the worker's thread, so that it goes even in a cancelled
 *   task or past the deadline);
 * - a failure of the directory's fsync after the rename: the new contents are in place, but
 *   a crash may still bring the old ones back. Once the rename is done, the deadline and a
 *   cancel no longer stop the call: past them the directory's fsync is made on the worker's
 *   thread, so -ETIMEDOUT and -ECANCELED always mean `path` untouched.
 * The temporary file's size is checked before the rename: a write the kernel reported whole
 * but did not make (io_uring past RLIMIT_FSIZE) is -EFBIG, `path` untouched.
 * -EINVAL for a NULL path, a path ending in '/', or a NULL buf with len > 0; -EFAULT for a
 * path in the first page (as the kernel answers the other path calls); -ENAMETOOLONG when the
 * temporary name does not fit PATH_MAX. From inside a task only. */
WEFT_API int weft_file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                                    int64_t deadline);

/* A file's region mapped into memory: mmap(2) of `len` bytes of fd from `off` (a multiple of
 * the page size), `prot` PROT_READ/PROT_WRITE/PROT_EXEC (others: -EINVAL), `flags` MAP_SHARED or
 * MAP_PRIVATE, optionally with MAP_POPULATE and MAP_NORESERVE (others: -EINVAL). `*out` gets the
 * address. The mapping itself waits for no I/O and is made on the worker's thread; but touching a
 * page that is not in memory stops the worker's thread on a page fault until the device delivers
 * it, and every task of that worker waits. To keep faults off the worker: pass MAP_POPULATE,
 * and the call runs on the blocking pool, which reads the whole region in before returning
 * (the deadline withdraws it while queued; pages may still be evicted later under memory
 * pressure), or call madvise(MADV_WILLNEED) on the region early, which starts reading ahead
 * without waiting. A mapping outlives the fd (close it when you like) and is the caller's:
 * weft_file_unmap() it. Returns 0, -EINVAL, -EBADF, -EACCES, -ENODEV, -ENOMEM, -ETIMEDOUT
 * (MAP_POPULATE only), -ECANCELED (a cancelled task; with MAP_POPULATE also while queued),
 * -EPERM outside a task. Runtime thread only. */
WEFT_API int weft_file_map(void **out, int fd, off_t off, size_t len, int prot, int flags,
                           int64_t deadline);
/* munmap(2) of a mapping (or part of one) from weft_file_map. Returns 0 or -errno. Any
 * thread. */
WEFT_API int weft_file_unmap(void *addr, size_t len);

/* Directory listing, in batches: each getdents64(2) on the blocking pool fills a 32 KiB
 * buffer (a few hundred entries), and weft_dir_next hands them out one at a time without a
 * system call until it is empty. "." and ".." are left out; the order is the file system's. */
typedef struct weft_dir weft_dir;

typedef struct weft_dirent {
    uint64_t ino;       /* the entry's inode number */
    unsigned char type; /* DT_REG, DT_DIR, DT_LNK, ... of <dirent.h>; DT_UNKNOWN where the file
                         * system does not say (weft_file_stat it then) */
    char name[256];     /* NUL-terminated (NAME_MAX is 255) */
} weft_dirent;

/* Opens the directory `path` (O_DIRECTORY; -ENOTDIR for anything else). `*out` is the
 * caller's: weft_dir_close() it. Returns 0, -ENOENT, -ENOTDIR, -EACCES, -ENOMEM, -EINVAL,
 * -ETIMEDOUT, -ECANCELED, -EPERM outside a task. */
WEFT_API int weft_dir_open(weft_dir **out, const char *path, int64_t deadline);
/* The next entry into `*ent`. Returns 1 (an entry), 0 (no more: the end, and it stays so), or
 * -errno from getdents64 (the listing may be retried), -ETIMEDOUT, -ECANCELED (the deadline
 * only bites when the buffer is empty: a listing interrupted so loses no entry, the next
 * call goes on from where it was), -EINVAL, -EPERM outside a task. One task at a time. */
WEFT_API int weft_dir_next(weft_dir *d, weft_dirent *ent, int64_t deadline);
/* Closes the directory and frees `d` (NULL: nothing). Any thread, no call on `d` in
 * progress. */
WEFT_API void weft_dir_close(weft_dir *d);

/* Watching files and directories for changes: inotify(7), as a stream of events a task waits
 * for. The inotify fd is waited on like any fd (weft_fd_wait: epoll or a ring poll), so a
 * task parked in weft_fswatch_next costs no thread. Masks are inotify's IN_* of
 * <sys/inotify.h>. The kernel queues at most /proc/sys/fs/inotify/max_queued_events events
 * per watcher; past that it drops events and queues one IN_Q_OVERFLOW, which
 * weft_fswatch_next reports like any event (wd -1): rescan what you watch then. */
typedef struct weft_fswatch weft_fswatch;

typedef struct weft_fswatch_event {
    int wd;          /* the watch (weft_fswatch_add's result); -1 with IN_Q_OVERFLOW */
    uint32_t mask;   /* what happened: IN_CREATE, IN_MODIFY, IN_DELETE, IN_MOVED_FROM, ...,
                      * with IN_ISDIR for a directory; IN_IGNORED when the watch went away
                      * (removed, or its file deleted) */
    uint32_t cookie; /* the same non-zero value in the IN_MOVED_FROM and IN_MOVED_TO of one
                      * rename, else 0 */
    char name[256];  /* the entry's name, for an event on an entry of a watched directory;
                      * else "" */
} weft_fswatch_event;

/* Creates a watcher (an inotify instance, non-blocking and close-on-exec). `*out` is the
 * caller's: weft_fswatch_destroy() it. Returns 0, -EMFILE (inotify's max_user_instances),
 * -ENOMEM, -EINVAL, -EPERM outside a runtime. Runtime thread only. */
WEFT_API int weft_fswatch_create(weft_fswatch **out);
/* inotify_add_watch(2) of `path` for the events in `mask` (IN_ALL_EVENTS, IN_ONLYDIR,
 * IN_MASK_ADD, ... as inotify takes them), on the blocking pool (it resolves a path).
 * Watching a path already watched returns its wd again, with the new mask. Returns the watch
 * descriptor (>= 0), -ENOENT, -ENOSPC (max_user_watches), -EINVAL (mask 0, NULL), -ETIMEDOUT,
 * -ECANCELED, -EPERM outside a task. */
WEFT_API int weft_fswatch_add(weft_fswatch *w, const char *path, uint32_t mask, int64_t deadline);
/* inotify_rm_watch(2): stops watch `wd`; an IN_IGNORED event for it follows. Returns 0,
 * -EINVAL (not a watch of `w`). Runtime thread only. */
WEFT_API int weft_fswatch_remove(weft_fswatch *w, int wd);
/* The next event into `*ev`, in the kernel's order, parking until one comes, the deadline or
 * cancellation. Events already queued are returned even when the deadline has passed. Every
 * event fits: weft reads into a buffer that holds at least one event of the longest name.
 * Returns 0, -ETIMEDOUT, -ECANCELED (no event is lost either way), -EINVAL, -EPERM outside a
 * task, or the read's -errno. One task at a time. */
WEFT_API int weft_fswatch_next(weft_fswatch *w, weft_fswatch_event *ev, int64_t deadline);
/* Closes the watcher (its watches go with it) and frees `w` (NULL: nothing). No call on `w`
 * may be in progress. Runtime thread only. */
WEFT_API void weft_fswatch_destroy(weft_fswatch *w);

/* Name resolution through the blocking pool: getaddrinfo(3) with a deadline. The deadline and
 * cancellation end the call at once, also while getaddrinfo waits for a name server (which
 * may take resolv.conf's timeout times its attempts, seconds): the lookup is then left to its
 * pool thread, which frees it when it returns (that thread stays busy until then, and the
 * runtime's end waits for it). A deadline that has passed returns -ETIMEDOUT before anything
 * is done. `host`, `service` and `hints` are borrowed for the call only.
 * Returns 0 and `*res` (free it with freeaddrinfo), or -ENOENT (no such name), -EAGAIN
 * (temporary failure), -EINVAL (bad hints or service, a port number past 65535), -ENOMEM,
 * -errno (EAI_SYSTEM), -EIO (other), -ETIMEDOUT, -ECANCELED, -EPERM outside a task. */
WEFT_API int weft_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res, int64_t deadline);
/* Resolves `host` to its first address of type SOCK_STREAM (IPv4 or IPv6), with `port`.
 * Numeric addresses are parsed without a thread, as weft_addr_ip parses them: so an empty
 * host or "*" is the IPv4 wildcard 0.0.0.0 (a listener's "any address"), never looked up.
 * Returns 0 or as weft_getaddrinfo. */
WEFT_API int weft_resolve(weft_addr *out, const char *host, int port, int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * Channels and select
 *
 * Go's channels: values of a fixed size are copied in and out. Capacity 0 is a rendezvous
 * (a send completes only when a receiver takes the value); capacity > 0 is a FIFO buffer.
 * Waiting senders, and waiting receivers, are served first-in first-out. Closing wakes every
 * waiter: receivers drain what is buffered, then get -EPIPE; senders get -EPIPE. Handles
 * are reference counted. A channel may be shared by the tasks of every worker of a runtime,
 * and of several runtimes: each has a spinlock held for a few dozen instructions, never
 * across a park, and a completion wakes a waiter of another worker through its inbox. A
 * channel used only by the tasks of one worker (1,024 operations in a row) becomes that
 * worker's: its operations then take the lock with plain stores, no atomic instruction. The
 * first operation from anywhere else takes it back for good, at the price of one
 * membarrier(2) call (a few microseconds); a channel that several threads keep interrupting
 * each other on (16 times) stays shared without it. Where the kernel lacks that command, and
 * under ThreadSanitizer, channels stay shared. A bounded buffered channel that has become
 * shared this way then keeps its values in a lock-free ring (rings of up to 8 MiB): a send or
 * receive that finds nobody waiting and the buffer neither full nor empty takes no lock, one
 * compare-and-swap on its position; waits, select and close still take the lock.
 * Every call works from any thread. The calls that wait park the calling task; on a thread
 * outside every runtime (one the program started, a blocking-pool job) they block that
 * thread instead (a futex sleep, with the same deadline and FIFO order; a thread is never
 * cancelled), so threads and tasks can talk through one channel. On a worker's thread
 * outside a stackful task (a stackless task, a callback) they return -EPERM: the worker must
 * not block.
 * ------------------------------------------------------------------------------------- */

typedef struct weft_chan weft_chan;

/* Creates a channel of `elem_size`-byte values (0 .. 65536) holding up to `cap` buffered
 * values. With elem_size 0 (Go's chan struct{}) the values carry no data: only their count
 * and order matter, and every `elem` pointer given for the channel may be NULL.
 * The buffer is at most 1 GiB: -EINVAL when cap * elem_size is more, and for a cap above
 * 2^30 whatever the size (elem_size 0 too; Go takes any count there). For more, use an
 * unbounded channel (below).
 * `*out` holds one reference. Returns 0, -EINVAL, -ENOMEM. Any thread. */
WEFT_API int weft_chan_create(weft_chan **out, size_t elem_size, size_t cap);
/* Creates an unbounded channel: sends never wait, the buffer grows (doubling) as values
 * arrive, and receivers wait as on any channel. A send that would hold more than `max_len`
 * values (0: no limit but memory), or finds no memory to grow into, returns -ENOMEM and the
 * value is not taken (the caller still has it: nothing is lost). Every other call behaves as
 * for a buffered channel; weft_chan_cap() returns SIZE_MAX. `*out` holds one reference.
 * Returns 0, -EINVAL (out NULL, elem_size above 65536), -ENOMEM. Any thread. */
WEFT_API int weft_chan_create_unbounded(weft_chan **out, size_t elem_size, size_t max_len);
/* Adds a reference / drops one. Dropping the last one closes the channel if it is open
 * (tasks waiting on it wake with -EPIPE, as for weft_chan_close) and frees it once no task
 * waits on it any more: the waiting tasks keep it alive until they have left. The handle
 * must not be used after its last release. Any thread, the last release included. */
WEFT_API void weft_chan_retain(weft_chan *c);
WEFT_API void weft_chan_release(weft_chan *c);

/* Sends a copy of *elem. Returns 0, -EPIPE (closed), -ETIMEDOUT, -ECANCELED, -EINVAL, -EPERM
 * (a worker's thread outside a stackful task), -ENOMEM (an unbounded channel at its limit;
 * never waits there). Any thread (see above). */
WEFT_API int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline);
/* Receives into *elem. Returns 0, -EPIPE (closed and drained), -ETIMEDOUT, -ECANCELED,
 * -EINVAL, -EPERM (as weft_chan_send). Any thread. */
WEFT_API int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline);
/* Never block: return -EAGAIN where the blocking calls would park; otherwise as the blocking
 * calls (-EPIPE, -EINVAL, and -ENOMEM for an unbounded channel at its limit), never -EPERM
 * or -ECANCELED. Any thread and any context. */
WEFT_API int weft_chan_try_send(weft_chan *c, const void *elem);
WEFT_API int weft_chan_try_recv(weft_chan *c, void *elem);
/* Closes the channel. Returns 0, -EPIPE if it was already closed, -EINVAL (NULL). Any thread
 * and any context. */
WEFT_API int weft_chan_close(weft_chan *c);
/* Buffered values now (0 for NULL). */
WEFT_API size_t weft_chan_len(const weft_chan *c);
/* The capacity given at creation (0 for a rendezvous channel, or for NULL; SIZE_MAX for an
 * unbounded one). */
WEFT_API size_t weft_chan_cap(const weft_chan *c);

/* Broadcast channels (tokio::sync::broadcast): every receiver sees every value sent after it
 * subscribed, in order. The channel keeps the last `cap` values in a ring; a send never
 * waits, and overwrites the oldest value. A receiver too slow to read a value before it was
 * overwritten is told how many it missed (-EOVERFLOW with the count) and goes on from the
 * oldest value still held. Values are copied in and out, as with weft_chan. Like channels,
 * a broadcast channel may be shared by the tasks of every worker and runtime and by plain
 * threads (a receive there blocks the thread, never cancelled); a receive on a worker's
 * thread outside a stackful task returns -EPERM. Receives are not select cases (weft_select
 * takes weft_chan cases only). */
typedef struct weft_bcast weft_bcast;
typedef struct weft_bcast_rx weft_bcast_rx;

/* Creates a broadcast channel of `elem_size`-byte values (0 .. 65536; 0 for values that carry
 * no data, whose elem pointers may be NULL) keeping the last `cap` (1 .. 2^20). `*out` holds
 * one handle. Returns 0, -EINVAL, -ENOMEM. Any thread. */
WEFT_API int weft_bcast_create(weft_bcast **out, size_t elem_size, size_t cap);
/* Adds a handle / drops one. Dropping the last handle closes the channel (receivers read what
 * is left, then get -EPIPE); the memory goes when the last handle and the last receiver have.
 * NULL is ignored. Any thread. */
WEFT_API void weft_bcast_retain(weft_bcast *b);
WEFT_API void weft_bcast_release(weft_bcast *b);
/* Sends a copy of *elem to every receiver. Never waits. Returns the number of receivers
 * subscribed at the send (>= 0; with 0 the value is kept, but nobody will read it), -EPIPE
 * (closed), -EINVAL. Any thread, and any context (a stackless task, a callback). */
WEFT_API int weft_bcast_send(weft_bcast *b, const void *elem);
/* Closes the channel: later sends get -EPIPE, receivers drain then get -EPIPE. Returns 0,
 * -EPIPE (closed already), -EINVAL. Any thread. */
WEFT_API int weft_bcast_close(weft_bcast *b);
/* A new receiver, which sees the values sent from now on. `*out` is the caller's until
 * weft_bcast_unsubscribe(); it keeps the channel's memory alive. One task or thread uses a
 * receiver at a time. Returns 0, -EINVAL, -ENOMEM. Any thread. */
WEFT_API int weft_bcast_subscribe(weft_bcast *b, weft_bcast_rx **out);
/* Frees the receiver (not while a receive on it waits). NULL is ignored. Any thread. */
WEFT_API void weft_bcast_unsubscribe(weft_bcast_rx *rx);
/* Receives the next value into *elem. Returns 0; -EOVERFLOW when values were overwritten
 * before this receiver read them: `*nmissed` (if not NULL) gets how many, no value is
 * stored, and the next receive returns the oldest value still held; -EPIPE (closed, and
 * this receiver has read everything); -ETIMEDOUT; -ECANCELED; -EINVAL; -EPERM (a worker's
 * thread outside a stackful task). Any thread (see above). */
WEFT_API int weft_bcast_recv(weft_bcast_rx *rx, void *elem, uint64_t *nmissed, int64_t deadline);
/* As weft_bcast_recv, never waiting: -EAGAIN where it would wait. Any thread and context. */
WEFT_API int weft_bcast_try_recv(weft_bcast_rx *rx, void *elem, uint64_t *nmissed);
/* Receivers subscribed now (a figure that may be stale at once; 0 for NULL). Any thread. */
WEFT_API size_t weft_bcast_receivers(const weft_bcast *b);

/* One case of a select: a channel operation, or (the general select) fd readiness, a
 * future's completion or a point in time. */
enum {
    WEFT_CASE_SEND = 1,
    WEFT_CASE_RECV = 2,
    WEFT_CASE_DEFAULT = 3,
    WEFT_CASE_FD = 4,     /* ready once `fd` is ready for `events` (as weft_fd_wait) */
    WEFT_CASE_FUTURE = 5, /* ready once `future` has completed (as weft_await) */
    WEFT_CASE_TIMER = 6   /* ready once the clock reaches `at` (absolute, as a deadline) */
};
/* An fd case's fd and events (weft_case.io). */
typedef struct weft_case_fd {
    int fd;     /* the file descriptor */
    int events; /* WEFT_READABLE, WEFT_WRITABLE or both */
} weft_case_fd;

typedef struct weft_case {
    int op; /* WEFT_CASE_* */
    /* What the case waits on. The unions keep the layout of the channel-only select's cases,
     * which a program built against an earlier weft.h passes (libweft.so.0's ABI). */
    union {
        weft_chan *chan;     /* SEND/RECV: the channel (a NULL channel never becomes ready) */
        weft_future *future; /* FUTURE: the future, still the caller's (select never
                              * destroys it) */
        weft_case_fd io;     /* FD: the fd and the events it waits for */
    };
    union {
        void *elem; /* SEND: the value to send; RECV: where the value goes (NULL allowed for a
                     * channel of 0-byte values); FUTURE: if not NULL, a `void *` that gets
                     * the future's value */
        int64_t at; /* TIMER: when, in CLOCK_MONOTONIC ns (in the past: ready at once) */
    };
    int result; /* out. SEND/RECV: 0, or -EPIPE for a closed channel (-ENOMEM: a send to an
                 * unbounded channel at its limit; such a send case is always ready). FD: the
                 * ready mask (as weft_fd_wait's), or -EBADF. FUTURE: the future's status,
                 * or -EBUSY for a promise that another task awaits (weft_await's rule:
                 * one awaiter at a time), the future left pending.
                 * TIMER, DEFAULT: 0 */
} weft_case;

/* Waits until one case can complete and completes exactly that one; the others are
 * withdrawn, so no value is lost or taken twice. When several are ready, one is picked
 * uniformly at random. A WEFT_CASE_DEFAULT case is taken at once when nothing is ready.
 * Returns the index of the completed case (its `result` says 0 or -EPIPE), -ETIMEDOUT,
 * -ECANCELED, -EINVAL (no case, more than 1024, a bad op, two defaults), -ENOMEM, -EPERM
 * (as weft_chan_send). Any thread: on a plain thread it blocks that thread.
 *
 * The general select: FD, FUTURE and TIMER cases mix with channel cases under the same
 * rules (uniform choice among the ready cases, exactly one completed). None of them consumes
 * anything: an fd case that is not chosen leaves the fd's readiness for the next wait, a
 * future case leaves the future pending or completed, and still the caller's. They need a
 * stackful task (-EPERM elsewhere, a plain thread included). Each one not ready at the call
 * costs a small pinned task of the caller's worker while the select waits (about a spawn
 * and a join; the channel-only select costs none). Extra errors: -EINVAL (an fd case with
 * fd < 0 or events not within WEFT_READABLE|WEFT_WRITABLE, a future case without a future
 * or with one whose header has no poll function).
 * An fd case on an fd that is not open completes with result -EBADF. */
WEFT_API int weft_select(weft_case *cases, size_t n, int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * Synchronisation
 *
 * Coroutine-aware primitives: a wait parks the task, never the thread, takes a deadline and
 * returns -ECANCELED when the task is cancelled. They are fixed-size values with static
 * initialisers, so they embed in your structures without a malloc; their fields are private.
 * Waiters are served first-in first-out. Every call returns -EINVAL for a NULL primitive.
 *
 * Across workers and runtimes: tasks of any worker of any runtime may share a primitive (a
 * mutex held by a task of worker 0 is handed to a task of worker 1 parked on it, a wait
 * group counted down on three workers wakes a waiter on a fourth). Each primitive has a
 * spinlock held for a few instructions, never across a park.
 *
 * Plain threads (the seeds' "mutex that inflates for threads"): a thread outside every
 * runtime (one the program started, a blocking-pool job) may call every function here. A
 * wait then blocks that thread (a futex sleep) in the same FIFO queue as the tasks, with the
 * same deadline; a thread is never cancelled. The thread itself is the holder: it unlocks
 * what it locked, and a thread that exits holding a mutex or a rwlock hold leaves it held (as
 * a pthread mutex that is not robust), by no one: no later thread is its holder, even one
 * that reuses the exited thread's stack (a lock waits, an unlock is -EPERM). On a worker's
 * thread outside a stackful task (a stackless task, a callback) the waits return -EPERM: a
 * worker must not block.
 *
 * A task that finishes while holding locks gives them up: a mutex goes to its next waiter
 * (or next locker), whose lock returns -EOWNERDEAD (see weft_mutex_lock); a read hold of a
 * rwlock is released. So a lock, once held, must not be freed or go out of scope before it
 * is unlocked.
 *
 * The other primitives may go as soon as the call that woke their waiters returns: a
 * condition variable destroyed right after weft_cond_broadcast (as POSIX allows), a "done"
 * event or wait group in the setter's frame, a semaphore freed after its last release, a
 * once after its function returned. The waiters that call woke return without touching the
 * primitive again (those still waiting, or whose wait ended otherwise, do touch it: free a
 * primitive only once nobody else can call or wait on it).
 * ------------------------------------------------------------------------------------- */

/* Private storage shared by every primitive below: all zeros is a valid empty state, so
 * nothing is initialised lazily, and r_ holds a lock word for use across threads. */
typedef struct weft_sync_ {
    void *p_[4];
    int64_t n_[2];
    uint64_t r_[2];
} weft_sync_;

/* Mutex: unlock hands the lock straight to the longest waiter (no barging, no starvation). */
typedef struct weft_mutex {
    weft_sync_ s_;
} weft_mutex;
/* clang-format off */
#define WEFT_MUTEX_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
/* clang-format on */
/* Returns 0, -ETIMEDOUT, -ECANCELED, -EDEADLK (already held by the caller), -EPERM (a
 * worker's thread outside a stackful task), -EINVAL (NULL), or -EOWNERDEAD: the
 * caller now holds the mutex, but its previous owner finished while holding it, so what it
 * protects may be half-updated; repair it, then use the mutex as usual (like a robust
 * pthread mutex, without the "consistent" step: only this one locker is told). */
WEFT_API int weft_mutex_lock(weft_mutex *m, int64_t deadline);
/* Returns 0, -EBUSY, -EOWNERDEAD (taken, as for weft_mutex_lock), -EINVAL, -EPERM. */
WEFT_API int weft_mutex_try_lock(weft_mutex *m);
/* Returns 0, or -EPERM if the caller does not hold it. */
WEFT_API int weft_mutex_unlock(weft_mutex *m);

/* Condition variable, used with a weft_mutex. */
typedef struct weft_cond {
    weft_sync_ s_;
} weft_cond;
/* clang-format off */
#define WEFT_COND_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
/* clang-format on */
/* Releases `m`, waits for a signal, and takes `m` back before returning, whatever it
 * returns (so on -ETIMEDOUT or -ECANCELED the caller still holds `m`). Spurious wake-ups do
 * not happen, but re-check your condition: another task may have run first. Returns 0,
 * -ETIMEDOUT, -ECANCELED, -EINVAL (c or m NULL, or both the same object), -EPERM (the
 * caller does not hold m), or -EOWNERDEAD when the mutex came back from an owner that
 * finished holding it (as weft_mutex_lock; it overrides the wait's own result). */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline);
/* Wake the longest waiter / every waiter. Return the number woken, -EINVAL, -EPERM. */
WEFT_API int weft_cond_signal(weft_cond *c);
WEFT_API int weft_cond_broadcast(weft_cond *c);

/* Counting semaphore, of 0 .. INT64_MAX units. Acquires are served in FIFO order, and a unit
 * released while tasks wait goes to the oldest of them (a try_acquire never takes it first).
 * A semaphore initialised with a count past the maximum (a negative one, as
 * WEFT_SEM_INIT((int64_t)UINT64_MAX) gives) is refused: acquire, try_acquire and release
 * return -EINVAL at once, and weft_sem_value returns the count as it is. A release that would
 * pass INT64_MAX returns -EOVERFLOW and adds nothing. */
typedef struct weft_sem {
    weft_sync_ s_;
} weft_sem;
/* clang-format off */
#define WEFT_SEM_INIT(count) {{{0, 0, 0, 0}, {(count), 0}, {0, 0}}}
/* clang-format on */
WEFT_API int weft_sem_acquire(weft_sem *s, int64_t deadline);
WEFT_API int weft_sem_try_acquire(weft_sem *s);         /* 0, -EAGAIN, -EINVAL; any thread */
WEFT_API int weft_sem_release(weft_sem *s, unsigned n); /* 0, -EOVERFLOW, -EINVAL; any thread */
WEFT_API int64_t weft_sem_value(const weft_sem *s);

/* Wait group: wait until a count of outstanding jobs drops to zero. */
typedef struct weft_waitgroup {
    weft_sync_ s_;
} weft_waitgroup;
/* clang-format off */
#define WEFT_WAITGROUP_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
/* clang-format on */
/* Adds n (may be negative); 0, -EINVAL if the count would go below zero (or wg is NULL),
 * -EOVERFLOW if it would pass INT64_MAX. Any thread, inside a runtime or not. */
WEFT_API int weft_waitgroup_add(weft_waitgroup *wg, int64_t n);
WEFT_API int weft_waitgroup_done(weft_waitgroup *wg);
WEFT_API int weft_waitgroup_wait(weft_waitgroup *wg, int64_t deadline);

/* Read-write lock: many readers or one writer, granted in arrival order (a waiting writer
 * holds back readers that come after it, so writers do not starve). */
typedef struct weft_rwlock {
    weft_sync_ s_;
} weft_rwlock;
/* clang-format off */
#define WEFT_RWLOCK_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
/* clang-format on */
/* Read holds are recorded per task (one pooled node each), so: a task that already reads
 * gets another read hold at once, even past a waiting writer (it would otherwise wait for a
 * writer that waits for it); rdlock while holding the write lock, and wrlock while holding a
 * read or the write lock, return -EDEADLK at once. Both return 0, -ETIMEDOUT, -ECANCELED,
 * -EDEADLK, -EINVAL, -EPERM; rdlock also -ENOMEM. */
WEFT_API int weft_rwlock_rdlock(weft_rwlock *l, int64_t deadline);
WEFT_API int weft_rwlock_wrlock(weft_rwlock *l, int64_t deadline);
/* Releases the caller's write hold, or one of its read holds. 0, or -EPERM if it holds
 * none (another task's hold is never released), -EINVAL. */
WEFT_API int weft_rwlock_unlock(weft_rwlock *l);

/* Once: the first caller runs fn(arg); callers that arrive while it runs wait for it. */
typedef struct weft_once {
    weft_sync_ s_;
} weft_once;
/* clang-format off */
#define WEFT_ONCE_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
/* clang-format on */
/* Returns 0 once fn has run (now or before), -ETIMEDOUT/-ECANCELED while waiting, -EDEADLK
 * when fn itself calls the same once, -EINVAL, -EPERM. fn must return: one left by a C++
 * exception or a longjmp stays running for ever (later callers wait until their deadline,
 * and its own task gets -EDEADLK), where std::call_once lets the next caller try again. */
WEFT_API int weft_once_call(weft_once *o, void (*fn)(void *), void *arg, int64_t deadline);

/* Event: one-shot (set stays set and releases every waiter, now and later, until reset) or
 * auto-reset (each set releases one waiter, or the next one to come). */
typedef struct weft_event {
    weft_sync_ s_;
} weft_event;
/* clang-format off */
#define WEFT_EVENT_INIT {{{0, 0, 0, 0}, {0, 0}, {0, 0}}}
#define WEFT_EVENT_AUTO_INIT {{{0, 0, 0, 0}, {0, 1}, {0, 0}}}
/* clang-format on */
WEFT_API int weft_event_wait(weft_event *e, int64_t deadline);
WEFT_API int weft_event_set(weft_event *e);
WEFT_API int weft_event_reset(weft_event *e);

/* ---------------------------------------------------------------------------------------
 * Groups (structured concurrency) and generators
 * ------------------------------------------------------------------------------------- */

/* A group owns the tasks spawned into it: wait for all of them, cancel all of them, and
 * closing the group cancels and reaps whatever is still running, so no task outlives the
 * scope that started it (spawn outside the group, detached, to let one live on). */
typedef struct weft_group weft_group;

/* Returns 0, -ENOMEM, -EPERM outside a runtime. `*out` is freed by weft_group_close. */
WEFT_API int weft_group_create(weft_group **out);
/* A group belongs to the worker that created it: every call below returns -EPERM from a
 * task of another worker, or from another thread. So a task that uses the group must run on
 * that worker: spawned into the group, or with weft_spawn (not weft_spawn_on another
 * worker), and in stealing mode with WEFT_SPAWN_PINNED (an idle worker may take an unpinned
 * task that has not started yet, and its calls would then fail). */
/* Spawns fn(arg) into the group (options as weft_spawn; the task is the group's: it cannot
 * be joined or detached, its result is dropped). A finished member's record is reaped at
 * once and the group keeps its bookkeeping for the next spawn, so a group spawning
 * WEFT_SPAWN_CHILD_FIRST members that finish inside their spawn (libdill's bundle) runs any
 * number of them in constant memory. opts->cleanup, if set, runs with `arg` when
 * the task has finished, also when the group was closed before it ever ran: hand resources
 * to group tasks through it. Returns 0, -EINVAL, -ENOMEM, -EPIPE (the group is closing),
 * -EPERM. */
WEFT_API int weft_group_spawn(weft_group *g, weft_fn fn, void *arg, const weft_spawn_opts *opts);
/* Parks until every task of the group has finished. 0, -ETIMEDOUT, -ECANCELED, -EPERM,
 * -EDEADLK (called by one of the group's tasks, which would wait for itself; or, with no
 * deadline, by a task that one of its members waits for through weft_group_wait calls with
 * no deadline on other groups: a member of G1 waits for G2 while a member of G2 waits for G1,
 * directly or through a longer chain of groups; the wait that would complete the circle is
 * refused at once, the group left untouched). A wait with a deadline, or one of a cancelled
 * task, ends by itself: it is never refused for a circle, nor part of one. */
WEFT_API int weft_group_wait(weft_group *g, int64_t deadline);
/* Cancels every task of the group (they finish as cancelled tasks do). Returns how many.
 * Tasks spawned into the group afterwards (by a member on its way out, say) are not
 * cancelled by it; weft_group_close, which refuses spawns while it runs, ends those too. */
WEFT_API int weft_group_cancel(weft_group *g);
/* Tasks of the group not yet finished. */
WEFT_API size_t weft_group_size(const weft_group *g);
/* Cancels what is left, waits for all of it to finish (even if the caller is cancelled:
 * the point is that nothing outlives the group), and for the other tasks waiting in
 * weft_group_wait on it to return (0: its members are done), then frees the group. Returns 0,
 * -EPERM (not inside a task, or another runtime's thread) or -EDEADLK (called by one of the group's
 * own tasks, or by a task that one of its members waits for through closes of other groups or
 * generators: a member of G1 closes G2 while a member of G2 closes G1, each close waiting
 * for the other's end for ever; the close that would complete the circle is refused) or
 * -EALREADY (another task is closing it, and frees it: do not use it after); the group is
 * then left untouched. */
WEFT_API int weft_group_close(weft_group *g);

/* A generator: a coroutine that produces values one at a time, each when its consumer asks
 * (it starts running at the first weft_gen_next). */
typedef struct weft_gen weft_gen;
/* The generator's body: produce values with weft_gen_yield; return to finish. */
typedef void (*weft_gen_fn)(weft_gen *g, void *arg);

/* Creates a generator of `elem_size`-byte values. opts->cleanup, if set, runs with `arg`
 * when the body has finished, however it ended (even if it never started). A generator
 * belongs to the worker that created it, as a group does (tasks of other workers, and other
 * threads, get -EPERM; pin the tasks that use it in stealing mode). Returns 0, -EINVAL,
 * -ENOMEM, -EPERM. */
WEFT_API int weft_gen_create(weft_gen **out, weft_gen_fn fn, void *arg, size_t elem_size,
                             const weft_spawn_opts *opts);
/* Asks for the next value. Returns 0 (copied into *out), -EPIPE (the generator finished,
 * however: returned, weft_exit, cancelled), -ETIMEDOUT, -ECANCELED, -EINVAL, -EPERM, -EDEADLK
 * (from the generator's own body), -EBUSY (another task waits in weft_gen_next). A request
 * given up on (-ETIMEDOUT, -ECANCELED) stays
 * open: the value the body produces for it is kept and returned by the next call, so no
 * value is lost or skipped. From one consumer task at a time: a call while another task
 * waits in one returns -EBUSY. A close while a consumer waits ends its call with -EPIPE and
 * frees the generator only after that call has returned. */
WEFT_API int weft_gen_next(weft_gen *g, void *out, int64_t deadline);
/* From inside the body: hands *value to the consumer and parks until the next request.
 * Returns 0, or -ECANCELED when the consumer stopped the generator (return then; cleanup
 * handlers run). */
WEFT_API int weft_gen_yield(weft_gen *g, const void *value);
/* Stops the generator early if it has not finished (its pending yield returns -ECANCELED
 * and its cleanup runs), waits for it, and frees it. Returns 0, -EINVAL, -EPERM,
 * -EDEADLK from the generator's own body (which would wait for its own end), or from a task
 * its body waits for through closes of other generators or groups (a circle: A's body closes
 * B, and B's body, cancelled, closes A; each would wait for the other's end for ever), nothing
 * being done either way; or -EALREADY while another task closes it (which frees it: do not
 * use it after). */
WEFT_API int weft_gen_close(weft_gen *g);

/* ---------------------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------------------- */

/* Parks the current task until one of the signals in `set` arrives, and returns its number
 * (consuming it), or -ETIMEDOUT, -ECANCELED, -EINVAL (set NULL, or holding no signal that
 * can be waited for: SIGKILL, SIGSTOP, the faults SIGSEGV, SIGBUS, SIGILL and SIGFPE, and
 * the C library's own (glibc's 32 and 33) are left out of every set, as for weft_watch_add),
 * -EPERM outside a task.
 * The signals in `set` are blocked on the calling thread from the first call on and stay
 * blocked, so one arriving between waits is not lost; block them in other threads too (or
 * before creating them) so the kernel delivers them here. Servers use it to shut down
 * gracefully on SIGINT/SIGTERM (see examples/echo_server.c). */
WEFT_API int weft_signal_wait(const sigset_t *set, int64_t deadline);

/* ---------------------------------------------------------------------------------------
 * Watches: callbacks on a worker (libevent's and redis ae's form)
 *
 * For C programs written in the callback style: "call cb when this fd is readable, when
 * this timer expires, when this signal comes", run by the worker that added the watch. fds,
 * timers and signals are kinds of one mask, as in libevent's event_new.
 *
 * Where callbacks run: each watch is a small task of its own (named "watch", pinned to the
 * worker that added it; its stack is the default task stack), which waits with the
 * reactor's own calls (weft_fd_wait, weft_sleep_until, weft_signal_wait) on either backend,
 * and runs the callback on its stack. Between two callbacks of one watch the worker's other
 * tasks run. A callback must not block: every blocking weft call made from it (a read that
 * would wait, a sleep, a lock, a channel send that would wait...) returns -EPERM at once,
 * as on a worker's loop; the non-blocking calls (try_ variants, weft_spawn, weft_watch_add
 * and weft_watch_del, writes that complete at once...) work. To do blocking work, spawn a
 * task from the callback.
 * ------------------------------------------------------------------------------------- */

typedef struct weft_watch weft_watch;

/* A watch's callback: `fd` as given to weft_watch_add (the signal number for a signal,
 * -1 for a timer), `events` what fired: WEFT_READABLE and/or WEFT_WRITABLE, WEFT_WATCH_TIMER,
 * WEFT_WATCH_SIGNAL, or WEFT_POLL_ERROR once when the fd's wait failed (it was closed
 * through weft_close or forgotten under the watch, which then stops). */
typedef void (*weft_watch_fn)(weft_watch *w, int fd, unsigned events, void *arg);

/* Mask bits beside WEFT_READABLE and WEFT_WRITABLE. */
#define WEFT_WATCH_TIMER   0x10000u /* a timer (fd -1), or with a direction: the fd's timeout */
#define WEFT_WATCH_SIGNAL  0x20000u /* a signal: `fd` is its number */
#define WEFT_WATCH_PERSIST 0x40000u /* stay after firing (else the watch fires once) */

/* Adds a watch on the calling worker:
 * - fd: `mask` holds WEFT_READABLE and/or WEFT_WRITABLE; the callback runs while the fd is
 *   ready for one of them (level-triggered, like libevent's and ae's default: a callback that
 *   leaves data unread is called again). With WEFT_WATCH_TIMER too, it also runs with
 *   WEFT_WATCH_TIMER when `timeout_ns` passes with the fd not ready (libevent's EV_TIMEOUT).
 *   A callback may find nothing to do (a spurious report): handle EAGAIN.
 * - timer: `mask` is WEFT_WATCH_TIMER, `fd` -1: the callback runs `timeout_ns` from now, and
 *   with WEFT_WATCH_PERSIST every `timeout_ns` after (periods missed by a late worker are
 *   skipped, not run in a burst).
 * - signal: `mask` is WEFT_WATCH_SIGNAL, `fd` the signal: the callback runs each time it
 *   arrives (as weft_signal_wait: the signal is blocked on the worker's thread from then on,
 *   from this call; for a watch on another worker than 0, on worker 0's thread too, the one
 *   that called weft_run, from its next tick: the other workers' threads block every signal
 *   from their start). Every watch of the signal in the process gets each arrival from its
 *   add on, whichever worker and whichever runtime it is on (as libuv's loops, Tokio's
 *   runtimes and Go's handlers do): one of them reads it and counts it to the others (a
 *   fork()'s child starts with none of its parent's watches). A
 *   weft_signal_wait of the same signal (in any runtime) competes with the watches: each
 *   arrival goes either to it or to all the watches.
 * Like every fd weft waits on, an fd watched is made non-blocking. `*out` (may be NULL for a
 * watch without WEFT_WATCH_PERSIST, which then frees itself after firing) receives the
 * handle; delete it with weft_watch_del, also after a one-shot watch has fired.
 * Returns 0, -EINVAL (cb NULL, unknown bits, a mask mixing kinds, timeout_ns <= 0 for a
 * timer, a signal weft cannot wait for (SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * the C library's own), PERSIST without `out`), -EBADF (not an open fd), -ENOMEM, -EPERM
 * outside a runtime.
 * Runtime thread (a task, or another watch's callback). */
WEFT_API int weft_watch_add(weft_watch **out, int fd, unsigned mask, int64_t timeout_ns,
                            weft_watch_fn cb, void *arg);

/* Removes a watch and frees it: its callback does not run again (from its own callback, the
 * callback running now finishes first). `w` must not be used afterwards. Returns 0, -EINVAL
 * (NULL, or deleted already while its callback ran), -EPERM (another worker's watch, or
 * outside a runtime). After the main task has returned, the shutdown frees every watch
 * itself, and this returns 0 without touching `w`. The worker that added the watch. */
WEFT_API int weft_watch_del(weft_watch *w);

/* ---------------------------------------------------------------------------------------
 * Processes, and fork()
 *
 * fork() inside a runtime: the child gets a copy of the runtime it cannot use (its epoll
 * instance or io_uring ring is the parent's). So in the child of a fork() made on a runtime's
 * thread, every weft call behaves as outside a runtime: blocking calls and the rest return
 * -EPERM, and the child never waits on, reaps or submits to the parent's epoll instance or
 * ring, so the parent is unaffected by anything the child does. The child should only exec
 * or _exit (returning from the task function in the child is not supported). This is Go's
 * rule (fork+exec only), and weft_process_spawn below does both for you. A weft_runtime
 * handle the child inherits (from a fork on any thread) names a runtime that runs in the
 * parent: spawns through it return -ESHUTDOWN in the child, as after the runtime's end.
 * ------------------------------------------------------------------------------------- */

/* A child process started by weft_process_spawn. */
typedef struct weft_process weft_process;

/* Which standard streams of the child are pipes to the parent (else inherited). */
#define WEFT_PROCESS_STDIN  0x1u
#define WEFT_PROCESS_STDOUT 0x2u
#define WEFT_PROCESS_STDERR 0x4u

typedef struct weft_process_opts {
    unsigned flags;        /* WEFT_PROCESS_* */
    uint64_t reserved_[3]; /* zero */
} weft_process_opts;

/* Starts `path` (no PATH search) with `argv` (argv[0] set, NULL-terminated) and `envp` (NULL:
 * the caller's environment) through posix_spawn: no copy of the runtime runs in the child.
 * The child starts with no signal blocked and SIGPIPE at its default action. With opts'
 * flags, its stdin/stdout/stderr are pipes whose parent ends (weft_process_stdio) are
 * non-blocking and close-on-exec, for weft_read/weft_write. `*out` is freed with
 * weft_process_free. Returns 0, -EINVAL, -EFAULT (argv, path or a string in the first page),
 * -ENOMEM, -EPERM outside a runtime, or the -errno of the spawn (-ENOENT: no such program,
 * -EACCES, ...). Runtime thread only. */
WEFT_API int weft_process_spawn(weft_process **out, const char *path, char *const argv[],
                                char *const envp[], const weft_process_opts *opts);

/* Waits until the child exits and reaps it; `*status` (if not NULL) receives a waitpid(2)
 * status (WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG). Waits on a pidfd (Linux 5.3+;
 * earlier kernels poll). Once reaped, later calls return 0 and the same status at once.
 * Tasks of any workers may wait for one child at once: each gets 0 and the status, whichever
 * of them reaped it (a kill racing the reap is 0 or -ESRCH, never a signal to another).
 * Returns 0, -ETIMEDOUT or -ECANCELED (the child keeps running; wait again, or kill it),
 * -EINVAL, -EPERM outside a task, -ECHILD (someone else reaped it, e.g. waitpid(-1)). */
WEFT_API int weft_process_wait(weft_process *p, int *status, int64_t deadline);

/* Sends `sig` to the child (through its pidfd, so never to a process that reused its pid).
 * Returns 0, -ESRCH (already reaped), -EINVAL, or -errno. Runtime thread only. */
WEFT_API int weft_process_kill(weft_process *p, int sig);

/* The child's pid (-1 for NULL). */
WEFT_API pid_t weft_process_pid(const weft_process *p);

/* The parent's end of the child's stdin (0), stdout (1) or stderr (2) pipe: an fd owned by
 * `p` (closed by weft_process_free; do not close it yourself). Returns it, -EBADF (that
 * stream is not a pipe, or was closed), -EINVAL. */
WEFT_API int weft_process_stdio(const weft_process *p, int which);

/* Closes the parent's end of one pipe early, e.g. stdin to send the child end-of-file.
 * Returns 0, -EBADF (not a pipe or already closed), -EINVAL. Runtime thread only. */
WEFT_API int weft_process_close_stdio(weft_process *p, int which);

/* Closes the pipes and the pidfd and frees `p`. It does not wait: a child never waited for
 * stays a zombie once it exits, until the process reaps it. Any thread: from a task of the
 * runtime that spawned it the fds are closed with weft_close at once; from anywhere else
 * while that runtime still runs, the close is handed to it (a short task of its own), so
 * that no worker keeps what it knew of the numbers; once it has stopped, they are closed
 * plainly. */
WEFT_API void weft_process_free(weft_process *p);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
