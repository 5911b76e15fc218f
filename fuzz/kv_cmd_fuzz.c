/* kv_cmd_fuzz.c: libFuzzer target for weft-kv's commands (apps/kv/cmd_*.c and what they use:
 * the number parsers, ranges, the glob matcher, the dicts, lists, sets and sorted sets). The
 * input is a stream of commands in RESP or inline form (apps/kv/resp.c splits it); each one
 * whose name and arity the server would accept runs through kv_run_proc on one shard's db in
 * memory, with no socket and no runtime, as a connection on a one-worker server would run
 * it. Commands without a per-shard proc (BLPOP, MULTI, CONFIG, ...) and internal ones are
 * skipped. Beyond "no crash, no leak" it checks on every input:
 * - each command appends exactly one well-formed reply (RESP2, or RESP3 when the input's
 *   first byte is odd), with every length matching its payload;
 * - the db's count of keys with an expiry matches its keys, and every key holds a value
 *   that is not empty (Redis deletes an emptied hash, list, set or sorted set);
 * - the memory kv_malloc counts goes back to where it started once the db is flushed.
 * Build: clang -fsanitize=fuzzer,address,undefined (fuzz/run_kv_cmd_fuzz.sh does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "dict.h"
#include "server.h"
#include "zset.h"

#include "fuzz_check.h"

/* The length of the one reply at b[0 .. n), or 0 when it is not one well-formed reply. */
static size_t reply_len(const char *b, size_t n, int depth)
{
    if (n < 3 || depth > 64)
        return 0;
    /* The first CR must end the line: memchr stops there (a memmem over the rest of the reply,
     * once per element, made a long array quadratic under ASan's interceptor, which reads the
     * whole haystack: 50 s for one ZRANDMEMBER of 155,155). */
    const char *crlf = memchr(b, '\r', n);
    if (!crlf || crlf + 1 >= b + n || crlf[1] != '\n')
        return 0;
    size_t line = (size_t)(crlf - b) + 2;
    for (const char *s = b + 1; s < crlf; s++)
        if (*s == '\r' || *s == '\n')
            return 0;
    char type = b[0];
    long long v = 0;
    if (strchr("$*%~=>!|", type)) {
        char *end;
        char num[32];
        size_t k = (size_t)(crlf - b) - 1;
        if (k == 0 || k >= sizeof num)
            return 0;
        memcpy(num, b + 1, k);
        num[k] = 0;
        v = strtoll(num, &end, 10);
        if (*end != 0 || v < -1)
            return 0;
    }
    switch (type) {
    case '+':
    case '-':
    case ':':
    case ',':
    case '(':
    case '#':
    case '_':
        if (type == '_' && line != 3)
            return 0;
        if (type == '#' && (line != 4 || (b[1] != 't' && b[1] != 'f')))
            return 0;
        if (type == ':' || type == '(') {
            char *end;
            char num[64];
            size_t k = (size_t)(crlf - b) - 1;
            if (k == 0 || k >= sizeof num)
                return 0;
            memcpy(num, b + 1, k);
            num[k] = 0;
            (void)strtoll(num, &end, 10);
            if (*end != 0 && type == ':')
                return 0;
        }
        return line;
    case '$':
    case '=':
    case '!':
        if (v < 0)
            return type == '$' ? line : 0;
        if (n - line < (size_t)v + 2 || memcmp(b + line + v, "\r\n", 2) != 0)
            return 0;
        return line + (size_t)v + 2;
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
        if (v < 0)
            return type == '*' ? line : 0;
        unsigned long long items = (unsigned long long)v * (type == '%' || type == '|' ? 2 : 1);
        size_t off = line;
        for (unsigned long long i = 0; i < items; i++) {
            size_t k = reply_len(b + off, n - off, depth + 1);
            if (k == 0)
                return 0;
            off += k;
        }
        return off;
    }
    default:
        return 0;
    }
}

static int value_empty(const kv_entry *e)
{
    switch (e->type) {
    case KV_STRING:
        return 0;
    case KV_HASH:
    case KV_SET:
        return e->v.hash->size == 0;
    case KV_LIST:
        return e->v.list->len == 0;
    case KV_ZSET:
        return e->v.zset->len == 0;
    }
    return 1;
}

static size_t nexpires_seen;

static void check_entry(dnode *n, void *arg)
{
    (void)arg;
    const kv_entry *e = (const kv_entry *)n;
    CHECK(e->type >= KV_STRING && e->type <= KV_ZSET);
    CHECK(!value_empty(e));
    if (e->expire_ms >= 0)
        nexpires_seen++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kv_shard *sh;
    static long long mem_base;
    if (!sh) {
        kv_commands_init();
        sh = calloc(1, sizeof *sh);
        db_init(&sh->db, 0);
        sh->aof.fd = -1;
        mem_base = kv_mem_used;
    }
    if (size == 0 || size > 1 << 14)
        return 0;
    /* A copy: inline commands are rewritten in place. */
    char *buf = malloc(size);
    memcpy(buf, data, size);
    resp_parser p = {0};
    resp_reset(&p);
    sbuf out = {0};
    out.resp3 = data[0] & 1;
    size_t off = 1;
    for (int ncmd = 0; off < size && ncmd < 64; ncmd++) {
        size_t used = 0;
        int r = resp_parse(&p, buf + off, size - off, &used);
        if (r == RESP_MORE || r == RESP_ERROR)
            break;
        if (r == RESP_SKIP || p.argc == 0) {
            off += used;
            resp_reset(&p);
            continue;
        }
        const char *argv[64];
        size_t argl[64];
        size_t argc = p.argc < 64 ? p.argc : 64;
        for (size_t i = 0; i < argc; i++) {
            argv[i] = buf + off + p.argv[i].off;
            argl[i] = p.argv[i].len;
        }
        const kv_command *cmd = kv_command_find(argv[0], argl[0], 0);
        int arity_ok = cmd && ((cmd->arity > 0 && (int)argc == cmd->arity) ||
                               (cmd->arity < 0 && (int)argc >= -cmd->arity));
        if (cmd && cmd->proc && arity_ok && cmd->proc != cmd_flushdb) {
            kv_ctx c = {.db = &sh->db,
                        .argc = (int)argc,
                        .argv = argv,
                        .argl = argl,
                        .out = &out,
                        .conn = NULL,
                        .cmd = cmd};
            size_t before = out.len;
            kv_run_proc(cmd, &c);
            size_t k = reply_len(out.data + before, out.len - before, 0);
            if (k != out.len - before) {
                fprintf(stderr, "bad reply to %.*s: %.*s\n", (int)argl[0], argv[0],
                        (int)(out.len - before), out.data + before);
                CHECK(0);
            }
            out.len = 0;
        }
        off += used;
        resp_reset(&p);
    }
    nexpires_seen = 0;
    size_t cursor = 0;
    do
        cursor = dict_scan(&sh->db.keys, cursor, check_entry, NULL);
    while (cursor != 0);
    CHECK(nexpires_seen == sh->db.nexpires);
    db_flush(&sh->db);
    CHECK(kv_mem_used == mem_base);
    resp_free(&p);
    sbuf_free(&out);
    free(buf);
    return 0;
}
