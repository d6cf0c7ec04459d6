//! `nasflow cache export/import`: a tar bundle of records, item records and their blobs.
//! Import checks every blob against its digest and writes only records whose blobs all arrived.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use super::blobs::manifest_digest;
use super::{io, Cache, CacheError, ItemRecord, Result, StageRecord};

#[derive(Debug, Default)]
pub struct ImportReport {
    pub blobs: usize,
    pub records: usize,
    pub items: usize,
    /// Entries rejected, with the reason.
    pub rejected: Vec<String>,
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
        let digests: BTreeSet<&str> = records
            .iter()
            .flat_map(|r| r.all_files())
            .chain(items.iter().flat_map(|i| i.all_files()))
            .filter(|f| self.blob_path(&f.digest).exists())
            .map(|f| f.digest.as_str())
            .collect();
        for d in &digests {
            let path = self.blob_path(d);
            tar.append_path_with_name(&path, format!("blobs/{}/{}", &d[..2], &d[2..]))
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
            let parts: Vec<&str> = name.split('/').collect();
            if let ["blobs", shard, rest] = parts.as_slice() {
                let digest = format!("{shard}{rest}");
                match self.import_blob(&mut entry, &digest)? {
                    Ok(()) => report.blobs += 1,
                    Err(why) => report.rejected.push(format!("{name}: {why}")),
                }
                continue;
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("{name}: truncated ({e})")))?;
            match parts.as_slice() {
                ["records", _, _] => match serde_json::from_slice(&bytes) {
                    Ok(r) => records.push(r),
                    Err(e) => report.rejected.push(format!("{name}: {e}")),
                },
                ["items", _, _] => match serde_json::from_slice(&bytes) {
                    Ok(r) => items.push(r),
                    Err(e) => report.rejected.push(format!("{name}: {e}")),
                },
                _ => report.rejected.push(format!("{name}: unexpected entry")),
            }
        }
        for i in items {
            if self.has_blobs(&i.files)
                && manifest_digest(&i.files) == i.output_digest
                && valid_name(&i.stage, &i.key)
            {
                self.write_item(&i)?;
                report.items += 1;
            } else {
                report.rejected.push(format!(
                    "items/{}/{}: blobs missing or digest mismatch",
                    i.stage, i.key
                ));
            }
        }
        for r in records {
            if self.has_blobs(&r.files)
                && manifest_digest(&r.files) == r.output_digest
                && valid_name(&r.stage, &r.key)
            {
                self.write_record(&r)?;
                report.records += 1;
            } else {
                report.rejected.push(format!(
                    "records/{}/{}: blobs missing or digest mismatch",
                    r.stage, r.key
                ));
            }
        }
        Ok(report)
    }
}

impl Cache {
    /// Streams one blob into tmp/ while hashing it; renames it into place only if its content
    /// matches its digest. Blobs can be gigabytes: they are never held in memory.
    pub(crate) fn import_blob(
        &self,
        entry: &mut impl Read,
        digest: &str,
    ) -> Result<std::result::Result<(), String>> {
        let part = self.tmp_path("import");
        let mut out = std::fs::File::create(&part).map_err(io(&part))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Ok(Err(format!("truncated ({e})")));
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&part))?;
        }
        drop(out);
        if hasher.finalize().to_hex().as_str() != digest {
            let _ = std::fs::remove_file(&part);
            return Ok(Err("content does not match its digest".into()));
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
        Ok(Ok(()))
    }
}

/// Stage names and keys become path components: refuse anything that could escape the cache.
fn valid_name(stage: &str, key: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    ok(stage) && ok(key)
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
