/* The context-switch contract. A context is one saved stack pointer: the switch stores the
 * callee-saved registers, the FP control state and the resume address (x86_64: rbx rbp
 * r12-r15, MXCSR, x87 CW; aarch64: x19-x29, lr, d8-d15, FPCR) in a frame on the old stack,
 * stores sp in *from, loads sp from *to and restores the same set from there. Nothing else
 * (no signal mask, no syscall), which is why it is fast.
 *
 * x86_64 enters the switch by a jump and leaves it by an indirect jump, so that the CPU's
 * return stack is never unbalanced and the switch is predicted whichever call sites the two
 * contexts left from (docs/switch.md has the measurements). */
#ifndef WEFT_ARCH_SWITCH_H
#define WEFT_ARCH_SWITCH_H

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>

typedef struct weft__ctx {
    void *sp;
} weft__ctx;
#endif

/* Where a parked context's state lies above its saved sp: the saved frame, then (from
 * WEFT__CTX_CALLER_OFFSET) the frame of the function that called weft__ctx_switch. Used to
 * prefetch a context before switching to it. */
/* How far below its trampoline's frame a task's body starts (switch.S): the task's first and
 * last calls (its begin and end functions) run above that line, so the return addresses into
 * weft's code their frames leave behind are not in the body's part of the stack, which the
 * involuntary hand-off scans (handoff.c): a stale one there makes it refuse, and the task
 * then keeps its worker. A multiple of 16. A sanitizer's build (unoptimised, frames with
 * redzones, the annotated switch's calls) needs more: its end path outgrew 1,024 bytes, and a
 * task that never yields starved its worker under ASan (test_ported_sched,
 * a_task_looping_on_ready_operations_does_not_starve_its_worker). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEFT__CTX_BODY_GAP 4096
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEFT__CTX_BODY_GAP 4096
#endif
#endif
#ifndef WEFT__CTX_BODY_GAP
#define WEFT__CTX_BODY_GAP 1024
#endif

#if defined(__x86_64__)
#define WEFT__CTX_FRAME_BYTES   64
#define WEFT__CTX_CALLER_OFFSET 192 /* the frame, then the caller's 128-byte red zone */
#elif defined(__aarch64__)
#define WEFT__CTX_FRAME_BYTES   176
#define WEFT__CTX_CALLER_OFFSET 176
#endif

#ifndef __ASSEMBLER__
#if defined(__x86_64__)
/* Defined in src/arch/x86_64/switch.S; reached only from the asm below (its own calling
 * convention: rdi, rsi, and the resume address in rax). */
void weft__ctx_swap(void);

/* Saves the running context into *from and resumes *to. Returns when something switches
 * back to *from, with `from` as the switch that came back passed it: as its `to`, still in
 * rsi (weft__ctx_swap leaves rsi alone after it loads the sp). A caller that derives what it
 * needs after the switch from the result keeps nothing live across it, so it saves no
 * callee-saved register of its own that the switch saves anyway.
 *
 * Inline asm that jumps to weft__ctx_swap with the resume address (the label after the
 * jump) in rax: no `call`, so nothing is pushed on the return stack for a `ret` the other
 * context would have to pop. To the compiler the asm is a call: it clobbers every register
 * the ABI lets a call clobber (the other context runs arbitrary code before it switches
 * back), so whatever is live in one of them is kept elsewhere across it; rbp and rbx..r15
 * are preserved by weft__ctx_swap itself. The x87 and MMX registers are listed because the
 * ABI has the x87 stack empty at a call and the compiler would otherwise keep a long double
 * there; the AVX-512 registers because a build that may use them must not keep values in
 * them either. The pointers are copied to locals so that nothing reads them back after the
 * asm (the registers then hold whatever the other context left). */
static inline __attribute__((always_inline)) weft__ctx *weft__ctx_switch_back(weft__ctx *from,
                                                                              weft__ctx *to)
{
    weft__ctx *f = from, *t = to;
    __asm__ volatile("leaq 1f(%%rip), %%rax\n\t"
                     "jmp weft__ctx_swap\n"
                     "1:"
                     : "+D"(f), "+S"(t)
                     :
                     : "rax", "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0",
                       "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)",
                       "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "mm0", "mm1", "mm2", "mm3",
                       "mm4", "mm5", "mm6", "mm7"
#if defined(__AVX512F__)
                       ,
                       "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
                       "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0",
                       "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#endif
    );
    return t;
}

/* The same switch, for a caller that does not need `from` back. */
static inline __attribute__((always_inline)) void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
{
    (void)weft__ctx_switch_back(from, to);
}
#else
/* Saves the running context into *from and resumes *to. Returns when something switches
 * back to *from. Defined in src/arch/<arch>/switch.S. */
void weft__ctx_switch(weft__ctx *from, weft__ctx *to);

/* weft__ctx_switch, returning `from` (see the x86_64 version). */
static inline weft__ctx *weft__ctx_switch_back(weft__ctx *from, weft__ctx *to)
{
    weft__ctx_switch(from, to);
    return from;
}
#endif

/* Prepares `ctx` so that switching to it runs entry(arg) on the stack whose highest address
 * is `top`, with a frame chain that ends there (gdb, perf and backtrace() stop at the
 * coroutine's entry). `entry` must never return. Defined in src/arch/<arch>/ctx.c. */
void weft__ctx_make(weft__ctx *ctx, void *top, void (*entry)(void *), void *arg);

/* A task's body and its argument, as its begin function returns them. */
typedef struct weft__ctx_body {
    void *(*fn)(void *);
    void *arg;
} weft__ctx_body;

/* Prepares `ctx` for a task: switching to it runs begin(arg), then the body begin returned,
 * then end(arg, its result), which returns the context to resume (or never returns): the
 * trampoline resumes it from its own first frame without saving anything (the task is
 * over), so no call of the task is pending on the CPU's return stack when the resumed
 * context returns through its own calls. While the body runs, and only then, the
 * entry slot (weft__ctx_entry_slot) holds the sp the body was called with; the body's return
 * address is weft__ctx_call_ret, and no other address of weft's code is left where the
 * body's frames could save it: the involuntary hand-off (handoff.c) relies on all three.
 * Inline on x86_64 (below: a task's first run stores a dozen words instead of making a call
 * that set them with two memsets); defined in src/arch/aarch64/ctx.c elsewhere. */
#if defined(__x86_64__)
void weft__ctx_task_trampoline(void);
/* The frame weft__ctx_make builds (x86_64/ctx.c, which documents it), with the task
 * trampoline as its resume address and `end` above it. */
static inline void weft__ctx_make_task(weft__ctx *ctx, void *top,
                                       weft__ctx_body (*begin)(void *arg),
                                       weft__ctx *(*end)(void *arg, void *result), void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(t - 16 - WEFT__CTX_CALLER_OFFSET);
    /* MXCSR 0x1F80 (all exceptions masked, round to nearest) in the low 4 bytes, the x87
     * control word 0x037F (extended precision, exceptions masked) in the next 2: the ABI's
     * defaults. */
    sp[0] = (uint64_t)0x037F << 32 | 0x1F80;
    sp[1] = 0;                                              /* r15 */
    sp[2] = 0;                                              /* r14 */
    sp[3] = (uint64_t)(uintptr_t)begin;                     /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;                       /* r12 */
    sp[5] = 0;                                              /* rbx */
    sp[6] = 0;                                              /* rbp: ends the frame chain */
    sp[7] = (uint64_t)(uintptr_t)weft__ctx_task_trampoline; /* resume address */
    /* t-16: the entry slot, 0 until the body runs (a task that ended through weft_exit left
     * it set on this stack); t-8: `end`, which the trampoline reads at rsp+8. */
    ((uint64_t *)t)[-2] = 0;
    ((uint64_t *)t)[-1] = (uint64_t)(uintptr_t)end;
    ctx->sp = sp;
}
#else
void weft__ctx_make_task(weft__ctx *ctx, void *top, weft__ctx_body (*begin)(void *arg),
                         weft__ctx *(*end)(void *arg, void *result), void *arg);
#endif
/* The entry slot of a task's stack whose highest address is `top` (see above): a word the
 * task's trampoline writes, read by the hand-off's signal handler on the same thread. */
static inline char *const *weft__ctx_entry_slot(void *top)
{
    return (char *const *)(((uintptr_t)top & ~(uintptr_t)15) - 16);
}
/* The address a task's body returns to (a label in the trampoline, not a function). */
extern const char weft__ctx_call_ret[];
#endif /* __ASSEMBLER__ */

#endif
