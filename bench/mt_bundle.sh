#!/usr/bin/env bash
# Packs what `make bench-mt` runs into one folder that a machine without the toolchains (the
# lent many-CPU machine of the `device` tool) can run as it is: weft's multi-core benchmarks
# and echo server, the Go and Tokio peers, the raw epoll shards, the load generator and
# liburing. On that machine, from the repository root:
#   bash BUNDLE/run.sh [RUNS]        (results and logs go to $OUT, or to BUNDLE/out)
# with MT_THREADS, MT_WORKLOADS and the other knobs of bench/run_mt.sh in the environment.
#
# Usage: bench/mt_bundle.sh BUILD_DIR BUNDLE_DIR
#   BUILD_DIR is a bench build (make bench-mt makes one); its peers are built first
#   (MT_BUILD_ONLY=1 bench/run_mt.sh BUILD_DIR).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR BUNDLE_DIR" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$1" && pwd)
D=$2
MT_BUILD_ONLY=1 MT_WORKLOADS="spawn_join_mt tcp_echo_mt" "$ROOT/bench/run_mt.sh" "$B" 1
rm -rf "$D"
mkdir -p "$D/bench" "$D/examples" "$D/lib"
for b in spawn_join_mt fanout_tree chan_mpmc sched_latency_mt blocked_worker; do
    [ -x "$B/bench/bench_$b" ] && cp "$B/bench/bench_$b" "$D/bench/"
done
[ -x "$B/examples/echo_server" ] && cp "$B/examples/echo_server" "$D/examples/"
# The peers keep their places under peers/ (run_mt.sh finds them there with MT_PREBUILT).
(cd "$B" && find peers -type f -perm -u+x \( -name go-peer -o -name tokio-peer -o -name go-echo \
    -o -name tcp-echo-tokio -o -name epoll_raw -o -name tcp_echo_load \) -path '*' \
    -not -path '*/deps/*' -print0 | xargs -0 -I{} cp --parents {} "$D/")
lib=$(ldconfig -p 2>/dev/null | awk '/liburing\.so\.2 .*x86-64/ {print $NF; exit}')
[ -n "$lib" ] && cp -L "$lib" "$D/lib/"
cat >"$D/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs bench/run_mt.sh on the packed binaries (see bench/mt_bundle.sh).
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
work=/tmp/weft-mt-bundle
rm -rf "$work" && mkdir -p "$work" && cp -a "$here/." "$work/"
export LD_LIBRARY_PATH=$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} MT_PREBUILT=1
{ nproc; uname -r; lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)|NUMA node\('; } >"$out/machine.txt"
bench/run_mt.sh "$work" "${1:-3}" >"$out/table.txt" 2>"$out/run.log"
cp "$work/mt-results.jsonl" "$out/" 2>/dev/null
cp "$work/peers/tcp_echo/mt-servers.log" "$out/" 2>/dev/null
cat "$out/table.txt"
RUN
chmod +x "$D/run.sh"
du -sh "$D"
