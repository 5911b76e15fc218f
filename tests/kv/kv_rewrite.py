#!/usr/bin/env python3
"""weft-kv's AOF rewrite, checked against a model of the keyspace.

    kv_rewrite.py WEFT_KV_BINARY [WORKERS]      (the backend: WEFT_BACKEND, as weft-kv's)

A keyspace of strings, counters, lists and hashes (about 30,000 keys, some with TTLs) is
loaded and overwritten so that the files are mostly history; then BGREWRITEAOF runs while a
client keeps writing, in pipelined batches, every kind of write the log knows (SET, APPEND,
INCR, RPUSH, LPOP, HSET, HDEL, ZUNIONSTORE, ZRANGESTORE, DEL over several keys and shards,
RENAME, MSET, EXPIRE, PERSIST, once FLUSHDB), on keys the rewrite's walker has passed and keys it has not. A
Python model applies the same writes. Checked:
- every reply is the model's (so the server and the model agree as the test goes);
- each rewrite completes (INFO: aof_rewrites, status ok) and the files shrink;
- after SIGKILL and a restart from the rewritten files, the keyspace is the model's, key by
  key (type, value, whether it has a TTL) and in size;
- SIGKILL in the middle of a rewrite (INFO: in progress) loses nothing acknowledged under
  appendfsync always, and the restart drops the half-written file;
- with auto-aof-rewrite-percentage and -min-size set by CONFIG SET, a file that grows past
  them is rewritten by itself, and the restart from it is the model's.
"""
import os, random, shutil, signal, socket, subprocess, sys, tempfile, time


# The keyspace: NS strings, NL lists, NL hashes (KV_REWRITE_SCALE multiplies them).
SCALE = float(os.environ.get("KV_REWRITE_SCALE", "1"))
NS, NL = int(12000 * SCALE), int(1500 * SCALE)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(20)
        self.buf = b""

    def fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self):
        l = self.line()
        t = l[:1]
        if t in (b"+", b"-", b":"):
            return l
        if t == b"$":
            n = int(l[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.fill()
            d, self.buf = self.buf[:n], self.buf[n + 2:]
            return d
        if t == b"*":
            n = int(l[1:])
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(l)

    def pipe(self, cmds):
        out = []
        for c in cmds:
            out.append(b"*%d\r\n" % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return [self.reply() for _ in cmds]

    def cmd(self, *a):
        return self.pipe([a])[0]


def fmt(score):
    """A score as Redis writes it (%.17g; inf spelled out)."""
    return (b"%.17g" % score).replace(b"Infinity", b"inf")


class Model:
    """The keyspace as the writes leave it: key -> [type, value, has_ttl]."""

    def __init__(self):
        self.k = {}

    def apply(self, c, rep=None):
        """Applies write c; returns the reply Redis gives. SPOP's member is random: the
        server's reply `rep` says which."""
        op, k = c[0], self.k
        if op == "SET":
            k[c[1]] = ["string", c[2].encode(), False]
            return b"+OK"
        if op == "MSET":
            for i in range(1, len(c), 2):
                k[c[i]] = ["string", c[i + 1].encode(), False]
            return b"+OK"
        if op == "APPEND":
            e = k.setdefault(c[1], ["string", b"", False])
            e[1] += c[2].encode()
            return b":%d" % len(e[1])
        if op == "INCR":
            e = k.setdefault(c[1], ["string", b"0", False])
            e[1] = str(int(e[1]) + 1).encode()
            return b":" + e[1]
        if op == "RPUSH":
            e = k.setdefault(c[1], ["list", [], False])
            e[1] += [x.encode() for x in c[2:]]
            return b":%d" % len(e[1])
        if op == "LPOP":
            e = k.get(c[1])
            if not e:
                return None
            v = e[1].pop(0)
            if not e[1]:
                del k[c[1]]
            return v
        if op == "HSET":
            e = k.setdefault(c[1], ["hash", {}, False])
            new = 0
            for i in range(2, len(c), 2):
                new += c[i].encode() not in e[1]
                e[1][c[i].encode()] = c[i + 1].encode()
            return b":%d" % new
        if op == "HDEL":
            e = k.get(c[1])
            if not e:
                return b":0"
            n = 0
            for f in c[2:]:
                n += e[1].pop(f.encode(), None) is not None
            if not e[1]:
                del k[c[1]]
            return b":%d" % n
        if op == "SADD":
            e = k.setdefault(c[1], ["set", set(), False])
            n = len(e[1])
            e[1].update(x.encode() for x in c[2:])
            return b":%d" % (len(e[1]) - n)
        if op == "SREM":
            e = k.get(c[1])
            if not e:
                return b":0"
            n = sum(x.encode() in e[1] for x in set(c[2:]))
            e[1].difference_update(x.encode() for x in c[2:])
            if not e[1]:
                del k[c[1]]
            return b":%d" % n
        if op == "SPOP":
            e = k.get(c[1])
            if not e:
                return None
            if rep in e[1]:
                e[1].discard(rep)
                if not e[1]:
                    del k[c[1]]
                return rep
            return b"<not a member: %r>" % rep
        if op in ("ZADD", "ZINCRBY"):
            e = k.setdefault(c[1], ["zset", {}, False])
            new = c[3].encode() not in e[1]
            if op == "ZINCRBY":
                e[1][c[3].encode()] = e[1].get(c[3].encode(), 0.0) + float(c[2])
                return b"%s" % fmt(e[1][c[3].encode()])
            e[1][c[3].encode()] = float(c[2])
            return b":%d" % new
        if op in ("ZUNIONSTORE", "ZRANGESTORE"):
            # The sources' sum (scores are quarters: exact in any order), or ZRANGE 0 1.
            if op == "ZUNIONSTORE":
                res = {}
                for src in c[3:]:
                    for m, v in k.get(src, ["zset", {}, False])[1].items():
                        res[m] = res.get(m, 0.0) + v
            else:
                src = k.get(c[2], ["zset", {}, False])[1]
                res = dict(sorted(src.items(), key=lambda x: (x[1], x[0]))[:2])
            if res:
                k[c[1]] = ["zset", res, False]
            else:
                k.pop(c[1], None)
            return b":%d" % len(res)
        if op == "ZPOPMIN":
            e = k.get(c[1])
            if not e:
                return []
            m = min(e[1], key=lambda x: (e[1][x], x))
            s = e[1].pop(m)
            if not e[1]:
                del k[c[1]]
            return [m, fmt(s)]
        if op == "ZREM":
            e = k.get(c[1])
            if not e or c[2].encode() not in e[1]:
                return b":0"
            del e[1][c[2].encode()]
            if not e[1]:
                del k[c[1]]
            return b":1"
        if op == "DEL":
            n = 0
            for key in set(c[1:]):
                n += k.pop(key, None) is not None
            return b":%d" % n
        if op == "RENAME":
            if c[1] not in k:
                return b"-ERR no such key"
            k[c[2]] = k.pop(c[1])
            return b"+OK"
        if op == "EXPIRE":
            if c[1] not in k:
                return b":0"
            k[c[1]][2] = True
            return b":1"
        if op == "PERSIST":
            if c[1] not in k or not k[c[1]][2]:
                return b":0"
            k[c[1]][2] = False
            return b":1"
        if op == "FLUSHDB":
            k.clear()
            return b"+OK"
        raise ValueError(op)


def random_write(rng, m):
    """A write of any kind the log knows, on keys of its family (no WRONGTYPE)."""
    fam = rng.choice("sslhcSz")
    n = {"s": NS, "l": NL, "h": NL, "c": 200, "S": NL, "z": NL}[fam]
    key = lambda: "%s:%d" % (fam, rng.randrange(n))
    v = "v%d" % rng.randrange(1000)
    r = rng.random()
    if fam == "s":
        if r < 0.3:
            return ("SET", key(), v)
        if r < 0.45:
            return ("APPEND", key(), v)
        if r < 0.55:
            return ("MSET", key(), v, key(), v, key(), v)
    elif fam == "l":
        if r < 0.35:
            return ("RPUSH", key(), v, v + "b")
        if r < 0.55:
            return ("LPOP", key())
    elif fam == "h":
        if r < 0.35:
            return ("HSET", key(), "f%d" % rng.randrange(4), v)
        if r < 0.55:
            return ("HDEL", key(), "f%d" % rng.randrange(4))
    elif fam == "S":
        if r < 0.35:
            return ("SADD", key(), v, "m%d" % rng.randrange(5))
        if r < 0.45:
            return ("SREM", key(), v)
        if r < 0.55:
            return ("SPOP", key())
    elif fam == "z":
        if r < 0.3:
            return ("ZADD", key(), str(rng.randrange(-5, 5) / 4), "m%d" % rng.randrange(5))
        if r < 0.4:
            return ("ZINCRBY", key(), "0.5", "m%d" % rng.randrange(5))
        if r < 0.5:
            return ("ZPOPMIN", key())
        if r < 0.55:
            return ("ZREM", key(), "m%d" % rng.randrange(5))
        if r < 0.6:  # on one shard or across shards, the destination a source or not
            return ("ZUNIONSTORE", key(), "2", key(), key())
        if r < 0.64:
            return ("ZRANGESTORE", key(), key(), "0", "1")
    else:
        if r < 0.7:
            return ("INCR", key())
    if r < 0.7:
        k1, k2 = key(), key()
        return ("DEL", k1, k2) if k1 != k2 else ("DEL", k1)
    if r < 0.82:
        return ("RENAME", key(), key())
    if r < 0.92:
        return ("EXPIRE", key(), "100000")
    return ("PERSIST", key())


def check_state(conn, m, what):
    """The server's keyspace is the model's: every key's type, value and TTL, and the size."""
    bad = []
    keys = sorted(m.k)
    for i in range(0, len(keys), 500):
        part = keys[i:i + 500]
        cmds = []
        for key in part:
            t = m.k[key][0]
            cmds.append(("TYPE", key))
            cmds.append({"string": ("GET", key), "list": ("LRANGE", key, "0", "-1"),
                         "hash": ("HGETALL", key), "set": ("SMEMBERS", key),
                         "zset": ("ZRANGE", key, "0", "-1", "WITHSCORES")}[t])
            cmds.append(("TTL", key))
        rs = conn.pipe(cmds)
        for j, key in enumerate(part):
            t, val, ttl = m.k[key]
            rt, rv, rttl = rs[3 * j:3 * j + 3]
            if t == "hash" and isinstance(rv, list):
                rv = dict(zip(rv[0::2], rv[1::2]))
            if t == "set" and isinstance(rv, list):
                rv = set(rv)
            if t == "zset" and isinstance(rv, list):
                val = [x for m_, s_ in sorted(val.items(), key=lambda p: (p[1], p[0]))
                       for x in (m_, fmt(s_))]
            got_ttl = int(rttl[1:]) > 0
            if rt != b"+" + t.encode() or rv != val or got_ttl != ttl:
                bad.append((key, (t, val, ttl), (rt, rv, rttl)))
    n = int(conn.cmd("DBSIZE")[1:])
    if n != len(m.k):
        bad.append(("DBSIZE", len(m.k), n))
    for b in bad[:10]:
        print("FAIL %s: %r" % (what, b))
    return len(bad)


def info(conn, field):
    for l in conn.cmd("INFO", "persistence").split(b"\r\n"):
        if l.startswith(field.encode() + b":"):
            return l.split(b":", 1)[1].decode()
    return None


def main():
    kv_bin = sys.argv[1]
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    backend = os.environ.get("WEFT_BACKEND", "epoll")
    tmp = tempfile.mkdtemp()
    proc = None

    def start():
        nonlocal proc
        proc = subprocess.Popen([kv_bin, "--port", "0", "--workers", workers, "--appendonly", "yes", "--appendfsync", "always", "--dir", tmp,
                                 "--auto-aof-rewrite-percentage", "0",
                                 # the walk in steps of one bucket: a long walk, many batches
                                 # of writes in the middle of it
                                 "--aof-rewrite-step", "1"],
                                stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "err"), "a"))
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            proc.wait()
            # Say why, or the caller fails on a None with nothing to go on.
            with open(os.path.join(tmp, "err"), errors="replace") as f:
                print("FAIL: weft-kv did not start (exit %s); its stderr ends:\n%s"
                      % (proc.returncode, "".join(f.readlines()[-20:])))
            # And the files it found: sizes, and each log's last bytes (a torn command?).
            for name in sorted(os.listdir(tmp)):
                path = os.path.join(tmp, name)
                tail = b""
                if ".aof" in name:
                    with open(path, "rb") as f:
                        f.seek(max(0, os.path.getsize(path) - 80))
                        tail = f.read()
                print("  %s: %d bytes %r" % (name, os.path.getsize(path), tail))
            return None
        return Conn(int(line.rsplit(":", 1)[1].split()[0]))

    bad = 0
    try:
        c = start()
        if c is None:
            print("kv_rewrite: weft-kv did not start:")
            print(open(os.path.join(tmp, "err")).read())
            return 1
        rng = random.Random(int(os.environ.get("KV_REWRITE_SEED", "13")))
        m = Model()
        # A keyspace, then history: the strings overwritten five times over.
        load = [("SET", "s:%d" % i, "init%d" % i) for i in range(NS)]
        load += [("RPUSH", "l:%d" % i, "a", "b", "c") for i in range(NL)]
        load += [("HSET", "h:%d" % i, "f0", "x", "f1", "y") for i in range(NL)]
        load += [("EXPIRE", "s:%d" % i, "100000") for i in range(0, NS, 7)]
        for r in range(5):
            load += [("SET", "s:%d" % i, "over%d" % r) for i in range(0, NS, 3)]
            load += [("EXPIRE", "s:%d" % i, "100000") for i in range(0, NS, 21)]
        for i in range(0, len(load), 2000):
            part = load[i:i + 2000]
            for cmd, rep in zip(part, c.pipe(part)):
                want = m.apply(cmd, rep)
                if rep != want:
                    bad += 1
        size0 = int(info(c, "aof_current_size"))
        nwrites = 0

        def rewrite_under_load(flush_once):
            """rewrite_once, again until some batch of writes ran during the rewrite (a fast
            walk can end before the first batch is in: the test would prove little)."""
            total = 0
            for _ in range(8):
                overlapped, busy = rewrite_once(flush_once)
                total += overlapped
                flush_once = False
                if total:
                    break
            return total, busy

        def rewrite_once(flush_once):
            """BGREWRITEAOF, then batches of writes until every shard's rewrite is done."""
            nonlocal bad, nwrites
            before = int(info(c, "aof_rewrites"))
            overlapped = 0
            busy = None
            for n in range(20000):
                # The first batch comes in one pipeline with BGREWRITEAOF (and a second one),
                # so its writes run while the walk has barely begun; an INFO after every 5
                # writes tells whether the rewrite was still under way after them.
                batch = [random_write(rng, m) for _ in range(300)]
                if flush_once and n == 0:
                    batch[40] = ("FLUSHDB",)
                head = [("BGREWRITEAOF",), ("BGREWRITEAOF",)] if n == 0 else []
                cmds = list(head)
                for k in range(0, len(batch), 5):
                    cmds += batch[k:k + 5] + [("INFO", "persistence")]
                reps = c.pipe(cmds)
                if head:
                    if reps[0] != b"+Background append only file rewriting started":
                        print("FAIL BGREWRITEAOF: %r" % reps[0])
                        bad += 1
                    busy = reps[1]
                reps = reps[len(head):]
                for k, cmd in enumerate(batch):
                    rep = reps[k + k // 5]
                    want = m.apply(cmd, rep)
                    if rep != want:
                        bad += 1
                        if bad < 10:
                            print("FAIL reply %r: want %r got %r" % (cmd, want, rep))
                nwrites += len(batch)
                infos = reps[5::6]
                overlapped += sum(b"aof_rewrite_in_progress:1" in x for x in infos)
                done = int(info(c, "aof_rewrites")) - before
                if b"aof_rewrite_in_progress:0" in infos[-1] and done >= int(workers):
                    break
            status = info(c, "aof_last_bgrewrite_status")
            if status != "ok" or int(info(c, "aof_rewrites")) - before < int(workers):
                print("FAIL rewrite: status %s, rewrites %s" % (status, info(c, "aof_rewrites")))
                bad += 1
            return overlapped, busy

        ov1, busy = rewrite_under_load(False)
        size1 = int(info(c, "aof_current_size"))
        if not size1 < size0:
            print("FAIL compaction: %d bytes before, %d after" % (size0, size1))
            bad += 1
        if busy not in (b"-ERR Background append only file rewriting already in progress",
                        b"+Background append only file rewriting started"):
            print("FAIL second BGREWRITEAOF: %r" % busy)
            bad += 1
        if busy.startswith(b"+"):  # it was done already: let that one finish too
            while info(c, "aof_rewrite_in_progress") == "1":
                time.sleep(0.01)
        ov2, _ = rewrite_under_load(False)
        bad += check_state(c, m, "live, after two rewrites")
        # The rewritten files (and what followed) replayed.
        proc.kill(); proc.wait()
        c = start()
        bad += check_state(c, m, "restart after rewrites")
        # FLUSHDB in the middle of a rewrite, writes before and after it.
        ov3, _ = rewrite_under_load(True)
        bad += check_state(c, m, "live, FLUSHDB during a rewrite")
        proc.kill(); proc.wait()
        c = start()
        bad += check_state(c, m, "restart after FLUSHDB during a rewrite")
        # SIGKILL while a rewrite is under way: repopulate, start one, write, kill.
        for i in range(0, 20000, 2000):
            part = [("SET", "s:%d" % j, "k%d" % j) for j in range(i, i + 2000)]
            for cmd in part:
                m.apply(cmd)
            c.pipe(part)
        killed_during = False
        for attempt in range(8):  # until the kill lands while a rewrite is under way
            batch = [random_write(rng, m) for _ in range(5)]
            reps = c.pipe([("BGREWRITEAOF",)] + batch + [("INFO", "persistence")])
            for cmd, rep in zip(batch, reps[1:]):
                if rep != m.apply(cmd, rep):
                    bad += 1
            killed_during = b"aof_rewrite_in_progress:1" in reps[-1]
            if killed_during or attempt == 7:
                break
            while info(c, "aof_rewrite_in_progress") == "1":
                time.sleep(0.01)
        proc.kill(); proc.wait()
        c = start()
        bad += check_state(c, m, "restart after SIGKILL during a rewrite")
        left = [f for f in os.listdir(tmp) if f.endswith(".rewrite")]
        if left:
            print("FAIL: half-written rewrite left: %r" % left)
            bad += 1
        # The rewrite by itself: CONFIG SET the rule (100% growth, 256 KB at least), then
        # overwrite keys until a file has doubled; no BGREWRITEAOF.
        before = int(info(c, "aof_rewrites"))
        sets = [("CONFIG", "SET", "auto-aof-rewrite-percentage", "100"),
                ("CONFIG", "SET", "auto-aof-rewrite-min-size", "256kb")]
        if c.pipe(sets) != [b"+OK", b"+OK"] or \
                c.cmd("CONFIG", "GET", "auto-aof-rewrite-min-size") != [
                    b"auto-aof-rewrite-min-size", b"262144"]:
            print("FAIL: CONFIG SET auto-aof-rewrite-*")
            bad += 1
        auto = 0
        for r in range(200):  # each round logs about 340 KB: bounded, no timing
            batch = [("SET", "s:%d" % rng.randrange(NS), "auto%d" % r + "x" * 100)
                     for _ in range(2000)]
            for cmd, rep in zip(batch, c.pipe(batch)):
                if rep != m.apply(cmd, rep):
                    bad += 1
            auto = int(info(c, "aof_rewrites")) - before
            if auto >= 1 and info(c, "aof_rewrite_in_progress") == "0":
                break
        if auto < 1:
            print("FAIL: no rewrite by itself after %d rounds of writes" % (r + 1))
            bad += 1
        c.cmd("CONFIG", "SET", "auto-aof-rewrite-percentage", "0")
        proc.kill(); proc.wait()
        c = start()
        bad += check_state(c, m, "restart after a rewrite by itself")
        if ov1 + ov2 + ov3 == 0:
            print("FAIL: no batch of writes ran during a rewrite: the test proved little")
            bad += 1
        print("kv_rewrite: %d writes, rewrites seen under way after writes by %d/%d/%d probes, files %d -> %d bytes, "
              "killed %s a rewrite, a rewrite by itself after %d rounds of 2,000 SETs, %d failures (%s workers, %s)"
              % (nwrites, ov1, ov2, ov3, size0, size1, "during" if killed_during else "after",
                 r + 1, bad, workers, backend))
        proc.send_signal(signal.SIGTERM)
        if proc.wait() != 0:
            print("FAIL: exit status %d" % proc.returncode)
            bad += 1
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if bad:
            try:
                print(open(os.path.join(tmp, "err")).read()[-3000:])
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


sys.exit(main())
