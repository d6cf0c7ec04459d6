//! Advisory file locks (flock through std's `File::lock`). The OS releases a lock when its
//! process dies, so a lock left by a killed nasflow is recovered without anyone deleting a file.
//!
//! Locks only save duplicate work: every publication in the cache is an atomic rename, so
//! correctness never depends on them. On a filesystem without locking (an NFS mount with
//! `nolock`: flock fails with ENOLCK) a lock is therefore taken as granted, with one warning.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::{io, Digest, Result};

/// What a lock under `CACHE/locks/` guards: the one list of lock names.
#[derive(Debug, Clone, Copy)]
pub enum LockOf<'a> {
    /// The whole store: runs take it shared; gc and verify exclusively.
    Store,
    /// The computation of a whole stage under a key.
    Stage { stage: &'a str, key: &'a Digest },
    /// The computation of one item under its key.
    Item { stage: &'a str, key: &'a Digest },
    /// The follower of a stage's Slurm arrays under the stage key.
    Slurm { stage: &'a str, key: &'a Digest },
    /// The building of an output view (`out/STAGE/DIGEST`, or an item's).
    View {
        stage: &'a str,
        item: bool,
        digest: &'a Digest,
    },
}

impl LockOf<'_> {
    /// Its lock file under the cache root.
    pub fn path(self, root: &Path) -> PathBuf {
        let locks = root.join("locks");
        match self {
            LockOf::Store => locks.join("store.lock"),
            LockOf::Stage { stage, key } => locks.join(format!("{stage}.{key}.lock")),
            LockOf::Item { stage, key } => locks.join(format!("{stage}.item.{key}.lock")),
            LockOf::Slurm { stage, key } => locks.join(format!("{stage}.slurm.{key}.lock")),
            LockOf::View {
                stage,
                item,
                digest,
            } => {
                let kind = if item { "item" } else { "stage" };
                locks
                    .join("views")
                    .join(format!("{stage}.{kind}.{digest}.lock"))
            }
        }
    }
}

#[derive(Debug)]
pub struct Lock {
    _file: Option<File>,
    /// False where the filesystem cannot lock and the lock was taken as granted.
    held: bool,
}

/// Opens (creating) a lock file; on a read-only cache an existing one opens read-only (flock
/// works on it), and a missing one cannot matter: nothing can be written there anyway.
fn open(path: &Path) -> Result<Option<File>> {
    let read_only = |e: &std::io::Error| e.raw_os_error() == Some(libc::EROFS);
    if let Some(parent) = path.parent() {
        match std::fs::create_dir_all(parent) {
            Err(e) if read_only(&e) => return Ok(File::open(path).ok()),
            r => r.map_err(io(parent))?,
        }
    }
    match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if read_only(&e) => Ok(File::open(path).ok()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Whether a lock error means the filesystem cannot lock at all (then the lock is skipped).
fn unsupported(path: &Path, e: &std::io::Error) -> bool {
    let no_locks =
        e.raw_os_error() == Some(libc::ENOLCK) || e.kind() == std::io::ErrorKind::Unsupported;
    if no_locks {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "warning: {}: the filesystem does not support locks ({e}); going on without them (two processes may compute the same result; both publish it atomically)",
                path.display()
            )
        });
    }
    no_locks
}

impl Lock {
    /// The outcome of a blocking lock call.
    fn taken(file: File, path: &Path, r: std::io::Result<()>) -> Result<Lock> {
        match r {
            Ok(()) => Ok(Lock {
                _file: Some(file),
                held: true,
            }),
            Err(e) if unsupported(path, &e) => Ok(Lock {
                _file: Some(file),
                held: false,
            }),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// A lock on a read-only cache whose lock file does not exist: nothing to guard.
    fn not_needed() -> Lock {
        Lock {
            _file: None,
            held: false,
        }
    }

    /// Takes an exclusive lock, or `None` if another process holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        let Some(file) = open(path)? else {
            return Ok(Some(Self::not_needed()));
        };
        match file.try_lock() {
            Ok(()) => Self::taken(file, path, Ok(())).map(Some),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Self::taken(file, path, Err(e)).map(Some),
        }
    }

    /// Takes an exclusive lock, calling `on_wait` once if it must wait for another process.
    pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> Result<Lock> {
        if let Some(lock) = Self::try_exclusive(path)? {
            return Ok(lock);
        }
        on_wait();
        let Some(file) = open(path)? else {
            return Ok(Self::not_needed());
        };
        let r = file.lock();
        Self::taken(file, path, r)
    }

    /// Takes a shared lock, calling `on_wait` once if it must wait.
    pub fn shared(path: &Path, on_wait: impl FnOnce()) -> Result<Lock> {
        let Some(file) = open(path)? else {
            return Ok(Self::not_needed());
        };
        match file.try_lock_shared() {
            Ok(()) => return Self::taken(file, path, Ok(())),
            Err(TryLockError::WouldBlock) => on_wait(),
            Err(TryLockError::Error(e)) => return Self::taken(file, path, Err(e)),
        }
        let r = file.lock_shared();
        Self::taken(file, path, r)
    }

    /// Whether the OS holds the lock for us (false where the filesystem cannot lock).
    pub fn is_held(&self) -> bool {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_lock_excludes_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        let held = Lock::try_exclusive(&path).unwrap().expect("free");
        assert!(Lock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(Lock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn only_a_filesystem_without_locks_skips_them() {
        let p = Path::new("x.lock");
        assert!(unsupported(
            p,
            &std::io::Error::from_raw_os_error(libc::ENOLCK)
        ));
        assert!(!unsupported(
            p,
            &std::io::Error::from_raw_os_error(libc::EACCES)
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = open(&dir.path().join("a.lock")).unwrap().unwrap();
        let skipped = Lock::taken(
            file,
            p,
            Err(std::io::Error::from_raw_os_error(libc::ENOLCK)),
        );
        assert!(!skipped.unwrap().is_held());
    }
}
