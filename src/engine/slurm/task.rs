//! `nasflow slurm-task MANIFEST`: what each array task runs on its compute node. It computes the
//! item `SLURM_ARRAY_TASK_ID` of the manifest and publishes it into the shared cache, or exits
//! with 1 (its log, the task's stdout and stderr, says why). An item already published is not
//! computed again.
use std::path::{Path, PathBuf};

use super::array::Manifest;
use crate::batch::ItemJob;
use crate::cache::lock::LockOf;
use crate::cache::{Cache, CacheError};
use crate::item;
use crate::runner::child::ChildProcess;
use crate::runner::{resolve_device, DeviceFailure, RunFailure};

#[derive(Debug, thiserror::Error)]
pub enum ArrayTaskError {
    #[error("SLURM_ARRAY_TASK_ID is not set: this runs as a Slurm array task (or pass --task N)")]
    NoTaskId,
    #[error("SLURM_ARRAY_TASK_ID: {0}")]
    BadTaskId(std::num::ParseIntError),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}\n  help: was it written by another nasflow version? Rerun `nasflow run` to submit again", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Run(#[from] RunFailure),
    #[error(transparent)]
    Device(#[from] DeviceFailure),
}

/// Runs task `task` (default: `$SLURM_ARRAY_TASK_ID`) of the manifest; returns what it did.
pub fn run(manifest: &Path, task: Option<usize>) -> Result<String, ArrayTaskError> {
    let task = match task {
        Some(t) => t,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .map_err(|_| ArrayTaskError::NoTaskId)?
            .parse::<usize>()
            .map_err(ArrayTaskError::BadTaskId)?,
    };
    let text = std::fs::read(manifest).map_err(|source| ArrayTaskError::Read {
        path: manifest.to_path_buf(),
        source,
    })?;
    let bad = |message: String| ArrayTaskError::Manifest {
        path: manifest.to_path_buf(),
        message,
    };
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let n = m.items.len();
    let mut t: ItemJob = m
        .items
        .get(task)
        .cloned()
        .ok_or_else(|| bad(format!("no task {task} ({n} tasks)")))?;
    let cache = Cache::open(&m.cache)?;
    // gc and verify take this lock exclusively on this host (a best effort across hosts).
    let _store = crate::publish::lock(&cache, LockOf::Store, false, || {
        eprintln!("waiting for a nasflow gc or verify on this host...")
    })?;
    let runner = ChildProcess::new();
    t.job.device = resolve_device(&runner, t.job.device)?.into();
    eprintln!(
        "nasflow slurm-task: stage `{}` item {} {} on {} ({}, {} thread(s))",
        t.stage(),
        t.index,
        t.value,
        crate::cache::hostname(),
        t.job.device,
        t.job.threads
    );
    let computed = item::compute(&cache, &runner, &t, || {
        eprintln!("another process on this host is computing this item; waiting for its lock")
    })??;
    Ok(if computed.ran {
        format!("published item {} ({})", t.index, computed.item.key)
    } else {
        format!(
            "item {} was already published ({})",
            t.index, computed.item.key
        )
    })
}
