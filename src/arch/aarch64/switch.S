/* AArch64 (AAPCS64) context switch; see src/arch/switch.h for the contract.
 * Saved frame, 176 bytes from the saved sp upward: x19..x28 at +0..+72, x29 (fp) +80,
 * x30 (lr) +88, d8..d15 at +96..+152, FPCR at +160. 176 keeps sp 16-byte aligned. */
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
 * marked undefined and fp/lr are zeroed so that unwinders and frame walks stop here. */
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
    mov     x9, x20
    /* The entry's address must not stay in a callee-saved register: the body's frames would
     * save it, and the involuntary hand-off (handoff.c) takes any address of weft's code on
     * the body's part of the stack for a weft call in progress. */
    mov     x19, xzr
    mov     x20, xzr
    blr     x9
    brk     #0
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

/* Calls fn(arg) and returns its result: x0 = fn, x1 = arg, x2 = where to store the sp fn
 * is called with (its own frame record). A task's body runs under it (scheduler.c's
 * task_entry), so that the one return address into weft's code that the body's frames can
 * hold is weft__ctx_call_ret (saved by the body's first frame, or still in lr): the
 * involuntary hand-off (handoff.c) scans the words between the interrupted sp and that sp,
 * and any other address of weft's code there is a weft call in progress. */
    .globl  weft__ctx_call
    .hidden weft__ctx_call
    .type   weft__ctx_call, %function
    .globl  weft__ctx_call_ret
    .hidden weft__ctx_call_ret
    .p2align 4
weft__ctx_call:
    .cfi_startproc
    stp     x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov     x29, sp
    mov     x9, sp
    str     x9, [x2]
    mov     x9, x0
    mov     x0, x1
    blr     x9
weft__ctx_call_ret:
    ldp     x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   weft__ctx_call, .-weft__ctx_call

    .section .note.GNU-stack,"",%progbits
