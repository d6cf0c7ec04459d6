//! CIFAR-10's binary files: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each
//! 10,000 records of one label byte and 3,072 pixel bytes (R, G, B planes of 32 x 32).
use std::path::{Path, PathBuf};

use super::{Dataset, Images, CLASSES, PIXELS};

const RECORD: usize = 1 + PIXELS;

/// A CIFAR-10 directory that cannot be read: the file, the record, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {what}", path.display(), record.map(|r| format!(" record {r}")).unwrap_or_default())]
pub struct CifarError {
    pub path: PathBuf,
    pub record: Option<usize>,
    pub what: String,
}

/// Reads one binary batch file.
pub fn read_batch(path: &Path) -> Result<Images, CifarError> {
    let err = |record, what: String| CifarError {
        path: path.to_path_buf(),
        record,
        what,
    };
    let bytes = std::fs::read(path).map_err(|e| {
        err(
            None,
            format!(
                "{e} (expected CIFAR-10's binary version: data_batch_1..5.bin and test_batch.bin)"
            ),
        )
    })?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(err(
            Some(bytes.len() / RECORD + 1),
            format!(
                "{} bytes is not a whole number of 3,073-byte records (truncated?)",
                bytes.len()
            ),
        ));
    }
    let mut out = Images {
        pixels: Vec::with_capacity(bytes.len()),
        labels: Vec::with_capacity(bytes.len() / RECORD),
    };
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        if r[0] as usize >= CLASSES {
            return Err(err(
                Some(i + 1),
                format!("label {} (CIFAR-10 has 10 classes)", r[0]),
            ));
        }
        out.labels.push(r[0]);
        out.pixels.extend_from_slice(&r[1..]);
    }
    Ok(out)
}

/// The five training batches, concatenated, and the test batch.
pub fn load_dir(dir: &Path) -> Result<Dataset, CifarError> {
    let mut train = Images::default();
    for k in 1..=5 {
        let b = read_batch(&dir.join(format!("data_batch_{k}.bin")))?;
        train.pixels.extend(b.pixels);
        train.labels.extend(b.labels);
    }
    let test = read_batch(&dir.join("test_batch.bin"))?;
    Ok(Dataset {
        train,
        test,
        name: "cifar10".into(),
    })
}

/// Writes images as a binary batch file (for tests and for exporting the synthetic set).
pub fn write_batch(path: &Path, images: &Images) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(images.len() * RECORD);
    for i in 0..images.len() {
        bytes.push(images.labels[i]);
        bytes.extend_from_slice(images.image(i));
    }
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize, label: u8) -> Images {
        Images {
            pixels: (0..n * PIXELS).map(|i| (i % 251) as u8).collect(),
            labels: vec![label; n],
        }
    }

    #[test]
    fn reads_a_directory_in_the_real_format() {
        let dir = tempfile::tempdir().unwrap();
        for k in 1..=5 {
            write_batch(
                &dir.path().join(format!("data_batch_{k}.bin")),
                &images(3, k as u8),
            )
            .unwrap();
        }
        write_batch(&dir.path().join("test_batch.bin"), &images(2, 9)).unwrap();
        let d = load_dir(dir.path()).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (15, 2));
        assert_eq!(d.train.labels[3], 2);
        assert_eq!(d.train.image(4), images(3, 0).image(1));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains("binary version"),
            "{e}"
        );
        let p = dir.path().join("data_batch_1.bin");
        write_batch(&p, &images(2, 1)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap();
        let e = read_batch(&p).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("truncated"), "{e}");
        let mut bad = bytes.clone();
        bad[RECORD] = 12;
        std::fs::write(&p, &bad).unwrap();
        let e = read_batch(&p).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("label 12"), "{e}");
    }
}
