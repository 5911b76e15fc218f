#!/usr/bin/env python3
"""Differential test of weft-kv against the real redis-server: the same script of commands
(every command weft-kv has, with wrong types, bad arguments and errors) is sent to both over
raw RESP, and the replies are compared one by one, byte for byte.

    kv_diff.py WEFT_KV_BINARY [WORKERS]

The script runs twice: in RESP2, then on connections switched to RESP3 by HELLO 3 (maps,
sets, nulls, verbatim strings, doubles and booleans parsed by type), with the commands whose
replies change type in RESP3 added (CONFIG GET, COMMAND DOCS, INFO, CLIENT LIST, ...).
Starts both servers on free ports itself; exits 77 (skipped) when redis-server is missing.
Replies that depend on time or on hash order (TTL values, KEYS, HGETALL, SCAN) are compared
after normalising: TTLs by range, unordered arrays sorted."""
import os, random, shutil, socket, subprocess, sys, tempfile, threading, time

from kvclient import free_port, wait_port, Conn as RawConn


class Conn(RawConn):
    """Replies with their type prefixes, for byte-for-byte comparison."""

    def reply(self):
        l = self.line(); t = l[:1]
        # RESP3's simple types: null, double, boolean, big number.
        if t in (b"+", b"-", b":", b"_", b",", b"#", b"("): return l
        if t in (b"$", b"=", b"!"):  # bulk, verbatim, bulk error
            n = int(l[1:])
            if n < 0: return l
            while len(self.buf) < n + 2: self.fill()
            d, self.buf = self.buf[:n], self.buf[n + 2:]; return l + b" " + d
        if t in (b"*", b"~", b">"):  # array, set, push
            n = int(l[1:])
            return [l] + [self.reply() for _ in range(max(n, 0))]
        if t == b"%":  # map: n pairs
            n = int(l[1:])
            return [l] + [self.reply() for _ in range(2 * n)]
        raise ValueError(l)

UNORDERED = {"keys", "hgetall", "scan_keys"}

def norm(cmd, r):
    name = cmd[0].lower()
    if name in ("ttl", "pttl") and isinstance(r, bytes) and r.startswith(b":"):
        v = int(r[1:]); return b":" + (b"pos" if v > 0 else str(v).encode())
    if name in ("keys", "smembers", "hkeys", "hvals", "sinter", "sunion", "sdiff") \
            and isinstance(r, list):
        return [r[0]] + sorted(r[1:])
    if name == "spop" and len(cmd) == 3 and isinstance(r, list):  # all of a set: any order
        return [r[0]] + sorted(r[1:])
    if name == "srandmember":  # random picks: only the reply's type and length compare
        if isinstance(r, list):
            return [r[0]] + [b"$member"] * (len(r) - 1)
        return b"$member" if r[:1] == b"$" and r[1:2] != b"-" else r
    if name == "zrandmember" and isinstance(r, list):  # random picks: type and length
        return [r[0]] + [b"pair" if isinstance(x, list) else b"$member" for x in r[1:]]
    if name == "zrandmember" and len(cmd) == 2 and r[:1] == b"$" and r[1:2] != b"-":
        return b"$member"
    if name in ("sscan", "hscan", "zscan") and isinstance(r, list) and len(r) == 3:
        # A page's order is the hash table's: the elements (pairs for HSCAN and ZSCAN) sorted,
        # and a cursor compared only as done (0) or not.
        els = r[2][1:]
        if name != "sscan":
            els = list(zip(els[0::2], els[1::2]))
        return [r[0], r[1] if r[1] == b"$1 0" else b"$cursor", [r[2][0]] + sorted(els)]
    if name in ("zunion", "zinter", "zdiff") and isinstance(r, list) and \
            not any(a.lower() == "withscores" for a in cmd):
        return r  # ordered by score then member: compared as is
    if name == "command" and len(cmd) > 2 and cmd[1].upper() == "INFO" and isinstance(r, list):
        # name, arity, flags and key positions: weft-kv has no ACL categories, tips, key specs
        return [r[0]] + [x[:7] if isinstance(x, list) else x for x in r[1:]]
    if name == "hgetall" and isinstance(r, list):
        pairs = sorted(zip(r[1::2], r[2::2])); return [r[0]] + pairs
    return r

class TxNorm:
    """Follows the script's transactions, so that EXEC's elements are normalised as the
    replies of the commands queued (SMEMBERS, TTL, ... inside EXEC)."""
    RUN_NOW = {"exec", "discard", "multi", "watch", "quit"}

    def __init__(self):
        self.queue = None

    def __call__(self, cmd, r):
        name = cmd[0].lower()
        if name == "multi" and len(cmd) == 1 and self.queue is None:
            self.queue = []
        elif name in ("exec", "discard") and len(cmd) == 1:
            q, self.queue = self.queue, None
            if name == "exec" and q is not None and isinstance(r, list):
                return [r[0]] + [norm(c, x) for c, x in zip(q, r[1:])]
        elif name == "exec" and self.queue is not None:
            self.queue = None  # EXEC's arity error discards the transaction
        elif self.queue is not None and name not in self.RUN_NOW:
            self.queue.append(cmd)
        return norm(cmd, r)

def hello_norm(r):
    """HELLO's reply with the client id (which differs) taken out."""
    if isinstance(r, list):
        return [x if i == 0 or r[i - 1] != b"$2 id" else b":ID" for i, x in enumerate(r)]
    return r

# Replies that change type in RESP3 (maps, sets, verbatim strings, nulls), beyond the script's.
RESP3_EXTRA = [
    ("HSET", "h3", "a", "1", "b", "2"), ("HGETALL", "h3"), ("HGETALL", "nope"),
    ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "save"), ("CONFIG", "GET", "nosuch"),
    ("COMMAND", "INFO", "nosuchcommand"), ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "c3"),
    ("CLIENT", "GETNAME"), ("LPOP", "nope", "3"), ("RPOP", "nope"), ("GET", "nope"),
    ("MGET", "nope", "h3", "nope2"), ("SET", "s3", "v", "GET"), ("SET", "s3", "w", "GET"),
    ("BLPOP", "nope", "0.01"), ("GETDEL", "nope"), ("GETSET", "nope", "x"),
    ("HELLO", "3", "SETNAME", "a b"), ("HELLO", "3", "AUTH", "default"), ("FLUSHDB",),
    ("RANDOMKEY",), ("KEYS", "*"), ("DBSIZE",),
]

def resp3_typed(r):
    """How many parts of a reply have a type RESP2 does not (null, map, set, verbatim...)."""
    if isinstance(r, list):
        return sum(resp3_typed(x) for x in r)
    if isinstance(r, tuple):
        return resp3_typed(r[0]) + resp3_typed(r[1])
    return 1 if r[:1] in (b"_", b"%", b"~", b"=", b",", b"#") else 0

def kind(r):
    """The type and shape of a reply whose content differs between the servers."""
    return r[:1] + r[r.index(b" ") + 1:r.index(b" ") + 5] if r[:1] == b"=" else r

def resp3_types(a, b):
    """Replies whose bytes differ (texts of the server itself) compared by type: INFO and
    CLIENT LIST are verbatim strings (=n txt:...), COMMAND DOCS a map of maps."""
    bad = 0
    for cmd in [("INFO", "keyspace"), ("CLIENT", "LIST"), ("INFO",)]:
        ra, rb = a.cmd(*cmd), b.cmd(*cmd)
        if kind(ra) != kind(rb):
            bad += 1; print("DIFF %r\n  redis:   %r\n  weft-kv: %r" % (cmd, kind(ra), kind(rb)))
    ra, rb = a.cmd("COMMAND", "DOCS", "get"), b.cmd("COMMAND", "DOCS", "get")
    if ra[:2] != rb[:2] or ra[2][0][:1] != rb[2][0][:1]:  # %1, the name, a map
        bad += 1; print("DIFF COMMAND DOCS get\n  redis:   %r\n  weft-kv: %r" % (ra, rb))
    ra, rb = a.cmd("COMMAND", "INFO", "get"), b.cmd("COMMAND", "INFO", "get")
    if ra[1][:4] != rb[1][:4]:  # *10, name, arity, and the flags as a set
        bad += 1; print("DIFF COMMAND INFO get\n  redis:   %r\n  weft-kv: %r" % (ra, rb))
    return bad

def edge_cases():
    """Misuse at the edges: the expiry commands at the ends of int64 (each on a fresh key, so
    one that deletes it shows), option errors before a bad time, and the arity and argument
    errors of CLIENT, COMMAND and CONFIG subcommands."""
    s = []
    times = ["-9223372036854775808", "9223372036854775807", "-9223372036854775807",
             "9223372036854775806", "9223372036854775", "9223372036854776", "-9223372036854775",
             "-9223372036854776", "-1", "0", "1.5"]
    for t in times:
        for cmd in ("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"):
            s += [("SET", "ek", "v"), (cmd, "ek", t), ("EXISTS", "ek"), (cmd, "nokey", t)]
        for opt in ("EX", "PX", "EXAT", "PXAT"):
            s += [("SET", "ek", "v", opt, t), ("EXISTS", "ek")]
        s += [("SETEX", "ek", t, "v"), ("PSETEX", "ek", t, "v")]
    s += [("SET", "ek", "v"), ("EXPIRE", "ek", "x", "FOO"), ("EXPIRE", "ek", "x", "NX", "XX"),
          ("EXPIRE", "ek", "x", "GT", "LT"), ("PEXPIRE", "ek", "9223372036854775807", "NX"),
          ("TTL", "ek")]
    for line in [
        "CLIENT NO-EVICT maybe", "CLIENT NO-EVICT on", "CLIENT NO-EVICT OFF", "CLIENT NO-EVICT",
        "CLIENT NO-EVICT on x", "CLIENT REPLY", "CLIENT KILL", "CLIENT PAUSE", "CLIENT UNPAUSE x",
        "CLIENT INFO x", "CLIENT HELP x", "CLIENT GETREDIR x", "CLIENT TRACKINGINFO x",
        "CLIENT UNBLOCK", "CLIENT SETNAME", "CLIENT GETNAME x", "CLIENT ID x", "CLIENT list TYPE foo",
        "CLIENT LIST TYPE master", "CLIENT LIST TYPE pubsub", "CLIENT LIST ID x",
        "CLIENT LIST ID 999999", "CLIENT LIST ID -1", "CLIENT LIST FOO", "CLIENT LIST ID",
        "CLIENT LIST TYPE", "CLIENT LIST TYPE normal x",
        "COMMAND COUNT x", "COMMAND GETKEYS", "COMMAND GETKEYS get", "COMMAND GETKEYS foo a",
        "COMMAND GETKEYS get a b", "COMMAND GETKEYS get a", "COMMAND GETKEYS mset a 1 b 2",
        "COMMAND GETKEYS mset a", "COMMAND GETKEYS blpop a b 0", "COMMAND GETKEYS ping x",
        "COMMAND GETKEYS rename a b", "COMMAND LIST FILTERBY", "COMMAND LIST FOO",
        "COMMAND LIST FILTERBY module x", "COMMAND LIST FILTERBY foo x",
        "COMMAND LIST FILTERBY pattern nomatch*", "COMMAND HELP x", "CONFIG RESETSTAT x",
        "CONFIG REWRITE x", "CONFIG HELP x", "CONFIG SET", "CONFIG SET a", "CONFIG SET a b c",
        "CONFIG SET maxmemory",
        # a parameter twice (in any case) is refused before any value is looked at; an unknown
        # name before or after it wins only if it comes first
        "CONFIG SET maxmemory 1 maxmemory 2", "CONFIG SET maxmemory 1 MAXMEMORY 2",
        "CONFIG SET maxmemory x maxmemory 2", "CONFIG SET maxmemory 1 nosuch 1 maxmemory 2",
        "CONFIG SET maxmemory 1 maxmemory 2 nosuch 1", "CONFIG SET maxmemory x nosuch 1",
        "CONFIG SET maxmemory 1 maxmemory-policy x maxmemory 2",
        "CONFIG SET maxmemory-policy noeviction Maxmemory-Policy allkeys-lru",
        "CONFIG SET maxmemory x maxmemory-policy y", "CONFIG SET maxmemory 1 maxmemory",
        "CONFIG SET appendonly no appendonly no", "CONFIG GET maxmemory",
        "CONFIG GET maxmemory-policy", "CONFIG SET maxmemory 0 maxmemory-policy noeviction",
        "CONFIG GET maxmemory",
        "AUTH pw", "AUTH default pw", "AUTH Default pw", "AUTH nobody pw", "AUTH a b c", "ROLE",
        "ROLE x", "TIME x", "MEMORY", "MEMORY FOO", "MEMORY USAGE", "MEMORY USAGE nokey",
        "MEMORY USAGE nokey SAMPLES 0 SAMPLES 3", "MEMORY USAGE ek SAMPLES",
        "MEMORY USAGE ek SAMPLES -1", "MEMORY USAGE ek SAMPLES x", "MEMORY USAGE ek FOO 1",
        "MEMORY STATS x", "MEMORY DOCTOR x",
        # COMMAND INFO's flags in Redis's order (fast after stale: it came first) and as
        # Redis's table has them (APPEND is fast, BLPOP and BRPOP noscript, ECHO loading stale)
        "COMMAND INFO append blpop brpop echo time select role multi watch unwatch discard",
        "COMMAND INFO auth quit hello reset get set incr lpush",
    ]:
        s.append(tuple(line.split()))
    s += [("CONFIG", "SET", "save", "", "save", ""), ("CONFIG", "SET", "save", "", "SAVE", "x")]
    return s

def more_hashes():
    """HMGET HKEYS HVALS HSETNX HSTRLEN HINCRBYFLOAT: missing keys and fields, wrong types,
    arities, bad and non-finite increments, values that are not floats."""
    L = lambda line: tuple(line.split())
    return [L(x) for x in [
        "HSET hx a 1 b 2.5 c xyz", "HMGET hx a nope c", "HMGET nope a b", "HMGET hx", "HMGET sm a",
        "HKEYS hx", "HKEYS nope", "HKEYS sm", "HKEYS", "HKEYS hx x", "HVALS hx", "HVALS nope",
        "HVALS sm", "HVALS", "HSETNX hx a 9", "HSETNX hx d 9", "HGET hx d", "HSETNX hn f v",
        "HGETALL hn", "HSETNX sm f v", "HSETNX hx d", "HSTRLEN hx c", "HSTRLEN hx nope",
        "HSTRLEN nope f", "HSTRLEN sm f", "HSTRLEN hx", "HINCRBYFLOAT hx a 1.5",
        "HINCRBYFLOAT hx b -0.5", "HINCRBYFLOAT hx b 1e3", "HINCRBYFLOAT hx c 1",
        "HINCRBYFLOAT hx new 3.0e2", "HINCRBYFLOAT hx a x", "HINCRBYFLOAT hx a inf",
        "HINCRBYFLOAT hx a -inf", "HINCRBYFLOAT hx a nan", "HINCRBYFLOAT hx a 1e400",
        "HINCRBYFLOAT hx a", "HINCRBYFLOAT sm a 1", "HINCRBYFLOAT nope2 f 0.1", "HGETALL nope2",
        "HINCRBYFLOAT hx a 0x10", "HINCRBYFLOAT hx a 1.", "HSET hx big 1e308",
        "HINCRBYFLOAT hx big 1e308", "HINCRBYFLOAT hx big -1e308", "HINCRBYFLOAT hx a -2",
        "HINCRBYFLOAT hx a 0.1", "HSET hx sp 1x", "HINCRBYFLOAT hx sp 1", "HMGET hx a b new big",
        "HSETNX nope3 f v", "DEL hx hn nope2 nope3",
    ]]

def more_lists():
    """LINDEX LSET LINSERT LREM LTRIM LPOS: indexes at and past both ends, bad integers,
    missing keys and pivots, wrong types, arities, the options of LPOS and their errors, and
    lists emptied (deleted)."""
    L = lambda line: tuple(line.split())
    return [L(x) for x in [
        "RPUSH lx a b c a b c a", "LINDEX lx 0", "LINDEX lx -1", "LINDEX lx 6", "LINDEX lx 7",
        "LINDEX lx -7", "LINDEX lx -8", "LINDEX lx x", "LINDEX nope x", "LINDEX nope 0",
        "LINDEX hx x", "LINDEX sm 0", "LINDEX lx", "LINDEX lx 9223372036854775808",
        "LSET lx 1 B", "LSET lx -1 Z", "LSET lx 7 q", "LSET lx -8 q", "LSET lx x q",
        "LSET nope 0 q", "LSET nope x q", "LSET sm 0 q", "LSET sm x q", "LSET lx 0",
        "LRANGE lx 0 -1", "LINSERT lx BEFORE a X", "LINSERT lx after Z Y", "LINSERT lx AFTER c M",
        "LINSERT lx before nope q", "LINSERT lx middle a q", "LINSERT nope BEFORE a q",
        "LINSERT nope middle a q", "LINSERT sm BEFORE a q", "LINSERT lx BEFORE a",
        "LRANGE lx 0 -1", "LPOS lx a", "LPOS lx a RANK 2", "LPOS lx a RANK -1",
        "LPOS lx a RANK -2", "LPOS lx a RANK 9", "LPOS lx a COUNT 0", "LPOS lx a COUNT 2",
        "LPOS lx a COUNT 2 RANK -1", "LPOS lx a RANK 2 COUNT 0 MAXLEN 5", "LPOS lx a MAXLEN 1",
        "LPOS lx a MAXLEN 2", "LPOS lx nope", "LPOS lx nope COUNT 3", "LPOS nope a",
        "LPOS nope a COUNT 1", "LPOS sm a", "LPOS lx a RANK 0", "LPOS lx a RANK x",
        "LPOS lx a RANK -9223372036854775808", "LPOS lx a RANK -9223372036854775807",
        "LPOS lx a COUNT -1", "LPOS lx a COUNT x", "LPOS lx a MAXLEN -1", "LPOS lx a MAXLEN x",
        "LPOS lx a RANK", "LPOS lx a FOO 1", "LPOS lx a COUNT", "LPOS nope a RANK 0",
        "LPOS nope a FOO", "LPOS sm a RANK 0", "LPOS lx", "LREM lx 1 a", "LRANGE lx 0 -1",
        "LREM lx -1 c", "LRANGE lx 0 -1", "LREM lx 0 b", "LRANGE lx 0 -1", "LREM lx 5 nope",
        "LREM lx x a", "LREM nope x a", "LREM nope 1 a", "LREM sm 1 a", "LREM sm x a",
        "LREM lx 1", "RPUSH lr a a b a", "LREM lr -2 a", "LRANGE lr 0 -1", "LREM lr 0 a",
        "LREM lr 0 b", "EXISTS lr", "RPUSH lt 0 1 2 3 4 5 6 7 8 9", "LTRIM lt 1 -2",
        "LRANGE lt 0 -1", "LTRIM lt -3 100", "LRANGE lt 0 -1", "LTRIM lt -100 1",
        "LRANGE lt 0 -1", "LTRIM lt x 1", "LTRIM lt 0 x", "LTRIM nope 0 1", "LTRIM nope x 1",
        "LTRIM sm 0 1", "LTRIM sm x 1", "LTRIM lt 0", "LTRIM lt 1 0", "EXISTS lt",
        "RPUSH lt a b c", "LTRIM lt 5 10", "EXISTS lt", "RPUSH lt a b c", "LTRIM lt -1 -2",
        "EXISTS lt", "RPUSH lt a b c", "LTRIM lt 0 0", "LRANGE lt 0 -1", "LINSERT lt AFTER a b",
        "LINSERT lt BEFORE a z", "LRANGE lt 0 -1", "DEL lx lt",
    ]]

def list_moves():
    """RPOPLPUSH and LMOVE: every pair of ends, one list rotated onto itself, a missing source,
    wrong types at either end (the source's checked first), bad ends and arities, lists
    emptied. The destinations d0..d7 fall on both shards whatever the shard key (but for 1 in
    128), so moves within a shard and across shards are both compared."""
    L = lambda line: tuple(line.split())
    s = [L(x) for x in [
        "RPUSH ms a b c d e f g h i j k l", "RPOPLPUSH ms ms", "LRANGE ms 0 -1",
        "LMOVE ms ms LEFT RIGHT", "LMOVE ms ms right left", "LRANGE ms 0 -1",
        "RPOPLPUSH nope ms", "RPOPLPUSH nope sm", "LMOVE nope sm LEFT LEFT", "RPOPLPUSH sm ms",
        "RPOPLPUSH ms sm", "LMOVE ms sm LEFT LEFT", "LMOVE sm ms LEFT LEFT", "LRANGE ms 0 -1",
        "LMOVE ms ms UP LEFT", "LMOVE ms ms LEFT DOWN", "LMOVE nope ms UP LEFT", "LMOVE ms ms",
        "RPOPLPUSH ms", "LMOVE ms d0 LEFT", "SET mstr x", "RPOPLPUSH mstr nope",
        "RPOPLPUSH nope mstr",
    ]]
    ends = [("LEFT", "LEFT"), ("LEFT", "RIGHT"), ("RIGHT", "LEFT"), ("RIGHT", "RIGHT")]
    for i in range(8):
        d = "d%d" % i
        s += [("RPOPLPUSH", "ms", d), ("LMOVE", "ms", d) + ends[i % 4], ("LRANGE", d, "0", "-1"),
              ("LMOVE", d, "ms") + ends[(i + 1) % 4], ("LMOVE", "ms", "mstr", "LEFT", "LEFT"),
              ("RPOPLPUSH", "mstr", d), ("HSET", "mh" + d, "f", "v"), ("RPOPLPUSH", d, "mh" + d),
              ("LMOVE", "nope", "mh" + d, "LEFT", "LEFT"), ("LLEN", d)]
    s += [L("LRANGE ms 0 -1"), L("RPUSH m1 x"), L("LMOVE m1 m2 LEFT LEFT"), L("EXISTS m1"),
          L("LMOVE m2 m1 RIGHT RIGHT"), L("EXISTS m2"), L("LRANGE m1 0 -1"), L("MULTI"),
          L("LMOVE m1 d5 LEFT LEFT"), L("RPOPLPUSH d5 m1"), L("RPOPLPUSH sm m1"), L("EXEC")]
    return s

def more_sets():
    """SRANDMEMBER (its replies' type and length; srandmember_checks checks its picks), SMOVE,
    SINTER SUNION SDIFF and their STORE forms, SINTERCARD: missing keys, wrong types among the
    sources (any one fails the command) but not at a STORE's destination, a destination among
    the sources, empty results deleting it, the arities and SINTERCARD's count and LIMIT
    errors. The keys sa..sf fall on both shards (but for 1 in 32): within a shard and across."""
    L = lambda line: tuple(line.split())
    return [L(x) for x in [
        "SADD sa a b c d e", "SADD sb c d e f g", "SADD sc e f g h", "SADD sd 1 2 3",
        "SET sstr x", "SRANDMEMBER sa", "SRANDMEMBER nope", "SRANDMEMBER sstr",
        "SRANDMEMBER sa 0", "SRANDMEMBER sa 1", "SRANDMEMBER sa 3", "SRANDMEMBER sa 5",
        "SRANDMEMBER sa 9", "SRANDMEMBER sa -1", "SRANDMEMBER sa -12", "SRANDMEMBER nope 3",
        "SRANDMEMBER nope -3", "SRANDMEMBER nope x", "SRANDMEMBER sa x", "SRANDMEMBER sstr 2",
        "SRANDMEMBER sstr x", "SRANDMEMBER sa 1 2", "SRANDMEMBER sa -9223372036854775808",
        "SRANDMEMBER sa 9223372036854775807", "SRANDMEMBER", "SINTER sa sb", "SINTER sa sb sc",
        "SINTER sa", "SINTER sa nope", "SINTER nope sa", "SINTER sa sstr", "SINTER nope sstr",
        "SINTER sstr nope", "SINTER sa sd", "SINTER", "SUNION sa sb sc", "SUNION sa nope",
        "SUNION nope", "SUNION nope sstr", "SUNION", "SDIFF sa sb", "SDIFF sb sa sc",
        "SDIFF sa nope", "SDIFF nope sa", "SDIFF sa sa", "SDIFF sa sstr", "SDIFF",
        "SINTERSTORE se sa sb", "SMEMBERS se", "SUNIONSTORE se sa sb sc", "SMEMBERS se",
        "SDIFFSTORE se sa sb", "SMEMBERS se", "SINTERSTORE se sa sd", "EXISTS se",
        "SUNIONSTORE sstr sa", "TYPE sstr", "SMEMBERS sstr", "SET sstr x",
        "SINTERSTORE se sa sstr", "SDIFFSTORE sa sa sb", "SMEMBERS sa", "SUNIONSTORE sa sa sc",
        "SMEMBERS sa", "SINTERSTORE sf nope", "EXISTS sf", "SDIFFSTORE sf sa", "SMEMBERS sf",
        "SINTERSTORE sf sf sb", "SMEMBERS sf", "SUNIONSTORE sf nope nope2", "EXISTS sf",
        "SINTERSTORE se", "SUNIONSTORE", "SDIFFSTORE se", "SINTERCARD 2 sa sb",
        "SINTERCARD 3 sa sb sc", "SINTERCARD 1 sa", "SINTERCARD 2 sa nope",
        "SINTERCARD 2 sa sb LIMIT 1", "SINTERCARD 2 sa sb LIMIT 0", "SINTERCARD 2 sa sb limit 99",
        "SINTERCARD 0 sa", "SINTERCARD -1 sa", "SINTERCARD x sa", "SINTERCARD 3 sa sb",
        "SINTERCARD 2 sa sb LIMIT -1", "SINTERCARD 2 sa sb LIMIT x", "SINTERCARD 2 sa sb LIMIT",
        "SINTERCARD 2 sa sb FOO 1", "SINTERCARD 1 sa sb", "SINTERCARD 2 sa sstr",
        "SINTERCARD 2 nope sstr", "SINTERCARD 1", "SINTERCARD", "SMOVE sa sb a", "SMOVE sa sb g",
        "SMOVE sa sb nope", "SMOVE sa sa e", "SMOVE sa sa nope", "SMOVE nope sb a",
        "SMOVE nope sstr a", "SMOVE sa sstr a", "SMOVE sstr sa a", "SMOVE sa snew e",
        "SMEMBERS snew", "SMOVE snew sa e", "EXISTS snew", "SMOVE sd sa 1", "SMOVE sd sb 2",
        "SMOVE sd sc 3", "EXISTS sd", "SMEMBERS sa", "SMEMBERS sb", "SMEMBERS sc", "SMOVE sa sb",
        "SMOVE sa sb a b", "COMMAND GETKEYS sintercard 2 a b", "COMMAND GETKEYS sintercard 3 a b",
        "COMMAND GETKEYS sintercard 0 a b", "COMMAND GETKEYS sinterstore d a b",
        "COMMAND GETKEYS smove a b m", "MULTI", "SINTERSTORE se sa sb", "SMOVE sa sf e",
        "SUNION sa sf", "SINTERCARD 2 sa sf", "SDIFF sstr sa", "EXEC",
        "WATCH sa", "SINTERSTORE se sa sb", "MULTI", "EXEC", "WATCH sa", "SMOVE sa sb nope",
        "MULTI", "EXEC", "DEL sa sb sc se sf sstr",
    ]]

def zset_removals():
    """ZREMRANGEBYSCORE ZREMRANGEBYLEX ZREMRANGEBYRANK: open and closed ends, infinities,
    empty and inverted ranges, indexes past both ends, bad ranges parsed before the key is
    looked at (a missing key with a bad range is still an error), wrong types, the key going
    with its last member."""
    L = lambda line: tuple(line.split())
    s = []
    for cmd in [
        "ZREMRANGEBYSCORE zq 2 3", "ZREMRANGEBYSCORE zq (1 (4", "ZREMRANGEBYSCORE zq -inf +inf",
        "ZREMRANGEBYSCORE zq 5 1", "ZREMRANGEBYSCORE zq (2 2", "ZREMRANGEBYSCORE zq 3 (3",
        "ZREMRANGEBYSCORE zq 4 inf", "ZREMRANGEBYSCORE zq x 1", "ZREMRANGEBYSCORE zq 1 nan",
        "ZREMRANGEBYSCORE nope 1 2", "ZREMRANGEBYSCORE nope x 2", "ZREMRANGEBYSCORE sm 1 2",
        "ZREMRANGEBYSCORE sm x 2", "ZREMRANGEBYSCORE zq 1", "ZREMRANGEBYLEX zq [b [d",
        "ZREMRANGEBYLEX zq (a (e", "ZREMRANGEBYLEX zq - +", "ZREMRANGEBYLEX zq + -",
        "ZREMRANGEBYLEX zq [c (c", "ZREMRANGEBYLEX zq [e +", "ZREMRANGEBYLEX zq a [b",
        "ZREMRANGEBYLEX zq [a x", "ZREMRANGEBYLEX nope - +", "ZREMRANGEBYLEX nope a +",
        "ZREMRANGEBYLEX sm - +", "ZREMRANGEBYLEX zq -", "ZREMRANGEBYRANK zq 0 0",
        "ZREMRANGEBYRANK zq -2 -1", "ZREMRANGEBYRANK zq 1 -2", "ZREMRANGEBYRANK zq 0 -1",
        "ZREMRANGEBYRANK zq 5 10", "ZREMRANGEBYRANK zq 3 1", "ZREMRANGEBYRANK zq -100 100",
        "ZREMRANGEBYRANK zq -100 -7", "ZREMRANGEBYRANK zq x 1", "ZREMRANGEBYRANK zq 0 x",
        "ZREMRANGEBYRANK nope 0 1", "ZREMRANGEBYRANK nope x 1", "ZREMRANGEBYRANK sm 0 1",
        "ZREMRANGEBYRANK sm x 1", "ZREMRANGEBYRANK zq 0",
    ]:
        s += [L("ZADD zq 1 a 2 b 3 c 4 d 5 e 6 f"), L(cmd), L("ZRANGE zq 0 -1 WITHSCORES"),
              L("EXISTS zq")]
    s += [L("ZADD zl2 0 a 0 b 0 c"), L("ZREMRANGEBYLEX zl2 - +"), L("EXISTS zl2"),
          L("WATCH zq"), L("ZREMRANGEBYRANK zq 10 20"), L("MULTI"), L("EXEC"), L("DEL zq")]
    return s

def zset_algebra():
    """ZUNION ZINTER ZDIFF, their STORE forms, ZINTERCARD and ZRANGESTORE: sets among the
    sources (score 1), WEIGHTS and AGGREGATE with infinities (NaN products and sums count as
    0 where Redis says so), missing and empty keys, wrong types (checked before the options),
    the count's errors (0, negative, not a number, past the keys), options repeated or out of
    place, a destination among the sources or of another type, empty results deleting it, and
    WATCH on destinations and sources. The keys za..zf and the destinations fall on both shards
    (but for 1 in 64): within one shard and across shards."""
    L = lambda line: tuple(line.split())
    s = [L(x) for x in [
        "ZADD za 1 a 2 b 3 c", "ZADD zb 10 b 20 c 30 d", "ZADD zc inf a -inf b 5 c",
        "ZADD zd 0 a 0 b inf c", "SADD ze a b x", "SET zstr x", "ZADD zf 1.5 a 2.25 q",
    ]]
    sets = [["za", "zb"], ["za", "ze"], ["zc", "zd"], ["za", "zb", "ze", "zf"], ["za", "nope"],
            ["nope", "za"], ["nope"], ["ze"], ["za", "za"], ["zb", "za", "zf"]]
    opts = [[], ["WITHSCORES"], ["WEIGHTS", "1", "0", "WITHSCORES"],
            ["WEIGHTS", "0", "1", "AGGREGATE", "MAX", "WITHSCORES"],
            ["WEIGHTS", "-1", "2", "AGGREGATE", "MIN", "WITHSCORES"],
            ["AGGREGATE", "sum", "WITHSCORES"], ["weights", "inf", "1", "withscores"],
            ["WEIGHTS", "2", "3", "WEIGHTS", "1", "1", "AGGREGATE", "MIN", "AGGREGATE", "max",
             "WITHSCORES", "WITHSCORES"]]
    for keys in sets:
        n = str(len(keys))
        for cmd in ("ZUNION", "ZINTER", "ZDIFF"):
            for o in opts:
                if "WEIGHTS" in [x.upper() for x in o] and len(keys) != 2:
                    continue
                s.append((cmd, n) + tuple(keys) + tuple(o))
        for cmd in ("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"):
            for dst in ("zdst", keys[0], "zstr"):
                s += [(cmd, dst, n) + tuple(keys), ("ZRANGE", dst, "0", "-1", "WITHSCORES"),
                      ("TYPE", dst)]
                s += [L("ZADD za 1 a 2 b 3 c"), L("DEL zb"), L("ZADD zb 10 b 20 c 30 d"),
                      L("SET zstr x")]
            s += [(cmd, "zdst", n) + tuple(keys) + ("AGGREGATE", "MAX"),
                  ("ZRANGE", "zdst", "0", "-1", "WITHSCORES")]
        s += [("ZINTERCARD", n) + tuple(keys), ("ZINTERCARD", n) + tuple(keys) + ("LIMIT", "1"),
              ("ZINTERCARD", n) + tuple(keys) + ("LIMIT", "0")]
    s += [L(x) for x in [
        # the count, the types, the options: each error and their order
        "ZUNION 0 za", "ZUNION -1 za", "ZUNION x za", "ZUNION 3 za zb", "ZUNION 1",
        "ZUNION 9223372036854775807 za", "ZUNION 2 za zstr", "ZUNION 2 zstr za WEIGHTS 1 x",
        "ZUNION 2 za zb WEIGHTS 1", "ZUNION 2 za zb WEIGHTS 1 x", "ZUNION 2 za zb WEIGHTS 1 nan",
        "ZUNION 2 za zb WEIGHTS 1 1e400", "ZUNION 2 za zb WEIGHTS 0x10 1 WITHSCORES",
        "ZUNION 2 za zb AGGREGATE", "ZUNION 2 za zb AGGREGATE foo", "ZUNION 2 za zb FOO",
        "ZUNION 2 za zb LIMIT 1", "ZUNIONSTORE zdst 2 za zb WITHSCORES", "ZUNIONSTORE zdst 0 za",
        "ZUNIONSTORE zdst -5 za", "ZUNIONSTORE zdst x za", "ZUNIONSTORE zdst 3 za zb",
        "ZUNIONSTORE zdst 1", "ZUNIONSTORE zdst", "ZINTERSTORE zdst 2 za zstr",
        "ZINTERSTORE zdst 2 nope zstr", "ZDIFF 2 za zb WEIGHTS 1 1", "ZDIFF 2 za zb AGGREGATE SUM",
        "ZDIFF 0 za", "ZDIFF 1", "ZDIFFSTORE zdst 2 za zb WITHSCORES", "ZDIFFSTORE zdst 0 za",
        "ZDIFF 2 zstr za", "ZDIFF 2 za zstr", "ZINTER 2 za zb WITHSCORES LIMIT 1",
        "ZINTERCARD 0 za", "ZINTERCARD -1 za", "ZINTERCARD x za", "ZINTERCARD 3 za zb",
        "ZINTERCARD 2 za zb LIMIT -1", "ZINTERCARD 2 za zb LIMIT x", "ZINTERCARD 2 za zb LIMIT",
        "ZINTERCARD 2 za zb FOO", "ZINTERCARD 2 za zb WITHSCORES", "ZINTERCARD 2 za zb WEIGHTS 1 1",
        "ZINTERCARD 2 za zstr", "ZINTERCARD 2 za zstr LIMIT x", "ZINTERCARD 1", "ZINTERCARD",
        "ZINTERCARD 2 za nope", "ZINTERCARD 2 ze za LIMIT 9223372036854775807",
        "COMMAND GETKEYS zunionstore d 2 a b", "COMMAND GETKEYS zunionstore d 3 a b",
        "COMMAND GETKEYS zunion 2 a b", "COMMAND GETKEYS zunion 0 a", "COMMAND GETKEYS zdiff 1 a",
        "COMMAND GETKEYS zintercard 2 a b", "COMMAND GETKEYS zrangestore d s 0 1",
        "COMMAND GETKEYS zinterstore d x a", "COMMAND INFO zunionstore zunion zintercard",
        "COMMAND INFO zrangestore zdiffstore zinterstore zinter zdiff zrandmember",
        "COMMAND INFO sscan hscan zscan",
        # ZRANGESTORE: ZRANGE's ranges and errors, stored
        "ZRANGESTORE zdst za 0 -1", "ZRANGE zdst 0 -1 WITHSCORES", "ZRANGESTORE zdst za 1 1",
        "ZRANGE zdst 0 -1 WITHSCORES", "ZRANGESTORE zdst za (1 +inf BYSCORE LIMIT 1 1",
        "ZRANGE zdst 0 -1 WITHSCORES", "ZRANGESTORE zdst zb 0 0 REV", "ZRANGE zdst 0 -1 WITHSCORES",
        "ZRANGESTORE zdst zl3 [b [z BYLEX", "ZRANGESTORE zdst za 5 9", "EXISTS zdst",
        "ZRANGESTORE zdst za 0 -1", "ZRANGESTORE zdst nope 0 -1", "EXISTS zdst",
        "ZRANGESTORE zdst za 0 -1 WITHSCORES", "ZRANGESTORE zdst za 0 -1 LIMIT 0 1",
        "ZRANGESTORE zdst za x 1", "ZRANGESTORE zdst za (x 1 BYSCORE", "ZRANGESTORE zdst za a b BYLEX",
        "ZRANGESTORE zdst zstr 0 -1", "ZRANGESTORE zdst ze 0 -1", "ZRANGESTORE zstr za 0 0",
        "TYPE zstr", "ZRANGE zstr 0 -1", "SET zstr x", "ZRANGESTORE za za 1 -1",
        "ZRANGE za 0 -1 WITHSCORES", "ZRANGESTORE zdst za 0", "ZRANGESTORE zdst za",
        "ZRANGESTORE zdst za 0 -1 FOO", "ZRANGESTORE zdst za 0 -1 BYSCORE BYLEX",
        # WATCH: a store changes its destination only; an empty store of nothing changes nothing
        "ZADD za 1 a 2 b 3 c", "WATCH zdst", "ZUNIONSTORE zdst 2 za zb", "MULTI", "EXEC",
        "WATCH za", "ZUNIONSTORE zdst 2 za zb", "MULTI", "EXEC", "DEL zdst", "WATCH zdst",
        "ZINTERSTORE zdst 2 za nope", "MULTI", "EXEC", "WATCH za", "ZRANGESTORE zdst za 0 -1",
        "MULTI", "EXEC", "WATCH zdst", "ZRANGESTORE zdst za 0 0", "MULTI", "EXEC",
        "WATCH zdst", "ZRANGESTORE zdst nope 0 -1", "MULTI", "EXEC", "WATCH zdst",
        "ZRANGESTORE zdst nope 0 -1", "MULTI", "EXEC",
        "MULTI", "ZUNIONSTORE zdst 2 za zb", "ZINTER 2 za zdst WITHSCORES", "ZRANGESTORE zf zdst 0 1",
        "ZDIFF 2 zstr za", "ZINTERCARD 2 zdst zf", "EXEC", "ZRANGE zf 0 -1 WITHSCORES",
        "DEL za zb zc zd ze zf zstr zdst",
    ]]
    return s

def zrand_scan_cases():
    """ZRANDMEMBER (the type and length of its replies; zrandmember_checks checks the picks)
    and SSCAN HSCAN ZSCAN on small keys (whose first page holds everything on both servers):
    missing keys, wrong types (after the cursor, before the options), bad cursors, MATCH,
    COUNT and their errors. scan_checks checks cursors over keys that change between calls."""
    L = lambda line: tuple(line.split())
    return [L(x) for x in [
        "ZADD zr 1 a 2 b 3 c", "SET zrs x", "ZRANDMEMBER zr", "ZRANDMEMBER nope", "ZRANDMEMBER zrs",
        "ZRANDMEMBER zr 0", "ZRANDMEMBER zr 1", "ZRANDMEMBER zr 2", "ZRANDMEMBER zr 3",
        "ZRANDMEMBER zr 9", "ZRANDMEMBER zr -1", "ZRANDMEMBER zr -7", "ZRANDMEMBER zr 2 WITHSCORES",
        "ZRANDMEMBER zr -5 withscores", "ZRANDMEMBER zr 9 WITHSCORES", "ZRANDMEMBER zr 0 WITHSCORES",
        "ZRANDMEMBER nope 3", "ZRANDMEMBER nope -3 WITHSCORES", "ZRANDMEMBER nope x",
        "ZRANDMEMBER zr x", "ZRANDMEMBER zrs 2", "ZRANDMEMBER zrs x", "ZRANDMEMBER zr 1 FOO",
        "ZRANDMEMBER zr 1 WITHSCORES x", "ZRANDMEMBER zr x WITHSCORES",
        "ZRANDMEMBER zr -9223372036854775808", "ZRANDMEMBER zr -9223372036854775807 WITHSCORES",
        "ZRANDMEMBER zr 9223372036854775807", "ZRANDMEMBER zr 9223372036854775807 WITHSCORES",
        "ZRANDMEMBER zr 4611686018427387904 WITHSCORES",
        "ZRANDMEMBER zr -4611686018427387904 WITHSCORES",
        "ZRANDMEMBER zr 4611686018427387903 WITHSCORES", "ZRANDMEMBER", "ZRANDMEMBER ze",
        "SADD ss a b c d", "HSET hs f1 v1 f2 v2 f3 v3", "ZADD zs 1 a 2.5 b -inf c inf d",
        "SSCAN ss 0", "SSCAN ss 0 COUNT 100", "SSCAN ss 0 MATCH [ab]", "SSCAN ss 0 MATCH nomatch",
        "SSCAN ss 0 match * count 1000", "SSCAN ss x", "SSCAN nope x", "SSCAN nope 0",
        "SSCAN nope 0 COUNT 0", "SSCAN zrs 0", "SSCAN zrs 0 COUNT 0", "SSCAN zs 0", "SSCAN ss 0 COUNT 0",
        "SSCAN ss 0 COUNT -1", "SSCAN ss 0 COUNT x", "SSCAN ss 0 FOO", "SSCAN ss 0 MATCH",
        "SSCAN ss 0 TYPE string", "SSCAN nope -1", "SSCAN ss 18446744073709551616", "SSCAN ss",
        "SSCAN ss 0 COUNT 9223372036854775807", "HSCAN hs 0", "HSCAN hs 0 MATCH f[12]",
        "HSCAN hs 0 COUNT 1000", "HSCAN hs x", "HSCAN nope 0", "HSCAN ss 0", "HSCAN hs 0 COUNT 0",
        "HSCAN hs 0 NOVALUES", "HSCAN hs", "ZSCAN zs 0", "ZSCAN zs 0 MATCH [ab]", "ZSCAN zs x",
        "ZSCAN nope 0", "ZSCAN hs 0", "ZSCAN zs 0 COUNT 0", "ZSCAN zs 0 MATCH", "ZSCAN zs",
        "MULTI", "SSCAN ss 0", "ZSCAN zs 0", "ZRANDMEMBER zr -2", "EXEC",
        "DEL zr zrs ss hs zs",
    ]]

def zrandmember_checks(port):
    """ZRANDMEMBER's picks: members of the sorted set with their own scores, distinct for a
    positive count below the size, the whole set at or past it, and every member reachable.
    Returns the number of violations."""
    c = Conn(port)
    scores = {("m%d" % i).encode(): str(i * 1.5).encode().rstrip(b"0").rstrip(b".")
              for i in range(20)}
    c.cmd("DEL", "rz"); c.cmd("ZADD", "rz", *[x for m, v in scores.items() for x in (v, m)])
    bad, picked = [], set()
    for count in (1, 2, 7, 19, 20, 25, -1, -5, -40):
        for withscores in (False, True):
            r = c.cmd("ZRANDMEMBER", "rz", str(count), *(["WITHSCORES"] if withscores else []))
            got = [x.split(b" ", 1)[1] for x in r[1:]]
            if withscores:
                pairs = list(zip(got[0::2], got[1::2]))
                got = [m for m, _ in pairs]
                if any(scores.get(m) != v for m, v in pairs):
                    bad.append(("score", count, r))
            picked.update(got)
            want = abs(count) if count < 0 else min(count, 20)
            if len(got) != want or not set(got) <= set(scores):
                bad.append((count, r))
            if count > 0 and len(set(got)) != len(got):
                bad.append(("repeats", count, r))
    if picked != set(scores):
        bad.append(("never picked", sorted(set(scores) - picked)))
    c.cmd("DEL", "rz")
    for b in bad[:5]:
        print("ZRANDMEMBER: %r" % (b,))
    return len(bad)

def scan_checks(port, rng):
    """SSCAN HSCAN ZSCAN over keys that grow, shrink and are rebuilt whole between calls:
    every member present from the first call to the last comes back at least once, nothing
    comes back that was never there, MATCH filters, a ZSCAN score is the member's. Returns
    the number of violations."""
    c = Conn(port)
    bad = []
    for kind in ("set", "hash", "zset"):
        for count in ("1", "3", "10", "1000"):
            key = "scan:" + kind
            c.cmd("DEL", key)
            stable = ["s%d" % i for i in range(300)]
            going = ["g%d" % i for i in range(300)]
            def add(ms):
                if kind == "set": c.cmd("SADD", key, *ms)
                elif kind == "hash": c.cmd("HSET", key, *[x for m in ms for x in (m, "v" + m)])
                else: c.cmd("ZADD", key, *[x for m in ms for x in (m[1:], m)])
            add(stable + going)
            cmd = {"set": "SSCAN", "hash": "HSCAN", "zset": "ZSCAN"}[kind]
            cur, seen, calls, fresh = b"0", set(), 0, 0
            while True:
                r = c.cmd(cmd, key, cur, "COUNT", count)
                cur = r[1].split(b" ", 1)[1]
                els = [x.split(b" ", 1)[1] for x in r[2][1:]]
                if kind != "set":
                    for m, v in zip(els[0::2], els[1::2]):
                        want = b"v" + m if kind == "hash" else m[1:]
                        if v != want:
                            bad.append((cmd, "value", m, v))
                    els = els[0::2]
                seen.update(els)
                calls += 1
                # Between calls: remove some of the going ones, add new ones (the table grows),
                # and now and then rebuild the value whole (a smaller table for a sorted set
                # or a set that lost members).
                if calls > 60:  # the table must stop growing for COUNT 1 to reach its end
                    pass
                elif going:
                    gone = [going.pop() for _ in range(min(len(going), rng.randint(0, 20)))]
                    if kind == "set": c.cmd("SREM", key, *gone)
                    elif kind == "hash": c.cmd("HDEL", key, *gone)
                    else: c.cmd("ZREM", key, *gone)
                if calls <= 60:
                    add(["n%d" % (fresh + i) for i in range(rng.randint(0, 30))])
                    fresh += 30
                if calls % 7 == 0 and kind == "zset":
                    c.cmd("ZUNIONSTORE", key, "1", key)
                if calls % 7 == 0 and kind == "set":
                    c.cmd("SUNIONSTORE", key, key)
                if cur == b"0" or calls > 5000:
                    break
            missed = {m.encode() for m in stable} - seen
            strange = {m for m in seen if m[:1] not in (b"s", b"g", b"n")}
            if cur != b"0" or missed or strange:
                bad.append((cmd, count, "missed", sorted(missed)[:5], "strange", sorted(strange)[:5]))
        c.cmd("DEL", "scan:" + kind)
    c.cmd("SADD", "scan:m", *["a%d" % i for i in range(50)] + ["b%d" % i for i in range(50)])
    cur, got = b"0", set()
    while True:
        r = c.cmd("SSCAN", "scan:m", cur, "MATCH", "a*", "COUNT", "7")
        cur = r[1].split(b" ", 1)[1]
        got.update(x.split(b" ", 1)[1] for x in r[2][1:])
        if cur == b"0":
            break
    if got != {("a%d" % i).encode() for i in range(50)}:
        bad.append(("SSCAN MATCH", sorted(got)[:5]))
    c.cmd("DEL", "scan:m")
    for b in bad[:5]:
        print("SCAN: %r" % (b,))
    return len(bad)

def srandmember_checks(port):
    """SRANDMEMBER's picks, which kv_diff cannot compare: members of the set, distinct for a
    positive count below the size, the whole set at or past it, and every member reachable.
    Returns the number of violations."""
    c = Conn(port)
    members = {("m%d" % i).encode() for i in range(20)}
    c.cmd("DEL", "rs"); c.cmd("SADD", "rs", *sorted(members))
    bad = []
    picked = set()
    for count in (1, 2, 7, 19, 20, 25, -1, -5, -40):
        for _ in range(20):
            r = c.cmd("SRANDMEMBER", "rs", str(count))
            got = [x.split(b" ", 1)[1] for x in r[1:]]
            picked.update(got)
            want = abs(count) if count < 0 else min(count, 20)
            if len(got) != want or not set(got) <= members:
                bad.append((count, r))
            if count > 0 and len(set(got)) != len(got):
                bad.append(("repeats", count, r))
    for _ in range(50):
        r = c.cmd("SRANDMEMBER", "rs")
        if r.split(b" ", 1)[1] not in members:
            bad.append(("one", r))
    if picked != members:
        bad.append(("never picked", sorted(members - picked)))
    c.cmd("DEL", "rs")
    for b in bad[:5]:
        print("SRANDMEMBER: %r" % (b,))
    return len(bad)

def probe_cases():
    """What a hostile-client probe found different from Redis (session 14): an empty string
    read, appended to and measured (its buffer was NULL: undefined memcpy), SHUTDOWN inside
    MULTI (queued, and EXEC's reply cut
    short), a repeated expiry option of one kind (the last wins), the unknown-command error's
    128 characters of arguments, and COMMAND INFO of an unknown name (a null bulk)."""
    L = lambda line: tuple(line.split())
    s = [("SET", "pe", ""), ("GET", "pe"), ("STRLEN", "pe"), ("GETRANGE", "pe", "0", "-1"),
         ("APPEND", "pe", ""), ("GET", "pe"), ("APPEND", "pe", "x"), ("GET", "pe"),
         ("SETRANGE", "pe2", "0", ""), ("SET", "pe3", "", "GET"), ("GETSET", "pe3", ""),
         ("GETDEL", "pe3"), ("MSET", "pe4", "", "pe5", ""), ("MGET", "pe4", "pe5"),
         ("SET", "pt", "1", "EX", "100", "EX", "200"), ("TTL", "pt"),
         ("SET", "pt", "1", "PX", "100000", "PX", "300000"), ("TTL", "pt"),
         ("SET", "pt", "1", "EXAT", "1", "EXAT", "99999999999"), ("TTL", "pt"),
         ("SET", "pt", "1", "EX", "10", "PX", "10"), ("SET", "pt", "1", "EX", "10", "KEEPTTL"),
         ("SET", "pt", "1", "KEEPTTL", "KEEPTTL"), ("SET", "pt", "1", "EX", "x", "EX", "5"),
         ("TTL", "pt"),
         ("FOO", "a" * 100, "b" * 100, "c"), ("FOO", "a" * 200), ("FOO",) + ("xy",) * 80,
         ("FOO", "a" * 127, "b"), ("FOO", "a" * 126, "b"),
         ("COMMAND", "INFO", "nosuch"), ("COMMAND", "INFO", "nosuch", "nosuch2"),
         # An unknown user: refused, nothing switched or named (no protocol change here).
         ("HELLO", "2", "AUTH", "nosuchuser", "pw"),
         ("HELLO", "3", "AUTH", "nosuchuser", "pw", "SETNAME", "zz"), ("CLIENT", "GETNAME")]
    s += [L(x) for x in [
        # GETEX (redis-py's getex): each option, the errors, the order of the checks.
        "SET gx v", "GETEX gx", "TTL gx", "GETEX gx EX 100", "TTL gx", "GETEX gx PERSIST",
        "TTL gx", "GETEX gx PX 100000 PX 200000", "TTL gx", "GETEX gx PERSIST PERSIST",
        "GETEX gx EX 10 PX 10", "GETEX gx PERSIST EX 10", "GETEX gx EX 10 PERSIST",
        "GETEX gx EX 0", "GETEX gx EX x", "GETEX gx EX", "GETEX gx FOO", "GETEX gx KEEPTTL",
        "GETEX nokey EX 0", "GETEX nokey FOO", "GETEX gx EXAT 99999999999", "TTL gx",
        "GETEX gx PXAT 1", "EXISTS gx", "LPUSH gl a", "GETEX gl", "GETEX gl EX 5", "GETEX",
        # WATCH: a GETEX that sets nothing, and an SMOVE onto its own set, fail nothing.
        "SET gw v", "WATCH gw", "GETEX gw", "GETEX nokey2 EX 5", "MULTI", "GET gw", "EXEC",
        "WATCH gw", "GETEX gw EX 100", "MULTI", "GET gw", "EXEC",
        # GETEX PERSIST of a key with no expiry changes nothing (it failed the EXEC); of one
        # with an expiry it does.
        "PERSIST gw", "WATCH gw", "GETEX gw PERSIST", "MULTI", "GET gw", "EXEC", "WATCH gw",
        "GETEX gw PERSIST PERSIST", "MULTI", "GET gw", "EXEC", "SET gw v EX 100", "WATCH gw",
        "GETEX gw PERSIST", "MULTI", "TTL gw", "EXEC",
        "SADD gs a", "WATCH gs", "SMOVE gs gs a", "SMOVE gs gs b", "MULTI", "SCARD gs", "EXEC"]]
    # ZPOPMIN/ZPOPMAX with a count of 0 check the key's type first (weft-kv answered the
    # empty array for a string), as LPOP, RPOP and SPOP with 0 do.
    s += [L(x) for x in ["SET zp0 x", "ZPOPMIN zp0 0", "ZPOPMAX zp0 0", "LPOP zp0 0",
                         "SPOP zp0 0", "ZPOPMIN zp0 -1", "ZPOPMIN nope 0", "ZADD zp1 1 a",
                         "ZPOPMIN zp1 0", "ZPOPMAX zp1 0", "ZCARD zp1", "DEL zp0 zp1"]]
    s += [L(x) for x in ["MULTI", "SET pm 1", "SHUTDOWN", "EXEC", "GET pm", "MULTI",
                         "SHUTDOWN FOO", "SET pm 2", "EXEC", "GET pm", "MULTI", "SHUTDOWN NOSAVE",
                         "DISCARD"]]
    return s

def scan_count_check(port):
    """SCAN with the largest COUNT (its bound on buckets walked overflowed: UBSan ended the
    server) walks every shard to cursor 0 and the server answers after it. Not diffed: a
    cursor over shards differs from Redis's by design (docs/kv.md)."""
    c = Conn(port)
    cur, n, seen = b"0", 0, 0
    while True:
        r = c.cmd("SCAN", cur, "COUNT", "9223372036854775807")
        if not isinstance(r, list) or len(r) != 3:
            print("SCAN COUNT 2^63-1: %r" % (r,)); return 1
        cur = r[1].split(b" ", 1)[1]; seen += len(r[2]) - 1; n += 1
        if cur == b"0" or n > 64:
            break
    ok = cur == b"0" and c.cmd("PING") == b"+PONG" and seen == int(c.cmd("DBSIZE")[1:])
    if not ok:
        print("SCAN COUNT 2^63-1: cursor %r after %d calls, %d keys" % (cur, n, seen))
    return 0 if ok else 1

def transactions():
    """MULTI/EXEC/DISCARD/WATCH on one connection: the errors and their order, what fails a
    transaction (EXECABORT) and what does not, runtime errors as elements, commands over
    several shards, BLPOP not blocking, and WATCH against the connection's own writes: those
    that change a key fail the EXEC, the ones that change nothing (SETNX of an existing key,
    DEL of a missing one, a pop of nothing, ...) do not."""
    L = lambda line: tuple(line.split())
    s = [L(x) for x in [
        "MULTI", "MULTI", "WATCH tk", "SET tk 1", "GET", "FOO bar", "EXEC", "EXEC", "DISCARD",
        "GET tk", "MULTI", "SET tk 1", "INCR tk", "LPUSH tk x", "GET tk", "MSET ta 1 tb 2 tc 3",
        "MGET ta tb tc nope", "DEL ta tb nope", "EXISTS ta tb tc", "RENAME tc td", "GET td",
        "BLPOP nol 0", "BLPOP nol x", "LPUSH nol a b", "BLPOP nol 5", "BRPOP nope nol 1",
        "BLPOP nol 0", "DBSIZE", "UNWATCH", "PING", "ECHO hi", "INCRBYFLOAT tk x", "TTL tk",
        "EXEC", "MULTI", "EXEC", "MULTI", "DISCARD", "EXEC", "MULTI", "SET tx 1", "EXEC x",
        "EXEC", "GET tx", "MULTI", "CLIENT FOO", "CLIENT SETNAME", "CONFIG GET", "CONFIG FOO",
        "COMMAND FOO", "SET tx 2", "EXEC", "GET tx", "MULTI", "CLIENT SETNAME txn",
        "CLIENT GETNAME", "CONFIG GET maxmemory", "SELECT 0", "SELECT 1", "COMMAND COUNT x",
        "WATCH x", "MULTI x", "EXEC", "MULTI", "WATCH", "UNWATCH x", "EXEC", "WATCH", "UNWATCH",
        "UNWATCH x", "DISCARD x",
        # WATCH: the connection's own change fails its EXEC; nothing else does.
        "WATCH tw", "SET tw 1", "MULTI", "GET tw", "EXEC", "WATCH tw", "MULTI", "GET tw", "EXEC",
        "WATCH tw tw2 tw", "UNWATCH", "SET tw 2", "MULTI", "GET tw", "EXEC",
        "WATCH tw", "MULTI", "DISCARD", "SET tw 3", "MULTI", "GET tw", "EXEC",
        "WATCH tw", "MULTI", "EXEC", "SET tw 4", "MULTI", "GET tw", "EXEC",
        "WATCH tw nope", "SETNX tw x", "DEL nope nope2", "EXPIRE nope 10", "LPOP nope",
        "PERSIST tw", "SET tw y NX", "SET nope y XX", "SET tw z NX GET", "SETRANGE tw 0",
        "RENAME tw tw", "SREM nope a", "HDEL nope a", "ZREM nope a", "SPOP nope", "GETDEL nope",
        "ZPOPMIN nope", "ZADD nope XX 1 a", "MSETNX tw 1 nope 2", "MULTI", "GET tw", "EXEC",
        "WATCH tw", "DEL tw", "MULTI", "GET tw", "EXEC", "WATCH tw", "SET tw v EX 100",
        "MULTI", "TTL tw", "EXEC", "WATCH tw", "EXPIRE tw 50", "MULTI", "EXEC",
        "WATCH tw", "PERSIST tw", "MULTI", "EXEC", "WATCH tw", "APPEND tw x", "MULTI", "EXEC",
        "WATCH tw", "RENAME tw tw3", "MULTI", "EXEC", "WATCH tw", "RENAME tw3 tw", "MULTI",
        "EXEC", "WATCH tw", "MSET a 1 tw 2", "MULTI", "EXEC", "WATCH tw", "GET tw", "TYPE tw",
        "MULTI", "EXEC", "WATCH nope", "MULTI", "SET nope 1", "EXEC", "WATCH nope", "FLUSHDB",
        "MULTI", "EXEC", "SET tw 1", "WATCH tw", "FLUSHDB", "MULTI", "EXEC",
        "WATCH l", "RPUSH l a b", "MULTI", "EXEC", "WATCH l", "LPOP l", "MULTI", "EXEC",
        "WATCH l", "LPOP l", "MULTI", "EXEC", "EXISTS l", "WATCH s", "SADD s a", "MULTI", "EXEC",
        "WATCH s", "SADD s a", "MULTI", "EXEC", "WATCH h", "HSET h f v", "HSET h f v", "MULTI",
        "EXEC", "WATCH z", "ZADD z CH 1 a", "MULTI", "EXEC", "WATCH z", "ZADD z CH 1 a", "MULTI",
        "EXEC", "WATCH z", "ZADD z NX INCR 1 a", "MULTI", "EXEC",
        # A ZADD or ZINCRBY that leaves every score as it was fails nothing, as in Redis (a
        # ZADD without CH that changed no score failed the EXEC); one that moves a score does.
        "WATCH z", "ZADD z 1 a", "MULTI", "EXEC", "WATCH z", "ZINCRBY z 0 a", "MULTI", "EXEC",
        "WATCH z", "ZADD z GT 0 a", "MULTI", "EXEC", "WATCH z", "ZADD z XX LT 5 a 2 nope",
        "MULTI", "EXEC", "WATCH z", "ZADD z 1 a 1 a", "MULTI", "EXEC", "WATCH z",
        "ZADD z 2 a", "MULTI", "EXEC", "WATCH z", "ZINCRBY z 1 a", "MULTI", "EXEC",
        "WATCH z", "ZADD z INCR 0 a", "MULTI", "EXEC",
        "MULTI", "SET a 1", "FLUSHDB", "DBSIZE", "EXEC", "DBSIZE",
    ]]
    return s

def tx_wrap(rng, body, keys):
    """Random commands inside a transaction, sometimes with a WATCH and a write before it."""
    s = []
    if rng.random() < 0.5:
        s.append(("WATCH",) + tuple(rng.sample(keys, rng.randint(1, 3))))
        if rng.random() < 0.7:
            s.append(body.pop())
    return s + [("MULTI",)] + body + [("EXEC",) if rng.random() < 0.9 else ("DISCARD",)]

def script(rng):
    """The commands: a fixed part covering every command and error, then random ones."""
    s = [
        ("PING",), ("PING", "hi"), ("PING", "a", "b"), ("ECHO", "x"), ("ECHO",), ("GET",),
        ("GET", "k"), ("SET", "k", "v"), ("GET", "k"), ("SET", "k", "v", "NX"),
        ("SET", "k", "v2", "XX"), ("SET", "k", "v", "NX", "XX"), ("SET", "k", "v", "EX", "0"),
        ("SET", "k", "v", "EX", "-1"), ("SET", "k", "v", "EX", "x"), ("SET", "k", "v", "PX"),
        ("SET", "k", "v", "EX", "10", "PX", "10"), ("SET", "k", "v", "KEEPTTL", "EX", "1"),
        ("SET", "k", "v3", "GET"), ("SET", "nk", "v3", "GET"), ("SET", "k", "v4", "NX", "GET"),
        ("SET", "k", "v", "EX", "9999999999999999"), ("SET", "k", "v", "PXAT", "1"),
        ("GET", "k"), ("SET", "k", "v", "EXAT", "99999999999"), ("TTL", "k"),
        ("SET", "k", "w", "KEEPTTL"), ("TTL", "k"), ("PERSIST", "k"), ("TTL", "k"),
        ("GETSET", "k", "g"), ("GETSET", "nope", "g"), ("GETDEL", "nope"), ("GETDEL", "nope2"),
        ("SETNX", "k", "x"), ("SETNX", "k2", "x"), ("SETEX", "k3", "0", "v"),
        ("SETEX", "k3", "x", "v"), ("SETEX", "k3", "100", "v"), ("TTL", "k3"),
        ("PSETEX", "k4", "-5", "v"), ("PSETEX", "k4", "100000", "v"), ("PTTL", "k4"),
        ("INCR", "n"), ("INCRBY", "n", "10"), ("INCRBY", "n", "x"), ("DECR", "n"),
        ("DECRBY", "n", "5"), ("DECRBY", "n", "-9223372036854775808"), ("INCR", "k"),
        ("SET", "big", "9223372036854775807"), ("INCR", "big"), ("DECRBY", "n", "1.5"),
        ("SET", "neg", "-9223372036854775808"), ("DECR", "neg"), ("INCR", "neg"),
        ("SET", "sp", " 1"), ("INCR", "sp"), ("SET", "z", "01"), ("INCR", "z"),
        ("INCRBYFLOAT", "f", "10.5"), ("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "-5.6"),
        ("INCRBYFLOAT", "f", "x"), ("INCRBYFLOAT", "f", "1e3"), ("INCRBYFLOAT", "k", "1"),
        ("INCRBYFLOAT", "f", "inf"), ("INCRBYFLOAT", "n", "3"),
        ("APPEND", "a", "he"), ("APPEND", "a", "llo"), ("GET", "a"), ("STRLEN", "a"),
        ("STRLEN", "nope"), ("GETRANGE", "a", "0", "1"), ("GETRANGE", "a", "-3", "-1"),
        ("GETRANGE", "a", "3", "1"), ("GETRANGE", "a", "-1", "-5"), ("GETRANGE", "a", "0", "100"),
        ("GETRANGE", "nope", "0", "1"), ("GETRANGE", "a", "x", "1"), ("SETRANGE", "a", "1", "EY"),
        ("GET", "a"), ("SETRANGE", "a", "-1", "x"), ("SETRANGE", "s2", "3", "x"), ("GET", "s2"),
        ("SETRANGE", "s3", "0", ""), ("EXISTS", "s3"), ("SETRANGE", "a", "0", ""),
        ("MSET", "m1", "1", "m2", "2", "m3", "3"), ("MSET", "m1"), ("MSET", "m1", "1", "m2"),
        ("MGET", "m1", "m2", "nope", "m3", "l"), ("MSETNX", "m1", "x", "m9", "y"), ("GET", "m9"),
        ("MSETNX", "m8", "x", "m9", "y"), ("MGET", "m8", "m9"), ("DEL", "m1", "m2", "nope"),
        ("UNLINK", "m3", "m8"), ("EXISTS", "m9", "m9", "nope", "a"),
        ("LPUSH", "l", "a", "b", "c"), ("RPUSH", "l", "d"), ("LLEN", "l"), ("LRANGE", "l", "0", "-1"),
        ("LRANGE", "l", "1", "2"), ("LRANGE", "l", "-2", "100"), ("LRANGE", "l", "5", "10"),
        ("LRANGE", "l", "x", "1"), ("LPOP", "l"), ("RPOP", "l"), ("LPOP", "l", "0"),
        ("LPOP", "l", "-1"), ("LPOP", "l", "x"), ("LPOP", "l", "5"), ("LPOP", "l"),
        ("LPOP", "nope", "2"), ("RPOP", "nope"), ("LLEN", "l"), ("EXISTS", "l"), ("GET", "l"),
        ("LPUSH", "k", "x"), ("LPUSH", "l"), ("RPUSH", "l2", "1", "2", "3"), ("RPOP", "l2", "2"),
        ("LPOP", "a"), ("LLEN", "a"), ("LRANGE", "a", "0", "1"),
        ("HSET", "h", "f", "1", "g", "2"), ("HSET", "h", "f", "3"), ("HSET", "h", "f"),
        ("HGET", "h", "f"), ("HGET", "h", "nope"), ("HGET", "nope", "f"), ("HLEN", "h"),
        ("HEXISTS", "h", "g"), ("HEXISTS", "h", "x"), ("HGETALL", "h"), ("HGETALL", "nope"),
        ("HINCRBY", "h", "f", "5"), ("HINCRBY", "h", "new", "-2"), ("HINCRBY", "h", "f", "x"),
        ("HSET", "h", "s", "abc"), ("HINCRBY", "h", "s", "1"), ("HDEL", "h", "f", "nope"),
        ("HDEL", "h", "g", "new", "s"), ("EXISTS", "h"), ("HGET", "a", "f"), ("HSET", "a", "f", "v"),
        ("HINCRBY", "hh", "f", "9223372036854775807"), ("HINCRBY", "hh", "f", "1"),
        ("HMSET", "hm", "a", "1", "b", "2"), ("HMSET", "hm", "a", "3"), ("HGET", "hm", "a"),
        ("HLEN", "hm"), ("HMSET", "hm", "a"), ("HMSET", "hm"), ("HMSET", "l2", "f", "v"),
        ("TYPE", "a"), ("TYPE", "l2"), ("TYPE", "hh"), ("TYPE", "nope"),
        ("EXPIRE", "a", "100"), ("TTL", "a"), ("EXPIRE", "a", "100", "NX"), ("EXPIRE", "a", "50", "GT"),
        ("EXPIRE", "a", "200", "GT"), ("EXPIRE", "a", "50", "LT"), ("EXPIRE", "a", "1", "NX", "XX"),
        ("EXPIRE", "a", "1", "GT", "LT"), ("EXPIRE", "a", "1", "FOO"), ("EXPIRE", "a", "x"),
        ("EXPIRE", "nope", "10"), ("PEXPIRE", "a", "100000"), ("PTTL", "a"), ("PERSIST", "a"),
        ("PERSIST", "a"), ("TTL", "a"), ("TTL", "nope"), ("PTTL", "nope"),
        ("EXPIREAT", "a", "99999999999"), ("TTL", "a"), ("PEXPIREAT", "a", "1"), ("EXISTS", "a"),
        ("SET", "e", "v"), ("EXPIRE", "e", "-1"), ("GET", "e"), ("EXPIRE", "e", "9223372036854775807"),
        ("SET", "r1", "v", "EX", "100"), ("RENAME", "r1", "r2"), ("GET", "r1"), ("GET", "r2"),
        ("TTL", "r2"), ("RENAME", "nope", "x"), ("RENAME", "r2", "r2"), ("RPUSH", "rl", "1", "2"),
        ("RENAME", "rl", "rl2"), ("LRANGE", "rl2", "0", "-1"), ("HSET", "rh", "a", "1"),
        ("RENAME", "rh", "r2"), ("HGETALL", "r2"), ("TYPE", "rh"),
        ("KEYS", "*"), ("KEYS", "m*"), ("KEYS", "h?"), ("KEYS", "[rs]*"), ("KEYS", "nomatch*"),
        ("DBSIZE",), ("SELECT", "0"), ("SELECT", "x"), ("SCAN", "x"), ("SCAN", "0", "COUNT", "0"),
        ("SCAN", "0", "FOO"), ("HELLO", "4"), ("HELLO", "x"), ("HELLO", "3", "FOO"),
        ("CLIENT", "SETNAME", "a b"), ("CLIENT", "SETNAME", "me"), ("CLIENT", "GETNAME"),
        ("CLIENT", "FOO"), ("CONFIG", "GET", "save"), ("CONFIG", "GET", "appendonly"),
        ("CONFIG", "GET", "nosuch"), ("CONFIG", "SET", "nosuch", "1"), ("CONFIG", "GET"),
        ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"), ("CONFIG", "GET", "maxmemory-policy"),
        ("CONFIG", "SET", "maxmemory-policy", "noeviction"), ("CONFIG", "GET", "maxmemory"),
        ("FOO",), ("FOO", "a", "b"), ("BLPOP", "bl", "x"), ("BLPOP", "bl", "-1"),
        ("BLPOP", "bl", "0.05"), ("RPUSH", "bl", "x"), ("BLPOP", "bl", "bl2", "1"),
        # Redis rounds the timeout up to milliseconds: above -1 ms it is 0 (no timeout)
        ("BLPOP", "bl", "-0.0011"), ("RPUSH", "bl", "y"), ("BLPOP", "bl", "-0.0001"),
        ("SELECT", "9999999999999"), ("SELECT", "-9999999999999"), ("SELECT", "2147483648"),
        ("SELECT", "-1"),
        ("BRPOP", "nope", "a", "0.01"), ("BLPOP", "a", "0.01"), ("FLUSHDB", "x"),
        ("FLUSHDB",), ("DBSIZE",), ("KEYS", "*"), ("RANDOMKEY",),
        # Cursors out of range, on an empty keyspace (elsewhere Redis's page depends on its
        # table's size), and Redis's cursor syntax (strtoul's). A valid cursor is not here:
        # with 2 shards weft-kv's first call ends at shard 0's end (cursor 1), Redis's at 0.
        ("SCAN", "99999999999"), ("SCAN", "18446744073709551615"), ("SCAN", "-1"),
        ("SCAN", "18446744073709551616"), ("SCAN", "-18446744073709551616"), ("SCAN", " 1"),
        ("SCAN", "1 "), ("SCAN", "+"), ("SCAN", "-"), ("SCAN", "0x10"),
        # sets and sorted sets (redis-benchmark's default suite: SADD, SPOP, ZADD, ZPOPMIN)
        ("SADD", "s", "a", "b", "a"), ("SMEMBERS", "nope"), ("SPOP", "s", "0"), ("SPOP", "nope"),
        ("SPOP", "nope", "2"), ("SPOP", "s", "-1"), ("SPOP", "s", "x"), ("SPOP", "s", "1", "2"),
        ("SADD", "one", "x"), ("SPOP", "one", "5"), ("EXISTS", "one"), ("SADD", "one", "x"),
        ("SPOP", "one"), ("SISMEMBER", "s", "a"), ("SISMEMBER", "s", "z"), ("SCARD", "s"),
        ("SCARD", "nope"), ("SREM", "s", "a", "zz"), ("SMEMBERS", "s"), ("SREM", "s", "b"),
        ("EXISTS", "s"), ("SADD", "s"), ("SADD", "s", "m1", "m2", "m3"),
        ("ZADD", "z", "1.5", "a", "0.1", "b"), ("ZSCORE", "z", "b"), ("ZSCORE", "z", "nope"),
        ("ZSCORE", "nope", "a"), ("ZINCRBY", "z", "1", "a"), ("ZADD", "z", "INCR", "1", "a"),
        ("ZADD", "z", "NX", "INCR", "1", "a"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "0", "-1"), ("ZPOPMIN", "z"), ("ZPOPMIN", "z", "2"), ("ZPOPMIN", "nope"),
        ("ZPOPMIN", "nope", "2"), ("ZADD", "z", "inf", "x", "-inf", "y"), ("ZPOPMAX", "z"),
        ("ZADD", "z", "nan", "x"), ("ZADD", "z", "1e400", "x"), ("ZADD", "z", "1e-400", "x"),
        ("ZADD", "z", "+inf", "q"), ("ZSCORE", "z", "q"), ("ZINCRBY", "z", "-inf", "q"),
        ("ZADD", "z", "NX", "XX", "1", "a"), ("ZADD", "z", "GT", "LT", "1", "a"),
        ("ZADD", "z", "GT", "NX", "1", "a"), ("ZADD", "z", "INCR", "1", "a", "2", "b"),
        ("ZADD", "z", "1"), ("ZADD", "z", "NX", "1"), ("ZADD", "z", "x", "a"), ("ZADD", "z", " 1", "a"),
        ("ZADD", "z", "1 ", "a"), ("ZADD", "z", "0x10", "a"), ("ZADD", "z", "CH", "5", "y"),
        ("ZADD", "z", "CH", "5", "y", "6", "a"), ("ZADD", "z", "GT", "CH", "1", "y", "9", "a"),
        ("ZADD", "z", "LT", "1", "y", "99", "a", "3", "new"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "0", "-1", "REV", "WITHSCORES"), ("ZRANGE", "z", "-2", "100"),
        ("ZRANGE", "z", "1", "0"), ("ZRANGE", "z", "7", "9"), ("ZRANGE", "z", "1", "-1", "REV"),
        ("ZCARD", "z"), ("ZCARD", "nope"), ("ZREM", "z", "y", "nope"), ("ZRANGE", "z", "x", "1"),
        ("ZRANGE", "z", "0", "1", "FOO"), ("TYPE", "z"), ("TYPE", "s"), ("ZADD", "z", "XX", "1", "n2"),
        ("ZADD", "z", "XX", "INCR", "1", "n2"), ("ZADD", "nz", "XX", "1", "a"), ("EXISTS", "nz"),
        ("ZPOPMIN", "z", "-1"), ("ZPOPMIN", "z", "0"), ("ZPOPMIN", "z", "x"), ("ZPOPMIN", "z", "1", "2"),
        ("SADD", "z", "a"), ("ZADD", "s", "1", "a"), ("ZINCRBY", "z", "x", "a"),
        ("ZADD", "z", "1.0", "m"), ("ZSCORE", "z", "m"), ("ZADD", "z", "3.0000000000000004", "m3"),
        ("ZSCORE", "z", "m3"), ("ZRANGE", "z", "0", "0", "withscores"), ("ZADD", "z", "2", "a", "2", "b"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZINCRBY", "z", "1", "new2"), ("ZREM", "z", "a", "b", "m", "m3", "new", "new2", "q", "x", "y"),
        ("EXISTS", "z"), ("ZPOPMAX", "z", "3"), ("RENAME", "s", "s2"), ("SMEMBERS", "s2"),
        ("ZADD", "zz", "1", "a", "2", "b"), ("RENAME", "zz", "zz2"), ("ZRANGE", "zz2", "0", "-1", "WITHSCORES"),
        ("KEYS", "zz*"),
        # ranges and ranks (cmd_zrange.c): by score, by member, REV, LIMIT, their errors
        ("ZADD", "zr", "1", "a", "2", "b", "2", "c", "3", "d", "-inf", "lo", "+inf", "hi", "2.5", "e"),
        ("ZRANGE", "zr", "1", "2", "BYSCORE"), ("ZRANGE", "zr", "(1", "2", "BYSCORE", "WITHSCORES"),
        ("ZRANGE", "zr", "-inf", "+inf", "BYSCORE"), ("ZRANGE", "zr", "(2", "(3", "BYSCORE"),
        ("ZRANGE", "zr", "3", "1", "BYSCORE"), ("ZRANGE", "zr", "3", "1", "BYSCORE", "REV"),
        ("ZRANGE", "zr", "+inf", "-inf", "BYSCORE", "REV", "WITHSCORES"),
        ("ZRANGE", "zr", "(3", "(1", "BYSCORE", "REV"), ("ZRANGE", "zr", "2", "2", "BYSCORE"),
        ("ZRANGE", "zr", "(2", "2", "BYSCORE"), ("ZRANGE", "zr", "-inf", "inf", "BYSCORE", "LIMIT", "1", "3"),
        ("ZRANGE", "zr", "-inf", "inf", "BYSCORE", "LIMIT", "2", "-1"),
        ("ZRANGE", "zr", "-inf", "inf", "BYSCORE", "LIMIT", "-1", "2"),
        ("ZRANGE", "zr", "-inf", "inf", "BYSCORE", "LIMIT", "100", "2"),
        ("ZRANGE", "zr", "-inf", "inf", "BYSCORE", "LIMIT", "0", "0"),
        ("ZRANGE", "zr", "inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2", "WITHSCORES"),
        ("ZRANGE", "zr", "x", "2", "BYSCORE"), ("ZRANGE", "zr", "1", "nan", "BYSCORE"),
        ("ZRANGE", "zr", "(", "2", "BYSCORE"), ("ZRANGE", "zr", " 1", "2", "BYSCORE"),
        ("ZRANGE", "zr", "0x1", "0x2", "BYSCORE"), ("ZRANGE", "zr", "1e400", "1e500", "BYSCORE"),
        ("ZRANGE", "zr", "0", "-1", "LIMIT", "0", "1"), ("ZRANGE", "zr", "0", "-1", "LIMIT", "0", "-1"),
        ("ZRANGE", "zr", "1", "2", "BYSCORE", "LIMIT", "x", "1"), ("ZRANGE", "zr", "1", "2", "BYSCORE", "LIMIT", "1"),
        ("ZRANGE", "zr", "1", "2", "BYSCORE", "BYLEX"), ("ZRANGE", "zr", "1", "2", "REV", "REV"),
        ("ZRANGE", "zr", "-", "+", "BYLEX", "WITHSCORES"), ("ZRANGE", "nope", "1", "2", "BYSCORE"),
        ("ZRANGE", "s2", "1", "2", "BYSCORE"), ("ZRANGE", "s2", "x", "2", "BYSCORE"),
        ("ZRANGEBYSCORE", "zr", "1", "3"), ("ZRANGEBYSCORE", "zr", "1", "3", "WITHSCORES", "LIMIT", "1", "2"),
        ("ZRANGEBYSCORE", "zr", "1", "3", "REV"), ("ZRANGEBYSCORE", "zr", "1", "3", "BYSCORE"),
        ("ZREVRANGEBYSCORE", "zr", "3", "1"), ("ZREVRANGEBYSCORE", "zr", "1", "3"),
        ("ZREVRANGEBYSCORE", "zr", "+inf", "(2", "WITHSCORES"), ("ZREVRANGE", "zr", "0", "2"),
        ("ZREVRANGE", "zr", "0", "-1", "WITHSCORES"), ("ZREVRANGE", "zr", "0", "1", "LIMIT", "0", "1"),
        ("ZREVRANGE", "zr", "0", "1", "REV"), ("ZCOUNT", "zr", "1", "2"), ("ZCOUNT", "zr", "(1", "+inf"),
        ("ZCOUNT", "zr", "3", "1"), ("ZCOUNT", "zr", "x", "1"), ("ZCOUNT", "nope", "1", "2"),
        ("ZCOUNT", "s2", "1", "2"), ("ZRANK", "zr", "c"), ("ZRANK", "zr", "lo"), ("ZRANK", "zr", "hi"),
        ("ZRANK", "zr", "nope"), ("ZRANK", "nope", "a"), ("ZRANK", "s2", "a"), ("ZREVRANK", "zr", "c"),
        ("ZREVRANK", "zr", "hi"), ("ZREVRANK", "zr", "nope"),
        ("ZADD", "zl", "0", "a", "0", "b", "0", "bb", "0", "c", "0", "d", "0", "e", "0", ""),
        ("ZRANGE", "zl", "-", "+", "BYLEX"), ("ZRANGE", "zl", "[b", "(d", "BYLEX"),
        ("ZRANGE", "zl", "(b", "[d", "BYLEX"), ("ZRANGE", "zl", "[", "[b", "BYLEX"),
        ("ZRANGE", "zl", "(", "(b", "BYLEX"), ("ZRANGE", "zl", "+", "-", "BYLEX", "REV"),
        ("ZRANGE", "zl", "[d", "(b", "BYLEX", "REV", "LIMIT", "1", "5"), ("ZRANGE", "zl", "[c", "[a", "BYLEX"),
        ("ZRANGE", "zl", "-", "-", "BYLEX"), ("ZRANGE", "zl", "+", "+", "BYLEX"), ("ZRANGE", "zl", "[b", "[b", "BYLEX"),
        ("ZRANGE", "zl", "(b", "[b", "BYLEX"), ("ZRANGE", "zl", "a", "[b", "BYLEX"),
        ("ZRANGE", "zl", "", "[b", "BYLEX"), ("ZRANGE", "zl", "-x", "+", "BYLEX"),
        ("ZRANGEBYLEX", "zl", "-", "[c", "LIMIT", "2", "10"), ("ZRANGEBYLEX", "zl", "-", "+", "WITHSCORES"),
        ("ZREVRANGEBYLEX", "zl", "+", "(bb"), ("ZREVRANGEBYLEX", "zl", "(bb", "+"),
        ("ZLEXCOUNT", "zl", "-", "+"), ("ZLEXCOUNT", "zl", "[b", "(d"), ("ZLEXCOUNT", "zl", "x", "+"),
        ("ZLEXCOUNT", "nope", "-", "+"), ("ZRANK", "zl", ""), ("ZREVRANK", "zl", ""),
        ("ZRANGE", "zl", "0", "-1", "BYLEX"), ("ZRANGEBYSCORE", "zl", "0", "0", "LIMIT", "3", "-1"),
        ("ZMSCORE", "zr", "a", "nope", "hi", "lo"), ("ZMSCORE", "nope", "a", "b"), ("ZMSCORE", "s2", "a"),
        ("ZMSCORE", "zr"), ("SADD", "sm", "a", "b"), ("SMISMEMBER", "sm", "a", "x", "b"),
        ("SMISMEMBER", "nope", "a"), ("SMISMEMBER", "zr", "a"), ("SMISMEMBER", "sm"),
    ]
    s += more_hashes()
    s += more_lists()
    s += list_moves()
    s += more_sets()
    s += zset_removals()
    s += zset_algebra()
    s += zrand_scan_cases()
    s += edge_cases()
    s += probe_cases()
    s += transactions()
    keys = ["k%d" % i for i in range(12)]
    pending = []  # the body of a random transaction being collected
    for _ in range(1500):
        k, k2 = rng.choice(keys), rng.choice(keys)
        v = str(rng.choice([rng.randint(-5, 50), "x" + str(rng.randint(0, 9))]))
        if not pending and rng.random() < 0.06:
            pending = [None] * rng.randint(2, 6)
        out = pending if pending and None in pending else s
        cmd = (rng.choice([
            ("SET", k, v), ("GET", k), ("INCR", k), ("INCRBY", k, v), ("APPEND", k, v),
            ("DEL", k, k2), ("EXISTS", k, k2), ("LPUSH", k, v), ("RPUSH", k, v, v), ("LPOP", k),
            ("RPOP", k), ("LLEN", k), ("LRANGE", k, "0", "-1"), ("HSET", k, v, v), ("HGET", k, v),
            ("HDEL", k, v), ("HLEN", k), ("HINCRBY", k, v, "2"), ("TYPE", k), ("STRLEN", k),
            ("MSET", k, v, k2, v), ("MGET", k, k2, "nope"), ("RENAME", k, k2), ("GETDEL", k),
            ("SETNX", k, v), ("GETSET", k, v), ("EXPIRE", k, "100"), ("TTL", k), ("PERSIST", k),
            ("SETRANGE", k, "2", v), ("GETRANGE", k, "1", "-2"), ("HEXISTS", k, v),
            ("MSETNX", k, v, k2, v), ("DBSIZE",), ("INCRBYFLOAT", k, "1.5"), ("DECRBY", k, v),
            ("SADD", k, v, v + "b"), ("SREM", k, v), ("SISMEMBER", k, v), ("SCARD", k),
            ("SMEMBERS", k), ("SPOP", k, "100"), ("ZADD", k, v if v[0] != "x" else "1.5", v),
            ("ZINCRBY", k, "0.25", v), ("ZSCORE", k, v), ("ZRANGE", k, "0", "-1", "WITHSCORES"),
            ("ZPOPMIN", k), ("ZPOPMAX", k, "2"), ("ZREM", k, v), ("ZCARD", k),
            ("HSETNX", k, v, v), ("HMGET", k, v, "x1"), ("HINCRBYFLOAT", k, v, "0.5"),
            ("HSTRLEN", k, v), ("HKEYS", k), ("HVALS", k),
            ("LINDEX", k, rng.choice(["0", "-1", "2", "x"])), ("LSET", k, "-1", v),
            ("LREM", k, rng.choice(["0", "1", "-2"]), v), ("LTRIM", k, "1", "-1"),
            ("LINSERT", k, rng.choice(["BEFORE", "AFTER"]), v, v + "i"), ("LPOS", k, v),
            ("LPOS", k, v, "RANK", "-1", "COUNT", "0"), ("RPOPLPUSH", k, k2),
            ("LMOVE", k, k2, rng.choice(["LEFT", "RIGHT"]), rng.choice(["LEFT", "RIGHT"])),
            ("SMOVE", k, k2, v), ("SINTER", k, k2), ("SUNION", k, k2, "nope"), ("SDIFF", k, k2),
            ("SINTERSTORE", k, k2, rng.choice(keys)), ("SUNIONSTORE", k, k2, rng.choice(keys)),
            ("SDIFFSTORE", k, k2, rng.choice(keys)), ("SINTERCARD", "2", k, k2),
            ("SRANDMEMBER", k), ("SRANDMEMBER", k, rng.choice(["-3", "2", "50"])),
            ("ZREMRANGEBYSCORE", k, "-inf", v if v[0] != "x" else "3"),
            ("ZREMRANGEBYRANK", k, "0", rng.choice(["0", "-2"])), ("ZREMRANGEBYLEX", k, "-", "[" + v),
            ("ZUNIONSTORE", k, "2", k2, rng.choice(keys)), ("ZINTER", "2", k, k2, "WITHSCORES"),
            ("ZDIFFSTORE", k, "2", k2, rng.choice(keys)), ("ZINTERCARD", "2", k, k2),
            ("ZUNION", "3", k, k2, rng.choice(keys), "AGGREGATE", "MAX", "WITHSCORES"),
            ("ZINTERSTORE", k, "2", k2, rng.choice(keys), "WEIGHTS", "2", "-1"),
            ("ZRANGESTORE", k, k2, "0", rng.choice(["-1", "1"])), ("ZRANDMEMBER", k, "-2"),
            ("SSCAN", k, "0", "COUNT", "1000"), ("HSCAN", k, "0", "COUNT", "1000"),
            ("ZSCAN", k, "0", "COUNT", "1000"),
        ]))
        if out is s:
            s.append(cmd)
            continue
        pending[pending.index(None)] = cmd
        if None not in pending:
            s += tx_wrap(rng, pending, keys)
            pending = []
    s += [("KEYS", "*"), ("DBSIZE",)]
    return s

def atomicity(port):
    """Commands over several shards are atomic: a reader never sees an MSET half done, a
    RENAME with both names or neither, nor an element of LMOVE in two lists or in none. Returns the number of violations (0 expected)."""
    keys = ["atom:%d" % i for i in range(10)]  # ten keys: on both shards but for 1 in 512
    w, r = Conn(port), Conn(port)
    w.cmd("MSET", *[x for k in keys for x in (k, "0")])
    w.cmd("SET", "ren:a", "v")
    lists = ["mv:%d" % i for i in range(4)]  # on both shards but for 1 in 8
    w.cmd("RPUSH", lists[0], *"abcde")
    bad = []
    def writer():
        for i in range(1, 1500):
            w.cmd("MSET", *[x for k in keys for x in (k, str(i))])
            w.cmd("RENAME", *(("ren:a", "ren:b") if i % 2 else ("ren:b", "ren:a")))
            w.cmd("LMOVE", lists[i % 4], lists[(i + 1) % 4], "LEFT", "RIGHT")
            w.cmd("LMOVE", lists[(i + 1) % 4], lists[i % 4], "RIGHT", "LEFT")
            w.cmd("RPOPLPUSH", lists[i % 4], lists[(i + 1) % 4])
    t = threading.Thread(target=writer); t.start()
    while t.is_alive():
        vals = r.cmd("MGET", *keys)[1:]
        if len(set(vals)) != 1:
            bad.append(("MGET", vals))
        n = r.cmd("EXISTS", "ren:a", "ren:b")
        if n != b":1":
            bad.append(("EXISTS", n))
        r.cmd("MULTI")
        for k in lists:
            r.cmd("LLEN", k)
        lens = r.cmd("EXEC")[1:]
        if sum(int(x[1:]) for x in lens) != 5:
            bad.append(("LMOVE", lens))
    t.join()
    for b in bad[:5]:
        print("NOT ATOMIC: %r" % (b,))
    return len(bad)

def reset_checks(rp, kp):
    """RESET on fresh connections: out of MULTI (never queued) and its WATCHes, back to
    RESP2, the name gone; its arity error."""
    a, b = Conn(rp), Conn(kp)
    L = lambda line: tuple(line.split())
    bad = 0
    for cmd in [L(x) for x in [
            "CLIENT SETNAME r1", "HELLO 3", "WATCH rk", "MULTI", "SET rk 1", "RESET", "EXEC",
            "GET nope", "CLIENT GETNAME", "MULTI", "RESET", "DISCARD", "WATCH rk", "RESET",
            "SET rk 2", "MULTI", "GET rk", "EXEC", "RESET x", "reset", "HELLO 3", "MULTI",
            "reset", "HGETALL nope", "DEL rk"]]:
        ra, rb = a.cmd(*cmd), b.cmd(*cmd)
        if cmd[0] == "HELLO":
            ra, rb = hello_norm(ra), hello_norm(rb)
        if ra != rb:
            bad += 1; print("DIFF reset %r\n  redis:   %r\n  weft-kv: %r" % (cmd, ra, rb))
    print("kv_diff: RESET: %d differences" % bad)
    return bad

def main():
    kv_bin = sys.argv[1]; workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    redis = shutil.which("redis-server")
    if not redis:
        print("kv_diff: redis-server not installed: skipped"); return 77
    rp, kp = free_port(), free_port()
    tmp = tempfile.mkdtemp()
    rs = subprocess.Popen([redis, "--port", str(rp), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", tmp, "--databases", "1"],
                          stdout=subprocess.DEVNULL)
    ks = subprocess.Popen([kv_bin, "--port", str(kp), "--workers", workers],
                          stdout=subprocess.DEVNULL)
    bad = 0
    try:
        wait_port(rp, rs); wait_port(kp, ks)
        a, b = Conn(rp), Conn(kp)
        rng = random.Random(int(os.environ.get("KV_DIFF_SEED", "13")))
        cmds = script(rng)
        txa, txb = TxNorm(), TxNorm()
        for cmd in cmds:
            ra, rb = txa(cmd, a.cmd(*cmd)), txb(cmd, b.cmd(*cmd))
            if ra != rb:
                bad += 1
                if bad <= 20:
                    print("DIFF %r\n  redis:   %r\n  weft-kv: %r" % (cmd, ra, rb))
        print("kv_diff: %d commands, %d differences (%s workers)" % (len(cmds), bad, workers))
        # The same again in RESP3, from an empty keyspace, on connections switched by HELLO 3.
        a.cmd("FLUSHDB"); b.cmd("FLUSHDB")
        a, b = Conn(rp), Conn(kp)
        ha, hb = hello_norm(a.cmd("HELLO", "3")), hello_norm(b.cmd("HELLO", "3"))
        bad3 = 0 if ha == hb else 1
        if bad3:
            print("DIFF HELLO 3\n  redis:   %r\n  weft-kv: %r" % (ha, hb))
        typed = 0
        txa, txb = TxNorm(), TxNorm()
        for cmd in script(random.Random(rng.random())) + RESP3_EXTRA:
            ra, rb = txa(cmd, a.cmd(*cmd)), txb(cmd, b.cmd(*cmd))
            typed += resp3_typed(ra)
            if ra != rb:
                bad3 += 1
                if bad3 <= 20:
                    print("DIFF3 %r\n  redis:   %r\n  weft-kv: %r" % (cmd, ra, rb))
        bad3 += resp3_types(a, b)
        ha, hb = hello_norm(a.cmd("HELLO", "2")), hello_norm(b.cmd("HELLO", "2"))
        if ha != hb or a.cmd("GET", "nope") != b.cmd("GET", "nope") != b"$-1":
            bad3 += 1; print("DIFF back to RESP2: %r %r" % (ha, hb))
        print("kv_diff: RESP3: %d differences (%d replies or parts of RESP3-only types)"
              % (bad3, typed))
        if typed < 50:  # the check would be vacuous: the script lost its RESP3 replies
            bad3 += 1
        bad += bad3
        bad += reset_checks(rp, kp)
        bad += scan_count_check(kp)
        nsr = srandmember_checks(kp)
        print("kv_diff: SRANDMEMBER: %d violations" % nsr)
        bad += nsr
        nzr = zrandmember_checks(kp)
        print("kv_diff: ZRANDMEMBER: %d violations" % nzr)
        bad += nzr
        nsc = scan_checks(kp, random.Random(rng.random()))
        print("kv_diff: SSCAN HSCAN ZSCAN: %d violations" % nsc)
        bad += nsc
        nat = atomicity(kp)
        print("kv_diff: atomicity: %d violations" % nat)
        bad += nat
    finally:
        rs.terminate(); ks.terminate()
        rs.wait(); rc = ks.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        print("kv_diff: weft-kv exited with %d" % rc); return 1
    return 1 if bad else 0

sys.exit(main())
