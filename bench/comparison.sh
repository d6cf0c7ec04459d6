#!/usr/bin/env bash
# The paper's comparison at CPU scale (issue 16): the IO model, the reference VAE trained alongside
# it and arch2vec-original, each at checkpoints 3 and 8 (the stand-ins for the paper's 10 and 30),
# from one train-vae run for io + reference and one for arch2vec-original. Synthetic images;
# NETS labeled train networks (+ NETS/8 validation networks) at the default pipeline's CPU sizes;
# the whole 423,624-cell space unlabeled. predict (RF and GP, 250 cells outside the labeled train
# networks, 10 seeds, accuracy > 0.8) on ../shared/data/nb101-10k.jsonl with each model's features
# at each checkpoint. Prints each stage's wall time and the comparison tables.
#   bench/comparison.sh [NETS] [EPOCHS]          (defaults 100, 8; checkpoints 3 and EPOCHS)
# NASFLOW_BIN=DIR/nasflow runs a copy of the binaries (nasflow-worker beside it) instead of
# target/release, so that rebuilding during the hour-long run does not swap them under it.
set -euo pipefail
cd "$(dirname "$0")/.."
NETS=${1:-100}
EPOCHS=${2:-8}
if [ -z "${NASFLOW_BIN:-}" ]; then cargo build --release --locked -q; fi
B=${NASFLOW_BIN:-$PWD/target/release/nasflow}
SHARED=$(cd .. && pwd)/shared/data
W=bench/work/comparison; mkdir -p "$W"
predict() { # name vae-stage features checkpoint
  cat <<TOML

[stages.predict-$1]
kind = "predict"
deps = ["$2", "pretrain"]
vae = "$2"
table = "$SHARED/nb101-10k.jsonl"
features = ["$3"]
checkpoint = $4
train_sizes = [250]
TOML
}
{ cat <<TOML
[pipeline]
name = "comparison-cpu"
seed = 1
[stages.sample]
kind = "sample"
cells = 0
train_nets = $NETS
valid_nets = $((NETS / 8))
[stages.pretrain]
kind = "pretrain"
foreach = "sample"
images = "synthetic"
init_channels = 16
stacks = 3
cells_per_stack = 1
epochs = 3
batch_size = 64
train_limit = 3000
test_limit = 1000
held_out = 500
[stages.extract]
kind = "extract"
foreach = "pretrain"
images = "synthetic"
unseen = 500
[stages.preprocess]
kind = "preprocess"
deps = ["extract"]
[stages.train-vae]
kind = "train-vae"
deps = ["sample", "preprocess"]
variant = "io"
epochs = $EPOCHS
checkpoints = [3, $EPOCHS]
image_channels = 16
[stages.train-vae-original]
kind = "train-vae"
deps = ["sample", "preprocess"]
variant = "arch2vec-original"
epochs = $EPOCHS
checkpoints = [3, $EPOCHS]
TOML
  for c in 3 "$EPOCHS"; do
    predict "io-$c" train-vae io "$c"
    predict "reference-$c" train-vae reference "$c"
    predict "original-$c" train-vae-original original "$c"
  done
} > "$W/pipeline.toml"
[ -n "${PLAN_ONLY:-}" ] && { (cd "$W" && "$B" plan); exit 0; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
: > "$W/times.txt"
stages="sample pretrain extract preprocess train-vae train-vae-original"
for c in 3 "$EPOCHS"; do stages="$stages predict-io-$c predict-reference-$c predict-original-$c"; done
# One stage at a time, so that each stage's time is its own on all cores.
for s in $stages; do
  t0=$(date +%s.%N)
  (cd "$W" && NASFLOW_PLAIN=1 "$B" run "$s" >> run.log 2>&1) || { tail -20 "$W/run.log"; exit 1; }
  echo "$s $(echo "$(date +%s.%N) - $t0" | bc)" | tee -a "$W/times.txt"
done
out() { (cd "$W" && "$B" show "$1" --json | python3 -c "import json,sys;print(json.load(sys.stdin)['out_dir'])"); }
python3 bench/comparison_table.py "$(out train-vae)/summary.json" "$(out train-vae-original)/summary.json" \
  "$(out preprocess)/summary.json" "$EPOCHS" \
  $(for c in 3 "$EPOCHS"; do for m in io reference original; do echo "$m-$c=$(out predict-$m-$c)/summary.json"; done; done)
