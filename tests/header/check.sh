#!/usr/bin/env bash
# Compiles use_header.c against include/weft.h (and use_libs.c against weft_http.h and
# weft_tls.h) with each compiler present: gcc and clang as
# -std=c11, g++ and clang++ as -std=c++17, each with -Wall -Wextra -Wpedantic -Werror and no
# feature-test macros. gcc and g++ are required; clang and clang++ are checked when installed.
# Usage: tests/header/check.sh INCLUDE_DIR
set -euo pipefail
inc=${1:?usage: $0 INCLUDE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
warn=(-Wall -Wextra -Wpedantic -Werror)
run() { echo "header: $*"; "$@"; }
for cc in gcc clang; do
  if ! command -v $cc >/dev/null; then
    [ $cc = gcc ] && { echo "header: gcc missing" >&2; exit 1; }
    echo "header: $cc not installed, skipped"; continue
  fi
  run $cc -std=c11 "${warn[@]}" -I"$inc" -c "$here/use_header.c" -o "$out/c.o"
  run $cc -std=c11 "${warn[@]}" -I"$inc" -c "$here/use_libs.c" -o "$out/c_libs.o"
done
for cxx in g++ clang++; do
  if ! command -v $cxx >/dev/null; then
    [ $cxx = g++ ] && { echo "header: g++ missing" >&2; exit 1; }
    echo "header: $cxx not installed, skipped"; continue
  fi
  run $cxx -std=c++17 "${warn[@]}" -I"$inc" -x c++ -c "$here/use_header.c" -o "$out/cxx.o"
  run $cxx -std=c++17 "${warn[@]}" -I"$inc" -x c++ -c "$here/use_libs.c" -o "$out/cxx_libs.o"
done
echo "header: weft.h, weft_http.h and weft_tls.h compile cleanly every way"
