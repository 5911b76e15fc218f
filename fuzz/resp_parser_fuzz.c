/* resp_parser_fuzz.c: libFuzzer target for weft-kv's RESP parser (apps/kv/resp.c). Beyond "no
 * crash" it checks the parser's contract on every input:
 * - incremental == one-shot: the input fed in pieces (sizes taken from its first byte), with
 *   the buffer compacted after every command as the server does, gives the same commands,
 *   empty commands, error and leftover as the whole input at once;
 * - every argument lies inside the command that was parsed, and a command consumes at least
 *   one byte and no more than it was given.
 * Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_resp_fuzz.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#include "fuzz_check.h"

/* The parse of data[0 .. n) fed `step(k)` bytes at a time, as one transcript: each command's
 * arguments with their lengths, "S" for an empty command, "E<err>" for an error, then "L<n>"
 * for the bytes left incomplete. Inline commands are rewritten in place, so each run works on
 * its own copy. */
static size_t transcript(const uint8_t *data, size_t n, unsigned seed, char *out, size_t cap)
{
    char *buf = malloc(n ? n : 1);
    resp_parser p = {0};
    resp_reset(&p);
    size_t len = 0, fed = 0, o = 0;
    unsigned k = 0;
    int stop = 0;
    while (!stop) {
        size_t step = seed ? 1 + (seed + k++ * 7) % 13 : n;
        size_t take = fed + step > n ? n - fed : step;
        memcpy(buf + len, data + fed, take);
        len += take;
        fed += take;
        for (;;) {
            size_t used = 0;
            int r = resp_parse(&p, buf, len, &used);
            CHECK(r >= RESP_ERROR && r <= RESP_SKIP);
            if (r == RESP_MORE)
                break;
            if (r == RESP_ERROR) {
                o += (size_t)snprintf(out + o, cap - o, "E%s;", p.err);
                stop = 1;
                break;
            }
            CHECK(used > 0 && used <= len);
            if (r == RESP_SKIP) {
                o += (size_t)snprintf(out + o, cap - o, "S;");
            } else {
                for (size_t a = 0; a < p.argc; a++) {
                    CHECK(p.argv[a].off + p.argv[a].len <= used);
                    o += (size_t)snprintf(out + o, cap - o, "%zu:", p.argv[a].len);
                    size_t c = p.argv[a].len < cap - o ? p.argv[a].len : cap - o - 1;
                    memcpy(out + o, buf + p.argv[a].off, c);
                    o += c;
                    out[o] = 0;
                }
                o += (size_t)snprintf(out + o, cap - o, ";");
            }
            memmove(buf, buf + used, len - used);
            len -= used;
            resp_reset(&p);
            if (o + 64 >= cap) {
                stop = 1;
                break;
            }
        }
        if (fed == n)
            break;
    }
    if (!stop)
        o += (size_t)snprintf(out + o, cap - o, "L%zu", len);
    resp_free(&p);
    free(buf);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    size_t cap = 4 * size + 4096;
    char *whole = malloc(cap), *pieces = malloc(cap);
    size_t a = transcript(data, size, 0, whole, cap);
    size_t b = transcript(data, size, size ? data[0] | 1u : 1, pieces, cap);
    /* A transcript cut at the cap (a flood of tiny commands) is compared up to the shorter. */
    size_t m = a < b ? a : b;
    CHECK(memcmp(whole, pieces, m) == 0);
    if (a + 64 < cap && b + 64 < cap)
        CHECK(a == b);
    free(whole);
    free(pieces);
    return 0;
}
