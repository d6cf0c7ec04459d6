//! pipeline.toml: the pipeline settings and the declared stages, validated against the registry.
//!
//! ```toml
//! [pipeline]
//! name = "info-nas"
//! cache = "cache"          # the store, relative to this file
//! device = "auto"          # "auto" | "cpu" | "cuda" | "cuda:N"
//! seed = 1
//! jobs = 2                 # concurrent stages/items (default: the machine's cores)
//! gpu_slots = 1            # concurrent device jobs per GPU
//! gpus = "auto"            # the GPUs to place device jobs on: "auto" (all the worker sees) or [0, 1]
//!
//! [stages.pretrain]
//! kind = "pretrain"        # reserved keys: kind, deps, foreach, inputs, and run, gpu (cmd only)
//! deps = ["sample"]
//! foreach = "sample"       # run once per item of that upstream's list
//! epochs = 12              # every other key is a param of the stage
//! ```
//!
//! A native kind's params are checked here, through the kind's declaration (types, allowed
//! values, ranges), whether they come from the file, `--set`, a variant or a sweep: a bad value
//! fails at `nasflow plan`, not when the stage runs. Every error names where the value was
//! written (file, line and column, or the `--set` flag), the offending key, and a fix where one
//! fits.
mod settings;
mod stage;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml_edit::{Document, Item, Table};

use crate::registry::Registry;
use nasflow_contract::DeviceSpec;

pub use nasflow_contract::did_you_mean;

/// The keys of a `[stages.NAME]` table that are not params.
pub const RESERVED: &[&str] = &["kind", "deps", "foreach", "inputs", "run", "gpu"];

/// The GPUs device jobs are placed on (`[pipeline] gpus`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Gpus {
    /// Every CUDA device the worker sees, when the pipeline's device is CUDA.
    #[default]
    Auto,
    /// These device indices, whatever the device (so that placement works for `cmd` stages).
    List(Vec<usize>),
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline file as given on the command line.
    pub file: PathBuf,
    /// The project directory: the pipeline file's directory; cmd stages run there.
    pub root: PathBuf,
    pub name: String,
    /// The cache directory, absolute.
    pub cache_dir: PathBuf,
    pub device: DeviceSpec,
    pub seed: u64,
    pub jobs: Option<usize>,
    pub gpu_slots: usize,
    pub gpus: Gpus,
    /// Where items of item-level stages run (`[pipeline.executor]`).
    pub executor: crate::slurm::Executor,
    /// Stages in file order.
    pub stages: Vec<StageDecl>,
}

/// One `[stages.NAME]` table.
#[derive(Debug, Clone)]
pub struct StageDecl {
    pub name: String,
    pub kind: String,
    /// Upstream stage names (the `foreach` stage included).
    pub deps: Vec<String>,
    pub foreach: Option<String>,
    /// The shell command of a `cmd` stage.
    pub run: Option<String>,
    /// A `cmd` stage that computes on a GPU (`gpu = true`): placed like a device kind's job.
    pub gpu: bool,
    /// Declared input files or directories, relative to the project directory.
    pub inputs: Vec<String>,
    /// Canonical params (a native kind's: every param, defaults filled in).
    pub params: Map<String, Value>,
    /// Where the stage is declared, and where each dep is named (for DAG errors).
    pub pos: Pos,
    pub dep_pos: Vec<Pos>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageDecl> {
        self.stages.iter().find(|s| s.name == name)
    }
    pub fn index(&self, name: &str) -> Option<StageId> {
        self.stages.iter().position(|s| s.name == name).map(StageId)
    }

    /// The stage `id` names.
    pub fn decl(&self, id: StageId) -> &StageDecl {
        &self.stages[id.0]
    }

    /// Every stage's id, in file order.
    pub fn ids(&self) -> impl Iterator<Item = StageId> {
        (0..self.stages.len()).map(StageId)
    }
}

/// A stage of a pipeline: its position in the file (`Pipeline::stages`). Only a pipeline makes
/// one, so an id always names a stage of the pipeline it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(usize);

impl std::fmt::Display for StageId {
    /// Its position, as a number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl StageId {
    /// Its position in `Pipeline::stages`.
    pub fn index(self) -> usize {
        self.0
    }

    /// The id of the stage at `index` (a graph node's, a table's row).
    pub(crate) fn at(index: usize) -> StageId {
        StageId(index)
    }
}

/// A line and column (1-based) in the pipeline file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the pipeline: {source}\n  help: run nasflow in the directory of pipeline.toml, or pass --pipeline FILE", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{}:{}: {message}{}", file.display(), pos.line, pos.col, help_line(help))]
    At {
        file: PathBuf,
        pos: Pos,
        message: String,
        help: Option<String>,
    },
    #[error("--set {arg}: {message}{}", help_line(help))]
    Override {
        arg: String,
        message: String,
        help: Option<String>,
    },
}

fn help_line(help: &Option<String>) -> String {
    help.as_ref()
        .map(|h| format!("\n  help: {h}"))
        .unwrap_or_default()
}

/// Where an override was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--set stage.param=value` on the command line.
    Flag,
    /// A `[variants.NAME.STAGE]` or `[sweeps.NAME.STAGE]` value in the pipeline file.
    File(Pos),
}

/// A param override (`--set`, a variant, a sweep point), applied before validation.
#[derive(Debug, Clone)]
pub struct Override {
    pub stage: String,
    pub param: String,
    pub value: toml_edit::Value,
    /// As written, for messages and labels.
    pub raw: String,
    pub origin: Origin,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(arg: &str) -> Result<Self, String> {
        let (path, value) = arg.split_once('=').ok_or("expected stage.param=value")?;
        let (stage, param) = path
            .trim()
            .split_once('.')
            .ok_or("expected stage.param=value")?;
        // Typed as TOML; a bare word is a string (`--set sample.space=full`).
        let value = value.trim();
        let parsed = nasflow_contract::boundary::catch(|| value.parse::<toml_edit::Value>())
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| toml_edit::Value::from(value.to_string()));
        Ok(Override {
            stage: stage.to_string(),
            param: param.to_string(),
            value: parsed,
            raw: arg.to_string(),
            origin: Origin::Flag,
        })
    }
}

/// Reads and validates a pipeline file.
pub fn load(
    file: &Path,
    registry: &Registry,
    overrides: &[Override],
) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text, registry, overrides)
}

/// Validates pipeline text (`file` is used for messages and to resolve relative paths).
pub fn parse(
    file: &Path,
    text: &str,
    registry: &Registry,
    overrides: &[Override],
) -> Result<Pipeline, ConfigError> {
    let cx = Cx::new(file, text);
    let doc = cx.document()?;
    let root = doc.as_table();
    const TOP: &[&str] = &["pipeline", "stages", "variants", "sweeps"];
    if let Some((key, _)) = root.iter().find(|(k, _)| !TOP.contains(k)) {
        return Err(cx.unknown_key(root, key, "the top level", TOP));
    }
    let mut pipeline = cx.pipeline_settings(root)?;
    let Some(item) = root.get("stages") else {
        return Err(cx.err(
            Pos { line: 1, col: 1 },
            "no stages declared".into(),
            Some("add a [stages.NAME] table with a `kind`".into()),
        ));
    };
    let stages = cx.table(item, "stages", Pos { line: 1, col: 1 })?;
    let mut vars = std::collections::HashMap::new();
    for (name, item) in stages.iter() {
        let pos = cx.key_pos(stages, name);
        check_stage_name(name, &mut vars)
            .map_err(|(message, help)| cx.err(pos, message, Some(help)))?;
        let table = cx.table(item, &format!("stages.{name}"), pos)?;
        let own: Vec<&Override> = overrides.iter().filter(|o| o.stage == name).collect();
        let decl = cx.stage(name, table, pos, registry, &own)?;
        pipeline.stages.push(decl);
    }
    for o in overrides {
        if pipeline.stage(&o.stage).is_none() {
            let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(cx.at_override(
                o,
                format!("no stage named `{}`", o.stage),
                did_you_mean(&o.stage, &names),
            ));
        }
    }
    Ok(pipeline)
}

/// Stage names are what the store accepts (letters, digits, `_`, `-`; at most 64), and no two
/// may give a cmd stage the same `NASFLOW_IN_<DEP>` variable (`x-y`, `x_y` and `X_Y` would).
fn check_stage_name(
    name: &str,
    vars: &mut std::collections::HashMap<String, String>,
) -> Result<(), (String, String)> {
    crate::cache::valid::check_stage_name(name).map_err(|e| {
        (
            format!("invalid stage name `{}`: {}", e.value, e.why),
            "use 1 to 64 letters, digits, `_` and `-`".to_string(),
        )
    })?;
    let var = crate::runner::child::input_var(name);
    if let Some(other) = vars.get(&var) {
        return Err((
            format!("stage names `{other}` and `{name}` both give {var} to the stages that depend on them"),
            "rename one of them: names must differ in more than case and `-` versus `_`".to_string(),
        ));
    }
    vars.insert(var, name.to_string());
    Ok(())
}

/// The pipeline text and what places positions in it.
pub(crate) struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset of each line's start, so that positions cost a binary search.
    line_starts: Vec<usize>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Cx<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Cx {
            file,
            text,
            line_starts,
        }
    }

    pub(crate) fn document(&self) -> Result<Document<String>, ConfigError> {
        // toml_edit 0.23 (and 0.25) can panic on some malformed input ("all items have
        // spans"); outside text never panics nasflow, so the parser runs behind a boundary.
        let parsed = nasflow_contract::boundary::catch(|| Document::parse(self.text.to_string()))
            .map_err(|panic| {
                self.err(
                    Pos { line: 1, col: 1 },
                    format!("invalid TOML: the TOML parser failed on this file ({panic})"),
                    Some("check the file for stray `=` and `[` characters; the parser could not say where".into()),
                )
            })?;
        parsed.map_err(|e| {
            let pos = e
                .span()
                .map(|s| self.pos(s.start))
                .unwrap_or(Pos { line: 1, col: 1 });
            let message = e.message().trim_end().to_string();
            self.err(pos, format!("invalid TOML: {message}"), None)
        })
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |l| l.chars().count())
            + 1;
        Pos { line, col }
    }

    pub(crate) fn err(&self, pos: Pos, message: String, help: Option<String>) -> ConfigError {
        ConfigError::At {
            file: self.file.to_path_buf(),
            pos,
            message,
            help,
        }
    }

    /// An error about an override's value, placed where the override was written.
    fn at_override(&self, o: &Override, message: String, help: Option<String>) -> ConfigError {
        match o.origin {
            Origin::Flag => ConfigError::Override {
                arg: o.raw.clone(),
                message,
                help,
            },
            Origin::File(pos) => self.err(pos, format!("{}: {message}", o.raw), help),
        }
    }

    fn key_pos(&self, table: &Table, key: &str) -> Pos {
        let span = table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| table.get(key).and_then(Item::span));
        span.or_else(|| table.span())
            .map(|s| self.pos(s.start))
            .unwrap_or(Pos { line: 1, col: 1 })
    }

    pub(crate) fn item_pos(&self, table: &Table, key: &str) -> Pos {
        table
            .get(key)
            .and_then(Item::span)
            .map(|s| self.pos(s.start))
            .unwrap_or_else(|| self.key_pos(table, key))
    }

    fn unknown_key(&self, table: &Table, key: &str, place: &str, known: &[&str]) -> ConfigError {
        let help =
            did_you_mean(key, known).or_else(|| Some(format!("known keys: {}", known.join(", "))));
        self.err(
            self.key_pos(table, key),
            format!("unknown key `{key}` in {place}"),
            help,
        )
    }

    fn table<'t>(&self, item: &'t Item, what: &str, pos: Pos) -> Result<&'t Table, ConfigError> {
        item.as_table().ok_or_else(|| {
            self.err(
                pos,
                format!("`{what}` must be a table"),
                Some(format!("write it as [{what}]")),
            )
        })
    }
}

/// Converts a TOML item to the JSON value that params are checked, hashed and passed as.
pub fn to_json(item: &Item) -> Result<Value, String> {
    match item {
        Item::None => Ok(Value::Null),
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => t
            .iter()
            .map(|(k, v)| Ok((k.to_string(), to_json(v)?)))
            .collect::<Result<Map<_, _>, String>>()
            .map(Value::Object),
        Item::ArrayOfTables(a) => a
            .iter()
            .map(|t| to_json(&Item::Table(t.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

fn value_to_json(v: &toml_edit::Value) -> Result<Value, String> {
    use toml_edit::Value as V;
    Ok(match v {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => serde_json::Number::from_f64(*f.value())
            .map(Value::Number)
            .ok_or("NaN and infinite floats are not allowed")?,
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::String(d.value().to_string()),
        V::Array(a) => Value::Array(a.iter().map(value_to_json).collect::<Result<_, _>>()?),
        V::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.to_string(), value_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests;
