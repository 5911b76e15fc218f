/* Shared test helpers: run a body as the main task of a fresh runtime and check that the
 * runtime came back cleanly. ASan's leak check then proves that shutdown freed everything. */
#ifndef WEFT_TEST_HARNESS_H
#define WEFT_TEST_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <weft.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define WEFT_TEST_LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define WEFT_TEST_LEAK_CHECK() 0
#endif

/* Runs fn(arg) in a runtime with `cfg` (NULL: defaults); returns the main task's result. */
static inline void *run_main_cfg(const weft_config *cfg, weft_fn fn, void *arg)
{
    void *result = (void *)(intptr_t)-12345;
    int r = weft_run(cfg, fn, arg, &result);
    cr_assert_eq(r, 0, "weft_run: %s", weft_strerror(r));
    /* Criterion ignores LeakSanitizer's exit status in its workers: ask directly. */
    cr_assert_eq(WEFT_TEST_LEAK_CHECK(), 0, "memory leaked (see LeakSanitizer's report)");
    return result;
}

static inline void *run_main(weft_fn fn, void *arg)
{
    return run_main_cfg(NULL, fn, arg);
}

/* Runs fn(arg) on one worker in each ready order, FIFO then depth-first: a task woken by
 * another then runs after its waker goes on, and before. For the tests of what a waker may
 * do to an object right after the wake (free it, close it). */
static inline void run_main_each_order(weft_fn fn, void *arg)
{
    for (int ord = WEFT_ORDER_FIFO; ord <= WEFT_ORDER_DEPTH_FIRST; ord++) {
        weft_config c;
        weft_config_init(&c);
        c.workers = 1;
        c.order = ord;
        run_main_cfg(&c, fn, arg);
    }
}

/* gcov writes its counters at exit, which a forked child that dies of a signal (a stack
 * overflow report aborts) or leaves through _exit never reaches. Coverage builds link gcov's
 * __gcov_dump (tests/CMakeLists.txt); in every other build this weak reference is NULL and
 * the helpers below do nothing. */
extern void __gcov_dump(void) __attribute__((weak));

static inline void coverage_dump(void)
{
    if (__gcov_dump)
        __gcov_dump();
}

static inline void coverage_dump_then_die(int sig)
{
    coverage_dump();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* In a forked child expected to abort: dump the coverage counters first, then die of the
 * same SIGABRT (the status the test checks is unchanged). */
static inline void coverage_dump_on_abort(void)
{
    if (__gcov_dump)
        signal(SIGABRT, coverage_dump_then_die);
}

/* Skips heavy tests under valgrind, where they would take minutes. */
#define SKIP_UNDER_VALGRIND()                                                                      \
    do {                                                                                           \
        if (RUNNING_ON_VALGRIND)                                                                   \
            cr_skip_test("too heavy under valgrind");                                              \
    } while (0)

/* Recurses until the stack overflows: 1 KiB of frame a level (the overflow tests). */
static __attribute__((noinline, unused)) int recurse(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    if (depth > (1 << 30)) /* never: keeps the compiler from calling it infinite */
        return 0;
    return recurse(depth + 1) + pad[0];
}

#endif
