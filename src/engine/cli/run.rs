//! `nasflow run`: the selected variants (at the same time, sharing the job and GPU slots), each
//! fetched from a remote first and uploaded after, then a summary each.
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::args::Sets;
use super::inspect;
use super::project::{planned, selected, store_lock, Project};
use crate::cache::remote::Store;
use crate::registry::Registry;
use crate::runner::child::ChildProcess;
use crate::runner::Runner;
use crate::schedule::{RunOptions, StageOutcome, Status};
use crate::slots::Slots;
use crate::slurm::{ExecutorKind, SlurmArrays};

pub struct RunArgs {
    pub targets: Vec<String>,
    pub sets: Sets,
    pub jobs: Option<usize>,
    pub force: Vec<String>,
    pub dry_run: bool,
    pub remote: Option<String>,
    pub executor: Option<String>,
}

pub fn run_variants(reg: &Registry, file: &Path, a: &RunArgs) -> Result<ExitCode> {
    // Nothing changed since the last run: answered from its memo (cli/noop.rs).
    if let Some(code) = super::noop::replay(file, a) {
        return Ok(code);
    }
    // The bytes the memo of this run will describe: read before the pipeline is loaded.
    let text = std::fs::read(file).unwrap_or_default();
    let variants = selected(file, &a.sets)?;
    let many = variants.len() > 1 || !variants[0].0.is_empty();
    let mut projects = Vec::new();
    for (name, overrides) in variants {
        let mut project = Project::load(reg, file, &overrides)?;
        match a.executor.as_deref() {
            Some("local") => project.p.executor.kind = ExecutorKind::Local,
            Some("slurm") => project.p.executor.kind = ExecutorKind::Slurm,
            _ => {}
        }
        projects.push((name, project));
    }
    if projects.len() > 1 && !a.dry_run {
        return run_together(&projects, a);
    }
    let mut code = ExitCode::SUCCESS;
    for (name, project) in &projects {
        if many {
            eprintln!("== variant {name}");
        }
        let memo = (!many).then_some(text.as_slice());
        let c = run_one(project, a, many.then_some(name.as_str()), None, memo)?;
        if c != ExitCode::SUCCESS {
            code = c;
        }
        if crate::interrupt::requested() {
            return Ok(ExitCode::from(130));
        }
    }
    Ok(code)
}

/// Several variants as one run: a scheduler each, sharing the job and GPU slots, so that
/// independent stages of different variants run at the same time; a stage they share runs
/// once (the others find it cached). Lines are tagged with the variant; each variant's
/// summary is printed whole under its `== variant` heading.
fn run_together(projects: &[(String, Project)], a: &RunArgs) -> Result<ExitCode> {
    let first = &projects[0].1;
    let slots = Arc::new(Slots::new(jobs(first, a.jobs), first.p.gpu_slots));
    let codes: Vec<Result<ExitCode>> = std::thread::scope(|scope| {
        let running: Vec<_> = projects
            .iter()
            .map(|(name, project)| {
                let slots = slots.clone();
                scope.spawn(move || run_one(project, a, Some(name), Some(slots), None))
            })
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a variant's run panicked")))
            })
            .collect()
    });
    if crate::interrupt::requested() {
        return Ok(ExitCode::from(130));
    }
    let mut code = ExitCode::SUCCESS;
    for c in codes {
        let c = c?;
        if c != ExitCode::SUCCESS {
            code = c;
        }
    }
    Ok(code)
}

/// `-j`, else `[pipeline] jobs`, else the machine's cores.
fn jobs(project: &Project, asked: Option<usize>) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    asked.or(project.p.jobs).unwrap_or(cores).max(1)
}

/// One pipeline: fetch from the remote, run (or plan), upload.
fn run_one(
    project: &Project,
    a: &RunArgs,
    variant: Option<&str>,
    shared: Option<Arc<Slots>>,
    memo: Option<&[u8]>,
) -> Result<ExitCode> {
    if a.dry_run {
        return inspect::plan(project, &a.targets, &a.force, false);
    }
    // The remote is a help, never a reason to fail: problems with it are reported and the
    // run goes on locally.
    let remote = match &a.remote {
        Some(dir) => match crate::cache::remote::open(dir, true) {
            Ok(r) => Some(r),
            Err(e) => {
                let dir = nasflow_contract::boundary::redact_url(dir);
                eprintln!("remote {dir} unavailable, running locally: {e}");
                None
            }
        },
        None => None,
    };
    if let Some(r) = &remote {
        if let Err(e) = pull(project, r.as_ref(), &a.targets) {
            eprintln!("remote {}: fetching stopped: {e:#}", r.describe());
        }
    }
    let memo = memo.map(|text| (a, text));
    let code = run(
        project,
        &a.targets,
        (a.jobs, &a.force),
        (variant, memo, !a.sets.sets.is_empty()),
        shared,
    )?;
    if let Some(r) = &remote {
        if let Err(e) = push(project, r.as_ref(), &a.targets) {
            eprintln!("not uploaded (remote {}): {e:#}", r.describe());
        }
    }
    Ok(code)
}

/// The run's pipeline bytes and arguments, for its no-op memo (a plain run only).
type Memo<'a> = Option<(&'a RunArgs, &'a [u8])>;

fn run(
    project: &Project,
    targets: &[String],
    (jobs, force): (Option<usize>, &[String]),
    (variant, memo, with_sets): (Option<&str>, Memo<'_>, bool),
    shared: Option<Arc<Slots>>,
) -> Result<ExitCode> {
    let start = Instant::now();
    let closure = project.closure(targets)?;
    let force = project.force_set(force)?;
    let cache = project.cache()?;
    let _store = store_lock(&cache, false)?;
    cache.sweep_staging()?;
    let runner: Box<dyn Runner> = match project.p.executor.slurm() {
        Some(s) => Box::new(SlurmArrays::new(s.clone(), project.p.device)),
        None => Box::new(ChildProcess::new()),
    };
    let engine = project.engine(&cache, runner.as_ref());
    let jobs = self::jobs(project, jobs);
    let together = shared.is_some();
    let ui = match variant {
        Some(name) if together => crate::progress::Ui::tagged(name),
        _ => crate::progress::Ui::new(),
    };
    let opts = RunOptions {
        jobs,
        force,
        slots: shared,
    };
    let outcomes = crate::schedule::run(&engine, &closure, &opts, &ui)?;
    let heading = variant.filter(|_| together);
    let failed = summarize(project, &outcomes, start, heading);
    if variant.is_none() && with_sets {
        // results/ shows pipeline.toml's results; a --set run says where its own are.
        if failed == 0 {
            super::headline::print(&summaries(&engine, &outcomes));
        }
        super::results::tell(project, &engine, &outcomes);
    } else {
        match super::results::refresh(project, &engine, &outcomes, variant) {
            Ok(()) => {
                if let Some((a, text)) = memo {
                    super::noop::remember(project, &engine, a, text, &outcomes);
                }
            }
            Err(e) => eprintln!("note: results/ not refreshed: {e:#}"),
        }
        if failed == 0 && variant.is_none() {
            super::headline::print(&summaries(&engine, &outcomes));
            eprint!("{}", next_steps(&project.p.root));
        }
    }
    if crate::interrupt::requested() {
        eprintln!("\ninterrupted (Ctrl-C): Slurm arrays cancelled; finished items are kept, `nasflow run` continues from them");
        return Ok(ExitCode::from(130));
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The summary files of the stages a run ran or found cached, in its order: their blobs in the
/// store, read as they are (no output view is built for them).
fn summaries(
    engine: &crate::engine::Engine,
    outcomes: &[StageOutcome],
) -> Vec<(String, std::path::PathBuf)> {
    use nasflow_contract::layout::SUMMARY;
    (outcomes.iter())
        .filter_map(|o| {
            let f = o
                .record
                .as_ref()?
                .files
                .iter()
                .find(|f| f.path == SUMMARY)?;
            Some((
                engine.name(o.stage).to_string(),
                engine.cache.blob_path(&f.digest),
            ))
        })
        .collect()
}

/// Where a successful plain run's results are, and the commands a user runs next.
pub fn next_steps(root: &Path) -> String {
    let results = root.join(super::results::RESULTS);
    format!(
        "results: {} (a link per stage to its outputs)\nnext: nasflow metrics | nasflow report | nasflow plots | nasflow log STAGE\n",
        results.display()
    )
}

/// Prints the run's summary, a line per stage, and each failure's report; returns how many
/// stages failed or were skipped.
fn summarize(
    project: &Project,
    outcomes: &[StageOutcome],
    start: Instant,
    heading: Option<&str>,
) -> usize {
    use std::fmt::Write as _;
    let count = |f: fn(&Status) -> bool| outcomes.iter().filter(|o| f(&o.status)).count();
    let ran = count(|s| *s == Status::Ran);
    let cached = count(|s| *s == Status::Cached);
    let failed = count(|s| matches!(s, Status::Failed(_) | Status::Skipped(_)));
    let empty = count(|s| *s == Status::NoItems);
    // Written at once: stderr is unbuffered, and a 1,000-stage no-op run prints 1,000 lines.
    let mut text = heading
        .map(|name| format!("== variant {name}\n"))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "summary: {ran} ran, {cached} cached, {failed} failed{} ({:.2}s)",
        match empty {
            0 => String::new(),
            n => format!(", {n} with no items"),
        },
        start.elapsed().as_secs_f64()
    );
    for o in outcomes {
        let name = &project.p.decl(o.stage).name;
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
            Status::NoItems => "no items (its `foreach` upstream lists none)".to_string(),
        };
        let _ = writeln!(text, "{}", stage_line(name, &status, &items));
    }
    for o in outcomes {
        if let Status::Failed(report) = &o.status {
            let name = &project.p.decl(o.stage).name;
            let _ = writeln!(text, "\nstage `{name}` failed: {report}");
        }
    }
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    failed
}

/// One stage's line of a run's summary.
pub(super) fn stage_line(name: &str, status: &str, items: &str) -> String {
    format!("  {name:<16} {status}{items}")
}

/// Uploads the current results of the targets' closure to `remote`; reports what was not
/// uploaded. True when everything was.
pub fn push(project: &Project, remote: &dyn Store, targets: &[String]) -> Result<bool> {
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
pub fn pull(project: &Project, remote: &dyn Store, targets: &[String]) -> Result<bool> {
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
            let name = &project.p.decl(s.stage).name;
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
