/* The first phase of the set and sorted-set algebra over keys on several shards (SINTER and
 * ZUNION and their kin, cmd_setops.c and cmd_zsetops_across.c): one reading command per key,
 * run on the key's shard within a cross-shard transaction (tx.c), the destination's shard of
 * a STORE held too, so that the second phase can write it with nothing run in between. */
#include <stdlib.h>

#include "cmd.h"
#include "server.h"

int kv_fetch_across(kv_ctx *c, kv_tx *tx, const char *cmd, int hidden, int first, int n,
                    const char *hold, size_t holdl, sbuf *tmp, const char **replies)
{
    kv_item *items = malloc((size_t)(n + 1) * sizeof *items);
    const char **argv = malloc((size_t)n * 2 * sizeof *argv);
    size_t *argl = malloc((size_t)n * 2 * sizeof *argl);
    int r = -1;
    if (!items || !argv || !argl)
        goto out;
    size_t cmdl = strlen(cmd);
    const kv_command *k = kv_command_find(cmd, cmdl, hidden);
    for (int i = 0; i < n; i++) {
        argv[2 * i] = cmd;
        argl[2 * i] = cmdl;
        argv[2 * i + 1] = c->argv[first + i];
        argl[2 * i + 1] = c->argl[first + i];
        items[i] = (kv_item){
            k, 2, argv + 2 * i, argl + 2 * i, 0, kv_key_shard(argv[2 * i + 1], argl[2 * i + 1]),
            0, 0};
    }
    int nitems = n;
    if (hold) /* hold only: no command */
        items[nitems++] = (kv_item){NULL, 0, NULL, NULL, 0, kv_key_shard(hold, holdl), 0, 0};
    if (kv_tx_begin(tx, c->conn, items, (size_t)nitems, tmp) < 0)
        goto out;
    sbuf_add(tmp, "", 1); /* the replies' parsers stop at this NUL */
    r = 0;
    for (int i = 0; i < n; i++)
        replies[i] = tmp->data + items[i].off;
    for (int i = 0; i < n && r == 0; i++)
        if (replies[i][0] == '-') { /* a source's WRONGTYPE: the command's answer */
            sbuf_add(c->out, replies[i], items[i].len);
            r = 1;
        }
out:
    free(items);
    free(argv);
    free(argl);
    return r;
}
