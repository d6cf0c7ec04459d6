//! Deciding what runs: stage keys from upstream outputs, and for each stage of a target's
//! closure whether its cached result is reused or it runs, and why.
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

use crate::cache::record::ItemRef;
use crate::cache::statcache::StatCache;
use crate::cache::{Cache, CacheError, StageRecord};
use crate::config::Pipeline;
use crate::dag::Dag;
use crate::key::{diff, DirtyReason, KeyInputs};
use crate::registry::{KindRef, Registry};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("stage `{stage}`: input `{path}` cannot be read: {error}\n  help: create it, or fix the path (in `inputs` or a path param of [stages.{stage}])")]
    Input {
        stage: String,
        path: String,
        error: std::io::Error,
    },
    #[error("stage `{stage}`: {message}")]
    Items { stage: String, message: String },
    #[error("{0}")]
    Device(String),
}

impl EngineError {
    /// Errors the user fixes in pipeline.toml or on the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, EngineError::Input { .. } | EngineError::Device(_))
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

/// Whether a stage is reused or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cached,
    Run,
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub stage: usize,
    pub action: Action,
    pub reasons: Vec<DirtyReason>,
    /// The key, when every upstream output is known.
    pub key: Option<String>,
    pub record: Option<Arc<StageRecord>>,
}

/// A pipeline bound to its cache.
pub struct Engine<'a> {
    pub p: &'a Pipeline,
    pub dag: &'a Dag,
    pub reg: &'a Registry,
    pub cache: &'a Cache,
    stat: Mutex<StatCache>,
    device: OnceLock<std::result::Result<String, String>>,
}

impl<'a> Engine<'a> {
    pub fn new(p: &'a Pipeline, dag: &'a Dag, reg: &'a Registry, cache: &'a Cache) -> Self {
        Engine {
            p,
            dag,
            reg,
            cache,
            stat: Mutex::new(StatCache::load(cache)),
            device: OnceLock::new(),
        }
    }

    pub fn kind(&self, i: usize) -> KindRef {
        self.reg
            .get(&self.p.stages[i].kind)
            .expect("validated kind")
    }

    pub fn save_statcache(&self) -> Result<()> {
        Ok(self.stat.lock().expect("statcache").save(self.cache)?)
    }

    /// The stage's key inputs, given the records of all its upstream stages.
    pub fn key_inputs(
        &self,
        i: usize,
        done: &HashMap<usize, Arc<StageRecord>>,
    ) -> Result<KeyInputs> {
        let s = &self.p.stages[i];
        let kind = self.kind(i);
        let mut ki = KeyInputs {
            kind: s.kind.clone(),
            version: kind.version(),
            params: s.params.clone(),
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
                    .insert(self.p.stages[d].name.clone(), r.output_digest.clone());
            }
        }
        let mut stat = self.stat.lock().expect("statcache");
        for path in s
            .inputs
            .iter()
            .chain(self.path_params(i).iter().map(|(_, p)| p))
        {
            let digest = stat.digest(&self.p.root.join(path)).map_err(|e| match e {
                CacheError::Io { source, .. } => EngineError::Input {
                    stage: s.name.clone(),
                    path: path.clone(),
                    error: source,
                },
                other => other.into(),
            })?;
            ki.inputs.insert(path.clone(), digest);
        }
        Ok(ki)
    }

    /// The non-empty `Path` params of a stage, as (param, path as written).
    pub fn path_params(&self, i: usize) -> Vec<(&'static str, String)> {
        let KindRef::Spec(spec) = self.kind(i) else {
            return Vec::new();
        };
        let params = &self.p.stages[i].params;
        spec.params
            .iter()
            .filter_map(|p| {
                let keywords: &[&str] = match p.ty {
                    nasflow_stages::ParamType::Path => &[],
                    nasflow_stages::ParamType::PathOr(k) => k,
                    _ => return None,
                };
                let v = params.get(p.name)?.as_str()?;
                (!v.is_empty() && !keywords.contains(&v)).then(|| (p.name, v.to_string()))
            })
            .collect()
    }

    /// The params a run sees: `Path` params made absolute (keys use them as written).
    pub fn run_params(&self, i: usize) -> serde_json::Map<String, serde_json::Value> {
        let mut params = self.p.stages[i].params.clone();
        for (name, path) in self.path_params(i) {
            let abs = self.p.root.join(&path);
            params.insert(name.to_string(), json!(abs.to_string_lossy()));
        }
        params
    }

    /// A record that can be reused as is: present, readable, every blob there.
    pub fn usable_record(&self, i: usize, key: &str) -> Option<Arc<StageRecord>> {
        let r = self
            .cache
            .read_record(&self.p.stages[i].name, key)
            .ok()
            .flatten()?;
        self.cache.has_blobs(&r.files).then(|| Arc::new(r))
    }

    /// The items of an item-level stage, from its `foreach` upstream's record.
    pub fn items(
        &self,
        i: usize,
        done: &HashMap<usize, Arc<StageRecord>>,
    ) -> Result<Vec<ItemSpec>> {
        let s = &self.p.stages[i];
        let dep = s.foreach.as_ref().expect("item-level stage");
        let err = |message: String| EngineError::Items {
            stage: s.name.clone(),
            message,
        };
        let up = done
            .get(&self.p.index(dep).expect("validated dep"))
            .expect("upstream done");
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
        let list = up.files.iter().find(|f| f.path == "items.jsonl").ok_or_else(|| {
            err(format!("foreach = \"{dep}\", but `{dep}` wrote no items.jsonl (one JSON value a line) to iterate over"))
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
                        "line {} of `{dep}`'s items.jsonl is not JSON: {e}",
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
    pub fn item_inputs(&self, i: usize, base: &KeyInputs, item: &ItemSpec) -> KeyInputs {
        let mut ki = base.clone();
        ki.upstream
            .remove(self.p.stages[i].foreach.as_ref().expect("item-level"));
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
    pub fn definition_key(&self, closure: &[usize]) -> Result<String> {
        let empty = HashMap::new();
        let mut h = blake3::Hasher::new();
        for &i in closure {
            let ki = self.key_inputs(i, &empty)?;
            h.update(self.p.stages[i].name.as_bytes());
            for d in self.dag.deps(i) {
                h.update(b"\0");
                h.update(self.p.stages[d].name.as_bytes());
            }
            h.update(b"\0");
            h.update(ki.key().as_bytes());
            h.update(b"\n");
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Why a stage whose key has no usable record must run.
    pub fn dirty_reasons(&self, i: usize, ki: &KeyInputs) -> Vec<DirtyReason> {
        let last = self.cache.last_record(&self.p.stages[i].name);
        match last {
            None => vec![DirtyReason::NeverRun],
            Some(last) => {
                let d = diff(&last.key_inputs, ki);
                if d.is_empty() {
                    vec![DirtyReason::NeverRun]
                } else {
                    d
                }
            }
        }
    }

    /// Plans the given stages (a closure, in execution order).
    pub fn plan(&self, closure: &[usize], force: &HashSet<usize>) -> Result<Vec<Planned>> {
        let mut done: HashMap<usize, Arc<StageRecord>> = HashMap::new();
        let mut out = Vec::with_capacity(closure.len());
        for &i in closure {
            let pending: Vec<usize> = self
                .dag
                .deps(i)
                .into_iter()
                .filter(|d| !done.contains_key(d))
                .collect();
            if !pending.is_empty() {
                out.push(Planned {
                    stage: i,
                    action: Action::Run,
                    reasons: self.pending_reasons(i, &pending, &done)?,
                    key: None,
                    record: None,
                });
                continue;
            }
            let ki = self.key_inputs(i, &done)?;
            let key = ki.key();
            let record = if force.contains(&i) {
                None
            } else {
                self.usable_record(i, &key)
            };
            match record {
                Some(r) => {
                    done.insert(i, r.clone());
                    out.push(Planned {
                        stage: i,
                        action: Action::Cached,
                        reasons: vec![],
                        key: Some(key),
                        record: Some(r),
                    });
                }
                None => {
                    let mut reasons = if force.contains(&i) {
                        vec![DirtyReason::Forced]
                    } else {
                        self.dirty_reasons(i, &ki)
                    };
                    if self.p.stages[i].foreach.is_some() {
                        let items = self.items(i, &done)?;
                        let missing = items
                            .iter()
                            .filter(|it| {
                                let k = self.item_inputs(i, &ki, it).key();
                                force.contains(&i) || !self.item_usable(i, &k)
                            })
                            .count();
                        reasons.push(DirtyReason::ItemsMissing {
                            missing,
                            total: items.len(),
                        });
                    }
                    out.push(Planned {
                        stage: i,
                        action: Action::Run,
                        reasons,
                        key: Some(key),
                        record: None,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reasons for a stage whose upstream reruns first: its own changes (upstream digests taken
    /// from its last record), then the pending upstreams.
    fn pending_reasons(
        &self,
        i: usize,
        pending: &[usize],
        done: &HashMap<usize, Arc<StageRecord>>,
    ) -> Result<Vec<DirtyReason>> {
        let mut reasons = Vec::new();
        if let Some(last) = self.cache.last_record(&self.p.stages[i].name) {
            let mut ki = self.key_inputs(i, done)?;
            for &d in pending {
                let name = &self.p.stages[d].name;
                if let Some(digest) = last.key_inputs.upstream.get(name) {
                    ki.upstream.insert(name.clone(), digest.clone());
                }
            }
            reasons.extend(diff(&last.key_inputs, &ki));
        } else {
            reasons.push(DirtyReason::NeverRun);
        }
        reasons.extend(pending.iter().map(|&d| DirtyReason::UpstreamPending {
            dep: self.p.stages[d].name.clone(),
        }));
        Ok(reasons)
    }

    pub fn item_usable(&self, i: usize, key: &str) -> bool {
        matches!(
            crate::item::published(self.cache, &self.p.stages[i].name, key),
            Ok(Some(_))
        )
    }

    /// The directory holding a finished stage's outputs (materialized on demand).
    pub fn output_dir(&self, i: usize, record: &StageRecord) -> Result<PathBuf> {
        let dir = self
            .cache
            .out_dir(&self.p.stages[i].name, &record.key, false);
        self.cache.materialize(&record.files, &dir)?;
        Ok(dir)
    }

    /// The resolved device: "cpu" or "cuda:N". Asks the worker only when CUDA may be involved.
    pub fn device(&self) -> Result<String> {
        self.device
            .get_or_init(|| crate::exec::resolve_device(&self.p.device))
            .clone()
            .map_err(EngineError::Device)
    }
}
