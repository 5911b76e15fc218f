#!/usr/bin/env bash
# The soak (make soak): examples/echo_server under bench/soak_load, once per backend, on
# 127.0.0.1: SECONDS seconds with CONNS connections, every byte checked, one line a minute
# with the server's RSS, fd count and errors. Fails if a byte is lost or corrupted, a
# connection drops, or the server dies.
#
# Usage: bench/soak.sh BUILD_DIR [SECONDS] [CONNS]     (defaults: 600 s, 10000 connections)
# Environment: BACKENDS (default "epoll io_uring"), SOAK_PORT (default 21700),
#   SOAK_INTERVAL (seconds between lines, default 60), SOAK_WORKERS (the server's workers,
#   default 1, the configuration of the figures in the README; 0: every CPU).
set -u
BUILD_DIR=$1
SECS=${2:-600}
CONNS=${3:-10000}
PORT=${SOAK_PORT:-21700}
INTERVAL=${SOAK_INTERVAL:-60}
SERVER=$BUILD_DIR/examples/echo_server
LOAD=$BUILD_DIR/bench/soak_load
for f in "$SERVER" "$LOAD"; do
    [ -x "$f" ] || { echo "soak: $f is not built" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CONNS + 64)) ]; then
    echo "soak: ulimit -n is $(ulimit -n): too few fds for $CONNS connections" >&2
    exit 1
fi
status=0
for be in ${BACKENDS:-epoll io_uring}; do
    echo "soak: backend $be"
    WEFT_BACKEND=$be WEFT_WORKERS=${SOAK_WORKERS:-1} "$SERVER" "$PORT" 127.0.0.1 >"$BUILD_DIR/soak-$be.server.log" 2>&1 &
    spid=$!
    for _ in $(seq 50); do
        grep -q listening "$BUILD_DIR/soak-$be.server.log" 2>/dev/null && break
        sleep 0.1
    done
    "$LOAD" --port "$PORT" --conns "$CONNS" --seconds "$SECS" --server-pid "$spid" \
        --interval "$INTERVAL" || status=1
    if ! kill -0 "$spid" 2>/dev/null; then
        echo "soak: the $be server died" >&2
        status=1
    fi
    kill -INT "$spid" 2>/dev/null
    wait "$spid" || { echo "soak: the $be server exited with $?" >&2; status=1; }
    PORT=$((PORT + 1))
done
exit $status
