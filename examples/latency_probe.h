/* Schedule-latency probes for a weft server (bench-workloads.md, sched_latency): tasks that
 * run beside the server's own and measure how late they get the CPU after their wake. Used
 * by echo_server when WEFT_ECHO_PROBE is set; runtime thread only. */
#ifndef LATENCY_PROBE_H
#define LATENCY_PROBE_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct latency_probe latency_probe;

/* Which wake a probe measures. */
enum {
    PROBE_TIMER = 1, /* sleeps 1 ms and measures the real clock on resume against its deadline */
    PROBE_FD = 2,    /* a thread writes a timestamp into a pipe every 1 ms; the probe task reads
                      * it and measures the real clock on resume against the stamp */
};

/* Parses WEFT_ECHO_PROBE's value: "1" or "timer", "fd", "all" (both); 0 for unset, "0" or
 * anything else. */
int latency_probe_kinds(const char *env);

/* Starts the probes in `kinds` as tasks of the current runtime, on the caller's worker (so
 * they measure that worker's lateness). *load points at the server's count of live
 * connections: atomic, since a server of several workers counts on each of them (read
 * relaxed: a figure on its own). A sample counts only while that count is at its peak, or,
 * when `want` (the count the load generator opens) is not 0, while it is at least `want`:
 * the load generator's busy window, not its connect or its teardown. Returns 0 or -errno;
 * *out is freed by latency_probe_stop. */
int latency_probe_start(latency_probe **out, int kinds, const atomic_size_t *load, size_t want);

/* Stops the probes, prints one JSON line per probe kind on stdout (workload "sched_latency",
 * impl `impl`, p50/p99/max in us, the connection count in "conns") and frees p. */
void latency_probe_stop(latency_probe *p, const char *impl);

/* Nanoseconds this thread has waited for a CPU while runnable, read through `fd` (the
 * thread's /proc/thread-self/schedstat, opened once on it; -1: the count of involuntary
 * context switches instead). A sample during which it did not move measured the runtime
 * alone. bench_sched_latency shares it. */
long long latency_cpu_wait(int fd);

#endif
