/* kv_glob_fuzz.c: libFuzzer target for weft-kv's glob matcher (kv_glob in apps/kv/db.c, which
 * KEYS, SCAN MATCH and the SSCAN/HSCAN/ZSCAN options use), differential: every pattern and
 * string is also matched by a transcription of Redis 7's stringmatchlen (util.c: recursive at
 * each star, with its skipLongerMatches cut-off), and the two answers must agree, with and
 * without nocase. The transcription reads bytes as unsigned (Redis compares plain chars, so a
 * range with a byte over 0x7f in it goes by the platform's char signedness there), and never
 * reads past the pattern's end where Redis would read its terminating NUL. One more liberty:
 * with nocase, a range's ends are lowered before they are put in order, as kv_glob does
 * (Redis orders them first: with nocase its "[[-I]" is 'i' to '[', which holds nothing, and
 * kv_glob's is '[' to 'i'; CONFIG GET's and COMMAND's patterns, the only nocase uses, would
 * never mix a letter and a non-letter in a range).
 * Input: a flags byte (bit 0: nocase), the pattern's length byte, the pattern, the string.
 * Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_kv_glob_fuzz.sh does). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#include "fuzz_check.h"

static int low(int c, int nocase)
{
    return nocase ? tolower(c) : c;
}

/* Redis's stringmatchlen_impl, with p[i] read as unsigned and p[n] as 0 (Redis's NUL). */
static int redis_match(const unsigned char *p, long plen, const unsigned char *s, long slen,
                       int nocase, int *skip_longer, int nesting)
{
#define AT(k) ((k) < plen ? p[k] : 0)
    if (nesting > 1000)
        return 0;
    while (plen && slen) {
        switch (p[0]) {
        case '*':
            while (plen && AT(1) == '*') {
                p++;
                plen--;
            }
            if (plen == 1)
                return 1;
            while (slen) {
                if (redis_match(p + 1, plen - 1, s, slen, nocase, skip_longer, nesting + 1))
                    return 1;
                if (*skip_longer)
                    return 0;
                s++;
                slen--;
            }
            *skip_longer = 1;
            return 0;
        case '?':
            s++;
            slen--;
            break;
        case '[': {
            p++;
            plen--;
            int not = AT(0) == '^';
            if (not ) {
                p++;
                plen--;
            }
            int match = 0;
            for (;;) {
                if (AT(0) == '\\' && plen >= 2) {
                    p++;
                    plen--;
                    if (low(p[0], nocase) == low(s[0], nocase))
                        match = 1;
                } else if (AT(0) == ']') {
                    break;
                } else if (plen == 0) {
                    p--;
                    plen++;
                    break;
                } else if (plen >= 3 && p[1] == '-') {
                    int start = low(p[0], nocase), end = low(p[2], nocase);
                    int c = low(s[0], nocase);
                    if (start > end) {
                        int t = start;
                        start = end;
                        end = t;
                    }
                    p += 2;
                    plen -= 2;
                    if (c >= start && c <= end)
                        match = 1;
                } else if (low(p[0], nocase) == low(s[0], nocase)) {
                    match = 1;
                }
                p++;
                plen--;
            }
            if (not )
                match = !match;
            if (!match)
                return 0;
            s++;
            slen--;
            break;
        }
        case '\\':
            if (plen >= 2) {
                p++;
                plen--;
            }
            /* fall through */
        default:
            if (low(p[0], nocase) != low(s[0], nocase))
                return 0;
            s++;
            slen--;
            break;
        }
        p++;
        plen--;
        if (slen == 0) {
            while (AT(0) == '*') {
                p++;
                plen--;
            }
            break;
        }
    }
    return plen == 0 && slen == 0;
#undef AT
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096)
        return 0;
    int nocase = data[0] & 1;
    size_t plen = data[1] < size - 2 ? data[1] : size - 2;
    size_t slen = size - 2 - plen;
    /* Exact-size copies, so that ASan sees any read past either end. */
    char *pat = malloc(plen ? plen : 1), *s = malloc(slen ? slen : 1);
    memcpy(pat, data + 2, plen);
    memcpy(s, data + 2 + plen, slen);
    int skip = 0;
    int want = redis_match((const unsigned char *)pat, (long)plen, (const unsigned char *)s,
                           (long)slen, nocase, &skip, 0);
    int got = kv_glob(pat, plen, s, slen, nocase);
    if (got != want) {
        fprintf(stderr, "pattern '%.*s' string '%.*s' nocase %d: kv_glob %d, Redis %d\n", (int)plen,
                pat, (int)slen, s, nocase, got, want);
        CHECK(got == want);
    }
    free(pat);
    free(s);
    return 0;
}
