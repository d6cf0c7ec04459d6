#!/usr/bin/env bash
# Regenerates README.md's param tables from the kinds' typed declarations: each block between
# `<!-- params KIND -->` and `<!-- /params -->` becomes `nasflow params KIND --markdown`.
# tests/cli.rs checks that they agree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --bin nasflow
python3 - target/debug/nasflow <<'PY'
import re, subprocess, sys
nasflow = sys.argv[1]
def table(m):
    kind = m.group(1)
    out = subprocess.run([nasflow, "params", kind, "--markdown"], check=True,
                         capture_output=True, text=True).stdout
    return f"<!-- params {kind} -->\n{out}<!-- /params -->"
text = open("README.md").read()
open("README.md", "w").write(re.sub(r"<!-- params ([\w-]+) -->\n.*?<!-- /params -->", table, text, flags=re.S))
PY
