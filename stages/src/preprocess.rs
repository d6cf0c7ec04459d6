//! The `preprocess` stage: the labeled input-output datasets of info-NAS (paper-era
//! `transforms.get_transforms`) from `extract`'s outputs. The computation is in
//! `nasflow_torch::preprocess`; this module declares the kind (the engine links it).
//!
//! Per sample (a network's features on one image, and the image's true class `y`):
//! 1. append 1.0 (the bias input);
//! 2. multiply by the classifier row of class `y` with its bias, then subtract the network's
//!    mean and divide by its standard deviation (+ f32 epsilon) — scalars fitted per network on
//!    its *unweighted* seen-image features with the 1.0 column (info-NAS's quirk: fitted before
//!    weighting, applied after);
//! 3. sort by class `y`'s weights (bias included at its rank), descending;
//! 4. per-position z-score with the statistics of the train set, applied to every set.
//!
//! Sets (the paper's Table 2): `train` (train networks x seen images), `valid` (validation
//! networks x seen images), `valid_unseen` (the first 10% of train networks by hash x unseen
//! images), `test_unseen` (the other 90% x unseen images), `test_valid` (validation networks x
//! unseen images). Each set's mean-vector baseline is recorded: the L1 of predicting the set's own
//! mean vector (info-NAS's `compute_dataset_stats.py`), and beside it that of the train mean.
use nasflow_contract::{Kind, KindInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `preprocess` kind.
pub struct Preprocess;

impl Kind for Preprocess {
    type Params = PreprocessParams;
    const INFO: KindInfo = KindInfo {
        name: "preprocess",
        version: 2,
        doc: "Build info-NAS's labeled input-output datasets (bias, weighting, per-network scaling, sort by weights, per-position scaling) and their mean baselines",
        reads_seed: false,
        uses_device: false,
        item_level: false,
        key_metrics: &["train.rows", "valid.rows"],
    };
}

/// The params of `preprocess`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessParams {
    /// fraction of train networks (first by hash) whose unseen-image outputs form the unseen validation set (paper: 10%)
    #[schemars(range(min = 0.0, max = 1.0))]
    pub unseen_valid_fraction: f64,
}

impl Default for PreprocessParams {
    fn default() -> Self {
        PreprocessParams {
            unseen_valid_fraction: 0.1,
        }
    }
}

/// The sets, in output order.
pub const SETS: [&str; 5] = [
    "train",
    "valid",
    "valid_unseen",
    "test_unseen",
    "test_valid",
];

/// How many train networks go to the unseen validation set: `ceil(fraction * n)`.
pub fn unseen_valid_count(n_train: usize, fraction: f64) -> usize {
    ((fraction * n_train as f64).ceil() as usize).min(n_train)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_split_of_608_networks() {
        assert_eq!(unseen_valid_count(608, 0.1), 61);
        assert_eq!(unseen_valid_count(8, 0.1), 1);
    }
}
