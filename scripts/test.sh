#!/usr/bin/env bash
# Sets everything up (libtorch) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The one-way architecture, checked before libtorch is installed: the engine, the charts and the
# stage contract depend (normal, build and dev dependencies, transitively) on no NAS crate and on
# neither tch nor torch-sys, so they build and test without libtorch. (Their tests run with the
# rest below: building them apart, with LIBTORCH pointing nowhere, compiled their dependencies a
# second time, about 4 of the suite's minutes.)
./scripts/crate-graph.sh
./scripts/install-libtorch.sh >/dev/null
# tests/remote_http.rs runs the HTTP remote against a real nginx (Debian's nginx-light, with
# WebDAV's PUT); install it where we can, else that test says it skipped.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y nginx-light || { apt-get update && apt-get install -y nginx-light; }; } >/dev/null 2>&1 \
      || echo "note: nginx-light could not be installed; tests/remote_http.rs will skip"
  else
    echo "note: nginx is missing and cannot be installed here (needs root and apt); tests/remote_http.rs will skip"
  fi
fi
# tests/report.rs opens `nasflow report` in a real headless Chromium (Debian's chromium); install
# it where we can, else that test checks the HTML only and says it skipped the browser.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; } >/dev/null 2>&1 \
      || echo "note: chromium could not be installed; tests/report.rs will skip its browser part"
  else
    echo "note: chromium is missing and cannot be installed here (needs root and apt); tests/report.rs will skip its browser part"
  fi
fi
# tests/slurm.rs runs the Slurm executor on a real single-node cluster (scripts/slurm-cluster.sh);
# install Debian's slurm-wlm daemons and munge where we can, else that test says it skipped.
./scripts/slurm-cluster.sh install \
  || echo "note: Slurm (slurmctld, slurmd, slurm-client, munge) could not be installed here (needs root and apt); tests/slurm.rs will skip"
cargo test --workspace --locked "$@"
# The README's figures come from a run: the default pipeline on two pinned cores (about 2
# minutes; its stages are optimised in the test profile too), its metrics rendered and compared
# with README.md's figures block (scripts/readme-figures.sh without --check updates it).
NASFLOW_BIN=target/debug/nasflow ./scripts/readme-figures.sh --check
# A bounded run of the fuzz targets (pipeline.toml, records, bundles, NB101 tables): seconds per
# target in NASFLOW_FUZZ_SECONDS (default 20, to keep the suite within 20 minutes; 0 skips; the
# long runs, 15 minutes a target, are in BENCHMARKS.md).
# The script's own check first: with a stand-in cargo that reports a crash, run.sh must fail.
./tests/fuzz/selftest.sh
if [ "${NASFLOW_FUZZ_SECONDS:-20}" != 0 ]; then
  ./tests/fuzz/run.sh "${NASFLOW_FUZZ_SECONDS:-20}"
fi
# The CUDA build's link step (the `cuda` feature, the stripped `device` profile carried to GPU
# machines): rust-lld links libtorch_cuda from the lean install; the binaries run only where the
# full CUDA libraries exist. Checks that libtorch_cuda is linked and that both binaries fit in the
# 64 MiB a GPU machine can be sent. A second, release build of everything (5 to 8 minutes on 2
# cores), so it runs only with NASFLOW_CUDA_BUILD=1 (CI does not set it, to keep the suite within
# 20 minutes); before a GPU session, `./scripts/device-build.sh` does the same.
if [ "${NASFLOW_CUDA_BUILD:-0}" = 1 ]; then
  ./scripts/device-build.sh
else
  echo "note: the CUDA device build is not checked here (NASFLOW_CUDA_BUILD=1 ./scripts/test.sh, or ./scripts/device-build.sh)"
fi
