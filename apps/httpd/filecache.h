/* filecache.h: an open-file cache per worker, like nginx's open_file_cache and h2o's
 * filecache: a regular file's fd and stat are kept for a short time (--file-cache, 1 s by
 * default) after its open, so the requests for it meanwhile skip openat2, two fstats, an
 * fcntl and the close (5 of a small GET's 8 system calls, counted with strace). A file
 * changed or replaced is seen at most that late (nginx: open_file_cache_valid, 60 s). Each
 * worker has its own cache, used by its tasks only: no locks. */
#ifndef WEFT_HTTPD_FILECACHE_H
#define WEFT_HTTPD_FILECACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* 64: a site's hot files; a lookup compares hashes over all slots, which stays cheaper than
 * the system calls it saves. */
#define HTTPD_FC_SLOTS 64
/* Files up to this size are also kept in memory (at most 64 x 4 KiB per worker), so that a
 * small response costs no system call of its own, not even the read: what lets a pipelined
 * batch of them leave with one read and one write. */
#define HTTPD_FC_SMALL 4096

typedef struct httpd_fc_entry {
    char *path;      /* normalised path (malloc'd); NULL: a free slot */
    uint32_t hash;   /* of path */
    int fd;          /* open, O_NONBLOCK, beneath the root */
    struct stat st;  /* as of the open */
    int64_t expires; /* weft_now() clock: not found after this */
    unsigned refs;   /* requests using the fd now (a sendfile may park its task) */
    int dead;        /* expired while in use: never found again, closed by the last release */
    char *data;      /* the whole file when st_size <= HTTPD_FC_SMALL (malloc'd), else NULL */
    int elen;        /* validators, formatted once: */
    char etag[48];
    char last_modified[32];
} httpd_fc_entry;

typedef struct httpd_filecache {
    httpd_fc_entry e[HTTPD_FC_SLOTS];
    uint64_t nhits, nmisses;
    /* Closes entries as they expire while no request comes to retire them (a deleted or
     * rotated file keeps no fd, and so no disk space, past its time). Spawned pinned on the
     * cache's worker with an entry when it does not run; it ends (sweeper_done) when no entry
     * is left to expire; cancelled and joined by httpd_fc_clear. */
    struct weft_task *sweeper;
    int sweeper_done;
    int closed; /* httpd_fc_clear ran: opens bypass the cache from then on */
} httpd_filecache;

/* Opens `path` (normalised) beneath rootfd as httpd_open_beneath does, through the cache
 * when `ttl` > 0. Returns the fd with *st, and *slot: >= 0 for a cached fd, given back with
 * httpd_fc_release (never closed by the caller), -1 for an fd the caller closes (directories,
 * other kinds, or every slot busy); or -status as httpd_open_beneath. */
int httpd_fc_open(httpd_filecache *fc, int rootfd, const char *path, int64_t ttl, struct stat *st,
                  int *slot);

/* The entry of a cached fd (valid until its release), or NULL for slot -1. */
static inline const httpd_fc_entry *httpd_fc_entry_of(const httpd_filecache *fc, int slot)
{
    return slot >= 0 ? &fc->e[slot] : NULL;
}

/* Marks an entry in use as stale (its file was found shorter than its stat: changed in
 * place): never found again, closed by its last release. Slot -1: nothing to do. */
void httpd_fc_forget(httpd_filecache *fc, int slot);

/* Gives back a cached fd (slot -1: nothing to do). */
void httpd_fc_release(httpd_filecache *fc, int slot);

/* Stops the sweeper and closes every cached fd (at the shutdown, with no request left); later
 * opens bypass the cache. From a task of the cache's worker. */
void httpd_fc_clear(httpd_filecache *fc);

/* Lets go of the sweeper without waiting (cancelled and detached: it touches the cache no
 * more), for a cache about to be freed without httpd_fc_clear (a shutdown path that could
 * not reach its worker). Where blocking calls are refused (a shard's fini). */
void httpd_fc_abandon(httpd_filecache *fc);

#endif
