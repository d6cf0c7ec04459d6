#!/usr/bin/env bash
# Sets everything up (libtorch) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-libtorch.sh >/dev/null
cargo test --workspace --locked "$@"
