//! Publication: the one module that builds records and writes them into the cache, and the one
//! that takes the locks guarding a computation (their names are [`LockOf`]'s). A record is the
//! commit point of a result: its blobs and views exist before it is renamed into place, so a
//! reader sees the whole result or none of it.
//!
//! - [`stage`]: a whole stage's record, from what its job produced;
//! - [`item`]: one item's record (the local scheduler and a Slurm task write it the same way);
//! - [`item_stage`]: an item-level stage's record, assembled from its published items
//!   (`items.jsonl` and each item's files under `items/NNNNN/`);
//! - [`lock`]: the lock of a stage, item, Slurm follower or of the store.
use std::time::SystemTime;

use nasflow_contract::layout::{item_dir, ITEMS_LIST};

use crate::batch::ItemJob;
use crate::cache::blobs::manifest_digest;
use crate::cache::lock::{Lock, LockOf};
use crate::cache::record::{ItemRef, RECORD_FORMAT};
use crate::cache::{
    Cache, CacheError, Digest, FileEntry, ItemRecord, Provenance, RelPath, Result, StageName,
    StageRecord,
};
use crate::key::KeyInputs;
use crate::runner::Finished;

/// A job's outputs, stored: blobs, digest, and how they were made.
pub struct Produced {
    pub files: Vec<FileEntry>,
    pub output_digest: Digest,
    pub provenance: Provenance,
}

/// Takes the lock of `of` exclusively (shared for [`LockOf::Store`] unless `exclusive`),
/// calling `on_wait` first when another process holds it.
pub fn lock(
    cache: &Cache,
    of: LockOf<'_>,
    exclusive: bool,
    on_wait: impl FnOnce(),
) -> Result<Lock> {
    let path = of.path(cache.root());
    if exclusive {
        Lock::exclusive(&path, on_wait)
    } else {
        Lock::shared(&path, on_wait)
    }
}

/// Writes the record of a whole stage under `key`.
pub fn stage(
    cache: &Cache,
    name: &str,
    key: &Digest,
    ki: &KeyInputs,
    p: Produced,
) -> Result<StageRecord> {
    let record = StageRecord {
        format: RECORD_FORMAT,
        stage: StageName::new(name)?,
        key: key.clone(),
        key_inputs: ki.clone(),
        output_digest: p.output_digest,
        files: p.files,
        items: vec![],
        provenance: p.provenance,
    };
    cache.write_record(&record)?;
    Ok(record)
}

/// Writes the record of one item; returns it as the stage record will list it.
pub fn item(cache: &Cache, t: &ItemJob, p: Produced) -> Result<ItemRef> {
    let record = ItemRecord {
        format: RECORD_FORMAT,
        stage: StageName::new(t.stage())?,
        key: t.key.clone(),
        value: t.value.clone(),
        key_inputs: t.key_inputs.clone(),
        output_digest: p.output_digest.clone(),
        files: p.files,
        provenance: p.provenance,
    };
    cache.write_item(&record)?;
    Ok(t.item_ref(p.output_digest))
}

/// When and where an item-level stage's items were computed, for its record's provenance.
pub struct ItemStageRun<'a> {
    pub started_at: SystemTime,
    pub device: &'a str,
}

/// Assembles and writes the record of an item-level stage from its published items, in order:
/// `items.jsonl` (the item values) and each item's files under `items/NNNNN/`; its provenance
/// lists each item's provenance files there too, and the largest peak memory of any item.
pub fn item_stage(
    cache: &Cache,
    name: &str,
    key: &Digest,
    ki: &KeyInputs,
    items: Vec<ItemRef>,
    run: ItemStageRun<'_>,
) -> Result<StageRecord> {
    let staging = cache.staging(name)?;
    let list_dir = staging.dir.join("list");
    std::fs::create_dir_all(&list_dir).map_err(crate::cache::io(&list_dir))?;
    let list: String = items.iter().map(|it| format!("{}\n", it.value)).collect();
    let list_file = list_dir.join(ITEMS_LIST);
    std::fs::write(&list_file, list).map_err(crate::cache::io(&list_file))?;
    let mut files: Vec<FileEntry> = cache.ingest(&list_dir)?;
    let (mut peak, mut logs) = (0, Vec::new());
    let under = |n: usize, f: FileEntry| -> Result<FileEntry> {
        let path = RelPath::new(format!("{}/{}", item_dir(n), f.path)).map_err(CacheError::from)?;
        Ok(FileEntry { path, ..f })
    };
    for (n, it) in items.iter().enumerate() {
        let rec = cache
            .read_item(name, &it.key)?
            .ok_or_else(|| CacheError::CorruptRecord {
                path: cache
                    .root()
                    .join("items")
                    .join(name)
                    .join(format!("{}.json", it.key)),
                message: "the item record vanished while its stage was assembled".into(),
            })?;
        peak = peak.max(rec.provenance.peak_rss_bytes);
        for f in rec.files {
            files.push(under(n, f)?);
        }
        for f in rec.provenance.files {
            logs.push(under(n, f)?);
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let elapsed = run
        .started_at
        .elapsed()
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let finished = Finished {
        peak_rss_bytes: peak,
        ..Finished::default()
    };
    let mut provenance = provenance(run.started_at, elapsed, run.device, &finished);
    provenance.files = logs;
    let record = StageRecord {
        format: RECORD_FORMAT,
        stage: StageName::new(name)?,
        key: key.clone(),
        key_inputs: ki.clone(),
        output_digest: manifest_digest(&files),
        files,
        items,
        provenance,
    };
    cache.write_record(&record)?;
    Ok(record)
}

/// The engine's facts about a run: when, how long, where, with what.
pub fn provenance(
    started_at: SystemTime,
    duration_s: f64,
    device: &str,
    finished: &Finished,
) -> Provenance {
    let ended = SystemTime::now();
    Provenance {
        started: humantime::format_rfc3339_seconds(started_at).to_string(),
        ended: humantime::format_rfc3339_seconds(ended).to_string(),
        ended_unix: ended
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        duration_s,
        device: device.to_string(),
        peak_rss_bytes: finished.peak_rss_bytes,
        nasflow_version: env!("CARGO_PKG_VERSION").to_string(),
        libtorch_version: finished.libtorch.clone().unwrap_or_default(),
        host: crate::cache::hostname(),
        files: Vec::new(),
        replaced: None,
        worker: finished.worker.clone(),
    }
}
