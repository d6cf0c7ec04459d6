//! Reports of the NAS stages: the `summary.json` convention and the charts.
//!
//! A stage's `summary.json` holds its summary numbers (a JSON object, nested objects allowed);
//! `nasflow metrics` prints them. Each chart is written through `nasflow-charts`: its data as
//! `charts/NAME.json` (the chart-data form that `nasflow plots` overlays across variants) and its
//! drawings as `NAME.png` and `NAME.svg`.
use std::path::Path;

pub use nasflow_charts::{mean_ci95, Chart, Kind, Series};
use nasflow_contract::StageError;

/// Writes a chart's data and drawings into `out`; returns the written paths.
pub fn write_chart(out: &Path, name: &str, chart: &Chart) -> Result<Vec<String>, StageError> {
    chart
        .write(out, name)
        .map_err(|e| StageError::Failed(e.to_string()))
}
