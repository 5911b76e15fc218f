/* Schedule-latency probes (see latency_probe.h). Lateness is read from the real clock
 * (CLOCK_MONOTONIC) as soon as the probe task runs again: weft_now() is the loop's cached
 * tick time, which would hide the time a woken task spends queued behind others. Each probe
 * keeps the last NSAMPLES samples taken while the server's connection count was at its peak
 * (a new peak discards the samples taken below it), or, given the count the load generator
 * opens, while at least that many were open: a retried connect can briefly push the count
 * above it, and a peak reached only then would keep almost nothing. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "latency_probe.h"

#define NSAMPLES 10000     /* the contract's 10,000 sleeps */
#define PERIOD   WEFT_MSEC /* the contract's 1 ms */
#define NSTAMPS  64        /* stamps taken per read of the pipe */

typedef struct samples {
    int64_t v[NSAMPLES]; /* lateness, ns; a ring once full */
    size_t n;            /* samples taken at the current peak (may exceed NSAMPLES) */
    /* The same, for the samples during which the runtime's thread never waited for a CPU
     * (the timer probe only; see latency_cpu_wait): the runtime's own lateness on a shared machine,
     * where other processes' time slices make the milliseconds-late ones. */
    int64_t own[NSAMPLES];
    size_t nown;
    size_t peak;      /* the connection count they were taken at */
    size_t want;      /* the count the load opens, 0 if unknown (then the peak rule) */
    weft_stats first; /* the runtime's counters at the first and the last sample, */
    weft_stats last;
    int64_t since, until;           /* and when those were taken (real clock) */
    long nivcsw_first, nivcsw_last; /* the thread's involuntary context switches then */
} samples;

struct latency_probe {
    const atomic_size_t *load; /* the server's live connections, on every worker */
    weft_task *timer_task, *fd_task;
    samples timer, fd;
    /* The stamping thread: it owns wfd, the probe task rfd. */
    pthread_t stamper;
    bool stamper_started;
    atomic_bool stop;
    atomic_ulong ndropped; /* stamps the full pipe refused */
    int rfd, wfd;
};

static int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/* The runtime thread's involuntary context switches so far: times the kernel gave its CPU to
 * another thread. On a shared machine they, not the runtime, make the milliseconds-late
 * samples; the JSON line carries their count over the window. */
static long nivcsw(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

/* See latency_probe.h. */
long long latency_cpu_wait(int fd)
{
    char buf[96];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0) {
        struct rusage ru;
        return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
    }
    buf[n] = 0;
    char *p = strchr(buf, ' ');
    return p ? atoll(p + 1) : 0;
}

static void record(samples *s, size_t load, int64_t late, bool delayed)
{
    if (s->want && load < s->want)
        return; /* the load generator's ramp-up or teardown: not the busy window */
    if (s->want)
        load = s->want; /* a retried connect's surplus is not a new peak */
    if (load < s->peak)
        return;
    if (load > s->peak) {
        s->peak = load;
        s->n = s->nown = 0;
        weft_stats_get(&s->first);
        s->nivcsw_first = nivcsw();
        s->since = clock_ns();
    }
    s->v[s->n++ % NSAMPLES] = late;
    if (!delayed)
        s->own[s->nown++ % NSAMPLES] = late;
    weft_stats_get(&s->last);
    s->nivcsw_last = nivcsw();
    s->until = clock_ns();
}

static void *timer_probe(void *arg)
{
    latency_probe *p = arg;
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    for (;;) {
        long long before = latency_cpu_wait(fd);
        int64_t deadline = clock_ns() + PERIOD;
        if (weft_sleep_until(deadline) < 0)
            break; /* cancelled: the server is stopping */
        int64_t late = clock_ns() - deadline;
        record(&p->timer, atomic_load_explicit(p->load, memory_order_relaxed), late,
               latency_cpu_wait(fd) != before);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *stamp_loop(void *arg)
{
    latency_probe *p = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        next.tv_nsec += PERIOD;
        if (next.tv_nsec >= WEFT_SEC) {
            next.tv_nsec -= WEFT_SEC;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        int64_t stamp = clock_ns();
        /* Non-blocking: a probe task far behind must not block this thread's stop. */
        if (write(p->wfd, &stamp, sizeof stamp) != (ssize_t)sizeof stamp)
            atomic_fetch_add_explicit(&p->ndropped, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *fd_probe(void *arg)
{
    latency_probe *p = arg;
    int64_t stamps[NSTAMPS];
    size_t have = 0; /* bytes of a partial stamp carried over (pipe writes of 8 are atomic,
                      * so in practice always 0) */
    for (;;) {
        ssize_t n = weft_read(p->rfd, (char *)stamps + have, sizeof stamps - have, WEFT_FOREVER);
        if (n <= 0)
            return NULL;
        int64_t now = clock_ns();
        size_t bytes = have + (size_t)n, whole = bytes / sizeof stamps[0];
        for (size_t i = 0; i < whole; i++)
            record(&p->fd, atomic_load_explicit(p->load, memory_order_relaxed), now - stamps[i],
                   true);
        have = bytes % sizeof stamps[0];
        memmove(stamps, (char *)stamps + whole * sizeof stamps[0], have);
    }
}

int latency_probe_kinds(const char *env)
{
    if (!env)
        return 0;
    if (strcmp(env, "1") == 0 || strcmp(env, "timer") == 0)
        return PROBE_TIMER;
    if (strcmp(env, "fd") == 0)
        return PROBE_FD;
    if (strcmp(env, "all") == 0)
        return PROBE_TIMER | PROBE_FD;
    return 0;
}

int latency_probe_start(latency_probe **out, int kinds, const atomic_size_t *load, size_t want)
{
    latency_probe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->load = load;
    p->timer.want = p->fd.want = want;
    p->rfd = p->wfd = -1;
    int r = 0;
    if (kinds & PROBE_TIMER)
        r = weft_spawn(&p->timer_task, timer_probe, p, &(weft_spawn_opts){.name = "probe-timer"});
    if (r == 0 && (kinds & PROBE_FD)) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
            r = -errno;
        } else {
            p->rfd = fds[0];
            p->wfd = fds[1];
            /* The thread starts with every signal blocked: the server takes SIGTERM
             * through weft_signal_wait, and a thread that left it unblocked would receive
             * it instead and die of it, with the whole process. */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            r = -pthread_create(&p->stamper, NULL, stamp_loop, p);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            p->stamper_started = r == 0;
        }
        if (r == 0)
            r = weft_spawn(&p->fd_task, fd_probe, p, &(weft_spawn_opts){.name = "probe-fd"});
    }
    *out = p;
    return r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct_us(const int64_t *v, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;
    return (double)v[rank ? rank - 1 : 0] / 1e3;
}

static void report(samples *s, const char *workload, const char *impl, bool counters)
{
    size_t n = s->n < NSAMPLES ? s->n : NSAMPLES;
    if (n == 0)
        return;
    qsort(s->v, n, sizeof s->v[0], cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)s->v[i];
    double p99 = pct_us(s->v, n, 99);
    printf("{\"impl\":\"%s\",\"workload\":\"%s\",\"n\":%zu,\"value\":%.2f,\"unit\":\"us_p99\","
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,\"mean_us\":%.2f,\"conns\":%zu",
           impl, workload, n, p99, pct_us(s->v, n, 50), p99, (double)s->v[n - 1] / 1e3,
           sum / (double)n / 1e3, s->peak);
    size_t nown = s->nown < NSAMPLES ? s->nown : NSAMPLES;
    if (counters && nown) {
        qsort(s->own, nown, sizeof s->own[0], cmp_i64);
        printf(",\"n_undelayed\":%zu,\"p50_undelayed_us\":%.2f,"
               "\"p99_undelayed_us\":%.2f,\"max_undelayed_us\":%.2f",
               nown, pct_us(s->own, nown, 50), pct_us(s->own, nown, 99),
               (double)s->own[nown - 1] / 1e3);
    }
    if (counters) {
        /* The loop's shape over the busy window: resumes and reactor polls per tick. */
        double secs = (double)(s->until - s->since) / 1e9;
        double ticks = (double)(s->last.nticks - s->first.nticks);
        if (secs > 0 && ticks > 0)
            printf(",\"window_s\":%.1f,\"ticks_per_s\":%.0f,\"resumes_per_tick\":%.1f,"
                   "\"polls_per_tick\":%.2f,\"preempted\":%ld",
                   secs, ticks / secs, (double)(s->last.nresumes - s->first.nresumes) / ticks,
                   (double)(s->last.npolls - s->first.npolls) / ticks,
                   s->nivcsw_last - s->nivcsw_first);
    }
    printf("}\n");
}

void latency_probe_stop(latency_probe *p, const char *impl)
{
    if (p->timer_task) {
        weft_cancel(p->timer_task);
        weft_join(p->timer_task, NULL, WEFT_FOREVER);
        report(&p->timer, "sched_latency", impl, true);
    }
    if (p->stamper_started) {
        atomic_store_explicit(&p->stop, true, memory_order_relaxed);
        pthread_join(p->stamper, NULL); /* at most one period */
    }
    if (p->fd_task) {
        weft_cancel(p->fd_task);
        weft_join(p->fd_task, NULL, WEFT_FOREVER);
        report(&p->fd, "sched_latency_fd", impl, false);
    }
    if (p->wfd >= 0)
        close(p->wfd);
    if (p->rfd >= 0)
        weft_close(p->rfd);
    if (atomic_load(&p->ndropped))
        fprintf(stderr, "latency_probe: %lu stamps dropped (pipe full)\n",
                (unsigned long)atomic_load(&p->ndropped));
    fflush(stdout);
    free(p);
}
