#!/usr/bin/env bash
# The build targets that the tests labelled LABEL (default "core"; "" for every test) run,
# one per line, for a configured build dir: `make test-lto` builds only the core ones (its
# link-time optimisation makes every other test program a long link for nothing), so does
# `make cross-test` (it runs no other), and `make test-tsan` only its stress programs (not the servers and libraries no test of that
# build runs). Read from the CTestTestfile.cmake files, which name each test's program by its
# path before it is built (ctest's own listing leaves the command out until the program
# exists, so on a fresh build dir it gave nothing, and every target was built). A test whose
# program lies outside the build dir (a script, an interpreter) names no target. Prints "all"
# if nothing can be said. A test that also has the label EXCLUDE is left out (`make test-lto`
# leaves out the examples: demos whose links would be a third of its time).
#   scripts/core_targets.sh BUILD_DIR [LABEL [EXCLUDE]]
set -u
dir=${1:?usage: $0 BUILD_DIR [LABEL]}
label=${2-core}
exclude=${3-}
"${PYTHON3:-python3}" - "$dir" "$label" "$exclude" <<'PY' 2>/dev/null || echo all
import os, re, sys
root, label, exclude = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
add = re.compile(r'^add_test\(\[=\[(.+?)\]=\] (.*)')
arg = re.compile(r'"([^"]*)"')
inside = lambda path: os.path.realpath(path).startswith(root + os.sep)
props = re.compile(r'^set_tests_properties\(\[=\[(.+?)\]=\] PROPERTIES .*?\bLABELS "([^"]*)"')
programs, labels = {}, {}
for d, _, files in os.walk(root):
    if 'CTestTestfile.cmake' not in files:
        continue
    for line in open(os.path.join(d, 'CTestTestfile.cmake')):
        m = add.match(line)
        if m:
            # The program: the command itself. In a cross build, whose lines name the
            # emulator (env QEMU_LD_PREFIX=... qemu-aarch64: first, or passed to a script
            # such as gdb/check.sh), the first argument inside the build dir.
            args = arg.findall(m.group(2))
            if any(os.path.basename(a).startswith('qemu-') for a in args):
                args = [a for a in args if inside(a)]
            programs[m.group(1)] = args[0] if args and inside(args[0]) else ''
        m = props.match(line)
        if m:
            labels[m.group(1)] = m.group(2).split(';')
names = set()
for test, path in programs.items():
    if label and label not in labels.get(test, []):
        continue
    if exclude and exclude in labels.get(test, []):
        continue
    if path:
        names.add(os.path.basename(path))
print('\n'.join(sorted(names)) if names else 'all')
PY
