#!/usr/bin/env bash
# Search and prediction on NB101 figures with features from a VAE trained on the whole space.
# Uses bench/train_vae.sh's pipeline and cache (the VAE: arch2vec variant, EPOCHS epochs), and
# adds, each stage run alone so that its time is its own:
# - reinforce-10k: REINFORCE, regularized evolution (NASLib's mutation), local search
#   (naszilla's) and random search, SEEDS seeds, 1.5e6 simulated seconds, on
#   ../shared/data/nb101-10k.jsonl (validation accuracy at 108 epochs, its training time as
#   cost); reinforce-10k-2e5: the same at the default pipeline's budget, 2e5 s;
# - variants-10k: evolution with naszilla's mutation and NASLib's local search, and
#   one-edit-10k: evolution with nasflow's earlier one-edit mutation (same seeds, 1.5e6 s);
# - bo-10k: BO (nasflow's: no re-queries, EI in f64) and bo-10k-arch2vec (`bo_quirks =
#   "arch2vec"`: re-queries, EI in float32), BO_SEEDS seeds each on the same;
# - reinforce-full: FULL_METHODS and random search, SEEDS seeds, on a timing-only table of all
#   423,624 cells (bench/full_table.py);
# - bo-short-10k, bo-short-full: BO alone on each table, BO_SHORT_SEEDS seeds at
#   BO_SHORT_BUDGET simulated seconds (how BO's time grows with the table);
# - predict-10k: RF, GP, SVR and gradient boosting on the latent features, the plain encoding and
#   the path encoding, 250 and 1,000 fit cells, 10 seeds, accuracy > 0.8 (info-NAS's protocol);
#   predict-10k-naslib: the same regressors and features under NASLib's protocol (11 fit sizes
#   5..1000, a 200-cell test set, 10 seeds).
# Prints the summaries and each stage's time.
#   bench/search.sh [SEEDS] [EPOCHS]      (env: BO_SEEDS, BO_SHORT_SEEDS, BO_SHORT_BUDGET,
#                                          FULL_METHODS, STAGES: the stages to run)
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-500}
EPOCHS=${2:-8}
BO_SEEDS=${BO_SEEDS:-50}
BO_SHORT_SEEDS=${BO_SHORT_SEEDS:-2}
BO_SHORT_BUDGET=${BO_SHORT_BUDGET:-1e5}
FULL_METHODS=${FULL_METHODS:-'["reinforce", "evolution", "local_search"]'}
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
methods = ["reinforce", "evolution", "local_search"]
seeds = $SEEDS

[stages.reinforce-10k-2e5]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["reinforce", "evolution", "local_search"]
seeds = $SEEDS
budget = 2e5

[stages.variants-10k]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["evolution", "local_search"]
mutation = "naszilla"
local_search = "naslib"
seeds = $SEEDS

[stages.one-edit-10k]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["evolution"]
mutation = "one-edit"
seeds = $SEEDS

[stages.bo-10k]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["bo"]
random_search = false
seeds = $BO_SEEDS

[stages.bo-10k-arch2vec]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["bo"]
bo_quirks = "arch2vec"
random_search = false
seeds = $BO_SEEDS

[stages.reinforce-full]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "full-table.jsonl"
methods = $FULL_METHODS
seeds = $SEEDS

[stages.bo-short-10k]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
methods = ["bo"]
random_search = false
seeds = $BO_SHORT_SEEDS
budget = $BO_SHORT_BUDGET

[stages.bo-short-full]
kind = "reinforce"
deps = ["train-vae", "pretrain"]
table = "full-table.jsonl"
methods = ["bo"]
random_search = false
seeds = $BO_SHORT_SEEDS
budget = $BO_SHORT_BUDGET

[stages.predict-10k]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
train_sizes = [250, 1000]
regressors = ["rf", "gp", "svr", "gb"]

[stages.predict-10k-naslib]
kind = "predict"
deps = ["train-vae", "pretrain"]
table = "$SHARED/nb101-10k.jsonl"
protocol = "naslib"
regressors = ["rf", "gp", "svr", "gb"]
TOML
} > "$W/search.toml"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
: > "$W/search.log"
# One stage at a time, so that each stage's time is its own on all cores.
STAGES=${STAGES:-reinforce-10k reinforce-10k-2e5 variants-10k one-edit-10k bo-10k bo-10k-arch2vec reinforce-full bo-short-10k bo-short-full predict-10k predict-10k-naslib}
for s in $STAGES; do
  (cd "$W" && NASFLOW_PLAIN=1 "$B" -p search.toml run ${FORCE:+--force $s} "$s" >> search.log 2>&1) || { tail -20 "$W/search.log"; exit 1; }
done
grep -E "done   (reinforce|predict|bo)" "$W/search.log" || true
for s in $STAGES; do
  out=$(cd "$W" && "$B" -p search.toml show "$s" --json | python3 -c "import json,sys;print(json.load(sys.stdin)['out_dir'])")
  echo "== $s: $out"
  python3 - "$out/summary.json" "$s" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if not sys.argv[2].startswith("predict"):
    print(f"table: {s['table']['cells']} cells, best validation {s['table']['best_valid']:.6f}; {s['settings']}")
    for w in s.get("warnings", []):
        print(f"warning: {w}")
    for m in ("reinforce", "bo", "evolution", "local_search", "random"):
        if m not in s:
            continue
        r = s[m]
        p = (f", p vs random {r['p_vs_random']:.2g}, p worse than random {r['p_worse_than_random']:.2g}"
             if "p_vs_random" in r else "")
        q = (f"; by queries: {r['by_queries_regret_valid']:.2e} at query {r['by_queries_index']:.0f}"
             if "by_queries_index" in r else "")
        o = (f", {r['outside_table']:.0f} outside the table per run" if "outside_table" in r else "")
        f = (f", {r['failed_mutations']:.1f} failed mutations per run, {r['stopped_early']} runs stopped early"
             if "failed_mutations" in r else "")
        print(f"{m:12s}: final validation regret {r['final_regret_valid']:.2e} +- {r['final_regret_valid_ci95']:.1e}{p} "
              f"(best found {r['final_best_valid']:.5f}), {r['queries']:.0f} queries, {r['seeds']} seeds{o}{f}{q}")
else:
    sizes = s["settings"]["train_sizes"]
    print(f"table: {s['table']['cells']} cells, target {s['target']} > {s['threshold']}; protocol {s['settings']['protocol']}, sizes {sizes}")
    for reg in ("rf", "gp", "svr", "gb"):
        for f in ("latent", "encoding", "path"):
            for n in sizes:
                v = s[reg][f].get(f"fit_{n}")
                if v is None:
                    continue
                print(f"{reg:3s} on {f:8s} fit_{n:<5d}: RMSE {v['rmse']:.4f} +- {v['rmse_ci95']:.4f}, Pearson {v['pearson']:.3f} +- {v['pearson_ci95']:.3f}, "
                      f"Kendall {v['kendall_tau']:.3f} +- {v['kendall_tau_ci95']:.3f}, Spearman {v['spearman']:.3f}, "
                      f"P@10 {v['precision_10']:.2f}, P@20 {v['precision_20']:.2f}")
PY
done
