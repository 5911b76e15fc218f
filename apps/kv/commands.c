/* The command table, its lookup, and the argument helpers the commands share. Arity, flags
 * and key positions are Redis 7's, as COMMAND reports them. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"

#define W   CMD_WRITE
#define R   CMD_READONLY
#define M   CMD_DENYOOM
#define F   CMD_FAST
#define X   CMD_MULTI
#define H   CMD_HIDDEN
#define B   CMD_BLOCKING
#define NLS (CMD_NOSCRIPT | CMD_LOADING | CMD_STALE)
#define AB  CMD_ALLOWBUSY
#define NA  (CMD_NOAUTH | CMD_ALLOWBUSY)
#define LS  CMD_LOGSTATE
#define LE  (CMD_LOGSTATE | CMD_LOGEXPIRE)
#define N   CMD_NUMKEYS

/* clang-format off */
const kv_command kv_commands[] = {
    /* strings */
    {"get", 2, R | F, 1, 1, 1, cmd_get, NULL, "string"},
    {"set", -3, W | M | LS, 1, 1, 1, cmd_set, NULL, "string"},
    {"getset", 3, W | M | F | LS, 1, 1, 1, cmd_getset, NULL, "string"},
    {"getdel", 2, W | F | LS, 1, 1, 1, cmd_getdel, NULL, "string"},
    {"getex", -2, W | F | LE, 1, 1, 1, cmd_getex, NULL, "string"},
    {"setnx", 3, W | M | F | LS, 1, 1, 1, cmd_setnx, NULL, "string"},
    {"setex", 4, W | M | LS, 1, 1, 1, cmd_setex, NULL, "string"},
    {"psetex", 4, W | M | LS, 1, 1, 1, cmd_psetex, NULL, "string"},
    {"incr", 2, W | M | F | LS, 1, 1, 1, cmd_incr, NULL, "string"},
    {"decr", 2, W | M | F | LS, 1, 1, 1, cmd_decr, NULL, "string"},
    {"incrby", 3, W | M | F | LS, 1, 1, 1, cmd_incrby, NULL, "string"},
    {"decrby", 3, W | M | F | LS, 1, 1, 1, cmd_decrby, NULL, "string"},
    {"incrbyfloat", 3, W | M | F | LS, 1, 1, 1, cmd_incrbyfloat, NULL, "string"},
    {"append", 3, W | M | F | LS, 1, 1, 1, cmd_append, NULL, "string"},
    {"strlen", 2, R | F, 1, 1, 1, cmd_strlen, NULL, "string"},
    {"getrange", 4, R, 1, 1, 1, cmd_getrange, NULL, "string"},
    {"setrange", 4, W | M | LS, 1, 1, 1, cmd_setrange, NULL, "string"},
    {"mget", -2, R | F, 1, -1, 1, cmd_mget, multi_mget, "string"},
    {"mset", -3, W | M | LS, 1, -1, 2, cmd_mset, multi_mset, "string"},
    {"msetnx", -3, W | M | LS, 1, -1, 2, cmd_msetnx, multi_msetnx, "string"},
    /* keys */
    {"del", -2, W, 1, -1, 1, cmd_del, multi_del, "generic"},
    {"unlink", -2, W | F, 1, -1, 1, cmd_del, multi_del, "generic"},
    {"exists", -2, R | F, 1, -1, 1, cmd_exists, multi_exists, "generic"},
    {"expire", -3, W | F | LE, 1, 1, 1, cmd_expire, NULL, "generic"},
    {"pexpire", -3, W | F | LE, 1, 1, 1, cmd_pexpire, NULL, "generic"},
    {"expireat", -3, W | F | LE, 1, 1, 1, cmd_expireat, NULL, "generic"},
    {"pexpireat", -3, W | F | LE, 1, 1, 1, cmd_pexpireat, NULL, "generic"},
    {"ttl", 2, R | F, 1, 1, 1, cmd_ttl, NULL, "generic"},
    {"pttl", 2, R | F, 1, 1, 1, cmd_pttl, NULL, "generic"},
    {"persist", 2, W | F | LE, 1, 1, 1, cmd_persist, NULL, "generic"},
    {"type", 2, R | F, 1, 1, 1, cmd_type, NULL, "generic"},
    {"rename", 3, W, 1, 2, 1, cmd_rename, multi_rename, "generic"},
    {"keys", 2, R | X, 0, 0, 0, cmd_keys, multi_keys, "generic"},
    {"scan", -2, R | X, 0, 0, 0, cmd_scan, multi_scan, "generic"},
    {"randomkey", 1, R | X, 0, 0, 0, cmd_randomkey, multi_randomkey, "generic"},
    {"dbsize", 1, R | F | X, 0, 0, 0, cmd_dbsize, multi_dbsize, "server"},
    {"flushdb", -1, W | X, 0, 0, 0, cmd_flushdb, multi_flushdb, "server"},
    {"flushall", -1, W | X, 0, 0, 0, cmd_flushdb, multi_flushdb, "server"},
    /* hashes */
    {"hset", -4, W | M | F, 1, 1, 1, cmd_hset, NULL, "hash"},
    {"hmset", -4, W | M | F, 1, 1, 1, cmd_hmset, NULL, "hash"},
    {"hget", 3, R | F, 1, 1, 1, cmd_hget, NULL, "hash"},
    {"hdel", -3, W | F, 1, 1, 1, cmd_hdel, NULL, "hash"},
    {"hgetall", 2, R, 1, 1, 1, cmd_hgetall, NULL, "hash"},
    {"hlen", 2, R | F, 1, 1, 1, cmd_hlen, NULL, "hash"},
    {"hexists", 3, R | F, 1, 1, 1, cmd_hexists, NULL, "hash"},
    {"hincrby", 4, W | M | F, 1, 1, 1, cmd_hincrby, NULL, "hash"},
    {"hsetnx", 4, W | M | F, 1, 1, 1, cmd_hsetnx, NULL, "hash"},
    {"hmget", -3, R | F, 1, 1, 1, cmd_hmget, NULL, "hash"},
    {"hkeys", 2, R, 1, 1, 1, cmd_hkeys, NULL, "hash"},
    {"hvals", 2, R, 1, 1, 1, cmd_hvals, NULL, "hash"},
    {"hstrlen", 3, R | F, 1, 1, 1, cmd_hstrlen, NULL, "hash"},
    {"hincrbyfloat", 4, W | M | F, 1, 1, 1, cmd_hincrbyfloat, NULL, "hash"},
    /* lists */
    {"lpush", -3, W | M | F, 1, 1, 1, cmd_lpush, NULL, "list"},
    {"rpush", -3, W | M | F, 1, 1, 1, cmd_rpush, NULL, "list"},
    {"lpop", -2, W | F, 1, 1, 1, cmd_lpop, NULL, "list"},
    {"rpop", -2, W | F, 1, 1, 1, cmd_rpop, NULL, "list"},
    {"llen", 2, R | F, 1, 1, 1, cmd_llen, NULL, "list"},
    {"lrange", 4, R, 1, 1, 1, cmd_lrange, NULL, "list"},
    {"lindex", 3, R, 1, 1, 1, cmd_lindex, NULL, "list"},
    {"lset", 4, W | M, 1, 1, 1, cmd_lset, NULL, "list"},
    {"linsert", 5, W | M, 1, 1, 1, cmd_linsert, NULL, "list"},
    {"lrem", 4, W, 1, 1, 1, cmd_lrem, NULL, "list"},
    {"ltrim", 4, W, 1, 1, 1, cmd_ltrim, NULL, "list"},
    {"lpos", -3, R, 1, 1, 1, cmd_lpos, NULL, "list"},
    {"rpoplpush", 3, W | M, 1, 2, 1, cmd_rpoplpush, multi_rpoplpush, "list"},
    {"lmove", 5, W | M, 1, 2, 1, cmd_lmove, multi_lmove, "list"},
    {"blpop", -3, W | B | X | CMD_NOSCRIPT, 1, -2, 1, NULL, multi_blpop, "list"},
    {"brpop", -3, W | B | X | CMD_NOSCRIPT, 1, -2, 1, NULL, multi_brpop, "list"},
    /* sets */
    {"sadd", -3, W | M | F, 1, 1, 1, cmd_sadd, NULL, "set"},
    {"srem", -3, W | F, 1, 1, 1, cmd_srem, NULL, "set"},
    {"smembers", 2, R, 1, 1, 1, cmd_smembers, NULL, "set"},
    {"sismember", 3, R | F, 1, 1, 1, cmd_sismember, NULL, "set"},
    {"smismember", -3, R | F, 1, 1, 1, cmd_smismember, NULL, "set"},
    {"scard", 2, R | F, 1, 1, 1, cmd_scard, NULL, "set"},
    {"spop", -2, W | F, 1, 1, 1, cmd_spop, NULL, "set"},
    {"srandmember", -2, R, 1, 1, 1, cmd_srandmember, NULL, "set"},
    {"smove", 4, W | F, 1, 2, 1, cmd_smove, multi_smove, "set"},
    {"sinter", -2, R, 1, -1, 1, cmd_sinter, multi_sinter, "set"},
    {"sunion", -2, R, 1, -1, 1, cmd_sunion, multi_sunion, "set"},
    {"sdiff", -2, R, 1, -1, 1, cmd_sdiff, multi_sdiff, "set"},
    {"sinterstore", -3, W | M, 1, -1, 1, cmd_sinterstore, multi_sinterstore, "set"},
    {"sunionstore", -3, W | M, 1, -1, 1, cmd_sunionstore, multi_sunionstore, "set"},
    {"sdiffstore", -3, W | M, 1, -1, 1, cmd_sdiffstore, multi_sdiffstore, "set"},
    {"sintercard", -3, R | N, 0, 0, 0, cmd_sintercard, multi_sintercard, "set"},
    /* sorted sets */
    {"zadd", -4, W | M | F, 1, 1, 1, cmd_zadd, NULL, "sorted-set"},
    {"zincrby", 4, W | M | F, 1, 1, 1, cmd_zincrby, NULL, "sorted-set"},
    {"zscore", 3, R | F, 1, 1, 1, cmd_zscore, NULL, "sorted-set"},
    {"zmscore", -3, R | F, 1, 1, 1, cmd_zmscore, NULL, "sorted-set"},
    {"zcard", 2, R | F, 1, 1, 1, cmd_zcard, NULL, "sorted-set"},
    {"zrem", -3, W | F, 1, 1, 1, cmd_zrem, NULL, "sorted-set"},
    {"zrange", -4, R, 1, 1, 1, cmd_zrange, NULL, "sorted-set"},
    {"zrevrange", -4, R, 1, 1, 1, cmd_zrevrange, NULL, "sorted-set"},
    {"zrangebyscore", -4, R, 1, 1, 1, cmd_zrangebyscore, NULL, "sorted-set"},
    {"zrevrangebyscore", -4, R, 1, 1, 1, cmd_zrevrangebyscore, NULL, "sorted-set"},
    {"zrangebylex", -4, R, 1, 1, 1, cmd_zrangebylex, NULL, "sorted-set"},
    {"zrevrangebylex", -4, R, 1, 1, 1, cmd_zrevrangebylex, NULL, "sorted-set"},
    {"zcount", 4, R | F, 1, 1, 1, cmd_zcount, NULL, "sorted-set"},
    {"zlexcount", 4, R | F, 1, 1, 1, cmd_zlexcount, NULL, "sorted-set"},
    {"zrank", 3, R | F, 1, 1, 1, cmd_zrank, NULL, "sorted-set"},
    {"zrevrank", 3, R | F, 1, 1, 1, cmd_zrevrank, NULL, "sorted-set"},
    {"zremrangebyscore", 4, W, 1, 1, 1, cmd_zremrangebyscore, NULL, "sorted-set"},
    {"zremrangebylex", 4, W, 1, 1, 1, cmd_zremrangebylex, NULL, "sorted-set"},
    {"zremrangebyrank", 4, W, 1, 1, 1, cmd_zremrangebyrank, NULL, "sorted-set"},
    {"zpopmin", -2, W | F, 1, 1, 1, cmd_zpopmin, NULL, "sorted-set"},
    {"zpopmax", -2, W | F, 1, 1, 1, cmd_zpopmax, NULL, "sorted-set"},
    {"zrangestore", -5, W | M, 1, 2, 1, cmd_zrangestore, multi_zrangestore, "sorted-set"},
    {"zunion", -3, R | N, 0, 0, 0, cmd_zunion, multi_zunion, "sorted-set"},
    {"zinter", -3, R | N, 0, 0, 0, cmd_zinter, multi_zinter, "sorted-set"},
    {"zdiff", -3, R | N, 0, 0, 0, cmd_zdiff, multi_zdiff, "sorted-set"},
    {"zunionstore", -4, W | M | N, 1, 1, 1, cmd_zunionstore, multi_zunionstore, "sorted-set"},
    {"zinterstore", -4, W | M | N, 1, 1, 1, cmd_zinterstore, multi_zinterstore, "sorted-set"},
    {"zdiffstore", -4, W | M | N, 1, 1, 1, cmd_zdiffstore, multi_zdiffstore, "sorted-set"},
    {"zintercard", -3, R | N, 0, 0, 0, cmd_zintercard, multi_zintercard, "sorted-set"},
    {"zrandmember", -2, R, 1, 1, 1, cmd_zrandmember, NULL, "sorted-set"},
    /* cursors over one key's members */
    {"sscan", -3, R, 1, 1, 1, cmd_sscan, NULL, "set"},
    {"hscan", -3, R, 1, 1, 1, cmd_hscan, NULL, "hash"},
    {"zscan", -3, R, 1, 1, 1, cmd_zscan, NULL, "sorted-set"},
    /* server and connection */
    {"ping", -1, F, 0, 0, 0, cmd_ping, NULL, "connection"},
    {"echo", 2, F | CMD_LOADING | CMD_STALE, 0, 0, 0, cmd_echo, NULL, "connection"},
    {"auth", -2, F | NLS | NA, 0, 0, 0, cmd_auth, NULL, "connection"},
    {"time", 1, F | CMD_LOADING | CMD_STALE, 0, 0, 0, cmd_time, NULL, "server"},
    {"role", 1, F | NLS, 0, 0, 0, cmd_role, NULL, "server"},
    {"select", 2, F | X | CMD_LOADING | CMD_STALE, 0, 0, 0, NULL, multi_select, "connection"},
    {"quit", -1, F | X | NLS | NA, 0, 0, 0, NULL, multi_quit, "connection"},
    {"reset", 1, F | X | NLS | NA, 0, 0, 0, NULL, multi_reset, "connection"},
    {"hello", -1, F | X | NLS | NA, 0, 0, 0, NULL, multi_hello, "connection"},
    {"client", -2, X | NLS, 0, 0, 0, NULL, multi_client, "connection"},
    {"command", -1, X | CMD_LOADING | CMD_STALE, 0, 0, 0, NULL, multi_command, "server"},
    {"config", -2, X | NLS, 0, 0, 0, NULL, multi_config, "server"},
    {"info", -1, X | CMD_LOADING | CMD_STALE, 0, 0, 0, NULL, multi_info, "server"},
    {"memory", -2, X, 0, 0, 0, NULL, multi_memory, "server"},
    {"shutdown", -1, W | X | NLS | CMD_NOMULTI, 0, 0, 0, NULL, multi_shutdown, "server"},
    {"bgrewriteaof", 1, X | CMD_NOSCRIPT, 0, 0, 0, NULL, multi_bgrewriteaof, "server"},
    /* transactions */
    {"multi", 1, F | X | NLS | AB, 0, 0, 0, NULL, multi_multi, "transactions"},
    {"exec", 1, X | NLS, 0, 0, 0, NULL, multi_exec, "transactions"},
    {"discard", 1, F | X | NLS | AB, 0, 0, 0, NULL, multi_discard, "transactions"},
    {"watch", -2, F | X | NLS | AB, 1, -1, 1, NULL, multi_watch, "transactions"},
    {"unwatch", 1, F | X | NLS | AB, 0, 0, 0, NULL, multi_unwatch, "transactions"},
    /* internal: the parts of commands that span shards */
    {"__dumpdel", 2, W | H, 1, 1, 1, cmd_dump_del, NULL, NULL},
    {"__restore", 3, W | H, 1, 1, 1, cmd_restore_at, NULL, NULL},
    {"__shardstats", 1, R | H, 0, 0, 0, cmd_shardstats, NULL, NULL},
    {"__clientlist", 1, R | H, 0, 0, 0, cmd_clientlist, NULL, NULL},
    {"__bgrewrite", 1, H, 0, 0, 0, cmd_bgrewrite, NULL, NULL},
    {"__zfetch", 2, R | H, 1, 1, 1, cmd_zfetch, NULL, NULL},
    {"__zrangefetch", -4, R | H, 1, 1, 1, cmd_zrangefetch, NULL, NULL},
    {"__memusage", -3, R | H, 2, 2, 1, cmd_memusage, NULL, NULL},
};
/* clang-format on */

const size_t kv_ncommands = sizeof kv_commands / sizeof kv_commands[0];

/* An open-addressing index of the table by lower-case name, built once by kv_commands_init
 * before the workers start and only read afterwards. 256 slots for ~150 names: short probes. */
#define INDEX_SLOTS 256
static const kv_command *cmd_index[INDEX_SLOTS];

static unsigned name_slot(const char *lower, size_t n)
{
    /* FNV-1a: the names are ours, not a client's, so no key is needed. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)lower[i]) * 16777619u;
    return h & (INDEX_SLOTS - 1);
}

void kv_commands_init(void)
{
    for (size_t i = 0; i < kv_ncommands; i++) {
        const kv_command *k = &kv_commands[i];
        unsigned s = name_slot(k->name, strlen(k->name));
        while (cmd_index[s])
            s = (s + 1) & (INDEX_SLOTS - 1);
        cmd_index[s] = k;
    }
}

const kv_command *kv_command_find(const char *name, size_t n, int hidden)
{
    char lower[32];
    if (n == 0 || n >= sizeof lower)
        return NULL;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    for (unsigned s = name_slot(lower, n); cmd_index[s]; s = (s + 1) & (INDEX_SLOTS - 1)) {
        const kv_command *k = cmd_index[s];
        /* The argument may hold a NUL: compare n bytes only once the lengths agree (strncmp
         * would stop at that NUL and call "get\0..." GET, then read past the table's name). */
        if (strlen(k->name) == n && memcmp(k->name, lower, n) == 0)
            return hidden || !(k->flags & CMD_HIDDEN) ? k : NULL;
    }
    return NULL;
}

void kv_command_keys(const kv_command *cmd, int argc, const char *const *argv, const size_t *argl,
                     kv_keypos *k)
{
    *k = (kv_keypos){0, cmd->first, cmd->last < 0 ? argc + cmd->last : cmd->last, cmd->step};
    if (!(cmd->flags & CMD_NUMKEYS))
        return;
    int dst = cmd->first, at = dst + 1; /* the count's position */
    long long n;
    if (argc <= at || resp_strtoll(argv[at], argl[at], &n) < 0 || n < 1 || n > argc - at - 1) {
        *k = (kv_keypos){0, 0, -1, 1};
        return;
    }
    *k = (kv_keypos){dst, at + 1, at + (int)n, 1};
}

int arg_is(const kv_ctx *c, int i, const char *lit)
{
    size_t n = strlen(lit);
    return c->argl[i] == n && strncasecmp(c->argv[i], lit, n) == 0;
}

int arg_ll(kv_ctx *c, int i, long long *v)
{
    if (resp_strtoll(c->argv[i], c->argl[i], v) == 0)
        return 0;
    reply_error(c->out, ERR_NOTINT);
    return -1;
}

long long index_range(long long *start, long long stop, long long len)
{
    if (*start < 0)
        *start += len;
    if (stop < 0)
        stop += len;
    if (*start < 0)
        *start = 0;
    if (*start > stop || *start >= len)
        return 0;
    if (stop >= len)
        stop = len - 1;
    return stop - *start + 1;
}

int str_to_ld(const char *s, size_t n, long double *v)
{
    char buf[5120];
    if (n == 0 || n >= sizeof buf || isspace((unsigned char)s[0]))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long double x = strtold(buf, &end);
    /* As Redis's string2ld: an overflow or an underflow to zero is not a valid float (a
     * literal "inf" is, and is refused later as a result). */
    if ((size_t)(end - buf) != n || isnan(x) || (errno == ERANGE && (isinf(x) || x == 0)))
        return -1;
    *v = x;
    return 0;
}

size_t ld_format(char *buf, size_t cap, long double v)
{
    int n = snprintf(buf, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    if (strchr(buf, '.')) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0') { /* -0 */
        buf[0] = '0';
        n = 1;
    }
    buf[n] = 0;
    return (size_t)n;
}

void reply_wrongtype(kv_ctx *c)
{
    reply_error(c->out, ERR_WRONGTYPE);
}
