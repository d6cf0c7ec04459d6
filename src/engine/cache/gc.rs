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
    /// Resume directories (partial downloads) left untouched for [`super::STALE_PARTIAL`].
    pub partials_removed: usize,
}

impl Cache {
    pub fn gc(&self, roots: &Roots, keep_last: usize, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut live_blobs: HashSet<super::Digest> = HashSet::new();
        let mut live_items: HashSet<(String, String)> = HashSet::new();
        let mut live_out: HashSet<std::path::PathBuf> = HashSet::new();
        for stage in self.stages_with_records() {
            for (n, r) in self.records_newest_first(&stage).into_iter().enumerate() {
                let keep =
                    n < keep_last || roots.records.contains(&(stage.clone(), r.key.to_string()));
                if keep {
                    report.records_kept += 1;
                    live_blobs.extend(r.all_files().map(|f| f.digest.clone()));
                    live_items.extend(r.items.iter().map(|i| (stage.clone(), i.key.to_string())));
                    live_out.insert(self.view_dir(&stage, &r.output_digest, false));
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
                        live_out.insert(self.view_dir(&stage, &i.output_digest, true));
                    }
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
                    // Its stamp goes with it (a missing stamp only costs a re-hash).
                    let _ = std::fs::remove_file(self.stamp_path(&d));
                }
            }
        }
        for (dir, bytes) in self.stale_resume_dirs(super::STALE_PARTIAL) {
            report.partials_removed += 1;
            report.bytes_freed += bytes;
            if !dry_run {
                remove_any(&dir)?;
            }
        }
        if !dry_run {
            // Stages' directories of resume directories left empty (runs keep them).
            let partial = self.root().join("partial");
            for stage in std::fs::read_dir(&partial).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(stage.path());
            }
        }
        Ok(report)
    }

    fn remove_dead_out_dirs(&self, live: &HashSet<std::path::PathBuf>) -> Result<()> {
        let out = self.root().join("out");
        let stages: BTreeSet<_> = std::fs::read_dir(&out)
            .map_err(io(&out))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
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
                            remove_any(&item.path())?;
                        }
                    }
                } else if !live.contains(&path) {
                    remove_any(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Drops every record that cannot be trusted, and every record computed from one:
    /// unreadable or inconsistent records, records whose output blobs are missing, stage records
    /// whose items are gone, and (transitively) records whose key names the output digest of a
    /// dropped one. Leaves a store from which the next run recomputes what is gone. Returns how
    /// many records and item records were dropped.
    pub fn drop_untrusted(&self) -> Result<usize> {
        let mut entries = self.trust_entries();
        mark_tampered(&mut entries, &self.tamper_events());
        let dropped = untrusted(&entries);
        for (n, e) in entries.iter().enumerate() {
            if dropped[n] {
                std::fs::remove_file(&e.path).map_err(io(&e.path))?;
            }
        }
        Ok(dropped.iter().filter(|d| **d).count())
    }

    /// Every record and item record, with what decides whether it can be trusted.
    fn trust_entries(&self) -> Vec<TrustEntry> {
        let mut entries = Vec::new();
        for stage in self.stages_with_records() {
            for key in self.record_keys(&stage) {
                let (rec, incomplete) = match self.read_record(&stage, &key) {
                    Ok(Some(r)) => (
                        Some(Lineage {
                            output: r.output_digest.to_string(),
                            from: r.key_inputs.upstream.values().cloned().collect(),
                            items: r
                                .items
                                .iter()
                                .map(|i| format!("{stage}/{}", i.key))
                                .collect(),
                            blobs: r.files.iter().map(|f| f.digest.to_string()).collect(),
                            ran: window(&r.provenance),
                        }),
                        !self.has_blobs(&r.files),
                    ),
                    _ => (None, true),
                };
                let path = self.record_path(&stage, &key);
                entries.push(TrustEntry {
                    path,
                    rec,
                    incomplete,
                    item_key: None,
                });
            }
            for key in self.item_keys(&stage) {
                let (rec, incomplete) = match self.read_item(&stage, &key) {
                    Ok(Some(r)) => {
                        let up = r
                            .key_inputs
                            .item
                            .as_ref()
                            .and_then(|i| i["upstream"].as_str());
                        let mut from: Vec<String> =
                            r.key_inputs.upstream.values().cloned().collect();
                        from.extend(up.map(str::to_string));
                        let lineage = Lineage {
                            output: r.output_digest.to_string(),
                            from,
                            items: Vec::new(),
                            blobs: r.files.iter().map(|f| f.digest.to_string()).collect(),
                            ran: window(&r.provenance),
                        };
                        (Some(lineage), !self.has_blobs(&r.files))
                    }
                    _ => (None, true),
                };
                let path = self.item_path(&stage, &key);
                let item_key = Some(format!("{stage}/{key}"));
                entries.push(TrustEntry {
                    path,
                    rec,
                    incomplete,
                    item_key,
                });
            }
        }
        entries
    }
}

/// What a record was computed from and what it produced.
struct Lineage {
    output: String,
    /// Upstream output digests in its key.
    from: Vec<String>,
    /// Item records it lists (`stage/key`).
    items: Vec<String>,
    /// Its output blobs.
    blobs: Vec<String>,
    /// When it ran (seconds since the epoch).
    ran: (f64, f64),
}

/// When a result was computed, from its provenance (a second's slack either side: the
/// provenance's start is rounded).
fn window(p: &super::Provenance) -> (f64, f64) {
    (p.ended_unix - p.duration_s - 1.0, p.ended_unix + 1.0)
}

/// Marks as incomplete every record that ran while one of its inputs was being written into
/// (a logged [`super::stamp::TamperEvent`]): it may have read the altered bytes, even if the
/// blob was later restored by a rerun of its producer. Such records are dropped with whatever
/// was computed from them.
fn mark_tampered(entries: &mut [TrustEntry], events: &[super::stamp::TamperEvent]) {
    for ev in events {
        let blob = ev.blob.as_str();
        let tainted: HashSet<String> = entries
            .iter()
            .filter_map(|e| e.rec.as_ref())
            .filter(|l| l.blobs.iter().any(|b| b == blob))
            .map(|l| l.output.clone())
            .collect();
        for e in entries.iter_mut() {
            let hit = e.rec.as_ref().is_some_and(|l| {
                l.ran.0 <= ev.to_unix
                    && l.ran.1 >= ev.from_unix
                    && l.from.iter().any(|d| tainted.contains(d))
            });
            e.incomplete |= hit;
        }
    }
}

/// A record or item record as `cache verify` judges it.
struct TrustEntry {
    path: std::path::PathBuf,
    /// `None`: unreadable.
    rec: Option<Lineage>,
    /// Readable, but its output blobs are not all there.
    incomplete: bool,
    item_key: Option<String>,
}

/// Which entries to drop: the bad ones, then (to a fixpoint) whatever was computed from them.
fn untrusted(entries: &[TrustEntry]) -> Vec<bool> {
    let mut bad_digests: HashSet<&str> = HashSet::new();
    let mut bad_items: HashSet<&str> = HashSet::new();
    let mut dropped = vec![false; entries.len()];
    loop {
        let mut changed = false;
        for (n, e) in entries.iter().enumerate() {
            if dropped[n] {
                continue;
            }
            let bad = e.incomplete
                || e.rec.as_ref().is_some_and(|l| {
                    l.from.iter().any(|d| bad_digests.contains(d.as_str()))
                        || l.items.iter().any(|k| bad_items.contains(k.as_str()))
                });
            if bad {
                dropped[n] = true;
                changed = true;
                if let Some(l) = &e.rec {
                    bad_digests.insert(&l.output);
                }
                if let Some(k) = &e.item_key {
                    bad_items.insert(k);
                }
            }
        }
        if !changed {
            return dropped;
        }
    }
}

/// Removes a directory tree or a file (a stray one); what is already gone is fine.
fn remove_any(path: &std::path::Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}
