//! Unpacking a fetched archive into the outputs. The archive is untrusted: only plain files and
//! directories, at relative paths that stay inside the output directory, are accepted.
use std::io::Read;
use std::path::{Component, Path};

use super::FetchError;

/// The archive formats, by the file's name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    TarGz,
    Tar,
    Gz,
}

fn format_of(name: &str) -> Option<Format> {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Some(Format::TarGz)
    } else if n.ends_with(".tar") {
        Some(Format::Tar)
    } else if n.ends_with(".gz") {
        Some(Format::Gz)
    } else {
        None
    }
}

/// A reader that fails once more than `left` bytes have come through it: what an archive
/// unpacks to is bounded as it streams (a 3 MB gzip bomb must not write 3 GB).
struct Capped<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "it unpacks to more than `max_size` ({} bytes); nothing was kept (raise `max_size` if it really is that large)",
                self.max
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks `archive` (named `name`) into `out`, at most `max` bytes in all; returns how many
/// files it wrote.
pub fn unpack(archive: &Path, name: &str, out: &Path, max: u64) -> Result<usize, FetchError> {
    let err = |message: String| FetchError::Archive {
        archive: name.to_string(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(|source| FetchError::Io {
        path: archive.to_path_buf(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    let cap = |inner: Box<dyn Read>| Capped {
        inner,
        left: max,
        max,
    };
    let unpacked = match format_of(name) {
        Some(Format::TarGz) => untar(cap(Box::new(flate2::read::GzDecoder::new(reader))), out),
        Some(Format::Tar) => untar(cap(Box::new(reader)), out),
        Some(Format::Gz) => {
            let stem = &name[..name.len() - 3];
            let dest = out.join(stem);
            let mut to = std::fs::File::create(&dest).map_err(|e| err(e.to_string()))?;
            let mut from = cap(Box::new(flate2::read::GzDecoder::new(reader)));
            std::io::copy(&mut from, &mut to)
                .map(|_| 1)
                .map_err(|e| format!("not a gzip file, or too large: {e}"))
        }
        None => {
            return Err(err(
            "`unpack = true` knows .tar.gz, .tgz, .tar and .gz (set `unpack = false` to keep the file as it is)".into(),
        ))
        }
    };
    if unpacked.is_err() {
        // Nothing half-unpacked stays in the outputs (the run fails; this keeps a retry clean).
        for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
            let p = entry.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
    unpacked.map_err(err)
}

fn untar(reader: Capped<Box<dyn Read>>, out: &Path) -> Result<usize, String> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    let mut files = 0;
    for entry in archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("a broken tar entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry's path: {e}"))?
            .into_owned();
        let inside = !path.as_os_str().is_empty()
            && path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "entry `{}` would be written outside the output directory",
                path.display()
            ));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(format!(
                "entry `{}` is a {kind:?}, not a plain file or directory (nasflow stores plain files only)",
                path.display()
            ));
        }
        let wrote = entry
            .unpack_in(out)
            .map_err(|e| format!("unpacking `{}`: {}", path.display(), chain(&e)))?;
        if !wrote {
            return Err(format!(
                "entry `{}` would be written outside the output directory",
                path.display()
            ));
        }
        files += usize::from(kind.is_file());
    }
    Ok(files)
}

/// An error with its sources (tar wraps the reader's error in its own).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name so that hostile archives can be made.
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_tar_gz_unpacks_into_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar.gz");
        std::fs::write(&a, tar_gz(&[("d/x.bin", b"xx"), ("y.txt", b"y")])).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(unpack(&a, "a.tar.gz", &out, 1 << 20).unwrap(), 2);
        assert_eq!(std::fs::read(out.join("d/x.bin")).unwrap(), b"xx");
        assert_eq!(std::fs::read(out.join("y.txt")).unwrap(), b"y");
    }

    #[test]
    fn hostile_archives_and_unknown_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let a = dir.path().join("evil.tgz");
        std::fs::write(&a, tar_gz(&[("../escape", b"x")])).unwrap();
        let e = unpack(&a, "evil.tgz", &out, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the output directory"), "{e}");
        assert!(!dir.path().join("escape").exists());
        let e = unpack(&a, "evil.zip", &out, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("knows .tar.gz"), "{e}");
        std::fs::write(&a, b"not gzip").unwrap();
        assert!(unpack(&a, "evil.tgz", &out, 1 << 20).is_err());
    }

    #[test]
    fn an_archive_that_unpacks_past_max_size_is_refused_as_it_streams() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // 8 MB of zeros compress to a few KB: a small bomb.
        let zeros = vec![0u8; 8 << 20];
        let a = dir.path().join("bomb.tar.gz");
        std::fs::write(&a, tar_gz(&[("zeros.bin", &zeros)])).unwrap();
        assert!(std::fs::metadata(&a).unwrap().len() < 100_000);
        let e = unpack(&a, "bomb.tar.gz", &out, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than `max_size`"), "{e}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing half-unpacked is left"
        );
        let gz = dir.path().join("bomb.bin.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let e = unpack(&gz, "bomb.bin.gz", &out, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than `max_size`"), "{e}");
        // Under the limit it unpacks.
        assert_eq!(unpack(&a, "bomb.tar.gz", &out, 16 << 20).unwrap(), 1);
    }
}
