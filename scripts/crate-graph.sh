#!/usr/bin/env bash
# Prints nasflow's crate graph (its own packages) and checks that every arrow points one way: the
# engine, the charts and the stage contract depend on neither the NAS crates nor libtorch (tch,
# torch-sys).
#
#   ./scripts/crate-graph.sh          the graph, then "ok" or the offending dependencies (exit 1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ours='^nasflow(-contract|-charts|-engine|-stages|-torch)?$'
for pkg in nasflow nasflow-torch nasflow-stages nasflow-engine nasflow-charts nasflow-contract; do
  deps=$(cargo tree --offline -p "$pkg" -e normal --depth 1 --prefix none --format '{p}' \
    | tail -n +2 | awk '{print $1}' | grep -E "$ours" | sort -u | tr '\n' ' ' || true)
  printf '%-17s -> %s\n' "$pkg" "${deps:-(none of ours)}"
done
fail=0
for pkg in nasflow-contract nasflow-charts nasflow-engine; do
  bad=$(cargo tree --offline -p "$pkg" -e normal,build,dev --prefix none --format '{p}' \
    | awk '{print $1}' | grep -E '^(tch|torch-sys|nasflow-stages|nasflow-torch)$' | sort -u | tr '\n' ' ' || true)
  if [ -n "$bad" ]; then
    echo "error: $pkg depends on $bad" >&2
    fail=1
  fi
done
[ "$fail" = 0 ] && echo "ok: nasflow-engine, nasflow-charts and nasflow-contract depend on no NAS crate and no libtorch"
exit "$fail"
