//! The `pretrain` and `extract` stages: train each labeled network on images, then record what it
//! outputs on fixed images. Both are item-level (one item per network of `sample`'s
//! `items.jsonl`).
//!
//! This module holds only the kinds' declarations and the libtorch-free helpers: the engine
//! links it. The training and extraction code (tch) lives in the `nasflow-torch` crate (`stages/torch`), reached
//! only from `nasflow-worker` (see the linking rule in `lib.rs`).
//!
//! `pretrain` outputs per network: `weights.safetensors` (every variable, PyTorch names),
//! `metrics.json` (per-epoch learning rate, loss and accuracy on the train batches and on the
//! held-out images, the final test accuracy, the images trained on), and `network.json` (cell,
//! sizes, parameter and multiply-accumulate counts, image set). Timings, the device and the
//! threads go to the provenance directory (`timing.json`): outputs are a function of the
//! inputs, params, seed and thread count only. `extract` outputs `features.safetensors`, described in `nasflow_torch::extract`.

use nasflow_contract::{Kind, KindInfo, PathOr, StageContext, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use serde_json::json;

use crate::images::Synthetic;
use crate::nb101::params::Skeleton;
use crate::nb101::ModuleHash;
use crate::space::{Arch, SearchSpace};

/// The `pretrain` kind: one item per labeled network.
pub struct Pretrain;

impl Kind for Pretrain {
    type Params = PretrainParams;
    const INFO: KindInfo = KindInfo {
        name: "pretrain",
        version: 2,
        doc: "Train each labeled network (NB101: NASBench-PyTorch's network; NB201: NB201's TinyNetwork; NASBench-PyTorch's trainer) on images",
        reads_seed: true,
        uses_device: true,
        item_level: true,
        key_metrics: &[],
    };
}

/// The params of `pretrain`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainParams {
    /// "synthetic" (the embedded set) or a CIFAR-10 directory (data_batch_1..5.bin, test_batch.bin)
    pub images: PathOr<Synthetic>,
    /// training images held out (seeded draw): evaluated every epoch, and extract's seen images
    pub held_out: usize,
    /// stem channels (NB101: 128, NB201: 16)
    #[schemars(range(min = 1))]
    pub init_channels: usize,
    /// stacks of cells, channels doubled between them (NB101: 3, max-pooling; NB201: 3, a residual reduction block)
    #[schemars(range(min = 1))]
    pub stacks: usize,
    /// cells per stack (NB101: 3, NB201: 5)
    #[schemars(range(min = 1))]
    pub cells_per_stack: usize,
    /// training epochs (info-NAS: 12)
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// training batch size (paper: 128)
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// SGD learning rate, cosine-annealed per epoch
    #[schemars(range(min = 0.0))]
    pub lr: f64,
    /// SGD momentum
    #[schemars(range(min = 0.0, max = 1.0))]
    pub momentum: f64,
    /// SGD weight decay (all parameters)
    #[schemars(range(min = 0.0))]
    pub weight_decay: f64,
    /// gradient-norm clipping
    #[schemars(range(min = 0.0))]
    pub grad_clip: f64,
    /// train on the first N non-held-out images only (0: all)
    pub train_limit: usize,
    /// final test accuracy on the first N test images (0: all)
    pub test_limit: usize,
    /// arithmetic of the forward pass and loss (the backward follows it)
    pub precision: Precision,
    /// images and convolution weights in channels-last memory format (faster convolutions on GPUs)
    pub channels_last: bool,
    /// on CUDA, let cuBLAS and cuDNN use TF32 for fp32 (PyTorch's default for convolutions; false: exact fp32 as the paper)
    pub tf32: bool,
}

/// The arithmetic of a network's forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 throughout, as the paper
    #[default]
    Fp32,
    /// bf16 autocast (PyTorch's torch.autocast with dtype bfloat16): matmuls and convolutions in bf16, reductions and the loss in fp32; on the CPU too
    Bf16,
}

impl Default for PretrainParams {
    fn default() -> Self {
        PretrainParams {
            images: PathOr::default(),
            held_out: 1000,
            init_channels: 128,
            stacks: 3,
            cells_per_stack: 3,
            epochs: 12,
            batch_size: 128,
            lr: 0.025,
            momentum: 0.9,
            weight_decay: 0.0001,
            grad_clip: 5.0,
            train_limit: 0,
            test_limit: 0,
            precision: Precision::Fp32,
            channels_last: false,
            tf32: false,
        }
    }
}

/// The `extract` kind: one item per trained network.
pub struct Extract;

impl Kind for Extract {
    type Params = ExtractParams;
    const INFO: KindInfo = KindInfo {
        name: "extract",
        version: 1,
        doc: "Record each trained network's global-average-pool features on the seen (held-out) and unseen (test) images, and its classifier",
        reads_seed: true,
        uses_device: true,
        item_level: true,
        key_metrics: &[],
    };
}

/// The params of `extract`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractParams {
    /// the same image set as pretrain's
    pub images: PathOr<Synthetic>,
    /// test images drawn (seeded) as the unseen set (paper: 2,000)
    pub unseen: usize,
    /// arithmetic of the feature pass (features are stored as fp32 either way)
    pub precision: Precision,
    /// images and convolution weights in channels-last memory format
    pub channels_last: bool,
}

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            images: PathOr::default(),
            unseen: 2000,
            precision: Precision::Fp32,
            channels_last: false,
        }
    }
}

/// What `pretrain` records about a network, for `extract` and for people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkInfo {
    /// Absent for NB101 (files written before NB201 read the same).
    #[serde(default, skip_serializing_if = "is_nb101")]
    pub space: SearchSpace,
    pub hash: ModuleHash,
    /// NB101's cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<String>,
    /// NB201's cell (its arch string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arch: String,
    pub init_channels: usize,
    pub stacks: usize,
    pub cells_per_stack: usize,
    pub classes: usize,
    pub trainable_parameters: usize,
    /// Forward multiply-accumulates on one 32 x 32 image (see `nb101::params`, `nb201::params`).
    #[serde(default)]
    pub multiply_accumulates: u64,
    /// The image set's name and the held-out count, which extract must match.
    pub images: String,
    pub held_out: usize,
}

fn is_nb101(s: &SearchSpace) -> bool {
    *s == SearchSpace::Nb101
}

/// The cell fields of a [`NetworkInfo`]: (space, hash, matrix, ops, arch).
pub type CellFields = (SearchSpace, ModuleHash, Vec<Vec<u8>>, Vec<String>, String);

/// The fields that name `arch` in a [`NetworkInfo`].
pub fn cell_fields(arch: &Arch) -> CellFields {
    match arch {
        Arch::Nb101(c) => {
            let ops = c.ops().iter().map(|o| o.name().to_string()).collect();
            (
                SearchSpace::Nb101,
                arch.hash(),
                c.matrix(),
                ops,
                String::new(),
            )
        }
        Arch::Nb201(c) => (
            SearchSpace::Nb201,
            arch.hash(),
            Vec::new(),
            Vec::new(),
            c.arch_string(),
        ),
    }
}

impl NetworkInfo {
    pub fn skeleton(&self) -> Skeleton {
        Skeleton {
            in_channels: 3,
            init_channels: self.init_channels,
            stacks: self.stacks,
            cells_per_stack: self.cells_per_stack,
            classes: self.classes,
        }
    }

    pub fn arch(&self) -> Result<Arch, StageError> {
        let v = json!({
            "space": self.space,
            "hash": self.hash,
            "matrix": self.matrix,
            "ops": self.ops,
            "arch": self.arch,
        });
        Arch::from_fields(&v).map_err(|e| StageError::Failed(format!("network.json: {e}")))
    }
}

/// The cell of a `sample` item (see `space` for the item forms); the hash must match.
pub fn item_arch<P>(ctx: &StageContext<P>) -> Result<(ModuleHash, Arch), StageError> {
    let item = ctx.item()?;
    let arch = Arch::from_fields(&item.value)
        .map_err(|e| StageError::Failed(format!("item {}: {e}", item.index)))?;
    Ok((arch.hash(), arch))
}
