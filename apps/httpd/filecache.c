/* filecache.c: see filecache.h. The slots are scanned in full on each lookup: expired entries
 * are retired on the way (closed, or marked dead while a request still uses them), and by the
 * sweeper when no request comes; the least recently opened idle entry is the one a miss
 * replaces when no slot is free. Nothing between choosing a slot and filling it parks the
 * task, so no other task of the worker sees a half-made entry. */
#include "filecache.h"

#include <stdint.h>
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
    free(e->data);
    e->data = NULL;
    e->path = NULL;
    e->refs = 0;
    e->dead = 0;
}

/* Retires an expired entry: closed now, or never found again and closed by its last
 * release. */
static void retire(httpd_fc_entry *e)
{
    if (e->refs > 0)
        e->dead = 1;
    else
        drop(e);
}

/* The cache's live entry for `path` (hash h), or NULL. Expired entries are retired on the
 * way. */
static httpd_fc_entry *find(httpd_filecache *fc, const char *path, uint32_t h, int64_t now)
{
    for (int i = 0; i < HTTPD_FC_SLOTS; i++) {
        httpd_fc_entry *e = &fc->e[i];
        if (!e->path || e->dead)
            continue;
        if (e->expires <= now) {
            retire(e);
            continue;
        }
        if (e->hash == h && strcmp(e->path, path) == 0)
            return e;
    }
    return NULL;
}

/* The sweeper (filecache.h): sleeps until the earliest expiry, retires what has expired, and
 * so on until it is cancelled, or until no entry is left to expire: then it ends, and the next
 * entry starts it again (an idle server has no timer of its own). */
static void *sweep_main(void *arg)
{
    httpd_filecache *fc = arg;
    for (;;) {
        int64_t now = weft_now(), next = INT64_MAX;
        for (int i = 0; i < HTTPD_FC_SLOTS; i++) {
            httpd_fc_entry *e = &fc->e[i];
            if (!e->path || e->dead)
                continue;
            if (e->expires <= now)
                retire(e);
            else if (e->expires < next)
                next = e->expires;
        }
        if (next == INT64_MAX) {
            fc->sweeper_done = 1; /* joined by the next start or httpd_fc_clear */
            return NULL;
        }
        /* Cancelled (httpd_fc_clear, httpd_fc_abandon): the cache may be gone, even after a
         * sleep that had already ended. */
        if (weft_sleep_until(next) < 0 || weft_canceled())
            return NULL;
    }
}

/* Starts the sweeper unless it runs: one that ended is joined first (it has, so the join
 * does not wait; the handle is taken first all the same, for a task that finds it meanwhile). */
static void start_sweeper(httpd_filecache *fc)
{
    if (fc->sweeper && fc->sweeper_done) {
        struct weft_task *old = fc->sweeper;
        fc->sweeper = NULL;
        weft_join(old, NULL, WEFT_FOREVER);
    }
    if (fc->sweeper)
        return;
    weft_spawn_opts o = {.name = "httpd-fc-sweep", .flags = WEFT_SPAWN_PINNED};
    fc->sweeper_done = 0;
    if (weft_spawn(&fc->sweeper, sweep_main, fc, &o) < 0)
        fc->sweeper = NULL; /* entries are still retired by the lookups */
}

/* A slot for a new entry: a free one, or the least recently opened idle one (dropped), or
 * NULL when every slot is in use. Expired idle entries are retired on the way. */
static httpd_fc_entry *pick_slot(httpd_filecache *fc, int64_t now)
{
    httpd_fc_entry *free_slot = NULL, *victim = NULL;
    for (int i = 0; i < HTTPD_FC_SLOTS; i++) {
        httpd_fc_entry *e = &fc->e[i];
        if (e->path && !e->dead && e->refs == 0 && e->expires <= now)
            drop(e);
        if (!e->path) {
            free_slot = e;
            break;
        }
        if (!e->dead && e->refs == 0 && (!victim || e->expires < victim->expires))
            victim = e;
    }
    httpd_fc_entry *e = free_slot ? free_slot : victim;
    if (e && e->path)
        drop(e);
    return e;
}

int httpd_fc_open(httpd_filecache *fc, int rootfd, const char *path, int64_t ttl, struct stat *st,
                  int *slot)
{
    *slot = -1;
    if (ttl <= 0 || fc->closed)
        return httpd_open_beneath(rootfd, path, st);
    int64_t now = weft_now();
    uint32_t h = hash_path(path);
    httpd_fc_entry *hit = find(fc, path, h, now);
    if (hit) {
        hit->refs++;
        *st = hit->st;
        *slot = (int)(hit - fc->e);
        fc->nhits++;
        return hit->fd;
    }
    fc->nmisses++;
    int fd = httpd_open_beneath(rootfd, path, st);
    if (fd < 0 || !S_ISREG(st->st_mode))
        return fd;
    /* A small file's bytes are read before the entry is published: the read may park this
     * task, and no other may find an entry whose bytes are still coming. Other tasks that
     * missed the same file meanwhile (a burst of requests when its entry expired) read it
     * too; the first to publish wins, and the others take its entry instead of filling
     * slots with copies. */
    char *data = NULL;
    if (st->st_size > 0 && st->st_size <= HTTPD_FC_SMALL &&
        (data = malloc((size_t)st->st_size)) != NULL) {
        if (weft_file_pread(fd, data, (size_t)st->st_size, 0, weft_deadline_in(WEFT_SEC)) !=
            st->st_size) {
            free(data); /* it changed under us: read at each request instead */
            data = NULL;
        }
        now = weft_now();
        if ((hit = find(fc, path, h, now)) != NULL) {
            free(data);
            weft_close(fd);
            hit->refs++;
            *st = hit->st;
            *slot = (int)(hit - fc->e);
            fc->nhits++;
            fc->nmisses--; /* counted above, before the park */
            return hit->fd;
        }
    }
    char *copy = strdup(path);
    httpd_fc_entry *e = copy ? pick_slot(fc, now) : NULL;
    if (!e) { /* every slot in use by a request: this one goes uncached */
        free(copy);
        free(data);
        return fd;
    }
    *e = (httpd_fc_entry){copy, h, fd, *st, now + ttl, 1, 0, data, 0, "", ""};
    e->elen = httpd_etag(st, e->etag, sizeof e->etag);
    httpd_http_date(st->st_mtime, e->last_modified, sizeof e->last_modified);
    *slot = (int)(e - fc->e);
    start_sweeper(fc);
    return fd;
}

void httpd_fc_forget(httpd_filecache *fc, int slot)
{
    if (slot >= 0 && fc->e[slot].path)
        fc->e[slot].dead = 1; /* never found again; closed by its last release */
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
    fc->closed = 1;
    if (fc->sweeper) {
        weft_cancel(fc->sweeper);
        weft_join(fc->sweeper, NULL, WEFT_FOREVER);
        fc->sweeper = NULL;
    }
    for (int i = 0; i < HTTPD_FC_SLOTS; i++)
        if (fc->e[i].path)
            drop(&fc->e[i]);
}

void httpd_fc_abandon(httpd_filecache *fc)
{
    fc->closed = 1;
    if (fc->sweeper) {
        weft_cancel(fc->sweeper);
        weft_detach(fc->sweeper);
        fc->sweeper = NULL;
    }
}
