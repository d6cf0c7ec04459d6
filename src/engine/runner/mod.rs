//! Runners: what executes a job. The scheduler never starts a process itself; it hands each job
//! to a [`Runner`] (as ninja's builder hands commands to its CommandRunner, and Bazel's executor
//! to a SpawnRunner), so the scheduling, keying and caching logic is tested with fake kinds
//! in-process and with a fake executor (`schedule`'s tests).
//!
//! # The contract
//!
//! [`Runner::run`] receives a plain [`Job`] whose `out`, `provenance` and `resume` directories
//! exist and are the job's own. A runner
//! - MUST run the job to its end, with the job's environment (device placement, threads), and
//!   leave nothing it started running once `run` returns (every child, transitively, ends: the
//!   supervisor's process group and watchdog pipe see to it when nasflow itself dies);
//! - MUST write outputs only under `out`, and logs (stdout, stderr, what the job wrote there)
//!   only under `provenance`;
//! - MUST report how the job ended as a value: `Ok(Finished)` (peak memory, libtorch version, the
//!   worker that served it), or `Err(RunFailure)` with the exit code or the signal named, and the
//!   log's last lines. A crash is an `Err`, never a panic or a hang;
//! - MAY serve many jobs in one long-lived process ([`pool`]: persistent workers), provided each
//!   job still gets the above, a job that fails fails alone, and a process that dies mid-job is
//!   replaced (the job retried once from an empty `out`, else reported with the signal);
//! - MUST NOT publish records, read or write the cache, decide whether a job is needed, or draw
//!   progress: it reports progress through the callback, and the caller ingests `out` into the
//!   cache and writes the record ([`crate::publish`]) only after `Ok`.
//!
//! The one exception is the Slurm runner's [`Runner::run_items`]: its items run on other hosts,
//! where `nasflow slurm-task` publishes each one through the same [`crate::item`] code, so it
//! is handed the cache (to see what was published) and the stage's progress bar.
//!
//! Implementations:
//! - [`child::ChildProcess`]: a `cmd` stage's command under `sh -c`, or a native kind in a
//!   persistent `nasflow-worker serve` ([`pool`]; one process a job with `NASFLOW_WORKERS=per-job`);
//! - [`crate::slurm::SlurmArrays`]: whole stages as a child process, the items of item-level
//!   stages as Slurm job arrays on a cluster;
//! - [`in_process::InProcess`]: native kinds called in this process (tests).
pub mod child;
pub mod in_process;
pub mod pool;
pub mod supervise;

use std::path::{Path, PathBuf};

use nasflow_contract::{Device, DeviceError, DeviceSpec, Job, Probe, Progress};

use crate::batch::{ItemBatch, ItemsOutcome};

/// How a job ended when it succeeded.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Peak resident memory of the process that computed it (0 where unknown).
    pub peak_rss_bytes: u64,
    /// The libtorch version the computation used, where one did.
    pub libtorch: Option<String>,
    /// The persistent worker that served it, where one did.
    pub worker: Option<nasflow_contract::job::ServedBy>,
}

/// How a process ended when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// A persistent worker's computation returned an error (the worker lives on).
    Failed,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Failed => write!(f, "the computation failed"),
            Exit::Signal(s) => match signal_name(*s) {
                Some(name) => write!(f, "killed by signal {s} ({name})"),
                None => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// The usual name of a signal a job may die of.
fn signal_name(s: i32) -> Option<&'static str> {
    Some(match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        _ => return None,
    })
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error("cannot start {program}: {source}{}", help.map(|h| format!("\n  help: {h}")).unwrap_or_default())]
    Spawn {
        program: String,
        source: std::io::Error,
        help: Option<&'static str>,
    },
    #[error("{}", exited(exit, stderr_tail, stdout_tail, log))]
    Exited {
        exit: Exit,
        /// The last lines of its stderr (and of its stdout when stderr was empty).
        stderr_tail: Vec<String>,
        stdout_tail: Vec<String>,
        /// Where its whole output was kept.
        log: Option<PathBuf>,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An in-process computation's error.
    #[error("{0}")]
    Stage(String),
    /// The job wrote into the blobs behind its input views.
    #[error("the stage, or one running beside it, wrote into its inputs ({}): inputs are read-only; the changed results were taken out of the cache (quarantine/) and are recomputed on the next run, and this stage's result was not stored", files.join(", "))]
    WroteInputs { files: Vec<String> },
    /// An input view was removed or altered while the job ran (its blobs may be intact).
    #[error("the outputs of {} it reads were removed or altered under cache/out while it ran, so its result was not stored\n  help: nothing may write into the cache directory; run again", stages.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))]
    InputsAltered { stages: Vec<String> },
    /// `nasflow-worker probe` answered something unreadable.
    #[error("{0}")]
    Probe(String),
    /// The job failed on a full disk (its own messages may be lost: they were being written
    /// there too).
    #[error("{inner}\n    the cache's filesystem is full (no space left on device, ENOSPC): {}\n  help: free space there, or move the cache (`cache` in [pipeline]), and rerun", path.display())]
    DiskFull {
        inner: Box<RunFailure>,
        path: PathBuf,
    },
    /// The executor that runs items elsewhere (Slurm) failed as a whole.
    #[error(transparent)]
    Executor(Box<dyn std::error::Error + Send + Sync>),
}

fn exited(exit: &Exit, stderr: &[String], stdout: &[String], log: &Option<PathBuf>) -> String {
    let mut report = exit.to_string();
    if !stderr.is_empty() {
        report.push_str(&format!(
            "\n    stderr (last {} lines):\n      {}",
            stderr.len(),
            stderr.join("\n      ")
        ));
    } else if !stdout.is_empty() {
        report.push_str(&format!("\n    stdout:\n      {}", stdout.join("\n      ")));
    }
    if let Some(log) = log {
        report.push_str(&format!("\n    full output: {}", log.display()));
    }
    report
}

impl RunFailure {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunFailure + '_ {
        move |source| RunFailure::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Records where the failed job's whole output was kept.
    pub fn with_log(mut self, kept: PathBuf) -> RunFailure {
        if let RunFailure::Exited { log, .. } = &mut self {
            *log = Some(kept);
        }
        self
    }

    /// Says so when the job failed on a full disk.
    pub fn on_full_disk(self, path: PathBuf) -> RunFailure {
        RunFailure::DiskFull {
            inner: Box::new(self),
            path,
        }
    }
}

/// What executes jobs.
pub trait Runner: Sync {
    /// What the computing binary can use (asked only when a device spec needs resolving).
    fn probe(&self) -> Result<Probe, RunFailure>;

    /// Runs one job in `staging` (a fresh directory holding `job.out` and `job.provenance`):
    /// outputs go to `job.out`, the run's stdout and stderr to `job.provenance`.
    fn run(
        &self,
        job: &Job,
        staging: &Path,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Finished, RunFailure>;

    /// Whether the items of item-level stages are computed as batches elsewhere
    /// ([`Runner::run_items`]) instead of one job at a time.
    fn batches_items(&self) -> bool {
        false
    }

    /// Computes and publishes a batch of items (Slurm arrays), following it to the end.
    fn run_items(&self, batch: ItemBatch<'_>) -> Result<ItemsOutcome, RunFailure> {
        let _ = batch;
        unreachable!("run_items is called only on runners that batch items")
    }
}

/// Why a device spec could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFailure {
    #[error(transparent)]
    Unavailable(#[from] DeviceError),
    #[error("cannot tell which devices the worker can use: {0}")]
    Probe(RunFailure),
}

/// Resolves a device spec on this host, asking the runner only when CUDA may be involved.
pub fn resolve_device(runner: &dyn Runner, spec: DeviceSpec) -> Result<Device, DeviceFailure> {
    let mut failed = None;
    let resolved = spec.resolve(|| {
        runner.probe().unwrap_or_else(|e| {
            failed = Some(e);
            Probe::cpu_only("")
        })
    });
    match failed {
        Some(e) => Err(DeviceFailure::Probe(e)),
        None => Ok(resolved?),
    }
}
