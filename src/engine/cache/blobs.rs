//! Content-addressed blobs: ingesting a finished output directory, materializing one, verifying.
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use walkdir::WalkDir;

use super::{io, Cache, CacheError, FileEntry, Result};

/// Files at least this large are hashed with memory mapping on all cores.
const MMAP_THRESHOLD: u64 = 16 << 20;

/// The blake3 digest (hex) and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
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
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// The digest of a whole output: over its sorted (path, file digest) pairs.
pub fn manifest_digest(files: &[FileEntry]) -> String {
    listing_digest(files.iter().map(|f| (f.path.as_str(), f.digest.as_str())))
}

/// The digest of a listing of (relative path, content digest) pairs, in the order given.
pub fn listing_digest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = blake3::Hasher::new();
    for (path, digest) in entries {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(digest.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// The regular files under `dir`, as sorted relative '/'-separated paths.
pub fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
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
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
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
                self.store_blob(&path, &digest)?;
                Ok(FileEntry {
                    path: rel,
                    digest,
                    size,
                })
            })
            .collect()
    }

    /// Makes `file` (whose digest is known) a blob; replaces it by a link to an existing blob.
    fn store_blob(&self, file: &Path, digest: &str) -> Result<()> {
        let blob = self.blob_path(digest);
        if blob.exists() {
            std::fs::remove_file(file).map_err(io(file))?;
            return self.link_or_copy(&blob, file);
        }
        let parent = blob.parent().expect("blob dir");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        set_readonly(file)?;
        match std::fs::hard_link(file, &blob) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(_) => {
                // Another filesystem: copy into tmp/ and rename into place.
                let part = self.tmp_path("blob");
                std::fs::copy(file, &part).map_err(io(&part))?;
                std::fs::rename(&part, &blob).map_err(io(&blob))
            }
        }
    }

    fn link_or_copy(&self, blob: &Path, dest: &Path) -> Result<()> {
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

    /// Renames a staged, ingested directory to `dest`; if another process published the same
    /// result first, keeps theirs.
    pub fn publish_dir(&self, staged: &Path, dest: &Path) -> Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match std::fs::rename(staged, dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(io(dest)(e)),
        }
    }

    /// Publishes a freshly computed output at `dest`, replacing what is there: after a forced
    /// rerun the key is the same but the files may differ, and a stale view must not survive.
    pub fn replace_dir(&self, staged: &Path, dest: &Path) -> Result<()> {
        self.drop_dir(dest)?;
        self.publish_dir(staged, dest)
    }

    /// Removes a materialized output directory (moved aside first, so no reader sees it half
    /// deleted); the next `materialize` rebuilds it from the current record.
    pub fn drop_dir(&self, dest: &Path) -> Result<()> {
        if dest.is_dir() {
            let trash = self.staging("replaced")?;
            std::fs::rename(dest, trash.dir.join("old")).map_err(io(dest))?;
            let _ = std::fs::remove_dir_all(&trash.dir);
        }
        Ok(())
    }

    /// Builds `dest` from a manifest's blobs (hard links) unless it is already there.
    pub fn materialize(&self, files: &[FileEntry], dest: &Path) -> Result<()> {
        if dest.is_dir() {
            return Ok(());
        }
        let staging = self.staging("materialize")?;
        let tree = staging.dir.join("out");
        std::fs::create_dir_all(&tree).map_err(io(&tree))?;
        for f in files {
            let target = tree.join(&f.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let blob = self.blob_path(&f.digest);
            if !blob.exists() {
                return Err(CacheError::Io {
                    path: blob,
                    source: std::io::Error::other("blob missing: run `nasflow cache verify`"),
                });
            }
            self.link_or_copy(&blob, &target)?;
        }
        self.publish_dir(&tree, dest)
    }

    /// Every blob digest in the store.
    pub fn blob_digests(&self) -> Result<Vec<String>> {
        let dir = self.root().join("blobs");
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let prefix = shard.file_name().to_string_lossy().to_string();
            for blob in std::fs::read_dir(shard.path())
                .map_err(io(&shard.path()))?
                .flatten()
            {
                out.push(format!("{prefix}{}", blob.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes every blob; returns the digests whose content does not match (deleted unless
    /// `dry_run`).
    pub fn verify_blobs(&self, dry_run: bool) -> Result<Vec<String>> {
        let corrupt: Vec<String> = self
            .blob_digests()?
            .into_par_iter()
            .filter(|d| {
                hash_file(&self.blob_path(d))
                    .map(|(got, _)| &got != d)
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
