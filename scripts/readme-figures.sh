#!/usr/bin/env bash
# The README's figures from a run: runs the default pipeline (`nasflow run predict reinforce`,
# cached stages are not recomputed) on two pinned cores (taskset: 2 jobs of 1 thread each, so the
# numbers are those of a 2-core machine, deterministic per seed and thread count), then renders
# its metrics into README.md's figures block. --check: fail if README.md differs (CI runs this).
# NASFLOW_BIN: the nasflow binary (default: target/release/nasflow, else target/debug/nasflow).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${NASFLOW_BIN:-}"
if [ -z "$bin" ]; then
  for b in target/release/nasflow target/debug/nasflow; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
fi
[ -n "$bin" ] || { echo "readme-figures: no nasflow binary: cargo build --release first" >&2; exit 1; }
pin=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc --all)" -ge 2 ]; then
  pin=(taskset -c 0,1)
else
  echo "readme-figures: taskset or a second core is missing: the numbers may differ from a 2-core run" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${pin[@]}" "$bin" run -j 2 predict reinforce >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
"${pin[@]}" "$bin" metrics --all --format json | python3 scripts/readme_figures.py "$@"
