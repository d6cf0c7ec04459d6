//! nasflow's engine: pipeline.toml → stage DAG → content-addressed cache, and the CLI. It knows
//! nothing of NAS and never links libtorch: it depends on the stage contract
//! (`nasflow-contract`) only, and learns the kinds from a [`registry::Registry`] that the root
//! package fills from its one registration list.
//!
//! # Glossary
//! Each word means one thing throughout the engine.
//!
//! | word | meaning |
//! |------|---------|
//! | **stage** | a `[stages.NAME]` table of pipeline.toml: a kind, its params, its deps |
//! | **kind** | what a stage computes: `cmd` (a shell command) or a native kind declared through the contract |
//! | **item** | one value of an upstream's `items.jsonl`; an item-level (`foreach`) stage computes and caches each item on its own |
//! | **key** | the digest of everything a result depends on ([`key`]) |
//! | **decision** | cached or run, and why ([`decide`]); the one place that decides, for run, plan, why and status |
//! | **job** | one computation of a stage or of one item, as handed to a runner (`nasflow_contract::Job`) |
//! | **runner** | what executes jobs: a child process, Slurm arrays, or in-process for tests ([`runner`]); its contract opens that module |
//! | **worker** | a long-lived `nasflow-worker serve` process that runs job after job of native kinds (one per job slot, or several jobs at once with `shared:K`) ([`runner::pool`]) |
//! | **task** | what the scheduler runs on one of its threads: a stage's job, an item's job, or a Slurm batch ([`schedule`]); a Slurm *array task* is Slurm's own word, always said in full |
//! | **record** | what the cache keeps for a (stage, key): the output manifest, its digest, the key inputs, the provenance; an *item record* is one item's; only [`publish`] writes them |
//! | **blob** | a file's bytes, stored under its blake3 digest |
//! | **view** | a materialized output directory (`out/STAGE/KEY/`): links to blobs, what downstream stages read |
//! | **provenance** | how a result was made (times, host, device, logs): kept with the record, never in a key or an output digest |
//! | **device** | a `DeviceSpec` is what pipeline.toml asks for (`auto`, `cuda`); a `Device` is what a host resolved it to |
pub mod batch;
pub mod cache;
pub mod cli;
pub mod config;
pub mod dag;
pub mod decide;
pub mod engine;
pub mod interrupt;
pub mod item;
pub mod key;
pub mod layout;
pub mod metrics;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod slots;
pub mod slurm;
pub mod valid;
pub mod variants;

#[cfg(test)]
mod testkit;
