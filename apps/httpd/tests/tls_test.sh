#!/usr/bin/env bash
# tls_test.sh: HTTPS end to end with real peers. A throwaway CA and certificates are made at
# run time with `openssl req`; weft-httpd serves them on an ephemeral TLS port, driven by curl
# (--cacert), `openssl s_client` and the weft client (weft-http-load); the weft client also
# fetches from `openssl s_server -WWW`, and must refuse servers whose certificate does not
# verify. Usage: tls_test.sh WEFT_HTTPD WEFT_HTTP_LOAD. No timing is asserted.
set -u
BIN=$(realpath "$1")
LOAD=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
cd "$TMP" || exit 1

# A CA, a server certificate it signs (localhost and 127.0.0.1), a self-signed one nobody
# trusts, and one the CA signs for another name.
quiet() { "$@" >/dev/null 2>&1 || { echo "FAIL: $*"; exit 1; }; }
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj "/CN=weft test CA"
leaf() { # leaf NAME SAN
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -out "$1.csr" -subj "/CN=$1"
    printf 'subjectAltName=%s\n' "$2" >"$1.ext"
    quiet openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem"
}
leaf server "DNS:localhost,IP:127.0.0.1"
leaf other "DNS:other.example"
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout self.key -out self.pem -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost"

root=$TMP/www
mkdir -p "$root/dir"
for i in $(seq 500); do : >"$root/dir/name-$i"; done
head -c 300000 /dev/urandom >"$root/big.bin"
head -c 8000000 /dev/urandom >"$root/huge.bin"
printf 'hello tls\n' >"$root/small.txt"

"$BIN" --port 0 --tls-port 0 --tls-cert server.pem --tls-key server.key --workers 2 \
    --header-timeout 1 --autoindex "$root" >out 2>err &
PID=$!
PIDS+=($PID)
TPORT=
for _ in $(seq 100); do
    TPORT=$(sed -n 's|.*https://127.0.0.1:\([0-9]*\)/.*|\1|p' out)
    [ -n "$TPORT" ] && break
    sleep 0.1
done
[ -n "$TPORT" ] || { echo "FAIL: the server did not start"; cat err; exit 1; }
URL=https://localhost:$TPORT

# curl, verifying against the CA: bytes of small, 300 KB and 8 MB files, a range, HEAD.
for f in small.txt big.bin huge.bin; do
    curl -sS --cacert ca.pem -o got "$URL/$f" && cmp -s got "$root/$f" &&
        ok "curl https $f byte for byte" || fail "curl https $f"
done
got=$(curl -sS --cacert ca.pem -r 100-199 "$URL/big.bin" | od -An -tx1 | tr -d ' \n')
want=$(tail -c +101 "$root/big.bin" | head -c 100 | od -An -tx1 | tr -d ' \n')
[ "$got" = "$want" ] && ok "range over TLS" || fail "range over TLS"
# Several ranges (multipart/byteranges, large parts read and encrypted a buffer at a time),
# the cases answered with the whole file, If-Range and 416, over one TLS connection.
${PYTHON3:-python3} "$HERE/ranges.py" "$URL/big.bin" "$root/big.bin" ca.pem >ranges.log
[ $? = 0 ] && ok "ranges over TLS ($(grep -c '^ok' ranges.log) checks)" ||
    fail "ranges over TLS: $(grep FAIL ranges.log)"
curl -sS --cacert ca.pem -I "$URL/big.bin" | grep -qi '^content-length: 300000' &&
    ok "HEAD over TLS" || fail "HEAD over TLS"
# A chunked listing over TLS, decoded by curl (500 entries).
n=$(curl -sS --cacert ca.pem "$URL/dir/" | grep -c 'href="name-')
[ "$n" = 500 ] && ok "chunked listing over TLS" || fail "listing over TLS: $n entries"
# Keep-alive over TLS: the second request reuses the connection.
curl -sS --cacert ca.pem -v -o /dev/null -o /dev/null "$URL/small.txt" "$URL/small.txt" \
    2>curl.log
grep -q 'Re-using existing connection' curl.log && ok "keep-alive over TLS" ||
    fail "no connection reuse over TLS"
# TLS 1.2 as well as 1.3, and by IP address (its SAN entry).
curl -sS --cacert ca.pem --tlsv1.2 --tls-max 1.2 -o got "$URL/small.txt" &&
    cmp -s got "$root/small.txt" && ok "TLS 1.2" || fail "TLS 1.2"
curl -sS --cacert ca.pem -o got "https://127.0.0.1:$TPORT/small.txt" &&
    cmp -s got "$root/small.txt" && ok "by IP address" || fail "by IP address"
# curl refuses a server it cannot verify (the CA is not in the system store).
curl -s -o /dev/null "$URL/small.txt"
[ $? -eq 60 ] && ok "curl without the CA refuses the certificate" ||
    fail "curl accepted an unverified server"

# openssl s_client: verification, SNI, and an HTTP request over it.
printf 'GET /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    openssl s_client -connect "127.0.0.1:$TPORT" -servername localhost -CAfile ca.pem \
        -verify_return_error -quiet >sclient.out 2>sclient.err
grep -q '^HTTP/1.1 200' sclient.out && grep -q 'hello tls' sclient.out &&
    ok "openssl s_client GET" || { fail "s_client"; cat sclient.err; }

# The weft client against weft-httpd: one fetch (8 MB), a load over 20 connections, and
# new connections for every request (--close: a handshake each).
"$LOAD" --get --cacert ca.pem "$URL/huge.bin" >got 2>/dev/null && cmp -s got "$root/huge.bin" &&
    ok "weft client https byte for byte" || fail "weft client https huge.bin"
out=$("$LOAD" -n 500 -c 20 --cacert ca.pem "$URL/small.txt" 2>&1)
case "$out" in *"requests 500 ok 500 failed 0"*) ok "500 requests over 20 TLS connections" ;;
*) fail "TLS load: $out" ;; esac
out=$("$LOAD" -n 100 -c 4 --close --cacert ca.pem "$URL/small.txt" 2>&1)
case "$out" in *"requests 100 ok 100 failed 0"*) ok "100 handshakes (Connection: close)" ;;
*) fail "TLS --close: $out" ;; esac
# ... most of them resuming the session of an earlier connection (TLS 1.3 tickets; the
# first connections of the 4 tasks start together, with nothing to resume yet).
resumed=$(sed -n 's/^tls resumed \([0-9]*\)$/\1/p' <<<"$out")
[ "${resumed:-0}" -ge 50 ] && ok "$resumed of 100 connections resumed a session" ||
    fail "resumption: ${resumed:-none} of 100"

# Servers the client must refuse: untrusted (self-signed), and trusted but for another name.
free_port() { ${PYTHON3:-python3} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sserver() { # sserver CERT KEY [ARGS...]: openssl s_server -WWW on a free port, serving
    # $root; sets SP to the port. Not called in $(...): its PIDS+= would be the subshell's,
    # and cleanup never killed the servers (each run left four behind)
    local p c=$1 k=$2
    shift 2
    p=$(free_port)
    (cd "$root" && exec openssl s_server -accept "$p" -cert "$TMP/$c" -key "$TMP/$k" -WWW \
        -quiet "$@") >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        sleep 0.1
    done
    SP=$p
}
sserver server.pem server.key
"$LOAD" --get --cacert ca.pem "https://localhost:$SP/big.bin" >got 2>load.err &&
    cmp -s got "$root/big.bin" && ok "weft client from openssl s_server -WWW" ||
    { fail "weft client from s_server"; cat load.err; }
# SNI: this s_server answers with the certificate for other.example unless the client asks
# for localhost by SNI; the fetch verifies only if the client sent it.
sserver other.pem other.key -servername localhost -cert2 "$TMP/server.pem" \
    -key2 "$TMP/server.key"
"$LOAD" --get --cacert ca.pem "https://localhost:$SP/small.txt" >got 2>load.err &&
    cmp -s got "$root/small.txt" && ok "SNI sent (s_server picked the localhost certificate)" ||
    { fail "SNI: $(cat load.err)"; }
sserver self.pem self.key
"$LOAD" --get --cacert ca.pem "https://localhost:$SP/small.txt" >/dev/null 2>load.err &&
    fail "untrusted certificate accepted" ||
    { grep -q 'certificate verify failed' load.err && ok "untrusted certificate refused" ||
        { fail "untrusted: $(cat load.err)"; }; }
"$LOAD" --get -k "https://localhost:$SP/small.txt" >got 2>/dev/null &&
    cmp -s got "$root/small.txt" && ok "-k skips the check" || fail "-k"
sserver other.pem other.key
"$LOAD" --get --cacert ca.pem "https://localhost:$SP/small.txt" >/dev/null 2>load.err &&
    fail "certificate for another name accepted" ||
    { grep -q 'hostname mismatch' load.err && ok "wrong name refused" ||
        fail "wrong name: $(cat load.err)"; }

# A silent client on the TLS port is closed at the header timeout (1 s), and plain HTTP sent
# to the TLS port fails the handshake; the server keeps serving. (The silent client waits
# beside the partial head below: the two cost one timeout.)
${PYTHON3:-python3} - "$TPORT" >silent.out <<'EOF' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
print("closed" if s.recv(100) == b"" else "data")
EOF
SILENT=$!
# A partial head after the handshake gets its 408 over TLS and a close_notify, as on the
# plain port (the timed-out read used to end the stream: the connection closed silently).
got=$(${PYTHON3:-python3} - "$TPORT" "$TMP/ca.pem" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="localhost", suppress_ragged_eofs=False)
s.settimeout(20)
s.sendall(b"GET /small.txt HTTP/1.1\r\nHo")
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    end = "close_notify"
except ssl.SSLError as e:
    end = "no close_notify"
print(data.split(b"\r\n", 1)[0].decode(), "|", end)
EOF
)
[ "$got" = "HTTP/1.1 408 Request Time-out | close_notify" ] && ok "408 over TLS" ||
    fail "partial head over TLS: $got"
wait "$SILENT"
got=$(cat silent.out)
[ "$got" = closed ] && ok "silent TLS client closed at the header timeout" ||
    fail "silent TLS client: $got"
curl -s -o /dev/null "http://127.0.0.1:$TPORT/small.txt" && fail "plain HTTP on the TLS port" ||
    ok "plain HTTP on the TLS port refused"
curl -sS --cacert ca.pem -o got "$URL/small.txt" && cmp -s got "$root/small.txt" &&
    ok "still serving" || fail "not serving after bad clients"

# SIGTERM with a TLS connection in the middle of the 8 MB body (a second at 8 MB/s; the
# signal as soon as its first bytes are in): it completes, exit code 0.
rm -f slow.bin
curl -sS --cacert ca.pem --limit-rate 8M -o slow.bin "$URL/huge.bin" &
CURL=$!
for _ in $(seq 500); do
    [ -s slow.bin ] && break
    sleep 0.01
done
kill -TERM "$PID"
wait "$CURL" && cmp -s slow.bin "$root/huge.bin" && ok "response in flight completes at SIGTERM" ||
    fail "in-flight TLS response cut"
wait "$PID"
rc=$?
[ "$rc" = 0 ] && ok "exit 0 after SIGTERM" || { fail "exit code $rc"; cat err; }

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "all passed"
