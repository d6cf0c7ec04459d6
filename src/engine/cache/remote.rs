//! Remote caches that teams share results through (`nasflow cache push/pull REMOTE`,
//! `nasflow run --remote REMOTE`): a directory on a shared filesystem, or an HTTP(S) server that
//! stores what is PUT and serves it back on GET (the protocol of Bazel-style HTTP caches; nginx
//! with WebDAV's PUT does). Both hold the cache's own layout: `blobs/aa/rest`,
//! `records/STAGE/KEY.json`, `items/STAGE/KEY.json`.
//!
//! A remote is untrusted: everything read from it goes through the validation layer
//! ([`super::valid`]; records are checked against their place and their manifest) and every blob
//! through [`Cache::import_blob`], streamed into tmp/, hashed on the way and renamed into place
//! only if it matches its digest. A record that fails any check is rejected as a whole, reported
//! once, and computed locally. Records are written last, once every blob they list is present.
//! Remote problems are values ([`RemoteError`]), reported and never fatal to a run.
//!
//! The HTTP remote speaks TLS (rustls; the system's roots plus `NASFLOW_REMOTE_CA`, a PEM file)
//! and authenticates with `NASFLOW_REMOTE_TOKEN` (a bearer token) or, failing that, the
//! remote host's entry in `~/.netrc` (or `$NETRC`; basic auth). Credentials are never printed.
mod http;

use std::io::Read;
use std::path::Path;

use super::record::Mismatch;
use super::valid::{Digest, Invalid};
use super::{io, Cache, ItemRecord, Result, StageRecord};

pub use http::Http;

/// Why something from a remote was not used, or could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{op} {target}: {reason}")]
    Transport {
        op: &'static str,
        target: String,
        reason: String,
    },
    #[error("{target}: the remote refused the credentials (HTTP {status})\n  help: set NASFLOW_REMOTE_TOKEN to a valid token, or fix the host's entry in ~/.netrc")]
    Auth { target: String, status: u16 },
    #[error("remote record {what} rejected: {why}")]
    Rejected { what: String, why: Rejection },
    #[error("{0}")]
    Missing(String),
}

/// What was wrong with a document or blob from a remote.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("not a nasflow record ({0})")]
    NotRecord(String),
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("item {0} is not the one the stage record names")]
    WrongItem(Digest),
    #[error("content does not match its digest")]
    Corrupt,
    #[error("truncated ({0})")]
    Truncated(String),
    #[error("longer than the {0} bytes its record declares")]
    TooLarge(u64),
    #[error("not a regular file ({0})")]
    NotFile(String),
}

/// What one push or pull moved, and what it could not.
#[derive(Debug, Default)]
pub struct Transfer {
    pub records: usize,
    pub blobs: usize,
    /// What was not transferred, and why.
    pub failed: Vec<RemoteError>,
}

/// A remote result: `Err` is a remote problem, reported and not fatal.
pub type Remote<T> = std::result::Result<T, RemoteError>;

/// A remote store with the cache layout.
pub trait Store {
    fn describe(&self) -> String;
    fn has_blob(&self, digest: &Digest) -> Remote<bool>;
    /// Uploads the local file `file` as blob `digest`.
    fn put_blob(&self, digest: &Digest, file: &Path) -> Remote<()>;
    /// Streams blob `digest`, which its record declares `size` bytes long, into `local`
    /// (verified there; more bytes than `size` are refused as they stream).
    fn get_blob(&self, digest: &Digest, size: u64, local: &Cache) -> Result<Remote<()>>;
    /// A small document (record) at `rel`; `None` if absent.
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>>;
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()>;
}

fn blob_rel(digest: &Digest) -> String {
    let d = digest.as_str();
    format!("blobs/{}/{}", &d[..2], &d[2..])
}

fn record_rel(stage: &str, key: &str) -> String {
    format!("records/{stage}/{key}.json")
}

fn item_rel(stage: &str, key: &str) -> String {
    format!("items/{stage}/{key}.json")
}

/// Opens `spec`: an `http://` or `https://` URL, or a directory. A missing directory is created
/// when the remote is to be written (`create`: push, run), and an error when it is only read
/// (pull): a typo must not look like an empty cache.
pub fn open(spec: &str, create: bool) -> std::result::Result<Box<dyn Store>, OpenError> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return Ok(Box::new(Http::new(spec)?));
    }
    let dir = Path::new(spec);
    if !dir.is_dir() {
        if !create {
            return Err(OpenError::NoDir(spec.to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|e| super::CacheError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    Ok(Box::new(Dir(Cache::open(dir)?)))
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("remote directory `{0}` does not exist\n  help: check the path (`cache push` or `run --remote` create a new shared cache)")]
    NoDir(String),
    #[error(transparent)]
    Cache(#[from] super::CacheError),
    #[error("{0}")]
    Tls(String),
}

/// A cache directory on a shared filesystem.
pub struct Dir(pub Cache);

impl Store for Dir {
    fn describe(&self) -> String {
        self.0.root().display().to_string()
    }
    fn has_blob(&self, digest: &Digest) -> Remote<bool> {
        Ok(self.0.blob_path(digest).exists())
    }
    fn put_blob(&self, digest: &Digest, file: &Path) -> Remote<()> {
        let transport = |reason: String| RemoteError::Transport {
            op: "copy",
            target: file.display().to_string(),
            reason,
        };
        let mut f = std::fs::File::open(file).map_err(|e| transport(e.to_string()))?;
        let size = f.metadata().map_err(|e| transport(e.to_string()))?.len();
        match self.0.import_blob(&mut f, digest, size) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(transport(why.to_string())),
            Err(e) => Err(transport(e.to_string())),
        }
    }
    fn get_blob(&self, digest: &Digest, size: u64, local: &Cache) -> Result<Remote<()>> {
        let path = self.0.blob_path(digest);
        let rejected = |why| RemoteError::Rejected {
            what: format!("blob {digest}"),
            why,
        };
        match open_regular(&path) {
            Ok(mut f) => Ok(local.import_blob(&mut f, digest, size)?.map_err(rejected)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Err(RemoteError::Missing(
                format!("{}: {e}", path.display()),
            ))),
            Err(e) => Ok(Err(rejected(Rejection::NotFile(e.to_string())))),
        }
    }
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>> {
        let path = self.0.root().join(rel);
        let read = open_regular(&path).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(MAX_DOC).read_to_end(&mut bytes).map(|_| bytes)
        });
        match read {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RemoteError::Transport {
                op: "read",
                target: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()> {
        self.0
            .write_atomic(&self.0.root().join(rel), bytes)
            .map_err(|e| RemoteError::Transport {
                op: "write",
                target: rel.to_string(),
                reason: e.to_string(),
            })
    }
}

/// The largest record read from a remote (records list files, not their bytes).
pub const MAX_DOC: u64 = 64 << 20;

/// Opens a file of a directory remote for reading, without waiting: a FIFO, a device or a
/// directory in place of a record or blob is refused at once (opening a FIFO would block until a
/// writer came). A symbolic link is followed, but only to a regular file.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

/// A record document from a remote, checked: it parses, and it is the record it is stored as.
fn parse_record(
    bytes: &[u8],
    stage: &str,
    key: &str,
) -> std::result::Result<StageRecord, Rejection> {
    let r: StageRecord =
        serde_json::from_slice(bytes).map_err(|e| Rejection::NotRecord(e.to_string()))?;
    r.check(stage, key)?;
    Ok(r)
}

fn parse_item(bytes: &[u8], stage: &str, key: &str) -> std::result::Result<ItemRecord, Rejection> {
    let r: ItemRecord =
        serde_json::from_slice(bytes).map_err(|e| Rejection::NotRecord(e.to_string()))?;
    r.check(stage, key)?;
    Ok(r)
}

impl Cache {
    /// Uploads a record, its item records and all their blobs (records last).
    fn send_record(&self, to: &dyn Store, r: &StageRecord) -> Result<Remote<usize>> {
        let mut items = Vec::new();
        for it in &r.items {
            match self.read_item(&r.stage, &it.key)? {
                Some(i) => items.push(i),
                None => {
                    let why = format!("{}: item record {} missing locally", r.stage, it.key);
                    return Ok(Err(RemoteError::Missing(why)));
                }
            }
        }
        let mut sent = 0;
        let files = r
            .all_files()
            .chain(items.iter().flat_map(|i| i.all_files()));
        for f in files.filter(|f| self.blob_path(&f.digest).exists()) {
            let step = to.has_blob(&f.digest).and_then(|has| match has {
                true => Ok(false),
                false => to
                    .put_blob(&f.digest, &self.blob_path(&f.digest))
                    .map(|()| true),
            });
            match step {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        for i in &items {
            let bytes = serde_json::to_vec_pretty(i).expect("serializes");
            if let Err(why) = to.put_doc(&item_rel(&i.stage, &i.key), &bytes) {
                return Ok(Err(why));
            }
        }
        let bytes = serde_json::to_vec_pretty(r).expect("serializes");
        Ok(to
            .put_doc(&record_rel(&r.stage, &r.key), &bytes)
            .map(|()| sent))
    }

    /// Uploads records (with items and blobs) to `remote`; a record whose upload fails is
    /// reported in `failed` and the others go on.
    pub fn push(&self, remote: &dyn Store, records: &[StageRecord]) -> Result<Transfer> {
        let mut t = Transfer::default();
        for r in records {
            let there = remote
                .get_doc(&record_rel(&r.stage, &r.key))
                .ok()
                .flatten()
                .and_then(|b| parse_record(&b, &r.stage, &r.key).ok());
            if there.is_some_and(|x| x.output_digest == r.output_digest) {
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

    /// Fetches the record of `stage` at `key` from `remote` with its items and blobs, each
    /// checked. `Ok(None)`: the remote has no such record; `Ok(Some(Err))`: it could not be used
    /// (the local cache is unchanged but for verified blobs). Else the blobs fetched.
    pub fn fetch(
        &self,
        remote: &dyn Store,
        stage: &str,
        key: &Digest,
    ) -> Result<Option<Remote<usize>>> {
        let rejected = |what: String, why: Rejection| RemoteError::Rejected { what, why };
        let bytes = match remote.get_doc(&record_rel(stage, key)) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(why) => return Ok(Some(Err(why))),
        };
        let r = match parse_record(&bytes, stage, key) {
            Ok(r) => r,
            Err(why) => return Ok(Some(Err(rejected(format!("{stage}/{key}"), why)))),
        };
        let mut items: Vec<ItemRecord> = Vec::new();
        for it in &r.items {
            let what = format!("{stage}/{key} item {}", it.key);
            let item = match remote.get_doc(&item_rel(stage, &it.key)) {
                Ok(Some(b)) => parse_item(&b, stage, &it.key),
                Ok(None) => {
                    return Ok(Some(Err(RemoteError::Missing(format!(
                        "{what} missing on the remote"
                    )))))
                }
                Err(why) => return Ok(Some(Err(why))),
            };
            match item {
                Ok(i) if i.output_digest == it.output_digest => items.push(i),
                Ok(_) => {
                    return Ok(Some(Err(rejected(
                        what,
                        Rejection::WrongItem(it.key.clone()),
                    ))))
                }
                Err(why) => return Ok(Some(Err(rejected(what, why)))),
            }
        }
        let outputs = r.files.iter().chain(items.iter().flat_map(|i| &i.files));
        let mut got = 0;
        for f in outputs {
            if self.blob_path(&f.digest).exists() {
                continue;
            }
            match remote.get_blob(&f.digest, f.size, self)? {
                Ok(()) => got += 1,
                Err(why) => return Ok(Some(Err(why))),
            }
        }
        // Logs are a help: fetched where the remote has them, and not a reason to reject.
        let logs = r
            .provenance
            .files
            .iter()
            .chain(items.iter().flat_map(|i| &i.provenance.files));
        for f in logs {
            if !self.blob_path(&f.digest).exists()
                && matches!(remote.get_blob(&f.digest, f.size, self)?, Ok(()))
            {
                got += 1;
            }
        }
        for i in &items {
            self.write_item(i)?;
        }
        self.write_record(&r)?;
        Ok(Some(Ok(got)))
    }

    /// Streams one blob into tmp/ while hashing it; renames it into place only if its content
    /// matches its digest. Blobs can be gigabytes: they are never held in memory. More than
    /// `size` bytes (what the record declares) is refused as soon as it arrives, so an endless or
    /// oversized source never fills the disk.
    pub(crate) fn import_blob(
        &self,
        entry: &mut impl Read,
        digest: &Digest,
        size: u64,
    ) -> Result<std::result::Result<(), Rejection>> {
        use std::io::Write;
        let part = self.tmp_path("import");
        let mut out = std::fs::File::create(&part).map_err(io(&part))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        let mut limited = entry.take(size.saturating_add(1));
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Ok(Err(Rejection::Truncated(e.to_string())));
                }
            };
            got += n as u64;
            if got > size {
                let _ = std::fs::remove_file(&part);
                return Ok(Err(Rejection::TooLarge(size)));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&part))?;
        }
        drop(out);
        if Digest::of(hasher.finalize()) != *digest {
            let _ = std::fs::remove_file(&part);
            return Ok(Err(Rejection::Corrupt));
        }
        let dest = self.blob_path(digest);
        if dest.exists() {
            let _ = std::fs::remove_file(&part);
            return Ok(Ok(()));
        }
        let mut perm = std::fs::metadata(&part).map_err(io(&part))?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&part, perm).map_err(io(&part))?;
        let parent = dest.parent().expect("blob dir");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        std::fs::rename(&part, &dest).map_err(io(&dest))?;
        self.stamp_blob(digest);
        Ok(Ok(()))
    }
}
