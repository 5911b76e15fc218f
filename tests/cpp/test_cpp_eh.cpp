/* C++ exception-handling state per task (src/eh_state.h): a task that parks inside a catch
 * block, or in a destructor run by unwinding, finds its own exception and its own count of
 * uncaught exceptions when it resumes, whatever the tasks that ran meanwhile threw and caught,
 * and on whichever worker it resumes. Tasks written against the C API, in C++. A plain
 * program (runs under every sanitizer): exits non-zero on the first failed check, naming it.
 * Orders come from flags and yields, never from time. */
#include "check.h"
#include <weft.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

namespace {

/* The message of the exception being handled now ("" when none), read through
 * std::current_exception, as a handler that parked would. */
std::string handled_now()
{
    std::exception_ptr p = std::current_exception();
    if (!p)
        return "";
    try {
        std::rethrow_exception(p);
    } catch (const std::exception &e) {
        return e.what();
    } catch (...) {
        return "?";
    }
}

/* What `throw;` rethrows now: the message, caught again here. */
std::string rethrown_now()
{
    try {
        throw;
    } catch (const std::exception &e) {
        return e.what();
    }
}

void run(const char *name, weft_config *cfg, weft_fn fn, void *arg)
{
    void *res = nullptr;
    CHECK(weft_run(cfg, fn, arg, &res) == 0);
    CHECK(res == nullptr);
    std::printf("ok %s\n", name);
}

/* ---- Two handlers parked at once on one worker ------------------------------------------ */

struct pair_state {
    std::atomic<int> a_in{0}, b_in{0}, a_done{0};
    std::string a_seen, a_rethrown, b_seen, b_rethrown, a_after, b_after;
};

void *handler_a(void *arg)
{
    auto *s = static_cast<pair_state *>(arg);
    try {
        throw std::runtime_error("from a");
    } catch (const std::exception &) {
        s->a_in = 1;
        while (!s->b_in) /* b is inside its own catch block, parked */
            weft_yield();
        s->a_seen = handled_now();
        s->a_rethrown = rethrown_now();
    } /* a's exception ends here, while b's is still being handled */
    s->a_after = handled_now();
    s->a_done = 1;
    return nullptr;
}

void *handler_b(void *arg)
{
    auto *s = static_cast<pair_state *>(arg);
    while (!s->a_in)
        weft_yield();
    try {
        throw std::runtime_error("from b");
    } catch (const std::exception &) {
        s->b_in = 1;
        while (!s->a_done)
            weft_yield();
        s->b_seen = handled_now();
        s->b_rethrown = rethrown_now();
    }
    s->b_after = handled_now();
    return nullptr;
}

void *two_handlers(void *)
{
    pair_state s;
    weft_task *a, *b;
    CHECK(weft_spawn(&a, handler_a, &s, nullptr) == 0);
    CHECK(weft_spawn(&b, handler_b, &s, nullptr) == 0);
    CHECK(weft_join(a, nullptr, WEFT_FOREVER) == 0);
    CHECK(weft_join(b, nullptr, WEFT_FOREVER) == 0);
    /* Before: a's `throw;` rethrew b's exception (the thread's list had b's in front), and
     * a's catch block then ended b's. */
    CHECK(s.a_seen == "from a");
    CHECK(s.a_rethrown == "from a");
    CHECK(s.b_seen == "from b");
    CHECK(s.b_rethrown == "from b");
    CHECK(s.a_after.empty());
    CHECK(s.b_after.empty());
    CHECK(handled_now().empty()); /* the main task saw none of it */
    return nullptr;
}

/* ---- uncaught_exceptions across a park in a destructor ------------------------------------ */

struct unwind_state {
    std::atomic<int> in_dtor{0}, other_done{0};
    int before = -1, after = -1, other = -1;
};

struct parks_in_dtor {
    unwind_state *s;
    ~parks_in_dtor()
    {
        s->before = std::uncaught_exceptions();
        s->in_dtor = 1;
        while (!s->other_done)
            weft_yield();
        s->after = std::uncaught_exceptions();
    }
};

void *unwinder(void *arg)
{
    auto *s = static_cast<unwind_state *>(arg);
    try {
        parks_in_dtor d{s};
        throw std::logic_error("unwinding");
    } catch (const std::logic_error &) {
    }
    return nullptr;
}

void *bystander(void *arg)
{
    auto *s = static_cast<unwind_state *>(arg);
    while (!s->in_dtor)
        weft_yield();
    s->other = std::uncaught_exceptions();
    s->other_done = 1;
    return nullptr;
}

void *uncaught_counts(void *)
{
    unwind_state s;
    weft_task *a, *b;
    CHECK(weft_spawn(&a, unwinder, &s, nullptr) == 0);
    CHECK(weft_spawn(&b, bystander, &s, nullptr) == 0);
    CHECK(weft_join(a, nullptr, WEFT_FOREVER) == 0);
    CHECK(weft_join(b, nullptr, WEFT_FOREVER) == 0);
    CHECK(s.before == 1);
    CHECK(s.after == 1);
    CHECK(s.other == 0); /* before: 1, the unwinding task's */
    CHECK(std::uncaught_exceptions() == 0);
    return nullptr;
}

/* ---- Handlers that yield on several workers (stealing: they may move) -------------------- */

constexpr int kMovers = 8;
constexpr int kYields = 500;

struct mover_arg {
    int index;
    std::atomic<int> *bad;
};

void *mover(void *arg)
{
    auto *m = static_cast<mover_arg *>(arg);
    std::string mine = "mover " + std::to_string(m->index);
    try {
        throw std::runtime_error(mine);
    } catch (const std::exception &) {
        for (int i = 0; i < kYields; i++) {
            weft_yield();
            if (handled_now() != mine || std::uncaught_exceptions() != 0)
                m->bad->fetch_add(1);
        }
        if (rethrown_now() != mine)
            m->bad->fetch_add(1);
    }
    if (!handled_now().empty())
        m->bad->fetch_add(1);
    return nullptr;
}

void *many_workers(void *)
{
    std::atomic<int> bad{0};
    mover_arg args[kMovers];
    weft_task *t[kMovers];
    for (int i = 0; i < kMovers; i++) {
        args[i] = {i, &bad};
        CHECK(weft_spawn(&t[i], mover, &args[i], nullptr) == 0);
    }
    for (int i = 0; i < kMovers; i++)
        CHECK(weft_join(t[i], nullptr, WEFT_FOREVER) == 0);
    CHECK(bad.load() == 0);
    return nullptr;
}

/* ---- weft_exit inside a handler: the exception ends with the task ----------------------- */

std::atomic<int> counted_alive{0};

struct counted_error : std::runtime_error {
    counted_error() : std::runtime_error("counted")
    {
        counted_alive++;
    }
    counted_error(const counted_error &o) : std::runtime_error(o)
    {
        counted_alive++;
    }
    ~counted_error() override
    {
        counted_alive--;
    }
};

void *exits_in_handler(void *)
{
    try {
        throw counted_error();
    } catch (const counted_error &) {
        weft_yield();
        weft_exit(nullptr);
    }
    return nullptr;
}

void *next_on_the_stack(void *arg)
{
    *static_cast<std::string *>(arg) = handled_now();
    return nullptr;
}

void *exit_in_handler(void *)
{
    weft_task *a, *b;
    std::string seen = "unset";
    CHECK(weft_spawn(&a, exits_in_handler, nullptr, nullptr) == 0);
    CHECK(weft_join(a, nullptr, WEFT_FOREVER) == 0);
    /* Its stack, back in the pool, is the next task's. Before: the thread's record still
     * held the exception, and this task found it being handled. */
    CHECK(weft_spawn(&b, next_on_the_stack, &seen, nullptr) == 0);
    CHECK(weft_join(b, nullptr, WEFT_FOREVER) == 0);
    CHECK(seen.empty());
    CHECK(counted_alive.load() == 0); /* the exception was destroyed, not leaked */
    CHECK(handled_now().empty());
    return nullptr;
}

/* An exception whose destructor parks, ended by a weft_exit inside its catch block: the
 * task may resume on another worker inside weft_exit, which must carry on from there (it
 * went on with the worker it had left: a crash in stealing mode, and on one worker a loop
 * for ever once a hand-off had moved the task to another thread). */
std::atomic<int> parking_alive{0};

struct parking_error : std::runtime_error {
    parking_error() : std::runtime_error("parks")
    {
        parking_alive++;
    }
    parking_error(const parking_error &o) : std::runtime_error(o)
    {
        parking_alive++;
    }
    ~parking_error() override
    {
        weft_yield();
        weft_yield();
        parking_alive--;
    }
};

void *exits_with_a_parking_exception(void *)
{
    try {
        throw parking_error();
    } catch (const parking_error &) {
        weft_yield();
        weft_exit((void *)7);
    }
    return nullptr;
}

void *spins(void *arg)
{
    auto *stop = static_cast<std::atomic<int> *>(arg);
    while (!*stop)
        weft_yield();
    return nullptr;
}

void *exit_with_parking_destructors(void *)
{
    constexpr int kTasks = 32;
    std::atomic<int> stop{0};
    weft_task *t[kTasks], *s[kTasks];
    for (int i = 0; i < kTasks; i++) {
        CHECK(weft_spawn(&t[i], exits_with_a_parking_exception, nullptr, nullptr) == 0);
        CHECK(weft_spawn(&s[i], spins, &stop, nullptr) == 0);
    }
    for (int i = 0; i < kTasks; i++) {
        void *r = nullptr;
        CHECK(weft_join(t[i], &r, WEFT_FOREVER) == 0);
        CHECK(r == (void *)7);
    }
    stop = 1;
    for (int i = 0; i < kTasks; i++)
        CHECK(weft_join(s[i], nullptr, WEFT_FOREVER) == 0);
    CHECK(parking_alive.load() == 0);
    return nullptr;
}

/* ---- weft_run inside a handler: the runtime's tasks start with none ---------------------- */

/* A future polled on the loop's context (a stackless task): it saw weft_run's caller's. */
struct seen_future {
    weft_future base;
    std::string *seen;
};

int poll_seen(weft_future *f, weft_context *)
{
    auto *sf = reinterpret_cast<seen_future *>(f);
    *sf->seen = handled_now();
    weft_future_complete(f, 0, nullptr);
    return WEFT_READY;
}

const weft_future_ops seen_ops = {poll_seen, nullptr};

void *sees_nothing(void *arg)
{
    auto *seen = static_cast<std::string *>(arg);
    *seen = handled_now();
    weft_yield();
    *seen += "|" + handled_now();
    std::string polled = "unset";
    seen_future sf;
    weft_future_init(&sf.base, &seen_ops);
    sf.seen = &polled;
    weft_task *t;
    CHECK(weft_spawn_future(&t, &sf.base, nullptr) == 0);
    CHECK(weft_join(t, nullptr, WEFT_FOREVER) == 0);
    *seen += "|" + polled;
    return nullptr;
}

} // namespace

int main()
{
    weft_config one;
    weft_config_init(&one);
    one.workers = 1;
    run("two tasks parked in their catch blocks", &one, two_handlers, nullptr);
    run("uncaught_exceptions across a park in a destructor", &one, uncaught_counts, nullptr);
    run("weft_exit inside a catch block", &one, exit_in_handler, nullptr);

    for (int mode : {WEFT_MODE_STEALING, WEFT_MODE_SHARDED}) {
        weft_config cfg;
        weft_config_init(&cfg);
        cfg.workers = 2;
        cfg.mode = mode;
        cfg.move_started = 1;
        run(mode == WEFT_MODE_STEALING ? "handlers on two workers (stealing)"
                                       : "handlers on two workers (sharded)",
            &cfg, many_workers, nullptr);
        run(mode == WEFT_MODE_STEALING ? "weft_exit, parking destructors (stealing)"
                                       : "weft_exit, parking destructors (sharded)",
            &cfg, exit_with_parking_destructors, nullptr);
    }

    try {
        throw std::runtime_error("outside");
    } catch (const std::exception &) {
        std::string seen;
        run("weft_run inside a catch block", &one, sees_nothing, &seen);
        CHECK(seen == "||"); /* before: "outside|outside|outside" */
        CHECK(handled_now() == "outside");
        CHECK(rethrown_now() == "outside");
    }
    CHECK(handled_now().empty());
    std::printf("ok: %d checks\n", nchecks);
    return 0;
}
