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
        let stage = project.p.decl(s.stage).name.clone();
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
            let p = Project::load(reg, file, &overrides)?;
            let label = describe(&name, &out[0].1, &p);
            out.push((label, p));
        }
    }
    for other in compare {
        let label = other.display().to_string();
        out.push((label, Project::load(reg, other, &sets.sets)?));
    }
    Ok(out)
}

/// A variant's label: its name and the params in which it differs from the base (each
/// `param=value` once, whichever stages it is set in), so that a legend says what differs.
pub(super) fn describe(name: &str, base: &Project, p: &Project) -> String {
    let mut diffs: Vec<String> = Vec::new();
    for &i in p.dag.order() {
        let decl = p.p.decl(i);
        let theirs = base.p.stage(&decl.name).map(|d| &d.params);
        for (k, v) in &decl.params {
            if theirs.and_then(|t| t.get(k)) != Some(v) {
                let d = format!("{k}={}", crate::metrics::compact(v));
                if !diffs.contains(&d) {
                    diffs.push(d);
                }
            }
        }
    }
    // A sweep point's name already says what it sets (`seeds[train-vae.seed=2]`).
    if diffs.is_empty() || name.contains('[') {
        return name.to_string();
    }
    let mut text = diffs.join(", ");
    if text.chars().count() > 40 {
        text = text.chars().take(39).collect::<String>() + "…";
    }
    format!("{name} ({text})")
}

/// Replicates (a sweep over a seed) as one chart: each line series' mean over the sources and
/// its bootstrapped 95% band (`metrics --aggregate`'s interval), at the x every source has.
pub fn aggregate(charts: &[(String, Chart)]) -> Chart {
    let Some((_, first)) = charts.first() else {
        return Chart::default();
    };
    let mut out = Chart {
        title: format!("{} (mean of {} runs, 95% band)", first.title, charts.len()),
        ..first.clone()
    };
    for s in &mut out.series {
        let same: Vec<&nasflow_charts::Series> = (charts.iter())
            .filter_map(|(_, c)| c.series.iter().find(|t| t.name == s.name))
            .collect();
        let mut line = Vec::new();
        let mut band = Vec::new();
        for &(x, _) in &s.line {
            let ys: Vec<f64> = (same.iter())
                .filter_map(|t| t.line.iter().find(|p| p.0 == x).map(|p| p.1))
                .collect();
            if ys.len() < same.len() {
                continue;
            }
            if let Some(a) = crate::metrics::aggregate::aggregate(&ys) {
                line.push((x, a.mean));
                band.push((x, a.low, a.high));
            }
        }
        s.line = line;
        s.band = if charts.len() > 1 { band } else { Vec::new() };
        s.name = format!("{} (n={})", s.name, same.len());
        s.dots.clear();
    }
    out
}

/// Each chart of the sources' stages once, keyed by (stage, name): one source's as it is,
/// several overlaid, or (`replicates`) their mean and band.
pub(super) fn combined(
    sources: &[(String, Project)],
    stages: &[String],
    replicates: bool,
) -> Result<BTreeMap<(String, String), Chart>> {
    let mut by_chart: BTreeMap<(String, String), Vec<(String, Chart)>> = BTreeMap::new();
    for (label, project) in sources {
        for (key, chart) in charts_of(project, stages)? {
            by_chart
                .entry(key)
                .or_default()
                .push((label.clone(), chart));
        }
    }
    Ok(by_chart
        .into_iter()
        .map(|(key, charts)| {
            let chart = if replicates {
                aggregate(&charts)
            } else if sources.len() > 1 {
                overlay(&charts)
            } else {
                charts[0].1.clone()
            };
            (key, chart)
        })
        .collect())
}

/// Which drawings `plots` writes, and their size in pixels.
pub struct Draw {
    pub png: bool,
    pub svg: bool,
    pub size: (u32, u32),
}

pub fn plots(
    reg: &Registry,
    file: &Path,
    stages: &[String],
    (sets, compare, replicates): (&Sets, &[PathBuf], bool),
    draw: Draw,
    out_dir: &Path,
) -> Result<ExitCode> {
    let mut sources = sources(reg, file, sets, compare)?;
    if replicates && sources.len() > 1 {
        sources.remove(0); // the selected variants (the replicates) only
    }
    let charts = combined(&sources, stages, replicates)?;
    if charts.is_empty() {
        eprintln!("no charts: the selected stages have no current results with chart data (run them first)");
        return Ok(ExitCode::from(1));
    }
    for ((stage, name), chart) in &charts {
        let dir = out_dir.join(stage);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if draw.png {
            let png = dir.join(format!("{name}.png"));
            chart.write_png_sized(&png, draw.size)?;
            println!("{}", png.display());
        }
        if draw.svg {
            let svg = dir.join(format!("{name}.svg"));
            chart.write_svg_sized(&svg, draw.size)?;
            println!("{}", svg.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicates_become_a_mean_and_a_band() {
        let run = |y: f64| Chart {
            title: "loss".into(),
            series: vec![nasflow_charts::Series {
                name: "train".into(),
                line: vec![(1.0, 1.0), (2.0, y)],
                ..Default::default()
            }],
            ..Chart::default()
        };
        let a = aggregate(&[
            ("s=1".into(), run(0.2)),
            ("s=2".into(), run(0.4)),
            ("s=3".into(), run(0.6)),
        ]);
        let s = &a.series[0];
        assert_eq!(s.name, "train (n=3)");
        assert!((s.line[1].1 - 0.4).abs() < 1e-12);
        let (_, lo, hi) = s.band[1];
        assert!(lo < 0.4 && hi > 0.4 && lo >= 0.2 && hi <= 0.6, "{lo} {hi}");
        assert_eq!(s.band[0].1, 1.0, "equal values: no spread");
    }

    #[test]
    fn chart_data_paths() {
        assert_eq!(chart_name("charts/loss.json"), Some("loss"));
        assert_eq!(chart_name("charts/a/b.json"), None);
        assert_eq!(chart_name("charts/.json"), None);
        assert_eq!(chart_name("loss.png"), None);
    }
}
