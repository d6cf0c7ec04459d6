//! The commands behind the CLI. Library errors are typed; here they become `anyhow` errors, and
//! [`is_usage_error`] decides the exit code.
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use nasflow::cache::gc::Roots;
use nasflow::cache::lock::Lock;
use nasflow::cache::remote::Store;
use nasflow::cache::Cache;
use nasflow::config::{self, ConfigError, Override, Pipeline};
use nasflow::dag::{self, Dag, UnknownTarget};
use nasflow::exec::{RunOptions, Status};
use nasflow::metrics::Column;
use nasflow::plan::{Action, Engine, EngineError, Planned};
use nasflow::progress::Ui;
use nasflow::registry::Registry;
use nasflow::slurm::ExecutorKind;

use crate::cli::{CacheCommand, Cli, Command, Sets};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Bad usage or config: exit code 2.
pub fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<ConfigError>()
            || e.is::<UnknownTarget>()
            || e.is::<UsageError>()
            || e.downcast_ref::<EngineError>()
                .is_some_and(EngineError::is_usage)
    })
}

struct Project {
    p: Pipeline,
    dag: Dag,
    reg: Registry,
}

impl Project {
    fn load(file: &Path, sets: &[Override]) -> Result<Project> {
        let reg = Registry::builtin();
        let p = config::load(file, &reg, sets)?;
        let dag = Dag::build(&p)?;
        Ok(Project { p, dag, reg })
    }

    fn cache(&self) -> Result<Cache> {
        Ok(Cache::open(&self.p.cache_dir)?)
    }

    fn closure(&self, targets: &[String]) -> Result<Vec<usize>> {
        let t = self.dag.targets(&self.p, targets)?;
        Ok(self.dag.closure(&t))
    }

    fn stage_index(&self, name: &str) -> Result<usize> {
        Ok(self.dag.targets(&self.p, &[name.to_string()])?[0])
    }
}

/// Runs take this lock shared; gc and verify take it exclusively.
fn store_lock(cache: &Cache, exclusive: bool) -> Result<Lock> {
    let path = cache.root().join("locks").join("store.lock");
    let wait =
        || eprintln!("waiting for another nasflow process using the cache (gc, verify or run)...");
    Ok(if exclusive {
        Lock::exclusive(&path, wait)?
    } else {
        Lock::shared(&path, wait)?
    })
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            targets,
            sets,
            jobs,
            force,
            dry_run,
            remote,
            executor,
        } => {
            let variants = selected(&cli.pipeline, &sets)?;
            let many = variants.len() > 1 || !variants[0].0.is_empty();
            let mut code = ExitCode::SUCCESS;
            for (name, overrides) in variants {
                if many {
                    eprintln!("== variant {name}");
                }
                let mut project = Project::load(&cli.pipeline, &overrides)?;
                match executor.as_deref() {
                    Some("local") => project.p.executor.kind = ExecutorKind::Local,
                    Some("slurm") => project.p.executor.kind = ExecutorKind::Slurm,
                    _ => {}
                }
                // The remote is a help, never a reason to fail: problems with it are reported
                // and the run goes on locally.
                let remote = match &remote {
                    Some(dir) if !dry_run => match nasflow::cache::remote::open(dir) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            eprintln!("remote {dir} unavailable, running locally: {e}");
                            None
                        }
                    },
                    _ => None,
                };
                if let Some(r) = &remote {
                    if let Err(e) = pull(&project, r.as_ref(), &targets) {
                        eprintln!("remote {}: fetching stopped: {e:#}", r.describe());
                    }
                }
                let c = if dry_run {
                    plan(&project, &targets, &force, false)?
                } else {
                    run(&project, &targets, jobs, &force)?
                };
                if let Some(r) = &remote {
                    if let Err(e) = push(&project, r.as_ref(), &targets) {
                        eprintln!("not uploaded (remote {}): {e:#}", r.describe());
                    }
                }
                if c != ExitCode::SUCCESS {
                    code = c;
                }
                if nasflow::interrupt::requested() {
                    return Ok(ExitCode::from(130));
                }
            }
            Ok(code)
        }
        Command::Plan {
            targets,
            sets,
            json,
        } => plan(&load_one(&cli.pipeline, &sets)?, &targets, &[], json),
        Command::Why { stage, sets } => why(&load_one(&cli.pipeline, &sets)?, &stage),
        Command::Status { sets, json } => status(&load_one(&cli.pipeline, &sets)?, json),
        Command::Dag { format } => {
            let project = Project::load(&cli.pipeline, &[])?;
            print!("{}", dag::render(&project.p, &project.dag, &format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { stage, sets, json } => show(&load_one(&cli.pipeline, &sets)?, &stage, json),
        Command::Metrics {
            stages,
            sets,
            compare,
            compare_set,
            json,
        } => metrics(&cli.pipeline, &stages, &sets, &compare, &compare_set, json),
        Command::Gc { dry_run, keep } => gc(&Project::load(&cli.pipeline, &[])?, keep, dry_run),
        Command::Cache(c) => cache_command(&cli.pipeline, c),
        Command::SlurmTask { manifest, task } => match nasflow::slurm::task::run(&manifest, task) {
            Ok(done) => {
                eprintln!("nasflow slurm-task: {done}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}

/// The pipelines a command works on: the file with `--set`, or one per selected variant (the
/// variant's overrides after `--set`), each with its label.
fn selected(file: &Path, sets: &Sets) -> Result<Vec<(String, Vec<Override>)>> {
    let names = sets.names();
    if names.is_empty() {
        return Ok(vec![(String::new(), sets.sets.clone())]);
    }
    let all = nasflow::variants::load(file)?;
    let chosen = nasflow::variants::select(&all, &names).map_err(UsageError)?;
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
fn load_one(file: &Path, sets: &Sets) -> Result<Project> {
    let mut sel = selected(file, sets)?;
    if sel.len() > 1 {
        return Err(UsageError(format!(
            "this command takes one variant; {} were selected ({})",
            sel.len(),
            sel.iter()
                .map(|s| s.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let (_, overrides) = sel.remove(0);
    Project::load(file, &overrides)
}

/// Uploads the current results of the targets' closure to `remote`; reports what was not
/// uploaded. True when everything was.
fn push(project: &Project, remote: &dyn Store, targets: &[String]) -> Result<bool> {
    let closure = project.closure(targets)?;
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let records: Vec<_> = plan
        .iter()
        .filter_map(|s| s.record.as_deref().cloned())
        .collect();
    let t = cache.push(remote, &records)?;
    eprintln!(
        "remote {}: uploaded {} records, {} blobs",
        remote.describe(),
        t.records,
        t.blobs
    );
    for why in &t.failed {
        eprintln!("not uploaded: {why}");
    }
    Ok(t.failed.is_empty())
}

/// Fetches from `remote` every result the targets' closure would otherwise compute, stage by
/// stage in order (a fetched stage's output fixes its downstream keys). True when nothing failed.
fn pull(project: &Project, remote: &dyn Store, targets: &[String]) -> Result<bool> {
    let closure = project.closure(targets)?;
    let (mut records, mut blobs, mut ok) = (0, 0, true);
    let mut tried = HashSet::new();
    loop {
        let (cache, plan) = planned(project, &closure, &HashSet::new())?;
        let mut progress = false;
        for s in &plan {
            let (None, Some(key)) = (&s.record, &s.key) else {
                continue;
            };
            let name = &project.p.stages[s.stage].name;
            if !tried.insert((name.clone(), key.clone())) {
                continue;
            }
            match cache.fetch(remote, name, key)? {
                None => {}
                Some(Ok(n)) => {
                    records += 1;
                    blobs += n;
                    progress = true;
                }
                Some(Err(why)) => {
                    ok = false;
                    eprintln!("not fetched: {why}");
                }
            }
        }
        if !progress {
            break;
        }
    }
    eprintln!(
        "remote {}: fetched {records} records, {blobs} blobs",
        remote.describe()
    );
    Ok(ok)
}

fn force_set(project: &Project, force: &[String]) -> Result<HashSet<usize>> {
    force.iter().map(|f| project.stage_index(f)).collect()
}

fn run(
    project: &Project,
    targets: &[String],
    jobs: Option<usize>,
    force: &[String],
) -> Result<ExitCode> {
    let start = Instant::now();
    let closure = project.closure(targets)?;
    let force = force_set(project, force)?;
    let cache = project.cache()?;
    let _store = store_lock(&cache, false)?;
    cache.sweep_staging()?;
    let engine = Engine::new(&project.p, &project.dag, &project.reg, &cache);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let jobs = jobs.or(project.p.jobs).unwrap_or(cores).max(1);
    let ui = Ui::new();
    let outcomes = engine.run(&closure, &RunOptions { jobs, force }, &ui)?;
    let count = |f: fn(&Status) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
    let (ran, cached) = (
        count(|s| *s == Status::Ran),
        count(|s| *s == Status::Cached),
    );
    let failed = count(|s| matches!(s, Status::Failed(_) | Status::Skipped(_)));
    eprintln!(
        "summary: {ran} ran, {cached} cached, {failed} failed ({:.2}s)",
        start.elapsed().as_secs_f64()
    );
    for o in &outcomes {
        let name = &project.p.stages[o.stage].name;
        let items = if o.items_ran + o.items_cached > 0 {
            format!("  items: {} ran, {} cached", o.items_ran, o.items_cached)
        } else {
            String::new()
        };
        let status = match &o.status {
            Status::Cached => "cached".to_string(),
            Status::Ran => format!("ran     {:>8.2}s", o.seconds),
            Status::Failed(_) => "FAILED".to_string(),
            Status::Skipped(dep) => format!("skipped (upstream `{dep}` failed)"),
        };
        eprintln!("  {name:<16} {status}{items}");
    }
    for o in &outcomes {
        if let Status::Failed(report) = &o.status {
            eprintln!(
                "\nstage `{}` failed: {report}",
                project.p.stages[o.stage].name
            );
        }
    }
    if nasflow::interrupt::requested() {
        eprintln!("\ninterrupted (Ctrl-C): Slurm arrays cancelled; finished items are kept, `nasflow run` continues from them");
        return Ok(ExitCode::from(130));
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn planned(
    project: &Project,
    closure: &[usize],
    force: &HashSet<usize>,
) -> Result<(Cache, Vec<Planned>)> {
    let cache = project.cache()?;
    let engine = Engine::new(&project.p, &project.dag, &project.reg, &cache);
    let plan = engine.plan(closure, force)?;
    engine.save_statcache()?;
    Ok((cache, plan))
}

fn plan(project: &Project, targets: &[String], force: &[String], json: bool) -> Result<ExitCode> {
    let closure = project.closure(targets)?;
    let (_, plan) = planned(project, &closure, &force_set(project, force)?)?;
    if json {
        let stages: Vec<_> = plan
            .iter()
            .map(|s| json!({"name": project.p.stages[s.stage].name, "action": action_name(s.action), "reasons": s.reasons.iter().map(ToString::to_string).collect::<Vec<_>>()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "stages": stages }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in &plan {
        let name = &project.p.stages[s.stage].name;
        let why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
        println!("{:<7} {name:<16} {}", action_name(s.action), why.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Cached => "cached",
        Action::Run => "run",
    }
}

fn status(project: &Project, json: bool) -> Result<ExitCode> {
    let (_, plan) = planned(project, project.dag.order(), &HashSet::new())?;
    if json {
        let stages: Vec<_> = plan
            .iter()
            .map(|s| {
                let st = &project.p.stages[s.stage];
                json!({"name": st.name, "kind": st.kind, "state": if s.action == Action::Cached { "cached" } else { "stale" },
                       "key": s.key, "reasons": s.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                       "ended": s.record.as_ref().map(|r| r.provenance.ended.clone())})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "pipeline": project.p.name, "stages": stages }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("pipeline {} ({})", project.p.name, project.p.file.display());
    for s in &plan {
        let st = &project.p.stages[s.stage];
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
        let state = if s.action == Action::Cached {
            "cached"
        } else {
            "stale"
        };
        println!("  {:<16} {:<12} {state:<7} {detail}", st.name, st.kind);
    }
    Ok(ExitCode::SUCCESS)
}

fn why(project: &Project, stage: &str) -> Result<ExitCode> {
    let i = project.stage_index(stage)?;
    let closure = project.dag.closure(&[i]);
    let (_, plan) = planned(project, &closure, &HashSet::new())?;
    let s = plan
        .iter()
        .find(|s| s.stage == i)
        .expect("stage in its closure");
    match (&s.action, &s.record) {
        (Action::Cached, Some(r)) => println!(
            "`{stage}` is up to date: cached result from {} (key {})",
            r.provenance.ended,
            &r.key[..16]
        ),
        _ => {
            println!("`{stage}` would run:");
            for r in &s.reasons {
                println!("  - {r}");
                if let nasflow::key::DirtyReason::UpstreamPending { dep } = r {
                    println!("    (see `nasflow why {dep}`)");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(project: &Project, stage: &str, json: bool) -> Result<ExitCode> {
    let i = project.stage_index(stage)?;
    let closure = project.dag.closure(&[i]);
    let (cache, plan) = planned(project, &closure, &HashSet::new())?;
    let current = plan
        .iter()
        .find(|s| s.stage == i)
        .and_then(|s| s.record.clone());
    let (record, is_current) = match current {
        Some(r) => (r, true),
        None => match cache.last_record(stage) {
            Some(r) => (std::sync::Arc::new(r), false),
            None => {
                return Err(UsageError(format!(
                    "stage `{stage}` has no result yet: run `nasflow run {stage}`"
                ))
                .into())
            }
        },
    };
    let engine = Engine::new(&project.p, &project.dag, &project.reg, &cache);
    let dir = engine.output_dir(i, &record)?;
    if json {
        let mut v = serde_json::to_value(&*record)?;
        v["out_dir"] = json!(dir);
        v["current"] = json!(is_current);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let p = &record.provenance;
    println!("stage    {stage} ({})", project.p.stages[i].kind);
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
    println!("files    {}", record.files.len());
    for f in record.files.iter().take(50) {
        println!("  {:>12}  {}", f.size, f.path);
    }
    if record.files.len() > 50 {
        println!("  ... and {} more", record.files.len() - 50);
    }
    Ok(ExitCode::SUCCESS)
}

/// One column of `nasflow metrics`: the summary numbers of the stages' current results.
fn metrics_column(project: &Project, stages: &[String], label: String) -> Result<Column> {
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
            Some(r) => match r.files.iter().find(|f| f.path == "summary.json") {
                None => Some(Default::default()),
                Some(f) => {
                    let path = cache.blob_path(&f.digest);
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("reading {name}'s summary.json ({})", path.display())
                    })?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("{name}'s summary.json ({})", path.display()))?;
                    Some(nasflow::metrics::flatten(&v))
                }
            },
        };
        col.stages.insert(name, numbers);
    }
    Ok(col)
}

fn metrics(
    file: &Path,
    stages: &[String],
    all_sets: &Sets,
    compare: &[std::path::PathBuf],
    compare_set: &[Override],
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
    let base = Project::load(file, sets)?;
    let order: Vec<String> = base
        .dag
        .closure(&base.dag.targets(&base.p, stages)?)
        .into_iter()
        .map(|i| base.p.stages[i].name.clone())
        .filter(|n| stages.is_empty() || stages.contains(n))
        .collect();
    let mut cols = vec![metrics_column(&base, stages, label(file, sets))?];
    for other in compare {
        let p = Project::load(other, sets)?;
        cols.push(metrics_column(&p, stages, label(other, sets))?);
    }
    if !compare_set.is_empty() {
        let all: Vec<Override> = sets.iter().chain(compare_set).cloned().collect();
        let p = Project::load(file, &all)?;
        cols.push(metrics_column(&p, stages, label(file, &all))?);
    }
    if !all_sets.names().is_empty() {
        for (name, overrides) in selected(file, all_sets)? {
            let p = Project::load(file, &overrides)?;
            cols.push(metrics_column(&p, stages, format!("variant {name}"))?);
        }
    }
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
        print!("{}", nasflow::metrics::render(&order, &cols));
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(project: &Project, keep: usize, dry_run: bool) -> Result<ExitCode> {
    let cache = project.cache()?;
    let _store = store_lock(&cache, true)?;
    let engine = Engine::new(&project.p, &project.dag, &project.reg, &cache);
    let plan = engine.plan(project.dag.order(), &HashSet::new())?;
    let mut roots = Roots::default();
    for s in &plan {
        let name = project.p.stages[s.stage].name.clone();
        match &s.record {
            Some(r) => {
                roots.records.insert((name, r.key.clone()));
            }
            None if project.p.stages[s.stage].foreach.is_some() => {
                roots.stages_in_progress.insert(name);
            }
            None => {}
        }
    }
    let r = cache.gc(&roots, keep, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "gc: {verb} {} records, {} item records, {} blobs ({:.1} MiB); kept {} records",
        r.records_removed,
        r.items_removed,
        r.blobs_removed,
        r.bytes_freed as f64 / 1048576.0,
        r.records_kept
    );
    Ok(ExitCode::SUCCESS)
}

fn cache_command(file: &Path, c: CacheCommand) -> Result<ExitCode> {
    match c {
        CacheCommand::Key { targets } => {
            let project = Project::load(file, &[])?;
            let closure = project.closure(&targets)?;
            let cache = project.cache()?;
            let engine = Engine::new(&project.p, &project.dag, &project.reg, &cache);
            let key = engine.definition_key(&closure)?;
            engine.save_statcache()?;
            println!("nasflow-{}", &key[..32]);
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Export {
            file: bundle,
            targets,
        } => {
            let project = Project::load(file, &[])?;
            let closure = project.closure(&targets)?;
            let (cache, plan) = planned(&project, &closure, &HashSet::new())?;
            let mut records = Vec::new();
            let mut items = Vec::new();
            for s in &plan {
                let name = &project.p.stages[s.stage].name;
                match &s.record {
                    Some(r) => {
                        for it in &r.items {
                            items.extend(cache.read_item(name, &it.key)?);
                        }
                        records.push((**r).clone());
                    }
                    None => eprintln!("warning: `{name}` has no current result and is not exported (run it first)"),
                }
            }
            let blobs = cache
                .export(&records, &items, &bundle)
                .with_context(|| format!("exporting to {}", bundle.display()))?;
            println!(
                "exported {} records, {} item records, {blobs} blobs to {}",
                records.len(),
                items.len(),
                bundle.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Push { remote, targets } => {
            let project = Project::load(file, &[])?;
            let r = nasflow::cache::remote::open(&remote)?;
            Ok(if push(&project, r.as_ref(), &targets)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CacheCommand::Pull { remote, targets } => {
            let project = Project::load(file, &[])?;
            let r = nasflow::cache::remote::open(&remote)?;
            Ok(if pull(&project, r.as_ref(), &targets)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CacheCommand::Import { file: bundle } => {
            let project = Project::load(file, &[])?;
            let cache = project.cache()?;
            let r = cache.import(&bundle)?;
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
            Ok(if r.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CacheCommand::Verify { dry_run } => {
            let project = Project::load(file, &[])?;
            let cache = project.cache()?;
            let _store = store_lock(&cache, true)?;
            let total = cache.blob_digests()?.len();
            let corrupt = cache.verify_blobs(dry_run)?;
            for d in &corrupt {
                eprintln!(
                    "corrupt blob {d}{}",
                    if dry_run { "" } else { " (dropped)" }
                );
            }
            let dropped = if dry_run {
                0
            } else {
                cache.drop_records_missing_blobs()?
            };
            println!("verify: {total} blobs checked, {} corrupt; {dropped} records dropped (the next run recomputes them)", corrupt.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
