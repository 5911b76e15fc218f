#!/usr/bin/env bash
# Installs a built weft to a temporary prefix, then builds and runs consumer/ with
# find_package(weft) (weft::weft and weft::weft_static; the http component's weft::weft_http
# and weft::weft_http_static, with tls where built), and main.c and http.c through pkg-config
# (weft, weft-http), and checks that the gdb helper (tools/gdb/weft-gdb.py) is installed.
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
"$tmp/build/http_consumer"
"$tmp/build/http_consumer_static"
# libweft_tls.so and libweft_http.so export, by their version scripts, nothing but their own
# prefix (libweft_tls.so is absent from a build without OpenSSL).
for lib in weft_tls weft_http; do
  so=$(find "$tmp/prefix" -name "lib$lib.so.*" | head -1)
  [ -n "$so" ] || { [ $lib = weft_tls ] && continue; echo "package: no lib$lib.so"; exit 1; }
  bad=$(nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' |
        grep -v "^${lib}_" || true)
  [ -z "$bad" ] || { echo "package: lib$lib.so exports $bad"; exit 1; }
done
pcdir=$(dirname "$(find "$tmp/prefix" -name weft.pc | head -1)")
# weft.pc names the prefix it was configured with; point it at the temporary one.
cc "$here/consumer/main.c" -o "$tmp/pc_consumer" $(PKG_CONFIG_PATH="$pcdir" \
  pkg-config --define-variable=prefix="$tmp/prefix" --cflags --libs --static weft)
"$tmp/pc_consumer" | sed 's/^/pkg-config: /'
tlsdef=
PKG_CONFIG_PATH="$pcdir" pkg-config --exists weft-tls && tlsdef=-DHAVE_WEFT_TLS
cc $tlsdef "$here/consumer/http.c" -o "$tmp/pc_http_consumer" $(PKG_CONFIG_PATH="$pcdir" \
  pkg-config --define-variable=prefix="$tmp/prefix" --cflags --libs --static weft-http)
"$tmp/pc_http_consumer" | sed 's/^/pkg-config: /'
echo "package: find_package(weft) and pkg-config both work (weft, weft-http); the gdb helper is installed"
