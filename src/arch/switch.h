/* The context-switch contract. A context is one saved stack pointer: the switch pushes the
 * callee-saved registers and the FP control state (x86_64: rbx rbp r12-r15, MXCSR, x87 CW;
 * aarch64: x19-x29, lr, d8-d15, FPCR) on the old stack, stores sp in *from, loads sp from *to
 * and pops the same set. Nothing else (no signal mask, no syscall), which is why it is fast. */
#ifndef WEFT_ARCH_SWITCH_H
#define WEFT_ARCH_SWITCH_H

#include <stddef.h>

typedef struct weft__ctx {
    void *sp;
} weft__ctx;

/* Saves the running context into *from and resumes *to. Returns when something switches
 * back to *from. Defined in src/arch/<arch>/switch.S. */
void weft__ctx_switch(weft__ctx *from, weft__ctx *to);

/* Prepares `ctx` so that switching to it runs entry(arg) on the stack whose highest address
 * is `top`, with a frame chain that ends there (gdb, perf and backtrace() stop at the
 * coroutine's entry). `entry` must never return. Defined in src/arch/<arch>/ctx.c. */
void weft__ctx_make(weft__ctx *ctx, void *top, void (*entry)(void *), void *arg);

#endif
