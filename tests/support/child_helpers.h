/* A forked child for tests whose subject ends the process (a stack overflow's report, an
 * abort): fn runs in the child with its stderr captured, and the parent gets its wait status
 * and what it wrote. Header-only, for Criterion test files (harness.h first). */
#ifndef WEFT_TEST_CHILD_HELPERS_H
#define WEFT_TEST_CHILD_HELPERS_H

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn(arg) in a forked child whose stderr is captured into err (NUL-terminated, at most
 * cap - 1 bytes); returns its wait status. */
static inline int run_child(void (*fn)(void *), void *arg, char *err, size_t cap)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        coverage_dump_on_abort();
        fn(arg);
        coverage_dump();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while (n < cap - 1 && (k = read(fds[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    err[n] = 0;
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

#endif
