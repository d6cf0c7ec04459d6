//! `nasflow gc`: keep what the current pipeline needs and the newest records of each stage,
//! delete the rest (records, item records, materialized outputs, unreferenced blobs).
use std::collections::{BTreeSet, HashSet};

use super::{io, Cache, Result};

/// What to keep besides the newest `keep_last` records per stage.
#[derive(Debug, Default)]
pub struct Roots {
    /// (stage, key) of stage records the current pipeline uses.
    pub records: HashSet<(String, String)>,
    /// Stages whose current result is not complete yet: all their item records are kept, so
    /// that an interrupted item-level stage loses nothing.
    pub stages_in_progress: HashSet<String>,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub records_removed: usize,
    pub items_removed: usize,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub records_kept: usize,
}

impl Cache {
    pub fn gc(&self, roots: &Roots, keep_last: usize, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut live_blobs: HashSet<String> = HashSet::new();
        let mut live_items: HashSet<(String, String)> = HashSet::new();
        let mut live_out: HashSet<std::path::PathBuf> = HashSet::new();
        for stage in self.stages_with_records() {
            for (n, r) in self.records_newest_first(&stage).into_iter().enumerate() {
                let keep = n < keep_last || roots.records.contains(&(stage.clone(), r.key.clone()));
                if keep {
                    report.records_kept += 1;
                    live_blobs.extend(r.all_files().map(|f| f.digest.clone()));
                    live_items.extend(r.items.iter().map(|i| (stage.clone(), i.key.clone())));
                    live_out.insert(self.out_dir(&stage, &r.key, false));
                } else {
                    report.records_removed += 1;
                    if !dry_run {
                        let p = self.record_path(&stage, &r.key);
                        std::fs::remove_file(&p).map_err(io(&p))?;
                    }
                }
            }
            for key in self.item_keys(&stage) {
                let keep = roots.stages_in_progress.contains(&stage)
                    || live_items.contains(&(stage.clone(), key.clone()));
                if keep {
                    if let Ok(Some(i)) = self.read_item(&stage, &key) {
                        live_blobs.extend(i.all_files().map(|f| f.digest.clone()));
                    }
                    live_out.insert(self.out_dir(&stage, &key, true));
                } else {
                    report.items_removed += 1;
                    if !dry_run {
                        let p = self.item_path(&stage, &key);
                        std::fs::remove_file(&p).map_err(io(&p))?;
                    }
                }
            }
        }
        if !dry_run {
            self.remove_dead_out_dirs(&live_out)?;
        }
        for d in self.blob_digests()? {
            if !live_blobs.contains(&d) {
                let p = self.blob_path(&d);
                report.blobs_removed += 1;
                report.bytes_freed += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                if !dry_run {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
        Ok(report)
    }

    fn remove_dead_out_dirs(&self, live: &HashSet<std::path::PathBuf>) -> Result<()> {
        let out = self.root().join("out");
        let stages: BTreeSet<_> = std::fs::read_dir(&out)
            .map_err(io(&out))?
            .flatten()
            .map(|e| e.path())
            .collect();
        for stage_dir in stages {
            for entry in std::fs::read_dir(&stage_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = entry.path();
                if path.file_name().is_some_and(|n| n == "items") {
                    for item in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                        if !live.contains(&item.path()) {
                            std::fs::remove_dir_all(item.path()).map_err(io(&item.path()))?;
                        }
                    }
                } else if !live.contains(&path) {
                    std::fs::remove_dir_all(&path).map_err(io(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Drops records (and materialized outputs) that reference missing blobs; returns how many.
    pub fn drop_records_missing_blobs(&self) -> Result<usize> {
        let mut dropped = 0;
        for stage in self.stages_with_records() {
            for key in self.record_keys(&stage) {
                let ok = matches!(self.read_record(&stage, &key), Ok(Some(r)) if self.has_blobs(&r.files));
                if !ok {
                    let p = self.record_path(&stage, &key);
                    std::fs::remove_file(&p).map_err(io(&p))?;
                    let _ = std::fs::remove_dir_all(self.out_dir(&stage, &key, false));
                    dropped += 1;
                }
            }
            for key in self.item_keys(&stage) {
                let ok =
                    matches!(self.read_item(&stage, &key), Ok(Some(r)) if self.has_blobs(&r.files));
                if !ok {
                    let p = self.item_path(&stage, &key);
                    std::fs::remove_file(&p).map_err(io(&p))?;
                    let _ = std::fs::remove_dir_all(self.out_dir(&stage, &key, true));
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }
}
