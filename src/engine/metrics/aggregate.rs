//! Replicates: `nasflow metrics --aggregate` joins the columns of runs that differ only in a
//! seed (a sweep's points) into one: per number its mean and a bootstrapped 95% interval.
//!
//! The interval is the percentile bootstrap: [`RESAMPLES`] resamples with replacement of the
//! replicates' values, the 2.5th and 97.5th percentiles of their means. The resampling generator
//! is seeded, so the same values print the same interval. (No well-kept crate offers this; it is
//! a few lines over `rand`.)
use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{fmt, Column};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 10_000;

/// One number over the replicates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Aggregate {
    pub mean: f64,
    /// The bootstrapped 95% interval of the mean.
    pub low: f64,
    pub high: f64,
    pub n: usize,
    pub values: Vec<f64>,
}

/// The mean of `values` and its percentile-bootstrap 95% interval; `None` for no values.
pub fn aggregate(values: &[f64]) -> Option<Aggregate> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(0x006d_6574_7269_6373);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
    Some(Aggregate {
        mean,
        low: at(0.025).min(mean),
        high: at(0.975).max(mean),
        n,
        values: values.to_vec(),
    })
}

/// Per stage: per number its aggregate over the columns that have it, and the labels of the
/// columns without a result for the stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageAggregate {
    pub numbers: BTreeMap<String, Aggregate>,
    pub missing: Vec<String>,
}

/// Aggregates the columns, stage by stage.
pub fn aggregate_columns(order: &[String], cols: &[Column]) -> BTreeMap<String, StageAggregate> {
    let mut out = BTreeMap::new();
    for stage in order {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut missing = Vec::new();
        for c in cols {
            match c.stages.get(stage) {
                Some(Some(numbers)) => {
                    for (name, v) in numbers {
                        values.entry(name.clone()).or_default().push(*v);
                    }
                }
                _ => missing.push(c.label.clone()),
            }
        }
        let numbers = values
            .into_iter()
            .filter_map(|(name, v)| Some((name, aggregate(&v)?)))
            .collect();
        out.insert(stage.clone(), StageAggregate { numbers, missing });
    }
    out
}

/// The aggregate as a text table: stage, metric, mean, the interval, the replicates counted.
pub fn render(
    order: &[String],
    agg: &BTreeMap<String, StageAggregate>,
    replicates: usize,
) -> String {
    let mut rows = vec![vec![
        "stage".to_string(),
        "metric".into(),
        format!("mean of {replicates}"),
        "95% interval (bootstrap)".into(),
        "n".into(),
    ]];
    let mut notes = Vec::new();
    for stage in order {
        let Some(a) = agg.get(stage) else { continue };
        if !a.missing.is_empty() {
            notes.push(format!(
                "{stage}: no result in {} of {replicates} ({}): `nasflow run` them first",
                a.missing.len(),
                a.missing.join(", ")
            ));
        }
        for (name, x) in &a.numbers {
            rows.push(vec![
                stage.clone(),
                name.clone(),
                fmt(x.mean),
                format!("[{}, {}]", fmt(x.low), fmt(x.high)),
                x.n.to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (c, w))| {
                if j < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_an_interval_that_contains_it() {
        let a = aggregate(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(a.mean, 3.0);
        assert!(a.low < 3.0 && a.high > 3.0, "{a:?}");
        // The bootstrap's means lie within the values' range, and for 5 values the 95%
        // interval of the mean is well inside it (the standard error is sqrt(2/5) ~ 0.63).
        assert!(
            a.low >= 1.0 && a.high <= 5.0 && a.high - a.low < 3.2,
            "{a:?}"
        );
        assert_eq!(
            aggregate(&[1.0, 2.0, 3.0, 4.0, 5.0]),
            Some(a),
            "seeded: the same interval"
        );
        let one = aggregate(&[0.5]).unwrap();
        assert_eq!((one.low, one.mean, one.high), (0.5, 0.5, 0.5));
        assert!(aggregate(&[]).is_none());
    }

    #[test]
    fn columns_are_joined_by_stage_and_name_and_missing_ones_named() {
        let col = |label: &str, v: Option<f64>| Column {
            label: label.into(),
            stages: [(
                "s".to_string(),
                v.map(|v| BTreeMap::from([("l1".to_string(), v)])),
            )]
            .into_iter()
            .collect(),
            ..Column::default()
        };
        let cols = [
            col("seed=1", Some(0.2)),
            col("seed=2", Some(0.4)),
            col("seed=3", None),
        ];
        let agg = aggregate_columns(&["s".into()], &cols);
        let l1 = &agg["s"].numbers["l1"];
        assert!((l1.mean - 0.3).abs() < 1e-12 && l1.n == 2);
        assert_eq!(agg["s"].missing, vec!["seed=3".to_string()]);
        let text = render(&["s".into()], &agg, 3);
        assert!(
            text.contains("mean of 3") && text.contains("0.3000"),
            "{text}"
        );
        assert!(text.contains("no result in 1 of 3 (seed=3)"), "{text}");
    }
}
