"""arch2vec's published search curves, method by method: the mean validation and test regret
(against NB101's best means) at the last point of each curve at or before a budget of simulated
seconds, from the `results/*.json` files of AIoT-MLSys-Lab/arch2vec (keys `time_plot`,
`valid_plot`, `test_plot`; each curve is a mean over that method's runs). The files are read from
a directory given on the command line (a clone of that repository's `results/`); nothing of
them is kept in nasflow.

    python3 bench/arch2vec_results.py DIR [BUDGET ...]     (default budgets: 2e5 1e6)
"""
import glob
import json
import os
import sys

NAMES = {
    "RL-arch2vec-model-nasbench-101.json": "REINFORCE (arch2vec)",
    "BO-arch2vec-model-nasbench-101.json": "BO / DNGO (arch2vec)",
    "Regularized-Evolution-Encoding-A.json": "regularized evolution",
    "Random-Search-Encoding-A.json": "random search",
    "Reinforce-Search-Encoding-A.json": "REINFORCE (NB101's encoding)",
    "BOHB-Search-Encoding-A.json": "BOHB",
    "RL-supervised-nasbench-101.json": "REINFORCE (supervised features)",
    "BO-supervised-nasbench-101.json": "BO (supervised features)",
}


def at(curve, times, budget):
    last = None
    for t, v in zip(times, curve):
        if t <= budget:
            last = (t, v)
    return last


def main():
    folder = sys.argv[1]
    budgets = [float(b) for b in sys.argv[2:]] or [2e5, 1e6]
    rows = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        name = NAMES.get(os.path.basename(path), os.path.basename(path))
        d = json.load(open(path))
        rows[name] = {b: (at(d["valid_plot"], d["time_plot"], b), at(d["test_plot"], d["time_plot"], b))
                      for b in budgets}
    for b in budgets:
        rnd = rows.get("random search", {}).get(b, ((None, None),))[0]
        print(f"budget {b:.0e} s (validation regret, ratio to random search; test regret):")
        for name, r in rows.items():
            (tv, v), (_, t) = r[b]
            ratio = f"{v / rnd[1]:.2f}x random" if rnd and rnd[1] else ""
            print(f"  {name:34s} {v:.3e} at {tv:.3g} s  {ratio:16s} test {t:.3e}")


if __name__ == "__main__":
    main()
