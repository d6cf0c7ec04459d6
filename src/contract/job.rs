//! A job: one run of a stage (or of one item of it), as the engine hands it to whatever computes
//! it (`nasflow-worker run JOB.json`, a Slurm task, or a test's in-process runner), and the
//! [`Computations`] table that runs a native kind's job.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::{Inputs, ItemInput, Progress, StageContext};
use crate::device::{Device, DeviceSpec};
use crate::error::StageError;
use crate::kind::{Kind, Registrar};
use crate::tool::Tool;

/// Everything a run needs, serializable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub kind: String,
    pub stage: String,
    /// A `cmd` stage's shell command (run with `sh -c` in `project`); `None` for a native kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The project directory (the pipeline file's).
    pub project: PathBuf,
    /// Canonical params; path params absolute.
    pub params: Map<String, Value>,
    pub inputs: Inputs,
    pub item: Option<ItemInput>,
    /// Where outputs go, and where provenance goes (set when the job runs).
    pub out: PathBuf,
    pub provenance: PathBuf,
    /// The (stage, key)'s resume directory ([`StageContext::resume`]), set when the job runs.
    #[serde(default)]
    pub resume: PathBuf,
    pub seed: u64,
    /// Resolved where the job is prepared, or (Slurm) a spec the host running it resolves.
    pub device: DeviceSpec,
    /// The GPU (physical index) the job was placed on: the runner sets `CUDA_VISIBLE_DEVICES`
    /// to it, so that the job's own device is `cuda:0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<usize>,
    pub threads: usize,
}

/// Progress lines on a worker's stdout: `PROGRESS_PREFIX {json of Progress}`.
pub const PROGRESS_PREFIX: &str = "nasflow-progress";

/// The line a worker prints to report progress.
pub fn progress_line(p: &Progress) -> String {
    format!(
        "{PROGRESS_PREFIX} {}",
        serde_json::to_string(p).expect("progress serializes")
    )
}

/// Parses a worker's progress line.
pub fn parse_progress(line: &str) -> Option<Progress> {
    serde_json::from_str(line.strip_prefix(PROGRESS_PREFIX)?.trim()).ok()
}

/// A persistent worker (`nasflow-worker serve`) reads one job file path a line on its stdin and
/// answers on its stdout: progress lines, then one `SERVED_PREFIX {json of Served}` line when the
/// job has ended. The job's own stdout and stderr go to its provenance directory.
pub const SERVED_PREFIX: &str = "nasflow-served";

/// How a persistent worker's job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Whether the computation succeeded (its error is the last line of the job's stderr.log).
    pub ok: bool,
    /// The worker's process id, and how many jobs it had served before this one.
    pub pid: u32,
    pub served_before: usize,
    /// Peak resident memory while this job ran (the worker resets the peak before each job).
    pub peak_rss_bytes: u64,
    /// The worker will serve no more jobs (its computation panicked): do not send it another.
    pub retire: bool,
}

/// Which worker process computed a job: provenance, never output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedBy {
    pub pid: u32,
    /// How many jobs that worker had served before this one (0: a fresh worker).
    pub served_before: usize,
    /// Set when the job was started again because its first worker died (how it died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_after: Option<String>,
}

/// The line a persistent worker ends a job with.
pub fn served_line(s: &Served) -> String {
    format!(
        "{SERVED_PREFIX} {}",
        serde_json::to_string(s).expect("served serializes")
    )
}

/// Parses a persistent worker's end-of-job line.
pub fn parse_served(line: &str) -> Option<Served> {
    serde_json::from_str(line.strip_prefix(SERVED_PREFIX)?.trim()).ok()
}

type Compute =
    Box<dyn Fn(&Job, Device, &(dyn Fn(&Progress) + Sync)) -> Result<(), StageError> + Send + Sync>;

/// Kind name → computation, built from the registration list.
#[derive(Default)]
pub struct Computations {
    kinds: BTreeMap<&'static str, Compute>,
}

impl Registrar for Computations {
    fn kind<K, C>(&mut self, compute: C)
    where
        K: Kind,
        C: Fn(&StageContext<K::Params>) -> Result<(), StageError> + Send + Sync + 'static,
    {
        let run = move |job: &Job, device: Device, report: &(dyn Fn(&Progress) + Sync)| {
            let params: K::Params = serde_json::from_value(Value::Object(job.params.clone()))
                .map_err(|e| {
                    StageError::Config(format!(
                        "params of kind `{}`: {e} (was the job written by another nasflow version?)",
                        K::INFO.name
                    ))
                })?;
            compute(&StageContext {
                stage: &job.stage,
                params: &params,
                inputs: &job.inputs,
                item: job.item.as_ref(),
                out: &job.out,
                provenance: &job.provenance,
                resume: &job.resume,
                project: &job.project,
                seed: job.seed,
                device,
                threads: job.threads,
                report,
            })
        };
        self.kinds.insert(K::INFO.name, Box::new(run));
    }

    fn tool(&mut self, _tool: Tool) {}
}

impl Computations {
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Runs a native kind's job on `device`.
    pub fn run(
        &self,
        job: &Job,
        device: Device,
        report: &(dyn Fn(&Progress) + Sync),
    ) -> Result<(), StageError> {
        let compute = self.kinds.get(job.kind.as_str()).ok_or_else(|| {
            StageError::Config(format!(
                "no computation for stage kind `{}` (is this binary from another nasflow version?)",
                job.kind
            ))
        })?;
        compute(job, device, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_round_trip() {
        let p = Progress {
            done: 3,
            total: 10,
            unit: "epochs".into(),
            note: "loss 0.25".into(),
        };
        assert_eq!(parse_progress(&progress_line(&p)), Some(p));
        assert_eq!(parse_progress("hello"), None);
    }

    #[test]
    fn served_lines_round_trip_and_are_not_progress() {
        let s = Served {
            ok: true,
            pid: 42,
            served_before: 3,
            peak_rss_bytes: 1 << 20,
            retire: false,
        };
        let line = served_line(&s);
        assert_eq!(parse_served(&line), Some(s));
        assert_eq!(parse_progress(&line), None);
        assert_eq!(parse_served("nasflow-progress {}"), None);
    }
}
