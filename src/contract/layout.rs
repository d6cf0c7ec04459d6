//! File names of the contract: what a stage writes for the engine (and for `nasflow metrics`)
//! to find, and how an item-level stage's output is laid out.
//!
//! ```text
//! OUT/items.jsonl            an item list: one JSON value a line (a `foreach` stage runs per line)
//! OUT/summary.json           the stage's summary numbers (`nasflow metrics` reads it)
//! OUT/items/00000/...        an item-level stage's output: item 0's files (then 00001, ...)
//! PROVENANCE/stdout.log      what the run printed (kept by the engine, not part of the output)
//! PROVENANCE/stderr.log
//! PROVENANCE/worker.json     the libtorch and devices the worker ran with (native kinds)
//! RESUME/...                 a kind's partial work, kept across failed runs of the same key
//! ```

/// The item list of a stage's output: one JSON value a line.
pub const ITEMS_LIST: &str = "items.jsonl";

/// A stage's summary numbers, a JSON object (nested objects allowed).
pub const SUMMARY: &str = "summary.json";

/// The run's standard output and error, in its provenance directory.
pub const STDOUT_LOG: &str = "stdout.log";
pub const STDERR_LOG: &str = "stderr.log";
/// The progress a run reported (at most one line a second, and every change of its note), in
/// its provenance directory: `nasflow log` shows it beside the other logs.
pub const PROGRESS_LOG: &str = "progress.log";

/// What `nasflow-worker` ran with (a `Probe` as JSON), in its job's provenance directory.
pub const WORKER_FACTS: &str = "worker.json";

/// The directory of item `n` inside an item-level stage's output.
pub fn item_dir(n: usize) -> String {
    format!("items/{n:05}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_directories_sort_in_item_order() {
        assert_eq!(super::item_dir(7), "items/00007");
        assert!(super::item_dir(9) < super::item_dir(10));
    }
}
