//! NASLib's predictor protocol (White et al. 2021, "How powerful are performance predictors in
//! neural architecture search?"; automl/NASLib `scripts/create_configs.py`,
//! `scripts/predictors/run_nb101.sh`, `naslib/defaults/predictor_evaluator.py`), the
//! `protocol = "naslib"` of `predict`:
//!
//! - 11 fit sizes log-spaced from 5 to 1,000 (`create_configs.py`: `int(2**x)` for 11 values of
//!   x from log2(5.1) to log2(1000)): 5, 8, 14, 24, 42, 71, 121, 205, 347, 589, 1000;
//! - per seed, a test set of 200 cells (`run_nb101.sh`'s `--test_size 200`) and one fit draw of
//!   the largest size, of which each size fits on the first N (`vary_train_size`:
//!   `data[:train_size]`); both drawn uniformly from the table, without repeats and apart from
//!   each other;
//! - no accuracy filter: every test cell is scored;
//! - NASLib's metric definitions (`compare`): Pearson r as its absolute value, Spearman rho,
//!   Kendall tau-b, and precision@k as the cells above the (k+1)-th largest value in both the
//!   truth and the prediction, over k ([`precision_naslib`]), all over the 200 test cells.
//!
//! The regressors keep scikit-learn's defaults (NASLib's own predictor classes wrap them with
//! tuned hyperparameters; those are not reproduced).
use rand::RngExt;

use super::regress::{pearson, rmse};
use super::{target, Protocol, Scored};
use crate::images;
use crate::search::table::Searchable;
use crate::stats::{kendall_tau, spearman};

/// The test set's size (`run_nb101.sh`).
pub const TEST_SIZE: usize = 200;

/// NASLib's 11 fit sizes, as `create_configs.py` computes them.
pub fn sizes() -> Vec<usize> {
    let (a, b) = (5.1f64.log2(), 1000f64.log2());
    (0..11)
        .map(|i| 2f64.powf(a + (b - a) * i as f64 / 10.0) as usize)
        .collect()
}

/// NASLib's precision@k: the cells whose value is above the (k+1)-th largest (the smallest
/// when there are at most k), in both the truth and the prediction, counted over k.
pub fn precision_naslib(truth: &[f64], pred: &[f64], k: usize) -> f64 {
    if truth.is_empty() || k == 0 {
        return f64::NAN;
    }
    let top = |v: &[f64]| -> Vec<bool> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let bar = s[s.len() - s.len().min(k + 1)];
        v.iter().map(|&y| y > bar).collect()
    };
    let (t, p) = (top(truth), top(pred));
    t.iter().zip(&p).filter(|(a, b)| **a && **b).count() as f64 / k as f64
}

/// One seed's test set and fit draw: `TEST_SIZE` cells, then `fit` more, all distinct.
pub fn draw(cells: &[usize], fit: usize, seed: u64, stream: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = images::rng(seed, stream);
    let mut order = cells.to_vec();
    let n = (TEST_SIZE + fit).min(order.len());
    for k in 0..n {
        let j = rng.random_range(k..order.len());
        order.swap(k, j);
    }
    let fit_draw = order[TEST_SIZE.min(n)..n].to_vec();
    order.truncate(TEST_SIZE.min(n));
    (order, fit_draw)
}

/// Scores predictions of the test cells as NASLib does.
pub fn score(
    table: &Searchable,
    p: &Protocol,
    test: &[usize],
    pred: &[f64],
    of: (&str, &str, usize, u64),
) -> Scored {
    let truth: Vec<f64> = test
        .iter()
        .map(|&i| target(table, p, i).unwrap_or(0.0))
        .collect();
    let (features, regressor, train_size, seed) = of;
    Scored {
        features: features.to_string(),
        regressor: regressor.to_string(),
        train_size,
        seed,
        set: String::new(),
        rmse: rmse(&truth, pred),
        pearson: pearson(&truth, pred).abs(),
        kendall_tau: kendall_tau(&truth, pred),
        spearman: spearman(&truth, pred),
        precision_10: precision_naslib(&truth, pred, 10),
        precision_20: precision_naslib(&truth, pred, 20),
        scored: test.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleven_sizes_of_create_configs() {
        assert_eq!(sizes(), [5, 8, 14, 24, 42, 71, 121, 205, 347, 589, 1000]);
    }

    #[test]
    fn precision_at_k_by_hand() {
        // 12 cells, k = 3: the true top 3 are cells 9, 10, 11 (values above the 4th largest,
        // 8); the predicted top 3 are cells 11, 10, 0 (above 0.7). Two in both: 2/3.
        let truth: Vec<f64> = (0..12).map(|i| i as f64).collect();
        let mut pred = vec![0.0; 12];
        (pred[0], pred[10], pred[11], pred[5]) = (0.9, 0.8, 1.0, 0.7);
        assert!((precision_naslib(&truth, &pred, 3) - 2.0 / 3.0).abs() < 1e-12);
        // Ties at the bar leave cells out: NASLib counts over k anyway.
        let flat = vec![1.0; 12];
        assert_eq!(precision_naslib(&truth, &flat, 3), 0.0);
        // Fewer cells than k + 1: the bar is the smallest value.
        assert_eq!(precision_naslib(&[1.0, 2.0], &[1.0, 2.0], 10), 0.1);
    }

    #[test]
    fn test_and_fit_draws_are_distinct_and_nested_by_size() {
        let cells: Vec<usize> = (0..1500).collect();
        let (test, fit) = draw(&cells, 1000, 4, 9);
        assert_eq!((test.len(), fit.len()), (TEST_SIZE, 1000));
        let mut all: Vec<usize> = test.iter().chain(&fit).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1200, "no cell twice, test and fit apart");
        assert_eq!(draw(&cells, 1000, 4, 9), (test, fit.clone()));
        // A smaller draw of the same seed: the same test set and the first cells of the fit.
        let (_, small) = draw(&cells, 205, 4, 9);
        assert_eq!(small[..], fit[..205]);
    }
}
