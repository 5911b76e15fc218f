/* file_randread: 64 tasks on one worker each read 4 KiB at random aligned offsets of a 1 GiB
 * file through weft_file_pread, for SECONDS; ops/s, p50/p99 latency and CPU per op. The file
 * is read from the page cache (direct 0: the whole file is read once first) or with O_DIRECT
 * (direct 1, where the filesystem takes it). The backend is WEFT_BACKEND's (impl weft_epoll
 * or weft_io_uring: the one the runtime reports, after any fallback).
 * Usage: bench_file_randread [--dir DIR] [--seconds S] [--direct 0|1] [--qd N] [--mib M]
 * The file DIR/randread.<M>m (default DIR: this binary's build directory's parent, i.e.
 * build/bench; WEFT_BENCH_DIR overrides it) is created once, filled with non-zero bytes so no
 * read hits a hole, and kept for the next run. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

#include "bench_common.h"

#define BLOCK    4096
#define NBUCKETS (64 * 16) /* log2 major, 16 linear minors: < 6.25% error per bucket */

typedef struct run {
    int fd;
    int64_t nblocks;
    int64_t start_ns, end_ns; /* the measured window; tasks stop at end_ns */
    uint64_t nops;            /* reads completed inside the window */
    uint64_t hist[NBUCKETS];  /* their latencies */
    int failed;               /* first error, as -errno, or 0 */
} run;

static int bucket_of(uint64_t ns)
{
    if (ns < 16)
        return (int)ns;
    int lg = 63 - __builtin_clzll(ns); /* >= 4 */
    return (lg - 3) * 16 + (int)((ns >> (lg - 4)) & 15);
}

static double bucket_ns(int b) /* the bucket's lower bound */
{
    if (b < 16)
        return b;
    int lg = b / 16 + 3;
    return (double)((16ull + (uint64_t)(b % 16)) << (lg - 4));
}

static double percentile_us(const run *r, double q)
{
    uint64_t want = (uint64_t)((double)r->nops * q), seen = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += r->hist[b];
        if (seen > want)
            return bucket_ns(b) / 1e3;
    }
    return 0;
}

/* One of the QD readers: all run on the one worker, so the counters need no atomics. */
static void *reader(void *arg)
{
    run *r = arg;
    static _Thread_local uint64_t seed; /* per worker thread; each task steps it */
    if (!seed)
        seed = 42;
    void *buf;
    if (posix_memalign(&buf, BLOCK, BLOCK)) /* O_DIRECT wants aligned memory */
        return (void *)(intptr_t)-ENOMEM;
    for (;;) {
        off_t off = (off_t)(bench_splitmix64(&seed) % (uint64_t)r->nblocks) * BLOCK;
        int64_t t0 = bench_ns();
        if (t0 >= r->end_ns)
            break;
        ssize_t got = weft_file_pread(r->fd, buf, BLOCK, off, WEFT_FOREVER);
        int64_t t1 = bench_ns();
        if (got != BLOCK) {
            if (!r->failed)
                r->failed = got < 0 ? (int)got : -EIO;
            break;
        }
        if (t0 >= r->start_ns && t1 <= r->end_ns) {
            r->nops++;
            r->hist[bucket_of((uint64_t)(t1 - t0))]++;
        }
    }
    free(buf);
    return NULL;
}

typedef struct opts {
    const char *path;
    double seconds, warmup;
    int direct, qd;
    int64_t bytes;
} opts;

static int64_t cpu_ns(void) /* this process, every thread (the blocking pool's included) */
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void *bench(void *arg)
{
    const opts *o = arg;
    run *r = calloc(1, sizeof *r);
    int fd = weft_file_open(o->path, O_RDONLY | (o->direct ? O_DIRECT : 0), 0, WEFT_FOREVER);
    if (fd < 0) {
        fprintf(stderr, "file_randread: open %s%s: %s\n", o->path, o->direct ? " (O_DIRECT)" : "",
                strerror(-fd));
        free(r);
        return (void *)(intptr_t)fd;
    }
    r->fd = fd;
    r->nblocks = o->bytes / BLOCK;
    int64_t now = bench_ns();
    r->start_ns = now + (int64_t)(o->warmup * 1e9);
    r->end_ns = r->start_ns + (int64_t)(o->seconds * 1e9);
    weft_task **ts = calloc((size_t)o->qd, sizeof *ts);
    for (int i = 0; i < o->qd; i++)
        weft_spawn(&ts[i], reader, r, NULL);
    weft_sleep(r->start_ns - now); /* the readers warm up meanwhile */
    weft_stats s0, s1;
    weft_stats_get(&s0);
    int64_t cpu0 = cpu_ns();
    weft_sleep(r->end_ns - r->start_ns);
    int64_t cpu1 = cpu_ns();
    weft_stats_get(&s1);
    for (int i = 0; i < o->qd; i++)
        weft_join(ts[i], NULL, WEFT_FOREVER);
    weft_close(fd);
    free(ts);
    int err = r->failed;
    if (err) {
        fprintf(stderr, "file_randread: pread: %s\n", strerror(-err));
    } else {
        char impl[32], extra[256];
        snprintf(impl, sizeof impl, "weft_%s", weft_backend());
        double ops = (double)r->nops;
        snprintf(extra, sizeof extra,
                 ",\"direct\":%d,\"qd\":%d,\"seconds\":%g,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                 "\"cpu_us_per_op\":%.3f,\"syscalls_per_op\":%.3f,\"file_bytes\":%lld",
                 o->direct, o->qd, o->seconds, percentile_us(r, 0.50), percentile_us(r, 0.99),
                 ops ? (double)(cpu1 - cpu0) / 1e3 / ops : 0.0,
                 ops ? (double)(s1.nsyscalls - s0.nsyscalls) / ops : 0.0, (long long)o->bytes);
        bench_emit(impl, "file_randread", (long)r->nops, ops / o->seconds, "ops/s", extra);
    }
    free(r);
    return (void *)(intptr_t)err;
}

/* Creates (or re-creates, if its size is wrong) the test file, then, for the page-cache
 * run, reads it all once so that every block is cached. Before the runtime starts: setup,
 * not measured. */
static int prepare(const opts *o)
{
    struct stat st;
    if (stat(o->path, &st) != 0 || st.st_size != o->bytes) {
        fprintf(stderr, "file_randread: creating %s (%lld MiB)\n", o->path,
                (long long)(o->bytes >> 20));
        int fd = open(o->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
        size_t chunk = 1 << 20;
        unsigned char *b = malloc(chunk);
        uint64_t seed = 7;
        for (size_t i = 0; i < chunk; i += 8) {
            uint64_t v = bench_splitmix64(&seed) | 1; /* never zero: no hole-like pages */
            memcpy(b + i, &v, 8);
        }
        for (int64_t done = 0; done < o->bytes; done += (int64_t)chunk) {
            if (write(fd, b, chunk) != (ssize_t)chunk) {
                int e = errno ? -errno : -EIO;
                free(b);
                close(fd);
                unlink(o->path);
                return e;
            }
        }
        free(b);
        fsync(fd);
        close(fd);
    }
    if (!o->direct) {
        int fd = open(o->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        char *b = malloc(1 << 20);
        while (read(fd, b, 1 << 20) > 0)
            ;
        free(b);
        close(fd);
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.seconds = 10, .warmup = 1, .direct = 0, .qd = 64, .bytes = (int64_t)1 << 30};
    const char *dir = getenv("WEFT_BENCH_DIR");
    char exe_dir[PATH_MAX] = "."; /* build/bench/bench/bench_file_randread -> build/bench */
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof exe_dir - 1);
    if (n > 0) {
        exe_dir[n] = 0;
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe_dir, '/');
            if (slash && slash != exe_dir)
                *slash = 0;
        }
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            o.seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--direct"))
            o.direct = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--qd"))
            o.qd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib"))
            o.bytes = (int64_t)atoll(argv[i + 1]) << 20;
        else {
            fprintf(stderr,
                    "usage: %s [--dir DIR] [--seconds S] [--direct 0|1] [--qd N] "
                    "[--mib M]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.seconds <= 0 || o.qd < 1 || o.bytes < BLOCK) {
        fprintf(stderr, "file_randread: bad arguments\n");
        return 2;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/randread.%lldm", dir ? dir : exe_dir,
             (long long)(o.bytes >> 20));
    o.path = path;
    int r = prepare(&o);
    if (r < 0) {
        fprintf(stderr, "file_randread: preparing %s: %s\n", path, strerror(-r));
        return 1;
    }
    void *res = NULL;
    r = weft_run(NULL, bench, &o, &res);
    if (r < 0 || res) {
        /* O_DIRECT refused by the filesystem (tmpfs, overlayfs on some kernels): skip, 77. */
        if (o.direct && (intptr_t)res == -EINVAL)
            return 77;
        return 1;
    }
    return 0;
}
