//! The contract between a stage kind and the engine that runs it.
//!
//! A kind declares its params (name, type, default), which global settings it reads, whether it
//! runs once per item of an upstream list, and whether it uses the accelerator. Its `run`
//! function reads `ctx.params` (already validated and filled with defaults), the upstream output
//! directories in `ctx.inputs`, and writes every output file under `ctx.out`. It must not write
//! anywhere else: the engine hashes `ctx.out` after `run` returns and publishes it atomically.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::device::Device;

/// The type of a stage parameter, as written in pipeline.toml.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Int,
    /// A float; an integer literal is accepted and converted (`lr = 1` is `1.0`).
    Float,
    Bool,
    Str,
    /// An array of any values.
    List,
    /// A (possibly inline) table.
    Table,
    /// Any TOML value.
    Any,
    /// A file or directory, relative to the pipeline file; `""` for none. Its content (not
    /// only its name) is part of the stage key, and the run sees it as an absolute path.
    Path,
    /// A `Path`, or one of these keywords (which name no file: `images = "synthetic"`).
    PathOr(&'static [&'static str]),
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "integer",
            ParamType::Float => "float",
            ParamType::Bool => "boolean",
            ParamType::Str => "string",
            ParamType::List => "array",
            ParamType::Table => "table",
            ParamType::Any => "any value",
            ParamType::Path | ParamType::PathOr(_) => "path (string)",
        }
    }
}

/// One declared parameter of a stage kind.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// The default as a JSON literal (`"12"`, `"\"synthetic\""`); `None` makes it required.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// A stage kind: what pipeline.toml names with `kind = "..."`.
pub struct KindSpec {
    pub name: &'static str,
    /// Bumped whenever the kind's outputs for the same params may change; part of the stage key.
    pub version: u32,
    pub doc: &'static str,
    pub params: &'static [ParamSpec],
    /// Whether the kind reads the pipeline seed (then the seed is part of its key).
    pub reads_seed: bool,
    /// Whether the kind computes on the accelerator (then it holds a device slot on CUDA).
    pub uses_device: bool,
    /// Whether the kind runs once per item of an upstream list (`foreach = "dep"` is required).
    pub item_level: bool,
}

/// A stage kind's computation. Kept apart from [`KindSpec`] so that the engine can validate and
/// plan a pipeline without linking libtorch; only the worker process calls these.
pub type RunFn = fn(&StageContext) -> Result<(), StageError>;

impl KindSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

impl std::fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

/// The item an item-level stage computes: its position in the upstream list and its value.
#[derive(Clone, Debug)]
pub struct ItemInput {
    pub index: usize,
    pub value: Value,
}

/// Everything a stage run sees.
pub struct StageContext<'a> {
    /// The stage's name in pipeline.toml.
    pub stage: &'a str,
    /// Validated params, defaults filled in.
    pub params: &'a Map<String, Value>,
    /// Upstream output directories by dependency name. For the `foreach` dependency of an
    /// item-level stage over an item-level upstream, this is that upstream item's directory.
    pub inputs: &'a BTreeMap<String, PathBuf>,
    pub item: Option<&'a ItemInput>,
    /// The directory to write outputs into (empty, exists).
    pub out: &'a Path,
    pub seed: u64,
    pub device: Device,
    /// How many CPU threads this run may use (libtorch intra-op threads).
    pub threads: usize,
    /// Reports progress as (done, total).
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

impl StageContext<'_> {
    pub fn input(&self, dep: &str) -> Result<&Path, StageError> {
        self.inputs.get(dep).map(PathBuf::as_path).ok_or_else(|| {
            StageError::Config(format!(
                "stage `{}` needs a dependency named `{dep}` (add it to deps)",
                self.stage
            ))
        })
    }
    pub fn int(&self, name: &str) -> Result<i64, StageError> {
        self.params
            .get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| self.missing(name, "an integer"))
    }
    /// A non-negative integer param (a count or a size).
    pub fn count(&self, name: &str) -> Result<usize, StageError> {
        let v = self.int(name)?;
        usize::try_from(v).map_err(|_| {
            StageError::Config(format!(
                "stage `{}`: `{name}` must be >= 0, not {v}",
                self.stage
            ))
        })
    }
    pub fn float(&self, name: &str) -> Result<f64, StageError> {
        self.params
            .get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| self.missing(name, "a float"))
    }
    pub fn str(&self, name: &str) -> Result<&str, StageError> {
        self.params
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| self.missing(name, "a string"))
    }
    /// A `Path` param: `None` when empty, else the absolute path the engine resolved (for
    /// `PathOr`, a keyword comes back as written).
    pub fn path(&self, name: &str) -> Result<Option<PathBuf>, StageError> {
        let s = self.str(name)?;
        Ok((!s.is_empty()).then(|| PathBuf::from(s)))
    }
    /// An array param, each entry converted by `f` (`None`: a bad entry, reported by value).
    pub fn list<T>(
        &self,
        name: &str,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, StageError> {
        self.params
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| self.missing(name, "an array"))?
            .iter()
            .map(|v| {
                f(v).ok_or_else(|| {
                    StageError::Config(format!("stage `{}`: bad entry {v} in `{name}`", self.stage))
                })
            })
            .collect()
    }
    fn missing(&self, name: &str, what: &str) -> StageError {
        StageError::Config(format!(
            "stage `{}`: param `{name}` must be {what}",
            self.stage
        ))
    }
}

/// Why a stage run failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    /// A libtorch error, as text: the api module must not reference tch types (see lib.rs).
    #[error("libtorch: {0}")]
    Torch(String),
}

impl StageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io {
            path: path.into(),
            source,
        }
    }
}
