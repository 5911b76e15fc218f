/* A scratch directory per test for the file suites (test_fs_ops.c, test_ported.c): made
 * under $TMPDIR (or /tmp), paths in it, and its removal with plain libc. Criterion forks one
 * process per test, so `tmpdir_root` is per test. */
#ifndef WEFT_TEST_TMPDIR_HELPERS_H
#define WEFT_TEST_TMPDIR_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir_root[PATH_MAX];

/* Makes the test's directory, named `prefix`-XXXXXX. */
static inline void tmpdir_make(const char *prefix)
{
    snprintf(tmpdir_root, sizeof tmpdir_root, "%s/%s-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix);
    cr_assert_not_null(mkdtemp(tmpdir_root));
}

/* A path under the test's directory, in one of a few rotating buffers. */
static inline const char *at(const char *name)
{
    static char bufs[8][2 * PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, 2 * PATH_MAX, "%s/%s", tmpdir_root, name);
    return b;
}

/* Removes dir and everything under it. */
static inline void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[PATH_MAX + 300];
            int k = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (k < 0 || (size_t)k >= sizeof p)
                continue; /* deeper than the tests ever make */
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

#endif
