/* Tooling hooks at a switch: AddressSanitizer and ThreadSanitizer fiber annotations and
 * Valgrind stack registration, each written once here as a static inline that compiles to
 * nothing when its tool is absent, so the switch path reads as the switch. */
#ifndef WEFT_HOOKS_H
#define WEFT_HOOKS_H

#include <stddef.h>

#include "internal.h"

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT_VALGRIND 1
#endif
#endif

/* ASan: announces a switch onto the stack [lo, lo+size). `fake` receives the fake stack of
 * the context we leave, or pass NULL when that context never runs again (a finished task). */
static inline void weft__hook_switch_begin(void **fake, const void *lo, size_t size)
{
#ifdef WEFT_ASAN
    __sanitizer_start_switch_fiber(fake, lo, size);
#else
    (void)fake, (void)lo, (void)size;
#endif
}

/* ASan: first thing on the context a switch lands on. */
static inline void weft__hook_switch_end(void *fake)
{
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)fake;
#endif
}

/* ASan: a reused stack starts clean (a task that ended through weft_exit left its frames'
 * redzones poisoned). */
static inline void weft__hook_stack_reuse(void *lo, size_t size)
{
#ifdef WEFT_ASAN
    __asan_unpoison_memory_region(lo, size);
#else
    (void)lo, (void)size;
#endif
}

/* TSan: one fiber per coroutine stack, and one for the thread's own stack. */
static inline void *weft__hook_fiber_create(void)
{
#ifdef WEFT_TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static inline void *weft__hook_fiber_current(void)
{
#ifdef WEFT_TSAN
    return __tsan_get_current_fiber();
#else
    return NULL;
#endif
}

static inline void weft__hook_fiber_destroy(void *fiber)
{
#ifdef WEFT_TSAN
    __tsan_destroy_fiber(fiber);
#else
    (void)fiber;
#endif
}

static inline void weft__hook_fiber_switch(void *fiber)
{
#ifdef WEFT_TSAN
    __tsan_switch_to_fiber(fiber, 0);
#else
    (void)fiber;
#endif
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

static inline void weft__hook_stack_deregister(unsigned id)
{
#ifdef WEFT_VALGRIND
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

#endif
