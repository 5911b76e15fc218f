#!/usr/bin/env bash
# A weft::task that co_awaits another library's awaiter is refused at compile time with
# weft.hpp's message; the same task awaiting weft's own compiles (the control: the refusal
# is the awaiter's, not a broken build line).
# Usage: check_foreign_awaitable.sh CXX INCLUDE_DIR
set -uo pipefail
cxx=${1:?usage}; inc=${2:?usage}
here=$(cd "$(dirname "$0")" && pwd)
flags=(-std=c++20 -fsyntax-only -I"$inc")
if ! "$cxx" "${flags[@]}" -DWEFT_ONLY_WEFT "$here/foreign_awaitable.cpp"; then
    echo "FAIL: a task awaiting weft::yield did not compile"; exit 1
fi
if out=$("$cxx" "${flags[@]}" "$here/foreign_awaitable.cpp" 2>&1); then
    echo "FAIL: a task awaiting std::suspend_always compiled"; exit 1
fi
if ! grep -q "only weft's awaitables" <<<"$out"; then
    echo "FAIL: refused, but not by weft.hpp's check:"; echo "$out" | head -20; exit 1
fi
echo "cpp: a foreign awaiter is refused at compile time"
