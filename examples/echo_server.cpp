/* echo_server.cpp: examples/echo_server.c in C++20 with weft.hpp. weft_serve runs the
 * server on every core (a listener per worker with SO_REUSEPORT, or with --acceptor one
 * acceptor handing connections to the workers in turn); each connection's handler spawns a
 * weft::task that echoes what it reads until its peer hangs up, and joins it. Each worker
 * keeps the list of its own connections (a weft_sharded value). On SIGINT or SIGTERM it stops
 * accepting, gives open connections up to 5 s to finish, cancels what is left (the pending
 * read of each task returns -ECANCELED, so the task closes its socket and returns), and
 * exits 0.
 *
 *   echo_server_cpp [--workers N] [--mode sharded|stealing] [--acceptor] [--debug-port P]
 *                   [--port P] [HOST]
 *                   (defaults: every CPU, sharded, 8080, 127.0.0.1; --port 0: a free port)
 *   echo_server_cpp [--workers N] ... --selftest N
 *                   serve on a free port, run N clients against it in the same runtime,
 *                   check every byte, print how many were echoed, and stop as on a signal.
 *
 * It prints "echo_server_cpp: listening on HOST:PORT (...)" once the port is open. */
#include <weft.hpp>

#include "args.h"
#include "debug_flag.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static constexpr int64_t drain_deadline = 5 * WEFT_SEC;

/* ---- the connections -------------------------------------------------------------------- */

static weft::task<void> echo(int fd)
{
    char buf[4096];
    for (;;) { /* until end of stream, an error, an idle minute or a cancel (-ECANCELED) */
        auto n = co_await weft::read(fd, buf, sizeof buf, weft::deadline_in(60 * WEFT_SEC));
        if (!n || *n == 0)
            break;
        if (!co_await weft::write(fd, buf, *n, weft::deadline_in(10 * WEFT_SEC)))
            break;
    }
    weft_close(fd);
}

/* A live connection, on its handler's stack, linked in its worker's list for the shutdown. */
struct conn {
    conn *prev, *next;
    weft::task_handle<void> *echo;
};

/* One worker's connections: touched by that worker only. */
struct shard {
    conn live;
    size_t nlive;
    weft_promise *drained; /* resolved by the last connection to go, once draining */
};

static weft_sharded *shards;
static std::atomic<long> nserved; /* every worker's connections, for the self-test's line */

/* weft_serve's handler: a stackful task on the connection's worker. */
static void on_conn(int fd, void *)
{
    weft_spawn_opts opts{};
    opts.flags = WEFT_SPAWN_PINNED; /* the fd is this worker's: in stealing mode too */
    auto h = weft::spawn(echo(fd), &opts);
    if (!h) {
        weft_close(fd); /* no memory for its task: drop the connection */
        return;
    }
    nserved.fetch_add(1, std::memory_order_relaxed);
    auto *sh = static_cast<shard *>(weft_sharded_local(shards));
    conn c{&sh->live, sh->live.next, &*h};
    sh->live.next->prev = &c;
    sh->live.next = &c;
    sh->nlive++;
    (void)h->join(); /* the echo task has closed the socket */
    c.prev->next = c.next;
    c.next->prev = c.prev;
    if (--sh->nlive == 0 && sh->drained)
        weft_promise_resolve(sh->drained, nullptr);
}

/* On each worker at the shutdown: waits until its connections have ended or the deadline
 * has passed, then cancels the echo tasks left and waits for them. */
static void *drain_shard(void *arg)
{
    int64_t deadline = *static_cast<const int64_t *>(arg);
    auto *sh = static_cast<shard *>(weft_sharded_local(shards));
    if (sh->nlive == 0 || weft_promise_create(&sh->drained) < 0)
        return nullptr;
    weft_future *f = weft_promise_future(sh->drained);
    if (weft_await(f, nullptr, deadline) < 0) {
        std::fprintf(stderr, "echo_server_cpp: worker %d: cancelling %zu connections\n",
                     weft_worker_index(), sh->nlive);
        for (conn *c = sh->live.next; c != &sh->live; c = c->next)
            c->echo->cancel();
        weft_await(f, nullptr, WEFT_FOREVER);
    }
    weft_promise_release(sh->drained);
    sh->drained = nullptr;
    return nullptr;
}

/* Stops accepting, then drains every worker's connections (drain_shard on each). */
static void shut_down(weft_server *srv)
{
    weft_server_close(srv);
    int64_t deadline = weft_deadline_in(drain_deadline);
    unsigned n = weft_worker_count();
    std::vector<weft_task *> drainers(n, nullptr);
    for (unsigned k = 0; k < n; k++)
        if (weft_spawn_on(k, &drainers[k], drain_shard, &deadline, nullptr) < 0)
            drainers[k] = nullptr;
    for (weft_task *t : drainers)
        if (t)
            weft_join(t, nullptr, WEFT_FOREVER);
}

/* ---- the self-test's clients ------------------------------------------------------------ */

static weft::task<bool> client(weft_addr addr, int id)
{
    auto fd = co_await weft::dial(addr, weft::deadline_in(5 * WEFT_SEC));
    if (!fd)
        co_return false;
    std::string msg = "client " + std::to_string(id) + " says hello\n";
    bool ok = false;
    if (co_await weft::write(*fd, msg.data(), msg.size(), weft::deadline_in(5 * WEFT_SEC))) {
        std::string back(msg.size(), '\0');
        std::size_t got = 0;
        while (got < back.size()) {
            auto n = co_await weft::read(*fd, back.data() + got, back.size() - got,
                                         weft::deadline_in(5 * WEFT_SEC));
            if (!n || *n == 0)
                break;
            got += *n;
        }
        ok = back == msg;
    }
    weft_close(*fd);
    co_return ok;
}

/* From the main task: runs n clients against the server and joins them. */
static int selftest(const weft_addr &addr, int nclients)
{
    std::vector<weft::task_handle<bool>> clients;
    for (int i = 0; i < nclients; i++)
        if (auto h = weft::spawn(client(addr, i)))
            clients.push_back(std::move(*h));
    int ok = 0;
    for (auto &c : clients) {
        auto r = c.join();
        ok += r.ok() && *r;
    }
    return ok;
}

/* ---- the main task ---------------------------------------------------------------------- */

struct options {
    int acceptor = 0;
    long port = 8080;
    const char *host = "127.0.0.1";
    long nclients = 0; /* --selftest N */
    int debug_port = -1;
};

static int serve(const options &o)
{
    weft_addr addr;
    if (weft_addr_ip(&addr, o.host, static_cast<int>(o.port)) < 0) {
        std::fprintf(stderr, "echo_server_cpp: bad address %s\n", o.host);
        return 1;
    }
    auto init = [](void *value, unsigned, void *) {
        auto *sh = static_cast<shard *>(value);
        sh->live.prev = sh->live.next = &sh->live;
    };
    int r = weft_sharded_create(&shards, sizeof(shard), init, nullptr, nullptr);
    weft_server *srv = nullptr;
    if (r == 0 &&
        (r = weft_serve(&srv, &addr, o.acceptor ? WEFT_SERVE_ACCEPTOR : 0, on_conn, nullptr)) < 0)
        weft_sharded_destroy(shards);
    if (r < 0) {
        std::fprintf(stderr, "echo_server_cpp: listen: %s\n", weft_strerror(r));
        return 1;
    }
    example_debug_serve("echo_server_cpp", o.debug_port);
    weft_server_addr(srv, &addr); /* the port the kernel picked, for --port 0 */
    unsigned n = weft_worker_count();
    std::printf("echo_server_cpp: listening on %s:%d (%u worker%s%s)\n", o.host,
                weft_addr_port(&addr), n, n == 1 ? "" : "s",
                n == 1       ? ""
                : o.acceptor ? ", one acceptor"
                             : ", SO_REUSEPORT");
    std::fflush(stdout);

    int status = 0;
    if (o.nclients > 0) {
        int ok = selftest(addr, static_cast<int>(o.nclients));
        std::printf("%d of %ld clients echoed\n", ok, o.nclients);
        status = ok == o.nclients ? 0 : 1;
    } else {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        int sig = weft_signal_wait(&set, WEFT_FOREVER);
        std::fprintf(stderr, "echo_server_cpp: signal %d: draining\n", sig);
    }
    shut_down(srv);
    weft_sharded_destroy(shards);
    std::printf("echo_server_cpp: bye (%ld connections served)\n", nserved.load());
    return status;
}

static int usage()
{
    std::fprintf(stderr, "usage: echo_server_cpp [--workers N] [--mode sharded|stealing] "
                         "[--acceptor] [--debug-port P] [--port P] [HOST] | ... --selftest N\n");
    return 2;
}

int main(int argc, char **argv)
{
    /* A flag missing its value, an unknown one, a bad number or an extra argument is refused
     * ("--port abc" served on port 0). */
    options o;
    o.debug_port = example_take_debug_port(&argc, argv);
    if (o.debug_port == -2)
        return usage();
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.mode = WEFT_MODE_SHARDED;
    bool have_host = false;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
        long workers;
        if (!std::strcmp(argv[i], "--port")) {
            if (example_parse_long(value, 0, 65535, &o.port) < 0)
                return usage();
            i++;
        } else if (!std::strcmp(argv[i], "--selftest")) {
            if (example_parse_long(value, 1, 100000, &o.nclients) < 0)
                return usage();
            i++;
        } else if (!std::strcmp(argv[i], "--workers")) {
            if (example_parse_long(value, 1, WEFT_WORKERS_MAX, &workers) < 0)
                return usage();
            cfg.workers = static_cast<unsigned>(workers);
            i++;
        } else if (!std::strcmp(argv[i], "--mode") && value) {
            if (!std::strcmp(value, "sharded"))
                cfg.mode = WEFT_MODE_SHARDED;
            else if (!std::strcmp(value, "stealing"))
                cfg.mode = WEFT_MODE_STEALING;
            else
                return usage();
            i++;
        } else if (!std::strcmp(argv[i], "--acceptor")) {
            o.acceptor = 1;
        } else if (argv[i][0] == '-' || have_host) {
            return usage();
        } else {
            o.host = argv[i];
            have_host = true;
        }
    }
    if (o.nclients > 0) /* the self-test serves on a free port of the loopback */
        o.port = 0, o.host = "127.0.0.1";
    auto r = weft::runtime::run(&cfg, [&] { return serve(o); });
    if (!r) {
        std::fprintf(stderr, "echo_server_cpp: %s\n", r.message());
        return 1;
    }
    return *r;
}
