//! nasflow's NAS crate: the stage kinds of the info-NAS pipeline and the NAS code they share.
//!
//! A stage kind is a type implementing `nasflow_contract::Kind` (its params struct and facts)
//! and a function from a `StageContext` to files written in the output directory. This crate
//! knows nothing of caching, keys or scheduling; the root package's registration list hands its
//! kinds to the engine.
//!
//! Linking rule: the `nasflow` engine binary links this crate for the kinds' declarations and the
//! `nasflow nb101` tools but must never load libtorch (a no-op run must take milliseconds, not the
//! ~300 ms libtorch takes to load), so this crate does not depend on tch. The libtorch
//! computations of its kinds live in the `nasflow-torch` crate (`stages/torch`). The test
//! `tests/cli.rs::engine_binary_does_not_link_libtorch` checks this.

pub mod fetch;
pub mod files;
pub mod images;
pub mod nb101;
pub mod nb201;
pub mod predict;
pub mod preprocess;
pub mod pretrain;
pub mod reinforce;
pub mod report;
pub mod sample;
pub mod search;
pub mod semi;
pub mod space;
pub mod stats;
pub mod tools;
pub mod train_vae;
pub mod zero_cost;

pub use nasflow_contract::{StageContext, StageError};
