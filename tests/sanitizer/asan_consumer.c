/* A program built with -fsanitize=address, linked against the plain (uninstrumented) static
 * library: coroutines recurse deeply with arrays on their stacks (redzones), switch in the
 * middle, end through weft_exit from deep inside (leaving poisoned frames behind), and their
 * stacks are reused by new tasks with other frame shapes. ASan must report nothing: weft
 * announces each switch through the weak sanitizer hooks (src/hooks.h). */
#include <stdio.h>
#include <string.h>
#include <weft.h>

static __attribute__((noinline)) int deep_a(int depth, int leave)
{
    volatile char buf[200];
    memset((char *)buf, depth, sizeof buf);
    if (depth % 16 == 0)
        weft_yield();
    if (depth == 0) {
        if (leave)
            weft_exit((void *)1); /* ends the task with all these frames on its stack */
        return buf[3];
    }
    return deep_a(depth - 1, leave) + buf[7];
}

static __attribute__((noinline)) int deep_b(int depth)
{
    volatile long words[37];
    for (int i = 0; i < 37; i++)
        words[i] = depth + i;
    if (depth % 8 == 0)
        weft_yield();
    return depth == 0 ? (int)words[5] : deep_b(depth - 1) + (int)words[36];
}

static void *task_a(void *arg)
{
    return (void *)(intptr_t)deep_a(150, (int)(intptr_t)arg);
}

static void *task_b(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)deep_b(120);
}

static void *main_task(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        weft_task *ts[16];
        for (int i = 0; i < 16; i++)
            weft_spawn(&ts[i], round % 2 ? task_b : task_a, (void *)(intptr_t)(i % 2), NULL);
        for (int i = 0; i < 16; i++)
            weft_join(ts[i], NULL, WEFT_FOREVER);
    }
    return (void *)7;
}

int main(void)
{
    void *r = NULL;
    if (weft_run(NULL, main_task, NULL, &r) != 0 || r != (void *)7)
        return 1;
    puts("asan consumer: clean");
    return 0;
}
