#!/usr/bin/env bash
# Fault injection: kill -9 a `nasflow run` of a 30-item pipeline at random moments, many times,
# and check after every kill and at the end that no wrong result is reused, no finished item is
# lost, and a plain `nasflow run` finishes the job (no manual step).
#
#   ./bench/faults.sh [KILLS]        (default 50; figures in BENCHMARKS.md)
#
# Wrong results are judged against a clean, uninterrupted run of the same pipeline: every
# published item record and stage record must carry the clean run's output digest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kills=${1:-50}
./scripts/install-libtorch.sh >/dev/null
cargo build --release --locked -q
nasflow=$PWD/target/release/nasflow
work=$PWD/bench/work/faults
rm -rf "$work"; mkdir -p "$work/clean" "$work/killed"
cat > "$work/pipeline.toml" <<'EOF'
[stages.list]
kind = "cmd"
run = "seq 0 29 | sed 's/.*/{\"id\":&}/' > $NASFLOW_OUT/items.jsonl"

[stages.each]
kind = "cmd"
foreach = "list"
run = '''
id=$(echo "$NASFLOW_ITEM" | tr -dc 0-9)
sleep $(( id % 3 + 1 )).$(( (id * 7919) % 9 ))
for i in $(seq 1 200); do echo "item $id line $i"; done > $NASFLOW_OUT/part.txt
head -c $(( id * 1000 + 1 )) /dev/zero > $NASFLOW_OUT/pad.bin
'''

[stages.sum]
kind = "cmd"
deps = ["each"]
run = "cat $NASFLOW_IN_EACH/items/*/part.txt | wc -l > $NASFLOW_OUT/lines.txt"
EOF
cp "$work/pipeline.toml" "$work/clean/"; cp "$work/pipeline.toml" "$work/killed/"
export NASFLOW_PLAIN=1
( cd "$work/clean" && "$nasflow" run -j 4 >/dev/null 2>&1 )

python3 - "$nasflow" "$work" "$kills" <<'PY'
import glob, json, os, random, signal, subprocess, sys, time
nasflow, work, kills = sys.argv[1], sys.argv[2], int(sys.argv[3])
def digests(root):
    """Output digest of every stage record and item record in a cache."""
    out = {}
    for kind in ("records", "items"):
        for f in glob.glob(f"{root}/cache/{kind}/*/*.json"):
            try:
                r = json.load(open(f))
            except Exception:
                out[f] = "unreadable"
                continue
            out[(kind, r["stage"], r["key"])] = r["output_digest"]
    return out
clean = digests(f"{work}/clean")
killed = f"{work}/killed"
random.seed(1)
wrong = lost = 0
published = {}
t0 = time.time()
complete_at = None
for k in range(kills):
    # Until the pipeline is complete, plain runs; after, forced reruns of the item stage (so
    # that every kill still lands in the middle of computing items).
    args = [nasflow, "run", "-j", "4"] + (["--force", "each"] if complete_at is not None else [])
    p = subprocess.Popen(args, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(0.3, 6.0))
    p.send_signal(signal.SIGKILL)
    p.wait()
    now = digests(killed)
    for key, d in now.items():
        if clean.get(key) != d:
            wrong += 1
            print(f"kill {k}: wrong result {key}: {d}")
    for key in published:
        if key not in now:
            lost += 1
            print(f"kill {k}: lost {key}")
    published = now
    if complete_at is None and any(key[0] == "records" and key[1] == "sum" for key in now):
        complete_at = k
done_items = sum(1 for k in published if k[0] == "items")
final = subprocess.run([nasflow, "run", "-j", "4"], cwd=killed, capture_output=True, text=True)
verify = subprocess.run([nasflow, "cache", "verify"], cwd=killed, capture_output=True, text=True)
end = digests(killed)
wrong_end = sum(1 for key, d in clean.items() if end.get(key) != d)
phase = (f"the pipeline first completed at kill {complete_at}; the later kills hit forced reruns of `each`"
         if complete_at is not None else "the pipeline never completed between kills")
print(f"kills: {kills} in {time.time() - t0:.1f} s; {phase}; items published at the last kill: {done_items} of 30")
print(f"wrong results reused after a kill: {wrong}; finished results lost: {lost}")
print(f"final `nasflow run`: exit {final.returncode}; {final.stderr.strip().splitlines()[-4] if final.stderr else ''}")
print(f"after it, results differing from the clean run: {wrong_end} of {len(clean)}")
print(f"cache verify: {verify.stdout.strip()}")
sys.exit(1 if wrong or lost or wrong_end or final.returncode else 0)
PY
