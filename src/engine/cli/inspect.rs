//! The commands that look without running: plan, status, why, show, log, params, dag.
use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Result;
use nasflow_contract::params::{describe, range};
use nasflow_contract::{Declaration, ParamType};
use serde_json::json;

use super::project::{planned, Action, Planned, Project};
use super::UsageError;
use crate::cache::{Cache, FileEntry, StageRecord};
use crate::key::DirtyReason;
use crate::registry::Registry;

pub fn plan(
    project: &Project,
    targets: &[String],
    force: &[String],
    json: bool,
) -> Result<ExitCode> {
    let closure = project.closure(targets)?;
    let (_, plan) = planned(project, &closure, &project.force_set(force)?)?;
    let why = |s: &Planned| -> Vec<String> { s.reasons.iter().map(ToString::to_string).collect() };
    if json {
        let stages: Vec<_> = plan
            .iter()
            .map(|s| json!({"name": project.p.decl(s.stage).name, "action": s.action.name(), "reasons": why(s)}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "stages": stages }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in &plan {
        let name = &project.p.decl(s.stage).name;
        println!("{:<7} {name:<16} {}", s.action.name(), why(s).join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(project: &Project, json: bool) -> Result<ExitCode> {
    // Looking creates nothing: with no cache directory yet, plan against an empty scratch one.
    let dir = &project.p.cache_dir;
    let exists = dir.exists();
    let scratch = (!exists).then(tempfile::tempdir).transpose()?;
    let cache = match &scratch {
        None => project.cache()?,
        Some(s) => crate::cache::Cache::open(s.path())?,
    };
    let (_, plan) =
        super::project::planned_in(project, cache, project.dag.order(), &HashSet::new())?;
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let state = |s: &Planned| {
        if s.action == Action::Cached {
            "cached"
        } else {
            "stale"
        }
    };
    if json {
        let stages: Vec<_> = plan
            .iter()
            .map(|s| {
                let st = &project.p.decl(s.stage);
                json!({"name": st.name, "kind": st.kind, "state": state(s),
                       "key": s.key, "reasons": s.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                       "ended": s.record.as_ref().map(|r| r.provenance.ended.clone())})
            })
            .collect();
        let v = json!({ "pipeline": project.p.name, "cache": shown, "cache_exists": exists,
                        "stages": stages });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("pipeline {} ({})", project.p.name, project.p.file.display());
    if exists {
        println!("cache {}", shown.display());
    } else {
        println!(
            "cache {} (does not exist yet: nothing computed; `nasflow run` creates it)",
            shown.display()
        );
    }
    for s in &plan {
        let st = &project.p.decl(s.stage);
        let detail = match &s.record {
            Some(r) => format!(
                "computed {} in {:.2}s",
                r.provenance.ended, r.provenance.duration_s
            ),
            None => s
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        println!("  {:<16} {:<12} {:<7} {detail}", st.name, st.kind, state(s));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn why(project: &Project, stage: &str) -> Result<ExitCode> {
    let i = project.stage_index(stage)?;
    let closure = project.dag.closure(&[i]);
    let (_, plan) = planned(project, &closure, &HashSet::new())?;
    let s = plan
        .iter()
        .find(|s| s.stage == i)
        .expect("stage in its closure");
    if let (Action::Cached, Some(r)) = (&s.action, &s.record) {
        println!(
            "`{stage}` is up to date: cached result from {} (key {})",
            r.provenance.ended,
            &r.key[..16]
        );
        if let Some(old) = &r.provenance.replaced {
            println!(
                "note: `{stage}` is not deterministic: its last forced rerun under this key gave other outputs (output digest {}, was {})",
                &r.output_digest.as_str()[..16],
                &old.as_str()[..16]
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("`{stage}` would run:");
    for r in &s.reasons {
        println!("  - {r}");
        if let DirtyReason::UpstreamPending { dep } = r {
            println!("    (see `nasflow why {dep}`)");
        }
    }
    match &s.compared {
        Some(c) => println!(
            "compared with its closest record: key {} (computed {})",
            &c.key[..16],
            c.ended
        ),
        None => println!("(`{stage}` has no record in this cache)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The stage's current record, or else its newest one (`false`: not current).
fn record_to_show(
    project: &Project,
    stage: &str,
) -> Result<(Cache, std::sync::Arc<StageRecord>, bool)> {
    let i = project.stage_index(stage)?;
    let closure = project.dag.closure(&[i]);
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let current = plan
        .iter()
        .find(|s| s.stage == i)
        .and_then(|s| s.record.clone());
    if let Some(r) = current {
        return Ok((cache, r, true));
    }
    match cache.last_record(stage) {
        Some(r) => Ok((cache, std::sync::Arc::new(r), false)),
        None => Err(UsageError(format!(
            "stage `{stage}` has no result yet: run `nasflow run {stage}`"
        ))
        .into()),
    }
}

pub fn show(project: &Project, stage: &str, (json, path): (bool, bool)) -> Result<ExitCode> {
    let (cache, record, is_current) = record_to_show(project, stage)?;
    let i = project.stage_index(stage)?;
    let runner = crate::runner::child::ChildProcess::new();
    let dir = project.engine(&cache, &runner).output_dir(i, &record)?;
    if path {
        println!("{}", dir.display());
        if !is_current {
            eprintln!("note: `{stage}` has no current result; this is its last record (exit 1)");
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let mut v = serde_json::to_value(&*record)?;
        v["out_dir"] = json!(dir);
        v["current"] = json!(is_current);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let p = &record.provenance;
    println!("stage    {stage} ({})", project.p.decl(i).kind);
    if !is_current {
        println!("note     the pipeline has changed since: this is the last record, not a current result");
    }
    println!("key      {}", record.key);
    println!("output   {}", dir.display());
    println!("digest   {}", record.output_digest);
    println!(
        "computed {} -> {} ({:.2}s) on {} ({}), peak {:.1} MiB",
        p.started,
        p.ended,
        p.duration_s,
        p.device,
        p.host,
        p.peak_rss_bytes as f64 / 1048576.0
    );
    println!(
        "versions nasflow {}, libtorch {}",
        p.nasflow_version, p.libtorch_version
    );
    println!(
        "params   {}",
        serde_json::to_string(&record.key_inputs.params)?
    );
    if !record.items.is_empty() {
        println!("items    {}", record.items.len());
    }
    list_files("files", &record.files);
    if !p.files.is_empty() {
        list_files(
            "provenance (not part of the output; `nasflow log` prints the logs)",
            &p.files,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list_files(title: &str, files: &[FileEntry]) {
    println!("{title:<8} {}", files.len());
    for f in files.iter().take(50) {
        println!("  {:>12}  {}", f.size, f.path);
    }
    if files.len() > 50 {
        println!("  ... and {} more", files.len() - 50);
    }
}

/// Prints the stdout and stderr logs of a stage's run (each item's, or one item's).
pub fn log(
    project: &Project,
    stage: &str,
    item: Option<usize>,
    file: Option<&str>,
) -> Result<ExitCode> {
    let (cache, record, _) = record_to_show(project, stage)?;
    let logs = |f: &&FileEntry| match file {
        Some(name) => f.path == name || f.path.ends_with(&format!("/{name}")),
        None => f.path.ends_with(".log"),
    };
    let prefix = item.map(|n| format!("{}/", nasflow_contract::layout::item_dir(n)));
    let chosen: Vec<&FileEntry> = record
        .provenance
        .files
        .iter()
        .filter(logs)
        .filter(|f| prefix.as_ref().is_none_or(|p| f.path.starts_with(p)))
        .collect();
    if chosen.is_empty() {
        match file {
            Some(name) => {
                let have: Vec<&str> = record.provenance.files.iter().map(|f| f.path.as_str()).collect();
                anyhow::bail!("`{stage}`'s provenance has no `{name}`; it has: {}", have.join(", "));
            }
            None => eprintln!("`{stage}`'s record keeps no logs (it was computed before nasflow kept them, or printed and reported nothing)"),
        }
    }
    for f in chosen {
        let text = std::fs::read_to_string(cache.blob_path(&f.digest)).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        println!("==> {} <==", f.path);
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn dag(project: &Project, format: &str) -> Result<ExitCode> {
    print!("{}", crate::dag::render(&project.p, &project.dag, format));
    Ok(ExitCode::SUCCESS)
}

/// `nasflow params [KIND]`: every param of each kind, from its typed declaration.
pub fn params(reg: &Registry, kind: Option<&str>, markdown: bool, json: bool) -> Result<ExitCode> {
    let decls: Vec<&dyn Declaration> = reg
        .declarations()
        .filter(|d| kind.is_none_or(|k| d.info().name == k))
        .collect();
    if let (Some(k), true) = (kind, decls.is_empty()) {
        let help = crate::config::did_you_mean(k, &reg.names())
            .unwrap_or_else(|| format!("kinds: {}", reg.names().join(", ")));
        return Err(UsageError(format!("no stage kind `{k}` with params\n  help: {help}")).into());
    }
    if json {
        let v: Vec<_> = decls.iter().map(|d| params_json(*d)).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for d in decls {
            print!(
                "{}",
                if markdown {
                    params_markdown(d)
                } else {
                    params_text(d)
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn type_name(p: &nasflow_contract::ParamDoc) -> String {
    let t = describe(&p.ty, p);
    t.strip_prefix("an ")
        .or_else(|| t.strip_prefix("a "))
        .unwrap_or(&t)
        .to_string()
}

fn choices_doc(ty: &ParamType) -> Vec<String> {
    match ty {
        ParamType::Choice(c) => c
            .iter()
            .filter(|c| !c.doc.is_empty())
            .map(|c| format!("\"{}\": {}", c.value, c.doc))
            .collect(),
        ParamType::List(inner) => choices_doc(inner),
        _ => Vec::new(),
    }
}

/// A default as TOML would spell it; `unset` for an optional param without one.
fn default_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unset".into(),
        v => v.to_string(),
    }
}

fn params_text(d: &dyn Declaration) -> String {
    let info = d.info();
    let mut out = format!("{} (version {}): {}\n", info.name, info.version, info.doc);
    for p in &d.schema().params {
        let keyed = if p.keyed {
            ""
        } else {
            " (not part of the key)"
        };
        out.push_str(&format!(
            "  {:<22} {}, default {}{keyed}\n",
            p.name,
            type_name(p),
            default_text(&p.default)
        ));
        out.push_str(&format!("  {:<22}   {}\n", "", p.doc));
        for c in choices_doc(&p.ty) {
            out.push_str(&format!("  {:<22}     {c}\n", ""));
        }
    }
    out.push('\n');
    out
}

/// The kind's params as the README shows them.
pub fn params_markdown(d: &dyn Declaration) -> String {
    let mut out = String::from("| param | type | default | meaning |\n|---|---|---|---|\n");
    for p in &d.schema().params {
        let mut doc = p.doc.clone();
        let choices = choices_doc(&p.ty);
        if !choices.is_empty() {
            doc.push_str(&format!(" ({})", choices.join("; ")));
        }
        if !p.keyed {
            doc.push_str(" (not part of the key)");
        }
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            p.name,
            cell(&type_name(p)),
            cell(&default_text(&p.default)),
            cell(&doc)
        ));
    }
    out
}

fn params_json(d: &dyn Declaration) -> serde_json::Value {
    let info = d.info();
    let params: Vec<_> = d
        .schema()
        .params
        .iter()
        .map(|p| {
            json!({"name": p.name, "type": type_name(p), "default": p.default, "range": range(p),
                   "allowed": choices_doc(&p.ty), "doc": p.doc, "keyed": p.keyed})
        })
        .collect();
    json!({"kind": info.name, "version": info.version, "doc": info.doc, "item_level": info.item_level, "params": params})
}
