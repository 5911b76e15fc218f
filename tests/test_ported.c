/* Behaviours checked by other runtimes' own suites that test_conformance.c and
 * test_semantics.c leave out, re-expressed against what weft.h documents: libuv's fs, spawn,
 * signal, tcp, udp and pipe tests; Tokio's io, JoinHandle-abort and time tests; Go's net
 * timeout and os/exec tests. Where weft.h says what happens the test asserts that; where it
 * is silent, what the peer runtime does (each test names its source). No pass or fail depends
 * on timing: sleeps appear only where a timer is the subject, and only ever as bounds a hang
 * would reach. Every test holds in sharded and stealing mode, on epoll and on io_uring (the
 * environment picks: WEFT_MODE, WEFT_WORKERS, WEFT_BACKEND). */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "task_helpers.h"
#include "tcp_helpers.h"
#include "tmpdir_helpers.h"

#define SOON (10 * WEFT_SEC) /* a deadline only a hang reaches */

/* ---- Helpers ---------------------------------------------------------------------------- */

/* Reads until end of file into buf (at most cap bytes); returns the count or -errno. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = weft_read(fd, buf + n, cap - n, weft_deadline_in(SOON));
        if (k < 0)
            return k;
        if (k == 0 || (n += (size_t)k) == cap)
            return (ssize_t)n;
    }
}

/* A task: one read of one byte from fd `arg`; returns weft_read's result. */
static void *read_one(void *arg)
{
    char c;
    return (void *)(intptr_t)weft_read((int)(intptr_t)arg, &c, 1, WEFT_FOREVER);
}

/* A task: waits for event `arg`; returns NULL. */
static void *wait_event_task(void *arg)
{
    cr_assert_eq(weft_event_wait(arg, WEFT_FOREVER), 0);
    return NULL;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + i / 509 + 7);
}

/* ---- Files (libuv test-fs.c) ------------------------------------------------------------ */

static void put_file(const char *path, const char *text)
{
    int fd = weft_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, weft_deadline_in(SOON));
    cr_assert_geq(fd, 0, "open %s: %s", path, weft_strerror(fd));
    size_t len = strlen(text);
    cr_assert_eq(weft_file_write(fd, text, len, weft_deadline_in(SOON)), (ssize_t)len);
    cr_assert_eq(weft_close(fd), 0);
}

/* libuv fs_file_noent, fs_open_dir, fs_file_open_append/excl, fs_read_dir: opening what is
 * not there, a directory for writing, an existing file with O_EXCL, a path through a file;
 * reading a directory's fd. */
static void *fs_open_errors_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    int64_t dl = weft_deadline_in(SOON);
    cr_assert_eq(weft_file_open(at("missing"), O_RDONLY, 0, dl), -ENOENT);
    cr_assert_eq(weft_file_open(at("no/such/dir/f"), O_WRONLY | O_CREAT, 0600, dl), -ENOENT);
    cr_assert_eq(weft_file_open(tmpdir_root, O_RDWR, 0, dl), -EISDIR);
    cr_assert_eq(weft_file_open(tmpdir_root, O_WRONLY, 0, dl), -EISDIR);
    put_file(at("f"), "x");
    cr_assert_eq(weft_file_open(at("f"), O_WRONLY | O_CREAT | O_EXCL, 0600, dl), -EEXIST);
    cr_assert_eq(weft_file_open(at("f/child"), O_RDONLY, 0, dl), -ENOTDIR);
    cr_assert_eq(weft_file_open(at("f"), O_RDONLY | O_DIRECTORY, 0, dl), -ENOTDIR);
    cr_assert_eq(weft_file_open(NULL, O_RDONLY, 0, dl) < 0, 1, "NULL path fails");

    /* A directory opened for reading: its fd reads as EISDIR (libuv fs_read_dir). */
    int dfd = weft_file_open(tmpdir_root, O_RDONLY | O_DIRECTORY, 0, dl);
    cr_assert_geq(dfd, 0, "%s", weft_strerror(dfd));
    char buf[16];
    cr_assert_eq(weft_file_read(dfd, buf, sizeof buf, dl), -EISDIR);
    cr_assert_eq(weft_file_pread(dfd, buf, sizeof buf, 0, dl), -EISDIR);
    cr_assert_eq(weft_close(dfd), 0);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, fs_open_errors, .timeout = 30)
{
    run_main(fs_open_errors_main, NULL);
}

/* libuv fs_file_sync, fs_read_past_eof (fs_read_bufs with offsets), fs_write_empty /
 * fs_read_empty and fs_file_pos_after_op: positioned and sequential reads and writes, reads
 * at and past the end of the file give 0, zero-length reads and writes give 0 and change
 * nothing, a write past the end leaves a hole of zeros, fsync succeeds, stat agrees. */
static void *fs_rw_offsets_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    int64_t dl = weft_deadline_in(SOON);
    int fd = weft_file_open(at("data"), O_RDWR | O_CREAT | O_TRUNC, 0644, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_write(fd, "hello world", 11, dl), 11);
    cr_assert_eq(weft_file_fsync(fd, dl), 0);
    char buf[32] = {0};
    /* The file position is at the end: a sequential read finds nothing. */
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, dl), 0);
    cr_assert_eq(weft_file_pread(fd, buf, 5, 6, dl), 5);
    cr_assert_eq(memcmp(buf, "world", 5), 0);
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, dl), 11, "short at the end");
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 11, dl), 0, "at EOF");
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 1000, dl), 0, "past EOF");
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 1 << 30, dl), 0, "far past EOF");
    cr_assert_eq(weft_file_pread(fd, buf, 0, 0, dl), 0, "zero-length pread");
    cr_assert_eq(weft_file_read(fd, buf, 0, dl), 0, "zero-length read");
    cr_assert_eq(weft_file_write(fd, "", 0, dl), 0, "zero-length write");
    cr_assert_eq(weft_file_pwrite(fd, "", 0, 3, dl), 0, "zero-length pwrite");
    struct stat st;
    cr_assert_eq(weft_file_stat(at("data"), &st, dl), 0);
    cr_assert_eq(st.st_size, 11, "zero-length writes changed nothing");
    cr_assert(S_ISREG(st.st_mode));

    /* pwrite does not move the position; a sequential write then appends at 11. */
    cr_assert_eq(weft_file_pwrite(fd, "HELLO", 5, 0, dl), 5);
    cr_assert_eq(weft_file_write(fd, "!", 1, dl), 1);
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, dl), 12);
    cr_assert_eq(memcmp(buf, "HELLO world!", 12), 0);

    /* A write past the end leaves zeros between. */
    cr_assert_eq(weft_file_pwrite(fd, "end", 3, 100, dl), 3);
    cr_assert_eq(weft_file_stat(at("data"), &st, dl), 0);
    cr_assert_eq(st.st_size, 103);
    char hole[103];
    cr_assert_eq(weft_file_pread(fd, hole, sizeof hole, 0, dl), 103);
    for (int i = 12; i < 100; i++)
        cr_assert_eq(hole[i], 0, "byte %d of the hole", i);
    cr_assert_eq(memcmp(hole + 100, "end", 3), 0);
    cr_assert_eq(weft_close(fd), 0);

    /* O_APPEND writes go to the end whatever the position (libuv fs_file_open_append). */
    fd = weft_file_open(at("data"), O_WRONLY | O_APPEND, 0, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_write(fd, "++", 2, dl), 2);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(weft_file_stat(at("data"), &st, dl), 0);
    cr_assert_eq(st.st_size, 105);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, fs_reads_and_writes_at_offsets_and_past_eof, .timeout = 30)
{
    run_main(fs_rw_offsets_main, NULL);
}

/* libuv fs_read_bad_fd / fs_write_bad_fd / fs_fsync_bad_fd and fs_read_write_only: bad fds,
 * and fds opened for the other direction, are EBADF. */
static void *fs_bad_fds_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    int64_t dl = weft_deadline_in(SOON);
    char buf[8];
    put_file(at("f"), "abc");
    int fd = weft_file_open(at("f"), O_RDONLY, 0, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_write(fd, "x", 1, dl), -EBADF, "write to a read-only fd");
    cr_assert_eq(weft_file_pwrite(fd, "x", 1, 0, dl), -EBADF);
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, dl), 3);
    cr_assert_eq(weft_close(fd), 0);
    /* The number is closed now. */
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, dl), -EBADF, "read of a closed fd");
    cr_assert_eq(weft_file_write(fd, "x", 1, dl), -EBADF, "write to a closed fd");
    cr_assert_eq(weft_file_pread(fd, buf, 1, 0, dl), -EBADF);
    cr_assert_eq(weft_file_fsync(fd, dl), -EBADF, "fsync of a closed fd");
    cr_assert_eq(weft_close(fd), -EBADF, "close twice");
    cr_assert_eq(weft_file_read(-1, buf, 1, dl), -EBADF);
    cr_assert_eq(weft_file_fsync(-1, dl), -EBADF);

    fd = weft_file_open(at("f"), O_WRONLY, 0, dl);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_file_read(fd, buf, sizeof buf, dl), -EBADF, "read of a write-only fd");
    cr_assert_eq(weft_file_pread(fd, buf, sizeof buf, 0, dl), -EBADF);
    cr_assert_eq(weft_close(fd), 0);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, fs_bad_fds_are_ebadf, .timeout = 30)
{
    run_main(fs_bad_fds_main, NULL);
}

/* libuv fs_stat_missing_file, fs_rename_to_existing_file, fs_unlink_dir (EISDIR),
 * fs_mkdir_exists, fs_rmdir_non_empty, fs_rename_dir_over_non_empty: the tree's errors and
 * the replacement a rename makes. */
static void *fs_tree_errors_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    int64_t dl = weft_deadline_in(SOON);
    struct stat st;
    cr_assert_eq(weft_file_stat(at("missing"), &st, dl), -ENOENT);
    cr_assert_eq(weft_file_stat(at("missing/x"), &st, dl), -ENOENT);
    cr_assert_eq(weft_file_stat(tmpdir_root, &st, dl), 0);
    cr_assert(S_ISDIR(st.st_mode));

    put_file(at("a"), "AAA");
    put_file(at("b"), "B");
    cr_assert_eq(weft_file_stat(at("a/x"), &st, dl), -ENOTDIR);
    /* rename over an existing file replaces it. */
    cr_assert_eq(weft_fs_rename(at("a"), at("b"), 0, dl), 0);
    cr_assert_eq(weft_file_stat(at("a"), &st, dl), -ENOENT);
    cr_assert_eq(weft_file_stat(at("b"), &st, dl), 0);
    cr_assert_eq(st.st_size, 3, "b holds a's contents");
    cr_assert_eq(weft_fs_rename(at("a"), at("c"), 0, dl), -ENOENT);

    cr_assert_eq(weft_fs_mkdir(at("d"), 0700, dl), 0);
    cr_assert_eq(weft_fs_mkdir(at("d"), 0700, dl), -EEXIST);
    cr_assert_eq(weft_fs_mkdir(at("b"), 0700, dl), -EEXIST, "a file is there");
    cr_assert_eq(weft_fs_mkdir(at("b/sub"), 0700, dl), -ENOTDIR);
    cr_assert_eq(weft_fs_unlink(at("d"), dl), -EISDIR, "weft.h: not a directory: -EISDIR");
    cr_assert_eq(weft_fs_unlink(at("missing"), dl), -ENOENT);
    cr_assert_eq(weft_fs_rmdir(at("b"), dl), -ENOTDIR);
    put_file(at("d/inner"), "i");
    cr_assert_eq(weft_fs_rmdir(at("d"), dl), -ENOTEMPTY);
    /* A file renamed onto a directory, a directory onto a file, onto a non-empty directory. */
    cr_assert_eq(weft_fs_rename(at("b"), at("d"), 0, dl), -EISDIR);
    cr_assert_eq(weft_fs_rename(at("d"), at("b"), 0, dl), -ENOTDIR);
    cr_assert_eq(weft_fs_mkdir(at("e"), 0700, dl), 0);
    int r = weft_fs_rename(at("e"), at("d"), 0, dl);
    cr_assert(r == -ENOTEMPTY || r == -EEXIST, "onto a non-empty directory: %d", r);
    /* ...and onto an empty one, which it replaces. */
    cr_assert_eq(weft_fs_rename(at("d"), at("e"), 0, dl), 0);
    cr_assert_eq(weft_file_stat(at("e/inner"), &st, dl), 0);
    cr_assert_eq(weft_fs_unlink(at("e/inner"), dl), 0);
    cr_assert_eq(weft_fs_rmdir(at("e"), dl), 0);
    cr_assert_eq(weft_fs_rmdir(at("e"), dl), -ENOENT);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, fs_stat_rename_unlink_mkdir_errors, .timeout = 30)
{
    run_main(fs_tree_errors_main, NULL);
}

/* libuv fs_scandir_*, fs_readdir_empty_dir, fs_readdir_file, fs_readdir_non_existing_dir:
 * every entry once, "." and ".." left out, types where known, the end stays the end; an
 * empty directory ends at once; a file is ENOTDIR, a missing path ENOENT. */
static void *fs_readdir_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    int64_t dl = weft_deadline_in(SOON);
    weft_dir *d;
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, dl), 0);
    weft_dirent ent;
    cr_assert_eq(weft_dir_next(d, &ent, dl), 0, "an empty directory");
    cr_assert_eq(weft_dir_next(d, &ent, dl), 0, "and it stays ended");
    weft_dir_close(d);

    put_file(at("file1"), "1");
    put_file(at("file2"), "22");
    cr_assert_eq(weft_fs_mkdir(at("subdir"), 0700, dl), 0);
    cr_assert_eq(weft_fs_symlink("file1", at("link"), dl), 0);
    cr_assert_eq(weft_dir_open(&d, tmpdir_root, dl), 0);
    const char *names[] = {"file1", "file2", "subdir", "link"};
    const unsigned char types[] = {DT_REG, DT_REG, DT_DIR, DT_LNK};
    int seen[4] = {0};
    int r;
    while ((r = weft_dir_next(d, &ent, dl)) == 1) {
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(ent.name, names[i]))
                k = i;
        cr_assert_geq(k, 0, "unexpected entry \"%s\"", ent.name);
        seen[k]++;
        cr_assert(ent.type == types[k] || ent.type == DT_UNKNOWN, "type of %s: %d", ent.name,
                  ent.type);
        cr_assert_neq(ent.ino, 0);
    }
    cr_assert_eq(r, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(seen[i], 1, "%s seen %d times", names[i], seen[i]);
    cr_assert_eq(weft_dir_next(d, &ent, dl), 0);
    weft_dir_close(d);

    cr_assert_eq(weft_dir_open(&d, at("file1"), dl), -ENOTDIR);
    cr_assert_eq(weft_dir_open(&d, at("missing"), dl), -ENOENT);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, fs_readdir_lists_every_entry_once, .timeout = 30)
{
    run_main(fs_readdir_main, NULL);
}

/* ---- Processes (libuv test-spawn.c, Go os/exec) ----------------------------------------- */

static int run_child(const char *path, char *const argv[], char *const envp[], int *status)
{
    weft_process *p;
    int r = weft_process_spawn(&p, path, argv, envp, NULL);
    if (r < 0)
        return r;
    r = weft_process_wait(p, status, weft_deadline_in(SOON));
    weft_process_free(p);
    return r;
}

/* libuv spawn_exit_code / Go TestExitStatus: exit codes come back through the status. */
static void *exit_codes_main(void *arg)
{
    (void)arg;
    int st = -1;
    cr_assert_eq(run_child("/bin/true", (char *[]){"true", NULL}, NULL, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    cr_assert_eq(run_child("/bin/false", (char *[]){"false", NULL}, NULL, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x", st);
    cr_assert_eq(run_child("/bin/sh", (char *[]){"sh", "-c", "exit 42", NULL}, NULL, &st), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 42, "status 0x%x", st);
    /* A child that kills itself (libuv spawn_and_kill's status side). */
    cr_assert_eq(run_child("/bin/sh", (char *[]){"sh", "-c", "kill -TERM $$", NULL}, NULL, &st), 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status 0x%x", st);
    return NULL;
}

Test(ported, process_exit_codes_and_self_inflicted_signals, .timeout = 30)
{
    run_main(exit_codes_main, NULL);
}

/* libuv spawn_and_kill / Go TestKill, from a task of every worker: the children start with no
 * signal blocked (weft.h), although weft's workers other than 0 block them all, so SIGTERM
 * and SIGINT kill them. */
static void *spawn_and_term(void *arg)
{
    int sig = (int)(intptr_t)arg;
    weft_process *p;
    char *argv[] = {"sleep", "30", NULL};
    cr_assert_eq(weft_process_spawn(&p, "/bin/sleep", argv, NULL, NULL), 0);
    cr_assert_eq(weft_process_kill(p, sig), 0);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    weft_process_free(p);
    return (void *)(intptr_t)st;
}

static void *kill_from_every_worker_main(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < weft_worker_count(); k++) {
        int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
        for (int i = 0; i < 3; i++) {
            weft_task *t;
            cr_assert_eq(weft_spawn_on(k, &t, spawn_and_term, (void *)(intptr_t)sigs[i],
                                       &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                         0);
            int st = (int)(intptr_t)join_result(t);
            cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i],
                      "worker %u, signal %d: status 0x%x", k, sigs[i], st);
        }
    }
    return NULL;
}

Test(ported, process_killed_by_a_signal_from_any_worker, .timeout = 30)
{
    run_main(kill_from_every_worker_main, NULL);
}

/* weft.h: "SIGPIPE at its default action" in the child, although the parent ignores it
 * (ignore_sigpipe): a child writing to a pipe whose reader has gone dies of SIGPIPE (libuv
 * spawn_closed_process_io, Go TestStdinCloseRace's cousin). */
static void *child_sigpipe_main(void *arg)
{
    (void)arg;
    weft_process *p;
    char *argv[] = {"yes", NULL};
    cr_assert_eq(weft_process_spawn(&p, "/usr/bin/yes", argv, NULL,
                                    &(weft_process_opts){.flags = WEFT_PROCESS_STDOUT}),
                 0);
    char buf[16];
    int out = weft_process_stdio(p, 1);
    cr_assert_gt(weft_read(out, buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_process_close_stdio(p, 1), 0);
    cr_assert_eq(weft_process_close_stdio(p, 1), -EBADF, "closed already");
    cr_assert_eq(weft_process_stdio(p, 1), -EBADF);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE, "status 0x%x", st);
    weft_process_free(p);
    return NULL;
}

Test(ported, process_child_dies_of_sigpipe_by_default, .timeout = 30)
{
    run_main(child_sigpipe_main, NULL);
}

/* Go's TestStdinClose / libuv spawn_stdout_and_stderr_to_file's pipes: stdout and stderr are
 * separate pipes, argv and envp reach the child as given, stdin's EOF ends the child's read. */
static void *stdio_env_main(void *arg)
{
    (void)arg;
    weft_process *p;
    char *argv[] = {
        "sh", "-c",      "read line; echo \"out:$line:$WEFT_X:$1\"; echo err >&2; exit 3",
        "sh", "one two", NULL};
    char *envp[] = {"WEFT_X=fromenv", NULL};
    unsigned all = WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR;
    int r = weft_process_spawn(&p, "/bin/sh", argv, envp, &(weft_process_opts){.flags = all});
    cr_assert_eq(r, 0, "%s", weft_strerror(r));
    int in = weft_process_stdio(p, 0);
    cr_assert_geq(in, 0);
    cr_assert_eq(weft_write(in, "hi\n", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_process_close_stdio(p, 0), 0);
    char out[128], err[128];
    ssize_t n = read_to_eof(weft_process_stdio(p, 1), out, sizeof out - 1);
    cr_assert_geq(n, 0);
    out[n] = 0;
    cr_assert_str_eq(out, "out:hi:fromenv:one two\n");
    n = read_to_eof(weft_process_stdio(p, 2), err, sizeof err - 1);
    cr_assert_geq(n, 0);
    err[n] = 0;
    cr_assert_str_eq(err, "err\n");
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
    weft_process_free(p);

    /* A child that reads nothing and exits: the write to its stdin then fails with EPIPE,
     * never a SIGPIPE in the parent (libuv spawn_closed_process_io). */
    r = weft_process_spawn(&p, "/bin/true", (char *[]){"true", NULL}, NULL,
                           &(weft_process_opts){.flags = WEFT_PROCESS_STDIN});
    cr_assert_eq(r, 0);
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    static char big[256 * 1024];
    ssize_t w = weft_write(weft_process_stdio(p, 0), big, sizeof big, weft_deadline_in(SOON));
    cr_assert_eq(w, -EPIPE, "write to an exited child's stdin: %zd", w);
    weft_process_free(p);
    return NULL;
}

Test(ported, process_pipes_argv_env_and_epipe, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL); /* weft's ignore_sigpipe sets it aside */
    run_main(stdio_env_main, NULL);
}

/* libuv spawn_fails / spawn_fails_check_for_waitpid_cleanup / Go TestLookPathNotFound-style:
 * what cannot be executed is an error from the spawn, never a crash or a child. */
static void *spawn_fails_main(void *arg)
{
    (void)arg;
    tmpdir_make("weft-ported");
    weft_process *p = (weft_process *)1;
    char *argv[] = {"x", NULL};
    cr_assert_eq(weft_process_spawn(&p, at("missing"), argv, NULL, NULL), -ENOENT);
    put_file(at("data"), "not a program\n"); /* mode 0600: not executable */
    cr_assert_eq(weft_process_spawn(&p, at("data"), argv, NULL, NULL), -EACCES);
    cr_assert_eq(weft_process_spawn(&p, tmpdir_root, argv, NULL, NULL), -EACCES, "a directory");
    cr_assert_eq(weft_process_spawn(&p, "/bin/true", argv, NULL,
                                    &(weft_process_opts){.flags = WEFT_PROCESS_STDOUT}),
                 0, "and a good spawn still works");
    int st;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    weft_process_free(p);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, process_spawn_failures_are_errors, .timeout = 30)
{
    run_main(spawn_fails_main, NULL);
}

/* libuv kill_exited / process_ref's zombie case: signalling a child that has exited but is
 * not reaped is harmless (0 or -ESRCH), and its status stays its own exit; once reaped, kill
 * is -ESRCH (weft.h). A bad signal number is -EINVAL. */
static void *kill_exited_main(void *arg)
{
    (void)arg;
    weft_process *p;
    cr_assert_eq(weft_process_spawn(&p, "/bin/true", (char *[]){"true", NULL}, NULL, NULL), 0);
    /* Wait for the exit without reaping it (plain waitid with WNOWAIT: a brief block). */
    siginfo_t si = {0};
    cr_assert_eq(waitid(P_PID, (id_t)weft_process_pid(p), &si, WEXITED | WNOWAIT), 0);
    cr_assert_eq(si.si_code, CLD_EXITED);
    int r = weft_process_kill(p, SIGKILL);
    cr_assert(r == 0 || r == -ESRCH, "kill of an exited child: %d", r);
    cr_assert_eq(weft_process_kill(p, 12345), -EINVAL);
    int st = -1;
    cr_assert_eq(weft_process_wait(p, &st, weft_deadline_in(SOON)), 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "its own exit, not the kill: 0x%x", st);
    cr_assert_eq(weft_process_kill(p, SIGKILL), -ESRCH);
    cr_assert_eq(weft_process_kill(p, 0), -ESRCH);
    weft_process_free(p);
    return NULL;
}

Test(ported, process_kill_after_exit, .timeout = 30)
{
    run_main(kill_exited_main, NULL);
}

/* ---- Signals (libuv test-signal.c, test-signal-multiple-loops.c) ------------------------- */

static atomic_int sig_calls[3];

static void count_signal(weft_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    cr_assert_eq(fd, SIGUSR1);
    cr_assert(events & WEFT_WATCH_SIGNAL);
    atomic_fetch_add(&sig_calls[(intptr_t)arg], 1);
}

static void wait_calls(int which, int want)
{
    while (atomic_load(&sig_calls[which]) < want)
        cr_assert_eq(weft_yield(), 0);
}

/* libuv signal_multiple_loops' one-loop form and we_get_signals: a persistent watch's callback
 * runs once per signal; after weft_watch_del it runs no more, and a signal raised then stays
 * pending (it remains blocked) for a later weft_signal_wait (libuv's uv_signal_stop). */
static void *signal_watch_main(void *arg)
{
    (void)arg;
    atomic_store(&sig_calls[0], 0);
    weft_watch *w;
    cr_assert_eq(weft_watch_add(&w, SIGUSR1, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0,
                                count_signal, (void *)0),
                 0);
    for (int i = 1; i <= 5; i++) {
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        wait_calls(0, i);
    }
    cr_assert_eq(weft_watch_del(w), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(SOON)), SIGUSR1);
    cr_assert_eq(atomic_load(&sig_calls[0]), 5, "the deleted watch did not run");

    /* A one-shot watch fires once, however many signals follow. */
    cr_assert_eq(weft_watch_add(&w, SIGUSR1, WEFT_WATCH_SIGNAL, 0, count_signal, (void *)0), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    wait_calls(0, 6);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(weft_signal_wait(&set, weft_deadline_in(SOON)), SIGUSR1, "left for the wait");
    cr_assert_eq(atomic_load(&sig_calls[0]), 6);
    cr_assert_eq(weft_watch_del(w), 0);
    return NULL;
}

Test(ported, signal_watch_runs_per_signal_and_stops, .timeout = 30)
{
    run_main(signal_watch_main, NULL);
}

/* Several waiters of one signal. weft.h: weft_signal_wait returns the signal "consuming it",
 * so each signal goes to exactly one of the tasks waiting for it, none is lost, and every
 * waiter stays parked meanwhile (Go's signal.Notify on one channel read by several
 * goroutines). */
static atomic_int nsig_got[2];

static void *sig_counter(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    while (weft_signal_wait(&set, WEFT_FOREVER) == SIGUSR1)
        atomic_fetch_add(&nsig_got[(intptr_t)arg], 1);
    return NULL;
}

static void *several_waiters_main(void *arg)
{
    (void)arg;
    atomic_store(&nsig_got[0], 0);
    atomic_store(&nsig_got[1], 0);
    weft_task *a = spawn_pinned(sig_counter, (void *)0);
    weft_task *b = spawn_pinned(sig_counter, (void *)1);
    wait_parked(a);
    wait_parked(b);
    for (int i = 1; i <= 6; i++) {
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        while (atomic_load(&nsig_got[0]) + atomic_load(&nsig_got[1]) < i)
            cr_assert_eq(weft_yield(), 0);
        wait_parked(a);
        wait_parked(b);
        cr_assert_eq(atomic_load(&nsig_got[0]) + atomic_load(&nsig_got[1]), i,
                     "signal %d was taken once", i);
    }
    weft_cancel(a);
    weft_cancel(b);
    join_result(a);
    join_result(b);
    return NULL;
}

Test(ported, each_signal_goes_to_one_of_several_waiters, .timeout = 30)
{
    run_main(several_waiters_main, NULL);
}

/* libuv we_get_signals / signal_multiple_loops (and Tokio's several signal() streams, Go's
 * signal.Notify on several channels): every watcher of a signal is called for each
 * occurrence, and when one goes (here whichever reads the signal for the others, then the
 * other), the rest still are. */
static void *two_watches_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        atomic_store(&sig_calls[i], 0);
    weft_watch *w[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_watch_add(&w[i], SIGUSR1, WEFT_WATCH_SIGNAL | WEFT_WATCH_PERSIST, 0,
                                    count_signal, (void *)(intptr_t)i),
                     0);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        for (int k = 0; k < 3; k++)
            wait_calls(k, i);
    }
    for (int gone = 0; gone < 2; gone++) {
        cr_assert_eq(weft_watch_del(w[gone]), 0);
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        for (int k = gone + 1; k < 3; k++)
            wait_calls(k, 4 + gone);
        cr_assert_eq(atomic_load(&sig_calls[gone]), 3 + gone, "a deleted watch was called");
    }
    cr_assert_eq(weft_watch_del(w[2]), 0);
    return NULL;
}

Test(ported, every_watch_of_a_signal_is_called, .timeout = 30)
{
    run_main(two_watches_main, NULL);
}

/* A cancelled signal wait returns -ECANCELED and consumes nothing (Tokio's signal stream
 * dropped): the signal raised afterwards goes to the next wait. */
static void *signal_waiter(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    return (void *)(intptr_t)weft_signal_wait(&set, WEFT_FOREVER);
}

static void *signal_cancel_main(void *arg)
{
    (void)arg;
    weft_task *t = spawn_pinned(signal_waiter, NULL);
    wait_parked(t);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    t = spawn_pinned(signal_waiter, NULL);
    wait_parked(t);
    cr_assert_eq(kill(getpid(), SIGUSR2), 0);
    cr_assert_eq(join_result(t), (void *)(intptr_t)SIGUSR2);
    return NULL;
}

Test(ported, signal_wait_cancelled_then_delivered, .timeout = 30)
{
    run_main(signal_cancel_main, NULL);
}

/* ---- TCP, UDP and pipes (libuv test-tcp-*.c, test-udp-*.c, test-pipe-*.c) ---------------- */

/* libuv tcp_shutdown_after_write / Tokio's shutdown tests: data written before a shutdown
 * all arrives, then EOF; the other direction still works; a write after our own shutdown is
 * EPIPE (Go TestCloseWrite). */
enum { SHUT_BYTES = 300 * 1024 };

static void *shut_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char *buf = malloc(SHUT_BYTES);
    for (size_t i = 0; i < SHUT_BYTES; i++)
        buf[i] = pattern(i);
    ssize_t n = weft_write(fd, buf, SHUT_BYTES, weft_deadline_in(SOON));
    free(buf);
    cr_assert_eq(n, SHUT_BYTES);
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *half_close_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_task *w = spawn_pinned(shut_writer, (void *)(intptr_t)p[0]);
    char *got = malloc(SHUT_BYTES + 1);
    ssize_t n = read_to_eof(p[1], got, SHUT_BYTES + 1);
    cr_assert_eq(n, SHUT_BYTES);
    for (size_t i = 0; i < SHUT_BYTES; i++)
        if ((unsigned char)got[i] != pattern(i))
            cr_assert_fail("byte %zu", i);
    free(got);
    join_result(w);
    char c;
    cr_assert_eq(weft_read(p[1], &c, 1, 0), 0, "EOF stays");
    ssize_t e = weft_write(p[0], "x", 1, weft_deadline_in(SOON));
    cr_assert_eq(e, -EPIPE, "write after our own shutdown: %zd", e);
    /* The reverse direction is open: reply, then close. */
    cr_assert_eq(weft_write(p[1], "reply", 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(weft_close(p[1]), 0);
    char buf[8];
    cr_assert_eq(read_to_eof(p[0], buf, sizeof buf), 5);
    cr_assert_eq(memcmp(buf, "reply", 5), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    return NULL;
}

Test(ported, tcp_half_close_delivers_everything_then_eof, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL);
    run_main(half_close_main, NULL);
}

/* libuv tcp_close_reset / tcp_read_after_reset (Go TestReadAfterReset): a peer that closes
 * with SO_LINGER 0 resets the connection; a read then fails with ECONNRESET, not EOF. */
static void *reset_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(p[0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    cr_assert_eq(weft_close(p[0]), 0);
    char c;
    ssize_t n = weft_read(p[1], &c, 1, weft_deadline_in(SOON));
    cr_assert_eq(n, -ECONNRESET, "read after a reset: %zd", n);
    cr_assert_eq(weft_close(p[1]), 0);

    /* The same with the reader parked before the reset arrives. */
    tcp_pair(p);
    cr_assert_eq(setsockopt(p[0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    weft_task *t = spawn_pinned(read_one, (void *)(intptr_t)p[1]);
    wait_parked(t);
    cr_assert_eq(weft_close(p[0]), 0);
    cr_assert_eq(join_result(t), (void *)(intptr_t)-ECONNRESET);
    cr_assert_eq(weft_close(p[1]), 0);
    return NULL;
}

Test(ported, tcp_read_after_a_reset_is_econnreset, .timeout = 30)
{
    run_main(reset_main, NULL);
}

/* libuv tcp_bind_error_addrinuse_listen / udp_bind_reuseaddr's error side / pipe_bind_error_
 * addrinuse: a second listener on a port (or path) in use is EADDRINUSE, and leaves the first
 * working. Listening on port 0 takes a free port that weft_addr_local reads back (libuv
 * tcp_bind0 / tcp_getsockname, Go TestListenerPort0-style). */
static void *addrinuse_main(void *arg)
{
    (void)arg;
    weft_addr a1, a2;
    int l1 = listener(&a1);
    int l2 = listener(&a2);
    int port1 = weft_addr_port(&a1), port2 = weft_addr_port(&a2);
    cr_assert_gt(port1, 0);
    cr_assert_gt(port2, 0);
    cr_assert_neq(port1, port2, "two port-0 listeners get two ports");
    cr_assert_eq(weft_listen(&a1, 0, 0), -EADDRINUSE);
    /* The first still accepts, and the accepted peer's address is the dialler's. */
    int c = weft_dial(&a1, weft_deadline_in(SOON));
    cr_assert_geq(c, 0);
    weft_addr peer = {.len = sizeof peer.ss}, local;
    int s = weft_accept(l1, (struct sockaddr *)&peer.ss, &peer.len, weft_deadline_in(SOON));
    cr_assert_geq(s, 0);
    cr_assert_eq(weft_addr_local(c, &local), 0);
    cr_assert_eq(weft_addr_port(&peer), weft_addr_port(&local));
    cr_assert_eq(weft_addr_local(s, &local), 0);
    cr_assert_eq(weft_addr_port(&local), port1);
    weft_close(c);
    weft_close(s);
    weft_close(l1);
    weft_close(l2);

    /* UDP: a bound port is in use for a second bind. */
    weft_addr u, ub;
    cr_assert_eq(weft_addr_ip(&u, "127.0.0.1", 0), 0);
    int d1 = weft_datagram(&u, 0);
    cr_assert_geq(d1, 0);
    cr_assert_eq(weft_addr_local(d1, &ub), 0);
    cr_assert_gt(weft_addr_port(&ub), 0);
    cr_assert_eq(weft_datagram(&ub, 0), -EADDRINUSE);
    weft_close(d1);

    /* A Unix path that exists is in use. */
    tmpdir_make("weft-ported");
    weft_addr ua;
    cr_assert_eq(weft_addr_unix(&ua, at("sock")), 0);
    int p1 = weft_listen(&ua, 0, 0);
    cr_assert_geq(p1, 0, "%s", weft_strerror(p1));
    cr_assert_eq(weft_listen(&ua, 0, 0), -EADDRINUSE);
    int pc = weft_dial(&ua, weft_deadline_in(SOON));
    cr_assert_geq(pc, 0, "the first listener still works");
    int ps = weft_accept(p1, NULL, NULL, weft_deadline_in(SOON));
    cr_assert_geq(ps, 0);
    weft_close(pc);
    weft_close(ps);
    weft_close(p1);
    /* A path with no listener behind it: ENOENT when missing (libuv pipe_connect_bad_name),
     * ECONNREFUSED when the socket file is left over. */
    weft_addr none;
    cr_assert_eq(weft_addr_unix(&none, at("nobody")), 0);
    cr_assert_eq(weft_dial(&none, weft_deadline_in(SOON)), -ENOENT);
    cr_assert_eq(weft_dial(&ua, weft_deadline_in(SOON)), -ECONNREFUSED);
    remove_tree(tmpdir_root);
    return NULL;
}

Test(ported, bind_in_use_is_eaddrinuse_and_port_zero_reads_back, .timeout = 30)
{
    run_main(addrinuse_main, NULL);
}

/* libuv tcp_write_queue_order / tcp_writealot with tiny writes (Tokio's many small
 * write_all calls): thousands of one-byte writes, and of small writev calls, arrive whole and
 * in order, however the stack coalesces them. */
enum { NSMALL = 4000 };

static void *small_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (size_t i = 0; i < NSMALL; i++) {
        unsigned char b = pattern(i);
        cr_assert_eq(weft_write(fd, &b, 1, weft_deadline_in(SOON)), 1);
    }
    for (size_t i = 0; i < NSMALL; i += 4) {
        unsigned char b[4] = {pattern(NSMALL + i), pattern(NSMALL + i + 1), pattern(NSMALL + i + 2),
                              pattern(NSMALL + i + 3)};
        struct iovec iov[3] = {{b, 1}, {b + 1, 0}, {b + 1, 3}};
        cr_assert_eq(weft_writev(fd, iov, 3, weft_deadline_in(SOON)), 4);
    }
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *small_writes_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_task *w = spawn_pinned(small_writer, (void *)(intptr_t)p[0]);
    unsigned char *got = malloc(2 * NSMALL + 1);
    ssize_t n = read_to_eof(p[1], (char *)got, 2 * NSMALL + 1);
    cr_assert_eq(n, 2 * NSMALL);
    for (size_t i = 0; i < 2 * NSMALL; i++)
        cr_assert_eq(got[i], pattern(i), "byte %zu", i);
    free(got);
    join_result(w);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(ported, many_small_writes_arrive_whole_and_in_order, .timeout = 30)
{
    run_main(small_writes_main, NULL);
}

/* libuv udp_send_and_recv, udp_send_immediate/udp_try_send with empty payloads, and Go's
 * TestUDPZeroBytePayload / TestUDPReadSizeError: a zero-length datagram is received as a
 * datagram of length 0 (not lost, and not taken for a closed socket), a datagram larger than
 * the buffer is cut to it and its rest dropped, and recvfrom reports the sender. */
static void *udp_main(void *arg)
{
    (void)arg;
    weft_addr a, sa, ca;
    cr_assert_eq(weft_addr_ip(&a, "127.0.0.1", 0), 0);
    int s = weft_datagram(&a, 0);
    int c = weft_datagram(&a, 0);
    cr_assert_geq(s, 0);
    cr_assert_geq(c, 0);
    cr_assert_eq(weft_addr_local(s, &sa), 0);
    cr_assert_eq(weft_addr_local(c, &ca), 0);
    const struct sockaddr *to = (const struct sockaddr *)&sa.ss;
    int64_t dl = weft_deadline_in(SOON);

    cr_assert_eq(weft_sendto(c, "", 0, 0, to, sa.len, dl), 0);
    char buf[64];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = weft_recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen, dl);
    cr_assert_eq(n, 0, "an empty datagram: %zd", n);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&from)->sin_port), weft_addr_port(&ca));
    /* The next datagram is the next one, not another 0. */
    cr_assert_eq(weft_sendto(c, "next", 4, 0, to, sa.len, dl), 4);
    cr_assert_eq(weft_recvfrom(s, buf, sizeof buf, 0, NULL, NULL, dl), 4);
    cr_assert_eq(memcmp(buf, "next", 4), 0);

    /* An empty datagram read by a task parked before it came. */
    weft_task *t = spawn_pinned(read_one, (void *)(intptr_t)s);
    wait_parked(t);
    cr_assert_eq(weft_sendto(c, "", 0, 0, to, sa.len, dl), 0);
    cr_assert_eq(join_result(t), (void *)0);

    /* Truncation: 100 bytes into 10; the rest is gone. */
    char big[100];
    memset(big, 'z', sizeof big);
    cr_assert_eq(weft_sendto(c, big, sizeof big, 0, to, sa.len, dl), 100);
    cr_assert_eq(weft_sendto(c, "tail", 4, 0, to, sa.len, dl), 4);
    cr_assert_eq(weft_recv(s, buf, 10, 0, dl), 10);
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, dl), 4, "the cut datagram's rest is dropped");
    cr_assert_eq(memcmp(buf, "tail", 4), 0);
    cr_assert_eq(weft_recv(s, buf, sizeof buf, 0, 0), -ETIMEDOUT, "nothing more");
    weft_close(s);
    weft_close(c);
    return NULL;
}

Test(ported, udp_empty_and_truncated_datagrams, .timeout = 30)
{
    run_main(udp_main, NULL);
}

/* libuv pipe_close_stdout_read_stdin / pipe_set_non_blocking and Go's TestPipeEOF-style
 * checks on plain pipes made by the caller: the reader sees the data, then EOF once the
 * writer closes (also when parked before the close); a write to a pipe whose reader has
 * gone is EPIPE, not SIGPIPE; a zero-length read returns 0 at once. */
static void *pipe_main(void *arg)
{
    (void)arg;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_write(fds[1], "abc", 3, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_close(fds[1]), 0);
    char buf[8];
    cr_assert_eq(weft_read(fds[0], buf, sizeof buf, weft_deadline_in(SOON)), 3);
    cr_assert_eq(weft_read(fds[0], buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_read(fds[0], buf, sizeof buf, 0), 0, "EOF stays");
    cr_assert_eq(weft_close(fds[0]), 0);

    cr_assert_eq(pipe(fds), 0);
    weft_task *t = spawn_pinned(read_one, (void *)(intptr_t)fds[0]);
    wait_parked(t);
    cr_assert_eq(weft_close(fds[1]), 0);
    cr_assert_eq(join_result(t), (void *)0, "a parked reader wakes with EOF");
    cr_assert_eq(weft_close(fds[0]), 0);

    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_read(fds[0], buf, 0, WEFT_FOREVER), 0, "zero-length read");
    cr_assert_eq(weft_write(fds[1], buf, 0, WEFT_FOREVER), 0, "zero-length write");
    cr_assert_eq(weft_close(fds[0]), 0);
    ssize_t n = weft_write(fds[1], "x", 1, weft_deadline_in(SOON));
    cr_assert_eq(n, -EPIPE, "write with no reader: %zd", n);
    cr_assert_eq(weft_close(fds[1]), 0);
    return NULL;
}

Test(ported, pipe_eof_epipe_and_zero_length_io, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL);
    run_main(pipe_main, NULL);
}

/* Tokio's "read with an empty buffer" and libuv's tcp_write_zero: zero-length reads and
 * writes on a connected socket return 0 without waiting for data. */
static void *zero_len_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    char buf[4];
    cr_assert_eq(weft_read(p[1], buf, 0, WEFT_FOREVER), 0);
    /* (Not weft_recv: recv(2) of 0 bytes waits for data on a stream socket, and weft_recv
     * does as recv does.) */
    cr_assert_eq(weft_write(p[0], buf, 0, WEFT_FOREVER), 0);
    cr_assert_eq(weft_send(p[0], buf, 0, 0, WEFT_FOREVER), 0);
    /* And after a real read (io_uring arms a receive at the first one). */
    cr_assert_eq(weft_write(p[0], "ab", 2, WEFT_FOREVER), 2);
    read_exactly(p[1], buf, 1);
    cr_assert_eq(weft_read(p[1], buf, 0, WEFT_FOREVER), 0);
    read_exactly(p[1], buf + 1, 1);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    cr_assert_eq(weft_read(p[1], buf, 0, WEFT_FOREVER), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(ported, zero_length_socket_io_returns_at_once, .timeout = 30)
{
    run_main(zero_len_main, NULL);
}

/* ---- Tokio io: read_exact, write_all, copy, split ---------------------------------------- */

/* Tokio io_read_exact's early-EOF case: weft.h promises the count read (fewer than asked) at
 * the end of the stream, then 0. */
static void *read_exact_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_stream *s;
    cr_assert_eq(weft_stream_open(&s, p[1], NULL), 0);
    cr_assert_eq(weft_write(p[0], "0123456789abcd", 14, WEFT_FOREVER), 14);
    cr_assert_eq(weft_shutdown(p[0], SHUT_WR), 0);
    char buf[16];
    cr_assert_eq(weft_stream_read_exact(s, buf, 10, weft_deadline_in(SOON)), 10);
    cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
    cr_assert_eq(weft_stream_read_exact(s, buf, 10, weft_deadline_in(SOON)), 4, "early EOF");
    cr_assert_eq(memcmp(buf, "abcd", 4), 0);
    cr_assert_eq(weft_stream_read_exact(s, buf, 10, weft_deadline_in(SOON)), 0, "then 0");
    cr_assert_eq(weft_stream_read(s, buf, sizeof buf, weft_deadline_in(SOON)), 0);
    cr_assert_eq(weft_stream_close(s, weft_deadline_in(SOON)), 0);
    weft_close(p[0]);
    return NULL;
}

Test(ported, read_exact_returns_the_short_count_at_eof, .timeout = 30)
{
    run_main(read_exact_main, NULL);
}

/* Tokio io_write_all / tcp_stream's write to a closed peer: buffered writes and the flush
 * fail with EPIPE or ECONNRESET once the peer has gone, never SIGPIPE. */
static void *write_all_closed_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_stream *s;
    cr_assert_eq(weft_stream_open(&s, p[0], NULL), 0);
    cr_assert_eq(weft_close(p[1]), 0);
    static char chunk[64 * 1024];
    ssize_t r = 0;
    for (int i = 0; i < 200 && r >= 0; i++) {
        r = weft_stream_write(s, chunk, sizeof chunk, weft_deadline_in(SOON));
        if (r >= 0)
            r = weft_stream_flush(s, weft_deadline_in(SOON));
    }
    cr_assert(r == -EPIPE || r == -ECONNRESET, "write_all to a closed peer: %zd", r);
    int c = weft_stream_close(s, weft_deadline_in(SOON));
    cr_assert(c == 0 || c == -EPIPE || c == -ECONNRESET, "close: %d", c);
    return NULL;
}

Test(ported, write_all_to_a_closed_peer_fails, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL);
    run_main(write_all_closed_main, NULL);
}

/* Tokio io_copy / copy_bidirectional: a task copies one connection into another until EOF
 * (and passes the EOF on with a shutdown); every byte arrives in order and the copy's count
 * is the total. */
enum { COPY_BYTES = 1 << 20 };

struct copy_args {
    int from, to;
};

static void *copier(void *arg)
{
    struct copy_args *a = arg;
    char buf[7000]; /* not a power of two: the chunks do not line up with the writer's */
    int64_t total = 0;
    for (;;) {
        ssize_t n = weft_read(a->from, buf, sizeof buf, weft_deadline_in(SOON));
        cr_assert_geq(n, 0, "%s", weft_strerror((int)n));
        if (n == 0)
            break;
        cr_assert_eq(weft_write(a->to, buf, (size_t)n, weft_deadline_in(SOON)), n);
        total += n;
    }
    cr_assert_eq(weft_shutdown(a->to, SHUT_WR), 0);
    return (void *)(intptr_t)total;
}

static void *copy_source(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char *buf = malloc(COPY_BYTES);
    for (size_t i = 0; i < COPY_BYTES; i++)
        buf[i] = pattern(i);
    cr_assert_eq(weft_write(fd, buf, COPY_BYTES, weft_deadline_in(SOON)), COPY_BYTES);
    free(buf);
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *copy_main(void *arg)
{
    (void)arg;
    int a[2], b[2];
    tcp_pair(a);
    tcp_pair(b);
    struct copy_args ca = {a[1], b[0]};
    weft_task *src = spawn_pinned(copy_source, (void *)(intptr_t)a[0]);
    weft_task *cp = spawn_pinned(copier, &ca);
    char *got = malloc(COPY_BYTES + 1);
    cr_assert_eq(read_to_eof(b[1], got, COPY_BYTES + 1), COPY_BYTES);
    for (size_t i = 0; i < COPY_BYTES; i++)
        if ((unsigned char)got[i] != pattern(i))
            cr_assert_fail("byte %zu", i);
    free(got);
    join_result(src);
    cr_assert_eq(join_result(cp), (void *)(intptr_t)COPY_BYTES);
    for (int i = 0; i < 2; i++) {
        weft_close(a[i]);
        weft_close(b[i]);
    }
    return NULL;
}

Test(ported, copy_between_connections_until_eof, .timeout = 30)
{
    run_main(copy_main, NULL);
}

/* Tokio's TcpStream::split / into_split used from two tasks: one task writes the socket
 * while another (on another worker where there is one) reads it, against an echo peer. The
 * reads stay on the worker of the first read (weft.h, io_uring); the writes come from
 * elsewhere. */
enum { SPLIT_BYTES = 512 * 1024 };

static void *split_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char buf[4096];
    for (size_t off = 0; off < SPLIT_BYTES; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = pattern(off + i);
        cr_assert_eq(weft_write(fd, buf, sizeof buf, weft_deadline_in(SOON)), sizeof buf);
    }
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *echo_peer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[3000];
    for (;;) {
        ssize_t n = weft_read(fd, buf, sizeof buf, weft_deadline_in(SOON));
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        cr_assert_eq(weft_write(fd, buf, (size_t)n, weft_deadline_in(SOON)), n);
    }
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *split_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char *got = malloc(SPLIT_BYTES + 1);
    ssize_t n = read_to_eof(fd, (char *)got, SPLIT_BYTES + 1);
    cr_assert_eq(n, SPLIT_BYTES);
    for (size_t i = 0; i < SPLIT_BYTES; i++)
        if (got[i] != pattern(i))
            cr_assert_fail("byte %zu", i);
    free(got);
    return NULL;
}

static void *split_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    unsigned other = weft_worker_count() > 1 ? 1 : 0;
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    weft_task *echo = spawn_pinned(echo_peer, (void *)(intptr_t)p[1]);
    weft_task *rd, *wr;
    cr_assert_eq(weft_spawn_on(other, &rd, split_reader, (void *)(intptr_t)p[0], &pin), 0);
    wr = spawn_pinned(split_writer, (void *)(intptr_t)p[0]);
    join_result(wr);
    join_result(rd);
    join_result(echo);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(ported, split_halves_used_from_two_tasks, .timeout = 30)
{
    run_main(split_main, NULL);
}

/* ---- Tokio JoinHandle::abort of a task parked in each kind of wait ---------------------- */

/* Tokio's task::abort tests (abort a task blocked on I/O, a timer, a channel, a lock, another
 * task), libuv's uv_close of an active handle: a task parked in any blocking call, on any
 * worker, is woken by weft_cancel; its call returns -ECANCELED, its join WEFT_CANCELED, and
 * what it waited on is left intact for others. */
struct parked {
    int kind;
    int fd;               /* listener, socket */
    weft_chan *chan;      /* empty channel */
    weft_mutex *mutex;    /* held by the main task */
    weft_task *other;     /* a task to join */
    weft_future *pending; /* a future that never completes */
    weft_stream *stream;  /* over a socket with nothing to read */
    weft_event *event;    /* never set */
    int rc;               /* what the call returned */
};

enum {
    P_ACCEPT,
    P_READ,
    P_FD_WAIT,
    P_SLEEP,
    P_CHAN,
    P_MUTEX,
    P_JOIN,
    P_AWAIT,
    P_STREAM,
    P_EVENT,
    P_NKINDS
};
static const char *const kind_names[] = {"accept", "read", "fd_wait", "sleep",  "chan",
                                         "mutex",  "join", "await",   "stream", "event"};

static void *parks(void *arg)
{
    struct parked *p = arg;
    char buf[8];
    switch (p->kind) {
    case P_ACCEPT:
        p->rc = weft_accept(p->fd, NULL, NULL, WEFT_FOREVER);
        break;
    case P_READ:
        p->rc = (int)weft_read(p->fd, buf, sizeof buf, WEFT_FOREVER);
        break;
    case P_FD_WAIT:
        p->rc = weft_fd_wait(p->fd, WEFT_READABLE, WEFT_FOREVER);
        break;
    case P_SLEEP:
        p->rc = weft_sleep(1000 * WEFT_SEC);
        break;
    case P_CHAN:
        p->rc = weft_chan_recv(p->chan, buf, WEFT_FOREVER);
        break;
    case P_MUTEX:
        p->rc = weft_mutex_lock(p->mutex, WEFT_FOREVER);
        break;
    case P_JOIN:
        p->rc = weft_join(p->other, NULL, WEFT_FOREVER);
        break;
    case P_AWAIT:
        p->rc = weft_await(p->pending, NULL, WEFT_FOREVER);
        break;
    case P_STREAM:
        p->rc = (int)weft_stream_read(p->stream, buf, sizeof buf, WEFT_FOREVER);
        break;
    case P_EVENT:
        p->rc = weft_event_wait(p->event, WEFT_FOREVER);
        break;
    }
    return (void *)7;
}

static void *abort_parked_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int p[2], q[2];
    tcp_pair(p);
    tcp_pair(q);
    weft_chan *ch;
    cr_assert_eq(weft_chan_create(&ch, 8, 1), 0);
    weft_mutex mu = WEFT_MUTEX_INIT;
    cr_assert_eq(weft_mutex_lock(&mu, WEFT_FOREVER), 0);
    weft_event ev = WEFT_EVENT_INIT;
    weft_future *pend;
    cr_assert_eq(weft_future_pending(&pend), 0);
    weft_stream *st;
    cr_assert_eq(weft_stream_open(&st, q[1], NULL), 0);
    weft_event gate = WEFT_EVENT_INIT;

    for (unsigned k = 0; k < weft_worker_count(); k++) {
        for (int kind = 0; kind < P_NKINDS; kind++) {
            /* Socket reads and the stream stay on the worker of their first read (io_uring:
             * weft.h), and the future awaited belongs to this worker's tasks only. */
            unsigned where =
                (kind == P_READ || kind == P_STREAM || kind == P_FD_WAIT || kind == P_AWAIT) ? 0
                                                                                             : k;
            if (where != k)
                continue;
            weft_task *other = NULL;
            if (kind == P_JOIN)
                other = spawn_pinned(wait_event_task, &gate);
            struct parked pk = {.kind = kind,
                                .fd = kind == P_ACCEPT ? lfd : p[1],
                                .chan = ch,
                                .mutex = &mu,
                                .other = other,
                                .pending = pend,
                                .stream = st,
                                .event = &ev,
                                .rc = 1};
            weft_task *t;
            cr_assert_eq(weft_spawn_on(where, &t, parks, &pk,
                                       &(weft_spawn_opts){.flags = WEFT_SPAWN_PINNED}),
                         0);
            wait_parked(t);
            cr_assert_eq(weft_cancel(t), 0);
            void *res = NULL;
            int jr = weft_join(t, &res, WEFT_FOREVER);
            cr_assert_eq(jr, 0, "join of %s on worker %u: %d", kind_names[kind], k, jr);
            cr_assert_eq(res, WEFT_CANCELED, "%s on worker %u", kind_names[kind], k);
            cr_assert_eq(pk.rc, -ECANCELED, "%s on worker %u: %d", kind_names[kind], k, pk.rc);
            if (other) {
                /* The joined task is untouched: it finishes when told, and joins normally. */
                cr_assert_neq(weft_task_status(other), WEFT_TASK_CANCELLED);
                cr_assert_eq(weft_event_set(&gate), 0);
                jr = weft_join(other, &res, WEFT_FOREVER);
                cr_assert_eq(jr, 0, "join of the joined task, worker %u: %d", k, jr);
                cr_assert_eq(res, (void *)0);
                cr_assert_eq(weft_event_reset(&gate), 0);
            }
        }
    }
    /* What they waited on works on. */
    int c = weft_dial(&srv, weft_deadline_in(SOON));
    cr_assert_geq(c, 0);
    int s = weft_accept(lfd, NULL, NULL, weft_deadline_in(SOON));
    cr_assert_geq(s, 0, "the listener still accepts");
    weft_close(c);
    weft_close(s);
    cr_assert_eq(weft_write(p[0], "r", 1, WEFT_FOREVER), 1);
    char b;
    read_exactly(p[1], &b, 1);
    cr_assert_eq(b, 'r', "no byte was taken by a cancelled read");
    cr_assert_eq(weft_write(q[0], "s", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_stream_read(st, &b, 1, weft_deadline_in(SOON)), 1);
    cr_assert_eq(b, 's');
    uint64_t v = 9;
    cr_assert_eq(weft_chan_send(ch, &v, WEFT_FOREVER), 0);
    cr_assert_eq(weft_chan_recv(ch, &v, WEFT_FOREVER), 0);
    cr_assert_eq(v, 9);
    cr_assert_eq(weft_mutex_unlock(&mu), 0);
    cr_assert_eq(weft_mutex_lock(&mu, 0), 0, "no cancelled waiter holds the lock");
    cr_assert_eq(weft_mutex_unlock(&mu), 0);
    weft_future_destroy(pend);
    weft_stream_close(st, weft_deadline_in(SOON));
    weft_chan_release(ch);
    weft_close(lfd);
    for (int i = 0; i < 2; i++)
        weft_close(p[i]);
    weft_close(q[0]);
    return NULL;
}

Test(ported, abort_a_task_parked_in_each_kind_of_wait, .timeout = 30)
{
    run_main(abort_parked_main, NULL);
}

/* Tokio's JoinHandle after a timed-out `timeout(handle)` / a dropped join future: a join
 * that gave up (its deadline passed) from a task of another worker leaves the handle valid
 * (weft.h), so another task may then join it, or detach it. */
struct given_up {
    weft_task *target;
    int rc;
};

static void *join_briefly(void *arg)
{
    struct given_up *g = arg;
    g->rc = weft_join(g->target, NULL, weft_deadline_in(WEFT_MSEC));
    return NULL;
}

static void *given_up_join_main(void *arg)
{
    (void)arg;
    if (weft_worker_count() < 2)
        return NULL; /* the remote join needs a second worker */
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    for (int detach = 0; detach < 2; detach++) {
        weft_event gate = WEFT_EVENT_INIT;
        struct given_up g = {.target = spawn_pinned(wait_event_task, &gate), .rc = 1};
        weft_task *j;
        cr_assert_eq(weft_spawn_on(1, &j, join_briefly, &g, &pin), 0);
        cr_assert_eq(join_result(j), NULL);
        cr_assert_eq(g.rc, -ETIMEDOUT);
        if (detach) {
            cr_assert_eq(weft_detach(g.target), 0, "detach after a given-up remote join");
            cr_assert_eq(weft_event_set(&gate), 0);
            /* The detached task finishes on its own; let it, before `gate` goes. */
            while (weft_task_status(g.target) != -ESRCH &&
                   weft_task_status(g.target) != WEFT_TASK_FINISHED)
                cr_assert_eq(weft_yield(), 0);
        } else {
            cr_assert_eq(weft_event_set(&gate), 0);
            void *r = (void *)1;
            cr_assert_eq(weft_join(g.target, &r, WEFT_FOREVER), 0,
                         "join after a given-up remote join");
            cr_assert_eq(r, NULL);
        }
    }
    return NULL;
}

Test(ported, a_given_up_remote_join_leaves_the_handle_joinable, .timeout = 30)
{
    run_main(given_up_join_main, NULL);
}

/* Tokio's spawn_blocking abort: a task cancelled while its blocking-pool job runs does not
 * finish before the job (weft.h: a job that started runs to completion and the call waits
 * for it), so what the job borrows from the task's frame stays valid. */
static atomic_int job_started, job_release, job_done;

static void *slow_job(void *arg)
{
    (void)arg;
    atomic_store(&job_started, 1);
    while (!atomic_load(&job_release))
        usleep(100);
    atomic_store(&job_done, 1);
    return (void *)3;
}

static void *blocking_caller(void *arg)
{
    int *rc = arg;
    void *res = NULL;
    *rc = weft_blocking(slow_job, NULL, &res, WEFT_FOREVER);
    return res;
}

static void *abort_blocking_main(void *arg)
{
    (void)arg;
    atomic_store(&job_started, 0);
    atomic_store(&job_release, 0);
    atomic_store(&job_done, 0);
    int rc = 1;
    weft_task *t = spawn_pinned(blocking_caller, &rc);
    while (!atomic_load(&job_started))
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_cancel(t), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_neq(weft_task_status(t), WEFT_TASK_CANCELLED, "finished under a running job");
    atomic_store(&job_release, 1);
    cr_assert_eq(join_result(t), WEFT_CANCELED);
    cr_assert_eq(atomic_load(&job_done), 1);
    cr_assert(rc == 0 || rc == -ECANCELED, "the call's result: %d", rc);
    return NULL;
}

Test(ported, abort_during_a_blocking_job_waits_for_the_job, .timeout = 30)
{
    run_main(abort_blocking_main, NULL);
}

/* ---- Time (Tokio time tests, libuv test-timer.c) ---------------------------------------- */

/* Tokio's interval tests (interval_at, burst catch-up) and libuv timer_again's repeats:
 * tasks sleeping to successive deadlines of their own periods (an interval: the next deadline
 * is the last plus the period, not now plus the period) never wake early, and one that falls
 * behind (it computes for more than two periods without a switch) catches up at once and
 * stays on its grid instead of drifting. Only lower bounds are asserted: the order of wakes
 * across tasks is not, since a task resumed late arms its next deadline against the tick's
 * cached clock (weft_now) and may park on a deadline the real clock has passed. */
struct ticker {
    int id;
    int64_t start, period;
    int stall_at; /* the tick after which it busy-waits 2.5 periods (-1: never) */
    int64_t woke[10];
};

static int64_t real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

static void *ticker_task(void *arg)
{
    struct ticker *tk = arg;
    for (int k = 0; k < 10; k++) {
        int64_t deadline = tk->start + (k + 1) * tk->period;
        cr_assert_eq(weft_sleep_until(deadline), 0);
        tk->woke[k] = weft_now();
        cr_assert_geq(tk->woke[k], deadline, "ticker %d woke early at tick %d", tk->id, k);
        if (k == tk->stall_at) {
            int64_t until = real_now() + 5 * tk->period / 2;
            while (real_now() < until)
                ;
        }
    }
    return NULL;
}

static void *interval_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep(0), 0, "sleep(0) completes");
    int64_t start = weft_now();
    struct ticker tk[3] = {{0, start, 2 * WEFT_MSEC, -1, {0}},
                           {1, start, 3 * WEFT_MSEC, 3, {0}},
                           {2, start, 5 * WEFT_MSEC, -1, {0}}};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn_pinned(ticker_task, &tk[i]);
    for (int i = 0; i < 3; i++)
        join_result(t[i]);
    for (int i = 0; i < 3; i++)
        for (int k = 1; k < 10; k++)
            cr_assert_geq(tk[i].woke[k], tk[i].woke[k - 1], "ticker %d, tick %d", i, k);
    return NULL;
}

Test(ported, interval_sleeps_stay_on_their_grid, .timeout = 30)
{
    run_main(interval_main, NULL);
}

/* Tokio's timeout tests (simultaneous_deadline_future_completion, completed_future_past_
 * deadline, future_and_timeout_in_future, read with a timeout): a timeout around an I/O
 * future that cannot complete ends with -ETIMEDOUT and leaves the I/O to be done later; one
 * around I/O that is ready completes with the I/O's result; and Tokio polls the inner future
 * first, so a ready future wins even over a deadline that has passed. */
static void *timeout_io_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    weft_future *io, *to;
    cr_assert_eq(weft_fd_future(&io, p[1], WEFT_READABLE), 0);
    cr_assert_eq(weft_future_timeout(&to, io, weft_deadline_in(5 * WEFT_MSEC)), 0);
    cr_assert_eq(weft_await(to, NULL, weft_deadline_in(SOON)), -ETIMEDOUT);
    weft_future_destroy(to);
    weft_future_destroy(io);

    cr_assert_eq(weft_write(p[0], "x", 1, WEFT_FOREVER), 1);
    cr_assert_eq(weft_fd_future(&io, p[1], WEFT_READABLE), 0);
    cr_assert_eq(weft_future_timeout(&to, io, weft_deadline_in(SOON)), 0);
    int r = weft_await(to, NULL, weft_deadline_in(SOON));
    cr_assert_gt(r, 0, "ready I/O within the timeout: %d", r);
    cr_assert(r & WEFT_READABLE);
    weft_future_destroy(to);
    weft_future_destroy(io);
    char c;
    cr_assert_eq(weft_read(p[1], &c, 1, 0), 1, "the byte waits for the read");

    /* A ready future under a passed deadline. */
    weft_future *ready;
    cr_assert_eq(weft_future_ready(&ready, 5, (void *)9), 0);
    cr_assert_eq(weft_future_timeout(&to, ready, 0), 0);
    void *v = NULL;
    cr_assert_eq(weft_await(to, &v, weft_deadline_in(SOON)), 5, "the ready future wins");
    cr_assert_eq(v, (void *)9);
    weft_future_destroy(to);
    weft_future_destroy(ready);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(ported, timeouts_around_io_futures, .timeout = 30)
{
    run_main(timeout_io_main, NULL);
}

/* ---- Go net timeouts --------------------------------------------------------------------- */

/* Go's TestReadTimeout / TestAcceptTimeout with a deadline in the past, then
 * TestReadTimeoutMustNotReturn's reset: a passed deadline with nothing ready fails at once
 * with -ETIMEDOUT for every call (Go's os.ErrDeadlineExceeded); weft's deadlines belong to one
 * call, so the next call with a later deadline, or none (WEFT_FOREVER, Go's zero time),
 * waits afresh and gets the data that comes. (Go's "extend the deadline while a read waits"
 * has no weft form: a call's deadline is fixed when it is made.) */
static void *past_then_reset_main(void *arg)
{
    (void)arg;
    weft_addr srv;
    int lfd = listener(&srv);
    int p[2];
    tcp_pair(p);
    char buf[8];
    int64_t past = weft_now() - WEFT_SEC;
    cr_assert_eq(weft_read(p[1], buf, sizeof buf, past), -ETIMEDOUT);
    cr_assert_eq(weft_recv(p[1], buf, sizeof buf, 0, past), -ETIMEDOUT);
    cr_assert_eq(weft_accept(lfd, NULL, NULL, past), -ETIMEDOUT);
    cr_assert_eq(weft_fd_wait(p[1], WEFT_READABLE, past), -ETIMEDOUT);
    weft_stream *s;
    cr_assert_eq(weft_stream_open(&s, p[1], NULL), 0);
    cr_assert_eq(weft_stream_read(s, buf, sizeof buf, past), -ETIMEDOUT);
    cr_assert_eq(weft_stream_read(s, buf, sizeof buf, weft_deadline_in(WEFT_MSEC)), -ETIMEDOUT);
    /* Deadline reset to none: a reader parked with WEFT_FOREVER gets what comes later. */
    weft_task *t = spawn_pinned(read_one, (void *)(intptr_t)p[0]);
    wait_parked(t);
    cr_assert_eq(weft_write(p[1], "z", 1, WEFT_FOREVER), 1);
    cr_assert_eq(join_result(t), (void *)1);
    /* And the stream after its timeouts reads on. */
    cr_assert_eq(weft_write(p[0], "later", 5, WEFT_FOREVER), 5);
    cr_assert_eq(weft_stream_read_exact(s, buf, 5, weft_deadline_in(SOON)), 5);
    cr_assert_eq(memcmp(buf, "later", 5), 0);
    weft_stream_close(s, weft_deadline_in(SOON));
    weft_close(p[0]);
    weft_close(lfd);
    return NULL;
}

Test(ported, passed_deadlines_fail_at_once_and_a_later_call_waits_afresh, .timeout = 30)
{
    run_main(past_then_reset_main, NULL);
}

/* Go's TestWriteTimeout / TestWriteTimeoutFluctuation: a write into a socket whose peer does
 * not read stops at its deadline with -ETIMEDOUT; what went out before is an intact prefix
 * of the data (the peer reads exactly the leading bytes, nothing reordered or repeated). */
enum { WT_BYTES = 32 << 20 };

static void *write_timeout_main(void *arg)
{
    (void)arg;
    int p[2];
    tcp_pair(p);
    unsigned char *buf = malloc(WT_BYTES);
    for (size_t i = 0; i < WT_BYTES; i++)
        buf[i] = pattern(i);
    ssize_t n = weft_write(p[0], buf, WT_BYTES, weft_deadline_in(50 * WEFT_MSEC));
    cr_assert_eq(n, -ETIMEDOUT, "a write into a full socket: %zd", n);
    /* Drain: read until the peer has been quiet for a while (only the prefix's content is
     * asserted, so an early stop would not fail the test). */
    size_t got = 0;
    static unsigned char chunk[65536];
    for (;;) {
        ssize_t k = weft_read(p[1], chunk, sizeof chunk, weft_deadline_in(200 * WEFT_MSEC));
        if (k == -ETIMEDOUT)
            break;
        cr_assert_gt(k, 0, "%s", weft_strerror((int)k));
        for (ssize_t i = 0; i < k; i++)
            if (chunk[i] != buf[got + (size_t)i])
                cr_assert_fail("byte %zu of the prefix", got + (size_t)i);
        got += (size_t)k;
    }
    cr_assert_gt(got, 0);
    cr_assert_lt(got, WT_BYTES, "a prefix, not the whole");
    free(buf);
    weft_close(p[0]);
    weft_close(p[1]);
    return NULL;
}

Test(ported, a_write_deadline_on_a_full_socket_leaves_a_prefix, .timeout = 30)
{
    run_main(write_timeout_main, NULL);
}
