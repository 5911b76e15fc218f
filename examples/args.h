/* Number arguments of the examples: a whole decimal number in a range, or a refusal, so that
 * a typo ("70O0", "abc", "-5") gets the usage line instead of a silent 0 (atoi) that put a
 * server on a port the kernel picked. A header of static helpers, as debug_flag.h. */
#ifndef EXAMPLE_ARGS_H
#define EXAMPLE_ARGS_H

#include <errno.h>
#include <stdlib.h>

/* Parses `s` as a decimal number in [min, max] into *out. Returns 0, or -EINVAL (NULL, empty,
 * trailing characters, out of range; *out untouched). */
static inline int example_parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

#endif
