/* The error-name and message table, generated from one X-macro list so that names and
 * messages cannot drift apart (libuv's UV_ERRNO_MAP shape). Any other errno the system
 * defines is named by the C library (a system call's error passed through), where it can:
 * glibc 2.32's strerrorname_np and strerrordesc_np return static strings, thread-safe. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>

#include <stdbool.h>

#include "weft.h"

/* |err| as an unsigned value: -INT_MIN does not fit in an int (UBSan's signed overflow). */
static unsigned magnitude(int err)
{
    return err < 0 ? 0u - (unsigned)err : (unsigned)err;
}

#define WEFT__ERRNO_MAP(X)                                                                         \
    X(EPERM, "operation not permitted here (not inside a task?)")                                  \
    X(ENOENT, "no such entry")                                                                     \
    X(ESRCH, "no such task")                                                                       \
    X(EINTR, "interrupted")                                                                        \
    X(EIO, "input/output error")                                                                   \
    X(EBADF, "bad or closed file descriptor")                                                      \
    X(EAGAIN, "resource temporarily unavailable")                                                  \
    X(ENOMEM, "out of memory")                                                                     \
    X(EACCES, "permission denied")                                                                 \
    X(EFAULT, "bad address")                                                                       \
    X(EBUSY, "busy: another task already waits there")                                             \
    X(EEXIST, "already exists")                                                                    \
    X(EINVAL, "invalid argument")                                                                  \
    X(ENFILE, "too many open files in the system")                                                 \
    X(EMFILE, "too many open files")                                                               \
    X(ENOSPC, "no space left")                                                                     \
    X(EPIPE, "broken pipe or closed channel")                                                      \
    X(ERANGE, "out of range")                                                                      \
    X(EDEADLK, "would deadlock")                                                                   \
    X(ENOSYS, "not supported by this kernel")                                                      \
    X(EALREADY, "already settled")                                                                 \
    X(EINPROGRESS, "operation in progress")                                                        \
    X(ENOTSOCK, "not a socket")                                                                    \
    X(EADDRINUSE, "address in use")                                                                \
    X(ECONNABORTED, "connection aborted")                                                          \
    X(ECONNRESET, "connection reset by peer")                                                      \
    X(ECONNREFUSED, "connection refused")                                                          \
    X(ENOTCONN, "not connected")                                                                   \
    X(ETIMEDOUT, "deadline passed")                                                                \
    X(ECANCELED, "cancelled")                                                                      \
    X(EOVERFLOW, "value too large")                                                                \
    X(EOPNOTSUPP, "operation not supported")                                                       \
    X(EOWNERDEAD, "the previous owner finished while holding it")                                  \
    X(ENAMETOOLONG, "name too long")                                                               \
    X(ENOBUFS, "no buffer space: the limit was reached")                                           \
    X(ECHILD, "no such child process")                                                             \
    X(EAFNOSUPPORT, "address family not supported")                                                \
    X(EADDRNOTAVAIL, "address not available")                                                      \
    X(ENETUNREACH, "network unreachable")                                                          \
    X(EHOSTUNREACH, "host unreachable")                                                            \
    X(EMSGSIZE, "message too long")                                                                \
    X(EISDIR, "is a directory")                                                                    \
    X(ENOTDIR, "not a directory")                                                                  \
    X(EROFS, "read-only file system")                                                              \
    X(ESPIPE, "not seekable")                                                                      \
    X(ESHUTDOWN, "the runtime has stopped")                                                        \
    X(EPROTO, "protocol error: the peer broke the protocol")                                       \
    X(EKEYREJECTED, "the peer's certificate was rejected")                                         \
    X(ELOOP, "too many redirects or symbolic links")                                               \
    X(E2BIG, "argument list too long")                                                             \
    X(ENOEXEC, "not an executable format")                                                         \
    X(ETXTBSY, "text file busy")                                                                   \
    X(ENOTEMPTY, "directory not empty")                                                            \
    X(EXDEV, "crosses file systems")                                                               \
    X(EFBIG, "file too large")                                                                     \
    X(EDQUOT, "disk quota exceeded")                                                               \
    X(ENOTTY, "not a terminal (or no such control operation)")                                     \
    X(ENXIO, "no such device or address")                                                          \
    X(ENODEV, "no such device")                                                                    \
    X(EMLINK, "too many links")                                                                    \
    X(EISCONN, "already connected")                                                                \
    X(EDESTADDRREQ, "destination address required")                                                \
    X(EPROTONOSUPPORT, "protocol not supported")                                                   \
    X(ENOPROTOOPT, "protocol option not available")                                                \
    X(ENETDOWN, "network down")                                                                    \
    X(EHOSTDOWN, "host down")                                                                      \
    X(ENOLCK, "no locks available")                                                                \
    X(ENODATA, "no data available")                                                                \
    X(EBADMSG, "bad message")                                                                      \
    X(EILSEQ, "invalid byte sequence")                                                             \
    X(ESTALE, "stale file handle")

/* The C library's name or description of an errno outside the table, else `unknown`. */
static const char *system_text(int err, bool name, const char *unknown)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    unsigned m = magnitude(err);
    const char *s = m <= 4095 ? (name ? strerrorname_np((int)m) : strerrordesc_np((int)m)) : NULL;
    return s ? s : unknown;
#else
    (void)err, (void)name;
    return unknown;
#endif
}

const char *weft_strerror(int err)
{
    switch (magnitude(err)) {
    case 0:
        return "success";
#define X(name, msg)                                                                               \
    case name:                                                                                     \
        return msg;
        WEFT__ERRNO_MAP(X)
#undef X
    default:
        return system_text(err, false, "unknown error");
    }
}

const char *weft_errname(int err)
{
    switch (magnitude(err)) {
    case 0:
        return "OK";
#define X(name, msg)                                                                               \
    case name:                                                                                     \
        return #name;
        WEFT__ERRNO_MAP(X)
#undef X
    default:
        return system_text(err, true, "EUNKNOWN");
    }
}
