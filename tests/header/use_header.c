/* Compiled by check.sh as C11 and as C++17, with every warning an error: weft.h must stand
 * alone under strict standards, without feature-test macros. */
#include <weft.h>

static void *body(void *arg)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    (void)m;
    return arg;
}

int main(void)
{
    weft_config cfg;
    weft_config_init(&cfg);
    sigset_t set;
    (void)set;
    return weft_version() == WEFT_VERSION_NUMBER && body(0) == 0 ? 0 : 1;
}
