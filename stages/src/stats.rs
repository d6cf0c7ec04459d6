//! Statistics the stages report: rank correlations and top-k precision as NASLib's
//! `predictor_evaluator.compare` computes them, and a two-sample test for search results.
use statrs::distribution::{ContinuousCDF, Normal};

/// Kendall's tau-b (scipy's `kendalltau` default, ties in either variable accounted for), by
/// the `kendalls` crate (O(n log n)); NaN when undefined (fewer than 2 values, a constant side).
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 || a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    match kendalls::tau_b_with_comparator(a, b, |x: &f64, y: &f64| x.total_cmp(y)) {
        Ok((tau, _)) => tau,
        Err(_) => f64::NAN,
    }
}

/// Average ranks (1-based; ties get the mean of their ranks), as scipy's `rankdata`.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut ix: Vec<usize> = (0..v.len()).collect();
    ix.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut k = 0;
    while k < ix.len() {
        let mut e = k;
        while e + 1 < ix.len() && v[ix[e + 1]] == v[ix[k]] {
            e += 1;
        }
        let avg = (k + e) as f64 / 2.0 + 1.0;
        for &i in &ix[k..=e] {
            r[i] = avg;
        }
        k = e + 1;
    }
    r
}

/// Spearman's rho: Pearson's r of the average ranks (scipy's `spearmanr`).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    crate::predict::regress::pearson(&ranks(a), &ranks(b))
}

/// NASLib's precision@k: the cells whose value is above the (k+1)-th largest, in truth and in
/// prediction; the size of their intersection over k.
pub fn precision_at(truth: &[f64], pred: &[f64], k: usize) -> f64 {
    let top = |v: &[f64]| -> Vec<bool> {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let cut = s[s.len().saturating_sub(k + 1)];
        v.iter().map(|&x| x > cut).collect()
    };
    if truth.is_empty() || k == 0 {
        return f64::NAN;
    }
    let (t, p) = (top(truth), top(pred));
    t.iter().zip(&p).filter(|(a, b)| **a && **b).count() as f64 / k as f64
}

/// The Mann-Whitney U statistic of `a` against `b`, its mean and its variance under the null
/// (normal approximation, tie-corrected); `None` when either sample is empty or all values tie.
fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let r = ranks(&all);
    let r1: f64 = r[..a.len()].iter().sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    // Tie correction: sum over tie groups of t^3 - t.
    let mut sorted = all.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let mut ties = 0.0;
    let mut k = 0;
    while k < sorted.len() {
        let mut e = k;
        while e + 1 < sorted.len() && sorted[e + 1] == sorted[k] {
            e += 1;
        }
        let t = (e - k + 1) as f64;
        ties += t * t * t - t;
        k = e + 1;
    }
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    (var > 0.0).then_some((u1, n1 * n2 / 2.0, var))
}

/// Two-sided Mann-Whitney U p-value (normal approximation with tie and continuity
/// corrections, as scipy's `mannwhitneyu(..., alternative="two-sided")`); NaN when undefined.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let Some((u1, mu, var)) = mann_whitney_u(a, b) else {
        return f64::NAN;
    };
    let u = u1.max(2.0 * mu - u1);
    let z = (u - mu - 0.5) / var.sqrt();
    (2.0 * Normal::standard().sf(z)).min(1.0)
}

/// One-sided Mann-Whitney U p-value for "`a` tends to be greater than `b`" (scipy's
/// `alternative="greater"`, with the continuity correction); NaN when undefined.
pub fn mann_whitney_p_greater(a: &[f64], b: &[f64]) -> f64 {
    let Some((u1, mu, var)) = mann_whitney_u(a, b) else {
        return f64::NAN;
    };
    let z = (u1 - mu - 0.5) / var.sqrt();
    Normal::standard().sf(z)
}

/// Two-sided Wilcoxon signed-rank p-value of the paired differences `a[i] - b[i]`, as scipy's
/// `wilcoxon(a, b)`: zero differences dropped; the exact null distribution when at most 50
/// differences remain and none tie, else the normal approximation with the tie correction.
/// NaN when no difference is left.
pub fn wilcoxon_p(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = (a.iter().zip(b))
        .map(|(x, y)| x - y)
        .filter(|d| *d != 0.0 && d.is_finite())
        .collect();
    let n = d.len();
    if n == 0 {
        return f64::NAN;
    }
    let r = ranks(&d.iter().map(|x| x.abs()).collect::<Vec<_>>());
    let w_plus: f64 = (d.iter().zip(&r))
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let t = w_plus.min(total - w_plus);
    let ties = r.iter().any(|x| x.fract() != 0.0) || {
        let mut s = r.clone();
        s.sort_by(|x, y| x.total_cmp(y));
        s.windows(2).any(|w| w[0] == w[1])
    };
    if n <= 50 && !ties {
        // Count the sign patterns whose positive rank sum is at most t.
        let max = n * (n + 1) / 2;
        let mut count = vec![0f64; max + 1];
        count[0] = 1.0;
        for k in 1..=n {
            for s in (k..=max).rev() {
                count[s] += count[s - k];
            }
        }
        let below: f64 = count[..=(t as usize)].iter().sum();
        return (2.0 * below / 2f64.powi(n as i32)).min(1.0);
    }
    let nf = n as f64;
    let mut sorted = r.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let mut tie_term = 0.0;
    let mut k = 0;
    while k < n {
        let mut e = k;
        while e + 1 < n && sorted[e + 1] == sorted[k] {
            e += 1;
        }
        let c = (e - k + 1) as f64;
        tie_term += c * c * c - c;
        k = e + 1;
    }
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    if var <= 0.0 {
        return f64::NAN;
    }
    let z = (t - total / 2.0) / var.sqrt();
    (2.0 * Normal::standard().cdf(z)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilcoxon_matches_scipy() {
        // scipy.stats.wilcoxon([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
        //                      [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]).pvalue
        // = 0.0390625 (exact: W = 5 of n = 9).
        let a = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        #[allow(clippy::approx_constant)] // 3.14 is a measurement of the example, not pi
        let b = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
        assert!((wilcoxon_p(&a, &b) - 0.0390625).abs() < 1e-12);
        // All ten differences positive: 2 / 2^10.
        let a: Vec<f64> = (1..=10).map(|k| k as f64 * 1.1).collect();
        let b: Vec<f64> = (1..=10).map(|k| k as f64).collect();
        assert!((wilcoxon_p(&a, &b) - 2.0 / 1024.0).abs() < 1e-12);
        assert!(wilcoxon_p(&[1.0, 2.0], &[1.0, 2.0]).is_nan());
        // scipy's documented example: statistic 24, p = 0.041259765625 (exact, n = 15).
        let d = [
            6., 8., 14., 16., 23., 24., 28., 29., 41., -48., 49., 56., 60., -67., 75.,
        ];
        assert!((wilcoxon_p(&d, &[0.0; 15]) - 0.041259765625).abs() < 1e-12);
    }

    #[test]
    fn kendall_tau_b_with_ties_by_hand() {
        // x = 1,2,3,4; y = 1,2,2,3: pairs concordant 5, discordant 0, one tie in y only.
        // tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) = 5 / sqrt(6 * 5).
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 3.0]);
        assert!((t - 5.0 / 30f64.sqrt()).abs() < 1e-12, "{t}");
        // Reversed order: -1; no ties, one swap of 4: (5 - 1) / 6.
        assert!((kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((t - 4.0 / 6.0).abs() < 1e-12, "{t}");
        assert!(kendall_tau(&[1.0], &[1.0]).is_nan());
    }

    #[test]
    fn spearman_uses_average_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // Ranks x: 1 2 3 4, y: 1 2.5 2.5 4 -> Pearson of these.
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[5.0, 7.0, 7.0, 9.0]);
        // mean 2.5; dx = -1.5 -.5 .5 1.5; dy = -1.5 0 0 1.5; sxy = 4.5, sxx = 5, syy = 4.5
        assert!((r - 4.5 / (5.0f64 * 4.5).sqrt()).abs() < 1e-12, "{r}");
        assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 4.0, 9.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn precision_at_k_as_naslib() {
        let truth = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let pred = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1];
        assert_eq!(precision_at(&truth, &truth, 2), 1.0);
        assert_eq!(precision_at(&truth, &pred, 2), 0.0);
        let pred = [0.1, 0.2, 0.3, 0.6, 0.5, 0.4];
        // top 3 of truth: 3,4,5; of pred: 3,4,5 -> 1; top 2: truth 4,5, pred 3,4 -> 1/2.
        assert_eq!(precision_at(&truth, &pred, 3), 1.0);
        assert_eq!(precision_at(&truth, &pred, 2), 0.5);
    }

    #[test]
    fn mann_whitney_by_hand() {
        // [1..5] against [6..10]: U = 25 of 25, mean 12.5, variance 25/12 * 11, so
        // z = (25 - 12.5 - 0.5) / sqrt(22.9167) = 2.5067 and p = erfc(z / sqrt 2) = 0.0121861.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 0.0121861).abs() < 1e-6, "{p}");
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert!((p - 1.0).abs() < 1e-12, "{p}");
        assert!(mann_whitney_p(&[1.0, 1.0], &[1.0, 1.0]).is_nan());
        // One-sided: [6..10] greater than [1..5] has half the two-sided p; the other way ~1.
        let a = [6.0, 7.0, 8.0, 9.0, 10.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((mann_whitney_p_greater(&a, &b) - 0.0121861 / 2.0).abs() < 1e-6);
        // [1..5] greater than [6..10]: U = 0, z = (0 - 12.5 - 0.5) / 4.7871 = -2.7156, p = 0.99669.
        let p = mann_whitney_p_greater(&b, &a);
        assert!((p - 0.99669).abs() < 1e-4, "{p}");
    }
}
