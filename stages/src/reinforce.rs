//! The `reinforce` stage: arch2vec's REINFORCE search in train-vae's latent space over a
//! benchmark table, with random search on the same table and budget as the baseline. The policy
//! (tch) is in `nasflow_torch::reinforce`; the environment, traces and reports in [`crate::search`].
//!
//! Inputs: `train-vae` (latent features), `pretrain` (the labeled networks; with
//! `table = "pretrained"` also the figures). Outputs: `traces.jsonl` (one trace per method and
//! seed: queried hashes, cumulative cost, best validation accuracy so far, test accuracy of that
//! cell, regrets against the table's best), `summary.json` (final regrets per method, mean and
//! 95% half-width), `regret-valid.png` and `regret-test.png`.
use nasflow_contract::{Kind, KindInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::search::table::{Features, LatentChoice, TableSource};

/// The `reinforce` kind.
pub struct Reinforce;

impl Kind for Reinforce {
    type Params = ReinforceParams;
    const INFO: KindInfo = KindInfo {
        name: "reinforce",
        version: 3,
        doc: "REINFORCE search (arch2vec's LSTM policy) in the latent space over a benchmark table, against random search",
        reads_seed: true,
        uses_device: false,
        item_level: false,
    };
}

/// The params of `reinforce`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReinforceParams {
    /// "pretrained" (the networks pretrained in this pipeline: held-out accuracy as validation, test accuracy as test, simulated training seconds as cost: 3 x multiply-accumulates x images x epochs / 1e12), "nb101-10k" (10,000 NB101 cells with their measured figures, built into nasflow; cost: their training seconds at 108 epochs) or an NB101 table file (nasbench_only108.tfrecord, arch2vec's data.json, hash-keyed *.jsonl)
    pub table: TableSource,
    /// the dependency (a train-vae stage) whose latent features to use
    pub vae: String,
    /// whose latent features to search in: train-vae's main model or one it trained alongside
    pub features: Features,
    /// the train-vae checkpoint (epoch) whose features to use; 0: the last
    pub checkpoint: usize,
    /// independent runs per method (paper: 500); seeds are the pipeline seed + 0..N
    #[schemars(range(min = 1))]
    pub seeds: usize,
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
    /// also run random search with the same seeds, table and budget
    pub random_search: bool,
}

impl ReinforceParams {
    pub fn latent(&self) -> LatentChoice {
        LatentChoice {
            vae: self.vae.clone(),
            features: self.features,
            checkpoint: self.checkpoint,
        }
    }
}

impl Default for ReinforceParams {
    fn default() -> Self {
        ReinforceParams {
            table: TableSource::default(),
            vae: "train-vae".into(),
            features: Features::Main,
            checkpoint: 0,
            seeds: 500,
            budget: 1.5e6,
            batch_size: 16,
            lr: 0.01,
            baseline: 0.95,
            hidden: 128,
            random_search: true,
        }
    }
}
