#!/usr/bin/env bash
# A cache-restored CI run of the default pipeline against a cold one, as
# .github/workflows/pipeline.yml does it: a fresh checkout (here: a copy of pipeline.toml in an
# empty directory) runs cold, exports its cache; a second fresh checkout imports the bundle and
# runs. Prints the wall time of each step.
#   bench/ci_restore.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
B=$PWD/target/release/nasflow
W=bench/work/ci; rm -rf "$W"; mkdir -p "$W/cold" "$W/warm"
cp pipeline.toml "$W/cold/"; cp pipeline.toml "$W/warm/"
t() { local s=$(date +%s.%N); "$@" > /dev/null 2>&1; python3 -c "print(round($(date +%s.%N) - $s, 3))"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "cold run:        $(cd "$W/cold" && t "$B" run predict reinforce) s"
echo "cache key:       $(cd "$W/cold" && t "$B" cache key predict reinforce) s"
echo "export:          $(cd "$W/cold" && t "$B" cache export ../cache.tar predict reinforce) s ($(du -h "$W/cache.tar" | cut -f1))"
echo "import:          $(cd "$W/warm" && t "$B" cache import ../cache.tar) s"
echo "restored run:    $(cd "$W/warm" && t "$B" run predict reinforce) s"
(cd "$W/warm" && "$B" run predict reinforce 2>&1 | grep -E "^summary")
