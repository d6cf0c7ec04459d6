#!/usr/bin/env bash
# train-vae on the full enumerated space: quality (reconstruction accuracy on the validation
# cells, validity, uniqueness per epoch) and speed (seconds per epoch's batch loop) against
# arch2vec's VAE written in PyTorch (bench/pytorch_arch2vec.py), same cells count, batch 32 and
# thread count, in one run. Needs bench/.torch-venv (see bench/pretrain.sh).
#   bench/train_vae.sh [EPOCHS]          (SKIP_PYTHON=1: nasflow only)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-3}
THREADS=$(nproc)
cargo build --release --locked -q
B=$PWD/target/release/nasflow
W=bench/work/train-vae; mkdir -p "$W"
cat > "$W/pipeline.toml" <<TOML
# The whole space unlabeled; 2 + 1 tiny labeled networks, so that the VAE's batch stream is
# (almost) all of arch2vec's unlabeled train split.
[pipeline]
seed = 1
jobs = 1
[stages.sample]
kind = "sample"
cells = 0
train_nets = 2
valid_nets = 1
[stages.pretrain]
kind = "pretrain"
foreach = "sample"
init_channels = 4
stacks = 1
cells_per_stack = 1
epochs = 1
train_limit = 256
held_out = 50
test_limit = 50
[stages.extract]
kind = "extract"
foreach = "pretrain"
unseen = 50
[stages.preprocess]
kind = "preprocess"
deps = ["extract"]
[stages.train-vae]
kind = "train-vae"
deps = ["sample", "preprocess"]
variant = "arch2vec"
epochs = $EPOCHS
checkpoints = []
prior_samples = 10000
TOML
echo "machine: $THREADS cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); batch 32; $THREADS threads"
(cd "$W" && NASFLOW_PLAIN=1 "$B" run --force train-vae > run.log 2>&1) || { tail -20 "$W/run.log"; exit 1; }
out=$(cd "$W" && "$B" show train-vae --json | python3 -c "import json,sys;print(json.load(sys.stdin)['out_dir'])")
(cd "$W" && "$B" log train-vae --file timing.json) > "$W/timing.json"
python3 - "$out/metrics.json" "$W/timing.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()  # `nasflow log --file` prints a "==> timing.json <==" header
t = json.loads(text[text.index("{"):])
for e, secs in zip(m['epochs'], t['train_seconds']):
    v = e['models']['arch2vec']
    print(f"nasflow epoch {e['epoch']}: batch loop {secs:.1f} s ({e['unlabeled_batches']} unlabeled + {e['labeled_batches']} labeled batches), "
          f"valid ops {v['valid']['ops']:.4f} adj {v['valid']['adj']:.4f}, validity {v['validity']:.4f}, uniqueness {v['uniqueness']:.4f}")
PY
[ -n "${SKIP_PYTHON:-}" ] && exit 0
cells=$(python3 -c "import json;print(json.load(open('$(cd "$W" && "$B" show sample --json | python3 -c "import json,sys;print(json.load(sys.stdin)['out_dir'])")/summary.json'))['unlabeled_train'])")
[ -f "$W/space.jsonl" ] || "$B" nb101 enumerate --out "$W/space.jsonl" > /dev/null
bench/.torch-venv/bin/python bench/pytorch_arch2vec.py "$W/space.jsonl" --limit "$cells" --threads "$THREADS" \
  | python3 -c "import json,sys;r=json.load(sys.stdin);print(f\"pytorch: batch loop {r['seconds']:.1f} s ({r['steps']} batches of {r['cells']} cells), torch {r['torch']}\")"
