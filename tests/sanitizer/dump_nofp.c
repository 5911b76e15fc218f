/* A task dump in a program built without frame pointers (-O1 -fomit-frame-pointer), linked
 * against an ASan build of weft: the backtrace walk then follows whatever the program kept in
 * the frame-pointer register, such as the base of an ASan frame, whose first words are a
 * redzone. The walk stays inside the task's stack and is not instrumented, so ASan must not
 * report it (it did, and aborted the program: a probe of /debug/tasks). The main task is
 * parked in a join while another task dumps every task. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

static void *dumper(void *arg)
{
    int fd = open("/dev/null", O_WRONLY);
    int r = fd >= 0 ? weft_dump_tasks(fd) : -1;
    if (fd >= 0)
        close(fd);
    return (void *)(long)r;
}

static void *main_task(void *arg)
{
    (void)arg;
    /* A local whose address escapes: ASan gives main_task a frame with redzones, and with
     * no frame pointer the register that would hold one holds that frame's base. */
    weft_addr d;
    if (weft_addr_ip(&d, "127.0.0.1", 0) < 0)
        return (void *)1;
    weft_task *t;
    if (weft_spawn(&t, dumper, NULL, NULL) < 0)
        return (void *)1;
    void *r = (void *)1;
    weft_join(t, &r, WEFT_FOREVER);
    return (long)r >= 0 && weft_addr_port(&d) == 0 ? NULL : (void *)1;
}

int main(void)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    void *r = (void *)1;
    int rc = weft_run(&c, main_task, NULL, &r);
    printf("dump_nofp: %s\n", rc == 0 && r == NULL ? "passed" : "FAILED");
    return rc == 0 && r == NULL ? 0 : 1;
}
