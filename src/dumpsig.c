/* The dump on a signal. A signal's disposition belongs to the process, so this is the one
 * place where weft keeps process-wide state for a runtime: a small table of the runtimes that
 * asked for a dump signal, which the handler (on whatever thread the kernel picked) reads.
 * The handler only sets worker 0's `dump_asked` and rings its doorbell; worker 0 sees the
 * flag at its next tick and starts a task that renders the dump (each worker lists its own
 * tasks, with backtraces, as a task of its own) and logs it. So a worker stuck in a long
 * computation answers when it returns; its stall report (watchdog.c) says where it is. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump.h"
#include "dumpsig.h"
#include "log.h"
#include "runtime.h"
#include "task.h"
#include "watchdog.h"
#include "worker.h"

#define DUMPSIG_SLOTS 16

/* The runtimes registered, and the handlers running now: the handler counts itself in
 * before it reads a slot, and an unregistering runtime clears its slot before it waits for
 * the count to drop to 0 (both seq_cst: one of the two sees the other, so no handler still
 * holds a runtime that is freed). */
static _Atomic(weft__runtime *) dumpsig_slots[DUMPSIG_SLOTS];
static _Atomic int dumpsig_running;

bool weft__dump_signal_valid(int sig)
{
    if (sig <= 0)
        return true;
    /* Between the standard signals and SIGRTMIN are the C library's own (glibc: 32 for
     * thread cancellation, 33 for setxid): a handler cannot be installed there. */
    bool libc_own = sig > 31 && sig < SIGRTMIN;
    return sig < NSIG && !libc_own && sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV &&
           sig != SIGBUS && sig != SIGILL && sig != SIGFPE && sig != WEFT__WATCH_SIGNAL;
}

int weft__dump_signal_from_env(const char *v)
{
    if (!v || !*v)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*end)
        return n > 0 && n < NSIG && weft__dump_signal_valid((int)n) ? (int)n : -1;
    if (strncmp(v, "SIG", 3) == 0)
        v += 3;
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name && strcmp(name, v) == 0)
            return weft__dump_signal_valid(sig) ? sig : -1;
    }
    return -1;
}

static void on_dump_signal(int sig)
{
    int saved_errno = errno;
    atomic_fetch_add_explicit(&dumpsig_running, 1, memory_order_seq_cst);
    for (int i = 0; i < DUMPSIG_SLOTS; i++) {
        weft__runtime *rt = atomic_load_explicit(&dumpsig_slots[i], memory_order_seq_cst);
        if (rt && rt->cfg.dump_signal == sig) {
            weft__worker *w = &rt->workers[0];
            /* release: nothing to publish but the flag; the doorbell's write orders it too. */
            atomic_store_explicit(&w->dump_asked, 1, memory_order_release);
            weft__worker_ring(w); /* async-signal-safe (worker.h) */
        }
    }
    atomic_fetch_sub_explicit(&dumpsig_running, 1, memory_order_seq_cst);
    errno = saved_errno;
}

void weft__dumpsig_start(weft__runtime *rt)
{
    int sig = rt->cfg.dump_signal;
    if (sig <= 0)
        return;
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0)
        return;
    bool ours = !(old.sa_flags & SA_SIGINFO) && old.sa_handler == on_dump_signal;
    if (!ours && ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)) {
        weft__logf(rt, WEFT_LOG_WARN,
                   "weft: the dump signal %d has a handler of the program's: no dump on it\n", sig);
        return;
    }
    int slot = -1;
    for (int i = 0; i < DUMPSIG_SLOTS && slot < 0; i++) {
        weft__runtime *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&dumpsig_slots[i], &none, rt,
                                                    memory_order_seq_cst, memory_order_relaxed))
            slot = i;
    }
    if (slot < 0) {
        weft__logf(rt, WEFT_LOG_WARN,
                   "weft: more than %d runtimes ask for a dump signal: none for this one\n",
                   DUMPSIG_SLOTS);
        return;
    }
    rt->dumpsig_slot = slot + 1;
    if (!ours) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_dump_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

void weft__dumpsig_stop(weft__runtime *rt)
{
    if (!rt->dumpsig_slot)
        return;
    atomic_store_explicit(&dumpsig_slots[rt->dumpsig_slot - 1], NULL, memory_order_seq_cst);
    rt->dumpsig_slot = 0;
    while (atomic_load_explicit(&dumpsig_running, memory_order_seq_cst))
        sched_yield();
    /* The handler stays installed: another runtime may still use it, and with none it sets
     * nothing. A signal that comes then does nothing (it no longer takes its default
     * action), as for the stall detector's handler. */
}

static void *dump_task(void *arg)
{
    weft__runtime *rt = arg;
    weft__dumpbuf b = {0};
    weft__dumpbuf_printf(&b, "weft: task dump on signal %d (%s)\n", rt->cfg.dump_signal,
                         sigabbrev_np(rt->cfg.dump_signal) ? sigabbrev_np(rt->cfg.dump_signal)
                                                           : "?");
    int r = weft__dump_render(&b, false, WEFT_FOREVER);
    if (r < 0)
        weft__dumpbuf_printf(&b, "weft: the dump failed: %s\n", strerror(-r));
    weft__log(rt, WEFT_LOG_ERROR, b.p ? b.p : "", b.len);
    free(b.p);
    return NULL;
}

void weft__dumpsig_serve(weft__worker *w)
{
    /* acquire: pairs with the handler's store. */
    if (!atomic_exchange_explicit(&w->dump_asked, 0, memory_order_acquire) ||
        w->tasks.shutting_down)
        return;
    weft_spawn_opts o = {.name = "weft-dump", .flags = WEFT_SPAWN_DETACHED};
    if (weft_spawn(NULL, dump_task, w->rt, &o) < 0)
        weft__logf(w->rt, WEFT_LOG_WARN, "weft: no memory for the task dump\n");
}
