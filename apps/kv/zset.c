/* Sorted sets (zset.h): a skip list of nodes ordered by (score, member bytes), and a dict of
 * the same nodes by member. Invariant: every node is in both, and the level-0 chain from
 * head visits the nodes in order, with back pointing to the previous one. */
#include "zset.h"

#include <string.h>

#include "db.h"

kv_zset *zset_create(void)
{
    kv_zset *z = kv_malloc(sizeof *z);
    if (!z)
        return NULL;
    memset(z, 0, sizeof *z);
    z->head = kv_malloc(sizeof(kv_znode) + ZSET_MAXLEVEL * sizeof(kv_znode *));
    if (!z->head) {
        kv_free(z);
        return NULL;
    }
    memset(z->head, 0, sizeof(kv_znode) + ZSET_MAXLEVEL * sizeof(kv_znode *));
    z->head->nlevel = ZSET_MAXLEVEL;
    z->level = 1;
    return z;
}

void zset_free(kv_zset *z)
{
    kv_znode *n = z->head->next[0];
    while (n) {
        kv_znode *next = n->next[0];
        kv_free(n);
        n = next;
    }
    kv_free(z->head);
    dict_free(&z->members);
    kv_free(z);
}

/* Whether (score, m) sorts before node n. */
static int before(double score, const char *m, size_t mlen, const kv_znode *n)
{
    if (score != n->score)
        return score < n->score;
    size_t k = mlen < n->node.klen ? mlen : n->node.klen;
    int c = memcmp(m, n->node.key, k);
    return c < 0 || (c == 0 && mlen < n->node.klen);
}

kv_znode *zset_find(const kv_zset *z, const char *m, size_t mlen)
{
    return (kv_znode *)dict_find(&z->members, m, mlen, kv_hash(m, mlen));
}

/* Redis's level distribution: each level up with probability 1/4. */
static int random_level(uint64_t *rng)
{
    int level = 1;
    for (;;) {
        uint64_t x = *rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *rng = x;
        if ((x & 3) != 0 || level == ZSET_MAXLEVEL)
            return level;
        level++;
    }
}

/* Links n (score and member set) into the list. */
static void link_node(kv_zset *z, kv_znode *n)
{
    kv_znode *update[ZSET_MAXLEVEL];
    kv_znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->next[i] && !before(n->score, n->node.key, n->node.klen, x->next[i]))
            x = x->next[i];
        update[i] = x;
    }
    if (n->nlevel > z->level) {
        for (int i = z->level; i < n->nlevel; i++)
            update[i] = z->head;
        z->level = n->nlevel;
    }
    for (int i = 0; i < n->nlevel; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    n->back = update[0] == z->head ? NULL : update[0];
    if (n->next[0])
        n->next[0]->back = n;
    else
        z->tail = n;
}

/* Unlinks n from the list (not from the dict). */
static void unlink_node(kv_zset *z, kv_znode *n)
{
    kv_znode *x = z->head;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->next[i] && x->next[i] != n &&
               before(x->next[i]->score, x->next[i]->node.key, x->next[i]->node.klen, n))
            x = x->next[i];
        if (x->next[i] == n)
            x->next[i] = n->next[i];
    }
    if (n->next[0])
        n->next[0]->back = n->back;
    else
        z->tail = n->back;
    while (z->level > 1 && !z->head->next[z->level - 1])
        z->level--;
}

int zset_set(kv_zset *z, const char *m, size_t mlen, double score, uint64_t *rng)
{
    kv_znode *n = zset_find(z, m, mlen);
    if (n) {
        if (n->score != score) {
            unlink_node(z, n);
            n->score = score;
            link_node(z, n);
        }
        return 0;
    }
    int level = random_level(rng);
    n = kv_malloc(sizeof *n + (size_t)level * sizeof(kv_znode *) + mlen + 1);
    if (!n)
        return -1;
    char *name = (char *)(n->next + level);
    memcpy(name, m, mlen);
    name[mlen] = 0;
    n->node.key = name;
    n->node.klen = mlen;
    n->node.hash = kv_hash(m, mlen);
    n->node.next = NULL;
    n->score = score;
    n->nlevel = level;
    link_node(z, n);
    dict_add(&z->members, &n->node);
    z->len++;
    return 1;
}

void zset_delete(kv_zset *z, kv_znode *n)
{
    unlink_node(z, n);
    dict_remove(&z->members, &n->node);
    z->len--;
    kv_free(n);
}

kv_znode *zset_at(const kv_zset *z, size_t i)
{
    if (i < z->len / 2) {
        kv_znode *n = z->head->next[0];
        while (i--)
            n = n->next[0];
        return n;
    }
    kv_znode *n = z->tail;
    for (size_t k = z->len - 1; k > i; k--)
        n = n->back;
    return n;
}
