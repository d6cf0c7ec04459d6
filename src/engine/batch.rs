//! The items of an item-level stage as a runner receives them: [`ItemJob`] (everything one
//! item needs, without the pipeline file), [`ItemBatch`] (a stage's uncached items, for a runner
//! that computes them elsewhere as a batch) and [`ItemsOutcome`]. Both the runners and
//! [`crate::item`] (which computes and publishes one item) depend on this module, and it on
//! neither.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use nasflow_contract::Job;

use crate::cache::record::ItemRef;
use crate::cache::view::ViewRef;
use crate::cache::{Cache, Digest};
use crate::key::KeyInputs;
use crate::progress::Ui;

/// Everything needed to compute one item without the pipeline file: what a Slurm task reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemJob {
    pub key: Digest,
    pub key_inputs: KeyInputs,
    pub index: usize,
    pub value: Value,
    /// Recompute even if the item is published (`nasflow run --force`).
    pub forced: bool,
    /// The job; `out` and `provenance` are set when it runs, and its `device` may be a spec
    /// (`auto`, `cuda`) that the host running it resolves.
    pub job: Job,
    /// The input views the job reads (materialized and held where it runs).
    pub views: Vec<ViewRef>,
}

impl ItemJob {
    pub fn stage(&self) -> &str {
        &self.job.stage
    }

    pub fn item_ref(&self, output_digest: Digest) -> ItemRef {
        ItemRef {
            key: self.key.clone(),
            value: self.value.clone(),
            output_digest,
        }
    }
}

/// The uncached items of one stage, for a runner that computes items as batches (Slurm).
pub struct ItemBatch<'a> {
    pub cache: &'a Cache,
    pub stage: String,
    pub stage_key: Digest,
    pub items: Vec<ItemJob>,
    pub ui: &'a Ui,
    pub bar: Option<indicatif::ProgressBar>,
}

/// What a batch of items came to.
#[derive(Debug, Default)]
pub struct ItemsOutcome {
    /// (item index, published item) of every item that finished.
    pub done: Vec<(usize, ItemRef)>,
    /// One report per item that failed (after its retries).
    pub errors: Vec<String>,
}
