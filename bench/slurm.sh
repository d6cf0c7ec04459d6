#!/usr/bin/env bash
# The default pipeline's item-level stages (pretrain and extract of its 10 networks) run locally
# and through the Slurm executor on a single-node cluster on this machine
# (scripts/slurm-cluster.sh; needs root), each from an empty cache with one thread per item and
# as many items at once as there are cores. Prints both wall times, their ratio, and whether
# the outputs are identical (every output file: timings are in provenance, not in outputs).
#   bench/slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
B=$PWD/target/release/nasflow
W=$PWD/bench/work/slurm; rm -rf "$W"; mkdir -p "$W/local" "$W/slurm"
./scripts/slurm-cluster.sh install
./scripts/slurm-cluster.sh start "$W/cluster" >/dev/null
trap './scripts/slurm-cluster.sh stop "$W/cluster"' EXIT
export SLURM_CONF=$W/cluster/slurm.conf
cp pipeline.toml "$W/local/"; cp pipeline.toml "$W/slurm/"
cores=$(nproc)
t() { local s=$(date +%s.%N); "$@" > "$W/last.log" 2>&1; python3 -c "print(round($(date +%s.%N) - $s, 1))"; }
echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
tl=$(cd "$W/local" && t "$B" run extract --executor local -j "$cores")
ts=$(cd "$W/slurm" && t "$B" run extract --executor slurm)
grep -E "submitted|summary" "$W/last.log" | sed 's/^/  slurm run: /'
echo "local executor:  $tl s"
echo "slurm executor:  $ts s  (ratio slurm/local $(python3 -c "print(round($ts / $tl, 2))"))"
python3 - "$B" "$W" <<'PY'
import json, subprocess, sys
b, w = sys.argv[1], sys.argv[2]
def files(d, stage):
    out = subprocess.run([b, "show", stage, "--json"], cwd=d, capture_output=True, check=True).stdout
    return {f["path"]: f["digest"] for f in json.loads(out)["files"]}
for stage in ["pretrain", "extract"]:
    a, s = files(f"{w}/local", stage), files(f"{w}/slurm", stage)
    print(f"{stage}: {len(a)} files, identical: {a == s}")
PY
