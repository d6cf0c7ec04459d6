//! The headlines a run ends with: each stage's `headline` table (the contract's
//! [`Headline`]), read from its `summary.json`, in the run's order.
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nasflow_contract::layout::SUMMARY;
use nasflow_contract::Headline;

/// The headline of the stage whose output is `dir`, if its summary has one.
pub fn of_dir(dir: &Path) -> Option<Headline> {
    let text = std::fs::read_to_string(dir.join(SUMMARY)).ok()?;
    Headline::of_summary(&serde_json::from_str(&text).ok()?)
}

/// The headlines of these outputs, in order, as text ("" when none has one).
pub fn text(dirs: &[PathBuf]) -> String {
    let tables: Vec<String> = dirs
        .iter()
        .filter_map(|d| of_dir(d))
        .map(|h| h.to_text())
        .collect();
    if tables.is_empty() {
        return String::new();
    }
    format!("\n{}\n\n", tables.join("\n\n"))
}

/// Prints the headlines on standard output (the run's answer), flushed before the run's
/// closing lines on standard error.
pub fn print(dirs: &[PathBuf]) {
    let t = text(dirs);
    if !t.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(t.as_bytes());
        let _ = out.flush();
    }
}
