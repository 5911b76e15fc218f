// ctx_switch peer: two Boost.Context fcontexts (make_fcontext / jump_fcontext, the raw
// assembly layer under boost::context) ping-pong, counting each one-way switch; prints one
// JSON line (impl "boost_context", ns/switch). Usage: ctx_switch [n]
//
// Main and the coroutine switch from different loops: weft's "two_site" shape. Measured as
// weft's bench_ctx_switch is: trials of 100,000 round trips, the median of the thread's CPU
// time per switch as the value and the median of wall time as wall_ns (a preempted trial's
// wall time grows by whole scheduler ticks on a shared machine).
#include <boost/context/detail/fcontext.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace ctx = boost::context::detail;

static constexpr std::size_t kStackSize = 64 * 1024;
static constexpr long kTrialRounds = 100000;
static volatile unsigned long sink;

static void co_entry(ctx::transfer_t t) {
    for (;;) {
        sink++;
        t = ctx::jump_fcontext(t.fctx, nullptr);  // one-way switch: coroutine -> main
    }
}

static double clock_ns(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char** argv) {
    long n = 10000000;  // one-way switches (contract)
    if (argc > 1) n = std::atol(argv[1]);
    if (n < 2) n = 2;
    long rounds = std::min(n / 2, kTrialRounds);  // each round = main->co + co->main
    long ntrials = (n / 2 + rounds - 1) / rounds;

    alignas(16) static char stack[kStackSize];
    ctx::fcontext_t co = ctx::make_fcontext(stack + kStackSize, kStackSize, co_entry);

    for (int i = 0; i < 1000; i++) co = ctx::jump_fcontext(co, nullptr).fctx;  // warm-up

    std::vector<double> cpu, wall;
    unsigned long before = sink;
    for (long r = 0; r < ntrials; r++) {
        double w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < rounds; i++) co = ctx::jump_fcontext(co, nullptr).fctx;  // main -> co
        double c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), w1 = clock_ns(CLOCK_MONOTONIC);
        cpu.push_back((c1 - c0) / double(2 * rounds));
        wall.push_back((w1 - w0) / double(2 * rounds));
    }

    if (sink - before != static_cast<unsigned long>(rounds * ntrials)) {
        std::fprintf(stderr, "sink mismatch\n");
        return 1;
    }
    std::printf("{\"impl\":\"boost_context\",\"workload\":\"ctx_switch\",\"n\":%ld,\"value\":%.3f,"
                "\"unit\":\"ns/switch\",\"shape\":\"two_site\",\"wall_ns\":%.3f,\"trials\":%ld}\n",
                2 * rounds * ntrials, median(cpu), median(wall), ntrials);
    return 0;
}
