//! What train-vae trains and evaluates on, stacked into tensors: the unlabeled cells (sample's
//! outputs), the labeled networks and sets (preprocess's), and the pictures the sets refer to.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tch::{Kind, Tensor};

use nasflow_contract::layout::SUMMARY;
use nasflow_stages::files::read_json;
use nasflow_stages::nb101::ModuleHash;
use nasflow_stages::space::{Arch, CellList, SearchSpace};
use nasflow_stages::train_vae::{TrainVaeParams, Variant};
use nasflow_stages::{images, StageContext, StageError};

use crate::device::torch_err;
use crate::train::to_tensor;

/// (ops B x nodes x labels, adj B x nodes x nodes) of `space`'s cells, stacked (NB101: 7 x 5,
/// NB201: 8 x 7).
pub fn encode_cells<'a>(
    space: SearchSpace,
    cells: impl Iterator<Item = &'a Arch>,
) -> (Tensor, Tensor) {
    let (nodes, labels) = space.graph_size();
    let (mut ops, mut adj) = (Vec::new(), Vec::new());
    let mut n = 0i64;
    for c in cells {
        c.push_graph(&mut ops, &mut adj);
        n += 1;
    }
    let (nodes, labels) = (nodes as i64, labels as i64);
    (
        Tensor::from_slice(&ops).view([n, nodes, labels]),
        Tensor::from_slice(&adj).view([n, nodes, nodes]),
    )
}

/// A labeled set: targets, the network of each row, the picture of each row.
pub struct Labeled {
    pub targets: Tensor,
    pub network: Tensor,
    pub image: Tensor,
}

/// A labeled network of preprocess's `networks.jsonl`.
pub struct Network {
    pub hash: ModuleHash,
    pub cell: Arch,
    pub split: String,
}

/// Everything train-vae trains and evaluates on.
pub struct Data {
    pub space: SearchSpace,
    pub unl_train: CellList,
    pub unl_valid: CellList,
    /// Unlabeled train cells (limited) and validation cells, encoded.
    pub tr: (Tensor, Tensor),
    pub va: (Tensor, Tensor),
    /// The labeled networks (`networks.jsonl` order), encoded; and the validation networks alone.
    pub nets: Vec<Network>,
    pub net: (Tensor, Tensor),
    pub valid_nets: (Tensor, Tensor),
    pub n_train_nets: usize,
    pub sets: BTreeMap<&'static str, Labeled>,
    /// preprocess's summary (each set's mean baselines).
    pub summary: Value,
    /// The seen and unseen pictures (io variant only), normalised.
    pub seen_px: Tensor,
    pub unseen_px: Tensor,
}

fn take(m: &mut BTreeMap<String, Tensor>, name: &str) -> Result<Tensor, StageError> {
    m.remove(name).ok_or_else(|| {
        StageError::Failed(format!(
            "io.safetensors has no `{name}` (is it preprocess's output?)"
        ))
    })
}

impl Data {
    pub fn load(ctx: &StageContext<TrainVaeParams>) -> Result<Data, StageError> {
        let sample = ctx.input("sample")?;
        let read = |stem: &str| {
            CellList::find(sample, stem)
                .and_then(|path| CellList::read(&path))
                .map_err(|e| StageError::Failed(e.to_string()))
        };
        let (unl_train, unl_valid) = (read("unlabeled-train")?, read("unlabeled-valid")?);
        let space = unl_train.space();
        let limit = match ctx.params.unlabeled_limit {
            0 => unl_train.len(),
            n => n.min(unl_train.len()),
        };
        let tr = encode_cells(space, unl_train.entries()[..limit].iter().map(|e| &e.1));
        let va = encode_cells(space, unl_valid.entries().iter().map(|e| &e.1));
        let pre = ctx.input("preprocess")?;
        let nets = read_networks(&pre.join("networks.jsonl"))?;
        if let Some(n) = nets.iter().find(|n| n.cell.space() != space) {
            return Err(StageError::Config(format!(
                "stage `{}`: network {} is {} but sample's cells are {} (pretrain and sample must work in one space)",
                ctx.stage,
                n.hash,
                n.cell.space().name(),
                space.name()
            )));
        }
        let net = encode_cells(space, nets.iter().map(|n| &n.cell));
        let valid_nets = encode_cells(
            space,
            nets.iter().filter(|n| n.split == "valid").map(|n| &n.cell),
        );
        let n_train_nets = nets.iter().filter(|n| n.split == "train").count();
        let mut io_t: BTreeMap<String, Tensor> =
            Tensor::read_safetensors(pre.join("io.safetensors"))
                .map_err(torch_err)?
                .into_iter()
                .collect();
        let summary: Value = read_json(&pre.join(SUMMARY))?;
        let mut sets = BTreeMap::new();
        for name in nasflow_stages::preprocess::SETS {
            let labeled = Labeled {
                targets: take(&mut io_t, &format!("{name}_targets"))?,
                network: take(&mut io_t, &format!("{name}_network"))?,
                image: take(&mut io_t, &format!("{name}_image"))?,
            };
            sets.insert(name, labeled);
        }
        let (seen_px, unseen_px) = pictures(ctx, &mut io_t)?;
        Ok(Data {
            space,
            unl_train,
            unl_valid,
            tr,
            va,
            nets,
            net,
            valid_nets,
            n_train_nets,
            sets,
            summary,
            seen_px,
            unseen_px,
        })
    }

    /// Rows of the unlabeled train cells and of the labeled train set.
    pub fn sizes(&self) -> (i64, i64) {
        (self.tr.0.size()[0], self.sets["train"].targets.size()[0])
    }

    /// Every cell with a latent feature: unlabeled train, unlabeled validation, labeled (NB101:
    /// sorted by hash, once each; NB201: in that order).
    pub fn all_cells(&self) -> CellList {
        let all = (self.unl_train.entries().iter())
            .chain(self.unl_valid.entries())
            .copied()
            .chain(self.nets.iter().map(|n| (n.hash, n.cell)));
        CellList::from_entries(self.space, all.collect())
    }
}

/// The labeled networks of `networks.jsonl` (each line an item's cell fields and its split).
fn read_networks(path: &Path) -> Result<Vec<Network>, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    let mut nets = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |e: String| StageError::Failed(format!("{} line {}: {e}", path.display(), i + 1));
        let v: Value = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
        let cell = Arch::from_fields(&v).map_err(|e| bad(e.to_string()))?;
        let split = v["split"]
            .as_str()
            .ok_or_else(|| bad("no `split`".into()))?
            .to_string();
        nets.push(Network {
            hash: cell.hash(),
            cell,
            split,
        });
    }
    Ok(nets)
}

/// The pictures, as pretrain and extract saw them (io variant; empty otherwise). They follow the
/// pipeline's seed, not train-vae's own.
fn pictures(
    ctx: &StageContext<TrainVaeParams>,
    io_t: &mut BTreeMap<String, Tensor>,
) -> Result<(Tensor, Tensor), StageError> {
    let seen_indices = Vec::<i64>::try_from(take(io_t, "seen_indices")?).map_err(torch_err)?;
    let unseen_indices = Vec::<i64>::try_from(take(io_t, "unseen_indices")?).map_err(torch_err)?;
    let cpu = tch::Device::Cpu;
    if ctx.params.variant != Variant::Io {
        let empty = || Tensor::zeros([0], (Kind::Float, cpu));
        return Ok((empty(), empty()));
    }
    let p = crate::image_cache::prepared(&ctx.params.images, seen_indices.len(), ctx.seed)?;
    if p.held_idx.iter().map(|&i| i as i64).collect::<Vec<_>>() != seen_indices {
        return Err(StageError::Config(format!(
            "stage `{}`: the images differ from the ones extract used: set the same `images` and seed",
            ctx.stage
        )));
    }
    let unseen: Vec<usize> = unseen_indices.iter().map(|&i| i as usize).collect();
    Ok((
        to_tensor(&p.held_pixels, cpu),
        to_tensor(&images::batch(&p.data.test, &unseen, None), cpu),
    ))
}
