#!/usr/bin/env python3
"""framing_server.py: a one-connection-at-a-time HTTP/1.1 server for the client's test, with
the response framings weft-httpd never sends. Prints its port, then serves until killed:
  /chunked   a chunked body (extensions, a trailer)   /close   no length: the body ends at close
"""
import socket

CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n")
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the close"

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    conn.settimeout(5)
    try:
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                break
            req += chunk
        path = req.split(b" ")[1] if b" " in req else b"/"
        conn.sendall(CHUNKED if path == b"/chunked" else CLOSE)
    except OSError:
        pass
    conn.close()
