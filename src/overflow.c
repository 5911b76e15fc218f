/* Stack-overflow reports. Each worker thread gets an alternate signal stack, and the process
 * gets one SIGSEGV handler (the one process-wide piece of state weft keeps: a signal
 * disposition is per process by nature). A fault in or just below the guard page of the
 * running task's stack is reported on stderr with the task's id, name and stack size, then
 * the process aborts; any other fault goes to the handler that was there before (ASan's,
 * say), or to the default action. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "overflow.h"
#include "stack.h"
#include "task.h"
#include "worker.h"

#define SLACK_BELOW_GUARD ((uintptr_t)64 * 1024) /* a frame may jump past the guard page */

/* Written once, by whichever worker installs the handler first; read by the handler. */
static struct sigaction prev_segv;
static atomic_int segv_state; /* 0: not installed, 1: installing, 2: installed */

static size_t fmt_u(char *buf, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_u(char *buf, size_t at, size_t cap, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = fmt_u(tmp, v, base);
    tmp[n] = 0;
    if (base == 16)
        at = put(buf, at, cap, "0x");
    return put(buf, at, cap, tmp);
}

_Noreturn void weft__overflow_report(const weft_task *t, const void *fault, const char *how)
{
    char msg[512];
    size_t cap = sizeof msg - 1, n = 0;
    n = put(msg, n, cap, "weft: stack overflow in task ");
    n = put_u(msg, n, cap, t->id, 10);
    n = put(msg, n, cap, " \"");
    n = put(msg, n, cap, t->name);
    n = put(msg, n, cap, "\" (stack ");
    n = put_u(msg, n, cap, t->stack_size, 10);
    n = put(msg, n, cap, " bytes at ");
    n = put_u(msg, n, cap, (uintptr_t)t->stack->lo, 16);
    n = put(msg, n, cap, "-");
    n = put_u(msg, n, cap, (uintptr_t)t->stack->hi, 16);
    n = put(msg, n, cap, "): ");
    n = put(msg, n, cap, how);
    if (fault) {
        n = put(msg, n, cap, " at ");
        n = put_u(msg, n, cap, (uintptr_t)fault, 16);
    }
    n = put(msg, n, cap, "; give it a larger weft_spawn_opts.stack_size\n");
    ssize_t r = write(STDERR_FILENO, msg, n);
    (void)r;
    abort();
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (t && t->stack && t->stack->guarded) {
        uintptr_t a = (uintptr_t)si->si_addr;
        uintptr_t lo = (uintptr_t)t->stack->lo;
        uintptr_t guard = lo - w->stacks.page;
        if (a < lo && a + SLACK_BELOW_GUARD >= guard)
            weft__overflow_report(t, si->si_addr, "it touched its guard page");
    }
    /* Not an overflow we can name: hand it on. */
    if ((prev_segv.sa_flags & SA_SIGINFO) && prev_segv.sa_sigaction) {
        prev_segv.sa_sigaction(sig, si, uctx);
        return;
    }
    if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
        return;
    }
    /* Default action: restore it and return, so the faulting access repeats and kills the
     * process with SIGSEGV as it would have without us. */
    signal(SIGSEGV, SIG_DFL);
}

static void install_handler(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&segv_state, &expected, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    atomic_store(&segv_state, 2);
}

int weft__overflow_init(weft__worker *w)
{
    long min = sysconf(_SC_SIGSTKSZ);
    size_t size = 64 * 1024; /* room for the handler, and for ASan's if it chains there */
    if (min > 0 && (size_t)min > size)
        size = (size_t)min;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        /* The thread already has one (the application's, or a sanitizer's): use it. */
        install_handler();
        return 0;
    }
    w->altstack.mem = weft__malloc(w, size);
    if (!w->altstack.mem)
        return -ENOMEM;
    stack_t ss = {.ss_sp = w->altstack.mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        weft__free(w, w->altstack.mem);
        w->altstack.mem = NULL;
        return -e;
    }
    w->altstack.size = size;
    w->altstack.installed = true;
    install_handler();
    return 0;
}

void weft__overflow_fini(weft__worker *w)
{
    if (w->altstack.installed) {
        stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        w->altstack.installed = false;
    }
    weft__free(w, w->altstack.mem);
    w->altstack.mem = NULL;
}
