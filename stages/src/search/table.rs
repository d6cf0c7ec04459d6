//! The searchable table of `reinforce` and `predict`: per cell its latent feature (train-vae's
//! `latent.safetensors`) and its measured figures (a benchmark table, or the networks pretrained
//! in this pipeline). Cells without a feature or without figures are not searchable.
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use nasflow_contract::layout::{item_dir, ITEMS_LIST};
use nasflow_contract::{Keywords, PathOr, StageContext, StageError};

use crate::nb101::tables::{Table, EMBEDDED_10K};
use crate::nb101::ModuleHash;
use crate::nb201;
use crate::pretrain::NetworkInfo;
use crate::space::{Arch, CellList, SearchSpace};
use crate::train_vae::{latent_tensor, LatentIndex, Model};

/// The `table` param's keyword for the networks pretrained in this pipeline.
pub const PRETRAINED: &str = "pretrained";

// (The `pretrained` table: held-out accuracy as validation, test accuracy as test, and
// [`simulated_seconds`] as the cost.)

/// The keywords of a `table` param.
pub struct TableKeywords;

impl Keywords for TableKeywords {
    const KEYWORDS: &'static [&'static str] = &[PRETRAINED, EMBEDDED_10K, nb201::table::EMBEDDED];
}

/// A `table` param: `"pretrained"`, `"nb101-10k"` or `"nb201"` (tables built into nasflow) or
/// an NB101 table file.
pub type TableSource = PathOr<TableKeywords>;

/// Which of train-vae's latent features a search or a prediction uses (the `features` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// the model of train-vae's variant (io, arch2vec or original)
    #[default]
    Main,
    /// the io model's VAE (variant "io")
    Io,
    /// the reference VAE trained alongside the io model (variant "io")
    Reference,
    /// the plain VAE trained alone (variant "arch2vec")
    Arch2vec,
    /// arch2vec's original training (variant "arch2vec-original")
    Original,
}

impl Features {
    /// The name the `features` param uses.
    pub fn name(self) -> &'static str {
        match self {
            Features::Main => "main",
            Features::Io => "io",
            Features::Reference => "reference",
            Features::Arch2vec => "arch2vec",
            Features::Original => "original",
        }
    }
    fn model(self) -> Option<Model> {
        match self {
            Features::Main => None,
            Features::Io => Some(Model::Io),
            Features::Reference => Some(Model::Reference),
            Features::Arch2vec => Some(Model::Arch2vec),
            Features::Original => Some(Model::Original),
        }
    }
}

/// The latent features to read: from which dependency (a train-vae stage), which model's, at
/// which checkpoint (0: the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatentChoice {
    pub vae: String,
    pub features: Features,
    pub checkpoint: usize,
}

/// The latent choices of a `features` list (with `vae` and `checkpoint`), each with its label:
/// "" when the list has one entry (results keep their plain names), else the feature set's
/// name. A config error when the list is empty or names a set twice.
pub fn latent_choices(
    vae: &str,
    features: &[Features],
    checkpoint: usize,
) -> Result<Vec<(String, LatentChoice)>, StageError> {
    if features.is_empty() {
        return Err(StageError::Config(
            "features is empty: name at least one feature set, e.g. [\"main\"]".into(),
        ));
    }
    let mut out: Vec<(String, LatentChoice)> = Vec::new();
    for &f in features {
        if out.iter().any(|(_, c)| c.features == f) {
            return Err(StageError::Config(format!(
                "features names \"{}\" twice: list each feature set once",
                f.name()
            )));
        }
        let label = if features.len() == 1 { "" } else { f.name() };
        let choice = LatentChoice {
            vae: vae.to_string(),
            features: f,
            checkpoint,
        };
        out.push((label.to_string(), choice));
    }
    Ok(out)
}

/// Searchable cells in the table's order.
#[derive(Clone, Debug, Default)]
pub struct Searchable {
    /// Each cell's id ([`Arch::id`]: NB101's module hash).
    pub hashes: Vec<ModuleHash>,
    pub cells: Vec<Arch>,
    /// Row-major, `len() x dim`.
    pub features: Vec<f32>,
    pub dim: usize,
    pub valid: Vec<f64>,
    /// Test accuracy, where the table has it.
    pub test: Vec<Option<f64>>,
    /// Training seconds: the simulated cost of a query.
    pub cost: Vec<f64>,
    /// Whether the cell is one of the labeled training networks (split = "train").
    pub labeled_train: Vec<bool>,
    /// Extra per-cell features (predict's zero-cost proxies); empty unless loaded.
    pub zero_cost: Vec<Vec<f64>>,
    /// What the table was: "pretrained" or the table file.
    pub source: String,
    /// The latent features used: `MODEL/epoch-E`.
    pub latent: String,
    /// Table rows left out: no latent feature, or missing figures.
    pub without_feature: usize,
    pub without_figures: usize,
}

/// One table row before the join: id, validation, test, cost.
type Figures = (ModuleHash, Option<f64>, Option<f64>, Option<f64>);

impl Searchable {
    pub fn len(&self) -> usize {
        self.hashes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
    pub fn feature(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// The cells at positions `keep`, in that order (the counts of rows left out stay).
    pub fn keep(&self, keep: &[usize]) -> Searchable {
        Searchable {
            hashes: keep.iter().map(|&i| self.hashes[i]).collect(),
            cells: keep.iter().map(|&i| self.cells[i]).collect(),
            features: keep
                .iter()
                .flat_map(|&i| self.feature(i).to_vec())
                .collect(),
            dim: self.dim,
            valid: keep.iter().map(|&i| self.valid[i]).collect(),
            test: keep.iter().map(|&i| self.test[i]).collect(),
            cost: keep.iter().map(|&i| self.cost[i]).collect(),
            labeled_train: keep.iter().map(|&i| self.labeled_train[i]).collect(),
            zero_cost: match self.zero_cost.is_empty() {
                true => Vec::new(),
                false => keep.iter().map(|&i| self.zero_cost[i].clone()).collect(),
            },
            source: self.source.clone(),
            latent: self.latent.clone(),
            without_feature: self.without_feature,
            without_figures: self.without_figures,
        }
    }
    /// The space of its cells (NB101 when empty).
    pub fn space(&self) -> SearchSpace {
        self.cells.first().map_or(SearchSpace::Nb101, Arch::space)
    }

    /// The best validation accuracy and the best test accuracy (where any) in the table.
    pub fn best(&self) -> (f64, Option<f64>) {
        let v = self.valid.iter().copied().fold(f64::MIN, f64::max);
        let t = self.test.iter().flatten().copied().reduce(f64::max);
        (v, t)
    }

    /// One table per latent choice ([`latent_choices`]), with its label: the same rows (the
    /// table and the labeled networks read once), each with its own features.
    pub fn load_each<P>(
        ctx: &StageContext<P>,
        table: &TableSource,
        choices: Vec<(String, LatentChoice)>,
    ) -> Result<Vec<(String, Searchable)>, StageError> {
        let vaes = (choices.iter())
            .map(|(_, c)| {
                ctx.inputs.get(&c.vae).ok_or_else(|| {
                    StageError::Config(format!(
                        "stage `{}`: vae = \"{}\" is not among its deps: add it to deps, or name the train-vae dep in `vae`",
                        ctx.stage, c.vae
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (rows, source, train) = table_rows(ctx, table)?;
        let mut out: Vec<(String, Searchable)> = Vec::new();
        for ((label, choice), vae) in choices.into_iter().zip(vaes) {
            let (cells, features, dim, latent) =
                read_latent(vae, &choice).map_err(|e| match e {
                    StageError::Config(m) => {
                        StageError::Config(format!("stage `{}`: {m}", ctx.stage))
                    }
                    e => e,
                })?;
            let mut t = join(rows.clone(), &cells, &features, dim, &train, source.clone());
            t.latent = latent;
            if let Some((first, t0)) = out.first() {
                if t0.hashes != t.hashes {
                    return Err(StageError::Failed(format!(
                        "stage `{}`: the {label} features cover other cells than the {first} features: both must come from one train-vae run",
                        ctx.stage
                    )));
                }
            }
            out.push((label, t));
        }
        Ok(out)
    }

    /// Loads the searchable table of a `reinforce` or `predict` run: features from the
    /// `train-vae` input, figures per the `table` param, labeled networks from the `pretrain`
    /// (or `sample`) input's `items.jsonl`.
    pub fn load<P>(
        ctx: &StageContext<P>,
        table: &TableSource,
        choice: LatentChoice,
    ) -> Result<Searchable, StageError> {
        let mut one = Searchable::load_each(ctx, table, vec![(String::new(), choice)])?;
        Ok(one.remove(0).1)
    }
}

/// The table's rows per the `table` param, where they came from, and the labeled training
/// networks (from the `pretrain`, or `sample`, input's `items.jsonl`).
fn table_rows<P>(
    ctx: &StageContext<P>,
    table: &TableSource,
) -> Result<(Vec<Figures>, String, std::collections::HashSet<ModuleHash>), StageError> {
    let labeled_dir = ctx
        .inputs
        .get("pretrain")
        .or_else(|| ctx.inputs.get("sample"));
    let labeled = match labeled_dir {
        Some(d) => read_items(&d.join(ITEMS_LIST))?,
        None => Vec::new(),
    };
    let (rows, source) = if table.keyword() == Some(nb201::table::EMBEDDED) {
        (nb201_rows()?, table.as_str().to_string())
    } else if table.path().is_some() || table.keyword() == Some(EMBEDDED_10K) {
        let t = Table::open(table.as_str()).map_err(|e| StageError::Failed(e.to_string()))?;
        let rows = t
            .rows()
            .iter()
            .map(|r| {
                (
                    r.hash,
                    r.figures.validation_accuracy,
                    r.figures.test_accuracy,
                    r.figures.training_time,
                )
            })
            .collect();
        (rows, table.as_str().to_string())
    } else if table.keyword().is_none() {
        return Err(StageError::Config(format!(
            "stage `{}`: `table` is empty: name an NB101 table file or \"pretrained\"",
            ctx.stage
        )));
    } else {
        let dir = ctx.inputs.get("pretrain").ok_or_else(|| {
            StageError::Config(format!(
                "stage `{}`: table = \"pretrained\" needs the pretrain stage in deps (or name an NB101 table file)",
                ctx.stage
            ))
        })?;
        (pretrained_rows(dir, &labeled)?, PRETRAINED.to_string())
    };
    let train = labeled
        .iter()
        .filter(|(_, split)| split == "train")
        .map(|(h, _)| *h)
        .collect();
    Ok((rows, source, train))
}

/// NB201's built-in table: the 200-epoch validation accuracy (as a fraction), no test accuracy
/// at that budget, and as cost the simulated seconds of training the network on
/// [`NB201_TRAIN_IMAGES`] for [`NB201_EPOCHS`] ([`simulated_seconds`] of its multiply-accumulates):
/// the table has no training times.
fn nb201_rows() -> Result<Vec<Figures>, StageError> {
    let t = nb201::table::Table::embedded().map_err(|e| StageError::Failed(e.to_string()))?;
    let sk = nb201::params::NB201;
    Ok(t.rows()
        .iter()
        .map(|r| {
            let macs = nb201::params::multiply_accumulates(&r.cell, &sk, 32);
            let cost = simulated_seconds(macs, NB201_TRAIN_IMAGES, NB201_EPOCHS);
            (
                Arch::Nb201(r.cell).id(),
                Some(r.valid_acc / 100.0),
                None,
                Some(cost),
            )
        })
        .collect())
}

/// NB201's `cifar10-valid` training: 25,000 images, 200 epochs.
pub const NB201_TRAIN_IMAGES: u64 = 25_000;
pub const NB201_EPOCHS: u64 = 200;

/// Joins table rows with the latent features (by id); keeps the rows' order.
pub fn join(
    rows: Vec<Figures>,
    space: &CellList,
    features: &[f32],
    dim: usize,
    train: &std::collections::HashSet<ModuleHash>,
    source: String,
) -> Searchable {
    let mut s = Searchable {
        dim,
        source,
        ..Searchable::default()
    };
    let position: std::collections::HashMap<ModuleHash, usize> = space
        .ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    for (hash, valid, test, cost) in rows {
        let Some(&pos) = position.get(&hash) else {
            s.without_feature += 1;
            continue;
        };
        let (Some(valid), Some(cost)) = (valid, cost) else {
            s.without_figures += 1;
            continue;
        };
        s.hashes.push(hash);
        s.cells.push(space.entries()[pos].1);
        s.features
            .extend_from_slice(&features[pos * dim..(pos + 1) * dim]);
        s.valid.push(valid);
        s.test.push(test);
        s.cost.push(cost);
        s.labeled_train.push(train.contains(&hash));
    }
    s
}

/// The labeled networks of an `items.jsonl`: each cell's id and its split.
pub fn read_items(path: &Path) -> Result<Vec<(ModuleHash, String)>, StageError> {
    Ok(read_item_cells(path)?
        .into_iter()
        .map(|(arch, split)| (arch.id(), split))
        .collect())
}

/// The labeled networks of an `items.jsonl`: each cell and its split.
pub fn read_item_cells(path: &Path) -> Result<Vec<(Arch, String)>, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad =
            |what: &str| StageError::Failed(format!("{} line {}: {what}", path.display(), i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&format!("bad JSON: {e}")))?;
        let arch = Arch::from_fields(&v).map_err(|e| bad(&e.to_string()))?;
        out.push((arch, v["split"].as_str().unwrap_or("").to_string()));
    }
    Ok(out)
}

/// The pretrained networks' figures: the last epoch's held-out accuracy (validation), the test
/// accuracy, and the simulated training seconds (cost) from each item's `metrics.json` and
/// `network.json`.
fn pretrained_rows(dir: &Path, items: &[(ModuleHash, String)]) -> Result<Vec<Figures>, StageError> {
    let mut rows = Vec::new();
    for (k, (hash, _)) in items.iter().enumerate() {
        let item = dir.join(item_dir(k));
        let path = item.join("metrics.json");
        let m: Value = crate::files::read_json(&path)?;
        let net: NetworkInfo = crate::files::read_json(&item.join("network.json"))?;
        let epochs = m["epochs"].as_array().cloned().unwrap_or_default();
        let valid = epochs.last().and_then(|e| e["held_out_accuracy"].as_f64());
        if valid.is_none() {
            return Err(StageError::Failed(format!(
                "{}: no epochs with `held_out_accuracy` (is it pretrain's output?)",
                path.display()
            )));
        }
        let images = m["train_images"].as_u64().unwrap_or(0);
        let cost = simulated_seconds(net.multiply_accumulates, images, epochs.len() as u64);
        rows.push((*hash, valid, m["test_accuracy"].as_f64(), Some(cost)));
    }
    Ok(rows)
}

/// Multiply-accumulates a nominal device does per second: the `pretrained` table's cost is the
/// training's multiply-accumulates (forward, x3 for the backward pass) over this, so that it is a
/// function of the network and its training, not of how loaded the machine was.
pub const NOMINAL_MACS_PER_SECOND: f64 = 1e12;

/// Simulated seconds of training a network with `macs` per image on `images` for `epochs`.
pub fn simulated_seconds(macs: u64, images: u64, epochs: u64) -> f64 {
    3.0 * macs as f64 * images as f64 * epochs as f64 / NOMINAL_MACS_PER_SECOND
}

/// train-vae's latent features of `choice`: the cells (`latent-cells.nb101` or `.nb201`), the features
/// (cells x dim, f32, from `latent.safetensors` as `latent.json` indexes it), the dim, and the
/// tensor's name.
pub fn read_latent(
    dir: &Path,
    choice: &LatentChoice,
) -> Result<(CellList, Vec<f32>, usize, String), StageError> {
    let index: LatentIndex = crate::files::read_json(&dir.join("latent.json"))?;
    let name = pick_latent(&index, choice)?;
    let space = CellList::find(dir, "latent-cells")
        .and_then(|path| CellList::read(&path))
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let path = dir.join("latent.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| StageError::io(&path, e))?;
    let bad = |what: String| {
        StageError::Failed(format!(
            "{}: {what} (is it train-vae's output?)",
            path.display()
        ))
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let t = st
        .tensor(&name)
        .map_err(|_| bad(format!("no tensor `{name}`")))?;
    let shape = t.shape();
    if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != space.len() {
        return Err(bad(format!(
            "`{name}` must be f32 of shape [{}, dim], not {:?} {:?}",
            space.len(),
            t.dtype(),
            shape
        )));
    }
    let features: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((space, features, shape[1], name))
}

/// The tensor name of `choice` in train-vae's output, or a config error naming what there is.
pub fn pick_latent(index: &LatentIndex, choice: &LatentChoice) -> Result<String, StageError> {
    let names: Vec<&str> = index.models.iter().map(|m| m.name()).collect();
    let model = match choice.features.model() {
        None => *index.models.first().ok_or_else(|| {
            StageError::Failed("train-vae's latent.json lists no models".into())
        })?,
        Some(m) if index.models.contains(&m) => m,
        Some(m) => {
            return Err(StageError::Config(format!(
                "features = \"{}\" but train-vae trained {} (the reference comes with variant = \"io\", arch2vec with \"arch2vec\", original with \"arch2vec-original\")",
                m.name(),
                names.join(", ")
            )))
        }
    };
    let epoch = match choice.checkpoint {
        0 => *index.checkpoints.last().ok_or_else(|| {
            StageError::Failed("train-vae's latent.json lists no checkpoints".into())
        })?,
        e if index.checkpoints.contains(&e) => e,
        e => {
            return Err(StageError::Config(format!(
                "checkpoint = {e} but train-vae has features at epochs {:?}: pick one of them (0: the last), or add {e} to train-vae's checkpoints",
                index.checkpoints
            )))
        }
    };
    Ok(latent_tensor(model, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_choice_names_the_tensor_or_says_what_there_is() {
        let index = LatentIndex {
            models: vec![Model::Io, Model::Reference],
            checkpoints: vec![1, 2],
            dim: 16,
            cells: 10,
        };
        let pick = |features, checkpoint| {
            pick_latent(
                &index,
                &LatentChoice {
                    vae: String::new(),
                    features,
                    checkpoint,
                },
            )
        };
        assert_eq!(pick(Features::Main, 0).unwrap(), "io/epoch-2");
        assert_eq!(pick(Features::Reference, 1).unwrap(), "reference/epoch-1");
        let e = pick(Features::Original, 0).unwrap_err().to_string();
        assert!(
            e.contains("io, reference") && e.contains("arch2vec-original"),
            "{e}"
        );
        let e = pick(Features::Io, 3).unwrap_err().to_string();
        assert!(e.contains("[1, 2]") && e.contains("add 3"), "{e}");
    }

    #[test]
    fn simulated_cost_is_macs_times_images_times_epochs() {
        // 1e9 MACs per image, 1e3 images, 2 epochs, x3 for the backward pass, at 1e12 per second.
        assert_eq!(simulated_seconds(1_000_000_000, 1000, 2), 6.0);
    }
}
