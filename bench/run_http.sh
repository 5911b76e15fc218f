#!/usr/bin/env bash
# http_plaintext and http_static (shared/bench-workloads.md), and the same over TLS: weft-httpd
# against nginx, h2o (when installed) and Go's net/http (bench/peers/go_http, when Go is
# installed), each on one worker (GOMAXPROCS=1) pinned to CPU 0, wrk pinned to CPU 1 (-t1
# -c100). Files:
# "Hello, World!" as the index (plaintext, also pipelined 16 deep with a wrk Lua script), 4 KiB
# and 1 MiB. TLS: keep-alive GETs of the 13 B file, and a new connection per request
# (Connection: close: a full handshake + one GET each). One JSON line per figure (median
# requests/s of RUNS runs, p99 latency of the median run, server CPU microseconds per request
# over all runs), then a Markdown table with the ratio weft/nginx.
#   bench/run_http.sh [BUILD_DIR] [RUNS] [SECONDS]     (defaults: build/rel, 3, 5)
# Needs wrk and nginx (scripts/deps.sh bench), openssl for the throwaway certificate; h2o and
# Go for the other peers (each skipped without it).
set -eu
build=${1:-build/rel}
runs=${2:-3}
secs=${3:-5}
httpd=$(realpath "$build/apps/httpd/weft-httpd")
[ -x "$httpd" ] || { echo "run_http: $httpd missing (make build)"; exit 1; }
command -v wrk >/dev/null || { echo "run_http: wrk missing (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "run_http: nginx missing"; exit 1; }
port=18080
tport=18443
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT

mkdir -p "$tmp/www" "$tmp/nginx"
chmod 755 "$tmp" # nginx's worker runs as nobody
printf 'Hello, World!' >"$tmp/www/index.html"
cp "$tmp/www/index.html" "$tmp/www/13b.txt"
head -c 4096 /dev/urandom >"$tmp/www/4k.bin"
head -c 1048576 /dev/urandom >"$tmp/www/1m.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
cat >"$tmp/pipeline.lua" <<'EOF'
init = function(args)
    local r = {}
    for i = 1, 16 do r[i] = wrk.format(nil, "/") end
    req = table.concat(r)
end
request = function() return req end
EOF
# nginx as close to weft-httpd's defaults as it goes: one worker, sendfile, no access log, no
# limit on requests per connection (weft-httpd has none), TLS from the same certificate.
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 20000; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path $tmp/nginx;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tport ssl;
        ssl_protocols TLSv1.2 TLSv1.3; # 1.22 defaults to TLS <= 1.2, weft-httpd offers both
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        root $tmp/www;
    }
}
EOF

impls="nginx weft"
if command -v h2o >/dev/null; then
    impls="$impls h2o"
    cat >"$tmp/h2o.conf" <<EOF
listen:
  host: 127.0.0.1
  port: $port
listen:
  host: 127.0.0.1
  port: $tport
  ssl:
    certificate-file: $tmp/cert.pem
    key-file: $tmp/key.pem
num-threads: 1
hosts:
  default:
    paths:
      /:
        file.dir: $tmp/www
EOF
fi
if command -v go >/dev/null &&
    (cd "$(dirname "$0")/peers/go_http" && go build -trimpath -o "$tmp/go_http" .) \
        >"$tmp/go.build.log" 2>&1; then
    impls="$impls go_nethttp"
else
    echo "run_http: no Go peer (go missing or the build failed)" >&2
fi

start() { # name
    case $1 in
    weft) taskset -c 0 "$httpd" --workers 1 --port $port --tls-port $tport --max-conns 20000 \
              --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --quiet "$tmp/www" \
              >/dev/null 2>&1 & ;;
    nginx) taskset -c 0 "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >/dev/null 2>&1 & ;;
    h2o) taskset -c 0 h2o -c "$tmp/h2o.conf" >/dev/null 2>&1 & ;;
    go_nethttp) GOMAXPROCS=1 taskset -c 0 "$tmp/go_http" -dir "$tmp/www" -port $port \
                    -tls-port $tport -cert "$tmp/cert.pem" -key "$tmp/key.pem" >/dev/null 2>&1 & ;;
    esac
    srv=$!
    for _ in $(seq 100); do
        kill -0 $srv 2>/dev/null || break # it failed (the port taken?)
        curl -s -o /dev/null "http://127.0.0.1:$port/" && return
        sleep 0.05
    done
    echo "run_http: $1 did not start"
    exit 1
}
stop() {
    kill $srv
    wait $srv 2>/dev/null || true
    srv=
}
# Server CPU (user + system, all its processes: nginx's master and worker) in clock ticks.
cpu_ticks() {
    local t=0
    for p in $srv $(pgrep -P $srv || true); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}
hz=$(getconf CLK_TCK)

# run IMPL WORKLOAD NAME URL [wrk args...]: RUNS runs; one JSON line
run() {
    local impl=$1 workload=$2 name=$3 url=$4
    shift 4
    local t0 total=0
    t0=$(cpu_ticks)
    for i in $(seq "$runs"); do
        taskset -c 1 wrk -t1 -c100 -d"${secs}s" --latency "$@" "$url" >"$tmp/wrk.$i" 2>&1 || true
        total=$((total + $(awk '/requests in/ {print $1}' "$tmp/wrk.$i")))
    done
    local d=$(($(cpu_ticks) - t0))
    # the median run by requests/s
    local med
    med=$(for i in $(seq "$runs"); do
        echo "$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.$i") $i"
    done | sort -n | awk '{a[NR]=$2} END {print a[int((NR+1)/2)]}')
    local rps p99 mbs errs
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$tmp/wrk.$med")
    p99=$(awk '$1 == "99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
               m = u == "us" ? 1 : u == "ms" ? 1000 : u == "s" ? 1e6 : 1; printf "%.0f", v * m}' \
          "$tmp/wrk.$med")
    mbs=$(awk '/^Transfer\/sec/ {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
               m = u == "KB" ? 1/1024 : u == "GB" ? 1024 : u == "B" ? 1/1048576 : 1;
               printf "%.1f", v * m}' "$tmp/wrk.$med")
    errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$tmp/wrk.$med")
    local cpu
    cpu=$(awk -v d="$d" -v hz="$hz" -v n="$total" 'BEGIN {printf "%.2f", n ? d / hz * 1e6 / n : 0}')
    printf '{"impl":"%s","workload":"%s","file":"%s","n":%s,"value":%s,"unit":"req/s","p99_us":%s,"mb_s":%s,"cpu_us_per_req":%s,"threads":1,"conns":100%s}\n' \
        "$impl" "$workload" "$name" "$total" "$rps" "$p99" "$mbs" "$cpu" \
        "$( [ -n "$errs" ] && printf ',"errors":"%s"' "$errs")" | tee -a "$tmp/results"
}

for impl in $impls; do
    start $impl
    run $impl http_plaintext hello "http://127.0.0.1:$port/"
    run $impl http_plaintext hello_pipelined16 "http://127.0.0.1:$port/" -s "$tmp/pipeline.lua"
    run $impl http_static 13b "http://127.0.0.1:$port/13b.txt"
    run $impl http_static 4k "http://127.0.0.1:$port/4k.bin"
    run $impl http_static 1m "http://127.0.0.1:$port/1m.bin"
    run $impl https_static 13b "https://127.0.0.1:$tport/13b.txt"
    run $impl https_handshake 13b "https://127.0.0.1:$tport/13b.txt" -H "Connection: close"
    stop
done

echo
echo "| workload | file | nginx req/s | weft req/s | weft/nginx | nginx CPU us/req | weft CPU us/req | h2o CPU us/req | go CPU us/req |"
echo "|---|---|---|---|---|---|---|---|---|"
python3 - "$tmp/results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["impl"], r["workload"], r["file"]): r for r in rows}
for r in rows:
    if r["impl"] != "nginx":
        continue
    w = by.get(("weft", r["workload"], r["file"]))
    if not w:
        continue
    ratio = w["value"] / r["value"] if r["value"] else 0
    h = by.get(("h2o", r["workload"], r["file"]))
    g = by.get(("go_nethttp", r["workload"], r["file"]))
    print(f'| {r["workload"]} | {r["file"]} | {r["value"]} | {w["value"]} | {ratio:.2f} | '
          f'{r["cpu_us_per_req"]} | {w["cpu_us_per_req"]} | {h["cpu_us_per_req"] if h else "-"} | '
          f'{g["cpu_us_per_req"] if g else "-"} |')
EOF
