//! pipeline.toml: the pipeline settings and the declared stages, validated against the registry.
//!
//! ```toml
//! [pipeline]
//! name = "info-nas"
//! cache = "cache"          # the store, relative to this file
//! device = "auto"          # "auto" | "cpu" | "cuda" | "cuda:N"
//! seed = 1
//! jobs = 2                 # concurrent stages/items (default: the machine's cores)
//! gpu_slots = 1            # concurrent device stages per GPU
//!
//! [stages.pretrain]
//! kind = "pretrain"        # reserved keys: kind, deps, foreach, inputs, and run (cmd only)
//! deps = ["sample"]
//! foreach = "sample"       # run once per item of that upstream's list
//! epochs = 12              # every other key is a param of the stage
//! ```
//!
//! Every error names the file, line and column, the offending key, and a fix where one fits.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml_edit::{Document, Item, Table};

use crate::registry::{KindRef, Registry};
use nasflow_stages::ParamType;

/// The keys of a `[stages.NAME]` table that are not params.
pub const RESERVED: &[&str] = &["kind", "deps", "foreach", "inputs", "run"];
const PIPELINE_KEYS: &[&str] = &[
    "name",
    "cache",
    "device",
    "seed",
    "jobs",
    "gpu_slots",
    "executor",
];

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
    pub device: String,
    pub seed: u64,
    pub jobs: Option<usize>,
    pub gpu_slots: usize,
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
    /// Declared input files or directories, relative to the project directory.
    pub inputs: Vec<String>,
    /// Validated params with defaults filled in.
    pub params: Map<String, Value>,
    /// Where the stage is declared, and where each dep is named (for DAG errors).
    pub pos: Pos,
    pub dep_pos: Vec<Pos>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageDecl> {
        self.stages.iter().find(|s| s.name == name)
    }
    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
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

/// A `--set stage.param=value` override, applied before validation.
#[derive(Debug, Clone)]
pub struct Override {
    pub stage: String,
    pub param: String,
    pub value: toml_edit::Value,
    pub raw: String,
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
        let parsed = value
            .parse::<toml_edit::Value>()
            .unwrap_or_else(|_| toml_edit::Value::from(value.to_string()));
        Ok(Override {
            stage: stage.to_string(),
            param: param.to_string(),
            value: parsed,
            raw: arg.to_string(),
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
    let line_starts = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let cx = Cx {
        file,
        text,
        line_starts,
    };
    let doc = Document::parse(text.to_string()).map_err(|e| {
        let pos = e
            .span()
            .map(|s| cx.pos(s.start))
            .unwrap_or(Pos { line: 1, col: 1 });
        let message = e.message().trim_end().to_string();
        cx.err(pos, format!("invalid TOML: {message}"), None)
    })?;
    let root = doc.as_table();
    for (key, _) in root.iter() {
        if !["pipeline", "stages", "variants", "sweeps"].contains(&key) {
            return Err(cx.unknown_key(
                root,
                key,
                "the top level",
                &["pipeline", "stages", "variants", "sweeps"],
            ));
        }
    }
    let mut pipeline = cx.pipeline_settings(root)?;
    let stages = match root.get("stages") {
        None => {
            return Err(cx.err(
                Pos { line: 1, col: 1 },
                "no stages declared".into(),
                Some("add a [stages.NAME] table with a `kind`".into()),
            ))
        }
        Some(item) => cx.table(item, "stages", Pos { line: 1, col: 1 })?,
    };
    for (name, item) in stages.iter() {
        let pos = cx.key_pos(stages, name);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(cx.err(
                pos,
                format!("invalid stage name `{name}`"),
                Some("use letters, digits, `_` and `-`".into()),
            ));
        }
        let table = cx.table(item, &format!("stages.{name}"), pos)?;
        let own: Vec<&Override> = overrides.iter().filter(|o| o.stage == name).collect();
        pipeline
            .stages
            .push(cx.stage(name, table, pos, registry, &own)?);
    }
    for o in overrides {
        if pipeline.stage(&o.stage).is_none() {
            let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(ConfigError::Override {
                arg: o.raw.clone(),
                message: format!("no stage named `{}`", o.stage),
                help: did_you_mean(&o.stage, &names),
            });
        }
    }
    Ok(pipeline)
}

struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset of each line's start, so that positions cost a binary search.
    line_starts: Vec<usize>,
}

impl Cx<'_> {
    fn pos(&self, offset: usize) -> Pos {
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

    fn err(&self, pos: Pos, message: String, help: Option<String>) -> ConfigError {
        ConfigError::At {
            file: self.file.to_path_buf(),
            pos,
            message,
            help,
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

    fn item_pos(&self, table: &Table, key: &str) -> Pos {
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

    fn pipeline_settings(&self, root: &Table) -> Result<Pipeline, ConfigError> {
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
            device: "auto".into(),
            seed: 0,
            jobs: None,
            gpu_slots: 1,
            executor: Default::default(),
            stages: Vec::new(),
        };
        let Some(item) = root.get("pipeline") else {
            return Ok(p);
        };
        let table = self.table(item, "pipeline", self.key_pos(root, "pipeline"))?;
        for (key, item) in table.iter() {
            let pos = self.item_pos(table, key);
            let bad = |want: &str| {
                self.err(
                    pos,
                    format!("`pipeline.{key}` must be {want}, not {}", item.type_name()),
                    None,
                )
            };
            match key {
                "name" => p.name = item.as_str().ok_or_else(|| bad("a string"))?.to_string(),
                "cache" => p.cache_dir = dir.join(item.as_str().ok_or_else(|| bad("a string"))?),
                "device" => {
                    let d = item.as_str().ok_or_else(|| bad("a string"))?;
                    nasflow_stages::device::parse(d)
                        .map_err(|e| self.err(pos, e.to_string(), None))?;
                    p.device = d.to_string();
                }
                "seed" => {
                    p.seed = item
                        .as_integer()
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(|| bad("a non-negative integer"))?
                }
                "jobs" | "gpu_slots" => {
                    let n = item
                        .as_integer()
                        .filter(|v| *v >= 1)
                        .ok_or_else(|| bad("a positive integer"))?
                        as usize;
                    if key == "jobs" {
                        p.jobs = Some(n)
                    } else {
                        p.gpu_slots = n
                    }
                }
                "executor" => {
                    let t = item
                        .as_table()
                        .ok_or_else(|| bad("a table ([pipeline.executor])"))?;
                    p.executor = crate::slurm::settings::parse(t).map_err(|e| {
                        if e.message.starts_with("unknown key") {
                            self.unknown_key(
                                t,
                                &e.key,
                                "[pipeline.executor]",
                                crate::slurm::settings::EXECUTOR_KEYS,
                            )
                        } else {
                            self.err(self.item_pos(t, &e.key), e.message, e.help)
                        }
                    })?;
                }
                _ => return Err(self.unknown_key(table, key, "[pipeline]", PIPELINE_KEYS)),
            }
        }
        Ok(p)
    }

    fn stage(
        &self,
        name: &str,
        table: &Table,
        pos: Pos,
        registry: &Registry,
        overrides: &[&Override],
    ) -> Result<StageDecl, ConfigError> {
        let kind_name = match table.get("kind") {
            None => {
                return Err(self.err(
                    pos,
                    format!("stage `{name}` has no `kind`"),
                    Some(format!(
                        "add kind = \"...\"; known kinds: {}",
                        registry.names().join(", ")
                    )),
                ))
            }
            Some(item) => item.as_str().ok_or_else(|| {
                self.err(
                    self.item_pos(table, "kind"),
                    "`kind` must be a string".into(),
                    None,
                )
            })?,
        };
        let kind = registry.get(kind_name).ok_or_else(|| {
            let help = did_you_mean(kind_name, &registry.names())
                .unwrap_or_else(|| format!("known kinds: {}", registry.names().join(", ")));
            self.err(
                self.item_pos(table, "kind"),
                format!("unknown stage kind `{kind_name}` in [stages.{name}]"),
                Some(help),
            )
        })?;
        let mut decl = StageDecl {
            name: name.to_string(),
            kind: kind_name.to_string(),
            deps: Vec::new(),
            foreach: None,
            run: None,
            inputs: Vec::new(),
            params: Map::new(),
            pos,
            dep_pos: Vec::new(),
        };
        let mut raw: BTreeMap<String, (Value, Pos)> = BTreeMap::new();
        for (key, item) in table.iter() {
            let ipos = self.item_pos(table, key);
            match key {
                "kind" => {}
                "deps" | "inputs" => {
                    let list = self.string_list(item, table, key, name)?;
                    if key == "deps" {
                        decl.dep_pos = list.iter().map(|(_, p)| *p).collect();
                        decl.deps = list.into_iter().map(|(s, _)| s).collect();
                    } else {
                        decl.inputs = list.into_iter().map(|(s, _)| s).collect();
                    }
                }
                "foreach" | "run" => {
                    let s = item.as_str().ok_or_else(|| {
                        self.err(
                            ipos,
                            format!("`{key}` in [stages.{name}] must be a string"),
                            None,
                        )
                    })?;
                    if key == "run" && !matches!(kind, KindRef::Cmd) {
                        return Err(self.err(self.key_pos(table, key), format!("`run` is only for kind = \"cmd\", and [stages.{name}] is kind = \"{kind_name}\""), Some("remove `run`, or make the stage a cmd stage".into())));
                    }
                    if key == "run" {
                        decl.run = Some(s.to_string())
                    } else {
                        decl.foreach = Some(s.to_string())
                    }
                }
                _ => {
                    let value = to_json(item).map_err(|m| {
                        self.err(ipos, format!("`{key}` in [stages.{name}]: {m}"), None)
                    })?;
                    raw.insert(key.to_string(), (value, self.key_pos(table, key)));
                }
            }
        }
        for o in overrides {
            if RESERVED.contains(&o.param.as_str()) {
                return Err(ConfigError::Override {
                    arg: o.raw.clone(),
                    message: format!("`{}` is not a param and cannot be set", o.param),
                    help: None,
                });
            }
            let value =
                to_json(&Item::Value(o.value.clone())).map_err(|m| ConfigError::Override {
                    arg: o.raw.clone(),
                    message: m,
                    help: None,
                })?;
            raw.insert(o.param.clone(), (value, Pos::default()));
        }
        if let Some(f) = &decl.foreach {
            if !decl.deps.contains(f) {
                decl.deps.push(f.clone());
                decl.dep_pos.push(self.item_pos(table, "foreach"));
            }
        }
        match kind {
            KindRef::Cmd => {
                if decl.run.is_none() {
                    return Err(self.err(pos, format!("cmd stage `{name}` has no `run` command"), Some("add run = \"your command\" (it runs with sh -c in the project directory)".into())));
                }
                decl.params = raw.into_iter().map(|(k, (v, _))| (k, v)).collect();
            }
            KindRef::Spec(spec) => {
                if spec.item_level && decl.foreach.is_none() {
                    return Err(self.err(pos, format!("stage `{name}` of kind `{kind_name}` runs once per item and needs `foreach`"), Some("add foreach = \"UPSTREAM\" naming the stage whose items it processes".into())));
                }
                decl.params = self.typed_params(name, spec, raw, overrides, pos)?;
            }
        }
        Ok(decl)
    }

    fn string_list(
        &self,
        item: &Item,
        table: &Table,
        key: &str,
        stage: &str,
    ) -> Result<Vec<(String, Pos)>, ConfigError> {
        let err = || {
            self.err(
                self.item_pos(table, key),
                format!("`{key}` in [stages.{stage}] must be an array of strings"),
                Some(format!("write {key} = [\"a\", \"b\"]")),
            )
        };
        let array = item.as_array().ok_or_else(err)?;
        array
            .iter()
            .map(|v| {
                let s = v.as_str().ok_or_else(err)?;
                let pos = v
                    .span()
                    .map(|s| self.pos(s.start))
                    .unwrap_or_else(|| self.item_pos(table, key));
                Ok((s.to_string(), pos))
            })
            .collect()
    }

    fn typed_params(
        &self,
        stage: &str,
        spec: &nasflow_stages::KindSpec,
        raw: BTreeMap<String, (Value, Pos)>,
        overrides: &[&Override],
        pos: Pos,
    ) -> Result<Map<String, Value>, ConfigError> {
        let known: Vec<&str> = spec
            .params
            .iter()
            .map(|p| p.name)
            .chain(RESERVED.iter().copied())
            .collect();
        let from_override = |key: &str| overrides.iter().rev().find(|o| o.param == key);
        let mut params = Map::new();
        for (key, (value, kpos)) in raw {
            let place = |message: String, help: Option<String>| match from_override(&key) {
                Some(o) => ConfigError::Override {
                    arg: o.raw.clone(),
                    message,
                    help,
                },
                None => self.err(kpos, message, help),
            };
            let Some(p) = spec.param(&key) else {
                let help = did_you_mean(&key, &known).or_else(|| {
                    Some(format!(
                        "params of `{}`: {}",
                        spec.name,
                        spec.params
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                });
                return Err(place(
                    format!(
                        "unknown key `{key}` in [stages.{stage}] (kind `{}`)",
                        spec.name
                    ),
                    help,
                ));
            };
            let value = check_type(p.ty, value).map_err(|got| {
                place(
                    format!(
                        "`{key}` in [stages.{stage}] must be {}, not {got}",
                        p.ty.name()
                    ),
                    Some(format!("{key}: {}", p.doc)),
                )
            })?;
            params.insert(key, value);
        }
        for p in spec.params {
            if params.contains_key(p.name) {
                continue;
            }
            match p.default {
                Some(d) => {
                    let v = serde_json::from_str(d).unwrap_or_else(|e| {
                        panic!("kind `{}`: bad default for `{}`: {e}", spec.name, p.name)
                    });
                    params.insert(p.name.to_string(), v);
                }
                None => {
                    return Err(self.err(
                        pos,
                        format!(
                            "[stages.{stage}] is missing the required param `{}`",
                            p.name
                        ),
                        Some(format!("add {} = ... ({}: {})", p.name, p.ty.name(), p.doc)),
                    ))
                }
            }
        }
        Ok(params)
    }
}

/// Converts a TOML item to the JSON value that params are hashed and passed as.
fn to_json(item: &Item) -> Result<Value, String> {
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

/// Checks a param against its declared type; returns the value in canonical form
/// (an integer given for a float param becomes a float) or the name of the type found.
fn check_type(ty: ParamType, value: Value) -> Result<Value, &'static str> {
    let found = match &value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    };
    let ok = match ty {
        ParamType::Any => true,
        ParamType::Int => value.is_i64() || value.is_u64(),
        ParamType::Float => value.is_number(),
        ParamType::Bool => value.is_boolean(),
        ParamType::Str | ParamType::Path | ParamType::PathOr(_) => value.is_string(),
        ParamType::List => value.is_array(),
        ParamType::Table => value.is_object(),
    };
    match (ok, ty) {
        (false, _) => Err(found),
        (true, ParamType::Float) => Ok(value
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(value)),
        (true, _) => Ok(value),
    }
}

/// "did you mean `x`?" for the closest known name, when one is close.
pub fn did_you_mean(word: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str, overrides: &[Override]) -> Result<Pipeline, ConfigError> {
        parse(
            Path::new("pipeline.toml"),
            text,
            &Registry::builtin(),
            overrides,
        )
    }

    #[test]
    fn params_are_typed_and_defaults_filled() {
        let p = parse_str(
            "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\nscale = 2\n",
            &[],
        )
        .unwrap();
        let a = p.stage("a").unwrap();
        assert_eq!(
            a.params["scale"],
            serde_json::json!(2.0),
            "an integer for a float param becomes a float"
        );
        assert_eq!(
            a.params["repeat"],
            serde_json::json!(1),
            "defaults are filled in"
        );
    }

    #[test]
    fn overrides_are_typed_by_the_schema() {
        let o: Override = "a.repeat=4".parse().unwrap();
        let p = parse_str("[stages.a]\nkind = \"test-write\"\ntext = \"x\"\n", &[o]).unwrap();
        assert_eq!(p.stage("a").unwrap().params["repeat"], serde_json::json!(4));
        let word: Override = "a.text=hello".parse().unwrap();
        let p = parse_str("[stages.a]\nkind = \"test-write\"\ntext = \"x\"\n", &[word]).unwrap();
        assert_eq!(
            p.stage("a").unwrap().params["text"],
            serde_json::json!("hello")
        );
        assert!("no-equals".parse::<Override>().is_err());
    }

    #[test]
    fn foreach_implies_the_dep() {
        let p = parse_str("[stages.l]\nkind = \"test-items\"\ncount = 1\n[stages.e]\nkind = \"test-item\"\nforeach = \"l\"\n", &[]).unwrap();
        assert_eq!(p.stage("e").unwrap().deps, vec!["l".to_string()]);
        let err = parse_str("[stages.e]\nkind = \"test-item\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("needs `foreach`"), "{err}");
    }

    #[test]
    fn positions_are_line_and_column() {
        let err = parse_str(
            "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n  [pipeline]\n  jobs = 0\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pipeline.toml:5:10: `pipeline.jobs` must be a positive integer"),
            "{err}"
        );
    }

    #[test]
    fn run_is_only_for_cmd() {
        let err = parse_str(
            "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\nrun = \"ls\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`run` is only for kind = \"cmd\""),
            "{err}"
        );
    }

    #[test]
    fn did_you_mean_only_for_close_names() {
        assert_eq!(
            did_you_mean("epoch", &["epochs", "seed"]),
            Some("did you mean `epochs`?".into())
        );
        assert_eq!(did_you_mean("zzz", &["epochs", "seed"]), None);
    }
}
