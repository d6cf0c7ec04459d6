//! PyTorch's default initialisation, which arch2vec and info-NAS train from (tch's differs:
//! BatchNorm scale U(0, 1), and weights kaiming-uniform with ReLU gain, bound sqrt(6 / fan_in),
//! about 2.45 times PyTorch's):
//!
//! - `nn.Linear` and `nn.Conv2d` weights: `kaiming_uniform_(a = sqrt(5))`, that is
//!   U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_features (x kernel size);
//! - their biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in));
//! - `nn.BatchNorm*`: weight 1, bias 0 (running statistics 0 and 1).
//!
//! Other variables (the GIN layers' `eps`, initialised to 0) are left as they are. Values come
//! from a [`Noise`] stream, variables in name order, so a model's initial weights are a function
//! of its seed alone.
use tch::nn::VarStore;
use tch::Tensor;

use crate::noise::Noise;

/// Re-initialises every Linear, Conv and BatchNorm variable of `vs` as PyTorch would.
pub fn pytorch_defaults(vs: &VarStore, noise: &mut Noise) {
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    tch::no_grad(|| {
        for name in names {
            let t = &vars[name];
            let Some(value) = initial(name, t, &vars, noise) else {
                continue;
            };
            let mut t = t.shallow_clone();
            t.copy_(&value.to_device(t.device()).to_kind(t.kind()));
        }
    });
}

/// PyTorch's initial value of variable `name`, or `None` to leave it.
fn initial(
    name: &str,
    t: &Tensor,
    vars: &std::collections::HashMap<String, Tensor>,
    noise: &mut Noise,
) -> Option<Tensor> {
    let shape = t.size();
    let fan_in = |w: &Tensor| w.size()[1..].iter().product::<i64>() as f64;
    if name.ends_with("weight") {
        return Some(match shape.len() {
            1 => Tensor::ones(shape.as_slice(), (tch::Kind::Float, tch::Device::Cpu)),
            _ => noise.uniform(&shape, 1.0 / fan_in(t).sqrt()),
        });
    }
    let base = name.strip_suffix("bias")?;
    let weight = vars.get(&format!("{base}weight"))?;
    Some(match weight.size().len() {
        1 => Tensor::zeros(shape.as_slice(), (tch::Kind::Float, tch::Device::Cpu)),
        _ => noise.uniform(&shape, 1.0 / fan_in(weight).sqrt()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;
    use tch::Kind;

    /// Against PyTorch's formulas: bounds 1/sqrt(fan_in), the variance of U(-b, b) = b²/3,
    /// BatchNorm scale 1 and shift 0.
    #[test]
    fn initial_weights_follow_pytorchs_formulas() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let lin = nn::linear(&root / "lin", 128, 512, Default::default());
        let conv = nn::conv2d(&root / "conv", 16, 64, 3, Default::default());
        let bn = nn::batch_norm1d(&root / "bn", 32, Default::default());
        pytorch_defaults(&vs, &mut Noise::new(1, 5));
        for (w, fan_in) in [(&lin.ws, 128.0), (&conv.ws, 16.0 * 9.0)] {
            let b: f64 = 1.0 / f64::sqrt(fan_in);
            let max = w.abs().max().double_value(&[]);
            assert!(max <= b && max > 0.95 * b, "{max} vs {b}");
            let var = w.var(true).double_value(&[]);
            assert!((var - b * b / 3.0).abs() < 0.05 * b * b / 3.0, "{var}");
        }
        let bias = lin.bs.as_ref().unwrap();
        assert!(bias.abs().max().double_value(&[]) <= 1.0 / 128f64.sqrt());
        assert!(bn
            .ws
            .as_ref()
            .unwrap()
            .equal(&Tensor::ones([32], (Kind::Float, tch::Device::Cpu))));
        assert_eq!(
            bn.bs
                .as_ref()
                .unwrap()
                .abs()
                .sum(Kind::Double)
                .double_value(&[]),
            0.0
        );
        // The same seed gives the same weights.
        let again = nn::VarStore::new(tch::Device::Cpu);
        let l2 = nn::linear(&again.root() / "lin", 128, 512, Default::default());
        let _ = nn::conv2d(&again.root() / "conv", 16, 64, 3, Default::default());
        let _ = nn::batch_norm1d(&again.root() / "bn", 32, Default::default());
        pytorch_defaults(&again, &mut Noise::new(1, 5));
        assert!(l2.ws.equal(&lin.ws));
    }
}
