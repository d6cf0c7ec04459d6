"""Mean validation regret of one method's runs at given budgets of simulated seconds (each run's
regret after its last query finished by that time, as the stage's charts read a curve), from a
`reinforce` stage's traces.jsonl; to set nasflow's curves beside arch2vec's published ones
(bench/arch2vec_results.py) point by point.

    python3 bench/regret_at.py TRACES METHOD BUDGET [BUDGET ...]
"""
import json
import sys


def main():
    path, method = sys.argv[1], sys.argv[2]
    budgets = [float(b) for b in sys.argv[3:]]
    runs = [t for t in map(json.loads, open(path)) if t["method"] == method]
    out = {"method": method, "runs": len(runs)}
    for b in budgets:
        vals = []
        for t in runs:
            last = None
            for c, r in zip(t["cost"], t["regret_valid"]):
                if c <= b:
                    last = r
            if last is not None:
                vals.append(last)
        out[f"{b:g}"] = sum(vals) / len(vals) if vals else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
