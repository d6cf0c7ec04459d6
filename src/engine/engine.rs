//! A pipeline bound to its cache and runner: stage keys from upstream outputs, item lists,
//! input views, jobs. What to do with each stage is decided in [`crate::decide`]; running the
//! decisions is [`crate::schedule`]'s.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use nasflow_contract::layout::{item_dir, ITEMS_LIST};
use nasflow_contract::{Device, DeviceSpec, Inputs, ItemInput, Job, ParamType};
use serde_json::{json, Map, Value};

use crate::cache::record::ItemRef;
use crate::cache::statcache::StatCache;
use crate::cache::view::ViewRef;
use crate::cache::{Cache, CacheError, Digest, FileEntry, RelPath, StageRecord};
use crate::config::Pipeline;
use crate::config::StageId;
use crate::dag::Dag;
use crate::key::KeyInputs;
use crate::registry::{KindRef, Registry};
use crate::runner::Runner;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Input(Box<InputError>),
    #[error("stage `{stage}`: {message}")]
    Items { stage: String, message: String },
    /// The device cannot be used, or the worker could not say which devices it can use.
    #[error("{0}")]
    Device(String),
}

/// A declared input or path param that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{at}: stage `{stage}`: {what} `{path}` (resolved to {}) cannot be read: {error}\n  help: create it, or fix the path (in `inputs` or a path param of [stages.{stage}])", resolved.display())]
pub struct InputError {
    /// `pipeline.toml:LINE`: where the path is given (the stage's table where not found).
    pub at: String,
    pub stage: String,
    /// `input` or `param `NAME` =`.
    pub what: String,
    pub path: String,
    pub resolved: PathBuf,
    pub error: std::io::Error,
}

impl EngineError {
    /// Errors the user fixes in pipeline.toml or on the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, EngineError::Input(_) | EngineError::Device(_))
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// One item of an item-level stage.
#[derive(Debug, Clone)]
pub struct ItemSpec {
    pub index: usize,
    pub value: Value,
    /// The upstream item, when the `foreach` stage is itself item-level.
    pub upstream: Option<ItemRef>,
}

/// Finished stages' records by stage index: what keys are computed from.
pub type Done = HashMap<StageId, Arc<StageRecord>>;

/// A pipeline bound to its cache and runner.
pub struct Engine<'a> {
    pub p: &'a Pipeline,
    pub dag: &'a Dag,
    pub reg: &'a Registry,
    pub cache: &'a Cache,
    pub runner: &'a dyn Runner,
    stat: Mutex<StatCache>,
    /// Resolved once; a failure is kept as its message.
    device: OnceLock<std::result::Result<Device, String>>,
    gpus: OnceLock<std::result::Result<Vec<usize>, String>>,
}

impl<'a> Engine<'a> {
    pub fn new(
        p: &'a Pipeline,
        dag: &'a Dag,
        reg: &'a Registry,
        cache: &'a Cache,
        runner: &'a dyn Runner,
    ) -> Self {
        Engine {
            p,
            dag,
            reg,
            cache,
            runner,
            stat: Mutex::new(StatCache::load(cache)),
            device: OnceLock::new(),
            gpus: OnceLock::new(),
        }
    }

    pub fn kind(&self, i: StageId) -> KindRef<'a> {
        self.reg.get(&self.p.decl(i).kind).expect("validated kind")
    }

    pub fn name(&self, i: StageId) -> &'a str {
        &self.p.decl(i).name
    }

    pub fn save_statcache(&self) -> Result<()> {
        Ok(self.stat.lock().expect("statcache").save(self.cache)?)
    }

    /// The stage's key inputs, given the records of its upstream stages (those in `done`).
    pub fn key_inputs(&self, i: StageId, done: &Done) -> Result<KeyInputs> {
        let s = &self.p.decl(i);
        let kind = self.kind(i);
        let mut ki = KeyInputs {
            kind: s.kind.clone(),
            version: kind.version(),
            params: self.keyed_params(i),
            command: s.run.clone(),
            globals: Default::default(),
            upstream: Default::default(),
            inputs: Default::default(),
            item: None,
        };
        if kind.reads_seed() {
            ki.globals.insert("seed".into(), json!(self.p.seed));
        }
        for d in self.dag.deps(i) {
            if let Some(r) = done.get(&d) {
                ki.upstream
                    .insert(self.p.decl(d).name.clone(), r.output_digest.to_string());
            }
        }
        let mut stat = self.stat.lock().expect("statcache");
        let paths = s.inputs.iter().map(|p| (None, p.clone()));
        let own_files = self
            .path_params(i)
            .into_iter()
            .filter(|(_, p)| nasflow_contract::upstream_path(p).is_none());
        for (param, path) in paths.chain(own_files.map(|(n, p)| (Some(n), p))) {
            let resolved = self.p.root.join(&path);
            let digest = stat.digest(&resolved).map_err(|e| match e {
                CacheError::Io { source, .. } => EngineError::Input(Box::new(InputError {
                    at: self.where_given(i, param.as_deref().unwrap_or("inputs")),
                    stage: s.name.clone(),
                    what: param.map_or("input".into(), |n| format!("param `{n}` =")),
                    path: path.clone(),
                    resolved,
                    error: source,
                })),
                other => other.into(),
            })?;
            ki.inputs.insert(path, digest);
        }
        Ok(ki)
    }

    /// The files stage `i` declares as inputs (its `inputs`, and its path params other than
    /// `@STAGE/...`), resolved against the project directory: what its key hashes.
    pub fn declared_inputs(&self, i: StageId) -> Vec<std::path::PathBuf> {
        let s = &self.p.decl(i);
        let own = self
            .path_params(i)
            .into_iter()
            .filter(|(_, p)| nasflow_contract::upstream_path(p).is_none())
            .map(|(_, p)| p);
        s.inputs
            .iter()
            .cloned()
            .chain(own)
            .map(|p| self.p.root.join(p))
            .collect()
    }

    /// `FILE:LINE` of `name = ...` in stage `i`'s table, else of the table's header.
    fn where_given(&self, i: StageId, name: &str) -> String {
        let s = &self.p.decl(i);
        let file = self.p.file.display();
        let text = std::fs::read_to_string(&self.p.file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = s.pos.line.max(1);
        let found = (start..=lines.len())
            .take_while(|&n| n == start || !lines[n - 1].trim_start().starts_with('['))
            .find(|&n| {
                let l = lines[n - 1].trim_start();
                l.strip_prefix(name)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            });
        format!("{file}:{}", found.unwrap_or(s.pos.line))
    }

    /// The params that go into the key: all but those the kind declares outside it.
    fn keyed_params(&self, i: StageId) -> Map<String, Value> {
        let mut params = self.p.decl(i).params.clone();
        if let KindRef::Native(d) = self.kind(i) {
            for p in d.schema().params.iter().filter(|p| !p.keyed) {
                params.remove(&p.name);
            }
        }
        params
    }

    /// The non-empty path params of a stage (keywords excluded), as (param, path as written).
    pub fn path_params(&self, i: StageId) -> Vec<(String, String)> {
        let KindRef::Native(d) = self.kind(i) else {
            return Vec::new();
        };
        let params = &self.p.decl(i).params;
        d.schema()
            .params
            .iter()
            .filter_map(|p| {
                let ParamType::Path { keywords } = &p.ty else {
                    return None;
                };
                let v = params.get(&p.name)?.as_str()?;
                let given = !v.is_empty() && !keywords.iter().any(|k| k == v);
                given.then(|| (p.name.clone(), v.to_string()))
            })
            .collect()
    }

    /// The params a run sees: path params made absolute, `@STAGE/PATH` ones inside that
    /// upstream's outputs (keys use them as written).
    pub fn run_params(&self, i: StageId, inputs: &Inputs) -> Map<String, Value> {
        let mut params = self.p.decl(i).params.clone();
        for (name, path) in self.path_params(i) {
            let abs = match nasflow_contract::upstream_path(&path) {
                Some((stage, rel)) => match inputs.get(stage) {
                    Some(dir) => dir.join(rel),
                    None => continue,
                },
                None => self.p.root.join(&path),
            };
            params.insert(name, json!(abs.to_string_lossy()));
        }
        params
    }

    /// A record that can be reused as is: present, readable, every output blob there.
    pub fn usable_record(&self, i: StageId, key: &Digest) -> Option<Arc<StageRecord>> {
        let r = self.cache.read_record(self.name(i), key).ok().flatten()?;
        self.cache.has_blobs(&r.files).then(|| Arc::new(r))
    }

    pub fn item_usable(&self, i: StageId, key: &Digest) -> bool {
        matches!(
            crate::item::published(self.cache, self.name(i), key),
            Ok(Some(_))
        )
    }

    /// The items of an item-level stage, from its `foreach` upstream's record.
    pub fn items(&self, i: StageId, done: &Done) -> Result<Vec<ItemSpec>> {
        let s = &self.p.decl(i);
        let dep = s.foreach.as_ref().expect("item-level stage");
        let err = |message: String| EngineError::Items {
            stage: s.name.clone(),
            message,
        };
        let up = &done[&self.p.index(dep).expect("validated dep")];
        if !up.items.is_empty() {
            return Ok(up
                .items
                .iter()
                .enumerate()
                .map(|(index, r)| ItemSpec {
                    index,
                    value: r.value.clone(),
                    upstream: Some(r.clone()),
                })
                .collect());
        }
        let list = up.files.iter().find(|f| f.path == ITEMS_LIST).ok_or_else(|| {
            err(format!("foreach = \"{dep}\", but `{dep}` wrote no {ITEMS_LIST} (one JSON value a line) to iterate over"))
        })?;
        let blob = self.cache.blob_path(&list.digest);
        let text = std::fs::read_to_string(&blob).map_err(crate::cache::io(&blob))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .enumerate()
            .map(|(index, (n, line))| {
                let value = serde_json::from_str(line).map_err(|e| {
                    err(format!(
                        "line {} of `{dep}`'s {ITEMS_LIST} is not JSON: {e}",
                        n + 1
                    ))
                })?;
                Ok(ItemSpec {
                    index,
                    value,
                    upstream: None,
                })
            })
            .collect()
    }

    /// The key inputs of one item: the stage's, with the `foreach` upstream's whole digest
    /// replaced by the item (see the key module).
    pub fn item_inputs(&self, i: StageId, base: &KeyInputs, item: &ItemSpec) -> KeyInputs {
        let mut ki = base.clone();
        ki.upstream
            .remove(self.p.decl(i).foreach.as_ref().expect("item-level"));
        ki.item = Some(match &item.upstream {
            Some(up) => json!({"value": item.value, "upstream": up.output_digest}),
            None => json!({"value": item.value}),
        });
        ki
    }

    /// A key of the stages' definitions: per stage of `closure` (in order) its name, its
    /// dependencies' names and its key inputs without upstream outputs (kind, version, params,
    /// command, globals, input file contents). It is known before anything runs, so a CI cache
    /// service can restore a cache by it; it changes whenever any stage key could.
    pub fn definition_key(&self, closure: &[StageId]) -> Result<String> {
        let empty = HashMap::new();
        let mut h = blake3::Hasher::new();
        for &i in closure {
            let ki = self.key_inputs(i, &empty)?;
            h.update(self.name(i).as_bytes());
            for d in self.dag.deps(i) {
                h.update(b"\0");
                h.update(self.name(d).as_bytes());
            }
            h.update(b"\0");
            h.update(ki.key().as_bytes());
            h.update(b"\n");
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// The view of a finished stage's outputs.
    pub fn view_of(&self, i: StageId, record: &StageRecord) -> ViewRef {
        ViewRef {
            stage: self.name(i).to_string(),
            digest: record.output_digest.clone(),
            item: false,
            files: record.files.clone(),
        }
    }

    /// The directory holding a finished stage's outputs (materialized now).
    pub fn output_dir(&self, i: StageId, record: &StageRecord) -> Result<PathBuf> {
        Ok(self.cache.materialize(&self.view_of(i, record))?)
    }

    /// The input views of stage `i` (of one item, with `item`): their directories by dependency
    /// name, and what each must hold (the job materializes and holds them when it starts). The
    /// `foreach` dependency of an item over an item-level upstream is that upstream item's view.
    pub fn inputs(
        &self,
        i: StageId,
        done: &Done,
        item: Option<&ItemSpec>,
    ) -> Result<(Inputs, Vec<ViewRef>)> {
        let s = &self.p.decl(i);
        let mut inputs = Inputs::default();
        let mut views = Vec::new();
        for d in self.dag.deps(i) {
            let dep = self.name(d);
            let view = match (item, &s.foreach) {
                (Some(spec), Some(f)) if f == dep => match &spec.upstream {
                    Some(up) => self.item_view(d, &done[&d], spec.index, up),
                    None => continue,
                },
                _ => self.view_of(d, &done[&d]),
            };
            let dir = self.cache.view_dir(&view.stage, &view.digest, view.item);
            inputs.0.insert(dep.to_string(), dir);
            views.push(view);
        }
        Ok((inputs, views))
    }

    /// The view of item `index` of an item-level upstream: from its item record, or, if that is
    /// gone, from the stage record, which lists every item's files under `items/NNNNN/`.
    fn item_view(
        &self,
        d: StageId,
        up_record: &StageRecord,
        index: usize,
        up: &ItemRef,
    ) -> ViewRef {
        let dep = self.name(d);
        let files = match self.cache.read_item(dep, &up.key) {
            Ok(Some(rec)) => rec.files,
            _ => {
                let prefix = format!("{}/", item_dir(index));
                up_record
                    .files
                    .iter()
                    .filter_map(|f| {
                        let rest = f.path.strip_prefix(&prefix)?;
                        Some(FileEntry {
                            path: RelPath::new(rest).ok()?,
                            ..f.clone()
                        })
                    })
                    .collect()
            }
        };
        ViewRef {
            stage: dep.to_string(),
            digest: up.output_digest.clone(),
            item: true,
            files,
        }
    }

    /// The job of stage `i` (of one item, with `item`).
    pub fn job(
        &self,
        i: StageId,
        inputs: Inputs,
        item: Option<&ItemSpec>,
        device: DeviceSpec,
        threads: usize,
    ) -> Job {
        let s = &self.p.decl(i);
        Job {
            kind: s.kind.clone(),
            stage: s.name.clone(),
            command: s.run.clone(),
            project: self.p.root.clone(),
            params: self.run_params(i, &inputs),
            inputs,
            item: item.map(|it| ItemInput {
                index: it.index,
                value: it.value.clone(),
            }),
            out: PathBuf::new(),
            provenance: PathBuf::new(),
            resume: PathBuf::new(),
            seed: self.p.seed,
            device,
            gpu: None,
            threads,
        }
    }

    /// The GPUs device jobs are placed on: the `gpus` list, or with `gpus = "auto"` on CUDA
    /// every device the worker sees (only the asked one for `device = "cuda:N"`, N > 0); none
    /// on the CPU.
    pub fn gpus(&self) -> Result<Vec<usize>> {
        let auto = match &self.p.gpus {
            crate::config::Gpus::List(list) => return Ok(list.clone()),
            crate::config::Gpus::Auto => &self.gpus,
        };
        auto.get_or_init(|| match self.device() {
            Ok(Device::Cpu) => Ok(vec![]),
            Ok(Device::Cuda(n)) if n > 0 => Ok(vec![n]),
            Ok(Device::Cuda(_)) => self
                .runner
                .probe()
                .map(|p| (0..p.cuda_devices.max(1)).collect())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        })
        .clone()
        .map_err(EngineError::Device)
    }

    /// The pipeline's device resolved on this host; the runner is asked only when CUDA may be
    /// involved, and once (a failure is kept as its message).
    pub fn device(&self) -> Result<Device> {
        self.device
            .get_or_init(|| {
                crate::runner::resolve_device(self.runner, self.p.device).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(EngineError::Device)
    }
}
