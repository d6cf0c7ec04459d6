//! Digests of declared inputs, re-hashed only when their size, mtime or inode changed.
//!
//! Like git's index, an entry whose mtime is within [`RACY_WINDOW`] of the moment it was hashed is
//! not trusted (a write in the same clock tick would go unnoticed), so it is hashed again next
//! time. The file is machine-local (inodes) and is not exported with the cache.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::blobs::{hash_file, list_files, listing_digest};
use super::{io, Cache, Result};

const RACY_WINDOW_NS: i128 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    digest: String,
}

#[derive(Debug, Default)]
pub struct StatCache {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    dirty: bool,
    /// How many files were actually hashed (for tests and benchmarks).
    pub hashed: usize,
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl StatCache {
    pub fn load(cache: &Cache) -> StatCache {
        let path = cache.root().join("statcache.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path,
            entries,
            dirty: false,
            hashed: 0,
        }
    }

    pub fn save(&self, cache: &Cache) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        cache.write_atomic(
            &self.path,
            &serde_json::to_vec(&self.entries).expect("serializes"),
        )
    }

    /// The digest of a declared input: a file's content digest, or for a directory a digest over
    /// its files' relative paths and digests.
    pub fn digest(&mut self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_dir() {
            let mut listing = Vec::new();
            for (rel, file) in list_files(path)? {
                let digest = self.file_digest(&file)?;
                listing.push((rel, digest));
            }
            return Ok(
                listing_digest(listing.iter().map(|(r, d)| (r.as_str(), d.as_str()))).to_string(),
            );
        }
        self.file_digest(path)
    }

    fn file_digest(&mut self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let id = path.to_string_lossy().to_string();
        if let Some(e) = self.entries.get(&id) {
            if e.size == meta.len()
                && e.mtime_ns == mtime_ns
                && e.ino == meta.ino()
                && e.dev == meta.dev()
            {
                return Ok(e.digest.clone());
            }
        }
        let (digest, size) = hash_file(path)?;
        let digest = digest.to_string();
        self.hashed += 1;
        if now_ns() - mtime_ns > RACY_WINDOW_NS {
            let entry = Entry {
                size,
                mtime_ns,
                ino: meta.ino(),
                dev: meta.dev(),
                digest: digest.clone(),
            };
            self.entries.insert(id, entry);
            self.dirty = true;
        } else if self.entries.remove(&id).is_some() {
            self.dirty = true;
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehashes_only_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let file = dir.path().join("input.txt");
        std::fs::write(&file, "one").unwrap();
        // Make the file look old so that its entry is trusted.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut sc = StatCache::load(&cache);
        let d1 = sc.digest(&file).unwrap();
        sc.save(&cache).unwrap();
        let mut sc = StatCache::load(&cache);
        assert_eq!(sc.digest(&file).unwrap(), d1);
        assert_eq!(sc.hashed, 0, "unchanged file must not be re-hashed");
        std::fs::write(&file, "two").unwrap();
        assert_ne!(sc.digest(&file).unwrap(), d1);
        assert_eq!(sc.hashed, 1);
    }
}
