// Boost.Fiber peer for the workloads of bench-workloads.md: the single-thread ones on one
// thread with Boost.Fiber's default round_robin scheduler (impl "boost_fiber"), and the
// multi-core ones on N threads sharing fibers through its work_stealing algorithm (impl
// "boost_fiber_stealing", with "threads" and "mode" fields). Prints one JSON line per result.
//
// Usage: boost_fiber WORKLOAD [n] [--threads N]...
//   single-thread: yield spawn_join chan_pingpong (median of 5 repetitions in the process, as
//   weft's binaries do); multi-core: spawn_join_mt fanout_tree chan_mpmc (one run per thread
//   count, default --threads 1 --threads 2: each count runs in a forked child, because a
//   thread's scheduling algorithm is set once for its life).
//
// Stacks: every fiber gets a 16 KiB fixedsize_stack (malloc'd; Boost's default is 128 KiB),
// and glibc is told never to trim its heap, so a repetition reuses the pages the previous one
// faulted in (weft pools its stacks too). A fiber allocates its stack when it is created,
// not when it first runs, and touches two pages of it (about 9 KiB per fiber), so every
// posted fiber alive at once costs memory: spawn_join's 1,000,000 posted fibers would take
// 9 GiB. The posted forms therefore default to smaller counts, recorded in "n":
// spawn_join and spawn_join_mt 100,000, fanout_tree depth 16 (131,071 fibers, which the
// scheduler runs breadth-first, so all are alive). spawn_join also prints the full 1,000,000
// launched with launch::dispatch (impl "boost_fiber_dispatch": the child runs at once and
// the spawner resumes when it ends, libdill's order), which keeps one stack alive.
#include <boost/fiber/all.hpp>
#include <boost/fiber/algo/work_stealing.hpp>

#include <algorithm>
#include <climits>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <malloc.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fibers = boost::fibers;

static constexpr std::size_t kStack = 16 * 1024; /* weft's smallest class; ample for these */
static constexpr int kRepeats = 5;               /* as BENCH_REPEATS in bench_common.h */

static double now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

static long long status_bytes(const char *key) /* "VmHWM" etc. from /proc/self/status */
{
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    long long v = 0;
    std::size_t n = std::strlen(key);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, key, n) == 0 && line[n] == ':')
            v = std::atoll(line + n + 1) * 1024;
    std::fclose(f);
    return v;
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void emit(const char *impl, const char *workload, long n, double value, const char *unit,
                 const std::string &extra = "")
{
    std::printf("{\"impl\":\"%s\",\"workload\":\"%s\",\"n\":%ld,\"value\":%.3f,\"unit\":\"%s\"%s}\n",
                impl, workload, n, value, unit, extra.c_str());
    std::fflush(stdout);
}

template <typename Fn> static fibers::fiber spawn(Fn &&fn)
{
    return fibers::fiber(std::allocator_arg, fibers::fixedsize_stack(kStack),
                         std::forward<Fn>(fn));
}

static void fail(const char *what, long got, long want)
{
    std::fprintf(stderr, "boost_fiber: %s: %ld != %ld\n", what, got, want);
    std::exit(1);
}

/* ---------------------------------------------------------------- single thread */

static void bench_yield(long n)
{
    std::vector<double> v;
    for (int r = 0; r < kRepeats; r++) {
        long half = n / 2;
        auto body = [half] {
            for (long i = 0; i < half; i++)
                boost::this_fiber::yield();
        };
        fibers::fiber a = spawn(body), b = spawn(body);
        double t0 = now_ns();
        a.join();
        b.join();
        v.push_back((now_ns() - t0) / double(n));
    }
    emit("boost_fiber", "yield", n, median(v), "ns/yield");
}

static void bench_spawn_join_dispatch(long n)
{
    std::vector<double> v;
    for (int r = 0; r < kRepeats; r++) {
        long counter = 0;
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            fibers::fiber(fibers::launch::dispatch, std::allocator_arg,
                          fibers::fixedsize_stack(kStack), [&counter] { counter++; })
                .join();
        v.push_back((now_ns() - t0) / double(n));
        if (counter != n)
            fail("spawn_join counter", counter, n);
    }
    emit("boost_fiber_dispatch", "spawn_join", n, median(v), "ns/task");
}

static void bench_spawn_join(long n)
{
    std::vector<double> v;
    std::vector<fibers::fiber> fs;
    fs.reserve(std::size_t(n));
    long long rss0 = status_bytes("VmRSS");
    for (int r = 0; r < kRepeats; r++) {
        long counter = 0;
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            fs.push_back(spawn([&counter] { counter++; }));
        for (auto &f : fs)
            f.join();
        v.push_back((now_ns() - t0) / double(n));
        fs.clear();
        if (counter != n)
            fail("spawn_join counter", counter, n);
    }
    long long peak = status_bytes("VmHWM");
    emit("boost_fiber", "spawn_join", n, median(v), "ns/task",
         ",\"rss_bytes\":" + std::to_string(peak) + ",\"bytes_per_task\":" +
             std::to_string((peak - rss0) / n));
}

static void bench_chan_pingpong(long n)
{
    std::vector<double> v;
    for (int r = 0; r < kRepeats; r++) {
        /* Capacity 0: the contract's rendezvous, as weft's and Go's unbuffered channels. */
        fibers::unbuffered_channel<long> ping, pong;
        fibers::fiber t = spawn([&] {
            long x;
            while (ping.pop(x) == fibers::channel_op_status::success)
                pong.push(x + 1);
        });
        long x = 0;
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            ping.push(x);
            pong.pop(x);
        }
        v.push_back((now_ns() - t0) / double(n));
        ping.close();
        t.join();
        if (x != n)
            fail("chan_pingpong", x, n);
    }
    emit("boost_fiber", "chan_pingpong", n, median(v), "ns/roundtrip");
}

/* ---------------------------------------------------------------- multi-core */

/* N threads join one work_stealing group: this thread and N-1 helpers. The helpers block in
 * a fiber condition variable until the measurement is over, so their schedulers keep running
 * (stealing) meanwhile; suspend=true lets an idle one sleep instead of spinning, as Go's and
 * Tokio's idle workers park. */
struct pool {
    fibers::mutex mu;
    fibers::condition_variable cv;
    bool done = false;
    std::vector<std::thread> threads;

    explicit pool(unsigned n)
    {
        for (unsigned i = 1; i < n; i++)
            threads.emplace_back([this, n] {
                fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(n, true);
                std::unique_lock<fibers::mutex> lk(mu);
                cv.wait(lk, [this] { return done; });
            });
        fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(n, true);
    }
    ~pool()
    {
        {
            std::unique_lock<fibers::mutex> lk(mu);
            done = true;
        }
        cv.notify_all();
        for (auto &t : threads)
            t.join();
    }
};

static const char *kMt = "boost_fiber_stealing";

static std::string mt_extra(unsigned threads, const std::string &more = "")
{
    return ",\"threads\":" + std::to_string(threads) + ",\"mode\":\"stealing\"" + more;
}

static void bench_spawn_join_mt(long n, unsigned threads)
{
    pool p(threads);
    std::vector<double> v;
    std::vector<fibers::fiber> fs;
    fs.reserve(std::size_t(n));
    for (int r = 0; r < kRepeats; r++) {
        std::atomic<long> counter{0};
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            fs.push_back(spawn([&counter] { counter.fetch_add(1, std::memory_order_relaxed); }));
        for (auto &f : fs)
            f.join();
        v.push_back((now_ns() - t0) / double(n));
        fs.clear();
        if (counter.load() != n)
            fail("spawn_join_mt counter", counter.load(), n);
    }
    emit(kMt, "spawn_join_mt", n, median(v), "ns/task",
         mt_extra(threads, ",\"rss_bytes\":" + std::to_string(status_bytes("VmHWM"))));
}

static void fan(int depth, std::atomic<long> *count)
{
    count->fetch_add(1, std::memory_order_relaxed);
    if (depth == 0)
        return;
    fibers::fiber a = spawn([=] { fan(depth - 1, count); });
    fibers::fiber b = spawn([=] { fan(depth - 1, count); });
    a.join();
    b.join();
}

static void bench_fanout_tree(long depth, unsigned threads)
{
    pool p(threads);
    std::atomic<long> count{0};
    double t0 = now_ns();
    fan(int(depth), &count);
    double ms = (now_ns() - t0) / 1e6;
    long want = (2L << depth) - 1; /* nodes of a full binary tree of that depth */
    if (count.load() != want)
        fail("fanout_tree nodes", count.load(), want);
    emit(kMt, "fanout_tree", want, ms, "ms_wall",
         mt_extra(threads, ",\"depth\":" + std::to_string(depth) +
                               ",\"rss_bytes\":" + std::to_string(status_bytes("VmHWM"))));
}

static void bench_chan_mpmc(long n, unsigned threads)
{
    pool p(threads);
    std::vector<double> v;
    for (int r = 0; r < kRepeats; r++) {
        fibers::buffered_channel<long> ch(1024); /* the contract's capacity (a power of 2) */
        std::atomic<long> got{0};
        std::vector<fibers::fiber> prod, cons;
        double t0 = now_ns();
        for (unsigned i = 0; i < threads; i++) {
            long share = n / threads + (i < n % threads ? 1 : 0);
            prod.push_back(spawn([&ch, share] {
                for (long k = 0; k < share; k++)
                    ch.push(k);
            }));
            cons.push_back(spawn([&ch, &got] {
                long x, mine = 0;
                while (ch.pop(x) == fibers::channel_op_status::success)
                    mine++;
                got.fetch_add(mine, std::memory_order_relaxed);
            }));
        }
        for (auto &f : prod)
            f.join();
        ch.close(); /* consumers drain what is left, then see closed */
        for (auto &f : cons)
            f.join();
        v.push_back((now_ns() - t0) / double(n));
        if (got.load() != n)
            fail("chan_mpmc messages", got.load(), n);
    }
    emit(kMt, "chan_mpmc", n, median(v), "ns/msg", mt_extra(threads));
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s WORKLOAD [n] [--threads N]...\n", argv[0]);
        return 2;
    }
    mallopt(M_TRIM_THRESHOLD, INT_MAX); /* see the header: keep faulted-in stack pages */
    std::string w = argv[1];
    long n = 0;
    std::vector<unsigned> threads;
    for (int i = 2; i < argc; i++) {
        if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads.push_back(unsigned(std::atoi(argv[++i])));
        else
            n = std::atol(argv[i]);
    }
    if (w == "yield")
        bench_yield(n ? n : 10000000);
    else if (w == "spawn_join") {
        bench_spawn_join(n ? n : 100000);
        bench_spawn_join_dispatch(n ? n : 1000000);
    }
    else if (w == "chan_pingpong")
        bench_chan_pingpong(n ? n : 1000000);
    else if (w == "spawn_join_mt" || w == "fanout_tree" || w == "chan_mpmc") {
        if (threads.empty())
            threads = {1, 2};
        int status = 0;
        for (unsigned t : threads) {
            if (t < 1) {
                std::fprintf(stderr, "boost_fiber: --threads must be >= 1\n");
                return 2;
            }
            pid_t pid = fork(); /* a fresh process per count: see the header */
            if (pid == 0) {
                if (w == "spawn_join_mt")
                    bench_spawn_join_mt(n ? n : 100000, t);
                else if (w == "fanout_tree")
                    bench_fanout_tree(n ? n : 16, t);
                else
                    bench_chan_mpmc(n ? n : 10000000, t);
                std::_Exit(0);
            }
            int st = 1;
            if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
                status = 1;
        }
        return status;
    } else {
        std::fprintf(stderr, "boost_fiber: unknown workload '%s'\n", w.c_str());
        return 2;
    }
    return 0;
}
