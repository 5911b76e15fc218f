#!/usr/bin/env bash
# The multi-core workloads of bench-workloads.md side by side (used by `make bench-mt`):
# spawn_join_mt, fanout_tree, chan_mpmc and sched_latency (N workers), tcp_echo_mt (N
# workers serving 1,000 connections) and blocked_worker (N = 2). weft runs through its
# bench_spawn_join_mt, bench_fanout_tree and bench_chan_mpmc (impl weft_sharded, and
# weft_stealing once weft_run stops answering -ENOTSUP for it); the peers are those this
# machine has toolchains for: Go (GOMAXPROCS=N, impl "go"), Tokio (multi_thread with N
# workers, impl "tokio_mt") and, for tcp_echo_mt, epoll_raw with N shards (impl
# "epoll_raw_shards"). Prints a table of medians with ratios to weft and to the same
# implementation on 1 thread.
#
# Usage: bench/run_mt.sh BUILD_DIR [RUNS]      (RUNS defaults to 3)
#   weft binaries are BUILD_DIR/bench/bench_<workload> (skipped if absent); peers are built
#   into BUILD_DIR/peers/ (the places bench/run.sh and bench/run_net.sh build them); this
#   run's JSON lines go to BUILD_DIR/mt-results.jsonl (rewritten) and are appended to
#   BUILD_DIR/bench-results.jsonl.
# Environment:
#   MT_THREADS="1 2"     the worker counts N (blocked_worker always runs at N = 2)
#   MT_WORKLOADS="..."   a subset (default: all six, in the order above)
#   MT_IMPLS="go tokio_mt epoll_raw_shards"   the peers to run (weft runs whenever built)
#   MT_SPAWN_N (1000000), MT_FANOUT_DEPTH (20), MT_MPMC_N (10000000), MT_SCHED_N (10000):
#     the counts given to every implementation
#   MT_ECHO_CONNS (1000), MT_ECHO_SECONDS (5), MT_BLOCKED_CONNS (100), MT_BLOCKED_SECONDS
#     (5), WARMUP (s, 1): the network runs
#   MT_LOAD_THREADS (1): the load generator's threads (tcp_echo_load --threads, at most the
#     run's connection count), for a server on more CPUs than one load thread keeps busy; with
#     more than 1, tcp_echo_mt lines say so in "load_threads" ("threads" is the server's N)
#   BENCH_TIMEOUT (s, default 300) bounds each single run; BENCH_NO_PIN=1 disables taskset;
#   BASE_PORT (default 21000).
#   MT_PREBUILT=1: a peer or helper already built in BUILD_DIR/peers/ is used as it is (for a
#     machine without the toolchains: build there with MT_BUILD_ONLY=1 first, then carry
#     BUILD_DIR over); MT_BUILD_ONLY=1: build the peers and stop.
# Pinning: with N workers the program under test gets CPUs 0..N-1 (all of them when N is
# larger than the machine); the load generator gets the last MT_LOAD_THREADS CPUs (none
# pinned when that leaves no CPU before them). Where N + MT_LOAD_THREADS is more than the
# machine's CPUs they share some, as on a 2-CPU machine the load generator's one CPU with the
# second worker: compare server CPU per message there, not messages/s.

set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BUILD_DIR [RUNS]" >&2
    exit 2
fi
BUILD_DIR=$(mkdir -p "$1" && cd "$1" && pwd)
RUNS=${2:-3}
case "$RUNS" in '' | *[!0-9]* | 0) echo "RUNS must be a positive integer" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER_SRC=$ROOT/bench/peers
PEER_OUT=$BUILD_DIR/peers
NET_OUT=$PEER_OUT/tcp_echo
RESULTS=$BUILD_DIR/mt-results.jsonl
ALL_RESULTS=$BUILD_DIR/bench-results.jsonl
THREADS=${MT_THREADS:-"1 2"}
WORKLOADS=${MT_WORKLOADS:-"spawn_join_mt fanout_tree chan_mpmc sched_latency tcp_echo_mt blocked_worker"}
PEERS_WANTED=${MT_IMPLS:-"go tokio_mt epoll_raw_shards"}
SPAWN_N=${MT_SPAWN_N:-1000000}
FANOUT_DEPTH=${MT_FANOUT_DEPTH:-20}
MPMC_N=${MT_MPMC_N:-10000000}
SCHED_N=${MT_SCHED_N:-10000}
ECHO_CONNS=${MT_ECHO_CONNS:-1000}
ECHO_SECS=${MT_ECHO_SECONDS:-5}
BLOCKED_CONNS=${MT_BLOCKED_CONNS:-100}
BLOCKED_SECS=${MT_BLOCKED_SECONDS:-5}
WARMUP=${WARMUP:-1}
TIMEOUT=${BENCH_TIMEOUT:-300}
port=${BASE_PORT:-21000}
LOAD_THREADS=${MT_LOAD_THREADS:-1}
for t in $THREADS; do
    case "$t" in '' | *[!0-9]* | 0) echo "MT_THREADS: '$t' is not a positive integer" >&2; exit 2 ;; esac
done
case "$LOAD_THREADS" in
    '' | *[!0-9]* | 0) echo "MT_LOAD_THREADS: '$LOAD_THREADS' is not a positive integer" >&2; exit 2 ;;
esac
mkdir -p "$PEER_OUT" "$NET_OUT"

log() { printf '[mt] %s\n' "$*" >&2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NCPU=$(nproc 2>/dev/null || echo 1)
PIN_OK=0
if [ -z "${BENCH_NO_PIN:-}" ] && command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
    PIN_OK=1
fi
pin_workers() { # N: the taskset prefix for a program with N workers (printed, word-split)
    [ $PIN_OK = 1 ] && [ "$1" -lt "$NCPU" ] && echo "taskset -c 0-$(($1 - 1))"
}
pin_load() { # the taskset prefix for the load generator: the last LOAD_THREADS CPUs
    [ $PIN_OK = 1 ] && [ "$NCPU" -gt "$LOAD_THREADS" ] &&
        echo "taskset -c $((NCPU - LOAD_THREADS))-$((NCPU - 1))"
}

# ---------------------------------------------------------------- building the peers
# The same builds as bench/run.sh (Go and Tokio benchmark peers) and bench/run_net.sh (the
# echo servers and the load generator), into the same places.
CC=${CC:-cc}
HAVE_GO=0 HAVE_TOKIO=0 HAVE_LOAD=0
declare -A ECHO # impl -> echo server command (PORT THREADS are appended)

find_cargo() {
    local cargo
    cargo=$(command -v cargo || true)
    [ -z "$cargo" ] && [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && cargo=${HOME:-/root}/.cargo/bin/cargo
    [ -z "$cargo" ] && [ -x /root/.cargo/bin/cargo ] && cargo=/root/.cargo/bin/cargo
    [ -n "$cargo" ] || return 1
    compgen -G "/usr/share/cargo/registry/tokio-1.*" >/dev/null || return 1
    echo "$cargo"
}

go_build() { # SRC_DIR OUT_BIN GOPATH_DIR LOG
    command -v go >/dev/null 2>&1 || { log "skip go: no 'go' toolchain"; return 1; }
    (cd "$1" &&
        env GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
            GOPATH="$3/gopath" GOCACHE="$3/gocache" \
            go build -trimpath -o "$2" .) >"$4" 2>&1 ||
        { log "skip go: build failed, see $4"; return 1; }
}

cargo_build() { # SRC_DIR COPY_DIR TARGET_DIR LOG
    local cargo
    cargo=$(find_cargo) || { log "skip tokio: no cargo, or Debian's vendored tokio (librust-tokio-dev) missing"; return 1; }
    # Build from a copy so the generated Cargo.lock never lands in the source tree.
    rm -rf "$2" && mkdir -p "$2"
    cp -pR "$1/Cargo.toml" "$1/src" "$1/.cargo" "$2/"
    (cd "$2" && PATH="$(dirname "$cargo"):$PATH" CARGO_TARGET_DIR="$3" \
        "$cargo" build --release --offline) >"$4" 2>&1 ||
        { log "skip tokio: build failed, see $4"; return 1; }
}

have_prebuilt() { [ -n "${MT_PREBUILT:-}" ] && [ -x "$1" ]; }

want_peer() { case " $PEERS_WANTED " in *" $1 "*) return 0 ;; esac; return 1; }
want_workload() { case " $WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }
NEED_NET=0
{ want_workload tcp_echo_mt || want_workload blocked_worker; } && NEED_NET=1

log "building peers into $PEER_OUT"
GO_PEER=$PEER_OUT/go/go-peer
TOKIO_PEER=$PEER_OUT/tokio/target/release/tokio-peer
if want_peer go; then
    mkdir -p "$PEER_OUT/go"
    { have_prebuilt "$GO_PEER" || go_build "$PEER_SRC/go" "$GO_PEER" "$PEER_OUT/go" "$PEER_OUT/go/build.log"; } &&
        HAVE_GO=1
    if [ $NEED_NET = 1 ] && want_workload tcp_echo_mt && { have_prebuilt "$NET_OUT/go-echo" ||
        go_build "$PEER_SRC/tcp_echo/go" "$NET_OUT/go-echo" "$NET_OUT/go" "$NET_OUT/go.build.log"; }; then
        ECHO[go]="$NET_OUT/go-echo"
    fi
fi
if want_peer tokio_mt; then
    mkdir -p "$PEER_OUT/tokio"
    { have_prebuilt "$TOKIO_PEER" || cargo_build "$PEER_SRC/tokio" "$PEER_OUT/tokio/src-copy" \
        "$PEER_OUT/tokio/target" "$PEER_OUT/tokio/build.log"; } && HAVE_TOKIO=1
    if [ $NEED_NET = 1 ] && want_workload tcp_echo_mt &&
        { have_prebuilt "$NET_OUT/tokio/target/release/tcp-echo-tokio" ||
            cargo_build "$PEER_SRC/tcp_echo/tokio" "$NET_OUT/tokio/src-copy" "$NET_OUT/tokio/target" \
                "$NET_OUT/tokio.build.log"; }; then
        ECHO[tokio_mt]="$NET_OUT/tokio/target/release/tcp-echo-tokio"
    fi
fi
if [ $NEED_NET = 1 ]; then
    if have_prebuilt "$NET_OUT/tcp_echo_load" ||
        "$CC" -O2 -Wall -pthread -o "$NET_OUT/tcp_echo_load" "$ROOT/bench/tcp_echo_load.c" >"$NET_OUT/load.build.log" 2>&1; then
        HAVE_LOAD=1
    else
        log "skip tcp_echo_mt and blocked_worker: the load generator failed to build, see $NET_OUT/load.build.log"
    fi
    if want_peer epoll_raw_shards && want_workload tcp_echo_mt; then
        if have_prebuilt "$NET_OUT/epoll_raw" ||
            "$CC" -O2 -Wall -pthread -o "$NET_OUT/epoll_raw" "$PEER_SRC/tcp_echo/epoll_raw.c" \
                >"$NET_OUT/epoll_raw.build.log" 2>&1; then
            ECHO[epoll_raw_shards]="$NET_OUT/epoll_raw"
        else
            log "skip epoll_raw_shards: build failed, see $NET_OUT/epoll_raw.build.log"
        fi
    fi
fi

if [ -n "${MT_BUILD_ONLY:-}" ]; then
    log "built (MT_BUILD_ONLY): go=$HAVE_GO tokio=$HAVE_TOKIO load=$HAVE_LOAD"
    exit 0
fi

# ---------------------------------------------------------------- running
TMO=()
command -v timeout >/dev/null 2>&1 && TMO=(timeout -k 5 "$TIMEOUT")

store() { # a JSON line: into this run's file and the shared one
    printf '%s\n' "$1" >>"$RESULTS"
    printf '%s\n' "$1" >>"$ALL_RESULTS"
}

run_one() { # label N, then the command; stores its JSON lines
    local label=$1 n=$2; shift 2
    local out rc
    # shellcheck disable=SC2046 # the pin prefix is meant to be word-split
    out=$("${TMO[@]}" $(pin_workers "$n") "$@")
    rc=$?
    if [ $rc -ne 0 ]; then log "  $label ($n threads): exit status $rc (results of this run dropped)"; fi
    local got=0 line
    while IFS= read -r line; do
        case "$line" in
            '{'*) [ $rc -eq 0 ] && { store "$line"; got=$((got + 1)); } ;;
            '') ;;
            *) log "  $label: $line" ;;
        esac
    done <<<"$out"
    [ $rc -ne 0 ] || [ $got -gt 0 ] || log "  $label ($n threads): printed no JSON line"
}

# The network runs: a server in the background, the load generator against it.
SPID='' LPID=''
LOAD_OUT=$NET_OUT/mt-load.out
SERVER_OUT=$NET_OUT/mt-server.out
SERVER_LOG=$NET_OUT/mt-servers.log
cleanup() {
    [ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null
    [ -n "$SPID" ] && { kill -TERM "$SPID" 2>/dev/null; sleep 0.2; kill -KILL "$SPID" 2>/dev/null; }
    SPID='' LPID=''
}
trap cleanup EXIT
trap 'log interrupted; cleanup; exit 130' INT TERM

accepts() { # PORT: does something accept on 127.0.0.1:PORT? (bounded: 1 s)
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

stop_server() { # SIGTERM, then SIGKILL after 2 s
    [ -n "$SPID" ] || return
    kill -TERM "$SPID" 2>/dev/null
    local i
    for ((i = 0; i < 40; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    SPID=
}

# label N conns seconds, then the server command (taking the port as its next word, then
# whatever follows "PORT" in it); leaves the load generator's JSON line in LOAD_LINE.
LOAD_LINE=
serve_and_load() {
    local label=$1 n=$2 conns=$3 secs=$4; shift 4
    local i ok=0 rc cmd=() w load_threads=() lt=$LOAD_THREADS
    LOAD_LINE=
    # --threads only above 1, so that a prebuilt load generator from before it still runs;
    # at most one thread per connection (the load generator refuses more).
    [ "$lt" -gt "$conns" ] && lt=$conns
    [ "$lt" -gt 1 ] && load_threads=(--threads "$lt")
    port=$((port + 1))
    while accepts "$port"; do port=$((port + 1)); done # something else already listens there
    for w in "$@"; do [ "$w" = PORT ] && cmd+=("$port") || cmd+=("$w"); done
    printf '=== %s threads=%s conns=%s port=%s\n' "$label" "$n" "$conns" "$port" >>"$SERVER_LOG"
    # shellcheck disable=SC2046 # the pin prefix is meant to be word-split
    $(pin_workers "$n") "${cmd[@]}" >"$SERVER_OUT" 2>>"$SERVER_LOG" &
    SPID=$!
    for ((i = 0; i < 100; i++)); do # up to ~10 s for the server to listen
        kill -0 "$SPID" 2>/dev/null || break
        if accepts "$port"; then ok=1; break; fi
        sleep 0.1
    done
    if [ $ok = 0 ]; then
        log "  $label: server did not start listening on port $port (see $SERVER_LOG)"
        stop_server
        return 1
    fi
    # --server-pid: SPID is the server itself (taskset execs). In the background, so that
    # `wait` returns at once when a signal hits the script.
    # shellcheck disable=SC2046
    timeout -k 5 $((secs + ${WARMUP%.*} + 60)) $(pin_load) "$NET_OUT/tcp_echo_load" --port "$port" \
        --conns "$conns" --seconds "$secs" --warmup "$WARMUP" --impl "$label" \
        --server-pid "$SPID" "${load_threads[@]}" >"$LOAD_OUT" &
    LPID=$!
    wait "$LPID"
    rc=$?
    LPID=
    LOAD_LINE=$(grep -m1 '^{' "$LOAD_OUT")
    kill -0 "$SPID" 2>/dev/null || log "  $label: the server died during the run"
    if [ $rc != 0 ]; then
        log "  $label ($n threads): load generator exit status $rc, result dropped${LOAD_LINE:+: $LOAD_LINE}"
        LOAD_LINE=
    fi
    return 0
}

field() { # KEY LINE: a numeric field of a flat JSON line
    sed -n "s/.*\"$1\":\(-\{0,1\}[0-9.][0-9.e+-]*\).*/\1/p" <<<"$2"
}

echo_mt_one() { # impl N mode, then the server's command line (PORT stands for the port)
    local impl=$1 n=$2 mode=$3; shift 3
    serve_and_load "$impl" "$n" "$ECHO_CONNS" "$ECHO_SECS" "$@" || return
    stop_server
    [ -n "$LOAD_LINE" ] || return
    # The load generator's own "threads" (with --threads > 1) becomes load_threads: in these
    # lines "threads" is the server's N.
    local line=${LOAD_LINE/\"threads\":/\"load_threads\":}
    line=${line/\"workload\":\"tcp_echo\"/\"workload\":\"tcp_echo_mt\",\"threads\":$n,\"mode\":\"$mode\"}
    store "$line"
    log "  $impl ($n threads): $(field value "$line") msg/s, server $(field server_us_per_msg "$line") us/msg"
    warn_disturbed "$line"
}

warn_disturbed() { # a load generator's line: says so when other processes took CPU meanwhile
    local other
    other=$(sed -n 's/.*"other_cpu_pct":\([0-9]*\).*/\1/p' <<<"$1")
    [ -n "$other" ] && [ "$other" -gt 10 ] &&
        log "  warning: other processes used ${other}% CPU during this run: it is disturbed"
}

blocked_one() { # impl, then the peer command
    local impl=$1; shift
    serve_and_load "$impl" 2 "$BLOCKED_CONNS" "$BLOCKED_SECS" "$@" blocked_worker --port PORT --threads 2 || return
    stop_server # SIGTERM: the peer prints its ticker line and exits
    local srv
    srv=$(grep -m1 '^{' "$SERVER_OUT")
    [ -n "$srv" ] || { log "  $impl: the blocked_worker server printed no JSON line"; return; }
    # The label names the run (the server names itself by its flags, not by its backend)
    srv=$(sed "s/\"impl\":\"[^\"]*\"/\"impl\":\"$impl\"/" <<<"$srv")
    [ -n "$LOAD_LINE" ] || return
    local extra
    extra=$(printf ',"echo_msg_s":%s,"echo_p50_us":%s,"echo_p99_us":%s,"echo_server_us_per_msg":%s,"other_cpu_pct":%s,"conns":%s' \
        "$(field value "$LOAD_LINE")" "$(field p50_us "$LOAD_LINE")" "$(field p99_us "$LOAD_LINE")" \
        "$(field server_us_per_msg "$LOAD_LINE")" "$(field other_cpu_pct "$LOAD_LINE")" "$BLOCKED_CONNS")
    srv="${srv%\}}$extra}"
    store "$srv"
    warn_disturbed "$LOAD_LINE"
    log "  $impl: ticker p99 $(field p99_us "$srv") us, max $(field max_us "$srv") us; echo p99 $(field p99_us "$LOAD_LINE") us"
}

: >"$RESULTS"
: >"$SERVER_LOG"
for w in $WORKLOADS; do
    weft_bin=$BUILD_DIR/bench/bench_$w
    # sched_latency's N-worker form is its own program (bench_sched_latency is one worker's).
    [ "$w" = sched_latency ] && weft_bin=$BUILD_DIR/bench/bench_sched_latency_mt
    [ -x "$weft_bin" ] || weft_bin=
    case "$w" in
        spawn_join_mt) count=$SPAWN_N ;;
        fanout_tree) count=$FANOUT_DEPTH ;;
        chan_mpmc) count=$MPMC_N ;;
        sched_latency) count=$SCHED_N ;;
        tcp_echo_mt | blocked_worker) count= ;;
        *) log "unknown workload '$w', skipped"; continue ;;
    esac
    threads=$THREADS
    [ "$w" = blocked_worker ] && threads=2
    for ((r = 1; r <= RUNS; r++)); do
        log "$w: run $r/$RUNS"
        # Interleave thread counts and implementations within each run, so that drift hits
        # all of them alike.
        for n in $threads; do
            case "$w" in
                spawn_join_mt | fanout_tree | chan_mpmc | sched_latency)
                    [ -n "$weft_bin" ] && run_one weft "$n" "$weft_bin" "$count" --threads "$n"
                    # fork-join: weft's depth-first order too (WEFT_ORDER, impls weft_*_df)
                    [ -n "$weft_bin" ] && [ "$w" = fanout_tree ] &&
                        run_one weft_df "$n" env WEFT_ORDER=depth_first "$weft_bin" "$count" --threads "$n"
                    [ $HAVE_GO = 1 ] && run_one go "$n" "$GO_PEER" "$w" "$count" --threads "$n"
                    [ $HAVE_TOKIO = 1 ] && run_one tokio_mt "$n" "$TOKIO_PEER" "$w" "$count" --threads "$n"
                    ;;
                tcp_echo_mt)
                    [ $HAVE_LOAD = 1 ] || break 2
                    # weft: examples/echo_server on N workers (sharded, SO_REUSEPORT listeners)
                    [ -x "$BUILD_DIR/examples/echo_server" ] &&
                        echo_mt_one weft "$n" sharded "$BUILD_DIR/examples/echo_server" --workers "$n" PORT
                    # the same server in stealing mode (the issue: within 10% of sharded)
                    [ -x "$BUILD_DIR/examples/echo_server" ] &&
                        echo_mt_one weft_stealing "$n" stealing "$BUILD_DIR/examples/echo_server" --workers "$n" --mode stealing PORT
                    for impl in epoll_raw_shards go tokio_mt; do
                        local_mode=stealing
                        [ $impl = epoll_raw_shards ] && local_mode=sharded
                        [ -n "${ECHO[$impl]:-}" ] && echo_mt_one $impl "$n" $local_mode "${ECHO[$impl]}" PORT "$n"
                    done
                    ;;
                blocked_worker)
                    [ $HAVE_LOAD = 1 ] || break 2
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft "$BUILD_DIR/bench/bench_blocked_worker"
                    # Stealing mode: the involuntary hand-off (weft_config.handoff_us) moves
                    # worker 0 to a relief thread while the spinner spins
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_stealing "$BUILD_DIR/bench/bench_blocked_worker" --mode stealing
                    # The same spinner inside weft_block_in_place (the worker hand-off)
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_in_place "$BUILD_DIR/bench/bench_blocked_worker" --in-place
                    # A blocker asleep in read(2) instead of spinning: sharded (stuck), and
                    # stealing (the hand-off, for a call that SA_RESTART restarts)
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_read "$BUILD_DIR/bench/bench_blocked_worker" --block-read
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_stealing_read "$BUILD_DIR/bench/bench_blocked_worker" \
                            --block-read --mode stealing
                    # A blocker asleep in nanosleep(2), which a signal would cut short: the
                    # stall detector lets go of the worker from its own thread (handoff.h)
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_sleep "$BUILD_DIR/bench/bench_blocked_worker" --block-sleep
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_stealing_sleep "$BUILD_DIR/bench/bench_blocked_worker" \
                            --block-sleep --mode stealing
                    # Both stealing runs again on io_uring, whose rings are then movable
                    # (src/io/uring.c): the hand-off works there too
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_stealing_uring env WEFT_BACKEND=io_uring \
                            "$BUILD_DIR/bench/bench_blocked_worker" --mode stealing
                    [ -x "$BUILD_DIR/bench/bench_blocked_worker" ] &&
                        blocked_one weft_stealing_read_uring env WEFT_BACKEND=io_uring \
                            "$BUILD_DIR/bench/bench_blocked_worker" --block-read --mode stealing
                    [ $HAVE_GO = 1 ] && blocked_one go "$GO_PEER"
                    [ $HAVE_TOKIO = 1 ] && blocked_one tokio_mt "$TOKIO_PEER"
                    ;;
            esac
        done
    done
done
trap - EXIT INT TERM
cleanup
log "results: $RESULTS (also appended to $ALL_RESULTS)"

# ---------------------------------------------------------------- table
if ! command -v python3 >/dev/null 2>&1; then
    log "python3 not found: raw results follow"
    cat "$RESULTS"
    exit 0
fi
python3 - "$RESULTS" "$WORKLOADS" <<'PY' || log "could not print the table; raw results are in $RESULTS"
import json, statistics, sys

path, order = sys.argv[1], sys.argv[2].split()
rows = {}  # (workload, threads, impl) -> records
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if isinstance(r, dict) and {"impl", "workload", "value"} <= r.keys():
        rows.setdefault((r["workload"], r.get("threads"), r["impl"]), []).append(r)

# The extra figures shown per workload (medians); others get every numeric field.
EXTRAS = {
    "spawn_join_mt": ["rss_bytes", "off_spawner_pct"],
    "fanout_tree": ["rss_bytes", "off_root_pct"],
    "chan_mpmc": [],
    "sched_latency": ["p50_us", "max_us", "preempted"],
    "tcp_echo_mt": ["server_us_per_msg", "server_user_us_per_msg", "p99_us", "server_cpu_pct",
                    "client_cpu_pct", "other_cpu_pct"],
    "blocked_worker": ["p50_us", "max_us", "spins", "echo_p99_us", "echo_msg_s"],
}
CORE = {"impl", "workload", "n", "value", "unit", "threads", "mode", "conns", "seconds", "depth"}

def med(rs, k):
    v = [float(r[k]) for r in rs if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
    return statistics.median(v) if v else None

def is_rate(unit):
    return unit.endswith("/s") and unit != "s"

def is_weft(i):
    return i == "weft" or i.startswith("weft_")

def fmt(v):
    if v is None:
        return ""
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 \
        else f"{v:.3g}" if v else "0"

SHORT = {"server_us_per_msg": "srv_us/msg", "server_user_us_per_msg": "srv_user_us/msg",
         "server_cpu_pct": "srv%", "client_cpu_pct": "load%", "other_cpu_pct": "other%",
         "echo_msg_s": "echo_msg/s", "rss_bytes": "rss"}

def fmt_extra(k, v):
    if v is None:
        return ""
    if k.endswith("bytes"):
        return f"{SHORT.get(k, k)}={v / (1 << 20):.1f}MiB"
    return f"{SHORT.get(k, k)}={fmt(v)}"

workloads = [w for w in order if any(k[0] == w for k in rows)]
workloads += sorted({k[0] for k in rows} - set(workloads))
table = []
for w in workloads:
    keys = sorted({k for k in rows if k[0] == w},
                  key=lambda k: (k[1] or 0, not is_weft(k[2]), k[2]))
    for (_, t, i) in keys:
        rs = rows[(w, t, i)]
        v, unit = med(rs, "value"), rs[0].get("unit", "")
        # vs weft: the first weft mode at the same thread count (>1: weft ahead).
        base = next((med(rows[k], "value") for k in keys if k[1] == t and is_weft(k[2])), None)
        vs_weft = "-"
        if base and v and not is_weft(i):
            vs_weft = f"{(base / v) if is_rate(unit) else (v / base):.2f}x"
        # vs 1 thread: this implementation's own scaling (>1: better with t threads); for
        # tcp_echo_mt the contract's figure, server CPU per message at t over at 1 (>1: each
        # message costs more with t workers).
        one = rows.get((w, 1, i))
        vs_one = ""
        if one and t != 1:
            if w == "tcp_echo_mt":
                a, b = med(rs, "server_us_per_msg"), med(one, "server_us_per_msg")
                vs_one = f"cpu/msg {a / b:.2f}x" if a and b else ""
            else:
                b = med(one, "value")
                if b and v:
                    vs_one = f"{(v / b) if is_rate(unit) else (b / v):.2f}x"
        ks = EXTRAS.get(w)
        if ks is None:
            ks = []
            for r in rs:
                ks += [k for k, x in r.items() if k not in CORE and k not in ks
                       and isinstance(x, (int, float)) and not isinstance(x, bool)]
        extras = " ".join(e for e in (fmt_extra(k, med(rs, k)) for k in ks) if e)
        if any(isinstance(r.get("other_cpu_pct"), (int, float)) and r["other_cpu_pct"] > 10 for r in rs):
            extras += " (disturbed: other% > 10 in some run)"
        # The network workloads' n is a message count: their connection count says more.
        ns = "/".join(sorted({str(r.get("conns" if "conns" in r else "n")) for r in rs}))
        ns = f"{ns} conns" if "conns" in rs[0] else ns
        table.append([w, str(t), i, fmt(v), unit, vs_weft, vs_one, str(len(rs)), ns, extras])

print()
print("Medians of the runs per workload, thread count and implementation. 'vs weft': this "
      "implementation's median over weft's at the same thread count (weft's over it for "
      "rates), so >1 means weft is faster ('-': no weft figure). 'vs 1 thread': its own "
      "speed-up over 1 thread (>1: faster with more); for tcp_echo_mt, server CPU per "
      "message over that at 1 thread (>1: each message costs more CPU).")
if not table:
    print("(no results)")
    sys.exit(0)
hdr = ["workload", "threads", "impl", "median", "unit", "vs weft", "vs 1 thread", "runs", "n",
       "extra (medians)"]
wd = [max(len(h), *(len(r[c]) for r in table)) for c, h in enumerate(hdr)]
fmt_row = lambda cells: "| " + " | ".join(c.ljust(wd[j]) for j, c in enumerate(cells)) + " |"
print(fmt_row(hdr))
print("|" + "|".join("-" * (x + 2) for x in wd) + "|")
prev = None
for r in table:
    print(fmt_row([r[0] if r[0] != prev else ""] + r[1:]))
    prev = r[0]
PY
exit 0
