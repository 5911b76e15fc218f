#!/usr/bin/env bash
# file_randread side by side (bench-workloads.md): weft's bench_file_randread on both
# backends (impl weft_epoll, weft_io_uring) against fio as the reference (fio_io_uring: one
# job, iodepth 64; fio_psync: 64 jobs of one synchronous read each, the same 64 in flight;
# fio_psync_j1: one job, the single-thread limit of plain pread), 4 KiB random reads of a
# 1 GiB file, from the page cache (direct 0) and with O_DIRECT (direct 1), and prints medians.
# fio_io_uring submits and reaps in batches of up to 64 (weft too puts a tick's SQEs into one
# io_uring_enter); fio_io_uring_b1 is fio's default, one io_uring_enter per read.
#
# Usage: bench/run_file.sh BUILD_DIR [RUNS] [SECONDS]      (defaults: 3 runs of 10 s)
#   weft's binary is BUILD_DIR/bench/bench_file_randread; the file is FILE_DIR/randread.1024m
#   (FILE_DIR defaults to BUILD_DIR, i.e. build/bench: out of the repository), created once;
#   every JSON line goes to BUILD_DIR/file-results.jsonl.
# Environment: FILE_DIR; DIRECT ("0 1"); FILE_IMPLS ("weft_epoll weft_io_uring fio_io_uring
#   fio_io_uring_b1 fio_psync fio_psync_j1") runs a subset. Nothing is pinned: the epoll backend's reads run on
#   its blocking pool's threads, and psync's 64 jobs are 64 threads, on both CPUs.

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
FILE_DIR=${FILE_DIR:-$BUILD_DIR}
DIRECT=${DIRECT:-"0 1"}
IMPLS=${FILE_IMPLS:-"weft_epoll weft_io_uring fio_io_uring fio_io_uring_b1 fio_psync fio_psync_j1"}
RESULTS=$BUILD_DIR/file-results.jsonl
WEFT_BIN=$BUILD_DIR/bench/bench_file_randread
FILE=$FILE_DIR/randread.1024m
QD=64

log() { printf '[file] %s\n' "$*" >&2; }

[ -x "$WEFT_BIN" ] || { log "no $WEFT_BIN: build it first (make bench-file)"; exit 1; }
HAVE_FIO=1
command -v fio >/dev/null 2>&1 || { log "skip fio: not installed (apt-get install fio)"; HAVE_FIO=0; }
command -v python3 >/dev/null 2>&1 || { log "python3 is needed to read fio's JSON"; HAVE_FIO=0; }

# The weft binary creates the file (non-zero bytes, so no read hits a hole) if it is missing;
# a 1 s run does it here, before anything is measured.
"$WEFT_BIN" --dir "$FILE_DIR" --seconds 1 --qd 1 >/dev/null || { log "cannot prepare $FILE"; exit 1; }

# fio's JSON -> the contract's line. Latency is fio's lat (submission to completion), the
# same span weft's figure covers (call to return).
fio_line() { # impl direct jobs
    python3 -c '
import json, sys
impl, direct, jobs, qd, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
d = json.load(sys.stdin)
j = d["jobs"][0]
r = j["read"]
pct = r["lat_ns"].get("percentile", {})
ios = r["total_ios"]
runtime_s = r["runtime"] / 1e3
# With group_reporting, usr_cpu and sys_cpu are the average share of a CPU per job.
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100 * runtime_s * jobs
print(json.dumps({"impl": impl, "workload": "file_randread", "n": ios, "value": round(r["iops"], 1),
      "unit": "ops/s", "direct": direct, "qd": qd, "jobs": jobs, "seconds": float(secs),
      "p50_us": round(pct.get("50.000000", 0) / 1e3, 1), "p99_us": round(pct.get("99.000000", 0) / 1e3, 1),
      "cpu_us_per_op": round(cpu * 1e6 / ios, 3) if ios else 0}, separators=(",", ":")))
' "$@" "$QD" "$SECS"
}

run_fio() { # impl direct engine jobs iodepth [more fio options]
    local impl=$1 direct=$2 engine=$3 jobs=$4 depth=$5 out
    shift 5
    # --invalidate=0 keeps the page cache fio would otherwise drop for the file at start.
    out=$(timeout $((SECS + 60)) fio --name=file_randread --filename="$FILE" --rw=randread \
        --bs=4k --size=1g --runtime="$SECS" --ramp_time=1 --time_based --ioengine="$engine" \
        --iodepth="$depth" --numjobs="$jobs" --thread --group_reporting --direct="$direct" \
        --invalidate=0 --randrepeat=0 --lat_percentiles=1 --output-format=json "$@" 2>/dev/null) ||
        { log "  $impl: fio failed"; return; }
    fio_line "$impl" "$direct" "$jobs" <<<"$out" >>"$RESULTS" && log "  $(tail -n1 "$RESULTS")"
}

run_weft() { # backend direct
    local out rc
    out=$(env WEFT_BACKEND="$1" timeout $((SECS + 60)) "$WEFT_BIN" --dir "$FILE_DIR" \
        --seconds "$SECS" --direct "$2" --qd $QD)
    rc=$?
    if [ $rc = 77 ]; then log "  weft_$1: O_DIRECT not supported on $FILE_DIR, skipped"; return; fi
    [ $rc = 0 ] || { log "  weft_$1: exit status $rc, result dropped"; return; }
    grep '^{' <<<"$out" >>"$RESULTS" && log "  $(tail -n1 "$RESULTS")"
}

warm_cache() { # the page-cache runs read a cached file: fio's psync O_DIRECT runs do not evict it
    cat "$FILE" >/dev/null
}

: >"$RESULTS"
for direct in $DIRECT; do
    for ((r = 1; r <= RUNS; r++)); do
        log "direct=$direct: run $r/$RUNS"
        for impl in $IMPLS; do # interleaved within each run, so drift hits all alike
            [ "$direct" = 0 ] && warm_cache
            case "$impl" in
                weft_epoll) run_weft epoll "$direct" ;;
                weft_io_uring) run_weft io_uring "$direct" ;;
                fio_io_uring) [ $HAVE_FIO = 1 ] && run_fio "$impl" "$direct" io_uring 1 $QD \
                    --iodepth_batch_submit=$QD --iodepth_batch_complete_max=$QD ;;
                fio_io_uring_b1) [ $HAVE_FIO = 1 ] && run_fio "$impl" "$direct" io_uring 1 $QD ;;
                fio_psync) [ $HAVE_FIO = 1 ] && run_fio "$impl" "$direct" psync $QD 1 ;;
                fio_psync_j1) [ $HAVE_FIO = 1 ] && run_fio "$impl" "$direct" psync 1 1 ;;
                *) log "unknown impl '$impl' in FILE_IMPLS, ignored" ;;
            esac
        done
    done
done
log "results: $RESULTS"

command -v python3 >/dev/null 2>&1 || { cat "$RESULTS"; exit 0; }
python3 - "$RESULTS" "$IMPLS" <<'PY' || log "could not print the table; raw results are in $RESULTS"
import json, statistics, sys

path, order = sys.argv[1], sys.argv[2].split()
rows = {}
for line in open(path):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if isinstance(r, dict) and r.get("workload") == "file_randread":
        rows.setdefault((int(r["direct"]), r["impl"]), []).append(r)

def med(rs, k):
    vals = [float(r[k]) for r in rs if isinstance(r.get(k), (int, float))]
    return statistics.median(vals) if vals else float("nan")

print()
print("file_randread medians: 4 KiB random reads, 64 in flight. 'vs fio_io_uring' = this "
      "impl's ops/s / fio_io_uring's (the target: >= 0.90, and >= 50,000 ops/s from one "
      "worker). cpu us/op = CPU time of the whole process (every thread) per read, the "
      "steadier figure where other work shares the CPUs. A synchronous engine's latency is one "
      "pread's; an async one's includes the queue of 64 ahead of it.")
hdr = ["direct", "impl", "median ops/s", "vs fio_io_uring", "p50 us", "p99 us", "cpu us/op",
       "runs"]
table = []
for direct in sorted({k[0] for k in rows}):
    ref = med(rows[(direct, "fio_io_uring")], "value") if (direct, "fio_io_uring") in rows else None
    impls = [i for i in order if (direct, i) in rows]
    for i in impls:
        rs = rows[(direct, i)]
        v = med(rs, "value")
        table.append([str(direct), i, f"{v:,.0f}", f"{v / ref:.2f}" if ref else "-",
                      f"{med(rs, 'p50_us'):.1f}", f"{med(rs, 'p99_us'):.1f}",
                      f"{med(rs, 'cpu_us_per_op'):.2f}", str(len(rs))])
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
