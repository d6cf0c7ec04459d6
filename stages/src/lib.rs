//! nasflow's NAS crate: the stage kinds of the info-NAS pipeline and the NAS code they share.
//!
//! A stage kind is a function from typed params and input directories to files written in an
//! output directory ([`api`]). This crate knows nothing of caching, keys or scheduling: the
//! `nasflow` engine calls the kinds listed by [`kinds`] through its registry.

pub mod api;
pub mod device;

pub use api::{ItemInput, KindSpec, ParamSpec, ParamType, RunFn, StageContext, StageError};
pub use device::{Device, DeviceError};

/// The NAS stage kinds this crate provides. The seven stages of the paper
/// (`sample` … `predict`) are added here as they are implemented.
pub fn kinds() -> Vec<&'static KindSpec> {
    Vec::new()
}

/// The computation of a kind listed by [`kinds`].
pub fn runner(_name: &str) -> Option<RunFn> {
    None
}
