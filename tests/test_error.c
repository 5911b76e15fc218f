/* Error names and messages: every code weft returns has its own name and message, for the
 * negative value weft returns and for the positive errno alike; 0 is success; anything
 * else (out of range, INT_MIN) is "unknown", never NULL. */
#include <limits.h>
#include <string.h>

#include "harness.h"

static const struct {
    int code;
    const char *name;
} codes[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {ENOSPC, "ENOSPC"},
    {EPIPE, "EPIPE"},
    {ERANGE, "ERANGE"},
    {EDEADLK, "EDEADLK"},
    {ENOSYS, "ENOSYS"},
    {EALREADY, "EALREADY"},
    {EINPROGRESS, "EINPROGRESS"},
    {ENOTSOCK, "ENOTSOCK"},
    {EADDRINUSE, "EADDRINUSE"},
    {ECONNABORTED, "ECONNABORTED"},
    {ECONNRESET, "ECONNRESET"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {ENOTCONN, "ENOTCONN"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECANCELED, "ECANCELED"},
    {EOVERFLOW, "EOVERFLOW"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {EOWNERDEAD, "EOWNERDEAD"},
    /* Returned by weft_http, weft_tls, weft_process_spawn and the file calls: they were
     * "EUNKNOWN", "unknown error". */
    {EPROTO, "EPROTO"},
    {EKEYREJECTED, "EKEYREJECTED"},
    {ELOOP, "ELOOP"},
    {E2BIG, "E2BIG"},
    {ENOEXEC, "ENOEXEC"},
    {ETXTBSY, "ETXTBSY"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {EXDEV, "EXDEV"},
    {EFBIG, "EFBIG"},
    {EDQUOT, "EDQUOT"},
    {ENOTTY, "ENOTTY"},
    {ENXIO, "ENXIO"},
    {ENODEV, "ENODEV"},
    {EMLINK, "EMLINK"},
    {EISCONN, "EISCONN"},
    {ESHUTDOWN, "ESHUTDOWN"},
};
#define NCODES (sizeof codes / sizeof codes[0])

Test(error, every_code_has_its_name_for_both_signs)
{
    for (size_t i = 0; i < NCODES; i++) {
        cr_assert_str_eq(weft_errname(-codes[i].code), codes[i].name);
        cr_assert_str_eq(weft_errname(codes[i].code), codes[i].name);
    }
}

Test(error, every_code_has_its_own_message_for_both_signs)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *m = weft_strerror(-codes[i].code);
        cr_assert_not_null(m);
        cr_assert_str_eq(m, weft_strerror(codes[i].code), "%s", codes[i].name);
        cr_assert_str_neq(m, "unknown error", "%s has no message", codes[i].name);
        cr_assert_str_neq(m, "success", "%s", codes[i].name);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(m, weft_strerror(-codes[j].code), "%s and %s share a message",
                              codes[i].name, codes[j].name);
    }
    cr_assert_str_eq(weft_strerror(-ETIMEDOUT), "deadline passed");
    cr_assert_str_eq(weft_strerror(-EPIPE), "broken pipe or closed channel");
}

Test(error, zero_is_success)
{
    cr_assert_str_eq(weft_strerror(0), "success");
    cr_assert_str_eq(weft_errname(0), "OK");
}

/* Every errno the system defines has a name and a message, the table's or the C library's:
 * a system call's error passed through is never "EUNKNOWN". */
Test(error, every_system_errno_is_named)
{
    for (int e = 1; e < 134; e++) {
        if (!strerror(e) || strncmp(strerror(e), "Unknown error", 13) == 0)
            continue; /* a number the system leaves unused (41, 58) */
        cr_assert_str_neq(weft_errname(-e), "EUNKNOWN", "errno %d (%s)", e, strerror(e));
        cr_assert_str_neq(weft_strerror(-e), "unknown error", "errno %d (%s)", e, strerror(e));
    }
}

Test(error, unknown_codes_are_named_unknown_never_null)
{
    const int unknown[] = {-4095, 4095, 100000, -100000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(weft_strerror(unknown[i]), "unknown error", "%d", unknown[i]);
        cr_assert_str_eq(weft_errname(unknown[i]), "EUNKNOWN", "%d", unknown[i]);
    }
}
