//! The regressors and metrics of `predict`.
//!
//! - Random forest: smartcore's `RandomForestRegressor` with scikit-learn's defaults (100 trees,
//!   bootstrap samples, all features considered at each split, unlimited depth, leaves of 1).
//! - Gaussian process: scikit-learn's default `GaussianProcessRegressor()`, i.e. a zero prior mean
//!   (`normalize_y=False`), the fixed kernel 1.0 x RBF(length scale 1.0) and `alpha` added to the
//!   kernel matrix's diagonal; the posterior mean by a Cholesky solve (nalgebra). Written here
//!   because the GP crates fit their own hyperparameters or panic on a matrix that is not
//!   positive definite; this one returns an error that names `gp_alpha`.
use nalgebra::{DMatrix, DVector};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// Why a regressor could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum RegressError {
    #[error("the GP kernel matrix of {n} cells is not positive definite with alpha = {alpha:e} (raise `gp_alpha`)")]
    NotPositiveDefinite { n: usize, alpha: f64 },
    #[error("random forest: {0}")]
    Forest(String),
    #[error("{0}")]
    Input(String),
}

/// A regressor's name and settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regressor {
    Forest { trees: usize, seed: u64 },
    Gp { length_scale: f64, alpha: f64 },
}

impl Regressor {
    pub fn name(&self) -> &'static str {
        match self {
            Regressor::Forest { .. } => "rf",
            Regressor::Gp { .. } => "gp",
        }
    }

    /// Fits on rows `x` (all of one width) with targets `y`, predicts rows `q`.
    pub fn fit_predict(
        &self,
        x: &[Vec<f64>],
        y: &[f64],
        q: &[Vec<f64>],
    ) -> Result<Vec<f64>, RegressError> {
        if x.len() != y.len() || x.is_empty() {
            return Err(RegressError::Input(format!(
                "{} training rows for {} targets",
                x.len(),
                y.len()
            )));
        }
        if q.is_empty() {
            return Ok(Vec::new());
        }
        match *self {
            Regressor::Forest { trees, seed } => forest(x, y, q, trees, seed),
            Regressor::Gp {
                length_scale,
                alpha,
            } => gp(x, y, q, length_scale, alpha),
        }
    }
}

fn dense(rows: &[Vec<f64>]) -> Result<DenseMatrix<f64>, RegressError> {
    DenseMatrix::from_2d_vec(&rows.to_vec()).map_err(|e| RegressError::Input(e.to_string()))
}

fn forest(
    x: &[Vec<f64>],
    y: &[f64],
    q: &[Vec<f64>],
    trees: usize,
    seed: u64,
) -> Result<Vec<f64>, RegressError> {
    let params = RandomForestRegressorParameters::default()
        .with_n_trees(trees.max(1))
        .with_m(x[0].len())
        .with_min_samples_leaf(1)
        .with_min_samples_split(2)
        .with_seed(seed);
    let model = RandomForestRegressor::fit(&dense(x)?, &y.to_vec(), params)
        .map_err(|e| RegressError::Forest(e.to_string()))?;
    model
        .predict(&dense(q)?)
        .map_err(|e| RegressError::Forest(e.to_string()))
}

fn rbf(a: &[f64], b: &[f64], ls: f64) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-0.5 * d / (ls * ls)).exp()
}

fn gp(
    x: &[Vec<f64>],
    y: &[f64],
    q: &[Vec<f64>],
    ls: f64,
    alpha: f64,
) -> Result<Vec<f64>, RegressError> {
    let n = x.len();
    let k = DMatrix::from_fn(n, n, |i, j| {
        rbf(&x[i], &x[j], ls) + if i == j { alpha } else { 0.0 }
    });
    let chol = k
        .cholesky()
        .ok_or(RegressError::NotPositiveDefinite { n, alpha })?;
    let w = chol.solve(&DVector::from_column_slice(y));
    Ok(q.iter()
        .map(|row| {
            x.iter()
                .zip(w.iter())
                .map(|(xi, wi)| rbf(row, xi, ls) * wi)
                .sum()
        })
        .collect())
}

/// Root mean squared error.
pub fn rmse(truth: &[f64], pred: &[f64]) -> f64 {
    let n = truth.len().max(1) as f64;
    (truth
        .iter()
        .zip(pred)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Pearson's correlation coefficient; NaN when either side is constant or has under 2 values.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / n as f64,
        b.iter().sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp_posterior_mean_by_hand() {
        // Two points: K = [[1, e], [e, 1]] with e = exp(-1/2) (distance 1); prediction at a
        // training point reproduces its target (alpha ~ 0), far away it falls to the zero prior.
        let x = vec![vec![0.0], vec![1.0]];
        let y = [0.5, 0.9];
        let r = Regressor::Gp {
            length_scale: 1.0,
            alpha: 1e-10,
        };
        let p = r
            .fit_predict(&x, &y, &[vec![0.0], vec![1.0], vec![50.0], vec![0.5]])
            .unwrap();
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.9).abs() < 1e-6);
        assert!(p[2].abs() < 1e-12);
        let e = (-0.5f64).exp();
        let k = (-0.125f64).exp();
        let det = 1.0 - e * e;
        let w = [(0.5 - e * 0.9) / det, (0.9 - e * 0.5) / det];
        assert!((p[3] - k * (w[0] + w[1])).abs() < 1e-6);
    }

    #[test]
    fn duplicate_points_need_alpha() {
        let x = vec![vec![1.0, 2.0], vec![1.0, 2.0]];
        let r = Regressor::Gp {
            length_scale: 1.0,
            alpha: 0.0,
        };
        let e = r
            .fit_predict(&x, &[0.1, 0.2], &[vec![0.0, 0.0]])
            .unwrap_err();
        assert!(e.to_string().contains("gp_alpha"), "{e}");
        let r = Regressor::Gp {
            length_scale: 1.0,
            alpha: 1e-3,
        };
        assert!(r.fit_predict(&x, &[0.1, 0.2], &[vec![0.0, 0.0]]).is_ok());
    }

    #[test]
    fn forest_fits_a_step_and_is_deterministic_per_seed() {
        let x: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![i as f64 / 200.0, (i % 7) as f64])
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|r| if r[0] < 0.5 { 0.2 } else { 0.9 })
            .collect();
        let r = Regressor::Forest { trees: 20, seed: 3 };
        let q = vec![vec![0.1, 3.0], vec![0.9, 3.0]];
        let p = r.fit_predict(&x, &y, &q).unwrap();
        assert!(
            (p[0] - 0.2).abs() < 0.05 && (p[1] - 0.9).abs() < 0.05,
            "{p:?}"
        );
        assert_eq!(p, r.fit_predict(&x, &y, &q).unwrap());
    }

    #[test]
    fn metrics() {
        assert!((rmse(&[1.0, 2.0], &[1.0, 4.0]) - 2f64.sqrt()).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9979487157886733).abs() < 1e-9);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1.0, 1.0], &[2.0, 3.0]).is_nan());
    }
}
