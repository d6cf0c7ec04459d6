//! Adam for train-vae: tch's (`torch::optim::Adam`, one small kernel per tensor) on the CPU, where
//! its outputs are the bytes they were, and on CUDA one fused kernel for all the parameters
//! (`at::_fused_adam_` through the shim, as `torch.optim.Adam(fused=True)`), where a step is
//! otherwise a few dozen kernel launches. Both are PyTorch's Adam (betas 0.9, 0.999; eps 1e-8;
//! no weight decay); CUDA runs are not bit-reproducible either way.
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::device::torch_err;
use crate::shim;
use nasflow_stages::StageError;

const BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;

/// An Adam optimizer over one store's trainable variables.
pub enum Adam {
    Tch(nn::Optimizer),
    Fused(Fused),
}

impl Adam {
    /// tch's on the CPU, fused on CUDA (or wherever `fused` says).
    pub fn new(vs: &nn::VarStore, lr: f64, fused: bool) -> Result<Adam, StageError> {
        if fused {
            return Ok(Adam::Fused(Fused::new(vs, lr)));
        }
        nn::Adam {
            beta1: BETAS.0,
            beta2: BETAS.1,
            wd: 0.0,
            eps: EPS,
            amsgrad: false,
        }
        .build(vs, lr)
        .map(Adam::Tch)
        .map_err(torch_err)
    }

    pub fn zero_grad(&mut self) {
        match self {
            Adam::Tch(o) => o.zero_grad(),
            Adam::Fused(f) => f.zero_grad(),
        }
    }

    pub fn step(&mut self) {
        match self {
            Adam::Tch(o) => o.step(),
            Adam::Fused(f) => f.step(),
        }
    }
}

/// Adam's state for a fused step: the parameters, their moments and step counts.
pub struct Fused {
    params: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    steps: Vec<Tensor>,
    lr: f64,
}

impl Fused {
    fn new(vs: &nn::VarStore, lr: f64) -> Fused {
        let params = vs.trainable_variables();
        let zeros = |p: &Tensor| p.zeros_like();
        Fused {
            exp_avgs: params.iter().map(zeros).collect(),
            exp_avg_sqs: params.iter().map(zeros).collect(),
            steps: params
                .iter()
                .map(|p| Tensor::zeros([], (Kind::Float, p.device())))
                .collect(),
            params,
            lr,
        }
    }

    fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One step on the parameters that have a gradient.
    fn step(&mut self) {
        let has: Vec<usize> = (0..self.params.len())
            .filter(|&i| self.params[i].grad().defined())
            .collect();
        let pick = |ts: &[Tensor]| {
            has.iter()
                .map(|&i| ts[i].shallow_clone())
                .collect::<Vec<_>>()
        };
        let grads: Vec<Tensor> = has.iter().map(|&i| self.params[i].grad()).collect();
        shim::fused_adam(
            [
                &pick(&self.params),
                &grads,
                &pick(&self.exp_avgs),
                &pick(&self.exp_avg_sqs),
                &pick(&self.steps),
            ],
            self.lr,
            BETAS,
            EPS,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small regression trained by both: the fused step is PyTorch's Adam.
    #[test]
    fn the_fused_step_follows_tchs_adam() {
        let train = |fused: bool| {
            tch::manual_seed(5);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let lin = nn::linear(vs.root(), 6, 3, Default::default());
            let mut opt = Adam::new(&vs, 1e-2, fused).unwrap();
            let x = Tensor::randn([32, 6], (Kind::Float, tch::Device::Cpu));
            let y = Tensor::randn([32, 3], (Kind::Float, tch::Device::Cpu));
            for _ in 0..20 {
                let loss = (x.apply(&lin) - &y).square().mean(Kind::Float);
                opt.zero_grad();
                loss.backward();
                opt.step();
            }
            lin.ws.detach().copy()
        };
        let (tch_w, fused_w) = (train(false), train(true));
        let diff = (&tch_w - &fused_w).abs().max().double_value(&[]);
        let moved = (&tch_w - {
            tch::manual_seed(5);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            nn::linear(vs.root(), 6, 3, Default::default())
                .ws
                .detach()
                .copy()
        })
        .abs()
        .max()
        .double_value(&[]);
        assert!(moved > 1e-2, "training moved the weights: {moved}");
        assert!(diff < 1e-5, "fused and tch's Adam agree: {diff}");
    }
}
