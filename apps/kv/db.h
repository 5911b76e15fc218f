/* One shard's keyspace: the keys it owns with their values (strings, hashes, lists, sets,
 * sorted sets) and expiry times, the queues of the clients blocked in BLPOP/BRPOP on its keys,
 * and its counters. Each worker has one (server.c keeps them in a weft_sharded value) and only
 * that worker's thread touches it: commands on its keys run there, locally or as a task
 * submitted from another worker. Memory the shard's data uses is counted per thread by
 * kv_malloc/kv_free (malloc's usable sizes), which is per shard since a shard's data is
 * allocated and freed on its worker only. */
#ifndef KV_DB_H
#define KV_DB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <weft.h>

#include "dict.h"
#include "sbuf.h"

enum { KV_STRING = 0, KV_HASH = 1, KV_LIST = 2, KV_SET = 3, KV_ZSET = 4 };

/* A list element, or a hash field's value: bytes with their length. */
typedef struct kv_blob {
    size_t len;
    char data[];
} kv_blob;

/* A list: a ring of element pointers (push and pop at both ends in O(1), LRANGE by index). */
typedef struct kv_list {
    kv_blob **items;
    size_t head, len, cap;
} kv_list;

/* A hash field: the node carries the field name, val the value. */
typedef struct kv_field {
    dnode node;
    kv_blob *val;
    char name[];
} kv_field;

typedef struct kv_entry {
    dnode node;
    int64_t expire_ms; /* Unix time in ms when the key expires, or -1 */
    uint64_t lru_ms;   /* last access (monotonic ms), for the LRU eviction sampling */
    int type;
    union {
        struct {
            char *p;
            size_t len, cap;
        } str;
        dict *hash; /* of kv_field */
        kv_list *list;
        dict *set;            /* of kv_field with no value (val NULL) */
        struct kv_zset *zset; /* zset.h */
    } v;
    char key[];
} kv_entry;

/* BLPOP/BRPOP's queues on this shard (block.c). A client blocked on some of this shard's keys
 * has one registration here (kv_breg) with a node in each of those keys' queues (kv_bkey,
 * oldest first). All of it is this shard's worker's, like the keys. */
typedef struct kv_blink {
    struct kv_blink *prev, *next;
} kv_blink;

typedef struct kv_bnode {
    struct kv_bnode *prev, *next; /* in bk->queue */
    struct kv_breg *reg;          /* the registration it belongs to */
    struct kv_bkey *bk;           /* the key's queue */
} kv_bnode;

typedef struct kv_bkey {
    dnode node;                 /* in kv_db.blocking, by key */
    kv_bnode queue;             /* list head: the clients blocked on the key, oldest first */
    struct kv_bkey *next_ready; /* in kv_db.ready */
    int ready;                  /* in kv_db.ready or being served: not freed meanwhile */
    char key[];
} kv_bkey;

typedef struct kv_breg {
    kv_blink link;      /* in kv_db.regs: first member */
    struct kv_bwait *w; /* the client's wait record, shared with its connection (block.c) */
    size_t nkeys;
    kv_bnode nodes[]; /* one per key of this shard the client waits on */
} kv_breg;

typedef struct kv_db {
    dict keys;
    size_t nexpires;     /* keys with an expiry time */
    dict blocking;       /* of kv_bkey: the keys clients are blocked on */
    dict watched;        /* the keys connections WATCH, each with its watchers (watch.c) */
    kv_bkey *ready;      /* keys a command pushed to, served once it ends (kv_block_serve), */
    kv_bkey *ready_last; /* in the order they were pushed to (Redis's ready_keys): its tail */
    kv_blink regs;       /* list head of the kv_breg of this shard */
    size_t sweep_cursor; /* where the active expiry sweep resumes */
    uint64_t nhits, nmisses, nexpired, nevicted;
    uint64_t rng; /* xorshift state, for RANDOMKEY and the samplers */
    /* The AOF's replay is running the commands (set by the dispatcher before each): nothing
     * expires then, and a PEXPIREAT in the past sets the time instead of deleting, as in
     * Redis's load; the keys expire once the server runs. Else a key that had expired came
     * back from a later logged write of it, made as if it never had (a list's RPUSH). */
    int loading;
    /* Called with each key that expires (lazily or by the sweep), before it goes: the AOF
     * logs a DEL, so that a replay sees the key end where it did. NULL: nothing. */
    void (*on_expire)(struct kv_db *db, const char *key, size_t klen);
} kv_db;

/* Bytes the calling thread's shard data holds (kv_malloc minus kv_free). */
extern _Thread_local long long kv_mem_used;
void *kv_malloc(size_t n);
void *kv_realloc(void *p, size_t n);
void kv_free(void *p);

/* Wall-clock Unix time in ms (the clock of EXPIREAT and TTL), and the monotonic one. */
int64_t kv_unix_ms(void);
/* Whether a key whose expiry time is expire_ms (-1: none) is gone at `now`: once now is past
 * it, as Redis has it (keyIsExpired: now > when), so a key is still there, with a TTL of 0,
 * in the millisecond it expires. EXPIRE and its kin delete at once from a time <= now. */
static inline int kv_expired_at(int64_t expire_ms, int64_t now)
{
    return expire_ms >= 0 && expire_ms < now;
}
int64_t kv_mono_ms(void);

void db_init(kv_db *db, unsigned index);
/* Frees every key (the blocked clients stay blocked, as in Redis). */
void db_flush(kv_db *db);

/* The live entry of key (an expired one is deleted first, Redis's lazy expiry), or NULL.
 * Counts a hit or miss and refreshes the LRU time. */
kv_entry *db_find(kv_db *db, const char *key, size_t klen);
/* db_find without counting hits and misses (for writes and for TYPE, EXISTS ...). */
kv_entry *db_lookup(kv_db *db, const char *key, size_t klen);
/* A new entry of `type`, replacing what was there (without its expiry). NULL if out of
 * memory. Strings start empty; hashes and lists empty too (the caller fills them, and must not
 * leave them empty: db_delete_if_empty). */
kv_entry *db_create(kv_db *db, const char *key, size_t klen, int type);
/* Sets the string value of key (replacing any value; the expiry is cleared unless keep_ttl).
 * Returns the entry or NULL (out of memory). */
kv_entry *db_set_string(kv_db *db, const char *key, size_t klen, const char *val, size_t vlen,
                        int keep_ttl);
void db_delete(kv_db *db, kv_entry *e);
/* Deletes a hash or list emptied by a command (Redis keeps no empty aggregates). */
void db_delete_if_empty(kv_db *db, kv_entry *e);
void db_set_expire(kv_db *db, kv_entry *e, int64_t when_ms); /* -1: persist */
/* Resizes e's string to n bytes (zero-filling growth). Returns 0 or -1. */
int db_str_resize(kv_entry *e, size_t n);
/* The bytes e and its value take (MEMORY USAGE): malloc's usable sizes of the entry and of
 * every block its value owns. An aggregate's elements are measured on the first `samples` of
 * them (at least 1) and the mean counted for all, as Redis estimates. */
size_t db_entry_usage(const kv_entry *e, long long samples);

/* Lists. */
int list_push(kv_list *l, const char *p, size_t n, int left); /* 0 or -1 */
kv_blob *list_pop(kv_list *l, int left);                      /* the caller kv_frees it */
kv_blob *list_at(const kv_list *l, size_t i);
/* The slot of element i (i < len): LSET and LREM replace or move the pointer in place. */
kv_blob **list_ref(kv_list *l, size_t i);
/* Forgets `front` elements at the head and `back` at the tail, without freeing them (the
 * caller has, or has moved them): LTRIM, LREM. */
void list_cut(kv_list *l, size_t front, size_t back);
/* Inserts a copy of p[0 .. n) before element i (i == len: at the end). 0 or -1. */
int list_insert(kv_list *l, size_t i, const char *p, size_t n);
/* Marks key ready when clients are blocked on it: the command that pushed to it serves them
 * once it ends (kv_run_proc, kv_block_serve). */
void db_signal_key(kv_db *db, const char *key, size_t klen);

/* The next pseudo-random number of the shard. */
uint64_t db_rand(kv_db *db);

/* One step of the active expiry: examines the keys of a few buckets from the sweep cursor and
 * deletes the expired ones. Returns how many it deleted of how many with an expiry it saw
 * (*nseen). Never blocks; the caller (the sweep task) yields between steps. */
size_t db_expire_step(kv_db *db, size_t *nseen);

/* Serialises e's value (type, then its strings) into out, and rebuilds one from such bytes
 * into a new entry of key (replacing any). For RENAME across shards. */
void db_dump(const kv_entry *e, sbuf *out);
kv_entry *db_restore(kv_db *db, const char *key, size_t klen, const char *p, size_t n);

/* Redis's glob matching (KEYS, SCAN MATCH): * ? [abc] [^a-z] and \ escapes. As Redis's
 * stringmatchlen, an empty string matches the empty pattern only, not even "*". */
int kv_glob(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

#endif
