#!/usr/bin/env bash
# No-op rerun benchmarks, side by side in one run (see BENCHMARKS.md):
#   1. the 7-stage pipeline: `nasflow run predict` vs `dvc repro` (DVC 3.67 from PyPI in a venv)
#   2. a generated 1,000-stage pipeline, and one of 10,000: no-op `nasflow run`
#   3. a pipeline with a 2 GB output: no-op `nasflow run` (the output must not be re-hashed)
# Needs hyperfine (apt-get install hyperfine). Work files go to bench/work (git-ignored).
# NOOP_BASELINE=/path/to/an/older/nasflow runs it beside this build in each comparison (the same
# cache: keys are stable across versions), so that a change is measured side by side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
command -v hyperfine >/dev/null || { echo "install hyperfine: apt-get install hyperfine" >&2; exit 1; }
./scripts/install-libtorch.sh >/dev/null
cargo build --release --locked -q
nasflow=$root/target/release/nasflow
if [ ! -x bench/.venv/bin/dvc ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q dvc==3.67.0
fi
dvc=$root/bench/.venv/bin/dvc
work=$root/bench/work
rm -rf "$work"; mkdir -p "$work"
export NASFLOW_PLAIN=1
base=${NOOP_BASELINE:-}
# `both CMD-ARGS...`: hyperfine commands for this nasflow and, when given, the baseline.
both() { echo "$nasflow $*"; if [ -n "$base" ]; then echo "$base $*"; fi; }
median() { python3 -c "import json,sys,statistics; r=json.load(open(sys.argv[1]))['results']; [print(f'{x[\"command\"]}: median {statistics.median(x[\"times\"])*1000:.1f} ms over {len(x[\"times\"])} runs') for x in r]" "$1"; }

# 1. Seven stages, same DAG, trivial commands, in both tools.
stages=(sample pretrain extract preprocess train-vae reinforce predict)
deps_of() { case $1 in sample) ;; pretrain) echo sample;; extract) echo pretrain;; preprocess) echo extract;;
  train-vae) echo preprocess;; reinforce) echo train-vae;; predict) echo "train-vae reinforce";; esac; }
mkdir -p "$work/dvc" "$work/nasflow"
( cd "$work/dvc" && git init -q && "$dvc" init -q && {
  echo "stages:"
  for s in "${stages[@]}"; do
    echo "  $s:"
    echo "    cmd: mkdir -p out && echo $s > out/$s.txt"
    d=$(deps_of $s)
    if [ -n "$d" ]; then echo "    deps:"; for x in $d; do echo "      - out/$x.txt"; done; fi
    echo "    outs:"; echo "      - out/$s.txt"
  done; } > dvc.yaml && "$dvc" repro -q >/dev/null )
{ for s in "${stages[@]}"; do
    d=$(deps_of $s); list=$(for x in $d; do printf '"%s",' $x; done)
    printf '[stages.%s]\nkind = "cmd"\ndeps = [%s]\nrun = "echo %s > $NASFLOW_OUT/%s.txt"\n\n' "$s" "${list%,}" "$s" "$s"
  done; } > "$work/nasflow/pipeline.toml"
( cd "$work/nasflow" && "$nasflow" run predict 2>/dev/null )
mapfile -t cmds < <(both -p "$work/nasflow/pipeline.toml" run predict)
hyperfine -N --warmup 3 --runs 30 --export-json "$work/seven.json" \
  "${cmds[@]}" "bash -c 'cd $work/dvc && $dvc repro -q'" >/dev/null
echo "== 7-stage no-op rerun"; median "$work/seven.json"

# 2. Generated pipelines of 1,000 and 10,000 stages: stage i depends on i-1 and i/2. Cost must
# grow linearly with the stage count.
# `generated N NAME RUNS LABEL`: writes work/NAME, runs it once, then times the no-op.
generated() {
  mkdir -p "$work/$2"
  python3 - "$work/$2/pipeline.toml" "$1" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        deps = sorted({i - 1, i // 2} - {i}) if i else []
        names = ", ".join('"s%d"' % d for d in deps)
        f.write('[stages.s%d]\nkind = "cmd"\ndeps = [%s]\nrun = "echo %d > $NASFLOW_OUT/o.txt"\n\n' % (i, names, i))
PY
  ( cd "$work/$2" && "$nasflow" run -j 2 2>/dev/null | tail -0 )
  mapfile -t cmds < <(both -p "$work/$2/pipeline.toml" run)
  hyperfine -N --warmup 2 --runs "$3" --export-json "$work/$2.json" "${cmds[@]}" >/dev/null
  echo "== $4 no-op rerun"; median "$work/$2.json"
}
generated 1000 big 20 "1,000-stage"
generated 10000 huge 10 "10,000-stage"

# 3. A 2 GB output in the DAG.
mkdir -p "$work/large"
printf '[stages.big]\nkind = "cmd"\nrun = "head -c 2000000000 /dev/urandom > $NASFLOW_OUT/weights.bin"\n\n[stages.use]\nkind = "cmd"\ndeps = ["big"]\nrun = "ls -l $NASFLOW_IN_BIG > $NASFLOW_OUT/listing.txt"\n' > "$work/large/pipeline.toml"
start=$(date +%s.%N); ( cd "$work/large" && "$nasflow" run 2>/dev/null ); end=$(date +%s.%N)
echo "== 2 GB output: cold run (write + hash once) $(python3 -c "print(f'{($end-$start):.2f} s')")"
mapfile -t cmds < <(both -p "$work/large/pipeline.toml" run)
hyperfine -N --warmup 2 --runs 20 --export-json "$work/large.json" "${cmds[@]}" >/dev/null
echo "== 2 GB output: no-op rerun"; median "$work/large.json"
rm -rf "$work/large/cache"
