#!/usr/bin/env bash
# reinforce and predict on NB101 figures with features from a VAE trained on the whole space.
# Uses bench/train_vae.sh's pipeline and cache (the VAE: arch2vec variant, EPOCHS epochs), and
# adds: REINFORCE and random search (SEEDS seeds, 1.5e6 simulated seconds) on
# ../shared/data/nb101-10k.jsonl (validation accuracy at 108 epochs, its training time as cost);
# the same on a timing-only table of all 423,624 cells (bench/full_table.py); predict (RF and GP,
# 250 and 1,000 training cells, 10 seeds, accuracy > 0.8) on the 10k table against the plain
# encoding. Prints the summaries and each stage's time.
#   bench/search.sh [SEEDS] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-500}
EPOCHS=${2:-8}
cargo build --release --locked -q
B=$PWD/target/release/nasflow
SHARED=$(cd .. && pwd)/shared/data
W=bench/work/train-vae; mkdir -p "$W"
[ -f "$W/pipeline.toml" ] || { echo "run bench/train_vae.sh $EPOCHS first (it writes the VAE pipeline)"; exit 1; }
grep -q "^epochs = $EPOCHS\$" "$W/pipeline.toml" || { echo "$W/pipeline.toml is not at $EPOCHS epochs: run bench/train_vae.sh $EPOCHS"; exit 1; }
[ -f "$W/space.jsonl" ] || "$B" nb101 enumerate --format jsonl --out "$W/space.jsonl" > /dev/null
[ -f "$W/full-table.jsonl" ] || python3 bench/full_table.py "$W/space.jsonl" "$SHARED/nb101-10k.jsonl" "$W/full-table.jsonl"
{ cat "$W/pipeline.toml"; cat <<TOML

[stages.reinforce-10k]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
seeds = $SEEDS

[stages.reinforce-full]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "full-table.jsonl"
seeds = $SEEDS

[stages.predict-10k]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
train_sizes = [250, 1000]
TOML
} > "$W/search.toml"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
: > "$W/search.log"
# One stage at a time, so that each stage's time is its own on all cores.
for s in reinforce-10k reinforce-full predict-10k; do
  (cd "$W" && NASFLOW_PLAIN=1 "$B" -p search.toml run ${FORCE:+--force $s} "$s" >> search.log 2>&1) || { tail -20 "$W/search.log"; exit 1; }
done
grep -E "done   (reinforce|predict)" "$W/search.log"
for s in reinforce-10k reinforce-full predict-10k; do
  out=$(cd "$W" && "$B" -p search.toml show "$s" --json | python3 -c "import json,sys;print(json.load(sys.stdin)['out_dir'])")
  echo "== $s: $out"
  python3 - "$out/summary.json" "$s" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if sys.argv[2].startswith("reinforce"):
    print(f"table: {s['table']['cells']} cells, best validation {s['table']['best_valid']:.6f}")
    for m in ("reinforce", "random"):
        r = s[m]
        print(f"{m:9s}: final validation regret {r['final_regret_valid']:.5f} +- {r['final_regret_valid_ci95']:.5f} "
              f"(best found {r['final_best_valid']:.5f}), {r['queries']:.0f} queries, {r['seeds']} seeds")
else:
    print(f"table: {s['table']['cells']} cells, target {s['target']} > {s['threshold']}")
    for f in ("latent", "encoding"):
        for reg in ("rf", "gp"):
            for n, v in sorted(s[reg][f].items(), key=lambda x: int(x[0].removeprefix("fit_"))):
                print(f"{reg} on {f:8s} {n:>5s} cells: RMSE {v['rmse']:.5f} +- {v['rmse_ci95']:.5f}, Pearson {v['pearson']:.3f} +- {v['pearson_ci95']:.3f}")
PY
done
