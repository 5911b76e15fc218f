/* An intrusive chained hash table keyed by byte strings: the keyspace of a shard, and the
 * fields of a hash value. Nodes are embedded in the caller's records (the key bytes too), so a
 * lookup is one hash and a short chain walk, and the table allocates only its bucket array.
 * The bucket count is a power of two that doubles at load 1 and never shrinks, which is what
 * lets SCAN's reverse-binary cursor (dict_scan) visit every node present for the whole scan.
 * One thread owns a table (the shard's worker). */
#ifndef KV_DICT_H
#define KV_DICT_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h" /* kv_hash, which every table of weft-kv uses */

typedef struct dnode {
    struct dnode *next;
    uint64_t hash;
    size_t klen;
    const char *key; /* klen bytes, owned by the record that embeds the node */
} dnode;

typedef struct dict {
    dnode **buckets;
    size_t mask; /* bucket count - 1; buckets NULL and mask 0 while empty */
    size_t size;
} dict;

dnode *dict_find(const dict *d, const char *key, size_t klen, uint64_t hash);
/* Links n (its hash, key and klen set; no node with that key present). Returns 0 or -1 when
 * the bucket array cannot grow (the node is still linked, in a longer chain). */
int dict_add(dict *d, dnode *n);
/* Unlinks n, which must be in d. */
void dict_remove(dict *d, dnode *n);
/* Frees the bucket array (not the nodes: walk them first with dict_scan or dict_next). */
void dict_free(dict *d);

/* Calls fn on the nodes of one bucket slot of the cursor and returns the next cursor, 0 when
 * the scan is complete. fn may not add or remove nodes. */
typedef void (*dict_scan_fn)(dnode *n, void *arg);
size_t dict_scan(const dict *d, size_t cursor, dict_scan_fn fn, void *arg);
/* Whether a scan that has reached `cursor` (not yet complete) has visited the bucket of a key
 * with this hash: the slots come in reverse-binary order, and a doubling splits a visited slot
 * into two visited ones, so the answer for a key never goes from 1 back to 0. */
int dict_scan_passed(const dict *d, size_t cursor, uint64_t hash);
/* A node picked at random (bucket first, then within its chain), or NULL when empty; *rng is
 * a nonzero xorshift state the call advances. */
dnode *dict_random(const dict *d, uint64_t *rng);
/* Visits the nodes of bucket slot `cursor` like dict_scan; a node for which fn returns 1 is
 * unlinked (fn frees it: fn must not call dict_remove). Returns the next cursor, 0 at the end. */
typedef int (*dict_sweep_fn)(dnode *n, void *arg);
size_t dict_sweep(dict *d, size_t cursor, dict_sweep_fn fn, void *arg);
/* Unlinks every node, calling fn on each (which may free it), and frees the bucket array. */
void dict_clear(dict *d, void (*fn)(dnode *n, void *arg), void *arg);

#endif
