//! `pretrain`'s computation (tch): NASBench-PyTorch's trainer. SGD (lr 0.025, momentum 0.9,
//! weight decay 1e-4 on every parameter), learning rate `lr * (1 + cos(pi * e / epochs)) / 2` in
//! epoch e (cosine annealing stepped per epoch, so it never reaches 0), gradient-norm clipping at
//! 5, cross-entropy; random crop (4-pixel padding) and horizontal flip on the training images.
//!
//! Seeds: libtorch's generator is seeded with the pipeline seed before the network is built (so
//! every network starts as NASBench-PyTorch's would with that seed), and batches are shuffled and
//! augmented by ChaCha8 streams of the same seed. On the CPU, the same seed and thread count give
//! bit-identical weights.
use std::time::Instant;

use serde::Serialize;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::device::{clip_grad_norm, torch_device, torch_err, DeviceSum};
use crate::image_cache::{self, EpochPlan, OnDevice};
use crate::network::{count_trainable, AnyNetwork, Init};
use crate::shim::{self, Bf16Autocast};
use nasflow_stages::files::write_json;
use nasflow_stages::images::{self, Dataset, ImageSource, Images};
use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::nb101::ModuleHash;
use nasflow_stages::pretrain::{cell_fields, item_arch, NetworkInfo, Precision, PretrainParams};
use nasflow_stages::space::Arch;
use nasflow_stages::{StageContext, StageError};

/// Streams of the pipeline seed (see `images::rng`).
pub const SHUFFLE_STREAM: u64 = 1;
pub const AUGMENT_STREAM: u64 = 2;
/// The held-out images' one frozen augmentation (info-NAS at the paper era gave them the train
/// transform, materialised once).
pub const HELD_OUT_STREAM: u64 = 3;

/// The image set, its train/held-out split, and the held-out images frozen once (augmented).
pub struct Prepared {
    pub data: Dataset,
    pub train_idx: Vec<usize>,
    pub held_idx: Vec<usize>,
    /// N x 3 x 32 x 32, normalised.
    pub held_pixels: Vec<f32>,
}

pub fn prepare(source: &ImageSource, held_out: usize, seed: u64) -> Result<Prepared, StageError> {
    let data = images::load(source, seed).map_err(|e| StageError::Failed(e.to_string()))?;
    if held_out >= data.train.len() {
        return Err(StageError::Config(format!(
            "held_out = {held_out} but the image set has {} training images",
            data.train.len()
        )));
    }
    let (train_idx, held_idx) = images::split(data.train.len(), held_out, seed);
    let held_pixels = images::batch(
        &data.train,
        &held_idx,
        Some(&mut images::rng(seed, HELD_OUT_STREAM)),
    );
    Ok(Prepared {
        data,
        train_idx,
        held_idx,
        held_pixels,
    })
}

pub fn to_tensor(pixels: &[f32], device: tch::Device) -> Tensor {
    let n = (pixels.len() / images::PIXELS) as i64;
    Tensor::from_slice(pixels)
        .view([n, 3, images::SIDE as i64, images::SIDE as i64])
        .to_device(device)
}

pub fn labels(images: &Images, idx: &[usize], device: tch::Device) -> Tensor {
    let l: Vec<i64> = idx.iter().map(|&i| images.labels[i] as i64).collect();
    Tensor::from_slice(&l).to_device(device)
}

/// How many rows' argmax is their label, as a float64 scalar on the device.
fn correct_count(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Float)
        .sum(Kind::Float)
        .to_kind(Kind::Double)
}

/// (mean loss, accuracy) of the network in eval mode on pictures already on its device, in
/// batches of 250; one read from the device at the end.
pub fn evaluate(net: &AnyNetwork, pixels: &Tensor, labels_t: &Tensor) -> (f64, f64) {
    let _guard = tch::no_grad_guard();
    let n = pixels.size()[0];
    let device = pixels.device();
    let (mut loss, mut correct) = (DeviceSum::new(device), DeviceSum::new(device));
    for start in (0..n).step_by(250) {
        let len = (n - start).min(250);
        let x = pixels.narrow(0, start, len);
        let y = labels_t.narrow(0, start, len);
        let logits = net.forward_t(&x, false);
        loss.add(&logits.cross_entropy_for_logits(&y), len as f64);
        correct.add(&correct_count(&logits, &y), 1.0);
    }
    let n = n.max(1) as f64;
    (loss.value() / n, correct.value() / n)
}

#[derive(Serialize)]
struct Epoch {
    epoch: usize,
    lr: f64,
    train_loss: f64,
    train_accuracy: f64,
    held_out_loss: f64,
    held_out_accuracy: f64,
}

/// `metrics.json`: a function of the inputs, params, seed and thread count.
#[derive(Serialize)]
struct Metrics {
    hash: String,
    epochs: Vec<Epoch>,
    test_accuracy: f64,
    test_images: usize,
    train_images: usize,
}

/// `timing.json` in the provenance directory: what varies from run to run.
#[derive(Serialize)]
struct Timing {
    wall_seconds: f64,
    epoch_seconds: Vec<f64>,
    images_per_second: f64,
    device: String,
    threads: usize,
}

/// The network being trained and its optimizer.
struct Trainee {
    vs: nn::VarStore,
    net: AnyNetwork,
    opt: nn::Optimizer,
    device: tch::Device,
}

pub fn run(ctx: &StageContext<PretrainParams>) -> Result<(), StageError> {
    let started = Instant::now();
    let p = ctx.params;
    let (hash, cell) = item_arch(ctx)?;
    let sk = Skeleton {
        in_channels: 3,
        init_channels: p.init_channels,
        stacks: p.stacks,
        cells_per_stack: p.cells_per_stack,
        classes: images::CLASSES,
    };
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);

    // 1. The images (loaded and put on the device once per worker): train (limited), held
    //    out, test (limited).
    let data = image_cache::on_device(&p.images, p.held_out, ctx.seed, device)?;
    let mut train_idx = data.prepared.train_idx.clone();
    if p.train_limit > 0 {
        train_idx.truncate(p.train_limit);
    }
    let test_n = match p.test_limit {
        0 => data.prepared.data.test.len(),
        n => n.min(data.prepared.data.test.len()),
    };

    // 2. The network, built after seeding libtorch, and SGD.
    let vs = nn::VarStore::new(device);
    let net = crate::device::seeded(ctx.seed, || {
        AnyNetwork::new(&vs.root(), &cell, &sk, Init::Paper)
    });
    if p.channels_last {
        shim::vars_to_channels_last(&vs);
    }
    if device.is_cuda() {
        shim::set_switches(false, false, p.tf32);
    }
    let opt = nn::Sgd {
        momentum: p.momentum,
        dampening: 0.0,
        wd: p.weight_decay,
        nesterov: false,
    }
    .build(&vs, p.lr)
    .map_err(torch_err)?;
    let mut t = Trainee {
        vs,
        net,
        opt,
        device,
    };

    // 3. Train, evaluating on the held-out images after every epoch.
    let (history, epoch_seconds, trained_images) = train(ctx, &mut t, &data, &mut train_idx);

    // 4. Test, and write the outputs.
    let test_pixels = data.test.narrow(0, 0, test_n as i64);
    let test_labels = data.test_labels.narrow(0, 0, test_n as i64);
    let (_, test_accuracy) = evaluate(&t.net, &test_pixels, &test_labels);
    let metrics = Metrics {
        hash: hash.hex(),
        epochs: history,
        test_accuracy,
        test_images: test_n,
        train_images: train_idx.len(),
    };
    write_outputs(ctx, &t, &data.prepared, (hash, &cell, &sk), &metrics)?;
    let train_seconds: f64 = epoch_seconds.iter().sum();
    let timing = Timing {
        wall_seconds: started.elapsed().as_secs_f64(),
        images_per_second: trained_images as f64 / train_seconds.max(1e-9),
        epoch_seconds,
        device: ctx.device.to_string(),
        threads: ctx.threads,
    };
    write_json(&ctx.provenance.join("timing.json"), &timing)
}

/// `x` in channels-last format when asked.
pub fn layout(x: Tensor, channels_last: bool) -> Tensor {
    if channels_last {
        shim::channels_last(&x)
    } else {
        x
    }
}

/// `weights.safetensors`, `network.json`, `metrics.json`.
fn write_outputs(
    ctx: &StageContext<PretrainParams>,
    t: &Trainee,
    data: &Prepared,
    (hash, cell, sk): (ModuleHash, &Arch, &Skeleton),
    metrics: &Metrics,
) -> Result<(), StageError> {
    let out = ctx.out;
    // safetensors saves contiguous tensors only.
    shim::vars_to_contiguous(&t.vs);
    t.vs.save(out.join("weights.safetensors"))
        .map_err(torch_err)?;
    let (space, _, matrix, ops, arch) = cell_fields(cell);
    let info = NetworkInfo {
        space,
        hash,
        matrix,
        ops,
        arch,
        init_channels: sk.init_channels,
        stacks: sk.stacks,
        cells_per_stack: sk.cells_per_stack,
        classes: sk.classes,
        trainable_parameters: count_trainable(&t.vs),
        multiply_accumulates: cell.multiply_accumulates(sk, images::SIDE),
        images: data.data.name.clone(),
        held_out: ctx.params.held_out,
    };
    write_json(&out.join("network.json"), &info)?;
    write_json(&out.join("metrics.json"), metrics)
}

/// Every epoch: set the cosine learning rate, shuffle, train on the batches (augmented on the
/// device), evaluate on the held-out images. Losses and counts stay on the device until the
/// epoch ends. Returns the epochs, each epoch's seconds, the images trained on.
fn train(
    ctx: &StageContext<PretrainParams>,
    t: &mut Trainee,
    data: &OnDevice,
    train_idx: &mut [usize],
) -> (Vec<Epoch>, Vec<f64>, usize) {
    let p = ctx.params;
    let (epochs, batch_size) = (p.epochs, p.batch_size.max(1));
    let mut shuffle_rng = images::rng(ctx.seed, SHUFFLE_STREAM);
    let mut augment_rng = images::rng(ctx.seed, AUGMENT_STREAM);
    let steps_per_epoch = train_idx.len().div_ceil(batch_size);
    let total = (steps_per_epoch * epochs) as u64;
    let mut history = Vec::new();
    let mut trained_images = 0usize;
    let mut seconds = Vec::with_capacity(epochs);
    for epoch in 0..epochs {
        let t0 = Instant::now();
        let epoch_lr =
            p.lr * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0;
        t.opt.set_lr(epoch_lr);
        images::shuffle(train_idx, &mut shuffle_rng);
        // Batch norm cannot train on one picture: a last batch of one is left out (and draws
        // no augmentation).
        let kept = match train_idx.len() % batch_size {
            1 => train_idx.len() - 1,
            _ => train_idx.len(),
        };
        let augments: Vec<images::Augment> = (0..kept)
            .map(|_| images::Augment::draw(&mut augment_rng))
            .collect();
        let plan = EpochPlan::new(&train_idx[..kept], &augments, t.device);
        let (mut loss_sum, mut correct) = (DeviceSum::new(t.device), DeviceSum::new(t.device));
        for (step, start) in (0..kept).step_by(batch_size).enumerate() {
            let n = (kept - start).min(batch_size);
            let x = layout(
                plan.batch(&data.padded, start as i64, n as i64),
                p.channels_last,
            );
            let y = data
                .train_labels
                .index_select(0, &plan.idx.narrow(0, start as i64, n as i64));
            let (logits, loss) = {
                let _bf16 = (p.precision == Precision::Bf16).then(|| Bf16Autocast::enter(t.device));
                let logits = t.net.forward_t(&x, true);
                let loss = logits.cross_entropy_for_logits(&y);
                (logits, loss)
            };
            t.opt.zero_grad();
            loss.backward();
            clip_grad_norm(&t.vs, p.grad_clip);
            t.opt.step();
            loss_sum.add(&loss, n as f64);
            correct.add(&correct_count(&logits.detach(), &y), 1.0);
            ctx.progress((epoch * steps_per_epoch + step + 1) as u64, total);
        }
        trained_images += kept;
        let (held_out_loss, held_out_accuracy) = evaluate(&t.net, &data.held, &data.held_labels);
        let seen = kept.max(1) as f64;
        history.push(Epoch {
            epoch: epoch + 1,
            lr: epoch_lr,
            train_loss: loss_sum.value() / seen,
            train_accuracy: correct.value() / seen,
            held_out_loss,
            held_out_accuracy,
        });
        seconds.push(t0.elapsed().as_secs_f64());
    }
    (history, seconds, trained_images)
}
