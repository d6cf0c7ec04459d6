//! What proves a stored blob unchanged without reading it, and what happens when it changed.
//!
//! A blob's *stamp* (`stamps/ab/cdef…`) holds the blob's inode, size and ctime at the moment its
//! content was last known to match its digest (hashed on ingest or import, or re-hashed since).
//! Any write to the blob's inode, through a view's hard link as well, moves its ctime, which no
//! unprivileged process can set back; so a blob whose stat matches its stamp is unchanged, and
//! one that does not is re-hashed before use. Linking a blob into a view also moves its ctime:
//! nasflow checks the blob just before and re-stamps it just after, so its own links cost no
//! re-hash. A missing or unreadable stamp only costs a re-hash.
//!
//! A blob whose bytes no longer match is moved to `quarantine/` and the event is appended to
//! `tampered.jsonl` (which blob, which job found it, the time window in which the write
//! happened), so that `nasflow cache verify` can later drop results that other processes computed
//! from it in that window ([`Cache::tamper_events`]).
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::blobs::hash_file;
use super::valid::Digest;
use super::{io, Cache, FileEntry, Result};

/// The state of a blob a job is about to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Intact,
    /// Its bytes changed; it is now in quarantine/.
    Changed,
    Missing,
}

/// A blob found changed: when, by which job, and the window in which it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TamperEvent {
    pub blob: Digest,
    /// `STAGE/KEY` of the job whose check found it ("" when found outside a job).
    pub found_by: String,
    /// Seconds since the Unix epoch: the write happened between these two.
    pub from_unix: f64,
    pub to_unix: f64,
}

fn stat_line(m: &std::fs::Metadata) -> String {
    format!("{} {} {} {}", m.ino(), m.len(), m.ctime(), m.ctime_nsec())
}

pub(crate) fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Cache {
    pub(crate) fn stamp_path(&self, digest: &Digest) -> PathBuf {
        let d = digest.as_str();
        self.root().join("stamps").join(&d[..2]).join(&d[2..])
    }

    /// Records the blob's current stat as verified. Call only when its content is known good.
    /// Best effort: a stamp that cannot be written costs a re-hash later, nothing else.
    pub fn stamp_blob(&self, digest: &Digest) {
        let Ok(m) = std::fs::metadata(self.blob_path(digest)) else {
            return;
        };
        let path = self.stamp_path(digest);
        if std::fs::read_to_string(&path).is_ok_and(|s| s == stat_line(&m)) {
            return;
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = self.write_atomic(&path, stat_line(&m).as_bytes());
    }

    /// Checks a blob before use: its stat against its stamp, else its bytes against its digest.
    /// A changed blob is quarantined (and the event logged with `found_by`).
    pub fn check_blob(&self, digest: &Digest, size: u64, found_by: &str) -> Result<BlobState> {
        let blob = self.blob_path(digest);
        let Ok(m) = std::fs::metadata(&blob) else {
            return Ok(BlobState::Missing);
        };
        if m.len() == size
            && m.is_file()
            && std::fs::read_to_string(self.stamp_path(digest)).is_ok_and(|s| s == stat_line(&m))
        {
            return Ok(BlobState::Intact);
        }
        let intact = m.is_file() && hash_file(&blob).is_ok_and(|(d, _)| d == *digest);
        if intact {
            self.stamp_blob(digest);
            return Ok(BlobState::Intact);
        }
        // Changed some time after its last stamp: the window starts there.
        let from = std::fs::metadata(self.stamp_path(digest))
            .and_then(|s| s.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.quarantine(digest)?;
        self.log_tamper(&TamperEvent {
            blob: digest.clone(),
            found_by: found_by.to_string(),
            from_unix: from,
            to_unix: now_unix(),
        })?;
        Ok(BlobState::Changed)
    }

    /// The files of a manifest whose blobs are not intact (changed ones quarantined).
    pub fn damaged_files<'f>(
        &self,
        files: &'f [FileEntry],
        found_by: &str,
    ) -> Result<Vec<(&'f FileEntry, BlobState)>> {
        let mut bad = Vec::new();
        for f in files {
            let state = self.check_blob(&f.digest, f.size, found_by)?;
            if state != BlobState::Intact {
                bad.push((f, state));
            }
        }
        Ok(bad)
    }

    /// Appends an event to `tampered.jsonl` (one write of one line: appends from several
    /// processes do not interleave).
    pub fn log_tamper(&self, event: &TamperEvent) -> Result<()> {
        let path = self.root().join("tampered.jsonl");
        let mut line = serde_json::to_vec(event).expect("serializes");
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&line).map_err(io(&path))
    }

    /// Every logged tamper event (unreadable lines are skipped: the log is a help to verify).
    pub fn tamper_events(&self) -> Vec<TamperEvent> {
        let path = self.root().join("tampered.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stored(cache: &Cache, text: &str) -> FileEntry {
        let dir = cache.staging("t").unwrap();
        let out = dir.dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("f.txt"), text).unwrap();
        cache.ingest(&out).unwrap().remove(0)
    }

    fn overwrite(path: &std::path::Path, text: &str) {
        let mut p = std::fs::metadata(path).unwrap().permissions();
        p.set_mode(0o644);
        std::fs::set_permissions(path, p).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_stamped_blob_is_intact_without_a_read_and_a_rewritten_one_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let f = stored(&cache, "hi\n");
        assert_eq!(
            cache.check_blob(&f.digest, f.size, "t").unwrap(),
            BlobState::Intact
        );
        // Same size, other bytes: only the stamp (ctime) can tell.
        overwrite(&cache.blob_path(&f.digest), "HI\n");
        assert_eq!(
            cache.check_blob(&f.digest, f.size, "a/k").unwrap(),
            BlobState::Changed
        );
        assert!(!cache.blob_path(&f.digest).exists());
        assert!(cache
            .root()
            .join("quarantine")
            .join(f.digest.as_str())
            .exists());
        let events = cache.tamper_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].blob, f.digest);
        assert_eq!(events[0].found_by, "a/k");
        assert!(events[0].from_unix <= events[0].to_unix);
        assert_eq!(
            cache.check_blob(&f.digest, f.size, "t").unwrap(),
            BlobState::Missing
        );
    }

    #[test]
    fn a_blob_without_a_stamp_is_rehashed_once_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let f = stored(&cache, "x");
        std::fs::remove_dir_all(cache.root().join("stamps")).unwrap();
        assert_eq!(
            cache.check_blob(&f.digest, f.size, "t").unwrap(),
            BlobState::Intact
        );
        assert!(cache.stamp_path(&f.digest).exists());
        // A record that declares another size does not make a good blob bad.
        assert_eq!(
            cache.check_blob(&f.digest, f.size + 1, "t").unwrap(),
            BlobState::Intact
        );
    }
}
