//! Remote caches that teams share results through (`nasflow cache push/pull REMOTE`,
//! `nasflow run --remote REMOTE`): a directory on a shared filesystem, or an HTTP server that
//! stores what is PUT and serves it back on GET (the protocol of Bazel-style HTTP caches; nginx
//! with WebDAV's PUT does). Both hold the cache's own layout: `blobs/aa/rest`,
//! `records/STAGE/KEY.json`, `items/STAGE/KEY.json`.
//!
//! Every blob coming from a remote goes through [`Cache::import_blob`]: streamed into tmp/,
//! hashed on the way, renamed into place only if it matches its digest, so a corrupt blob is
//! rejected; a directory remote receives blobs the same way. Records are written last, and
//! only once every blob they list is present. Remote failures are reported as text (what was
//! not transferred, and why), never as a local error.
use std::io::Read;
use std::path::Path;

use super::blobs::manifest_digest;
use super::{io, Cache, ItemRecord, Result, StageRecord};

/// What one push or pull moved, and what it could not.
#[derive(Debug, Default)]
pub struct Transfer {
    pub records: usize,
    pub blobs: usize,
    /// What was not transferred, with the reason.
    pub failed: Vec<String>,
}

/// A remote result: `Err` is a remote problem, reported and not fatal.
type Remote<T> = std::result::Result<T, String>;

/// A remote store with the cache layout.
pub trait Store {
    fn describe(&self) -> String;
    fn has_blob(&self, digest: &str) -> Remote<bool>;
    /// Uploads the local file `file` as blob `digest`.
    fn put_blob(&self, digest: &str, file: &Path) -> Remote<()>;
    /// Streams blob `digest` into `local` (verified there).
    fn get_blob(&self, digest: &str, local: &Cache) -> Result<Remote<()>>;
    /// A small document (record) at `rel`; `None` if absent.
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>>;
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()>;
}

fn blob_rel(digest: &str) -> String {
    format!("blobs/{}/{}", &digest[..2], &digest[2..])
}

/// Opens `spec`: an `http://` URL, or a directory (created if missing).
pub fn open(spec: &str) -> Result<Box<dyn Store>> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        return Ok(Box::new(Http {
            base: spec.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(10))
                .timeout_read(std::time::Duration::from_secs(300))
                .build(),
        }));
    }
    let dir = Path::new(spec);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    Ok(Box::new(Dir(Cache::open(dir)?)))
}

/// A cache directory on a shared filesystem.
pub struct Dir(pub Cache);

impl Store for Dir {
    fn describe(&self) -> String {
        self.0.root().display().to_string()
    }
    fn has_blob(&self, digest: &str) -> Remote<bool> {
        Ok(self.0.blob_path(digest).exists())
    }
    fn put_blob(&self, digest: &str, file: &Path) -> Remote<()> {
        let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        self.0
            .import_blob(&mut f, digest)
            .map_err(|e| e.to_string())?
    }
    fn get_blob(&self, digest: &str, local: &Cache) -> Result<Remote<()>> {
        let path = self.0.blob_path(digest);
        match std::fs::File::open(&path) {
            Ok(mut f) => local.import_blob(&mut f, digest),
            Err(e) => Ok(Err(format!("{}: {e}", path.display()))),
        }
    }
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>> {
        match std::fs::read(self.0.root().join(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{rel}: {e}")),
        }
    }
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()> {
        self.0
            .write_atomic(&self.0.root().join(rel), bytes)
            .map_err(|e| e.to_string())
    }
}

/// An HTTP cache server: GET and PUT (HEAD for presence) of the cache layout under a base URL.
pub struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }
    fn get(&self, rel: &str) -> Remote<Option<ureq::Response>> {
        match self.agent.get(&self.url(rel)).call() {
            Ok(r) => Ok(Some(r)),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(format!("GET {}: {e}", self.url(rel))),
        }
    }
    fn put(&self, rel: &str, body: impl Read) -> Remote<()> {
        self.agent
            .put(&self.url(rel))
            .send(body)
            .map(|_| ())
            .map_err(|e| format!("PUT {}: {e}", self.url(rel)))
    }
}

impl Store for Http {
    fn describe(&self) -> String {
        self.base.clone()
    }
    fn has_blob(&self, digest: &str) -> Remote<bool> {
        let rel = blob_rel(digest);
        match self.agent.head(&self.url(&rel)).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(format!("HEAD {}: {e}", self.url(&rel))),
        }
    }
    fn put_blob(&self, digest: &str, file: &Path) -> Remote<()> {
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        self.put(&blob_rel(digest), f)
    }
    fn get_blob(&self, digest: &str, local: &Cache) -> Result<Remote<()>> {
        match self.get(&blob_rel(digest)) {
            Ok(Some(r)) => local.import_blob(&mut r.into_reader(), digest),
            Ok(None) => Ok(Err(format!("blob {digest} missing on {}", self.base))),
            Err(e) => Ok(Err(e)),
        }
    }
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>> {
        let Some(r) = self.get(rel)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        r.into_reader()
            .take(64 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("GET {}: {e}", self.url(rel)))?;
        Ok(Some(bytes))
    }
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()> {
        self.put(rel, bytes)
    }
}

fn record_rel(stage: &str, key: &str) -> String {
    format!("records/{stage}/{key}.json")
}

fn item_rel(stage: &str, key: &str) -> String {
    format!("items/{stage}/{key}.json")
}

impl Cache {
    /// Uploads a record, its item records and all their blobs (records last).
    fn send_record(&self, to: &dyn Store, r: &StageRecord) -> Result<Remote<usize>> {
        let mut items = Vec::new();
        for it in &r.items {
            match self.read_item(&r.stage, &it.key)? {
                Some(i) => items.push(i),
                None => return Ok(Err(format!("{}: item record {} missing", r.stage, it.key))),
            }
        }
        let mut sent = 0;
        for f in r.files.iter().chain(items.iter().flat_map(|i| &i.files)) {
            let step = to.has_blob(&f.digest).and_then(|has| {
                if has {
                    Ok(false)
                } else {
                    to.put_blob(&f.digest, &self.blob_path(&f.digest))
                        .map(|()| true)
                }
            });
            match step {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(why) => return Ok(Err(format!("{} {}: {why}", r.stage, f.path))),
            }
        }
        for i in &items {
            let bytes = serde_json::to_vec_pretty(i).expect("serializes");
            if let Err(why) = to.put_doc(&item_rel(&i.stage, &i.key), &bytes) {
                return Ok(Err(format!("{}: {why}", r.stage)));
            }
        }
        let bytes = serde_json::to_vec_pretty(r).expect("serializes");
        Ok(to
            .put_doc(&record_rel(&r.stage, &r.key), &bytes)
            .map(|()| sent)
            .map_err(|why| format!("{}: {why}", r.stage)))
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
                .and_then(|b| serde_json::from_slice::<StageRecord>(&b).ok());
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
    /// blob verified. `Ok(None)`: the remote has no such record; `Ok(Some(Err))`: it could not
    /// be used (the local cache is unchanged but for verified blobs). Else the blobs fetched.
    pub fn fetch(
        &self,
        remote: &dyn Store,
        stage: &str,
        key: &str,
    ) -> Result<Option<Remote<usize>>> {
        let bytes = match remote.get_doc(&record_rel(stage, key)) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(why) => return Ok(Some(Err(why))),
        };
        let Ok(r) = serde_json::from_slice::<StageRecord>(&bytes) else {
            return Ok(Some(Err(format!(
                "{stage}: the remote record is not valid JSON"
            ))));
        };
        if r.stage != stage || r.key != key || manifest_digest(&r.files) != r.output_digest {
            return Ok(Some(Err(format!(
                "{stage}: the remote record does not match its key or digest"
            ))));
        }
        let mut items: Vec<ItemRecord> = Vec::new();
        for it in &r.items {
            let doc = match remote.get_doc(&item_rel(stage, &it.key)) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Ok(Some(Err(format!(
                        "{stage}: item {} missing on the remote",
                        it.key
                    ))))
                }
                Err(why) => return Ok(Some(Err(why))),
            };
            match serde_json::from_slice::<ItemRecord>(&doc) {
                Ok(i)
                    if i.stage == stage
                        && i.key == it.key
                        && manifest_digest(&i.files) == i.output_digest =>
                {
                    items.push(i)
                }
                _ => {
                    return Ok(Some(Err(format!(
                        "{stage}: item {} does not match its digest",
                        it.key
                    ))))
                }
            }
        }
        let mut got = 0;
        for f in r.files.iter().chain(items.iter().flat_map(|i| &i.files)) {
            if self.blob_path(&f.digest).exists() {
                continue;
            }
            match remote.get_blob(&f.digest, self)? {
                Ok(()) => got += 1,
                Err(why) => return Ok(Some(Err(format!("{stage} {}: {why}", f.path)))),
            }
        }
        for i in &items {
            self.write_item(i)?;
        }
        self.write_record(&r)?;
        Ok(Some(Ok(got)))
    }
}
