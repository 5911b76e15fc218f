/* Tooling hooks at a switch: AddressSanitizer and ThreadSanitizer fiber annotations and
 * Valgrind stack registration, each written once here as a static inline, so the switch path
 * reads as the switch.
 *
 * A sanitizer build of weft calls its sanitizer directly. A plain build (the installed
 * library) reaches the same calls through weak references, which the dynamic or static
 * linker binds when the program carries the sanitizer's runtime (a program built with
 * -fsanitize=address or thread) and leaves NULL otherwise: a plain program pays one
 * predictable branch per hook, and a sanitized program linked against the plain library
 * gets correct fiber switches instead of false reports. */
#ifndef WEFT_HOOKS_H
#define WEFT_HOOKS_H

#include <stddef.h>

#include "internal.h"

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define WEFT__ASAN_HAS(fn) 1
#else
/* The sanitizer interface (sanitizer/common_interface_defs.h, asan_interface.h), weakly. */
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size)
    __attribute__((weak));
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
#define WEFT__ASAN_HAS(fn) weft_unlikely((fn) != NULL)
#endif
#ifdef WEFT_TSAN
#define WEFT__TSAN_WEAK
#define WEFT__TSAN_HAS(fn) 1
#else
#define WEFT__TSAN_WEAK    __attribute__((weak))
#define WEFT__TSAN_HAS(fn) weft_unlikely((fn) != NULL)
#endif
void *__tsan_get_current_fiber(void) WEFT__TSAN_WEAK;
void *__tsan_create_fiber(unsigned flags) WEFT__TSAN_WEAK;
void __tsan_destroy_fiber(void *fiber) WEFT__TSAN_WEAK;
void __tsan_switch_to_fiber(void *fiber, unsigned flags) WEFT__TSAN_WEAK;
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define WEFT_VALGRIND 1
#endif
#endif

/* Whether a fiber-annotating tool (ASan or TSan) is in the process: always in a sanitizer
 * build of weft; in a plain build, when the program carries a sanitizer runtime. The
 * scheduler asks once per worker and then tests one flag per switch, so a plain program pays
 * one predictable branch for all the hooks of a switch. */
static inline bool weft__hook_tooling_present(void)
{
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
    return true;
#else
    return __sanitizer_start_switch_fiber != NULL || __tsan_switch_to_fiber != NULL;
#endif
}

/* ASan: announces a switch onto the stack [lo, lo+size). `fake` receives the fake stack of
 * the context we leave, or pass NULL when that context never runs again (a finished task). */
static inline void weft__hook_switch_begin(void **fake, const void *lo, size_t size)
{
    if (WEFT__ASAN_HAS(__sanitizer_start_switch_fiber))
        __sanitizer_start_switch_fiber(fake, lo, size);
}

/* ASan: first thing on the context a switch lands on. */
static inline void weft__hook_switch_end(void *fake)
{
    if (WEFT__ASAN_HAS(__sanitizer_finish_switch_fiber))
        __sanitizer_finish_switch_fiber(fake, NULL, NULL);
}

/* ASan: a stack handed to a task starts clean: a pooled one (the frames a task left when
 * it ended, through weft_exit or its last switch, keep their redzones poisoned), and a fresh
 * mapping at an address an unmapped stack had (ASan keeps the shadow of unmapped memory). */
static inline void weft__hook_stack_unpoison(void *lo, size_t size)
{
    if (WEFT__ASAN_HAS(__asan_unpoison_memory_region))
        __asan_unpoison_memory_region(lo, size);
}

/* A stack about to carry a new task. ASan: as above. Valgrind (vg_id, the stack's
 * registration, is 0 when not under it): the frames of the task before left the memory
 * below their stack pointer marked as not addressable, and the new task's first frame is
 * written there: undefined, as a fresh stack's. */
static inline void weft__hook_stack_reuse(void *lo, size_t size, unsigned vg_id)
{
    weft__hook_stack_unpoison(lo, size);
#ifdef WEFT_VALGRIND
    if (weft_unlikely(vg_id != 0))
        VALGRIND_MAKE_MEM_UNDEFINED(lo, size);
#else
    (void)vg_id;
#endif
}

/* Whether weft__hook_stack_reuse has anything to do for a stack registered as vg_id: ASan in
 * the process, or the program under Valgrind. A plain run tests this, and the first run of a
 * task on a pooled stack calls out of line only when it holds (stack.c's
 * weft__stack_reuse_hooks): the inline client request kept a local array in its frame,
 * which cost every child-first spawn its tail call and a larger frame. */
static inline bool weft__hook_stack_reuse_wanted(unsigned vg_id)
{
#ifdef WEFT_VALGRIND
    if (weft_unlikely(vg_id != 0))
        return true;
#else
    (void)vg_id;
#endif
    return WEFT__ASAN_HAS(__asan_unpoison_memory_region);
}

/* ASan: a stack given back to the kernel leaves with a clean shadow. ASan keeps the shadow of
 * unmapped memory, so whatever is mapped at that address next that is not a stack (an
 * io_uring ring of a later runtime, which liburing writes without instrumented frames)
 * would otherwise inherit the redzones of the frames that ran there. */
static inline void weft__hook_stack_unmap(void *lo, size_t size)
{
    weft__hook_stack_unpoison(lo, size);
}

/* TSan: one fiber per coroutine stack, and one for the thread's own stack. */
static inline void *weft__hook_fiber_create(void)
{
    return WEFT__TSAN_HAS(__tsan_create_fiber) ? __tsan_create_fiber(0) : NULL;
}

static inline void *weft__hook_fiber_current(void)
{
    return WEFT__TSAN_HAS(__tsan_get_current_fiber) ? __tsan_get_current_fiber() : NULL;
}

/* TSan: gives *fiber a fiber if it has none yet. Without TSan a test of its weak symbol
 * alone: the fiber word is not read. */
static inline void weft__hook_fiber_ensure(void **fiber)
{
    if (WEFT__TSAN_HAS(__tsan_create_fiber) && !*fiber)
        *fiber = __tsan_create_fiber(0);
}

static inline void weft__hook_fiber_destroy(void *fiber)
{
    if (fiber && WEFT__TSAN_HAS(__tsan_destroy_fiber))
        __tsan_destroy_fiber(fiber);
}

static inline void weft__hook_fiber_switch(void *fiber)
{
    if (fiber && WEFT__TSAN_HAS(__tsan_switch_to_fiber))
        __tsan_switch_to_fiber(fiber, 0);
}

/* Valgrind: a coroutine stack, so that its client checks know the range is a stack. */
static inline unsigned weft__hook_stack_register(void *lo, void *hi)
{
#ifdef WEFT_VALGRIND
    return VALGRIND_STACK_REGISTER(lo, hi);
#else
    (void)lo, (void)hi;
    return 0;
#endif
}

/* Valgrind: whether the program runs under it (system calls it does not know are avoided). */
static inline int weft__hook_on_valgrind(void)
{
#ifdef WEFT_VALGRIND
    return RUNNING_ON_VALGRIND ? 1 : 0;
#else
    return 0;
#endif
}

/* Valgrind: reports off (on) for this thread, around code that reads or writes stack memory
 * on purpose where memcheck would object: the hand-off's scan of a stopped task's stack words
 * (some never written) and its clearing below the stack pointer (handoff.c). */
static inline void weft__hook_reports_off(void)
{
#ifdef WEFT_VALGRIND
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
}

static inline void weft__hook_reports_on(void)
{
#ifdef WEFT_VALGRIND
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
}

static inline void weft__hook_stack_deregister(unsigned id)
{
#ifdef WEFT_VALGRIND
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

#endif
