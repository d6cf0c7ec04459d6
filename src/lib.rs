//! nasflow's engine: pipeline.toml → stage DAG → content-addressed cache. It knows nothing of
//! NAS; stage kinds come from the `nasflow-stages` crate through [`registry`].
pub mod cache;
pub mod config;
pub mod dag;
pub mod exec;
pub mod interrupt;
pub mod item;
pub mod job;
pub mod key;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod runner;
pub mod slurm;
pub mod testkinds;
pub mod variants;
