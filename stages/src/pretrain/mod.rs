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
//! held-out images, the final test accuracy, wall time), and `network.json` (cell, sizes, image
//! set). `extract` outputs `features.safetensors`, described in `nasflow_torch::extract`.

use serde::{Deserialize, Serialize};

use crate::api::{KindSpec, ParamSpec, ParamType, StageContext, StageError};
use crate::nb101::params::Skeleton;
use crate::nb101::{module_hash, Cell, ModuleHash, Op};

const IMAGES_DOC: &str = "\"synthetic\" (the embedded set) or a CIFAR-10 directory (data_batch_1..5.bin, test_batch.bin)";

pub static PRETRAIN: KindSpec = KindSpec {
    name: "pretrain",
    version: 1,
    doc: "Train each labeled network (NASBench-PyTorch's network and trainer) on images",
    params: &[
        ParamSpec { name: "images", ty: ParamType::PathOr(&["synthetic"]), default: Some("\"synthetic\""), doc: IMAGES_DOC },
        ParamSpec { name: "held_out", ty: ParamType::Int, default: Some("1000"), doc: "training images held out (seeded draw): evaluated every epoch, and extract's seen images" },
        ParamSpec { name: "init_channels", ty: ParamType::Int, default: Some("128"), doc: "stem channels (NB101: 128)" },
        ParamSpec { name: "stacks", ty: ParamType::Int, default: Some("3"), doc: "stacks of cells, max-pooling and channel doubling between them (NB101: 3)" },
        ParamSpec { name: "cells_per_stack", ty: ParamType::Int, default: Some("3"), doc: "cells per stack (NB101: 3)" },
        ParamSpec { name: "epochs", ty: ParamType::Int, default: Some("12"), doc: "training epochs (info-NAS: 12)" },
        ParamSpec { name: "batch_size", ty: ParamType::Int, default: Some("128"), doc: "training batch size (paper: 128)" },
        ParamSpec { name: "lr", ty: ParamType::Float, default: Some("0.025"), doc: "SGD learning rate, cosine-annealed per epoch" },
        ParamSpec { name: "momentum", ty: ParamType::Float, default: Some("0.9"), doc: "SGD momentum" },
        ParamSpec { name: "weight_decay", ty: ParamType::Float, default: Some("0.0001"), doc: "SGD weight decay (all parameters)" },
        ParamSpec { name: "grad_clip", ty: ParamType::Float, default: Some("5.0"), doc: "gradient-norm clipping" },
        ParamSpec { name: "train_limit", ty: ParamType::Int, default: Some("0"), doc: "train on the first N non-held-out images only (0: all)" },
        ParamSpec { name: "test_limit", ty: ParamType::Int, default: Some("0"), doc: "final test accuracy on the first N test images (0: all)" },
    ],
    reads_seed: true,
    uses_device: true,
    item_level: true,
};

pub static EXTRACT: KindSpec = KindSpec {
    name: "extract",
    version: 1,
    doc: "Record each trained network's global-average-pool features on the seen (held-out) and unseen (test) images, and its classifier",
    params: &[
        ParamSpec { name: "images", ty: ParamType::PathOr(&["synthetic"]), default: Some("\"synthetic\""), doc: "the same image set as pretrain's" },
        ParamSpec { name: "unseen", ty: ParamType::Int, default: Some("2000"), doc: "test images drawn (seeded) as the unseen set (paper: 2,000)" },
    ],
    reads_seed: true,
    uses_device: true,
    item_level: true,
};

/// What `pretrain` records about a network, for `extract` and for people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkInfo {
    pub hash: ModuleHash,
    pub matrix: Vec<Vec<u8>>,
    pub ops: Vec<String>,
    pub init_channels: usize,
    pub stacks: usize,
    pub cells_per_stack: usize,
    pub classes: usize,
    pub trainable_parameters: usize,
    /// The image set's name and the held-out count, which extract must match.
    pub images: String,
    pub held_out: usize,
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
    pub fn cell(&self) -> Result<Cell, StageError> {
        cell_from(&self.matrix, &self.ops)
    }
}

fn cell_from(matrix: &[Vec<u8>], ops: &[String]) -> Result<Cell, StageError> {
    let ops = ops
        .iter()
        .map(|o| Op::parse(o))
        .collect::<Result<Vec<_>, _>>();
    ops.and_then(|ops| Cell::new(matrix, &ops))
        .and_then(|c| c.canonical())
        .map_err(|e| StageError::Failed(format!("invalid cell: {e}")))
}

/// The cell of a `sample` item (`{"hash", "matrix", "ops", ...}`); the hash must match.
pub fn item_cell(ctx: &StageContext) -> Result<(ModuleHash, Cell), StageError> {
    let item = ctx.item.ok_or_else(|| {
        StageError::Config(format!("stage `{}` runs per item: set foreach", ctx.stage))
    })?;
    #[derive(Deserialize)]
    struct Item {
        hash: ModuleHash,
        matrix: Vec<Vec<u8>>,
        ops: Vec<String>,
    }
    let it: Item = serde_json::from_value(item.value.clone()).map_err(|e| {
        StageError::Failed(format!(
            "item {} is not a network (`hash`, `matrix`, `ops`): {e}",
            item.index
        ))
    })?;
    let cell = cell_from(&it.matrix, &it.ops)?;
    let h = module_hash(&cell);
    if h != it.hash {
        return Err(StageError::Failed(format!(
            "item {}: the cell hashes to {h}, not {}",
            item.index, it.hash
        )));
    }
    Ok((h, cell))
}

/// Writes pretty JSON.
pub fn write_json(path: &std::path::Path, v: &impl Serialize) -> Result<(), StageError> {
    let text = serde_json::to_string_pretty(v).expect("serializable") + "\n";
    std::fs::write(path, text).map_err(|e| StageError::io(path, e))
}

/// Writes one JSON value a line (JSON Lines).
pub fn write_jsonl<T: Serialize>(
    path: &std::path::Path,
    values: impl IntoIterator<Item = T>,
) -> Result<(), StageError> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| StageError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    for v in values {
        serde_json::to_writer(&mut w, &v).map_err(|e| StageError::io(path, e.into()))?;
        w.write_all(b"\n").map_err(|e| StageError::io(path, e))?;
    }
    w.flush().map_err(|e| StageError::io(path, e))
}

/// Reads JSON.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Result<T, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))
}
