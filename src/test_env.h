/* The test seams' knobs (WEFT_TESTING builds only): a positive integer read from the
 * environment, scaled. One reading rule for every WEFT_TEST_* number. Header-only. */
#ifndef WEFT_TEST_ENV_H
#define WEFT_TEST_ENV_H

#include <stdint.h>
#include <stdlib.h>

/* The variable `name` as a number times `scale` (1 for ns, 1000 for a value in us), or 0
 * when it is unset, not a number, or not positive: every seam reads 0 as "off". A value too
 * large for the scale gives INT64_MAX. */
static inline int64_t weft__test_env(const char *name, int64_t scale)
{
    const char *p = getenv(name);
    long long v = p ? strtoll(p, NULL, 10) : 0;
    if (v <= 0)
        return 0;
    return v > INT64_MAX / scale ? INT64_MAX : (int64_t)v * scale;
}

#endif
