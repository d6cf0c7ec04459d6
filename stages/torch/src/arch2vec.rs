//! arch2vec's graph VAE (`models/model.py`, class `Model`, config 4) in tch, with its quirks:
//!
//! - encoder: 4 GIN layers (`num_hops = 5`), each `agg = (1 + eps_l) x + A x` with a learnable
//!   `eps` (one per layer, initialised to 0), then an MLP (Linear(in, 128), BN, ReLU,
//!   Linear(128, 128)), BN and ReLU; batch norm runs over all B x 7 nodes, padding included;
//!   `mu` and `logvar` are Linear(128, 16) per node;
//! - `logvar` is used as log-sigma: `z = mu + eps * exp(logvar)` in training, `mu` in eval;
//! - decoder: dropout(0.3) on z, `ops = sigmoid(Linear(16, 5)(z))` (sigmoid, not softmax: the
//!   original applies the adjacency activation to ops too), `adj = sigmoid(z zᵀ)`;
//! - input adjacency made symmetric for message passing (`A + triu(A, 1)ᵀ`); reconstruction and
//!   target compared on `triu(., 1)`;
//! - loss: BCE(ops) + BCE(triu adj) (means over B·7·5 and B·7·7 entries) + KL, where
//!   `KL = -0.5 / (B·7) · mean_{B,7}(Σ_d 1 + 2 logvar - mu² - exp(logvar)²)` (normalised twice).
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use crate::noise::Noise;

use nasflow_stages::space::SearchSpace;

/// NB101's graph: 7 nodes, 5 op labels (NB201's: 8 and 7, see `SearchSpace::graph_size`).
pub const NODES: i64 = 7;
pub const OPS: i64 = 5;

/// Sizes of the model (arch2vec: hidden 128, latent 16, 4 GIN layers, dropout 0.3) and of the
/// graphs it reads (`nodes` x `ops` one-hot labels).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub nodes: i64,
    pub ops: i64,
    pub hidden: i64,
    pub latent: i64,
    pub layers: usize,
    pub dropout: f64,
}

impl Config {
    /// arch2vec's sizes for `space`'s graphs.
    pub fn for_space(space: SearchSpace) -> Config {
        let (nodes, ops) = space.graph_size();
        Config {
            nodes: nodes as i64,
            ops: ops as i64,
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: NODES,
            ops: OPS,
            hidden: 128,
            latent: 16,
            layers: 4,
            dropout: 0.3,
        }
    }
}

#[derive(Debug)]
struct Gin {
    l1: nn::Linear,
    bn1: nn::BatchNorm,
    l2: nn::Linear,
    bn: nn::BatchNorm,
}

/// BN over the B·7 nodes of a B x 7 x F tensor.
fn bn_nodes(bn: &nn::BatchNorm, x: &Tensor, train: bool) -> Tensor {
    let s = x.size();
    bn.forward_t(&x.view([-1, s[2]]), train)
        .view([s[0], s[1], s[2]])
}

/// The VAE.
#[derive(Debug)]
pub struct Vae {
    eps: Tensor,
    gin: Vec<Gin>,
    fc_mu: nn::Linear,
    fc_logvar: nn::Linear,
    dec_ops: nn::Linear,
    cfg: Config,
}

/// What a forward pass gives.
pub struct Output {
    pub ops: Tensor,
    pub adj: Tensor,
    pub mu: Tensor,
    pub logvar: Tensor,
    pub z: Tensor,
}

/// `A + triu(A, 1)ᵀ`: arch2vec's preprocessing (method 4) of the input adjacency.
pub fn symmetric(adj: &Tensor) -> Tensor {
    adj + adj.triu(1).transpose(1, 2)
}

impl Vae {
    pub fn new(p: &nn::Path, cfg: Config) -> Vae {
        let eps = p.zeros("eps", &[cfg.layers as i64]);
        let gin = (0..cfg.layers)
            .map(|l| {
                let q = p / "gin" / l;
                let input = if l == 0 { cfg.ops } else { cfg.hidden };
                Gin {
                    l1: nn::linear(&q / "mlp" / "0", input, cfg.hidden, Default::default()),
                    bn1: nn::batch_norm1d(&q / "mlp" / "1", cfg.hidden, Default::default()),
                    l2: nn::linear(&q / "mlp" / "3", cfg.hidden, cfg.hidden, Default::default()),
                    bn: nn::batch_norm1d(&q / "bn", cfg.hidden, Default::default()),
                }
            })
            .collect();
        Vae {
            eps,
            gin,
            fc_mu: nn::linear(p / "fc1", cfg.hidden, cfg.latent, Default::default()),
            fc_logvar: nn::linear(p / "fc2", cfg.hidden, cfg.latent, Default::default()),
            dec_ops: nn::linear(
                p / "decoder" / "weight",
                cfg.latent,
                cfg.ops,
                Default::default(),
            ),
            cfg,
        }
    }

    /// (mu, logvar), each B x 7 x latent, from ops (B x 7 x 5) and the raw adjacency (B x 7 x 7).
    pub fn encode(&self, ops: &Tensor, adj: &Tensor, train: bool) -> (Tensor, Tensor) {
        let a = symmetric(adj);
        let mut x = ops.shallow_clone();
        for (l, g) in self.gin.iter().enumerate() {
            let agg = &x * (self.eps.get(l as i64) + 1.0) + a.bmm(&x);
            let h = bn_nodes(&g.bn1, &g.l1.forward(&agg), train).relu();
            let h = g.l2.forward(&h);
            x = bn_nodes(&g.bn, &h, train).relu();
        }
        (self.fc_mu.forward(&x), self.fc_logvar.forward(&x))
    }

    /// A forward pass; in training, the reparameterization noise and the decoder's dropout
    /// come from `noise`.
    pub fn forward_t(&self, ops: &Tensor, adj: &Tensor, train: bool, noise: &mut Noise) -> Output {
        let (mu, logvar) = self.encode(ops, adj, train);
        let z = if train {
            &mu + noise.normal_like(&mu) * logvar.exp()
        } else {
            mu.shallow_clone()
        };
        let d = noise.dropout(&z, self.cfg.dropout, train);
        let (ops_recon, adj_recon) = self.decode(&d);
        Output {
            ops: ops_recon,
            adj: adj_recon,
            mu,
            logvar,
            z,
        }
    }

    /// (ops, adjacency) decoded from node embeddings (no dropout).
    pub fn decode(&self, z: &Tensor) -> (Tensor, Tensor) {
        (
            self.dec_ops.forward(z).sigmoid(),
            z.bmm(&z.transpose(1, 2)).sigmoid(),
        )
    }

    pub fn latent(&self) -> i64 {
        self.cfg.latent
    }

    /// Nodes of the graphs it reads.
    pub fn nodes(&self) -> i64 {
        self.cfg.nodes
    }
}

/// arch2vec's `VAEReconstructed_Loss` for targets `ops` (B x 7 x 5) and raw `adj` (B x 7 x 7).
pub fn loss(out: &Output, ops: &Tensor, adj: &Tensor) -> Tensor {
    let bce =
        |p: &Tensor, t: &Tensor| p.binary_cross_entropy::<Tensor>(t, None, tch::Reduction::Mean);
    let recon = bce(&out.ops, ops) + bce(&out.adj.triu(1), &adj.triu(1));
    let nodes = (out.mu.size()[0] * out.mu.size()[1]) as f64;
    let inner = (out.logvar.shallow_clone() * 2.0 + 1.0
        - out.mu.pow_tensor_scalar(2)
        - (out.logvar.shallow_clone() * 2.0).exp())
    .sum_dim_intlist(-1, false, Kind::Float);
    recon + inner.mean(Kind::Float) * (-0.5 / nodes)
}

/// arch2vec's `get_accuracy` on one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Argmax accuracy of the ops over all 7 rows.
    pub ops: f64,
    /// Accuracy of `adjacency > 0.5` over the 21 upper-triangle entries of each cell.
    pub adj: f64,
    /// Mean reconstructed probability of the true edges (`mean_corr_adj`).
    pub mean_corr_adj: f64,
    /// Mean reconstructed probability of the upper-triangle non-edges (`mean_fal_pos_adj`).
    pub mean_fal_pos_adj: f64,
}

/// arch2vec's `get_accuracy`.
pub fn accuracy(out: &Output, ops: &Tensor, adj: &Tensor) -> Accuracy {
    let n = ops.size()[0] as f64;
    let acc_ops = out
        .ops
        .argmax(-1, false)
        .eq_tensor(&ops.argmax(-1, false))
        .to_kind(Kind::Float)
        .mean(Kind::Float);
    let nodes = ops.size()[1];
    let mask = Tensor::ones([nodes, nodes], (Kind::Float, adj.device()))
        .triu(1)
        .to_kind(Kind::Bool);
    let recon = out.adj.triu(1);
    let truth = adj.triu(1);
    let edges = truth.sum(Kind::Double).double_value(&[]);
    let upper = n * (nodes * (nodes - 1) / 2) as f64;
    let at = |m: &Tensor| recon.masked_select(m).sum(Kind::Double).double_value(&[]);
    let is_edge = truth.gt(0.5);
    let non_edge = is_edge.logical_not().logical_and(&mask);
    let pred = out.adj.gt(0.5).masked_select(&mask);
    let acc_adj = pred
        .eq_tensor(&adj.gt(0.5).masked_select(&mask))
        .to_kind(Kind::Float)
        .mean(Kind::Float);
    Accuracy {
        ops: acc_ops.double_value(&[]),
        adj: acc_adj.double_value(&[]),
        mean_corr_adj: at(&is_edge) / edges.max(1.0),
        mean_fal_pos_adj: at(&non_edge) / (upper - edges).max(1.0),
    }
}

/// arch2vec's validity and uniqueness of decoded cells: each row's label is the argmax, edges
/// are `adj > 0.5` above the diagonal, validity as `space` judges a decoded graph
/// ([`SearchSpace::decoded`]); uniqueness is the number of distinct graph hashes of the valid
/// ones over the valid count.
pub fn validity_uniqueness(space: SearchSpace, ops: &Tensor, adj: &Tensor) -> (f64, f64) {
    let n = ops.size()[0] as usize;
    let v = ops.size()[1] as usize;
    let op_idx: Vec<i64> =
        Vec::<i64>::try_from(ops.argmax(-1, false).to_device(tch::Device::Cpu).view([-1]))
            .expect("i64");
    let edges: Vec<bool> =
        Vec::<bool>::try_from(adj.triu(1).gt(0.5).to_device(tch::Device::Cpu).view([-1]))
            .expect("bool");
    let mut valid = 0usize;
    let mut hashes = std::collections::HashSet::new();
    for c in 0..n {
        let rows: Vec<Vec<u8>> = (0..v)
            .map(|i| (0..v).map(|j| edges[c * v * v + i * v + j] as u8).collect())
            .collect();
        let labels: Vec<usize> = (0..v).map(|i| op_idx[c * v + i] as usize).collect();
        if let Some(h) = space.decoded(&rows, &labels) {
            valid += 1;
            hashes.insert(h);
        }
    }
    let validity = valid as f64 / n.max(1) as f64;
    let uniqueness = if valid == 0 {
        0.0
    } else {
        hashes.len() as f64 / valid as f64
    };
    (validity, uniqueness)
}

/// Decodes `n` cells from arch2vec's prior: `z = randn(n, nodes, latent) * z_std + z_mean` (the
/// statistics of an epoch's encoder means; the normals from `noise`), eval mode.
pub fn sample_prior(
    space: SearchSpace,
    vae: &Vae,
    z_mean: &Tensor,
    z_std: &Tensor,
    n: i64,
    noise: &mut Noise,
) -> (f64, f64) {
    let _guard = tch::no_grad_guard();
    let z = noise.normal(&[n, vae.cfg.nodes, vae.cfg.latent], z_mean.device()) * z_std + z_mean;
    let (ops, adj) = vae.decode(&z);
    validity_uniqueness(space, &ops, &adj)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nasflow_stages::nb101::{Arch2vec, Table};
    use tch::nn::OptimizerConfig;

    /// (ops, adj) of the 1,000 cells of ../shared/data/nb101-1k.jsonl.
    pub(crate) fn cells() -> (Tensor, Tensor) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/nb101-1k.jsonl");
        let t = Table::load(&path).expect("../shared/data/nb101-1k.jsonl");
        let (mut adj, mut ops) = (Vec::new(), Vec::new());
        for r in t.rows() {
            let e = Arch2vec::encode(r.cell.as_ref().unwrap());
            adj.extend(e.adj.iter().flatten().map(|&v| v as f32));
            ops.extend(e.ops.iter().flatten().map(|&v| v as f32));
        }
        let n = t.len() as i64;
        (
            Tensor::from_slice(&ops).view([n, NODES, OPS]),
            Tensor::from_slice(&adj).view([n, NODES, NODES]),
        )
    }

    #[test]
    fn shapes_loss_and_symmetric_input() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let vae = Vae::new(&vs.root(), Config::default());
        let (ops, adj) = cells();
        let (ops, adj) = (ops.narrow(0, 0, 4), adj.narrow(0, 0, 4));
        let out = vae.forward_t(&ops, &adj, true, &mut Noise::new(1, 1));
        assert_eq!(out.ops.size(), vec![4, 7, 5]);
        assert_eq!(out.adj.size(), vec![4, 7, 7]);
        assert_eq!(out.mu.size(), vec![4, 7, 16]);
        let l = loss(&out, &ops, &adj).double_value(&[]);
        assert!(l.is_finite() && l > 0.0);
        let s = symmetric(&adj);
        assert!(s.equal(&s.transpose(1, 2)));
        // 11 trainable tensors per GIN layer pair... at least: eps, 4 x (2 linear + 2 bn) , fc1, fc2, decoder.
        assert!(vs.trainable_variables().len() > 20);
    }

    /// arch2vec's `get_accuracy` on a hand-made batch of one 3-vertex cell: true edges 0->1,
    /// 1->2 (of 21 upper-triangle entries); reconstruction 0.9 and 0.2 on them, 0.6 on 0->2 and 0
    /// elsewhere; ops argmax right on 6 of 7 rows.
    #[test]
    fn accuracy_by_hand() {
        let mut a = vec![0f32; 49];
        a[1] = 1.0;
        a[7 + 2] = 1.0;
        let adj = Tensor::from_slice(&a).view([1, 7, 7]);
        let mut r = vec![0f32; 49];
        r[1] = 0.9;
        r[7 + 2] = 0.2;
        r[2] = 0.6;
        let ops = Tensor::eye(7, (Kind::Float, tch::Device::Cpu))
            .narrow(1, 0, 5)
            .unsqueeze(0);
        let recon_ops = ops.copy();
        let _ = recon_ops.get(0).get(0).fill_(0.0);
        let _ = recon_ops.get(0).get(0).get(3).fill_(1.0);
        let out = Output {
            ops: recon_ops,
            adj: Tensor::from_slice(&r).view([1, 7, 7]),
            mu: Tensor::zeros([1, 7, 16], (Kind::Float, tch::Device::Cpu)),
            logvar: Tensor::zeros([1, 7, 16], (Kind::Float, tch::Device::Cpu)),
            z: Tensor::zeros([1, 7, 16], (Kind::Float, tch::Device::Cpu)),
        };
        let acc = accuracy(&out, &ops, &adj);
        assert!(
            (acc.mean_corr_adj - (0.9 + 0.2) / 2.0).abs() < 1e-6,
            "{acc:?}"
        );
        assert!((acc.mean_fal_pos_adj - 0.6 / 19.0).abs() < 1e-6, "{acc:?}");
        // > 0.5: 0->1 right, 1->2 wrong, 0->2 wrong, the other 18 right.
        assert!((acc.adj - 19.0 / 21.0).abs() < 1e-6, "{acc:?}");
        // Rows 5 and 6 of the 5-column eye are all zero: argmax 0 on both sides.
        assert!((acc.ops - 6.0 / 7.0).abs() < 1e-6, "{acc:?}");
    }

    #[test]
    fn validity_and_uniqueness_of_encoded_cells() {
        let (ops, adj) = cells();
        // Real cells decode as themselves: all valid. Padded (< 7 vertex) cells put the output
        // before vertex 6, which NB101 rejects, as in arch2vec.
        let (validity, uniqueness) = validity_uniqueness(
            SearchSpace::Nb101,
            &ops.narrow(0, 0, 50),
            &adj.narrow(0, 0, 50),
        );
        let seven = Vec::<f32>::try_from(ops.narrow(0, 0, 50).select(1, 6).select(1, 4)).unwrap();
        let want = seven.iter().filter(|&&x| x == 1.0).count() as f64 / 50.0;
        assert!((validity - want).abs() < 1e-9, "{validity} vs {want}");
        assert_eq!(uniqueness, 1.0);
        // The same cell twice: one unique of two valid.
        let i = seven.iter().position(|&x| x == 1.0).unwrap() as i64;
        let o = Tensor::cat(&[ops.narrow(0, i, 1), ops.narrow(0, i, 1)], 0);
        let a = Tensor::cat(&[adj.narrow(0, i, 1), adj.narrow(0, i, 1)], 0);
        assert_eq!(validity_uniqueness(SearchSpace::Nb101, &o, &a), (1.0, 0.5));
        // Prior samples of an untrained model give numbers in range.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let vae = Vae::new(&vs.root(), Config::default());
        let (v, u) = sample_prior(
            SearchSpace::Nb101,
            &vae,
            &Tensor::zeros([16], (Kind::Float, tch::Device::Cpu)),
            &Tensor::ones([16], (Kind::Float, tch::Device::Cpu)),
            200,
            &mut Noise::new(1, 2),
        );
        assert!((0.0..=1.0).contains(&v) && (0.0..=1.0).contains(&u));
    }

    /// 15 epochs over 900 cells (about 420 steps; arch2vec's full epoch is 11,896): the loss falls
    /// and reconstruction accuracy rises (the full-space quality figures are a benchmark).
    #[test]
    fn training_lowers_the_loss_and_raises_reconstruction_accuracy() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let vae = Vae::new(&vs.root(), Config::default());
        let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
        let (ops, adj) = cells();
        let (train_ops, train_adj) = (ops.narrow(0, 0, 900), adj.narrow(0, 0, 900));
        let (val_ops, val_adj) = (ops.narrow(0, 900, 100), adj.narrow(0, 900, 100));
        let eval = |vae: &Vae| {
            let _g = tch::no_grad_guard();
            let out = vae.forward_t(&val_ops, &val_adj, false, &mut Noise::new(0, 0));
            let a = accuracy(&out, &val_ops, &val_adj);
            (
                loss(&out, &val_ops, &val_adj).double_value(&[]),
                (a.ops, a.adj),
            )
        };
        let (l0, (ops0, adj0)) = eval(&vae);
        let mut noise = Noise::new(1, 3);
        for _epoch in 0..15 {
            let perm = Tensor::randperm(900, (Kind::Int64, tch::Device::Cpu));
            for s in (0..900).step_by(32) {
                let idx = perm.narrow(0, s, 32.min(900 - s));
                let (o, a) = (
                    train_ops.index_select(0, &idx),
                    train_adj.index_select(0, &idx),
                );
                let out = vae.forward_t(&o, &a, true, &mut noise);
                let l = loss(&out, &o, &a);
                opt.zero_grad();
                l.backward();
                opt.clip_grad_norm(5.0);
                opt.step();
            }
        }
        let (l1, (ops1, adj1)) = eval(&vae);
        assert!(l1 < l0 * 0.7, "loss {l0} -> {l1}");
        assert!(ops1 > ops0 + 0.15, "ops accuracy {ops0} -> {ops1}");
        assert!(adj1 > adj0 + 0.1, "adjacency accuracy {adj0} -> {adj1}");
    }
}
