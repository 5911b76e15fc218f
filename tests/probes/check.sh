#!/usr/bin/env bash
# The USDT probes (src/probes.h) are in the library's notes, each by its name under the
# provider "weft": readelf -n lists them as perf and bpftrace will find them.
set -euo pipefail
lib=${1:?usage: check.sh LIBRARY}
# "Provider: weft" then "Name: X" on the next line, for each probe site.
names=$(readelf -n "$lib" | awk '/Provider: weft/ { getline; sub(/^ *Name: /, ""); print }' |
    sort -u)
status=0
for p in spawn resume park wake exit steal io_submit stall deadlock; do
    if ! grep -qx "$p" <<<"$names"; then
        echo "probes: weft:$p is missing from $lib" >&2
        status=1
    fi
done
[ $status = 0 ] && echo "probes: all 9 in $(basename "$lib")"
exit $status
