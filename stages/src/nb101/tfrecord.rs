//! TFRecord framing and NB101's `ModelMetrics` protobuf.
//!
//! A TFRecord file is a sequence of records: u64 little-endian length, masked crc32c of those 8
//! bytes, the data, masked crc32c of the data. NB101's `nasbench_only108.tfrecord` holds one
//! record per training run: the JSON array `[hash, epochs, adjacency bits, ops, base64 metrics]`
//! where the metrics are a serialized `nasbench.ModelMetrics` (lib/model_metrics.proto).
use std::io::{self, Read, Write};

/// `nasbench.ModelMetrics` (proto2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelMetrics {
    /// At initialisation, at the halfway point and at the end of training.
    #[prost(message, repeated, tag = "1")]
    pub evaluation_data: Vec<EvaluationData>,
    #[prost(int32, optional, tag = "2")]
    pub trainable_parameters: Option<i32>,
    #[prost(double, optional, tag = "3")]
    pub total_time: Option<f64>,
}

/// `nasbench.EvaluationData` (proto2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EvaluationData {
    #[prost(double, optional, tag = "1")]
    pub current_epoch: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub training_time: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub train_accuracy: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub validation_accuracy: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub test_accuracy: Option<f64>,
    #[prost(string, optional, tag = "6")]
    pub checkpoint_path: Option<String>,
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// What is wrong with a record's framing.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("truncated record (the file ends inside it)")]
    Truncated,
    #[error("bad length checksum")]
    LengthCrc,
    #[error("bad data checksum")]
    DataCrc,
    #[error("record length {0} is implausible")]
    Length(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads records one at a time (the 500 MB NB101 file is never held whole).
pub struct Reader<R> {
    inner: R,
    /// Byte offset of the next record.
    pub offset: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader { inner, offset: 0 }
    }

    /// The next record, `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut head = [0u8; 12];
        let got = read_full(&mut self.inner, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(FrameError::Truncated);
        }
        let len_bytes: [u8; 8] = head[..8].try_into().expect("8 bytes");
        let crc = u32::from_le_bytes(head[8..].try_into().expect("4 bytes"));
        if masked_crc(&len_bytes) != crc {
            return Err(FrameError::LengthCrc);
        }
        let len = u64::from_le_bytes(len_bytes);
        if len > 1 << 30 {
            return Err(FrameError::Length(len));
        }
        let mut data = vec![0u8; len as usize + 4];
        if read_full(&mut self.inner, &mut data)? < data.len() {
            return Err(FrameError::Truncated);
        }
        let crc = u32::from_le_bytes(data[len as usize..].try_into().expect("4 bytes"));
        data.truncate(len as usize);
        if masked_crc(&data) != crc {
            return Err(FrameError::DataCrc);
        }
        self.offset += 16 + len;
        Ok(Some(data))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes one framed record.
pub fn write_record(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc(data).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::manual_rotate)] // spelled as TensorFlow's crc32c::Mask does
    fn masked_crc_matches_tensorflow() {
        // TensorFlow's crc32c test vector: crc32c("123456789") = 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let crc = 0xe306_9283u32;
        assert_eq!(
            masked_crc(b"123456789"),
            ((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)
        );
    }

    #[test]
    fn round_trip_and_errors() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello").unwrap();
        write_record(&mut buf, b"").unwrap();
        let mut r = Reader::new(&buf[..]);
        assert_eq!(r.next_record().unwrap().unwrap(), b"hello");
        assert_eq!(r.offset, 21);
        assert_eq!(r.next_record().unwrap().unwrap(), b"");
        assert!(r.next_record().unwrap().is_none());

        let mut r = Reader::new(&buf[..buf.len() - 3]);
        r.next_record().unwrap();
        assert!(matches!(r.next_record(), Err(FrameError::Truncated)));

        let mut bad = buf.clone();
        bad[13] ^= 0xff; // inside "hello"
        assert!(matches!(
            Reader::new(&bad[..]).next_record(),
            Err(FrameError::DataCrc)
        ));
        let mut bad = buf.clone();
        bad[0] ^= 1;
        assert!(matches!(
            Reader::new(&bad[..]).next_record(),
            Err(FrameError::LengthCrc)
        ));
    }
}
