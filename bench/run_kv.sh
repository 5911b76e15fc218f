#!/usr/bin/env bash
# kv_resp (shared/bench-workloads.md): weft-kv against redis-server under redis-benchmark, the
# same flags for both: `-t set,get -r 100000 -c 50`, unpipelined (-P 1) and at depth 16
# (-P 16); weft-kv with 1 shard and with N. The servers take turns in each round (redis-server,
# weft-kv 1 shard, weft-kv N shards, then again), so that a slow patch of a shared machine
# falls on all of them; each cell is the median of RUNS rounds.
# One-core servers (redis-server, weft-kv 1 shard) run pinned to CPU 0 and redis-benchmark to
# CPU 1, as the workload says; a server of N shards gets every CPU, and on a machine with no
# more CPUs than shards the client shares them: then compare server CPU per request.
# Prints one JSON line per cell (the output contract), then a table: requests per second with
# the ratio to redis-server, and the server's CPU time per request (user + system, all rounds).
#   bench/run_kv.sh [BUILD_DIR] [RUNS]   (defaults: build/bench, else build/rel; 5)
#   SHARDS="1 2" N1=200000 N16=1000000   (requests per run, unpipelined and at depth 16;
#                                          the workload's n is 1,000,000 for both)
# Both servers run with no persistence.
set -eu
build=${1:-}
if [ -z "$build" ]; then
    build=build/bench
    [ -x $build/apps/kv/weft-kv ] || build=build/rel
fi
runs=${2:-5}
shards=${SHARDS:-"1 2"}
n1=${N1:-200000}
n16=${N16:-1000000}
kv=$build/apps/kv/weft-kv
[ -x "$kv" ] || { echo "run_kv: $kv missing (make build)"; exit 1; }
command -v redis-benchmark >/dev/null || { echo "run_kv: redis-benchmark missing (redis-tools)"; exit 1; }
command -v redis-server >/dev/null || { echo "run_kv: redis-server missing"; exit 1; }
ncpu=$(nproc)
port=7399
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT

pin() { # cpu-list cmd...: taskset where there is more than one CPU
    if [ "$ncpu" -gt 1 ] && command -v taskset >/dev/null; then taskset -c "$@"; else shift; "$@"; fi
}
start() { # cpus cmd... (taskset execs the server: $! is the server's pid, for /proc and kill)
    local cpus=$1
    shift
    if [ "$ncpu" -gt 1 ] && command -v taskset >/dev/null; then
        taskset -c "$cpus" "$@" >/dev/null 2>&1 &
    else
        "$@" >/dev/null 2>&1 &
    fi
    srv=$!
    for _ in $(seq 200); do redis-cli -p $port ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "run_kv: $1 did not start"
    exit 1
}
stop() {
    kill $srv
    wait $srv 2>/dev/null || true
    srv=
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$srv/stat"; }
hz=$(getconf CLK_TCK)

servers="redis $(for s in $shards; do echo "kv$s"; done)"
for round in $(seq "$runs"); do
    for server in $servers; do
        case $server in
        redis) start 0 redis-server --port $port --save '' --appendonly no --dir "$tmp" ;;
        kv1) start 0 "$kv" --port $port --workers 1 ;;
        kv*) start "0-$((ncpu - 1))" "$kv" --port $port --workers "${server#kv}" ;;
        esac
        client_cpus=$([ "$server" = redis ] || [ "$server" = kv1 ] && echo 1 || echo "0-$((ncpu - 1))")
        for p in 1 16; do
            n=$([ $p = 1 ] && echo "$n1" || echo "$n16")
            for t in set get; do
                t0=$(cpu_ticks)
                rps=$(pin "$client_cpus" redis-benchmark -p $port -c 50 -n "$n" -r 100000 -P $p \
                    -t $t --csv 2>/dev/null | awk -F'"' 'NR == 2 {print $4}')
                echo "$rps" >>"$tmp/rps.$server.$p.$t"
                echo $(($(cpu_ticks) - t0)) >>"$tmp/cpu.$server.$p.$t"
            done
        done
        stop
    done
done

declare -A res cpu
for server in $servers; do
    for p in 1 16; do
        n=$([ $p = 1 ] && echo "$n1" || echo "$n16")
        for t in set get; do
            res[$server,$p,$t]=$(median <"$tmp/rps.$server.$p.$t")
            cpu[$server,$p,$t]=$(awk -v hz="$hz" -v n=$((n * runs)) '{d += $1}
                END {printf "%.2f", d / hz * 1e6 / n}' "$tmp/cpu.$server.$p.$t")
            impl=$([ $server = redis ] && echo redis || echo "weft_sharded${server#kv}")
            threads=$([ $server = redis ] && echo 1 || echo "${server#kv}")
            printf '{"impl":"%s","workload":"kv_resp","n":%d,"value":%s,"unit":"ops/s","cmd":"%s","pipeline":%d,"threads":%d,"mode":"sharded","conns":50,"runs":%d,"server_cpu_us_per_op":%s}\n' \
                "$impl" "$n" "${res[$server,$p,$t]}" "$t" "$p" "$threads" "$runs" "${cpu[$server,$p,$t]}"
        done
    done
done
echo
printf '%-22s %16s %16s %16s %16s\n' server "SET -P 1" "GET -P 1" "SET -P 16" "GET -P 16"
for server in $servers; do
    name=$([ $server = redis ] && echo "redis-server" || echo "weft-kv ${server#kv} shard(s)")
    line=$(printf '%-22s' "$name")
    for p in 1 16; do
        for t in set get; do
            v=${res[$server,$p,$t]}
            r=$(awk -v a="$v" -v b="${res[redis,$p,$t]}" 'BEGIN {printf "%.2f", a / b}')
            line="$line $(printf '%16s' "$(printf '%.0f (%sx)' "$v" "$r")")"
        done
    done
    echo "$line"
done
echo
echo "server CPU per request (us; ratio to redis-server):"
for server in $servers; do
    name=$([ $server = redis ] && echo "redis-server" || echo "weft-kv ${server#kv} shard(s)")
    line=$(printf '%-22s' "$name")
    for p in 1 16; do
        for t in set get; do
            v=${cpu[$server,$p,$t]}
            r=$(awk -v a="$v" -v b="${cpu[redis,$p,$t]}" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
            line="$line $(printf '%16s' "$v (${r}x)")"
        done
    done
    echo "$line"
done
echo "($runs rounds, $ncpu CPUs, redis-benchmark -c 50 -r 100000, -n $n1 unpipelined, $n16 at -P 16)"
