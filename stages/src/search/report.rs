//! Summaries and regret charts of search traces (several methods, many seeds each).
use std::path::Path;

use serde_json::{json, Map, Value};

use super::methods::Settings;
use super::table::Searchable;
use super::Trace;
use crate::report::{mean_ci95, write_chart, Chart, Series};
use crate::stats::{mann_whitney_p, mann_whitney_p_greater};
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

/// The regret by query index as arch2vec's `plot_scripts` average it: per query index, the
/// mean (and 95% band) over traces of the regret and the mean of the cumulative cost, up to the
/// shortest trace and only while the mean cost is at most `limit` (arch2vec: 1e6 s).
/// `(query, mean regret, half-width, mean seconds)`.
pub fn regret_by_queries(
    traces: &[&Trace],
    limit: f64,
    pick: impl Fn(&Trace) -> Vec<Option<f64>>,
) -> Vec<(f64, f64, f64, f64)> {
    let picked: Vec<Vec<Option<f64>>> = traces.iter().map(|t| pick(t)).collect();
    let shortest = traces.iter().map(|t| t.cost.len()).min().unwrap_or(0);
    (0..shortest)
        .filter_map(|q| {
            let secs = traces.iter().map(|t| t.cost[q]).sum::<f64>() / traces.len() as f64;
            let vals: Vec<f64> = picked.iter().filter_map(|r| r[q]).collect();
            (secs <= limit && vals.len() == traces.len()).then(|| {
                let (m, h) = mean_ci95(&vals);
                ((q + 1) as f64, m, h, secs)
            })
        })
        .collect()
}

/// arch2vec's truncation of the by-queries view: 1e6 simulated seconds, or the budget if less.
pub fn queries_limit(budget: f64) -> f64 {
    budget.min(1e6)
}

/// The number of cells of NB101, and its best mean validation and test accuracies (arch2vec's
/// `BEST_VALID_ACC`, `BEST_TEST_ACC`): regrets against them are reported when a table holds the
/// whole space.
pub const NB101_CELLS: usize = 423_624;
pub const NB101_BEST_VALID: f64 = 0.9505542318026224;
pub const NB101_BEST_TEST: f64 = 0.943175752957662;

/// Traces by method, in the order of their first trace.
pub(crate) fn by_method(traces: &[Trace]) -> Vec<(&str, Vec<&Trace>)> {
    let mut out: Vec<(&str, Vec<&Trace>)> = Vec::new();
    for t in traces {
        match out.iter_mut().find(|(m, _)| *m == t.method) {
            Some((_, v)) => v.push(t),
            None => out.push((t.method.as_str(), vec![t])),
        }
    }
    out
}

/// The summary's units, by name.
fn units() -> Value {
    json!({"budget": "simulated seconds", "best_valid": "accuracy", "best_test": "accuracy",
           "cells": "cells", "without_feature": "cells", "without_figures": "cells",
           "seeds": "runs", "queries": "queries (mean over seeds)",
           "final_regret_valid": "accuracy (mean over seeds)",
           "final_regret_valid_ci95": "accuracy (95% half-width)",
           "final_regret_test": "accuracy (mean over seeds)",
           "final_regret_test_ci95": "accuracy (95% half-width)",
           "final_best_valid": "accuracy (mean over seeds)",
           "final_test": "accuracy (mean over seeds)",
           "p_vs_random": "p-value (two-sided Mann-Whitney U, final validation regret)",
           "p_worse_than_random": "p-value (one-sided Mann-Whitney U: final validation regret greater than random search's)",
           "p_vs_random_test": "p-value (two-sided Mann-Whitney U, final test regret)",
           "outside_table": "children or neighbours per run (mean) that were valid cells not in the table",
           "failed_mutations": "mutations per run (mean) that found no child in the table",
           "stopped_early": "runs that ended before their budget (no parent left)",
           "final_regret_valid_nb101": "accuracy (mean; against NB101's best mean validation accuracy)",
           "final_regret_test_nb101": "accuracy (mean; against NB101's best mean test accuracy)",
           "by_queries_regret_valid": "accuracy (mean at the last query index of the by-queries view)",
           "by_queries_regret_valid_ci95": "accuracy (95% half-width)",
           "by_queries_index": "queries (the by-queries view's last index)",
           "by_queries_seconds": "simulated seconds (mean at that index)"})
}

/// How the runs were made, for the summary: the protocol, each method's reference and quirk
/// settings, and whether the table covers the space.
pub fn settings_of(s: &Settings, table: &Searchable) -> Value {
    json!({
        "protocol": "arch2vec's search protocol: every method on the same seeds, table and budget of simulated training seconds; regret against the table's best validation accuracy",
        "covers_space": table.len() == NB101_CELLS,
        "bo_quirks": s.bo.quirks.name(),
        "evolution": format!("NASLib's regularized evolution, mutation {}, population {}, tournament {}",
                             s.evolution.mutation.name(), s.evolution.population, s.evolution.sample),
        "local_search": s.local.name(),
    })
}

/// The warnings a reader needs: on a table that does not cover the space, evolution's and local
/// search's figures are not comparable with published ones; runs that stopped early.
fn warnings_of(methods: &[(&str, Vec<&Trace>)], table: &Searchable) -> Vec<String> {
    let mut out = Vec::new();
    let partial: Vec<&str> = methods
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| *m == "evolution" || *m == "local_search")
        .collect();
    if table.len() != NB101_CELLS && !partial.is_empty() {
        out.push(format!(
            "the table holds {} of NB101's {NB101_CELLS} cells: the children and neighbours of {} that fall outside it are skipped (`outside_table`), so their results are not comparable with published numbers; REINFORCE, BO and random search pick only table cells and are not affected",
            table.len(),
            partial.join(" and ")
        ));
    }
    for (m, ts) in methods {
        let stopped: Vec<&&Trace> = ts.iter().filter(|t| t.stopped.is_some()).collect();
        if let Some(t) = stopped.first() {
            out.push(format!(
                "{m}: {} of {} runs stopped before the budget: {}",
                stopped.len(),
                ts.len(),
                t.stopped.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

/// Summary numbers per method: final regrets (mean and 95% half-width) and p-values against
/// random search, final accuracies, queries, cells outside the table, the by-queries view's end
/// and, on a table of the whole NB101 space, regrets against NB101's published best; the
/// settings ([`settings_of`]) and warnings.
pub fn summarize(traces: &[Trace], table: &Searchable, s: &Settings) -> Value {
    let budget = s.budget;
    let methods = by_method(traces);
    let (best_valid, best_test) = table.best();
    let mut out = Map::new();
    out.insert(
        "table".into(),
        json!({"cells": table.len(), "best_valid": best_valid, "best_test": best_test,
               "without_feature": table.without_feature, "without_figures": table.without_figures}),
    );
    out.insert("budget".into(), json!(budget));
    out.insert("settings".into(), settings_of(s, table));
    out.insert("units".into(), units());
    let warnings = warnings_of(&methods, table);
    if !warnings.is_empty() {
        out.insert("warnings".into(), json!(warnings));
    }
    let finals = |ts: &[&Trace], f: &dyn Fn(&Trace) -> Option<f64>| -> Vec<f64> {
        ts.iter().filter_map(|t| f(t)).collect()
    };
    let valid_regret = |t: &Trace| t.regret_valid.last().copied();
    let test_regret = |t: &Trace| t.regret_test.last().copied().flatten();
    let random = methods
        .iter()
        .find(|(m, _)| *m == "random")
        .map(|(_, ts)| ts);
    let complete = table.len() == NB101_CELLS;
    for (method, ts) in &methods {
        let mut m = Map::new();
        m.insert("seeds".into(), json!(ts.len()));
        let q: Vec<f64> = ts.iter().map(|t| t.queries.len() as f64).collect();
        m.insert("queries".into(), json!(mean_ci95(&q).0));
        let rv = finals(ts, &valid_regret);
        let (a, h) = mean_ci95(&rv);
        m.insert("final_regret_valid".into(), json!(a));
        m.insert("final_regret_valid_ci95".into(), json!(h));
        let best = finals(ts, &|t| t.best_valid.last().copied());
        m.insert("final_best_valid".into(), json!(mean_ci95(&best).0));
        let rt = finals(ts, &test_regret);
        let tests = finals(ts, &|t| t.best_test.last().copied().flatten());
        if !rt.is_empty() {
            let (a, b) = mean_ci95(&rt);
            m.insert("final_regret_test".into(), json!(a));
            m.insert("final_regret_test_ci95".into(), json!(b));
            m.insert("final_test".into(), json!(mean_ci95(&tests).0));
        }
        if let Some(r) = random.filter(|_| *method != "random") {
            let random_rv = finals(r, &valid_regret);
            m.insert("p_vs_random".into(), json!(mann_whitney_p(&rv, &random_rv)));
            let worse = mann_whitney_p_greater(&rv, &random_rv);
            m.insert("p_worse_than_random".into(), json!(worse));
            let rr = finals(r, &test_regret);
            if !rt.is_empty() && !rr.is_empty() {
                m.insert("p_vs_random_test".into(), json!(mann_whitney_p(&rt, &rr)));
            }
        }
        if *method == "evolution" || *method == "local_search" {
            let mean_of = |f: &dyn Fn(&Trace) -> usize| {
                let v: Vec<f64> = ts.iter().map(|t| f(t) as f64).collect();
                json!(mean_ci95(&v).0)
            };
            m.insert("outside_table".into(), mean_of(&|t| t.outside_table));
            if *method == "evolution" {
                m.insert("failed_mutations".into(), mean_of(&|t| t.failed_mutations));
                let stopped = ts.iter().filter(|t| t.stopped.is_some()).count();
                m.insert("stopped_early".into(), json!(stopped));
            }
        }
        if complete {
            let nb = |v: &[f64], best: f64| json!(best - mean_ci95(v).0);
            m.insert(
                "final_regret_valid_nb101".into(),
                nb(&best, NB101_BEST_VALID),
            );
            if !tests.is_empty() {
                m.insert(
                    "final_regret_test_nb101".into(),
                    nb(&tests, NB101_BEST_TEST),
                );
            }
        }
        let view = regret_by_queries(ts, queries_limit(budget), valid_pick);
        if let Some(&(q, r, h, secs)) = view.last() {
            m.insert("by_queries_index".into(), json!(q));
            m.insert("by_queries_regret_valid".into(), json!(r));
            m.insert("by_queries_regret_valid_ci95".into(), json!(h));
            m.insert("by_queries_seconds".into(), json!(secs));
        }
        out.insert(method.to_string(), Value::Object(m));
    }
    Value::Object(out)
}

fn valid_pick(t: &Trace) -> Vec<Option<f64>> {
    t.regret_valid.iter().map(|&r| Some(r)).collect()
}

/// Regret charts, mean and 95% band over seeds, one line per method: validation regret against
/// simulated training seconds (`regret-valid`) and by query index as arch2vec plots it
/// (`regret-valid-queries`: up to the shortest run, mean time <= 1e6 s), and the same for test
/// regret when the table has test accuracies; on a table of the whole NB101 space, also against
/// NB101's published best (`regret-valid-nb101`, `regret-test-nb101`).
pub fn write_charts(
    out: &Path,
    traces: &[Trace],
    table: &Searchable,
    budget: f64,
) -> Result<Vec<String>, StageError> {
    let methods = by_method(traces);
    let mut written = Vec::new();
    let (table_valid, table_test) = table.best();
    let shift = |best: f64, of: f64| best - of;
    type Pick = Box<dyn Fn(&Trace) -> Vec<Option<f64>>>;
    let mut views: Vec<(&str, &str, &str, Pick)> = vec![
        (
            "regret-valid",
            "validation",
            "in table",
            Box::new(valid_pick),
        ),
        (
            "regret-test",
            "test",
            "in table",
            Box::new(|t: &Trace| t.regret_test.clone()),
        ),
    ];
    if table.len() == NB101_CELLS {
        let dv = shift(NB101_BEST_VALID, table_valid);
        views.push((
            "regret-valid-nb101",
            "validation",
            "of NB101 (published)",
            Box::new(move |t: &Trace| t.regret_valid.iter().map(|&r| Some(r + dv)).collect()),
        ));
        if let Some(tt) = table_test {
            let dt = shift(NB101_BEST_TEST, tt);
            views.push((
                "regret-test-nb101",
                "test",
                "of NB101 (published)",
                Box::new(move |t: &Trace| {
                    t.regret_test.iter().map(|r| r.map(|r| r + dt)).collect()
                }),
            ));
        }
    }
    let limit = queries_limit(budget);
    for (name, what, against, pick) in &views {
        let series = |by_time: bool| -> Vec<Series> {
            methods
                .iter()
                .map(|(method, ts)| {
                    let c: Vec<(f64, f64, f64)> = if by_time {
                        regret_curve(ts, budget, pick)
                    } else {
                        regret_by_queries(ts, limit, pick)
                            .into_iter()
                            .map(|(q, m, h, _)| (q, m, h))
                            .collect()
                    };
                    (format!("{method} ({} seeds)", ts.len()), c)
                })
                .filter(|(_, c)| !c.is_empty())
                .map(|(name, c)| Series {
                    dashed: name.starts_with("random"),
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
        let (by_time, by_queries) = (series(true), series(false));
        if by_time.is_empty() {
            continue;
        }
        let chart = |x_label: String, log_x: bool, series| Chart {
            title: format!("{what} regret (mean over seeds, 95% band)"),
            x_label,
            y_label: format!("best {what} accuracy {against} - best found"),
            log_x,
            log_y: true,
            series,
            ..Chart::default()
        };
        let time = chart("simulated training seconds".into(), true, by_time);
        written.extend(write_chart(out, name, &time)?);
        let x = format!("queries (up to the shortest run and mean time <= {limit:.0e} s)");
        written.extend(write_chart(
            out,
            &format!("{name}-queries"),
            &chart(x, false, by_queries),
        )?);
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
    fn a_partial_table_warns_that_evolution_is_not_comparable_and_names_stopped_runs() {
        let mut ev = trace("evolution", vec![10.0, 20.0], vec![0.1, 0.05]);
        ev.outside_table = 40;
        ev.failed_mutations = 3;
        ev.stopped = Some("no member of the population yields a child".into());
        let ts = vec![ev, trace("random", vec![10.0, 100.0], vec![0.3, 0.1])];
        let table = crate::search::tests::table(3, 2);
        let s = summarize(&ts, &table, &Settings::default());
        let w: Vec<&str> = s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(
            w[0].contains(
                "holds 3 of NB101's 423624 cells: the children and neighbours of evolution that"
            ),
            "{w:?}"
        );
        assert!(w[1].starts_with("evolution: 1 of 1 runs stopped"), "{w:?}");
        assert_eq!(s["evolution"]["outside_table"], 40.0);
        assert_eq!(s["evolution"]["failed_mutations"], 3.0);
        assert_eq!(s["evolution"]["stopped_early"], 1);
        assert!(s["random"].get("outside_table").is_none());
        assert_eq!(
            s["settings"]["evolution"],
            "NASLib's regularized evolution, mutation naslib, population 30, tournament 10"
        );
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
        let settings = Settings {
            budget: 100.0,
            ..Settings::default()
        };
        let s = summarize(&ts, &table, &settings);
        assert_eq!(s["settings"]["covers_space"], false);
        assert_eq!(s["settings"]["local_search"], "naszilla");
        assert!(
            s.get("warnings").is_none(),
            "no evolution or local search: no warning"
        );
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
        let written = write_charts(dir.path(), &ts, &table, 100.0).unwrap();
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
        // arch2vec's view: up to the shortest run (2 queries), while the mean time <= the limit.
        let by_q = regret_by_queries(&refs, 1e6, pick);
        assert_eq!(by_q.len(), 2);
        assert!(
            (by_q[1].1 - (0.04 + 0.1 + 0.2) / 3.0).abs() < 1e-12,
            "{by_q:?}"
        );
        assert!((by_q[1].3 - (2.0 + 20.0 + 60.0) / 3.0).abs() < 1e-12);
        let by_q = regret_by_queries(&refs, 20.0, pick);
        assert_eq!(
            by_q.len(),
            1,
            "mean times 13.7 s and 27.3 s: the second is past 20 s"
        );
    }
}
