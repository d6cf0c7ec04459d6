//! The stage contract: what a stage kind declares, what it receives and what it may write.
//!
//! The engine (`nasflow-engine`) and the NAS code (`nasflow-stages`, `nasflow-torch`) both depend
//! on this package and never on each other. The engine validates, keys, schedules and caches
//! through the declarations defined here; a kind's computation receives a [`StageContext`] with
//! its typed params and writes files. The one list that joins kinds to their computations is
//! the root package's `register` function (see [`Registrar`]).
//!
//! # The rules a kind follows
//! - **Params are one struct** ([`Params`]): serde reads it, schemars describes it. Each field has
//!   a doc comment (the docs `nasflow params` prints), a default (`#[serde(default)]` with a
//!   `Default` impl), and where it applies an enum type (the allowed values) and a range
//!   (`#[schemars(range(min = 1))]`). The engine checks every value against that one definition
//!   when pipeline.toml, `--set`, variants and sweeps are loaded, so a bad value fails at `plan`,
//!   not hours later. File params are [`PathParam`] or [`PathOr`]: their content is part of the
//!   stage key. A param marked `#[schemars(extend("x-nasflow-unkeyed" = true))]` is passed to the
//!   run but left out of the key (a download URL whose content another param pins by digest).
//! - **Outputs are a function of the inputs, the params, the seed and the thread count.** Write
//!   them under [`StageContext::out`]. Anything that varies from run to run (timings, rates,
//!   host facts, logs) goes under [`StageContext::provenance`] instead: the engine keeps that
//!   directory with the record and shows it (`nasflow show`, `nasflow log`), but it is not part
//!   of the output digest and downstream stages never see it, so a rerun that reproduces the same
//!   outputs leaves its dependents cached (early cutoff).
//! - **Write nowhere else.** The inputs are read-only views of other stages' results.
//! - **Bump [`KindInfo::version`]** whenever the outputs for the same params may change.
pub mod boundary;
pub mod context;
pub mod device;
pub mod error;
pub mod headline;
pub mod job;
pub mod kind;
pub mod layout;
pub mod params;
pub mod suggest;
pub mod tool;

pub use context::{Inputs, ItemInput, ItemList, Progress, StageContext};
pub use device::{Device, DeviceError, DeviceSpec, Probe};
pub use error::StageError;
pub use headline::Headline;
pub use job::{Computations, Job};
pub use kind::{declaration, Declaration, Kind, KindInfo, Registrar};
pub use params::{
    upstream_path, Bound, Keywords, ParamDoc, ParamError, ParamType, Params, ParamsSchema, PathOr,
    PathParam,
};
pub use suggest::did_you_mean;
pub use tool::{Tool, ToolError};
