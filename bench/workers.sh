#!/usr/bin/env bash
# The default pipeline on this machine's CPU cores with two builds side by side in one run: a
# previous build (OLD: a directory holding its nasflow and nasflow-worker) against this one's
# release build. Each runs `nasflow run predict` on the default pipeline.toml from an empty cache;
# the two runs alternate, ROUNDS times. Prints each stage's seconds from the run summaries.
#
#   bench/workers.sh OLD_BIN_DIR [ROUNDS]
#
# To build a previous commit's binaries apart from target/ (reusing its compiled dependencies):
#   git worktree add /tmp/old COMMIT && cp -r target/release /tmp/old-target/ (once) &&
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release --locked)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(cd "${1:?usage: bench/workers.sh OLD_BIN_DIR [ROUNDS]}" && pwd)
ROUNDS=${2:-1}
cargo build --release --locked -q
NEW=$PWD/target/release
W=bench/work/workers; rm -rf "$W"; mkdir -p "$W"
export NASFLOW_PLAIN=1
run() { # NAME BIN_DIR ROUND
  local d="$W/$1-$3"; mkdir -p "$d"; cp pipeline.toml "$d/"
  local t0; t0=$(date +%s.%N)
  (cd "$d" && "$2/nasflow" run predict > run.log 2>&1) || { echo "$1: FAILED"; tail -5 "$d/run.log"; exit 1; }
  python3 - "$1" "$d/run.log" "$(python3 -c "import time;print(time.time() - $t0)")" <<'PY'
import sys
name, log, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
lines = open(log).read().splitlines()
i = next(k for k, l in enumerate(lines) if l.startswith('summary:'))
stages = {}
for l in lines[i + 1:]:
    w = l.split()
    if len(w) >= 3 and l.startswith('  ') and w[2].endswith('s'):
        stages[w[0]] = float(w[2][:-1])
print(f"{name:4} wall {wall:6.1f} s  " + "  ".join(f"{k} {v:.1f}" for k, v in stages.items()))
PY
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "old: $OLD"
echo "new: $NEW ($(git rev-parse --short HEAD))"
for r in $(seq 1 "$ROUNDS"); do
  run old "$OLD" "$r"
  run new "$NEW" "$r"
done
