//! `nasflow metrics`: the summary numbers of the current results, side by side.
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nasflow_contract::layout::SUMMARY;
use serde_json::json;

use super::args::Sets;
use super::project::{planned, selected, Project};
use crate::config::Override;
use crate::metrics::Column;
use crate::registry::Registry;

/// One column of `nasflow metrics`: the summary numbers of the stages' current results.
fn column(project: &Project, stages: &[String], label: String) -> Result<Column> {
    let closure = project.closure(stages)?;
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let mut col = Column {
        label,
        ..Column::default()
    };
    for s in &plan {
        let name = project.p.stages[s.stage].name.clone();
        if !stages.is_empty() && !stages.contains(&name) {
            continue;
        }
        let numbers = match &s.record {
            None => None,
            Some(r) => match r.files.iter().find(|f| f.path == SUMMARY) {
                None => Some(Default::default()),
                Some(f) => {
                    let path = cache.blob_path(&f.digest);
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("reading {name}'s summary.json ({})", path.display())
                    })?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("{name}'s summary.json ({})", path.display()))?;
                    Some(crate::metrics::flatten(&v))
                }
            },
        };
        col.stages.insert(name, numbers);
    }
    Ok(col)
}

pub fn metrics(
    reg: &Registry,
    file: &Path,
    stages: &[String],
    all_sets: &Sets,
    (compare, compare_set): (&[std::path::PathBuf], &[Override]),
    aggregate: bool,
    json: bool,
) -> Result<ExitCode> {
    let label = |f: &Path, extra: &[Override]| {
        let mut l = f.display().to_string();
        for o in extra {
            l.push_str(&format!(" {}", o.raw));
        }
        l
    };
    let sets = &all_sets.sets;
    let base = Project::load(reg, file, sets)?;
    let order: Vec<String> = base
        .dag
        .closure(&base.dag.targets(&base.p, stages)?)
        .into_iter()
        .map(|i| base.p.stages[i].name.clone())
        .filter(|n| stages.is_empty() || stages.contains(n))
        .collect();
    let mut cols = vec![column(&base, stages, label(file, sets))?];
    for other in compare {
        let p = Project::load(reg, other, sets)?;
        cols.push(column(&p, stages, label(other, sets))?);
    }
    if !compare_set.is_empty() {
        let all: Vec<Override> = sets.iter().chain(compare_set).cloned().collect();
        let p = Project::load(reg, file, &all)?;
        cols.push(column(&p, stages, label(file, &all))?);
    }
    let mut variant_cols = Vec::new();
    if !all_sets.names().is_empty() {
        for (name, overrides) in selected(file, all_sets)? {
            let p = Project::load(reg, file, &overrides)?;
            variant_cols.push(column(&p, stages, format!("variant {name}"))?);
        }
    }
    if aggregate {
        let over = if variant_cols.is_empty() { cols } else { variant_cols };
        return print_aggregate(&order, &over, json);
    }
    cols.extend(variant_cols);
    if json {
        let v: Vec<_> = cols
            .iter()
            .map(|c| json!({"label": c.label, "stages": c.stages}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "columns": v }))?
        );
    } else {
        print!("{}", crate::metrics::render(&order, &cols));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--aggregate`: the columns as replicates, one aggregate column.
fn print_aggregate(order: &[String], cols: &[Column], json: bool) -> Result<ExitCode> {
    use crate::metrics::aggregate::{aggregate_columns, render};
    let agg = aggregate_columns(order, cols);
    if json {
        let over: Vec<&str> = cols.iter().map(|c| c.label.as_str()).collect();
        let v = json!({"aggregate": {"over": over, "stages": agg}});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(order, &agg, cols.len()));
    }
    Ok(ExitCode::SUCCESS)
}
