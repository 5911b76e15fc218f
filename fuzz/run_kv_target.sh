#!/usr/bin/env bash
# run_kv_target.sh NAME MAXLEN CLANG OUTDIR SECONDS LIBWEFT: what run_kv_cmd_fuzz.sh and
# run_kv_glob_fuzz.sh share. Builds fuzz/NAME_fuzz.c with weft-kv's sources (apps/kv, all but
# main.c) under libFuzzer, ASan and UBSan, linked with LIBWEFT (a built libweft.a: the
# commands call a few of weft's functions, never a runtime's), and runs it for SECONDS (0: each
# input of the corpus once, a replay) on a copy of fuzz/corpus/NAME (new inputs go to the
# copy, never into the repository) with fuzz/NAME.dict and inputs of at most MAXLEN bytes.
# Exits non-zero on any crash or broken invariant.
set -euo pipefail
NAME=$1
MAXLEN=$2
CLANG=$3
OUT=$4
SECS=${5:-10}
LIBWEFT=$6
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
# weft-kv's sources are compiled two at a time (each with the sanitizers takes seconds), then
# linked with the target. The objects are shared by the kv fuzz targets (run_kv_cmd_fuzz.sh and
# run_kv_glob_fuzz.sh, which CTest runs one after the other): a folder beside OUTDIR named after
# the sources' and the flags' hash, so that the second target and later runs compile nothing,
# and an edited source or header gets a new folder.
FLAGS="-g -O1 -D_GNU_SOURCE -std=c11 -fno-sanitize-recover=all -I$SRC/include -I$SRC/apps/kv"
KEY=$( (cat "$SRC"/apps/kv/*.c "$SRC"/apps/kv/*.h "$SRC"/include/*.h; echo "$CLANG $FLAGS") |
    sha1sum | cut -c1-16)
OBJ="$(dirname "$OUT")/kv_fuzz_obj.$KEY"
if [ ! -f "$OBJ/done" ]; then
    rm -rf "$OBJ"
    mkdir -p "$OBJ"
    ls "$SRC"/apps/kv/*.c | grep -v '/main\.c$' |
        xargs -P2 -I{} sh -c '"$1" $2 -fsanitize=fuzzer-no-link,address,undefined -c "$3" \
            -o "$4/$(basename "$3" .c).o"' sh "$CLANG" "$FLAGS" {} "$OBJ"
    touch "$OBJ/done"
fi
"$CLANG" $FLAGS -fsanitize=fuzzer,address,undefined "$SRC/fuzz/${NAME}_fuzz.c" "$OBJ"/*.o \
    "$LIBWEFT" -lm -lpthread $(pkg-config --libs liburing 2>/dev/null || true) \
    -o "$OUT/${NAME}_fuzz"
rm -rf "$OUT/corpus"
mkdir -p "$OUT/corpus"
cp "$SRC"/fuzz/corpus/"$NAME"/* "$OUT/corpus/"
LIMIT=-max_total_time="$SECS"
[ "$SECS" = 0 ] && LIMIT=-runs=0
"$OUT/${NAME}_fuzz" "$LIMIT" -max_len="$MAXLEN" -print_final_stats=1 \
    -dict="$SRC/fuzz/$NAME.dict" "$OUT/corpus" 2>&1 | tail -15
