//! `train-vae`'s computation (tch): see `nasflow_stages::train_vae` for the outputs.
//!
//! Optimizers as in info-NAS: the VAE's variables in one store and the head's in another;
//! unlabeled batches step one Adam over the VAE, labeled batches step a second Adam over the VAE
//! and a third over the head, so the shared VAE carries two independent Adam states; gradients
//! are clipped over everything the step updates. The `arch2vec` variant steps one Adam over the
//! VAE on every batch, with the VAE loss only (info-NAS's `model_ref`). All data is pre-stacked
//! into tensors; batches are index gathers.
use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use nasflow_contract::layout::SUMMARY;
use nasflow_stages::files::{read_json, write_json};
use nasflow_stages::nb101::{Arch2vec, Cell, ModuleHash, Space};
use nasflow_stages::semi::{interleave, labeled_coef, Batch};
use nasflow_stages::train_vae::{TrainVaeParams, Variant};
use nasflow_stages::{images, StageContext, StageError};

use crate::arch2vec::{self, accuracy, sample_prior, Config, Vae};
use crate::io_model::{forward_labeled, labeled_loss, IoHead};
use crate::train::{prepare, to_tensor, torch_device, torch_err};

/// (ops B x 7 x 5, adj B x 7 x 7) of cells, stacked.
pub fn encode_cells<'a>(cells: impl Iterator<Item = &'a Cell>) -> (Tensor, Tensor) {
    let (mut ops, mut adj) = (Vec::new(), Vec::new());
    let mut n = 0i64;
    for c in cells {
        let e = Arch2vec::encode(c);
        ops.extend(e.ops.iter().flatten().map(|&v| v as f32));
        adj.extend(e.adj.iter().flatten().map(|&v| v as f32));
        n += 1;
    }
    (
        Tensor::from_slice(&ops).view([n, 7, 5]),
        Tensor::from_slice(&adj).view([n, 7, 7]),
    )
}

/// Clips the joint gradient norm of several stores' trainable variables.
pub fn clip_joint(stores: &[&nn::VarStore], max: f64) {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = stores
            .iter()
            .flat_map(|vs| vs.trainable_variables())
            .map(|v| v.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = max / (total + 1e-6);
        if coef < 1.0 {
            for mut g in grads {
                let _ = g.g_mul_scalar_(coef);
            }
        }
    })
}

#[derive(Serialize)]
struct Epoch {
    epoch: usize,
    unlabeled_loss: f64,
    labeled_loss: f64,
    labeled_batches: usize,
    unlabeled_batches: usize,
    valid_ops_accuracy: f64,
    valid_adj_accuracy: f64,
    validity: f64,
    uniqueness: f64,
    /// Per labeled set: (L1, mean baseline L1).
    l1: BTreeMap<String, (f64, f64)>,
    /// The batch loop alone, and with the evaluation.
    train_seconds: f64,
    seconds: f64,
}

/// A labeled set: targets, the network of each row, the picture of each row.
struct Labeled {
    targets: Tensor,
    network: Tensor,
    image: Tensor,
}

fn take(m: &mut BTreeMap<String, Tensor>, name: &str) -> Result<Tensor, StageError> {
    m.remove(name).ok_or_else(|| {
        StageError::Failed(format!(
            "io.safetensors has no `{name}` (is it preprocess's output?)"
        ))
    })
}

pub fn run(ctx: &StageContext<TrainVaeParams>) -> Result<(), StageError> {
    let p = ctx.params;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);
    tch::manual_seed(ctx.seed as i64);

    // 1. The data: unlabeled cells, the labeled networks and sets, their pictures.
    let data = Data::load(ctx)?;
    // 2. The models and their optimizers, from libtorch's seeded generator.
    let mut m = Models::new(p, &data, device)?;
    let stream = Stream::new(p, &data);
    // 3. Train epoch by epoch: the interleaved batches, then evaluation, checkpoint, metrics.
    let mut history = Vec::new();
    let metrics = |history: &[Epoch]| serde_json::json!({"variant": p.variant.name(), "interleave": {"k": p.k, "coef": stream.coef}, "epochs": history});
    let mut step = 0u64;
    for epoch in 1..=p.epochs {
        let t0 = Instant::now();
        let losses = m.train_epoch(ctx, &data, &stream, &mut step);
        let train_seconds = t0.elapsed().as_secs_f64();
        let eval = m.evaluate(p, &data, &losses);
        history.push(Epoch {
            epoch,
            unlabeled_loss: losses.unlabeled / stream.unl_batches.max(1) as f64,
            labeled_loss: losses.labeled / stream.lab_batches.max(1) as f64,
            labeled_batches: stream.lab_batches,
            unlabeled_batches: stream.unl_batches,
            valid_ops_accuracy: eval.ops_accuracy,
            valid_adj_accuracy: eval.adj_accuracy,
            validity: eval.validity,
            uniqueness: eval.uniqueness,
            l1: eval.l1,
            train_seconds,
            seconds: t0.elapsed().as_secs_f64(),
        });
        if p.checkpoints.contains(&epoch) || epoch == p.epochs {
            m.save_checkpoint(ctx, epoch)?;
        }
        write_json(&ctx.out.join("metrics.json"), &metrics(&history))?;
    }
    nasflow_stages::train_vae::report(ctx.out, &metrics(&history))?;
    // 4. The latent features of every cell.
    m.write_latent(ctx.out, &data)
}

/// Everything train-vae trains and evaluates on, stacked into tensors.
struct Data {
    unl_train: Space,
    unl_valid: Space,
    /// Unlabeled train cells (limited) and validation cells, encoded.
    tr: (Tensor, Tensor),
    va: (Tensor, Tensor),
    /// The labeled networks (preprocess's `networks.jsonl` order), encoded.
    nets: Vec<(ModuleHash, Cell)>,
    net: (Tensor, Tensor),
    n_train_nets: usize,
    sets: BTreeMap<&'static str, Labeled>,
    /// preprocess's summary (each set's mean baseline).
    summary: Value,
    /// The seen and unseen pictures (io variant only), normalised.
    seen_px: Tensor,
    unseen_px: Tensor,
}

#[derive(serde::Deserialize)]
struct Net {
    hash: ModuleHash,
    matrix: Vec<Vec<u8>>,
    ops: Vec<String>,
    split: String,
}

impl Data {
    fn load(ctx: &StageContext<TrainVaeParams>) -> Result<Data, StageError> {
        let sample = ctx.input("sample")?;
        let read = |name: &str| {
            Space::read(&sample.join(name)).map_err(|e| StageError::Failed(e.to_string()))
        };
        let (unl_train, unl_valid) = (
            read("unlabeled-train.nb101")?,
            read("unlabeled-valid.nb101")?,
        );
        let limit = match ctx.params.unlabeled_limit {
            0 => unl_train.len(),
            n => n.min(unl_train.len()),
        };
        let tr = encode_cells(unl_train.entries()[..limit].iter().map(|e| &e.1));
        let va = encode_cells(unl_valid.entries().iter().map(|e| &e.1));
        let pre = ctx.input("preprocess")?;
        let (nets, n_train_nets) = read_networks(&pre.join("networks.jsonl"))?;
        let net = encode_cells(nets.iter().map(|n| &n.1));
        let mut io_t: BTreeMap<String, Tensor> =
            Tensor::read_safetensors(pre.join("io.safetensors"))
                .map_err(torch_err)?
                .into_iter()
                .collect();
        let summary: Value = read_json(&pre.join(SUMMARY))?;
        let mut sets = BTreeMap::new();
        for name in nasflow_stages::preprocess::SETS {
            sets.insert(
                name,
                Labeled {
                    targets: take(&mut io_t, &format!("{name}_targets"))?,
                    network: take(&mut io_t, &format!("{name}_network"))?,
                    image: take(&mut io_t, &format!("{name}_image"))?,
                },
            );
        }
        let (seen_px, unseen_px) = pictures(ctx, &mut io_t)?;
        Ok(Data {
            unl_train,
            unl_valid,
            tr,
            va,
            nets,
            net,
            n_train_nets,
            sets,
            summary,
            seen_px,
            unseen_px,
        })
    }
}

/// The labeled networks of `networks.jsonl`, and how many are train networks.
fn read_networks(path: &std::path::Path) -> Result<(Vec<(ModuleHash, Cell)>, usize), StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    let nets: Vec<Net> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))
        })
        .collect::<Result<_, _>>()?;
    let cells = nets
        .iter()
        .map(|n| {
            let ops = n
                .ops
                .iter()
                .map(|o| nasflow_stages::nb101::Op::parse(o))
                .collect::<Result<Vec<_>, _>>();
            ops.and_then(|ops| Cell::new(&n.matrix, &ops))
                .map(|c| (n.hash, c))
                .map_err(|e| StageError::Failed(format!("network {}: {e}", n.hash)))
        })
        .collect::<Result<_, _>>()?;
    Ok((cells, nets.iter().filter(|n| n.split == "train").count()))
}

/// The pictures, as pretrain and extract saw them (io variant; empty for arch2vec).
fn pictures(
    ctx: &StageContext<TrainVaeParams>,
    io_t: &mut BTreeMap<String, Tensor>,
) -> Result<(Tensor, Tensor), StageError> {
    let seen_indices = Vec::<i64>::try_from(take(io_t, "seen_indices")?).map_err(torch_err)?;
    let unseen_indices = Vec::<i64>::try_from(take(io_t, "unseen_indices")?).map_err(torch_err)?;
    let cpu = tch::Device::Cpu;
    if ctx.params.variant != Variant::Io {
        let empty = || Tensor::zeros([0], (Kind::Float, cpu));
        return Ok((empty(), empty()));
    }
    let p = prepare(&ctx.params.images, seen_indices.len(), ctx.seed)?;
    if p.held_idx.iter().map(|&i| i as i64).collect::<Vec<_>>() != seen_indices {
        return Err(StageError::Config(format!(
            "stage `{}`: the images differ from the ones extract used: set the same `images` and seed",
            ctx.stage
        )));
    }
    let unseen: Vec<usize> = unseen_indices.iter().map(|&i| i as usize).collect();
    Ok((
        to_tensor(&p.held_pixels, cpu),
        to_tensor(&images::batch(&p.data.test, &unseen, None), cpu),
    ))
}

/// The batch stream's shape: batch counts and the interleaving coefficient.
struct Stream {
    batch: i64,
    unl_batches: usize,
    lab_batches: usize,
    coef: usize,
    total: u64,
}

impl Stream {
    fn new(p: &TrainVaeParams, d: &Data) -> Stream {
        let batch = p.batch_size.max(2) as i64;
        let n_unl = d.tr.0.size()[0] as usize;
        let n_lab = d.sets["train"].targets.size()[0] as usize;
        let unl_batches = n_unl.div_ceil(batch as usize);
        let lab_batches = n_lab.div_ceil(batch as usize);
        Stream {
            batch,
            unl_batches,
            lab_batches,
            coef: labeled_coef(p.coef_k, unl_batches, d.n_train_nets, batch as usize),
            total: ((unl_batches + lab_batches) * p.epochs) as u64,
        }
    }
}

/// One epoch's loss sums and the statistics of the unlabeled batches' encoder means.
struct EpochLosses {
    unlabeled: f64,
    labeled: f64,
    mu_sum: Tensor,
    mu_sq: Tensor,
    mu_n: i64,
}

/// One epoch's evaluation.
struct Evaluation {
    ops_accuracy: f64,
    adj_accuracy: f64,
    validity: f64,
    uniqueness: f64,
    l1: BTreeMap<String, (f64, f64)>,
}

/// The VAE, the io head, and the three optimizers.
struct Models {
    io: bool,
    device: tch::Device,
    cfg: Config,
    vs_vae: nn::VarStore,
    vs_head: nn::VarStore,
    vae: Vae,
    head: IoHead,
    outputs: i64,
    clip: f64,
    opt_unl: nn::Optimizer,
    opt_lab_vae: nn::Optimizer,
    opt_head: nn::Optimizer,
}

impl Models {
    fn new(p: &TrainVaeParams, d: &Data, device: tch::Device) -> Result<Models, StageError> {
        let vs_vae = nn::VarStore::new(device);
        let vs_head = nn::VarStore::new(device);
        let cfg = Config::default();
        let vae = Vae::new(&vs_vae.root(), cfg);
        let outputs = d.sets["train"].targets.size()[1];
        let head = IoHead::new(
            &vs_head.root(),
            p.image_channels as i64,
            cfg.latent,
            outputs,
        );
        let adam = || nn::Adam {
            beta1: 0.9,
            beta2: 0.999,
            wd: 0.0,
            eps: 1e-8,
            amsgrad: false,
        };
        Ok(Models {
            opt_unl: adam().build(&vs_vae, p.lr).map_err(torch_err)?,
            opt_lab_vae: adam().build(&vs_vae, p.lr).map_err(torch_err)?,
            opt_head: adam().build(&vs_head, p.lr).map_err(torch_err)?,
            io: p.variant == Variant::Io,
            device,
            cfg,
            vs_vae,
            vs_head,
            vae,
            head,
            outputs,
            clip: p.grad_clip,
        })
    }

    /// A VAE-only step (unlabeled batches; every batch of the `arch2vec` variant).
    fn vae_step(&mut self, o: &Tensor, a: &Tensor) -> (arch2vec::Output, Tensor) {
        let r = self.vae.forward_t(o, a, true);
        let loss = arch2vec::loss(&r, o, a);
        self.opt_unl.zero_grad();
        loss.backward();
        clip_joint(&[&self.vs_vae], self.clip);
        self.opt_unl.step();
        (r, loss)
    }

    /// An io step on a labeled batch: VAE loss + L1 of the predicted outputs, both optimizers.
    fn io_step(&mut self, o: &Tensor, a: &Tensor, x: &Tensor, t: &Tensor) -> Tensor {
        let (r, pred) = forward_labeled(&self.vae, &self.head, o, a, x, true);
        let loss = labeled_loss(&r, &pred, o, a, t);
        self.opt_lab_vae.zero_grad();
        self.opt_head.zero_grad();
        loss.backward();
        clip_joint(&[&self.vs_vae, &self.vs_head], self.clip);
        self.opt_lab_vae.step();
        self.opt_head.step();
        loss
    }

    /// One pass over the interleaved stream: `k` labeled batches, then `coef` unlabeled ones.
    fn train_epoch(
        &mut self,
        ctx: &StageContext<TrainVaeParams>,
        d: &Data,
        s: &Stream,
        step: &mut u64,
    ) -> EpochLosses {
        let (dev, batch) = (self.device, s.batch);
        let (n_unl, train) = (d.tr.0.size()[0], &d.sets["train"]);
        let n_lab = train.targets.size()[0];
        let perm_u = Tensor::randperm(n_unl, (Kind::Int64, tch::Device::Cpu));
        let perm_l = Tensor::randperm(n_lab, (Kind::Int64, tch::Device::Cpu));
        let (mut iu, mut il) = (0i64, 0i64);
        let latent = self.cfg.latent;
        let mut l = EpochLosses {
            unlabeled: 0.0,
            labeled: 0.0,
            mu_sum: Tensor::zeros([7, latent], (Kind::Double, dev)),
            mu_sq: Tensor::zeros([7, latent], (Kind::Double, dev)),
            mu_n: 0,
        };
        // The next slice of a permutation; batch norm cannot train on fewer than 2 rows.
        let next = |perm: &Tensor, i: &mut i64, n: i64| {
            let len = batch.min(n - *i * batch);
            let idx = perm.narrow(0, *i * batch, len);
            *i += 1;
            (len >= 2).then_some((idx, len))
        };
        for b in &interleave(s.lab_batches, s.unl_batches, ctx.params.k, s.coef) {
            *step += 1;
            ctx.progress(*step, s.total);
            match b {
                Batch::Unlabeled => {
                    let Some((idx, len)) = next(&perm_u, &mut iu, n_unl) else {
                        continue;
                    };
                    let o = d.tr.0.index_select(0, &idx).to_device(dev);
                    let a = d.tr.1.index_select(0, &idx).to_device(dev);
                    let (r, loss) = self.vae_step(&o, &a);
                    l.unlabeled += loss.double_value(&[]);
                    let mu = r.mu.detach().to_kind(Kind::Double);
                    l.mu_sum += mu.sum_dim_intlist(0, false, Kind::Double);
                    l.mu_sq += (&mu * &mu).sum_dim_intlist(0, false, Kind::Double);
                    l.mu_n += len;
                }
                Batch::Labeled => {
                    let Some((idx, _)) = next(&perm_l, &mut il, n_lab) else {
                        continue;
                    };
                    let nets_i = train.network.index_select(0, &idx);
                    let o = d.net.0.index_select(0, &nets_i).to_device(dev);
                    let a = d.net.1.index_select(0, &nets_i).to_device(dev);
                    let loss = if self.io {
                        let img = train.image.index_select(0, &idx);
                        let x = d.seen_px.index_select(0, &img).to_device(dev);
                        let t = train.targets.index_select(0, &idx).to_device(dev);
                        self.io_step(&o, &a, &x, &t)
                    } else {
                        self.vae_step(&o, &a).1
                    };
                    l.labeled += loss.double_value(&[]);
                }
            }
        }
        l
    }

    /// Reconstruction accuracy on the unlabeled validation cells, validity and uniqueness of
    /// cells decoded from the prior fitted to this epoch's encoder means, labeled L1 per set.
    fn evaluate(&self, p: &TrainVaeParams, d: &Data, l: &EpochLosses) -> Evaluation {
        let _guard = tch::no_grad_guard();
        let dev = self.device;
        let (mut acc_o, mut acc_a, mut seen) = (0.0, 0.0, 0i64);
        let nv = d.va.0.size()[0];
        for s in (0..nv).step_by(4096) {
            let len = 4096.min(nv - s);
            let o = d.va.0.narrow(0, s, len).to_device(dev);
            let a = d.va.1.narrow(0, s, len).to_device(dev);
            let r = self.vae.forward_t(&o, &a, false);
            let (x, y) = accuracy(&r, &o, &a);
            acc_o += x * len as f64;
            acc_a += y * len as f64;
            seen += len;
        }
        let n = l.mu_n.max(2) as f64;
        let z_mean = (&l.mu_sum / n).to_kind(Kind::Float);
        let var = ((&l.mu_sq - &l.mu_sum * &l.mu_sum / n) / (n - 1.0)).clamp_min(0.0);
        let z_std = var.sqrt().to_kind(Kind::Float);
        let prior_n = p.prior_samples as i64;
        let (validity, uniqueness) = if prior_n > 0 {
            sample_prior(&self.vae, &z_mean, &z_std, prior_n)
        } else {
            (f64::NAN, f64::NAN)
        };
        Evaluation {
            ops_accuracy: acc_o / seen.max(1) as f64,
            adj_accuracy: acc_a / seen.max(1) as f64,
            validity,
            uniqueness,
            l1: if self.io {
                self.labeled_l1(d)
            } else {
                BTreeMap::new()
            },
        }
    }

    /// Per labeled set other than train: (L1 of the predicted outputs, mean baseline L1).
    fn labeled_l1(&self, d: &Data) -> BTreeMap<String, (f64, f64)> {
        let dev = self.device;
        let mut l1 = BTreeMap::new();
        for (name, set) in &d.sets {
            if *name == "train" || set.targets.size()[0] == 0 {
                continue;
            }
            let px = if name.contains("unseen") || *name == "test_valid" {
                &d.unseen_px
            } else {
                &d.seen_px
            };
            let rows = set.targets.size()[0];
            let mut err = 0.0;
            for s in (0..rows).step_by(1024) {
                let len = 1024.min(rows - s);
                let nets_i = set.network.narrow(0, s, len);
                let o = d.net.0.index_select(0, &nets_i).to_device(dev);
                let a = d.net.1.index_select(0, &nets_i).to_device(dev);
                let x = px
                    .index_select(0, &set.image.narrow(0, s, len))
                    .to_device(dev);
                let (_, pred) = forward_labeled(&self.vae, &self.head, &o, &a, &x, false);
                err += (pred - set.targets.narrow(0, s, len).to_device(dev))
                    .abs()
                    .sum(Kind::Double)
                    .double_value(&[]);
            }
            let baseline = d.summary[*name]["mean_baseline_l1"]
                .as_f64()
                .unwrap_or(f64::NAN);
            l1.insert(
                name.to_string(),
                (err / (rows * self.outputs) as f64, baseline),
            );
        }
        l1
    }

    /// `checkpoint-epoch-E.safetensors`: every variable (`vae.*`, and `head.*` for io).
    fn save_checkpoint(
        &self,
        ctx: &StageContext<TrainVaeParams>,
        epoch: usize,
    ) -> Result<(), StageError> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in [("vae", &self.vs_vae), ("head", &self.vs_head)] {
            if prefix == "head" && !self.io {
                continue;
            }
            for (name, t) in vs.variables() {
                named.push((format!("{prefix}.{name}"), t.to_device(tch::Device::Cpu)));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let path = ctx
            .out
            .join(format!("checkpoint-epoch-{epoch}.safetensors"));
        Tensor::write_safetensors(&named, path).map_err(torch_err)
    }

    /// The latent feature of every cell (unlabeled train, unlabeled validation, labeled): the
    /// mean over the 7 nodes of the encoder mean; rows in `latent-cells.nb101` order.
    fn write_latent(&self, out: &std::path::Path, d: &Data) -> Result<(), StageError> {
        let _guard = tch::no_grad_guard();
        let mut all: Vec<(ModuleHash, Cell)> = d.unl_train.entries().to_vec();
        all.extend_from_slice(d.unl_valid.entries());
        all.extend(d.nets.iter().copied());
        let space = Space::from_entries(all);
        let cells_path = out.join("latent-cells.nb101");
        space
            .write(&cells_path)
            .map_err(|e| StageError::io(&cells_path, e))?;
        let (ops, adj) = encode_cells(space.entries().iter().map(|e| &e.1));
        let n = ops.size()[0];
        let mut feats = Vec::new();
        for s in (0..n).step_by(8192) {
            let len = 8192.min(n - s);
            let (mu, _) = self.vae.encode(
                &ops.narrow(0, s, len).to_device(self.device),
                &adj.narrow(0, s, len).to_device(self.device),
                false,
            );
            feats.push(
                mu.mean_dim(1, false, Kind::Float)
                    .to_device(tch::Device::Cpu),
            );
        }
        let features = Tensor::cat(&feats, 0);
        Tensor::write_safetensors(&[("features", features)], out.join("latent.safetensors"))
            .map_err(torch_err)
    }
}
