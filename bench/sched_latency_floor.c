/* sched_latency's floor on this machine: what no scheduler in a process can go below.
 *
 * A plain thread, no runtime, takes the probe's part of sched_latency (bench-workloads.md):
 * 10,000 times it picks a deadline 1 ms ahead and records how late it sees it, but instead
 * of sleeping it spins on the clock, so the only thing between the deadline and "running"
 * is the machine itself: interrupts, the hypervisor taking the virtual CPU, SMIs. A
 * runtime's probe is late by those same stalls plus its own scheduling; this is the first
 * term alone.
 *
 * Each deadline is 1 ms plus a pseudo-random 0-100 us ahead. The machine's stalls are
 * often periodic (the kernel's tick), and deadlines spaced exactly 1 ms apart would sample
 * one phase of that period only: p99 then swings from 0.03 to 9 us between runs of the same
 * binary. The offset samples every phase, as the runtime's probe does (its own work between
 * two sleeps varies).
 *
 * Also printed: the share of the run the thread spent in gaps over 10 us between two clock
 * reads, the quantity the p99 follows (when it is over 1%, p99 lands inside a stall).
 * Pin it (`taskset`) to the CPU the runtime under comparison runs on. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = bench_n(argc, argv, 10000);
    if (n < 1)
        return 2;
    int64_t *late = malloc((size_t)n * sizeof *late);
    if (!late)
        return 1;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int64_t stalled = 0, t0 = bench_ns();
    long nstalls = 0;
    for (long i = 0; i < n; i++) {
        seed ^= seed << 13; /* xorshift64: a fixed sequence, so runs are comparable */
        seed ^= seed >> 7;
        seed ^= seed << 17;
        int64_t last = bench_ns(), deadline = last + 1000000 + (int64_t)(seed % 100000), now;
        while ((now = bench_ns()) < deadline) {
            if (now - last > 10000) {
                stalled += now - last;
                nstalls++;
            }
            last = now;
        }
        late[i] = now - deadline;
    }
    double span = (double)(bench_ns() - t0);
    qsort(late, (size_t)n, sizeof *late, cmp_i64);
    printf("{\"impl\":\"spin_floor\",\"workload\":\"sched_latency\",\"n\":%ld,\"value\":%.3f,"
           "\"unit\":\"us_p99\",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
           "\"stalls_over_10us\":%ld,\"stalled_pct\":%.2f}\n",
           n, (double)late[(n * 99 + 99) / 100 - 1] / 1e3, (double)late[n / 2] / 1e3,
           (double)late[(n * 99 + 99) / 100 - 1] / 1e3, (double)late[n - 1] / 1e3, nstalls,
           100.0 * (double)stalled / span);
    free(late);
    return 0;
}
