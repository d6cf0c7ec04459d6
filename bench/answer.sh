#!/usr/bin/env bash
# The default pipeline's answer and its time at three sizes, side by side in one run, each on a
# fresh cache under bench/work/answer/ (2 cores, release build):
# - previous: the default before issue 28 (10 networks of 3 epochs on 3,000 images, 500 held-out
#   and unseen images, train-vae 4 epochs on 20,000 cells, 100 search seeds, BO 20), with both
#   feature sets, as today's default compares them;
# - default: pipeline.toml as it is;
# - default-4ep: pipeline.toml with 4 train-vae epochs (checkpoints [2, 4]), on default's cache
#   (only train-vae, reinforce and predict rerun).
# Prints each pipeline's wall time, its stages' own times and its headline tables.
#   bench/answer.sh                (env: NASFLOW_BIN, default target/release/nasflow)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${NASFLOW_BIN:-target/release/nasflow}")
W=bench/work/answer
rm -rf "$W" && mkdir -p "$W"/previous "$W"/default
sed -e 's/^cells = 12000$/cells = 20000/' -e 's/^train_nets = 6$/train_nets = 8/' \
    -e 's/^train_limit = 1500$/train_limit = 3000/' -e 's/^test_limit = 500$/test_limit = 1000/' \
    -e 's/^held_out = 300$/held_out = 500/' -e 's/^unseen = 300$/unseen = 500/' \
    -e 's/^seeds = 50$/seeds = 100/' -e 's/^bo_seeds = 10$/bo_seeds = 20/' pipeline.toml |
  python3 -c '
import sys
s = sys.stdin.read()
s = s.replace("epochs = 2\nbatch_size = 64", "epochs = 3\nbatch_size = 64")
s = s.replace("epochs = 3\ncheckpoints = [1, 3]", "epochs = 4\ncheckpoints = [2, 4]")
sys.stdout.write(s)' > "$W/previous/pipeline.toml"
cp pipeline.toml "$W/default/pipeline.toml"
run() { # dir label
  local start end
  start=$(date +%s.%N)
  (cd "$1" && "$BIN" run predict reinforce > headline.txt 2> run.log)
  end=$(date +%s.%N)
  echo "== $2: $(python3 -c "print(f'{$end - $start:.1f}')") s wall"
  (cd "$1" && "$BIN" status | tail -n +3 | awk '{print "   ", $1, $NF}')
  cat "$1/headline.txt"
}
run "$W/previous" "previous default (before issue 28), both feature sets"
run "$W/default" "default (pipeline.toml)"
python3 -c '
import sys
s = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(s.replace("epochs = 3\ncheckpoints = [1, 3]", "epochs = 4\ncheckpoints = [2, 4]"))
' pipeline.toml "$W/default/pipeline-4ep.toml"
start=$(date +%s.%N)
(cd "$W/default" && "$BIN" -p pipeline-4ep.toml run predict reinforce > headline-4ep.txt 2> run-4ep.log)
end=$(date +%s.%N)
echo "== default with 4 train-vae epochs (upstream cached): $(python3 -c "print(f'{$end - $start:.1f}')") s wall"
cat "$W/default/headline-4ep.txt"
