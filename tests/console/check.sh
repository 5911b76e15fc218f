#!/usr/bin/env bash
# Tests the debug console (/debug/, src/debug_console.html) in headless Chromium: starts
# console_target (tasks parked in known ways, one stalled, one with a deep stack, one parked
# alone on a channel), loads http://127.0.0.1:PORT/debug/?park_s=1 with --dump-dom after a few
# seconds of virtual time, so that the page's script has polled /debug/stats and /debug/tasks
# several times, and checks that the DOM it rendered shows the workers, the tasks with their
# waits, the charts fed, and exactly the lints console_target set up.
#
#   check.sh CONSOLE_TARGET
#
# CONSOLE_SCREENSHOT=path.png also saves a 1280x900 screenshot of the page (docs/console.png:
# with CONSOLE_TARGET_BUSY=1, so that the charts have something to show).
# Exits 77 (skipped) when Chromium is missing, unless CI=true: then that fails.
set -uo pipefail
target=$(realpath "${1:?usage: $0 CONSOLE_TARGET}")

chromium=""
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null; then
        chromium=$(command -v "$c")
        break
    fi
done
if [ -z "$chromium" ]; then
    if [ "${CI:-}" = true ]; then
        echo "console: FAIL, chromium is not installed (scripts/deps.sh test installs it)"
        exit 1
    fi
    echo "console: SKIPPED, chromium is not installed (scripts/deps.sh test installs it)"
    exit 77
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$target" >"$tmp/target.out" 2>"$tmp/target.err" &
pid=$!
# Ready within a second or so (the stall is caught in about 125 ms, then 1.3 s of lonely
# wait); 60 s for a loaded machine or a sanitizer build.
port=""
for _ in $(seq 600); do
    port=$(sed -n 's/^ready \([0-9][0-9]*\)$/\1/p' "$tmp/target.out")
    [ -n "$port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "console: FAIL, console_target ended before it was ready:"
        sed 's/^/  | /' "$tmp/target.out" "$tmp/target.err"
        exit 1
    fi
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "console: FAIL, console_target was not ready in 60 s:"
    sed 's/^/  | /' "$tmp/target.err"
    exit 1
fi
url="http://127.0.0.1:$port/debug/?park_s=1"

# --no-sandbox: Chromium's sandbox refuses to run as root (containers, CI). Virtual time
# stands still while a fetch is in flight, so 5 s of it is about five polls of the page
# however slow the machine.
CHROME=(timeout 120 "$chromium" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage
        --no-first-run --user-data-dir="$tmp/profile")
"${CHROME[@]}" --virtual-time-budget=5000 --dump-dom "$url" >"$tmp/dom.html" 2>"$tmp/chromium.err"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$tmp/dom.html" ]; then
    echo "console: FAIL, chromium --dump-dom exited with $rc:"
    sed 's/^/  | /' "$tmp/chromium.err"
    exit 1
fi
if [ -n "${CONSOLE_SCREENSHOT:-}" ]; then
    # 40 polls, so that the charts show a stretch of history.
    "${CHROME[@]}" --virtual-time-budget=40000 --hide-scrollbars --window-size=1280,900 \
        --screenshot="$(realpath -m "$CONSOLE_SCREENSHOT")" "$url" >/dev/null 2>&1 ||
        echo "console: the screenshot failed (the checks go on)"
fi

${PYTHON3:-python3} - "$tmp/dom.html" "$port" <<'PY'
import sys, urllib.request
from html.parser import HTMLParser

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.kids, self.parts = tag, dict(attrs), parent, [], []
    def text(self):
        return ''.join(p if isinstance(p, str) else p.text() for p in self.parts)
    def walk(self):
        yield self
        for k in self.kids:
            yield from k.walk()
    def find(self, tag=None, cls=None, **attrs):
        for n in self.walk():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.attrs.get('class', '').split():
                continue
            if all(n.attrs.get(k.replace('_', '-')) == v for k, v in attrs.items()):
                yield n

VOID = {'meta', 'link', 'br', 'img', 'input', 'hr', 'col', 'source', 'wbr'}
class Tree(HTMLParser):
    def __init__(self):
        super().__init__()
        self.root = self.cur = Node('#root', [], None)
    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.kids.append(n)
        self.cur.parts.append(n)
        if tag not in VOID:
            self.cur = n
    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent
    def handle_data(self, data):
        self.cur.parts.append(data)

dom_path, port = sys.argv[1], sys.argv[2]
tree = Tree()
tree.feed(open(dom_path, encoding='utf-8').read())
root = tree.root
failures = []
def check(cond, what):
    if not cond:
        failures.append(what)
    return cond

# The page is one self-contained document: nothing fetched from elsewhere.
page = urllib.request.urlopen(f'http://127.0.0.1:{port}/debug/', timeout=10).read().decode()
for bad in ('<script src', '<link', '<img', 'url(', '@import', 'http://', 'https://'):
    check(bad not in page, f'the page refers to something outside it: {bad!r}')

body = next(root.find('body'), None)
polls = int(body.attrs.get('data-polls', '0')) if body else 0
check(polls >= 2, f'the page polled {polls} times (want at least 2: rates need two)')
status = next(root.find(id='status'), None)
check(status is not None and 'ok' in status.attrs.get('class', ''),
      'status: ' + (status.text() if status else 'missing'))

# Workers: both, each with its state and ready queue.
workers = {n.attrs['data-worker']: n for n in root.find('tr') if 'data-worker' in n.attrs}
check(sorted(workers) == ['0', '1'], f'workers shown: {sorted(workers)}')
for k, tr in workers.items():
    cells = [td.text().strip() for td in tr.find('td')]
    check(len(cells) >= 5 and cells[1] in ('asleep', 'awake') and cells[2].isdigit(),
          f'worker {k} row: {cells}')

# Tasks: each named one, with its state and wait.
rows = {}
for tr in root.find('tr', cls='task'):
    cells = [td.text().strip() for td in tr.find('td')]
    rows[cells[1]] = {'id': tr.attrs['data-task'], 'cells': cells,
                      'lints': tr.attrs.get('data-lints', '').split()}
def cell(name, i):
    return rows[name]['cells'][i] if name in rows else None
for name in ('main', 'weft-debug', 'holder', 'locker', 'sleeper', 'rx-a', 'rx-b', 'orphan-rx',
             'deep', 'spinner'):
    check(name in rows, f'task {name!r} is not in the table (rows: {sorted(rows)})')
for name in ('holder', 'locker', 'sleeper', 'rx-a', 'rx-b', 'orphan-rx', 'deep', 'spinner'):
    check(cell(name, 3) == 'parked', f'{name}: state {cell(name, 3)!r}')
check(cell('locker', 2) == '1' and cell('holder', 2) == '0', 'the workers of locker and holder')
holder = rows.get('holder', {}).get('id')
w = cell('locker', 4) or ''
check(w.startswith('mutex 0x') and f'held by task {holder}' in w, f'locker waits on: {w!r}')
for name in ('rx-a', 'rx-b', 'orphan-rx'):
    w = cell(name, 4) or ''
    check(w.startswith('channel receive 0x'), f'{name} waits on: {w!r}')
check(cell('rx-a', 4) == cell('rx-b', 4), 'rx-a and rx-b wait on the same channel')
check(cell('orphan-rx', 4) != cell('rx-a', 4), 'orphan-rx waits on a channel of its own')
for name in ('sleeper', 'holder', 'deep', 'spinner'):
    w = cell(name, 4) or ''
    check(w.startswith('sleep'), f'{name} waits on: {w!r}')
check((cell('spinner', 8) or '0').isdigit() and int(cell('spinner', 8) or 0) >= 1,
      f'spinner stalls: {cell("spinner", 8)!r}')
st = cell('deep', 7) or ''
check(st.endswith('% of 64 KiB') and int(st.split('%')[0]) > 75, f'deep stack: {st!r}')
for name in ('orphan-rx',):
    check(cell(name, 5) not in (None, '') and cell(name, 6) not in (None, ''),
          f'{name}: waiting {cell(name, 5)!r}, age {cell(name, 6)!r}')

# Lints: exactly the ones set up (a stray stall of another task, from a loaded machine, is
# allowed; a lonely park or a deep stack elsewhere is not).
lints = [(li.attrs.get('data-lint'), li.attrs.get('data-task'), li.text())
         for li in root.find('li', cls='lint')]
def has(kind, name):
    return any(k == kind and t == rows.get(name, {}).get('id') for k, t, _ in lints)
check(has('stall', 'spinner'), f'no stall lint for spinner: {lints}')
check(has('stack', 'deep'), f'no stack lint for deep: {lints}')
check(has('lonely', 'orphan-rx'), f'no lonely-park lint for orphan-rx: {lints}')
for kind, t, text in lints:
    if kind == 'stall':
        check('without yielding' in text, f'stall lint text: {text!r}')
    elif kind == 'stack':
        check(t == rows.get('deep', {}).get('id'), f'a stack lint for another task: {text!r}')
    elif kind == 'lonely':
        check(t == rows.get('orphan-rx', {}).get('id'), f'a stray lonely-park lint: {text!r}')
        check('orphan-rx' in text and 'channel receive' in text, f'lonely lint text: {text!r}')
    else:
        check(False, f'an unknown lint: {kind!r} {text!r}')
check('stall' in rows.get('spinner', {}).get('lints', []), 'spinner row not marked as linted')

# Charts: fed by the polls (a rate needs two), and the two histograms drawn.
charts = {c.attrs['data-series']: int(c.attrs.get('data-samples', '0'))
          for c in root.find('canvas') if 'data-series' in c.attrs}
check(len(charts) >= 10, f'charts: {sorted(charts)}')
check(charts.get('tasks', 0) >= 2 and charts.get('resumes', 0) >= 1, f'chart samples: {charts}')
hists = [c.attrs['data-hist'] for c in root.find('canvas') if 'data-hist' in c.attrs]
check(sorted(hists) == ['poll_time', 'schedule_latency'], f'histograms: {hists}')

if failures:
    print('console: FAIL')
    for f in failures:
        print('  ' + f)
    sys.exit(1)
print(f'console: ok ({polls} polls, {len(rows)} tasks, {len(lints)} lints)')
PY
rc=$?
if [ $rc -ne 0 ]; then
    echo "  (the rendered DOM, the target's stderr and chromium's stderr follow)"
    sed 's/^/  dom | /' "$tmp/dom.html" | head -c 20000
    sed 's/^/  target | /' "$tmp/target.err"
    grep -v -e dbus -e 'Fontconfig' "$tmp/chromium.err" | sed 's/^/  chromium | /' | tail -20
fi

# A clean end on SIGTERM: every task cancelled and reaped (and, under ASan, nothing leaked).
kill -TERM "$pid"
wait "$pid"
trc=$?
pid=""
if [ $trc -ne 0 ]; then
    echo "console: FAIL, console_target exited with $trc after SIGTERM:"
    sed 's/^/  | /' "$tmp/target.err"
    exit 1
fi
exit $rc
