/* Task dumps: the records are found through the runtime's chunks (every record lives in one,
 * and the list only grows), so a dump needs no registry on the spawn path and costs nothing
 * until it is asked for. A record is read by a thread that owns it, or while its owner cannot
 * touch it (see weft__dump_tasks); the wait fields are read through the state word's seqlock
 * (weft__task_wait_snapshot) either way. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"
#include "runtime.h"
#include "scheduler.h"
#include "stack.h"
#include "sync_internal.h"
#include "task.h"
#include "util/text.h"
#include "worker.h"

void weft__dumpbuf_printf(weft__dumpbuf *b, const char *fmt, ...)
{
    if (b->truncated)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->truncated = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Writes the buffer to fd from a task without ever blocking its worker: the fd's flags are
 * left alone (a shared stderr stays blocking), so each write(2) is made only once poll(2)
 * says the fd takes bytes, and is at most PIPE_BUF long, which a writable pipe takes whole
 * without blocking; while it takes none (a pipe a task of this very runtime drains, a full
 * socket: EAGAIN) the task sleeps, 1 ms doubling to 64 ms, and the worker runs the others. */
int weft__dumpbuf_flush(weft__dumpbuf *b, int fd)
{
    if (b->truncated && b->p && b->cap - b->len > 32)
        b->len += (size_t)snprintf(b->p + b->len, b->cap - b->len, "... (out of memory)\n");
    int r = 0;
    int64_t nap = WEFT_MSEC;
    for (size_t off = 0; off < b->len;) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int ready = poll(&pf, 1, 0);
        if (ready < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        if (ready == 1 && (pf.revents & POLLNVAL)) {
            r = -EBADF;
            break;
        }
        ssize_t n = -EAGAIN;
        if (ready == 1) {
            size_t len = b->len - off < PIPE_BUF ? b->len - off : PIPE_BUF;
            /* Quiet: a reader that has gone makes it -EPIPE, not the end of the process
             * (ignore_sigpipe off). */
            n = weft__write_quiet(fd, b->p + off, len);
            if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EWOULDBLOCK) {
                r = (int)n;
                break;
            }
        }
        if (n > 0) {
            off += (size_t)n;
            nap = WEFT_MSEC;
            continue;
        }
        if (n == -EINTR)
            continue;
        if ((r = weft_sleep(nap)) < 0)
            break; /* cancelled: the rest is not written */
        nap = nap < 64 * WEFT_MSEC ? nap * 2 : nap;
    }
    free(b->p);
    *b = (weft__dumpbuf){0};
    return r;
}

static const char *state_name(uint64_t word)
{
    switch (WEFT__STATE(word)) {
    case WEFT__READY:
        return "ready";
    case WEFT__RUNNING:
        return "running";
    case WEFT__PARKED:
        return "parked";
    case WEFT__NOTIFIED:
        return "running (notified)";
    default:
        return "finished";
    }
}

/* A duration in the unit that reads best. */
static void put_duration(weft__dumpbuf *b, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    if (ns < 1000000)
        weft__dumpbuf_printf(b, "%lld us", (long long)(ns / 1000));
    else if (ns < 10000000000LL)
        weft__dumpbuf_printf(b, "%.1f ms", (double)ns / 1e6);
    else
        weft__dumpbuf_printf(b, "%.1f s", (double)ns / 1e9);
}

static uint64_t id_of(const weft_task *t)
{
    return __atomic_load_n(&t->id, __ATOMIC_RELAXED);
}

/* What the wait is on, in words. */
static void put_wait(weft__dumpbuf *b, int kind, const void *what, int64_t deadline, int64_t since,
                     int64_t now)
{
    const char *name = weft__wait_kind_name(kind);
    weft__dumpbuf_printf(b, "%s", name);
    switch (kind) {
    case WEFT__WAIT_FD:
    case WEFT__WAIT_IO:
        weft__dumpbuf_printf(b, " of fd %d", (int)(intptr_t)what);
        break;
    case WEFT__WAIT_JOIN:
        weft__dumpbuf_printf(b, " of task %llu", (unsigned long long)id_of(what));
        break;
    case WEFT__WAIT_MUTEX: {
        const weft_task *owner = weft__sync_owner(what);
        weft__dumpbuf_printf(b, " %p", what);
        if (owner && owner->worker)
            weft__dumpbuf_printf(b, ", held by task %llu", (unsigned long long)id_of(owner));
        else if (owner)
            weft__dumpbuf_printf(b, ", held by a thread outside the runtime");
        break;
    }
    case WEFT__WAIT_SLEEP:
    case WEFT__WAIT_NONE:
        break;
    default:
        if (what)
            weft__dumpbuf_printf(b, " %p", what);
    }
    weft__dumpbuf_printf(b, ", for ");
    put_duration(b, now - since);
    if (deadline != WEFT_FOREVER) {
        weft__dumpbuf_printf(b, ", deadline in ");
        put_duration(b, deadline - now);
    }
}

void weft__dumpbuf_text(weft__dumpbuf *b, const char *s, size_t max)
{
    size_t n = strnlen(s, max), run = 0;
    for (size_t i = 0; i < n; i++) {
        /* Runs of bytes that go as they are are copied in one piece. */
        char esc[WEFT__TEXT_ESC_MAX];
        size_t k = weft__text_escape_byte(esc, (unsigned char)s[i]);
        if (k == 1)
            continue;
        weft__dumpbuf_printf(b, "%.*s%.*s", (int)(i - run), s + run, (int)k, esc);
        run = i + 1;
    }
    weft__dumpbuf_printf(b, "%.*s", (int)(n - run), s + run);
}

void weft__dumpbuf_frame(weft__dumpbuf *b, int i, uintptr_t pc, bool exact)
{
    Dl_info di;
    /* pc - 1 for a return address: it may be the first byte of the next function. */
    if (dladdr((void *)(exact ? pc : pc - 1), &di) && di.dli_fname) {
        const char *mod = strrchr(di.dli_fname, '/');
        mod = mod ? mod + 1 : di.dli_fname;
        if (di.dli_sname)
            weft__dumpbuf_printf(b, "    #%d 0x%lx in %s+0x%lx (%s+0x%lx)\n", i, (unsigned long)pc,
                                 di.dli_sname, (unsigned long)(pc - (uintptr_t)di.dli_saddr), mod,
                                 (unsigned long)(pc - (uintptr_t)di.dli_fbase));
        else
            weft__dumpbuf_printf(b, "    #%d 0x%lx in %s+0x%lx\n", i, (unsigned long)pc, mod,
                                 (unsigned long)(pc - (uintptr_t)di.dli_fbase));
        return;
    }
    weft__dumpbuf_printf(b, "    #%d 0x%lx\n", i, (unsigned long)pc);
}

/* The saved frame of a switched-out context (src/arch/<cpu>/switch.S): the resume address
 * and the frame pointer, at fixed offsets above the saved sp. */
#if defined(__x86_64__)
#define SAVED_PC_OFF 56
#define SAVED_FP_OFF 48
#elif defined(__aarch64__)
#define SAVED_PC_OFF 88
#define SAVED_FP_OFF 80
#endif

/* Walks the frame-pointer chain of a switched-out coroutine, inside its stack only: every
 * frame must lie above the last one and below the stack's top, so a broken chain (code built
 * without frame pointers) ends the walk instead of reading elsewhere. The chain ends at the
 * coroutine's entry, which zeroes its frame pointer. */
#define MAX_FRAMES 64

/* The return addresses of t's saved frames, at most MAX_FRAMES; returns how many. Not
 * instrumented by ASan: in a program built without frame pointers, a "frame pointer" may be
 * any value the code kept in that register, such as the base of an ASan frame, whose first
 * words are a redzone. The walk only reads inside the task's own stack (the bounds checks
 * below), so the read is safe; under ASan it was reported as a stack-buffer-underflow and
 * the program aborted (a hostile probe: /debug/tasks in a -O1 ASan program). */
__attribute__((no_sanitize_address)) static int backtrace_of(const weft_task *t, uintptr_t *pcs)
{
    const weft__stack *s = t->stack;
    if (!s)
        return 0;
    uintptr_t lo = (uintptr_t)s->lo, hi = (uintptr_t)weft__stack_hi(s);
    uintptr_t sp = (uintptr_t)t->ctx.sp;
    if (sp < lo || sp + WEFT__CTX_FRAME_BYTES > hi || (sp & 7))
        return 0;
    uintptr_t pc = *(const uintptr_t *)(sp + SAVED_PC_OFF);
    uintptr_t fp = *(const uintptr_t *)(sp + SAVED_FP_OFF);
    int n = 0;
    while (n < MAX_FRAMES && pc) {
        pcs[n++] = pc;
        if (fp <= sp || fp + 16 > hi || (fp & 7))
            break;
        sp = fp;
        fp = *(const uintptr_t *)sp;
        pc = *(const uintptr_t *)(sp + 8);
    }
    return n;
}

static void put_backtrace(weft__dumpbuf *b, const weft_task *t)
{
    uintptr_t pcs[MAX_FRAMES];
    int n = backtrace_of(t, pcs);
    for (int i = 0; i < n; i++)
        weft__dumpbuf_frame(b, i, pcs[i], false);
}

/* How much of the stack has ever been touched: its resident pages (the kernel commits a page
 * at its first write), through mincore, which faults nothing in. */
static size_t resident(const weft__stack *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)s->lo & ~(uintptr_t)(page - 1);
    size_t len = (size_t)((uintptr_t)weft__stack_hi(s) - lo);
    size_t npages = (len + page - 1) / page;
    unsigned char small[256], *vec = npages <= sizeof small ? small : malloc(npages);
    if (!vec)
        return 0;
    size_t n = 0;
    if (mincore((void *)lo, len, vec) == 0)
        for (size_t i = 0; i < npages; i++)
            n += vec[i] & 1;
    if (vec != small)
        free(vec);
    return n * page;
}

/* "created by task N at file:line" (Go's "created by"): the parent, and the spawn macro's
 * site where it was used. A task spawned from outside any task (a plain thread, a message)
 * has parent 0. */
static void put_origin(weft__dumpbuf *b, const weft_task *t)
{
    if (t->parent_id)
        weft__dumpbuf_printf(b, "    created by task %llu", (unsigned long long)t->parent_id);
    else
        weft__dumpbuf_printf(b, "    created outside any task");
    if (t->spawn_file) {
        weft__dumpbuf_printf(b, " at ");
        weft__dumpbuf_text(b, t->spawn_file, 4096);
        weft__dumpbuf_printf(b, ":%u", t->spawn_line);
    }
    weft__dumpbuf_printf(b, "\n");
}

static void put_task(weft__dumpbuf *b, const weft_task *t, uint64_t word, bool backtrace,
                     int64_t now, bool in_place)
{
    const weft__worker *w = __atomic_load_n(&t->worker, __ATOMIC_RELAXED);
    weft__dumpbuf_printf(b, "task %llu \"", (unsigned long long)id_of(t));
    weft__dumpbuf_text(b, t->name, sizeof t->name - 1);
    weft__dumpbuf_printf(b, "\" on worker %u: %s", w ? w->index : 0u, state_name(word));
    if (in_place)
        weft__dumpbuf_printf(b, " (inside weft_block_in_place, on its own thread)");
    if (t->flags & WEFT__T_STACKLESS)
        weft__dumpbuf_printf(b, " (stackless)");
    else if (!(t->flags & WEFT__T_STARTED))
        weft__dumpbuf_printf(b, " (not started)");
    int kind;
    const void *what;
    int64_t deadline, since;
    if (weft__task_wait_snapshot(t, &kind, &what, &deadline, &since) == 0) {
        weft__dumpbuf_printf(b, " on ");
        put_wait(b, kind, what, deadline, since, now);
    }
    if (weft__task_cancelled(t))
        weft__dumpbuf_printf(b, " [cancelled]");
    weft__dumpbuf_printf(b, "\n");
    put_origin(b, t);
    const weft__stack *s = t->stack;
    if (s) {
        weft__dumpbuf_printf(b, "    stack %zu KiB, %zu KiB touched%s\n",
                             (size_t)(weft__stack_hi(s) - s->lo) / 1024, resident(s) / 1024,
                             s->guarded ? ", guarded" : "");
        unsigned st = WEFT__STATE(word);
        if (backtrace && (st == WEFT__PARKED || st == WEFT__READY))
            put_backtrace(b, t);
    }
}

/* ---- The same as JSON (the debug endpoint's /debug/tasks) ------------------------------ */

/* A JSON string: quotes, backslashes and control bytes escaped. */
/* The length of the well-formed UTF-8 sequence at s[0 .. n) (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (k == 0 || k > n)
        return 0;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return k;
}

/* A JSON string of s (up to max bytes or its NUL). JSON text is UTF-8 (RFC 8259 8.1): a
 * byte that does not start a well-formed sequence (a name cut in the middle of a character
 * by its 15-byte copy, a name that was never UTF-8) is written as U+FFFD. */
static void put_json_string(weft__dumpbuf *b, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    weft__dumpbuf_printf(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t k;
        if (c == '"' || c == '\\')
            weft__dumpbuf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            weft__dumpbuf_printf(b, "\\u%04x", c);
        else if (c < 0x80)
            weft__dumpbuf_printf(b, "%c", c);
        else if ((k = utf8_seq((const unsigned char *)s + i, n - i)) != 0)
            weft__dumpbuf_printf(b, "%.*s", (int)k, s + i), i += k - 1;
        else
            weft__dumpbuf_printf(b, "\\ufffd");
    }
    weft__dumpbuf_printf(b, "\"");
}

static void put_task_json(weft__dumpbuf *b, const weft_task *t, uint64_t word, bool backtrace,
                          int64_t now, bool first, bool in_place)
{
    const weft__worker *w = __atomic_load_n(&t->worker, __ATOMIC_RELAXED);
    weft__dumpbuf_printf(b, "%s{\"id\":%llu,\"name\":", first ? "" : ",",
                         (unsigned long long)id_of(t));
    put_json_string(b, t->name, sizeof t->name);
    weft__dumpbuf_printf(b,
                         ",\"worker\":%u,\"state\":\"%s\",\"started\":%s,\"stackless\":%s,"
                         "\"cancelled\":%s",
                         w ? w->index : 0u, state_name(word),
                         (t->flags & WEFT__T_STARTED) ? "true" : "false",
                         (t->flags & WEFT__T_STACKLESS) ? "true" : "false",
                         weft__task_cancelled(t) ? "true" : "false");
    if (in_place)
        weft__dumpbuf_printf(b, ",\"in_place\":true");
    weft__dumpbuf_printf(b, ",\"parent\":%llu", (unsigned long long)t->parent_id);
    if (t->spawn_file) {
        weft__dumpbuf_printf(b, ",\"spawned_at\":");
        put_json_string(b, t->spawn_file, 4096);
        weft__dumpbuf_printf(b, ",\"spawned_line\":%u", t->spawn_line);
    }
    /* The age against the clock read after the stamp, not `now`: a spawn stamps the clock of
     * its own worker's tick, which may be ahead of `now` (the listing worker's, read at the
     * top of a tick that ran long), and the difference in unsigned units (task.h's
     * spawned_stamp) then wrapped to 52 days. Every stamp is a clock read made before the
     * record was published. */
    uint32_t spawned = atomic_load_explicit(&t->spawned_stamp, memory_order_relaxed);
    uint32_t age = (uint32_t)((uint64_t)weft__clock_ns() >> WEFT__STAMP_SHIFT) - spawned;
    weft__dumpbuf_printf(b, ",\"age_ms\":%llu,\"stalls\":%u,\"stall_max_ms\":%u",
                         (unsigned long long)(((uint64_t)age << WEFT__STAMP_SHIFT) / 1000000),
                         (unsigned)atomic_load_explicit(&t->nstalls, memory_order_relaxed),
                         (unsigned)atomic_load_explicit(&t->stall_max_ms, memory_order_relaxed));
    int kind;
    const void *what;
    int64_t deadline, since;
    if (weft__task_wait_snapshot(t, &kind, &what, &deadline, &since) == 0) {
        const char *name = weft__wait_kind_name(kind);
        /* At least 0: a wait that began on another worker, whose clock may be ahead of
         * `now` (this worker's, read at the top of its tick), as the text dump clamps it. */
        weft__dumpbuf_printf(b, ",\"wait\":{\"kind\":\"%s\",\"for_ns\":%lld", name,
                             (long long)(now > since ? now - since : 0));
        if (deadline != WEFT_FOREVER)
            weft__dumpbuf_printf(b, ",\"deadline_in_ns\":%lld", (long long)(deadline - now));
        if (kind == WEFT__WAIT_FD || kind == WEFT__WAIT_IO)
            weft__dumpbuf_printf(b, ",\"fd\":%d", (int)(intptr_t)what);
        else if (kind == WEFT__WAIT_JOIN)
            weft__dumpbuf_printf(b, ",\"task\":%llu", (unsigned long long)id_of(what));
        else if (what)
            weft__dumpbuf_printf(b, ",\"object\":\"%p\"", what);
        if (kind == WEFT__WAIT_MUTEX) {
            const weft_task *owner = weft__sync_owner(what);
            if (owner && owner->worker)
                weft__dumpbuf_printf(b, ",\"held_by\":%llu", (unsigned long long)id_of(owner));
            else if (owner)
                weft__dumpbuf_printf(b, ",\"held_by\":\"thread\"");
        }
        weft__dumpbuf_printf(b, "}");
    }
    const weft__stack *s = t->stack;
    if (s) {
        weft__dumpbuf_printf(b, ",\"stack\":{\"size\":%zu,\"touched\":%zu,\"guarded\":%s}",
                             (size_t)(weft__stack_hi(s) - s->lo), resident(s),
                             s->guarded ? "true" : "false");
        unsigned st = WEFT__STATE(word);
        if (backtrace && (st == WEFT__PARKED || st == WEFT__READY)) {
            uintptr_t pcs[MAX_FRAMES];
            int n = backtrace_of(t, pcs);
            weft__dumpbuf_printf(b, ",\"frames\":[");
            for (int i = 0; i < n; i++) {
                Dl_info di;
                weft__dumpbuf_printf(b, "%s{\"pc\":\"0x%lx\"", i ? "," : "", (unsigned long)pcs[i]);
                if (dladdr((void *)(pcs[i] - 1), &di) && di.dli_fname) {
                    weft__dumpbuf_printf(b, ",\"module\":");
                    put_json_string(b, di.dli_fname, 4096);
                    weft__dumpbuf_printf(b, ",\"module_offset\":%lu",
                                         (unsigned long)(pcs[i] - (uintptr_t)di.dli_fbase));
                    if (di.dli_sname) {
                        weft__dumpbuf_printf(b, ",\"symbol\":");
                        put_json_string(b, di.dli_sname, 4096);
                        weft__dumpbuf_printf(b, ",\"offset\":%lu",
                                             (unsigned long)(pcs[i] - (uintptr_t)di.dli_saddr));
                    }
                }
                weft__dumpbuf_printf(b, "}");
            }
            weft__dumpbuf_printf(b, "]");
        }
    }
    weft__dumpbuf_printf(b, "}");
}

typedef struct dump_walk {
    weft__dumpbuf *b;
    const weft__worker *w;
    const weft_task *skip;
    bool backtraces;
    bool json;
    int64_t now;
    size_t n;
    bool (*leave_out)(const weft_task *t); /* NULL: none */
} dump_walk;

static void dump_one(weft_task *t, void *arg)
{
    dump_walk *d = arg;
    if (t == d->skip || (d->w && __atomic_load_n(&t->worker, __ATOMIC_RELAXED) != d->w))
        return;
    uint64_t word = atomic_load_explicit(&t->word, memory_order_acquire);
    if (WEFT__STATE(word) == WEFT__DONE)
        return; /* finished, waiting to be joined: nothing left that can act */
    if (d->leave_out && d->leave_out(t))
        return;
    /* Dumped on its own worker, by another task: a task of that worker running meanwhile is
     * inside weft_block_in_place (relief.c), on its own thread. */
    bool in_place = d->w && d->skip && WEFT__STATE(word) == WEFT__RUNNING;
    if (d->json)
        put_task_json(d->b, t, word, d->backtraces, d->now, d->n == 0, in_place);
    else
        put_task(d->b, t, word, d->backtraces, d->now, in_place);
    d->n++;
}

size_t weft__dump_tasks(weft__dumpbuf *b, weft__runtime *rt, const weft__worker *w,
                        const weft_task *skip, bool backtraces, int64_t now)
{
    dump_walk d = {b, w, skip, backtraces, false, now, 0, NULL};
    weft__task_each(rt, dump_one, &d);
    return d.n;
}

size_t weft__dump_tasks_but(weft__dumpbuf *b, weft__runtime *rt, const weft__worker *w,
                            bool (*leave_out)(const weft_task *t), bool backtraces, int64_t now)
{
    dump_walk d = {b, w, NULL, backtraces, false, now, 0, leave_out};
    weft__task_each(rt, dump_one, &d);
    return d.n;
}

/* As weft__dump_tasks, as the elements of a JSON array (comma-separated objects). */
static size_t dump_tasks_json(weft__dumpbuf *b, weft__runtime *rt, const weft__worker *w,
                              const weft_task *skip, bool backtraces, int64_t now)
{
    dump_walk d = {b, w, skip, backtraces, true, now, 0, NULL};
    weft__task_each(rt, dump_one, &d);
    return d.n;
}

/* ---- weft_dump_tasks: each worker lists its own tasks, as a task of its own ------------ */

/* One worker's part of a dump. Shared by the dumping task and the task that writes it on
 * worker k, and freed by the last of the two to let go (`refs`, acq_rel: the writer's bytes
 * are the reader's before the free): the dumping task may give up waiting (a cancel, the
 * runtime's shutdown) while k has not yet run the writer, or is running it, and the writer's
 * spawn cleanup lets go however it ends, having run or not. */
/* One worker's text and its task count: the dumping task's copy of it. */
typedef struct part_text {
    weft__dumpbuf b;
    size_t n;
} part_text;

typedef struct worker_part {
    _Atomic int refs;
    bool json;
    part_text t;
} worker_part;

static void part_release(void *arg)
{
    worker_part *p = arg;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) {
        free(p->t.b.p);
        free(p);
    }
}

/* Runs on worker k as a task pinned there: every other task of k is switched out while it
 * runs, so their stacks hold still for the walk. */
static void *dump_here(void *arg)
{
    worker_part *p = arg;
    weft__worker *w = weft__worker_current();
    p->t.n = p->json ? dump_tasks_json(&p->t.b, w->rt, w, weft_self(), true, w->now)
                     : weft__dump_tasks(&p->t.b, w->rt, w, weft_self(), true, w->now);
    return NULL;
}

/* Worker k's part into `into`: written by a task of k, or, when that cannot be had or the
 * dumping task stops waiting for it (cancelled: the runtime may be shutting down; or the
 * deadline passed: k is stuck in a task), walked from here without backtraces (another
 * worker's stacks do not hold still). */
static void render_part(weft__runtime *rt, unsigned k, bool json, int64_t deadline, part_text *into)
{
    worker_part *p = calloc(1, sizeof *p);
    int r = -ENOMEM;
    weft_task *t = NULL;
    if (p) {
        atomic_init(&p->refs, 2); /* this task's, and the writer's cleanup's */
        p->json = json;
        weft_spawn_opts o = {
            .name = "weft-dump", .flags = WEFT_SPAWN_PINNED, .cleanup = part_release};
        r = weft_spawn_on(k, &t, dump_here, p, &o);
        if (r < 0)
            atomic_store_explicit(&p->refs, 1, memory_order_relaxed); /* no task: no cleanup */
    }
    if (r == 0) {
        r = weft_join(t, NULL, deadline);
        if (r < 0)
            weft_detach(t); /* reaped when it ends; its cleanup lets go of p */
    }
    if (r == 0) {
        *into = p->t;
        p->t = (part_text){0}; /* the bytes are the caller's now */
    } else {
        weft__worker *w = weft__worker_current();
        into->n = json ? dump_tasks_json(&into->b, rt, &rt->workers[k], NULL, false, w->now)
                       : weft__dump_tasks(&into->b, rt, &rt->workers[k], NULL, false, w->now);
    }
    if (p)
        part_release(p);
}

int weft__dump_render(weft__dumpbuf *out, bool json, int64_t deadline)
{
    weft__worker *w = weft__worker_current();
    weft_task *self = weft__blocking_task(w);
    if (!self)
        return -EPERM;
    weft__runtime *rt = w->rt;
    unsigned nw = rt->nworkers;
    part_text *parts = calloc(nw, sizeof *parts);
    if (!parts)
        return -ENOMEM;
    atomic_fetch_add_explicit(&rt->dumping, 1, memory_order_relaxed);
    for (unsigned k = 0; k < nw; k++)
        render_part(rt, k, json, deadline, &parts[k]);
    atomic_fetch_sub_explicit(&rt->dumping, 1, memory_order_relaxed);
    size_t total = 0;
    for (unsigned k = 0; k < nw; k++)
        total += parts[k].n;
    const char *mode = rt->cfg.mode == WEFT_MODE_STEALING ? "stealing" : "sharded";
    if (json)
        weft__dumpbuf_printf(out,
                             "{\"ntasks\":%zu,\"workers\":%u,\"mode\":\"%s\",\"dumped_by\":%llu,"
                             "\"tasks\":[",
                             total, nw, mode, (unsigned long long)self->id);
    else
        weft__dumpbuf_printf(out, "weft: %zu tasks on %u workers (%s mode), dumped by task %llu\n",
                             total, nw, mode, (unsigned long long)self->id);
    bool any = false;
    for (unsigned k = 0; k < nw; k++) {
        if (parts[k].b.len) /* a JSON part is comma-separated objects: join them likewise */
            weft__dumpbuf_printf(out, "%s%.*s", json && any ? "," : "", (int)parts[k].b.len,
                                 parts[k].b.p);
        any |= parts[k].n > 0;
        out->truncated |= parts[k].b.truncated;
        free(parts[k].b.p);
    }
    if (json)
        weft__dumpbuf_printf(out, "]}\n");
    free(parts);
    return 0;
}

int weft_dump_tasks(int fd)
{
    if (!weft__blocking_task(weft__worker_current()))
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    weft__dumpbuf b = {0};
    int r = weft__dump_render(&b, false, WEFT_FOREVER);
    int e = weft__dumpbuf_flush(&b, fd);
    return r < 0 ? r : e;
}
