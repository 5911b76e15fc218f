#!/usr/bin/env python3
"""weft-kv driven by a real client library, redis-py, as an application drives it: the same
checks against the real redis-server (when it is installed: it proves the checks) and then
weft-kv.

    kv_clients.py WEFT_KV_BINARY [WORKERS]

Each part runs once per reply parser this redis-py has (its pure-Python one, and hiredis's
when python3-hiredis is installed) and per protocol (RESP2, and RESP3 with redis-py 5 or
later):
- the connection's handshake (a client name; HELLO 3 and CLIENT SETINFO with redis-py 5+);
- INFO as clients parse it (redis_version, loading, role, connected_clients, used_cpu_sys,
  cluster_enabled), ROLE, TIME, AUTH with no password configured (Redis's answers);
- replies of each RESP3 type as redis-py hands them over (dict, set, float, None);
- pipelines without and with a transaction, 300 commands over keys of every shard, replies in
  order, an error reply inside one leaving the others in place;
- WATCH through transaction(): a change by another client between WATCH and EXEC makes
  redis-py retry, and the retry succeeds;
- blocking pops: an element already there, a timeout, a pop served by another client's push,
  and a client whose socket timeout fires while it is blocked (the server forgets it);
- what weft-kv does not have fails cleanly, the connection still usable after: redis-py's Lock
  (SET NX PX works; its release is a Lua script), pub/sub, streams (XADD);
- SCAN through scan_iter, MEMORY USAGE, a 32 MB value, 200 connections at once.
No check depends on timing: a wait for another client's state polls INFO (10 s at most).
Exits 77 (skipped) without redis-py or when weft-kv cannot start. The python3 on PATH may
lack redis-py where Debian's has it (python3-redis): then Debian's runs this script."""
import inspect, os, shutil, subprocess, sys, tempfile, threading, time

try:
    import redis
except ImportError:
    debian = "/usr/bin/python3"
    if (os.path.exists(debian) and not os.environ.get("KV_CLIENTS_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath(debian)):
        os.environ["KV_CLIENTS_REEXEC"] = "1"
        os.execv(debian, [debian] + sys.argv)
    print("kv_clients: redis-py not installed (python3-redis): skipped")
    sys.exit(77)

from kvclient import free_port, wait_port


class Check:
    def __init__(self, name):
        self.name = name; self.bad = 0; self.n = 0

    def eq(self, what, got, want):
        self.n += 1
        if got != want:
            self.bad += 1
            print("%s: %s: got %r, want %r" % (self.name, what, got, want))

    def true(self, what, cond, got):
        """cond must hold; got is what it was about, printed when it does not."""
        self.n += 1
        if not cond:
            self.bad += 1
            print("%s: %s: not so for %r" % (self.name, what, got))

    def raises(self, what, fn, text):
        """fn() must raise a redis-py error whose text holds `text`."""
        try:
            got = fn()
        except redis.RedisError as e:
            got = "%s: %s" % (type(e).__name__, e)
            self.true(what, text in got, got)
            return
        self.eq(what, got, "an error with " + text)


def parsers():
    """(name, parser class) for each reply parser of this redis-py."""
    try:  # redis-py 5 and later
        from redis._parsers import _HiredisParser as hi, _RESP2Parser as py
    except ImportError:  # 4.x
        from redis.connection import HiredisParser as hi, PythonParser as py
    from redis.utils import HIREDIS_AVAILABLE
    return [("python", py)] + ([("hiredis", hi)] if HIREDIS_AVAILABLE else [])


HAS_RESP3 = "protocol" in inspect.signature(redis.Redis.__init__).parameters


def client(port, parser, proto, **kw):
    """A client of its own pool (redis-py 4 takes a parser only through a pool)."""
    if HAS_RESP3:
        kw["protocol"] = proto
    pool = redis.ConnectionPool(port=port, decode_responses=True, parser_class=parser, **kw)
    return redis.Redis(connection_pool=pool)


def wait_for(r, field, cond):
    """Polls INFO until cond(INFO[field]) holds (10 s at most); returns the last value."""
    for _ in range(1000):
        v = r.info()[field]
        if cond(v):
            return v
        time.sleep(0.01)
    return v


def server_info(r, ck):
    info = r.info()
    ck.true("INFO redis_version", str(info["redis_version"]).startswith("7."), info)
    ck.eq("INFO loading", info["loading"], 0)
    ck.eq("INFO role", info["role"], "master")
    ck.true("INFO connected_clients", info["connected_clients"] >= 1, info)
    ck.eq("INFO cluster_enabled", info["cluster_enabled"], 0)
    ck.true("INFO used_cpu_sys", "used_cpu_sys" in info, info)
    ck.eq("INFO replication", r.info("replication")["role"], "master")
    ck.eq("ROLE", list(r.role()), ["master", 0, []])
    t = r.time()
    ck.true("TIME", len(t) == 2 and t[0] > 1500000000 and 0 <= t[1] < 1000000, t)
    ck.eq("AUTH default", r.execute_command("AUTH", "default", "anything"), True)
    ck.raises("AUTH password", lambda: r.execute_command("AUTH", "pw"),
              "without any password configured")
    ck.raises("AUTH user", lambda: r.execute_command("AUTH", "nobody", "pw"),
              "invalid username-password pair")
    # A client given a password for a server without one: redis-py 5+ (and ioredis) take
    # Redis's answer as "no password needed" and go on; redis-py 4 raises it.
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"], password="pw")
    try:
        got = other.ping()
    except redis.RedisError as e:
        got = str(e)
    other.close()
    ck.true("a password given", got is True or "without any password configured" in got, got)
    ck.eq("client name", r.client_getname(), "kvc")
    ck.eq("after the errors", r.ping(), True)


def types(r, ck, proto):
    r.delete("t:s", "t:h", "t:set", "t:z", "t:f", "t:l")
    r.set("t:s", "v")
    ck.eq("GET", r.get("t:s"), "v")
    ck.eq("GET missing", r.get("t:none"), None)
    ck.eq("MGET", r.mget("t:s", "t:none"), ["v", None])
    r.hset("t:h", mapping={"a": "1", "b": "2"})
    ck.eq("HGETALL", r.hgetall("t:h"), {"a": "1", "b": "2"})
    ck.eq("HGETALL missing", r.hgetall("t:none"), {})
    r.sadd("t:set", "x", "y")
    ck.eq("SMEMBERS", r.smembers("t:set"), {"x", "y"})
    r.zadd("t:z", {"m": 1.5, "n": 2})
    ck.eq("ZSCORE", r.zscore("t:z", "m"), 1.5)
    ck.eq("ZSCORE missing", r.zscore("t:z", "none"), None)
    ck.eq("ZRANGE WITHSCORES", [tuple(x) for x in r.zrange("t:z", 0, -1, withscores=True)],
          [("m", 1.5), ("n", 2.0)])
    ck.eq("ZINCRBY", r.zincrby("t:z", 1, "n"), 3.0)
    ck.eq("ZMSCORE", r.zmscore("t:z", ["m", "none"]), [1.5, None])
    r.set("t:f", "1.5")
    ck.eq("INCRBYFLOAT", r.incrbyfloat("t:f", 1), 2.5)
    ck.eq("LPOP missing", r.lpop("t:l"), None)
    ck.eq("CONFIG GET", r.config_get("maxmemory-policy"), {"maxmemory-policy": "noeviction"})
    ck.eq("TYPE", r.type("t:z"), "zset")
    if proto == 3:
        ck.eq("HELLO proto", r.execute_command("HELLO")["proto"], 3)
        ck.eq("CLIENT INFO resp", str(r.client_info()["resp"]), "3")
    ck.raises("WRONGTYPE", lambda: r.lpush("t:s", "x"), "WRONGTYPE Operation against a key")
    ck.raises("unknown command", lambda: r.execute_command("NOSUCHCMD", "a"),
              "unknown command 'NOSUCHCMD'")


def pipelines(r, ck):
    for tx in (False, True):
        name = "pipeline(transaction=%s)" % tx
        p = r.pipeline(transaction=tx)
        want = []
        for i in range(100):  # 100 keys: every shard's, in turn
            p.set("p:%d" % i, i).incr("p:%d" % i).get("p:%d" % i)
            want += [True, i + 1, str(i + 1)]
        ck.eq(name, p.execute(), want)
        p = r.pipeline(transaction=tx)
        p.set("p:e", "x").lpush("p:e", "y").mget("p:e", "p:1").get("p:e")
        res = p.execute(raise_on_error=False)
        ck.eq(name + " with an error", [res[0], type(res[1]).__name__, res[2], res[3]],
              [True, "ResponseError", ["x", "2"], "x"])
        ck.true(name + " error text", str(res[1]).startswith("WRONGTYPE"), res[1])
    # A command refused as it is queued: EXEC is aborted, the connection goes on.
    p = r.pipeline(transaction=True)
    p.set("p:a", 1).execute_command("NOSUCHCMD")
    ck.raises("transaction aborted", p.execute, "unknown command")
    ck.eq("after the aborted transaction", (r.ping(), r.get("p:a")), (True, None))


def watch(r, r2, ck):
    r.set("w:k", 10)
    calls = []

    def add(pipe):
        v = int(pipe.get("w:k"))
        if not calls:
            r2.incr("w:k")  # another client changes the watched key: EXEC fails, retried
        calls.append(v)
        pipe.multi()
        pipe.set("w:k", v + 5)
    res = r.transaction(add, "w:k", "w:other")
    ck.eq("transaction() retried", (calls, res, r.get("w:k")), ([10, 11], [True], "16"))


def blocking(r, r2, port, parser, proto, ck):
    r.delete("b:l", "b:q", "b:none")
    r.rpush("b:l", "a")
    ck.eq("BLPOP ready", list(r.blpop(["b:none", "b:l"], timeout=1)), ["b:l", "a"])
    ck.eq("BLPOP timeout", r.blpop(["b:none"], timeout=0.05), None)
    got = []
    t = threading.Thread(target=lambda: got.append(r2.brpop("b:q", timeout=0)))
    t.start()
    wait_for(r, "blocked_clients", lambda n: n >= 1)
    r.lpush("b:q", "v")
    t.join(10)
    ck.eq("BRPOP served by a push", [list(x) for x in got], [["b:q", "v"]])
    # The client gives up first (its socket timeout) and closes: the server forgets it.
    r3 = client(port, parser, proto, socket_timeout=0.2)
    ck.raises("socket timeout in BLPOP", lambda: r3.blpop("b:none", timeout=0), "imeout")
    r3.close()
    ck.eq("blocked client gone", wait_for(r, "blocked_clients", lambda n: n == 0), 0)
    r.rpush("b:none", "kept")
    ck.eq("its element not taken", r.lrange("b:none", 0, -1), ["kept"])


def missing_features(r, ck, weft):
    r.delete("m:lock")
    lock = r.lock("m:lock", timeout=5)
    ck.eq("Lock acquire", lock.acquire(blocking=False), True)
    ck.eq("Lock taken", r.lock("m:lock", timeout=5).acquire(blocking=False), False)
    if weft:
        ck.raises("Lock release (a script)", lock.release, "unknown command 'EVALSHA'")
        ck.raises("EVAL", lambda: r.eval("return 1", 0), "unknown command 'EVAL'")
        ps = r.pubsub()  # redis-py 4 reads SUBSCRIBE's reply in get_message, 5+ at once
        ck.raises("SUBSCRIBE", lambda: (ps.subscribe("ch"), ps.get_message(timeout=5)),
                  "unknown command 'SUBSCRIBE'")
        ps.close()
        ck.raises("PUBLISH", lambda: r.publish("ch", "m"), "unknown command 'PUBLISH'")
        ck.raises("XADD", lambda: r.xadd("m:s", {"a": 1}), "unknown command 'XADD'")
    else:
        lock.release()
    r.delete("m:lock")
    ck.eq("connection usable after", r.ping(), True)


def keys_and_sizes(r, port, parser, proto, ck, first):
    r.delete(*["sc:%d" % i for i in range(30)])
    for i in range(30):
        r.set("sc:%d" % i, i)
    ck.eq("scan_iter", sorted(r.scan_iter(match="sc:*", count=7)),
          sorted("sc:%d" % i for i in range(30)))
    ck.eq("MEMORY USAGE missing", r.memory_usage("nokey"), None)
    r.delete("mu:h")
    r.hset("mu:h", mapping={"f%d" % i: "v" * 100 for i in range(50)})
    ck.true("MEMORY USAGE hash", r.memory_usage("mu:h", samples=0) > 50 * 100,
            r.memory_usage("mu:h", samples=0))
    if not first:  # the big value and the many connections: once per server is enough
        return
    big = "z" * (32 << 20)
    r.set("big", big)
    ck.eq("32 MB value", (r.strlen("big"), r.get("big") == big), (32 << 20, True))
    ck.true("MEMORY USAGE string", r.memory_usage("big") >= 32 << 20, r.memory_usage("big"))
    r.delete("big")
    conns = [client(port, parser, proto) for _ in range(200)]
    ck.eq("200 connections", all(c.ping() for c in conns), True)
    ck.true("connected_clients", r.info()["connected_clients"] >= 200, r.info()["connected_clients"])
    for c in conns:
        c.close()


def run(name, port, weft):
    ck = Check(name)
    first = True
    for pname, parser in parsers():
        for proto in (2, 3) if HAS_RESP3 else (2,):
            ck.name = "%s %s RESP%d" % (name, pname, proto)
            r = client(port, parser, proto, client_name="kvc")
            r2 = client(port, parser, proto)
            server_info(r, ck)
            types(r, ck, proto)
            pipelines(r, ck)
            watch(r, r2, ck)
            blocking(r, r2, port, parser, proto, ck)
            missing_features(r, ck, weft)
            keys_and_sizes(r, port, parser, proto, ck, first)
            r.close(); r2.close()
            first = False
    print("%s: redis-py %s, %d checks, %d failed" % (name, redis.__version__, ck.n, ck.bad))
    return ck.bad


def main():
    kv_bin = sys.argv[1]; workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    bad = 0
    server = shutil.which("redis-server")
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        if server:
            rp = free_port()
            rs = subprocess.Popen([server, "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", tmp, "--databases", "1"],
                                  stdout=subprocess.DEVNULL)
            procs.append(rs)
            wait_port(rp, rs)
            bad += run("redis-server", rp, False)
        else:
            print("kv_clients: redis-server not installed: weft-kv only")
        kp = free_port()
        ks = subprocess.Popen([kv_bin, "--port", str(kp), "--workers", str(workers)],
                              stdout=subprocess.DEVNULL)
        procs.append(ks)
        try:
            wait_port(kp, ks)
        except SystemExit:
            return 77
        bad += run("weft-kv(%d)" % workers, kp, True)
    finally:
        for p in procs:
            p.terminate()
        rcs = [p.wait() for p in procs]
        shutil.rmtree(tmp, ignore_errors=True)
    if rcs and rcs[-1] != 0:
        print("kv_clients: weft-kv exited with %d" % rcs[-1]); return 1
    return 1 if bad else 0


sys.exit(main())
