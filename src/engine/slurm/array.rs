//! Following the items of one stage through Slurm job arrays.
//!
//! State lives in the shared cache, under `slurm/STAGE/KEY/`, so that a restarted nasflow (on any
//! host of the cluster) can pick up where a killed one stopped:
//!
//! ```text
//! sub-N.json     submission N: the cache directory and one ItemJob per array task
//! sub-N.sh       its batch script: `nasflow slurm-task sub-N.json` (task = SLURM_ARRAY_TASK_ID)
//! sub-N.jobid    the job id sbatch gave it
//! logs/sub-N-T.log   stdout and stderr of task T
//! ```
//!
//! An item is done when its record is published in the cache (the task writes it last). An
//! item whose task has left the queue (or reached a final state) without publishing failed; it
//! is resubmitted, in a new array of the failed items, up to `retries` times. A restart asks
//! squeue for the tasks of every earlier submission and follows those still queued or running
//! instead of submitting their items again. The directory is removed once every item is done.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{self, QueuedTask, Submission};
use super::{SlurmError, SlurmSettings};
use crate::batch::{ItemJob, ItemsOutcome as Outcome};
use crate::cache::lock::LockOf;
use crate::cache::{io, Cache, Digest};
use crate::interrupt;
use crate::item::published;
use crate::progress::Ui;

/// Most tasks in one array (Slurm's default `MaxArraySize` is 1001).
const MAX_ARRAY: usize = 1000;

/// What a submission's tasks read: task T computes `items[T]`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub cache: PathBuf,
    pub name: String,
    pub items: Vec<ItemJob>,
}

/// The items of one stage to compute on Slurm.
pub struct Follow<'a> {
    pub settings: &'a SlurmSettings,
    pub cache: &'a Cache,
    pub stage: String,
    pub stage_key: Digest,
    /// The nasflow binary the tasks run (it must be reachable from the compute nodes).
    pub exe: PathBuf,
    pub ui: &'a Ui,
    pub bar: Option<indicatif::ProgressBar>,
}

struct Sub {
    name: String,
    job_id: Option<String>,
    /// Task index → item key.
    keys: Vec<Digest>,
}

struct Entry {
    job: ItemJob,
    /// Failed attempts in this run.
    failures: u32,
    /// (submission, task) while queued or running.
    at: Option<(usize, usize)>,
}

impl Follow<'_> {
    /// `slurm/STAGE/KEY/` in the cache.
    pub fn dir(&self) -> PathBuf {
        self.cache
            .root()
            .join("slurm")
            .join(&self.stage)
            .join(&self.stage_key)
    }

    fn log(&self, sub: usize, task: usize) -> PathBuf {
        self.dir()
            .join("logs")
            .join(format!("sub-{sub}-{task}.log"))
    }

    /// A job name of its own for each submission (it is kept in the manifest, for restarts),
    /// so that squeue by name never mixes it up with another array of the same user.
    fn job_name(&self, sub: usize) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.cache.root().as_os_str().as_encoded_bytes());
        h.update(self.stage_key.as_bytes());
        h.update(
            format!(
                "{sub} {} {:?}",
                std::process::id(),
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        let tag = &h.finalize().to_hex()[..10];
        format!("nasflow-{}-{tag}-{sub}", self.stage)
    }

    /// Computes the items on Slurm and waits for them. `Err` when Slurm cannot be used at all
    /// (no sbatch, rejected submission) or on Ctrl-C (after cancelling the arrays).
    pub fn run(&self, jobs: Vec<ItemJob>) -> Result<Outcome, SlurmError> {
        let dir = self.dir();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io(&logs))?;
        let of = LockOf::Slurm {
            stage: &self.stage,
            key: &self.stage_key,
        };
        let _lock = crate::publish::lock(self.cache, of, true, || {
            self.ui.line(&format!(
                "wait   {}: another nasflow process follows this stage's Slurm arrays; waiting for it",
                self.stage
            ))
        })?;
        let _following = interrupt::following();
        let mut subs = read_subs(&dir)?;
        let mut entries: BTreeMap<Digest, Entry> = jobs
            .into_iter()
            .map(|job| {
                let entry = Entry {
                    job,
                    failures: 0,
                    at: None,
                };
                (entry.job.key.clone(), entry)
            })
            .collect();
        let mut outcome = Outcome::default();
        // 1. Follow what an earlier nasflow left in flight; 2. take what is published; 3. submit
        // the rest; 4. follow the queue until every item is published or has failed.
        self.resume(&subs, &mut entries)?;
        self.collect_published(&mut entries, &mut outcome)?;
        self.submit(&mut subs, &mut entries)?;
        self.follow(&mut subs, &mut entries, &mut outcome)?;
        if outcome.errors.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(stage_dir) = dir.parent() {
                let _ = std::fs::remove_dir(stage_dir); // only if no other key's arrays are there
            }
        }
        Ok(outcome)
    }

    /// Polls the queue until no item is in flight: published items are done, tasks that left
    /// the queue without publishing are resubmitted or, after their retries, reported.
    fn follow(
        &self,
        subs: &mut BTreeMap<usize, Sub>,
        entries: &mut BTreeMap<Digest, Entry>,
        outcome: &mut Outcome,
    ) -> Result<(), SlurmError> {
        let mut last_counts = None;
        let mut squeue_failing = false;
        while entries.values().any(|e| e.at.is_some()) {
            self.sleep(subs, entries)?;
            let queue = match client::squeue(&in_flight_names(subs, entries)) {
                Ok(q) => {
                    squeue_failing = false;
                    q
                }
                Err(e) => {
                    if !squeue_failing {
                        self.ui.line(&format!(
                            "slurm  {}: cannot read the queue, trying again: {e}",
                            self.stage
                        ));
                    }
                    squeue_failing = true;
                    continue;
                }
            };
            let by_sub = self.index_queue(subs, &queue);
            let failed = self.settle(subs, entries, &by_sub, outcome)?;
            for (key, n, t, state) in failed {
                self.retry_or_report(subs, entries, outcome, &key, (n, t), &state);
            }
            self.submit(subs, entries)?;
            let counts = self.report(&by_sub, entries);
            if last_counts != Some(counts) && self.bar.is_none() {
                let (running, pending) = counts;
                self.ui.line(&format!(
                    "slurm  {}: {} done, {running} running, {pending} queued",
                    self.stage,
                    outcome.done.len()
                ));
            }
            last_counts = Some(counts);
        }
        Ok(())
    }

    /// Looks at each item in flight: published (done), still queued or running, or gone from
    /// the queue without publishing (failed: returned with the task and its final state). The
    /// queue is read before the records: a task that left the queue wrote its record (if it
    /// did) before leaving, so it is seen here.
    fn settle(
        &self,
        subs: &BTreeMap<usize, Sub>,
        entries: &mut BTreeMap<Digest, Entry>,
        by_sub: &HashMap<(usize, usize), &QueuedTask>,
        outcome: &mut Outcome,
    ) -> Result<Vec<(Digest, usize, usize, String)>, SlurmError> {
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        for (key, e) in entries.iter_mut() {
            let Some((n, t)) = e.at else { continue };
            if let Some(item) = published(self.cache, &self.stage, key)? {
                finished.push((key.clone(), e.job.index, item));
                continue;
            }
            let task = by_sub.get(&(n, t));
            if task.is_some_and(|q| q.active()) {
                continue;
            }
            let state = match task {
                Some(q) => format!("{} ({})", q.state, q.reason),
                None => subs[&n]
                    .job_id
                    .as_deref()
                    .and_then(|id| client::sacct_state(id, t))
                    .unwrap_or_else(|| "left the queue".into()),
            };
            e.failures += 1;
            e.at = None;
            failed.push((key.clone(), n, t, state));
        }
        for (key, index, item) in finished {
            entries.remove(&key);
            outcome.done.push((index, item));
            if let Some(bar) = &self.bar {
                bar.inc(1);
            }
        }
        Ok(failed)
    }

    /// A failed item is resubmitted (next `submit`) while it has retries left, else reported.
    fn retry_or_report(
        &self,
        subs: &BTreeMap<usize, Sub>,
        entries: &mut BTreeMap<Digest, Entry>,
        outcome: &mut Outcome,
        key: &Digest,
        (n, t): (usize, usize),
        state: &str,
    ) {
        let e = &entries[key];
        let log = self.log(n, t);
        let task_id = match &subs[&n].job_id {
            Some(id) => format!("{id}_{t}"),
            None => format!("{}[{t}]", subs[&n].name),
        };
        if e.failures <= self.settings.retries {
            self.ui.line(&format!(
                "retry  {} item {} {}: task {task_id} ended {state} without publishing; resubmitting (attempt {} of {}), log: {}",
                self.stage,
                e.job.index,
                e.job.value,
                e.failures + 1,
                self.settings.retries + 1,
                log.display()
            ));
            return;
        }
        outcome.errors.push(format!(
            "item {} {}: Slurm task {task_id} ended {state} without publishing, after {} attempt(s)\n      log: {}{}",
            e.job.index,
            e.job.value,
            e.failures,
            log.display(),
            tail(&log)
        ));
        entries.remove(key);
    }

    /// Items whose tasks in earlier submissions (a killed nasflow's) are still queued or running
    /// are followed there, not submitted again.
    fn resume(
        &self,
        subs: &BTreeMap<usize, Sub>,
        entries: &mut BTreeMap<Digest, Entry>,
    ) -> Result<(), SlurmError> {
        if subs.is_empty() {
            return Ok(());
        }
        let queue = client::squeue(&subs.values().map(|s| s.name.clone()).collect::<Vec<_>>())?;
        let by_sub = self.index_queue(subs, &queue);
        let mut resumed = 0;
        for (&n, sub) in subs {
            for (t, key) in sub.keys.iter().enumerate() {
                let Some(e) = entries.get_mut(key) else {
                    continue;
                };
                if e.at.is_none() && by_sub.get(&(n, t)).is_some_and(|q| q.active()) {
                    e.at = Some((n, t));
                    resumed += 1;
                }
            }
        }
        if resumed > 0 {
            self.ui.line(&format!(
                "slurm  {}: following {resumed} task(s) still queued or running from an earlier nasflow",
                self.stage
            ));
        }
        Ok(())
    }

    /// Items published meanwhile (by an earlier array, or another process) are done.
    fn collect_published(
        &self,
        entries: &mut BTreeMap<Digest, Entry>,
        outcome: &mut Outcome,
    ) -> Result<(), SlurmError> {
        let mut done = Vec::new();
        for (key, e) in entries.iter() {
            if e.at.is_none() && !e.job.forced {
                if let Some(item) = published(self.cache, &self.stage, key)? {
                    done.push((key.clone(), e.job.index, item));
                }
            }
        }
        for (key, index, item) in done {
            entries.remove(&key);
            outcome.done.push((index, item));
            if let Some(bar) = &self.bar {
                bar.inc(1);
            }
        }
        Ok(())
    }

    /// Submits every item that is neither done nor in flight, in arrays of at most
    /// [`MAX_ARRAY`] tasks.
    fn submit(
        &self,
        subs: &mut BTreeMap<usize, Sub>,
        entries: &mut BTreeMap<Digest, Entry>,
    ) -> Result<(), SlurmError> {
        let mut waiting: Vec<&mut Entry> =
            entries.values_mut().filter(|e| e.at.is_none()).collect();
        waiting.sort_by_key(|e| e.job.index);
        // A forced item's old record would read as done: it goes before the array is submitted
        // (its blobs stay until gc), and the task then computes the item as any other.
        for e in waiting.iter_mut().filter(|e| e.job.forced) {
            let path = self.cache.item_path(&self.stage, &e.job.key);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io(&path)(err).into()),
            }
            e.job.forced = false;
        }
        for chunk in waiting.chunks_mut(MAX_ARRAY) {
            let n = subs.keys().next_back().map_or(0, |n| n + 1);
            let name = self.job_name(n);
            let dir = self.dir();
            let (manifest, script) = self.write_submission(n, &name, chunk)?;
            // Recorded before sbatch, so that a restart after a kill right after sbatch still
            // finds the array by its name.
            subs.insert(
                n,
                Sub {
                    name: name.clone(),
                    job_id: None,
                    keys: manifest.items.iter().map(|j| j.key.clone()).collect(),
                },
            );
            let output = dir.join("logs").join(format!("sub-{n}-%a.log"));
            let workdir = manifest.items[0].job.project.clone();
            let job_id = client::sbatch(
                self.settings,
                &Submission {
                    name: &name,
                    tasks: chunk.len(),
                    output: &output,
                    workdir: &workdir,
                    script: &script,
                },
            )?;
            self.cache
                .write_atomic(&dir.join(format!("sub-{n}.jobid")), job_id.as_bytes())?;
            subs.get_mut(&n).expect("inserted").job_id = Some(job_id.clone());
            for (t, e) in chunk.iter_mut().enumerate() {
                e.at = Some((n, t));
            }
            self.ui.line(&format!(
                "slurm  {}: submitted array job {job_id} ({} task(s)); logs in {}",
                self.stage,
                chunk.len(),
                dir.join("logs").display()
            ));
        }
        Ok(())
    }

    /// Writes submission `n`'s manifest and batch script; returns the manifest and the script.
    fn write_submission(
        &self,
        n: usize,
        name: &str,
        chunk: &[&mut Entry],
    ) -> Result<(Manifest, PathBuf), SlurmError> {
        let dir = self.dir();
        let manifest_path = dir.join(format!("sub-{n}.json"));
        let manifest = Manifest {
            cache: self.cache.root().to_path_buf(),
            name: name.to_string(),
            items: chunk.iter().map(|e| e.job.clone()).collect(),
        };
        self.cache.write_atomic(
            &manifest_path,
            &serde_json::to_vec(&manifest).expect("manifest serializes"),
        )?;
        let script = dir.join(format!("sub-{n}.sh"));
        self.cache.write_atomic(
            &script,
            format!(
                "#!/bin/sh\n# nasflow: stage `{}`, {} item(s); task T computes items[T] of the manifest.\nexec {} slurm-task {}\n",
                self.stage,
                chunk.len(),
                quote(&self.exe),
                quote(&manifest_path)
            )
            .as_bytes(),
        )?;
        Ok((manifest, script))
    }

    /// (submission, task) → its line in the queue. A line without a task index stands for all
    /// the array's tasks not listed on their own (pending tasks, on some Slurm versions). Lines
    /// of another job id than the submission's are someone else's.
    fn index_queue<'q>(
        &self,
        subs: &BTreeMap<usize, Sub>,
        queue: &'q [QueuedTask],
    ) -> HashMap<(usize, usize), &'q QueuedTask> {
        let by_name: HashMap<&str, usize> =
            subs.iter().map(|(n, s)| (s.name.as_str(), *n)).collect();
        let mut out = HashMap::new();
        for q in queue {
            let Some(&n) = by_name.get(q.name.as_str()) else {
                continue;
            };
            if subs[&n].job_id.as_ref().is_some_and(|id| id != &q.job_id) {
                continue;
            }
            match q.task {
                Some(t) => {
                    let known = out.get(&(n, t)).is_some_and(|k: &&QueuedTask| k.active());
                    if !known {
                        out.insert((n, t), q);
                    }
                }
                None if q.active() => {
                    for t in 0..subs[&n].keys.len() {
                        out.entry((n, t)).or_insert(q);
                    }
                }
                None => {}
            }
        }
        out
    }

    /// Updates the bar; returns (running, queued) among the items in flight.
    fn report(
        &self,
        by_sub: &HashMap<(usize, usize), &QueuedTask>,
        entries: &BTreeMap<Digest, Entry>,
    ) -> (usize, usize) {
        let (mut running, mut pending) = (0, 0);
        for e in entries.values() {
            match e.at.and_then(|at| by_sub.get(&at)) {
                Some(q) if q.state == "RUNNING" => running += 1,
                Some(_) => pending += 1,
                None => {}
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("slurm: {running} running, {pending} queued"));
        }
        (running, pending)
    }

    /// Waits `poll_seconds`; on Ctrl-C cancels the arrays with items in flight and returns
    /// `Interrupted`.
    fn sleep(
        &self,
        subs: &BTreeMap<usize, Sub>,
        entries: &BTreeMap<Digest, Entry>,
    ) -> Result<(), SlurmError> {
        let until = Instant::now() + Duration::from_secs_f64(self.settings.poll_seconds);
        while Instant::now() < until {
            if interrupt::requested() {
                let names = in_flight_names(subs, entries);
                let cancelled = client::scancel(&names);
                let jobs: Vec<String> = subs
                    .values()
                    .filter(|s| names.contains(&s.name))
                    .map(|s| s.job_id.clone().unwrap_or_else(|| s.name.clone()))
                    .collect();
                self.ui.line(&format!(
                    "cancel {}: Ctrl-C: {} array job(s) {}; published items are kept, rerun to continue",
                    self.stage,
                    if cancelled.is_ok() { "cancelled" } else { "could not cancel" },
                    jobs.join(", ")
                ));
                cancelled?;
                return Err(SlurmError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

fn in_flight_names(subs: &BTreeMap<usize, Sub>, entries: &BTreeMap<Digest, Entry>) -> Vec<String> {
    let mut live: Vec<usize> = entries
        .values()
        .filter_map(|e| e.at.map(|(n, _)| n))
        .collect();
    live.sort_unstable();
    live.dedup();
    live.iter().map(|n| subs[n].name.clone()).collect()
}

/// The submissions an earlier nasflow left in `dir`.
fn read_subs(dir: &Path) -> Result<BTreeMap<usize, Sub>, SlurmError> {
    let mut subs = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(n) = file
            .strip_prefix("sub-")
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let text = std::fs::read(&path).map_err(io(&path))?;
        let Ok(m) = serde_json::from_slice::<Manifest>(&text) else {
            // Not ours to interpret (another nasflow version): its tasks are not followed.
            continue;
        };
        let job_id = std::fs::read_to_string(dir.join(format!("sub-{n}.jobid")))
            .ok()
            .map(|s| s.trim().to_string());
        subs.insert(
            n,
            Sub {
                name: m.name,
                job_id,
                keys: m.items.into_iter().map(|j| j.key).collect(),
            },
        );
    }
    Ok(subs)
}

/// The last lines of a task's log, for the failure report.
fn tail(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return " (not written: the task never started, or the log directory is not shared)".into();
    };
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(10)..];
    if last.is_empty() {
        return String::new();
    }
    format!("\n      {}", last.join("\n      "))
}

/// A path as one single-quoted shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_paths_for_the_batch_script() {
        assert_eq!(quote(Path::new("/a b/c")), "'/a b/c'");
        assert_eq!(quote(Path::new("/it's")), "'/it'\\''s'");
    }
}
