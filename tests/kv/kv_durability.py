#!/usr/bin/env python3
"""weft-kv's durability, by crashing it: SIGKILL under load, then a restart from the AOF.

    kv_durability.py WEFT_KV_BINARY [WORKERS]      (the backend: WEFT_BACKEND, as weft-kv's)

Four clients each push 1, 2, 3, ... onto their own list, one acknowledged RPUSH at a time
(recording when each reply came), while redis-benchmark writes beside them; the server is
killed with SIGKILL. After the restart each list must be 1 .. n with no hole (a shard's log
keeps the order of its writes), and:
- appendfsync always: n >= the last value acknowledged (nothing acknowledged is lost; at most
  the push in flight more);
- appendfsync everysec: n <= the last acknowledged + 1, and whatever was lost was
  acknowledged in the last second before the kill (one second of everysec; a second more
  for a machine this loaded: the bound is what the policy promises, not a measured speed).
  SIGKILL loses only what the server had not yet written (the kernel keeps the rest), so this
  checks the writer's lag; a power cut, which also loses what was written and not yet
  fsynced, is beyond a test (the writer fsyncs once a second at most after a write).
Then the torn tail: the last command is cut at several bytes (as a crash in the middle of a
write leaves it); each start cuts it off with a log line and keeps everything before it. A
byte of garbage in the middle of the file stops the start with its offset.
"""
import os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from kvclient import resp, Conn as RawConn


class Conn(RawConn):
    def __init__(self, port):
        super().__init__(port, timeout=20)


def main():
    kv_bin = sys.argv[1]
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    have_bench = shutil.which("redis-benchmark") is not None
    tmp = tempfile.mkdtemp()
    procs = []
    bad = 0

    def start(d, *extra, expect_ok=True):
        p = subprocess.Popen([kv_bin, "--port", "0", "--workers", workers, "--appendonly", "yes",
                              "--dir", d] + list(extra), stdout=subprocess.PIPE,
                             stderr=open(os.path.join(d, "err"), "a"))
        procs.append(p)
        line = p.stdout.readline().decode()
        if "listening on" not in line:
            p.wait()
            if expect_ok:
                print("FAIL: weft-kv did not start:\n" + open(os.path.join(d, "err")).read())
            return p, None
        return p, int(line.rsplit(":", 1)[1].split()[0])

    try:
        for policy in ("always", "everysec"):
            d = os.path.join(tmp, policy)
            os.mkdir(d)
            p, port = start(d, "--appendfsync", policy)
            if port is None:
                return 1
            bench = None
            if have_bench:
                bench = subprocess.Popen(["redis-benchmark", "-p", str(port), "-q", "-n", "10000000",
                                          "-c", "8", "-P", "4", "-r", "1000", "-t", "set,lpush"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            acks = [[] for _ in range(4)]  # per client: (value, monotonic time of its reply)

            def pusher(k):
                try:
                    c = Conn(port)
                    for i in range(1, 10 ** 9):
                        r = c.cmd("RPUSH", "seq:%d" % k, str(i))
                        if r != b":%d" % i:
                            acks[k].append(("bad", r))
                            return
                        acks[k].append((i, time.monotonic()))
                except (OSError, EOFError):
                    pass

            threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            # Kill once every client has 300 acknowledged pushes (or after 20 s of trying).
            for _ in range(2000):
                if all(len(a) >= 300 for a in acks):
                    break
                time.sleep(0.01)
            t_kill = time.monotonic()
            p.send_signal(signal.SIGKILL)
            p.wait()
            for t in threads:
                t.join()
            if bench:
                bench.kill()
                bench.wait()
            p, port = start(d, "--appendfsync", policy)
            if port is None:
                return 1
            c = Conn(port)
            lost_total, worst_age = 0, 0.0
            for k in range(4):
                if acks[k] and acks[k][-1][0] == "bad":
                    print("FAIL %s: client %d got %r" % (policy, k, acks[k][-1][1]))
                    bad += 1
                    continue
                got = c.cmd("LRANGE", "seq:%d" % k, "0", "-1")
                n = len(got)
                if got != [str(i).encode() for i in range(1, n + 1)]:
                    print("FAIL %s: client %d's list is not 1..%d: %r" % (policy, k, n, got[:20]))
                    bad += 1
                acked = acks[k][-1][0] if acks[k] else 0
                if n > acked + 1:
                    print("FAIL %s: client %d: %d pushes found, %d acknowledged" %
                          (policy, k, n, acked))
                    bad += 1
                lost = max(0, acked - n)
                lost_total += lost
                if lost:
                    age = t_kill - acks[k][n][1]  # the first push lost: acknowledged when
                    worst_age = max(worst_age, age)
                    if policy == "always":
                        print("FAIL always: client %d lost %d acknowledged pushes (%d of %d)" %
                              (k, lost, n, acked))
                        bad += 1
                    elif age > 2.0:
                        print("FAIL everysec: client %d lost a push acknowledged %.2f s before "
                              "the kill" % (k, age))
                        bad += 1
            print("kv_durability: %s: SIGKILL after %s acknowledged pushes, %d lost (the oldest "
                  "acknowledged %.3f s before the kill)" %
                  (policy, "/".join(str(len(a)) for a in acks), lost_total, worst_age))
            # The torn tail, cut at several bytes of the last command.
            c.cmd("SET", "before", "kept")
            last = b"x" * 40
            c.cmd("HSET", "torn", "field", last)  # on some shard: find its file below
            p.send_signal(signal.SIGTERM)
            p.wait()
            files = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".aof")]
            rec = resp("HSET", "torn", "field", last)
            f = next(f for f in files if open(f, "rb").read().endswith(rec))
            whole = open(f, "rb").read()
            cuts = [1, 2, 5, len(rec) // 2, len(rec) - 3, len(rec) - 1]
            for cut in cuts:
                open(f, "wb").write(whole[:len(whole) - len(rec) + cut])
                open(os.path.join(d, "err"), "w").close()
                p, port = start(d, "--appendfsync", policy)
                if port is None:
                    return 1
                c = Conn(port)
                err = open(os.path.join(d, "err")).read()
                if ("truncated last command (%d bytes)" % cut) not in err:
                    print("FAIL torn at %d: no truncation line: %r" % (cut, err))
                    bad += 1
                if c.cmd("EXISTS", "torn") != b":0" or c.cmd("GET", "before") != b"kept":
                    print("FAIL torn at %d: state after the cut" % cut)
                    bad += 1
                p.send_signal(signal.SIGTERM)
                if p.wait() != 0:
                    print("FAIL torn at %d: exit status %d" % (cut, p.returncode))
                    bad += 1
                if len(open(f, "rb").read()) != len(whole) - len(rec):
                    print("FAIL torn at %d: the file was not cut" % cut)
                    bad += 1
            # Garbage in the middle: refused, with the offset.
            # (the '*' of a command near the middle becomes '?': no RESP, no inline command)
            data = bytearray(open(f, "rb").read())
            mid = data.rfind(b"\r\n*", 0, len(data) // 2) + 2
            data[mid] = ord("?")
            open(f, "wb").write(bytes(data))
            open(os.path.join(d, "err"), "w").close()
            p, port = start(d, "--appendfsync", policy, expect_ok=False)
            err = open(os.path.join(d, "err")).read()
            if port is not None or "not a valid AOF near byte" not in err:
                print("FAIL garbage in the middle: started=%s err=%r" % (port is not None, err))
                bad += 1
                if port is not None:
                    p.send_signal(signal.SIGTERM)
                    p.wait()
            print("kv_durability: %s: torn tail cut at %d points, garbage refused" %
                  (policy, len(cuts)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("kv_durability: %d failures (%s workers)" % (bad, workers))
    return 1 if bad else 0


sys.exit(main())
