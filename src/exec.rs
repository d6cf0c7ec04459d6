//! Running a plan: a scheduler over stages and items, with at most `jobs` running at once, a
//! device slot per GPU stage, locks against other nasflow processes, and atomic publication.
//!
//! Stages are prepared in execution order as soon as their upstream outputs are known; the key
//! is computed then, from the upstream *output digests*, so a rerun upstream whose outputs did not
//! change leaves its dependents cached (early cutoff). Each running stage or item owns a locked
//! staging directory; its result is ingested into blobs and its record written only after it
//! succeeded, so a failure or a kill leaves earlier results intact and finished items kept.
//!
//! With the Slurm executor, the uncached items of an item-level stage become one task that
//! submits them as job arrays and follows them ([`crate::slurm::array`]); it takes no job slot.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime};

use crate::cache::blobs::manifest_digest;
use crate::cache::lock::Lock;
use crate::cache::record::{ItemRef, RECORD_FORMAT};
use crate::cache::{FileEntry, StageRecord};
use crate::item::{provenance, ItemJob};
use crate::job::{Job, Probe};
use crate::key::{DirtyReason, KeyInputs};
use crate::plan::{Engine, EngineError, ItemSpec, Result};
use crate::progress::Ui;
use crate::registry::KindRef;
use crate::runner;

/// How a stage ended in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Cached,
    Ran,
    Failed(String),
    /// Not run because an upstream stage failed.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct StageOutcome {
    pub stage: usize,
    pub status: Status,
    pub reasons: Vec<DirtyReason>,
    pub seconds: f64,
    pub items_ran: usize,
    pub items_cached: usize,
}

pub struct RunOptions {
    pub jobs: usize,
    pub force: HashSet<usize>,
}

enum Task {
    Stage {
        i: usize,
        key: String,
        ki: KeyInputs,
        forced: bool,
    },
    Item {
        i: usize,
        key: String,
        ki: KeyInputs,
        spec: ItemSpec,
        forced: bool,
    },
    /// The uncached items of a stage, computed on Slurm (one task follows them all).
    Array {
        i: usize,
        items: Vec<(String, KeyInputs, ItemSpec)>,
        forced: bool,
    },
}

impl Task {
    fn stage(&self) -> usize {
        match self {
            Task::Stage { i, .. } | Task::Item { i, .. } | Task::Array { i, .. } => *i,
        }
    }
}

enum TaskOk {
    Stage(Arc<StageRecord>, bool),
    Item(usize, ItemRef, bool),
    /// Finished items of an array, and the reports of the failed ones.
    Array(Vec<(usize, ItemRef)>, Vec<String>),
}

struct Active {
    key: String,
    ki: KeyInputs,
    items: Vec<Option<ItemRef>>,
    outstanding: usize,
    started: Instant,
    started_at: SystemTime,
    errors: Vec<String>,
    bar: Option<indicatif::ProgressBar>,
}

enum State {
    Waiting,
    Active(Box<Active>),
    Done(Arc<StageRecord>),
    Failed,
}

/// Resolves a device spec (`auto`, `cpu`, `cuda`, `cuda:N`) to `cpu` or `cuda:N` on this host,
/// asking the worker only when CUDA may be involved.
pub fn resolve_device(spec: &str) -> std::result::Result<String, String> {
    if spec == "cpu" {
        return Ok("cpu".into());
    }
    let probe = probe_worker()?;
    nasflow_stages::device::resolve_with(spec, probe.cuda_linked, || probe.cuda_devices)
        .map(|d| d.to_string())
        .map_err(|e| e.to_string())
}

/// Asks `nasflow-worker probe` which CUDA devices the worker can use.
pub fn probe_worker() -> std::result::Result<Probe, String> {
    let worker = runner::worker_path();
    let out = std::process::Command::new(&worker)
        .arg("probe")
        .output()
        .map_err(|e| format!("cannot start {}: {e}\n  help: build it with `cargo build --release` (it sits beside nasflow)", worker.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} probe failed: {}",
            worker.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{} probe: {e}", worker.display()))
}

struct Scheduler<'e, 'a> {
    e: &'e Engine<'a>,
    ui: &'e Ui,
    opts: &'e RunOptions,
    threads: usize,
    states: HashMap<usize, State>,
    /// The records of finished stages (also in `states`), for key computation.
    done: HashMap<usize, Arc<StageRecord>>,
    outcomes: BTreeMap<usize, StageOutcome>,
    queue: VecDeque<Task>,
}

impl<'a> Engine<'a> {
    /// Runs the stages of a closure (in execution order). Stage failures are outcomes, not errors;
    /// an `Err` means the run could not proceed at all (device unavailable, cache unwritable).
    pub fn run(&self, closure: &[usize], opts: &RunOptions, ui: &Ui) -> Result<Vec<StageOutcome>> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut s = Scheduler {
            e: self,
            ui,
            opts,
            threads: (cores / opts.jobs.max(1)).max(1),
            states: closure.iter().map(|&i| (i, State::Waiting)).collect(),
            done: HashMap::new(),
            outcomes: BTreeMap::new(),
            queue: VecDeque::new(),
        };
        let result = std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = mpsc::channel::<(Task, std::result::Result<TaskOk, String>)>();
            let (mut running, mut running_gpu, mut following) = (0usize, 0usize, 0usize);
            let gpu_capacity = self.p.gpu_slots;
            loop {
                s.advance(closure)?;
                // Launch what fits: `jobs` tasks, and device tasks within the GPU slots.
                let mut deferred = VecDeque::new();
                while running - following < opts.jobs.max(1) {
                    let Some(task) = s.queue.pop_front() else {
                        break;
                    };
                    if let Task::Array { i, items, forced } = &task {
                        // Followed, not computed, here: no job slot or device slot.
                        let follow = s.follow(*i, items, *forced)?;
                        running += 1;
                        following += 1;
                        let tx = tx.clone();
                        scope.spawn(move || {
                            let r = follow();
                            let _ = tx.send((task, r));
                        });
                        continue;
                    }
                    let gpu = s.uses_gpu(task.stage());
                    if gpu && running_gpu >= gpu_capacity {
                        deferred.push_back(task);
                        continue;
                    }
                    running += 1;
                    running_gpu += gpu as usize;
                    let tx = tx.clone();
                    let ctx = s.task_context(&task)?;
                    scope.spawn(move || {
                        let r = ctx.execute(&task);
                        let _ = tx.send((task, r));
                    });
                }
                deferred.append(&mut s.queue);
                s.queue = deferred;
                if running == 0 {
                    break;
                }
                let (task, result) = rx.recv().expect("a running task reports");
                running -= 1;
                if matches!(task, Task::Array { .. }) {
                    following -= 1;
                } else {
                    running_gpu -= s.uses_gpu(task.stage()) as usize;
                }
                s.finish(task, result)?;
            }
            Ok(())
        });
        self.save_statcache()?;
        result?;
        Ok(s.outcomes.into_values().collect())
    }
}

impl<'e, 'a> Scheduler<'e, 'a> {
    fn name(&self, i: usize) -> &str {
        &self.e.p.stages[i].name
    }

    fn uses_gpu(&self, i: usize) -> bool {
        self.e.kind(i).uses_device() && self.e.device().is_ok_and(|d| d.starts_with("cuda"))
    }

    /// The records of stage `i`'s upstream stages (all done when it is prepared).
    fn upstream_records(&self, i: usize) -> HashMap<usize, Arc<StageRecord>> {
        self.e
            .dag
            .deps(i)
            .into_iter()
            .filter_map(|d| self.done.get(&d).map(|r| (d, r.clone())))
            .collect()
    }

    fn mark_done(&mut self, i: usize, record: Arc<StageRecord>) {
        self.done.insert(i, record.clone());
        self.states.insert(i, State::Done(record));
    }

    /// Prepares every waiting stage whose upstream stages are all done (or skips it when one
    /// failed). One pass in execution order suffices: a stage finished here is seen by its
    /// dependents later in the same pass.
    fn advance(&mut self, closure: &[usize]) -> Result<()> {
        for &i in closure {
            if !matches!(self.states[&i], State::Waiting) {
                continue;
            }
            let deps = self.e.dag.deps(i);
            if let Some(&bad) = deps
                .iter()
                .find(|d| matches!(self.states.get(d), Some(State::Failed)))
            {
                let dep = self.name(bad).to_string();
                self.ui
                    .line(&format!("skip   {}: upstream `{dep}` failed", self.name(i)));
                self.states.insert(i, State::Failed);
                self.outcome(i, Status::Skipped(dep), vec![], 0.0);
                continue;
            }
            if deps
                .iter()
                .all(|d| matches!(self.states.get(d), Some(State::Done(_))))
            {
                self.prepare(i)?;
            }
        }
        Ok(())
    }

    fn outcome(&mut self, i: usize, status: Status, reasons: Vec<DirtyReason>, seconds: f64) {
        let o = self.outcomes.entry(i).or_insert(StageOutcome {
            stage: i,
            status: Status::Cached,
            reasons: vec![],
            seconds: 0.0,
            items_ran: 0,
            items_cached: 0,
        });
        o.status = status;
        o.reasons = reasons;
        o.seconds = seconds;
    }

    fn prepare(&mut self, i: usize) -> Result<()> {
        let done = self.upstream_records(i);
        let ki = match self.e.key_inputs(i, &done) {
            Ok(ki) => ki,
            Err(e) if e.is_usage() => return Err(e),
            Err(e) => return self.fail_now(i, e.to_string()),
        };
        let key = ki.key();
        let forced = self.opts.force.contains(&i);
        if !forced {
            if let Some(r) = self.e.usable_record(i, &key) {
                self.ui.line(&format!("cached {}", self.name(i)));
                self.mark_done(i, r);
                self.outcome(i, Status::Cached, vec![], 0.0);
                return Ok(());
            }
        }
        let reasons = if forced {
            vec![DirtyReason::Forced]
        } else {
            self.e.dirty_reasons(i, &ki)
        };
        self.e.device()?;
        let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        self.ui
            .line(&format!("run    {}: {}", self.name(i), why.join("; ")));
        self.outcome(i, Status::Ran, reasons, 0.0);
        let mut active = Active {
            key: key.clone(),
            ki: ki.clone(),
            items: vec![],
            outstanding: 0,
            started: Instant::now(),
            started_at: SystemTime::now(),
            errors: vec![],
            bar: None,
        };
        if self.e.p.stages[i].foreach.is_none() {
            active.outstanding = 1;
            self.queue.push_back(Task::Stage { i, key, ki, forced });
            self.states.insert(i, State::Active(Box::new(active)));
            return Ok(());
        }
        let specs = match self.e.items(i, &done) {
            Ok(s) => s,
            Err(e) => return self.fail_now(i, e.to_string()),
        };
        active.items = vec![None; specs.len()];
        let slurm = self.e.p.executor.slurm().is_some();
        let mut array = Vec::new();
        let mut cached = 0;
        for spec in specs {
            let item_ki = self.e.item_inputs(i, &ki, &spec);
            let item_key = item_ki.key();
            if !forced {
                if let Ok(Some(item)) =
                    crate::item::published(self.e.cache, self.name(i), &item_key)
                {
                    active.items[spec.index] = Some(item);
                    cached += 1;
                    continue;
                }
            }
            if slurm {
                array.push((item_key, item_ki, spec));
                continue;
            }
            active.outstanding += 1;
            self.queue.push_back(Task::Item {
                i,
                key: item_key,
                ki: item_ki,
                spec,
                forced,
            });
        }
        let total = active.items.len();
        self.ui.line(&format!(
            "items  {}: {} to compute{}, {cached} cached",
            self.name(i),
            total - cached,
            if slurm { " on Slurm" } else { "" }
        ));
        if !array.is_empty() {
            active.outstanding += 1;
            self.queue.push_back(Task::Array {
                i,
                items: array,
                forced,
            });
        }
        active.bar = self
            .ui
            .bar(self.name(i), "items", total as u64, cached as u64);
        self.outcomes.get_mut(&i).expect("outcome").items_cached = cached;
        let finished = active.outstanding == 0;
        self.states.insert(i, State::Active(Box::new(active)));
        if finished {
            self.finish_items(i)?;
        }
        Ok(())
    }

    fn fail_now(&mut self, i: usize, message: String) -> Result<()> {
        self.ui.line(&format!("FAILED {}: {message}", self.name(i)));
        self.states.insert(i, State::Failed);
        self.outcome(i, Status::Failed(message), vec![], 0.0);
        Ok(())
    }

    fn finish(&mut self, task: Task, result: std::result::Result<TaskOk, String>) -> Result<()> {
        let i = task.stage();
        let name = self.e.p.stages[i].name.clone();
        let ui = self.ui;
        let State::Active(active) = self.states.get_mut(&i).expect("state") else {
            unreachable!("a finished task's stage is active")
        };
        active.outstanding -= 1;
        let seconds = active.started.elapsed().as_secs_f64();
        match (result, &task) {
            (Ok(TaskOk::Stage(record, ran)), _) => {
                let verb = if ran { "done  " } else { "reused" };
                self.ui
                    .line(&format!("{verb} {} ({seconds:.2}s)", self.name(i)));
                self.mark_done(i, record);
                let o = self.outcomes.get_mut(&i).expect("outcome");
                o.seconds = seconds;
                if !ran {
                    o.status = Status::Cached;
                }
            }
            (Ok(TaskOk::Item(index, item, ran)), _) => {
                active.items[index] = Some(item);
                if let Some(bar) = &active.bar {
                    bar.inc(1);
                } else {
                    let done = active.items.iter().filter(|x| x.is_some()).count();
                    ui.line(&format!(
                        "item   {name} {}/{} ({:.2}s)",
                        done,
                        active.items.len(),
                        seconds
                    ));
                }
                let o = self.outcomes.get_mut(&i).expect("outcome");
                if ran {
                    o.items_ran += 1
                } else {
                    o.items_cached += 1
                }
            }
            (Ok(TaskOk::Array(done, errors)), _) => {
                let o = self.outcomes.get_mut(&i).expect("outcome");
                o.items_ran += done.len();
                for (index, item) in done {
                    active.items[index] = Some(item);
                }
                for e in &errors {
                    ui.line(&format!("FAILED {name} {e}"));
                }
                active.errors.extend(errors);
            }
            (Err(message), Task::Array { .. }) => {
                ui.line(&format!("FAILED {name}: {message}"));
                active.errors.push(message);
            }
            (Err(message), Task::Stage { .. }) => {
                self.ui.line(&format!("FAILED {}: {message}", self.name(i)));
                self.states.insert(i, State::Failed);
                self.outcome(i, Status::Failed(message), vec![], seconds);
                return Ok(());
            }
            (Err(message), Task::Item { spec, .. }) => {
                ui.line(&format!(
                    "FAILED {name} item {} {}: {message}",
                    spec.index, spec.value
                ));
                active
                    .errors
                    .push(format!("item {} {}: {message}", spec.index, spec.value));
            }
        }
        if let Some(State::Active(a)) = self.states.get(&i) {
            if a.outstanding == 0 && self.e.p.stages[i].foreach.is_some() {
                self.finish_items(i)?;
            }
        }
        Ok(())
    }

    /// All items of a stage are finished: assemble and publish the stage record, or fail it.
    fn finish_items(&mut self, i: usize) -> Result<()> {
        let Some(State::Active(active)) = self.states.remove(&i) else {
            unreachable!()
        };
        if let Some(bar) = &active.bar {
            bar.finish_and_clear();
        }
        let seconds = active.started.elapsed().as_secs_f64();
        if !active.errors.is_empty() {
            let n = active.errors.len();
            let message = format!(
                "{n} item(s) failed (finished items are kept):\n    {}",
                active.errors.join("\n    ")
            );
            self.ui
                .line(&format!("FAILED {}: {n} item(s) failed", self.name(i)));
            self.states.insert(i, State::Failed);
            let o = self.outcomes.get_mut(&i).expect("outcome");
            o.status = Status::Failed(message);
            o.seconds = seconds;
            return Ok(());
        }
        let items: Vec<ItemRef> = active
            .items
            .into_iter()
            .map(|x| x.expect("every item finished"))
            .collect();
        let record = assemble(self.e, i, &active.key, active.ki, items, active.started_at)?;
        self.ui
            .line(&format!("done   {} ({seconds:.2}s)", self.name(i)));
        self.mark_done(i, Arc::new(record));
        self.outcomes.get_mut(&i).expect("outcome").seconds = seconds;
        Ok(())
    }

    /// What a task thread needs: the input directories (materialized now, on this thread) and
    /// the settings.
    fn task_context(&self, task: &Task) -> Result<TaskContext<'e, 'a>> {
        let spec = match task {
            Task::Item { spec, .. } => Some(spec),
            _ => None,
        };
        Ok(TaskContext {
            e: self.e,
            ui: self.ui,
            inputs: self.inputs(task.stage(), spec)?,
            threads: self.threads,
            device: self.e.device()?,
        })
    }

    /// The items of stage `i` as Slurm array tasks, and a function that follows them to the
    /// end (run on a thread of its own).
    fn follow(
        &self,
        i: usize,
        items: &[(String, KeyInputs, ItemSpec)],
        forced: bool,
    ) -> Result<impl FnOnce() -> std::result::Result<TaskOk, String> + Send + 'e> {
        let settings = self.e.p.executor.slurm().expect("slurm executor");
        // The host that runs a task resolves the device: a login node may have no GPU.
        let device = if settings.gpus_per_item > 0 {
            self.e.p.device.clone()
        } else {
            "cpu".to_string()
        };
        let mut jobs = Vec::with_capacity(items.len());
        for (key, ki, spec) in items {
            jobs.push(item_job(
                self.e,
                i,
                (key, ki, spec),
                forced,
                self.inputs(i, Some(spec))?,
                &device,
                settings.cpus_per_item as usize,
            ));
        }
        let State::Active(active) = &self.states[&i] else {
            unreachable!("a followed stage is active")
        };
        let follow = crate::slurm::array::Follow {
            settings,
            cache: self.e.cache,
            stage: self.e.p.stages[i].name.clone(),
            stage_key: active.key.clone(),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nasflow")),
            ui: self.ui,
            bar: active.bar.clone(),
        };
        Ok(move || {
            follow
                .run(jobs)
                .map(|o| TaskOk::Array(o.done, o.errors))
                .map_err(|err| err.to_string())
        })
    }

    /// The input directories of stage `i` (of one item with `spec`), materialized now.
    fn inputs(&self, i: usize, spec: Option<&ItemSpec>) -> Result<BTreeMap<String, PathBuf>> {
        let s = &self.e.p.stages[i];
        let mut inputs = BTreeMap::new();
        for d in self.e.dag.deps(i) {
            let dep = &self.e.p.stages[d];
            if let (Some(spec), Some(f)) = (spec, &s.foreach) {
                if f == &dep.name {
                    // The item's own upstream item, never the whole list (see the key module).
                    if let Some(up) = &spec.upstream {
                        let rec = self.e.cache.read_item(&dep.name, &up.key)?.ok_or_else(|| {
                            EngineError::Items {
                                stage: s.name.clone(),
                                message: format!(
                                    "upstream item {} of `{}` vanished",
                                    up.key, dep.name
                                ),
                            }
                        })?;
                        let dir = self.e.cache.out_dir(&dep.name, &up.key, true);
                        self.e.cache.materialize(&rec.files, &dir)?;
                        inputs.insert(dep.name.clone(), dir);
                    }
                    continue;
                }
            }
            let State::Done(r) = &self.states[&d] else {
                unreachable!("deps are done")
            };
            inputs.insert(dep.name.clone(), self.e.output_dir(d, r)?);
        }
        Ok(inputs)
    }
}

struct TaskContext<'e, 'a> {
    e: &'e Engine<'a>,
    ui: &'e Ui,
    inputs: BTreeMap<String, PathBuf>,
    threads: usize,
    device: String,
}

impl TaskContext<'_, '_> {
    fn execute(&self, task: &Task) -> std::result::Result<TaskOk, String> {
        self.execute_inner(task).map_err(|e| e.to_string())?
    }

    fn execute_inner(&self, task: &Task) -> Result<std::result::Result<TaskOk, String>> {
        match task {
            Task::Stage { i, key, ki, forced } => self.execute_stage(*i, key, ki, *forced),
            Task::Item {
                i,
                key,
                ki,
                spec,
                forced,
            } => {
                let t = item_job(
                    self.e,
                    *i,
                    (key, ki, spec),
                    *forced,
                    self.inputs.clone(),
                    &self.device,
                    self.threads,
                );
                let name = &self.e.p.stages[*i].name;
                let r = crate::item::compute(self.e.cache, &t, || {
                    self.ui.line(&format!(
                        "wait   {name}: another nasflow process is computing item {}; waiting for its lock",
                        spec.index
                    ));
                })?;
                Ok(r.map(|c| TaskOk::Item(spec.index, c.item, c.ran)))
            }
            Task::Array { .. } => unreachable!("arrays run in the Slurm follower"),
        }
    }

    fn execute_stage(
        &self,
        i: usize,
        key: &str,
        ki: &KeyInputs,
        forced: bool,
    ) -> Result<std::result::Result<TaskOk, String>> {
        let e = self.e;
        let stage = &e.p.stages[i];
        let lock_name = format!("{}.{key}.lock", stage.name);
        let _lock = Lock::exclusive(&e.cache.root().join("locks").join(lock_name), || {
            self.ui.line(&format!(
                "wait   {}: another nasflow process is computing it; waiting for its lock",
                stage.name
            ));
        })?;
        // Another process may have published it while we waited.
        if !forced {
            if let Some(r) = e.usable_record(i, key) {
                return Ok(Ok(TaskOk::Stage(r, false)));
            }
        }
        let job = Job {
            kind: stage.kind.clone(),
            stage: stage.name.clone(),
            params: e.run_params(i),
            inputs: self.inputs.clone(),
            item: None,
            out: PathBuf::new(),
            seed: e.p.seed,
            device: self.device.clone(),
            threads: self.threads,
        };
        // A whole-stage native job reports its steps on a bar of its own.
        let bar = match e.kind(i) {
            KindRef::Spec(_) => self.ui.bar(&stage.name, "steps", 0, 0),
            KindRef::Cmd => None,
        };
        let progress = |done: u64, total: u64| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
            }
        };
        let dest = e.cache.out_dir(&stage.name, key, false);
        let produced = crate::item::produce(
            e.cache,
            &job,
            stage.run.as_deref(),
            &e.p.root,
            &dest,
            &progress,
        )?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let p = match produced {
            Ok(p) => p,
            Err(report) => return Ok(Err(report)),
        };
        let record = StageRecord {
            format: RECORD_FORMAT,
            stage: stage.name.clone(),
            key: key.to_string(),
            key_inputs: ki.clone(),
            output_digest: p.output_digest,
            files: p.files,
            items: vec![],
            provenance: p.provenance,
        };
        e.cache.write_record(&record)?;
        Ok(Ok(TaskOk::Stage(Arc::new(record), true)))
    }
}

/// What one item needs to run anywhere: the item's key and inputs, and the stage's job.
fn item_job(
    e: &Engine,
    i: usize,
    (key, ki, spec): (&str, &KeyInputs, &ItemSpec),
    forced: bool,
    inputs: BTreeMap<String, PathBuf>,
    device: &str,
    threads: usize,
) -> ItemJob {
    let stage = &e.p.stages[i];
    ItemJob {
        command: match e.kind(i) {
            KindRef::Cmd => stage.run.clone(),
            KindRef::Spec(_) => None,
        },
        project: e.p.root.clone(),
        key: key.to_string(),
        key_inputs: ki.clone(),
        index: spec.index,
        value: spec.value.clone(),
        forced,
        job: Job {
            kind: stage.kind.clone(),
            stage: stage.name.clone(),
            params: e.run_params(i),
            inputs,
            item: Some((spec.index, spec.value.clone())),
            out: PathBuf::new(),
            seed: e.p.seed,
            device: device.to_string(),
            threads,
        },
    }
}

/// The record of an item-level stage: `items.jsonl` (the item values in order) and each item's
/// files under `items/NNNNN/`.
fn assemble(
    e: &Engine,
    i: usize,
    key: &str,
    ki: KeyInputs,
    items: Vec<ItemRef>,
    started_at: SystemTime,
) -> Result<StageRecord> {
    let stage = &e.p.stages[i];
    let staging = e.cache.staging(&stage.name)?;
    let list_dir = staging.dir.join("list");
    std::fs::create_dir_all(&list_dir).map_err(crate::cache::io(&list_dir))?;
    let list: String = items.iter().map(|it| format!("{}\n", it.value)).collect();
    let list_file = list_dir.join("items.jsonl");
    std::fs::write(&list_file, list).map_err(crate::cache::io(&list_file))?;
    let mut files: Vec<FileEntry> = e.cache.ingest(&list_dir)?;
    let mut peak = 0;
    for (n, it) in items.iter().enumerate() {
        let rec = e
            .cache
            .read_item(&stage.name, &it.key)?
            .ok_or_else(|| EngineError::Items {
                stage: stage.name.clone(),
                message: format!("item record {} vanished", it.key),
            })?;
        peak = peak.max(rec.provenance.peak_rss_bytes);
        files.extend(rec.files.into_iter().map(|f| FileEntry {
            path: format!("items/{n:05}/{}", f.path),
            ..f
        }));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let elapsed = started_at.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let device = e.device().unwrap_or_else(|_| "cpu".into());
    let record = StageRecord {
        format: RECORD_FORMAT,
        stage: stage.name.clone(),
        key: key.to_string(),
        key_inputs: ki,
        output_digest: manifest_digest(&files),
        files,
        items,
        provenance: provenance(started_at, elapsed, &device, peak),
    };
    // A forced rerun keeps the key; a view materialized from the previous record is stale.
    e.cache
        .drop_dir(&e.cache.out_dir(&record.stage, &record.key, false))?;
    e.cache.write_record(&record)?;
    Ok(record)
}
