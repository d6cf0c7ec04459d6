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
    /// Per stage, the units its summary declares (`"units"`: metric name or its last dotted
    /// parts -> unit).
    pub units: BTreeMap<String, BTreeMap<String, String>>,
    /// Per stage, the warnings its summary carries (`"warnings"`: a list of strings).
    pub warnings: BTreeMap<String, Vec<String>>,
    /// Per stage, its headline table (the contract's `headline`), where it has one.
    pub headlines: BTreeMap<String, nasflow_contract::Headline>,
    /// Per stage, the names of its key metrics (the contract's `key_metrics`).
    pub key_metrics: BTreeMap<String, Vec<String>>,
}

/// The unit of `name` in `units`: the entry for the whole name, else for its longest dotted
/// suffix (`rf.latent.fit_250.rmse` -> `rmse`).
pub fn unit_of<'a>(units: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    let mut rest = name;
    loop {
        if let Some(u) = units.get(rest) {
            return Some(u);
        }
        rest = rest.split_once('.')?.1;
    }
}

/// The unit any column declares for a stage's metric ("" for none).
pub fn unit_in(cols: &[Column], stage: &str, name: &str) -> String {
    cols.iter()
        .find_map(|c| unit_of(c.units.get(stage)?, name))
        .unwrap_or("")
        .to_string()
}

/// Reads the `units` and `warnings` of a summary (strings only; anything else is ignored).
pub fn units_and_warnings(v: &Value) -> (BTreeMap<String, String>, Vec<String>) {
    let units = (v["units"].as_object().into_iter().flatten())
        .filter_map(|(k, u)| Some((k.clone(), u.as_str()?.to_string())))
        .collect();
    let warnings = (v["warnings"].as_array().into_iter().flatten())
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    (units, warnings)
}

/// The key metric names a summary lists (strings only).
pub fn key_metrics(v: &Value) -> Vec<String> {
    (v[nasflow_contract::headline::KEY_METRICS]
        .as_array()
        .into_iter()
        .flatten())
    .filter_map(|w| w.as_str().map(str::to_string))
    .collect()
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

/// One number format: integers as integers, other numbers with 4 significant digits (in
/// scientific notation below 0.001 and from a million up).
pub(crate) fn fmt(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        "0".into()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1e6 || x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        let decimals = (3 - x.abs().log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    }
}

/// A param value as short text: strings without quotes, lists and tables as compact JSON.
pub fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A number as JSON: integers stay integers.
pub fn number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Value::from(x)
    }
}

/// Every value in long form: (stage, column label, metric, value), stages in the order given.
pub fn long(order: &[String], cols: &[Column]) -> Vec<(String, String, String, f64)> {
    let mut out = Vec::new();
    for stage in order {
        for c in cols {
            if let Some(Some(m)) = c.stages.get(stage) {
                for (name, v) in m {
                    out.push((stage.clone(), c.label.clone(), name.clone(), *v));
                }
            }
        }
    }
    out
}

/// Whether a metric's value differs between columns (or is missing from some).
pub fn changed(cols: &[Column], stage: &str, name: &str) -> bool {
    let vals: Vec<Option<f64>> = cols
        .iter()
        .map(|c| c.stages.get(stage)?.as_ref()?.get(name).copied())
        .collect();
    vals.windows(2).any(|w| w[0] != w[1])
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

/// Renders the columns as an aligned text table, stages in the order given; with `changed_only`,
/// only the metrics whose values differ between columns.
pub fn render(order: &[String], cols: &[Column], changed_only: bool, by_value: bool) -> String {
    let mut header = vec![
        "stage".to_string(),
        "metric".to_string(),
        "unit".to_string(),
    ];
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
        if by_value {
            sort_by_value(&mut names, cols, stage);
        }
        if names.is_empty() {
            let mut row = vec![stage.clone(), "(no summary)".into(), String::new()];
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
            if changed_only && !changed(cols, stage, name) {
                continue;
            }
            let mut row = vec![stage.clone(), name.clone(), unit_in(cols, stage, name)];
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
    let mut out = align(rows, 3);
    out.push_str(&warnings(order, cols));
    out
}

/// Orders metric names by the first column's value, ascending (names without one last).
pub fn sort_by_value(names: &mut [&String], cols: &[Column], stage: &str) {
    let value = |n: &String| -> f64 {
        (cols.first())
            .and_then(|c| c.stages.get(stage)?.as_ref()?.get(n).copied())
            .unwrap_or(f64::INFINITY)
    };
    names.sort_by(|a, b| value(a).total_cmp(&value(b)).then(a.cmp(b)));
}

/// The long form aligned: text columns left, value and diff right, the unit (last) left and
/// cut to `width` (never the columns before it).
fn align_long(rows: Vec<Vec<String>>, width: usize) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    let unit_at = widths[..widths.len() - 1].iter().map(|w| w + 2).sum();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = (r.iter().zip(&widths).enumerate())
            .map(|(j, (c, &w))| match j {
                3 | 4 => format!("{c:>w$}"),
                _ => format!("{c:<w$}"),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    fit_width(&out, width, unit_at)
}

/// One column, narrow: a line per stage, then its metrics indented, value, unit last.
pub fn render_narrow(order: &[String], cols: &[Column], by_value: bool, width: usize) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for stage in order {
        let Some(c) = cols.first() else { break };
        let Some(Some(m)) = c.stages.get(stage) else {
            rows.push(vec![stage.clone(), "not run".into(), String::new()]);
            continue;
        };
        rows.push(vec![stage.clone(), String::new(), String::new()]);
        let mut names: Vec<&String> = m.keys().collect();
        if by_value {
            sort_by_value(&mut names, cols, stage);
        }
        for n in names {
            rows.push(vec![format!("  {n}"), fmt(m[n]), unit_in(cols, stage, n)]);
        }
    }
    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for r in rows {
        let line = if r[1].is_empty() {
            r[0].clone()
        } else {
            format!("{:<w0$}  {:>w1$}  {}", r[0], r[1], r[2])
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let mut out = fit_width(&out, width, w0 + w1 + 4);
    out.push_str(&fit_width(&warnings(order, cols), width, 0));
    out
}

/// Cuts each line to `width` characters, ending a cut one with "…", but never before
/// character `keep` + 6 (the columns before the unit stay whole); warnings wrap instead.
pub fn fit_width(text: &str, width: usize, keep: usize) -> String {
    let width = width.max(keep + 6);
    let mut out = String::new();
    for line in text.lines() {
        let n = line.chars().count();
        if n <= width {
            out.push_str(line);
        } else if line.starts_with("warning: ") {
            out.push_str(&wrap(line, width));
        } else {
            out.extend(line.chars().take(width - 1));
            out.push('…');
        }
        out.push('\n');
    }
    out
}

/// Wraps each line of `text` at spaces to `width`, continuation lines indented by 2.
pub fn wrap_lines(text: &str, width: usize) -> String {
    text.lines().map(|l| wrap(l, width) + "\n").collect()
}

/// Wraps text at spaces to `width`, continuation lines indented by 2.
fn wrap(line: &str, width: usize) -> String {
    let mut out = String::new();
    let mut cur = String::new();
    for word in line.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&cur);
            out.push('\n');
            cur = format!("  {word}");
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    out.push_str(&cur);
    out
}

/// The stages' warnings, one line each (`warning: stage: text`), each once.
pub fn warnings(order: &[String], cols: &[Column]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for stage in order {
        for c in cols {
            for w in c.warnings.get(stage).into_iter().flatten() {
                if seen.insert((stage, w)) {
                    out.push_str(&format!("warning: {stage}: {w}\n"));
                }
            }
        }
    }
    out
}

/// The table in long form, for many columns: one line per stage, metric and column, with the
/// difference against the first column.
pub fn render_long(
    order: &[String],
    cols: &[Column],
    changed_only: bool,
    by_value: bool,
    width: usize,
) -> String {
    let mut rows = vec![["stage", "metric", "column", "value", "diff", "unit"]
        .map(String::from)
        .to_vec()];
    let first = |stage: &str, name: &str| {
        cols.first()?
            .stages
            .get(stage)?
            .as_ref()?
            .get(name)
            .copied()
    };
    let mut items = long(order, cols);
    if by_value {
        let at = |s: &str| order.iter().position(|o| o == s);
        items.sort_by(|a, b| {
            let v = |r: &(String, String, String, f64)| first(&r.0, &r.2).unwrap_or(f64::INFINITY);
            (at(&a.0).cmp(&at(&b.0)))
                .then(v(a).total_cmp(&v(b)))
                .then(a.2.cmp(&b.2))
        });
    }
    for (stage, label, name, v) in items {
        if changed_only && !changed(cols, &stage, &name) {
            continue;
        }
        let diff = match first(&stage, &name) {
            Some(a) if label != cols[0].label => fmt_diff(v - a),
            _ => String::new(),
        };
        let u = unit_in(cols, &stage, &name);
        rows.push(vec![stage, name, label, fmt(v), diff, u]);
    }
    let mut out = align_long(rows, width);
    out.push_str(&fit_width(&warnings(order, cols), width, 0));
    out
}

/// Rows as aligned text: the first `left` columns left-aligned, the rest right-aligned.
fn align(rows: Vec<Vec<String>>, left: usize) -> String {
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
                if j < left {
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
            ..Column::default()
        };
        let cols = [col("base", 0.25), col("other", 0.2)];
        let text = render(&["s".into(), "t".into()], &cols, false, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("base") && lines[0].contains("diff (2)"));
        let n = lines.iter().find(|l| l.contains(" n ")).unwrap();
        assert!(n.trim_end().ends_with('='), "{n}");
        let r = lines.iter().find(|l| l.contains("rmse")).unwrap();
        assert!(
            r.contains("0.2500") && r.contains("0.2000") && r.contains("-0.05000"),
            "{r}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("t ") && l.contains("not run")));
        let changed = render(&["s".into(), "t".into()], &cols, true, false);
        assert!(
            changed.contains("rmse") && !changed.contains(" n "),
            "{changed}"
        );
        let rows = long(&["s".into()], &cols);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], ("s".into(), "base".into(), "n".into(), 10.0));
    }

    #[test]
    fn units_by_name_or_suffix_and_warnings_once() {
        let v = json!({"units": {"rmse": "accuracy", "budget": "simulated seconds", "bad": 3},
                        "warnings": ["rf.latent.fit_4: scored on 3 cells", 7]});
        let (units, warnings) = units_and_warnings(&v);
        assert_eq!(unit_of(&units, "rf.latent.fit_250.rmse"), Some("accuracy"));
        assert_eq!(unit_of(&units, "budget"), Some("simulated seconds"));
        assert_eq!(unit_of(&units, "rf.latent.fit_250.pearson"), None);
        assert_eq!(units.len(), 2, "non-strings ignored");
        let col = |label: &str| Column {
            label: label.into(),
            stages: [(
                "p".to_string(),
                Some(flatten(&json!({"rf": {"fit_4": {"rmse": 0.1}}}))),
            )]
            .into(),
            units: [("p".to_string(), units.clone())].into(),
            warnings: [("p".to_string(), warnings.clone())].into(),
            ..Column::default()
        };
        let text = render(&["p".into()], &[col("a"), col("b")], false, false);
        assert!(text.contains("rf.fit_4.rmse  accuracy"), "{text}");
        assert_eq!(
            text.matches("warning: p: rf.latent.fit_4: scored on 3 cells")
                .count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn a_narrow_terminal_gets_one_metric_a_line_with_the_unit_cut() {
        let col = Column {
            label: "a".into(),
            stages: [("s".to_string(), Some(flatten(&json!({"b": 2.0, "a": 1.5}))))].into(),
            units: [(
                "s".to_string(),
                [("a".to_string(), "a long unit name here".to_string())].into(),
            )]
            .into(),
            ..Column::default()
        };
        let text = render_narrow(&["s".into()], std::slice::from_ref(&col), false, usize::MAX);
        assert_eq!(text, "s\n  a  1.500  a long unit name here\n  b      2\n");
        let by_value = render_narrow(&["s".into()], std::slice::from_ref(&col), true, usize::MAX);
        assert!(by_value.find("  a ").unwrap() < by_value.find("  b ").unwrap());
        let cut = render_narrow(&["s".into()], std::slice::from_ref(&col), false, 20);
        assert!(cut.lines().all(|l| l.chars().count() <= 20), "{cut}");
        assert!(cut.contains("  a  1.500  a long …"), "{cut}");
        let tight = render_narrow(&["s".into()], &[col], false, 5);
        assert!(
            tight.contains("  a  1.500  a lon…"),
            "the value is never cut: {tight}"
        );
        let wrapped = fit_width(&format!("warning: {}\n", "word ".repeat(20)), 30, 0);
        assert!(wrapped.lines().count() > 2 && wrapped.lines().all(|l| l.chars().count() <= 30));
    }

    #[test]
    fn one_number_format_and_integers_stay_integers() {
        assert_eq!(fmt(10.0), "10");
        assert_eq!(fmt(0.016412345), "0.01641");
        assert_eq!(fmt(1.7999999999999998), "1.800");
        assert_eq!(fmt(123.456), "123.5");
        assert_eq!(fmt(0.000123), "1.230e-4");
        assert_eq!(fmt(1.5e7), "15000000");
        assert_eq!(number(250.0).to_string(), "250");
        assert_eq!(number(0.5).to_string(), "0.5");
    }
}
