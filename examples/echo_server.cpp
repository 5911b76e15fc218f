/* echo_server.cpp: examples/echo_server.c in C++20 with weft.hpp. A weft::task accepts on a
 * listener and spawns a task per connection, each echoing what it reads until its peer hangs
 * up. `--selftest N` serves on a port the kernel picks, runs N clients against it in the same
 * runtime, checks every byte, and prints how many were echoed.
 * Usage: echo_server_cpp [--port P] | --selftest N */
#include <weft.hpp>

#include "args.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static weft::task<void> serve_conn(int fd)
{
    char buf[4096];
    for (;;) {
        auto n = co_await weft::read(fd, buf, sizeof buf, weft::deadline_in(60 * WEFT_SEC));
        if (!n || *n == 0)
            break; /* an error, an idle minute, or the peer's end of stream */
        if (!co_await weft::write(fd, buf, *n, weft::deadline_in(10 * WEFT_SEC)))
            break;
    }
    weft_close(fd);
}

/* Accepts until cancelled; returns the connections served. */
static weft::task<long> accept_loop(int lfd)
{
    long n = 0;
    for (;;) {
        auto fd = co_await weft::accept(lfd);
        if (!fd) {
            if (fd.error() == -ECANCELED)
                co_return n;
            std::fprintf(stderr, "accept: %s\n", fd.message());
            continue;
        }
        if (auto h = weft::spawn(serve_conn(*fd)); !h)
            weft_close(*fd); /* no memory for its task: drop the connection */
        n++; /* the handle goes out of scope: the connection's task runs on, detached */
    }
}

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

static weft::task<int> selftest(int nclients)
{
    weft_addr addr;
    weft_addr_ip(&addr, "127.0.0.1", 0);
    int lfd = weft_listen(&addr, 0, 0);
    if (lfd < 0 || weft_addr_local(lfd, &addr) < 0)
        co_return 1;
    auto server = weft::spawn(accept_loop(lfd));
    if (!server)
        co_return 1;
    std::vector<weft::task_handle<bool>> clients;
    for (int i = 0; i < nclients; i++)
        if (auto h = weft::spawn(client(addr, i)))
            clients.push_back(std::move(*h));
    int ok = 0;
    for (auto &c : clients) {
        auto r = co_await c;
        ok += r.ok() && *r;
    }
    server->cancel(); /* its pending accept returns -ECANCELED */
    auto served = co_await *server;
    weft_close(lfd);
    std::printf("%d of %d clients echoed (%ld connections served)\n", ok, nclients,
                served.value_or(-1L));
    co_return ok == nclients ? 0 : 1;
}

static weft::task<int> serve(int port)
{
    weft_addr addr;
    weft_addr_ip(&addr, "0.0.0.0", port);
    int lfd = weft_listen(&addr, 0, 0);
    if (lfd < 0) {
        std::fprintf(stderr, "listen on port %d: %s\n", port, weft_strerror(lfd));
        co_return 1;
    }
    std::printf("echo server on port %d\n", port);
    std::fflush(stdout);
    auto n = co_await accept_loop(lfd);
    weft_close(lfd);
    co_return n >= 0 ? 0 : 1;
}

static int usage()
{
    std::fprintf(stderr, "usage: echo_server_cpp [--port P] | --selftest N\n");
    return 2;
}

int main(int argc, char **argv)
{
    /* Every flag takes a number; a flag missing its value, an unknown one or a bad number is
     * refused (they were skipped, and "--port abc" served on port 0). */
    long port = 8080, nclients = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (!std::strcmp(argv[i], "--port")) {
            if (example_parse_long(value, 1, 65535, &port) < 0)
                return usage();
        } else if (!std::strcmp(argv[i], "--selftest")) {
            if (example_parse_long(value, 1, 100000, &nclients) < 0)
                return usage();
        } else {
            return usage();
        }
    }
    auto r = weft::runtime::run([&] {
        return nclients > 0 ? selftest(static_cast<int>(nclients)) : serve(static_cast<int>(port));
    });
    if (!r) {
        std::fprintf(stderr, "echo_server_cpp: %s\n", r.message());
        return 1;
    }
    return *r;
}
