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

use nasflow_stages::nb101::{Arch2vec, Cell, ModuleHash, Space};
use nasflow_stages::pretrain::{read_json, write_json};
use nasflow_stages::semi::{interleave, labeled_coef, Batch};
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

pub fn run(ctx: &StageContext) -> Result<(), StageError> {
    let io = match ctx.str("variant")? {
        "io" => true,
        "arch2vec" => false,
        other => {
            return Err(StageError::Config(format!(
                "stage `{}`: variant must be \"io\" or \"arch2vec\", not \"{other}\"",
                ctx.stage
            )))
        }
    };
    let epochs = ctx.count("epochs")?;
    let batch = ctx.count("batch_size")?.max(2) as i64;
    let (lr, clip, coef_k) = (
        ctx.float("lr")?,
        ctx.float("grad_clip")?,
        ctx.float("coef_k")?,
    );
    let k = ctx.count("k")?;
    let checkpoints: Vec<usize> = ctx.list("checkpoints", |v| v.as_u64().map(|e| e as usize))?;
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);
    tch::manual_seed(ctx.seed as i64);

    // Unlabeled cells.
    let sample = ctx.input("sample")?;
    let read =
        |name: &str| Space::read(&sample.join(name)).map_err(|e| StageError::Failed(e.to_string()));
    let (unl_train, unl_valid) = (
        read("unlabeled-train.nb101")?,
        read("unlabeled-valid.nb101")?,
    );
    let limit = match ctx.count("unlabeled_limit")? {
        0 => unl_train.len(),
        n => n.min(unl_train.len()),
    };
    let (tr_ops, tr_adj) = encode_cells(unl_train.entries()[..limit].iter().map(|e| &e.1));
    let (va_ops, va_adj) = encode_cells(unl_valid.entries().iter().map(|e| &e.1));

    // Labeled networks and sets.
    let pre = ctx.input("preprocess")?;
    let nets_path = pre.join("networks.jsonl");
    let nets_text =
        std::fs::read_to_string(&nets_path).map_err(|e| StageError::io(&nets_path, e))?;
    #[derive(serde::Deserialize)]
    struct Net {
        hash: ModuleHash,
        matrix: Vec<Vec<u8>>,
        ops: Vec<String>,
        split: String,
    }
    let nets: Vec<Net> = nets_text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| StageError::Failed(format!("{}: {e}", nets_path.display())))
        })
        .collect::<Result<_, _>>()?;
    let net_cells: Vec<Cell> = nets
        .iter()
        .map(|n| {
            let ops = n
                .ops
                .iter()
                .map(|o| nasflow_stages::nb101::Op::parse(o))
                .collect::<Result<Vec<_>, _>>();
            ops.and_then(|ops| Cell::new(&n.matrix, &ops))
                .map_err(|e| StageError::Failed(format!("network {}: {e}", n.hash)))
        })
        .collect::<Result<_, _>>()?;
    let (net_ops, net_adj) = encode_cells(net_cells.iter());
    let n_train_nets = nets.iter().filter(|n| n.split == "train").count();
    let mut io_t: BTreeMap<String, Tensor> = Tensor::read_safetensors(pre.join("io.safetensors"))
        .map_err(torch_err)?
        .into_iter()
        .collect();
    let summary: Value = read_json(&pre.join("summary.json"))?;
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
    let seen_indices = Vec::<i64>::try_from(take(&mut io_t, "seen_indices")?).map_err(torch_err)?;
    let unseen_indices =
        Vec::<i64>::try_from(take(&mut io_t, "unseen_indices")?).map_err(torch_err)?;

    // Pictures, as pretrain and extract saw them.
    let (seen_px, unseen_px) = if io {
        let p = prepare(ctx.str("images")?, seen_indices.len(), ctx.seed)?;
        if p.held_idx.iter().map(|&i| i as i64).collect::<Vec<_>>() != seen_indices {
            return Err(StageError::Config(format!(
                "stage `{}`: the images differ from the ones extract used: set the same `images` and seed",
                ctx.stage
            )));
        }
        let unseen: Vec<usize> = unseen_indices.iter().map(|&i| i as usize).collect();
        (
            to_tensor(&p.held_pixels, tch::Device::Cpu),
            to_tensor(
                &images::batch(&p.data.test, &unseen, None),
                tch::Device::Cpu,
            ),
        )
    } else {
        (
            Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)),
            Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)),
        )
    };

    // Models and optimizers.
    let vs_vae = nn::VarStore::new(device);
    let vs_head = nn::VarStore::new(device);
    let cfg = Config::default();
    let vae = Vae::new(&vs_vae.root(), cfg);
    let outputs = sets["train"].targets.size()[1];
    let head = IoHead::new(
        &vs_head.root(),
        ctx.count("image_channels")? as i64,
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
    let mut opt_unl = adam().build(&vs_vae, lr).map_err(torch_err)?;
    let mut opt_lab_vae = adam().build(&vs_vae, lr).map_err(torch_err)?;
    let mut opt_head = adam().build(&vs_head, lr).map_err(torch_err)?;

    let n_unl = tr_ops.size()[0];
    let train = &sets["train"];
    let n_lab = train.targets.size()[0];
    let unl_batches = (n_unl as usize).div_ceil(batch as usize);
    let lab_batches = (n_lab as usize).div_ceil(batch as usize);
    let coef = labeled_coef(coef_k, unl_batches, n_train_nets, batch as usize);
    let total = ((unl_batches + lab_batches) * epochs) as u64;
    let mut step = 0u64;
    // A VAE-only step (unlabeled batches; every batch of the `arch2vec` variant).
    let mut vae_step = |o: &Tensor, a: &Tensor| {
        let r = vae.forward_t(o, a, true);
        let loss = arch2vec::loss(&r, o, a);
        opt_unl.zero_grad();
        loss.backward();
        clip_joint(&[&vs_vae], clip);
        opt_unl.step();
        (r, loss)
    };
    let mut history = Vec::new();
    let metrics = |history: &[Epoch]| serde_json::json!({"variant": if io { "io" } else { "arch2vec" }, "interleave": {"k": k, "coef": coef}, "epochs": history});
    let prior_n = ctx.count("prior_samples")? as i64;
    let out = ctx.out;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        let perm_u = Tensor::randperm(n_unl, (Kind::Int64, tch::Device::Cpu));
        let perm_l = Tensor::randperm(n_lab, (Kind::Int64, tch::Device::Cpu));
        let (mut iu, mut il) = (0i64, 0i64);
        let (mut unl_loss, mut lab_loss) = (0.0, 0.0);
        let mut mu_sum = Tensor::zeros([7, cfg.latent], (Kind::Double, device));
        let mut mu_sq = Tensor::zeros([7, cfg.latent], (Kind::Double, device));
        let mut mu_n = 0i64;
        let order = interleave(lab_batches, unl_batches, k, coef);
        for b in &order {
            step += 1;
            (ctx.progress)(step, total);
            // The next slice of a permutation; batch norm cannot train on fewer than 2 rows.
            let next = |perm: &Tensor, i: &mut i64, n: i64| {
                let len = batch.min(n - *i * batch);
                let idx = perm.narrow(0, *i * batch, len);
                *i += 1;
                (len >= 2).then_some((idx, len))
            };
            match b {
                Batch::Unlabeled => {
                    let Some((idx, len)) = next(&perm_u, &mut iu, n_unl) else {
                        continue;
                    };
                    let (o, a) = (
                        tr_ops.index_select(0, &idx).to_device(device),
                        tr_adj.index_select(0, &idx).to_device(device),
                    );
                    let (r, loss) = vae_step(&o, &a);
                    unl_loss += loss.double_value(&[]);
                    let mu = r.mu.detach().to_kind(Kind::Double);
                    mu_sum += mu.sum_dim_intlist(0, false, Kind::Double);
                    mu_sq += (&mu * &mu).sum_dim_intlist(0, false, Kind::Double);
                    mu_n += len;
                }
                Batch::Labeled => {
                    let Some((idx, _)) = next(&perm_l, &mut il, n_lab) else {
                        continue;
                    };
                    let nets_i = train.network.index_select(0, &idx);
                    let (o, a) = (
                        net_ops.index_select(0, &nets_i).to_device(device),
                        net_adj.index_select(0, &nets_i).to_device(device),
                    );
                    let loss = if io {
                        let x = seen_px
                            .index_select(0, &train.image.index_select(0, &idx))
                            .to_device(device);
                        let t = train.targets.index_select(0, &idx).to_device(device);
                        let (r, pred) = forward_labeled(&vae, &head, &o, &a, &x, true);
                        let loss = labeled_loss(&r, &pred, &o, &a, &t);
                        opt_lab_vae.zero_grad();
                        opt_head.zero_grad();
                        loss.backward();
                        clip_joint(&[&vs_vae, &vs_head], clip);
                        opt_lab_vae.step();
                        opt_head.step();
                        loss
                    } else {
                        vae_step(&o, &a).1
                    };
                    lab_loss += loss.double_value(&[]);
                }
            }
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        // Evaluation.
        let _guard = tch::no_grad_guard();
        let (mut acc_o, mut acc_a, mut seen) = (0.0, 0.0, 0i64);
        let nv = va_ops.size()[0];
        for s in (0..nv).step_by(4096) {
            let len = 4096.min(nv - s);
            let (o, a) = (
                va_ops.narrow(0, s, len).to_device(device),
                va_adj.narrow(0, s, len).to_device(device),
            );
            let r = vae.forward_t(&o, &a, false);
            let (x, y) = accuracy(&r, &o, &a);
            acc_o += x * len as f64;
            acc_a += y * len as f64;
            seen += len;
        }
        let n = mu_n.max(2) as f64;
        let z_mean = (&mu_sum / n).to_kind(Kind::Float);
        let var = ((&mu_sq - &mu_sum * &mu_sum / n) / (n - 1.0)).clamp_min(0.0);
        let z_std = var.sqrt().to_kind(Kind::Float);
        let (validity, uniqueness) = if prior_n > 0 {
            sample_prior(&vae, &z_mean, &z_std, prior_n)
        } else {
            (f64::NAN, f64::NAN)
        };
        let mut l1 = BTreeMap::new();
        if io {
            for (name, set) in &sets {
                if *name == "train" || set.targets.size()[0] == 0 {
                    continue;
                }
                let px = if name.contains("unseen") || *name == "test_valid" {
                    &unseen_px
                } else {
                    &seen_px
                };
                let rows = set.targets.size()[0];
                let mut err = 0.0;
                for s in (0..rows).step_by(1024) {
                    let len = 1024.min(rows - s);
                    let nets_i = set.network.narrow(0, s, len);
                    let (o, a) = (
                        net_ops.index_select(0, &nets_i).to_device(device),
                        net_adj.index_select(0, &nets_i).to_device(device),
                    );
                    let x = px
                        .index_select(0, &set.image.narrow(0, s, len))
                        .to_device(device);
                    let (_, pred) = forward_labeled(&vae, &head, &o, &a, &x, false);
                    err += (pred - set.targets.narrow(0, s, len).to_device(device))
                        .abs()
                        .sum(Kind::Double)
                        .double_value(&[]);
                }
                let baseline = summary[*name]["mean_baseline_l1"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                l1.insert(name.to_string(), (err / (rows * outputs) as f64, baseline));
            }
        }
        history.push(Epoch {
            epoch,
            unlabeled_loss: unl_loss / unl_batches.max(1) as f64,
            labeled_loss: lab_loss / lab_batches.max(1) as f64,
            labeled_batches: lab_batches,
            unlabeled_batches: unl_batches,
            valid_ops_accuracy: acc_o / seen.max(1) as f64,
            valid_adj_accuracy: acc_a / seen.max(1) as f64,
            validity,
            uniqueness,
            l1,
            train_seconds,
            seconds: t0.elapsed().as_secs_f64(),
        });
        if checkpoints.contains(&epoch) || epoch == epochs {
            let mut named: Vec<(String, Tensor)> = Vec::new();
            for (prefix, vs) in [("vae", &vs_vae), ("head", &vs_head)] {
                if prefix == "head" && !io {
                    continue;
                }
                for (name, t) in vs.variables() {
                    named.push((format!("{prefix}.{name}"), t.to_device(tch::Device::Cpu)));
                }
            }
            named.sort_by(|a, b| a.0.cmp(&b.0));
            Tensor::write_safetensors(
                &named,
                out.join(format!("checkpoint-epoch-{epoch}.safetensors")),
            )
            .map_err(torch_err)?;
        }
        write_json(&out.join("metrics.json"), &metrics(&history))?;
    }
    nasflow_stages::train_vae::report(out, &metrics(&history))?;

    // Latent features of every cell: the mean over the 7 nodes of the encoder mean.
    let _guard = tch::no_grad_guard();
    let mut all: Vec<(ModuleHash, Cell)> = unl_train.entries().to_vec();
    all.extend_from_slice(unl_valid.entries());
    all.extend(nets.iter().map(|n| n.hash).zip(net_cells.iter().copied()));
    let space = Space::from_entries(all);
    space
        .write(&out.join("latent-cells.nb101"))
        .map_err(|e| StageError::io(out.join("latent-cells.nb101"), e))?;
    let (ops, adj) = encode_cells(space.entries().iter().map(|e| &e.1));
    let n = ops.size()[0];
    let mut feats = Vec::new();
    for s in (0..n).step_by(8192) {
        let len = 8192.min(n - s);
        let (mu, _) = vae.encode(
            &ops.narrow(0, s, len).to_device(device),
            &adj.narrow(0, s, len).to_device(device),
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
