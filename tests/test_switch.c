/* The context switch: callee-saved registers and FP control state survive switches, each
 * coroutine keeps its own errno, the frame chain ends at the coroutine's entry, and a stack
 * overflow is reported with the task's name before the process aborts. */
#include <execinfo.h>
#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/switch.h"
#include "harness.h"
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* Many values live across each yield: at -O2 the compiler keeps them in callee-saved
 * registers (rbx, r12-r15; x19-x28 and d8-d15 on aarch64), so a switch that lost one would
 * change the sums. */
static void *juggle(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    uint64_t a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13;
    uint64_t f = seed * 17, g = seed * 19, h = seed * 23, i = seed * 29, j = seed * 31;
    double x = (double)seed * 1.5, y = (double)seed * 2.5, z = (double)seed * 3.5;
    double u = (double)seed * 4.5, v = (double)seed * 5.5, s = (double)seed * 6.5;
    for (int k = 0; k < 1000; k++) {
        weft_yield();
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6, g += 7, h += 8, i += 9, j += 10;
        x += 1.0, y += 2.0, z += 3.0, u += 4.0, v += 5.0, s += 6.0;
    }
    uint64_t want_i = seed * (3 + 5 + 7 + 11 + 13 + 17 + 19 + 23 + 29 + 31) + 1000 * 55;
    double want_d = (double)seed * (1.5 + 2.5 + 3.5 + 4.5 + 5.5 + 6.5) + 1000 * 21.0;
    int ok = (a + b + c + d + e + f + g + h + i + j) == want_i && (x + y + z + u + v + s) == want_d;
    return (void *)(intptr_t)ok;
}

static void *juggle_main(void *arg)
{
    (void)arg;
    weft_task *t[4];
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_spawn(&t[k], juggle, (void *)(uintptr_t)((k + 1) * 1000003), NULL), 0);
    int ok = 1;
    for (int k = 0; k < 4; k++) {
        void *r;
        cr_assert_eq(weft_join(t[k], &r, WEFT_FOREVER), 0);
        ok &= (int)(intptr_t)r;
    }
    return (void *)(intptr_t)ok;
}

Test(switch, callee_saved_registers_survive)
{
    cr_assert_eq(run_main(juggle_main, NULL), (void *)1);
}

/* Each coroutine keeps its own rounding mode (MXCSR and the x87 control word on x86_64,
 * FPCR on aarch64) across switches, and a new one starts with the ABI default. */
static void *rounding(void *arg)
{
    int mode = (int)(intptr_t)arg;
    int ok = fegetround() == FE_TONEAREST;
    fesetround(mode);
#if defined(__x86_64__)
    unsigned csr = _mm_getcsr();
#endif
    for (int k = 0; k < 100; k++) {
        weft_yield();
        ok &= fegetround() == mode;
#if defined(__x86_64__)
        ok &= _mm_getcsr() == csr;
#endif
    }
    fesetround(FE_TONEAREST);
    return (void *)(intptr_t)ok;
}

static void *rounding_main(void *arg)
{
    (void)arg;
    int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST};
    weft_task *t[4];
    for (int k = 0; k < 4; k++)
        weft_spawn(&t[k], rounding, (void *)(intptr_t)modes[k], NULL);
    int ok = 1;
    for (int k = 0; k < 4; k++) {
        void *r;
        weft_join(t[k], &r, WEFT_FOREVER);
        ok &= (int)(intptr_t)r;
    }
    return (void *)(intptr_t)(ok && fegetround() == FE_TONEAREST);
}

Test(switch, fp_control_state_is_per_coroutine)
{
    cr_assert_eq(run_main(rounding_main, NULL), (void *)1);
}

static void *errno_keeper(void *arg)
{
    int mine = (int)(intptr_t)arg;
    errno = mine;
    for (int k = 0; k < 50; k++) {
        weft_yield();
        if (errno != mine)
            return (void *)0;
        errno = mine;
    }
    return (void *)1;
}

static void *errno_main(void *arg)
{
    (void)arg;
    weft_task *a, *b;
    weft_spawn(&a, errno_keeper, (void *)(intptr_t)EPIPE, NULL);
    weft_spawn(&b, errno_keeper, (void *)(intptr_t)EINTR, NULL);
    errno = ENOENT;
    void *ra, *rb;
    weft_join(a, &ra, WEFT_FOREVER);
    int main_ok = errno == ENOENT;
    weft_join(b, &rb, WEFT_FOREVER);
    return (void *)(intptr_t)(ra == (void *)1 && rb == (void *)1 && main_ok);
}

Test(switch, errno_is_per_coroutine)
{
    cr_assert_eq(run_main(errno_main, NULL), (void *)1);
}

/* The frame-pointer chain from inside a coroutine ends (a NULL saved fp) within a few
 * frames: the entry, not garbage below it; backtrace() stops there too. */
static __attribute__((noinline)) int walk_frames(void)
{
    void **fp = __builtin_frame_address(0);
    int n = 0;
    while (fp && n < 64) {
        fp = (void **)fp[0];
        n++;
    }
    return fp == NULL ? n : -1;
}

static void *frames(void *arg)
{
    (void)arg;
    weft_yield();
    int n = walk_frames();
    void *bt[64];
    int nbt = backtrace(bt, 64);
    return (void *)(intptr_t)(n > 0 && n < 8 && nbt > 0 && nbt < 16);
}

static void *frames_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, frames, NULL, NULL);
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    return r;
}

Test(switch, frame_chain_ends_at_coroutine_entry)
{
    cr_assert_eq(run_main(frames_main, NULL), (void *)1);
}

static void *overflow(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void *overflow_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, overflow, NULL, &(weft_spawn_opts){.name = "deep-diver", .stack_size = 32768});
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

/* Runs the overflow in a child whose stderr we read: it must die of SIGABRT after a message
 * that names the task and its stack size. */
Test(switch, stack_overflow_is_reported)
{
    SKIP_UNDER_VALGRIND();
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        coverage_dump_on_abort();
        /* One worker and no stall detector (its thread): qemu-user (the aarch64 cross-test)
         * asserts in its own code when a guest with several threads takes this fault
         * (cpu_exec: cpu == current_cpu); the report is the same with any number of workers
         * (tests/test_stack.c). */
        weft_config c;
        weft_config_init(&c);
        c.workers = 1;
        c.stall_ms = -1;
        weft_run(&c, overflow_main, NULL, NULL);
        coverage_dump();
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d, stderr: %s", status,
              buf);
    cr_assert(strstr(buf, "stack overflow in task 2 \"deep-diver\""), "stderr: %s", buf);
    cr_assert(strstr(buf, "stack 32768 bytes"), "stderr: %s", buf);
}

/* The raw switch, without the scheduler: two contexts that switch from different call sites
 * (the switch must land on the right one either way), with values the compiler keeps in
 * registers and in its stack frame across each switch, while the other side computes with
 * its own. The main side is a function the compiler sees as making no call (the x86_64
 * switch is inline asm), so its locals may sit in the red zone below the stack pointer, which
 * the switch must not write. The FP values include a long double (x87 registers), and each
 * side runs in its own rounding mode. */
#define RAW_ROUNDS 200
static weft__ctx raw_main_ctx, raw_co_ctx;

struct raw_result {
    long double lacc;
    double dacc;
    uint64_t iacc;
    int rounding_ok;
};

static void raw_co(void *arg)
{
    struct raw_result *res = arg;
    fesetround(FE_DOWNWARD);
    long double lacc = 1.0L;
    double dacc = 0.5;
    uint64_t iacc = 7;
    int ok = 1;
    for (int k = 0; k < RAW_ROUNDS; k++) {
        lacc = lacc * 1.0000001L + (long double)k / 3.0L;
        dacc = dacc * 1.5 + (double)k / 7.0;
        iacc = iacc * 6364136223846793005ull + (uint64_t)k;
        weft__ctx_switch(&raw_co_ctx, &raw_main_ctx);
        ok &= fegetround() == FE_DOWNWARD;
    }
    res->lacc = lacc, res->dacc = dacc, res->iacc = iacc, res->rounding_ok = ok;
    fesetround(FE_TONEAREST);
    for (;;)
        weft__ctx_switch(&raw_co_ctx, &raw_main_ctx);
}

/* What raw_co computes, with no switch in between (FE_DOWNWARD as there). */
static struct raw_result raw_co_expected(void)
{
    fesetround(FE_DOWNWARD);
    volatile long double lacc = 1.0L;
    volatile double dacc = 0.5;
    uint64_t iacc = 7;
    for (int k = 0; k < RAW_ROUNDS; k++) {
        lacc = lacc * 1.0000001L + (long double)k / 3.0L;
        dacc = dacc * 1.5 + (double)k / 7.0;
        iacc = iacc * 6364136223846793005ull + (uint64_t)k;
    }
    fesetround(FE_TONEAREST);
    return (struct raw_result){lacc, dacc, iacc, 1};
}

/* Runs `rounds` rounds on main's side: returns 1 if its locals came back intact, and its
 * FP results in *lout and *dout. Small enough to keep its locals in the red zone. */
static __attribute__((noinline)) int raw_main_side(int rounds, long double *lout, double *dout)
{
    volatile uint64_t zone[4]; /* small locals of a call-free function: red-zone material */
    for (int k = 0; k < 4; k++)
        zone[k] = 0x0123456789abcdefull * (uint64_t)(k + 1);
    long double lacc = 2.0L;
    double dacc = 1.25;
    int ok = 1;
    for (int k = 0; k < rounds; k++) {
        lacc = lacc * 0.9999999L - (long double)k / 5.0L;
        dacc = dacc * 0.75 + (double)k / 11.0;
        weft__ctx_switch(&raw_main_ctx, &raw_co_ctx);
        for (int j = 0; j < 4; j++)
            ok &= zone[j] == 0x0123456789abcdefull * (uint64_t)(j + 1);
    }
    *lout = lacc, *dout = dacc;
    return ok;
}

/* What raw_main_side computes, with no switch in between. */
static __attribute__((noinline)) void raw_main_expected(int rounds, long double *lout, double *dout)
{
    volatile long double lacc = 2.0L;
    volatile double dacc = 1.25;
    for (int k = 0; k < rounds; k++) {
        lacc = lacc * 0.9999999L - (long double)k / 5.0L;
        dacc = dacc * 0.75 + (double)k / 11.0;
    }
    *lout = lacc, *dout = dacc;
}

Test(switch, raw_switch_between_two_sites_keeps_both_sides_state)
{
    struct raw_result want = raw_co_expected(), got = {0};
    size_t size = 64 * 1024;
    char *stack = malloc(size);
    cr_assert_not_null(stack);
    weft__ctx_make(&raw_co_ctx, stack + size, raw_co, &got);
    long double lgot, lwant;
    double dgot, dwant;
    /* The last round lets raw_co store its results. */
    cr_assert_eq(raw_main_side(RAW_ROUNDS + 1, &lgot, &dgot), 1, "a local changed");
    free(stack);
    raw_main_expected(RAW_ROUNDS + 1, &lwant, &dwant);
    cr_assert(lgot == lwant && dgot == dwant, "main's values: %Lg %g, want %Lg %g", lgot, dgot,
              lwant, dwant);
    cr_assert_eq(fegetround(), FE_TONEAREST);
    cr_assert(got.rounding_ok);
    cr_assert(got.lacc == want.lacc && got.dacc == want.dacc && got.iacc == want.iacc,
              "coroutine's values: %Lg %g %llu, want %Lg %g %llu", got.lacc, got.dacc,
              (unsigned long long)got.iacc, want.lacc, want.dacc, (unsigned long long)want.iacc);
}
