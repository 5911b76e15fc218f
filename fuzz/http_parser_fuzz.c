/* http_parser_fuzz.c: libFuzzer target for weft-httpd's request parser (and the path and
 * range helpers that read what it returns). Beyond "no crash" it checks the parser's
 * contract on every input:
 * - incremental == one-shot: the input fed in pieces (sizes taken from its first byte, then
 *   cut in two at every 97th point) gives the same result and the same views;
 * - every view lies inside the head that was parsed;
 * - pipelined heads parse one after the other the same way;
 * - a normalised path starts with '/', holds no NUL, no "//", and no "." or ".." segment;
 * - after a head with a chunked body, the body decoder gives the same verdict, consumed
 *   count and data count whole and in pieces, and never consumes past its input.
 * Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_http_fuzz.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "parser.h"

#include "fuzz_check.h"

static void view_inside(http_view v, const char *b, size_t n)
{
    if (v.p == NULL) {
        CHECK(v.len == 0);
        return;
    }
    CHECK(v.p >= b && v.p <= b + n && v.len <= (size_t)(b + n - v.p));
}

static void same_view(http_view a, http_view b)
{
    CHECK(a.p == b.p && a.len == b.len);
}

static void same_request(const http_request *a, const http_request *b)
{
    CHECK(a->method == b->method);
    same_view(a->method_name, b->method_name);
    same_view(a->target, b->target);
    same_view(a->path, b->path);
    same_view(a->query, b->query);
    same_view(a->host, b->host);
    same_view(a->request_line, b->request_line);
    CHECK(a->version_minor == b->version_minor);
    CHECK(a->nheaders == b->nheaders);
    for (unsigned i = 0; i < a->nheaders; i++) {
        same_view(a->headers[i].name, b->headers[i].name);
        same_view(a->headers[i].value, b->headers[i].value);
    }
    CHECK(a->content_length == b->content_length && a->chunked == b->chunked &&
          a->keep_alive == b->keep_alive);
}

static void check_path(const http_request *r)
{
    char out[4096];
    int n = httpd_normalize_path(r->path, out, sizeof out);
    if (n < 0) {
        CHECK(n == -400 || n == -414);
        return;
    }
    CHECK((size_t)n == strlen(out) && out[0] == '/');
    CHECK(strstr(out, "//") == NULL);
    for (int i = 0; i < n; i++) {
        if (out[i] != '/')
            continue;
        const char *seg = out + i + 1;
        CHECK(!(seg[0] == '.' && (seg[1] == '/' || seg[1] == '\0')));
        CHECK(!(seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == '\0')));
    }
}

static void check_helpers(const http_request *r)
{
    check_path(r);
    const http_header *h = http_find_header(r, "range");
    if (h) {
        for (int64_t size = 0; size < 3000; size += 999) {
            httpd_range rg[HTTPD_MAX_RANGES];
            int pr = httpd_parse_ranges(h->value, size, rg, HTTPD_MAX_RANGES);
            CHECK(pr == -416 || (pr >= 0 && pr <= HTTPD_MAX_RANGES));
            int64_t total = 0;
            for (int i = 0; i < pr; i++) {
                CHECK(0 <= rg[i].first && rg[i].first <= rg[i].last && rg[i].last < size);
                total += rg[i].last - rg[i].first + 1;
            }
            CHECK(total <= size);
        }
    }
    h = http_find_header(r, "if-none-match");
    if (h) {
        httpd_etag_match(h->value, "\"1-2\"", 5, 0); /* If-None-Match's weak comparison */
        httpd_etag_match(h->value, "\"1-2\"", 5, 1); /* If-Match's strong one */
    }
    h = http_find_header(r, "if-modified-since");
    time_t t;
    /* A fixed "now" (2023-11-14) keeps a run deterministic: it places rfc850-date's years. */
    if (h && httpd_parse_http_date(h->value, 1700000000, &t) == 0)
        CHECK(t >= 0); /* years before 1970 are refused */
}

/* A chunked body at the start of b[0 .. n): returns the bytes it took when it ended, 0 when
 * it wants more, or the error; the same whole and in pieces of `step`. */
static int64_t check_chunked(const char *b, size_t n, unsigned step)
{
    const int64_t limit = 1000; /* small, so that 413 is reached too */
    http_chunked whole, inc;
    http_chunked_init(&whole);
    int done = 0;
    int64_t r = http_chunked_feed(&whole, b, n, limit, &done);
    CHECK(r == -400 || r == -413 || (r >= 0 && (size_t)r <= n));
    CHECK(r < 0 || done || (size_t)r == n);
    CHECK(whole.total >= 0 && whole.total <= limit);
    http_chunked_init(&inc);
    size_t off = 0;
    int64_t ri = 0;
    int idone = 0;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        ri = http_chunked_feed(&inc, b + off, k, limit, &idone);
        if (ri < 0)
            break;
        CHECK((size_t)ri <= k);
        off += (size_t)ri;
        if (idone)
            break;
        CHECK((size_t)ri == k);
    }
    if (r < 0) {
        CHECK(ri == r);
        return r;
    }
    CHECK(ri >= 0 && idone == done && inc.total == whole.total);
    CHECK(!done || off == (size_t)r);
    return done ? r : 0;
}

/* One head at the start of b[0 .. n): returns its result, checked against other splits. */
static int check_one(const char *b, size_t n, unsigned step, int *chunked)
{
    static http_parser whole, inc;
    http_parser_init(&whole);
    int r = http_parse(&whole, b, n);
    CHECK(r <= (int)n);
    CHECK(r >= 0 || r == -400 || r == -414 || r == -431 || r == -501 || r == -505);
    if (r > 0) {
        http_request *q = &whole.req;
        view_inside(q->method_name, b, (size_t)r);
        view_inside(q->target, b, (size_t)r);
        view_inside(q->path, b, (size_t)r);
        view_inside(q->query, b, (size_t)r);
        view_inside(q->host, b, (size_t)r);
        view_inside(q->request_line, b, (size_t)r);
        CHECK(q->nheaders <= HTTP_MAX_HEADERS);
        for (unsigned i = 0; i < q->nheaders; i++) {
            view_inside(q->headers[i].name, b, (size_t)r);
            view_inside(q->headers[i].value, b, (size_t)r);
        }
        check_helpers(q);
        *chunked = q->chunked;
    }

    /* In pieces of `step` bytes. */
    http_parser_init(&inc);
    int ri = 0;
    for (size_t k = step < n ? step : n; ri == 0; k = k + step < n ? k + step : n) {
        ri = http_parse(&inc, b, k);
        if (k == n)
            break;
    }
    CHECK(ri == r);
    if (r > 0)
        same_request(&inc.req, &whole.req);

    /* In two pieces, cut at every 97th byte. */
    for (size_t cut = 1; cut < n; cut += 97) {
        http_parser_init(&inc);
        ri = http_parse(&inc, b, cut);
        if (ri == 0)
            ri = http_parse(&inc, b, n);
        CHECK(ri == r);
        if (r > 0)
            same_request(&inc.req, &whole.req);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned step = data[0] % 13 + 1;
    /* An exact-size copy, so that ASan sees any read past the end. */
    char *buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    size_t off = 0, n = size - 1;
    for (int i = 0; i < 8 && off < n; i++) {
        int chunked = 0;
        int r = check_one(buf + off, n - off, step, &chunked);
        if (r <= 0)
            break;
        off += (size_t)r;
        if (chunked) {
            int64_t c = check_chunked(buf + off, n - off, step);
            if (c <= 0)
                break;
            off += (size_t)c;
        }
    }
    free(buf);
    return 0;
}
