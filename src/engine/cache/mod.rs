//! The content-addressed store under the cache directory.
//!
//! ```text
//! cache/
//!   blobs/ab/cdef…             file contents by blake3 digest (read-only)
//!   records/STAGE/KEY.json     one record per (stage, key): output manifest + provenance
//!   items/STAGE/KEY.json       one record per item of an item-level stage
//!   out/STAGE/DIGEST/…         views: materialized outputs (hard links to blobs), named by output
//!                              digest; derived, checked on use, rebuilt when not whole (see [`view`])
//!   quarantine/DIGEST          blobs that changed after they were stored (a stage wrote into its
//!                              inputs, or a hand edit), taken out of the store
//!   stamps/ab/cdef…            the stat of each blob when its bytes were last verified (see
//!                              [`stamp`]); tampered.jsonl logs each blob found changed
//!   tmp/                       staging directories of running stages, each with its lock
//!   partial/STAGE/KEY/         a run's resumable work (a download's partial file): kept when the
//!                              run fails, removed when one succeeds; the tmp/ sweep leaves it
//!                              alone, `gc` removes what was left untouched for [`STALE_PARTIAL`]
//!   failed/STAGE/…             the provenance directories (logs) of the last failed runs
//!   locks/                     advisory locks (a killed process's locks are released by the OS)
//!   statcache.json             size/mtime/inode → digest of declared inputs; machine-local
//! ```
//!
//! A record's provenance (timings, host, the run's stdout and stderr, whatever the stage wrote to
//! its provenance directory) is stored with it, its files as blobs, but it is not part of the
//! output digest: a rerun that reproduces the outputs is an early cutoff whatever its timings.
//!
//! Every path stored in a record is relative, so a cache directory can be moved, archived and
//! restored. A record is the commit point: it is renamed into place only after its blobs and
//! materialized directory exist, so a killed run leaves either a complete result or none.
pub mod blobs;
pub mod bundle;
pub mod gc;
pub mod lock;
pub mod record;
pub mod remote;
pub mod stamp;
pub mod statcache;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The validated names (in [`crate::valid`], which the key module uses too).
pub use crate::valid;
pub use record::{FileEntry, ItemRecord, Provenance, StageRecord};
pub use valid::{Digest, RelPath, StageName};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt record: {message}\n  help: run `nasflow cache verify` to drop it", path.display())]
    CorruptRecord { path: PathBuf, message: String },
    #[error("{0}")]
    Bundle(String),
    /// A stored output's blob changed or vanished behind the cache's back.
    #[error("{}", damaged(file, digest, *changed))]
    Damaged {
        file: String,
        digest: Digest,
        changed: bool,
    },
    #[error(transparent)]
    Invalid(#[from] valid::Invalid),
    #[error("{}: not a nasflow cache directory: {why}\n  help: point `cache` in [pipeline] at a new or empty directory (nasflow deletes files inside its cache); a directory nasflow made holds {MARKER}", path.display())]
    NotACache { path: PathBuf, why: String },
}

pub type Result<T> = std::result::Result<T, CacheError>;

impl CacheError {
    /// `stage`'s stored output `f`, whose blob was found in `state` (changed or missing).
    pub fn damaged(stage: &str, f: &FileEntry, state: stamp::BlobState) -> CacheError {
        CacheError::Damaged {
            file: format!("{stage}/{}", f.path),
            digest: f.digest.clone(),
            changed: state == stamp::BlobState::Changed,
        }
    }
}

fn damaged(file: &str, digest: &Digest, changed: bool) -> String {
    let stage = file.split('/').next().unwrap_or(file);
    if changed {
        format!("stored output `{file}` was changed outside nasflow (blob {digest} no longer matches its digest): it was moved to quarantine/, and `{stage}` is recomputed on the next run\n  help: stored outputs are read-only; copy a file before editing it")
    } else {
        format!("stored output `{file}` is missing from the cache (blob {digest}): `{stage}` is recomputed on the next run")
    }
}

impl From<walkdir::Error> for CacheError {
    fn from(e: walkdir::Error) -> Self {
        let path = e.path().map(Path::to_path_buf).unwrap_or_default();
        CacheError::Io {
            path,
            source: e.into(),
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Failed runs whose logs are kept per stage.
pub const FAILED_KEPT: usize = 5;

/// How old an unlocked temp file must be before a sweep removes it.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// How old another host's staging directory must be before a sweep removes it: its lock cannot
/// be tested from here (flock does not reach across every shared filesystem), so only age tells.
const STALE_OTHER_HOST: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// How long a resume directory must be left untouched before `gc` removes it (a live download
/// writes to it every moment).
pub const STALE_PARTIAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// This host's name (provenance, and the prefix of names under tmp/).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A cache directory.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// Names under tmp/ start with it, so that hosts sharing the cache never collide and each
    /// sweeps only its own leftovers.
    host: String,
    counter: AtomicU64,
}

impl Cache {
    /// Opens (and creates) a cache directory: one that nasflow created (it holds
    /// [`MARKER`]), a new or empty one, or one that holds nothing but nasflow's own layout (a
    /// cache from before the marker, or restored in CI), which is adopted by writing the marker.
    /// Anything else is refused: nasflow sweeps and deletes inside its cache, so it must never
    /// take a directory holding the user's own files for one.
    pub fn open(root: &Path) -> Result<Cache> {
        claim(root)?;
        for sub in ["blobs", "records", "items", "out", "tmp", "locks"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let root = root.canonicalize().map_err(io(root))?;
        let host: String = hostname()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(Cache {
            root,
            host: if host.is_empty() { "host".into() } else { host },
            counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob is. A [`Digest`] is 64 hex characters, so this cannot leave `blobs/`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let d = digest.as_str();
        self.root.join("blobs").join(&d[..2]).join(&d[2..])
    }

    pub fn record_path(&self, stage: &str, key: &str) -> PathBuf {
        self.root
            .join("records")
            .join(stage)
            .join(format!("{key}.json"))
    }

    pub fn item_path(&self, stage: &str, key: &str) -> PathBuf {
        self.root
            .join("items")
            .join(stage)
            .join(format!("{key}.json"))
    }

    /// A fresh staging directory under tmp/, locked for as long as the guard lives.
    pub fn staging(&self, label: &str) -> Result<Staging> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}-{}-{}-{n}-{label}",
            self.host,
            std::process::id(),
            nanos()
        );
        let dir = self.root.join("tmp").join(&name);
        let lock = lock::Lock::try_exclusive(&self.root.join("tmp").join(format!("{name}.lock")))?
            .expect("a fresh staging lock is free");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Staging { dir, _lock: lock })
    }

    /// Whether a name under tmp/ was made on this host (names from before hosts were part of
    /// them start with the pid, a number, and count as this host's).
    fn made_here(&self, name: &str) -> bool {
        let first = name.split('-').next().unwrap_or("");
        name.starts_with(&format!("{}-", self.host))
            || (!first.is_empty() && first.chars().all(|c| c.is_ascii_digit()))
    }

    /// Removes staging directories left by killed processes on this host (their locks are
    /// free), other hosts' only after [`STALE_OTHER_HOST`], and temp files older than
    /// [`STALE_TMP`] (a live process renames its temp files within seconds).
    pub fn sweep_staging(&self) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        for entry in std::fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
            let path = entry.path();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let is_lock = path.extension().is_some_and(|e| e == "lock");
            if is_file && !is_lock {
                if older_than(&entry, STALE_TMP) && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
                continue;
            }
            if is_lock {
                let name = entry.file_name().to_string_lossy().to_string();
                let dead = if self.made_here(&name) {
                    // Free lock: its process died. Where the filesystem cannot lock, only age
                    // tells, as for other hosts.
                    match lock::Lock::try_exclusive(&path)? {
                        Some(l) if l.is_held() => true,
                        Some(_) => older_than(&entry, STALE_OTHER_HOST),
                        None => false,
                    }
                } else {
                    older_than(&entry, STALE_OTHER_HOST)
                };
                if dead {
                    let _ = std::fs::remove_dir_all(path.with_extension(""));
                    let _ = std::fs::remove_file(&path);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The resume directory of (stage, key), created if missing.
    pub fn resume_dir(&self, stage: &str, key: &Digest) -> Result<PathBuf> {
        let stage = StageName::new(stage)?;
        let dir = self
            .root
            .join("partial")
            .join(stage.as_str())
            .join(key.as_str());
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// After a run: a success's resume directory is removed, a failure's kept unless empty. The
    /// stage's directory of them stays: other jobs of the stage may be making theirs in it
    /// (`gc`, which no run overlaps, removes it once empty).
    pub fn settle_resume_dir(&self, dir: &Path, succeeded: bool) {
        if succeeded {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            // Fails, harmlessly, where the run left something to resume from.
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Resume directories under partial/ that nothing has touched for `older_than`, as
    /// (path, bytes); `gc` removes them.
    pub fn stale_resume_dirs(&self, older_than: std::time::Duration) -> Vec<(PathBuf, u64)> {
        let root = self.root.join("partial");
        let mut stale = Vec::new();
        for stage in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for key in std::fs::read_dir(stage.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                // The newest file's time (a directory's own time changes when a file is made).
                let (mut newest, mut bytes) = (None, 0);
                for e in walkdir::WalkDir::new(key.path()).into_iter().flatten() {
                    match e.metadata() {
                        Ok(m) if m.is_file() => {
                            let t = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                            newest = Some(newest.map_or(t, |n: std::time::SystemTime| n.max(t)));
                            bytes += m.len();
                        }
                        _ => {}
                    }
                }
                let newest = newest
                    .or_else(|| key.metadata().and_then(|m| m.modified()).ok())
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                let age = newest.elapsed().unwrap_or_default();
                if age >= older_than {
                    stale.push((key.path(), bytes));
                }
            }
        }
        stale.sort();
        stale
    }

    /// A fresh, unique file path under tmp/ (never shared between threads or processes).
    /// Files left there by killed processes are removed by [`Cache::sweep_staging`].
    pub fn tmp_path(&self, label: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!(
            "{}-{}-{}-{n}.{label}",
            self.host,
            std::process::id(),
            nanos()
        ))
    }

    /// Bytes free for this process on the cache's filesystem (`None` where it cannot tell).
    pub fn space_left(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.root.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs fills the struct for a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        (unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0)
            .then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// Keeps a failed run's provenance directory (its logs) under `failed/STAGE/`, the newest
    /// [`FAILED_KEPT`] per stage; returns the path of its stderr log (or of the directory).
    pub fn keep_failed(&self, stage: &str, provenance: &Path) -> Result<PathBuf> {
        let dir = self.root.join("failed").join(stage);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let kept = dir.join(format!("{stamp}-{}-{}-{n}", self.host, std::process::id()));
        std::fs::rename(provenance, &kept).map_err(io(&kept))?;
        let mut old: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .flatten()
            .map(|e| e.path())
            .collect();
        old.sort();
        for p in old.iter().rev().skip(FAILED_KEPT) {
            let _ = std::fs::remove_dir_all(p);
        }
        let log = kept.join(nasflow_contract::layout::STDERR_LOG);
        Ok(if log.exists() { log } else { kept })
    }

    /// Writes `bytes` to `dest` atomically (temp file in tmp/, then rename).
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("part");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::rename(&tmp, dest).map_err(io(dest))
    }
}

/// The file that marks a directory as a nasflow cache (the Cache Directory Tagging format, so
/// that backup tools skip it too).
pub const MARKER: &str = "CACHEDIR.TAG";
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by nasflow.\n# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// What nasflow itself keeps in a cache directory.
const LAYOUT: &[&str] = &[
    MARKER,
    "blobs",
    "records",
    "items",
    "out",
    "tmp",
    "locks",
    "quarantine",
    "partial",
    "failed",
    "stamps",
    "slurm",
    "statcache.json",
    "tampered.jsonl",
];

/// Makes sure `root` is a nasflow cache (see [`Cache::open`]), creating or adopting it.
fn claim(root: &Path) -> Result<()> {
    let refuse = |why: String| CacheError::NotACache {
        path: root.to_path_buf(),
        why,
    };
    if let Ok(real) = root.canonicalize() {
        if real == Path::new("/") {
            return Err(refuse("it is the filesystem's root".into()));
        }
        let home = std::env::var_os("HOME").and_then(|h| Path::new(&h).canonicalize().ok());
        if home.is_some_and(|h| h == real) {
            return Err(refuse("it is your home directory".into()));
        }
    }
    let marker = root.join(MARKER);
    if marker.is_file() {
        return Ok(());
    }
    match std::fs::read_dir(root) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                // Another thread's or process's marker on its way in counts as the layout.
                let ours =
                    LAYOUT.contains(&name.as_str()) || name.starts_with(&format!(".{MARKER}."));
                if !ours {
                    return Err(refuse(format!(
                        "it holds `{name}`, which nasflow did not make"
                    )));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(root).map_err(io(root))?;
        }
        Err(e) => return Err(io(root)(e)),
    }
    // A name of this process and moment (threads of one run open the cache at the same time);
    // whoever renames last wins, and all write the same bytes.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = root.join(format!(".{MARKER}.{}-{n}-{}", std::process::id(), nanos()));
    std::fs::write(&tmp, TAG).map_err(io(&tmp))?;
    match std::fs::rename(&tmp, &marker) {
        Ok(()) => Ok(()),
        Err(_) if marker.is_file() => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(io(&marker)(e)),
    }
}

/// A staging directory and the lock that marks it as in use.
pub struct Staging {
    pub dir: PathBuf,
    _lock: lock::Lock,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // The lock file is removed by the next sweep; removing it here would race with it.
    }
}

fn older_than(entry: &std::fs::DirEntry, age: std::time::Duration) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs of one stage starting and settling side by side: settling once removed the stage's
    /// directory of resume directories just as another job made its own in it.
    #[test]
    fn resume_directories_of_one_stage_made_and_settled_side_by_side_never_fail() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let cache = &cache;
                s.spawn(move || {
                    for n in 0..300u32 {
                        let key = Digest::of(blake3::hash(format!("{t}/{n}").as_bytes()));
                        let d = cache.resume_dir("each", &key).expect("made");
                        assert!(d.is_dir());
                        cache.settle_resume_dir(&d, true);
                    }
                });
            }
        });
    }

    #[test]
    fn a_cache_is_a_directory_nasflow_made_or_can_adopt() {
        let dir = tempfile::tempdir().unwrap();
        // New: created with its marker.
        let new = dir.path().join("new");
        Cache::open(&new).unwrap();
        assert!(new.join(MARKER).is_file());
        // An older cache (nasflow's layout only, no marker): adopted once.
        let old = dir.path().join("old");
        for sub in ["blobs", "records", "out", "tmp"] {
            std::fs::create_dir_all(old.join(sub)).unwrap();
        }
        std::fs::write(old.join("statcache.json"), "{}").unwrap();
        Cache::open(&old).unwrap();
        assert!(old.join(MARKER).is_file());
        // A directory of the user's own: refused, and nothing written into it.
        let mine = dir.path().join("mine");
        std::fs::create_dir_all(mine.join("tmp")).unwrap();
        std::fs::write(mine.join("tmp").join("notes.txt"), "mine").unwrap();
        std::fs::write(mine.join("pipeline.toml"), "").unwrap();
        let e = Cache::open(&mine).unwrap_err().to_string();
        assert!(
            e.contains("not a nasflow cache directory") && e.contains("pipeline.toml"),
            "{e}"
        );
        assert!(!mine.join(MARKER).exists() && !mine.join("blobs").exists());
        // Threads opening a new cache at once (variants run together) all succeed.
        let shared = dir.path().join("shared");
        let opened: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Cache::open(&shared).is_ok()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(opened.iter().all(|ok| *ok), "{opened:?}");
        // The filesystem root is never a cache.
        let e = Cache::open(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("filesystem's root"), "{e}");
    }

    #[test]
    fn sweep_removes_dead_staging_and_stale_temp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let live = cache.staging("live").unwrap();
        let fresh = cache.tmp_path("part");
        std::fs::write(&fresh, "x").unwrap();
        let stale = cache.tmp_path("part");
        std::fs::write(&stale, "x").unwrap();
        let old = std::time::SystemTime::now() - 2 * STALE_TMP;
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        // A staging directory whose lock is free: its process died.
        let dead = cache.root().join("tmp").join("1-2-3-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(cache.root().join("tmp").join("1-2-3-dead.lock"), "").unwrap();
        // Another host's staging directory: its lock cannot be tested from here.
        let remote = cache.root().join("tmp").join("gpu-node-7-1-2-3-pretrain");
        std::fs::create_dir(&remote).unwrap();
        std::fs::write(remote.with_extension("lock"), "").unwrap();
        assert_eq!(cache.sweep_staging().unwrap(), 2);
        assert!(live.dir.is_dir() && fresh.exists() && remote.is_dir());
        assert!(!stale.exists() && !dead.exists());
        assert!(live
            .dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&cache.host));
    }
}
