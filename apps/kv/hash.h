/* The hashes of weft-kv's keys (hash.c): SipHash-1-3 under two secret keys drawn at start, one
 * for the hash tables' buckets and one for the choice of a key's shard, so that a client that
 * does not know them cannot pick keys that crowd one bucket chain or one shard. */
#ifndef KV_HASH_H
#define KV_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Draws both keys from getrandom(). Returns 0, or -1 (no randomness: the caller exits). Once,
 * before the workers run; the keys are only read afterwards. */
int kv_hash_init(void);

/* The bucket hash of every table (keyspace, hash fields, set and sorted-set members, the
 * blocking and watching tables). Any thread. */
uint64_t kv_hash(const void *p, size_t n);
/* The hash that places a key on a shard (weft_shard_of takes its high bits). Any thread. */
uint64_t kv_hash_shard(const void *p, size_t n);

/* The shard key, 16 bytes: kept with an AOF, whose files hold each key's history on the shard
 * the key hashes to, so a restart must place keys where they were (aof.c). set replaces it;
 * legacy makes the shard choice the unkeyed hash of the versions before keyed hashing, for a
 * directory they wrote. Before the first command only. */
void kv_hash_shard_key(uint8_t out[16]);
void kv_hash_set_shard_key(const uint8_t key[16]);
void kv_hash_shard_legacy(void);

/* SipHash with c compression and d finalisation rounds, key 16 bytes (k0, k1 little-endian):
 * SipHash-2-4 is the paper's, 1-3 the one used here. Exposed for the test vectors. */
uint64_t kv_siphash(const uint8_t key[16], const void *p, size_t n, int c, int d);

#endif
