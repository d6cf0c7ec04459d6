//! Views: the materialized output directories downstream stages read, and what keeps results
//! immutable once stored.
//!
//! A view is `out/STAGE/DIGEST/` (an item's: `out/STAGE/items/DIGEST/`), named by the *output
//! digest*, holding hard links to the blobs. Its content therefore never changes: a forced rerun
//! that reproduces the outputs publishes nothing new, and one that does not gets a directory of
//! its own, so no view is ever replaced under a reader. A view is checked on every use (each file
//! there, a link to its blob, nothing else: `stat`s only) and rebuilt when it is not whole, under
//! an exclusive lock that waits for its readers; each job holds shared locks on its input views
//! until it ends. gc (which runs alone: the store lock) removes the views no kept record names.
//!
//! # Why an after-run check, and not copies, reflinks or read-only mounts
//! Hard links are what makes a view cost nothing, but through one a stage can write into a blob
//! (as root, which containers and CI are, the read-only bit does not stop it). The choices were:
//! a private copy per job (a 2 GB input costs a 2 GB copy every run), a reflink (ext4 and overlay
//! filesystems, the common ones, have none), a read-only bind mount (needs privileges a user or
//! a container does not have). nasflow checks instead: before a job runs it `stat`s the blobs
//! behind its inputs, and after it ends it `stat`s them again. Any write to a file changes its
//! inode's ctime, which no unprivileged process can set back (`touch` and `utimensat` set mtime
//! and atime only), so a same-size rewrite with the mtime restored is still seen. A blob whose
//! ctime moved is re-hashed (once; a link made by a concurrent materialization also moves it),
//! and one whose bytes changed is taken out of the store (`quarantine/`): the stage fails naming
//! the file, the records that named the blob are no longer usable, and the next run recomputes
//! them. A no-op run runs no job and pays nothing; a job reading a 2 GB input pays two `stat`s,
//! and one re-hash only when its ctime moved.
//!
//! The window this leaves: a job that reads a blob while another job is corrupting it may read the
//! bad bytes before the check catches the writer.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::blobs::hash_file;
use super::lock::Lock;
use super::stamp::BlobState;
use super::valid::Digest;
use super::{io, Cache, CacheError, FileEntry, Result};

/// A view a job reads: where it is, and the manifest it must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewRef {
    pub stage: String,
    pub digest: Digest,
    pub item: bool,
    pub files: Vec<FileEntry>,
}

/// Views held for reading (shared locks) until dropped.
pub struct Held {
    _locks: Vec<Lock>,
}

/// The state of the blobs behind a job's inputs: (digest, ctime, size) of each.
pub struct Snapshot(Vec<(Digest, (i64, i64, u64))>);

fn stat_key(m: &std::fs::Metadata) -> (i64, i64, u64) {
    (m.ctime(), m.ctime_nsec(), m.len())
}

impl Cache {
    /// Where the view of an output with digest `digest` is.
    pub fn view_dir(&self, stage: &str, digest: &Digest, item: bool) -> PathBuf {
        let base = self.root().join("out").join(stage);
        if item {
            base.join("items").join(digest.as_str())
        } else {
            base.join(digest.as_str())
        }
    }

    fn view_lock(&self, v: &ViewRef) -> PathBuf {
        super::lock::LockOf::View {
            stage: &v.stage,
            item: v.item,
            digest: &v.digest,
        }
        .path(self.root())
    }

    /// Makes the view whole (building or rebuilding it) and returns its directory.
    pub fn materialize(&self, v: &ViewRef) -> Result<PathBuf> {
        let dir = self.view_dir(&v.stage, &v.digest, v.item);
        if !self.view_is_whole(&v.files, &dir) {
            let _exclusive = Lock::exclusive(&self.view_lock(v), || {})?;
            if !self.view_is_whole(&v.files, &dir) {
                self.build_view(v, &dir)?;
            }
        }
        Ok(dir)
    }

    /// Checks the blobs behind the views (their stamps, else their bytes; a changed one is
    /// quarantined), materializes the views and holds them for reading until the guard is
    /// dropped. A view that cannot be made whole is an error, never a retry without end.
    pub fn hold(&self, views: &[ViewRef], found_by: &str) -> Result<Held> {
        let mut locks = Vec::with_capacity(views.len());
        for v in views {
            if let Some((f, state)) = self.damaged_files(&v.files, found_by)?.into_iter().next() {
                return Err(CacheError::damaged(&v.stage, f, state));
            }
            let dir = self.view_dir(&v.stage, &v.digest, v.item);
            let mut rebuilt = false;
            loop {
                let shared = Lock::shared(&self.view_lock(v), || {})?;
                if self.view_is_whole(&v.files, &dir) {
                    locks.push(shared);
                    break;
                }
                drop(shared);
                if rebuilt {
                    return Err(CacheError::Io {
                        path: dir,
                        source: std::io::Error::other(
                            "this view of stored outputs cannot be made whole (its record does not match its blobs)\n  help: run `nasflow cache verify`",
                        ),
                    });
                }
                self.materialize(v)?;
                rebuilt = true;
            }
        }
        Ok(Held { _locks: locks })
    }

    /// The stages whose views are no longer whole: after a job, a
    /// view that changed or vanished while it ran means the job may have read something else.
    pub fn views_broken(&self, views: &[ViewRef]) -> Vec<String> {
        views
            .iter()
            .filter(|v| !self.view_is_whole(&v.files, &self.view_dir(&v.stage, &v.digest, v.item)))
            .map(|v| v.stage.clone())
            .collect()
    }

    /// Whether `dir` holds exactly the manifest's files, each a link to its blob (or, where the
    /// view and the store are on different filesystems, a file of the blob's size).
    fn view_is_whole(&self, files: &[FileEntry], dir: &Path) -> bool {
        let Ok(top) = std::fs::symlink_metadata(dir) else {
            return false;
        };
        if !top.is_dir() {
            return false;
        }
        let whole = files.iter().all(|f| {
            let Ok(m) = std::fs::symlink_metadata(dir.join(f.path.as_str())) else {
                return false;
            };
            let Ok(b) = std::fs::metadata(self.blob_path(&f.digest)) else {
                return false;
            };
            let linked = m.dev() == b.dev() && m.ino() == b.ino();
            m.is_file() && m.len() == f.size && (linked || m.dev() != b.dev())
        });
        whole && count_files(dir) == files.len()
    }

    /// Builds a view in tmp/ and renames it into place, moving a damaged one aside first. Each
    /// blob is checked just before it is linked and re-stamped just after ([`super::stamp`]).
    fn build_view(&self, v: &ViewRef, dest: &Path) -> Result<()> {
        let files = &v.files;
        let staging = self.staging("view")?;
        let tree = staging.dir.join("out");
        std::fs::create_dir_all(&tree).map_err(io(&tree))?;
        for f in files {
            let target = tree.join(f.path.as_str());
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let state = self.check_blob(&f.digest, f.size, "")?;
            if state != BlobState::Intact {
                return Err(CacheError::damaged(&v.stage, f, state));
            }
            self.link_or_copy(&self.blob_path(&f.digest), &target)?;
            self.stamp_blob(&f.digest);
        }
        if std::fs::symlink_metadata(dest).is_ok() {
            let trash = staging.dir.join("damaged");
            std::fs::rename(dest, &trash).map_err(io(dest))?;
        }
        self.publish_dir(&tree, dest)
    }

    /// Publishes a freshly computed, ingested output directory as the view of its digest. A view
    /// of the same digest holds the same files: if one exists it is kept (readers may be in it)
    /// and the staged directory is left to its staging's cleanup.
    pub fn publish_view(&self, staged: &Path, v: &ViewRef) -> Result<()> {
        let dest = self.view_dir(&v.stage, &v.digest, v.item);
        if std::fs::symlink_metadata(&dest).is_ok() {
            self.materialize(v)?;
            return Ok(());
        }
        self.publish_dir(staged, &dest)
    }

    /// Renames a staged directory to `dest`; if another process published one first, keeps it.
    fn publish_dir(&self, staged: &Path, dest: &Path) -> Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::rename(staged, dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(io(dest)(e)),
        }
    }

    /// The state of the blobs behind `views`, before a job runs.
    pub fn snapshot(&self, views: &[ViewRef]) -> Snapshot {
        let mut out = Vec::new();
        for f in views.iter().flat_map(|v| &v.files) {
            if let Ok(m) = std::fs::metadata(self.blob_path(&f.digest)) {
                out.push((f.digest.clone(), stat_key(&m)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Snapshot(out)
    }

    /// After a job: the blobs that changed while it ran (their ctime moved and their bytes no
    /// longer match their digest), or vanished (another job's check took them out first). Each
    /// changed one is moved to `quarantine/` and logged, so no record can use it again.
    pub fn changed_since(
        &self,
        snap: &Snapshot,
        found_by: &str,
        started_unix: f64,
    ) -> Result<Vec<Digest>> {
        let mut changed = Vec::new();
        for (digest, before) in &snap.0 {
            let path = self.blob_path(digest);
            let Ok(m) = std::fs::metadata(&path) else {
                changed.push(digest.clone());
                continue;
            };
            if stat_key(&m) == *before {
                continue;
            }
            let intact = hash_file(&path).is_ok_and(|(d, _)| d == *digest);
            if intact {
                self.stamp_blob(digest);
            } else {
                self.quarantine(digest)?;
                self.log_tamper(&super::stamp::TamperEvent {
                    blob: digest.clone(),
                    found_by: found_by.to_string(),
                    from_unix: started_unix,
                    to_unix: super::stamp::now_unix(),
                })?;
                changed.push(digest.clone());
            }
        }
        Ok(changed)
    }

    /// Moves a blob out of the store, keeping its bytes for a look (`quarantine/DIGEST`).
    pub fn quarantine(&self, digest: &Digest) -> Result<()> {
        let dir = self.root().join("quarantine");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let from = self.blob_path(digest);
        let to = dir.join(digest.as_str());
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&from)(e)),
        }
    }
}

fn count_files(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .count()
}
