/* Stack-overflow reports. Each worker thread gets an alternate signal stack, and the process
 * gets one SIGSEGV handler (the one process-wide piece of state weft keeps: a signal
 * disposition is per process by nature). A fault while a task runs is an overflow of that
 * task when the faulting address or the task's stack pointer lies below its stack, within its
 * guard region and a window beyond (a frame larger than the guard jumps over it, and then
 * its stack pointer is the evidence); it is reported on stderr with the task's id, name and
 * stack size, then the process aborts. Any other fault goes to the handler that was there
 * before (ASan's, or one the program installed), or to the default action. Every weft_run
 * checks that the handler is still ours, and re-installs it over one installed since,
 * chaining to that one. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "overflow.h"
#include "stack.h"
#include "task.h"
#include "util/text.h"
#include "worker.h"

/* How far below a stack a fault or a stack pointer still counts as that stack's overflow:
 * its guard region and 1 MiB beyond, where the frames that jump a guard land (a wild pointer
 * that happens to point there is reported as an overflow too: it is at least suspicious). */
#define OVERFLOW_WINDOW ((uintptr_t)WEFT__GUARD_BYTES + ((uintptr_t)1 << 20))
/* How far below a stack the stack pointer still counts as its overflow: a frame of up to
 * this size (an alloca, a VLA) that jumped the guard. A stack pointer is no wild pointer:
 * only code that switched stacks itself puts it elsewhere. */
#define OVERFLOW_SP_WINDOW ((uintptr_t)64 << 20)

/* The handler weft chains to. Two slots: an install writes the slot not in use, then
 * publishes its index (release), so a handler running on another thread at that moment
 * reads one whole sigaction (acquire). Installs are serialised by install_lock. */
static struct sigaction prev_segv[2];
static atomic_int prev_slot;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

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
    /* Escaped (util/text.h), as every other place that prints a name: a user's bytes must
     * neither end the line nor close the quotes. */
    n += weft__text_escape(msg + n, sizeof msg - n, t->name, sizeof t->name - 1);
    n = put(msg, n, cap, "\" (stack ");
    n = put_u(msg, n, cap, t->stack_size, 10);
    n = put(msg, n, cap, " bytes at ");
    n = put_u(msg, n, cap, (uintptr_t)t->stack->lo, 16);
    n = put(msg, n, cap, "-");
    n = put_u(msg, n, cap, (uintptr_t)weft__stack_hi(t->stack), 16);
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

/* The interrupted stack pointer. */
static uintptr_t fault_sp(const void *uctx)
{
    const ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return 0;
#endif
}

static bool below_by(uintptr_t a, uintptr_t lo, uintptr_t window)
{
    return a < lo && a + window >= lo;
}

static bool below(uintptr_t a, uintptr_t lo)
{
    return below_by(a, lo, OVERFLOW_WINDOW);
}

/* The task whose thread runs fn in weft_block_in_place (in_place.c), on that thread: the
 * thread is no worker's then, but a fault on the task's stack is still the task's. */
static __thread const weft_task *tls_in_place;

void weft__overflow_in_place(const weft_task *t)
{
    __atomic_store_n(&tls_in_place, t, __ATOMIC_RELAXED);
}

const weft_task **weft__overflow_in_place_slot(void)
{
    return &tls_in_place;
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    weft__worker *w = weft__worker_tls();
    const weft_task *t = w ? w->current : __atomic_load_n(&tls_in_place, __ATOMIC_RELAXED);
    /* In this order: the running task's own guard; its stack pointer below its stack (a
     * frame that jumped the guard); another task's guard region (a stray pointer ran into
     * it: name the task it guards); an address just below the running stack. */
    uintptr_t a = (uintptr_t)si->si_addr;
    if (t && t->stack) {
        uintptr_t lo = (uintptr_t)t->stack->lo;
        if (t->stack->guarded && a < lo && a + WEFT__GUARD_BYTES >= lo)
            weft__overflow_report(t, si->si_addr, "it touched its guard region");
        if (below_by(fault_sp(uctx), lo, OVERFLOW_SP_WINDOW))
            weft__overflow_report(t, si->si_addr, "its stack pointer went below its stack");
    }
    weft_task *owner = w ? weft__task_by_guard(w, si->si_addr) : NULL;
    if (owner && owner != t)
        weft__overflow_report(owner, si->si_addr,
                              "a fault landed in its guard region while another task ran");
    if (t && t->stack && below(a, (uintptr_t)t->stack->lo))
        weft__overflow_report(t, si->si_addr, "it faulted just below its stack");
    /* Not an overflow we can name: hand it on. */
    const struct sigaction *prev =
        &prev_segv[atomic_load_explicit(&prev_slot, memory_order_acquire)];
    if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
        prev->sa_sigaction(sig, si, uctx);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: restore it and return, so the faulting access repeats and kills the
     * process with SIGSEGV as it would have without us. */
    signal(SIGSEGV, SIG_DFL);
}

static bool is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_segv;
}

/* Installs the handler, or re-installs it if something replaced it since (a program's
 * handler, installed after an earlier weft_run), keeping what it replaces to chain to. */
static void install_handler(void)
{
    pthread_mutex_lock(&install_lock);
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && !is_ours(&cur)) {
        int slot = 1 - atomic_load_explicit(&prev_slot, memory_order_relaxed);
        prev_segv[slot] = cur;
        atomic_store_explicit(&prev_slot, slot, memory_order_release);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
    }
    pthread_mutex_unlock(&install_lock);
}

/* Gives this thread an alternate signal stack in `as` (allocated through w's seam; w may be
 * NULL), unless it has one (the application's, or a sanitizer's: used as it is). Returns 0
 * or -errno. */
int weft__altstack_install(weft__worker *w, weft__altstack *as)
{
    long min = sysconf(_SC_SIGSTKSZ);
    size_t size = 64 * 1024; /* room for the handler, and for ASan's if it chains there */
    if (min > 0 && (size_t)min > size)
        size = (size_t)min;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0;
    as->mem = weft__malloc(w, size);
    if (!as->mem)
        return -ENOMEM;
    stack_t ss = {.ss_sp = as->mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        weft__free(w, as->mem);
        as->mem = NULL;
        return -e;
    }
    as->size = size;
    as->installed = true;
    return 0;
}

void weft__altstack_remove(weft__worker *w, weft__altstack *as)
{
    if (as->installed) {
        stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        as->installed = false;
    }
    weft__free(w, as->mem);
    as->mem = NULL;
}

int weft__overflow_init(weft__worker *w)
{
    int r = weft__altstack_install(w, &w->altstack);
    if (r < 0)
        return r;
    install_handler();
    return 0;
}

void weft__overflow_fini(weft__worker *w)
{
    weft__altstack_remove(w, &w->altstack);
}
