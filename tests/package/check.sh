#!/usr/bin/env bash
# Installs a built weft to a temporary prefix, then builds and runs consumer/ with
# find_package(weft) (weft::weft and weft::weft_static), and main.c through pkg-config, and
# checks that the gdb helper (tools/gdb/weft-gdb.py) is installed.
# Usage: tests/package/check.sh BUILD_DIR CMAKE
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR CMAKE}
cmake=${2:-cmake}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cmake" --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/share/weft/gdb/weft-gdb.py" || { echo "package: no gdb helper"; exit 1; }
"$cmake" -S "$here/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
"$cmake" --build "$tmp/build" >/dev/null
export LD_LIBRARY_PATH="$(dirname "$(find "$tmp/prefix" -name 'libweft.so.*' | head -1)")"
"$tmp/build/consumer"
"$tmp/build/consumer_static"
pcdir=$(dirname "$(find "$tmp/prefix" -name weft.pc | head -1)")
# weft.pc names the prefix it was configured with; point it at the temporary one.
cc "$here/consumer/main.c" -o "$tmp/pc_consumer" $(PKG_CONFIG_PATH="$pcdir" \
  pkg-config --define-variable=prefix="$tmp/prefix" --cflags --libs --static weft)
"$tmp/pc_consumer" | sed 's/^/pkg-config: /'
echo "package: find_package(weft) and pkg-config both work; the gdb helper is installed"
