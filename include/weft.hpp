/* weft.hpp: the C++20 binding of weft, header-only, over the public C API of weft.h alone.
 * C++20 coroutines (weft::task<T>) that co_await weft's futures, sleeps, I/O, channels and
 * each other; RAII handles for tasks, channels and locks; weft's deadlines and cancellation,
 * reported as values (weft::result<T>), never as exceptions.
 *
 * How a task runs. A weft::task<T> is a lazy coroutine. Its outermost frame is driven by a
 * "root": a weft_future whose poll resumes the coroutine, so that a task runs wherever a
 * weft future can: spawned as a stackless weft task (weft::spawn), or awaited from a stackful
 * task (weft::block_on, which is weft_await). co_await of another task runs it inline on the
 * same root (no spawn, no allocation beyond its frame): the awaiting frame suspends and the
 * root's loop resumes the child, and the child's end resumes its parent the same way, so the
 * stack stays flat however many awaits complete at once or nest, at every -O (symmetric
 * transfer is a tail call only where the compiler makes it one: g++ -O0 does not). When the
 * innermost coroutine suspends on a leaf awaitable (a sleep, a weft future, an I/O call), the
 * root polls that leaf with its own waker and returns WEFT_PENDING; the leaf's wake re-polls
 * the root, which resumes the coroutine once the leaf is complete. One root runs one chain of
 * coroutines, so at most one leaf is pending per root; concurrency comes from spawning.
 *
 * Leaves. Sleeps and weft futures (timer, promise, weft_submit_to, combinators, shared
 * futures, joins of other weft::tasks) are polled directly: no stack, no task. The fd calls
 * and channel waits of weft.h park a stackful task and return -EPERM in a stackless one, so
 * those awaitables run the call in a small stackful helper task (spawned pinned on the
 * root's worker, with weft's pooled stacks) and wake the root when it returns. (weft.h's
 * readiness future, weft_fd_future, would not do for reads: on io_uring weft holds a
 * socket's received bytes, which a plain read(2) after readiness would miss.) A channel
 * await tries the non-blocking call first and spawns only when it would wait.
 * Only weft's awaitables (these leaves, weft::task, weft::yield) may be awaited in a
 * weft::task: the root does not see another library's awaiter (std::suspend_always, or an
 * awaiter resumed later from a callback or a thread), so the promise's await_transform
 * refuses one at compile time (a static_assert).
 *
 * Cancellation. task_handle::cancel() asks a spawned task to stop: the pending leaf
 * completes with -ECANCELED (a helper task is cancelled through weft_cancel, so its blocking
 * call returns -ECANCELED), and every later await of the task completes with -ECANCELED at
 * once, so the coroutine runs its own cleanup and returns, as a cancelled stackful task does.
 * A root that weft drops instead (the runtime shuts down, weft_future_destroy, a timed-out
 * or cancelled block_on) destroys the coroutine frames in place, running the destructors of
 * what they hold, as Rust drops a future; a helper task still running then is cancelled and
 * the frames are destroyed when it has returned, so buffers it borrowed stay valid until then.
 * The frames of a dropped chain go one at a time, the innermost first (a child's destructors
 * run before its parent's, as nested destruction would run them), in constant stack however
 * deep the chain (root_destroy_chain); each task object that owned an awaited frame is left
 * empty, also one the caller owns and the chain awaited by reference. So a task object stays
 * where it is, unmoved, while it is awaited. What is not a chain still nests: a task held by
 * a frame (a parameter or a local) that has finished, or was never started, is destroyed with
 * that frame, so tasks wrapping tasks thousands deep that way (f(f(f(...))), each a task<U>
 * parameter) need that many destructor calls of stack where the outermost is destroyed.
 * A completion that reaches the helper's call before its cancel wins (weft.h, weft_cancel):
 * a channel value it received, or bytes it read, then go with the destroyed frames (lost),
 * and a value it was sending may still be delivered. Drop tasks that move data through
 * channels only where that is acceptable, or cancel them (task_handle::cancel) and join.
 *
 * Frames come from a per-thread cache (detail::frame_pool): weft.h exposes no allocator, and
 * a worker is a thread, so a thread-local cache is a per-worker pool. A frame freed on
 * another thread goes to that thread's cache; every block is an ordinary ::operator new
 * block, so that is safe, and each cache frees what it holds when its thread exits.
 *
 * Exceptions thrown in a task propagate: a co_await of the task, its block_on or its join
 * rethrows them, in the awaiting C++ frame; none ever crosses weft's C frames. Built with
 * -fno-exceptions, an exception that escapes a task calls std::terminate. Errors of weft
 * calls are never exceptions: they come back as result<T>::error(), a negative errno.
 *
 * Threads: everything here is for a runtime thread, as the C calls it wraps, except where
 * a comment says "any thread". Requires C++20 (<coroutine>): g++ 10+, clang++ 14+. */
#ifndef WEFT_HPP
#define WEFT_HPP

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "weft.hpp requires C++20 (-std=c++20): its tasks are C++20 coroutines"
#endif

#include <weft.h>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace weft {

/* ---- time ------------------------------------------------------------------------------ */

/* Deadlines are weft's: absolute CLOCK_MONOTONIC nanoseconds, or forever. */
inline constexpr int64_t forever = WEFT_FOREVER;
/* The deadline `ns` from now (weft_deadline_in). */
inline int64_t deadline_in(int64_t ns) noexcept { return weft_deadline_in(ns); }
/* weft_now(). Any thread. */
inline int64_t now() noexcept { return weft_now(); }

/* ---- result ---------------------------------------------------------------------------- */

/* An error as weft returns it: a negative errno. fail(-ETIMEDOUT) converts to any result. */
struct error_code {
    int value;
};
inline constexpr error_code fail(int err) noexcept { return error_code{err}; }

/* A value or a negative errno (-ETIMEDOUT, -ECANCELED, -EPIPE ...), std::expected-like.
 * value() on an error is a precondition violation: it throws std::bad_optional_access where
 * exceptions are on (terminates where off); test ok() first, or use value_or(). */
template <class T>
class [[nodiscard]] result {
public:
    result(const T &v) : v_(v) {}
    result(T &&v) : v_(std::move(v)) {}
    result(error_code e) noexcept : err_(e.value < 0 ? e.value : -EINVAL) {}
    bool ok() const noexcept { return v_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    /* 0 when ok(), else the negative errno. */
    int error() const noexcept { return err_; }
    const char *message() const noexcept { return weft_strerror(err_); }
    T &value() & { return v_.value(); }
    const T &value() const & { return v_.value(); }
    T &&value() && { return std::move(v_).value(); }
    T &operator*() & { return v_.value(); }
    const T &operator*() const & { return v_.value(); }
    T &&operator*() && { return std::move(v_).value(); }
    T *operator->() { return &v_.value(); }
    const T *operator->() const { return &v_.value(); }
    template <class U>
    T value_or(U &&d) const & { return v_ ? *v_ : static_cast<T>(std::forward<U>(d)); }

private:
    std::optional<T> v_;
    int err_ = 0;
};

template <>
class [[nodiscard]] result<void> {
public:
    result() noexcept = default;
    result(error_code e) noexcept : err_(e.value < 0 ? e.value : -EINVAL) {}
    bool ok() const noexcept { return err_ == 0; }
    explicit operator bool() const noexcept { return ok(); }
    int error() const noexcept { return err_; }
    const char *message() const noexcept { return weft_strerror(err_); }

private:
    int err_ = 0;
};

/* What a weft future completed with: its status (>= 0) and value. */
struct future_outcome {
    int status;
    void *value;
};

template <class T>
class task;

namespace detail {

/* ---- frame allocation ------------------------------------------------------------------ */

/* A per-thread cache of coroutine frames in 64-byte size classes up to 16 KiB (larger frames
 * go straight to ::operator new), at most 64 free blocks a class: a task that starts and ends
 * on one worker reuses the same blocks without touching the allocator's locks.
 * owner: its thread (thread_local); blocks move between threads only as plain heap blocks. */
struct frame_pool {
    static constexpr std::size_t granule = 64;  /* a cache line: classes stay aligned */
    static constexpr std::size_t nclasses = 256; /* up to 16 KiB: a frame with a page buffer */
    static constexpr unsigned keep = 64;         /* per class: bounds what an idle thread holds */
    struct node {
        node *next;
    };
    node *heads[nclasses] = {};
    unsigned counts[nclasses] = {};
    uint64_t nallocs = 0, nfrees = 0, nhits = 0;

    static std::size_t cls(std::size_t n) noexcept { return (n + granule - 1) / granule - 1; }
    /* The heap's side, kept out of line: inlined into a coroutine's ramp, g++ (12, -O1) saw
     * ::operator new's block reach the promise's own operator delete and reported them
     * mismatched (-Wmismatched-new-delete), which broke a -Werror build of a task whose
     * frame is above 16 KiB. Both are the pool's slow path. */
    [[gnu::noinline]] static void *heap_alloc(std::size_t n) { return ::operator new(n); }
    [[gnu::noinline]] static void heap_free(void *p) noexcept { ::operator delete(p); }

    void *alloc(std::size_t n)
    {
        nallocs++;
        std::size_t c = cls(n);
        if (c < nclasses && heads[c]) {
            node *b = heads[c];
            heads[c] = b->next;
            counts[c]--;
            nhits++;
            return b;
        }
        return heap_alloc(c < nclasses ? (c + 1) * granule : n);
    }
    void free(void *p, std::size_t n) noexcept
    {
        nfrees++;
        std::size_t c = cls(n);
        if (c < nclasses && counts[c] < keep) {
            node *b = static_cast<node *>(p);
            b->next = heads[c];
            heads[c] = b;
            counts[c]++;
            return;
        }
        heap_free(p);
    }
    ~frame_pool()
    {
        for (std::size_t c = 0; c < nclasses; c++)
            while (node *b = heads[c]) {
                heads[c] = b->next;
                heap_free(b);
            }
    }
};

/* thread_local: one cache per worker thread (see the top of the file); not global state. */
inline frame_pool &pool() noexcept
{
    static thread_local frame_pool p;
    return p;
}

/* ---- roots and leaves ------------------------------------------------------------------ */

struct root;
struct promise_base;

/* An awaitable the root polls until it completes: the one pending await of a chain. */
struct leaf {
    /* Makes progress with cx's waker; returns true once complete (its result stored).
     * `cancel`: the task was cancelled; complete with -ECANCELED as soon as possible. */
    virtual bool poll(weft_context *cx, bool cancel) noexcept = 0;
    /* True while a helper task still runs for it (borrowing the frame). */
    virtual bool in_flight() const noexcept { return false; }
    /* The root is dropped while in_flight(): stop the helper; it destroys the root when it
     * has returned (root_destroy). */
    virtual void abandon() noexcept {}

protected:
    ~leaf() = default;
};

/* The weft future that drives a chain of coroutines. Standard layout with `base` first, so
 * that the C side's weft_future * is the root's address. owner: the worker that polls it,
 * but `cancel` and `waker` (under `lock`), which task_handle::cancel touches from any thread. */
struct root {
    weft_future base;
    std::coroutine_handle<> top;     /* the outermost frame (owned) */
    std::coroutine_handle<> current; /* the frame suspended on `pending` */
    promise_base *inner;             /* current's promise: where root_destroy starts */
    std::coroutine_handle<> next;    /* the frame root_run resumes next (a task's await or end) */
    leaf *pending;
    bool started;
    bool dropped; /* weft dropped it while a helper ran: the helper destroys it */
    std::atomic<bool> cancel;
    std::atomic_flag lock;
    weft_waker waker;
    void (*on_finish)(root *) noexcept; /* top completed: publish its result */
    void (*on_destroy)(root *) noexcept; /* frees the derived object */
};

inline void root_store_waker(root *r, weft_waker w) noexcept
{
    /* Spin: held for two stores, by the poller and by cancel() (any thread). acquire/release
     * order the waker's fields with whoever takes the lock next. */
    while (r->lock.test_and_set(std::memory_order_acquire))
        ;
    r->waker = w;
    r->lock.clear(std::memory_order_release);
}

inline void root_request_cancel(root *r) noexcept
{
    r->cancel.store(true, std::memory_order_release);
    while (r->lock.test_and_set(std::memory_order_acquire))
        ;
    weft_waker w = r->waker;
    r->lock.clear(std::memory_order_release);
    weft_waker_wake(w); /* wakes the root's latest poll: it polls its leaf with cancel set */
}

/* Resumes `h`, then each frame the chain hands on to (a child awaited, a parent whose child
 * ended), one after another from this loop: no frame resumes another inside its own resume,
 * which nested a C++ frame per await where the compiler did not make symmetric transfer a
 * tail call (g++ -O0 overflowed a 64 KiB task stack in 100 awaits). Returns when the chain
 * waits on a leaf (`pending`) or the top has ended. */
inline void root_run(root *r, std::coroutine_handle<> h) noexcept
{
    while (h) {
        r->next = {};
        h.resume();
        h = r->next;
    }
}

inline void root_destroy_chain(root *r) noexcept;

/* Destroys the frames now (their destructors run), then the root. */
inline void root_destroy(root *r) noexcept
{
    if (r->top) {
        root_destroy_chain(r);
        std::coroutine_handle<> t = r->top;
        r->top = {};
        r->pending = nullptr;
        t.destroy();
    }
    r->on_destroy(r);
}

inline int root_poll(weft_future *f, weft_context *cx) noexcept
{
    root *r = reinterpret_cast<root *>(f);
    root_store_waker(r, cx->waker);
    if (!r->started) {
        r->started = true;
        root_run(r, r->top);
    }
    while (r->pending) {
        if (!r->pending->poll(cx, r->cancel.load(std::memory_order_acquire)))
            return WEFT_PENDING;
        r->pending = nullptr;
        root_run(r, r->current); /* runs until the next leaf, or the end of the chain */
    }
    /* No leaf pending: the chain has finished, unless it suspended on an awaiter that is not
     * weft's (co_await std::suspend_always{}), which nothing would ever resume. */
    weft_future_complete(f, r->top.done() ? 0 : -EDEADLK, nullptr);
    r->on_finish(r);
    return WEFT_READY;
}

inline void root_drop(weft_future *f) noexcept
{
    root *r = reinterpret_cast<root *>(f);
    if (r->pending && r->pending->in_flight()) {
        r->dropped = true;
        r->pending->abandon();
        return;
    }
    root_destroy(r);
}

inline constexpr weft_future_ops root_ops = {root_poll, root_drop};

inline void root_init(root *r, std::coroutine_handle<> top, void (*fin)(root *) noexcept,
                      void (*destroy)(root *) noexcept) noexcept
{
    weft_future_init(&r->base, &root_ops);
    r->top = top;
    r->current = {};
    r->inner = nullptr;
    r->next = {};
    r->pending = nullptr;
    r->started = false;
    r->dropped = false;
    r->cancel.store(false, std::memory_order_relaxed);
    r->lock.clear(std::memory_order_relaxed);
    r->waker = weft_waker{nullptr, 0};
    r->on_finish = fin;
    r->on_destroy = destroy;
}

/* ---- promises -------------------------------------------------------------------------- */

template <class A>
struct is_task : std::false_type {};
template <class U>
struct is_task<task<U>> : std::true_type {};

/* What a weft::task may co_await: weft's leaves (every one derives from leaf), another
 * weft::task, and what turns itself into a leaf (a task_handle's operator co_await). */
template <class A>
consteval bool is_weft_awaitable()
{
    using B = std::remove_cvref_t<A>;
    if constexpr (std::is_base_of_v<leaf, B> || is_task<B>::value)
        return true;
    else if constexpr (requires(A &&a) { static_cast<A &&>(a).operator co_await(); })
        return std::is_base_of_v<
            leaf, std::remove_cvref_t<decltype(std::declval<A>().operator co_await())>>;
    else
        return false;
}
template <class A>
inline constexpr bool weft_awaitable = is_weft_awaitable<A>();

struct promise_base {
    root *rt = nullptr;                    /* the root driving this frame (set before it runs) */
    std::coroutine_handle<> continuation; /* the awaiting frame, or none for the top */
    /* Set by the await of this frame's task (none for the top): the awaiting frame's promise,
     * and the task object that owns this frame with the function that empties it, so that
     * root_destroy_chain can destroy this frame before its owner and its owner's destructor
     * then has nothing left to destroy. The owner stays where it is while it is awaited: a
     * temporary of the awaiting expression, or an object the awaiting frame can reach. */
    promise_base *parent = nullptr;
    void *owner = nullptr;
    void (*disown)(void *owner) noexcept = nullptr;
#if defined(__cpp_exceptions)
    std::exception_ptr exc;
#endif

    static void *operator new(std::size_t n) { return pool().alloc(n); }
    static void operator delete(void *p, std::size_t n) noexcept { pool().free(p, n); }

    std::suspend_always initial_suspend() noexcept { return {}; }
    /* Every co_await in a weft::task passes here: another library's awaiter (suspend_always,
     * one resumed from a callback or a thread) is refused at compile time, since the root
     * cannot see it (it ended the chain with -EDEADLK, and its later resume used freed
     * frames). The awaitable itself goes on unchanged. */
    template <class A>
    A &&await_transform(A &&a) noexcept
    {
        static_assert(weft_awaitable<A>,
                      "weft::task: only weft's awaitables (weft::sleep, weft::yield, weft::call, "
                      "channel and future awaits, another weft::task) may be co_awaited here");
        return std::forward<A>(a);
    }
    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class P>
        void await_suspend(std::coroutine_handle<P> h) noexcept
        {
            /* The awaiting frame, resumed by root_run; none for the top (the loop ends). */
            h.promise().rt->next = h.promise().continuation;
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept
    {
#if defined(__cpp_exceptions)
        exc = std::current_exception();
#else
        std::terminate();
#endif
    }
    void rethrow_if_failed()
    {
#if defined(__cpp_exceptions)
        if (exc)
            std::rethrow_exception(exc);
#endif
    }
};

template <class T>
struct promise : promise_base {
    std::optional<T> value;
    task<T> get_return_object() noexcept;
    template <class U = T>
    void return_value(U &&v)
    {
        value.emplace(std::forward<U>(v));
    }
    /* Once: the value leaves the frame, so that a second co_await of the task is the
     * precondition violation it is (as for an empty task), not a moved-from T. */
    T take()
    {
        rethrow_if_failed();
        if (!value) {
#if defined(__cpp_exceptions)
            throw std::bad_optional_access();
#else
            std::terminate();
#endif
        }
        T v = std::move(*value);
        value.reset();
        return v;
    }
};

template <>
struct promise<void> : promise_base {
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() { rethrow_if_failed(); }
};

template <class P>
concept weft_promise_type = std::is_base_of_v<promise_base, P>;

/* Destroys the frames of a chain parked on a leaf, one at a time from the innermost out, all
 * but the top (root_destroy's): each frame's destruction would otherwise destroy the task it
 * awaits from inside its own destructor, a C++ frame nested per await (a chain thousands of
 * awaits deep overflowed the stack it was dropped on). Innermost first, as that nesting ran
 * them: a child's destructors may still use what its parent lent it. Each frame's owner is
 * emptied before the frame goes, while the owner is alive (in the parent, not yet destroyed,
 * or beyond the chain), so no destructor destroys a frame twice. Only a chain parked on a
 * leaf has awaited frames: one not started or ended has the top alone (a frame ends only
 * after the task it awaits has, which the await's end destroyed or left finished). */
inline void root_destroy_chain(root *r) noexcept
{
    if (!r->pending)
        return;
    std::coroutine_handle<> h = r->current;
    promise_base *p = r->inner;
    while (h != r->top) {
        std::coroutine_handle<> up = p->continuation; /* read before the frame goes */
        promise_base *pp = p->parent;
        p->disown(p->owner);
        h.destroy();
        h = up;
        p = pp;
    }
}

/* The common part of every leaf awaitable: registers itself as the root's pending leaf. */
template <class Derived>
struct leaf_awaiter : leaf {
    root *rt_ = nullptr;
    bool await_ready() const noexcept { return false; }
    template <weft_promise_type P>
    void await_suspend(std::coroutine_handle<P> h) noexcept
    {
        rt_ = h.promise().rt;
        rt_->pending = this;
        rt_->current = h;
        rt_->inner = &h.promise();
    }

protected:
    ~leaf_awaiter() = default;
};

} // namespace detail

/* ---- task ------------------------------------------------------------------------------ */

/* A lazy coroutine producing a T (move-only). It starts when awaited (co_await), spawned
 * (weft::spawn) or blocked on (weft::block_on); destroying a task that never started frees
 * its frame. co_await of a task gives its T (rethrowing its exception). A task is awaited
 * once: a second co_await of a task<T> that gave its T throws std::bad_optional_access
 * (std::terminate without exceptions), as does a co_await of an empty task. T is a value
 * type or void, never a reference (refused at compile time): a task gives its T after its
 * frame's locals have gone, so return a pointer or a std::reference_wrapper to what outlives
 * the task instead. */
template <class T = void>
class [[nodiscard]] task {
    static_assert(!std::is_reference_v<T>,
                  "weft::task<T>: T cannot be a reference (return a pointer or a "
                  "std::reference_wrapper to what outlives the task)");

public:
    using promise_type = detail::promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : h_(h) {}
    task(task &&o) noexcept : h_(std::exchange(o.h_, {})) {}
    task &operator=(task &&o) noexcept
    {
        if (this != &o) {
            if (h_)
                h_.destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task &) = delete;
    task &operator=(const task &) = delete;
    ~task()
    {
        if (h_)
            h_.destroy();
    }

    bool valid() const noexcept { return static_cast<bool>(h_); }
    /* Gives up ownership of the frame (to a root). */
    handle_type release() noexcept { return std::exchange(h_, {}); }

    struct awaiter {
        handle_type h;
        task *owner; /* the awaited task: a dropped chain empties it (root_destroy_chain) */
        bool await_ready() const noexcept { return !h || h.done(); }
        template <detail::weft_promise_type P>
        void await_suspend(std::coroutine_handle<P> parent) noexcept
        {
            detail::root *r = parent.promise().rt;
            promise_type &cp = h.promise();
            cp.continuation = parent;
            cp.parent = &parent.promise();
            cp.owner = owner;
            cp.disown = &task::disown;
            cp.rt = r;
            r->next = h; /* the child runs next on the parent's root (root_run) */
        }
        T await_resume()
        {
            if (!h) { /* awaiting an empty (moved-from) task: a precondition violation */
#if defined(__cpp_exceptions)
                throw std::bad_optional_access();
#else
                std::terminate();
#endif
            }
            return h.promise().take();
        }
    };
    awaiter operator co_await() & noexcept { return awaiter{h_, this}; }
    awaiter operator co_await() && noexcept { return awaiter{h_, this}; }

private:
    /* Forgets the frame, which a dropped chain has destroyed already (root_destroy_chain). */
    static void disown(void *t) noexcept { static_cast<task *>(t)->h_ = {}; }

    handle_type h_;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept
{
    return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept
{
    return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
} // namespace detail

/* Counts of the calling thread's frame cache: frames allocated and freed on this thread
 * (alloc - free is the frames alive that were made here, when they also die here), and the
 * allocations the cache served. */
struct frame_stats {
    uint64_t nallocs, nfrees, nhits;
};
inline frame_stats frame_stats_get() noexcept
{
    auto &p = detail::pool();
    return frame_stats{p.nallocs, p.nfrees, p.nhits};
}

/* ---- leaves: weft futures and sleeps ---------------------------------------------------- */

namespace detail {

/* Awaits a weft future, with a deadline (a timer future polled beside it). The future is
 * borrowed, or owned when `own` (destroyed with the awaiter). */
struct future_leaf : leaf_awaiter<future_leaf> {
    weft_future *f;
    int64_t deadline;
    bool own;
    weft_future *timer = nullptr;
    int status = 0;
    void *value = nullptr;

    future_leaf(weft_future *fut, int64_t dl, bool owned) noexcept
        : f(fut), deadline(dl), own(owned)
    {
    }
    future_leaf(future_leaf &&o) noexcept
        : f(std::exchange(o.f, nullptr)), deadline(o.deadline), own(o.own),
          timer(std::exchange(o.timer, nullptr)), status(o.status), value(o.value)
    {
    }
    ~future_leaf()
    {
        weft_future_destroy(timer);
        if (own)
            weft_future_destroy(f);
    }
    bool poll(weft_context *cx, bool cancel) noexcept override
    {
        if (!f) { /* wait(NULL); or a sleep whose timer failed: keep its error */
            if (status == 0)
                status = -EINVAL;
            return true;
        }
        if (cancel) {
            status = -ECANCELED;
            return true;
        }
        if (weft_future_poll(f, cx) == WEFT_READY) {
            status = f->status;
            value = f->value;
            return true;
        }
        if (deadline != WEFT_FOREVER) {
            if (!timer) {
                int r = weft_timer_future(&timer, deadline);
                if (r < 0) {
                    status = r;
                    return true;
                }
            }
            if (weft_future_poll(timer, cx) == WEFT_READY) {
                status = -ETIMEDOUT; /* the future stays pending, and the caller's */
                return true;
            }
        }
        return false;
    }
};

struct sleep_awaiter : future_leaf {
    using future_leaf::future_leaf;
    result<void> await_resume() const noexcept
    {
        return status < 0 ? result<void>(fail(status)) : result<void>();
    }
};

struct wait_awaiter : future_leaf {
    using future_leaf::future_leaf;
    result<future_outcome> await_resume() const noexcept
    {
        if (status < 0)
            return fail(status);
        return future_outcome{status, value};
    }
};

struct yield_awaiter : leaf_awaiter<yield_awaiter> {
    bool polled = false;
    bool cancelled = false;
    bool poll(weft_context *cx, bool cancel) noexcept override
    {
        cancelled = cancel;
        if (polled || cancel)
            return true;
        polled = true;
        weft_waker_wake(cx->waker); /* ready again at once: the root goes to the queue's tail */
        return false;
    }
    result<void> await_resume() const noexcept
    {
        return cancelled ? result<void>(fail(-ECANCELED)) : result<void>();
    }
};

} // namespace detail

/* co_await sleep_until(d): result<void>, ok once d has passed; -ECANCELED, -ENOMEM, -EPERM
 * (made outside a runtime thread: the timer is made here, at the call, not at the await). */
inline detail::sleep_awaiter sleep_until(int64_t deadline) noexcept
{
    weft_future *f = nullptr;
    int r = weft_timer_future(&f, deadline);
    detail::sleep_awaiter a(f, WEFT_FOREVER, true);
    if (r < 0) { /* reported at the await, as the call's result */
        a.f = nullptr;
        a.status = r;
    }
    return a;
}
/* co_await sleep_for(ns): sleep_until(deadline_in(ns)). */
inline detail::sleep_awaiter sleep_for(int64_t ns) noexcept
{
    return sleep_until(weft_deadline_in(ns));
}
/* co_await wait(f, deadline): awaits any weft future, borrowed (the caller still owns and
 * destroys it). result<future_outcome>: its status (>= 0) and value; its failure status;
 * -ETIMEDOUT or -ECANCELED (the future left pending); -EINVAL for NULL. */
inline detail::wait_awaiter wait(weft_future *f, int64_t deadline = forever) noexcept
{
    return detail::wait_awaiter(f, deadline, false);
}
/* An owned weft future: destroyed (weft_future_destroy) with its owner, so that a task
 * dropped while it waits does not leak it. */
struct future_deleter {
    void operator()(weft_future *f) const noexcept { weft_future_destroy(f); }
};
using future_ptr = std::unique_ptr<weft_future, future_deleter>;
inline detail::wait_awaiter wait(const future_ptr &f, int64_t deadline = forever) noexcept
{
    return detail::wait_awaiter(f.get(), deadline, false);
}
/* co_await yield(): lets the other ready tasks run. result<void>: ok, or -ECANCELED. */
inline detail::yield_awaiter yield() noexcept { return {}; }

/* ---- leaves: blocking calls run by a helper task ----------------------------------------- */

namespace detail {

/* Runs fn() (a blocking weft call returning >= 0 or -errno) in a stackful helper task on the
 * root's worker, and completes with what it returned. */
template <class Fn>
struct blocking_leaf : leaf_awaiter<blocking_leaf<Fn>> {
    Fn fn;
    weft_task *helper = nullptr;
    long res = 0;
    bool done = false, ran = false, detached = false, cancel_sent = false;
    weft_waker waker{nullptr, 0};
#if defined(__cpp_exceptions)
    std::exception_ptr exc; /* what fn threw: rethrown by await_resume, in the awaiting frame */
#endif

    explicit blocking_leaf(Fn f) : fn(std::move(f)) {}
    blocking_leaf(blocking_leaf &&o) noexcept : fn(std::move(o.fn)) {} /* before any await */
    ~blocking_leaf()
    {
        if (helper && !detached)
            weft_detach(helper); /* it has finished: recycled now */
    }

    static void *run(void *p) noexcept
    {
        auto *self = static_cast<blocking_leaf *>(p);
        self->ran = true;
#if defined(__cpp_exceptions)
        /* Caught here: an exception must not cross the helper task's C frames (it ended the
         * process, std::terminate from this noexcept function). */
        try {
            self->res = static_cast<long>(self->fn());
        } catch (...) {
            self->exc = std::current_exception();
            self->res = -ECANCELED;
        }
#else
        self->res = static_cast<long>(self->fn());
#endif
        return nullptr;
    }
    /* The helper's spawn cleanup: runs once it has finished, also when it was cancelled
     * before it ever ran. Not on any path that may block. */
    static void finished(void *p) noexcept
    {
        auto *self = static_cast<blocking_leaf *>(p);
        if (!self->ran)
            self->res = -ECANCELED;
        self->done = true;
        root *r = self->rt_;
        if (r->dropped) {
            root_destroy(r); /* destroys this awaiter too: touch nothing after */
            return;
        }
        weft_waker_wake(self->waker);
    }
    bool poll(weft_context *cx, bool cancel) noexcept override
    {
        if (!helper) {
            if (cancel) {
                res = -ECANCELED;
                return true;
            }
            weft_spawn_opts o{};
            o.name = "weft++ call";
            o.flags = WEFT_SPAWN_PINNED; /* fds and timers belong to this worker */
            o.cleanup = &finished;
            int r = weft_spawn(&helper, &run, this, &o);
            if (r < 0) {
                helper = nullptr;
                res = r;
                return true;
            }
        }
        if (done)
            return true;
        waker = cx->waker;
        if (cancel && !cancel_sent) {
            cancel_sent = true;
            weft_cancel(helper); /* its blocking call returns -ECANCELED */
        }
        return false;
    }
    bool in_flight() const noexcept override { return helper && !done; }
    void abandon() noexcept override
    {
        weft_cancel(helper);
        weft_detach(helper);
        detached = true;
    }
};

template <class V, class Fn>
struct call_awaiter : blocking_leaf<Fn> {
    explicit call_awaiter(Fn f) : blocking_leaf<Fn>(std::move(f)) {}
    result<V> await_resume() const
    {
#if defined(__cpp_exceptions)
        if (this->exc)
            std::rethrow_exception(this->exc);
#endif
        long v = this->res;
        if (v < 0)
            return fail(static_cast<int>(v));
        if constexpr (std::is_void_v<V>)
            return result<void>();
        else
            return result<V>(static_cast<V>(v));
    }
};

} // namespace detail

/* co_await call(fn): runs fn() in a stackful helper task and gives what it returned (an
 * integer: >= 0, or -errno) as result<long>. For weft's blocking calls with no awaitable
 * here (weft_file_*, weft_resolve, weft_process_wait, weft_blocking ...). Borrowed
 * pointers in fn must stay valid while it runs: a task dropped meanwhile keeps its frames
 * until the helper has returned. Not for locks: weft's mutex is held by the task that locked
 * it, and the helper ends at once. An exception fn throws is rethrown by the co_await. */
template <class Fn>
auto call(Fn fn)
{
    return detail::call_awaiter<long, Fn>(std::move(fn));
}

/* I/O on fds, as weft_read & co (same results, deadlines and cancellation). */
inline auto read(int fd, void *buf, std::size_t len, int64_t deadline = forever)
{
    auto fn = [=] { return weft_read(fd, buf, len, deadline); };
    return detail::call_awaiter<std::size_t, decltype(fn)>(fn);
}
inline auto write(int fd, const void *buf, std::size_t len, int64_t deadline = forever)
{
    auto fn = [=] { return weft_write(fd, buf, len, deadline); };
    return detail::call_awaiter<std::size_t, decltype(fn)>(fn);
}
inline auto recv(int fd, void *buf, std::size_t len, int flags, int64_t deadline = forever)
{
    auto fn = [=] { return weft_recv(fd, buf, len, flags, deadline); };
    return detail::call_awaiter<std::size_t, decltype(fn)>(fn);
}
inline auto send(int fd, const void *buf, std::size_t len, int flags, int64_t deadline = forever)
{
    auto fn = [=] { return weft_send(fd, buf, len, flags, deadline); };
    return detail::call_awaiter<std::size_t, decltype(fn)>(fn);
}
/* result<int>: the accepted fd (non-blocking, close-on-exec; close it with weft_close). */
inline auto accept(int fd, int64_t deadline = forever)
{
    auto fn = [=] { return weft_accept(fd, nullptr, nullptr, deadline); };
    return detail::call_awaiter<int, decltype(fn)>(fn);
}
/* Connects a non-blocking socket to `addr` (copied). */
inline auto connect(int fd, const weft_addr &addr, int64_t deadline = forever)
{
    auto fn = [=, a = addr] {
        return weft_connect(fd, reinterpret_cast<const sockaddr *>(&a.ss), a.len, deadline);
    };
    return detail::call_awaiter<void, decltype(fn)>(fn);
}
/* result<int>: a connected stream socket (weft_dial). */
inline auto dial(const weft_addr &addr, int64_t deadline = forever)
{
    auto fn = [=, a = addr] { return weft_dial(&a, deadline); };
    return detail::call_awaiter<int, decltype(fn)>(fn);
}

/* ---- roots: spawn, join, block_on --------------------------------------------------------- */

namespace detail {

/* A spawned task's shared state: the root (weft's stackless task owns it) and the handle
 * share it by count; `done` is a promise settled when the task finishes (or is dropped). */
template <class T>
struct spawned : root {
    using value_t = std::conditional_t<std::is_void_v<T>, char, T>;
    std::optional<value_t> out;
#if defined(__cpp_exceptions)
    std::exception_ptr exc;
#endif
    weft_promise *done = nullptr;
    /* any thread: acq_rel on the last drop, so each holder's last use happens before the
     * delete; the root's side and the handle's side hold one count each. */
    std::atomic<int> refs{2};
    std::atomic<bool> finished{false};
    bool taken = false; /* the result was joined (owner: the joining task) */

    void unref() noexcept
    {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            weft_promise_release(done);
            delete this;
        }
    }
    static void on_finish(root *r) noexcept
    {
        auto *s = static_cast<spawned *>(r);
        if (!r->top.done()) { /* stuck on an awaiter that is not weft's (root_poll) */
            s->finished.store(true, std::memory_order_release);
            weft_promise_reject(s->done, -EDEADLK);
            return;
        }
        auto h = std::coroutine_handle<promise<T>>::from_address(r->top.address());
#if defined(__cpp_exceptions)
        s->exc = h.promise().exc;
        if (!s->exc) {
#endif
            if constexpr (std::is_void_v<T>)
                s->out.emplace('\0');
            else
                s->out.emplace(std::move(*h.promise().value));
#if defined(__cpp_exceptions)
        }
#endif
        s->finished.store(true, std::memory_order_release);
        weft_promise_resolve(s->done, nullptr);
    }
    static void on_destroy(root *r) noexcept
    {
        auto *s = static_cast<spawned *>(r);
        s->finished.store(true, std::memory_order_release);
        weft_promise_reject(s->done, -ECANCELED); /* -EALREADY if it had finished: fine */
        s->unref();
    }
};

template <class T>
result<T> take_result(spawned<T> *s, int status)
{
    if (status < 0)
        return fail(status);
    if (s->taken) /* joined twice */
        return fail(-EINVAL);
#if defined(__cpp_exceptions)
    /* Before the result's check: a task that threw has none (it rethrew as -ECANCELED). */
    if (s->exc) {
        s->taken = true;
        std::rethrow_exception(s->exc);
    }
#endif
    if (!s->out) /* dropped before it finished */
        return fail(-ECANCELED);
    s->taken = true;
    if constexpr (std::is_void_v<T>)
        return result<void>();
    else
        return result<T>(std::move(*s->out));
}

template <class T>
struct join_awaiter : future_leaf {
    spawned<T> *s;
    join_awaiter(spawned<T> *st, int64_t dl) noexcept
        : future_leaf(st ? weft_promise_future(st->done) : nullptr, dl, false), s(st)
    {
    }
    result<T> await_resume()
    {
        if (!s)
            return fail(-EINVAL);
        return take_result(s, status);
    }
};

} // namespace detail

/* A handle on a spawned task (move-only). Its destructor detaches: the task runs on to its
 * end, and its result is dropped (Tokio's JoinHandle). Join it, or cancel() and join it, to
 * wait for it. A handle may move to another thread; cancel() is callable from any thread,
 * the joins from a runtime thread, one joiner at a time. */
template <class T = void>
class task_handle {
public:
    task_handle() noexcept = default;
    explicit task_handle(detail::spawned<T> *s) noexcept : s_(s) {}
    task_handle(task_handle &&o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    task_handle &operator=(task_handle &&o) noexcept
    {
        if (this != &o) {
            reset();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    ~task_handle() { reset(); }

    bool valid() const noexcept { return s_ != nullptr; }
    /* True once the task has finished (or was dropped by weft). Any thread. */
    bool done() const noexcept { return s_ && s_->finished.load(std::memory_order_acquire); }
    /* Asks the task to stop: its pending await and every later one complete with -ECANCELED
     * (see the top of the file). A no-op once it has finished. Any thread. */
    void cancel() noexcept
    {
        if (s_ && !done())
            detail::root_request_cancel(s_);
    }
    /* From a stackful task: waits for the end and gives the task's value (once). -ETIMEDOUT,
     * -ECANCELED (this caller was cancelled: join again, or the task was dropped by weft),
     * -EINVAL (an empty handle, or joined already), -EPERM outside a stackful task. */
    result<T> join(int64_t deadline = forever)
    {
        if (!s_)
            return fail(-EINVAL);
        int st = weft_await(weft_promise_future(s_->done), nullptr, deadline);
        return detail::take_result(s_, st);
    }
    /* From a task: co_await h.join_async(deadline), with join's results. */
    detail::join_awaiter<T> join_async(int64_t deadline = forever) noexcept
    {
        return detail::join_awaiter<T>(s_, deadline);
    }
    /* co_await h: join_async(forever). */
    detail::join_awaiter<T> operator co_await() noexcept { return join_async(forever); }
    /* Drops the handle now (the task runs on). */
    void reset() noexcept
    {
        if (s_)
            std::exchange(s_, nullptr)->unref();
    }

private:
    detail::spawned<T> *s_ = nullptr;
};

/* Spawns `t` as a stackless weft task on the caller's worker (weft_spawn_future; `opts` as
 * there, always detached: the handle joins through the task's own completion). Returns the
 * handle, or -EINVAL (an empty task), -ENOMEM, -EPERM outside a runtime. Runtime thread. */
template <class T>
result<task_handle<T>> spawn(task<T> t, const weft_spawn_opts *opts = nullptr)
{
    if (!t.valid())
        return fail(-EINVAL);
    auto *s = new (std::nothrow) detail::spawned<T>();
    if (!s)
        return fail(-ENOMEM);
    int r = weft_promise_create(&s->done);
    if (r < 0) {
        delete s;
        return fail(r);
    }
    auto h = t.release();
    h.promise().rt = s;
    detail::root_init(s, h, &detail::spawned<T>::on_finish, &detail::spawned<T>::on_destroy);
    weft_spawn_opts o = opts ? *opts : weft_spawn_opts{};
    o.flags |= WEFT_SPAWN_DETACHED;
    r = weft_spawn_future(nullptr, &s->base, &o);
    if (r < 0) {
        s->refs.store(1, std::memory_order_relaxed); /* the root's side never existed */
        detail::root_destroy(s);
        return fail(r);
    }
    return task_handle<T>(s);
}

namespace detail {
template <class T>
struct blocked : root {
    static void on_finish(root *) noexcept {}
    static void on_destroy(root *r) noexcept { delete static_cast<blocked *>(r); }
};
} // namespace detail

/* Runs `t` to its end from a stackful task (weft_await on its root) and gives its value.
 * -ETIMEDOUT or -ECANCELED (the caller was cancelled): the task is dropped, its frames
 * destroyed (see the top of the file). -EINVAL for an empty task, -ENOMEM, -EPERM outside a
 * stackful task. Rethrows the task's exception. */
template <class T>
result<T> block_on(task<T> t, int64_t deadline = forever)
{
    if (!t.valid())
        return fail(-EINVAL);
    auto *b = new (std::nothrow) detail::blocked<T>();
    if (!b)
        return fail(-ENOMEM);
    auto h = t.release();
    h.promise().rt = b;
    detail::root_init(b, h, &detail::blocked<T>::on_finish, &detail::blocked<T>::on_destroy);
    int st = weft_await(&b->base, nullptr, deadline);
    if (st == -EPERM && !b->started) { /* not a stackful task: nothing ran */
        detail::root_destroy(b);
        return fail(st);
    }
    if (!b->base.ready) {
        weft_future_destroy(&b->base); /* dropped, deferred while a helper runs */
        return fail(st);
    }
    struct destroy_guard {
        detail::root *r;
        ~destroy_guard() { detail::root_destroy(r); }
    } g{b};
    if (b->base.status < 0)
        return fail(b->base.status);
    if constexpr (std::is_void_v<T>) {
        h.promise().take();
        return result<void>();
    } else {
        return result<T>(h.promise().take());
    }
}

/* ---- channels ------------------------------------------------------------------------- */

namespace detail {
/* Room for one T that constructs none, for a channel to copy a value's bytes into: T need
 * only be trivially copyable, not default-constructible. */
template <class T>
union value_slot {
    char none;
    T v;
    value_slot() noexcept : none() {}
};
} // namespace detail

/* A weft channel of T values (trivially copyable: they are copied as bytes; no default
 * constructor needed), holding one reference; copies share the channel (retain), the last one
 * releases it. send/recv block (a stackful task parks, a plain thread sleeps);
 * send_async/recv_async are awaitables for tasks, which try the non-blocking call first and
 * use a helper task only to wait. An await that waits holds its own reference to the channel
 * until it completes: a task that took the channel by reference stays safe when the handles
 * are all dropped meanwhile, but (unlike a stackful waiter in weft_chan_release) that drop
 * does not close the channel; close() it, or cancel the task, to end such a wait. */
template <class T>
class channel {
    static_assert(std::is_trivially_copyable_v<T>, "weft::channel<T> copies T as bytes");

public:
    channel() noexcept = default;
    /* A channel of capacity `cap` (0: rendezvous). -EINVAL, -ENOMEM. Any thread. */
    static result<channel> make(std::size_t cap)
    {
        weft_chan *c = nullptr;
        int r = weft_chan_create(&c, sizeof(T), cap);
        if (r < 0)
            return fail(r);
        return channel(c);
    }
    static result<channel> make_unbounded(std::size_t max_len = 0)
    {
        weft_chan *c = nullptr;
        int r = weft_chan_create_unbounded(&c, sizeof(T), max_len);
        if (r < 0)
            return fail(r);
        return channel(c);
    }
    channel(const channel &o) noexcept : c_(o.c_)
    {
        if (c_)
            weft_chan_retain(c_);
    }
    channel(channel &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    channel &operator=(channel o) noexcept
    {
        std::swap(c_, o.c_);
        return *this;
    }
    ~channel()
    {
        if (c_)
            weft_chan_release(c_);
    }
    weft_chan *get() const noexcept { return c_; }

    result<void> send(const T &v, int64_t deadline = forever)
    {
        int r = weft_chan_send(c_, &v, deadline);
        return r < 0 ? result<void>(fail(r)) : result<void>();
    }
    result<T> recv(int64_t deadline = forever)
    {
        detail::value_slot<T> s;
        int r = weft_chan_recv(c_, &s.v, deadline);
        if (r < 0)
            return fail(r);
        return s.v;
    }
    result<void> try_send(const T &v)
    {
        int r = weft_chan_try_send(c_, &v);
        return r < 0 ? result<void>(fail(r)) : result<void>();
    }
    result<T> try_recv()
    {
        detail::value_slot<T> s;
        int r = weft_chan_try_recv(c_, &s.v);
        if (r < 0)
            return fail(r);
        return s.v;
    }
    /* co_await ch.send_async(v, deadline): result<void>; 0, -EPIPE, -ETIMEDOUT, -ECANCELED. */
    auto send_async(const T &v, int64_t deadline = forever) { return send_awaiter(c_, v, deadline); }
    /* co_await ch.recv_async(deadline): result<T>; -EPIPE once closed and drained. */
    auto recv_async(int64_t deadline = forever) { return recv_awaiter(c_, deadline); }
    result<void> close() noexcept
    {
        int r = weft_chan_close(c_);
        return r < 0 ? result<void>(fail(r)) : result<void>();
    }
    std::size_t size() const noexcept { return weft_chan_len(c_); }

private:
    explicit channel(weft_chan *c) noexcept : c_(c) {}

    /* The value lives in the awaiter (in the coroutine frame), which the helper borrows; the
     * non-blocking try runs at the co_await (await_ready), so an awaiter never awaited takes
     * or gives nothing. */
    struct xfer_fn {
        weft_chan *c;
        T *slot;
        int64_t deadline;
        bool is_send;
        int operator()() const noexcept
        {
            return is_send ? weft_chan_send(c, slot, deadline) : weft_chan_recv(c, slot, deadline);
        }
    };
    struct xfer_awaiter : detail::blocking_leaf<xfer_fn> {
        detail::value_slot<T> s; /* the value to send, or the one received */
        int early = 1;
        /* The helper's reference to the channel, taken when the await goes to the helper:
         * the helper first runs later, when the last handle may be gone (the task held the
         * channel by reference), and weft_chan_release keeps the channel alive only for a
         * task already parked in it (the helper used freed memory). Released with the
         * awaiter, which lives until the helper has returned. */
        bool retained = false;
        /* fn's slot is set in the bodies, once `s` exists. */
        xfer_awaiter(weft_chan *c, const T *val, int64_t dl, bool is_send)
            : detail::blocking_leaf<xfer_fn>(xfer_fn{c, nullptr, dl, is_send})
        {
            this->fn.slot = &s.v;
            if (val)
                std::memcpy(static_cast<void *>(&s.v), val, sizeof(T));
        }
        xfer_awaiter(xfer_awaiter &&o) noexcept
            : detail::blocking_leaf<xfer_fn>(xfer_fn{o.fn.c, nullptr, o.fn.deadline, o.fn.is_send}),
              early(o.early)
        {
            this->fn.slot = &s.v;
            std::memcpy(static_cast<void *>(&s.v), &o.s.v, sizeof(T));
        }
        ~xfer_awaiter()
        {
            if (retained)
                weft_chan_release(this->fn.c);
        }
        /* The try comes in await_suspend, where the task's root (its cancel) is known: a
         * cancelled task's channel calls complete with -ECANCELED at once, even when they
         * could complete (as weft_chan_send/recv do in a cancelled stackful task); before,
         * a cancelled consumer kept draining a busy channel. */
        bool await_ready() const noexcept { return false; }
        template <detail::weft_promise_type P>
        bool await_suspend(std::coroutine_handle<P> h) noexcept
        {
            const xfer_fn &f = this->fn;
            int r;
            if (h.promise().rt->cancel.load(std::memory_order_acquire))
                r = -ECANCELED;
            else
                r = f.is_send ? weft_chan_try_send(f.c, &s.v) : weft_chan_try_recv(f.c, &s.v);
            if (r != -EAGAIN) {
                early = r;
                return false; /* resumed at once, with `early` */
            }
            weft_chan_retain(f.c);
            retained = true;
            detail::blocking_leaf<xfer_fn>::await_suspend(h);
            return true;
        }
        long status() const noexcept { return early <= 0 ? early : this->res; }
    };
    struct send_awaiter : xfer_awaiter {
        send_awaiter(weft_chan *c, const T &val, int64_t dl) : xfer_awaiter(c, &val, dl, true) {}
        result<void> await_resume() const noexcept
        {
            long r = this->status();
            return r < 0 ? result<void>(fail(static_cast<int>(r))) : result<void>();
        }
    };
    struct recv_awaiter : xfer_awaiter {
        recv_awaiter(weft_chan *c, int64_t dl) : xfer_awaiter(c, nullptr, dl, false) {}
        result<T> await_resume() const noexcept
        {
            long r = this->status();
            if (r < 0)
                return fail(static_cast<int>(r));
            return this->s.v;
        }
    };

    weft_chan *c_ = nullptr;
};

/* ---- locks ---------------------------------------------------------------------------- */

class mutex;

/* Holds a weft::mutex until destroyed or unlock()ed (move-only). owner_dead(): the lock came
 * from a task that finished holding it (-EOWNERDEAD): repair what it protects. weft records
 * the task (or thread) that locked, and only it may unlock: a guard moved to another task and
 * unlocked or destroyed there is refused (-EPERM), and the mutex stays locked (the guard, if
 * it lives on, still owns it, for its locker to unlock). Move a guard only within its task. */
class lock_guard {
public:
    lock_guard() noexcept = default;
    lock_guard(lock_guard &&o) noexcept
        : m_(std::exchange(o.m_, nullptr)), owner_dead_(o.owner_dead_)
    {
    }
    lock_guard &operator=(lock_guard &&o) noexcept
    {
        if (this != &o) {
            (void)unlock();
            m_ = std::exchange(o.m_, nullptr);
            owner_dead_ = o.owner_dead_;
        }
        return *this;
    }
    ~lock_guard() { (void)unlock(); }
    bool owns_lock() const noexcept { return m_ != nullptr; }
    bool owner_dead() const noexcept { return owner_dead_; }
    /* 0 (the guard is then empty), or -EPERM: the caller is not the locker (see above). */
    inline int unlock() noexcept;

private:
    friend class mutex;
    lock_guard(weft_mutex *m, bool dead) noexcept : m_(m), owner_dead_(dead) {}
    weft_mutex *m_ = nullptr;
    bool owner_dead_ = false;
};

/* weft_mutex, as a C++ value (neither copied nor moved: waiters point at it). Locked from
 * stackful tasks and plain threads only: weft records the holding task, and a stackless
 * task (a weft::task's root) is not one, so there is no lock awaitable; a task that needs
 * mutual exclusion across awaits uses a channel of capacity 1 as a token, or a stackful
 * task. */
class mutex {
public:
    mutex() noexcept = default;
    mutex(const mutex &) = delete;
    mutex &operator=(const mutex &) = delete;
    /* result<lock_guard>: -ETIMEDOUT, -ECANCELED, -EDEADLK, -EPERM (as weft_mutex_lock). */
    result<lock_guard> lock(int64_t deadline = forever) noexcept
    {
        int r = weft_mutex_lock(&m_, deadline);
        if (r < 0 && r != -EOWNERDEAD)
            return fail(r);
        return lock_guard(&m_, r == -EOWNERDEAD);
    }
    /* -EBUSY when held. */
    result<lock_guard> try_lock() noexcept
    {
        int r = weft_mutex_try_lock(&m_);
        if (r < 0 && r != -EOWNERDEAD)
            return fail(r);
        return lock_guard(&m_, r == -EOWNERDEAD);
    }
    weft_mutex *native() noexcept { return &m_; }

private:
    weft_mutex m_ = WEFT_MUTEX_INIT;
};

inline int lock_guard::unlock() noexcept
{
    if (!m_)
        return 0;
    int r = weft_mutex_unlock(m_);
    if (r == 0)
        m_ = nullptr; /* refused: the mutex is still locked, so the guard still owns it */
    return r;
}

/* ---- the runtime ---------------------------------------------------------------------- */

namespace detail {
template <class R>
struct unwrap_task {
    using type = R;
    static constexpr bool is_task = false;
};
template <class U>
struct unwrap_task<task<U>> {
    using type = U;
    static constexpr bool is_task = true;
};
} // namespace detail

struct runtime {
    /* Runs fn() as the main task of a new runtime on the calling thread (weft_run with `cfg`,
     * NULL for the defaults) and returns what it returned when the runtime has shut down. If
     * fn returns a task<U>, that task is run to its end (block_on) and its U is returned.
     * Errors: weft_run's (-EINVAL, -EBUSY, -ENOMEM ...), or block_on's. An exception that
     * escapes fn is carried past weft's C frames and rethrown here. */
    template <class F>
    static auto run(const weft_config *cfg, F &&fn)
    {
        using Fn = std::remove_reference_t<F>;
        using R = std::invoke_result_t<Fn &>;
        using U = typename detail::unwrap_task<R>::type;
        struct ctx {
            Fn *fn;
            std::optional<result<U>> out;
#if defined(__cpp_exceptions)
            std::exception_ptr exc;
#endif
        } c{&fn, std::nullopt
#if defined(__cpp_exceptions)
            ,
            nullptr
#endif
        };
        auto body = [](void *p) -> void * {
            ctx *x = static_cast<ctx *>(p);
#if defined(__cpp_exceptions)
            try {
#endif
                if constexpr (detail::unwrap_task<R>::is_task) {
                    x->out.emplace(block_on((*x->fn)()));
                } else if constexpr (std::is_void_v<R>) {
                    (*x->fn)();
                    x->out.emplace(result<void>());
                } else {
                    x->out.emplace(result<U>((*x->fn)()));
                }
#if defined(__cpp_exceptions)
            } catch (...) {
                x->exc = std::current_exception();
            }
#endif
            return nullptr;
        };
        int r = weft_run(cfg, body, &c, nullptr);
#if defined(__cpp_exceptions)
        if (c.exc)
            std::rethrow_exception(c.exc);
#endif
        if (r < 0)
            return result<U>(fail(r));
        if (!c.out)
            return result<U>(fail(-ECANCELED)); /* the main task was cancelled, or exited */
        return std::move(*c.out);
    }
    template <class F>
    static auto run(F &&fn)
    {
        return run(nullptr, std::forward<F>(fn));
    }
};

} // namespace weft

#endif /* WEFT_HPP */
