#!/usr/bin/env bash
# A bounded run of nasflow's fuzz targets (cargo fuzz, libFuzzer): pipeline.toml, records and
# item records, bundles, NB101 tables. Seconds per target as the first argument (default 30).
# The corpus is in corpus/TARGET (seeds and small found inputs); a crash is saved under
# artifacts/ and must become a regression test.
#
# cargo-fuzz's instrumentation flags are nightly-only; RUSTC_BOOTSTRAP=1 lets the machine's one
# stable toolchain accept them (no sanitizer: `-s none`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-30}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2 >/dev/null 2>&1 || {
    echo "SKIPPED: cargo-fuzz is not installed and could not be (the property tests cover the same entry points)"
    exit 0
  }
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir . -s none >/dev/null 2>&1 || cargo fuzz build --fuzz-dir . -s none
# Each target's exit status is checked: libFuzzer exits non-zero when it finds a crash, and then
# this script prints the input (hex) and fails at the end, after running the other targets.
crashed=()
for t in pipeline_toml records bundle nb101_tables; do
  mkdir -p "corpus/$t"
  # A scratch copy of the corpus: what a run finds is not committed by accident.
  scratch=$(mktemp -d)
  cp -r "corpus/$t/." "$scratch/"
  artifacts=$(mktemp -d)
  log=$(mktemp)
  status=0
  cargo fuzz run --fuzz-dir . -s none "$t" "$scratch" -- -max_total_time="$secs" -max_len=16384 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  grep -E '^(Done|==|SUMMARY|artifact_prefix|Test unit written)' "$log" || true
  rm -rf "$scratch"
  found=$(find "$artifacts" -type f | sort)
  if [ "$status" != 0 ] || [ -n "$found" ]; then
    echo "fuzz $t: CRASH (exit status $status) after at most ${secs}s"
    tail -n 30 "$log"
    for f in $found; do
      mkdir -p artifacts/"$t"
      cp "$f" artifacts/"$t"/
      echo "input $(basename "$f") (as hex; \`xxd -r -p\` turns it back), kept in tests/fuzz/artifacts/$t/:"
      xxd -p "$f" | tr -d '\n'; echo
    done
    echo "  add it to tests/fuzz/regressions/$t/ with the fix that makes it an error"
    crashed+=("$t")
  else
    echo "fuzz $t: ${secs}s, no crash"
  fi
  rm -rf "$artifacts" "$log"
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${crashed[*]}" >&2
  exit 1
fi
