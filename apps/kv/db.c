/* One shard's keyspace (db.h): entries, values, lazy and active expiry, memory counting. */
#include "db.h"

#include <malloc.h>
#include <string.h>
#include <time.h>

#include "watch.h"
#include "zset.h"

_Thread_local long long kv_mem_used;

void *kv_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        kv_mem_used += (long long)malloc_usable_size(p);
    return p;
}

void *kv_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q)
        kv_mem_used += (long long)malloc_usable_size(q) - (long long)old;
    return q;
}

void kv_free(void *p)
{
    if (p) {
        kv_mem_used -= (long long)malloc_usable_size(p);
        free(p);
    }
}

int64_t kv_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t db_rand(kv_db *db)
{
    uint64_t x = db->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return db->rng = x;
}

void db_init(kv_db *db, unsigned index)
{
    memset(db, 0, sizeof *db);
    db->regs.prev = db->regs.next = &db->regs;
    db->rng = 0x9E3779B97F4A7C15ULL * (index + 1) ^ (uint64_t)kv_unix_ms();
    if (!db->rng)
        db->rng = 1;
}

static void free_field(dnode *n, void *arg)
{
    (void)arg;
    kv_field *f = (kv_field *)n;
    kv_free(f->val);
    kv_free(f);
}

static void free_value(kv_entry *e)
{
    switch (e->type) {
    case KV_STRING:
        kv_free(e->v.str.p);
        break;
    case KV_HASH:
    case KV_SET:
        dict_clear(e->v.hash, free_field, NULL);
        kv_free(e->v.hash);
        break;
    case KV_ZSET:
        zset_free(e->v.zset);
        break;
    case KV_LIST: {
        kv_list *l = e->v.list;
        for (size_t i = 0; i < l->len; i++)
            kv_free(l->items[(l->head + i) % l->cap]);
        kv_free(l->items);
        kv_free(l);
        break;
    }
    }
}

static void free_entry(dnode *n, void *arg)
{
    (void)arg;
    kv_entry *e = (kv_entry *)n;
    free_value(e);
    kv_free(e);
}

void db_flush(kv_db *db)
{
    if (db->watched.size)
        kv_watch_flushing(db);
    dict_clear(&db->keys, free_entry, NULL);
    /* dict_clear freed the buckets through free(), counted by kv_malloc at growth: the bucket
     * array is the dict's and not counted (dict.c allocates with calloc). */
    db->nexpires = 0;
    db->sweep_cursor = 0;
}

void db_delete(kv_db *db, kv_entry *e)
{
    dict_remove(&db->keys, &e->node);
    if (e->expire_ms >= 0)
        db->nexpires--;
    if (db->watched.size)
        kv_watch_touch(db, e->key, e->node.klen, 1);
    free_entry(&e->node, NULL);
}

static int expired(const kv_entry *e, int64_t now)
{
    return kv_expired_at(e->expire_ms, now);
}

kv_entry *db_lookup(kv_db *db, const char *key, size_t klen)
{
    kv_entry *e = (kv_entry *)dict_find(&db->keys, key, klen, kv_hash(key, klen));
    if (e && e->expire_ms >= 0 && !db->loading && expired(e, kv_unix_ms())) {
        if (db->on_expire)
            db->on_expire(db, e->key, e->node.klen);
        db_delete(db, e);
        db->nexpired++;
        return NULL;
    }
    if (e)
        e->lru_ms = (uint64_t)kv_mono_ms();
    return e;
}

kv_entry *db_find(kv_db *db, const char *key, size_t klen)
{
    kv_entry *e = db_lookup(db, key, klen);
    if (e)
        db->nhits++;
    else
        db->nmisses++;
    return e;
}

kv_entry *db_create(kv_db *db, const char *key, size_t klen, int type)
{
    uint64_t h = kv_hash(key, klen);
    kv_entry *old = (kv_entry *)dict_find(&db->keys, key, klen, h);
    if (old)
        db_delete(db, old);
    kv_entry *e = kv_malloc(sizeof *e + klen + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, klen);
    e->key[klen] = 0;
    e->node.key = e->key;
    e->node.klen = klen;
    e->node.hash = h;
    e->expire_ms = -1;
    e->lru_ms = (uint64_t)kv_mono_ms();
    e->type = type;
    if (type == KV_HASH || type == KV_SET) {
        e->v.hash = kv_malloc(sizeof(dict));
        if (!e->v.hash) {
            kv_free(e);
            return NULL;
        }
        memset(e->v.hash, 0, sizeof(dict));
    } else if (type == KV_LIST) {
        e->v.list = kv_malloc(sizeof(kv_list));
        if (!e->v.list) {
            kv_free(e);
            return NULL;
        }
        memset(e->v.list, 0, sizeof(kv_list));
    } else if (type == KV_ZSET) {
        e->v.zset = zset_create();
        if (!e->v.zset) {
            kv_free(e);
            return NULL;
        }
    }
    if (dict_add(&db->keys, &e->node) < 0 && !dict_find(&db->keys, key, klen, h)) {
        free_entry(&e->node, NULL);
        return NULL;
    }
    return e;
}

int db_str_resize(kv_entry *e, size_t n)
{
    /* A string always has a buffer, an empty one too: the code that copies from or into it
     * (a reply, APPEND, SETRANGE) may then pass `p` to memcpy with a length of 0, which a
     * NULL would make undefined. */
    if (n > e->v.str.cap || !e->v.str.p) {
        size_t cap = e->v.str.cap ? e->v.str.cap : 16;
        while (cap < n)
            cap = cap > ((size_t)-1) / 2 ? n : cap * 2;
        /* Exact size for a first set (most values are never appended to), doubling after. */
        if (!e->v.str.p)
            cap = n ? n : 1;
        char *p = kv_realloc(e->v.str.p, cap);
        if (!p)
            return -1;
        e->v.str.p = p;
        e->v.str.cap = cap;
    }
    if (n > e->v.str.len)
        memset(e->v.str.p + e->v.str.len, 0, n - e->v.str.len);
    e->v.str.len = n;
    return 0;
}

/* malloc_usable_size takes a non-const pointer; NULL counts 0. */
static size_t usable(const void *p)
{
    return p ? malloc_usable_size((void *)p) : 0;
}

/* A hash field or a set member, with its value if it has one. */
static size_t field_usage(const dnode *n)
{
    const kv_field *f = (const kv_field *)n;
    return usable(f) + usable(f->val);
}

/* A sorted-set node: its links and the member's bytes are one block. */
static size_t znode_usage(const dnode *n)
{
    return usable(n);
}

/* A dict's bucket array, and its nodes measured on up to `samples` of them. The walk goes
 * bucket by bucket, so it visits at most the bucket count plus `samples` nodes. */
static size_t dict_usage(const dict *d, long long samples, size_t (*node)(const dnode *))
{
    size_t sum = 0;
    long long seen = 0;
    for (size_t b = 0; d->buckets && b <= d->mask && seen < samples; b++)
        for (const dnode *n = d->buckets[b]; n && seen < samples; n = n->next, seen++)
            sum += node(n);
    return usable(d->buckets) + (seen ? (size_t)((double)sum / (double)seen * (double)d->size) : 0);
}

size_t db_entry_usage(const kv_entry *e, long long samples)
{
    if (samples < 1)
        samples = 1;
    size_t bytes = usable(e);
    switch (e->type) {
    case KV_STRING:
        return bytes + usable(e->v.str.p);
    case KV_HASH:
    case KV_SET:
        return bytes + usable(e->v.hash) + dict_usage(e->v.hash, samples, field_usage);
    case KV_ZSET: {
        const kv_zset *z = e->v.zset;
        return bytes + usable(z) + usable(z->head) + dict_usage(&z->members, samples, znode_usage);
    }
    case KV_LIST: {
        const kv_list *l = e->v.list;
        size_t sum = 0, seen = 0;
        for (; seen < l->len && (long long)seen < samples; seen++)
            sum += usable(l->items[(l->head + seen) % l->cap]);
        bytes += usable(l) + usable(l->items);
        return bytes + (seen ? (size_t)((double)sum / (double)seen * (double)l->len) : 0);
    }
    }
    return bytes;
}

kv_entry *db_set_string(kv_db *db, const char *key, size_t klen, const char *val, size_t vlen,
                        int keep_ttl)
{
    kv_entry *e = (kv_entry *)dict_find(&db->keys, key, klen, kv_hash(key, klen));
    if (e && e->type == KV_STRING) { /* reuse the entry and, when it fits, the buffer */
        if (!keep_ttl)
            db_set_expire(db, e, -1);
        e->v.str.len = 0;
        if (vlen > e->v.str.cap || e->v.str.cap > 2 * vlen + 64) {
            kv_free(e->v.str.p);
            e->v.str.p = NULL;
            e->v.str.cap = 0;
        }
    } else {
        int64_t exp = e && keep_ttl ? e->expire_ms : -1;
        e = db_create(db, key, klen, KV_STRING);
        if (!e)
            return NULL;
        db_set_expire(db, e, exp);
    }
    if (db_str_resize(e, vlen) < 0) {
        db_delete(db, e);
        return NULL;
    }
    if (vlen)
        memcpy(e->v.str.p, val, vlen);
    e->lru_ms = (uint64_t)kv_mono_ms();
    return e;
}

void db_delete_if_empty(kv_db *db, kv_entry *e)
{
    if (((e->type == KV_HASH || e->type == KV_SET) && e->v.hash->size == 0) ||
        (e->type == KV_LIST && e->v.list->len == 0) || (e->type == KV_ZSET && e->v.zset->len == 0))
        db_delete(db, e);
}

void db_set_expire(kv_db *db, kv_entry *e, int64_t when_ms)
{
    if (e->expire_ms < 0 && when_ms >= 0)
        db->nexpires++;
    else if (e->expire_ms >= 0 && when_ms < 0)
        db->nexpires--;
    e->expire_ms = when_ms;
}

int list_push(kv_list *l, const char *p, size_t n, int left)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        kv_blob **items = kv_malloc(cap * sizeof *items);
        if (!items)
            return -1;
        for (size_t i = 0; i < l->len; i++)
            items[i] = l->items[(l->head + i) % l->cap];
        kv_free(l->items);
        l->items = items;
        l->head = 0;
        l->cap = cap;
    }
    kv_blob *b = kv_malloc(sizeof *b + n);
    if (!b)
        return -1;
    b->len = n;
    memcpy(b->data, p, n);
    if (left) {
        l->head = (l->head + l->cap - 1) % l->cap;
        l->items[l->head] = b;
    } else {
        l->items[(l->head + l->len) % l->cap] = b;
    }
    l->len++;
    return 0;
}

kv_blob *list_pop(kv_list *l, int left)
{
    if (l->len == 0)
        return NULL;
    kv_blob *b;
    if (left) {
        b = l->items[l->head];
        l->head = (l->head + 1) % l->cap;
    } else {
        b = l->items[(l->head + l->len - 1) % l->cap];
    }
    l->len--;
    return b;
}

kv_blob *list_at(const kv_list *l, size_t i)
{
    return l->items[(l->head + i) % l->cap];
}

kv_blob **list_ref(kv_list *l, size_t i)
{
    return &l->items[(l->head + i) % l->cap];
}

void list_cut(kv_list *l, size_t front, size_t back)
{
    l->head = l->len == front + back ? 0 : (l->head + front) % l->cap;
    l->len -= front + back;
}

int list_insert(kv_list *l, size_t i, const char *p, size_t n)
{
    /* Pushed at the nearer end, then moved into place: the shorter side shifts by one. */
    int left = i < l->len / 2;
    if (list_push(l, p, n, left) < 0)
        return -1;
    if (left) { /* now at 0: move it up to i */
        for (size_t k = 0; k < i; k++) {
            kv_blob *t = *list_ref(l, k);
            *list_ref(l, k) = *list_ref(l, k + 1);
            *list_ref(l, k + 1) = t;
        }
    } else { /* now at len - 1: move it down to i */
        for (size_t k = l->len - 1; k > i; k--) {
            kv_blob *t = *list_ref(l, k);
            *list_ref(l, k) = *list_ref(l, k - 1);
            *list_ref(l, k - 1) = t;
        }
    }
    return 0;
}

void db_signal_key(kv_db *db, const char *key, size_t klen)
{
    if (db->blocking.size == 0)
        return;
    kv_bkey *bk = (kv_bkey *)dict_find(&db->blocking, key, klen, kv_hash(key, klen));
    if (bk && !bk->ready) {
        /* At the tail: an EXEC that pushes to two keys serves a client blocked on both
         * with the key pushed first, as Redis does. */
        bk->ready = 1;
        bk->next_ready = NULL;
        if (db->ready)
            db->ready_last->next_ready = bk;
        else
            db->ready = bk;
        db->ready_last = bk;
    }
}

typedef struct sweep_state {
    kv_db *db;
    int64_t now;
    size_t nseen, ndeleted;
} sweep_state;

static int sweep_one(dnode *n, void *arg)
{
    sweep_state *st = arg;
    kv_entry *e = (kv_entry *)n;
    if (e->expire_ms < 0)
        return 0;
    st->nseen++;
    if (!expired(e, st->now))
        return 0;
    if (st->db->on_expire)
        st->db->on_expire(st->db, e->key, e->node.klen);
    st->db->nexpires--;
    st->db->nexpired++;
    st->ndeleted++;
    if (st->db->watched.size)
        kv_watch_touch(st->db, e->key, e->node.klen, 1);
    free_entry(n, NULL);
    return 1;
}

size_t db_expire_step(kv_db *db, size_t *nseen)
{
    /* 64 buckets hold about 64 keys at load <= 1: a step costs microseconds. */
    sweep_state st = {db, kv_unix_ms(), 0, 0};
    for (int i = 0; i < 64 && db->keys.size; i++) {
        db->sweep_cursor = dict_sweep(&db->keys, db->sweep_cursor, sweep_one, &st);
        if (db->sweep_cursor == 0)
            break;
    }
    *nseen = st.nseen;
    return st.ndeleted;
}

/* Dump format: type (1 byte), count (8), then count strings as length (8) and bytes. */
static void dump_str(sbuf *out, const void *p, size_t n)
{
    uint64_t len = n;
    sbuf_add(out, &len, sizeof len);
    sbuf_add(out, p, n);
}

typedef struct dump_ctx {
    sbuf *out;
} dump_ctx;

static void dump_field(dnode *n, void *arg)
{
    kv_field *f = (kv_field *)n;
    dump_str(arg, f->name, f->node.klen);
    if (f->val) /* a hash's field; a set's member has none */
        dump_str(arg, f->val->data, f->val->len);
}

void db_dump(const kv_entry *e, sbuf *out)
{
    unsigned char t = (unsigned char)e->type;
    sbuf_add(out, &t, 1);
    uint64_t count = e->type == KV_STRING ? 1
                     : e->type == KV_LIST ? e->v.list->len
                     : e->type == KV_SET  ? e->v.set->size
                     : e->type == KV_ZSET ? e->v.zset->len * 2
                                          : e->v.hash->size * 2;
    sbuf_add(out, &count, sizeof count);
    if (e->type == KV_ZSET) { /* member, then the score's 8 bytes */
        for (kv_znode *n = zset_first(e->v.zset); n; n = n->next[0]) {
            dump_str(out, n->node.key, n->node.klen);
            dump_str(out, &n->score, sizeof n->score);
        }
    } else if (e->type == KV_STRING) {
        dump_str(out, e->v.str.p, e->v.str.len);
    } else if (e->type == KV_LIST) {
        for (size_t i = 0; i < e->v.list->len; i++) {
            kv_blob *b = list_at(e->v.list, i);
            dump_str(out, b->data, b->len);
        }
    } else {
        size_t c = 0;
        do
            c = dict_scan(e->v.hash, c, dump_field, out);
        while (c);
    }
}

static int take(const char **p, const char *end, const char **s, uint64_t *n)
{
    if ((size_t)(end - *p) < 8)
        return -1;
    memcpy(n, *p, 8);
    *p += 8;
    if ((uint64_t)(end - *p) < *n)
        return -1;
    *s = *p;
    *p += *n;
    return 0;
}

int hash_set(kv_entry *e, const char *f, size_t flen, const char *v, size_t vlen);
int set_add(kv_entry *e, const char *m, size_t mlen);

kv_entry *db_restore(kv_db *db, const char *key, size_t klen, const char *p, size_t n)
{
    const char *end = p + n;
    if (n < 9)
        return NULL;
    int type = (unsigned char)*p++;
    if (type > KV_ZSET)
        return NULL;
    uint64_t count;
    memcpy(&count, p, 8);
    p += 8;
    kv_entry *e = db_create(db, key, klen, type);
    if (!e)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        const char *s, *s2;
        uint64_t len, len2;
        if (take(&p, end, &s, &len) < 0)
            break;
        if (type == KV_STRING) {
            if (db_str_resize(e, len) == 0 && len)
                memcpy(e->v.str.p, s, len);
        } else if (type == KV_LIST) {
            list_push(e->v.list, s, len, 0);
        } else if (type == KV_SET) {
            set_add(e, s, len);
        } else if (type == KV_ZSET) {
            double score;
            if (take(&p, end, &s2, &len2) == 0 && len2 == sizeof score) {
                memcpy(&score, s2, sizeof score);
                zset_set(e->v.zset, s, len, score, &db->rng);
            }
            i++;
        } else if (take(&p, end, &s2, &len2) == 0) {
            hash_set(e, s, len, s2, len2);
            i++;
        }
    }
    return e;
}

static int lower(int c, int nocase)
{
    return nocase && c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Matches one pattern element at pat[p] against c: sets *next past the element. */
static int match_one(const char *pat, size_t plen, size_t p, int c, int nocase, size_t *next)
{
    c = lower((unsigned char)c, nocase);
    if (pat[p] == '?') {
        *next = p + 1;
        return 1;
    }
    if (pat[p] == '\\' && p + 1 < plen) {
        *next = p + 2;
        return lower((unsigned char)pat[p + 1], nocase) == c;
    }
    if (pat[p] != '[') {
        *next = p + 1;
        return lower((unsigned char)pat[p], nocase) == c;
    }
    p++;
    int neg = p < plen && pat[p] == '^';
    if (neg)
        p++;
    int match = 0;
    while (p < plen && pat[p] != ']') {
        if (pat[p] == '\\' && p + 1 < plen) {
            p++;
            if (lower((unsigned char)pat[p], nocase) == c)
                match = 1;
        } else if (p + 2 < plen && pat[p + 1] == '-') {
            int a = lower((unsigned char)pat[p], nocase);
            int b = lower((unsigned char)pat[p + 2], nocase);
            if (a > b) {
                int t = a;
                a = b;
                b = t;
            }
            if (c >= a && c <= b)
                match = 1;
            p += 2;
        } else if (lower((unsigned char)pat[p], nocase) == c) {
            match = 1;
        }
        p++;
    }
    *next = p < plen ? p + 1 : p; /* no closing bracket: the end closes it */
    return neg ? !match : match;
}

int kv_glob(const char *pat, size_t plen, const char *s, size_t slen, int nocase)
{
    /* Backtracking to the last star only: O(plen * slen) whatever the pattern, so a hostile
     * pattern like "*a*a*a*a*b" cannot stall the shard. */
    size_t p = 0, i = 0, star_p = (size_t)-1, star_i = 0;
    /* Redis's stringmatchlen compares nothing for an empty string: only an empty pattern
     * matches it, not even "*" (KEYS and SCAN take "*" as "all" before matching). */
    if (slen == 0)
        return plen == 0;
    while (i < slen) {
        if (p < plen) {
            if (pat[p] == '*') {
                star_p = p++;
                star_i = i;
                continue;
            }
            size_t next;
            if (match_one(pat, plen, p, (unsigned char)s[i], nocase, &next)) {
                p = next;
                i++;
                continue;
            }
        }
        if (star_p == (size_t)-1)
            return 0;
        p = star_p + 1;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}
