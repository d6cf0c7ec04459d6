//! DNGO (Snoek et al. 2015) as arch2vec calls it: the copy of pybnn in arch2vec's repository
//! (`pybnn/dngo.py`, `pybnn/bayesian_linear_regression.py`) with
//! `DNGO(num_epochs=100, n_units=128, do_mcmc=False, normalize_output=False)`:
//!
//! - inputs normalized to zero mean and unit variance per feature (over the training rows; a
//!   constant feature is left unscaled); outputs not;
//! - a network `Linear(d, 128) -> tanh -> Linear(128, 1)` (arch2vec's `Net`: one hidden layer,
//!   PyTorch's default initialisation) trained on the mean squared error with Adam (lr 0.01) for
//!   100 epochs of shuffled batches of 10 (only full batches; all rows when there are <= 10);
//! - the basis functions are the 128 tanh units (no bias column); the hyperparameters
//!   `theta = (log alpha, log sigma^2)` start from pybnn's prior sample (N(0,1), N(-3,1)) and
//!   minimize the negative of DNGO's marginal log likelihood by Nelder-Mead (scipy's `fmin`;
//!   here argmin's), `beta = 1 / sigma^2`. pybnn's quirks kept: the data term is
//!   `beta / 2 * ||y - Theta m||` (the norm, not its square), the determinant term is
//!   `log(det K + 1e-10)`, and `theta` outside [-10, 10] has likelihood 0;
//! - Bayesian linear regression on the basis: `S = (beta Theta^T Theta + alpha I)^-1`,
//!   `m = beta S Theta^T y`; prediction `mean = phi m`, `variance = 1/beta + phi S phi^T`,
//!   clipped below at f64's epsilon.
//!
//! The network is written here (plain f32 loops) rather than in libtorch: a step is a batch of
//! 10, and libtorch's per-call overhead would dominate.
use argmin::core::{CostFunction, Error as ArgminError, Executor, State};
use argmin::solver::neldermead::NelderMead;
use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, Normal, Uniform};

/// DNGO's settings (arch2vec's values by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub epochs: usize,
    pub hidden: usize,
    pub batch: usize,
    pub lr: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            epochs: 100,
            hidden: 128,
            batch: 10,
            lr: 0.01,
        }
    }
}

/// A trained DNGO model.
pub struct Dngo {
    mean: Vec<f64>,
    std: Vec<f64>,
    w1: DMatrix<f64>,
    b1: DVector<f64>,
    m: DVector<f64>,
    s: DMatrix<f64>,
    pub alpha: f64,
    pub beta: f64,
}

/// The network: W1 (hidden x d), b1, w2 (hidden), b2, all f32 as in PyTorch.
struct Net {
    d: usize,
    h: usize,
    p: Vec<f32>,
}

impl Net {
    fn new(d: usize, h: usize, rng: &mut impl rand::Rng) -> Net {
        // PyTorch's Linear: weights and biases uniform in +-1/sqrt(fan_in).
        let u1 = Uniform::new_inclusive(-1.0 / (d as f32).sqrt(), 1.0 / (d as f32).sqrt())
            .expect("a finite range");
        let u2 = Uniform::new_inclusive(-1.0 / (h as f32).sqrt(), 1.0 / (h as f32).sqrt())
            .expect("a finite range");
        let mut p = Vec::with_capacity(h * d + 2 * h + 1);
        p.extend((0..h * d + h).map(|_| u1.sample(rng)));
        p.extend((0..h + 1).map(|_| u2.sample(rng)));
        Net { d, h, p }
    }
    fn hidden(&self, x: &[f32], out: &mut [f32]) {
        let (d, h) = (self.d, self.h);
        let (w1, b1) = (&self.p[..h * d], &self.p[h * d..h * d + h]);
        for k in 0..h {
            let row = &w1[k * d..(k + 1) * d];
            let z: f32 = row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b1[k];
            out[k] = z.tanh();
        }
    }
    /// Adds the gradient of the batch's mean squared error to `g`.
    fn backprop(&self, xs: &[&[f32]], ys: &[f32], g: &mut [f32], hid: &mut [f32]) {
        let (d, h) = (self.d, self.h);
        let w2 = &self.p[h * d + h..h * d + 2 * h];
        let b2 = self.p[h * d + 2 * h];
        let scale = 2.0 / xs.len() as f32;
        for (x, &y) in xs.iter().zip(ys) {
            self.hidden(x, hid);
            let out: f32 = w2.iter().zip(hid.iter()).map(|(w, a)| w * a).sum::<f32>() + b2;
            let dout = scale * (out - y);
            let (gw1, rest) = g.split_at_mut(h * d);
            let (gb1, rest) = rest.split_at_mut(h);
            let (gw2, gb2) = rest.split_at_mut(h);
            gb2[0] += dout;
            for k in 0..h {
                gw2[k] += dout * hid[k];
                let dz = dout * w2[k] * (1.0 - hid[k] * hid[k]);
                gb1[k] += dz;
                for (gw, v) in gw1[k * d..(k + 1) * d].iter_mut().zip(x.iter()) {
                    *gw += dz * v;
                }
            }
        }
    }
}

/// PyTorch's Adam (betas 0.9, 0.999, eps 1e-8, no weight decay).
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    lr: f32,
}

impl Adam {
    fn step(&mut self, p: &mut [f32], g: &[f32]) {
        self.t += 1;
        let (b1, b2) = (0.9f32, 0.999f32);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = (1.0 - b2.powi(self.t)).sqrt();
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            p[i] -= self.lr / c1 * self.m[i] / (self.v[i].sqrt() / c2 + 1e-8);
        }
    }
}

/// The negative marginal log likelihood of pybnn's DNGO over `theta = (log alpha, log sigma^2)`.
struct Mll<'a> {
    gram: &'a DMatrix<f64>,
    ty: &'a DVector<f64>,
    yy: f64,
    n: usize,
}

impl Mll<'_> {
    fn value(&self, theta: &[f64]) -> f64 {
        if theta.iter().any(|t| !(-10.0..=10.0).contains(t)) {
            return f64::INFINITY;
        }
        let (alpha, beta) = (theta[0].exp(), 1.0 / theta[1].exp());
        let d = self.gram.nrows();
        let k = self.gram * beta + DMatrix::identity(d, d) * alpha;
        let Some(chol) = k.clone().cholesky() else {
            return 1e25;
        };
        let m = chol.solve(self.ty) * beta;
        // ||y - Theta m||^2 = y.y - 2 m.(Theta^T y) + m^T (Theta^T Theta) m
        let resid2 = (self.yy - 2.0 * m.dot(self.ty) + m.dot(&(self.gram * &m))).max(0.0);
        let log_det = 2.0 * chol.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let log_det_eps = ln_add_exp(log_det, 1e-10f64.ln());
        let n = self.n as f64;
        let mll = d as f64 / 2.0 * alpha.ln() + n / 2.0 * beta.ln()
            - n / 2.0 * (2.0 * std::f64::consts::PI).ln()
            - beta / 2.0 * resid2.sqrt()
            - alpha / 2.0 * m.dot(&m)
            - 0.5 * log_det_eps;
        if mll.is_nan() {
            1e25
        } else {
            -mll
        }
    }
}

fn ln_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

impl CostFunction for Mll<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.value(p))
    }
}

/// scipy's `fmin`: the initial simplex is x0 and x0 with each coordinate scaled by 1.05 (0.00025
/// for a zero), at most 200 iterations per parameter; stops when the simplex's values agree to
/// 1e-4 (scipy also asks its points to agree to 1e-4).
fn fmin(mll: Mll<'_>, x0: Vec<f64>) -> Vec<f64> {
    let mut simplex = vec![x0.clone()];
    for k in 0..x0.len() {
        let mut x = x0.clone();
        x[k] = if x[k] != 0.0 { x[k] * 1.05 } else { 0.00025 };
        simplex.push(x);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-4)
        .expect("a positive tolerance");
    let iters = 200 * x0.len() as u64;
    match Executor::new(mll, solver)
        .configure(|s| s.max_iters(iters))
        .run()
    {
        Ok(res) => res.state().get_best_param().cloned().unwrap_or(x0),
        Err(_) => x0,
    }
}

impl Dngo {
    /// Trains on rows `x` (n x d, row-major) with targets `y`.
    pub fn train(x: &[f32], d: usize, y: &[f64], s: Settings, rng: &mut impl rand::Rng) -> Dngo {
        let n = y.len();
        let (mean, std) = moments(x, d, n);
        let xn: Vec<f32> = x
            .chunks_exact(d)
            .flat_map(|r| normalize(r, &mean, &std))
            .collect();
        let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let mut net = Net::new(d, s.hidden, rng);
        let mut adam = Adam {
            m: vec![0.0; net.p.len()],
            v: vec![0.0; net.p.len()],
            t: 0,
            lr: s.lr as f32,
        };
        let batch = if n <= s.batch { n } else { s.batch.max(1) };
        let mut order: Vec<usize> = (0..n).collect();
        let mut g = vec![0f32; net.p.len()];
        let mut hid = vec![0f32; s.hidden];
        for _ in 0..s.epochs {
            crate::images::shuffle(&mut order, rng);
            for chunk in order.chunks_exact(batch) {
                let xs: Vec<&[f32]> = chunk.iter().map(|&i| &xn[i * d..(i + 1) * d]).collect();
                let ys: Vec<f32> = chunk.iter().map(|&i| yf[i]).collect();
                g.iter_mut().for_each(|v| *v = 0.0);
                net.backprop(&xs, &ys, &mut g, &mut hid);
                adam.step(&mut net.p, &g);
            }
        }
        let h = s.hidden;
        let w1 = DMatrix::from_fn(h, d, |k, j| net.p[k * d + j] as f64);
        let b1 = DVector::from_fn(h, |k, _| net.p[h * d + k] as f64);
        let theta = basis(&xn, d, &w1, &b1);
        let gram = theta.transpose() * &theta;
        let yv = DVector::from_column_slice(y);
        let ty = theta.transpose() * &yv;
        let normal = |m: f64| Normal::new(m, 1.0).expect("unit variance");
        let p0 = vec![normal(0.0).sample(rng), normal(-3.0).sample(rng)];
        let mll = Mll {
            gram: &gram,
            ty: &ty,
            yy: yv.dot(&yv),
            n,
        };
        let t = fmin(mll, p0);
        let (alpha, beta) = (t[0].exp(), 1.0 / t[1].exp());
        let a = &gram * beta + DMatrix::identity(h, h) * alpha;
        let s_mat = a.clone().try_inverse().unwrap_or_else(|| {
            (a + DMatrix::identity(h, h) * 1e-8)
                .pseudo_inverse(0.0)
                .expect("svd")
        });
        let m = &s_mat * &ty * beta;
        Dngo {
            mean,
            std,
            w1,
            b1,
            m,
            s: s_mat,
            alpha,
            beta,
        }
    }

    /// Predictive means and variances of rows `x` (row-major, width d).
    pub fn predict(&self, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let d = self.mean.len();
        let xn: Vec<f32> = x
            .chunks_exact(d)
            .flat_map(|r| normalize(r, &self.mean, &self.std))
            .collect();
        let phi = basis(&xn, d, &self.w1, &self.b1);
        let mean = &phi * &self.m;
        let ps = &phi * &self.s;
        let var = (0..phi.nrows()).map(|i| {
            let v = 1.0 / self.beta + ps.row(i).dot(&phi.row(i));
            v.max(f64::EPSILON)
        });
        (mean.iter().copied().collect(), var.collect())
    }
}

fn moments(x: &[f32], d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0f64; d];
    for r in x.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut var = vec![0f64; d];
    for r in x.chunks_exact(d) {
        for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (*v as f64 - m).powi(2) / n as f64;
        }
    }
    let std = var
        .into_iter()
        .map(|v| if v > 0.0 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, std)
}

fn normalize<'a>(r: &'a [f32], mean: &'a [f64], std: &'a [f64]) -> impl Iterator<Item = f32> + 'a {
    r.iter()
        .zip(mean.iter().zip(std))
        .map(|(v, (m, s))| ((*v as f64 - m) / s) as f32)
}

/// The tanh units of normalized rows: n x hidden.
fn basis(xn: &[f32], d: usize, w1: &DMatrix<f64>, b1: &DVector<f64>) -> DMatrix<f64> {
    let n = xn.len() / d;
    let x = DMatrix::from_fn(n, d, |i, j| xn[i * d + j] as f64);
    let mut z = x * w1.transpose();
    for mut row in z.row_iter_mut() {
        for (v, b) in row.iter_mut().zip(b1.iter()) {
            *v = (*v + b).tanh();
        }
    }
    z
}

/// arch2vec's expected improvement over `target` (0.95): `u = (mean - target) / sigma`,
/// `EI = sigma (pdf(u) + u cdf(u))`, where arch2vec's `sigma` is DNGO's predictive *variance*
/// (`sigma = torch.Tensor(v)` with `v` the variance; kept as a quirk).
pub fn expected_improvement(mean: f64, variance: f64, target: f64) -> f64 {
    use statrs::distribution::{Continuous, ContinuousCDF, Normal as StdNormal};
    let n = StdNormal::standard();
    let sigma = variance;
    let u = (mean - target) / sigma;
    sigma * (n.pdf(u) + u * n.cdf(u))
}

/// [`expected_improvement`] as arch2vec computes it: in float32 (`torch.Tensor` of the
/// predictions, `Normal.cdf` through `erf`, the pdf as `exp(log_prob)`). Far below the target
/// both the pdf and `1 + erf` round to 0, so EI is exactly 0 where f64 still ranks the cells.
pub fn expected_improvement_f32(mean: f64, variance: f64, target: f64) -> f32 {
    let (m, sigma, t) = (mean as f32, variance as f32, target as f32);
    let u = (m - t) / sigma;
    let erf = statrs::function::erf::erf((u / std::f32::consts::SQRT_2) as f64) as f32;
    let cdf = 0.5 * (1.0 + erf);
    let log_norm = (2.0 * std::f32::consts::PI).sqrt().ln();
    let pdf = (-(u * u) / 2.0 - log_norm).exp();
    sigma * (pdf + u * cdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_improvement_by_hand() {
        // u = 0: EI = sigma * pdf(0) = sigma / sqrt(2 pi).
        let e = expected_improvement(0.95, 0.01, 0.95);
        assert!((e - 0.01 / (2.0 * std::f64::consts::PI).sqrt()).abs() < 1e-12);
        // u = (0.96 - 0.95) / 0.01 = 1: EI = 0.01 (pdf(1) + cdf(1)).
        let e = expected_improvement(0.96, 0.01, 0.95);
        let (pdf1, cdf1) = (0.24197072451914337, 0.8413447460685429);
        assert!((e - 0.01 * (pdf1 + cdf1)).abs() < 1e-12, "{e}");
        // Far below the target, EI vanishes; more variance means more EI.
        assert!(expected_improvement(0.5, 0.001, 0.95) < 1e-100);
        assert!(expected_improvement(0.9, 0.1, 0.95) > expected_improvement(0.9, 0.05, 0.95));
    }

    #[test]
    fn float32_expected_improvement_underflows_to_zero_where_f64_does_not() {
        // Near the target the two agree.
        let (a, b) = (
            expected_improvement(0.96, 0.01, 0.95),
            expected_improvement_f32(0.96, 0.01, 0.95),
        );
        assert!((a - b as f64).abs() < 1e-8, "{a} {b}");
        // u = (0.80 - 0.95) / 0.01 = -15: in f64 EI = 0.01 (pdf(u) + u cdf(u)) ~ 2e-54 > 0; in
        // float32 pdf(-15) = exp(-113.4) is below the smallest subnormal and 1 + erf(-10.6)
        // rounds to 0, so EI is 0 and such cells tie.
        let f64_far = expected_improvement(0.80, 0.01, 0.95);
        let f32_far = expected_improvement_f32(0.80, 0.01, 0.95);
        assert!(f64_far > 0.0, "{f64_far}");
        assert_eq!(f32_far, 0.0);
    }

    #[test]
    fn dngo_fits_a_toy_function_and_is_unsure_away_from_the_data() {
        // y = sin(3 x) on [-1, 1]: the posterior mean follows it at the data, and the variance
        // is larger far outside the data than at it.
        let mut rng = crate::images::rng(1, 7);
        let xs: Vec<f32> = (0..40).map(|i| -1.0 + 2.0 * i as f32 / 39.0).collect();
        let y: Vec<f64> = xs.iter().map(|&x| (3.0 * x as f64).sin()).collect();
        let m = Dngo::train(&xs, 1, &y, Settings::default(), &mut rng);
        let (mean, var) = m.predict(&xs);
        let rmse = (mean
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / 40.0)
            .sqrt();
        assert!(rmse < 0.1, "rmse {rmse}");
        let (_, far) = m.predict(&[6.0]);
        let near = var.iter().sum::<f64>() / var.len() as f64;
        assert!(
            far[0] > 2.0 * near,
            "variance far {} vs near {near}",
            far[0]
        );
        assert!(m.alpha > 0.0 && m.beta > 0.0);
    }

    #[test]
    fn the_marginal_likelihood_is_pybnns() {
        // One basis function theta = [1, 1] (n = 2, d = 1), y = [1, 1]: K = 2 beta + alpha,
        // m = 2 beta / K, residual norm |1 - m| sqrt 2.
        let gram = DMatrix::from_element(1, 1, 2.0);
        let ty = DVector::from_element(1, 2.0);
        let mll = Mll {
            gram: &gram,
            ty: &ty,
            yy: 2.0,
            n: 2,
        };
        let (la, ls) = (0.3f64, -1.0f64);
        let (alpha, beta) = (la.exp(), 1.0 / ls.exp());
        let k = 2.0 * beta + alpha;
        let m = 2.0 * beta / k;
        let expect = 0.5 * alpha.ln() + beta.ln()
            - (2.0 * std::f64::consts::PI).ln()
            - beta / 2.0 * ((1.0 - m).abs() * 2f64.sqrt())
            - alpha / 2.0 * m * m
            - 0.5 * (k + 1e-10).ln();
        assert!((mll.value(&[la, ls]) + expect).abs() < 1e-9);
        assert_eq!(mll.value(&[11.0, 0.0]), f64::INFINITY, "outside [-10, 10]");
    }
}
