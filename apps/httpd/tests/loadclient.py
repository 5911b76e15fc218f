#!/usr/bin/env python3
"""loadclient.py: the many-connection clients of weft-httpd's load tests (load_test.sh).

  loadclient.py conns PORT PID N      open N keep-alive connections, all at once; two rounds
                                      of GET /small.txt on every one of them; print the
                                      responses, the server's open fds at the peak and its
                                      memory per connection
  loadclient.py tls PORT PID N CAFILE open N keep-alive TLS connections, all at once (each one
                                      a full handshake); two rounds of GET /small.txt on every
                                      one; print as for conns
  loadclient.py slowloris PORT PID N  open N connections that send a request head one byte
                                      every 0.2 s and never finish it, while fast requests
                                      run beside them; print how the slow ones ended and the
                                      server's memory per slow connection

Nothing here asserts a time: the shell script checks counts and statuses.
"""
import os
import selectors
import socket
import sys
import time

REQ = b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_all(port, n):
    """n connected sockets, connected in batches (non-blocking connects, then a wait)."""
    socks = []
    sel = selectors.DefaultSelector()
    batch = 500
    for start in range(0, n, batch):
        pending = []
        for _ in range(min(batch, n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        left = len(pending)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                sel.unregister(key.fileobj)
                left -= 1
        for s in pending:
            try:
                sel.unregister(s)
            except KeyError:
                pass
        socks.extend(pending)
    sel.close()
    return socks


def round_trip(socks):
    """Sends one GET on every socket, then reads one response from each. Returns the count of
    200 responses with the right body, and of sockets that failed."""
    for s in socks:
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(REQ)
        s.setblocking(False)
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    good = bad = 0
    left = len(socks)
    deadline = time.monotonic() + 60
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                bad += 1
            else:
                bufs[s] += data
                head, sep, body = bufs[s].partition(b"\r\n\r\n")
                if not sep or len(body) < 12:
                    continue
                if head.startswith(b"HTTP/1.1 200") and body == b"hello world\n":
                    good += 1
                else:
                    bad += 1
            sel.unregister(s)
            left -= 1
    sel.close()
    return good, bad + left


def conns(port, pid, n):
    rss0 = rss_kib(pid)
    socks = open_all(port, n)
    g1, b1 = round_trip(socks)
    peak_fds = nfds(pid)
    g2, b2 = round_trip(socks)  # the same connections, still open
    rss1 = rss_kib(pid)
    print(f"round1 ok {g1} failed {b1}")
    print(f"round2 ok {g2} failed {b2}")
    print(f"server fds {peak_fds}")
    print(f"server rss {rss0} KiB idle, {rss1} KiB with {n} connections: "
          f"{(rss1 - rss0) / n:.1f} KiB per connection")
    for s in socks:
        s.close()


def tls_get(s):
    """One GET on a blocking TLS socket; True for a 200 with the right body."""
    s.sendall(REQ)
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and len(body) >= 12:
            return head.startswith(b"HTTP/1.1 200") and body == b"hello world\n"
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk


def tls(port, pid, n, cafile):
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    rss0 = rss_kib(pid)
    socks = []
    good = [0, 0]
    bad = [0, 0]
    for _ in range(n):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=20)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            socks.append(s)
        except OSError:
            bad[0] += 1
            continue
    for r in range(2):
        for s in socks:
            try:
                ok = tls_get(s)
            except OSError:
                ok = False
            good[r] += ok
            bad[r] += not ok
        if r == 0:
            peak_fds = nfds(pid)
    rss1 = rss_kib(pid)
    print(f"round1 ok {good[0]} failed {bad[0]}")
    print(f"round2 ok {good[1]} failed {bad[1]}")
    print(f"server fds {peak_fds}")
    print(f"server rss {rss0} KiB idle, {rss1} KiB with {n} TLS connections: "
          f"{(rss1 - rss0) / n:.1f} KiB per connection")
    for s in socks:
        s.close()


def slowloris(port, pid, n):
    rss0 = rss_kib(pid)
    socks = open_all(port, n)
    head = b"GET /small.txt HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 4000
    sent = {s: 0 for s in socks}
    ended = {}
    fast_good = fast_bad = 0
    peak_rss = rss0
    t_end = time.monotonic() + 30
    while len(ended) < n and time.monotonic() < t_end:
        # One more byte on every slow connection still open: each one keeps "talking".
        for s in socks:
            if s in ended:
                continue
            try:
                s.send(head[sent[s]:sent[s] + 1])
                sent[s] += 1
            except BlockingIOError:
                pass
            except OSError:
                ended[s] = "reset"
        # A fast client beside them: a fresh connection, a request, its response.
        for _ in range(20):
            try:
                f = socket.create_connection(("127.0.0.1", port), timeout=10)
                f.sendall(b"GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = f.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                f.close()
                if data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello world\n"):
                    fast_good += 1
                else:
                    fast_bad += 1
            except OSError:
                fast_bad += 1
        peak_rss = max(peak_rss, rss_kib(pid))
        # How the slow ones end: the server's 408 at the header timeout, then the close.
        for s in socks:
            if s in ended:
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                ended[s] = "reset"
                continue
            if data.startswith(b"HTTP/1.1 408"):
                ended[s] = "408"
            elif not data:
                ended[s] = "closed"
            else:
                ended[s] = "other"
        time.sleep(0.2)
    counts = {}
    for v in ended.values():
        counts[v] = counts.get(v, 0) + 1
    print(f"slow ended {len(ended)} of {n}: " +
          " ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"slow bytes sent per connection: max {max(sent.values())}")
    print(f"fast ok {fast_good} failed {fast_bad}")
    print(f"server rss {rss0} KiB idle, peak {peak_rss} KiB with {n} slow connections: "
          f"{(peak_rss - rss0) / n:.1f} KiB per connection")
    for s in socks:
        s.close()


def main():
    mode, port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if mode == "tls":
        tls(port, pid, n, sys.argv[5])
    else:
        {"conns": conns, "slowloris": slowloris}[mode](port, pid, n)


if __name__ == "__main__":
    main()
