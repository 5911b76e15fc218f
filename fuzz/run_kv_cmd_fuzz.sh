#!/usr/bin/env bash
# run_kv_cmd_fuzz.sh CLANG OUTDIR SECONDS LIBWEFT: fuzz/kv_cmd_fuzz.c (weft-kv's commands on an
# in-memory db) through run_kv_target.sh, inputs up to 2 KiB. SECONDS 0 replays the corpus. A
# longer run: fuzz/run_kv_cmd_fuzz.sh clang /tmp/fz 3600 build/libweft.a
exec "$(dirname "$0")/run_kv_target.sh" kv_cmd 2048 "$@"
