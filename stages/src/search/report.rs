//! Summaries and regret charts of search traces (several methods, many seeds each).
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::table::Searchable;
use super::Trace;
use crate::report::{mean_ci95, write_chart, Chart, Series};
use nasflow_contract::StageError;

/// The regret of a trace at simulated time `t`: that of its last query finished by `t`.
pub fn regret_at(cost: &[f64], regret: &[Option<f64>], t: f64) -> Option<f64> {
    let k = cost.partition_point(|&c| c <= t);
    (k > 0).then(|| regret[k - 1]).flatten()
}

/// Mean and 95% band over traces of one regret on a log-spaced time grid up to `budget`. The
/// grid starts once every trace has finished its first query, so that each point averages over
/// all traces: a mean of non-increasing curves never increases (averaging only over the traces
/// that had queried made the mean rise at first, when slower seeds joined it).
pub fn regret_curve(
    traces: &[&Trace],
    budget: f64,
    pick: impl Fn(&Trace) -> Vec<Option<f64>>,
) -> Vec<(f64, f64, f64)> {
    let picked: Vec<Vec<Option<f64>>> = traces.iter().map(|t| pick(t)).collect();
    // The first time at which each trace has a regret.
    let starts = traces.iter().zip(&picked).map(|(t, r)| {
        t.cost
            .iter()
            .zip(r)
            .find(|(_, r)| r.is_some())
            .map(|(c, _)| *c)
    });
    let first = starts.flatten().fold(f64::NEG_INFINITY, f64::max);
    if !first.is_finite() || first <= 0.0 {
        return Vec::new();
    }
    let end = budget.max(first * 1.0001);
    let points = 60;
    (0..=points)
        .filter_map(|k| {
            let t = first * (end / first).powf(k as f64 / points as f64);
            let vals: Vec<f64> = traces
                .iter()
                .zip(&picked)
                .filter_map(|(tr, r)| regret_at(&tr.cost, r, t))
                .collect();
            (!vals.is_empty()).then(|| {
                let (m, h) = mean_ci95(&vals);
                (t, m, h)
            })
        })
        .collect()
}

/// Mean and 95% band over traces of one regret after each number of queries (1 to the most any
/// trace made); a trace that stopped earlier keeps its last regret.
pub fn regret_by_queries(
    traces: &[&Trace],
    pick: impl Fn(&Trace) -> Vec<Option<f64>>,
) -> Vec<(f64, f64, f64)> {
    // Each trace's regret after each of its queries, the last known one carried forward.
    let carried: Vec<Vec<Option<f64>>> = traces
        .iter()
        .map(|t| {
            let mut last = None;
            pick(t)
                .into_iter()
                .map(|r| {
                    last = r.or(last);
                    last
                })
                .collect()
        })
        .collect();
    let most = carried.iter().map(Vec::len).max().unwrap_or(0);
    (1..=most)
        .filter_map(|q| {
            let vals: Vec<f64> = carried
                .iter()
                .filter_map(|r| r.get(q - 1).or(r.last()).copied().flatten())
                .collect();
            (vals.len() == carried.len()).then(|| {
                let (m, h) = mean_ci95(&vals);
                (q as f64, m, h)
            })
        })
        .collect()
}

/// Summary numbers per method: final regrets (mean and 95% half-width), final accuracies, queries.
pub fn summarize(traces: &[Trace], table: &Searchable, budget: f64) -> Value {
    let mut by_method: BTreeMap<&str, Vec<&Trace>> = BTreeMap::new();
    for t in traces {
        by_method.entry(t.method.as_str()).or_default().push(t);
    }
    let (best_valid, best_test) = table.best();
    let mut out = Map::new();
    out.insert(
        "table".into(),
        json!({"cells": table.len(), "best_valid": best_valid, "best_test": best_test,
               "without_feature": table.without_feature, "without_figures": table.without_figures}),
    );
    out.insert("budget".into(), json!(budget));
    out.insert(
        "units".into(),
        json!({"budget": "simulated seconds", "best_valid": "accuracy", "best_test": "accuracy",
               "cells": "cells", "without_feature": "cells", "without_figures": "cells",
               "seeds": "runs", "queries": "queries (mean over seeds)",
               "final_regret_valid": "accuracy (mean over seeds)",
               "final_regret_valid_ci95": "accuracy (95% half-width)",
               "final_regret_test": "accuracy (mean over seeds)",
               "final_regret_test_ci95": "accuracy (95% half-width)",
               "final_best_valid": "accuracy (mean over seeds)",
               "final_test": "accuracy (mean over seeds)"}),
    );
    for (method, ts) in &by_method {
        let last = |f: &dyn Fn(&Trace) -> Option<f64>| -> Vec<f64> {
            ts.iter().filter_map(|t| f(t)).collect()
        };
        let stat = |v: Vec<f64>| {
            let (m, h) = mean_ci95(&v);
            (m, h)
        };
        let mut m = Map::new();
        m.insert("seeds".into(), json!(ts.len()));
        let (q, _) = stat(ts.iter().map(|t| t.queries.len() as f64).collect());
        m.insert("queries".into(), json!(q));
        let (rv, rvh) = stat(last(&|t| t.regret_valid.last().copied()));
        m.insert("final_regret_valid".into(), json!(rv));
        m.insert("final_regret_valid_ci95".into(), json!(rvh));
        m.insert(
            "final_best_valid".into(),
            json!(stat(last(&|t| t.best_valid.last().copied())).0),
        );
        let rt = last(&|t| t.regret_test.last().copied().flatten());
        if !rt.is_empty() {
            let (a, b) = stat(rt);
            m.insert("final_regret_test".into(), json!(a));
            m.insert("final_regret_test_ci95".into(), json!(b));
            m.insert(
                "final_test".into(),
                json!(stat(last(&|t| t.best_test.last().copied().flatten())).0),
            );
        }
        out.insert(method.to_string(), Value::Object(m));
    }
    Value::Object(out)
}

/// Regret charts, mean and 95% band over seeds, one line per method: validation regret against
/// simulated training seconds (`regret-valid`) and against queries (`regret-valid-queries`), and
/// the same for test regret when the table has test accuracies.
pub fn write_charts(out: &Path, traces: &[Trace], budget: f64) -> Result<Vec<String>, StageError> {
    let mut by_method: BTreeMap<&str, Vec<&Trace>> = BTreeMap::new();
    for t in traces {
        by_method.entry(t.method.as_str()).or_default().push(t);
    }
    let mut written = Vec::new();
    type Pick = fn(&Trace) -> Vec<Option<f64>>;
    let valid: Pick = |t| t.regret_valid.iter().map(|&r| Some(r)).collect();
    let test: Pick = |t| t.regret_test.clone();
    for (name, what, pick) in [
        ("regret-valid", "validation", valid),
        ("regret-test", "test", test),
    ] {
        let curves = |by_time: bool| -> Vec<Series> {
            let curve = |ts: &[&Trace]| {
                if by_time {
                    regret_curve(ts, budget, pick)
                } else {
                    regret_by_queries(ts, pick)
                }
            };
            by_method
                .iter()
                .map(|(method, ts)| (format!("{method} ({} seeds)", ts.len()), curve(ts)))
                .filter(|(_, c)| !c.is_empty())
                .map(|(name, c)| Series {
                    name,
                    line: c.iter().map(|&(t, m, _)| (t, m)).collect(),
                    band: c
                        .iter()
                        .map(|&(t, m, h)| (t, (m - h).max(0.0), m + h))
                        .collect(),
                    ..Series::default()
                })
                .collect()
        };
        let (by_time, by_queries) = (curves(true), curves(false));
        if by_time.is_empty() {
            continue;
        }
        let chart = |x_label: &str, log_x: bool, series| Chart {
            title: format!("{what} regret (mean over seeds, 95% band)"),
            x_label: x_label.into(),
            y_label: format!("best {what} accuracy in table - best found"),
            log_x,
            log_y: true,
            series,
            ..Chart::default()
        };
        let time = chart("simulated training seconds", true, by_time);
        written.extend(write_chart(out, name, &time)?);
        let queries = chart("queries", false, by_queries);
        written.extend(write_chart(out, &format!("{name}-queries"), &queries)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(method: &str, cost: Vec<f64>, regret: Vec<f64>) -> Trace {
        Trace {
            method: method.into(),
            queries: vec![String::new(); cost.len()],
            best_valid: regret.iter().map(|r| 0.95 - r).collect(),
            best_test: vec![None; cost.len()],
            regret_test: vec![None; cost.len()],
            cost,
            regret_valid: regret,
            ..Trace::default()
        }
    }

    #[test]
    fn regret_at_takes_the_last_finished_query() {
        let c = [10.0, 20.0, 30.0];
        let r = [Some(0.3), Some(0.2), Some(0.1)];
        assert_eq!(regret_at(&c, &r, 5.0), None);
        assert_eq!(regret_at(&c, &r, 10.0), Some(0.3));
        assert_eq!(regret_at(&c, &r, 29.9), Some(0.2));
        assert_eq!(regret_at(&c, &r, 1e9), Some(0.1));
    }

    #[test]
    fn summary_and_curves_over_seeds() {
        let ts = vec![
            trace("reinforce", vec![10.0, 100.0], vec![0.1, 0.0]),
            trace("reinforce", vec![10.0, 100.0], vec![0.2, 0.02]),
            trace("random", vec![50.0, 100.0], vec![0.3, 0.1]),
        ];
        let mut table = crate::search::tests::table(3, 2);
        table.test = vec![None; 3];
        let s = summarize(&ts, &table, 100.0);
        assert!((s["reinforce"]["final_regret_valid"].as_f64().unwrap() - 0.01).abs() < 1e-12);
        assert_eq!(s["random"]["seeds"], 1);
        assert!(s["reinforce"].get("final_regret_test").is_none());
        let refs: Vec<&Trace> = ts.iter().take(2).collect();
        let curve = regret_curve(&refs, 100.0, |t| {
            t.regret_valid.iter().map(|&r| Some(r)).collect()
        });
        assert_eq!(curve.first().unwrap().0, 10.0);
        assert!((curve.first().unwrap().1 - 0.15).abs() < 1e-12);
        assert!((curve.last().unwrap().1 - 0.01).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        let written = write_charts(dir.path(), &ts, 100.0).unwrap();
        assert_eq!(
            written,
            [
                "regret-valid.png",
                "regret-valid.svg",
                "charts/regret-valid.json",
                "regret-valid-queries.png",
                "regret-valid-queries.svg",
                "charts/regret-valid-queries.json"
            ],
            "no test accuracies, no test chart"
        );
    }

    #[test]
    fn a_mean_regret_curve_never_increases() {
        // Seeds that query first at different times, with regrets falling at different rates:
        // averaging only over the seeds that had queried made the mean rise when a slow seed
        // (with a high regret) joined.
        let ts = [
            trace("r", vec![1.0, 2.0, 50.0], vec![0.05, 0.04, 0.0]),
            trace("r", vec![10.0, 20.0], vec![0.3, 0.1]),
            trace("r", vec![30.0, 60.0, 90.0, 95.0], vec![0.5, 0.2, 0.2, 0.01]),
        ];
        let refs: Vec<&Trace> = ts.iter().collect();
        let pick = |t: &Trace| t.regret_valid.iter().map(|&r| Some(r)).collect();
        let curve = regret_curve(&refs, 100.0, pick);
        assert_eq!(curve[0].0, 30.0, "starts once every seed has queried");
        assert!(
            curve.windows(2).all(|w| w[1].1 <= w[0].1 + 1e-15),
            "{curve:?}"
        );
        assert!((curve[0].1 - (0.04 + 0.1 + 0.5) / 3.0).abs() < 1e-12);
        let by_q = regret_by_queries(&refs, pick);
        assert_eq!(by_q.len(), 4);
        assert!(
            by_q.windows(2).all(|w| w[1].1 <= w[0].1 + 1e-15),
            "{by_q:?}"
        );
        assert!(
            (by_q[3].1 - (0.0 + 0.1 + 0.01) / 3.0).abs() < 1e-12,
            "last regrets carried"
        );
    }
}
