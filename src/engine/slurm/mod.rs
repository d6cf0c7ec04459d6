//! The Slurm executor: the items of item-level stages run as Slurm job arrays, each task a
//! `nasflow slurm-task` process on a compute node that publishes its item into the shared cache
//! directory. Whole stages still run locally. See [`array`] for how arrays are followed and
//! resumed, and [`crate::item`] for why the cache is safe with many writers on many hosts.
pub mod array;
pub mod client;
pub mod runner;
pub mod settings;
pub mod task;

pub use runner::SlurmArrays;
pub use settings::{Executor, ExecutorKind, SlurmSettings};

use crate::cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{program}`: {source}\n  help: the Slurm executor needs Slurm's client commands (sbatch, squeue, scancel) on PATH; install them, or run with --executor local")]
    Missing {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}\n  help: {help}")]
    Failed {
        command: String,
        stderr: String,
        help: String,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("interrupted (Ctrl-C): the stage's Slurm arrays were cancelled")]
    Interrupted,
}
