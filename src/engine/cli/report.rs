//! `nasflow report`: gathers the stages, params, metrics and charts of the pipeline (and its
//! variants) into [`crate::report::Report`] and writes `DIR/index.html`.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nasflow_contract::Headline;
use serde_json::Value;

use super::args::Sets;
use super::metrics::column;
use super::plots::{combined, sources};
use super::project::{planned, Project};
use crate::config::StageId;
use crate::decide::Action;
use crate::registry::Registry;
use crate::report::{Report, Row, StageRow};

pub fn report(reg: &Registry, file: &Path, sets: &Sets, out_dir: &Path) -> Result<ExitCode> {
    let sources = sources(reg, file, sets, &[])?;
    let base = &sources[0].1;
    let mut r = Report {
        title: format!("nasflow report: {}", base.p.name),
        pipeline: base.p.file.display().to_string(),
        sources: sources.iter().map(|s| s.0.clone()).collect(),
        ..Report::default()
    };
    (r.stages, r.edges) = stages(base)?;
    r.params = params(&sources);
    (r.metrics, r.warnings, r.headlines) = metrics(&sources)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    r.charts = charts(&sources, &out_dir.join("figures"))?;
    let index = out_dir.join("index.html");
    std::fs::write(&index, r.html()).with_context(|| format!("writing {}", index.display()))?;
    println!("{}", index.display());
    Ok(ExitCode::SUCCESS)
}

/// (dependency, dependent) as indices into the stage rows.
type Edges = Vec<(usize, usize)>;

/// The base pipeline's stages with their state and record, and the DAG's edges.
fn stages(project: &Project) -> Result<(Vec<StageRow>, Edges)> {
    let order = project.dag.order().to_vec();
    let (cache, plan) = planned(project, &order, &HashSet::new())?;
    let runner = crate::runner::child::ChildProcess::new();
    let engine = project.engine(&cache, &runner);
    let at: BTreeMap<StageId, usize> = order.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let mut rows = Vec::new();
    for s in &plan {
        let decl = &project.p.decl(s.stage);
        let mut row = StageRow {
            name: decl.name.clone(),
            kind: decl.kind.clone(),
            status: if s.action == Action::Cached {
                "cached"
            } else {
                "stale"
            }
            .into(),
            key: s.key.as_ref().map(|k| k.to_string()),
            ..StageRow::default()
        };
        if let (Some(rec), Action::Cached) = (&s.record, s.action) {
            let p = &rec.provenance;
            row.duration_s = Some(p.duration_s);
            row.peak_mib = Some(p.peak_rss_bytes as f64 / 1048576.0);
            row.device = Some(p.device.clone());
            row.out_dir = Some(engine.output_dir(s.stage, rec)?);
            row.files = rec
                .files
                .iter()
                .map(|f| f.path.as_str().to_string())
                .collect();
            row.logs = (p.files.iter())
                .map(|f| (f.path.as_str().to_string(), cache.blob_path(&f.digest)))
                .collect();
        }
        rows.push(row);
    }
    let edges = order
        .iter()
        .flat_map(|&i| project.dag.deps(i).into_iter().map(move |d| (d, i)))
        .filter_map(|(d, i)| Some((*at.get(&d)?, *at.get(&i)?)))
        .collect();
    Ok((rows, edges))
}

/// Every param of every stage, per source.
fn params(sources: &[(String, Project)]) -> Vec<Row<Value>> {
    let base = &sources[0].1;
    let mut rows = Vec::new();
    for &i in base.dag.order() {
        let stage = &base.p.decl(i).name;
        let names: BTreeSet<&String> = sources
            .iter()
            .filter_map(|(_, p)| p.p.stage(stage))
            .flat_map(|d| d.params.keys())
            .collect();
        for name in names {
            let values = (sources.iter())
                .map(|(_, p)| p.p.stage(stage).and_then(|d| d.params.get(name)).cloned())
                .collect();
            rows.push(Row {
                stage: stage.clone(),
                name: name.clone(),
                values,
            });
        }
    }
    rows
}

/// Every summary number, per source, the summaries' warnings (`stage: text`, each once) and
/// their headline tables.
type Gathered = (Vec<Row<f64>>, Vec<String>, Vec<(String, String, Headline)>);

fn metrics(sources: &[(String, Project)]) -> Result<Gathered> {
    let cols = (sources.iter())
        .map(|(label, p)| column(p, &[], label.clone()))
        .collect::<Result<Vec<_>>>()?;
    let order: Vec<String> = (sources[0].1.dag.order().iter())
        .map(|&i| sources[0].1.p.decl(i).name.clone())
        .collect();
    let warnings = (crate::metrics::warnings(&order, &cols).lines())
        .map(|l| l.trim_start_matches("warning: ").to_string())
        .collect();
    let headlines = (order.iter())
        .flat_map(|stage| {
            (cols.iter()).filter_map(move |c| {
                let h = c.headlines.get(stage)?.clone().for_stage(stage);
                Some((stage.clone(), c.label.clone(), h))
            })
        })
        .collect();
    let base = &sources[0].1;
    let mut rows = Vec::new();
    for &i in base.dag.order() {
        let stage = &base.p.decl(i).name;
        let names: BTreeSet<&String> = (cols.iter())
            .filter_map(|c| c.stages.get(stage).and_then(Option::as_ref))
            .flat_map(|m| m.keys())
            .collect();
        for name in names {
            let values = (cols.iter())
                .map(|c| c.stages.get(stage)?.as_ref()?.get(name).copied())
                .collect();
            rows.push(Row {
                stage: stage.clone(),
                name: name.clone(),
                values,
            });
        }
    }
    Ok((rows, warnings, headlines))
}

/// Each chart once, overlaid across sources, as SVG markup (also kept in `dir`).
fn charts(sources: &[(String, Project)], dir: &Path) -> Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for ((stage, name), chart) in combined(sources, &[], false)? {
        let path = dir.join(format!("{stage}-{name}.svg"));
        chart.write_svg(&path)?;
        let svg = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        out.push((format!("{stage}: {name}"), svg));
    }
    Ok(out)
}
