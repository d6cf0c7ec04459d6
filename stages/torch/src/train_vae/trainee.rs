//! A model being trained: its variables, optimizers, random streams and the epoch's running
//! numbers.
//!
//! Optimizers as in info-NAS: the io model keeps the VAE's variables in one store and the head's
//! in another; unlabeled batches step one Adam over the VAE, labeled batches a second Adam over
//! the VAE and a third over the head, so the shared VAE carries two independent Adam states;
//! gradients are clipped over everything the step updates. A plain VAE (the reference, arch2vec,
//! arch2vec-original) steps one Adam over the VAE on every batch, with the VAE loss only
//! (info-NAS's `model_ref`).
//!
//! Every random draw comes from a [`Noise`] stream of the model's role, so that the io model's
//! draws (its head's dropout) do not shift the reference's, and the reference equals a
//! standalone plain run: initial weights from [`INIT_VAE`] (the same for both, so the reference
//! starts as a copy of the io model's VAE) and [`INIT_HEAD`], training noise from [`NOISE_IO`] or
//! [`NOISE_PLAIN`], prior samples from [`PRIOR_IO`] or [`PRIOR_PLAIN`].
use tch::nn;
use tch::{Kind, Tensor};

use nasflow_stages::train_vae::{Model, TrainVaeParams};
use nasflow_stages::StageError;

use crate::arch2vec::{self, Config, Vae};
use crate::device::{clip_grads, DeviceSum};
use crate::init::pytorch_defaults;
use crate::io_model::{forward_labeled, labeled_loss, IoHead};
use crate::noise::Noise;
use crate::optim::Adam;
use nasflow_stages::space::SearchSpace;

/// Stream numbers under train-vae's seed.
pub const INIT_VAE: u64 = 0x7661_0001;
pub const INIT_HEAD: u64 = 0x7661_0002;
pub const NOISE_IO: u64 = 0x7661_0003;
pub const NOISE_PLAIN: u64 = 0x7661_0004;
pub const PRIOR_IO: u64 = 0x7661_0005;
pub const PRIOR_PLAIN: u64 = 0x7661_0006;
pub const BATCHES: u64 = 0x7661_0007;

/// Clips the joint gradient norm of several stores' trainable variables, on the device.
pub fn clip_joint(stores: &[&nn::VarStore], max: f64) {
    let grads = stores
        .iter()
        .flat_map(|vs| vs.trainable_variables())
        .map(|v| v.grad())
        .collect();
    clip_grads(grads, max);
}

/// PyTorch's Adam defaults (betas 0.9, 0.999; eps 1e-8; no weight decay): one fused kernel a
/// step on CUDA, tch's on the CPU ([`crate::optim`]).
fn adam(vs: &nn::VarStore, lr: f64) -> Result<Adam, StageError> {
    Adam::new(vs, lr, vs.device().is_cuda())
}

/// Running sums of an epoch's encoder means, for the prior's mean and standard deviation.
pub struct ZStats {
    sum: Tensor,
    sq: Tensor,
    n: i64,
}

impl ZStats {
    fn new(nodes: i64, latent: i64, dev: tch::Device) -> ZStats {
        ZStats {
            sum: Tensor::zeros([nodes, latent], (Kind::Double, dev)),
            sq: Tensor::zeros([nodes, latent], (Kind::Double, dev)),
            n: 0,
        }
    }

    fn add(&mut self, mu: &Tensor) {
        let mu = mu.detach().to_kind(Kind::Double);
        self.sum += mu.sum_dim_intlist(0, false, Kind::Double);
        self.sq += (&mu * &mu).sum_dim_intlist(0, false, Kind::Double);
        self.n += mu.size()[0];
    }

    /// The mean and (sample) standard deviation per node and dimension, as `Z.mean(0), Z.std(0)`.
    pub fn mean_std(&self) -> (Tensor, Tensor) {
        let n = self.n.max(2) as f64;
        let mean = (&self.sum / n).to_kind(Kind::Float);
        let var = ((&self.sq - &self.sum * &self.sum / n) / (n - 1.0)).clamp_min(0.0);
        (mean, var.sqrt().to_kind(Kind::Float))
    }
}

/// A labeled batch: the networks' ops and adjacency; for the io model also the pictures and
/// the targets.
pub struct LabeledBatch {
    pub ops: Tensor,
    pub adj: Tensor,
    pub images: Option<(Tensor, Tensor)>,
}

// One Net per model of a run (two at most): the size difference between the variants costs
// nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Net {
    Plain {
        vs: nn::VarStore,
        opt: Adam,
    },
    Io {
        vs_vae: nn::VarStore,
        vs_head: nn::VarStore,
        head: IoHead,
        opt_unl: Adam,
        opt_lab_vae: Adam,
        opt_head: Adam,
    },
}

/// One model in training, and its running numbers for the current epoch.
pub struct Trainee {
    pub model: Model,
    pub vae: Vae,
    net: Net,
    noise: Noise,
    pub prior: Noise,
    /// Whether batches run in train mode (arch2vec-original's quirk turns it off after epoch 1).
    pub train_mode: bool,
    clip: f64,
    pub z: ZStats,
    /// Loss sums (kept on the device, read at the epoch's end) and batch counts: unlabeled,
    /// labeled.
    pub losses: [(DeviceSum, usize); 2],
}

impl Trainee {
    /// A model at its initial weights (PyTorch's initialisation from train-vae's streams).
    pub fn new(
        model: Model,
        p: &TrainVaeParams,
        seed: u64,
        outputs: i64,
        space: SearchSpace,
        dev: tch::Device,
    ) -> Result<Trainee, StageError> {
        let cfg = Config::for_space(space);
        let vs = nn::VarStore::new(dev);
        let vae = Vae::new(&vs.root(), cfg);
        pytorch_defaults(&vs, &mut Noise::new(seed, INIT_VAE));
        let (net, noise, prior) = if model == Model::Io {
            let vs_head = nn::VarStore::new(dev);
            let head = IoHead::new(
                &vs_head.root(),
                p.image_channels as i64,
                cfg.nodes,
                cfg.latent,
                outputs,
            );
            pytorch_defaults(&vs_head, &mut Noise::new(seed, INIT_HEAD));
            let net = Net::Io {
                opt_unl: adam(&vs, p.lr)?,
                opt_lab_vae: adam(&vs, p.lr)?,
                opt_head: adam(&vs_head, p.lr)?,
                vs_vae: vs,
                vs_head,
                head,
            };
            (net, NOISE_IO, PRIOR_IO)
        } else {
            let net = Net::Plain {
                opt: adam(&vs, p.lr)?,
                vs,
            };
            (net, NOISE_PLAIN, PRIOR_PLAIN)
        };
        Ok(Trainee {
            model,
            vae,
            net,
            noise: Noise::new(seed, noise),
            prior: Noise::new(seed, prior),
            train_mode: true,
            clip: p.grad_clip,
            z: ZStats::new(cfg.nodes, cfg.latent, dev),
            losses: [(DeviceSum::new(dev), 0), (DeviceSum::new(dev), 0)],
        })
    }

    /// The io model's head.
    pub fn head(&self) -> Option<&IoHead> {
        match &self.net {
            Net::Io { head, .. } => Some(head),
            Net::Plain { .. } => None,
        }
    }

    /// An unlabeled batch: a VAE-only step.
    pub fn unlabeled(&mut self, ops: &Tensor, adj: &Tensor) {
        let loss = self.vae_step(ops, adj);
        self.book(0, &loss);
    }

    /// A labeled batch: for the io model the VAE loss plus the L1 of the predicted outputs over
    /// both optimizers (its means do not count towards the prior, as in info-NAS); for a plain
    /// model a VAE step, as on an unlabeled batch.
    pub fn labeled(&mut self, b: &LabeledBatch) {
        let Net::Io {
            vs_vae,
            vs_head,
            head,
            opt_lab_vae,
            opt_head,
            ..
        } = &mut self.net
        else {
            let loss = self.vae_step(&b.ops, &b.adj);
            return self.book(1, &loss);
        };
        let (x, t) = b
            .images
            .as_ref()
            .expect("the io model's labeled batches carry pictures");
        let (r, pred) = forward_labeled(
            (&self.vae, head),
            &b.ops,
            &b.adj,
            x,
            self.train_mode,
            &mut self.noise,
        );
        let loss = labeled_loss(&r, &pred, &b.ops, &b.adj, t);
        opt_lab_vae.zero_grad();
        opt_head.zero_grad();
        loss.backward();
        clip_joint(&[vs_vae, vs_head], self.clip);
        opt_lab_vae.step();
        opt_head.step();
        self.book(1, &loss);
    }

    /// A step of the VAE alone (the io model's unlabeled optimizer); its encoder means count
    /// towards the epoch's prior. Returns the loss.
    fn vae_step(&mut self, ops: &Tensor, adj: &Tensor) -> Tensor {
        let r = self
            .vae
            .forward_t(ops, adj, self.train_mode, &mut self.noise);
        let loss = arch2vec::loss(&r, ops, adj);
        let (vs, opt) = match &mut self.net {
            Net::Plain { vs, opt } => (&*vs, opt),
            Net::Io {
                vs_vae, opt_unl, ..
            } => (&*vs_vae, opt_unl),
        };
        opt.zero_grad();
        loss.backward();
        clip_joint(&[vs], self.clip);
        opt.step();
        self.z.add(&r.mu);
        loss
    }

    fn book(&mut self, kind: usize, loss: &Tensor) {
        self.losses[kind].0.add(loss, 1.0);
        self.losses[kind].1 += 1;
    }

    /// A fresh start for the next epoch's running numbers.
    pub fn reset(&mut self) {
        let dev = self.z.sum.device();
        self.losses = [(DeviceSum::new(dev), 0), (DeviceSum::new(dev), 0)];
        self.z = ZStats::new(self.vae.nodes(), self.vae.latent(), dev);
    }

    /// Every variable, named `MODEL.vae.*` and `MODEL.head.*`, on the CPU.
    pub fn variables(&self) -> Vec<(String, Tensor)> {
        let stores: Vec<(&str, &nn::VarStore)> = match &self.net {
            Net::Plain { vs, .. } => vec![("vae", vs)],
            Net::Io {
                vs_vae, vs_head, ..
            } => vec![("vae", vs_vae), ("head", vs_head)],
        };
        let mut named = Vec::new();
        for (part, vs) in stores {
            for (name, t) in vs.variables() {
                let full = format!("{}.{part}.{name}", self.model.name());
                named.push((full, t.to_device(tch::Device::Cpu)));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }
}
