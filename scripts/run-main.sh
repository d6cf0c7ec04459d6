#!/usr/bin/env bash
# Sets everything up (libtorch, a release build) and runs the main job: `nasflow run predict`
# (and `reinforce`, the other end of the DAG)
# on the default pipeline.toml. Extra arguments go to `nasflow run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-libtorch.sh >/dev/null
cargo build --release --locked ${NASFLOW_FEATURES:+--features "$NASFLOW_FEATURES"}
./target/release/nasflow run predict reinforce "$@"
