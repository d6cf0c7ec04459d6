//! reinforce's headline: each method's final validation regret (mean and 95% half-width over
//! seeds) and its p-value against random search, and, where REINFORCE and BO ran on several
//! latent feature sets (`reinforce-io`, `reinforce-reference`), a Mann-Whitney U test between
//! each feature set and the first.
use serde_json::{json, Value};

use super::report::by_method;
use super::Trace;
use crate::report::mean_ci95;
use crate::stats::mann_whitney_p;
use nasflow_contract::headline::{mean_pm, p_value, sig3, Headline, HEADLINE, KEY_METRICS};

/// The methods that search the latent space (run once per feature set).
pub const LATENT_METHODS: [&str; 2] = ["reinforce", "bo"];

/// The trace method name of a latent method on a labelled feature set ("" keeps the name).
pub fn labelled(method: &str, label: &str) -> String {
    if label.is_empty() {
        method.to_string()
    } else {
        format!("{method}-{label}")
    }
}

fn finals(ts: &[&Trace]) -> Vec<f64> {
    ts.iter()
        .filter_map(|t| t.regret_valid.last().copied())
        .collect()
}

/// Adds `compare` (the tests between feature sets, as numbers), `headline` and `key_metrics`
/// to a search summary; `labels` are the feature sets' labels, in the `features` order.
pub fn add(summary: &mut Value, traces: &[Trace], labels: &[String]) {
    let methods = by_method(traces);
    let of = |name: &str| {
        methods
            .iter()
            .find(|(m, _)| *m == name)
            .map(|(_, ts)| ts.as_slice())
    };
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for (method, ts) in &methods {
        let s = &summary[*method];
        let (features, name) = match method.split_once('-') {
            Some((m, f)) if LATENT_METHODS.contains(&m) && labels.iter().any(|l| l == f) => (f, m),
            _ if LATENT_METHODS.contains(method) => ("latent", *method),
            _ => ("cells", *method),
        };
        let p = s["p_vs_random"].as_f64().map_or("".into(), p_value);
        rows.push(vec![
            name.to_string(),
            features.to_string(),
            mean_pm(
                s["final_regret_valid"].as_f64().unwrap_or(f64::NAN),
                s["final_regret_valid_ci95"].as_f64().unwrap_or(f64::NAN),
            ),
            p,
            ts.len().to_string(),
        ]);
        keys.push(format!("{method}.final_regret_valid"));
    }
    let mut notes = Vec::new();
    for m in LATENT_METHODS {
        let Some((first, others)) = labels.split_first() else {
            break;
        };
        for other in others {
            let (Some(a), Some(b)) = (of(&labelled(m, first)), of(&labelled(m, other))) else {
                continue;
            };
            let (a, b) = (finals(a), finals(b));
            let p = mann_whitney_p(&a, &b);
            let diff = mean_ci95(&b).0 - mean_ci95(&a).0;
            let name = format!("{first}_vs_{other}");
            summary["compare"][m][&name] =
                json!({"p_final_regret_valid": p, "final_regret_valid_difference": diff});
            keys.push(format!("compare.{m}.{name}.p_final_regret_valid"));
            let lower = if diff > 0.0 { first } else { other };
            notes.push(format!(
                "{m}: {first} vs {other}: final regret {} lower with {lower}, Mann-Whitney U p = {} (two-sided; {} and {} seeds)",
                sig3(diff.abs()), p_value(p), a.len(), b.len()
            ));
        }
    }
    if !notes.is_empty() {
        summary["units"]["p_final_regret_valid"] =
            json!("p-value (Mann-Whitney U, two-sided, over seeds)");
        summary["units"]["final_regret_valid_difference"] =
            json!("accuracy (second minus first, mean over seeds)");
    }
    let h = Headline {
        title: "reinforce: final validation regret after the budget (mean ± 95% half-width over seeds; lower is better)".into(),
        columns: ["method", "features", "final regret", "p vs random", "seeds"].map(String::from).to_vec(),
        rows,
        notes,
    };
    summary[HEADLINE] = json!(h);
    summary[KEY_METRICS] = json!(keys);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::methods::Settings;

    fn trace(method: &str, seed: u64, regret: f64) -> Trace {
        Trace {
            method: method.into(),
            seed,
            queries: vec![String::new()],
            cost: vec![10.0],
            best_valid: vec![0.95 - regret],
            best_test: vec![None],
            regret_valid: vec![regret],
            regret_test: vec![None],
            ..Trace::default()
        }
    }

    #[test]
    fn the_headline_rows_each_method_and_tests_the_feature_sets() {
        let mut ts = Vec::new();
        for seed in 0..8 {
            ts.push(trace("reinforce-io", seed, 0.001 + seed as f64 * 1e-5));
            ts.push(trace(
                "reinforce-reference",
                seed,
                0.004 + seed as f64 * 1e-5,
            ));
            ts.push(trace("random", seed, 0.005 + seed as f64 * 1e-5));
        }
        let table = crate::search::tests::table(3, 2);
        let settings = Settings {
            budget: 10.0,
            ..Settings::default()
        };
        let mut s = crate::search::report::summarize(&ts, &table, &settings);
        add(&mut s, &ts, &["io".into(), "reference".into()]);
        let h = nasflow_contract::Headline::of_summary(&s).unwrap();
        let rows: Vec<(&str, &str)> = h
            .rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("reinforce", "io"),
                ("reinforce", "reference"),
                ("random", "cells")
            ]
        );
        // Every io run beats every reference run: the smallest two-sided p of 8 against 8.
        let p = s["compare"]["reinforce"]["io_vs_reference"]["p_final_regret_valid"]
            .as_f64()
            .unwrap();
        assert!(p < 0.001, "{p}");
        assert!(
            h.notes[0]
                .starts_with("reinforce: io vs reference: final regret 0.00300 lower with io"),
            "{:?}",
            h.notes
        );
        assert_eq!(s[KEY_METRICS][0], "reinforce-io.final_regret_valid");
        assert_eq!(labelled("bo", ""), "bo");
        // A third feature set: each pair with the first is kept.
        for seed in 0..8 {
            ts.push(trace(
                "reinforce-arch2vec",
                seed,
                0.003 + seed as f64 * 1e-5,
            ));
        }
        let labels = ["io", "reference", "arch2vec"].map(String::from);
        let mut s = crate::search::report::summarize(&ts, &table, &settings);
        add(&mut s, &ts, &labels);
        let pairs: Vec<&String> = s["compare"]["reinforce"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(pairs, ["io_vs_arch2vec", "io_vs_reference"]);
    }
}
