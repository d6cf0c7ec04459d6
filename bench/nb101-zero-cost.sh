#!/usr/bin/env bash
# Zero-cost proxies on NB101's networks (BENCHMARKS.md, "NAS-Bench-201", NB101 part): the
# default pipeline on a fresh cache with two stages appended, `zero-cost` over 300 of its sampled
# cells that are in the built-in NB101 table (C 16, one cell per stack, as the default's
# pretrain; batch 32) and `predict-zc` with every feature set side by side (latent, plain and
# path encodings, proxies, latent + proxies) at 20 and 100 fit cells.
# Usage: bench/nb101-zero-cost.sh [OUTDIR]   (NASFLOW_BIN to use another binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-bench/out/nb101-zero-cost}
bin=${NASFLOW_BIN:-target/release/nasflow}
[ -n "${NASFLOW_BIN:-}" ] || cargo build -q --release --bin nasflow --bin nasflow-worker
bin=$(realpath "$bin")
rm -rf "$out" && mkdir -p "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
sed 's|^cache = .*|cache = "cache"|' pipeline.toml > "$out/pipeline.toml"
cat >> "$out/pipeline.toml" <<'TOML'

[stages.zero-cost]
kind = "zero-cost"
deps = ["sample"]
table = "nb101-10k"
sample = "sample"
cells = 300
batch_size = 32
init_channels = 16
cells_per_stack = 1

[stages.predict-zc]
kind = "predict"
deps = ["train-vae", "pretrain", "zero-cost"]
table = "nb101-10k"
features = ["io", "reference"]
feature_sets = ["latent", "encoding", "path", "zero-cost", "latent+zero-cost"]
zero_cost = "zero-cost"
train_sizes = [20, 100]
regressors = ["rf", "gp", "gb"]
TOML
start=$(date +%s.%N)
(cd "$out" && "$bin" run -j 2 > headline.txt 2> run.log)
end=$(date +%s.%N)
echo "the default pipeline with zero-cost and predict-zc, fresh cache: $(echo "$end - $start" | bc) s"
grep -E "^\s+(zero-cost|predict-zc)\s+ran" "$out/run.log"
python3 - "$out/results/zero-cost/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"cells {s['cells']}; Spearman rho with NB101's validation accuracy:")
for p in ["synflow", "jacov", "nwot", "snip", "grad_norm"]:
    print(f"  {p:10} {s['spearman_valid'][p]:7.3f}  (non-finite {s['non_finite'][p]})")
PY
sed -n '/^predict-zc:/,$p' "$out/headline.txt"
