//! `reinforce`'s computation: arch2vec's REINFORCE (see `nasflow_stages::reinforce`).
//!
//! Per seed: a policy `LSTMCell(dim, hidden)` + `Linear(hidden, dim)` gives the mean of a
//! unit-variance Gaussian over the latent space; the action is a sample; the environment returns
//! the nearest not-yet-queried cell, whose validation accuracy is the reward and whose training
//! time the cost. Every `batch_size` queries: loss = mean(-log p(a_t) (r_t - baseline)), one Adam
//! step, and the LSTM state resets; the next episode starts from the last queried cell. The start
//! cell is drawn uniformly and is not a query. Seeds run in groups of 16 stepped together (one
//! scan of the features answers the group's 16 queries: `nasflow_stages::search::nearest`), the
//! groups in parallel; all randomness (initial weights, start cell, action noise) comes from the
//! seed's own generator, so a seed's trace depends neither on the thread count nor on the other
//! seeds.
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal, Uniform};
use rayon::prelude::*;
use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use nasflow_contract::layout::SUMMARY;
use nasflow_stages::images;
use nasflow_stages::reinforce::ReinforceParams;
use nasflow_stages::search::edits::Lookup;
use nasflow_stages::search::headline::{self, labelled};
use nasflow_stages::search::methods::{run_many, Method};
use nasflow_stages::search::mutation::Mutation;
use nasflow_stages::search::nearest::{nearest_batch, Features, Visited};
use nasflow_stages::search::report::{summarize, write_charts};
use nasflow_stages::search::table::Searchable;
use nasflow_stages::search::{Trace, Tracker, REINFORCE_STREAM};
use nasflow_stages::space::SearchSpace;
use nasflow_stages::{StageContext, StageError};

use crate::device::torch_err;

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

/// Runs stepped together, so that one scan of the features answers all their queries.
const GROUP: usize = 16;

/// One REINFORCE run, stepped from outside: [`Run::act`], then the environment, then
/// [`Run::observe`].
struct Run<'t> {
    table: &'t Searchable,
    s: Settings,
    rng: rand_chacha::ChaCha8Rng,
    _vs: nn::VarStore,
    policy: Policy,
    opt: nn::Optimizer,
    visited: Visited,
    tracker: Tracker<'t>,
    current: usize,
    state: Option<(Tensor, Tensor)>,
    log_probs: Vec<Tensor>,
    rewards: Vec<f64>,
    action: Vec<f32>,
    pending: Option<Tensor>,
    done: bool,
}

impl<'t> Run<'t> {
    fn new(table: &'t Searchable, s: Settings, seed: u64) -> Result<Run<'t>, StageError> {
        let mut rng = images::rng(seed, REINFORCE_STREAM);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let policy = Policy::new(&vs, table.dim as i64, s.hidden, &mut rng);
        let opt = nn::Adam::default().build(&vs, s.lr).map_err(torch_err)?;
        let mut visited = Visited::new(table.len());
        // The start cell: drawn uniformly, visited, not a query.
        let current = rng.random_range(0..table.len());
        visited.visit(current);
        Ok(Run {
            table,
            s,
            rng,
            _vs: vs,
            policy,
            opt,
            done: visited.left() == 0,
            visited,
            tracker: Tracker::new(table, s.budget, "reinforce", seed),
            current,
            state: None,
            log_probs: Vec::new(),
            rewards: Vec::new(),
            action: vec![0.0; table.dim],
            pending: None,
        })
    }

    /// Samples the next action from the policy at the current cell's feature.
    fn act(&mut self) -> Result<(), StageError> {
        let dim = self.table.dim as i64;
        let x = Tensor::from_slice(self.table.feature(self.current)).reshape([1, dim]);
        let mean = self.policy.forward(&x, &mut self.state);
        let m: Vec<f32> = Vec::<f32>::try_from(mean.view([-1])).map_err(torch_err)?;
        for (a, mu) in self.action.iter_mut().zip(&m) {
            let e: f32 = StandardNormal.sample(&mut self.rng);
            *a = mu + e;
        }
        // log N(a; mean, I) = -|a - mean|^2 / 2 - dim/2 log(2 pi)
        let a = Tensor::from_slice(&self.action).reshape([1, dim]);
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        self.pending =
            Some((&a - &mean).square().sum(Kind::Float) * -0.5 - half_log_2pi * dim as f64);
        Ok(())
    }

    /// Takes the environment's answer (the cell, already marked visited; `None`: none left).
    fn observe(&mut self, next: Option<usize>) -> Result<(), StageError> {
        let (Some(next), Some(lp)) = (next, self.pending.take()) else {
            self.done = true;
            return Ok(());
        };
        let reward = self.tracker.query(next);
        self.log_probs.push(lp);
        self.rewards.push(reward - self.s.baseline);
        self.current = next;
        if self.log_probs.len() >= self.s.batch.max(1) || self.tracker.exhausted() {
            self.update();
        }
        self.done = self.tracker.exhausted() || self.visited.left() == 0;
        Ok(())
    }

    /// End of an episode: loss = mean(-log p (r - baseline)), one Adam step, LSTM state reset.
    fn update(&mut self) {
        let r = Tensor::from_slice(&self.rewards).to_kind(Kind::Float);
        let loss = (Tensor::stack(&self.log_probs, 0) * r)
            .neg()
            .mean(Kind::Float);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step();
        self.log_probs.clear();
        self.rewards.clear();
        self.state = None;
    }
}

/// REINFORCE runs for `seeds`, stepped together (see [`GROUP`]); one trace per seed, in order.
/// A seed's trace does not depend on which seeds it runs with.
pub fn reinforce(
    table: &Searchable,
    features: &Features,
    s: Settings,
    seeds: &[u64],
) -> Result<Vec<Trace>, StageError> {
    let mut runs = seeds
        .iter()
        .map(|&seed| Run::new(table, s, seed))
        .collect::<Result<Vec<_>, _>>()?;
    loop {
        let active: Vec<usize> = (0..runs.len()).filter(|&i| !runs[i].done).collect();
        if active.is_empty() {
            break;
        }
        for &i in &active {
            runs[i].act()?;
        }
        let picks = {
            let queries: Vec<(&[f32], &Visited)> = active
                .iter()
                .map(|&i| (runs[i].action.as_slice(), &runs[i].visited))
                .collect();
            nearest_batch(features, &queries)
        };
        for (&i, pick) in active.iter().zip(picks) {
            if let Some(p) = pick {
                runs[i].visited.visit(p);
            }
            runs[i].observe(pick)?;
        }
    }
    Ok(runs.into_iter().map(|r| r.tracker.trace).collect())
}

pub fn run(ctx: &StageContext<ReinforceParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let tables = Searchable::load_each(ctx, &p.table, p.latents()?)?;
    let table = &tables[0].1;
    if table.is_empty() {
        return Err(StageError::Failed(format!(
            "stage `{}`: no searchable cells: none of the table's {} rows has both a latent feature and figures (does train-vae's sample cover the table's cells?)",
            ctx.stage,
            table.without_feature + table.without_figures
        )));
    }
    let space = table.space();
    let evolves = p.methods().contains(&Method::Evolution);
    if evolves && space != SearchSpace::Nb101 && p.mutation != Mutation::Naslib {
        return Err(StageError::Config(format!(
            "stage `{}`: mutation = \"{}\" is an NB101 operator; on {} evolution mutates as NASLib does (one edge's op): set mutation = \"naslib\"",
            ctx.stage,
            p.mutation.name(),
            space.name()
        )));
    }
    let settings = Settings {
        budget: p.budget,
        batch: p.batch_size,
        lr: p.lr,
        baseline: p.baseline,
        hidden: p.hidden.max(1) as i64,
    };
    let seeds: Vec<u64> = (0..p.seeds as u64).map(|k| ctx.seed + k).collect();
    let seeds_of = |m: Method| -> &[u64] {
        match m {
            Method::Bo if p.bo_seeds > 0 => &seeds[..p.bo_seeds.min(seeds.len())],
            _ => &seeds,
        }
    };
    let methods = p.methods();
    tch::set_num_threads(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.threads.max(1))
        .build()
        .map_err(|e| StageError::Failed(format!("thread pool: {e}")))?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let per_features = |m: Method| match m {
        Method::Reinforce | Method::Bo => tables.len() as u64,
        _ => 1,
    };
    let total: u64 = (methods.iter())
        .map(|&m| seeds_of(m).len() as u64 * per_features(m))
        .sum();
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        ctx.progress_with(d, total, "runs", String::new());
    };
    let lookup = Lookup::new(table);
    let others = p.settings();
    let mut traces: Vec<Trace> = Vec::new();
    for &m in &methods {
        let seeds = seeds_of(m);
        match m {
            Method::Reinforce | Method::Bo => {
                for (label, t) in &tables {
                    let mut ts = match m {
                        Method::Reinforce => {
                            pool.install(|| reinforce_all(t, settings, seeds, &tick))?
                        }
                        m => pool.install(|| run_many(m, t, &lookup, &others, seeds, &tick)),
                    };
                    for tr in &mut ts {
                        tr.method = labelled(&tr.method, label);
                    }
                    traces.extend(ts);
                }
            }
            m => traces.extend(pool.install(|| run_many(m, table, &lookup, &others, seeds, &tick))),
        }
    }
    let out = ctx.out;
    nasflow_stages::files::write_jsonl(&out.join("traces.jsonl"), &traces)?;
    let mut summary = summarize(&traces, table, &others);
    summary["source"] = serde_json::json!(table.source);
    let latent: Vec<&str> = tables.iter().map(|(_, t)| t.latent.as_str()).collect();
    summary["latent"] = match latent.as_slice() {
        [one] => serde_json::json!(one),
        many => serde_json::json!(many),
    };
    let labels: Vec<String> = tables.iter().map(|(l, _)| l.clone()).collect();
    headline::add(&mut summary, &traces, &labels);
    nasflow_stages::files::write_json(&out.join(SUMMARY), &summary)?;
    write_charts(out, &traces, table, settings.budget)?;
    Ok(())
}

/// REINFORCE for all seeds: groups of [`GROUP`] seeds in parallel.
fn reinforce_all(
    table: &Searchable,
    settings: Settings,
    seeds: &[u64],
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<Trace>, StageError> {
    let features = Features::new(table);
    let groups: Vec<&[u64]> = seeds.chunks(GROUP).collect();
    let traces = groups
        .par_iter()
        .map(|g| {
            let t = reinforce(table, &features, settings, g);
            for _ in 0..g.len() {
                tick();
            }
            t
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(traces.into_iter().flatten().collect())
}
