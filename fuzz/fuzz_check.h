/* CHECK(cond): a fuzz target's invariant. A broken one is reported with its text and line and
 * aborts, which libFuzzer records as a crash (with the input that caused it). Included by every
 * target in fuzz/. */
#ifndef WEFT_FUZZ_CHECK_H
#define WEFT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant broken: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
