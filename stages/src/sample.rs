//! The `sample` stage: the cells the pipeline works on.
//!
//! 1. The universe: the whole NB101 space (enumerated, or read from a `space` file), in hash
//!    order, or with `order = "table"` in the benchmark table's order (NB101's tfrecord order,
//!    which arch2vec's split follows), cells missing from the table last.
//! 2. With `cells > 0`, a seeded subsample of that many cells, kept in universe order.
//! 3. The split, as arch2vec's `get_nasbench_datasets`: by index, the first
//!    `floor((1 - valid_fraction) * N)` cells are train, the rest validation.
//! 4. The labeled networks: `train_nets` drawn from the train part and `valid_nets` from the
//!    validation part, seeded, without replacement, and removed from the unlabeled sets (info-NAS's
//!    `_sync_labeled_unlabeled(remove_labeled=True)`; the paper pretrained 608 + 77).
//!
//! Outputs:
//! - `items.jsonl`: the labeled networks, train first, one `{"hash", "matrix", "ops", "split"}`
//!   a line (matrix as rows, ops as NB101 names, in NB101's stored vertex order); the
//!   `pretrain` stage runs once per line;
//! - `unlabeled-train.nb101`, `unlabeled-valid.nb101`: the unlabeled cells of each part, in the
//!   binary space format (`nasflow nb101 enumerate` documents it), sorted by hash;
//! - `figures.jsonl` (only with a `table`): `{"hash", "split", "labeled", figures...}` for every
//!   sampled cell the table has;
//! - `summary.json`: the counts and the settings.
//!
//! Draws use ChaCha8 seeded with the pipeline seed, one stream per draw (0 subsample, 1 train
//! nets, 2 validation nets), and rand's `index::sample`; the versions are pinned by Cargo.lock.
use std::collections::HashSet;

use serde_json::{json, Value};

use crate::api::{KindSpec, ParamSpec, ParamType, StageContext, StageError};
use crate::nb101::{Cell, ModuleHash, Space, Table};
use crate::pretrain::write_jsonl;

pub static SAMPLE: KindSpec = KindSpec {
    name: "sample",
    version: 1,
    doc: "The NB101 cells to work on: the unlabeled set (whole space or a seeded subsample), its train/validation split, and the labeled networks to pretrain",
    params: &[
        ParamSpec { name: "cells", ty: ParamType::Int, default: Some("0"), doc: "size of a seeded subsample of the space (0: all 423,624 cells)" },
        ParamSpec { name: "valid_fraction", ty: ParamType::Float, default: Some("0.1"), doc: "the last fraction of the (ordered) cells forms the validation part" },
        ParamSpec { name: "train_nets", ty: ParamType::Int, default: Some("608"), doc: "labeled networks drawn from the train part (paper: 608)" },
        ParamSpec { name: "valid_nets", ty: ParamType::Int, default: Some("77"), doc: "labeled networks drawn from the validation part (paper: 77)" },
        ParamSpec { name: "table", ty: ParamType::Path, default: Some("\"\""), doc: "NB101 benchmark table (*.tfrecord, arch2vec data.json, *.jsonl) to join; \"\" for none" },
        ParamSpec { name: "order", ty: ParamType::Str, default: Some("\"hash\""), doc: "universe order before the split: \"hash\" or \"table\" (the table's order, as arch2vec splits)" },
        ParamSpec { name: "space", ty: ParamType::Path, default: Some("\"\""), doc: "an .nb101 space file to read instead of enumerating; \"\" to enumerate" },
    ],
    reads_seed: true,
    uses_device: false,
    item_level: false,
};

/// `amount` of `0..len`, seeded, in increasing order.
fn draw(seed: u64, stream: u64, len: usize, amount: usize) -> Vec<usize> {
    let mut v =
        rand::seq::index::sample(&mut crate::images::rng(seed, stream), len, amount).into_vec();
    v.sort_unstable();
    v
}

pub fn run(ctx: &StageContext) -> Result<(), StageError> {
    let cells = ctx.count("cells")?;
    let train_nets = ctx.count("train_nets")?;
    let valid_nets = ctx.count("valid_nets")?;
    let valid_fraction = ctx.float("valid_fraction")?;
    if !(0.0..1.0).contains(&valid_fraction) {
        return Err(StageError::Config(format!(
            "stage `{}`: valid_fraction must be in [0, 1), not {valid_fraction}",
            ctx.stage
        )));
    }
    let order = ctx.str("order")?;
    let table = match ctx.path("table")? {
        Some(p) => Some(Table::load(&p).map_err(|e| StageError::Failed(e.to_string()))?),
        None => None,
    };
    let space = match ctx.path("space")? {
        Some(p) => Space::read(&p).map_err(|e| StageError::Failed(e.to_string()))?,
        None => Space::enumerate(),
    };

    // 1. The universe, as indices into the space.
    let mut universe: Vec<usize> = match (order, &table) {
        ("hash", _) => (0..space.len()).collect(),
        ("table", Some(t)) => {
            let (found, _) = t.join(&space);
            let mut seen = vec![false; space.len()];
            let mut u: Vec<usize> = Vec::with_capacity(space.len());
            for (i, _) in found {
                if !std::mem::replace(&mut seen[i], true) {
                    u.push(i);
                }
            }
            u.extend((0..space.len()).filter(|&i| !seen[i]));
            u
        }
        ("table", None) => {
            return Err(StageError::Config(format!(
                "stage `{}`: order = \"table\" needs a `table`",
                ctx.stage
            )))
        }
        (other, _) => {
            return Err(StageError::Config(format!(
                "stage `{}`: order must be \"hash\" or \"table\", not \"{other}\"",
                ctx.stage
            )))
        }
    };
    // 2. Subsample.
    if cells > 0 {
        if cells > universe.len() {
            return Err(StageError::Config(format!(
                "stage `{}`: cells = {cells} but the space has {} (use 0 for all)",
                ctx.stage,
                universe.len()
            )));
        }
        universe = draw(ctx.seed, 0, universe.len(), cells)
            .into_iter()
            .map(|k| universe[k])
            .collect();
    }
    // 3. Split by index.
    let n_train = ((1.0 - valid_fraction) * universe.len() as f64).floor() as usize;
    let (train, valid) = universe.split_at(n_train);
    // 4. Labeled networks.
    for (want, have, name) in [
        (train_nets, train.len(), "train_nets"),
        (valid_nets, valid.len(), "valid_nets"),
    ] {
        if want > have {
            return Err(StageError::Config(format!(
                "stage `{}`: {name} = {want} but that part has only {have} cells (raise `cells` or lower `{name}`)",
                ctx.stage
            )));
        }
    }
    let train_lab: Vec<usize> = draw(ctx.seed, 1, train.len(), train_nets)
        .into_iter()
        .map(|k| train[k])
        .collect();
    let valid_lab: Vec<usize> = draw(ctx.seed, 2, valid.len(), valid_nets)
        .into_iter()
        .map(|k| valid[k])
        .collect();
    let labeled: HashSet<usize> = train_lab.iter().chain(&valid_lab).copied().collect();

    let entries = space.entries();
    let out = ctx.out;
    write_jsonl(
        &out.join("items.jsonl"),
        train_lab
            .iter()
            .map(|&i| ("train", i))
            .chain(valid_lab.iter().map(|&i| ("valid", i)))
            .map(|(split, i)| {
                let (h, c) = &entries[i];
                item_json(h, c, split)
            }),
    )?;
    for (name, part) in [
        ("unlabeled-train.nb101", train),
        ("unlabeled-valid.nb101", valid),
    ] {
        let s = Space::from_entries(
            part.iter()
                .filter(|i| !labeled.contains(i))
                .map(|&i| entries[i])
                .collect(),
        );
        let p = out.join(name);
        s.write(&p).map_err(|e| StageError::io(&p, e))?;
    }
    let mut with_figures = 0usize;
    if let Some(t) = &table {
        let rows = train
            .iter()
            .map(|&i| ("train", i))
            .chain(valid.iter().map(|&i| ("valid", i)));
        let mut lines = Vec::new();
        for (split, i) in rows {
            if let Some(r) = t.get(&entries[i].0) {
                let mut v = serde_json::to_value(&r.figures).expect("figures serialize");
                v["hash"] = json!(r.hash);
                v["split"] = json!(split);
                v["labeled"] = json!(labeled.contains(&i));
                lines.push(v);
            }
        }
        with_figures = lines.len();
        write_jsonl(&out.join("figures.jsonl"), lines)?;
    }
    let summary = json!({
        "space": space.len(),
        "cells": universe.len(),
        "order": order,
        "train": train.len(),
        "valid": valid.len(),
        "train_nets": train_nets,
        "valid_nets": valid_nets,
        "unlabeled_train": train.len() - train_nets,
        "unlabeled_valid": valid.len() - valid_nets,
        "table": table.as_ref().map(|t| t.source.file_name().map(|n| n.to_string_lossy().to_string())),
        "table_rows": table.as_ref().map(|t| t.len()),
        "with_figures": with_figures,
        "seed": ctx.seed,
    });
    let p = out.join("summary.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&summary).expect("json") + "\n",
    )
    .map_err(|e| StageError::io(&p, e))
}

/// One labeled network as `items.jsonl` holds it.
pub fn item_json(hash: &ModuleHash, cell: &Cell, split: &str) -> Value {
    json!({
        "hash": hash,
        "matrix": cell.matrix(),
        "ops": cell.ops().iter().map(|o| o.name()).collect::<Vec<_>>(),
        "split": split,
    })
}
