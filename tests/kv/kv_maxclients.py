#!/usr/bin/env python3
"""weft-kv's maxclients under a low open-file limit (a hostile-client probe: under
`ulimit -n 256`, clients past the limit waited in the listen backlog with no answer, while
CONFIG GET said 10000).

    kv_maxclients.py WEFT_KV_BINARY [WORKERS]

The server starts with a descriptor limit of 128: it lowers maxclients to what fits (as Redis
does) and says so on stderr; CONFIG GET and INFO report the lowered value. 200 clients then
connect and PING: exactly maxclients get +PONG, every other one Redis's "-ERR max number of
clients reached" and a close, none is left without an answer. Once they are gone, a new
client is served again, and weft-kv exits 0 on SIGTERM."""
import resource, socket, subprocess, sys, tempfile

from kvclient import Conn


def limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def main():
    kv_bin = sys.argv[1]
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([kv_bin, "--port", "0", "--workers", workers],
                            stdout=subprocess.PIPE, stderr=err, preexec_fn=limit_fds)
    bad = 0
    conns = []
    try:
        line = proc.stdout.readline().decode()
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        first = Conn(port)
        got = first.cmd("CONFIG", "GET", "maxclients")
        maxclients = int(got[1])
        if not 1 <= maxclients < 128:
            print("maxclients %d: not fitted under the limit of 128" % maxclients); bad += 1
        info = first.cmd("INFO", "clients").decode()
        if "maxclients:%d\r\n" % maxclients not in info:
            print("INFO says: %r" % info); bad += 1
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
            conns.append(s)
        for s in conns:
            s.sendall(b"PING\r\n")
        served = refused = 0
        for s in conns:
            try:
                d = s.recv(100)
            except socket.timeout:
                d = b"(no answer)"
            if d.startswith(b"+PONG"):
                served += 1
            elif d == b"-ERR max number of clients reached\r\n":
                refused += 1
                if s.recv(100) != b"":
                    print("a refused client was not closed"); bad += 1
            else:
                print("answer: %r" % d); bad += 1
        # The first connection holds one of the places.
        if served != maxclients - 1 or served + refused != 200:
            print("served %d, refused %d, maxclients %d" % (served, refused, maxclients)); bad += 1
        for s in conns:
            s.close()
        conns = []
        again = None
        for _ in range(50):  # the server sees the closes a moment later
            c = Conn(port)
            try:
                again = c.cmd("PING")
            except OSError:
                again = None
            if again == b"+PONG":
                break
        if again != b"+PONG":
            print("not served after the others left: %r" % again); bad += 1
        print("kv_maxclients: maxclients %d, %d served, %d refused" % (maxclients, served, refused))
    finally:
        for s in conns:
            s.close()
        proc.terminate()
        rc = proc.wait()
        err.seek(0)
        text = err.read().decode()
        if "maxclients lowered from 10000" not in text:
            print("no word of the lowered maxclients on stderr: %r" % text[:300]); bad += 1
    if rc != 0:
        print("weft-kv exited with %d" % rc); return 1
    return 1 if bad else 0


sys.exit(main())
