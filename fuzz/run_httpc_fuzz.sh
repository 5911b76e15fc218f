#!/usr/bin/env bash
# run_httpc_fuzz.sh CLANG OUTDIR SECONDS: builds fuzz/httpc_response_fuzz.c (which includes
# lib/http/http.c, with the weft calls stubbed) with libFuzzer, ASan and UBSan, and runs it for
# SECONDS (0: each input of the corpus once, a replay) on a copy of the committed corpus (new
# inputs go to the copy, never into the repository) with fuzz/httpc.dict. Exits non-zero on
# any crash or broken invariant. A longer run: fuzz/run_httpc_fuzz.sh clang /tmp/fz 3600
set -euo pipefail
CLANG=$1
OUT=$2
SECS=${3:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
"$CLANG" -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$SRC/include" "$SRC/fuzz/httpc_response_fuzz.c" -o "$OUT/httpc_response_fuzz"
rm -rf "$OUT/corpus"
mkdir -p "$OUT/corpus"
cp "$SRC"/fuzz/corpus/httpc/* "$OUT/corpus/"
LIMIT=-max_total_time="$SECS"
[ "$SECS" = 0 ] && LIMIT=-runs=0
"$OUT/httpc_response_fuzz" "$LIMIT" -max_len=8192 -print_final_stats=1 \
    -dict="$SRC/fuzz/httpc.dict" "$OUT/corpus" 2>&1 | tail -15
