//! A `[stages.NAME]` table: the kind, the reserved keys, and the params (checked through the
//! kind's declaration for native kinds; free-form for `cmd`).
use std::collections::BTreeMap;

use nasflow_contract::{did_you_mean, Declaration, ParamError};
use serde_json::{Map, Value};
use toml_edit::{Item, Table};

use super::{to_json, ConfigError, Cx, Override, Pos, StageDecl, RESERVED};
use crate::registry::{KindRef, Registry};

/// Where a param's value was written: a key of the stage table, or an override.
#[derive(Clone, Copy)]
enum Place<'o> {
    /// A key of the table: where the key is, and where its value is.
    Key(Pos, Pos),
    Override(&'o Override),
}

/// Raw params by name, with where each was written.
type Raw<'o> = BTreeMap<String, (Value, Place<'o>)>;

impl Cx<'_> {
    pub(super) fn stage(
        &self,
        name: &str,
        table: &Table,
        pos: Pos,
        registry: &Registry,
        overrides: &[&Override],
    ) -> Result<StageDecl, ConfigError> {
        let (kind_name, kind) = self.kind_of(name, table, pos, registry)?;
        let mut decl = StageDecl {
            name: name.to_string(),
            kind: kind_name.to_string(),
            deps: Vec::new(),
            foreach: None,
            run: None,
            gpu: false,
            inputs: Vec::new(),
            params: Map::new(),
            pos,
            dep_pos: Vec::new(),
        };
        let mut raw = Raw::new();
        for (key, item) in table.iter() {
            if RESERVED.contains(&key) {
                self.reserved(&mut decl, table, key, item, kind)?;
            } else {
                let value = to_json(item).map_err(|m| {
                    let at = self.item_pos(table, key);
                    self.err(at, format!("`{key}` in [stages.{name}]: {m}"), None)
                })?;
                let place = Place::Key(self.key_pos(table, key), self.item_pos(table, key));
                raw.insert(key.to_string(), (value, place));
            }
        }
        for o in overrides {
            if RESERVED.contains(&o.param.as_str()) {
                let message = format!("`{}` is not a param and cannot be set", o.param);
                return Err(self.at_override(o, message, None));
            }
            let value =
                to_json(&Item::Value(o.value.clone())).map_err(|m| self.at_override(o, m, None))?;
            raw.insert(o.param.clone(), (value, Place::Override(o)));
        }
        if let Some(f) = &decl.foreach {
            if !decl.deps.contains(f) {
                decl.deps.push(f.clone());
                decl.dep_pos.push(self.item_pos(table, "foreach"));
            }
        }
        decl.params = match kind {
            KindRef::Cmd => self.cmd_params(&decl, raw)?,
            KindRef::Native(d) => {
                if d.info().item_level && decl.foreach.is_none() {
                    return Err(self.err(pos, format!("stage `{name}` of kind `{kind_name}` runs once per item and needs `foreach`"), Some("add foreach = \"UPSTREAM\" naming the stage whose items it processes".into())));
                }
                let params = self.native_params((name, pos), d, raw)?;
                self.check_upstream_paths(&decl, d, &params, table)?;
                self.check_named_deps((&decl, pos), d, &params, table)?;
                params
            }
        };
        Ok(decl)
    }

    /// A path param `@STAGE/PATH` must name a stage in `deps`.
    fn check_upstream_paths(
        &self,
        decl: &StageDecl,
        d: &dyn Declaration,
        params: &Map<String, Value>,
        table: &Table,
    ) -> Result<(), ConfigError> {
        for p in &d.schema().params {
            if !matches!(p.ty, nasflow_contract::ParamType::Path { .. }) {
                continue;
            }
            let Some(v) = params.get(&p.name).and_then(Value::as_str) else {
                continue;
            };
            let Some((stage, _)) = nasflow_contract::upstream_path(v) else {
                continue;
            };
            if !decl.deps.iter().any(|dep| dep == stage) {
                return Err(self.err(
                    self.item_pos(table, &p.name),
                    format!("`{} = \"{v}\"` in [stages.{}] names the outputs of stage `{stage}`, which is not in its deps", p.name, decl.name),
                    Some(format!("add \"{stage}\" to deps")),
                ));
            }
        }
        Ok(())
    }

    /// A param that names a dep (declared with `x-nasflow-dep`) must name one of `deps`: at
    /// the value when it is written, else (its default) at `deps`.
    fn check_named_deps(
        &self,
        (decl, stage_pos): (&StageDecl, Pos),
        d: &dyn Declaration,
        params: &Map<String, Value>,
        table: &Table,
    ) -> Result<(), ConfigError> {
        for p in d.schema().params.iter().filter(|p| p.names_dep) {
            let Some(v) = params.get(&p.name).and_then(Value::as_str) else {
                continue;
            };
            // "" names no dep (an optional input left out).
            if v.is_empty() || decl.deps.iter().any(|dep| dep == v) {
                continue;
            }
            let at = if table.contains_key(&p.name) {
                self.item_pos(table, &p.name)
            } else if table.contains_key("deps") {
                self.item_pos(table, "deps")
            } else {
                stage_pos
            };
            let deps = if decl.deps.is_empty() {
                "none".to_string()
            } else {
                decl.deps.join(", ")
            };
            return Err(self.err(
                at,
                format!(
                    "`{} = \"{v}\"` in [stages.{}] names stage `{v}`, which is not in its deps ({deps})",
                    p.name, decl.name
                ),
                Some(format!("add \"{v}\" to deps, or set {} to one of them", p.name)),
            ));
        }
        Ok(())
    }

    fn kind_of<'r>(
        &self,
        name: &str,
        table: &Table,
        pos: Pos,
        registry: &'r Registry,
    ) -> Result<(&'static str, KindRef<'r>), ConfigError> {
        let known = registry.names();
        let Some(item) = table.get("kind") else {
            let help = format!("add kind = \"...\"; known kinds: {}", known.join(", "));
            return Err(self.err(pos, format!("stage `{name}` has no `kind`"), Some(help)));
        };
        let at = self.item_pos(table, "kind");
        let kind_name = item
            .as_str()
            .ok_or_else(|| self.err(at, "`kind` must be a string".into(), None))?;
        let Some(kind) = registry.get(kind_name) else {
            let help = did_you_mean(kind_name, &known)
                .unwrap_or_else(|| format!("known kinds: {}", known.join(", ")));
            return Err(self.err(
                at,
                format!("unknown stage kind `{kind_name}` in [stages.{name}]"),
                Some(help),
            ));
        };
        let name = known
            .into_iter()
            .find(|k| *k == kind_name)
            .expect("a known kind");
        Ok((name, kind))
    }

    /// `deps`, `inputs`, `foreach`, `run`, `gpu` (`kind` is read by [`Cx::kind_of`]).
    fn reserved(
        &self,
        decl: &mut StageDecl,
        table: &Table,
        key: &str,
        item: &Item,
        kind: KindRef,
    ) -> Result<(), ConfigError> {
        let stage = &decl.name;
        match key {
            "deps" => {
                let list = self.string_list(item, table, key, stage)?;
                decl.dep_pos = list.iter().map(|(_, p)| *p).collect();
                decl.deps = list.into_iter().map(|(s, _)| s).collect();
            }
            "inputs" => {
                let list = self.string_list(item, table, key, stage)?;
                decl.inputs = list.into_iter().map(|(s, _)| s).collect();
            }
            "foreach" | "run" => {
                let s = item.as_str().ok_or_else(|| {
                    let at = self.item_pos(table, key);
                    self.err(
                        at,
                        format!("`{key}` in [stages.{stage}] must be a string"),
                        None,
                    )
                })?;
                if key == "run" && !matches!(kind, KindRef::Cmd) {
                    return Err(self.err(self.key_pos(table, key), format!("`run` is only for kind = \"cmd\", and [stages.{stage}] is kind = \"{}\"", decl.kind), Some("remove `run`, or make the stage a cmd stage".into())));
                }
                if key == "run" {
                    decl.run = Some(s.to_string());
                } else {
                    decl.foreach = Some(s.to_string());
                }
            }
            "gpu" => {
                if !matches!(kind, KindRef::Cmd) {
                    return Err(self.err(self.key_pos(table, key), format!("`gpu` is only for kind = \"cmd\"; [stages.{stage}] is kind = \"{}\", whose jobs are placed on a GPU when it computes on the device", decl.kind), Some("remove `gpu`".into())));
                }
                decl.gpu = item.as_bool().ok_or_else(|| {
                    self.err(
                        self.item_pos(table, key),
                        format!("`gpu` in [stages.{stage}] must be true or false"),
                        None,
                    )
                })?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A cmd stage's params: any key, except one that looks like a misspelled reserved key.
    fn cmd_params(&self, decl: &StageDecl, raw: Raw) -> Result<Map<String, Value>, ConfigError> {
        if decl.run.is_none() {
            return Err(self.err(
                decl.pos,
                format!("cmd stage `{}` has no `run` command", decl.name),
                Some(
                    "add run = \"your command\" (it runs with sh -c in the project directory)"
                        .into(),
                ),
            ));
        }
        for (key, (_, place)) in &raw {
            let close = RESERVED
                .iter()
                .find(|r| r.eq_ignore_ascii_case(key) || strsim::damerau_levenshtein(key, r) == 1);
            let Some(r) = close else { continue };
            let message = format!(
                "`{key}` in [stages.{}] looks like the reserved key `{r}`",
                decl.name
            );
            let help = Some(format!(
                "did you mean `{r}`? (write it as `{r}`; a cmd stage's other keys are params)"
            ));
            return Err(match place {
                Place::Key(pos, _) => self.err(*pos, message, help),
                Place::Override(o) => self.at_override(o, message, help),
            });
        }
        Ok(raw.into_iter().map(|(k, (v, _))| (k, v)).collect())
    }

    /// A native kind's params, checked and made canonical by its declaration.
    fn native_params(
        &self,
        (stage, stage_pos): (&str, Pos),
        d: &dyn Declaration,
        raw: Raw,
    ) -> Result<Map<String, Value>, ConfigError> {
        let values: Map<String, Value> = raw
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        d.validate(&values).map_err(|e| {
            let unknown = matches!(e, ParamError::Unknown { .. });
            let (message, help) = match &e {
                ParamError::Unknown { name, known, help } => {
                    let mut all: Vec<&str> = known.iter().map(String::as_str).collect();
                    all.extend(RESERVED);
                    let help = help
                        .clone()
                        .or_else(|| did_you_mean(name, &all))
                        .or_else(|| {
                            Some(format!(
                                "params of `{}`: {}",
                                d.info().name,
                                known.join(", ")
                            ))
                        });
                    let kind = d.info().name;
                    (
                        format!("unknown key `{name}` in [stages.{stage}] (kind `{kind}`)"),
                        help,
                    )
                }
                ParamError::Invalid {
                    at, problem, help, ..
                } => (
                    format!("`{at}` in [stages.{stage}] {problem}"),
                    help.clone(),
                ),
            };
            match raw.get(e.name()).map(|(_, place)| *place) {
                Some(Place::Override(o)) => self.at_override(o, message, help),
                Some(Place::Key(key, value)) => {
                    self.err(if unknown { key } else { value }, message, help)
                }
                None => self.err(stage_pos, message, help),
            }
        })
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
}
