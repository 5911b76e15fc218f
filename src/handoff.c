/* The involuntary hand-off (handoff.h): letting go of a worker from the stall detector's
 * signal handler, and taking it back at the next weft call.
 *
 * When may a thread let go of its worker at an arbitrary instruction? Only when no weft code
 * on it is in the middle of anything: weft's state is then as consistent as it is at a
 * switch, and the relief thread may drive the worker from its loop's top. The handler checks
 * it on the running task's stack. A weft call in progress is either the interrupted
 * instruction itself, or has called something (a function of weft's, of libc's, the PLT), and
 * that call left a return address into weft's code on the stack (on aarch64 perhaps still in
 * lr). The body itself is called by the task's trampoline (switch.S), and its return address
 * into the trampoline, weft__ctx_call_ret, is the one expected there; the trampoline publishes
 * the sp it calls the body with in the stack's entry slot just before the call, and zeroes it
 * as soon as the body returns, so a task in its first or last steps is refused. So: the interrupted
 * pc (and lr) outside weft's code, and no word between the interrupted sp and the sp the body was
 * called with pointing into weft's code but that one. A word that only looks like such an address
 * (a stale one in an uninitialised local, a pointer to a weft function) makes the check refuse: it
 * can be wrong only in refusing. Callbacks weft makes into the program's code (a future's poll, a
 * map over shards) have weft's frames below them, so they are never interrupted this way.
 *
 * weft's code must be told from the program's, so the hand-off needs it in one place: the
 * static library's code is renamed at the build (CMakeLists.txt) so that the linker sorts it
 * between two markers of this file; the shared library's is its own executable segment. An
 * LTO build mixes it with the program's: no range, and no hand-off. */
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "arch/switch.h"
#include "handoff.h"
#include "hooks.h"
#include "io/backend.h"
#include "overflow.h"
#include "relief.h"
#include "runtime.h"
#include "stack.h"
#include "task.h"
#include "worker.h"

/* The bounds of the static library's code (CMakeLists.txt renames it .text.sorted.weft.1,
 * which the linker places, sorted by name, between these two). Each a function of its own,
 * kept, in a section of its own. */
__attribute__((section(".text.sorted.weft.0"), used, noinline)) void weft__code_begin(void)
{
}
__attribute__((section(".text.sorted.weft.2"), used, noinline)) void weft__code_end(void)
{
}

/* What a thread that let go of its worker keeps to take it back: its own, so initial-exec
 * (no allocation at a first access from the handler). `w` NULL: none let go. */
static __thread __attribute__((tls_model("initial-exec"))) struct {
    weft__worker *w;
    weft_task *t;
    uint64_t lent; /* the `lend` word as lent (relief.h) */
    weft__relief_home home;
} tls_handed;

/* The states of a seize's `claim` (handoff.h). */
enum {
    CLAIM_IDLE = 0,  /* no seize, or one undone */
    CLAIM_PENDING,   /* seized: the second look to come */
    CLAIM_CANCELLED, /* by the watchdog, which is putting the thread's worker back */
    CLAIM_COMMITTED, /* lent: the record being written */
    CLAIM_PUBLISHED, /* lent: the record written */
};

/* The record of a seize (handoff.h), the thread's own: written by the watchdog (`w` and `t`
 * before its CAS on the thread's worker slot, the rest at the commit, published by `claim`),
 * read by the thread once it finds its worker slot SEIZED. Whoever wins the CAS on `claim`
 * from PENDING writes the slot and the record; the other side waits or leaves them. */
typedef struct seize_rec {
    weft__worker *w;
    weft_task *t;
    uint64_t lent;
    weft__relief_home home;
    _Atomic int claim;
} seize_rec;

static __thread __attribute__((tls_model("initial-exec"))) seize_rec tls_seize;

/* A thread's slots for the watchdog (handoff.h): their addresses, fixed for the thread. */
struct weft__handoff_slots {
    weft__worker **worker;
    const weft_task **in_place;
    seize_rec *rec;
};

static __thread weft__handoff_slots tls_slots;

static weft__worker *seized_take_back(void);

weft__handoff_slots *weft__handoff_slots_self(void)
{
    if (!tls_slots.rec) {
        weft__worker_tls_slots(seized_take_back, &tls_slots.worker);
        tls_slots.in_place = weft__overflow_in_place_slot();
        tls_slots.rec = &tls_seize;
    }
    return &tls_slots;
}

/* ---- Where weft's code is ---------------------------------------------------------------- */

static bool in_range(const weft__code_range *c, uintptr_t a)
{
    return a - c->lo < c->hi - c->lo;
}

/* dl_iterate_phdr's callback: the executable segment holding c->lo (a probe address), if its
 * object is a shared library (a program's own segment holds the program's code too). */
static int find_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    weft__code_range *c = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD || !(p->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + p->p_vaddr;
        if (c->lo - lo >= p->p_memsz)
            continue;
        bool shared = info->dlpi_name && info->dlpi_name[0];
        c->lo = shared ? lo : 0;
        c->hi = shared ? lo + p->p_memsz : 0;
        return 1;
    }
    return 0;
}

void weft__handoff_find_code(weft__code_range *code)
{
    uintptr_t self = (uintptr_t)weft__handoff_find_code;
    uintptr_t ret = (uintptr_t)weft__ctx_call_ret;
    uintptr_t worker = (uintptr_t)weft__worker_current; /* a third object's code */
    weft__code_range c = {(uintptr_t)weft__code_begin, (uintptr_t)weft__code_end};
    /* The markers hold this file's code, the switch's and the worker's: the build's rename
     * and the linker's sort both happened (a linker that places sections in input order
     * leaves the markers around this file's code only). Else a shared library's own code. */
    if (!(c.lo < c.hi && in_range(&c, self) && in_range(&c, ret) && in_range(&c, worker))) {
        c.lo = self; /* the probe */
        c.hi = 0;
        if (!dl_iterate_phdr(find_segment, &c))
            c.lo = c.hi = 0;
    }
    /* The range must hold weft's code for certain. */
    if (!in_range(&c, self) || !in_range(&c, ret) || !in_range(&c, worker))
        c.lo = c.hi = 0;
    *code = c;
}

/* ---- Letting go, in the signal handler --------------------------------------------------- */

/* One word of the task's stack. The scan reads locals ASan keeps redzones around: not
 * instrumented, and not inlined so that the attribute holds. */
__attribute__((no_sanitize("address"), noinline)) static uintptr_t stack_word(uintptr_t at)
{
    return *(const uintptr_t *)at;
}

/* Whether t, at pc with its stack pointer at sp, is in its own code: see the file comment. */
static bool in_own_code_at(const weft__code_range *code, const weft_task *t, uintptr_t pc,
                           uintptr_t sp)
{
    uintptr_t ret = (uintptr_t)weft__ctx_call_ret;
    /* The entry slot is 0 but while the body runs (switch.h). */
    uintptr_t lo = (uintptr_t)t->stack->lo,
              top = (uintptr_t)*weft__ctx_entry_slot(weft__stack_hi(t->stack));
    if (in_range(code, pc) || sp < lo || sp >= top)
        return false; /* in weft's code, or not on the body's part of its stack */
    /* Every word, written or not (valgrind would call a test of one never written an error). */
    bool own = true;
    weft__hook_reports_off();
    for (uintptr_t a = sp & ~(uintptr_t)7; a < top; a += sizeof(uintptr_t)) {
        uintptr_t v = stack_word(a);
        if (in_range(code, v) && v != ret) {
            own = false;
            break;
        }
    }
    weft__hook_reports_on();
    return own;
}

/* The same for t interrupted at `uc`. */
static bool in_own_code(const weft__code_range *code, const weft_task *t, const ucontext_t *uc)
{
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.sp;
    uintptr_t lr = (uintptr_t)uc->uc_mcontext.regs[30];
    if (in_range(code, lr) && lr != (uintptr_t)weft__ctx_call_ret)
        return false;
#endif
    return in_own_code_at(code, t, pc, sp);
}

bool weft__handoff_detach(weft__worker *w, void *uctx, uint64_t *lent)
{
    ucontext_t *uc = uctx;
    weft_task *t = w->current;
    const weft__code_range *code = &w->rt->code;
    /* A bound ring's worker (io_uring, not made movable) cannot change threads: its
     * completions run on the thread that submitted. */
    bool bound = w->io->requests_tied_to_thread && !w->io->movable;
    if (!t || !t->stack || tls_handed.w || code->lo == code->hi || bound ||
        (t->flags & (WEFT__T_STACKLESS | WEFT__T_NOBLOCK | WEFT__T_HANDED)))
        return false;
    uint64_t owned = atomic_load_explicit(&w->relief.lend, memory_order_relaxed);
    if ((owned & 1) || !in_own_code(code, t, uc))
        return false;
    /* What weft_block_in_place does before fn (in_place.c), from here. */
    tls_handed.home = weft__relief_home_of(w);
    if (w->poll_task == t)
        w->poll_task = NULL;
    /* The signals w's tasks wait for stay blocked on this thread once the handler returns
     * (the interrupted context's mask is the one restored). */
    if (w->has_sigwaited)
        sigorset(&uc->uc_sigmask, &uc->uc_sigmask, &w->sigwaited);
    weft__task_flags_set(t, WEFT__T_HANDED);
    w->current = NULL;
    tls_handed.w = w;
    tls_handed.t = t;
    tls_handed.lent = owned + 1;
    atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed); /* as in_place.c does */
    /* release: everything above is w's state the next driver reads after its CAS (acquire). */
    atomic_store_explicit(&w->relief.lend, owned + 1, memory_order_release);
    weft__worker_set_current(NULL);
    weft__worker_set_reclaim(weft__handoff_reclaim);
    weft__overflow_in_place(t); /* a stack overflow from here on is still t's */
    *lent = owned + 1;
    return true;
}

/* ---- Letting go for a thread asleep in a system call, from the watchdog's thread ---------- */

/* Copies n bytes of this process at `src`, which another thread may unmap meanwhile (a stack
 * freed by a task that ended): false instead of a fault. */
static bool peek(void *dst, uintptr_t src, size_t n)
{
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

/* in_own_code_at for a task whose thread sleeps, read from the watchdog's thread: the stack
 * and its descriptor through peek. */
static bool remote_own_code(const weft__code_range *code, const weft__stack *st, uintptr_t pc,
                            uintptr_t sp)
{
    uintptr_t ret = (uintptr_t)weft__ctx_call_ret, lo, top;
    if (in_range(code, pc) || !peek(&lo, (uintptr_t)&st->lo, sizeof lo) ||
        !peek(&top, (uintptr_t)weft__ctx_entry_slot(weft__stack_hi(st)), sizeof top) || sp < lo ||
        sp >= top)
        return false;
    uintptr_t buf[512];
    for (uintptr_t a = sp & ~(uintptr_t)7; a < top;) {
        size_t n = top - a < sizeof buf ? (size_t)(top - a) : sizeof buf;
        if (!peek(buf, a, n))
            return false;
        for (size_t i = 0; i < n / sizeof(uintptr_t); i++)
            if (in_range(code, buf[i]) && buf[i] != ret)
                return false;
        a += n;
    }
    return true;
}

bool weft__handoff_seize(weft__worker *w, bool uninterruptible, uintptr_t pc, uintptr_t sp,
                         weft__handoff_slots **out)
{
#if defined(__x86_64__)
    weft__handoff_slots *s = atomic_load_explicit(&w->watch.slots, memory_order_relaxed);
    if (!s)
        return false;
    seize_rec *r = s->rec;
    if (atomic_load_explicit(&r->claim, memory_order_acquire) != CLAIM_IDLE)
        return false;
    /* w's fields as its sleeping driver left them (if it woke, the CAS below or the second
     * look finds out). A task record is never unmapped; its stack may be: peek. */
    weft_task *t = w->current;
    const weft__code_range *code = &w->rt->code;
    bool bound = w->io->requests_tied_to_thread && (!w->io->movable || uninterruptible);
    if (!t || code->lo == code->hi || bound ||
        (__atomic_load_n(&t->flags, __ATOMIC_RELAXED) &
         (WEFT__T_STACKLESS | WEFT__T_NOBLOCK | WEFT__T_HANDED)))
        return false;
    const weft__stack *st = __atomic_load_n(&t->stack, __ATOMIC_RELAXED);
    uint64_t owned = atomic_load_explicit(&w->relief.lend, memory_order_relaxed);
    if (!st || (owned & 1) || !remote_own_code(code, st, pc, sp))
        return false;
    r->w = w;
    r->t = t;
    atomic_store_explicit(&r->claim, CLAIM_PENDING, memory_order_relaxed);
    atomic_store_explicit(&w->watch.seizing, 1, memory_order_relaxed);
    /* Only from w itself: a thread that woke and changed its slot meanwhile (it handed w over
     * in weft_block_in_place, say) is left alone, and never sees the record. seq_cst: the
     * record before the slot (the thread's acquire), and all of it before the second look. */
    weft__worker *expected = w;
    if (!__atomic_compare_exchange_n(s->worker, &expected, WEFT__WORKER_SEIZED, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
        r->w = NULL;
        r->t = NULL;
        atomic_store_explicit(&r->claim, CLAIM_IDLE, memory_order_relaxed);
        atomic_store_explicit(&w->watch.seizing, 0, memory_order_release);
        return false;
    }
    *out = s;
    return true;
#else
    /* aarch64: a call made from weft's code through a libc function that saves no frame
     * leaves its return address in lr alone, which /proc does not show: not checked, so not
     * done. */
    (void)w, (void)uninterruptible, (void)pc, (void)sp, (void)out, (void)remote_own_code;
    return false;
#endif
}

bool weft__handoff_seize_end(weft__worker *w, weft__handoff_slots *s, bool asleep, uint64_t *lent)
{
    seize_rec *r = s->rec;
    int pending = CLAIM_PENDING;
    if (!asleep) {
        /* It ran, so it may be inside a weft call that read its worker before the seize.
         * Cancelled; if the thread has not seen it (else it cancels, and puts back, itself),
         * its slot goes back to w only if it still holds SEIZED: the thread may have stored
         * its own value since. acq_rel: against the thread's CAS. */
        if (atomic_compare_exchange_strong_explicit(&r->claim, &pending, CLAIM_CANCELLED,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            weft__worker *seized = WEFT__WORKER_SEIZED;
            __atomic_compare_exchange_n(s->worker, &seized, w, false, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED);
            r->w = NULL;
            r->t = NULL;
            /* release: the slot before IDLE, which a thread that found SEIZED waits for. */
            atomic_store_explicit(&r->claim, CLAIM_IDLE, memory_order_release);
        }
        atomic_store_explicit(&w->watch.seizing, 0, memory_order_release);
        return false;
    }
    if (!atomic_compare_exchange_strong_explicit(&r->claim, &pending, CLAIM_COMMITTED,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        atomic_store_explicit(&w->watch.seizing, 0, memory_order_release);
        return false; /* it woke and cancelled first: w is its own again */
    }
    /* Committed: the thread, if it wakes now, waits at its take-back for PUBLISHED, and the
     * end of its body sees `seizing` first. What weft__handoff_detach does, from here. */
    weft_task *t = r->t;
    uint64_t owned = atomic_load_explicit(&w->relief.lend, memory_order_relaxed);
    r->home = weft__relief_home_of(w);
    r->lent = owned + 1;
    if (w->poll_task == t)
        w->poll_task = NULL;
    weft__task_flags_set(t, WEFT__T_HANDED);
    w->current = NULL;
    __atomic_store_n(s->in_place, t, __ATOMIC_RELAXED); /* a stack overflow is still t's */
    atomic_store_explicit(&w->watch.active, 0, memory_order_relaxed);
    /* release: w's state for the next driver (its CAS on `lend`, acquire), and the record for
     * the thread (its acquire of `claim`); `seizing` last, after the HANDED flag. */
    atomic_store_explicit(&w->relief.lend, owned + 1, memory_order_release);
    atomic_store_explicit(&r->claim, CLAIM_PUBLISHED, memory_order_release);
    atomic_store_explicit(&w->watch.seizing, 0, memory_order_release);
    *lent = owned + 1;
    return true;
}

/* ---- Taking back, at the next weft call -------------------------------------------------- */

#define CLEAR_BYTES 4096 /* below a take-back: what its frames (a condition wait) reached */

/* Zeroes the CLEAR_BYTES below the stack pointer, where the take-back's frames just were:
 * their return addresses into weft's code would otherwise stay there, and a later frame of
 * the body that leaves a slot unwritten (an -O0 build's padding) would make the hand-off's
 * check refuse, again and again. Inline, in a function that makes calls (so no red zone is
 * in use below sp), and not instrumented: the memory is dead, and ASan keeps it poisoned. */
static inline __attribute__((always_inline)) void clear_below_sp(void)
{
#if defined(__x86_64__)
    void *dst;
    size_t n = CLEAR_BYTES / 8;
    __asm__ volatile("leaq -%c2(%%rsp), %%rdi\n\t"
                     "xorl %%eax, %%eax\n\t"
                     "rep stosq"
                     : "=&D"(dst), "+c"(n)
                     : "i"(CLEAR_BYTES)
                     : "rax", "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov x9, sp\n\t"
                     "sub x10, x9, %0\n"
                     "1:\n\t"
                     "stp xzr, xzr, [x10], #16\n\t"
                     "cmp x10, x9\n\t"
                     "b.lo 1b"
                     :
                     : "i"(CLEAR_BYTES)
                     : "x9", "x10", "memory", "cc");
#endif
}

/* As weft_block_in_place after fn: back before a relief thread took it (nothing of w
 * moved), or asked back from the thread that drives it now. */
static weft__worker *take_back(weft__worker *w, weft_task *t, uint64_t lent,
                               const weft__relief_home *home)
{
    weft__overflow_in_place(NULL);
    if (atomic_compare_exchange_strong_explicit(&w->relief.lend, &lent, lent + 1,
                                                memory_order_acq_rel, memory_order_relaxed)) {
        weft__worker_set_current(w);
        w->current = t;
        atomic_store_explicit(&w->watch.active, 1, memory_order_release);
    } else {
        weft__relief_take_back(w, t, home);
        /* Only where the stack has room below: the guard region is not this task's. */
        if ((uintptr_t)__builtin_frame_address(0) - (uintptr_t)t->stack->lo > 2 * CLEAR_BYTES) {
            weft__hook_reports_off(); /* below sp: memcheck's "invalid write" */
            clear_below_sp();
            weft__hook_reports_on();
        }
    }
    weft__task_flags_clear(t, WEFT__T_HANDED);
    return w;
}

weft__worker *weft__handoff_reclaim(void)
{
    weft__worker *w = tls_handed.w;
    if (!w)
        return NULL;
    weft_task *t = tls_handed.t;
    uint64_t lent = tls_handed.lent;
    weft__relief_home home = tls_handed.home;
    tls_handed.w = NULL;
    weft__worker_set_reclaim(NULL);
    return take_back(w, t, lent, &home);
}

/* The take-back of a thread that finds its worker slot SEIZED (worker.c; handoff.h). */
static weft__worker *seized_take_back(void)
{
    seize_rec *r = &tls_seize;
    int c = atomic_load_explicit(&r->claim, memory_order_acquire);
    if (c == CLAIM_PENDING &&
        atomic_compare_exchange_strong_explicit(&r->claim, &c, CLAIM_CANCELLED,
                                                memory_order_acq_rel, memory_order_acquire)) {
        /* Ours: the watchdog leaves the slot and the record alone now. */
        weft__worker *w = r->w;
        r->w = NULL;
        r->t = NULL;
        weft__worker_set_current(w);
        /* release: the watchdog's next seize (acquire) finds the record clear. */
        atomic_store_explicit(&r->claim, CLAIM_IDLE, memory_order_release);
        return w;
    }
    /* The watchdog's cancel, or its commit, in progress: a few instructions each. */
    while (c == CLAIM_CANCELLED || c == CLAIM_COMMITTED) {
        sched_yield();
        c = atomic_load_explicit(&r->claim, memory_order_acquire);
    }
    if (c == CLAIM_IDLE) /* cancelled: the slot was put back before IDLE */
        return weft__worker_tls();
    weft__worker *w = r->w; /* PUBLISHED */
    weft_task *t = r->t;
    uint64_t lent = r->lent;
    weft__relief_home home = r->home;
    r->w = NULL;
    r->t = NULL;
    atomic_store_explicit(&r->claim, CLAIM_IDLE, memory_order_relaxed);
    return take_back(w, t, lent, &home);
}
