//! The NB101 network of a cell in tch, as NASBench-PyTorch builds it (`model/model.py`): a stem
//! conv-bn-relu, `stacks` stacks of `cells_per_stack` cells with 2x2 max-pooling and channel
//! doubling between stacks, global average pooling, and a dense classifier.
//!
//! Variable names follow the PyTorch module tree (`layers.3.vertex_op.2.conv3x3.conv_bn_relu.0.weight`),
//! so weights can be compared with or loaded into the PyTorch model. Initialisation as
//! NASBench-PyTorch: conv weights N(0, sqrt(2 / (k*k*out))), batch norm scale 1 and shift 0,
//! classifier weights N(0, 0.01) and bias 0. Batch norm: momentum 0.1, eps 1e-5.
// Cell code indexes vertices by number, as the NB101 definitions do.
#![allow(clippy::needless_range_loop)]

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use nasflow_stages::nb101::params::{vertex_channels, Skeleton};
use nasflow_stages::nb101::{Cell, Op};
use nasflow_stages::space::Arch;

use crate::pass::Pass;

/// How variables start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// NASBench-PyTorch's initialisation.
    Paper,
    /// Zeros (fast; for counting parameters or before loading weights).
    Zeros,
}

#[derive(Debug)]
struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBnRelu {
    fn new(p: nn::Path, cin: usize, cout: usize, k: usize, init: Init) -> Self {
        let p = p / "conv_bn_relu";
        let ws_init = match init {
            Init::Paper => nn::Init::Randn {
                mean: 0.0,
                stdev: (2.0 / (k * k * cout) as f64).sqrt(),
            },
            Init::Zeros => nn::Init::Const(0.0),
        };
        let conv = nn::conv2d(
            &p / "0",
            cin as i64,
            cout as i64,
            k as i64,
            nn::ConvConfig {
                padding: (k / 2) as i64,
                bias: false,
                ws_init,
                ..Default::default()
            },
        );
        let bn = nn::batch_norm2d(
            &p / "1",
            cout as i64,
            nn::BatchNormConfig {
                eps: 1e-5,
                momentum: 0.1,
                ws_init: nn::Init::Const(1.0),
                bs_init: nn::Init::Const(0.0),
                ..Default::default()
            },
        );
        ConvBnRelu { conv, bn }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        pass.relu(&pass.bn(&self.bn, &self.conv.forward(x)))
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a handful per cell
enum VertexOp {
    Conv(ConvBnRelu),
    MaxPool,
}

#[derive(Debug)]
struct CellNet {
    cell: Cell,
    channels: Vec<usize>,
    /// Indexed by vertex; `None` for input and output.
    ops: Vec<Option<VertexOp>>,
    /// 1x1 projections of the cell input, for every vertex with an edge from the input.
    proj: Vec<Option<ConvBnRelu>>,
}

impl CellNet {
    fn new(p: nn::Path, cell: &Cell, cin: usize, cout: usize, init: Init) -> Self {
        let n = cell.num_vertices();
        let channels = vertex_channels(cell, cin, cout);
        let mut ops = vec![None];
        let vp = &p / "vertex_op";
        for t in 1..n - 1 {
            let c = channels[t];
            let vt = &vp / t;
            ops.push(Some(match cell.ops()[t] {
                Op::Conv3x3 => VertexOp::Conv(ConvBnRelu::new(&vt / "conv3x3", c, c, 3, init)),
                Op::Conv1x1 => VertexOp::Conv(ConvBnRelu::new(&vt / "conv1x1", c, c, 1, init)),
                _ => VertexOp::MaxPool,
            }));
        }
        ops.push(None);
        let ip = &p / "input_op";
        let proj = (0..n)
            .map(|t| {
                (t > 0 && cell.edge(0, t))
                    .then(|| ConvBnRelu::new(&ip / t, cin, channels[t], 1, init))
            })
            .collect();
        CellNet {
            cell: *cell,
            channels,
            ops,
            proj,
        }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let n = self.cell.num_vertices();
        let mut tensors: Vec<Tensor> = vec![x.shallow_clone()];
        let mut concat: Vec<Tensor> = Vec::new();
        for t in 1..n - 1 {
            let c = self.channels[t] as i64;
            let mut fan_in: Vec<Tensor> = (1..t)
                .filter(|&src| self.cell.edge(src, t))
                .map(|src| truncate(&tensors[src], c))
                .collect();
            if let Some(p) = &self.proj[t] {
                fan_in.push(p.forward(x, pass));
            }
            let mut input = fan_in.remove(0);
            for f in &fan_in {
                // Out of place: `+=` would add in place into a truncated view of another
                // vertex's output.
                #[allow(clippy::assign_op_pattern)]
                {
                    input = input + f;
                }
            }
            let out = match self.ops[t].as_ref().expect("interior vertex") {
                VertexOp::Conv(c) => c.forward(&input, pass),
                VertexOp::MaxPool => input.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false),
            };
            if self.cell.edge(t, n - 1) {
                concat.push(out.shallow_clone());
            }
            tensors.push(out);
        }
        let proj_out = self.proj[n - 1].as_ref().map(|p| p.forward(x, pass));
        match (concat.len(), proj_out) {
            (0, Some(p)) => p,
            (0, None) => unreachable!("a valid cell's output has an input"),
            (_, p) => {
                let out = if concat.len() == 1 {
                    concat.pop().expect("one")
                } else {
                    Tensor::cat(&concat, 1)
                };
                match p {
                    Some(p) => out + p,
                    None => out,
                }
            }
        }
    }
}

/// NASBench-PyTorch's `truncate`: keep the first `c` channels.
fn truncate(x: &Tensor, c: i64) -> Tensor {
    if x.size()[1] > c {
        x.narrow(1, 0, c)
    } else {
        x.shallow_clone()
    }
}

#[derive(Debug)]
enum Layer {
    Cell(CellNet),
    Pool,
}

/// The network of one cell.
#[derive(Debug)]
pub struct Network {
    stem: ConvBnRelu,
    layers: Vec<Layer>,
    classifier: nn::Linear,
}

impl Network {
    /// Builds the network's variables under `root` (the cell must be pruned and valid).
    pub fn new(root: &nn::Path, cell: &Cell, s: &Skeleton, init: Init) -> Network {
        let layers_p = root / "layers";
        let stem = ConvBnRelu::new(&layers_p / 0, s.in_channels, s.init_channels, 3, init);
        let mut layers = Vec::new();
        let (mut cin, mut cout) = (s.init_channels, s.init_channels);
        for stack in 0..s.stacks {
            if stack > 0 {
                layers.push(Layer::Pool);
                cout *= 2;
            }
            for _ in 0..s.cells_per_stack {
                let idx = layers.len() + 1;
                layers.push(Layer::Cell(CellNet::new(
                    &layers_p / idx,
                    cell,
                    cin,
                    cout,
                    init,
                )));
                cin = cout;
            }
        }
        let w_init = match init {
            Init::Paper => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            Init::Zeros => nn::Init::Const(0.0),
        };
        let classifier = nn::linear(
            root / "classifier",
            cout as i64,
            s.classes as i64,
            nn::LinearConfig {
                ws_init: w_init,
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        Network {
            stem,
            layers,
            classifier,
        }
    }

    /// The global-average-pool features (the classifier's input).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.features_with(x, &Pass::plain(train))
    }

    /// The features of a pass run as `pass` says.
    pub fn features_with(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let mut h = self.stem.forward(x, pass);
        for l in &self.layers {
            h = match l {
                Layer::Pool => h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
                Layer::Cell(c) => c.forward(&h, pass),
            };
        }
        pass.pool(&h)
    }

    pub fn classifier(&self) -> &nn::Linear {
        &self.classifier
    }
}

impl ModuleT for Network {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.classifier.forward(&self.features(x, train))
    }
}

/// The network of a cell of either space.
#[derive(Debug)]
pub enum AnyNetwork {
    Nb101(Network),
    Nb201(crate::network201::Network201),
}

impl AnyNetwork {
    /// Builds the network of `arch` under `root`.
    pub fn new(root: &nn::Path, arch: &Arch, s: &Skeleton, init: Init) -> AnyNetwork {
        match arch {
            Arch::Nb101(c) => AnyNetwork::Nb101(Network::new(root, c, s, init)),
            Arch::Nb201(c) => {
                AnyNetwork::Nb201(crate::network201::Network201::new(root, c, s, init))
            }
        }
    }

    /// The global-average-pool features (the classifier's input).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.features_with(x, &Pass::plain(train))
    }

    /// The features of a pass run as `pass` says.
    pub fn features_with(&self, x: &Tensor, pass: &Pass) -> Tensor {
        match self {
            AnyNetwork::Nb101(n) => n.features_with(x, pass),
            AnyNetwork::Nb201(n) => n.features_with(x, pass),
        }
    }

    /// The logits of a pass run as `pass` says.
    pub fn forward_with(&self, x: &Tensor, pass: &Pass) -> Tensor {
        self.classifier().forward(&self.features_with(x, pass))
    }

    pub fn classifier(&self) -> &nn::Linear {
        match self {
            AnyNetwork::Nb101(n) => n.classifier(),
            AnyNetwork::Nb201(n) => n.classifier(),
        }
    }
}

impl ModuleT for AnyNetwork {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.classifier().forward(&self.features(x, train))
    }
}

/// Trainable parameters of a variable store.
pub fn count_trainable(vs: &nn::VarStore) -> usize {
    vs.trainable_variables().iter().map(|t| t.numel()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_shapes_and_parameter_count_match_the_analytic_count() {
        let cell = Cell::parse(
            "0111010000000100000010000100000000100000010000000",
            "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        let s = Skeleton {
            in_channels: 3,
            init_channels: 8,
            stacks: 3,
            cells_per_stack: 1,
            classes: 10,
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Network::new(&vs.root(), &cell, &s, Init::Paper);
        let x = Tensor::randn([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(net.features(&x, false).size(), vec![2, 32]);
        assert_eq!(net.forward_t(&x, true).size(), vec![2, 10]);
        assert_eq!(
            count_trainable(&vs),
            nasflow_stages::nb101::params::trainable_parameters(&cell, &s)
        );
        let names = vs.variables();
        assert!(
            names.contains_key("layers.1.vertex_op.2.conv3x3.conv_bn_relu.0.weight"),
            "{:?}",
            names.keys()
        );
        assert!(names.contains_key("layers.1.input_op.1.conv_bn_relu.1.running_mean"));
    }
}
