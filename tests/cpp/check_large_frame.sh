#!/usr/bin/env bash
# A task with a frame above the frame cache's classes builds warning-free at every
# optimisation level (-Wall -Wextra -Werror): g++ 12 at -O1 called the frame's allocation and
# free mismatched (-Wmismatched-new-delete), which broke a user's -Werror build.
# Usage: check_large_frame.sh CXX INCLUDE_DIR
set -uo pipefail
cxx=${1:?usage}; inc=${2:?usage}
here=$(cd "$(dirname "$0")" && pwd)
for opt in -O0 -O1 -O2 -O3 -Os; do
    if ! out=$("$cxx" -std=c++20 "$opt" -Wall -Wextra -Werror -I"$inc" -c \
               "$here/large_frame.cpp" -o /dev/null 2>&1); then
        echo "FAIL: large_frame.cpp at $opt:"; echo "$out" | head -20; exit 1
    fi
done
echo "cpp: a task with a large frame builds warning-free at -O0 to -O3"
