#!/usr/bin/env bash
# clients_test.sh: weft-httpd under the load tools and the proxy people put in front of it,
# each for a fixed number of requests (no timing is asserted): nginx as a reverse proxy with
# keep-alive connections to weft-httpd, under `ab -k` (no 502, no failure, the upstream
# connections kept); `h2load --h1 -m 16` (HTTP/1.1 pipelining, 16 deep) over a mix of small,
# empty and sendfile'd files and a chunked listing; a wrk Lua script pipelining 16 requests;
# `ab -k` straight (HTTP/1.0 keep-alive). Usage: clients_test.sh WEFT_HTTPD
# A tool that is missing is skipped (exit 77 when all are), except under CI=true, where
# scripts/deps.sh test has installed them.
set -u
BIN=$(realpath "$1")
TMP=$(mktemp -d)
PIDS=()
# SIGTERM, not SIGKILL: nginx's master stops its workers on it (killed, it would leave them
# running, holding their port).
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0 ran=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
have() { # have TOOL: present, or skipped (failed in CI)
    command -v "$1" >/dev/null && return 0
    if [ "${CI:-}" = true ]; then
        fail "$1 is not installed (scripts/deps.sh test installs it)"
    else
        echo "skip: $1 is not installed"
    fi
    return 1
}

root=$TMP/www
mkdir -p "$root/dir"
printf 'hello world\n' >"$root/small.txt"
: >"$root/empty.txt"
head -c 300000 /dev/urandom >"$root/big.bin"
for i in $(seq 50); do : >"$root/dir/file-$i"; done

"$BIN" --port 0 --workers 2 --autoindex "$root" >"$TMP/out" 2>"$TMP/err" &
PIDS+=($!)
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out")
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "FAIL: the server did not start"; cat "$TMP/err"; exit 1; }
URL=http://127.0.0.1:$PORT

# ab's summary: every request complete, none failed, none non-2xx, all kept alive.
ab_clean() { # ab_clean LOG N
    grep -q "^Complete requests: *$2\$" "$1" && grep -q '^Failed requests: *0$' "$1" &&
        ! grep -q '^Non-2xx responses' "$1" && grep -q "^Keep-Alive requests: *$2\$" "$1"
}

# nginx in front, with a pool of keep-alive connections to weft-httpd (HTTP/1.1, Connection
# header cleared, as nginx's docs configure it). Its port: a free one the kernel picks for us.
if have nginx && have ab; then
    ran=1
    NPORT=$(${PYTHON3:-python3} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$TMP/nginx"
    # Started as root, nginx's workers run as nobody, and must reach their temporary paths.
    chmod 755 "$TMP"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx; proxy_temp_path $TMP/nginx;
    fastcgi_temp_path $TMP/nginx; uwsgi_temp_path $TMP/nginx; scgi_temp_path $TMP/nginx;
    upstream weft { server 127.0.0.1:$PORT; keepalive 16; }
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            proxy_pass http://weft;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2>"$TMP/nginx/start.err" &
    PIDS+=($!)
    up=
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$NPORT/small.txt" && up=1 && break
        sleep 0.1
    done
    if [ -z "$up" ]; then
        fail "nginx did not start: $(cat "$TMP/nginx/start.err" "$TMP/nginx/error.log")"
    else
        ab -k -n 20000 -c 50 "http://127.0.0.1:$NPORT/small.txt" >"$TMP/ab" 2>&1
        ab_clean "$TMP/ab" 20000 && ok "ab -k -n 20000 -c 50 through nginx: no 502, no failure" ||
            fail "ab through nginx: $(grep -E 'requests|responses' "$TMP/ab")"
        ab -k -n 200 -c 10 "http://127.0.0.1:$NPORT/big.bin" >"$TMP/ab" 2>&1
        ab_clean "$TMP/ab" 200 && ok "ab -k, 300 KB through nginx" ||
            fail "ab big.bin through nginx: $(grep -E 'requests|responses' "$TMP/ab")"
        # nginx keeps its idle upstream connections (keepalive 16): reused, not reopened.
        n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
        [ "$n" -ge 1 ] && ok "nginx keeps $n upstream connections open" ||
            fail "no upstream connection kept by nginx"
        got=$(curl -s -r 0-1,4-5 "http://127.0.0.1:$NPORT/small.txt" | grep -c '^Content-Range')
        [ "$got" = 2 ] && ok "multipart ranges through nginx" || fail "ranges through nginx: $got"
        ! grep -E 'upstream|502' "$TMP/nginx/error.log" && ok "nginx logged no upstream error" ||
            fail "nginx error log"
    fi
fi

# h2load speaks HTTP/1.1 with --h1; -m 16 pipelines 16 requests per connection. Its 2xx count
# is not compared with the requests: h2load 1.52 counts a status each time its parser hands
# over a piece of the reason phrase, so a status line cut between two reads counts twice
# (8002 2xx for 8000 requests, once in ten runs); "succeeded" counts the responses.
if have h2load; then
    ran=1
    printf '%s\n' "$URL/small.txt" "$URL/empty.txt" "$URL/big.bin" "$URL/dir/" >"$TMP/uris"
    h2load --h1 -n 8000 -c 8 -m 16 -i "$TMP/uris" >"$TMP/h2load" 2>&1
    grep -q '^requests: 8000 total, 8000 started, 8000 done, 8000 succeeded, 0 failed, 0 errored, 0 timeout' \
        "$TMP/h2load" && grep -Eq '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$TMP/h2load" &&
        ok "h2load --h1 -m 16: 8000 pipelined requests, all 2xx" ||
        fail "h2load: $(grep -E '^(requests|status)' "$TMP/h2load")"
fi

# wrk with a script that sends 16 requests in each write, for a second: how many is not
# asserted, only that there were some, every one 2xx, and no socket error.
if have wrk; then
    ran=1
    cat >"$TMP/pipeline.lua" <<'EOF'
init = function(args)
    local r = {}
    for i = 1, 16 do r[i] = wrk.format(nil, i % 4 == 0 and "/big.bin" or "/small.txt") end
    req = table.concat(r)
end
request = function() return req end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("wrk: %d requests, status %d, read %d, write %d, connect %d, timeout %d\n",
        summary.requests, e.status, e.read, e.write, e.connect, e.timeout))
end
EOF
    wrk -t1 -c4 -d1s -s "$TMP/pipeline.lua" "$URL/" >"$TMP/wrk" 2>&1
    grep -q '^wrk: [1-9][0-9]* requests, status 0, read 0, write 0, connect 0, timeout 0$' "$TMP/wrk" &&
        ok "$(grep '^wrk:' "$TMP/wrk"), pipelined 16 deep" || fail "wrk: $(cat "$TMP/wrk")"
fi

# ab straight: HTTP/1.0 keep-alive.
if have ab; then
    ran=1
    ab -k -n 5000 -c 20 "$URL/small.txt" >"$TMP/ab" 2>&1
    ab_clean "$TMP/ab" 5000 && ok "ab -k -n 5000 -c 20 (HTTP/1.0 keep-alive)" ||
        fail "ab: $(grep -E 'requests|responses' "$TMP/ab")"
fi

if [ "$failures" -ne 0 ]; then
    echo "--- server stderr"
    cat "$TMP/err"
    echo "$failures failures"
    exit 1
fi
[ "$ran" = 1 ] || exit 77
echo "all passed"
