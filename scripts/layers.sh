#!/usr/bin/env bash
# Checks that calls between the modules of src/ run one way: builds the graph "file A calls a
# function defined in file B" from the library's object files (nm), and fails if it has a
# cycle, printing the files of each cycle. Calls through a function pointer (a callback a
# module was handed) do not appear in the graph, which is the point.
#
# Usage: scripts/layers.sh BUILD_DIR [--print]   (--print also lists every edge)
set -euo pipefail
dir=${1:?usage: $0 BUILD_DIR [--print]}
objs=$(find "$dir/CMakeFiles/weft_objs.dir/src" -name '*.o' | sort)
[ -n "$objs" ] || { echo "layers: no object files under $dir" >&2; exit 2; }
${PYTHON3:-python3} - "$@" $objs <<'PY'
import subprocess, sys, os
args = sys.argv[1:]
printing = '--print' in args
objs = [a for a in args[1:] if a.endswith('.o')]
def name(o):
    p = o.split('/weft_objs.dir/src/')[1]
    return p[:-len('.c.o')] if p.endswith('.c.o') else p[:-len('.o')]
names = {o: name(o) for o in objs}
defined, used = {}, {n: set() for n in names.values()}
# One nm for every object (a call each took most of the check's time): each line is
# "OBJECT:[VALUE] TYPE SYMBOL".
out = subprocess.run(['nm', '-A'] + objs, capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    obj, _, rest = line.partition('.o:')
    n = names[obj + '.o']
    parts = rest.split()
    if len(parts) == 2 and parts[0] == 'U':
        used[n].add(parts[1])
    elif len(parts) == 3 and parts[1] in 'TDBR':
        defined[parts[2]] = n
edges = {n: sorted({defined[s] for s in us if s in defined and defined[s] != n})
         for n, us in used.items()}
if printing:
    for n in sorted(edges):
        print(f'{n} -> {", ".join(edges[n]) or "(nothing)"}')
# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges.get(v, []):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index:
        visit(v)
if sccs:
    for c in sccs:
        print('layers: a circle of calls among: ' + ' '.join(c))
        for v in c:
            print(f'  {v} -> {", ".join(w for w in edges[v] if w in c)}')
    sys.exit(1)
print(f'layers: {len(edges)} modules, no circle of calls')
PY
