#!/usr/bin/env bash
# Builds tests/cpp/test_cpp.cpp with the C++ compiler CMake did not pick (clang++ when the
# build uses g++, g++ when it uses clang++), -std=c++20 with -Wall -Wextra -Wpedantic -Werror,
# links it against the static library and runs it on each backend given. With "--compile-only"
# it only compiles (by hand, against a sanitizer build's library, whose instrumentation belongs
# to the other compiler's runtime; CTest runs this check in plain builds only). Exit 77 (skipped) when that compiler is not installed.
# Usage: check_other_compiler.sh CXX_ID INCLUDE_DIR LIBWEFT_A "LIBS" BACKEND... | --compile-only
set -euo pipefail
id=${1:?usage}; inc=${2:?usage}; lib=${3:?usage}; libs=${4:-}; shift 4
case $id in
  GNU) cxx=clang++ ;;
  *) cxx=g++ ;;
esac
command -v $cxx >/dev/null || { echo "cpp: $cxx not installed, skipped"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Werror -g -O1 -I"$inc")
if [ "${1:-}" = --compile-only ]; then
  echo "cpp: $cxx ${flags[*]} -c test_cpp.cpp"
  $cxx "${flags[@]}" -c "$here/test_cpp.cpp" -o "$out/t.o"
  echo "cpp: weft.hpp compiles with $cxx"
  exit 0
fi
echo "cpp: $cxx ${flags[*]} test_cpp.cpp $lib $libs"
# shellcheck disable=SC2086 # LIBS is a list of flags
$cxx "${flags[@]}" "$here/test_cpp.cpp" "$lib" $libs -lpthread -o "$out/test_cpp"
for backend in "$@"; do
  echo "cpp: WEFT_BACKEND=$backend"
  WEFT_BACKEND=$backend "$out/test_cpp"
done
echo "cpp: $cxx build passes on: $*"
