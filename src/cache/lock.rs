//! Advisory file locks (flock through std's `File::lock`). The OS releases a lock when its
//! process dies, so a lock left by a killed nasflow is recovered without anyone deleting a file.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::{io, Result};

#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))
}

impl Lock {
    /// Takes an exclusive lock, or `None` if another process holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io(path)(e)),
        }
    }

    /// Takes an exclusive lock, calling `on_wait` once if it must wait for another process.
    pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> Result<Lock> {
        if let Some(lock) = Self::try_exclusive(path)? {
            return Ok(lock);
        }
        on_wait();
        let file = open(path)?;
        file.lock().map_err(io(path))?;
        Ok(Lock { _file: file })
    }

    /// Takes a shared lock, calling `on_wait` once if it must wait.
    pub fn shared(path: &Path, on_wait: impl FnOnce()) -> Result<Lock> {
        let file = open(path)?;
        match file.try_lock_shared() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(TryLockError::WouldBlock) => on_wait(),
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
        file.lock_shared().map_err(io(path))?;
        Ok(Lock { _file: file })
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
}
