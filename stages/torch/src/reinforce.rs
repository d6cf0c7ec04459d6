//! `reinforce`'s computation: arch2vec's REINFORCE (see `nasflow_stages::reinforce`).
//!
//! Per seed: a policy `LSTMCell(dim, hidden)` + `Linear(hidden, dim)` gives the mean of a
//! unit-variance Gaussian over the latent space; the action is a sample; the environment returns
//! the nearest not-yet-queried cell, whose validation accuracy is the reward and whose training
//! time the cost. Every `batch_size` queries: loss = mean(-log p(a_t) (r_t - baseline)), one Adam
//! step, and the LSTM state resets; the next episode starts from the last queried cell. The start
//! cell is drawn uniformly and is not a query. Seeds run in parallel (one thread each); all
//! randomness (initial weights, start cell, action noise) comes from the seed's own generator, so
//! a seed's trace does not depend on the thread count.
use std::io::Write;

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal, Uniform};
use rayon::prelude::*;
use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use nasflow_stages::images;
use nasflow_stages::search::report::{summarize, write_charts};
use nasflow_stages::search::table::Searchable;
use nasflow_stages::search::{random_search, NearestEnv, Trace, Tracker, REINFORCE_STREAM};
use nasflow_stages::{StageContext, StageError};

use crate::train::torch_err;

/// REINFORCE's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub budget: f64,
    pub batch: usize,
    pub lr: f64,
    pub baseline: f64,
    pub hidden: i64,
}

struct Policy {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    fc_w: Tensor,
    fc_b: Tensor,
}

impl Policy {
    /// PyTorch's initialisation of LSTMCell and Linear(hidden, dim): every weight and bias
    /// uniform in +-1/sqrt(hidden), drawn from the seed's generator.
    fn new(vs: &nn::VarStore, dim: i64, hidden: i64, rng: &mut impl rand::Rng) -> Policy {
        let k = 1.0 / (hidden as f32).sqrt();
        let u = Uniform::new_inclusive(-k, k).expect("a finite range");
        let mut var = |name: &str, shape: &[i64]| {
            let n: i64 = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| u.sample(rng)).collect();
            vs.root()
                .var_copy(name, &Tensor::from_slice(&v).reshape(shape))
        };
        Policy {
            w_ih: var("w_ih", &[4 * hidden, dim]),
            w_hh: var("w_hh", &[4 * hidden, hidden]),
            b_ih: var("b_ih", &[4 * hidden]),
            b_hh: var("b_hh", &[4 * hidden]),
            fc_w: var("fc_w", &[dim, hidden]),
            fc_b: var("fc_b", &[dim]),
        }
    }

    fn forward(&self, x: &Tensor, state: &mut Option<(Tensor, Tensor)>) -> Tensor {
        let hidden = self.w_hh.size()[1];
        let (h0, c0) = state.take().unwrap_or_else(|| {
            let z = Tensor::zeros([1, hidden], (Kind::Float, tch::Device::Cpu));
            (z.shallow_clone(), z)
        });
        let (h, c) = x.lstm_cell(
            &[&h0, &c0],
            &self.w_ih,
            &self.w_hh,
            Some(&self.b_ih),
            Some(&self.b_hh),
        );
        let mean = h.linear(&self.fc_w, Some(&self.fc_b));
        *state = Some((h, c));
        mean
    }
}

/// One REINFORCE run.
pub fn reinforce(table: &Searchable, s: Settings, seed: u64) -> Result<Trace, StageError> {
    let dim = table.dim;
    let mut rng = images::rng(seed, REINFORCE_STREAM);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let policy = Policy::new(&vs, dim as i64, s.hidden, &mut rng);
    let mut opt = nn::Adam::default().build(&vs, s.lr).map_err(torch_err)?;
    let mut env = NearestEnv::new(table);
    let mut tracker = Tracker::new(table, s.budget, "reinforce", seed);
    let start = rng.random_range(0..table.len());
    env.visit(start);
    let mut current = start;
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let mut action = vec![0f32; dim];
    'search: while !tracker.exhausted() {
        let mut state = None;
        let (mut log_probs, mut rewards) = (Vec::new(), Vec::new());
        for _ in 0..s.batch.max(1) {
            let x = Tensor::from_slice(table.feature(current)).reshape([1, dim as i64]);
            let mean = policy.forward(&x, &mut state);
            let m: Vec<f32> = Vec::<f32>::try_from(mean.view([-1])).map_err(torch_err)?;
            for (a, mu) in action.iter_mut().zip(&m) {
                let e: f32 = StandardNormal.sample(&mut rng);
                *a = mu + e;
            }
            // log N(a; mean, I) = -|a - mean|^2 / 2 - dim/2 log(2 pi)
            let a = Tensor::from_slice(&action).reshape([1, dim as i64]);
            let lp = (&a - &mean).square().sum(Kind::Float) * -0.5 - half_log_2pi * dim as f64;
            let Some(next) = env.step(&action) else {
                break 'search;
            };
            let reward = tracker.query(next);
            log_probs.push(lp);
            rewards.push(reward - s.baseline);
            current = next;
            if tracker.exhausted() {
                break;
            }
        }
        if log_probs.is_empty() {
            break;
        }
        let r = Tensor::from_slice(&rewards).to_kind(Kind::Float);
        let loss = (Tensor::stack(&log_probs, 0) * r).neg().mean(Kind::Float);
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
    Ok(tracker.trace)
}

pub fn run(ctx: &StageContext) -> Result<(), StageError> {
    let table = Searchable::load(ctx)?;
    if table.is_empty() {
        return Err(StageError::Failed(format!(
            "stage `{}`: no searchable cells: none of the table's {} rows has both a latent feature and figures (does train-vae's sample cover the table's cells?)",
            ctx.stage,
            table.without_feature + table.without_figures
        )));
    }
    let settings = Settings {
        budget: ctx.float("budget")?,
        batch: ctx.count("batch_size")?,
        lr: ctx.float("lr")?,
        baseline: ctx.float("baseline")?,
        hidden: ctx.count("hidden")?.max(1) as i64,
    };
    let seeds: Vec<u64> = (0..ctx.count("seeds")? as u64)
        .map(|k| ctx.seed + k)
        .collect();
    let random = ctx.params["random_search"].as_bool().unwrap_or(true);
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.threads.max(1))
        .build()
        .map_err(|e| StageError::Failed(format!("thread pool: {e}")))?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let total = seeds.len() as u64 * if random { 2 } else { 1 };
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        (ctx.progress)(d, total);
    };
    let mut traces: Vec<Trace> = pool.install(|| {
        seeds
            .par_iter()
            .map(|&seed| {
                let t = reinforce(&table, settings, seed);
                tick();
                t
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    if random {
        traces.extend(pool.install(|| {
            seeds
                .par_iter()
                .map(|&seed| {
                    let t = random_search(&table, settings.budget, seed);
                    tick();
                    t
                })
                .collect::<Vec<_>>()
        }));
    }
    let out = ctx.out;
    let path = out.join("traces.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| StageError::io(&path, e))?;
    let mut w = std::io::BufWriter::new(file);
    for t in &traces {
        serde_json::to_writer(&mut w, t)
            .map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))?;
        w.write_all(b"\n").map_err(|e| StageError::io(&path, e))?;
    }
    w.flush().map_err(|e| StageError::io(&path, e))?;
    let mut summary = summarize(&traces, &table, settings.budget);
    summary["source"] = serde_json::json!(table.source);
    nasflow_stages::pretrain::write_json(&out.join("summary.json"), &summary)?;
    write_charts(out, &traces, settings.budget)?;
    Ok(())
}
