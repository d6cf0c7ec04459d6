//! The search methods of the `reinforce` stage and how the ones that need no libtorch run:
//! many seeds in parallel, each seed's trace a function of the seed alone.
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bo::{bo, Bo};
use super::edits::Lookup;
use super::evolution::{evolution, Evolution};
use super::local::{local_search, Local};
use super::table::Searchable;
use super::{random_search, Trace};

/// A search method (the `methods` param).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// arch2vec's REINFORCE in the latent space (LSTM policy, nearest unqueried cell)
    Reinforce,
    /// arch2vec's BO: DNGO on the latent features, expected improvement against 0.95
    Bo,
    /// regularized evolution on NB101 cells (NASLib's loop; `mutation`, `population`, `tournament`); needs no features
    Evolution,
    /// local search on NB101 cells (naszilla's or NASLib's, `local_search`); needs no features
    LocalSearch,
    /// random search without repeats
    Random,
}

impl Method {
    /// The name in traces, summaries and charts.
    pub fn name(self) -> &'static str {
        match self {
            Method::Reinforce => "reinforce",
            Method::Bo => "bo",
            Method::Evolution => "evolution",
            Method::LocalSearch => "local_search",
            Method::Random => "random",
        }
    }
}

/// The settings of the methods that need no libtorch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Settings {
    pub budget: f64,
    pub bo: Bo,
    pub evolution: Evolution,
    pub local: Local,
}

/// Runs `method` (not REINFORCE) for every seed in parallel on the current rayon pool; `tick`
/// after each run. Traces in seed order.
pub fn run_many(
    method: Method,
    table: &Searchable,
    lookup: &Lookup,
    s: &Settings,
    seeds: &[u64],
    tick: &(dyn Fn() + Sync),
) -> Vec<Trace> {
    seeds
        .par_iter()
        .map(|&seed| {
            let t = match method {
                Method::Random => random_search(table, s.budget, seed),
                Method::Evolution => evolution(table, lookup, s.evolution, s.budget, seed),
                Method::LocalSearch => local_search(table, lookup, s.local, s.budget, seed),
                Method::Bo => bo(table, s.bo, s.budget, seed),
                Method::Reinforce => unreachable!("REINFORCE runs in nasflow-torch"),
            };
            tick();
            t
        })
        .collect()
}
