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

Test(error, unknown_codes_are_named_unknown_never_null)
{
    const int unknown[] = {-4095, 4095, 100000, -100000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(weft_strerror(unknown[i]), "unknown error", "%d", unknown[i]);
        cr_assert_str_eq(weft_errname(unknown[i]), "EUNKNOWN", "%d", unknown[i]);
    }
}
