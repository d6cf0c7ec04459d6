//! `nasflow cache export/import`: a tar bundle of records, item records and their blobs.
//!
//! A bundle is untrusted input: each entry's name is parsed through the validation layer (a blob
//! is `blobs/aa/rest` with a 64-hex digest; a record is `records/STAGE/KEY.json` with a valid
//! stage name and key), each blob is verified against its digest as it streams in, each record
//! is checked against its name and its manifest, and a record is written only when every blob it
//! lists is present. Anything else is rejected, once, with the reason.
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use super::remote::Rejection;
use super::valid::{Digest, StageName};
use super::{io, Cache, CacheError, ItemRecord, Result, StageRecord};

#[derive(Debug, Default)]
pub struct ImportReport {
    pub blobs: usize,
    pub records: usize,
    pub items: usize,
    /// Entries rejected, with the reason.
    pub rejected: Vec<Rejected>,
}

/// A bundle entry that was not imported.
#[derive(Debug, thiserror::Error)]
#[error("{entry}: {why}")]
pub struct Rejected {
    pub entry: String,
    pub why: Rejection,
}

/// What a bundle entry's name says it is.
enum Entry {
    Blob(Digest),
    Record(StageName, Digest),
    Item(StageName, Digest),
}

/// Parses an entry name; `Err` says why it is not one a bundle may hold.
fn entry_of(name: &str) -> std::result::Result<Entry, Rejection> {
    let parts: Vec<&str> = name.split('/').collect();
    let doc = |stage: &str, file: &str| -> std::result::Result<(StageName, Digest), Rejection> {
        let key = file
            .strip_suffix(".json")
            .ok_or_else(|| Rejection::NotRecord("not a .json record".into()))?;
        Ok((StageName::new(stage)?, Digest::new(key)?))
    };
    match parts.as_slice() {
        ["blobs", shard, rest] if shard.len() == 2 => {
            Ok(Entry::Blob(Digest::new(format!("{shard}{rest}"))?))
        }
        ["records", stage, file] => doc(stage, file).map(|(s, k)| Entry::Record(s, k)),
        ["items", stage, file] => doc(stage, file).map(|(s, k)| Entry::Item(s, k)),
        _ => Err(Rejection::NotRecord(
            "not an entry of a nasflow bundle".into(),
        )),
    }
}

impl Cache {
    /// Writes the given records, the item records they list, and all their blobs to `file`.
    pub fn export(
        &self,
        records: &[StageRecord],
        items: &[ItemRecord],
        file: &Path,
    ) -> Result<usize> {
        let out = std::fs::File::create(file).map_err(io(file))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        let digests: BTreeSet<&Digest> = records
            .iter()
            .flat_map(|r| r.all_files())
            .chain(items.iter().flat_map(|i| i.all_files()))
            .filter(|f| self.blob_path(&f.digest).exists())
            .map(|f| &f.digest)
            .collect();
        for d in &digests {
            let path = self.blob_path(d);
            let (shard, rest) = d.split_at(2);
            tar.append_path_with_name(&path, format!("blobs/{shard}/{rest}"))
                .map_err(io(&path))?;
        }
        for i in items {
            append_json(
                &mut tar,
                &format!("items/{}/{}.json", i.stage, i.key),
                i,
                file,
            )?;
        }
        for r in records {
            append_json(
                &mut tar,
                &format!("records/{}/{}.json", r.stage, r.key),
                r,
                file,
            )?;
        }
        tar.into_inner()
            .and_then(|mut w| std::io::Write::flush(&mut w))
            .map_err(io(file))?;
        Ok(digests.len())
    }

    /// Reads a bundle. Blobs are verified as they stream in; records are written last, and only
    /// those whose blobs are all present, so a partial bundle adds what it can.
    pub fn import(&self, file: &Path) -> Result<ImportReport> {
        let f = std::fs::File::open(file).map_err(io(file))?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(f));
        let mut report = ImportReport::default();
        let mut records: Vec<StageRecord> = Vec::new();
        let mut items: Vec<ItemRecord> = Vec::new();
        let bad = |m: String| CacheError::Bundle(format!("{}: {m}", file.display()));
        for entry in archive.entries().map_err(io(file))? {
            let mut entry =
                entry.map_err(|e| bad(format!("not a nasflow bundle or truncated ({e})")))?;
            let name = entry
                .path()
                .map_err(io(file))?
                .to_string_lossy()
                .to_string();
            let reject = |why: Rejection| Rejected {
                entry: name.escape_debug().to_string(),
                why,
            };
            let kind = match entry_of(&name) {
                Ok(k) => k,
                Err(why) => {
                    report.rejected.push(reject(why));
                    continue;
                }
            };
            if let Entry::Blob(digest) = &kind {
                let size = entry.size();
                match self.import_blob(&mut entry, digest, size)? {
                    Ok(()) => report.blobs += 1,
                    Err(why) => report.rejected.push(reject(why)),
                }
                continue;
            }
            let mut bytes = Vec::new();
            (&mut entry)
                .take(super::remote::MAX_DOC)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("{name}: truncated ({e})")))?;
            let parsed = match kind {
                Entry::Record(stage, key) => {
                    parse_doc(&bytes, |r: &StageRecord| r.check(&stage, &key))
                        .map(|r| records.push(r))
                }
                Entry::Item(stage, key) => {
                    parse_doc(&bytes, |r: &ItemRecord| r.check(&stage, &key)).map(|r| items.push(r))
                }
                Entry::Blob(_) => unreachable!("imported above"),
            };
            if let Err(why) = parsed {
                report.rejected.push(reject(why));
            }
        }
        self.write_complete(items, records, &mut report)?;
        Ok(report)
    }

    /// Writes the item records, then the records, whose blobs are all present.
    fn write_complete(
        &self,
        items: Vec<ItemRecord>,
        records: Vec<StageRecord>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let missing = |what: String| Rejected {
            entry: what,
            why: Rejection::Truncated("blobs missing from the bundle".into()),
        };
        for i in items {
            if self.has_blobs(&i.files) {
                self.write_item(&i)?;
                report.items += 1;
            } else {
                report
                    .rejected
                    .push(missing(format!("items/{}/{}", i.stage, i.key)));
            }
        }
        for r in records {
            if self.has_blobs(&r.files) {
                self.write_record(&r)?;
                report.records += 1;
            } else {
                report
                    .rejected
                    .push(missing(format!("records/{}/{}", r.stage, r.key)));
            }
        }
        Ok(())
    }
}

fn parse_doc<T: for<'de> serde::Deserialize<'de>>(
    bytes: &[u8],
    check: impl FnOnce(&T) -> std::result::Result<(), super::record::Mismatch>,
) -> std::result::Result<T, Rejection> {
    let r: T = serde_json::from_slice(bytes).map_err(|e| Rejection::NotRecord(e.to_string()))?;
    check(&r)?;
    Ok(r)
}

fn append_json<W: std::io::Write, T: serde::Serialize>(
    tar: &mut tar::Builder<W>,
    name: &str,
    value: &T,
    file: &Path,
) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("serializes");
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes.as_slice())
        .map_err(io(file))
}
