/* SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012), written from the
 * paper's description: the state is four 64-bit words initialised from the key and four
 * constants; each 8-byte little-endian word m of the input is xored into v3, mixed by c
 * SipRounds, and xored into v0; the last word holds the remaining bytes and the length's low
 * byte in its top byte; then v2 ^= 0xff, d SipRounds, and the hash is v0 ^ v1 ^ v2 ^ v3.
 * weft-kv uses c = 1, d = 3 (SipHash-1-3, as CPython and Rust's HashMap do): with a secret key
 * its outputs cannot be predicted, which is all a hash table needs, at about half the cost of
 * 2-4 on short keys. */
#include "hash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Written once by kv_hash_init (and the AOF's kv_hash_set_shard_key) before any command runs,
 * read-only afterwards: the workers see them through the runtime's start and task hand-offs. */
static uint64_t bucket_k0, bucket_k1;
static uint64_t shard_k0, shard_k1;
static int shard_legacy;

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#define SIPROUND()                                                                                 \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* Inlined into its callers with constant rounds, so that the loops unroll. */
static inline uint64_t siphash(uint64_t k0, uint64_t k1, const void *data, size_t n, int c, int d)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL; /* "somepseudorandomlygeneratedbytes" */
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t m = load64(p);
        v3 ^= m;
        for (int i = 0; i < c; i++)
            SIPROUND();
        v0 ^= m;
    }
    for (size_t i = 0; i < n; i++) /* the tail, little-endian, under the length byte */
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    for (int i = 0; i < c; i++)
        SIPROUND();
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < d; i++)
        SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t kv_siphash(const uint8_t key[16], const void *p, size_t n, int c, int d)
{
    return siphash(load64(key), load64(key + 8), p, n, c, d);
}

uint64_t kv_hash(const void *p, size_t n)
{
    return siphash(bucket_k0, bucket_k1, p, n, 1, 3);
}

/* The shard choice of the versions before keyed hashing (a multiply-xor over 8-byte words
 * with a final avalanche), kept for the AOF directories they wrote: there each key's history
 * is in the file of the shard this hash gave it. */
static uint64_t legacy_hash(const void *data, size_t n)
{
    const unsigned char *s = data;
    uint64_t h = 0x243F6A8885A308D3ULL ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    return h;
}

uint64_t kv_hash_shard(const void *p, size_t n)
{
    if (shard_legacy)
        return legacy_hash(p, n);
    return siphash(shard_k0, shard_k1, p, n, 1, 3);
}

static int random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int kv_hash_init(void)
{
    uint8_t k[32];
    if (random_bytes(k, sizeof k) < 0)
        return -1;
    bucket_k0 = load64(k);
    bucket_k1 = load64(k + 8);
    shard_k0 = load64(k + 16);
    shard_k1 = load64(k + 24);
    return 0;
}

void kv_hash_shard_key(uint8_t out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(shard_k0 >> (8 * i));
        out[8 + i] = (uint8_t)(shard_k1 >> (8 * i));
    }
}

void kv_hash_set_shard_key(const uint8_t key[16])
{
    shard_k0 = load64(key);
    shard_k1 = load64(key + 8);
}

void kv_hash_shard_legacy(void)
{
    shard_legacy = 1;
}
