//! Stage and item records as a remote, a bundle or a damaged disk may hand them over: parsed
//! through the validation layer and checked against a place; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nasflow_engine::cache::{ItemRecord, StageRecord};

fuzz_target!(|data: &[u8]| {
    let key = "0".repeat(64);
    if let Ok(r) = serde_json::from_slice::<StageRecord>(data) {
        let _ = r.check("a", &key);
        let _ = r.check(&r.stage.to_string(), &r.key.to_string());
        let _ = r.all_files().count();
    }
    if let Ok(r) = serde_json::from_slice::<ItemRecord>(data) {
        let _ = r.check(&r.stage.to_string(), &r.key.to_string());
    }
});
