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
use std::path::Path;

use nasflow_contract::layout::{ITEMS_LIST, SUMMARY};
use nasflow_contract::{Keywords, Kind, KindInfo, PathOr, PathParam, StageContext, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::files::{write_json, write_jsonl};
use crate::nb101::{Cell, ModuleHash, Space, Table};
use crate::space::SearchSpace;

mod nb201;

/// The `sample` kind.
pub struct Sample;

impl Kind for Sample {
    type Params = SampleParams;
    const INFO: KindInfo = KindInfo {
        name: "sample",
        version: 2,
        doc: "The cells to work on (NB101 or NB201): the unlabeled set (whole space or a seeded subsample), its train/validation split, and the labeled networks to pretrain",
        reads_seed: true,
        uses_device: false,
        item_level: false,
        key_metrics: &["cells", "train_nets", "valid_nets"],
    };

    /// Settings of one space that the other cannot take.
    fn check(p: &SampleParams) -> Result<(), String> {
        let nb201_table = p.table.as_str() == crate::nb201::table::EMBEDDED;
        match p.search_space {
            SearchSpace::Nb101 if nb201_table => Err(
                "table: \"nb201\" is NB201's table; set search_space = \"nb201\" or name an NB101 table".into(),
            ),
            SearchSpace::Nb101 => Ok(()),
            SearchSpace::Nb201 if p.space.path().is_some() => Err(
                "space: it names an .nb101 file; NB201's cells are built in (remove `space`)".into(),
            ),
            SearchSpace::Nb201 if !nb201_table && !p.table.as_str().is_empty() => Err(format!(
                "table: {:?} is not an NB201 table: use \"nb201\" (built in) or \"\"",
                p.table.as_str()
            )),
            SearchSpace::Nb201 if p.include_table => Err(
                "include_table: every NB201 cell is in its table, so there is nothing to include (remove it)".into(),
            ),
            SearchSpace::Nb201 => Ok(()),
        }
    }
}

/// The params of `sample`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SampleParams {
    /// the search space: "nb101" or "nb201" (its 15,625 cells and table built in)
    pub search_space: SearchSpace,
    /// size of a seeded subsample of the space (0: all; NB101 423,624 cells, NB201 15,625)
    pub cells: usize,
    /// the last fraction of the (ordered) cells forms the validation part
    #[schemars(range(min = 0.0), extend("exclusiveMaximum" = 1.0))]
    pub valid_fraction: f64,
    /// labeled networks drawn from the train part (paper: 608)
    pub train_nets: usize,
    /// labeled networks drawn from the validation part (paper: 77)
    pub valid_nets: usize,
    /// benchmark table to join: NB101 "nb101-10k" (built in) or a file (*.tfrecord, arch2vec data.json, *.jsonl); NB201 "nb201" (built in); "" for none
    pub table: PathOr<SampleTables>,
    /// the subsample holds every cell of `table` (and `cells` counts them); false: a plain draw
    pub include_table: bool,
    /// universe order before the split
    pub order: Order,
    /// NB101 only: an .nb101 space file to read instead of enumerating; "" to enumerate
    pub space: PathParam,
}

impl Default for SampleParams {
    fn default() -> Self {
        SampleParams {
            search_space: SearchSpace::Nb101,
            cells: 0,
            valid_fraction: 0.1,
            train_nets: 608,
            valid_nets: 77,
            table: PathOr::new(""),
            include_table: false,
            order: Order::Hash,
            space: PathParam::default(),
        }
    }
}

/// The keywords of sample's `table`: the table built into nasflow.
pub struct SampleTables;

impl Keywords for SampleTables {
    const KEYWORDS: &'static [&'static str] = &[
        crate::nb101::tables::EMBEDDED_10K,
        crate::nb201::table::EMBEDDED,
    ];
}

/// The order of the universe before the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// sorted by module hash
    Hash,
    /// the table's order (NB101's tfrecord order, as arch2vec splits), cells missing from it last
    Table,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Hash => "hash",
            Order::Table => "table",
        }
    }
}

/// `amount` of `0..len`, seeded, in increasing order.
fn draw(seed: u64, stream: u64, len: usize, amount: usize) -> Vec<usize> {
    let mut v =
        rand::seq::index::sample(&mut crate::images::rng(seed, stream), len, amount).into_vec();
    v.sort_unstable();
    v
}

/// What the stage decided: the universe (indices into the space) split into its parts, and the
/// labeled networks of each part.
struct Split {
    universe: Vec<usize>,
    n_train: usize,
    train_lab: Vec<usize>,
    valid_lab: Vec<usize>,
}

impl Split {
    fn train(&self) -> &[usize] {
        &self.universe[..self.n_train]
    }
    fn valid(&self) -> &[usize] {
        &self.universe[self.n_train..]
    }
}

pub fn run(ctx: &StageContext<SampleParams>) -> Result<(), StageError> {
    match ctx.params.search_space {
        SearchSpace::Nb101 => run_nb101(ctx),
        SearchSpace::Nb201 => nb201::run(ctx),
    }
}

fn run_nb101(ctx: &StageContext<SampleParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let failed = |e: &dyn std::fmt::Display| StageError::Failed(e.to_string());
    let table = match p.table.as_str() {
        "" => None,
        name => Some(Table::open(name).map_err(|e| failed(&e))?),
    };
    let space = match p.space.path() {
        Some(path) => Space::read(path).map_err(|e| failed(&e))?,
        None => Space::enumerate(),
    };
    let universe = universe(ctx, &space, table.as_ref())?;
    let split = split(ctx, universe)?;
    write_outputs(ctx, &space, table.as_ref(), &split)
}

/// 1. and 2.: the universe in its order, subsampled.
fn universe(
    ctx: &StageContext<SampleParams>,
    space: &Space,
    table: Option<&Table>,
) -> Result<Vec<usize>, StageError> {
    let mut universe: Vec<usize> = match (ctx.params.order, table) {
        (Order::Hash, _) => (0..space.len()).collect(),
        (Order::Table, Some(t)) => {
            let (found, _) = t.join(space);
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
        (Order::Table, None) => {
            return Err(StageError::Config(format!(
                "stage `{}`: order = \"table\" needs a `table`",
                ctx.stage
            )))
        }
    };
    let cells = ctx.params.cells;
    if cells > 0 {
        if cells > universe.len() {
            return Err(StageError::Config(format!(
                "stage `{}`: cells = {cells} but the space has {} (use 0 for all)",
                ctx.stage,
                universe.len()
            )));
        }
        let kept = match (ctx.params.include_table, table) {
            (true, Some(t)) => included(ctx, space, t, &universe)?,
            _ => vec![false; universe.len()],
        };
        universe = subsample(ctx.seed, &universe, &kept, cells);
    }
    Ok(universe)
}

/// Which cells of the universe are the table's (all of them are kept with `include_table`).
fn included(
    ctx: &StageContext<SampleParams>,
    space: &Space,
    table: &Table,
    universe: &[usize],
) -> Result<Vec<bool>, StageError> {
    let (found, _) = table.join(space);
    let mut in_table = vec![false; space.len()];
    found.iter().for_each(|(i, _)| in_table[*i] = true);
    let kept: Vec<bool> = universe.iter().map(|&i| in_table[i]).collect();
    let n = kept.iter().filter(|k| **k).count();
    if n > ctx.params.cells {
        return Err(StageError::Config(format!(
            "stage `{}`: include_table keeps the table's {n} cells but cells = {} (raise `cells` to at least {n})",
            ctx.stage, ctx.params.cells
        )));
    }
    Ok(kept)
}

/// `cells` of the universe, in its order: every kept one and a seeded draw of the others.
fn subsample(seed: u64, universe: &[usize], kept: &[bool], cells: usize) -> Vec<usize> {
    let others: Vec<usize> = (0..universe.len()).filter(|&k| !kept[k]).collect();
    let n_kept = universe.len() - others.len();
    let mut pick = vec![false; universe.len()];
    (0..universe.len())
        .filter(|&k| kept[k])
        .for_each(|k| pick[k] = true);
    for k in draw(seed, 0, others.len(), cells - n_kept) {
        pick[others[k]] = true;
    }
    (0..universe.len())
        .filter(|&k| pick[k])
        .map(|k| universe[k])
        .collect()
}

/// 3. and 4.: the split by index and the labeled networks of each part.
fn split(ctx: &StageContext<SampleParams>, universe: Vec<usize>) -> Result<Split, StageError> {
    let p = ctx.params;
    let n_train = ((1.0 - p.valid_fraction) * universe.len() as f64).floor() as usize;
    let (train, valid) = universe.split_at(n_train);
    for (want, have, name) in [
        (p.train_nets, train.len(), "train_nets"),
        (p.valid_nets, valid.len(), "valid_nets"),
    ] {
        if want > have {
            return Err(StageError::Config(format!(
                "stage `{}`: {name} = {want} but that part has only {have} cells (raise `cells` or lower `{name}`)",
                ctx.stage
            )));
        }
    }
    let pick = |stream: u64, part: &[usize], n: usize| -> Vec<usize> {
        draw(ctx.seed, stream, part.len(), n)
            .into_iter()
            .map(|k| part[k])
            .collect()
    };
    let train_lab = pick(1, train, p.train_nets);
    let valid_lab = pick(2, valid, p.valid_nets);
    Ok(Split {
        n_train,
        train_lab,
        valid_lab,
        universe,
    })
}

fn write_outputs(
    ctx: &StageContext<SampleParams>,
    space: &Space,
    table: Option<&Table>,
    s: &Split,
) -> Result<(), StageError> {
    let out = ctx.out;
    let entries = space.entries();
    let labeled: HashSet<usize> = s.train_lab.iter().chain(&s.valid_lab).copied().collect();
    write_jsonl(
        &out.join(ITEMS_LIST),
        s.train_lab
            .iter()
            .map(|&i| ("train", i))
            .chain(s.valid_lab.iter().map(|&i| ("valid", i)))
            .map(|(split, i)| item_json(&entries[i].0, &entries[i].1, split)),
    )?;
    for (name, part) in [
        ("unlabeled-train.nb101", s.train()),
        ("unlabeled-valid.nb101", s.valid()),
    ] {
        let unlabeled = part.iter().filter(|i| !labeled.contains(i));
        let sub = Space::from_entries(unlabeled.map(|&i| entries[i]).collect());
        let path = out.join(name);
        sub.write(&path).map_err(|e| StageError::io(&path, e))?;
    }
    let with_figures = match table {
        Some(t) => write_figures(&out.join("figures.jsonl"), t, entries, s, &labeled)?,
        None => 0,
    };
    let mut summary = split_summary(ctx, space.len(), s);
    summary["table"] = json!(table.map(|t| t
        .source
        .file_name()
        .map(|n| n.to_string_lossy().to_string())));
    summary["table_rows"] = json!(table.map(|t| t.len()));
    summary["with_figures"] = json!(with_figures);
    write_json(&out.join(SUMMARY), &summary)
}

/// The summary's counts of the universe, its split and the labeled networks (both spaces).
fn split_summary(ctx: &StageContext<SampleParams>, space: usize, s: &Split) -> Value {
    let p = ctx.params;
    json!({
        "space": space,
        "cells": s.universe.len(),
        "order": p.order.name(),
        "train": s.train().len(),
        "valid": s.valid().len(),
        "train_nets": p.train_nets,
        "valid_nets": p.valid_nets,
        "unlabeled_train": s.train().len() - p.train_nets,
        "unlabeled_valid": s.valid().len() - p.valid_nets,
        "seed": ctx.seed,
    })
}

/// `figures.jsonl`: the table's figures of every sampled cell it has; returns how many.
fn write_figures(
    path: &Path,
    t: &Table,
    entries: &[(ModuleHash, Cell)],
    s: &Split,
    labeled: &HashSet<usize>,
) -> Result<usize, StageError> {
    let rows = s
        .train()
        .iter()
        .map(|&i| ("train", i))
        .chain(s.valid().iter().map(|&i| ("valid", i)));
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
    write_jsonl(path, &lines)?;
    Ok(lines.len())
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
