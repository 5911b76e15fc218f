#!/usr/bin/env python3
"""ranges.py: weft-httpd's byte ranges through Python's http.client, on one keep-alive
connection: several ranges as multipart/byteranges (each part's bytes and Content-Range
against the file, parsed by the email package), the cases that get the whole file
(overlapping ranges, more than 16), If-Range with the ETag, a stale ETag and the date, and
416 for a list that nothing in the file satisfies.

  ranges.py URL FILE [CAFILE]     URL names FILE on the server (http:// or https://)

Prints "ok: ..." or "FAIL: ..." per check; exits 1 if any failed.
"""
import email
import email.policy
import http.client
import socket
import ssl
import sys
import urllib.parse

failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    data = open(sys.argv[2], "rb").read()
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=sys.argv[3])
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=30)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

    def get(headers):
        conn.request("GET", url.path, headers=headers)
        r = conn.getresponse()
        return r, r.read()

    size = len(data)
    # Small parts (copied into the batch) and large ones (sendfile, or TLS records), a suffix
    # range, an open-ended one, an unsatisfiable one left out, spaces and an empty element.
    for spec, want in [
        ("bytes=0-99,1000-1999,-50", [(0, 99), (1000, 1999), (size - 50, size - 1)]),
        ("bytes=0-20000, 200000-", [(0, 20000), (200000, size - 1)]),
        ("bytes=5-5,,%d-,%d-" % (size - 1, size + 10), [(5, 5), (size - 1, size - 1)]),
    ]:
        r, body = get({"Range": spec})
        ctype = r.getheader("Content-Type", "")
        ok = r.status == 206 and ctype.startswith("multipart/byteranges; boundary=")
        ok = ok and int(r.getheader("Content-Length")) == len(body)
        got = []
        if ok:
            msg = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body,
                                           policy=email.policy.HTTP)
            for part in msg.iter_parts():
                first, last = map(int, part["Content-Range"].split()[1].split("/")[0].split("-"))
                ok = ok and part["Content-Range"].endswith("/%d" % size)
                ok = ok and part.get_payload(decode=True) == data[first:last + 1]
                got.append((first, last))
        check(ok and got == want, f"multipart {spec}: {r.status} {ctype} {got}")

    # Overlapping or repeated ranges add up past the file, more than 16 ranges: the whole
    # file, 200.
    for spec in ["bytes=0-199999,100000-", "bytes=-200000,-200000",
                 "bytes=" + ",".join("%d-%d" % (i * 10, i * 10 + 1) for i in range(17))]:
        r, body = get({"Range": spec})
        check(r.status == 200 and body == data, f"whole file for {spec[:40]}: {r.status}")

    r, body = get({"Range": "bytes=%d-,%d-%d" % (size, size + 5, size + 9)})
    check(r.status == 416 and r.getheader("Content-Range") == "bytes */%d" % size,
          f"416 for a list nothing satisfies: {r.status} {r.getheader('Content-Range')}")

    # If-Range: the ETag or the date as sent: the ranges; another tag: the whole file.
    r, _ = get({})
    etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
    r, body = get({"Range": "bytes=0-9,20-29", "If-Range": etag})
    check(r.status == 206 and r.getheader("Content-Type").startswith("multipart/"),
          f"If-Range with the ETag: {r.status}")
    r, body = get({"Range": "bytes=10-19", "If-Range": lm})
    check(r.status == 206 and body == data[10:20], f"If-Range with the date: {r.status}")
    r, body = get({"Range": "bytes=0-9,20-29", "If-Range": '"stale"'})
    check(r.status == 200 and body == data, f"If-Range with another ETag: {r.status}")
    conn.close()
    check(batch_filled_by_a_part_head(url, data, ctx if url.scheme == "https" else None),
          "a part head that fills the 32 KiB batch exactly, then a part")
    sys.exit(1 if failures else 0)


def raw_get(url, ctx, rng):
    """One GET with a Range on a new connection; the response's raw bytes up to the close."""
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    if ctx:
        sock = ctx.wrap_socket(sock, server_hostname=url.hostname)
    sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: t\r\nRange: {rng}\r\n"
                 "Connection: close\r\n\r\n".encode())
    raw = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    sock.close()
    return raw


def batch_filled_by_a_part_head(url, data, ctx):
    """Three parts, the first two copied into weft-httpd's 32 KiB batch, sized so that the
    third part's head ends exactly at the batch's end: its bytes must still follow (over TLS
    they are read into the batch, which was full: a read of nothing, taken for a file that
    shrank, closed the connection there). The layout's lengths come from a probe whose
    numbers have as many digits."""
    def spec(l2):
        b = 16384 + l2
        return f"bytes=0-16383,16384-{b - 1},{b}-{b + 99}"

    def parts(raw):
        head, _, body = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 206") or b"boundary=" not in head:
            return head, None, []
        delim = b"\r\n--" + head.split(b"boundary=")[1].split(b"\r\n")[0]
        return head, delim, body.split(delim)  # "", three parts, "--\r\n"

    head, delim, pieces = parts(raw_get(url, ctx, spec(15700)))
    if len(pieces) != 5:
        return False
    part_heads = [len(delim) + p.index(b"\r\n\r\n") + 4 for p in pieces[1:4]]
    l2 = 32768 - (len(head) + 4 + part_heads[0] + 16384 + part_heads[1] + part_heads[2])
    if not 15000 < l2 <= 16384:
        return False
    head, delim, pieces = parts(raw_get(url, ctx, spec(l2)))
    b = 16384 + l2
    want = [data[:16384], data[16384:b], data[b:b + 100]]
    return (len(pieces) == 5 and pieces[4] == b"--\r\n" and
            [p.split(b"\r\n\r\n", 1)[1] for p in pieces[1:4]] == want)

if __name__ == "__main__":
    main()
