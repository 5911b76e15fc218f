/* weft-kv's command line: options, then the runtime (sharded, one shard per worker) and the
 * server (server.c). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <weft.h>

#include "cmd.h"
#include "server.h"

int kv_serve_main(void);

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-kv [--port N] [--bind ADDR] [--workers N] [--backend epoll|io_uring]\n"
               "               [--maxclients N] [--maxmemory BYTES]\n"
               "               [--maxmemory-policy noeviction|allkeys-lru|"
               "volatile-lru]\n"
               "               [--appendonly yes|no] [--appendfsync always|everysec|no] "
               "[--dir DIR]\n"
               "               [--auto-aof-rewrite-percentage N] [--auto-aof-rewrite-min-size "
               "BYTES]\n"
               "\n"
               "A Redis-protocol (RESP2, RESP3) key-value server on weft, sharded by key over one\n"
               "shard per worker thread. Defaults: --port 6379 --bind 127.0.0.1, one worker per\n"
               "CPU (or WEFT_WORKERS), the epoll backend (or WEFT_BACKEND). --port 0 takes a\n"
               "free port and prints it. Stop it with SIGINT, SIGTERM or SHUTDOWN.\n"
               "--appendonly yes logs every write to DIR/weft-kv-<shard>.aof (DIR: ., fsync\n"
               "everysec by default) and replays the files at start (with the same --workers);\n"
               "a file is rewritten (compacted) when it has grown by the percentage (100) since\n"
               "its last rewrite and is at least the min size (64 MB), or on BGREWRITEAOF.\n"
               "\n"
               "Try it:\n"
               "  weft-kv --port 7379 --workers 2 &\n"
               "  redis-cli -p 7379 set greeting hello\n"
               "  redis-cli -p 7379 get greeting\n"
               "  redis-benchmark -p 7379 -q -t set,get -P 16\n"
               "\n"
               "Commands and design: docs/kv.md.\n");
}

static void *main_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)kv_serve_main();
}

static int number(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    kv_cfg.port = 6379;
    kv_cfg.bind = "127.0.0.1";
    kv_cfg.dir = ".";
    kv_cfg.maxclients = 10000;
    int appendonly = 0, fsync_policy = AOF_EVERYSEC;
    int rewrite_pct_set = 0, rewrite_min_set = 0;
    for (int i = 1; i < argc; i += 2) { /* option and value pairs, but for --help */
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--port") && v && number(v, 0, 65535, &n) == 0) {
            kv_cfg.port = (int)n;
        } else if (!strcmp(o, "--bind") && v) {
            kv_cfg.bind = v;
        } else if (!strcmp(o, "--workers") && v && number(v, 1, WEFT_WORKERS_MAX, &n) == 0) {
            kv_cfg.workers = (unsigned)n;
        } else if (!strcmp(o, "--backend") && v &&
                   (!strcmp(v, "epoll") || !strcmp(v, "io_uring"))) {
            kv_cfg.backend = !strcmp(v, "epoll") ? WEFT_BACKEND_EPOLL : WEFT_BACKEND_IO_URING;
        } else if (!strcmp(o, "--appendonly") && v && (!strcmp(v, "yes") || !strcmp(v, "no"))) {
            appendonly = !strcmp(v, "yes");
        } else if (!strcmp(o, "--appendfsync") && v &&
                   (!strcmp(v, "always") || !strcmp(v, "everysec") || !strcmp(v, "no"))) {
            fsync_policy = !strcmp(v, "always")     ? AOF_ALWAYS
                           : !strcmp(v, "everysec") ? AOF_EVERYSEC
                                                    : AOF_NO;
        } else if (!strcmp(o, "--auto-aof-rewrite-percentage") && v &&
                   number(v, 0, 1000000, &n) == 0) {
            atomic_store(&kv_cfg.aof_rewrite_pct, n);
            rewrite_pct_set = 1;
        } else if (!strcmp(o, "--auto-aof-rewrite-min-size") && v &&
                   number(v, 0, (1LL << 62), &n) == 0) {
            atomic_store(&kv_cfg.aof_rewrite_min, n);
            rewrite_min_set = 1;
        } else if (!strcmp(o, "--aof-rewrite-step") && v && number(v, 1, 1 << 20, &n) == 0) {
            kv_cfg.aof_rewrite_step = (int)n; /* tuning and tests: how finely a walk is cut */
        } else if (!strcmp(o, "--dir") && v) {
            kv_cfg.dir = v;
        } else if (!strcmp(o, "--maxclients") && v && number(v, 1, 1LL << 30, &n) == 0) {
            kv_cfg.maxclients = n;
        } else if (!strcmp(o, "--maxmemory") && v && number(v, 0, (1LL << 62), &n) == 0) {
            atomic_store(&kv_cfg.maxmemory, n);
        } else if (!strcmp(o, "--maxmemory-policy") && v &&
                   (!strcmp(v, "noeviction") || !strcmp(v, "allkeys-lru") ||
                    !strcmp(v, "volatile-lru"))) {
            atomic_store(&kv_cfg.policy, !strcmp(v, "noeviction")    ? POLICY_NOEVICTION
                                         : !strcmp(v, "allkeys-lru") ? POLICY_ALLKEYS_LRU
                                                                     : POLICY_VOLATILE_LRU);
        } else {
            fprintf(stderr, "weft-kv: bad option or value: %s%s%s\n", o, v ? " " : "", v ? v : "");
            usage(stderr);
            return 2;
        }
    }
    /* Redis's defaults: a rewrite when the file has doubled, from 64 MB. */
    if (!rewrite_pct_set)
        atomic_store(&kv_cfg.aof_rewrite_pct, 100);
    if (!rewrite_min_set)
        atomic_store(&kv_cfg.aof_rewrite_min, 64LL * 1024 * 1024);
    if (!kv_cfg.aof_rewrite_step)
        kv_cfg.aof_rewrite_step = REWRITE_STEP;
    kv_cfg.aof_policy = appendonly ? fsync_policy : AOF_OFF;
    if (kv_hash_init() < 0) {
        fprintf(stderr, "weft-kv: getrandom failed: no key for the hashes\n");
        return 1;
    }
    kv_commands_init();
    /* Many clients need many fds. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* SIGINT and SIGTERM blocked before the workers start, so that they inherit the mask and
     * only the main task's weft_signal_wait takes them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    weft_config cfg;
    weft_config_init(&cfg);
    cfg.workers = kv_cfg.workers;
    cfg.mode = WEFT_MODE_SHARDED;
    cfg.backend = kv_cfg.backend;
    void *result = NULL;
    int r = weft_run(&cfg, main_task, NULL, &result);
    if (r < 0) {
        fprintf(stderr, "weft-kv: %s\n", weft_strerror(r));
        return 1;
    }
    return (int)(intptr_t)result;
}
