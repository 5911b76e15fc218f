#!/usr/bin/env bash
# Runs a Criterion test program under valgrind's memcheck, the tests themselves included:
# Criterion runs each test in a process of its own, which valgrind follows only with
# --trace-children=yes, and whose errors do not reach the runner's exit status. So each
# process writes its own log, quiet except for errors (definite leaks among them), and any
# log with a line in it fails the run.
# Usage: valgrind_run.sh VALGRIND PROGRAM [ARGS...]
set -uo pipefail
vg=${1:?usage}; shift
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
"$vg" --quiet --trace-children=yes --error-exitcode=1 --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --log-file="$logs/vg.%p" "$@"
rc=$?
bad=0
for f in "$logs"/vg.*; do
    [ -s "$f" ] || continue
    echo "valgrind: errors in process ${f##*.}:"
    cat "$f"
    bad=1
done
[ "$rc" -eq 0 ] && [ "$bad" -eq 0 ] && { echo "valgrind: no errors"; exit 0; }
exit 1
