//! The latent features of every cell at every checkpoint: the mean over the nodes of the
//! encoder mean (eval mode), one tensor per model and checkpoint.
use std::path::Path;

use tch::{Kind, Tensor};

use nasflow_stages::files::write_json;
use nasflow_stages::space::CellList;
use nasflow_stages::train_vae::{latent_tensor, LatentIndex, Model};
use nasflow_stages::StageError;

use super::data::{encode_cells, Data};
use crate::arch2vec::Vae;
use crate::device::torch_err;

/// Cells per encoder batch.
const CHUNK: i64 = 8192;

/// The cells with features (sorted by hash) and the features gathered so far.
pub struct Latents {
    cells: CellList,
    ops: Tensor,
    adj: Tensor,
    features: Vec<(String, Tensor)>,
    index: LatentIndex,
}

impl Latents {
    pub fn new(d: &Data, models: Vec<Model>) -> Latents {
        let cells = d.all_cells();
        let (ops, adj) = encode_cells(cells.space(), cells.entries().iter().map(|e| &e.1));
        let index = LatentIndex {
            models,
            checkpoints: Vec::new(),
            dim: 0,
            cells: cells.len(),
        };
        Latents {
            cells,
            ops,
            adj,
            features: Vec::new(),
            index,
        }
    }

    /// Encodes every cell with `vae` as `model`'s features at `epoch`.
    pub fn add(&mut self, model: Model, epoch: usize, vae: &Vae, dev: tch::Device) {
        let _guard = tch::no_grad_guard();
        let n = self.ops.size()[0];
        let mut parts = Vec::new();
        for s in (0..n).step_by(CHUNK as usize) {
            let len = CHUNK.min(n - s);
            let (mu, _) = vae.encode(
                &self.ops.narrow(0, s, len).to_device(dev),
                &self.adj.narrow(0, s, len).to_device(dev),
                false,
            );
            parts.push(
                mu.mean_dim(1, false, Kind::Float)
                    .to_device(tch::Device::Cpu),
            );
        }
        self.index.dim = vae.latent() as usize;
        if !self.index.checkpoints.contains(&epoch) {
            self.index.checkpoints.push(epoch);
        }
        self.features
            .push((latent_tensor(model, epoch), Tensor::cat(&parts, 0)));
    }

    /// `latent-cells.nb101` (or `.nb201`), `latent.safetensors` and `latent.json`.
    pub fn write(&self, out: &Path) -> Result<(), StageError> {
        let cells_path = out.join(format!("latent-cells.{}", self.cells.extension()));
        self.cells
            .write(&cells_path)
            .map_err(|e| StageError::io(&cells_path, e))?;
        let mut named: Vec<(&str, &Tensor)> =
            self.features.iter().map(|(k, t)| (k.as_str(), t)).collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        Tensor::write_safetensors(&named, out.join("latent.safetensors")).map_err(torch_err)?;
        write_json(&out.join("latent.json"), &self.index)
    }
}
