//! Stage and item records: what a run produced (manifest, output digest) and how (provenance).
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blobs::manifest_digest;
use super::valid::{Digest, RelPath, StageName};
use super::{io, Cache, CacheError, Result};
use crate::key::KeyInputs;

pub const RECORD_FORMAT: u32 = 1;

/// One output file: its path inside the output directory and its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: RelPath,
    pub digest: Digest,
    pub size: u64,
}

/// How a result was produced. Not part of any key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Provenance {
    pub started: String,
    pub ended: String,
    /// Seconds since the Unix epoch at the end, for ordering records.
    pub ended_unix: f64,
    pub duration_s: f64,
    pub device: String,
    /// Peak resident memory of the process that computed it.
    pub peak_rss_bytes: u64,
    pub nasflow_version: String,
    pub libtorch_version: String,
    pub host: String,
    /// The run's provenance directory (stdout.log, stderr.log, what the stage wrote there): blobs
    /// like the outputs, but not part of the output digest, and never seen by downstream stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// Set by a forced rerun whose outputs differ from those of the record it replaced under
    /// the same key: that earlier output digest. The stage is not deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Digest>,
    /// The persistent worker process that computed it (native kinds), and how many jobs it
    /// had served before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<nasflow_contract::job::ServedBy>,
}

/// An item of an item-level stage, as listed in the stage record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRef {
    pub key: Digest,
    pub value: Value,
    pub output_digest: Digest,
}

/// The result of one stage for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub format: u32,
    pub stage: StageName,
    pub key: Digest,
    pub key_inputs: KeyInputs,
    pub output_digest: Digest,
    pub files: Vec<FileEntry>,
    /// For an item-level stage: its items in order (their outputs are under `items/NNNNN/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemRef>,
    pub provenance: Provenance,
}

/// The result of one item of an item-level stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemRecord {
    pub format: u32,
    pub stage: StageName,
    pub key: Digest,
    pub value: Value,
    pub key_inputs: KeyInputs,
    pub output_digest: Digest,
    pub files: Vec<FileEntry>,
    pub provenance: Provenance,
}

/// Why a record read from outside cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("it is stored as {stored} but names {named}")]
    Place { stored: String, named: String },
    #[error("its files do not add up to its output digest")]
    Digest,
    #[error("it lists `{0}` twice, or as both a file and a directory")]
    Paths(String),
    #[error("it has format {0}, which this nasflow does not read")]
    Format(u32),
}

/// Checks a manifest: each path once, none also a directory of another, and the digest.
fn check_manifest(
    files: &[FileEntry],
    output_digest: &Digest,
) -> std::result::Result<(), Mismatch> {
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    for w in paths.windows(2) {
        if w[0] == w[1]
            || w[1]
                .strip_prefix(w[0])
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(Mismatch::Paths(w[0].to_string()));
        }
    }
    if manifest_digest(files) != *output_digest {
        return Err(Mismatch::Digest);
    }
    Ok(())
}

fn check_place(
    stage: &str,
    key: &str,
    r_stage: &str,
    r_key: &str,
) -> std::result::Result<(), Mismatch> {
    if stage != r_stage || key != r_key {
        return Err(Mismatch::Place {
            stored: format!("{stage}/{key}"),
            named: format!("{r_stage}/{r_key}"),
        });
    }
    Ok(())
}

impl StageRecord {
    /// The output files, then the provenance files.
    pub fn all_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().chain(&self.provenance.files)
    }

    /// Whether the record is what it says it is, stored where it is (`stage`, `key`).
    pub fn check(&self, stage: &str, key: &str) -> std::result::Result<(), Mismatch> {
        if self.format != RECORD_FORMAT {
            return Err(Mismatch::Format(self.format));
        }
        check_place(stage, key, &self.stage, &self.key)?;
        check_manifest(&self.files, &self.output_digest)
    }
}

impl ItemRecord {
    /// The output files, then the provenance files.
    pub fn all_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().chain(&self.provenance.files)
    }

    /// Whether the item record is what it says it is, stored where it is.
    pub fn check(&self, stage: &str, key: &str) -> std::result::Result<(), Mismatch> {
        if self.format != RECORD_FORMAT {
            return Err(Mismatch::Format(self.format));
        }
        check_place(stage, key, &self.stage, &self.key)?;
        check_manifest(&self.files, &self.output_digest)
    }
}

/// Reads a record file; a file that does not parse, or is not what its place says, is corrupt.
fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    check: impl FnOnce(&T) -> std::result::Result<(), Mismatch>,
) -> Result<Option<T>> {
    let corrupt = |message: String| CacheError::CorruptRecord {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let r: T = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            check(&r).map_err(|e| corrupt(e.to_string()))?;
            Ok(Some(r))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

impl Cache {
    pub fn read_record(&self, stage: &str, key: &str) -> Result<Option<StageRecord>> {
        read_json(&self.record_path(stage, key), |r: &StageRecord| {
            r.check(stage, key)
        })
    }

    pub fn write_record(&self, r: &StageRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(r).expect("record serializes");
        self.write_atomic(&self.record_path(&r.stage, &r.key), &bytes)
    }

    pub fn read_item(&self, stage: &str, key: &str) -> Result<Option<ItemRecord>> {
        read_json(&self.item_path(stage, key), |r: &ItemRecord| {
            r.check(stage, key)
        })
    }

    pub fn write_item(&self, r: &ItemRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(r).expect("record serializes");
        self.write_atomic(&self.item_path(&r.stage, &r.key), &bytes)
    }

    /// The keys of a stage's records.
    pub fn record_keys(&self, stage: &str) -> Vec<String> {
        list_keys(&self.root().join("records").join(stage))
    }

    pub fn item_keys(&self, stage: &str) -> Vec<String> {
        list_keys(&self.root().join("items").join(stage))
    }

    /// Stage names that have records or items.
    pub fn stages_with_records(&self) -> Vec<String> {
        let mut names: Vec<String> = ["records", "items"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(self.root().join(d))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                StageName::new(name).ok().map(|n| n.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A stage's records, newest first (unreadable ones skipped).
    pub fn records_newest_first(&self, stage: &str) -> Vec<StageRecord> {
        let mut v: Vec<StageRecord> = self
            .record_keys(stage)
            .iter()
            .filter_map(|k| self.read_record(stage, k).ok().flatten())
            .collect();
        v.sort_by(|a, b| b.provenance.ended_unix.total_cmp(&a.provenance.ended_unix));
        v
    }

    /// A stage's most recent record: the newest file is found by mtime, and only it is parsed
    /// (`why` and `run` ask this for every stage that reruns).
    pub fn last_record(&self, stage: &str) -> Option<StageRecord> {
        let dir = self.root().join("records").join(stage);
        let newest = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()?;
        let key = newest.1.file_stem()?.to_str()?.to_string();
        self.read_record(stage, &key).ok().flatten()
    }
}

/// The keys of the `KEY.json` files in `dir`; other files (strays, temp files) are ignored.
fn list_keys(dir: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let key = name.to_str()?.strip_suffix(".json")?;
            Digest::new(key).ok().map(|d| d.to_string())
        })
        .collect();
    keys.sort();
    keys
}
