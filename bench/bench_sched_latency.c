/* sched_latency (bench-workloads.md), one worker: 1,000 tasks yield in a loop to keep it
 * busy while a probe task sleeps 1 ms, 10,000 times, and records how late it resumes (wake to
 * run): the real clock on resume minus its deadline (weft_now() is the tick's cached time and
 * would hide the wait in the ready queue). p50, p99 and max in µs.
 * Usage: bench_sched_latency [n [work_ns]]: with work_ns, each busy task also computes that
 * long (no system call) between two yields, impl "weft_computing": a due timer must then be
 * noticed between resumes, not only at the tick (64 resumes, 64 x work_ns). */
#include <stdbool.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <weft.h>

#include "bench_common.h"
#include "../examples/latency_probe.h"

#define NBUSY 1000

static bool done;
static uint64_t nyields;
static int64_t work_ns; /* computed by each busy task between two yields (argv[2], default 0) */

/* Computation without a system call: the clock read is the vDSO's. */
static void compute(int64_t ns)
{
    int64_t until = bench_ns() + ns;
    while (bench_ns() < until)
        ;
}

static void *busy(void *arg)
{
    (void)arg;
    while (!done) {
        nyields++;
        if (work_ns)
            compute(work_ns);
        weft_yield();
    }
    return NULL;
}

static void *bench(void *arg)
{
    long n = (long)(intptr_t)arg;
    /* All samples, and those during which this thread never waited for a CPU. */
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    int64_t *late = malloc((size_t)n * sizeof *late), *own = malloc((size_t)n * sizeof *own);
    long nown = 0;
    if (!late || !own)
        return (void *)1;
    weft_task *t[NBUSY];
    for (int i = 0; i < NBUSY; i++)
        weft_spawn(&t[i], busy, NULL, NULL);
    weft_sleep(10 * WEFT_MSEC); /* every busy task has run once: stacks bound, queue full */
    /* Involuntary context switches: the kernel giving the CPU to another process. A probe
     * that resumes milliseconds late was preempted, which no scheduler in the process can
     * prevent; their count tells a run on a shared machine from a slow runtime. */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t0 = bench_ns();
    uint64_t y0 = nyields;
    for (long i = 0; i < n; i++) {
        long long before = latency_cpu_wait(fd);
        int64_t deadline = bench_ns() + WEFT_MSEC;
        weft_sleep_until(deadline);
        late[i] = bench_ns() - deadline;
        if (latency_cpu_wait(fd) == before)
            own[nown++] = late[i];
    }
    double ns_per_yield = (double)(bench_ns() - t0) / (double)(nyields - y0);
    getrusage(RUSAGE_SELF, &ru1);
    done = true;
    for (int i = 0; i < NBUSY; i++)
        weft_join(t[i], NULL, WEFT_FOREVER);
    qsort(late, (size_t)n, sizeof *late, bench_cmp_i64);
    double p50 = (double)late[n / 2] / 1e3, p99 = (double)late[(n * 99 + 99) / 100 - 1] / 1e3;
    qsort(own, (size_t)nown, sizeof *own, bench_cmp_i64);
    double own50 = nown ? (double)own[nown / 2] / 1e3 : 0;
    double own99 = nown ? (double)own[(nown * 99 + 99) / 100 - 1] / 1e3 : 0;
    char extra[400];
    snprintf(extra, sizeof extra,
             ",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"busy_tasks\":%d,"
             "\"busy_ns_per_yield\":%.1f,\"preempted\":%ld,\"n_undelayed\":%ld,"
             "\"p50_undelayed_us\":%.2f,\"p99_undelayed_us\":%.2f,\"work_ns\":%lld",
             p50, p99, (double)late[n - 1] / 1e3, NBUSY, ns_per_yield,
             ru1.ru_nivcsw - ru0.ru_nivcsw, nown, own50, own99, (long long)work_ns);
    bench_emit(work_ns ? "weft_computing" : "weft", "sched_latency", n, p99, "us_p99", extra);
    free(late);
    free(own);
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 2)
        work_ns = atoll(argv[2]);
    return weft_run(NULL, bench, (void *)(intptr_t)bench_n(argc, argv, 10000), NULL) ? 1 : 0;
}
