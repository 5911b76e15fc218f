/* The blocking pool (pool.c): one per runtime, created at first use. */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include "internal.h"

void weft__pool_fini(weft__runtime *rt);
void weft__pool_stats(weft__runtime *rt, weft_stats *out);

#endif
