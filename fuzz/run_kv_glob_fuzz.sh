#!/usr/bin/env bash
# run_kv_glob_fuzz.sh CLANG OUTDIR SECONDS LIBWEFT: fuzz/kv_glob_fuzz.c (kv_glob against Redis's
# stringmatchlen; db.c, which holds the matcher, needs the rest of weft-kv) through
# run_kv_target.sh, inputs up to 256 bytes. SECONDS 0 replays the corpus. A longer run:
# fuzz/run_kv_glob_fuzz.sh clang /tmp/fz 3600 build/libweft.a
exec "$(dirname "$0")/run_kv_target.sh" kv_glob 256 "$@"
