//! Kind declarations, and the [`Registrar`] through which the one registration list hands kinds
//! (with their computations) and tools to whoever builds from it.
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::context::StageContext;
use crate::error::StageError;
use crate::params::{cross_param_error, validate, ParamError, Params, ParamsSchema};
use crate::tool::Tool;

/// What pipeline.toml names with `kind = "..."`, apart from its params.
#[derive(Debug)]
pub struct KindInfo {
    pub name: &'static str,
    /// Bumped whenever the kind's outputs for the same params may change; part of the key.
    pub version: u32,
    pub doc: &'static str,
    /// Whether the kind reads the pipeline seed (then the seed is part of its key).
    pub reads_seed: bool,
    /// Whether the kind computes on the accelerator (then it holds a device slot on CUDA).
    pub uses_device: bool,
    /// Whether the kind runs once per item of an upstream list (`foreach = "dep"` is required).
    pub item_level: bool,
    /// Glob patterns of its summary's key metrics (dotted names; `*` any run of characters):
    /// what `nasflow metrics` shows by default, beside any `key_metrics` the summary lists.
    /// Declared here, not written into outputs, so that changing them recomputes nothing.
    pub key_metrics: &'static [&'static str],
}

/// A stage kind: its params type and its facts.
pub trait Kind: 'static {
    type Params: Params;
    const INFO: KindInfo;

    /// Checks across params that their types cannot say (`search_space = "nb201"` with an NB101
    /// table), run wherever params are validated, so that `nasflow plan` refuses them (exit 2).
    /// The message starts with the param it is about: `"table: ..."`.
    fn check(_params: &Self::Params) -> Result<(), String> {
        Ok(())
    }
}

/// A kind as the engine sees it (object-safe; no computation, no libtorch).
pub trait Declaration: Send + Sync {
    fn info(&self) -> &'static KindInfo;
    fn schema(&self) -> &ParamsSchema;
    /// Checks raw params (as read from TOML) and returns the canonical ones: every param,
    /// defaults filled in, in the params type's own form.
    fn validate(&self, raw: &Map<String, Value>) -> Result<Map<String, Value>, ParamError>;
}

struct Declared<K> {
    schema: OnceLock<ParamsSchema>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Kind> Declaration for Declared<K> {
    fn info(&self) -> &'static KindInfo {
        &K::INFO
    }
    fn schema(&self) -> &ParamsSchema {
        self.schema.get_or_init(ParamsSchema::of::<K::Params>)
    }
    fn validate(&self, raw: &Map<String, Value>) -> Result<Map<String, Value>, ParamError> {
        let (params, canonical) = validate::<K::Params>(self.schema(), raw)?;
        K::check(&params).map_err(|problem| cross_param_error(self.schema(), problem))?;
        Ok(canonical)
    }
}

/// The declaration of kind `K`.
pub fn declaration<K: Kind>() -> Box<dyn Declaration> {
    Box::new(Declared::<K> {
        schema: OnceLock::new(),
        kind: PhantomData,
    })
}

/// Receives the registration list: each kind with its computation, and each tool.
///
/// The engine's registry keeps only the declarations and drops the computations unused, so the
/// `nasflow` binary never references libtorch code (a computation is a zero-sized function item
/// here, and a dropped one leaves no symbol to link); `nasflow-worker` keeps the computations.
pub trait Registrar {
    fn kind<K, C>(&mut self, compute: C)
    where
        K: Kind,
        C: Fn(&StageContext<K::Params>) -> Result<(), StageError> + Send + Sync + 'static;
    fn tool(&mut self, tool: Tool);
}
