/* filecache.c: see filecache.h. The slots are scanned in full on each lookup: expired entries
 * are retired on the way (closed, or marked dead while a request still uses them), and the
 * least recently opened idle entry is the one a miss replaces when no slot is free. */
#include "filecache.h"

#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "files.h"

static uint32_t hash_path(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void drop(httpd_fc_entry *e)
{
    weft_close(e->fd);
    free(e->path);
    e->path = NULL;
    e->refs = 0;
    e->dead = 0;
}

int httpd_fc_open(httpd_filecache *fc, int rootfd, const char *path, int64_t ttl, struct stat *st,
                  int *slot)
{
    *slot = -1;
    if (ttl <= 0)
        return httpd_open_beneath(rootfd, path, st);
    int64_t now = weft_now();
    uint32_t h = hash_path(path);
    httpd_fc_entry *free_slot = NULL, *victim = NULL;
    for (int i = 0; i < HTTPD_FC_SLOTS; i++) {
        httpd_fc_entry *e = &fc->e[i];
        if (!e->path) {
            if (!free_slot)
                free_slot = e;
            continue;
        }
        if (e->dead)
            continue;
        if (e->expires <= now) {
            if (e->refs > 0) {
                e->dead = 1;
                continue;
            }
            drop(e);
            if (!free_slot)
                free_slot = e;
            continue;
        }
        if (e->hash == h && strcmp(e->path, path) == 0) {
            e->refs++;
            *st = e->st;
            *slot = i;
            fc->nhits++;
            return e->fd;
        }
        if (e->refs == 0 && (!victim || e->expires < victim->expires))
            victim = e;
    }
    fc->nmisses++;
    int fd = httpd_open_beneath(rootfd, path, st);
    if (fd < 0 || !S_ISREG(st->st_mode))
        return fd;
    httpd_fc_entry *e = free_slot ? free_slot : victim;
    if (!e)
        return fd; /* every slot in use by a request: this one goes uncached */
    char *copy = strdup(path);
    if (!copy)
        return fd;
    if (e->path)
        drop(e);
    *e = (httpd_fc_entry){copy, h, fd, *st, now + ttl, 1, 0};
    *slot = (int)(e - fc->e);
    return fd;
}

void httpd_fc_release(httpd_filecache *fc, int slot)
{
    if (slot < 0)
        return;
    httpd_fc_entry *e = &fc->e[slot];
    if (--e->refs == 0 && e->dead)
        drop(e);
}

void httpd_fc_clear(httpd_filecache *fc)
{
    for (int i = 0; i < HTTPD_FC_SLOTS; i++)
        if (fc->e[i].path)
            drop(&fc->e[i]);
}
