#!/usr/bin/env python3
"""weft-kv's shutdown under cross-shard load: eight clients pipeline MSETs whose keys span
the shards (each a transaction with a holder task on the other shards) beside plain SETs,
and the server is told to stop (SHUTDOWN, or SIGTERM) in the middle; it must exit, with
status 0, within 10 s. A cancelled connection task waiting for a shard's holder used to poll
with sched_yield, which never let the holder (on its own worker) run to let go: the process
spun at 100% CPU for ever, about one stop in five to ten.

    kv_shutdown.py WEFT_KV_BINARY [WORKERS] [ROUNDS]"""
import os, signal, socket, subprocess, sys, threading, time

from kvclient import free_port, wait_port


def enc(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def client(port, i, stop):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        mset = enc(b"mset", *[x for k in range(8) for x in (b"k%d_%d" % (i, k), b"v")])
        batch = (mset + enc(b"set", b"x%d" % i, b"v")) * 50
        while not stop.is_set():
            s.sendall(batch)
            got = 0
            while got < 100:
                d = s.recv(65536)
                if not d:
                    return
                got += d.count(b"+OK")
    except OSError:
        pass  # the server went away: what the test wants


def main():
    binary = sys.argv[1]
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    failed = 0
    for r in range(rounds):
        port = free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--workers", workers],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, proc)
        stop = threading.Event()
        ts = [threading.Thread(target=client, args=(port, i, stop), daemon=True) for i in range(8)]
        for t in ts:
            t.start()
        time.sleep(0.8)
        how = "SHUTDOWN" if r % 2 == 0 else "SIGTERM"
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=3)
                c.sendall(enc(b"shutdown"))
                c.recv(100)
                c.close()
            except OSError:
                pass
        try:
            rc = proc.wait(timeout=10)
            if rc != 0:
                print("FAIL round %d (%s): exit status %d" % (r, how, rc))
                failed += 1
        except subprocess.TimeoutExpired:
            print("FAIL round %d (%s): still running 10 s after the stop" % (r, how))
            proc.kill()
            proc.wait()
            failed += 1
        stop.set()
        for t in ts:
            t.join(timeout=10)
    if failed:
        return 1
    print("kv_shutdown: %d stops under cross-shard load, each exited in time" % rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
