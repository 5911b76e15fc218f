// ctx_switch peer: two Boost.Context fcontexts (make_fcontext / jump_fcontext, the raw
// assembly layer under boost::context) ping-pong, counting each one-way switch; prints one
// JSON line (impl "boost_context", ns/switch). Usage: ctx_switch [n]
#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

static constexpr std::size_t kStackSize = 64 * 1024;
static volatile unsigned long sink;

static void co_entry(ctx::transfer_t t) {
    for (;;) {
        sink++;
        t = ctx::jump_fcontext(t.fctx, nullptr);  // one-way switch: coroutine -> main
    }
}

static double now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

int main(int argc, char** argv) {
    long n = 10000000;  // one-way switches (contract)
    if (argc > 1) n = std::atol(argv[1]);
    if (n < 2) n = 2;
    long rounds = n / 2;  // each round = main->co + co->main
    n = rounds * 2;

    alignas(16) static char stack[kStackSize];
    ctx::fcontext_t co = ctx::make_fcontext(stack + kStackSize, kStackSize, co_entry);

    for (int i = 0; i < 1000; i++) co = ctx::jump_fcontext(co, nullptr).fctx;  // warm-up

    double t0 = now_ns();
    for (long i = 0; i < rounds; i++) co = ctx::jump_fcontext(co, nullptr).fctx;  // main -> co
    double t1 = now_ns();

    if (sink < static_cast<unsigned long>(rounds)) {
        std::fprintf(stderr, "sink mismatch\n");
        return 1;
    }
    std::printf("{\"impl\":\"boost_context\",\"workload\":\"ctx_switch\",\"n\":%ld,\"value\":%.2f,\"unit\":\"ns/switch\"}\n",
                n, (t1 - t0) / double(n));
    return 0;
}
