//! The NB101 table readers (tfrecord, arch2vec's data.json, hash-keyed JSON Lines) on arbitrary
//! bytes: an error naming the file and record, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nasflow_stages::nb101::Table;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    for name in ["t.tfrecord", "data.json", "t.jsonl"] {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let _ = Table::load(&path);
    }
});
