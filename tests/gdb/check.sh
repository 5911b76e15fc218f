#!/usr/bin/env bash
# Tests tools/gdb/weft-gdb.py with gdb in batch mode on gdb_target (every task parked in a
# known way, then a stop point). Two ways to get there:
#   check.sh GDB_TARGET WEFT_GDB_PY
#       runs the target under gdb to its stop point, checks the commands on the live process,
#       writes a core file there, then checks every command again on the core alone;
#   check.sh --abort GDB_TARGET WEFT_GDB_PY EMULATOR...
#       (cross builds) runs the target under EMULATOR (qemu-aarch64) with GDB_TARGET_ABORT set,
#       so that it aborts at the stop point and qemu dumps a core of the guest, and checks the
#       commands on that core with gdb-multiarch.
# Exits 77 (skipped) when the gdb needed is missing, or cannot run a program here (ptrace
# refused, as in some containers), or no core could be had; never fails on those.
set -uo pipefail
usage="usage: $0 [--abort] GDB_TARGET WEFT_GDB_PY [EMULATOR...]"
mode=live
if [ "${1:-}" = --abort ]; then
    mode=abort
    shift
fi
target=$(realpath "${1:?$usage}")
script=$(realpath "${2:?$usage}")
shift 2
emulator=("$@")

gdb=gdb
[ "$mode" = abort ] && gdb="gdb-multiarch"
if ! command -v "$gdb" >/dev/null; then
    echo "gdb: SKIPPED, $gdb is not installed (scripts/deps.sh test installs gdb)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -nx: no ~/.gdbinit; no debuginfod queries, no pager, no questions.
GDB=(timeout 120 "$gdb" -batch -nx -iex 'set debuginfod enabled off' -iex 'set pagination off'
     -iex 'set confirm off' -iex 'set width 0')

if [ "$mode" = live ] && { ! "${GDB[@]}" -ex 'set disable-randomization off' \
        -ex run "$(command -v true)" >"$tmp/probe.out" 2>&1 ||
        ! grep -q "exited normally" "$tmp/probe.out"; }; then
    echo "gdb: SKIPPED, gdb cannot run a program here (ptrace not permitted?):"
    sed 's/^/  /' "$tmp/probe.out"
    exit 77
fi

failures=0
# expect FILE REGEX WHAT: FILE has a line matching the extended REGEX.
expect() {
    if ! grep -Eq -- "$2" "$1"; then
        echo "FAIL: $3: no line matching /$2/ in $(basename "$1"):"
        sed 's/^/  | /' "$1"
        failures=$((failures + 1))
    fi
}
# expect_not FILE REGEX WHAT: no line of FILE matches.
expect_not() {
    if grep -Eq -- "$2" "$1"; then
        echo "FAIL: $3: a line matches /$2/ in $(basename "$1"):"
        sed 's/^/  | /' "$1"
        failures=$((failures + 1))
    fi
}

# 1. The live process: before weft_run (no runtime yet), then at the stop point; gdb writes
# the core there.
live() {
    "${GDB[@]}" -ex "source $script" -ex 'set disable-randomization off' \
        -ex 'weft tasks' -ex 'break main' -ex 'break gdb_target_ready' -ex run \
        -ex 'weft workers' -ex continue \
        -ex 'echo ==live\n' -ex 'weft workers' -ex 'weft tasks' \
        -ex "generate-core-file $tmp/core" -ex kill "$target" >"$tmp/live.out" 2>&1
    sed -n '/^==live/,$p' "$tmp/live.out" >"$tmp/live_stop.out"
    expect "$tmp/live.out" "weft: no process" "no process yet"
    expect "$tmp/live.out" "weft: no weft runtime in this process" "stopped at main: no runtime"
    expect "$tmp/live_stop.out" "^  0 +1 \(LWP [0-9]+\) +task 1 \(main\)" "live: worker 0 runs main"
    expect "$tmp/live_stop.out" "^ +[0-9]+ sleeper +parked +0 +sleep" "live: the sleeper"
    if [ ! -s "$tmp/core" ]; then
        echo "FAIL: gdb wrote no core file; its output:"
        sed 's/^/  | /' "$tmp/live.out"
        exit 1
    fi
}

# 1'. The target aborts at its stop point under the emulator, which dumps a core of the guest
# (qemu-user: qemu_<name>_<date>_<pid>.core in its working directory).
dump_core() {
    (cd "$tmp" && ulimit -c unlimited && GDB_TARGET_ABORT=1 timeout 120 "${emulator[@]}" \
        "$target" >"$tmp/abort.out" 2>&1) 2>/dev/null # (bash's "Aborted" line: expected)
    local rc=$? dumped=("$tmp"/qemu_*.core)
    if [ "$rc" -ne 134 ]; then # 128 + SIGABRT: anything else never reached the stop point
        echo "FAIL: the target exited with $rc instead of aborting at its stop point:"
        sed 's/^/  | /' "$tmp/abort.out"
        exit 1
    fi
    if [ ! -e "${dumped[0]}" ]; then
        echo "gdb: SKIPPED, ${emulator[*]} dumped no core; its output:"
        sed 's/^/  | /' "$tmp/abort.out"
        exit 77
    fi
    mv "${dumped[0]}" "$tmp/core"
}

if [ "$mode" = live ]; then live; else dump_core; fi

# 2. The core file alone. Each gdb run loads the core once and runs several commands, each
# announced by an "==NAME" line: split_out files each command's output as $tmp/NAME.out.
core() { "${GDB[@]}" -ex "source $script" "$@" "$target" "$tmp/core" 2>&1; }
split_out() {
    awk -v dir="$tmp" '/^==/ { f = dir "/" substr($0, 3) ".out"; next } f { print > f }'
}
core -ex 'echo ==workers\n' -ex 'weft workers' -ex 'echo ==tasks\n' -ex 'weft tasks' \
    -ex 'echo ==parked\n' -ex 'weft tasks --state parked' \
    -ex 'echo ==named\n' -ex 'weft tasks --name ock' \
    -ex 'echo ==running\n' -ex 'weft tasks --state running --name main' | split_out

expect "$tmp/workers.out" "^runtime 0x[0-9a-f]+: 2 workers, main task 1 \(main\)" "runtime"
expect "$tmp/workers.out" "^  0 +1 \(LWP [0-9]+\) +task 1 \(main\)" "worker 0 runs main"
expect "$tmp/workers.out" "^  1 +[0-9]+ \(LWP [0-9]+\) +\(loop\)" "worker 1 is in its loop"

id_of() { awk -v n="$1" '$2 == n { print $1; exit }' "$tmp/tasks.out"; }
holder=$(id_of holder) sleeper=$(id_of sleeper) joiner=$(id_of joiner)
receiver=$(id_of receiver) locker=$(id_of locker)
if [ -z "$holder" ] || [ -z "$sleeper" ] || [ -z "$joiner" ] || [ -z "$receiver" ] ||
   [ -z "$locker" ]; then
    echo "FAIL: weft tasks does not list every task of the target:"
    sed 's/^/  | /' "$tmp/tasks.out"
    exit 1
fi
hex="0x[0-9a-f]+" waited="[0-9.]+[mun]?s" # an address; how long a task has waited
expect "$tmp/tasks.out" "^ +1 main +running +0$" "main is running"
expect "$tmp/tasks.out" \
    "^ +$holder holder +parked +0 +chan-recv $hex \(0/0 queued\) +$waited +forever$" \
    "holder receives"
expect "$tmp/tasks.out" "^ +$sleeper sleeper +parked +0 +sleep +$waited +in (59m[0-9]+s|60m00s)$" \
    "sleeper sleeps an hour"
expect "$tmp/tasks.out" "^ +$joiner joiner +parked +0 +join task $sleeper \(sleeper\) .* forever$" \
    "joiner joins the sleeper"
expect "$tmp/tasks.out" "^ +$receiver receiver +parked +1 +chan-recv 0x" "receiver receives"
expect "$tmp/tasks.out" "^ +$locker locker +parked +1 +mutex $hex held by task $holder \(holder\)" \
    "locker waits for the holder's mutex"
# gdb_target's ODD_NAME, escaped as the text dumps write it (src/util/text.h), as a regex.
odd='tab\\x09here\\x0aq\\"b\\\\'
expect "$tmp/tasks.out" "^ +[0-9]+ $odd +parked +1 +sleep +$waited +in " \
    "a name with a tab, a newline, a quote and a backslash is listed escaped"
oddly=$(grep -E "^ +[0-9]+ $odd " "$tmp/tasks.out" | awk '{ print $1; exit }')
expect "$tmp/tasks.out" "^  \(7 tasks\)" "seven tasks"
expect "$tmp/parked.out" "^  \(6 tasks\)" "six parked"
expect_not "$tmp/parked.out" " main +running" "--state parked leaves main out"
expect "$tmp/named.out" "^ +$locker locker " "--name ock finds the locker"
expect "$tmp/named.out" "^  \(1 task\)" "--name ock finds only the locker"
expect "$tmp/running.out" "^  \(1 task\)" "--state running --name main"

bt_cmds=()
for who in holder sleeper joiner receiver locker; do
    bt_cmds+=(-ex "echo ==bt_$who\\n" -ex "weft bt ${!who}")
done
core -ex 'echo ==wait\n' -ex "weft wait $sleeper" -ex "weft wait ${oddly:-0}" \
    -ex "weft wait $locker" -ex 'weft wait 1' \
    "${bt_cmds[@]}" -ex 'echo ==bt_other\n' -ex 'weft bt 1' -ex 'weft bt 99999' \
    -ex 'echo ==select\n' -ex "weft select $locker" -ex bt -ex 'frame function locker_body' \
    -ex 'info args' -ex 'echo ==unselect\n' -ex 'weft select' -ex bt -ex 'weft select 1' |
    split_out
expect "$tmp/wait.out" "^task $sleeper \(sleeper\): parked on worker 0" "wait: sleeper"
expect "$tmp/wait.out" "^  kind +sleep \([0-9]+\)" "wait: sleep kind"
expect "$tmp/wait.out" "^task ${oddly:-0} \($odd\): parked on worker 1" "wait: a name escaped"
expect "$tmp/wait.out" "^  deadline +[0-9]+ ns, in " "wait: sleep deadline"
expect "$tmp/wait.out" "^  object +0x[0-9a-f]+ held by task $holder \(holder\)" "wait: mutex owner"
expect "$tmp/wait.out" "^task 1 \(main\): running on worker 0" "wait: main"
expect "$tmp/wait.out" "^  not parked: no wait record" "wait: main has none"

frame="^#[0-9]+ +0x[0-9a-f]{16} in"
for who in holder sleeper joiner receiver locker; do
    bt="$tmp/bt_$who.out"
    expect "$bt" "$frame ${who}_body \(\) at .*gdb_target\.c:[0-9]+$" "bt $who: its body"
    expect "$bt" "$frame weft__ctx_task_trampoline \(\) at .*switch\.S:[0-9]+$" "bt $who: the entry"
    expect "$tmp/bt_$who.out" "^#0 +0x[0-9a-f]+ in " "bt $who: frame 0"
    expect "$tmp/bt_$who.out" "^  stack: [0-9.]+ KiB in use of [0-9.]+ KiB$" "bt $who: stack use"
    expect_not "$tmp/bt_$who.out" "leaves the stack|Python Exception|Error" "bt $who: a clean walk"
done
# in_file FILE FUNC SOURCE WHAT: every frame of FUNC in FILE names SOURCE as its file (under
# LTO, gdb's symbol of a function names a wrong file, a header or another module: the helper
# once printed "sleeper_body () at src/io/../worker.h").
in_file() {
    local wrong
    wrong=$(grep -E -- "in $2 \(\) at " "$1" | grep -Ev -- " at [^ ]*$3(:[0-9]+)?( \[inlined\])?$")
    if [ -n "$wrong" ]; then
        echo "FAIL: $4: a frame of $2 not in $3 in $(basename "$1"):"
        sed 's/^/  | /' <<<"$wrong"
        failures=$((failures + 1))
    fi
}
for who in holder sleeper joiner receiver locker; do
    in_file "$tmp/bt_$who.out" "${who}_body" gdb_target.c "bt $who: the body's file"
    for fn in weft_sleep weft_sleep_until weft_join; do
        in_file "$tmp/bt_$who.out" "$fn" task_api.c "bt $who: $fn's file"
    done
    in_file "$tmp/bt_$who.out" weft_mutex_lock sync.c "bt $who: weft_mutex_lock's file"
    in_file "$tmp/bt_$who.out" switch_to scheduler.c "bt $who: switch_to's file"
done
expect "$tmp/bt_sleeper.out" "$frame weft_sleep" "bt sleeper: weft_sleep"
expect "$tmp/bt_joiner.out" "$frame weft_join" "bt joiner: weft_join"
expect "$tmp/bt_other.out" "running on thread 1: use \`thread 1\` \+ \`bt\`" \
    "bt of the running task"
expect "$tmp/bt_other.out" "weft: no live task with id 99999" "bt of no task"

# weft select: gdb's own unwinder through the task's saved registers, after frame #0.
expect "$tmp/select.out" "^weft: frames #1 on are task $locker \(locker\)'s" "select: announced"
expect "$tmp/select.out" \
    "^#[1-9][0-9]* +$hex in locker_body \(arg=0x0\) at .*gdb_target\.c:[0-9]+$" \
    "select: gdb's bt reaches the body"
expect "$tmp/select.out" "^#[1-9][0-9]* .*mutex_lock \(m=0x[0-9a-f]+ <lock>" "select: arguments"
expect "$tmp/select.out" "^arg = 0x0$" "select: frame N and info args"
expect "$tmp/unselect.out" "in main_body \(arg=0x0\)" "unselect: the thread's own frames"
expect_not "$tmp/unselect.out" "locker_body" "unselect: no task frames left"
expect "$tmp/unselect.out" "weft: task 1 \(main\) is running on thread 1" "select of a running task"

for f in "$tmp"/*.out; do
    expect_not "$f" "Python Exception|Traceback" "$(basename "$f"): no Python error"
done
if [ "$failures" -ne 0 ]; then
    echo "gdb: $failures checks failed"
    exit 1
fi
if [ "$mode" = live ]; then
    echo "gdb: weft workers, tasks, wait, bt and select checked on a live process and a core file"
else
    echo "gdb: weft workers, tasks, wait, bt and select checked on a core dumped by ${emulator[*]}"
fi
