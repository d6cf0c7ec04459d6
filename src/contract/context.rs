//! What a stage run sees: its typed params, its upstream outputs, its item, and where to write.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::device::Device;
use crate::error::StageError;
use crate::layout::{item_dir, ITEMS_LIST};

/// Upstream output directories by dependency (stage) name. For the `foreach` dependency of an
/// item-level stage over an item-level upstream, the entry is that upstream item's directory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inputs(pub BTreeMap<String, PathBuf>);

impl Inputs {
    pub fn get(&self, dep: &str) -> Option<&Path> {
        self.0.get(dep).map(PathBuf::as_path)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PathBuf)> {
        self.0.iter()
    }
}

/// The item an item-level stage computes: its position in the upstream list and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemInput {
    pub index: usize,
    pub value: Value,
}

/// An upstream item list ([`ITEMS_LIST`]) and, for an item-level upstream, each item's files.
#[derive(Clone, Debug)]
pub struct ItemList {
    pub dir: PathBuf,
    pub values: Vec<Value>,
}

impl ItemList {
    /// Reads `dir/items.jsonl`.
    pub fn read(dir: &Path) -> Result<ItemList, StageError> {
        let path = dir.join(ITEMS_LIST);
        let text = std::fs::read_to_string(&path).map_err(|e| StageError::io(&path, e))?;
        let values = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l).map_err(|e| {
                    StageError::Failed(format!("{} line {}: {e}", path.display(), n + 1))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ItemList {
            dir: dir.to_path_buf(),
            values,
        })
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The directory holding item `n`'s files (an item-level upstream's output).
    pub fn item(&self, n: usize) -> PathBuf {
        self.dir.join(item_dir(n))
    }
}

/// A progress report: `done` of `total` `unit`s, with an optional note (a loss, an ETA).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub note: String,
}

/// Everything a stage run sees. `P` is the kind's params struct.
pub struct StageContext<'a, P> {
    /// The stage's name in pipeline.toml.
    pub stage: &'a str,
    /// Validated params, defaults filled in; path params absolute.
    pub params: &'a P,
    pub inputs: &'a Inputs,
    pub item: Option<&'a ItemInput>,
    /// The directory to write outputs into (empty, exists).
    pub out: &'a Path,
    /// The directory for what varies from run to run: timings, logs (see the crate doc).
    pub provenance: &'a Path,
    /// A directory of this (stage, key) that outlives a failed run: a kind that can resume
    /// (a download) keeps its partial work here. The engine removes it once a run succeeds, and
    /// `nasflow gc` removes those left untouched for an hour. Never part of the outputs.
    pub resume: &'a Path,
    /// The project directory (the pipeline file's), against which a param that is not a path
    /// param but may name a local file (a download's `url`) is resolved.
    pub project: &'a Path,
    pub seed: u64,
    pub device: Device,
    /// How many CPU threads this run may use (libtorch intra-op threads).
    pub threads: usize,
    pub report: &'a (dyn Fn(&Progress) + Sync),
}

impl<P> StageContext<'_, P> {
    /// An upstream's output directory.
    pub fn input(&self, dep: &str) -> Result<&Path, StageError> {
        self.inputs.get(dep).ok_or_else(|| {
            StageError::Config(format!(
                "stage `{}` needs a dependency named `{dep}` (add it to deps)",
                self.stage
            ))
        })
    }

    /// An upstream's item list.
    pub fn item_list(&self, dep: &str) -> Result<ItemList, StageError> {
        ItemList::read(self.input(dep)?)
    }

    /// The item of an item-level stage.
    pub fn item(&self) -> Result<&ItemInput, StageError> {
        self.item.ok_or_else(|| {
            StageError::Config(format!(
                "stage `{}` runs once per item: set `foreach`",
                self.stage
            ))
        })
    }

    /// Reports `done` of `total` steps.
    pub fn progress(&self, done: u64, total: u64) {
        self.progress_with(done, total, "steps", String::new());
    }

    /// Reports progress in the stage's own unit, with a note (shown next to the count).
    pub fn progress_with(&self, done: u64, total: u64, unit: &str, note: String) {
        (self.report)(&Progress {
            done,
            total,
            unit: unit.to_string(),
            note,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_lists_are_read_with_their_item_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ITEMS_LIST), "{\"a\":1}\n\n2\n").unwrap();
        let l = ItemList::read(dir.path()).unwrap();
        assert_eq!(
            l.values,
            vec![serde_json::json!({"a": 1}), serde_json::json!(2)]
        );
        assert_eq!(l.item(1), dir.path().join("items/00001"));
        std::fs::write(dir.path().join(ITEMS_LIST), "{bad\n").unwrap();
        let e = ItemList::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("items.jsonl line 1"), "{e}");
    }
}
