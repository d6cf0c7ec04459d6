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

/// Unpacks `archive` (named `name`) into `out`; returns how many files it wrote.
pub fn unpack(archive: &Path, name: &str, out: &Path) -> Result<usize, FetchError> {
    let err = |message: String| FetchError::Archive {
        archive: name.to_string(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(|source| FetchError::Io {
        path: archive.to_path_buf(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    match format_of(name) {
        Some(Format::TarGz) => untar(flate2::read::GzDecoder::new(reader), out).map_err(err),
        Some(Format::Tar) => untar(reader, out).map_err(err),
        Some(Format::Gz) => {
            let stem = &name[..name.len() - 3];
            let dest = out.join(stem);
            let mut to = std::fs::File::create(&dest).map_err(|e| err(e.to_string()))?;
            std::io::copy(&mut flate2::read::GzDecoder::new(reader), &mut to)
                .map_err(|e| err(format!("not a gzip file: {e}")))?;
            Ok(1)
        }
        None => Err(err(
            "`unpack = true` knows .tar.gz, .tgz, .tar and .gz (set `unpack = false` to keep the file as it is)".into(),
        )),
    }
}

fn untar(reader: impl Read, out: &Path) -> Result<usize, String> {
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
            .map_err(|e| format!("unpacking `{}`: {e}", path.display()))?;
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
        assert_eq!(unpack(&a, "a.tar.gz", &out).unwrap(), 2);
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
        let e = unpack(&a, "evil.tgz", &out).unwrap_err().to_string();
        assert!(e.contains("outside the output directory"), "{e}");
        assert!(!dir.path().join("escape").exists());
        let e = unpack(&a, "evil.zip", &out).unwrap_err().to_string();
        assert!(e.contains("knows .tar.gz"), "{e}");
        std::fs::write(&a, b"not gzip").unwrap();
        assert!(unpack(&a, "evil.tgz", &out).is_err());
    }
}
