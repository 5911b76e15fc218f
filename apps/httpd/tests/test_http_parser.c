/* test_http_parser.c: weft-httpd's request parser (every split point of every request gives
 * the one-shot result, pipelined heads, each malformed case with its status, the limits)
 * and the path and header helpers of files.c (normalisation, ranges, validators). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "parser.h"

static int parse_all(http_parser *p, const char *buf, size_t len)
{
    http_parser_init(p);
    return http_parse(p, buf, len);
}

/* Feeds buf one more byte at a time; returns the first non-zero result (0 if none). */
static int parse_bytewise(http_parser *p, const char *buf, size_t len)
{
    http_parser_init(p);
    for (size_t k = 1; k <= len; k++) {
        int r = http_parse(p, buf, k);
        if (r != 0)
            return r;
    }
    return 0;
}

static void expect_same(const http_request *a, const http_request *b)
{
    cr_assert_eq(a->method, b->method);
    cr_assert_eq(a->method_name.p, b->method_name.p);
    cr_assert_eq(a->target.p, b->target.p);
    cr_assert_eq(a->target.len, b->target.len);
    cr_assert_eq(a->path.len, b->path.len);
    cr_assert_eq(a->query.len, b->query.len);
    cr_assert_eq(a->version_minor, b->version_minor);
    cr_assert_eq(a->nheaders, b->nheaders);
    for (unsigned i = 0; i < a->nheaders; i++) {
        cr_assert_eq(a->headers[i].name.p, b->headers[i].name.p);
        cr_assert_eq(a->headers[i].name.len, b->headers[i].name.len);
        cr_assert_eq(a->headers[i].value.p, b->headers[i].value.p);
        cr_assert_eq(a->headers[i].value.len, b->headers[i].value.len);
    }
    cr_assert_eq(a->content_length, b->content_length);
    cr_assert_eq(a->chunked, b->chunked);
    cr_assert_eq(a->keep_alive, b->keep_alive);
}

/* Every way to cut `s` in two, and byte by byte, parses as the whole does. */
static void check_splits(const char *s)
{
    size_t n = strlen(s);
    static http_parser one, inc;
    int whole = parse_all(&one, s, n);
    for (size_t k = 0; k <= n; k++) {
        http_parser_init(&inc);
        int r = http_parse(&inc, s, k);
        if (r == 0)
            r = http_parse(&inc, s, n);
        cr_assert_eq(r, whole, "split at %zu of %s: %d, whole %d", k, s, r, whole);
        if (r > 0)
            expect_same(&inc.req, &one.req);
    }
    int r = parse_bytewise(&inc, s, n);
    cr_assert_eq(r, whole, "byte by byte: %d, whole %d", r, whole);
    if (r > 0)
        expect_same(&inc.req, &one.req);
}

static const char browser[] =
    "GET /assets/app.js?v=3 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Referer: http://example.com/\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "\r\n";

Test(http_parser, browser_request)
{
    static http_parser p;
    int r = parse_all(&p, browser, strlen(browser));
    cr_assert_eq(r, (int)strlen(browser));
    cr_assert_eq(p.req.method, HTTP_M_GET);
    cr_assert(http_view_eq(p.req.path, "/assets/app.js"));
    cr_assert(http_view_eq(p.req.query, "v=3"));
    cr_assert_eq(p.req.version_minor, 1);
    cr_assert_eq(p.req.nheaders, 8);
    cr_assert(http_view_eq(p.req.host, "example.com"));
    cr_assert_eq(p.req.keep_alive, 1);
    cr_assert_eq(p.req.content_length, -1);
    const http_header *h = http_find_header(&p.req, "accept-encoding");
    cr_assert(h && http_view_eq(h->value, "gzip, deflate, br"));
    cr_assert(http_view_eq(p.req.request_line, "get /assets/app.js?v=3 http/1.1"));
}

Test(http_parser, every_split_point)
{
    const char *reqs[] = {
        browser,
        "HEAD / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n",                       /* bare LF */
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",         /* leading empty lines */
        "GET http://h:8080/x?y HTTP/1.1\r\nHost: h\r\n\r\n", /* absolute-form */
        "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: a\r\nX:  v  \t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",                 /* obs-fold: 400 */
        "GET / HTTP/2.0\r\n\r\n",                                       /* 505 */
        "get / HTTP/1.1\r\n\r\n",                                       /* 400 */
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", /* 501 */
        "GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n",                         /* bare CR */
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        check_splits(reqs[i]);
}

Test(http_parser, pipelined)
{
    const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c";
    size_t n = strlen(two);
    static http_parser p;
    int r1 = parse_all(&p, two, n);
    cr_assert_eq(r1, 28);
    cr_assert(http_view_eq(p.req.path, "/a"));
    int r2 = parse_all(&p, two + r1, n - (size_t)r1);
    cr_assert_eq(r2, 29);
    cr_assert_eq(p.req.method, HTTP_M_HEAD);
    cr_assert(http_view_eq(p.req.path, "/b"));
    cr_assert_eq(parse_all(&p, two + r1 + r2, n - (size_t)(r1 + r2)), 0);
}

typedef struct bad_case {
    const char *req;
    int status;
} bad_case;

Test(http_parser, malformed_with_status)
{
    static const bad_case cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", -400},                       /* no Host in 1.1 */
        /* An absolute-form authority is held to the Host rules, and no target has a '#'. */
        {"GET http://a:xx/f HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET http://u@a/f HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET http://a b/f HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /f#frag HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET http://a/f#x HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400}, /* two Hosts */
        {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400},
        /* Host values outside uri-host [":" port] (RFC 9112 3.2), in 1.0 too. */
        {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400},
        {"GET / HTTP/1.0\r\nHost: a b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: []\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", -400},
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET  HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /\r\n\r\n", -400}, /* HTTP/0.9 */
        {"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1234\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/0.9\r\n\r\n", -400},
        {"GET / HTTP/01.1\r\nHost: a\r\n\r\n", -400}, /* nginx: a major starts 1-9 */
        {"GET / HTTP/001.1\r\nHost: a\r\n\r\n", -400},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/3.0\r\n\r\n", -505},
        {"GET a HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400}, /* space before colon */
        {"GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\0z\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\n\tfold\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
         -400},
        {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         -400},
    };
    static http_parser p;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The NUL case has its length from the array, the others from strlen. */
        size_t n = strlen(cases[i].req);
        if (strstr(cases[i].req, "X: a") && cases[i].req[n - 1] != '\n')
            n += 1 + strlen(cases[i].req + n + 1);
        cr_assert_eq(parse_all(&p, cases[i].req, n), cases[i].status, "case %zu: %s", i,
                     cases[i].req);
        cr_assert_eq(parse_bytewise(&p, cases[i].req, n), cases[i].status, "case %zu bytewise", i);
    }
}

Test(http_parser, accepted_forms)
{
    static http_parser p;
    const char *ok[] = {
        "GET  /  HTTP/1.1  \r\nHost: a\r\n\r\n", /* nginx allows extra spaces */
        "GET / HTTP/1.5\r\nHost: a\r\n\r\n",     /* a later 1.x minor reads as 1.1 */
        "FOO_BAR / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", /* UTF-8 in the target */
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",              /* empty Host */
        "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", /* port = *DIGIT */
        "GET / HTTP/1.1\r\nHost: xn--caf-dma.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%41_~!$&'()*+,;=\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Utf8: \xc3\xa9\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_gt(parse_all(&p, ok[i], strlen(ok[i])), 0, "%s", ok[i]);
    cr_assert_eq(parse_all(&p, ok[2], strlen(ok[2])), (int)strlen(ok[2]));
    cr_assert_eq(p.req.method, HTTP_M_OTHER);
}

Test(http_parser, keep_alive_rules)
{
    static http_parser p;
    const char *r10 = "GET / HTTP/1.0\r\n\r\n";
    const char *r10ka = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    const char *r11 = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *r11c = "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n";
    parse_all(&p, r10, strlen(r10));
    cr_assert_eq(p.req.keep_alive, 0);
    parse_all(&p, r10ka, strlen(r10ka));
    cr_assert_eq(p.req.keep_alive, 1);
    parse_all(&p, r11, strlen(r11));
    cr_assert_eq(p.req.keep_alive, 1);
    parse_all(&p, r11c, strlen(r11c));
    cr_assert_eq(p.req.keep_alive, 0);
}

Test(http_parser, body_framing)
{
    static http_parser p;
    const char *cl = "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0042\r\n\r\n";
    cr_assert_gt(parse_all(&p, cl, strlen(cl)), 0);
    cr_assert_eq(p.req.content_length, 42);
    /* 1*DIGIT (RFC 9110 8.6): leading zeros do not count toward the 18-digit limit (nginx
     * reads this as 5 too). */
    const char *zeros =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00000000000000000000005\r\n\r\n";
    cr_assert_gt(parse_all(&p, zeros, strlen(zeros)), 0);
    cr_assert_eq(p.req.content_length, 5);
    const char *te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    cr_assert_gt(parse_all(&p, te, strlen(te)), 0);
    cr_assert_eq(p.req.chunked, 1);
}

/* A request whose request line has `tlen` bytes of target, and `nh` headers of `hlen` bytes. */
static char *build(size_t tlen, unsigned nh, size_t hlen, size_t *len)
{
    size_t cap = tlen + (size_t)nh * (hlen + 2) + 256;
    char *s = malloc(cap);
    size_t n = (size_t)sprintf(s, "GET /");
    memset(s + n, 'a', tlen - 1);
    n += tlen - 1;
    n += (size_t)sprintf(s + n, " HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 0; i < nh; i++) {
        n += (size_t)sprintf(s + n, "X%u: ", i);
        size_t line = (size_t)snprintf(NULL, 0, "X%u: ", i);
        memset(s + n, 'v', hlen - line);
        n += hlen - line;
        s[n++] = '\r';
        s[n++] = '\n';
    }
    s[n++] = '\r';
    s[n++] = '\n';
    *len = n;
    return s;
}

Test(http_parser, limits)
{
    static http_parser p;
    size_t n;
    const size_t rl_extra = strlen("GET  HTTP/1.1\r"); /* request line bytes besides target */
    char *s = build(HTTP_MAX_LINE - rl_extra, 0, 0, &n);
    cr_assert_eq(parse_all(&p, s, n), (int)n, "a request line of exactly the limit");
    free(s);
    s = build(HTTP_MAX_LINE - rl_extra + 1, 0, 0, &n);
    cr_assert_eq(parse_all(&p, s, n), -414);
    cr_assert_eq(parse_bytewise(&p, s, n), -414);
    free(s);
    s = build(20000, 0, 0, &n);
    cr_assert_eq(parse_all(&p, s, 12000), -414, "known before the line ends");
    free(s);

    s = build(10, 1, HTTP_MAX_LINE - 1, &n); /* the CR makes it HTTP_MAX_LINE */
    cr_assert_eq(parse_all(&p, s, n), (int)n);
    free(s);
    s = build(10, 1, HTTP_MAX_LINE, &n);
    cr_assert_eq(parse_all(&p, s, n), -431);
    cr_assert_eq(parse_bytewise(&p, s, n), -431);
    free(s);

    s = build(10, HTTP_MAX_HEADERS - 1, 20, &n); /* with Host: the limit exactly */
    cr_assert_eq(parse_all(&p, s, n), (int)n);
    free(s);
    s = build(10, HTTP_MAX_HEADERS, 20, &n);
    cr_assert_eq(parse_all(&p, s, n), -431);
    free(s);

    /* A line over the limit that already holds an error is that error, not 414/431. */
    s = build(HTTP_MAX_LINE + 100, 0, 0, &n);
    s[100] = '\x01';
    cr_assert_eq(parse_all(&p, s, n), -400);
    free(s);
}

/* The method is known from its token on, for a request refused afterwards too (its version,
 * its target, a header, a line over the limit): the server answers a refused HEAD without a
 * body (RFC 9110 9.3.2). */
Test(http_parser, a_refused_request_keeps_its_method)
{
    static http_parser p;
    const char *refused[] = {
        "HEAD / HTTP/2.0\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.1\r\n\r\n",
        "HEAD * HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_lt(parse_all(&p, refused[i], strlen(refused[i])), 0, "%s", refused[i]);
        cr_assert_eq(p.req.method, HTTP_M_HEAD, "%s", refused[i]);
        cr_assert_eq(parse_bytewise(&p, refused[i], strlen(refused[i])) < 0, 1);
        cr_assert_eq(p.req.method, HTTP_M_HEAD, "%s, byte by byte", refused[i]);
    }
    static char longline[HTTP_MAX_LINE + 100];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "HEAD /", 6);
    cr_assert_eq(parse_all(&p, longline, sizeof longline), -414);
    cr_assert_eq(p.req.method, HTTP_M_HEAD, "a request line over the limit");
}

/* files.c: path normalisation. */
static void norm_is(const char *in, const char *want)
{
    char out[256];
    int r = httpd_normalize_path((http_view){in, strlen(in)}, out, sizeof out);
    cr_assert_geq(r, 0, "%s: %d", in, r);
    cr_assert_str_eq(out, want, "%s", in);
}

static void norm_fails(const char *in, int status)
{
    char out[256];
    cr_assert_eq(httpd_normalize_path((http_view){in, strlen(in)}, out, sizeof out), status, "%s",
                 in);
}

Test(httpd_files, normalize)
{
    norm_is("", "/");
    norm_is("/", "/");
    norm_is("/a/b", "/a/b");
    norm_is("/a//b///c/", "/a/b/c/");
    norm_is("/a/./b/.", "/a/b/");
    norm_is("/a/b/../c", "/a/c");
    norm_is("/a/b/..", "/a/");
    norm_is("/a/%2e%2E/b", "/b");
    norm_is("/a%2Fb", "/a/b");
    norm_is("/caf%C3%A9", "/caf\xc3\xa9");
    norm_is("/a%20b", "/a b");
    norm_is("/..a/b..", "/..a/b..");
    /* A directory is named by the decoded bytes: an escaped final slash or dot segment
     * keeps the trailing '/' as the plain one does. */
    norm_is("/a%2F", "/a/");
    norm_is("/a/%2e", "/a/");
    norm_is("/a/b/%2E%2e", "/a/");
    norm_is("/a/.b", "/a/.b");
    norm_is("/a/b.", "/a/b.");
    norm_fails("/..", -400);
    norm_fails("/../etc/passwd", -400);
    norm_fails("/a/../../etc", -400);
    norm_fails("/%2e%2e/etc/passwd", -400);
    norm_fails("/..%2fetc%2fpasswd", -400);
    norm_fails("/a%2f..%2f..%2fetc", -400);
    norm_fails("/a%00b", -400);
    norm_fails("/a%", -400);
    norm_fails("/a%2", -400);
    norm_fails("/a%zz", -400);
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    norm_fails(big, -414);
    /* The helpers' buffer is 256 bytes: a decoded path of 254 is served, 255 is 414,
     * counted before the segments are resolved (padding with "./", "x/.." or "//", escaped
     * or not, is length too), and after decoding (an escape is one byte). */
    big[254] = '\0';
    char want[256];
    memcpy(want, big, sizeof want);
    norm_is(big, want);
    big[254] = 'a';
    big[255] = '\0';
    norm_fails(big, -414);
    char pad[1024] = "";
    for (int i = 0; i < 100; i++)
        strcat(pad, "/./x/..");
    norm_fails(pad, -414);
    pad[0] = '\0';
    for (int i = 0; i < 256; i++)
        strcat(pad, "/");
    norm_fails(pad, -414);
    pad[0] = '\0';
    for (int i = 0; i < 128; i++) /* 256 decoded bytes */
        strcat(pad, "/%2E");
    norm_fails(pad, -414);
    pad[0] = '\0';
    for (int i = 0; i < 127; i++) /* 254 */
        strcat(pad, "/%2E");
    norm_is(pad, "/");
    /* 1 + 150 decoded bytes in 451 sent: within the limit. */
    strcpy(pad, "/");
    memset(want, 0, sizeof want);
    want[0] = '/';
    for (int i = 0; i < 150; i++) {
        strcat(pad, "%61");
        want[1 + i] = 'a';
    }
    norm_is(pad, want);
}

Test(httpd_files, ranges)
{
    int64_t a, b;
    http_view v;
    httpd_range rg[4];
    int nr;
    /* One range: its first and last in a, b. */
#define RANGE(s)                                                                                   \
    (v = (http_view){(s), strlen(s)}, nr = httpd_parse_ranges(v, 100, rg, 4),                      \
     a = nr > 0 ? rg[0].first : -1, b = nr > 0 ? rg[0].last : -1, nr)
    cr_assert_eq(RANGE("bytes=0-9"), 1);
    cr_assert(a == 0 && b == 9);
    cr_assert_eq(RANGE("bytes=90-"), 1);
    cr_assert(a == 90 && b == 99);
    cr_assert_eq(RANGE("bytes=-10"), 1);
    cr_assert(a == 90 && b == 99);
    cr_assert_eq(RANGE("bytes=-1000"), 1);
    cr_assert(a == 0 && b == 99);
    cr_assert_eq(RANGE("bytes=50-1000"), 1);
    cr_assert(a == 50 && b == 99);
    cr_assert_eq(RANGE("bytes=100-"), -416);
    cr_assert_eq(RANGE("bytes=-0"), -416);
    /* Lists: in the order sent, unsatisfiable ones left out, empty elements and spaces
     * skipped; more than `max`, or lengths adding up past the file (overlaps, repeats): the
     * whole file; a bad element anywhere: the whole file. */
    cr_assert_eq(RANGE("bytes=0-1,5-6"), 2);
    cr_assert(rg[0].first == 0 && rg[0].last == 1 && rg[1].first == 5 && rg[1].last == 6);
    cr_assert_eq(RANGE("bytes=50-59, -10 ,,0-0"), 3);
    cr_assert(rg[0].first == 50 && rg[1].first == 90 && rg[1].last == 99 && rg[2].last == 0);
    cr_assert_eq(RANGE("bytes=200-300,5-6"), 1);
    cr_assert(a == 5 && b == 6);
    cr_assert_eq(RANGE("bytes=200-300,100-"), -416);
    cr_assert_eq(RANGE("bytes=0-1,1-2,2-3,3-4"), 4);
    cr_assert_eq(RANGE("bytes=0-1,1-2,2-3,3-4,4-5"), 0);
    cr_assert_eq(RANGE("bytes=0-60,40-99"), 0);
    cr_assert_eq(RANGE("bytes=0-49,50-99"), 2);
    cr_assert_eq(RANGE("bytes=-60,-60"), 0);
    cr_assert_eq(RANGE("bytes=0-1,x"), 0);
    cr_assert_eq(RANGE("bytes=0-1,5-1"), 0);
    cr_assert_eq(RANGE("bytes=0-1;5-6"), 0);
    cr_assert_eq(RANGE("bytes=,"), 0);
    cr_assert_eq(RANGE("bytes= "), 0);
    cr_assert_eq(RANGE("bytes=5-1"), 0);
    cr_assert_eq(RANGE("items=0-1"), 0);
    cr_assert_eq(RANGE("bytes=x-1"), 0);
    cr_assert_eq(RANGE("bytes=1-2x"), 0);
    /* Positions past int64: syntactically valid; the last clamped, the first unsatisfiable. */
    cr_assert_eq(RANGE("bytes=0-99999999999999999999999"), 1);
    cr_assert(a == 0 && b == 99);
    cr_assert_eq(RANGE("bytes=5-9223372036854775808"), 1);
    cr_assert(a == 5 && b == 99);
    cr_assert_eq(RANGE("bytes=99999999999999999999999-"), -416);
    cr_assert_eq(RANGE("bytes=99999999999999999999999-99999999999999999999999"), -416);
    cr_assert_eq(RANGE("bytes=99999999999999999999999-5"), 0); /* last < first: invalid */
    cr_assert_eq(RANGE("bytes=-99999999999999999999999"), 1);
    cr_assert(a == 0 && b == 99);
    cr_assert_eq(RANGE("bytes=0000000000000000000000000000010-19"), 1);
    cr_assert(a == 10 && b == 19);
#undef RANGE
}

/* A file over 4 EiB (a sparse one on tmpfs or XFS may be up to INT64_MAX bytes): the lengths
 * of two ranges add up past int64. The sum overflowed (found by fuzz/httpd_files_fuzz.c):
 * UBSan's error, and in a plain build a negative total that passed the "adds up past the
 * file" rule, so "bytes=0-,-1" was two parts over 2^63 bytes. Now it is the whole file, as
 * any list whose lengths add up past the file. */
Test(httpd_files, ranges_of_a_huge_file)
{
    httpd_range rg[4];
    const int64_t size = INT64_MAX;
#define RANGES(s) httpd_parse_ranges((http_view){(s), strlen(s)}, size, rg, 4)
    cr_assert_eq(RANGES("bytes=0-,-1"), 0);
    cr_assert_eq(RANGES("bytes=0-4611686018427387904,4611686018427387904-"), 0);
    cr_assert_eq(RANGES("bytes=1-,0-0"), 2);
    cr_assert(rg[0].first == 1 && rg[0].last == size - 1 && rg[1].first == 0 && rg[1].last == 0);
    cr_assert_eq(RANGES("bytes=0-"), 1);
    cr_assert(rg[0].first == 0 && rg[0].last == size - 1);
#undef RANGES
}

Test(httpd_files, validators)
{
    const char *etag = "\"5f-10\"";
    size_t el = strlen(etag);
#define INM(s) httpd_etag_match((http_view){(s), strlen(s)}, etag, el, 0)
    cr_assert(INM("\"5f-10\""));
    cr_assert(INM("W/\"5f-10\""));
    cr_assert(INM("\"x\", \"5f-10\""));
    cr_assert(INM("*"));
    cr_assert(!INM("\"5f-11\""));
    cr_assert(!INM("5f-10"));
#undef INM
    /* If-Match's strong comparison: a weak tag never matches, "*" does. */
#define IM(s) httpd_etag_match((http_view){(s), strlen(s)}, etag, el, 1)
    cr_assert(IM("\"5f-10\""));
    cr_assert(!IM("W/\"5f-10\""));
    cr_assert(IM("W/\"5f-10\", \"5f-10\""));
    cr_assert(IM("*"));
    cr_assert(!IM("\"x\""));
    /* "*" is the whole field or nothing (RFC 9110 13.1.1-2: "*" / #entity-tag): in a list it
     * is malformed, which matches nothing, as nginx reads it (If-Match gets its 412). */
    cr_assert(!IM("\"x\", *"));
    cr_assert(!IM("*, \"x\""));
    cr_assert(!IM("**"));
    cr_assert(!httpd_etag_match((http_view){"\"x\", *", 6}, etag, el, 0));
#undef IM
    char d[32];
    cr_assert_eq(httpd_http_date(784111777, d, sizeof d), 29);
    cr_assert_str_eq(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    /* An mtime outside gmtime's years (tmpfs takes 2^62 s, and -2^62) or past 9999 is
     * clamped to a four-digit year: gmtime_r failed on it and its unset tm was read (out of
     * bounds names, a crash of the server at the file's first request). */
    cr_assert_eq(httpd_http_date((time_t)1 << 62, d, sizeof d), 29);
    cr_assert_str_eq(d, "Fri, 31 Dec 9999 23:59:59 GMT");
    cr_assert_eq(httpd_http_date(253402300800, d, sizeof d), 29); /* 10000-01-01 */
    cr_assert_str_eq(d, "Fri, 31 Dec 9999 23:59:59 GMT");
    cr_assert_eq(httpd_http_date(-((time_t)1 << 62), d, sizeof d), 29);
    cr_assert_str_eq(d, "Sat, 01 Jan 0000 00:00:00 GMT");
    cr_assert_eq(httpd_http_date(-1, d, sizeof d), 29);
    cr_assert_str_eq(d, "Wed, 31 Dec 1969 23:59:59 GMT");
    cr_assert_str_eq(httpd_mime_type("a/b.HTML", 8), "text/html");
    cr_assert_str_eq(httpd_mime_type("a.tar.gz", 8), "application/gzip");
    cr_assert_str_eq(httpd_mime_type("a.d/file", 8), "application/octet-stream");
    cr_assert_str_eq(httpd_mime_type("noext", 5), "application/octet-stream");
}

/* RFC 9110 5.6.7: the three forms of HTTP-date are all accepted, each exactly. */
Test(httpd_files, http_dates)
{
    const time_t now = 1700000000; /* 2023-11-14: rfc850-date's years are placed around it */
    time_t t;
#define DATE(s) httpd_parse_http_date((http_view){(s), strlen(s)}, now, &t)
    cr_assert_eq(DATE("Sun, 06 Nov 1994 08:49:37 GMT"), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(DATE("Sunday, 06-Nov-94 08:49:37 GMT"), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(DATE("Sun Nov  6 08:49:37 1994"), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(DATE("Thu Nov 16 08:49:37 2023"), 0);
    cr_assert_eq(t, 1700124577);
    /* Two-digit years: within 50 years of now (2023), so 24 is 2024 and 74 is 1974. */
    cr_assert_eq(DATE("Wednesday, 06-Nov-24 08:49:37 GMT"), 0);
    cr_assert_eq(t, 1730882977);
    cr_assert_eq(DATE("Wednesday, 06-Nov-74 08:49:37 GMT"), 0);
    cr_assert_eq(t, 152959777);
    const char *bad[] = {
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1969 08:49:37 GMT",
        "",
        "Sun Nov  6 08:49:3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(DATE(bad[i]), -1, "%s", bad[i]);
#undef DATE
}

/* Feeds a chunked body in pieces of `piece` bytes (0: all at once). Returns the decoder's
 * verdict: the offset just past the body when it ended, 0 when it wants more, or -status. */
static int64_t chunked_in_pieces(const char *body, size_t len, size_t piece, int64_t limit,
                                 int64_t *total)
{
    http_chunked d;
    http_chunked_init(&d);
    size_t off = 0;
    while (off < len) {
        size_t n = piece && len - off > piece ? piece : len - off;
        int done = 0;
        int64_t r = http_chunked_feed(&d, body + off, n, limit, &done);
        if (r < 0)
            return r;
        cr_assert_leq((size_t)r, n);
        off += (size_t)r;
        if (done) {
            *total = d.total;
            return (int64_t)off;
        }
        cr_assert_eq((size_t)r, n, "a piece not consumed while the body goes on");
    }
    *total = d.total;
    return 0;
}

Test(http_chunked, every_split_gives_the_same)
{
    static const char *bodies[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n",
        "00005\nhello\n0\n\n",
        "1;a;b=\"q\"\r\nx\r\n000\r\n\r\n",
        "0\r\n\r\n",
    };
    static const int64_t totals[] = {5, 15, 5, 1, 0};
    for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
        char buf[256];
        size_t len = strlen(bodies[b]);
        /* The next pipelined request follows: it must be left unconsumed. */
        snprintf(buf, sizeof buf, "%sGET / HTTP/1.1\r\n", bodies[b]);
        for (size_t piece = 0; piece <= len; piece++) {
            int64_t total = -1;
            int64_t r = chunked_in_pieces(buf, strlen(buf), piece, 1000, &total);
            cr_assert_eq(r, (int64_t)len, "body %zu piece %zu: %lld", b, piece, (long long)r);
            cr_assert_eq(total, totals[b]);
        }
    }
}

Test(http_chunked, malformed)
{
    static const char *bad[] = {
        "\r\n",                    /* no size */
        "g\r\n",                   /* not hex */
        "-1\r\n",                  /* sign */
        "5\rhello\r\n0\r\n\r\n",   /* bare CR after the size */
        "5\r\nhelloX0\r\n\r\n",    /* no CRLF after the data */
        "5\r\nhello\r\r0\r\n\r\n", /* CR without LF after the data */
        "5 x\r\nhello\r\n",        /* junk after the size */
        "5;a\x01\r\nhello\r\n",    /* control byte in an extension */
        "0\r\n folded\r\n\r\n",    /* obs-fold in the trailers */
        "0\r\nX: a\x7f\r\n\r\n",   /* control byte in a trailer */
        "0\r\nX: 1\r\r\n",         /* bare CR in the trailers */
        "0\r\n\rX",                /* bare CR at the end */
        /* A trailer line that is no field: a pipelined request taken for trailers would
         * have vanished (a review, session 23), and a proxy may see it as the next one. */
        "0\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", "0\r\nnocolon\r\n\r\n", /* a token and no ':' */
        "0\r\n: v\r\n\r\n",                                                /* no field name */
    };
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
        for (size_t piece = 0; piece < 4; piece++) {
            int64_t total;
            cr_assert_eq(chunked_in_pieces(bad[b], strlen(bad[b]), piece, 1000, &total), -400,
                         "case %zu piece %zu", b, piece);
        }
}

Test(http_chunked, limits)
{
    int64_t total;
    /* The data limit, at its edge: 10 bytes pass a limit of 10, 11 do not (413 at the size,
     * before any data). */
    const char *ten = "a\r\n0123456789\r\n0\r\n\r\n";
    cr_assert_eq(chunked_in_pieces(ten, strlen(ten), 0, 10, &total), (int64_t)strlen(ten));
    cr_assert_eq(chunked_in_pieces(ten, strlen(ten), 0, 9, &total), -413);
    const char *split = "5\r\n01234\r\n6\r\n012345\r\n0\r\n\r\n";
    cr_assert_eq(chunked_in_pieces(split, strlen(split), 1, 10, &total), -413);
    /* A size that would overflow 64 bits is 413, never a wrap. */
    const char *huge = "ffffffffffffffffffff\r\n";
    cr_assert_eq(chunked_in_pieces(huge, strlen(huge), 0, INT64_MAX / 2, &total), -413);
    /* A size line of HTTP_MAX_CHUNK_LINE bytes is read; one more is 400. */
    static char line[HTTP_MAX_CHUNK_LINE + 64];
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = 0;
        line[n++] = '1';
        line[n++] = ';';
        while (n < (size_t)HTTP_MAX_CHUNK_LINE + (size_t)extra)
            line[n++] = 'e';
        memcpy(line + n, "\r\nx\r\n0\r\n\r\n", 11);
        int64_t r = chunked_in_pieces(line, strlen(line), 7, 100, &total);
        if (extra)
            cr_assert_eq(r, -400);
        else
            cr_assert_eq(r, (int64_t)strlen(line));
    }
    /* Trailers beyond HTTP_MAX_LINE bytes in all are 400. */
    static char tr[HTTP_MAX_LINE + 64];
    size_t n = 0;
    memcpy(tr, "0\r\n", 3);
    n = 3;
    while (n < HTTP_MAX_LINE + 8) {
        memcpy(tr + n, "X: yyyyyy\r\n", 11);
        n += 11;
    }
    memcpy(tr + n, "\r\n", 3);
    cr_assert_eq(chunked_in_pieces(tr, strlen(tr), 0, 100, &total), -400);
}
