//! `nasflow cache import` of arbitrary bytes into an empty cache: rejected entries are reported,
//! nothing lands outside the cache, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nasflow_engine::cache::Cache;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar");
    std::fs::write(&bundle, data).unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    let _ = cache.import(&bundle);
    let _ = cache.drop_untrusted();
});
