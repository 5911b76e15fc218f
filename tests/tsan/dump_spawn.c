/* A task dump on one worker while another worker spawns onto it (weft_spawn_on builds the
 * record on the spawner's thread for its home): the dump must see a new record's id, name,
 * parent and spawn site whole. Under ThreadSanitizer this raced on every run (a probe of
 * the observability surfaces): the flag that publishes the record was cleared with a plain
 * store, before the spawn site was written. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

#include "check.h"

static atomic_int stop;
static atomic_long spawned;

static void *leaf(void *arg)
{
    return arg;
}

static void *spawner(void *arg) /* worker 0: makes records for worker 1 */
{
    (void)arg;
    while (!atomic_load(&stop)) {
        weft_task *t;
        weft_spawn_opts o = {.name = "child"};
        if (weft_spawn_on(1, &t, leaf, NULL, &o) == 0) {
            CHECK(weft_join(t, NULL, WEFT_FOREVER) == 0, "join");
            atomic_fetch_add(&spawned, 1);
        }
    }
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *s;
    CHECK(weft_spawn_on(0, &s, spawner, NULL, NULL) == 0, "spawn");
    int fd = open("/dev/null", O_WRONLY);
    CHECK(fd >= 0, "open");
    for (int i = 0; i < 200; i++)
        CHECK(weft_dump_tasks(fd) >= 0, "dump");
    atomic_store(&stop, 1);
    CHECK(weft_join(s, NULL, WEFT_FOREVER) == 0, "join the spawner");
    close(fd);
    return NULL;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_SHARDED;
    CHECK(weft_run(&c, main_task, NULL, NULL) == 0, "run");
    printf("dump_spawn: %ld spawns during the dumps; %s\n", atomic_load(&spawned),
           failures ? "FAILED" : "passed");
    return failures != 0;
}
