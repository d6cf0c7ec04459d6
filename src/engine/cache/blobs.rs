//! Content-addressed blobs: ingesting a finished output directory, materializing one, verifying.
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use walkdir::WalkDir;

use super::valid::{Digest, RelPath};
use super::{io, Cache, CacheError, FileEntry, Result};

/// Files at least this large are hashed with memory mapping on all cores.
const MMAP_THRESHOLD: u64 = 16 << 20;

/// The blake3 digest and size of a file.
pub fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    let mut hasher = blake3::Hasher::new();
    if size >= MMAP_THRESHOLD {
        hasher.update_mmap_rayon(path).map_err(io(path))?;
    } else {
        let mut file = std::fs::File::open(path).map_err(io(path))?;
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf).map_err(io(path))?;
        hasher.update(&buf);
    }
    Ok((Digest::of(hasher.finalize()), size))
}

/// The digest of a whole output: over its sorted (path, file digest) pairs.
pub fn manifest_digest(files: &[FileEntry]) -> Digest {
    listing_digest(files.iter().map(|f| (f.path.as_str(), f.digest.as_str())))
}

/// The digest of a listing of (relative path, content digest) pairs, in the order given.
pub fn listing_digest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Digest {
    let mut h = blake3::Hasher::new();
    for (path, digest) in entries {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(digest.as_bytes());
        h.update(b"\n");
    }
    Digest::of(h.finalize())
}

/// The regular files under `dir`, as sorted relative '/'-separated paths.
pub fn list_files(dir: &Path) -> Result<Vec<(RelPath, PathBuf)>> {
    let mut out = Vec::new();
    for entry in WalkDir::new(dir).follow_links(false).sort_by_file_name() {
        let entry = entry?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(CacheError::Io {
                path: entry.path().to_path_buf(),
                source: std::io::Error::other(
                    "stage outputs must be regular files (symlinks are not stored)",
                ),
            });
        }
        let rel = entry.path().strip_prefix(dir).expect("under dir");
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .map(|c| c.join("/"));
        let rel = name
            .and_then(|n| RelPath::new(n).ok())
            .ok_or_else(|| CacheError::Io {
                path: entry.path().to_path_buf(),
                source: std::io::Error::other(
                    "an output's path must be UTF-8, without backslashes, and at most 1024 bytes",
                ),
            })?;
        out.push((rel, entry.path().to_path_buf()));
    }
    out.sort();
    Ok(out)
}

fn set_readonly(path: &Path) -> Result<()> {
    let mut perm = std::fs::metadata(path).map_err(io(path))?.permissions();
    if !perm.readonly() {
        perm.set_readonly(true);
        std::fs::set_permissions(path, perm).map_err(io(path))?;
    }
    Ok(())
}

impl Cache {
    /// Stores every file under `dir` as a blob and returns the sorted manifest. Afterwards each
    /// file in `dir` is a (read-only) hard link to its blob, so `dir` can be renamed into out/.
    pub fn ingest(&self, dir: &Path) -> Result<Vec<FileEntry>> {
        list_files(dir)?
            .into_par_iter()
            .map(|(rel, path)| {
                let (digest, size) = hash_file(&path)?;
                self.store_blob(&path, &digest, size)?;
                self.stamp_blob(&digest);
                Ok(FileEntry {
                    path: rel,
                    digest,
                    size,
                })
            })
            .collect()
    }

    /// Makes `file` (whose digest is known) a blob; replaces it by a link to an existing blob.
    /// A file that has other hard links (say, to a file outside the cache) is copied into the
    /// store, never linked: a blob must not share its bytes with anything that can change them.
    fn store_blob(&self, file: &Path, digest: &Digest, size: u64) -> Result<()> {
        let blob = self.blob_path(digest);
        // An existing blob is linked only if it is still what its name says (a changed one is
        // quarantined here and stored again from `file`).
        let existing =
            blob.exists() && self.check_blob(digest, size, "")? == super::stamp::BlobState::Intact;
        if existing {
            std::fs::remove_file(file).map_err(io(file))?;
            return self.link_or_copy(&blob, file);
        }
        let parent = blob.parent().expect("blob dir");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let shared = std::fs::metadata(file).map_err(io(file))?.nlink() > 1;
        if !shared {
            set_readonly(file)?;
            match std::fs::hard_link(file, &blob) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                Err(_) => {} // another filesystem: copy below
            }
        }
        let part = self.tmp_path("blob");
        std::fs::copy(file, &part).map_err(io(&part))?;
        set_readonly(&part)?;
        std::fs::rename(&part, &blob).map_err(io(&blob))?;
        if shared {
            std::fs::remove_file(file).map_err(io(file))?;
            self.link_or_copy(&blob, file)?;
        }
        Ok(())
    }

    pub(crate) fn link_or_copy(&self, blob: &Path, dest: &Path) -> Result<()> {
        if std::fs::hard_link(blob, dest).is_err() {
            std::fs::copy(blob, dest).map_err(io(dest))?;
            set_readonly(dest)?;
        }
        Ok(())
    }

    /// Whether every blob of a manifest is present (no hashing).
    pub fn has_blobs(&self, files: &[FileEntry]) -> bool {
        files.iter().all(|f| self.blob_path(&f.digest).exists())
    }

    /// Every blob digest in the store; files that are not blobs (a `.DS_Store`, a temp file
    /// a copy tool left) are ignored.
    pub fn blob_digests(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("blobs");
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let prefix = shard.file_name().to_string_lossy().to_string();
            for blob in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = format!("{prefix}{}", blob.file_name().to_string_lossy());
                if let (Ok(d), true) = (
                    Digest::new(name),
                    blob.file_type().is_ok_and(|t| t.is_file()),
                ) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes every blob; returns the digests whose content does not match (deleted unless
    /// `dry_run`).
    pub fn verify_blobs(&self, dry_run: bool) -> Result<Vec<Digest>> {
        let corrupt: Vec<Digest> = self
            .blob_digests()?
            .into_par_iter()
            .filter(|d| {
                hash_file(&self.blob_path(d))
                    .map(|(got, _)| got != *d)
                    .unwrap_or(true)
            })
            .collect();
        if !dry_run {
            for d in &corrupt {
                let p = self.blob_path(d);
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        Ok(corrupt)
    }
}
