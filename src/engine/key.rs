//! Stage keys: when a stage's cached outputs may be reused.
//!
//! A stage key is a blake3 digest over a [`KeyInputs`] value serialized as canonical JSON
//! (object keys sorted, numbers in shortest round-trip form, no whitespace), prefixed by a format
//! tag. Two runs with equal keys must produce the same outputs, up to nondeterminism the stage
//! itself has; a record stored under a key is therefore reused whenever the key comes round again.
//!
//! | value                                       | in the key? | why |
//! |---------------------------------------------|-------------|-----|
//! | kind name and the kind's `version`          | yes | a new implementation must not reuse old outputs; bump `version` when outputs change |
//! | the stage's params, defaults filled in      | yes | values matter; key order, formatting, comments and the spelling of equal numbers (`1e-3`, `0.001`) do not, because params are parsed, typed by the kind's schema and serialized canonically |
//! | a cmd stage's `run` command                 | yes | it is the implementation |
//! | globals the kind reads (`seed`)             | yes | the only globals that change outputs; a kind that does not read the seed is not rerun when it changes |
//! | each upstream stage's *output digest*       | yes | not the upstream key: a rerun upstream that produces byte-identical outputs leaves this key unchanged, so dependents are not rerun (early cutoff) |
//! | each declared input's content digest        | yes | content, not mtime: touching a file reruns nothing; its path (relative to the project) also names it |
//! | each `Path` param's content digest          | yes | as for declared inputs; the param's text is in the params too |
//! | for one item: the item's value, and for an item-level upstream that item's output digest | yes, instead of the whole upstream digest | so that growing a list from 600 to 700 items computes only the 100 new ones |
//! | other stages' params, stage names, `deps` order | no  | unrelated edits must not rerun anything |
//! | the device (`cpu`, `cuda:0`), `jobs`, `gpu_slots`, the executor (local, Slurm) | no  | results computed on a GPU cluster are reused on a CPU laptop or in CI; the device and host are kept in the record's provenance instead |
//! | absolute paths, the cache location, mtimes, host | no  | keys must survive moving, archiving and restoring the cache |
//! | nasflow's and libtorch's versions           | no  | provenance only; kinds bump `version` when their outputs change |
//! | a param the kind declares outside the key (`x-nasflow-unkeyed`: a download URL whose content a digest param pins) | no | a mirror or a local copy of the same content must give the same key; the run still receives it |
//! | the provenance directory (timings, logs)    | no  | it varies from run to run; it is kept with the record but is not part of the output digest either |
//!
//! Imperfections: a cmd stage that reads files it did not declare in `inputs` is not rerun when
//! they change; a kind whose outputs depend on the device or thread count is reused across them.
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::valid::Digest;
use serde_json::{Map, Value};

/// Prefix of every key computation; bumped if the serialization of [`KeyInputs`] ever changes.
const KEY_FORMAT: &str = "nasflow-stage-key/1\n";

/// Everything a stage key is computed from; stored in each record so that `nasflow why` can
/// say which part changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub kind: String,
    pub version: u32,
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub globals: BTreeMap<String, Value>,
    /// Upstream stage name → its output digest.
    pub upstream: BTreeMap<String, String>,
    /// Declared input path → content digest.
    pub inputs: BTreeMap<String, String>,
    /// For one item of an item-level stage: the item (see the table above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
}

impl KeyInputs {
    pub fn key(&self) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(KEY_FORMAT.as_bytes());
        h.update(&serde_json::to_vec(self).expect("key inputs serialize"));
        Digest::of(h.finalize())
    }
}

/// Why a stage must run: one readable line each (`nasflow plan`, `nasflow why`, `run`'s log).
#[derive(Debug, Clone, PartialEq)]
pub enum DirtyReason {
    NeverRun,
    /// A record for these inputs exists, but its output files are gone from the cache.
    OutputsMissing,
    Forced,
    KindChanged {
        old: String,
        new: String,
    },
    VersionChanged {
        old: u32,
        new: u32,
    },
    ParamChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    CommandChanged {
        old: Option<String>,
        new: Option<String>,
    },
    GlobalChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    UpstreamChanged {
        dep: String,
    },
    UpstreamAdded {
        dep: String,
    },
    UpstreamRemoved {
        dep: String,
    },
    /// The upstream stage reruns first; this stage reruns only if its outputs change.
    UpstreamPending {
        dep: String,
    },
    InputChanged {
        path: String,
    },
    InputAdded {
        path: String,
    },
    InputRemoved {
        path: String,
    },
    ItemsMissing {
        missing: usize,
        total: usize,
    },
}

fn show(v: &Option<Value>) -> String {
    v.as_ref()
        .map_or_else(|| "(unset)".to_string(), |v| v.to_string())
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DirtyReason::*;
        match self {
            NeverRun => write!(f, "no cached result for these inputs"),
            OutputsMissing => write!(
                f,
                "the cached result's files are missing from the cache (recomputing them)"
            ),
            Forced => write!(f, "forced (--force)"),
            KindChanged { old, new } => write!(f, "kind changed: {old} -> {new}"),
            VersionChanged { old, new } => {
                write!(f, "implementation version changed: {old} -> {new}")
            }
            ParamChanged { name, old, new } => {
                write!(f, "param `{name}` changed: {} -> {}", show(old), show(new))
            }
            CommandChanged { .. } => write!(f, "the `run` command changed"),
            GlobalChanged { name, old, new } => write!(
                f,
                "pipeline `{name}` changed: {} -> {}",
                show(old),
                show(new)
            ),
            UpstreamChanged { dep } => write!(f, "upstream `{dep}` output changed"),
            UpstreamAdded { dep } => write!(f, "dep `{dep}` added"),
            UpstreamRemoved { dep } => write!(f, "dep `{dep}` removed"),
            UpstreamPending { dep } => write!(
                f,
                "upstream `{dep}` reruns first (skipped if its outputs do not change)"
            ),
            InputChanged { path } => write!(f, "input `{path}` changed"),
            InputAdded { path } => write!(f, "input `{path}` added"),
            InputRemoved { path } => write!(f, "input `{path}` removed"),
            ItemsMissing { missing, total } => write!(f, "{missing} of {total} items to compute"),
        }
    }
}

/// What differs between an earlier record's key inputs and the current ones.
pub fn diff(old: &KeyInputs, new: &KeyInputs) -> Vec<DirtyReason> {
    use DirtyReason::*;
    let mut out = Vec::new();
    if old.kind != new.kind {
        out.push(KindChanged {
            old: old.kind.clone(),
            new: new.kind.clone(),
        });
    } else if old.version != new.version {
        out.push(VersionChanged {
            old: old.version,
            new: new.version,
        });
    }
    if old.command != new.command {
        out.push(CommandChanged {
            old: old.command.clone(),
            new: new.command.clone(),
        });
    }
    for name in union(old.params.keys(), new.params.keys()) {
        let (o, n) = (old.params.get(name), new.params.get(name));
        if o != n {
            out.push(ParamChanged {
                name: name.clone(),
                old: o.cloned(),
                new: n.cloned(),
            });
        }
    }
    for name in union(old.globals.keys(), new.globals.keys()) {
        let (o, n) = (old.globals.get(name), new.globals.get(name));
        if o != n {
            out.push(GlobalChanged {
                name: name.clone(),
                old: o.cloned(),
                new: n.cloned(),
            });
        }
    }
    for dep in union(old.upstream.keys(), new.upstream.keys()) {
        match (old.upstream.get(dep), new.upstream.get(dep)) {
            (None, Some(_)) => out.push(UpstreamAdded { dep: dep.clone() }),
            (Some(_), None) => out.push(UpstreamRemoved { dep: dep.clone() }),
            (Some(a), Some(b)) if a != b => out.push(UpstreamChanged { dep: dep.clone() }),
            _ => {}
        }
    }
    for path in union(old.inputs.keys(), new.inputs.keys()) {
        match (old.inputs.get(path), new.inputs.get(path)) {
            (None, Some(_)) => out.push(InputAdded { path: path.clone() }),
            (Some(_), None) => out.push(InputRemoved { path: path.clone() }),
            (Some(a), Some(b)) if a != b => out.push(InputChanged { path: path.clone() }),
            _ => {}
        }
    }
    out
}

fn union<'a>(
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
) -> std::collections::BTreeSet<&'a String> {
    a.chain(b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> KeyInputs {
        KeyInputs {
            kind: "test-write".into(),
            version: 1,
            params: json!({"text": "a", "repeat": 2, "scale": 0.001})
                .as_object()
                .unwrap()
                .clone(),
            command: None,
            globals: BTreeMap::new(),
            upstream: [("a".to_string(), "d1".to_string())].into(),
            inputs: BTreeMap::new(),
            item: None,
        }
    }

    #[test]
    fn key_ignores_param_order_but_not_values() {
        let a = inputs();
        let mut b = inputs();
        b.params = json!({"scale": 1e-3, "repeat": 2, "text": "a"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(a.key(), b.key());
        b.params.insert("repeat".into(), json!(3));
        assert_ne!(a.key(), b.key());
        assert_eq!(
            diff(&a, &b),
            vec![DirtyReason::ParamChanged {
                name: "repeat".into(),
                old: Some(json!(2)),
                new: Some(json!(3))
            }]
        );
    }

    #[test]
    fn key_changes_with_upstream_digest_and_diff_names_it() {
        let a = inputs();
        let mut b = inputs();
        b.upstream.insert("a".into(), "d2".into());
        b.inputs.insert("data.csv".into(), "x".into());
        assert_ne!(a.key(), b.key());
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![
                DirtyReason::UpstreamChanged { dep: "a".into() },
                DirtyReason::InputAdded {
                    path: "data.csv".into()
                }
            ]
        );
        assert_eq!(d[0].to_string(), "upstream `a` output changed");
    }

    #[test]
    fn key_is_stable_across_releases() {
        // Changing this digest invalidates every user's cache: bump KEY_FORMAT deliberately.
        assert_eq!(
            inputs().key(),
            "77c2d3e876143c05b023f8917ca3fb0ae507f7ec564cbc4f0b78931f359acd03"
        );
        assert_eq!(inputs().key(), inputs().key());
    }
}
