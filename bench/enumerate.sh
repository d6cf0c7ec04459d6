#!/usr/bin/env bash
# NB101 enumeration: nasflow (Rust, rayon) against a pure-Python port of nasbench's
# generate_graphs.py (bench/generate_graphs.py), side by side in one run, with peak memory.
#   bench/enumerate.sh            # both (the Python side takes a few minutes)
#   SKIP_PYTHON=1 bench/enumerate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
B=target/release/nasflow
W=bench/work/enumerate; mkdir -p "$W"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

measure() { # label, command...: wall seconds and peak RSS via GNU time
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/time" "$@" > "$W/out" 2>&1
  read -r secs kb < "$W/time"
  printf '%-34s %8.2f s  %7.1f MiB  | %s\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)" "$(head -1 "$W/out")"
  echo "$secs" > "$W/last"
}

for i in 1 2 3; do
  measure "nasflow nb101 enumerate (run $i)" $B nb101 enumerate --out "$W/space.nb101"
done
rust=$(cat "$W/last")
measure "nasflow nb101 load" $B nb101 load "$W/space.nb101"
measure "nasflow nb101 enumerate --format jsonl" $B nb101 enumerate --out "$W/space.jsonl"
ls -l "$W/space.nb101" "$W/space.jsonl" | awk '{printf "  %s: %.1f MB\n", $NF, $5/1e6}'
if [ -z "${SKIP_PYTHON:-}" ]; then
  measure "python generate_graphs (port)" python3 bench/generate_graphs.py
  py=$(cat "$W/last")
  echo "ratio: python / nasflow = $(echo "$py/$rust" | bc -l | xargs printf '%.0f')x"
fi
