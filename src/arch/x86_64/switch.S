/* x86_64 System V context switch; see src/arch/switch.h for the contract and docs/switch.md
 * for the measurements behind its shape.
 *
 * Reached by a jump, not a call, from the inline asm of weft__ctx_switch (switch.h), with
 * rdi = from, rsi = to and rax = the address to resume the leaving context at; rsp is the
 * caller's own (no return address pushed). It ends with an indirect jump, not `ret`, so the
 * CPU's return stack is never touched: the jump is predicted from the branch history (right
 * whichever call site the resumed context left from), and every return that follows a
 * switch still pairs with its own call.
 *
 * Saved frame, from the saved sp upward:
 *   +0 MXCSR (4 bytes) +4 x87 control word (2 bytes), +8 r15, +16 r14, +24 r13, +32 r12,
 *   +40 rbx, +48 rbp, +56 resume address, +64..+192 not written (the caller's red zone,
 *   which the compiler may use in a function it believes makes no call).
 * The saved sp is the caller's rsp minus WEFT__CTX_CALLER_OFFSET (192). */
#include "../switch.h"

#define OFF WEFT__CTX_CALLER_OFFSET
    .text
    .globl  weft__ctx_swap
    .hidden weft__ctx_swap
    .type   weft__ctx_swap, @function
    .p2align 4
weft__ctx_swap:
    .cfi_startproc
    /* The caller's rsp is the canonical frame address, and rip is in rax. */
    .cfi_def_cfa rsp, 0
    .cfi_register rip, rax
    leaq    -OFF(%rsp), %rsp
    .cfi_adjust_cfa_offset OFF
    movq    %rax, 56(%rsp)
    .cfi_offset rip, 56 - OFF
    movq    %rbp, 48(%rsp)
    .cfi_offset rbp, 48 - OFF
    movq    %rbx, 40(%rsp)
    .cfi_offset rbx, 40 - OFF
    movq    %r12, 32(%rsp)
    .cfi_offset r12, 32 - OFF
    movq    %r13, 24(%rsp)
    .cfi_offset r13, 24 - OFF
    movq    %r14, 16(%rsp)
    .cfi_offset r14, 16 - OFF
    movq    %r15, 8(%rsp)
    .cfi_offset r15, 8 - OFF
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    /* From here the frame is the resumed context's, with the same layout: the CFI above
     * describes it as well. weft__ctx_resume: a finished task's trampoline (below) jumps here
     * with rsi = to, saving nothing (its context never runs again). */
    .globl  weft__ctx_resume
    .hidden weft__ctx_resume
weft__ctx_resume:
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    movq    8(%rsp), %r15
    movq    16(%rsp), %r14
    movq    24(%rsp), %r13
    movq    32(%rsp), %r12
    movq    40(%rsp), %rbx
    movq    48(%rsp), %rbp
    movq    56(%rsp), %rcx
    .cfi_register rip, rcx
    leaq    OFF(%rsp), %rsp
    .cfi_adjust_cfa_offset -OFF
    jmpq    *%rcx
    .cfi_endproc
    .size   weft__ctx_swap, .-weft__ctx_swap

/* First code a new coroutine runs (reached by the jump above, with rsp 16-byte aligned): r12
 * holds the argument and r13 the entry function. rip is marked undefined so that unwinders
 * stop here, and rbp is zero so that frame-pointer walks stop at the entry's frame. Tasks
 * start in weft__ctx_task_trampoline (below); this one serves weft__ctx_make's entries that
 * never return (the switch's tests and benchmark). */
    .globl  weft__ctx_trampoline
    .hidden weft__ctx_trampoline
    .type   weft__ctx_trampoline, @function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

/* First code a task's coroutine runs (weft__ctx_make_task): r12 holds the argument, r13 the
 * begin function; rsp is 16-byte aligned, and of the 16 bytes above it the second holds the
 * end function and the first (the entry slot, switch.h) is 0. It calls begin(arg), which
 * returns the body and its argument (rax, rdx), from that frame; moves rsp
 * WEFT__CTX_BODY_GAP down, so that begin's dead frames are never among the body's; stores
 * that sp in the entry slot; calls the body; zeroes the slot as soon as the body returns;
 * calls end(arg, result) from the first frame again, which returns the context to resume;
 * and resumes it through the second half of the switch, from this frame. The task is over,
 * so nothing is saved; and no call is pending when it leaves, so the return stack holds what
 * it held when the task first ran: a child-first spawn's caller, resumed now, returns
 * through its own calls' entries, predicted (docs/switch.md). The body's return
 * address is the label weft__ctx_call_ret. No code address stays in a callee-saved register
 * while the body runs (its frames would save it): r13 is cleared. */
    .globl  weft__ctx_task_trampoline
    .hidden weft__ctx_task_trampoline
    .type   weft__ctx_task_trampoline, @function
    .globl  weft__ctx_call_ret
    .hidden weft__ctx_call_ret
    .p2align 4
weft__ctx_task_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    movq    %r13, %rax
    xorl    %r13d, %r13d
    callq   *%rax
    movq    %rsp, %rcx
    subq    $WEFT__CTX_BODY_GAP, %rsp
    movq    %rsp, (%rcx)
    movq    %rdx, %rdi
    callq   *%rax
weft__ctx_call_ret:
    addq    $WEFT__CTX_BODY_GAP, %rsp
    movq    $0, (%rsp)
    movq    %r12, %rdi
    movq    %rax, %rsi
    callq   *8(%rsp)
    movq    %rax, %rsi
    jmp     weft__ctx_resume
    .cfi_endproc
    .size   weft__ctx_task_trampoline, .-weft__ctx_task_trampoline

    .section .note.GNU-stack,"",@progbits
