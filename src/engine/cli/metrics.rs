//! `nasflow metrics`: the summary numbers of the current results, side by side.
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nasflow_contract::layout::SUMMARY;
use serde_json::json;

use super::args::{MetricsFormat, Sets};
use super::project::{planned, selected, Project};
use crate::config::Override;
use crate::metrics::Column;
use crate::registry::{KindRef, Registry};

/// One column of `nasflow metrics`: the summary numbers of the stages' current results.
pub(super) fn column(project: &Project, stages: &[String], label: String) -> Result<Column> {
    let closure = project.closure(stages)?;
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let mut col = Column {
        label,
        ..Column::default()
    };
    for s in &plan {
        let name = project.p.decl(s.stage).name.clone();
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
                    let (units, warnings) = crate::metrics::units_and_warnings(&v);
                    col.units.insert(name.clone(), units);
                    col.warnings.insert(name.clone(), warnings);
                    if let Some(h) = nasflow_contract::Headline::of_summary(&v) {
                        col.headlines.insert(name.clone(), h);
                    }
                    let numbers = crate::metrics::flatten(&v);
                    let mut keys = crate::metrics::key_metrics(&v);
                    let kind = &project.p.decl(s.stage).kind;
                    if let Some(KindRef::Native(d)) = project.reg.get(kind) {
                        keys.extend(declared_keys(d.info().key_metrics, &numbers));
                    }
                    col.key_metrics.insert(name.clone(), keys);
                    Some(numbers)
                }
            },
        };
        col.stages.insert(name, numbers);
    }
    Ok(col)
}

/// The metric names that a kind's declared key-metric globs match.
fn declared_keys(globs: &[&str], numbers: &BTreeMap<String, f64>) -> Vec<String> {
    let mut set = globset::GlobSetBuilder::new();
    for g in globs {
        if let Ok(glob) = globset::GlobBuilder::new(g)
            .literal_separator(false)
            .build()
        {
            set.add(glob);
        }
    }
    let Ok(set) = set.build() else {
        return Vec::new();
    };
    numbers
        .keys()
        .filter(|n| set.is_match(n))
        .cloned()
        .collect()
}

/// How to show the numbers.
pub struct Show {
    pub aggregate: bool,
    pub changed: bool,
    /// Every metric, not the short view.
    pub all: bool,
    /// Rows by the first column's value instead of by name.
    pub by_value: bool,
    /// Only the metrics whose name or `STAGE.NAME` matches (`--filter`).
    pub filter: Option<globset::GlobSet>,
    pub format: MetricsFormat,
}

impl Show {
    /// The short view (each stage's key metrics): a plain table without --all, --filter,
    /// --changed or --aggregate.
    fn is_short(&self) -> bool {
        !self.all
            && self.filter.is_none()
            && !self.changed
            && !self.aggregate
            && self.format == MetricsFormat::Table
    }
}

/// Whether any column names key metrics for one of these stages (else the short view would
/// be empty, and every metric is shown).
fn has_key_metrics<'a>(mut cols: impl Iterator<Item = &'a Column>, order: &[String]) -> bool {
    cols.any(|c| (order.iter()).any(|s| c.key_metrics.get(s).is_some_and(|k| !k.is_empty())))
}

/// The `--filter` globs as one matcher (`None`: no filter).
pub fn filter(globs: &[String]) -> Result<Option<globset::GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(false)
            .build()
            .with_context(|| {
                format!("--filter {g:?} is not a glob (`*` any characters, `?` one)")
            })?;
        set.add(glob);
    }
    Ok(Some(set.build()?))
}

/// Keeps only the metrics `filter` matches, by name or `STAGE.NAME`.
fn keep_matching(cols: &mut [Column], filter: &globset::GlobSet) {
    for c in cols {
        for (stage, numbers) in c.stages.iter_mut() {
            if let Some(m) = numbers {
                m.retain(|name, _| {
                    filter.is_match(name) || filter.is_match(format!("{stage}.{name}"))
                });
            }
        }
    }
}

pub fn metrics(
    reg: &Registry,
    file: &Path,
    stages: &[String],
    all_sets: &Sets,
    (compare, compare_set): (&[std::path::PathBuf], &[Override]),
    show: Show,
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
    let mut order: Vec<String> = base
        .dag
        .closure(&base.dag.targets(&base.p, stages)?)
        .into_iter()
        .map(|i| base.p.decl(i).name.clone())
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
    if let Some(f) = &show.filter {
        keep_matching(&mut cols, f);
        keep_matching(&mut variant_cols, f);
        // Only the stages with a matching metric.
        order.retain(|st| {
            (cols.iter().chain(&variant_cols)).any(|c| {
                c.stages
                    .get(st)
                    .is_some_and(|m| m.as_ref().is_some_and(|m| !m.is_empty()))
            })
        });
    }
    let short = show.is_short() && has_key_metrics(cols.iter().chain(&variant_cols), &order);
    let mut others = Vec::new();
    if short {
        others = keep_key_metrics(&mut cols, &mut variant_cols, &mut order);
    }
    if show.aggregate {
        let over = if variant_cols.is_empty() {
            cols
        } else {
            variant_cols
        };
        return print_aggregate(&order, &over, show.format == MetricsFormat::Json);
    }
    cols.extend(variant_cols);
    let mut text = format_columns(&order, &cols, &show)?;
    if short {
        text = short_view(text, &others, all_sets);
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The short view: keeps each stage's key metrics (the union over columns); a stage that names
/// none leaves the table. Returns those stages with their metric counts.
fn keep_key_metrics(
    cols: &mut [Column],
    variant_cols: &mut [Column],
    order: &mut Vec<String>,
) -> Vec<(String, usize)> {
    let mut others = Vec::new();
    order.retain(|stage| {
        let all = || cols.iter().chain(variant_cols.iter());
        let keys: std::collections::BTreeSet<&String> = all()
            .filter_map(|c| c.key_metrics.get(stage))
            .flatten()
            .collect();
        if !keys.is_empty() {
            return true;
        }
        let count = all()
            .filter_map(|c| c.stages.get(stage)?.as_ref().map(|m| m.len()))
            .max()
            .unwrap_or(0);
        others.push((stage.clone(), count));
        false
    });
    for c in cols.iter_mut().chain(variant_cols.iter_mut()) {
        let keys = c.key_metrics.clone();
        for (stage, numbers) in c.stages.iter_mut() {
            let k = keys.get(stage);
            if let Some(m) = numbers {
                m.retain(|name, _| k.is_some_and(|k| k.contains(name)));
            }
        }
    }
    others
}

/// The short view's text: the key metrics' table with its warnings counted, not listed, then
/// how to see the rest.
fn short_view(table: String, others: &[(String, usize)], sets: &Sets) -> String {
    // Warnings come last (a wrapped one continues on indented lines).
    let lines: Vec<&str> = table.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("warning: "))
        .unwrap_or(lines.len());
    let (rows, rest) = lines.split_at(first);
    let warnings: Vec<&&str> = rest.iter().filter(|l| l.starts_with("warning: ")).collect();
    let mut foot = String::new();
    if !others.is_empty() {
        let list: Vec<String> = (others.iter()).map(|(s, n)| format!("{s} ({n})")).collect();
        foot.push_str(&format!("other stages' metrics: {}\n", list.join(", ")));
    }
    let extra = if sets.names().is_empty() {
        ""
    } else {
        " (with the same --variant)"
    };
    if !warnings.is_empty() {
        foot.push_str(&format!(
            "{} warnings (nasflow metrics --all shows them, as does nasflow report)\n",
            warnings.len()
        ));
    }
    foot.push_str(&format!("every metric: nasflow metrics --all{extra}, or --filter GLOB (e.g. --filter 'predict.rf.*')\n"));
    rows.join("\n") + "\n" + &crate::metrics::wrap_lines(&foot, terminal_width())
}

/// The columns in the format asked for.
fn format_columns(order: &[String], cols: &[Column], show: &Show) -> Result<String> {
    use crate::metrics::{changed, long, number, render, render_long, render_narrow};
    let rows: Vec<_> = long(order, cols)
        .into_iter()
        .filter(|(stage, _, name, _)| !show.changed || changed(cols, stage, name))
        .collect();
    Ok(match show.format {
        MetricsFormat::Table => {
            let text = render(order, cols, show.changed, show.by_value);
            let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            let width = terminal_width();
            if widest <= width {
                text
            } else if cols.len() == 1 {
                render_narrow(order, cols, show.by_value, width)
            } else {
                render_long(order, cols, show.changed, show.by_value, width)
            }
        }
        MetricsFormat::Csv | MetricsFormat::Tsv => {
            let sep = if show.format == MetricsFormat::Csv {
                ','
            } else {
                '\t'
            };
            let mut out = format!("stage{sep}column{sep}metric{sep}unit{sep}value\n");
            for (stage, label, name, v) in rows {
                let unit = crate::metrics::unit_in(cols, &stage, &name);
                let cells = [stage, label, name, unit, number(v).to_string()];
                let cells: Vec<String> = cells.iter().map(|c| quote(c, sep)).collect();
                out.push_str(&cells.join(&sep.to_string()));
                out.push('\n');
            }
            out
        }
        MetricsFormat::Jsonl => rows
            .into_iter()
            .map(|(stage, column, metric, v)| {
                let unit = crate::metrics::unit_in(cols, &stage, &metric);
                let row = json!({"stage": stage, "column": column, "metric": metric,
                                 "unit": unit, "value": number(v)});
                row.to_string() + "\n"
            })
            .collect(),
        MetricsFormat::Json => {
            let v: Vec<_> = cols
                .iter()
                .map(|c| {
                    let stages: serde_json::Map<String, serde_json::Value> = (c.stages.iter())
                        .map(|(s, m)| {
                            let m = m.as_ref().map(|m| {
                                let kept = m
                                    .iter()
                                    .filter(|(n, _)| !show.changed || changed(cols, s, n));
                                kept.map(|(n, v)| (n.clone(), number(*v)))
                                    .collect::<serde_json::Map<_, _>>()
                            });
                            (s.clone(), json!(m))
                        })
                        .collect();
                    let units: serde_json::Map<String, serde_json::Value> = (c.stages.iter())
                        .filter_map(|(s, m)| Some((s, m.as_ref()?)))
                        .map(|(s, m)| {
                            let u = (m.keys())
                                .map(|n| (n.clone(), json!(crate::metrics::unit_in(cols, s, n))))
                                .collect::<serde_json::Map<_, _>>();
                            (s.clone(), json!(u))
                        })
                        .collect();
                    json!({"label": c.label, "stages": stages, "units": units})
                })
                .collect();
            serde_json::to_string_pretty(&json!({ "columns": v }))? + "\n"
        }
    })
}

/// A CSV/TSV cell, quoted where it holds the separator, a quote or a line break.
fn quote(cell: &str, sep: char) -> String {
    if cell.contains([sep, '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// The terminal's width: `$COLUMNS`, the terminal's own on a terminal, else unlimited (a pipe
/// gets the whole table).
fn terminal_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return n;
    }
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return usize::MAX;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        100
    }
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
