#!/usr/bin/env python3
"""rawhttp.py: the raw-socket client of weft-httpd's integration test (what curl cannot send).

  rawhttp.py PORT send HEXBYTES      send the bytes in one write, print each response's status
                                     line and body length, then "EOF" if the server closed, or
                                     "RESET" if it reset the connection
  rawhttp.py PORT partial HEXBYTES   send an incomplete head, print the first response line
  rawhttp.py PORT halfclose HEXBYTES as send, then end the sending side (shutdown SHUT_WR)
  rawhttp.py PORT slowget PATH PID SIZE
                                     GET PATH, read a little, SIGTERM the server PID, read the
                                     rest; print "complete" if SIZE body bytes arrived
  rawhttp.py PORT abort PATH         GET PATH with a small receive buffer, read a little and
                                     reset the connection; print "aborted"
  rawhttp.py PORT shrink PATH FILE SIZE
                                     GET PATH (FILE on disk) with a small receive buffer, read a
                                     little, truncate FILE to SIZE, read to the end; print "cut
                                     short at N of M" when the server closed before the M bytes
                                     it announced, "complete" when they all came
  rawhttp.py PORT chunkedge         pipelined GETs, then a chunked GET whose head ends at byte
                                     16384 (its body in a second write); print "all answered
                                     200", or how many were and the last statuses
  rawhttp.py PORT trickle SECONDS [INTERVAL]
                                     a GET whose 1000-byte body comes a byte every INTERVAL s
                                     (0.2); print "closed after N bytes" once the server
                                     closes, or "still open" after SECONDS
  rawhttp.py PORT pipeline N PATH    N GETs of PATH in one write, the last with Connection:
                                     close; print how many 200s came back
"""
import time
import os
import signal
import socket
import struct
import sys


def read_responses(sock, stop_after=None):
    """Reads responses (Content-Length or chunked) until EOF or stop_after responses; a
    chunked body is decoded, and its length printed is the decoded one."""
    buf = b""
    out = []
    eof = False

    def more():
        nonlocal buf, eof
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            eof = "RESET"
            return False
        if not chunk:
            eof = True
            return False
        buf += chunk
        return True

    while stop_after is None or len(out) < stop_after:
        while b"\r\n\r\n" not in buf and more():
            pass
        if b"\r\n\r\n" not in buf:
            break
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = 0
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            if name.strip().lower() == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
        no_body = lines[0].startswith(b"HTTP/1.1 304") or b" HEAD " in lines[0]
        if chunked and not no_body:
            body = b""
            while True:
                while b"\r\n" not in buf and more():
                    pass
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(buf) < size + 2 and more():
                    pass
                if size == 0:
                    buf = buf[2:]  # the final CRLF (no trailers from weft-httpd)
                    break
                body += buf[:size]
                buf = buf[size + 2:]
            out.append((lines[0].decode(), body))
            continue
        if no_body:
            length = 0
        while len(buf) < length and more():
            pass
        out.append((lines[0].decode(), buf[:length]))
        buf = buf[length:]
    return out, eof


def read_to_close(sock):
    """Every byte the socket yields until the peer's end of stream. (A bytearray: adding to
    bytes copies the whole, and reading 8 MB through a 64 KB window took seconds of it.)"""
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def main():
    port = int(sys.argv[1])
    cmd = sys.argv[2]
    if cmd == "abort":
        # The receive buffer is set before the connect (it sets the window scale), so the
        # server can have sent only its own send buffer and this one when the reset comes.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {sys.argv[3]} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # linger 0: a reset
        print("aborted")
        return
    if cmd == "shrink":
        # A file that shrinks while it is sent: the announced length cannot be kept, so the
        # server must close early (the client sees a short body), never pad or hang.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {sys.argv[3]} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = sock.recv(4096)
        os.truncate(sys.argv[4], int(sys.argv[5]))
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        print("complete" if len(body) == length else f"cut short at {len(body)} of {length}")
        return
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if cmd == "tail":
        # Everything after the first head, up to the close the request asks for: a HEAD
        # response's body must be empty (curl -X HEAD would wait for the announced length).
        sock.sendall(bytes.fromhex(sys.argv[3]))
        head, sep, body = read_to_close(sock).partition(b"\r\n\r\n")
        print(len(body) if sep else "no head")
        return
    if cmd in ("send", "halfclose"):
        sock.sendall(bytes.fromhex(sys.argv[3]))
        if cmd == "halfclose":
            sock.shutdown(socket.SHUT_WR)
        responses, eof = read_responses(sock)
        for status, body in responses:
            print(status, len(body))
        if eof:
            print("RESET" if eof == "RESET" else "EOF")
    elif cmd == "trickle":
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        end = time.monotonic() + float(sys.argv[3])
        interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
        sent = 0
        try:
            while time.monotonic() < end and sent < 1000:
                sock.sendall(b"x")
                sent += 1
                sock.settimeout(interval)
                try:
                    if not sock.recv(65536):
                        print(f"closed after {sent} bytes")
                        return
                except socket.timeout:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            print(f"closed after {sent} bytes")
            return
        print("still open")
    elif cmd == "chunkedge":
        # Pipelined GETs, then a chunked GET whose head ends exactly at byte 16384 (the
        # server's input buffer), its body in a second write: print every status, in order.
        small = b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        base = b"GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX-Pad: "
        k = (16384 - 2000) // len(small)
        pad = 16384 - k * len(small) - len(base) - 4
        sock.sendall(small * k + base + b"p" * pad + b"\r\n\r\n")
        time.sleep(0.3)
        sock.sendall(b"5\r\nhello\r\n0\r\n\r\n" + small.replace(b"t\r\n\r\n", b"t\r\nConnection: close\r\n\r\n"))
        responses, eof = read_responses(sock)
        statuses = [status.split(" ")[1] for status, _ in responses]
        if len(statuses) == k + 2 and set(statuses) == {"200"}:
            print("all answered 200")
        else:
            print(f"{len(statuses)} of {k + 2} answered, the last: {statuses[-3:]}")
    elif cmd == "pipeline":
        n, path = int(sys.argv[3]), sys.argv[4]
        req = f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        sock.sendall(req * (n - 1) + req.replace(b"t\r\n\r\n", b"t\r\nConnection: close\r\n\r\n"))
        responses, _ = read_responses(sock)
        print(sum(1 for status, _ in responses if status.startswith("HTTP/1.1 200")))
    elif cmd == "partial":
        sock.sendall(bytes.fromhex(sys.argv[3]))
        data = sock.recv(65536)
        print(data.split(b"\r\n", 1)[0].decode() if data else "EOF")
    elif cmd == "slowget":
        path, pid, size = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        first = sock.recv(4096)
        os.kill(pid, signal.SIGTERM)
        head, _, body = (first + read_to_close(sock)).partition(b"\r\n\r\n")
        print("complete" if len(body) == size else f"short {len(body)} of {size}")


if __name__ == "__main__":
    main()
