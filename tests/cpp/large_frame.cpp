/* Compiled by check_large_frame.sh, not run: a task whose frame is above the frame cache's
 * 16 KiB classes (it holds a 64 KiB buffer across an await), beside a few ordinary tasks.
 * g++ 12 at -O1 reported the frame's allocation and free as mismatched
 * (-Wmismatched-new-delete), an error under -Werror. */
#include <weft.hpp>

#include <memory>
#include <string>

namespace
{

struct page_buffer {
    char bytes[65536];
};

weft::task<int> holds_a_large_buffer()
{
    page_buffer b{};
    b.bytes[sizeof b.bytes - 1] = 3;
    (void)co_await weft::yield();
    co_return b.bytes[sizeof b.bytes - 1];
}

weft::task<std::unique_ptr<int>> boxed()
{
    co_return std::make_unique<int>(5);
}

weft::task<std::string> text()
{
    co_return std::string(100, 'x');
}

weft::task<int> depth(int n)
{
    if (n == 0)
        co_return 0;
    co_return 1 + co_await depth(n - 1);
}

} // namespace

int main()
{
    auto r = weft::runtime::run([] {
        int sum = *weft::block_on(holds_a_large_buffer()) + **weft::block_on(boxed());
        sum += static_cast<int>(weft::block_on(text())->size()) + *weft::block_on(depth(3));
        return sum;
    });
    return r.ok() && *r == 111 ? 0 : 1;
}
