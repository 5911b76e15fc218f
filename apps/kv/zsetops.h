/* Sorted-set algebra shared by its two paths: ZUNION ZINTER ZDIFF, their STORE forms and
 * ZINTERCARD with every key on one shard (cmd_zsetops.c, reading the keys' own values), and
 * the same with keys on several shards (cmd_zsetops_across.c, reading copies fetched from the
 * shards). Both parse the arguments, gather the sources and compute with what is here; only
 * the gathering and the storing differ. Everything here runs on one thread: the shard's worker
 * (procs) or the connection's (multis). */
#ifndef KV_ZSETOPS_H
#define KV_ZSETOPS_H

#include "cmd.h"
#include "zset.h"

enum { ZOP_UNION, ZOP_INTER, ZOP_DIFF };
enum { AGG_SUM, AGG_MIN, AGG_MAX };
/* How a source's nodes carry their scores. */
enum {
    ZSRC_SET,    /* a set's kv_field nodes: every member scores 1, as in Redis */
    ZSRC_ZSET,   /* a sorted set's kv_znode nodes */
    ZSRC_SCORED, /* zscored nodes: a copy fetched from another shard */
};

/* A member and its score outside any sorted set: the accumulator's entries, and the members of
 * the copies fetched from other shards. Allocated with kv_malloc, the name after the struct. */
typedef struct zscored {
    dnode node;
    double score;
    char name[];
} zscored;

/* One input of the operation. */
typedef struct zsrc {
    const dict *d; /* its members; NULL for a missing key (an empty set) */
    int kind;      /* ZSRC_* */
    double weight; /* WEIGHTS' (1 without) */
} zsrc;

/* A parsed command: what to compute and what to answer. */
typedef struct zop {
    const char *name; /* the command's name, for the count's error */
    int op;           /* ZOP_* */
    int store;        /* a STORE form: argv[1] is the destination */
    int card;         /* ZINTERCARD: count only */
    int first, nkeys; /* the sources: argv[first .. first + nkeys) */
    int agg;          /* AGG_* */
    int withscores;
    long long limit; /* ZINTERCARD's LIMIT, 0: none */
    double *weights; /* nkeys of them (malloc), or NULL: all 1 */
    const char *err; /* the options' error: answered only if every source has a valid type */
} zop;

/* Parses c's arguments into o for the command op (store, card as above). Returns 0, with
 * o->err set if the options after the keys are wrong (the caller answers it after the type
 * checks, as Redis does); or -1 with the count's error replied. Free with zop_free. */
int zop_parse(kv_ctx *c, zop *o, int op, int store, int card);
void zop_free(zop *o);

/* Computes o over srcs[0 .. o->nkeys) (reordered: smallest first for a union or an
 * intersection) into acc, a dict of zscored the caller frees with zscored_clear; with o->card,
 * only counts into *count (acc unused). Returns 0, or -1 out of memory. */
int zop_compute(const zop *o, zsrc *srcs, dict *acc, long long *count);
/* Frees every zscored of d and its buckets. */
void zscored_clear(dict *d);
/* Adds member m with score to d (no such member there). Returns 0, or -1 out of memory. */
int zscored_add(dict *d, const char *m, size_t mlen, double score);

/* The entries of acc as a new sorted set (ordered), or NULL out of memory. rng: the running
 * shard's generator (the skip list's levels). */
kv_zset *zop_result(const dict *acc, uint64_t *rng);
/* Answers n members from `from` on (backwards with rev), with their scores if asked (flat in
 * RESP2, a pair each in RESP3, as Redis's ranges): ZRANGE's reply, and ZUNION's (cmd_zrange.c). */
void zrange_reply(kv_ctx *c, const kv_znode *from, long long n, int rev, int withscores);
/* Replaces key dst of this shard with z (taken over), or deletes it when z is empty, and
 * answers z's size: the end of ZUNIONSTORE's and ZRANGESTORE's on one shard. */
void zstore_here(kv_ctx *c, const char *dst, size_t dlen, kv_zset *z);

#endif
