#!/usr/bin/env python3
"""serve_and_stop.py: runs an example server until it says where it listens, checks one
request on it, stops it with a signal and checks that it exits 0 (a clean shutdown).

  serve_and_stop.py [--signal TERM|INT] [--send TEXT] [--expect TEXT] [--hold LINE] CMD...

The server must print "HOST:PORT" (127.0.0.1:N) on a stdout line once it listens. --send
(default "hello\\n") is written on a connection and --expect (default: the same) must come
back. With --hold LINE the connection stays open across the signal: the server must print
LINE (a regular expression) on stderr once it has the signal, still echo on the open
connection, and exit once the test closes it (echo_server's drain). No sleeps: every step
waits for the server's output or its socket; the 20 s limits only bound a hung server."""
import argparse
import queue
import re
import signal
import socket
import subprocess
import sys
import threading

LIMIT = 20.0


def reader(stream, q, copy):
    for line in iter(stream.readline, ""):
        copy.write(line)
        copy.flush()
        q.put(line)
    q.put(None)


def wait_line(q, pattern, what):
    while True:
        try:
            line = q.get(timeout=LIMIT)
        except queue.Empty:
            sys.exit(f"FAIL: no {what} within {LIMIT} s")
        if line is None:
            sys.exit(f"FAIL: the server ended its output before {what}")
        m = re.search(pattern, line)
        if m:
            return m


def exchange(conn, send, expect):
    conn.sendall(send)
    got = b""
    while len(got) < len(expect):
        chunk = conn.recv(len(expect) - len(got))
        if not chunk:
            break
        got += chunk
    if got != expect:
        sys.exit(f"FAIL: sent {send!r}, got {got!r}, want {expect!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signal", default="TERM", choices=["TERM", "INT"])
    ap.add_argument("--send", default="hello\n")
    ap.add_argument("--expect")
    ap.add_argument("--hold")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    send = a.send.encode()
    expect = (a.expect if a.expect is not None else a.send).encode()
    proc = subprocess.Popen(a.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = queue.Queue(), queue.Queue()
    for stream, q, copy in ((proc.stdout, out, sys.stdout), (proc.stderr, err, sys.stderr)):
        threading.Thread(target=reader, args=(stream, q, copy), daemon=True).start()
    try:
        port = int(wait_line(out, r"127\.0\.0\.1:(\d+)", "listening line").group(1))
        conn = socket.create_connection(("127.0.0.1", port), timeout=LIMIT)
        exchange(conn, send, expect)
        if a.hold:
            proc.send_signal(getattr(signal, "SIG" + a.signal))
            wait_line(err, a.hold, f"line {a.hold!r} on stderr")
            exchange(conn, send, expect)  # still served while the server drains
            conn.close()
        else:
            conn.close()
            proc.send_signal(getattr(signal, "SIG" + a.signal))
        rc = proc.wait(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"FAIL: still running {LIMIT} s after SIG{a.signal}")
    finally:
        if proc.poll() is None:
            proc.kill()
    if rc != 0:
        sys.exit(f"FAIL: exit status {rc} after SIG{a.signal}")
    print(f"ok: served, stopped by SIG{a.signal}, exit status 0")


if __name__ == "__main__":
    main()
