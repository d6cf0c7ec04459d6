//! Summary numbers of stage results, for `nasflow metrics`.
//!
//! The convention: a stage whose output has a top-level `summary.json` (a JSON object, nested
//! objects allowed) reports those numbers. They are flattened to dotted names
//! (`latent.rf.250.rmse`); strings, booleans and arrays are left out. Columns (pipelines or
//! `--set` variants) are joined by stage and name, and each column after the first gets a
//! difference column against the first.
pub mod aggregate;

use std::collections::BTreeMap;

use serde_json::Value;

/// One column: a label and, per stage, its numbers (`None`: the stage has no current result).
#[derive(Clone, Debug, Default)]
pub struct Column {
    pub label: String,
    pub stages: BTreeMap<String, Option<BTreeMap<String, f64>>>,
}

/// Flattens the numbers of a JSON value to dotted names.
pub fn flatten(v: &Value) -> BTreeMap<String, f64> {
    fn go(prefix: &str, v: &Value, out: &mut BTreeMap<String, f64>) {
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.insert(prefix.to_string(), x);
                }
            }
            Value::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    go(&name, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    go("", v, &mut out);
    out
}

pub(crate) fn fmt(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1e5 || x.abs() < 1e-3 {
        format!("{x:.4e}")
    } else {
        format!("{x:.6}")
    }
}

fn fmt_diff(x: f64) -> String {
    if x == 0.0 {
        "=".into()
    } else if x > 0.0 {
        format!("+{}", fmt(x))
    } else {
        fmt(x)
    }
}

/// Renders the columns as an aligned text table, stages in the order given.
pub fn render(order: &[String], cols: &[Column]) -> String {
    let mut header = vec!["stage".to_string(), "metric".to_string()];
    for (k, c) in cols.iter().enumerate() {
        header.push(c.label.clone());
        if k > 0 {
            header.push(format!("diff ({})", k + 1));
        }
    }
    let mut rows: Vec<Vec<String>> = vec![header];
    for stage in order {
        let mut names: Vec<&String> = cols
            .iter()
            .filter_map(|c| c.stages.get(stage).and_then(Option::as_ref))
            .flat_map(|m| m.keys())
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            let mut row = vec![stage.clone(), "(no summary)".into()];
            for (k, c) in cols.iter().enumerate() {
                row.push(match c.stages.get(stage) {
                    Some(Some(_)) => "-".into(),
                    _ => "not run".into(),
                });
                if k > 0 {
                    row.push(String::new());
                }
            }
            rows.push(row);
            continue;
        }
        for name in names {
            let mut row = vec![stage.clone(), name.clone()];
            let get =
                |c: &Column| -> Option<f64> { c.stages.get(stage)?.as_ref()?.get(name).copied() };
            let first = cols.first().and_then(get);
            for (k, c) in cols.iter().enumerate() {
                let v = get(c);
                let not_run = matches!(c.stages.get(stage), None | Some(None));
                row.push(
                    v.map(fmt)
                        .unwrap_or_else(|| if not_run { "not run" } else { "-" }.into()),
                );
                if k > 0 {
                    row.push(match (first, v) {
                        (Some(a), Some(b)) => fmt_diff(b - a),
                        _ => String::new(),
                    });
                }
            }
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (cell, w))| {
                if j < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_numbers_only() {
        let f = flatten(&json!({"a": 1, "b": {"c": 0.5, "d": "x", "e": [1, 2]}, "n": null}));
        assert_eq!(f.len(), 2);
        assert_eq!(f["a"], 1.0);
        assert_eq!(f["b.c"], 0.5);
    }

    #[test]
    fn side_by_side_with_differences() {
        let col = |label: &str, v: f64| Column {
            label: label.into(),
            stages: [
                ("s".to_string(), Some(flatten(&json!({"rmse": v, "n": 10})))),
                ("t".to_string(), None),
            ]
            .into_iter()
            .collect(),
        };
        let text = render(
            &["s".into(), "t".into()],
            &[col("base", 0.25), col("other", 0.2)],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("base") && lines[0].contains("diff (2)"));
        let n = lines.iter().find(|l| l.contains(" n ")).unwrap();
        assert!(n.trim_end().ends_with('='), "{n}");
        let r = lines.iter().find(|l| l.contains("rmse")).unwrap();
        assert!(
            r.contains("0.250000") && r.contains("0.200000") && r.contains("-0.050000"),
            "{r}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("t ") && l.contains("not run")));
    }
}
