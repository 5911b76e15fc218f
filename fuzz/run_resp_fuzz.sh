#!/usr/bin/env bash
# run_resp_fuzz.sh CLANG OUTDIR SECONDS: builds fuzz/resp_parser_fuzz.c with libFuzzer, ASan
# and UBSan, and runs it for SECONDS on a copy of the committed corpus (new inputs go to the
# copy, never into the repository) with fuzz/resp.dict. Exits non-zero on any crash or broken
# invariant. A longer run: fuzz/run_resp_fuzz.sh clang /tmp/fz 3600
set -euo pipefail
CLANG=$1
OUT=$2
SECS=${3:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
"$CLANG" -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$SRC/apps/kv" "$SRC/fuzz/resp_parser_fuzz.c" "$SRC/apps/kv/resp.c" \
    -o "$OUT/resp_parser_fuzz"
rm -rf "$OUT/corpus"
mkdir -p "$OUT/corpus"
cp "$SRC"/fuzz/corpus/resp/* "$OUT/corpus/"
"$OUT/resp_parser_fuzz" -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 \
    -dict="$SRC/fuzz/resp.dict" "$OUT/corpus" 2>&1 | tail -15
