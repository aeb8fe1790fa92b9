#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run the benchmarks against the build in BUILD and print the table of
# docs/benchmarks.md (the same as `meson test -C BUILD --suite bench -v`).
#   tests/bench/run.sh BUILD [--quick] [--json FILE] [--markdown FILE] [--strict] [--keep]
#                      [--phases attach,life,runtime,reads,idle,overrides,detection]
#                      [--profile DIR] [--no-breakdown | --breakdown]
# Use a release build: meson setup --buildtype=release BUILD.  The full run
# breaks a VM's life down by step with perf and strace when both exist.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
        echo "Usage: $0 BUILD [bench.py options]" >&2
        exit 2
fi
build=$(readlink -f "$1")
shift
meson compile -C "$build" >/dev/null
exec python3 "$(dirname "$(readlink -f "$0")")/bench.py" --build "$build" "$@"
