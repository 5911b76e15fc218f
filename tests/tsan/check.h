/* The stress programs' check: prints the failed condition with its location and counts it.
 * Checks run in tasks of several workers at once: the count is atomic. main() returns
 * non-zero if `failures` is. */
#ifndef WEFT_TSAN_CHECK_H
#define WEFT_TSAN_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);                                    \
        }                                                                                          \
    } while (0)

#endif
