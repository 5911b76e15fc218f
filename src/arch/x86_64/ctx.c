/* Builds the first frame of an x86_64 coroutine so that weft__ctx_swap's final jump lands in
 * weft__ctx_trampoline with a 16-byte aligned stack and the ABI's default FP control state. */
#include <stdint.h>
#include <string.h>

#include "../switch.h"

void weft__ctx_trampoline(void);

void weft__ctx_make(weft__ctx *ctx, void *top, void (*entry)(void *), void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    /* t-16..t stays zero: the trampoline's caller-less frame. The switch leaves with
     * rsp = saved sp + WEFT__CTX_CALLER_OFFSET, which is t-16 here, 16-byte aligned as a call
     * needs. The 128 bytes between the frame and t-16 are never read. */
    uint64_t *sp = (uint64_t *)(t - 16 - WEFT__CTX_CALLER_OFFSET);
    memset(sp, 0, WEFT__CTX_FRAME_BYTES);
    memset((char *)t - 16, 0, 16);
    uint32_t mxcsr = 0x1F80; /* all exceptions masked, round to nearest: the ABI default */
    uint16_t fcw = 0x037F;   /* x87: extended precision, exceptions masked */
    memcpy((char *)sp + 0, &mxcsr, sizeof mxcsr);
    memcpy((char *)sp + 4, &fcw, sizeof fcw);
    sp[3] = (uint64_t)(uintptr_t)entry;                /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;                  /* r12 */
    sp[6] = 0;                                         /* rbp: ends the frame chain */
    sp[7] = (uint64_t)(uintptr_t)weft__ctx_trampoline; /* resume address */
    ctx->sp = sp;
}

/* weft__ctx_make_task is inline (switch.h). */
