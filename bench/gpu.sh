#!/usr/bin/env bash
# The CUDA checks and figures, in one short run on the GPU machine (5 minutes or less), from the
# carried stripped binaries. Each figure is written to RESULTS/summary.txt as soon as it is known,
# so a run cut short still brings back what it measured.
#
#   bench/gpu.sh RESULTS [--default]        on the GPU machine (device = cuda; asserts CUDA is used)
#   bench/gpu.sh RESULTS --dry [--default]  anywhere: the same steps on the CPU at tiny sizes
#
# Build what it carries (here, on the build machine; 64 MiB in all): ./scripts/device-build.sh
#   (-> target/device/{nasflow,nasflow-worker}). Env: NASFLOW_BIN (default target/device, else
#   target/release), TORCH_PY (a python with torch: default /opt/torch/.venv/bin/python, else
#   python3).
#
# Steps:
#   1. CUDA is really used: `ldd` shows libtorch_cuda, `nasflow-worker probe` sees a GPU, and the
#      records' provenance says cuda.
#   2. The card's bf16 matrix rate: an 8192^3 bf16 matmul with the machine's PyTorch.
#   3. pretrain at the paper's size (128 channels, 3 stacks x 3 cells, batch 128, synthetic
#      images): 1, 4 and 8 networks on the GPU at once (persistent workers, one per GPU slot; and
#      for 8 networks, and 4 in bf16, one worker with a CUDA stream per network), in fp32, tf32
#      and bf16 + channels-last; steady-state img/s (the last epoch) beside the wall
#      figure, and achieved TFLOP/s; bench/pytorch_pretrain.py beside it for 1 and 8 networks in
#      fp32 and bf16. The 8 networks: the Inception-like cell, the largest cell of nb101-1k, two
#      more of nb101-1k, and 4 drawn from nb101-1k at random (Python's random.Random(1).sample of
#      its 1,000 lines: lines 137, 582, 867, 821).
#   4. train-vae (io, the reference model alongside) for one epoch on VAE_CELLS cells, extrapolated
#      to the whole space (423,624 cells); bench/pytorch_arch2vec.py on as many cells beside it.
#      extract's per-item time (8 items, persistent workers) from the same pipeline.
#   5. With --default: the default pipeline on the device, then a train-vae edit (only train-vae
#      and its downstream stages rerun).
set -uo pipefail
cd "$(dirname "$0")/.."
R=${1:?usage: bench/gpu.sh RESULTS [--dry]}
DRY=""; DEFAULT=""
for a in "${@:2}"; do
  case $a in --dry) DRY=--dry ;; --default) DEFAULT=1 ;; *) echo "unknown option $a" >&2; exit 2 ;; esac
done
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
  DEVICE=cpu; CH=4; STACKS=1; CELLS=1; IMAGES=256; HELD=64; EPOCHS=2; BATCH=64; VAE_CELLS=3000
  MATMUL=512; LIMIT=300; DEFAULT_LIMIT=900   # the default pipeline takes minutes on a few CPU cores
  TL=""
else
  DEVICE=cuda; CH=128; STACKS=3; CELLS=3; IMAGES=2048; HELD=256; EPOCHS=2; BATCH=128; VAE_CELLS=64000
  MATMUL=8192; LIMIT=60; DEFAULT_LIMIT=150
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

# 2. The card's matrix rate (bf16 on CUDA; fp32 in the dry run).
MATMUL_TFLOPS=$("$TORCH_PY" - "$DEVICE" "$MATMUL" <<'PY' 2>/dev/null
import sys, time, torch
dev, n = sys.argv[1], int(sys.argv[2])
dt = torch.bfloat16 if dev == 'cuda' else torch.float32
a = torch.randn(n, n, device=dev, dtype=dt); b = torch.randn(n, n, device=dev, dtype=dt)
sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)
for _ in range(3): a @ b
sync(); t = time.perf_counter(); k = 20
for _ in range(k): a @ b
sync(); print(f"{2 * n ** 3 * k / (time.perf_counter() - t) / 1e12:.1f}")
PY
)
say "matmul ${MATMUL}^3 ($([ "$DEVICE" = cuda ] && echo bf16 || echo fp32), PyTorch): ${MATMUL_TFLOPS:+$MATMUL_TFLOPS TFLOP/s}${MATMUL_TFLOPS:-FAILED (no usable torch in $TORCH_PY)}"

# 3. pretrain throughput, nasflow against PyTorch.
C1='{"hash": "28cfc7874f6d200472e1a9dcd8650aa0", "matrix": [[0,1,1,1,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,1,0,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv1x1-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","maxpool3x3","output"]}'
# The cell with the most parameters in ../shared/data/nb101-1k.jsonl (49,105,546 at 128 channels).
C2='{"hash": "0086fab67ec51749ec4672617d0805fb", "matrix": [[0,1,1,1,0,0,0],[0,0,1,1,0,0,0],[0,0,0,1,0,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","output"]}'
# Two more of nb101-1k (48,231,818 and 8,555,530 parameters).
C3='{"hash": "009ef922cafaec29f36bf7fd9a6cd5d1", "matrix": [[0,1,0,1,0,0,0],[0,0,1,0,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","output"]}'
C4='{"hash": "00005c142e6f48ac74fdcf73e3439874", "matrix": [[0,1,0,0,1,1,0],[0,0,1,0,0,0,0],[0,0,0,1,0,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","maxpool3x3","conv3x3-bn-relu","conv3x3-bn-relu","conv1x1-bn-relu","output"]}'
# random.Random(1).sample(range(1000), 4) of nb101-1k's lines (2,787,785; 13,126,538; 5,793,546;
# 1,677,633 parameters).
C5='{"hash": "00157c30cb9b5f293e77da4628862efd", "matrix": [[0,1,1,0,0,0],[0,0,1,0,1,0],[0,0,0,1,0,1],[0,0,0,0,1,1],[0,0,0,0,0,1],[0,0,0,0,0,0]], "ops": ["input","conv1x1-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","maxpool3x3","output"]}'
C6='{"hash": "005b394b2d83071c934b853f85c5ca0b", "matrix": [[0,1,0,0,1,0,0],[0,0,1,1,0,0,0],[0,0,0,0,0,1,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv1x1-bn-relu","maxpool3x3","maxpool3x3","conv1x1-bn-relu","conv3x3-bn-relu","output"]}'
C7='{"hash": "00899177dbfccd6429c65c4cb8fa6da8", "matrix": [[0,1,0,0,1,0,0],[0,0,1,0,1,0,0],[0,0,0,1,0,0,0],[0,0,0,0,1,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","maxpool3x3","conv3x3-bn-relu","maxpool3x3","conv3x3-bn-relu","conv1x1-bn-relu","output"]}'
C8='{"hash": "00831bf24b5aa2587b393b7f8c5c7710", "matrix": [[0,1,0,0,0,0,0],[0,0,1,1,0,0,0],[0,0,0,1,0,0,0],[0,0,0,0,1,0,1],[0,0,0,0,0,1,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]], "ops": ["input","conv1x1-bn-relu","conv1x1-bn-relu","conv1x1-bn-relu","maxpool3x3","conv3x3-bn-relu","output"]}'
CELLS_ALL=("$C1" "$C2" "$C3" "$C4" "$C5" "$C6" "$C7" "$C8")

# pretrain_nasflow NAME MODE N [WORKERS]: the first N cells together (N GPU slots), MODE
# fp32|tf32|bf16; WORKERS: `persistent` (a process per slot) or `shared:N` (one process, a CUDA
# stream per network).
pretrain_nasflow() {
  local name=$1 mode=$2 n=$3 workers=${4:-persistent}
  local d="$W/pre-$name"; mkdir -p "$d"
  printf '%s\n' "${CELLS_ALL[@]:0:$n}" > "$d/cells.jsonl"
  local prec=fp32 cl=false tf32=false
  [ "$mode" = bf16 ] && { prec=bf16; cl=true; }
  [ "$mode" = tf32 ] && tf32=true
  cat > "$d/pipeline.toml" <<TOML
[pipeline]
device = "$DEVICE"
seed = 1
jobs = $n
gpu_slots = $n
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
tf32 = $tf32
TOML
  (cd "$d" && timeout "$LIMIT" "$N" run cells > /dev/null 2>&1)
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$d" && NASFLOW_WORKERS=$workers timeout "$LIMIT" "$N" run pretrain > run.log 2>&1) || { echo "FAILED: $(tail -3 "$d/run.log" | tr '\n' ' ')"; return; }
  t1=$(date +%s.%N)
  python3 bench/gpu_figures.py pretrain "$d" "$N" "$IMAGES" "$EPOCHS" "$(python3 -c "print($t1 - $t0)")" 2>&1 | tail -1
}

# pretrain_pytorch MODE N: the first N cells, one process each, at once.
pretrain_pytorch() {
  local mode=$1 n=$2
  local flags=(--device "$DEVICE" --channels "$CH" --stacks "$STACKS" --cells "$CELLS" --batch "$BATCH"
               --images "$IMAGES" --held-out "$HELD" --epochs "$EPOCHS" --threads $(( $(nproc) / n > 0 ? $(nproc) / n : 1 )))
  [ "$mode" = bf16 ] && flags+=(--bf16 --channels-last)
  [ "$mode" = tf32 ] && flags+=(--tf32)
  local t0 t1 k pids=()
  t0=$(date +%s.%N)
  for k in $(seq 0 $((n - 1))); do
    local c=${CELLS_ALL[$k]} m o
    m=$(python3 -c "import json,sys;c=json.loads(sys.argv[1]);print(''.join(str(b) for r in c['matrix'] for b in r))" "$c")
    o=$(python3 -c "import json,sys;c=json.loads(sys.argv[1]);print(','.join(c['ops']))" "$c")
    timeout "$LIMIT" "$TORCH_PY" bench/pytorch_pretrain.py --matrix "$m" --ops "$o" "${flags[@]}" > "$W/py-$k.json" 2> "$W/py-$k.err" &
    pids+=($!)
  done
  local ok=1
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  t1=$(date +%s.%N)
  [ $ok = 1 ] || { echo "FAILED ($(tail -2 "$W/py-0.err" | tr '\n' ' '))"; return; }
  python3 -c "print(f'wall {$n * $IMAGES * $EPOCHS / ($t1 - $t0):,.0f} img/s, {$n} process(es)')"
}

step3() {
  say "== pretrain: $CH channels, $STACKS x $CELLS cells, batch $BATCH, $IMAGES synthetic images x $EPOCHS epochs a network, on $DEVICE"
  for mode in bf16 fp32 tf32; do
    for n in 1 8 4; do
      say "pretrain $mode, $n network(s): nasflow $(pretrain_nasflow "$mode-$n" "$mode" "$n")"
      # The same networks in one worker process, a CUDA stream each (NASFLOW_WORKERS=shared:N).
      if [ "$n" = 8 ] || { [ "$mode" = bf16 ] && [ "$n" = 4 ]; }; then
        say "pretrain $mode, $n network(s), one process: nasflow $(pretrain_nasflow "$mode-$n-shared" "$mode" "$n" "shared:$n")"
      fi
      if [ "$mode" != tf32 ] && [ "$n" != 4 ]; then
        say "pretrain $mode, $n network(s): pytorch $(pretrain_pytorch "$mode" "$n")"
      fi
    done
  done
}

# 4. train-vae on VAE_CELLS cells (extrapolated to the space), PyTorch beside it; extract per item.
step4() {
  local d="$W/vae"; mkdir -p "$d"
  cat > "$d/pipeline.toml" <<TOML
[pipeline]
device = "$DEVICE"
seed = 1
jobs = 2
gpu_slots = 2
[stages.sample]
kind = "sample"
cells = $VAE_CELLS
train_nets = 6
valid_nets = 2
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
variant = "io"
epochs = 1
checkpoints = []
prior_samples = 1000
TOML
  (cd "$d" && timeout 240 "$N" run train-vae > run.log 2>&1) || { say "train-vae epoch: FAILED: $(tail -3 "$d/run.log" | tr '\n' ' ')"; return; }
  say "extract on $DEVICE: $(python3 bench/gpu_figures.py items "$d" "$N" extract 2>&1 | tail -1)"
  local t
  t=$(cd "$d" && python3 - "$N" <<'PY'
import json, subprocess, sys
n = sys.argv[1]
run = lambda *a: subprocess.run([n, *a], capture_output=True, text=True, check=True).stdout
t = run('log', 'train-vae', '--file', 'timing.json')
s = json.loads(t[t.index('{'):])['train_seconds'][0]
m = json.load(open(json.loads(run('show', 'train-vae', '--json'))['out_dir'] + '/metrics.json'))['epochs'][0]
b = m['unlabeled_batches'] + m['labeled_batches']
# The whole space: 423,624 cells in batches of 32, plus the same labeled batches.
whole = 423624 / 32 + m['labeled_batches']
print(f"batch loop {s:.1f} s for {m['unlabeled_batches']} unlabeled + {m['labeled_batches']} labeled batches "
      f"({s * 1000 / b:.2f} ms a batch, both models stepped); the whole space: {s / b * whole:.0f} s extrapolated")
PY
)
  say "train-vae io (+ reference), 1 epoch on $DEVICE: $t"
  "$N" nb101 enumerate --format jsonl --out "$W/space.jsonl" > /dev/null 2>&1
  timeout 120 "$TORCH_PY" bench/pytorch_arch2vec.py "$W/space.jsonl" --limit "$VAE_CELLS" --device "$DEVICE" \
    --threads "$(nproc)" > "$W/arch2vec.out" 2>&1
  say "pytorch arch2vec, 1 epoch on $VAE_CELLS cells on $DEVICE: $(python3 bench/gpu_figures.py arch2vec "$W/arch2vec.out")"
}

# 5. The default pipeline on the device, then a train-vae edit: which stages rerun, on what device.
step5() {
  local d="$W/default"; mkdir -p "$d"
  sed "s/^device = .*/device = \"$DEVICE\"/" pipeline.toml > "$d/pipeline.toml"
  local t0; t0=$(date +%s)
  (cd "$d" && timeout "$DEFAULT_LIMIT" "$N" run predict > run1.log 2>&1) || { say "default pipeline: FAILED: $(tail -3 "$d/run1.log")"; return; }
  say "default pipeline on $DEVICE: $(grep '^summary' "$d/run1.log") in $(( $(date +%s) - t0 )) s"
  (cd "$d" && timeout "$DEFAULT_LIMIT" "$N" run predict --set train-vae.lr=0.0005 > run2.log 2>&1) || { say "edited run: FAILED: $(tail -3 "$d/run2.log")"; return; }
  say "after train-vae.lr=0.0005: reran: $(awk '/^summary/{s=1;next} s && $2=="ran"{print $1}' "$d/run2.log" | tr '\n' ' ')"
}

step3
step4
[ -n "$DEFAULT" ] && step5
say "done: $(date -u +%FT%TZ)"
