#!/usr/bin/env python3
"""weft-kv with 10,000 clients connected at once (issue 13 §5).

    kv_conns.py WEFT_KV_BINARY [WORKERS] [NCONNS]   (the backend: WEFT_BACKEND, as weft-kv's)

Opens NCONNS (10,000) connections, sends on every one a SET of its own key and a GET of it,
in one write each, and reads every reply (each connection's own pair, in order); INFO then
counts NCONNS + 1 clients. Every connection is closed, and INFO comes back
to one client. weft-kv exits 0 on SIGTERM (under ASan: no leak). Exits 77 (skipped) where the
file-descriptor limit cannot hold the connections (ulimit -n)."""
import os, resource, selectors, signal, socket, subprocess, sys, tempfile, time


def main():
    kv_bin = sys.argv[1]
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    nconns = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = nconns + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        print("kv_conns: the fd limit (%d) cannot hold %d connections: skipped" % (hard, nconns))
        return 77
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    err = tempfile.TemporaryFile()
    # Room for every connection and the ones that ask INFO (maxclients is 10,000 by default,
    # as Redis's, and refuses the clients past it).
    proc = subprocess.Popen([kv_bin, "--port", "0", "--workers", workers,
                             "--maxclients", str(nconns + 16)],
                            stdout=subprocess.PIPE, stderr=err)
    bad = 0
    conns = []
    try:
        line = proc.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1].split()[0])
        for i in range(nconns):
            s = socket.create_connection(("127.0.0.1", port))
            conns.append(s)
        # Every connection: SET its key, then GET it, in one write; then all replies are read.
        sel = selectors.DefaultSelector()
        want = {}
        for i, s in enumerate(conns):
            k, v = b"conn:%d" % i, b"v%d" % i
            s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v) +
                      b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
            s.setblocking(False)
            want[s.fileno()] = b"+OK\r\n$%d\r\n%s\r\n" % (len(v), v)
            sel.register(s, selectors.EVENT_READ, b"")
        got = {}
        deadline = time.monotonic() + 60  # a bound on a hang, not a timing assertion
        while len(got) < nconns and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                d = s.recv(4096)
                buf = key.data + d
                if not d or len(buf) >= len(want[s.fileno()]):
                    got[s.fileno()] = buf
                    sel.unregister(s)
                else:
                    sel.modify(s, selectors.EVENT_READ, buf)
        wrong = [fd for fd in want if got.get(fd) != want[fd]]
        if wrong:
            print("FAIL: %d of %d connections got wrong or no replies (e.g. %r)" %
                  (len(wrong), nconns, got.get(wrong[0])))
            bad += 1
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
        time.sleep(0.2)
        info = c.recv(65536)
        if b"connected_clients:%d\r\n" % (nconns + 1) not in info:
            print("FAIL: INFO with %d connected: %r" % (nconns + 1, info))
            bad += 1
        for s in conns:
            s.close()
        conns = []
        # The server notices the closes as it gets to them: poll INFO (bounded, no timing).
        for _ in range(600):
            c.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
            info = c.recv(65536)
            if b"connected_clients:1\r\n" in info:
                break
            time.sleep(0.05)
        else:
            print("FAIL: after the closes: %r" % info)
            bad += 1
        c.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
        n = c.recv(100)
        if n != b":%d\r\n" % nconns:
            print("FAIL: DBSIZE %r, want %d" % (n, nconns))
            bad += 1
        c.close()
        proc.send_signal(signal.SIGTERM)
        if proc.wait() != 0:
            print("FAIL: exit status %d" % proc.returncode)
            bad += 1
    finally:
        for s in conns:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if bad:
            err.seek(0)
            print(err.read().decode()[-3000:])
    print("kv_conns: %d connections at once, %d failures (%s workers, %s)" %
          (nconns, bad, workers, os.environ.get("WEFT_BACKEND", "epoll")))
    return 1 if bad else 0


sys.exit(main())
