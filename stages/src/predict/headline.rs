//! predict's headline: per fit size and feature set, the first regressor's Kendall tau and
//! Pearson r (mean and 95% half-width over fit sets), and a Wilcoxon signed-rank test between
//! each latent feature set and the first, paired by fit set (each seed draws the same fit set
//! for every feature set).
use serde_json::{json, Map, Value};

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
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut compare = Map::new();
    let mut keys = Vec::new();
    for &size in sizes {
        for f in sets {
            let v = fits(scored, regressor, f, size);
            if v.is_empty() {
                continue;
            }
            let tau: Vec<f64> = v.iter().map(|s| s.kendall_tau).collect();
            let r: Vec<f64> = v.iter().map(|s| s.pearson).collect();
            rows.push(vec![
                size.to_string(),
                f.clone(),
                mean_pm(&tau),
                mean_pm(&r),
                v.len().to_string(),
            ]);
            keys.push(format!("{regressor}.{f}.fit_{size}.kendall_tau"));
        }
        let Some(first) = latents.first() else {
            continue;
        };
        for other in &latents[1..] {
            let (a, b) = (
                fits(scored, regressor, first, size),
                fits(scored, regressor, other, size),
            );
            let paired: Vec<(&Scored, &Scored)> = (a.iter())
                .filter_map(|x| b.iter().find(|y| y.seed == x.seed).map(|y| (*x, *y)))
                .collect();
            let tau = |i: usize| -> Vec<f64> {
                paired
                    .iter()
                    .map(|p| {
                        if i == 0 {
                            p.0.kendall_tau
                        } else {
                            p.1.kendall_tau
                        }
                    })
                    .collect()
            };
            let r = |i: usize| -> Vec<f64> {
                paired
                    .iter()
                    .map(|p| if i == 0 { p.0.pearson } else { p.1.pearson })
                    .collect()
            };
            let p_tau = wilcoxon_p(&tau(0), &tau(1));
            let p_r = wilcoxon_p(&r(0), &r(1));
            let diff = mean_ci95(&tau(0)).0 - mean_ci95(&tau(1)).0;
            let name = format!("{first}_vs_{other}");
            compare.insert(format!("fit_{size}.{name}.p_kendall_tau"), json!(p_tau));
            compare.insert(format!("fit_{size}.{name}.p_pearson"), json!(p_r));
            compare.insert(
                format!("fit_{size}.{name}.kendall_tau_difference"),
                json!(diff),
            );
            keys.push(format!(
                "compare.{regressor}.fit_{size}.{name}.p_kendall_tau"
            ));
            let better = if diff > 0.0 { first } else { other };
            notes.push(format!(
                "fit {size}: {first} vs {other}: Kendall tau {} higher for {better}, Wilcoxon signed-rank p = {} (Pearson r: p = {}), paired over {} fit sets",
                sig3(diff.abs()), p_value(p_tau), p_value(p_r), paired.len()
            ));
        }
    }
    let mut nested = Map::new();
    for (k, v) in compare {
        let mut at = &mut nested;
        let parts: Vec<&str> = k.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = at
                .entry(part.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object");
        }
        at.insert(parts[parts.len() - 1].to_string(), v);
    }
    if !nested.is_empty() {
        summary["compare"] = json!({ regressor: nested });
    }
    let h = Headline {
        title: format!("predict: how well each feature set's {regressor} predictor ranks the scored cells (mean ± 95% half-width over fit sets)"),
        columns: ["fit", "features", "Kendall tau", "Pearson r", "fits"].map(String::from).to_vec(),
        rows,
        notes,
    };
    for (name, unit) in [
        (
            "p_kendall_tau",
            "p-value (Wilcoxon signed-rank, two-sided, paired by fit set)",
        ),
        (
            "p_pearson",
            "p-value (Wilcoxon signed-rank, two-sided, paired by fit set)",
        ),
        (
            "kendall_tau_difference",
            "Kendall tau-b (first minus second, mean over fit sets)",
        ),
    ] {
        summary["units"][name] = json!(unit);
    }
    summary[HEADLINE] = json!(h);
    summary[KEY_METRICS] = json!(keys);
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
