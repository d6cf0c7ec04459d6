//! How a forward pass of a cell's network runs, shared by NB101's and NB201's networks: batch
//! statistics (`train`) or running ones, batch norm applied or skipped (synflow's `bn=False`
//! copy), and where each ReLU's input is recorded (nwot hooks every ReLU module: one record per
//! application).
use std::cell::RefCell;

use tch::nn::{self, ModuleT};
use tch::Tensor;

pub struct Pass<'a> {
    pub train: bool,
    pub batch_norm: bool,
    pub relu_inputs: Option<&'a RefCell<Vec<Tensor>>>,
}

impl Pass<'_> {
    /// A pass as training (`train`) or evaluation runs it: batch norm on, nothing recorded.
    pub fn plain(train: bool) -> Pass<'static> {
        Pass {
            train,
            batch_norm: true,
            relu_inputs: None,
        }
    }

    /// ReLU, recording its input where asked.
    pub fn relu(&self, x: &Tensor) -> Tensor {
        if let Some(r) = self.relu_inputs {
            r.borrow_mut().push(x.shallow_clone());
        }
        x.relu()
    }

    /// Batch norm, or the identity where the pass skips it.
    pub fn bn(&self, bn: &nn::BatchNorm, x: &Tensor) -> Tensor {
        match self.batch_norm {
            true => bn.forward_t(x, self.train),
            false => x.shallow_clone(),
        }
    }

    /// Global average pooling over the spatial dimensions: fp32 features, or fp64 in synflow's
    /// double pass.
    pub fn pool(&self, h: &Tensor) -> Tensor {
        let kind = match h.kind() {
            tch::Kind::Double => tch::Kind::Double,
            _ => tch::Kind::Float,
        };
        h.mean_dim(&[2i64, 3][..], false, kind)
    }
}
