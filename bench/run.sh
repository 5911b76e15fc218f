#!/usr/bin/env bash
# Side-by-side benchmark runner (used by `make bench`): builds the peer benchmarks in
# bench/peers/ that this machine has toolchains for, runs weft's bench binaries and the peers
# on the single-thread workloads of the benchmark contract (bench-workloads.md), and prints a
# table of medians with each peer's ratio to weft. The multi-core workloads (spawn_join_mt,
# fanout_tree, chan_mpmc) run only the peers that have them (Boost.Fiber, work stealing on
# 1 and 2 threads, unpinned), and their lines are stored beside the rest.
#
# Usage: bench/run.sh BUILD_DIR [RUNS]      (RUNS defaults to 3)
#   weft binaries are taken from BUILD_DIR/bench/bench_<workload> (skipped if absent);
#   peers are built into BUILD_DIR/peers/; every JSON line goes to BUILD_DIR/bench-results.jsonl.
# Environment: BENCH_WORKLOADS="yield spawn_join" runs a subset; BENCH_TIMEOUT (s, default 600)
#   bounds each single run; BENCH_NO_PIN=1 disables `taskset -c 0`; LIBDILL_SRC=DIR adds the
#   libdill peer (yield, spawn_join, chan_pingpong), compiled from a libdill source tree kept
#   outside this repository (see bench/peers/libdill/README); skipped with a log line if unset.

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
RESULTS=$BUILD_DIR/bench-results.jsonl
WORKLOADS=${BENCH_WORKLOADS:-"ctx_switch yield spawn_join sleepers_1m timers_1m chan_pingpong sched_latency spawn_join_mt fanout_tree chan_mpmc http_parse"}
TIMEOUT=${BENCH_TIMEOUT:-600}
mkdir -p "$PEER_OUT"

log() { printf '[bench] %s\n' "$*" >&2; }

PIN=()
if [ -z "${BENCH_NO_PIN:-}" ] && command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null; then
    PIN=(taskset -c 0)
fi
TMO=()
if command -v timeout >/dev/null 2>&1; then TMO=(timeout "$TIMEOUT"); fi

# ---------------------------------------------------------------- building the peers
HAVE_UCONTEXT=0 HAVE_BOOST=0 HAVE_GO=0 HAVE_TOKIO=0 HAVE_LIBDILL=0 HAVE_FIBER=0

build_ucontext() {
    local cc=${CC:-cc}
    command -v "$cc" >/dev/null 2>&1 || { log "skip ucontext: no C compiler ($cc)"; return 1; }
    mkdir -p "$PEER_OUT/ucontext"
    "$cc" -O2 -o "$PEER_OUT/ucontext/ctx_switch" "$PEER_SRC/ucontext/ctx_switch.c" \
        >"$PEER_OUT/ucontext/build.log" 2>&1 ||
        { log "skip ucontext: build failed, see $PEER_OUT/ucontext/build.log"; return 1; }
}

build_boost_context() {
    local cxx=${CXX:-c++}
    command -v "$cxx" >/dev/null 2>&1 || { log "skip boost_context: no C++ compiler ($cxx)"; return 1; }
    mkdir -p "$PEER_OUT/boost_context"
    "$cxx" -O2 -std=c++17 -o "$PEER_OUT/boost_context/ctx_switch" \
        "$PEER_SRC/boost_context/ctx_switch.cpp" -lboost_context \
        >"$PEER_OUT/boost_context/build.log" 2>&1 ||
        { log "skip boost_context: build failed (libboost-context-dev missing?), see $PEER_OUT/boost_context/build.log"; return 1; }
}

build_boost_fiber() {
    local cxx=${CXX:-c++}
    command -v "$cxx" >/dev/null 2>&1 || { log "skip boost_fiber: no C++ compiler ($cxx)"; return 1; }
    mkdir -p "$PEER_OUT/boost_fiber"
    "$cxx" -O2 -std=c++17 -o "$PEER_OUT/boost_fiber/boost_fiber" \
        "$PEER_SRC/boost_fiber/main.cpp" -lboost_fiber -lboost_context -pthread \
        >"$PEER_OUT/boost_fiber/build.log" 2>&1 ||
        { log "skip boost_fiber: build failed (libboost-fiber-dev missing?), see $PEER_OUT/boost_fiber/build.log"; return 1; }
}

build_go() {
    command -v go >/dev/null 2>&1 || { log "skip go: no 'go' toolchain"; return 1; }
    mkdir -p "$PEER_OUT/go"
    (cd "$PEER_SRC/go" &&
        env GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
            GOPATH="$PEER_OUT/go/gopath" GOCACHE="$PEER_OUT/go/gocache" \
            go build -trimpath -o "$PEER_OUT/go/go-peer" .) >"$PEER_OUT/go/build.log" 2>&1 ||
        { log "skip go: build failed, see $PEER_OUT/go/build.log"; return 1; }
}

build_tokio() {
    local cargo
    cargo=$(command -v cargo || true)
    [ -z "$cargo" ] && [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && cargo=${HOME:-/root}/.cargo/bin/cargo
    [ -z "$cargo" ] && [ -x /root/.cargo/bin/cargo ] && cargo=/root/.cargo/bin/cargo
    [ -n "$cargo" ] || { log "skip tokio: no cargo"; return 1; }
    compgen -G "/usr/share/cargo/registry/tokio-1.*" >/dev/null ||
        { log "skip tokio: Debian's vendored tokio (librust-tokio-dev) not in /usr/share/cargo/registry"; return 1; }
    # Build from a copy so the generated Cargo.lock never lands in the source tree.
    local src=$PEER_OUT/tokio/src-copy
    mkdir -p "$src"
    cp -pR "$PEER_SRC/tokio/Cargo.toml" "$PEER_SRC/tokio/src" "$PEER_SRC/tokio/.cargo" "$src/"
    (cd "$src" && PATH="$(dirname "$cargo"):$PATH" CARGO_TARGET_DIR="$PEER_OUT/tokio/target" \
        "$cargo" build --release --offline) >"$PEER_OUT/tokio/build.log" 2>&1 ||
        { log "skip tokio: build failed, see $PEER_OUT/tokio/build.log"; return 1; }
}

# libdill's core (coroutines, channels, handles, stacks, the poller its scheduler needs)
# compiled straight from its sources with the defines its ./configure picks on Linux by
# default (threads on, so its context is thread-local as weft's worker is; epoll; mprotect
# guard pages) and its default -O2; the sockets, TLS and DNS parts are left out, since no
# workload here uses them.
build_libdill() {
    local cc=${CC:-cc} src=${LIBDILL_SRC:-}
    [ -n "$src" ] || { log "skip libdill: LIBDILL_SRC not set (see bench/peers/libdill/README)"; return 1; }
    [ -f "$src/libdill.h" ] && [ -f "$src/cr.c" ] ||
        { log "skip libdill: LIBDILL_SRC=$src is not a libdill source tree"; return 1; }
    mkdir -p "$PEER_OUT/libdill"
    "$cc" -O2 -g -std=gnu99 -DDILL_THREADS -DDILL_PTHREAD -DHAVE_POSIX_MEMALIGN \
        -DHAVE_MPROTECT -DHAVE_EPOLL -DHAVE_CLOCK_GETTIME -I"$src" \
        -o "$PEER_OUT/libdill/libdill-peer" "$PEER_SRC/libdill/libdill_peer.c" \
        "$src"/{cr,ctx,handle,chan,stack,now,pollset,utils,libdill,rbtree}.c -lpthread \
        >"$PEER_OUT/libdill/build.log" 2>&1 ||
        { log "skip libdill: build failed, see $PEER_OUT/libdill/build.log"; return 1; }
}

log "building peers into $PEER_OUT"
build_ucontext && HAVE_UCONTEXT=1
build_boost_context && HAVE_BOOST=1
build_boost_fiber && HAVE_FIBER=1
build_go && HAVE_GO=1
build_tokio && HAVE_TOKIO=1
build_libdill && HAVE_LIBDILL=1

# ---------------------------------------------------------------- running
run_one() { # label, then the command; appends JSON lines to $RESULTS
    local label=$1; shift
    local out rc pin=("${PIN[@]}")
    [ "${UNPINNED:-}" = 1 ] && pin=() # multi-core workloads get every CPU
    out=$("${TMO[@]}" "${pin[@]}" "$@")
    rc=$?
    if [ $rc -ne 0 ]; then log "  $label: exit status $rc (results of this run dropped)"; return; fi
    local got=0 line
    while IFS= read -r line; do
        case "$line" in
            '{'*) printf '%s\n' "$line" >>"$RESULTS"; got=$((got + 1)) ;;
            '') ;;
            *) log "  $label: $line" ;;
        esac
    done <<<"$out"
    [ $got -gt 0 ] || log "  $label: printed no JSON line"
}

: >"$RESULTS"
for w in $WORKLOADS; do
    weft_bin=$BUILD_DIR/bench/bench_$w
    have_any=0
    if [ -x "$weft_bin" ]; then have_any=1; else log "$w: no weft binary ($weft_bin), peers only"; fi
    for ((r = 1; r <= RUNS; r++)); do
        log "$w: run $r/$RUNS"
        # Interleave implementations within each run so drift hits all of them alike.
        [ -x "$weft_bin" ] && run_one "weft" "$weft_bin"
        case "$w" in
            ctx_switch)
                [ $HAVE_UCONTEXT = 1 ] && { run_one ucontext "$PEER_OUT/ucontext/ctx_switch"; have_any=1; }
                [ $HAVE_BOOST = 1 ] && { run_one boost_context "$PEER_OUT/boost_context/ctx_switch"; have_any=1; }
                ;;
            yield | spawn_join | sleepers_1m | timers_1m | chan_pingpong)
                [ $HAVE_GO = 1 ] && { run_one go_p1 env GOMAXPROCS=1 "$PEER_OUT/go/go-peer" "$w"; have_any=1; }
                [ $HAVE_TOKIO = 1 ] && { run_one tokio_ct "$PEER_OUT/tokio/target/release/tokio-peer" "$w"; have_any=1; }
                case "$w" in yield | spawn_join | chan_pingpong)
                    [ $HAVE_LIBDILL = 1 ] && { run_one libdill "$PEER_OUT/libdill/libdill-peer" "$w"; have_any=1; }
                    [ $HAVE_FIBER = 1 ] && { run_one boost_fiber "$PEER_OUT/boost_fiber/boost_fiber" "$w"; have_any=1; } ;;
                esac
                ;;
            sched_latency)
                # One worker each; the floor is a plain thread spinning to the same deadlines.
                [ $HAVE_GO = 1 ] && { run_one go_p1 env GOMAXPROCS=1 "$PEER_OUT/go/go-peer" "$w" --threads 1; have_any=1; }
                [ -x "$BUILD_DIR/bench/sched_latency_floor" ] &&
                    { run_one spin_floor "$BUILD_DIR/bench/sched_latency_floor"; have_any=1; }
                ;;
            spawn_join_mt | fanout_tree | chan_mpmc)
                [ $HAVE_FIBER = 1 ] && { UNPINNED=1 run_one boost_fiber_stealing "$PEER_OUT/boost_fiber/boost_fiber" "$w" --threads 1 --threads 2; have_any=1; }
                ;;
        esac
        [ $have_any = 1 ] || { log "$w: nothing to run"; break; }
    done
done

log "results: $RESULTS"

# ---------------------------------------------------------------- table
if ! command -v python3 >/dev/null 2>&1; then
    log "python3 not found: raw results follow"
    cat "$RESULTS"
    exit 0
fi

if ! python3 - "$RESULTS" "$WORKLOADS" <<'PY'
import json, statistics, sys

path, order = sys.argv[1], sys.argv[2].split()
rows = {}  # (workload, impl) -> list of records, in first-seen order
for line in open(path):
    line = line.strip()
    if not line:
        continue
    try:
        rec = json.loads(line)
    except ValueError:
        print(f"[bench] not JSON, ignored: {line}", file=sys.stderr)
        continue
    if not isinstance(rec, dict) or "impl" not in rec or "workload" not in rec or "value" not in rec:
        continue
    # A program that measures several shapes of one workload (bench_ctx_switch) prints one
    # line per shape: each shape is its own row, "impl/shape"; multi-core lines get one row
    # per thread count.
    name = rec["impl"] + ("/" + rec["shape"] if isinstance(rec.get("shape"), str) else "")
    if isinstance(rec.get("threads"), int):
        name = f"{name} ({rec['threads']}t)"
    rows.setdefault((rec["workload"], name), []).append(rec)

CORE = {"impl", "workload", "n", "value", "unit", "shape", "threads"}

def base_of(impls, i):  # the weft row a row is compared with: weft in the same shape if any
    shape = i.split("/", 1)[1] if "/" in i else None
    if shape and "weft/" + shape in impls:
        return "weft/" + shape
    return "weft"

def is_rate(unit):  # e.g. "msgs/s": bigger is better, so the ratio is inverted
    return unit.endswith("/s") and unit != "s"

def fmt_num(v):
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v else "0"

def fmt_extra(key, v):
    if key.endswith("bytes") and abs(v) >= 1 << 20:
        return f"{key}={v / (1 << 20):.1f}MiB"
    return f"{key}={fmt_num(v)}"

workloads = [w for w in order if any(k[0] == w for k in rows)]
workloads += sorted({k[0] for k in rows} - set(workloads))

table = []
for w in workloads:
    impls = [k[1] for k in rows if k[0] == w]
    impls.sort(key=lambda i: (not i.startswith("weft"), i != "weft", i.split("/", 1)[0], i))
    med = {}
    unit = {}
    for i in impls:
        recs = rows[(w, i)]
        med[i] = statistics.median(float(r["value"]) for r in recs)
        unit[i] = recs[0].get("unit", "")
    for i in impls:
        recs = rows[(w, i)]
        ratio = "-"
        b = base_of(impls, i)
        if b in med and unit.get(b) == unit[i] and med[b] > 0 and med[i] > 0:
            r = (med[b] / med[i]) if is_rate(unit[i]) else (med[i] / med[b])
            ratio = f"{r:.2f}x"
        extras = []
        keys = []
        for r in recs:
            for k, v in r.items():
                if k not in CORE and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                    keys.append(k)
        for k in keys:
            vals = [float(r[k]) for r in recs if isinstance(r.get(k), (int, float))]
            extras.append(fmt_extra(k, statistics.median(vals)))
        ns = sorted({r.get("n") for r in recs}, key=str)
        table.append([w, i, fmt_num(med[i]), unit[i], ratio, str(len(recs)),
                      "/".join(str(n) for n in ns), " ".join(extras)])

hdr = ["workload", "impl", "median", "unit", "vs weft", "runs", "n", "extra (medians)"]
print()
print("Medians per implementation; 'vs weft' = peer median / weft median for time units "
      "(weft / peer for rates), so >1 means weft is faster; '-' = no weft result. "
      "impl/shape rows are compared with weft in the same shape.")
if not table:
    print("(no results)")
    sys.exit(0)
width = [max(len(h), *(len(row[c]) for row in table)) for c, h in enumerate(hdr)]
line = lambda cells: "| " + " | ".join(c.ljust(width[j]) for j, c in enumerate(cells)) + " |"
print(line(hdr))
print("|" + "|".join("-" * (x + 2) for x in width) + "|")
prev = None
for row in table:
    print(line([row[0] if row[0] != prev else ""] + row[1:]))
    prev = row[0]
PY
then
    log "could not print the table (python3 failed); raw results are in $RESULTS"
fi
exit 0
