/* Runs a task that sleeps and yields, and prints the library's version. */
#include <stdio.h>
#include <weft.h>

static void *child(void *arg)
{
    weft_sleep(WEFT_MSEC);
    return arg;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *t;
    void *r = NULL;
    if (weft_spawn(&t, child, (void *)42, NULL) || weft_join(t, &r, WEFT_FOREVER))
        return NULL;
    return r;
}

int main(void)
{
    void *r = NULL;
    if (weft_run(NULL, main_task, NULL, &r) != 0 || r != (void *)42)
        return 1;
    printf("consumer ok, weft %u\n", weft_version());
    return 0;
}
