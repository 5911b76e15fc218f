/* Shared helpers for weft's benchmarks: the JSON-line output of ../shared/bench-workloads.md,
 * a monotonic clock, RSS readings from /proc, and the median of repeated runs. */
#ifndef WEFT_BENCH_COMMON_H
#define WEFT_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread (user and system), for micro-benchmarks on a shared
 * machine: unlike the monotonic clock it stops while the thread is preempted, which on a
 * loaded 2-CPU box adds whole 4 ms scheduler ticks to a 1 ms trial. */
static inline int64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads a "Vm...:  N kB" line of /proc/self/status, in bytes (0 if absent). */
static inline long long bench_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    long long v = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = atoll(line + n + 1) * 1024;
    fclose(f);
    return v;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The count to run: argv[1] if given (for quick checks), else the contract's default. */
static inline long bench_n(int argc, char **argv, long dflt)
{
    return argc > 1 ? atol(argv[1]) : dflt;
}

/* qsort's comparison of int64_t samples (latencies), ascending. */
static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void bench_emit(const char *impl, const char *workload, long n, double value,
                              const char *unit, const char *extra)
{
    printf("{\"impl\":\"%s\",\"workload\":\"%s\",\"n\":%ld,\"value\":%.3f,\"unit\":\"%s\"%s}\n",
           impl, workload, n, value, unit, extra ? extra : "");
    fflush(stdout);
}

/* splitmix64: the same generator and seed (42) as the Go and Tokio peers use. */
static inline uint64_t bench_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define BENCH_REPEATS 5 /* in-process repetitions of the fast workloads; the median is shown */

#endif
