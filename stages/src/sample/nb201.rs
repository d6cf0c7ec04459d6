//! `sample` in NB201 (`search_space = "nb201"`): the universe is the built-in table's 15,625
//! cells, in NB201's index order (`order = "table"`) or by hash (`order = "hash"`: the md5 of
//! each cell's isomorphism key, so equivalent cells sit together, ties in index order). The
//! subsample, the split and the labeled networks are drawn as in NB101 (same streams).
//!
//! Outputs: `items.jsonl` (NB201 items, see `space`), `unlabeled-train.nb201` and
//! `unlabeled-valid.nb201` (one arch string a line, in universe order), `figures.jsonl` with
//! `table = "nb201"` (`{"hash", "arch", "split", "labeled", "validation_accuracy",
//! "validation_accuracy_12", "test_accuracy_12", "nb201_index"}`), `summary.json`.
use std::collections::HashSet;

use nasflow_contract::layout::{ITEMS_LIST, SUMMARY};
use nasflow_contract::{StageContext, StageError};
use serde_json::json;

use super::{split, split_summary, subsample, Order, SampleParams, Split};
use crate::files::{write_json, write_jsonl};
use crate::nb201::table::{Table, EMBEDDED};
use crate::space::{Arch, CellList, SearchSpace};

pub fn run(ctx: &StageContext<SampleParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let config = |what: String| StageError::Config(format!("stage `{}`: {what}", ctx.stage));
    // `Sample::check` refused other spaces' settings when the params were read.
    let with_figures = p.table.as_str() == EMBEDDED;
    let table = Table::embedded().map_err(|e| StageError::Failed(e.to_string()))?;
    let archs: Vec<Arch> = table.rows().iter().map(|r| Arch::Nb201(r.cell)).collect();
    let mut universe: Vec<usize> = (0..archs.len()).collect();
    if p.order == Order::Hash {
        let hashes: Vec<_> = archs.iter().map(Arch::hash).collect();
        universe.sort_by_key(|&i| (hashes[i], i));
    }
    if p.cells > 0 {
        if p.cells > universe.len() {
            return Err(config(format!(
                "cells = {} but NB201 has {} (use 0 for all)",
                p.cells,
                universe.len()
            )));
        }
        universe = subsample(ctx.seed, &universe, &vec![false; universe.len()], p.cells);
    }
    let s = split(ctx, universe)?;
    write_outputs(ctx, &table, &archs, &s, with_figures)
}

fn write_outputs(
    ctx: &StageContext<SampleParams>,
    table: &Table,
    archs: &[Arch],
    s: &Split,
    with_figures: bool,
) -> Result<(), StageError> {
    let out = ctx.out;
    let labeled: HashSet<usize> = s.train_lab.iter().chain(&s.valid_lab).copied().collect();
    let items = s
        .train_lab
        .iter()
        .map(|&i| archs[i].item_json("train"))
        .chain(s.valid_lab.iter().map(|&i| archs[i].item_json("valid")));
    write_jsonl(&out.join(ITEMS_LIST), items)?;
    for (name, part) in [
        ("unlabeled-train.nb201", s.train()),
        ("unlabeled-valid.nb201", s.valid()),
    ] {
        let path = out.join(name);
        let cells = part
            .iter()
            .filter(|i| !labeled.contains(i))
            .map(|&i| archs[i]);
        CellList::new(SearchSpace::Nb201, cells.collect())
            .write(&path)
            .map_err(|e| StageError::io(&path, e))?;
    }
    if with_figures {
        let rows = s
            .train()
            .iter()
            .map(|&i| ("train", i))
            .chain(s.valid().iter().map(|&i| ("valid", i)));
        let lines = rows.map(|(split, i)| {
            let r = &table.rows()[i];
            json!({
                "hash": archs[i].hash(),
                "arch": r.cell.arch_string(),
                "split": split,
                "labeled": labeled.contains(&i),
                "validation_accuracy": r.valid_acc / 100.0,
                "validation_accuracy_12": r.valid_acc_12 / 100.0,
                "test_accuracy_12": r.test_acc_12 / 100.0,
                "nb201_index": r.nb201_index,
            })
        });
        write_jsonl(&out.join("figures.jsonl"), lines)?;
    }
    let mut summary = split_summary(ctx, archs.len(), s);
    summary["search_space"] = json!("nb201");
    summary["table"] = json!(with_figures.then_some(EMBEDDED));
    summary["with_figures"] = json!(if with_figures { s.universe.len() } else { 0 });
    write_json(&out.join(SUMMARY), &summary)
}
