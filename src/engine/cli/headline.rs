//! The headlines a run ends with: each stage's `headline` table (the contract's
//! [`Headline`]), read from its `summary.json`, in the run's order.
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nasflow_contract::Headline;

/// The headline in the summary file at `path`, if it has one.
pub fn of_summary(path: &Path) -> Option<Headline> {
    let text = std::fs::read_to_string(path).ok()?;
    Headline::of_summary(&serde_json::from_str(&text).ok()?)
}

/// The headlines of these stages' summary files, in order, as text ("" when none has one).
pub fn text(summaries: &[(String, PathBuf)]) -> String {
    let tables: Vec<String> = summaries
        .iter()
        .filter_map(|(stage, p)| Some(of_summary(p)?.for_stage(stage)))
        .map(|h| h.to_text())
        .collect();
    if tables.is_empty() {
        return String::new();
    }
    format!("\n{}\n\n", tables.join("\n\n"))
}

/// Prints the headlines of these summary files on standard output (the run's answer), flushed
/// before the run's closing lines on standard error.
pub fn print(summaries: &[(String, PathBuf)]) {
    let t = text(summaries);
    if !t.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(t.as_bytes());
        let _ = out.flush();
    }
}
