"""What the weft-kv test scripts share: RESP encoding, a raw connection's buffered reads, and
starting a server on a free port. Each script keeps its own reply parsing (some compare
replies byte for byte with their type prefixes, others want the values)."""
import socket, time


def resp(*args):
    """A command as a RESP array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc):
    """Until the server `proc` accepts on `port` (10 s at most); exits if it died."""
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit("server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


class Conn:
    """A raw RESP connection: buffered reads of lines and bulks. reply() gives what most
    scripts want; the differential tests override it to keep every reply's type."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(timeout)
        self.buf = b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def bulk(self, n):
        """The next n bytes and their CRLF: a bulk string's contents."""
        while len(self.buf) < n + 2:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n + 2:]
        return d

    def reply(self):
        """The reply as its first line; a bulk's contents (None for a null bulk); an array
        of bulks as a list of their contents."""
        l = self.line()
        if l[:1] == b"*":
            return [self.bulk(int(self.line()[1:])) for _ in range(int(l[1:]))]
        if l[:1] == b"$":
            n = int(l[1:])
            return None if n < 0 else self.bulk(n)
        return l

    enc = staticmethod(resp)

    def send(self, *args):
        self.s.sendall(resp(*args))

    def cmd(self, *args):
        self.send(*args)
        return self.reply()

    def close(self):
        self.s.close()
