/* AArch64 (AAPCS64) context switch; see src/arch/switch.h for the contract.
 * Saved frame, 176 bytes from the saved sp upward: x19..x28 at +0..+72, x29 (fp) +80,
 * x30 (lr) +88, d8..d15 at +96..+152, FPCR at +160. 176 keeps sp 16-byte aligned. */
#include "../switch.h"

    .text
    .globl  weft__ctx_switch
    .hidden weft__ctx_switch
    .type   weft__ctx_switch, %function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    /* weft__ctx_resume: a finished task's trampoline (below) branches here with x1 = to,
     * saving nothing (its context never runs again). */
    .globl  weft__ctx_resume
    .hidden weft__ctx_resume
weft__ctx_resume:
    ldr     x9, [x1]
    mov     sp, x9
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/* First code a new coroutine runs: x19 holds the argument, x20 the entry function. lr is
 * marked undefined and fp/lr are zeroed so that unwinders and frame walks stop here. Tasks
 * start in weft__ctx_task_trampoline (below); this one serves weft__ctx_make's entries that
 * never return (the switch's tests and benchmark). */
    .globl  weft__ctx_trampoline
    .hidden weft__ctx_trampoline
    .type   weft__ctx_trampoline, %function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    blr     x20
    brk     #0
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

/* First code a task's coroutine runs (weft__ctx_make_task): x19 holds the argument, x20 the
 * begin function; of the 16 bytes at sp the second holds the end function and the first (the
 * entry slot, switch.h) is 0. It calls begin(arg), which returns the body and its argument
 * (x0, x1); moves sp WEFT__CTX_BODY_GAP down, so that begin's dead frames are never among
 * the body's; stores that sp in the entry slot; calls the body; zeroes the slot as soon as
 * the body returns; calls end(arg, result) from the first frame again, which returns the
 * context to resume; and resumes it through the second half of the switch (nothing saved:
 * the task is over; no call pending, as on x86_64). The body's return address is the label
 * weft__ctx_call_ret (in lr, or saved by the body's first frame). No code address stays in a callee-saved register while the body runs:
 * x20 is cleared. */
    .globl  weft__ctx_task_trampoline
    .hidden weft__ctx_task_trampoline
    .type   weft__ctx_task_trampoline, %function
    .globl  weft__ctx_call_ret
    .hidden weft__ctx_call_ret
    .p2align 4
weft__ctx_task_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    mov     x9, x20
    mov     x20, xzr
    blr     x9
    mov     x10, sp
    sub     sp, sp, #WEFT__CTX_BODY_GAP
    mov     x11, sp
    str     x11, [x10]
    mov     x9, x0
    mov     x0, x1
    blr     x9
weft__ctx_call_ret:
    add     sp, sp, #WEFT__CTX_BODY_GAP
    str     xzr, [sp]
    mov     x1, x0
    mov     x0, x19
    ldr     x9, [sp, #8]
    blr     x9
    mov     x1, x0
    b       weft__ctx_resume
    .cfi_endproc
    .size   weft__ctx_task_trampoline, .-weft__ctx_task_trampoline

    .section .note.GNU-stack,"",%progbits
