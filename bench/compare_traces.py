"""Final validation regret of one method against another from two `reinforce` stages' traces
(traces.jsonl), with a two-sided Mann-Whitney U test (normal approximation with the tie
correction, as the stage's own `p_vs_random`; `p_greater`: one-sided, A's regret greater than
B's, as `p_worse_than_random`). For methods run in different stages with the same
seeds, table and budget (bench/search.sh runs BO in a stage of its own).

    python3 bench/compare_traces.py A/traces.jsonl METHOD_A B/traces.jsonl METHOD_B
"""
import json
import math
import sys


def finals(path, method):
    out = []
    for line in open(path):
        t = json.loads(line)
        if t["method"] == method and t["regret_valid"]:
            out.append(t["regret_valid"][-1])
    return out


def mann_whitney(a, b):
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks, ties, i = [0.0] * len(pooled), 0.0, 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    z_greater = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    z_two = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return u, min(1.0, math.erfc(z_two / math.sqrt(2))), 0.5 * math.erfc(z_greater / math.sqrt(2))


def main():
    a = finals(sys.argv[1], sys.argv[2])
    b = finals(sys.argv[3], sys.argv[4])
    mean = lambda v: sum(v) / len(v)
    u, p, p_greater = mann_whitney(a, b)
    print(json.dumps({"a": sys.argv[2], "b": sys.argv[4], "n_a": len(a), "n_b": len(b),
                      "mean_a": mean(a), "mean_b": mean(b), "ratio_b_over_a": mean(b) / mean(a),
                      "u": u, "p": p, "p_greater": p_greater}))


if __name__ == "__main__":
    main()
