//! Producing results: running one job in a fresh staging directory and storing what it wrote
//! ([`produce`], for whole stages and items), and computing one item of an item-level stage and
//! publishing it ([`compute`]). The same code runs in a thread of the local scheduler and in a
//! Slurm array task (`nasflow slurm-task`) on another host, so the cache directory is the only
//! meeting point, and it is safe for many writers on many hosts:
//!
//! - every file is written under `tmp/` (names carry host, pid and time) and renamed or
//!   hard-linked into place; a blob's name is its digest, so two writers of the same blob agree;
//! - the item record is renamed into place last, after its blobs exist: a reader sees the whole
//!   item or none of it;
//! - the per-item lock only saves duplicate work on one host (flock may not reach across NFS
//!   clients); two hosts computing the same item publish the same record, and the last rename wins.
use std::time::{Instant, SystemTime};

use nasflow_contract::{Job, Progress};

use crate::batch::ItemJob;
use crate::cache::blobs::manifest_digest;
use crate::cache::lock::LockOf;
use crate::cache::record::ItemRef;
use crate::cache::view::ViewRef;
use crate::cache::{Cache, Digest, Result};
use crate::publish::{self, provenance, Produced};
use crate::runner::{RunFailure, Runner};

/// An item that is published: computed now (`ran`) or found in the cache.
pub struct Computed {
    pub item: ItemRef,
    pub ran: bool,
}

/// The published item, if its record and every blob it names are in the cache.
/// An unreadable or inconsistent item record counts as absent: the item is computed again and
/// its record replaced (`nasflow cache verify` reports such records).
pub fn published(cache: &Cache, stage: &str, key: &Digest) -> Result<Option<ItemRef>> {
    Ok(cache
        .read_item(stage, key)
        .ok()
        .flatten()
        .filter(|r| cache.has_blobs(&r.files))
        .map(|r| ItemRef {
            key: key.clone(),
            value: r.value,
            output_digest: r.output_digest,
        }))
}

/// Computes the item and publishes it, unless it is published already (by another process,
/// perhaps while this one waited for the item's lock). `Ok(Err(failure))` is a failure of the
/// item itself; `Err` a failure of the cache.
pub fn compute(
    cache: &Cache,
    runner: &dyn Runner,
    t: &ItemJob,
    on_wait: impl FnOnce(),
) -> Result<std::result::Result<Computed, RunFailure>> {
    let stage = t.stage();
    let of = LockOf::Item { stage, key: &t.key };
    let _lock = publish::lock(cache, of, true, on_wait)?;
    if !t.forced {
        if let Some(item) = published(cache, stage, &t.key)? {
            return Ok(Ok(Computed { item, ran: false }));
        }
    }
    let before = t
        .forced
        .then(|| cache.read_item(stage, &t.key).ok().flatten())
        .flatten()
        .map(|r| r.output_digest);
    let mut p = match produce(cache, runner, &t.job, &t.key, &t.views, &|_| {})? {
        Ok(p) => p,
        Err(failure) => return Ok(Err(failure)),
    };
    // A forced rerun with other outputs under the same key: not deterministic (provenance).
    p.provenance.replaced = before.filter(|old| *old != p.output_digest);
    let item = publish::item(cache, t, p)?;
    Ok(Ok(Computed { item, ran: true }))
}

/// Below this many free bytes, a failed job is reported as having run out of disk.
const FULL: u64 = 1 << 20;

/// Runs a job in a fresh staging directory, holding its input views, then checks that it
/// left them alone ([`crate::cache::view`]), ingests its outputs into blobs and publishes their
/// view; its provenance directory (logs, timings) is stored too, apart from the outputs. The
/// caller writes the record: that is the commit point. A failed job's provenance directory is
/// kept under `failed/` and named in the failure; its resume directory (`partial/STAGE/KEY`,
/// a download's partial file) is kept for the next run of the same key.
pub fn produce(
    cache: &Cache,
    runner: &dyn Runner,
    job: &Job,
    key: &Digest,
    views: &[ViewRef],
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<std::result::Result<Produced, RunFailure>> {
    let staging = cache.staging(&job.stage)?;
    let out = staging.dir.join("out");
    let prov = staging.dir.join("provenance");
    for d in [&out, &prov] {
        std::fs::create_dir_all(d).map_err(crate::cache::io(d))?;
    }
    let resume = cache.resume_dir(&job.stage, key)?;
    let job = Job {
        out: out.clone(),
        provenance: prov.clone(),
        resume: resume.clone(),
        ..job.clone()
    };
    let found_by = format!("{}/{key}", job.stage);
    let _held = cache.hold(views, &found_by)?;
    let before = cache.snapshot(views);
    let started_at = SystemTime::now();
    let started_unix = crate::cache::stamp::now_unix();
    let started = Instant::now();
    let ran = runner.run(&job, &staging.dir, progress);
    cache.settle_resume_dir(&resume, ran.is_ok());
    // What the job read must be what it was given: no blob changed or vanished, and no view
    // was altered (a stage that deletes cache/out under a sibling) while it ran.
    let changed = cache.changed_since(&before, &found_by, started_unix)?;
    let broken = cache.views_broken(views);
    let ran = match (ran, changed.is_empty(), broken.is_empty()) {
        (r, true, true) => r,
        (_, false, _) => Err(RunFailure::WroteInputs {
            files: changed_files(views, &changed),
        }),
        (_, true, false) => Err(RunFailure::InputsAltered { stages: broken }),
    };
    let finished = match ran {
        Ok(f) => f,
        Err(failure) => {
            let kept = cache.keep_failed(&job.stage, &prov)?;
            let failure = failure.with_log(kept);
            return Ok(Err(match cache.space_left() {
                Some(free) if free < FULL => failure.on_full_disk(cache.root().to_path_buf()),
                _ => failure,
            }));
        }
    };
    let files = cache.ingest(&out)?;
    let output_digest = manifest_digest(&files);
    let mut provenance = provenance(
        started_at,
        started.elapsed().as_secs_f64(),
        &match job.gpu {
            Some(g) => format!("cuda:{g}"),
            None => job.device.to_string(),
        },
        &finished,
    );
    drop_empty_logs(&prov);
    provenance.files = cache.ingest(&prov)?;
    let view = ViewRef {
        stage: job.stage.clone(),
        digest: output_digest.clone(),
        item: job.item.is_some(),
        files,
    };
    cache.publish_view(&out, &view)?;
    Ok(Ok(Produced {
        files: view.files,
        output_digest,
        provenance,
    }))
}

/// A run that printed nothing leaves no log to keep (records stay small: a no-op run reads them).
fn drop_empty_logs(prov: &std::path::Path) {
    for log in [
        nasflow_contract::layout::STDOUT_LOG,
        nasflow_contract::layout::STDERR_LOG,
    ] {
        let path = prov.join(log);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The input files (as `STAGE/path`) whose blobs a job changed.
fn changed_files(views: &[ViewRef], changed: &[Digest]) -> Vec<String> {
    views
        .iter()
        .flat_map(|v| v.files.iter().map(move |f| (v, f)))
        .filter(|(_, f)| changed.contains(&f.digest))
        .map(|(v, f)| format!("{}/{}", v.stage, f.path))
        .collect()
}
