/* Metrics (metrics.c): the runtime's counters read from any thread, per worker or summed,
 * and their Prometheus text exposition. */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "dump.h"

/* Appends the Prometheus text of rt's counters (one series per worker) to `b`. Any thread
 * that keeps rt alive meanwhile. */
void weft__metrics_render(weft__runtime *rt, weft__dumpbuf *b);
/* Appends the same figures as one JSON object to `b` (the console's /debug/stats): {"now_ns",
 * "mode", "stall_ns", "pool_threads", "pool_jobs", "total": {<weft_stats field>: n, ...},
 * "workers": [{"index", "asleep", <weft_stats field>: n, ...}], "histograms":
 * {"schedule_latency", "poll_time": {"count", "sum_ns", "buckets": [40 counts]}}}. `now` is
 * the clock the dump's ages are measured against. Any thread that keeps rt alive. */
void weft__metrics_render_json(weft__runtime *rt, weft__dumpbuf *b, int64_t now);

#ifdef WEFT_TESTING
/* When set, called by every rendering of the Prometheus text once the figures are read and
 * before the text is written, on the rendering's thread: a test's look at what the rendering
 * holds then (weft_metrics_text holds no lock by then). NULL by default. */
extern void (*weft__metrics_format_hook)(void);
#endif

#endif
