/* Tests of weft.hpp, the C++20 binding: a plain program (no Criterion, so that the same file
 * builds with g++ and clang++ alike) that runs each case in its own runtime of one worker and
 * exits non-zero on the first failed check, naming it. The backend comes from WEFT_BACKEND,
 * as for the C I/O suites. No timing asserts: orders are made explicit with channels. */
#include "check.h"
#include <weft.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace {

/* Runs fn as the main task of a one-worker runtime. */
template <class F>
void in_runtime(const char *name, F fn)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = 1;
    auto r = weft::runtime::run(&cfg, fn);
    CHECK(r.ok());
    std::printf("ok %s (%s)\n", name, std::getenv("WEFT_BACKEND") ? std::getenv("WEFT_BACKEND")
                                                                   : "default backend");
}

weft::task<int> forty_two() { co_return 42; }

weft::task<int> add(int a, int b)
{
    int x = co_await forty_two();
    co_return x + a + b;
}

weft::task<int> nested()
{
    int s = 0;
    for (int i = 0; i < 10; i++)
        s += co_await add(i, 1); /* 10 frames made and freed in turn */
    co_return s;
}

weft::task<void> thrower() { throw std::runtime_error("boom"); co_return; }

weft::task<std::string> catches()
{
    try {
        co_await thrower();
    } catch (const std::runtime_error &e) {
        co_return std::string("caught ") + e.what();
    }
    co_return "not caught";
}

weft::task<long> await_promise(weft_promise *p, std::atomic<bool> *awaiting)
{
    awaiting->store(true);
    auto r = co_await weft::wait(weft_promise_future(p), weft::forever);
    if (!r)
        co_return r.error();
    co_return *static_cast<long *>(r->value);
}

weft::task<int> sleeper()
{
    int64_t d = weft::deadline_in(2 * WEFT_MSEC);
    auto r = co_await weft::sleep_until(d);
    if (!r)
        co_return r.error();
    co_return weft::now() >= d ? 1 : -1; /* never before the deadline */
}

weft::task<int> times_out()
{
    weft_future *f = nullptr;
    if (weft_future_pending(&f) < 0)
        co_return -ENOMEM;
    weft::future_ptr never(f); /* freed also when the task is dropped at its await */
    auto r = co_await weft::wait(never, weft::deadline_in(WEFT_MSEC));
    co_return r.error();
}

weft::task<int> recv_times_out(weft::channel<int> ch)
{
    auto r = co_await ch.recv_async(weft::deadline_in(WEFT_MSEC)); /* the helper's path */
    co_return r.error();
}

/* Tells `ready` it is about to wait, then waits forever on `ch`; reports what its wait and a
 * later sleep returned. */
weft::task<std::pair<int, int>> wait_to_be_cancelled(weft::channel<int> ch, weft::channel<int> ready)
{
    (void)ready.try_send(1);
    auto r = co_await ch.recv_async();
    auto s = co_await weft::sleep_for(WEFT_SEC); /* cancelled: at once */
    co_return std::pair<int, int>(r.error(), s.error());
}

weft::task<int> wait_promise_to_be_cancelled(weft_promise *p, weft::channel<int> ready)
{
    (void)ready.try_send(1);
    auto r = co_await weft::wait(weft_promise_future(p));
    co_return r.error();
}

weft::task<int> channel_echo(weft::channel<int> in, weft::channel<int> out)
{
    int n = 0;
    for (;;) {
        auto v = co_await in.recv_async();
        if (!v)
            co_return v.error() == -EPIPE ? n : v.error();
        auto s = co_await out.send_async(*v * 2);
        if (!s)
            co_return s.error();
        n++;
    }
}

weft::task<int> echo_server_side(int fd)
{
    char buf[256];
    int total = 0;
    for (;;) {
        auto n = co_await weft::read(fd, buf, sizeof buf);
        if (!n)
            co_return n.error();
        if (*n == 0)
            co_return total;
        auto w = co_await weft::write(fd, buf, *n);
        if (!w)
            co_return w.error();
        total += (int)*n;
    }
}

weft::task<int> echo_client_side(int fd)
{
    const char msg[] = "hello, weft++";
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        auto w = co_await weft::write(fd, msg, sizeof msg);
        if (!w || *w != sizeof msg)
            co_return -1;
        char back[sizeof msg];
        std::size_t got = 0;
        while (got < sizeof msg) {
            auto n = co_await weft::read(fd, back + got, sizeof msg - got, weft::deadline_in(WEFT_SEC * 10));
            if (!n || *n == 0)
                co_return -2;
            got += *n;
        }
        ok += std::memcmp(back, msg, sizeof msg) == 0;
    }
    weft_shutdown(fd, SHUT_WR);
    co_return ok;
}

/* Sets a flag when destroyed: tells that a dropped frame ran its destructors. */
struct sentinel {
    std::atomic<int> *n;
    ~sentinel() { n->fetch_add(1); }
};

weft::task<int> dropped_while_waiting(weft::channel<int> ch, std::atomic<int> *destroyed)
{
    sentinel s{destroyed};
    auto r = co_await ch.recv_async(); /* forever: the block_on's deadline drops the task */
    co_return r.error();
}

weft::task<int> sleep_and_return(int i)
{
    auto r = co_await weft::sleep_for(WEFT_MSEC);
    co_return r ? i : r.error();
}

weft::task<long> fan_out(int n)
{
    std::vector<weft::task_handle<int>> hs;
    for (int i = 0; i < n; i++) {
        auto h = weft::spawn(sleep_and_return(i));
        if (!h)
            co_return h.error();
        hs.push_back(std::move(*h));
    }
    long sum = 0;
    for (auto &h : hs) {
        auto r = co_await h;
        if (!r)
            co_return r.error();
        sum += *r;
    }
    co_return sum;
}

void *lock_try(void *arg)
{
    auto *m = static_cast<weft::mutex *>(arg);
    auto g = m->try_lock();
    return (void *)(intptr_t)g.error();
}

/* Unlocks a guard that another task locked: weft refuses, and the guard must say so. */
void *unlock_foreign(void *arg)
{
    auto *g = static_cast<weft::lock_guard *>(arg);
    int r = g->unlock();
    return (void *)(intptr_t)(r == -EPERM && g->owns_lock() ? 1 : 0);
}

/* weft::call with a callable that throws: the co_await rethrows (it was std::terminate). */
weft::task<int> call_throws()
{
    try {
        (void)co_await weft::call([]() -> long { throw std::runtime_error("in call"); });
    } catch (const std::runtime_error &) {
        co_return 1;
    }
    co_return 0;
}

/* Parks on `go` until cancelled, then tries five receives from a channel that has values and
 * a send into one with room: each must be -ECANCELED (they used to complete). */
weft::task<int> cancelled_consumer(weft::channel<int> ch, weft::channel<int> ready,
                                   weft::channel<int> go)
{
    (void)ready.try_send(1);
    auto g = co_await go.recv_async();
    int completed = g.ok() ? 100 : 0;
    for (int i = 0; i < 5; i++)
        completed += (co_await ch.recv_async()).ok();
    completed += (co_await ch.send_async(7)).ok();
    co_return completed;
}

/* A value with no default constructor: trivially copyable, which is all weft::channel<T>
 * asks for (it copies T as bytes). */
struct point {
    int x, y;
    point(int x_, int y_) : x(x_), y(y_) {}
};
static_assert(std::is_trivially_copyable_v<point> && !std::is_default_constructible_v<point>);

/* Receives points from `in` through the awaitables, sends each back moved by (1, 1). */
weft::task<int> point_mover(weft::channel<point> in, weft::channel<point> out)
{
    int n = 0;
    for (;;) {
        auto p = co_await in.recv_async();
        if (!p)
            co_return p.error() == -EPIPE ? n : p.error();
        auto s = co_await out.send_async(point(p->x + 1, p->y + 1));
        if (!s)
            co_return s.error();
        n++;
    }
}

/* Awaits one task twice: the second await gave a moved-from (empty) string, silently. */
weft::task<std::string> hundred_x() { co_return std::string(100, 'x'); }
weft::task<int> awaits_twice()
{
    auto t = hundred_x();
    std::string first = co_await t;
    int second = 0;
    try {
        second = static_cast<int>((co_await t).size()) + 1;
    } catch (const std::bad_optional_access &) {
        second = -1;
    }
    co_return static_cast<int>(first.size()) * 10 + second;
}

/* Awaits that complete at once, in a loop and nested: each nested a C++ frame on the
 * awaiting stack where the compiler did not make symmetric transfer a tail call (g++ -O0:
 * the main task's 64 KiB stack overflowed in 100 awaits). */
weft::task<long> count_down(int n)
{
    if (n == 0)
        co_return 0;
    co_return 1 + co_await count_down(n - 1);
}
weft::task<long> many_sync_awaits(int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += co_await forty_two();
    co_return s;
}

/* Counts its destruction into *n, once: a moved-from one counts nothing. */
struct counted {
    std::atomic<int> *n;
    explicit counted(std::atomic<int> *c) noexcept : n(c) {}
    counted(counted &&o) noexcept : n(std::exchange(o.n, nullptr)) {}
    ~counted()
    {
        if (n)
            n->fetch_add(1);
    }
};
weft::task<counted> make_counted(std::atomic<int> *n) { co_return counted(n); }
weft::task<int> throw_counted(std::atomic<int> *n) { throw counted(n); co_return 0; }
weft::task<int> never_started(counted c) { co_return c.n ? 1 : 0; }

/* A chain of nested awaits for weft to drop: the innermost frame tells `ready` and parks on
 * `never` (a future that never completes), or on a receive from `parked_on` (a helper task's
 * await) where that is set. */
struct deep_chain {
    weft_future *never = nullptr;
    weft::channel<int> ready;
    weft::channel<int> *parked_on = nullptr;
    std::atomic<int> frames{0}; /* frames destroyed */
    std::atomic<int> held{0};   /* what the frames held, destroyed (counted) */
    int blocked = 0;            /* what block_on_deep's block_on returned */
    int next_level = 0;         /* the level whose frame goes next: the innermost first */
    int out_of_order = 0;       /* frames that went before a frame they awaited */
    deep_chain()
    {
        CHECK_EQ(weft_future_pending(&never), 0);
        ready = *weft::channel<int>::make(1);
    }
    ~deep_chain() { weft_future_destroy(never); }
    /* What held counts once a chain from level n down to 0 is destroyed. */
    static int held_by(int n) { return 3 * (n / 100 + 1); }
};

/* Level n of a chain: every 100th level also holds a task it never started, the value of a
 * child that finished and the exception of one that threw (caught; it stays in that child's
 * finished frame), so that the drop must destroy each exactly once. */
weft::task<int> park_deep(deep_chain *c, int n)
{
    sentinel s{&c->frames};
    struct in_order {
        deep_chain *c;
        int n;
        ~in_order() { c->out_of_order += c->next_level++ != n; }
    } order{c, n};
    weft::task<int> idle;
    std::optional<counted> value;
    weft::task<int> threw;
    if (n % 100 == 0) {
        idle = never_started(counted(&c->held));
        value.emplace(co_await make_counted(&c->held));
        threw = throw_counted(&c->held);
        try {
            (void)co_await threw;
        } catch (const counted &) {
        }
    }
    if (n > 0)
        co_return co_await park_deep(c, n - 1);
    (void)c->ready.try_send(1);
    if (c->parked_on)
        co_return (co_await c->parked_on->recv_async()).error();
    co_return (co_await weft::wait(c->never)).error();
}

/* Awaits a task that its caller owns (by reference). */
weft::task<int> await_borrowed(weft::task<int> &t) { co_return co_await t; }

void *block_on_deep(void *arg)
{
    auto *c = static_cast<deep_chain *>(arg);
    c->blocked = weft::block_on(park_deep(c, 100000)).error();
    return nullptr;
}

/* Awaits a sleep made elsewhere (its timer's failure is reported here, as the call's). */
using sleep_t = decltype(weft::sleep_for(0));
weft::task<int> await_sleep(sleep_t s)
{
    auto r = co_await std::move(s);
    co_return r.error();
}

/* Awaits a channel it holds by reference only: its owner drops the last handle meanwhile. */
weft::task<int> recv_borrowed(weft::channel<int> &ch)
{
    auto r = co_await ch.recv_async();
    co_return r.ok() ? 1000 + *r : r.error();
}
weft::task<int> send_borrowed(weft::channel<int> &ch)
{
    auto r = co_await ch.send_async(5);
    co_return r.error();
}

} // namespace

int main()
{
    in_runtime("value", [] {
        auto r = weft::block_on(forty_two());
        CHECK(r.ok());
        CHECK_EQ(*r, 42);
    });
    in_runtime("task returned by the main function", [] { return add(1, 2); });
    in_runtime("nested co_await", [] {
        auto r = weft::block_on(nested());
        CHECK_EQ(*r, 10 * 42 + 45 + 10);
    });
    in_runtime("exception through co_await", [] {
        auto r = weft::block_on(catches());
        CHECK(*r == "caught boom");
        bool thrown = false;
        try {
            (void)weft::block_on(thrower());
        } catch (const std::runtime_error &) {
            thrown = true;
        }
        CHECK(thrown);
    });
    in_runtime("exception through a spawned task's join", [] {
        /* It was lost: the join said -ECANCELED (the task had no result), and so did a
         * second join, which is -EINVAL. */
        auto h = weft::spawn(thrower());
        CHECK(h.ok());
        bool thrown = false;
        try {
            (void)h->join();
        } catch (const std::runtime_error &) {
            thrown = true;
        }
        CHECK(thrown);
        CHECK_EQ(h->join().error(), -EINVAL);
    });
    in_runtime("exception from weft::call's callable", [] {
        auto r = weft::block_on(call_throws());
        CHECK(r.ok());
        CHECK_EQ(*r, 1);
    });
    in_runtime("channel awaits of a cancelled task", [] {
        auto ch = *weft::channel<int>::make(16);
        auto ready = *weft::channel<int>::make(1);
        auto go = *weft::channel<int>::make(0);
        for (int i = 0; i < 5; i++)
            CHECK(ch.try_send(i).ok());
        auto h = weft::spawn(cancelled_consumer(ch, ready, go));
        CHECK(h.ok());
        CHECK(ready.recv().ok());
        h->cancel();
        auto j = h->join();
        CHECK(j.ok());
        CHECK_EQ(*j, 0);
        CHECK_EQ(*ch.try_recv(), 0); /* the values are all still there */
    });
    in_runtime("promise resolved from another thread", [] {
        weft_promise *p = nullptr;
        CHECK_EQ(weft_promise_create(&p), 0);
        static long value = 4711;
        std::atomic<bool> awaiting{false};
        auto h = weft::spawn(await_promise(p, &awaiting));
        CHECK(h.ok());
        std::thread th([p, &awaiting] {
            while (!awaiting.load())
                std::this_thread::yield();
            weft_promise_resolve(p, &value);
        });
        auto r = h->join();
        th.join();
        CHECK(r.ok());
        CHECK_EQ(*r, 4711);
        weft_promise_release(p);
    });
    in_runtime("sleep with a deadline", [] {
        auto r = weft::block_on(sleeper());
        CHECK_EQ(*r, 1);
    });
    in_runtime("timeouts", [] {
        CHECK_EQ(*weft::block_on(times_out()), -ETIMEDOUT);
        auto ch = weft::channel<int>::make(0);
        CHECK(ch.ok());
        CHECK_EQ(*weft::block_on(recv_times_out(*ch)), -ETIMEDOUT);
        auto r = weft::block_on(times_out(), weft::deadline_in(-1)); /* block_on's own */
        CHECK_EQ(r.error(), -ETIMEDOUT);
    });
    in_runtime("cancellation", [] {
        auto ch = weft::channel<int>::make(0);
        auto ready = weft::channel<int>::make(1);
        auto h = weft::spawn(wait_to_be_cancelled(*ch, *ready));
        CHECK(h.ok());
        CHECK(ready->recv().ok()); /* it is about to wait (or waits) */
        CHECK(!h->done());
        h->cancel();
        auto r = h->join();
        CHECK(r.ok());
        CHECK_EQ(r->first, -ECANCELED);
        CHECK_EQ(r->second, -ECANCELED);
        CHECK_EQ(h->join().error(), -EINVAL); /* joined already */

        weft_promise *p = nullptr;
        CHECK_EQ(weft_promise_create(&p), 0);
        auto h2 = weft::spawn(wait_promise_to_be_cancelled(p, *ready));
        CHECK(ready->recv().ok());
        h2->cancel();
        CHECK_EQ(*h2->join(), -ECANCELED);
        weft_promise_release(p);
    });
    in_runtime("a dropped task runs its destructors once its helper has returned", [] {
        auto ch = weft::channel<int>::make(0);
        std::atomic<int> destroyed{0};
        auto r = weft::block_on(dropped_while_waiting(*ch, &destroyed), weft::deadline_in(WEFT_MSEC));
        CHECK_EQ(r.error(), -ETIMEDOUT);
        for (int i = 0; i < 1000 && destroyed.load() == 0; i++)
            weft_yield();
        CHECK_EQ(destroyed.load(), 1);
    });
    in_runtime("awaits that complete at once, many and deeply nested", [] {
        CHECK_EQ(*weft::block_on(many_sync_awaits(100000)), 42L * 100000);
        CHECK_EQ(*weft::block_on(count_down(100000)), 100000);
        auto h = weft::spawn(count_down(100000)); /* polled on the worker's own stack */
        CHECK(h.ok());
        CHECK_EQ(*h->join(), 100000);
    });
    /* Dropped chains of 100000 nested awaits, on the main task's default 64 KiB stack: their
     * destruction nested a destructor call per await where the chain was dropped (about 1000
     * fitted at -O2, 100 at -O0); each frame now goes in turn, the innermost first. */
    in_runtime("a chain 100000 awaits deep, dropped at block_on's deadline", [] {
        deep_chain c;
        auto r = weft::block_on(park_deep(&c, 100000), weft::deadline_in(WEFT_MSEC));
        CHECK_EQ(r.error(), -ETIMEDOUT);
        CHECK(c.ready.try_recv().ok()); /* it was parked at its innermost await */
        CHECK_EQ(c.frames.load(), 100001);
        CHECK_EQ(c.held.load(), deep_chain::held_by(100000));
        CHECK_EQ(c.out_of_order, 0);
    });
    in_runtime("a chain 100000 awaits deep, dropped while its helper task runs", [] {
        /* The drop waits for the helper; its end destroys the frames, on its own stack. */
        deep_chain c;
        auto ch = *weft::channel<int>::make(0);
        c.parked_on = &ch;
        auto r = weft::block_on(park_deep(&c, 100000), weft::deadline_in(WEFT_MSEC));
        CHECK_EQ(r.error(), -ETIMEDOUT);
        CHECK(c.ready.try_recv().ok());
        for (int i = 0; i < 1000 && c.frames.load() == 0; i++)
            weft_yield();
        CHECK_EQ(c.frames.load(), 100001);
        CHECK_EQ(c.held.load(), deep_chain::held_by(100000));
    });
    in_runtime("a chain 100000 awaits deep, dropped when block_on's caller is cancelled", [] {
        deep_chain c;
        weft_task *t = nullptr;
        CHECK_EQ(weft_spawn(&t, block_on_deep, &c, nullptr), 0); /* the default stack */
        CHECK(c.ready.recv().ok());
        CHECK_EQ(weft_cancel(t), 0);
        void *res = nullptr;
        CHECK_EQ(weft_join(t, &res, weft::forever), 0);
        CHECK(res == WEFT_CANCELED);
        CHECK_EQ(c.blocked, -ECANCELED);
        CHECK_EQ(c.frames.load(), 100001);
        CHECK_EQ(c.held.load(), deep_chain::held_by(100000));
    });
    {
        deep_chain c;
        in_runtime("a chain 100000 awaits deep, dropped by the runtime's shutdown", [&c] {
            auto h = weft::spawn(park_deep(&c, 100000));
            CHECK(h.ok());
            CHECK(c.ready.recv().ok()); /* parked: the shutdown drops it */
        }); /* on the worker thread's own stack: 8 MiB held it but under ASan (g++ -O0) */
        CHECK_EQ(c.frames.load(), 100001);
        CHECK_EQ(c.held.load(), deep_chain::held_by(100000));
    }
    in_runtime("a dropped chain through a task that its caller owns", [] {
        /* The caller's task owns the chain's inner frames: the drop destroys them with the
         * rest, innermost first, and empties the caller's task (they were left to its
         * destructor, later, and destroyed nested from there). */
        deep_chain c;
        auto inner = park_deep(&c, 1000);
        auto r = weft::block_on(await_borrowed(inner), weft::deadline_in(WEFT_MSEC));
        CHECK_EQ(r.error(), -ETIMEDOUT);
        CHECK_EQ(c.frames.load(), 1001);
        CHECK_EQ(c.held.load(), deep_chain::held_by(1000));
        CHECK_EQ(c.out_of_order, 0);
        CHECK(!inner.valid());
    });
    in_runtime("the last channel handle dropped while a task awaits it", [] {
        /* The await's helper task first ran after the owner's release had freed the
         * channel (a use after free, ASan); the awaiter now holds its own reference until
         * it completes (here: cancelled). */
        auto *rx = new weft::channel<int>(*weft::channel<int>::make(0));
        auto *tx = new weft::channel<int>(*weft::channel<int>::make(0));
        auto hr = weft::spawn(recv_borrowed(*rx));
        auto hs = weft::spawn(send_borrowed(*tx));
        CHECK(hr.ok() && hs.ok());
        weft_yield(); /* both try, find nothing, and queue their helpers behind this task */
        delete rx;
        delete tx;
        weft_yield(); /* the helpers run and wait */
        hr->cancel();
        hs->cancel();
        CHECK_EQ(*hr->join(), -ECANCELED);
        CHECK_EQ(*hs->join(), -ECANCELED);
    });
    in_runtime("channel round trip", [] {
        auto in = weft::channel<int>::make(0); /* rendezvous: every await waits */
        auto out = weft::channel<int>::make(4);
        auto h = weft::spawn(channel_echo(*in, *out));
        CHECK(h.ok());
        for (int i = 0; i < 100; i++) {
            CHECK(in->send(i).ok());
            auto v = out->recv(weft::deadline_in(10 * WEFT_SEC));
            CHECK(v.ok());
            CHECK_EQ(*v, 2 * i);
        }
        CHECK(in->close().ok());
        CHECK_EQ(*h->join(), 100);
        CHECK_EQ(out->try_recv().error(), -EAGAIN);
    });
    in_runtime("channel of a type with no default constructor", [] {
        /* It did not compile: recv, try_recv and the awaiters default-constructed a T to
         * receive into. */
        auto in = weft::channel<point>::make(0); /* rendezvous: the awaits wait */
        auto out = weft::channel<point>::make(1);
        CHECK(in.ok() && out.ok());
        auto h = weft::spawn(point_mover(*in, *out));
        CHECK(h.ok());
        for (int i = 0; i < 10; i++) {
            CHECK(in->send(point(i, -i)).ok());
            auto p = out->recv(weft::deadline_in(10 * WEFT_SEC));
            CHECK(p.ok());
            CHECK_EQ(p->x, i + 1);
            CHECK_EQ(p->y, 1 - i);
        }
        CHECK(in->close().ok());
        CHECK_EQ(*h->join(), 10);
        CHECK(out->try_send(point(5, 6)).ok());
        auto q = out->try_recv();
        CHECK(q.ok());
        CHECK_EQ(q->x * 10 + q->y, 56);
        CHECK_EQ(out->try_recv().error(), -EAGAIN);
    });
    in_runtime("mutex guard", [] {
        weft::mutex m;
        {
            auto g = m.lock();
            CHECK(g.ok());
            CHECK(g->owns_lock());
            CHECK_EQ(m.lock(weft::deadline_in(0)).error(), -EDEADLK);
            weft_task *t = nullptr;
            CHECK_EQ(weft_spawn(&t, lock_try, &m, nullptr), 0);
            void *res = nullptr;
            CHECK_EQ(weft_join(t, &res, weft::forever), 0);
            CHECK_EQ((intptr_t)res, -EBUSY);
            weft::lock_guard moved = std::move(*g);
            CHECK(!g->owns_lock());
            CHECK(moved.owns_lock());
        } /* unlocked here */
        weft_task *t = nullptr;
        CHECK_EQ(weft_spawn(&t, lock_try, &m, nullptr), 0);
        void *res = nullptr;
        CHECK_EQ(weft_join(t, &res, weft::forever), 0);
        CHECK_EQ((intptr_t)res, 0);
    });
    in_runtime("a guard unlocked by a task that does not hold the mutex", [] {
        /* weft refused the other task's unlock (-EPERM) and the guard let the mutex go
         * anyway: owns_lock() said false while the mutex stayed locked, for good. Now the
         * guard keeps it, and its owner's unlock releases it. */
        weft::mutex m;
        auto g = m.lock();
        CHECK(g.ok());
        weft_task *t = nullptr;
        CHECK_EQ(weft_spawn(&t, unlock_foreign, &*g, nullptr), 0);
        void *res = nullptr;
        CHECK_EQ(weft_join(t, &res, weft::forever), 0);
        CHECK_EQ((intptr_t)res, 1);
        CHECK(g->owns_lock());
        CHECK_EQ(g->unlock(), 0);
        CHECK(!g->owns_lock());
        CHECK_EQ(weft_spawn(&t, lock_try, &m, nullptr), 0);
        CHECK_EQ(weft_join(t, &res, weft::forever), 0);
        CHECK_EQ((intptr_t)res, 0); /* free: the try took it (and it ended holding it) */
    });
    in_runtime("echo over a socketpair", [] {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        auto srv = weft::spawn(echo_server_side(sv[0]));
        auto cli = weft::spawn(echo_client_side(sv[1]));
        CHECK(srv.ok() && cli.ok());
        CHECK_EQ(*cli->join(), 20);
        CHECK_EQ(*srv->join(), 20 * (int)sizeof "hello, weft++");
        weft_close(sv[0]);
        weft_close(sv[1]);
    });
    in_runtime("fan-out of spawned tasks", [] {
        auto r = weft::block_on(fan_out(100));
        CHECK_EQ(*r, 99 * 100 / 2);
    });
    in_runtime("a task awaited twice", [] {
        auto r = weft::block_on(awaits_twice());
        CHECK(r.ok());
        CHECK_EQ(*r, 100 * 10 - 1); /* 100 bytes, then the precondition's exception */
    });
    {
        /* Made outside a runtime: weft_timer_future said -EPERM, and the await reported
         * -EINVAL (the poll of the missing timer overwrote the call's error). */
        sleep_t early = weft::sleep_for(WEFT_MSEC);
        in_runtime("a sleep's own error, reported at its await", [&early] {
            CHECK_EQ(*weft::block_on(await_sleep(std::move(early))), -EPERM);
            CHECK_EQ(*weft::block_on(await_sleep(weft::sleep_for(0))), 0);
        });
    }
    in_runtime("errors as values", [] {
        CHECK_EQ(weft::block_on(weft::task<int>()).error(), -EINVAL);
        CHECK_EQ(weft::spawn(weft::task<int>()).error(), -EINVAL);
        weft::task_handle<int> empty;
        CHECK_EQ(empty.join().error(), -EINVAL);
    });
    /* Outside a runtime: nothing runs, nothing leaks. */
    CHECK_EQ(weft::block_on(forty_two()).error(), -EPERM);

    /* Every frame made on this thread was freed on it (one worker: the main thread). */
    weft::frame_stats st = weft::frame_stats_get();
    CHECK(st.nallocs > 100);
    CHECK_EQ(st.nallocs, st.nfrees);
    std::printf("ok frames: %llu made, %llu freed, %llu from the cache; %d checks\n",
                (unsigned long long)st.nallocs, (unsigned long long)st.nfrees,
                (unsigned long long)st.nhits, nchecks);
    return 0;
}
