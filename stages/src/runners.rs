//! Kind names to the computations of this crate's libtorch-free kinds (the libtorch ones are in
//! `nasflow-torch`). Only `nasflow-worker` calls this.
use crate::api::RunFn;
use crate::{predict, sample};

/// The computation of a libtorch-free kind listed by [`crate::kinds`].
pub fn runner(name: &str) -> Option<RunFn> {
    match name {
        "sample" => Some(sample::run),
        "predict" => Some(predict::run),
        _ => None,
    }
}
