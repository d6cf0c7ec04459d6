"""A timing-only benchmark table over the whole NB101 space: every cell of the enumerated space
(hash-keyed JSON Lines from `nasflow nb101 enumerate --format jsonl`) gets the figures of a row of
a real table drawn at random (seeded), so that the costs and accuracies follow NB101's
distribution and a search makes as many queries as on the real table. Not for regret figures.
    python3 bench/full_table.py SPACE.jsonl REAL.jsonl OUT.jsonl
"""
import json
import random
import sys

space, real, out = sys.argv[1:4]
rows = [json.loads(l) for l in open(real)]
rng = random.Random(0)
with open(out, "w") as f:
    for line in open(space):
        h = json.loads(line)["hash"]
        r = rng.choice(rows)
        f.write(json.dumps({"hash": h, "validation_accuracy": {"108": r["validation_accuracy"]["108"]},
                            "training_time_108": r["training_time_108"]}) + "\n")
