#!/usr/bin/env bash
# The CUDA checks and figures, in one short run on the GPU machine (at most ~4 minutes), from the
# carried stripped binaries. Each figure is written to RESULTS as soon as it is known, so a run cut
# short still brings back what it measured.
#
#   bench/gpu.sh RESULTS            on the GPU machine (device = cuda; asserts CUDA is used)
#   bench/gpu.sh RESULTS --dry      anywhere: the same steps on the CPU at tiny sizes (checks the script)
#
# Build what it carries (here, on the build machine; 64 MiB in all):
#   NASFLOW_TORCH_FULL=1 ./scripts/install-libtorch.sh
#   cargo build --profile device --features cuda --locked    # -> target/device/{nasflow,nasflow-worker}
# Env: NASFLOW_BIN (default target/device, else target/release), TORCH_PY (a python with torch:
# default /opt/torch/.venv/bin/python, else python3).
#
# Steps (each under its own time limit):
#   1. CUDA is really used: `ldd` shows libtorch_cuda, `nasflow-worker probe` sees a GPU, and the
#      records' provenance says cuda (checked in step 2).
#   2. pretrain images/s at the paper's size (128 channels, 3 stacks x 3 cells, batch 128,
#      synthetic images) for the Inception-like cell and the largest cell of nb101-1k: fp32, then
#      bf16 + channels-last; one network, then 4 networks on the GPU at once; against
#      bench/pytorch_pretrain.py with the machine's PyTorch, same settings, side by side.
#   3. The default pipeline with device = "cuda", then one train-vae param edited: only train-vae
#      and its downstream stages rerun, on CUDA.
#   4. One train-vae epoch on the whole space (423,624 cells) on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
R=${1:?usage: bench/gpu.sh RESULTS [--dry]}
DRY=${2:-}
mkdir -p "$R"
R=$(cd "$R" && pwd)
ROOT=$PWD
if [ -z "${NASFLOW_BIN:-}" ]; then
  if [ -x target/device/nasflow ]; then NASFLOW_BIN=target/device; else NASFLOW_BIN=target/release; fi
fi
BIN=$(cd "$NASFLOW_BIN" && pwd)
if [ -z "${TORCH_PY:-}" ]; then
  if [ -x /opt/torch/.venv/bin/python ]; then TORCH_PY=/opt/torch/.venv/bin/python; else TORCH_PY=python3; fi
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
say() { echo "$*" | tee -a "$R/summary.txt"; }
: > "$R/summary.txt"

if [ "$DRY" = "--dry" ]; then
  DEVICE=cpu; CH=8; STACKS=1; CELLS=1; IMAGES=512; HELD=64; EPOCHS=1; BATCH=128; VAE_CELLS=20000
  DEFAULT_LIMIT=900   # the default pipeline takes minutes on a few CPU cores
  TL=""
else
  DEVICE=cuda; CH=128; STACKS=3; CELLS=3; IMAGES=8192; HELD=256; EPOCHS=2; BATCH=128; VAE_CELLS=0
  DEFAULT_LIMIT=150
  TL=$("$TORCH_PY" -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH="$TL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export NASFLOW_PLAIN=1
N="$BIN/nasflow"

# 0. The machine.
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /'
  echo "torch (python): $("$TORCH_PY" -c 'import torch;print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"
  echo "binaries: $BIN ($(du -ch "$BIN/nasflow" "$BIN/nasflow-worker" | tail -1 | cut -f1))"
} | tee "$R/machine.txt"

# 1. CUDA linked and visible.
ldd "$BIN/nasflow-worker" > "$R/ldd.txt" 2>&1
"$BIN/nasflow-worker" probe > "$R/probe.json" 2> "$R/probe.err"
if [ "$DEVICE" = cuda ]; then
  grep -q 'libtorch_cuda.so' "$R/ldd.txt" && ! grep -q 'not found' "$R/ldd.txt" \
    && say "ok: nasflow-worker links libtorch_cuda ($(grep -o 'libtorch_cuda.so => [^ ]*' "$R/ldd.txt"))" \
    || { say "FAIL: libtorch_cuda not linked or a library not found (see ldd.txt)"; exit 1; }
  python3 -c "import json,sys;p=json.load(open('$R/probe.json'));sys.exit(0 if p['cuda_linked'] and p['cuda_devices']>0 else 1)" \
    && say "ok: probe sees $(python3 -c "import json;print(json.load(open('$R/probe.json'))['cuda_devices'])") CUDA device(s)" \
    || { say "FAIL: probe sees no CUDA device: $(cat "$R/probe.json" "$R/probe.err")"; exit 1; }
else
  say "dry: CPU, tiny sizes; probe: $(cat "$R/probe.json")"
fi

# 2. pretrain throughput, nasflow against PyTorch.
INCEPTION='{"hash": "28cfc7874f6d200472e1a9dcd8650aa0", "matrix": [[0,1,1,1,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,1,0,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv1x1-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","maxpool3x3","output"]}'
# The cell with the most parameters in ../shared/data/nb101-1k.jsonl (49,105,546 at 128 channels).
LARGEST='{"hash": "0086fab67ec51749ec4672617d0805fb", "matrix": [[0,1,1,1,0,0,0],[0,0,1,1,0,0,0],[0,0,0,1,0,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","output"]}'
# Two more of nb101-1k (48,231,818 and 8,555,530 parameters), for 4 networks at once.
THIRD='{"hash": "009ef922cafaec29f36bf7fd9a6cd5d1", "matrix": [[0,1,0,1,0,0,0],[0,0,1,0,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","output"]}'
FOURTH='{"hash": "00005c142e6f48ac74fdcf73e3439874", "matrix": [[0,1,0,0,1,1,0],[0,0,1,0,0,0,0],[0,0,0,1,0,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","maxpool3x3","conv3x3-bn-relu","conv3x3-bn-relu","conv1x1-bn-relu","output"]}'

# pretrain_nasflow NAME PRECISION CHANNELS_LAST SLOTS CELL_JSON...: prints aggregate img/s.
pretrain_nasflow() {
  local name=$1 prec=$2 cl=$3 slots=$4; shift 4
  local d="$W/pre-$name"; mkdir -p "$d"
  printf '%s\n' "$@" > "$d/cells.jsonl"
  cat > "$d/pipeline.toml" <<TOML
[pipeline]
device = "$DEVICE"
seed = 1
jobs = $slots
gpu_slots = $slots
[stages.cells]
kind = "cmd"
run = "cp cells.jsonl \$NASFLOW_OUT/items.jsonl"
inputs = ["cells.jsonl"]
[stages.pretrain]
kind = "pretrain"
foreach = "cells"
init_channels = $CH
stacks = $STACKS
cells_per_stack = $CELLS
epochs = $EPOCHS
batch_size = $BATCH
train_limit = $IMAGES
held_out = $HELD
test_limit = 100
precision = "$prec"
channels_last = $cl
TOML
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$d" && timeout 120 "$N" run pretrain > run.log 2>&1) || { echo "FAILED"; tail -5 "$d/run.log" >&2; return; }
  t1=$(date +%s.%N)
  local devs
  devs=$(cd "$d" && for i in $(seq 0 $(($# - 1))); do "$N" log pretrain --item "$i" --file timing.json 2>/dev/null \
    | python3 -c "import json,sys;t=sys.stdin.read();print(json.loads(t[t.index('{'):])['device'])"; done | sort -u | tr '\n' ' ')
  python3 -c "print(f'{$# * $IMAGES * $EPOCHS / ($t1 - $t0):.0f} img/s (wall, {$#} network(s), device {\"$devs\".strip()})')"
}

# pretrain_pytorch PRECISION CHANNELS_LAST CELL_JSON...: the same networks, one process each, at once.
pretrain_pytorch() {
  local prec=$1 cl=$2; shift 2
  local flags=(--device "$DEVICE" --channels "$CH" --stacks "$STACKS" --cells "$CELLS" --batch "$BATCH"
               --images "$IMAGES" --held-out "$HELD" --epochs "$EPOCHS" --threads $(( $(nproc) / $# > 0 ? $(nproc) / $# : 1 )))
  [ "$prec" = bf16 ] && flags+=(--bf16)
  [ "$cl" = true ] && flags+=(--channels-last)
  local t0 t1 k=0 pids=()
  t0=$(date +%s.%N)
  for c in "$@"; do
    local m o
    m=$(python3 -c "import json;c=json.loads('$c');print(''.join(str(b) for r in c['matrix'] for b in r))")
    o=$(python3 -c "import json;c=json.loads('$c');print(','.join(c['ops']))")
    timeout 150 "$TORCH_PY" bench/pytorch_pretrain.py --matrix "$m" --ops "$o" "${flags[@]}" > "$W/py-$k.json" 2> "$W/py-$k.err" &
    pids+=($!); k=$((k + 1))
  done
  local ok=1
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  t1=$(date +%s.%N)
  [ $ok = 1 ] || { echo "FAILED ($(tail -2 "$W/py-0.err"))"; return; }
  python3 -c "print(f'{$# * $IMAGES * $EPOCHS / ($t1 - $t0):.0f} img/s (wall, {$#} process(es))')"
}

step2() {
  say "== pretrain: $CH channels, $STACKS x $CELLS cells, batch $BATCH, $IMAGES synthetic images x $EPOCHS epochs, on $DEVICE"
  for mode in "fp32 false" "bf16 true"; do
    set -- $mode; local prec=$1 cl=$2
    for cell in inception largest; do
      local c=$INCEPTION; [ $cell = largest ] && c=$LARGEST
      say "pretrain $prec channels_last=$cl, 1 network ($cell): nasflow $(pretrain_nasflow "$prec-$cell" "$prec" "$cl" 1 "$c")  pytorch $(pretrain_pytorch "$prec" "$cl" "$c")"
    done
    say "pretrain $prec channels_last=$cl, 4 networks at once: nasflow $(pretrain_nasflow "$prec-four" "$prec" "$cl" 4 "$INCEPTION" "$LARGEST" "$THIRD" "$FOURTH")  pytorch $(pretrain_pytorch "$prec" "$cl" "$INCEPTION" "$LARGEST" "$THIRD" "$FOURTH")"
  done
}

# 3. The default pipeline on CUDA, then a train-vae edit: which stages rerun, and on what device.
step3() {
  local d="$W/default"; mkdir -p "$d"
  sed "s/^device = .*/device = \"$DEVICE\"/" pipeline.toml > "$d/pipeline.toml"
  local t0; t0=$(date +%s)
  (cd "$d" && timeout "$DEFAULT_LIMIT" "$N" run predict > run1.log 2>&1) || { say "default pipeline: FAILED: $(tail -3 "$d/run1.log")"; return; }
  say "default pipeline on $DEVICE: $(grep '^summary' "$d/run1.log") in $(( $(date +%s) - t0 )) s"
  cp "$d/run1.log" "$R/default-run1.log"
  (cd "$d" && timeout "$DEFAULT_LIMIT" "$N" run predict --set train-vae.lr=0.0005 > run2.log 2>&1) || { say "edited run: FAILED: $(tail -3 "$d/run2.log")"; return; }
  cp "$d/run2.log" "$R/default-run2.log"
  local reran
  reran=$(awk '/^summary/{s=1;next} s && $2=="ran"{print $1}' "$d/run2.log" | tr '\n' ' ')
  say "after train-vae.lr=0.0005: reran: $reran"
  for s in pretrain train-vae; do
    say "  $s provenance device: $(cd "$d" && "$N" show "$s" --json 2>/dev/null | python3 -c "import json,sys;r=json.load(sys.stdin);print(r.get('provenance',{}).get('device','?'))")"
  done
}

# 4. One train-vae epoch on the whole space.
step4() {
  local d="$W/vae"; mkdir -p "$d"
  cat > "$d/pipeline.toml" <<TOML
[pipeline]
device = "$DEVICE"
seed = 1
jobs = 1
[stages.sample]
kind = "sample"
cells = $VAE_CELLS
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
epochs = 1
checkpoints = []
prior_samples = 10000
TOML
  (cd "$d" && timeout 200 "$N" run train-vae > run.log 2>&1) || { say "train-vae epoch: FAILED: $(tail -3 "$d/run.log")"; return; }
  local t
  t=$(cd "$d" && "$N" log train-vae --file timing.json | python3 -c "import json,sys;t=sys.stdin.read();t=json.loads(t[t.index('{'):]);print(f\"batch loop {t['train_seconds'][0]:.1f} s, stage {t.get('wall_seconds', 0):.1f} s\")")
  say "train-vae, 1 epoch on ${VAE_CELLS/#0/all 423,624} cells on $DEVICE: $t"
}

step2
step3
step4
say "done: $(date -u +%FT%TZ)"
