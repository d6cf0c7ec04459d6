#!/usr/bin/env bash
# Installs libtorch 2.11.0 (the version tch 0.24.0 binds) from PyPI into a user-level cache,
# once per machine, and links it as ./.libtorch so that plain `cargo build` finds it
# (.cargo/config.toml points LIBTORCH there).
#
#   NASFLOW_TORCH_HOME   where to install (default ~/.cache/nasflow/torch-2.11.0)
#   NASFLOW_TORCH_FULL=1 install the full CUDA wheel set instead of the lean CPU set
#
# The lean set is torch's wheel without its dependencies plus the two small CUDA runtime wheels
# that libtorch_cpu.so itself needs (see ../shared/reference/libtorch.md). A marker file is
# written only after a complete, version-checked install, so an interrupted install is redone.
set -euo pipefail

TORCH_VERSION=2.11.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="${NASFLOW_TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nasflow/torch-$TORCH_VERSION}"
marker="$home/.nasflow-complete"
python="${PYTHON:-python3}"

check_version() {
  local vfile="$1/site/torch/version.py"
  [ -f "$vfile" ] || return 1
  grep -q "^__version__ = '$TORCH_VERSION" "$vfile"
}

if [ -f "$marker" ] && check_version "$home"; then
  echo "libtorch $TORCH_VERSION: already installed in $home" >&2
else
  if [ -f "$marker" ]; then
    echo "error: $home holds a libtorch that is not $TORCH_VERSION; remove $home and rerun" >&2
    exit 1
  fi
  echo "libtorch $TORCH_VERSION: installing from PyPI into $home (once per machine)" >&2
  command -v "$python" >/dev/null || { echo "error: $python not found: install Python 3 (apt-get install python3 python3-pip)" >&2; exit 1; }
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
    else
      echo "error: pip is missing: sudo apt-get install python3-pip" >&2; exit 1
    fi
  fi
  mkdir -p "$(dirname "$home")"
  tmp="$(mktemp -d "$(dirname "$home")/.torch-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if [ "${NASFLOW_TORCH_FULL:-0}" = 1 ]; then
    pkgs=("torch==$TORCH_VERSION")
    deps=()
  else
    pkgs=("torch==$TORCH_VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85")
    deps=(--no-deps)
  fi
  # `pip download` + unzip rather than `pip install`: it works with a system Python that is
  # marked externally managed (PEP 668) and needs no venv module.
  "$python" -m pip download --disable-pip-version-check --quiet --only-binary=:all: \
    "${deps[@]}" -d "$tmp/wheels" "${pkgs[@]}"
  "$python" - "$tmp/wheels" "$tmp/site" <<'PY'
import pathlib, sys, zipfile
wheels, site = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in sorted(wheels.glob("*.whl")):
    zipfile.ZipFile(wheel).extractall(site)
PY
  rm -rf "$tmp/wheels"
  check_version "$tmp" || { echo "error: installed torch is not $TORCH_VERSION" >&2; exit 1; }
  rm -rf "$home"
  mv "$tmp" "$home"
  trap - EXIT
  touch "$marker"
fi

ln -sfn "$home/site/torch" "$root/.libtorch"
echo "$home/site/torch"
