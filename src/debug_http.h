/* The debug endpoint (debug_http.c): what other modules ask of it. */
#ifndef WEFT_DEBUG_HTTP_H
#define WEFT_DEBUG_HTTP_H

#include "internal.h"

/* For a live task of the caller's worker: whether it is one of the debug endpoint's (its
 * accepting task or a connection's), and then in *fd the socket it holds (-1 if none now).
 * The leak report leaves them out: the endpoint is weft's, which the program cannot stop,
 * and it stops with the runtime. */
bool weft__debug_task(const weft_task *t, int *fd);

#endif
