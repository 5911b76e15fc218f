/* ctx_switch peer: two ucontext_t contexts ping-pong with swapcontext(3), counting each
 * one-way switch; prints one JSON line (impl "ucontext", ns/switch). Note glibc's
 * swapcontext also saves/restores the signal mask (a syscall per switch). Usage: ctx_switch [n] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)

static ucontext_t main_ctx, co_ctx;
static volatile unsigned long sink;

static void co_entry(void) {
    for (;;) {
        sink++;
        swapcontext(&co_ctx, &main_ctx); /* one-way switch: coroutine -> main */
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = 10000000; /* one-way switches (contract) */
    if (argc > 1) n = atol(argv[1]);
    if (n < 2) n = 2;
    long rounds = n / 2; /* each round = main->co + co->main */
    n = rounds * 2;

    static char stack[STACK_SIZE] __attribute__((aligned(16)));
    if (getcontext(&co_ctx) != 0) { perror("getcontext"); return 1; }
    co_ctx.uc_stack.ss_sp = stack;
    co_ctx.uc_stack.ss_size = sizeof stack;
    co_ctx.uc_link = NULL;
    makecontext(&co_ctx, co_entry, 0);

    /* warm-up so the coroutine stack is touched before timing */
    for (int i = 0; i < 1000; i++) swapcontext(&main_ctx, &co_ctx);

    double t0 = now_ns();
    for (long i = 0; i < rounds; i++) swapcontext(&main_ctx, &co_ctx); /* main -> co */
    double t1 = now_ns();

    if (sink < (unsigned long)rounds) { fprintf(stderr, "sink mismatch\n"); return 1; }
    printf("{\"impl\":\"ucontext\",\"workload\":\"ctx_switch\",\"n\":%ld,\"value\":%.2f,\"unit\":\"ns/switch\"}\n",
           n, (t1 - t0) / (double)n);
    return 0;
}
