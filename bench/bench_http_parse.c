/* http_parse: weft-httpd's request parser alone (apps/httpd/parser.c) on a typical browser
 * request (Firefox's GET of a script: 10 header lines, 338 bytes), 1,000,000 parses per run,
 * ns per request (thread CPU time, median of BENCH_REPEATS runs), in three shapes: whole, fed
 * in two halves (the parse resumes at the cut), and 16 pipelined in one buffer. */
#include <string.h>

#include "bench_common.h"
#include "parser.h"

static const char request[] =
    "GET /assets/app.js?v=3 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Referer: http://example.com/\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Cookie: session=4f2a9c1e7b; theme=dark\r\n"
    "\r\n";

/* Keeps the compiler from dropping a parse whose result is unused. */
static volatile size_t sink;

static double run(const char *buf, size_t len, long n, int halves, int per_buf)
{
    static http_parser p;
    int64_t t0 = bench_cpu_ns();
    for (long i = 0; i < n; i += per_buf) {
        size_t off = 0;
        for (int k = 0; k < per_buf; k++) {
            http_parser_init(&p);
            int r = halves ? http_parse(&p, buf + off, len / 2) : 0;
            if (r == 0)
                r = http_parse(&p, buf + off, len - off);
            if (r <= 0)
                abort();
            sink += p.req.nheaders;
            off += (size_t)r;
        }
    }
    return (double)(bench_cpu_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    long n = bench_n(argc, argv, 1000000);
    size_t len = strlen(request);
    char pipelined[16 * sizeof request];
    for (int k = 0; k < 16; k++)
        memcpy(pipelined + (size_t)k * len, request, len);
    struct {
        const char *name;
        const char *buf;
        size_t len;
        int halves, per_buf;
    } cases[] = {
        {"whole", request, len, 0, 1},
        {"split", request, len, 1, 1},
        {"pipelined16", pipelined, 16 * len, 0, 16},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double v[BENCH_REPEATS];
        for (int r = 0; r < BENCH_REPEATS; r++)
            v[r] = run(cases[c].buf, cases[c].len, n, cases[c].halves, cases[c].per_buf);
        char extra[64];
        snprintf(extra, sizeof extra, ",\"shape\":\"%s\",\"bytes\":%zu", cases[c].name, len);
        bench_emit("weft", "http_parse", n, bench_median(v, BENCH_REPEATS), "ns/request", extra);
    }
    return 0;
}
