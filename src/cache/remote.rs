//! A remote cache on a shared filesystem: another cache directory that several machines push
//! results to and pull them from (`nasflow cache push/pull DIR`, `nasflow run --remote DIR`).
//!
//! Both directions go through [`Cache::import_blob`]: a blob is streamed into the receiving
//! cache's tmp/, hashed on the way, and renamed into place only if its content matches its
//! digest, so a corrupt blob on either side is rejected, and many writers on many hosts never
//! see a half-written file (renames within one directory tree are atomic). Records are written
//! last, atomically, and only once every blob they list is present.
use super::blobs::manifest_digest;
use super::{io, Cache, Result, StageRecord};

/// What one push or pull moved, and what it could not.
#[derive(Debug, Default)]
pub struct Transfer {
    pub records: usize,
    pub blobs: usize,
    /// What was not transferred, with the reason.
    pub failed: Vec<String>,
}

impl Cache {
    /// Copies one blob from this cache into `to`, verified; `Ok(false)` if it was already there.
    fn send_blob(&self, to: &Cache, digest: &str) -> Result<std::result::Result<bool, String>> {
        if to.blob_path(digest).exists() {
            return Ok(Ok(false));
        }
        let path = self.blob_path(digest);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("blob {digest}: {e}"))),
        };
        Ok(to.import_blob(&mut f, digest)?.map(|()| true))
    }

    /// Copies a record, its item records and all their blobs from this cache into `to`.
    /// Returns the blobs copied, or why the record could not be.
    fn send_record(
        &self,
        to: &Cache,
        r: &StageRecord,
    ) -> Result<std::result::Result<usize, String>> {
        let mut items = Vec::new();
        for it in &r.items {
            match self.read_item(&r.stage, &it.key)? {
                Some(i) => items.push(i),
                None => return Ok(Err(format!("{}: item record {} missing", r.stage, it.key))),
            }
        }
        let mut sent = 0;
        for f in r.files.iter().chain(items.iter().flat_map(|i| &i.files)) {
            match self.send_blob(to, &f.digest)? {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(why) => return Ok(Err(format!("{} {}: {why}", r.stage, f.path))),
            }
        }
        for i in &items {
            if manifest_digest(&i.files) != i.output_digest {
                return Ok(Err(format!(
                    "{}: item {} does not match its digest",
                    r.stage, i.key
                )));
            }
            to.write_item(i)?;
        }
        if manifest_digest(&r.files) != r.output_digest {
            return Ok(Err(format!(
                "{}: record does not match its digest",
                r.stage
            )));
        }
        to.write_record(r)?;
        Ok(Ok(sent))
    }

    /// Uploads records (with items and blobs) to `remote`; a record whose upload fails is
    /// reported in `failed` and the others go on.
    pub fn push(&self, remote: &Cache, records: &[StageRecord]) -> Result<Transfer> {
        let mut t = Transfer::default();
        for r in records {
            if remote
                .read_record(&r.stage, &r.key)
                .ok()
                .flatten()
                .is_some_and(|x| x.output_digest == r.output_digest)
            {
                continue;
            }
            match self.send_record(remote, r)? {
                Ok(n) => {
                    t.records += 1;
                    t.blobs += n;
                }
                Err(why) => t.failed.push(why),
            }
        }
        Ok(t)
    }

    /// Fetches the record of `stage` at `key` from `remote` (with items and blobs, verified).
    /// `Ok(None)` when the remote has no such record; `Ok(Some(Err))` when it could not be used.
    pub fn fetch(
        &self,
        remote: &Cache,
        stage: &str,
        key: &str,
    ) -> Result<Option<std::result::Result<usize, String>>> {
        let record = match remote.read_record(stage, key) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Ok(Some(Err(format!(
                    "{stage}: unreadable remote record ({e})"
                ))))
            }
        };
        if record.stage != stage || record.key != key {
            return Ok(Some(Err(format!(
                "{stage}: the remote record names another stage or key"
            ))));
        }
        Ok(Some(remote.send_record(self, &record)?))
    }

    /// Opens a directory remote (created if missing).
    pub fn open_remote(dir: &std::path::Path) -> Result<Cache> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Cache::open(dir)
    }
}
