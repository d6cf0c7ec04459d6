//! The `reinforce` stage: search over a benchmark table with the methods a NAS paper compares,
//! each with the same seeds, table and budget: arch2vec's REINFORCE and BO (DNGO) in train-vae's
//! latent space, and regularized evolution, local search and random search on the cells
//! themselves. The policy (tch) is in `nasflow_torch::reinforce`; the other methods, the
//! environment, traces and reports in [`crate::search`].
//!
//! Inputs: `train-vae` (latent features), `pretrain` (the labeled networks; with
//! `table = "pretrained"` also the figures). Outputs: `traces.jsonl` (one trace per method and
//! seed: queried hashes, cumulative cost, best validation accuracy so far, test accuracy of that
//! cell, regrets against the table's best), `summary.json` (per method: final regrets, mean and
//! 95% half-width, the p-value against random search; regret by query index as arch2vec plots
//! it), `regret-valid.png` and `regret-test.png` (against simulated seconds) and
//! `regret-valid-queries.png` (against queries).
use nasflow_contract::{Kind, KindInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::search::bo::BoQuirks;
use crate::search::local::Local;
use crate::search::methods::Method;
use crate::search::mutation::Mutation;
use crate::search::table::{latent_choices, Features, LatentChoice, TableSource};

/// The `reinforce` kind.
pub struct Reinforce;

impl Kind for Reinforce {
    type Params = ReinforceParams;
    const INFO: KindInfo = KindInfo {
        name: "reinforce",
        version: 6,
        doc: "Search a benchmark table: REINFORCE and BO (arch2vec) in the latent space, regularized evolution, local search and random search",
        reads_seed: true,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };

    /// NB101's mutation operators on NB201's table (the search refuses them on any NB201 cells
    /// too, `table = "pretrained"` included, when it knows the space).
    fn check(p: &ReinforceParams) -> Result<(), String> {
        let nb201 = p.table.keyword() == Some(crate::nb201::table::EMBEDDED);
        if nb201 && p.methods().contains(&Method::Evolution) && p.mutation != Mutation::Naslib {
            return Err(format!(
                "mutation: \"{}\" is an NB101 operator; on NB201 evolution mutates as NASLib does (one edge's op): set mutation = \"naslib\"",
                p.mutation.name()
            ));
        }
        Ok(())
    }
}

/// The params of `reinforce`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReinforceParams {
    /// "pretrained" (the networks pretrained in this pipeline: held-out accuracy as validation, test accuracy as test, simulated training seconds as cost: 3 x multiply-accumulates x images x epochs / 1e12), "nb101-10k" (10,000 NB101 cells with their measured figures, built into nasflow; cost: their training seconds at 108 epochs) or an NB101 table file (nasbench_only108.tfrecord, arch2vec's data.json, hash-keyed *.jsonl)
    pub table: TableSource,
    /// the dependency (a train-vae stage) whose latent features to use
    #[schemars(extend("x-nasflow-dep" = true))]
    pub vae: String,
    /// whose latent features to search in: train-vae's main model or those it trained alongside; with several (["io", "reference"]), REINFORCE and BO run on each (`reinforce-io`, `bo-reference`, ...) and the summary tests them against each other
    pub features: Vec<Features>,
    /// the train-vae checkpoint (epoch) whose features to use; 0: the last
    pub checkpoint: usize,
    /// the search methods to run, each with the same seeds, table and budget
    pub methods: Vec<Method>,
    /// independent runs per method (paper: 500); seeds are the pipeline seed + 0..N
    #[schemars(range(min = 1))]
    pub seeds: usize,
    /// runs of BO, the first of the seeds (0: all `seeds`); BO retrains DNGO every 5 queries and scores every cell, so it costs far more per run
    pub bo_seeds: usize,
    /// simulated training seconds per run: the sum of the queried cells' costs (paper: 1.5e6)
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub budget: f64,
    /// queries per policy update (episode length)
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// Adam learning rate of the policy
    #[schemars(range(min = 0.0))]
    pub lr: f64,
    /// constant reward baseline
    pub baseline: f64,
    /// LSTM cell width of the policy
    #[schemars(range(min = 1))]
    pub hidden: usize,
    /// run random search too (the baseline of the p-values), whether or not `methods` names it; false: only if it does
    pub random_search: bool,
    /// BO: random queries before the first model (arch2vec: 16)
    #[schemars(range(min = 1))]
    pub bo_init: usize,
    /// BO: cells of highest expected improvement queried per model (arch2vec: 5)
    #[schemars(range(min = 1))]
    pub bo_top_k: usize,
    /// BO: DNGO's training epochs per model (arch2vec: 100)
    #[schemars(range(min = 1))]
    pub bo_epochs: usize,
    /// BO: which of arch2vec's quirks to reproduce
    pub bo_quirks: BoQuirks,
    /// regularized evolution: population size (naszilla's evolution_search: 30)
    #[schemars(range(min = 1))]
    pub population: usize,
    /// regularized evolution: members sampled per tournament (naszilla's evolution_search: 10)
    #[schemars(range(min = 1))]
    pub tournament: usize,
    /// regularized evolution's mutation operator, as its source writes it
    pub mutation: Mutation,
    /// local search as one reference runs it
    pub local_search: Local,
}

impl ReinforceParams {
    /// The methods to run, each once, in `Method` order (`methods`, plus random search when
    /// `random_search`).
    pub fn methods(&self) -> Vec<Method> {
        let mut m = self.methods.clone();
        if self.random_search {
            m.push(Method::Random);
        }
        m.sort();
        m.dedup();
        m
    }
    /// The settings of the methods that run without libtorch.
    pub fn settings(&self) -> crate::search::methods::Settings {
        use crate::search::{bo::Bo, dngo, evolution::Evolution};
        crate::search::methods::Settings {
            budget: self.budget,
            bo: Bo {
                init: self.bo_init,
                top_k: self.bo_top_k,
                dngo: dngo::Settings {
                    epochs: self.bo_epochs,
                    ..dngo::Settings::default()
                },
                quirks: self.bo_quirks,
                ..Bo::default()
            },
            evolution: Evolution {
                population: self.population,
                sample: self.tournament,
                mutation: self.mutation,
            },
            local: self.local_search,
        }
    }
    /// The latent features to search in, each with its label ("" for a single one).
    pub fn latents(&self) -> Result<Vec<(String, LatentChoice)>, nasflow_contract::StageError> {
        latent_choices(&self.vae, &self.features, self.checkpoint)
    }
}

impl Default for ReinforceParams {
    fn default() -> Self {
        ReinforceParams {
            table: TableSource::default(),
            vae: "train-vae".into(),
            features: vec![Features::Main],
            checkpoint: 0,
            methods: vec![Method::Reinforce],
            seeds: 500,
            bo_seeds: 0,
            budget: 1.5e6,
            batch_size: 16,
            lr: 0.01,
            baseline: 0.95,
            hidden: 128,
            random_search: true,
            bo_init: 16,
            bo_top_k: 5,
            bo_epochs: 100,
            bo_quirks: BoQuirks::None,
            population: 30,
            tournament: 10,
            mutation: Mutation::Naslib,
            local_search: Local::Naszilla,
        }
    }
}
