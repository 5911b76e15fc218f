#!/usr/bin/env bash
# The build targets that the tests labelled "core" run, one per line, for a configured build
# dir: `make test-lto` builds only these (its link-time optimisation makes every other
# test program a long link for nothing). Prints "all" if ctest or python3 cannot say.
set -u
dir=${1:?usage: $0 BUILD_DIR}
json=$(cd "$dir" && ctest -L core --show-only=json-v1 2>/dev/null) || { echo all; exit 0; }
"${PYTHON3:-python3}" -c '
import json, os, sys
names = sorted({os.path.basename(t["command"][0]) for t in json.load(sys.stdin)["tests"]
                if t.get("command")})
print("\n".join(names) if names else "all")
' <<<"$json" 2>/dev/null || echo all
