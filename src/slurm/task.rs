//! `nasflow slurm-task MANIFEST`: what each array task runs on its compute node. It computes the
//! item `SLURM_ARRAY_TASK_ID` of the manifest and publishes it into the shared cache, or exits
//! with 1 (its log, the task's stdout and stderr, says why). An item already published is not
//! computed again.
use std::path::Path;

use super::array::Manifest;
use crate::cache::lock::Lock;
use crate::cache::Cache;
use crate::item::{self, ItemJob};

/// Runs task `task` (default: `$SLURM_ARRAY_TASK_ID`) of the manifest; returns what it did.
pub fn run(manifest: &Path, task: Option<usize>) -> Result<String, String> {
    let task = match task {
        Some(t) => t,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .map_err(|_| {
                "SLURM_ARRAY_TASK_ID is not set: this runs as a Slurm array task (or pass --task N)"
                    .to_string()
            })?
            .parse::<usize>()
            .map_err(|e| format!("SLURM_ARRAY_TASK_ID: {e}"))?,
    };
    let text = std::fs::read(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: {e}\n  help: was it written by another nasflow version? Rerun `nasflow run` to submit again",
            manifest.display()
        )
    })?;
    let mut t: ItemJob = m.items.get(task).cloned().ok_or_else(|| {
        format!(
            "{}: no task {task} ({} tasks)",
            manifest.display(),
            m.items.len()
        )
    })?;
    let cache = Cache::open(&m.cache).map_err(|e| e.to_string())?;
    // gc and verify take this lock exclusively on this host (a best effort across hosts).
    let _store = Lock::shared(&cache.root().join("locks").join("store.lock"), || {
        eprintln!("waiting for a nasflow gc or verify on this host...")
    })
    .map_err(|e| e.to_string())?;
    t.job.device = crate::exec::resolve_device(&t.job.device)?;
    eprintln!(
        "nasflow slurm-task: stage `{}` item {} {} on {} ({}, {} thread(s))",
        t.stage(),
        t.index,
        t.value,
        item::hostname(),
        t.job.device,
        t.job.threads
    );
    let computed = item::compute(&cache, &t, || {
        eprintln!("another process on this host is computing this item; waiting for its lock")
    })
    .map_err(|e| e.to_string())??;
    Ok(if computed.ran {
        format!("published item {} ({})", t.index, computed.item.key)
    } else {
        format!(
            "item {} was already published ({})",
            t.index, computed.item.key
        )
    })
}
