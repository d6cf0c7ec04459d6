//! Random streams of our own for what a model draws while it trains: reparameterization noise,
//! dropout masks, prior samples, initial weights. libtorch's global generator is shared by every
//! model in a process, so one model's draws would shift another's; a `Noise` per model keeps
//! each model's training a function of its own seed and stream (info-NAS shares one generator;
//! see `train_vae` for why nasflow does not).
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Kind, Tensor};

/// A seeded stream of random tensors.
pub struct Noise {
    rng: ChaCha8Rng,
}

impl Noise {
    /// The stream `stream` of `seed` (ChaCha8, as every seeded draw in nasflow).
    pub fn new(seed: u64, stream: u64) -> Noise {
        Noise {
            rng: nasflow_stages::images::rng(seed, stream),
        }
    }

    /// Standard normal values of `t`'s shape, on its device.
    pub fn normal_like(&mut self, t: &Tensor) -> Tensor {
        self.normal(&t.size(), t.device())
    }

    pub fn normal(&mut self, shape: &[i64], device: tch::Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Tensor::from_slice(&v).view(shape).to_device(device)
    }

    /// Values uniform in [-bound, bound).
    pub fn uniform(&mut self, shape: &[i64], bound: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| ((self.rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect();
        Tensor::from_slice(&v).view(shape)
    }

    /// Inverted dropout as PyTorch's: each value kept with probability 1 - p and scaled by
    /// 1 / (1 - p); the identity when not training.
    pub fn dropout(&mut self, x: &Tensor, p: f64, train: bool) -> Tensor {
        if !train || p <= 0.0 {
            return x.shallow_clone();
        }
        let n = x.numel();
        let keep: Vec<f32> = (0..n)
            .map(|_| (self.rng.random::<f64>() >= p) as u8 as f32)
            .collect();
        let mask = Tensor::from_slice(&keep)
            .view(x.size().as_slice())
            .to_device(x.device())
            .to_kind(x.kind());
        x * mask / (1.0 - p)
    }

    /// A permutation of `0..n` (Fisher-Yates), as an index tensor on the CPU.
    pub fn permutation(&mut self, n: usize) -> Tensor {
        let mut v: Vec<i64> = (0..n as i64).collect();
        nasflow_stages::images::shuffle(&mut v, &mut self.rng);
        Tensor::from_slice(&v).to_kind(Kind::Int64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a = Noise::new(1, 7).normal(&[100], tch::Device::Cpu);
        let b = Noise::new(1, 7).normal(&[100], tch::Device::Cpu);
        let c = Noise::new(1, 8).normal(&[100], tch::Device::Cpu);
        assert!(a.equal(&b) && !a.equal(&c));
        let mean = a.mean(Kind::Double).double_value(&[]);
        assert!(mean.abs() < 0.3, "{mean}");
    }

    #[test]
    fn dropout_keeps_the_expectation_and_is_off_in_eval() {
        let x = Tensor::ones([10000], (Kind::Float, tch::Device::Cpu));
        let mut n = Noise::new(3, 1);
        let d = n.dropout(&x, 0.3, true);
        let kept = d
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((kept - 0.7).abs() < 0.02, "{kept}");
        let mean = d.mean(Kind::Double).double_value(&[]);
        assert!((mean - 1.0).abs() < 0.03, "{mean}");
        assert!(n.dropout(&x, 0.3, false).equal(&x));
    }
}
