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
    let log = ProgressLog::create(&prov.join(nasflow_contract::layout::PROGRESS_LOG));
    let logged = |p: &Progress| {
        log.record(p);
        progress(p)
    };
    let ran = runner.run(&job, &staging.dir, &logged);
    drop(log);
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

/// The progress a job reports, written to its provenance directory: at most one line a second
/// (elapsed seconds, done/total, unit, note), plus every line whose note changed and the last.
struct ProgressLog {
    state: std::sync::Mutex<Option<LogState>>,
}

struct LogState {
    file: std::io::BufWriter<std::fs::File>,
    started: Instant,
    last: Option<Instant>,
    note: String,
}

impl ProgressLog {
    /// A log at `path`; one that cannot be created records nothing (the run goes on).
    fn create(path: &std::path::Path) -> ProgressLog {
        let state = std::fs::File::create(path).ok().map(|f| LogState {
            file: std::io::BufWriter::new(f),
            started: Instant::now(),
            last: None,
            note: String::new(),
        });
        ProgressLog {
            state: std::sync::Mutex::new(state),
        }
    }

    fn record(&self, p: &Progress) {
        use std::io::Write;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_mut() else {
            return;
        };
        let now = Instant::now();
        let due = s
            .last
            .is_none_or(|t| now.duration_since(t).as_secs_f64() >= 1.0);
        if !(due || p.note != s.note || p.done == p.total) {
            return;
        }
        let unit = if p.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", p.unit)
        };
        let note = if p.note.is_empty() {
            String::new()
        } else {
            format!(", {}", p.note)
        };
        let at = now.duration_since(s.started).as_secs_f64();
        let _ = writeln!(s.file, "[{at:8.1}s] {}/{}{unit}{note}", p.done, p.total);
        s.last = Some(now);
        s.note.clone_from(&p.note);
    }
}

/// A run that printed nothing leaves no log to keep (records stay small: a no-op run reads them).
fn drop_empty_logs(prov: &std::path::Path) {
    for log in [
        nasflow_contract::layout::STDOUT_LOG,
        nasflow_contract::layout::STDERR_LOG,
        nasflow_contract::layout::PROGRESS_LOG,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_log_keeps_a_line_a_second_every_new_note_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.log");
        let log = ProgressLog::create(&path);
        let p = |done, note: &str| Progress {
            done,
            total: 10,
            unit: "epochs".into(),
            note: note.into(),
        };
        log.record(&p(1, ""));
        log.record(&p(2, "")); // within the second, same note: left out
        log.record(&p(3, "loss 0.5")); // a new note
        log.record(&p(10, "loss 0.5")); // the end
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("] 1/10 epochs"), "{text}");
        assert!(lines[1].ends_with("] 3/10 epochs, loss 0.5"), "{text}");
        assert!(lines[2].ends_with("] 10/10 epochs, loss 0.5"), "{text}");
    }
}
