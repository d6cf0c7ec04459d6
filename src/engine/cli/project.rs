//! A loaded pipeline with its DAG, and what every command does with it first.
use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;

use super::args::Sets;
use super::UsageError;
use crate::cache::lock::Lock;
use crate::cache::Cache;
use crate::config::StageId;
use crate::config::{self, Override, Pipeline};
use crate::dag::Dag;
pub use crate::decide::{Action, Planned};
use crate::engine::Engine;
use crate::registry::Registry;
use crate::runner::child::ChildProcess;
use crate::runner::Runner;

pub struct Project<'r> {
    pub p: Pipeline,
    pub dag: Dag,
    pub reg: &'r Registry,
}

impl<'r> Project<'r> {
    pub fn load(reg: &'r Registry, file: &Path, sets: &[Override]) -> Result<Project<'r>> {
        let p = config::load(file, reg, sets)?;
        let dag = Dag::build(&p)?;
        Ok(Project { p, dag, reg })
    }

    pub fn cache(&self) -> Result<Cache> {
        Ok(Cache::open(&self.p.cache_dir)?)
    }

    pub fn closure(&self, targets: &[String]) -> Result<Vec<StageId>> {
        let t = self.dag.targets(&self.p, targets)?;
        Ok(self.dag.closure(&t))
    }

    pub fn stage_index(&self, name: &str) -> Result<StageId> {
        Ok(self.dag.targets(&self.p, &[name.to_string()])?[0])
    }

    pub fn force_set(&self, force: &[String]) -> Result<HashSet<StageId>> {
        force.iter().map(|f| self.stage_index(f)).collect()
    }

    pub fn engine<'a>(&'a self, cache: &'a Cache, runner: &'a dyn Runner) -> Engine<'a> {
        Engine::new(&self.p, &self.dag, self.reg, cache, runner)
    }
}

/// The cache and the plan of `closure`.
pub fn planned(
    project: &Project,
    closure: &[StageId],
    force: &HashSet<StageId>,
) -> Result<(Cache, Vec<Planned>)> {
    planned_in(project, project.cache()?, closure, force)
}

/// [`planned`] against a given cache (`status` plans against an empty scratch cache when the
/// pipeline's does not exist yet, so that looking creates nothing).
pub fn planned_in(
    project: &Project,
    cache: Cache,
    closure: &[StageId],
    force: &HashSet<StageId>,
) -> Result<(Cache, Vec<Planned>)> {
    let runner = ChildProcess::new();
    let engine = project.engine(&cache, &runner);
    let plan = crate::decide::plan(&engine, closure, force)?;
    engine.save_statcache()?;
    Ok((cache, plan))
}

/// Runs take this lock shared; gc and verify take it exclusively.
pub fn store_lock(cache: &Cache, exclusive: bool) -> Result<Lock> {
    let wait =
        || eprintln!("waiting for another nasflow process using the cache (gc, verify or run)...");
    let of = crate::cache::lock::LockOf::Store;
    Ok(crate::publish::lock(cache, of, exclusive, wait)?)
}

/// The pipelines a command works on: the file with `--set`, or one per selected variant (the
/// variant's overrides after `--set`), each with its label.
pub fn selected(file: &Path, sets: &Sets) -> Result<Vec<(String, Vec<Override>)>> {
    let names = sets.names();
    if names.is_empty() {
        return Ok(vec![(String::new(), sets.sets.clone())]);
    }
    let all = crate::variants::load(file)?;
    let chosen = crate::variants::select(&all, &names).map_err(UsageError)?;
    Ok(chosen
        .into_iter()
        .map(|v| {
            let mut o = sets.sets.clone();
            o.extend(v.overrides.iter().cloned());
            (v.name.clone(), o)
        })
        .collect())
}

/// One pipeline: the file with `--set` and at most one variant.
pub fn load_one<'r>(reg: &'r Registry, file: &Path, sets: &Sets) -> Result<Project<'r>> {
    let mut sel = selected(file, sets)?;
    if sel.len() > 1 {
        let names: Vec<&str> = sel.iter().map(|s| s.0.as_str()).collect();
        return Err(UsageError(format!(
            "this command takes one variant; {} were selected ({})",
            sel.len(),
            names.join(", ")
        ))
        .into());
    }
    let (_, overrides) = sel.remove(0);
    Project::load(reg, file, &overrides)
}
