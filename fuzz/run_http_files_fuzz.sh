#!/usr/bin/env bash
# run_http_files_fuzz.sh CLANG OUTDIR SECONDS: builds fuzz/httpd_files_fuzz.c (weft-httpd's
# path normalisation and HTTP dates against references) with libFuzzer, ASan and UBSan, and
# runs it for SECONDS (0: each input of the corpus once, a replay) on a copy of the committed
# corpus (new inputs go to the copy, never into the repository) with fuzz/http.dict. Exits
# non-zero on any crash or broken invariant. A longer run:
# fuzz/run_http_files_fuzz.sh clang /tmp/fz 3600
set -euo pipefail
CLANG=$1
OUT=$2
SECS=${3:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
"$CLANG" -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$SRC/apps/httpd" "$SRC/fuzz/httpd_files_fuzz.c" "$SRC/apps/httpd/parser.c" \
    "$SRC/apps/httpd/files.c" -o "$OUT/httpd_files_fuzz"
rm -rf "$OUT/corpus"
mkdir -p "$OUT/corpus"
cp "$SRC"/fuzz/corpus/http_files/* "$OUT/corpus/"
LIMIT=-max_total_time="$SECS"
[ "$SECS" = 0 ] && LIMIT=-runs=0
"$OUT/httpd_files_fuzz" "$LIMIT" -max_len=512 -print_final_stats=1 \
    -dict="$SRC/fuzz/http.dict" "$OUT/corpus" 2>&1 | tail -15
