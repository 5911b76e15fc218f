/* Metrics: the counters read from a thread outside the runtime (per worker and summed), their
 * Prometheus text, and the debug endpoint serving /metrics and /debug/tasks over HTTP. */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void *spin_yields(void *arg)
{
    for (int i = 0; i < (int)(intptr_t)arg; i++)
        weft_yield();
    return NULL;
}

typedef struct reader {
    weft_runtime *rt;
    weft_stats total, w1;
    int r_total, r_w1, r_bad;
    char text[1 << 16];
    int text_len, small_len;
    char small[16];
    weft_histogram lat, poll;
    int r_lat, r_poll, r_hbad;
    weft_event go, done;
} reader;

static void *reader_thread(void *arg)
{
    reader *rd = arg;
    weft_event_wait(&rd->go, WEFT_FOREVER);
    /* Main parks on `done` after setting `go`, and its worker publishes that park at its next
     * tick or before it sleeps: a snapshot, not the instant. Read only once the snapshot shows
     * it (up to 5 s; the assertion below then fails if it never does), so that the park is not
     * a race with this thread (the clean-clone CI run once read main still ready). */
    for (int i = 0; i < 5000; i++) {
        weft_metrics_text(rd->rt, rd->text, sizeof rd->text);
        if (strstr(rd->text, "weft_tasks{worker=\"0\",state=\"waiting\"} 1\n"))
            break;
        usleep(1000);
    }
    rd->r_total = weft_runtime_stats(rd->rt, -1, &rd->total, sizeof rd->total);
    rd->r_w1 = weft_runtime_stats(rd->rt, 1, &rd->w1, sizeof rd->w1);
    rd->r_bad = weft_runtime_stats(rd->rt, 2, &rd->w1, sizeof rd->w1);
    rd->text_len = weft_metrics_text(rd->rt, rd->text, sizeof rd->text);
    rd->small_len = weft_metrics_text(rd->rt, rd->small, sizeof rd->small);
    rd->r_lat = weft_runtime_histogram(rd->rt, WEFT_HIST_SCHEDULE_LATENCY, &rd->lat);
    rd->r_poll = weft_runtime_histogram(rd->rt, WEFT_HIST_POLL_TIME, &rd->poll);
    rd->r_hbad = weft_runtime_histogram(rd->rt, 3, &rd->poll);
    weft_event_set(&rd->done);
    return NULL;
}

/* Parks on a rendezvous channel at every value: 20,000 wakes for the latency histogram. */
static void *pong(void *arg)
{
    weft_chan *c = arg;
    int v;
    while (weft_chan_recv(c, &v, WEFT_FOREVER) == 0 && v >= 0)
        ;
    return NULL;
}

static void *stats_main(void *arg)
{
    reader *rd = arg;
    rd->rt = weft_runtime_current();
    weft_chan *c;
    cr_assert_eq(weft_chan_create(&c, sizeof(int), 0), 0);
    weft_task *p;
    /* Pinned, as the tasks below: the counts of each worker are checked exactly. */
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn(&p, pong, c, &pin), 0);
    for (int i = 0; i < 20000; i++)
        cr_assert_eq(weft_chan_send(c, &i, WEFT_FOREVER), 0);
    int stop = -1;
    cr_assert_eq(weft_chan_send(c, &stop, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(p, NULL, WEFT_FOREVER), 0);
    weft_chan_release(c);
    /* Work on both workers, finished (and published: each publishes before it sleeps). */
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn_on((unsigned)i % 2, &t[i], spin_yields, (void *)100, &pin), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(t[i], NULL, WEFT_FOREVER), 0);
    weft_sleep(5 * WEFT_MSEC); /* every worker has slept since: all published */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reader_thread, rd), 0);
    weft_event_set(&rd->go);
    cr_assert_eq(weft_event_wait(&rd->done, WEFT_FOREVER), 0);
    pthread_join(th, NULL);
    return NULL;
}

Test(metrics, read_from_a_thread_outside_the_runtime)
{
    reader *rd = calloc(1, sizeof *rd);
    rd->go = (weft_event)WEFT_EVENT_INIT;
    rd->done = (weft_event)WEFT_EVENT_INIT;
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    run_main_cfg(&c, stats_main, rd);
    cr_assert_eq(rd->r_total, 0);
    cr_assert_eq(rd->r_w1, 0);
    cr_assert_eq(rd->r_bad, -EINVAL);
    cr_assert_geq(rd->total.nspawned, 5, "main and four");
    cr_assert_geq(rd->w1.nresumes, 200, "their yields");
    cr_assert_geq(rd->total.nmsgs, 2, "spawns onto worker 1 are messages");
    cr_assert_geq(rd->total.nparks, 1, "the sleep parked, at least");
    cr_assert_gt(rd->total.busy_ns, 0);
    cr_assert_eq(rd->total.size, sizeof rd->total);
    /* By state: pong and the four finished (and reaped); main waits for the reader. */
    cr_assert_eq(rd->total.nfinished, 5);
    cr_assert_eq(rd->total.nunfinished, 1, "main only: %llu",
                 (unsigned long long)rd->total.nunfinished);
    cr_assert_eq(rd->w1.nunfinished, 0);
    /* Stack memory: main's stack bound; worker 1's tasks' stacks pooled there. */
    cr_assert_geq(rd->total.stack_bytes_live, WEFT_STACK_DEFAULT / 2, "%llu",
                  (unsigned long long)rd->total.stack_bytes_live);
    cr_assert_eq(rd->w1.stack_bytes_live, 0);
    cr_assert_geq(rd->w1.stack_bytes_pooled, WEFT_STACK_DEFAULT / 2);
    cr_assert_not_null(strstr(rd->text, "weft_stack_bytes_pooled{worker=\"1\"} "));
    cr_assert_not_null(strstr(rd->text, "# TYPE weft_tasks gauge\n"));
    cr_assert_not_null(strstr(rd->text, "weft_tasks{worker=\"0\",state=\"waiting\"} 1\n"), "%s",
                       rd->text);
    cr_assert_not_null(strstr(rd->text, "weft_tasks{worker=\"1\",state=\"waiting\"} 0\n"));
    cr_assert_not_null(strstr(rd->text, "weft_tasks{worker=\"0\",state=\"finished\"} 0\n"));
    cr_assert_not_null(strstr(rd->text, "weft_tasks_finished_total{worker=\"1\"} 2\n"));

    cr_assert_gt(rd->text_len, 0);
    cr_assert_eq((size_t)rd->text_len, strlen(rd->text), "it fit");
    cr_assert_not_null(strstr(rd->text, "# TYPE weft_tasks_spawned_total counter\n"));
    cr_assert_not_null(strstr(rd->text, "weft_workers 2\n"));
    cr_assert_not_null(strstr(rd->text, "weft_resumes_total{worker=\"1\"} "));
    cr_assert_not_null(strstr(rd->text, "# TYPE weft_tasks_alive gauge\n"));
    cr_assert_not_null(strstr(rd->text, "weft_pool_jobs_total 0\n"));
    cr_assert_eq(rd->small_len, rd->text_len, "the full length, as snprintf");
    cr_assert_not_null(strstr(rd->text, "# TYPE weft_schedule_latency_seconds histogram\n"));
    cr_assert_not_null(strstr(rd->text, "weft_poll_seconds_bucket{le=\"+Inf\"} "));

    /* One in 256 of the 20,000 parks and resumes, and more. */
    cr_assert_eq(rd->r_lat, 0);
    cr_assert_eq(rd->r_poll, 0);
    cr_assert_eq(rd->r_hbad, -EINVAL);
    cr_assert_geq(rd->lat.count, 10, "sampled wakes: %llu", (unsigned long long)rd->lat.count);
    cr_assert_geq(rd->poll.count, 10, "sampled resumes: %llu", (unsigned long long)rd->poll.count);
    uint64_t n = 0;
    for (int k = 0; k < WEFT_HIST_BUCKETS; k++)
        n += rd->poll.buckets[k];
    cr_assert_eq(n, rd->poll.count);
    cr_assert_gt(rd->poll.sum_ns, 0);
    cr_assert_eq(strlen(rd->small), sizeof rd->small - 1, "truncated and terminated");

    /* After the runtime: the handle says so. */
    weft_stats s;
    cr_assert_eq(weft_runtime_stats(rd->rt, -1, &s, sizeof s), -ESHUTDOWN);
    cr_assert_eq(weft_metrics_text(rd->rt, NULL, 0), -ESHUTDOWN);
    cr_assert_eq(weft_runtime_stats(NULL, -1, &s, sizeof s), -EINVAL);
    cr_assert_eq(weft_runtime_stats(rd->rt, -1, &s, 8), -EINVAL);
    weft_runtime_release(rd->rt);
    free(rd);
}

/* ---- The debug endpoint ---- */

/* One request on a new connection; returns the whole response (malloc'd). */
static char *http_get(const weft_addr *addr, const char *request)
{
    int fd = weft_dial(addr, weft_deadline_in(5 * WEFT_SEC));
    cr_assert_geq(fd, 0, "dial: %s", weft_strerror(fd));
    cr_assert_eq(weft_write(fd, request, strlen(request), weft_deadline_in(5 * WEFT_SEC)),
                 (ssize_t)strlen(request));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n = weft_read(fd, buf + len, cap - 1 - len, weft_deadline_in(5 * WEFT_SEC));
        cr_assert_geq(n, 0, "read: %s", weft_strerror((int)n));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    weft_close(fd);
    return buf;
}

static void *parked_forever(void *arg)
{
    weft_sem *s = arg;
    weft_sem_acquire(s, WEFT_FOREVER);
    return NULL;
}

static void *endpoint_main(void *arg)
{
    (void)arg;
    weft_addr at;
    cr_assert_eq(weft_debug_serve(NULL, &at), 0);
    cr_assert_gt(weft_addr_port(&at), 0);
    weft_sem sem = WEFT_SEM_INIT(0);
    weft_task *t;
    weft_spawn_opts o = {.name = "waits-on-sem"};
    cr_assert_eq(weft_spawn_on(weft_worker_count() - 1, &t, parked_forever, &sem, &o), 0);
    weft_sleep(5 * WEFT_MSEC);

    char *r = http_get(&at, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Content-Type: text/plain; version=0.0.4\r\n"), "%s", r);
    cr_assert_not_null(strstr(r, "\r\n\r\n# HELP weft_workers"), "%s", r);
    cr_assert_not_null(strstr(r, "weft_tasks_spawned_total{worker=\"0\"} "), "%s", r);
    /* Histogram edges: bucket k holds [2^k, 2^(k+1)) whole ns, so the cumulative count up to
     * it is that of the samples of at most 2^(k+1) - 1 ns, written exactly (it was 2^(k+1),
     * under which a sample of exactly 2^(k+1) ns, counted one bucket up, would fall; and %g
     * rounded the last edge to 549.755814). The counts never fall, the edges always grow,
     * and +Inf is the count. */
    cr_assert_not_null(strstr(r, "weft_poll_seconds_bucket{le=\"0.000000001\"} "), "%s", r);
    cr_assert_not_null(strstr(r, "weft_poll_seconds_bucket{le=\"0.000001023\"} "), "%s", r);
    cr_assert_not_null(strstr(r, "weft_poll_seconds_bucket{le=\"549.755813887\"} "), "%s", r);
    static const char *const hists[] = {"weft_poll_seconds", "weft_schedule_latency_seconds"};
    for (int i = 0; i < 2; i++) {
        const char *h = hists[i];
        char pat[64];
        snprintf(pat, sizeof pat, "\n%s_bucket{le=\"", h);
        double le_prev = -1;
        unsigned long long n_prev = 0, n = 0, count = 0;
        int nbuckets = 0;
        for (const char *p = strstr(r, pat); p; p = strstr(p + 1, pat)) {
            p += strlen(pat);
            if (strncmp(p, "+Inf\"} ", 7) == 0) {
                n = strtoull(p + 7, NULL, 10);
                break;
            }
            char *end;
            double le = strtod(p, &end);
            cr_assert(strncmp(end, "\"} ", 3) == 0, "%s", p);
            n = strtoull(end + 3, NULL, 10);
            cr_assert_gt(le, le_prev, "%s: edges grow", h);
            cr_assert_geq(n, n_prev, "%s: counts are cumulative", h);
            le_prev = le;
            n_prev = n;
            nbuckets++;
        }
        cr_assert_eq(nbuckets, WEFT_HIST_BUCKETS - 1, "%s", h);
        cr_assert_geq(n, n_prev, "%s: +Inf holds them all", h);
        snprintf(pat, sizeof pat, "\n%s_count ", h);
        cr_assert_not_null(strstr(r, pat), "%s", h);
        count = strtoull(strstr(r, pat) + strlen(pat), NULL, 10);
        cr_assert_eq(n, count, "%s: +Inf is the count", h);
    }
    free(r);

    /* Clients that connect and send nothing do not hold the endpoint: connections are
     * served by tasks of their own (before, one at a time, each idle one for its 5 s, so
     * this scrape waited 15 s and its 5 s read gave up). */
    int idle[3];
    for (int i = 0; i < 3; i++) {
        idle[i] = weft_dial(&at, weft_deadline_in(5 * WEFT_SEC));
        cr_assert_geq(idle[i], 0);
    }
    r = http_get(&at, "GET /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    free(r);
    for (int i = 0; i < 3; i++)
        weft_close(idle[i]);

    /* Control bytes in a name or a spawn site do not reach the text dump as they are (a
     * newline would forge a line of it): \xHH, and the quote and backslash escaped. */
    weft_task *ctl;
    weft_spawn_opts oc = {.name = "a\tb\nc\"d\\e"};
    cr_assert_eq(weft_spawn_at("odd\rsite.c", 7, &ctl, parked_forever, &sem, &oc), 0);
    weft_sleep(WEFT_MSEC);

    r = http_get(&at, "GET /debug/tasks.txt HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "\"a\\x09b\\x0ac\\\"d\\\\e\" on worker"), "%s", r);
    cr_assert_not_null(strstr(r, " at odd\\x0dsite.c:7\n"), "%s", r);
    cr_assert_null(strchr(r, '\t'), "a raw tab in the dump: %s", r);
    cr_assert_not_null(strstr(r, "\"waits-on-sem\""), "%s", r);
    cr_assert_not_null(strstr(r, "parked on semaphore"), "%s", r);
    cr_assert_not_null(strstr(r, "\"weft-debug\""), "the endpoint's own task: %s", r);
    free(r);

    /* The same as JSON, which a JSON parser accepts: valid UTF-8 too, with names that are
     * not (a probe: eight 2-byte characters cut to 15 bytes, and a stray 0xff, were copied
     * as they were, and strict parsers refused the whole document). */
    weft_sem sem2 = WEFT_SEM_INIT(0);
    weft_task *odd[2];
    weft_spawn_opts on = {.name =
                              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"};
    cr_assert_eq(weft_spawn(&odd[0], parked_forever, &sem2, &on), 0);
    on.name = "bad\xff";
    cr_assert_eq(weft_spawn(&odd[1], parked_forever, &sem2, &on), 0);
    weft_sleep(WEFT_MSEC);
    r = http_get(&at, "GET /debug/tasks HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Content-Type: application/json\r\n"), "%s", r);
    const char *body = strstr(r, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    cr_assert(strncmp(body, "{\"ntasks\":", 10) == 0, "%s", body);
    cr_assert_not_null(strstr(body, "\"name\":\"waits-on-sem\""), "%s", body);
    cr_assert_not_null(strstr(body, "\"wait\":{\"kind\":\"semaphore\""), "%s", body);
    cr_assert_not_null(strstr(body, "\"frames\":[{\"pc\":\"0x"), "%s", body);
    char path[] = "/tmp/weft-tasks-XXXXXX";
    int tfd = mkstemp(path);
    cr_assert_geq(tfd, 0);
    cr_assert_eq(write(tfd, body, strlen(body)), (ssize_t)strlen(body));
    close(tfd);
    char cmd[512];
    snprintf(
        cmd, sizeof cmd,
        "${PYTHON3:-python3} -c 'import json,sys; d=json.loads(open(sys.argv[1], \"rb\").read()); "
        "assert d[\"ntasks\"] == len(d[\"tasks\"]) >= 5; n=[t[\"name\"] for t in "
        "d[\"tasks\"]]; assert \"\\u00e9\" * 7 + \"\\ufffd\" in n, n; "
        "assert \"bad\\ufffd\" in n, n' %s",
        path);
    int st = system(cmd);
    unlink(path);
    cr_assert_eq(st, 0, "not JSON, or the count or the names are off:\n%s", body);
    free(r);
    cr_assert_eq(weft_sem_release(&sem2, 2), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_join(odd[i], NULL, WEFT_FOREVER), 0);

    /* The counters as JSON (the console's /debug/stats), per worker and in total. */
    r = http_get(&at, "GET /debug/stats HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Content-Type: application/json\r\n"), "%s", r);
    body = strstr(r, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    cr_assert(strncmp(body, "{\"now_ns\":", 10) == 0, "%s", body);
    char spath[] = "/tmp/weft-stats-XXXXXX";
    tfd = mkstemp(spath);
    cr_assert_geq(tfd, 0);
    cr_assert_eq(write(tfd, body, strlen(body)), (ssize_t)strlen(body));
    close(tfd);
    char scmd[512];
    snprintf(scmd, sizeof scmd,
             "${PYTHON3:-python3} -c 'import json,sys; d=json.load(open(sys.argv[1])); "
             "w=d[\"workers\"]; assert [x[\"index\"] for x in w] == [0, 1]; "
             "assert d[\"total\"][\"nspawned\"] == sum(x[\"nspawned\"] for x in w) >= 3; "
             "assert len(d[\"histograms\"][\"poll_time\"][\"buckets\"]) == 40' %s",
             spath);
    st = system(scmd);
    unlink(spath);
    cr_assert_eq(st, 0, "not JSON, or the figures are off:\n%s", body);
    free(r);

    /* The console: one page, its script and style inside it. */
    r = http_get(&at, "GET /debug/ HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "Content-Type: text/html; charset=utf-8\r\n"), "%s", r);
    cr_assert_not_null(strstr(r, "<title>weft console</title>"), "%s", r);
    cr_assert_not_null(strstr(r, "getJSON('/debug/stats')"), "%s", r);
    cr_assert_null(strstr(r, "<script src"), "%s", r);
    cr_assert_not_null(strstr(r, "</html>\n"), "the whole page: %s", r);
    free(r);

    r = http_get(&at, "HEAD /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_null(strstr(r, "# HELP"), "no body for HEAD: %s", r);
    free(r);
    r = http_get(&at, "GET /nothing HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 404 ", 13) == 0, "%s", r);
    free(r);
    r = http_get(&at, "POST /metrics HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 405 ", 13) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"), "a 405 names the methods: %s", r);
    free(r);
    r = http_get(&at, "garbage\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 400 ", 13) == 0, "%s", r);
    free(r);
    /* A request line without its target: the next line is not read as one. */
    r = http_get(&at, "GET\r\n/metrics HTTP/1.0\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.0 400 ", 13) == 0, "%s", r);
    free(r);

    cr_assert_eq(weft_sem_release(&sem, 2), 0);
    cr_assert_eq(weft_join(t, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(ctl, NULL, WEFT_FOREVER), 0);
    return NULL; /* the endpoint's task is cancelled with the runtime */
}

/* ---- A stall on the task's record (the console's stall lint) ---- */

static atomic_int spinner_caught; /* reports naming "spinner" the log hook saw */

static void on_stall_log(void *arg, int level, const char *text)
{
    (void)arg, (void)level;
    if (strstr(text, "stall: task") && strstr(text, "\"spinner\""))
        atomic_fetch_add(&spinner_caught, 1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs without a switch until the stall detector has reported it twice (at 10 ms, then at
 * 20: one stall, reported again as it doubled; 20 s at most), then waits on the semaphore. */
static void *spin_then_park(void *arg)
{
    int64_t end = mono_ns() + 20 * WEFT_SEC;
    while (atomic_load(&spinner_caught) < 2 && mono_ns() < end)
        ;
    weft_sem_acquire(arg, WEFT_FOREVER);
    return NULL;
}

static void *stall_record_main(void *arg)
{
    (void)arg;
    weft_addr at;
    cr_assert_eq(weft_debug_serve(NULL, &at), 0);
    weft_sem sem = WEFT_SEM_INIT(0);
    weft_task *spinner, *calm;
    weft_spawn_opts o = {.name = "spinner"};
    cr_assert_eq(weft_spawn_on(1, &spinner, spin_then_park, &sem, &o), 0);
    o.name = "calm";
    cr_assert_eq(weft_spawn_on(1, &calm, parked_forever, &sem, &o), 0);
    for (int i = 0; i < 2000 && atomic_load(&spinner_caught) < 2; i++)
        weft_sleep(10 * WEFT_MSEC);
    cr_assert_geq(atomic_load(&spinner_caught), 2, "the stall detector did not report the spinner");
    weft_sleep(5 * WEFT_MSEC); /* the spinner parks */

    char *r = http_get(&at, "GET /debug/tasks HTTP/1.0\r\n\r\n");
    const char *body = strstr(r, "\r\n\r\n");
    cr_assert_not_null(body, "%s", r);
    body += 4;
    char path[] = "/tmp/weft-stall-XXXXXX";
    int tfd = mkstemp(path);
    cr_assert_geq(tfd, 0);
    cr_assert_eq(write(tfd, body, strlen(body)), (ssize_t)strlen(body));
    close(tfd);
    /* The spinner's record holds one stall (reported twice), at least 20 ms long; calm, on
     * the spinner's worker, none. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "${PYTHON3:-python3} -c 'import json,sys; t={x[\"name\"]: x for x in "
             "json.load(open(sys.argv[1]))[\"tasks\"]}; s=t[\"spinner\"]; "
             "assert s[\"stalls\"] == 1 and s[\"stall_max_ms\"] >= 20, s; "
             "assert t[\"calm\"][\"stalls\"] == 0 and t[\"calm\"][\"age_ms\"] > 0' %s",
             path);
    int st = system(cmd);
    unlink(path);
    cr_assert_eq(st, 0, "the stall is not on the record:\n%s", body);
    free(r);
    cr_assert_eq(weft_sem_release(&sem, 2), 0);
    cr_assert_eq(weft_join(spinner, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(calm, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(metrics, a_stall_is_recorded_on_the_task_and_shown_in_the_dump)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.stall_ms = 10;
    c.handoff_us = -1; /* the stalled task keeps its worker: the stall is the subject */
    c.log = on_stall_log;
    run_main_cfg(&c, stall_record_main, NULL);
}

Test(metrics, the_debug_endpoint_serves_metrics_and_tasks)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    run_main_cfg(&c, endpoint_main, NULL);
    cr_assert_eq(weft_debug_serve(NULL, NULL), -EPERM, "outside a runtime");
}

/* Request-targets and the page each must get: absolute-form (a proxy's) routes by its path
 * alone, and a '/' in a query is no path. */
static const struct routed {
    const char *target, *page;
} routed[] = {
    {"/metrics?next=/debug/tasks", "# HELP weft_workers"},
    {"http://h:1/metrics?x=/debug/", "# HELP weft_workers"},
    {"http://h:1", "weft debug endpoint"},
    {"http://h:1?next=/metrics", "weft debug endpoint"},
    {"HTTP://h:1#/metrics", "weft debug endpoint"},
    {"http://h:1/debug/stats?a=b", "{\"now_ns\":"},
};
#define NROUTED (sizeof routed / sizeof routed[0])

static void *routing_main(void *arg)
{
    char **got = arg; /* each answer's first line and the start of its body */
    weft_addr at;
    if (weft_debug_serve(NULL, &at) < 0)
        return NULL;
    for (size_t i = 0; i < NROUTED; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", routed[i].target);
        char *r = http_get(&at, req);
        const char *body = strstr(r, "\r\n\r\n");
        got[i] = malloc(256);
        snprintf(got[i], 256, "%.*s|%.40s", (int)strcspn(r, "\r"), r, body ? body + 4 : "");
        free(r);
    }
    return NULL;
}

Test(metrics, the_debug_endpoint_routes_a_request_target_by_its_path_alone)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    char *got[NROUTED] = {0};
    run_main_cfg(&c, routing_main, got);
    for (size_t i = 0; i < NROUTED; i++) {
        cr_assert_not_null(got[i], "%s: no answer", routed[i].target);
        cr_assert(strncmp(got[i], "HTTP/1.0 200 OK|", 16) == 0, "%s: %s", routed[i].target, got[i]);
        cr_assert(strncmp(got[i] + 16, routed[i].page, strlen(routed[i].page)) == 0,
                  "%s: got %s, not %s", routed[i].target, got[i], routed[i].page);
        free(got[i]);
    }
}

/* ---- The metrics text and spawns from outside ---- */

#ifdef WEFT_TESTING
#include "metrics.h"

static weft_runtime *hook_rt;
static int hook_spawn_rc = 1, hook_join_rc = 1;
static void *hook_result;

static void *forty_two(void *arg)
{
    (void)arg;
    return (void *)42;
}

/* A thread outside the runtime: a spawn onto it and a join. */
static void *spawner(void *arg)
{
    (void)arg;
    weft_handle *h = NULL;
    hook_spawn_rc = weft_runtime_spawn(hook_rt, &h, forty_two, NULL, NULL);
    if (hook_spawn_rc == 0) {
        hook_join_rc = weft_handle_join(h, &hook_result, WEFT_FOREVER);
        weft_handle_release(h);
    }
    return NULL;
}

/* Between the figures and the text of a weft_metrics_text: another thread spawns onto the
 * runtime, and the rendering waits for that spawn and its task to end. */
static void spawn_during_format(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, spawner, NULL) == 0)
        pthread_join(th, NULL);
}

static weft_event text_done = WEFT_EVENT_INIT;

static void *metrics_text_thread(void *arg)
{
    int *len = arg;
    *len = weft_metrics_text(hook_rt, NULL, 0);
    weft_event_set(&text_done);
    return NULL;
}

static void *spawn_during_format_main(void *arg)
{
    int *len = arg;
    hook_rt = weft_runtime_current();
    weft__metrics_format_hook = spawn_during_format;
    pthread_t th;
    if (pthread_create(&th, NULL, metrics_text_thread, len) != 0)
        return NULL;
    /* Parked, so that the worker is free to run the task spawned from outside. */
    weft_event_wait(&text_done, WEFT_FOREVER);
    pthread_join(th, NULL);
    weft__metrics_format_hook = NULL;
    weft_runtime_release(hook_rt);
    return NULL;
}

/* Bug: weft_metrics_text held the runtime handle's lock for the whole rendering (the
 * allocations and the formatting of every series of every worker), and every spawn from
 * outside (weft_runtime_spawn) takes that lock: a big rendering held them all back. The lock
 * is now held only while the figures are read. The test spawns from outside while a rendering
 * is between its figures and its text (a WEFT_TESTING hook), and waits for that spawn: with the
 * lock held there, it waited for good (the suite's timeout ends it). */
Test(metrics, a_spawn_from_outside_does_not_wait_for_the_metrics_text, .timeout = 30)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    int len = 0;
    run_main_cfg(&c, spawn_during_format_main, &len);
    cr_assert_gt(len, 0, "weft_metrics_text: %s", weft_strerror(len));
    cr_assert_eq(hook_spawn_rc, 0, "%s", weft_strerror(hook_spawn_rc));
    cr_assert_eq(hook_join_rc, 0, "%s", weft_strerror(hook_join_rc));
    cr_assert_eq(hook_result, (void *)42);
}
#endif

/* The endpoint's limit (DEBUG_CONNS_MAX in src/debug_http.c), and the idle clients here: four
 * more than it holds. */
#define ENDPOINT_CONNS 16
#define NIDLE          (ENDPOINT_CONNS + 4)

typedef struct idle_run {
    char *answer;     /* the scrape's answer */
    int ended[NIDLE]; /* 1: the endpoint had closed that idle client when it came */
} idle_run;

static void *idle_clients_main(void *arg)
{
    idle_run *ir = arg;
    weft_addr at;
    if (weft_debug_serve(NULL, &at) < 0)
        return NULL;
    /* Clients that connect and send nothing, accepted in this order (the listener's queue is
     * first in, first out), then a scrape behind them. */
    int idle[NIDLE];
    for (int i = 0; i < NIDLE; i++)
        idle[i] = weft_dial(&at, weft_deadline_in(5 * WEFT_SEC));
    ir->answer = http_get(&at, "GET /metrics HTTP/1.0\r\n\r\n");
    /* Which idle clients the endpoint has closed by now: the end of the stream, or nothing
     * to read yet. */
    for (int i = 0; i < NIDLE; i++) {
        char byte;
        ir->ended[i] = idle[i] >= 0 && weft_recv(idle[i], &byte, 1, MSG_DONTWAIT, 0) == 0;
        weft_close(idle[i]);
    }
    return NULL;
}

/* Bug: past 16 connections, the accepting task served the next one itself, so that a 17th
 * client that sent nothing held the endpoint for its whole 5 s deadline (and 16 more held
 * every connection task), and a scrape behind them was answered only once their deadlines
 * had closed them all. Now each connection past the limit closes the oldest that waits on its
 * client: the scrape is answered while the newest idle clients are still connected. The order
 * of events is checked, not time: the five oldest idle clients (one per connection past the
 * limit, the scrape included) are closed when the answer comes, and the others are not. */
Test(metrics, the_debug_endpoint_answers_while_idle_clients_fill_it)
{
    weft_config c;
    weft_config_init(&c);
    c.workers = 1;
    idle_run ir = {0};
    run_main_cfg(&c, idle_clients_main, &ir);
    cr_assert_not_null(ir.answer);
    cr_assert(strncmp(ir.answer, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", ir.answer);
    cr_assert_not_null(strstr(ir.answer, "\r\n\r\n# HELP weft_workers"), "%s", ir.answer);
    free(ir.answer);
    for (int i = 0; i < NIDLE; i++)
        cr_assert_eq(ir.ended[i], i < NIDLE + 1 - ENDPOINT_CONNS, "idle client %d", i);
}

/* ---- A task's age against the clock of the worker that lists it ---- */

/* The scene (sharded, two workers, worker 1 the one whose part is written late in a tick):
 * `hog` keeps worker 1 busy while a wake of `early` and the spawn of the dump's task for
 * worker 1 wait in its inbox, so that both run in the next tick, early first, under that
 * tick's clock; meanwhile `late` is spawned onto worker 1 from worker 0, whose clock has moved
 * 3 ms on. Its age, listed by worker 1's part, was that tick's clock minus the spawn's, in
 * unsigned milliseconds: 4294967294 (49 days). */
static atomic_int age_armed, age_dump_posted, age_release, age_early_ran, age_late_spawned;
static weft_event age_wake = WEFT_EVENT_INIT;

static void age_on_spawn(void *arg, uint64_t task, uint64_t parent, unsigned worker)
{
    (void)arg, (void)task, (void)parent;
    if (worker == 1 && atomic_load(&age_armed)) /* the dump's task for worker 1 */
        atomic_store(&age_dump_posted, 1);
}

static void *age_hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&age_release))
        ;
    return NULL;
}

static void *age_early(void *arg)
{
    (void)arg;
    weft_event_wait(&age_wake, WEFT_FOREVER);
    int64_t end = mono_ns() + 2 * WEFT_MSEC; /* this tick's clock falls behind */
    while (mono_ns() < end)
        ;
    atomic_store(&age_early_ran, 1);
    while (!atomic_load(&age_late_spawned))
        ;
    return NULL;
}

static void *age_nothing(void *arg)
{
    (void)arg;
    return NULL;
}

/* On worker 0: lets the hog go once the dump's task for worker 1 is posted, and spawns `late`
 * once early has run 2 ms into worker 1's tick and a sleep has moved worker 0's clock on. */
static void *age_director(void *arg)
{
    weft_task **late = arg;
    while (!atomic_load(&age_dump_posted))
        weft_yield();
    atomic_store(&age_release, 1);
    while (!atomic_load(&age_early_ran))
        weft_sleep(WEFT_MSEC);
    weft_sleep(WEFT_MSEC);
    weft_spawn_opts o = {.name = "late", .flags = WEFT_SPAWN_PINNED};
    cr_assert_eq(weft_spawn_on(1, late, age_nothing, NULL, &o), 0);
    atomic_store(&age_late_spawned, 1);
    return NULL;
}

static void *age_main(void *arg)
{
    (void)arg;
    weft_addr at;
    cr_assert_eq(weft_debug_serve(NULL, &at), 0);
    weft_spawn_opts pin = {.flags = WEFT_SPAWN_PINNED};
    weft_task *early, *hog, *director, *late = NULL;
    cr_assert_eq(weft_spawn_on(1, &early, age_early, NULL, &pin), 0);
    weft_sleep(10 * WEFT_MSEC); /* early waits */
    cr_assert_eq(weft_spawn_on(1, &hog, age_hog, NULL, &pin), 0);
    weft_sleep(10 * WEFT_MSEC); /* the hog runs */
    weft_event_set(&age_wake);  /* in worker 1's inbox, behind the hog */
    cr_assert_eq(weft_spawn(&director, age_director, &late, &pin), 0);
    atomic_store(&age_armed, 1);
    char *r = http_get(&at, "GET /debug/tasks HTTP/1.0\r\n\r\n");
    cr_assert_eq(weft_join(director, NULL, WEFT_FOREVER), 0);
    const char *l = strstr(r, "\"name\":\"late\"");
    cr_assert_not_null(l, "late is in worker 1's part: %s", r);
    const char *age = strstr(l, "\"age_ms\":");
    cr_assert_not_null(age, "%s", l);
    unsigned long long ms = strtoull(age + 9, NULL, 10);
    cr_assert_lt(ms, 60000, "a task spawned just now is %llu ms old: %s", ms, r);
    free(r);
    cr_assert_eq(weft_join(early, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(hog, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_join(late, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(metrics, the_age_of_a_task_spawned_by_a_worker_whose_clock_is_ahead)
{
    static const weft_tracer tracer = {.on_spawn = age_on_spawn};
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_SHARDED;
    c.stall_ms = -1; /* the hog and early run on: not the subject */
    c.handoff_us = -1;
    c.tracer = &tracer;
    run_main_cfg(&c, age_main, NULL);
}

/* ---- /debug/tasks while a worker is stuck ---- */

/* A request is answered within its deadline even while a worker is stuck (its thread blocked
 * outside weft: no switch, no part of the dump from it): that worker's tasks are listed
 * without backtraces. The dump waited for the stuck worker's part for good, and the request
 * with it, past its 5 s; 16 such requests held every connection task, and the accepting task
 * itself, so that /metrics went unanswered too. */
static sem_t stuck_go;

static void *stuck_until_posted(void *arg)
{
    (void)arg;
    while (sem_wait(&stuck_go) != 0) /* the worker's thread, held: no switch */
        ;
    return NULL;
}

static void *stuck_worker_main(void *arg)
{
    (void)arg;
    weft_addr at;
    cr_assert_eq(weft_debug_serve(NULL, &at), 0);
    weft_sem sem = WEFT_SEM_INIT(0);
    weft_task *parked, *stuck;
    weft_spawn_opts o = {.name = "parked-on-1"};
    cr_assert_eq(weft_spawn_on(1, &parked, parked_forever, &sem, &o), 0);
    weft_sleep(10 * WEFT_MSEC); /* it parks */
    o.name = "stuck";
    cr_assert_eq(weft_spawn_on(1, &stuck, stuck_until_posted, NULL, &o), 0);
    weft_sleep(10 * WEFT_MSEC);                                   /* worker 1's thread is held */
    char *r = http_get(&at, "GET /debug/tasks HTTP/1.0\r\n\r\n"); /* reads within 5 s */
    cr_assert(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "\"name\":\"parked-on-1\",\"worker\":1"), "%s", r);
    cr_assert_not_null(strstr(r, "\"name\":\"stuck\",\"worker\":1"), "%s", r);
    cr_assert_not_null(strstr(r, "\"name\":\"main\""), "%s", r);
    cr_assert_not_null(strstr(r, "]}\n"), "the whole document: %s", r);
    free(r);
    sem_post(&stuck_go);
    cr_assert_eq(weft_join(stuck, NULL, WEFT_FOREVER), 0);
    cr_assert_eq(weft_sem_release(&sem, 1), 0);
    cr_assert_eq(weft_join(parked, NULL, WEFT_FOREVER), 0);
    return NULL;
}

Test(metrics, the_task_dump_is_answered_while_a_worker_is_stuck, .timeout = 60)
{
    sem_init(&stuck_go, 0, 0);
    weft_config c;
    weft_config_init(&c);
    c.workers = 2;
    c.mode = WEFT_MODE_SHARDED;
    c.stall_ms = -1;   /* the stuck worker is the subject, not its report */
    c.handoff_us = -1; /* and it keeps its thread */
    run_main_cfg(&c, stuck_worker_main, NULL);
}
