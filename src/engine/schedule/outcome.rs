//! What a run's stages came to ([`StageOutcome`], [`Status`]), and what one task came to
//! ([`Outcome`]: one enum whose variants carry the task's identity with its result, so the
//! scheduler matches one value, never a task against a result).
use std::sync::Arc;

use crate::batch::ItemsOutcome;
use crate::cache::record::ItemRef;
use crate::cache::StageRecord;
use crate::config::StageId;
use crate::decide::ItemPlan;
use crate::engine::EngineError;
use crate::key::DirtyReason;
use crate::runner::RunFailure;

/// How a stage ended in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Cached,
    Ran,
    /// The failure report.
    Failed(String),
    /// Not run because an upstream stage failed.
    Skipped(String),
    /// An item-level stage whose `foreach` upstream lists no items: nothing ran (its empty
    /// record is stored).
    NoItems,
}

#[derive(Debug, Clone)]
pub struct StageOutcome {
    pub stage: StageId,
    pub status: Status,
    pub reasons: Vec<DirtyReason>,
    pub seconds: f64,
    pub items_ran: usize,
    pub items_cached: usize,
    /// The stage's current record once it ran or was found cached.
    pub record: Option<Arc<StageRecord>>,
}

/// What one task came to.
pub(super) enum Outcome {
    /// A whole stage: its record, and whether it ran (not found published by another process
    /// meanwhile).
    Stage {
        i: StageId,
        result: Result<(Arc<StageRecord>, bool), TaskError>,
    },
    Item {
        i: StageId,
        plan: Box<ItemPlan>,
        result: Result<ItemDone, TaskError>,
    },
    /// A stage's uncached items computed as a batch (Slurm arrays).
    Batch {
        i: StageId,
        result: Result<ItemsOutcome, TaskError>,
    },
}

impl Outcome {
    pub(super) fn stage(&self) -> StageId {
        match self {
            Outcome::Stage { i, .. } | Outcome::Item { i, .. } | Outcome::Batch { i, .. } => *i,
        }
    }
}

/// A published item: its index, its record, whether it ran, its own seconds.
pub(super) struct ItemDone {
    pub index: usize,
    pub item: ItemRef,
    pub ran: bool,
    pub seconds: f64,
}

/// Why a task failed: its job, or the cache around it.
#[derive(Debug, thiserror::Error)]
pub(super) enum TaskError {
    #[error(transparent)]
    Run(#[from] RunFailure),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<crate::cache::CacheError> for TaskError {
    fn from(e: crate::cache::CacheError) -> Self {
        TaskError::Engine(e.into())
    }
}
