"""Tables of bench/comparison.sh from the stages' summary.json files (markdown, to stdout).

usage: comparison_table.py TRAIN_VAE_SUMMARY ORIGINAL_SUMMARY PREPROCESS_SUMMARY LAST_EPOCH \
           [MODEL-CHECKPOINT=PREDICT_SUMMARY]...
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    vae, orig, pre = (load(p) for p in sys.argv[1:4])
    last = sys.argv[4]
    checkpoints = ["3", last]
    models = {"io": vae, "reference": vae, "original": orig}

    def at(model, c):
        return models[model]["checkpoint"][c][model]

    sets = sorted(k[3:] for k in at("io", last)
                  if k.startswith("l1_") and not k.endswith(("_own_mean", "_train_mean")))
    print("Labeled L1 of the IO model's predicted outputs (lower is better) against each set's own-mean")
    print("baseline (info-NAS's) and the train set's mean:\n")
    print(f"| set | rows | L1, epoch 3 | L1, epoch {last} | own-mean baseline | train-mean baseline |")
    print("|---|---|---|---|---|---|")
    for s in sets:
        a3, al = at("io", "3"), at("io", last)
        print(f"| {s} | {pre[s]['rows']} | {fmt(a3.get('l1_' + s))} | {fmt(al.get('l1_' + s))} "
              f"| {fmt(al.get(f'l1_{s}_own_mean'))} | {fmt(al.get(f'l1_{s}_train_mean'))} |")

    print("\nReconstruction accuracy (unlabeled validation cells; labeled validation networks), validity")
    print("and uniqueness of 10,000 cells decoded from the prior:\n")
    print("| model | epoch | ops (unl.) | adj (unl.) | mean_corr_adj | mean_fal_pos_adj | ops (lab.) "
          "| adj (lab.) | validity | uniqueness |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in models:
        for c in checkpoints:
            e = at(m, c)
            cols = ["valid_ops_accuracy", "valid_adj_accuracy", "valid_mean_corr_adj",
                    "valid_mean_fal_pos_adj", "labeled_valid_ops_accuracy",
                    "labeled_valid_adj_accuracy", "validity", "uniqueness"]
            print(f"| {m} | {c} | " + " | ".join(fmt(e.get(k)) for k in cols) + " |")

    preds = dict(a.split("=", 1) for a in sys.argv[5:])
    if preds:
        print("\npredict on nb101-10k (validation accuracy; 250 fit cells outside the labeled train networks;")
        print("scored on cells with accuracy > 0.8; mean +- 95% half-width over 10 seeds):\n")
        print("| features | epoch | RF RMSE | RF Pearson r | GP RMSE | GP Pearson r |")
        print("|---|---|---|---|---|---|")
        for m in models:
            for c in checkpoints:
                s = load(preds[f"{m}-{c}"])
                cells = []
                for r in ("rf", "gp"):
                    x = fit(s, r, "latent", 250)
                    cells.append(f"{x['rmse']:.4f} +- {x['rmse_ci95']:.4f}")
                    cells.append(f"{x['pearson']:.3f} +- {x['pearson_ci95']:.3f}")
                print(f"| {m} | {c} | " + " | ".join(cells) + " |")
        base = load(preds[f"io-{last}"])
        for k in sorted(feature_sets(base) - {"latent"}):
            cells = []
            for r in ("rf", "gp"):
                x = fit(base, r, k, 250)
                cells.append(f"{x['rmse']:.4f} +- {x['rmse_ci95']:.4f}")
                cells.append(f"{x['pearson']:.3f} +- {x['pearson_ci95']:.3f}")
            print(f"| {k} (no VAE) | - | " + " | ".join(cells) + " |")


def fit(s, regressor, features, size):
    """One fit size's numbers: `rf.latent.fit_250` (predict 4), or `latent.rf.250` before."""
    if regressor in s and features in s[regressor]:
        return s[regressor][features][f"fit_{size}"]
    return s[features][regressor][str(size)]


def feature_sets(s):
    if "rf" in s:
        return set(s["rf"])
    return set(s) - {"latent", "table", "target", "threshold", "skipped_sizes"} | {"latent"}


if __name__ == "__main__":
    main()
