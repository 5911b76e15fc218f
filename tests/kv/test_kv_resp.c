/* weft-kv's RESP parser (apps/kv/resp.c): whole commands, pipelines, every split point of a
 * batch (the parser must give the same commands whatever the chunking, with the buffer
 * compacted between commands as the server does), inline commands with quotes, the empty
 * commands, Redis's limits and error texts, and no allocation from a declared length. Also
 * the glob matcher of KEYS and SCAN (apps/kv/db.c), the reply writer in RESP2 and RESP3
 * (apps/kv/reply.c), and the command table's lookup by name (apps/kv/commands.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "db.h"
#include "reply.h"
#include "resp.h"

/* The commands parsed from a byte stream, as "arg|arg|...;" per command, "!<err>" for an
 * error (which ends the stream), fed in chunks of the sizes given (0-terminated list; the
 * last size repeats). The buffer is compacted after each command, as the connection does. */
static char *parse_stream(const char *in, size_t n, const size_t *chunks)
{
    resp_parser p = {0};
    resp_reset(&p);
    char *buf = malloc(n + 1);
    size_t len = 0, fed = 0, k = 0;
    size_t cap = 4096, olen = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (;;) {
        size_t step = chunks[k] ? chunks[k] : 1;
        if (chunks[k + 1])
            k++;
        size_t take = fed + step > n ? n - fed : step;
        memcpy(buf + len, in + fed, take);
        len += take;
        fed += take;
        for (;;) {
            size_t used = 0;
            int r = resp_parse(&p, buf, len, &used);
            if (r == RESP_MORE)
                break;
            if (r == RESP_ERROR) {
                olen += (size_t)snprintf(out + olen, cap - olen, "!%s", p.err);
                resp_free(&p);
                free(buf);
                return out;
            }
            if (r == RESP_DONE) {
                for (size_t a = 0; a < p.argc; a++) {
                    cr_assert_lt(olen + p.argv[a].len + 2, cap);
                    memcpy(out + olen, buf + p.argv[a].off, p.argv[a].len);
                    olen += p.argv[a].len;
                    out[olen++] = a + 1 < p.argc ? '|' : ';';
                }
                out[olen] = 0;
            }
            memmove(buf, buf + used, len - used);
            len -= used;
            resp_reset(&p);
        }
        if (fed == n)
            break;
    }
    if (len)
        olen += (size_t)snprintf(out + olen, cap - olen, "+%zu", len); /* left incomplete */
    resp_free(&p);
    free(buf);
    return out;
}

static char *parse_whole(const char *in)
{
    size_t chunks[] = {strlen(in) ? strlen(in) : 1, 0};
    return parse_stream(in, strlen(in), chunks);
}

Test(resp, multibulk)
{
    char *r = parse_whole("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
    cr_assert_str_eq(r, "SET|k|hello;");
    free(r);
    r = parse_whole("*1\r\n$0\r\n\r\n*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n");
    cr_assert_str_eq(r, ";ECHO|a\r\nb;", "empty and binary-safe bulks");
    free(r);
}

Test(resp, pipeline_and_every_split)
{
    const char *in = "*1\r\n$4\r\nPING\r\n"
                     "PING\r\n"
                     "SET a \"b c\" 'd\\'e'\n"
                     "*0\r\n*-1\r\n\r\n"
                     "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\n"
                     "  get   key  \r\n"
                     "*2\r\n$4\r\nECHO\r\n$2\r\n\r\n\r\n";
    size_t n = strlen(in);
    char *want = parse_whole(in);
    cr_assert_str_eq(want, "PING;PING;SET|a|b c|d'e;SET|key|0123456789;get|key;ECHO|\r\n;");
    for (size_t s = 1; s < n; s++) { /* two chunks, split at s */
        size_t chunks[] = {s, n - s, 0};
        char *got = parse_stream(in, n, chunks);
        cr_assert_str_eq(got, want, "split at byte %zu", s);
        free(got);
    }
    size_t bytewise[] = {1, 0};
    char *got = parse_stream(in, n, bytewise);
    cr_assert_str_eq(got, want, "byte by byte");
    free(got);
    for (size_t step = 2; step < 9; step++) {
        size_t chunks[] = {step, 0};
        got = parse_stream(in, n, chunks);
        cr_assert_str_eq(got, want, "chunks of %zu", step);
        free(got);
    }
    free(want);
}

Test(resp, incomplete_stays_pending)
{
    char *r = parse_whole("*2\r\n$3\r\nGET\r\n$1\r\n");
    cr_assert_str_eq(r, "+17", "no command until the last bulk is in");
    free(r);
    r = parse_whole("PING");
    cr_assert_str_eq(r, "+4");
    free(r);
}

Test(resp, redis_quirks)
{
    /* Redis skips the two bytes after a bulk without checking them. */
    char *r = parse_whole("*1\r\n$4\r\nPINGxx");
    cr_assert_str_eq(r, "PING;");
    free(r);
    r = parse_whole("PING\n");
    cr_assert_str_eq(r, "PING;", "an inline line may end with \\n alone");
    free(r);
    r = parse_whole("ECHO \"a\\x41\\n\"\r\n");
    cr_assert_str_eq(r, "ECHO|aA\n;");
    free(r);
    /* A word ends at a space, \t, \r or \n only (sdssplitargs): \v and \f are part of it,
     * though they are skipped as blanks between words. */
    r = parse_whole("ECHO a\vb\r\n");
    cr_assert_str_eq(r, "ECHO|a\vb;");
    free(r);
    r = parse_whole("ECHO\f a\fb\r\n");
    cr_assert_str_eq(r, "ECHO\f|a\fb;");
    free(r);
}

static void expect_error(const char *in, const char *err)
{
    char *r = parse_whole(in);
    char want[256];
    snprintf(want, sizeof want, "!%s", err);
    cr_assert_str_eq(r, want, "input %s", in);
    free(r);
}

Test(resp, errors_as_redis)
{
    expect_error("*x\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*1x\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*+1\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*01\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*3000000000\r\n", "ERR Protocol error: invalid multibulk length");
    expect_error("*2\r\n$-5\r\n", "ERR Protocol error: invalid bulk length");
    expect_error("*2\r\n$600000000\r\n", "ERR Protocol error: invalid bulk length");
    expect_error("*1\r\n$ 4\r\nPING\r\n", "ERR Protocol error: invalid bulk length");
    expect_error("*1\r\n$\r\n", "ERR Protocol error: invalid bulk length");
    expect_error("*2\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'");
    expect_error("set \"a b\r\n", "ERR Protocol error: unbalanced quotes in request");
    expect_error("echo \"a\"b\r\n", "ERR Protocol error: unbalanced quotes in request");
    expect_error("echo 'a\r\n", "ERR Protocol error: unbalanced quotes in request");
}

Test(resp, line_limits)
{
    size_t n = RESP_MAX_INLINE + 10;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    expect_error(big, "ERR Protocol error: too big inline request");
    big[0] = '*';
    expect_error(big, "ERR Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    expect_error(big, "ERR Protocol error: too big bulk count string");
    free(big);
}

Test(resp, no_allocation_from_declared_sizes)
{
    resp_parser p = {0};
    resp_reset(&p);
    char in[] = "*2147483647\r\n$536870912\r\nabc";
    size_t used;
    cr_assert_eq(resp_parse(&p, in, strlen(in), &used), RESP_MORE);
    cr_assert_eq(p.argv_cap, 0, "argv grows with arguments received, not declared");
    cr_assert_eq(p.nargs, 2147483647);
    cr_assert_eq(p.bulk_len, 536870912, "512 MB is proto-max-bulk-len: allowed");
    resp_free(&p);
}

Test(resp, empty_commands)
{
    resp_parser p = {0};
    resp_reset(&p);
    size_t used;
    char a[] = "*0\r\n";
    cr_assert_eq(resp_parse(&p, a, 4, &used), RESP_SKIP);
    cr_assert_eq(used, 4);
    resp_reset(&p);
    char b[] = "\r\n";
    cr_assert_eq(resp_parse(&p, b, 2, &used), RESP_SKIP);
    cr_assert_eq(used, 2);
    resp_free(&p);
}

Test(resp, strtoll_strict)
{
    long long v;
    cr_assert_eq(resp_strtoll("0", 1, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(resp_strtoll("-9223372036854775808", 20, &v), 0);
    cr_assert_eq(v, -9223372036854775807LL - 1);
    cr_assert_eq(resp_strtoll("9223372036854775807", 19, &v), 0);
    cr_assert_eq(resp_strtoll("9223372036854775808", 19, &v), -1);
    cr_assert_eq(resp_strtoll("-0", 2, &v), -1);
    cr_assert_eq(resp_strtoll("+1", 2, &v), -1);
    cr_assert_eq(resp_strtoll(" 1", 2, &v), -1);
    cr_assert_eq(resp_strtoll("", 0, &v), -1);
    cr_assert_eq(resp_strtoll("-", 1, &v), -1);
}

/* Mutated requests, cut at random points: the parser never reads or points outside what it
 * was given, and every outcome is one of its codes (run under ASan by `make test`). */
Test(resp, fuzz_smoke)
{
    static const char *const seeds[] = {
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
        "PING\r\n",
        "SET a \"b\\x41 c\" 'd\\'e'\n",
        "*0\r\n*-1\r\n\r\n",
        "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    };
    const char alphabet[] = "*$\r\n0123456789-+\"' \\xAaZ";
    unsigned long long x = 88172645463325252ULL;
    for (int round = 0; round < 20000; round++) {
        char buf[256];
        const char *seed = seeds[round % 5];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int m = 0; m < 3; m++) { /* a few byte flips, inserts or cuts */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % (n + 1));
            int op = (int)((x >> 20) % 3);
            char c = alphabet[(x >> 32) % (sizeof alphabet - 1)];
            if (op == 0 && at < n)
                buf[at] = c;
            else if (op == 1 && n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = c;
                n++;
            } else if (op == 2)
                n = at;
        }
        resp_parser p = {0};
        resp_reset(&p);
        size_t start = 0;
        while (start < n) {
            size_t used = 0;
            int r = resp_parse(&p, buf + start, n - start, &used);
            cr_assert(r >= RESP_ERROR && r <= RESP_SKIP);
            if (r == RESP_MORE || r == RESP_ERROR)
                break;
            cr_assert(used > 0 && used <= n - start, "consumed %zu of %zu", used, n - start);
            for (size_t a = 0; r == RESP_DONE && a < p.argc; a++)
                cr_assert(p.argv[a].off + p.argv[a].len <= used);
            start += used;
            resp_reset(&p);
        }
        resp_free(&p);
    }
}

static int glob(const char *p, const char *s)
{
    return kv_glob(p, strlen(p), s, strlen(s), 0);
}

Test(glob, patterns)
{
    /* Redis's stringmatchlen compares nothing against an empty string: only the empty pattern
     * matches it, so "SET '' x" then "KEYS **" is an empty array there (KEYS and SCAN take "*"
     * alone as "all" before matching). kv_glob matched it with any run of stars (found by
     * fuzz/kv_glob_fuzz.c against a transcription of Redis's matcher). */
    cr_assert(glob("", ""));
    cr_assert(!glob("*", ""));
    cr_assert(!glob("**", ""));
    cr_assert(!glob("[^a]", ""));
    cr_assert(glob("a*", "a"));
    cr_assert(glob("a**", "a"));
    cr_assert(glob("h?llo", "hello"));
    cr_assert(!glob("h?llo", "hllo"));
    cr_assert(glob("h*llo", "heeeello"));
    cr_assert(glob("h[ae]llo", "hallo"));
    cr_assert(!glob("h[^e]llo", "hello"));
    cr_assert(glob("h[a-b]llo", "hbllo"));
    cr_assert(glob("h\\*llo", "h*llo"));
    cr_assert(!glob("h\\*llo", "hello"));
    cr_assert(glob("*a*b*c", "xxaxxbxxc"));
    cr_assert(!glob("*a*b*c", "xxaxxbxx"));
    cr_assert(kv_glob("MAX*", 4, "maxmemory", 9, 1), "nocase");
    /* A pattern that is exponential for naive recursion returns at once. */
    char s[200];
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = 0;
    cr_assert(!glob("*a*a*a*a*a*a*a*a*a*a*a*a*b", s));
}

/* A command name is its bytes, NUL included: "get\0x" is no command (Redis answers "unknown
 * command"). The lookup compared names with strncmp, which stops at the NUL, and then read
 * the table's name at the argument's length, past its end (found by fuzz/kv_cmd_fuzz.c): ASan
 * reports the read, and a plain build took "zadd\0" and a few more bytes for ZADD whenever
 * the byte read there was a NUL and the name's probe met ZADD's slot. Every name with a NUL
 * and then suffixes of every length and eight fillings (which move the probe) is refused. */
Test(commands, name_with_nul)
{
    kv_commands_init();
    for (size_t i = 0; i < kv_ncommands; i++) {
        const char *name = kv_commands[i].name;
        size_t n = strlen(name);
        cr_assert_eq(kv_command_find(name, n, 1), &kv_commands[i]);
        char buf[32];
        memcpy(buf, name, n);
        buf[n] = '\0';
        for (size_t m = 0; n + 1 + m < sizeof buf; m++) {
            for (char fill = 'a'; fill < 'a' + 8; fill++) {
                memset(buf + n + 1, fill, m);
                const kv_command *k = kv_command_find(buf, n + 1 + m, 1);
                cr_assert_null(k, "%s, a NUL and %zu of '%c': found %s", name, m, fill, k->name);
            }
        }
    }
}

/* The reply writer in both protocols: each RESP3 type against Redis 7's bytes for it (taken
 * from redis-server's replies after HELLO 3), and its RESP2 form on a buffer that was not
 * switched. */
static void expect_buf(sbuf *b, const char *want)
{
    cr_assert_eq(b->oom, 0);
    cr_assert_eq(b->len, strlen(want), "got %zu bytes, want %zu", b->len, strlen(want));
    cr_assert_arr_eq(b->data, want, b->len);
    b->len = 0;
}

Test(reply, resp2_and_resp3)
{
    sbuf b2 = {0};
    sbuf b3 = {0};
    b3.resp3 = 1;
    sbuf *both[2] = {&b2, &b3};
    for (int i = 0; i < 2; i++) {
        reply_null(both[i]);
        reply_null_array(both[i]);
        reply_map(both[i], 2);
        reply_set(both[i], 3);
        reply_bool(both[i], 1);
        reply_bool(both[i], 0);
        reply_double(both[i], 1.5);
        reply_double(both[i], -1.0 / 0.0);
        reply_verbatim(both[i], "a\r\nb", 4);
        reply_array(both[i], 2);
    }
    expect_buf(&b2, "$-1\r\n*-1\r\n*4\r\n*3\r\n:1\r\n:0\r\n$3\r\n1.5\r\n$4\r\n-inf\r\n"
                    "$4\r\na\r\nb\r\n*2\r\n");
    expect_buf(&b3, "_\r\n_\r\n%2\r\n~3\r\n#t\r\n#f\r\n,1.5\r\n,-inf\r\n"
                    "=8\r\ntxt:a\r\nb\r\n*2\r\n");
    /* A buffer made for replies that go on to another keeps its protocol, also once freed. */
    sbuf like = sbuf_like(&b3);
    sbuf_free(&b3);
    cr_assert_eq(like.resp3, 1);
    cr_assert_eq(b3.resp3, 1);
    reply_double(&like, 0.1);
    expect_buf(&like, ",0.10000000000000001\r\n");
    sbuf_free(&like);
    sbuf_free(&b2);
}

/* SipHash (hash.c): the paper's SipHash-2-4 vector (appendix A: key 00 .. 0f, message 00 .. 0e),
 * and SipHash-1-3 with a zero key against CPython 3.11's bytes hash (siphash13, with
 * PYTHONHASHSEED=0 its key is zero): `PYTHONHASHSEED=0 python3 -c 'print(hex(hash(b"a")
 * & (2**64-1)))'`. Lengths 1, 7, 8, 16 and 43 reach every tail length's path. */
Test(hash, siphash_vectors)
{
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    cr_assert_eq(kv_siphash(key, msg, 15, 2, 4), 0xa129ca6149be45e5ULL);
    static const struct {
        const char *s;
        uint64_t h;
    } v13[] = {
        {"a", 0x407448d2b89b1813ULL},
        {"abcdefg", 0x6db12aae9070f506ULL},
        {"abcdefgh", 0x3f7b849c0b8e35eaULL},
        {"key:000000012345", 0x286cb3dfebab533dULL},
        {"The quick brown fox jumps over the lazy dog", 0x8df676d3d00c451eULL},
    };
    uint8_t zero[16] = {0};
    for (size_t i = 0; i < sizeof v13 / sizeof v13[0]; i++)
        cr_assert_eq(kv_siphash(zero, v13[i].s, strlen(v13[i].s), 1, 3), v13[i].h, "%s", v13[i].s);
}

/* The keys are drawn at start: two draws give other hashes, and the bucket and shard hashes
 * differ from each other. */
Test(hash, keyed_at_start)
{
    cr_assert_eq(kv_hash_init(), 0);
    uint64_t b1 = kv_hash("key:1", 5), s1 = kv_hash_shard("key:1", 5);
    cr_assert_neq(b1, s1);
    cr_assert_eq(kv_hash_init(), 0);
    cr_assert_neq(kv_hash("key:1", 5), b1);
    cr_assert_neq(kv_hash_shard("key:1", 5), s1);
    uint8_t k[16] = {1, 2, 3};
    kv_hash_set_shard_key(k);
    uint8_t back[16];
    kv_hash_shard_key(back);
    cr_assert_eq(memcmp(k, back, 16), 0);
    cr_assert_eq(kv_hash_shard("abc", 3), kv_siphash(k, "abc", 3, 1, 3));
}
