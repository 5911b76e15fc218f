/* The error-name and message table, generated from one X-macro list so that names and
 * messages cannot drift apart (libuv's UV_ERRNO_MAP shape). */
#include <errno.h>

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
    X(ESHUTDOWN, "the runtime has stopped")

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
        return "unknown error";
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
        return "EUNKNOWN";
    }
}
