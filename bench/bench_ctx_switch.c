/* ctx_switch: 10,000,000 one-way switches between two contexts with weft's raw switch
 * (weft__ctx_switch, the primitive every task switch uses), like Boost.Context's
 * jump_fcontext.
 *
 * Two figures. The headline runs the same loop on both sides, as the runtime does (every
 * task switch leaves from scheduler.c's switch_to): weft's switch ends in `ret`, which the CPU
 * predicts when both sides return to the same call site. The extra field two_site_ns runs
 * main and the coroutine from different loops (the shape of Boost's harness), where that
 * `ret` mispredicts on every switch. An indirect jump (Boost's choice) would win there and
 * lose on the runtime's yield path: see src/arch/x86_64/switch.S. */
#include <sys/mman.h>

#include "arch/switch.h"
#include "bench_common.h"

static weft__ctx main_ctx, co_ctx;
static volatile long sink;

/* The symmetric loop: both contexts run this, so every switch returns to the same site. */
static __attribute__((noinline)) void ping(weft__ctx *self, weft__ctx *other, long rounds)
{
    for (long i = 0; i < rounds; i++) {
        sink = i;
        weft__ctx_switch(self, other);
    }
}

static void co_symmetric(void *arg)
{
    ping(&co_ctx, &main_ctx, (long)(intptr_t)arg);
    for (;;)
        weft__ctx_switch(&co_ctx, &main_ctx);
}

static void co_two_site(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        sink = i;
        weft__ctx_switch(&co_ctx, &main_ctx);
    }
    for (;;)
        weft__ctx_switch(&co_ctx, &main_ctx);
}

int main(int argc, char **argv)
{
    long n = bench_n(argc, argv, 10000000);
    size_t size = 64 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double sym[BENCH_REPEATS], two[BENCH_REPEATS];
    for (int r = 0; r < BENCH_REPEATS; r++) {
        weft__ctx_make(&co_ctx, stack + size, co_symmetric, (void *)(intptr_t)(n / 2));
        weft__ctx_switch(&main_ctx, &co_ctx); /* enter ping on the coroutine side */
        int64_t t0 = bench_ns();
        ping(&main_ctx, &co_ctx, n / 2);
        sym[r] = (double)(bench_ns() - t0) / (double)n;

        weft__ctx_make(&co_ctx, stack + size, co_two_site, (void *)(intptr_t)(n / 2));
        t0 = bench_ns();
        for (long i = 0; i < n / 2; i++)
            weft__ctx_switch(&main_ctx, &co_ctx);
        two[r] = (double)(bench_ns() - t0) / (double)n;
    }
    char extra[64];
    snprintf(extra, sizeof extra, ",\"two_site_ns\":%.3f", bench_median(two, BENCH_REPEATS));
    bench_emit("weft", "ctx_switch", n, bench_median(sym, BENCH_REPEATS), "ns/switch", extra);
    munmap(stack, size);
    return 0;
}
