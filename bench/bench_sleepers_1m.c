/* sleepers_1m: 1,000,000 tasks alive at once, each sleeps 1 s then exits. */
#include "bench_sleepers.h"

int main(int argc, char **argv)
{
    return sleepers_run("sleepers_1m", 0, argc, argv);
}
