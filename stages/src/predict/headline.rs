//! predict's headline: per fit size and feature set, the first regressor's Kendall tau and
//! Pearson r (mean and 95% half-width over fit sets), and a Wilcoxon signed-rank test between
//! each latent feature set and the first, paired by fit set (each seed draws the same fit set
//! for every feature set).
use serde_json::{json, Value};

use super::Scored;
use crate::report::mean_ci95;
use crate::stats::wilcoxon_p;
use nasflow_contract::headline::{self, p_value, sig3, Headline, HEADLINE, KEY_METRICS};

/// The main result set's fits of one regressor, feature set and size, in seed order.
fn fits<'a>(scored: &'a [Scored], r: &str, f: &str, size: usize) -> Vec<&'a Scored> {
    let mut v: Vec<&Scored> = (scored.iter())
        .filter(|s| s.set.is_empty() && s.regressor == r && s.features == f && s.train_size == size)
        .collect();
    v.sort_by_key(|s| s.seed);
    v
}

fn mean_pm(v: &[f64]) -> String {
    let (m, h) = mean_ci95(v);
    headline::mean_pm(m, h)
}

/// Adds `compare` (the tests, as numbers), `headline` and `key_metrics` to the summary.
/// `latents` are the latent feature sets' names ("latent", or "io", "reference", ...), `sets`
/// every feature set's name in fit order.
pub fn add(
    summary: &mut Value,
    scored: &[Scored],
    regressor: &str,
    sizes: &[usize],
    latents: &[String],
    sets: &[String],
) {
    let (mut rows, mut notes, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for &size in sizes {
        for f in sets {
            let v = fits(scored, regressor, f, size);
            if v.is_empty() {
                continue;
            }
            let of =
                |get: fn(&Scored) -> f64| mean_pm(&v.iter().map(|s| get(s)).collect::<Vec<_>>());
            let (tau, r) = (of(|s| s.kendall_tau), of(|s| s.pearson));
            rows.push(vec![
                size.to_string(),
                f.clone(),
                tau,
                r,
                v.len().to_string(),
            ]);
            keys.push(format!("{regressor}.{f}.fit_{size}.kendall_tau"));
        }
        let Some((first, others)) = latents.split_first() else {
            continue;
        };
        for other in others {
            let (numbers, note) = compare(scored, regressor, size, first, other);
            let name = format!("{first}_vs_{other}");
            summary["compare"][regressor][format!("fit_{size}")][&name] = numbers;
            keys.push(format!(
                "compare.{regressor}.fit_{size}.{name}.p_kendall_tau"
            ));
            notes.push(note);
        }
    }
    let h = Headline {
        title: format!("predict: how well each feature set's {regressor} predictor ranks the scored cells (mean ± 95% half-width over fit sets)"),
        columns: ["fit", "features", "Kendall tau", "Pearson r", "fits"].map(String::from).to_vec(),
        rows,
        notes,
    };
    let p = "p-value (Wilcoxon signed-rank, two-sided, paired by fit set)";
    summary["units"]["p_kendall_tau"] = json!(p);
    summary["units"]["p_pearson"] = json!(p);
    summary["units"]["kendall_tau_difference"] =
        json!("Kendall tau-b (first minus second, mean over fit sets)");
    summary[HEADLINE] = json!(h);
    summary[KEY_METRICS] = json!(keys);
}

/// The Wilcoxon signed-rank tests of two latent feature sets at one fit size, paired by seed
/// (the fit set): the numbers, and the headline's note.
fn compare(scored: &[Scored], regressor: &str, size: usize, a: &str, b: &str) -> (Value, String) {
    let theirs = fits(scored, regressor, b, size);
    let pairs: Vec<(&Scored, &Scored)> = fits(scored, regressor, a, size)
        .into_iter()
        .filter_map(|x| theirs.iter().find(|y| y.seed == x.seed).map(|y| (x, *y)))
        .collect();
    let test = |get: fn(&Scored) -> f64| {
        let (x, y): (Vec<f64>, Vec<f64>) = pairs.iter().map(|(p, q)| (get(p), get(q))).unzip();
        (wilcoxon_p(&x, &y), mean_ci95(&x).0 - mean_ci95(&y).0)
    };
    let (p_tau, diff) = test(|s| s.kendall_tau);
    let (p_r, _) = test(|s| s.pearson);
    let better = if diff > 0.0 { a } else { b };
    let note = format!(
        "fit {size}: {a} vs {b}: Kendall tau {} higher for {better}, Wilcoxon signed-rank p = {} (Pearson r: p = {}), paired over {} fit sets",
        sig3(diff.abs()), p_value(p_tau), p_value(p_r), pairs.len()
    );
    let numbers = json!({"p_kendall_tau": p_tau, "p_pearson": p_r, "kendall_tau_difference": diff});
    (numbers, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(features: &str, seed: u64, tau: f64) -> Scored {
        Scored {
            features: features.into(),
            regressor: "rf".into(),
            train_size: 50,
            seed,
            set: String::new(),
            rmse: 0.1,
            pearson: tau + 0.1,
            kendall_tau: tau,
            spearman: tau,
            precision_10: 0.0,
            precision_20: 0.0,
            scored: 100,
        }
    }

    #[test]
    fn the_headline_pairs_the_latent_sets_by_fit_set() {
        let mut scored = Vec::new();
        for seed in 0..10 {
            scored.push(fit("io", seed, 0.5 + seed as f64 * 0.01));
            scored.push(fit("reference", seed, 0.45 + seed as f64 * 0.001));
            scored.push(fit("encoding", seed, 0.3));
        }
        let mut s = json!({"units": {}});
        let latents = ["io".to_string(), "reference".to_string()];
        let sets = ["io", "reference", "encoding"].map(String::from);
        add(&mut s, &scored, "rf", &[50], &latents, &sets);
        let h = Headline::of_summary(&s).unwrap();
        assert_eq!(h.rows.len(), 3);
        assert_eq!(h.rows[0][..2], ["50".to_string(), "io".to_string()]);
        // io is ahead on every one of the 10 paired fit sets: exact p = 2 / 2^10.
        let p = s["compare"]["rf"]["fit_50"]["io_vs_reference"]["p_kendall_tau"]
            .as_f64()
            .unwrap();
        assert!((p - 2.0 / 1024.0).abs() < 1e-12, "{p}");
        assert!(
            h.notes[0].contains("higher for io") && h.notes[0].contains("paired over 10 fit sets")
        );
        assert_eq!(
            s[KEY_METRICS][3],
            "compare.rf.fit_50.io_vs_reference.p_kendall_tau"
        );
    }
}
