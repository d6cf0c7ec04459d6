//! `nasflow plots`: each chart of the selected stages drawn once, overlaying the pipeline, its
//! variants and other pipelines (like `dvc plots diff`). A stage's charts are the chart data in
//! its current outputs (`charts/NAME.json`, the form documented in `nasflow-charts`); nasflow
//! draws them without knowing what they show.
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use nasflow_charts::{overlay, Chart};

use super::args::Sets;
use super::project::{planned, selected, Project};
use crate::registry::Registry;

/// The charts of one source (a pipeline or a variant): per stage and chart name, its data.
type Charts = BTreeMap<(String, String), Chart>;

pub(super) fn charts_of(project: &Project, stages: &[String]) -> Result<Charts> {
    let closure = project.closure(stages)?;
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let mut out = Charts::new();
    for s in &plan {
        let stage = project.p.stages[s.stage].name.clone();
        if !stages.is_empty() && !stages.contains(&stage) {
            continue;
        }
        let Some(record) = &s.record else { continue };
        for f in &record.files {
            let Some(name) = chart_name(f.path.as_str()) else {
                continue;
            };
            let path = cache.blob_path(&f.digest);
            let chart =
                Chart::read(&path).with_context(|| format!("{stage}'s {}", f.path.as_str()))?;
            out.insert((stage.clone(), name.to_string()), chart);
        }
    }
    Ok(out)
}

/// `charts/NAME.json` gives `NAME`.
fn chart_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix("charts/")?.strip_suffix(".json")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The sources to overlay: the pipeline (with `--set`), each selected variant, each `--compare`
/// pipeline; with one label each.
pub(super) fn sources<'r>(
    reg: &'r Registry,
    file: &Path,
    sets: &Sets,
    compare: &[PathBuf],
) -> Result<Vec<(String, Project<'r>)>> {
    let mut out = vec![("base".to_string(), Project::load(reg, file, &sets.sets)?)];
    if !sets.names().is_empty() {
        for (name, overrides) in selected(file, sets)? {
            out.push((name, Project::load(reg, file, &overrides)?));
        }
    }
    for other in compare {
        let label = other.display().to_string();
        out.push((label, Project::load(reg, other, &sets.sets)?));
    }
    Ok(out)
}

pub fn plots(
    reg: &Registry,
    file: &Path,
    stages: &[String],
    sets: &Sets,
    compare: &[PathBuf],
    out_dir: &Path,
) -> Result<ExitCode> {
    let mut by_chart: BTreeMap<(String, String), Vec<(String, Chart)>> = BTreeMap::new();
    let sources = sources(reg, file, sets, compare)?;
    let overlaid = sources.len() > 1;
    for (label, project) in &sources {
        for (key, chart) in charts_of(project, stages)? {
            by_chart
                .entry(key)
                .or_default()
                .push((label.clone(), chart));
        }
    }
    if by_chart.is_empty() {
        eprintln!("no charts: the selected stages have no current results with chart data (run them first)");
        return Ok(ExitCode::from(1));
    }
    for ((stage, name), charts) in &by_chart {
        let chart = if overlaid {
            let mut c = overlay(charts);
            c.title = format!("{} ({})", c.title, labels(charts));
            c
        } else {
            charts[0].1.clone()
        };
        let dir = out_dir.join(stage);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{name}.{ext}"));
            match ext {
                "png" => chart.write_png(&path)?,
                _ => chart.write_svg(&path)?,
            }
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn labels(charts: &[(String, Chart)]) -> String {
    let l: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
    l.join(" vs ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_data_paths() {
        assert_eq!(chart_name("charts/loss.json"), Some("loss"));
        assert_eq!(chart_name("charts/a/b.json"), None);
        assert_eq!(chart_name("charts/.json"), None);
        assert_eq!(chart_name("loss.png"), None);
    }
}
