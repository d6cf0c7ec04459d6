#!/usr/bin/env bash
# Builds the CUDA binaries to carry to a GPU machine (target/device/nasflow, nasflow-worker:
# release, no debug info, stripped) and checks them: libtorch_cuda is linked (not dropped by
# --as-needed) and both fit in 64 MiB together. Prints their sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-libtorch.sh >/dev/null
cargo build --profile device --features cuda --locked -q
bins=(target/device/nasflow target/device/nasflow-worker)
if ! readelf -d target/device/nasflow-worker | grep NEEDED | grep -q 'libtorch_cuda.so'; then
  echo "error: target/device/nasflow-worker does not link libtorch_cuda.so" >&2; exit 1
fi
if readelf -d target/device/nasflow | grep NEEDED | grep -q 'libtorch'; then
  echo "error: target/device/nasflow links libtorch (the engine must not)" >&2; exit 1
fi
total=$(stat -c %s "${bins[@]}" | awk '{s += $1} END {print s}')
for b in "${bins[@]}"; do echo "$b: $(stat -c %s "$b") bytes"; done
echo "device binaries: $total bytes in all (limit $((64 * 1024 * 1024)))"
[ "$total" -le $((64 * 1024 * 1024)) ] || { echo "error: the device binaries exceed 64 MiB" >&2; exit 1; }
