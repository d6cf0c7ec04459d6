//! `train-vae`'s computation (tch): see `nasflow_stages::train_vae` for the variants and the
//! outputs. Every model of a run sees the same batches: the unlabeled cells and the labeled
//! train set, each in a permutation drawn per epoch from train-vae's own batch stream (once,
//! for arch2vec-original with its quirks), interleaved as info-NAS does. All data is
//! pre-stacked into tensors; batches are index gathers.
mod data;
mod eval;
mod latent;
mod trainee;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use tch::Tensor;

use nasflow_stages::files::write_json;
use nasflow_stages::semi::{interleave, labeled_coef, Batch};
use nasflow_stages::train_vae::{Epoch, Metrics, Model, TrainVaeParams, Variant};
use nasflow_stages::{StageContext, StageError};

use crate::device::{torch_device, torch_err};
use crate::noise::Noise;
pub use data::encode_cells;
use data::Data;
use latent::Latents;
pub use trainee::clip_joint;
use trainee::{LabeledBatch, Trainee, BATCHES};

/// `timing.json` in the provenance directory: what varies from run to run.
#[derive(Default, Serialize)]
struct Timing {
    wall_seconds: f64,
    /// Per epoch: the batches, the evaluation, the checkpoint (weights and latent features).
    train_seconds: Vec<f64>,
    eval_seconds: Vec<f64>,
    checkpoint_seconds: Vec<f64>,
    device: String,
    threads: usize,
}

pub fn run(ctx: &StageContext<TrainVaeParams>) -> Result<(), StageError> {
    let started = Instant::now();
    let p = ctx.params;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let dev = torch_device(ctx.device);
    let seed = p.seed.unwrap_or(ctx.seed);

    // 1. The data, the models at their initial weights, the batch stream.
    let data = Data::load(ctx)?;
    let models = p.variant.models(p.reference);
    let outputs = data.sets["train"].targets.size()[1];
    let mut trainees = models
        .iter()
        .map(|&m| Trainee::new(m, p, seed, outputs, data.space, dev))
        .collect::<Result<Vec<_>, _>>()?;
    let mut schedule = Schedule::new(p, &data, seed, dev);
    let batches = BatchSource::new(&data, dev);
    let mut latents = Latents::new(&data, models.clone());
    let mut checkpoints: Vec<usize> = p
        .checkpoints
        .iter()
        .copied()
        .filter(|&e| e >= 1 && e < p.epochs)
        .collect();
    checkpoints.push(p.epochs);
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let mut metrics = Metrics {
        variant: p.variant,
        seed,
        k: p.k,
        coef: schedule.coef,
        models,
        checkpoints: checkpoints.clone(),
        epochs: Vec::new(),
    };
    let mut timing = Timing {
        device: ctx.device.to_string(),
        threads: ctx.threads,
        ..Timing::default()
    };

    // 2. Epoch by epoch: the batches, each model's evaluation, checkpoints with latent features.
    for epoch in 1..=p.epochs {
        let t0 = Instant::now();
        train_epoch(ctx, &batches, &mut schedule, &mut trainees, epoch);
        let t1 = Instant::now();
        metrics
            .epochs
            .push(evaluate_all(p, &data, &schedule, &mut trainees, dev, epoch));
        let t2 = Instant::now();
        if checkpoints.contains(&epoch) {
            save_checkpoint(ctx, &trainees, epoch)?;
            for t in &trainees {
                latents.add(t.model, epoch, &t.vae, dev);
            }
        }
        write_json(&ctx.out.join("metrics.json"), &metrics)?;
        timing.train_seconds.push((t1 - t0).as_secs_f64());
        timing.eval_seconds.push((t2 - t1).as_secs_f64());
        timing.checkpoint_seconds.push(t2.elapsed().as_secs_f64());
    }

    // 3. The reports, the latent features, the timings (provenance).
    nasflow_stages::train_vae::report(ctx.out, &metrics)?;
    latents.write(ctx.out)?;
    timing.wall_seconds = started.elapsed().as_secs_f64();
    write_json(&ctx.provenance.join("timing.json"), &timing)
}

/// One batch of an epoch: row indices into the unlabeled cells or the labeled train set.
enum Step {
    Unlabeled(Tensor),
    Labeled(Tensor),
}

/// The batch stream: counts, the interleaving, and the permutations.
struct Schedule {
    batch: i64,
    n_unl: i64,
    n_lab: i64,
    unl_batches: usize,
    lab_batches: usize,
    coef: usize,
    k: usize,
    rng: Noise,
    /// arch2vec-original with its quirks: the one permutation of the cells.
    once: Option<Tensor>,
    original: bool,
    /// Where the permutations go at the start of an epoch.
    dev: tch::Device,
}

impl Schedule {
    fn new(p: &TrainVaeParams, d: &Data, seed: u64, dev: tch::Device) -> Schedule {
        let batch = p.batch_size.max(2) as i64;
        let original = p.variant == Variant::Arch2vecOriginal;
        let (n_unl, n_lab) = d.sizes();
        let n_lab = if original { 0 } else { n_lab };
        let unl_batches = (n_unl as usize).div_ceil(batch as usize);
        let lab_batches = (n_lab as usize).div_ceil(batch as usize);
        let mut rng = Noise::new(seed, BATCHES);
        let once = (original && p.original_quirks).then(|| rng.permutation(n_unl as usize));
        Schedule {
            batch,
            n_unl,
            n_lab,
            unl_batches,
            lab_batches,
            coef: labeled_coef(p.coef_k, unl_batches, d.n_train_nets, batch as usize),
            k: p.k,
            rng,
            once,
            original,
            dev,
        }
    }

    fn total(&self, epochs: usize) -> u64 {
        ((self.unl_batches + self.lab_batches) * epochs) as u64
    }

    /// The epoch's batches in order. Batch norm cannot train on fewer than 2 rows, so a last
    /// batch of one row is left out.
    fn epoch(&mut self) -> Vec<Step> {
        let perm_u = match &self.once {
            Some(p) => p.shallow_clone(),
            None => self.rng.permutation(self.n_unl as usize),
        };
        let perm_l = if self.original {
            Tensor::zeros([0], (tch::Kind::Int64, tch::Device::Cpu))
        } else {
            self.rng.permutation(self.n_lab as usize)
        };
        let (perm_u, perm_l) = (perm_u.to_device(self.dev), perm_l.to_device(self.dev));
        let (mut iu, mut il) = (0i64, 0i64);
        let batch = self.batch;
        let next = |perm: &Tensor, i: &mut i64, n: i64| {
            let len = batch.min(n - *i * batch);
            let idx = perm.narrow(0, *i * batch, len);
            *i += 1;
            (len >= 2).then_some(idx)
        };
        interleave(self.lab_batches, self.unl_batches, self.k, self.coef)
            .into_iter()
            .filter_map(|b| match b {
                Batch::Unlabeled => next(&perm_u, &mut iu, self.n_unl).map(Step::Unlabeled),
                Batch::Labeled => next(&perm_l, &mut il, self.n_lab).map(Step::Labeled),
            })
            .collect()
    }
}

/// What the batches are cut from, put on the device once per run: the unlabeled cells, the
/// labeled networks, the train set's rows (network, picture, targets), the seen pictures.
struct BatchSource {
    tr: (Tensor, Tensor),
    net: (Tensor, Tensor),
    network: Tensor,
    image: Tensor,
    targets: Tensor,
    seen_px: Tensor,
}

impl BatchSource {
    fn new(d: &Data, dev: tch::Device) -> BatchSource {
        let train = &d.sets["train"];
        BatchSource {
            tr: (d.tr.0.to_device(dev), d.tr.1.to_device(dev)),
            net: (d.net.0.to_device(dev), d.net.1.to_device(dev)),
            network: train.network.to_device(dev),
            image: train.image.to_device(dev),
            targets: train.targets.to_device(dev),
            seen_px: d.seen_px.to_device(dev),
        }
    }
}

/// One pass over the epoch's batches, every model on every batch; everything stays on the
/// device (the epoch's permutations are put there at its start).
fn train_epoch(
    ctx: &StageContext<TrainVaeParams>,
    d: &BatchSource,
    schedule: &mut Schedule,
    trainees: &mut [Trainee],
    epoch: usize,
) {
    let total = schedule.total(ctx.params.epochs);
    let done = schedule.total(epoch - 1);
    let with_images = trainees.iter().any(|t| t.model == Model::Io);
    for (i, step) in schedule.epoch().into_iter().enumerate() {
        let note = format!("epoch {epoch}/{}", ctx.params.epochs);
        ctx.progress_with(done + i as u64 + 1, total, "batches", note);
        match step {
            Step::Unlabeled(idx) => {
                let o = d.tr.0.index_select(0, &idx);
                let a = d.tr.1.index_select(0, &idx);
                trainees.iter_mut().for_each(|t| t.unlabeled(&o, &a));
            }
            Step::Labeled(idx) => {
                let nets_i = d.network.index_select(0, &idx);
                let images = with_images.then(|| {
                    let img = d.image.index_select(0, &idx);
                    (
                        d.seen_px.index_select(0, &img),
                        d.targets.index_select(0, &idx),
                    )
                });
                let b = LabeledBatch {
                    ops: d.net.0.index_select(0, &nets_i),
                    adj: d.net.1.index_select(0, &nets_i),
                    images,
                };
                trainees.iter_mut().for_each(|t| t.labeled(&b));
            }
        }
    }
}

/// Every model's numbers after `epoch`; then their running numbers restart, and
/// arch2vec-original with its quirks stays in eval mode from here on (arch2vec's
/// `model.eval()` after the first epoch, never undone).
fn evaluate_all(
    p: &TrainVaeParams,
    d: &Data,
    schedule: &Schedule,
    trainees: &mut [Trainee],
    dev: tch::Device,
    epoch: usize,
) -> Epoch {
    let mut models = BTreeMap::new();
    for t in trainees.iter_mut() {
        models.insert(t.model, eval::evaluate(t, d, p.prior_samples, dev));
        t.reset();
        if t.model == Model::Original && p.original_quirks {
            t.train_mode = false;
        }
    }
    Epoch {
        epoch,
        labeled_batches: schedule.lab_batches,
        unlabeled_batches: schedule.unl_batches,
        models,
    }
}

/// `checkpoint-epoch-E.safetensors`: every model's variables.
fn save_checkpoint(
    ctx: &StageContext<TrainVaeParams>,
    trainees: &[Trainee],
    epoch: usize,
) -> Result<(), StageError> {
    let named: Vec<(String, Tensor)> = trainees.iter().flat_map(|t| t.variables()).collect();
    let path = ctx
        .out
        .join(format!("checkpoint-epoch-{epoch}.safetensors"));
    Tensor::write_safetensors(&named, path).map_err(torch_err)
}
