//! The searchable table of `reinforce` and `predict`: per cell its latent feature (train-vae's
//! `latent.safetensors`) and its measured figures (a benchmark table, or the networks pretrained
//! in this pipeline). Cells without a feature or without figures are not searchable.
use std::path::Path;

use serde_json::Value;

use nasflow_contract::layout::{item_dir, ITEMS_LIST};
use nasflow_contract::{Keywords, PathOr, StageContext, StageError};

use crate::nb101::tables::Table;
use crate::nb101::{Cell, ModuleHash, Space};

/// The `table` param's keyword for the networks pretrained in this pipeline.
pub const PRETRAINED: &str = "pretrained";

/// The keywords of a `table` param.
pub struct Pretrained;

impl Keywords for Pretrained {
    const KEYWORDS: &'static [&'static str] = &[PRETRAINED];
}

/// A `table` param: `"pretrained"` or an NB101 table file.
pub type TableSource = PathOr<Pretrained>;

/// Searchable cells in the table's order.
#[derive(Clone, Debug, Default)]
pub struct Searchable {
    pub hashes: Vec<ModuleHash>,
    pub cells: Vec<Cell>,
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
    /// What the table was: "pretrained" or the table file.
    pub source: String,
    /// Table rows left out: no latent feature, or missing figures.
    pub without_feature: usize,
    pub without_figures: usize,
}

/// One table row before the join: hash, validation, test, cost.
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
    /// The best validation accuracy and the best test accuracy (where any) in the table.
    pub fn best(&self) -> (f64, Option<f64>) {
        let v = self.valid.iter().copied().fold(f64::MIN, f64::max);
        let t = self.test.iter().flatten().copied().reduce(f64::max);
        (v, t)
    }

    /// Loads the searchable table of a `reinforce` or `predict` run: features from the
    /// `train-vae` input, figures per the `table` param, labeled networks from the `pretrain`
    /// (or `sample`) input's `items.jsonl`.
    pub fn load<P>(ctx: &StageContext<P>, table: &TableSource) -> Result<Searchable, StageError> {
        let vae = ctx.input("train-vae")?;
        let labeled_dir = ctx
            .inputs
            .get("pretrain")
            .or_else(|| ctx.inputs.get("sample"));
        let labeled = match labeled_dir {
            Some(d) => read_items(&d.join(ITEMS_LIST))?,
            None => Vec::new(),
        };
        let (rows, source) = if let Some(path) = table.path() {
            let t = Table::load(path).map_err(|e| StageError::Failed(e.to_string()))?;
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
            (rows, path.display().to_string())
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
        let (cells, features, dim) = read_latent(vae)?;
        let train: std::collections::HashSet<ModuleHash> = labeled
            .iter()
            .filter(|(_, split)| split == "train")
            .map(|(h, _)| *h)
            .collect();
        Ok(join(rows, &cells, &features, dim, &train, source))
    }
}

/// Joins table rows with the latent features (by hash); keeps the rows' order.
pub fn join(
    rows: Vec<Figures>,
    space: &Space,
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
    for (hash, valid, test, cost) in rows {
        let Some(pos) = space.position(&hash) else {
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

fn read_items(path: &Path) -> Result<Vec<(ModuleHash, String)>, StageError> {
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
        let hash = v["hash"]
            .as_str()
            .and_then(|h| h.parse::<ModuleHash>().ok())
            .ok_or_else(|| bad("no valid `hash`"))?;
        out.push((hash, v["split"].as_str().unwrap_or("").to_string()));
    }
    Ok(out)
}

/// The pretrained networks' figures: the last epoch's held-out accuracy (validation), the test
/// accuracy, and the summed epoch seconds (cost), from each item's `metrics.json`.
fn pretrained_rows(dir: &Path, items: &[(ModuleHash, String)]) -> Result<Vec<Figures>, StageError> {
    let mut rows = Vec::new();
    for (k, (hash, _)) in items.iter().enumerate() {
        let path = dir.join(item_dir(k)).join("metrics.json");
        let m: Value = crate::files::read_json(&path)?;
        let epochs = m["epochs"].as_array().cloned().unwrap_or_default();
        let valid = epochs.last().and_then(|e| e["held_out_accuracy"].as_f64());
        let cost: f64 = epochs.iter().filter_map(|e| e["seconds"].as_f64()).sum();
        if valid.is_none() {
            return Err(StageError::Failed(format!(
                "{}: no epochs with `held_out_accuracy` (is it pretrain's output?)",
                path.display()
            )));
        }
        rows.push((*hash, valid, m["test_accuracy"].as_f64(), Some(cost)));
    }
    Ok(rows)
}

/// train-vae's latent features: the cells (`latent-cells.nb101`) and `features` (cells x dim, f32)
/// of `latent.safetensors`.
pub fn read_latent(dir: &Path) -> Result<(Space, Vec<f32>, usize), StageError> {
    let cells_path = dir.join("latent-cells.nb101");
    let space = Space::read(&cells_path).map_err(|e| StageError::Failed(e.to_string()))?;
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
        .tensor("features")
        .map_err(|_| bad("no tensor `features`".into()))?;
    let shape = t.shape();
    if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != space.len() {
        return Err(bad(format!(
            "`features` must be f32 of shape [{}, dim], not {:?} {:?}",
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
    Ok((space, features, shape[1]))
}
