/* timers_1m: 1,000,000 tasks, each sleeps a uniformly random 0..1000 ms then exits. */
#include "bench_sleepers.h"

int main(int argc, char **argv)
{
    return sleepers_run("timers_1m", 1, argc, argv);
}
