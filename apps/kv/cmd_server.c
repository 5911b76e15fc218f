/* Server and connection commands: PING, ECHO, AUTH, TIME, ROLE, SELECT, QUIT, HELLO, CLIENT,
 * COMMAND, CONFIG, MEMORY, INFO, SHUTDOWN. They run on the connection's task (multi), except
 * PING, ECHO, AUTH, TIME and ROLE, which are keyless procs run where the connection lives. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmd.h"
#include "multi.h"
#include "server.h"

/* The Redis version we answer as: redis-cli and redis-benchmark pick their features by it. */
#define KV_REDIS_VERSION "7.0.15"

void cmd_ping(kv_ctx *c)
{
    if (c->argc > 2)
        reply_arity(c->out, c->argv[0], c->argl[0]);
    else if (c->argc == 2)
        reply_bulk(c->out, c->argv[1], c->argl[1]);
    else
        reply_status(c->out, "PONG");
}

void cmd_echo(kv_ctx *c)
{
    reply_bulk(c->out, c->argv[1], c->argl[1]);
}

/* AUTH as Redis answers it with its default configuration: one user, "default", with no
 * password, so that any password is accepted for it and the one-argument form (which names
 * no user) is an error. Clients map these texts: redis-py raises AuthenticationError. */
void cmd_auth(kv_ctx *c)
{
    if (c->argc > 3)
        reply_error(c->out, ERR_SYNTAX);
    else if (c->argc == 2)
        reply_error(c->out, "ERR AUTH <password> called without any password configured for the "
                            "default user. Are you sure your configuration is correct?");
    else if (c->argl[1] == 7 && memcmp(c->argv[1], "default", 7) == 0)
        reply_ok(c->out);
    else
        reply_error(c->out, "WRONGPASS invalid username-password pair or user is disabled.");
}

/* TIME: the Unix time as seconds and microseconds, two bulks. */
void cmd_time(kv_ctx *c)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    reply_array(c->out, 2);
    reply_bulk_ll(c->out, (long long)tv.tv_sec);
    reply_bulk_ll(c->out, (long long)tv.tv_usec);
}

/* ROLE: a master with no replicas and replication offset 0, which is what weft-kv is. */
void cmd_role(kv_ctx *c)
{
    reply_array(c->out, 3);
    reply_bulks(c->out, "master");
    reply_int(c->out, 0);
    reply_array(c->out, 0);
}

void multi_select(kv_ctx *c)
{
    long long db;
    if (arg_ll(c, 1, &db) < 0)
        return;
    if (db < INT_MIN || db > INT_MAX) /* Redis parses the index as an int first */
        reply_error(c->out,
                    "ERR value is out of range, value must between -2147483648 and 2147483647");
    else if (db != 0)
        reply_error(c->out, "ERR DB index is out of range");
    else
        reply_ok(c->out);
}

void multi_quit(kv_ctx *c)
{
    reply_ok(c->out);
    c->conn->close_after = 1;
}

/* RESET: the connection as a new one, as Redis's clearClientConnectionState leaves it: out of
 * a transaction (MULTI's queue discarded, RESET itself is never queued) and its WATCHes,
 * RESP2, no name. Only database 0 exists here, and CLIENT NO-EVICT and NO-TOUCH change
 * nothing. */
void multi_reset(kv_ctx *c)
{
    kv_multi_free(c->conn); /* the queue, and the WATCHes with it */
    free(c->conn->name);
    c->conn->name = NULL;
    c->conn->out.resp3 = c->conn->tmp.resp3 = 0;
    reply_status(c->out, "RESET");
}

static int valid_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~')
            return 0;
    return 1;
}

static int set_name(kv_ctx *c, int i)
{
    if (!valid_name(c->argv[i], c->argl[i])) {
        reply_error(c->out, "ERR Client names cannot contain spaces, newlines or special "
                            "characters.");
        return -1;
    }
    free(c->conn->name);
    c->conn->name = NULL;
    if (c->argl[i]) {
        c->conn->name = malloc(c->argl[i] + 1);
        if (c->conn->name) {
            memcpy(c->conn->name, c->argv[i], c->argl[i]);
            c->conn->name[c->argl[i]] = 0;
        }
    }
    return 0;
}

/* ---- Subcommands (CLIENT, COMMAND, CONFIG) ---- */

/* A subcommand with Redis 7's arity, counting the command and the subcommand (-n: at least
 * n). `run` NULL: Redis has it and weft-kv does not. */
typedef struct subcommand {
    const char *name; /* lower case */
    int arity;
    kv_proc run;
} subcommand;

/* Runs the subcommand argv[1] of `parent` ("CLIENT") from `table`, with Redis's errors in
 * Redis's order: a name it does not know, then the arity ("'client|kill' command"); then
 * ours, for one Redis has and we do not. */
static const subcommand *find_subcommand(kv_ctx *c, const char *parent, const subcommand *table,
                                         size_t n)
{
    const subcommand *sub = NULL;
    for (size_t i = 0; i < n && !sub; i++)
        if (arg_is(c, 1, table[i].name))
            sub = &table[i];
    if (!sub) {
        reply_errorf(c->out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                     (int)(c->argl[1] > 128 ? 128 : c->argl[1]), c->argv[1], parent);
        return NULL;
    }
    if ((sub->arity > 0 && c->argc != sub->arity) || (sub->arity < 0 && c->argc < -sub->arity)) {
        char full[64];
        int len = snprintf(full, sizeof full, "%s|%s", parent, sub->name);
        reply_arity(c->out, full, (size_t)len); /* lower-cases it, as Redis's fullname is */
        return NULL;
    }
    return sub;
}

static void dispatch_subcommand(kv_ctx *c, const char *parent, const subcommand *table, size_t n)
{
    const subcommand *sub = find_subcommand(c, parent, table, n);
    if (!sub)
        return;
    if (!sub->run) { /* named as docs/kv.md names it, however the client spelled it */
        char up[32];
        size_t i = 0;
        for (; sub->name[i] && i < sizeof up - 1; i++)
            up[i] = (char)toupper((unsigned char)sub->name[i]);
        up[i] = '\0';
        reply_errorf(c->out, "ERR weft-kv: %s %s is not supported", parent, up);
        return;
    }
    sub->run(c);
}

void multi_hello(kv_ctx *c)
{
    if (c->argc >= 2) {
        long long v;
        if (resp_strtoll(c->argv[1], c->argl[1], &v) < 0) {
            reply_error(c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v < 2 || v > 3) {
            reply_error(c->out, "NOPROTO unsupported protocol version");
            return;
        }
        int name = 0, user = 0;
        for (int i = 2; i < c->argc; i++) {
            if (arg_is(c, i, "setname") && i + 1 < c->argc) {
                name = ++i;
            } else if (arg_is(c, i, "auth") && i + 2 < c->argc) {
                user = i + 1;
                i += 2;
            } else {
                reply_errorf(c->out, "ERR Syntax error in HELLO option '%.*s'", (int)c->argl[i],
                             c->argv[i]);
                return;
            }
        }
        /* As Redis with its default configuration: one user, "default", with no password
         * (any password is accepted for it); any other name is refused before anything else
         * changes. */
        if (user && !(c->argl[user] == 7 && memcmp(c->argv[user], "default", 7) == 0)) {
            reply_error(c->out, "WRONGPASS invalid username-password pair or user is disabled.");
            return;
        }
        /* As Redis: the options are checked first, then the name set, then the protocol. */
        if (name && set_name(c, name) < 0)
            return;
        /* The connection's buffers carry the protocol: this reply is the first in it. */
        c->conn->out.resp3 = c->conn->tmp.resp3 = v == 3;
    }
    reply_map(c->out, 7);
    reply_bulks(c->out, "server");
    reply_bulks(c->out, "redis");
    reply_bulks(c->out, "version");
    reply_bulks(c->out, KV_REDIS_VERSION);
    reply_bulks(c->out, "proto");
    reply_int(c->out, c->out->resp3 ? 3 : 2);
    reply_bulks(c->out, "id");
    reply_int(c->out, (long long)c->conn->id);
    reply_bulks(c->out, "mode");
    reply_bulks(c->out, "standalone");
    reply_bulks(c->out, "role");
    reply_bulks(c->out, "master");
    reply_bulks(c->out, "modules");
    reply_array(c->out, 0);
}

/* One connection's CLIENT LIST line (CLIENT INFO's reply), newline included, into b. */
static void client_line(sbuf *b, const kv_conn *k, const kv_shard *sh, int64_t now)
{
    /* In three pieces: the name, of any length, goes in as it is, between two fixed-size
     * formats (a name in one buffer cut the line, and the next client's ran onto it). */
    char line[256];
    int n = snprintf(line, sizeof line,
                     "id=%llu addr=%s laddr=%s fd=%d name=", (unsigned long long)k->id, k->addr,
                     k->laddr, k->fd);
    sbuf_add(b, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
    if (k->name)
        sbuf_add(b, k->name, strlen(k->name));
    n = snprintf(line, sizeof line,
                 " age=%lld idle=%lld flags=%s "
                 "db=0 sub=0 psub=0 ssub=0 multi=%ld qbuf=%zu qbuf-free=%zu "
                 "argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=%zu events=r "
                 "cmd=%s user=default redir=-1 resp=%d shard=%u\n",
                 (long long)(now - k->created_ms) / 1000, (long long)(now - k->last_ms) / 1000,
                 k->blocked ? "b"
                 : k->multi ? "x"
                            : "N",
                 kv_multi_count(k), k->qlen, k->qcap - k->qlen, k->qcap + k->out.cap + k->tmp.cap,
                 k->last_cmd ? k->last_cmd : "NULL", k->out.resp3 ? 3 : 2, sh->index);
    sbuf_add(b, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

/* __clientlist: CLIENT LIST's lines for this shard's connections. */
void cmd_clientlist(kv_ctx *c)
{
    kv_shard *sh = kv_local();
    sbuf b = {0};
    int64_t now = kv_mono_ms();
    for (kv_conn *k = sh->conns.next; k != &sh->conns; k = k->next)
        client_line(&b, k, sh, now);
    reply_bulk(c->out, b.data ? b.data : "", b.len);
    sbuf_free(&b);
}

/* Runs the internal command `cmd` (no arguments) on every shard: their replies in `tmp`, one
 * item each, NUL-terminated for the parsers below. Returns 0, or -1 after closing the
 * connection (a shard could not be reached: the reply is unknown). */
static int exec_on_every_shard(kv_ctx *c, const char *cmd, sbuf *tmp, kv_item *items)
{
    const char *argv[1] = {cmd};
    size_t argl[1] = {strlen(cmd)};
    if (kv_exec_all(c->conn, argv, argl, 1, tmp, items) < 0) {
        c->conn->close_after = 1;
        sbuf_free(tmp);
        return -1;
    }
    sbuf_add(tmp, "", 1);
    return 0;
}

/* The line of client `id` in a CLIENT LIST text, or NULL; *len gets its length with its
 * newline. Every line starts "id=<n> ". */
static const char *find_client_line(const char *all, size_t n, unsigned long long id, size_t *len)
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "id=%llu ", id);
    for (const char *p = all; p < all + n;) {
        const char *nl = memchr(p, '\n', (size_t)(all + n - p));
        const char *end = nl ? nl + 1 : all + n;
        if ((size_t)(end - p) > (size_t)plen && memcmp(p, prefix, (size_t)plen) == 0) {
            *len = (size_t)(end - p);
            return p;
        }
        p = end;
    }
    return NULL;
}

/* CLIENT LIST [TYPE type | ID id...]: Redis 7's filters. Every connection here is a normal
 * one, so TYPE normal lists them all and master, replica (slave) and pubsub none. */
static void client_list(kv_ctx *c)
{
    int only_ids = 0, none = 0;
    if (c->argc == 4 && arg_is(c, 2, "type")) {
        if (arg_is(c, 3, "master") || arg_is(c, 3, "replica") || arg_is(c, 3, "slave") ||
            arg_is(c, 3, "pubsub")) {
            none = 1;
        } else if (!arg_is(c, 3, "normal")) {
            reply_errorf(c->out, "ERR Unknown client type '%.*s'", (int)c->argl[3], c->argv[3]);
            return;
        }
    } else if (c->argc > 3 && arg_is(c, 2, "id")) {
        for (int i = 3; i < c->argc; i++) {
            long long id;
            if (resp_strtoll(c->argv[i], c->argl[i], &id) < 0) {
                reply_error(c->out, "ERR Invalid client ID");
                return;
            }
        }
        only_ids = 1;
    } else if (c->argc != 2) {
        reply_error(c->out, "ERR syntax error");
        return;
    }
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (exec_on_every_shard(c, "__clientlist", &tmp, items) < 0)
        return;
    sbuf all = {0};
    for (unsigned s = 0; s < kv_nshards() && !none; s++) {
        const char *p = tmp.data + items[s].off;
        const char *body = strchr(p, '\n') + 1;
        sbuf_add(&all, body, (size_t)atoll(p + 1));
    }
    if (only_ids) { /* the lines of the ids asked for, in their order (Redis's too) */
        sbuf picked = {0};
        for (int i = 3; i < c->argc; i++) {
            long long id;
            size_t len;
            resp_strtoll(c->argv[i], c->argl[i], &id);
            const char *line = id > 0 ? find_client_line(all.data ? all.data : "", all.len,
                                                         (unsigned long long)id, &len)
                                      : NULL;
            if (line)
                sbuf_add(&picked, line, len);
        }
        sbuf_free(&all);
        all = picked;
    }
    reply_verbatim(c->out, all.data ? all.data : "", all.len);
    sbuf_free(&all);
    sbuf_free(&tmp);
}

static void client_setname(kv_ctx *c)
{
    if (set_name(c, 2) == 0)
        reply_ok(c->out);
}

static void client_getname(kv_ctx *c)
{
    if (c->conn->name)
        reply_bulks(c->out, c->conn->name);
    else
        reply_null(c->out);
}

static void client_id(kv_ctx *c)
{
    reply_int(c->out, (long long)c->conn->id);
}

/* CLIENT INFO: this connection's CLIENT LIST line. Multi commands run on the connection's
 * task, so its shard is the local one. */
static void client_info(kv_ctx *c)
{
    sbuf b = {0};
    client_line(&b, c->conn, kv_local(), kv_mono_ms());
    reply_verbatim(c->out, b.data ? b.data : "", b.len);
    sbuf_free(&b);
}

/* CLIENT NO-EVICT and NO-TOUCH (7.2) take on or off, else Redis's "syntax error". Neither
 * changes anything here: eviction picks keys, never clients, and an LRU time is only
 * advisory. */
static void client_on_off(kv_ctx *c)
{
    if (arg_is(c, 2, "on") || arg_is(c, 2, "off"))
        reply_ok(c->out);
    else
        reply_error(c->out, "ERR syntax error");
}

/* CLIENT SETINFO (7.2): lib-name or lib-ver, a value without spaces or special characters
 * (checked as Redis does, then dropped: CLIENT LIST does not show them). */
static void client_setinfo(kv_ctx *c)
{
    if (!arg_is(c, 2, "lib-name") && !arg_is(c, 2, "lib-ver")) {
        reply_errorf(c->out, "ERR Unrecognized option '%.*s'", (int)c->argl[2], c->argv[2]);
        return;
    }
    if (!valid_name(c->argv[3], c->argl[3])) {
        reply_errorf(c->out, "ERR %.*s cannot contain spaces, newlines or special characters.",
                     (int)c->argl[2], c->argv[2]);
        return;
    }
    reply_ok(c->out);
}

/* Redis 7.0's CLIENT subcommands and 7.2's NO-TOUCH and SETINFO. */
static const subcommand client_subcommands[] = {
    {"caching", 3, NULL},
    {"getname", 2, client_getname},
    {"getredir", 2, NULL},
    {"help", 2, NULL},
    {"id", 2, client_id},
    {"info", 2, client_info},
    {"kill", -3, NULL},
    {"list", -2, client_list},
    {"no-evict", 3, client_on_off},
    {"no-touch", 3, client_on_off},
    {"pause", -3, NULL},
    {"reply", 3, NULL},
    {"setinfo", 4, client_setinfo},
    {"setname", 3, client_setname},
    {"tracking", -3, NULL},
    {"trackinginfo", 2, NULL},
    {"unblock", -3, NULL},
    {"unpause", 2, NULL},
};

void multi_client(kv_ctx *c)
{
    dispatch_subcommand(c, "CLIENT", client_subcommands,
                        sizeof client_subcommands / sizeof *client_subcommands);
}

/* ---- COMMAND ---- */

/* The flags in the order of Redis's addReplyCommandFlags table, which clients see. */
static void command_flags(sbuf *b, unsigned f)
{
    static const struct {
        unsigned flag;
        const char *name;
    } table[] = {
        {CMD_WRITE, "write"},       {CMD_READONLY, "readonly"},   {CMD_DENYOOM, "denyoom"},
        {CMD_NOSCRIPT, "noscript"}, {CMD_BLOCKING, "blocking"},   {CMD_LOADING, "loading"},
        {CMD_STALE, "stale"},       {CMD_FAST, "fast"},           {CMD_NOAUTH, "no_auth"},
        {CMD_NOMULTI, "no_multi"},  {CMD_NUMKEYS, "movablekeys"}, {CMD_ALLOWBUSY, "allow_busy"},
    };
    const char *names[sizeof table / sizeof *table];
    int n = 0;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (f & table[i].flag)
            names[n++] = table[i].name;
    reply_set(b, n);
    for (int i = 0; i < n; i++)
        reply_status(b, names[i]);
}

static void command_info(sbuf *b, const kv_command *k)
{
    reply_array(b, 10);
    reply_bulks(b, k->name);
    reply_int(b, k->arity);
    command_flags(b, k->flags);
    reply_int(b, k->first);
    reply_int(b, k->last);
    reply_int(b, k->step);
    reply_set(b, 0); /* ACL categories */
    reply_set(b, 0); /* tips */
    reply_set(b, 0); /* key specs */
    reply_set(b, 0); /* subcommands */
}

static void command_docs(sbuf *b, const kv_command *k)
{
    reply_bulks(b, k->name);
    reply_map(b, 3);
    reply_bulks(b, "summary");
    reply_bulks(b, "");
    reply_bulks(b, "since");
    reply_bulks(b, "1.0.0");
    reply_bulks(b, "group");
    reply_bulks(b, k->group ? k->group : "generic");
}

static size_t count_visible(void)
{
    size_t n = 0;
    for (size_t i = 0; i < kv_ncommands; i++)
        n += !(kv_commands[i].flags & CMD_HIDDEN);
    return n;
}

/* COMMAND, and COMMAND INFO with no name: every command's info. */
static void command_all(kv_ctx *c)
{
    reply_array(c->out, (long long)count_visible());
    for (size_t i = 0; i < kv_ncommands; i++)
        if (!(kv_commands[i].flags & CMD_HIDDEN))
            command_info(c->out, &kv_commands[i]);
}

static void command_count(kv_ctx *c)
{
    reply_int(c->out, (long long)count_visible());
}

static void command_info_of(kv_ctx *c)
{
    if (c->argc == 2) {
        command_all(c);
        return;
    }
    reply_array(c->out, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        const kv_command *k = kv_command_find(c->argv[i], c->argl[i], 0);
        if (k)
            command_info(c->out, k);
        else
            reply_null(c->out); /* Redis 7.0: a null bulk in RESP2 ($-1), _ in RESP3 */
    }
}

static void command_docs_of(kv_ctx *c)
{
    if (c->argc == 2) {
        reply_map(c->out, (long long)count_visible());
        for (size_t i = 0; i < kv_ncommands; i++)
            if (!(kv_commands[i].flags & CMD_HIDDEN))
                command_docs(c->out, &kv_commands[i]);
        return;
    }
    int n = 0;
    for (int i = 2; i < c->argc; i++)
        n += kv_command_find(c->argv[i], c->argl[i], 0) != NULL;
    reply_map(c->out, n);
    for (int i = 2; i < c->argc; i++) {
        const kv_command *k = kv_command_find(c->argv[i], c->argl[i], 0);
        if (k)
            command_docs(c->out, k);
    }
}

/* COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p], parsed as Redis 7 does: anything
 * else is a syntax error. No module is loaded (MODULE: none); weft-kv has no ACL
 * categories to filter by. */
static void command_list(kv_ctx *c)
{
    const char *pattern = NULL;
    size_t plen = 0;
    int none = 0;
    if (c->argc != 2) {
        if (c->argc != 5 || !arg_is(c, 2, "filterby")) {
            reply_error(c->out, "ERR syntax error");
            return;
        }
        if (arg_is(c, 3, "module")) {
            none = 1;
        } else if (arg_is(c, 3, "pattern")) {
            pattern = c->argv[4];
            plen = c->argl[4];
        } else if (arg_is(c, 3, "aclcat")) {
            reply_error(c->out, "ERR weft-kv: COMMAND LIST FILTERBY ACLCAT is not supported");
            return;
        } else {
            reply_error(c->out, "ERR syntax error");
            return;
        }
    }
    long long n = 0;
    for (size_t pass = 0; pass < 2; pass++) { /* count, then reply */
        if (pass == 1)
            reply_array(c->out, n);
        for (size_t i = 0; i < kv_ncommands && !none; i++) {
            const kv_command *k = &kv_commands[i];
            if ((k->flags & CMD_HIDDEN) ||
                (pattern && !kv_glob(pattern, plen, k->name, strlen(k->name), 1)))
                continue;
            if (pass == 0)
                n++;
            else
                reply_bulks(c->out, k->name);
        }
    }
}

/* COMMAND GETKEYS cmd arg...: the key arguments by the command's key positions, with Redis's
 * errors in its order (unknown command, no keys, arity). */
static void command_getkeys(kv_ctx *c)
{
    const kv_command *k = kv_command_find(c->argv[2], c->argl[2], 0);
    int argc = c->argc - 2; /* the command's own argc, its name included */
    if (!k) {
        reply_error(c->out, "ERR Invalid command specified");
        return;
    }
    if (k->first == 0 && !(k->flags & CMD_NUMKEYS)) {
        reply_error(c->out, "ERR The command has no key arguments");
        return;
    }
    if ((k->arity > 0 && k->arity != argc) || argc < -k->arity) {
        reply_error(c->out, "ERR Invalid number of arguments specified for command");
        return;
    }
    kv_keypos pos;
    kv_command_keys(k, argc, c->argv + 2, c->argl + 2, &pos);
    if ((k->flags & CMD_NUMKEYS) && pos.first == 0) {
        reply_error(c->out, "ERR Invalid arguments specified for command");
        return;
    }
    long long n = pos.dst > 0;
    for (int i = pos.first; i <= pos.last; i += pos.step)
        n++;
    reply_array(c->out, n);
    if (pos.dst > 0)
        reply_bulk(c->out, c->argv[2 + pos.dst], c->argl[2 + pos.dst]);
    for (int i = pos.first; i <= pos.last; i += pos.step)
        reply_bulk(c->out, c->argv[2 + i], c->argl[2 + i]);
}

/* Redis 7.0's COMMAND subcommands. */
static const subcommand command_subcommands[] = {
    {"count", 2, command_count},
    {"docs", -2, command_docs_of},
    {"getkeys", -4, command_getkeys},
    {"getkeysandflags", -4, NULL},
    {"help", 2, NULL},
    {"info", -2, command_info_of},
    {"list", -2, command_list},
};

void multi_command(kv_ctx *c)
{
    if (c->argc == 1)
        command_all(c);
    else
        dispatch_subcommand(c, "COMMAND", command_subcommands,
                            sizeof command_subcommands / sizeof *command_subcommands);
}

/* ---- CONFIG ---- */

static const char *const policy_names[] = {"noeviction", "allkeys-lru", "volatile-lru"};

/* The value of parameter `name` into buf. */
static const char *const config_names[] = {
    "maxmemory",
    "maxmemory-policy",
    "appendonly",
    "save",
    "databases",
    "port",
    "bind",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "appendfsync",
    "maxclients",
    "dir",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
};

static void config_value(const char *name, char *buf, size_t cap)
{
    if (strcmp(name, "maxmemory") == 0)
        snprintf(buf, cap, "%lld", atomic_load(&kv_cfg.maxmemory));
    else if (strcmp(name, "maxmemory-policy") == 0)
        snprintf(buf, cap, "%s", policy_names[atomic_load(&kv_cfg.policy)]);
    else if (strcmp(name, "appendonly") == 0)
        snprintf(buf, cap, "%s", kv_cfg.aof_policy == AOF_OFF ? "no" : "yes");
    else if (strcmp(name, "save") == 0)
        snprintf(buf, cap, "%s", "");
    else if (strcmp(name, "databases") == 0)
        snprintf(buf, cap, "1");
    else if (strcmp(name, "port") == 0)
        snprintf(buf, cap, "%d", kv_cfg.port);
    else if (strcmp(name, "bind") == 0)
        snprintf(buf, cap, "%s", kv_cfg.bind);
    else if (strcmp(name, "proto-max-bulk-len") == 0)
        snprintf(buf, cap, "%lld", RESP_MAX_BULK);
    else if (strcmp(name, "client-query-buffer-limit") == 0)
        snprintf(buf, cap, "%lld", RESP_MAX_BULK * 2);
    else if (strcmp(name, "appendfsync") == 0)
        snprintf(buf, cap, "%s",
                 kv_cfg.aof_policy == AOF_ALWAYS ? "always"
                 : kv_cfg.aof_policy == AOF_NO   ? "no"
                                                 : "everysec");
    else if (strcmp(name, "dir") == 0)
        snprintf(buf, cap, "%s", kv_cfg.dir);
    else if (strcmp(name, "auto-aof-rewrite-percentage") == 0)
        snprintf(buf, cap, "%lld", atomic_load(&kv_cfg.aof_rewrite_pct));
    else if (strcmp(name, "auto-aof-rewrite-min-size") == 0)
        snprintf(buf, cap, "%lld", atomic_load(&kv_cfg.aof_rewrite_min));
    else /* maxclients */
        snprintf(buf, cap, "%lld", kv_cfg.maxclients);
}

/* A memory amount as Redis's memtoull: a number with an optional b, k, kb, m, mb, g, gb. */
static int parse_memory(const char *s, size_t n, long long *out)
{
    size_t digits = 0;
    while (digits < n && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    long long v;
    if (resp_strtoll(s, digits, &v) < 0)
        return -1;
    char unit[4] = {0};
    if (n - digits > 2)
        return -1;
    for (size_t i = digits; i < n; i++)
        unit[i - digits] = (char)(s[i] | 0x20);
    long long mul = 1;
    if (!*unit || !strcmp(unit, "b"))
        mul = 1;
    else if (!strcmp(unit, "k"))
        mul = 1000;
    else if (!strcmp(unit, "kb"))
        mul = 1024;
    else if (!strcmp(unit, "m"))
        mul = 1000 * 1000;
    else if (!strcmp(unit, "mb"))
        mul = 1024 * 1024;
    else if (!strcmp(unit, "g"))
        mul = 1000LL * 1000 * 1000;
    else if (!strcmp(unit, "gb"))
        mul = 1024LL * 1024 * 1024;
    else
        return -1;
    if (v > (long long)(~0ULL >> 1) / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* The parameters CONFIG SET knows (some only with the value weft-kv already has). */
static const char *const settable[] = {
    "maxmemory",
    "maxmemory-policy",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "test-fsync-delay-ms",
    "save",
    "appendonly",
};

/* CONFIG SET's first pass, Redis 7.0's: every name known, none twice (in any case), before
 * any value is looked at. Returns 0, or -1 with the error replied for the first bad name. */
static int config_set_names(kv_ctx *c)
{
    for (int i = 2; i < c->argc; i += 2) {
        int known = 0;
        for (size_t k = 0; k < sizeof settable / sizeof *settable; k++)
            known |= arg_is(c, i, settable[k]);
        if (!known) {
            reply_errorf(c->out,
                         "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                         (int)c->argl[i], c->argv[i]);
            return -1;
        }
        for (int j = 2; j < i; j += 2)
            if (c->argl[j] == c->argl[i] && strncasecmp(c->argv[j], c->argv[i], c->argl[i]) == 0) {
                reply_errorf(c->out,
                             "ERR CONFIG SET failed (possibly related to argument '%.*s') - "
                             "duplicate parameter",
                             (int)c->argl[i], c->argv[i]);
                return -1;
            }
    }
    return 0;
}

static void config_set(kv_ctx *c)
{
    if (c->argc % 2 == 1) { /* not name-value pairs: Redis 7.0 says "syntax error" */
        reply_error(c->out, "ERR syntax error");
        return;
    }
    if (config_set_names(c) < 0)
        return;
    /* Check every pair, then apply them all (Redis applies none when one is bad). */
    long long mem = -1, pct = -1, min = -1, fsync_delay = -1;
    int policy = -1;
    for (int i = 2; i < c->argc; i += 2) {
        const char *v = c->argv[i + 1];
        size_t vl = c->argl[i + 1];
        if (arg_is(c, i, "maxmemory")) {
            if (parse_memory(v, vl, &mem) < 0) {
                reply_errorf(c->out, "ERR CONFIG SET failed (possibly related to argument "
                                     "'maxmemory') - argument must be a memory value");
                return;
            }
        } else if (arg_is(c, i, "maxmemory-policy")) {
            policy = -1;
            for (int k = 0; k < 3; k++)
                if (strlen(policy_names[k]) == vl && strncasecmp(policy_names[k], v, vl) == 0)
                    policy = k;
            if (policy < 0) {
                reply_error(c->out, "ERR CONFIG SET failed (possibly related to argument "
                                    "'maxmemory-policy') - argument(s) must be one of the "
                                    "following: noeviction, allkeys-lru, volatile-lru");
                return;
            }
        } else if (arg_is(c, i, "auto-aof-rewrite-percentage")) {
            if (resp_strtoll(v, vl, &pct) < 0 || pct < 0) {
                reply_error(c->out, "ERR CONFIG SET failed (possibly related to argument "
                                    "'auto-aof-rewrite-percentage') - argument couldn't be "
                                    "parsed into an integer");
                return;
            }
        } else if (arg_is(c, i, "auto-aof-rewrite-min-size")) {
            if (parse_memory(v, vl, &min) < 0) {
                reply_error(c->out, "ERR CONFIG SET failed (possibly related to argument "
                                    "'auto-aof-rewrite-min-size') - argument must be a memory "
                                    "value");
                return;
            }
        } else if (arg_is(c, i, "test-fsync-delay-ms")) {
            /* A test seam, not in CONFIG GET: the everysec syncer sleeps this long before each
             * fsync (aof.c), as on a busy disk. */
            if (resp_strtoll(v, vl, &fsync_delay) < 0 || fsync_delay < 0) {
                reply_error(c->out, "ERR CONFIG SET failed (possibly related to argument "
                                    "'test-fsync-delay-ms') - argument couldn't be parsed into "
                                    "an integer");
                return;
            }
        } else if ((arg_is(c, i, "save") && vl == 0) ||
                   (arg_is(c, i, "appendonly") && kv_cfg.aof_policy == AOF_OFF && vl == 2 &&
                    strncasecmp(v, "no", 2) == 0)) {
            /* what we are already */
        } else {
            reply_errorf(c->out,
                         "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                         (int)c->argl[i], c->argv[i]);
            return;
        }
    }
    if (mem >= 0)
        atomic_store(&kv_cfg.maxmemory, mem);
    if (policy >= 0)
        atomic_store(&kv_cfg.policy, policy);
    if (pct >= 0)
        atomic_store(&kv_cfg.aof_rewrite_pct, pct);
    if (min >= 0)
        atomic_store(&kv_cfg.aof_rewrite_min, min);
    if (fsync_delay >= 0)
        atomic_store(&kv_cfg.test_fsync_delay_ms, fsync_delay);
    reply_ok(c->out);
}

static void config_get(kv_ctx *c)
{
    size_t n = sizeof config_names / sizeof *config_names;
    int hit[sizeof config_names / sizeof *config_names] = {0};
    long long nhit = 0;
    for (int i = 2; i < c->argc; i++)
        for (size_t k = 0; k < n; k++)
            if (!hit[k] &&
                kv_glob(c->argv[i], c->argl[i], config_names[k], strlen(config_names[k]), 1)) {
                hit[k] = 1;
                nhit++;
            }
    reply_map(c->out, nhit);
    for (size_t k = 0; k < n; k++)
        if (hit[k]) {
            char buf[128];
            config_value(config_names[k], buf, sizeof buf);
            reply_bulks(c->out, config_names[k]);
            reply_bulks(c->out, buf);
        }
}

static void config_resetstat(kv_ctx *c)
{
    reply_ok(c->out);
}

/* Redis 7.0's CONFIG subcommands. */
static const subcommand config_subcommands[] = {
    {"get", -3, config_get}, {"set", -4, config_set}, {"resetstat", 2, config_resetstat},
    {"rewrite", 2, NULL},    {"help", 2, NULL},
};

void multi_config(kv_ctx *c)
{
    dispatch_subcommand(c, "CONFIG", config_subcommands,
                        sizeof config_subcommands / sizeof *config_subcommands);
}

/* ---- MEMORY ---- */

/* MEMORY USAGE's options from argv[3] on, as Redis 7.0 reads them: SAMPLES n any number of
 * times, the last one counting, 0 for every element. Returns the count (LLONG_MAX for all), or
 * -1 after replying the error when reply is set. */
static long long usage_samples(kv_ctx *c, int reply)
{
    long long samples = 5; /* Redis's OBJ_COMPUTE_SIZE_DEF_SAMPLES */
    for (int i = 3; i < c->argc; i++) {
        if (!arg_is(c, i, "samples") || i + 1 >= c->argc) {
            if (reply)
                reply_error(c->out, ERR_SYNTAX);
            return -1;
        }
        if (resp_strtoll(c->argv[i + 1], c->argl[i + 1], &samples) < 0 || samples < 0) {
            if (reply)
                reply_error(c->out, samples < 0 ? ERR_SYNTAX : ERR_NOTINT);
            return -1;
        }
        samples = samples ? samples : LLONG_MAX;
        i++;
    }
    return samples;
}

/* __memusage: MEMORY USAGE key [SAMPLES n] run on the key's shard (its options were checked
 * on the connection). The key's bytes, or null when it is missing. */
void cmd_memusage(kv_ctx *c)
{
    kv_entry *e = db_lookup(c->db, c->argv[2], c->argl[2]);
    if (!e)
        reply_null(c->out);
    else
        reply_int(c->out, (long long)db_entry_usage(e, usage_samples(c, 0)));
}

/* MEMORY USAGE: the key's bytes, from its shard (redis-cli --memkeys asks it of every key). The
 * count covers the entry with its key and the value's blocks, not the slot of the shard's
 * table that points to it. */
static void memory_usage(kv_ctx *c)
{
    if (usage_samples(c, 1) < 0)
        return;
    const kv_command *k = kv_command_find("__memusage", 10, 1);
    kv_item it = {k, c->argc, c->argv, c->argl, 0, kv_key_shard(c->argv[2], c->argl[2]), 0, 0};
    sbuf tmp = sbuf_like(c->out);
    if (kv_exec_items(c->conn, &it, 1, &tmp) < 0)
        c->conn->close_after = 1;
    else
        sbuf_add(c->out, tmp.data + it.off, it.len);
    sbuf_free(&tmp);
}

/* Redis 7.0's MEMORY subcommands: only USAGE has a meaning here. */
static const subcommand memory_subcommands[] = {
    {"doctor", 2, NULL}, {"help", 2, NULL},  {"malloc-stats", 2, NULL},
    {"purge", 2, NULL},  {"stats", 2, NULL}, {"usage", -3, memory_usage},
};

void multi_memory(kv_ctx *c)
{
    dispatch_subcommand(c, "MEMORY", memory_subcommands,
                        sizeof memory_subcommands / sizeof *memory_subcommands);
}

int kv_subcommand_check(const kv_command *cmd, int argc, const char *const *argv,
                        const size_t *argl, sbuf *out)
{
    kv_ctx c = {NULL, argc, argv, argl, out, NULL, cmd, 0};
    if (cmd->multi == multi_client)
        return find_subcommand(&c, "CLIENT", client_subcommands,
                               sizeof client_subcommands / sizeof *client_subcommands)
                   ? 0
                   : -1;
    if (cmd->multi == multi_command && argc > 1)
        return find_subcommand(&c, "COMMAND", command_subcommands,
                               sizeof command_subcommands / sizeof *command_subcommands)
                   ? 0
                   : -1;
    if (cmd->multi == multi_config)
        return find_subcommand(&c, "CONFIG", config_subcommands,
                               sizeof config_subcommands / sizeof *config_subcommands)
                   ? 0
                   : -1;
    if (cmd->multi == multi_memory)
        return find_subcommand(&c, "MEMORY", memory_subcommands,
                               sizeof memory_subcommands / sizeof *memory_subcommands)
                   ? 0
                   : -1;
    return 0;
}

/* ---- INFO ---- */

typedef struct totals {
    unsigned long long keys, expires, hits, misses, expired, evicted, conns, conns_total, cmds,
        blocked;
    long long mem;
    unsigned long long aof_rewriting, aof_rewrites, aof_size, aof_base, aof_failed;
    unsigned long long aof_write_err, aof_pending_fsync, aof_delayed;
} totals;

static int want(kv_ctx *c, const char *section)
{
    if (c->argc == 1)
        return 1;
    for (int i = 1; i < c->argc; i++)
        if (arg_is(c, i, section) || arg_is(c, i, "all") || arg_is(c, i, "everything") ||
            arg_is(c, i, "default"))
            return 1;
    return 0;
}

void multi_info(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (exec_on_every_shard(c, "__shardstats", &tmp, items) < 0)
        return;
    totals t = {0};
    unsigned n = kv_nshards();
    long long shard_mem[WEFT_WORKERS_MAX];
    unsigned long long shard_keys[WEFT_WORKERS_MAX];
    for (unsigned s = 0; s < n; s++) {
        const char *p = strchr(tmp.data + items[s].off, '\n') + 1;
        unsigned long long k, e, h, m, x, ev, cn, ct, cm, bl, ar, an, as, ab, af, we, pf, dl;
        long long mem;
        if (sscanf(p,
                   "%llu %llu %lld %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                   "%llu %llu %llu %llu",
                   &k, &e, &mem, &h, &m, &x, &ev, &cn, &ct, &cm, &bl, &ar, &an, &as, &ab, &af, &we,
                   &pf, &dl) != 19)
            continue;
        t.aof_rewriting += ar, t.aof_rewrites += an, t.aof_size += as, t.aof_base += ab;
        t.aof_failed += af, t.aof_write_err += we, t.aof_pending_fsync += pf, t.aof_delayed += dl;
        shard_mem[s] = mem;
        shard_keys[s] = k;
        t.keys += k, t.expires += e, t.mem += mem, t.hits += h, t.misses += m, t.expired += x;
        t.evicted += ev, t.conns += cn, t.conns_total += ct, t.cmds += cm, t.blocked += bl;
    }
    sbuf_free(&tmp);

    sbuf b = {0};
    char line[512];
#define LINE(...)                                                                                  \
    do {                                                                                           \
        int len_ = snprintf(line, sizeof line, __VA_ARGS__);                                       \
        sbuf_add(&b, line, (size_t)len_);                                                          \
    } while (0)
    int64_t up = (kv_unix_ms() - kv_cfg.started_ms) / 1000;
    if (want(c, "server")) {
        struct utsname u;
        uname(&u);
        LINE("# Server\r\nredis_version:" KV_REDIS_VERSION "\r\nredis_mode:standalone\r\n");
        LINE("server_name:weft-kv\r\nweft_version:%u.%u.%u\r\nweft_backend:%s\r\n",
             weft_version() >> 16, (weft_version() >> 8) & 0xff, weft_version() & 0xff,
             weft_backend());
        LINE("os:%s %s %s\r\narch_bits:%d\r\nmultiplexing_api:%s\r\nprocess_id:%d\r\n", u.sysname,
             u.release, u.machine, (int)sizeof(void *) * 8, weft_backend(), (int)getpid());
        LINE("tcp_port:%d\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n", kv_cfg.port,
             (long long)up, (long long)up / 86400);
        LINE("shards:%u\r\n\r\n", n);
    }
    if (want(c, "clients")) {
        LINE("# Clients\r\nconnected_clients:%llu\r\nblocked_clients:%llu\r\nmaxclients:%lld\r\n"
             "\r\n",
             t.conns, t.blocked, kv_cfg.maxclients);
    }
    if (want(c, "memory")) {
        LINE("# Memory\r\nused_memory:%lld\r\nused_memory_dataset:%lld\r\n", t.mem, t.mem);
        LINE("maxmemory:%lld\r\nmaxmemory_policy:%s\r\n", atomic_load(&kv_cfg.maxmemory),
             policy_names[atomic_load(&kv_cfg.policy)]);
        for (unsigned s = 0; s < n; s++)
            LINE("shard%u_used_memory:%lld\r\n", s, shard_mem[s]);
        LINE("\r\n");
    }
    if (want(c, "persistence")) {
        LINE("# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:0\r\naof_enabled:%d\r\n"
             "aof_rewrite_in_progress:%d\r\naof_rewrites:%llu\r\n"
             "aof_last_bgrewrite_status:%s\r\naof_last_write_status:%s\r\n",
             kv_cfg.aof_policy != AOF_OFF, t.aof_rewriting > 0, t.aof_rewrites,
             t.aof_failed ? "err" : "ok", t.aof_write_err ? "err" : "ok");
        /* aof_last_write_status is err while a shard's last write or fsync failed (Redis 7
         * folds its background fsync's status in too); aof_pending_bio_fsync counts the fsyncs
         * under way, aof_delayed_fsync those that held replies back (aof.c). */
        if (kv_cfg.aof_policy != AOF_OFF)
            LINE("aof_current_size:%llu\r\naof_base_size:%llu\r\naof_pending_bio_fsync:%llu\r\n"
                 "aof_delayed_fsync:%llu\r\n",
                 t.aof_size, t.aof_base, t.aof_pending_fsync, t.aof_delayed);
        LINE("\r\n");
    }
    if (want(c, "stats")) {
        weft_stats st;
        int have = weft_stats_get(&st) == 0;
        LINE("# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n",
             t.conns_total, t.cmds);
        LINE("expired_keys:%llu\r\nevicted_keys:%llu\r\nkeyspace_hits:%llu\r\n"
             "keyspace_misses:%llu\r\n",
             t.expired, t.evicted, t.hits, t.misses);
        if (have)
            LINE("weft_tasks:%llu\r\nweft_context_switches:%llu\r\nweft_loop_ticks:%llu\r\n"
                 "weft_polls:%llu\r\nweft_syscalls:%llu\r\n",
                 (unsigned long long)st.ntasks, (unsigned long long)st.nswitches,
                 (unsigned long long)st.nticks, (unsigned long long)st.npolls,
                 (unsigned long long)st.nsyscalls);
        LINE("\r\n");
    }
    /* Replication, CPU and Cluster as Redis fills them for a lone master: clients and tools
     * read role (redis-py's info()["role"], Sentinel-style checks), used_cpu_* and
     * cluster_enabled. */
    if (want(c, "replication"))
        LINE("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
             "master_failover_state:no-failover\r\nmaster_repl_offset:0\r\n"
             "second_repl_offset:-1\r\nrepl_backlog_active:0\r\n\r\n");
    if (want(c, "cpu")) {
        struct rusage self, children;
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &children);
        LINE("# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n"
             "used_cpu_sys_children:%ld.%06ld\r\nused_cpu_user_children:%ld.%06ld\r\n\r\n",
             (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec, (long)self.ru_utime.tv_sec,
             (long)self.ru_utime.tv_usec, (long)children.ru_stime.tv_sec,
             (long)children.ru_stime.tv_usec, (long)children.ru_utime.tv_sec,
             (long)children.ru_utime.tv_usec);
    }
    if (want(c, "cluster"))
        LINE("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    if (want(c, "keyspace")) {
        LINE("# Keyspace\r\n");
        if (t.keys)
            LINE("db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", t.keys, t.expires);
        for (unsigned s = 0; s < n; s++)
            LINE("shard%u:keys=%llu\r\n", s, shard_keys[s]);
    }
#undef LINE
    reply_verbatim(c->out, b.data ? b.data : "", b.len);
    sbuf_free(&b);
}

/* __bgrewrite: starts this shard's AOF rewrite; replies 0 or -errno as an integer. */
void cmd_bgrewrite(kv_ctx *c)
{
    reply_int(c->out, kv_aof_rewrite(kv_local()));
}

void multi_bgrewriteaof(kv_ctx *c)
{
    kv_item items[WEFT_WORKERS_MAX];
    sbuf tmp = {0};
    if (exec_on_every_shard(c, "__bgrewrite", &tmp, items) < 0)
        return;
    int started = 0, busy = 0, other = 0;
    for (unsigned s = 0; s < kv_nshards(); s++) {
        long long r = atoll(tmp.data + items[s].off + 1);
        started += r == 0;
        busy += r == -EBUSY;
        other = r < 0 && r != -EBUSY ? (int)r : other;
    }
    sbuf_free(&tmp);
    /* Each shard's file is rewritten on its own: some may start while others are busy. */
    if (started)
        reply_status(c->out, "Background append only file rewriting started");
    else if (busy)
        reply_error(c->out, "ERR Background append only file rewriting already in progress");
    else if (other == -EINVAL)
        reply_error(c->out, "ERR weft-kv: appendonly is off: no file to rewrite");
    else
        reply_errorf(c->out, "ERR Background append only file rewriting failed: %s",
                     weft_strerror(other));
}

void multi_shutdown(kv_ctx *c)
{
    /* Redis 7's options: NOSAVE or SAVE, NOW, FORCE (weft-kv has no snapshot to save or skip,
     * and its append-only file is flushed either way), and ABORT alone, which cancels a
     * shutdown in progress: there never is one, since the shutdown is immediate. Anything
     * else is refused, and nothing stops. */
    bool nosave = false, save = false, abort = false, other = false;
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c, i, "nosave"))
            nosave = true;
        else if (arg_is(c, i, "save"))
            save = true;
        else if (arg_is(c, i, "abort"))
            abort = true;
        else if (arg_is(c, i, "now") || arg_is(c, i, "force"))
            other = true;
        else
            nosave = save = true; /* unknown: refused below */
    }
    if ((nosave && save) || (abort && (nosave || save || other))) {
        reply_error(c->out, "ERR syntax error");
        return;
    }
    if (abort) {
        reply_error(c->out, "ERR No shutdown in progress.");
        return;
    }
    /* The main task waits for SIGTERM; SHUTDOWN sends it. The client gets no reply, as with
     * Redis: its connection closes. */
    atomic_store(&kv_cfg.shutdown, 1);
    c->conn->close_after = 1;
    kill(getpid(), SIGTERM);
}
