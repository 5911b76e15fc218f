#!/usr/bin/env bash
# What the metrics cost (issue "Observability": at most 2% server CPU per message on
# tcp_echo): weft's echo server built twice from this tree, with the metrics (the default)
# and with -DWEFT_METRICS=OFF (the counters only the metrics read, and the histograms'
# sampling, compiled out: src/internal.h's WEFT_COUNT), run in alternation under
# bench/run_net.sh's tcp_echo (one worker, epoll, server on CPU 0, load on CPU 1); prints the
# median server CPU per message of each and their ratio. Also the instructions per message in
# user space of each, under callgrind (exact where wall time is noisy).
#
# Usage: bench/run_metrics_cost.sh BUILD_ROOT [RUNS] [SECONDS]   (defaults: 5 runs of 5 s)
# Environment: CONNS (default "100 1000").
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
RUNS=${2:-5}
SECS=${3:-5}
CONNS=${CONNS:-"100 1000"}
log() { printf '[metrics-cost] %s\n' "$*" >&2; }

for v in on off; do
    flag=ON
    [ $v = off ] && flag=OFF
    cmake -S "$ROOT" -B "$OUT/metrics-$v" -DCMAKE_BUILD_TYPE=Release -DWEFT_TESTS=OFF \
        -DWEFT_APPS=OFF -DWEFT_METRICS=$flag >"$OUT/metrics-$v.configure.log" 2>&1 ||
        { log "configure failed: $OUT/metrics-$v.configure.log"; exit 1; }
    cmake --build "$OUT/metrics-$v" -j"$(nproc)" --target echo_server \
        >"$OUT/metrics-$v.build.log" 2>&1 || { log "build failed: $OUT/metrics-$v.build.log"; exit 1; }
done

: >"$OUT/metrics-cost.jsonl"
# Three servers in turn: metrics on (the default build), metrics off, and metrics on with the
# stall detector's thread off (WEFT_STALL_MS=-1: what the detector costs when nothing stalls).
for ((r = 1; r <= RUNS; r++)); do
    for v in on off nostall; do
        log "run $r, $v"
        build=$v stall=
        [ $v = nostall ] && build=on stall=-1
        WEFT_STALL_MS=$stall CONNS="$CONNS" NET_IMPLS=none WARMUP=1 "$ROOT/bench/run_net.sh" \
            "$OUT/metrics-$build" 1 "$SECS" 2>>"$OUT/metrics-cost.log"
        sed "s/\"impl\":\"weft\"/\"impl\":\"weft_metrics_$v\"/" "$OUT/metrics-$build/net-results.jsonl" \
            >>"$OUT/metrics-cost.jsonl"
    done
done

# Instructions per message in the server's user space, under callgrind: two runs of the load
# (2 and 6 s after the same 1 s warm-up), whose differences in instructions and in messages
# cancel the start-up, the connections' setup and the warm-up.
CG_CONNS=${CG_CONNS:-100}
LOADGEN=$OUT/metrics-on/peers/tcp_echo/tcp_echo_load
cg_run() { # variant seconds -> "instructions messages"
    local v=$1 secs=$2 port=$((29000 + RANDOM % 1000)) pid n ir
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$v-$secs.out" \
        "$OUT/metrics-$v/examples/echo_server" --workers 1 "$port" >/dev/null 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
        sleep 0.1
    done
    n=$("$LOADGEN" --port "$port" --conns "$CG_CONNS" --seconds "$secs" --warmup 1 |
        sed -n 's/.*"n":\([0-9]*\).*/\1/p' | head -1)
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$OUT/cg-$v-$secs.out")
    echo "$ir $n"
}
if command -v valgrind >/dev/null && [ -x "$LOADGEN" ]; then
    for v in on off; do
        read -r ir2 n2 < <(cg_run $v 2)
        read -r ir6 n6 < <(cg_run $v 6)
        if [ -n "$ir2" ] && [ -n "$ir6" ] && [ "${n6:-0}" -gt "${n2:-0}" ]; then
            echo "{\"impl\":\"weft_metrics_$v\",\"workload\":\"tcp_echo_instructions\",\"conns\":$CG_CONNS,\"instructions_per_msg\":$(((ir6 - ir2) / (n6 - n2)))}" \
                >>"$OUT/metrics-cost.jsonl"
        fi
    done
else
    log "no valgrind: instructions per message skipped"
fi

/usr/bin/env python3 - "$OUT/metrics-cost.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    if r.get("workload") == "tcp_echo" and "server_us_per_msg" in r:
        by.setdefault((r["conns"], r["impl"]), []).append(r["server_us_per_msg"])
print("| conns | metrics on (us/msg) | metrics off | on/off | stall detector off | on/that | runs |")
print("|---|---|---|---|---|---|---|")
for c in sorted({k[0] for k in by}):
    on, off = by.get((c, "weft_metrics_on"), []), by.get((c, "weft_metrics_off"), [])
    ns = by.get((c, "weft_metrics_nostall"), [])
    if on and off and ns:
        a, b, d = statistics.median(on), statistics.median(off), statistics.median(ns)
        print(f"| {c} | {a:.3f} | {b:.3f} | {a / b:.3f} | {d:.3f} | {a / d:.3f} | {len(on)} |")
ins = {r["impl"]: r["instructions_per_msg"] for r in rows
       if r.get("workload") == "tcp_echo_instructions"}
if len(ins) == 2:
    a, b = ins["weft_metrics_on"], ins["weft_metrics_off"]
    print(f"\nuser-space instructions per message (callgrind): on {a}, off {b}, +{a - b} ({a / b - 1:+.1%})")
PY
