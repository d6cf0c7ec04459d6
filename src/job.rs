//! The job a `nasflow-worker` process runs: one stage (or one item) of a native kind, described
//! in a JSON file in the stage's staging directory. Running native kinds in a child process keeps
//! libtorch out of the engine (a no-op `nasflow run` stays at a few milliseconds) and keeps a
//! crash in one network's training from taking the whole run down with it.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub kind: String,
    pub stage: String,
    pub params: Map<String, Value>,
    pub inputs: BTreeMap<String, PathBuf>,
    /// (index, value) of the item, for item-level stages.
    pub item: Option<(usize, Value)>,
    pub out: PathBuf,
    pub seed: u64,
    /// A resolved device: "cpu" or "cuda:N".
    pub device: String,
    pub threads: usize,
}

/// What `nasflow-worker probe` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub cuda_linked: bool,
    pub cuda_devices: usize,
    pub libtorch: String,
}

/// Progress lines on the worker's stdout: `PROGRESS_PREFIX done total`.
pub const PROGRESS_PREFIX: &str = "nasflow-progress";
