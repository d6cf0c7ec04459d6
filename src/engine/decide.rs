//! The one decision: for a stage whose upstream records are known, reuse a cached result or run,
//! and why. `run`, `plan`, `why` and `status` all ask [`Engine::decide`].
//!
//! The reasons compare the current key inputs with the stage's record that is closest to them
//! (the fewest differing key parts; the newest among equals), not with its newest record: after
//! an ablation the newest record may be a variant's, and "param changed: 40 -> 20" for a value
//! the pipeline never had would mislead.
use std::collections::HashSet;
use std::sync::Arc;

use crate::cache::record::ItemRef;
use crate::cache::{Digest, StageRecord};
use crate::config::StageId;
use crate::engine::{Done, Engine, ItemSpec, Result};
use crate::key::{diff, DirtyReason, KeyInputs};

/// What happens to a stage.
#[derive(Debug, Clone)]
pub enum Decision {
    /// A usable record under the current key.
    Cached(Arc<StageRecord>),
    /// It runs.
    Run(Box<RunPlan>),
    /// An upstream stage runs first; this one reruns unless its outputs come out the same.
    Pending {
        reasons: Vec<DirtyReason>,
        compared: Option<Compared>,
    },
}

/// A stage that runs: its key, why, and (item-level) what each item needs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub key: Digest,
    pub inputs: KeyInputs,
    pub reasons: Vec<DirtyReason>,
    pub compared: Option<Compared>,
    pub forced: bool,
    /// For an item-level stage: every item, published or to compute.
    pub items: Option<Vec<ItemPlan>>,
}

/// One item of a stage that runs.
#[derive(Debug, Clone)]
pub struct ItemPlan {
    pub spec: ItemSpec,
    pub key: Digest,
    pub inputs: KeyInputs,
    /// Found in the cache (never for a forced stage).
    pub published: Option<ItemRef>,
}

/// The record the reasons were computed against.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub key: Digest,
    /// When it was computed.
    pub ended: String,
}

/// Decides stage `i` given the records of the finished stages; `forced` reruns it anyway.
pub fn decide(e: &Engine, i: StageId, done: &Done, forced: bool) -> Result<Decision> {
    Decider { e }.decide(i, done, forced)
}

/// Decides every stage of `closure` in order, as `run` would (without running anything).
pub fn plan(e: &Engine, closure: &[StageId], force: &HashSet<StageId>) -> Result<Vec<Planned>> {
    Decider { e }.plan(closure, force)
}

struct Decider<'e, 'a> {
    e: &'e Engine<'a>,
}

impl Decider<'_, '_> {
    fn decide(&self, i: StageId, done: &Done, forced: bool) -> Result<Decision> {
        let pending: Vec<String> = self
            .e
            .dag
            .deps(i)
            .into_iter()
            .filter(|d| !done.contains_key(d))
            .map(|d| self.e.name(d).to_string())
            .collect();
        let ki = self.e.key_inputs(i, done)?;
        if !pending.is_empty() {
            let (mut reasons, compared) = self.reasons(i, &ki, &pending);
            reasons.retain(|r| *r != DirtyReason::NeverRun || compared.is_none());
            reasons.extend(
                pending
                    .into_iter()
                    .map(|dep| DirtyReason::UpstreamPending { dep }),
            );
            return Ok(Decision::Pending { reasons, compared });
        }
        let key = ki.key();
        if !forced {
            if let Some(r) = self.e.usable_record(i, &key) {
                return Ok(Decision::Cached(r));
            }
        }
        let (mut reasons, compared) = if forced {
            (vec![DirtyReason::Forced], None)
        } else {
            self.reasons(i, &ki, &[])
        };
        let items = match self.e.p.decl(i).foreach {
            Some(_) => Some(self.item_plans(i, done, &ki, forced)?),
            None => None,
        };
        if let Some(items) = &items {
            let missing = items.iter().filter(|it| it.published.is_none()).count();
            reasons.push(DirtyReason::ItemsMissing {
                missing,
                total: items.len(),
            });
        }
        Ok(Decision::Run(Box::new(RunPlan {
            key,
            inputs: ki,
            reasons,
            compared,
            forced,
            items,
        })))
    }

    fn item_plans(
        &self,
        i: StageId,
        done: &Done,
        ki: &KeyInputs,
        forced: bool,
    ) -> Result<Vec<ItemPlan>> {
        let mut plans = Vec::new();
        for spec in self.e.items(i, done)? {
            let inputs = self.e.item_inputs(i, ki, &spec);
            let key = inputs.key();
            let published = match forced {
                true => None,
                false => crate::item::published(self.e.cache, self.e.name(i), &key)?,
            };
            plans.push(ItemPlan {
                spec,
                key,
                inputs,
                published,
            });
        }
        Ok(plans)
    }

    /// Why a stage whose key has no usable record runs, against its closest record. Upstreams in
    /// `pending` have no digest yet: each record is compared as if they had not changed.
    fn reasons(
        &self,
        i: StageId,
        ki: &KeyInputs,
        pending: &[String],
    ) -> (Vec<DirtyReason>, Option<Compared>) {
        let records = self.e.cache.records_newest_first(self.e.name(i));
        let pending: HashSet<&String> = pending.iter().collect();
        let closest = records
            .iter()
            .map(|r| {
                let mut current = ki.clone();
                for (dep, digest) in &r.key_inputs.upstream {
                    if pending.contains(dep) {
                        current.upstream.insert(dep.clone(), digest.clone());
                    }
                }
                (diff(&r.key_inputs, &current), r)
            })
            .min_by_key(|(d, _)| d.len());
        match closest {
            None => (vec![DirtyReason::NeverRun], None),
            Some((d, r)) => {
                let compared = Some(Compared {
                    key: r.key.clone(),
                    ended: r.provenance.ended.clone(),
                });
                if d.is_empty() && pending.is_empty() {
                    (vec![DirtyReason::OutputsMissing], compared)
                } else {
                    (d, compared)
                }
            }
        }
    }
}

/// Whether a stage is reused or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cached,
    Run,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Cached => "cached",
            Action::Run => "run",
        }
    }
}

/// One stage of a plan, as the commands show it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub stage: StageId,
    pub action: Action,
    pub reasons: Vec<DirtyReason>,
    /// The key, when every upstream output is known.
    pub key: Option<Digest>,
    pub record: Option<Arc<StageRecord>>,
    /// The record the reasons compare against.
    pub compared: Option<Compared>,
}

impl Decider<'_, '_> {
    fn plan(&self, closure: &[StageId], force: &HashSet<StageId>) -> Result<Vec<Planned>> {
        let mut done = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(closure.len());
        for &i in closure {
            let planned = match self.decide(i, &done, force.contains(&i))? {
                Decision::Cached(r) => {
                    done.insert(i, r.clone());
                    Planned {
                        stage: i,
                        action: Action::Cached,
                        reasons: vec![],
                        key: Some(r.key.clone()),
                        record: Some(r),
                        compared: None,
                    }
                }
                Decision::Run(p) => Planned {
                    stage: i,
                    action: Action::Run,
                    reasons: p.reasons,
                    key: Some(p.key),
                    record: None,
                    compared: p.compared,
                },
                Decision::Pending { reasons, compared } => Planned {
                    stage: i,
                    action: Action::Run,
                    reasons,
                    key: None,
                    record: None,
                    compared,
                },
            };
            out.push(planned);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::StageId;
    use crate::key::DirtyReason;
    use crate::testkit::Fixture;
    use serde_json::json;

    #[test]
    fn reasons_compare_with_the_closest_record_not_the_newest() {
        let f = Fixture::new("[stages.s]\nkind = \"test-write\"\nrepeat = 20\n");
        f.run(&[], &[]);
        let base = f.with_engine(&[], |e| {
            super::plan(e, &[StageId::at(0)], &Default::default()).unwrap()[0]
                .key
                .clone()
        });
        // An ablation: the newest record is the variant's.
        f.run(&["s.repeat=40"], &[]);
        // Then an edit of the base pipeline.
        f.write("[stages.s]\nkind = \"test-write\"\nrepeat = 20\nscale = 2\n");
        let planned = f.with_engine(&[], |e| {
            super::plan(e, &[StageId::at(0)], &Default::default()).unwrap()
        });
        assert_eq!(
            planned[0].reasons,
            vec![DirtyReason::ParamChanged {
                name: "scale".into(),
                old: Some(json!(1.0)),
                new: Some(json!(2.0)),
            }],
            "not `repeat changed: 40 -> 20`"
        );
        assert_eq!(
            Some(planned[0].compared.as_ref().unwrap().key.clone()),
            base
        );
    }

    #[test]
    fn a_stage_never_run_says_so_and_a_pending_one_names_its_upstream() {
        let f = Fixture::new("[stages.a]\nkind = \"test-write\"\n[stages.b]\nkind = \"test-write\"\ndeps = [\"a\"]\n");
        let p = f.with_engine(&[], |e| {
            super::plan(e, &[StageId::at(0), StageId::at(1)], &Default::default()).unwrap()
        });
        assert_eq!(p[0].reasons, vec![DirtyReason::NeverRun]);
        assert_eq!(
            p[1].reasons,
            vec![
                DirtyReason::NeverRun,
                DirtyReason::UpstreamPending { dep: "a".into() }
            ]
        );
        f.run(&[], &[]);
        let p = f.with_engine(&["a.text=z"], |e| {
            super::plan(e, &[StageId::at(0), StageId::at(1)], &Default::default()).unwrap()
        });
        assert_eq!(
            p[1].reasons,
            vec![DirtyReason::UpstreamPending { dep: "a".into() }]
        );
    }
}
