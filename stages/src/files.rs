//! Writing and reading the JSON files stages exchange.
use serde::{Deserialize, Serialize};

use nasflow_contract::StageError;

/// Writes pretty JSON.
pub fn write_json(path: &std::path::Path, v: &impl Serialize) -> Result<(), StageError> {
    let text = serde_json::to_string_pretty(v).expect("serializable") + "\n";
    std::fs::write(path, text).map_err(|e| StageError::io(path, e))
}

/// Writes one JSON value a line (JSON Lines).
pub fn write_jsonl<T: Serialize>(
    path: &std::path::Path,
    values: impl IntoIterator<Item = T>,
) -> Result<(), StageError> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| StageError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    for v in values {
        serde_json::to_writer(&mut w, &v).map_err(|e| StageError::io(path, e.into()))?;
        w.write_all(b"\n").map_err(|e| StageError::io(path, e))?;
    }
    w.flush().map_err(|e| StageError::io(path, e))
}

/// Reads JSON.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Result<T, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))
}
