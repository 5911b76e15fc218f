#!/usr/bin/env python3
"""BLPOP/BRPOP in Redis's order: the same scenarios against the real redis-server (when it is
installed) and weft-kv, each checked against its expected outcome, and the two transcripts
compared.

    kv_block.py WEFT_KV_BINARY [WORKERS]

- clients blocked on one key, each seen blocked (INFO's blocked_clients) before the next
  comes, are served in that order by single pushes, one multi-element push (RPUSH and
  LPUSH), and a pipeline of pushes; what is left stays in the list;
- BLPOP on several keys is served once, by the key pushed, and says which; BRPOP pops right;
- a timeout replies nil (RESP2 *-1, RESP3 _) and leaves no client queued;
- a client that disconnects while blocked is never served: the element stays in the list;
- SET, DEL and FLUSHALL keep the clients blocked; a later push serves them;
- two keys on different shards (with 2 workers: found through INFO), pushed at the
  same moment from two connections, many times: the client gets exactly one element and the
  other stays; several clients on both keys under concurrent pushes: every element is
  received once or left in a list, none lost or duplicated;
- weft-kv with its AOF (always, everysec): the pops that served clients replay after their
  pushes, so a restart finds the lists as they were.
Exits 77 (skipped) when weft-kv cannot start; without redis-server only weft-kv runs."""
import os, shutil, socket, subprocess, sys, tempfile, threading, time

def shard_counts(c):
    """Each shard's key count, from weft-kv's INFO keyspace ({} for Redis)."""
    out = {}
    for l in c.cmd("INFO", "keyspace").split(b"\r\n"):
        if l.startswith(b"shard") and b":keys=" in l:
            out[int(l[5:l.index(b":")])] = int(l.split(b"keys=")[1].split(b",")[0])
    return out

def key_on(c, prefix, shard, n):
    """A key that weft-kv places on `shard` (its hash is keyed at start: asked, not computed):
    each candidate is set and INFO says which shard's count grew. Any key for Redis or one
    shard."""
    if n < 2:
        return prefix
    for i in range(1000):
        k = "%s%d" % (prefix, i)
        if c.cmd("EXISTS", k) != b":0":
            continue
        before = shard_counts(c)
        c.cmd("SET", k, "1")
        after = shard_counts(c)
        c.cmd("DEL", k)
        if not after:
            return k  # not weft-kv
        if after.get(shard, 0) > before.get(shard, 0):
            return k
    raise SystemExit("no key found for shard %d" % shard)

from kvclient import free_port, wait_port, Conn as RawConn


class Conn(RawConn):
    """Replies as values (bulks' contents, arrays as lists)."""

    def reply(self):
        l = self.line(); t = l[:1]
        if t in (b"+", b"-", b":", b"_", b","): return l
        if t in (b"$", b"="):
            n = int(l[1:])
            if n < 0: return l
            while len(self.buf) < n + 2: self.fill()
            d, self.buf = self.buf[:n], self.buf[n + 2:]; return d
        if t in (b"*", b"~", b"%"):
            n = int(l[1:])
            if n < 0: return l
            return [self.reply() for _ in range(n * (2 if t == b"%" else 1))]
        raise ValueError(l)

class Check:
    def __init__(self, name):
        self.name = name; self.log = []; self.bad = 0
    def eq(self, what, got, want):
        self.log.append((what, got))
        if got != want:
            self.bad += 1
            print("%s: %s: got %r, want %r" % (self.name, what, got, want))

def blocked(c):
    for l in c.cmd("INFO", "clients").split(b"\r\n"):
        if l.startswith(b"blocked_clients:"):
            return int(l.split(b":")[1])
    return -1

def wait_blocked(c, n):
    for _ in range(500):
        if blocked(c) == n:
            return True
        time.sleep(0.01)
    return False

def block(port, ctl, n_before, *cmd):
    """A new client sending cmd, returned once the server counts it blocked."""
    b = Conn(port)
    b.send(*cmd)
    if not wait_blocked(ctl, n_before + 1):
        raise SystemExit("client %r never blocked" % (cmd,))
    return b

def scenarios(port, ck, workers):
    ctl = Conn(port)
    ctl.cmd("FLUSHALL")
    # FIFO on one key, single pushes.
    cs = [block(port, ctl, i, "BLPOP", "q", "0") for i in range(4)]
    for v in ("a", "b", "c", "d"):
        ck.eq("rpush q " + v, ctl.cmd("RPUSH", "q", v), b":1")
    for i, c in enumerate(cs):
        ck.eq("fifo client %d" % i, c.reply(), [b"q", "abcd"[i].encode()])
        c.close()
    ck.eq("q empty", ctl.cmd("LLEN", "q"), b":0")
    # One RPUSH of four serves three clients in order; the fourth element stays.
    cs = [block(port, ctl, i, "BLPOP", "m", "0") for i in range(3)]
    ck.eq("rpush m a b c d", ctl.cmd("RPUSH", "m", "a", "b", "c", "d"), b":4")
    for i, c in enumerate(cs):
        ck.eq("multi client %d" % i, c.reply(), [b"m", "abc"[i].encode()])
        c.close()
    ck.eq("m rest", ctl.cmd("LRANGE", "m", "0", "-1"), [b"d"])
    # LPUSH x y z: the list is z y x; two BLPOP clients get z then y; BRPOP would get x.
    cs = [block(port, ctl, i, "BLPOP", "l", "0") for i in range(2)]
    ck.eq("lpush l x y z", ctl.cmd("LPUSH", "l", "x", "y", "z"), b":3")
    ck.eq("lpush client 0", cs[0].reply(), [b"l", b"z"])
    ck.eq("lpush client 1", cs[1].reply(), [b"l", b"y"])
    ck.eq("l rest", ctl.cmd("LRANGE", "l", "0", "-1"), [b"x"])
    for c in cs: c.close()
    # A pipeline of pushes in one write serves the clients in order.
    cs = [block(port, ctl, i, "BRPOP", "p", "0") for i in range(3)]
    ctl.s.sendall(b"".join(Conn.enc("RPUSH", "p", v) for v in ("1", "2", "3")))
    ck.eq("pipeline replies", [ctl.reply() for _ in range(3)], [b":1"] * 3)
    for i, c in enumerate(cs):
        ck.eq("pipeline client %d" % i, c.reply(), [b"p", str(i + 1).encode()])
        c.close()
    # BRPOP takes the right end.
    c = block(port, ctl, 0, "BRPOP", "r", "0")
    ck.eq("rpush r a b c", ctl.cmd("RPUSH", "r", "a", "b", "c"), b":3")
    ck.eq("brpop", c.reply(), [b"r", b"c"])
    ck.eq("r rest", ctl.cmd("LRANGE", "r", "0", "-1"), [b"a", b"b"])
    c.close()
    # An EXEC that pushes to two keys (of one shard) serves a client blocked on both with the
    # key pushed first, whichever it listed first (weft-kv served the one listed first: a
    # hostile review against redis-server).
    k1, k2 = key_on(ctl, "first", 0, workers), key_on(ctl, "second", 0, workers)
    c = block(port, ctl, 0, "BLPOP", k1, k2, "0")
    ck.eq("exec of two pushes", [ctl.cmd("MULTI"), ctl.cmd("RPUSH", k2, "s1"),
                                 ctl.cmd("RPUSH", k1, "f1"), ctl.cmd("EXEC")],
          [b"+OK", b"+QUEUED", b"+QUEUED", [b":1", b":1"]])
    # (The key's name differs between servers: key_on asks each; compared as a verdict.)
    got = c.reply()
    ck.eq("served with the key pushed first", got == [k2.encode(), b"s1"] or got, True)
    ck.eq("the other push stays", ctl.cmd("LRANGE", k1, "0", "-1"), [b"f1"])
    ctl.cmd("DEL", k1, k2)
    c.close()
    # A transaction's pushes serve the blocked client once EXEC has run whole, never between
    # two of its commands: the client gets the last element pushed, the EXEC's replies count
    # every push, and a DEL in the same transaction finds the key still there (weft-kv served
    # the client after the first push; a hostile review, session 23).
    c = block(port, ctl, 0, "BLPOP", "tx", "0")
    ck.eq("multi", ctl.cmd("MULTI"), b"+OK")
    for v in ("a", "b", "c"):
        ck.eq("queued lpush " + v, ctl.cmd("LPUSH", "tx", v), b"+QUEUED")
    ck.eq("exec pushes", ctl.cmd("EXEC"), [b":1", b":2", b":3"])
    ck.eq("served after exec", c.reply(), [b"tx", b"c"])
    ck.eq("tx rest", ctl.cmd("LRANGE", "tx", "0", "-1"), [b"b", b"a"])
    ctl.cmd("DEL", "tx")
    c.close()
    c = block(port, ctl, 0, "BLPOP", "tx2", "0")
    ctl.cmd("MULTI")
    ctl.cmd("RPUSH", "tx2", "y")
    ctl.cmd("DEL", "tx2")
    ck.eq("exec push then del", ctl.cmd("EXEC"), [b":1", b":1"])
    ck.eq("still blocked after exec", blocked(ctl), 1)
    ck.eq("rpush tx2 z", ctl.cmd("RPUSH", "tx2", "z"), b":1")
    ck.eq("served by the next push", c.reply(), [b"tx2", b"z"])
    c.close()
    # Several keys: served by the one pushed, once; the others' pushes stay.
    c = block(port, ctl, 0, "BLPOP", "k1", "k2", "k3", "0")
    ck.eq("rpush k2", ctl.cmd("RPUSH", "k2", "v2"), b":1")
    ck.eq("multikey", c.reply(), [b"k2", b"v2"])
    ck.eq("rpush k1", ctl.cmd("RPUSH", "k1", "v1"), b":1")
    ck.eq("k1 stays", ctl.cmd("LRANGE", "k1", "0", "-1"), [b"v1"])
    ck.eq("multikey not blocked", blocked(ctl), 0)
    # ... and in key order when several have elements already.
    ctl.cmd("RPUSH", "k3", "v3")
    ck.eq("multikey order", c.cmd("BLPOP", "k2", "k3", "k1", "0"), [b"k3", b"v3"])
    c.close()
    ctl.cmd("DEL", "k1")
    # Timeouts: nil, and nobody left queued.
    c = Conn(port)
    ck.eq("timeout resp2", c.cmd("BLPOP", "t", "t2", "0.1"), b"*-1")
    ck.eq("timeout brpop", c.cmd("BRPOP", "t", "0.05"), b"*-1")
    c.cmd("HELLO", "3")
    ck.eq("timeout resp3", c.cmd("BLPOP", "t", "0.1"), b"_")
    ck.eq("timeout not blocked", blocked(ctl), 0)
    ctl.cmd("RPUSH", "t", "x")
    ck.eq("t after timeout", ctl.cmd("LRANGE", "t", "0", "-1"), [b"x"])
    c.send("BLPOP", "t3", "0")
    wait_blocked(ctl, 1)
    ctl.cmd("RPUSH", "t3", "y")
    ck.eq("served resp3", c.reply(), [b"t3", b"y"])
    c.close()
    # A client that leaves while blocked is never served: the element stays.
    c = block(port, ctl, 0, "BLPOP", "d", "0")
    c2 = block(port, ctl, 1, "BLPOP", "d", "0")
    c.close()
    ck.eq("gone unqueued", wait_blocked(ctl, 1), True)
    ck.eq("rpush d x", ctl.cmd("RPUSH", "d", "x"), b":1")
    ck.eq("next after gone", c2.reply(), [b"d", b"x"])
    c2.close()
    c = block(port, ctl, 0, "BLPOP", "d", "0")
    c.close()
    ck.eq("gone unqueued 2", wait_blocked(ctl, 0), True)
    ck.eq("rpush d y", ctl.cmd("RPUSH", "d", "y"), b":1")
    ck.eq("d keeps y", ctl.cmd("LRANGE", "d", "0", "-1"), [b"y"])
    # ... also one that sent more commands after it was blocked, then left: its end of file
    # comes after those bytes (weft-kv, peeking only, never saw it go: it stayed queued, the
    # next push popped an element for it, lost, and then ran its SET, after the close).
    c = block(port, ctl, 0, "BLPOP", "d3", "0")
    c.send("SET", "d3after", "x")
    time.sleep(0.1)
    c.close()
    ck.eq("gone after pipelining unqueued", wait_blocked(ctl, 0), True)
    ck.eq("rpush d3 v", ctl.cmd("RPUSH", "d3", "v"), b":1")
    ck.eq("d3 keeps v", ctl.cmd("LRANGE", "d3", "0", "-1"), [b"v"])
    ck.eq("the gone client's SET never ran", ctl.cmd("EXISTS", "d3after"), b":0")
    ctl.cmd("DEL", "d3")
    # A blocked client's commands sent while it waits (120 KB: the query buffer grows) run
    # once it is served, in order.
    c = block(port, ctl, 0, "BLPOP", "d4", "0")
    c.s.sendall(Conn.enc("INCR", "d4n") * 5000)
    time.sleep(0.1)
    ck.eq("rpush d4 w", ctl.cmd("RPUSH", "d4", "w"), b":1")
    ck.eq("served before its pipeline", c.reply(), [b"d4", b"w"])
    ck.eq("then its pipeline", [c.reply() for _ in range(5000)][-1], b":5000")
    c.close()
    ctl.cmd("DEL", "d4n")
    # Closed and pushed at once: whether the close is seen first or not, the element stays
    # (weft-kv gives back an element claimed for a client found gone). Redis may lose it (it
    # serves a client whose close it has not read yet): not in the transcript.
    if ck.name == "weft-kv":
        for i in range(20):
            c = block(port, ctl, 0, "BLPOP", "d2", "0")
            c.close()
            ctl.cmd("RPUSH", "d2", "z%d" % i)
            for _ in range(200):
                if ctl.cmd("LLEN", "d2") == b":1" and blocked(ctl) == 0:
                    break
                time.sleep(0.01)
            got = ctl.cmd("LRANGE", "d2", "0", "-1")
            if got != [b"z%d" % i]:
                ck.bad += 1; print("close then push, round %d: d2 holds %r" % (i, got))
            ctl.cmd("DEL", "d2")
    # SET and DEL keep the client blocked; a later push serves it.
    c = block(port, ctl, 0, "BLPOP", "s", "0")
    ck.eq("set s", ctl.cmd("SET", "s", "str"), b"+OK")
    ck.eq("rpush on string", ctl.cmd("RPUSH", "s", "v")[:9], b"-WRONGTYP")
    ck.eq("del s", ctl.cmd("DEL", "s"), b":1")
    ck.eq("still blocked", blocked(ctl), 1)
    ctl.cmd("SET", "s", "again")
    ck.eq("flushall", ctl.cmd("FLUSHALL"), b"+OK")
    ck.eq("still blocked after flushall", blocked(ctl), 1)
    ck.eq("rpush s", ctl.cmd("RPUSH", "s", "v"), b":1")
    ck.eq("served after del", c.reply(), [b"s", b"v"])
    c.close()
    # RENAME of a list onto a key with a blocked client serves it.
    c = block(port, ctl, 0, "BLPOP", "dst", "0")
    ctl.cmd("RPUSH", "src", "r1", "r2")
    ck.eq("rename", ctl.cmd("RENAME", "src", "dst"), b"+OK")
    ck.eq("served by rename", c.reply(), [b"dst", b"r1"])
    ck.eq("dst rest", ctl.cmd("LRANGE", "dst", "0", "-1"), [b"r2"])
    c.close()
    ctl.cmd("FLUSHALL")
    # Two shards: the client gets exactly one of two simultaneous pushes; the other stays.
    ka, kb = key_on(ctl, "ka", 0, workers), key_on(ctl, "kb", workers - 1, workers)
    ctl.cmd("SET", ka, "1"); ctl.cmd("SET", kb, "1")
    if workers > 1 and ck.name == "weft-kv":  # not in the transcript: Redis has no shards
        info = ctl.cmd("INFO", "keyspace")
        if not (b"shard0:keys=1" in info and b"shard1:keys=1" in info):
            ck.bad += 1; print("keys %s %s not on two shards: %r" % (ka, kb, info))
    ctl.cmd("DEL", ka, kb)
    pa, pb = Conn(port), Conn(port)
    wrong = 0
    for i in range(150):
        c = block(port, ctl, 0, "BLPOP", ka, kb, "0")
        go = threading.Barrier(2)
        def push(p, k):
            go.wait(); p.cmd("RPUSH", k, "v%d" % i)
        ts = [threading.Thread(target=push, args=(pa, ka)),
              threading.Thread(target=push, args=(pb, kb))]
        for t in ts: t.start()
        for t in ts: t.join()
        got = c.reply()
        la, lb = ctl.cmd("LRANGE", ka, "0", "-1"), ctl.cmd("LRANGE", kb, "0", "-1")
        left = [(ka.encode(), v) for v in la] + [(kb.encode(), v) for v in lb]
        if len(left) != 1 or got[1] != b"v%d" % i or got[0] in (k for k, _ in left):
            wrong += 1
            if wrong <= 5:
                print("cross-shard round %d: got %r, left %r" % (i, got, left))
        c.close()
        ctl.cmd("DEL", ka, kb)
        wait_blocked(ctl, 0)
    ck.eq("cross-shard exactly once", wrong, 0)
    # Several clients on both keys, concurrent pushes: nothing lost or duplicated.
    ncl, npush = 6, 40
    cs = [block(port, ctl, i, "BRPOP", kb if i % 2 else ka, ka if i % 2 else kb, "0")
          for i in range(ncl)]
    def pusher(p, k, tag):
        for j in range(npush // 2):
            p.cmd("RPUSH", k, "%s%d" % (tag, j))
    ts = [threading.Thread(target=pusher, args=(pa, ka, "a")),
          threading.Thread(target=pusher, args=(pb, kb, "b"))]
    for t in ts: t.start()
    for t in ts: t.join()
    got = [c.reply()[1] for c in cs]
    rest = ctl.cmd("LRANGE", ka, "0", "-1") + ctl.cmd("LRANGE", kb, "0", "-1")
    allv = sorted(got + rest)
    want = sorted([b"a%d" % j for j in range(npush // 2)] + [b"b%d" % j for j in range(npush // 2)])
    ck.eq("concurrent conserved", allv == want, True)
    for c in cs: c.close()
    pa.close(); pb.close()
    ck.eq("none blocked at the end", wait_blocked(ctl, 0), True)
    # Clients left blocked (on both shards) when the server stops: a clean exit, no leak.
    ctl.cmd("DEL", ka, kb)
    cs = [block(port, ctl, i, "BLPOP", ka, kb, "0") for i in range(2)]
    ctl.close()
    return cs

def run(argv, port, name, workers):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    ck = Check(name)
    try:
        wait_port(port, p)
        left = scenarios(port, ck, workers)
    finally:
        p.terminate()
        rc = p.wait(timeout=30)
    for c in left:
        c.close()
    if name == "weft-kv" and rc != 0:
        ck.bad += 1; print("weft-kv exited with %d" % rc)
    return ck

def aof_round(kv_bin, workers, tmp):
    """With the AOF on (always), served pops are logged after the push that served them: a
    restart finds the lists as they were."""
    bad = 0
    for pol in ("always", "everysec"):
        d = tempfile.mkdtemp(dir=tmp)
        port = free_port()
        argv = [kv_bin, "--port", str(port), "--workers", str(workers), "--appendonly", "yes",
                "--appendfsync", pol, "--dir", d]
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            wait_port(port, p)
            ctl = Conn(port)
            ka, kb = key_on(ctl, "ka", 0, workers), key_on(ctl, "kb", workers - 1, workers)
            cs = [block(port, ctl, i, "BLPOP", ka, kb, "0") for i in range(3)]
            ctl.cmd("RPUSH", kb, "1", "2"); ctl.cmd("RPUSH", ka, "3", "4", "5")
            got = [c.reply() for c in cs]
            before = (ctl.cmd("LRANGE", ka, "0", "-1"), ctl.cmd("LRANGE", kb, "0", "-1"))
        finally:
            p.terminate(); p.wait(timeout=30)
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            wait_port(port, p)
            ctl = Conn(port)
            after = (ctl.cmd("LRANGE", ka, "0", "-1"), ctl.cmd("LRANGE", kb, "0", "-1"))
        finally:
            p.terminate(); p.wait(timeout=30)
        want = [[kb.encode(), b"1"], [kb.encode(), b"2"], [ka.encode(), b"3"]]
        if got != want or before != after or before != ([b"4", b"5"], []):
            bad += 1
            print("aof %s: served %r, lists %r, after restart %r" % (pol, got, before, after))
    return bad

def main():
    kv_bin = sys.argv[1]; workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    redis = shutil.which("redis-server")
    tmp = tempfile.mkdtemp()
    bad = 0
    ref = None
    if redis:
        rp = free_port()
        ref = run([redis, "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", tmp, "--databases", "1"], rp, "redis", workers)
        bad += ref.bad
    else:
        print("kv_block: redis-server not installed: weft-kv alone")
    kp = free_port()
    kv = run([kv_bin, "--port", str(kp), "--workers", str(workers)], kp, "weft-kv", workers)
    bad += kv.bad
    bad += aof_round(kv_bin, workers, tmp)
    if ref and ref.log != kv.log:
        bad += 1
        for a, b in zip(ref.log, kv.log):
            if a != b:
                print("DIFF %s: redis %r, weft-kv %r" % (a[0], a[1], b[1]))
    shutil.rmtree(tmp, ignore_errors=True)
    print("kv_block: %d checks, %d bad (%d workers)" % (len(kv.log), bad, workers))
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
