# weft's gdb helper: lists the workers and tasks of every weft runtime in the inferior, prints
# a task's wait record, and walks the saved frame pointers of a switched-out coroutine. Works
# on a live process (run or attach) and on a core file; needs only gdb's own Python and the
# library's debug info (a -g build: the struct layouts are read from DWARF; what is written
# here is the saved-context frame of src/arch/*/switch.S, described in SAVED_FRAME below, and
# fallbacks, each marked, for a type or enumerator the debug info lacks).
#
# Load it with:   source /usr/local/share/weft/gdb/weft-gdb.py     (or tools/gdb/ in the repo)
# Commands:       weft workers | weft tasks [--state S] [--name SUBSTR] | weft wait ID
#                 weft bt ID | weft select [ID]
#
# Where the runtimes are found: each worker thread's `tls_worker` (src/worker.c), deduplicated
# by runtime; every task record lives in its runtime's `chunks` list (src/task.c), and a record
# whose flags have WEFT__T_REAPED is free. docs/gdb.md has sample output.
import gdb
import gdb.unwinder

# What a switched-out context saved, as byte offsets from its saved stack pointer
# (weft_task.ctx.sp): the registers the resumed code gets back, and the stack pointer it
# resumes with. x86_64 (src/arch/x86_64/switch.S): r15 +8, r14 +16, r13 +24, r12 +32, rbx +40,
# rbp +48, the resume address +56, rsp = sp + 192 (WEFT__CTX_CALLER_OFFSET: the frame, then the
# caller's red zone). aarch64 (src/arch/aarch64/switch.S): x19..x28 at +0..+72, x29 (fp) +80,
# x30 (lr, where its `ret` goes) +88, sp = sp + 176. From there both ABIs chain frame records
# the same way: [fp] = the caller's fp, [fp + 8] = the return address. (The FP registers the
# switch saves are left out: no frame walk needs them.)
SAVED_FRAME = {
    "x86_64": {
        "pc": ("rip", 56), "fp": ("rbp", 48), "sp": ("rsp", 192),
        "saved": {"rbx": 40, "r12": 32, "r13": 24, "r14": 16, "r15": 8},
    },
    "aarch64": {
        "pc": ("pc", 88), "fp": ("x29", 80), "sp": ("sp", 176),
        "saved": dict([("x%d" % n, (n - 19) * 8) for n in range(19, 29)] + [("x30", 88)]),
    },
}
MAX_FRAMES = 64  # a longer chain is more likely a corrupt one than a real coroutine stack

STATE_NAMES = ["ready", "running", "parked", "notified", "done"]  # task.h, in order


def _arch():
    name = gdb.selected_inferior().architecture().name()
    if "x86-64" in name or "x86_64" in name:
        return "x86_64"
    if "aarch64" in name:
        return "aarch64"
    raise gdb.GdbError("weft: unsupported architecture %s" % name)


def _u64(addr):
    mem = gdb.selected_inferior().read_memory(addr, 8)
    return int.from_bytes(bytes(mem), "little")


def _enum(prefix, fallback):
    """({value: name} of the enumerators of src/ named prefix*, True) read from the debug info,
    so that a kind added in src/ shows up here; else (`fallback`, names in order, False)."""
    try:
        first = gdb.parse_and_eval(prefix + fallback[0])
        names = {int(f.enumval): f.name for f in first.type.strip_typedefs().fields()
                 if f.name.startswith(prefix)}
        if names:
            return {v: n[len(prefix):] for v, n in names.items()}, True
    except gdb.error:
        pass
    return dict(enumerate(fallback)), False


_wait_kind_names = None  # from the debug info, once found


def _wait_kinds():
    """{WEFT__WAIT_* value: "chan-recv"-style name}."""
    global _wait_kind_names
    if _wait_kind_names is not None:
        return _wait_kind_names
    fallback = ["NONE", "SLEEP", "YIELD", "FD", "IO", "CHAN_SEND", "CHAN_RECV", "SELECT",
                "MUTEX", "COND", "SEM", "WAITGROUP", "RWLOCK_RD", "RWLOCK_WR", "ONCE", "EVENT",
                "JOIN", "FUTURE", "POOL_JOB", "GEN_NEXT", "GEN_YIELD", "SMP_ROOM", "SHARDS"]
    kinds, found = _enum("WEFT__WAIT_", fallback)
    names = {v: n.lower().replace("_", "-") for v, n in kinds.items()}
    if found:
        _wait_kind_names = names
    return names


def _flag(name, fallback):
    try:
        return int(gdb.parse_and_eval(name))
    except gdb.error:
        return fallback


def _lookup_type(*names):
    for n in names:
        try:
            return gdb.lookup_type(n)
        except gdb.error:
            continue
    return None


# ---- Finding the runtimes --------------------------------------------------------------------

_UNREADABLE = object()  # _tls_worker's answer when gdb cannot read the thread's TLS


def _tls_worker():
    """The current thread's worker from its `tls_worker` (a weft__worker * Value), None if the
    thread has none (not a worker), or _UNREADABLE."""
    for expr in ("'worker.c'::tls_worker", "tls_worker"):
        try:
            w = gdb.parse_and_eval(expr)
            return w if int(w) != 0 else None
        except gdb.error:  # no such symbol, or TLS gdb cannot read (see _frame_worker)
            continue
    return _UNREADABLE


def _frame_worker():
    """The current thread's worker from its frames, for when gdb cannot read TLS (a static
    executable, a core of another architecture: no libthread_db for it): the `w` of the loop
    (weft__loop) on a worker's own stack, or the task of the coroutine running on it (the
    task trampoline keeps it in r12, x19 on aarch64, while the body runs; its `worker` is the
    thread's: the resumer sets it first)."""
    try:
        f = gdb.newest_frame()
    except gdb.error:
        return None
    depth = 0
    while f is not None and depth < 256:
        try:
            if f.name() == "weft__ctx_task_trampoline":
                arch = f.architecture().name()
                reg = "x19" if "aarch64" in arch else "r12"
                task_t = gdb.lookup_type("struct weft_task").pointer()
                return f.read_register(reg).cast(task_t)["worker"]
            if f.name() == "weft__loop":
                return f.read_var("w")
        except (gdb.error, ValueError, RuntimeError):
            pass  # optimised out
        f, depth = f.older(), depth + 1
    return None


def _text(s):
    """s as src/util/text.h writes a task's name in a line of text: a character below 0x20 and
    DEL as \\xHH, a backslash and a double quote with a backslash before them, any other as it
    is, so a name can neither end its line nor close its quotes."""
    out = []
    for ch in s:
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


SIGNED_FIELDS = ("wait_deadline", "wait_since")  # the int64_t fields read; the rest are unsigned


class Task:
    """One task record, parsed from its bytes (one read per chunk of records: a gdb.Value per
    field would take minutes for a million tasks). Field offsets come from the debug info."""

    _layout = None  # {field: (offset, size, signed)}, and "size": the record's size

    @classmethod
    def layout(cls):
        if cls._layout is None:
            t = gdb.lookup_type("struct weft_task").strip_typedefs()
            lay = {"size": t.sizeof}
            for f in t.fields():
                if f.name:  # (the anonymous union of fn/future/result is not read)
                    lay[f.name] = (f.bitpos // 8, f.type.sizeof, f.name in SIGNED_FIELDS)
            cls._layout = lay
        return cls._layout

    def __init__(self, addr, raw):
        lay = self.layout()
        self.addr = addr

        def field(name):
            off, size, signed = lay[name]
            return int.from_bytes(raw[off:off + size], "little", signed=signed)

        self.word = field("word")
        self.flags = field("flags")
        self.id = field("id")
        off, size, _ = lay["name"]
        # As the bytes were (--name matches them); _text() escapes it for printing.
        self.name = raw[off:off + size].split(b"\0", 1)[0].decode("utf-8", "replace") or "-"
        self.worker = field("worker")  # the weft__worker's address, or 0
        self.sp = field("ctx")  # weft__ctx is one pointer, the saved sp
        self.stack = field("stack")
        self.wait_kind = field("wait_kind")
        self.wait_what = field("wait_what")
        self.wait_since = field("wait_since")
        self.wait_deadline = field("wait_deadline")
        self.cancelled = field("cancelled") & 1  # WEFT__ASKED_CANCEL (bit 1: a detach asked)
        state = self.word & 7
        self.state = STATE_NAMES[state] if state < len(STATE_NAMES) else "state%d" % state

    @classmethod
    def at(cls, addr):
        mem = gdb.selected_inferior().read_memory(addr, cls.layout()["size"])
        return cls(addr, bytes(mem))

    def ref(self):
        if self.id == 0:  # a plain thread's stand-in record (thread_park.c): no id
            return "a plain thread (stand-in 0x%x)" % self.addr
        return "task %d (%s)" % (self.id, _text(self.name))


def _worker_value(addr):
    return gdb.Value(addr).cast(gdb.lookup_type("weft__worker").pointer()).dereference()


class Runtime:
    """One weft__runtime and the gdb threads its workers run on."""

    def __init__(self, rt):
        self.rt = rt
        self.threads = {}  # worker index -> gdb.InferiorThread
        # worker address -> (index, now): what a task's line needs of its worker
        self.workers = {}
        for i in range(self.nworkers):
            w = self.worker(i)
            self.workers[int(w.address)] = (i, int(w["now"]))

    @property
    def nworkers(self):
        return int(self.rt["nworkers"])

    def worker(self, i):
        return self.rt["workers"][i]

    def worker_index(self, t):
        return self.workers.get(t.worker, (None, None))[0]

    def worker_now(self, t):
        return self.workers.get(t.worker, (None, None))[1]

    def thread_of(self, t):
        return self.threads.get(self.worker_index(t))

    def tasks(self):
        """Every task record in use (not reaped), as Task objects."""
        reaped = _flag("WEFT__T_REAPED", 0x40)
        size = Task.layout()["size"]
        chunk_t = _lookup_type("task_chunk", "struct task_chunk")
        if chunk_t is not None:
            chunk_t = chunk_t.strip_typedefs()
            ntasks = chunk_t["tasks"].type.range()[1] + 1
            first_off = chunk_t["tasks"].bitpos // 8
        else:  # task.c: next, raw, then CHUNK_TASKS (64) records, 64-byte aligned
            ntasks, first_off = 64, 64
        inf = gdb.selected_inferior()
        c = int(self.rt["chunks"])
        while c != 0:
            first = c + first_off
            raw = bytes(inf.read_memory(first, ntasks * size))
            for i in range(ntasks):
                t = Task(first + i * size, raw[i * size:(i + 1) * size])
                if not t.flags & reaped:
                    yield t
            c = _u64(c)  # task_chunk.next is its first field


def runtimes():
    """Every weft runtime of the selected inferior, found through its workers' threads."""
    inf = gdb.selected_inferior()
    if inf.pid == 0 and not inf.threads():
        raise gdb.GdbError("weft: no process (run it, attach to it, or load a core file)")
    found = {}
    old = gdb.selected_thread()
    _unwinder.paused = True
    try:
        for th in inf.threads():
            th.switch()
            w = _tls_worker()
            if w is _UNREADABLE:
                w = _frame_worker()
            if w is None or int(w) == 0:
                continue
            rt_ptr = w.dereference()["rt"]
            if int(rt_ptr) not in found:
                found[int(rt_ptr)] = Runtime(rt_ptr.dereference())
            found[int(rt_ptr)].threads[int(w.dereference()["index"])] = th
    finally:
        _unwinder.paused = False
        if old is not None and old.is_valid():
            old.switch()
    if not found:
        raise gdb.GdbError("weft: no weft runtime in this process")
    return list(found.values())


# ---- Describing a task -----------------------------------------------------------------------

def _ns(ns):
    """A duration for a person: 850ns, 12.3us, 4.5ms, 3.2s, 59m59s."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return "%s%dns" % (sign, ns)
    for unit, div in (("us", 1e3), ("ms", 1e6), ("s", 1e9)):
        if ns < div * 1000 or unit == "s" and ns < 60e9:
            return "%s%.1f%s" % (sign, ns / div, unit)
    return "%s%dm%02ds" % (sign, ns // 60_000_000_000, ns // 1_000_000_000 % 60)


def _task_ref(addr):
    return Task.at(addr).ref() if addr else "nobody"


def _mutex_owner(addr):
    """The task holding the mutex at `addr`: sync.c's sync_state overlay (head, tail, owner)."""
    st = _lookup_type("sync_state")
    if st is not None:
        return int(gdb.Value(addr).cast(st.pointer()).dereference()["owner"])
    return _u64(addr + 16)


def wait_object(kind, addr):
    """What a task of this wait kind waits on, from wait_what (scheduler.h's list)."""
    if kind in ("fd", "io"):
        return "fd %d" % (addr if addr < 1 << 63 else addr - (1 << 64))
    if kind in ("sleep", "yield") or addr == 0:
        return ""
    try:
        if kind in ("chan-send", "chan-recv"):
            c = gdb.Value(addr).cast(gdb.lookup_type("struct weft_chan").pointer()).dereference()
            closed = ", closed" if int(c["closed"]) else ""
            return "0x%x (%d/%d queued%s)" % (addr, int(c["len"]), int(c["cap"]), closed)
        if kind == "mutex":
            return "0x%x held by %s" % (addr, _task_ref(_mutex_owner(addr)))
        if kind == "join":
            return _task_ref(addr)
        if kind == "smp-room":
            return "ring to worker %d" % int(_worker_value(addr)["index"])
    except gdb.error:  # no type for it, or unreadable memory: the address alone
        pass
    return "0x%x" % addr


def wait_record(r, t):
    """(kind, object, waited_ns, deadline) of a parked task, else None. Times are measured on
    its worker's clock as of the worker's last tick (weft__worker.now), not at the stop."""
    if t.state != "parked":
        return None
    kind = _wait_kinds().get(t.wait_kind, "kind%d" % t.wait_kind)
    now = r.worker_now(t)
    waited = now - t.wait_since if now is not None and t.wait_since else None
    if t.wait_deadline < 0:
        left = "forever"
    elif now is not None:
        left = "in " + _ns(t.wait_deadline - now)
    else:
        left = "at %dns" % t.wait_deadline
    return kind, wait_object(kind, t.wait_what), waited, left


# ---- Commands --------------------------------------------------------------------------------

def find_task(task_id):
    for r in runtimes():
        for t in r.tasks():
            if t.id == task_id:
                return r, t
    raise gdb.GdbError("weft: no live task with id %d" % task_id)


def _parse_id(arg, usage):
    args = gdb.string_to_argv(arg)
    if len(args) != 1:
        raise gdb.GdbError("usage: " + usage)
    try:
        return int(args[0], 0)
    except ValueError:
        raise gdb.GdbError("usage: " + usage)


class WeftPrefix(gdb.Command):
    """weft runtime inspection: weft workers, weft tasks, weft wait ID, weft bt ID, weft select."""

    def __init__(self):
        super().__init__("weft", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class WeftWorkers(gdb.Command):
    """List each weft runtime's workers: index, thread, current task, ready-queue length.

Usage: weft workers"""

    def __init__(self):
        super().__init__("weft workers", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        for r in runtimes():
            rt = r.rt
            main = int(rt["main_task"])
            print("runtime 0x%x: %d worker%s, main %s" % (
                int(rt.address), r.nworkers, "" if r.nworkers == 1 else "s",
                _task_ref(main) if main else "task -"))
            print("  %-2s %-18s %-24s %6s %7s %6s" % (
                "W", "THREAD", "CURRENT", "READY", "TIMERS", "TASKS"))
            for i in range(r.nworkers):
                w = r.worker(i)
                th = r.threads.get(i)
                where = "%d (LWP %d)" % (th.num, th.ptid[1]) if th else "-"
                cur = int(w["current"])
                current = _task_ref(cur) if cur else "(loop)"
                print("  %-2d %-18s %-24s %6d %7d %6d" % (
                    i, where, current, int(w["sched"]["ready"]["len"]),
                    int(w["timers"]["n"]), int(w["tasks"]["nlive"])))


class WeftTasks(gdb.Command):
    """List every live weft task: id, name, state, worker, what it waits on, for how long.

Usage: weft tasks [--state ready|running|parked|notified|done] [--name SUBSTRING]"""

    def __init__(self):
        super().__init__("weft tasks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        args = gdb.string_to_argv(arg)
        state = name = None
        while args:
            opt = args.pop(0)
            if opt in ("--state", "--name") and args:
                if opt == "--state":
                    state = args.pop(0)
                else:
                    name = args.pop(0)
            else:
                raise gdb.GdbError("usage: weft tasks [--state S] [--name SUBSTRING]")
        if state is not None and state not in STATE_NAMES:
            raise gdb.GdbError("weft: state is one of " + ", ".join(STATE_NAMES))
        for r in runtimes():
            print("runtime 0x%x:" % int(r.rt.address))
            print("  %5s %-16s %-8s %2s  %-44s %8s  %s" % (
                "ID", "NAME", "STATE", "W", "WAITS ON", "FOR", "DEADLINE"))
            n = 0
            for t in sorted(r.tasks(), key=lambda t: t.id):
                if state and t.state != state or name and name not in t.name:
                    continue
                wi = r.worker_index(t)
                rec = wait_record(r, t)
                waits = waited = left = ""
                if rec:
                    waits = (rec[0] + " " + rec[1]).strip()
                    waited = _ns(rec[2]) if rec[2] is not None else "?"
                    left = rec[3]
                line = "  %5d %-16s %-8s %2s  %-44s %8s  %s" % (
                    t.id, _text(t.name), t.state, "-" if wi is None else wi, waits, waited, left)
                print(line.rstrip())
                n += 1
            print("  (%d task%s)" % (n, "" if n == 1 else "s"))


class WeftWait(gdb.Command):
    """Print the full wait record of one weft task.

Usage: weft wait ID"""

    def __init__(self):
        super().__init__("weft wait", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        task_id = _parse_id(arg, "weft wait ID")
        r, t = find_task(task_id)
        print("%s: %s on worker %s" % (t.ref(), t.state, r.worker_index(t)))
        rec = wait_record(r, t)
        if rec is None:
            print("  not parked: no wait record")
            return
        kind, obj, waited, left = rec
        print("  kind      %s (%d)" % (kind, t.wait_kind))
        print("  object    %s" % (obj or "-"))
        print("  what      0x%x" % t.wait_what)
        print("  since     %d ns (%s ago)" % (
            t.wait_since, _ns(waited) if waited is not None else "?"))
        print("  deadline  %s%s" % (
            "" if t.wait_deadline < 0 else "%d ns, " % t.wait_deadline, left))
        print("  cancelled %s" % ("yes" if t.cancelled else "no"))


_own_files = {}  # (start, end, name) of a function's block: its source file
_OWN_ROWS = 4096  # line-table rows read per function at most: a long body is still quick


def _innermost_function_block(pc):
    """The block of the innermost function (inlined or not) at pc, or None."""
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        return None
    while block is not None and block.function is None:
        block = block.superblock
    return block


def _own_file(block):
    """The source file of the function whose block this is: the file the line table names
    most often at the addresses that hold its own code (no call inlined into it there; at
    most _OWN_ROWS rows looked at). Not the symbol's symtab: under LTO that names the file of
    another unit's line table (a header, another module: "sleeper_body () at
    src/io/../worker.h"), since the function's declaration is in the early debug info of its
    own unit and gdb reads its file number against the unit the code was generated in. Not
    the first such address alone either: LTO's line table gives a function's first
    instruction the line of a call inlined after it."""
    key = (block.start, block.end, block.function.print_name)
    if key in _own_files:
        return _own_files[key]
    votes = {}
    pc, rows = block.start, 0
    while pc < block.end and rows < _OWN_ROWS:
        sal = gdb.find_pc_line(pc)
        inner = _innermost_function_block(pc)
        if (sal.symtab is not None and inner is not None
                and (inner.start, inner.end, inner.function.print_name) == key):
            votes[sal.symtab.filename] = votes.get(sal.symtab.filename, 0) + 1
        pc = sal.last + 1 if sal.last is not None and sal.last >= pc else pc + 1
        rows += 1
    if votes:  # the most rows; the first seen among equals (dicts keep their order)
        name = max(votes, key=votes.get)
    else:
        name = block.function.symtab.filename if block.function.symtab else None
    _own_files[key] = name
    return name


def _symbolise(pc, is_return):
    """'func () at file:line' for a code address, one line per function: inlined ones first
    (marked so), then the function they were inlined into, as gdb's bt prints them. A return
    address is looked up at pc - 1 (in the call), since the next instruction may belong to
    another line or function."""
    look = pc - 1 if is_return else pc
    try:
        block = gdb.block_for_pc(look)
    except RuntimeError:
        block = None
    funcs = []  # (symbol, its block)
    while block is not None and not block.is_global and not block.is_static:
        if block.function is not None:
            funcs.append((block.function, block))
        block = block.superblock
    if not funcs:
        # No debug info: the minimal symbol, if any.
        text = gdb.execute("info symbol 0x%x" % look, to_string=True).strip()
        name = "??" if text.startswith("No symbol") else text.split(" in section")[0]
        return ["%s ()" % name.split(" + ")[0]]
    sal = gdb.find_pc_line(look)
    out = []
    for i, (f, fblock) in enumerate(funcs):
        if i == 0 and sal.symtab is not None:
            where = " at %s:%d" % (sal.symtab.filename, sal.line)
        else:  # gdb's Python gives no call-site line for an inlined call: only the file
            own = _own_file(fblock)
            where = " at %s" % own if own else ""
        out.append("%s ()%s%s" % (f.print_name, where, " [inlined]" if i < len(funcs) - 1 else ""))
    return out


def stack_bounds(t):
    """The usable range [lo, hi) of t's stack (src/stack.h), or (None, None): hi is the
    descriptor's own address."""
    if not t.stack:
        return None, None
    stack = gdb.Value(t.stack).cast(gdb.lookup_type("weft__stack").pointer()).dereference()
    return int(stack["lo"]), int(t.stack)


def saved_frames(t):
    """[(pc, is_return)] of a switched-out task, from its saved context outward."""
    layout = SAVED_FRAME[_arch()]
    sp = t.sp
    lo, hi = stack_bounds(t)
    if sp == 0 or lo is not None and not lo <= sp < hi:
        raise gdb.GdbError("weft: saved stack pointer 0x%x is not on the task's stack" % sp)
    # x86_64 resumes at the address after its jump into the switch; aarch64 "returns" to lr.
    # Either lies just after the switch in the function that called it, so both are looked
    # up as return addresses.
    frames = [(_u64(sp + layout["pc"][1]), True)]
    fp = _u64(sp + layout["fp"][1])
    low = sp + layout["sp"][1]  # every caller's frame lies above the resumed stack pointer
    while fp and len(frames) < MAX_FRAMES:
        if fp < low or hi is not None and fp + 16 > hi or fp % 8:
            frames.append((None, "frame chain leaves the stack at 0x%x" % fp))
            break
        ret = _u64(fp + 8)
        if ret == 0:
            break
        frames.append((ret, True))
        low, fp = fp + 16, _u64(fp)
    return frames


def not_switched_out(r, t):
    """Why t has no saved context to walk (a line to print), or None if it has one."""
    if t.state in ("running", "notified") or t.worker and int(
            _worker_value(t.worker)["current"]) == t.addr:
        th = r.thread_of(t)
        num = th.num if th else "?"
        return "running on thread %s: use `thread %s` + `bt`" % (num, num)
    if t.state == "done":
        return "finished: no stack"
    if not t.flags & _flag("WEFT__T_STARTED", 0x08) or not t.stack:
        return "has not run yet: no stack"
    return None


class WeftBt(gdb.Command):
    """Backtrace of a switched-out (parked or ready) weft task, from its saved frame pointers.

Usage: weft bt ID"""

    def __init__(self):
        super().__init__("weft bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        task_id = _parse_id(arg, "weft bt ID")
        r, t = find_task(task_id)
        print("%s, %s on worker %s:" % (t.ref(), t.state, r.worker_index(t)))
        why = not_switched_out(r, t)
        if why:
            print("  " + why)
            return
        lo, hi = stack_bounds(t)
        if lo is not None and lo <= t.sp < hi:
            print("  stack: %.1f KiB in use of %.1f KiB" % ((hi - t.sp) / 1024, (hi - lo) / 1024))
        n = 0
        for pc, info in saved_frames(t):
            if pc is None:
                print("  (%s)" % info)
                break
            for line in _symbolise(pc, info):
                print("#%-3d 0x%016x in %s" % (n, pc, line))
                n += 1


# ---- weft select: a task's frames as gdb's own --------------------------------------------

class _FrameId:
    def __init__(self, sp, pc):
        self.sp, self.pc = sp, pc


class TaskUnwinder(gdb.unwinder.Unwinder):
    """While a task is selected: unwinds frame #0 of the thread selected then into the task's
    saved registers, so that gdb's own unwinder (DWARF, with arguments, locals and call-site
    lines) shows the task's frames as #1 onward. Off again at `weft select`, and whenever the
    process resumes (its frame #0 is then another)."""

    def __init__(self):
        super().__init__("weft-task")
        self.regs = None  # {register name: value} of the selected task's resume point
        self.thread = None  # the ptid of the thread whose frame #0 leads into it
        self.paused = False  # while runtimes() reads each thread's own frames

    def __call__(self, pending_frame):
        if self.regs is None or self.paused or pending_frame.level() != 0:
            return None
        th = gdb.selected_thread()
        if th is None or th.ptid != self.thread:
            return None
        layout = SAVED_FRAME[_arch()]
        frame_id = _FrameId(pending_frame.read_register(layout["sp"][0]),
                            pending_frame.read_register(layout["pc"][0]))
        info = pending_frame.create_unwind_info(frame_id)
        u64 = gdb.lookup_type("unsigned long long")
        for name, value in self.regs.items():
            info.add_saved_register(name, gdb.Value(value).cast(u64))
        return info

    def select(self, t):
        layout = SAVED_FRAME[_arch()]
        sp = t.sp
        regs = {name: _u64(sp + off) for name, off in layout["saved"].items()}
        regs[layout["pc"][0]] = _u64(sp + layout["pc"][1])
        regs[layout["fp"][0]] = _u64(sp + layout["fp"][1])
        regs[layout["sp"][0]] = sp + layout["sp"][1]
        self.regs, self.thread = regs, gdb.selected_thread().ptid
        gdb.invalidate_cached_frames()

    def clear(self, event=None):
        if self.regs is not None:
            self.regs = self.thread = None
            gdb.invalidate_cached_frames()


_unwinder = TaskUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)
gdb.events.cont.connect(_unwinder.clear)
gdb.events.exited.connect(_unwinder.clear)


class WeftSelect(gdb.Command):
    """Show a switched-out weft task's frames with gdb's own unwinder, after the current
thread's frame #0: then `bt`, `frame N`, `info locals` work on the task's frames (#1 on).
`weft select` alone, or resuming the process, goes back.

Usage: weft select [ID]"""

    def __init__(self):
        super().__init__("weft select", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            _unwinder.clear()
            print("weft: no task selected: frames are the thread's own")
            return
        if not hasattr(gdb.PendingFrame, "level"):
            raise gdb.GdbError("weft: weft select needs gdb 11 or later")
        task_id = _parse_id(arg, "weft select [ID]")
        r, t = find_task(task_id)
        why = not_switched_out(r, t)
        if why:
            raise gdb.GdbError("weft: %s is %s" % (t.ref(), why))
        _unwinder.select(t)
        print("weft: frames #1 on are %s's, until `weft select` or the process resumes"
              % t.ref())


def _forget_layouts(event=None):
    """What was read from one program's debug info does not hold for the next one loaded."""
    global _wait_kind_names
    Task._layout = None
    _wait_kind_names = None


gdb.events.new_objfile.connect(_forget_layouts)
gdb.events.clear_objfiles.connect(_forget_layouts)
WeftPrefix()
WeftWorkers()
WeftTasks()
WeftWait()
WeftBt()
WeftSelect()
