/* Commands: the table (commands.c), the context a command runs in, and the helpers the
 * cmd_*.c files share. A command's `proc` runs on the shard that owns its keys, on that
 * shard's worker, with that shard's db: locally when the connection lives there, else inside
 * a task submitted there (exec.c). Commands whose keys span shards, and commands that need
 * every shard or the connection itself, have a `multi` that runs on the connection's task
 * and may park (it sends work to shards through exec.c). */
#ifndef KV_CMD_H
#define KV_CMD_H

#include <stddef.h>

#include "db.h"
#include "reply.h"
#include "resp.h"
#include "sbuf.h"

typedef struct kv_conn kv_conn;
typedef struct kv_command kv_command;

typedef struct kv_ctx {
    kv_db *db; /* the running shard's db (proc); the connection's shard's (multi) */
    int argc;
    const char *const *argv;
    const size_t *argl;
    sbuf *out;
    kv_conn *conn; /* multi only: the connection; NULL in proc */
    const kv_command *cmd;
    /* Set by a write proc whose reply cannot tell that it changed nothing (a ZADD without CH
     * that moved no score): its keys are not touched for WATCH (kv_watch_after_write). Zero
     * from the initializers, which leave it out. */
    int unchanged;
} kv_ctx;

typedef void (*kv_proc)(kv_ctx *c);

enum {
    CMD_WRITE = 1u << 0,
    CMD_READONLY = 1u << 1,
    CMD_DENYOOM = 1u << 2, /* refused past maxmemory with noeviction */
    CMD_FAST = 1u << 3,
    CMD_MULTI = 1u << 4,  /* always runs `multi` on the connection (fan-out, blocking, conn) */
    CMD_HIDDEN = 1u << 5, /* internal: never looked up for a client */
    CMD_NOSCRIPT = 1u << 6,
    CMD_LOADING = 1u << 7,
    CMD_STALE = 1u << 8,
    CMD_BLOCKING = 1u << 9,
    CMD_LOGSTATE = 1u << 10,  /* AOF: log the keys' resulting state, not the command */
    CMD_LOGEXPIRE = 1u << 11, /* with LOGSTATE: only their expiry (or DEL) */
    CMD_NUMKEYS = 1u << 12,   /* keys counted by an argument (kv_command_keys) */
    CMD_NOMULTI = 1u << 13,   /* refused inside MULTI, which it fails (SHUTDOWN) */
    /* Only what COMMAND INFO says of Redis's commands: weft-kv has no ACL, no busy script. */
    CMD_NOAUTH = 1u << 14,
    CMD_ALLOWBUSY = 1u << 15,
};

struct kv_command {
    const char *name; /* lower case */
    int arity;        /* Redis's: n exactly, or -n for at least n (the name counts) */
    unsigned flags;
    int first, last, step; /* key positions, as COMMAND reports them (last -1: to the end) */
    kv_proc proc;
    kv_proc multi;
    const char *group; /* COMMAND DOCS's group */
};

/* The command named name[0 .. n) in any case, or NULL (hidden ones excluded unless asked). */
const kv_command *kv_command_find(const char *name, size_t n, int hidden);
/* Builds the lookup index: once, before the runtime starts. */
void kv_commands_init(void);
extern const kv_command kv_commands[];
extern const size_t kv_ncommands;

/* Where a command's keys are in these arguments: a destination (dst; 0: none), then first ..
 * last every step (first 0: none). The table's positions, but for the commands that count
 * their keys (CMD_NUMKEYS): with the table's first 0 the count is argv[1] and the keys follow it
 * (ZUNION, SINTERCARD); with first 1, argv[1] is a destination and the count is argv[2], the
 * sources after it (ZUNIONSTORE). A count that is not an integer in 1 .. the arguments left
 * gives no key at all: the proc, wherever it runs, answers the error. Any thread. */
typedef struct kv_keypos {
    int dst, first, last, step;
} kv_keypos;
void kv_command_keys(const kv_command *cmd, int argc, const char *const *argv, const size_t *argl,
                     kv_keypos *k);

/* Argument helpers. arg_ll and arg_double reply the error themselves and return -1. */
int arg_is(const kv_ctx *c, int i, const char *lit); /* case-insensitive equality */
int arg_ll(kv_ctx *c, int i, long long *v);
/* Redis's range by index (LRANGE, ZRANGE): negative indexes count from the end, then the
 * range is clamped to [0, len). Returns how many elements it holds (0: empty), the first at
 * *start. */
long long index_range(long long *start, long long stop, long long len);
/* The value at argv[1] if it has `type`, else NULL; replies WRONGTYPE (and sets *wrong) for
 * another type. With create, a missing key is made (an error reply and *wrong if out of
 * memory). cmd_set.c. */
kv_entry *get_typed(kv_ctx *c, int type, int create, int *wrong);
int str_to_ld(const char *s, size_t n, long double *v); /* Redis's string2ld: 0 or -1 */
/* A score or weight as Redis's string2d: strtod's syntax, all bytes used, no leading space,
 * no NaN, no overflow nor underflow to zero. 0 or -1. cmd_set.c. */
int str_to_d(const char *s, size_t n, double *v);
/* Formats a long double as Redis's INCRBYFLOAT does (%.17Lf, trailing zeros trimmed). */
size_t ld_format(char *buf, size_t cap, long double v);
void reply_wrongtype(kv_ctx *c);
/* SCAN's cursor as Redis reads it (strtoul's syntax: a sign allowed, "-1" the largest; empty
 * is 0). 0 or -1. cmd_keys.c. */
int scan_parse_cursor(const char *s, size_t n, unsigned long long *out);
/* The options of SCAN and of SSCAN, HSCAN, ZSCAN from argv[from] on: MATCH, COUNT (at least 1)
 * and, with with_type, TYPE. Replies the error and returns -1 on a bad one. cmd_keys.c. */
typedef struct scan_opts {
    const char *pat; /* MATCH's pattern, when not all */
    size_t plen;
    int all;  /* no pattern, or "*" */
    int type; /* TYPE's KV_* (99: a type weft-kv lacks), -1: any */
    long long count;
} scan_opts;
int scan_parse_opts(kv_ctx *c, int from, int with_type, scan_opts *o);

/* Entry points of the commands, by file. */
#define KV_DECL(name) void name(kv_ctx *c)
/* cmd_string.c */
KV_DECL(cmd_get);
KV_DECL(cmd_set);
KV_DECL(cmd_getset);
KV_DECL(cmd_getdel);
KV_DECL(cmd_getex);
KV_DECL(cmd_setnx);
KV_DECL(cmd_setex);
KV_DECL(cmd_psetex);
KV_DECL(cmd_incr);
KV_DECL(cmd_decr);
KV_DECL(cmd_incrby);
KV_DECL(cmd_decrby);
KV_DECL(cmd_incrbyfloat);
KV_DECL(cmd_append);
KV_DECL(cmd_strlen);
KV_DECL(cmd_getrange);
KV_DECL(cmd_setrange);
KV_DECL(cmd_mget);
KV_DECL(cmd_mset);
KV_DECL(cmd_msetnx);
KV_DECL(multi_mget);
KV_DECL(multi_mset);
KV_DECL(multi_msetnx);
/* cmd_keys.c */
KV_DECL(cmd_del);
KV_DECL(cmd_exists);
KV_DECL(cmd_expire);
KV_DECL(cmd_pexpire);
KV_DECL(cmd_expireat);
KV_DECL(cmd_pexpireat);
KV_DECL(cmd_ttl);
KV_DECL(cmd_pttl);
KV_DECL(cmd_persist);
KV_DECL(cmd_type);
KV_DECL(cmd_rename);
KV_DECL(cmd_keys);
KV_DECL(cmd_scan);
KV_DECL(cmd_randomkey);
KV_DECL(cmd_dbsize);
KV_DECL(cmd_flushdb);
KV_DECL(cmd_dump_del);
KV_DECL(cmd_restore_at);
KV_DECL(cmd_shardstats);
KV_DECL(multi_del);
KV_DECL(multi_exists);
KV_DECL(multi_rename);
KV_DECL(multi_keys);
KV_DECL(multi_scan);
KV_DECL(multi_randomkey);
KV_DECL(multi_dbsize);
KV_DECL(multi_flushdb);
/* cmd_hash.c */
KV_DECL(cmd_hset);
KV_DECL(cmd_hmset);
KV_DECL(cmd_hget);
KV_DECL(cmd_hdel);
KV_DECL(cmd_hgetall);
KV_DECL(cmd_hlen);
KV_DECL(cmd_hexists);
KV_DECL(cmd_hincrby);
KV_DECL(cmd_hsetnx);
KV_DECL(cmd_hmget);
KV_DECL(cmd_hkeys);
KV_DECL(cmd_hvals);
KV_DECL(cmd_hstrlen);
KV_DECL(cmd_hincrbyfloat);
/* cmd_list.c */
KV_DECL(cmd_lpush);
KV_DECL(cmd_rpush);
KV_DECL(cmd_lpop);
KV_DECL(cmd_rpop);
KV_DECL(cmd_llen);
KV_DECL(cmd_lrange);
KV_DECL(multi_blpop);
KV_DECL(multi_brpop);
/* cmd_list_index.c */
KV_DECL(cmd_lindex);
KV_DECL(cmd_lset);
KV_DECL(cmd_linsert);
KV_DECL(cmd_lrem);
KV_DECL(cmd_ltrim);
KV_DECL(cmd_lpos);
/* cmd_lmove.c */
KV_DECL(cmd_rpoplpush);
KV_DECL(cmd_lmove);
KV_DECL(multi_rpoplpush);
KV_DECL(multi_lmove);
/* cmd_set.c */
KV_DECL(cmd_sadd);
KV_DECL(cmd_srem);
KV_DECL(cmd_smembers);
KV_DECL(cmd_sismember);
KV_DECL(cmd_smismember);
KV_DECL(cmd_scard);
KV_DECL(cmd_spop);
/* cmd_setops.c */
KV_DECL(cmd_sinter);
KV_DECL(cmd_sunion);
KV_DECL(cmd_sdiff);
KV_DECL(cmd_sinterstore);
KV_DECL(cmd_sunionstore);
KV_DECL(cmd_sdiffstore);
KV_DECL(cmd_sintercard);
KV_DECL(cmd_smove);
KV_DECL(multi_sinter);
KV_DECL(multi_sunion);
KV_DECL(multi_sdiff);
KV_DECL(multi_sinterstore);
KV_DECL(multi_sunionstore);
KV_DECL(multi_sdiffstore);
KV_DECL(multi_sintercard);
KV_DECL(multi_smove);
KV_DECL(cmd_zadd);
KV_DECL(cmd_zincrby);
KV_DECL(cmd_zscore);
KV_DECL(cmd_zmscore);
KV_DECL(cmd_zcard);
KV_DECL(cmd_zrem);
KV_DECL(cmd_zpopmin);
KV_DECL(cmd_zpopmax);
/* cmd_zrange.c */
KV_DECL(cmd_zrange);
KV_DECL(cmd_zrevrange);
KV_DECL(cmd_zrangebyscore);
KV_DECL(cmd_zrevrangebyscore);
KV_DECL(cmd_zrangebylex);
KV_DECL(cmd_zrevrangebylex);
KV_DECL(cmd_zcount);
KV_DECL(cmd_zlexcount);
KV_DECL(cmd_zrank);
KV_DECL(cmd_zrevrank);
KV_DECL(cmd_zremrangebyscore);
KV_DECL(cmd_zremrangebylex);
KV_DECL(cmd_zremrangebyrank);
KV_DECL(cmd_zrangestore);
KV_DECL(cmd_zrangefetch);
/* cmd_zsetops.c */
KV_DECL(cmd_zunion);
KV_DECL(cmd_zinter);
KV_DECL(cmd_zdiff);
KV_DECL(cmd_zunionstore);
KV_DECL(cmd_zinterstore);
KV_DECL(cmd_zdiffstore);
KV_DECL(cmd_zintercard);
KV_DECL(cmd_zfetch);
/* cmd_zsetops_across.c */
KV_DECL(multi_zunion);
KV_DECL(multi_zinter);
KV_DECL(multi_zdiff);
KV_DECL(multi_zunionstore);
KV_DECL(multi_zinterstore);
KV_DECL(multi_zdiffstore);
KV_DECL(multi_zintercard);
KV_DECL(multi_zrangestore);
/* cmd_random.c */
KV_DECL(cmd_srandmember);
KV_DECL(cmd_zrandmember);
/* cmd_scan.c */
KV_DECL(cmd_sscan);
KV_DECL(cmd_hscan);
KV_DECL(cmd_zscan);
/* cmd_server.c */
KV_DECL(cmd_ping);
KV_DECL(cmd_echo);
KV_DECL(cmd_auth);
KV_DECL(cmd_time);
KV_DECL(cmd_role);
KV_DECL(multi_select);
KV_DECL(multi_quit);
KV_DECL(multi_reset);
KV_DECL(multi_hello);
KV_DECL(multi_client);
KV_DECL(multi_command);
KV_DECL(multi_config);
KV_DECL(multi_info);
KV_DECL(multi_memory);
KV_DECL(cmd_memusage);
KV_DECL(multi_shutdown);
KV_DECL(cmd_clientlist);
KV_DECL(multi_bgrewriteaof);
KV_DECL(cmd_bgrewrite);
/* Before CLIENT, COMMAND, CONFIG or MEMORY is queued inside MULTI: Redis's errors for an unknown
 * subcommand or its arity, as running it would answer. Returns 0, or -1 with the error in out;
 * 0 for any other command. */
int kv_subcommand_check(const kv_command *cmd, int argc, const char *const *argv,
                        const size_t *argl, sbuf *out);
/* multi.c */
KV_DECL(multi_multi);
KV_DECL(multi_exec);
KV_DECL(multi_discard);
/* watch.c */
KV_DECL(multi_watch);
KV_DECL(multi_unwatch);

/* Adds a set member (cmd_set.c; db_restore uses it). Returns 1 if new, 0 if there, -1 OOM. */
int set_add(kv_entry *e, const char *m, size_t mlen);
/* The same on a bare member dict (cmd_setops.c's results). */
int set_put(dict *d, const char *m, size_t mlen);
/* Sets a hash field (cmd_hash.c; db_restore uses it). Returns 1 if new, 0 if updated, -1 OOM. */
int hash_set(kv_entry *e, const char *f, size_t flen, const char *v, size_t vlen);

#endif
