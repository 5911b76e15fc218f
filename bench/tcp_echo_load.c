/* The tcp_echo load generator (bench-workloads.md): C connections to 127.0.0.1,
 * each sends 64 bytes and waits for the 64-byte echo, in a loop; prints one JSON line with
 * messages/s and the p50/p99 round trip. Plain C on raw level-triggered epoll, one thread
 * (but see --threads), non-blocking sockets, a log-linear latency histogram; it stops by
 * itself and fails fast (non-zero exit) if the server closes a connection, corrupts an echo
 * or stalls.
 *
 * With --threads T (for a server on many CPUs, which one thread cannot keep busy) T loaders
 * share the work, each on its own thread with its own epoll instance, its own connections
 * (connection i belongs to loader i % T) and its own histogram; the histograms are merged at
 * the end into the one JSON line, which then also says "threads". All loaders measure the
 * same window. T = 1 (the default) runs the one loader on the main thread, as before.
 *
 *   tcp_echo_load --port P --conns C --seconds S [--impl NAME] [--warmup S] [--server-pid PID]
 *                 [--threads T]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MSG                 64
#define CONNECT_BATCH       128           /* connections opened but not yet echoed once, at most */
#define CONNECT_TRIES       20            /* attempts per connection (ECONNREFUSED, EAGAIN, ...) */
#define CONNECT_DEADLINE_NS 30000000000LL /* the whole connect phase */
#define STALL_NS            5000000000LL  /* no echo at all for this long: the server is stuck */
#define MAX_EVENTS          1024
#define MAX_THREADS         CONNECT_BATCH /* so that each loader's share of a batch is >= 1 */

/* Log-linear histogram of nanoseconds: values below 2^SUB_BITS are exact; above, each power
 * of two is split into 2^SUB_BITS buckets, so a bucket is < 1/128 (0.8%) of its value wide. */
#define SUB_BITS 7
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64u - SUB_BITS + 1u) << SUB_BITS)

enum state { IDLE, CONNECTING, RUNNING };

typedef struct conn {
    int fd;
    enum state st;
    int tries;       /* connect attempts so far */
    int established; /* has had its first echo */
    int wr;          /* bytes of the current message sent */
    int rd;          /* bytes of its echo received */
    int want_out;    /* EPOLLOUT is in the registered mask */
    int64_t sent_ns; /* when the current message started going out */
    char echo[MSG];
} conn;

struct loader;

/* What every loader reads: the settings (fixed before the loaders start) and the little
 * they share while running, each field written as its comment says. */
typedef struct common {
    struct sockaddr_in server;
    int nconns, nthreads, server_pid;
    double seconds, warmup;
    struct loader *loaders; /* all of them, for the totals in the stall and deadline checks */
    atomic_int threads_up;  /* loaders whose every connection has had its first echo */
    /* The measured window's start (CLOCK_MONOTONIC ns, never 0 once set), 0 until set: the
     * loader whose increment brings threads_up to nthreads sets it, once, and every loader
     * measures [measure_from, measure_from + seconds). */
    _Atomic int64_t measure_from;
} common;

/* One thread's share of the load. Only its own thread writes it, except that main sets it up
 * before the thread starts and reads it after the join; other loaders read progress_ns and
 * up (atomics), and only for the stall and deadline checks. Cache-line aligned, so that no
 * two loaders' fields share a line. */
typedef struct loader {
    _Alignas(64) common *cm;
    int id;     /* its connections are the global ones id, id + nthreads, id + 2 nthreads... */
    int nconns; /* how many: cs[k] is global connection id + k * nthreads */
    int batch;  /* its share of CONNECT_BATCH */
    int ep;     /* its own epoll instance */
    conn *cs;
    int *retry; /* local indices of connections to connect again */
    pthread_t thread;
    _Atomic int64_t progress_ns; /* its last echo (its start before the first) */
    atomic_int up;               /* its connections that have had their first echo */
    uint64_t count;              /* echoes measured, in hist: set when its loop ends */
    /* The figures at the window's start: loader 0 alone takes them (it runs on the main
     * thread, which computes the JSON line from them). */
    int64_t cpu_from;
    long long srv_from, srv_user_from, busy_from;
    uint64_t hist[NBUCKETS];
} loader;

static const char payload[MSG + 1] =
    "tcp_echo 64-byte message: 0123456789abcdefghijklmnopqrstuvwxyz!\n";

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* With --server-pid the JSON line also has the server's CPU over the measured window
 * (server_cpu_pct; server_us_per_msg, what a message costs the server even when this
 * generator is the bottleneck) and other_cpu_pct, the busy time of all CPUs spent in neither
 * process: a large value means something else on the machine disturbed the run. */

/* User + system clock ticks of a process (all its threads), -1 if unreadable; its user
 * ticks alone in *user (the runtime's own share: system time is the kernel's TCP work). */
static long long proc_ticks(int pid, long long *user)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *user = (long long)ut;
    return (long long)(ut + st);
}

/* A process's resident set in bytes (VmRSS of /proc/PID/status), -1 if unreadable. */
static long long proc_rss(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atoll(line + 6);
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Busy clock ticks of all CPUs together (everything but idle and iowait). */
static long long busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int got = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                         &v[3], &v[4], &v[5], &v[6], &v[7])
                : 0;
    if (f)
        fclose(f);
    if (got < 8)
        return -1;
    return (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - SUB_BITS;
    return ((shift + 1) << SUB_BITS) | (unsigned)((v >> shift) & (SUB - 1));
}

/* The middle of bucket b's range, in ns. */
static double bucket_mid(unsigned b)
{
    unsigned e = b >> SUB_BITS, m = b & (SUB - 1);
    if (e == 0)
        return m;
    unsigned shift = e - 1;
    return (double)((uint64_t)(SUB | m) << shift) + (double)((uint64_t)1 << shift) / 2;
}

/* The smallest bucket below which at least a fraction p of the samples lie, in µs. */
static double percentile_us(const uint64_t *hist, uint64_t total, double p)
{
    if (!total)
        return 0;
    uint64_t rank = (uint64_t)((double)total * p);
    if ((double)rank < (double)total * p)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return bucket_mid(b) / 1000.0;
    }
    return bucket_mid(NBUCKETS - 1) / 1000.0;
}

/* Prints "tcp_echo_load: " and the message and exits with status 1. Once: a dead server
 * fails every loader at about the same moment, and exit() must run only once; a loader that
 * fails after the first sleeps until that exit ends the process, so one reason is printed. */
static _Noreturn void fail(const char *fmt, ...)
{
    static atomic_flag failed = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&failed))
        for (;;)
            pause();
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tcp_echo_load: %s\n", msg);
    exit(1);
}

static _Noreturn void die(const char *what, int i)
{
    if (i >= 0)
        fail("connection %d: %s", i, what);
    fail("%s", what);
}

/* Connections up (first echo had) in all loaders together, for the error messages. */
static int connections_up(const common *cm)
{
    int up = 0;
    for (int t = 0; t < cm->nthreads; t++)
        up += atomic_load_explicit(&cm->loaders[t].up, memory_order_relaxed);
    return up;
}

/* The latest echo of all loaders: the server is stuck only if no loader has had one. */
static int64_t latest_progress(const common *cm)
{
    int64_t latest = 0;
    for (int t = 0; t < cm->nthreads; t++) {
        int64_t p = atomic_load_explicit(&cm->loaders[t].progress_ns, memory_order_relaxed);
        if (p > latest)
            latest = p;
    }
    return latest;
}

static void set_events(int ep, conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl", -1);
    c->want_out = !!(events & EPOLLOUT);
}

/* Sends what is left of the current message; arms EPOLLOUT if the socket is full. */
static void push(int ep, conn *c, int i)
{
    while (c->wr < MSG) {
        ssize_t n = send(c->fd, payload + c->wr, (size_t)(MSG - c->wr), MSG_NOSIGNAL);
        if (n > 0) {
            c->wr += (int)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!c->want_out)
                set_events(ep, c, EPOLLIN | EPOLLOUT);
            return;
        } else {
            die(n < 0 ? strerror(errno) : "send returned 0", i);
        }
    }
    if (c->want_out)
        set_events(ep, c, EPOLLIN);
}

static void start_message(int ep, conn *c, int i, int64_t t)
{
    c->wr = 0;
    c->rd = 0;
    c->sent_ns = t;
    push(ep, c, i);
}

/* Starts a non-blocking connect of global connection i; returns 0, or -1 after a retryable
 * failure. */
static int start_connect(const loader *l, conn *c, int i)
{
    if (++c->tries > CONNECT_TRIES)
        die("could not connect (too many refused or failed attempts)", i);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die(errno == EMFILE || errno == ENFILE ? "out of file descriptors (raise ulimit -n)"
                                               : strerror(errno),
            i);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl", -1);
    if (connect(fd, (const struct sockaddr *)&l->cm->server, sizeof l->cm->server) == 0 ||
        errno == EINPROGRESS) {
        c->st = CONNECTING; /* completion (or failure) shows as EPOLLOUT */
        return 0;
    }
    int err = errno;
    close(fd);
    c->fd = -1;
    c->st = IDLE;
    if (err == ECONNREFUSED || err == EAGAIN || err == ECONNRESET || err == ETIMEDOUT ||
        err == EADDRNOTAVAIL || err == EINTR)
        return -1;
    die(strerror(err), i);
}

/* One loader's loop: connects its connections, echoes on them until the window has passed,
 * and counts the round trips that end inside it in its own histogram. */
static void drive(loader *l)
{
    common *cm = l->cm;
    conn *cs = l->cs;
    int *retry = l->retry;
    uint64_t *hist = l->hist;
    const int ep = l->ep, nthreads = cm->nthreads;

    /* Connect phase: at most CONNECT_BATCH connections between connect() and their first
     * echo (this loader's share of them), so neither the SYN queue nor the accept queue
     * overflows whatever the server's accept rate. Each connection starts its echo loop as
     * soon as it is up (that traffic is warm-up); the clock of the warm-up starts when the
     * last connection of all loaders has been echoed. */
    int64_t t0 = now_ns(), last_progress = t0;
    int next = 0, opening = 0, established = 0, failed = 0, nretry = 0, counted_up = 0;
    struct epoll_event evs[MAX_EVENTS];
    int64_t measure_from = 0, end = 0;
    uint64_t count = 0;
    int measuring = 0;
    atomic_store_explicit(&l->progress_ns, t0, memory_order_relaxed);

    for (;;) {
        int64_t t = now_ns();
        if (established < l->nconns) {
            if (t - t0 > CONNECT_DEADLINE_NS)
                fail("only %d of %d connections up after %lld s", connections_up(cm), cm->nconns,
                     CONNECT_DEADLINE_NS / 1000000000);
            if (failed) { /* refused or reset: back off a little before trying again */
                usleep(20000);
                failed = 0;
            }
            while (opening < l->batch && (nretry || next < l->nconns)) {
                int k = nretry ? retry[--nretry] : next++;
                if (start_connect(l, &cs[k], l->id + k * nthreads) == 0)
                    opening++;
                else
                    retry[nretry++] = k, failed = 1;
                if (failed)
                    break;
            }
        } else if (!counted_up) {
            counted_up = 1;
            if (atomic_fetch_add(&cm->threads_up, 1) + 1 == nthreads)
                atomic_store(&cm->measure_from, t + (int64_t)(cm->warmup * 1e9));
        }
        if (!end) { /* until it is set, this loader's traffic is warm-up */
            measure_from = atomic_load_explicit(&cm->measure_from, memory_order_relaxed);
            if (measure_from)
                end = measure_from + (int64_t)(cm->seconds * 1e9);
        }
        if (end && !measuring && t >= measure_from) {
            measuring = 1;
            if (l->id == 0) {
                l->cpu_from = cpu_ns();
                if (cm->server_pid > 0) {
                    l->srv_from = proc_ticks(cm->server_pid, &l->srv_user_from);
                    l->busy_from = busy_ticks();
                }
            }
        }
        if (end && t >= end)
            break;
        if (t - last_progress > STALL_NS && t - latest_progress(cm) > STALL_NS)
            fail("no echo for %lld s (%d of %d connections up)", STALL_NS / 1000000000,
                 connections_up(cm), cm->nconns);
        int timeout_ms = 100;
        if (end) {
            int64_t left = (measuring ? end : measure_from) - t;
            if (left / 1000000 + 1 < timeout_ms)
                timeout_ms = (int)(left / 1000000) + 1;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait", -1);
        }
        for (int e = 0; e < n; e++) {
            conn *c = evs[e].data.ptr;
            int k = (int)(c - cs), i = l->id + k * nthreads; /* local and global index */
            if (c->st == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    if (err != ECONNREFUSED && err != ECONNRESET && err != ETIMEDOUT &&
                        err != EAGAIN)
                        die(strerror(err), i);
                    close(c->fd);
                    c->fd = -1;
                    c->st = IDLE;
                    opening--;
                    retry[nretry++] = k;
                    failed = 1;
                    continue;
                }
                c->st = RUNNING;
                start_message(ep, c, i, now_ns());
                continue;
            }
            if (evs[e].events & EPOLLOUT && c->wr < MSG)
                push(ep, c, i);
            if (!(evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t r = recv(c->fd, c->echo + c->rd, (size_t)(MSG - c->rd), 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0)
                fail("connection %d: %s (did the server die?)", i,
                     r == 0 ? "closed by the server" : strerror(errno));
            if (c->rd + r > c->wr)
                die("received more bytes than were sent", i);
            c->rd += (int)r;
            if (c->rd < MSG)
                continue;
            if (memcmp(c->echo, payload, MSG) != 0)
                die("the echo differs from the message sent", i);
            int64_t done = now_ns();
            last_progress = done;
            if (!c->established) {
                c->established = 1;
                established++;
                opening--;
                atomic_store_explicit(&l->up, established, memory_order_relaxed);
            } else if (measuring && done < end) {
                hist[bucket_of((uint64_t)(done - c->sent_ns))]++;
                count++;
            }
            start_message(ep, c, i, done);
        }
        atomic_store_explicit(&l->progress_ns, last_progress, memory_order_relaxed);
    }
    l->count = count;
}

static void *loader_thread(void *arg)
{
    drive(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, nconns = 0, server_pid = 0, nthreads = 1;
    double seconds = 0, warmup = 1;
    const char *impl = "unknown";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--conns"))
            nconns = atoi(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--impl"))
            impl = v;
        else if (!strcmp(a, "--server-pid"))
            server_pid = atoi(v);
        else if (!strcmp(a, "--threads"))
            nthreads = atoi(v);
        else
            goto usage;
        i++;
    }
    if (port <= 0 || port > 65535 || nconns <= 0 || !(seconds > 0) || !(warmup >= 0) ||
        seconds > 3600 || warmup > 3600 || nthreads < 1 || nthreads > MAX_THREADS ||
        nthreads > nconns) {
    usage:
        fprintf(stderr,
                "usage: %s --port P --conns C --seconds S [--impl NAME] [--warmup S] [--server-pid "
                "PID] [--threads T]\n"
                "  (127.0.0.1 only; warm-up defaults to 1 s and is excluded from the stats;\n"
                "  T threads, default 1, at most %d and at most C)\n",
                argv[0], MAX_THREADS);
        return 2;
    }
    for (const char *p = impl; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            fprintf(stderr, "tcp_echo_load: --impl must not need JSON escaping\n");
            return 2;
        }

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Each loader past the first has one more descriptor, its epoll instance. */
    if (rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)nconns + 16 + (rlim_t)(nthreads - 1) > rl.rlim_cur) {
        fprintf(stderr,
                "tcp_echo_load: %d connections need more than the %llu descriptors "
                "allowed (ulimit -Hn)\n",
                nconns, (unsigned long long)rl.rlim_cur);
        return 1;
    }
    common cm = {.nconns = nconns,
                 .nthreads = nthreads,
                 .server_pid = server_pid,
                 .seconds = seconds,
                 .warmup = warmup};
    cm.server.sin_family = AF_INET;
    cm.server.sin_port = htons((uint16_t)port);
    cm.server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atomic_init(&cm.threads_up, 0);
    atomic_init(&cm.measure_from, 0);
    loader *ls = aligned_alloc(_Alignof(loader), sizeof *ls * (size_t)nthreads);
    if (!ls)
        die("out of memory", -1);
    cm.loaders = ls;
    for (int t = 0; t < nthreads; t++) {
        loader *l = &ls[t];
        memset(l, 0, sizeof *l);
        l->cm = &cm;
        l->id = t;
        l->nconns = nconns / nthreads + (t < nconns % nthreads); /* those i with i % T == t */
        /* Together at most CONNECT_BATCH (nthreads <= MAX_THREADS keeps each share >= 1). */
        l->batch = CONNECT_BATCH / nthreads;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->cs = calloc((size_t)l->nconns, sizeof *l->cs);
        l->retry = malloc(sizeof(int) * (size_t)l->nconns);
        if (l->ep < 0 || !l->cs || !l->retry)
            die("out of memory or epoll", -1);
        for (int k = 0; k < l->nconns; k++)
            l->cs[k].fd = -1;
        atomic_init(&l->progress_ns, 0);
        atomic_init(&l->up, 0);
        l->srv_from = l->busy_from = -1;
    }

    /* Loader 0 runs on this thread (the only one with --threads 1); it takes the window's
     * start figures, and this thread the end ones as soon as its loop has ended. */
    for (int t = 1; t < nthreads; t++) {
        int err = pthread_create(&ls[t].thread, NULL, loader_thread, &ls[t]);
        if (err)
            die(strerror(err), -1);
    }
    drive(&ls[0]);
    int64_t cpu = cpu_ns() - ls[0].cpu_from; /* all threads: RUSAGE_SELF is the process */
    long long srv_user_to = 0;
    long long srv_to = server_pid > 0 ? proc_ticks(server_pid, &srv_user_to) : -1;
    long long busy_to = busy_ticks();
    long long srv_rss = server_pid > 0 ? proc_rss(server_pid) : -1; /* with every conn open */
    /* The other loaders end their loops at the same end: the join waits for that only. */
    uint64_t count = ls[0].count, *hist = ls[0].hist;
    for (int t = 1; t < nthreads; t++) {
        int err = pthread_join(ls[t].thread, NULL);
        if (err)
            die(strerror(err), -1);
        count += ls[t].count;
        for (unsigned b = 0; b < NBUCKETS; b++)
            hist[b] += ls[t].hist[b];
    }

    char extra[384] = "", threads_field[32] = "";
    long long srv_from = ls[0].srv_from, srv_user_from = ls[0].srv_user_from;
    long long busy_from = ls[0].busy_from;
    if (srv_from >= 0 && srv_to >= srv_from && busy_from >= 0 && busy_to >= busy_from) {
        double tick_ns = 1e9 / (double)sysconf(_SC_CLK_TCK);
        double srv_ns = (double)(srv_to - srv_from) * tick_ns;
        double user_ns = (double)(srv_user_to - srv_user_from) * tick_ns;
        double other_ns = (double)(busy_to - busy_from) * tick_ns - srv_ns - (double)cpu;
        snprintf(extra, sizeof extra,
                 ",\"server_cpu_pct\":%.0f,\"server_us_per_msg\":%.3f,"
                 "\"server_user_us_per_msg\":%.3f,\"other_cpu_pct\":%.0f,\"server_rss_bytes\":%lld",
                 100.0 * srv_ns / (seconds * 1e9), count ? srv_ns / 1e3 / (double)count : 0.0,
                 count ? user_ns / 1e3 / (double)count : 0.0,
                 other_ns > 0 ? 100.0 * other_ns / (seconds * 1e9) : 0.0, srv_rss);
    }
    if (nthreads > 1)
        snprintf(threads_field, sizeof threads_field, ",\"threads\":%d", nthreads);
    printf("{\"impl\":\"%s\",\"workload\":\"tcp_echo\",\"n\":%llu,\"value\":%.0f,"
           "\"unit\":\"msg/s\",\"conns\":%d%s,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"seconds\":%g,\"client_cpu_pct\":%.0f%s}\n",
           impl, (unsigned long long)count, (double)count / seconds, nconns, threads_field,
           percentile_us(hist, count, 0.50), percentile_us(hist, count, 0.99), seconds,
           100.0 * (double)cpu / (seconds * 1e9), extra);
    fflush(stdout);
    for (int t = 0; t < nthreads; t++) {
        for (int k = 0; k < ls[t].nconns; k++)
            if (ls[t].cs[k].fd >= 0)
                close(ls[t].cs[k].fd);
        close(ls[t].ep);
        free(ls[t].retry);
        free(ls[t].cs);
    }
    free(ls);
    return count ? 0 : 1;
}
