//! Zero-cost proxies of a network at initialisation, on one batch, as NASLib defines them
//! (`naslib/predictors/utils/pruners/measures/`, automl/NASLib at 0b51bc18, which carries its
//! `zerocost` branch's measures; Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
//! ICLR 2021; Mellor et al., "Neural Architecture Search without Training", ICML 2021):
//!
//! - `grad_norm`: cross-entropy on the batch, backward; the sum over conv and linear layers of
//!   each weight gradient's L2 norm;
//! - `snip`: the same backward; the sum over those layers of |w * dL/dw| (NASLib's weight-mask
//!   gradient at mask 1);
//! - `synflow`: a copy of the network in fp64 with every variable made positive and batch norm
//!   skipped (NASLib's `bn=False` copy), a single all-ones input, backward of the sum of the
//!   outputs; the sum of |w * d(sum)/dw|;
//! - `jacov`: the gradient of the sum of each image's outputs with respect to the image, one row
//!   per image; `-sum(log(v + k) + 1 / (v + k))` over the eigenvalues `v` of the rows' correlation
//!   matrix, k = 1e-5;
//! - `nwot`: at every ReLU application, each image's input as a binary code (> 0); `K` sums
//!   `c cᵀ + (1 - c)(1 - c)ᵀ` over them; the log of |det K|.
//!
//! Every measure starts from the same initial weights (NASLib measures each on a fresh copy),
//! with batch norm using batch statistics (the network in training mode). "Layers" are the
//! variables named `*weight` with two or more dimensions (conv and linear weights).
use std::cell::RefCell;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// The conv and linear weights of a variable store, by name.
fn layer_weights(vs: &VarStore) -> Vec<Tensor> {
    let vars = vs.variables();
    let mut names: Vec<&String> = vars
        .keys()
        .filter(|n| n.ends_with("weight") && vars[*n].dim() >= 2)
        .collect();
    names.sort();
    names.into_iter().map(|n| vars[n].shallow_clone()).collect()
}

fn zero_grads(vs: &VarStore) {
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
}

/// Sum over layers of `f(weight, its gradient)` (a layer without a gradient adds 0).
fn over_layers(vs: &VarStore, f: impl Fn(&Tensor, &Tensor) -> f64) -> f64 {
    layer_weights(vs)
        .iter()
        .map(|w| {
            let g = w.grad();
            if g.defined() {
                f(w, &g)
            } else {
                0.0
            }
        })
        .sum()
}

/// Backward of the cross-entropy of `forward(x)` against `labels`.
fn cross_entropy_backward(
    vs: &VarStore,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    labels: &Tensor,
) {
    zero_grads(vs);
    forward(x).cross_entropy_for_logits(labels).backward();
}

/// `grad_norm`.
pub fn grad_norm(
    vs: &VarStore,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    labels: &Tensor,
) -> f64 {
    cross_entropy_backward(vs, forward, x, labels);
    over_layers(vs, |_, g| g.norm().double_value(&[]))
}

/// `snip`.
pub fn snip(
    vs: &VarStore,
    forward: &dyn Fn(&Tensor) -> Tensor,
    x: &Tensor,
    labels: &Tensor,
) -> f64 {
    cross_entropy_backward(vs, forward, x, labels);
    over_layers(vs, |w, g| (w * g).abs().sum(Kind::Double).double_value(&[]))
}

/// `synflow` on a store already in fp64 (`forward` skips batch norm): makes every variable
/// positive, then back-propagates the sum of the outputs on one all-ones input shaped as one
/// image of `x`.
pub fn synflow(vs: &VarStore, forward: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> f64 {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let _ = v.abs_();
        }
    });
    zero_grads(vs);
    let mut shape = x.size();
    shape[0] = 1;
    let ones = Tensor::ones(shape.as_slice(), (Kind::Double, x.device()));
    forward(&ones).sum(Kind::Double).backward();
    over_layers(vs, |w, g| (w * g).abs().sum(Kind::Double).double_value(&[]))
}

/// `jacov` of a batch's input gradients (one row per image); NaN when a row is constant (its
/// correlations are undefined: NASLib's eigen solver raises, and it records NaN).
pub fn jacov_score(jacobians: &Tensor) -> f64 {
    let rows = jacobians.to_kind(Kind::Double).flatten(1, -1);
    let corr = rows.corrcoef();
    if corr.isfinite().all().int64_value(&[]) == 0 {
        return f64::NAN;
    }
    let v = corr.linalg_eigvalsh("L");
    let k = 1e-5;
    let v = v + k;
    -(v.log() + v.reciprocal())
        .sum(Kind::Double)
        .double_value(&[])
}

/// `jacov`: the input gradient of the summed outputs, scored.
pub fn jacov(forward: &dyn Fn(&Tensor) -> Tensor, x: &Tensor) -> f64 {
    // A leaf of its own (a batch may be a view of a larger tensor, whose gradient would not
    // land on the view).
    let x = x.detach().copy().set_requires_grad(true);
    forward(&x).sum(Kind::Float).backward();
    match x.grad() {
        g if g.defined() => jacov_score(&g),
        // The output does not depend on the input (NASLib: an exception, caught, NaN).
        _ => f64::NAN,
    }
}

/// `nwot` of the recorded ReLU inputs (each `batch x ...`).
pub fn nwot_score(relu_inputs: &[Tensor]) -> f64 {
    let n = relu_inputs.first().map_or(0, |t| t.size()[0]);
    let mut k = Tensor::zeros([n, n], (Kind::Double, tch::Device::Cpu));
    for t in relu_inputs {
        let c = t
            .flatten(1, -1)
            .gt(0.0)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu);
        let d = c.ones_like() - &c;
        k += c.matmul(&c.tr()) + d.matmul(&d.tr());
    }
    let (_, logabsdet) = Tensor::linalg_slogdet(&k);
    logabsdet.double_value(&[])
}

/// `nwot`: one forward pass recording every ReLU's input, scored.
pub fn nwot(forward_recording: &dyn Fn(&Tensor, &RefCell<Vec<Tensor>>), x: &Tensor) -> f64 {
    let inputs = RefCell::new(Vec::new());
    tch::no_grad(|| forward_recording(x, &inputs));
    nwot_score(&inputs.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};

    /// A one-layer "network": logits = W x (2 x 2, no bias).
    fn linear(w: [f64; 4], kind: Kind) -> (VarStore, nn::Linear) {
        let mut vs = VarStore::new(tch::Device::Cpu);
        let l = nn::linear(
            vs.root() / "fc",
            2,
            2,
            nn::LinearConfig {
                bias: false,
                ..Default::default()
            },
        );
        if kind == Kind::Double {
            vs.double();
        }
        tch::no_grad(|| {
            let mut ws = l.ws.shallow_clone();
            ws.copy_(&Tensor::from_slice(&w).view([2, 2]).to_kind(kind));
        });
        (vs, l)
    }

    #[test]
    fn gradient_proxies_of_a_linear_layer_by_hand() {
        // W = I, x = (1, 2), label 0: logits (1, 2), p = (1, e) / (1 + e), so
        // dL/dW = (p - e0) xᵀ = q (-1, -2; 1, 2) with q = e / (1 + e) = 0.7311.
        let (vs, l) = linear([1.0, 0.0, 0.0, 1.0], Kind::Float);
        let fwd = |x: &Tensor| l.forward(x);
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        let y = Tensor::from_slice(&[0i64]);
        let q = 1f64.exp() / (1.0 + 1f64.exp());
        let gn = grad_norm(&vs, &fwd, &x, &y);
        assert!((gn - q * 10f64.sqrt()).abs() < 1e-5, "{gn}");
        // |W * grad|: the diagonal only, q * 1 + q * 2.
        let s = snip(&vs, &fwd, &x, &y);
        assert!((s - 3.0 * q).abs() < 1e-5, "{s}");
        // synflow: |W| = (1, 2; 3, 4) from W = (-1, 2; -3, 4), input ones: d sum / dW = 1 1ᵀ,
        // so the sum of |W|: 10.
        let (vs, l) = linear([-1.0, 2.0, -3.0, 4.0], Kind::Double);
        let fwd = |x: &Tensor| l.forward(x);
        let sf = synflow(&vs, &fwd, &x);
        assert!((sf - 10.0).abs() < 1e-12, "{sf}");
    }

    #[test]
    fn jacov_reads_the_input_gradient_of_a_forward_pass() {
        // logits = W x with W = (1, 2; 3, 4): each image's gradient of the summed logits is the
        // column sums (4, 6), the same for both images: correlation 1, as in the hand case below.
        let (_vs, l) = linear([1.0, 2.0, 3.0, 4.0], Kind::Float);
        let x = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).view([2, 2]);
        let got = jacov(&|t| l.forward(t), &x);
        assert!(got.is_finite(), "{got}");
        // An output that ignores the input: no gradient reaches it.
        let zero = jacov(&|t| l.forward(&(t.detach() * 0.0)), &x);
        assert!(zero.is_nan());
        // Constant rows: undefined correlations.
        assert!(jacov_score(&Tensor::zeros([2, 3], (Kind::Double, tch::Device::Cpu))).is_nan());
    }

    #[test]
    fn jacov_and_nwot_by_hand() {
        // Two images with perfectly correlated gradients: the correlation matrix is all ones,
        // eigenvalues 0 and 2.
        let j = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 2.0, 4.0, 6.0]).view([2, 3]);
        let k: f64 = 1e-5;
        let expected = -((k.ln() + 1.0 / k) + ((2.0 + k).ln() + 1.0 / (2.0 + k)));
        let got = jacov_score(&j);
        assert!(
            (got - expected).abs() < 1e-6 * expected.abs(),
            "{got} {expected}"
        );
        // Codes (1, 0, 1) and (1, 1, 0) over 3 units: K = [[3, 1], [1, 3]], det 8.
        let r = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.1, 0.3, 0.0]).view([2, 3]);
        let got = nwot_score(&[r]);
        assert!((got - 8f64.ln()).abs() < 1e-12, "{got}");
    }
}
