//! The scheduler's tasks: what waits in its queue ([`Task`]), the same task with its work
//! prepared on the scheduler's thread ([`Launched`]: input views materialized, jobs built), and
//! running it on a task thread, which ends in one [`Outcome`].
use std::sync::Arc;
use std::time::Instant;

use nasflow_contract::{Job, Progress};

use super::outcome::{ItemDone, Outcome, TaskError};
use crate::batch::{ItemBatch, ItemJob};
use crate::cache::lock::LockOf;
use crate::cache::view::ViewRef;
use crate::cache::Digest;
use crate::config::StageId;
use crate::decide::ItemPlan;
use crate::engine::Engine;
use crate::key::KeyInputs;
use crate::progress::Ui;
use crate::publish;

/// A queued task: a whole stage's job, one item's job, or (with a runner that batches items,
/// Slurm) the follower of a stage's uncached items, which takes no job slot.
pub(super) enum Task {
    Stage {
        i: StageId,
        key: Digest,
        ki: KeyInputs,
        forced: bool,
    },
    Item {
        i: StageId,
        plan: ItemPlan,
        forced: bool,
    },
    /// The uncached items of a stage, computed by the runner as a batch (Slurm arrays).
    Batch {
        i: StageId,
        items: Vec<ItemPlan>,
        forced: bool,
    },
}

impl Task {
    pub(super) fn stage(&self) -> StageId {
        match self {
            Task::Stage { i, .. } | Task::Item { i, .. } | Task::Batch { i, .. } => *i,
        }
    }

    /// What the task computes, as one string: the same for the same stage key in any variant.
    pub(super) fn work(&self) -> String {
        match self {
            Task::Stage { i, key, .. } => format!("{i}/{key}"),
            Task::Item { i, plan, .. } => format!("{i}/item/{}", plan.key),
            Task::Batch { i, .. } => format!("{i}/batch"),
        }
    }
}

/// A task with its work prepared: what a task thread runs.
pub(super) enum Launched {
    Stage {
        i: StageId,
        key: Digest,
        ki: KeyInputs,
        forced: bool,
        job: Box<Job>,
        views: Vec<ViewRef>,
    },
    Item {
        i: StageId,
        plan: ItemPlan,
        job: Box<ItemJob>,
    },
    Batch {
        i: StageId,
        stage_key: Digest,
        items: Vec<ItemJob>,
        bar: Option<indicatif::ProgressBar>,
    },
}

impl Launched {
    /// Runs the task to its end; failures are in the outcome.
    pub(super) fn run(self, e: &Engine, ui: &Ui) -> Outcome {
        match self {
            Launched::Stage {
                i,
                key,
                ki,
                forced,
                job,
                views,
            } => Outcome::Stage {
                i,
                result: stage(e, ui, i, (*job, &views), &key, &ki, forced),
            },
            Launched::Item { i, plan, job } => Outcome::Item {
                i,
                result: item(e, ui, i, &job),
                plan: Box::new(plan),
            },
            Launched::Batch {
                i,
                stage_key,
                items,
                bar,
            } => {
                let batch = ItemBatch {
                    cache: e.cache,
                    stage: e.name(i).to_string(),
                    stage_key,
                    items,
                    ui,
                    bar,
                };
                Outcome::Batch {
                    i,
                    result: e.runner.run_items(batch).map_err(TaskError::from),
                }
            }
        }
    }
}

/// One item: under its lock, unless published meanwhile.
fn item(e: &Engine, ui: &Ui, i: StageId, t: &ItemJob) -> Result<ItemDone, TaskError> {
    let name = e.name(i);
    let wait = || {
        ui.line(&format!(
            "wait   {name}: another nasflow process is computing item {}; waiting for its lock",
            t.index
        ))
    };
    let started = Instant::now();
    let c = crate::item::compute(e.cache, e.runner, t, wait)??;
    Ok(ItemDone {
        index: t.index,
        item: c.item,
        ran: c.ran,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A whole stage: under its lock, unless another process published it meanwhile.
fn stage(
    e: &Engine,
    ui: &Ui,
    i: StageId,
    (job, views): (nasflow_contract::Job, &[ViewRef]),
    key: &Digest,
    ki: &KeyInputs,
    forced: bool,
) -> Result<(Arc<crate::cache::StageRecord>, bool), TaskError> {
    let name = e.name(i);
    let of = LockOf::Stage { stage: name, key };
    let _lock = publish::lock(e.cache, of, true, || {
        ui.line(&format!(
            "wait   {name}: another nasflow process is computing it; waiting for its lock"
        ));
    })?;
    if !forced {
        if let Some(r) = e.usable_record(i, key) {
            return Ok((r, false));
        }
    }
    // A whole-stage native job reports its steps: on a terminal on a bar of its own (made at
    // its first report, in its unit: no `0/0 steps`), otherwise as a line every few seconds.
    let reporter = crate::progress::StageProgress::new(ui, name);
    let progress = |p: &Progress| reporter.report(p);
    let before = forced
        .then(|| e.cache.read_record(name, key).ok().flatten())
        .flatten()
        .map(|r| r.output_digest);
    let produced = crate::item::produce(e.cache, e.runner, &job, key, views, &progress)?;
    reporter.finish();
    let mut p = produced?;
    if let Some(old) = before.filter(|old| *old != p.output_digest) {
        ui.line(&format!(
            "warning: `{name}` is not deterministic: rerun under the same key, it gave other outputs (output digest {}, was {}); `nasflow why {name}` says so too",
            &p.output_digest.as_str()[..16],
            &old.as_str()[..16]
        ));
        p.provenance.replaced = Some(old);
    }
    let record = publish::stage(e.cache, name, key, ki, p)?;
    Ok((Arc::new(record), true))
}
