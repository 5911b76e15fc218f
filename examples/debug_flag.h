/* The flag every example takes: --debug-port P turns on weft's debug endpoint on
 * 127.0.0.1:P (0: a port the kernel picks), which serves the console at /debug/, the
 * metrics at /metrics and the task dump at /debug/tasks while the example runs
 * (docs/observability.md). A header of static helpers, so that each example stays one file. */
#ifndef EXAMPLE_DEBUG_FLAG_H
#define EXAMPLE_DEBUG_FLAG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

/* Takes "--debug-port P" out of argv (wherever it is), so the example parses the rest as
 * before. Returns P, -1 when the flag is absent, or -2 when P is not a port. */
static inline int example_take_debug_port(int *argc, char **argv)
{
    int port = -1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--debug-port") != 0)
            continue;
        long p; /* strtol read "" as port 0 */
        if (example_parse_long(i + 1 < *argc ? argv[i + 1] : NULL, 0, 65535, &p) < 0)
            return -2;
        port = (int)p;
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2 + 1) * sizeof *argv);
        *argc -= 2;
        i--;
    }
    return port;
}

/* From a task: starts the endpoint if port >= 0 and says where, as "<name>: debug endpoint
 * on http://127.0.0.1:PORT/debug/". */
static inline void example_debug_serve(const char *name, int port)
{
    if (port < 0)
        return;
    weft_addr dbg;
    weft_addr_ip(&dbg, "127.0.0.1", port);
    int e = weft_debug_serve(&dbg, &dbg);
    if (e < 0)
        fprintf(stderr, "%s: debug endpoint: %s\n", name, weft_strerror(e));
    else
        printf("%s: debug endpoint on http://127.0.0.1:%d/debug/\n", name, weft_addr_port(&dbg));
}

#endif
