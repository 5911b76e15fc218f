/* Builds the first frame of an AArch64 coroutine so that weft__ctx_switch "returns" into
 * weft__ctx_trampoline with a 16-byte aligned stack, FPCR zero (the ABI default) and a
 * frame chain that ends at the entry. */
#include <stdint.h>
#include <string.h>

#include "../switch.h"

void weft__ctx_trampoline(void);
void weft__ctx_task_trampoline(void);

void weft__ctx_make(weft__ctx *ctx, void *top, void (*entry)(void *), void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(t - 16 - 176); /* 16 zero bytes above the saved frame */
    memset(sp, 0, 16 + 176);
    sp[0] = (uint64_t)(uintptr_t)arg;                   /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry;                 /* x20 */
    sp[10] = 0;                                         /* x29: ends the frame chain */
    sp[11] = (uint64_t)(uintptr_t)weft__ctx_trampoline; /* x30: where `ret` goes */
    ctx->sp = sp;
}

void weft__ctx_make_task(weft__ctx *ctx, void *top, weft__ctx_body (*begin)(void *arg),
                         weft__ctx *(*end)(void *arg, void *result), void *arg)
{
    weft__ctx_make(ctx, top, (void (*)(void *))(void (*)(void))begin, arg); /* never called so */
    uint64_t *sp = ctx->sp;
    sp[11] = (uint64_t)(uintptr_t)weft__ctx_task_trampoline;
    /* The trampoline starts with sp at t-16; it reads `end` at sp+8. */
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    *(uint64_t *)(t - 8) = (uint64_t)(uintptr_t)end;
}
