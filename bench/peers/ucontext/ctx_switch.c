/* ctx_switch peer: two ucontext_t contexts ping-pong with swapcontext(3), counting each
 * one-way switch; prints one JSON line (impl "ucontext", ns/switch). Note glibc's
 * swapcontext also saves/restores the signal mask (a syscall per switch). Usage: ctx_switch [n]
 *
 * Main and the coroutine switch from different loops: weft's "two_site" shape. Measured as
 * weft's bench_ctx_switch is: trials of 10,000 round trips, the median of the thread's CPU
 * time per switch as the value and the median of wall time as wall_ns. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)
#define TRIAL_ROUNDS 10000 /* fewer than weft's: each switch here is a system call */
#define MAX_TRIALS 4096

static ucontext_t main_ctx, co_ctx;
static volatile unsigned long sink;

static void co_entry(void) {
    for (;;) {
        sink++;
        swapcontext(&co_ctx, &main_ctx); /* one-way switch: coroutine -> main */
    }
}

static double clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    long n = 10000000; /* one-way switches (contract) */
    if (argc > 1) n = atol(argv[1]);
    if (n < 2) n = 2;
    long rounds = n / 2 < TRIAL_ROUNDS ? n / 2 : TRIAL_ROUNDS; /* round = main->co + co->main */
    long ntrials = (n / 2 + rounds - 1) / rounds;
    if (ntrials > MAX_TRIALS) ntrials = MAX_TRIALS;

    static char stack[STACK_SIZE] __attribute__((aligned(16)));
    if (getcontext(&co_ctx) != 0) { perror("getcontext"); return 1; }
    co_ctx.uc_stack.ss_sp = stack;
    co_ctx.uc_stack.ss_size = sizeof stack;
    co_ctx.uc_link = NULL;
    makecontext(&co_ctx, co_entry, 0);

    /* warm-up so the coroutine stack is touched before timing */
    for (int i = 0; i < 1000; i++) swapcontext(&main_ctx, &co_ctx);

    static double cpu[MAX_TRIALS], wall[MAX_TRIALS];
    unsigned long before = sink;
    for (long r = 0; r < ntrials; r++) {
        double w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < rounds; i++) swapcontext(&main_ctx, &co_ctx); /* main -> co */
        double c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), w1 = clock_ns(CLOCK_MONOTONIC);
        cpu[r] = (c1 - c0) / (double)(2 * rounds);
        wall[r] = (w1 - w0) / (double)(2 * rounds);
    }

    if (sink - before != (unsigned long)(rounds * ntrials)) { fprintf(stderr, "sink mismatch\n"); return 1; }
    printf("{\"impl\":\"ucontext\",\"workload\":\"ctx_switch\",\"n\":%ld,\"value\":%.3f,"
           "\"unit\":\"ns/switch\",\"shape\":\"two_site\",\"wall_ns\":%.3f,\"trials\":%ld}\n",
           2 * rounds * ntrials, median(cpu, ntrials), median(wall, ntrials), ntrials);
    return 0;
}
