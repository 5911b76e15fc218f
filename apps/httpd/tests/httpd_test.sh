#!/usr/bin/env bash
# httpd_test.sh: weft-httpd end to end, driven by curl (and rawhttp.py for what curl cannot
# send), on an ephemeral port serving a temporary folder. Usage: httpd_test.sh WEFT_HTTPD
# Checks bytes (cmp), statuses and headers; no timing is asserted (the 408 cases wait for a
# 0.25 s timeout of a server of their own, the file cache checks for a 0.3 s cache time).
set -u
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
RAW="${PYTHON3:-python3} $HERE/rawhttp.py"
TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

# Numeric options that are not whole numbers in range are refused with a message (strtol read
# "" as 0 and an overflow as the largest value: --max-body then had no limit).
for bad in "--port ''" "--port +80" "--port 65536" "--workers -1" "--workers 0" \
    "--max-conns 0" "--max-body 99999999999999999999" "--max-body -1" "--tls-port 7x"; do
    if eval timeout 10 "$BIN" "$bad" "$TMP" >/dev/null 2>"$TMP/err_opt"; then
        fail "option $bad accepted"
    elif ! grep -q "not a whole number" "$TMP/err_opt"; then
        fail "option $bad: no clear message: $(head -1 "$TMP/err_opt")"
    else
        ok "option $bad refused"
    fi
done

root=$TMP/www
mkdir -p "$root/dir" "$root/noindex" "$root/sub dir" "$root/many"
for i in $(seq 2000); do : >"$root/many/a-file-with-a-rather-long-name-number-$i.txt"; done
head -c 300000 /dev/urandom >"$root/big.bin"
head -c 8000000 /dev/urandom >"$root/huge.bin"
printf 'hello world\n' >"$root/small.txt"
: >"$root/empty.txt"
echo '<h1>index</h1>' >"$root/dir/index.html"
echo x >"$root/noindex/a<b>.txt"
echo secret >"$TMP/secret.txt"
ln -s ../secret.txt "$root/link_out"
ln -s small.txt "$root/link_in"
echo spaced >"$root/sub dir/f.txt"
mkdir "$root/utf8" "$root/utf8/ünï"
echo u >"$root/utf8/ñ+1 (x).txt"

# (5 s timeouts: no check waits for them here, see "Timeouts" below; a regression that waits
# for a body ends before rawhttp.py's own 10 s.)
"$BIN" --port 0 --workers 2 --header-timeout 5 --body-timeout 5 --autoindex \
    --access-log "$TMP/access.log" \
    --debug-port 0 "$root" >"$TMP/out" 2>"$TMP/err" &
PID=$!
PORT= DPORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's|.*serving.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out")
    DPORT=$(sed -n 's|.*debug endpoint on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out")
    [ -n "$PORT" ] && [ -n "$DPORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "FAIL: the server did not start"; cat "$TMP/err"; exit 1; }
URL=http://127.0.0.1:$PORT

# status URL [curl args...]: prints the status code of a request
status() {
    local u=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' "$@" "$URL$u"
}
expect() { # expect WANT DESCRIPTION URL [curl args...]
    local want=$1 what=$2
    shift 2
    local got
    got=$(status "$@")
    [ "$got" = "$want" ] && ok "$what: $got" || fail "$what: got $got, want $want"
}

# Bytes: small (copied into the batch) and large (sendfile) bodies.
curl -s -o "$TMP/got" "$URL/big.bin" && cmp -s "$TMP/got" "$root/big.bin" &&
    ok "GET big.bin byte for byte" || fail "GET big.bin bytes"
curl -s -o "$TMP/got" "$URL/huge.bin" && cmp -s "$TMP/got" "$root/huge.bin" &&
    ok "GET huge.bin byte for byte" || fail "GET huge.bin bytes"
curl -s -o "$TMP/got" "$URL/small.txt" && cmp -s "$TMP/got" "$root/small.txt" &&
    ok "GET small.txt byte for byte" || fail "GET small.txt bytes"
curl -s -o "$TMP/got" "$URL/sub%20dir/f.txt" && cmp -s "$TMP/got" "$root/sub dir/f.txt" &&
    ok "percent-decoded name" || fail "percent-decoded name"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$URL/dir/index.html")
[ "$ctype" = "text/html" ] && ok "MIME type text/html" || fail "MIME type: $ctype"

# HEAD: the headers of GET, no body.
curl -s -I "$URL/big.bin" >"$TMP/head"
grep -qi '^content-length: 300000' "$TMP/head" && ok "HEAD Content-Length" ||
    fail "HEAD Content-Length"
# Raw: curl -X HEAD waits out its --max-time for the body the length announces.
n=$($RAW "$PORT" tail \
    "$(printf 'HEAD /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' | od -v -An -tx1 | tr -d ' \n')")
[ "$n" = 0 ] && ok "HEAD has no body" || fail "HEAD body of $n bytes"

# Ranges.
curl -s -r 1000-1999 -o "$TMP/got" -w '%{http_code}' "$URL/big.bin" >"$TMP/code"
tail -c +1001 "$root/big.bin" | head -c 1000 >"$TMP/want"
[ "$(cat "$TMP/code")" = 206 ] && cmp -s "$TMP/got" "$TMP/want" && ok "range 206 slice" ||
    fail "range 206 slice"
curl -s -r -100 -o "$TMP/got" "$URL/big.bin"
tail -c 100 "$root/big.bin" >"$TMP/want"
cmp -s "$TMP/got" "$TMP/want" && ok "suffix range" || fail "suffix range"
expect 416 "range past the end" /big.bin -r 400000-
# Numbers past int64 (RFC 9110 14.1.1): a huge last-pos is clamped (206 to the end), a huge
# first-pos is past the end (416, as nginx answers).
curl -s -r 299990-99999999999999999999999 -o "$TMP/got" -w '%{http_code}' "$URL/big.bin" >"$TMP/code"
tail -c 10 "$root/big.bin" >"$TMP/want"
[ "$(cat "$TMP/code")" = 206 ] && cmp -s "$TMP/got" "$TMP/want" && ok "huge last-pos: 206 to the end" ||
    fail "huge last-pos: $(cat "$TMP/code")"
expect 416 "huge first-pos" /big.bin -r 99999999999999999999999-
curl -s -D - -o /dev/null -r 400000- "$URL/big.bin" | grep -qi '^content-range: bytes \*/300000' &&
    ok "416 Content-Range" || fail "416 Content-Range"

# Several ranges: multipart/byteranges, checked part by part by Python's email parser; the
# whole file for overlapping ranges and for more than 16; If-Range; 416 (ranges.py).
${PYTHON3:-python3} "$HERE/ranges.py" "$URL/big.bin" "$root/big.bin" >"$TMP/ranges.log"
[ $? = 0 ] && ok "ranges.py: $(grep -c '^ok' "$TMP/ranges.log") checks" ||
    fail "ranges.py: $(grep FAIL "$TMP/ranges.log")"
curl -s -r 0-1,6-7 "$URL/small.txt" | grep -q '^Content-Range: bytes 6-7/12' &&
    ok "curl -r 0-1,6-7: multipart" || fail "curl, two ranges"

# Past 4 GiB (a sparse file): Content-Length, and ranges beyond 2^32, single and several.
truncate -s 5G "$root/sparse.bin" && printf 'END' |
    dd of="$root/sparse.bin" bs=1 seek=$((5 * 1024 * 1024 * 1024 - 3)) conv=notrunc 2>/dev/null
curl -s -I "$URL/sparse.bin" | grep -qi '^content-length: 5368709120' &&
    ok "5 GiB Content-Length" || fail "5 GiB Content-Length"
got=$(curl -s -D "$TMP/h" -r 4294967296-4294967299 "$URL/sparse.bin" | od -An -tx1 | tr -d ' \n')
[ "$got" = 00000000 ] && grep -qi '^content-range: bytes 4294967296-4294967299/5368709120' "$TMP/h" &&
    ok "a range past 2^32" || fail "range past 2^32: $got $(cat "$TMP/h")"
[ "$(curl -s -r -3 "$URL/sparse.bin")" = END ] && ok "suffix range of a 5 GiB file" ||
    fail "suffix range of a 5 GiB file"
curl -s -r 4294967295-4294967296,5368709117- "$URL/sparse.bin" >"$TMP/got"
grep -q 'Content-Range: bytes 5368709117-5368709119/5368709120' "$TMP/got" && grep -q '^END' "$TMP/got" &&
    ok "two ranges past 2^32" || fail "two ranges past 2^32"
rm -f "$root/sparse.bin"
# A file of 2^63-1 bytes (where the temporary folder's filesystem holds one: tmpfs, XFS; run
# with TMPDIR=/dev/shm): two ranges whose multipart body would be longer than an int64 get
# the whole file, not a negative Content-Length. curl stops at the head (--max-filesize).
if truncate -s 9223372036854775807 "$root/int64max.bin" 2>/dev/null; then
    curl -s -D "$TMP/h" -o /dev/null --max-filesize 1000 -r 1-,0-0 "$URL/int64max.bin"
    grep -q '^HTTP/1.1 200' "$TMP/h" && grep -qi '^content-length: 9223372036854775807' "$TMP/h" &&
        ok "two ranges of a 2^63-1 byte file: the whole file" ||
        fail "two ranges of a 2^63-1 byte file: $(cat "$TMP/h")"
else
    echo "skip: no file of 2^63-1 bytes on $TMP's filesystem (TMPDIR=/dev/shm has one)"
fi
rm -f "$root/int64max.bin"

# Resuming a download: curl -C - and wget -c (Range from the length already there).
head -c 123457 "$root/big.bin" >"$TMP/resume"
curl -s -C - -o "$TMP/resume" "$URL/big.bin" && cmp -s "$TMP/resume" "$root/big.bin" &&
    ok "curl -C - resumes" || fail "curl -C -"
curl -s -C - -o "$TMP/resume" "$URL/big.bin" && cmp -s "$TMP/resume" "$root/big.bin" &&
    ok "curl -C - of a complete file (416) leaves it whole" || fail "curl -C - complete"
if command -v wget >/dev/null; then
    head -c 99999 "$root/big.bin" >"$TMP/big.bin"
    (cd "$TMP" && wget -q -c "$URL/big.bin") && cmp -s "$TMP/big.bin" "$root/big.bin" &&
        ok "wget -c resumes" || fail "wget -c"
    rm -rf "$TMP/mirror"
    (cd "$TMP" && wget -q -m -np -nH -P mirror "$URL/utf8/")
    [ "$(cat "$TMP/mirror/utf8/ñ+1 (x).txt" 2>/dev/null)" = u ] && [ -f "$TMP/mirror/utf8/ünï/index.html" ] &&
        ok "wget --mirror of a listing" || fail "wget --mirror: $(cd "$TMP/mirror" && find . | head)"
elif [ "${CI:-}" = true ]; then
    fail "wget is not installed (scripts/deps.sh test installs it)"
fi

# Conditional requests.
etag=$(curl -s -I "$URL/small.txt" | sed -n 's/^[Ee][Tt]ag: *\([^\r]*\).*/\1/p')
lm=$(curl -s -I "$URL/small.txt" | sed -n 's/^[Ll]ast-[Mm]odified: *\([^\r]*\).*/\1/p')
expect 304 "If-None-Match" /small.txt -H "If-None-Match: $etag"
expect 200 "If-None-Match other" /small.txt -H 'If-None-Match: "nope"'
expect 304 "If-Modified-Since" /small.txt -H "If-Modified-Since: $lm"
expect 200 "If-Modified-Since old" /small.txt -H "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT"
# The obsolete forms of the same date must be read too (RFC 9110 5.6.7): 304 for each.
lm_forms=$(${PYTHON3:-python3} -c '
import email.utils, sys, time
t = time.gmtime(email.utils.mktime_tz(email.utils.parsedate_tz(sys.argv[1])))
print(time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t))
print(time.strftime("%a %b ", t) + "%2d" % t.tm_mday + time.strftime(" %H:%M:%S %Y", t))' "$lm")
expect 304 "If-Modified-Since as rfc850-date" /small.txt -H "If-Modified-Since: $(sed -n 1p <<<"$lm_forms")"
expect 304 "If-Modified-Since as asctime-date" /small.txt -H "If-Modified-Since: $(sed -n 2p <<<"$lm_forms")"
# A date later than the server's clock is invalid and the condition ignored (13.1.3).
expect 200 "If-Modified-Since in the future" /small.txt -H "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"
# A list on two lines is one list (RFC 9110 5.3).
expect 304 "If-None-Match over two lines" /small.txt -H 'If-None-Match: "x"' -H "If-None-Match: $etag"
# If-Match (strong comparison) and If-Unmodified-Since: 412 when they fail (13.1.1, 13.1.4),
# checked before the Range and the If-None-Match (13.2.2).
expect 200 "If-Match" /small.txt -H "If-Match: $etag"
expect 200 "If-Match *" /small.txt -H "If-Match: *"
expect 412 "If-Match other" /small.txt -H 'If-Match: "nope"'
expect 412 "If-Match weak" /small.txt -H "If-Match: W/$etag"
expect 412 "If-Match other, with a Range" /small.txt -H 'If-Match: "nope"' -r 0-1
expect 200 "If-Unmodified-Since" /small.txt -H "If-Unmodified-Since: $lm"
expect 412 "If-Unmodified-Since old" /small.txt -H "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT"
expect 200 "If-Unmodified-Since ignored beside If-Match" /small.txt -H "If-Match: $etag" \
    -H "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT"

# A zero-length file: 200 with Content-Length 0 (GET and HEAD), and any range of it is
# unsatisfiable: 416 with Content-Range */0.
curl -s -I "$URL/empty.txt" | grep -qi '^content-length: 0' && ok "empty file: Content-Length 0" ||
    fail "empty file: Content-Length"
for r in 0-0 -1 0-; do
    curl -s -D - -o /dev/null -r "$r" "$URL/empty.txt" | tr -d '\r' | grep -qi '^content-range: bytes \*/0$' &&
        ok "empty file, range $r: 416 */0" || fail "empty file, range $r"
done

# Errors.
expect 404 "missing file" /nope.txt
expect 405 "POST to a file" /small.txt -X POST -d x
curl -s -D - -o /dev/null -X DELETE "$URL/small.txt" | grep -qi '^allow: GET, HEAD' &&
    ok "405 Allow" || fail "405 Allow"

# Traversal, every spelling, and symlinks.
expect 400 "/../" /../secret.txt --path-as-is
expect 400 "/%2e%2e/" /%2e%2e/secret.txt --path-as-is
expect 400 "..%2f" /..%2fsecret.txt --path-as-is
expect 400 "dir%2f..%2f..%2f" /dir%2f..%2f..%2fsecret.txt --path-as-is
expect 400 "%00" /small.txt%00 --path-as-is
expect 403 "symlink out of the root" /link_out
expect 200 "symlink inside the root" /link_in
expect 200 "dot segments inside" /dir/../small.txt --path-as-is
# Directory or not is decided on the decoded path: an escaped slash or a final dot segment
# names the directory as a plain slash does.
expect 404 "a file with an escaped slash after it" /small.txt%2F --path-as-is
expect 404 "a file with an escaped dot segment after it" /small.txt/%2e --path-as-is
expect 200 "a directory with an escaped slash" /dir%2F --path-as-is
expect 200 "a directory with a final dot segment" /dir/. --path-as-is
expect 200 "a directory with a final dot-dot segment" /dir/sub/.. --path-as-is

# The decoded path's limit, 4 KiB (414 past it), counted before "." and ".." are resolved and
# "//" merged: a short path padded to 4 KiB with them was served.
expect 414 "a path padded with ./ past 4 KiB" "/$(printf './%.0s' $(seq 2100))small.txt" --path-as-is
expect 414 "a path padded with %2e%2f past 4 KiB" "/$(printf '%%2e%%2f%.0s' $(seq 2100))small.txt" --path-as-is
expect 414 "a path padded with // past 4 KiB" "/$(printf '/%.0s' $(seq 4100))small.txt" --path-as-is
expect 404 "a decoded path of 4 KiB" "/$(head -c 4095 /dev/zero | tr '\0' a)"
expect 414 "a decoded path of 4 KiB + 1" "/$(head -c 4096 /dev/zero | tr '\0' a)"
expect 200 "padded, under 4 KiB" "/$(printf './%.0s' $(seq 2000))small.txt" --path-as-is

# Directories.
loc=$(curl -s -D - -o /dev/null "$URL/dir?q=1" | sed -n 's/^[Ll]ocation: *\([^\r]*\).*/\1/p')
[ "$loc" = "/dir/?q=1" ] && ok "301 to the slash" || fail "301 Location: $loc"
# A Location starting with "//" (or "/\") names another host to a browser: an open redirect.
for target in '//evil.example/../dir' '/\evil.example/../dir'; do
    loc=$(curl -s -D - -o /dev/null --path-as-is "$URL$target" | sed -n 's/^[Ll]ocation: *\([^\r]*\).*/\1/p')
    case "$loc" in
    /[!/\\]*) ok "301 for $target stays on this host ($loc)" ;;
    *) fail "301 for $target: Location $loc" ;;
    esac
done
expect 200 "index.html" /dir/
# A listing's preconditions (RFC 9110 13.1.1-2): it has no entity tag, so If-Match of a list
# fails and If-None-Match: * holds (both answered 200 with the listing).
expect 412 "listing, If-Match of a tag" /noindex/ -H 'If-Match: "nope"'
expect 200 "listing, If-Match: *" /noindex/ -H 'If-Match: *'
expect 304 "listing, If-None-Match: *" /noindex/ -H 'If-None-Match: *'
expect 200 "listing, If-None-Match of a tag" /noindex/ -H 'If-None-Match: "nope"'
curl -s "$URL/noindex/" | grep -q 'href="a%3Cb%3E.txt">a&lt;b&gt;.txt<' && ok "autoindex" ||
    fail "autoindex"

# A listing's names are UTF-8 and it says so; a browser (headless Chromium, when installed)
# shows them as they are, and the links it follows (percent-encoded UTF-8, '+', spaces and
# parentheses) reach the files.
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$URL/utf8/")
[ "$ctype" = "text/html; charset=utf-8" ] && ok "listing charset" || fail "listing Content-Type: $ctype"
href=$(curl -s "$URL/utf8/" | sed -n 's|.*<a href="\([^"]*\.txt\)">.*|\1|p')
[ "$(curl -s "$URL/utf8/$href")" = u ] && ok "listing link $href" || fail "listing link $href"
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ "${WEFT_BACKEND:-}" = io_uring ]; then
    # The listing's bytes are the same on every backend: the browser (4 s) reads them once.
    echo "skip: chromium on io_uring (the listing's bytes are checked on epoll)"
elif [ -n "$chromium" ]; then
    # (--no-sandbox: the sandbox refuses to run as root, as in containers and CI.)
    timeout 120 "$chromium" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage \
        --no-first-run --user-data-dir="$TMP/chromium" --dump-dom "$URL/utf8/" >"$TMP/dom" 2>/dev/null
    grep -q '>ünï/<' "$TMP/dom" && grep -q '>ñ+1 (x).txt<' "$TMP/dom" &&
        ok "chromium: the listing's UTF-8 names" || fail "chromium listing: $(cat "$TMP/dom")"
elif [ "${CI:-}" = true ]; then
    fail "chromium is not installed (scripts/deps.sh test installs it)"
else
    echo "skip: chromium is not installed"
fi

# A listing of unknown length goes out chunked (HTTP/1.1), in chunks of the batch buffer
# (this one, about 170 KB, takes several), or up to the close for HTTP/1.0; same bytes.
curl -s -D "$TMP/lh" -o "$TMP/l11" "$URL/many/"
curl -s -0 -D "$TMP/lh0" -o "$TMP/l10" "$URL/many/"
grep -qi '^transfer-encoding: chunked' "$TMP/lh" && ! grep -qi '^content-length' "$TMP/lh" &&
    ok "listing chunked" || fail "listing not chunked"
grep -qi '^connection: close' "$TMP/lh0" && cmp -s "$TMP/l11" "$TMP/l10" &&
    [ "$(grep -c 'a-file-with' "$TMP/l11")" = 2000 ] && tail -c 9 "$TMP/l11" | grep -q '</html>' &&
    ok "chunked listing == HTTP/1.0 listing, 2000 entries" || fail "chunked listing bytes"
nchunks=$(curl -s --raw "$URL/many/" | grep -c $'^[0-9a-f]\{4\}\r$')
[ "$nchunks" -ge 5 ] && ok "listing in $nchunks chunks" || fail "chunks: $nchunks"
# A HEAD of a listing gets its headers without the directory being read: the names were read
# and sorted for a body never sent (11 ms of a worker's CPU per 30-byte HEAD of 20,000 names,
# pipelined). Seen in the directory's access time, set in the past first (a read of it moves
# the time, relatime or not: it is older than the mtime); a GET after it is the control, where
# the file system keeps no access times.
atime() { ${PYTHON3:-python3} -c 'import os, sys; print(int(os.stat(sys.argv[1]).st_atime))' "$1"; }
${PYTHON3:-python3} -c 'import os, sys; os.utime(sys.argv[1], (1000, os.stat(sys.argv[1]).st_mtime))' "$root/many"
head_h=$(curl -s -I -o /dev/null -w '%{http_code}' "$URL/many/")
after_head=$(atime "$root/many")
curl -s -o /dev/null "$URL/many/"
if [ "$(atime "$root/many")" = 1000 ]; then
    echo "skip: a listing's HEAD (no access times kept here)"
elif [ "$head_h" = 200 ] && [ "$after_head" = 1000 ] && grep -qi '^transfer-encoding: chunked' \
    <(curl -s -I "$URL/many/"); then
    ok "HEAD of a listing: its headers, the directory not read"
else
    fail "HEAD of a listing: $head_h, the directory read (atime $after_head)"
fi
${PYTHON3:-python3} - "$PORT" "$TMP/l11" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/many/")
body = c.getresponse().read()
c.request("GET", "/small.txt")  # the same connection goes on after the last chunk
r2 = c.getresponse()
sys.exit(0 if body == open(sys.argv[2], "rb").read() and r2.status == 200 and
         r2.read() == b"hello world\n" else 1)
PY
[ $? = 0 ] && ok "http.client decodes the chunked listing, keep-alive after it" ||
    fail "http.client chunked listing"

# Keep-alive: curl reuses one connection for two URLs.
curl -sv -o /dev/null -o /dev/null "$URL/small.txt" "$URL/big.bin" 2>"$TMP/verbose"
grep -qi 're-using existing connection' "$TMP/verbose" && ok "keep-alive" || fail "keep-alive"

hex() { printf '%b' "$1" | od -v -An -tx1 | tr -d ' \n'; }
raw() { $RAW "$PORT" send "$(hex "$1")"; }

# Pipelining: two requests in one write, two responses in order.
got=$(raw 'GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
want=$'HTTP/1.1 200 OK 12\nHTTP/1.1 200 OK 300000\nEOF'
[ "$got" = "$want" ] && ok "pipelining" || fail "pipelining: $got"

# A 304 carries no body: the response after it on the same connection is read where it
# starts (rawhttp.py reads a 304 as headers only; a body would be taken for the next one).
got=$(raw "GET /small.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: $etag\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: $lm\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
[ "$got" = $'HTTP/1.1 304 Not Modified 0\nHTTP/1.1 304 Not Modified 0\nHTTP/1.1 200 OK 12\nEOF' ] &&
    ok "304s without a body, keep-alive after them" || fail "304 then 200: $got"

# A file whose mtime is outside gmtime's years (tmpfs takes 2^62 s; ext4 clamps
# it to 2446, and the case is skipped): its Last-Modified is the last second of year 9999
# (the server crashed on its first request: gmtime_r failed and its unset tm was read).
echo far >"$root/far.txt"
${PYTHON3:-python3} -c 'import os, sys; os.utime(sys.argv[1], (2**62, 2**62))' "$root/far.txt" 2>/dev/null
if [ "$(stat -c %Y "$root/far.txt")" = 4611686018427387904 ]; then
    lmfar=$(curl -s -D - -o /dev/null "$URL/far.txt" | tr -d '\r' | sed -n 's/^Last-Modified: //p')
    [ "$lmfar" = "Fri, 31 Dec 9999 23:59:59 GMT" ] && ok "an mtime of 2^62 s: Last-Modified $lmfar" ||
        fail "an mtime of 2^62 s: Last-Modified '$lmfar'"
    expect 200 "served after a file with an mtime of 2^62 s" /small.txt
else
    ok "skipped: the file system clamps an mtime of 2^62 s"
fi
rm -f "$root/far.txt"

# A zero-length file over one connection: GET and HEAD, then the next request.
got=$(raw 'GET /empty.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /empty.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[ "$got" = $'HTTP/1.1 200 OK 0\nHTTP/1.1 200 OK 0\nHTTP/1.1 200 OK 12\nEOF' ] &&
    ok "empty file: GET and HEAD, keep-alive" || fail "empty file: $got"

# A body on GET is read and dropped; the connection goes on.
got=$(raw 'GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[ "$got" = $'HTTP/1.1 200 OK 12\nHTTP/1.1 200 OK 12\nEOF' ] && ok "GET body dropped" ||
    fail "GET body: $got"

# A finished response leaves before the wait for a later request's body: a GET pipelined
# ahead of a POST whose body never completes (the client half-closes) is answered (it was
# held in the batch, then lost with the connection), with a Content-Length body and chunked.
for body in 'Content-Length: 10\r\n\r\nab' 'Transfer-Encoding: chunked\r\n\r\n64\r\nab'; do
    got=$($RAW "$PORT" halfclose "$(hex "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\nPOST /small.txt HTTP/1.1\r\nHost: t\r\n$body")" | tr '\n' '|')
    [ "$got" = 'HTTP/1.1 200 OK 12|EOF|' ] && ok "answered before a body that never completes" ||
        fail "pipelined before an unfinished body ($body): $got"
done

# A chunked request body (extensions, trailers) is decoded and dropped; the pipelined request
# after it is answered on the same connection. curl's own chunked upload too (POST: 405).
got=$(raw 'GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[ "$got" = $'HTTP/1.1 200 OK 12\nHTTP/1.1 200 OK 12\nEOF' ] && ok "chunked GET body dropped" ||
    fail "chunked body: $got"
head -c 200000 /dev/urandom >"$TMP/upload"
curl -s -v -o /dev/null -o /dev/null -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/upload" \
    "$URL/small.txt" "$URL/small.txt" 2>"$TMP/verbose"
grep -q '< HTTP/1.1 405' "$TMP/verbose" && grep -qi 're-using existing connection' "$TMP/verbose" &&
    ok "curl chunked upload: 405, connection kept" || fail "curl chunked upload"
# Expect: 100-continue: no response here needs the body, so the final status comes at once,
# without 100 Continue (the client then never sends the body), and the connection closes;
# when the body would be over the limit, 413 (curl sends the header by itself for bodies over
# 1 MiB). It was 100 Continue, then the wait for the body: a client that never sent it was
# held for the whole body timeout, then closed on without a response.
# (--expect100-timeout: curl sends the body anyway after 1 s by default, and a loaded machine
# may take longer to answer; then the body is there first and no 100 is due.)
curl -s -v -o /dev/null -H 'Expect: 100-continue' --expect100-timeout 60 \
    --data-binary @"$TMP/upload" "$URL/small.txt" 2>"$TMP/verbose"
grep -q '< HTTP/1.1 405' "$TMP/verbose" && ! grep -q '< HTTP/1.1 100' "$TMP/verbose" &&
    ok "Expect: 405 at once, no 100 Continue" || fail "Expect: 100-continue to a POST"
for req in 'POST /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n' \
    'GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n' \
    'PUT /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n'; do
    got=$(raw "$req" | tr '\n' '|')
    case "$got" in
    "HTTP/1.1 "[24]0[05]" "*"|EOF|") ok "Expect, body held back: the final status at once (${req:0:20})" ;;
    *) fail "Expect, body held back (${req:0:20}): $got" ;;
    esac
done
head -c 2000000 /dev/zero >"$TMP/upload2"
curl -s -v -o /dev/null --data-binary @"$TMP/upload2" "$URL/small.txt" 2>"$TMP/verbose"
grep -q '< HTTP/1.1 413' "$TMP/verbose" && ! grep -q '< HTTP/1.1 100' "$TMP/verbose" &&
    ok "413 without 100 Continue" || fail "Expect with a body over the limit"

# Malformed requests: the status, then the connection closes.
check_raw() { # check_raw WANT_STATUS DESCRIPTION REQUEST
    local got
    got=$(raw "$3" | tr '\n' '|')
    case "$got" in
    "HTTP/1.1 $1 "*"|EOF|") ok "$2: $1, closed" ;;
    *) fail "$2: $got" ;;
    esac
}
check_raw 400 "no Host" 'GET / HTTP/1.1\r\n\r\n'
check_raw 400 "a space in the target" 'GET /a b HTTP/1.1\r\nHost: t\r\n\r\n'
check_raw 400 "two Hosts" 'GET / HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n'
check_raw 400 "Host with a space" 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'
check_raw 400 "Host with userinfo" 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n'
check_raw 400 "obs-fold" 'GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n'
check_raw 400 "space before colon" 'GET / HTTP/1.1\r\nHost : t\r\n\r\n'
check_raw 400 "two Content-Length" 'GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'
check_raw 400 "TE with CL" 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n'
check_raw 501 "unknown Transfer-Encoding" 'GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n'
check_raw 505 "HTTP/2.0" 'GET / HTTP/2.0\r\n\r\n'
check_raw 413 "body over the limit" 'GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n'
check_raw 413 "chunk over the limit" 'GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n'
check_raw 400 "bad chunk size" 'GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'
check_raw 400 "chunk without its CRLF" 'GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n'
check_raw 414 "request line too long" "GET /$(head -c 9000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: t\r\n\r\n"
check_raw 431 "header line too long" "GET / HTTP/1.1\r\nHost: t\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n"
many=$(for i in $(seq 120); do printf 'X%d: y\\r\\n' "$i"; done)
check_raw 431 "too many headers" "GET / HTTP/1.1\r\nHost: t\r\n$many\r\n"
# A HEAD refused for what follows its method (version, Host, a header, a long line) gets its
# error status without a body (RFC 9110 9.3.2), as nginx answers it (the body was sent).
long=$(head -c 9000 /dev/zero | tr '\0' a)
for req in 'HEAD / HTTP/1.1\r\n\r\n' 'HEAD / HTTP/2.0\r\nHost: t\r\n\r\n' \
    'HEAD / HTTP/1.1\r\nHost: t\r\nX : y\r\n\r\n' 'HEAD / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n' \
    "HEAD /$long HTTP/1.1\r\nHost: t\r\n\r\n" "HEAD / HTTP/1.1\r\nHost: t\r\nX: $long\r\n\r\n"; do
    n=$($RAW "$PORT" tail "$(hex "$req")")
    [ "$n" = 0 ] && ok "refused HEAD without a body: ${req:0:60}" ||
        fail "refused HEAD (${req:0:60}): a body of $n bytes"
done
got=$(raw 'GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[[ "$got" == $'HTTP/1.1 404 Not Found '*$'\nHTTP/1.1 200 OK 12\nEOF' ]] && ok "404 keeps the connection" ||
    fail "404 keep-alive: $got"

# Connection: "close" wins over a "keep-alive" beside it (RFC 9112 9.6).
got=$(raw 'GET /small.txt HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n')
[ "$got" = $'HTTP/1.1 200 OK 12\nEOF' ] && ok "close wins over keep-alive" || fail "close, keep-alive: $got"
# An absolute-form target with an empty path is the root (RFC 9110 4.2.3), not a redirect.
got=$(raw 'GET http://t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[[ "$got" == $'HTTP/1.1 200 OK '*$'\nEOF' ]] && ok "absolute form, empty path: the root" ||
    fail "absolute form, empty path: $got"
# A chunked body behind a head that fills the whole 16 KiB input buffer: no room is left to
# read the chunks through, so the head was too large (431), not the body (413).
full=$(${PYTHON3:-python3} -c '
h = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
h += b"X-A: " + b"a" * 6000 + b"\r\n" + b"X-B: " + b"b" * 6000 + b"\r\n"
h += b"X-C: " + b"c" * (16384 - len(h) - 9) + b"\r\n\r\n"
assert len(h) == 16384
print((h + b"3\r\nabc\r\n0\r\n\r\n").hex())')
got=$($RAW "$PORT" send "$full" | tr '\n' '|')
case "$got" in
"HTTP/1.1 431 "*"|EOF|") ok "a head filling the buffer before a chunked body: 431" ;;
*) fail "a full head before a chunked body: $got" ;;
esac
# The same for a head that leaves less than 4 KiB of the buffer (it read the body through
# what was left: a byte per read behind a head of 16,383 bytes, 0.37 s of CPU per MiB of
# body), decided on the head whatever of the body came with it; a head that leaves exactly
# 4 KiB still has its chunked body read and dropped.
for hlen in 16383 12289 12288; do
    hex=$(${PYTHON3:-python3} -c '
import sys
n = int(sys.argv[1])
h = b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
h += b"X-A: " + b"a" * 6000 + b"\r\n" + b"X-B: " + b"b" * 6000 + b"\r\n"
h += b"X-C: " + b"c" * (n - len(h) - 9) + b"\r\n\r\n"
assert len(h) == n
print((h + b"3\r\nabc\r\n0\r\n\r\n").hex())' "$hlen")
    got=$($RAW "$PORT" send "$hex" | tr '\n' '|')
    want=431
    [ "$hlen" = 12288 ] && want=404
    case "$got" in
    "HTTP/1.1 $want "*"|EOF|") ok "a head of $hlen bytes before a chunked body: $want" ;;
    *) fail "a head of $hlen bytes before a chunked body: $got (want $want)" ;;
    esac
done
# Timeouts, on a server of their own whose header and body timeouts are 0.25 s: every
# request to it stops short on purpose, so nothing it serves needs the time, and each check
# waits one timeout (the main server's were 1 s, five waits of a second).
"$BIN" --port 0 --workers 1 --header-timeout 0.25 --body-timeout 0.25 "$root" >"$TMP/out_to" 2>/dev/null &
TO_PID=$!
TO_PORT=
for _ in $(seq 100); do
    TO_PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out_to")
    [ -n "$TO_PORT" ] && break
    sleep 0.1
done
# A body that stops coming: 408 at the body timeout, then the close (it closed without a
# word); with Content-Length and chunked. (The two wait together, beside the trickle.)
to_reqs=('GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab'
    'GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nab')
to_pids=()
for i in 0 1; do
    $RAW "$TO_PORT" partial "$(hex "${to_reqs[$i]}")" >"$TMP/body408_$i" &
    to_pids+=($!)
done
# A body trickled a byte at a time is bounded as a whole by --body-timeout: the connection
# closes, where a deadline per read would keep it open for ever. A byte every 0.02 s, far
# inside the timeout, so that a deadline per read would never pass (20 s of bytes: "still
# open").
got=$($RAW "$TO_PORT" trickle 20 0.02)
case "$got" in
"closed after "*) ok "trickled body: $got" ;;
*) fail "trickled body: $got" ;;
esac
for i in 0 1; do
    wait "${to_pids[$i]}"
    req=${to_reqs[$i]}
    got=$(cat "$TMP/body408_$i")
    [ "$got" = "HTTP/1.1 408 Request Time-out" ] && ok "408 body timeout (${req:38:14})" ||
        fail "body timeout (${req:38:14}): $got"
done

# The header timeout: 408, then close; to a HEAD, without a body (RFC 9110 9.3.2; it waits
# beside the GET, so the two cost one timeout).
# A connection that sends nothing (a browser's unused preconnect) closes silently at the same
# timeout: a 408 there would be read as the answer to a request the client sends meanwhile.
$RAW "$TO_PORT" tail "$(hex 'HEAD /small.txt HTTP/1.1\r\nHost: t\r\n')" >"$TMP/head408" &
head408=$!
$RAW "$TO_PORT" partial "" >"$TMP/idle408" &
idle408=$!
got=$($RAW "$TO_PORT" partial "$(hex 'GET / HTTP/1.1\r\nHost: t\r\n')")
[ "$got" = "HTTP/1.1 408 Request Time-out" ] && ok "408 header timeout" || fail "408: $got"
wait $idle408
[ "$(cat "$TMP/idle408")" = EOF ] && ok "a connection that sent nothing closes silently" ||
    fail "a connection that sent nothing: $(cat "$TMP/idle408")"
wait $head408
[ "$(cat "$TMP/head408")" = 0 ] && ok "408 to a HEAD without a body" ||
    fail "408 to a HEAD: a body of $(cat "$TMP/head408") bytes"
kill "$TO_PID"
wait "$TO_PID" 2>/dev/null

# The open-file cache: with it off, a replaced or removed file is seen at once; with a 0.3 s
# cache, it is seen once that time has passed (asked again every 0.05 s for up to 10 s: only
# the safe side of the wait is asserted, never how soon; an entry's time runs from its open,
# so asking does not keep it).
mkdir -p "$TMP/fc"
serve_fc() { # serve_fc SECONDS: a server on $TMP/fc; sets FC_PID and FC_PORT
    "$BIN" --port 0 --workers 1 --file-cache "$1" "$TMP/fc" >"$TMP/out_fc" 2>/dev/null &
    FC_PID=$!
    FC_PORT=
    for _ in $(seq 100); do
        FC_PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out_fc")
        [ -n "$FC_PORT" ] && break
        sleep 0.1
    done
}
# fc_get TTL WANT CURL_ARGS...: curl's output; with a cache (TTL not 0), asked again until it
# is WANT, for up to 10 s.
fc_get() {
    local ttl=$1 want=$2 got
    shift 2
    for _ in $(seq 200); do
        got=$(curl -s "$@")
        [ "$ttl" = 0 ] || [ "$got" = "$want" ] && break
        sleep 0.05
    done
    echo "$got"
}
for ttl in 0 0.3; do
    echo one >"$TMP/fc/f.txt"
    serve_fc $ttl
    a=$(curl -s "http://127.0.0.1:$FC_PORT/f.txt")
    echo second >"$TMP/fc/f.new" && mv "$TMP/fc/f.new" "$TMP/fc/f.txt"
    b=$(fc_get $ttl second "http://127.0.0.1:$FC_PORT/f.txt")
    rm "$TMP/fc/f.txt"
    c=$(fc_get $ttl 404 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FC_PORT/f.txt")
    [ "$a|$b|$c" = "one|second|404" ] && ok "file cache $ttl s: replaced and removed files seen" ||
        fail "file cache $ttl: $a|$b|$c"
    if [ "$ttl" != 0 ]; then
        # An idle server closes an expired entry on its own: a removed file keeps no fd (and
        # so no disk space) once the cache time has passed, with no request to retire it.
        # Twice: the sweeper ends when nothing is left to expire, and the next entry starts
        # it again. (Looked at every 0.05 s for up to 10 s, with no request meanwhile.)
        for g in g1 g2; do
            echo gone >"$TMP/fc/$g.txt"
            curl -s -o /dev/null "http://127.0.0.1:$FC_PORT/$g.txt"
            rm "$TMP/fc/$g.txt"
            for _ in $(seq 200); do
                held=$(ls -l "/proc/$FC_PID/fd" 2>/dev/null | grep -c "$g.txt")
                [ "$held" = 0 ] && break
                sleep 0.05
            done
            [ "$held" = 0 ] && ok "file cache $ttl s: an expired entry ($g) is closed while idle" ||
                fail "file cache $ttl: the removed file $g is still open ($held fds)"
        done
    fi
    kill "$FC_PID"
    wait "$FC_PID" 2>/dev/null
done

# A cached file shrunk in place (truncate, copytruncate log rotation): its stat in the cache
# promises more bytes than the file has. The response that cannot keep its length ends the
# connection, but the responses pipelined before it still go out whole (they were dropped
# with the batch), and the entry is forgotten: the next request sees the new size.
echo "hello world" >"$TMP/fc/hello.txt"
head -c 10000 /dev/urandom >"$TMP/fc/shrunk.bin"
serve_fc 30
curl -s -o /dev/null "http://127.0.0.1:$FC_PORT/shrunk.bin" # now cached, with its stat
truncate -s 5000 "$TMP/fc/shrunk.bin"
got=$($RAW "$FC_PORT" send "$(hex 'GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /shrunk.bin HTTP/1.1\r\nHost: t\r\n\r\n')" | tr '\n' ' ')
[ "$got" = "HTTP/1.1 200 OK 12 EOF " ] &&
    ok "a file shrunk under its cached stat: the pipelined response before it still goes out" ||
    fail "shrunk cached file: $got"
got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$FC_PORT/shrunk.bin")
[ "$got" = "200 5000" ] && ok "a shrunk file's cache entry is forgotten" || fail "after the shrink: $got"
# The same for a file sent with sendfile (over 16 KiB): its short send forgot nothing, and
# every request was cut short until the cache entry expired (found by a hostile review).
head -c 1048576 /dev/urandom >"$TMP/fc/big_shrunk.bin"
curl -s -o /dev/null "http://127.0.0.1:$FC_PORT/big_shrunk.bin" # now cached, with its stat
truncate -s 100000 "$TMP/fc/big_shrunk.bin"
curl -s -o /dev/null "http://127.0.0.1:$FC_PORT/big_shrunk.bin" # cut short (curl: 18)
got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$FC_PORT/big_shrunk.bin"; echo " curl $?")
[ "$got" = "200 100000 curl 0" ] && ok "a shrunk file sent with sendfile: its cache entry is forgotten" ||
    fail "after the sendfile shrink: $got"
kill "$FC_PID"
wait "$FC_PID" 2>/dev/null

# The connection cap: a second server that takes one connection; while a raw connection
# holds it, curl's is closed at once (empty reply); once it is gone, curl is served.
"$BIN" --port 0 --workers 1 --max-conns 1 "$root" >"$TMP/out_cap" 2>/dev/null &
CAP_PID=$!
CAP_PORT=
for _ in $(seq 100); do
    CAP_PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/out_cap")
    [ -n "$CAP_PORT" ] && break
    sleep 0.1
done
mkfifo "$TMP/hold"
${PYTHON3:-python3} -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $CAP_PORT))
print('connected', flush=True)
sys.stdin.read()
" <"$TMP/hold" >"$TMP/held" &
HOLD_PID=$!
exec 7>"$TMP/hold"
for _ in $(seq 100); do grep -q connected "$TMP/held" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$CAP_PORT/small.txt"
rc=$?
[ "$rc" = 52 ] || [ "$rc" = 56 ] && ok "over the cap: closed at once" || fail "cap: curl exit $rc"
exec 7>&-
wait "$HOLD_PID"
served=0
for _ in $(seq 50); do
    [ "$(status /small.txt --connect-to "::127.0.0.1:$CAP_PORT")" = 200 ] && served=1 && break
    sleep 0.1
done
[ "$served" = 1 ] && ok "served once a slot is free" || fail "cap: never served again"
kill -TERM "$CAP_PID"
wait "$CAP_PID"

# The debug endpoint (--debug-port): the metrics count the requests served, the console page
# and the task dump answer.
if [ -n "$DPORT" ]; then
    curl -s "http://127.0.0.1:$DPORT/metrics" | grep -Eq '^weft_resumes_total\{worker="[01]"\} [1-9]' &&
        ok "debug endpoint: /metrics" || fail "debug endpoint: /metrics"
    curl -s "http://127.0.0.1:$DPORT/debug/" | grep -q '<title>' &&
        ok "debug endpoint: the console page" || fail "debug endpoint: /debug/"
    curl -s "http://127.0.0.1:$DPORT/debug/tasks" | ${PYTHON3:-python3} -c 'import json,sys; d=json.load(sys.stdin); assert d["ntasks"] > 0' &&
        ok "debug endpoint: /debug/tasks" || fail "debug endpoint: /debug/tasks"
    # What a request leaves unread (a body, the rest of a long head) is drained before the
    # close, so the kernel does not reset the connection under the answer; an absolute-form
    # target routes as its path; a NUL in the request line is 400; a second request in the
    # same write is not answered (one request per connection).
    draw() { $RAW "$DPORT" send "$1" | tr '\n' '|'; }
    body=$(${PYTHON3:-python3} -c 'print("x" * 50000)')
    got=$(draw "$(hex "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 50001\r\n\r\n$body\n")")
    [ "$got" = "HTTP/1.0 405 Method Not Allowed 18|EOF|" ] &&
        ok "debug endpoint: a 50 KB body unread is drained, no reset" || fail "debug endpoint, body: $got"
    long=$(head -c 20000 /dev/zero | tr '\0' a)
    got=$(draw "$(hex "GET /nothing HTTP/1.1\r\nHost: t\r\nX: $long\r\n\r\n")")
    [[ "$got" == "HTTP/1.0 404 Not Found "*"|EOF|" ]] &&
        ok "debug endpoint: a head over 4 KiB, no reset" || fail "debug endpoint, long head: $got"
    got=$(draw "$(hex 'GET http://127.0.0.1/metrics?x=1 HTTP/1.1\r\nHost: t\r\n\r\n')")
    [[ "$got" == "HTTP/1.0 200 OK "*"|EOF|" ]] && ok "debug endpoint: absolute-form target" ||
        fail "debug endpoint, absolute form: $got"
    got=$(draw "$(hex 'GET http://127.0.0.1 HTTP/1.1\r\nHost: t\r\n\r\n')")
    [[ "$got" == "HTTP/1.0 200 OK "*"|EOF|" ]] && ok "debug endpoint: absolute-form, no path: /" ||
        fail "debug endpoint, absolute form without a path: $got"
    got=$(draw "$(hex 'GET /met\0rics HTTP/1.1\r\nHost: t\r\n\r\n')")
    [[ "$got" == "HTTP/1.0 400 Bad Request "*"|EOF|" ]] && ok "debug endpoint: NUL in the request line: 400" ||
        fail "debug endpoint, NUL: $got"
    got=$($RAW "$DPORT" halfclose "$(hex 'GET /debug/tasks HTTP/1.0\r\n')" | tr '\n' '|')
    [[ "$got" == "HTTP/1.0 200 OK "*"|EOF|" ]] && ok "debug endpoint: a head cut by the client's close is answered" ||
        fail "debug endpoint, head cut by a close: $got"
    got=$(draw "$(hex 'GET /metrics HTTP/1.0\r\n\r\nGET /nothing HTTP/1.0\r\n\r\n')")
    [[ "$got" == "HTTP/1.0 200 OK "*"|EOF|" ]] && ok "debug endpoint: a pipelined second request is not parsed" ||
        fail "debug endpoint, pipelined: $got"
    # Prometheus histograms: cumulative counts, growing edges, +Inf == _count.
    curl -s "http://127.0.0.1:$DPORT/metrics" | ${PYTHON3:-python3} -c '
import sys, collections
b = collections.defaultdict(list); count = {}
for line in sys.stdin:
    if "_bucket{le=" in line:
        name, rest = line.split("_bucket{le=\"")
        le, n = rest.split("\"} ")
        b[name].append((float(le), int(n)))
    elif "_count " in line:
        name, n = line.split("_count ")
        count[name] = int(n)
assert len(b) == 2, b.keys()
for name, bk in b.items():
    assert [le for le, _ in bk] == sorted(set(le for le, _ in bk)), name
    assert [n for _, n in bk] == sorted(n for _, n in bk), name
    assert bk[-1][0] == float("inf") and bk[-1][1] == count[name], name
    assert bk[0][0] == 1e-9 and bk[1][0] == 3e-9, bk[:2]
' && ok "debug endpoint: histogram buckets cumulative, le edges exact" || fail "debug endpoint: histogram buckets"
else
    fail "no debug endpoint line: $(cat "$TMP/out")"
fi

# A chunked request whose head ends at the input buffer's end, behind pipelined requests:
# its body is read like any other (it was answered 431, or drained a byte per read).
got=$($RAW "$PORT" chunkedge)
[ "$got" = "all answered 200" ] && ok "a chunked head at the buffer's end: $got" ||
    fail "a chunked head at the buffer's end: $got"

# A long pipelined batch in one write: every request answered, and the log flusher runs
# during it (checked below). The connection's task yields every few requests: it ran the
# whole batch without a switch, holding back the worker's other tasks (a client keeping its
# pipeline full held the worker's other connections for seconds), so the flusher never ran
# and every line past one log buffer (762 of these) was dropped, 438 of the 1200.
got=$($RAW "$PORT" pipeline 1200 '/small.txt?pipelined')
[ "$got" = 1200 ] && ok "1200 pipelined requests in one write answered" ||
    fail "1200 pipelined requests in one write: $got answered"

# A download the client resets part way: the access log must say how much was sent, not
# the 8000000 bytes promised (checked below, once the log is flushed).
$RAW "$PORT" abort '/huge.bin?abort' >/dev/null

# A file truncated while it is sent (sendfile meets its new end): the connection closes
# before the announced length, so the client knows the body is short; the server goes on.
truncate -s 30000000 "$root/shrinks.bin"
got=$($RAW "$PORT" shrink /shrinks.bin "$root/shrinks.bin" 1000000)
case "$got" in
"cut short at "*" of 30000000") ok "a file shrinking while sent: $got" ;;
*) fail "a file shrinking while sent: $got" ;;
esac
rm -f "$root/shrinks.bin"
expect 200 "served after the file shrank" /small.txt

# Graceful shutdown: SIGTERM while a large response is in flight; it completes, exit 0.
got=$($RAW "$PORT" slowget /huge.bin "$PID" 8000000)
[ "$got" = complete ] && ok "in-flight response completed at SIGTERM" || fail "SIGTERM: $got"
wait "$PID"
rc=$?
PID=
[ "$rc" = 0 ] && ok "exit code 0 after SIGTERM" || fail "exit code $rc"

# The access log was flushed at the exit.
grep -q '^127.0.0.1 - - \[.*\] "GET /small.txt HTTP/1.1" 200 12$' "$TMP/access.log" &&
    ok "access log" || fail "access log: $(head -3 "$TMP/access.log")"
grep -q '^127.0.0.1 - - \[.*\] "GET /a b HTTP/1.1" 400 [0-9]*$' "$TMP/access.log" &&
    ok "access log: a refused request line as received" ||
    fail "access log of a refused request line: $(grep ' 400 ' "$TMP/access.log" | head -3)"
aborted=$(sed -n 's|^127.0.0.1 - - \[.*\] "GET /huge.bin?abort HTTP/1.1" 200 \([0-9]*\)$|\1|p' "$TMP/access.log")
[ -n "$aborted" ] && [ "$aborted" -lt 8000000 ] && ok "access log: $aborted bytes sent of an aborted download" ||
    fail "access log of the aborted download: '$aborted'"

# Every line of the batch: a buffer grows while the other one's write is in flight (past
# one 64 KiB buffer, 762 of these lines, the rest were dropped when the flusher was late).
logged=$(grep -c '^127.0.0.1 - - \[.*\] "GET /small.txt?pipelined HTTP/1.1" 200 12$' "$TMP/access.log")
[ "$logged" = 1200 ] && ok "access log: $logged of the 1200 pipelined requests" ||
    fail "access log: $logged of the 1200 pipelined requests $(grep 'lines dropped' "$TMP/err")"

if [ "$failures" -ne 0 ]; then
    echo "--- server stderr"
    cat "$TMP/err"
    echo "$failures failures"
    exit 1
fi
echo "all passed"
