#!/usr/bin/env bash
# httpc_test.sh: the HTTP client (libweft_http, through weft-http-load) against weft-httpd,
# a small Python server for the framings weft-httpd does not send, and nginx.
# Usage: httpc_test.sh WEFT_HTTPD WEFT_HTTP_LOAD
set -u
HTTPD=$1
LOAD=$2
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

mkdir -p "$TMP/www"
head -c 1500000 /dev/urandom >"$TMP/www/big.bin"
echo small >"$TMP/www/small.txt"
"$HTTPD" --port 0 --workers 2 "$TMP/www" >"$TMP/out" 2>"$TMP/err" &
PIDS+=($!)
${PYTHON3:-python3} "$HERE/framing_server.py" >"$TMP/pyport" &
PIDS+=($!)
PORT=
PYPORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out")
    PYPORT=$(head -1 "$TMP/pyport")
    [ -n "$PORT" ] && [ -n "$PYPORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] && [ -n "$PYPORT" ] || { echo "FAIL: servers did not start"; exit 1; }

# 1,000 requests over 50 pooled connections.
out=$("$LOAD" -n 1000 -c 50 "http://127.0.0.1:$PORT/small.txt")
echo "$out"
case "$out" in *"requests 1000 ok 1000 failed 0"*) ok "1000 requests, 50 connections" ;;
*) fail "load: $out" ;; esac

# A large body (Content-Length), byte for byte; a 404 fails the fetch.
"$LOAD" --get "http://127.0.0.1:$PORT/big.bin" >"$TMP/got" 2>/dev/null &&
    cmp -s "$TMP/got" "$TMP/www/big.bin" && ok "Content-Length body" || fail "Content-Length body"
"$LOAD" --get "http://127.0.0.1:$PORT/nope" >/dev/null 2>&1 && fail "404 succeeded" ||
    ok "404 reported"

# Chunked (with an extension and a trailer), and a body that ends at the close.
got=$("$LOAD" --get "http://127.0.0.1:$PYPORT/chunked" 2>/dev/null)
[ "$got" = "hello 0123456789abcdef" ] && ok "chunked body" || fail "chunked: '$got'"
got=$("$LOAD" --get "http://127.0.0.1:$PYPORT/close" 2>/dev/null)
[ "$got" = "until the close" ] && ok "body up to the close" || fail "close-delimited: '$got'"

# A pooled connection the server closed (keep-alive timeout) is retried on a new one.
"$HTTPD" --port 0 --workers 1 --keepalive-timeout 0.2 "$TMP/www" >"$TMP/out2" 2>/dev/null &
PIDS+=($!)
PORT2=
for _ in $(seq 100); do
    PORT2=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out2")
    [ -n "$PORT2" ] && break
    sleep 0.1
done
out=$("$LOAD" -n 3 -c 1 --pause 0.5 "http://127.0.0.1:$PORT2/small.txt")
case "$out" in *"requests 3 ok 3 failed 0"*) ok "stale pooled connection retried" ;;
*) fail "stale connection: $out" ;; esac

# A refused connection is an error, not a hang.
"$LOAD" --get --timeout 2 "http://127.0.0.1:1/" >/dev/null 2>&1 && fail "port 1 succeeded" ||
    ok "connection refused reported"

# Against nginx too (when installed): plain, a redirect (-L), and over TLS when the client has
# it (nginx 1.22 speaks TLS 1.2 by default: the client's TLS 1.2 path, verified against a CA
# made here).
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TLS=0
command -v openssl >/dev/null && "$LOAD" --help 2>&1 | grep -q cacert && TLS=1
if [ -x "$NGINX" ]; then
    chmod 755 "$TMP" # nginx's worker runs as nobody
    NP=$(${PYTHON3:-python3} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    NTP=$(${PYTHON3:-python3} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx;
    server {
        listen 127.0.0.1:$NP;
        root $TMP/www;
        location = /moved { return 302 /small.txt; }
    }
EOF
    if [ $TLS = 1 ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost" >/dev/null 2>&1
        cat >>"$TMP/nginx/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$NTP ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        root $TMP/www;
    }
EOF
    fi
    echo "}" >>"$TMP/nginx/nginx.conf"
    "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$NP") 2>/dev/null && break
        sleep 0.1
    done
    out=$("$LOAD" -n 1000 -c 50 "http://127.0.0.1:$NP/small.txt")
    case "$out" in *"requests 1000 ok 1000 failed 0"*) ok "nginx: 1000 requests, 50 connections" ;;
    *) fail "nginx load: $out" ;; esac
    got=$("$LOAD" --get -L "http://127.0.0.1:$NP/moved" 2>"$TMP/lerr")
    [ "$got" = small ] && grep -q ", 1 redirects" "$TMP/lerr" && ok "nginx: a redirect followed" ||
        fail "nginx redirect: '$got' $(cat "$TMP/lerr")"
    if [ $TLS = 1 ]; then
        "$LOAD" --get --cacert "$TMP/cert.pem" "https://localhost:$NTP/big.bin" >"$TMP/got" \
            2>"$TMP/lerr" && cmp -s "$TMP/got" "$TMP/www/big.bin" && ok "nginx https body" ||
            fail "nginx https: $(cat "$TMP/lerr")"
        out=$("$LOAD" -n 300 -c 10 --cacert "$TMP/cert.pem" "https://localhost:$NTP/small.txt")
        case "$out" in *"requests 300 ok 300 failed 0"*) ok "nginx: 300 https requests" ;;
        *) fail "nginx https load: $out" ;; esac
    else
        echo "skipped: https against nginx (the client has no TLS)"
    fi
else
    echo "skipped: nginx (not installed)"
fi

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "all passed"
