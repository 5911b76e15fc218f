/* Metrics (metrics.c): the runtime's counters read from any thread, per worker or summed,
 * and their Prometheus text exposition. */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "dump.h"

/* Appends the Prometheus text of rt's counters (one series per worker) to `b`. Any thread
 * that keeps rt alive meanwhile. */
void weft__metrics_render(weft__runtime *rt, weft__dumpbuf *b);

#endif
