/* httpd_files_fuzz.c: libFuzzer target for weft-httpd's path normalisation, HTTP dates and
 * Range values (apps/httpd/files.c), differential where http_parser_fuzz.c only checks invariants:
 * - httpd_normalize_path against a reference written from its contract in files.h: decode
 *   every %XX first (a bad escape or a NUL is 400), then resolve the segments on a stack (a
 *   ".." with nothing to pop is 400), with a trailing '/' when the decoded path ends in '/',
 *   "." or ".."; 414 when the decoded path is over cap - 2 bytes. With a small cap taken from
 *   the input, the edges of 414 are reached. Where the reference succeeds the result must be
 *   the same bytes; where it fails, the code must be one of the reasons it found;
 * - httpd_http_date then httpd_parse_http_date gives the time back, for any time from 1970 to
 *   9999 taken from the input; a date that parses formats and parses again to the same time.
 * - httpd_parse_ranges on files of any size an int64 holds: ranges within the file, their
 *   lengths adding up to its size at most, no overflow (UBSan).
 * Input: a mode byte, then: a path after its leading '/' (the byte is the cap: 0x00 to 0x7f);
 * 8 bytes of time, then a date (0x80 to 0xbf); 8 bytes of file size, then a Range value (0xc0
 * and above). Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_http_files_fuzz.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

#include "fuzz_check.h"

static int hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

enum { BAD = 1, CLIMB = 2, LONG = 4 };

/* The reference: returns the result's length in out, or -1 with *why set to the reasons. */
static int ref_normalize(const char *p, size_t n, size_t cap, char *out, int *why)
{
    char *d = malloc(n + 1);
    size_t dn = 0;
    *why = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int h = i + 2 < n ? hex((unsigned char)p[i + 1]) : -1;
            int l = h >= 0 ? hex((unsigned char)p[i + 2]) : -1;
            if (l < 0) {
                *why |= BAD;
            } else {
                c = h * 16 + l;
                i += 2;
                if (c == 0)
                    *why |= BAD;
            }
        }
        d[dn++] = (char)c;
    }
    if (dn > cap - 2)
        *why |= LONG;
    /* The segments on a stack: seg[k] = its start in d, len[k] its length. */
    size_t *start = malloc((dn + 1) * sizeof *start), *len = malloc((dn + 1) * sizeof *len);
    size_t depth = 0;
    int dir = dn == 0;
    for (size_t i = 0; i <= dn && !(*why & CLIMB);) {
        size_t e = i;
        while (e < dn && d[e] != '/')
            e++;
        size_t k = e - i;
        int dot = k == 1 && d[i] == '.', dotdot = k == 2 && d[i] == '.' && d[i + 1] == '.';
        if (e == dn)
            dir |= dot || dotdot || (dn > 0 && d[dn - 1] == '/');
        if (dotdot) {
            if (depth == 0)
                *why |= CLIMB;
            else
                depth--;
        } else if (k > 0 && !dot) {
            start[depth] = i;
            len[depth++] = k;
        }
        i = e + 1;
    }
    int r = -1;
    if (!*why) {
        size_t o = 0;
        out[o++] = '/';
        for (size_t k = 0; k < depth; k++) {
            memcpy(out + o, d + start[k], len[k]);
            o += len[k];
            if (k + 1 < depth || dir)
                out[o++] = '/';
        }
        out[o] = '\0';
        r = (int)o;
    }
    free(start);
    free(len);
    free(d);
    return r;
}

static void check_path(const char *p, size_t n, size_t cap)
{
    char *got = malloc(cap), *want = malloc(n + 3);
    int why;
    int w = ref_normalize(p, n, cap, want, &why);
    int g = httpd_normalize_path((http_view){p, n}, got, cap);
    if (w >= 0) {
        if (g != w || memcmp(got, want, (size_t)w + 1) != 0) {
            fprintf(stderr, "path '%.*s' cap %zu: got %d '%s', want %d '%s'\n", (int)n, p, cap, g,
                    g >= 0 ? got : "", w, want);
            CHECK(0);
        }
    } else {
        if (!(g == -400 && (why & (BAD | CLIMB))) && !(g == -414 && (why & LONG))) {
            fprintf(stderr, "path '%.*s' cap %zu: got %d '%s', want an error (%d)\n", (int)n, p,
                    cap, g, g >= 0 ? got : "", why);
            CHECK(0);
        }
    }
    free(got);
    free(want);
}

static void check_date(const uint8_t *data, size_t size)
{
    const time_t now = 1700000000;   /* 2023-11-14: places rfc850-date's years */
    const time_t max = 253402300799; /* 9999-12-31 23:59:59 */
    char buf[64];
    time_t t = 0, back = -1;
    if (size >= 8) {
        uint64_t v;
        memcpy(&v, data, 8);
        t = (time_t)(v % (uint64_t)(max + 1));
        CHECK(httpd_http_date(t, buf, sizeof buf) == 29);
        CHECK(httpd_parse_http_date((http_view){buf, 29}, now, &back) == 0 && back == t);
        data += 8;
        size -= 8;
    }
    char *s = malloc(size ? size : 1); /* exact size: ASan sees a read past the end */
    memcpy(s, data, size);
    if (httpd_parse_http_date((http_view){s, size}, now, &t) == 0) {
        CHECK(t >= 0);
        if (t <= max) {
            CHECK(httpd_http_date(t, buf, sizeof buf) == 29);
            CHECK(httpd_parse_http_date((http_view){buf, 29}, now, &back) == 0 && back == t);
        }
    }
    free(s);
}

/* Range values against files of any size an int64 holds (http_parser_fuzz.c tries sizes up
 * to 3000 only): every range within the file, their lengths adding up to the file's at most,
 * and no overflow on the way (UBSan). */
static void check_ranges(const uint8_t *data, size_t size)
{
    if (size < 8)
        return;
    uint64_t v;
    memcpy(&v, data, 8);
    int64_t fsize = (int64_t)(v >> 1);
    char *s = malloc(size - 8 ? size - 8 : 1);
    memcpy(s, data + 8, size - 8);
    httpd_range rg[HTTPD_MAX_RANGES];
    int r = httpd_parse_ranges((http_view){s, size - 8}, fsize, rg, HTTPD_MAX_RANGES);
    CHECK(r == -416 || (r >= 0 && r <= HTTPD_MAX_RANGES));
    uint64_t total = 0;
    for (int i = 0; i < r; i++) {
        CHECK(0 <= rg[i].first && rg[i].first <= rg[i].last && rg[i].last < fsize);
        total += (uint64_t)(rg[i].last - rg[i].first) + 1;
        CHECK(total <= (uint64_t)fsize);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 8192)
        return 0;
    if ((data[0] & 0xc0) == 0xc0) {
        check_ranges(data + 1, size - 1);
        return 0;
    }
    if (data[0] & 0x80) {
        check_date(data + 1, size - 1);
        return 0;
    }
    /* cap 2 to 129, or 4096 as the server uses */
    size_t cap = data[0] == 0x7f ? 4096 : (size_t)data[0] + 2;
    /* The parser's paths start with '/' (origin-form, or what absolute-form leaves), or are
     * empty; the contract's 414 edge counts on that. */
    char *p = malloc(size);
    p[0] = '/';
    memcpy(p + 1, data + 1, size - 1);
    check_path(p, size, cap);
    free(p);
    return 0;
}
