/* The file-system tree's calls (weft_fs_*), truncation, directory listing, atomic replacement,
 * mappings and watches, on both backends (WEFT_IO_TESTS). Every test works in its own
 * mkdtemp directory and removes it. Deadlines and cancellation are tested without timing:
 * a deadline that has passed, a task that cancelled itself, and a blocking pool of one
 * thread kept busy, so that a job stays queued until the test lets the thread go. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "harness.h"
#include "sys.h"
#include "tmpdir_helpers.h"

#define SOON (10 * WEFT_SEC) /* a deadline that only a hang reaches */

static void *remove_root_job(void *arg)
{
    (void)arg;
    remove_tree(tmpdir_root);
    return NULL;
}

/* Removes the test's directory, on the blocking pool: the test's own bulk file work stays
 * off the worker's thread as well (the stall detector would report it). */
static void root_remove(void)
{
    cr_assert_eq(weft_blocking(remove_root_job, NULL, NULL, WEFT_FOREVER), 0);
}

static void put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* The file's contents as a string (at most 255 bytes), "" if it cannot be read. */
static const char *get(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Entries in the test's directory (plain libc). */
static int count_entries(void)
{
    DIR *d = opendir(tmpdir_root);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static uint64_t pool_jobs(void)
{
    weft_stats st;
    weft_stats_get(&st);
    return st.npool_jobs;
}

static bool epoll(void)
{
    return strcmp(weft_backend(), "epoll") == 0;
}

/* ---- The tree's calls ------------------------------------------------------------------ */

static void *tree_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    int64_t dl = weft_deadline_in(SOON);
    struct stat st;
    cr_assert_eq(weft_fs_mkdir(at("d"), 0750, dl), 0);
    cr_assert_eq(stat(at("d"), &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(weft_fs_mkdir(at("d"), 0750, dl), -EEXIST);

    put(at("f"), "hello");
    cr_assert_eq(weft_fs_link(at("f"), at("g"), dl), 0);
    cr_assert_eq(stat(at("f"), &st), 0);
    cr_assert_eq(st.st_nlink, 2);
    cr_assert_eq(weft_fs_symlink("f", at("s"), dl), 0);
    char target[16];
    cr_assert_eq(weft_fs_readlink(at("s"), target, sizeof target, dl), 1);
    cr_assert_str_eq(target, "f");
    cr_assert_str_eq(get(at("s")), "hello", "the link leads to f");

    cr_assert_eq(weft_fs_rename(at("g"), at("h"), 0, dl), 0);
    cr_assert(!exists(at("g")) && exists(at("h")));
    put(at("other"), "other");
    cr_assert_eq(weft_fs_rename(at("h"), at("other"), RENAME_NOREPLACE, dl), -EEXIST);
    cr_assert_str_eq(get(at("other")), "other", "NOREPLACE left it");
    cr_assert_eq(weft_fs_rename(at("h"), at("other"), RENAME_EXCHANGE, dl), 0);
    cr_assert_str_eq(get(at("other")), "hello");
    cr_assert_str_eq(get(at("h")), "other");
    cr_assert_eq(weft_fs_rename(at("h"), at("other"), 0, dl), 0, "replaces it");
    cr_assert_str_eq(get(at("other")), "other");

    cr_assert_eq(weft_fs_truncate(at("f"), 3, dl), 0);
    cr_assert_str_eq(get(at("f")), "hel");
    int fd = weft_file_open(at("f"), O_RDWR, 0, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_truncate(fd, 8192, dl), 0);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 8192, "grown with zeros");
    cr_assert_eq(weft_file_truncate(fd, 0, dl), 0);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, 0);
    cr_assert_eq(weft_close(fd), 0);

    put(at("d/inside"), "x");
    cr_assert_eq(weft_fs_rmdir(at("d"), dl), -ENOTEMPTY);
    cr_assert_eq(weft_fs_unlink(at("d"), dl), -EISDIR);
    cr_assert_eq(weft_fs_unlink(at("d/inside"), dl), 0);
    cr_assert_eq(weft_fs_rmdir(at("d"), dl), 0);
    cr_assert(!exists(at("d")));
    cr_assert_eq(weft_fs_unlink(at("s"), dl), 0);
    cr_assert(!exists(at("s")) && exists(at("f")), "the link went, not its target");
    cr_assert_eq(weft_fs_unlink(at("f"), dl), 0);
    cr_assert_eq(weft_fs_unlink(at("other"), dl), 0);
    cr_assert_eq(count_entries(), 0);
    root_remove();
    return NULL;
}

Test(fs_ops, tree_calls_do_what_their_system_calls_do)
{
    run_main(tree_main, NULL);
}

static void *errors_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    int64_t dl = weft_deadline_in(SOON);
    char buf[8];
    /* A missing path. */
    cr_assert_eq(weft_fs_mkdir(at("no/d"), 0700, dl), -ENOENT);
    cr_assert_eq(weft_fs_rmdir(at("no"), dl), -ENOENT);
    cr_assert_eq(weft_fs_unlink(at("no"), dl), -ENOENT);
    cr_assert_eq(weft_fs_rename(at("no"), at("yes"), 0, dl), -ENOENT);
    cr_assert_eq(weft_fs_link(at("no"), at("yes"), dl), -ENOENT);
    cr_assert_eq(weft_fs_symlink("x", at("no/s"), dl), -ENOENT);
    cr_assert_eq(weft_fs_readlink(at("no"), buf, sizeof buf, dl), -ENOENT);
    cr_assert_eq(weft_fs_truncate(at("no"), 0, dl), -ENOENT);
    /* NULL pointers and bad arguments. */
    cr_assert_eq(weft_fs_mkdir(NULL, 0700, dl), -EINVAL);
    cr_assert_eq(weft_fs_rmdir(NULL, dl), -EINVAL);
    cr_assert_eq(weft_fs_unlink(NULL, dl), -EINVAL);
    cr_assert_eq(weft_fs_rename(NULL, at("a"), 0, dl), -EINVAL);
    cr_assert_eq(weft_fs_rename(at("a"), NULL, 0, dl), -EINVAL);
    cr_assert_eq(weft_fs_rename(at("a"), at("b"), 0x80, dl), -EINVAL, "unknown flags");
    cr_assert_eq(weft_fs_link(NULL, at("a"), dl), -EINVAL);
    cr_assert_eq(weft_fs_link(at("a"), NULL, dl), -EINVAL);
    cr_assert_eq(weft_fs_symlink(NULL, at("a"), dl), -EINVAL);
    cr_assert_eq(weft_fs_symlink("a", NULL, dl), -EINVAL);
    cr_assert_eq(weft_fs_readlink(NULL, buf, sizeof buf, dl), -EINVAL);
    cr_assert_eq(weft_fs_readlink(at("a"), NULL, sizeof buf, dl), -EINVAL);
    cr_assert_eq(weft_fs_readlink(at("a"), buf, 0, dl), -EINVAL);
    cr_assert_eq(weft_fs_truncate(NULL, 0, dl), -EINVAL);
    cr_assert_eq(weft_fs_truncate(at("a"), -1, dl), -EINVAL);
    cr_assert_eq(weft_file_truncate(-1, 0, dl), -EBADF);
    /* readlink: not a link, and a target that does not fit with its NUL. */
    put(at("plain"), "x");
    cr_assert_eq(weft_fs_readlink(at("plain"), buf, sizeof buf, dl), -EINVAL);
    cr_assert_eq(weft_fs_symlink("12345678", at("long"), dl), 0);
    cr_assert_eq(weft_fs_readlink(at("long"), buf, 8, dl), -ENAMETOOLONG);
    char nine[9];
    cr_assert_eq(weft_fs_readlink(at("long"), nine, sizeof nine, dl), 8);
    cr_assert_str_eq(nine, "12345678");
    /* ftruncate of a file open read-only. */
    int fd = weft_file_open(at("plain"), O_RDONLY, 0, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_truncate(fd, 0, dl), -EINVAL);
    cr_assert_eq(weft_file_truncate(fd, -5, dl), -EINVAL);
    weft_close(fd);
    cr_assert_str_eq(get(at("plain")), "x", "nothing lost");
    root_remove();
    return NULL;
}

Test(fs_ops, tree_calls_report_errors)
{
    run_main(errors_main, NULL);
}

Test(fs_ops, tree_calls_outside_a_task_are_refused)
{
    cr_assert_eq(weft_fs_mkdir("/tmp/never", 0700, WEFT_FOREVER), -EPERM);
    cr_assert_eq(weft_fs_unlink("/tmp/never", WEFT_FOREVER), -EPERM);
    cr_assert_eq(weft_file_write_atomic("/tmp/never", "x", 1, 0600, WEFT_FOREVER), -EPERM);
    weft_fswatch *w;
    cr_assert_eq(weft_fswatch_create(&w), -EPERM);
    weft_dir *d;
    cr_assert_eq(weft_dir_open(&d, "/tmp", WEFT_FOREVER), -EPERM);
}

/* A deadline that has passed: -ETIMEDOUT, and nothing done. */
static void *passed_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    int64_t past = weft_deadline_in(-1);
    put(at("f"), "keep");
    cr_assert_eq(weft_fs_symlink("f", at("s"), WEFT_FOREVER), 0);
    char buf[8];
    cr_assert_eq(weft_fs_mkdir(at("d"), 0700, past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_rmdir(at("d"), past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_unlink(at("f"), past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_rename(at("f"), at("g"), 0, past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_link(at("f"), at("g"), past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_symlink("f", at("t"), past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_readlink(at("s"), buf, sizeof buf, past), -ETIMEDOUT);
    cr_assert_eq(weft_fs_truncate(at("f"), 0, past), -ETIMEDOUT);
    int fd = weft_file_open(at("f"), O_RDWR, 0, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_truncate(fd, 0, past), -ETIMEDOUT);
    void *map;
    cr_assert_eq(weft_file_map(&map, fd, 0, 4, PROT_READ, MAP_SHARED | MAP_POPULATE, past),
                 -ETIMEDOUT);
    cr_assert_null(map);
    weft_close(fd);
    cr_assert_eq(weft_file_write_atomic(at("f"), "new", 3, 0600, past), -ETIMEDOUT);
    weft_dir *d;
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, past), -ETIMEDOUT);
    cr_assert_null(d);
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, WEFT_FOREVER), 0);
    weft_dirent e;
    cr_assert_eq(weft_dir_next(d, &e, past), -ETIMEDOUT, "an empty buffer needs the pool");
    cr_assert_eq(weft_dir_next(d, &e, past), -ETIMEDOUT, "and again");
    int n = 0, r;
    while ((r = weft_dir_next(d, &e, WEFT_FOREVER)) == 1)
        n++;
    cr_assert_eq(r, 0);
    cr_assert_eq(n, 2, "f and s, nothing lost to the timeouts");
    weft_dir_close(d);
    weft_fswatch *w;
    cr_assert_eq(weft_fswatch_create(&w), 0);
    cr_assert_eq(weft_fswatch_add(w, tmpdir_root, IN_ALL_EVENTS, past), -ETIMEDOUT);
    weft_fswatch_event ev;
    cr_assert_eq(weft_fswatch_next(w, &ev, past), -ETIMEDOUT);
    weft_fswatch_destroy(w);
    /* Nothing changed. */
    cr_assert_eq(count_entries(), 2);
    cr_assert_str_eq(get(at("f")), "keep");
    root_remove();
    return NULL;
}

Test(fs_ops, a_passed_deadline_does_nothing)
{
    run_main(passed_main, NULL);
}

/* A cancelled task: every call returns -ECANCELED at once, and does nothing. */
typedef struct cancelled {
    int r[12];
} cancelled;

static void *cancelled_task(void *arg)
{
    cancelled *c = arg;
    weft_cancel(weft_self());
    char buf[8];
    int i = 0;
    c->r[i++] = weft_fs_mkdir(at("d"), 0700, WEFT_FOREVER);
    c->r[i++] = weft_fs_unlink(at("f"), WEFT_FOREVER);
    c->r[i++] = weft_fs_rmdir(at("e"), WEFT_FOREVER);
    c->r[i++] = weft_fs_rename(at("f"), at("g"), 0, WEFT_FOREVER);
    c->r[i++] = weft_fs_link(at("f"), at("g"), WEFT_FOREVER);
    c->r[i++] = weft_fs_symlink("f", at("t"), WEFT_FOREVER);
    c->r[i++] = (int)weft_fs_readlink(at("s"), buf, sizeof buf, WEFT_FOREVER);
    c->r[i++] = weft_fs_truncate(at("f"), 0, WEFT_FOREVER);
    c->r[i++] = weft_file_write_atomic(at("f"), "new", 3, 0600, WEFT_FOREVER);
    weft_dir *d;
    c->r[i++] = weft_dir_open(&d, tmpdir_root, WEFT_FOREVER);
    weft_fswatch *w;
    cr_assert_eq(weft_fswatch_create(&w), 0, "creating waits for nothing");
    c->r[i++] = weft_fswatch_add(w, tmpdir_root, IN_ALL_EVENTS, WEFT_FOREVER);
    weft_fswatch_event ev;
    c->r[i++] = weft_fswatch_next(w, &ev, WEFT_FOREVER);
    weft_fswatch_destroy(w);
    return NULL;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    put(at("f"), "keep");
    mkdir(at("e"), 0700);
    cr_assert_eq(symlink("f", at("s")), 0);
    cancelled c;
    memset(&c, 0x7f, sizeof c);
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, cancelled_task, &c, NULL), 0);
    weft_join(t, NULL, WEFT_FOREVER);
    for (size_t i = 0; i < sizeof c.r / sizeof c.r[0]; i++)
        cr_assert_eq(c.r[i], -ECANCELED, "call %zu", i);
    cr_assert_eq(count_entries(), 3, "f, e, s: nothing made, nothing removed");
    cr_assert_str_eq(get(at("f")), "keep");
    root_remove();
    return NULL;
}

Test(fs_ops, a_cancelled_task_does_nothing)
{
    run_main(cancel_main, NULL);
}

/* ---- A queued pool job: withdrawn by its deadline or cancellation ------------------------ */

/* The pool's only thread, kept in a read of a pipe until the test writes to it. */
typedef struct blocker {
    int pipe[2];
    bool started;
} blocker;

static void *block_job(void *arg)
{
    blocker *b = arg;
    char c;
    while (read(b->pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void *block_task(void *arg)
{
    blocker *b = arg;
    b->started = true;
    cr_assert_eq(weft_blocking(block_job, b, NULL, WEFT_FOREVER), 0);
    return NULL;
}

typedef struct truncater {
    bool started;
    int r;
} truncater;

static void *truncate_forever(void *arg)
{
    truncater *tr = arg;
    tr->started = true;
    tr->r = weft_fs_truncate(at("f"), 0, WEFT_FOREVER);
    return NULL;
}

static void *queued_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    put(at("f"), "keep");
    cr_assert_eq(symlink("f", at("s")), 0);
    int fd = weft_file_open(at("f"), O_RDWR, 0, WEFT_FOREVER); /* before the pool is busy */
    cr_assert_geq(fd, 0);
    blocker b = {.started = false};
    cr_assert_eq(pipe2(b.pipe, O_CLOEXEC), 0);
    weft_task *bt;
    cr_assert_eq(weft_spawn(&bt, block_task, &b, NULL), 0);
    while (!b.started)
        weft_yield();
    /* The blocker's job is queued (or running) first: every job below waits behind it. */
    int64_t soon = weft_deadline_in(20 * WEFT_MSEC);
    char buf[8] = "untouch";
    cr_assert_eq(weft_fs_readlink(at("s"), buf, sizeof buf, soon), -ETIMEDOUT);
    cr_assert_str_eq(buf, "untouch", "the withdrawn job never wrote to the buffer");
    cr_assert_eq(weft_fs_truncate(at("f"), 0, weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT);
    cr_assert_eq(weft_file_truncate(fd, 0, weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT);
    void *map;
    cr_assert_eq(weft_file_map(&map, fd, 0, 4, PROT_READ, MAP_SHARED | MAP_POPULATE,
                               weft_deadline_in(20 * WEFT_MSEC)),
                 -ETIMEDOUT);
    weft_dir *d;
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, weft_deadline_in(-1)), -ETIMEDOUT);
    if (epoll()) {
        /* epoll: the tree's calls are pool jobs too. */
        cr_assert_eq(weft_fs_mkdir(at("d"), 0700, weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(weft_fs_unlink(at("f"), weft_deadline_in(20 * WEFT_MSEC)), -ETIMEDOUT);
        cr_assert_eq(weft_fs_rename(at("f"), at("g"), 0, weft_deadline_in(20 * WEFT_MSEC)),
                     -ETIMEDOUT);
    }
    /* Cancellation of a queued job. */
    truncater tr = {.started = false, .r = 1};
    weft_task *tt;
    cr_assert_eq(weft_spawn(&tt, truncate_forever, &tr, NULL), 0);
    while (!tr.started)
        weft_yield();
    cr_assert_eq(weft_cancel(tt), 0);
    weft_join(tt, NULL, WEFT_FOREVER);
    cr_assert_eq(tr.r, -ECANCELED);
    /* Let the thread go: nothing withdrawn ever ran. */
    cr_assert_eq(write(b.pipe[1], "x", 1), 1);
    weft_join(bt, NULL, WEFT_FOREVER);
    cr_assert_str_eq(get(at("f")), "keep");
    cr_assert(!exists(at("d")) && !exists(at("g")));
    weft_close(fd);
    close(b.pipe[0]);
    close(b.pipe[1]);
    root_remove();
    return NULL;
}

Test(fs_ops, a_queued_pool_job_is_withdrawn_by_deadline_and_cancel)
{
    weft_config cfg;
    weft_config_init(&cfg);
    cfg.pool_threads = 1;
    run_main_cfg(&cfg, queued_main, NULL);
}

/* io_uring: the tree's calls are ring operations where the kernel has them (5.15 has all
 * five), and need no pool job. */
static void *ring_main(void *arg)
{
    (void)arg;
    const char *off = getenv("WEFT_URING_OFF");
    struct utsname u;
    int major = 0, minor = 0;
    if (epoll() || (off && strstr(off, "pathops")) || uname(&u) != 0 ||
        sscanf(u.release, "%d.%d", &major, &minor) != 2 || major * 100 + minor < 515)
        return NULL;
    tmpdir_make("weft-fsops");
    uint64_t jobs = pool_jobs();
    cr_assert_eq(weft_fs_mkdir(at("d"), 0700, WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_symlink("d", at("s"), WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_rename(at("s"), at("t"), 0, WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_unlink(at("t"), WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_rmdir(at("d"), WEFT_FOREVER), 0);
    cr_assert_eq(pool_jobs(), jobs, "no pool job");
    root_remove();
    return NULL;
}

Test(fs_ops, tree_calls_are_ring_operations_on_io_uring)
{
    run_main(ring_main, NULL);
}

/* ---- Directory listing ----------------------------------------------------------------- */

#define NFILES 1500 /* about two 32 KiB batches of records */

static void *make_files_job(void *arg)
{
    (void)arg;
    for (int i = 0; i < NFILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "file-%04d", i);
        put(at(name), "");
    }
    cr_assert_eq(mkdir(at("sub"), 0700), 0);
    return NULL;
}

static void *dir_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    cr_assert_eq(weft_blocking(make_files_job, NULL, NULL, WEFT_FOREVER), 0);
    static bool seen[NFILES];
    memset(seen, 0, sizeof seen);
    weft_dir *d;
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, WEFT_FOREVER), 0);
    weft_dirent e;
    int n = 0, r;
    bool sub = false;
    uint64_t jobs = pool_jobs();
    while ((r = weft_dir_next(d, &e, weft_deadline_in(SOON))) == 1) {
        n++;
        if (!strcmp(e.name, "sub")) {
            cr_assert(e.type == DT_DIR || e.type == DT_UNKNOWN);
            sub = true;
            continue;
        }
        int i;
        cr_assert_eq(sscanf(e.name, "file-%d", &i), 1, "%s", e.name);
        cr_assert(i >= 0 && i < NFILES && !seen[i], "%s", e.name);
        seen[i] = true;
        cr_assert(e.type == DT_REG || e.type == DT_UNKNOWN);
        if (i % 100 == 0) {
            struct stat st;
            cr_assert_eq(stat(at(e.name), &st), 0);
            cr_assert_eq(e.ino, (uint64_t)st.st_ino);
        }
    }
    cr_assert_eq(r, 0, "%s", weft_strerror(r));
    cr_assert_eq(n, NFILES + 1);
    cr_assert(sub);
    uint64_t batches = pool_jobs() - jobs;
    cr_assert(batches >= 2 && batches < 20, "read in batches: %llu", (unsigned long long)batches);
    cr_assert_eq(weft_dir_next(d, &e, WEFT_FOREVER), 0, "the end stays the end");
    weft_dir_close(d);
    /* Errors. */
    cr_assert_eq(weft_dir_open(&d, at("none"), WEFT_FOREVER), -ENOENT);
    cr_assert_null(d);
    cr_assert_eq(weft_dir_open(&d, at("file-0000"), WEFT_FOREVER), -ENOTDIR);
    cr_assert_eq(weft_dir_open(NULL, tmpdir_root, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_dir_open(&d, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_dir_next(NULL, &e, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_dir_open(&d, at("sub"), WEFT_FOREVER), 0);
    cr_assert_eq(weft_dir_next(d, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_dir_next(d, &e, WEFT_FOREVER), 0, "an empty directory");
    weft_dir_close(d);
    weft_dir_close(NULL);
    root_remove();
    return NULL;
}

Test(fs_ops, a_directory_is_listed_in_batches, .timeout = 120)
{
    run_main(dir_main, NULL);
}

/* ---- Atomic replacement ---------------------------------------------------------------- */

static void *atomic_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    mode_t mask = umask(022);
    umask(mask);
    /* A new file, then a replacement. */
    cr_assert_eq(weft_file_write_atomic(at("cfg"), "one", 3, 0640, WEFT_FOREVER), 0);
    cr_assert_str_eq(get(at("cfg")), "one");
    struct stat st;
    cr_assert_eq(stat(at("cfg"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640 & ~mask);
    cr_assert_eq(weft_file_write_atomic(at("cfg"), "second", 6, 0600, WEFT_FOREVER), 0);
    cr_assert_str_eq(get(at("cfg")), "second");
    cr_assert_eq(weft_file_write_atomic(at("empty"), NULL, 0, 0600, WEFT_FOREVER), 0);
    cr_assert_str_eq(get(at("empty")), "");
    cr_assert_eq(count_entries(), 2, "no temporary file left");
    /* A relative path: the directory's fsync is of ".". */
    char cwd[PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tmpdir_root), 0);
    cr_assert_eq(weft_file_write_atomic("rel", "r", 1, 0600, WEFT_FOREVER), 0);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_str_eq(get(at("rel")), "r");
    /* Bad arguments. */
    cr_assert_eq(weft_file_write_atomic(NULL, "x", 1, 0600, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_write_atomic(at("cfg"), NULL, 1, 0600, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_write_atomic(at("sub/"), "x", 1, 0600, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_write_atomic(at("no/cfg"), "x", 1, 0600, WEFT_FOREVER), -ENOENT);
    cr_assert_eq(count_entries(), 3);
    /* Past RLIMIT_FSIZE (SIGXFSZ ignored): -EFBIG, the old contents kept. io_uring's write
     * at the file position reported the whole count while the file stayed cut at the limit,
     * and the cut file was renamed over the target with 0 returned. (This test process is
     * its own: Criterion runs each test in one.) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old_lim, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    lim = old_lim;
    lim.rlim_cur = 64 * 1024;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    size_t big_len = 256 * 1024;
    char *big = calloc(1, big_len);
    cr_assert_eq(weft_file_write_atomic(at("cfg"), big, big_len, 0600, WEFT_FOREVER), -EFBIG);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
    free(big);
    cr_assert_str_eq(get(at("cfg")), "second");
    cr_assert_eq(count_entries(), 3, "no temporary file left");
    root_remove();
    return NULL;
}

Test(fs_ops, write_atomic_replaces_a_file)
{
    run_main(atomic_main, NULL);
}

#ifdef WEFT_TESTING
/* Each step failing in turn (planned faults): before the rename the old contents stay and the
 * temporary file goes; a failed directory fsync comes after the rename (new contents). */
static void *atomic_fail_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    weft__sys *sys = weft__sys_current();
    cr_assert_eq(weft_file_write_atomic(at("cfg"), "old", 3, 0600, WEFT_FOREVER), 0);
    static const struct {
        int kind;
        unsigned nth;
        int err;
    } steps[] = {
        {WEFT__SYS_open, 1, EMFILE},
        {WEFT__SYS_write, 1, ENOSPC},
        {WEFT__SYS_fsync, 1, EIO},
        {WEFT__SYS_rename, 1, EXDEV},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        cr_assert_eq(weft__sys_fail(sys, steps[i].kind, steps[i].nth, steps[i].err), 0);
        int r = weft_file_write_atomic(at("cfg"), "new contents", 12, 0600, WEFT_FOREVER);
        cr_assert_eq(r, -steps[i].err, "step %s: %s", weft__sys_name(steps[i].kind),
                     weft_strerror(r));
        cr_assert_eq(weft__sys_fail(sys, steps[i].kind, 0, 0), 0);
        cr_assert_str_eq(get(at("cfg")), "old", "step %s", weft__sys_name(steps[i].kind));
        cr_assert_eq(count_entries(), 1, "step %s left a temporary file",
                     weft__sys_name(steps[i].kind));
    }
    /* The directory's fsync (the second fsync) fails: the new contents are in place. */
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_fsync, 2, EIO), 0);
    cr_assert_eq(weft_file_write_atomic(at("cfg"), "new", 3, 0600, WEFT_FOREVER), -EIO);
    cr_assert_eq(weft__sys_fail(sys, WEFT__SYS_fsync, 0, 0), 0);
    cr_assert_str_eq(get(at("cfg")), "new");
    cr_assert_eq(count_entries(), 1);
    root_remove();
    return NULL;
}

Test(fs_ops, write_atomic_keeps_the_old_contents_when_a_step_fails)
{
    run_main(atomic_fail_main, NULL);
}
#endif

/* ---- Mappings -------------------------------------------------------------------------- */

static void *map_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fd = weft_file_open(at("m"), O_RDWR | O_CREAT, 0600, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    char *b = malloc(3 * page);
    for (size_t i = 0; i < 3 * page; i++)
        b[i] = (char)(i % 251);
    cr_assert_eq(weft_file_pwrite(fd, b, 3 * page, 0, WEFT_FOREVER), (ssize_t)(3 * page));
    /* A region, read where it is. */
    void *p;
    cr_assert_eq(weft_file_map(&p, fd, (off_t)page, 2 * page, PROT_READ, MAP_SHARED, WEFT_FOREVER),
                 0);
    cr_assert_eq(memcmp(p, b + page, 2 * page), 0);
    cr_assert_eq(weft_file_unmap(p, 2 * page), 0);
    /* MAP_POPULATE: on the pool. */
    uint64_t jobs = pool_jobs();
    cr_assert_eq(
        weft_file_map(&p, fd, 0, 3 * page, PROT_READ, MAP_PRIVATE | MAP_POPULATE, WEFT_FOREVER), 0);
    cr_assert_eq(pool_jobs(), jobs + 1);
    cr_assert_eq(memcmp(p, b, 3 * page), 0);
    cr_assert_eq(weft_file_unmap(p, 3 * page), 0);
    /* A shared writable mapping writes the file. */
    cr_assert_eq(weft_file_map(&p, fd, 0, page, PROT_READ | PROT_WRITE, MAP_SHARED, WEFT_FOREVER),
                 0);
    memcpy(p, "mapped", 6);
    cr_assert_eq(weft_file_unmap(p, page), 0);
    char got[6];
    cr_assert_eq(weft_file_pread(fd, got, 6, 0, WEFT_FOREVER), 6);
    cr_assert_eq(memcmp(got, "mapped", 6), 0);
    /* Bad arguments. */
    cr_assert_eq(weft_file_map(NULL, fd, 0, page, PROT_READ, MAP_SHARED, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_map(&p, fd, 0, 0, PROT_READ, MAP_SHARED, WEFT_FOREVER), -EINVAL);
    cr_assert_null(p);
    cr_assert_eq(weft_file_map(&p, fd, 100, page, PROT_READ, MAP_SHARED, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_map(&p, fd, -(off_t)page, page, PROT_READ, MAP_SHARED, WEFT_FOREVER),
                 -EINVAL);
    cr_assert_eq(weft_file_map(&p, fd, 0, page, PROT_READ, 0, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_file_map(&p, fd, 0, page, PROT_READ, MAP_SHARED | MAP_PRIVATE, WEFT_FOREVER),
                 -EINVAL);
    cr_assert_eq(weft_file_map(&p, fd, 0, page, PROT_READ, MAP_SHARED | MAP_FIXED, WEFT_FOREVER),
                 -EINVAL);
    cr_assert_eq(weft_file_map(&p, -1, 0, page, PROT_READ, MAP_SHARED, WEFT_FOREVER), -EBADF);
    cr_assert_eq(weft_file_unmap(NULL, page), -EINVAL);
    int ro = weft_file_open(at("m"), O_RDONLY, 0, WEFT_FOREVER);
    cr_assert_geq(ro, 0);
    cr_assert_eq(weft_file_map(&p, ro, 0, page, PROT_READ | PROT_WRITE, MAP_SHARED, WEFT_FOREVER),
                 -EACCES, "writable shared map of a read-only fd");
    weft_close(ro);
    free(b);
    weft_close(fd);
    root_remove();
    return NULL;
}

Test(fs_ops, a_file_region_is_mapped)
{
    run_main(map_main, NULL);
}

/* ---- Watches --------------------------------------------------------------------------- */

static void next_event(weft_fswatch *w, weft_fswatch_event *ev, uint32_t mask, const char *name)
{
    int r = weft_fswatch_next(w, ev, weft_deadline_in(SOON));
    cr_assert_eq(r, 0, "waiting for %s: %s", name, weft_strerror(r));
    cr_assert_eq(ev->mask & ~(uint32_t)IN_ISDIR, mask, "%s: mask %#x", name, ev->mask);
    cr_assert_str_eq(ev->name, name);
}

static void *watch_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    weft_fswatch *w;
    cr_assert_eq(weft_fswatch_create(&w), 0);
    uint32_t mask =
        IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
    int wd = weft_fswatch_add(w, tmpdir_root, mask, WEFT_FOREVER);
    cr_assert_geq(wd, 0, "%s", weft_strerror(wd));
    int fd = weft_file_open(at("a"), O_WRONLY | O_CREAT, 0600, WEFT_FOREVER);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_write(fd, "x", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(weft_fs_rename(at("a"), at("b"), 0, WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_mkdir(at("dir"), 0700, WEFT_FOREVER), 0);
    cr_assert_eq(weft_fs_unlink(at("b"), WEFT_FOREVER), 0);
    weft_fswatch_event ev;
    next_event(w, &ev, IN_CREATE, "a");
    cr_assert_eq(ev.wd, wd);
    cr_assert_eq(ev.cookie, 0);
    next_event(w, &ev, IN_MODIFY, "a");
    next_event(w, &ev, IN_CLOSE_WRITE, "a");
    next_event(w, &ev, IN_MOVED_FROM, "a");
    uint32_t cookie = ev.cookie;
    cr_assert_neq(cookie, 0);
    next_event(w, &ev, IN_MOVED_TO, "b");
    cr_assert_eq(ev.cookie, cookie, "one rename, one cookie");
    next_event(w, &ev, IN_CREATE, "dir");
    cr_assert(ev.mask & IN_ISDIR);
    next_event(w, &ev, IN_DELETE, "b");
    cr_assert_eq(weft_fswatch_next(w, &ev, weft_deadline_in(-1)), -ETIMEDOUT, "no more");
    /* A watch on a file: its events have no name. Removing a watch says IN_IGNORED. */
    put(at("f"), "");
    int fwd = weft_fswatch_add(w, at("f"), IN_ATTRIB, WEFT_FOREVER);
    cr_assert_geq(fwd, 0);
    cr_assert_neq(fwd, wd);
    cr_assert_eq(chmod(at("f"), 0644), 0);
    next_event(w, &ev, IN_CREATE, "f"); /* from the directory's watch, first */
    next_event(w, &ev, IN_CLOSE_WRITE, "f");
    next_event(w, &ev, IN_ATTRIB, "");
    cr_assert_eq(ev.wd, fwd);
    cr_assert_eq(weft_fswatch_remove(w, fwd), 0);
    next_event(w, &ev, IN_IGNORED, "");
    cr_assert_eq(ev.wd, fwd);
    cr_assert_eq(weft_fswatch_remove(w, fwd), -EINVAL, "gone already");
    /* Errors. */
    cr_assert_eq(weft_fswatch_add(w, at("none"), IN_CREATE, WEFT_FOREVER), -ENOENT);
    cr_assert_eq(weft_fswatch_add(w, tmpdir_root, 0, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fswatch_add(w, NULL, IN_CREATE, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fswatch_add(NULL, tmpdir_root, IN_CREATE, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fswatch_next(w, NULL, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fswatch_next(NULL, &ev, WEFT_FOREVER), -EINVAL);
    cr_assert_eq(weft_fswatch_remove(NULL, 1), -EINVAL);
    cr_assert_eq(weft_fswatch_create(NULL), -EINVAL);
    weft_fswatch_destroy(w);
    weft_fswatch_destroy(NULL);
    root_remove();
    return NULL;
}

Test(fs_ops, a_watch_reports_create_modify_move_delete)
{
    run_main(watch_main, NULL);
}

/* A task parked in weft_fswatch_next: woken by an event, or by cancellation (losing nothing). */
typedef struct watcher {
    weft_fswatch *w;
    bool started;
    int r;
    weft_fswatch_event ev;
} watcher;

static void *watch_forever(void *arg)
{
    watcher *x = arg;
    x->started = true;
    x->r = weft_fswatch_next(x->w, &x->ev, WEFT_FOREVER);
    return NULL;
}

static void *watch_wait_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-fsops");
    watcher x = {.r = 1};
    cr_assert_eq(weft_fswatch_create(&x.w), 0);
    cr_assert_geq(weft_fswatch_add(x.w, tmpdir_root, IN_CREATE, WEFT_FOREVER), 0);
    /* Parked (started, and nothing queued: it waits on the fd without yielding first), then
     * cancelled. */
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, watch_forever, &x, NULL), 0);
    while (!x.started)
        weft_yield();
    cr_assert_eq(weft_cancel(t), 0);
    weft_join(t, NULL, WEFT_FOREVER);
    cr_assert_eq(x.r, -ECANCELED);
    /* Parked, then woken by an event. */
    x.started = false;
    x.r = 1;
    cr_assert_eq(weft_spawn(&t, watch_forever, &x, NULL), 0);
    while (!x.started)
        weft_yield();
    put(at("made"), "");
    cr_assert_eq(weft_join(t, NULL, weft_deadline_in(SOON)), 0);
    cr_assert_eq(x.r, 0);
    cr_assert_eq(x.ev.mask, IN_CREATE);
    cr_assert_str_eq(x.ev.name, "made");
    weft_fswatch_destroy(x.w);
    root_remove();
    return NULL;
}

Test(fs_ops, a_parked_watch_wakes_for_an_event_or_cancellation)
{
    run_main(watch_wait_main, NULL);
}

/* More events than the kernel queues: one IN_Q_OVERFLOW (wd -1) marks the loss. Opening and
 * closing a file alternates two events, which the kernel never merges. */
static void *open_close_job(void *arg)
{
    long max = *(long *)arg;
    for (long i = 0; i < max / 2 + 2; i++) {
        int fd = open(at("f"), O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        close(fd);
    }
    return NULL;
}

static void *overflow_main(void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    long max = 0;
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 0;
        fclose(f);
    }
    if (max <= 0 || max > (1 << 20))
        return NULL; /* unknown, or too large to fill quickly */
    tmpdir_make("weft-fsops");
    put(at("f"), "");
    weft_fswatch *w;
    cr_assert_eq(weft_fswatch_create(&w), 0);
    cr_assert_geq(weft_fswatch_add(w, at("f"), IN_OPEN | IN_CLOSE_NOWRITE, WEFT_FOREVER), 0);
    cr_assert_eq(weft_blocking(open_close_job, &max, NULL, WEFT_FOREVER), 0);
    weft_fswatch_event ev;
    long n = 0;
    bool overflow = false;
    while (!overflow && weft_fswatch_next(w, &ev, weft_deadline_in(-1)) == 0) {
        n++;
        if (ev.mask & IN_Q_OVERFLOW) {
            overflow = true;
            cr_assert_eq(ev.wd, -1);
            cr_assert_str_eq(ev.name, "");
        }
    }
    cr_assert(overflow, "no IN_Q_OVERFLOW after %ld events", n);
    cr_assert_leq(n, max + 1);
    cr_assert_eq(weft_fswatch_next(w, &ev, weft_deadline_in(-1)), -ETIMEDOUT, "and then none");
    weft_fswatch_destroy(w);
    root_remove();
    return NULL;
}

Test(fs_ops, a_watch_reports_queue_overflow, .timeout = 120)
{
    run_main(overflow_main, NULL);
}

/* A length past the end of the address space (but at most SSIZE_MAX), with a buffer of one
 * page: pread(2) answers -EFAULT before it touches anything, as io_uring's path does. On
 * epoll the RWF_NOWAIT try (preadv2) clamps the length to the kernel's per-call most before
 * it checks the range, and wrote the file's 64 KiB over the pages after the buffer. */
static void *huge_length_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-huge-len-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert_geq(tmp, 0);
    static char data[64 * 1024];
    memset(data, 'x', sizeof data);
    cr_assert_eq(write(tmp, data, sizeof data), (ssize_t)sizeof data);
    close(tmp);
    long page = sysconf(_SC_PAGESIZE);
    /* The buffer's page, a canary page, and a page that faults. */
    char *m =
        mmap(NULL, (size_t)page * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    cr_assert_eq(mprotect(m + 2 * page, (size_t)page, PROT_NONE), 0);
    memset(m + page, 'c', (size_t)page);
    int f = weft_file_open(path, O_RDWR, 0, weft_deadline_in(SOON));
    cr_assert_geq(f, 0);
    const size_t lens[] = {(size_t)1 << 47, (size_t)1 << 48, (size_t)SSIZE_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        cr_assert_eq(weft_file_pread(f, m, lens[i], 0, weft_deadline_in(SOON)), -EFAULT,
                     "pread of %zu bytes", lens[i]);
        cr_assert_eq(weft_file_read(f, m, lens[i], weft_deadline_in(SOON)), -EFAULT,
                     "read of %zu bytes", lens[i]);
        for (long k = 0; k < page; k++)
            cr_assert_eq(m[page + k], 'c', "the page after the buffer was written (%zu bytes)",
                         lens[i]);
    }
    /* What a write of such a length would read past the buffer is refused the same way. */
    cr_assert_eq(weft_file_pwrite(f, m, (size_t)1 << 47, 0, weft_deadline_in(SOON)), -EFAULT);
    cr_assert_eq(weft_close(f), 0);
    cr_assert_eq(unlink(path), 0);
    munmap(m, (size_t)page * 3);
    return NULL;
}

Test(fs_ops, a_length_past_the_address_space_is_efault_and_writes_nothing, .timeout = 60)
{
    run_main(huge_length_main, NULL);
}

/* Zero bytes from or to a directory, or against the fd's mode: read(2) and write(2) still
 * check the fd (-EISDIR, -EBADF); io_uring's read of 0 bytes answered 0. */
static void *zero_length_main(void *arg)
{
    (void)arg;
    int d = weft_file_open("/tmp", O_RDONLY | O_DIRECTORY, 0, weft_deadline_in(SOON));
    cr_assert_geq(d, 0);
    char b[1];
    cr_assert_eq(weft_file_read(d, b, 0, weft_deadline_in(SOON)), -EISDIR);
    cr_assert_eq(weft_file_pread(d, b, 0, 0, weft_deadline_in(SOON)), -EISDIR);
    cr_assert_eq(weft_close(d), 0);
    char path[] = "/tmp/weft-zero-len-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert_geq(tmp, 0);
    close(tmp);
    int f = weft_file_open(path, O_RDONLY, 0, weft_deadline_in(SOON));
    cr_assert_geq(f, 0);
    cr_assert_eq(weft_file_read(f, b, 0, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_file_write(f, b, 0, weft_deadline_in(SOON)), -EBADF);
    cr_assert_eq(weft_close(f), 0);
    cr_assert_eq(unlink(path), 0);
    return NULL;
}

Test(fs_ops, a_zero_length_call_still_checks_the_fd)
{
    run_main(zero_length_main, NULL);
}

/* A path in the first page: weft_file_write_atomic read it itself (its last '/') and crashed
 * the caller, where weft_file_open, weft_fs_* and weft_dir_open answer -EFAULT from the kernel
 * (found by a probe of first-page pointers across the file calls). Results are checked after
 * weft_run returns. */
typedef struct first_page_paths {
    int atomic, open, unlink, dir, still_writes;
} first_page_paths;

static void *first_page_path_main(void *arg)
{
    first_page_paths *r = arg;
    const char *bad = (const char *)(uintptr_t)16;
    tmpdir_make("weft-fsops");
    r->atomic = weft_file_write_atomic(bad, "x", 1, 0600, weft_deadline_in(SOON));
    r->open = weft_file_open(bad, O_RDONLY, 0, weft_deadline_in(SOON));
    r->unlink = weft_fs_unlink(bad, weft_deadline_in(SOON));
    weft_dir *d = NULL;
    r->dir = weft_dir_open(&d, bad, weft_deadline_in(SOON));
    r->still_writes = weft_file_write_atomic(at("cfg"), "new", 3, 0600, weft_deadline_in(SOON));
    if (r->still_writes == 0 && strcmp(get(at("cfg")), "new") != 0)
        r->still_writes = -1;
    root_remove();
    return NULL;
}

Test(fs_ops, a_path_in_the_first_page_is_efault_in_every_path_call)
{
    first_page_paths r = {1, 1, 1, 1, 1};
    run_main(first_page_path_main, &r);
    cr_assert_eq(r.atomic, -EFAULT);
    cr_assert_eq(r.open, -EFAULT);
    cr_assert_eq(r.unlink, -EFAULT);
    cr_assert_eq(r.dir, -EFAULT);
    cr_assert_eq(r.still_writes, 0);
}
