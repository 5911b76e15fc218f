/* http_fetch.cpp: N concurrent HTTP/1.0 GETs from C++20 tasks (weft.hpp): a task per
 * request dials, writes the request, reads the answer to its end and parses its status line;
 * the main task spawns them all, then joins each. `--selftest N` first starts a tiny HTTP
 * server in the same runtime, on a port the kernel picks, and fetches from it.
 * Usage: http_fetch [--debug-port P] [-n N] [--path /p] [HOST:PORT (127.0.0.1:8080)]
 *        http_fetch [--debug-port P] --selftest N */
#include <weft.hpp>

#include "args.h"
#include "debug_flag.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct response {
    int status; /* the HTTP status, or a negative errno */
    std::size_t bytes;
};

static weft::task<response> fetch(weft_addr addr, std::string host, std::string path)
{
    const int64_t deadline = weft::deadline_in(10 * WEFT_SEC); /* the whole request's */
    auto fd = co_await weft::dial(addr, deadline);
    if (!fd)
        co_return response{fd.error(), 0};
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
    std::string answer;
    auto w = co_await weft::write(*fd, req.data(), req.size(), deadline);
    int err = w ? 0 : w.error();
    char buf[4096];
    while (!err && answer.size() < (1u << 20)) {
        auto n = co_await weft::read(*fd, buf, sizeof buf, deadline);
        if (!n)
            err = n.error();
        else if (*n == 0)
            break; /* HTTP/1.0: the server closes after the answer */
        else
            answer.append(buf, *n);
    }
    weft_close(*fd);
    if (err)
        co_return response{err, answer.size()};
    int status = 0;
    if (std::sscanf(answer.c_str(), "HTTP/%*d.%*d %d", &status) != 1)
        status = -EPROTO;
    co_return response{status, answer.size()};
}

/* The self-test's server: one request per connection, always 200. */
static weft::task<void> answer(int fd)
{
    char buf[2048];
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < sizeof buf * 4) {
        auto n = co_await weft::read(fd, buf, sizeof buf, weft::deadline_in(5 * WEFT_SEC));
        if (!n || *n == 0)
            break;
        req.append(buf, *n);
    }
    static const char ok[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 6\r\n\r\nhello\n";
    (void)co_await weft::write(fd, ok, sizeof ok - 1, weft::deadline_in(5 * WEFT_SEC));
    weft_close(fd);
}

static weft::task<void> server(int lfd)
{
    for (;;) {
        auto fd = co_await weft::accept(lfd);
        if (!fd && fd.error() == -ECANCELED)
            co_return;
        if (fd && !weft::spawn(answer(*fd)))
            weft_close(*fd);
    }
}

static weft::task<int> run(weft_addr addr, std::string host, std::string path, int n, bool self)
{
    weft::task_handle<void> srv;
    int lfd = -1;
    if (self) {
        lfd = weft_listen(&addr, 0, 0);
        if (lfd < 0 || weft_addr_local(lfd, &addr) < 0)
            co_return 1;
        host = "127.0.0.1:" + std::to_string(weft_addr_port(&addr));
        if (auto h = weft::spawn(server(lfd)))
            srv = std::move(*h);
    }
    std::vector<weft::task_handle<response>> hs;
    for (int i = 0; i < n; i++)
        if (auto h = weft::spawn(fetch(addr, host, path)))
            hs.push_back(std::move(*h));
    int nok = 0;
    std::size_t bytes = 0;
    for (auto &h : hs) {
        auto r = co_await h;
        if (!r)
            continue;
        if (r->status == 200)
            nok++;
        else if (r->status < 0)
            std::fprintf(stderr, "request: %s\n", weft_strerror(r->status));
        else
            std::fprintf(stderr, "request: HTTP %d\n", r->status);
        bytes += r->bytes;
    }
    if (self) {
        srv.cancel();
        (void)co_await srv;
        weft_close(lfd);
    }
    std::printf("%d of %d requests: 200 OK (%zu bytes from %s)\n", nok, n, bytes, host.c_str());
    co_return nok == n ? 0 : 1;
}

static int usage()
{
    std::fprintf(
        stderr,
        "usage: http_fetch [--debug-port P] [-n N] [--path PATH] [HOST:PORT] | --selftest N\n");
    return 2;
}

int main(int argc, char **argv)
{
    int debug_port = example_take_debug_port(&argc, argv);
    if (debug_port == -2)
        return usage();
    int n = 10;
    bool self = false;
    std::string target = "127.0.0.1:8080", path = "/";
    /* A flag missing its value, another flag or a bad count is refused: "-n abc" made 0
     * requests and reported success, and "-n" alone was taken for the target. */
    long count = n;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!std::strcmp(argv[i], "-n") || !std::strcmp(argv[i], "--selftest")) {
            if (example_parse_long(has_value ? argv[i + 1] : nullptr, 1, 100000, &count) < 0)
                return usage();
            if (!std::strcmp(argv[i], "--selftest"))
                self = true, target = "127.0.0.1:0";
            i++;
        } else if (!std::strcmp(argv[i], "--path") && has_value) {
            path = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage();
        } else {
            target = argv[i];
        }
    }
    n = static_cast<int>(count);
    std::size_t colon = target.rfind(':');
    weft_addr addr;
    long port = 0;
    if (colon == std::string::npos ||
        example_parse_long(target.c_str() + colon + 1, self ? 0 : 1, 65535, &port) < 0 ||
        weft_addr_ip(&addr, target.substr(0, colon).c_str(), static_cast<int>(port)) < 0) {
        std::fprintf(stderr, "http_fetch: want a numeric HOST:PORT, got %s\n", target.c_str());
        return usage();
    }
    auto r = weft::runtime::run([&] {
        example_debug_serve("http_fetch", debug_port); /* from the main task: stackful */
        return run(addr, target, path, n, self);
    });
    if (!r) {
        std::fprintf(stderr, "http_fetch: %s\n", r.message());
        return 1;
    }
    return *r;
}
