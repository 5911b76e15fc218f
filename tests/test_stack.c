/* Stacks: guard policies, the pool (no mmap in steady state, for every size class),
 * per-spawn sizes, 100,000 coroutines parked at once past the point where guard pages would
 * exhaust the map count; overflows of every kind of stack reported with the task's name
 * (canary zones, wide guards, frames that jump, a blocked SIGSEGV, a replaced handler); a
 * task that gets no stack reported to its joiner as WEFT_NOMEM.
 *
 * This file is built with -fno-stack-clash-protection (tests/CMakeLists.txt): its large
 * frames stand for user code built without it, which moves the stack pointer in one jump. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "child_helpers.h"
#include "stack.h"
#include "task.h"

/* ASan checks stack accesses itself, and reports an overflow into a neighbour's frames before
 * weft's canary check can: the canary tests are for builds without it. */
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() cr_skip_test("ASan reports this overflow itself, first")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

#define ASSERT_REPORTED(status, err, name)                                                         \
    do {                                                                                           \
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status 0x%x, stderr: %s",   \
                  status, err);                                                                    \
        cr_assert(strstr(err, "stack overflow in task") && strstr(err, "\"" name "\""),            \
                  "stderr: %s", err);                                                              \
    } while (0)

static void *use_stack(void *arg)
{
    size_t bytes = (size_t)(uintptr_t)arg;
    volatile char *buf = __builtin_alloca(bytes);
    memset((char *)buf, 0x5a, bytes);
    weft_yield();
    return (void *)(intptr_t)(buf[bytes - 1] == 0x5a && buf[0] == 0x5a);
}

static void *sizes_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, use_stack, (void *)(uintptr_t)(400 * 1024),
               &(weft_spawn_opts){.stack_size = 512 * 1024});
    void *r;
    weft_join(t, &r, WEFT_FOREVER);
    return r;
}

Test(stack, per_spawn_stack_size_is_honoured)
{
    cr_assert_eq(run_main(sizes_main, NULL), (void *)1);
}

static void *count_guards(void *arg)
{
    (void)arg;
    weft_task *ts[20];
    for (int i = 0; i < 20; i++)
        weft_spawn(&ts[i], use_stack, (void *)(uintptr_t)1024, NULL);
    weft_yield(); /* all started, all hold a stack */
    weft_stats st;
    weft_stats_get(&st);
    for (int i = 0; i < 20; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    return (void *)(uintptr_t)st.nguarded_live;
}

Test(stack, guard_policies)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_NEVER;
    cr_assert_eq(run_main_cfg(&cfg, count_guards, NULL), (void *)0);
    cfg.guard = WEFT_GUARD_ALWAYS;
    cr_assert_geq((uintptr_t)run_main_cfg(&cfg, count_guards, NULL), 21);
    cfg.guard = 7;
    cr_assert_eq(weft_run(&cfg, count_guards, NULL, NULL), -EINVAL);
}

static void *pool_main(void *arg)
{
    (void)arg;
    weft_task *ts[50];
    weft_stats a, b;
    /* Pinned: a pool is its worker's, and a task that moves (move_started, the suite's
     * stealing run) ends on another worker and leaves its stack in that one's pool. */
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            weft_stats_get(&a);
        for (int i = 0; i < 50; i++)
            weft_spawn(&ts[i], use_stack, (void *)(uintptr_t)256, &pin);
        for (int i = 0; i < 50; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    weft_stats_get(&b);
    cr_assert_eq(b.nmmaps, a.nmmaps, "pooled stacks are reused");
    cr_assert_geq(b.nstacks_pooled, 50);
    return NULL;
}

Test(stack, pool_reuses_stacks)
{
    run_main(pool_main, NULL);
}

static void *park_forever(void *arg)
{
    (void)arg;
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *parked_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++)
        cr_assert_eq(
            weft_spawn(NULL, park_forever, NULL, &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}),
            0);
    weft_yield(); /* every one of them runs and parks */
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_eq(st.nstacks_live, (uint64_t)n + 1);
    cr_assert_eq(st.ntasks, (uint64_t)n + 1);
    return (void *)(uintptr_t)st.nguarded_live;
}

/* How many to park: a hundred thousand; under ASan, where faulting in each poisoned fresh
 * stack made this test 13 s a run, only as many as pass the map-count budget (a quarter of
 * vm.max_map_count, stack.c) by 8,192, which is what the test is about. */
static int parked_count(void)
{
#if defined(__SANITIZE_ADDRESS__)
    long maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &maps) != 1)
            maps = 65530;
        fclose(f);
    }
    long n = maps / 4 + 8192;
    return n < 100000 ? (int)n : 100000;
#else
    return 100000;
#endif
}

/* Shutdown cancels all of them; ASan's leak check verifies it freed everything. */
Test(stack, a_hundred_thousand_coroutines_parked_at_once, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.budget = 1u << 20; /* start them all in one tick */
    int n = parked_count();
    uintptr_t nguarded = (uintptr_t)run_main_cfg(&cfg, parked_main, (void *)(intptr_t)n);
    cr_assert_lt(nguarded, (uintptr_t)n, "past the map-count budget, stacks go unguarded");
}

#define STACK_COOKIE 0x5eed57ac4c0ffee5ull /* written by each noting task on its stack */

/* Whether p (an address a noting task gave) still holds its cookie: the stack is still mapped
 * there. Read through process_vm_readv, which says EFAULT for an unmapped or PROT_NONE page:
 * the address may have been mapped again by then for something else (a thread's malloc arena,
 * a thread's stack), which a look at the mapping alone would take for the stack. */
static bool holds_cookie(const void *p)
{
    uint64_t v = 0;
    struct iovec here = {&v, sizeof v}, there = {(void *)p, sizeof v};
    return process_vm_readv(getpid(), &here, 1, &there, 1, 0) == (ssize_t)sizeof v &&
           v == STACK_COOKIE;
}

typedef struct noted_stacks {
    int n;
    char **where; /* an address inside each parked task's stack */
} noted_stacks;

static void *park_noting(void *arg)
{
    volatile uint64_t cookie = STACK_COOKIE;
    *(char **)arg = (char *)&cookie;
    weft_sleep_until(WEFT_FOREVER);
    return (void *)(intptr_t)(cookie != STACK_COOKIE);
}

static void *parked_noting_main(void *arg)
{
    noted_stacks *ns = arg;
    for (int i = 0; i < ns->n; i++)
        cr_assert_eq(weft_spawn(NULL, park_noting, &ns->where[i],
                                &(weft_spawn_opts){.flags = WEFT_SPAWN_DETACHED}),
                     0);
    weft_yield(); /* every one of them runs and parks: each has a stack of its own */
    weft_stats st;
    weft_stats_get(&st);
    return (void *)(uintptr_t)st.nguarded_live;
}

/* A worker's end unmaps its stacks, runs of adjacent ones in one call (stack.c): every stack
 * is unmapped, and a mapping made just before them (likely their neighbour) stays. */
Test(stack, a_runs_stacks_are_all_unmapped_at_its_end, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    cfg.budget = 1u << 20; /* start them all in one tick */
    char *sentinel = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sentinel, MAP_FAILED);
    *sentinel = 7;
    noted_stacks ns = {.n = 3000};
    ns.where = calloc((size_t)ns.n, sizeof *ns.where);
    cr_assert_not_null(ns.where);
    uintptr_t guarded = (uintptr_t)run_main_cfg(&cfg, parked_noting_main, &ns);
    cr_assert_geq(guarded, (uintptr_t)ns.n, "each parked task has a guarded stack");
    for (int i = 0; i < ns.n; i++) {
        cr_assert_not_null(ns.where[i]);
        cr_assert(!holds_cookie(ns.where[i]), "stack %d is unmapped", i);
    }
    cr_assert_eq(*sentinel, 7); /* still mapped: it faults otherwise */
    munmap(sentinel, 4096);
    free(ns.where);
}

static void *end_noting(void *arg)
{
    volatile uint64_t cookie = STACK_COOKIE;
    *(char **)arg = (char *)&cookie;
    weft_sleep_until(WEFT_FOREVER); /* until the cancel below */
    return (void *)(intptr_t)(cookie != STACK_COOKIE);
}

/* The loop's idle trim gives back the pooled stacks past stack_pool_max, guarded ones unmapped
 * in runs (stack.c): every stack given back is unmapped, the ones kept stay mapped. */
static void *trim_main(void *arg)
{
    noted_stacks *ns = arg;
    weft_task **ts = calloc((size_t)ns->n, sizeof *ts);
    cr_assert_not_null(ts);
    for (int i = 0; i < ns->n; i++)
        cr_assert_eq(weft_spawn(&ts[i], end_noting, &ns->where[i],
                                &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                     0);
    weft_yield(); /* each runs on a stack of its own (main's worker's), and parks */
    for (int i = 0; i < ns->n; i++) {
        cr_assert_eq(weft_cancel(ts[i]), 0);
        void *res = NULL;
        cr_assert_eq(weft_join(ts[i], &res, WEFT_FOREVER), 0);
        cr_assert_eq(res, WEFT_CANCELED);
    }
    free(ts);
    weft_stats st;
    weft_stats_get(&st);
    cr_assert_geq(st.nstacks_pooled, (uint64_t)ns->n, "their stacks are pooled");
    /* The trim runs while the loop is idle: sleep until it is done. */
    for (int i = 0; i < 3000 && st.nstacks_pooled > 10; i++) {
        cr_assert_eq(weft_sleep(WEFT_MSEC), 0);
        weft_stats_get(&st);
    }
    cr_assert_leq(st.nstacks_pooled, 10, "the pool is trimmed to stack_pool_max");
    int mapped = 0;
    for (int i = 0; i < ns->n; i++)
        mapped += holds_cookie(ns->where[i]);
    return (void *)(intptr_t)mapped;
}

Test(stack, the_idle_trim_unmaps_every_stack_it_gives_back, .timeout = 120)
{
    SKIP_UNDER_VALGRIND();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    cfg.stack_pool_max = 10;
    noted_stacks ns = {.n = 600};
    ns.where = calloc((size_t)ns.n, sizeof *ns.where);
    cr_assert_not_null(ns.where);
    intptr_t mapped = (intptr_t)run_main_cfg(&cfg, trim_main, &ns);
    cr_assert_leq(mapped, 10, "%ld stacks still mapped: only the ten kept may be", (long)mapped);
    for (int i = 0; i < ns.n; i++)
        cr_assert(!holds_cookie(ns.where[i]), "stack %d is unmapped at the end", i);
    free(ns.where);
}

/* ---- Overflows of unguarded stacks: the canary zone ------------------------------------ */

/* Recurses, writing every byte of each 64-byte frame, until `limit` bytes below `start`. */
static __attribute__((noinline)) int dive(char *start, size_t limit)
{
    volatile char pad[64];
    memset((char *)pad, 0x41, sizeof pad);
    if ((size_t)(start - (char *)pad) < limit)
        return dive(start, limit) + pad[0];
    return pad[1];
}

static void *victim(void *arg)
{
    (void)arg;
    volatile char mine[256];
    memset((char *)mine, 7, sizeof mine);
    for (int i = 0; i < 4; i++)
        weft_yield();
    return (void *)(intptr_t)(mine[0] + mine[255]);
}

static void *overflower(void *arg)
{
    size_t past = (size_t)(uintptr_t)arg;
    char here;
    /* From near the top of a 64 KiB stack to `past` bytes below its bottom: the top of the
     * stack carved just below, the victim's. Then park: the check runs at the switch. */
    dive(&here, 64 * 1024 + past);
    weft_yield();
    return NULL;
}

static void *unguarded_main(void *arg)
{
    weft_task *v, *o;
    weft_spawn(&v, victim, NULL, &(weft_spawn_opts){.name = "victim"});
    weft_yield(); /* the victim's stack is carved first, so it lies below the overflower's */
    weft_spawn(&o, overflower, arg, &(weft_spawn_opts){.name = "overflower"});
    weft_join(o, NULL, WEFT_FOREVER);
    weft_join(v, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_unguarded(void *arg)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_NEVER;
    weft_run(&cfg, unguarded_main, arg, NULL);
}

/* Release builds too: the canary zone is checked in every build. */
Test(stack, unguarded_overflow_is_reported_naming_the_task)
{
    SKIP_UNDER_VALGRIND();
    SKIP_UNDER_ASAN();
    char err[4096];
    int status = run_child(run_unguarded, (void *)(uintptr_t)1024, err, sizeof err);
    ASSERT_REPORTED(status, err, "overflower");
    cr_assert(strstr(err, "canary"), "stderr: %s", err);
}

/* An overflow of a few bytes only (a frame chain that just crosses the bottom). */
Test(stack, a_small_unguarded_overflow_is_reported)
{
    SKIP_UNDER_VALGRIND();
    SKIP_UNDER_ASAN();
    char err[4096];
    int status = run_child(run_unguarded, (void *)(uintptr_t)48, err, sizeof err);
    ASSERT_REPORTED(status, err, "overflower");
}

/* A name with a control byte, a quote and a backslash: the report writes it escaped, as the
 * task dumps do (src/util/text.h), with no printf: it may be written from a signal handler. */
static void *oddly_named_main(void *arg)
{
    weft_task *v, *o;
    weft_spawn(&v, victim, NULL, &(weft_spawn_opts){.name = "victim"});
    weft_yield();
    weft_spawn(&o, overflower, arg, &(weft_spawn_opts){.name = "o\x01ver\"fl\\ow\t"});
    weft_join(o, NULL, WEFT_FOREVER);
    weft_join(v, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_oddly_named(void *arg)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_NEVER;
    weft_run(&cfg, oddly_named_main, arg, NULL);
}

Test(stack, overflow_report_escapes_the_name)
{
    SKIP_UNDER_VALGRIND();
    SKIP_UNDER_ASAN();
    char err[4096];
    int status = run_child(run_oddly_named, (void *)(uintptr_t)1024, err, sizeof err);
    ASSERT_REPORTED(status, err, "o\\x01ver\\\"fl\\\\ow\\x09");
    cr_assert_null(strchr(err, '\x01'), "stderr: %s", err);
    cr_assert_null(strchr(err, '\t'), "stderr: %s", err);
}

static void *nostack_flag_main(void *arg)
{
    weft_task *v, *o;
    weft_spawn(&v, victim, NULL, &(weft_spawn_opts){.name = "victim", .flags = WEFT_SPAWN_NOGUARD});
    weft_yield();
    weft_spawn(&o, overflower, arg,
               &(weft_spawn_opts){.name = "noguard", .flags = WEFT_SPAWN_NOGUARD});
    weft_join(o, NULL, WEFT_FOREVER);
    weft_join(v, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_noguard_flag(void *arg)
{
    weft_run(NULL, nostack_flag_main, arg, NULL);
}

Test(stack, overflow_of_a_noguard_spawn_is_reported)
{
    SKIP_UNDER_VALGRIND();
    SKIP_UNDER_ASAN();
    char err[4096];
    int status = run_child(run_noguard_flag, (void *)(uintptr_t)1024, err, sizeof err);
    ASSERT_REPORTED(status, err, "noguard");
}

/* ---- Large frames and guarded stacks --------------------------------------------------- */

/* One frame of `N` bytes that writes only its lowest byte: the stack pointer jumps by N at
 * once (this file is built without stack-clash protection, like much user code). */
#define BIG_FRAME(N)                                                                               \
    static __attribute__((noinline)) int frame_##N(void)                                           \
    {                                                                                              \
        volatile char buf[(N)*1024];                                                               \
        buf[0] = 1;                                                                                \
        return buf[0];                                                                             \
    }
BIG_FRAME(100)
BIG_FRAME(150)

static void *jumper(void *arg)
{
    for (int i = 0; i < 3; i++)
        weft_yield(); /* until the neighbour has its stack */
    return (void *)(intptr_t)(arg ? frame_150() : frame_100());
}

static void *jump_main(void *arg)
{
    weft_task *j, *n;
    weft_spawn(&j, jumper, arg, &(weft_spawn_opts){.name = "jumper"});
    weft_yield(); /* the jumper gets its stack */
    /* A neighbour whose stack is mapped right after (so, below) the jumper's: without a wide
     * enough guard, the jumper's frame lands in it. */
    weft_spawn(&n, victim, NULL, &(weft_spawn_opts){.name = "neighbour"});
    weft_join(j, NULL, WEFT_FOREVER);
    weft_join(n, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_jump(void *arg)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_ALWAYS;
    weft_run(&cfg, jump_main, arg, NULL);
}

Test(stack, a_100k_frame_in_a_64k_stack_hits_the_guard)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_jump, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "jumper");
}

Test(stack, a_150k_frame_in_a_64k_stack_is_named)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_jump, (void *)1, err, sizeof err);
    ASSERT_REPORTED(status, err, "jumper");
}

/* A 2 MiB frame: its stack pointer lands far below the guard (a hostile review saw frames of
 * 1.4 MiB and more die of a bare SIGSEGV, unreported: the stack pointer was looked for only
 * 1 MiB past the guard). The pages it lands in are made PROT_NONE first, where nothing is
 * mapped, so that the write faults rather than land in some other mapping. */
BIG_FRAME(2048)

static void *far_jumper(void *arg)
{
    (void)arg;
    volatile char here = 0;
    uintptr_t sp = (uintptr_t)&here & ~(uintptr_t)4095;
    void *want = (void *)(sp - ((uintptr_t)3 << 20));
    void *m = mmap(want, (size_t)2 << 20, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    (void)m; /* taken or not: the frame's one write faults or lands where nothing is */
    return (void *)(intptr_t)(frame_2048() + here);
}

static void *far_jump_main(void *arg)
{
    (void)arg;
    weft_task *j;
    weft_spawn(&j, far_jumper, NULL, &(weft_spawn_opts){.name = "far_jumper"});
    weft_join(j, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_far_jump(void *arg)
{
    (void)arg;
    weft_run(NULL, far_jump_main, NULL, NULL);
}

Test(stack, a_2m_frame_far_below_the_guard_is_named)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_far_jump, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "far_jumper");
}

/* ---- Reports that must not disappear --------------------------------------------------- */

static void *deep(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void *all_signals(void *arg)
{
    (void)arg;
    sigset_t set;
    sigfillset(&set);
    weft_signal_wait(&set, WEFT_FOREVER);
    return NULL;
}

static void *sigwait_main(void *arg)
{
    (void)arg;
    weft_task *s, *d;
    weft_spawn(&s, all_signals, NULL, NULL);
    weft_yield(); /* it blocks every signal it may on this thread, and parks */
    weft_spawn(&d, deep, NULL, &(weft_spawn_opts){.name = "deep"});
    weft_join(d, NULL, WEFT_FOREVER);
    weft_cancel(s);
    weft_join(s, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_sigwait(void *arg)
{
    (void)arg;
    weft_run(NULL, sigwait_main, NULL, NULL);
}

Test(stack, overflow_is_reported_while_signal_wait_blocks_a_full_set)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_sigwait, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "deep");
}

static void user_segv(int sig, siginfo_t *si, void *uctx)
{
    (void)sig, (void)si, (void)uctx;
    static const char msg[] = "user handler\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(42);
}

static void *nothing(void *arg)
{
    return arg;
}

/* A fault that is no overflow (UBSan would catch a NULL dereference itself): the middle of a
 * 16 MiB PROT_NONE mapping, 8 MiB from anything else. A single page was placed by the kernel
 * just under the newest mapping, a task's stack at times, and then a fault on it was within
 * the window below that stack that weft reports as an overflow (a CI failure under ASan). */
static void *wild_access(void *arg)
{
    (void)arg;
    enum { SPAN = 16 << 20 };
    char *m = mmap(NULL, SPAN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert(m != MAP_FAILED);
    volatile int *p = (volatile int *)(m + SPAN / 2);
    return (void *)(intptr_t)*p;
}

static void *fault_main(void *arg)
{
    weft_task *t;
    weft_spawn(&t, arg ? wild_access : deep, NULL, &(weft_spawn_opts){.name = "faulty"});
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

/* The program installs its own SIGSEGV handler between two runtimes. */
static void run_after_user_handler(void *arg)
{
    weft_run(NULL, nothing, NULL, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = user_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    weft_run(NULL, fault_main, arg, NULL);
}

Test(stack, overflow_is_reported_after_the_program_installs_a_handler)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_after_user_handler, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "faulty");
}

Test(stack, other_faults_reach_the_programs_handler)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_after_user_handler, (void *)1, err, sizeof err);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42, "status 0x%x, stderr: %s", status,
              err);
    cr_assert(strstr(err, "user handler"), "stderr: %s", err);
    cr_assert_null(strstr(err, "stack overflow"), "stderr: %s", err);
}

/* ---- Every size class is reused -------------------------------------------------------- */

static const size_t twelve_sizes[12] = {16, 20, 24, 28, 32, 40,
                                        48, 56, 64, 80, 96, 112}; /* KiB: twelve classes */

static void *short_task(void *arg)
{
    volatile char *p = __builtin_alloca(1024);
    p[0] = (char)(uintptr_t)arg;
    return (void *)(uintptr_t)p[0];
}

static void *classes_main(void *arg)
{
    (void)arg;
    weft_stats warm, end;
    for (int round = 0; round < 2000; round++) {
        if (round == 10)
            weft_stats_get(&warm);
        weft_task *ts[12];
        for (int i = 0; i < 12; i++)
            cr_assert_eq(weft_spawn(&ts[i], short_task, NULL,
                                    &(weft_spawn_opts){.stack_size = twelve_sizes[i] * 1024,
                                                       .flags = WEFT_SPAWN_PINNED}),
                         0); /* pinned: one worker's pool is what is measured */
        for (int i = 0; i < 12; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    weft_stats_get(&end);
    cr_assert_eq(end.nmmaps, warm.nmmaps, "every class reuses its stacks (%llu mmaps, then %llu)",
                 (unsigned long long)warm.nmmaps, (unsigned long long)end.nmmaps);
    cr_assert_leq(end.nstacks_pooled, 13);
    cr_assert_geq(end.nstacks_pooled, 12);
    return NULL;
}

Test(stack, twelve_size_classes_are_all_reused)
{
    weft_config cfg;
    weft_config_init(&cfg);
    run_main_cfg(&cfg, classes_main, NULL);
    cfg.guard = WEFT_GUARD_NEVER;
    run_main_cfg(&cfg, classes_main, NULL);
}

/* ---- A task that gets no stack --------------------------------------------------------- */

static void *nomem_main(void *arg)
{
    (void)arg;
    /* Leave the address space room for little more than what is mapped now. */
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    unsigned long long vm_kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %llu kB", &vm_kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(vm_kb, 0);
    struct rlimit rl = {.rlim_cur = vm_kb * 1024 + (256ull << 20), .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    enum { N = 200 };
    weft_task *ts[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(
            weft_spawn(&ts[i], nothing, (void *)1,
                       &(weft_spawn_opts){.name = "big\tone\"", .stack_size = (size_t)512 << 20}),
            0);
    int nomem = 0;
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        cr_assert_eq(weft_join(ts[i], &r, WEFT_FOREVER), 0);
        nomem += r == WEFT_NOMEM;
    }
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_AS, &rl);
    return (void *)(intptr_t)nomem;
}

static void run_nomem(void *arg)
{
    (void)arg;
    void *r = NULL;
    int e = weft_run(NULL, nomem_main, NULL, &r);
    _exit(e == 0 && r == (void *)(intptr_t)200 ? 0 : 1);
}

Test(stack, a_task_without_a_stack_joins_as_nomem_and_is_told_once)
{
    SKIP_UNDER_VALGRIND();
    char err[16384];
    int status = run_child(run_nomem, NULL, err, sizeof err);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x, stderr: %s", status,
              err);
    char *first = strstr(err, "got no stack");
    cr_assert_not_null(first, "stderr: %s", err);
    cr_assert_null(strstr(first + 1, "got no stack"), "one line per runtime: %s", err);
    /* The name escaped, as the task dumps write it (src/util/text.h). */
    cr_assert(strstr(err, "\"big\\x09one\\\"\" got no stack"), "stderr: %s", err);
    cr_assert_eq((intptr_t)WEFT_NOMEM, -ENOMEM);
}

/* A fault inside the guard region of a task that is not running (a stray pointer of another
 * task ran into it) is reported naming the task whose stack it guards. */
static void *parked_forever(void *arg)
{
    (void)arg;
    weft_sleep_until(WEFT_FOREVER);
    return NULL;
}

static void *stray_main(void *arg)
{
    (void)arg;
    weft_task *v;
    weft_spawn(&v, parked_forever, NULL, &(weft_spawn_opts){.name = "guarded-one"});
    weft_yield(); /* it runs, gets its stack, parks */
    volatile char *guard = (volatile char *)v->stack->lo - 4096;
    *guard = 1; /* from the main task, into the other task's guard region */
    return NULL;
}

static void run_stray(void *arg)
{
    (void)arg;
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_ALWAYS;
    weft_run(&cfg, stray_main, NULL, NULL);
}

Test(stack, a_fault_in_another_tasks_guard_names_that_task)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_stray, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "guarded-one");
    cr_assert(strstr(err, "guard region"), "stderr: %s", err);
}

/* ---- An overflow inside weft_block_in_place's fn ---------------------------------------- */

/* fn runs on the task's stack, on a thread that is no worker's meanwhile (in_place.c): its
 * overflow is still reported as the task's. */
static void *recurse_in_place(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

static void *in_place_task(void *arg)
{
    (void)arg;
    weft_block_in_place(recurse_in_place, NULL, NULL);
    return NULL;
}

static void *in_place_main(void *arg)
{
    (void)arg;
    weft_task *t;
    weft_spawn(&t, in_place_task, NULL, &(weft_spawn_opts){.name = "inplace"});
    weft_join(t, NULL, WEFT_FOREVER);
    return NULL;
}

static void run_in_place(void *arg)
{
    (void)arg;
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.guard = WEFT_GUARD_ALWAYS;
    cfg.backend = WEFT_BACKEND_EPOLL; /* on io_uring fn runs on the pool, on its own stack */
    weft_run(&cfg, in_place_main, NULL, NULL);
}

Test(stack, an_overflow_inside_block_in_place_names_the_task)
{
    SKIP_UNDER_VALGRIND();
    char err[4096];
    int status = run_child(run_in_place, NULL, err, sizeof err);
    ASSERT_REPORTED(status, err, "inplace");
}
