/* Compiled by check_foreign_awaitable.sh: a weft::task that co_awaits another library's
 * awaiter must not compile (weft.hpp's await_transform); with -DWEFT_ONLY_WEFT the same
 * task awaits only weft's own, and compiles. */
#include <coroutine>

#include <weft.hpp>

weft::task<int> awaits_something()
{
#ifdef WEFT_ONLY_WEFT
    (void)co_await weft::yield();
#else
    co_await std::suspend_always{};
#endif
    co_return 1;
}

int main()
{
    return 0;
}
