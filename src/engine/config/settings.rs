//! The `[pipeline]` table.
use std::path::Path;

use toml_edit::{Item, Table};

use super::{ConfigError, Cx, Pipeline};
use crate::slurm::settings::{self as executor, SettingError};

const PIPELINE_KEYS: &[&str] = &[
    "name",
    "cache",
    "device",
    "seed",
    "jobs",
    "gpu_slots",
    "gpus",
    "executor",
];

impl Cx<'_> {
    pub(super) fn pipeline_settings(&self, root: &Table) -> Result<Pipeline, ConfigError> {
        let dir = self
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut p = Pipeline {
            file: self.file.to_path_buf(),
            root: dir.clone(),
            name: "pipeline".into(),
            cache_dir: dir.join("cache"),
            device: Default::default(),
            seed: 0,
            jobs: None,
            gpu_slots: 1,
            gpus: Default::default(),
            executor: Default::default(),
            stages: Vec::new(),
        };
        let Some(item) = root.get("pipeline") else {
            return Ok(p);
        };
        let table = self.table(item, "pipeline", self.key_pos(root, "pipeline"))?;
        for (key, item) in table.iter() {
            self.setting(&mut p, table, key, item)?;
        }
        Ok(p)
    }

    /// One key of `[pipeline]`.
    fn setting(
        &self,
        p: &mut Pipeline,
        table: &Table,
        key: &str,
        item: &Item,
    ) -> Result<(), ConfigError> {
        let pos = self.item_pos(table, key);
        let bad = |want: &str| {
            self.err(
                pos,
                format!("`pipeline.{key}` must be {want}, not {}", item.type_name()),
                None,
            )
        };
        let positive = || {
            item.as_integer()
                .filter(|v| *v >= 1)
                .map(|v| v as usize)
                .ok_or_else(|| bad("a positive integer"))
        };
        match key {
            "name" => p.name = item.as_str().ok_or_else(|| bad("a string"))?.to_string(),
            "cache" => {
                let dir = item.as_str().ok_or_else(|| bad("a string"))?;
                if dir.trim().is_empty() {
                    let help = "name a directory, e.g. cache = \"cache\" (relative to this file)";
                    return Err(self.err(
                        pos,
                        "`pipeline.cache` is empty".into(),
                        Some(help.into()),
                    ));
                }
                p.cache_dir = p.root.join(dir);
            }
            "device" => {
                let d = item.as_str().ok_or_else(|| bad("a string"))?;
                p.device = d.parse().map_err(|e| self.err(pos, format!("{e}"), None))?;
            }
            "seed" => {
                p.seed = item
                    .as_integer()
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| bad("a non-negative integer"))?
            }
            "jobs" => p.jobs = Some(positive()?),
            "gpu_slots" => p.gpu_slots = positive()?,
            "gpus" => {
                p.gpus = gpus(item)
                    .ok_or_else(|| bad("\"auto\" or a list of GPU indices like [0, 1]"))?
            }
            "executor" => {
                let t = item
                    .as_table()
                    .ok_or_else(|| bad("a table ([pipeline.executor])"))?;
                p.executor = executor::parse(t).map_err(|e| self.executor_error(t, e))?;
            }
            _ => return Err(self.unknown_key(table, key, "[pipeline]", PIPELINE_KEYS)),
        }
        Ok(())
    }

    fn executor_error(&self, t: &Table, e: SettingError) -> ConfigError {
        match e {
            SettingError::UnknownKey { key } => {
                self.unknown_key(t, &key, "[pipeline.executor]", executor::EXECUTOR_KEYS)
            }
            SettingError::Invalid { key, message, help } => {
                self.err(self.item_pos(t, &key), message, help)
            }
        }
    }
}

/// `gpus = "auto"` or `gpus = [0, 1]` (distinct non-negative indices, at least one).
fn gpus(item: &Item) -> Option<super::Gpus> {
    if item.as_str() == Some("auto") {
        return Some(super::Gpus::Auto);
    }
    let list: Vec<usize> = item
        .as_array()?
        .iter()
        .map(|v| v.as_integer().and_then(|i| usize::try_from(i).ok()))
        .collect::<Option<_>>()?;
    let mut seen = list.clone();
    seen.sort_unstable();
    seen.dedup();
    (!list.is_empty() && seen.len() == list.len()).then_some(super::Gpus::List(list))
}
