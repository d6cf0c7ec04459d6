//! info-NAS's extension of the VAE (`DensePredConvModel`, the "dense" model of the paper era):
//! from a cell's node embeddings and an image, predict what the cell's trained network outputs on
//! that image (the preprocessed 513-vector at paper size).
//!
//! - image branch: ConvBnRelu(3, c, 3x3), then ConvBnRelu(c, c), ConvBnRelu(c, 2c, stride 2),
//!   ConvBnRelu(2c, 2c), ConvBnRelu(2c, 4c, stride 2) (c = 128: 32 -> 16 -> 8 pixels), global
//!   average pooling (4c = 512);
//! - latent branch: the 7 x 16 node embeddings (the sampled z in training, mu in eval) flattened,
//!   Linear(112, 16), ReLU;
//! - head: concatenation (528), Linear(528, 512), then ReLU, Dropout(0.5), Linear(512, 512),
//!   ReLU, Dropout(0.5), Linear(512, outputs); no final activation;
//! - labeled loss: the VAE loss (weight 1) + mean L1 to the target.
//!
//! Convolutions have no bias; layers are initialised as PyTorch's ([`crate::init`]).
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use crate::arch2vec::{self, Output, Vae};
use crate::noise::Noise;

#[derive(Debug)]
struct Cbr {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl Cbr {
    fn new(p: nn::Path, cin: i64, cout: i64, stride: i64) -> Cbr {
        let cfg = nn::ConvConfig {
            stride,
            padding: 1,
            bias: false,
            ..Default::default()
        };
        Cbr {
            conv: nn::conv2d(&p / "conv", cin, cout, 3, cfg),
            bn: nn::batch_norm2d(&p / "bn", cout, Default::default()),
        }
    }
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train).relu()
    }
}

/// The image and latent branches and the head (the VAE lives apart, see `arch2vec`).
#[derive(Debug)]
pub struct IoHead {
    convs: Vec<Cbr>,
    z_dense: nn::Linear,
    concat_dense: nn::Linear,
    dense1: nn::Linear,
    dense2: nn::Linear,
    dropout: f64,
}

impl IoHead {
    /// `channels`: the image branch's first width (paper: 128); `nodes` x `latent`: the
    /// graph's nodes (NB101 7) and per-node latent size (16); `outputs`: the target length (C + 1).
    pub fn new(p: &nn::Path, channels: i64, nodes: i64, latent: i64, outputs: i64) -> IoHead {
        let c = channels;
        let convs = vec![
            Cbr::new(p / "conv" / 0, 3, c, 1),
            Cbr::new(p / "conv" / 1, c, c, 1),
            Cbr::new(p / "conv" / 2, c, 2 * c, 2),
            Cbr::new(p / "conv" / 3, 2 * c, 2 * c, 1),
            Cbr::new(p / "conv" / 4, 2 * c, 4 * c, 2),
        ];
        IoHead {
            convs,
            z_dense: nn::linear(p / "z_dense", nodes * latent, latent, Default::default()),
            concat_dense: nn::linear(p / "concat_dense", latent + 4 * c, 512, Default::default()),
            dense1: nn::linear(p / "dense1", 512, 512, Default::default()),
            dense2: nn::linear(p / "dense2", 512, outputs, Default::default()),
            dropout: 0.5,
        }
    }

    /// The prediction from node embeddings `z` (B x 7 x latent) and images (B x 3 x 32 x 32);
    /// dropout masks from `noise`.
    pub fn forward_t(&self, z: &Tensor, images: &Tensor, train: bool, noise: &mut Noise) -> Tensor {
        let mut x = images.shallow_clone();
        for c in &self.convs {
            x = c.forward_t(&x, train);
        }
        let img = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
        let zf = self.z_dense.forward(&z.flatten(1, -1)).relu();
        let h = self.concat_dense.forward(&Tensor::cat(&[zf, img], 1));
        let h = self
            .dense1
            .forward(&noise.dropout(&h.relu(), self.dropout, train));
        self.dense2
            .forward(&noise.dropout(&h.relu(), self.dropout, train))
    }
}

/// A labeled forward pass: the VAE's output and the prediction.
pub fn forward_labeled(
    (vae, head): (&Vae, &IoHead),
    ops: &Tensor,
    adj: &Tensor,
    images: &Tensor,
    train: bool,
    noise: &mut Noise,
) -> (Output, Tensor) {
    let out = vae.forward_t(ops, adj, train, noise);
    let pred = head.forward_t(&out.z, images, train, noise);
    (out, pred)
}

/// The labeled loss: VAE loss + mean L1 to the targets.
pub fn labeled_loss(
    out: &Output,
    pred: &Tensor,
    ops: &Tensor,
    adj: &Tensor,
    target: &Tensor,
) -> Tensor {
    arch2vec::loss(out, ops, adj) + pred.l1_loss(target, tch::Reduction::Mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch2vec::Config;
    use tch::nn::OptimizerConfig;
    use tch::Device;

    #[test]
    fn shapes_and_a_labeled_batch_can_be_fitted() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let vae = Vae::new(&(vs.root() / "vae"), Config::default());
        let head = IoHead::new(&(vs.root() / "head"), 8, 7, 16, 9);
        let b = 8;
        let (ops, adj) = crate::arch2vec::tests::cells();
        let (ops, adj) = (ops.narrow(0, 0, b), adj.narrow(0, 0, b));
        let images = Tensor::randn([b, 3, 32, 32], (Kind::Float, Device::Cpu));
        let target = Tensor::randn([b, 9], (Kind::Float, Device::Cpu));
        let mut noise = Noise::new(3, 1);
        let (out, pred) = forward_labeled((&vae, &head), &ops, &adj, &images, true, &mut noise);
        assert_eq!(pred.size(), vec![b, 9]);
        assert_eq!(out.z.size(), vec![b, 7, 16]);
        let l1 = |vae: &Vae, head: &IoHead| {
            let _g = tch::no_grad_guard();
            let (_, p) = forward_labeled(
                (vae, head),
                &ops,
                &adj,
                &images,
                false,
                &mut Noise::new(0, 0),
            );
            p.l1_loss(&target, tch::Reduction::Mean).double_value(&[])
        };
        let before = l1(&vae, &head);
        let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
        for _ in 0..150 {
            let (out, pred) = forward_labeled((&vae, &head), &ops, &adj, &images, true, &mut noise);
            let loss = labeled_loss(&out, &pred, &ops, &adj, &target);
            opt.zero_grad();
            loss.backward();
            opt.clip_grad_norm(5.0);
            opt.step();
        }
        let after = l1(&vae, &head);
        assert!(after < before * 0.7, "L1 {before} -> {after}");
    }
}
