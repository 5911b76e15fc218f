#!/usr/bin/env bash
# The AOF rewrite under load, weft-kv against redis-server (which forks for it): a keyspace of
# KEYS keys (64-byte values) is loaded with appendonly yes (everysec), then redis-benchmark
# reads (GET, unpipelined, 50 clients) twice: alone, and while a BGREWRITEAOF starts every
# INTERVAL seconds (once the last one is done): the same number of rewrites for both servers
# when each takes less than that. Prints the latency of each (p50, p99, max, from
# redis-benchmark), how many rewrites ran meanwhile, and the file sizes before and after: what
# a rewrite costs the clients.
#   bench/run_kv_rewrite.sh [BUILD_DIR]   (default build/bench, else build/rel)
#   KEYS=500000 N=200000 (GETs a measurement) INTERVAL=1.5
# One-core servers, pinned to CPU 0, the client to CPU 1 (bench-workloads.md); weft-kv with
# one shard. Redis forks its rewrite: the child takes CPU 1 as well, beside the client.
set -eu
build=${1:-}
if [ -z "$build" ]; then
    build=build/bench
    [ -x $build/apps/kv/weft-kv ] || build=build/rel
fi
nkeys=${KEYS:-500000}
n=${N:-200000}
interval=${INTERVAL:-1.5}
kv=$build/apps/kv/weft-kv
[ -x "$kv" ] || { echo "run_kv_rewrite: $kv missing (make build)"; exit 1; }
command -v redis-server >/dev/null || { echo "run_kv_rewrite: redis-server missing"; exit 1; }
port=7398
tmp=$(mktemp -d)
srv=
loop=
trap '[ -n "$loop" ] && kill $loop 2>/dev/null; [ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
cli() { redis-cli -p $port "$@"; }
info() { cli info persistence | tr -d '\r' | sed -n "s/^$1:\(.*\)/\1/p"; }
aof_bytes() { du -cb "$tmp"/$1 2>/dev/null | tail -1 | cut -f1; }

for server in redis weft-kv; do
    rm -rf "${tmp:?}"/*
    mkdir -p "$tmp/appendonlydir"
    if [ $server = redis ]; then
        taskset -c 0 redis-server --port $port --save '' --appendonly yes --appendfsync everysec \
            --auto-aof-rewrite-percentage 0 --dir "$tmp" >/dev/null 2>&1 &
        files='appendonlydir/*'
    else
        taskset -c 0 "$kv" --port $port --workers 1 --appendonly yes --appendfsync everysec \
            --auto-aof-rewrite-percentage 0 --dir "$tmp" >/dev/null 2>&1 &
        files='*.aof'
    fi
    srv=$!
    for _ in $(seq 200); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done
    # The keyspace, written twice over: the file holds twice what a rewrite keeps.
    for _ in 1 2; do
        taskset -c 1 redis-benchmark -p $port -q -t set -n "$nkeys" -r "$nkeys" -d 64 -P 16 -c 20 \
            >/dev/null 2>&1
    done
    keys=$(cli dbsize)
    before=$(aof_bytes "$files")
    measure() {
        taskset -c 1 redis-benchmark -p $port -t get -n "$n" -r "$nkeys" -c 50 --csv 2>/dev/null |
            awk -F'"' 'NR == 2 {print $4, $10, $14, $16}'
    }
    read -r rps0 p50_0 p99_0 max0 <<<"$(measure)"
    r0=$(info aof_rewrites)
    (
        while :; do
            cli bgrewriteaof >/dev/null 2>&1
            sleep "$interval"
            while [ "$(info aof_rewrite_in_progress)" = 1 ]; do sleep 0.02; done
        done
    ) &
    loop=$!
    read -r rps1 p50_1 p99_1 max1 <<<"$(measure)"
    kill $loop
    wait $loop 2>/dev/null || true
    loop=
    while [ "$(info aof_rewrite_in_progress)" = 1 ]; do sleep 0.05; done
    r1=$(info aof_rewrites)
    after=$(aof_bytes "$files")
    kill $srv
    wait $srv 2>/dev/null || true
    srv=
    impl=$([ $server = redis ] && echo redis || echo weft)
    for phase in alone rewriting; do
        if [ $phase = alone ]; then set -- "$rps0" "$p50_0" "$p99_0" "$max0"; else set -- "$rps1" "$p50_1" "$p99_1" "$max1"; fi
        printf '{"impl":"%s","workload":"kv_aof_rewrite","n":%d,"value":%s,"unit":"ops/s","cmd":"get","phase":"%s","keys":%s,"p50_ms":%s,"p99_ms":%s,"max_ms":%s,"rewrites":%d,"aof_bytes_before":%s,"aof_bytes_after":%s}\n' \
            "$impl" "$n" "$1" "$phase" "$keys" "$2" "$3" "$4" $((r1 - r0)) "$before" "$after"
    done
    printf '%-12s %8s keys: GET alone %8.0f/s p50 %s p99 %s max %s ms | while rewriting (%d rewrites) %8.0f/s p50 %s p99 %s max %s ms | file %s -> %s bytes\n' \
        "$server" "$keys" "$rps0" "$p50_0" "$p99_0" "$max0" $((r1 - r0)) "$rps1" "$p50_1" "$p99_1" "$max1" "$before" "$after"
done
