#!/usr/bin/env bash
# tcp_echo side by side (bench-workloads.md): builds the load generator and the
# peer echo servers (epoll_raw, Go, Tokio, libuv, and "threads", one blocking thread per
# connection), then runs weft's echo server (if built)
# and each peer pinned to CPU 0 against the load generator pinned to CPU 1, at 100, 1,000
# and 5,000 connections on 127.0.0.1, and prints medians with ratios to weft.
#
# Usage: bench/run_net.sh BUILD_DIR [RUNS] [SECONDS]      (defaults: 3 runs of 10 s)
#   weft's server is BUILD_DIR/examples/echo_server --workers 1 PORT (skipped if absent):
#   one worker, as every peer here runs on one core (WEFT_NET_WORKERS overrides it); the rest is
#   built into BUILD_DIR/peers/tcp_echo/; every JSON line goes to BUILD_DIR/net-results.jsonl.
# Environment: BACKENDS="epoll io_uring" runs weft once per backend (WEFT_BACKEND=<b>, impl
#   weft_<b>; unset: one run as impl "weft"); CONNS (default "100 1000 5000"); WARMUP
#   (s, default 1); NET_IMPLS="epoll_raw libuv" runs a subset of the peers; BASE_PORT
#   (default 20000); BENCH_NO_PIN=1 disables taskset; THREADS_MAX_CONNS (default 1000) is
#   the most connections the thread-per-connection server is run at; PROBE_CONNS (default:
#   CONNS; "" for none) adds one run of each weft server per count with WEFT_ECHO_PROBE=all,
#   whose sched_latency lines (examples/latency_probe.c) go to the results instead of its
#   tcp_echo line.

set -u

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: $0 BUILD_DIR [RUNS] [SECONDS]" >&2
    exit 2
fi
BUILD_DIR=$(mkdir -p "$1" && cd "$1" && pwd)
RUNS=${2:-3}
SECS=${3:-10}
case "$RUNS" in '' | *[!0-9]* | 0) echo "RUNS must be a positive integer" >&2; exit 2 ;; esac
case "$SECS" in '' | *[!0-9]* | 0) echo "SECONDS must be a positive integer" >&2; exit 2 ;; esac
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"100 1000 5000"}
BASE_PORT=${BASE_PORT:-20000}
# The thread-per-connection server's one accepting thread shares CPU 0 with every busy
# connection thread: at 5,000 connections it cannot accept them all within the load
# generator's 30 s (docs/performance.md, "A thread per connection"), so by default it stops
# at 1,000.
THREADS_MAX_CONNS=${THREADS_MAX_CONNS:-1000}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/bench/peers/tcp_echo
OUT=$BUILD_DIR/peers/tcp_echo
RESULTS=$BUILD_DIR/net-results.jsonl
mkdir -p "$OUT"

log() { printf '[net] %s\n' "$*" >&2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_conns=0
for c in $CONNS; do [ "$c" -gt "$max_conns" ] && max_conns=$c; done
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_conns + 64)) ]; then
    log "warning: ulimit -n is $(ulimit -n) (hard limit): too few descriptors for $max_conns connections"
fi

PIN0=() PIN1=()
if [ -z "${BENCH_NO_PIN:-}" ] && command -v taskset >/dev/null 2>&1 &&
    taskset -c 0 true 2>/dev/null && taskset -c 1 true 2>/dev/null; then
    PIN0=(taskset -c 0) PIN1=(taskset -c 1)
else
    log "warning: not pinning (taskset missing, fewer than 2 CPUs, or BENCH_NO_PIN set)"
fi

# ---------------------------------------------------------------- building
CC=${CC:-cc}
log "building into $OUT"
"$CC" -O2 -Wall -pthread -o "$OUT/tcp_echo_load" "$ROOT/bench/tcp_echo_load.c" >"$OUT/load.build.log" 2>&1 ||
    { log "the load generator failed to build, see $OUT/load.build.log"; exit 1; }

declare -A CMD # impl -> command line (word-split when run; no spaces in paths expected)
PEERS=()

build_epoll_raw() {
    "$CC" -O2 -Wall -o "$OUT/epoll_raw" "$SRC/epoll_raw.c" >"$OUT/epoll_raw.build.log" 2>&1 ||
        { log "skip epoll_raw: build failed, see $OUT/epoll_raw.build.log"; return 1; }
    CMD[epoll_raw]="$OUT/epoll_raw"
}

build_go() {
    command -v go >/dev/null 2>&1 || { log "skip go_p1: no 'go' toolchain"; return 1; }
    (cd "$SRC/go" &&
        env GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
            GOPATH="$OUT/go/gopath" GOCACHE="$OUT/go/gocache" \
            go build -trimpath -o "$OUT/go-echo" .) >"$OUT/go.build.log" 2>&1 ||
        { log "skip go_p1: build failed, see $OUT/go.build.log"; return 1; }
    CMD[go_p1]="env GOMAXPROCS=1 $OUT/go-echo"
}

build_tokio() {
    local cargo
    cargo=$(command -v cargo || true)
    [ -z "$cargo" ] && [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && cargo=${HOME:-/root}/.cargo/bin/cargo
    [ -z "$cargo" ] && [ -x /root/.cargo/bin/cargo ] && cargo=/root/.cargo/bin/cargo
    [ -n "$cargo" ] || { log "skip tokio_ct: no cargo"; return 1; }
    compgen -G "/usr/share/cargo/registry/tokio-1.*" >/dev/null ||
        { log "skip tokio_ct: Debian's vendored tokio (librust-tokio-dev) not in /usr/share/cargo/registry"; return 1; }
    # Build from a copy so the generated Cargo.lock never lands in the source tree.
    local src=$OUT/tokio/src-copy
    rm -rf "$src" && mkdir -p "$src"
    cp -pR "$SRC/tokio/Cargo.toml" "$SRC/tokio/src" "$SRC/tokio/.cargo" "$src/"
    (cd "$src" && PATH="$(dirname "$cargo"):$PATH" CARGO_TARGET_DIR="$OUT/tokio/target" \
        "$cargo" build --release --offline) >"$OUT/tokio.build.log" 2>&1 ||
        { log "skip tokio_ct: build failed, see $OUT/tokio.build.log"; return 1; }
    CMD[tokio_ct]="$OUT/tokio/target/release/tcp-echo-tokio"
}

build_threads() {
    "$CC" -O2 -Wall -pthread -o "$OUT/threads_echo" "$SRC/threads.c" >"$OUT/threads.build.log" 2>&1 ||
        { log "skip threads: build failed, see $OUT/threads.build.log"; return 1; }
    CMD[threads]="$OUT/threads_echo"
}

build_libuv() {
    { [ -f /usr/include/uv.h ] || pkg-config --exists libuv 2>/dev/null; } ||
        { log "skip libuv: libuv1-dev not installed"; return 1; }
    "$CC" -O2 -Wall -o "$OUT/libuv_echo" "$SRC/libuv.c" -luv >"$OUT/libuv.build.log" 2>&1 ||
        { log "skip libuv: build failed, see $OUT/libuv.build.log"; return 1; }
    CMD[libuv]="$OUT/libuv_echo"
}

for p in ${NET_IMPLS:-epoll_raw go_p1 tokio_ct libuv threads}; do
    case "$p" in
        epoll_raw) build_epoll_raw && PEERS+=(epoll_raw) ;;
        go_p1) build_go && PEERS+=(go_p1) ;;
        tokio_ct) build_tokio && PEERS+=(tokio_ct) ;;
        libuv) build_libuv && PEERS+=(libuv) ;;
        threads) build_threads && PEERS+=(threads) ;;
        *) log "unknown peer '$p' in NET_IMPLS, ignored" ;;
    esac
done

IMPLS=()
WEFT_BIN=$BUILD_DIR/examples/echo_server
# The server runs on every CPU by default; these single-core figures measure one worker (it
# is pinned to CPU 0 beside the peers, which run on one core each).
WEFT_ARGS="--workers ${WEFT_NET_WORKERS:-1}"
if [ -x "$WEFT_BIN" ]; then
    if [ -n "${BACKENDS:-}" ]; then
        for b in $BACKENDS; do
            CMD[weft_$b]="env WEFT_BACKEND=$b $WEFT_BIN $WEFT_ARGS"
            IMPLS+=("weft_$b")
        done
    else
        CMD[weft]="$WEFT_BIN $WEFT_ARGS"
        IMPLS+=(weft)
    fi
else
    log "no weft echo server ($WEFT_BIN): peers only"
fi
IMPLS+=("${PEERS[@]}")
[ ${#IMPLS[@]} -gt 0 ] || { log "nothing to run"; exit 1; }
log "servers: ${IMPLS[*]}; connections: $CONNS; $RUNS run(s) of ${WARMUP} s warm-up + $SECS s"

# ---------------------------------------------------------------- running
SPID='' LPID=''
LOAD_OUT=$OUT/load.out
cleanup() {
    [ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null # timeout passes it on to the load generator
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null
        sleep 0.2
        kill -KILL "$SPID" 2>/dev/null
    fi
    SPID='' LPID=''
}
trap cleanup EXIT
trap 'log interrupted; cleanup; exit 130' INT TERM

accepts() { # PORT: does something accept on 127.0.0.1:PORT? (bounded: 1 s)
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

stop_server() {
    [ -n "$SPID" ] || return
    kill -TERM "$SPID" 2>/dev/null
    local i
    for ((i = 0; i < 40; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}

SERVER_LOG=$OUT/servers.log
: >"$SERVER_LOG"
: >"$RESULTS"
port=$BASE_PORT
LOAD_TIMEOUT=$((SECS + ${WARMUP%.*} + 60)) # connect (<= 30 s) + warm-up + run + teardown

run_one() { # impl conns run [probe]
    local impl=$1 conns=$2 run=$3 probe=${4:-} i ok=0 sout=$SERVER_LOG
    port=$((port + 1))
    while accepts "$port"; do port=$((port + 1)); done # something else already listens there
    printf '=== %s conns=%s run=%s port=%s%s\n' "$impl" "$conns" "$run" "$port" "${probe:+ probe}" >>"$SERVER_LOG"
    [ -n "$probe" ] && { sout=$OUT/probe.out; : >"$sout"; }
    # shellcheck disable=SC2086 # CMD holds a command line
    "${PIN0[@]}" ${probe:+env WEFT_ECHO_PROBE=all WEFT_ECHO_PROBE_IMPL=$impl WEFT_ECHO_PROBE_CONNS=$conns} ${CMD[$impl]} "$port" >>"$sout" 2>&1 &
    SPID=$!
    for ((i = 0; i < 100; i++)); do # up to ~10 s for the server to listen
        kill -0 "$SPID" 2>/dev/null || break
        if accepts "$port"; then ok=1; break; fi
        sleep 0.1
    done
    if [ $ok = 0 ]; then
        log "  $impl: server did not start listening on port $port (see $SERVER_LOG)"
        stop_server
        return
    fi
    local line rc other
    # --server-pid: SPID is the server itself (taskset and env exec, they do not fork).
    # In the background, so that `wait` returns at once when a signal hits the script.
    timeout -k 5 "$LOAD_TIMEOUT" "${PIN1[@]}" "$OUT/tcp_echo_load" --port "$port" \
        --conns "$conns" --seconds "$SECS" --warmup "$WARMUP" --impl "$impl" \
        --server-pid "$SPID" >"$LOAD_OUT" &
    LPID=$!
    wait "$LPID"
    rc=$?
    LPID=
    line=$(grep -m1 '^{' "$LOAD_OUT")
    kill -0 "$SPID" 2>/dev/null || log "  $impl: the server died during the run"
    stop_server
    if [ -n "$probe" ]; then # the probe's lines, printed at the server's shutdown
        grep '^{' "$sout" | tee -a "$RESULTS" | sed 's/^/[net]   /' >&2
        cat "$sout" >>"$SERVER_LOG"
        return
    fi
    if [ $rc != 0 ]; then
        log "  $impl at $conns connections: load generator exit status $rc, result dropped${line:+: $line}"
        return
    fi
    case "$line" in
        '{'*'}')
            printf '%s\n' "$line" >>"$RESULTS"
            log "  $line"
            other=$(sed -n 's/.*"other_cpu_pct":\([0-9]*\).*/\1/p' <<<"$line")
            [ -n "$other" ] && [ "$other" -gt 10 ] &&
                log "  warning: other processes used ${other}% CPU during this run: it is disturbed"
            ;;
        *) log "  $impl at $conns connections: no JSON line" ;;
    esac
}

for conns in $CONNS; do
    for ((r = 1; r <= RUNS; r++)); do
        log "$conns connections: run $r/$RUNS"
        # Interleave servers within each run so drift hits all of them alike.
        for impl in "${IMPLS[@]}"; do
            if [ "$impl" = threads ] && [ "$conns" -gt "$THREADS_MAX_CONNS" ]; then
                [ "$r" = 1 ] && log "  threads: skipped above $THREADS_MAX_CONNS connections (THREADS_MAX_CONNS)"
                continue
            fi
            run_one "$impl" "$conns" "$r"
        done
    done
done
for conns in ${PROBE_CONNS-$CONNS}; do
    log "$conns connections: schedule-latency probe"
    for impl in "${IMPLS[@]}"; do
        case "$impl" in weft | weft_*) run_one "$impl" "$conns" probe probe ;; esac
    done
done
trap - EXIT INT TERM
cleanup
log "results: $RESULTS"

# ---------------------------------------------------------------- table
if ! command -v python3 >/dev/null 2>&1; then
    log "python3 not found: raw results follow"
    cat "$RESULTS"
    exit 0
fi
python3 - "$RESULTS" "${IMPLS[*]}" <<'PY' || log "could not print the table; raw results are in $RESULTS"
import json, statistics, sys

path, order = sys.argv[1], sys.argv[2].split()
rows = {}
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if isinstance(r, dict) and r.get("workload") == "tcp_echo":
        rows.setdefault((int(r["conns"]), r["impl"]), []).append(r)

weft = [i for i in order if i == "weft" or i.startswith("weft_")]
base = weft[0] if weft else None
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)

def med_or_nan(rs, k):
    vals = [float(r[k]) for r in rs if isinstance(r.get(k), (int, float))]
    return statistics.median(vals) if vals else float("nan")

print()
print(f"tcp_echo medians. ratio = {base or 'weft'} msg/s / this impl's msg/s: >1 means weft is"
      " faster ('-': no weft result).")
print("srv us/msg = the server's CPU time (user+sys) per message; srv%, load% = CPU use of the "
      "server and the load generator (100 = a whole core, so the one at ~100 is the bottleneck); "
      "other% = CPU used by anything else (high: disturbed run); srv RSS = the server's resident "
      "memory at the end of the window, every connection open.")
hdr = ["conns", "impl", "median msg/s", "ratio", "median p50_us", "median p99_us",
       "srv us/msg", "srv%", "load%", "other%", "srv RSS MiB", "runs"]
table = []
for conns in sorted({k[0] for k in rows}):
    bv = med(rows[(conns, base)], "value") if base and (conns, base) in rows else None
    impls = [i for i in order if (conns, i) in rows]
    impls += sorted(i for (c, i) in rows if c == conns and i not in impls)
    for i in impls:
        rs = rows[(conns, i)]
        v = med(rs, "value")
        ratio = f"{bv / v:.2f}x" if bv and v > 0 else "-"
        table.append([str(conns), i, f"{v:,.0f}", ratio, f"{med(rs, 'p50_us'):.1f}",
                      f"{med(rs, 'p99_us'):.1f}", f"{med_or_nan(rs, 'server_us_per_msg'):.2f}",
                      f"{med_or_nan(rs, 'server_cpu_pct'):.0f}",
                      f"{med_or_nan(rs, 'client_cpu_pct'):.0f}",
                      f"{med_or_nan(rs, 'other_cpu_pct'):.0f}",
                      f"{med_or_nan(rs, 'server_rss_bytes') / (1 << 20):.1f}", str(len(rs))])
if not table:
    print("(no results)")
    sys.exit(0)
w = [max(len(h), *(len(t[c]) for t in table)) for c, h in enumerate(hdr)]
fmt = lambda cells: "| " + " | ".join(c.rjust(w[j]) if j != 1 else c.ljust(w[j])
                                      for j, c in enumerate(cells)) + " |"
print(fmt(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
prev = None
for t in table:
    print(fmt([t[0] if t[0] != prev else ""] + t[1:]))
    prev = t[0]
PY
exit 0
