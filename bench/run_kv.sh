#!/usr/bin/env bash
# kv_resp: weft-kv against redis-server under redis-benchmark, same flags for both: SET and GET,
# 50 clients, unpipelined (-P 1) and at depth 16 (-P 16); weft-kv with 1 shard and with N.
# Prints requests per second (median of RUNS runs) and the ratio to redis-server, then the
# server's CPU time per request (user + system, over all runs): on a small shared machine the
# client competes with the server, and CPU per request is the steadier figure.
#   bench/run_kv.sh [BUILD_DIR] [RUNS]     (defaults: build/rel, 3; SHARDS="1 2")
# Build first (make build). Both servers run with no persistence.
set -eu
build=${1:-build/rel}
runs=${2:-3}
shards=${SHARDS:-"1 2"}
kv=$build/apps/kv/weft-kv
[ -x "$kv" ] || { echo "run_kv: $kv missing (make build)"; exit 1; }
command -v redis-benchmark >/dev/null || { echo "run_kv: redis-benchmark missing (redis-tools)"; exit 1; }
command -v redis-server >/dev/null || { echo "run_kv: redis-server missing"; exit 1; }
port=7399
tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$tmp"' EXIT

start() { # name args...
    "$@" >/dev/null 2>&1 &
    srv=$!
    for _ in $(seq 100); do redis-cli -p $port ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "run_kv: $1 did not start"; exit 1
}
stop() { kill $srv; wait $srv 2>/dev/null || true; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$srv/stat"; }
hz=$(getconf CLK_TCK)

# bench P test: the median rps into $tmp/rps; sets cpu_us (server CPU per request, microseconds)
bench() {
    local n=$(( $1 == 1 ? 200000 : 1000000 ))
    local t0
    t0=$(cpu_ticks)
    for _ in $(seq "$runs"); do
        redis-benchmark -p $port -c 50 -n $n -P "$1" -t "$2" --csv 2>/dev/null |
            awk -F'"' 'NR == 2 {print $4}'
    done | median >"$tmp/rps"
    cpu_us=$(awk -v d=$(( $(cpu_ticks) - t0 )) -v hz="$hz" -v n=$((n * runs)) \
        'BEGIN {printf "%.2f", d / hz * 1e6 / n}')
}

declare -A res cpu
for server in redis $(for s in $shards; do echo "kv$s"; done); do
    case $server in
    redis) start redis-server --port $port --save '' --appendonly no --dir "$tmp" ;;
    kv*) start "$kv" --port $port --workers "${server#kv}" ;;
    esac
    for p in 1 16; do
        for t in set get; do
            bench $p $t
            res[$server,$p,$t]=$(cat "$tmp/rps")
            cpu[$server,$p,$t]=$cpu_us
        done
    done
    stop
done

printf '%-22s %14s %14s %14s %14s\n' server "SET -P 1" "GET -P 1" "SET -P 16" "GET -P 16"
for server in redis $(for s in $shards; do echo "kv$s"; done); do
    name=$([ $server = redis ] && echo "redis-server" || echo "weft-kv ${server#kv} shard(s)")
    line=$(printf '%-22s' "$name")
    for p in 1 16; do
        for t in set get; do
            v=${res[$server,$p,$t]}
            r=$(awk -v a="$v" -v b="${res[redis,$p,$t]}" 'BEGIN {printf "%.2f", a / b}')
            line="$line $(printf '%14s' "$(printf '%.0f (%sx)' "$v" "$r")")"
        done
    done
    echo "$line"
done
echo
echo "server CPU per request (us):"
for server in redis $(for s in $shards; do echo "kv$s"; done); do
    name=$([ $server = redis ] && echo "redis-server" || echo "weft-kv ${server#kv} shard(s)")
    line=$(printf '%-22s' "$name")
    for p in 1 16; do
        for t in set get; do
            line="$line $(printf '%14s' "${cpu[$server,$p,$t]}")"
        done
    done
    echo "$line"
done
