//! A stage's headline: the few numbers that answer its question, as a small table that the
//! engine prints at the end of a run, that `nasflow report` leads with and whose metrics
//! `nasflow metrics` shows by default.
//!
//! A stage writes it into its `summary.json` under [`HEADLINE`]; the cells are text, formatted
//! by the stage (the numbers themselves are elsewhere in the summary, as metrics). Metric names
//! listed under [`KEY_METRICS`] are the stage's headline numbers in `nasflow metrics`' short view.
use serde::{Deserialize, Serialize};

/// The summary key of the headline table.
pub const HEADLINE: &str = "headline";
/// The summary key of the list of key metric names (dotted, as `nasflow metrics` names them).
pub const KEY_METRICS: &str = "key_metrics";

/// A headline table: a title, column names, rows of text cells and notes (the tests between
/// rows, caveats) printed under it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Headline {
    /// Reads the headline of a summary, if it has a well-formed one (anything else: none).
    pub fn of_summary(summary: &serde_json::Value) -> Option<Headline> {
        serde_json::from_value(summary.get(HEADLINE)?.clone()).ok()
    }

    /// The headline as stage `stage` shows it: a title that starts with a kind's name
    /// ("predict: ...", written by the kind) starts with the stage's instead ("predict-zc:
    /// ...") when they differ, so that two stages of one kind are told apart.
    pub fn for_stage(mut self, stage: &str) -> Headline {
        if let Some((head, rest)) = self.title.split_once(": ") {
            if head != stage && !head.contains(' ') {
                self.title = format!("{stage}: {rest}");
            }
        }
        self
    }

    /// The table as aligned text: the title, a header, the rows, then the notes; cells wider
    /// than the column are kept whole.
    pub fn to_text(&self) -> String {
        let n = self.columns.len();
        let mut width: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &self.rows {
            for (k, c) in r.iter().enumerate().take(n) {
                width[k] = width[k].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = (cells.iter().zip(&width))
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {}", parts.join("  ").trim_end())
        };
        let mut out = vec![self.title.clone(), line(&self.columns)];
        out.extend(self.rows.iter().map(|r| line(r)));
        out.extend(self.notes.iter().map(|s| format!("  {s}")));
        out.join("\n")
    }
}

/// Formats a number with 3 significant digits (scientific notation below 0.001), as headline
/// cells show it.
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    if x.abs() < 1e-3 || x.abs() >= 1e6 {
        return format!("{x:.2e}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A mean and its 95% half-width as "mean ± half", the half-width with the mean's decimals
/// (at least one significant digit).
pub fn mean_pm(mean: f64, half: f64) -> String {
    let m = sig3(mean);
    if !half.is_finite() || m.contains('e') || !mean.is_finite() {
        return format!("{m} ± {}", sig3(half));
    }
    let decimals = m.split_once('.').map_or(0, |(_, d)| d.len());
    let h = format!("{half:.decimals$}");
    if half != 0.0 && h.trim_start_matches(['0', '.']).is_empty() {
        return format!("{m} ± {}", sig3(half));
    }
    format!("{m} ± {h}")
}

/// A p-value as text: 3 significant digits, "< 1e-15" below that.
pub fn p_value(p: f64) -> String {
    if p.is_nan() {
        "n/a".into()
    } else if p < 1e-15 {
        "< 1e-15".into()
    } else {
        sig3(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_of_another_name_titles_its_headline() {
        let h = Headline {
            title: "predict: how well".into(),
            ..Headline::default()
        };
        assert_eq!(h.clone().for_stage("predict").title, "predict: how well");
        assert_eq!(
            h.clone().for_stage("predict-zc").title,
            "predict-zc: how well"
        );
        let free = Headline {
            title: "Some table: a caveat".into(),
            ..Headline::default()
        };
        assert_eq!(free.clone().for_stage("x").title, free.title);
    }

    #[test]
    fn reads_back_and_aligns() {
        let h = Headline {
            title: "T".into(),
            columns: vec!["a".into(), "bb".into()],
            rows: vec![vec!["long cell".into(), "1".into()]],
            notes: vec!["p = 0.5".into()],
        };
        let v = serde_json::json!({ HEADLINE: h, "x": 1 });
        assert_eq!(Headline::of_summary(&v), Some(h.clone()));
        assert_eq!(h.to_text(), "T\n  a          bb\n  long cell  1\n  p = 0.5");
        assert_eq!(
            Headline::of_summary(&serde_json::json!({"headline": 3})),
            None
        );
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(sig3(0.002608), "0.00261");
        assert_eq!(sig3(0.7004), "0.700");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(0.0001234), "1.23e-4");
        assert_eq!(p_value(1e-20), "< 1e-15");
        assert_eq!(mean_pm(0.00235, 0.000192), "0.00235 ± 0.00019");
        assert_eq!(mean_pm(0.352, 0.0232), "0.352 ± 0.023");
        assert_eq!(mean_pm(0.5, 0.00001), "0.500 ± 1.00e-5");
        assert_eq!(p_value(0.159), "0.159");
    }
}
