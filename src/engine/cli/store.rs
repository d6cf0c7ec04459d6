//! The commands that change the store: gc and `nasflow cache ...`.
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::CacheCommand;
use super::project::{planned, store_lock, Project};
use super::run::{pull, push};
use crate::cache::gc::Roots;
use crate::registry::Registry;
use crate::runner::child::ChildProcess;

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn gc(project: &Project, keep: usize, dry_run: bool) -> Result<ExitCode> {
    let cache = project.cache()?;
    let _store = store_lock(&cache, true)?;
    let runner = ChildProcess::new();
    let engine = project.engine(&cache, &runner);
    let plan = crate::decide::plan(&engine, project.dag.order(), &HashSet::new())?;
    let mut roots = Roots::default();
    for s in &plan {
        let name = project.p.decl(s.stage).name.clone();
        match &s.record {
            Some(r) => {
                roots.records.insert((name, r.key.to_string()));
            }
            None if project.p.decl(s.stage).foreach.is_some() => {
                roots.stages_in_progress.insert(name);
            }
            None => {}
        }
    }
    let r = cache.gc(&roots, keep, dry_run)?;
    if !dry_run {
        super::results::prune(&project.p.root)?;
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "gc: {verb} {} records, {} item records, {} blobs, {} partial downloads ({:.1} MiB); kept {} records",
        r.records_removed,
        r.items_removed,
        r.blobs_removed,
        r.partials_removed,
        r.bytes_freed as f64 / 1048576.0,
        r.records_kept
    );
    Ok(ExitCode::SUCCESS)
}

pub fn cache_command(reg: &Registry, file: &Path, c: CacheCommand) -> Result<ExitCode> {
    let project = Project::load(reg, file, &[])?;
    match c {
        CacheCommand::Key { targets } => key(&project, &targets),
        CacheCommand::Export {
            file: bundle,
            targets,
        } => export(&project, &bundle, &targets),
        CacheCommand::Push { remote, targets } => {
            let r = crate::cache::remote::open(&remote, true)?;
            Ok(code(push(&project, r.as_ref(), &targets)?))
        }
        CacheCommand::Pull { remote, targets } => {
            let r = crate::cache::remote::open(&remote, false)?;
            Ok(code(pull(&project, r.as_ref(), &targets)?))
        }
        CacheCommand::Import { file: bundle } => import(&project, &bundle),
        CacheCommand::Verify { dry_run } => verify(&project, dry_run),
    }
}

/// `nasflow cache key`: a key of the targets' definitions, for CI cache services.
fn key(project: &Project, targets: &[String]) -> Result<ExitCode> {
    let closure = project.closure(targets)?;
    let cache = project.cache()?;
    let runner = ChildProcess::new();
    let engine = project.engine(&cache, &runner);
    let key = engine.definition_key(&closure)?;
    engine.save_statcache()?;
    println!("nasflow-{}", &key[..32]);
    Ok(ExitCode::SUCCESS)
}

fn export(project: &Project, bundle: &Path, targets: &[String]) -> Result<ExitCode> {
    let closure = project.closure(targets)?;
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let mut records = Vec::new();
    let mut items = Vec::new();
    for s in &plan {
        let name = &project.p.decl(s.stage).name;
        let Some(r) = &s.record else {
            eprintln!("warning: `{name}` has no current result and is not exported (run it first)");
            continue;
        };
        for it in &r.items {
            items.extend(cache.read_item(name, &it.key)?);
        }
        records.push((**r).clone());
    }
    let blobs = cache
        .export(&records, &items, bundle)
        .with_context(|| format!("exporting to {}", bundle.display()))?;
    println!(
        "exported {} records, {} item records, {blobs} blobs to {}",
        records.len(),
        items.len(),
        bundle.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn import(project: &Project, bundle: &Path) -> Result<ExitCode> {
    let cache = project.cache()?;
    let r = cache.import(bundle)?;
    println!(
        "imported {} records, {} item records, {} blobs from {}",
        r.records,
        r.items,
        r.blobs,
        bundle.display()
    );
    for why in &r.rejected {
        eprintln!("rejected {why}");
    }
    Ok(code(r.rejected.is_empty()))
}

fn verify(project: &Project, dry_run: bool) -> Result<ExitCode> {
    let cache = project.cache()?;
    let _store = store_lock(&cache, true)?;
    let total = cache.blob_digests()?.len();
    let corrupt = cache.verify_blobs(dry_run)?;
    for d in &corrupt {
        let note = if dry_run { "" } else { " (dropped)" };
        eprintln!("corrupt blob {d}{note}");
    }
    let dropped = if dry_run { 0 } else { cache.drop_untrusted()? };
    println!("verify: {total} blobs checked, {} corrupt; {dropped} records dropped (the next run recomputes them)", corrupt.len());
    Ok(ExitCode::SUCCESS)
}
