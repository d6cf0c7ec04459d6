//! The regressors and metrics of `predict`.
//!
//! - Random forest: smartcore's `RandomForestRegressor` with scikit-learn's defaults (100 trees,
//!   bootstrap samples, all features considered at each split, unlimited depth, leaves of 1).
//! - SVR: smartcore's epsilon-SVR with scikit-learn's `SVR()` defaults: RBF kernel with
//!   `gamma = "scale"` (1 / (features x the variance of all of X's entries)), C = 1,
//!   epsilon = 0.1, tolerance 1e-3. (epsilon = 0.1 is wide for accuracies that spread over a
//!   few hundredths: info-NAS's SVR is nearly constant, and so is this one.) smartcore 0.7
//!   truncates support vectors to the number of fit rows, so a fit needs at least as many cells
//!   as features; fewer is this fit's error.
//! - Gradient boosting: scikit-learn's `GradientBoostingRegressor()` defaults (squared error,
//!   100 stages, learning rate 0.1, trees of depth 3, leaves of 1, no subsampling, the mean as
//!   the initial prediction), each stage a smartcore regression tree fitted to the residuals.
//!   scikit-learn splits by `criterion="friedman_mse"`, smartcore's trees by the reduction of
//!   squared error; at a node both are n_l n_r (mean_l - mean_r)^2 up to the node's constant
//!   size, so they rank the candidate splits alike (they differ only with sample weights or a
//!   `min_impurity_decrease`, neither of which is used).
//!   Written here on smartcore's trees: the GBDT crate we tried (`gbdt`) draws from the thread's
//!   random generator, so its models were not a function of the seed.
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
use smartcore::svm::svr::{SVRParameters, SVR};
use smartcore::svm::Kernels;
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

/// Why a regressor could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum RegressError {
    #[error("the GP kernel matrix of {n} cells is not positive definite with alpha = {alpha:e} (raise `gp_alpha`)")]
    NotPositiveDefinite { n: usize, alpha: f64 },
    #[error("random forest: {0}")]
    Forest(String),
    #[error("SVR: {0}")]
    Svr(String),
    #[error("gradient boosting: {0}")]
    Boost(String),
    #[error("{0}")]
    Input(String),
}

/// A regressor's name and settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regressor {
    Forest { trees: usize, seed: u64 },
    Gp { length_scale: f64, alpha: f64 },
    Svr,
    Boost { stages: usize, seed: u64 },
}

impl Regressor {
    pub fn name(&self) -> &'static str {
        match self {
            Regressor::Forest { .. } => "rf",
            Regressor::Gp { .. } => "gp",
            Regressor::Svr => "svr",
            Regressor::Boost { .. } => "gb",
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
            Regressor::Svr => svr(x, y, q),
            Regressor::Boost { stages, seed } => boost(x, y, q, stages, seed),
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

fn svr(x: &[Vec<f64>], y: &[f64], q: &[Vec<f64>]) -> Result<Vec<f64>, RegressError> {
    let all: Vec<f64> = x.iter().flatten().copied().collect();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let gamma = if var > 0.0 {
        1.0 / (x[0].len() as f64 * var)
    } else {
        1.0
    };
    let params = SVRParameters::default()
        .with_eps(0.1)
        .with_c(1.0)
        .with_tol(1e-3)
        .with_kernel(Kernels::rbf().with_gamma(gamma));
    // smartcore 0.7's SVR keeps each support vector's first n entries only (n = fit rows:
    // `Vec::from_iterator(row, n)` in its optimizer), so with fewer fit cells than features its
    // `predict` panics ("A and B should have the same shape"). Refuse that case by name; any
    // other panic in the crate still becomes this fit's error.
    if x.len() < x[0].len() {
        return Err(RegressError::Svr(format!(
            "smartcore's SVR needs at least as many fit cells as features ({} cells, {} features): raise `train_sizes` or drop \"svr\"",
            x.len(),
            x[0].len()
        )));
    }
    let (xm, yv, qm) = (dense(x)?, y.to_vec(), dense(q)?);
    let run = || -> Result<Vec<f64>, RegressError> {
        let model = SVR::fit(&xm, &yv, &params).map_err(|e| RegressError::Svr(e.to_string()))?;
        model
            .predict(&qm)
            .map_err(|e| RegressError::Svr(e.to_string()))
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(RegressError::Svr(
            "smartcore's SVR panicked in predict (drop \"svr\" from `regressors`)".into(),
        ))
    })
}

fn boost(
    x: &[Vec<f64>],
    y: &[f64],
    q: &[Vec<f64>],
    stages: usize,
    seed: u64,
) -> Result<Vec<f64>, RegressError> {
    const RATE: f64 = 0.1;
    let (xm, qm) = (dense(x)?, dense(q)?);
    let init = y.iter().sum::<f64>() / y.len() as f64;
    let mut fit = vec![init; y.len()];
    let mut pred = vec![init; q.len()];
    let params = DecisionTreeRegressorParameters::default()
        .with_max_depth(3)
        .with_min_samples_leaf(1)
        .with_min_samples_split(2);
    let err = |e: smartcore::error::Failed| RegressError::Boost(e.to_string());
    for k in 0..stages.max(1) {
        let residual: Vec<f64> = y.iter().zip(&fit).map(|(y, f)| y - f).collect();
        let p = DecisionTreeRegressorParameters {
            seed: Some(seed.wrapping_add(k as u64)),
            ..params.clone()
        };
        let tree = DecisionTreeRegressor::fit(&xm, &residual, p).map_err(err)?;
        for (f, d) in fit.iter_mut().zip(tree.predict(&xm).map_err(err)?) {
            *f += RATE * d;
        }
        for (f, d) in pred.iter_mut().zip(tree.predict(&qm).map_err(err)?) {
            *f += RATE * d;
        }
    }
    Ok(pred)
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

    /// 200 rows of (x in [0, 1), a distractor); y is 0.2 below x = 0.5 and 0.9 above; queries
    /// on both sides.
    fn step() -> (Vec<Vec<f64>>, Vec<f64>, Vec<Vec<f64>>) {
        let x: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![i as f64 / 200.0, (i % 7) as f64])
            .collect();
        let y = x
            .iter()
            .map(|r| if r[0] < 0.5 { 0.2 } else { 0.9 })
            .collect();
        (x, y, vec![vec![0.1, 3.0], vec![0.9, 3.0]])
    }

    #[test]
    fn forest_fits_a_step_and_is_deterministic_per_seed() {
        let (x, y, q) = step();
        let r = Regressor::Forest { trees: 20, seed: 3 };
        let p = r.fit_predict(&x, &y, &q).unwrap();
        assert!(
            (p[0] - 0.2).abs() < 0.05 && (p[1] - 0.9).abs() < 0.05,
            "{p:?}"
        );
        assert_eq!(p, r.fit_predict(&x, &y, &q).unwrap());
    }

    #[test]
    fn svr_with_fewer_fit_cells_than_features_is_an_error_not_a_panic() {
        let x: Vec<Vec<f64>> = (0..3)
            .map(|i| (0..5).map(|j| (i * j) as f64).collect())
            .collect();
        let y = vec![0.1, 0.2, 0.3];
        let e = Regressor::Svr
            .fit_predict(&x, &y, &x)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("at least as many fit cells as features (3 cells, 5 features)"),
            "{e}"
        );
    }

    #[test]
    fn boosting_and_svr_fit_a_step() {
        let (x, y, q) = step();
        let gb = Regressor::Boost {
            stages: 100,
            seed: 1,
        };
        let p = gb.fit_predict(&x, &y, &q).unwrap();
        // 100 stages at rate 0.1 close all but 0.9^100 of the gap to the step.
        assert!(
            (p[0] - 0.2).abs() < 1e-3 && (p[1] - 0.9).abs() < 1e-3,
            "{p:?}"
        );
        assert_eq!(p, gb.fit_predict(&x, &y, &q).unwrap());
        let one = Regressor::Boost { stages: 1, seed: 1 }
            .fit_predict(&x, &y, &q)
            .unwrap();
        // One stage: the mean (0.55) plus a tenth of the residual (-0.35 or +0.35).
        assert!(
            (one[0] - 0.515).abs() < 1e-9 && (one[1] - 0.585).abs() < 1e-9,
            "{one:?}"
        );
        let p = Regressor::Svr.fit_predict(&x, &y, &q).unwrap();
        assert!(p[0] < 0.4 && p[1] > 0.7, "{p:?}");
    }

    #[test]
    fn metrics() {
        assert!((rmse(&[1.0, 2.0], &[1.0, 4.0]) - 2f64.sqrt()).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9979487157886733).abs() < 1e-9);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1.0, 1.0], &[2.0, 3.0]).is_nan());
    }
}
