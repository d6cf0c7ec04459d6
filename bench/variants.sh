#!/usr/bin/env bash
# Sweep points run at the same time: 4 points of a sweep over a stage that sleeps 2 s after a
# shared stage, run with -j 1 (one job at a time, the points in turn) and with -j 4 (the points
# side by side), each on a fresh cache. Prints both wall times and their ratio.
#   bench/variants.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
B=$PWD/target/release/nasflow
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cat > "$W/pipeline.toml" <<'TOML'
[stages.shared]
kind = "cmd"
run = "sleep 1; echo s > $NASFLOW_OUT/s.txt"
[stages.point]
kind = "cmd"
deps = ["shared"]
x = 0
run = "sleep 2; echo done > $NASFLOW_OUT/p.txt"
[sweeps.xs.point]
x = [1, 2, 3, 4]
TOML
for j in 1 4; do
  rm -rf "$W/cache"
  t0=$(date +%s.%N)
  (cd "$W" && NASFLOW_PLAIN=1 "$B" run --variant xs -j "$j" > "$W/run-$j.log" 2>&1)
  t1=$(date +%s.%N)
  ran=$(grep -c "^  point  *ran" "$W/run-$j.log" || true)
  shared=$(grep -c "^  shared  *ran" "$W/run-$j.log" || true)
  printf -- '-j %d: %.2f s wall (point ran %d times, shared ran %d time)\n' "$j" "$(echo "$t1 - $t0" | bc -l)" "$ran" "$shared"
  echo "$t1 - $t0" | bc -l > "$W/t$j"
done
printf 'ratio: %.2fx\n' "$(echo "$(cat "$W/t1") / $(cat "$W/t4")" | bc -l)"
