//! The `reinforce` stage: arch2vec's REINFORCE search in train-vae's latent space over a
//! benchmark table, with random search on the same table and budget as the baseline. The policy
//! (tch) is in `nasflow_torch::reinforce`; the environment, traces and reports in [`crate::search`].
//!
//! Inputs: `train-vae` (latent features), `pretrain` (the labeled networks; with
//! `table = "pretrained"` also the figures). Outputs: `traces.jsonl` (one trace per method and
//! seed: queried hashes, cumulative cost, best validation accuracy so far, test accuracy of that
//! cell, regrets against the table's best), `summary.json` (final regrets per method, mean and
//! 95% half-width), `regret-valid.png` and `regret-test.png`.
use crate::api::{KindSpec, ParamSpec, ParamType};
use crate::search::table::TABLE_DOC;

pub static REINFORCE: KindSpec = KindSpec {
    name: "reinforce",
    version: 1,
    doc: "REINFORCE search (arch2vec's LSTM policy) in the latent space over a benchmark table, against random search",
    params: &[
        ParamSpec { name: "table", ty: ParamType::PathOr(&["pretrained"]), default: Some("\"pretrained\""), doc: TABLE_DOC },
        ParamSpec { name: "seeds", ty: ParamType::Int, default: Some("500"), doc: "independent runs per method (paper: 500); seeds are the pipeline seed + 0..N" },
        ParamSpec { name: "budget", ty: ParamType::Float, default: Some("1500000.0"), doc: "simulated training seconds per run: the sum of the queried cells' costs (paper: 1.5e6)" },
        ParamSpec { name: "batch_size", ty: ParamType::Int, default: Some("16"), doc: "queries per policy update (episode length)" },
        ParamSpec { name: "lr", ty: ParamType::Float, default: Some("0.01"), doc: "Adam learning rate of the policy" },
        ParamSpec { name: "baseline", ty: ParamType::Float, default: Some("0.95"), doc: "constant reward baseline" },
        ParamSpec { name: "hidden", ty: ParamType::Int, default: Some("128"), doc: "LSTM cell width of the policy" },
        ParamSpec { name: "random_search", ty: ParamType::Bool, default: Some("true"), doc: "also run random search with the same seeds, table and budget" },
    ],
    reads_seed: true,
    uses_device: false,
    item_level: false,
};
