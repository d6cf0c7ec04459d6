//! What every computation here shares with libtorch: the device, its errors as stage errors, and
//! the training-loop pieces that keep values on the device (sums read once, norm clipping).
use nasflow_contract::Device;
use nasflow_stages::StageError;
use tch::{Kind, Tensor};

/// The tch device of a resolved nasflow device.
pub fn torch_device(d: Device) -> tch::Device {
    match d {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(n) => tch::Device::Cuda(n),
    }
}

/// Seeds libtorch's generators with `seed` and runs `f` (building a network) under one
/// process-wide lock, so that jobs computing side by side in one worker draw their initial
/// weights exactly as they would alone.
pub fn seeded<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed as i64);
    f()
}

/// A libtorch error as a stage's error.
pub fn torch_err(e: tch::TchError) -> StageError {
    StageError::Torch(e.to_string())
}

/// A float64 sum kept on the device, read back once (a read waits for the device).
pub struct DeviceSum(Tensor);

impl DeviceSum {
    pub fn new(device: tch::Device) -> DeviceSum {
        DeviceSum(Tensor::zeros([], (Kind::Double, device)))
    }

    /// Adds `x` (a scalar tensor) times `weight`, in float64, as a host sum of
    /// `x.double_value() * weight` would.
    pub fn add(&mut self, x: &Tensor, weight: f64) {
        let _guard = tch::no_grad_guard();
        self.0 += x.detach().to_kind(Kind::Double) * weight;
    }

    pub fn value(&self) -> f64 {
        self.0.double_value(&[])
    }
}

/// Clips the joint norm of `grads` at `max` as `tch`'s `Optimizer::clip_grad_norm` does, with the
/// same float operations, but without reading the norm back to the host: the scale
/// `min(1, max / (norm + 1e-6))` (in float64, then float32) stays on the device.
pub fn clip_grads(grads: Vec<Tensor>, max: f64) {
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = grads.into_iter().filter(Tensor::defined).collect();
    if grads.is_empty() {
        return;
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm().to_kind(Kind::Double);
    let max = Tensor::full([], max, (Kind::Double, total.device()));
    let scale = (max / (total + 1e-6)).clamp_max(1.0).to_kind(Kind::Float);
    for mut g in grads {
        let _ = g.g_mul_(&scale);
    }
}

/// [`clip_grads`] over a store's trainable variables.
pub fn clip_grad_norm(vs: &tch::nn::VarStore, max: f64) {
    clip_grads(
        vs.trainable_variables().iter().map(Tensor::grad).collect(),
        max,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tch's clip (the norm read back to the host) and the on-device clip give the same bits.
    #[test]
    fn clipping_on_the_device_is_tchs_clipping_bit_for_bit() {
        for scale in [0.01, 1.0, 300.0] {
            tch::manual_seed(7);
            let grads = || {
                tch::manual_seed(7);
                vec![
                    Tensor::randn([13, 5], (Kind::Float, tch::Device::Cpu)) * scale,
                    Tensor::randn([7], (Kind::Float, tch::Device::Cpu)) * scale,
                ]
            };
            let (mine, theirs) = (grads(), grads());
            clip_grads(mine.iter().map(|g| g.shallow_clone()).collect(), 5.0);
            // tch 0.24's Optimizer::clip_grad_norm, on the host.
            let norms: Vec<Tensor> = theirs.iter().map(|g| g.norm()).collect();
            let total = f64::try_from(Tensor::stack(&norms, 0).norm()).unwrap();
            let coef = 5.0 / (total + 1e-6);
            if coef < 1.0 {
                for g in &theirs {
                    let _ = g.shallow_clone().g_mul_scalar_(coef);
                }
            }
            for (a, b) in mine.iter().zip(&theirs) {
                let (a, b) = (
                    Vec::<f32>::try_from(a.view([-1])).unwrap(),
                    Vec::<f32>::try_from(b.view([-1])).unwrap(),
                );
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "scale {scale}"
                );
            }
        }
    }

    #[test]
    fn a_device_sum_is_the_host_sum() {
        let xs = [0.1f32, 1e-7, 3.3, 12345.678];
        let mut host = 0.0f64;
        let mut dev = DeviceSum::new(tch::Device::Cpu);
        for (k, x) in xs.iter().enumerate() {
            let t = Tensor::from(*x);
            host += t.double_value(&[]) * (k + 1) as f64;
            dev.add(&t, (k + 1) as f64);
        }
        assert_eq!(dev.value().to_bits(), host.to_bits());
    }
}
