//! nasflow's NAS crate: the stage kinds of the info-NAS pipeline and the NAS code they share.
//!
//! A stage kind is a function from typed params and input directories to files written in an
//! output directory ([`api`]). This crate knows nothing of caching, keys or scheduling: the
//! `nasflow` engine calls the kinds listed by [`kinds`] through its registry.
//!
//! Linking rule: the engine binary links this crate for the kinds' metadata but must never load
//! libtorch (a no-op run must take milliseconds, not the ~300 ms libtorch takes to load), so this
//! crate does not depend on tch. The libtorch computations of its kinds live in the
//! `nasflow-torch` crate (`stages/torch`), which only `nasflow-worker` links. The test
//! `tests/cli.rs::engine_binary_does_not_link_libtorch` checks this.

pub mod api;
pub mod device;
pub mod images;
pub mod nb101;
pub mod predict;
pub mod preprocess;
pub mod pretrain;
pub mod reinforce;
pub mod report;
mod runners;
pub mod sample;
pub mod search;
pub mod semi;
pub mod tools;
pub mod train_vae;

pub use api::{ItemInput, KindSpec, ParamSpec, ParamType, RunFn, StageContext, StageError};
pub use device::{Device, DeviceError};

/// The NAS stage kinds this crate provides. The seven stages of the paper
/// (`sample` … `predict`) are added here as they are implemented.
pub fn kinds() -> Vec<&'static KindSpec> {
    vec![
        &sample::SAMPLE,
        &pretrain::PRETRAIN,
        &pretrain::EXTRACT,
        &preprocess::PREPROCESS,
        &train_vae::TRAIN_VAE,
        &reinforce::REINFORCE,
        &predict::PREDICT,
    ]
}

/// The computation of a kind listed by [`kinds`] (in its own module: see the linking rule).
pub use runners::runner;
