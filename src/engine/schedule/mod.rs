//! Running the decisions: a scheduler over stages and items, with at most `jobs` tasks at once,
//! a device slot per GPU task, locks against other nasflow processes, and atomic publication.
//!
//! Stages are decided in execution order as soon as their upstream outputs are known; the key
//! is computed then, from the upstream *output digests*, so a rerun upstream whose outputs did not
//! change leaves its dependents cached (early cutoff). Each running stage or item owns a locked
//! staging directory; its result is ingested into blobs and its record written only after it
//! succeeded, so a failure or a kill leaves earlier results intact and finished items kept.
//!
//! A *task* is what runs on a thread of the scheduler: a whole stage's job, one item's job, or
//! (with a runner that batches items, Slurm) the follower of a stage's uncached items, which takes
//! no job slot.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{mpsc, Arc};
use std::time::{Instant, SystemTime};

use nasflow_contract::DeviceSpec;

use crate::batch::{ItemJob, ItemsOutcome};
use crate::cache::record::ItemRef;
use crate::cache::{CacheError, Digest, StageRecord};
use crate::config::StageId;
use crate::decide::{Decision, ItemPlan, RunPlan};
use crate::engine::{Done, Engine, Result};
use crate::key::{DirtyReason, KeyInputs};
use crate::progress::Ui;
use crate::publish;
use crate::slots::{Grant, Slots};

mod outcome;
mod task;

use outcome::{ItemDone, Outcome};
pub use outcome::{StageOutcome, Status};
use task::{Launched, Task};

pub struct RunOptions {
    pub jobs: usize,
    pub force: HashSet<StageId>,
    /// Capacity shared with the schedulers of other variants run at the same time; `None`: this
    /// run's own (`jobs` slots, `gpu_slots` on each of the pipeline's GPUs).
    pub slots: Option<Arc<Slots>>,
}

/// A stage whose tasks are running.
struct Active {
    key: Digest,
    ki: KeyInputs,
    items: Vec<Option<ItemRef>>,
    outstanding: usize,
    /// When it was decided to run (its inputs ready).
    started: Instant,
    /// When its first job got a slot and started: its own time counts from here.
    launched: Option<Instant>,
    started_at: SystemTime,
    errors: Vec<String>,
    bar: Option<indicatif::ProgressBar>,
}

impl Active {
    /// Its own time so far, from its first job's start, and a note of the wait for a job slot
    /// before it (when half a second or more).
    fn own_time(&self) -> (f64, String) {
        let launched = self.launched.unwrap_or(self.started);
        let waited = launched.duration_since(self.started).as_secs_f64();
        let note = if waited >= 0.5 {
            format!("; waited {waited:.2}s for a job slot")
        } else {
            String::new()
        };
        (launched.elapsed().as_secs_f64(), note)
    }
}

enum State {
    Waiting,
    Active(Box<Active>),
    /// Its record is in `Scheduler::done`.
    Done,
    Failed,
}

struct Scheduler<'e, 'a> {
    e: &'e Engine<'a>,
    ui: &'e Ui,
    opts: &'e RunOptions,
    threads: usize,
    states: HashMap<StageId, State>,
    /// The records of finished stages (also in `states`), for key computation.
    done: Done,
    outcomes: BTreeMap<StageId, StageOutcome>,
    queue: VecDeque<Task>,
    /// Stages put back to waiting in this run because a stored output of theirs changed
    /// (each at most once: a second time fails the reader instead of looping).
    reopened: HashSet<StageId>,
    /// Set when a stage was put back during an [`Scheduler::advance`] pass.
    again: bool,
}

/// Runs the stages of a closure (in execution order). Stage failures are outcomes, not errors;
/// an `Err` means the run could not proceed at all (device unavailable, cache unwritable).
pub fn run(
    e: &Engine,
    closure: &[StageId],
    opts: &RunOptions,
    ui: &Ui,
) -> Result<Vec<StageOutcome>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut s = Scheduler {
        e,
        ui,
        opts,
        threads: (cores / opts.jobs.max(1)).max(1),
        states: closure.iter().map(|&i| (i, State::Waiting)).collect(),
        done: HashMap::new(),
        outcomes: BTreeMap::new(),
        queue: VecDeque::new(),
        reopened: HashSet::new(),
        again: false,
    };
    let result = std::thread::scope(|scope| s.drive(scope, closure));
    e.save_statcache()?;
    result?;
    let done = s.done;
    let mut outcomes: Vec<StageOutcome> = s.outcomes.into_values().collect();
    for o in &mut outcomes {
        o.record = done.get(&o.stage).cloned();
    }
    Ok(outcomes)
}

type Report = (Outcome, Option<Grant>);

impl<'e, 'a> Scheduler<'e, 'a> {
    /// The loop: decide what is ready, launch what fits, wait for one task, repeat. Slurm
    /// batches take no slot (their items run on the cluster).
    fn drive<'s>(
        &mut self,
        scope: &'s std::thread::Scope<'s, '_>,
        closure: &[StageId],
    ) -> Result<()>
    where
        'e: 's,
    {
        let (tx, rx) = mpsc::channel::<Report>();
        let slots = match &self.opts.slots {
            Some(s) => s.clone(),
            None => Arc::new(Slots::new(self.opts.jobs, self.e.p.gpu_slots)),
        };
        let mut running = 0usize;
        loop {
            self.advance(closure)?;
            if self.queue.is_empty() && running == 0 {
                return Ok(());
            }
            // Asked when the first task is ready (finding the GPUs may ask the worker, which a
            // no-op run must not wait for).
            slots.gpus_once(|| self.e.gpus())?;
            let mut deferred = VecDeque::new();
            while let Some(task) = self.queue.pop_front() {
                let stage = task.stage();
                let grant = match task {
                    Task::Batch { .. } => None,
                    _ => match slots.try_take(self.uses_gpu(task.stage()), &task.work()) {
                        Some(g) => Some(g),
                        None => {
                            deferred.push_back(task);
                            continue;
                        }
                    },
                };
                let launched = match self.launch(task, grant.as_ref().and_then(|g| g.gpu)) {
                    Ok(l) => l,
                    Err(e) => {
                        if let Some(g) = grant {
                            slots.give(g);
                        }
                        return Err(e);
                    }
                };
                running += 1;
                if let Some(State::Active(a)) = self.states.get_mut(&stage) {
                    a.launched.get_or_insert_with(Instant::now);
                }
                let tx = tx.clone();
                let (e, ui) = (self.e, self.ui);
                scope.spawn(move || {
                    let _ = tx.send((launched.run(e, ui), grant));
                });
            }
            self.queue = deferred;
            if running == 0 {
                if self.queue.is_empty() {
                    return Ok(());
                }
                // Every slot is held by another variant's jobs.
                slots.wait();
                continue;
            }
            let (outcome, grant) = rx.recv().expect("a running task reports");
            running -= 1;
            if let Some(g) = grant {
                slots.give(g);
            }
            self.finish(outcome)?;
        }
    }

    /// Whether stage `i`'s jobs are device jobs: a kind that computes on the device when the
    /// device is CUDA, or a `cmd` stage with `gpu = true`.
    fn uses_gpu(&self, i: StageId) -> bool {
        self.e.p.decl(i).gpu
            || (self.e.kind(i).uses_device() && self.e.device().is_ok_and(|d| d.is_cuda()))
    }

    /// The records of stage `i`'s upstream stages (all done when it is decided).
    fn upstream_records(&self, i: StageId) -> Done {
        self.e
            .dag
            .deps(i)
            .into_iter()
            .filter_map(|d| self.done.get(&d).map(|r| (d, r.clone())))
            .collect()
    }

    fn mark_done(&mut self, i: StageId, record: Arc<StageRecord>) {
        self.done.insert(i, record);
        self.states.insert(i, State::Done);
    }

    /// Decides every waiting stage whose upstream stages are all done (or skips it when one
    /// failed). One pass in execution order suffices: a stage finished here is seen by its
    /// dependents later in the same pass.
    fn advance(&mut self, closure: &[StageId]) -> Result<()> {
        loop {
            self.again = false;
            self.advance_once(closure)?;
            if !self.again {
                return Ok(());
            }
        }
    }

    fn advance_once(&mut self, closure: &[StageId]) -> Result<()> {
        for &i in closure {
            if !matches!(self.states[&i], State::Waiting) {
                continue;
            }
            let deps = self.e.dag.deps(i);
            if let Some(&bad) = deps
                .iter()
                .find(|d| matches!(self.states.get(d), Some(State::Failed)))
            {
                let dep = self.e.name(bad).to_string();
                self.ui.line(&format!(
                    "skip   {}: upstream `{dep}` failed",
                    self.e.name(i)
                ));
                self.states.insert(i, State::Failed);
                self.outcome(i, Status::Skipped(dep), vec![], 0.0);
                continue;
            }
            if deps
                .iter()
                .all(|d| matches!(self.states.get(d), Some(State::Done)))
            {
                self.prepare(i)?;
            }
        }
        Ok(())
    }

    fn outcome(&mut self, i: StageId, status: Status, reasons: Vec<DirtyReason>, seconds: f64) {
        let o = self.outcomes.entry(i).or_insert(StageOutcome {
            stage: i,
            status: Status::Cached,
            reasons: vec![],
            seconds: 0.0,
            items_ran: 0,
            items_cached: 0,
            record: None,
        });
        o.status = status;
        o.reasons = reasons;
        o.seconds = seconds;
    }

    /// Decides stage `i` and queues its tasks.
    fn prepare(&mut self, i: StageId) -> Result<()> {
        let forced = self.opts.force.contains(&i);
        let decision = match crate::decide::decide(self.e, i, &self.upstream_records(i), forced) {
            Ok(d) => d,
            Err(e) if e.is_usage() => return Err(e),
            Err(e) => return self.fail_now(i, e.to_string()),
        };
        let plan = match decision {
            Decision::Cached(r) => {
                self.ui.line(&format!("cached {}", self.e.name(i)));
                self.mark_done(i, r);
                self.outcome(i, Status::Cached, vec![], 0.0);
                return Ok(());
            }
            Decision::Pending { .. } => unreachable!("decided once its upstream is done"),
            Decision::Run(plan) => *plan,
        };
        if self.reopen_damaged_deps(i)? {
            return Ok(());
        }
        self.e.device()?;
        let why: Vec<String> = plan.reasons.iter().map(ToString::to_string).collect();
        self.ui
            .line(&format!("run    {}: {}", self.e.name(i), why.join("; ")));
        self.outcome(i, Status::Ran, plan.reasons.clone(), 0.0);
        let RunPlan {
            key,
            inputs: ki,
            items,
            ..
        } = plan;
        let mut active = Active {
            key: key.clone(),
            ki: ki.clone(),
            items: vec![],
            outstanding: 0,
            started: Instant::now(),
            launched: None,
            started_at: SystemTime::now(),
            errors: vec![],
            bar: None,
        };
        match items {
            None => {
                active.outstanding = 1;
                self.queue.push_back(Task::Stage { i, key, ki, forced });
                self.states.insert(i, State::Active(Box::new(active)));
                Ok(())
            }
            Some(items) => self.queue_items(i, active, items, forced),
        }
    }

    /// Queues an item-level stage's uncached items: one task each, or one batch.
    fn queue_items(
        &mut self,
        i: StageId,
        mut active: Active,
        items: Vec<ItemPlan>,
        forced: bool,
    ) -> Result<()> {
        active.items = vec![None; items.len()];
        let batches = self.e.runner.batches_items();
        let mut batch = Vec::new();
        let mut cached = 0;
        for plan in items {
            if let Some(item) = &plan.published {
                active.items[plan.spec.index] = Some(item.clone());
                cached += 1;
            } else if batches {
                batch.push(plan);
            } else {
                active.outstanding += 1;
                self.queue.push_back(Task::Item { i, plan, forced });
            }
        }
        let total = active.items.len();
        self.ui.line(&format!(
            "items  {}: {} to compute{}, {cached} cached",
            self.e.name(i),
            total - cached,
            if batches { " on Slurm" } else { "" }
        ));
        if !batch.is_empty() {
            active.outstanding += 1;
            self.queue.push_back(Task::Batch {
                i,
                items: batch,
                forced,
            });
        }
        active.bar = self
            .ui
            .bar(self.e.name(i), "items", total as u64, cached as u64);
        let o = self.outcomes.get_mut(&i).expect("outcome");
        o.items_cached = cached;
        if total == 0 {
            o.status = Status::NoItems;
        }
        let finished = active.outstanding == 0;
        self.states.insert(i, State::Active(Box::new(active)));
        if finished {
            self.finish_items(i)?;
        }
        Ok(())
    }

    /// Before stage `i` runs: checks the stored outputs it will read (stamps, else bytes). An
    /// upstream stage with a changed or missing output is put back to waiting, to be recomputed
    /// in this run (its changed blobs are quarantined); true if one was. The second time in one
    /// run, `i` fails instead.
    fn reopen_damaged_deps(&mut self, i: StageId) -> Result<bool> {
        let mut reopened = false;
        for d in self.e.dag.deps(i) {
            let Some(r) = self.done.get(&d).cloned() else {
                continue;
            };
            let name = self.e.name(d).to_string();
            let found_by = format!("{name}/{}", r.key);
            let damaged = self.e.cache.damaged_files(&r.files, &found_by)?;
            let Some((first, state)) = damaged.first() else {
                continue;
            };
            let files: Vec<String> = damaged
                .iter()
                .map(|(f, _)| format!("{name}/{}", f.path))
                .collect();
            if !self.reopened.insert(d) {
                let e = CacheError::damaged(&name, first, *state);
                self.fail_now(i, e.to_string())?;
                return Ok(true);
            }
            self.ui.line(&format!(
                "changed {name}: stored output {} changed or vanished outside nasflow; quarantined, recomputing it",
                files.join(", ")
            ));
            self.done.remove(&d);
            self.states.insert(d, State::Waiting);
            self.outcomes.remove(&d);
            reopened = true;
        }
        self.again |= reopened;
        Ok(reopened)
    }

    fn fail_now(&mut self, i: StageId, message: String) -> Result<()> {
        self.ui
            .line(&format!("FAILED {}: {message}", self.e.name(i)));
        self.states.insert(i, State::Failed);
        self.outcome(i, Status::Failed(message), vec![], 0.0);
        Ok(())
    }

    fn active(&mut self, i: StageId) -> &mut Active {
        match self.states.get_mut(&i) {
            Some(State::Active(a)) => a,
            _ => unreachable!("a finished task's stage is active"),
        }
    }

    /// A task reported: record what it did.
    fn finish(&mut self, outcome: Outcome) -> Result<()> {
        let i = outcome.stage();
        let name = self.e.name(i);
        let active = self.active(i);
        active.outstanding -= 1;
        let (seconds, waited) = active.own_time();
        match outcome {
            Outcome::Stage {
                result: Ok((record, ran)),
                ..
            } => {
                let verb = if ran { "done  " } else { "reused" };
                self.ui
                    .line(&format!("{verb} {name} ({seconds:.2}s{waited})"));
                self.mark_done(i, record);
                let o = self.outcomes.get_mut(&i).expect("outcome");
                o.seconds = seconds;
                if !ran {
                    o.status = Status::Cached;
                }
                return Ok(());
            }
            Outcome::Stage { result: Err(e), .. } => {
                self.ui.line(&format!("FAILED {name}: {e}"));
                self.states.insert(i, State::Failed);
                self.outcome(i, Status::Failed(e.to_string()), vec![], seconds);
                return Ok(());
            }
            Outcome::Item {
                plan,
                result: Ok(done),
                ..
            } => self.item_done(i, done, &plan, seconds),
            Outcome::Item {
                plan,
                result: Err(e),
                ..
            } => {
                let what = format!("item {} {}", plan.spec.index, plan.spec.value);
                self.ui.line(&format!("FAILED {name} {what}: {e}"));
                self.active(i).errors.push(format!("{what}: {e}"));
            }
            Outcome::Batch { result: Ok(o), .. } => self.batch_done(i, o),
            Outcome::Batch { result: Err(e), .. } => {
                self.ui.line(&format!("FAILED {name}: {e}"));
                self.active(i).errors.push(e.to_string());
            }
        }
        if self.active(i).outstanding == 0 {
            self.finish_items(i)?;
        }
        Ok(())
    }

    fn item_done(&mut self, i: StageId, done: ItemDone, plan: &ItemPlan, elapsed: f64) {
        let ItemDone {
            index,
            item,
            ran,
            seconds: own,
        } = done;
        let name = self.e.name(i);
        let ui = self.ui;
        let ran_before = self.outcomes.get(&i).map_or(0, |o| o.items_ran);
        let active = self.active(i);
        active.items[index] = Some(item);
        if let Some(bar) = &active.bar {
            bar.inc(1);
        } else {
            let done = active.items.iter().filter(|x| x.is_some()).count();
            let total = active.items.len();
            // The ETA from this stage's own rate: computed items per second so far.
            let computed = ran_before + usize::from(ran);
            let eta = (computed > 0 && done < total)
                .then(|| elapsed / computed as f64 * (total - done) as f64)
                .map(|s| format!(", eta {}", crate::progress::human_seconds(s)))
                .unwrap_or_default();
            let how = if ran {
                format!("in {own:.1}s")
            } else {
                "cached".into()
            };
            ui.line(&format!(
                "item   {name} {done}/{total}: {} {how} (stage {elapsed:.0}s{eta})",
                short(&plan.spec.value)
            ));
        }
        let o = self.outcomes.get_mut(&i).expect("outcome");
        if ran {
            o.items_ran += 1
        } else {
            o.items_cached += 1
        }
    }

    fn batch_done(&mut self, i: StageId, outcome: ItemsOutcome) {
        let name = self.e.name(i);
        for e in &outcome.errors {
            self.ui.line(&format!("FAILED {name} {e}"));
        }
        self.outcomes.get_mut(&i).expect("outcome").items_ran += outcome.done.len();
        let active = self.active(i);
        for (index, item) in outcome.done {
            active.items[index] = Some(item);
        }
        active.errors.extend(outcome.errors);
    }

    /// All items of a stage are finished: assemble and publish the stage record, or fail it.
    fn finish_items(&mut self, i: StageId) -> Result<()> {
        let Some(State::Active(active)) = self.states.remove(&i) else {
            unreachable!()
        };
        if let Some(bar) = &active.bar {
            bar.finish_and_clear();
        }
        let (seconds, waited) = active.own_time();
        if !active.errors.is_empty() {
            let n = active.errors.len();
            let message = format!(
                "{n} item(s) failed (finished items are kept):\n    {}",
                active.errors.join("\n    ")
            );
            self.ui
                .line(&format!("FAILED {}: {n} item(s) failed", self.e.name(i)));
            self.states.insert(i, State::Failed);
            let o = self.outcomes.get_mut(&i).expect("outcome");
            o.status = Status::Failed(message);
            o.seconds = seconds;
            return Ok(());
        }
        let record = assemble(self.e, i, *active)?;
        self.ui.line(&format!(
            "done   {} ({seconds:.2}s{waited})",
            self.e.name(i)
        ));
        self.mark_done(i, Arc::new(record));
        self.outcomes.get_mut(&i).expect("outcome").seconds = seconds;
        Ok(())
    }

    /// What a task's thread needs, prepared on this thread: input views (materialized now) and
    /// the jobs.
    fn launch(&self, task: Task, gpu: Option<usize>) -> Result<Launched> {
        let i = task.stage();
        let done = self.upstream_records(i);
        let device: DeviceSpec = self.e.device()?.into();
        let placed = |mut job: nasflow_contract::Job| {
            if gpu.is_some() {
                // CUDA_VISIBLE_DEVICES shows the job its GPU alone, as device 0.
                job.gpu = gpu;
                job.device = DeviceSpec::Cuda(0);
            }
            job
        };
        Ok(match task {
            Task::Stage { i, key, ki, forced } => {
                let (inputs, views) = self.e.inputs(i, &done, None)?;
                let job = placed(self.e.job(i, inputs, None, device, self.threads));
                Launched::Stage {
                    i,
                    key,
                    ki,
                    forced,
                    job: Box::new(job),
                    views,
                }
            }
            Task::Item { i, plan, forced } => {
                let mut t = self.item_job(i, &done, &plan, forced, device)?;
                t.job = placed(t.job);
                Launched::Item {
                    i,
                    plan,
                    job: Box::new(t),
                }
            }
            Task::Batch { i, items, forced } => Launched::Batch {
                i,
                items: items
                    .iter()
                    .map(|p| self.item_job(i, &done, p, forced, device))
                    .collect::<Result<_>>()?,
                stage_key: self.active_ref(i).key.clone(),
                bar: self.active_ref(i).bar.clone(),
            },
        })
    }

    fn active_ref(&self, i: StageId) -> &Active {
        match &self.states[&i] {
            State::Active(a) => a,
            _ => unreachable!("a launched task's stage is active"),
        }
    }

    fn item_job(
        &self,
        i: StageId,
        done: &Done,
        plan: &ItemPlan,
        forced: bool,
        device: DeviceSpec,
    ) -> Result<ItemJob> {
        let (inputs, views) = self.e.inputs(i, done, Some(&plan.spec))?;
        Ok(ItemJob {
            key: plan.key.clone(),
            key_inputs: plan.inputs.clone(),
            index: plan.spec.index,
            value: plan.spec.value.clone(),
            forced,
            job: self
                .e
                .job(i, inputs, Some(&plan.spec), device, self.threads),
            views,
        })
    }
}

/// An item's value for a log line: its `hash` when it has one (a network), else the value.
fn short(v: &serde_json::Value) -> String {
    match v.get("hash").and_then(|h| h.as_str()) {
        Some(h) => h.to_string(),
        None => {
            let s = v.to_string();
            if s.len() > 60 {
                format!("{}...", &s[..s.floor_char_boundary(57)])
            } else {
                s
            }
        }
    }
}

/// The record of an item-level stage, once all its items are published.
fn assemble(e: &Engine, i: StageId, active: Active) -> Result<StageRecord> {
    let items: Vec<ItemRef> = active
        .items
        .into_iter()
        .map(|x| x.expect("every item finished"))
        .collect();
    let device = e
        .device()
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "cpu".into());
    let run = publish::ItemStageRun {
        started_at: active.started_at,
        device: &device,
    };
    Ok(publish::item_stage(
        e.cache,
        e.name(i),
        &active.key,
        &active.ki,
        items,
        run,
    )?)
}

#[cfg(test)]
mod tests {
    use crate::config::StageId;
    use std::collections::HashSet;

    use nasflow_contract::DeviceSpec;

    use crate::testkit::{names, Fixture};

    /// a → b → c, a → d, and e on its own.
    const DIAMOND: &str = r#"
[stages.a]
kind = "test-write"
text = "a"
[stages.b]
kind = "test-write"
deps = ["a"]
text = "b"
repeat = 2
[stages.c]
kind = "cmd"
deps = ["b"]
run = "cat $NASFLOW_IN_B/out.txt > $NASFLOW_OUT/c.txt"
[stages.d]
kind = "test-write"
deps = ["a"]
text = "d"
[stages.e]
kind = "test-write"
text = "e"
"#;

    #[test]
    fn an_edit_reruns_exactly_that_stage_and_its_descendants() {
        let f = Fixture::new(DIAMOND);
        assert_eq!(f.ran(&[]), names(&["a", "b", "c", "d", "e"]));
        assert_eq!(f.ran(&[]), names(&[]), "a second run recomputes nothing");
        assert_eq!(f.ran(&["b.repeat=3"]), names(&["b", "c"]));
        let c = std::fs::read_dir(f.dir.path().join("cache/out/c"))
            .unwrap()
            .flatten()
            .map(|d| std::fs::read_to_string(d.path().join("c.txt")).unwrap())
            .collect::<String>();
        assert!(c.contains("bbb"), "{c}");
    }

    #[test]
    fn provenance_is_kept_with_the_record_but_is_not_part_of_the_output() {
        let f = Fixture::new(DIAMOND);
        f.run(&[], &[]);
        let before = f.with_engine(&[], |e| {
            crate::decide::plan(e, &[StageId::at(0)], &Default::default()).unwrap()
        });
        // test-write writes a timestamp to its provenance: a forced rerun differs there only.
        let (_, ran) = f.run(&[], &["a"]);
        assert_eq!(
            ran,
            names(&["a"]),
            "b and d are cached: a's outputs are identical"
        );
        let after = f.with_engine(&[], |e| {
            crate::decide::plan(e, &[StageId::at(0)], &Default::default()).unwrap()
        });
        let (r0, r1) = (
            before[0].record.clone().unwrap(),
            after[0].record.clone().unwrap(),
        );
        assert_eq!(r0.output_digest, r1.output_digest);
        let stamp = |r: &crate::cache::StageRecord| {
            r.provenance
                .files
                .iter()
                .find(|f| f.path == "timing.txt")
                .unwrap()
                .digest
                .clone()
        };
        assert_ne!(stamp(&r0), stamp(&r1), "the provenance is the new run's");
        assert!(r1.files.iter().all(|f| f.path != "timing.txt"));
    }

    #[test]
    fn a_param_outside_the_key_reaches_the_run_but_not_the_key() {
        let f = Fixture::new(
            "[stages.f]\nkind = \"test-fetch\"\nurl = \"http://a/x\"\ndigest = \"d1\"\n",
        );
        assert_eq!(f.ran(&[]), names(&["f"]));
        assert_eq!(
            f.ran(&["f.url=file:///mirror/x"]),
            names(&[]),
            "a mirror: same key"
        );
        assert_eq!(f.ran(&["f.digest=d2"]), names(&["f"]));
    }

    /// Each item's record's device, in item order.
    fn item_devices(f: &Fixture, stage: &str) -> Vec<String> {
        let dir = f.dir.path().join("cache/items").join(stage);
        let mut devices: Vec<(u64, String)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                let id = v["value"]["id"].as_u64().unwrap();
                (id, v["provenance"]["device"].as_str().unwrap().to_string())
            })
            .collect();
        devices.sort();
        devices.into_iter().map(|(_, d)| d).collect()
    }

    #[test]
    fn device_jobs_go_one_per_gpu_to_the_least_loaded_and_see_their_device() {
        for gpus in ["gpus = [0, 1]", "gpus = \"auto\""] {
            let toml = format!("[pipeline]\ndevice = \"cuda\"\n{gpus}\ngpu_slots = 1\n[stages.list]\nkind = \"test-items\"\ncount = 4\n[stages.each]\nkind = \"test-device\"\nforeach = \"list\"\n");
            let mut f = Fixture::with_fake_gpus(&toml, 2);
            f.jobs = 4;
            let (o, _) = f.run(&[], &[]);
            assert_eq!(o[1].items_ran, 4);
            let placed: Vec<_> = f
                .runner
                .placed
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.stage == "each")
                .cloned()
                .collect();
            assert_eq!(placed.len(), 4, "{gpus}");
            // CUDA_VISIBLE_DEVICES shows a job its GPU alone: the job's device is cuda:0.
            assert!(placed.iter().all(|p| p.device == DeviceSpec::Cuda(0)));
            let used: HashSet<Option<usize>> = placed.iter().map(|p| p.gpu).collect();
            assert_eq!(used, HashSet::from([Some(0), Some(1)]), "{gpus}: both GPUs");
            for (k, a) in placed.iter().enumerate() {
                for b in &placed[k + 1..] {
                    if a.gpu == b.gpu {
                        assert!(
                            a.end <= b.start || b.end <= a.start,
                            "{gpus}: two jobs at once on GPU {:?}",
                            a.gpu
                        );
                    }
                }
            }
            // Each item's record names the GPU it was placed on.
            let devices = item_devices(&f, "each");
            assert_eq!(devices.len(), 4);
            assert!(
                devices.iter().any(|d| d == "cuda:0") && devices.iter().any(|d| d == "cuda:1"),
                "{devices:?}"
            );
        }
    }

    #[test]
    fn on_the_cpu_device_jobs_are_not_placed() {
        let toml = "[stages.list]\nkind = \"test-items\"\ncount = 2\n[stages.each]\nkind = \"test-device\"\nforeach = \"list\"\n";
        let f = Fixture::new(toml);
        f.run(&[], &[]);
        assert!(
            f.runner.placed.lock().unwrap().is_empty(),
            "nothing ran on CUDA"
        );
        assert_eq!(item_devices(&f, "each"), vec!["cpu", "cpu"]);
    }

    #[test]
    fn a_path_param_can_name_a_file_in_an_upstream_stages_outputs() {
        let toml = "[stages.a]\nkind = \"test-fetch\"\ndigest = \"d1\"\n[stages.b]\nkind = \"test-fetch\"\ndeps = [\"a\"]\ndigest = \"b:\"\nfrom = \"@a/content.txt\"\n";
        let f = Fixture::new(toml);
        assert_eq!(f.ran(&[]), names(&["a", "b"]));
        let read_b = || {
            std::fs::read_dir(f.dir.path().join("cache/out/b"))
                .unwrap()
                .flatten()
                .map(|d| std::fs::read_to_string(d.path().join("content.txt")).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(read_b(), vec!["b:d1"]);
        // b is keyed by a's output digest: a new a reruns b, a mirror of a does not.
        assert_eq!(f.ran(&["a.digest=d2"]), names(&["a", "b"]));
        assert!(read_b().contains(&"b:d2".to_string()));
        assert_eq!(f.ran(&["a.digest=d2", "a.url=http://mirror/x"]), names(&[]));
        // The upstream must be a dependency.
        f.write(&toml.replace("deps = [\"a\"]\n", ""));
        let e = f.pipeline(&[]).unwrap_err().to_string();
        assert!(
            e.contains("names the outputs of stage `a`, which is not in its deps"),
            "{e}"
        );
    }

    #[test]
    fn growing_an_item_list_computes_only_the_new_items() {
        let toml = |n: usize| {
            format!("[stages.list]\nkind = \"test-items\"\ncount = {n}\n[stages.each]\nkind = \"test-item\"\nforeach = \"list\"\n")
        };
        let f = Fixture::new(&toml(3));
        let (o, _) = f.run(&[], &[]);
        assert_eq!((o[1].items_ran, o[1].items_cached), (3, 0));
        f.write(&toml(5));
        let (o, _) = f.run(&[], &[]);
        assert_eq!(
            (o[1].items_ran, o[1].items_cached),
            (2, 3),
            "{:?}",
            o[1].status
        );
        let (o, _) = f.run(&[], &["each"]);
        assert_eq!(
            (o[1].items_ran, o[1].items_cached),
            (5, 0),
            "--force recomputes every item"
        );
    }

    #[test]
    fn a_failed_item_fails_the_stage_and_keeps_the_others() {
        let toml = "[stages.list]\nkind = \"test-items\"\ncount = 4\n[stages.each]\nkind = \"test-item\"\nforeach = \"list\"\nfail_on = 2\n[stages.after]\nkind = \"cmd\"\ndeps = [\"each\"]\nrun = \"true\"\n";
        let f = Fixture::new(toml);
        let (o, _) = f.run(&[], &[]);
        let crate::schedule::Status::Failed(report) = &o[1].status else {
            panic!("{:?}", o[1].status)
        };
        assert!(report.contains("failed on purpose"), "{report}");
        assert!(matches!(o[2].status, crate::schedule::Status::Skipped(_)));
        let kept = std::fs::read_dir(f.dir.path().join("cache/items/each"))
            .unwrap()
            .count();
        assert_eq!(kept, 3, "{report}");
    }

    use nasflow_contract::layout::ITEMS_LIST;

    /// A fake executor: answers every job by writing its item into `out.txt` (a list stage's
    /// job: `count` items),
    /// records the jobs it was handed, and reports the jobs of item `crash_on` as killed by
    /// SIGKILL (the way a worker's death reaches the scheduler).
    struct FakeExecutor {
        crash_on: Option<u64>,
        jobs: std::sync::Mutex<Vec<nasflow_contract::Job>>,
    }

    impl crate::runner::Runner for FakeExecutor {
        fn probe(&self) -> std::result::Result<nasflow_contract::Probe, crate::runner::RunFailure> {
            Ok(nasflow_contract::Probe::cpu_only(""))
        }

        fn run(
            &self,
            job: &nasflow_contract::Job,
            _staging: &std::path::Path,
            _progress: &(dyn Fn(&nasflow_contract::Progress) + Sync),
        ) -> std::result::Result<crate::runner::Finished, crate::runner::RunFailure> {
            self.jobs.lock().unwrap().push(job.clone());
            let item = job.item.as_ref().map(|it| it.value.clone());
            if item.as_ref().and_then(|v| v["id"].as_u64()) == self.crash_on && item.is_some() {
                return Err(crate::runner::RunFailure::Exited {
                    exit: crate::runner::Exit::Signal(9),
                    stderr_tail: vec![],
                    stdout_tail: vec![],
                    log: None,
                });
            }
            match &item {
                Some(v) => std::fs::write(job.out.join("out.txt"), format!("item {v}\n")),
                // The list stage: `count` items.
                None => std::fs::write(
                    job.out.join(ITEMS_LIST),
                    (0..job.params["count"].as_u64().unwrap())
                        .map(|k| format!("{{\"id\":{k}}}\n"))
                        .collect::<String>(),
                ),
            }
            .unwrap();
            Ok(crate::runner::Finished {
                worker: Some(nasflow_contract::job::ServedBy {
                    pid: 7,
                    served_before: self.jobs.lock().unwrap().len() - 1,
                    retried_after: None,
                }),
                ..Default::default()
            })
        }
    }

    #[test]
    fn a_fake_executor_receives_plain_jobs_and_a_crash_costs_only_its_item() {
        let toml = "[stages.list]\nkind = \"test-items\"\ncount = 4\n[stages.each]\nkind = \"test-item\"\nforeach = \"list\"\n";
        let f = Fixture::new(toml);
        let crashing = FakeExecutor {
            crash_on: Some(2),
            jobs: Default::default(),
        };
        let (o, _) = f.run_on(&crashing, &[], &[]);
        let crate::schedule::Status::Failed(report) = &o[1].status else {
            panic!("{:?}", o[1].status)
        };
        assert!(
            report.contains("1 item(s) failed") && report.contains("killed by signal 9 (SIGKILL)"),
            "{report}"
        );
        let jobs = crashing.jobs.lock().unwrap();
        assert_eq!(jobs.len(), 5, "the list, then one job per item");
        for j in jobs.iter() {
            // Each job is self-contained: its own output and provenance directories, its params.
            assert!(j.out.is_dir() || !j.out.exists());
            assert_ne!(j.out, j.provenance);
            assert!(j.command.is_none());
        }
        let outs: std::collections::HashSet<_> = jobs.iter().map(|j| j.out.clone()).collect();
        assert_eq!(outs.len(), 5, "a staging directory per job");
        drop(jobs);
        let records = |f: &Fixture| {
            std::fs::read_dir(f.dir.path().join("cache/items/each"))
                .unwrap()
                .map(|e| {
                    serde_json::from_slice::<serde_json::Value>(
                        &std::fs::read(e.unwrap().path()).unwrap(),
                    )
                    .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let kept = records(&f);
        assert_eq!(kept.len(), 3, "nothing published for the crashed item");
        assert!(kept.iter().all(|r| r["provenance"]["worker"]["pid"] == 7));

        // The next run hands the executor only the missing item.
        let fine = FakeExecutor {
            crash_on: None,
            jobs: Default::default(),
        };
        let (o, _) = f.run_on(&fine, &[], &[]);
        assert_eq!(o[1].status, crate::schedule::Status::Ran);
        assert_eq!((o[1].items_ran, o[1].items_cached), (1, 3));
        let jobs = fine.jobs.lock().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].item.as_ref().unwrap().value["id"], 2);
        assert_eq!(records(&f).len(), 4);
    }
}
