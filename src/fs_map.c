/* Mappings of a file's region. mmap itself only sets up page tables' bookkeeping and waits
 * for no device, so it runs on the worker's thread; with MAP_POPULATE it reads the whole
 * region in, so it runs on the blocking pool, where the page faults then happen instead of
 * on the worker's thread. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"

/* The flags weft_file_map takes: the mapping's kind and two that change no contract. */
#define MAP_KINDS (MAP_SHARED | MAP_PRIVATE)
#define MAP_EXTRA (MAP_POPULATE | MAP_NORESERVE)

typedef struct map_job {
    void *addr; /* the mapping, set on the pool thread */
    size_t len;
    int prot, flags, fd;
    off_t off;
    int result; /* 0 or -errno */
} map_job;

static void *run_map(void *arg)
{
    map_job *j = arg;
    /* NULL record: a pool thread; the worker counted the call before handing it over. */
    j->result = weft__sys_mmap(NULL, &j->addr, j->len, j->prot, j->flags, j->fd, j->off);
    return NULL;
}

int weft_file_map(void **out, int fd, off_t off, size_t len, int prot, int flags, int64_t deadline)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int kind = flags & MAP_KINDS;
    if (len == 0 || off < 0 || (kind != MAP_SHARED && kind != MAP_PRIVATE) ||
        (flags & ~(MAP_KINDS | MAP_EXTRA)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (off % sysconf(_SC_PAGESIZE) != 0)
        return -EINVAL;
    weft_task *t;
    int err;
    weft__worker *w = weft__blocking_begin(&t, true, &err);
    if (!w)
        return err;
    if (!(flags & MAP_POPULATE))
        return weft__sys_mmap(&w->sys, out, len, prot, flags, fd, off);
    /* Faults ahead: on the pool, whose wait honours the deadline while the job is queued. A
     * passed deadline ends it first, as for the other calls that cannot finish at once. */
    if (deadline != WEFT_FOREVER && deadline <= weft_now())
        return -ETIMEDOUT;
    int fault = weft__sys_enter(&w->sys, WEFT__SYS_mmap);
    if (fault < 0)
        return fault;
    map_job j = {.len = len, .prot = prot, .flags = flags, .fd = fd, .off = off};
    int r = weft_blocking(run_map, &j, NULL, deadline);
    if (r < 0)
        return r; /* withdrawn: it never ran, nothing is mapped */
    if (j.result == 0)
        *out = j.addr;
    return j.result;
}

int weft_file_unmap(void *addr, size_t len)
{
    if (!addr || len == 0)
        return -EINVAL;
    weft__worker *w = weft__worker_current();
    return weft__sys_munmap(w ? &w->sys : NULL, addr, len);
}
