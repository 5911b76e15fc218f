/* Sorted sets: a skip list ordered by (score, member) for ranges and pops, and a dict from
 * member to node for ZSCORE and updates, as Redis's skiplist encoding (without its rank
 * spans: a range by index walks from the end it is nearest). Nodes and the dict are the
 * shard's, allocated with kv_malloc; only the shard's worker touches them. */
#ifndef KV_ZSET_H
#define KV_ZSET_H

#include <stddef.h>
#include <stdint.h>

#include "dict.h"

/* 32 levels at p = 1/4 hold 2^64 members: as Redis's ZSKIPLIST_MAXLEVEL. */
#define ZSET_MAXLEVEL 32

typedef struct kv_znode {
    dnode node; /* in the member dict: key, klen and hash are the member's */
    double score;
    struct kv_znode *back; /* the previous node on level 0, NULL for the first */
    int nlevel;
    struct kv_znode *next[]; /* nlevel forward links, then the member's bytes */
} kv_znode;

typedef struct kv_zset {
    dict members;   /* of kv_znode */
    kv_znode *head; /* a sentinel with ZSET_MAXLEVEL links */
    kv_znode *tail; /* the last node, or NULL */
    int level;      /* levels in use */
    size_t len;
} kv_zset;

/* A new empty sorted set, or NULL (out of memory). */
kv_zset *zset_create(void);
void zset_free(kv_zset *z);
kv_znode *zset_find(const kv_zset *z, const char *m, size_t mlen);
/* Adds member m with score, or moves it to score. Returns 1 added, 0 updated, -1 OOM. rng:
 * the shard's xorshift state (the new node's height). */
int zset_set(kv_zset *z, const char *m, size_t mlen, double score, uint64_t *rng);
/* Removes (and frees) n. */
void zset_delete(kv_zset *z, kv_znode *n);
/* The node at 0-based rank i (i < len): walks from the nearer end. */
kv_znode *zset_at(const kv_zset *z, size_t i);
static inline kv_znode *zset_first(const kv_zset *z)
{
    return z->head->next[0];
}
static inline const char *zset_member(const kv_znode *n)
{
    return n->node.key;
}

#endif
