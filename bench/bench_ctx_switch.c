/* ctx_switch: 10,000,000 one-way switches between two contexts with weft's raw switch
 * (weft__ctx_switch, the primitive every task switch uses), like Boost.Context's
 * jump_fcontext, in each of the shapes code around a switch can take. One JSON line per
 * shape ("shape" field); docs/switch.md explains what each costs and why.
 *
 *   one_site        both contexts switch from the same loop (the same call site);
 *   two_site        main and the coroutine switch from different loops: the shape of the
 *                   Boost.Context and ucontext harnesses in bench/peers/;
 *   scheduler       both switch through one never-inlined wrapper, reached from the same
 *                   caller: the shape of scheduler.c's task-to-task switch (switch_to, called
 *                   from schedule_away);
 *   scheduler_loop  the wrapper reached from two different callers: the scheduler's switch
 *                   between the loop and a task. The wrapper's own return then goes to a
 *                   caller the return stack cannot predict, whatever the switch does.
 *
 * Each shape runs in trials of 100,000 round trips, the shapes alternating. The headline is
 * the median over a shape's trials of the thread's CPU time per switch; wall_ns is the same
 * median of wall-clock time. On a shared machine a preempted trial's wall time grows by whole
 * scheduler ticks (4 ms: 40 ns per switch per tick at this trial size), which is where
 * figures of ~50 ns per switch come from (docs/switch.md); its CPU time does not. */
#include <sys/mman.h>

#include "arch/switch.h"
#include "bench_common.h"

enum { ONE_SITE, TWO_SITE, SCHED, SCHED_LOOP, NSHAPES };
static const char *const shape_name[NSHAPES] = {"one_site", "two_site", "scheduler",
                                                "scheduler_loop"};

#define TRIAL_ROUNDS 100000 /* round trips per trial: 200,000 switches */

static weft__ctx main_ctx, co_ctx;
static volatile long sink;

/* one_site: both contexts run this loop. */
static __attribute__((noinline)) void ping(weft__ctx *self, weft__ctx *other, long rounds)
{
    for (long i = 0; i < rounds; i++) {
        sink = i;
        weft__ctx_switch(self, other);
    }
}

/* The scheduler's switch_to: the one site of the switch, never inlined. */
static __attribute__((noinline)) void hop(weft__ctx *self, weft__ctx *other)
{
    sink++;
    weft__ctx_switch(self, other);
    sink--;
}

/* scheduler: both contexts reach hop from this loop (schedule_away). */
static __attribute__((noinline)) void hop_loop(weft__ctx *self, weft__ctx *other, long rounds)
{
    for (long i = 0; i < rounds; i++)
        hop(self, other);
}

/* scheduler_loop: main's side, a second caller of hop (the loop's resume). */
static __attribute__((noinline)) void hop_loop_main(long rounds)
{
    for (long i = 0; i < rounds; i++)
        hop(&main_ctx, &co_ctx);
}

struct co_arg {
    int shape;
    long rounds;
};

/* The coroutine: its half of the shape, then switches back forever (the next trial makes a
 * fresh context). */
static void co_entry(void *p)
{
    const struct co_arg *a = p;
    if (a->shape == ONE_SITE)
        ping(&co_ctx, &main_ctx, a->rounds);
    else if (a->shape == SCHED)
        hop_loop(&co_ctx, &main_ctx, a->rounds);
    else if (a->shape == TWO_SITE)
        for (long i = 0; i < a->rounds; i++) {
            sink = i;
            weft__ctx_switch(&co_ctx, &main_ctx);
        }
    else
        for (long i = 0; i < a->rounds; i++) {
            sink = -i;
            hop(&co_ctx, &main_ctx);
        }
    for (;;)
        weft__ctx_switch(&co_ctx, &main_ctx);
}

/* One trial of `rounds` round trips in `shape`: CPU and wall ns per one-way switch. */
static void trial(int shape, long rounds, char *stack, size_t size, double *cpu, double *wall)
{
    struct co_arg a = {shape, rounds};
    weft__ctx_make(&co_ctx, stack + size, co_entry, &a);
    /* The symmetric shapes start with the coroutine already inside its loop. */
    if (shape == ONE_SITE || shape == SCHED)
        weft__ctx_switch(&main_ctx, &co_ctx);
    int64_t w0 = bench_ns(), c0 = bench_cpu_ns();
    if (shape == ONE_SITE)
        ping(&main_ctx, &co_ctx, rounds);
    else if (shape == SCHED)
        hop_loop(&main_ctx, &co_ctx, rounds);
    else if (shape == TWO_SITE)
        for (long i = 0; i < rounds; i++)
            weft__ctx_switch(&main_ctx, &co_ctx);
    else
        hop_loop_main(rounds);
    int64_t c1 = bench_cpu_ns(), w1 = bench_ns();
    *cpu = (double)(c1 - c0) / (double)(2 * rounds);
    *wall = (double)(w1 - w0) / (double)(2 * rounds);
}

int main(int argc, char **argv)
{
    long n = bench_n(argc, argv, 10000000);
    long rounds = n / 2 < TRIAL_ROUNDS ? (n / 2 > 0 ? n / 2 : 1) : TRIAL_ROUNDS;
    int ntrials = (int)((n / 2 + rounds - 1) / rounds);
    size_t size = 64 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double *cpu = malloc(sizeof(double) * NSHAPES * (size_t)ntrials);
    double *wall = malloc(sizeof(double) * NSHAPES * (size_t)ntrials);
    if (stack == MAP_FAILED || !cpu || !wall) {
        fprintf(stderr, "bench_ctx_switch: out of memory\n");
        return 1;
    }
    double c, w;
    for (int s = 0; s < NSHAPES; s++) /* warm-up: code, stack and predictors */
        trial(s, rounds, stack, size, &c, &w);
    for (int r = 0; r < ntrials; r++)
        for (int s = 0; s < NSHAPES; s++)
            trial(s, rounds, stack, size, &cpu[s * ntrials + r], &wall[s * ntrials + r]);
    for (int s = 0; s < NSHAPES; s++) {
        char extra[96];
        snprintf(extra, sizeof extra, ",\"shape\":\"%s\",\"wall_ns\":%.3f,\"trials\":%d",
                 shape_name[s], bench_median(wall + s * ntrials, ntrials), ntrials);
        bench_emit("weft", "ctx_switch", 2 * rounds * ntrials,
                   bench_median(cpu + s * ntrials, ntrials), "ns/switch", extra);
    }
    free(wall);
    free(cpu);
    munmap(stack, size);
    return 0;
}
