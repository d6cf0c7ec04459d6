#!/usr/bin/env bash
# Training throughput of nasflow's `pretrain` against the same network and trainer in PyTorch
# (bench/pytorch_pretrain.py), same cell, sizes, batch and thread count, side by side in one run.
# Needs a venv with torch==2.11.0 in bench/.torch-venv:
#   python3 -m venv bench/.torch-venv && bench/.torch-venv/bin/pip install torch==2.11.0
#   bench/pretrain.sh [CHANNELS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CH=${1:-32}; ROUNDS=${2:-3}
THREADS=$(nproc)
MATRIX=0111010000000100000010000100000000100000010000000   # NB101 README's Inception-like cell
OPS=input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output
HASH=28cfc7874f6d200472e1a9dcd8650aa0
IMAGES=2048; HELD=256; EPOCHS=2; BATCH=128
cargo build --release --locked -q
B=$PWD/target/release/nasflow
W=bench/work/pretrain; rm -rf "$W"; mkdir -p "$W"
ITEM="{\"hash\": \"$HASH\", \"matrix\": $(python3 -c "import sys;b='$MATRIX';n=7;print([[int(b[i*n+j]) for j in range(n)] for i in range(n)])"), \"ops\": $(python3 -c "import json;print(json.dumps('$OPS'.split(',')))")}"
cat > "$W/pipeline.toml" <<TOML
[pipeline]
seed = 1
jobs = 1
[stages.cell]
kind = "cmd"
run = "cat cell.json > \$NASFLOW_OUT/items.jsonl"
inputs = ["cell.json"]
[stages.pretrain]
kind = "pretrain"
foreach = "cell"
init_channels = $CH
stacks = 3
cells_per_stack = 1
epochs = $EPOCHS
batch_size = $BATCH
train_limit = $IMAGES
held_out = $HELD
test_limit = 100
TOML
echo "$ITEM" > "$W/cell.json"
echo "machine: $THREADS cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); cell $HASH, $CH channels, 3 stacks x 1 cell, batch $BATCH, $IMAGES images x $EPOCHS epochs, $THREADS threads; torch $(bench/.torch-venv/bin/python -c 'import torch;print(torch.__version__)')"
for r in $(seq "$ROUNDS"); do
  (cd "$W" && NASFLOW_PLAIN=1 "$B" run --force pretrain > /dev/null 2>&1)
  nf=$(cd "$W" && "$B" log pretrain --item 0 --file timing.json | python3 -c "import json,sys;t=sys.stdin.read();print(json.loads(t[t.index('{'):])['images_per_second'])")
  py=$(bench/.torch-venv/bin/python bench/pytorch_pretrain.py --matrix $MATRIX --ops $OPS --channels "$CH" --stacks 3 --cells 1 \
        --batch $BATCH --images $IMAGES --held-out $HELD --epochs $EPOCHS --threads "$THREADS" | python3 -c "import json,sys;print(json.load(sys.stdin)['images_per_second'])")
  printf 'round %d: nasflow %7.1f img/s   pytorch %7.1f img/s   ratio %.2fx\n' "$r" "$nf" "$py" "$(echo "$nf/$py" | bc -l)"
done
