//! NB201's CIFAR network of a cell in tch, as NB201's code builds it (`TinyNetwork` with
//! `InferCell`s, D-X-Y/AutoDL-Projects `xautodl/models/cell_infers/`; sizes and parameter count:
//! `nasflow_stages::nb201::params`). Variable names follow its module tree
//! (`cells.6.layers.3.op.1.weight`, `cells.5.conv_a.op.1.weight`, `cells.5.downsample.1.weight`,
//! `lastact.0.weight`), so weights can be compared with the PyTorch model. Initialisation is
//! PyTorch's default, which NB201 keeps: conv and linear weights and the linear bias
//! U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm scale 1 and shift 0 (momentum 0.1, eps 1e-5).

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use nasflow_stages::nb101::params::Skeleton;
use nasflow_stages::nb201::{Cell, Op, EDGES};

use crate::network::Init;
pub use crate::pass::Pass;

fn conv(p: nn::Path, cin: usize, cout: usize, k: usize, stride: usize, init: Init) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin as i64,
        cout as i64,
        k as i64,
        nn::ConvConfig {
            stride: stride as i64,
            padding: (k / 2) as i64,
            bias: false,
            ws_init: match init {
                Init::Paper => pytorch_uniform(k * k * cin),
                Init::Zeros => nn::Init::Const(0.0),
            },
            ..Default::default()
        },
    )
}

/// PyTorch's default for conv and linear weights and linear biases, which NB201 keeps
/// (`kaiming_uniform_(a = sqrt(5))`): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn pytorch_uniform(fan_in: usize) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn batch_norm(p: nn::Path, c: usize) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c as i64,
        nn::BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// NB201's `ReLUConvBN`: `op` = (ReLU, conv, batch norm).
#[derive(Debug)]
struct ReluConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ReluConvBn {
    fn new(p: nn::Path, cin: usize, cout: usize, k: usize, stride: usize, init: Init) -> Self {
        let op = p / "op";
        ReluConvBn {
            conv: conv(&op / "1", cin, cout, k, stride, init),
            bn: batch_norm(&op / "2", cout),
        }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        pass.bn(&self.bn, &self.conv.forward(&pass.relu(x)))
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // six per cell
enum EdgeOp {
    Zero,
    Identity,
    Conv(ReluConvBn),
    AvgPool,
}

impl EdgeOp {
    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        match self {
            // NB201's `Zero`: x.mul(0.), which keeps the graph to x (its gradient is 0).
            EdgeOp::Zero => x * 0.0,
            EdgeOp::Identity => x.shallow_clone(),
            EdgeOp::Conv(c) => c.forward(x, pass),
            // count_include_pad = false, as NB201's POOLING.
            EdgeOp::AvgPool => x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>),
        }
    }
}

/// NB201's `InferCell`: node `j` sums its incoming edges' ops, edges in arch-string order.
#[derive(Debug)]
struct InferCell {
    layers: Vec<EdgeOp>,
}

impl InferCell {
    fn new(p: nn::Path, cell: &Cell, c: usize, init: Init) -> Self {
        let lp = p / "layers";
        let layers = cell
            .ops
            .iter()
            .enumerate()
            .map(|(e, op)| match op {
                Op::None => EdgeOp::Zero,
                Op::SkipConnect => EdgeOp::Identity,
                Op::Conv1x1 => EdgeOp::Conv(ReluConvBn::new(&lp / e, c, c, 1, 1, init)),
                Op::Conv3x3 => EdgeOp::Conv(ReluConvBn::new(&lp / e, c, c, 3, 1, init)),
                Op::AvgPool3x3 => EdgeOp::AvgPool,
            })
            .collect();
        InferCell { layers }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let mut nodes = vec![x.shallow_clone()];
        for target in 1..4 {
            let mut sum: Option<Tensor> = None;
            for (e, &(source, t)) in EDGES.iter().enumerate() {
                if t != target {
                    continue;
                }
                let y = self.layers[e].forward(&nodes[source], pass);
                sum = Some(match sum {
                    Some(s) => s + y,
                    None => y,
                });
            }
            nodes.push(sum.expect("every node has an incoming edge"));
        }
        nodes.pop().expect("four nodes")
    }
}

/// NB201's `ResNetBasicblock` with stride 2: two ReLU-conv-BN and a pooled 1x1 residual.
#[derive(Debug)]
struct Reduction {
    conv_a: ReluConvBn,
    conv_b: ReluConvBn,
    downsample: nn::Conv2D,
}

impl Reduction {
    fn new(p: nn::Path, cin: usize, cout: usize, init: Init) -> Self {
        Reduction {
            conv_a: ReluConvBn::new(&p / "conv_a", cin, cout, 3, 2, init),
            conv_b: ReluConvBn::new(&p / "conv_b", cout, cout, 3, 1, init),
            downsample: conv(&p / "downsample" / "1", cin, cout, 1, 1, init),
        }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let block = self.conv_b.forward(&self.conv_a.forward(x, pass), pass);
        let pooled = x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
        self.downsample.forward(&pooled) + block
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a few per network
enum Layer {
    Cell(InferCell),
    Reduction(Reduction),
}

/// NB201's network of one cell.
#[derive(Debug)]
pub struct Network201 {
    stem: (nn::Conv2D, nn::BatchNorm),
    cells: Vec<Layer>,
    lastact: nn::BatchNorm,
    classifier: nn::Linear,
}

impl Network201 {
    /// Builds the network's variables under `root` (`stacks` stages of `cells_per_stack`).
    pub fn new(root: &nn::Path, cell: &Cell, s: &Skeleton, init: Init) -> Network201 {
        let c0 = s.init_channels;
        let stem = (
            conv(root / "stem" / "0", s.in_channels, c0, 3, 1, init),
            batch_norm(root / "stem" / "1", c0),
        );
        let cp = root / "cells";
        let mut cells = Vec::new();
        for stage in 0..s.stacks {
            let c = c0 << stage;
            if stage > 0 {
                let r = Reduction::new(&cp / cells.len(), c / 2, c, init);
                cells.push(Layer::Reduction(r));
            }
            for _ in 0..s.cells_per_stack {
                cells.push(Layer::Cell(InferCell::new(
                    &cp / cells.len(),
                    cell,
                    c,
                    init,
                )));
            }
        }
        let last = c0 << s.stacks.saturating_sub(1);
        let classifier = nn::linear(
            root / "classifier",
            last as i64,
            s.classes as i64,
            nn::LinearConfig {
                ws_init: match init {
                    Init::Paper => pytorch_uniform(last),
                    Init::Zeros => nn::Init::Const(0.0),
                },
                bs_init: Some(match init {
                    Init::Paper => pytorch_uniform(last),
                    Init::Zeros => nn::Init::Const(0.0),
                }),
                bias: true,
            },
        );
        Network201 {
            stem,
            cells,
            lastact: batch_norm(root / "lastact" / "0", last),
            classifier,
        }
    }

    /// The global-average-pool features (the classifier's input).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.features_with(x, &Pass::plain(train))
    }

    /// The features of a pass run as `pass` says.
    pub fn features_with(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let mut h = pass.bn(&self.stem.1, &self.stem.0.forward(x));
        for l in &self.cells {
            h = match l {
                Layer::Cell(c) => c.forward(&h, pass),
                Layer::Reduction(r) => r.forward(&h, pass),
            };
        }
        pass.pool(&pass.relu(&pass.bn(&self.lastact, &h)))
    }

    /// The logits of a pass run as `pass` says.
    pub fn forward_with(&self, x: &Tensor, pass: &Pass) -> Tensor {
        self.classifier.forward(&self.features_with(x, pass))
    }

    pub fn classifier(&self) -> &nn::Linear {
        &self.classifier
    }
}

impl ModuleT for Network201 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.classifier.forward(&self.features(x, train))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::count_trainable;
    use nasflow_stages::nb201::params::{trainable_parameters, NB201};
    use nasflow_stages::nb201::table::Table;

    #[test]
    fn parameter_counts_equal_the_published_ones_for_200_cells() {
        let t = Table::embedded().unwrap();
        let published: Vec<_> = t.rows().iter().filter(|r| r.params_m.is_some()).collect();
        // Every 45th of the 9,445 published cells: 210 cells spread over the table.
        let sample: Vec<_> = published.iter().step_by(45).collect();
        assert!(sample.len() >= 200);
        for r in sample {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            Network201::new(&vs.root(), &r.cell, &NB201, Init::Zeros);
            let n = count_trainable(&vs);
            assert_eq!(n, trainable_parameters(&r.cell, &NB201));
            let expected = r.params_m.unwrap();
            assert!(
                (n as f64 / 1e6 - expected).abs() < 5e-7,
                "{}: {n} parameters, NB201 publishes {expected} M",
                r.cell.arch_string()
            );
        }
    }

    #[test]
    fn forward_shapes_names_and_a_zero_cell() {
        let s = Skeleton {
            init_channels: 4,
            cells_per_stack: 1,
            ..NB201
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cell = Cell::parse(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
        )
        .unwrap();
        let net = Network201::new(&vs.root(), &cell, &s, Init::Paper);
        let x = Tensor::randn([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(net.features(&x, false).size(), vec![2, 16]);
        assert_eq!(net.forward_t(&x, true).size(), vec![2, 10]);
        let names = vs.variables();
        for name in [
            "stem.0.weight",
            "cells.0.layers.0.op.1.weight",
            "cells.0.layers.4.op.2.running_mean",
            "cells.1.conv_a.op.1.weight",
            "cells.1.downsample.1.weight",
            "lastact.0.bias",
            "classifier.weight",
        ] {
            assert!(names.contains_key(name), "{name} not in {:?}", names.keys());
        }
        // A cell whose output is cut off computes zero: only the reductions carry the input.
        let none = Cell::parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Network201::new(&vs.root(), &none, &s, Init::Paper);
        let f = net.features(&x, false);
        assert_eq!(f.size(), vec![2, 16]);
        assert!(f.isfinite().all().int64_value(&[]) == 1);
    }
}
